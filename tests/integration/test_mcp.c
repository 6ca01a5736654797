/*
 * test_mcp.c -- the protocol of `tasklock mcp`, over a pipe: the built binary is spawned on a
 * temporary SQLite store and spoken to one JSON line at a time. Both eras of MCP, every error
 * code, lines of 1 MiB and more, invalid UTF-8, a request id reused, notifications that must get
 * no reply, cancellation, and what happens to the locks at the end of input and on SIGTERM. The
 * store is also read directly through the library, as a second worker would see it.
 * Waits on real time are polls with bounds; the server's exit is waited for with a bound too.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_spawn.h"
#include "tl_test.h"

#define LIMIT_MS 20000 /* no answer may take longer */

static char *dir;
static char store[700];  /* sqlite:DIR/mcp.db */
static char binary[700]; /* BUILD/tasklock */

struct srv {
    pid_t pid;
    int in, out; /* its stdin (ours to write), its stdout (ours to read) */
    char *buf;
    size_t len, cap;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts `tasklock -s STORE [args...] mcp [opts...]`: `args` and `opts` NULL-terminated. */
static void srv_start(struct srv *s, const char *const args[], const char *const opts[])
{
    const char *argv[32] = {binary, "-s", store};
    size_t n = 3;

    for (size_t i = 0; args != NULL && args[i] != NULL; i++)
        argv[n++] = args[i];
    argv[n++] = "mcp";
    for (size_t i = 0; opts != NULL && opts[i] != NULL; i++)
        argv[n++] = opts[i];
    argv[n] = NULL;
    memset(s, 0, sizeof(*s));
    assert_int_equal(tl_spawn_piped("test_mcp", argv, &s->pid, &s->in, &s->out), 0);
    s->cap = 1 << 16;
    s->buf = malloc(s->cap);
    assert_non_null(s->buf);
}

static void srv_send_raw(struct srv *s, const char *data, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t w = write(s->in, data + done, len - done);

        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        done += (size_t)w;
    }
}

static void srv_send(struct srv *s, const char *line)
{
    srv_send_raw(s, line, strlen(line));
    srv_send_raw(s, "\n", 1);
}

/* The next line the server writes, parsed; NULL if none came within `limit_ms` or it ended. */
static json_t *srv_recv(struct srv *s, int limit_ms)
{
    int64_t end = mono_ms() + limit_ms;

    for (;;) {
        char *nl = s->len > 0 ? memchr(s->buf, '\n', s->len) : NULL;
        if (nl != NULL) {
            size_t n = (size_t)(nl - s->buf);
            json_error_t err;
            json_t *j = json_loadb(s->buf, n, 0, &err);

            if (j == NULL)
                fail_msg("stdout carried something else than JSON: %.*s", (int)n, s->buf);
            assert_string_equal(json_string_value(json_object_get(j, "jsonrpc")), "2.0");
            memmove(s->buf, nl + 1, s->len - n - 1);
            s->len -= n + 1;
            return j;
        }
        int left = (int)(end - mono_ms());
        if (left <= 0)
            return NULL;
        struct pollfd p = {.fd = s->out, .events = POLLIN};
        if (poll(&p, 1, left) <= 0)
            continue;
        if (s->cap - s->len < 4096) {
            s->cap *= 2;
            s->buf = realloc(s->buf, s->cap);
            assert_non_null(s->buf);
        }
        ssize_t got = read(s->out, s->buf + s->len, s->cap - s->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return NULL;
        s->len += (size_t)got;
    }
}

/* Sends `line` and returns the reply, which must come. */
static json_t *rpc(struct srv *s, const char *line)
{
    srv_send(s, line);
    json_t *r = srv_recv(s, LIMIT_MS);
    if (r == NULL)
        fail_msg("no reply to %s", line);
    return r;
}

/* Closes stdin (unless `sig`: sends it instead) and waits for the exit; returns the status. */
static int srv_end(struct srv *s, int sig)
{
    int status = 0;
    int64_t end = mono_ms() + LIMIT_MS;

    if (sig != 0)
        assert_int_equal(kill(s->pid, sig), 0);
    else
        (void)close(s->in);
    for (;;) {
        pid_t w = waitpid(s->pid, &status, WNOHANG);

        if (w == s->pid)
            break;
        if (mono_ms() > end) {
            (void)kill(s->pid, SIGKILL);
            fail_msg("tasklock mcp did not exit within %d ms", LIMIT_MS);
        }
        struct timespec ts = {.tv_nsec = 10 * 1000000};
        (void)nanosleep(&ts, NULL);
    }
    if (sig != 0)
        (void)close(s->in);
    (void)close(s->out);
    free(s->buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int error_code(const json_t *r)
{
    json_t *e = json_object_get(r, "error");

    if (e == NULL)
        fail_msg("expected an error: %s", json_dumps(r, JSON_COMPACT));
    return (int)json_integer_value(json_object_get(e, "code"));
}

static void assert_error(struct srv *s, const char *line, int code)
{
    json_t *r = rpc(s, line);

    if (error_code(r) != code)
        fail_msg("%s: expected %d, got %s", line, code, json_dumps(r, JSON_COMPACT));
    json_decref(r);
}

static void init(struct srv *s, const char *name)
{
    char line[512];

    (void)snprintf(line, sizeof(line),
                   "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                   "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{"
                   "\"name\":\"%s\",\"version\":\"1\"}}}",
                   name);
    json_t *r = rpc(s, line);
    assert_non_null(json_object_get(r, "result"));
    json_decref(r);
    srv_send(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
}

/* tools/call NAME ARGS (JSON text) with id `id`; returns the result object (a new reference). */
static json_t *tool(struct srv *s, int id, const char *name, const char *args)
{
    size_t size = strlen(args) + 256;
    char *line = malloc(size);

    assert_non_null(line);
    (void)snprintf(line, size,
                   "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{"
                   "\"name\":\"%s\",\"arguments\":%s}}",
                   id, name, args);
    json_t *r = rpc(s, line);
    free(line);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), id);
    json_t *res = json_incref(json_object_get(r, "result"));
    if (res == NULL)
        fail_msg("%s: %s", name, json_dumps(r, JSON_COMPACT));
    json_decref(r);
    return res;
}

static const char *result_text(const json_t *res)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
}

static bool is_error(const json_t *res)
{
    return json_is_true(json_object_get(res, "isError"));
}

static uint64_t acquire_token(struct srv *s, int id, const char *key)
{
    char args[300];

    (void)snprintf(args, sizeof(args), "{\"key\":\"%s\"}", key);
    json_t *res = tool(s, id, "lock_acquire", args);
    if (is_error(res))
        fail_msg("acquire %s: %s", key, result_text(res));
    uint64_t t = (uint64_t)json_integer_value(
        json_object_get(json_object_get(res, "structuredContent"), "token"));
    json_decref(res);
    assert_true(t > 0);
    return t;
}

/* A manager of the test itself on the same store, as worker `worker`. */
static tl_manager *other(const char *worker)
{
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = store, .worker_id = worker});

    assert_non_null(m);
    assert_int_equal(tl_connect(m), TL_OK);
    return m;
}

static char *holder_of(const char *key)
{
    tl_manager *m = other("observer");
    struct tl_info *info = NULL;
    char *w = NULL;

    assert_int_equal(tl_inspect(m, key, &info), TL_OK);
    if (info != NULL)
        w = strdup(info->worker_id);
    tl_info_free(info);
    tl_manager_free(m);
    return w;
}

struct line_wait {
    const char *key;
    size_t want;
};

static bool line_is(void *arg)
{
    const struct line_wait *lw = arg;
    tl_manager *m = other("observer");
    struct tl_waiter **ws = NULL;
    size_t n = 0, live = 0;

    assert_int_equal(tl_waiters(m, lw->key, &ws, &n), TL_OK);
    for (size_t i = 0; i < n; i++)
        live += !ws[i]->dead;
    tl_waiter_array_free(ws, n);
    tl_manager_free(m);
    return live == lw->want;
}

/* ---- the tests ---- */

static void handshake_in_every_legacy_version(void **state)
{
    static const char *const asked[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
                                        "1.0.0"};
    static const char *const answered[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2025-11-25",
                                           "2025-11-25"};
    (void)state;
    for (size_t i = 0; i < 5; i++) {
        struct srv s;
        char line[300];

        srv_start(&s, NULL, NULL);
        (void)snprintf(line, sizeof(line),
                       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                       "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":"
                       "\"t\",\"version\":\"1\"}}}",
                       asked[i]);
        json_t *r = rpc(&s, line);
        json_t *res = json_object_get(r, "result");
        assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")),
                            answered[i]);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(res, "serverInfo"), "name")),
            "tasklock");
        assert_non_null(json_object_get(json_object_get(res, "capabilities"), "tools"));
        assert_non_null(json_object_get(json_object_get(res, "capabilities"), "resources"));
        json_decref(r);
        assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{}}",
                     -32602);
        assert_int_equal(srv_end(&s, 0), 0);
    }
}

static void notifications_get_no_reply(void **state)
{
    struct srv s;

    (void)state;
    srv_start(&s, NULL, NULL);
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/no-such-thing\",\"params\":7}");
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}");
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
                 "\"requestId\":12345}}");
    srv_send(&s, "{\"method\":\"notifications/initialized\"}");
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":77,\"result\":{}}"); /* a response: ignored */
    srv_send(&s, "   ");                                           /* a blank line */
    json_t *r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "p");
    assert_true(json_is_object(json_object_get(r, "result")));
    json_decref(r);
    /* ... and nothing more comes. */
    assert_null(srv_recv(&s, 300));
    assert_int_equal(srv_end(&s, 0), 0);
}

static void the_stateless_era(void **state)
{
    struct srv s;

    (void)state;
    srv_start(&s, NULL, NULL);
    /* No initialize: 2026-07-28 has none. */
    json_t *r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\"}");
    json_t *res = json_object_get(r, "result");
    assert_string_equal(json_string_value(json_object_get(res, "resultType")), "complete");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(res, "supportedVersions"), 0)),
        "2026-07-28");
    assert_non_null(
        json_object_get(json_object_get(res, "_meta"), "io.modelcontextprotocol/serverInfo"));
    json_decref(r);

    r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
                "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}");
    res = json_object_get(r, "result");
    assert_string_equal(json_string_value(json_object_get(res, "resultType")), "complete");
    assert_non_null(json_object_get(res, "ttlMs"));
    assert_non_null(json_object_get(res, "cacheScope"));
    assert_int_equal(json_array_size(json_object_get(res, "tools")), 8);
    json_decref(r);

    r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
                "\"lock_status\",\"arguments\":{\"key\":\"era\"},\"_meta\":{"
                "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}");
    res = json_object_get(r, "result");
    assert_string_equal(json_string_value(json_object_get(res, "resultType")), "complete");
    assert_false(json_is_true(json_object_get(res, "isError")));
    json_decref(r);

    r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
                "\"io.modelcontextprotocol/protocolVersion\":\"2099-01-01\"}}}");
    assert_int_equal(error_code(r), -32022);
    json_t *data = json_object_get(json_object_get(r, "error"), "data");
    assert_string_equal(json_string_value(json_array_get(json_object_get(data, "supported"), 0)),
                        "2026-07-28");
    assert_string_equal(json_string_value(json_object_get(data, "requested")), "2099-01-01");
    json_decref(r);

    /* A resource that is not there: -32602 in this era (-32002 before it). */
    assert_error(&s,
                 "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{"
                 "\"uri\":\"tasklock://locks/free-key\",\"_meta\":{"
                 "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}",
                 -32602);
    assert_error(&s,
                 "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"resources/read\",\"params\":{"
                 "\"uri\":\"tasklock://locks/free-key\"}}",
                 -32002);
    assert_int_equal(srv_end(&s, 0), 0);
}

static void every_error_code(void **state)
{
    struct srv s;
    static const char bad_utf8[] =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\xc3\x28\"}}";

    (void)state;
    srv_start(&s, NULL, NULL);
    init(&s, "errors");
    assert_error(&s, "this is not json", -32700);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,", -32700);
    assert_error(&s, bad_utf8, -32700);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}", -32700);
    assert_error(&s, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", -32600);
    assert_error(&s, "[]", -32600);
    assert_error(&s, "42", -32600);
    assert_error(&s, "{\"id\":1,\"method\":\"ping\"}", -32600);
    assert_error(&s, "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", -32600);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"tools/list\"}", -32600);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"tools/list\"}", -32600);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"tools/list\"}", -32600);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", -32600);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1}", -32600);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"no/such/method\"}", -32601);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/list\"}", -32601);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":[1]}",
                 -32602);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}",
                 -32602);
    assert_error(&s,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"no_such_tool\"}}",
                 -32602);
    assert_error(&s,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"lock_status\",\"arguments\":[]}}",
                 -32602);
    assert_error(&s,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
                 "\"cursor\":\"x\"}}",
                 -32602);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":{}}",
                 -32602);
    assert_error(&s,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/read\",\"params\":{"
                 "\"uri\":\"file:///etc/passwd\"}}",
                 -32002);
    /* Bad tool arguments are results the model can read and mend, not protocol errors. */
    json_t *res = tool(&s, 2, "lock_acquire", "{\"key\":\"a b\"}");
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "not valid"));
    json_decref(res);
    res = tool(&s, 3, "lock_acquire", "{\"key\":\"k\",\"wait_seconds\":\"soon\"}");
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "wait_seconds"));
    json_decref(res);
    res = tool(&s, 4, "lock_release", "{\"key\":\"k\",\"token\":1,\"done\":\"yes\"}");
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "\"done\" must be true or false"));
    json_decref(res);
    res = tool(&s, 6, "claim_next", "{}");
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "either \"keys\""));
    json_decref(res);
    res = tool(&s, 7, "claim_next", "{\"keys\":[\"a\",\"b c\"]}");
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "keys[1]"));
    json_decref(res);
    res = tool(&s, 8, "claim_next", "{\"keys\":[\"a\"],\"strategy\":\"force\"}");
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "strategy"));
    json_decref(res);
    res = tool(&s, 10, "claim_next", "{\"label\":\"ready\"}"); /* SQLite: no labels */
    assert_true(is_error(res));
    json_decref(res);
    res = tool(&s, 5, "lock_acquire", "{\"key\":\"k\",\"strategy\":\"force\"}");
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "--allow-force"));
    json_decref(res);
    /* Still serving. */
    json_decref(rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}"));
    assert_int_equal(srv_end(&s, 0), 0);
}

static void internal_error_when_the_store_fails(void **state)
{
    struct srv s;
    char bad[800];
    const char *args[] = {"-s", bad, NULL};

    (void)state;
    (void)snprintf(bad, sizeof(bad), "sqlite:%s/no/such/dir/x.db", dir);
    srv_start(&s, args, NULL);
    init(&s, "nostore");
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}", -32603);
    /* A tool says it as a result. */
    json_t *res = tool(&s, 2, "lock_list", "{}");
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "store"));
    json_decref(res);
    assert_int_equal(srv_end(&s, 0), 0);
}

static void long_lines(void **state)
{
    struct srv s;
    size_t big = 1024 * 1024;
    char *line = malloc(6 * big);

    (void)state;
    assert_non_null(line);
    srv_start(&s, NULL, NULL);
    /* A valid message of 1 MiB. */
    int n = snprintf(line, 200,
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\","
                     "\"params\":{\"_meta\":{\"pad\":\"");
    memset(line + n, 'x', big);
    (void)snprintf(line + n + big, 20, "\"}}}");
    json_t *r = rpc(&s, line);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    assert_non_null(json_object_get(r, "result"));
    json_decref(r);
    /* 1 MiB of junk. */
    memset(line, '{', big);
    line[big] = '\0';
    assert_error(&s, line, -32700);
    /* 5 MiB: over the limit, refused without reading it whole. */
    memset(line, 'y', 5 * big);
    line[5 * big] = '\0';
    assert_error(&s, line, -32600);
    json_decref(rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}"));
    free(line);
    assert_int_equal(srv_end(&s, 0), 0);
}

static void conflicts_name_the_holder(void **state)
{
    struct srv s;
    tl_manager *m = other("other-agent");
    tl_lock *lock = NULL;

    (void)state;
    assert_int_equal(tl_acquire(m, "c1", NULL, &lock), TL_OK);
    srv_start(&s, NULL, NULL);
    init(&s, "conflicted");
    json_t *res = tool(&s, 1, "lock_acquire", "{\"key\":\"c1\"}");
    assert_true(is_error(res));
    const char *t = result_text(res);
    assert_non_null(strstr(t, "held by other-agent"));
    assert_non_null(strstr(t, "since"));
    assert_non_null(strstr(t, "last heartbeat"));
    assert_non_null(strstr(t, "fresh"));
    json_decref(res);
    res = tool(&s, 2, "lock_status", "{\"key\":\"c1\"}");
    json_t *lk = json_object_get(json_object_get(res, "structuredContent"), "lock");
    assert_string_equal(json_string_value(json_object_get(lk, "worker_id")), "other-agent");
    assert_false(json_is_true(json_object_get(lk, "mine")));
    json_decref(res);
    assert_int_equal(tl_release(lock, NULL), TL_OK);
    tl_lock_free(lock);
    tl_manager_free(m);
    assert_int_equal(srv_end(&s, 0), 0);
}

static void worker_ids(void **state)
{
    struct srv a, b, c;
    const char *fixed[] = {"-w", "fixed-worker", NULL};

    (void)state;
    srv_start(&a, NULL, NULL);
    srv_start(&b, NULL, NULL);
    srv_start(&c, fixed, NULL);
    init(&a, "My Agent/1");
    init(&b, "My Agent/1");
    init(&c, "ignored");
    acquire_token(&a, 1, "w1");
    acquire_token(&b, 1, "w2");
    acquire_token(&c, 1, "w3");
    char *wa = holder_of("w1"), *wb = holder_of("w2"), *wc = holder_of("w3");
    assert_int_equal(strlen(wa), strlen("My-Agent-1-") + 6);
    assert_memory_equal(wa, "My-Agent-1-", strlen("My-Agent-1-"));
    assert_string_not_equal(wa, wb);
    assert_string_equal(wc, "fixed-worker");

    /* A lock of the same worker id from before this connection: released by token. */
    tl_manager *m = other("fixed-worker");
    tl_lock *lock = NULL;
    assert_int_equal(tl_acquire(m, "w4", NULL, &lock), TL_OK);
    uint64_t token = tl_lock_token(lock);
    tl_lock_free(lock); /* still held in the store */
    tl_manager_free(m);
    json_t *res = tool(&c, 2, "lock_acquire", "{\"key\":\"w4\"}");
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "your worker id"));
    json_decref(res);
    char args[200];
    (void)snprintf(args, sizeof(args), "{\"key\":\"w4\",\"token\":%llu}",
                   (unsigned long long)token);
    res = tool(&c, 3, "lock_heartbeat", args);
    assert_false(is_error(res));
    json_decref(res);
    res = tool(&c, 4, "lock_release", args);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(res, "structuredContent"), "outcome")),
        "released");
    json_decref(res);
    free(wa);
    free(wb);
    free(wc);
    assert_int_equal(srv_end(&a, 0), 0);
    assert_int_equal(srv_end(&b, 0), 0);
    assert_int_equal(srv_end(&c, 0), 0);
}

static void reused_id_and_cancellation(void **state)
{
    struct srv s;
    tl_manager *m = other("blocker");
    tl_lock *lock = NULL;
    struct line_wait one = {"r1", 1}, none = {"r1", 0};

    (void)state;
    assert_int_equal(tl_acquire(m, "r1", NULL, &lock), TL_OK);
    srv_start(&s, NULL, NULL);
    init(&s, "canceller");
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"w\",\"method\":\"tools/call\",\"params\":{"
                 "\"name\":\"lock_acquire\",\"arguments\":{\"key\":\"r1\",\"wait_seconds\":30}}}");
    assert_true(tl_test_poll(line_is, &one, 20, LIMIT_MS));
    /* While it waits: a ping is answered at once, and its id cannot be used again. */
    json_t *r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"ping\"}");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "q");
    json_decref(r);
    assert_error(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"w\",\"method\":\"tools/list\"}", -32600);
    /* Cancelled: it leaves the line, and gets no reply. */
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
                 "\"requestId\":\"w\",\"reason\":\"changed my mind\"}}");
    assert_true(tl_test_poll(line_is, &none, 20, LIMIT_MS));
    r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"after\",\"method\":\"tools/list\"}");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "after");
    json_decref(r);
    /* The id is free again once its request is over. */
    json_decref(rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"w\",\"method\":\"ping\"}"));

    /* A waiter is handed the lock when it is released. */
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"w2\",\"method\":\"tools/call\",\"params\":{"
                 "\"name\":\"lock_acquire\",\"arguments\":{\"key\":\"r1\",\"wait_seconds\":30}}}");
    assert_true(tl_test_poll(line_is, &one, 20, LIMIT_MS));
    assert_int_equal(tl_release(lock, NULL), TL_OK);
    r = srv_recv(&s, LIMIT_MS);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "w2");
    assert_false(json_is_true(json_object_get(json_object_get(r, "result"), "isError")));
    json_decref(r);
    tl_lock_free(lock);
    tl_manager_free(m);
    assert_int_equal(srv_end(&s, 0), 0);
    char *h = holder_of("r1");
    assert_null(h); /* released at the end of input */
}

static void the_end_of_input_releases(void **state)
{
    struct srv s;

    (void)state;
    srv_start(&s, NULL, NULL);
    init(&s, "leaver");
    acquire_token(&s, 1, "e1");
    acquire_token(&s, 2, "e2");
    char *h = holder_of("e1");
    assert_non_null(h);
    free(h);
    int64_t t0 = mono_ms();
    assert_int_equal(srv_end(&s, 0), 0);
    assert_true(mono_ms() - t0 < 5000);
    assert_null(holder_of("e1"));
    assert_null(holder_of("e2"));
}

static void sigterm_releases(void **state)
{
    struct srv s;
    const char *verbose[] = {"-v", NULL};

    (void)state;
    srv_start(&s, verbose, NULL);
    init(&s, "terminated");
    acquire_token(&s, 1, "t1");
    assert_int_equal(srv_end(&s, SIGTERM), 0);
    assert_null(holder_of("t1"));
}

static void keep_leaves_them_held(void **state)
{
    struct srv s;
    const char *keep[] = {"--on-exit", "keep", NULL};

    (void)state;
    srv_start(&s, NULL, keep);
    init(&s, "keeper");
    acquire_token(&s, 1, "k1");
    assert_int_equal(srv_end(&s, 0), 0);
    char *h = holder_of("k1");
    assert_non_null(h);
    assert_memory_equal(h, "keeper-", 7);
    free(h);
}

static void eof_while_waiting(void **state)
{
    struct srv s;
    tl_manager *m = other("blocker2");
    tl_lock *lock = NULL;
    struct line_wait one = {"x1", 1};

    (void)state;
    assert_int_equal(tl_acquire(m, "x1", NULL, &lock), TL_OK);
    srv_start(&s, NULL, NULL);
    init(&s, "impatient");
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
                 "\"name\":\"lock_acquire\",\"arguments\":{\"key\":\"x1\",\"wait_seconds\":40}}}");
    assert_true(tl_test_poll(line_is, &one, 20, LIMIT_MS));
    int64_t t0 = mono_ms();
    assert_int_equal(srv_end(&s, 0), 0);
    assert_true(mono_ms() - t0 < 5000); /* it did not wait the 40 s out */
    struct line_wait none = {"x1", 0};
    assert_true(line_is(&none));
    assert_int_equal(tl_release(lock, NULL), TL_OK);
    tl_lock_free(lock);
    tl_manager_free(m);
}

static void max_wait_caps_the_wait(void **state)
{
    struct srv s;
    tl_manager *m = other("blocker3");
    tl_lock *lock = NULL;
    const char *opts[] = {"--max-wait", "500ms", NULL};

    (void)state;
    assert_int_equal(tl_acquire(m, "mw", NULL, &lock), TL_OK);
    srv_start(&s, NULL, opts);
    init(&s, "capped");
    int64_t t0 = mono_ms();
    json_t *res = tool(&s, 1, "lock_acquire", "{\"key\":\"mw\",\"wait_seconds\":30}");
    assert_true(is_error(res));
    assert_true(mono_ms() - t0 < 10000);
    assert_non_null(strstr(result_text(res), "held by blocker3"));
    json_decref(res);
    assert_int_equal(tl_release(lock, NULL), TL_OK);
    tl_lock_free(lock);
    tl_manager_free(m);
    assert_int_equal(srv_end(&s, 0), 0);
}

static void release_outcomes_and_resources(void **state)
{
    struct srv s;
    char args[200];

    (void)state;
    srv_start(&s, NULL, NULL);
    init(&s, "releaser");
    uint64_t t = acquire_token(&s, 1, "rel/1");
    json_t *r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/read\",\"params\":{"
                        "\"uri\":\"tasklock://locks/rel%2F1\"}}");
    const char *text = json_string_value(json_object_get(
        json_array_get(json_object_get(json_object_get(r, "result"), "contents"), 0), "text"));
    assert_non_null(text);
    assert_memory_equal(text, "{\"lock\":{\"worker_id\":\"releaser-", 31);
    json_decref(r);

    (void)snprintf(args, sizeof(args), "{\"key\":\"rel/1\",\"token\":%llu,\"summary\":\"done\"}",
                   (unsigned long long)t);
    json_t *res = tool(&s, 3, "lock_release", args);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(res, "structuredContent"), "outcome")),
        "released");
    json_decref(res);
    res = tool(&s, 4, "lock_release", "{\"key\":\"never-held\",\"token\":5}");
    assert_false(is_error(res));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(res, "structuredContent"), "outcome")),
        "not_held");
    json_decref(res);
    res = tool(&s, 5, "lock_history", "{\"key\":\"rel/1\"}");
    json_t *ev = json_object_get(json_object_get(res, "structuredContent"), "events");
    assert_int_equal(json_array_size(ev), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 1), "detail")),
                        "done");
    json_decref(res);
    assert_int_equal(srv_end(&s, 0), 0);
}

/* claim_next: the structuredContent of a result, and its "key". */
static json_t *sc(const json_t *res)
{
    return json_object_get(res, "structuredContent");
}

static const char *sc_str(const json_t *res, const char *name)
{
    return json_string_value(json_object_get(sc(res), name));
}

static uint64_t sc_token(const json_t *res)
{
    return (uint64_t)json_integer_value(json_object_get(sc(res), "token"));
}

static void release_tool(struct srv *s, int id, const char *key, uint64_t token, bool done)
{
    char args[300];

    (void)snprintf(args, sizeof(args), "{\"key\":\"%s\",\"token\":%llu,\"done\":%s}", key,
                   (unsigned long long)token, done ? "true" : "false");
    json_t *res = tool(s, id, "lock_release", args);
    if (is_error(res))
        fail_msg("release %s: %s", key, result_text(res));
    assert_string_equal(sc_str(res, "outcome"), "released");
    assert_true(json_is_true(json_object_get(sc(res), "done")) == done);
    json_decref(res);
}

#define CN_KEYS "{\"keys\":[\"cn/1\",\"cn/2\",\"cn/3\"]}"

static void claim_next_and_done(void **state)
{
    struct srv a, b;

    (void)state;
    srv_start(&a, NULL, NULL);
    srv_start(&b, NULL, NULL);
    init(&a, "claimer-a");
    init(&b, "claimer-b");
    /* Two clients: two different tasks, the first free ones in order. */
    json_t *ra = tool(&a, 1, "claim_next", CN_KEYS);
    json_t *rb = tool(&b, 1, "claim_next", CN_KEYS);
    assert_false(is_error(ra));
    assert_false(is_error(rb));
    assert_string_equal(sc_str(ra, "outcome"), "claimed");
    assert_string_equal(sc_str(ra, "key"), "cn/1");
    assert_string_equal(sc_str(rb, "key"), "cn/2");
    assert_non_null(sc_str(ra, "expires_at"));
    assert_memory_equal(sc_str(ra, "worker_id"), "claimer-a-", 10);
    uint64_t t1 = sc_token(ra), t2 = sc_token(rb);
    assert_true(t1 > 0 && t2 > 0);
    json_decref(ra);
    json_decref(rb);
    /* The claimed lock is in the server's bookkeeping: heartbeated on request too. */
    char args[200];
    (void)snprintf(args, sizeof(args), "{\"key\":\"cn/1\",\"token\":%llu}", (unsigned long long)t1);
    json_t *res = tool(&a, 2, "lock_heartbeat", args);
    assert_false(is_error(res));
    json_decref(res);

    /* Finished: a done release; lock_status shows the marker; claim_next skips it. */
    release_tool(&a, 3, "cn/1", t1, true);
    res = tool(&b, 2, "lock_status", "{\"key\":\"cn/1\"}");
    assert_false(json_is_true(json_object_get(sc(res), "held")));
    json_t *done = json_object_get(sc(res), "done");
    assert_true(json_is_object(done));
    assert_memory_equal(json_string_value(json_object_get(done, "worker_id")), "claimer-a-", 10);
    assert_int_equal(json_integer_value(json_object_get(done, "token")), (json_int_t)t1);
    json_decref(res);
    res = tool(&b, 3, "lock_status", "{\"key\":\"cn/2\"}");
    assert_true(json_is_null(json_object_get(sc(res), "done")));
    json_decref(res);
    res = tool(&b, 4, "lock_list", "{\"prefix\":\"cn/\",\"include_done\":true}");
    json_t *dl = json_object_get(sc(res), "done");
    assert_int_equal(json_array_size(dl), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(dl, 0), "key")), "cn/1");
    assert_int_equal(json_integer_value(json_object_get(sc(res), "count")), 1); /* cn/2 */
    json_decref(res);
    res = tool(&b, 5, "lock_list", "{}");
    assert_null(json_object_get(sc(res), "done"));
    json_decref(res);
    res = tool(&a, 4, "claim_next", CN_KEYS);
    assert_string_equal(sc_str(res, "key"), "cn/3"); /* cn/1 done, cn/2 held by b */
    uint64_t t3 = sc_token(res);
    json_decref(res);

    /* Every candidate held or done: an error result counting them. */
    res = tool(&b, 4, "claim_next", CN_KEYS);
    assert_true(is_error(res));
    assert_non_null(strstr(result_text(res), "2 held"));
    assert_non_null(strstr(result_text(res), "1 done"));
    json_decref(res);

    /* Every candidate done: none_left, not an error. */
    release_tool(&b, 5, "cn/2", t2, true);
    release_tool(&a, 5, "cn/3", t3, true);
    res = tool(&b, 6, "claim_next", CN_KEYS);
    assert_false(is_error(res));
    assert_string_equal(sc_str(res, "outcome"), "none_left");
    assert_null(json_object_get(sc(res), "key"));
    assert_non_null(strstr(result_text(res), "TL_ENOTASK"));
    json_decref(res);

    /* Reopened: offered again. */
    res = tool(&b, 7, "lock_reopen", "{\"key\":\"cn/2\"}");
    assert_true(json_is_true(json_object_get(sc(res), "was_done")));
    json_decref(res);
    res = tool(&b, 8, "lock_reopen", "{\"key\":\"cn/2\"}");
    assert_true(json_is_false(json_object_get(sc(res), "was_done")));
    json_decref(res);
    res = tool(&b, 9, "claim_next", CN_KEYS);
    assert_string_equal(sc_str(res, "key"), "cn/2");
    json_decref(res);
    res = tool(&b, 10, "lock_history", "{\"key\":\"cn/2\"}");
    json_t *ev = json_object_get(sc(res), "events");
    const char *want[] = {"acquired", "done", "reopened", "acquired"};
    assert_int_equal(json_array_size(ev), 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(ev, i), "event")),
                            want[i]);
    json_decref(res);
    /* A claimed lock is released when its client goes away, like an acquired one. */
    assert_int_equal(srv_end(&b, 0), 0);
    char *h = holder_of("cn/2");
    assert_null(h);
    assert_int_equal(srv_end(&a, 0), 0);
}

static void claim_next_waits_and_is_cancelled(void **state)
{
    struct srv s;
    tl_manager *m = other("cn-blocker");
    tl_lock *lock = NULL;
    const char *opts[] = {"--max-wait", "500ms", NULL};

    (void)state;
    assert_int_equal(tl_acquire(m, "cw/1", NULL, &lock), TL_OK);
    srv_start(&s, NULL, NULL);
    init(&s, "cn-canceller");
    /* A waiting claim_next, cancelled: no reply, and the connection goes on at once (it would
     * wait 30 s, longer than LIMIT_MS). The ping tells that the request was read. */
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"cw\",\"method\":\"tools/call\",\"params\":{"
                 "\"name\":\"claim_next\",\"arguments\":{\"keys\":[\"cw/1\"],\"wait_seconds\":30,"
                 "\"strategy\":\"retry\"}}}");
    json_t *r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "p");
    json_decref(r);
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
                 "\"requestId\":\"cw\",\"reason\":\"enough\"}}");
    int64_t t0 = mono_ms();
    r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"after\",\"method\":\"tools/list\"}");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "after");
    assert_true(mono_ms() - t0 < LIMIT_MS);
    json_decref(r);
    /* It is over and took nothing: the key freed now stays free. */
    assert_int_equal(tl_release(lock, NULL), TL_OK);
    tl_lock_free(lock);
    lock = NULL;
    json_t *res = tool(&s, 1, "lock_status", "{\"key\":\"cw/1\"}");
    assert_false(json_is_true(json_object_get(sc(res), "held")));
    json_decref(res);

    /* A waiting claim_next gets the task when it comes free. */
    assert_int_equal(tl_acquire(m, "cw/1", NULL, &lock), TL_OK);
    srv_send(&s,
             "{\"jsonrpc\":\"2.0\",\"id\":\"cw2\",\"method\":\"tools/call\",\"params\":{"
             "\"name\":\"claim_next\",\"arguments\":{\"keys\":[\"cw/1\"],\"wait_seconds\":30}}}");
    r = rpc(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"p2\",\"method\":\"ping\"}");
    json_decref(r);
    assert_int_equal(tl_release(lock, NULL), TL_OK);
    tl_lock_free(lock);
    r = srv_recv(&s, LIMIT_MS);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "cw2");
    json_t *got = json_object_get(r, "result");
    assert_false(is_error(got));
    assert_string_equal(sc_str(got, "key"), "cw/1");
    json_decref(r);
    char *h = holder_of("cw/1");
    assert_memory_equal(h, "cn-canceller-", 13);
    free(h);
    assert_int_equal(srv_end(&s, 0), 0);

    /* --max-wait caps a claim_next's wait too. */
    lock = NULL;
    assert_int_equal(tl_acquire(m, "cw/2", NULL, &lock), TL_OK);
    srv_start(&s, NULL, opts);
    init(&s, "cn-capped");
    int64_t t1 = mono_ms();
    res = tool(&s, 1, "claim_next", "{\"keys\":[\"cw/2\"],\"wait_seconds\":30}");
    assert_true(is_error(res));
    assert_true(mono_ms() - t1 < 10000);
    assert_non_null(strstr(result_text(res), "1 held"));
    json_decref(res);
    assert_int_equal(srv_end(&s, 0), 0);
    assert_int_equal(tl_release(lock, NULL), TL_OK);
    tl_lock_free(lock);
    tl_manager_free(m);
}

/* `tasklock ARGS...` with no input: its exit status, and its standard output in `out`. */
static int run_plain(const char *const args[], char *out, size_t size)
{
    struct srv s;
    const char *argv[16] = {binary};
    size_t n = 1, len = 0;

    for (size_t i = 0; args[i] != NULL; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    memset(&s, 0, sizeof(s));
    assert_int_equal(tl_spawn_piped("test_mcp", argv, &s.pid, &s.in, &s.out), 0);
    (void)close(s.in);
    for (;;) {
        struct pollfd p = {.fd = s.out, .events = POLLIN};
        if (poll(&p, 1, LIMIT_MS) <= 0)
            fail_msg("no end of output");
        ssize_t got = read(s.out, out + len, size - 1 - len);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    out[len] = '\0';
    s.in = open("/dev/null", O_WRONLY); /* srv_end closes it */
    return srv_end(&s, 0);
}

static void usage_and_help(void **state)
{
    char out[8192];

    (void)state;
    assert_int_equal(run_plain((const char *[]){"mcp", "--help", NULL}, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "usage: tasklock [global options] mcp"));
    assert_non_null(strstr(out, "--on-exit"));
    assert_int_equal(run_plain((const char *[]){"help", "mcp", NULL}, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "--max-wait"));
    assert_int_equal(run_plain((const char *[]){"help", NULL}, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "  mcp "));
    assert_int_equal(
        run_plain((const char *[]){"mcp", "--on-exit", "never", NULL}, out, sizeof(out)), 2);
    assert_int_equal(
        run_plain((const char *[]){"mcp", "--max-wait", "soon", NULL}, out, sizeof(out)), 2);
    assert_int_equal(run_plain((const char *[]){"mcp", "extra", NULL}, out, sizeof(out)), 2);
    assert_string_equal(out, ""); /* nothing but protocol messages on standard output */
    assert_int_equal(
        run_plain((const char *[]){"--json", "mcp", "--bogus", NULL}, out, sizeof(out)), 2);
    assert_string_equal(out, ""); /* not even --json's error document */
    /* No input at all: a clean exit. */
    assert_int_equal(run_plain((const char *[]){"-s", store, "mcp", NULL}, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const char *bindir = tl_test_env("TL_TEST_BINARY_DIR");

    if (bindir == NULL) {
        (void)fprintf(stderr, "TL_TEST_BINARY_DIR is not set: skipping\n");
        return 77;
    }
    (void)snprintf(binary, sizeof(binary), "%s/tasklock", bindir);
    if (access(binary, X_OK) != 0) {
        (void)fprintf(stderr, "%s is not built: skipping\n", binary);
        return 77;
    }
    /* The worker ids under test come from clientInfo or -w, never from the environment. */
    (void)unsetenv("TASKLOCK_WORKER"); /* NOLINT(concurrency-mt-unsafe): no threads yet */
    (void)unsetenv("TASKLOCK_STORE");  /* NOLINT(concurrency-mt-unsafe) */
    (void)signal(SIGPIPE, SIG_IGN);
    dir = tl_test_mkdtemp();
    if (dir == NULL)
        return 1;
    (void)snprintf(store, sizeof(store), "sqlite:%s/mcp.db", dir);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(usage_and_help),
        cmocka_unit_test(handshake_in_every_legacy_version),
        cmocka_unit_test(notifications_get_no_reply),
        cmocka_unit_test(the_stateless_era),
        cmocka_unit_test(every_error_code),
        cmocka_unit_test(internal_error_when_the_store_fails),
        cmocka_unit_test(long_lines),
        cmocka_unit_test(conflicts_name_the_holder),
        cmocka_unit_test(worker_ids),
        cmocka_unit_test(reused_id_and_cancellation),
        cmocka_unit_test(the_end_of_input_releases),
        cmocka_unit_test(sigterm_releases),
        cmocka_unit_test(keep_leaves_them_held),
        cmocka_unit_test(eof_while_waiting),
        cmocka_unit_test(max_wait_caps_the_wait),
        cmocka_unit_test(release_outcomes_and_resources),
        cmocka_unit_test(claim_next_and_done),
        cmocka_unit_test(claim_next_waits_and_is_cancelled),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    tl_test_rmtree(dir);
    free(dir);
    return rc;
}
