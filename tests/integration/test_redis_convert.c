/*
 * test_redis_convert.c -- what the conformance part of conversions and deadlocks cannot see on
 * the Redis store: who an upgrader's waiter is woken by (exactly when it is the only holder),
 * the holding text kept across refreshes, every waiter of the store across keys (the set
 * PREFIX lines), the history of upgrades and downgrades, and an older tasklock (the version 4
 * scripts, frozen in test_redis_v4_scripts.h) beside an upgrader. Against the server of
 * tests/harness/start-redis ($TL_TEST_REDIS_URI; skipped when unset), under a prefix of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager.h"
#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

#ifndef TL_WITH_REDIS
int main(void)
{
    (void)fprintf(stderr, "redis convert: this build has no Redis store; skipped\n");
    return 77;
}
#else

#include <hiredis/hiredis.h>

#include "test_redis_v4_scripts.h"

#define LONG_TIMEOUT_MS  60000
#define SHORT_TIMEOUT_MS 300
#define EVENT_LIMIT_MS   30000

static char url[512];
static char prefix[64];
static redisContext *raw; /* a plain connection, for the old scripts and for garbage */

static tl_manager *mgr(const char *worker, uint32_t timeout_ms)
{
    const struct tl_options o = {.store_url = url,
                                 .worker_id = worker,
                                 .node_id = "convert-node",
                                 .lock_timeout_ms = timeout_ms};
    tl_manager *m = tl_manager_new(&o);

    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

static tl_lock *take(tl_manager *m, const char *k, tl_mode mode)
{
    const struct tl_acquire_opts o = {
        .strategy = TL_FAIL_FAST, .retries = TL_NO_RETRIES, .mode = mode};
    tl_lock *l = NULL;

    if (tl_acquire(m, k, &o, &l) != TL_OK)
        fail_msg("acquire of %s: %s", k, tl_errmsg(m));
    return l;
}

static void rkey(char out[256], const char *kind, const char *k)
{
    (void)snprintf(out, 256, "%s%s%s", prefix, kind, k);
}

static long long raw_int(const char *cmd, const char *a, const char *b)
{
    redisReply *r = b ? redisCommand(raw, cmd, a, b) : redisCommand(raw, cmd, a);

    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("%s %s: not an integer (%d)", cmd, a, r->type);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Whether waiter `wid` of `k` has a wake-up in its list. */
static bool woken(const char *k, const char *wid)
{
    char wk[256];

    (void)snprintf(wk, sizeof(wk), "%swake:%s:%s", prefix, k, wid);
    return raw_int("EXISTS %s", wk, NULL) == 1;
}

/* Whether PREFIX lines names `k`. */
static bool listed(const char *k)
{
    char gk[256];

    rkey(gk, "lines", "");
    return raw_int("SISMEMBER %s %s", gk, k) == 1;
}

/* A conversion of `held` straight through the store (no wait_turn serves its waiter, so its
 * wake-up list shows what the store sent). */
static tl_status store_convert(tl_manager *m, const struct tl_record *held, bool to_shared,
                               const char *wid, const char *holding, enum tl_claim_mode mode,
                               struct tl_claim_result *out)
{
    const struct tl_claim req = {.key = held->info.key,
                                 .worker_id = held->info.worker_id,
                                 .node_id = "convert-node",
                                 .task_info = held->info.task_info,
                                 .lock_timeout_ms = held->info.lock_timeout_ms,
                                 .mode = mode,
                                 .waiter_id = wid,
                                 .priority = wid ? TL_PRIORITY_UPGRADE : 0,
                                 .waiter_timeout_ms = wid ? LONG_TIMEOUT_MS : 0,
                                 .shared = to_shared,
                                 .holding = holding};

    memset(out, 0, sizeof(*out));
    tl_status st = m->store->ops->convert(m->store, held, &req, out);
    if (st != TL_OK && st != TL_EBUSY && st != TL_ELOST)
        fail_msg("convert of %s: %s", held->info.key, m->store->errmsg);
    return st;
}

/* A claim of `k` straight through the store, waiting as `wid` and listing `holding`. */
static tl_status store_claim(tl_manager *m, const char *k, const char *worker, const char *wid,
                             const char *holding, uint32_t waiter_timeout_ms)
{
    const struct tl_claim req = {.key = k,
                                 .worker_id = worker,
                                 .node_id = "convert-node",
                                 .task_info = "{}",
                                 .lock_timeout_ms = LONG_TIMEOUT_MS,
                                 .mode = TL_CLAIM_NORMAL,
                                 .waiter_id = wid,
                                 .waiter_timeout_ms = waiter_timeout_ms,
                                 .holding = holding};
    struct tl_claim_result out = {0};
    tl_status st = m->store->ops->claim(m->store, &req, &out);

    if (st != TL_OK && st != TL_EBUSY)
        fail_msg("claim of %s by %s: %s", k, worker, m->store->errmsg);
    tl__record_clear(&out.rec);
    return st;
}

/* The waiters of `k` (NULL: of the store); the one with waiter id `wid` is copied to *found. */
static size_t waiters_of(tl_manager *m, const char *k, const char *wid, struct tl_waiter *found)
{
    struct tl_waiter **ws = NULL;
    size_t n = 0, hits = 0;

    /* The public call takes a key; the graph's (key NULL) is the store's. */
    if (k != NULL ? tl_waiters(m, k, &ws, &n) != TL_OK
                  : m->store->ops->waiters(m->store, NULL, &ws, &n) != TL_OK)
        fail_msg("waiters of %s: %s / %s", k ? k : "the store", tl_errmsg(m), m->store->errmsg);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(ws[i]->holding);
        if (wid != NULL && strcmp(ws[i]->waiter_id, wid) == 0) {
            hits++;
            found->priority = ws[i]->priority;
            found->dead = ws[i]->dead;
            (void)snprintf(found->holding, TL_HOLDING_MAX + 1, "%s", ws[i]->holding);
            (void)snprintf(found->key, TL_KEY_MAX + 1, "%s", ws[i]->key);
        }
    }
    tl_waiter_array_free(ws, n);
    assert_true(hits <= 1);
    if (wid != NULL && hits == 0)
        fail_msg("waiter %s is not among the waiters of %s", wid, k ? k : "the store");
    return n;
}

/* A tl_waiter whose strings are buffers of their own, for waiters_of(). */
struct found {
    struct tl_waiter w;
    char holding[TL_HOLDING_MAX + 1];
    char key[TL_KEY_MAX + 1];
};

static struct tl_waiter *found_init(struct found *f)
{
    memset(f, 0, sizeof(*f));
    f->w.holding = f->holding;
    f->w.key = f->key;
    return &f->w;
}

/* ---- an upgrader's wake-ups ---- */

/* Three readers; the first upgrades and waits. Neither its own refresh nor the release of one
 * of the two others wakes it; the release of the last other one does, and its conversion then
 * wins (its waiter and wake-up gone). */
static void an_upgrader_is_woken_when_it_is_the_only_holder(void **state)
{
    const char *k = "up-woken";
    static const char wid[] = "000000000000000000000000000000a1";
    tl_manager *a = mgr("up-a", LONG_TIMEOUT_MS);
    tl_manager *b = mgr("up-b", LONG_TIMEOUT_MS);
    struct tl_claim_result res;

    (void)state;
    tl_lock *la = take(a, k, TL_SHARED);
    tl_lock *lb = take(b, k, TL_SHARED);
    tl_lock *lc = take(b, k, TL_SHARED);
    assert_int_equal(store_convert(a, &la->rec, false, wid, "x", TL_CLAIM_NORMAL, &res), TL_EBUSY);
    assert_true(res.holder_known);
    assert_int_equal(res.rec.info.token, tl_lock_token(lb)); /* the oldest other holder */
    assert_int_equal(res.waiting, 1);
    assert_int_equal(res.ahead, 0);
    tl__record_clear(&res.rec);
    assert_false(woken(k, wid));
    assert_int_equal(store_convert(a, &la->rec, false, wid, "x", TL_CLAIM_NORMAL, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    assert_false(woken(k, wid));

    assert_int_equal(tl_release(lb, NULL), TL_OK);
    assert_false(woken(k, wid)); /* lc still holds it */
    assert_int_equal(tl_release(lc, NULL), TL_OK);
    assert_true(woken(k, wid));

    assert_int_equal(store_convert(a, &la->rec, false, wid, "x", TL_CLAIM_NORMAL, &res), TL_OK);
    assert_int_equal(res.rec.info.mode, TL_EXCLUSIVE);
    assert_true(res.rec.info.token > tl_lock_token(lc));
    assert_false(woken(k, wid));
    assert_int_equal(waiters_of(a, k, NULL, NULL), 0);
    assert_false(listed(k)); /* its win emptied the line */
    assert_int_equal(a->store->ops->release(a->store, &res.rec, "done"), TL_OK);
    tl__record_clear(&res.rec);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_lock_free(lc);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* An upgrader whose own shared hold was broken meanwhile is woken when the others leave (it
 * holds nothing, the key is free), and its conversion answers TL_ELOST. */
static void an_upgrader_that_holds_nothing_is_woken_to_learn_it(void **state)
{
    const char *k = "up-lost";
    static const char wid[] = "000000000000000000000000000000a2";
    tl_manager *a = mgr("lost-a", LONG_TIMEOUT_MS);
    tl_manager *b = mgr("lost-b", LONG_TIMEOUT_MS);
    struct tl_claim_result res;
    struct tl_info *former = NULL;

    (void)state;
    tl_lock *la = take(a, k, TL_SHARED);
    tl_lock *lb = take(b, k, TL_SHARED);
    assert_int_equal(store_convert(a, &la->rec, false, wid, "x", TL_CLAIM_NORMAL, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    assert_int_equal(tl_release_force(b, k, tl_lock_token(la), "broken", &former), TL_OK);
    tl_info_free(former);
    assert_false(woken(k, wid)); /* lb holds it */
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    assert_true(woken(k, wid));
    assert_int_equal(store_convert(a, &la->rec, false, wid, "x", TL_CLAIM_NORMAL, &res), TL_ELOST);
    tl__record_clear(&res.rec);
    assert_int_equal(a->store->ops->leave(a->store, k, wid), TL_OK);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- the wait-for graph ---- */

/* A waiter's holding text is the one of its latest claim: replaced by a refresh, cleared by a
 * refresh without one; a waiter written before this version (no text) reads "". */
static void holding_follows_the_latest_claim(void **state)
{
    const char *k = "holding-kept";
    static const char wid[] = "000000000000000000000000000000b1";
    static const char old_wid[] = "000000000000000000000000000000b2";
    tl_manager *m = mgr("hold-obs", LONG_TIMEOUT_MS);
    struct found f;
    struct tl_waiter *w = found_init(&f);

    (void)state;
    tl_lock *l = take(m, k, TL_EXCLUSIVE);
    assert_int_equal(store_claim(m, k, "hold-w", wid, "x other 5", LONG_TIMEOUT_MS), TL_EBUSY);
    (void)waiters_of(m, k, wid, w);
    assert_string_equal(w->holding, "x other 5");
    assert_int_equal(w->priority, 0);
    assert_int_equal(store_claim(m, k, "hold-w", wid, "x other 5 more 7", LONG_TIMEOUT_MS),
                     TL_EBUSY);
    (void)waiters_of(m, k, wid, found_init(&f));
    assert_string_equal(f.holding, "x other 5 more 7");
    (void)waiters_of(m, NULL, wid, found_init(&f));
    assert_string_equal(f.holding, "x other 5 more 7");
    assert_string_equal(f.key, k);
    assert_int_equal(store_claim(m, k, "hold-w", wid, NULL, LONG_TIMEOUT_MS), TL_EBUSY);
    (void)waiters_of(m, k, wid, found_init(&f));
    assert_string_equal(f.holding, "");

    /* The previous version's claim: a waiter without the field. */
    char rk[256], ck[256], hk[256], lk[256], wk[256], sk[256], wp[256];
    rkey(rk, "lock:", k);
    rkey(ck, "token:", k);
    rkey(hk, "history", "");
    rkey(lk, "line:", k);
    rkey(wk, "waiters:", k);
    rkey(sk, "lineseq:", k);
    (void)snprintf(wp, sizeof(wp), "%swake:%s:", prefix, k);
    const char *args[] = {rk,      ck,         hk,   lk,      wk,       sk,
                          "old-w", "old-node", "{}", "60000", "normal", "old-nonce-1",
                          "60000", "1000",     k,    old_wid, "0",      "60000",
                          wp};
    static const char *const parts[] = {lua_prelude, lua_line, script_claim, script_claim_win,
                                        NULL};
    size_t len = 0;
    for (size_t i = 0; parts[i] != NULL; i++)
        len += strlen(parts[i]);
    char *text = calloc(1, len + 1);
    assert_non_null(text);
    for (size_t i = 0, at = 0; parts[i] != NULL; i++) {
        memcpy(text + at, parts[i], strlen(parts[i]));
        at += strlen(parts[i]);
    }
    const char *argv[3 + 19] = {"EVAL", text, "6"};
    for (int i = 0; i < 19; i++)
        argv[3 + i] = args[i];
    redisReply *r = redisCommandArgv(raw, 22, argv, NULL);
    free(text);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    (void)waiters_of(m, k, old_wid, found_init(&f));
    assert_string_equal(f.holding, "");
    assert_false(f.w.dead);

    assert_int_equal(m->store->ops->leave(m->store, k, wid), TL_OK);
    assert_int_equal(m->store->ops->leave(m->store, k, old_wid), TL_OK);
    assert_false(listed(k)); /* the last leave emptied the line */
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

struct dead_probe {
    tl_manager *m;
    const char *wid;
};

/* Whether waiter p->wid is among the store's waiters, marked dead. */
static bool listed_dead(void *arg)
{
    const struct dead_probe *p = arg;
    struct found f;

    (void)waiters_of(p->m, NULL, p->wid, found_init(&f));
    return f.w.dead;
}

/* A waiter whose win empties its line takes its key out of the set of lines; one that leaves
 * others behind does not. */
static void a_win_that_empties_the_line_unlists_the_key(void **state)
{
    const char *k = "win-unlists";
    static const char w1[] = "000000000000000000000000000000e1";
    static const char w2[] = "000000000000000000000000000000e2";
    tl_manager *m = mgr("unlist-obs", LONG_TIMEOUT_MS);
    const struct tl_acquire_opts shared = {
        .strategy = TL_FAIL_FAST, .retries = TL_NO_RETRIES, .mode = TL_SHARED};
    tl_lock *l = take(m, k, TL_EXCLUSIVE);
    struct tl_info *former = NULL;

    (void)state;
    assert_int_equal(store_claim(m, k, "unlist-1", w1, "x a 1", LONG_TIMEOUT_MS), TL_EBUSY);
    assert_int_equal(store_claim(m, k, "unlist-2", w2, NULL, LONG_TIMEOUT_MS), TL_EBUSY);
    assert_true(listed(k));
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    assert_int_equal(store_claim(m, k, "unlist-1", w1, NULL, LONG_TIMEOUT_MS), TL_OK);
    assert_true(listed(k)); /* w2 still waits */
    assert_int_equal(tl_release_force(m, k, 0, "next", &former), TL_OK);
    tl_info_free(former);
    assert_int_equal(store_claim(m, k, "unlist-2", w2, NULL, LONG_TIMEOUT_MS), TL_OK);
    assert_false(listed(k));
    assert_int_equal(tl_release_force(m, k, 0, "done", &former), TL_OK);
    tl_info_free(former);
    l = NULL;
    assert_int_equal(tl_acquire(m, k, &shared, &l), TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

/* waiters() with key NULL: every line's waiters, each with its key, an upgrader with
 * TL_PRIORITY_UPGRADE, dead ones marked; a name whose line is gone leaves the set. */
static void every_waiter_of_the_store_across_keys(void **state)
{
    const char *k1 = "graph-1", *k2 = "graph-2", *k3 = "graph-3";
    static const char w1[] = "000000000000000000000000000000c1";
    static const char w2[] = "000000000000000000000000000000c2";
    static const char w3[] = "000000000000000000000000000000c3";
    tl_manager *a = mgr("graph-a", LONG_TIMEOUT_MS);
    tl_manager *b = mgr("graph-b", LONG_TIMEOUT_MS);
    struct tl_claim_result res;
    struct found f;

    (void)state;
    tl_lock *l1 = take(b, k1, TL_EXCLUSIVE);
    tl_lock *l3 = take(b, k3, TL_EXCLUSIVE);
    tl_lock *l2a = take(a, k2, TL_SHARED);
    tl_lock *l2b = take(b, k2, TL_SHARED);
    assert_int_equal(store_claim(a, k1, "graph-a", w1, "x graph-2 1", LONG_TIMEOUT_MS), TL_EBUSY);
    assert_int_equal(store_convert(a, &l2a->rec, false, w2, "x graph-2 9", TL_CLAIM_NORMAL, &res),
                     TL_EBUSY);
    tl__record_clear(&res.rec);
    assert_int_equal(store_claim(a, k3, "graph-a", w3, "s", SHORT_TIMEOUT_MS), TL_EBUSY);
    assert_true(listed(k1) && listed(k2) && listed(k3));

    assert_int_equal(waiters_of(a, NULL, w1, found_init(&f)), 3);
    assert_string_equal(f.key, k1);
    assert_string_equal(f.holding, "x graph-2 1");
    assert_int_equal(f.w.priority, 0);
    (void)waiters_of(a, NULL, w2, found_init(&f));
    assert_string_equal(f.key, k2);
    assert_string_equal(f.holding, "x graph-2 9");
    assert_int_equal(f.w.priority, TL_PRIORITY_UPGRADE);
    (void)waiters_of(a, k2, w2, found_init(&f));
    assert_int_equal(f.w.priority, TL_PRIORITY_UPGRADE);

    /* w3 dies (a short waiter timeout, no refresh): still listed, marked dead. */
    struct dead_probe p = {.m = a, .wid = w3};
    assert_true(tl_test_poll(listed_dead, &p, 20, EVENT_LIMIT_MS));

    /* A name in the set whose line is gone (expired, or emptied by an older version). */
    char gk[256];
    rkey(gk, "lines", "");
    assert_int_equal(raw_int("SADD %s %s", gk, "graph-ghost"), 1);
    assert_int_equal(waiters_of(a, NULL, NULL, NULL), 3);
    assert_false(listed("graph-ghost"));

    assert_int_equal(a->store->ops->leave(a->store, k1, w1), TL_OK);
    assert_int_equal(a->store->ops->leave(a->store, k2, w2), TL_OK);
    assert_int_equal(a->store->ops->leave(a->store, k3, w3), TL_OK);
    assert_int_equal(waiters_of(a, NULL, NULL, NULL), 0);
    assert_false(listed(k1) || listed(k2) || listed(k3));
    assert_int_equal(tl_release(l1, NULL), TL_OK);
    assert_int_equal(tl_release(l3, NULL), TL_OK);
    assert_int_equal(tl_release(l2a, NULL), TL_OK);
    assert_int_equal(tl_release(l2b, NULL), TL_OK);
    tl_lock_free(l1);
    tl_lock_free(l3);
    tl_lock_free(l2a);
    tl_lock_free(l2b);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- history ---- */

static bool all_stale(void *arg)
{
    tl_manager *m = ((void **)arg)[0];
    const char *k = ((void **)arg)[1];
    struct tl_info **hs = NULL;
    size_t n = 0, stale = 0;

    if (tl_holders(m, k, &hs, &n) != TL_OK)
        return false;
    for (size_t i = 0; i < n; i++)
        stale += hs[i]->stale;
    tl_info_array_free(hs, n);
    return n > 0 && stale == n - 1;
}

/* An upgrade, a downgrade and a stealing upgrade that displaces a stale reader, as the history
 * reads them back; an event kind that is not one gives a clear error. */
static void the_history_reads_upgrades_and_downgrades(void **state)
{
    const char *k = "conv-history";
    tl_manager *a = mgr("hist-a", LONG_TIMEOUT_MS);
    tl_manager *gone = mgr("hist-gone", SHORT_TIMEOUT_MS);
    char want[128];

    (void)state;
    tl_lock *l = take(a, k, TL_SHARED);
    uint64_t t0 = tl_lock_token(l);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    assert_int_equal(tl_upgrade(l, &ff), TL_OK);
    uint64_t t1 = tl_lock_token(l);
    assert_int_equal(tl_downgrade(l), TL_OK);
    uint64_t t2 = tl_lock_token(l);
    (void)take(gone, k, TL_SHARED);
    tl_manager_free(gone); /* no heartbeat, no release: goes stale */
    void *probe[] = {a, (void *)k};
    assert_true(tl_test_poll(all_stale, probe, 20, EVENT_LIMIT_MS));
    assert_int_equal(tl_upgrade(l, &ff), TL_EBUSY);
    const struct tl_acquire_opts steal = {.strategy = TL_STEAL_STALE, .retries = TL_NO_RETRIES};
    assert_int_equal(tl_upgrade(l, &steal), TL_OK);
    uint64_t t3 = tl_lock_token(l);

    struct tl_event **ev = NULL;
    size_t n = 0;
    assert_int_equal(tl_history(a, k, 10, &ev, &n), TL_OK);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i]->kind == TL_EVENT_UPGRADED && ev[i]->token == t1) {
            (void)snprintf(want, sizeof(want), "from token %llu", (unsigned long long)t0);
            assert_string_equal(ev[i]->detail, want);
            seen |= 1;
        } else if (ev[i]->kind == TL_EVENT_DOWNGRADED && ev[i]->token == t2) {
            (void)snprintf(want, sizeof(want), "from token %llu", (unsigned long long)t1);
            assert_string_equal(ev[i]->detail, want);
            seen |= 2;
        } else if (ev[i]->kind == TL_EVENT_UPGRADED && ev[i]->token == t3) {
            (void)snprintf(want, sizeof(want), "from token %llu; displaced hist-gone (token ",
                           (unsigned long long)t2);
            assert_non_null(ev[i]->detail);
            assert_memory_equal(ev[i]->detail, want, strlen(want));
            seen |= 4;
        }
    }
    tl_event_array_free(ev, n);
    assert_int_equal(seen, 7);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);

    /* A kind this version does not know. */
    char hk[256];
    rkey(hk, "history", "");
    redisReply *r = redisCommand(raw,
                                 "XADD %s * at 1 event upgraded-twice key %s worker_id w "
                                 "node_id n token 1 detail x",
                                 hk, k);
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(tl_history(a, k, 10, &ev, &n), TL_ESTORE);
    assert_non_null(strstr(tl_errmsg(a), "is not a tasklock event"));
    tl_manager_free(a);
}

/* ---- an older tasklock ---- */

/* The previous version's claim, waiting, beside an upgrader in line: it reads the upgrader's
 * waiter (priority 1000 in its value), counts it ahead and keeps it (it deletes what it cannot
 * read); the upgrader stays at the head. */
static void an_older_claim_sees_the_upgrader_ahead(void **state)
{
    const char *k = "older-upgrader";
    static const char wid[] = "000000000000000000000000000000d1";
    static const char old_wid[] = "000000000000000000000000000000d2";
    tl_manager *a = mgr("older-a", LONG_TIMEOUT_MS);
    tl_manager *b = mgr("older-b", LONG_TIMEOUT_MS);
    struct tl_claim_result res;
    struct found f;

    (void)state;
    tl_lock *la = take(a, k, TL_SHARED);
    tl_lock *lb = take(b, k, TL_SHARED);
    assert_int_equal(store_convert(a, &la->rec, false, wid, "x", TL_CLAIM_NORMAL, &res), TL_EBUSY);
    tl__record_clear(&res.rec);

    char wk[256];
    rkey(wk, "waiters:", k);
    redisReply *r = redisCommand(raw, "HGET %s %s", wk, wid);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    unsigned long long seq;
    int prio;
    assert_int_equal(sscanf(r->str, "%llu\n%d\n", &seq, &prio), 2);
    assert_int_equal(prio, TL_PRIORITY_MAX);
    freeReplyObject(r);

    char rk[256], ck[256], hk[256], lk[256], sk[256], wp[256];
    rkey(rk, "lock:", k);
    rkey(ck, "token:", k);
    rkey(hk, "history", "");
    rkey(lk, "line:", k);
    rkey(sk, "lineseq:", k);
    (void)snprintf(wp, sizeof(wp), "%swake:%s:", prefix, k);
    static const char *const parts[] = {lua_prelude, lua_line, script_claim, script_claim_win,
                                        NULL};
    size_t len = 0;
    for (size_t i = 0; parts[i] != NULL; i++)
        len += strlen(parts[i]);
    char *text = calloc(1, len + 1);
    assert_non_null(text);
    for (size_t i = 0, at = 0; parts[i] != NULL; i++) {
        memcpy(text + at, parts[i], strlen(parts[i]));
        at += strlen(parts[i]);
    }
    const char *argv[] = {"EVAL", text,    "6",     rk,     ck,      hk,       lk,    wk,
                          sk,     "old-w", "old-n", "{}",   "60000", "normal", "n-1", "60000",
                          "1000", k,       old_wid, "1000", "60000", wp};
    r = redisCommandArgv(raw, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    free(text);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 12);
    assert_string_equal(r->element[0]->str, "busy");
    assert_int_equal(r->element[10]->integer, 2); /* waiting: the upgrader and itself */
    assert_int_equal(r->element[11]->integer, 1); /* ahead: the upgrader */
    freeReplyObject(r);

    struct tl_waiter **ws = NULL;
    size_t n = 0;
    assert_int_equal(tl_waiters(a, k, &ws, &n), TL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ws[0]->waiter_id, wid);
    assert_int_equal(ws[0]->priority, TL_PRIORITY_UPGRADE);
    assert_false(ws[0]->dead);
    assert_string_equal(ws[1]->waiter_id, old_wid);
    assert_int_equal(ws[1]->priority, TL_PRIORITY_MAX);
    tl_waiter_array_free(ws, n);
    (void)waiters_of(a, NULL, old_wid, found_init(&f)); /* its key is listed by the upgrader */

    /* b leaves: the upgrader, at the head, is woken and wins. */
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    assert_true(woken(k, wid));
    assert_int_equal(store_convert(a, &la->rec, false, wid, "x", TL_CLAIM_NORMAL, &res), TL_OK);
    assert_int_equal(a->store->ops->release(a->store, &res.rec, "done"), TL_OK);
    tl__record_clear(&res.rec);
    assert_int_equal(a->store->ops->leave(a->store, k, old_wid), TL_OK);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

int main(void)
{
    const char *env = tl_test_env("TL_TEST_REDIS_URI");
    char host[256];

    if (env == NULL) {
        (void)fprintf(stderr, "redis convert: TL_TEST_REDIS_URI is not set; skipped\n");
        return 77;
    }
    /* redis://HOST:PORT/..., as tests/harness/start-redis writes it. */
    const char *h = strncmp(env, "redis://", 8) == 0 ? env + 8 : NULL;
    const char *colon = h ? strchr(h, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (colon == NULL || (size_t)(colon - h) >= sizeof(host) || end == colon + 1 || port <= 0 ||
        port > 65535) {
        (void)fprintf(stderr, "redis convert: cannot read host and port of %s; skipped\n", env);
        return 77;
    }
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = '\0';
    (void)snprintf(prefix, sizeof(prefix), "tlconv-%lx-%ld:", (unsigned long)time(NULL),
                   (long)getpid());
    (void)snprintf(url, sizeof(url), "%s%sprefix=%s", env, strchr(env, '?') ? "&" : "?", prefix);
    raw = redisConnect(host, (int)port);
    if (raw == NULL || raw->err) {
        (void)fprintf(stderr, "redis convert: cannot connect to %s:%ld\n", host, port);
        return 1;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_upgrader_is_woken_when_it_is_the_only_holder),
        cmocka_unit_test(an_upgrader_that_holds_nothing_is_woken_to_learn_it),
        cmocka_unit_test(holding_follows_the_latest_claim),
        cmocka_unit_test(every_waiter_of_the_store_across_keys),
        cmocka_unit_test(a_win_that_empties_the_line_unlists_the_key),
        cmocka_unit_test(the_history_reads_upgrades_and_downgrades),
        cmocka_unit_test(an_older_claim_sees_the_upgrader_ahead),
    };
    int rc = cmocka_run_group_tests_name("redis/convert", tests, NULL, NULL);
    redisFree(raw);
    return rc;
}

#endif /* TL_WITH_REDIS */
