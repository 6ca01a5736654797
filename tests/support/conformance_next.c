/*
 * conformance_next.c -- the store contract's claim-next and done markers (store.h, version 4),
 * checked against any store that has them: keys 60-84 of the suite (82-84: the done marks a
 * store reports to the core).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conformance.h"
#include "manager.h"
#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

static const struct tl_conformance *conf;

#define LONG_TIMEOUT_MS 60000
#define EVENT_LIMIT_MS  30000

/* Keys n..n+count-1 of the suite, in `buf` (count <= 16), pointed at by `keys`. */
struct keyset {
    char buf[16][64];
    const char *keys[16];
    size_t n;
};

static void keyset(struct keyset *ks, int first, size_t count)
{
    ks->n = count;
    for (size_t i = 0; i < count; i++)
        ks->keys[i] = tl_conformance_key(conf, first + (int)i, ks->buf[i]);
}

static const struct tl_acquire_opts fail_fast = {.strategy = TL_FAIL_FAST};

static tl_lock *must_claim_next(tl_manager *m, const struct keyset *ks,
                                const struct tl_acquire_opts *o)
{
    tl_lock *l = NULL;
    tl_status st = tl_claim_next(m, ks->keys, ks->n, o ? o : &fail_fast, &l);

    if (st != TL_OK)
        fail_msg("claim-next by %s: %s: %s", tl_manager_worker_id(m), tl_strerror(st),
                 tl_errmsg(m));
    assert_non_null(l);
    return l;
}

static tl_lock *must_acquire(tl_manager *m, const char *k)
{
    tl_lock *l = NULL;

    if (tl_acquire(m, k, &fail_fast, &l) != TL_OK)
        fail_msg("acquire %s: %s", k, tl_errmsg(m));
    return l;
}

static void release_done(tl_lock *l, const char *summary)
{
    const struct tl_release_opts o = {.summary = summary, .done = true};

    assert_int_equal(tl_release_with(l, &o), TL_OK);
    tl_lock_free(l);
}

/* Reopens every key of `ks`: stores shared between runs start clean. */
static void reopen_all(tl_manager *m, const struct keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        if (tl_reopen(m, ks->keys[i], NULL) != TL_OK)
            fail_msg("reopen %s: %s", ks->keys[i], tl_errmsg(m));
}

static bool has_event(tl_manager *m, const char *k, tl_event_kind kind, uint64_t token)
{
    struct tl_event **ev = NULL;
    size_t n = 0;
    bool found = false;

    if (tl_history(m, k, 50, &ev, &n) == TL_ENOTSUP)
        return true; /* a store without an audit trail */
    for (size_t i = 0; i < n; i++)
        found = found || (ev[i]->kind == kind && (token == 0 || ev[i]->token == token));
    tl_event_array_free(ev, n);
    return found;
}

static void claims_the_first_free_candidate_in_order(void **state)
{
    (void)state;
    struct keyset ks;
    keyset(&ks, 60, 3);
    tl_manager *a = tl__conformance_mgr("next-a", LONG_TIMEOUT_MS);
    tl_manager *b = tl__conformance_mgr("next-b", LONG_TIMEOUT_MS);
    reopen_all(a, &ks);

    tl_lock *held = must_acquire(a, ks.keys[0]);
    tl_lock *l1 = must_claim_next(b, &ks, NULL);
    assert_string_equal(tl_lock_key(l1), ks.keys[1]);
    assert_true(tl_lock_token(l1) > 0);
    tl_lock *l2 = must_claim_next(b, &ks, NULL);
    assert_string_equal(tl_lock_key(l2), ks.keys[2]);

    /* Everything held: busy, and the message counts them. */
    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next(b, ks.keys, ks.n, &fail_fast, &none), TL_EBUSY);
    assert_null(none);
    assert_non_null(strstr(tl_errmsg(b), "3 held"));

    /* A freed key is claimed again, with a larger token. */
    uint64_t t1 = tl_lock_token(l1);
    assert_int_equal(tl_release(l1, NULL), TL_OK);
    tl_lock *again = must_claim_next(a, &ks, NULL);
    assert_string_equal(tl_lock_key(again), ks.keys[1]);
    assert_true(tl_lock_token(again) > t1);

    /* Arguments: a repeated key, force, a priority, a bad key; nothing given. */
    const char *dup[] = {ks.keys[0], ks.keys[1], ks.keys[0]};
    assert_int_equal(tl_claim_next(b, dup, 3, &fail_fast, &none), TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(b), "twice"));
    const struct tl_acquire_opts force = {.strategy = TL_FORCE_ACQUIRE};
    assert_int_equal(tl_claim_next(b, ks.keys, ks.n, &force, &none), TL_EINVAL);
    const struct tl_acquire_opts prio = {.strategy = TL_FAIL_FAST, .priority = 5};
    assert_int_equal(tl_claim_next(b, ks.keys, ks.n, &prio, &none), TL_EINVAL);
    const char *bad[] = {"has space"};
    assert_int_equal(tl_claim_next(b, bad, 1, &fail_fast, &none), TL_EINVAL);
    assert_int_equal(tl_claim_next(b, ks.keys, 0, &fail_fast, &none), TL_ENOTASK);
    assert_null(none);

    assert_int_equal(tl_release(held, NULL), TL_OK);
    assert_int_equal(tl_release(again, NULL), TL_OK);
    assert_int_equal(tl_release(l2, NULL), TL_OK);
    tl_lock_free(held);
    tl_lock_free(again);
    tl_lock_free(l1);
    tl_lock_free(l2);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void done_tasks_are_skipped_until_reopened(void **state)
{
    (void)state;
    struct keyset ks, first;
    keyset(&ks, 63, 2);
    keyset(&first, 63, 1);
    tl_manager *a = tl__conformance_mgr("done-a", LONG_TIMEOUT_MS);
    reopen_all(a, &ks);

    tl_lock *l = must_claim_next(a, &ks, NULL);
    assert_string_equal(tl_lock_key(l), ks.keys[0]);
    uint64_t token = tl_lock_token(l);
    release_done(l, "built and shipped");

    /* The marker: who, token, summary. */
    struct tl_done **d = NULL;
    size_t n = 0;
    assert_int_equal(tl_list_done(a, ks.keys[0], &d, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(d[0]->key, ks.keys[0]);
    assert_string_equal(d[0]->worker_id, "done-a");
    assert_int_equal(d[0]->token, token);
    assert_string_equal(d[0]->summary, "built and shipped");
    assert_true(d[0]->done_at_ms > 0);
    tl_done_array_free(d, n);
    assert_true(has_event(a, ks.keys[0], TL_EVENT_DONE, token));

    /* Claim-next skips it; alone, nothing is left. */
    tl_lock *l2 = must_claim_next(a, &ks, NULL);
    assert_string_equal(tl_lock_key(l2), ks.keys[1]);
    assert_int_equal(tl_release(l2, NULL), TL_OK);
    tl_lock_free(l2);
    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next(a, first.keys, 1, &fail_fast, &none), TL_ENOTASK);
    assert_non_null(strstr(tl_errmsg(a), "done"));
    /* Waiting does not help a done task: no wait, TL_ENOTASK at once. */
    const struct tl_acquire_opts wait = {.strategy = TL_RETRY, .deadline_ms = 60000};
    assert_int_equal(tl_claim_next(a, first.keys, 1, &wait, &none), TL_ENOTASK);

    /* A plain acquire ignores the marker, and a plain release leaves it. */
    tl_lock *plain = must_acquire(a, ks.keys[0]);
    assert_int_equal(tl_release(plain, NULL), TL_OK);
    tl_lock_free(plain);
    assert_int_equal(tl_list_done(a, ks.keys[0], &d, &n), TL_OK);
    assert_int_equal(n, 1);
    tl_done_array_free(d, n);

    /* Reopen: offered again; reopening twice is no error. */
    bool was = false;
    assert_int_equal(tl_reopen(a, ks.keys[0], &was), TL_OK);
    assert_true(was);
    assert_int_equal(tl_reopen(a, ks.keys[0], &was), TL_OK);
    assert_false(was);
    assert_true(has_event(a, ks.keys[0], TL_EVENT_REOPENED, 0));
    assert_int_equal(tl_list_done(a, ks.keys[0], &d, &n), TL_OK);
    assert_int_equal(n, 0);
    tl_done_array_free(d, n);
    tl_lock *l3 = must_claim_next(a, &first, NULL);
    assert_string_equal(tl_lock_key(l3), ks.keys[0]);

    /* Done by token, without the handle (the CLI's release --done). */
    const struct tl_release_opts o = {.summary = "by token", .done = true};
    assert_int_equal(tl_release_token_with(a, ks.keys[0], tl_lock_token(l3), &o), TL_OK);
    tl_lock_free(l3);
    assert_int_equal(tl_claim_next(a, first.keys, 1, &fail_fast, &none), TL_ENOTASK);
    assert_int_equal(tl_list_done(a, NULL, &d, &n), TL_OK);
    bool listed = false;
    for (size_t i = 0; i < n; i++)
        listed = listed || strcmp(d[i]->key, ks.keys[0]) == 0;
    assert_true(listed);
    tl_done_array_free(d, n);
    reopen_all(a, &ks);
    tl_manager_free(a);
}

/* A free key with a live waiter in its line is not free for claim-next. */
static void a_queued_key_is_skipped(void **state)
{
    (void)state;
    struct keyset ks;
    keyset(&ks, 65, 1);
    tl_manager *a = tl__conformance_mgr("queue-a", LONG_TIMEOUT_MS);
    reopen_all(a, &ks);
    if (a->store->ops->leave == NULL) {
        tl_manager_free(a);
        skip();
    }
    tl_lock *held = must_acquire(a, ks.keys[0]);

    /* A waiter joins the line through the store itself. */
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE];
    assert_int_equal(tl__store_open(conf->url, NULL, &tl__real_clock, &a->log, &s, err), TL_OK);
    const struct tl_claim join = {
        .key = ks.keys[0],
        .worker_id = "queue-w",
        .node_id = "n",
        .task_info = "{}",
        .lock_timeout_ms = LONG_TIMEOUT_MS,
        .waiter_id = "0123456789abcdef0123456789abcdef",
        .waiter_timeout_ms = LONG_TIMEOUT_MS,
    };
    struct tl_claim_result res;
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->claim(s, &join, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    assert_int_equal(tl_release(held, NULL), TL_OK);
    tl_lock_free(held);

    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next(a, ks.keys, 1, &fail_fast, &none), TL_EBUSY);
    assert_non_null(strstr(tl_errmsg(a), "1 with waiters"));

    assert_int_equal(s->ops->leave(s, ks.keys[0], join.waiter_id), TL_OK);
    tl__store_close(s);
    tl_lock *l = must_claim_next(a, &ks, NULL);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(a);
}

static void a_stale_task_is_taken_only_when_stealing(void **state)
{
    (void)state;
    struct keyset ks;
    keyset(&ks, 66, 1);
    tl_manager *gone = tl__conformance_mgr("stale-holder", tl__conformance_short_timeout());
    tl_manager *b = tl__conformance_mgr("stale-taker", LONG_TIMEOUT_MS);
    reopen_all(b, &ks);

    tl_lock *old = must_acquire(gone, ks.keys[0]);
    uint64_t old_token = tl_lock_token(old);
    tl_manager_free(gone); /* stops heartbeating; the lock stays */
    tl__conformance_make_stale(b, ks.keys[0]);

    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next(b, ks.keys, 1, &fail_fast, &none), TL_EBUSY);
    const struct tl_acquire_opts steal = {.strategy = TL_STEAL_STALE, .retries = TL_NO_RETRIES};
    tl_lock *l = must_claim_next(b, &ks, &steal);
    assert_true(tl_lock_token(l) > old_token);
    struct tl_metrics mt;
    tl_metrics_get(b, &mt, sizeof(mt));
    assert_int_equal(mt.stale_locks_claimed, 1);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(b);
}

/* ---- concurrent claimers ---- */

#define RACE_KEYS    10
#define RACE_THREADS 6

struct race {
    const struct keyset *ks;
    atomic_int claims[RACE_KEYS]; /* times each key was won */
    atomic_int holders[RACE_KEYS];
    atomic_int overlap;
};

struct racer {
    pthread_t thread;
    struct race *race;
    int id;
    tl_status last;
    char err[TL_ERRMSG_SIZE];
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    char worker[32];

    (void)snprintf(worker, sizeof(worker), "racer-%d", r->id);
    const struct tl_options o = {.store_url = conf->url,
                                 .worker_id = worker,
                                 .lock_timeout_ms = LONG_TIMEOUT_MS,
                                 .backoff_initial_ms = 5,
                                 .backoff_max_ms = 20};
    tl_manager *m = tl_manager_new(&o);
    const struct tl_acquire_opts wait = {.strategy = TL_RETRY, .deadline_ms = EVENT_LIMIT_MS};

    if (m == NULL || tl_connect(m) != TL_OK) {
        r->last = TL_ESTORE;
        (void)snprintf(r->err, sizeof(r->err), "connect: %s", m ? tl_errmsg(m) : "oom");
        tl_manager_free(m);
        return NULL;
    }
    for (;;) {
        tl_lock *l = NULL;
        r->last = tl_claim_next(m, r->race->ks->keys, r->race->ks->n, &wait, &l);
        if (r->last != TL_OK)
            break;
        size_t i = 0;
        while (i < r->race->ks->n && strcmp(r->race->ks->keys[i], tl_lock_key(l)) != 0)
            i++;
        if (atomic_fetch_add(&r->race->holders[i], 1) != 0)
            atomic_fetch_add(&r->race->overlap, 1);
        atomic_fetch_add(&r->race->claims[i], 1);
        atomic_fetch_sub(&r->race->holders[i], 1);
        const struct tl_release_opts done = {.done = true};
        tl_status st = tl_release_with(l, &done);
        tl_lock_free(l);
        if (st != TL_OK) {
            r->last = st;
            break;
        }
    }
    if (r->last != TL_ENOTASK)
        (void)snprintf(r->err, sizeof(r->err), "%s", tl_errmsg(m));
    tl_manager_free(m);
    return NULL;
}

static void concurrent_claimers_take_each_task_once(void **state)
{
    (void)state;
    struct keyset ks;
    keyset(&ks, 67, RACE_KEYS);
    tl_manager *a = tl__conformance_mgr("race-observer", LONG_TIMEOUT_MS);
    reopen_all(a, &ks);

    struct race race = {.ks = &ks};
    struct racer r[RACE_THREADS];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < RACE_THREADS; i++) {
        r[i].race = &race;
        r[i].id = i;
        assert_int_equal(pthread_create(&r[i].thread, NULL, racer_main, &r[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(pthread_join(r[i].thread, NULL), 0);
        if (r[i].last != TL_ENOTASK)
            fail_msg("racer %d ended with %s: %s", i, tl_strerror(r[i].last), r[i].err);
    }
    for (int i = 0; i < RACE_KEYS; i++)
        assert_int_equal(atomic_load(&race.claims[i]), 1);
    assert_int_equal(atomic_load(&race.overlap), 0);
    reopen_all(a, &ks);
    tl_manager_free(a);
}

static void release_and_claim_next_in_one_call(void **state)
{
    (void)state;
    struct keyset ks;
    keyset(&ks, 77, 3);
    tl_manager *a = tl__conformance_mgr("relnext-a", LONG_TIMEOUT_MS);
    reopen_all(a, &ks);

    tl_lock *l = must_claim_next(a, &ks, NULL);
    assert_string_equal(tl_lock_key(l), ks.keys[0]);
    for (size_t i = 1; i <= ks.n; i++) {
        tl_lock *next = NULL;
        uint64_t token = tl_lock_token(l);
        tl_status st = tl_release_claim_next(l, "step", true, ks.keys, ks.n, &fail_fast, &next);
        assert_true(tl_lock_is_released(l));
        assert_true(has_event(a, tl_lock_key(l), TL_EVENT_DONE, token));
        tl_lock_free(l);
        if (i == ks.n) {
            assert_int_equal(st, TL_ENOTASK);
            assert_null(next);
            break;
        }
        if (st != TL_OK)
            fail_msg("release-and-claim-next %zu: %s: %s", i, tl_strerror(st), tl_errmsg(a));
        assert_string_equal(tl_lock_key(next), ks.keys[i]);
        assert_false(tl_lock_is_released(next));
        l = next;
    }
    struct tl_metrics mt;
    tl_metrics_get(a, &mt, sizeof(mt));
    assert_int_equal(mt.tasks_done, 3);
    assert_int_equal(mt.locks_held, 0);

    /* Not done: the released key is offered again at once. */
    reopen_all(a, &ks);
    l = must_claim_next(a, &ks, NULL);
    tl_lock *next = NULL;
    assert_int_equal(tl_release_claim_next(l, NULL, false, ks.keys, ks.n, &fail_fast, &next),
                     TL_OK);
    assert_string_equal(tl_lock_key(next), ks.keys[0]);
    assert_true(tl_lock_token(next) > tl_lock_token(l));
    tl_lock_free(l);

    /* Bad candidates: refused, and the lock is not released. */
    const char *dup[] = {ks.keys[1], ks.keys[1]};
    tl_lock *none = NULL;
    assert_int_equal(tl_release_claim_next(next, NULL, true, dup, 2, &fail_fast, &none), TL_EINVAL);
    assert_false(tl_lock_is_released(next));
    assert_int_equal(tl_release(next, NULL), TL_OK);
    tl_lock_free(next);
    reopen_all(a, &ks);
    tl_manager_free(a);
}

/* The store tells the core which candidates it found done (struct tl_candidates done_seen),
 * and never marks one that is not: the core leaves marked ones out of its later calls. */
static void the_store_marks_the_done_candidates_it_saw(void **state)
{
    (void)state;
    struct keyset ks;
    keyset(&ks, 82, 3);
    tl_manager *a = tl__conformance_mgr("seen-a", LONG_TIMEOUT_MS);
    reopen_all(a, &ks);
    release_done(must_acquire(a, ks.keys[0]), "first");
    release_done(must_acquire(a, ks.keys[2]), "third");

    struct tl_store *s = a->store;
    uint8_t seen[3] = {0};
    const struct tl_candidates c = {.keys = ks.keys, .nkeys = ks.n, .done_seen = seen};
    const struct tl_claim req = {
        .worker_id = "seen-a",
        .node_id = "n",
        .task_info = "{}",
        .lock_timeout_ms = LONG_TIMEOUT_MS,
    };
    struct tl_claim_result res;
    struct tl_next_tally t;
    size_t won = SIZE_MAX;
    memset(&res, 0, sizeof(res));
    tl_status st = s->ops->claim_next(s, &req, &c, &res, &won, &t);
    if (st != TL_OK)
        fail_msg("claim-next: %s: %s", tl_strerror(st), s->errmsg);
    assert_int_equal(won, 1);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 0);

    /* Nothing to win: every candidate looked at, the done ones marked, the held one not. */
    struct tl_claim_result none;
    memset(&none, 0, sizeof(none));
    memset(seen, 0, sizeof(seen));
    assert_int_equal(s->ops->claim_next(s, &req, &c, &none, &won, &t), TL_EBUSY);
    tl__record_clear(&none.rec);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 0);
    assert_int_equal(seen[2], 1);
    assert_int_equal(t.done, 2);
    assert_int_equal(t.held, 1);

    /* Finished, with a claim of the next in the same call: the task just finished is marked
     * too (a store whose finish does not claim leaves that to claim_next, checked above). */
    memset(seen, 0, sizeof(seen));
    const struct tl_finish f = {
        .held = &res.rec, .summary = "second", .done = true, .next = &req, .candidates = &c};
    struct tl_finish_result fr;
    memset(&fr, 0, sizeof(fr));
    st = s->ops->finish(s, &f, &fr);
    if (st != TL_OK)
        fail_msg("finish: %s: %s", tl_strerror(st), s->errmsg);
    if (fr.next_tried) {
        assert_int_equal(fr.next_status, TL_EBUSY);
        assert_int_equal(fr.tally.done, 3);
        assert_int_equal(seen[0], 1);
        assert_int_equal(seen[1], 1);
        assert_int_equal(seen[2], 1);
    }
    tl__record_clear(&fr.next.rec);
    tl__record_clear(&res.rec);
    reopen_all(a, &ks);
    tl_manager_free(a);
}

/* ---- a waiting claim-next ---- */

struct waiting {
    pthread_t thread;
    tl_manager *m;
    const struct keyset *ks;
    atomic_int started;
    tl_status st;
    tl_lock *lock;
};

static void *waiting_main(void *arg)
{
    struct waiting *w = arg;
    const struct tl_acquire_opts o = {.strategy = TL_RETRY, .deadline_ms = EVENT_LIMIT_MS};

    atomic_store(&w->started, 1);
    w->st = tl_claim_next(w->m, w->ks->keys, w->ks->n, &o, &w->lock);
    return NULL;
}

static bool has_started(void *arg)
{
    return atomic_load(&((struct waiting *)arg)->started) != 0;
}

static void a_waiting_claimer_gets_a_released_task(void **state)
{
    (void)state;
    struct keyset ks;
    keyset(&ks, 80, 2);
    tl_manager *a = tl__conformance_mgr("wait-holder", LONG_TIMEOUT_MS);
    reopen_all(a, &ks);
    tl_lock *h0 = must_acquire(a, ks.keys[0]);
    tl_lock *h1 = must_acquire(a, ks.keys[1]);

    struct waiting w = {.ks = &ks};
    const struct tl_options o = {.store_url = conf->url,
                                 .worker_id = "wait-claimer",
                                 .lock_timeout_ms = LONG_TIMEOUT_MS,
                                 .backoff_initial_ms = 20,
                                 .backoff_max_ms = 200};
    w.m = tl_manager_new(&o);
    assert_non_null(w.m);
    assert_int_equal(tl_connect(w.m), TL_OK);
    assert_int_equal(pthread_create(&w.thread, NULL, waiting_main, &w), 0);
    assert_true(tl_test_poll(has_started, &w, 1, EVENT_LIMIT_MS));

    assert_int_equal(tl_release(h1, NULL), TL_OK);
    assert_int_equal(pthread_join(w.thread, NULL), 0);
    if (w.st != TL_OK)
        fail_msg("waiting claim-next: %s: %s", tl_strerror(w.st), tl_errmsg(w.m));
    assert_string_equal(tl_lock_key(w.lock), ks.keys[1]);
    assert_int_equal(tl_release(w.lock, NULL), TL_OK);
    tl_lock_free(w.lock);
    tl_manager_free(w.m);
    assert_int_equal(tl_release(h0, NULL), TL_OK);
    tl_lock_free(h0);
    tl_lock_free(h1);
    tl_manager_free(a);
}

int tl__conformance_next_run(const struct tl_conformance *c)
{
    char name[128];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claims_the_first_free_candidate_in_order),
        cmocka_unit_test(done_tasks_are_skipped_until_reopened),
        cmocka_unit_test(a_queued_key_is_skipped),
        cmocka_unit_test(a_stale_task_is_taken_only_when_stealing),
        cmocka_unit_test(concurrent_claimers_take_each_task_once),
        cmocka_unit_test(release_and_claim_next_in_one_call),
        cmocka_unit_test(a_waiting_claimer_gets_a_released_task),
        cmocka_unit_test(the_store_marks_the_done_candidates_it_saw),
    };

    conf = c;
    (void)snprintf(name, sizeof(name), "conformance-next/%s", c->name);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
