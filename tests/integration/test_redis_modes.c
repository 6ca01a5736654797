/*
 * test_redis_modes.c -- what the conformance part of shared holders cannot see on the Redis
 * store: an older tasklock (the version 4 scripts, frozen in test_redis_v4_scripts.h) on the
 * same keys as shared holders, data written by that version read by this one, and garbage in
 * the new fields. Against the server of tests/harness/start-redis ($TL_TEST_REDIS_URI; skipped
 * when unset), each run under a prefix of its own.
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
    (void)fprintf(stderr, "redis modes: this build has no Redis store; skipped\n");
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
                                 .node_id = "modes-node",
                                 .lock_timeout_ms = timeout_ms};
    tl_manager *m = tl_manager_new(&o);

    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

static tl_lock *shared(tl_manager *m, const char *k, uint32_t slots)
{
    const struct tl_acquire_opts o = {
        .strategy = TL_FAIL_FAST, .retries = TL_NO_RETRIES, .mode = TL_SHARED, .slots = slots};
    tl_lock *l = NULL;

    if (tl_acquire(m, k, &o, &l) != TL_OK)
        fail_msg("shared acquire of %s: %s", k, tl_errmsg(m));
    return l;
}

static tl_status try_shared(tl_manager *m, const char *k)
{
    const struct tl_acquire_opts o = {
        .strategy = TL_FAIL_FAST, .retries = TL_NO_RETRIES, .mode = TL_SHARED};
    tl_lock *l = NULL;
    tl_status st = tl_acquire(m, k, &o, &l);

    tl_lock_free(l);
    return st;
}

static void rkey(char out[256], const char *kind, const char *k)
{
    (void)snprintf(out, 256, "%s%s%s", prefix, kind, k);
}

/* Runs the version 4 script made of `parts` (NULL-ended) with `n` arguments, keys first. */
static redisReply *v4(const char *const *parts, int nkeys, int n, const char *const *args)
{
    size_t len = 0;
    for (size_t i = 0; parts[i] != NULL; i++)
        len += strlen(parts[i]);
    char *text = calloc(1, len + 1);
    assert_non_null(text);
    for (size_t i = 0, at = 0; parts[i] != NULL; i++) {
        size_t n_i = strlen(parts[i]);
        memcpy(text + at, parts[i], n_i); /* sized above */
        at += n_i;
    }

    const char *argv[32];
    char nk[16];
    assert_true(n + 3 <= 32);
    (void)snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = text;
    argv[2] = nk;
    for (int i = 0; i < n; i++)
        argv[3 + i] = args[i];
    redisReply *r = redisCommandArgv(raw, n + 3, argv, NULL);
    free(text);
    if (r == NULL)
        fail_msg("EVAL: %s", raw->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("EVAL: %s", r->str);
    return r;
}

static bool reply_is(const redisReply *r, size_t i, const char *text)
{
    return r->type == REDIS_REPLY_ARRAY && i < r->elements &&
           r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, text) == 0;
}

/* The version 4 claim of `k` by `worker` in `mode`, waiting as `waiter` ("": no waiter). */
static redisReply *v4_claim(const char *k, const char *worker, const char *mode, const char *waiter)
{
    static const char *const parts[] = {lua_prelude, lua_line, script_claim, script_claim_win,
                                        NULL};
    static unsigned nonce;
    char rk[256], ck[256], hk[256], lk[256], wk[256], sk[256], wp[256], nb[32];

    rkey(rk, "lock:", k);
    rkey(ck, "token:", k);
    rkey(hk, "history", "");
    rkey(lk, "line:", k);
    rkey(wk, "waiters:", k);
    rkey(sk, "lineseq:", k);
    (void)snprintf(wp, sizeof(wp), "%swake:%s:", prefix, k);
    (void)snprintf(nb, sizeof(nb), "v4-nonce-%u", ++nonce);
    const char *args[] = {rk,   ck, hk,      lk,     wk, sk,     worker, "old-node", "{}", "60000",
                          mode, nb, "60000", "1000", k,  waiter, "0",    "20000",    wp};
    return v4(parts, 6, 19, args);
}

static long long reply_int(const redisReply *r, size_t i)
{
    assert_true(r->type == REDIS_REPLY_ARRAY && i < r->elements);
    assert_int_equal(r->element[i]->type, REDIS_REPLY_INTEGER);
    return r->element[i]->integer;
}

/* The version 4 release (script "release") or renew of (worker, token). */
static redisReply *v4_release(const char *k, const char *worker, uint64_t token)
{
    static const char *const parts[] = {lua_prelude, lua_line, script_release, NULL};
    char rk[256], ck[256], hk[256], lk[256], wk[256], chan[256], wp[256], tb[32];

    rkey(rk, "lock:", k);
    rkey(ck, "token:", k);
    rkey(hk, "history", "");
    rkey(lk, "line:", k);
    rkey(wk, "waiters:", k);
    rkey(chan, "released:", k);
    (void)snprintf(wp, sizeof(wp), "%swake:%s:", prefix, k);
    (void)snprintf(tb, sizeof(tb), "%llu", (unsigned long long)token);
    const char *args[] = {rk, ck,     hk,      lk,     wk, worker, "old-node",
                          tb, "done", "60000", "1000", k,  chan,   wp};
    return v4(parts, 5, 14, args);
}

static redisReply *v4_renew(const char *k, const char *worker, uint64_t token)
{
    static const char *const parts[] = {lua_prelude, script_renew, NULL};
    char rk[256], ck[256], hk[256], tb[32];

    rkey(rk, "lock:", k);
    rkey(ck, "token:", k);
    rkey(hk, "history", "");
    (void)snprintf(tb, sizeof(tb), "%llu", (unsigned long long)token);
    const char *args[] = {rk, ck, hk, worker, "old-node", tb, "60000", "1000", k, ""};
    return v4(parts, 3, 10, args);
}

static redisReply *v4_force_release(const char *k)
{
    static const char *const parts[] = {lua_prelude, lua_line, script_force_release, NULL};
    char rk[256], ck[256], hk[256], lk[256], wk[256], chan[256], wp[256];

    rkey(rk, "lock:", k);
    rkey(ck, "token:", k);
    rkey(hk, "history", "");
    rkey(lk, "line:", k);
    rkey(wk, "waiters:", k);
    rkey(chan, "released:", k);
    (void)snprintf(wp, sizeof(wp), "%swake:%s:", prefix, k);
    const char *args[] = {rk,  ck,       hk,      lk,     wk, "old-admin", "old-node",
                          "0", "broken", "60000", "1000", k,  chan,        wp};
    return v4(parts, 5, 14, args);
}

static redisReply *v4_inspect(const char *k)
{
    static const char *const parts[] = {lua_prelude, lua_line, script_inspect, NULL};
    char rk[256], lk[256], wk[256];

    rkey(rk, "lock:", k);
    rkey(lk, "line:", k);
    rkey(wk, "waiters:", k);
    const char *args[] = {rk, lk, wk};
    return v4(parts, 3, 3, args);
}

struct holders_probe {
    tl_manager *m;
    const char *key;
    size_t stale; /* wanted: at least this many stale holders */
};

static bool stale_holders(void *arg)
{
    struct holders_probe *p = arg;
    struct tl_info **hs = NULL;
    size_t n = 0, stale = 0;

    if (tl_holders(p->m, p->key, &hs, &n) != TL_OK)
        return false;
    for (size_t i = 0; i < n; i++)
        stale += hs[i]->stale;
    tl_info_array_free(hs, n);
    return stale >= p->stale;
}

static size_t holder_count(tl_manager *m, const char *k)
{
    struct tl_info **hs = NULL;
    size_t n = 0;

    if (tl_holders(m, k, &hs, &n) != TL_OK)
        fail_msg("holders of %s: %s", k, tl_errmsg(m));
    tl_info_array_free(hs, n);
    return n;
}

/* ---- an older tasklock on the same keys ---- */

/* One stale and one live shared holder: the older version sees the key held by a live holder
 * (the copy in the record's own fields is the one that goes stale last), so its steal fails. */
static void an_older_version_sees_shared_holders_held(void **state)
{
    const char *k = "older-sees-held";
    tl_manager *gone = mgr("gone-r", SHORT_TIMEOUT_MS);
    tl_manager *live = mgr("live-r", LONG_TIMEOUT_MS);

    (void)state;
    (void)shared(gone, k, 0);
    tl_lock *ll = shared(live, k, 0);
    tl_manager_free(gone); /* no heartbeat, no release: goes stale */
    struct holders_probe p = {.m = live, .key = k, .stale = 1};
    assert_true(tl_test_poll(stale_holders, &p, 20, EVENT_LIMIT_MS));

    redisReply *r = v4_claim(k, "old-w", "normal", "");
    assert_true(reply_is(r, 0, "busy"));
    freeReplyObject(r);
    r = v4_claim(k, "old-w", "steal", "");
    assert_true(reply_is(r, 0, "busy"));
    assert_true(reply_is(r, 3, "live-r"));
    freeReplyObject(r);
    r = v4_inspect(k);
    assert_int_equal(r->elements, 9); /* {now, waiting, record...}: held */
    freeReplyObject(r);
    assert_int_equal(holder_count(live, k), 2);

    /* Its force release breaks every holder at once. */
    r = v4_force_release(k);
    assert_true(reply_is(r, 0, "released"));
    freeReplyObject(r);
    assert_int_equal(holder_count(live, k), 0);
    assert_int_equal(tl_renew(ll), TL_ELOST);
    tl_manager_free(live);
}

/* Every shared holder stale: the older version's steal takes the key, and this version then
 * sees that one exclusive holder, not the shared fields it left behind. */
static void an_older_steal_of_stale_readers_takes_the_key_alone(void **state)
{
    const char *k = "older-steals";
    tl_manager *g1 = mgr("gone-1", SHORT_TIMEOUT_MS);
    tl_manager *g2 = mgr("gone-2", SHORT_TIMEOUT_MS);
    tl_manager *obs = mgr("observer", LONG_TIMEOUT_MS);

    (void)state;
    (void)shared(g1, k, 0);
    (void)shared(g2, k, 0);
    tl_manager_free(g1);
    tl_manager_free(g2);
    struct holders_probe p = {.m = obs, .key = k, .stale = 2};
    assert_true(tl_test_poll(stale_holders, &p, 20, EVENT_LIMIT_MS));

    redisReply *r = v4_claim(k, "old-w", "steal", "");
    assert_true(reply_is(r, 0, "won"));
    assert_true(reply_is(r, 2, "stolen"));
    uint64_t token = (uint64_t)reply_int(r, 5);
    freeReplyObject(r);

    struct tl_info **hs = NULL;
    size_t n = 0;
    assert_int_equal(tl_holders(obs, k, &hs, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(hs[0]->worker_id, "old-w");
    assert_int_equal(hs[0]->mode, TL_EXCLUSIVE);
    assert_int_equal(hs[0]->token, token);
    tl_info_array_free(hs, n);
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(obs, k, &info), TL_OK);
    assert_non_null(info);
    assert_int_equal(info->holders, 1);
    tl_info_free(info);
    assert_int_equal(try_shared(obs, k), TL_EBUSY);

    r = v4_renew(k, "old-w", token);
    assert_true(reply_is(r, 0, "ok"));
    freeReplyObject(r);
    r = v4_release(k, "old-w", token);
    assert_true(reply_is(r, 0, "released"));
    freeReplyObject(r);
    assert_int_equal(holder_count(obs, k), 0);
    tl_lock *l = shared(obs, k, 0);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(obs);
}

/* ---- data of the previous version ---- */

/* A lock and a waiter written by the version 4 scripts: this version reads the holder as
 * exclusive, keeps the waiter's place (its claim counts as exclusive), and the older holder
 * renews and releases as before. */
static void data_of_the_previous_version_reads_as_before(void **state)
{
    const char *k = "previous-data";
    tl_manager *m = mgr("new-r", LONG_TIMEOUT_MS);

    (void)state;
    redisReply *r = v4_claim(k, "old-w", "normal", "");
    assert_true(reply_is(r, 0, "won"));
    uint64_t token = (uint64_t)reply_int(r, 5);
    freeReplyObject(r);
    r = v4_claim(k, "old-waiter", "normal", "0123456789abcdef0123456789abcdef");
    assert_true(reply_is(r, 0, "busy"));
    freeReplyObject(r);

    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(m, k, &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->worker_id, "old-w");
    assert_int_equal(info->token, token);
    assert_int_equal(info->mode, TL_EXCLUSIVE);
    assert_int_equal(info->holders, 1);
    assert_int_equal(info->waiting, 1);
    tl_info_free(info);
    assert_int_equal(try_shared(m, k), TL_EBUSY);

    r = v4_renew(k, "old-w", token);
    assert_true(reply_is(r, 0, "ok"));
    freeReplyObject(r);
    r = v4_release(k, "old-w", token);
    assert_true(reply_is(r, 0, "released"));
    freeReplyObject(r);

    /* Free, but the older waiter keeps its place ahead of a reader. */
    assert_int_equal(try_shared(m, k), TL_EBUSY);
    r = v4_claim(k, "old-waiter", "normal", "0123456789abcdef0123456789abcdef");
    assert_true(reply_is(r, 0, "won"));
    token = (uint64_t)reply_int(r, 5);
    freeReplyObject(r);
    assert_int_equal(try_shared(m, k), TL_EBUSY);
    r = v4_release(k, "old-waiter", token);
    assert_true(reply_is(r, 0, "released"));
    freeReplyObject(r);
    tl_lock *l = shared(m, k, 0);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

/* ---- garbage in the new fields ---- */

static void hset(const char *k, const char *field, const char *value)
{
    char rk[256];

    rkey(rk, "lock:", k);
    redisReply *r = redisCommand(raw, "HSET %s %s %s", rk, field, value);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* A holder's field that is not a holder: every reader says which field of which key, nobody
 * crashes, and a forced release clears the key. */
static void a_garbled_holder_field_is_a_clear_error(void **state)
{
    static const char *const garbage[] = {
        "nonsense",                                   /* not 8 lines */
        "w\nn\n1\n2\n3\nmany\nnonce\n{}",             /* slots not a number */
        "w\nn\n1\n2\n3\n0\n\n{}",                     /* empty nonce */
        "w\nn\n99999999999999999999\n2\n3\n0\nx\n{}", /* a number too large */
    };
    tl_manager *a = mgr("garble-a", LONG_TIMEOUT_MS);
    tl_manager *b = mgr("garble-b", LONG_TIMEOUT_MS);

    (void)state;
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        char k[64], field[64];
        (void)snprintf(k, sizeof(k), "garbled-%zu", i);
        tl_lock *la = shared(a, k, 0);
        tl_lock *lb = shared(b, k, 0);
        (void)snprintf(field, sizeof(field), "h:%llu", (unsigned long long)tl_lock_token(lb));
        hset(k, field, garbage[i]);

        struct tl_info *info = NULL;
        assert_int_equal(tl_inspect(a, k, &info), TL_ESTORE);
        assert_null(info);
        if (strstr(tl_errmsg(a), field) == NULL || strstr(tl_errmsg(a), k) == NULL)
            fail_msg("garbage %zu: the message names no field or key: %s", i, tl_errmsg(a));
        struct tl_info **hs = NULL;
        size_t n = 0;
        assert_int_equal(tl_holders(a, k, &hs, &n), TL_ESTORE);
        assert_non_null(strstr(tl_errmsg(a), field));
        assert_int_equal(try_shared(a, k), TL_ESTORE);
        assert_non_null(strstr(tl_errmsg(a), field));
        assert_int_equal(tl_renew(lb), TL_ESTORE);

        struct tl_info *former = NULL;
        assert_int_equal(tl_release_force(a, k, 0, "garbage", &former), TL_OK);
        tl_info_free(former);
        assert_int_equal(holder_count(a, k), 0);
        assert_int_equal(tl_renew(la), TL_ELOST);
        tl_lock_free(la);
        tl_lock_free(lb);
    }
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- wake-ups ---- */

/* A claim of `k` straight through the store, waiting as `wid`: a waiter in line that no
 * wait_turn serves, so its wake-up list shows what the store sent. */
static tl_status store_claim_slots(tl_manager *m, const char *k, const char *worker,
                                   const char *wid, bool is_shared, uint32_t slots)
{
    const struct tl_claim req = {.key = k,
                                 .worker_id = worker,
                                 .node_id = "modes-node",
                                 .task_info = "{}",
                                 .lock_timeout_ms = LONG_TIMEOUT_MS,
                                 .mode = TL_CLAIM_NORMAL,
                                 .waiter_id = wid,
                                 .waiter_timeout_ms = LONG_TIMEOUT_MS,
                                 .shared = is_shared,
                                 .slots = slots};
    struct tl_claim_result out = {0};
    tl_status st = m->store->ops->claim(m->store, &req, &out);

    if (st != TL_OK && st != TL_EBUSY && st != TL_EINVAL)
        fail_msg("claim of %s by %s: %s", k, worker, m->store->errmsg);
    tl__record_clear(&out.rec);
    return st;
}

static tl_status store_claim(tl_manager *m, const char *k, const char *worker, const char *wid,
                             bool is_shared)
{
    return store_claim_slots(m, k, worker, wid, is_shared, 0);
}

static bool woken(const char *k, const char *wid)
{
    char wk[256];

    (void)snprintf(wk, sizeof(wk), "%swake:%s:%s", prefix, k, wid);
    redisReply *r = redisCommand(raw, "EXISTS %s", wk);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    bool yes = r->integer == 1;
    freeReplyObject(r);
    return yes;
}

/* A writer at the head beside readers is woken only when the last reader leaves: neither its
 * own busy claims nor a release that leaves a reader wake it (it would claim in vain, again and
 * again). */
static void a_writer_at_the_head_is_woken_only_when_admitted(void **state)
{
    const char *k = "writer-head";
    static const char wid[] = "0000000000000000000000000000000a";
    tl_manager *m = mgr("wake-obs", LONG_TIMEOUT_MS);

    (void)state;
    tl_lock *r1 = shared(m, k, 0);
    tl_lock *r2 = shared(m, k, 0);
    assert_int_equal(store_claim(m, k, "wake-w", wid, false), TL_EBUSY);
    assert_false(woken(k, wid));
    assert_int_equal(store_claim(m, k, "wake-w", wid, false), TL_EBUSY);
    assert_false(woken(k, wid));
    assert_int_equal(tl_release(r2, NULL), TL_OK);
    assert_false(woken(k, wid));
    assert_int_equal(tl_release(r1, NULL), TL_OK);
    assert_true(woken(k, wid));
    assert_int_equal(store_claim(m, k, "wake-w", wid, false), TL_OK);
    tl_lock_free(r1);
    tl_lock_free(r2);
    tl_manager_free(m);
}

/* A claim that would wait, with slots that differ from the holders': TL_EINVAL, and it stands
 * in no line (the conformance part's mismatching claims do not wait, so they cannot show it). */
static void a_slots_mismatch_joins_no_line(void **state)
{
    const char *k = "mismatch-line";
    static const char wid[] = "0000000000000000000000000000000d";
    tl_manager *m = mgr("mismatch-obs", LONG_TIMEOUT_MS);

    (void)state;
    tl_lock *l1 = shared(m, k, 1);
    assert_int_equal(store_claim_slots(m, k, "mismatch-w", wid, true, 2), TL_EINVAL);
    assert_non_null(strstr(m->store->errmsg, "1 slots"));
    struct tl_waiter **ws = NULL;
    size_t n = 0;
    assert_int_equal(tl_waiters(m, k, &ws, &n), TL_OK);
    tl_waiter_array_free(ws, n);
    assert_int_equal(n, 0);
    /* The same claim with the holders' slots waits in line. */
    assert_int_equal(store_claim_slots(m, k, "mismatch-w", wid, true, 1), TL_EBUSY);
    assert_int_equal(tl_waiters(m, k, &ws, &n), TL_OK);
    tl_waiter_array_free(ws, n);
    assert_int_equal(n, 1);
    assert_int_equal(tl_release(l1, NULL), TL_OK);
    assert_true(woken(k, wid));
    tl_lock_free(l1);
    tl_manager_free(m);
}

/* Readers queued behind a writer: its release wakes the first; the first's win wakes the
 * second (a chain), and not before. */
static void readers_in_line_are_woken_one_after_another(void **state)
{
    const char *k = "reader-chain";
    static const char w1[] = "0000000000000000000000000000000b";
    static const char w2[] = "0000000000000000000000000000000c";
    tl_manager *m = mgr("chain-obs", LONG_TIMEOUT_MS);
    const struct tl_acquire_opts ex = {.strategy = TL_FAIL_FAST, .retries = TL_NO_RETRIES};
    tl_lock *lw = NULL;

    (void)state;
    assert_int_equal(tl_acquire(m, k, &ex, &lw), TL_OK);
    assert_int_equal(store_claim(m, k, "chain-1", w1, true), TL_EBUSY);
    assert_int_equal(store_claim(m, k, "chain-2", w2, true), TL_EBUSY);
    assert_false(woken(k, w1));
    assert_int_equal(tl_release(lw, NULL), TL_OK);
    assert_true(woken(k, w1));
    assert_false(woken(k, w2));
    assert_int_equal(store_claim(m, k, "chain-1", w1, true), TL_OK);
    assert_true(woken(k, w2));
    assert_int_equal(store_claim(m, k, "chain-2", w2, true), TL_OK);
    assert_int_equal(holder_count(m, k), 2);
    tl_lock_free(lw);
    tl_manager_free(m);
}

int main(void)
{
    const char *env = tl_test_env("TL_TEST_REDIS_URI");
    char host[256];

    if (env == NULL) {
        (void)fprintf(stderr, "redis modes: TL_TEST_REDIS_URI is not set; skipped\n");
        return 77;
    }
    /* redis://HOST:PORT/..., as tests/harness/start-redis writes it. */
    const char *h = strncmp(env, "redis://", 8) == 0 ? env + 8 : NULL;
    const char *colon = h ? strchr(h, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (colon == NULL || (size_t)(colon - h) >= sizeof(host) || end == colon + 1 || port <= 0 ||
        port > 65535) {
        (void)fprintf(stderr, "redis modes: cannot read host and port of %s; skipped\n", env);
        return 77;
    }
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = '\0';
    (void)snprintf(prefix, sizeof(prefix), "tlmodes-%lx-%ld:", (unsigned long)time(NULL),
                   (long)getpid());
    (void)snprintf(url, sizeof(url), "%s%sprefix=%s", env, strchr(env, '?') ? "&" : "?", prefix);
    raw = redisConnect(host, (int)port);
    if (raw == NULL || raw->err) {
        (void)fprintf(stderr, "redis modes: cannot connect to %s:%ld\n", host, port);
        return 1;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_older_version_sees_shared_holders_held),
        cmocka_unit_test(an_older_steal_of_stale_readers_takes_the_key_alone),
        cmocka_unit_test(data_of_the_previous_version_reads_as_before),
        cmocka_unit_test(a_garbled_holder_field_is_a_clear_error),
        cmocka_unit_test(a_writer_at_the_head_is_woken_only_when_admitted),
        cmocka_unit_test(readers_in_line_are_woken_one_after_another),
        cmocka_unit_test(a_slots_mismatch_joins_no_line),
    };
    int rc = cmocka_run_group_tests_name("redis/modes", tests, NULL, NULL);
    redisFree(raw);
    return rc;
}

#endif /* TL_WITH_REDIS */
