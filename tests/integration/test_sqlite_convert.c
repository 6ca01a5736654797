/*
 * test_sqlite_convert.c -- the SQLite store's upgrades, downgrades and wait-for graph beyond the
 * conformance suite: an upgrader at the head is woken (datagram and poll) exactly when it has
 * become the only holder, or holds nothing; a downgrade wakes the reader at the head; a waiter's
 * holds are kept when it joins and at each refresh; waiters(NULL) lists every key's line; the
 * trail has `upgraded` and `downgraded` with their details; a file from before upgrades gets
 * its columns and its waiters read back with no holds; what an older tasklock's statements do
 * beside an upgrader; garbled values answer clear errors.
 *
 * "The older tasklock" is its SQL, copied verbatim from src/stores/sqlite.c before upgrades
 * (commit 31bd1db).
 */
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "tasklock.h"
#include "test_sqlite_fixture.h"
#include "tl.h"
#include "tl_test.h"

/* ---- the older tasklock's statements (sqlite.c at 31bd1db) ---- */

static const char old_w_insert[] =
    "INSERT INTO tl_waiters(key, waiter_id, worker_id, node_id, priority, since, heartbeat_at, "
    "timeout_ms, shared, slots) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9)";
static const char old_w_count[] =
    "SELECT COUNT(*), COALESCE(SUM(CASE ?3 WHEN 0 THEN 1 WHEN 1 THEN (priority > ?4 OR "
    "(priority = ?4 AND seq < ?5)) ELSE priority >= ?4 END), 0) FROM tl_waiters WHERE key = ?1 "
    "AND heartbeat_at + timeout_ms > ?2";

/* The schema of the tasklock before upgrades (shared holders, no upgrading or holding columns,
 * the CHECK of seven event kinds), with a waiter in a line and a trail. */
static const char old_file[] =
    "PRAGMA journal_mode = WAL;"
    "CREATE TABLE tl_locks (key TEXT PRIMARY KEY NOT NULL, token INTEGER NOT NULL, worker_id "
    "TEXT, node_id TEXT, claimed_at INTEGER, heartbeat_at INTEGER, lock_timeout_ms INTEGER, "
    "task_info TEXT) WITHOUT ROWID;"
    "CREATE TABLE tl_history (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, key "
    "TEXT NOT NULL, event TEXT NOT NULL CHECK (event IN ('acquired','released','stolen',"
    "'forced','lost','done','reopened')), worker_id TEXT NOT NULL, node_id TEXT NOT NULL, "
    "token INTEGER NOT NULL, detail TEXT);"
    "CREATE INDEX tl_history_by_key ON tl_history(key, id);"
    "CREATE TABLE tl_waiters (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, "
    "waiter_id TEXT NOT NULL, worker_id TEXT NOT NULL, node_id TEXT NOT NULL, priority INTEGER "
    "NOT NULL, since INTEGER NOT NULL, heartbeat_at INTEGER NOT NULL, timeout_ms INTEGER NOT "
    "NULL, shared INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)), slots INTEGER NOT NULL "
    "DEFAULT 0 CHECK (slots BETWEEN 0 AND 100000), UNIQUE (key, waiter_id));"
    "CREATE INDEX tl_waiters_line ON tl_waiters(key, priority DESC, seq);"
    "CREATE TABLE tl_done (key TEXT PRIMARY KEY NOT NULL, worker_id TEXT NOT NULL, node_id TEXT "
    "NOT NULL, token INTEGER NOT NULL, done_at INTEGER NOT NULL, summary TEXT NOT NULL) WITHOUT "
    "ROWID;"
    "CREATE TABLE tl_shared (key TEXT NOT NULL, token INTEGER NOT NULL, worker_id TEXT NOT NULL, "
    "node_id TEXT NOT NULL, claimed_at INTEGER NOT NULL, heartbeat_at INTEGER NOT NULL, "
    "lock_timeout_ms INTEGER NOT NULL, task_info TEXT NOT NULL, slots INTEGER NOT NULL CHECK "
    "(typeof(slots) = 'integer' AND slots BETWEEN 0 AND 100000), PRIMARY KEY (key, token)) "
    "WITHOUT ROWID;"
    "INSERT INTO tl_locks VALUES ('held', 7, 'old-worker', 'old-node', 1, 4102444800000, "
    "60000, '{}');"
    "INSERT INTO tl_waiters(key, waiter_id, worker_id, node_id, priority, since, heartbeat_at, "
    "timeout_ms, shared, slots) VALUES ('held', '0000000000000000000000000000beef', "
    "'old-waiter', 'old-node', 0, 1, 4102444800000, 60000, 1, 0);"
    "INSERT INTO tl_history(at, key, event, worker_id, node_id, token) VALUES "
    "(1, 'held', 'acquired', 'old-worker', 'old-node', 7);"
    "PRAGMA user_version = 1;";

/* ---- claims and conversions straight through the store ---- */

/* A claim by `worker` (with waiter n when n >= 0, listing `holding`). */
static tl_status claim(struct tl_store *s, const char *key, const char *worker, bool shared, int n,
                       const char *holding, struct tl_claim_result *out)
{
    const struct tl_claim req = {
        .key = key,
        .worker_id = worker,
        .node_id = "node-1",
        .task_info = "{}",
        .lock_timeout_ms = LOCK_TIMEOUT,
        .mode = TL_CLAIM_NORMAL,
        .waiter_id = n < 0 ? NULL : wid(n),
        .waiter_timeout_ms = WAITER_TIMEOUT,
        .shared = shared,
        .holding = holding,
    };

    memset(out, 0, sizeof(*out));
    return s->ops->claim(s, &req, out);
}

static void win(struct tl_store *s, const char *key, const char *worker, bool shared,
                struct tl_record *held)
{
    struct tl_claim_result r;
    tl_status st = claim(s, key, worker, shared, -1, NULL, &r);

    if (st != TL_OK)
        fail_msg("%s claiming %s: %s (%s)", worker, key, tl_strerror(st), s->errmsg);
    *held = r.rec;
}

static void must_wait(struct tl_store *s, const char *key, const char *worker, bool shared, int n,
                      const char *holding)
{
    struct tl_claim_result r;

    assert_int_equal(claim(s, key, worker, shared, n, holding, &r), TL_EBUSY);
    tl__record_clear(&r.rec);
}

/* A conversion of `held` to shared (`shared`) or exclusive, as the core asks for it: an upgrade
 * that may wait has waiter n (n >= 0). */
static tl_status convert(struct tl_store *s, const struct tl_record *held, bool shared,
                         enum tl_claim_mode mode, int n, const char *holding,
                         struct tl_claim_result *out)
{
    const struct tl_claim req = {
        .key = held->info.key,
        .worker_id = held->info.worker_id,
        .node_id = held->info.node_id,
        .task_info = held->info.task_info,
        .lock_timeout_ms = held->info.lock_timeout_ms,
        .mode = mode,
        .waiter_id = n < 0 ? NULL : wid(n),
        .priority = TL_PRIORITY_UPGRADE,
        .waiter_timeout_ms = n < 0 ? 0 : WAITER_TIMEOUT,
        .shared = shared,
        .holding = holding,
    };

    memset(out, 0, sizeof(*out));
    return s->ops->convert(s, held, &req, out);
}

/* A conversion that must win: *held becomes the new record. */
static void converted(struct tl_store *s, struct tl_record *held, bool shared, int n)
{
    struct tl_claim_result r;
    tl_status st = convert(s, held, shared, TL_CLAIM_NORMAL, n, NULL, &r);

    if (st != TL_OK)
        fail_msg("converting %s: %s (%s)", held->info.key, tl_strerror(st), s->errmsg);
    assert_int_equal(r.rec.info.mode, shared ? TL_SHARED : TL_EXCLUSIVE);
    assert_true(r.rec.info.token > held->info.token);
    tl__record_clear(held);
    *held = r.rec;
}

static bool turn(struct tl_store *s, const char *key, int n)
{
    bool woken = false;

    assert_int_equal(s->ops->wait_turn(s, key, wid(n), 1, &woken), TL_OK);
    return woken;
}

struct line {
    struct tl_waiter **w;
    size_t n;
};

static struct line line_of(struct tl_store *s, const char *key)
{
    struct line l = {0};

    if (s->ops->waiters(s, key, &l.w, &l.n) != TL_OK)
        fail_msg("waiters of %s: %s", key ? key : "every key", s->errmsg);
    return l;
}

static void line_free(struct line *l)
{
    tl_waiter_array_free(l->w, l->n);
}

static size_t holders(struct tl_store *s, const char *key, tl_mode *mode)
{
    struct tl_record **hs = NULL;
    size_t n = 0;

    if (s->ops->holders(s, key, &hs, &n) != TL_OK)
        fail_msg("holders of %s: %s", key, s->errmsg);
    if (n > 0 && mode != NULL)
        *mode = hs[0]->info.mode;
    tl_info_array_free((struct tl_info **)hs, n);
    return n;
}

/* The detail of the key's latest event of `kind` (copied into buf), or false if none. */
static bool last_event(struct tl_store *s, const char *key, tl_event_kind kind, uint64_t *token,
                       char *buf, size_t size)
{
    struct tl_event **ev = NULL;
    size_t n = 0;
    bool found = false;

    if (s->ops->history(s, key, 100, &ev, &n) != TL_OK)
        fail_msg("history of %s: %s", key, s->errmsg);
    for (size_t i = 0; i < n; i++) {
        if (ev[i]->kind != kind)
            continue;
        found = true;
        *token = ev[i]->token;
        (void)snprintf(buf, size, "%s", ev[i]->detail ? ev[i]->detail : "");
    }
    tl_event_array_free(ev, n);
    return found;
}

/* ---- an upgrader's turn ---- */

#ifdef __linux__
static void an_upgrader_is_woken_when_it_becomes_the_only_holder(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_store *up = open_store(f), *w = open_store(f);
    struct tl_record a, b, c;
    struct tl_claim_result r;

    (void)state;
    win(up, "k", "reader-a", true, &a);
    win(f->s, "k", "reader-b", true, &b);
    win(f->s, "k", "reader-c", true, &c);

    /* Beside b and c: busy, b (the oldest other holder) named, a at the head of the line. */
    assert_int_equal(convert(up, &a, false, TL_CLAIM_NORMAL, 0, "x k 1", &r), TL_EBUSY);
    assert_true(r.holder_known);
    assert_string_equal(r.rec.info.worker_id, "reader-b");
    assert_int_equal(r.waiting, 1);
    assert_int_equal(r.ahead, 0);
    tl__record_clear(&r.rec);
    struct line l = line_of(f->s, "k");
    assert_int_equal(l.n, 1);
    assert_int_equal(l.w[0]->priority, TL_PRIORITY_UPGRADE);
    line_free(&l);
    /* A writer behind it, not woken by anything here, and no newcomer passes the upgrader. */
    must_wait(w, "k", "writer", false, 1, NULL);
    assert_false(turn(w, "k", 1));
    assert_int_equal(claim(f->s, "k", "reader-d", true, -1, NULL, &r), TL_EBUSY);
    tl__record_clear(&r.rec);

    /* It binds its socket in its first wait: its turn has not come. */
    assert_false(turn(up, "k", 0));
    assert_int_equal(tl__sqlite_test_wakeups(up), 0);
    /* b leaves, c still holds: no wake-up, and its poll says no. */
    assert_int_equal(f->s->ops->release(f->s, &b, "bye"), TL_OK);
    assert_int_equal(tl__sqlite_test_wakeups(up), 0);
    assert_false(turn(up, "k", 0));
    /* c leaves: the upgrader is the only holder, woken by the release and by its poll. */
    assert_int_equal(f->s->ops->release(f->s, &c, "bye"), TL_OK);
    assert_int_equal(tl__sqlite_test_wakeups(up), 1);
    assert_true(turn(up, "k", 0));
    assert_int_equal(tl__sqlite_test_wakeups(w), 0);
    assert_false(turn(w, "k", 1));

    /* Its upgrade wins: exclusive, a token above c's, its waiter gone, the writer waits on. */
    uint64_t ct = c.info.token;
    converted(up, &a, false, 0);
    assert_true(a.info.token > ct);
    tl_mode mode = TL_SHARED;
    assert_int_equal(holders(f->s, "k", &mode), 1);
    assert_int_equal(mode, TL_EXCLUSIVE);
    l = line_of(f->s, "k");
    assert_int_equal(l.n, 1);
    assert_string_equal(l.w[0]->worker_id, "writer");
    line_free(&l);
    int64_t beat;
    assert_int_equal(up->ops->renew(up, &a, 1, &beat), TL_OK);
    assert_int_equal(up->ops->release(up, &a, "bye"), TL_OK);
    assert_int_equal(tl__sqlite_test_wakeups(w), 1);
    assert_true(turn(w, "k", 1));
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__record_clear(&c);
    tl__store_close(up);
    tl__store_close(w);
    fix_free(f);
}

/* An upgrader whose own hold was broken learns it once no one else holds the key. */
static void an_upgrader_that_holds_nothing_is_woken_to_learn_it(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_store *up = open_store(f);
    struct tl_record a, b, former;
    struct tl_claim_result r;
    bool found = false;

    (void)state;
    win(up, "k", "reader-a", true, &a);
    win(f->s, "k", "reader-b", true, &b);
    assert_int_equal(convert(up, &a, false, TL_CLAIM_NORMAL, 0, NULL, &r), TL_EBUSY);
    tl__record_clear(&r.rec);
    assert_false(turn(up, "k", 0));
    const struct tl_force_release fr = {
        .key = "k", .worker_id = "admin", .node_id = "n", .token = a.info.token, .summary = "x"};
    assert_int_equal(f->s->ops->force_release(f->s, &fr, &former, &found), TL_OK);
    assert_true(found);
    tl__record_clear(&former);
    assert_false(turn(up, "k", 0)); /* b holds the key */
    assert_int_equal(f->s->ops->release(f->s, &b, "bye"), TL_OK);
    assert_int_equal(tl__sqlite_test_wakeups(up), 1);
    assert_true(turn(up, "k", 0));
    assert_int_equal(convert(up, &a, false, TL_CLAIM_NORMAL, 0, NULL, &r), TL_ELOST);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__store_close(up);
    fix_free(f);
}

/* A stealing upgrader does not wait for stale holders: the release of the last live other holder
 * wakes it (datagram and poll). A plain upgrader beside a stale holder waits on. */
static void a_stealing_upgrader_is_woken_beside_stale_holders(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_store *up = open_store(f), *plain = open_store(f);
    struct tl_record a, b, c, a2, b2, c2;
    struct tl_claim_result r;
    int64_t beat;

    (void)state;
    win(up, "k", "reader-a", true, &a);
    win(f->s, "k", "reader-b", true, &b);
    win(f->s, "k", "reader-c", true, &c);
    win(plain, "n", "reader-a2", true, &a2);
    win(f->s, "n", "reader-b2", true, &b2);
    win(f->s, "n", "reader-c2", true, &c2);
    assert_int_equal(convert(up, &a, false, TL_CLAIM_STEAL, 0, NULL, &r), TL_EBUSY);
    tl__record_clear(&r.rec);
    assert_int_equal(convert(plain, &a2, false, TL_CLAIM_NORMAL, 1, NULL, &r), TL_EBUSY);
    tl__record_clear(&r.rec);
    assert_false(turn(up, "k", 0));
    assert_false(turn(plain, "n", 1));

    /* b and b2 go stale; the others renew. c still counts. */
    advance(f, LOCK_TIMEOUT - 1000);
    assert_int_equal(up->ops->renew(up, &a, 1, &beat), TL_OK);
    assert_int_equal(f->s->ops->renew(f->s, &c, 1, &beat), TL_OK);
    assert_int_equal(plain->ops->renew(plain, &a2, 1, &beat), TL_OK);
    assert_int_equal(f->s->ops->renew(f->s, &c2, 1, &beat), TL_OK);
    advance(f, 2000);
    assert_false(turn(up, "k", 0));
    assert_false(turn(plain, "n", 1));

    /* c leaves: only a stale holder is left beside the stealing upgrader. */
    assert_int_equal(f->s->ops->release(f->s, &c, "bye"), TL_OK);
    assert_int_equal(f->s->ops->release(f->s, &c2, "bye"), TL_OK);
    assert_int_equal(tl__sqlite_test_wakeups(up), 1);
    assert_true(turn(up, "k", 0));
    assert_int_equal(tl__sqlite_test_wakeups(plain), 0);
    assert_false(turn(plain, "n", 1));
    assert_int_equal(convert(up, &a, false, TL_CLAIM_STEAL, 0, NULL, &r), TL_OK);
    assert_true(r.took_stale);
    tl__record_clear(&r.rec);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__record_clear(&c);
    tl__record_clear(&a2);
    tl__record_clear(&b2);
    tl__record_clear(&c2);
    tl__store_close(up);
    tl__store_close(plain);
    fix_free(f);
}

static void a_downgrade_wakes_the_reader_at_the_head(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_store *rd = open_store(f), *wr = open_store(f);
    struct tl_record x, r1;

    (void)state;
    win(f->s, "k", "writer", false, &x);
    must_wait(rd, "k", "reader", true, 1, NULL);
    must_wait(wr, "k", "writer-2", false, 2, NULL);
    assert_false(turn(rd, "k", 1));
    assert_false(turn(wr, "k", 2));
    converted(f->s, &x, true, -1);
    assert_int_equal(tl__sqlite_test_wakeups(rd), 1);
    assert_true(turn(rd, "k", 1));
    assert_int_equal(tl__sqlite_test_wakeups(wr), 0);
    struct tl_claim_result r;
    assert_int_equal(claim(rd, "k", "reader", true, 1, NULL, &r), TL_OK);
    r1 = r.rec;
    assert_true(r1.info.token > x.info.token);
    assert_int_equal(holders(f->s, "k", NULL), 2);
    int64_t beat;
    assert_int_equal(f->s->ops->renew(f->s, &x, 1, &beat), TL_OK);
    tl__record_clear(&x);
    tl__record_clear(&r1);
    tl__store_close(rd);
    tl__store_close(wr);
    fix_free(f);
}
#endif

/* Without a waiter id an upgrade only answers; with STEAL stale holders do not count. */
static void a_conversion_answers_and_steals_as_a_claim(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record a, b, stranger;
    struct tl_claim_result r;
    int64_t beat;

    (void)state;
    win(f->s, "k", "reader-a", true, &a);
    win(f->s, "k", "reader-b", true, &b);
    assert_int_equal(convert(f->s, &a, false, TL_CLAIM_NORMAL, -1, NULL, &r), TL_EBUSY);
    assert_string_equal(r.rec.info.worker_id, "reader-b");
    tl__record_clear(&r.rec);
    struct line l = line_of(f->s, "k");
    assert_int_equal(l.n, 0);
    line_free(&l);

    /* b goes stale, a renews: NORMAL still counts b, STEAL displaces it. */
    advance(f, LOCK_TIMEOUT - 1000);
    assert_int_equal(f->s->ops->renew(f->s, &a, 1, &beat), TL_OK);
    advance(f, 2000);
    assert_int_equal(convert(f->s, &a, false, TL_CLAIM_NORMAL, -1, NULL, &r), TL_EBUSY);
    tl__record_clear(&r.rec);
    assert_int_equal(convert(f->s, &a, false, TL_CLAIM_STEAL, -1, NULL, &r), TL_OK);
    assert_true(r.took_stale);
    assert_int_equal(r.rec.info.mode, TL_EXCLUSIVE);
    char detail[400], want[400];
    uint64_t token = 0;
    assert_true(last_event(f->s, "k", TL_EVENT_UPGRADED, &token, detail, sizeof(detail)));
    (void)snprintf(want, sizeof(want), "from token %llu; displaced reader-b (token %llu)",
                   (unsigned long long)a.info.token, (unsigned long long)b.info.token);
    assert_string_equal(detail, want);
    assert_int_equal(token, r.rec.info.token);
    assert_int_equal(holders(f->s, "k", NULL), 1);
    assert_int_equal(f->s->ops->renew(f->s, &b, 1, &beat), TL_ELOST);
    /* The old record is no holder any more; neither is a stranger's. */
    struct tl_claim_result r2;
    assert_int_equal(convert(f->s, &a, true, TL_CLAIM_NORMAL, -1, NULL, &r2), TL_ELOST);
    stranger = r.rec;
    stranger.info.worker_id = (char *)"someone-else";
    assert_int_equal(convert(f->s, &stranger, true, TL_CLAIM_NORMAL, -1, NULL, &r2), TL_ELOST);
    /* A forced conversion is refused. */
    assert_int_equal(convert(f->s, &r.rec, true, TL_CLAIM_FORCE, -1, NULL, &r2), TL_EINVAL);
    tl__record_clear(&r.rec);
    tl__record_clear(&a);
    tl__record_clear(&b);
    fix_free(f);
}

/* ---- the trail ---- */

static void upgrades_and_downgrades_are_in_the_trail(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record x;
    char detail[400], want[64];
    uint64_t token = 0;

    (void)state;
    win(f->s, "k", "worker", false, &x);
    uint64_t first = x.info.token;
    converted(f->s, &x, true, -1);
    assert_int_equal(x.info.slots, 0);
    assert_true(last_event(f->s, "k", TL_EVENT_DOWNGRADED, &token, detail, sizeof(detail)));
    (void)snprintf(want, sizeof(want), "from token %llu", (unsigned long long)first);
    assert_string_equal(detail, want);
    assert_int_equal(token, x.info.token);
    uint64_t second = x.info.token;
    converted(f->s, &x, false, 0);
    assert_true(last_event(f->s, "k", TL_EVENT_UPGRADED, &token, detail, sizeof(detail)));
    (void)snprintf(want, sizeof(want), "from token %llu", (unsigned long long)second);
    assert_string_equal(detail, want);
    assert_int_equal(token, x.info.token);
    /* The file's rows say the same. */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "SELECT group_concat(event, ' ') FROM (SELECT event FROM "
                                        "tl_history WHERE key = 'k' ORDER BY id)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "acquired downgraded upgraded");
    sqlite3_finalize(st);
    assert_int_equal(f->s->ops->release(f->s, &x, "bye"), TL_OK);
    tl__record_clear(&x);
    fix_free(f);
}

/* ---- the wait-for graph ---- */

static void a_waiters_holds_are_kept_at_each_refresh(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record x, a, b;
    struct tl_claim_result r;

    (void)state;
    win(f->s, "k", "holder", false, &x);
    must_wait(f->s, "k", "w1", false, 1, "x a 5");
    struct line l = line_of(f->s, "k");
    assert_int_equal(l.n, 1);
    assert_string_equal(l.w[0]->holding, "x a 5");
    uint64_t seq = l.w[0]->seq;
    line_free(&l);
    /* A refresh keeps the place and takes the new list; NULL is none. */
    must_wait(f->s, "k", "w1", false, 1, "x a 5 b 6");
    l = line_of(f->s, "k");
    assert_int_equal(l.w[0]->seq, seq);
    assert_string_equal(l.w[0]->holding, "x a 5 b 6");
    line_free(&l);
    must_wait(f->s, "k", "w1", false, 1, NULL);
    l = line_of(f->s, "k");
    assert_string_equal(l.w[0]->holding, "");
    line_free(&l);

    /* An upgrader's list, as it joins and as it refreshes. */
    win(f->s, "s", "reader-a", true, &a);
    win(f->s, "s", "reader-b", true, &b);
    assert_int_equal(convert(f->s, &a, false, TL_CLAIM_NORMAL, 2, "x s 1", &r), TL_EBUSY);
    tl__record_clear(&r.rec);
    l = line_of(f->s, "s");
    assert_string_equal(l.w[0]->holding, "x s 1");
    seq = l.w[0]->seq;
    line_free(&l);
    assert_int_equal(convert(f->s, &a, false, TL_CLAIM_NORMAL, 2, "x s 1 k 9", &r), TL_EBUSY);
    tl__record_clear(&r.rec);
    l = line_of(f->s, "s");
    assert_int_equal(l.n, 1);
    assert_int_equal(l.w[0]->seq, seq);
    assert_string_equal(l.w[0]->holding, "x s 1 k 9");
    line_free(&l);
    tl__record_clear(&x);
    tl__record_clear(&a);
    tl__record_clear(&b);
    fix_free(f);
}

static void every_keys_waiters_are_listed(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record x, y, z;

    (void)state;
    win(f->s, "k1", "holder", false, &x);
    win(f->s, "k2", "holder", false, &y);
    win(f->s, "k3", "holder", false, &z);
    const struct tl_claim soon_dead = {.key = "k3",
                                       .worker_id = "w-dead",
                                       .node_id = "n",
                                       .task_info = "{}",
                                       .lock_timeout_ms = LOCK_TIMEOUT,
                                       .waiter_id = wid(9),
                                       .waiter_timeout_ms = 100,
                                       .holding = "x k9 1"};
    struct tl_claim_result r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(f->s->ops->claim(f->s, &soon_dead, &r), TL_EBUSY);
    tl__record_clear(&r.rec);
    advance(f, 1000);
    must_wait(f->s, "k1", "w1", false, 1, "x k2 2");
    must_wait(f->s, "k1", "w2", true, 2, NULL);
    must_wait(f->s, "k2", "w3", false, 3, "s k1 1");

    struct line l = line_of(f->s, NULL);
    assert_int_equal(l.n, 4);
    int seen = 0;
    for (size_t i = 0; i < l.n; i++) {
        const struct tl_waiter *w = l.w[i];
        if (strcmp(w->worker_id, "w1") == 0 && strcmp(w->key, "k1") == 0 &&
            strcmp(w->holding, "x k2 2") == 0 && !w->dead)
            seen |= 1;
        if (strcmp(w->worker_id, "w2") == 0 && strcmp(w->key, "k1") == 0 &&
            strcmp(w->holding, "") == 0 && !w->dead)
            seen |= 2;
        if (strcmp(w->worker_id, "w3") == 0 && strcmp(w->key, "k2") == 0 &&
            strcmp(w->holding, "s k1 1") == 0 && !w->dead)
            seen |= 4;
        if (strcmp(w->worker_id, "w-dead") == 0 && strcmp(w->key, "k3") == 0 &&
            strcmp(w->holding, "x k9 1") == 0 && w->dead)
            seen |= 8;
    }
    assert_int_equal(seen, 15);
    line_free(&l);
    tl__record_clear(&x);
    tl__record_clear(&y);
    tl__record_clear(&z);
    fix_free(f);
}

/* ---- older files and older tasklocks ---- */

static void a_file_from_before_upgrades_gets_its_columns(void **state)
{
    struct fix *f = fix_new(old_file);
    struct tl_record a, b;

    (void)state;
    /* The old waiter reads back with no holds, in its place. */
    struct line l = line_of(f->s, NULL);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.w[0]->key, "held");
    assert_string_equal(l.w[0]->worker_id, "old-waiter");
    assert_string_equal(l.w[0]->holding, "");
    line_free(&l);
    /* The trail takes the new kinds, after the old events. */
    win(f->s, "k", "worker", true, &a);
    win(f->s, "k", "other", true, &b);
    struct tl_claim_result r;
    assert_int_equal(convert(f->s, &a, false, TL_CLAIM_NORMAL, 3, "x k 1", &r), TL_EBUSY);
    tl__record_clear(&r.rec);
    l = line_of(f->s, "k");
    assert_string_equal(l.w[0]->holding, "x k 1");
    line_free(&l);
    assert_int_equal(f->s->ops->release(f->s, &b, "bye"), TL_OK);
    converted(f->s, &a, false, 3);
    converted(f->s, &a, true, -1);
    char detail[400];
    uint64_t token;
    assert_true(last_event(f->s, "k", TL_EVENT_UPGRADED, &token, detail, sizeof(detail)));
    assert_true(last_event(f->s, "k", TL_EVENT_DOWNGRADED, &token, detail, sizeof(detail)));
    assert_true(last_event(f->s, "held", TL_EVENT_ACQUIRED, &token, detail, sizeof(detail)));
    assert_int_equal(token, 7);
    tl__record_clear(&a);
    tl__record_clear(&b);
    fix_free(f);
}

/* The older tasklock's waiter joins beside an upgrader (its insert names the columns it knows)
 * and counts it ahead of itself, so it does not pass it. */
static void an_older_tasklock_waits_behind_an_upgrader(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record a, b;
    struct tl_claim_result r;
    sqlite3_stmt *st = NULL;

    (void)state;
    win(f->s, "k", "reader-a", true, &a);
    win(f->s, "k", "reader-b", true, &b);
    assert_int_equal(convert(f->s, &a, false, TL_CLAIM_NORMAL, 0, "x k 1", &r), TL_EBUSY);
    tl__record_clear(&r.rec);

    assert_int_equal(sqlite3_prepare_v2(f->db, old_w_insert, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, "k", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, wid(5), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, "old-worker", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, "old-node", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, TL_PRIORITY_MAX);
    sqlite3_bind_int64(st, 6, f->cs.now);
    sqlite3_bind_int64(st, 7, WAITER_TIMEOUT);
    sqlite3_bind_int(st, 8, 1);
    sqlite3_bind_int64(st, 9, 0);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    struct line l = line_of(f->s, "k");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.w[0]->worker_id, "reader-a");
    assert_string_equal(l.w[1]->worker_id, "old-worker");
    assert_string_equal(l.w[1]->holding, "");
    uint64_t old_seq = l.w[1]->seq;
    line_free(&l);
    /* Its count: one live waiter ahead of it (the upgrader), even at the highest priority. */
    assert_int_equal(sqlite3_prepare_v2(f->db, old_w_count, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, "k", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, f->cs.now);
    sqlite3_bind_int(st, 3, 1);
    sqlite3_bind_int(st, 4, TL_PRIORITY_MAX);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)old_seq);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    sqlite3_finalize(st);
    /* Its claim does not pass the upgrader after b leaves: the upgrader wins first. */
    assert_int_equal(f->s->ops->release(f->s, &b, "bye"), TL_OK);
    converted(f->s, &a, false, 0);
    tl__record_clear(&a);
    tl__record_clear(&b);
    fix_free(f);
}

static void garbled_values_answer_a_clear_error(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record x;
    struct tl_event **ev = NULL;
    size_t n = 0;
    bool woken = true;

    (void)state;
    win(f->s, "k", "worker", false, &x);
    must_wait(f->s, "k", "w1", false, 1, NULL);
    exec_sql(f->db, "PRAGMA ignore_check_constraints = ON;"
                    "INSERT INTO tl_history(at, key, event, worker_id, node_id, token) VALUES "
                    "(5, 'k', 'exploded', 'w', 'n', 1);"
                    "UPDATE tl_waiters SET upgrading = 'soon' WHERE key = 'k';");
    assert_int_equal(f->s->ops->history(f->s, "k", 10, &ev, &n), TL_ESTORE);
    assert_null(ev);
    assert_non_null(strstr(f->s->errmsg, "\"exploded\""));
    assert_int_equal(f->s->ops->wait_turn(f->s, "k", wid(1), 1, &woken), TL_ESTORE);
    assert_false(woken);
    assert_non_null(strstr(f->s->errmsg, "upgraded token"));
    tl__record_clear(&x);
    fix_free(f);
}

/* Behind another connection's long write, a waiting upgrade answers busy by its deadline (as
 * a claim does); a downgrade, which never waits for holders, answers the timeout. */
static void an_upgrade_behind_a_long_write_is_busy_by_its_deadline(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record a, b, x;
    struct tl_claim_result r;

    (void)state;
    win(f->s, "k", "reader-a", true, &a);
    win(f->s, "k", "reader-b", true, &b);
    win(f->s, "x", "writer", false, &x);
    exec_sql(f->db, "BEGIN IMMEDIATE");
    f->s->deadline_mono_ms = f->cs.mono + 50;
    assert_int_equal(convert(f->s, &a, false, TL_CLAIM_NORMAL, 0, NULL, &r), TL_EBUSY);
    assert_false(r.holder_known);
    assert_non_null(strstr(f->s->errmsg, "until the deadline"));
    f->s->deadline_mono_ms = f->cs.mono + 50;
    assert_int_equal(convert(f->s, &x, true, TL_CLAIM_NORMAL, -1, NULL, &r), TL_ETIMEDOUT);
    f->s->deadline_mono_ms = 0;
    exec_sql(f->db, "COMMIT");
    assert_int_equal(holders(f->s, "k", NULL), 2);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__record_clear(&x);
    fix_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#ifdef __linux__
        cmocka_unit_test(an_upgrader_is_woken_when_it_becomes_the_only_holder),
        cmocka_unit_test(an_upgrader_that_holds_nothing_is_woken_to_learn_it),
        cmocka_unit_test(a_stealing_upgrader_is_woken_beside_stale_holders),
        cmocka_unit_test(a_downgrade_wakes_the_reader_at_the_head),
#endif
        cmocka_unit_test(a_conversion_answers_and_steals_as_a_claim),
        cmocka_unit_test(upgrades_and_downgrades_are_in_the_trail),
        cmocka_unit_test(a_waiters_holds_are_kept_at_each_refresh),
        cmocka_unit_test(every_keys_waiters_are_listed),
        cmocka_unit_test(a_file_from_before_upgrades_gets_its_columns),
        cmocka_unit_test(an_older_tasklock_waits_behind_an_upgrader),
        cmocka_unit_test(garbled_values_answer_a_clear_error),
        cmocka_unit_test(an_upgrade_behind_a_long_write_is_busy_by_its_deadline),
    };

    return cmocka_run_group_tests_name("sqlite_convert", tests, NULL, NULL);
}
