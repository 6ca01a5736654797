/*
 * test_heartbeat.c -- heartbeat renewal and loss detection. Most tests stop the heartbeat thread
 * and run rounds themselves under a fake clock (no waiting); two let the real thread run with
 * short intervals and poll its counters with a bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_store.h"
#include "manager.h"
#include "tasklock.h"
#include "tl_test.h"

static struct tl_fake_clock fc;
static int space;

struct lost_count {
    pthread_mutex_t mu;
    int calls;
};

static void count_lost(void *ud, tl_lock *l)
{
    struct lost_count *c = ud;

    assert_true(tl_lock_is_lost(l)); /* already marked when the callback runs */
    pthread_mutex_lock(&c->mu);
    c->calls++;
    pthread_mutex_unlock(&c->mu);
}

static int lost_calls(struct lost_count *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->calls;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* A manager on the fault-injecting memory store, fake clock, no heartbeat thread. */
static tl_manager *mgr(struct lost_count *lost)
{
    char url[64];

    (void)snprintf(url, sizeof(url), "memory:heartbeat-%d", ++space);
    const struct tl_options o = {
        .store_url = url,
        .worker_id = "hb-worker",
        .on_lost = lost ? count_lost : NULL,
        .lost_ud = lost,
    };
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    tl_fake_clock_install(m, &fc);
    tl__manager_set_store_ops(m, tl_fake_store());
    tl__heartbeat_stop(m); /* the test runs the rounds */
    return m;
}

static tl_lock *acquire(tl_manager *m, const char *key, uint32_t timeout_ms)
{
    tl_lock *l = NULL;

    assert_int_equal(
        tl_acquire(m, key, &(struct tl_acquire_opts){.lock_timeout_ms = timeout_ms}, &l), TL_OK);
    return l;
}

static size_t round_now(tl_manager *m)
{
    return tl__heartbeat_round(m, m->store, fc.mono_ms, false);
}

static struct tl_metrics metrics(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt;
}

static void read_renew_deadline(struct tl_fake_faults *f, void *arg)
{
    *(int64_t *)arg = f->renew_deadline;
}

static int64_t heartbeat_at(tl_manager *m, const char *key)
{
    struct tl_info *info = NULL;

    assert_int_equal(tl_inspect(m, key, &info), TL_OK);
    assert_non_null(info);
    int64_t t = info->heartbeat_at_ms;
    tl_info_free(info);
    return t;
}

static int setup(void **state)
{
    (void)state;
    tl_fake_clock_init(&fc);
    tl_fake_reset();
    return 0;
}

static void renews_each_lock_when_it_is_due(void **state)
{
    tl_manager *m = mgr(NULL);
    tl_lock *fast = acquire(m, "fast", 6000);  /* every 2 s */
    tl_lock *slow = acquire(m, "slow", 60000); /* every 20 s */

    (void)state;
    assert_int_equal(round_now(m), 0);
    tl_fake_clock_advance(&fc, 1999);
    assert_int_equal(round_now(m), 0);
    tl_fake_clock_advance(&fc, 1);
    assert_int_equal(round_now(m), 1);
    assert_int_equal(heartbeat_at(m, "fast"), fc.now_ms);
    assert_true(heartbeat_at(m, "slow") < fc.now_ms);

    for (int i = 0; i < 8; i++) { /* t = 4 s ... 18 s: the fast one alone */
        tl_fake_clock_advance(&fc, 2000);
        assert_int_equal(round_now(m), 1);
    }
    tl_fake_clock_advance(&fc, 2000); /* t = 20 s: both due */
    assert_int_equal(round_now(m), 2);
    assert_int_equal(heartbeat_at(m, "slow"), fc.now_ms);
    assert_int_equal(metrics(m).heartbeats_sent, 11);
    assert_int_equal(metrics(m).heartbeats_failed, 0);

    /* The record carries the new heartbeat too. */
    char *md = tl_lock_metadata(fast);
    char iso[TL_ISO_SIZE], want[TL_ISO_SIZE + 40];
    tl__format_iso(fc.now_ms, iso);
    (void)snprintf(want, sizeof(want), "\"heartbeat_last\":\"%s\"", iso);
    assert_non_null(strstr(md, want));
    tl_free(md);
    tl_lock_free(fast);
    tl_lock_free(slow);
    tl_manager_free(m);
}

static void set_relies_on(struct tl_fake_faults *f, void *arg)
{
    f->renew_relies_on = *(int64_t *)arg;
}

/* A store that relies on an earlier write of its own (a session, a lease) for longer than a
 * short configured interval says so at each renew: the lock's deadline counts from that write,
 * and its next renew comes an interval later all the same, not at once (which would rely on the
 * same write again, and again, until it left the store's window). */
static void relying_on_an_older_write_does_not_renew_at_once(void **state)
{
    tl_manager *m = mgr(NULL);
    tl_lock *l = acquire(m, "relied", 60000); /* every 20 s */

    (void)state;
    int64_t written = fc.mono_ms;
    tl_fake_with(set_relies_on, &written);
    tl_fake_clock_advance(&fc, 25000);
    assert_int_equal(round_now(m), 1); /* relies on the write 25 s ago */
    /* Its expiry counts from that write: 60 s after it. */
    assert_int_equal(tl_lock_expires_in_ms(l), 60000 - 25000);
    assert_int_equal(round_now(m), 0); /* not due again at once */
    tl_fake_clock_advance(&fc, 9999);
    assert_int_equal(round_now(m), 0);
    /* Half the time left before the loss deadline (60 s less the 3 s margin after the write:
     * 32 s): 16 s, sooner than the interval. */
    tl_fake_clock_advance(&fc, 6001);
    assert_int_equal(round_now(m), 1);
    int64_t none = 0;
    tl_fake_with(set_relies_on, &none);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void a_lost_renew_marks_the_lock_and_calls_back_once(void **state)
{
    struct lost_count lost = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *m = mgr(&lost);
    tl_lock *l = acquire(m, "k", 6000), *other = acquire(m, "other", 6000);

    (void)state;
    tl_fake_set_renew_lost(1);
    tl_fake_clock_advance(&fc, 2000);
    assert_int_equal(round_now(m), 2);
    /* One of the two was told it was lost; which one depends on the list order. */
    assert_true(tl_lock_is_lost(l) != tl_lock_is_lost(other));
    assert_int_equal(lost_calls(&lost), 1);
    struct tl_metrics mt = metrics(m);
    assert_int_equal(mt.locks_lost, 1);
    assert_int_equal(mt.locks_held, 1);
    assert_int_equal(mt.heartbeats_sent, 1);

    /* A lost lock is not renewed again, and the callback does not fire twice. */
    tl_fake_clock_advance(&fc, 2000);
    assert_int_equal(round_now(m), 1);
    assert_int_equal(lost_calls(&lost), 1);
    tl_lock *gone = tl_lock_is_lost(l) ? l : other;
    assert_int_equal(tl_renew(gone), TL_ELOST);
    assert_int_equal(lost_calls(&lost), 1);
    tl_lock_free(l);
    tl_lock_free(other);
    tl_manager_free(m);
}

static void failing_renewals_lose_the_lock_at_its_deadline(void **state)
{
    struct lost_count lost = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *m = mgr(&lost);
    tl_lock *l = acquire(m, "k", 6000); /* margin: 5 % = 300 ms; deadline 5.7 s */
    int64_t start = fc.mono_ms;

    (void)state;
    tl_fake_set_renew_errors(1000);
    for (;;) {
        tl_fake_clock_advance(&fc, 100);
        (void)round_now(m);
        (void)tl__loss_sweep(m, fc.mono_ms);
        if (fc.mono_ms - start < 5700) {
            assert_false(tl_lock_is_lost(l)); /* not before the deadline */
            assert_int_equal(lost_calls(&lost), 0);
        } else {
            assert_true(tl_lock_is_lost(l)); /* right at it */
            break;
        }
    }
    assert_int_equal(fc.mono_ms - start, 5700);
    assert_int_equal(lost_calls(&lost), 1);
    /* After the first failure it retried every quarter interval: 2.0, 2.5, ... 5.5 s. */
    assert_int_equal(metrics(m).heartbeats_failed, 8);
    assert_int_equal(metrics(m).locks_lost, 1);
    assert_int_equal(metrics(m).locks_held, 0);
    /* The sweep does not fire twice, and a lost lock is not renewed again. */
    assert_int_equal(tl__loss_sweep(m, fc.mono_ms + 1000), 0);
    tl_fake_clock_advance(&fc, 2000);
    assert_int_equal(round_now(m), 0);
    assert_int_equal(lost_calls(&lost), 1);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void the_margin_is_five_percent_and_at_least_100_ms(void **state)
{
    (void)state;
    assert_int_equal(tl__loss_margin(300000), 15000);
    assert_int_equal(tl__loss_margin(6000), 300);
    assert_int_equal(tl__loss_margin(1000), 100); /* 5 % would be 50 */
    assert_int_equal(tl__loss_margin(400), 100);
    assert_int_equal(tl__loss_margin(200), 50); /* never more than a quarter */
    assert_int_equal(tl__loss_margin(2), 0);
}

static void a_successful_renew_moves_the_deadline_it_carries(void **state)
{
    tl_manager *m = mgr(NULL);
    tl_lock *l = acquire(m, "k", 6000);
    int64_t start = fc.mono_ms;
    int64_t seen = 0;

    (void)state;
    tl_fake_clock_advance(&fc, 2000);
    assert_int_equal(round_now(m), 1);
    pthread_mutex_lock(&m->mu);
    assert_int_equal(l->lose_at_mono_ms, start + 2000 + 5700);
    pthread_mutex_unlock(&m->mu);
    assert_int_equal(tl_lock_expires_in_ms(l), 6000);
    tl_fake_clock_advance(&fc, 2000);
    assert_int_equal(round_now(m), 1);
    tl_fake_with(read_renew_deadline, &seen);
    assert_int_equal(seen, start + 2000 + 5700); /* the store was told the deadline */
    assert_int_equal(tl_lock_expires_in_ms(l), 6000);
    tl_fake_clock_advance(&fc, 1000);
    assert_int_equal(tl_lock_expires_in_ms(l), 5000);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void a_stalled_process_finds_its_lock_lost_when_it_resumes(void **state)
{
    struct lost_count lost = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *m = mgr(&lost);
    tl_lock *l = acquire(m, "k", 6000);

    (void)state;
    tl_fake_clock_advance(&fc, 5699);
    assert_false(tl_lock_is_lost(l));
    /* The process was stopped past the deadline: no thread has run since, yet the lock is
     * lost the moment anyone asks, before any renew could answer. */
    tl_fake_clock_advance(&fc, 1);
    assert_true(tl_lock_is_lost(l));
    assert_int_equal(tl_lock_expires_in_ms(l), 300);
    assert_int_equal(tl_renew(l), TL_ELOST);
    assert_int_equal(lost_calls(&lost), 1);
    assert_int_equal(tl_fake_renews(), 0); /* nothing was sent */
    assert_int_equal(tl__loss_sweep(m, fc.mono_ms), 0);
    assert_int_equal(lost_calls(&lost), 1);
    /* The record is still ours in the store: release frees it. */
    assert_int_equal(tl_release(l, NULL), TL_OK);
    assert_int_equal(tl_lock_expires_in_ms(l), 0);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void advance_4000(void *arg)
{
    (void)arg;
    tl_fake_clock_advance(&fc, 4000);
}

/* Hooks are passed by the address of a pointer to them (ISO C has no void * to function). */
typedef void hook_fn(void *arg);
static hook_fn *const advance_hook = advance_4000;

static void set_renew_hook(struct tl_fake_faults *f, void *arg)
{
    f->before_renew = arg ? *(hook_fn *const *)arg : NULL;
    f->before_renew_arg = NULL;
}

static void a_renew_answered_after_the_deadline_does_not_revive_the_lock(void **state)
{
    struct lost_count lost = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *m = mgr(&lost);
    tl_lock *l = acquire(m, "k", 6000);

    (void)state;
    tl_fake_clock_advance(&fc, 2000);
    tl_fake_with(set_renew_hook, (void *)&advance_hook); /* sent at 2 s, answered at 6 s */
    assert_int_equal(round_now(m), 1);
    tl_fake_with(set_renew_hook, NULL);
    assert_true(tl_lock_is_lost(l));
    assert_int_equal(lost_calls(&lost), 1);
    assert_int_equal(metrics(m).heartbeats_sent, 1); /* the store took it... */
    assert_int_equal(metrics(m).locks_lost, 1);      /* ...too late to count */
    tl_fake_clock_advance(&fc, 2000);
    assert_int_equal(round_now(m), 0);
    /* Same for a renew on the caller's thread. */
    tl_lock *l2 = acquire(m, "k2", 6000);
    tl_fake_clock_advance(&fc, 2000);
    tl_fake_with(set_renew_hook, (void *)&advance_hook);
    assert_int_equal(tl_renew(l2), TL_ELOST);
    tl_fake_with(set_renew_hook, NULL);
    assert_true(tl_lock_is_lost(l2));
    assert_int_equal(lost_calls(&lost), 2);
    tl_lock_free(l);
    tl_lock_free(l2);
    tl_manager_free(m);
}

/* A renew that hangs until the test lets it go. */
struct hang {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, released;
};

static void hang_in_renew(void *arg)
{
    struct hang *h = arg;

    pthread_mutex_lock(&h->mu);
    h->entered = true;
    pthread_cond_broadcast(&h->cv);
    while (!h->released)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void set_hang(struct tl_fake_faults *f, void *arg)
{
    f->before_renew = arg ? hang_in_renew : NULL;
    f->before_renew_arg = arg;
}

static void hang_wait_entered(struct hang *h)
{
    pthread_mutex_lock(&h->mu);
    while (!h->entered)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void hang_release(struct hang *h)
{
    pthread_mutex_lock(&h->mu);
    h->released = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

struct round_arg {
    tl_manager *m;
    int64_t at;
};

static void *round_thread(void *arg)
{
    struct round_arg *r = arg;

    (void)tl__heartbeat_round(r->m, r->m->store, r->at, false);
    return NULL;
}

static void the_loss_is_declared_while_the_store_hangs(void **state)
{
    struct lost_count lost = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct hang h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    tl_manager *m = mgr(&lost);
    tl_lock *l = acquire(m, "k", 6000);
    int64_t start = fc.mono_ms, seen = 0;
    pthread_t t;

    (void)state;
    tl_fake_with(set_hang, &h);
    tl_fake_clock_advance(&fc, 2000);
    struct round_arg ra = {.m = m, .at = fc.mono_ms};
    assert_int_equal(pthread_create(&t, NULL, round_thread, &ra), 0);
    hang_wait_entered(&h); /* the renew is in the store and does not come back */
    tl_fake_with(read_renew_deadline, &seen);
    assert_int_equal(seen, start + 5700);

    tl_fake_clock_advance(&fc, 3699);
    assert_int_equal(tl__loss_sweep(m, fc.mono_ms), 0);
    assert_false(tl_lock_is_lost(l));
    tl_fake_clock_advance(&fc, 1);
    assert_int_equal(tl__loss_sweep(m, fc.mono_ms), 1); /* at the deadline, store or not */
    assert_true(tl_lock_is_lost(l));
    assert_int_equal(lost_calls(&lost), 1);

    /* The store answers at last, successfully: the lock stays lost. */
    hang_release(&h);
    assert_int_equal(pthread_join(t, NULL), 0);
    tl_fake_with(set_hang, NULL);
    assert_true(tl_lock_is_lost(l));
    assert_int_equal(lost_calls(&lost), 1);
    assert_int_equal(metrics(m).locks_lost, 1);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void claim_past_the_deadline(void *arg)
{
    (void)arg;
    tl_fake_clock_advance(&fc, 5800);
}

static hook_fn *const claim_hook = claim_past_the_deadline;

static void set_claim_hook(struct tl_fake_faults *f, void *arg)
{
    f->before_claim = arg ? *(hook_fn *const *)arg : NULL;
    f->before_claim_arg = NULL;
}

static void a_claim_answered_past_the_deadline_is_given_back(void **state)
{
    tl_manager *m = mgr(NULL);
    tl_lock *l = NULL;
    struct tl_info *info = NULL;

    (void)state;
    tl_fake_with(set_claim_hook, (void *)&claim_hook);
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.lock_timeout_ms = 6000}, &l),
                     TL_ETIMEDOUT);
    tl_fake_with(set_claim_hook, NULL);
    assert_null(l);
    assert_non_null(strstr(tl_errmsg(m), "released it"));
    assert_int_equal(tl_inspect(m, "k", &info), TL_OK);
    assert_null(info);
    assert_int_equal(metrics(m).locks_held, 0);
    assert_int_equal(metrics(m).failed_acquisitions, 1);
    tl_manager_free(m);
}

static void a_success_between_failures_keeps_the_lock(void **state)
{
    tl_manager *m = mgr(NULL);
    tl_lock *l = acquire(m, "k", 6000);

    (void)state;
    tl_fake_set_renew_errors(2);
    for (int i = 0; i < 40; i++) { /* 20 s of rounds every 500 ms */
        tl_fake_clock_advance(&fc, 500);
        (void)round_now(m);
    }
    assert_false(tl_lock_is_lost(l));
    assert_int_equal(metrics(m).heartbeats_failed, 2);
    assert_true(metrics(m).heartbeats_sent >= 9);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void release_before_renew(void *arg)
{
    tl_lock *l = arg;

    assert_int_equal(tl_release(l, NULL), TL_OK);
}

static void set_hook(struct tl_fake_faults *f, void *arg)
{
    f->before_renew = arg ? release_before_renew : NULL;
    f->before_renew_arg = arg;
}

static void a_release_racing_a_renew_is_not_a_loss(void **state)
{
    struct lost_count lost = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *m = mgr(&lost);
    tl_lock *l = acquire(m, "k", 6000);

    (void)state;
    /* The round has picked the lock when its owner releases it; the renew then finds the
     * record gone. That is the release, not a loss. */
    tl_fake_with(set_hook, l);
    tl_fake_clock_advance(&fc, 2000);
    assert_int_equal(round_now(m), 1);
    tl_fake_with(set_hook, NULL);
    assert_false(tl_lock_is_lost(l));
    assert_int_equal(lost_calls(&lost), 0);
    struct tl_metrics mt = metrics(m);
    assert_int_equal(mt.locks_lost, 0);
    assert_int_equal(mt.total_releases, 1);
    assert_int_equal(mt.locks_held, 0);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void no_store_counts_as_a_failed_renew(void **state)
{
    tl_manager *m = mgr(NULL);
    tl_lock *l = acquire(m, "k", 6000);

    (void)state;
    tl_fake_clock_advance(&fc, 2000);
    assert_int_equal(tl__heartbeat_round(m, NULL, fc.mono_ms, false), 1);
    assert_int_equal(metrics(m).heartbeats_failed, 1);
    assert_false(tl_lock_is_lost(l));
    tl_lock_free(l);
    tl_manager_free(m);
}

static void a_thousand_locks_are_renewed_every_interval(void **state)
{
    tl_manager *m = mgr(NULL);
    enum { N = 1000 };
    tl_lock **l = calloc(N, sizeof(*l));

    (void)state;
    assert_non_null(l);
    for (int i = 0; i < N; i++) {
        char k[32];
        (void)snprintf(k, sizeof(k), "task-%04d", i);
        l[i] = acquire(m, k, 90000); /* 30 s interval */
    }
    for (int r = 1; r <= 3; r++) {
        tl_fake_clock_advance(&fc, 30000);
        assert_int_equal(round_now(m), N);
        assert_int_equal(metrics(m).heartbeats_sent, (uint64_t)N * r);
    }
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < N; i++) {
        assert_int_equal(l[i]->renewals, 3);
        assert_int_equal(l[i]->heartbeat_at_ms, fc.now_ms);
    }
    pthread_mutex_unlock(&m->mu);
    for (int i = 0; i < N; i++)
        tl_lock_free(l[i]);
    free(l);
    tl_manager_free(m);
}

/* ---- the real thread ---- */

struct renewed_all {
    tl_manager *m;
    uint64_t times;
};

static bool every_lock_renewed(void *arg)
{
    struct renewed_all *r = arg;
    bool all = true;

    pthread_mutex_lock(&r->m->mu);
    for (tl_lock *l = r->m->held; l != NULL; l = l->next)
        all &= l->renewals >= r->times && l->heartbeat_at_ms > l->rec.info.claimed_at_ms;
    pthread_mutex_unlock(&r->m->mu);
    return all;
}

static void the_thread_renews_a_thousand_locks(void **state)
{
    char url[64];
    enum { N = 1000 };
    tl_lock **l = calloc(N, sizeof(*l));

    (void)state;
    (void)snprintf(url, sizeof(url), "memory:heartbeat-thread-%d", ++space);
    tl_manager *m = tl_manager_new(
        &(struct tl_options){.store_url = url, .worker_id = "w", .heartbeat_ms = 20});
    assert_non_null(m);
    for (int i = 0; i < N; i++) {
        char k[32];
        (void)snprintf(k, sizeof(k), "task-%04d", i);
        assert_int_equal(tl_acquire(m, k, NULL, &l[i]), TL_OK);
    }
    struct renewed_all r = {.m = m, .times = 3};
    if (!tl_test_poll(every_lock_renewed, &r, 10, 60000))
        fail_msg("not every lock was renewed three times within 60 s");
    assert_int_equal(metrics(m).heartbeats_failed, 0);
    assert_int_equal(metrics(m).locks_lost, 0);
    for (int i = 0; i < N; i++)
        tl_lock_free(l[i]);
    free(l);
    tl_manager_free(m);
}

static void handles_can_be_freed_while_the_thread_renews(void **state)
{
    char url[64];
    enum { N = 200 };
    tl_lock *l[N];

    (void)state;
    (void)snprintf(url, sizeof(url), "memory:heartbeat-free-%d", ++space);
    tl_manager *m =
        tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "w", .heartbeat_ms = 1});
    assert_non_null(m);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N; i++) {
            char k[32];
            (void)snprintf(k, sizeof(k), "task-%d", i);
            assert_int_equal(tl_acquire(m, k, NULL, &l[i]), TL_OK);
        }
        tl__real_sleep_ms(5); /* let rounds overlap with what follows */
        for (int i = 0; i < N; i++) {
            if (i % 2)
                assert_int_equal(tl_release(l[i], NULL), TL_OK);
            tl_lock_free(l[i]);
        }
        /* The even ones were freed unreleased: their records stay, so release them now. */
        for (int i = 0; i < N; i += 2) {
            char k[32];
            struct tl_info *info = NULL;
            (void)snprintf(k, sizeof(k), "task-%d", i);
            assert_int_equal(tl_inspect(m, k, &info), TL_OK);
            assert_non_null(info);
            struct tl_record held = {.info = *info};
            assert_int_equal(m->store->ops->release(m->store, &held, NULL), TL_OK);
            tl_info_free(info);
        }
    }
    assert_int_equal(metrics(m).locks_lost, 0);
    assert_int_equal(metrics(m).locks_held, 0);
    tl_manager_free(m);
}

static bool two_heartbeats(void *arg)
{
    return metrics(arg).heartbeats_sent >= 2;
}

static void a_short_lock_wakes_an_idle_thread(void **state)
{
    char url[64];

    (void)state;
    (void)snprintf(url, sizeof(url), "memory:heartbeat-wake-%d", ++space);
    /* Default options: with nothing held the thread sleeps for 30 s. A lock renewed every
     * 200 ms must wake it, or it would go stale before the thread looked again. */
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "w"});
    tl_lock *idle = NULL, *fast = NULL;
    assert_non_null(m);
    assert_int_equal(tl_acquire(m, "slow", NULL, &idle), TL_OK); /* starts the thread */
    tl__real_sleep_ms(20);                                       /* let it fall asleep */
    assert_int_equal(
        tl_acquire(m, "fast", &(struct tl_acquire_opts){.lock_timeout_ms = 600}, &fast), TL_OK);
    if (!tl_test_poll(two_heartbeats, m, 10, 10000))
        fail_msg("the heartbeat thread slept through a lock due in 200 ms");
    assert_false(tl_lock_is_lost(fast));
    tl_lock_free(idle);
    tl_lock_free(fast);
    tl_manager_free(m);
}

/* The real threads: a renew hangs on the heartbeat thread; the loss watch still declares the
 * loss, no earlier than the deadline, while the renew is in the store. */
struct watched {
    pthread_mutex_t mu;
    struct hang *h;
    int calls;
    bool renew_hanging; /* whether the renew was still in the store at the callback */
    int64_t at;         /* real monotonic ms of the callback */
};

static void watched_lost(void *ud, tl_lock *l)
{
    struct watched *w = ud;

    (void)l;
    pthread_mutex_lock(&w->h->mu);
    bool hanging = w->h->entered && !w->h->released;
    pthread_mutex_unlock(&w->h->mu);
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->renew_hanging = hanging;
    w->at = tl__real_mono_ms();
    pthread_mutex_unlock(&w->mu);
}

static bool watched_fired(void *arg)
{
    struct watched *w = arg;

    pthread_mutex_lock(&w->mu);
    bool fired = w->calls > 0;
    pthread_mutex_unlock(&w->mu);
    return fired;
}

static void the_loss_watch_thread_is_on_time_while_a_renew_hangs(void **state)
{
    struct hang h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct watched w = {.mu = PTHREAD_MUTEX_INITIALIZER, .h = &h};
    char url[64];
    tl_lock *l = NULL;

    (void)state;
    (void)snprintf(url, sizeof(url), "memory:heartbeat-watch-%d", ++space);
    tl_manager *m = tl_manager_new(&(struct tl_options){
        .store_url = url, .worker_id = "w", .on_lost = watched_lost, .lost_ud = &w});
    assert_non_null(m);
    tl__manager_set_store_ops(m, tl_fake_store());
    tl_fake_with(set_hang, &h);
    int64_t before = tl__real_mono_ms();
    /* 400 ms: renewed every 133 ms, declared lost 100 ms before expiry, 300 ms after the
     * claim was sent, since the first renew never answers. */
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.lock_timeout_ms = 400}, &l),
                     TL_OK);
    if (!tl_test_poll(watched_fired, &w, 5, 30000))
        fail_msg("the lock was not declared lost within 30 s of its deadline");
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.calls, 1);
    assert_true(w.renew_hanging);
    assert_true(w.at >= before + 300);
    pthread_mutex_unlock(&w.mu);
    assert_true(tl_lock_is_lost(l));
    hang_release(&h);
    tl_lock_free(l);
    tl_manager_free(m);
    tl_fake_with(set_hang, NULL);
    assert_int_equal(w.calls, 1);
}

static bool watch_running(tl_manager *m)
{
    pthread_mutex_lock(&m->mu);
    bool running = m->lw_running;
    pthread_mutex_unlock(&m->mu);
    return running;
}

/* A lock released before its first renewal never starts the loss watch: a short `tasklock
 * run` pays for one thread, not two. */
static void a_short_hold_starts_no_loss_watch(void **state)
{
    char url[64];
    tl_lock *l = NULL;

    (void)state;
    (void)snprintf(url, sizeof(url), "memory:heartbeat-lazy-%d", ++space);
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "w"});
    assert_non_null(m);
    assert_int_equal(tl_acquire(m, "k", NULL, &l), TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    assert_false(watch_running(m));
    tl_lock_free(l);
    tl_manager_free(m);
}

/* A deadline before the first renewal (a heartbeat interval close to the lock timeout): the
 * heartbeat thread, which has done no I/O yet, declares the loss itself, on time. */
static void a_deadline_before_the_first_renewal_is_kept(void **state)
{
    struct hang h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct watched w = {.mu = PTHREAD_MUTEX_INITIALIZER, .h = &h};
    char url[64];
    tl_lock *l = NULL;

    (void)state;
    (void)snprintf(url, sizeof(url), "memory:heartbeat-early-%d", ++space);
    /* 1 s lock, renewed after 950 ms, declared lost after 900 ms. */
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url,
                                                        .worker_id = "w",
                                                        .heartbeat_ms = 950,
                                                        .on_lost = watched_lost,
                                                        .lost_ud = &w});
    assert_non_null(m);
    int64_t before = tl__real_mono_ms();
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.lock_timeout_ms = 1000}, &l),
                     TL_OK);
    if (!tl_test_poll(watched_fired, &w, 5, 30000))
        fail_msg("the lock was not declared lost within 30 s of its deadline");
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.calls, 1);
    assert_true(w.at >= before + 900);
    pthread_mutex_unlock(&w.mu);
    assert_true(tl_lock_is_lost(l));
    tl_lock_free(l);
    tl_manager_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(renews_each_lock_when_it_is_due, setup),
        cmocka_unit_test_setup(relying_on_an_older_write_does_not_renew_at_once, setup),
        cmocka_unit_test_setup(a_lost_renew_marks_the_lock_and_calls_back_once, setup),
        cmocka_unit_test_setup(failing_renewals_lose_the_lock_at_its_deadline, setup),
        cmocka_unit_test_setup(the_margin_is_five_percent_and_at_least_100_ms, setup),
        cmocka_unit_test_setup(a_successful_renew_moves_the_deadline_it_carries, setup),
        cmocka_unit_test_setup(a_stalled_process_finds_its_lock_lost_when_it_resumes, setup),
        cmocka_unit_test_setup(a_renew_answered_after_the_deadline_does_not_revive_the_lock, setup),
        cmocka_unit_test_setup(the_loss_is_declared_while_the_store_hangs, setup),
        cmocka_unit_test_setup(a_claim_answered_past_the_deadline_is_given_back, setup),
        cmocka_unit_test_setup(a_success_between_failures_keeps_the_lock, setup),
        cmocka_unit_test_setup(a_release_racing_a_renew_is_not_a_loss, setup),
        cmocka_unit_test_setup(no_store_counts_as_a_failed_renew, setup),
        cmocka_unit_test_setup(a_thousand_locks_are_renewed_every_interval, setup),
        cmocka_unit_test_setup(the_thread_renews_a_thousand_locks, setup),
        cmocka_unit_test_setup(handles_can_be_freed_while_the_thread_renews, setup),
        cmocka_unit_test_setup(a_short_lock_wakes_an_idle_thread, setup),
        cmocka_unit_test_setup(the_loss_watch_thread_is_on_time_while_a_renew_hangs, setup),
        cmocka_unit_test_setup(a_short_hold_starts_no_loss_watch, setup),
        cmocka_unit_test_setup(a_deadline_before_the_first_renewal_is_kept, setup),
    };

    return cmocka_run_group_tests_name("heartbeat", tests, NULL, NULL);
}
