/*
 * test_postgres_modes.c -- shared holders and semaphores of the PostgreSQL store beyond the
 * conformance suite, at the store's own interface on the server that tests/harness/
 * start-postgres started (TL_TEST_POSTGRES_URI; skipped when unset): a schema of the previous
 * layout, with locks, waiters, done markers and events written by the previous functions, is
 * migrated by concurrent openers and keeps working; the previous library's functions and
 * statements see a key held shared as held (and its forced release ends the shared holders);
 * garbled holder rows are clear errors; a writer at the head beside readers is not woken by
 * its own busy claims; processes (not threads) racing for a semaphore or a read-write lock
 * never exceed its slots nor mix a writer with anyone.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

#define LONG_MS 60000
#define OPENERS 4
#define RACERS  8

static const char *base_url;
static char run_id[40];

/* A schema of its own for one test: its name and the store URL naming it. */
struct place {
    char schema[64];
    char url[700];
};

static void new_place(struct place *p, const char *what)
{
    (void)snprintf(p->schema, sizeof(p->schema), "tl_modes_%s_%s", what, run_id);
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

/* Runs `sql` with `n` parameters; the one row it must return. Caller clears. */
static PGresult *row_of(PGconn *c, const char *sql, int n, const char *const *v)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s (%d rows)", sql, PQresultErrorMessage(r), PQntuples(r));
    return r;
}

static void drop_place(PGconn *c, const struct place *p)
{
    char sql[200];

    (void)snprintf(sql, sizeof(sql), "DROP SCHEMA \"%s\" CASCADE", p->schema);
    exec_ok(c, sql);
}

static struct tl_claim claim_of(const char *key, const char *worker, bool shared, uint32_t slots)
{
    return (struct tl_claim){.key = key,
                             .worker_id = worker,
                             .node_id = "modes-n",
                             .task_info = "{}",
                             .lock_timeout_ms = LONG_MS,
                             .shared = shared,
                             .slots = slots};
}

static tl_status try_claim(struct tl_store *s, const struct tl_claim *req,
                           struct tl_claim_result *out)
{
    memset(out, 0, sizeof(*out));
    return s->ops->claim(s, req, out);
}

static void hold(struct tl_store *s, const struct tl_claim *req, struct tl_record *held)
{
    struct tl_claim_result res;

    if (try_claim(s, req, &res) != TL_OK)
        fail_msg("claim %s by %s: %s", req->key, req->worker_id, s->errmsg);
    *held = res.rec;
}

/* ---- migration ---- */

/* Takes the shared holders' part out of a schema: what is left is the layout of the library
 * before it (whose tables and functions it did not change). */
static void make_old_layout(PGconn *c, const char *schema)
{
    char sql[1200];

    (void)snprintf(sql, sizeof(sql),
                   "DROP VIEW \"%s\".tasklock_holding_v6 CASCADE; DROP TABLE "
                   "\"%s\".tasklock_holders; "
                   "DO $d$ DECLARE f record; BEGIN FOR f IN SELECT p.oid::regprocedure AS sig "
                   "FROM pg_proc p WHERE p.pronamespace = '\"%s\"'::regnamespace AND p.proname "
                   "LIKE 'tasklock\\_%%\\_v6' LOOP EXECUTE 'DROP FUNCTION ' || f.sig; END LOOP; "
                   "END $d$; "
                   "ALTER TABLE \"%s\".tasklock_locks DROP COLUMN shared_token, DROP COLUMN slots; "
                   "ALTER TABLE \"%s\".tasklock_waiters DROP COLUMN shared, DROP COLUMN slots",
                   schema, schema, schema, schema, schema);
    exec_ok(c, sql);
}

/* A claim through the previous library's function: (outcome, token, worker, stale). */
struct old_claim {
    char outcome[16];
    char token[24];
    char worker[64];
    bool stale;
};

static struct old_claim old_claim_v2(PGconn *c, const char *schema, const char *key,
                                     const char *worker, const char *mode, const char *claim_id,
                                     const char *waiter)
{
    char sql[300];
    struct old_claim oc;
    const char *const v[] = {key,  worker,   "old-n", "{}", "60000",
                             mode, claim_id, waiter,  "0",  "60000"};

    (void)snprintf(sql, sizeof(sql),
                   "SELECT * FROM \"%s\".tasklock_claim_v2($1, $2, $3, $4, $5::int4, $6::int4, "
                   "$7, $8, $9::int4, $10::int4)",
                   schema);
    PGresult *r = row_of(c, sql, 10, v);
    (void)snprintf(oc.outcome, sizeof(oc.outcome), "%s", PQgetvalue(r, 0, 0));
    (void)snprintf(oc.token, sizeof(oc.token), "%s", PQgetvalue(r, 0, 1));
    (void)snprintf(oc.worker, sizeof(oc.worker), "%s", PQgetvalue(r, 0, 2));
    oc.stale = strcmp(PQgetvalue(r, 0, 8), "t") == 0;
    PQclear(r);
    return oc;
}

struct opener {
    pthread_t thread;
    const char *url;
    tl_status st;
    char err[TL_ERRMSG_SIZE];
};

static void *opener_main(void *arg)
{
    struct opener *o = arg;
    struct tl_store *s = NULL;

    o->st = tl__store_open(o->url, NULL, &tl__real_clock, NULL, &s, o->err);
    tl__store_close(s);
    return NULL;
}

static void an_old_layout_is_migrated_with_its_data(void **state)
{
    struct place p;
    char sql[600];
    const char *const waiter = "0123456789abcdef0123456789abcdef";

    (void)state;
    new_place(&p, "mig");
    tl__store_close(open_url(p.url));
    PGconn *c = admin();
    make_old_layout(c, p.schema);

    /* Written the previous library's way: a held lock with a waiter, a done task, events. */
    struct old_claim held = old_claim_v2(c, p.schema, "mig-held", "old-w", "0", "oc-1", NULL);
    assert_string_equal(held.outcome, "won");
    struct old_claim queued = old_claim_v2(c, p.schema, "mig-held", "old-x", "0", "oc-2", waiter);
    assert_string_equal(queued.outcome, "held");
    struct old_claim done = old_claim_v2(c, p.schema, "mig-done", "old-w", "0", "oc-3", NULL);
    assert_string_equal(done.outcome, "won");
    const char *const fv[] = {"mig-done", "old-w", done.token, "old-n", "did it", "unused", "true",
                              NULL,       NULL,    NULL,       NULL,    "1",      "0",      ""};
    (void)snprintf(sql, sizeof(sql),
                   "SELECT * FROM \"%s\".tasklock_finish_v5($1, $2, $3::int8, $4, $5, $6, "
                   "$7::bool, $8::text[], $9, $10, $11, $12::int4, $13::int4, $14)",
                   p.schema);
    PGresult *r = row_of(c, sql, 14, fv);
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);

    /* Opened by several processes' worth of connections at once: each completes or finds it
     * complete. */
    struct opener o[OPENERS];
    for (size_t i = 0; i < OPENERS; i++) {
        o[i] = (struct opener){.url = p.url};
        assert_int_equal(pthread_create(&o[i].thread, NULL, opener_main, &o[i]), 0);
    }
    for (size_t i = 0; i < OPENERS; i++) {
        pthread_join(o[i].thread, NULL);
        if (o[i].st != TL_OK)
            fail_msg("opener %zu: %s: %s", i, tl_strerror(o[i].st), o[i].err);
    }

    /* The old rows as the new columns read them: an unmarked key row, an exclusive waiter. */
    (void)snprintf(sql, sizeof(sql),
                   "SELECT l.shared_token IS NULL, w.shared, w.slots FROM \"%s\".tasklock_locks l "
                   "JOIN \"%s\".tasklock_waiters w ON w.key = l.key WHERE l.key = 'mig-held'",
                   p.schema, p.schema);
    r = row_of(c, sql, 0, NULL);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    assert_string_equal(PQgetvalue(r, 0, 1), "f");
    assert_string_equal(PQgetvalue(r, 0, 2), "0");
    PQclear(r);

    struct tl_store *s = open_url(p.url);
    struct tl_record info;
    bool found = false;
    assert_int_equal(s->ops->inspect(s, "mig-held", &info, &found), TL_OK);
    assert_true(found);
    assert_string_equal(info.info.worker_id, "old-w");
    assert_int_equal(info.info.mode, TL_EXCLUSIVE);
    assert_int_equal(info.info.holders, 1);
    assert_int_equal(info.info.waiting, 1);
    tl__record_clear(&info);

    /* The old holder excludes a reader; its release by token works; its old waiter (an
     * exclusive claim, by the column's default) is next. */
    struct tl_claim rd = claim_of("mig-held", "new-r", true, 0);
    struct tl_claim_result res;
    assert_int_equal(try_claim(s, &rd, &res), TL_EBUSY);
    assert_string_equal(res.rec.info.worker_id, "old-w");
    tl__record_clear(&res.rec);
    const struct tl_record old_rec = {.info = {.key = "mig-held",
                                               .worker_id = "old-w",
                                               .node_id = "old-n",
                                               .token = strtoull(held.token, NULL, 10)}};
    assert_int_equal(s->ops->release(s, &old_rec, "bye"), TL_OK);
    assert_int_equal(try_claim(s, &rd, &res), TL_EBUSY); /* the line is ahead */
    tl__record_clear(&res.rec);
    struct tl_claim wx = claim_of("mig-held", "old-x", false, 0);
    wx.waiter_id = waiter;
    wx.waiter_timeout_ms = LONG_MS;
    struct tl_record xr;
    hold(s, &wx, &xr);
    assert_true(xr.info.token > old_rec.info.token);
    assert_int_equal(s->ops->release(s, &xr, "done"), TL_OK);
    tl__record_clear(&xr);

    struct tl_done **d = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->done_list(s, "mig-done", &d, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(d[0]->summary, "did it");
    tl_done_array_free(d, n);
    struct tl_event **ev = NULL;
    assert_int_equal(s->ops->history(s, "mig-done", 10, &ev, &n), TL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0]->kind, TL_EVENT_ACQUIRED);
    assert_int_equal(ev[1]->kind, TL_EVENT_DONE);
    tl_event_array_free(ev, n);

    /* And shared holders work in the migrated schema. */
    struct tl_record r1, r2;
    struct tl_claim a = claim_of("mig-new", "new-a", true, 2);
    struct tl_claim b = claim_of("mig-new", "new-b", true, 2);
    hold(s, &a, &r1);
    hold(s, &b, &r2);
    struct tl_record **hs = NULL;
    assert_int_equal(s->ops->holders(s, "mig-new", &hs, &n), TL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(hs[0]->info.mode, TL_SHARED);
    assert_int_equal(hs[1]->info.slots, 2);
    tl_info_array_free((struct tl_info **)hs, n);
    assert_int_equal(s->ops->release(s, &r1, ""), TL_OK);
    assert_int_equal(s->ops->release(s, &r2, ""), TL_OK);
    tl__record_clear(&r1);
    tl__record_clear(&r2);
    tl__store_close(s);

    drop_place(c, &p);
    PQfinish(c);
}

/* ---- the previous library beside this one ---- */

/* The previous library's forced release (its statement, with the reply cut to the token). */
static const char old_force[] =
    "WITH o AS (SELECT * FROM {s}.tasklock_locks WHERE key = $1 AND worker_id IS NOT NULL "
    "FOR UPDATE),\n"
    "u AS (UPDATE {s}.tasklock_locks l SET worker_id = NULL, node_id = NULL, claimed_at = "
    "NULL, heartbeat_at = NULL, lock_timeout_ms = NULL, task_info = NULL, claim_id = NULL, "
    "how = NULL, displaced = NULL, wake = false,\n"
    "  token = greatest(nextval('{s}.tasklock_tokens'), l.token + 1)\n"
    "  FROM o WHERE l.key = o.key AND ($2::int8 = 0 OR o.token = $2::int8) "
    "RETURNING l.token AS new_token),\n"
    "h AS (INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token, "
    "detail) SELECT now(), $1, e.event, $3, $4, u.new_token, e.detail FROM u, o,\n"
    "  LATERAL (VALUES (1, 'forced', 'from ' || o.worker_id || ' (token ' || o.token || ')'),"
    " (2, 'released', $5::text)) e(n, event, detail) ORDER BY e.n),\n"
    "n AS (SELECT pg_notify($6, $1) FROM o, u WHERE o.wake),\n"
    "hd AS (SELECT {s}.tasklock_wake_head_v2($1) AS woke FROM u)\n"
    "SELECT u.new_token, (SELECT count(*) FROM n), (SELECT sum(woke) FROM hd) FROM o LEFT JOIN "
    "u ON true";

/* `tmpl` with every "{s}" replaced by the quoted schema. */
static void expand(char *buf, size_t size, const char *tmpl, const char *schema)
{
    size_t n = 0;

    for (const char *t = tmpl; *t != '\0' && n + 1 < size;) {
        if (strncmp(t, "{s}", 3) == 0) {
            int k = snprintf(buf + n, size - n, "\"%s\"", schema);
            n += k > 0 ? (size_t)k : 0;
            t += 3;
        } else {
            buf[n++] = *t++;
        }
    }
    buf[n < size ? n : size - 1] = '\0';
}

static void an_older_library_sees_a_shared_key_held(void **state)
{
    struct place p;
    char sql[2400];
    const char *const key = "old-view";

    (void)state;
    new_place(&p, "old");
    struct tl_store *s = open_url(p.url);
    PGconn *c = admin();
    struct tl_record r1, r2;
    struct tl_claim a = claim_of(key, "new-r1", true, 0);
    struct tl_claim b = claim_of(key, "new-r2", true, 0);
    hold(s, &a, &r1);
    hold(s, &b, &r2);

    /* Its claims, plain or stealing, with or without the line, find the key held, not stale. */
    struct old_claim oc = old_claim_v2(c, p.schema, key, "old-w", "0", "oc-1", NULL);
    assert_string_equal(oc.outcome, "held");
    assert_false(oc.stale);
    oc = old_claim_v2(c, p.schema, key, "old-w", "1", "oc-2", NULL);
    assert_string_equal(oc.outcome, "held");
    assert_false(oc.stale);
    const char *const lv[] = {key, "fedcba9876543210fedcba9876543210"};
    oc = old_claim_v2(c, p.schema, key, "old-w", "1", "oc-3", lv[1]);
    assert_string_equal(oc.outcome, "held");
    (void)snprintf(sql, sizeof(sql), "SELECT \"%s\".tasklock_leave_v2($1, $2)", p.schema);
    PGresult *r = row_of(c, sql, 2, lv);
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    const char *const v1[] = {key, "old-w", "old-n", "{}", "60000", "1", "oc-4"};
    (void)snprintf(sql, sizeof(sql),
                   "SELECT o_outcome FROM \"%s\".tasklock_claim_v1($1, $2, $3, $4, $5::int4, "
                   "$6::int4, $7)",
                   p.schema);
    r = row_of(c, sql, 7, v1);
    assert_string_equal(PQgetvalue(r, 0, 0), "held");
    PQclear(r);
    const char *const nv[] = {"{old-view}", "old-w", "old-n", "{}", "60000", "1", "oc-5"};
    (void)snprintf(sql, sizeof(sql),
                   "SELECT o_index IS NULL, o_held FROM \"%s\".tasklock_next_v5($1::text[], $2, "
                   "$3, $4, $5::int4, $6::int4, $7)",
                   p.schema);
    r = row_of(c, sql, 7, nv);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    assert_string_equal(PQgetvalue(r, 0, 1), "1");
    PQclear(r);
    /* Its inspect (a row of tasklock_locks with a holder) sees a live holder. */
    const char *const kv[] = {key};
    (void)snprintf(sql, sizeof(sql),
                   "SELECT worker_id, now() - heartbeat_at > lock_timeout_ms * interval '1 ms' "
                   "FROM \"%s\".tasklock_locks WHERE key = $1 AND worker_id IS NOT NULL",
                   p.schema);
    r = row_of(c, sql, 1, kv);
    assert_string_equal(PQgetvalue(r, 0, 1), "f");
    PQclear(r);
    /* Nothing of it took the key: both readers still renew. */
    int64_t beat;
    assert_int_equal(s->ops->renew(s, &r1, 1, &beat), TL_OK);
    assert_int_equal(s->ops->renew(s, &r2, 1, &beat), TL_OK);

    /* Its forced release breaks the key: the shared holders are gone with it. */
    char tmpl[2400];
    expand(tmpl, sizeof(tmpl), old_force, p.schema);
    const char *const fv[] = {key, "0", "old-admin", "old-n", "broken", "unused"};
    r = row_of(c, tmpl, 6, fv);
    assert_false(PQgetisnull(r, 0, 0));
    uint64_t forced = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    assert_int_equal(s->ops->renew(s, &r1, 2, &beat), TL_ELOST);
    assert_int_equal(s->ops->renew(s, &r2, 2, &beat), TL_ELOST);
    assert_int_equal(s->ops->release(s, &r1, ""), TL_ENOTOWNER);
    struct tl_record **hs = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->holders(s, key, &hs, &n), TL_OK);
    assert_int_equal(n, 0);
    struct tl_record w;
    struct tl_claim wc = claim_of(key, "new-w", false, 0);
    hold(s, &wc, &w);
    assert_true(w.info.token > forced);
    /* The broken holders' rows went with that grant. */
    (void)snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"%s\".tasklock_holders WHERE key = $1",
                   p.schema);
    r = row_of(c, sql, 1, kv);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    assert_int_equal(s->ops->release(s, &w, ""), TL_OK);
    tl__record_clear(&w);
    tl__record_clear(&r1);
    tl__record_clear(&r2);
    tl__store_close(s);
    drop_place(c, &p);
    PQfinish(c);
}

/* ---- garbled rows ---- */

static void garbled_holder_rows_are_clear_errors(void **state)
{
    struct place p;
    char sql[600];
    const char *const key = "garbled";
    struct tl_record info, **arr = NULL;
    size_t n = 0;
    bool found = false;

    (void)state;
    new_place(&p, "bad");
    struct tl_store *s = open_url(p.url);
    PGconn *c = admin();
    struct tl_record r1;
    struct tl_claim a = claim_of(key, "new-r1", true, 3);
    hold(s, &a, &r1);

    (void)snprintf(sql, sizeof(sql),
                   "ALTER TABLE \"%s\".tasklock_holders DROP CONSTRAINT "
                   "tasklock_holders_slots_check; UPDATE \"%s\".tasklock_holders SET slots = -5",
                   p.schema, p.schema);
    exec_ok(c, sql);
    assert_int_equal(s->ops->inspect(s, key, &info, &found), TL_ESTORE);
    assert_false(found);
    assert_non_null(strstr(s->errmsg, key));
    assert_non_null(strstr(s->errmsg, "tasklock_holders"));
    assert_int_equal(s->ops->holders(s, key, &arr, &n), TL_ESTORE);
    assert_null(arr);
    assert_int_equal(s->ops->list(s, &arr, &n), TL_ESTORE);
    assert_null(arr);
    struct tl_claim b = claim_of(key, "new-r2", true, 3);
    struct tl_claim_result res;
    assert_int_equal(try_claim(s, &b, &res), TL_ESTORE);

    (void)snprintf(sql, sizeof(sql),
                   "UPDATE \"%s\".tasklock_holders SET slots = 3, task_info = 'not json{'",
                   p.schema);
    exec_ok(c, sql);
    assert_int_equal(s->ops->inspect(s, key, &info, &found), TL_ESTORE);
    assert_non_null(strstr(s->errmsg, "task_info"));
    assert_int_equal(try_claim(s, &b, &res), TL_OK); /* a free slot: no holder to show */
    struct tl_record r2 = res.rec;
    struct tl_claim wc = claim_of(key, "new-w", false, 0);
    assert_int_equal(try_claim(s, &wc, &res), TL_ESTORE);
    assert_non_null(strstr(s->errmsg, "task_info"));

    (void)snprintf(sql, sizeof(sql),
                   "UPDATE \"%s\".tasklock_holders SET task_info = '{}', worker_id = 'two words'",
                   p.schema);
    exec_ok(c, sql);
    assert_int_equal(s->ops->inspect(s, key, &info, &found), TL_ESTORE);
    assert_non_null(strstr(s->errmsg, "worker_id"));

    /* The key row's mark without any holder row: free to this library. */
    (void)snprintf(sql, sizeof(sql), "DELETE FROM \"%s\".tasklock_holders", p.schema);
    exec_ok(c, sql);
    assert_int_equal(s->ops->inspect(s, key, &info, &found), TL_OK);
    assert_false(found);
    struct tl_record w;
    hold(s, &wc, &w);
    assert_true(w.info.token > r2.info.token);
    assert_int_equal(s->ops->release(s, &w, ""), TL_OK);
    tl__record_clear(&w);
    tl__record_clear(&r1);
    tl__record_clear(&r2);
    tl__store_close(s);
    drop_place(c, &p);
    PQfinish(c);
}

/* ---- wake-ups ---- */

/* A writer at the head of the line beside a reader: its own busy claims (one of which removes
 * a dead waiter ahead of it, and so changes the head) never wake it; the reader's release
 * does. */
static void a_writer_at_the_head_is_not_woken_by_its_own_claims(void **state)
{
    struct place p;
    char sql[800];
    const char *const key = "head";
    const char *const me = "00000000000000000000000000000001";
    bool woken = true;

    (void)state;
    new_place(&p, "head");
    struct tl_store *s = open_url(p.url);
    struct tl_store *ws = open_url(p.url);
    PGconn *c = admin();
    struct tl_record rr;
    struct tl_claim rc = claim_of(key, "reader", true, 0);
    hold(s, &rc, &rr);

    struct tl_claim wc = claim_of(key, "writer", false, 0);
    wc.waiter_id = me;
    wc.waiter_timeout_ms = LONG_MS;
    struct tl_claim_result res;
    assert_int_equal(try_claim(ws, &wc, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    /* Listening on its channel from here on (kept from one wait_turn to the next). */
    assert_int_equal(ws->ops->wait_turn(ws, key, me, 1, &woken), TL_OK);
    assert_false(woken);

    /* A dead waiter ahead of it: the writer's next claim removes it, which changes the head. */
    (void)snprintf(sql, sizeof(sql),
                   "INSERT INTO \"%s\".tasklock_waiters (waiter_id, key, worker_id, node_id, "
                   "priority, seq, since, heartbeat_at, timeout_ms) VALUES "
                   "('00000000000000000000000000000002', '%s', 'gone', 'n', 5, 0, now() - "
                   "interval '1 hour', now() - interval '1 hour', 1000)",
                   p.schema, key);
    exec_ok(c, sql);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(try_claim(ws, &wc, &res), TL_EBUSY);
        assert_int_equal(res.ahead, 0);
        tl__record_clear(&res.rec);
    }
    /* No wake-up is pending: the wait runs its whole (short) time. */
    assert_int_equal(ws->ops->wait_turn(ws, key, me, 200, &woken), TL_OK);
    assert_false(woken);

    /* The reader's release is the wake-up. */
    assert_int_equal(s->ops->release(s, &rr, ""), TL_OK);
    assert_int_equal(ws->ops->wait_turn(ws, key, me, 20000, &woken), TL_OK);
    assert_true(woken);
    struct tl_record w;
    hold(ws, &wc, &w);
    assert_int_equal(ws->ops->release(ws, &w, ""), TL_OK);
    tl__record_clear(&w);
    tl__record_clear(&rr);
    tl__store_close(ws);
    tl__store_close(s);
    drop_place(c, &p);
    PQfinish(c);
}

/* Polled turns (pooled=true: no LISTEN): readers queued behind a writer find their turn once
 * the holders admit them, the second one beside the first, not only when the key is free. */
static void polled_readers_behind_a_writer_all_enter(void **state)
{
    struct place p;
    char url[800];
    const char *const key = "polled";
    const char *const ids[2] = {"00000000000000000000000000000011",
                                "00000000000000000000000000000012"};
    struct tl_record w, rd[2];
    struct tl_claim_result res;
    bool woken = false;

    (void)state;
    new_place(&p, "poll");
    (void)snprintf(url, sizeof(url), "%s&pooled=true", p.url);
    struct tl_store *s = open_url(url);
    struct tl_claim wc = claim_of(key, "writer", false, 0);
    hold(s, &wc, &w);
    struct tl_claim rc[2];
    for (int i = 0; i < 2; i++) {
        rc[i] = claim_of(key, i == 0 ? "reader-0" : "reader-1", true, 0);
        rc[i].waiter_id = ids[i];
        rc[i].waiter_timeout_ms = LONG_MS;
        assert_int_equal(try_claim(s, &rc[i], &res), TL_EBUSY);
        tl__record_clear(&res.rec);
    }
    assert_int_equal(s->ops->release(s, &w, ""), TL_OK);
    tl__record_clear(&w);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s->ops->wait_turn(s, key, ids[i], 20000, &woken), TL_OK);
        assert_true(woken);
        hold(s, &rc[i], &rd[i]);
    }
    struct tl_record **hs = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->holders(s, key, &hs, &n), TL_OK);
    assert_int_equal(n, 2);
    tl_info_array_free((struct tl_info **)hs, n);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s->ops->release(s, &rd[i], ""), TL_OK);
        tl__record_clear(&rd[i]);
    }
    tl__store_close(s);
    PGconn *c = admin();
    drop_place(c, &p);
    PQfinish(c);
}

/* ---- processes ---- */

/* One racing process: opens its own store, waits for the start (EOF on `go`), claims `key`
 * once, reports 'X' (won exclusive), 'S' (won shared), 'B' (busy) or 'E' on `res`, holds what it
 * won until EOF on `rel`, releases it and exits. No cmocka here: this is a child process. */
static void racer_child(const char *url, const char *key, bool shared, uint32_t slots, int go,
                        int res, int rel)
{
    char name[32], c = 'E', b;
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE];

    (void)snprintf(name, sizeof(name), "proc-%ld", (long)getpid());
    if (tl__store_open(url, NULL, &tl__real_clock, NULL, &s, err) != TL_OK)
        s = NULL;
    while (read(go, &b, 1) > 0)
        ;
    struct tl_claim req = claim_of(key, name, shared, slots);
    struct tl_claim_result out;
    memset(&out, 0, sizeof(out));
    tl_status st = s != NULL ? s->ops->claim(s, &req, &out) : TL_ESTORE;
    if (st == TL_OK)
        c = shared ? 'S' : 'X';
    else if (st == TL_EBUSY)
        c = 'B';
    if (write(res, &c, 1) != 1)
        _exit(2);
    while (read(rel, &b, 1) > 0)
        ;
    if (st == TL_OK && s->ops->release(s, &out.rec, "") != TL_OK)
        _exit(3);
    tl__record_clear(&out.rec);
    tl__store_close(s);
    _exit(0);
}

/* RACERS processes claim `key` at once (with `mixed`, every other one exclusive); counts the
 * exclusive and shared wins, once all have tried and before anyone releases. */
static void race_processes(const char *url, const char *key, bool mixed, uint32_t slots, size_t *ex,
                           size_t *sh)
{
    int go[2], res[2], rel[2];
    pid_t pids[RACERS];

    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(res), 0);
    assert_int_equal(pipe(rel), 0);
    for (size_t i = 0; i < RACERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            close(res[0]);
            close(rel[1]);
            racer_child(url, key, !(mixed && i % 2 == 0), mixed ? 0 : slots, go[0], res[1], rel[0]);
        }
    }
    close(go[0]);
    close(res[1]);
    close(rel[0]);
    close(go[1]); /* the start */
    *ex = *sh = 0;
    for (size_t i = 0; i < RACERS; i++) {
        char c = 0;
        assert_int_equal(read(res[0], &c, 1), 1);
        if (c == 'E')
            fail_msg("a racing process could not claim");
        *ex += c == 'X';
        *sh += c == 'S';
    }
    close(rel[1]); /* release */
    close(res[0]);
    for (size_t i = 0; i < RACERS; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

static void processes_racing_never_exceed_slots_nor_mix(void **state)
{
    char key[96];
    size_t ex, sh;
    struct place p;

    (void)state;
    new_place(&p, "proc");
    tl__store_close(open_url(p.url));
    for (int round = 0; round < 3; round++) {
        (void)snprintf(key, sizeof(key), "proc-sem-%s-%d", run_id, round);
        race_processes(p.url, key, false, 3, &ex, &sh);
        if (ex != 0 || sh != 3)
            fail_msg("round %d: %zu of %d processes got a semaphore of 3 slots", round, sh, RACERS);
        (void)snprintf(key, sizeof(key), "proc-rw-%s-%d", run_id, round);
        race_processes(p.url, key, true, 0, &ex, &sh);
        if (!(ex == 1 && sh == 0) && !(ex == 0 && sh >= 1))
            fail_msg("round %d: %zu writers and %zu readers held at once", round, ex, sh);
    }
    PGconn *c = admin();
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
        cmocka_unit_test(an_old_layout_is_migrated_with_its_data),
        cmocka_unit_test(an_older_library_sees_a_shared_key_held),
        cmocka_unit_test(garbled_holder_rows_are_clear_errors),
        cmocka_unit_test(a_writer_at_the_head_is_not_woken_by_its_own_claims),
        cmocka_unit_test(polled_readers_behind_a_writer_all_enter),
        cmocka_unit_test(processes_racing_never_exceed_slots_nor_mix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
