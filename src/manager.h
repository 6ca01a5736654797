/*
 * manager.h -- the lock manager's internals, shared by manager.c, heartbeat.c and tests.
 */
#ifndef TL_MANAGER_H
#define TL_MANAGER_H

#include <pthread.h>

#include "store.h"
#include "tl.h"

#define TL_LATENCY_WINDOW 1024

enum tl_lock_state { TL_HELD = 0, TL_RELEASING, TL_RELEASED, TL_LOST };

struct tl_lock {
    tl_manager *m;
    struct tl_record rec; /* as claimed; immutable while held */
    uint32_t interval_ms; /* heartbeat interval of this lock */
    /* The fields below are guarded by m->mu. */
    enum tl_lock_state state;
    int refs;                 /* the user's handle + heartbeat rounds in flight */
    bool in_list;             /* linked in m->held */
    bool lost_notified;       /* the lost callback has fired */
    bool expired;             /* lost by its deadline, not because the store said so */
    bool renewing;            /* the heartbeat thread is renewing it (tl_extend waits) */
    bool extending;           /* tl_extend is changing it (the heartbeat skips it) */
    int64_t heartbeat_at_ms;  /* last successful heartbeat, store clock */
    uint64_t renewals;        /* renewals sent (the seq passed to the store) */
    int64_t last_ok_mono_ms;  /* when the last successful renew (or the claim) was sent */
    int64_t lose_at_mono_ms;  /* the loss deadline: last_ok + lock timeout - safety margin */
    int64_t next_due_mono_ms; /* when the heartbeat renews it next */
    struct tl_lock *prev, *next;
};

struct tl_manager {
    /* Options after defaults; strings owned. Immutable after tl_manager_new(). */
    char *store_url;
    char *worker_id;
    char *node_id;
    uint32_t max_retries;
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    uint32_t heartbeat_ms; /* 0: per store and lock timeout */
    uint32_t lock_timeout_ms;
    tl_lost_fn *on_lost;
    void *lost_ud;
    struct tl_logger log;
    struct tl_clock clock;
    const struct tl_store_ops *store_ops; /* NULL: by the URL's scheme (tests set a fake) */
    uint64_t rng;                         /* jitter state, used by the calling thread only */
    bool no_line;                         /* struct tl_options.no_line */

    /* The calling thread's store and message slot. */
    struct tl_store *store;
    char errmsg[TL_ERRMSG_SIZE];
    struct tl_record *last_holder;
    /* claim.c: the last long list of candidates and what is known done of it. */
    struct tl_next_memo *next_memo;

    /* Shared with the heartbeat thread: guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t renewed; /* a lock's renewing went false */
    struct tl_lock *held;   /* locks being heartbeated */
    size_t held_count;
    bool hb_running;
    bool hb_stop;
    /* When the sleeping heartbeat thread will wake on its own (manager's monotonic clock);
     * INT64_MIN while it is awake. An acquire wakes it only for a lock due before this. */
    int64_t hb_wait_until;
    pthread_t hb_thread;
    struct tl_store *hb_store; /* owned by the heartbeat thread */
    /* The loss watch (heartbeat.c): a thread that does no I/O and declares each held lock lost
     * at its loss deadline, whatever the heartbeat thread's store call is doing. */
    pthread_cond_t lw_wake;
    pthread_t lw_thread;
    bool lw_running;
    bool lw_failed;        /* it could not be started (logged once) */
    int64_t lw_wait_until; /* like hb_wait_until, for the loss watch */
    struct tl_metrics metrics;
    double acq_total_ms;
    double latency[TL_LATENCY_WINDOW];
    size_t latency_count;
    size_t latency_next;
};

void tl__next_memo_free(struct tl_next_memo *mm);

/* Test hooks: replace the manager's clocks, or the store implementation its URL would pick
 * (call before any other use of m). */
void tl__manager_set_clock(tl_manager *m, const struct tl_clock *clock);
void tl__manager_set_store_ops(tl_manager *m, const struct tl_store_ops *ops);

/* Runs one heartbeat round on `store` (a connection the calling thread owns; NULL counts as a
 * failed renew), renewing every held lock that is due at `mono_now` (or every one if `all`),
 * and returns how many it tried. The heartbeat thread runs it on its own connection; tests run
 * it directly instead of waiting for the thread. */
size_t tl__heartbeat_round(tl_manager *m, struct tl_store *store, int64_t mono_now, bool all);

/*
 * Runs one sweep of the loss watch at `mono_now`: every held lock whose loss deadline has come
 * is marked lost and its callback fired. Returns how many. The loss-watch thread runs it; tests
 * run it directly.
 */
size_t tl__loss_sweep(tl_manager *m, int64_t mono_now);

/* The safety margin before a lock's expiry at which it is declared lost (docs/guide.md):
 * max(5 % of the lock timeout, 100 ms), but at most a quarter of the lock timeout. */
uint32_t tl__loss_margin(uint32_t timeout_ms);

/* heartbeat.c */
/* Starts the heartbeat thread if it is not running, or wakes it (or the loss watch) if a new lock
 * is due at `due`, or must be declared lost at `lose_at` (monotonic), before it would look again
 * on its own. */
tl_status tl__heartbeat_start(tl_manager *m, int64_t due, int64_t lose_at);
void tl__heartbeat_stop(tl_manager *m); /* stops and joins both; closes the heartbeat's store */
/* Starts the loss watch if it is not running (before store I/O that may hang: a renewal). */
void tl__loss_watch_ensure(tl_manager *m);

/* manager.c, for heartbeat.c: marks a lock lost (under m->mu) and reports whether the caller
 * must fire the lost callback (outside the mutex). */
bool tl__lock_mark_lost_locked(tl_lock *l);
/* Records a successful renew sent at `sent` (monotonic): moves the loss deadline. Under m->mu. */
void tl__lock_renewed_locked(tl_lock *l, int64_t sent);
/* Schedules the next renew of a lock renewed at `sent` (after tl__lock_renewed_locked), as of
 * `now`: an interval after `sent`; but when that is not after `now` (the store relied on an
 * earlier write of its own, a session or a lease, older than the interval), an interval after
 * `now`, or half the time left before the loss deadline if that is sooner. Under m->mu. */
void tl__lock_schedule_locked(tl_lock *l, int64_t sent, int64_t now);
void tl__lock_unref(tl_lock *l);
void tl__lock_fire_lost(tl_lock *l);
uint32_t tl__lock_interval(const tl_manager *m, const struct tl_store *s, uint32_t timeout_ms);

/* manager.c, for claim.c: the pieces of an acquire that claim-next shares. */
struct acquire_plan {
    enum tl_claim_mode mode;
    uint32_t retries;
    bool unlimited;
    int64_t deadline; /* monotonic ms; 0: none */
    bool line;        /* waits in the key's line (a store with one, and patience to wait) */
    int64_t line_end; /* monotonic ms: when a waiter's patience runs out */
};
void tl__begin(tl_manager *m);                       /* clears the message slot */
tl_status tl__mgr_fail(tl_manager *m, tl_status st); /* the store's message as the call's */
tl_status tl__ensure_connected(tl_manager *m);
tl_status tl__check_key(tl_manager *m, const char *key);
uint32_t tl__backoff_delay(tl_manager *m, uint32_t attempt);
void tl__wait_before_retry(tl_manager *m, const char *key, uint32_t ms);
tl_status tl__plan_acquire(tl_manager *m, const struct tl_acquire_opts *o, uint32_t timeout,
                           struct acquire_plan *p);
uint32_t tl__next_random(tl_manager *m); /* jitter; the calling thread only */
/* line.c: a waiter's timeout for a lock timeout; a waiter id (32 hex digits). */
uint32_t tl__waiter_timeout(const tl_manager *m, const struct tl_store *s, uint32_t timeout);
void tl__make_waiter_id(tl_manager *m, char out[33]);
/* One attempt of a claim loop: a claim, or a conversion (tl_upgrade). */
typedef tl_status tl_attempt_fn(tl_manager *m, void *ctx, struct tl_claim *req,
                                struct tl_claim_result *res);
struct tl_loop {
    struct tl_claim *req; /* with waiter_id set when plan->line */
    const char *extra;    /* NULL, or checked "KEY TOKEN ..." held on the call's behalf */
    const struct acquire_plan *plan;
    const volatile sig_atomic_t *cancel;
    tl_attempt_fn *attempt;
    void *ctx;
    /* Out: the winning attempt's result, when it was sent, whether it waited in line. */
    struct tl_claim_result res;
    int64_t sent;
    bool queued;
};
/* Attempts until one answers other than TL_EBUSY, waiting in line (plan->line) or backing off
 * between attempts, and checking the wait-for graph while it waits holding locks. TL_OK: won,
 * lp->res is the result. Else the call's message is set (busy: the holder named, and
 * m->last_holder), the line left, lp->res cleared. */
tl_status tl__claim_loop(tl_manager *m, struct tl_loop *lp);
/* deadlock.c: whether the wait of `req` (a waiter in line, holding locks) closes a cycle of
 * which it is the youngest waiter: TL_EDEADLK with the call's message naming the cycle; TL_OK
 * otherwise (also when the store cannot tell: nothing is detected then). */
tl_status tl__deadlock_check(tl_manager *m, const struct tl_claim *req);
/* The record of `key`'s holder with `token`, if it is this manager's worker's (*ours); else
 * *ours false and *mine cleared. Errors: store errors (the call's message set). */
tl_status tl__token_record(tl_manager *m, const char *key, uint64_t token, struct tl_record *mine,
                           bool *ours);
/* Checks tl_acquire_opts.holding: NULL or pairs of a valid key and a token, at most 2 KiB. */
tl_status tl__check_holding(tl_manager *m, const char *holding);
/* Checks the acquire's mode and slots against the store (connected): *shared when the claim is
 * shared (TL_SHARED, or slots > 0). */
tl_status tl__plan_mode(tl_manager *m, const struct tl_acquire_opts *o, bool *shared);
bool tl__cancelled(const volatile sig_atomic_t *cancel);
/* The sum of the backoff schedule `retries` retries would sleep (without jitter): how long a
 * waiter that is woken instead of sleeping waits in all. */
int64_t tl__patience_ms(const tl_manager *m, uint32_t retries);
/* Whether the audit trail shows that `r` was released (or finished) by its holder. */
bool tl__released_by(tl_manager *m, const struct tl_record *r);
/*
 * Makes `l` (allocated, zeroed) the handle of the lock that `res` won (its record is moved into
 * the handle) for a claim sent at `sent` (monotonic) with `timeout`, begun at `start`: checks
 * that it is not past its loss deadline already, links it, counts it and starts its heartbeat.
 * On failure the lock is given back to the store and `l` freed. *out is the handle on TL_OK.
 */
tl_status tl__lock_adopt(tl_manager *m, tl_lock *l, struct tl_claim_result *res, int64_t sent,
                         uint32_t timeout, int64_t start, tl_lock **out);
/* A release in two halves around the store's call: the first marks `l` releasing (the
 * heartbeat leaves it alone) and says whether it was still to release (*before its state); the
 * second takes the store's status (TL_ENOTOWNER checked against the audit trail), marks the
 * lock released, lost or as before, fires the lost callback and returns the call's status. */
bool tl__lock_begin_release(tl_lock *l, enum tl_lock_state *before);
tl_status tl__lock_end_release(tl_lock *l, enum tl_lock_state before, tl_status st, bool done);

#endif /* TL_MANAGER_H */
