/*
 * http.c -- libcurl glue for the GitHub store (see http.h).
 *
 * curl_global_init runs once per process (pthread_once); each client owns one easy handle, and
 * every request sets all of its options again after curl_easy_reset (which keeps the connection
 * cache), so no option of one request leaks into the next. CURLOPT_NOSIGNAL is set on every
 * request: the library runs in other people's threads. TLS verification is libcurl's default
 * (on) and is never turned off; plain http:// is allowed only when the caller says the host is a
 * loopback test server.
 */
#include "http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl.h"

#define DEFAULT_TIMEOUT_MS         20000
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_MAX_BODY           ((size_t)32 * 1024 * 1024)
#define MAX_HEADER_VALUE           8192

struct tl_http {
    CURL *easy;
    struct tl_http_opts opts;
    char *user_agent;
    char *auth; /* "Authorization: Bearer TOKEN"; wiped on free */
    char errbuf[CURL_ERROR_SIZE];
};

/* The response being received, with the bound on its body. */
struct sink {
    struct tl_http_resp *resp;
    size_t cap;
    size_t max;
    bool too_big;
    bool oom;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT; /* written once, inside pthread_once */

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void wipe(char *s)
{
    if (s == NULL)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
}

bool tl__http_host_is_loopback(const char *host, size_t len)
{
    if (len == 9 && strncmp(host, "localhost", 9) == 0)
        return true;
    if ((len == 5 && strncmp(host, "[::1]", 5) == 0) || (len == 3 && strncmp(host, "::1", 3) == 0))
        return true;
    /* 127.0.0.0/8, dotted quad only */
    if (len < 7 || len > 15 || strncmp(host, "127.", 4) != 0)
        return false;
    int dots = 0, digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (host[i] == '.') {
            if (digits == 0)
                return false;
            dots++;
            digits = 0;
        } else if (host[i] >= '0' && host[i] <= '9' && digits < 3) {
            digits++;
        } else {
            return false;
        }
    }
    return dots == 3 && digits > 0;
}

tl_status tl__http_new(const struct tl_http_opts *opts, const char *token, struct tl_http **out,
                       char *err)
{
    struct tl_http *h;

    *out = NULL;
    (void)pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        (void)snprintf(err, TL_ERRMSG_SIZE, "github: libcurl could not start: %s",
                       curl_easy_strerror(global_rc));
        return TL_ESTORE;
    }
    h = tl__calloc(1, sizeof(*h));
    if (h == NULL)
        goto err_oom;
    h->opts = *opts;
    if (h->opts.timeout_ms == 0)
        h->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (h->opts.connect_timeout_ms == 0)
        h->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (h->opts.max_body == 0)
        h->opts.max_body = DEFAULT_MAX_BODY;
    h->user_agent = tl__strdup(opts->user_agent ? opts->user_agent : "tasklock");
    h->opts.user_agent = h->user_agent;
    if (h->user_agent == NULL)
        goto err_free;
    if (token != NULL && (h->auth = tl__asprintf("Authorization: Bearer %s", token)) == NULL)
        goto err_free;
    h->easy = curl_easy_init();
    if (h->easy == NULL) {
        tl__http_free(h);
        (void)snprintf(err, TL_ERRMSG_SIZE, "github: libcurl could not create a handle");
        return TL_ESTORE;
    }
    *out = h;
    return TL_OK;

err_free:
    tl__http_free(h);
err_oom:
    (void)snprintf(err, TL_ERRMSG_SIZE, "out of memory");
    return TL_ENOMEM;
}

void tl__http_free(struct tl_http *h)
{
    if (h == NULL)
        return;
    if (h->easy != NULL)
        curl_easy_cleanup(h->easy);
    wipe(h->auth);
    tl__free(h->auth);
    tl__free(h->user_agent);
    tl__free(h);
}

void tl__http_resp_clear(struct tl_http_resp *r)
{
    tl__free(r->body);
    tl__free(r->date);
    tl__free(r->etag);
    tl__free(r->link);
    tl__free(r->location);
    tl__free(r->retry_after);
    tl__free(r->rl_resource);
    memset(r, 0, sizeof(*r));
    r->rl_limit = r->rl_remaining = r->rl_used = r->rl_reset = -1;
}

/* Drops the headers of an earlier response (a 100 Continue, say) when a new one starts. */
static void reset_headers(struct tl_http_resp *r)
{
    char **fields[] = {&r->date,     &r->etag,        &r->link,
                       &r->location, &r->retry_after, &r->rl_resource};

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        tl__free(*fields[i]);
        *fields[i] = NULL;
    }
    r->rl_limit = r->rl_remaining = r->rl_used = r->rl_reset = -1;
}

static bool name_is(const char *line, size_t nlen, const char *name)
{
    size_t n = strlen(name);

    if (nlen != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char)line[i]) != name[i])
            return false;
    }
    return true;
}

static int64_t parse_int_header(const char *v, size_t len)
{
    int64_t x = 0;

    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct sink *sk = ud;
    struct tl_http_resp *r = sk->resp;
    size_t len = size * nmemb;

    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        reset_headers(r);
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (colon == NULL)
        return len;
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
                        v[vlen - 1] == '\t'))
        vlen--;
    if (vlen > MAX_HEADER_VALUE)
        return len; /* not one we could use: ignore it */

    char **slot = NULL;
    int64_t *num = NULL;
    if (name_is(data, nlen, "date"))
        slot = &r->date;
    else if (name_is(data, nlen, "etag"))
        slot = &r->etag;
    else if (name_is(data, nlen, "link"))
        slot = &r->link;
    else if (name_is(data, nlen, "location"))
        slot = &r->location;
    else if (name_is(data, nlen, "retry-after"))
        slot = &r->retry_after;
    else if (name_is(data, nlen, "x-ratelimit-resource"))
        slot = &r->rl_resource;
    else if (name_is(data, nlen, "x-ratelimit-limit"))
        num = &r->rl_limit;
    else if (name_is(data, nlen, "x-ratelimit-remaining"))
        num = &r->rl_remaining;
    else if (name_is(data, nlen, "x-ratelimit-used"))
        num = &r->rl_used;
    else if (name_is(data, nlen, "x-ratelimit-reset"))
        num = &r->rl_reset;

    if (num != NULL) {
        *num = parse_int_header(v, vlen);
    } else if (slot != NULL) {
        tl__free(*slot);
        *slot = tl__strndup(v, vlen);
        if (*slot == NULL)
            sk->oom = true;
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct sink *sk = ud;
    struct tl_http_resp *r = sk->resp;
    size_t len = size * nmemb;

    if (r->body_len + len > sk->max) {
        sk->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (r->body_len + len + 1 > sk->cap) {
        size_t ncap = sk->cap ? sk->cap : 4096;
        while (ncap < r->body_len + len + 1)
            ncap *= 2;
        char *nb = tl__realloc(r->body, ncap);
        if (nb == NULL) {
            sk->oom = true;
            return 0;
        }
        r->body = nb;
        sk->cap = ncap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

/* Whether a failed transfer may have delivered the request (so a write may have happened). */
static bool maybe_sent(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_OUT_OF_MEMORY: return false;
    default: return true;
    }
}

/* The URL without its query, for messages (no secrets are ever in it, but keep them short). */
static int url_shown_len(const char *url)
{
    size_t n = strcspn(url, "?#");

    return n > 160 ? 160 : (int)n;
}

tl_status tl__http_request(struct tl_http *h, const char *method, const char *url, const char *body,
                           const char *if_none_match, uint32_t limit_ms, struct tl_http_resp *resp,
                           char *err)
{
    uint32_t timeout = h->opts.timeout_ms, connect = h->opts.connect_timeout_ms;
    struct curl_slist *hdrs = NULL, *t;
    struct sink sk = {.resp = resp, .max = h->opts.max_body};
    char *inm = NULL;
    tl_status st = TL_OK;
    CURL *e = h->easy;

    memset(resp, 0, sizeof(*resp));
    tl__http_resp_clear(resp);
    curl_easy_reset(e);
    h->errbuf[0] = '\0';

    const char *fixed[] = {"Accept: application/vnd.github+json",
                           "X-GitHub-Api-Version: 2022-11-28",
                           "Expect:", body ? "Content-Type: application/json" : NULL};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (fixed[i] == NULL)
            continue;
        if ((t = curl_slist_append(hdrs, fixed[i])) == NULL)
            goto err_oom;
        hdrs = t;
    }
    if (h->auth != NULL) {
        if ((t = curl_slist_append(hdrs, h->auth)) == NULL)
            goto err_oom;
        hdrs = t;
    }
    if (if_none_match != NULL) {
        if ((inm = tl__asprintf("If-None-Match: %s", if_none_match)) == NULL ||
            (t = curl_slist_append(hdrs, inm)) == NULL)
            goto err_oom;
        hdrs = t;
    }

    CURLcode rc = CURLE_OK;
#define SET(opt, val)                           \
    do {                                        \
        if (rc == CURLE_OK)                     \
            rc = curl_easy_setopt(e, opt, val); \
    } while (0)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_ERRORBUFFER, h->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, h->opts.allow_http ? "https,http" : "https");
#else
    SET(CURLOPT_PROTOCOLS,
        h->opts.allow_http ? (long)(CURLPROTO_HTTPS | CURLPROTO_HTTP) : (long)CURLPROTO_HTTPS);
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_USERAGENT, h->user_agent);
    SET(CURLOPT_HTTPHEADER, hdrs);
    if (limit_ms != 0 && limit_ms < timeout)
        timeout = limit_ms;
    if (connect > timeout)
        connect = timeout;
    SET(CURLOPT_TIMEOUT_MS, (long)timeout);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)connect);
    SET(CURLOPT_ACCEPT_ENCODING, ""); /* whatever this libcurl can decode */
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, &sk);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, &sk);
    if (h->opts.allow_http)
        SET(CURLOPT_NOPROXY, "*"); /* a loopback test server is never behind a proxy */
    if (strcmp(method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        SET(CURLOPT_CUSTOMREQUEST, method);
        SET(CURLOPT_POSTFIELDS, body ? body : "");
        SET(CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    }
#undef SET
    if (rc != CURLE_OK) {
        (void)snprintf(err, TL_ERRMSG_SIZE, "github: libcurl refused an option: %s",
                       curl_easy_strerror(rc));
        st = TL_ESTORE;
        goto done;
    }

    rc = curl_easy_perform(e);
    if (sk.oom)
        goto err_oom;
    if (rc != CURLE_OK) {
        resp->maybe_sent = maybe_sent(rc);
        if (sk.too_big) {
            (void)snprintf(err, TL_ERRMSG_SIZE,
                           "github: %s %.*s: the response is larger than %zu bytes", method,
                           url_shown_len(url), url, h->opts.max_body);
            st = TL_ESTORE;
        } else if (rc == CURLE_OPERATION_TIMEDOUT) {
            (void)snprintf(err, TL_ERRMSG_SIZE, "github: %s %.*s: no answer within %u ms", method,
                           url_shown_len(url), url, timeout);
            st = TL_ETIMEDOUT;
        } else {
            (void)snprintf(err, TL_ERRMSG_SIZE, "github: %s %.*s: %.120s", method,
                           url_shown_len(url), url,
                           h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
            st = TL_ESTORE;
        }
        goto done;
    }
    (void)curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->maybe_sent = true;
    if (resp->body == NULL && (resp->body = tl__strdup("")) == NULL)
        goto err_oom;
    goto done;

err_oom:
    (void)snprintf(err, TL_ERRMSG_SIZE, "out of memory");
    st = TL_ENOMEM;
done:
    curl_slist_free_all(hdrs); /* the copy of the token in it is freed with the list */
    tl__free(inm);
    if (st != TL_OK) {
        long keep_sent = resp->maybe_sent;
        tl__http_resp_clear(resp);
        resp->maybe_sent = keep_sent != 0;
    }
    return st;
}
