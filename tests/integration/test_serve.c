/*
 * test_serve.c -- `tasklock serve` over HTTP: the built binary is spawned on a temporary SQLite
 * store (port 0, --refresh 200ms) and spoken to with a small HTTP client on raw sockets. Every
 * route and its headers; the JSON API compared with `tasklock list/status/log --json` on the
 * same store; 400/404/405; the admin action (403 read-only, 401 missing or bad token, 409 a
 * changed lock, 200); the listen-address rule; a client that closes mid-stream; 200 event
 * streams at once with the store still read once per interval (serve's own counter); SIGTERM
 * with streams open; the admin token never in serve's output.
 * Waits are bounded polls; the server's exit is waited for with a bound too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_proxy.h"
#include "tl_spawn.h"
#include "tl_test.h"

#define LIMIT_MS   20000
#define REFRESH_MS 200
#define TOKEN      "s3cret-admin-token-7f1d"
#define CLIENTS    200

static char *dir;
static char store[700];         /* sqlite:DIR/serve.db */
static char binary[700];        /* BUILD/tasklock */
static const char *serve_store; /* NULL: store */

struct srv {
    pid_t pid;
    int in, out;
    int port;
    char err[800]; /* its stderr, in a file */
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Reads one line from fd within the limit; false on EOF or timeout. */
static bool read_line(int fd, char *buf, size_t size, int limit_ms)
{
    size_t n = 0;
    int64_t end = mono_ms() + limit_ms;

    while (n + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - mono_ms());

        if (left <= 0 || poll(&p, 1, left) <= 0)
            return false;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0)
            return false;
        if (c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return true;
}

/* Starts `tasklock -s STORE -v serve --listen 127.0.0.1:0 --refresh 200ms [opts...]`, stderr
 * to a file. Returns false (and the exit status in *status) if it exits instead of listening. */
static bool srv_try(struct srv *s, const char *const opts[], int *status)
{
    static int seq;
    const char *argv[40] = {"/bin/sh", "-c", "f=$1; shift; exec \"$@\" 2>>\"$f\"", "sh"};
    size_t n = 4;

    memset(s, 0, sizeof(*s));
    (void)snprintf(s->err, sizeof(s->err), "%s/serve-%d.err", dir, ++seq);
    argv[n++] = s->err;
    argv[n++] = binary;
    argv[n++] = "-s";
    argv[n++] = serve_store != NULL ? serve_store : store;
    argv[n++] = "-v";
    argv[n++] = "serve";
    argv[n++] = "--refresh";
    argv[n++] = "200ms";
    bool listen_given = false;
    for (size_t i = 0; opts != NULL && opts[i] != NULL; i++) {
        listen_given = listen_given || strcmp(opts[i], "--listen") == 0;
        argv[n++] = opts[i];
    }
    if (!listen_given) {
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
    }
    argv[n] = NULL;
    assert_int_equal(tl_spawn_piped("test_serve", argv, &s->pid, &s->in, &s->out), 0);

    char line[512];
    if (!read_line(s->out, line, sizeof(line), LIMIT_MS)) {
        int st = 0;
        for (int64_t end = mono_ms() + LIMIT_MS; mono_ms() < end;) {
            if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
                *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                (void)close(s->in);
                (void)close(s->out);
                return false;
            }
            sleep_ms(10);
        }
        fail_msg("serve neither listened nor exited");
    }
    const char *colon = strrchr(line, ':');
    assert_non_null(colon);
    s->port = (int)strtol(colon + 1, NULL, 10);
    assert_true(s->port > 0);
    return true;
}

static void srv_start(struct srv *s, const char *const opts[])
{
    int status = 0;

    if (!srv_try(s, opts, &status)) {
        char buf[4096] = "";
        FILE *f = fopen(s->err, "r");
        size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

        if (f != NULL)
            (void)fclose(f);
        buf[n] = '\0';
        fail_msg("serve exited with %d: %s", status, buf);
    }
}

/* SIGTERM, then its exit within the bound: 0. */
static void srv_stop(struct srv *s)
{
    int st = 0;

    assert_int_equal(kill(s->pid, SIGTERM), 0);
    for (int64_t end = mono_ms() + LIMIT_MS;; sleep_ms(10)) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid)
            break;
        if (mono_ms() > end) {
            (void)kill(s->pid, SIGKILL);
            (void)waitpid(s->pid, &st, 0);
            fail_msg("serve did not stop within %d ms of SIGTERM", LIMIT_MS);
        }
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    (void)close(s->in);
    (void)close(s->out);
}

/* ---- a small HTTP client ---- */

static int dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = LIMIT_MS / 1000};

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const char *data)
{
    for (size_t done = 0, len = strlen(data); done < len;) {
        ssize_t w = send(fd, data + done, len - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        done += (size_t)w;
    }
}

struct resp {
    int status;
    char *head; /* the status line and headers */
    char *body;
};

static void resp_free(struct resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* One request on its own connection (Connection: close); `extra` is more header lines. */
static struct resp http(int port, const char *method, const char *path, const char *extra)
{
    char req[2048];
    int fd = dial(port);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);

    assert_non_null(buf);
    (void)snprintf(req, sizeof(req),
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s\r\n", method,
                   path, extra ? extra : "",
                   strcmp(method, "POST") == 0 ? "Content-Length: 0\r\n" : "");
    send_all(fd, req);
    for (;;) {
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        assert_true(r >= 0);
        if (r == 0)
            break;
        len += (size_t)r;
    }
    (void)close(fd);
    buf[len] = '\0';
    struct resp out = {0};
    char *sep = strstr(buf, "\r\n\r\n");
    assert_non_null(sep);
    *sep = '\0';
    out.head = strdup(buf);
    out.body = strdup(sep + 4);
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &out.status), 1);
    free(buf);
    return out;
}

/* The value of header `name` (case-insensitive) in a response head, or NULL; in buf. */
static const char *header(const struct resp *r, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);

    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r");
            (void)snprintf(buf, size, "%.*s", (int)len, v);
            return buf;
        }
    }
    return NULL;
}

static json_t *get_json(int port, const char *path)
{
    struct resp r = http(port, "GET", path, NULL);
    json_error_t e;

    assert_int_equal(r.status, 200);
    json_t *doc = json_loads(r.body, 0, &e);
    if (doc == NULL)
        fail_msg("%s: not JSON: %s: %.200s", path, e.text, r.body);
    resp_free(&r);
    return doc;
}

/* `tasklock -s STORE ARGS --json` parsed. */
static json_t *cli_json(const char *args)
{
    char cmd[2048], out[1 << 16];

    (void)snprintf(cmd, sizeof(cmd), "%s -s %s %s --json", binary, store, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    (void)pclose(p);
    out[n] = '\0';
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    return doc;
}

static double metric(int port, const char *name)
{
    struct resp r = http(port, "GET", "/metrics", NULL);
    double v = -1;

    assert_int_equal(r.status, 200);
    for (char *line = strtok(r.body, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        size_t n = strlen(name);
        if (strncmp(line, name, n) == 0 && (line[n] == ' ' || line[n] == '{'))
            v = strtod(strrchr(line, ' ') + 1, NULL);
    }
    resp_free(&r);
    return v;
}

/* ---- the store, as another worker sees it ---- */

static tl_manager *worker(const char *id)
{
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = store, .worker_id = id});

    assert_non_null(m);
    assert_int_equal(tl_connect(m), TL_OK);
    return m;
}

static tl_lock *take(tl_manager *m, const char *key, const char *info)
{
    tl_lock *l = NULL;
    struct tl_acquire_opts o = {.strategy = TL_FAIL_FAST, .task_info = info};

    assert_int_equal(tl_acquire(m, key, &o, &l), TL_OK);
    return l;
}

struct cond_arg {
    int port;
    const char *path;
    const char *needle;
    bool present;
};

static bool body_has(void *arg)
{
    struct cond_arg *c = arg;
    struct resp r = http(c->port, "GET", c->path, NULL);
    bool has = r.status == 200 && strstr(r.body, c->needle) != NULL;

    resp_free(&r);
    return has == c->present;
}

/* ---- the tests ---- */

static void routes_and_shapes(void **state)
{
    struct srv s;
    tl_manager *m = worker("alice");
    tl_lock *a = take(m, "deploy:prod", "{\"ticket\":\"<b>T-1</b>\"}");
    tl_lock *b = take(m, "build/main", NULL);
    char buf[512];

    (void)state;
    srv_start(&s, NULL);

    static const struct {
        const char *path, *type;
    } routes[] = {
        {"/", "text/html"},
        {"/app.css", "text/css"},
        {"/app.js", "text/javascript"},
        {"/api/locks", "application/json"},
        {"/api/locks/deploy:prod", "application/json"},
        {"/api/locks/free-key", "application/json"},
        {"/api/history?limit=5", "application/json"},
        {"/api/history?key=deploy:prod", "application/json"},
        {"/api/metrics", "application/json"},
        {"/metrics", "text/plain; version=0.0.4"},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        struct resp r = http(s.port, "GET", routes[i].path, NULL);

        assert_int_equal(r.status, 200);
        assert_non_null(header(&r, "Content-Type", buf, sizeof(buf)));
        assert_non_null(strstr(buf, routes[i].type));
        assert_non_null(header(&r, "Content-Security-Policy", buf, sizeof(buf)));
        assert_non_null(strstr(buf, "default-src 'none'"));
        assert_null(strstr(buf, "unsafe-inline"));
        assert_non_null(header(&r, "X-Content-Type-Options", buf, sizeof(buf)));
        resp_free(&r);
    }
    /* The page has no inline script or style: everything comes from /app.js and /app.css. */
    struct resp page = http(s.port, "GET", "/", NULL);
    assert_null(strstr(page.body, "<script>"));
    assert_null(strstr(page.body, "style="));
    assert_non_null(strstr(page.body, "src=\"/app.js\""));
    resp_free(&page);
    struct resp js = http(s.port, "GET", "/app.js", NULL);
    assert_null(strstr(js.body, "innerHTML"));
    assert_null(strstr(js.body, "insertAdjacentHTML"));
    resp_free(&js);

    /* The same shapes as the command line's --json. */
    json_t *api = get_json(s.port, "/api/locks"), *cli = cli_json("list");
    assert_true(json_equal(api, cli));
    assert_int_equal(json_array_size(json_object_get(api, "locks")), 2);
    json_decref(api);
    json_decref(cli);
    api = get_json(s.port, "/api/locks/deploy:prod");
    cli = cli_json("status deploy:prod");
    assert_true(json_equal(api, cli));
    json_decref(api);
    json_decref(cli);
    api = get_json(s.port, "/api/locks/free-key");
    cli = cli_json("status free-key");
    assert_true(json_equal(api, cli));
    json_decref(api);
    json_decref(cli);
    api = get_json(s.port, "/api/history?limit=2");
    cli = cli_json("log --limit 2");
    assert_true(json_equal(api, cli));
    json_decref(api);
    json_decref(cli);
    api = get_json(s.port, "/api/history?key=build/main");
    cli = cli_json("log build/main");
    assert_true(json_equal(api, cli));
    json_decref(api);
    json_decref(cli);

    /* Release one: it disappears within two refreshes, the trail and counters show it. */
    assert_int_equal(tl_release(b, "done"), TL_OK);
    struct cond_arg gone = {s.port, "/api/locks", "build/main", false};
    assert_true(tl_test_poll(body_has, &gone, 20, LIMIT_MS));
    struct cond_arg rel = {s.port, "/api/history?key=build/main", "\"released\"", true};
    assert_true(tl_test_poll(body_has, &rel, 20, LIMIT_MS));
    json_t *met = get_json(s.port, "/api/metrics");
    assert_int_equal(json_integer_value(json_object_get(met, "locks_held")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(met, "events_total"), "released")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(met, "events_by_prefix"), "build"), "released")),
        1);
    json_decref(met);
    assert_true(metric(s.port, "tasklock_locks_held") == 1);
    struct resp pr = http(s.port, "GET", "/metrics", NULL);
    assert_non_null(strstr(pr.body, "tasklock_events_total{store=\""));
    assert_non_null(strstr(pr.body, "prefix=\"build\",event=\"released\"} 1"));
    assert_non_null(
        strstr(pr.body, "tasklock_serve_requests_total{route=\"/api/locks\",code=\"200\"}"));
    resp_free(&pr);

    /* HEAD is a GET without the body. */
    struct resp head = http(s.port, "HEAD", "/api/locks", NULL);
    assert_int_equal(head.status, 200);
    assert_string_equal(head.body, "");
    resp_free(&head);

    srv_stop(&s);
    assert_int_equal(tl_release(a, NULL), TL_OK);
    tl_lock_free(a);
    tl_lock_free(b);
    tl_manager_free(m);
}

static void errors(void **state)
{
    struct srv s;
    char buf[256];

    (void)state;
    srv_start(&s, NULL);
    static const struct {
        const char *method, *path;
        int status;
        const char *allow;
    } cases[] = {
        {"GET", "/nope", 404, NULL},
        {"GET", "/api", 404, NULL},
        {"GET", "/api/locks/", 404, NULL},
        {"POST", "/api/locks", 405, "GET, HEAD"},
        {"DELETE", "/", 405, "GET, HEAD"},
        {"PUT", "/api/locks/k", 405, "GET, HEAD"},
        {"POST", "/metrics", 405, "GET, HEAD"},
        {"GET", "/api/locks/bad%20key", 400, NULL},
        {"GET", "/api/history?limit=0", 400, NULL},
        {"GET", "/api/history?limit=1001", 400, NULL},
        {"GET", "/api/history?limit=x", 400, NULL},
        {"GET", "/api/history?key=a%0Ab", 400, NULL},
        {"POST", "/api/locks/k/release", 403, NULL}, /* read-only: no admin token file */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp r = http(s.port, cases[i].method, cases[i].path, NULL);

        if (r.status != cases[i].status)
            fail_msg("%s %s: %d, not %d", cases[i].method, cases[i].path, r.status,
                     cases[i].status);
        assert_non_null(header(&r, "Content-Security-Policy", buf, sizeof(buf)));
        if (cases[i].allow != NULL) {
            assert_non_null(header(&r, "Allow", buf, sizeof(buf)));
            assert_string_equal(buf, cases[i].allow);
        }
        json_t *doc = json_loads(r.body, 0, NULL);
        assert_true(json_is_string(json_object_get(doc, "error")));
        json_decref(doc);
        resp_free(&r);
    }
    /* The page of a read-only server offers no admin action. */
    json_t *m = get_json(s.port, "/api/metrics");
    json_decref(m);
    srv_stop(&s);
}

static void admin(void **state)
{
    char token_file[800], auth[256];
    struct srv s;

    (void)state;
    (void)snprintf(token_file, sizeof(token_file), "%s/token", dir);
    FILE *f = fopen(token_file, "w");
    assert_non_null(f);
    (void)fprintf(f, "  \n" TOKEN "\n\n");
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(token_file, 0600), 0);

    tl_manager *m = worker("bob");
    tl_lock *l = take(m, "admin:key", NULL);
    const char *opts[] = {"--admin-token-file", token_file, NULL};
    srv_start(&s, opts);

    struct resp r = http(s.port, "POST", "/api/locks/admin:key/release", NULL);
    char buf[256];
    assert_int_equal(r.status, 401); /* no token */
    assert_non_null(header(&r, "WWW-Authenticate", buf, sizeof(buf)));
    resp_free(&r);
    r = http(s.port, "POST", "/api/locks/admin:key/release",
             "Authorization: Bearer wrong-token\r\n");
    assert_int_equal(r.status, 401);
    resp_free(&r);
    r = http(s.port, "POST", "/api/locks/admin:key/release",
             "Authorization: Bearer " TOKEN "x\r\n");
    assert_int_equal(r.status, 401); /* a longer one */
    resp_free(&r);
    r = http(s.port, "POST", "/api/locks/admin:key/release",
             "Authorization: Basic Zm9vOmJhcg==\r\n");
    assert_int_equal(r.status, 401);
    resp_free(&r);
    (void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", TOKEN);
    r = http(s.port, "POST", "/api/locks/admin:key/release?token=12345", auth);
    assert_int_equal(r.status, 409); /* the lock has another token */
    resp_free(&r);
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(m, "admin:key", &info), TL_OK);
    assert_non_null(info);
    tl_info_free(info);

    char path[256];
    (void)snprintf(path, sizeof(path), "/api/locks/admin%%3Akey/release?token=%llu",
                   (unsigned long long)tl_lock_token(l));
    r = http(s.port, "POST", path, auth);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_true(json_is_true(json_object_get(doc, "released")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "holder"), "worker_id")), "bob");
    json_decref(doc);
    resp_free(&r);
    assert_int_equal(tl_inspect(m, "admin:key", &info), TL_OK);
    assert_null(info);
    struct cond_arg gone = {s.port, "/api/locks", "admin:key", false};
    assert_true(tl_test_poll(body_has, &gone, 20, LIMIT_MS));
    /* Again: nothing to break, still 200. */
    r = http(s.port, "POST", "/api/locks/admin:key/release", auth);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    srv_stop(&s);
    assert_int_equal(tl_release(l, NULL), TL_ENOTOWNER);
    tl_lock_free(l);
    tl_manager_free(m);

    /* The token never appears in what serve printed (-v logs every request). */
    f = fopen(s.err, "r");
    assert_non_null(f);
    char line[4096];
    bool logged = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        assert_null(strstr(line, TOKEN));
        logged = logged || strstr(line, "POST /api/locks/admin:key/release 401") != NULL;
    }
    (void)fclose(f);
    assert_true(logged);
}

static void listen_rule(void **state)
{
    struct srv s;
    int status = -1;
    const char *public_opts[] = {"--listen", "0.0.0.0:0", NULL};
    const char *ro_opts[] = {"--listen", "0.0.0.0:0", "--read-only-public", NULL};
    const char *bad_opts[] = {"--listen", "nonsense", NULL};

    (void)state;
    assert_false(srv_try(&s, public_opts, &status));
    assert_int_equal(status, 2);
    FILE *f = fopen(s.err, "r");
    char line[1024] = "";
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f));
    (void)fclose(f);
    assert_non_null(strstr(line, "not a loopback address"));
    assert_false(srv_try(&s, bad_opts, &status));
    assert_int_equal(status, 2);
    srv_start(&s, ro_opts);
    struct resp r = http(s.port, "POST", "/api/locks/k/release", NULL);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    srv_stop(&s);
}

/* Opens an event stream and reads up to the end of its first state event. */
static int stream_open(int port)
{
    int fd = dial(port);

    send_all(fd,
             "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
    return fd;
}

/* Reads from an event stream until `needle` appeared (in what was read since the call), within
 * the bound. */
static bool stream_wait(int fd, const char *needle, int limit_ms)
{
    static char buf[1 << 17];
    size_t len = 0;
    int64_t end = mono_ms() + limit_ms;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - mono_ms());

        if (left <= 0 || poll(&p, 1, left) <= 0)
            return false;
        if (len + 4096 >= sizeof(buf)) { /* keep the tail */
            memmove(buf, buf + len - 1024, 1024);
            len = 1024;
        }
        ssize_t r = recv(fd, buf + len, sizeof(buf) - len - 1, 0);
        if (r <= 0)
            return false;
        len += (size_t)r;
        buf[len] = '\0';
        if (strstr(buf, needle) != NULL)
            return true;
    }
}

static bool sse_clients_are(void *arg)
{
    const int *want = arg;

    return metric(want[0], "tasklock_serve_sse_clients") == want[1];
}

static void stream_closed_midway(void **state)
{
    struct srv s;

    (void)state;
    srv_start(&s, NULL);
    int fd = stream_open(s.port);
    assert_true(stream_wait(fd, "event: state", LIMIT_MS));
    int want[2] = {s.port, 1};
    assert_true(tl_test_poll(sse_clients_are, want, 20, LIMIT_MS));
    (void)close(fd); /* mid-stream */
    want[1] = 0;
    assert_true(tl_test_poll(sse_clients_are, want, 20, LIMIT_MS));

    /* One that stops after half a request line, and one that resets. */
    fd = dial(s.port);
    send_all(fd, "GET /api/eve");
    (void)close(fd);
    fd = stream_open(s.port);
    assert_true(stream_wait(fd, "event: state", LIMIT_MS));
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    (void)close(fd); /* RST */
    assert_true(tl_test_poll(sse_clients_are, want, 20, LIMIT_MS));
    struct resp r = http(s.port, "GET", "/api/locks", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    srv_stop(&s);
}

static void many_streams_one_reader(void **state)
{
    struct srv s;
    struct rlimit rl;
    int fds[CLIENTS];

    (void)state;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 1024 && rl.rlim_max >= 1024) {
        rl.rlim_cur = 1024;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    /* 50 locks held (the reader keeps their texts from one refresh to the next); one renewed
     * every 20 ms, so that some change at every refresh. */
    tl_manager *held = worker("dave");
    tl_lock *many[50];
    for (int i = 0; i < 50; i++) {
        char key[32];
        (void)snprintf(key, sizeof(key), "%s:%02d", i % 2 ? "odd" : "even", i);
        many[i] = take(held, key, NULL);
    }
    srv_start(&s, NULL);
    for (int i = 0; i < CLIENTS; i++)
        fds[i] = stream_open(s.port);
    for (int i = 0; i < CLIENTS; i++)
        assert_true(stream_wait(fds[i], "event: state", LIMIT_MS));
    int want[2] = {s.port, CLIENTS};
    assert_true(tl_test_poll(sse_clients_are, want, 20, LIMIT_MS));

    double r0 = metric(s.port, "tasklock_serve_store_reads_total");
    int64_t t0 = mono_ms();
    tl_manager *m = worker("carol");
    tl_lock *l = take(m, "many:streams", NULL);
    for (int i = 0; i < CLIENTS; i++) /* every stream hears of it */
        assert_true(stream_wait(fds[i], "many:streams", LIMIT_MS));
    for (int i = 0; i < 50; i++) {
        assert_int_equal(tl_renew(many[i]), TL_OK);
        sleep_ms(20);
    }
    double r1 = metric(s.port, "tasklock_serve_store_reads_total");
    int64_t elapsed = mono_ms() - t0;
    double most = (double)elapsed / REFRESH_MS + 2;
    print_message("store reads: %.0f in %lld ms with %d streams (at most %.1f allowed)\n", r1 - r0,
                  (long long)elapsed, CLIENTS, most);
    assert_true(r1 - r0 >= 1);
    assert_true(r1 - r0 <= most);

    /* SIGTERM with every stream open: a clean, prompt exit. */
    srv_stop(&s);
    for (int i = 0; i < CLIENTS; i++)
        (void)close(fds[i]);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(tl_release(many[i], NULL), TL_OK);
        tl_lock_free(many[i]);
    }
    tl_manager_free(held);
}

static bool store_down(void *arg)
{
    const int *port = arg;
    struct resp r = http(*port, "GET", "/api/metrics", NULL);
    json_t *doc = json_loads(r.body, 0, NULL);
    bool down = json_is_false(json_object_get(doc, "store_ok"));

    json_decref(doc);
    resp_free(&r);
    return down;
}

/* The store goes away under a running serve (Redis behind a proxy that is stopped): the API,
 * the metrics and the page's state say so, and keep the last good data. */
static void store_unreachable(void **state)
{
    const char *redis = tl_test_env("TL_TEST_REDIS_URI");
    struct tl_proxy proxy = {0};
    char url[700];
    struct srv s;

    (void)state;
    if (redis == NULL) {
        print_message("TL_TEST_REDIS_URI is not set (tests/harness/with-servers): not tested\n");
        return;
    }
    assert_int_equal(tl_proxy_start(NULL, "127.0.0.1", tl_proxy_url_port(redis), &proxy), 0);
    assert_int_equal(tl_proxy_url_via(redis, proxy.port, url, sizeof(url) - 16), 0);
    /* A call gives up after 1 s (default 5 s: reconnecting is retried that long). */
    size_t ulen = strlen(url);
    (void)snprintf(url + ulen, sizeof(url) - ulen, "%s",
                   strchr(url, '?') ? "&timeout=1s" : "?timeout=1s");
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "erin"});
    assert_non_null(m);
    assert_int_equal(tl_connect(m), TL_OK);
    tl_lock *l = NULL;
    assert_int_equal(
        tl_acquire(m, "serve-test:down", &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l),
        TL_OK);
    serve_store = url;
    srv_start(&s, NULL);
    serve_store = NULL;
    assert_true(metric(s.port, "tasklock_store_up") == 1);
    /* SIGKILL: the store is gone at once (closing the proxy's input waits for its poll). */
    assert_int_equal(kill(proxy.pid, SIGKILL), 0);
    (void)tl_proxy_stop(&proxy); /* reaps it, closes the pipes */
    assert_true(tl_test_poll(store_down, &s.port, 20, LIMIT_MS));
    assert_true(metric(s.port, "tasklock_store_up") == 0);
    assert_true(metric(s.port, "tasklock_serve_store_errors_total") >= 1);
    struct cond_arg kept = {s.port, "/api/locks", "serve-test:down", true};
    assert_true(body_has(&kept));
    int fd = stream_open(s.port);
    assert_true(stream_wait(fd, "\"store_ok\":false", LIMIT_MS));
    (void)close(fd);
    srv_stop(&s);
    tl_lock_free(l); /* its store is gone: it goes stale (a short lock timeout would be kinder) */
    tl_manager_free(m);
    /* Clean up through Redis directly. */
    tl_manager *direct = tl_manager_new(&(struct tl_options){.store_url = redis});
    assert_non_null(direct);
    assert_int_equal(tl_connect(direct), TL_OK);
    assert_int_equal(tl_release_force(direct, "serve-test:down", 0, NULL, NULL), TL_OK);
    tl_manager_free(direct);
}

int main(void)
{
    const char *build = tl_test_env("TL_TEST_BINARY_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_and_shapes),
        cmocka_unit_test(errors),
        cmocka_unit_test(admin),
        cmocka_unit_test(listen_rule),
        cmocka_unit_test(stream_closed_midway),
        cmocka_unit_test(many_streams_one_reader),
        cmocka_unit_test(store_unreachable),
    };

    if (build == NULL) {
        (void)fprintf(stderr, "test_serve: TL_TEST_BINARY_DIR is not set: skipping\n");
        return 77;
    }
    (void)signal(SIGPIPE, SIG_IGN); /* NOLINT(cert-err33-c) */
    dir = tl_test_mkdtemp();
    if (dir == NULL)
        return 1;
    (void)snprintf(store, sizeof(store), "sqlite:%s/serve.db", dir);
    (void)snprintf(binary, sizeof(binary), "%s/tasklock", build);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tl_test_rmtree(dir);
    free(dir);
    return rc;
}
