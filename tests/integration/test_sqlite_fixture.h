/*
 * test_sqlite_fixture.h -- the set-up that test_sqlite_modes.c and test_sqlite_convert.c
 * share: a store on a fresh file in a temporary directory, on a clock the test moves, beside a
 * plain connection of its own (the older tasklock's statements, and garbage), and the waiter
 * ids. Header-only (static functions), as each test is one file.
 */
#ifndef TL_TEST_SQLITE_FIXTURE_H
#define TL_TEST_SQLITE_FIXTURE_H

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "store.h"
#include "tl.h"
#include "tl_test.h"

/* Test hook of the SQLite store (src/stores/sqlite.c): wake-up datagrams received. */
uint64_t tl__sqlite_test_wakeups(struct tl_store *s);

#define LOCK_TIMEOUT   10000
#define WAITER_TIMEOUT 60000

/* ---- a fake clock, moved by the test ---- */

struct clock_state {
    _Atomic int64_t now;
    _Atomic int64_t mono;
};

static inline int64_t fake_now(void *ud)
{
    return ((struct clock_state *)ud)->now;
}

static inline int64_t fake_mono(void *ud)
{
    return ((struct clock_state *)ud)->mono;
}

static inline void fake_sleep(void *ud, uint32_t ms)
{
    struct clock_state *c = ud;

    c->now += ms;
    c->mono += ms;
}

static inline uint32_t fake_random(void *ud)
{
    (void)ud;
    return 0;
}

/* ---- the fixture ---- */

struct fix {
    char *dir;
    char path[512];
    char url[600];
    struct clock_state cs;
    struct tl_clock clock;
    struct tl_store *s;
    sqlite3 *db; /* the older tasklock's connection, and the test's own */
};

/* Another store instance on the fixture's file and clock. */
static inline struct tl_store *open_store(struct fix *f)
{
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE] = "";

    if (tl__store_open(f->url, NULL, &f->clock, NULL, &s, err) != TL_OK)
        fail_msg("open %s: %s", f->url, err);
    return s;
}

static inline void exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
}

/* A fixture on a fresh file, or (`old` not NULL) on a file made with that SQL first. */
static inline struct fix *fix_new(const char *old)
{
    struct fix *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->dir = tl_test_mkdtemp();
    assert_non_null(f->dir);
    (void)snprintf(f->path, sizeof(f->path), "%s/tasklock.db", f->dir);
    (void)snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
    f->cs.now = 1767225600000; /* 2026-01-01T00:00:00Z */
    f->cs.mono = 1000000;
    f->clock = (struct tl_clock){.now_ms = fake_now,
                                 .mono_ms = fake_mono,
                                 .sleep_ms = fake_sleep,
                                 .random = fake_random,
                                 .ud = &f->cs};
    assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
    (void)sqlite3_busy_timeout(f->db, 10000);
    if (old != NULL)
        exec_sql(f->db, old);
    f->s = open_store(f);
    return f;
}

static inline void fix_free(struct fix *f)
{
    tl__store_close(f->s);
    sqlite3_close(f->db);
    tl_test_rmtree(f->dir);
    free(f->dir);
    free(f);
}

static inline void advance(struct fix *f, int64_t ms)
{
    f->cs.now += ms;
    f->cs.mono += ms;
}

/* Waiter n's id (n < 16): 32 lower-case hex digits. */
static inline const char *wid(int n)
{
    static char ids[16][33];

    (void)snprintf(ids[n], sizeof(ids[n]), "%032x", (unsigned)n + 0xabc0u);
    return ids[n];
}

#endif /* TL_TEST_SQLITE_FIXTURE_H */
