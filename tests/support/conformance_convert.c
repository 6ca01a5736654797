/*
 * conformance_convert.c -- upgrades, downgrades and deadlock detection (store.h, version 5:
 * convert and the wait-for graph; DESIGN.md section 9), checked against any store through the
 * public API. Run by tl_conformance_run() after the shared holders' part; keys 40-59. A store
 * without `convert` must answer TL_ENOTSUP to tl_upgrade(); its part is then skipped, and the
 * deadlock tests run only on a store that keeps the wait-for graph (`deadlocks`).
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

/* How long a waiter that must NOT find a deadlock waits before it gives up (TL_EBUSY): long
 * enough for its first checks, which run when it joins the line. */
#define NO_DEADLOCK_WAIT_MS 1500

static const char *key(int n, char buf[64])
{
    return tl_conformance_key(conf, n, buf);
}

static tl_manager *mgr(const char *worker)
{
    return tl__conformance_real_mgr(conf, "convert-node", worker);
}

static size_t count_holders(tl_manager *m, const char *k, tl_mode *mode)
{
    struct tl_info **hs = NULL;
    size_t n = 0;

    if (tl_holders(m, k, &hs, &n) != TL_OK)
        fail_msg("holders of %s: %s", k, tl_errmsg(m));
    if (n > 0 && mode != NULL)
        *mode = hs[0]->mode;
    tl_info_array_free(hs, n);
    return n;
}

static bool has_event(tl_manager *m, const char *k, tl_event_kind kind)
{
    struct tl_event **ev = NULL;
    size_t n = 0;
    bool found = false;

    if (tl_history(m, k, 50, &ev, &n) != TL_OK)
        return true; /* a store without history: nothing to check */
    for (size_t i = 0; i < n; i++)
        found = found || ev[i]->kind == kind;
    tl_event_array_free(ev, n);
    return found;
}

/* ---- waits: the store's clock, and the end of a job (struct tl_conformance_job) ---- */

struct clock_probe {
    tl_manager *m;
    const char *held; /* a held key: inspect tells the store's clock */
    int64_t after;
};

static bool clock_past(void *arg)
{
    struct clock_probe *p = arg;
    struct tl_info *info = NULL;
    bool past = tl_inspect(p->m, p->held, &info) == TL_OK && info != NULL &&
                info->observed_at_ms > p->after;

    tl_info_free(info);
    return past;
}

/* The youngest waiter of a cycle is the last to join its line by the store's clock: before the
 * waiter that must be the youngest joins, waits until that clock has passed the joining time of
 * every waiter of `keys` (a join in the same millisecond would leave the order to chance). */
static void after_the_waiters_of(tl_manager *m, const char *held, const char *const *keys,
                                 size_t nkeys)
{
    struct clock_probe p = {.m = m, .held = held, .after = 0};

    for (size_t i = 0; i < nkeys; i++) {
        struct tl_waiter **ws = NULL;
        size_t n = 0;
        if (tl_waiters(m, keys[i], &ws, &n) != TL_OK)
            fail_msg("waiters of %s: %s", keys[i], tl_errmsg(m));
        for (size_t w = 0; w < n; w++)
            if (ws[w]->since_ms > p.after)
                p.after = ws[w]->since_ms;
        tl_waiter_array_free(ws, n);
    }
    if (conf->advance_store_clock != NULL) { /* a server clock the suite moves (GitHub's) */
        conf->advance_store_clock(conf->clock_ud, 1100);
        return;
    }
    if (!tl_test_poll(clock_past, &p, 2, TL_CONFORMANCE_EVENT_LIMIT_MS))
        fail_msg("the store's clock never passed %lld", (long long)p.after);
}

static void join_job(struct tl_conformance_job *j, tl_status want)
{
    pthread_join(j->thread, NULL);
    if (j->st != want)
        fail_msg("%s: %s, expected %s: %s", tl_manager_worker_id(j->m), tl_strerror(j->st),
                 tl_strerror(want), j->err);
}

/* ---- upgrades and downgrades ---- */

static void an_upgrade_alone_is_immediate(void **state)
{
    char kb[64];
    const char *k = key(40, kb);
    tl_manager *a = mgr("up-a");
    tl_manager *b = mgr("up-b");
    tl_lock *lb = NULL;
    tl_mode mode;

    (void)state;
    tl_lock *la = tl__conformance_must(a, k, TL_SHARED, 0);
    uint64_t shared_token = tl_lock_token(la);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    assert_int_equal(tl_upgrade(la, &ff), TL_OK);
    assert_int_equal(tl_lock_mode(la), TL_EXCLUSIVE);
    assert_true(tl_lock_token(la) > shared_token);
    assert_int_equal(count_holders(b, k, &mode), 1);
    assert_int_equal(mode, TL_EXCLUSIVE);
    const struct tl_acquire_opts shared = {.strategy = TL_FAIL_FAST, .mode = TL_SHARED};
    assert_int_equal(tl_acquire(b, k, &shared, &lb), TL_EBUSY);
    assert_int_equal(tl_renew(la), TL_OK); /* the heartbeat goes on with the new token */
    assert_true(has_event(b, k, TL_EVENT_UPGRADED));

    /* Upgrading an exclusive lock, or downgrading a shared one, is a usage error. */
    assert_int_equal(tl_upgrade(la, &ff), TL_EINVAL);
    assert_int_equal(tl_downgrade(la), TL_OK);
    assert_int_equal(tl_lock_mode(la), TL_SHARED);
    assert_int_equal(tl_downgrade(la), TL_EINVAL);
    assert_true(has_event(b, k, TL_EVENT_DOWNGRADED));
    tl__conformance_must_release(la);
    assert_int_equal(count_holders(b, k, NULL), 0);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void an_upgrade_waits_at_the_head_for_the_other_holders(void **state)
{
    char kb[64];
    const char *k = key(41, kb);
    tl_manager *a = mgr("upw-a");
    tl_manager *b = mgr("upw-b");
    tl_manager *c = mgr("upw-c");
    tl_lock *lc = NULL;
    int32_t head = 0;

    (void)state;
    struct tl_conformance_job j = {.m = a, .upgrade = true};
    j.lock = tl__conformance_must(a, k, TL_SHARED, 0);
    tl_lock *lb = tl__conformance_must(b, k, TL_SHARED, 0);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    assert_int_equal(tl_upgrade(j.lock, &ff), TL_EBUSY); /* one attempt: b holds it too */
    assert_int_equal(tl_lock_mode(j.lock), TL_SHARED);

    tl__conformance_job_start(&j, c, k, 1);
    assert_int_equal(tl__conformance_live_waiters(c, k, &head), 1);
    assert_int_equal(head, TL_PRIORITY_UPGRADE);
    assert_int_equal(count_holders(c, k, NULL), 2); /* it keeps its shared hold meanwhile */
    /* A newcomer does not pass the upgrader, not even a shared one. */
    const struct tl_acquire_opts shared = {.strategy = TL_FAIL_FAST, .mode = TL_SHARED};
    assert_int_equal(tl_acquire(c, k, &shared, &lc), TL_EBUSY);

    uint64_t bt = tl_lock_token(lb);
    tl__conformance_must_release(lb);
    join_job(&j, TL_OK);
    assert_int_equal(tl_lock_mode(j.lock), TL_EXCLUSIVE);
    assert_true(tl_lock_token(j.lock) > bt);
    assert_int_equal(tl_renew(j.lock), TL_OK);
    tl__conformance_must_release(j.lock);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(c);
}

static void two_upgraders_one_gets_the_deadlock(void **state)
{
    char kb[64];
    const char *k = key(42, kb);
    tl_manager *a = mgr("dup-a");
    tl_manager *b = mgr("dup-b");

    (void)state;
    if (!a->store->deadlocks) {
        tl_manager_free(a);
        tl_manager_free(b);
        skip();
    }
    struct tl_conformance_job j = {.m = a, .upgrade = true};
    j.lock = tl__conformance_must(a, k, TL_SHARED, 0);
    tl_lock *lb = tl__conformance_must(b, k, TL_SHARED, 0);
    tl__conformance_job_start(&j, b, k, 1);
    after_the_waiters_of(b, k, &k, 1);

    /* b's wait closes the cycle, and b is its youngest waiter. */
    const struct tl_acquire_opts o = {.strategy = TL_RETRY,
                                      .deadline_ms = TL_CONFORMANCE_EVENT_LIMIT_MS};
    assert_int_equal(tl_upgrade(lb, &o), TL_EDEADLK);
    assert_non_null(strstr(tl_errmsg(b), "dup-b waits for"));
    assert_non_null(strstr(tl_errmsg(b), "held by dup-a"));
    assert_int_equal(tl_lock_mode(lb), TL_SHARED); /* still held as before */
    assert_int_equal(tl_renew(lb), TL_OK);
    assert_int_equal(atomic_load(&j.done), 0); /* a goes on waiting */

    tl__conformance_must_release(lb);
    join_job(&j, TL_OK);
    assert_int_equal(tl_lock_mode(j.lock), TL_EXCLUSIVE);
    tl__conformance_must_release(j.lock);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void a_downgrade_lets_queued_readers_in(void **state)
{
    char kb[64];
    const char *k = key(43, kb);
    tl_manager *w = mgr("down-w");
    tl_manager *r = mgr("down-r");

    (void)state;
    tl_lock *lw = tl__conformance_must(w, k, TL_EXCLUSIVE, 0);
    uint64_t wt = tl_lock_token(lw);
    struct tl_conformance_job j = {.m = r, .mode = TL_SHARED};
    tl__conformance_job_start(&j, w, k, 1);
    assert_int_equal(tl_downgrade(lw), TL_OK);
    assert_true(tl_lock_token(lw) > wt);
    join_job(&j, TL_OK);
    assert_true(tl_lock_token(j.lock) > tl_lock_token(lw));
    tl_mode mode;
    assert_int_equal(count_holders(w, k, &mode), 2);
    assert_int_equal(mode, TL_SHARED);
    assert_int_equal(tl_renew(lw), TL_OK);
    tl__conformance_must_release(j.lock);
    tl__conformance_must_release(lw);
    tl_manager_free(w);
    tl_manager_free(r);
}

/* ---- deadlocks ---- */

static void a_two_cycle_is_reported_to_its_youngest_waiter(void **state)
{
    char ka[64], kb[64];
    const char *k1 = key(44, ka), *k2 = key(45, kb);
    tl_manager *a = mgr("cyc-a");
    tl_manager *b = mgr("cyc-b");

    (void)state;
    if (!a->store->deadlocks) {
        tl_manager_free(a);
        tl_manager_free(b);
        skip();
    }
    tl_lock *la = tl__conformance_must(a, k1, TL_EXCLUSIVE, 0);
    tl_lock *lb = tl__conformance_must(b, k2, TL_EXCLUSIVE, 0);
    struct tl_conformance_job j = {.m = a};
    tl__conformance_job_start(&j, b, k2, 1); /* a waits for k2 */
    after_the_waiters_of(b, k2, &k2, 1);

    const struct tl_acquire_opts o = {.strategy = TL_RETRY,
                                      .deadline_ms = TL_CONFORMANCE_EVENT_LIMIT_MS};
    tl_lock *l = NULL;
    assert_int_equal(tl_acquire(b, k1, &o, &l), TL_EDEADLK);
    assert_null(l);
    const char *msg = tl_errmsg(b);
    assert_non_null(strstr(msg, "cyc-b waits for"));
    assert_non_null(strstr(msg, k1));
    assert_non_null(strstr(msg, "cyc-a waits for"));
    assert_non_null(strstr(msg, k2));
    assert_int_equal(tl__conformance_live_waiters(b, k1, NULL), 0); /* b left the line */
    assert_int_equal(atomic_load(&j.done), 0);

    tl__conformance_must_release(lb); /* the other waiter goes on, and gets it */
    join_job(&j, TL_OK);
    tl__conformance_must_release(j.lock);
    tl__conformance_must_release(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void a_three_cycle_is_reported(void **state)
{
    char b1[64], b2[64], b3[64];
    const char *k1 = key(46, b1), *k2 = key(47, b2), *k3 = key(48, b3);
    tl_manager *a = mgr("tri-a");
    tl_manager *b = mgr("tri-b");
    tl_manager *c = mgr("tri-c");

    (void)state;
    if (!a->store->deadlocks) {
        tl_manager_free(a);
        tl_manager_free(b);
        tl_manager_free(c);
        skip();
    }
    tl_lock *la = tl__conformance_must(a, k1, TL_EXCLUSIVE, 0);
    tl_lock *lb = tl__conformance_must(b, k2, TL_EXCLUSIVE, 0);
    tl_lock *lc = tl__conformance_must(c, k3, TL_SHARED, 0);
    struct tl_conformance_job ja = {.m = a}, jb = {.m = b};
    tl__conformance_job_start(&ja, c, k2, 1); /* a waits for k2, held by b */
    tl__conformance_job_start(&jb, c, k3, 1); /* b waits for k3, held by c */
    const char *lines[] = {k2, k3};
    after_the_waiters_of(c, k3, lines, 2);

    const struct tl_acquire_opts o = {.strategy = TL_RETRY,
                                      .deadline_ms = TL_CONFORMANCE_EVENT_LIMIT_MS};
    tl_lock *l = NULL;
    assert_int_equal(tl_acquire(c, k1, &o, &l), TL_EDEADLK);
    assert_non_null(strstr(tl_errmsg(c), "tri-c waits for"));
    assert_non_null(strstr(tl_errmsg(c), "tri-b waits for"));

    tl__conformance_must_release(lc); /* b gets k3, then lets k2 go to a */
    join_job(&jb, TL_OK);
    tl__conformance_must_release(lb);
    join_job(&ja, TL_OK);
    tl__conformance_must_release(jb.lock);
    tl__conformance_must_release(ja.lock);
    tl__conformance_must_release(la);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(c);
}

/* Puts a waiter of worker `worker` in `k`'s line by a claim through `s`, listing `holding`. */
static void join_line(struct tl_store *s, const char *worker, const char *k, const char *waiter_id,
                      const char *holding, uint32_t waiter_timeout_ms)
{
    const struct tl_claim req = {
        .key = k,
        .worker_id = worker,
        .node_id = "convert-node",
        .task_info = "{}",
        /* A store that judges waiters by their lock timeout (GitHub) needs it short too. */
        .lock_timeout_ms =
            s->waiter_timeout_is_lock_timeout ? waiter_timeout_ms : TL_CONFORMANCE_LONG_TIMEOUT_MS,
        .mode = TL_CLAIM_NORMAL,
        .waiter_id = waiter_id,
        .waiter_timeout_ms = waiter_timeout_ms,
        .holding = holding,
    };
    struct tl_claim_result res;

    memset(&res, 0, sizeof(res));
    tl_status st = s->ops->claim(s, &req, &res);
    tl__record_clear(&res.rec);
    if (st != TL_EBUSY)
        fail_msg("the planted waiter's claim: %s: %s", tl_strerror(st), s->errmsg);
}

struct dead_probe {
    tl_manager *m;
    const char *key;
    const char *worker;
};

static bool planted_is_dead(void *arg)
{
    struct dead_probe *p = arg;
    struct tl_waiter **ws = NULL;
    size_t n = 0;
    bool dead = true; /* vanished counts as dead */

    if (tl_waiters(p->m, p->key, &ws, &n) != TL_OK)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ws[i]->worker_id, p->worker) == 0 && !ws[i]->dead)
            dead = false;
    tl_waiter_array_free(ws, n);
    return dead;
}

/* b holds k2 and, by a waiter in k1's line, waits for k1, which a holds; then a waits for k2.
 * That is a cycle, unless b's waiter is dead (`dead_waiter`) or b's hold of k2 is stale. */
static void no_cycle_through(bool dead_waiter, int first_key)
{
    char b1[64], b2[64], holding[200];
    const char *k1 = key(first_key, b1), *k2 = key(first_key + 1, b2);
    /* The stale case moves the suite's fake clock (fake-clock stores): both on it. */
    tl_manager *a = dead_waiter ? mgr("nocyc-a")
                                : tl__conformance_mgr("nocyc-a", TL_CONFORMANCE_LONG_TIMEOUT_MS);
    tl_manager *b = dead_waiter ? mgr("nocyc-b")
                                : tl__conformance_mgr("nocyc-b", tl__conformance_short_timeout());

    if (!a->store->deadlocks) {
        tl_manager_free(a);
        tl_manager_free(b);
        skip();
    }
    tl_lock *la = tl__conformance_must(a, k1, TL_EXCLUSIVE, 0);
    tl_lock *lb = tl__conformance_must(b, k2, TL_EXCLUSIVE, 0);
    (void)snprintf(holding, sizeof(holding), "x %s %llu", k2,
                   (unsigned long long)tl_lock_token(lb));
    struct tl_store *s = b->store;
    if (dead_waiter) {
        uint32_t short_ms = tl__conformance_short_timeout();
        join_line(s, "nocyc-b", k1, "0123456789abcdef0123456789abcdef", holding, short_ms);
        struct dead_probe p = {.m = a, .key = k1, .worker = "nocyc-b"};
        if (!tl_test_poll(planted_is_dead, &p, 20, short_ms * 20 + 10000))
            fail_msg("the planted waiter never died");
    } else {
        /* b's manager stops heartbeating k2; its waiter stays live (a long waiter timeout). */
        join_line(s, "nocyc-b", k1, "fedcba9876543210fedcba9876543210", holding,
                  TL_CONFORMANCE_LONG_TIMEOUT_MS);
        tl_lock_free(lb);
        lb = NULL;
        tl__conformance_make_stale(a, k2);
        join_line(s, "nocyc-b", k1, "fedcba9876543210fedcba9876543210", holding,
                  TL_CONFORMANCE_LONG_TIMEOUT_MS);
    }

    /* a waits for k2, and gives up busy: no deadlock. */
    const struct tl_acquire_opts o = {.strategy = TL_RETRY, .deadline_ms = NO_DEADLOCK_WAIT_MS};
    tl_lock *l = NULL;
    tl_status st = tl_acquire(a, k2, &o, &l);
    if (st != TL_EBUSY)
        fail_msg("a's wait: %s, expected busy: %s", tl_strerror(st), tl_errmsg(a));
    if (lb != NULL)
        tl__conformance_must_release(lb);
    tl__conformance_must_release(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void a_dead_waiter_closes_no_cycle(void **state)
{
    (void)state;
    no_cycle_through(true, 50);
}

static void a_stale_holder_closes_no_cycle(void **state)
{
    (void)state;
    no_cycle_through(false, 52);
}

int tl__conformance_convert_run(const struct tl_conformance *c)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_upgrade_alone_is_immediate),
        cmocka_unit_test(an_upgrade_waits_at_the_head_for_the_other_holders),
        cmocka_unit_test(two_upgraders_one_gets_the_deadlock),
        cmocka_unit_test(a_downgrade_lets_queued_readers_in),
        cmocka_unit_test(a_two_cycle_is_reported_to_its_youngest_waiter),
        cmocka_unit_test(a_three_cycle_is_reported),
        cmocka_unit_test(a_dead_waiter_closes_no_cycle),
        cmocka_unit_test(a_stale_holder_closes_no_cycle),
    };
    char name[128];

    conf = c;
    tl_manager *m = mgr("convert-probe");
    bool modes = m->store->modes;
    bool convert = m->store->ops->version >= 5 && m->store->ops->convert != NULL;
    if (!modes || !convert) {
        int rc = 0;
        if (modes) {
            char kb[64];
            tl_lock *l = tl__conformance_must(m, key(40, kb), TL_SHARED, 0);
            tl_status st = tl_upgrade(l, NULL);
            if (st != TL_ENOTSUP) {
                fprintf(stderr,
                        "conformance %s: a store without convert answered %s to an "
                        "upgrade, not TL_ENOTSUP\n",
                        c->name, tl_strerror(st));
                rc = 1;
            }
            (void)tl_release(l, NULL);
            tl_lock_free(l);
        }
        tl_manager_free(m);
        if (rc == 0)
            fprintf(stderr, "conformance %s: the store cannot convert locks; their part skipped\n",
                    c->name);
        return rc;
    }
    tl_manager_free(m);
    (void)snprintf(name, sizeof(name), "conformance/%s/convert", c->name);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
