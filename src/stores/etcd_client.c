/*
 * etcd_client.c -- etcd's v3 JSON gateway over libcurl (see etcd_client.h).
 *
 * Failover (ETCD-API.md A.4, A.9): a request in flight to a member when the leader dies can
 * hang for the server's request timeout (7 s by default) and then answer 503; an election takes
 * about a second. So every request has a short time of its own on one endpoint (request_ms), and
 * a request that fails, stalls, or is answered "unavailable" (503, gRPC codes 14 and 8, "no
 * leader", "leader changed") goes to the next endpoint; after a round of all of them the client
 * backs off (20 ms doubling to 320 ms) and goes round again until the caller's deadline. The
 * client keeps the endpoint that answered last and starts there next time.
 *
 * A write is repeated only when it surely did not reach a server (no connection was made). Once
 * it may have been applied (a timeout after connecting, a 503 "request timed out"), it fails
 * with `unsure`: the store re-reads what it wrote before it decides again (a claim recognises
 * its own nonce), which is the only safe answer to "did my transaction commit?".
 *
 * Authentication (user:password in the store URL): POST /v3/auth/authenticate gives a token,
 * sent as the Authorization header; an answer that the token is invalid or expired (gRPC code
 * 16, or "invalid auth token") gets a new one once per call. Neither the password nor the token
 * appear in any message.
 */
#include "etcd_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl.h"

#define DEFAULT_REQUEST_MS 2000u
#define DEFAULT_CONNECT_MS 1000u
#define DEFAULT_BUDGET_MS  10000
#define BACKOFF_FIRST_MS   20
#define BACKOFF_MAX_MS     320
#define MAX_BODY           ((size_t)64 * 1024 * 1024)
#define MAX_LINE           ((size_t)16 * 1024 * 1024)

struct buf {
    char *data;
    size_t len, cap, max;
    bool too_big, oom;
};

struct stream {
    struct buf line;
    bool (*on_result)(void *ud, json_t *result);
    void *ud;
    size_t created; /* watches the server has confirmed */
    bool stopped;
    bool bad; /* a message that is not JSON: the stream is not one we understand */
    char what[160];
};

/* The watch stream of a client, open across calls (tl__etcd_watch_open .. _close). */
struct watch {
    struct stream s;
    struct curl_slist *hdrs;
    char *body, *url;
    size_t n;        /* watches asked for */
    size_t endpoint; /* the endpoint it is open on */
    int64_t opened;  /* when (real mono) */
    bool added;      /* the transfer is in the multi handle */
    bool ended;      /* it has finished (an error, the server's end, our time) */
    CURLcode rc;
};

struct tl_etcd {
    CURL *easy;  /* unary requests */
    CURL *weasy; /* the watch stream, driven through `multi` */
    CURLM *multi;
    char **endpoints;
    size_t n;
    size_t cur; /* the endpoint that answered last */
    bool tls;
    char *cacert;
    char *user;
    char *password;    /* wiped on free */
    char *auth_header; /* "Authorization: TOKEN"; wiped on free */
    uint32_t request_ms, connect_ms;
    struct tl_etcd_error last;
    char errbuf[CURL_ERROR_SIZE];
    struct watch w;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT; /* written once, inside pthread_once */

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void wipe_free(char *s)
{
    if (s == NULL)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
    tl__free(s);
}

static void set_err(char *err, const char *fmt, ...) TL_PRINTF(2, 3);

static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tl__vformat(err, fmt, ap);
    va_end(ap);
}

tl_status tl__etcd_new(const struct tl_etcd_opts *o, struct tl_etcd **out, char *err)
{
    struct tl_etcd *c;

    *out = NULL;
    (void)pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        set_err(err, "etcd: libcurl could not start: %s", curl_easy_strerror(global_rc));
        return TL_ESTORE;
    }
    if (o->nendpoints == 0) {
        set_err(err, "etcd: no endpoint");
        return TL_EINVAL;
    }
    c = tl__calloc(1, sizeof(*c));
    if (c == NULL)
        goto err_oom;
    c->request_ms = o->request_ms ? o->request_ms : DEFAULT_REQUEST_MS;
    c->connect_ms = o->connect_ms ? o->connect_ms : DEFAULT_CONNECT_MS;
    c->tls = o->tls;
    c->endpoints = tl__calloc(o->nendpoints, sizeof(*c->endpoints));
    if (c->endpoints == NULL)
        goto err_free;
    for (size_t i = 0; i < o->nendpoints; i++) {
        if ((c->endpoints[i] = tl__strdup(o->endpoints[i])) == NULL)
            goto err_free;
        c->n++;
    }
    if ((o->cacert != NULL && (c->cacert = tl__strdup(o->cacert)) == NULL) ||
        (o->user != NULL && (c->user = tl__strdup(o->user)) == NULL) ||
        (o->user != NULL && (c->password = tl__strdup(o->password ? o->password : "")) == NULL))
        goto err_free;
    c->easy = curl_easy_init();
    c->weasy = curl_easy_init();
    c->multi = curl_multi_init();
    if (c->easy == NULL || c->weasy == NULL || c->multi == NULL) {
        tl__etcd_free(c);
        set_err(err, "etcd: libcurl could not create a handle");
        return TL_ESTORE;
    }
    *out = c;
    return TL_OK;

err_free:
    tl__etcd_free(c);
err_oom:
    set_err(err, "etcd: out of memory");
    return TL_ENOMEM;
}

void tl__etcd_free(struct tl_etcd *c)
{
    if (c == NULL)
        return;
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    tl__etcd_watch_close(c);
    if (c->weasy != NULL)
        curl_easy_cleanup(c->weasy);
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    for (size_t i = 0; c->endpoints != NULL && i < c->n; i++)
        tl__free(c->endpoints[i]);
    tl__free(c->endpoints);
    tl__free(c->cacert);
    tl__free(c->user);
    wipe_free(c->password);
    wipe_free(c->auth_header);
    tl__free(c);
}

const struct tl_etcd_error *tl__etcd_last_error(const struct tl_etcd *c)
{
    return &c->last;
}

const char *tl__etcd_endpoint(const struct tl_etcd *c)
{
    return c->endpoints[c->cur];
}

/* ---- one HTTP exchange ---- */

static bool buf_add(struct buf *b, const char *data, size_t len)
{
    if (b->len + len > b->max) {
        b->too_big = true;
        return false;
    }
    if (b->len + len + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 1024;
        while (ncap < b->len + len + 1)
            ncap *= 2;
        char *nd = tl__realloc(b->data, ncap);
        if (nd == NULL) {
            b->oom = true;
            return false;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    size_t len = size * nmemb;

    return buf_add(ud, data, len) ? len : 0;
}

/* Sets the options every request has. Returns false when libcurl refused one (no memory). */
static bool setup(struct tl_etcd *c, CURL *e, const char *url, const char *body,
                  struct curl_slist *hdrs, long timeout_ms, curl_write_callback write_fn,
                  void *write_ud)
{
    bool ok = true;

    curl_easy_reset(e);
    c->errbuf[0] = '\0';
#define SET(opt, val) ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, c->tls ? "https" : "http");
#else
    SET(CURLOPT_PROTOCOLS, c->tls ? (long)CURLPROTO_HTTPS : (long)CURLPROTO_HTTP);
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOPROXY, "*"); /* cluster members are addressed directly */
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_POSTFIELDS, body);
    SET(CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    /* 0: the transfer has no limit (a watch kept open); the connect still has one. */
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        timeout_ms == 0 || (long)c->connect_ms < timeout_ms ? (long)c->connect_ms : timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, write_fn);
    SET(CURLOPT_WRITEDATA, write_ud);
    SET(CURLOPT_TCP_NODELAY, 1L);
    if (c->tls) {
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
        if (c->cacert != NULL)
            SET(CURLOPT_CAINFO, c->cacert);
    }
#undef SET
    return ok;
}

static struct curl_slist *headers(const struct tl_etcd *c)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *t;

    if (h == NULL)
        return NULL;
    if ((t = curl_slist_append(h, "Expect:")) == NULL)
        goto err;
    h = t;
    if (c->auth_header != NULL) {
        if ((t = curl_slist_append(h, c->auth_header)) == NULL)
            goto err;
        h = t;
    }
    return h;
err:
    curl_slist_free_all(h);
    return NULL;
}

/* Whether a failed transfer may have delivered the request. */
static bool maybe_sent(CURL *e, CURLcode rc)
{
    double connect_time = 0;

    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_OUT_OF_MEMORY: return false;
    case CURLE_OPERATION_TIMEDOUT:
        /* A timeout while connecting sent nothing. */
        return curl_easy_getinfo(e, CURLINFO_CONNECT_TIME, &connect_time) != CURLE_OK ||
               connect_time > 0;
    default: return true;
    }
}

enum outcome {
    ANSWERED,  /* 200: *out is the answer */
    FAILED,    /* an error answer that another endpoint would give too */
    MOVE_ON,   /* this endpoint could not serve it now: try the next */
    NEED_AUTH, /* the auth token is missing, invalid or expired */
    NO_MEMORY,
};

static bool unavailable(int code, const char *msg)
{
    return code == 14 || code == 8 || code == 4 ||
           (msg != NULL &&
            (strstr(msg, "no leader") != NULL || strstr(msg, "leader changed") != NULL ||
             strstr(msg, "too many requests") != NULL || strstr(msg, "request timed out") != NULL));
}

/* One POST to endpoint `i`. */
static enum outcome exchange(struct tl_etcd *c, size_t i, const char *path, const char *body,
                             long timeout_ms, json_t **out, char *err)
{
    struct buf b = {.max = MAX_BODY};
    struct curl_slist *hdrs = headers(c);
    char *url = tl__asprintf("%s://%s%s", c->tls ? "https" : "http", c->endpoints[i], path);
    enum outcome oc = NO_MEMORY;

    c->last.http = 0;
    c->last.code = -1;
    c->last.unsure = false;
    if (hdrs == NULL || url == NULL || !setup(c, c->easy, url, body, hdrs, timeout_ms, on_body, &b))
        goto out;

    CURLcode rc = curl_easy_perform(c->easy);
    if (b.oom)
        goto out;
    if (rc != CURLE_OK) {
        c->last.unsure = maybe_sent(c->easy, rc);
        set_err(err, "etcd: POST %s to %s: %s", path, c->endpoints[i],
                b.too_big      ? "answer too large"
                : c->errbuf[0] ? c->errbuf
                               : curl_easy_strerror(rc));
        oc = MOVE_ON;
        goto out;
    }
    (void)curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->last.http);

    json_error_t je;
    json_t *doc = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &je);
    if (c->last.http == 200) {
        if (json_is_object(doc)) {
            *out = doc;
            oc = ANSWERED;
            goto out;
        }
        json_decref(doc);
        set_err(err, "etcd: POST %s to %s: the answer is not a JSON object (%s)", path,
                c->endpoints[i], je.text);
        oc = FAILED; /* a server that answers nonsense: not a lock store we can trust */
        goto out;
    }

    const char *msg = NULL;
    json_int_t code = -1;
    if (json_is_object(doc)) {
        json_t *m = json_object_get(doc, "message");
        if (!json_is_string(m))
            m = json_object_get(doc, "error");
        msg = json_is_string(m) ? json_string_value(m) : NULL;
        json_t *cd = json_object_get(doc, "code");
        code = json_is_integer(cd) ? json_integer_value(cd) : -1;
    }
    c->last.code = (int)code;
    set_err(err, "etcd: POST %s to %s: HTTP %ld%s%.160s", path, c->endpoints[i], c->last.http,
            msg ? ": " : "", msg ? msg : "");
    if (code == 16 || c->last.http == 401 ||
        (msg != NULL &&
         (strstr(msg, "invalid auth token") != NULL || strstr(msg, "user name is empty") != NULL)))
        oc = NEED_AUTH;
    else if (c->last.http == 503 || c->last.http == 429 || c->last.http == 502 ||
             c->last.http == 504 || unavailable((int)code, msg))
        oc = MOVE_ON;
    else
        oc = FAILED;
    /* A 503 may be "request timed out": the write may have been applied. */
    c->last.unsure = oc == MOVE_ON;
    json_decref(doc);

out:
    if (oc == NO_MEMORY)
        set_err(err, "etcd: out of memory");
    curl_slist_free_all(hdrs);
    tl__free(url);
    tl__free(b.data);
    return oc;
}

/* Gets an auth token from endpoint `i`. */
static enum outcome authenticate(struct tl_etcd *c, size_t i, long timeout_ms, char *err)
{
    json_t *req = json_pack("{s:s, s:s}", "name", c->user, "password", c->password);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_t *ans = NULL;
    enum outcome oc = NO_MEMORY;

    json_decref(req);
    wipe_free(c->auth_header);
    c->auth_header = NULL;
    if (body == NULL)
        goto out;
    oc = exchange(c, i, "/v3/auth/authenticate", body, timeout_ms, &ans, err);
    if (oc == NEED_AUTH) {
        oc = FAILED; /* wrong name or password: the message says so, without them */
    } else if (oc == ANSWERED) {
        json_t *tok = json_object_get(ans, "token");
        if (!json_is_string(tok) || json_string_length(tok) == 0) {
            set_err(err, "etcd: %s answered authenticate without a token", c->endpoints[i]);
            oc = FAILED;
        } else if ((c->auth_header = tl__asprintf("Authorization: %s", json_string_value(tok))) ==
                   NULL) {
            set_err(err, "etcd: out of memory");
            oc = NO_MEMORY;
        }
    }
out:
    json_decref(ans);
    if (body != NULL) {
        volatile char *p = body; /* it holds the password */
        while (*p)
            *p++ = '\0';
        free(body);
    }
    return oc;
}

tl_status tl__etcd_post(struct tl_etcd *c, const char *path, json_t *body, enum tl_etcd_call kind,
                        int64_t deadline_mono_ms, json_t **out, char *err)
{
    int64_t now = tl__real_mono_ms();
    int64_t deadline = deadline_mono_ms ? deadline_mono_ms : now + DEFAULT_BUDGET_MS;
    char *text = json_dumps(body, JSON_COMPACT);
    uint32_t backoff = BACKOFF_FIRST_MS;
    size_t tried = 0;
    int refused_rounds = 0;    /* rounds in which no endpoint took a connection */
    bool round_refused = true; /* so far in this round */
    bool reauthed = false;
    tl_status st = TL_ETIMEDOUT;

    *out = NULL;
    if (text == NULL) {
        set_err(err, "etcd: out of memory");
        return TL_ENOMEM;
    }
    set_err(err, "etcd: POST %s: no time left to send it", path);
    while ((now = tl__real_mono_ms()) < deadline) {
        long limit = (long)(deadline - now);
        if (limit > (long)c->request_ms)
            limit = (long)c->request_ms;
        enum outcome oc = ANSWERED;
        if (c->user != NULL && c->auth_header == NULL)
            oc = authenticate(c, c->cur, limit, err);
        if (oc == ANSWERED)
            oc = exchange(c, c->cur, path, text, limit, out, err);
        if (oc == ANSWERED) {
            st = TL_OK;
            break;
        }
        if (oc == NO_MEMORY) {
            st = TL_ENOMEM;
            break;
        }
        if (oc == NEED_AUTH && c->user != NULL && !reauthed) {
            reauthed = true;
            wipe_free(c->auth_header);
            c->auth_header = NULL;
            continue;
        }
        if (oc == FAILED || oc == NEED_AUTH) {
            st = TL_ESTORE;
            break;
        }
        /* MOVE_ON */
        if (kind == TL_ETCD_WRITE && c->last.unsure) {
            st = TL_ESTORE;
            break;
        }
        round_refused = round_refused && c->last.http == 0 && !c->last.unsure;
        c->cur = (c->cur + 1) % c->n;
        if (++tried % c->n == 0) {
            /* Nothing listens anywhere (an election does not refuse connections): say so now
             * rather than at the deadline. */
            refused_rounds = round_refused ? refused_rounds + 1 : 0;
            round_refused = true;
            if (refused_rounds == 3) {
                st = TL_ESTORE;
                break;
            }
            now = tl__real_mono_ms();
            if (now + backoff >= deadline)
                break;
            tl__real_sleep_ms(backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        }
    }
    if (st == TL_ETIMEDOUT) {
        char was[TL_ERRMSG_SIZE];
        memcpy(was, err, sizeof(was));
        set_err(err, "%.180s (no endpoint answered in time)", was);
    }
    free(text);
    return st;
}

/* ---- watch ---- */

static size_t on_stream(char *data, size_t size, size_t nmemb, void *ud)
{
    struct stream *s = ud;
    size_t len = size * nmemb;

    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') {
            /* Copy runs, not bytes. */
            const char *nl = memchr(data + i, '\n', len - i);
            size_t run = nl ? (size_t)(nl - (data + i)) : len - i;
            if (!buf_add(&s->line, data + i, run))
                return 0;
            i += run - 1;
            continue;
        }
        json_error_t je;
        json_t *msg = json_loadb(s->line.data ? s->line.data : "", s->line.len, 0, &je);
        s->line.len = 0;
        json_t *result = json_object_get(msg, "result");
        if (!json_is_object(result)) {
            json_t *e = json_object_get(msg, "error");
            json_t *m = json_is_object(e) ? json_object_get(e, "message") : NULL;
            (void)snprintf(s->what, sizeof(s->what), "%s",
                           json_is_string(m) ? json_string_value(m)
                           : msg == NULL     ? je.text
                                             : "a message without a result");
            s->bad = true;
            json_decref(msg);
            return 0;
        }
        if (json_is_true(json_object_get(result, "created")))
            s->created++;
        bool stop = s->on_result(s->ud, result);
        json_decref(msg);
        if (stop) {
            s->stopped = true;
            return 0; /* ends the transfer */
        }
    }
    return len;
}

void tl__etcd_watch_close(struct tl_etcd *c)
{
    struct watch *w = &c->w;

    if (w->added)
        (void)curl_multi_remove_handle(c->multi, c->weasy);
    curl_slist_free_all(w->hdrs);
    tl__free(w->url);
    tl__free(w->body);
    tl__free(w->s.line.data);
    memset(w, 0, sizeof(*w));
}

bool tl__etcd_watch_is_open(const struct tl_etcd *c, int64_t max_age_ms)
{
    /* A request that failed over since (the member may be stopped: its kernel keeps the TCP
     * connection alive), or an old stream, is not trusted to carry every event. */
    return c->w.added && !c->w.ended && !c->w.s.stopped && c->w.endpoint == c->cur &&
           tl__real_mono_ms() - c->w.opened < max_age_ms;
}

/* Drives the open stream until a callback stops it, it ends, or `until_mono_ms`; calls
 * on_created once every watch is confirmed, when it is given. */
static tl_status drive(struct tl_etcd *c, int64_t until_mono_ms, bool (*on_created)(void *ud),
                       bool *stopped, char *err)
{
    struct watch *w = &c->w;
    bool told = on_created == NULL;
    tl_status st = TL_OK;

    /* The stream itself has no time limit: each call bounds its own wait. */
    while (!w->s.stopped && !w->ended) {
        int running = 0, left = 0;
        if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
            w->ended = true;
            w->rc = CURLE_FAILED_INIT;
            break;
        }
        for (CURLMsg *m = curl_multi_info_read(c->multi, &left); m != NULL;
             m = curl_multi_info_read(c->multi, &left)) {
            if (m->msg == CURLMSG_DONE) {
                w->rc = m->data.result;
                w->ended = true;
            }
        }
        if (w->s.stopped || w->ended)
            break;
        if (!told && w->s.created >= w->n) {
            told = true;
            if (on_created(w->s.ud)) {
                w->s.stopped = true;
                break;
            }
        }
        int64_t now = tl__real_mono_ms();
        if (now >= until_mono_ms)
            break;
        int64_t wait = until_mono_ms - now;
        (void)curl_multi_poll(c->multi, NULL, 0, wait > 100 ? 100 : (int)wait, NULL);
    }
    *stopped = w->s.stopped;
    if (w->s.line.oom) {
        st = TL_ENOMEM;
        set_err(err, "etcd: out of memory");
    } else if (w->s.stopped || !w->ended) {
        st = TL_OK; /* a callback ended it, or it is open and quiet */
    } else {
        set_err(err, "etcd: watch on %s: %s", c->endpoints[c->cur],
                w->s.bad            ? w->s.what
                : w->rc != CURLE_OK ? curl_easy_strerror(w->rc)
                                    : "the stream ended");
        /* Another member may serve the next one. */
        c->cur = (c->cur + 1) % c->n;
        st = w->rc == CURLE_OPERATION_TIMEDOUT ? TL_ETIMEDOUT : TL_ESTORE;
    }
    if (st != TL_OK || w->s.stopped)
        tl__etcd_watch_close(c);
    return st;
}

tl_status tl__etcd_watch_open(struct tl_etcd *c, json_t *const *creates, size_t n,
                              int64_t until_mono_ms, bool (*on_created)(void *ud),
                              bool (*on_result)(void *ud, json_t *result), void *ud, bool *stopped,
                              char *err)
{
    struct watch *w = &c->w;

    tl__etcd_watch_close(c);
    *stopped = false;
    if (tl__real_mono_ms() >= until_mono_ms)
        return TL_OK;
    if (c->user != NULL && c->auth_header == NULL &&
        authenticate(c, c->cur, (long)c->request_ms, err) != ANSWERED)
        return TL_ESTORE;
    w->s = (struct stream){.line = {.max = MAX_LINE}, .on_result = on_result, .ud = ud};
    w->n = n;
    /* The gateway reads a stream's requests as JSON objects back to back in the body. */
    struct buf all = {.max = MAX_BODY};
    for (size_t i = 0; i < n; i++) {
        json_t *req = json_pack("{s:O}", "create_request", creates[i]);
        char *one = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        bool ok = one != NULL && buf_add(&all, one, strlen(one));
        free(one);
        if (!ok) {
            tl__free(all.data);
            goto err_oom;
        }
    }
    w->body = all.data;
    w->hdrs = headers(c);
    w->url = tl__asprintf("%s://%s/v3/watch", c->tls ? "https" : "http", c->endpoints[c->cur]);
    /* No time limit on the transfer: it stays open across calls; each call bounds its wait. A
     * member that dies under it shows as the connection's end (TCP keep-alive finds a silent
     * one). */
    if (w->body == NULL || w->hdrs == NULL || w->url == NULL ||
        !setup(c, c->weasy, w->url, w->body, w->hdrs, 0, on_stream, &w->s) ||
        curl_easy_setopt(c->weasy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
        curl_easy_setopt(c->weasy, CURLOPT_TCP_KEEPIDLE, 5L) != CURLE_OK ||
        curl_easy_setopt(c->weasy, CURLOPT_TCP_KEEPINTVL, 2L) != CURLE_OK ||
        curl_multi_add_handle(c->multi, c->weasy) != CURLM_OK)
        goto err_oom;
    w->added = true;
    w->endpoint = c->cur;
    w->opened = tl__real_mono_ms();
    return drive(c, until_mono_ms, on_created, stopped, err);

err_oom:
    tl__etcd_watch_close(c);
    set_err(err, "etcd: out of memory");
    return TL_ENOMEM;
}

tl_status tl__etcd_watch_wait(struct tl_etcd *c, int64_t until_mono_ms, bool *stopped, char *err)
{
    *stopped = false;
    if (!c->w.added) {
        set_err(err, "etcd: no watch is open");
        return TL_ESTORE;
    }
    return drive(c, until_mono_ms, NULL, stopped, err);
}

/* ---- wire helpers ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *tl__b64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = tl__malloc((len + 2) / 3 * 4 + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        *o++ = b64[(v >> 18) & 63];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = b64[v & 63];
        if (i + 2 >= len)
            o[-1] = '=';
        if (i + 1 >= len)
            o[-2] = '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

char *tl__b64_decode(const char *text, size_t *len)
{
    size_t n = strlen(text);

    if (n % 4 != 0)
        return NULL;
    char *out = tl__malloc(n / 4 * 3 + 1);
    size_t o = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = text[i + k] == '=' ? -2 : b64_value(text[i + k]);
        /* Padding only at the very end, and only in the last two places. */
        bool last = i + 4 == n;
        if (v[0] < 0 || v[1] < 0 || v[2] == -1 || v[3] == -1 || (!last && (v[2] < 0 || v[3] < 0)) ||
            (v[2] == -2 && v[3] != -2)) {
            tl__free(out);
            return NULL;
        }
        unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12;
        out[o++] = (char)(x >> 16);
        if (v[2] >= 0) {
            x |= (unsigned)v[2] << 6;
            out[o++] = (char)((x >> 8) & 0xff);
        }
        if (v[3] >= 0) {
            x |= (unsigned)v[3];
            out[o++] = (char)(x & 0xff);
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}

bool tl__etcd_i64(json_t *obj, const char *field, int64_t *out)
{
    json_t *v = json_object_get(obj, field);

    *out = 0;
    if (v == NULL)
        return true;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    bool neg = *s == '-';
    uint64_t u;
    if (!tl__parse_u64(s + neg, &u) || u > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? -(int64_t)u : (int64_t)u;
    return true;
}
