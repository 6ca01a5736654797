/*
 * test_redis_faults.c -- the Redis store when things go wrong, against real redis-server
 * processes that this test starts itself (temporary directory, free port on 127.0.0.1, stopped
 * by PID): restarts with and without persistence, an outage, a hung server, garbage under our
 * prefix, a server that answers nonsense, AUTH and ACL users (the password never shows), wake-ups
 * on release, and lost scripts. Skipped (77) when redis-server is not installed or the build
 * has no Redis store.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager.h"
#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

#ifndef TL_WITH_REDIS
/* The counters below live in the Redis store; without it there is nothing to test. */
int main(void)
{
    (void)fprintf(stderr, "redis faults: this build has no Redis store; skipped\n");
    return 77;
}
#else

#include <hiredis/hiredis.h>

#include "stores/redis.h"

/* ---- private redis-server processes ---- */

struct server {
    pid_t pid;
    int port;
    char *dir;
    bool aof;
    const char *password; /* NULL: none */
};

static char redis_server_path[512];
static struct server shared; /* most tests share one server, each under its own prefix */
static int prefix_seq;

static bool find_redis_server(void)
{
    const char *path = getenv("PATH");
    char dirs[4096];

    (void)snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        (void)snprintf(redis_server_path, sizeof(redis_server_path), "%s/redis-server", d);
        if (access(redis_server_path, X_OK) == 0)
            return true;
    }
    return false;
}

/* A port that nothing listens on right now (the kernel's pick for an ephemeral bind). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *admin_connect(const struct server *s)
{
    const struct timeval tv = {.tv_sec = 2};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);

    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    (void)redisSetTimeout(c, tv);
    if (s->password != NULL) {
        redisReply *r = redisCommand(c, "AUTH %s", s->password);
        bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static bool answers_ping(const struct server *s)
{
    redisContext *c = admin_connect(s);
    redisReply *r = c ? redisCommand(c, "PING") : NULL;
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;

    freeReplyObject(r);
    if (c != NULL)
        redisFree(c);
    return ok;
}

/* Starts redis-server for `s` (on s->port when it is set: a restart keeps the port). */
static bool server_spawn(struct server *s)
{
    char port[16], log[600];
    const char *argv[24];
    int n = 0;

    (void)snprintf(port, sizeof(port), "%d", s->port);
    (void)snprintf(log, sizeof(log), "%s/redis.log", s->dir);
    argv[n++] = redis_server_path;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--dir";
    argv[n++] = s->dir;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = s->aof ? "yes" : "no";
    argv[n++] = "--appendfsync";
    argv[n++] = "always";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--logfile";
    argv[n++] = log;
    if (s->password != NULL) {
        argv[n++] = "--requirepass";
        argv[n++] = s->password;
    }
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        /* Dies with this test, even if an assertion aborts it before the teardown. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(126);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            (void)dup2(null, 0);
            (void)dup2(null, 1);
            (void)dup2(null, 2);
        }
        execv(redis_server_path, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 400; i++) { /* up to 20 s */
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            return false; /* exited: the port was taken after all */
        }
        if (answers_ping(s))
            return true;
        tl__real_sleep_ms(50);
    }
    return false;
}

static void server_start(struct server *s, bool aof, const char *password)
{
    memset(s, 0, sizeof(*s));
    s->aof = aof;
    s->password = password;
    s->dir = tl_test_mkdtemp();
    assert_non_null(s->dir);
    for (int attempt = 0; attempt < 10; attempt++) {
        s->port = tl_test_server_port();
        assert_true(s->port > 0);
        if (server_spawn(s))
            return;
    }
    fail_msg("cannot start redis-server (see %s/redis.log)", s->dir);
}

static void server_kill(struct server *s, int sig)
{
    int status;

    if (s->pid <= 0)
        return;
    (void)kill(s->pid, SIGCONT);
    (void)kill(s->pid, sig);
    (void)waitpid(s->pid, &status, 0);
    s->pid = 0;
}

/* Kills the server without warning and starts it again on the same port and directory. */
static void server_restart(struct server *s)
{
    server_kill(s, SIGKILL);
    for (int attempt = 0; attempt < 20; attempt++) {
        if (server_spawn(s))
            return;
        tl__real_sleep_ms(100);
    }
    fail_msg("cannot restart redis-server on port %d", s->port);
}

static void server_stop(struct server *s)
{
    server_kill(s, SIGTERM);
    if (s->dir != NULL) {
        tl_test_rmtree(s->dir);
        free(s->dir);
        s->dir = NULL;
    }
}

/* Runs one admin command; returns the reply (caller frees). */
static redisReply *admin(const struct server *s, const char *fmt, ...)
{
    redisContext *c = admin_connect(s);
    va_list ap;

    assert_non_null(c);
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    redisFree(c);
    return r;
}

static void admin_ok(const struct server *s, const char *fmt, ...)
{
    redisContext *c = admin_connect(s);
    va_list ap;

    assert_non_null(c);
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        fail_msg("admin command failed: %s", r ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
}

/* An admin command whose answer is an integer. */
static long long admin_int(const struct server *s, const char *fmt, ...)
{
    redisContext *c = admin_connect(s);
    va_list ap;

    assert_non_null(c);
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        fail_msg("admin command failed: %s", r && r->str ? r->str : c->errstr);
    long long v = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* ---- managers ---- */

/* Log lines, to check that no password ever appears in them. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[64 * 1024];
static size_t log_len;

static void capture_log(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    pthread_mutex_lock(&log_mu);
    int n = snprintf(log_text + log_len, sizeof(log_text) - log_len, "%s\n", msg);
    if (n > 0 && (size_t)n < sizeof(log_text) - log_len)
        log_len += (size_t)n;
    pthread_mutex_unlock(&log_mu);
}

static bool log_contains(const char *needle)
{
    pthread_mutex_lock(&log_mu);
    bool found = strstr(log_text, needle) != NULL;
    pthread_mutex_unlock(&log_mu);
    return found;
}

struct mopts {
    const char *worker;
    const char *userinfo; /* "USER:PASS" or ":PASS", or NULL */
    const char *params;   /* extra query parameters, or NULL */
    uint32_t lock_timeout_ms;
    uint32_t heartbeat_ms;
    uint32_t backoff_ms; /* initial = max; 0: 10 */
    struct tl_test_lost *lost;
    bool no_line; /* wait the old way: SUBSCRIBE to releases, not in line */
};

static void make_url(char *buf, size_t size, const struct server *s, const char *prefix,
                     const struct mopts *o)
{
    (void)snprintf(buf, size, "redis://%s%s127.0.0.1:%d/0?prefix=%s&timeout=%s%s%s",
                   o->userinfo ? o->userinfo : "", o->userinfo ? "@" : "", s->port, prefix, "2s",
                   o->params ? "&" : "", o->params ? o->params : "");
}

/* A manager on server `s` under `prefix`; connects unless `connect` is false. */
static tl_manager *manager(const struct server *s, const char *prefix, const struct mopts *o,
                           bool connect)
{
    char url[512];
    make_url(url, sizeof(url), s, prefix, o);
    const struct tl_options opts = {
        .store_url = url,
        .worker_id = o->worker ? o->worker : "faults",
        .node_id = "faults-node",
        .lock_timeout_ms = o->lock_timeout_ms ? o->lock_timeout_ms : 60000,
        .heartbeat_ms = o->heartbeat_ms,
        .backoff_initial_ms = o->backoff_ms ? o->backoff_ms : 10,
        .backoff_max_ms = o->backoff_ms ? o->backoff_ms : 10,
        .max_retries = 3,
        .log = capture_log,
        .log_level = TL_LOG_DEBUG,
        .on_lost = o->lost ? tl_test_on_lost : NULL,
        .lost_ud = o->lost,
        .no_line = o->no_line,
    };
    tl_manager *m = tl_manager_new(&opts);

    assert_non_null(m);
    if (connect && tl_connect(m) != TL_OK)
        fail_msg("connect %s: %s", url, tl_errmsg(m));
    return m;
}

static void new_prefix(char buf[64], const char *what)
{
    (void)snprintf(buf, 64, "faults-%ld-%s-%d:", (long)getpid(), what, ++prefix_seq);
}

static tl_lock *must_acquire(tl_manager *m, const char *key, tl_strategy strategy)
{
    const struct tl_acquire_opts o = {.strategy = strategy, .retries = TL_NO_RETRIES};
    tl_lock *l = NULL;
    tl_status st = tl_acquire(m, key, &o, &l);

    if (st != TL_OK)
        fail_msg("acquire %s: %s: %s", key, tl_strerror(st), tl_errmsg(m));
    return l;
}

static tl_status try_acquire(tl_manager *m, const char *key, tl_strategy strategy)
{
    const struct tl_acquire_opts o = {.strategy = strategy, .retries = TL_NO_RETRIES};
    tl_lock *l = NULL;
    tl_status st = tl_acquire(m, key, &o, &l);

    if (l != NULL) {
        (void)tl_release(l, NULL);
        tl_lock_free(l);
    }
    return st;
}

static struct tl_redis_stats stats_of(const tl_manager *m)
{
    struct tl_redis_stats st;

    assert_true(tl__redis_stats(m->store, &st));
    return st;
}

static struct tl_metrics metrics(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt;
}

static void assert_contains(const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text, needle);
}

static void assert_lacks(const char *text, const char *needle)
{
    if (strstr(text, needle) != NULL)
        fail_msg("\"%s\" contains \"%s\"", text, needle);
}

/* ---- connection failures ---- */

static void connection_refused_fails_fast_and_clearly(void **state)
{
    char url[128], where[64];
    int port = free_port();

    (void)state;
    (void)snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    (void)snprintf(where, sizeof(where), "127.0.0.1:%d", port);
    const struct tl_options o = {.store_url = url};
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);

    int64_t t0 = tl__real_mono_ms();
    assert_int_equal(tl_connect(m), TL_ESTORE);
    int64_t took = tl__real_mono_ms() - t0;
    assert_contains(tl_errmsg(m), where);
    assert_contains(tl_errmsg(m), "cannot connect");
    assert_contains(tl_errmsg(m), "refused");
    if (took > 1000)
        fail_msg("a refused connection took %lld ms to report", (long long)took);

    /* Any later call says the same, just as fast. */
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(m, "k", &info), TL_ESTORE);
    assert_contains(tl_errmsg(m), "refused");
    tl_manager_free(m);
}

static void bad_urls_are_refused_without_showing_the_password(void **state)
{
    static const char *const bad[] = {
        "redis://:hunter2-secret@127.0.0.1:1/0?nosuch=1",
        "redis://:hunter2-secret@127.0.0.1:99999/0",
        "redis://:hunter2-secret@127.0.0.1:6379/x",
        "redis://:hunter2-secret@127.0.0.1:6379/0?timeout=soon",
        "redis://:hunter2-secret@127.0.0.1:6379/0?prefix=",
        "redis://user@127.0.0.1:6379/0",
        "redis://:hunter2-secret%zz@127.0.0.1:6379/0",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const struct tl_options o = {.store_url = bad[i]};
        tl_manager *m = tl_manager_new(&o);
        assert_non_null(m);
        if (tl_connect(m) != TL_EINVAL)
            fail_msg("%s: expected TL_EINVAL, got: %s", bad[i], tl_errmsg(m));
        assert_lacks(tl_errmsg(m), "hunter2");
        assert_contains(tl_errmsg(m), "redis");
        tl_manager_free(m);
    }
}

/* ---- AUTH ---- */

static void auth_with_password_and_acl_user(void **state)
{
    struct server s;
    char prefix[64];
    tl_manager *m;

    (void)state;
    server_start(&s, false, "s3cret-Pa55word");
    new_prefix(prefix, "auth");

    /* No password: NOAUTH, with a hint. */
    m = manager(&s, prefix, &(struct mopts){0}, false);
    assert_int_equal(tl_connect(m), TL_ESTORE);
    assert_contains(tl_errmsg(m), "NOAUTH");
    assert_contains(tl_errmsg(m), "no password");
    tl_manager_free(m);

    /* A wrong password: refused, and never shown. */
    m = manager(&s, prefix, &(struct mopts){.userinfo = ":wr0ng-Pa55word"}, false);
    assert_int_equal(tl_connect(m), TL_ESTORE);
    assert_contains(tl_errmsg(m), "authentication failed");
    assert_lacks(tl_errmsg(m), "wr0ng-Pa55word");
    tl_manager_free(m);

    /* The right one works, also after the server dropped our connection. */
    m = manager(&s, prefix, &(struct mopts){.userinfo = ":s3cret-Pa55word"}, true);
    tl_lock *l = must_acquire(m, "auth-key", TL_FAIL_FAST);
    admin_ok(&s, "CLIENT KILL TYPE normal");
    assert_int_equal(tl_renew(l), TL_OK);
    assert_true(stats_of(m).reconnects >= 1);
    assert_int_equal(tl_release(l, "done"), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);

    /* An ACL user (Redis 6+): USER:PASSWORD. */
    admin_ok(&s, "ACL SETUSER worker on >us3r-Pa55word ~* &* +@all");
    m = manager(&s, prefix, &(struct mopts){.userinfo = "worker:us3r-Pa55word"}, true);
    l = must_acquire(m, "auth-key", TL_FAIL_FAST);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
    m = manager(&s, prefix, &(struct mopts){.userinfo = "worker:n0t-his-Pa55word"}, false);
    assert_int_equal(tl_connect(m), TL_ESTORE);
    assert_contains(tl_errmsg(m), "authentication failed");
    assert_lacks(tl_errmsg(m), "n0t-his-Pa55word");
    tl_manager_free(m);

    /* An outage while authenticated: the message names the server, never the password. */
    m = manager(&s, prefix,
                &(struct mopts){.userinfo = ":s3cret-Pa55word", .params = "timeout=200ms"}, true);
    server_kill(&s, SIGKILL);
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(m, "auth-key", &info), TL_ESTORE);
    assert_lacks(tl_errmsg(m), "Pa55word");
    tl_manager_free(m);

    assert_false(log_contains("Pa55word"));
    server_stop(&s);
}

/* ---- garbage under our prefix ---- */

static void garbage_records_give_clear_errors(void **state)
{
    char prefix[64], k[128];
    tl_manager *m;
    struct tl_info *info = NULL;
    struct tl_info **infos = NULL;
    struct tl_event **ev = NULL;
    size_t n = 0;

    (void)state;
    new_prefix(prefix, "garbage");
    m = manager(&shared, prefix, &(struct mopts){0}, true);

    /* A string where a hash should be. */
    admin_ok(&shared, "SET %slock:str garbage", prefix);
    assert_int_equal(try_acquire(m, "str", TL_FAIL_FAST), TL_ESTORE);
    (void)snprintf(k, sizeof(k), "%slock:str", prefix);
    assert_contains(tl_errmsg(m), k);
    assert_contains(tl_errmsg(m), "not a tasklock record");
    assert_int_equal(try_acquire(m, "str", TL_STEAL_STALE), TL_ESTORE);
    assert_int_equal(tl_inspect(m, "str", &info), TL_ESTORE);
    assert_contains(tl_errmsg(m), "not a tasklock record");
    assert_null(info);
    assert_int_equal(tl_list(m, &infos, &n), TL_ESTORE);
    assert_contains(tl_errmsg(m), "not a tasklock record");
    assert_null(infos);
    /* Force replaces it with a real record. */
    tl_lock *l = must_acquire(m, "str", TL_FORCE_ACQUIRE);
    assert_int_equal(metrics(m).forced_acquisitions, 1);
    assert_int_equal(tl_inspect(m, "str", &info), TL_OK);
    assert_non_null(info);
    assert_int_equal(info->token, tl_lock_token(l));
    tl_info_free(info);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);

    /* Hashes with bad fields: each named. */
    admin_ok(&shared,
             "HSET %slock:tok worker_id w node_id n token abc claimed_at 1 heartbeat_at 1 "
             "lock_timeout_ms 1000 task_info {} nonce x",
             prefix);
    assert_int_equal(try_acquire(m, "tok", TL_FAIL_FAST), TL_ESTORE);
    assert_contains(tl_errmsg(m), "field token");
    admin_ok(&shared,
             "HSET %slock:huge worker_id w node_id n token 99999999999999999 "
             "claimed_at 1 heartbeat_at 1 lock_timeout_ms 1000 task_info {} nonce x",
             prefix);
    assert_int_equal(try_acquire(m, "huge", TL_FAIL_FAST), TL_ESTORE);
    assert_contains(tl_errmsg(m), "field token");
    admin_ok(&shared,
             "HSET %slock:nonode worker_id w token 5 claimed_at 1 heartbeat_at 1 "
             "lock_timeout_ms 1000 task_info {} nonce x",
             prefix);
    assert_int_equal(tl_inspect(m, "nonode", &info), TL_ESTORE);
    assert_contains(tl_errmsg(m), "node_id");
    admin_ok(&shared, "HSET %slock:foreign colour blue", prefix);
    assert_int_equal(tl_inspect(m, "foreign", &info), TL_ESTORE);
    assert_contains(tl_errmsg(m), "without any tasklock field");
    /* Fields Lua accepts but C checks: ids, timeouts, task_info. */
    admin_ok(&shared,
             "HSET %slock:json worker_id w node_id n token 5 claimed_at 1 "
             "heartbeat_at 1 lock_timeout_ms 1000 task_info notjson nonce x",
             prefix);
    assert_int_equal(try_acquire(m, "json", TL_FAIL_FAST), TL_ESTORE);
    assert_contains(tl_errmsg(m), "task_info");
    admin_ok(&shared,
             "HSET %slock:id worker_id %s node_id n token 5 claimed_at 1 "
             "heartbeat_at 1 lock_timeout_ms 1000 task_info {} nonce x",
             prefix, "bad\x01id");
    assert_int_equal(tl_inspect(m, "id", &info), TL_ESTORE);
    assert_contains(tl_errmsg(m), "worker_id");
    admin_ok(&shared,
             "HSET %slock:tmo worker_id w node_id n token 5 claimed_at 1 "
             "heartbeat_at 1 lock_timeout_ms 9999999999 task_info {} nonce x",
             prefix);
    assert_int_equal(tl_inspect(m, "tmo", &info), TL_ESTORE);
    assert_contains(tl_errmsg(m), "lock_timeout_ms");

    /* A token counter that is not one. */
    admin_ok(&shared, "RPUSH %stoken:ctr x", prefix);
    assert_int_equal(try_acquire(m, "ctr", TL_FAIL_FAST), TL_ESTORE);
    assert_contains(tl_errmsg(m), "token:ctr");
    admin_ok(&shared, "SET %stoken:ctr2 12abc", prefix);
    assert_int_equal(try_acquire(m, "ctr2", TL_FAIL_FAST), TL_ESTORE);
    assert_contains(tl_errmsg(m), "not a token counter");

    /* A history entry that is not an event. */
    admin_ok(&shared, "XADD %shistory * colour blue", prefix);
    assert_int_equal(tl_history(m, NULL, 10, &ev, &n), TL_ESTORE);
    assert_contains(tl_errmsg(m), "not a tasklock event");
    assert_null(ev);
    admin_ok(&shared, "DEL %shistory", prefix);
    admin_ok(&shared, "SET %shistory x", prefix);
    assert_int_equal(tl_history(m, "str", 10, &ev, &n), TL_ESTORE);
    assert_contains(tl_errmsg(m), "WRONGTYPE");

    tl_manager_free(m);
}

/* ---- a server that answers nonsense ---- */

enum nonsense { ANSWER_INTEGER, ANSWER_JUNK, ANSWER_SHA };

struct fake {
    int listen_fd;
    int port;
    enum nonsense mode;
    pthread_t thread;
    _Atomic bool stop;
};

static void fake_answer(int fd, enum nonsense mode, int commands)
{
    static const char sha[] = "$40\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    const char *ans = mode == ANSWER_INTEGER ? ":42\r\n" : mode == ANSWER_JUNK ? "hello\r\n" : sha;

    for (int i = 0; i < commands; i++) {
        if (send(fd, ans, strlen(ans), MSG_NOSIGNAL) < 0)
            return;
    }
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    static char buf[256 * 1024];

    while (!f->stop) {
        struct pollfd p = {.fd = f->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(f->listen_fd, NULL, NULL);
        if (c < 0)
            continue;
        char before2 = '\r', before1 = '\n'; /* a command is a '*' after "\r\n" */
        while (!f->stop) {
            struct pollfd q = {.fd = c, .events = POLLIN};
            if (poll(&q, 1, 50) <= 0)
                continue;
            ssize_t n = recv(c, buf, sizeof(buf), 0);
            if (n <= 0)
                break;
            int commands = 0;
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] == '*' && before2 == '\r' && before1 == '\n')
                    commands++;
                before2 = before1;
                before1 = buf[i];
            }
            fake_answer(c, f->mode, commands);
        }
        close(c);
    }
    return NULL;
}

static void fake_start(struct fake *f, enum nonsense mode)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->listen_fd >= 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->listen_fd, 8), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    f->stop = true;
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

static tl_manager *fake_manager(const struct fake *f)
{
    char url[128];
    (void)snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0?timeout=500ms", f->port);
    const struct tl_options o = {.store_url = url, .worker_id = "faults", .node_id = "n"};
    tl_manager *m = tl_manager_new(&o);

    assert_non_null(m);
    return m;
}

static void nonsense_answers_give_clear_errors(void **state)
{
    struct fake f;
    tl_manager *m;

    (void)state;
    /* An integer to everything: the script loads fail. */
    fake_start(&f, ANSWER_INTEGER);
    m = fake_manager(&f);
    assert_int_equal(tl_connect(m), TL_ESTORE);
    assert_contains(tl_errmsg(m), "unexpected reply");
    assert_contains(tl_errmsg(m), "integer 42");
    tl_manager_free(m);
    fake_stop(&f);

    /* Not RESP at all. */
    fake_start(&f, ANSWER_JUNK);
    m = fake_manager(&f);
    assert_int_equal(tl_connect(m), TL_ESTORE);
    assert_contains(tl_errmsg(m), "RESP");
    tl_manager_free(m);
    fake_stop(&f);

    /* Plausible script hashes, then strings where arrays should be: every op says so. */
    fake_start(&f, ANSWER_SHA);
    m = fake_manager(&f);
    assert_int_equal(tl_connect(m), TL_OK);
    assert_int_equal(try_acquire(m, "k", TL_FAIL_FAST), TL_ESTORE);
    assert_contains(tl_errmsg(m), "unexpected reply");
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(m, "k", &info), TL_ESTORE);
    assert_contains(tl_errmsg(m), "unexpected reply");
    struct tl_info **infos = NULL;
    size_t n = 0;
    assert_int_equal(tl_list(m, &infos, &n), TL_ESTORE);
    assert_contains(tl_errmsg(m), "unexpected reply");
    struct tl_event **ev = NULL;
    assert_int_equal(tl_history(m, NULL, 5, &ev, &n), TL_ESTORE);
    assert_contains(tl_errmsg(m), "unexpected reply");
    assert_int_equal(tl_release_token(m, "k", 7, NULL), TL_ESTORE);
    /* The wait op too: its SUBSCRIBE gets a string, and the manager would sleep instead. */
    assert_int_equal(m->store->ops->wait(m->store, "k", 100), TL_ESTORE);
    assert_int_equal(stats_of(m).wait_failures, 1);
    tl_manager_free(m);
    fake_stop(&f);
}

/* ---- wake-ups ---- */

struct releaser {
    redisContext *monitor; /* MONITOR connection, or NULL: release after fixed_delay_ms */
    const char *needle;    /* the waiter's re-check, as MONITOR shows it */
    tl_lock *lock;
    uint32_t fixed_delay_ms;
    bool saw_recheck;
    tl_status st;
};

/* Releases the lock once the waiter has subscribed and re-checked the key (MONITOR shows its
 * EXISTS), so that only the release's message can wake it. */
static void *release_after_recheck(void *arg)
{
    struct releaser *r = arg;

    if (r->monitor == NULL)
        tl__real_sleep_ms(r->fixed_delay_ms);
    for (int i = 0; r->monitor != NULL && i < 10000 && !r->saw_recheck; i++) {
        void *reply = NULL;
        if (redisGetReply(r->monitor, &reply) != REDIS_OK)
            break;
        const redisReply *rep = reply;
        r->saw_recheck = rep->type == REDIS_REPLY_STATUS && strstr(rep->str, r->needle) != NULL;
        freeReplyObject(reply);
    }
    r->st = tl_release(r->lock, "wake up");
    return NULL;
}

static void a_release_wakes_a_waiter_at_once(void **state)
{
    char prefix[64], needle[160];
    pthread_t t;

    (void)state;
    new_prefix(prefix, "wake");
    (void)snprintf(needle, sizeof(needle), "\"EXISTS\" \"%slock:wk\"", prefix);
    tl_manager *holder = manager(&shared, prefix, &(struct mopts){.worker = "holder"}, true);
    tl_manager *waiter =
        manager(&shared, prefix,
                &(struct mopts){.worker = "waiter", .backoff_ms = 5000, .no_line = true}, true);
    tl_lock *hl = must_acquire(holder, "wk", TL_FAIL_FAST), *wl = NULL;

    struct releaser r = {.monitor = admin_connect(&shared), .needle = needle, .lock = hl};
    assert_non_null(r.monitor);
    redisReply *ok = redisCommand(r.monitor, "MONITOR");
    assert_non_null(ok);
    assert_int_equal(ok->type, REDIS_REPLY_STATUS);
    freeReplyObject(ok);
    assert_int_equal(pthread_create(&t, NULL, release_after_recheck, &r), 0);
    int64_t t0 = tl__real_mono_ms();
    tl_status st = tl_acquire(waiter, "wk", NULL, &wl); /* TL_RETRY, backoff 5 s */
    int64_t took = tl__real_mono_ms() - t0;
    pthread_join(t, NULL);
    redisFree(r.monitor);
    if (st != TL_OK)
        fail_msg("waiter: %s", tl_errmsg(waiter));
    assert_true(r.saw_recheck);
    assert_int_equal(r.st, TL_OK);

    /* One retry, woken by the release's message: not by the 3.75-6.25 s backoff running out. */
    struct tl_redis_stats ws = stats_of(waiter);
    assert_int_equal(metrics(waiter).total_retries, 1);
    assert_int_equal(ws.waits, 1);
    assert_int_equal(ws.woke_by_message, 1);
    assert_int_equal(ws.woke_by_timeout, 0);
    assert_int_equal(ws.woke_by_recheck, 0);
    assert_int_equal(ws.wait_failures, 0);
    print_message("waiter acquired %lld ms after it started (backoff would have been >= 3750 ms)\n",
                  (long long)took);

    assert_true(tl_lock_token(wl) > tl_lock_token(hl));
    assert_int_equal(tl_release(wl, NULL), TL_OK);
    tl_lock_free(wl);
    tl_lock_free(hl);
    tl_manager_free(holder);
    tl_manager_free(waiter);
}

static void a_wait_rechecks_the_key_after_subscribing(void **state)
{
    char prefix[64];

    (void)state;
    new_prefix(prefix, "recheck");
    tl_manager *a = manager(&shared, prefix, &(struct mopts){.worker = "a"}, true);
    tl_manager *b = manager(&shared, prefix, &(struct mopts){.worker = "b"}, true);
    struct tl_store *s = a->store;

    /* Released before the waiter subscribed (here: never held): noticed at once, not after the
     * 5 s the caller asked to wait. */
    assert_int_equal(s->ops->wait(s, "free-key", 5000), TL_OK);
    assert_int_equal(stats_of(a).woke_by_recheck, 1);
    assert_int_equal(stats_of(a).woke_by_timeout, 0);

    /* Held, and nobody releases: the wait times out. */
    tl_lock *l = must_acquire(b, "held-key", TL_FAIL_FAST);
    assert_int_equal(s->ops->wait(s, "held-key", 100), TL_OK);
    assert_int_equal(stats_of(a).woke_by_timeout, 1);
    /* A message for another key does not wake us; the subscriber connection is reused. */
    assert_int_equal(s->ops->wait(s, "held-key", 100), TL_OK);
    assert_int_equal(stats_of(a).woke_by_timeout, 2);
    assert_int_equal(stats_of(a).wait_failures, 0);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    assert_int_equal(s->ops->wait(s, "held-key", 5000), TL_OK);
    assert_int_equal(stats_of(a).woke_by_recheck, 2);

    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void a_refused_subscription_falls_back_to_sleeping(void **state)
{
    char prefix[64];
    pthread_t t;

    (void)state;
    new_prefix(prefix, "nochan");
    /* A user without pub/sub channel rights: SUBSCRIBE is refused, PUBLISH too. */
    admin_ok(&shared, "ACL SETUSER nochan on >n0chan-Pa55 ~* resetchannels +@all");
    tl_manager *holder =
        manager(&shared, prefix,
                &(struct mopts){.worker = "holder", .userinfo = "nochan:n0chan-Pa55"}, true);
    tl_manager *waiter = manager(&shared, prefix,
                                 &(struct mopts){.worker = "waiter",
                                                 .userinfo = "nochan:n0chan-Pa55",
                                                 .backoff_ms = 200,
                                                 .no_line = true},
                                 true);
    tl_lock *hl = must_acquire(holder, "nk", TL_FAIL_FAST), *wl = NULL;

    struct releaser r = {.lock = hl, .fixed_delay_ms = 300};
    assert_int_equal(pthread_create(&t, NULL, release_after_recheck, &r), 0);
    tl_status st = tl_acquire(waiter, "nk", NULL, &wl);
    pthread_join(t, NULL);
    if (st != TL_OK)
        fail_msg("waiter: %s", tl_errmsg(waiter));
    assert_int_equal(r.st, TL_OK); /* the release's PUBLISH failed, the release did not */

    struct tl_redis_stats ws = stats_of(waiter);
    assert_true(ws.wait_failures >= 1);
    assert_int_equal(ws.woke_by_message, 0);
    assert_true(metrics(waiter).total_retries >= 1);
    assert_true(log_contains("wake-up wait failed"));
    assert_int_equal(tl_release(wl, NULL), TL_OK);
    tl_lock_free(wl);
    tl_lock_free(hl);
    tl_manager_free(holder);
    tl_manager_free(waiter);
    admin_ok(&shared, "ACL DELUSER nochan");
}

/* The line: the head is woken through its own list (BLPOP), not by the backoff running out. */
static void a_release_wakes_the_head_of_the_line_at_once(void **state)
{
    char prefix[64], needle[160];
    pthread_t t;

    (void)state;
    new_prefix(prefix, "linewake");
    (void)snprintf(needle, sizeof(needle), "\"BLPOP\" \"%swake:lk:", prefix);
    tl_manager *holder = manager(&shared, prefix, &(struct mopts){.worker = "holder"}, true);
    tl_manager *waiter =
        manager(&shared, prefix, &(struct mopts){.worker = "waiter", .backoff_ms = 5000}, true);
    tl_lock *hl = must_acquire(holder, "lk", TL_FAIL_FAST), *wl = NULL;

    struct releaser r = {.monitor = admin_connect(&shared), .needle = needle, .lock = hl};
    assert_non_null(r.monitor);
    redisReply *ok = redisCommand(r.monitor, "MONITOR");
    assert_non_null(ok);
    assert_int_equal(ok->type, REDIS_REPLY_STATUS);
    freeReplyObject(ok);
    assert_int_equal(pthread_create(&t, NULL, release_after_recheck, &r), 0);
    int64_t t0 = tl__real_mono_ms();
    tl_status st = tl_acquire(waiter, "lk", NULL, &wl);
    int64_t took = tl__real_mono_ms() - t0;
    pthread_join(t, NULL);
    redisFree(r.monitor);
    if (st != TL_OK)
        fail_msg("waiter: %s", tl_errmsg(waiter));
    assert_true(r.saw_recheck); /* the release came while the waiter was in BLPOP */
    assert_int_equal(r.st, TL_OK);
    assert_int_equal(metrics(waiter).wakeups, 1);
    assert_int_equal(metrics(waiter).queued, 1);
    assert_int_equal(stats_of(waiter).waits, 0); /* no SUBSCRIBE */
    print_message("the head acquired %lld ms after it started\n", (long long)took);
    if (took > 3000)
        fail_msg("the head waited %lld ms: not woken by the release", (long long)took);
    assert_true(tl_lock_token(wl) > tl_lock_token(hl));
    /* Won: nothing of the waiter is left. */
    assert_int_equal(admin_int(&shared, "EXISTS %sline:lk %swaiters:lk", prefix, prefix), 0);
    assert_int_equal(tl_release(wl, NULL), TL_OK);
    tl_lock_free(wl);
    tl_lock_free(hl);
    tl_manager_free(holder);
    tl_manager_free(waiter);
}

/* Garbage in a key's line: where the line's keys should be, a clear error (FORCE passes it);
 * a waiter whose fields cannot be read counts as dead, and is deleted. */
static void garbage_in_the_line(void **state)
{
    char prefix[64], k[128];

    (void)state;
    new_prefix(prefix, "linegarbage");
    tl_manager *m = manager(&shared, prefix, &(struct mopts){0}, true);

    admin_ok(&shared, "SET %sline:gl garbage", prefix);
    assert_int_equal(try_acquire(m, "gl", TL_FAIL_FAST), TL_ESTORE);
    (void)snprintf(k, sizeof(k), "%sline:gl", prefix);
    assert_contains(tl_errmsg(m), k);
    assert_contains(tl_errmsg(m), "not a tasklock record");
    assert_int_equal(try_acquire(m, "gl", TL_FORCE_ACQUIRE), TL_OK);

    admin_ok(&shared, "ZADD %sline:gw 1 w1 2 w2", prefix);
    admin_ok(&shared, "HSET %swaiters:gw w1 nonsense", prefix); /* w2: no fields at all */
    struct tl_waiter **w = NULL;
    size_t n = 0;
    assert_int_equal(tl_waiters(m, "gw", &w, &n), TL_OK);
    assert_int_equal(n, 0); /* unreadable ones are not listed */
    tl_waiter_array_free(w, n);
    assert_int_equal(try_acquire(m, "gw", TL_FAIL_FAST), TL_OK);
    assert_int_equal(admin_int(&shared, "EXISTS %sline:gw %swaiters:gw", prefix, prefix), 0);
    tl_manager_free(m);
}

/* A server that stops answering cannot hold a wait in line past its time: wait_turn returns
 * (not woken) by its timeout or its deadline, and a later call reconnects. */
static void a_hung_server_cannot_hold_a_wait_in_line(void **state)
{
    char prefix[64];
    bool woken = true;

    (void)state;
    new_prefix(prefix, "hungline");
    tl_manager *m = manager(&shared, prefix, &(struct mopts){.params = "timeout=5s"}, true);
    struct tl_store *s = m->store;
    struct tl_info *info = NULL;

    assert_int_equal(tl_inspect(m, "k", &info), TL_OK); /* connected */
    assert_int_equal(kill(shared.pid, SIGSTOP), 0);
    int64_t t0 = tl__real_mono_ms();
    s->deadline_mono_ms = 0;
    tl_status st = s->ops->wait_turn(s, "k", "0123456789abcdef0123456789abcdef", 300, &woken);
    int64_t took = tl__real_mono_ms() - t0;
    /* With a deadline shorter than the timeout, by the deadline. */
    woken = true;
    int64_t t1 = tl__real_mono_ms();
    s->deadline_mono_ms = m->clock.mono_ms(m->clock.ud) + 200;
    tl_status st2 = s->ops->wait_turn(s, "k", "0123456789abcdef0123456789abcdef", 5000, &woken);
    int64_t took2 = tl__real_mono_ms() - t1;
    s->deadline_mono_ms = 0;
    assert_int_equal(kill(shared.pid, SIGCONT), 0);

    assert_int_equal(st, TL_OK);
    /* The first wait dropped the blocked connection; the second cannot set up a new one with a
     * hung server, and says so (the caller then sleeps), but by its deadline all the same. */
    assert_true(st2 == TL_OK || st2 == TL_ETIMEDOUT);
    assert_false(woken);
    if (took < 250 || took > 2000)
        fail_msg("a wait of 300 ms took %lld ms", (long long)took);
    if (took2 > 1500)
        fail_msg("a wait with a deadline 200 ms away took %lld ms", (long long)took2);
    assert_int_equal(tl_inspect(m, "k", &info), TL_OK);
    assert_null(info);
    assert_true(stats_of(m).reconnects >= 1);
    tl_manager_free(m);
}

/* ---- scripts, hangs, outages, restarts ---- */

static void lost_scripts_are_loaded_again(void **state)
{
    char prefix[64];

    (void)state;
    new_prefix(prefix, "noscript");
    tl_manager *m = manager(&shared, prefix, &(struct mopts){0}, true);
    tl_lock *l = must_acquire(m, "ns", TL_FAIL_FAST);

    admin_ok(&shared, "SCRIPT FLUSH");
    assert_int_equal(tl_renew(l), TL_OK);
    assert_int_equal(stats_of(m).script_reloads, 1);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    assert_int_equal(stats_of(m).script_reloads, 2);
    assert_int_equal(stats_of(m).reconnects, 0);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void a_hung_server_times_out_and_the_next_call_reconnects(void **state)
{
    char prefix[64];
    struct tl_info *info = NULL;

    (void)state;
    new_prefix(prefix, "hung");
    tl_manager *m = manager(&shared, prefix, &(struct mopts){.params = "timeout=300ms"}, true);

    assert_int_equal(kill(shared.pid, SIGSTOP), 0);
    int64_t t0 = tl__real_mono_ms();
    tl_status st = tl_inspect(m, "k", &info);
    int64_t took = tl__real_mono_ms() - t0;
    assert_int_equal(kill(shared.pid, SIGCONT), 0);

    assert_int_equal(st, TL_ETIMEDOUT);
    assert_contains(tl_errmsg(m), "no answer within 300 ms");
    if (took < 250 || took > 3000)
        fail_msg("the timeout of 300 ms took %lld ms", (long long)took);
    assert_int_equal(tl_inspect(m, "k", &info), TL_OK);
    assert_null(info);
    assert_int_equal(stats_of(m).reconnects, 1);
    tl_manager_free(m);
}

/*
 * A server that stops answering (SIGSTOP: connections stay open, nothing comes back) cannot hold
 * a renew past the lock's loss deadline, whatever the store's own timeout (20 s here): the renew
 * gives up by the deadline, on the heartbeat thread and on the caller's, and the lock is declared
 * lost on time. Before, a renew waited out the store's timeout and was then retried once more.
 */
static void a_hung_server_cannot_hold_a_renew_past_the_loss_deadline(void **state)
{
    char prefix[64];
    struct tl_test_lost seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

    (void)state;
    new_prefix(prefix, "deadline");
    tl_manager *m = manager(
        &shared, prefix,
        &(struct mopts){
            .lock_timeout_ms = 1500, .heartbeat_ms = 400, .params = "timeout=20s", .lost = &seen},
        true);
    tl_lock *l = must_acquire(m, "k", TL_FAIL_FAST);
    int64_t t0 = tl__real_mono_ms(); /* the loss deadline is at most 1.4 s from here */

    assert_int_equal(kill(shared.pid, SIGSTOP), 0);
    tl_status st = tl_renew(l);
    int64_t renew_took = tl__real_mono_ms() - t0;
    bool fired = tl_test_poll(tl_test_lost_fired, &seen, 10, 15000);
    int64_t lost_after = tl__real_mono_ms() - t0;
    assert_int_equal(kill(shared.pid, SIGCONT), 0);

    assert_true(fired);
    assert_true(st == TL_ETIMEDOUT || st == TL_ELOST);
    if (renew_took > 5000)
        fail_msg("a renew took %lld ms against a hung server: not bound by its loss deadline",
                 (long long)renew_took);
    if (lost_after > 5000)
        fail_msg("declared lost %lld ms after the server hung, its deadline was 1.4 s",
                 (long long)lost_after);
    assert_true(tl_lock_is_lost(l));
    assert_true(log_contains("lock lost"));
    /* The server is back and no one took the lock: releasing it frees the record. */
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

static bool heartbeats_at_least(tl_manager *m, uint64_t n)
{
    return metrics(m).heartbeats_sent >= n;
}

struct hb_wait {
    tl_manager *m;
    uint64_t n;
};

static bool hb_reached(void *arg)
{
    struct hb_wait *w = arg;

    return heartbeats_at_least(w->m, w->n);
}

static void an_outage_reports_the_lock_lost_after_its_timeout(void **state)
{
    struct server s;
    char prefix[64];
    struct tl_test_lost seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct tl_info *info = NULL;

    (void)state;
    server_start(&s, false, NULL);
    new_prefix(prefix, "outage");
    tl_manager *m = manager(
        &s, prefix,
        &(struct mopts){
            .lock_timeout_ms = 1500, .heartbeat_ms = 100, .params = "timeout=200ms", .lost = &seen},
        true);
    tl_lock *l = must_acquire(m, "ok", TL_FAIL_FAST);
    struct hb_wait w = {.m = m, .n = 2};
    assert_true(tl_test_poll(hb_reached, &w, 10, 10000));

    server_kill(&s, SIGKILL);
    int64_t t0 = tl__real_mono_ms();
    /* The calling thread: a clear error, within its time, while the server is down. */
    assert_int_equal(tl_inspect(m, "ok", &info), TL_ESTORE);
    assert_contains(tl_errmsg(m), "refused");
    assert_true(tl__real_mono_ms() - t0 < 2000);

    /* The heartbeat keeps trying, and gives the lock up once its timeout has passed. */
    assert_true(tl_test_poll(tl_test_lost_fired, &seen, 10, 15000));
    int64_t after = tl__real_mono_ms() - t0;
    if (after < 1000)
        fail_msg("lost after %lld ms, before its lock timeout of 1500 ms", (long long)after);
    assert_true(tl_lock_is_lost(l));
    assert_true(metrics(m).heartbeats_failed >= 1);
    assert_int_equal(metrics(m).locks_lost, 1);
    assert_true(log_contains("no successful renew"));

    /* The server comes back (empty): the next call reconnects. */
    server_spawn(&s);
    assert_int_equal(tl_inspect(m, "ok", &info), TL_OK);
    assert_null(info);
    assert_true(stats_of(m).reconnects >= 1);
    assert_int_equal(tl_renew(l), TL_ELOST);
    tl_lock_free(l);
    tl_manager_free(m);
    server_stop(&s);
}

static uint64_t counter_of(const struct server *s, const char *prefix, const char *key)
{
    redisReply *r = admin(s, "GET %stoken:%s", prefix, key);
    uint64_t v = 0;

    if (r->type == REDIS_REPLY_STRING)
        v = strtoull(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

static void a_restart_without_persistence_loses_the_lock_but_not_the_token_order(void **state)
{
    struct server s;
    char prefix[64];
    struct tl_test_lost seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

    (void)state;
    server_start(&s, false, NULL);
    new_prefix(prefix, "wipe");
    tl_manager *a =
        manager(&s, prefix,
                &(struct mopts){
                    .worker = "a", .lock_timeout_ms = 10000, .heartbeat_ms = 100, .lost = &seen},
                true);
    tl_manager *b = manager(&s, prefix, &(struct mopts){.worker = "b"}, true);
    tl_lock *la = must_acquire(a, "wk", TL_FAIL_FAST);
    uint64_t t1 = tl_lock_token(la);

    server_restart(&s); /* --save '' --appendonly no: everything is gone */
    assert_int_equal(counter_of(&s, prefix, "wk"), 0);

    /* The holder is told: its next renew finds no record. */
    assert_true(tl_test_poll(tl_test_lost_fired, &seen, 10, 15000));
    assert_true(tl_lock_is_lost(la));
    assert_int_equal(metrics(a).locks_lost, 1);

    /* The counter was wiped, yet the next token is larger: tokens carry the server time. */
    tl_lock *lb = must_acquire(b, "wk", TL_FAIL_FAST);
    assert_true(tl_lock_token(lb) > t1);
    assert_int_equal(tl_release(la, NULL), TL_ENOTOWNER);
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
    server_stop(&s);
}

static void a_restart_with_persistence_keeps_the_lock(void **state)
{
    struct server s;
    char prefix[64];
    struct tl_test_lost seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct tl_info *info = NULL;

    (void)state;
    server_start(&s, true, NULL); /* appendonly yes, appendfsync always */
    new_prefix(prefix, "aof");
    tl_manager *a =
        manager(&s, prefix,
                &(struct mopts){
                    .worker = "a", .lock_timeout_ms = 10000, .heartbeat_ms = 100, .lost = &seen},
                true);
    tl_manager *b = manager(&s, prefix, &(struct mopts){.worker = "b"}, true);
    tl_lock *la = must_acquire(a, "pk", TL_FAIL_FAST);
    uint64_t t1 = tl_lock_token(la);

    server_restart(&s); /* SIGKILL, then start again on the same files */
    assert_int_equal(counter_of(&s, prefix, "pk"), t1);

    /* The heartbeat reconnects and goes on renewing; the lock was never lost. */
    struct hb_wait w = {.m = a, .n = metrics(a).heartbeats_sent + 3};
    assert_true(tl_test_poll(hb_reached, &w, 10, 15000));
    assert_false(tl_test_lost_fired(&seen));
    assert_false(tl_lock_is_lost(la));
    assert_int_equal(tl_renew(la), TL_OK);

    /* Still held for everyone else, with the same token. */
    assert_int_equal(try_acquire(b, "pk", TL_FAIL_FAST), TL_EBUSY);
    assert_non_null(tl_last_holder(b));
    assert_int_equal(tl_last_holder(b)->token, t1);
    assert_int_equal(tl_inspect(b, "pk", &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->worker_id, "a");
    tl_info_free(info);

    assert_int_equal(tl_release(la, NULL), TL_OK);
    tl_lock *lb = must_acquire(b, "pk", TL_FAIL_FAST);
    assert_true(tl_lock_token(lb) > t1);
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
    server_stop(&s);
}

static void the_history_is_capped(void **state)
{
    char prefix[64];
    struct tl_event **ev = NULL;
    size_t n = 0;

    (void)state;
    new_prefix(prefix, "cap");
    tl_manager *m = manager(&shared, prefix, &(struct mopts){.params = "history_max=5"}, true);
    for (int i = 0; i < 300; i++) {
        tl_lock *l = must_acquire(m, "capped", TL_FAIL_FAST);
        assert_int_equal(tl_release(l, NULL), TL_OK);
        tl_lock_free(l);
    }
    /* MAXLEN ~ trims whole stream nodes (100 entries by default): far fewer than 600 stay. */
    redisReply *r = admin(&shared, "XLEN %shistory", prefix);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer < 300);
    freeReplyObject(r);
    assert_int_equal(tl_history(m, "capped", 4, &ev, &n), TL_OK);
    assert_int_equal(n, 4);
    assert_int_equal(ev[3]->kind, TL_EVENT_RELEASED);
    assert_true(ev[0]->at_ms <= ev[3]->at_ms);
    tl_event_array_free(ev, n);
    tl_manager_free(m);

    m = manager(&shared, prefix, &(struct mopts){.params = "history_max=0"}, true);
    assert_int_equal(tl_history(m, NULL, 4, &ev, &n), TL_ENOTSUP);
    tl_manager_free(m);
}

static int setup(void **state)
{
    (void)state;
    server_start(&shared, false, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    server_stop(&shared);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connection_refused_fails_fast_and_clearly),
        cmocka_unit_test(bad_urls_are_refused_without_showing_the_password),
        cmocka_unit_test(auth_with_password_and_acl_user),
        cmocka_unit_test(garbage_records_give_clear_errors),
        cmocka_unit_test(nonsense_answers_give_clear_errors),
        cmocka_unit_test(a_release_wakes_a_waiter_at_once),
        cmocka_unit_test(a_wait_rechecks_the_key_after_subscribing),
        cmocka_unit_test(a_refused_subscription_falls_back_to_sleeping),
        cmocka_unit_test(a_release_wakes_the_head_of_the_line_at_once),
        cmocka_unit_test(garbage_in_the_line),
        cmocka_unit_test(a_hung_server_cannot_hold_a_wait_in_line),
        cmocka_unit_test(lost_scripts_are_loaded_again),
        cmocka_unit_test(a_hung_server_times_out_and_the_next_call_reconnects),
        cmocka_unit_test(a_hung_server_cannot_hold_a_renew_past_the_loss_deadline),
        cmocka_unit_test(an_outage_reports_the_lock_lost_after_its_timeout),
        cmocka_unit_test(a_restart_without_persistence_loses_the_lock_but_not_the_token_order),
        cmocka_unit_test(a_restart_with_persistence_keeps_the_lock),
        cmocka_unit_test(the_history_is_capped),
    };

    if (!find_redis_server()) {
        (void)fprintf(stderr, "redis faults: redis-server not found; skipped\n");
        return 77;
    }
    (void)signal(SIGPIPE, SIG_DFL); /* the store must not need SIGPIPE ignored */
    return cmocka_run_group_tests_name("redis faults", tests, setup, teardown);
}

#endif /* TL_WITH_REDIS */
