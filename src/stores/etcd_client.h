/*
 * etcd_client.h -- the client half of the etcd store: etcd's v3 JSON gateway (grpc-gateway)
 * over libcurl, with failover between a cluster's endpoints.
 *
 * It knows HTTP, the gateway's wire conventions (base64 bytes, int64 as strings, omitted zero
 * values, the error body), authentication and which failures to retry where; it knows nothing of
 * locks (etcd.c does). One client per store instance, used by one thread at a time (a CURL easy
 * handle must not be shared). Passwords and auth tokens are never logged and never part of a
 * message.
 */
#ifndef TL_STORES_ETCD_CLIENT_H
#define TL_STORES_ETCD_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl.h"

struct tl_etcd; /* opaque */

struct tl_etcd_opts {
    const char *const *endpoints; /* "HOST:PORT" each (IPv6 as "[ADDR]:PORT"); at least one */
    size_t nendpoints;
    bool tls;             /* https:// instead of http:// */
    const char *cacert;   /* NULL: the system's CA bundle */
    const char *user;     /* NULL: no authentication */
    const char *password; /* with user */
    uint32_t request_ms;  /* one request on one endpoint; 0: 2000 */
    uint32_t connect_ms;  /* one connect; 0: 1000 */
};

/* Creates a client (no I/O). TL_ENOMEM or TL_ESTORE with a message in `err`. */
tl_status tl__etcd_new(const struct tl_etcd_opts *opts, struct tl_etcd **out, char *err);
void tl__etcd_free(struct tl_etcd *c); /* NULL is a no-op; wipes the password and token */

/* Whether a call may be repeated on any endpoint after an unclear failure. */
enum tl_etcd_call { TL_ETCD_READ, TL_ETCD_WRITE };

/* What the last failed call learned (valid until the next call). */
struct tl_etcd_error {
    long http;   /* HTTP status; 0: no answer */
    int code;    /* gRPC code of the error body; -1: none */
    bool unsure; /* a write that may have been applied (then it was not repeated) */
};

/*
 * POSTs the JSON object `body` (borrowed) to `path` ("/v3/kv/txn"). A request that fails or
 * stalls (no answer within the request time, a 503, "no leader", "leader changed", too many
 * requests) moves to the next endpoint, with backoff after a round of all of them, until
 * `deadline_mono_ms` (the real monotonic clock; 0: 10 s from now). A TL_ETCD_WRITE that may have
 * reached the server is not repeated: the call fails with `unsure` set, and the caller re-reads
 * before it decides again. TL_OK with *out the parsed answer (the caller decrefs); else
 * TL_ETIMEDOUT, TL_ESTORE (an error answer: see tl__etcd_last_error) or TL_ENOMEM, with a
 * message in `err` that names the path and endpoint.
 */
tl_status tl__etcd_post(struct tl_etcd *c, const char *path, json_t *body, enum tl_etcd_call kind,
                        int64_t deadline_mono_ms, json_t **out, char *err);
const struct tl_etcd_error *tl__etcd_last_error(const struct tl_etcd *c);

/*
 * Opens the client's watch stream (one per client; an open one is closed first) with the `n`
 * create requests in `creates` (borrowed: each is the object inside {"create_request": ...}).
 * Once the server has confirmed every watch, calls `on_created(ud)` (may be NULL), outside any
 * libcurl callback, so it may make unary calls on the same client: it returns true to end the
 * watch at once (what it read makes the watch needless). Then hands every message's "result" to
 * `on_result` (borrowed), until it returns true (the stream is closed, *stopped true), or
 * `until_mono_ms` passes (TL_OK, the stream stays open for tl__etcd_watch_wait), or the stream
 * fails (TL_ESTORE/TL_ETIMEDOUT, closed: the caller sleeps or polls instead). `ud` must live
 * until the stream is closed.
 */
tl_status tl__etcd_watch_open(struct tl_etcd *c, json_t *const *creates, size_t n,
                              int64_t until_mono_ms, bool (*on_created)(void *ud),
                              bool (*on_result)(void *ud, json_t *result), void *ud, bool *stopped,
                              char *err);
/* Waits on the open stream, as tl__etcd_watch_open does after its creation. */
tl_status tl__etcd_watch_wait(struct tl_etcd *c, int64_t until_mono_ms, bool *stopped, char *err);
/* Whether a stream is open, has not been ended by a callback, is on the endpoint unary requests
 * use now, and was opened less than `max_age_ms` ago. */
bool tl__etcd_watch_is_open(const struct tl_etcd *c, int64_t max_age_ms);
/* Closes the stream (no-op when none is open). */
void tl__etcd_watch_close(struct tl_etcd *c);

/* The endpoint the client talks to now ("HOST:PORT"), for messages. */
const char *tl__etcd_endpoint(const struct tl_etcd *c);

/* Standard base64 with padding. encode: a new string (tl__malloc) or NULL when out of memory.
 * decode: a new NUL-terminated buffer and its length, or NULL for bad input or no memory. */
char *tl__b64_encode(const void *data, size_t len);
char *tl__b64_decode(const char *text, size_t *len);

/* An int64 field of a gateway answer: a JSON string of digits or a number; absent means 0 (the
 * gateway omits zero values). false when present but not an integer. */
bool tl__etcd_i64(json_t *obj, const char *field, int64_t *out);

#endif /* TL_STORES_ETCD_CLIENT_H */
