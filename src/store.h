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
 *   TL_ELOST if the record is no longer ours (stolen, forced or released). A store whose locks
 *   hang on a shared lease may rely on a keep-alive sent shortly before the call, and then says
 *   when it was sent (struct tl_store.beat_sent_mono_ms).
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
 *
 * The line (version 3; DESIGN.md section 7). A key has a line of waiters, each a record
 * {waiter id, worker id, node id, priority, seq, since, heartbeat, timeout} kept by the store:
 * - Order: priority (higher first), then seq, a number the store assigns when the waiter joins
 *   (increasing per key, or across the store). A waiter is *live* while its last heartbeat is
 *   younger than its timeout by the store's clock, else *dead*: dead waiters are skipped, and
 *   whoever finds one may delete it (it never held anything, so nothing needs stealing). A store
 *   may also delete them by itself (etcd: a waiter's key hangs on a lease that expires); the
 *   conformance suite then counts a vanished waiter as dead.
 * - "Ahead of" a claim: the live waiters before its waiter in that order. For a claim whose
 *   waiter is not in line yet, the live waiters of its priority or higher; for a claim without
 *   a waiter id, every live waiter.
 * - claim: TL_CLAIM_NORMAL wins iff the key is free and no live waiter is ahead of it;
 *   TL_CLAIM_STEAL iff the key is free or its holder stale, and no live waiter is ahead;
 *   TL_CLAIM_FORCE always, whatever the line. A win by a waiter removes its waiter record in
 *   the same atomic step. A claim with a waiter id that does not win puts that waiter in line
 *   (with a new seq, if it is not there: also after it was deleted as dead) or refreshes its
 *   heartbeat (same seq), and answers TL_EBUSY with `waiting` and `ahead`. Every TL_EBUSY says
 *   `waiting` (live waiters, the caller's included); a busy claim of a free key (the line is
 *   ahead) has holder_known false.
 * - Wake-ups: a call that leaves the key free with a live head waiter that may not know it
 *   (release, force_release, a leave by the head, the removal of a dead head, a win that left
 *   the key's head behind... in short: after any write that frees the key or changes the head of
 *   a free key) wakes that head, and only it, where the store can send messages (Redis,
 *   PostgreSQL, memory). wait_turn returns at such a wake-up; a wake-up sent before the waiter
 *   waits is not lost (it ends the next wait_turn at once), and one left over when the waiter
 *   wins or leaves is dropped. Stores without messages (SQLite, GitHub) poll in wait_turn for
 *   "free and I am the head", cheaply, and report that as a wake-up.
 * - leave: deletes the waiter (TL_OK if it is not there).
 * - extend: a renew that also records a new lock timeout, atomically.
 * - inspect and list fill info.waiting with the number of live waiters of the key.
 *
 * Claim-next and finished tasks (version 4; DESIGN.md section 8):
 * - A key may carry a *done marker* {worker id, node id, token, time, summary}: the task was
 *   finished. It is independent of the lock: a plain claim ignores it (a lock is a lock), a
 *   release leaves it, and only reopen (or a later done release, which replaces it) changes it.
 * - claim_next: of the candidates in order, claims the first one that is not done and that a
 *   claim in req->mode without a waiter id would win (free, or stale with TL_CLAIM_STEAL, and
 *   no live waiter in its line), atomically over all of them: of concurrent claim-nexts over
 *   overlapping candidates, each key is won by at most one. One round trip where the store
 *   allows. It takes tokens, writes events and wakes nobody exactly as that claim would.
 * - finish with `done`: the done marker is written in the same atomic step as the release, or
 *   before it (GitHub: close the issue, then delete the claim), so that a finished task is never
 *   free without its marker; the release's event is `done` instead of `released`. With `next`,
 *   the store may claim next in the same round trip (then it says so: next_tried).
 * - reopen: deletes the marker and records a `reopened` event; TL_OK whether or not there was
 *   one (*was_done says).
 *
 * Shared holders and semaphores (version 5; DESIGN.md section 9). A store that has them sets
 * `modes` in open; the core never sends a shared claim to one that does not (TL_ENOTSUP).
 * - A key has a set of holders, each a record of its own (token, worker, heartbeat, timeout,
 *   task_info, info.mode, info.slots). An exclusive claim is *admitted* when the key has no
 *   holder; a shared claim (req->shared) when no holder is exclusive and, with req->slots N > 0,
 *   fewer than N hold it. The holders that count: for TL_CLAIM_NORMAL all; for TL_CLAIM_STEAL the
 *   live ones (a win removes every stale holder, and is then `stolen`, its detail naming them);
 *   TL_CLAIM_FORCE is exclusive only and removes every holder. The line is as before: a claim
 *   wins iff admitted and no live waiter is ahead of it (FORCE: always).
 * - Every holder of a key agrees on slots: a shared claim whose slots differ from a counting
 *   holder's answers TL_EINVAL (tl__slots_mismatch() words it), joins no line and writes
 *   nothing. An exclusive claim has no slots and never mismatches.
 * - Every grant takes the key's next token: an exclusive holder's token is larger than every
 *   earlier holder's, shared or not.
 * - renew, extend, release and finish find their holder among the key's holders by token and
 *   worker id; a release removes that holder only. "Already released" (TL_OK) still means: no
 *   holder has the token and no one has claimed the key since it.
 * - A busy claim's out->rec is the holder it waits for first: the exclusive one, else the
 *   oldest. inspect returns that one too, with info.holders counting every holder; `holders`
 *   lists them all by token; list returns a record per holder.
 * - Wake-ups: where the store sends messages, a write that removes a holder or changes the head
 *   wakes the head when the key may admit it (no holder, or shared holders only); the head's
 *   claim decides. A shared head that wins may leave another shared waiter at the head: it is
 *   woken too (a chain of readers enters one by one).
 * - force_release with token 0 removes every holder (a `forced` and a `released` event, the
 *   detail naming them, or such a pair per holder removed (GitHub: a completion comment per
 *   holder); `former` is the holder inspect would show); with a token, that holder only. claim_next
 * and finish's next claim are exclusive (a key with shared holders is held).
 * - convert (optional) changes one holder's mode as a new grant: the key's next token, a
 *   heartbeat now, an `upgraded` or `downgraded` event; TL_ELOST if `held` is not a holder.
 *   To shared (a downgrade): always admitted; the head may then be woken. To exclusive (an
 *   upgrade): admitted iff no other holder counts (as for a claim in req->mode: with
 *   TL_CLAIM_STEAL stale ones do not, and are displaced), whatever the line; else TL_EBUSY with
 *   the oldest other holder in out->rec, and with req->waiter_id the upgrader joins (or
 *   refreshes its place in) the line with priority TL_PRIORITY_UPGRADE, ahead of everyone else.
 *   An upgrader at the head is woken when no other holder counts (it is the only holder, or the
 *   others are stale and it steals) or it holds nothing any more; a win removes its
 *   waiter.
 *
 * The wait-for graph (version 5; DESIGN.md section 9). A store that sets `deadlocks` in open
 * keeps req->holding with each waiter (as given at its latest claim) and returns it in
 * tl_waiter.holding, and answers waiters() with key NULL with every waiter of the store (dead
 * ones marked). The core finds the cycles (src/deadlock.c).
 */
#ifndef TL_STORE_H
#define TL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "tl.h"

/* 2: force_release appended. 3: the line (struct tl_claim's waiter, leave, wait_turn, waiters),
 * extend. 4: claim_next, finish, reopen, done_list, wait_any. 5: shared holders and semaphores
 * (struct tl_claim's shared and slots, struct tl_store's modes, holders). */
#define TL_STORE_OPS_VERSION 5

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
    /* Set by open (version 3): a waiter's timeout is the lock timeout of its claim (GitHub,
     * whose waiters are claim comments), not the core's shorter default (min(lock timeout,
     * max(10 s, 3 heartbeat intervals))). */
    bool waiter_timeout_is_lock_timeout;
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
    /* Version 3 addition: set by renew or extend when the heartbeat that keeps the lock alive
     * was sent before this call (the clock's mono_ms): a store whose locks hang on one lease
     * (etcd) keeps that lease alive once for all of them, and a renew soon after that relies on
     * it. The core reckons the lock's loss deadline from then. 0 (the core clears it before
     * each call): sent during the call. */
    int64_t beat_sent_mono_ms;
    /* Version 5, set by open: the store keeps shared holders and semaphores (see the contract
     * above). false: the core refuses shared claims with TL_ENOTSUP. */
    bool modes;
    /* Version 5, set by open: the store keeps the wait-for graph (see above). */
    bool deadlocks;
    /* Version 5 addition, set by the core around a renew or extend by token alone
     * (tl_renew_token, tl_extend_token): the caller is often another process than the lock's
     * holder (`tasklock renew`), with no heartbeat of its own, so a store must not hang the lock
     * on something that lives only as long as this manager (GitHub: its session). false: the
     * lock's own manager renews it (its heartbeat, tl_renew, tl_extend). */
    bool renew_by_token;
};

/* A claim request. Strings are borrowed for the call. */
struct tl_claim {
    const char *key;
    const char *worker_id;
    const char *node_id;
    const char *task_info; /* normalised JSON object text, never NULL */
    uint32_t lock_timeout_ms;
    enum tl_claim_mode mode;
    /* Version 3: the line. */
    const char *waiter_id;      /* NULL: a claim that will not wait (one attempt, FORCE, or a
                                   manager without the line); else the acquire call's place
                                   in line: 32 lower-case hex digits */
    int32_t priority;           /* TL_PRIORITY_MIN .. TL_PRIORITY_MAX */
    uint32_t waiter_timeout_ms; /* with waiter_id: the waiter is dead when silent this long */
    /* Version 5: a shared claim (never with TL_CLAIM_FORCE), of a semaphore of `slots` holders
     * when slots > 0 (0: no limit; always 0 when not shared). */
    bool shared;
    uint32_t slots;
    /* Version 5, with waiter_id: NULL (it holds nothing), or the claim's mode and the locks the
     * claiming manager holds, "MODE KEY TOKEN KEY TOKEN ..." (MODE "s" or "x"; at most
     * TL_HOLDING_MAX bytes), kept with the waiter by stores that set `deadlocks`: text of the
     * core's, stored and returned as it is. */
    const char *holding;
};
#define TL_HOLDING_MAX 4096

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
    /* Version 3, on TL_EBUSY: live waiters in the key's line (the caller's waiter included),
     * and of those, how many are ahead of the caller's waiter (with waiter_id). */
    uint32_t waiting;
    uint32_t ahead;
    /* Version 3, on TL_OK: when the heartbeat that the won record carries was sent (the clock's
     * mono_ms), if before this call: a waiter that found itself holding without writing (the
     * GitHub hand-over) says when it last refreshed its claim, and the core reckons the lock's
     * loss deadline from then. 0: written during this call. */
    int64_t beat_sent_mono_ms;
};

/* Version 4: what claim-next chooses from. Borrowed for the call. */
struct tl_candidates {
    const char *const *keys; /* in order of preference (valid keys, no duplicates) */
    size_t nkeys;
    /* Instead of keys (keys NULL): the store's own listing, ranked by the store (GitHub: the
     * open issues with this label). Stores without one answer TL_ENOTSUP. */
    const char *label;
    /* NULL, or nkeys bytes the core zeroed: the store sets done_seen[i] = 1 for each candidate
     * i it found done (in claim_next, and in finish's claim of the next). Optional, but it lets
     * the core leave finished keys out of its later calls (a queue drained in order would
     * otherwise cost every call a walk over its finished head). Never mark a candidate that is
     * not done: it would be hidden from this manager's calls until the core next asks about the
     * whole list (at the latest when the rest has nothing to win). */
    uint8_t *done_seen;
};

/* Version 4: why a claim-next won nothing. Each candidate the store looked at is counted once,
 * in the first count that applies: done, held (live, or stale when not stealing), queued (free
 * or stealable, but live waiters in line). */
struct tl_next_tally {
    uint32_t done;
    uint32_t held;
    uint32_t queued;
    /* The store stopped before looking at every candidate (GitHub: a few claims per attempt);
     * the ones it did not look at are counted held. The core then ends the attempt there
     * instead of asking about the candidates after these. */
    bool cut;
};

/* Version 4: a release that may mark the task done and may claim the next one. */
struct tl_finish {
    const struct tl_record *held; /* as claim returned it */
    const char *summary;          /* never NULL */
    bool done;                    /* leave the done marker */
    /* NULL: nothing more. Else claim next like claim_next(next, candidates) once released. */
    const struct tl_claim *next;
    const struct tl_candidates *candidates;
};

struct tl_finish_result {
    bool next_tried;       /* the store made the claim-next (else the core makes it) */
    tl_status next_status; /* with next_tried: claim_next's status */
    struct tl_claim_result next;
    size_t won;
    struct tl_next_tally tally;
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

    /* Version 3: the line (see the contract above). A store with a line has all four; NULL
     * leave means the store has no line: the core then never passes a waiter id and polls. */
    tl_status (*leave)(struct tl_store *s, const char *key, const char *waiter_id);
    /* Blocks up to `timeout_ms` or until waiter `waiter_id` is woken as the head of the line
     * of a free key (*woken true). For a waiter that is not in line (deleted as dead) it must
     * not return at once without a wake-up, or the caller calls again and again: it wakes it at
     * once (memory, SQLite, PostgreSQL, GitHub: its claim puts it back) or waits as usual
     * (Redis). TL_OK either way; an error makes the caller sleep instead. Returns by
     * deadline_mono_ms too. */
    tl_status (*wait_turn)(struct tl_store *s, const char *key, const char *waiter_id,
                           uint32_t timeout_ms, bool *woken);
    /* The line of `key` in order, dead waiters included (marked). Empty: *out NULL, *count 0.
     * Records are allocated with tl__malloc and freed by tl_waiter_array_free(). */
    tl_status (*waiters)(struct tl_store *s, const char *key, struct tl_waiter ***out,
                         size_t *count);
    /* renew, and record `lock_timeout_ms` as the lock's timeout, atomically. NULL: TL_ENOTSUP. */
    tl_status (*extend)(struct tl_store *s, const struct tl_record *held, uint32_t lock_timeout_ms,
                        int64_t *heartbeat_at_ms);

    /* Version 4: claim-next and done markers (see the contract above). Each is optional: NULL
     * makes the calls that need it answer TL_ENOTSUP (wait_any: the core sleeps instead). */
    /* TL_OK: won; *won is the candidate's index (SIZE_MAX for a label's listing) and out->rec
     * ours. TL_EBUSY: nothing to win now; *tally says why (all done: tally->done == nkeys). */
    tl_status (*claim_next)(struct tl_store *s, const struct tl_claim *req,
                            const struct tl_candidates *c, struct tl_claim_result *out, size_t *won,
                            struct tl_next_tally *tally);
    /* The release's status, as release's (summary, done; with next as described above). `out`
     * is filled only when the release succeeded. */
    tl_status (*finish)(struct tl_store *s, const struct tl_finish *f,
                        struct tl_finish_result *out);
    tl_status (*reopen)(struct tl_store *s, const char *key, const char *worker_id,
                        const char *node_id, bool *was_done);
    /* The done markers of `key`, or of every key when NULL, ordered by key. Records are
     * allocated with tl__malloc and freed by tl_done_array_free(). */
    tl_status (*done_list)(struct tl_store *s, const char *key, struct tl_done ***out,
                           size_t *count);
    /* Blocks up to `timeout_ms` or until one of the candidates may have come free (released,
     * or a line emptied). TL_OK either way; an error makes the caller sleep instead. Returns by
     * deadline_mono_ms too. */
    tl_status (*wait_any)(struct tl_store *s, const struct tl_candidates *c, uint32_t timeout_ms);

    /* Version 5: every holder of `key` by token, stale ones judged. Free: *out NULL, *count 0.
     * Records are allocated with tl__record_new() and freed by tl_info_array_free(). NULL: the
     * core asks inspect (one holder). */
    tl_status (*holders)(struct tl_store *s, const char *key, struct tl_record ***out,
                         size_t *count);
    /* Version 5: a holder's new mode (see the contract above). req carries the key, worker,
     * node, lock timeout, mode (NORMAL or STEAL), shared/slots (the new mode), and for a waiting
     * upgrade waiter_id, waiter_timeout_ms and holding; priority is TL_PRIORITY_UPGRADE. On
     * TL_OK out->rec is the holder's new record. NULL: TL_ENOTSUP. */
    tl_status (*convert)(struct tl_store *s, const struct tl_record *held,
                         const struct tl_claim *req, struct tl_claim_result *out);
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

/* Version 5: whether a claim (shared or not, slots) is admitted by the holders that count:
 * `n` of them, `any_exclusive` if one is exclusive, `held_slots` the shared holders' slots. */
enum tl_admit { TL_ADMIT_YES, TL_ADMIT_NO, TL_ADMIT_MISMATCH };
enum tl_admit tl__admit(bool shared, uint32_t slots, size_t n, bool any_exclusive,
                        uint32_t held_slots);
/* Fails `s` with TL_EINVAL and the message of a slots mismatch on `key`. */
tl_status tl__slots_mismatch(struct tl_store *s, const char *key, uint32_t held_slots,
                             uint32_t asked_slots);

/* The line's order: whether waiter a (priority pa, seq sa) goes before b. */
static inline bool tl__waiter_before(int32_t pa, uint64_t sa, int32_t pb, uint64_t sb)
{
    return pa != pb ? pa > pb : sa < sb;
}
struct tl_waiter *tl__waiter_new(void);
void tl__waiter_free(struct tl_waiter *w);
tl_status tl__waiter_array_push(struct tl_waiter ***arr, size_t *count, size_t *cap,
                                struct tl_waiter *w);

tl_status tl__record_array_push(struct tl_record ***arr, size_t *count, size_t *cap,
                                struct tl_record *r);
tl_status tl__event_array_push(struct tl_event ***arr, size_t *count, size_t *cap,
                               struct tl_event *e);
struct tl_done *tl__done_new(void);
void tl__done_free(struct tl_done *d);
tl_status tl__done_array_push(struct tl_done ***arr, size_t *count, size_t *cap, struct tl_done *d);

/* The stores this build has (registry.c lists them). */
extern const struct tl_store_ops tl__store_memory;
extern const struct tl_store_ops tl__store_sqlite;
extern const struct tl_store_ops tl__store_github;
extern const struct tl_store_ops tl__store_redis;
extern const struct tl_store_ops tl__store_postgres;
extern const struct tl_store_ops tl__store_etcd;

#endif /* TL_STORE_H */
