/*
 * store.h -- the store interface: one vtable, one contract (DESIGN.md section 3).
 *
 * A store instance is one connection to one store, used by one thread at a time. The manager
 * opens two: one for the calling thread and one for its heartbeat thread.
 *
 * The contract, for a key:
 * - claim: atomic. Of any number of concurrent claims exactly one wins. A win gets a new token,
 *   larger than every token the key had before (also across release and steal).
 *   TL_CLAIM_NORMAL wins only if the key is free; TL_CLAIM_STEAL also wins if the holder is stale
 *   (by the store's clock, against the lock timeout the holder recorded); TL_CLAIM_FORCE always
 *   wins. Same worker id is not ownership: a held key is held, whoever asks.
 * - renew: compare worker id and token, then record a heartbeat by the store's clock.
 *   TL_ELOST if the record is no longer ours (stolen, forced or released).
 * - release: compare worker id and token, then free the key. TL_OK if the key is already free
 *   and no one has claimed it since our token (releasing twice is not an error).
 *   TL_ENOTOWNER if someone else holds it or claimed it since.
 * - force_release (version 2): free the key whoever holds it (or only the holder with a given
 *   token), as a forced claim and its release at once: a new token, `forced` and `released`
 *   events of the breaker; the former holder's renew then answers TL_ELOST.
 * - inspect/list: records of held keys, stale ones included, each judged stale or not.
 * - A record is never dropped silently: a stale lock stays held until it is stolen, forced or
 *   released.
 * - Time: every call returns by `deadline_mono_ms` when the core sets it (an acquire's
 *   deadline; a renew's is its lock's loss deadline), connects, writes and reads included; a
 *   call that has already written may finish what it must to stay consistent (GitHub).
 *   Tokens never go backwards, even when the store's data is lost (SQLite and Redis floor
 *   them by the clock).
 * Every operation is safe to retry.
 */
#ifndef TL_STORE_H
#define TL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "tl.h"

/* 2: force_release appended. */
#define TL_STORE_OPS_VERSION 2

enum tl_claim_mode { TL_CLAIM_NORMAL = 0, TL_CLAIM_STEAL, TL_CLAIM_FORCE };

/* What a store instance knows of its surroundings. Set by the core before open. */
struct tl_store {
    const struct tl_store_ops *ops;
    const struct tl_clock *clock; /* the manager's clocks (stores without a clock use now_ms) */
    const struct tl_logger *log;
    char errmsg[TL_ERRMSG_SIZE]; /* this instance's last error; see tl__store_fail() */
    /* Set by open: the heartbeat interval this store prefers for a lock timeout, as a divisor
     * (interval = min(30 s, timeout / divisor)); 0 means 3. GitHub uses 4 and no 30 s cap. */
    uint32_t heartbeat_divisor;
    bool heartbeat_uncapped;
    /* Set by the core before each call: the monotonic time (the clock's mono_ms) by which the
     * current call must return, or 0 for none. A store that would wait (a rate limit's reset, a
     * retry-after) waits only if it can finish before this; otherwise it fails at once and says
     * until when it would have had to wait. */
    int64_t deadline_mono_ms;
    /* May be set by open (allocated with tl__malloc; the core frees it): the URL with what the
     * environment decided written out, so that it names the same store from another process
     * (SQLite: `sqlite:` becomes the absolute path of the default file). NULL: the URL as
     * given. */
    char *resolved_url;
};

/* A claim request. Strings are borrowed for the call. */
struct tl_claim {
    const char *key;
    const char *worker_id;
    const char *node_id;
    const char *task_info; /* normalised JSON object text, never NULL */
    uint32_t lock_timeout_ms;
    enum tl_claim_mode mode;
};

/* A forced release: an administrator breaking a lock, whoever holds it. Strings are borrowed
 * for the call. */
struct tl_force_release {
    const char *key;
    const char *worker_id; /* who breaks it: recorded in the audit trail */
    const char *node_id;
    uint64_t token;      /* 0: whoever holds it; else only the holder with this token */
    const char *summary; /* text of the `released` event, never NULL */
};

/* The outcome of a claim. */
struct tl_claim_result {
    struct tl_record rec; /* won: our record (token, times); busy: the holder's, if known */
    bool holder_known;    /* busy: whether rec describes the holder */
    bool took_stale;      /* won by replacing a stale holder */
    bool took_forced;     /* won by forcing out a live holder */
};

struct tl_store_ops {
    int version;        /* TL_STORE_OPS_VERSION */
    const char *scheme; /* "sqlite", "memory", "github", ... */
    size_t size;        /* bytes of the instance; struct tl_store comes first */

    /* Parses `url` and connects. `url` is the whole URL, scheme included. On failure the core
     * still calls close, so close must accept a half-opened instance. */
    tl_status (*open)(struct tl_store *s, const char *url);
    void (*close)(struct tl_store *s);

    /* TL_OK: won, out->rec is ours. TL_EBUSY: held, out->rec the holder's when known. */
    tl_status (*claim)(struct tl_store *s, const struct tl_claim *req, struct tl_claim_result *out);
    /* `held` is the record claim returned (immutable while held); `seq` counts renewals of this
     * lock (1, 2, ...). On TL_OK *heartbeat_at_ms is the new heartbeat time, store clock. */
    tl_status (*renew)(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                       int64_t *heartbeat_at_ms);
    tl_status (*release)(struct tl_store *s, const struct tl_record *held, const char *summary);
    /* *found false when the key is free. */
    tl_status (*inspect)(struct tl_store *s, const char *key, struct tl_record *out, bool *found);

    /* Optional (NULL: TL_ENOTSUP). */
    tl_status (*list)(struct tl_store *s, struct tl_record ***out, size_t *count);
    tl_status (*history)(struct tl_store *s, const char *key, size_t limit, struct tl_event ***out,
                         size_t *count);
    /* Blocks up to `timeout_ms` or until `key` may have been released, whichever is first.
     * TL_OK either way; an error makes the caller fall back to sleeping. NULL: plain sleep. */
    tl_status (*wait)(struct tl_store *s, const char *key, uint32_t timeout_ms);
    /* Checks that `key` is a key this store can lock (after tl_key_is_valid()). NULL: any. */
    tl_status (*check_key)(struct tl_store *s, const char *key);

    /* Version 2. */
    /*
     * Frees `req->key` whoever holds it (if req->token is not 0, only when its holder has that
     * token), in one atomic step where the store allows: a claim in force mode and its release,
     * with nothing in between. Like such a claim it takes a new token, larger than the holder's,
     * and records a `forced` event ("from HOLDER (token N)") and a `released` event
     * (req->summary), both of req->worker_id with that token; so the former holder's renew
     * finds the lock lost and its release is refused (TL_ENOTOWNER), and the key's next holder
     * gets a larger token still. TL_OK with *found true and `former` the holder's record
     * (judged stale or not); TL_OK with *found false when the key is free (a retry after
     * success finds that); TL_ENOTOWNER, with `former` filled, when it is held with another
     * token. Optional (NULL: TL_ENOTSUP).
     */
    tl_status (*force_release)(struct tl_store *s, const struct tl_force_release *req,
                               struct tl_record *former, bool *found);
};

/* Writes the instance's message slot and returns `st`. */
tl_status tl__store_fail(struct tl_store *s, tl_status st, const char *fmt, ...) TL_PRINTF(3, 4);

/* Finds the store ops for `url` by its scheme (registry.c). NULL if the scheme is unknown. */
const struct tl_store_ops *tl__store_find(const char *url);
/* Whether the scheme is one we know but this build lacks (for the message). */
bool tl__store_known_but_missing(const char *url);

/*
 * Allocates and opens an instance for `url` with `ops`, or with the store its scheme names when
 * `ops` is NULL. On failure returns the status and copies the store's message into `err`
 * (TL_ERRMSG_SIZE); *out is NULL.
 */
tl_status tl__store_open(const char *url, const struct tl_store_ops *ops,
                         const struct tl_clock *clock, const struct tl_logger *log,
                         struct tl_store **out, char *err);
void tl__store_close(struct tl_store *s); /* NULL is a no-op */

/* Helpers for store implementations. */

/* What a claim in `mode` does to a key whose holder (if `held`) last heartbeated at `beat_ms`
 * with `timeout_ms`, judged at `now_ms`. */
enum tl_verdict { TL_VERDICT_FREE, TL_VERDICT_STEAL, TL_VERDICT_FORCE, TL_VERDICT_BUSY };
enum tl_verdict tl__claim_verdict(bool held, int64_t beat_ms, uint32_t timeout_ms,
                                  enum tl_claim_mode mode, int64_t now_ms);

tl_status tl__record_array_push(struct tl_record ***arr, size_t *count, size_t *cap,
                                struct tl_record *r);
tl_status tl__event_array_push(struct tl_event ***arr, size_t *count, size_t *cap,
                               struct tl_event *e);

/* The stores this build has (registry.c lists them). */
extern const struct tl_store_ops tl__store_memory;
extern const struct tl_store_ops tl__store_sqlite;
extern const struct tl_store_ops tl__store_github;
extern const struct tl_store_ops tl__store_redis;
extern const struct tl_store_ops tl__store_postgres;

#endif /* TL_STORE_H */
