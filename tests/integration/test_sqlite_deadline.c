/*
 * test_sqlite_deadline.c -- the SQLite store under a caller's deadline, and its tokens across a
 * lost file.
 *
 * Waiting for the database's write lock (held by another connection's long transaction) ends by
 * the caller's deadline: an acquire's --wait reports the key busy, a renew gives up by its lock's
 * loss deadline. The fake clock makes the busy handler's waits instant and exact. Tokens keep
 * growing when the file is deleted and made again, since they never start below the clock.
 */
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

#include "tasklock.h"
#include "tl_test.h"

struct fixture {
    char *dir;
    char path[600];
    char url[620];
    struct tl_fake_clock fc;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->dir = tl_test_mkdtemp();
    assert_non_null(f->dir);
    (void)snprintf(f->path, sizeof(f->path), "%s/deadline.db", f->dir);
    (void)snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
    tl_fake_clock_init(&f->fc);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    tl_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static tl_manager *mgr(struct fixture *f, const char *worker, bool fake)
{
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = f->url, .worker_id = worker});

    assert_non_null(m);
    if (fake)
        tl_fake_clock_install(m, &f->fc);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

/* Another connection holding the write lock, as a long write transaction would. */
static sqlite3 *hold_write_lock(const char *path)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void let_go(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void an_acquire_behind_a_long_write_ends_by_its_deadline(void **state)
{
    struct fixture *f = *state;
    tl_manager *m = mgr(f, "waiter", true);
    tl_lock *l = NULL;

    sqlite3 *db = hold_write_lock(f->path);
    int64_t t0 = f->fc.mono_ms;
    tl_status st = tl_acquire(m, "k", &(struct tl_acquire_opts){.deadline_ms = 1000}, &l);
    int64_t took = f->fc.mono_ms - t0;
    /* The key is free, but the write lock did not come free by the deadline: that is "not
     * acquired in time" (busy), not a store failure, and it took the deadline, not the 10 s
     * busy timeout. */
    assert_int_equal(st, TL_EBUSY);
    assert_null(l);
    assert_non_null(strstr(tl_errmsg(m), "locked by another connection until the deadline"));
    /* ... plus the short time a waiter that gives up has to leave the line (the write lock
     * holds that up too). */
    assert_int_equal(took, 1000 + 250);

    /* Without a deadline the busy timeout bounds it: a store error that names the limit. */
    t0 = f->fc.mono_ms;
    st = tl_acquire(m, "k", &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l);
    assert_int_equal(st, TL_ETIMEDOUT);
    assert_int_equal(f->fc.mono_ms - t0, 10000);
    assert_non_null(strstr(tl_errmsg(m), "busy_timeout=10000"));

    let_go(db);
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.deadline_ms = 1000}, &l), TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void a_renew_behind_a_long_write_ends_by_the_loss_deadline(void **state)
{
    struct fixture *f = *state;
    tl_manager *m = mgr(f, "holder", true);
    tl_lock *l = NULL;

    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.lock_timeout_ms = 6000}, &l),
                     TL_OK);
    tl__heartbeat_stop(m); /* this test renews by hand */
    int64_t t0 = f->fc.mono_ms;
    tl_fake_clock_advance(&f->fc, 2000);
    sqlite3 *db = hold_write_lock(f->path);
    tl_status st = tl_renew(l);
    /* Lock timeout 6 s, margin 300 ms: the renew gives up 5.7 s after the claim. */
    assert_int_equal(st, TL_ETIMEDOUT);
    assert_int_equal(f->fc.mono_ms - t0, 5700);
    assert_non_null(strstr(tl_errmsg(m), "until the call's deadline"));
    assert_true(tl_lock_is_lost(l));
    let_go(db);
    /* Still ours in the store (no one took it): the release frees it. */
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

/* The real clock, through the command line: `acquire --wait 1s` behind a long transaction
 * answers "held" (exit 1) soon after its second, not after the 10 s busy timeout. */
static void the_cli_wait_ends_by_its_deadline_behind_a_long_write(void **state)
{
    struct fixture *f = *state;
    const char *bin = tl_test_env("TL_TEST_BINARY_DIR");
    char exe[600];

    if (bin == NULL)
        skip();
    (void)snprintf(exe, sizeof(exe), "%s/tasklock", bin);
    tl_manager_free(mgr(f, "creator", false)); /* the tables exist */
    sqlite3 *db = hold_write_lock(f->path);
    int64_t t0 = tl__real_mono_ms();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(125);
        execl(exe, exe, "-q", "-s", f->url, "acquire", "k", "--wait", "1s", (char *)NULL);
        _exit(126);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    int64_t took = tl__real_mono_ms() - t0;
    let_go(db);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    if (took >= 8000) /* the busy timeout is 10 s; a second of wait, generously bounded */
        fail_msg("acquire --wait 1s took %lld ms behind a long transaction", (long long)took);
}

static uint64_t acquire_release(tl_manager *m, const char *key)
{
    tl_lock *l = NULL;

    assert_int_equal(tl_acquire(m, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l),
                     TL_OK);
    uint64_t token = tl_lock_token(l);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    return token;
}

static void tokens_keep_growing_when_the_file_is_made_again(void **state)
{
    struct fixture *f = *state;
    tl_manager *m = mgr(f, "w", true);
    uint64_t last = 0;
    char side[640];

    /* Within one millisecond, tokens count up from the clock's microseconds. */
    for (int i = 0; i < 3; i++) {
        uint64_t t = acquire_release(m, "k");
        assert_true(t > last);
        last = t;
    }
    assert_int_equal(last, (uint64_t)f->fc.now_ms * 1000 + 2);
    tl_manager_free(m);

    /* The file is lost (deleted, or a fresh copy from before): a new one starts from the
     * clock, above every token the old one gave out. */
    assert_int_equal(unlink(f->path), 0);
    (void)snprintf(side, sizeof(side), "%s-wal", f->path);
    (void)unlink(side);
    (void)snprintf(side, sizeof(side), "%s-shm", f->path);
    (void)unlink(side);
    tl_fake_clock_advance(&f->fc, 1);
    m = mgr(f, "w", true);
    uint64_t next = acquire_release(m, "k");
    assert_true(next > last);
    assert_true(acquire_release(m, "other") > last);
    tl_manager_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(an_acquire_behind_a_long_write_ends_by_its_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_renew_behind_a_long_write_ends_by_the_loss_deadline,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(the_cli_wait_ends_by_its_deadline_behind_a_long_write,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(tokens_keep_growing_when_the_file_is_made_again, setup,
                                        teardown),
    };

    return cmocka_run_group_tests_name("sqlite_deadline", tests, NULL, NULL);
}
