/*
 * etcd_int.h -- what the files of the etcd store share (not installed; nothing else includes it):
 * etcd.c (open, claim, renew, force), etcd_read.c (inspect, list, history and the line's
 * waiting), etcd_wire.c (the key layout, the values we write, gateway calls and leases),
 * etcd_next.c (release, and claim-next with its done markers), etcd_modes.c (shared holders and
 * semaphores: the holder set of a key), etcd_convert.c (upgrades, downgrades, and what waiters
 * keep for the wait-for graph).
 */
#ifndef TL_STORES_ETCD_INT_H
#define TL_STORES_ETCD_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd.h"
#include "etcd_client.h"
#include "store.h"
#include "tl.h"

#define ETCD_DEFAULT_PREFIX      "tasklock/"
#define ETCD_DEFAULT_HISTORY_MAX 1000u
#define ETCD_HISTORY_MAX_LIMIT   100000u
/* A call without a deadline of its own tries for this many request times (default 2 s each):
 * long enough for an election, short enough for a person waiting on a dead cluster. */
#define ETCD_OP_BUDGET_REQUESTS 5
#define ETCD_DEFAULT_REQUEST_MS 2000u
#define ETCD_MAX_ENDPOINTS      16
#define ETCD_MAX_LEASES         8
#define ETCD_SEP                "\x1f"
#define ETCD_SEP_NEXT           "\x20"
/* A waiter's watch is reused across wait_turn calls for at most this long, then set up again
 * (on the endpoint of the moment). */
#define ETCD_WATCH_REUSE_MS 5000
/* One release in this many counts the key's audit trail, to trim it. */
#define ETCD_TRAIL_CHECK_EVERY 16
#define ETCD_TXN_MAX_OPS       100 /* etcd allows 128 per transaction */

struct etcd_lease {
    int64_t id;
    uint32_t ttl_s;
    int64_t beat_mono; /* when its last grant or keep-alive was sent (the store clock's mono) */
};

struct etcd_turn; /* etcd_read.c: a waiter's wait, with its watch left open between calls */
struct etcd_any;  /* etcd_next.c: a claim-next's wait for any candidate, its watch likewise */

struct etcd_store {
    struct tl_store base;
    struct tl_etcd *cli;
    char *prefix;
    uint32_t history_max;
    uint32_t request_ms; /* one request on one endpoint */
    struct etcd_lease leases[ETCD_MAX_LEASES];
    size_t nleases;
    /* The last busy claim with a waiter: what wait_turn needs to know of it. */
    char *wait_key;
    char wait_id[40];
    enum tl_claim_mode wait_mode;
    bool wait_shared; /* its claim's mode and slots: wait_turn wakes it when admitted */
    uint32_t wait_slots;
    /* The revision at which wait_turn found that waiter the head of a free key (0: none): its
     * next claim compares "nothing joined since" instead of reading again. */
    int64_t turn_rev;
    uint32_t releases; /* counted from a random start (see etcd_release) */
    struct etcd_turn *turn;
    /* The open watch is the turn's or this one's (never both). */
    struct etcd_any *any;
    /* The revision at which the last claim-next found every candidate busy (0: none): wait_any
     * watches from the next one. */
    int64_t next_rev;
    /* Keys this instance has seen done, sorted (etcd_next.c: a hint for claim-next). */
    char **done_keys;
    size_t ndone, done_cap;
    struct tl_etcd_stats stats;
};

_Static_assert(offsetof(struct etcd_store, base) == 0, "base must be first");

/* One key-value of an answer, decoded. */
struct etcd_kv {
    char *key;
    char *value;
    size_t value_len;
    int64_t create, mod, lease;
};

struct etcd_waiter {
    struct etcd_kv kv;
    const char *id; /* in kv.key, after ETCD_SEP */
    int32_t priority;
};

struct etcd_key_state {
    int64_t rev; /* the revision it was read at */
    bool held, live;
    bool shared; /* l is a set of shared holders (etcd_modes.c), not one exclusive holder */
    struct etcd_kv l, h;
    struct etcd_kv *sh; /* the shared holders' liveness keys (PREFIX s/KEY ETCD_SEP NONCE) */
    size_t nsh;
    struct etcd_waiter *line; /* in line order */
    size_t nline;
};

/* The keys of a lock, for one call. */
struct etcd_names {
    char *l, *o, *h, *line, *line_end, *waiter;
    char *s, *s_end; /* the shared holders' liveness keys, as a range */
    size_t line_len;
};

/* One holder of a key (etcd_modes.c): the exclusive one, or one of the shared ones. */
struct etcd_holder {
    struct tl_record rec;       /* not judged; token, mode and slots filled */
    char nonce[33];             /* its claim's nonce ("" when the record has none) */
    const struct etcd_kv *live; /* its liveness key (borrowed from the state), NULL: stale */
};

/* The holders of a key, by token. */
struct etcd_group {
    struct etcd_holder *h;
    size_t n;
    bool exclusive; /* n == 1, the exclusive holder (the record of l/KEY as before version 5) */
    uint32_t slots; /* shared: the semaphore's slots (0: no limit) */
};

static inline struct etcd_store *es_of(struct tl_store *s)
{
    return (struct etcd_store *)s;
}

static inline int64_t mono(struct tl_store *s)
{
    return s->clock->mono_ms(s->clock->ud);
}

static inline int64_t now_ms(struct tl_store *s)
{
    return s->clock->now_ms(s->clock->ud);
}

tl_status tl__etcd_oom(struct tl_store *s);

/* Before attempt `attempt` (1, 2, ...) of a transaction whose compare failed because the key
 * changed under it (other holders coming and going): a random pause of up to 2^attempt ms (at
 * most 64), so that contenders on one hot key stop colliding in step; never past the call's
 * deadline. */
void tl__etcd_contention_pause(struct tl_store *s, int attempt);

void tl__etcd_random_hex(char *out, size_t bytes);

/* PREFIX + part + key [+ ETCD_SEP [+ id]]. */
char *tl__etcd_path(const struct etcd_store *es, const char *part, const char *key, const char *sep,
                    const char *id);

/* The first key after every key that starts with `prefix` (whose last byte is not 0xff). */
char *tl__etcd_prefix_end(const char *prefix);

json_t *tl__etcd_i64s(int64_t v);

/* json_object_set_new that tolerates NULL values (and then marks the object bad). */
void tl__etcd_set(json_t *obj, const char *field, json_t *v, bool *ok);

json_t *tl__etcd_op_put(const char *key, const char *value, int64_t lease, bool *ok);

json_t *tl__etcd_op_delete(const char *key, const char *end, bool *ok);

/* A range request body (also the inside of a request_range op). */
json_t *tl__etcd_range_req(const char *key, const char *end, bool *ok);

json_t *tl__etcd_op_range(json_t *req, bool *ok);

/* A compare of `target` ("CREATE", "MOD") on key (or [key, end)) by `result` with `v`. */
json_t *tl__etcd_cmp(const char *key, const char *end, const char *target, const char *result,
                     int64_t v, bool *ok);

void tl__etcd_push(json_t *arr, json_t *v, bool *ok);

/* A compare of the value of `key` with `value`, exactly. */
json_t *tl__etcd_cmp_value(const char *key, const char *value, bool *ok);

void tl__etcd_kvs_free(struct etcd_kv *arr, size_t n);

/* The kvs of a range answer (response_range's content), decoded. */
tl_status tl__etcd_kvs_parse(struct tl_store *s, json_t *range, struct etcd_kv **out, size_t *n);

/* response i of a txn answer, of kind `kind` ("response_range"). */
json_t *tl__etcd_txn_response(json_t *ans, size_t i, const char *kind);

bool tl__etcd_txn_succeeded(json_t *ans);

int64_t tl__etcd_header_revision(json_t *ans);

/* POSTs and copies the client's message on failure. */
tl_status tl__etcd_call(struct tl_store *s, const char *p, json_t *body, enum tl_etcd_call kind,
                        json_t **out);

/* A transaction; `compare`, `success`, `failure` are stolen (NULL: empty). */
tl_status tl__etcd_txn(struct tl_store *s, json_t *compare, json_t *success, json_t *failure,
                       bool ok, enum tl_etcd_call kind, json_t **out);

/* Whether the last failure was a write that may have been applied. */
bool tl__etcd_unsure(const struct etcd_store *es);

/* Whether the last failure was etcd saying that a lease does not exist (it expired). */
bool tl__etcd_lease_gone(const struct etcd_store *es);

/* A keep-alive of lease `id`: *alive false when etcd no longer has it. */
tl_status tl__etcd_keepalive(struct tl_store *s, int64_t id, bool *alive);

void tl__etcd_forget_lease(struct etcd_store *es, int64_t id);

/*
 * A lease of this instance for `timeout_ms`, alive for at least that long from *sent (when its
 * grant or last keep-alive was sent): one kept alive within a sixth of the timeout is used as it
 * is, else it is kept alive now, or a new one is granted.
 */
tl_status tl__etcd_lease_for(struct tl_store *s, uint32_t timeout_ms, int64_t *id, int64_t *sent);

/* When the holder of lease `id` last heartbeated (our clock, estimated from the remaining TTL),
 * or *alive false when the lease is gone. */
tl_status tl__etcd_lease_beat(struct tl_store *s, int64_t id, int64_t *beat_ms, bool *alive);

/* The lock record's value. */
char *tl__etcd_record_value(const struct tl_claim *req, const char *nonce, int64_t at);

char *tl__etcd_live_value(uint32_t timeout_ms);

/* A record from the lock record `l` (token = its mod revision) and liveness `h` (may be NULL;
 * its lock timeout and lease), not judged yet; with `nonce_copy`, the claim's nonce too. */
tl_status tl__etcd_record_from(struct tl_store *s, const char *key, const struct etcd_kv *l,
                               const struct etcd_kv *h, struct tl_record *out, char **nonce_copy);

/* Fills heartbeat, staleness and observation time of a record whose liveness key is `h`: stale
 * exactly when etcd has deleted it (the claim's steal compares that), the heartbeat estimated
 * from the lease's remaining whole seconds. */
tl_status tl__etcd_judge(struct tl_store *s, struct tl_record *r, const struct etcd_kv *h);

/* The same, with the holder's liveness and estimated heartbeat already known. */
void tl__etcd_judge_at(struct tl_store *s, struct tl_record *r, bool live, int64_t beat);

/* A put op of an event of `key`. */
json_t *tl__etcd_op_event(const struct etcd_store *es, const char *key, tl_event_kind kind,
                          const char *worker, const char *node, uint64_t token, int64_t at,
                          const char *detail, int order, bool *ok);

void tl__etcd_state_clear(struct etcd_key_state *ks);

void tl__etcd_names_clear(struct etcd_names *k);

tl_status tl__etcd_names_for(struct tl_store *s, const char *key, const char *waiter_id,
                             struct etcd_names *k);

/* The four ranges of a key's state, as ops (appended to `ops`). */
void tl__etcd_state_ops(json_t *ops, const struct etcd_names *k, bool *ok);

/* Parses the state from responses first..first+3 of a txn answer. */
tl_status tl__etcd_state_from(struct tl_store *s, json_t *ans, size_t first,
                              const struct etcd_names *k, struct etcd_key_state *ks);

tl_status tl__etcd_read_state(struct tl_store *s, const struct etcd_names *k,
                              struct etcd_key_state *ks);

/* A waiter's priority, as its value says (clamped; TL_PRIORITY_UPGRADE at most). */
int32_t tl__etcd_waiter_priority(const struct etcd_kv *k);

/* Our place in the line: index of waiter `id`, or -1. */
long tl__etcd_line_index(const struct etcd_key_state *ks, const char *id);

/* Ends the waiter's wait of etcd_read.c, if any: closes its watch (a claim that won, a leave,
 * close). */
void tl__etcd_turn_end(struct tl_store *s);

/* The ops of etcd_read.c (see store.h). */
tl_status tl__etcd_inspect(struct tl_store *s, const char *key, struct tl_record *out, bool *found);
tl_status tl__etcd_list(struct tl_store *s, struct tl_record ***out, size_t *count);
tl_status tl__etcd_history(struct tl_store *s, const char *key, size_t limit,
                           struct tl_event ***out, size_t *count);
tl_status tl__etcd_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                             uint32_t timeout_ms, bool *woken);
tl_status tl__etcd_wait(struct tl_store *s, const char *key, uint32_t timeout_ms);
tl_status tl__etcd_leave(struct tl_store *s, const char *key, const char *waiter_id);
tl_status tl__etcd_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                           size_t *count);

/* The lock timeout a liveness value records, or 0. */
uint32_t tl__etcd_live_timeout(const struct etcd_kv *h);

/* Whether a lock record's value is a set of shared holders. */
bool tl__etcd_value_is_shared(const struct etcd_kv *l);

/* ---- etcd_modes.c: shared holders and semaphores ---- */

/* The holders of `key` from its state (none when free). A malformed set: TL_ESTORE. */
tl_status tl__etcd_group_of(struct tl_store *s, const char *key, const struct etcd_key_state *ks,
                            struct etcd_group *g);
/* The same from a lock record and the liveness keys sh[0..nsh) (other keys' are skipped). */
tl_status tl__etcd_group_from(struct tl_store *s, const char *key, const struct etcd_kv *l,
                              const struct etcd_kv *h, const struct etcd_kv *sh, size_t nsh,
                              struct etcd_group *g);
void tl__etcd_group_clear(struct etcd_group *g);
/* The holder a newcomer waits for first: the exclusive one, else the oldest (NULL: none). */
const struct etcd_holder *tl__etcd_group_blocker(const struct etcd_group *g);
/* Index of the holder with `token` (and `worker`, if not NULL), or -1. */
long tl__etcd_group_find(const struct etcd_group *g, uint64_t token, const char *worker);
/* A judged copy of holder `i` into `out` (a lease's time-to-live: one request). */
tl_status tl__etcd_holder_judged(struct tl_store *s, const struct etcd_group *g, size_t i,
                                 struct tl_record *out);
/*
 * The value of l/KEY for the shared holders of `g` (none when it is exclusive; may be NULL) whose
 * keep[i] is true (keep NULL: all), in order, then (with `add`) a new shared holder whose token
 * is the revision of the write. NULL when none is left, or out of memory (*ok false).
 */
char *tl__etcd_group_value(const struct etcd_group *g, const bool *keep, const struct tl_claim *add,
                           const char *nonce, int64_t at, uint32_t slots, bool *ok);
/* PREFIX s/KEY ETCD_SEP NONCE. */
char *tl__etcd_shared_live_key(const struct etcd_store *es, const char *key, const char *nonce);
/* "from W (token N), ..." of the holders i of `g` with pick[i] (all when pick is NULL). */
void tl__etcd_group_detail(const struct etcd_group *g, const bool *pick, char *buf, size_t size);
/* The store's holders op; release/finish and the renewal of a shared holder. */
tl_status tl__etcd_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                           size_t *count);
tl_status tl__etcd_finish_shared(struct tl_store *s, const struct tl_finish *f,
                                 struct tl_finish_result *out);
/* Puts the liveness key of shared holder `held` (nonce) on a lease for `timeout`, while it is
 * still a holder. */
tl_status tl__etcd_attach_shared(struct tl_store *s, const struct etcd_names *k,
                                 const struct tl_record *held, uint32_t timeout, int64_t *sent);

/* etcd_next.c, for etcd_modes.c: the events of `key` after revision `after`, and what they are. */
tl_status tl__etcd_events_after(struct tl_store *s, const char *key, int64_t after,
                                struct etcd_kv **out, size_t *n);
bool tl__etcd_event_is_grant(const struct etcd_kv *e);
/* Trims the audit trail of `key` (`count` events long) to history_max once it has half as many
 * again. */
void tl__etcd_trim_history(struct tl_store *s, const char *key, int64_t count);
bool tl__etcd_event_is_release_of(const struct etcd_kv *e, const struct tl_record *held);

/* Frees what etcd_next.c keeps in the store (at close). */
void tl__etcd_next_free(struct etcd_store *es);

/* Frees a wait_any's state (its watch is closed by the caller). NULL: no-op. */
void tl__etcd_any_free(struct etcd_any *a);

/* The ops of etcd_next.c (see store.h). */
tl_status tl__etcd_release(struct tl_store *s, const struct tl_record *held, const char *summary);
tl_status tl__etcd_claim_next(struct tl_store *s, const struct tl_claim *req,
                              const struct tl_candidates *c, struct tl_claim_result *out,
                              size_t *won, struct tl_next_tally *tally);
tl_status tl__etcd_finish(struct tl_store *s, const struct tl_finish *f,
                          struct tl_finish_result *out);
tl_status tl__etcd_reopen(struct tl_store *s, const char *key, const char *worker_id,
                          const char *node_id, bool *was_done);
tl_status tl__etcd_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                             size_t *count);
tl_status tl__etcd_wait_any(struct tl_store *s, const struct tl_candidates *c, uint32_t timeout_ms);

/* ---- etcd_convert.c: conversions and the waiters' values ---- */

/* What a waiter's value says beyond its worker, node, priority and timeout. */
struct etcd_waiter_info {
    int64_t since;
    uint64_t upgrading; /* an upgrader's: the token of the shared hold it converts (0: none) */
    char *holding;      /* allocated; "" when none (also in a value written before the graph) */
};

/* A waiter's value for `req` (its holding text kept), joined at `since`; NULL: out of memory. */
char *tl__etcd_waiter_value(const struct tl_claim *req, int64_t since, uint64_t upgrading);
/* Reads a waiter's value (a malformed one reads as empty); false: out of memory. */
bool tl__etcd_waiter_parse(const struct etcd_kv *w, struct etcd_waiter_info *out);
/*
 * Puts waiter k->waiter of `req` in line (`w` NULL: it joins, compared absent), or refreshes
 * its place (`w` its kv as read): the lease is kept alive, and the value rewritten, compared
 * unchanged, only when its holding text or upgrade changed (seq and since stay). With l_mod > 0
 * the write also compares the lock record's revision. *written false: a compare failed. An
 * unsure answer counts as written (the next claim sees).
 */
tl_status tl__etcd_line_put(struct tl_store *s, const struct etcd_names *k,
                            const struct tl_claim *req, const struct etcd_kv *w, uint64_t upgrading,
                            int64_t at, int64_t l_mod, bool *written);
/* The store's convert op. */
tl_status tl__etcd_convert(struct tl_store *s, const struct tl_record *held,
                           const struct tl_claim *req, struct tl_claim_result *out);

#endif /* TL_STORES_ETCD_INT_H */
