/*
 * http.h -- the small HTTP client of the GitHub store, on libcurl.
 *
 * One struct tl_http per store instance, used by one thread at a time (a CURL easy handle must
 * not be shared between threads; its connection cache is reused between requests). Every
 * response's headers of interest are captured, the body is bounded, and the token is only ever
 * written into the Authorization header: it is never logged, never put in a URL and never part
 * of an error message.
 */
#ifndef TL_HTTP_H
#define TL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl.h"

struct tl_http; /* opaque */

struct tl_http_opts {
    const char *user_agent;      /* required: GitHub rejects requests without one */
    uint32_t timeout_ms;         /* whole request; 0: 20000 */
    uint32_t connect_timeout_ms; /* 0: 5000 */
    size_t max_body;             /* larger responses fail; 0: 32 MiB */
    bool allow_http;             /* plain http:// allowed (loopback test servers only) */
};

/* A response. Strings are NUL-terminated and owned by the response (NULL when absent). */
struct tl_http_resp {
    long status; /* HTTP status; 0 when no response arrived */
    char *body;  /* never NULL after a response (may be "") */
    size_t body_len;
    char *date;        /* Date */
    char *etag;        /* ETag, verbatim */
    char *link;        /* Link */
    char *location;    /* Location */
    char *retry_after; /* Retry-After */
    char *rl_resource; /* x-ratelimit-resource */
    int64_t rl_limit;  /* x-ratelimit-*: -1 when absent */
    int64_t rl_remaining;
    int64_t rl_used;
    int64_t rl_reset; /* epoch seconds */
    /* Failure without a status: whether the request may have reached the server (so that a
     * write may have been committed). False only when it surely did not (no connection). */
    bool maybe_sent;
};

/* Creates a client. `token` (may be NULL) is copied into the Authorization header only.
 * Returns TL_ENOMEM or TL_ESTORE (libcurl could not start) with a message in `err`. */
tl_status tl__http_new(const struct tl_http_opts *opts, const char *token, struct tl_http **out,
                       char *err);
void tl__http_free(struct tl_http *h); /* NULL is a no-op; wipes the token */

/*
 * Sends one request and waits for the answer. `method` is "GET", "POST", "PATCH" or "DELETE";
 * `body` (may be NULL) is sent as application/json (also with DELETE); `if_none_match` (may be
 * NULL) is sent as If-None-Match. Redirects are not followed (a 301 is the caller's to report).
 * `limit_ms` (0: none) bounds the whole request, connect included, below the client's own
 * timeouts. TL_OK when a response arrived, whatever its status (see resp->status); else
 * TL_ETIMEDOUT or TL_ESTORE (no response: resp->status is 0) or TL_ENOMEM, with a message in
 * `err` that names the method and URL but never the token. `resp` is cleared first; free it with
 * tl__http_resp_clear.
 */
tl_status tl__http_request(struct tl_http *h, const char *method, const char *url, const char *body,
                           const char *if_none_match, uint32_t limit_ms, struct tl_http_resp *resp,
                           char *err);
void tl__http_resp_clear(struct tl_http_resp *r);

/* Whether `host` (as in a URL: "127.0.0.1", "[::1]", "localhost") is a loopback host. */
bool tl__http_host_is_loopback(const char *host, size_t len);

#endif /* TL_HTTP_H */
