/*
 * test_redis_next.c -- the Redis store's claim-next and done markers beyond the conformance
 * suite, on the server that tests/harness/start-redis started ($TL_TEST_REDIS_URI; skipped when
 * unset): one round trip per claim-next and per release-and-claim-next; where the marker lives
 * (a hash without a TTL); a waiting claim-next woken by the store (a release, a reopen, a leave
 * that empties a line) long before its backoff, and not by other keys' releases; a claim-next
 * sent again after a lost reply claims once; garbage under the prefix. Each test has a prefix of
 * its own. Waits are bounded polls.
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
#include <unistd.h>

#include <cmocka.h>

#include "manager.h"
#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

#ifndef TL_WITH_REDIS
int main(void)
{
    (void)fprintf(stderr, "redis next: this build has no Redis store; skipped\n");
    return 77;
}
#else

#include <hiredis/hiredis.h>

#include "stores/redis_int.h"

#define LONG_TIMEOUT_MS 60000
#define LIMIT_MS        20000

static const char *base_url;
static char host[64];
static int port;
static int prefix_seq;

static const struct tl_acquire_opts fail_fast = {.strategy = TL_FAIL_FAST};

struct env {
    char prefix[64];
    char url[512];
    redisContext *admin;
};

static void env_init(struct env *e, const char *what)
{
    (void)snprintf(e->prefix, sizeof(e->prefix), "next-%ld-%s-%d:", (long)getpid(), what,
                   ++prefix_seq);
    (void)snprintf(e->url, sizeof(e->url), "%s?prefix=%s", base_url, e->prefix);
    e->admin = redisConnect(host, port);
    assert_non_null(e->admin);
    assert_int_equal(e->admin->err, 0);
}

static void env_fini(struct env *e)
{
    redisFree(e->admin);
}

static tl_manager *manager_timeout(const struct env *e, const char *worker, uint32_t backoff_ms,
                                   uint32_t lock_timeout_ms)
{
    const struct tl_options o = {.store_url = e->url,
                                 .worker_id = worker,
                                 .node_id = "next-node",
                                 .lock_timeout_ms = lock_timeout_ms,
                                 .backoff_initial_ms = backoff_ms ? backoff_ms : 10,
                                 .backoff_max_ms = backoff_ms ? backoff_ms : 10};
    tl_manager *m = tl_manager_new(&o);

    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect %s: %s", e->url, tl_errmsg(m));
    return m;
}

static tl_manager *manager(const struct env *e, const char *worker, uint32_t backoff_ms)
{
    return manager_timeout(e, worker, backoff_ms, LONG_TIMEOUT_MS);
}

static redisReply *admin(const struct env *e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(e->admin, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static long long admin_int(const struct env *e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(e->admin, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static struct tl_redis_stats stats_of(const tl_manager *m)
{
    struct tl_redis_stats st;

    assert_true(tl__redis_stats(m->store, &st));
    return st;
}

static tl_lock *must_acquire(tl_manager *m, const char *k)
{
    tl_lock *l = NULL;

    if (tl_acquire(m, k, &fail_fast, &l) != TL_OK)
        fail_msg("acquire %s: %s", k, tl_errmsg(m));
    return l;
}

static void release_done(tl_lock *l)
{
    const struct tl_release_opts o = {.summary = "done", .done = true};

    assert_int_equal(tl_release_with(l, &o), TL_OK);
    tl_lock_free(l);
}

static void claim_next_and_release_claim_next_are_one_round_trip_each(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, "rt");
    tl_manager *m = manager(&e, "rt-worker", 0);
    const char *keys[] = {"t0", "t1", "t2"};

    uint64_t before = stats_of(m).round_trips;
    tl_lock *l = NULL;
    assert_int_equal(tl_claim_next(m, keys, 3, &fail_fast, &l), TL_OK);
    assert_string_equal(tl_lock_key(l), "t0");
    assert_int_equal(stats_of(m).round_trips - before, 1);

    for (int i = 1; i <= 3; i++) {
        tl_lock *next = NULL;
        before = stats_of(m).round_trips;
        tl_status st = tl_release_claim_next(l, "ok", true, keys, 3, &fail_fast, &next);
        assert_int_equal(stats_of(m).round_trips - before, 1);
        tl_lock_free(l);
        if (i == 3) {
            assert_int_equal(st, TL_ENOTASK);
            assert_null(next);
            break;
        }
        assert_int_equal(st, TL_OK);
        assert_string_equal(tl_lock_key(next), keys[i]);
        l = next;
    }

    /* Every candidate done: one round trip to learn it. */
    before = stats_of(m).round_trips;
    assert_int_equal(tl_claim_next(m, keys, 3, &fail_fast, &l), TL_ENOTASK);
    assert_int_equal(stats_of(m).round_trips - before, 1);
    tl_manager_free(m);
    env_fini(&e);
}

static void the_done_marker_is_a_hash_without_ttl(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, "marker");
    tl_manager *m = manager(&e, "marker-worker", 0);
    const char *keys[] = {"job"};

    tl_lock *l = NULL;
    assert_int_equal(tl_claim_next(m, keys, 1, &fail_fast, &l), TL_OK);
    char token[24];
    (void)snprintf(token, sizeof(token), "%llu", (unsigned long long)tl_lock_token(l));
    const struct tl_release_opts o = {.summary = "shipped it", .done = true};
    assert_int_equal(tl_release_with(l, &o), TL_OK);
    tl_lock_free(l);

    redisReply *r = admin(&e, "TYPE %sdone:job", e.prefix);
    assert_string_equal(r->str, "hash");
    freeReplyObject(r);
    assert_int_equal(admin_int(&e, "PTTL %sdone:job", e.prefix), -1);
    assert_int_equal(admin_int(&e, "EXISTS %slock:job", e.prefix), 0);
    r = admin(&e, "HMGET %sdone:job worker_id node_id token summary", e.prefix);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "marker-worker");
    assert_string_equal(r->element[1]->str, "next-node");
    assert_string_equal(r->element[2]->str, token);
    assert_string_equal(r->element[3]->str, "shipped it");
    freeReplyObject(r);

    /* The audit trail says done, then reopened. */
    struct tl_event **ev = NULL;
    size_t n = 0;
    assert_int_equal(tl_history(m, "job", 10, &ev, &n), TL_OK);
    assert_true(n >= 2);
    assert_int_equal(ev[n - 1]->kind, TL_EVENT_DONE);
    tl_event_array_free(ev, n);
    bool was = false;
    assert_int_equal(tl_reopen(m, "job", &was), TL_OK);
    assert_true(was);
    assert_int_equal(admin_int(&e, "EXISTS %sdone:job", e.prefix), 0);
    assert_int_equal(tl_history(m, "job", 10, &ev, &n), TL_OK);
    assert_int_equal(ev[n - 1]->kind, TL_EVENT_REOPENED);
    assert_non_null(strstr(ev[n - 1]->detail, "marker-worker"));
    tl_event_array_free(ev, n);

    /* Many markers: listed in key order, across SCAN batches. */
    char name[32];
    for (int i = 0; i < 1200; i++) {
        (void)snprintf(name, sizeof(name), "many-%04d", i);
        l = must_acquire(m, name);
        release_done(l);
    }
    struct tl_done **d = NULL;
    assert_int_equal(tl_list_done(m, NULL, &d, &n), TL_OK);
    assert_int_equal(n, 1200);
    for (size_t i = 0; i < n; i++) {
        (void)snprintf(name, sizeof(name), "many-%04zu", i);
        assert_string_equal(d[i]->key, name);
    }
    tl_done_array_free(d, n);
    tl_manager_free(m);
    env_fini(&e);
}

/* ---- waiting ---- */

struct waiter {
    pthread_t thread;
    tl_manager *m;
    const char *const *keys;
    size_t n;
    tl_status st;
    tl_lock *lock;
    int64_t ended;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    const struct tl_acquire_opts o = {.strategy = TL_RETRY, .deadline_ms = LIMIT_MS};

    w->st = tl_claim_next(w->m, w->keys, w->n, &o, &w->lock);
    w->ended = tl__real_mono_ms();
    return NULL;
}

/* Someone listens on the prefix's release channels (a waiting claim-next): a message on a
 * channel that is no candidate's reaches it (and is ignored). */
static bool listening(void *arg)
{
    const struct env *e = arg;
    redisReply *r = redisCommand(e->admin, "PUBLISH %sreleased:nobody 0", e->prefix);

    bool yes = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    return yes;
}

/* Starts a claim-next that waits with a backoff of 5 s, and waits until it listens. */
static void waiter_start(struct waiter *w, const struct env *e, const char *const *keys, size_t n)
{
    memset(w, 0, sizeof(*w));
    w->m = manager(e, "waiter", 5000);
    w->keys = keys;
    w->n = n;
    assert_int_equal(pthread_create(&w->thread, NULL, waiter_main, w), 0);
    assert_true(tl_test_poll(listening, (void *)e, 5, LIMIT_MS));
}

/* Joins the waiter, which must have claimed `key` within 2 s of `since` (its backoff: 5 s). */
static void waiter_expect(struct waiter *w, const char *key, int64_t since)
{
    assert_int_equal(pthread_join(w->thread, NULL), 0);
    if (w->st != TL_OK)
        fail_msg("waiting claim-next: %s: %s", tl_strerror(w->st), tl_errmsg(w->m));
    assert_string_equal(tl_lock_key(w->lock), key);
    if (w->ended - since > 2000)
        fail_msg("the waiter took %lld ms to wake", (long long)(w->ended - since));
    /* Woken by the message, or it was free already when the waiter looked after subscribing. */
    struct tl_redis_stats st = stats_of(w->m);
    assert_true(st.any_woke_by_message + st.any_woke_by_recheck >= 1);
    assert_int_equal(tl_release(w->lock, NULL), TL_OK);
    tl_lock_free(w->lock);
    tl_manager_free(w->m);
}

static void a_release_wakes_a_waiting_claim_next(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, "wake");
    tl_manager *h = manager(&e, "holder", 0);
    static const char *const keys[] = {"w0", "w1"};
    tl_lock *h0 = must_acquire(h, keys[0]);
    tl_lock *h1 = must_acquire(h, keys[1]);

    struct waiter w;
    waiter_start(&w, &e, keys, 2);
    /* Another key's release is not a candidate's: the waiter sleeps on. */
    tl_lock *other = must_acquire(h, "other");
    assert_int_equal(tl_release(other, NULL), TL_OK);
    tl_lock_free(other);
    int64_t since = tl__real_mono_ms();
    assert_int_equal(tl_release(h1, NULL), TL_OK);
    waiter_expect(&w, keys[1], since);

    assert_int_equal(tl_release(h0, NULL), TL_OK);
    tl_lock_free(h0);
    tl_lock_free(h1);
    tl_manager_free(h);
    env_fini(&e);
}

static void a_reopen_wakes_a_waiting_claim_next(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, "reopen");
    tl_manager *h = manager(&e, "holder", 0);
    static const char *const keys[] = {"r0", "r1"};
    release_done(must_acquire(h, keys[0]));
    tl_lock *h1 = must_acquire(h, keys[1]);

    struct waiter w;
    waiter_start(&w, &e, keys, 2);
    int64_t since = tl__real_mono_ms();
    bool was = false;
    assert_int_equal(tl_reopen(h, keys[0], &was), TL_OK);
    assert_true(was);
    waiter_expect(&w, keys[0], since);

    assert_int_equal(tl_release(h1, NULL), TL_OK);
    tl_lock_free(h1);
    tl_manager_free(h);
    env_fini(&e);
}

static void a_leave_that_empties_a_line_wakes_a_waiting_claim_next(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, "leave");
    static const char *const keys[] = {"q0"};
    tl_manager *h = manager(&e, "holder", 0);
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE];
    assert_int_equal(tl__store_open(e.url, NULL, &tl__real_clock, &h->log, &s, err), TL_OK);
    const struct tl_claim join = {
        .key = keys[0],
        .worker_id = "in-line",
        .node_id = "n",
        .task_info = "{}",
        .lock_timeout_ms = LONG_TIMEOUT_MS,
        .waiter_id = "0123456789abcdef0123456789abcdef",
        .waiter_timeout_ms = LONG_TIMEOUT_MS,
    };
    tl_lock *h0 = must_acquire(h, keys[0]);
    struct tl_claim_result res;
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->claim(s, &join, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    assert_int_equal(tl_release(h0, NULL), TL_OK); /* free, but someone is in line */
    tl_lock_free(h0);

    struct waiter w;
    waiter_start(&w, &e, keys, 1);
    int64_t since = tl__real_mono_ms();
    assert_int_equal(s->ops->leave(s, keys[0], join.waiter_id), TL_OK);
    waiter_expect(&w, keys[0], since);
    tl__store_close(s);
    tl_manager_free(h);
    env_fini(&e);
}

/* Stealing: nobody publishes when a lock goes stale; the wait ends when it does. */
static void a_stealing_claim_next_takes_a_task_when_it_goes_stale(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, "stale");
    tl_manager *gone = manager_timeout(&e, "gone", 0, 600);
    static const char *const keys[] = {"s0"};
    tl_lock *old = must_acquire(gone, keys[0]);
    uint64_t old_token = tl_lock_token(old);
    int64_t stale_at = tl__real_mono_ms() + 600;
    tl_manager_free(gone); /* stops heartbeating, frees `old`; the lock stays */

    tl_manager *m = manager(&e, "thief", 5000);
    const struct tl_acquire_opts steal = {.strategy = TL_STEAL_STALE, .deadline_ms = LIMIT_MS};
    tl_lock *l = NULL;
    assert_int_equal(tl_claim_next(m, keys, 1, &steal, &l), TL_OK);
    int64_t late = tl__real_mono_ms() - stale_at;
    if (late > 2000)
        fail_msg("took the stale task %lld ms after it went stale", (long long)late);
    assert_true(tl_lock_token(l) > old_token);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
    env_fini(&e);
}

/* wait_any itself: only the candidates' releases end it. */
struct later {
    pthread_t thread;
    const struct env *e;
    tl_lock *lock;
};

static void *release_later(void *arg)
{
    struct later *l = arg;

    if (tl_test_poll(listening, (void *)l->e, 5, LIMIT_MS))
        (void)tl_release(l->lock, NULL);
    return NULL;
}

static void wait_any_ignores_other_keys(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, "other");
    tl_manager *h = manager(&e, "holder", 0);
    tl_manager *m = manager(&e, "waiter", 0);
    static const char *const keys[] = {"mine"};
    const struct tl_candidates c = {.keys = keys, .nkeys = 1};
    tl_lock *held = must_acquire(h, keys[0]);
    struct later later = {.e = &e, .lock = must_acquire(h, "not-mine")};

    assert_int_equal(pthread_create(&later.thread, NULL, release_later, &later), 0);
    int64_t start = tl__real_mono_ms();
    assert_int_equal(m->store->ops->wait_any(m->store, &c, 800), TL_OK);
    int64_t took = tl__real_mono_ms() - start;
    assert_int_equal(pthread_join(later.thread, NULL), 0);
    assert_true(took >= 750);
    struct tl_redis_stats st = stats_of(m);
    assert_int_equal(st.any_waits, 1);
    assert_int_equal(st.any_woke_by_timeout, 1);
    assert_int_equal(st.any_woke_by_message, 0);

    /* Free already when it looks (after subscribing): no wait at all. */
    assert_int_equal(tl_release(held, NULL), TL_OK);
    start = tl__real_mono_ms();
    assert_int_equal(m->store->ops->wait_any(m->store, &c, 5000), TL_OK);
    assert_true(tl__real_mono_ms() - start < 2000);
    assert_int_equal(stats_of(m).any_woke_by_recheck, 1);

    tl_lock_free(held);
    tl_lock_free(later.lock);
    tl_manager_free(m);
    tl_manager_free(h);
    env_fini(&e);
}

/*
 * The claim-next script sent again (replay = 1) after its first sending won answers with that
 * win: it does not claim an earlier candidate that came free in between.
 */
static void a_resent_claim_next_claims_once(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, "replay");
    tl_manager *h = manager(&e, "holder", 0);
    tl_manager *m = manager(&e, "claimer", 0);
    static const char *const keys[] = {"a", "b"};
    tl_lock *ha = must_acquire(h, keys[0]);
    tl_lock *l = NULL;
    assert_int_equal(tl_claim_next(m, keys, 2, &fail_fast, &l), TL_OK);
    assert_string_equal(tl_lock_key(l), "b");
    assert_int_equal(tl_release(ha, NULL), TL_OK);
    tl_lock_free(ha);

    redisReply *r = admin(&e, "HGET %slock:b nonce", e.prefix);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char nonce[64];
    (void)snprintf(nonce, sizeof(nonce), "%s", r->str);
    freeReplyObject(r);
    const struct redis_store *rs = (const struct redis_store *)m->store;
    r = admin(&e,
              "EVALSHA %s 1 %shistory %s 86400000 100 claimer next-node {} 60000 normal %s 1 0 a "
              "b",
              rs->sha[SC_CLAIM_NEXT], e.prefix, e.prefix, nonce);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "won");
    assert_string_equal(r->element[2]->str, "replayed");
    assert_int_equal(r->element[3]->integer, 1);
    freeReplyObject(r);
    assert_int_equal(admin_int(&e, "EXISTS %slock:a", e.prefix), 0);

    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
    tl_manager_free(h);
    env_fini(&e);
}

static void garbage_under_the_prefix(void **state)
{
    (void)state;
    struct env e;
    env_init(&e, "garbage");
    tl_manager *m = manager(&e, "garbage-worker", 0);
    static const char *const keys[] = {"g0", "g1"};
    tl_lock *l = NULL;

    /* A done marker that is not a hash still marks the task done; listing it names it. */
    freeReplyObject(admin(&e, "SET %sdone:g0 junk", e.prefix));
    assert_int_equal(tl_claim_next(m, keys, 2, &fail_fast, &l), TL_OK);
    assert_string_equal(tl_lock_key(l), "g1");
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    struct tl_done **d = NULL;
    size_t n = 0;
    assert_int_equal(tl_list_done(m, "g0", &d, &n), TL_ESTORE);
    assert_non_null(strstr(tl_errmsg(m), "done:g0"));
    assert_int_equal(tl_list_done(m, NULL, &d, &n), TL_ESTORE);
    assert_int_equal(admin_int(&e, "DEL %sdone:g0", e.prefix), 1);
    freeReplyObject(admin(&e, "HSET %sdone:g0 worker_id w token x", e.prefix));
    assert_int_equal(tl_list_done(m, "g0", &d, &n), TL_ESTORE);
    assert_non_null(strstr(tl_errmsg(m), "not a tasklock done marker"));
    bool was = false;
    assert_int_equal(tl_reopen(m, "g0", &was), TL_OK);
    assert_true(was);
    assert_int_equal(tl_list_done(m, NULL, &d, &n), TL_OK);
    assert_int_equal(n, 0);
    tl_done_array_free(d, n);

    /* A candidate's record that is not a tasklock one: the claim-next says which. */
    freeReplyObject(admin(&e, "SET %slock:g0 junk", e.prefix));
    assert_int_equal(tl_claim_next(m, keys, 2, &fail_fast, &l), TL_ESTORE);
    assert_non_null(strstr(tl_errmsg(m), "lock:g0"));
    assert_null(l);
    tl_manager_free(m);
    env_fini(&e);
}

/* The core's limit of 10,000 candidates: one script call still, the done ones skipped. */
static void ten_thousand_candidates(void **state)
{
    (void)state;
    enum { N = 10000 };
    struct env e;
    env_init(&e, "many");
    tl_manager *m = manager(&e, "many-worker", 0);
    char(*names)[16] = calloc(N, sizeof(*names));
    const char **keys = calloc(N, sizeof(*keys));
    assert_non_null(names);
    assert_non_null(keys);
    for (int i = 0; i < N; i++) {
        (void)snprintf(names[i], sizeof(names[i]), "c%05d", i);
        keys[i] = names[i];
        if (i < N - 1)
            assert_int_equal(redisAppendCommand(e.admin,
                                                "HSET %sdone:%s worker_id w node_id n token 1 "
                                                "done_at 1 summary s",
                                                e.prefix, names[i]),
                             REDIS_OK);
    }
    for (int i = 0; i < N - 1; i++) {
        void *r = NULL;
        assert_int_equal(redisGetReply(e.admin, &r), REDIS_OK);
        freeReplyObject(r);
    }

    uint64_t before = stats_of(m).round_trips;
    tl_lock *l = NULL;
    assert_int_equal(tl_claim_next(m, keys, N, &fail_fast, &l), TL_OK);
    assert_string_equal(tl_lock_key(l), keys[N - 1]);
    assert_int_equal(stats_of(m).round_trips - before, 1);

    /* All held or done: a waiting claim-next's wait over all of them ends by its time. */
    const struct tl_candidates c = {.keys = keys, .nkeys = N};
    assert_int_equal(m->store->ops->wait_any(m->store, &c, 200), TL_OK);
    assert_int_equal(stats_of(m).any_woke_by_timeout, 1);
    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next(m, keys, N, &fail_fast, &none), TL_EBUSY);
    assert_non_null(strstr(tl_errmsg(m), "9999 done"));
    release_done(l);
    assert_int_equal(tl_claim_next(m, keys, N, &fail_fast, &none), TL_ENOTASK);
    struct tl_done **d = NULL;
    size_t n = 0;
    assert_int_equal(tl_list_done(m, NULL, &d, &n), TL_OK);
    assert_int_equal(n, N);
    tl_done_array_free(d, n);
    free(names);
    free((void *)keys);
    tl_manager_free(m);
    env_fini(&e);
}

int main(void)
{
    base_url = tl_test_env("TL_TEST_REDIS_URI");
    if (base_url == NULL) {
        (void)fprintf(stderr, "redis next: TL_TEST_REDIS_URI is not set; skipped\n");
        return 77;
    }
    if (sscanf(base_url, "redis://%63[^:]:%d", host, &port) != 2 || strchr(base_url, '?')) {
        (void)fprintf(stderr, "redis next: cannot use %s\n", base_url);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claim_next_and_release_claim_next_are_one_round_trip_each),
        cmocka_unit_test(the_done_marker_is_a_hash_without_ttl),
        cmocka_unit_test(a_release_wakes_a_waiting_claim_next),
        cmocka_unit_test(a_reopen_wakes_a_waiting_claim_next),
        cmocka_unit_test(a_leave_that_empties_a_line_wakes_a_waiting_claim_next),
        cmocka_unit_test(a_stealing_claim_next_takes_a_task_when_it_goes_stale),
        cmocka_unit_test(wait_any_ignores_other_keys),
        cmocka_unit_test(a_resent_claim_next_claims_once),
        cmocka_unit_test(garbage_under_the_prefix),
        cmocka_unit_test(ten_thousand_candidates),
    };
    return cmocka_run_group_tests_name("redis-next", tests, NULL, NULL);
}

#endif
