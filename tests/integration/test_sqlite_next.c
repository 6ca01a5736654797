/*
 * test_sqlite_next.c -- the SQLite store's claim-next and done markers beyond the conformance
 * suite: a file made before done markers (tl_history's old CHECK, no tl_done) is migrated in
 * place and keeps its locks and its trail, also when many threads open it at once; markers
 * last across connections; release-and-claim-next is one transaction (one commit in the WAL), and
 * a claim-next that wins nothing writes nothing.
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
#include <time.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_test.h"

/* The schema of the tasklock before done markers (schema 1 with the line). */
static const char old_schema[] =
    "PRAGMA journal_mode = WAL;"
    "CREATE TABLE tl_locks (key TEXT PRIMARY KEY NOT NULL, token INTEGER NOT NULL, worker_id "
    "TEXT, node_id TEXT, claimed_at INTEGER, heartbeat_at INTEGER, lock_timeout_ms INTEGER, "
    "task_info TEXT) WITHOUT ROWID;"
    "CREATE TABLE tl_history (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, key "
    "TEXT NOT NULL, event TEXT NOT NULL CHECK (event IN "
    "('acquired','released','stolen','forced','lost')), worker_id TEXT NOT NULL, node_id TEXT "
    "NOT NULL, token INTEGER NOT NULL, detail TEXT);"
    "CREATE INDEX tl_history_by_key ON tl_history(key, id);"
    "CREATE TABLE tl_waiters (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, "
    "waiter_id TEXT NOT NULL, worker_id TEXT NOT NULL, node_id TEXT NOT NULL, priority INTEGER "
    "NOT NULL, since INTEGER NOT NULL, heartbeat_at INTEGER NOT NULL, timeout_ms INTEGER NOT "
    "NULL, UNIQUE (key, waiter_id));"
    "CREATE INDEX tl_waiters_line ON tl_waiters(key, priority DESC, seq);"
    /* A task another worker holds, and a trail of two events. */
    "INSERT INTO tl_locks VALUES ('held', 7, 'old-worker', 'old-node', 1, 4102444800000, "
    "60000, '{}');"
    "INSERT INTO tl_locks VALUES ('free', 5, NULL, NULL, NULL, NULL, NULL, NULL);"
    "INSERT INTO tl_history(at, key, event, worker_id, node_id, token) VALUES "
    "(1, 'free', 'acquired', 'old-worker', 'old-node', 5), "
    "(2, 'free', 'released', 'old-worker', 'old-node', 5);"
    "PRAGMA user_version = 1;";

static void make_old_file(const char *path)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, old_schema, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("old schema: %s", err);
    sqlite3_close(db);
}

static tl_manager *mgr(const char *url, const char *worker)
{
    tl_manager *m = tl_manager_new(
        &(struct tl_options){.store_url = url, .worker_id = worker, .lock_timeout_ms = 60000});

    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect %s: %s", url, tl_errmsg(m));
    return m;
}

static void an_old_file_is_migrated_in_place(void **state)
{
    char *dir = tl_test_mkdtemp();
    char path[512], url[600];

    (void)state;
    (void)snprintf(path, sizeof(path), "%s/old.db", dir);
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    make_old_file(path);

    tl_manager *m = mgr(url, "new-worker");
    const char *keys[] = {"held", "free"};
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    tl_lock *l = NULL;
    assert_int_equal(tl_claim_next(m, keys, 2, &ff, &l), TL_OK);
    assert_string_equal(tl_lock_key(l), "free");
    assert_true(tl_lock_token(l) > 5);
    const struct tl_release_opts done = {.summary = "finished", .done = true};
    assert_int_equal(tl_release_with(l, &done), TL_OK);
    tl_lock_free(l);

    /* The trail kept its old events, in order, and took the new kind. */
    struct tl_event **ev = NULL;
    size_t n = 0;
    assert_int_equal(tl_history(m, "free", 10, &ev, &n), TL_OK);
    assert_int_equal(n, 4);
    assert_int_equal(ev[0]->kind, TL_EVENT_ACQUIRED);
    assert_int_equal(ev[0]->at_ms, 1);
    assert_int_equal(ev[1]->kind, TL_EVENT_RELEASED);
    assert_int_equal(ev[2]->kind, TL_EVENT_ACQUIRED);
    assert_int_equal(ev[3]->kind, TL_EVENT_DONE);
    assert_string_equal(ev[3]->detail, "finished");
    tl_event_array_free(ev, n);

    /* The other holder's lock is still there; nothing else is left. */
    assert_int_equal(tl_claim_next(m, keys, 2, &ff, &l), TL_EBUSY);
    assert_non_null(strstr(tl_errmsg(m), "1 held"));
    tl_manager_free(m);

    /* Markers last: a new connection (as a new process would) sees it, and reopens it. */
    m = mgr(url, "another");
    struct tl_done **d = NULL;
    assert_int_equal(tl_list_done(m, NULL, &d, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(d[0]->key, "free");
    assert_string_equal(d[0]->worker_id, "new-worker");
    assert_string_equal(d[0]->summary, "finished");
    tl_done_array_free(d, n);
    bool was = false;
    assert_int_equal(tl_reopen(m, "free", &was), TL_OK);
    assert_true(was);
    assert_int_equal(tl_history(m, "free", 1, &ev, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0]->kind, TL_EVENT_REOPENED);
    assert_string_equal(ev[0]->worker_id, "another");
    tl_event_array_free(ev, n);
    tl_manager_free(m);

    /* Once migrated, the file is left as it is. */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT user_version, (SELECT COUNT(*) FROM tl_history) "
                                        "FROM pragma_user_version",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_int_equal(sqlite3_column_int(st, 1), 5);
    sqlite3_finalize(st);
    sqlite3_close(db);
    tl_test_rmtree(dir);
    free(dir);
}

enum { THREADS = 6, ROUNDS = 10 };

struct opener {
    pthread_t thread;
    pthread_barrier_t *start;
    const char *url;
    tl_status st;
    char msg[256];
};

static void *open_it(void *arg)
{
    struct opener *o = arg;
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = o->url});

    (void)pthread_barrier_wait(o->start);
    o->st = m ? tl_connect(m) : TL_ENOMEM;
    (void)snprintf(o->msg, sizeof(o->msg), "%s", tl_errmsg(m));
    tl_manager_free(m);
    return NULL;
}

static void threads_migrating_one_file_at_once_all_succeed(void **state)
{
    char *dir = tl_test_mkdtemp();
    struct opener o[THREADS];
    pthread_barrier_t start;

    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        char path[512], url[600];

        (void)snprintf(path, sizeof(path), "%s/old-%d.db", dir, round);
        (void)snprintf(url, sizeof(url), "sqlite:%s", path);
        make_old_file(path);
        pthread_barrier_init(&start, NULL, THREADS);
        for (int i = 0; i < THREADS; i++) {
            o[i] = (struct opener){.start = &start, .url = url};
            assert_int_equal(pthread_create(&o[i].thread, NULL, open_it, &o[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(o[i].thread, NULL);
            if (o[i].st != TL_OK)
                fail_msg("round %d, thread %d: %s: %s", round, i, tl_strerror(o[i].st), o[i].msg);
        }
        pthread_barrier_destroy(&start);

        tl_manager *m = mgr(url, "after");
        struct tl_event **ev = NULL;
        size_t n = 0;
        assert_int_equal(tl_history(m, "free", 10, &ev, &n), TL_OK);
        assert_int_equal(n, 2);
        tl_event_array_free(ev, n);
        tl_manager_free(m);
    }
    tl_test_rmtree(dir);
    free(dir);
}

/* Whether another connection committed since the last call (PRAGMA data_version). */
static int data_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int v = -1;

    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The commits in the file's WAL: frames with the WAL's salts whose "size after commit" is set. */
static int wal_commits(const char *path)
{
    char wal[600];
    unsigned char hdr[32], fh[24];
    int n = 0;

    (void)snprintf(wal, sizeof(wal), "%s-wal", path);
    FILE *f = fopen(wal, "rb");
    assert_non_null(f);
    assert_int_equal(fread(hdr, 1, sizeof(hdr), f), sizeof(hdr));
    uint32_t page = be32(hdr + 8);
    while (fread(fh, 1, sizeof(fh), f) == sizeof(fh)) {
        if (memcmp(fh + 8, hdr + 16, 8) != 0)
            break; /* a frame of an earlier round of the WAL */
        if (be32(fh + 4) != 0)
            n++;
        if (fseek(f, (long)page, SEEK_CUR) != 0)
            break;
    }
    (void)fclose(f);
    return n;
}

static void release_and_claim_next_is_one_commit(void **state)
{
    char *dir = tl_test_mkdtemp();
    char path[512], url[600];

    (void)state;
    (void)snprintf(path, sizeof(path), "%s/one.db", dir);
    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    tl_manager *m = mgr(url, "one");
    const char *keys[] = {"a", "b", "c"};
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    tl_lock *l = NULL;
    assert_int_equal(tl_claim_next(m, keys, 3, &ff, &l), TL_OK);

    int before = wal_commits(path);
    tl_lock *next = NULL;
    assert_int_equal(tl_release_claim_next(l, "ok", true, keys, 3, &ff, &next), TL_OK);
    assert_int_equal(wal_commits(path), before + 1);
    assert_string_equal(tl_lock_key(next), "b");
    tl_lock_free(l);
    assert_int_equal(tl_release(next, NULL), TL_OK);
    tl_lock_free(next);

    /* A claim-next over held and done candidates only reads: no commit. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    tl_lock *h = NULL;
    assert_int_equal(tl_acquire(m, "c", &ff, &h), TL_OK);
    const char *ab[] = {"a", "c"};
    int quiet = data_version(db);
    assert_int_equal(tl_claim_next(m, ab, 2, &ff, &l), TL_EBUSY);
    assert_int_equal(data_version(db), quiet);
    assert_int_equal(tl_release(h, NULL), TL_OK);
    tl_lock_free(h);
    sqlite3_close(db);
    tl_manager_free(m);
    tl_test_rmtree(dir);
    free(dir);
}

/* A claimer waiting for the last held task learns "nothing left" when that task is finished,
 * not at the end of its backoff (30 s here). */
struct tail_waiter {
    tl_manager *m;
    tl_status st;
    tl_lock *got;
};

static void *tail_main(void *arg)
{
    struct tail_waiter *w = arg;
    const char *keys[] = {"last"};
    const struct tl_acquire_opts wait = {.strategy = TL_RETRY, .deadline_ms = 120000};

    w->st = tl_claim_next(w->m, keys, 1, &wait, &w->got);
    return NULL;
}

static bool has_retried(void *arg)
{
    struct tl_metrics mt;

    tl_metrics_get(arg, &mt, sizeof(mt));
    return mt.total_retries > 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void a_tail_waiter_ends_when_the_last_task_is_done(void **state)
{
    char *dir = tl_test_mkdtemp();
    char url[600];

    (void)state;
    (void)snprintf(url, sizeof(url), "sqlite:%s/tail.db", dir);
    tl_manager *h = mgr(url, "holder");
    const struct tl_options o = {.store_url = url,
                                 .worker_id = "tail",
                                 .node_id = "n",
                                 .backoff_initial_ms = 30000,
                                 .backoff_max_ms = 30000};
    struct tail_waiter w = {.m = tl_manager_new(&o)};
    assert_non_null(w.m);
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    tl_lock *l = NULL;
    assert_int_equal(tl_acquire(h, "last", &ff, &l), TL_OK);

    pthread_t t;
    int64_t start = mono_ms();
    assert_int_equal(pthread_create(&t, NULL, tail_main, &w), 0);
    /* The waiter found it held and waits (or is about to): then the task is finished. */
    assert_true(tl_test_poll(has_retried, w.m, 1, 60000));
    assert_int_equal(tl_release_with(l, &(struct tl_release_opts){.done = true}), TL_OK);
    tl_lock_free(l);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.st, TL_ENOTASK);
    assert_null(w.got);
    assert_true(mono_ms() - start < 20000); /* not the 30 s backoff */
    tl_manager_free(w.m);
    tl_manager_free(h);
    tl_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_old_file_is_migrated_in_place),
        cmocka_unit_test(threads_migrating_one_file_at_once_all_succeed),
        cmocka_unit_test(release_and_claim_next_is_one_commit),
        cmocka_unit_test(a_tail_waiter_ends_when_the_last_task_is_done),
    };

    return cmocka_run_group_tests_name("sqlite_next", tests, NULL, NULL);
}
