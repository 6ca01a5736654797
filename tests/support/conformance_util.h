/*
 * conformance_util.h -- helpers of the conformance suite's own parts (conformance_line.c,
 * conformance_modes.c, conformance_convert.c), written once: a manager on the real clock,
 * acquires that must succeed, the live count of a line, and a waiting acquire or upgrade on a
 * thread of its own. A store's test uses conformance.h only. Failures fail the cmocka test.
 */
#ifndef TL_CONFORMANCE_UTIL_H
#define TL_CONFORMANCE_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conformance.h"
#include "tasklock.h"
#include "tl.h"

#define TL_CONFORMANCE_LONG_TIMEOUT_MS 60000 /* a lock timeout no test outlasts */
#define TL_CONFORMANCE_EVENT_LIMIT_MS  30000 /* bound of every wait for an event */

/* A manager on the store of `c` on the real clock (a wait in line needs one; the suite's fake
 * clock, for making locks stale, is tl__conformance_mgr()'s), with the long lock timeout and
 * short backoffs. `node_id` says which part made the records. */
tl_manager *tl__conformance_real_mgr(const struct tl_conformance *c, const char *node_id,
                                     const char *worker);

/* One attempt (no retries of a store failure) at `k` in `mode`, a semaphore of `slots` if not 0;
 * returns tl_acquire()'s answer. */
tl_status tl__conformance_try(tl_manager *m, const char *k, tl_mode mode, uint32_t slots,
                              tl_strategy strategy, tl_lock **out);
/* The same, fail-fast: the lock, or the test fails. */
tl_lock *tl__conformance_must(tl_manager *m, const char *k, tl_mode mode, uint32_t slots);
/* Releases and frees `l`; the test fails if the release does. */
void tl__conformance_must_release(tl_lock *l);

/* The live (not dead) waiters of `k` that `m` sees; the first one's priority in *head_priority
 * when it is not NULL and there is one. */
size_t tl__conformance_live_waiters(tl_manager *m, const char *k, int32_t *head_priority);

/* A tl_test_poll() condition: `key` has `live` live waiters, as `m` sees. */
struct tl_conformance_line_probe {
    tl_manager *m;
    const char *key;
    size_t live;
};
bool tl__conformance_line_has(void *arg);

/*
 * A waiting acquire of `key` in `mode`, or (`upgrade`) a waiting upgrade of `lock`, on a thread
 * of its own (TL_RETRY, the event limit as deadline). With `hold` an acquired lock is kept until
 * `release` is set, then released (not freed); a failure of that is in `err`. Set m, and key or
 * lock, mode, upgrade and hold before tl__conformance_job_start(); read st, lock and err once
 * `done` is set or the thread is joined.
 */
struct tl_conformance_job {
    pthread_t thread;
    tl_manager *m;
    char key[64];
    tl_lock *lock; /* upgrade: the lock to upgrade; acquire: the result */
    bool upgrade;
    bool hold;
    tl_mode mode;
    tl_status st;
    atomic_int done;    /* acquired or upgraded, or failed: st says */
    atomic_int release; /* with hold: told to release */
    char err[TL_ERRMSG_SIZE];
};
/* Starts `j` (its key is `k` unless already set) and waits until `observer` sees it in `k`'s
 * line as number `place`. */
void tl__conformance_job_start(struct tl_conformance_job *j, tl_manager *observer, const char *k,
                               size_t place);
/* Waits until `j` is done; the test fails if it failed. */
void tl__conformance_job_await(struct tl_conformance_job *j);

#endif /* TL_CONFORMANCE_UTIL_H */
