/*
 * test_claim.c -- the core's claim-next (src/claim.c) on the memory store with an injected
 * clock: patience is time, not attempts; a stealing claimer looks again within a quarter of the
 * lock timeout; a cancelled wait; nothing left to wait for ends at once; a store without
 * claim-next; release-and-claim-next leaves the lock alone when its arguments are wrong.
 * No sleeps: the fake clock moves when the code under test sleeps.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manager.h"
#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

static struct tl_fake_clock fc;
static int space;

static tl_manager *mgr(const char *worker, uint32_t timeout_ms)
{
    char url[64];

    (void)snprintf(url, sizeof(url), "memory:claim-%d", space);
    const struct tl_options o = {.store_url = url,
                                 .worker_id = worker,
                                 .node_id = "n",
                                 .lock_timeout_ms = timeout_ms,
                                 .backoff_initial_ms = 100,
                                 .backoff_max_ms = 800};
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    tl_fake_clock_install(m, &fc);
    assert_int_equal(tl_connect(m), TL_OK);
    return m;
}

static int setup(void **state)
{
    (void)state;
    tl_fake_clock_init(&fc);
    space++;
    return 0;
}

static const char *const keys[] = {"k1", "k2"};

static void hold_both(tl_manager *h, tl_lock **l1, tl_lock **l2)
{
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};

    assert_int_equal(tl_acquire(h, "k1", &ff, l1), TL_OK);
    assert_int_equal(tl_acquire(h, "k2", &ff, l2), TL_OK);
}

/* With 3 retries of 100, 200, 400 ms the patience is 700 ms of waiting, however the waits
 * end: the claimer gives up once that time has passed, not after a count of attempts. */
static void patience_is_the_backoff_schedule_in_time(void **state)
{
    (void)state;
    tl_manager *h = mgr("holder", 60000), *c = mgr("claimer", 60000);
    tl_lock *l1, *l2, *got = NULL;
    hold_both(h, &l1, &l2);

    const struct tl_acquire_opts o = {.strategy = TL_RETRY, .retries = 3};
    uint64_t before = fc.slept_total;
    assert_int_equal(tl_claim_next(c, keys, 2, &o, &got), TL_EBUSY);
    assert_null(got);
    uint64_t slept = fc.slept_total - before;
    assert_true(slept >= 700 - 1);
    assert_true(slept <= 700 * 5 / 4 + 1);
    assert_non_null(strstr(tl_errmsg(c), "2 held"));

    /* A deadline bounds it too. */
    const struct tl_acquire_opts d = {.strategy = TL_RETRY, .deadline_ms = 250};
    before = fc.slept_total;
    assert_int_equal(tl_claim_next(c, keys, 2, &d, &got), TL_EBUSY);
    assert_true(fc.slept_total - before <= 250);

    tl_lock_free(l1);
    tl_lock_free(l2);
    tl_manager_free(h);
    tl_manager_free(c);
}

/* A stealing claimer waits for a holder to go stale: it looks again within a quarter of its
 * lock timeout, not after the backoff's 800 ms. */
static void a_stealing_claimer_looks_again_soon(void **state)
{
    (void)state;
    tl_manager *h = mgr("gone", 400), *c = mgr("thief", 400);
    tl_lock *l1, *l2, *got = NULL;
    hold_both(h, &l1, &l2);
    tl_manager_free(h); /* no heartbeats from now on */

    const struct tl_acquire_opts o = {.strategy = TL_STEAL_STALE, .deadline_ms = 10000};
    size_t first = fc.nslept;
    assert_int_equal(tl_claim_next(c, keys, 2, &o, &got), TL_OK);
    for (size_t i = first; i < fc.nslept; i++)
        assert_true(fc.slept[i] <= 100);
    assert_string_equal(tl_lock_key(got), "k1");
    assert_true(fc.slept_total > 400); /* it waited for the lock to go stale */
    assert_int_equal(tl_release(got, NULL), TL_OK);
    tl_lock_free(got);
    tl_manager_free(c); /* l1 and l2 went with their manager */
}

static void a_cancelled_claim_next_returns_canceled(void **state)
{
    (void)state;
    tl_manager *h = mgr("holder", 60000), *c = mgr("claimer", 60000);
    tl_lock *l1, *l2, *got = NULL;
    hold_both(h, &l1, &l2);

    volatile sig_atomic_t flag = 1;
    const struct tl_acquire_opts o = {.strategy = TL_RETRY, .deadline_ms = 60000, .cancel = &flag};
    assert_int_equal(tl_claim_next(c, keys, 2, &o, &got), TL_ECANCELED);
    assert_null(got);
    assert_true(fc.slept_total < 1000);

    tl_lock_free(l1);
    tl_lock_free(l2);
    tl_manager_free(h);
    tl_manager_free(c);
}

/* Every candidate done: TL_ENOTASK at once, without waiting, whatever the patience. */
static void nothing_left_ends_at_once(void **state)
{
    (void)state;
    tl_manager *c = mgr("claimer", 60000);
    tl_lock *l = NULL, *got = NULL;

    for (int i = 0; i < 2; i++) {
        assert_int_equal(tl_claim_next(c, keys, 2, NULL, &l), TL_OK);
        assert_int_equal(tl_release_with(l, &(struct tl_release_opts){.done = true}), TL_OK);
        tl_lock_free(l);
    }
    const struct tl_acquire_opts o = {.strategy = TL_RETRY, .deadline_ms = 60000};
    uint64_t before = fc.slept_total;
    assert_int_equal(tl_claim_next(c, keys, 2, &o, &got), TL_ENOTASK);
    assert_int_equal(fc.slept_total, before);
    struct tl_metrics mt;
    tl_metrics_get(c, &mt, sizeof(mt));
    assert_int_equal(mt.tasks_done, 2);
    assert_int_equal(mt.failed_acquisitions, 0); /* nothing left is not a failure */
    tl_manager_free(c);
}

/* The memory store's ops without claim-next: the calls say what is missing. */
static struct tl_store_ops bare;

static void a_store_without_claim_next_says_so(void **state)
{
    (void)state;
    tl_manager *c = tl_manager_new(
        &(struct tl_options){.store_url = "memory:bare", .worker_id = "w", .node_id = "n"});
    bare = tl__store_memory;
    bare.claim_next = NULL;
    bare.finish = NULL;
    bare.reopen = NULL;
    bare.done_list = NULL;
    tl__manager_set_store_ops(c, &bare);
    tl_lock *got = NULL;

    assert_int_equal(tl_claim_next(c, keys, 2, NULL, &got), TL_ENOTSUP);
    assert_non_null(strstr(tl_errmsg(c), "claim the next task"));
    assert_int_equal(tl_reopen(c, "k1", NULL), TL_ENOTSUP);
    struct tl_done **d = NULL;
    size_t n = 9;
    assert_int_equal(tl_list_done(c, NULL, &d, &n), TL_ENOTSUP);
    assert_null(d);
    assert_int_equal(n, 0);
    assert_int_equal(tl_acquire(c, "k1", NULL, &got), TL_OK);
    assert_int_equal(tl_release_with(got, &(struct tl_release_opts){.done = true}), TL_ENOTSUP);
    assert_false(tl_lock_is_released(got));
    assert_int_equal(tl_release(got, NULL), TL_OK);
    assert_true(tl_lock_is_released(got));
    tl_lock_free(got);
    tl_manager_free(c);
}

static void arguments_are_checked_before_anything_changes(void **state)
{
    (void)state;
    tl_manager *c = mgr("claimer", 60000);
    tl_lock *l = NULL, *got = NULL;

    assert_int_equal(tl_claim_next(NULL, keys, 2, NULL, &got), TL_EINVAL);
    assert_int_equal(tl_claim_next(c, keys, 2, NULL, NULL), TL_EINVAL);
    assert_int_equal(tl_claim_next(c, NULL, 2, NULL, &got), TL_EINVAL);
    const char *with_null[] = {"k1", NULL};
    assert_int_equal(tl_claim_next(c, with_null, 2, NULL, &got), TL_EINVAL);
    assert_int_equal(tl_claim_next_label(c, NULL, NULL, &got), TL_EINVAL);
    assert_int_equal(tl_claim_next_label(c, "", NULL, &got), TL_EINVAL);
    /* The memory store has no labels. */
    assert_int_equal(tl_claim_next_label(c, "ready", NULL, &got), TL_ENOTSUP);
    assert_int_equal(tl_reopen(c, "bad key", NULL), TL_EINVAL);

    assert_int_equal(tl_claim_next(c, keys, 2, NULL, &l), TL_OK);
    const struct tl_acquire_opts force = {.strategy = TL_FORCE_ACQUIRE};
    assert_int_equal(tl_release_claim_next(l, NULL, true, keys, 2, &force, &got), TL_EINVAL);
    assert_false(tl_lock_is_released(l));
    assert_int_equal(tl_release_claim_next(l, NULL, true, keys, 0, NULL, &got), TL_ENOTASK);
    assert_true(tl_lock_is_released(l));
    assert_null(got);
    tl_lock_free(l);
    tl_manager_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(patience_is_the_backoff_schedule_in_time, setup),
        cmocka_unit_test_setup(a_stealing_claimer_looks_again_soon, setup),
        cmocka_unit_test_setup(a_cancelled_claim_next_returns_canceled, setup),
        cmocka_unit_test_setup(nothing_left_ends_at_once, setup),
        cmocka_unit_test_setup(a_store_without_claim_next_says_so, setup),
        cmocka_unit_test_setup(arguments_are_checked_before_anything_changes, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
