/*
 * tasklock.h -- the public interface of libtasklock.
 *
 * Many workers agree on which worker runs which task: a worker acquires a task's lock, the
 * library heartbeats it while the worker works, and the worker releases it. A crashed worker's
 * lock goes stale and can be stolen; every new holder gets a larger fencing token.
 *
 * Conventions used by every function below:
 * - Every fallible call returns tl_status; results come back through out-parameters, which are
 *   set to NULL (or zero) on failure.
 * - Pointer arguments are borrowed; whatever the library keeps, it copies.
 * - A returned `const char *` belongs to the handle it came from; its comment says until when.
 *   A returned `char *` or object belongs to the caller, who frees it with the matching
 *   tl_*_free() or tl_free().
 * - Threads: a manager and its locks are used by one thread at a time ("one thread per handle"),
 *   except where a function says "thread-safe". The manager's heartbeat thread is internal.
 */
#ifndef TASKLOCK_H
#define TASKLOCK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TL_API        __attribute__((visibility("default")))
#define TL_MUST_CHECK __attribute__((warn_unused_result))
#else
#define TL_API
#define TL_MUST_CHECK
#endif

#define TL_VERSION_MAJOR  0
#define TL_VERSION_MINOR  1
#define TL_VERSION_PATCH  0
#define TL_VERSION_STRING "0.1.0"
/* 0xMMmmpp: compare with >= to test for a feature. */
#define TL_VERSION_NUM ((TL_VERSION_MAJOR << 16) | (TL_VERSION_MINOR << 8) | TL_VERSION_PATCH)

/* The run-time library version, "MAJOR.MINOR.PATCH". Static text. Thread-safe. */
TL_API const char *tl_version(void);

/*
 * Result of every fallible call. Append only; never renumber.
 * TL_EBUSY and TL_ELOST are outcomes of the protocol, not faults.
 */
typedef enum tl_status {
    TL_OK = 0,
    TL_EINVAL,     /* bad argument, URL, key, duration or metadata */
    TL_ENOMEM,     /* allocation failed */
    TL_EBUSY,      /* held by another owner */
    TL_ENOTOWNER,  /* release/renew of a lock we do not hold, or no such lock */
    TL_ELOST,      /* the lock was stolen, forced or released before this call */
    TL_ETIMEDOUT,  /* the store did not answer in time */
    TL_ESTORE,     /* store failure: see tl_errmsg() */
    TL_ENOTSUP,    /* store not built in, or operation not provided by this store */
    TL_ERATELIMIT, /* the store refused for rate limiting; tl_errmsg() says until when */
    TL_ECANCELED,  /* a waiting acquire was cancelled (struct tl_acquire_opts.cancel) */
    TL_ENOTASK,    /* claim-next: no task left: every candidate is done, or there was none */
    TL_EDEADLK     /* a wait would close a cycle of waits (a deadlock): tl_errmsg() names it */
} tl_status;

/* How a lock is held (struct tl_acquire_opts.mode): by one holder alone, or beside other
 * shared holders (readers). Append only. */
typedef enum tl_mode {
    TL_EXCLUSIVE = 0, /* the only holder: waits for every other holder to leave */
    TL_SHARED         /* any number of shared holders (up to `slots`), never beside an
                         exclusive one */
} tl_mode;

/* Static text naming a status, e.g. "held by another owner". Never NULL. Thread-safe. */
TL_API const char *tl_strerror(tl_status st);

/* What tl_acquire() does when the lock is held by someone else. */
typedef enum tl_strategy {
    TL_RETRY = 0,    /* back off and try again; never take a held lock (default) */
    TL_FAIL_FAST,    /* one attempt */
    TL_STEAL_STALE,  /* retry like TL_RETRY, and take the lock if its holder is stale */
    TL_FORCE_ACQUIRE /* take the lock now, whoever holds it (administrators only) */
} tl_strategy;

/* Log levels passed to tl_log_fn. */
enum tl_log_level { TL_LOG_ERROR = 1, TL_LOG_WARN, TL_LOG_INFO, TL_LOG_DEBUG };

typedef struct tl_manager tl_manager; /* opaque: one worker's view of one store */
typedef struct tl_lock tl_lock;       /* opaque: a lock this manager acquired */

/*
 * Log sink. Called on the thread that logs, which may be the heartbeat thread; `msg` is valid
 * only during the call and never contains a credential (an access token or a password).
 */
typedef void tl_log_fn(void *ud, int level, const char *msg);

/*
 * Called once per lock, on whichever thread first learns that the lock was lost (a thread of
 * the manager's, usually): stolen, forced or released by someone else, or not renewed in time.
 * "In time" is the holder's deadline: a renewal sent at t that succeeds keeps the lock safe
 * until t + lock timeout (no other worker can take it sooner), so unless a renewal sent before
 * then succeeds, the lock is declared lost at t + lock timeout - margin, where the margin is
 * max(5 % of the lock timeout, 100 ms), at most a quarter of it: on time whatever the store
 * is doing (unreachable, hanging, slow), and also when the process resumes from a stall past
 * that instant. A renewal answered after the deadline does not revive the lock. Inside the
 * callback only the thread-safe lock functions may be used (tl_lock_key, tl_lock_token,
 * tl_lock_is_lost, tl_lock_expires_in_ms); never release or free there.
 */
typedef void tl_lost_fn(void *ud, tl_lock *lock);

/*
 * Manager options. All-zero means the defaults; append only.
 * Durations are milliseconds. Strings are copied by tl_manager_new().
 */
struct tl_options {
    const char *store_url;       /* NULL: $TASKLOCK_STORE, else the embedded SQLite default */
    const char *worker_id;       /* NULL: "USER@HOST" */
    const char *node_id;         /* NULL: the host name */
    uint32_t max_retries;        /* 0: 5 */
    uint32_t backoff_initial_ms; /* 0: 1000 */
    uint32_t backoff_max_ms;     /* 0: 16000 */
    uint32_t heartbeat_ms;       /* 0: the store's default: min(30 s, lock timeout / 3);
                                    GitHub: lock timeout / 4 */
    uint32_t lock_timeout_ms;    /* 0: 300000 (5 min) */
    int log_level;               /* 0: TL_LOG_WARN */
    tl_log_fn *log;              /* NULL: silent */
    void *log_ud;
    tl_lost_fn *on_lost; /* NULL: none (tl_lock_is_lost still reports it) */
    void *lost_ud;
    /* true: waiters do not queue; a released lock goes to whoever claims first, as before the
     * line (docs/guide.md, "Waiting in line"). For comparisons and benchmarks; not for use
     * alongside managers that queue on the same keys, whose waiters it would never pass. */
    bool no_line;
};

/*
 * Per-call acquire options. All-zero (or a NULL pointer) means the manager's defaults.
 */
struct tl_acquire_opts {
    tl_strategy strategy;     /* TL_RETRY by default */
    int32_t retries;          /* 0: the manager's max_retries, or unlimited until deadline_ms
                                 when a deadline is set; TL_NO_RETRIES: one attempt */
    uint32_t deadline_ms;     /* 0: none; else give up after this long, whatever the retries */
    uint32_t lock_timeout_ms; /* 0: the manager's lock timeout */
    const char *task_info;    /* NULL or a JSON object text recorded with the lock (<= 64 KiB) */
    /* The place in line: waiters are granted the lock by priority (higher first), then by
     * arrival. TL_PRIORITY_MIN..TL_PRIORITY_MAX; 0 by default. GitHub: 0 only (FIFO). */
    int32_t priority;
    /* NULL, or a flag (set from a signal handler, say) that makes a waiting acquire leave the
     * line and return TL_ECANCELED within about 100 ms of becoming non-zero. */
    const volatile sig_atomic_t *cancel;
    /* Shared holders and semaphores (docs/guide.md, "Shared locks and semaphores"). `mode`:
     * TL_EXCLUSIVE (default) or TL_SHARED. `slots` N > 0 makes the key a semaphore: shared,
     * and at most N holders at once (mode is then TL_SHARED whatever it says); every holder of
     * a key must ask for the same N (TL_EINVAL names both values otherwise). 0: no limit. A
     * shared acquire waits in the same line as exclusive ones: a shared acquire that arrives
     * after a queued exclusive one waits behind it. TL_FORCE_ACQUIRE is exclusive only. */
    tl_mode mode;
    uint32_t slots;
    /* NULL, or locks held on this call's behalf outside this manager, "KEY TOKEN KEY TOKEN ..."
     * (at most 2 KiB): for deadlock detection, which counts them as held by this waiter beside
     * the manager's own. `tasklock run` passes its lock to the command it runs this way
     * ($TASKLOCK_HOLDING), so that a `tasklock run` inside it knows what waits on it. */
    const char *holding;
};
#define TL_NO_RETRIES   (-1)
#define TL_SLOTS_MAX    100000
#define TL_PRIORITY_MIN (-1000)
#define TL_PRIORITY_MAX 1000
/* The place of a shared holder waiting to upgrade (tl_upgrade()): ahead of every other waiter. */
#define TL_PRIORITY_UPGRADE (TL_PRIORITY_MAX + 1)

/*
 * A lock record as the store holds it. Every string is NUL-terminated and owned by the record.
 * Times are milliseconds since the Unix epoch, by the store's clock where it has one.
 */
struct tl_info {
    char *key;
    char *worker_id;
    char *node_id;
    uint64_t token;           /* fencing token of this holder */
    int64_t claimed_at_ms;    /* when this holder acquired it */
    int64_t heartbeat_at_ms;  /* the holder's last heartbeat */
    uint32_t lock_timeout_ms; /* the timeout the holder recorded */
    char *task_info;          /* JSON object text; "{}" when none */
    int64_t observed_at_ms;   /* the store's clock when this record was read; 0: unknown */
    bool stale;               /* last heartbeat older than lock_timeout_ms at observed_at_ms */
    uint32_t waiting;         /* live waiters in the key's line (tl_inspect, tl_list); 0 when
                                 none or the store cannot tell */
    tl_mode mode;             /* how this holder holds the key */
    uint32_t slots;           /* shared: the semaphore's slots; 0: no limit */
    uint32_t holders;         /* tl_inspect: how many hold the key now (stale ones included);
                                 1 for an exclusive holder; 0 when the store cannot tell */
};

/*
 * A waiter in a key's line (tl_waiters()): an acquire call that is waiting for the lock. Strings
 * are NUL-terminated and owned by the record. Times are the store's, ms since the Unix epoch.
 */
struct tl_waiter {
    char *key;
    char *waiter_id; /* unique per acquire call */
    char *worker_id;
    char *node_id;
    int32_t priority;
    uint64_t seq;            /* arrival order in the line, assigned by the store */
    int64_t since_ms;        /* when it joined the line */
    int64_t heartbeat_at_ms; /* its last sign of life */
    uint32_t timeout_ms;     /* dead when silent for this long */
    bool dead;               /* silent past timeout_ms: skipped, and removed by whoever finds it */
    /* Its mode and the locks its manager held when it last claimed, "MODE KEY TOKEN ..." (MODE
     * "s" shared or "x" exclusive): the edges of the wait-for graph (deadlock detection). NULL
     * or "" when it held none or the store does not keep them. */
    char *holding;
};

/* Audit-trail event kinds, as recorded by stores that keep history. */
typedef enum tl_event_kind {
    TL_EVENT_ACQUIRED = 1,
    TL_EVENT_RELEASED,
    TL_EVENT_STOLEN,    /* acquired by taking a stale lock */
    TL_EVENT_FORCED,    /* acquired by forcing a live lock */
    TL_EVENT_LOST,      /* the former holder learned that its lock was gone */
    TL_EVENT_DONE,      /* released as finished: the key got a done marker (tl_release_with) */
    TL_EVENT_REOPENED,  /* the done marker was cleared (tl_reopen) */
    TL_EVENT_UPGRADED,  /* a shared holder became the exclusive one (tl_upgrade), new token */
    TL_EVENT_DOWNGRADED /* an exclusive holder became a shared one (tl_downgrade), new token */
} tl_event_kind;

struct tl_event {
    int64_t at_ms;
    tl_event_kind kind;
    char *key;
    char *worker_id;
    char *node_id;
    uint64_t token;
    char *detail; /* NULL, or e.g. the release summary or whom a steal displaced */
};

/* Counters of one manager since it was created. Read with tl_metrics_get(). */
struct tl_metrics {
    uint64_t total_acquisitions;   /* successful acquires */
    uint64_t total_releases;       /* successful releases */
    uint64_t total_conflicts;      /* attempts that found the lock held */
    uint64_t total_retries;        /* attempts after the first */
    uint64_t failed_acquisitions;  /* acquires that returned TL_EBUSY or a store error (not
                                      TL_EINVAL: argument errors are not counted) */
    uint64_t stale_locks_claimed;  /* acquires that took a stale lock */
    uint64_t forced_acquisitions;  /* acquires that took a live lock by force */
    uint64_t locks_lost;           /* locks found lost (heartbeat or renew) */
    uint64_t heartbeats_sent;      /* successful renewals */
    uint64_t heartbeats_failed;    /* renewals that failed with a store error */
    uint64_t locks_held;           /* held now */
    double average_acquisition_ms; /* mean wall time of successful acquires, waits included */
    double p50_acquisition_ms;     /* over the last 1024 successful acquires */
    double p99_acquisition_ms;
    uint64_t wakeups;    /* times a waiter in line was woken by the store to claim (hand-overs) */
    uint64_t queued;     /* acquires that joined a line */
    uint64_t tasks_done; /* releases that marked their task done */
};

/*
 * Creates a manager. Does no I/O: options are checked, and the store opened, by tl_connect()
 * (or the first call that needs the store). `opts` may be NULL for all defaults.
 * Returns NULL only when out of memory. Free with tl_manager_free().
 */
TL_API tl_manager *tl_manager_new(const struct tl_options *opts) TL_MUST_CHECK;

/*
 * Stops the heartbeat thread, closes the store connections and frees the manager together with
 * every lock handle it still has. Locks still held are NOT released: they go stale after their
 * lock timeout (call tl_release() first). NULL is a no-op. Not to be called from a callback.
 */
TL_API void tl_manager_free(tl_manager *m);

/*
 * Checks the options and opens the store. Errors: TL_EINVAL (bad option or URL),
 * TL_ENOTSUP (scheme not built in), TL_ESTORE/TL_ETIMEDOUT (cannot reach or open the store).
 * Calling it again after success is a no-op. Every other call connects on demand.
 */
TL_API tl_status tl_connect(tl_manager *m);

/*
 * The message of the last failed call on `m` (or on one of its locks): what failed and why.
 * Owned by m; valid until the next call on m. Never NULL ("" after success).
 */
TL_API const char *tl_errmsg(const tl_manager *m);

/* This manager's worker id and node id after defaults applied. Owned by m; valid until freed. */
TL_API const char *tl_manager_worker_id(const tl_manager *m);
TL_API const char *tl_manager_node_id(const tl_manager *m);

/*
 * The store URL this manager uses: as given (or $TASKLOCK_STORE, else "sqlite:") before it is
 * connected; once connected, with what the environment decided written out, so that the URL
 * names the same store from another process, working directory or HOME: "sqlite:" becomes the
 * absolute path of the default file ("sqlite:/home/u/.local/state/tasklock/locks.db"), and a
 * relative SQLite path an absolute one. It keeps any password the URL carries: pass it on, do
 * not show it. Owned by m; valid until the next call on m. One thread per handle.
 */
TL_API const char *tl_manager_store_url(const tl_manager *m);

/*
 * Acquires the lock of `key` under the strategy in `opts` (NULL: defaults). On success `*out`
 * is a new lock handle, heartbeated by the manager until released or freed.
 * Errors: TL_EBUSY (held; tl_errmsg() names the holder and tl_last_holder() returns its record),
 * TL_EINVAL (bad key or task_info), store errors. Never takes a live lock unless the strategy is
 * TL_FORCE_ACQUIRE, and never a stale one unless it is TL_STEAL_STALE or TL_FORCE_ACQUIRE.
 */
TL_API tl_status tl_acquire(tl_manager *m, const char *key, const struct tl_acquire_opts *opts,
                            tl_lock **out) TL_MUST_CHECK;

/*
 * The holder's record seen by the last tl_acquire() on `m` that returned TL_EBUSY, or NULL if it
 * was not known. Owned by m; valid until the next call on m.
 */
TL_API const struct tl_info *tl_last_holder(const tl_manager *m);

/*
 * Releases the lock: checks ownership (worker id and token), stops heartbeating it, and deletes
 * the record; `summary` (may be NULL) goes into the audit trail. Safe to retry: releasing a lock
 * already released by this handle returns TL_OK. Errors: TL_ENOTOWNER (no longer ours: stolen or
 * forced; the handle is then marked lost), store errors (the lock is still held and heartbeated;
 * retry). The handle stays valid until tl_lock_free().
 * A lock declared lost because it was not renewed in time may still be ours in the store (the
 * store was unreachable, and no one took it): release it once the store answers again, so that
 * it does not look held for another lock timeout. tl_release() then returns TL_OK, or
 * TL_ENOTOWNER when someone took it meanwhile.
 */
TL_API tl_status tl_release(tl_lock *lock, const char *summary);

/* Options of tl_release_with(). All-zero (or a NULL pointer) means tl_release(lock, NULL).
 * Append only. */
struct tl_release_opts {
    const char *summary;  /* NULL or text for the audit trail */
    uint32_t deadline_ms; /* 0: the store's own time limits; else give up after this long */
    /* true: the task is finished. The key keeps a done marker (worker, time, token, summary)
     * that tl_claim_next() skips until tl_reopen(); the marker is in the store before the lock
     * is free. Plain tl_acquire() ignores markers. GitHub: closes the issue. */
    bool done;
};

/* tl_release() with options: a summary, and a time limit after which a store that does not
 * answer makes it fail (TL_ETIMEDOUT or TL_ESTORE; the lock is then as before the call). */
TL_API tl_status tl_release_with(tl_lock *lock, const struct tl_release_opts *opts);

/* tl_release_token() with options (a summary, done, a time limit). */
TL_API tl_status tl_release_token_with(tl_manager *m, const char *key, uint64_t token,
                                       const struct tl_release_opts *opts);

/* Whether the lock was released through this handle (tl_release*, tl_release_claim_next).
 * Thread-safe. */
TL_API bool tl_lock_is_released(const tl_lock *lock);

/*
 * Claims the next task: of `keys` in order (order = priority), atomically claims the first one
 * that is free -- not held (a stale one only with TL_STEAL_STALE), nobody in its line, not done
 * -- in one round trip where the store allows, and returns its lock as tl_acquire() does
 * (tl_lock_key() says which). `opts` as for tl_acquire(): with TL_RETRY or TL_STEAL_STALE it
 * waits (the retries, deadline_ms, cancel) for any candidate to come free, woken by the store
 * where it can; TL_FAIL_FAST makes one attempt; TL_FORCE_ACQUIRE and a priority are refused
 * (TL_EINVAL). Errors: TL_EBUSY (every candidate not done is held or queued; tl_errmsg() counts
 * them), TL_ENOTASK (every candidate is done, or nkeys is 0), TL_EINVAL (a bad or repeated key),
 * TL_ENOTSUP (a store without claim-next), TL_ECANCELED, store errors.
 */
TL_API tl_status tl_claim_next(tl_manager *m, const char *const *keys, size_t nkeys,
                               const struct tl_acquire_opts *opts, tl_lock **out) TL_MUST_CHECK;

/*
 * tl_claim_next() over the store's own listing of tasks: on GitHub, the open issues with
 * `label`, ranked by priority label, then age (docs/github.md). Other stores: TL_ENOTSUP.
 */
TL_API tl_status tl_claim_next_label(tl_manager *m, const char *label,
                                     const struct tl_acquire_opts *opts,
                                     tl_lock **out) TL_MUST_CHECK;

/*
 * Releases `lock` (with `summary`; done if `done`) and claims the next of `keys` as
 * tl_claim_next() would, in one round trip where the store allows (SQLite, Redis, PostgreSQL,
 * etcd, memory). If the release fails, its error is returned, *next is NULL and the lock is as
 * before (tl_lock_is_released() false). Otherwise the lock is released and the claim's status is
 * returned: TL_OK with *next the new lock, or the errors of tl_claim_next().
 */
TL_API tl_status tl_release_claim_next(tl_lock *lock, const char *summary, bool done,
                                       const char *const *keys, size_t nkeys,
                                       const struct tl_acquire_opts *opts,
                                       tl_lock **next) TL_MUST_CHECK;

/* A finished task's done marker (tl_list_done()). Strings owned by the record. */
struct tl_done {
    char *key;
    char *worker_id; /* who finished it */
    char *node_id;
    uint64_t token;     /* the token it held when it finished */
    int64_t done_at_ms; /* store clock, ms since the Unix epoch */
    char *summary;      /* "" when none */
};

/*
 * Clears the done marker of `key`, so that tl_claim_next() offers it again (GitHub: reopens
 * the issue), and records a `reopened` event. TL_OK also when it was not done; `*was_done`
 * (may be NULL) says whether it was. Errors: TL_EINVAL (bad key), TL_ENOTSUP, store errors.
 */
TL_API tl_status tl_reopen(tl_manager *m, const char *key, bool *was_done);

/*
 * The done markers of `key`, or of every key when `key` is NULL, ordered by key: an array of
 * `*count` records the caller frees with tl_done_array_free(). Errors: TL_ENOTSUP, store errors.
 */
TL_API tl_status tl_list_done(tl_manager *m, const char *key, struct tl_done ***out, size_t *count);
TL_API void tl_done_array_free(struct tl_done **done, size_t count); /* NULL: no-op */

/*
 * Renews the lock now, on the calling thread. Errors: TL_ELOST (no longer ours; the handle is
 * marked lost and the lost callback fires), TL_ENOTOWNER (already released), store errors.
 */
TL_API tl_status tl_renew(tl_lock *lock);

/*
 * Releases the lock of `key` that this manager's worker id holds with fencing token `token`,
 * without a handle: for a lock acquired by another process of the same worker (the CLI's
 * `tasklock acquire`, then `tasklock release`). `summary` (may be NULL) goes into the audit
 * trail. Returns TL_OK also when that token already released it. Errors: TL_ENOTOWNER (the key
 * is free with a later token, never held, or held by another worker or token), TL_EINVAL (bad
 * key), store errors. A lock this manager still heartbeats through a handle is released with
 * tl_release() instead. One thread per handle.
 */
TL_API tl_status tl_release_token(tl_manager *m, const char *key, uint64_t token,
                                  const char *summary);

/*
 * Renews the lock of `key` that this manager's worker id holds with `token`, without a handle
 * (see tl_release_token()): records a heartbeat now. Errors: TL_ELOST (no longer ours: stolen,
 * forced, released, or never ours), TL_EINVAL (bad key), store errors. One thread per handle.
 */
TL_API tl_status tl_renew_token(tl_manager *m, const char *key, uint64_t token);

/*
 * Changes the lock's recorded lock timeout to `lock_timeout_ms` (longer or shorter, at most 24
 * days and longer than the heartbeat interval), atomically with a renewal: from now on the lock
 * goes stale `lock_timeout_ms` after its last heartbeat, the heartbeat interval follows the new
 * timeout, and so does the loss deadline (tl_lost_fn). Errors: TL_ELOST (no longer ours, as for
 * tl_renew()), TL_ENOTOWNER (released), TL_EINVAL (bad timeout), store errors (the recorded
 * timeout is then unchanged or changed; the lock is still heartbeated with the old one).
 */
TL_API tl_status tl_extend(tl_lock *lock, uint32_t lock_timeout_ms);

/*
 * Upgrades a shared lock (TL_SHARED, or a semaphore's slot) to the exclusive one, keeping the
 * handle: at once when this is the key's only holder, else it waits at the head of the key's
 * line, ahead of every other waiter, holding its shared lock meanwhile (heartbeated as usual),
 * until the other holders have left. The lock then has a new token, larger than every earlier
 * holder's (tl_lock_token() says it), and the audit trail an `upgraded` event. `opts` (NULL: the
 * manager's defaults) as for tl_acquire(): the strategy (TL_FAIL_FAST: one attempt;
 * TL_STEAL_STALE: stale co-holders do not count, and are displaced), retries, deadline_ms,
 * cancel; a priority, a mode, slots and TL_FORCE_ACQUIRE are refused (TL_EINVAL).
 * Errors: TL_EBUSY (other holders stayed), TL_EDEADLK (the wait closed a cycle: two holders that
 * both upgrade are the simplest one; tl_errmsg() names it -- release the lock and start over),
 * TL_ECANCELED; with each of those the lock is still held shared, as before the call.
 * TL_EINVAL (not a shared lock), TL_ELOST, TL_ENOTOWNER (released), TL_ENOTSUP, store errors.
 */
TL_API tl_status tl_upgrade(tl_lock *lock, const struct tl_acquire_opts *opts);

/*
 * Downgrades an exclusive lock to a shared one (no slot limit), keeping the handle: immediate,
 * with a new token and a `downgraded` event; shared waiters at the head of the line may then
 * enter beside it. Errors: TL_EINVAL (not an exclusive lock), TL_ELOST, TL_ENOTOWNER (released),
 * TL_ENOTSUP, store errors (the lock is then as before).
 */
TL_API tl_status tl_downgrade(tl_lock *lock);

/*
 * tl_upgrade() and tl_downgrade() of the lock of `key` that this manager's worker id holds with
 * `token`, without a handle (a lock taken by `tasklock acquire`, converted by `tasklock upgrade`
 * from another process). On success *new_token (may be NULL) is the lock's new token. While such
 * an upgrade waits, nothing heartbeats the shared lock: renew it from elsewhere if the wait may
 * outlast its lock timeout. Errors as for those, TL_ELOST when no such lock of ours is held.
 */
TL_API tl_status tl_upgrade_token(tl_manager *m, const char *key, uint64_t token,
                                  const struct tl_acquire_opts *opts, uint64_t *new_token);
TL_API tl_status tl_downgrade_token(tl_manager *m, const char *key, uint64_t token,
                                    uint64_t *new_token);

/* tl_extend() without a handle, for the lock of `key` this manager's worker id holds with
 * `token` (see tl_renew_token()). One thread per handle. */
TL_API tl_status tl_extend_token(tl_manager *m, const char *key, uint64_t token,
                                 uint32_t lock_timeout_ms);

/*
 * Breaks the lock of `key`, whoever holds it: for an administrator clearing a lock whose holder
 * is gone or hung, in one step. `token` 0 breaks it whoever holds it; another value only if the
 * lock still has that token (so that a lock that changed hands meanwhile is left alone). The
 * store frees the key as a TL_FORCE_ACQUIRE by this manager's worker id followed at once by its
 * release would, atomically where the store allows: with a new token of its own, it records a
 * `forced` event ("from HOLDER (token N)") and a `released` event (`summary`, or "forced
 * release" when NULL) of this worker id. The former holder finds its lock lost at its next
 * renewal, and its release is refused (TL_ENOTOWNER). On success `*former` (if `former` is not
 * NULL) is the record of the holder it displaced, which the caller frees with tl_info_free(), or
 * NULL when the key was free: nothing to do, TL_OK (so a retry after success is not an error).
 * Errors: TL_ENOTOWNER (held with another token; tl_errmsg() names the holder), TL_EINVAL (bad
 * key), TL_ENOTSUP (a store without it), store errors. One thread per handle.
 */
TL_API tl_status tl_release_force(tl_manager *m, const char *key, uint64_t token,
                                  const char *summary, struct tl_info **former);

/*
 * Frees a lock handle. A lock still held is not released; the manager stops heartbeating it and
 * it goes stale after its lock timeout. NULL is a no-op.
 */
TL_API void tl_lock_free(tl_lock *lock);

/* The lock's key. Owned by the lock; valid until tl_lock_free(). Thread-safe. */
TL_API const char *tl_lock_key(const tl_lock *lock);

/* The lock's fencing token. Thread-safe. */
TL_API uint64_t tl_lock_token(const tl_lock *lock);

/* How the lock is held: TL_EXCLUSIVE, or TL_SHARED (also for a semaphore's slot). Thread-safe. */
TL_API tl_mode tl_lock_mode(const tl_lock *lock);

/* Whether the lock is lost: known to be taken, or past its loss deadline (see tl_lost_fn)
 * without a renewal. Once true, stays true. Thread-safe. */
TL_API bool tl_lock_is_lost(const tl_lock *lock);

/*
 * Milliseconds until another worker may take this lock unless a renewal succeeds first: the
 * send time of the last successful renewal (or of the claim) plus the lock timeout, less now,
 * by the monotonic clock. The manager declares the lock lost a margin before that (see
 * tl_lost_fn). 0 when that time has passed, or the lock was released or found taken.
 * Thread-safe.
 */
TL_API int64_t tl_lock_expires_in_ms(const tl_lock *lock);

/*
 * The lock's metadata as JSON in the shape
 * {"lock":{"worker_id","node_id","claimed_at","heartbeat_last","task_info":{},"token",
 *          "lock_timeout_ms"}} (times ISO-8601 UTC). The caller frees it with tl_free().
 * NULL when out of memory. Thread-safe.
 */
TL_API char *tl_lock_metadata(const tl_lock *lock);

/*
 * Reads the record of `key`. `*out` is NULL when the key is free, else a record the caller frees
 * with tl_info_free(): for a key held shared, the holder a newcomer waits for first (the
 * exclusive one, else the oldest), with `holders` counting them all (tl_holders() lists them).
 * Errors: TL_EINVAL (bad key), store errors.
 */
TL_API tl_status tl_inspect(tl_manager *m, const char *key, struct tl_info **out);

/*
 * Every holder of `key` (several when it is held shared), oldest grant (lowest token) first,
 * stale ones included and marked. `*out` is an array of `*count` records the caller frees with
 * tl_info_array_free(); empty when the key is free. Errors: TL_EINVAL (bad key), store errors.
 */
TL_API tl_status tl_holders(tl_manager *m, const char *key, struct tl_info ***out, size_t *count);

/*
 * The line of `key`: its waiters in the order they will be granted the lock (priority, then
 * arrival), dead ones included and marked. `*out` is an array of `*count` records the caller
 * frees with tl_waiter_array_free(); empty when no one waits. Errors: TL_EINVAL (bad key),
 * TL_ENOTSUP (a store without a line), store errors.
 */
TL_API tl_status tl_waiters(tl_manager *m, const char *key, struct tl_waiter ***out, size_t *count);
TL_API void tl_waiter_array_free(struct tl_waiter **waiters, size_t count); /* NULL: no-op */

/*
 * Every held lock in the store, ordered by key (a key held shared: one record per holder, by
 * token). `*out` is an array of `*count` records the caller
 * frees with tl_info_array_free(). Errors: TL_ENOTSUP if the store cannot enumerate, store errors.
 */
TL_API tl_status tl_list(tl_manager *m, struct tl_info ***out, size_t *count);

/*
 * The audit trail, oldest first: the last `limit` events (0: 100) of `key`, or of every key when
 * `key` is NULL. Frees with tl_event_array_free(). Errors: TL_ENOTSUP if the store keeps none.
 */
TL_API tl_status tl_history(tl_manager *m, const char *key, size_t limit, struct tl_event ***out,
                            size_t *count);

/*
 * Copies the manager's metrics into `*out`; `size` is sizeof(struct tl_metrics) as the caller was
 * compiled, so that newer libraries fill only what older callers know. Thread-safe.
 */
TL_API void tl_metrics_get(const tl_manager *m, struct tl_metrics *out, size_t size);

/* Renders a record as the metadata JSON of tl_lock_metadata(). Free with tl_free(). */
TL_API char *tl_info_to_json(const struct tl_info *info);

TL_API void tl_info_free(struct tl_info *info);                       /* NULL is a no-op */
TL_API void tl_info_array_free(struct tl_info **infos, size_t count); /* NULL is a no-op */
TL_API void tl_event_array_free(struct tl_event **events, size_t count);
TL_API const char *tl_event_kind_name(tl_event_kind kind); /* "acquired", ...; static text */
TL_API void tl_free(void *p); /* frees a char * returned by the library; NULL is a no-op */

/*
 * Parses a duration: a number with a unit, "250ms", "30s", "1.5s", "5m", "1h", or a bare number
 * of seconds, more than zero and at most 24 days. Errors: TL_EINVAL for anything else (zero,
 * longer than 24 days, junk); *out_ms is then 0.
 * Thread-safe.
 */
TL_API tl_status tl_parse_duration(const char *text, uint32_t *out_ms);

/*
 * Checks a key: 1 to 255 bytes of valid UTF-8 with no control characters, no white space and no
 * invisible formatting characters (zero-width and bidirectional controls).
 * Stores may restrict keys further (GitHub: an issue number). Thread-safe.
 */
TL_API bool tl_key_is_valid(const char *key);

#ifdef __cplusplus
}
#endif
#endif /* TASKLOCK_H */
