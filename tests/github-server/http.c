/*
 * http.c -- libmicrohttpd glue: body accumulation, the request pipeline of PROTOCOL.md §2
 * (faults, User-Agent, auth, budgets, ETag/304, counters), and sending responses.
 */
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "server.h"

#define DOCS_URL "https://docs.github.com/rest"

/* What we keep per request while its body arrives. */
struct req_ctx {
    char *body;
    size_t len, cap;
    bool too_big;
};

/* ---- responses ---- */

void ghs_resp_header(struct ghs_resp *r, const char *name, const char *fmt, ...)
{
    va_list ap;
    char buf[4096]; /* the longest value is a Link header of at most 2 KiB */

    if (r->nhdr == GHS_MAX_HEADERS)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return;
    char *value = strdup(buf);
    if (!value) {
        r->oom = true;
        return;
    }
    r->hdr[r->nhdr++] = (struct ghs_header){.name = name, .value = value};
}

static void resp_drop_header(struct ghs_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nhdr; i++) {
        if (strcasecmp(r->hdr[i].name, name) == 0) {
            free(r->hdr[i].value);
            r->hdr[i] = r->hdr[--r->nhdr];
            return;
        }
    }
}

void ghs_resp_json(struct ghs_resp *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

    json_decref(body);
    free(r->body);
    r->body = NULL;
    r->len = 0;
    if (!text) {
        r->status = 500;
        r->oom = true;
        return;
    }
    r->status = status;
    r->body = text;
    r->len = strlen(text);
}

void ghs_resp_error(struct ghs_resp *r, int status, const char *message)
{
    ghs_resp_json(r, status,
                  json_pack("{s:s, s:s, s:o}", "message", message, "documentation_url", DOCS_URL,
                            "status", json_sprintf("%d", status)));
}

void ghs_resp_empty(struct ghs_resp *r, int status)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
    r->status = status;
}

static void resp_fini(struct ghs_resp *r)
{
    free(r->body);
    for (size_t i = 0; i < r->nhdr; i++)
        free(r->hdr[i].value);
}

const char *ghs_query(const struct ghs_req *rq, const char *key)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* ---- helpers ---- */

void ghs_sleep_ms(struct ghs_server *s, int64_t ms)
{
    struct timespec until;

    (void)clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && pthread_cond_timedwait(&s->wake, &s->mu, &until) != ETIMEDOUT)
        ; /* spurious wake-up: re-check */
    pthread_mutex_unlock(&s->mu);
}

static unsigned own_port(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
    const union MHD_DaemonInfo *di =
        ci ? MHD_get_daemon_info(ci->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;

    return di ? di->port : 0;
}

/* "http://HOST" from the Host header when it looks like a host, so that URLs in bodies and in
 * Link point where the client connected; else our own address. */
static void make_base(struct MHD_Connection *conn, char *out, size_t outlen)
{
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    bool ok = host && *host && strlen(host) < 200;

    for (const char *p = host; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             strchr(".-:[]", *p) != NULL;
    if (ok)
        (void)snprintf(out, outlen, "http://%s", host);
    else
        (void)snprintf(out, outlen, "http://127.0.0.1:%u", own_port(conn));
}

static size_t auth_user(const struct ghs_server *s, struct MHD_Connection *conn)
{
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    char token[512];
    size_t skip;

    if (!h)
        return SIZE_MAX;
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "bearer ", 7) == 0)
        skip = 7;
    else if (strncasecmp(h, "token ", 6) == 0)
        skip = 6;
    else
        return SIZE_MAX;
    h += skip;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof(token))
        return SIZE_MAX;
    memcpy(token, h, n);
    token[n] = '\0';
    return ghs_token_user(s, token);
}

/* FNV-1a, twice with different bases, as 32 hex digits in quotes: a strong validator of the
 * body, which is all an ETag has to be. */
static void make_etag(const char *body, size_t len, char out[40])
{
    uint64_t a = UINT64_C(0xcbf29ce484222325), b = UINT64_C(0x84222325cbf29ce4);

    for (size_t i = 0; i < len; i++) {
        a = (a ^ (unsigned char)body[i]) * UINT64_C(0x100000001b3);
        b = (b ^ (unsigned char)body[i]) * UINT64_C(0x100000001b3);
        b ^= b >> 29;
    }
    (void)snprintf(out, 40, "\"%016llx%016llx\"", (unsigned long long)a, (unsigned long long)b);
}

static bool etag_matches(const char *if_none_match, const char *etag)
{
    const char *p = if_none_match;
    size_t elen = strlen(etag);

    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == elen && strncmp(p, etag, n) == 0)
            return true;
        p += n;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

static bool is_write(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0 ||
           strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;
}

static void rate_headers(struct ghs_resp *r, int64_t limit, int64_t used, int64_t reset)
{
    int64_t remaining = limit > used ? limit - used : 0;

    ghs_resp_header(r, "x-ratelimit-limit", "%lld", (long long)limit);
    ghs_resp_header(r, "x-ratelimit-remaining", "%lld", (long long)remaining);
    ghs_resp_header(r, "x-ratelimit-used", "%lld", (long long)used);
    ghs_resp_header(r, "x-ratelimit-reset", "%lld", (long long)reset);
    ghs_resp_header(r, "x-ratelimit-resource", "%s", "core");
}

/* ---- the pipeline ---- */

/* Runs a GitHub request through PROTOCOL.md §2. Returns false when the connection must be
 * dropped without an answer. */
static bool api_pipeline(struct ghs_server *s, struct ghs_req *rq, bool too_big, struct ghs_resp *r)
{
    struct MHD_Connection *conn = rq->conn;
    struct ghs_route rt;
    const char *method = rq->method;

    ghs_route_parse(method, rq->path, &rt);
    const char *ep = ghs_ep_name(rt.ep);

    pthread_mutex_lock(&s->mu);
    s->stats.total++;
    if (is_write(method))
        s->stats.writes++;
    ghs_stats_bump(s->stats.by_endpoint, ep);
    int64_t latency = s->faults.latency_ms;
    pthread_mutex_unlock(&s->mu);

    if (latency > 0)
        ghs_sleep_ms(s, latency);

    pthread_mutex_lock(&s->mu);
    if (ghs_fault_take(&s->faults.drop_connections, method, ep)) {
        s->stats.dropped++;
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    const char *ua = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "User-Agent");
    const char *version =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-GitHub-Api-Version");
    size_t authed = auth_user(s, conn), user = SIZE_MAX;
    bool spend = false, primary_fault = false;
    int64_t now_s = ghs_now_ms_locked(s) / 1000;

    if (!ua || !*ua) {
        ghs_resp_error(r, 403,
                       "Request forbidden by administrative rules. Please make sure your request "
                       "has a User-Agent header");
    } else if (version && strcmp(version, "2022-11-28") != 0 &&
               strcmp(version, "2026-03-10") != 0) {
        ghs_resp_error(r, 400, "Unsupported 'X-GitHub-Api-Version' header");
    } else if (authed == SIZE_MAX) {
        ghs_resp_error(r, 401, "Bad credentials");
    } else {
        struct ghs_user *u = &s->users[authed];
        char msg[96];

        user = authed;
        rq->user = user;
        ghs_budget_touch_locked(s, u);
        ghs_stats_bump(s->stats.by_login, u->login);
        (void)snprintf(msg, sizeof(msg), "API rate limit exceeded for user ID %lld.",
                       (long long)u->id);
        if (rt.ep != GHS_EP_RATE_LIMIT &&
            ghs_fault_take(&s->faults.primary_exhausted, method, ep)) {
            primary_fault = true;
            ghs_resp_error(r, 403, msg);
            rate_headers(r, s->rate_limit, s->rate_limit, now_s + s->faults.primary_reset_in_s);
        } else if (rt.ep != GHS_EP_RATE_LIMIT && u->used >= s->rate_limit) {
            ghs_resp_error(r, 403, msg);
        } else {
            spend = rt.ep != GHS_EP_RATE_LIMIT;
            if (ghs_fault_take(&s->faults.secondary_limit, method, ep)) {
                ghs_resp_error(r, s->faults.secondary_status,
                               "You have exceeded a secondary rate limit. Please wait a few "
                               "minutes before you try again.");
                if (s->faults.secondary_retry_after >= 0)
                    ghs_resp_header(r, "retry-after", "%lld",
                                    (long long)s->faults.secondary_retry_after);
            } else if (too_big) {
                ghs_resp_error(r, 413, "Request body too large");
            } else if (ghs_fault_take(&s->faults.status_5xx, method, ep)) {
                ghs_resp_error(r, 500, "Server Error");
            } else {
                ghs_api_handle_locked(s, &rt, rq, r);
            }
        }
    }

    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (get && r->status == 200 && r->body) {
        char etag[40];
        const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");

        make_etag(r->body, r->len, etag);
        ghs_resp_header(r, "ETag", "%s", etag);
        ghs_resp_header(r, "Cache-Control", "%s", "private, max-age=60, s-maxage=60");
        if (inm && etag_matches(inm, etag)) {
            ghs_resp_empty(r, 304);
            resp_drop_header(r, "Link");
            s->stats.not_modified++;
            spend = false; /* "does not count against your primary rate limit" */
        }
    }
    if (spend)
        s->users[user].used++;
    if (user == SIZE_MAX)
        rate_headers(r, GHS_ANON_LIMIT, 0, now_s + GHS_WINDOW_S);
    else if (!primary_fault)
        rate_headers(r, s->rate_limit, s->users[user].used, s->users[user].reset);
    ghs_resp_header(r, "X-GitHub-Media-Type", "%s", "github.v3; format=json");
    ghs_resp_header(r, "X-GitHub-Request-Id", "TLGH:%08llX", (unsigned long long)++s->request_seq);
    ghs_resp_header(r, "Vary", "%s", "Accept, Authorization, Cookie, X-GitHub-OTP");
    char status[16];
    (void)snprintf(status, sizeof(status), "%d", r->status);
    ghs_stats_bump(s->stats.by_status, status);
    pthread_mutex_unlock(&s->mu);
    return true;
}

static enum MHD_Result send_resp(struct ghs_server *s, struct MHD_Connection *conn,
                                 struct ghs_resp *r)
{
    char date[40];

    if (r->oom && r->status != 500) {
        ghs_resp_empty(r, 500);
    }
    pthread_mutex_lock(&s->mu);
    ghs_fmt_imf(ghs_now_ms_locked(s) / 1000, date);
    pthread_mutex_unlock(&s->mu);

    struct MHD_Response *resp =
        r->body ? MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE)
                : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO; /* r->body is still ours and freed by resp_fini */
    bool has_body = r->body != NULL;
    r->body = NULL; /* now the response's */
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_DATE, date);
    if (has_body)
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                      "application/json; charset=utf-8");
    for (size_t i = 0; i < r->nhdr; i++)
        (void)MHD_add_response_header(resp, r->hdr[i].name, r->hdr[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result process(struct ghs_server *s, struct MHD_Connection *conn, const char *url,
                               const char *method, struct req_ctx *rc)
{
    char base[256];
    struct ghs_resp r = {.status = 500};
    bool admin = strncmp(url, "/_admin/", 8) == 0;
    enum MHD_Result ret = MHD_NO;

    make_base(conn, base, sizeof(base));
    struct ghs_req rq = {
        .method = method,
        .path = url,
        .base = base,
        .user = SIZE_MAX,
        .conn = conn,
    };
    if (!rc->too_big) {
        if (rc->len == 0) {
            rq.json = json_object();
        } else {
            json_error_t jerr;
            rq.json = json_loadb(rc->body, rc->len, 0, &jerr);
            if (!rq.json) {
                rq.bad_json = true;
            } else if (!json_is_object(rq.json)) {
                rq.not_object = true;
                json_decref(rq.json);
                rq.json = NULL;
            }
        }
    }
    if (admin) {
        pthread_mutex_lock(&s->mu);
        if (rc->too_big)
            ghs_resp_error(&r, 413, "Request body too large");
        else
            ghs_admin_handle_locked(s, &rq, &r);
        pthread_mutex_unlock(&s->mu);
    } else if (!api_pipeline(s, &rq, rc->too_big, &r)) {
        if (s->cfg->verbose)
            (void)fprintf(stderr, "tl-github-server: %s %s -> dropped\n", method, url);
        goto out;
    }
    if (r.delay_ms > 0)
        ghs_sleep_ms(s, r.delay_ms);
    if (s->cfg->verbose) {
        const char *login = "-";
        pthread_mutex_lock(&s->mu);
        if (rq.user != SIZE_MAX && rq.user < s->nusers)
            login = s->users[rq.user].login; /* users only grow until reset */
        (void)fprintf(stderr, "tl-github-server: %s %s -> %d (%s)\n", method, url, r.status,
                      rq.user == SIZE_MAX ? "-" : login);
        pthread_mutex_unlock(&s->mu);
    }
    ret = send_resp(s, conn, &r);
out:
    json_decref(rq.json);
    resp_fini(&r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct ghs_server *s = cls;
    struct req_ctx *rc = *con_cls;

    (void)version;
    if (!rc) {
        rc = calloc(1, sizeof(*rc));
        if (!rc)
            return MHD_NO;
        *con_cls = rc;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t n;
        if (cl && (!ghs_parse_i64(cl, &n) || n > GHS_MAX_BODY)) {
            rc->too_big = true; /* answer now rather than read a body we will not use */
            return process(s, conn, url, method, rc);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (rc->too_big)
            return MHD_YES;
        if (rc->len + n > (size_t)GHS_MAX_BODY) {
            rc->too_big = true;
            free(rc->body);
            rc->body = NULL;
            rc->len = rc->cap = 0;
            return MHD_YES;
        }
        if (rc->len + n > rc->cap) {
            size_t cap = rc->cap ? rc->cap : 1024;
            while (cap < rc->len + n)
                cap *= 2;
            char *body = realloc(rc->body, cap);
            if (!body)
                return MHD_NO;
            rc->body = body;
            rc->cap = cap;
        }
        memcpy(rc->body + rc->len, upload_data, n);
        rc->len += n;
        return MHD_YES;
    }
    return process(s, conn, url, method, rc);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req_ctx *rc = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (rc) {
        free(rc->body);
        free(rc);
        *con_cls = NULL;
    }
}

void *ghs_http_start(struct ghs_server *s, unsigned *port)
{
    struct sockaddr_in sin;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_SUPPRESS_DATE_NO_CLOCK;

    if (s->cfg->verbose)
        flags |= MHD_USE_ERROR_LOG;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)s->cfg->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        MHD_start_daemon(flags, (uint16_t)s->cfg->port, NULL, NULL, on_request, s,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)256 * 1024,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (!d)
        return NULL;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) {
        MHD_stop_daemon(d);
        return NULL;
    }
    *port = info->port;
    return d;
}

void ghs_http_stop(void *daemon)
{
    MHD_stop_daemon(daemon);
}
