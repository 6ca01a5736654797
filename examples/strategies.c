/*
 * strategies.c -- what each conflict strategy does when the lock is held, on the in-process
 * memory store with short waits, so that the whole tour takes about a second.
 *
 *   example_strategies
 *
 *   worker-a holds the lock, heartbeating it (lock timeout 10 s: it stays fresh)
 *   1. FAIL_FAST      one attempt: TL_EBUSY at once, naming the holder
 *   2. RETRY          backs off and retries until its deadline: TL_EBUSY, the holder is alive
 *   3. STEAL_STALE    a live (heartbeating) holder is never stolen from: TL_EBUSY
 *   4. FORCE_ACQUIRE  takes the live lock at once; worker-a finds its lock lost
 *   5. RETRY          waits while the admin holds it, and wins when the admin releases;
 *                     worker-b takes it with a short lock timeout (300 ms)
 *   6. STEAL_STALE    worker-b "crashes" (stops heartbeating): 300 ms after its last
 *                     heartbeat the lock is stale, and worker-a takes it
 * Every new holder gets a larger fencing token than the one before.
 *
 * No step depends on timing luck: live locks have a 10 s timeout, and the steps that wait for
 * something (a release, staleness) have a deadline of seconds for what takes milliseconds.
 * Exits 0 when every step returned what it should.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "tasklock.h"

#define STORE         "memory:strategies"
#define KEY           "deploy-prod"
#define LIVE_TIMEOUT  10000 /* ms: the managers' lock timeout; heartbeat a third of it */
#define SHORT_TIMEOUT 300   /* ms: worker-b's lock in steps 5 and 6; heartbeat every 100 ms */

static int failures;

static int64_t now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static tl_manager *new_manager(const char *worker_id)
{
    const struct tl_options opts = {
        .store_url = STORE,
        .worker_id = worker_id,
        .lock_timeout_ms = LIVE_TIMEOUT,
        .backoff_initial_ms = 20, /* retries after ~20, 40, 80, 80, ... ms */
        .backoff_max_ms = 80,
    };
    tl_manager *m = tl_manager_new(&opts);

    if (m == NULL || tl_connect(m) != TL_OK) {
        fprintf(stderr, "%s: %s\n", worker_id, m ? tl_errmsg(m) : "out of memory");
        tl_manager_free(m);
        return NULL;
    }
    return m;
}

/* Prints the outcome of a step and checks it against what was expected. */
static void report(const char *step, tl_manager *m, tl_status got, tl_status want, int64_t started,
                   const tl_lock *lock)
{
    printf("%-38s -> %-12s after %4lld ms", step, got == TL_OK ? "TL_OK" : tl_strerror(got),
           (long long)(now_ms() - started));
    if (got == TL_OK && lock != NULL)
        printf(", token %llu", (unsigned long long)tl_lock_token(lock));
    printf("\n");
    if (got != TL_OK)
        printf("    %s\n", tl_errmsg(m));
    if (got != want) {
        printf("    UNEXPECTED: wanted %s\n", want == TL_OK ? "TL_OK" : tl_strerror(want));
        failures++;
    }
}

static void expect(bool ok, const char *what)
{
    printf("    %s: %s\n", what, ok ? "yes" : "NO");
    if (!ok)
        failures++;
}

struct delayed_release {
    tl_lock *lock;
    long after_ms;
    tl_status st;
};

/* Releases a lock after a delay, from its own thread. The lock's manager is used by this
 * thread alone while it runs (one thread per handle). */
static void *release_later(void *arg)
{
    struct delayed_release *d = arg;

    sleep_ms(d->after_ms);
    d->st = tl_release(d->lock, "finished");
    return NULL;
}

int main(void)
{
    tl_manager *a = new_manager("worker-a");
    tl_manager *b = new_manager("worker-b");
    tl_manager *admin = new_manager("admin");
    tl_lock *la = NULL, *la2 = NULL, *lb = NULL, *ladmin = NULL;
    struct tl_metrics mt;
    int64_t t;
    tl_status st;

    if (a == NULL || b == NULL || admin == NULL)
        goto out;

    st = tl_acquire(a, KEY, NULL, &la);
    if (st != TL_OK) {
        fprintf(stderr, "worker-a: %s\n", tl_errmsg(a));
        failures++;
        goto out;
    }
    printf("worker-a holds %s with token %llu\n\n", KEY, (unsigned long long)tl_lock_token(la));

    /* 1. FAIL_FAST: one attempt. tl_last_holder() says who is in the way. */
    t = now_ms();
    st = tl_acquire(b, KEY, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &lb);
    report("1. FAIL_FAST", b, st, TL_EBUSY, t, lb);
    const struct tl_info *h = tl_last_holder(b);
    expect(h != NULL && h->token == tl_lock_token(la) && !h->stale,
           "tl_last_holder() names worker-a's live lock");

    /* 2. RETRY (the default strategy) with a deadline and no retry count: retries with
     * backoff until the deadline. The holder keeps heartbeating, so it gives up. */
    tl_metrics_get(b, &mt, sizeof(mt));
    uint64_t retries_before = mt.total_retries;
    t = now_ms();
    st = tl_acquire(b, KEY, &(struct tl_acquire_opts){.strategy = TL_RETRY, .deadline_ms = 200},
                    &lb);
    report("2. RETRY, deadline 200 ms", b, st, TL_EBUSY, t, lb);
    tl_metrics_get(b, &mt, sizeof(mt));
    printf("    retries made: %llu\n", (unsigned long long)(mt.total_retries - retries_before));

    /* 3. STEAL_STALE on a live holder: the same as RETRY, since the lock is not stale. */
    t = now_ms();
    st = tl_acquire(b, KEY,
                    &(struct tl_acquire_opts){.strategy = TL_STEAL_STALE, .deadline_ms = 200}, &lb);
    report("3. STEAL_STALE, holder alive", b, st, TL_EBUSY, t, lb);

    /* 4. FORCE_ACQUIRE: takes the lock from a live holder at once (an administrator's tool).
     * worker-a's next renewal finds it gone: TL_ELOST (its heartbeat thread would find out
     * too, and call the lost callback: see lost_lock.c), and its release is refused. */
    t = now_ms();
    st = tl_acquire(admin, KEY, &(struct tl_acquire_opts){.strategy = TL_FORCE_ACQUIRE}, &ladmin);
    report("4. FORCE_ACQUIRE, holder alive", admin, st, TL_OK, t, ladmin);
    if (st != TL_OK)
        goto out;
    st = tl_renew(la);
    printf("    worker-a renews: %s; tl_lock_is_lost: %s\n", tl_strerror(st),
           tl_lock_is_lost(la) ? "true" : "false");
    expect(st == TL_ELOST && tl_lock_is_lost(la), "worker-a learns that its lock is lost");
    st = tl_release(la, NULL);
    printf("    worker-a releases: %s\n", tl_strerror(st));
    expect(st == TL_ENOTOWNER, "worker-a cannot release the admin's lock");
    expect(tl_lock_token(ladmin) > tl_lock_token(la), "the admin's token is larger");

    /* 5. RETRY wins once the holder lets go: the admin releases after 100 ms, from another
     * thread. worker-b asks for a short lock timeout for this one lock. */
    struct delayed_release d = {.lock = ladmin, .after_ms = 100};
    pthread_t thr;
    if (pthread_create(&thr, NULL, release_later, &d) != 0) {
        failures++;
        goto out;
    }
    t = now_ms();
    const struct tl_acquire_opts retry = {
        .strategy = TL_RETRY, .deadline_ms = 5000, .lock_timeout_ms = SHORT_TIMEOUT};
    st = tl_acquire(b, KEY, &retry, &lb);
    (void)pthread_join(thr, NULL);
    report("5. RETRY, holder releases at 100 ms", b, st, TL_OK, t, lb);
    expect(d.st == TL_OK, "the admin's release succeeded");
    if (st != TL_OK)
        goto out;
    expect(tl_lock_token(lb) > tl_lock_token(ladmin), "token grew again");

    /* 6. worker-b "crashes": it frees its handle without releasing, so nobody heartbeats the
     * lock any more, but the record stays in the store. (tl_manager_free, or the process
     * dying, would do the same.) 300 ms after its last heartbeat the lock is stale, and
     * STEAL_STALE takes it; RETRY would wait in vain. */
    uint64_t crashed_token = tl_lock_token(lb);
    tl_lock_free(lb);
    lb = NULL;
    t = now_ms();
    st = tl_acquire(
        a, KEY, &(struct tl_acquire_opts){.strategy = TL_STEAL_STALE, .deadline_ms = 5000}, &la2);
    report("6. STEAL_STALE, holder crashed", a, st, TL_OK, t, la2);
    if (st != TL_OK)
        goto out;
    tl_metrics_get(a, &mt, sizeof(mt));
    expect(tl_lock_token(la2) > crashed_token, "new token is larger than the crashed holder's");
    expect(mt.stale_locks_claimed == 1, "metrics: stale_locks_claimed == 1");
    expect(tl_release(la2, "deployed") == TL_OK, "worker-a releases");

    tl_metrics_get(b, &mt, sizeof(mt));
    printf("\nworker-b metrics: %llu acquisitions, %llu conflicts, %llu retries, %llu failed\n",
           (unsigned long long)mt.total_acquisitions, (unsigned long long)mt.total_conflicts,
           (unsigned long long)mt.total_retries, (unsigned long long)mt.failed_acquisitions);
    tl_metrics_get(a, &mt, sizeof(mt));
    printf("worker-a metrics: %llu acquisitions, %llu lost, %llu stale claimed, %llu released\n",
           (unsigned long long)mt.total_acquisitions, (unsigned long long)mt.locks_lost,
           (unsigned long long)mt.stale_locks_claimed, (unsigned long long)mt.total_releases);

out:
    tl_lock_free(la);
    tl_lock_free(la2);
    tl_lock_free(lb);
    tl_lock_free(ladmin);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(admin);
    printf("%s\n", failures == 0 ? "all strategies behaved as described" : "FAILED");
    return failures == 0 ? 0 : 1;
}
