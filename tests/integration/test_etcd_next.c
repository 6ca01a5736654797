/*
 * test_etcd_next.c -- the etcd store's claim-next, on the etcd of tests/harness/start-etcd
 * ($TL_TEST_ETCD_URL; skipped when unset), beyond the conformance suite: a claim-next and a
 * release-and-claim-next are one request each; candidates beyond one transaction's limit are
 * tried batch after batch; a finish claims its own released key again (not done) or skips it
 * (done); keys an instance has seen done are stepped over cheaply, and claimed again once
 * reopened; done markers outlive the store instance that wrote them; a waiting claim-next is
 * woken by etcd (a reopen), not by its backoff.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager.h"
#include "store.h"
#include "stores/etcd.h"
#include "tasklock.h"
#include "tl.h"
#include "tl_test.h"

static const struct tl_logger quiet = {0};
static char url[512];

#define TIMEOUT_MS 60000

static struct tl_store *open_store(void)
{
    char err[TL_ERRMSG_SIZE] = "";
    struct tl_store *s = NULL;

    if (tl__store_open(url, NULL, &tl__real_clock, &quiet, &s, err) != TL_OK)
        fail_msg("open %s: %s", url, err);
    return s;
}

static struct tl_claim request(const char *worker, enum tl_claim_mode mode)
{
    return (struct tl_claim){.worker_id = worker,
                             .node_id = "next-n",
                             .task_info = "{}",
                             .lock_timeout_ms = TIMEOUT_MS,
                             .mode = mode};
}

static void claim(struct tl_store *s, const char *key, struct tl_record *out)
{
    struct tl_claim req = request("other", TL_CLAIM_NORMAL);
    struct tl_claim_result res;

    req.key = key;
    memset(&res, 0, sizeof(res));
    if (s->ops->claim(s, &req, &res) != TL_OK)
        fail_msg("claim %s: %s", key, s->errmsg);
    *out = res.rec;
}

static uint64_t requests(const struct tl_store *s)
{
    struct tl_etcd_stats st;

    assert_true(tl__etcd_stats(s, &st));
    return st.requests;
}

/* Keys PREFIX-0 .. PREFIX-(n-1) in `buf`, pointed at by `keys`. */
static void make_keys(const char *prefix, size_t n, char (*buf)[32], const char **keys)
{
    for (size_t i = 0; i < n; i++) {
        (void)snprintf(buf[i], 32, "%s-%zu", prefix, i);
        keys[i] = buf[i];
    }
}

static bool has_done(struct tl_store *s, const char *key, const char *worker, uint64_t token)
{
    struct tl_done **d = NULL;
    size_t n = 0;

    if (s->ops->done_list(s, key, &d, &n) != TL_OK)
        fail_msg("done_list: %s", s->errmsg);
    bool found = n == 1 && strcmp(d[0]->key, key) == 0 && strcmp(d[0]->worker_id, worker) == 0 &&
                 d[0]->token == token;
    tl_done_array_free(d, n);
    return found;
}

static void claim_next_and_finish_next_are_one_request_each(void **state)
{
    char buf[3][32];
    const char *keys[3];
    struct tl_store *a = open_store();
    struct tl_claim req = request("one-rt", TL_CLAIM_NORMAL);
    const struct tl_candidates c = {.keys = keys, .nkeys = 3};
    struct tl_claim_result r0, r1;
    struct tl_next_tally t;
    size_t won = 0;

    (void)state;
    make_keys("onert", 3, buf, keys);
    memset(&r0, 0, sizeof(r0));
    memset(&r1, 0, sizeof(r1));
    /* The first one grants the lease; then one transaction per claim-next. */
    assert_int_equal(a->ops->claim_next(a, &req, &c, &r0, &won, &t), TL_OK);
    assert_int_equal(won, 0);
    uint64_t before = requests(a);
    assert_int_equal(a->ops->claim_next(a, &req, &c, &r1, &won, &t), TL_OK);
    assert_int_equal(won, 1);
    assert_int_equal(requests(a) - before, 1);
    assert_true(r1.rec.info.token > r0.rec.info.token);

    /* Done with 1, and the next: 0 is held, 1 done, so 2 -- one request. */
    struct tl_finish_result fr;
    memset(&fr, 0, sizeof(fr));
    struct tl_finish f = {
        .held = &r1.rec, .summary = "ok", .done = true, .next = &req, .candidates = &c};
    before = requests(a);
    assert_int_equal(a->ops->finish(a, &f, &fr), TL_OK);
    assert_int_equal(requests(a) - before, 1);
    assert_true(fr.next_tried);
    assert_int_equal(fr.next_status, TL_OK);
    assert_int_equal(fr.won, 2);
    assert_string_equal(fr.next.rec.info.key, keys[2]);
    assert_true(has_done(a, keys[1], "one-rt", r1.rec.info.token));

    /* Not done, and the released key is the first free candidate: claimed again at once, with
     * a new token, in the same request. */
    const struct tl_candidates c2 = {.keys = (const char *[]){keys[0], keys[2]}, .nkeys = 2};
    struct tl_finish_result fr2;
    memset(&fr2, 0, sizeof(fr2));
    struct tl_finish f2 = {.held = &fr.next.rec, .summary = "", .next = &req, .candidates = &c2};
    before = requests(a);
    assert_int_equal(a->ops->finish(a, &f2, &fr2), TL_OK);
    assert_int_equal(requests(a) - before, 1);
    assert_int_equal(fr2.next_status, TL_OK);
    assert_int_equal(fr2.won, 1);
    assert_string_equal(fr2.next.rec.info.key, keys[2]);
    assert_true(fr2.next.rec.info.token > fr.next.rec.info.token);
    struct tl_record seen = {0};
    bool found = false;
    assert_int_equal(a->ops->inspect(a, keys[2], &seen, &found), TL_OK);
    assert_true(found);
    assert_int_equal(seen.info.token, fr2.next.rec.info.token);
    assert_false(seen.info.stale);
    tl__record_clear(&seen);

    /* Done this time, with only itself and a held key left: nothing to claim. */
    struct tl_finish_result fr3;
    memset(&fr3, 0, sizeof(fr3));
    struct tl_finish f3 = {
        .held = &fr2.next.rec, .summary = "", .done = true, .next = &req, .candidates = &c2};
    assert_int_equal(a->ops->finish(a, &f3, &fr3), TL_OK);
    assert_true(fr3.next_tried);
    assert_int_equal(fr3.next_status, TL_EBUSY);
    assert_int_equal(fr3.tally.done, 1);
    assert_int_equal(fr3.tally.held, 1);
    assert_int_equal(a->ops->inspect(a, keys[2], &seen, &found), TL_OK);
    assert_false(found);

    assert_int_equal(a->ops->release(a, &r0.rec, NULL), TL_OK);
    bool was = false;
    for (int i = 0; i < 3; i++)
        assert_int_equal(a->ops->reopen(a, keys[i], "t", "n", &was), TL_OK);
    tl__record_clear(&r0.rec);
    tl__record_clear(&r1.rec);
    tl__record_clear(&fr.next.rec);
    tl__record_clear(&fr2.next.rec);
    tl__store_close(a);
}

static void many_candidates_are_tried_batch_after_batch(void **state)
{
    enum { N = 60, HELD = 55 };
    char buf[N][32];
    const char *keys[N];
    struct tl_record held[N];
    struct tl_store *a = open_store(), *b = open_store();
    struct tl_claim req = request("batches", TL_CLAIM_NORMAL);
    const struct tl_candidates c = {.keys = keys, .nkeys = N};
    struct tl_claim_result res;
    struct tl_next_tally t;
    size_t won = 0;

    (void)state;
    make_keys("batch", N, buf, keys);
    for (int i = 0; i < HELD; i++)
        claim(b, keys[i], &held[i]);
    memset(&res, 0, sizeof(res));
    assert_int_equal(a->ops->claim_next(a, &req, &c, &res, &won, &t), TL_OK);
    assert_int_equal(won, HELD);
    assert_string_equal(res.rec.info.key, keys[HELD]);

    /* The rest taken too: busy, every candidate counted once. */
    for (int i = HELD + 1; i < N; i++)
        claim(b, keys[i], &held[i]);
    struct tl_claim_result none;
    memset(&none, 0, sizeof(none));
    assert_int_equal(a->ops->claim_next(a, &req, &c, &none, &won, &t), TL_EBUSY);
    assert_int_equal(t.held, N);
    assert_int_equal(t.done + t.queued, 0);

    /* Some done: counted as done. */
    for (int i = 0; i < 3; i++) {
        struct tl_finish_result fr;
        memset(&fr, 0, sizeof(fr));
        const struct tl_finish f = {.held = &held[i], .summary = "", .done = true};
        assert_int_equal(b->ops->finish(b, &f, &fr), TL_OK);
        assert_false(fr.next_tried);
    }
    assert_int_equal(a->ops->claim_next(a, &req, &c, &none, &won, &t), TL_EBUSY);
    assert_int_equal(t.done, 3);
    assert_int_equal(t.held, N - 3);

    assert_int_equal(a->ops->release(a, &res.rec, NULL), TL_OK);
    tl__record_clear(&res.rec);
    for (int i = 3; i < N; i++)
        if (i != HELD)
            assert_int_equal(b->ops->release(b, &held[i], NULL), TL_OK);
    for (int i = 0; i < N; i++)
        if (i != HELD)
            tl__record_clear(&held[i]);
    tl__store_close(a);
    tl__store_close(b);
}

/* The widest transactions the store builds stay within etcd's 128 operations: a stealing
 * claim-next over more candidates than one transaction holds, and finishes with next whose
 * released key is a candidate (not done: a level of its own and deletes in the levels before). */
static void the_widest_transactions_pass(void **state)
{
    enum { N = 40, MID = 12 };
    char buf[N][32];
    const char *keys[N];
    struct tl_record held[N];
    struct tl_store *a = open_store(), *b = open_store();
    struct tl_claim steal = request("wide", TL_CLAIM_STEAL);
    const struct tl_candidates c = {.keys = keys, .nkeys = N};
    struct tl_claim_result none;
    struct tl_next_tally t;
    size_t won = 0;

    (void)state;
    make_keys("wide", N, buf, keys);
    for (int i = 0; i < N; i++)
        claim(i == MID ? a : b, keys[i], &held[i]);
    memset(&none, 0, sizeof(none));
    assert_int_equal(a->ops->claim_next(a, &steal, &c, &none, &won, &t), TL_EBUSY);
    assert_int_equal(t.held, N);

    for (int round = 0; round < 2; round++) {
        /* Round 0: not done, claimed again (it is the only free one); round 1: done. */
        struct tl_finish_result fr;
        memset(&fr, 0, sizeof(fr));
        const struct tl_finish f = {.held = &held[MID],
                                    .summary = "",
                                    .done = round == 1,
                                    .next = &steal,
                                    .candidates = &c};
        if (a->ops->finish(a, &f, &fr) != TL_OK)
            fail_msg("finish, round %d: %s", round, a->errmsg);
        assert_true(fr.next_tried);
        if (round == 0) {
            assert_int_equal(fr.next_status, TL_OK);
            assert_int_equal(fr.won, MID);
            tl__record_clear(&held[MID]);
            held[MID] = fr.next.rec;
        } else {
            assert_int_equal(fr.next_status, TL_EBUSY);
            assert_int_equal(fr.tally.held, N - 1);
            assert_int_equal(fr.tally.done, 1);
            tl__record_clear(&held[MID]);
        }
    }
    for (int i = 0; i < N; i++) {
        if (i != MID) {
            assert_int_equal(b->ops->release(b, &held[i], NULL), TL_OK);
            tl__record_clear(&held[i]);
        }
    }
    bool was = false;
    assert_int_equal(a->ops->reopen(a, keys[MID], "t", "n", &was), TL_OK);
    assert_true(was);
    tl__store_close(a);
    tl__store_close(b);
}

/* Keys an instance has seen done cost one op each in later chains (checked, not trusted): a
 * worker draining a long list steps over its finished front in one request, and a key reopened
 * meanwhile is claimed in its turn. */
static void a_finished_front_is_stepped_over_in_one_request(void **state)
{
    enum { N = 120, DONE = 100 };
    char buf[N][32];
    const char *keys[N];
    struct tl_store *a = open_store(), *b = open_store();
    struct tl_claim req = request("front", TL_CLAIM_NORMAL);
    const struct tl_candidates c = {.keys = keys, .nkeys = N};
    struct tl_claim_result res;
    struct tl_next_tally t;
    size_t won = 0;

    (void)state;
    make_keys("front", N, buf, keys);
    for (int i = 0; i < DONE; i++) {
        struct tl_record r;
        struct tl_finish_result fr;
        memset(&fr, 0, sizeof(fr));
        claim(b, keys[i], &r);
        const struct tl_finish f = {.held = &r, .summary = "", .done = true};
        assert_int_equal(b->ops->finish(b, &f, &fr), TL_OK);
        tl__record_clear(&r);
    }
    /* The first time, batch after batch; it learns which are done. */
    memset(&res, 0, sizeof(res));
    assert_int_equal(a->ops->claim_next(a, &req, &c, &res, &won, &t), TL_OK);
    assert_int_equal(won, DONE);
    assert_int_equal(a->ops->release(a, &res.rec, NULL), TL_OK);
    tl__record_clear(&res.rec);
    /* Then in one request. */
    uint64_t before = requests(a);
    assert_int_equal(a->ops->claim_next(a, &req, &c, &res, &won, &t), TL_OK);
    assert_int_equal(won, DONE);
    assert_int_equal(requests(a) - before, 1);

    /* Reopened elsewhere: claimed in its turn, though remembered as done. */
    bool was = false;
    assert_int_equal(b->ops->reopen(b, keys[50], "t", "n", &was), TL_OK);
    assert_true(was);
    struct tl_claim_result r50;
    memset(&r50, 0, sizeof(r50));
    assert_int_equal(a->ops->claim_next(a, &req, &c, &r50, &won, &t), TL_OK);
    assert_int_equal(won, 50);

    /* Done with it, and the next in the same request: 100 is ours, 101 is next. */
    struct tl_finish_result fr;
    memset(&fr, 0, sizeof(fr));
    const struct tl_finish f = {
        .held = &r50.rec, .summary = "", .done = true, .next = &req, .candidates = &c};
    before = requests(a);
    assert_int_equal(a->ops->finish(a, &f, &fr), TL_OK);
    assert_int_equal(requests(a) - before, 1);
    assert_int_equal(fr.next_status, TL_OK);
    assert_int_equal(fr.won, DONE + 1);

    /* Every one reopened, by another instance: all claimable again, in order. */
    for (int i = 0; i < DONE; i++)
        assert_int_equal(b->ops->reopen(b, keys[i], "t", "n", &was), TL_OK);
    struct tl_claim_result r0;
    memset(&r0, 0, sizeof(r0));
    assert_int_equal(a->ops->claim_next(a, &req, &c, &r0, &won, &t), TL_OK);
    assert_int_equal(won, 0);
    assert_int_equal(a->ops->release(a, &r0.rec, NULL), TL_OK);
    assert_int_equal(a->ops->release(a, &res.rec, NULL), TL_OK);
    assert_int_equal(a->ops->release(a, &fr.next.rec, NULL), TL_OK);
    tl__record_clear(&r0.rec);
    tl__record_clear(&r50.rec);
    tl__record_clear(&res.rec);
    tl__record_clear(&fr.next.rec);
    tl__store_close(a);
    tl__store_close(b);
}

static void done_markers_outlive_their_writer(void **state)
{
    char buf[2][32];
    const char *keys[2];
    struct tl_store *a = open_store();
    struct tl_record r;

    (void)state;
    make_keys("persist", 2, buf, keys);
    for (int i = 1; i >= 0; i--) {
        struct tl_finish_result fr;
        memset(&fr, 0, sizeof(fr));
        claim(a, keys[i], &r);
        const struct tl_finish f = {.held = &r, .summary = "shipped", .done = true};
        assert_int_equal(a->ops->finish(a, &f, &fr), TL_OK);
        tl__record_clear(&r);
    }
    tl__store_close(a);

    struct tl_store *b = open_store();
    struct tl_done **d = NULL;
    size_t n = 0;
    assert_int_equal(b->ops->done_list(b, NULL, &d, &n), TL_OK);
    size_t mine = 0;
    const char *prev = "";
    for (size_t i = 0; i < n; i++) {
        assert_true(strcmp(prev, d[i]->key) < 0); /* ordered by key */
        prev = d[i]->key;
        if (strncmp(d[i]->key, "persist-", 8) == 0) {
            mine++;
            assert_string_equal(d[i]->worker_id, "other");
            assert_string_equal(d[i]->node_id, "next-n");
            assert_string_equal(d[i]->summary, "shipped");
            assert_true(d[i]->token > 0);
            assert_true(d[i]->done_at_ms > 0);
        }
    }
    assert_int_equal(mine, 2);
    tl_done_array_free(d, n);
    bool was = false;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(b->ops->reopen(b, keys[i], "t", "n", &was), TL_OK);
        assert_true(was);
    }
    tl__store_close(b);
}

/* ---- a waiting claim-next, woken by a reopen ---- */

struct waiting {
    pthread_t thread;
    tl_manager *m;
    const char *const *keys;
    size_t n;
    int started;
    tl_status st;
    tl_lock *lock;
    int64_t took_ms;
};

static void *waiting_main(void *arg)
{
    struct waiting *w = arg;
    const struct tl_acquire_opts o = {.strategy = TL_RETRY, .deadline_ms = 30000};

    __atomic_store_n(&w->started, 1, __ATOMIC_SEQ_CST);
    int64_t t0 = tl__real_mono_ms();
    w->st = tl_claim_next(w->m, w->keys, w->n, &o, &w->lock);
    w->took_ms = tl__real_mono_ms() - t0;
    return NULL;
}

static bool has_started(void *arg)
{
    return __atomic_load_n(&((struct waiting *)arg)->started, __ATOMIC_SEQ_CST) != 0;
}

static void a_waiting_claim_next_is_woken_by_a_reopen(void **state)
{
    char buf[2][32];
    const char *keys[2];
    struct tl_store *a = open_store();
    struct tl_record r0, r1;

    (void)state;
    make_keys("wake", 2, buf, keys);
    claim(a, keys[0], &r0);
    struct tl_finish_result fr;
    memset(&fr, 0, sizeof(fr));
    const struct tl_finish f = {.held = &r0, .summary = "", .done = true};
    assert_int_equal(a->ops->finish(a, &f, &fr), TL_OK);
    claim(a, keys[1], &r1);

    /* Retries far apart: only the store's wake-up can make it quick. */
    const struct tl_options o = {.store_url = url,
                                 .worker_id = "wake-claimer",
                                 .lock_timeout_ms = TIMEOUT_MS,
                                 .backoff_initial_ms = 8000,
                                 .backoff_max_ms = 8000};
    struct waiting w = {.keys = keys, .n = 2};
    w.m = tl_manager_new(&o);
    assert_non_null(w.m);
    assert_int_equal(tl_connect(w.m), TL_OK);
    assert_int_equal(pthread_create(&w.thread, NULL, waiting_main, &w), 0);
    assert_true(tl_test_poll(has_started, &w, 1, 10000));
    const struct timespec pause = {.tv_sec = 0, .tv_nsec = 300L * 1000 * 1000};
    (void)nanosleep(&pause, NULL); /* into its wait */

    bool was = false;
    int64_t t0 = tl__real_mono_ms();
    assert_int_equal(a->ops->reopen(a, keys[0], "t", "n", &was), TL_OK);
    assert_true(was);
    assert_int_equal(pthread_join(w.thread, NULL), 0);
    if (w.st != TL_OK)
        fail_msg("waiting claim-next: %s: %s", tl_strerror(w.st), tl_errmsg(w.m));
    assert_string_equal(tl_lock_key(w.lock), keys[0]);
    int64_t after = tl__real_mono_ms() - t0;
    if (after > 4000)
        fail_msg("claimed %lld ms after the reopen: not woken by the store", (long long)after);
    struct tl_etcd_stats st;
    assert_true(tl__etcd_stats(w.m->store, &st));
    assert_true(st.watches >= 1); /* it waited on a watch, not on its backoff */
    assert_int_equal(tl_release(w.lock, NULL), TL_OK);
    tl_lock_free(w.lock);
    tl_manager_free(w.m);
    assert_int_equal(a->ops->release(a, &r1, NULL), TL_OK);
    tl__record_clear(&r0);
    tl__record_clear(&r1);
    tl__store_close(a);
}

int main(void)
{
    const char *base = tl_test_env("TL_TEST_ETCD_URL");

    if (base == NULL)
        return 77;
    if (tl__store_find(base) == NULL) {
        (void)fprintf(stderr, "etcd claim-next: this build has no etcd store; skipped\n");
        return 77;
    }
    (void)snprintf(url, sizeof(url), "%s?prefix=next-%lx-%ld/", base, (unsigned long)time(NULL),
                   (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claim_next_and_finish_next_are_one_request_each),
        cmocka_unit_test(many_candidates_are_tried_batch_after_batch),
        cmocka_unit_test(the_widest_transactions_pass),
        cmocka_unit_test(a_finished_front_is_stepped_over_in_one_request),
        cmocka_unit_test(done_markers_outlive_their_writer),
        cmocka_unit_test(a_waiting_claim_next_is_woken_by_a_reopen),
    };
    return cmocka_run_group_tests_name("etcd claim-next", tests, NULL, NULL);
}
