/*
 * test_etcd_lease.c -- the etcd store's leases, on the etcd of tests/harness/start-etcd
 * ($TL_TEST_ETCD_URL; skipped when unset): many locks on one lease cost one keep-alive per
 * interval, not one per lock; a lock outlives the process that took it and is kept live by
 * renewals from another (what `tasklock acquire` then `tasklock renew` does); and goes stale
 * when nobody renews it.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "stores/etcd.h"
#include "tasklock.h"
#include "tl.h"
#include "tl_test.h"

static const struct tl_logger quiet = {0};
static char url[512];

static struct tl_store *open_store(void)
{
    char err[TL_ERRMSG_SIZE] = "";
    struct tl_store *s = NULL;

    if (tl__store_open(url, NULL, &tl__real_clock, &quiet, &s, err) != TL_OK)
        fail_msg("open %s: %s", url, err);
    return s;
}

static void claim(struct tl_store *s, const char *key, uint32_t timeout, struct tl_record *out)
{
    const struct tl_claim req = {.key = key,
                                 .worker_id = "lease-w",
                                 .node_id = "lease-n",
                                 .task_info = "{}",
                                 .lock_timeout_ms = timeout,
                                 .mode = TL_CLAIM_NORMAL};
    struct tl_claim_result res;

    memset(&res, 0, sizeof(res));
    tl_status st = s->ops->claim(s, &req, &res);
    if (st != TL_OK)
        fail_msg("claim %s: %s: %s", key, tl_strerror(st), s->errmsg);
    *out = res.rec;
}

static void many_locks_share_one_keepalive(void **state)
{
    enum { N = 20 };
    struct tl_store *a = open_store(), *h = open_store();
    struct tl_record held[N];
    struct tl_etcd_stats st0, st1;
    char key[32];

    (void)state;
    for (int i = 0; i < N; i++) {
        (void)snprintf(key, sizeof(key), "many-%d", i);
        claim(a, key, 60000, &held[i]); /* long: the renews below fit in 1/6 of it, loaded */
    }
    /* The claims granted one lease and kept it alive: N claims, one grant. */
    assert_true(tl__etcd_stats(a, &st0));
    assert_int_equal(st0.grants, 1);

    /* A heartbeat round renews every lock: the first renew keeps the lease alive, the others
     * rely on it and say when it was sent. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            int64_t beat = 0;
            h->beat_sent_mono_ms = 0;
            if (h->ops->renew(h, &held[i], 1, &beat) != TL_OK)
                fail_msg("renew %d: %s", i, h->errmsg);
            if (round > 0 || i > 0)
                assert_true(h->beat_sent_mono_ms != 0);
        }
    }
    assert_true(tl__etcd_stats(h, &st1));
    assert_int_equal(st1.keepalives, 1);
    assert_int_equal(st1.renews, 2 * N);

    for (int i = 0; i < N; i++) {
        assert_int_equal(a->ops->release(a, &held[i], NULL), TL_OK);
        tl__record_clear(&held[i]);
    }
    tl__store_close(a);
    tl__store_close(h);
}

struct probe {
    struct tl_store *s;
    const char *key;
};

static bool stale_now(void *arg)
{
    struct probe *p = arg;
    struct tl_record r = {0};
    bool found = false;
    bool stale = p->s->ops->inspect(p->s, p->key, &r, &found) == TL_OK && found && r.info.stale;

    tl__record_clear(&r);
    return stale;
}

static void a_lock_outlives_its_process_and_is_renewed_from_another(void **state)
{
    const char *key = "outlives";
    struct tl_store *a = open_store();
    struct tl_record held;

    (void)state;
    claim(a, key, 2000, &held); /* a two-second lease */
    tl__record_clear(&held);
    tl__store_close(a); /* the process that took it is gone */

    /* Another one finds the lock and keeps it live, well past its lease's two seconds. */
    struct tl_store *b = open_store();
    struct tl_record found_rec = {0};
    bool found = false;
    assert_int_equal(b->ops->inspect(b, key, &found_rec, &found), TL_OK);
    assert_true(found);
    assert_false(found_rec.info.stale);
    int64_t until = tl__real_mono_ms() + 4000;
    while (tl__real_mono_ms() < until) {
        int64_t beat = 0;
        assert_int_equal(b->ops->renew(b, &found_rec, 1, &beat), TL_OK);
        struct probe p = {.s = b, .key = key};
        assert_false(stale_now(&p));
        tl__real_sleep_ms(500); /* the renewal interval under test, not a wait for an event */
    }

    /* Left alone, it goes stale by etcd's judgement; it is still held until taken. */
    struct probe p = {.s = b, .key = key};
    if (!tl_test_poll(stale_now, &p, 50, 20000))
        fail_msg("the lock never went stale");
    assert_int_equal(b->ops->release(b, &found_rec, NULL), TL_OK);
    tl__record_clear(&found_rec);
    tl__store_close(b);
}

static void a_waiter_keeps_its_watch_across_slices(void **state)
{
    const char *key = "slices";
    const struct tl_options o = {
        .store_url = url, .worker_id = "slices-a", .lock_timeout_ms = 60000};
    struct tl_options ob = o;
    tl_manager *a = tl_manager_new(&o), *b = NULL;
    tl_lock *la = NULL, *lb = NULL;
    volatile sig_atomic_t cancel = 0;
    struct tl_etcd_stats st;

    (void)state;
    ob.worker_id = "slices-b";
    b = tl_manager_new(&ob);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(tl_acquire(a, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &la),
                     TL_OK);
    /* With a cancel flag the core waits in slices of 100 ms: 2 s of waiting is about 20 slices,
     * and an open watch is reused for all of them (it is set up again only after
     * ETCD_WATCH_REUSE_MS, 5 s). */
    const struct tl_acquire_opts wait = {.deadline_ms = 2000, .cancel = &cancel};
    assert_int_equal(tl_acquire(b, key, &wait, &lb), TL_EBUSY);
    assert_true(tl__etcd_stats(b->store, &st));
    if (st.watches > 3)
        fail_msg("%llu watches for one wait of 2 s", (unsigned long long)st.watches);
    assert_int_equal(tl_release(la, NULL), TL_OK);
    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void the_audit_trail_is_trimmed(void **state)
{
    char small[600], err[TL_ERRMSG_SIZE] = "";
    struct tl_store *s = NULL;
    struct tl_event **ev = NULL;
    size_t n = 0;

    (void)state;
    (void)snprintf(small, sizeof(small), "%s", url);
    small[strlen(small) - 1] = '\0'; /* the prefix's "/" */
    (void)snprintf(small + strlen(small), sizeof(small) - strlen(small), "-trail/&history_max=10");
    if (tl__store_open(small, NULL, &tl__real_clock, &quiet, &s, err) != TL_OK)
        fail_msg("open %s: %s", small, err);
    /* 200 cycles write 400 events; one release in 16 counts them and trims to 10 once there are
     * more than 16: at most 16 + 2 * 16 remain. */
    for (int i = 0; i < 200; i++) {
        struct tl_record held;
        claim(s, "trail", 60000, &held);
        assert_int_equal(s->ops->release(s, &held, NULL), TL_OK);
        tl__record_clear(&held);
    }
    assert_int_equal(s->ops->history(s, "trail", 1000, &ev, &n), TL_OK);
    if (n < 10 || n > 48)
        fail_msg("%zu events kept of 400 (history_max=10)", n);
    /* The newest are kept, in order. */
    for (size_t i = 1; i < n; i++)
        assert_true(ev[i]->token >= ev[i - 1]->token);
    assert_int_equal(ev[n - 1]->kind, TL_EVENT_RELEASED);
    tl_event_array_free(ev, n);
    tl__store_close(s);
}

int main(void)
{
    const char *base = tl_test_env("TL_TEST_ETCD_URL");

    if (base == NULL)
        return 77;
    if (tl__store_find(base) == NULL) {
        (void)fprintf(stderr, "etcd leases: this build has no etcd store; skipped\n");
        return 77;
    }
    (void)snprintf(url, sizeof(url), "%s?prefix=lease-%lx-%ld/", base, (unsigned long)time(NULL),
                   (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_locks_share_one_keepalive),
        cmocka_unit_test(a_lock_outlives_its_process_and_is_renewed_from_another),
        cmocka_unit_test(a_waiter_keeps_its_watch_across_slices),
        cmocka_unit_test(the_audit_trail_is_trimmed),
    };
    return cmocka_run_group_tests_name("etcd leases", tests, NULL, NULL);
}
