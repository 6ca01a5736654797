/*
 * conformance_line.c -- the store contract's line (DESIGN.md section 7, src/store.h), checked
 * against any store through the public API: real threads, real clocks, waits bounded by events.
 * Run by tl_conformance_run() after the lock's own suite; keys 85-99.
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
#include "conformance_util.h"
#include "manager.h"
#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

static const struct tl_conformance *conf;

/* The lock timeout of the line's waiters: long, so that no waiter refreshes its place during a
 * test (a refresh is a claim, which would blur the count of wake-ups). */
#define LONG_TIMEOUT_MS 60000
/* Bound of every wait for an event (a waiter in line, a grant). */
#define EVENT_LIMIT_MS 30000

static const char *key(int n, char buf[64])
{
    return tl_conformance_key(conf, n, buf);
}

static uint32_t short_timeout(void)
{
    return conf->short_timeout_ms ? conf->short_timeout_ms : 300;
}

static tl_manager *line_mgr(const char *worker, uint32_t timeout_ms)
{
    const struct tl_options o = {
        .store_url = conf->url,
        .worker_id = worker,
        .node_id = "line-node",
        .lock_timeout_ms = timeout_ms,
    };
    tl_manager *m = tl_manager_new(&o);

    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect %s: %s", conf->name, tl_errmsg(m));
    return m;
}

static struct tl_metrics metrics(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt;
}

/* ---- waiters on threads ---- */

static atomic_int grants; /* order of grants in the current test */

struct waiter {
    pthread_t thread;
    tl_manager *m;
    char key[64];
    struct tl_acquire_opts opts;
    bool release; /* release at once when granted, handing over to the next */
    tl_status st;
    tl_lock *lock;
    uint64_t token;
    int order; /* 0-based grant order; -1 if not granted */
    char err[TL_ERRMSG_SIZE];
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;

    w->order = -1;
    w->st = tl_acquire(w->m, w->key, &w->opts, &w->lock);
    if (w->st != TL_OK) {
        (void)snprintf(w->err, sizeof(w->err), "%s", tl_errmsg(w->m));
        return NULL;
    }
    w->token = tl_lock_token(w->lock);
    w->order = atomic_fetch_add(&grants, 1);
    if (w->release && tl_release(w->lock, NULL) != TL_OK)
        (void)snprintf(w->err, sizeof(w->err), "release: %s", tl_errmsg(w->m));
    return NULL;
}

/* Waits (bounded) until `k` has `n` live waiters. */
static void await_line(tl_manager *observer, const char *k, size_t n)
{
    struct tl_conformance_line_probe p = {.m = observer, .key = k, .live = n};

    if (!tl_test_poll(tl__conformance_line_has, &p, 5, EVENT_LIMIT_MS))
        fail_msg("%s: the line never had %zu live waiters (it has %zu)", k, n,
                 tl__conformance_live_waiters(observer, k, NULL));
}

/* Starts a waiter on its own manager and waits until it stands in line as number `place`. */
static void start_waiter(struct waiter *w, const char *worker, const char *k, int32_t priority,
                         tl_strategy strategy, tl_manager *observer, size_t place)
{
    memset(w, 0, sizeof(*w));
    w->m = line_mgr(worker, LONG_TIMEOUT_MS);
    (void)snprintf(w->key, sizeof(w->key), "%s", k);
    w->opts = (struct tl_acquire_opts){
        .strategy = strategy, .deadline_ms = EVENT_LIMIT_MS, .priority = priority};
    w->release = true;
    assert_int_equal(pthread_create(&w->thread, NULL, waiter_main, w), 0);
    await_line(observer, k, place);
}

static void join_waiter(struct waiter *w)
{
    pthread_join(w->thread, NULL);
    if (w->st != TL_OK)
        fail_msg("%s: %s: %s", tl_manager_worker_id(w->m), tl_strerror(w->st), w->err);
    if (w->err[0] != '\0')
        fail_msg("%s: %s", tl_manager_worker_id(w->m), w->err);
}

static void free_waiter(struct waiter *w)
{
    tl_lock_free(w->lock);
    tl_manager_free(w->m);
}

/* Every waiter was woken at most once: a release woke the head alone, never the others (who
 * would have claimed, lost, and waited to be woken again). */
static void assert_no_herd(struct waiter *ws, size_t n)
{
    uint64_t total = 0;

    for (size_t i = 0; i < n; i++) {
        struct tl_metrics mt = metrics(ws[i].m);
        if (mt.wakeups > 1)
            fail_msg("%s was woken %llu times for one grant", tl_manager_worker_id(ws[i].m),
                     (unsigned long long)mt.wakeups);
        total += mt.wakeups;
    }
    assert_true(total >= 1);
}

/* ---- the tests ---- */

static void waiters_are_granted_in_arrival_order(void **state)
{
    char kb[64];
    const char *k = key(85, kb);
    tl_manager *h = line_mgr("line-holder", LONG_TIMEOUT_MS);
    tl_lock *hl = NULL;
    struct waiter w[4];
    static const char *const names[] = {"line-w1", "line-w2", "line-w3", "line-w4"};

    (void)state;
    atomic_store(&grants, 0);
    assert_int_equal(tl_acquire(h, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &hl),
                     TL_OK);
    for (size_t i = 0; i < 4; i++)
        start_waiter(&w[i], names[i], k, 0, TL_RETRY, h, i + 1);

    /* The line, as the store keeps it: arrival order, all live. */
    struct tl_waiter **ws = NULL;
    size_t n = 0;
    assert_int_equal(tl_waiters(h, k, &ws, &n), TL_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ws[i]->worker_id, names[i]);
        assert_string_equal(ws[i]->node_id, "line-node");
        assert_string_equal(ws[i]->key, k);
        assert_int_equal(strlen(ws[i]->waiter_id), 32);
        assert_false(ws[i]->dead);
        assert_int_equal(ws[i]->priority, 0);
        assert_true(ws[i]->timeout_ms > 0);
        assert_true(ws[i]->since_ms > 0 && ws[i]->heartbeat_at_ms >= ws[i]->since_ms);
        if (i > 0)
            assert_true(ws[i]->seq > ws[i - 1]->seq);
    }
    tl_waiter_array_free(ws, n);

    /* inspect and list count them. */
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(h, k, &info), TL_OK);
    assert_int_equal(info->waiting, 4);
    tl_info_free(info);
    struct tl_info **all = NULL;
    size_t count = 0;
    if (tl_list(h, &all, &count) == TL_OK) {
        bool seen = false;
        for (size_t i = 0; i < count; i++) {
            if (strcmp(all[i]->key, k) == 0) {
                assert_int_equal(all[i]->waiting, 4);
                seen = true;
            }
        }
        assert_true(seen);
        tl_info_array_free(all, count);
    }

    /* One release hands the key down the line: each waiter releases when granted. */
    assert_int_equal(tl_release(hl, NULL), TL_OK);
    for (size_t i = 0; i < 4; i++)
        join_waiter(&w[i]);
    uint64_t last = tl_lock_token(hl);
    for (size_t i = 0; i < 4; i++) {
        if (w[i].order != (int)i)
            fail_msg("%s was granted %d-th, not %zu-th", names[i], w[i].order + 1, i + 1);
        assert_true(w[i].token > last);
        last = w[i].token;
        assert_int_equal(metrics(w[i].m).queued, 1);
    }
    assert_no_herd(w, 4);
    assert_int_equal(tl__conformance_live_waiters(h, k, NULL), 0);
    for (size_t i = 0; i < 4; i++)
        free_waiter(&w[i]);
    tl_lock_free(hl);
    tl_manager_free(h);
}

static void waiters_are_granted_by_priority_then_arrival(void **state)
{
    char kb[64];
    const char *k = key(86, kb);
    tl_manager *h = line_mgr("line-holder", LONG_TIMEOUT_MS);
    tl_lock *hl = NULL;
    struct waiter w[4];
    static const char *const names[] = {"line-p0a", "line-p5a", "line-p0b", "line-p5b"};
    static const int32_t prio[] = {0, 5, 0, 5};
    static const int granted[] = {2, 0, 3, 1}; /* p5a, p5b, p0a, p0b */

    (void)state;
    atomic_store(&grants, 0);
    assert_int_equal(tl_acquire(h, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &hl),
                     TL_OK);
    if (conf->fifo_only) {
        tl_lock *l = NULL;
        assert_int_equal(tl_acquire(h, k, &(struct tl_acquire_opts){.priority = 5}, &l), TL_EINVAL);
        assert_non_null(strstr(tl_errmsg(h), "FIFO"));
        assert_int_equal(tl__conformance_live_waiters(h, k, NULL), 0);
        assert_int_equal(tl_release(hl, NULL), TL_OK);
        tl_lock_free(hl);
        tl_manager_free(h);
        return;
    }
    for (size_t i = 0; i < 4; i++)
        start_waiter(&w[i], names[i], k, prio[i], TL_RETRY, h, i + 1);

    struct tl_waiter **ws = NULL;
    size_t n = 0;
    assert_int_equal(tl_waiters(h, k, &ws, &n), TL_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(ws[granted[i]]->worker_id, names[i]);
    assert_int_equal(ws[0]->priority, 5);
    assert_int_equal(ws[3]->priority, 0);
    tl_waiter_array_free(ws, n);

    assert_int_equal(tl_release(hl, NULL), TL_OK);
    for (size_t i = 0; i < 4; i++)
        join_waiter(&w[i]);
    for (size_t i = 0; i < 4; i++) {
        if (w[i].order != granted[i])
            fail_msg("%s (priority %d) was granted %d-th, not %d-th", names[i], prio[i],
                     w[i].order + 1, granted[i] + 1);
    }
    assert_no_herd(w, 4);
    for (size_t i = 0; i < 4; i++)
        free_waiter(&w[i]);
    tl_lock_free(hl);
    tl_manager_free(h);
}

static void a_free_key_goes_to_the_head_not_to_a_newcomer(void **state)
{
    char kb[64];
    const char *k = key(87, kb);
    tl_manager *h = line_mgr("line-holder", LONG_TIMEOUT_MS);
    tl_manager *c = line_mgr("line-newcomer", LONG_TIMEOUT_MS);
    tl_lock *hl = NULL, *cl = NULL;
    struct waiter w;

    (void)state;
    atomic_store(&grants, 0);
    assert_int_equal(tl_acquire(h, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &hl),
                     TL_OK);
    start_waiter(&w, "line-w1", k, 0, TL_RETRY, h, 1);
    w.release = false;

    /* FAIL_FAST never queues, and says how many wait. */
    assert_int_equal(tl_acquire(c, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &cl),
                     TL_EBUSY);
    assert_non_null(strstr(tl_errmsg(c), "1 waiting"));
    assert_int_equal(tl__conformance_live_waiters(h, k, NULL), 1);

    /* Released: the newcomer loses whether the waiter has claimed yet or not. */
    assert_int_equal(tl_release(hl, NULL), TL_OK);
    assert_int_equal(tl_acquire(c, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &cl),
                     TL_EBUSY);
    assert_null(cl);
    join_waiter(&w);
    assert_true(w.token > tl_lock_token(hl));
    assert_int_equal(tl_release(w.lock, NULL), TL_OK);
    free_waiter(&w);
    tl_lock_free(hl);
    tl_manager_free(h);
    tl_manager_free(c);
}

/* A waiter that stops refreshing (a process killed in line): joined through the store itself. */
static struct tl_store *raw_store(void)
{
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE];

    if (tl__store_open(conf->url, NULL, &tl__real_clock, NULL, &s, err) != TL_OK)
        fail_msg("open %s: %s", conf->name, err);
    return s;
}

static void join_line_and_die(struct tl_store *s, const char *k, const char *waiter_id,
                              uint32_t timeout_ms)
{
    const struct tl_claim req = {
        .key = k,
        .worker_id = "line-dead",
        .node_id = "line-node",
        .task_info = "{}",
        .lock_timeout_ms = timeout_ms,
        .mode = TL_CLAIM_NORMAL,
        .waiter_id = waiter_id,
        .waiter_timeout_ms = timeout_ms,
    };
    struct tl_claim_result res;

    memset(&res, 0, sizeof(res));
    tl_status st = s->ops->claim(s, &req, &res);
    tl__record_clear(&res.rec);
    if (st != TL_EBUSY)
        fail_msg("the doomed waiter's claim: %s: %s", tl_strerror(st), s->errmsg);
}

struct dead_probe {
    tl_manager *m;
    const char *key;
};

static bool head_is_dead(void *arg)
{
    struct dead_probe *p = arg;
    struct tl_waiter **ws = NULL;
    size_t n = 0;
    bool dead = tl_waiters(p->m, p->key, &ws, &n) == TL_OK && n > 0 && ws[0]->dead;

    if (conf->dead_waiters_vanish) {
        dead = true; /* gone counts as dead */
        for (size_t i = 0; i < n; i++)
            dead = dead && strcmp(ws[i]->worker_id, "line-dead") != 0;
    }

    tl_waiter_array_free(ws, n);
    return dead;
}

static void a_dead_waiter_is_skipped_and_removed(void **state)
{
    char kb[64];
    const char *k = key(88, kb);
    tl_manager *h = line_mgr("line-holder", LONG_TIMEOUT_MS);
    tl_lock *hl = NULL;
    struct tl_store *s = raw_store();
    struct waiter w;

    (void)state;
    atomic_store(&grants, 0);
    assert_int_equal(tl_acquire(h, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &hl),
                     TL_OK);
    join_line_and_die(s, k, "0123456789abcdef0123456789abcdef", short_timeout());
    await_line(h, k, 1);

    /* Silent past its timeout, it is dead: still listed, marked, and not counted (or gone, in
     * a store where dead waiters vanish). */
    struct dead_probe p = {.m = h, .key = k};
    if (conf->advance_store_clock != NULL)
        conf->advance_store_clock(conf->clock_ud, short_timeout() + 2500);
    if (!tl_test_poll(head_is_dead, &p, 20, short_timeout() * 20 + 10000))
        fail_msg("%s: the silent waiter never went dead", k);
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(h, k, &info), TL_OK);
    assert_int_equal(info->waiting, 0);
    tl_info_free(info);

    /* A live waiter behind it gets the key at the release, without waiting for it. */
    start_waiter(&w, "line-w1", k, 0, TL_RETRY, h, 1);
    assert_int_equal(tl_release(hl, NULL), TL_OK);
    join_waiter(&w);
    assert_int_equal(w.order, 0);

    /* Whoever found it removed it. */
    struct tl_waiter **ws = NULL;
    size_t n = 0;
    assert_int_equal(tl_waiters(h, k, &ws, &n), TL_OK);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(ws[i]->worker_id, "line-dead");
    tl_waiter_array_free(ws, n);
    free_waiter(&w);
    tl__store_close(s);
    tl_lock_free(hl);
    tl_manager_free(h);
}

static void a_waiter_that_gives_up_leaves_the_line(void **state)
{
    char kb[64];
    const char *k = key(89, kb);
    tl_manager *h = line_mgr("line-holder", LONG_TIMEOUT_MS);
    tl_manager *q = line_mgr("line-quitter", LONG_TIMEOUT_MS);
    tl_lock *hl = NULL, *ql = NULL;

    (void)state;
    assert_int_equal(tl_acquire(h, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &hl),
                     TL_OK);
    assert_int_equal(tl_acquire(q, k, &(struct tl_acquire_opts){.deadline_ms = 300}, &ql),
                     TL_EBUSY);
    assert_int_equal(metrics(q).queued, 1);
    assert_int_equal(tl__conformance_live_waiters(h, k, NULL), 0);
    assert_int_equal(tl_release(hl, NULL), TL_OK);
    tl_lock_free(hl);
    tl_manager_free(h);
    tl_manager_free(q);
}

static void the_head_steals_a_stale_lock(void **state)
{
    char kb[64];
    const char *k = key(90, kb);
    tl_manager *h = line_mgr("line-holder", short_timeout());
    tl_lock *hl = NULL;
    struct waiter w[2];

    (void)state;
    atomic_store(&grants, 0);
    assert_int_equal(tl_acquire(h, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &hl),
                     TL_OK);
    uint64_t first = tl_lock_token(hl);
    tl_lock_free(hl); /* the holder is gone: no more heartbeats */
    start_waiter(&w[0], "line-stealer", k, 0, TL_STEAL_STALE, h, 1);
    start_waiter(&w[1], "line-second", k, 0, TL_STEAL_STALE, h, 2);
    w[0].release = false; /* keeps it: the second must not steal from a live holder */
    if (conf->advance_store_clock != NULL)
        conf->advance_store_clock(conf->clock_ud, short_timeout() + 2500);

    struct tl_conformance_line_probe p = {.m = h, .key = k, .live = 1};
    if (!tl_test_poll(tl__conformance_line_has, &p, 10, EVENT_LIMIT_MS))
        fail_msg("%s: the head never stole the stale lock", k);
    pthread_join(w[0].thread, NULL);
    if (w[0].st != TL_OK)
        fail_msg("the head: %s: %s", tl_strerror(w[0].st), w[0].err);
    assert_int_equal(w[0].order, 0);
    assert_true(w[0].token > first);
    assert_int_equal(metrics(w[0].m).stale_locks_claimed, 1);

    /* The second gets it when the first releases, not by stealing. */
    assert_int_equal(tl_release(w[0].lock, NULL), TL_OK);
    join_waiter(&w[1]);
    assert_int_equal(w[1].order, 1);
    assert_true(w[1].token > w[0].token);
    assert_int_equal(metrics(w[1].m).stale_locks_claimed, 0);
    free_waiter(&w[0]);
    free_waiter(&w[1]);
    tl_manager_free(h);
}

static void force_passes_the_line(void **state)
{
    char kb[64];
    const char *k = key(91, kb);
    tl_manager *h = line_mgr("line-holder", LONG_TIMEOUT_MS);
    tl_manager *f = line_mgr("line-admin", LONG_TIMEOUT_MS);
    tl_lock *hl = NULL, *fl = NULL;
    struct waiter w;

    (void)state;
    atomic_store(&grants, 0);
    assert_int_equal(tl_acquire(h, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &hl),
                     TL_OK);
    start_waiter(&w, "line-w1", k, 0, TL_RETRY, h, 1);
    assert_int_equal(tl_acquire(f, k, &(struct tl_acquire_opts){.strategy = TL_FORCE_ACQUIRE}, &fl),
                     TL_OK);
    assert_true(tl_lock_token(fl) > tl_lock_token(hl));
    assert_int_equal(tl__conformance_live_waiters(h, k, NULL), 1); /* the line is still there */
    assert_int_equal(tl_release(fl, NULL), TL_OK);
    join_waiter(&w);
    assert_true(w.token > tl_lock_token(fl));
    free_waiter(&w);
    tl_lock_free(hl);
    tl_lock_free(fl);
    tl_manager_free(h);
    tl_manager_free(f);
}

static void extend_changes_the_recorded_lock_timeout(void **state)
{
    char kb[64];
    const char *k = key(92, kb);
    tl_manager *h = line_mgr("line-holder", LONG_TIMEOUT_MS);
    tl_manager *f = line_mgr("line-admin", LONG_TIMEOUT_MS);
    tl_lock *hl = NULL, *fl = NULL;
    struct tl_info *info = NULL;

    (void)state;
    assert_int_equal(tl_acquire(h, k, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &hl),
                     TL_OK);
    assert_int_equal(tl_extend(hl, 2 * LONG_TIMEOUT_MS), TL_OK);
    assert_int_equal(tl_inspect(f, k, &info), TL_OK);
    assert_int_equal(info->lock_timeout_ms, 2 * LONG_TIMEOUT_MS);
    assert_int_equal(info->token, tl_lock_token(hl));
    tl_info_free(info);
    assert_int_equal(tl_extend(hl, LONG_TIMEOUT_MS / 2), TL_OK);
    assert_int_equal(tl_inspect(f, k, &info), TL_OK);
    assert_int_equal(info->lock_timeout_ms, LONG_TIMEOUT_MS / 2);
    tl_info_free(info);

    /* Taken: the extension finds it lost. */
    assert_int_equal(tl_acquire(f, k, &(struct tl_acquire_opts){.strategy = TL_FORCE_ACQUIRE}, &fl),
                     TL_OK);
    assert_int_equal(tl_extend(hl, LONG_TIMEOUT_MS), TL_ELOST);
    assert_true(tl_lock_is_lost(hl));
    assert_int_equal(tl_release(fl, NULL), TL_OK);
    tl_lock_free(hl);
    tl_lock_free(fl);
    tl_manager_free(h);
    tl_manager_free(f);
}

int tl__conformance_line_run(const struct tl_conformance *c)
{
    char name[128];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(waiters_are_granted_in_arrival_order),
        cmocka_unit_test(waiters_are_granted_by_priority_then_arrival),
        cmocka_unit_test(a_free_key_goes_to_the_head_not_to_a_newcomer),
        cmocka_unit_test(a_dead_waiter_is_skipped_and_removed),
        cmocka_unit_test(a_waiter_that_gives_up_leaves_the_line),
        cmocka_unit_test(the_head_steals_a_stale_lock),
        cmocka_unit_test(force_passes_the_line),
        cmocka_unit_test(extend_changes_the_recorded_lock_timeout),
    };

    conf = c;
    (void)snprintf(name, sizeof(name), "conformance-line/%s", c->name);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
