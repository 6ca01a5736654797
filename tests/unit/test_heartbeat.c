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

    tl_fake_clock_advance(&fc, 18000); /* t = 20 s: both due */
    assert_int_equal(round_now(m), 2);
    assert_int_equal(heartbeat_at(m, "slow"), fc.now_ms);
    assert_int_equal(metrics(m).heartbeats_sent, 3);
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

static void failing_renewals_lose_the_lock_after_its_timeout(void **state)
{
    struct lost_count lost = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *m = mgr(&lost);
    tl_lock *l = acquire(m, "k", 6000);
    int64_t start = fc.mono_ms;
    int rounds = 0;

    (void)state;
    tl_fake_set_renew_errors(1000);
    tl_fake_clock_advance(&fc, 2000); /* first due */
    for (;;) {
        size_t n = round_now(m);
        if (n == 0) {
            tl_fake_clock_advance(&fc, 100);
            continue;
        }
        rounds++;
        if (fc.mono_ms - start < 6000) {
            assert_false(tl_lock_is_lost(l)); /* not before the timeout */
            assert_int_equal(lost_calls(&lost), 0);
        } else {
            assert_true(tl_lock_is_lost(l)); /* right at it */
            break;
        }
        tl_fake_clock_advance(&fc, 100);
    }
    assert_int_equal(fc.mono_ms - start, 6000);
    assert_int_equal(lost_calls(&lost), 1);
    /* After the first failure it retried every quarter interval: 2.0, 2.5, ... 6.0 s. */
    assert_int_equal(rounds, 9);
    assert_int_equal(metrics(m).heartbeats_failed, 9);
    assert_int_equal(metrics(m).locks_lost, 1);
    tl_lock_free(l);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(renews_each_lock_when_it_is_due, setup),
        cmocka_unit_test_setup(a_lost_renew_marks_the_lock_and_calls_back_once, setup),
        cmocka_unit_test_setup(failing_renewals_lose_the_lock_after_its_timeout, setup),
        cmocka_unit_test_setup(a_success_between_failures_keeps_the_lock, setup),
        cmocka_unit_test_setup(a_release_racing_a_renew_is_not_a_loss, setup),
        cmocka_unit_test_setup(no_store_counts_as_a_failed_renew, setup),
        cmocka_unit_test_setup(a_thousand_locks_are_renewed_every_interval, setup),
        cmocka_unit_test_setup(the_thread_renews_a_thousand_locks, setup),
        cmocka_unit_test_setup(handles_can_be_freed_while_the_thread_renews, setup),
        cmocka_unit_test_setup(a_short_lock_wakes_an_idle_thread, setup),
    };

    return cmocka_run_group_tests_name("heartbeat", tests, NULL, NULL);
}
