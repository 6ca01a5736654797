/*
 * serve_http.c -- the HTTP face of `tasklock serve` (libmicrohttpd, a thread per connection):
 * the routes, server-sent events, the admin action, security headers and the request log.
 * Every answer comes from the current snapshot (serve_state.c); no request reads the store,
 * except the admin action, which writes it through its own manager.
 */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve.h"
#include "shapes.h"

/* Nothing but the page's own files: no inline script or style, no framing, no forms. */
static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                          "form-action 'none'; frame-ancestors 'none'";
static const char json_ctype[] = "application/json; charset=utf-8";

enum { BODY_MAX = 65536, KEEPALIVE_MS = 15000, LIMIT_DEFAULT = 100 };

/* One request, across the handler's calls. */
struct req {
    int64_t t0;
    size_t body; /* bytes of request body seen (ignored) */
};

static void count(struct tl_serve *s, int route, unsigned code)
{
    int c = 0;

    while (c < TL_SERVE_CODES - 1 && tl_serve_codes[c] != code)
        c++;
    if (tl_serve_codes[c] != code)
        c = 8; /* 500 */
    (void)pthread_mutex_lock(&s->mu);
    s->requests[route][c]++;
    (void)pthread_mutex_unlock(&s->mu);
}

/* With -v, one line per request on stderr; with --json, a JSON object. Never a header's
 * value (the admin token) nor the query string. */
static void log_request(struct tl_serve *s, const char *method, const char *url, unsigned code,
                        const struct req *r)
{
    if (s->cli->verbose == 0)
        return;
    double ms = (double)(tl_cli_mono_ms() - r->t0);
    if (s->cli->json) {
        char at[48];
        json_t *path = json_string(url);

        tl_cli_format_time(tl_cli_now_ms(), true, at, sizeof(at));
        json_t *doc = json_pack("{s:s, s:s, s:o, s:i, s:f}", "at", at, "method", method, "path",
                                path != NULL ? path : json_string("(not UTF-8)"), "status",
                                (int)code, "ms", ms);
        char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

        if (text != NULL)
            (void)fprintf(stderr, "%s\n", text);
        free(text);
        json_decref(doc);
        return;
    }
    char shown[512];
    size_t n = 0;
    for (const char *p = url; *p != '\0' && n < sizeof(shown) - 1; p++) {
        shown[n] = *p;
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            shown[n] = '?';
        n++;
    }
    shown[n] = '\0';
    (void)fprintf(stderr, "tasklock: serve: %s %s %u %.0fms\n", method, shown, code, ms);
}

static void add_headers(struct MHD_Response *resp, const char *type, const char *cache)
{
    (void)MHD_add_response_header(resp, "Content-Type", type);
    (void)MHD_add_response_header(resp, "Content-Security-Policy", csp);
    (void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    (void)MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    (void)MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    (void)MHD_add_response_header(resp, "Cache-Control", cache);
}

struct answer {
    struct tl_serve *s;
    struct MHD_Connection *c;
    const char *method, *url;
    const struct req *r;
    int route;
};

/* Queues `len` bytes of `body` (copied unless `persistent`) with status `code`. */
static enum MHD_Result send_body(const struct answer *a, unsigned code, const char *type,
                                 const char *body, size_t len, bool persistent,
                                 const char *extra_name, const char *extra_value)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)body, persistent ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);

    if (resp == NULL)
        return MHD_NO;
    add_headers(resp, type, persistent ? "no-cache" : "no-store");
    if (extra_name != NULL)
        (void)MHD_add_response_header(resp, extra_name, extra_value);
    enum MHD_Result ret = MHD_queue_response(a->c, code, resp);
    MHD_destroy_response(resp);
    count(a->s, a->route, code);
    log_request(a->s, a->method, a->url, code, a->r);
    return ret;
}

static enum MHD_Result send_json(const struct answer *a, unsigned code, const char *text)
{
    if (text == NULL)
        return send_body(a, 500, json_ctype, "{\"error\":\"out of memory\"}\n", 26, true, NULL,
                         NULL);
    return send_body(a, code, json_ctype, text, strlen(text), false, NULL, NULL);
}

/* Steals `doc`. */
static enum MHD_Result send_doc(const struct answer *a, unsigned code, json_t *doc)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    enum MHD_Result ret = send_json(a, code, text);
    free(text);
    return ret;
}

static enum MHD_Result send_error(const struct answer *a, unsigned code, const char *msg,
                                  const char *extra_name, const char *extra_value)
{
    json_t *doc = json_pack("{s:s}", "error", msg);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    if (text == NULL)
        return send_json(a, 500, NULL);
    enum MHD_Result ret =
        send_body(a, code, json_ctype, text, strlen(text), false, extra_name, extra_value);
    free(text);
    return ret;
}

/* ---- the routes ---- */

static int cmp_key(const void *key, const void *elem)
{
    return strcmp(key, ((const struct tl_serve_lock *)elem)->key);
}

static enum MHD_Result get_lock(const struct answer *a, const char *key)
{
    if (!tl_key_is_valid(key))
        return send_error(a, 400, "not a valid key", NULL, NULL);
    struct tl_serve_snapshot *snap = tl_serve_snapshot_get(a->s);
    const struct tl_serve_lock *l =
        snap->nlock > 0 ? bsearch(key, snap->lock, snap->nlock, sizeof(*l), cmp_key) : NULL;
    enum MHD_Result ret;

    if (l != NULL)
        ret = send_json(a, 200, l->status);
    else
        ret = send_doc(a, 200, tl_cli_status_json(key, NULL, NULL, 0, NULL, 0, snap->has_line));
    tl_serve_snapshot_put(a->s, snap);
    return ret;
}

static bool parse_uint(const char *text, uint64_t max, uint64_t *out)
{
    char *end = NULL;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static enum MHD_Result get_history(const struct answer *a)
{
    const char *key = MHD_lookup_connection_value(a->c, MHD_GET_ARGUMENT_KIND, "key");
    const char *limit_text = MHD_lookup_connection_value(a->c, MHD_GET_ARGUMENT_KIND, "limit");
    uint64_t limit = LIMIT_DEFAULT;

    if (key != NULL && key[0] == '\0')
        key = NULL;
    if (key != NULL && !tl_key_is_valid(key))
        return send_error(a, 400, "key: not a valid key", NULL, NULL);
    if (limit_text != NULL && limit_text[0] != '\0' &&
        (!parse_uint(limit_text, TL_SERVE_EVENTS, &limit) || limit == 0))
        return send_error(a, 400, "limit: give a whole number from 1 to 1000", NULL, NULL);

    struct tl_serve_snapshot *snap = tl_serve_snapshot_get(a->s);
    size_t first = snap->nevents, taken = 0;
    while (first > 0 && taken < limit) {
        first--;
        if (key == NULL || strcmp(snap->events[first]->key, key) == 0)
            taken++;
    }
    struct tl_serve_buf b = {0};
    tl_serve_buf_puts(&b, "{\"events\":[");
    bool comma = false;
    for (size_t i = first; taken > 0 && i < snap->nevents; i++) {
        if (key != NULL && strcmp(snap->events[i]->key, key) != 0)
            continue;
        tl_serve_buf_puts(&b, comma ? "," : "");
        tl_serve_buf_puts(&b, snap->events[i]->text);
        comma = true;
    }
    tl_serve_buf_puts(&b, "]}");
    tl_serve_snapshot_put(a->s, snap);
    char *text = tl_serve_buf_take(&b);
    enum MHD_Result ret = send_json(a, 200, text);
    free(text);
    return ret;
}

static enum MHD_Result get_api_metrics(const struct answer *a)
{
    struct tl_serve *s = a->s;
    struct tl_serve_snapshot *snap = tl_serve_snapshot_get(s);
    json_t *doc = json_loads(snap->metrics, 0, NULL);

    tl_serve_snapshot_put(s, snap);
    (void)pthread_mutex_lock(&s->mu);
    json_t *self = json_pack("{s:I, s:I, s:I, s:I, s:f, s:I}", "store_reads",
                             (json_int_t)s->refreshes, "store_calls", (json_int_t)s->store_calls,
                             "store_errors", (json_int_t)s->store_errors, "history_gaps",
                             (json_int_t)s->history_gaps, "refresh_duration_seconds",
                             s->refresh_seconds, "sse_clients", (json_int_t)s->sse_clients);
    (void)pthread_mutex_unlock(&s->mu);
    if (doc == NULL || self == NULL || json_object_set_new(doc, "serve", self) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    return send_doc(a, 200, doc);
}

static enum MHD_Result get_prom(const struct answer *a)
{
    struct tl_serve_snapshot *snap = tl_serve_snapshot_get(a->s);
    struct tl_serve_buf b = {0};

    tl_serve_buf_puts(&b, snap->prom);
    tl_serve_snapshot_put(a->s, snap);
    tl_serve_prom_self(a->s, &b);
    char *text = tl_serve_buf_take(&b);
    if (text == NULL)
        return send_json(a, 500, NULL);
    enum MHD_Result ret = send_body(a, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                                    strlen(text), false, NULL, NULL);
    free(text);
    return ret;
}

/* Compares in time that depends only on the expected token's length. */
static bool token_matches(const struct tl_serve *s, const char *given)
{
    size_t glen = strlen(given);
    volatile unsigned char diff = glen != s->admin_token_len;

    for (size_t i = 0; i < s->admin_token_len; i++)
        diff |= (unsigned char)s->admin_token[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

static enum MHD_Result post_release(const struct answer *a, const char *key)
{
    struct tl_serve *s = a->s;

    if (!s->admin_enabled)
        return send_error(a, 403, "read-only: serve runs without --admin-token-file", NULL, NULL);
    const char *auth = MHD_lookup_connection_value(a->c, MHD_HEADER_KIND, "Authorization");
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 || !token_matches(s, auth + 7))
        return send_error(a, 401, "give the admin token: Authorization: Bearer TOKEN",
                          "WWW-Authenticate", "Bearer realm=\"tasklock\"");
    if (!tl_key_is_valid(key))
        return send_error(a, 400, "not a valid key", NULL, NULL);
    const char *token_text = MHD_lookup_connection_value(a->c, MHD_GET_ARGUMENT_KIND, "token");
    uint64_t token = 0;
    if (token_text != NULL && token_text[0] != '\0' && !parse_uint(token_text, UINT64_MAX, &token))
        return send_error(a, 400, "token: give the lock's fencing token", NULL, NULL);

    struct tl_info *former = NULL;
    char msg[512];
    (void)pthread_mutex_lock(&s->admin_mu);
    tl_status st =
        tl_release_force(s->admin, key, token, "forced release from tasklock serve", &former);
    (void)snprintf(msg, sizeof(msg), "%s", st == TL_OK ? "" : tl_errmsg(s->admin));
    (void)pthread_mutex_unlock(&s->admin_mu);
    if (st != TL_OK) {
        unsigned code = st == TL_ENOTOWNER ? 409
                        : st == TL_EINVAL  ? 400
                        : st == TL_ENOTSUP ? 405
                                           : 503;
        return send_error(a, code, msg[0] != '\0' ? msg : tl_strerror(st), NULL, NULL);
    }
    tl_cli_info(s->cli, "force-released %s (%s)", key, former != NULL ? "was held" : "was free");
    char *meta = former != NULL ? tl_info_to_json(former) : NULL;
    json_t *holder = former != NULL ? tl_cli_lock_json(key, meta, true, former->stale) : NULL;
    json_t *doc = json_pack("{s:s, s:b, s:b, s:O?}", "key", key, "released", former != NULL,
                            "forced", 1, "holder", json_object_get(holder, "lock"));
    tl_free(meta);
    json_decref(holder);
    tl_info_free(former);
    tl_serve_refresh_now(s);
    return send_doc(a, 200, doc);
}

/* ---- server-sent events ---- */

struct sse {
    struct tl_serve *s;
    int fd;
    uint64_t generation;
    int64_t last_write_ms;
    char *out;
    size_t len, off;
};

/* Whether the client closed its end (a read would see EOF or an error). */
static bool client_gone(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sse *x = cls;
    struct tl_serve *s = x->s;

    (void)pos;
    while (x->off >= x->len) {
        free(x->out);
        x->out = NULL;
        x->len = x->off = 0;

        struct tl_serve_snapshot *snap = NULL;
        bool keepalive = false;
        (void)pthread_mutex_lock(&s->mu);
        for (;;) {
            if (s->stop) {
                (void)pthread_mutex_unlock(&s->mu);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            if (s->snap != NULL && s->snap->generation != x->generation) {
                snap = s->snap;
                snap->refs++;
                break;
            }
            int64_t now = tl_cli_mono_ms();
            if (now - x->last_write_ms >= KEEPALIVE_MS) {
                keepalive = true;
                break;
            }
            /* Wake at the next refresh, at most a second from now, to see if the client left. */
            struct timespec until;
            (void)clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += 1;
            (void)pthread_cond_timedwait(&s->tick, &s->mu, &until);
            if (!s->stop && (s->snap == NULL || s->snap->generation == x->generation)) {
                (void)pthread_mutex_unlock(&s->mu);
                bool gone = client_gone(x->fd);
                (void)pthread_mutex_lock(&s->mu);
                if (gone) {
                    (void)pthread_mutex_unlock(&s->mu);
                    return MHD_CONTENT_READER_END_WITH_ERROR;
                }
            }
        }
        (void)pthread_mutex_unlock(&s->mu);

        struct tl_serve_buf b = {0};
        if (keepalive) {
            tl_serve_buf_puts(&b, ": keep-alive\n\n");
        } else {
            tl_serve_buf_printf(&b, "%sevent: state\ndata: {\"sent_at\":%lld,\"state\":",
                                x->generation == 0 ? "retry: 2000\n\n" : "",
                                (long long)tl_cli_now_ms());
            tl_serve_buf_puts(&b, snap->state);
            tl_serve_buf_puts(&b, "}\n\n");
            x->generation = snap->generation;
            tl_serve_snapshot_put(s, snap);
        }
        x->out = tl_serve_buf_take(&b);
        if (x->out == NULL)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        x->len = strlen(x->out);
        x->last_write_ms = tl_cli_mono_ms();
    }
    size_t n = x->len - x->off < max ? x->len - x->off : max;
    memcpy(buf, x->out + x->off, n);
    x->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    struct sse *x = cls;

    (void)pthread_mutex_lock(&x->s->mu);
    x->s->sse_clients--;
    (void)pthread_mutex_unlock(&x->s->mu);
    free(x->out);
    free(x);
}

static enum MHD_Result get_events(const struct answer *a)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(a->c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct sse *x = calloc(1, sizeof(*x));

    if (x == NULL || ci == NULL) {
        free(x);
        return send_json(a, 500, NULL);
    }
    x->s = a->s;
    x->fd = ci->connect_fd;
    x->last_write_ms = tl_cli_mono_ms();
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, x, sse_free);
    if (resp == NULL) {
        free(x);
        return MHD_NO;
    }
    (void)pthread_mutex_lock(&a->s->mu);
    a->s->sse_clients++;
    (void)pthread_mutex_unlock(&a->s->mu);
    add_headers(resp, "text/event-stream; charset=utf-8", "no-store");
    (void)MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(a->c, 200, resp);
    MHD_destroy_response(resp); /* sse_free runs when the stream ends */
    count(a->s, a->route, 200);
    log_request(a->s, a->method, a->url, 200, a->r);
    return ret;
}

/* ---- dispatch ---- */

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static enum MHD_Result method_not_allowed(struct answer *a, const char *allow)
{
    return send_error(a, 405, "method not allowed", "Allow", allow);
}

static enum MHD_Result route(struct answer *a)
{
    const char *url = a->url, *m = a->method;
    bool get = is(m, "GET") || is(m, "HEAD");
    static const char locks[] = "/api/locks/";
    static const char release[] = "/release";

    struct {
        const char *path;
        int route;
    } const fixed[] = {
        {"/", TL_ROUTE_PAGE},
        {"/app.css", TL_ROUTE_CSS},
        {"/app.js", TL_ROUTE_JS},
        {"/api/locks", TL_ROUTE_LOCKS},
        {"/api/history", TL_ROUTE_HISTORY},
        {"/api/metrics", TL_ROUTE_API_METRICS},
        {"/api/events", TL_ROUTE_EVENTS},
        {"/metrics", TL_ROUTE_METRICS},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (!is(url, fixed[i].path))
            continue;
        a->route = fixed[i].route;
        if (!get)
            return method_not_allowed(a, "GET, HEAD");
        switch (a->route) {
        case TL_ROUTE_PAGE:
            return send_body(a, 200, "text/html; charset=utf-8", tl_serve_page_html,
                             tl_serve_page_html_len, true, NULL, NULL);
        case TL_ROUTE_CSS:
            return send_body(a, 200, "text/css; charset=utf-8", tl_serve_page_css,
                             tl_serve_page_css_len, true, NULL, NULL);
        case TL_ROUTE_JS:
            return send_body(a, 200, "text/javascript; charset=utf-8", tl_serve_page_js,
                             tl_serve_page_js_len, true, NULL, NULL);
        case TL_ROUTE_LOCKS: {
            struct tl_serve_snapshot *snap = tl_serve_snapshot_get(a->s);
            enum MHD_Result ret = send_json(a, 200, snap->locks);
            tl_serve_snapshot_put(a->s, snap);
            return ret;
        }
        case TL_ROUTE_HISTORY: return get_history(a);
        case TL_ROUTE_API_METRICS: return get_api_metrics(a);
        case TL_ROUTE_EVENTS: return get_events(a);
        default: return get_prom(a);
        }
    }
    if (strncmp(url, locks, sizeof(locks) - 1) == 0 && url[sizeof(locks) - 1] != '\0') {
        const char *key = url + sizeof(locks) - 1;
        size_t n = strlen(key);

        if (is(m, "POST") && n > sizeof(release) - 1 &&
            is(key + n - (sizeof(release) - 1), release)) {
            a->route = TL_ROUTE_RELEASE;
            char *k = strndup(key, n - (sizeof(release) - 1));
            if (k == NULL)
                return send_json(a, 500, NULL);
            enum MHD_Result ret = post_release(a, k);
            free(k);
            return ret;
        }
        a->route = TL_ROUTE_LOCK;
        if (!get)
            return method_not_allowed(a, "GET, HEAD");
        return get_lock(a, key);
    }
    a->route = TL_ROUTE_OTHER;
    return send_error(a, 404, "no such page", NULL, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    struct tl_serve *s = cls;
    struct req *r = *con_cls;

    (void)version;
    (void)upload_data;
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            return MHD_NO;
        r->t0 = tl_cli_mono_ms();
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size != 0) { /* no route takes a body: read and drop it, up to a limit */
        r->body += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct answer a = {
        .s = s, .c = c, .method = method, .url = url, .r = r, .route = TL_ROUTE_OTHER};
    if (r->body > BODY_MAX)
        return send_error(&a, 413, "request body too large", NULL, NULL);
    return route(&a);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

int tl_serve_http_start(struct tl_serve *s, int listen_fd)
{
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, 0, NULL,
        NULL, handle, s, MHD_OPTION_LISTEN_SOCKET, listen_fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)2000, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_NOTIFY_COMPLETED,
        completed, s, MHD_OPTION_END);
    return s->daemon != NULL ? 0 : -1;
}

void tl_serve_http_stop(struct tl_serve *s)
{
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
