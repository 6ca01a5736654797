/*
 * test_claim.c -- the core's claim-next (src/claim.c) on the memory store with an injected
 * clock: patience is time, not attempts; a stealing claimer looks again within a quarter of the
 * lock timeout; a cancelled wait; nothing left to wait for ends at once; a store without
 * claim-next; release-and-claim-next leaves the lock alone when its arguments are wrong; a long
 * list is claimed from in windows (a counting wrapper of the memory store says what each call
 * was given).
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

/* ---- windows over a long list ---- */

/* The memory store, counting what the core gives its claim-next calls. */
static struct tl_store_ops counting;
static struct {
    size_t calls;
    size_t whole;   /* calls given every candidate */
    size_t total;   /* candidates given, over all calls */
    size_t list;    /* the length of the whole list */
    size_t look_at; /* 0, or the store looks at this many candidates only (a cut) */
} seen;

static void count_call(const struct tl_candidates *c)
{
    seen.calls++;
    seen.total += c->nkeys;
    if (c->nkeys == seen.list)
        seen.whole++;
}

static tl_status counting_claim_next(struct tl_store *s, const struct tl_claim *req,
                                     const struct tl_candidates *c, struct tl_claim_result *out,
                                     size_t *won, struct tl_next_tally *tally)
{
    count_call(c);
    if (seen.look_at != 0 && c->nkeys > seen.look_at) {
        struct tl_candidates few = *c;
        few.nkeys = seen.look_at;
        tl_status st = tl__store_memory.claim_next(s, req, &few, out, won, tally);
        if (st == TL_EBUSY) {
            tally->held += (uint32_t)(c->nkeys - seen.look_at);
            tally->cut = true;
        }
        return st;
    }
    return tl__store_memory.claim_next(s, req, c, out, won, tally);
}

static tl_status counting_finish(struct tl_store *s, const struct tl_finish *f,
                                 struct tl_finish_result *out)
{
    if (f->candidates != NULL)
        count_call(f->candidates);
    return tl__store_memory.finish(s, f, out);
}

static tl_manager *counting_mgr(const char *worker, size_t list)
{
    char url[64];
    (void)snprintf(url, sizeof(url), "memory:claim-%d", space);
    const struct tl_options o = {.store_url = url, .worker_id = worker, .node_id = "n"};
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    counting = tl__store_memory;
    counting.claim_next = counting_claim_next;
    counting.finish = counting_finish;
    tl__manager_set_store_ops(m, &counting);
    tl_fake_clock_install(m, &fc);
    assert_int_equal(tl_connect(m), TL_OK);
    memset(&seen, 0, sizeof(seen));
    seen.list = list;
    return m;
}

#define LONG_LIST 1000

static char long_buf[LONG_LIST][16];
static const char *long_keys[LONG_LIST];

static void long_list(void)
{
    for (size_t i = 0; i < LONG_LIST; i++) {
        (void)snprintf(long_buf[i], sizeof(long_buf[i]), "t%04zu", i);
        long_keys[i] = long_buf[i];
    }
}

/* One worker drains 1,000 tasks in order: each call is given a window of the list, not all of
 * it (which would be 1,000,000 candidates in all); the whole list only now and then, and at
 * the end, to be sure nothing is left. */
static void a_drained_queue_costs_a_window_per_call(void **state)
{
    (void)state;
    long_list();
    tl_manager *w = counting_mgr("drainer", LONG_LIST);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    tl_lock *l = NULL, *next = NULL;

    assert_int_equal(tl_claim_next(w, long_keys, LONG_LIST, &ff, &l), TL_OK);
    for (size_t i = 0;; i++) {
        assert_non_null(l);
        assert_string_equal(tl_lock_key(l), long_keys[i]);
        tl_status st = tl_release_claim_next(l, NULL, true, long_keys, LONG_LIST, &ff, &next);
        tl_lock_free(l);
        l = next;
        if (i + 1 == LONG_LIST) {
            assert_int_equal(st, TL_ENOTASK);
            assert_non_null(strstr(tl_errmsg(w), "every candidate (1000) is done"));
            break;
        }
        assert_int_equal(st, TL_OK);
    }
    assert_null(l);
    assert_true(seen.calls >= LONG_LIST);
    assert_true(seen.whole <= 2); /* the first call, and the last (the clock did not move) */
    assert_true(seen.total <= (size_t)LONG_LIST * 32 + seen.whole * LONG_LIST);
    assert_true(seen.total < 100000);
    tl_manager_free(w);
}

/* The first windows all held: the attempt goes on to the candidates after them, in order. */
static void windows_go_on_past_held_candidates(void **state)
{
    (void)state;
    long_list();
    tl_manager *h = mgr("holder", 60000);
    tl_manager *c = counting_mgr("claimer", LONG_LIST);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    tl_lock *held[80], *got = NULL, *next = NULL;

    for (size_t i = 0; i < 80; i++)
        assert_int_equal(tl_acquire(h, long_keys[i], &ff, &held[i]), TL_OK);
    /* The first call over the list asks about all of it. */
    assert_int_equal(tl_claim_next(c, long_keys, LONG_LIST, &ff, &got), TL_OK);
    assert_string_equal(tl_lock_key(got), long_keys[80]);
    assert_int_equal(seen.whole, 1);

    /* Then windows: three of them, not the whole list. */
    seen.total = seen.whole = 0;
    tl_lock *second = NULL;
    assert_int_equal(tl_claim_next(c, long_keys, LONG_LIST, &ff, &second), TL_OK);
    assert_string_equal(tl_lock_key(second), long_keys[81]);
    assert_int_equal(seen.whole, 0);
    assert_true(seen.total < 200);

    /* Release-and-claim-next: its own call's window is held, the next ones are not. */
    seen.total = 0;
    assert_int_equal(tl_release_claim_next(got, NULL, true, long_keys, LONG_LIST, &ff, &next),
                     TL_OK);
    assert_string_equal(tl_lock_key(next), long_keys[82]);
    assert_int_equal(seen.whole, 0);
    assert_true(seen.total < 200);
    tl_lock_free(got);
    assert_int_equal(tl_release_with(second, &(struct tl_release_opts){.done = true}), TL_OK);
    tl_lock_free(second);

    /* Everything held: busy, said by a call over the whole list (80 are done or held). */
    for (size_t i = 83; i < LONG_LIST; i++) {
        tl_lock *l = NULL;
        assert_int_equal(tl_acquire(h, long_keys[i], &ff, &l), TL_OK);
        assert_int_equal(tl_release_with(l, &(struct tl_release_opts){.done = true}), TL_OK);
        tl_lock_free(l);
    }
    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next(c, long_keys, LONG_LIST, &ff, &none), TL_EBUSY);
    assert_non_null(strstr(tl_errmsg(c), "81 held")); /* 0-79, and 82 */

    assert_int_equal(tl_release(next, NULL), TL_OK);
    tl_lock_free(next);
    for (size_t i = 0; i < 80; i++) {
        assert_int_equal(tl_release(held[i], NULL), TL_OK);
        tl_lock_free(held[i]);
    }
    tl_manager_free(c);
    tl_manager_free(h);
}

/* A task reopened by another manager after this one saw it done is claimed again: before this
 * one says nothing is left, and at its first call a second (TL_NEXT_REFRESH_MS) after it last
 * asked about the whole list. */
static void a_task_reopened_elsewhere_comes_back(void **state)
{
    (void)state;
    long_list();
    tl_manager *w = counting_mgr("worker", LONG_LIST);
    tl_manager *r = mgr("reopener", 60000);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    tl_lock *l = NULL, *next = NULL;

    assert_int_equal(tl_claim_next(w, long_keys, LONG_LIST, &ff, &l), TL_OK);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(tl_release_claim_next(l, NULL, true, long_keys, LONG_LIST, &ff, &next),
                         TL_OK);
        tl_lock_free(l);
        l = next;
    }
    bool was = false;
    assert_int_equal(tl_reopen(r, long_keys[3], &was), TL_OK);
    assert_true(was);
    /* Within the second: the windows go on past it (the clock has not moved). */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tl_release_claim_next(l, NULL, true, long_keys, LONG_LIST, &ff, &next),
                         TL_OK);
        tl_lock_free(l);
        l = next;
        assert_string_not_equal(tl_lock_key(l), long_keys[3]);
    }
    tl_fake_clock_advance(&fc, 1000);
    assert_int_equal(tl_release_claim_next(l, NULL, true, long_keys, LONG_LIST, &ff, &next), TL_OK);
    tl_lock_free(l);
    l = next;
    assert_string_equal(tl_lock_key(l), long_keys[3]);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);

    /* Reopened again, and the rest done elsewhere: the whole list is asked before "none". */
    assert_int_equal(tl_reopen(r, long_keys[3], &was), TL_OK);
    for (size_t i = 0; i < LONG_LIST; i++) {
        if (i == 3)
            continue;
        tl_lock *d = NULL;
        if (tl_acquire(r, long_keys[i], &ff, &d) == TL_OK) {
            assert_int_equal(tl_release_with(d, &(struct tl_release_opts){.done = true}), TL_OK);
            tl_lock_free(d);
        }
    }
    assert_int_equal(tl_claim_next(w, long_keys, LONG_LIST, &ff, &l), TL_OK);
    assert_string_equal(tl_lock_key(l), long_keys[3]);
    assert_int_equal(tl_release_with(l, &(struct tl_release_opts){.done = true}), TL_OK);
    tl_lock_free(l);
    assert_int_equal(tl_claim_next(w, long_keys, LONG_LIST, &ff, &l), TL_ENOTASK);
    tl_manager_free(r);
    tl_manager_free(w);
}

/* A store that looks at a few candidates per call (GitHub) ends the attempt: the core does not
 * go on to the next window. */
static void a_cut_store_call_ends_the_attempt(void **state)
{
    (void)state;
    long_list();
    tl_manager *h = mgr("holder", 60000);
    tl_manager *c = counting_mgr("claimer", LONG_LIST);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    tl_lock *held[3], *got = NULL;

    for (size_t i = 0; i < 3; i++)
        assert_int_equal(tl_acquire(h, long_keys[i], &ff, &held[i]), TL_OK);
    seen.look_at = 3;
    assert_int_equal(tl_claim_next(c, long_keys, LONG_LIST, &ff, &got), TL_EBUSY);
    assert_int_equal(seen.calls, 1);
    seen.look_at = 0;
    assert_int_equal(tl_claim_next(c, long_keys, LONG_LIST, &ff, &got), TL_OK);
    assert_string_equal(tl_lock_key(got), long_keys[3]);
    assert_int_equal(tl_release(got, NULL), TL_OK);
    tl_lock_free(got);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(tl_release(held[i], NULL), TL_OK);
        tl_lock_free(held[i]);
    }
    tl_manager_free(c);
    tl_manager_free(h);
}

/* A waiting claimer waits on the candidates not known done only: the wrapper's wait_any says
 * what it was given, and releases the held task as the "something came free". */
static tl_lock *wait_release;
static size_t wait_given;

static tl_status releasing_wait_any(struct tl_store *s, const struct tl_candidates *c,
                                    uint32_t timeout_ms)
{
    (void)s;
    (void)timeout_ms;
    wait_given = c->nkeys;
    if (wait_release != NULL) {
        assert_int_equal(tl_release(wait_release, NULL), TL_OK);
        tl_lock_free(wait_release);
        wait_release = NULL;
    }
    return TL_OK;
}

static void a_waiting_claimer_waits_on_the_open_candidates(void **state)
{
    (void)state;
    long_list();
    char url[64];
    (void)snprintf(url, sizeof(url), "memory:claim-%d", space);
    tl_manager *h = tl_manager_new(&(struct tl_options){
        .store_url = url, .worker_id = "holder", .node_id = "n", .lock_timeout_ms = 60000});
    const struct tl_options o = {.store_url = url, .worker_id = "waiter", .node_id = "n"};
    tl_manager *w = tl_manager_new(&o);
    assert_non_null(h);
    assert_non_null(w);
    counting = tl__store_memory;
    counting.wait_any = releasing_wait_any;
    tl__manager_set_store_ops(w, &counting);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};

    for (size_t i = 0; i < LONG_LIST; i++) {
        tl_lock *l = NULL;
        assert_int_equal(tl_acquire(h, long_keys[i], &ff, &l), TL_OK);
        if (i == 500) {
            wait_release = l;
            continue;
        }
        assert_int_equal(tl_release_with(l, &(struct tl_release_opts){.done = true}), TL_OK);
        tl_lock_free(l);
    }
    tl_lock *got = NULL;
    const struct tl_acquire_opts wait = {.strategy = TL_RETRY, .deadline_ms = 60000};
    assert_int_equal(tl_claim_next(w, long_keys, LONG_LIST, &wait, &got), TL_OK);
    assert_string_equal(tl_lock_key(got), long_keys[500]);
    assert_int_equal(wait_given, 1);
    assert_null(wait_release);
    assert_int_equal(tl_release(got, NULL), TL_OK);
    tl_lock_free(got);
    tl_manager_free(w);
    tl_manager_free(h);
}

/* The remembered list is compared key by key, not by pointer: a list changed in place is a
 * new list, checked again (here it has a key twice). */
static void a_list_changed_in_place_is_checked_again(void **state)
{
    (void)state;
    long_list();
    tl_manager *c = counting_mgr("claimer", LONG_LIST);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    tl_lock *l = NULL;

    assert_int_equal(tl_claim_next(c, long_keys, LONG_LIST, &ff, &l), TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    (void)snprintf(long_buf[LONG_LIST - 1], sizeof(long_buf[0]), "%s", long_keys[0]);
    assert_int_equal(tl_claim_next(c, long_keys, LONG_LIST, &ff, &l), TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(c), "twice"));
    /* A key shortened to a prefix of what it was. */
    long_list();
    long_buf[500][4] = '\0';
    assert_int_equal(tl_claim_next(c, long_keys, LONG_LIST, &ff, &l), TL_OK);
    assert_int_equal(seen.whole, 2); /* a new list: asked about whole again */
    assert_int_equal(tl_release(l, NULL), TL_OK);
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
        cmocka_unit_test_setup(a_drained_queue_costs_a_window_per_call, setup),
        cmocka_unit_test_setup(windows_go_on_past_held_candidates, setup),
        cmocka_unit_test_setup(a_task_reopened_elsewhere_comes_back, setup),
        cmocka_unit_test_setup(a_cut_store_call_ends_the_attempt, setup),
        cmocka_unit_test_setup(a_waiting_claimer_waits_on_the_open_candidates, setup),
        cmocka_unit_test_setup(a_list_changed_in_place_is_checked_again, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
