/*
 * test_sqlite_modes.c -- the SQLite store's shared holders and semaphores beyond the conformance
 * suite: what a tasklock from before them does on the same file (it sees a key held shared as
 * held, stale only when every shared holder is, and if it takes or breaks the key the shared
 * holders go with it), a file written before them keeps its locks, waiters, markers and trail,
 * garbled values in the new columns answer a clear error, the wake-up datagrams follow
 * admission (a reader's win wakes the next reader), and processes racing for a semaphore.
 *
 * "The older tasklock" is its SQL: the statements below are copied verbatim from
 * src/stores/sqlite.c before shared holders (commit dbdb327), with the decision it makes on
 * what they read (tl__claim_verdict), so the test runs what such a process would run.
 */
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "tasklock.h"
#include "test_sqlite_fixture.h"
#include "tl.h"
#include "tl_test.h"

/* ---- the older tasklock's statements (sqlite.c at dbdb327) ---- */

static const char old_select[] = "SELECT token, worker_id, node_id, claimed_at, heartbeat_at, "
                                 "lock_timeout_ms, task_info FROM tl_locks WHERE key = ?1";
static const char old_upsert[] =
    "INSERT INTO tl_locks(key, token, worker_id, node_id, claimed_at, heartbeat_at, "
    "lock_timeout_ms, task_info) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7) ON CONFLICT(key) DO "
    "UPDATE SET token = excluded.token, worker_id = excluded.worker_id, node_id = "
    "excluded.node_id, claimed_at = excluded.claimed_at, heartbeat_at = excluded.heartbeat_at, "
    "lock_timeout_ms = excluded.lock_timeout_ms, task_info = excluded.task_info";
static const char old_force_free[] =
    "UPDATE tl_locks SET worker_id = NULL, node_id = NULL, claimed_at = NULL, heartbeat_at = "
    "NULL, lock_timeout_ms = NULL, task_info = NULL, token = ?2 WHERE key = ?1";
/* Its wait_turn's "is the key free" (NULL: no row, free too). */
static const char old_is_free[] = "SELECT worker_id IS NULL FROM tl_locks WHERE key = ?1";
/* Its open: schema 1 with these tables is current, and it opens the file as it is. */
static const char old_probe[] =
    "SELECT user_version, EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
    "name = 'tl_waiters'), EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name "
    "= 'tl_done'), EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
    "'tl_history' AND sql NOT LIKE '%''reopened''%') FROM pragma_user_version";

/* The schema of the tasklock before shared holders, with a lock held by an old worker, a
 * waiter in its line, a done marker and a trail. */
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
    "NULL, UNIQUE (key, waiter_id));"
    "CREATE INDEX tl_waiters_line ON tl_waiters(key, priority DESC, seq);"
    "CREATE TABLE tl_done (key TEXT PRIMARY KEY NOT NULL, worker_id TEXT NOT NULL, node_id TEXT "
    "NOT NULL, token INTEGER NOT NULL, done_at INTEGER NOT NULL, summary TEXT NOT NULL) WITHOUT "
    "ROWID;"
    "INSERT INTO tl_locks VALUES ('held', 7, 'old-worker', 'old-node', 1, 4102444800000, "
    "60000, '{}');"
    "INSERT INTO tl_waiters(key, waiter_id, worker_id, node_id, priority, since, heartbeat_at, "
    "timeout_ms) VALUES ('held', '0000000000000000000000000000beef', 'old-waiter', 'old-node', "
    "0, 1, 4102444800000, 60000);"
    "INSERT INTO tl_done VALUES ('finished', 'old-worker', 'old-node', 3, 2, 'all good');"
    "INSERT INTO tl_history(at, key, event, worker_id, node_id, token) VALUES "
    "(1, 'held', 'acquired', 'old-worker', 'old-node', 7), "
    "(2, 'finished', 'done', 'old-worker', 'old-node', 3);"
    "PRAGMA user_version = 1;";

/* ---- claims straight through the store ---- */

/* A claim by `worker` (with waiter n when n >= 0), shared when `shared`. */
static tl_status claim(struct tl_store *s, const char *key, const char *worker, bool shared,
                       uint32_t slots, enum tl_claim_mode mode, int n, struct tl_claim_result *out)
{
    const struct tl_claim req = {
        .key = key,
        .worker_id = worker,
        .node_id = "node-1",
        .task_info = "{}",
        .lock_timeout_ms = LOCK_TIMEOUT,
        .mode = mode,
        .waiter_id = n < 0 ? NULL : wid(n),
        .waiter_timeout_ms = WAITER_TIMEOUT,
        .shared = shared,
        .slots = slots,
    };

    memset(out, 0, sizeof(*out));
    return s->ops->claim(s, &req, out);
}

/* A claim that must win; the record goes to *held. */
static void win(struct tl_store *s, const char *key, const char *worker, bool shared,
                uint32_t slots, int n, struct tl_record *held)
{
    struct tl_claim_result r;
    tl_status st = claim(s, key, worker, shared, slots, TL_CLAIM_NORMAL, n, &r);

    if (st != TL_OK)
        fail_msg("%s claiming %s: %s (%s)", worker, key, tl_strerror(st), s->errmsg);
    assert_int_equal(r.rec.info.mode, shared ? TL_SHARED : TL_EXCLUSIVE);
    *held = r.rec;
}

static void must_wait(struct tl_store *s, const char *key, const char *worker, bool shared, int n)
{
    struct tl_claim_result r;

    assert_int_equal(claim(s, key, worker, shared, 0, TL_CLAIM_NORMAL, n, &r), TL_EBUSY);
    tl__record_clear(&r.rec);
}

/* What the older tasklock's claim decides and writes (its line aside): TL_EBUSY when its
 * verdict is busy, else it takes the row with the next token. */
static tl_status old_claim(struct fix *f, const char *key, const char *worker,
                           enum tl_claim_mode mode)
{
    sqlite3_stmt *st = NULL;
    int64_t now = f->cs.now;

    exec_sql(f->db, "BEGIN IMMEDIATE");
    assert_int_equal(sqlite3_prepare_v2(f->db, old_select, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    bool held = rc == SQLITE_ROW && sqlite3_column_type(st, 1) != SQLITE_NULL;
    uint64_t token = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    int64_t beat = held ? sqlite3_column_int64(st, 4) : 0;
    uint32_t timeout = held ? (uint32_t)sqlite3_column_int64(st, 5) : 0;
    sqlite3_finalize(st);
    if (tl__claim_verdict(held, beat, timeout, mode, now) == TL_VERDICT_BUSY) {
        exec_sql(f->db, "ROLLBACK");
        return TL_EBUSY;
    }
    assert_int_equal(sqlite3_prepare_v2(f->db, old_upsert, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(token + 1));
    sqlite3_bind_text(st, 3, worker, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, "old-node", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, LOCK_TIMEOUT);
    sqlite3_bind_text(st, 7, "{}", -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    exec_sql(f->db, "COMMIT");
    return TL_OK;
}

static bool old_sees_free(struct fix *f, const char *key)
{
    sqlite3_stmt *st = NULL;

    assert_int_equal(sqlite3_prepare_v2(f->db, old_is_free, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    bool is_free = rc == SQLITE_DONE || sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    return is_free;
}

static size_t holders(struct tl_store *s, const char *key)
{
    struct tl_record **hs = NULL;
    size_t n = 0;

    if (s->ops->holders(s, key, &hs, &n) != TL_OK)
        fail_msg("holders of %s: %s", key, s->errmsg);
    tl_info_array_free((struct tl_info **)hs, n);
    return n;
}

/* ---- an older tasklock on the same file ---- */

static void an_older_tasklock_sees_shared_holders_hold_the_key(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record a, b;
    int64_t beat;

    (void)state;
    win(f->s, "k", "reader-a", true, 0, -1, &a);
    win(f->s, "k", "reader-b", true, 0, -1, &b);
    assert_false(old_sees_free(f, "k"));
    assert_int_equal(old_claim(f, "k", "old", TL_CLAIM_NORMAL), TL_EBUSY);
    assert_int_equal(old_claim(f, "k", "old", TL_CLAIM_STEAL), TL_EBUSY);

    /* b goes stale, a keeps renewing: past both claims' timeout, a is still live, so the
     * older tasklock must not steal the key. */
    advance(f, LOCK_TIMEOUT - 1000);
    assert_int_equal(f->s->ops->renew(f->s, &a, 1, &beat), TL_OK);
    advance(f, LOCK_TIMEOUT - 1000);
    assert_int_equal(old_claim(f, "k", "old", TL_CLAIM_STEAL), TL_EBUSY);
    assert_int_equal(holders(f->s, "k"), 2);

    /* Every shared holder stale: now it may steal, and the shared holders go with it. */
    advance(f, LOCK_TIMEOUT);
    assert_int_equal(old_claim(f, "k", "old", TL_CLAIM_STEAL), TL_OK);
    assert_int_equal(holders(f->s, "k"), 1);
    struct tl_record got = {0};
    bool found = false;
    assert_int_equal(f->s->ops->inspect(f->s, "k", &got, &found), TL_OK);
    assert_true(found);
    assert_string_equal(got.info.worker_id, "old");
    assert_int_equal(got.info.mode, TL_EXCLUSIVE);
    assert_int_equal(got.info.holders, 1);
    tl__record_clear(&got);
    assert_int_equal(f->s->ops->renew(f->s, &a, 2, &beat), TL_ELOST);
    assert_int_equal(f->s->ops->release(f->s, &b, "late"), TL_ENOTOWNER);
    tl__record_clear(&a);
    tl__record_clear(&b);
    fix_free(f);
}

static void an_older_forced_release_breaks_every_shared_holder(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record a, b, w;
    int64_t beat;

    (void)state;
    win(f->s, "k", "reader-a", true, 3, -1, &a);
    win(f->s, "k", "reader-b", true, 3, -1, &b);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->db, old_force_free, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, "k", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)b.info.token + 1);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);

    /* The key is free for both versions; no shared holder is left behind. */
    assert_true(old_sees_free(f, "k"));
    assert_int_equal(holders(f->s, "k"), 0);
    assert_int_equal(f->s->ops->renew(f->s, &a, 1, &beat), TL_ELOST);
    assert_int_equal(f->s->ops->renew(f->s, &b, 1, &beat), TL_ELOST);
    win(f->s, "k", "writer", false, 0, -1, &w);
    assert_true(w.info.token > b.info.token + 1);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__record_clear(&w);
    fix_free(f);
}

/* A release by key and token (the CLI's) of a shared holder that is not the oldest: the core
 * cannot tell the store how it is held (tl_inspect shows the oldest only). */
static void a_release_by_token_finds_a_younger_shared_holder(void **state)
{
    char *dir = tl_test_mkdtemp();
    char url[600];
    tl_manager *m[2];
    tl_lock *l[2];
    const struct tl_acquire_opts o = {.strategy = TL_FAIL_FAST, .mode = TL_SHARED};

    (void)state;
    (void)snprintf(url, sizeof(url), "sqlite:%s/token.db", dir);
    for (int i = 0; i < 2; i++) {
        char worker[16];
        (void)snprintf(worker, sizeof(worker), "reader-%d", i);
        m[i] = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = worker});
        assert_non_null(m[i]);
        assert_int_equal(tl_acquire(m[i], "k", &o, &l[i]), TL_OK);
    }
    tl_status st = tl_release_token(m[1], "k", tl_lock_token(l[1]), "by token");
    if (st != TL_OK)
        fail_msg("release by token: %s: %s", tl_strerror(st), tl_errmsg(m[1]));
    struct tl_info **hs = NULL;
    size_t n = 0;
    assert_int_equal(tl_holders(m[0], "k", &hs, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hs[0]->token, tl_lock_token(l[0]));
    tl_info_array_free(hs, n);
    /* Released twice is not an error. */
    assert_int_equal(tl_release_token(m[1], "k", tl_lock_token(l[1]), "again"), TL_OK);
    assert_int_equal(tl_release(l[0], NULL), TL_OK);
    for (int i = 0; i < 2; i++) {
        tl_lock_free(l[i]);
        tl_manager_free(m[i]);
    }
    tl_test_rmtree(dir);
    free(dir);
}

/* ---- a file written before shared holders ---- */

static void a_file_from_before_shared_holders_keeps_working(void **state)
{
    struct fix *f = fix_new(old_file);
    struct tl_claim_result r;
    struct tl_record got = {0}, mine;
    bool found = false, woken = false;

    (void)state;
    /* The old holder still holds, with its waiter in line. */
    assert_int_equal(f->s->ops->inspect(f->s, "held", &got, &found), TL_OK);
    assert_true(found);
    assert_string_equal(got.info.worker_id, "old-worker");
    assert_int_equal(got.info.token, 7);
    assert_int_equal(got.info.mode, TL_EXCLUSIVE);
    assert_int_equal(got.info.holders, 1);
    assert_int_equal(got.info.waiting, 1);
    tl__record_clear(&got);
    assert_int_equal(claim(f->s, "held", "reader", true, 0, TL_CLAIM_NORMAL, -1, &r), TL_EBUSY);
    assert_string_equal(r.rec.info.worker_id, "old-worker");
    tl__record_clear(&r.rec);

    /* A shared waiter joins the line behind the old one (the waiter table took the mode). */
    must_wait(f->s, "held", "reader", true, 1);
    struct tl_waiter **ws = NULL;
    size_t n = 0;
    assert_int_equal(f->s->ops->waiters(f->s, "held", &ws, &n), TL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ws[0]->worker_id, "old-waiter");
    assert_string_equal(ws[1]->worker_id, "reader");
    tl_waiter_array_free(ws, n);

    /* The old holder releases; its waiter (exclusive, as every old one) has its turn. */
    const struct tl_record old = {
        .info = {.key = "held", .worker_id = "old-worker", .node_id = "old-node", .token = 7}};
    assert_int_equal(f->s->ops->release(f->s, &old, "bye"), TL_OK);
    assert_int_equal(
        f->s->ops->wait_turn(f->s, "held", "0000000000000000000000000000beef", 1, &woken), TL_OK);
    assert_true(woken);
    assert_int_equal(f->s->ops->leave(f->s, "held", "0000000000000000000000000000beef"), TL_OK);
    win(f->s, "held", "reader", true, 0, 1, &mine);
    assert_true(mine.info.token > 7);

    /* Markers and the trail are kept. */
    struct tl_done **d = NULL;
    assert_int_equal(f->s->ops->done_list(f->s, NULL, &d, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(d[0]->key, "finished");
    tl_done_array_free(d, n);
    struct tl_event **ev = NULL;
    assert_int_equal(f->s->ops->history(f->s, "held", 10, &ev, &n), TL_OK);
    assert_int_equal(n, 3); /* acquired (old), released, acquired (shared) */
    assert_int_equal(ev[0]->at_ms, 1);
    assert_int_equal(ev[2]->token, mine.info.token);
    tl_event_array_free(ev, n);
    assert_int_equal(f->s->ops->release(f->s, &mine, "done"), TL_OK);
    tl__record_clear(&mine);

    /* The older tasklock still opens the file as it is: schema 1, its tables current. */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->db, old_probe, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    assert_int_equal(sqlite3_column_int(st, 2), 1);
    assert_int_equal(sqlite3_column_int(st, 3), 0);
    sqlite3_finalize(st);
    fix_free(f);
}

/* ---- garbled values ---- */

static void expect_garbled(struct tl_store *s, tl_status st, const char *what)
{
    if (st != TL_ESTORE)
        fail_msg("%s answered %s, not TL_ESTORE (%s)", what, tl_strerror(st), s->errmsg);
    if (strstr(s->errmsg, "slots") == NULL)
        fail_msg("%s: the message does not name the slots: %s", what, s->errmsg);
}

static void garbled_shared_fields_answer_a_clear_error(void **state)
{
    static const char *const garbage[] = {"'many'", "-3", "100001", "2.5", "x'01'"};
    struct fix *f = fix_new(NULL);
    struct tl_record a;
    struct tl_claim_result r;

    (void)state;
    win(f->s, "k", "reader-a", true, 2, -1, &a);
    exec_sql(f->db, "PRAGMA ignore_check_constraints = ON");
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        char sql[128];
        (void)snprintf(sql, sizeof(sql), "UPDATE tl_shared SET slots = %s", garbage[i]);
        exec_sql(f->db, sql);

        struct tl_record got = {0};
        bool found = true;
        expect_garbled(f->s, f->s->ops->inspect(f->s, "k", &got, &found), "inspect");
        assert_false(found);
        struct tl_record **hs = NULL;
        size_t n = 7;
        expect_garbled(f->s, f->s->ops->holders(f->s, "k", &hs, &n), "holders");
        assert_null(hs);
        expect_garbled(f->s, f->s->ops->list(f->s, &hs, &n), "list");
        expect_garbled(f->s, claim(f->s, "k", "reader-b", true, 2, TL_CLAIM_NORMAL, -1, &r),
                       "a shared claim");
        expect_garbled(f->s, claim(f->s, "k", "writer", false, 0, TL_CLAIM_STEAL, 3, &r),
                       "a claim with a waiter");
        assert_false(r.holder_known);
    }
    exec_sql(f->db, "UPDATE tl_shared SET slots = 2");
    assert_int_equal(holders(f->s, "k"), 1);

    /* A waiter whose mode is garbled: its wait answers an error (the core then sleeps). */
    tl__record_clear(&a);
    win(f->s, "w", "writer", false, 0, -1, &a);
    must_wait(f->s, "w", "reader", true, 4);
    exec_sql(f->db, "UPDATE tl_waiters SET shared = 'yes'");
    bool woken = true;
    tl_status st = f->s->ops->wait_turn(f->s, "w", wid(4), 1, &woken);
    assert_int_equal(st, TL_ESTORE);
    assert_false(woken);
    assert_non_null(strstr(f->s->errmsg, "waiter"));
    tl__record_clear(&a);
    fix_free(f);
}

/* ---- wake-ups ---- */

#ifdef __linux__
static void a_readers_win_wakes_the_next_reader(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_store *c1 = open_store(f), *c2 = open_store(f), *w = open_store(f);
    struct tl_record x, r1, r2;
    bool woken = true;

    (void)state;
    win(f->s, "k", "writer", false, 0, -1, &x);
    must_wait(c1, "k", "reader-1", true, 1);
    must_wait(c2, "k", "reader-2", true, 2);
    must_wait(w, "k", "writer-2", false, 3);
    /* Each binds its wake-up socket in its first wait. */
    assert_int_equal(c1->ops->wait_turn(c1, "k", wid(1), 1, &woken), TL_OK);
    assert_false(woken);
    assert_int_equal(c2->ops->wait_turn(c2, "k", wid(2), 1, &woken), TL_OK);
    assert_false(woken);
    assert_int_equal(w->ops->wait_turn(w, "k", wid(3), 1, &woken), TL_OK);
    assert_false(woken);

    /* The writer leaves: the first reader (the head) is woken, and only it. */
    assert_int_equal(f->s->ops->release(f->s, &x, "bye"), TL_OK);
    assert_int_equal(tl__sqlite_test_wakeups(c1), 1);
    assert_int_equal(tl__sqlite_test_wakeups(c2), 0);
    /* Its win leaves the second reader at the head, admitted beside it: woken by that win. */
    win(c1, "k", "reader-1", true, 0, 1, &r1);
    assert_int_equal(tl__sqlite_test_wakeups(c2), 1);
    assert_int_equal(c2->ops->wait_turn(c2, "k", wid(2), 1, &woken), TL_OK);
    assert_true(woken);
    win(c2, "k", "reader-2", true, 0, 2, &r2);
    /* Now a writer heads the line beside two readers: no win or release wakes it until the
     * last reader leaves, and its poll does not find its turn either. */
    assert_int_equal(tl__sqlite_test_wakeups(w), 0);
    assert_int_equal(w->ops->wait_turn(w, "k", wid(3), 1, &woken), TL_OK);
    assert_false(woken);
    assert_int_equal(c1->ops->release(c1, &r1, "bye"), TL_OK);
    assert_int_equal(tl__sqlite_test_wakeups(w), 0);
    assert_int_equal(c2->ops->release(c2, &r2, "bye"), TL_OK);
    assert_int_equal(tl__sqlite_test_wakeups(w), 1);
    assert_int_equal(w->ops->wait_turn(w, "k", wid(3), 1, &woken), TL_OK);
    assert_true(woken);
    tl__record_clear(&x);
    tl__record_clear(&r1);
    tl__record_clear(&r2);
    tl__store_close(c1);
    tl__store_close(c2);
    tl__store_close(w);
    fix_free(f);
}
#endif

/* A semaphore's head is woken by a free slot (its holders stay): it would otherwise wait for
 * the key to come free. */
static void a_free_slot_is_a_semaphore_waiters_turn(void **state)
{
    struct fix *f = fix_new(NULL);
    struct tl_record a, b, c;
    struct tl_claim_result r;
    bool woken = false;

    (void)state;
    win(f->s, "k", "a", true, 2, -1, &a);
    win(f->s, "k", "b", true, 2, -1, &b);
    assert_int_equal(claim(f->s, "k", "c", true, 2, TL_CLAIM_NORMAL, 5, &r), TL_EBUSY);
    tl__record_clear(&r.rec);
    assert_int_equal(f->s->ops->wait_turn(f->s, "k", wid(5), 1, &woken), TL_OK);
    assert_false(woken);
    assert_int_equal(f->s->ops->release(f->s, &a, "bye"), TL_OK);
    assert_int_equal(f->s->ops->wait_turn(f->s, "k", wid(5), 1000, &woken), TL_OK);
    assert_true(woken);
    assert_int_equal(claim(f->s, "k", "c", true, 2, TL_CLAIM_NORMAL, 5, &r), TL_OK);
    c = r.rec;
    assert_int_equal(holders(f->s, "k"), 2);
    tl__record_clear(&a);
    tl__record_clear(&b);
    tl__record_clear(&c);
    fix_free(f);
}

/* ---- processes ---- */

#define PROCS  6
#define ROUNDS 4

/* A child: connects, waits for the start, tries once, reports, holds until told to go. */
static void child(const char *url, const char *key, int i, bool mixed, int start_fd, int out_fd,
                  int home_fd)
{
    char worker[32], c;

    (void)snprintf(worker, sizeof(worker), "proc-%d", i);
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = worker});
    if (m == NULL || tl_connect(m) != TL_OK)
        _exit(2);
    bool writer = mixed && i % 2 == 0;
    const struct tl_acquire_opts o = {.strategy = TL_FAIL_FAST,
                                      .retries = TL_NO_RETRIES,
                                      .mode = writer ? TL_EXCLUSIVE : TL_SHARED,
                                      .slots = mixed ? 0 : 2};
    tl_lock *l = NULL;
    if (read(start_fd, &c, 1) != 1)
        _exit(3);
    tl_status st = tl_acquire(m, key, &o, &l);
    char report = st == TL_OK ? (writer ? 'W' : 'R') : st == TL_EBUSY ? '-' : '!';
    if (write(out_fd, &report, 1) != 1)
        _exit(4);
    (void)read(home_fd, &c, 1); /* EOF: the parent has counted */
    if (l != NULL)
        (void)tl_release(l, NULL);
    tl_lock_free(l);
    tl_manager_free(m);
    _exit(0);
}

static void processes_racing_for_a_semaphore_or_a_key(void **state)
{
    char *dir = tl_test_mkdtemp();
    char url[600], key[32];

    (void)state;
    (void)snprintf(url, sizeof(url), "sqlite:%s/race.db", dir);
    for (int round = 0; round < 2 * ROUNDS; round++) {
        bool mixed = round % 2 == 1;
        int start[2], out[2], home[2];
        pid_t pids[PROCS];

        (void)snprintf(key, sizeof(key), "race-%d", round);
        assert_int_equal(pipe(start), 0);
        assert_int_equal(pipe(out), 0);
        assert_int_equal(pipe(home), 0);
        for (int i = 0; i < PROCS; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                close(start[1]);
                close(out[0]);
                close(home[1]);
                child(url, key, i, mixed, start[0], out[1], home[0]);
            }
        }
        close(start[0]);
        close(out[1]);
        close(home[0]);
        char go[PROCS];
        memset(go, 'g', sizeof(go));
        assert_int_equal(write(start[1], go, PROCS), PROCS);
        int writers = 0, readers = 0;
        for (int i = 0; i < PROCS; i++) {
            char c = '?';
            assert_int_equal(read(out[0], &c, 1), 1);
            if (c == '!')
                fail_msg("round %d: a child failed", round);
            writers += c == 'W';
            readers += c == 'R';
        }
        close(home[1]); /* everyone has tried: they may release */
        for (int i = 0; i < PROCS; i++) {
            int status = 0;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        close(start[1]);
        close(out[0]);
        if (mixed && !(writers == 1 && readers == 0) && !(writers == 0 && readers >= 1))
            fail_msg("round %d: %d writers and %d readers held at once", round, writers, readers);
        if (!mixed && (writers != 0 || readers != 2))
            fail_msg("round %d: %d of %d processes got a semaphore of 2 slots", round, readers,
                     PROCS);
    }
    tl_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_older_tasklock_sees_shared_holders_hold_the_key),
        cmocka_unit_test(an_older_forced_release_breaks_every_shared_holder),
        cmocka_unit_test(a_release_by_token_finds_a_younger_shared_holder),
        cmocka_unit_test(a_file_from_before_shared_holders_keeps_working),
        cmocka_unit_test(garbled_shared_fields_answer_a_clear_error),
#ifdef __linux__
        cmocka_unit_test(a_readers_win_wakes_the_next_reader),
#endif
        cmocka_unit_test(a_free_slot_is_a_semaphore_waiters_turn),
        cmocka_unit_test(processes_racing_for_a_semaphore_or_a_key),
    };

    return cmocka_run_group_tests_name("sqlite_modes", tests, NULL, NULL);
}
