/*
 * test_etcd_convert.c -- the etcd store's upgrades, downgrades and wait-for graph beyond the
 * conformance part, on the etcd of tests/harness/start-etcd ($TL_TEST_ETCD_URL; skipped when
 * unset): an upgrader's wait ends exactly when it is the only holder (or holds nothing); it
 * stands ahead of a waiter of the highest priority; a downgrade wakes a reader whose watch is
 * already open; waiters keep their holding text across refreshes (rewritten only when it
 * changed), and all of them are read across keys; waiters written before the graph read back
 * with no holding; an older tasklock reads an upgrader's waiter as a waiter; the audit trail
 * keeps the conversions (and the stale holders an upgrade displaced), and a garbled event is a
 * clear error.
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
#include "stores/etcd_int.h"
#include "tasklock.h"
#include "test_etcd_raw.h"
#include "tl.h"
#include "tl_test.h"

#define EVENT_LIMIT_MS 30000 /* bound of every wait for an event */
#define QUIET_MS       300   /* a wait that must end without a wake-up */

static const char *const W1 = "11111111111111111111111111111111";
static const char *const W2 = "22222222222222222222222222222222";
static const char *const W3 = "33333333333333333333333333333333";

static struct tl_claim request(const char *key, const char *worker, bool shared, uint32_t timeout)
{
    return (struct tl_claim){.key = key,
                             .worker_id = worker,
                             .node_id = "convert-n",
                             .task_info = "{}",
                             .lock_timeout_ms = timeout,
                             .mode = TL_CLAIM_NORMAL,
                             .shared = shared};
}

/* A claim that waits: busy, with waiter `id` holding `holding`. */
static void must_wait(struct tl_store *s, struct tl_claim req, const char *id, int32_t priority,
                      const char *holding)
{
    struct tl_claim_result res;

    req.waiter_id = id;
    req.priority = priority;
    req.waiter_timeout_ms = TIMEOUT_MS;
    req.holding = holding;
    memset(&res, 0, sizeof(res));
    tl_status st = s->ops->claim(s, &req, &res);
    tl__record_clear(&res.rec);
    if (st != TL_EBUSY)
        fail_msg("waiting claim of %s by %s: %s: %s", req.key, req.worker_id, tl_strerror(st),
                 s->errmsg);
}

/* The conversion request of `held` (as src/convert.c builds it). */
static struct tl_claim conversion(const struct tl_record *held, bool shared, const char *waiter_id,
                                  const char *holding)
{
    return (struct tl_claim){.key = held->info.key,
                             .worker_id = held->info.worker_id,
                             .node_id = held->info.node_id,
                             .task_info = held->info.task_info,
                             .lock_timeout_ms = held->info.lock_timeout_ms,
                             .mode = TL_CLAIM_NORMAL,
                             .shared = shared,
                             .waiter_id = waiter_id,
                             .priority = TL_PRIORITY_UPGRADE,
                             .waiter_timeout_ms = TIMEOUT_MS,
                             .holding = holding};
}

/* Converts `held` in place (its record becomes the new one). */
static void must_convert(struct tl_store *s, struct tl_record *held, bool shared)
{
    struct tl_claim req = conversion(held, shared, NULL, NULL);
    struct tl_claim_result res;

    memset(&res, 0, sizeof(res));
    tl_status st = s->ops->convert(s, held, &req, &res);
    if (st != TL_OK)
        fail_msg("conversion of %s: %s: %s", held->info.key, tl_strerror(st), s->errmsg);
    tl__record_clear(held);
    *held = res.rec;
}

static bool woken_within(struct tl_store *s, const char *key, const char *id, uint32_t ms)
{
    bool woken = false;

    assert_int_equal(s->ops->wait_turn(s, key, id, ms, &woken), TL_OK);
    return woken;
}

static size_t count_holders(struct tl_store *s, const char *key)
{
    struct tl_record **hs = NULL;
    size_t n = 0;

    assert_int_equal(s->ops->holders(s, key, &hs, &n), TL_OK);
    tl_info_array_free((struct tl_info **)hs, n);
    return n;
}

static void raw_put(struct tl_store *s, const char *key, const char *value, int64_t lease)
{
    bool ok = true;
    json_t *ops = json_array(), *ans = NULL;

    tl__etcd_push(ops, tl__etcd_op_put(key, value, lease, &ok), &ok);
    assert_true(ok);
    assert_int_equal(tl__etcd_txn(s, NULL, ops, NULL, ok, TL_ETCD_WRITE, &ans), TL_OK);
    json_decref(ans);
}

/* The waiters of `key` (NULL: of the store). */
static struct tl_waiter **line_of(struct tl_store *s, const char *key, size_t *n)
{
    struct tl_waiter **ws = NULL;

    if (s->ops->waiters(s, key, &ws, n) != TL_OK)
        fail_msg("waiters of %s: %s", key ? key : "the store", s->errmsg);
    return ws;
}

/* The waiters of the store whose keys start with `prefix` (others' may be left by a test that
 * failed), in the order waiters(NULL) gave them. */
static struct tl_waiter **all_of(struct tl_store *s, const char *prefix, size_t *n)
{
    size_t total = 0, m = 0;
    struct tl_waiter **ws = line_of(s, NULL, &total);

    for (size_t i = 0; i < total; i++) {
        if (strncmp(ws[i]->key, prefix, strlen(prefix)) == 0)
            ws[m++] = ws[i];
        else
            tl__waiter_free(ws[i]);
    }
    *n = m;
    return ws;
}

/* ---- an upgrader's turn ---- */

struct waiting {
    struct tl_store *s;
    const char *key, *id;
    bool woken;
    size_t holders_then; /* the key's holders when it was woken */
};

static void *wait_main(void *arg)
{
    struct waiting *w = arg;

    w->woken = woken_within(w->s, w->key, w->id, EVENT_LIMIT_MS);
    if (w->woken)
        w->holders_then = count_holders(w->s, w->key);
    return NULL;
}

static void an_upgrader_is_woken_exactly_when_it_is_the_only_holder(void **state)
{
    struct tl_store *up = open_store(), *other = open_store();
    struct tl_record a, b, c;
    struct tl_claim_result res;

    (void)state;
    struct tl_claim req = request("only", "up-a", true, TIMEOUT_MS);
    must_claim(up, &req, &a);
    req.worker_id = "up-b";
    must_claim(other, &req, &b);
    req.worker_id = "up-c";
    must_claim(other, &req, &c);

    /* Beside b and c: busy, b (the oldest other) named, a in line at the head. */
    struct tl_claim conv = conversion(&a, false, W1, "x only 1");
    memset(&res, 0, sizeof(res));
    assert_int_equal(up->ops->convert(up, &a, &conv, &res), TL_EBUSY);
    assert_true(res.holder_known);
    assert_string_equal(res.rec.info.worker_id, "up-b");
    assert_int_equal(res.waiting, 1);
    assert_int_equal(res.ahead, 0);
    tl__record_clear(&res.rec);
    assert_false(woken_within(up, "only", W1, QUIET_MS));

    /* b leaves: c still holds, so the turn has not come (a reader's rule would say it has). */
    assert_int_equal(other->ops->release(other, &b, ""), TL_OK);
    assert_false(woken_within(up, "only", W1, QUIET_MS));

    /* c leaves while a waits: woken, alone. */
    struct waiting w = {.s = up, .key = "only", .id = W1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_main, &w), 0);
    assert_int_equal(other->ops->release(other, &c, ""), TL_OK);
    pthread_join(t, NULL);
    assert_true(w.woken);
    assert_int_equal(w.holders_then, 1);

    /* Its conversion wins, and takes its waiter out of the line in the same step. */
    uint64_t shared_token = a.info.token;
    memset(&res, 0, sizeof(res));
    assert_int_equal(up->ops->convert(up, &a, &conv, &res), TL_OK);
    assert_int_equal(res.rec.info.mode, TL_EXCLUSIVE);
    assert_true(res.rec.info.token > c.info.token && res.rec.info.token > shared_token);
    size_t n = 0;
    struct tl_waiter **ws = line_of(other, "only", &n);
    assert_int_equal(n, 0);
    tl_waiter_array_free(ws, n);
    assert_int_equal(other->ops->release(other, &res.rec, ""), TL_OK);
    tl__record_clear(&res.rec);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__record_clear(&c);
    tl__store_close(up);
    tl__store_close(other);
}

static void an_upgrader_that_holds_nothing_is_woken_to_learn_it(void **state)
{
    struct tl_store *up = open_store(), *other = open_store();
    struct tl_record a, b, former = {0};
    struct tl_claim_result res;
    bool found = false;

    (void)state;
    struct tl_claim req = request("forced-up", "fu-a", true, TIMEOUT_MS);
    must_claim(up, &req, &a);
    req.worker_id = "fu-b";
    must_claim(other, &req, &b);
    struct tl_claim conv = conversion(&a, false, W1, NULL);
    memset(&res, 0, sizeof(res));
    assert_int_equal(up->ops->convert(up, &a, &conv, &res), TL_EBUSY);
    tl__record_clear(&res.rec);

    /* An administrator breaks a's hold: b still holds, but a has nothing left to upgrade. */
    const struct tl_force_release fr = {.key = "forced-up",
                                        .worker_id = "admin",
                                        .node_id = "n",
                                        .token = a.info.token,
                                        .summary = "broken"};
    assert_int_equal(other->ops->force_release(other, &fr, &former, &found), TL_OK);
    assert_true(found);
    tl__record_clear(&former);
    assert_true(woken_within(up, "forced-up", W1, EVENT_LIMIT_MS));
    memset(&res, 0, sizeof(res));
    assert_int_equal(up->ops->convert(up, &a, &conv, &res), TL_ELOST);
    assert_int_equal(up->ops->leave(up, "forced-up", W1), TL_OK);
    assert_int_equal(other->ops->release(other, &b, ""), TL_OK);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__store_close(up);
    tl__store_close(other);
}

static void an_upgrader_stands_ahead_of_the_highest_priority(void **state)
{
    struct tl_store *up = open_store(), *other = open_store();
    struct tl_record a, b;
    struct tl_claim_result res;

    (void)state;
    struct tl_claim req = request("ahead", "ah-a", true, TIMEOUT_MS);
    must_claim(up, &req, &a);
    req.worker_id = "ah-b";
    must_claim(other, &req, &b);
    /* A writer of the highest priority joins first... */
    must_wait(other, request("ahead", "ah-w", false, TIMEOUT_MS), W2, TL_PRIORITY_MAX, NULL);
    /* ...and the upgrader still goes before it. */
    struct tl_claim conv = conversion(&a, false, W1, NULL);
    memset(&res, 0, sizeof(res));
    assert_int_equal(up->ops->convert(up, &a, &conv, &res), TL_EBUSY);
    assert_int_equal(res.ahead, 0);
    assert_int_equal(res.waiting, 2);
    tl__record_clear(&res.rec);
    size_t n = 0;
    struct tl_waiter **ws = line_of(other, "ahead", &n);
    assert_int_equal(n, 2);
    assert_string_equal(ws[0]->waiter_id, W1);
    assert_int_equal(ws[0]->priority, TL_PRIORITY_UPGRADE);
    assert_string_equal(ws[1]->waiter_id, W2);
    tl_waiter_array_free(ws, n);

    /* A reader that does not wait does not pass it either. */
    struct tl_record r;
    req.worker_id = "ah-r";
    memset(&res, 0, sizeof(res));
    assert_int_equal(other->ops->claim(other, &req, &res), TL_EBUSY);
    tl__record_clear(&res.rec);

    assert_int_equal(other->ops->release(other, &b, ""), TL_OK);
    assert_true(woken_within(up, "ahead", W1, EVENT_LIMIT_MS));
    memset(&res, 0, sizeof(res));
    assert_int_equal(up->ops->convert(up, &a, &conv, &res), TL_OK);
    r = res.rec;
    assert_int_equal(other->ops->release(other, &r, ""), TL_OK);
    assert_int_equal(other->ops->leave(other, "ahead", W2), TL_OK);
    tl__record_clear(&r);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__store_close(up);
    tl__store_close(other);
}

/* ---- a downgrade's wake-up ---- */

static void a_downgrade_wakes_a_reader_whose_watch_is_open(void **state)
{
    struct tl_store *writer = open_store(), *reader = open_store();
    struct tl_record w, r;

    (void)state;
    struct tl_claim req = request("down-watch", "dw-w", false, TIMEOUT_MS);
    must_claim(writer, &req, &w);
    struct tl_claim rq = request("down-watch", "dw-r", true, TIMEOUT_MS);
    must_wait(reader, rq, W1, 0, NULL);
    /* A first slice sets up the reader's watch and leaves it open, quiet. */
    assert_false(woken_within(reader, "down-watch", W1, 1000));

    /* The downgrade rewrites the record (no deletion): the open watch must see it. */
    must_convert(writer, &w, true);
    assert_int_equal(w.info.mode, TL_SHARED);
    assert_true(woken_within(reader, "down-watch", W1, EVENT_LIMIT_MS));
    rq.waiter_id = W1;
    rq.waiter_timeout_ms = TIMEOUT_MS;
    must_claim(reader, &rq, &r);
    assert_true(r.info.token > w.info.token);
    assert_int_equal(count_holders(writer, "down-watch"), 2);
    assert_int_equal(reader->ops->release(reader, &r, ""), TL_OK);
    assert_int_equal(writer->ops->release(writer, &w, ""), TL_OK);
    tl__record_clear(&w);
    tl__record_clear(&r);
    tl__store_close(writer);
    tl__store_close(reader);
}

/* ---- the wait-for graph ---- */

static void holding_is_kept_across_refreshes(void **state)
{
    struct tl_store *s = open_store(), *up = open_store();
    struct tl_record h, a, b;
    struct etcd_kv kv;
    size_t n = 0;

    (void)state;
    struct tl_claim req = request("hold-k", "hold-h", false, TIMEOUT_MS);
    must_claim(s, &req, &h);
    struct tl_claim wq = request("hold-k", "hold-w", false, TIMEOUT_MS);
    must_wait(s, wq, W1, 0, "x other 5");
    struct tl_waiter **ws = line_of(s, "hold-k", &n);
    assert_int_equal(n, 1);
    assert_string_equal(ws[0]->holding, "x other 5");
    uint64_t seq = ws[0]->seq;
    int64_t since = ws[0]->since_ms;
    tl_waiter_array_free(ws, n);

    /* The same text again: nothing written. */
    char *wk = path(s, "w/", "hold-k", W1);
    assert_true(raw_get(s, wk, &kv));
    int64_t mod = kv.mod;
    kv_free(&kv);
    must_wait(s, wq, W1, 0, "x other 5");
    assert_true(raw_get(s, wk, &kv));
    assert_int_equal(kv.mod, mod);
    kv_free(&kv);

    /* A new text replaces it; the waiter keeps its place and its time. */
    must_wait(s, wq, W1, 0, "x other 5 more 9");
    ws = line_of(s, "hold-k", &n);
    assert_int_equal(n, 1);
    assert_string_equal(ws[0]->holding, "x other 5 more 9");
    assert_int_equal(ws[0]->seq, seq);
    assert_int_equal(ws[0]->since_ms, since);
    tl_waiter_array_free(ws, n);
    /* Holding nothing any more: "". */
    must_wait(s, wq, W1, 0, NULL);
    ws = line_of(s, "hold-k", &n);
    assert_string_equal(ws[0]->holding, "");
    tl_waiter_array_free(ws, n);
    assert_int_equal(s->ops->leave(s, "hold-k", W1), TL_OK);
    assert_int_equal(s->ops->release(s, &h, ""), TL_OK);

    /* An upgrader's refresh too. */
    req = request("hold-up", "hu-a", true, TIMEOUT_MS);
    must_claim(up, &req, &a);
    req.worker_id = "hu-b";
    must_claim(s, &req, &b);
    struct tl_claim_result res;
    char text[64];
    (void)snprintf(text, sizeof(text), "x hold-up %llu", (unsigned long long)a.info.token);
    struct tl_claim conv = conversion(&a, false, W2, text);
    memset(&res, 0, sizeof(res));
    assert_int_equal(up->ops->convert(up, &a, &conv, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    (void)snprintf(text, sizeof(text), "x hold-up %llu k2 7", (unsigned long long)a.info.token);
    memset(&res, 0, sizeof(res));
    assert_int_equal(up->ops->convert(up, &a, &conv, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    ws = line_of(s, "hold-up", &n);
    assert_int_equal(n, 1);
    assert_string_equal(ws[0]->holding, text);
    tl_waiter_array_free(ws, n);
    assert_int_equal(up->ops->leave(up, "hold-up", W2), TL_OK);
    assert_int_equal(s->ops->release(s, &b, ""), TL_OK);
    assert_int_equal(up->ops->release(up, &a, ""), TL_OK);
    tl__free(wk);
    tl__record_clear(&h);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__store_close(s);
    tl__store_close(up);
}

static void the_waiters_of_every_key(void **state)
{
    struct tl_store *s = open_store();
    struct tl_record h1, h2;
    size_t n = 0;

    (void)state;
    struct tl_claim req = request("all-1", "all-h", false, TIMEOUT_MS);
    must_claim(s, &req, &h1);
    req.key = "all-2";
    must_claim(s, &req, &h2);
    must_wait(s, request("all-2", "all-x", false, TIMEOUT_MS), W1, 0, "x all-1 3");
    must_wait(s, request("all-1", "all-y", false, TIMEOUT_MS), W2, 0, "s all-2 4");
    must_wait(s, request("all-1", "all-z", true, TIMEOUT_MS), W3, 5, NULL);

    /* Every line, by key, each in its order. */
    struct tl_waiter **ws = all_of(s, "all-", &n);
    assert_int_equal(n, 3);
    assert_string_equal(ws[0]->key, "all-1");
    assert_string_equal(ws[0]->waiter_id, W3); /* priority 5 first */
    assert_string_equal(ws[0]->holding, "");
    assert_int_equal(ws[0]->priority, 5);
    assert_string_equal(ws[1]->key, "all-1");
    assert_string_equal(ws[1]->waiter_id, W2);
    assert_string_equal(ws[1]->worker_id, "all-y");
    assert_string_equal(ws[1]->holding, "s all-2 4");
    assert_string_equal(ws[2]->key, "all-2");
    assert_string_equal(ws[2]->waiter_id, W1);
    assert_string_equal(ws[2]->holding, "x all-1 3");
    for (size_t i = 0; i < n; i++) {
        assert_false(ws[i]->dead);
        assert_true(ws[i]->since_ms > 0 && ws[i]->timeout_ms == TIMEOUT_MS);
        assert_true(ws[i]->heartbeat_at_ms >= ws[i]->since_ms);
    }
    tl_waiter_array_free(ws, n);

    /* A waiter that leaves is gone from it. */
    assert_int_equal(s->ops->leave(s, "all-1", W2), TL_OK);
    ws = all_of(s, "all-", &n);
    assert_int_equal(n, 2);
    tl_waiter_array_free(ws, n);
    assert_int_equal(s->ops->leave(s, "all-1", W3), TL_OK);
    assert_int_equal(s->ops->leave(s, "all-2", W1), TL_OK);
    ws = all_of(s, "all-", &n);
    assert_int_equal(n, 0);
    tl_waiter_array_free(ws, n);
    assert_int_equal(s->ops->release(s, &h1, ""), TL_OK);
    assert_int_equal(s->ops->release(s, &h2, ""), TL_OK);
    tl__record_clear(&h1);
    tl__record_clear(&h2);
    tl__store_close(s);
}

static void waiters_from_before_the_graph_hold_nothing(void **state)
{
    struct tl_store *s = open_store();
    int64_t lease = 0, sent = 0;
    char value[256];
    size_t n = 0;

    (void)state;
    /* What the version before wrote for a waiter (etcd.c, busy). */
    assert_int_equal(tl__etcd_lease_for(s, TIMEOUT_MS, &lease, &sent), TL_OK);
    char *wk = path(s, "w/", "before", W1);
    (void)snprintf(value, sizeof(value),
                   "{\"worker\":\"old-q\",\"node\":\"old-n\",\"priority\":0,\"since\":%lld,"
                   "\"timeout\":30000}",
                   (long long)tl__real_now_ms());
    raw_put(s, wk, value, lease);
    struct tl_waiter **ws = line_of(s, "before", &n);
    assert_int_equal(n, 1);
    assert_non_null(ws[0]->holding);
    assert_string_equal(ws[0]->holding, "");
    tl_waiter_array_free(ws, n);
    ws = all_of(s, "before", &n);
    assert_int_equal(n, 1);
    assert_string_equal(ws[0]->key, "before");
    assert_string_equal(ws[0]->worker_id, "old-q");
    assert_non_null(ws[0]->holding);
    assert_string_equal(ws[0]->holding, "");
    tl_waiter_array_free(ws, n);
    assert_int_equal(s->ops->leave(s, "before", W1), TL_OK);
    tl__free(wk);
    tl__store_close(s);
}

static void an_older_tasklock_reads_an_upgraders_waiter(void **state)
{
    struct tl_store *s = open_store();
    struct tl_record a, b;
    struct tl_claim_result res;
    struct etcd_kv kv;

    (void)state;
    struct tl_claim req = request("old-view", "ov-a", true, TIMEOUT_MS);
    must_claim(s, &req, &a);
    req.worker_id = "ov-b";
    must_claim(s, &req, &b);
    struct tl_claim conv = conversion(&a, false, W1, "x old-view 1");
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->convert(s, &a, &conv, &res), TL_EBUSY);
    tl__record_clear(&res.rec);

    /* The fields the version before reads (etcd_read.c of that version: worker, node, since,
     * timeout; priority clamped to TL_PRIORITY_MAX), as they were; the rest it ignores. */
    char *wk = path(s, "w/", "old-view", W1);
    assert_true(raw_get(s, wk, &kv));
    json_t *v = json_loadb(kv.value, kv.value_len, 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "worker")), "ov-a");
    assert_true(json_is_string(json_object_get(v, "node")));
    assert_true(json_is_integer(json_object_get(v, "since")));
    assert_int_equal(json_integer_value(json_object_get(v, "timeout")), TIMEOUT_MS);
    assert_int_equal(json_integer_value(json_object_get(v, "priority")), TL_PRIORITY_UPGRADE);
    int64_t up = 0;
    assert_true(tl__etcd_i64(v, "upgrading", &up));
    assert_int_equal(up, (int64_t)a.info.token);
    assert_string_equal(json_string_value(json_object_get(v, "holding")), "x old-view 1");
    json_decref(v);
    assert_true(kv.lease != 0); /* on a lease: it vanishes when the upgrader dies */
    kv_free(&kv);

    assert_int_equal(s->ops->leave(s, "old-view", W1), TL_OK);
    assert_int_equal(s->ops->release(s, &a, ""), TL_OK);
    assert_int_equal(s->ops->release(s, &b, ""), TL_OK);
    tl__free(wk);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__store_close(s);
}

/* ---- the audit trail ---- */

static bool all_stale(void *arg)
{
    struct tl_store *s = arg;
    struct tl_record **hs = NULL;
    size_t n = 0;
    bool stale = false;

    if (s->ops->holders(s, "trail", &hs, &n) != TL_OK)
        return false;
    for (size_t i = 0; i < n; i++)
        stale = stale || (hs[i]->info.stale && strcmp(hs[i]->info.worker_id, "tr-gone") == 0);
    tl_info_array_free((struct tl_info **)hs, n);
    return stale;
}

static void the_trail_keeps_conversions(void **state)
{
    struct tl_store *s = open_store(), *gone = open_store();
    struct tl_record a, g;
    struct tl_event **ev = NULL;
    size_t n = 0;
    char want[128];

    (void)state;
    /* A shared holder that goes stale (its lease of 1 s is never kept alive). */
    struct tl_claim req = request("trail", "tr-gone", true, 1000);
    must_claim(gone, &req, &g);
    req = request("trail", "tr-a", true, TIMEOUT_MS);
    must_claim(s, &req, &a);
    if (!tl_test_poll(all_stale, s, 50, EVENT_LIMIT_MS))
        fail_msg("the holder never went stale");

    /* A plain upgrade waits for it; a stealing one displaces it. */
    struct tl_claim_result res;
    struct tl_claim conv = conversion(&a, false, NULL, NULL);
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->convert(s, &a, &conv, &res), TL_EBUSY);
    assert_string_equal(res.rec.info.worker_id, "tr-gone");
    assert_true(res.rec.info.stale);
    tl__record_clear(&res.rec);
    conv.mode = TL_CLAIM_STEAL;
    uint64_t from = a.info.token;
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->convert(s, &a, &conv, &res), TL_OK);
    tl__record_clear(&a);
    a = res.rec;
    assert_int_equal(count_holders(s, "trail"), 1);
    uint64_t up = a.info.token;
    must_convert(s, &a, true);
    uint64_t down = a.info.token;

    assert_int_equal(s->ops->history(s, "trail", 10, &ev, &n), TL_OK);
    assert_true(n >= 4);
    const struct tl_event *e_up = ev[n - 2], *e_down = ev[n - 1];
    assert_int_equal(e_up->kind, TL_EVENT_UPGRADED);
    assert_int_equal(e_up->token, up);
    assert_string_equal(e_up->worker_id, "tr-a");
    (void)snprintf(want, sizeof(want), "from token %llu; displaced tr-gone (token %llu)",
                   (unsigned long long)from, (unsigned long long)g.info.token);
    assert_string_equal(e_up->detail, want);
    assert_int_equal(e_down->kind, TL_EVENT_DOWNGRADED);
    assert_int_equal(e_down->token, down);
    (void)snprintf(want, sizeof(want), "from token %llu", (unsigned long long)up);
    assert_string_equal(e_down->detail, want);
    tl_event_array_free(ev, n);
    assert_int_equal(s->ops->release(s, &a, ""), TL_OK);

    /* The renewal and the release of a converted-from token are refused: the key was granted
     * since (by the conversion). */
    int64_t beat = 0;
    const struct tl_record old = {
        .info = {.key = "trail", .worker_id = "tr-a", .node_id = "convert-n", .token = up}};
    assert_int_equal(s->ops->renew(s, &old, 1, &beat), TL_ELOST);
    assert_int_equal(s->ops->release(s, &old, ""), TL_ENOTOWNER);

    /* A garbled event: a clear error naming it, not a silent hole. */
    char *ek = path(s, "e/", "trail", "zzzzzzzzzzzzz-00-0");
    raw_put(s, ek, "{\"kind\":\"teleported\",\"worker\":\"w\",\"node\":\"n\",\"at\":1,\"order\":0}",
            0);
    assert_int_equal(s->ops->history(s, "trail", 10, &ev, &n), TL_ESTORE);
    assert_null(ev);
    assert_non_null(strstr(s->errmsg, "unknown kind \"teleported\""));
    assert_non_null(strstr(s->errmsg, "trail"));
    raw_put(s, ek, "{\"kind\":\"released\",\"node\":\"n\",\"at\":1}", 0);
    assert_int_equal(s->ops->history(s, "trail", 10, &ev, &n), TL_ESTORE);
    assert_non_null(strstr(s->errmsg, "not a tasklock event"));
    tl__free(ek);
    tl__record_clear(&a);
    tl__record_clear(&g);
    tl__store_close(s);
    tl__store_close(gone);
}

int main(void)
{
    if (!etcd_test_url("convert"))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_upgrader_is_woken_exactly_when_it_is_the_only_holder),
        cmocka_unit_test(an_upgrader_that_holds_nothing_is_woken_to_learn_it),
        cmocka_unit_test(an_upgrader_stands_ahead_of_the_highest_priority),
        cmocka_unit_test(a_downgrade_wakes_a_reader_whose_watch_is_open),
        cmocka_unit_test(holding_is_kept_across_refreshes),
        cmocka_unit_test(the_waiters_of_every_key),
        cmocka_unit_test(waiters_from_before_the_graph_hold_nothing),
        cmocka_unit_test(an_older_tasklock_reads_an_upgraders_waiter),
        cmocka_unit_test(the_trail_keeps_conversions),
    };
    return cmocka_run_group_tests_name("etcd convert", tests, NULL, NULL);
}
