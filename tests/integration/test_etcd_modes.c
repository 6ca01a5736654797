/*
 * test_etcd_modes.c -- the etcd store's shared holders beyond the conformance part, on the etcd
 * of tests/harness/start-etcd ($TL_TEST_ETCD_URL; skipped when unset): keys written in the
 * layout of the version before shared holders keep working; a tasklock of that version, whose
 * claims this test sends as it did (the same transactions), never takes a key that shared
 * holders hold, live or stale; a garbled set of holders is a clear error; a shared holder known
 * by its token only is released; claim-next counts a shared key as held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
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

static struct tl_claim request(const char *key, const char *worker, bool shared, uint32_t timeout)
{
    return (struct tl_claim){.key = key,
                             .worker_id = worker,
                             .node_id = "modes-n",
                             .task_info = "{}",
                             .lock_timeout_ms = timeout,
                             .mode = TL_CLAIM_NORMAL,
                             .shared = shared};
}

/* One transaction of the given compares and puts; whether it succeeded, and its revision. */
static bool raw_txn(struct tl_store *s, json_t *compare, json_t *ops, int64_t *rev)
{
    json_t *ans = NULL;
    tl_status st = tl__etcd_txn(s, compare, ops, NULL, true, TL_ETCD_WRITE, &ans);

    if (st != TL_OK)
        fail_msg("txn: %s: %s", tl_strerror(st), s->errmsg);
    bool ok = tl__etcd_txn_succeeded(ans);
    if (rev != NULL)
        *rev = tl__etcd_header_revision(ans);
    json_decref(ans);
    return ok;
}

static void raw_put(struct tl_store *s, const char *key, const char *value, int64_t lease)
{
    bool ok = true;
    json_t *ops = json_array();

    tl__etcd_push(ops, tl__etcd_op_put(key, value, lease, &ok), &ok);
    assert_true(ok);
    assert_true(raw_txn(s, NULL, ops, NULL));
}

static void raw_delete_prefix(struct tl_store *s, const char *part)
{
    bool ok = true;
    char *pre = path(s, part, "", NULL), *end = tl__etcd_prefix_end(pre);
    json_t *ops = json_array();

    tl__etcd_push(ops, tl__etcd_op_delete(pre, end, &ok), &ok);
    assert_true(ok);
    assert_true(raw_txn(s, NULL, ops, NULL));
    tl__free(pre);
    tl__free(end);
}

/* The claim transaction of the version before shared holders (etcd.c of that version): a free
 * key with an empty line, in one step. */
static bool old_claim(struct tl_store *s, const char *key)
{
    bool ok = true;
    char *l = path(s, "l/", key, NULL), *o = path(s, "o/", key, NULL);
    char *line = path(s, "w/", key, ""),
         *end = tl__etcd_path(es_of(s), "w/", key, ETCD_SEP_NEXT, NULL);
    json_t *compare = json_array(), *ops = json_array();

    tl__etcd_push(compare, tl__etcd_cmp(l, NULL, "CREATE", "EQUAL", 0, &ok), &ok);
    tl__etcd_push(compare, tl__etcd_cmp(line, end, "CREATE", "LESS", 1, &ok), &ok);
    tl__etcd_push(ops,
                  tl__etcd_op_put(l,
                                  "{\"worker\":\"old-w\",\"node\":\"old-n\",\"claimed_at\":1,"
                                  "\"timeout\":30000,\"task\":{},\"nonce\":\"0123\"}",
                                  0, &ok),
                  &ok);
    tl__etcd_push(ops, tl__etcd_op_put(o, "old-w", 0, &ok), &ok);
    assert_true(ok);
    bool won = raw_txn(s, compare, ops, NULL);
    tl__free(l);
    tl__free(o);
    tl__free(line);
    tl__free(end);
    return won;
}

/*
 * What the version before shared holders does to steal (etcd.c of that version): it reads the
 * record and the liveness key; a record without liveness is stale, and it writes over it with
 * compares on the record's revision and the liveness key's absence. Whether it would steal.
 */
static bool old_steal(struct tl_store *s, const char *key)
{
    struct etcd_kv l, h;
    char *lk = path(s, "l/", key, NULL), *hk = path(s, "h/", key, NULL);
    bool held = raw_get(s, lk, &l), live = raw_get(s, hk, &h), won = false;

    if (held) {
        /* It reads the record as one holder's: it must parse, or that version fails. */
        struct tl_record r;
        assert_int_equal(tl__etcd_record_from(s, key, &l, live ? &h : NULL, &r, NULL), TL_OK);
        tl__record_clear(&r);
    }
    if (held && !live) {
        bool ok = true;
        json_t *compare = json_array(), *ops = json_array();
        tl__etcd_push(compare, tl__etcd_cmp(lk, NULL, "MOD", "EQUAL", l.mod, &ok), &ok);
        tl__etcd_push(compare, tl__etcd_cmp(hk, NULL, "CREATE", "EQUAL", 0, &ok), &ok);
        tl__etcd_push(ops, tl__etcd_op_put(lk, l.value, 0, &ok), &ok);
        assert_true(ok);
        won = raw_txn(s, compare, ops, NULL);
    }
    kv_free(&l);
    kv_free(&h);
    tl__free(lk);
    tl__free(hk);
    return won;
}

/* ---- the layout of the version before ---- */

static void keys_of_the_version_before_keep_working(void **state)
{
    struct tl_store *s = open_store();
    int64_t lease = 0, sent = 0, rev = 0, now = tl__real_now_ms();
    char value[512];

    (void)state;
    assert_int_equal(tl__etcd_lease_for(s, 30000, &lease, &sent), TL_OK);
    /* What that version wrote for a held key with one waiter, a finished task and an event
     * (etcd.c: win_ops, busy; etcd_next.c: the done marker; etcd_wire.c: values). */
    char *l = path(s, "l/", "old-held", NULL), *o = path(s, "o/", "old-held", NULL),
         *h = path(s, "h/", "old-held", NULL),
         *w = path(s, "w/", "old-held", "0123456789abcdef0123456789abcdef"),
         *d = path(s, "d/", "old-done", NULL), *e = path(s, "e/", "old-held", "0000000000001-ab-0");
    bool ok = true;
    json_t *ops = json_array();
    (void)snprintf(value, sizeof(value),
                   "{\"worker\":\"old-w\",\"node\":\"old-n\",\"claimed_at\":%lld,\"timeout\":30000,"
                   "\"task\":{\"job\":1},\"nonce\":\"00112233445566778899aabbccddeeff\"}",
                   (long long)now);
    tl__etcd_push(ops, tl__etcd_op_put(l, value, 0, &ok), &ok);
    tl__etcd_push(ops, tl__etcd_op_put(o, "old-w", 0, &ok), &ok);
    tl__etcd_push(ops, tl__etcd_op_put(h, "{\"timeout\":30000}", lease, &ok), &ok);
    (void)snprintf(value, sizeof(value),
                   "{\"worker\":\"old-q\",\"node\":\"old-n\",\"priority\":0,\"since\":%lld,"
                   "\"timeout\":30000}",
                   (long long)now);
    tl__etcd_push(ops, tl__etcd_op_put(w, value, lease, &ok), &ok);
    tl__etcd_push(ops,
                  tl__etcd_op_put(d,
                                  "{\"worker\":\"old-w\",\"node\":\"old-n\",\"token\":\"3\","
                                  "\"at\":1,\"summary\":\"old\"}",
                                  0, &ok),
                  &ok);
    tl__etcd_push(ops,
                  tl__etcd_op_put(e,
                                  "{\"kind\":\"acquired\",\"worker\":\"old-w\",\"node\":\"old-n\","
                                  "\"at\":1,\"order\":0}",
                                  0, &ok),
                  &ok);
    assert_true(ok);
    assert_true(raw_txn(s, NULL, ops, &rev));

    /* One exclusive holder, with its token and its line. */
    struct tl_record r;
    bool found = false;
    assert_int_equal(s->ops->inspect(s, "old-held", &r, &found), TL_OK);
    assert_true(found);
    assert_string_equal(r.info.worker_id, "old-w");
    assert_int_equal(r.info.token, (uint64_t)rev);
    assert_int_equal(r.info.mode, TL_EXCLUSIVE);
    assert_int_equal(r.info.holders, 1);
    assert_int_equal(r.info.waiting, 1);
    assert_false(r.info.stale);
    tl__record_clear(&r);
    struct tl_record **hs = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->holders(s, "old-held", &hs, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hs[0]->info.mode, TL_EXCLUSIVE);
    assert_int_equal(hs[0]->info.token, (uint64_t)rev);
    tl_info_array_free((struct tl_info **)hs, n);

    /* A shared claim waits for it; the waiter, the marker and the event are read. */
    struct tl_claim req = request("old-held", "new-r", true, TIMEOUT_MS);
    struct tl_claim_result res;
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->claim(s, &req, &res), TL_EBUSY);
    assert_true(res.holder_known);
    assert_string_equal(res.rec.info.worker_id, "old-w");
    tl__record_clear(&res.rec);
    struct tl_waiter **ws = NULL;
    assert_int_equal(s->ops->waiters(s, "old-held", &ws, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ws[0]->worker_id, "old-q");
    tl_waiter_array_free(ws, n);
    struct tl_done **ds = NULL;
    assert_int_equal(s->ops->done_list(s, "old-done", &ds, &n), TL_OK);
    assert_int_equal(n, 1);
    tl_done_array_free(ds, n);
    struct tl_event **ev = NULL;
    assert_int_equal(s->ops->history(s, "old-held", 10, &ev, &n), TL_OK);
    assert_true(n >= 1);
    tl_event_array_free(ev, n);

    /* Its holder releases it; the old waiter leaves; then readers share it. */
    const struct tl_record held = {.info = {.key = "old-held",
                                            .worker_id = "old-w",
                                            .node_id = "old-n",
                                            .token = (uint64_t)rev,
                                            .lock_timeout_ms = 30000}};
    assert_int_equal(s->ops->release(s, &held, "bye"), TL_OK);
    assert_int_equal(s->ops->leave(s, "old-held", "0123456789abcdef0123456789abcdef"), TL_OK);
    struct tl_record a, b;
    must_claim(s, &req, &a);
    req.worker_id = "new-r2";
    must_claim(s, &req, &b);
    assert_true(b.info.token > a.info.token && a.info.token > (uint64_t)rev);
    assert_int_equal(s->ops->inspect(s, "old-held", &r, &found), TL_OK);
    assert_int_equal(r.info.holders, 2);
    assert_int_equal(r.info.mode, TL_SHARED);
    tl__record_clear(&r);
    assert_int_equal(s->ops->release(s, &a, ""), TL_OK);
    assert_int_equal(s->ops->release(s, &b, ""), TL_OK);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__free(l);
    tl__free(o);
    tl__free(h);
    tl__free(w);
    tl__free(d);
    tl__free(e);
    tl__store_close(s);
}

/* ---- a tasklock of the version before, beside shared holders ---- */

struct stale_probe {
    struct tl_store *s;
    const char *key;
};

static bool all_stale(void *arg)
{
    struct stale_probe *p = arg;
    struct tl_record **hs = NULL;
    size_t n = 0;
    bool stale = p->s->ops->holders(p->s, p->key, &hs, &n) == TL_OK && n > 0;

    for (size_t i = 0; i < n; i++)
        stale = stale && hs[i]->info.stale;
    tl_info_array_free((struct tl_info **)hs, n);
    return stale;
}

static void an_older_tasklock_never_takes_a_shared_key(void **state)
{
    struct tl_store *s = open_store();
    struct tl_record a, b;

    (void)state;
    /* Two readers on a short timeout, never renewed: they go stale. */
    struct tl_claim req = request("shared-old", "reader-a", true, 1000);
    must_claim(s, &req, &a);
    req.worker_id = "reader-b";
    must_claim(s, &req, &b);

    /* That version reads a held, live key: its claim and its steal both fail. */
    assert_false(old_claim(s, "shared-old"));
    assert_false(old_steal(s, "shared-old"));
    struct etcd_kv h;
    char *hk = path(s, "h/", "shared-old", NULL);
    assert_true(raw_get(s, hk, &h));
    assert_int_equal(h.lease, 0); /* on no lease: it never expires under an older reader */
    kv_free(&h);

    /* Stale readers are still held for it (only this version's steal displaces them). */
    struct stale_probe p = {.s = s, .key = "shared-old"};
    if (!tl_test_poll(all_stale, &p, 50, 20000))
        fail_msg("the readers never went stale");
    assert_false(old_claim(s, "shared-old"));
    assert_false(old_steal(s, "shared-old"));

    /* This version's steal takes them both, and the key is exclusive as before. */
    struct tl_record c;
    req = request("shared-old", "writer", false, TIMEOUT_MS);
    req.mode = TL_CLAIM_STEAL;
    must_claim(s, &req, &c);
    assert_true(raw_get(s, hk, &h));
    assert_true(h.lease != 0);
    kv_free(&h);
    assert_int_equal(s->ops->release(s, &c, ""), TL_OK);
    assert_true(old_claim(s, "shared-old")); /* free again, for that version too */
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__record_clear(&c);
    tl__free(hk);
    tl__store_close(s);
}

/* ---- garbled sets ---- */

static void garbled_holders_are_a_clear_error(void **state)
{
    static const char *const bad[] = {
        "{\"mode\":\"shared\",\"holders\":\"x\"}",
        "{\"mode\":\"shared\",\"holders\":[]}",
        "{\"mode\":\"shared\",\"slots\":-1,\"holders\":[{\"token\":0,\"worker\":\"w\","
        "\"node\":\"n\",\"claimed_at\":1,\"timeout\":1000,\"task\":{},\"nonce\":\"ab\"}]}",
        "{\"mode\":\"shared\",\"holders\":[{\"token\":0,\"worker\":\"w\",\"node\":\"n\","
        "\"claimed_at\":1,\"timeout\":1000,\"task\":{}}]}",
        "{\"mode\":\"shared\",\"holders\":[{\"token\":\"x\",\"worker\":\"w\",\"node\":\"n\","
        "\"claimed_at\":1,\"timeout\":1000,\"task\":{},\"nonce\":\"ab\"}]}",
        "{\"mode\":\"shared\",\"holders\":[{\"token\":0,\"worker\":\"a b\",\"node\":\"n\","
        "\"claimed_at\":1,\"timeout\":1000,\"task\":{},\"nonce\":\"ab\"}]}",
        "{\"mode\":\"shared\",\"holders\":[{\"token\":0,\"worker\":\"w\",\"node\":\"n\","
        "\"claimed_at\":1,\"timeout\":0,\"task\":{},\"nonce\":\"ab\"}]}",
        "{\"mode\":\"shared\",\"holders\":[{\"token\":\"99999999999\",\"worker\":\"w\","
        "\"node\":\"n\",\"claimed_at\":1,\"timeout\":1000,\"task\":{},\"nonce\":\"ab\"}]}",
        "{\"mode\":\"shared\",\"holders\":[{\"token\":0,\"worker\":\"w\",\"node\":\"n\","
        "\"claimed_at\":1,\"timeout\":1000,\"task\":{},\"nonce\":\"ab\"},{\"token\":0,"
        "\"worker\":\"v\",\"node\":\"n\",\"claimed_at\":1,\"timeout\":1000,\"task\":{},"
        "\"nonce\":\"cd\"}]}",
    };
    struct tl_store *s = open_store();

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char key[32];
        (void)snprintf(key, sizeof(key), "garbled-%zu", i);
        char *l = path(s, "l/", key, NULL);
        raw_put(s, l, bad[i], 0);
        struct etcd_kv kv;
        assert_true(raw_get(s, l, &kv));
        uint64_t token = (uint64_t)kv.mod;
        kv_free(&kv);

        struct tl_record r = {0};
        bool found = false;
        assert_int_equal(s->ops->inspect(s, key, &r, &found), TL_ESTORE);
        assert_false(found);
        if (strstr(s->errmsg, "shared holder") == NULL || strstr(s->errmsg, key) == NULL)
            fail_msg("%s: %s", bad[i], s->errmsg);
        struct tl_record **hs = NULL;
        size_t n = 0;
        assert_int_equal(s->ops->holders(s, key, &hs, &n), TL_ESTORE);
        assert_null(hs);
        struct tl_claim req = request(key, "w", true, TIMEOUT_MS);
        struct tl_claim_result res;
        memset(&res, 0, sizeof(res));
        assert_int_equal(s->ops->claim(s, &req, &res), TL_ESTORE);
        req.shared = false;
        req.mode = TL_CLAIM_STEAL;
        assert_int_equal(s->ops->claim(s, &req, &res), TL_ESTORE);
        const struct tl_record held = {
            .info = {.key = key, .worker_id = "w", .node_id = "n", .token = token}};
        int64_t beat = 0;
        assert_int_equal(s->ops->renew(s, &held, 1, &beat), TL_ELOST);
        struct tl_force_release fr = {
            .key = key, .worker_id = "admin", .node_id = "n", .summary = ""};
        assert_int_equal(s->ops->force_release(s, &fr, &r, &found), TL_ESTORE);
        /* The listing shows the others. */
        assert_int_equal(s->ops->list(s, &hs, &n), TL_OK);
        for (size_t j = 0; j < n; j++)
            assert_string_not_equal(hs[j]->info.key, key);
        tl_info_array_free((struct tl_info **)hs, n);
        tl__free(l);
    }
    raw_delete_prefix(s, "l/");
    tl__store_close(s);
}

/* ---- through the manager ---- */

static tl_manager *mgr(const char *worker)
{
    const struct tl_options o = {
        .store_url = url, .worker_id = worker, .node_id = "modes-n", .lock_timeout_ms = TIMEOUT_MS};
    tl_manager *m = tl_manager_new(&o);

    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

static void a_shared_holder_is_released_by_its_token(void **state)
{
    tl_manager *a = mgr("token-a"), *b = mgr("token-b");
    const struct tl_acquire_opts shared = {.mode = TL_SHARED, .retries = TL_NO_RETRIES};
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "by-token", &shared, &la), TL_OK);
    assert_int_equal(tl_acquire(b, "by-token", &shared, &lb), TL_OK);
    /* b is not the holder inspect shows (the oldest): the store finds it among the set. */
    uint64_t tb = tl_lock_token(lb);
    tl_lock_free(lb);
    assert_int_equal(tl_release_token(b, "by-token", tb, "by token"), TL_OK);
    struct tl_info **hs = NULL;
    size_t n = 0;
    assert_int_equal(tl_holders(a, "by-token", &hs, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(hs[0]->worker_id, "token-a");
    tl_info_array_free(hs, n);
    /* Released twice: nobody claimed the key since its token, so that is not an error. */
    assert_int_equal(tl_release_token(b, "by-token", tb, "again"), TL_OK);
    assert_int_equal(tl_release(la, NULL), TL_OK);
    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void claim_next_counts_a_shared_key_as_held(void **state)
{
    struct tl_store *s = open_store();
    struct tl_record r, won_rec;
    static const char *const keys[] = {"nx-shared", "nx-free"};
    struct tl_candidates c = {.keys = keys, .nkeys = 2};
    struct tl_claim_result res;
    struct tl_next_tally tally;
    size_t won = 0;

    (void)state;
    struct tl_claim req = request("nx-shared", "reader", true, TIMEOUT_MS);
    must_claim(s, &req, &r);
    req = request(NULL, "next", false, TIMEOUT_MS);
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->claim_next(s, &req, &c, &res, &won, &tally), TL_OK);
    assert_int_equal(won, 1);
    won_rec = res.rec;
    c.nkeys = 1;
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->claim_next(s, &req, &c, &res, &won, &tally), TL_EBUSY);
    assert_int_equal(tally.held, 1);
    assert_int_equal(s->ops->release(s, &r, ""), TL_OK);
    assert_int_equal(s->ops->release(s, &won_rec, ""), TL_OK);
    tl__record_clear(&r);
    tl__record_clear(&won_rec);
    tl__store_close(s);
}

static void a_mismatch_joins_no_line_and_a_reader_finishes_done(void **state)
{
    struct tl_store *s = open_store();
    struct tl_record a, b;

    (void)state;
    struct tl_claim req = request("sem-line", "sem-a", true, TIMEOUT_MS);
    req.slots = 2;
    must_claim(s, &req, &a);
    req.worker_id = "sem-b";
    must_claim(s, &req, &b);

    /* A waiting claim of another number of slots: refused before it joins the line. */
    req.worker_id = "sem-c";
    req.slots = 3;
    req.waiter_id = "0123456789abcdef0123456789abcdef";
    req.waiter_timeout_ms = TIMEOUT_MS;
    struct tl_claim_result res;
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->claim(s, &req, &res), TL_EINVAL);
    assert_non_null(strstr(s->errmsg, "2 slots"));
    struct tl_waiter **ws = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->waiters(s, "sem-line", &ws, &n), TL_OK);
    assert_int_equal(n, 0);
    /* With the right slots it waits (both are taken). */
    req.slots = 2;
    assert_int_equal(s->ops->claim(s, &req, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    assert_int_equal(s->ops->waiters(s, "sem-line", &ws, &n), TL_OK);
    assert_int_equal(n, 1);
    tl_waiter_array_free(ws, n);
    assert_int_equal(s->ops->leave(s, "sem-line", req.waiter_id), TL_OK);

    /* A reader finishes its task: the marker is written, the other reader still holds. */
    const struct tl_finish f = {.held = &a, .summary = "did my part", .done = true};
    struct tl_finish_result fr;
    memset(&fr, 0, sizeof(fr));
    assert_int_equal(s->ops->finish(s, &f, &fr), TL_OK);
    struct tl_done **ds = NULL;
    assert_int_equal(s->ops->done_list(s, "sem-line", &ds, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ds[0]->token, a.info.token);
    tl_done_array_free(ds, n);
    struct tl_record **hs = NULL;
    assert_int_equal(s->ops->holders(s, "sem-line", &hs, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hs[0]->info.token, b.info.token);
    tl_info_array_free((struct tl_info **)hs, n);
    /* Released already, but b claimed the key after a's token (store.h): not a's to say. */
    assert_int_equal(s->ops->release(s, &a, ""), TL_ENOTOWNER);
    assert_int_equal(s->ops->release(s, &b, ""), TL_OK);
    assert_int_equal(s->ops->release(s, &b, ""), TL_OK); /* nobody claimed it since b */
    bool found = true;
    struct tl_record r = {0};
    assert_int_equal(s->ops->inspect(s, "sem-line", &r, &found), TL_OK);
    assert_false(found);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__store_close(s);
}

/* ---- processes racing ---- */

enum { RACERS = 8, SLOTS = 3 };

/* A child: waits for the start (the pipe's end), claims once, exits 0 won, 1 busy, 2 error. */
static void racer(int start_fd, const char *key, int i, bool writer)
{
    char buf, worker[32];

    (void)snprintf(worker, sizeof(worker), "proc-%d", i);
    struct tl_store *s = open_store();
    struct tl_claim req = request(key, worker, !writer, TIMEOUT_MS);
    req.slots = writer ? 0 : SLOTS;
    struct tl_claim_result res;
    memset(&res, 0, sizeof(res));
    (void)read(start_fd, &buf, 1); /* EOF: everyone goes */
    tl_status st = s->ops->claim(s, &req, &res);
    tl__record_clear(&res.rec);
    tl__store_close(s);
    _exit(st == TL_OK ? 0 : st == TL_EBUSY ? 1 : 2);
}

/* One round: RACERS processes claim `key` at once (every other one a writer when `mixed`);
 * the wins by writers and readers. The holders are left to the next round's force. */
static void race_round(const char *key, bool mixed, int *writers, int *readers)
{
    int fds[2];
    pid_t pids[RACERS];

    assert_int_equal(pipe(fds), 0);
    for (int i = 0; i < RACERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(fds[1]);
            racer(fds[0], key, i, mixed && i % 2 == 0);
        }
    }
    close(fds[0]);
    close(fds[1]);
    *writers = *readers = 0;
    for (int i = 0; i < RACERS; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 2)
            fail_msg("racer %d failed", i);
        if (WEXITSTATUS(status) == 0)
            (*(mixed && i % 2 == 0 ? writers : readers))++;
    }
}

static void processes_never_exceed_the_slots_nor_mix(void **state)
{
    (void)state;
    for (int round = 0; round < 6; round++) {
        bool mixed = round % 2 == 1;
        char key[32];
        (void)snprintf(key, sizeof(key), "proc-race-%d", round);
        int w = 0, r = 0;
        race_round(key, mixed, &w, &r);
        struct tl_store *s = open_store();
        struct tl_record **hs = NULL;
        size_t n = 0;
        assert_int_equal(s->ops->holders(s, key, &hs, &n), TL_OK);
        tl_info_array_free((struct tl_info **)hs, n);
        if (mixed ? !((w == 1 && r == 0) || (w == 0 && r >= 1 && r <= SLOTS))
                  : !(w == 0 && r == SLOTS))
            fail_msg("round %d: %d writers and %d readers won", round, w, r);
        assert_int_equal(n, (size_t)(w + r));
        struct tl_force_release fr = {
            .key = key, .worker_id = "admin", .node_id = "n", .summary = "end of round"};
        struct tl_record former = {0};
        bool found = false;
        assert_int_equal(s->ops->force_release(s, &fr, &former, &found), TL_OK);
        assert_true(found);
        tl__record_clear(&former);
        tl__store_close(s);
    }
}

int main(void)
{
    if (!etcd_test_url("modes"))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_of_the_version_before_keep_working),
        cmocka_unit_test(an_older_tasklock_never_takes_a_shared_key),
        cmocka_unit_test(garbled_holders_are_a_clear_error),
        cmocka_unit_test(a_shared_holder_is_released_by_its_token),
        cmocka_unit_test(claim_next_counts_a_shared_key_as_held),
        cmocka_unit_test(a_mismatch_joins_no_line_and_a_reader_finishes_done),
        cmocka_unit_test(processes_never_exceed_the_slots_nor_mix),
    };
    return cmocka_run_group_tests_name("etcd modes", tests, NULL, NULL);
}
