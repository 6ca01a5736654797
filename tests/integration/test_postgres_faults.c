/*
 * test_postgres_faults.c -- the PostgreSQL store under faults, on a private server of its own
 * (started once for the whole file with tests/harness/start-postgres, in a temporary directory,
 * on a free port, with password authentication; stopped by its PID): server restarts and
 * outages while a lock is held, wake-up on release, transaction-pooler safety, passwords in
 * URLs, refused connections, statement timeouts, broken sessions and damaged rows.
 *
 * Skipped (77) when the PostgreSQL server binaries are not installed, or when TL_TEST_POSTGRES_URI
 * is unset and TL_TEST_POSTGRES_PRIVATE is not 1 (so that a plain `ctest` on a machine without
 * the test servers does not fail).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager.h"
#include "stores/postgres.h"
#include "tasklock.h"
#include "tl_test.h"

/* The password of the private server, as typed and as written in a URL. */
#define PASSWORD          "Tl-s3cret@pg!"
#define PASSWORD_URL      "Tl-s3cret%40pg%21"
#define PASSWORD_RAW_PART "s3cret" /* a piece of it that must not appear either */

static char *dir;       /* the server's directory */
static char url[512];   /* with the password */
static char admin[512]; /* over the Unix socket, where authentication is trust */
static int port;
static char run_id[32];

/* ---- the private server ---- */

static char *script_path(void)
{
    char buf[1024];
    const char *slash = strrchr(__FILE__, '/');

    if (slash == NULL)
        return strdup("tests/harness/start-postgres");
    (void)snprintf(buf, sizeof(buf), "%.*s/../harness/start-postgres", (int)(slash - __FILE__),
                   __FILE__);
    return strdup(buf);
}

/* Runs start-postgres on `dir`; true when the server is up. */
static bool server_start(void)
{
    char cmd[2048], line[512];
    char *script = script_path();
    bool up = false;

    (void)snprintf(cmd, sizeof(cmd), "TL_PG_PASSWORD='%s' '%s' '%s'", PASSWORD, script, dir);
    free(script);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return false;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strncmp(line, "TL_TEST_POSTGRES_URI=", 21) == 0)
            up = true;
    }
    return pclose(p) == 0 && up;
}

/* The first line of DIR/NAME as a number; 0 if missing. */
static long read_number(const char *name)
{
    char path[600], line[64] = "";
    long v = 0;

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fgets(line, sizeof(line), f) != NULL)
        v = strtol(line, NULL, 10);
    (void)fclose(f);
    return v;
}

static pid_t server_pid(void)
{
    return (pid_t)read_number("pid");
}

/* Fast shutdown (SIGINT: sessions are ended, data flushed), waiting until it is gone. */
static void server_stop(void)
{
    pid_t pid = server_pid();

    if (pid <= 0 || kill(pid, SIGINT) != 0)
        return;
    for (int i = 0; i < 600 && kill(pid, 0) == 0; i++)
        tl__real_sleep_ms(50);
    if (kill(pid, 0) == 0)
        (void)kill(pid, SIGKILL);
}

static int group_setup(void **state)
{
    (void)state;
    dir = tl_test_mkdtemp();
    if (dir == NULL || chmod(dir, 0777) != 0)
        return -1;
    if (!server_start()) {
        (void)fprintf(stderr,
                      "test_postgres_faults: the private server did not start (see %s/log)\n", dir);
        return -1;
    }
    port = (int)read_number("port");
    (void)snprintf(url, sizeof(url), "postgresql://tasklock:%s@127.0.0.1:%d/tasklock", PASSWORD_URL,
                   port);
    (void)snprintf(admin, sizeof(admin), "host=%s port=%d user=tasklock dbname=tasklock", dir,
                   port);
    (void)snprintf(run_id, sizeof(run_id), "%lx", (unsigned long)getpid());
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop();
    tl_test_rmtree(dir);
    free(dir);
    return 0;
}

/* ---- helpers ---- */

/* A blocking libpq connection of the test's own, as the superuser over the socket. */
static PGconn *admin_conn(void)
{
    PGconn *c = PQconnectdb(admin);

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("admin connection: %s", PQerrorMessage(c));
    return c;
}

static void admin_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static const char *key(const char *name, char buf[128])
{
    (void)snprintf(buf, 128, "f-%s-%s", run_id, name);
    return buf;
}

struct opts {
    const char *url;
    const char *worker;
    uint32_t timeout_ms;
    uint32_t heartbeat_ms;
    uint32_t backoff_ms;
    tl_lost_fn *on_lost;
    void *ud;
    tl_log_fn *log;
    void *log_ud;
    bool no_line;
};

static tl_manager *mgr_with(const struct opts *o)
{
    const struct tl_options to = {
        .store_url = o->url ? o->url : url,
        .worker_id = o->worker,
        .node_id = "faults-node",
        .lock_timeout_ms = o->timeout_ms ? o->timeout_ms : 60000,
        .heartbeat_ms = o->heartbeat_ms,
        .backoff_initial_ms = o->backoff_ms ? o->backoff_ms : 10,
        .backoff_max_ms = o->backoff_ms ? o->backoff_ms : 50,
        .max_retries = 10,
        .on_lost = o->on_lost,
        .lost_ud = o->ud,
        .log = o->log,
        .log_ud = o->log_ud,
        .log_level = o->log ? TL_LOG_DEBUG : 0,
        .no_line = o->no_line,
    };
    tl_manager *m = tl_manager_new(&to);

    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

static tl_manager *mgr(const char *worker)
{
    const struct opts o = {.worker = worker};
    return mgr_with(&o);
}

static tl_lock *must_acquire(tl_manager *m, const char *k, tl_strategy strategy)
{
    const struct tl_acquire_opts o = {.strategy = strategy, .retries = TL_NO_RETRIES};
    tl_lock *l = NULL;

    if (tl_acquire(m, k, &o, &l) != TL_OK)
        fail_msg("acquire %s: %s", k, tl_errmsg(m));
    return l;
}

static struct tl_metrics metrics(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt;
}

static bool no_secret(const char *text)
{
    return strstr(text, PASSWORD) == NULL && strstr(text, PASSWORD_URL) == NULL &&
           strstr(text, PASSWORD_RAW_PART) == NULL;
}

/* A port on 127.0.0.1 that nothing listens on (bound, then closed). */
static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- tests ---- */

/* Many processes opening a fresh schema at once: the tables are created exactly once, and
 * nobody fails on a catalog race. First in the file, while the process has no threads. */
static void processes_creating_the_tables_at_once_all_succeed(void **state)
{
    enum { N = 8 };
    char schema_url[1024];
    int go[2];
    pid_t pids[N];

    (void)state;
    (void)snprintf(schema_url, sizeof(schema_url), "%s?schema=race_%s", url, run_id);
    assert_int_equal(pipe(go), 0);
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 0) /* EOF: the parent let everyone go at once */
                _exit(2);
            const struct tl_options o = {.store_url = schema_url, .worker_id = "racer"};
            tl_manager *m = tl_manager_new(&o);
            int rc = m != NULL && tl_connect(m) == TL_OK ? 0 : 1;
            if (rc != 0)
                (void)fprintf(stderr, "child %d: %s\n", i, tl_errmsg(m));
            tl_manager_free(m);
            _exit(rc);
        }
    }
    close(go[0]);
    close(go[1]);
    for (int i = 0; i < N; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }

    tl_manager *m = mgr_with(&(struct opts){.url = schema_url, .worker = "after-race"});
    char kb[128];
    tl_lock *l = must_acquire(m, key("race", kb), TL_FAIL_FAST);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

static bool heartbeat_failed(void *arg)
{
    return metrics(arg).heartbeats_failed > 0;
}

struct sent_since {
    tl_manager *m;
    uint64_t base;
};

static bool heartbeat_sent_since(void *arg)
{
    struct sent_since *s = arg;
    return metrics(s->m).heartbeats_sent > s->base;
}

/* A clean restart while a lock is held: calls fail clearly during the outage, the heartbeat
 * keeps retrying and recovers, the holder keeps its lock (the data is durable), nobody else gets
 * it meanwhile, and tokens keep increasing afterwards. */
static void server_restart_while_held(void **state)
{
    char kb[128];
    const char *k = key("restart", kb);
    tl_manager *a =
        mgr_with(&(struct opts){.worker = "holder", .timeout_ms = 30000, .heartbeat_ms = 200});
    tl_manager *b = mgr("other");
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST), *lb = NULL;
    uint64_t t1 = tl_lock_token(l);
    struct tl_info *info = NULL;

    (void)state;
    server_stop();
    if (!tl_test_poll(heartbeat_failed, a, 20, 10000))
        fail_msg("no heartbeat failed while the server was down");
    int64_t t0 = tl__real_mono_ms();
    assert_int_equal(tl_inspect(b, k, &info), TL_ESTORE);
    assert_true(tl__real_mono_ms() - t0 < 5000);
    assert_non_null(strstr(tl_errmsg(b), "postgres"));
    assert_true(no_secret(tl_errmsg(b)));
    assert_false(tl_lock_is_lost(l));

    assert_true(server_start());
    struct sent_since s = {.m = a, .base = metrics(a).heartbeats_sent};
    if (!tl_test_poll(heartbeat_sent_since, &s, 20, 15000))
        fail_msg("the heartbeat did not recover after the restart");
    assert_false(tl_lock_is_lost(l));

    /* Still ours, and only ours. The first call on b's broken session reconnects by itself. */
    assert_int_equal(tl_inspect(b, k, &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->worker_id, "holder");
    assert_int_equal(info->token, t1);
    tl_info_free(info);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    assert_int_equal(tl_acquire(b, k, &ff, &lb), TL_EBUSY);
    assert_int_equal(tl_renew(l), TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    lb = must_acquire(b, k, TL_FAIL_FAST);
    assert_true(tl_lock_token(lb) > t1);
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    tl_lock_free(l);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* An outage longer than the lock timeout: the heartbeat reports the lock lost (heartbeat.c's
 * rule), and after the server is back the lock, stale by the server's clock, can be stolen. */
static void outage_longer_than_the_lock_timeout_loses_the_lock(void **state)
{
    char kb[128];
    const char *k = key("outage", kb);
    struct tl_test_lost seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *a = mgr_with(&(struct opts){.worker = "holder",
                                            .timeout_ms = 1500,
                                            .heartbeat_ms = 300,
                                            .on_lost = tl_test_on_lost,
                                            .ud = &seen});
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST);
    uint64_t t1 = tl_lock_token(l);

    (void)state;
    server_stop();
    if (!tl_test_poll(tl_test_lost_fired, &seen, 20, 15000))
        fail_msg("the lock was not reported lost during the outage");
    assert_true(tl_lock_is_lost(l));
    assert_int_equal(metrics(a).locks_lost, 1);
    assert_true(server_start());

    tl_manager *b = mgr("thief");
    tl_lock *lb = must_acquire(b, k, TL_STEAL_STALE);
    assert_true(tl_lock_token(lb) > t1);
    assert_int_equal(metrics(b).stale_locks_claimed, 1);
    assert_int_equal(tl_release(l, NULL), TL_ENOTOWNER);
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    pthread_mutex_lock(&seen.mu);
    assert_int_equal(seen.calls, 1);
    pthread_mutex_unlock(&seen.mu);
    tl_lock_free(l);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

struct waiter {
    tl_manager *m;
    const char *key;
    tl_status st;
    tl_lock *lock;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    const struct tl_acquire_opts o = {.strategy = TL_RETRY};

    w->st = tl_acquire(w->m, w->key, &o, &w->lock);
    return NULL;
}

/* A waiter whose backoff is 5 s is woken by the release's notification, not by its timer:
 * without the line (the `wait` op, on the key's channel), and in line (wait_turn, on the
 * waiter's own channel; its refresh would come only after 20 s). */
static void release_wakes_a_waiter(void **state)
{
    char kb[128];
    const char *k = key("wake", kb);
    tl_manager *a = mgr("holder");
    tl_manager *b =
        mgr_with(&(struct opts){.worker = "waiter", .backoff_ms = 5000, .no_line = true});
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST);
    struct waiter w = {.m = b, .key = k};
    pthread_t t;
    struct tl_pg_wait_stats ws;

    (void)state;
    assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
    tl__real_sleep_ms(500); /* the waiter's claim fails and it starts waiting */
    assert_int_equal(tl_release(l, "done"), TL_OK);
    assert_int_equal(pthread_join(t, NULL), 0);

    assert_int_equal(w.st, TL_OK);
    assert_non_null(w.lock);
    assert_true(tl__postgres_wait_stats(b->store, &ws));
    assert_int_equal(ws.calls, 1);
    assert_int_equal(ws.notified, 1);
    assert_int_equal(ws.timed_out, 0);
    assert_int_equal(ws.failed, 0);
    assert_int_equal(metrics(b).total_retries, 1);
    assert_int_equal(tl_release(w.lock, NULL), TL_OK);

    /* The re-check after LISTEN: a key already free returns at once. */
    assert_int_equal(a->store->ops->wait(a->store, k, 5000), TL_OK);
    assert_true(tl__postgres_wait_stats(a->store, &ws));
    assert_int_equal(ws.free, 1);
    assert_int_equal(ws.timed_out, 0);

    /* wakeup=off: the op refuses, and the manager sleeps instead. */
    char off[1024];
    (void)snprintf(off, sizeof(off), "%s?wakeup=off", url);
    tl_manager *c = mgr_with(&(struct opts){.url = off, .worker = "sleeper"});
    assert_int_equal(c->store->ops->wait(c->store, k, 10), TL_ENOTSUP);
    tl_lock_free(l);
    tl_lock_free(w.lock);

    tl_manager *d = mgr_with(&(struct opts){.worker = "in-line", .backoff_ms = 5000});
    l = must_acquire(a, k, TL_FAIL_FAST);
    w = (struct waiter){.m = d, .key = k};
    assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
    tl__real_sleep_ms(500); /* the waiter's claim fails and it waits in line */
    int64_t start = tl__real_mono_ms();
    assert_int_equal(tl_release(l, "done"), TL_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.st, TL_OK);
    assert_non_null(w.lock);
    assert_int_equal(metrics(d).queued, 1);
    assert_int_equal(metrics(d).wakeups, 1);
    assert_int_equal(metrics(d).total_retries, 1);
    assert_true(tl__real_mono_ms() - start < 5000);
    assert_int_equal(tl_release(w.lock, NULL), TL_OK);
    tl_lock_free(l);
    tl_lock_free(w.lock);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(c);
    tl_manager_free(d);
}

/* The session leaves no state behind: idle, no prepared statements, no LISTEN, no setting
 * changed but the statement timeout of the startup packet. Checked on the raw session, outside
 * pipeline mode. */
static void assert_session_clean(struct tl_store *s)
{
    PGconn *c = tl__postgres_session(s);

    assert_non_null(c);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    assert_int_equal(PQexitPipelineMode(c), 1);
    PGresult *r = PQexec(c, "SELECT current_setting('statement_timeout'), "
                            "(SELECT count(*) FROM pg_settings WHERE source = 'session'), "
                            "(SELECT count(*) FROM pg_prepared_statements), "
                            "(SELECT count(*) FROM pg_listening_channels())");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "10s");
    assert_string_equal(PQgetvalue(r, 0, 1), "0");
    assert_string_equal(PQgetvalue(r, 0, 2), "0");
    assert_string_equal(PQgetvalue(r, 0, 3), "0");
    PQclear(r);
    assert_int_equal(PQenterPipelineMode(c), 1);
}

/* What a transaction-pooling pooler does: every call may run on another server session. Two
 * managers swap their sessions between calls, and every call still works and leaves its
 * session as it found it. */
static void calls_work_on_any_session(void **state)
{
    char kb[128];
    const char *k = key("pooler", kb);
    tl_manager *a = mgr("pooled-a"), *b = mgr("pooled-b");
    struct tl_info *info = NULL;

    (void)state;
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST);
    assert_session_clean(a->store);
    assert_true(tl__postgres_swap_sessions(a->store, b->store));
    assert_int_equal(tl_renew(l), TL_OK);
    assert_session_clean(a->store);
    assert_true(tl__postgres_swap_sessions(a->store, b->store));
    tl_lock *lb = NULL;
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    assert_int_equal(tl_acquire(b, k, &ff, &lb), TL_EBUSY);
    assert_session_clean(b->store);
    assert_true(tl__postgres_swap_sessions(a->store, b->store));
    assert_int_equal(tl_inspect(b, k, &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->worker_id, "pooled-a");
    tl_info_free(info);
    assert_true(tl__postgres_swap_sessions(a->store, b->store));
    assert_int_equal(tl_release(l, NULL), TL_OK);
    assert_session_clean(a->store);
    assert_true(tl__postgres_swap_sessions(a->store, b->store));
    assert_int_equal(tl_release(l, NULL), TL_OK); /* a retried release, on another session */
    struct tl_event **ev = NULL;
    size_t n = 0;
    assert_int_equal(tl_history(a, k, 10, &ev, &n), TL_OK);
    assert_int_equal(n, 2); /* acquired, released: the retry wrote nothing */
    tl_event_array_free(ev, n);
    assert_session_clean(a->store);
    assert_session_clean(b->store);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

struct log_seen {
    pthread_mutex_t mu;
    int messages;
    bool leaked;
};

static void log_capture(void *ud, int level, const char *msg)
{
    struct log_seen *s = ud;

    (void)level;
    pthread_mutex_lock(&s->mu);
    s->messages++;
    if (!no_secret(msg))
        s->leaked = true;
    pthread_mutex_unlock(&s->mu);
}

/* A password in the URL, in any of its forms, never appears in a message or a log line. */
static void passwords_never_appear(void **state)
{
    char bad[600];
    struct log_seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    /* Each is written around the port: before it, after it. */
    const char *variants[][2] = {
        /* right user, wrong password (ours with a suffix), in the userinfo */
        {"postgresql://tasklock:" PASSWORD_URL "x@127.0.0.1:", "/tasklock"},
        /* as a query parameter */
        {"postgres://tasklock@127.0.0.1:", "/tasklock?password=" PASSWORD_URL "x"},
        /* a URI libpq cannot parse, with the password in it */
        {"postgresql://tasklock:" PASSWORD_URL "%zz@127.0.0.1:", "/tasklock"},
        /* an unknown parameter next to the password */
        {"postgresql://tasklock:" PASSWORD_URL "@127.0.0.1:", "/tasklock?bogus=1"},
    };
    const tl_status want[] = {TL_ESTORE, TL_ESTORE, TL_EINVAL, TL_EINVAL};

    (void)state;
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        (void)snprintf(bad, sizeof(bad), "%s%d%s", variants[i][0], port, variants[i][1]);
        const struct tl_options o = {.store_url = bad,
                                     .worker_id = "w",
                                     .log = log_capture,
                                     .log_ud = &seen,
                                     .log_level = TL_LOG_DEBUG};
        tl_manager *m = tl_manager_new(&o);
        assert_non_null(m);
        tl_status st = tl_connect(m);
        if (st != want[i] || !no_secret(tl_errmsg(m)))
            fail_msg("variant %zu: %s: %s", i, tl_strerror(st), tl_errmsg(m));
        assert_non_null(strstr(tl_errmsg(m), "postgres"));
        if (i < 2)
            assert_non_null(strstr(tl_errmsg(m), "password authentication failed"));
        tl_manager_free(m);
    }

    /* The right password: a whole session, logged at debug level, shows it nowhere. */
    char kb[128];
    tl_manager *m = mgr_with(&(struct opts){
        .worker = "logged", .log = log_capture, .log_ud = &seen, .heartbeat_ms = 50});
    tl_lock *l = must_acquire(m, key("password", kb), TL_FAIL_FAST);
    tl__real_sleep_ms(200);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    char *md = tl_lock_metadata(l);
    assert_true(no_secret(md));
    tl_free(md);
    tl_lock_free(l);
    tl_manager_free(m);
    pthread_mutex_lock(&seen.mu);
    assert_false(seen.leaked);
    pthread_mutex_unlock(&seen.mu);
}

/* Nothing listens: TL_ESTORE at once, saying so. */
static void connection_refused_fails_fast(void **state)
{
    char refused[600];

    (void)state;
    (void)snprintf(refused, sizeof(refused), "postgresql://tasklock:%s@127.0.0.1:%d/tasklock",
                   PASSWORD_URL, closed_port());
    const struct tl_options o = {.store_url = refused, .worker_id = "w"};
    tl_manager *m = tl_manager_new(&o);
    int64_t t0 = tl__real_mono_ms();
    assert_int_equal(tl_connect(m), TL_ESTORE);
    assert_true(tl__real_mono_ms() - t0 < 2000);
    assert_non_null(strstr(tl_errmsg(m), "postgres: cannot connect to postgresql://tasklock:***@"));
    assert_non_null(strstr(tl_errmsg(m), "refused"));
    assert_true(no_secret(tl_errmsg(m)));
    tl_manager_free(m);
}

/* A call stuck behind someone else's row lock ends at the statement timeout, on the server's
 * side (well before the client's own deadline), and the session stays usable. */
static void statement_timeout_bounds_a_blocked_call(void **state)
{
    char kb[128], sql[512], slow[1024];
    const char *k = key("timeout", kb);

    (void)state;
    (void)snprintf(slow, sizeof(slow), "%s?statement_timeout=500ms", url);
    tl_manager *a = mgr_with(&(struct opts){.url = slow, .worker = "blocked"});
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST);
    PGconn *admin_c = admin_conn();

    admin_exec(admin_c, "BEGIN");
    (void)snprintf(sql, sizeof(sql), "SELECT 1 FROM tasklock_locks WHERE key = '%s' FOR UPDATE", k);
    admin_exec(admin_c, sql);
    int64_t t0 = tl__real_mono_ms();
    assert_int_equal(tl_renew(l), TL_ETIMEDOUT);
    int64_t took = tl__real_mono_ms() - t0;
    assert_true(took >= 400 && took < 2000);
    assert_non_null(strstr(tl_errmsg(a), "no answer within 500 ms"));
    void *session = tl__postgres_session(a->store);
    admin_exec(admin_c, "COMMIT");
    assert_int_equal(tl_renew(l), TL_OK);
    assert_ptr_equal(tl__postgres_session(a->store), session); /* the same session */
    assert_int_equal(tl_release(l, NULL), TL_OK);
    PQfinish(admin_c);
    tl_lock_free(l);
    tl_manager_free(a);
}

/* The server ends our idle session (a pooler's idle timeout, an administrator): the next call
 * reconnects by itself and succeeds. */
static void a_killed_session_is_replaced(void **state)
{
    char kb[128], sql[128];
    const char *k = key("killed", kb);
    tl_manager *a = mgr("killed");
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST);
    PGconn *admin_c = admin_conn();

    (void)state;
    int pid = PQbackendPID(tl__postgres_session(a->store));
    (void)snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d, 5000)", pid);
    admin_exec(admin_c, sql);
    assert_int_equal(tl_renew(l), TL_OK);
    assert_true(PQbackendPID(tl__postgres_session(a->store)) != pid);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    PQfinish(admin_c);
    tl_lock_free(l);
    tl_manager_free(a);
}

/* Rows typed in by hand, or damaged: clear errors naming the key and the field, no crash. A
 * forced acquire replaces a damaged row. Runs in a schema of its own, whose checks it drops. */
static void damaged_rows_are_clear_errors(void **state)
{
    char surl[1024], sql[1024];
    char schema[64];
    PGconn *c = admin_conn();
    struct tl_info *info = NULL, **infos = NULL;
    struct tl_event **ev = NULL;
    size_t n = 0;
    tl_lock *l = NULL;

    (void)state;
    (void)snprintf(schema, sizeof(schema), "damaged_%s", run_id);
    (void)snprintf(surl, sizeof(surl), "%s?schema=%s&application_name=faults", url, schema);
    tl_manager *m = mgr_with(&(struct opts){.url = surl, .worker = "fixer"});

    (void)snprintf(sql, sizeof(sql),
                   "INSERT INTO %s.tasklock_locks (key, token, worker_id, node_id, claimed_at, "
                   "heartbeat_at, lock_timeout_ms, task_info) VALUES "
                   "('bad-json', 7, 'w', 'n', now(), now(), 1000, 'not json{'), "
                   "('bad-array', 8, 'w', 'n', now(), now(), 1000, '[1,2]')",
                   schema);
    admin_exec(c, sql);
    assert_int_equal(tl_inspect(m, "bad-json", &info), TL_ESTORE);
    assert_null(info);
    assert_non_null(strstr(tl_errmsg(m), "bad-json"));
    assert_non_null(strstr(tl_errmsg(m), "task_info"));
    assert_int_equal(tl_inspect(m, "bad-array", &info), TL_ESTORE);
    assert_int_equal(tl_list(m, &infos, &n), TL_ESTORE);
    assert_null(infos);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    assert_int_equal(tl_acquire(m, "bad-json", &ff, &l), TL_ESTORE);
    assert_non_null(strstr(tl_errmsg(m), "task_info"));
    l = must_acquire(m, "bad-json", TL_FORCE_ACQUIRE);
    assert_true(tl_lock_token(l) > 7);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);

    /* Without the table's checks, worse rows get in. */
    (void)snprintf(sql, sizeof(sql),
                   "ALTER TABLE %s.tasklock_locks DROP CONSTRAINT tasklock_locks_check; "
                   "ALTER TABLE %s.tasklock_history DROP CONSTRAINT tasklock_history_event_check; "
                   "UPDATE %s.tasklock_locks SET task_info = '{}' WHERE key = 'bad-array'; "
                   "INSERT INTO %s.tasklock_locks (key, token, worker_id, lock_timeout_ms) "
                   "VALUES ('no-times', 9, 'w', 1000); "
                   "INSERT INTO %s.tasklock_history (key, event, worker_id, node_id, token) "
                   "VALUES ('bad-event', 'exploded', 'w', 'n', 1)",
                   schema, schema, schema, schema, schema);
    admin_exec(c, sql);
    assert_int_equal(tl_inspect(m, "no-times", &info), TL_ESTORE);
    assert_non_null(strstr(tl_errmsg(m), "node_id"));
    assert_int_equal(tl_inspect(m, "bad-array", &info), TL_OK);
    assert_non_null(info);
    tl_info_free(info);
    assert_int_equal(tl_history(m, "bad-event", 10, &ev, &n), TL_ESTORE);
    assert_null(ev);
    assert_non_null(strstr(tl_errmsg(m), "tasklock_history"));

    /* A table that is not ours at all. */
    (void)snprintf(sql, sizeof(sql),
                   "ALTER TABLE %s.tasklock_locks RENAME COLUMN heartbeat_at TO beat", schema);
    admin_exec(c, sql);
    /* Reads go through the view of every holder, which follows a renamed column (and so still
     * finds the bad row); a claim names the column it misses. */
    assert_int_equal(tl_inspect(m, "no-times", &info), TL_ESTORE);
    assert_null(info);
    assert_int_equal(tl_acquire(m, "other", &ff, &l), TL_ESTORE);
    assert_null(l);
    assert_non_null(strstr(tl_errmsg(m), "heartbeat_at"));
    PQfinish(c);
    tl_manager_free(m);
}

/* Our parameters are taken out of the URI; libpq's own still reach libpq; bad ones say so. */
static void url_parameters(void **state)
{
    char u[1024];
    struct {
        const char *query;
        tl_status want;
        const char *says;
    } cases[] = {
        {"?schema=params_ok&statement_timeout=2s&wakeup=off&application_name=x&"
         "connect_timeout=3",
         TL_OK, NULL},
        {"?schema=1bad", TL_EINVAL, "schema"},
        {"?schema=has-dash", TL_EINVAL, "schema"},
        {"?statement_timeout=soon", TL_EINVAL, "statement_timeout"},
        {"?wakeup=maybe", TL_EINVAL, "wakeup"},
        {"?bogus=1", TL_EINVAL, "bogus"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        (void)snprintf(u, sizeof(u), "%s%s", url, cases[i].query);
        const struct tl_options o = {.store_url = u, .worker_id = "w"};
        tl_manager *m = tl_manager_new(&o);
        tl_status st = tl_connect(m);
        if (st != cases[i].want ||
            (cases[i].says != NULL && strstr(tl_errmsg(m), cases[i].says) == NULL))
            fail_msg("%s: %s: %s", cases[i].query, tl_strerror(st), tl_errmsg(m));
        assert_true(no_secret(tl_errmsg(m)));
        tl_manager_free(m);
    }
}

/* pooled=true (behind a transaction pooler): no startup options, so the session keeps the
 * server's statement timeout, and no wake-up (a LISTEN needs a session of its own). */
static void pooled_mode_sends_no_session_state(void **state)
{
    char u[1024], kb[128];

    (void)state;
    (void)snprintf(u, sizeof(u), "%s?pooled=true", url);
    tl_manager *m = mgr_with(&(struct opts){.url = u, .worker = "pooled"});
    tl_lock *l = must_acquire(m, key("pooled", kb), TL_FAIL_FAST);
    PGconn *c = tl__postgres_session(m->store);
    assert_int_equal(PQexitPipelineMode(c), 1);
    PGresult *r = PQexec(c, "SELECT current_setting('statement_timeout')");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    assert_int_equal(PQenterPipelineMode(c), 1);
    assert_int_equal(m->store->ops->wait(m->store, key("pooled", kb), 10), TL_ENOTSUP);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(processes_creating_the_tables_at_once_all_succeed),
        cmocka_unit_test(url_parameters),
        cmocka_unit_test(passwords_never_appear),
        cmocka_unit_test(connection_refused_fails_fast),
        cmocka_unit_test(release_wakes_a_waiter),
        cmocka_unit_test(calls_work_on_any_session),
        cmocka_unit_test(pooled_mode_sends_no_session_state),
        cmocka_unit_test(statement_timeout_bounds_a_blocked_call),
        cmocka_unit_test(a_killed_session_is_replaced),
        cmocka_unit_test(damaged_rows_are_clear_errors),
        cmocka_unit_test(server_restart_while_held),
        cmocka_unit_test(outage_longer_than_the_lock_timeout_loses_the_lock),
    };

    if (access("/usr/lib/postgresql", X_OK) != 0) {
        (void)fprintf(stderr, "test_postgres_faults: no PostgreSQL server installed; skipped\n");
        return 77;
    }
    if (tl_test_env("TL_TEST_POSTGRES_URI") == NULL &&
        (tl_test_env("TL_TEST_POSTGRES_PRIVATE") == NULL ||
         strcmp(tl_test_env("TL_TEST_POSTGRES_PRIVATE"), "1") != 0)) {
        (void)fprintf(stderr, "test_postgres_faults: TL_TEST_POSTGRES_URI unset (run under "
                              "tests/harness/with-servers, or set TL_TEST_POSTGRES_PRIVATE=1); "
                              "skipped\n");
        return 77;
    }
    return cmocka_run_group_tests_name("postgres faults", tests, group_setup, group_teardown);
}
