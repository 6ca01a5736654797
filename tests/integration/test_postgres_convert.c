/*
 * test_postgres_convert.c -- upgrades, downgrades and the wait-for graph of the PostgreSQL
 * store beyond the conformance suite, at the store's own interface on the server that
 * tests/harness/start-postgres started (TL_TEST_POSTGRES_URI; skipped when unset): an upgrader
 * at the head is woken exactly when it has become the only holder (by LISTEN and by polled
 * turns), or when it holds nothing (and then learns TL_ELOST); a waiter keeps the holding text
 * of its latest claim (and an older library's waiter reads as ""); waiters(NULL) lists every
 * waiter of the store across keys; upgraded and downgraded events read back with their
 * details, a garbled kind is a clear error; the previous library's claim and release beside an
 * upgrader; a conversion retried after a lost reply finds its grant; a schema of the previous
 * version's layout is completed by the next open.
 */
#include <libpq-fe.h>
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

#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

#define LONG_MS  60000
#define EVENT_MS 20000 /* a bound on waits that end by an event, not a timing */

static const char *base_url;
static char run_id[40];

static const char *const up_id = "0000000000000000000000000000aa01";
static const char *const up_id2 = "0000000000000000000000000000aa02";
static const char *const w_id = "0000000000000000000000000000bb01";

/* A schema of its own for one test: its name and the store URL naming it. */
struct place {
    char schema[64];
    char url[700];
};

static void new_place(struct place *p, const char *what)
{
    (void)snprintf(p->schema, sizeof(p->schema), "tl_conv_%s_%s", what, run_id);
    (void)snprintf(p->url, sizeof(p->url), "%s%sschema=%s", base_url,
                   strchr(base_url, '?') ? "&" : "?", p->schema);
}

static struct tl_store *open_url(const char *url)
{
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE] = "";

    if (tl__store_open(url, NULL, &tl__real_clock, NULL, &s, err) != TL_OK)
        fail_msg("open %s: %s", url, err);
    return s;
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *admin(void)
{
    PGconn *c = PQconnectdb(base_url);

    assert_int_equal(PQstatus(c), CONNECTION_OK);
    (void)PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* Runs `sql`, which must return one row, and returns its first value as text (a static
 * buffer, valid until the next call). */
static const char *value_of(PGconn *c, const char *sql)
{
    static char buf[512];
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s (%d rows)", sql, PQresultErrorMessage(r), PQntuples(r));
    (void)snprintf(buf, sizeof(buf), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

static void drop_place(PGconn *c, const struct place *p)
{
    char sql[200];

    (void)snprintf(sql, sizeof(sql), "DROP SCHEMA \"%s\" CASCADE", p->schema);
    exec_ok(c, sql);
}

static struct tl_claim claim_of(const char *key, const char *worker, bool shared)
{
    return (struct tl_claim){.key = key,
                             .worker_id = worker,
                             .node_id = "conv-n",
                             .task_info = "{}",
                             .lock_timeout_ms = LONG_MS,
                             .shared = shared};
}

static void hold(struct tl_store *s, const struct tl_claim *req, struct tl_record *held)
{
    struct tl_claim_result res;

    memset(&res, 0, sizeof(res));
    if (s->ops->claim(s, req, &res) != TL_OK)
        fail_msg("claim %s by %s: %s", req->key, req->worker_id, s->errmsg);
    *held = res.rec;
}

/* The request of an upgrade (waiter NULL: one attempt) or a downgrade of `held`. */
static struct tl_claim conv_of(const struct tl_record *held, bool shared, const char *waiter,
                               const char *holding)
{
    struct tl_claim c = claim_of(held->info.key, held->info.worker_id, shared);

    c.waiter_id = waiter;
    c.priority = TL_PRIORITY_UPGRADE;
    c.waiter_timeout_ms = LONG_MS;
    c.holding = holding;
    return c;
}

/* Converts `held`; on TL_OK replaces it by the new record. */
static tl_status convert(struct tl_store *s, struct tl_record *held, const struct tl_claim *req,
                         struct tl_claim_result *res)
{
    memset(res, 0, sizeof(*res));
    tl_status st = s->ops->convert(s, held, req, res);
    if (st == TL_OK) {
        tl__record_clear(held);
        *held = res->rec;
        memset(&res->rec, 0, sizeof(res->rec));
    }
    return st;
}

static bool woken_within(struct tl_store *s, const char *key, const char *waiter, uint32_t ms)
{
    bool woken = false;

    assert_int_equal(s->ops->wait_turn(s, key, waiter, ms, &woken), TL_OK);
    return woken;
}

static void release(struct tl_store *s, struct tl_record *held)
{
    assert_int_equal(s->ops->release(s, held, ""), TL_OK);
    tl__record_clear(held);
}

/* ---- the upgrader's wake-up ---- */

/* Three readers; one upgrades and waits at the head. The first other reader's release leaves
 * a holder: no wake-up. The second's makes it the only holder: woken, and its upgrade wins. */
static void woken_when_only_holder(const char *extra)
{
    struct place p;
    char url[800];
    const char *const key = "only";
    struct tl_record a, b, c;
    struct tl_claim_result res;

    new_place(&p, extra[0] ? "onlyp" : "only");
    (void)snprintf(url, sizeof(url), "%s%s", p.url, extra);
    struct tl_store *s = open_url(url);
    struct tl_store *o = open_url(url);
    struct tl_claim ca = claim_of(key, "ra", true), cb = claim_of(key, "rb", true);
    struct tl_claim cc = claim_of(key, "rc", true);
    hold(s, &ca, &a);
    hold(o, &cb, &b);
    hold(o, &cc, &c);

    struct tl_claim up = conv_of(&a, false, up_id, "x");
    assert_int_equal(convert(s, &a, &up, &res), TL_EBUSY);
    assert_true(res.holder_known);
    assert_string_equal(res.rec.info.worker_id, "rb"); /* the oldest other holder */
    assert_int_equal(res.waiting, 1);
    assert_int_equal(res.ahead, 0);
    tl__record_clear(&res.rec);
    assert_false(woken_within(s, key, up_id, 1));

    release(o, &b);
    assert_false(woken_within(s, key, up_id, 300));        /* rc still holds it */
    assert_int_equal(convert(s, &a, &up, &res), TL_EBUSY); /* a refresh: still at the head */
    tl__record_clear(&res.rec);

    uint64_t ct = c.info.token;
    release(o, &c);
    assert_true(woken_within(s, key, up_id, EVENT_MS));
    assert_int_equal(convert(s, &a, &up, &res), TL_OK);
    assert_int_equal(a.info.mode, TL_EXCLUSIVE);
    assert_true(a.info.token > ct);

    struct tl_waiter **w = NULL;
    size_t n = 9;
    assert_int_equal(s->ops->waiters(s, key, &w, &n), TL_OK); /* the win left the line */
    assert_int_equal(n, 0);
    release(s, &a);
    tl__store_close(o);
    tl__store_close(s);
    PGconn *pc = admin();
    drop_place(pc, &p);
    PQfinish(pc);
}

static void an_upgrader_is_woken_when_it_is_the_only_holder(void **state)
{
    (void)state;
    woken_when_only_holder("");
}

static void a_polled_upgrader_finds_its_turn_when_it_is_the_only_holder(void **state)
{
    (void)state;
    woken_when_only_holder("&wakeup=off");
}

/* An upgrader whose shared hold is forced away holds nothing: woken, it learns TL_ELOST. */
static void an_upgrader_that_holds_nothing_is_woken_to_learn_it(void **state)
{
    struct place p;
    const char *const key = "nothing";
    struct tl_record a, b, former;
    struct tl_claim_result res;
    bool found = false;

    (void)state;
    new_place(&p, "nothing");
    struct tl_store *s = open_url(p.url);
    struct tl_store *o = open_url(p.url);
    struct tl_claim ca = claim_of(key, "ra", true), cb = claim_of(key, "rb", true);
    hold(s, &ca, &a);
    hold(o, &cb, &b);
    struct tl_claim up = conv_of(&a, false, up_id, "x");
    assert_int_equal(convert(s, &a, &up, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    assert_false(woken_within(s, key, up_id, 1));

    /* The other reader stays: only the upgrader's own hold goes. */
    const struct tl_force_release fr = {
        .key = key, .worker_id = "admin", .node_id = "n", .token = a.info.token, .summary = ""};
    assert_int_equal(o->ops->force_release(o, &fr, &former, &found), TL_OK);
    assert_true(found);
    tl__record_clear(&former);
    assert_true(woken_within(s, key, up_id, EVENT_MS));
    assert_int_equal(convert(s, &a, &up, &res), TL_ELOST);
    assert_int_equal(s->ops->leave(s, key, up_id), TL_OK);
    tl__record_clear(&a);
    release(o, &b);
    tl__store_close(o);
    tl__store_close(s);
    PGconn *pc = admin();
    drop_place(pc, &p);
    PQfinish(pc);
}

/* ---- the wait-for graph ---- */

/* A waiter keeps the holding text of its latest claim (and an upgrader of its latest
 * conversion); waiters(NULL) lists every waiter of every key, dead ones marked, and a waiter
 * row of the previous library (no holding) reads as "". */
static void waiters_keep_their_holding_and_all_are_listed(void **state)
{
    struct place p;
    char sql[900];
    struct tl_record x, r1, r2;
    struct tl_claim_result res;

    (void)state;
    new_place(&p, "graph");
    struct tl_store *s = open_url(p.url);
    struct tl_store *o = open_url(p.url);
    PGconn *c = admin();

    /* k1: held exclusive; a writer waits holding "x k2 7", then refreshes with more. */
    struct tl_claim cx = claim_of("k1", "holder", false);
    hold(o, &cx, &x);
    struct tl_claim cw = claim_of("k1", "writer", false);
    cw.waiter_id = w_id;
    cw.waiter_timeout_ms = LONG_MS;
    cw.holding = "x k2 7";
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->claim(s, &cw, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    struct tl_waiter **w = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->waiters(s, "k1", &w, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(w[0]->holding, "x k2 7");
    tl_waiter_array_free(w, n);
    cw.holding = "x k2 7 k3 9";
    memset(&res, 0, sizeof(res));
    assert_int_equal(s->ops->claim(s, &cw, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    assert_int_equal(s->ops->waiters(s, "k1", &w, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(w[0]->holding, "x k2 7 k3 9");
    tl_waiter_array_free(w, n);

    /* k2: two readers, one upgrading (its holding refreshed by its next conversion). */
    struct tl_claim c1 = claim_of("k2", "up", true), c2 = claim_of("k2", "other", true);
    hold(s, &c1, &r1);
    hold(o, &c2, &r2);
    struct tl_claim up = conv_of(&r1, false, up_id, "x k2 1");
    assert_int_equal(convert(s, &r1, &up, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    up.holding = "x k2 1 k4 2";
    assert_int_equal(convert(s, &r1, &up, &res), TL_EBUSY);
    tl__record_clear(&res.rec);

    /* k3: a dead waiter of the previous library (no holding column written). */
    (void)snprintf(sql, sizeof(sql),
                   "INSERT INTO \"%s\".tasklock_waiters (waiter_id, key, worker_id, node_id, "
                   "priority, seq, since, heartbeat_at, timeout_ms) VALUES "
                   "('0000000000000000000000000000cc01', 'k3', 'old', 'n', 0, 0, now() - "
                   "interval '1 hour', now() - interval '1 hour', 1000)",
                   p.schema);
    exec_ok(c, sql);

    assert_int_equal(s->ops->waiters(s, NULL, &w, &n), TL_OK);
    assert_int_equal(n, 3);
    bool seen[3] = {false, false, false};
    for (size_t i = 0; i < n; i++) {
        assert_non_null(w[i]->holding);
        if (strcmp(w[i]->waiter_id, w_id) == 0) {
            assert_string_equal(w[i]->key, "k1");
            assert_string_equal(w[i]->holding, "x k2 7 k3 9");
            assert_false(w[i]->dead);
            seen[0] = true;
        } else if (strcmp(w[i]->waiter_id, up_id) == 0) {
            assert_string_equal(w[i]->key, "k2");
            assert_string_equal(w[i]->holding, "x k2 1 k4 2");
            assert_int_equal(w[i]->priority, TL_PRIORITY_UPGRADE);
            assert_false(w[i]->dead);
            seen[1] = true;
        } else {
            assert_string_equal(w[i]->key, "k3");
            assert_string_equal(w[i]->holding, "");
            assert_true(w[i]->dead);
            seen[2] = true;
        }
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    tl_waiter_array_free(w, n);
    /* The upgrader's row remembers the token it converts (its wake-up depends on it). */
    (void)snprintf(sql, sizeof(sql),
                   "SELECT upgrading FROM \"%s\".tasklock_waiters WHERE waiter_id = '%s'", p.schema,
                   up_id);
    char want[24];
    (void)snprintf(want, sizeof(want), "%llu", (unsigned long long)r1.info.token);
    assert_string_equal(value_of(c, sql), want);

    assert_int_equal(s->ops->leave(s, "k1", w_id), TL_OK);
    assert_int_equal(s->ops->leave(s, "k2", up_id), TL_OK);
    release(o, &x);
    release(s, &r1);
    release(o, &r2);
    tl__store_close(o);
    tl__store_close(s);
    drop_place(c, &p);
    PQfinish(c);
}

/* ---- the history ---- */

static const struct tl_event *find_event(struct tl_event **ev, size_t n, tl_event_kind kind)
{
    for (size_t i = 0; i < n; i++)
        if (ev[i]->kind == kind)
            return ev[i];
    return NULL;
}

/* upgraded and downgraded events read back with their details: "from token N", and a steal's
 * "; displaced W (token M)" for a stale reader it removed. A garbled kind is a clear error. */
static void upgraded_and_downgraded_are_in_the_history(void **state)
{
    struct place p;
    char sql[600], want[200];
    struct tl_record a, b;
    struct tl_claim_result res;
    struct tl_event **ev = NULL;
    size_t n = 0;

    (void)state;
    new_place(&p, "history");
    struct tl_store *s = open_url(p.url);
    PGconn *c = admin();
    struct tl_claim ca = claim_of("h", "ra", true), cb = claim_of("h", "stale-rb", true);
    hold(s, &ca, &a);
    hold(s, &cb, &b);
    (void)snprintf(sql, sizeof(sql),
                   "UPDATE \"%s\".tasklock_holders SET heartbeat_at = now() - interval '1 hour' "
                   "WHERE worker_id = 'stale-rb'",
                   p.schema);
    exec_ok(c, sql);

    /* NORMAL counts the stale reader; STEAL displaces it. */
    struct tl_claim up = conv_of(&a, false, NULL, NULL);
    assert_int_equal(convert(s, &a, &up, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    uint64_t from = a.info.token;
    up.mode = TL_CLAIM_STEAL;
    assert_int_equal(convert(s, &a, &up, &res), TL_OK);
    assert_int_equal(a.info.mode, TL_EXCLUSIVE);
    uint64_t up_token = a.info.token;
    struct tl_claim down = conv_of(&a, true, NULL, NULL);
    down.slots = 3;
    assert_int_equal(convert(s, &a, &down, &res), TL_OK);
    assert_int_equal(a.info.mode, TL_SHARED);
    assert_int_equal(a.info.slots, 3);
    assert_true(a.info.token > up_token);

    assert_int_equal(s->ops->history(s, "h", 10, &ev, &n), TL_OK);
    const struct tl_event *u = find_event(ev, n, TL_EVENT_UPGRADED);
    const struct tl_event *d = find_event(ev, n, TL_EVENT_DOWNGRADED);
    assert_non_null(u);
    assert_non_null(d);
    assert_int_equal(u->token, up_token);
    (void)snprintf(want, sizeof(want), "from token %llu; displaced stale-rb (token %llu)",
                   (unsigned long long)from, (unsigned long long)b.info.token);
    assert_string_equal(u->detail, want);
    assert_int_equal(d->token, a.info.token);
    (void)snprintf(want, sizeof(want), "from token %llu", (unsigned long long)up_token);
    assert_string_equal(d->detail, want);
    assert_string_equal(tl_event_kind_name(u->kind), "upgraded");
    tl_event_array_free(ev, n);
    ev = NULL;
    /* The stale reader is gone: renew answers TL_ELOST. */
    int64_t beat = 0;
    assert_int_equal(s->ops->renew(s, &b, 1, &beat), TL_ELOST);
    tl__record_clear(&b);

    /* A garbled kind (the check dropped by hand) is an error naming the table. */
    (void)snprintf(sql, sizeof(sql),
                   "ALTER TABLE \"%s\".tasklock_history DROP CONSTRAINT "
                   "tasklock_history_event_check; INSERT INTO \"%s\".tasklock_history (key, event, "
                   "worker_id, node_id, token) VALUES ('h', 'upgradedx', 'w', 'n', 1)",
                   p.schema, p.schema);
    exec_ok(c, sql);
    assert_int_equal(s->ops->history(s, "h", 10, &ev, &n), TL_ESTORE);
    assert_non_null(strstr(s->errmsg, "tasklock_history"));
    release(s, &a);
    tl__store_close(s);
    drop_place(c, &p);
    PQfinish(c);
}

/* ---- mixed versions and retries ---- */

/* Beside an upgrader, the previous library's shared claim (tasklock_claim_v6) does not pass
 * it, and its release (tasklock_drop_v6, which does not wake upgraders) loses nothing: the
 * upgrader's next conversion wins. */
static void the_previous_library_beside_an_upgrader(void **state)
{
    struct place p;
    char sql[900];
    struct tl_record a, b;
    struct tl_claim_result res;

    (void)state;
    new_place(&p, "mixed");
    struct tl_store *s = open_url(p.url);
    struct tl_store *o = open_url(p.url);
    PGconn *c = admin();
    struct tl_claim ca = claim_of("m", "ra", true), cb = claim_of("m", "rb", true);
    hold(s, &ca, &a);
    hold(o, &cb, &b);
    struct tl_claim up = conv_of(&a, false, up_id, "x");
    assert_int_equal(convert(s, &a, &up, &res), TL_EBUSY);
    tl__record_clear(&res.rec);

    (void)snprintf(sql, sizeof(sql),
                   "SELECT o_outcome FROM \"%s\".tasklock_claim_v6('m', 'old', 'n', '{}', 60000, "
                   "0, 'old-claim', NULL, 1000, 60000, true, 0)",
                   p.schema);
    assert_string_equal(value_of(c, sql), "held");
    (void)snprintf(sql, sizeof(sql),
                   "SELECT o_outcome FROM \"%s\".tasklock_claim_v6('m', 'old', 'n', '{}', 60000, "
                   "0, 'old-claim', '%s', 1000, 60000, true, 0)",
                   p.schema, up_id2);
    assert_string_equal(value_of(c, sql), "held"); /* it queues behind the upgrader */

    (void)snprintf(sql, sizeof(sql),
                   "SELECT \"%s\".tasklock_drop_v6('m', 'rb', %llu, 'n', '', 'x', false)", p.schema,
                   (unsigned long long)b.info.token);
    assert_string_equal(value_of(c, sql), "1");
    tl__record_clear(&b);
    assert_int_equal(convert(s, &a, &up, &res), TL_OK);
    assert_int_equal(a.info.mode, TL_EXCLUSIVE);
    struct tl_waiter **w = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->waiters(s, "m", &w, &n), TL_OK);
    assert_int_equal(n, 1); /* the previous library's waiter, still in line */
    assert_string_equal(w[0]->waiter_id, up_id2);
    assert_string_equal(w[0]->holding, "");
    tl_waiter_array_free(w, n);
    release(s, &a);
    tl__store_close(o);
    tl__store_close(s);
    drop_place(c, &p);
    PQfinish(c);
}

/* The conversion statement sent twice with one id (a reply lost, the call retried): the
 * second answers the first one's grant instead of TL_ELOST. */
static void a_retried_conversion_finds_its_grant(void **state)
{
    struct place p;
    char sql[700], first[64];
    struct tl_record a;

    (void)state;
    new_place(&p, "retry");
    struct tl_store *s = open_url(p.url);
    PGconn *c = admin();
    struct tl_claim ca = claim_of("r", "ra", true);
    hold(s, &ca, &a);
    for (int i = 0; i < 2; i++) {
        (void)snprintf(sql, sizeof(sql),
                       "SELECT o_outcome || ' ' || o_token FROM \"%s\".tasklock_convert_v7('r', "
                       "'ra', %llu, 0, false, 0, 'conv-1', NULL, %d, 60000, '', 'ch')",
                       p.schema, (unsigned long long)a.info.token, TL_PRIORITY_UPGRADE);
        const char *v = value_of(c, sql);
        if (i == 0) {
            assert_string_equal(strncmp(v, "won ", 4) == 0 ? "won" : v, "won");
            (void)snprintf(first, sizeof(first), "mine%s", v + 3);
        } else {
            assert_string_equal(v, first);
        }
    }
    /* Another id is a new call: the old token is no longer a holder. */
    (void)snprintf(sql, sizeof(sql),
                   "SELECT o_outcome FROM \"%s\".tasklock_convert_v7('r', 'ra', %llu, 0, false, "
                   "0, 'conv-2', NULL, %d, 60000, '', 'ch')",
                   p.schema, (unsigned long long)a.info.token, TL_PRIORITY_UPGRADE);
    assert_string_equal(value_of(c, sql), "lost");
    tl__record_clear(&a);
    tl__store_close(s);
    drop_place(c, &p);
    PQfinish(c);
}

/* ---- migration ---- */

/* A schema of the previous version's layout (no _v7 functions, no holding nor upgrading
 * column, a history check without the new kinds), with a waiter of that version in line, is
 * completed by the next open: the waiter reads back with holding "", and conversions work and
 * are recorded. */
static void a_schema_of_the_previous_version_is_completed(void **state)
{
    struct place p;
    char sql[1500];
    struct tl_record a, b;
    struct tl_claim_result res;

    (void)state;
    new_place(&p, "migrate");
    PGconn *c = admin();
    struct tl_store *s = open_url(p.url);
    tl__store_close(s);
    (void)snprintf(
        sql, sizeof(sql),
        "DO $d$ DECLARE f record; BEGIN FOR f IN SELECT p.oid::regprocedure AS sig "
        "FROM pg_proc p WHERE p.pronamespace = '\"%s\"'::regnamespace AND p.proname "
        "LIKE 'tasklock\\_%%\\_v7' LOOP EXECUTE 'DROP FUNCTION ' || f.sig; END LOOP; "
        "END $d$; "
        "ALTER TABLE \"%s\".tasklock_waiters DROP COLUMN holding, DROP COLUMN upgrading; "
        "ALTER TABLE \"%s\".tasklock_history DROP CONSTRAINT "
        "tasklock_history_event_check, ADD CONSTRAINT tasklock_history_event_check "
        "CHECK (event IN ('acquired','released','stolen','forced','lost','done',"
        "'reopened'))",
        p.schema, p.schema, p.schema);
    exec_ok(c, sql);
    (void)snprintf(sql, sizeof(sql),
                   "SELECT o_outcome FROM \"%s\".tasklock_claim_v6('g', 'old', 'n', '{}', 60000, "
                   "0, 'old-1', NULL, 0, 60000, false, 0)",
                   p.schema);
    assert_string_equal(value_of(c, sql), "won");
    (void)snprintf(sql, sizeof(sql),
                   "SELECT o_outcome FROM \"%s\".tasklock_claim_v6('g', 'old-w', 'n', '{}', "
                   "60000, 0, 'old-2', '%s', 0, 60000, false, 0)",
                   p.schema, w_id);
    assert_string_equal(value_of(c, sql), "held");

    s = open_url(p.url);
    struct tl_waiter **w = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->waiters(s, NULL, &w, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(w[0]->holding, "");
    tl_waiter_array_free(w, n);
    struct tl_claim ca = claim_of("u", "ra", true), cb = claim_of("u", "rb", true);
    hold(s, &ca, &a);
    hold(s, &cb, &b);
    struct tl_claim up = conv_of(&a, false, up_id, "x");
    assert_int_equal(convert(s, &a, &up, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    release(s, &b);
    assert_true(woken_within(s, "u", up_id, EVENT_MS));
    assert_int_equal(convert(s, &a, &up, &res), TL_OK);
    struct tl_event **ev = NULL;
    assert_int_equal(s->ops->history(s, "u", 10, &ev, &n), TL_OK);
    assert_non_null(find_event(ev, n, TL_EVENT_UPGRADED));
    tl_event_array_free(ev, n);
    release(s, &a);
    tl__store_close(s);
    drop_place(c, &p);
    PQfinish(c);
}

int main(void)
{
    base_url = tl_test_env("TL_TEST_POSTGRES_URI");
    if (base_url == NULL)
        return 77;
    (void)snprintf(run_id, sizeof(run_id), "%lx_%lx", (unsigned long)time(NULL),
                   (unsigned long)getpid());

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_upgrader_is_woken_when_it_is_the_only_holder),
        cmocka_unit_test(a_polled_upgrader_finds_its_turn_when_it_is_the_only_holder),
        cmocka_unit_test(an_upgrader_that_holds_nothing_is_woken_to_learn_it),
        cmocka_unit_test(waiters_keep_their_holding_and_all_are_listed),
        cmocka_unit_test(upgraded_and_downgraded_are_in_the_history),
        cmocka_unit_test(the_previous_library_beside_an_upgrader),
        cmocka_unit_test(a_retried_conversion_finds_its_grant),
        cmocka_unit_test(a_schema_of_the_previous_version_is_completed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
