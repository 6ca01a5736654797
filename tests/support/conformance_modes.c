/*
 * conformance_modes.c -- the store contract's shared holders and semaphores (store.h, version
 * 5; DESIGN.md section 9), checked against any store through the public API. Run by
 * tl_conformance_run() after the other parts; keys 30-39. A store without shared holders must
 * refuse them with TL_ENOTSUP; the rest of the part is then skipped.
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

#define RACERS      8
#define RACE_ROUNDS 5

static const char *key(int n, char buf[64])
{
    return tl_conformance_key(conf, n, buf);
}

/* A manager on the real clock (waits in line need one; the fake-clock stores' suite clock is
 * for making locks stale, in a_stale_shared_holder_is_stolen only). */
static tl_manager *mgr(const char *worker)
{
    return tl__conformance_real_mgr(conf, "modes-node", worker);
}

static uint64_t wakeups(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt.wakeups;
}

/* The holders of `k`, checked to be `n`, in token order, each of `mode`. */
static void assert_holders(tl_manager *m, const char *k, size_t n, tl_mode mode)
{
    struct tl_info **hs = NULL;
    size_t count = 0;

    if (tl_holders(m, k, &hs, &count) != TL_OK)
        fail_msg("holders of %s: %s", k, tl_errmsg(m));
    if (count != n)
        fail_msg("%s has %zu holders, expected %zu", k, count, n);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(hs[i]->mode, mode);
        assert_string_equal(hs[i]->key, k);
        if (i > 0)
            assert_true(hs[i]->token > hs[i - 1]->token);
    }
    tl_info_array_free(hs, count);

    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(m, k, &info), TL_OK);
    if (n == 0) {
        assert_null(info);
        return;
    }
    assert_non_null(info);
    assert_int_equal(info->holders, n);
    tl_info_free(info);
}

/* ---- holders on threads ---- */

/* Starts a holder that waits in line for `k` in `mode` on a manager of its own, and waits until
 * it stands there as number `place` (observed by `observer`). */
static void start_holder(struct tl_conformance_job *h, const char *worker, const char *k,
                         tl_mode mode, tl_manager *observer, size_t place)
{
    memset(h, 0, sizeof(*h));
    h->m = mgr(worker);
    h->mode = mode;
    h->hold = true;
    tl__conformance_job_start(h, observer, k, place);
}

static void finish_holder(struct tl_conformance_job *h)
{
    atomic_store(&h->release, 1);
    pthread_join(h->thread, NULL);
    if (h->err[0] != '\0')
        fail_msg("%s: %s", tl_manager_worker_id(h->m), h->err);
    tl_lock_free(h->lock);
    tl_manager_free(h->m);
}

/* ---- the tests ---- */

static void shared_holders_share_and_exclude_a_writer(void **state)
{
    char kb[64];
    const char *k = key(30, kb);
    tl_manager *a = mgr("shared-a");
    tl_manager *b = mgr("shared-b");
    tl_manager *w = mgr("shared-w");
    tl_lock *la, *lb, *lw = NULL;

    (void)state;
    la = tl__conformance_must(a, k, TL_SHARED, 0);
    lb = tl__conformance_must(b, k, TL_SHARED, 0);
    assert_true(tl_lock_token(lb) > tl_lock_token(la));
    assert_holders(w, k, 2, TL_SHARED);

    assert_int_equal(tl__conformance_try(w, k, TL_EXCLUSIVE, 0, TL_FAIL_FAST, &lw), TL_EBUSY);
    assert_null(lw);
    assert_non_null(tl_last_holder(w));
    assert_int_equal(tl_last_holder(w)->mode, TL_SHARED);

    /* A release removes its holder only; the other keeps renewing. */
    tl__conformance_must_release(la);
    assert_holders(w, k, 1, TL_SHARED);
    assert_int_equal(tl_renew(lb), TL_OK);
    assert_int_equal(tl__conformance_try(w, k, TL_EXCLUSIVE, 0, TL_FAIL_FAST, &lw), TL_EBUSY);
    uint64_t last_shared = tl_lock_token(lb);
    tl__conformance_must_release(lb);
    assert_holders(w, k, 0, TL_SHARED);

    /* The writer's token is larger than every reader's; readers wait for the writer. */
    lw = tl__conformance_must(w, k, TL_EXCLUSIVE, 0);
    assert_true(tl_lock_token(lw) > last_shared);
    assert_holders(a, k, 1, TL_EXCLUSIVE);
    assert_int_equal(tl__conformance_try(a, k, TL_SHARED, 0, TL_FAIL_FAST, &la), TL_EBUSY);
    tl__conformance_must_release(lw);
    la = tl__conformance_must(a, k, TL_SHARED, 0);
    assert_true(tl_lock_token(la) > last_shared + 1);
    tl__conformance_must_release(la);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(w);
}

static void a_queued_writer_is_not_starved_by_new_readers(void **state)
{
    char kb[64];
    const char *k = key(31, kb);
    tl_manager *r1 = mgr("starve-r1");
    tl_manager *r2 = mgr("starve-r2");
    struct tl_conformance_job w;
    tl_lock *l2 = NULL;

    (void)state;
    tl_lock *l1 = tl__conformance_must(r1, k, TL_SHARED, 0);
    start_holder(&w, "starve-w", k, TL_EXCLUSIVE, r1, 1);

    /* A reader arriving after the queued writer waits behind it. */
    assert_int_equal(tl__conformance_try(r2, k, TL_SHARED, 0, TL_FAIL_FAST, &l2), TL_EBUSY);
    tl__conformance_must_release(l1);
    tl__conformance_job_await(&w);
    /* Woken once, by that release: never by its own claims while the reader held. */
    if (wakeups(w.m) > 2)
        fail_msg("the writer at the head was woken %llu times for one release",
                 (unsigned long long)wakeups(w.m));
    assert_holders(r2, k, 1, TL_EXCLUSIVE);
    assert_int_equal(tl__conformance_try(r2, k, TL_SHARED, 0, TL_FAIL_FAST, &l2), TL_EBUSY);
    finish_holder(&w);
    l2 = tl__conformance_must(r2, k, TL_SHARED, 0);
    tl__conformance_must_release(l2);
    tl_manager_free(r1);
    tl_manager_free(r2);
}

static void readers_queued_behind_a_writer_all_enter(void **state)
{
    char kb[64];
    const char *k = key(32, kb);
    tl_manager *wm = mgr("chain-w");
    struct tl_conformance_job r[3];

    (void)state;
    tl_lock *lw = tl__conformance_must(wm, k, TL_EXCLUSIVE, 0);
    for (size_t i = 0; i < 3; i++) {
        char name[32];
        (void)snprintf(name, sizeof(name), "chain-r%zu", i);
        start_holder(&r[i], name, k, TL_SHARED, wm, i + 1);
    }
    uint64_t wt = tl_lock_token(lw);
    tl__conformance_must_release(lw);
    /* Each reader that enters leaves another reader at the head, who enters too: woken, not
     * by its own refresh (tens of seconds away). */
    for (size_t i = 0; i < 3; i++) {
        tl__conformance_job_await(&r[i]);
        assert_true(tl_lock_token(r[i].lock) > wt);
        if (wakeups(r[i].m) < 1)
            fail_msg("reader %zu entered without being woken", i);
    }
    assert_holders(wm, k, 3, TL_SHARED);
    for (size_t i = 0; i < 3; i++)
        finish_holder(&r[i]);
    assert_holders(wm, k, 0, TL_SHARED);
    tl_manager_free(wm);
}

static void a_semaphore_admits_at_most_its_slots(void **state)
{
    char kb[64];
    const char *k = key(33, kb);
    tl_manager *a = mgr("sem-a");
    tl_manager *b = mgr("sem-b");
    tl_manager *c = mgr("sem-c");
    tl_lock *lc = NULL;

    (void)state;
    tl_lock *la = tl__conformance_must(a, k, TL_EXCLUSIVE, 2); /* slots make it shared */
    assert_int_equal(tl_lock_mode(la), TL_SHARED);
    assert_int_equal(la->rec.info.slots, 2);
    tl_lock *lb = tl__conformance_must(b, k, TL_SHARED, 2);
    assert_int_equal(tl__conformance_try(c, k, TL_SHARED, 2, TL_FAIL_FAST, &lc), TL_EBUSY);
    assert_int_equal(tl__conformance_try(c, k, TL_EXCLUSIVE, 0, TL_FAIL_FAST, &lc), TL_EBUSY);

    /* Every holder must agree on the slots: a mismatch names both. */
    assert_int_equal(tl__conformance_try(c, k, TL_SHARED, 3, TL_FAIL_FAST, &lc), TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(c), "2 slots"));
    assert_non_null(strstr(tl_errmsg(c), "3"));
    assert_int_equal(tl__conformance_try(c, k, TL_SHARED, 0, TL_FAIL_FAST, &lc), TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(c), "2 slots"));
    assert_null(lc);
    /* Not even an acquire that would wait: the mismatch is answered at once, in no line. */
    const struct tl_acquire_opts wait3 = {.strategy = TL_RETRY,
                                          .deadline_ms = TL_CONFORMANCE_EVENT_LIMIT_MS,
                                          .mode = TL_SHARED,
                                          .slots = 3};
    assert_int_equal(tl_acquire(c, k, &wait3, &lc), TL_EINVAL);
    assert_null(lc);
    assert_int_equal(tl__conformance_live_waiters(c, k, NULL), 0);

    struct tl_info **hs = NULL;
    size_t n = 0;
    assert_int_equal(tl_holders(c, k, &hs, &n), TL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(hs[0]->slots, 2);
    assert_int_equal(hs[1]->slots, 2);
    tl_info_array_free(hs, n);

    tl__conformance_must_release(la);
    lc = tl__conformance_must(c, k, TL_SHARED, 2);
    tl__conformance_must_release(lb);
    tl__conformance_must_release(lc);

    /* Free again: another number of slots is a new semaphore. */
    la = tl__conformance_must(a, k, TL_SHARED, 1);
    assert_int_equal(tl__conformance_try(b, k, TL_SHARED, 1, TL_FAIL_FAST, &lb), TL_EBUSY);
    tl__conformance_must_release(la);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(c);
}

static void a_stale_shared_holder_is_stolen(void **state)
{
    char kb[64];
    const char *k = key(34, kb);
    tl_manager *gone = tl__conformance_mgr("stale-r", tl__conformance_short_timeout());
    tl_manager *live = tl__conformance_mgr("live-r", TL_CONFORMANCE_LONG_TIMEOUT_MS);
    tl_manager *taker = tl__conformance_mgr("taker-r", TL_CONFORMANCE_LONG_TIMEOUT_MS);
    tl_lock *lt = NULL;

    (void)state;
    tl_lock *lg = tl__conformance_must(gone, k, TL_SHARED, 2);
    struct tl_record held_gone = {0};
    assert_int_equal(tl__record_copy(&held_gone, &lg->rec), TL_OK);
    tl_manager_free(gone); /* stops heartbeating without releasing */
    tl__conformance_make_stale(taker, k);
    tl_lock *ll = tl__conformance_must(live, k, TL_SHARED, 2);

    /* Both slots are taken, one by a stale holder: only a steal gets in, displacing it. */
    assert_int_equal(tl__conformance_try(taker, k, TL_SHARED, 2, TL_FAIL_FAST, &lt), TL_EBUSY);
    assert_int_equal(tl__conformance_try(taker, k, TL_SHARED, 2, TL_STEAL_STALE, &lt), TL_OK);
    assert_true(tl_lock_token(lt) > tl_lock_token(ll));
    assert_holders(taker, k, 2, TL_SHARED);
    assert_int_equal(tl_renew(ll), TL_OK);

    struct tl_store *s = taker->store;
    int64_t beat;
    assert_int_equal(s->ops->renew(s, &held_gone, 2, &beat), TL_ELOST);
    tl__record_clear(&held_gone);

    struct tl_event **ev = NULL;
    size_t n = 0;
    if (tl_history(taker, k, 20, &ev, &n) == TL_OK) {
        bool stolen = false;
        for (size_t i = 0; i < n; i++)
            stolen = stolen || (ev[i]->kind == TL_EVENT_STOLEN && ev[i]->detail != NULL &&
                                strstr(ev[i]->detail, "stale-r") != NULL);
        tl_event_array_free(ev, n);
        assert_true(stolen);
    }
    tl__conformance_must_release(ll);
    tl__conformance_must_release(lt);
    tl_manager_free(live);
    tl_manager_free(taker);
}

static void a_forced_release_breaks_every_holder(void **state)
{
    char kb[64];
    const char *k = key(35, kb);
    tl_manager *a = mgr("break-a");
    tl_manager *b = mgr("break-b");
    tl_manager *admin = mgr("break-admin");
    tl_lock *lf = NULL;

    (void)state;
    tl_lock *la = tl__conformance_must(a, k, TL_SHARED, 0);
    tl_lock *lb = tl__conformance_must(b, k, TL_SHARED, 0);

    /* A forced acquire is exclusive only. */
    assert_int_equal(tl__conformance_try(admin, k, TL_SHARED, 0, TL_FORCE_ACQUIRE, &lf), TL_EINVAL);

    /* One holder by its token... */
    struct tl_info *former = NULL;
    assert_int_equal(tl_release_force(admin, k, tl_lock_token(la), "one", &former), TL_OK);
    assert_non_null(former);
    assert_int_equal(former->token, tl_lock_token(la));
    tl_info_free(former);
    assert_int_equal(tl_renew(la), TL_ELOST);
    assert_int_equal(tl_renew(lb), TL_OK);
    assert_holders(admin, k, 1, TL_SHARED);

    /* ...then every holder. */
    tl_lock *lc = tl__conformance_must(a, k, TL_SHARED, 0);
    assert_int_equal(tl_release_force(admin, k, 0, "all", &former), TL_OK);
    tl_info_free(former);
    assert_int_equal(tl_renew(lb), TL_ELOST);
    assert_int_equal(tl_renew(lc), TL_ELOST);
    assert_holders(admin, k, 0, TL_SHARED);

    /* A forced acquire takes the key from every holder. */
    tl_lock *l1 = tl__conformance_must(a, k, TL_SHARED, 0);
    tl_lock *l2 = tl__conformance_must(b, k, TL_SHARED, 0);
    assert_int_equal(tl__conformance_try(admin, k, TL_EXCLUSIVE, 0, TL_FORCE_ACQUIRE, &lf), TL_OK);
    assert_int_equal(tl_renew(l1), TL_ELOST);
    assert_int_equal(tl_renew(l2), TL_ELOST);
    assert_holders(admin, k, 1, TL_EXCLUSIVE);
    tl__conformance_must_release(lf);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_lock_free(lc);
    tl_lock_free(l1);
    tl_lock_free(l2);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(admin);
}

static void list_shows_every_holder(void **state)
{
    char kb[64];
    const char *k = key(36, kb);
    tl_manager *a = mgr("list-a");
    tl_manager *b = mgr("list-b");
    struct tl_info **all = NULL;
    size_t n = 0, mine = 0;

    (void)state;
    tl_lock *la = tl__conformance_must(a, k, TL_SHARED, 4);
    tl_lock *lb = tl__conformance_must(b, k, TL_SHARED, 4);
    tl_status st = tl_list(a, &all, &n);
    if (st == TL_ENOTSUP) {
        tl__conformance_must_release(la);
        tl__conformance_must_release(lb);
        tl_manager_free(a);
        tl_manager_free(b);
        skip();
    }
    assert_int_equal(st, TL_OK);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i]->key, k) != 0)
            continue;
        mine++;
        assert_int_equal(all[i]->mode, TL_SHARED);
        assert_int_equal(all[i]->slots, 4);
        assert_true(all[i]->token == tl_lock_token(la) || all[i]->token == tl_lock_token(lb));
    }
    tl_info_array_free(all, n);
    assert_int_equal(mine, 2);
    tl__conformance_must_release(la);
    tl__conformance_must_release(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- races ---- */

struct racer {
    pthread_t thread;
    tl_manager *m;
    const char *key;
    tl_mode mode;
    uint32_t slots;
    pthread_barrier_t *start, *tried;
    tl_status st;
    tl_lock *lock;
    char err[TL_ERRMSG_SIZE];
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;

    (void)pthread_barrier_wait(r->start);
    r->st = tl__conformance_try(r->m, r->key, r->mode, r->slots, TL_FAIL_FAST, &r->lock);
    if (r->st != TL_OK && r->st != TL_EBUSY)
        (void)snprintf(r->err, sizeof(r->err), "%s", tl_errmsg(r->m));
    (void)pthread_barrier_wait(r->tried); /* hold until everyone has tried */
    return NULL;
}

/* One round: RACERS threads try `k` at once; holders keep it until all have tried. */
static void race(const char *k, struct racer *rs, tl_manager **ms, bool mixed, uint32_t slots,
                 size_t *exclusive_wins, size_t *shared_wins)
{
    pthread_barrier_t start, tried;

    assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
    assert_int_equal(pthread_barrier_init(&tried, NULL, RACERS + 1), 0);
    *exclusive_wins = *shared_wins = 0;
    for (size_t i = 0; i < RACERS; i++) {
        rs[i] = (struct racer){.m = ms[i],
                               .key = k,
                               .mode = mixed && i % 2 == 0 ? TL_EXCLUSIVE : TL_SHARED,
                               .slots = slots,
                               .start = &start,
                               .tried = &tried};
        assert_int_equal(pthread_create(&rs[i].thread, NULL, racer_main, &rs[i]), 0);
    }
    (void)pthread_barrier_wait(&tried);
    for (size_t i = 0; i < RACERS; i++) {
        pthread_join(rs[i].thread, NULL);
        if (rs[i].st != TL_OK && rs[i].st != TL_EBUSY)
            fail_msg("racer %zu: %s: %s", i, tl_strerror(rs[i].st), rs[i].err);
        if (rs[i].st == TL_OK)
            (*(rs[i].mode == TL_EXCLUSIVE ? exclusive_wins : shared_wins))++;
    }
    for (size_t i = 0; i < RACERS; i++)
        if (rs[i].lock != NULL)
            tl__conformance_must_release(rs[i].lock);
    (void)pthread_barrier_destroy(&start);
    (void)pthread_barrier_destroy(&tried);
}

static void racers(tl_manager **ms, const char *prefix)
{
    for (size_t i = 0; i < RACERS; i++) {
        char name[32];
        (void)snprintf(name, sizeof(name), "%s-%zu", prefix, i);
        ms[i] = mgr(name);
    }
}

static void racing_for_a_semaphore_exactly_its_slots_win(void **state)
{
    char kb[64];
    const char *k = key(37, kb);
    tl_manager *ms[RACERS];
    struct racer rs[RACERS];

    (void)state;
    racers(ms, "semrace");
    for (int round = 0; round < RACE_ROUNDS; round++) {
        size_t ex, sh;
        race(k, rs, ms, false, 3, &ex, &sh);
        if (ex != 0 || sh != 3)
            fail_msg("round %d: %zu of %d racers got a semaphore of 3 slots", round, sh, RACERS);
    }
    for (size_t i = 0; i < RACERS; i++)
        tl_manager_free(ms[i]);
}

static void racing_readers_and_writers_never_mix(void **state)
{
    char kb[64];
    const char *k = key(38, kb);
    tl_manager *ms[RACERS];
    struct racer rs[RACERS];

    (void)state;
    racers(ms, "rwrace");
    for (int round = 0; round < RACE_ROUNDS; round++) {
        size_t ex, sh;
        race(k, rs, ms, true, 0, &ex, &sh);
        if (!(ex == 1 && sh == 0) && !(ex == 0 && sh >= 1))
            fail_msg("round %d: %zu writers and %zu readers held at once", round, ex, sh);
    }
    for (size_t i = 0; i < RACERS; i++)
        tl_manager_free(ms[i]);
}

int tl__conformance_modes_run(const struct tl_conformance *c)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shared_holders_share_and_exclude_a_writer),
        cmocka_unit_test(a_queued_writer_is_not_starved_by_new_readers),
        cmocka_unit_test(readers_queued_behind_a_writer_all_enter),
        cmocka_unit_test(a_semaphore_admits_at_most_its_slots),
        cmocka_unit_test(a_stale_shared_holder_is_stolen),
        cmocka_unit_test(a_forced_release_breaks_every_holder),
        cmocka_unit_test(list_shows_every_holder),
        cmocka_unit_test(racing_for_a_semaphore_exactly_its_slots_win),
        cmocka_unit_test(racing_readers_and_writers_never_mix),
    };
    char name[128];

    conf = c;
    tl_manager *m = mgr("modes-probe");
    bool modes = m->store->modes;
    if (!modes) {
        char kb[64];
        tl_lock *l = NULL;
        tl_status st = tl__conformance_try(m, key(30, kb), TL_SHARED, 0, TL_FAIL_FAST, &l);
        tl_manager_free(m);
        if (st != TL_ENOTSUP) {
            fprintf(stderr,
                    "conformance %s: a store without shared holders answered %s to a "
                    "shared acquire, not TL_ENOTSUP\n",
                    c->name, tl_strerror(st));
            tl_lock_free(l);
            return 1;
        }
        fprintf(stderr, "conformance %s: the store has no shared holders; their part skipped\n",
                c->name);
        return 0;
    }
    tl_manager_free(m);
    (void)snprintf(name, sizeof(name), "conformance/%s/modes", c->name);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
