/*
 * test_sqlite_line.c -- the line (store contract version 3) of the SQLite store, through its ops:
 * FIFO and priority order, no barging, dead waiters skipped and deleted, leave, head-only
 * wake-ups, steal by the head, force past the line, token order, extend, waiters(), a waiter
 * that joins again after it was deleted as dead, and a file made before the line.
 *
 * Most tests run on a fake clock that moves only when told (or when the store sleeps), so that
 * waiters go dead without waiting; the wake-up test runs threads on the real clock. On Linux,
 * the wake-up datagrams: a release wakes a blocked head long before its next poll, a wake-up
 * sent before the wait is queued, and only the head gets one (release, force_release, leave,
 * a claim that deleted a dead head), counted through the store's test hooks.
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

#include <cmocka.h>

#include "store.h"
#include "tl.h"
#include "tl_test.h"

/* Test hooks of the SQLite store (src/stores/sqlite.c): a fixed pause between wait_turn's
 * polls, and the wake-up datagrams a connection has received. */
void tl__sqlite_test_poll_ms(struct tl_store *s, uint32_t ms);
uint64_t tl__sqlite_test_wakeups(struct tl_store *s);

#define WAITER_TIMEOUT 300 /* ms: a waiter silent this long is dead */
#define LOCK_TIMEOUT   10000

struct clock_state {
    _Atomic int64_t now;
    _Atomic int64_t mono;
    _Atomic uint64_t slept;
};

static int64_t fake_now(void *ud)
{
    return ((struct clock_state *)ud)->now;
}

static int64_t fake_mono(void *ud)
{
    return ((struct clock_state *)ud)->mono;
}

static void fake_sleep(void *ud, uint32_t ms)
{
    struct clock_state *c = ud;

    c->now += ms;
    c->mono += ms;
    c->slept += ms;
}

static uint32_t fake_random(void *ud)
{
    (void)ud;
    return 0;
}

static void advance(struct clock_state *c, int64_t ms)
{
    c->now += ms;
    c->mono += ms;
}

struct fix {
    char *dir;
    char url[600];
    struct clock_state cs;
    struct tl_clock clock;
    struct tl_store *s;
};

static struct tl_store *open_store(struct fix *f, const struct tl_clock *clock)
{
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE] = "";

    tl_status st = tl__store_open(f->url, NULL, clock, NULL, &s, err);
    if (st != TL_OK)
        fail_msg("open %s: %s", f->url, err);
    return s;
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->dir = tl_test_mkdtemp();
    assert_non_null(f->dir);
    (void)snprintf(f->url, sizeof(f->url), "sqlite:%s/line.db", f->dir);
    f->cs.now = 1767225600000; /* 2026-01-01T00:00:00Z */
    f->cs.mono = 1000000;
    f->clock = (struct tl_clock){.now_ms = fake_now,
                                 .mono_ms = fake_mono,
                                 .sleep_ms = fake_sleep,
                                 .random = fake_random,
                                 .ud = &f->cs};
    f->s = open_store(f, &f->clock);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    tl__store_close(f->s);
    tl_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Waiter ids are 32 lower-case hex digits. */
static const char *wid(int n)
{
    static char ids[16][33];

    (void)snprintf(ids[n], sizeof(ids[n]), "%032x", (unsigned)n + 0xabc0u);
    return ids[n];
}

static char *worker_name(int n)
{
    static char names[16][24];

    (void)snprintf(names[n], sizeof(names[n]), "worker-%d", n);
    return names[n];
}

/* Claim as worker n (waiter n, or no waiter when n < 0: worker "solo"). */
static tl_status claim(struct tl_store *s, const char *key, int n, int32_t priority,
                       enum tl_claim_mode mode, struct tl_claim_result *out)
{
    const struct tl_claim req = {
        .key = key,
        .worker_id = n < 0 ? "solo" : worker_name(n),
        .node_id = "node-1",
        .task_info = "{}",
        .lock_timeout_ms = LOCK_TIMEOUT,
        .mode = mode,
        .waiter_id = n < 0 ? NULL : wid(n),
        .priority = priority,
        .waiter_timeout_ms = WAITER_TIMEOUT,
    };

    tl__record_clear(&out->rec);
    memset(out, 0, sizeof(*out));
    return s->ops->claim(s, &req, out);
}

/* Worker n joins the line (or refreshes its place) and must be told busy. */
static void join(struct tl_store *s, const char *key, int n, int32_t priority, uint32_t waiting,
                 uint32_t ahead)
{
    struct tl_claim_result r = {0};

    assert_int_equal(claim(s, key, n, priority, TL_CLAIM_NORMAL, &r), TL_EBUSY);
    assert_int_equal(r.waiting, waiting);
    assert_int_equal(r.ahead, ahead);
    tl__record_clear(&r.rec);
}

/* Worker n claims and must win; returns the token. The record is kept in *held if not NULL. */
static uint64_t win(struct tl_store *s, const char *key, int n, int32_t priority,
                    enum tl_claim_mode mode, struct tl_record *held)
{
    struct tl_claim_result r = {0};

    tl_status st = claim(s, key, n, priority, mode, &r);
    if (st != TL_OK)
        fail_msg("worker %d claiming %s: %s (%s)", n, key, tl_strerror(st), s->errmsg);
    uint64_t token = r.rec.info.token;
    if (held != NULL)
        *held = r.rec;
    else
        tl__record_clear(&r.rec);
    return token;
}

static void release(struct tl_store *s, struct tl_record *held)
{
    assert_int_equal(s->ops->release(s, held, "done"), TL_OK);
    tl__record_clear(held);
}

/* The line of `key` must be the waiters `ids` (by worker number) in that order. */
static void expect_line(struct tl_store *s, const char *key, const int *ids, size_t n)
{
    struct tl_waiter **w = NULL;
    size_t count = 99;

    assert_int_equal(s->ops->waiters(s, key, &w, &count), TL_OK);
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(w[i]->waiter_id, wid(ids[i]));
        assert_string_equal(w[i]->worker_id, worker_name(ids[i]));
        assert_string_equal(w[i]->key, key);
        if (i > 0 && w[i]->priority == w[i - 1]->priority)
            assert_true(w[i]->seq > w[i - 1]->seq);
        if (i > 0)
            assert_true(w[i]->priority <= w[i - 1]->priority);
    }
    tl_waiter_array_free(w, count);
}

static bool woken_now(struct tl_store *s, const char *key, int n)
{
    bool woken = true;

    assert_int_equal(s->ops->wait_turn(s, key, wid(n), 0, &woken), TL_OK);
    return woken;
}

static void fifo_order(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};
    struct tl_claim_result r = {0};

    win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 0, 1, 0);
    join(s, "k", 2, 0, 2, 1);
    join(s, "k", 3, 0, 3, 2);
    join(s, "k", 2, 0, 3, 1); /* a refresh keeps the place */
    expect_line(s, "k", (int[]){1, 2, 3}, 3);

    struct tl_waiter **w = NULL;
    size_t count = 0;
    assert_int_equal(s->ops->waiters(s, "k", &w, &count), TL_OK);
    assert_int_equal(count, 3);
    assert_string_equal(w[0]->node_id, "node-1");
    assert_int_equal(w[0]->priority, 0);
    assert_int_equal(w[0]->since_ms, f->cs.now);
    assert_int_equal(w[0]->heartbeat_at_ms, f->cs.now);
    assert_int_equal(w[0]->timeout_ms, WAITER_TIMEOUT);
    assert_false(w[0]->dead);
    tl_waiter_array_free(w, count);

    release(s, &held);
    /* Free, but 2 and 3 are behind 1. */
    assert_int_equal(claim(s, "k", 3, 0, TL_CLAIM_NORMAL, &r), TL_EBUSY);
    assert_false(r.holder_known);
    assert_int_equal(r.waiting, 3);
    assert_int_equal(r.ahead, 2);
    assert_int_equal(claim(s, "k", 2, 0, TL_CLAIM_NORMAL, &r), TL_EBUSY);
    assert_int_equal(r.ahead, 1);

    for (int n = 1; n <= 3; n++) {
        win(s, "k", n, 0, TL_CLAIM_NORMAL, &held);
        release(s, &held);
    }
    expect_line(s, "k", NULL, 0);
    tl__record_clear(&r.rec);
}

static void priority_order_and_tokens(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};

    uint64_t last = win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 0, 1, 0);
    join(s, "k", 2, 5, 2, 0);  /* higher: goes first */
    join(s, "k", 3, 2, 3, 1);  /* behind 2 only */
    join(s, "k", 4, 5, 4, 1);  /* behind 2, its equal */
    join(s, "k", 5, -3, 5, 4); /* last */
    expect_line(s, "k", (int[]){2, 4, 3, 1, 5}, 5);
    release(s, &held);

    const int order[] = {2, 4, 3, 1, 5};
    const int prio[] = {[1] = 0, [2] = 5, [3] = 2, [4] = 5, [5] = -3};
    for (size_t i = 0; i < 5; i++) {
        /* Everyone behind the head is refused. */
        for (size_t j = i + 1; j < 5; j++) {
            struct tl_claim_result r = {0};

            assert_int_equal(claim(s, "k", order[j], prio[order[j]], TL_CLAIM_NORMAL, &r),
                             TL_EBUSY);
            assert_int_equal(r.ahead, j - i);
            tl__record_clear(&r.rec);
        }
        uint64_t token = win(s, "k", order[i], prio[order[i]], TL_CLAIM_NORMAL, &held);
        assert_true(token > last); /* granted in line order, tokens still grow */
        last = token;
        release(s, &held);
    }
}

static void no_barging(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};
    struct tl_claim_result r = {0};

    win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 2, 1, 0);
    /* Held: a claim without a waiter hears how many wait. */
    assert_int_equal(claim(s, "k", -1, 0, TL_CLAIM_NORMAL, &r), TL_EBUSY);
    assert_true(r.holder_known);
    assert_string_equal(r.rec.info.worker_id, "worker-0");
    assert_int_equal(r.waiting, 1);
    release(s, &held);

    /* Free, with a live waiter: no one passes it but a higher priority and FORCE. */
    assert_int_equal(claim(s, "k", -1, 0, TL_CLAIM_NORMAL, &r), TL_EBUSY);
    assert_false(r.holder_known);
    assert_int_equal(r.waiting, 1);
    assert_int_equal(claim(s, "k", -1, 0, TL_CLAIM_STEAL, &r), TL_EBUSY);
    assert_false(r.holder_known);
    join(s, "k", 2, 2, 2, 1); /* same priority: behind */
    expect_line(s, "k", (int[]){1, 2}, 2);

    struct tl_record info = {0};
    bool found = true;
    assert_int_equal(s->ops->inspect(s, "k", &info, &found), TL_OK);
    assert_false(found);

    /* A newcomer of a higher priority has no one ahead of it. */
    win(s, "k", 3, 3, TL_CLAIM_NORMAL, &held);
    expect_line(s, "k", (int[]){1, 2}, 2);
    assert_int_equal(s->ops->inspect(s, "k", &info, &found), TL_OK);
    assert_true(found);
    assert_int_equal(info.info.waiting, 2);
    tl__record_clear(&info);

    struct tl_record **list = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->list(s, &list, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0]->info.waiting, 2);
    tl_info_array_free((struct tl_info **)list, n);
    release(s, &held);
    tl__record_clear(&r.rec);
}

static void dead_waiter_skipped_and_deleted(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};
    struct tl_claim_result r = {0};

    win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 0, 1, 0);
    join(s, "k", 2, 0, 2, 1);
    advance(&f->cs, 200);
    join(s, "k", 2, 0, 2, 1); /* 2 refreshes, 1 does not */
    advance(&f->cs, WAITER_TIMEOUT - 200);

    /* 1 is dead now (its heartbeat + timeout is not after now): listed, marked, not counted. */
    struct tl_waiter **w = NULL;
    size_t count = 0;
    assert_int_equal(s->ops->waiters(s, "k", &w, &count), TL_OK);
    assert_int_equal(count, 2);
    assert_string_equal(w[0]->waiter_id, wid(1));
    assert_true(w[0]->dead);
    assert_false(w[1]->dead);
    tl_waiter_array_free(w, count);

    struct tl_record info = {0};
    bool found = false;
    assert_int_equal(s->ops->inspect(s, "k", &info, &found), TL_OK);
    assert_int_equal(info.info.waiting, 1);
    tl__record_clear(&info);

    release(s, &held);
    assert_false(woken_now(s, "k", 1)); /* the dead one is not the head */
    assert_true(woken_now(s, "k", 2));
    assert_int_equal(claim(s, "k", -1, 0, TL_CLAIM_NORMAL, &r), TL_EBUSY);
    assert_int_equal(r.waiting, 1);
    win(s, "k", 2, 0, TL_CLAIM_NORMAL, &held);
    expect_line(s, "k", NULL, 0); /* 2 won, and its claim deleted 1 */
    release(s, &held);
    tl__record_clear(&r.rec);
}

static void dead_waiter_joins_again_at_the_back(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};

    win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 0, 1, 0);
    join(s, "k", 2, 0, 2, 1);
    join(s, "k", 3, 0, 3, 2);
    advance(&f->cs, 200);
    join(s, "k", 2, 0, 3, 1);
    join(s, "k", 3, 0, 3, 2);
    advance(&f->cs, 200);

    /* 1 is dead but still listed: its own claim deletes it and puts it at the back. */
    expect_line(s, "k", (int[]){1, 2, 3}, 3);
    join(s, "k", 1, 0, 3, 2);
    expect_line(s, "k", (int[]){2, 3, 1}, 3);
    join(s, "k", 3, 0, 3, 1);

    /* 2 dies and is deleted by someone else's claim; then it joins again behind 1. */
    advance(&f->cs, 150);
    join(s, "k", 3, 0, 2, 0);
    join(s, "k", 1, 0, 2, 1);
    expect_line(s, "k", (int[]){3, 1}, 2);
    join(s, "k", 2, 0, 3, 2);
    expect_line(s, "k", (int[]){3, 1, 2}, 3);
    release(s, &held);
}

static void leave_gives_up_the_place(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};

    win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 0, 1, 0);
    join(s, "k", 2, 0, 2, 1);
    join(s, "k", 3, 0, 3, 2);
    assert_int_equal(s->ops->leave(s, "k", wid(2)), TL_OK);
    assert_int_equal(s->ops->leave(s, "k", wid(2)), TL_OK); /* gone already: fine */
    assert_int_equal(s->ops->leave(s, "other", wid(1)), TL_OK);
    expect_line(s, "k", (int[]){1, 3}, 2);
    release(s, &held);

    assert_true(woken_now(s, "k", 1));
    assert_false(woken_now(s, "k", 3));
    assert_int_equal(s->ops->leave(s, "k", wid(1)), TL_OK); /* the head leaves: 3 is next */
    assert_true(woken_now(s, "k", 3));
    win(s, "k", 3, 0, TL_CLAIM_NORMAL, &held);
    release(s, &held);
}

static void steal_by_the_head(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};
    struct tl_claim_result r = {0};

    uint64_t old = win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 0, 1, 0);
    join(s, "k", 2, 0, 2, 1);
    /* Keep the waiters alive while the holder goes stale. */
    for (int i = 0; i < LOCK_TIMEOUT / 200 + 1; i++) {
        advance(&f->cs, 200);
        join(s, "k", 1, 0, 2, 0);
        join(s, "k", 2, 0, 2, 1);
    }
    assert_false(woken_now(s, "k", 1)); /* stale is not free: the head steals on its own */
    assert_int_equal(claim(s, "k", 2, 0, TL_CLAIM_STEAL, &r), TL_EBUSY);
    assert_true(r.holder_known);
    assert_int_equal(r.ahead, 1);
    assert_int_equal(claim(s, "k", -1, 0, TL_CLAIM_STEAL, &r), TL_EBUSY);
    assert_true(r.holder_known);
    assert_int_equal(claim(s, "k", 1, 0, TL_CLAIM_NORMAL, &r), TL_EBUSY);

    assert_int_equal(claim(s, "k", 1, 0, TL_CLAIM_STEAL, &r), TL_OK);
    assert_true(r.took_stale);
    assert_true(r.rec.info.token > old);
    expect_line(s, "k", (int[]){2}, 1);
    int64_t beat = 0;
    assert_int_equal(s->ops->renew(s, &held, 1, &beat), TL_ELOST);
    release(s, &r.rec);
    tl__record_clear(&held);
}

static void force_passes_the_line(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};
    struct tl_claim_result r = {0};

    uint64_t old = win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 0, 1, 0);
    join(s, "k", 2, 0, 2, 1);
    assert_int_equal(claim(s, "k", -1, 0, TL_CLAIM_FORCE, &r), TL_OK);
    assert_true(r.took_forced);
    assert_true(r.rec.info.token > old);
    expect_line(s, "k", (int[]){1, 2}, 2); /* untouched */
    release(s, &r.rec);

    /* Also on a free key with a line. */
    assert_int_equal(claim(s, "k", -1, 0, TL_CLAIM_FORCE, &r), TL_OK);
    assert_false(r.took_forced);
    expect_line(s, "k", (int[]){1, 2}, 2);
    release(s, &r.rec);
    tl__record_clear(&held);
}

static void extend_records_the_new_timeout(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};
    struct tl_record info = {0};
    bool found = false;
    int64_t beat = 0;

    win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    advance(&f->cs, 1000);
    assert_int_equal(s->ops->extend(s, &held, 60000, &beat), TL_OK);
    assert_int_equal(beat, f->cs.now);
    advance(&f->cs, LOCK_TIMEOUT + 1000); /* past the first timeout, within the new one */
    assert_int_equal(s->ops->inspect(s, "k", &info, &found), TL_OK);
    assert_true(found);
    assert_int_equal(info.info.lock_timeout_ms, 60000);
    assert_int_equal(info.info.heartbeat_at_ms, beat);
    assert_false(info.info.stale);
    tl__record_clear(&info);

    struct tl_claim_result r = {0};
    assert_int_equal(claim(s, "k", -1, 0, TL_CLAIM_STEAL, &r), TL_EBUSY);
    tl__record_clear(&r.rec);

    struct tl_record wrong = {0};
    assert_int_equal(tl__record_copy(&wrong, &held), TL_OK);
    wrong.info.token++;
    assert_int_equal(s->ops->extend(s, &wrong, 1000, &beat), TL_ELOST);
    tl__record_clear(&wrong);
    struct tl_record copy = {0};
    assert_int_equal(tl__record_copy(&copy, &held), TL_OK);
    release(s, &held);
    assert_int_equal(s->ops->extend(s, &copy, 1000, &beat), TL_ELOST);
    tl__record_clear(&copy);
}

static void wait_turn_keeps_its_bounds(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_record held = {0};
    bool woken = true;

    win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 0, 1, 0);
    f->cs.slept = 0;
    assert_int_equal(s->ops->wait_turn(s, "k", wid(1), 120, &woken), TL_OK);
    assert_false(woken);
    assert_int_equal(f->cs.slept, 120);

    f->cs.slept = 0;
    s->deadline_mono_ms = f->cs.mono + 70;
    assert_int_equal(s->ops->wait_turn(s, "k", wid(1), 10000, &woken), TL_OK);
    assert_false(woken);
    assert_int_equal(f->cs.slept, 70);
    s->deadline_mono_ms = 0;

    /* A release before the wait is not lost: the head sees it at once. */
    release(s, &held);
    f->cs.slept = 0;
    assert_int_equal(s->ops->wait_turn(s, "k", wid(1), 10000, &woken), TL_OK);
    assert_true(woken);
    assert_int_equal(f->cs.slept, 0);

    /* A waiter not in line wakes for a free key with no one in line. */
    assert_int_equal(s->ops->leave(s, "k", wid(1)), TL_OK);
    assert_int_equal(s->ops->wait_turn(s, "k", wid(2), 10000, &woken), TL_OK);
    assert_true(woken);
    assert_int_equal(s->ops->wait_turn(s, "never-used", wid(2), 10000, &woken), TL_OK);
    assert_true(woken);
}

/* Head-only wake-ups, on the real clock: waiters wait in threads, each on its own connection. */
struct sleeper {
    const char *url;
    char id[33];
    bool woken;
    tl_status st;
};

static void *wait_in_thread(void *arg)
{
    struct sleeper *w = arg;
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE];

    w->st = tl__store_open(w->url, NULL, &tl__real_clock, NULL, &s, err);
    if (w->st == TL_OK)
        w->st = s->ops->wait_turn(s, "k", w->id, 1500, &w->woken);
    tl__store_close(s);
    return NULL;
}

static void release_wakes_only_the_head(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = open_store(f, &tl__real_clock);
    struct tl_record held = {0};
    struct tl_claim_result r = {0};
    const struct tl_claim base = {.key = "k",
                                  .node_id = "node-1",
                                  .task_info = "{}",
                                  .lock_timeout_ms = LOCK_TIMEOUT,
                                  .waiter_timeout_ms = 60000};
    enum { N = 5 };
    struct sleeper w[N];
    pthread_t t[N];

    struct tl_claim c = base;
    c.worker_id = worker_name(0);
    assert_int_equal(s->ops->claim(s, &c, &r), TL_OK);
    held = r.rec;
    memset(&r, 0, sizeof(r));
    for (int i = 0; i < N; i++) {
        c.worker_id = worker_name(i + 1);
        c.waiter_id = wid(i + 1);
        c.priority = i == 3 ? 1 : 0; /* the fourth to come is the head */
        assert_int_equal(s->ops->claim(s, &c, &r), TL_EBUSY);
        tl__record_clear(&r.rec);
    }
    for (int i = 0; i < N; i++) {
        w[i] = (struct sleeper){.url = f->url};
        (void)snprintf(w[i].id, sizeof(w[i].id), "%s", wid(i + 1));
        assert_int_equal(pthread_create(&t[i], NULL, wait_in_thread, &w[i]), 0);
    }
    assert_int_equal(s->ops->release(s, &held, "done"), TL_OK);
    int woken = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].st, TL_OK);
        woken += w[i].woken;
    }
    assert_int_equal(woken, 1);
    assert_true(w[3].woken);

    c.worker_id = worker_name(4);
    c.waiter_id = wid(4);
    c.priority = 1;
    assert_int_equal(s->ops->claim(s, &c, &r), TL_OK);
    assert_int_equal(s->ops->release(s, &r.rec, "done"), TL_OK);
    tl__record_clear(&r.rec);
    tl__record_clear(&held);
    tl__store_close(s);
}

#ifdef __linux__
struct blocked {
    struct tl_store *s;
    bool woken;
    tl_status st;
};

static void *wait_long(void *arg)
{
    struct blocked *b = arg;

    b->st = b->s->ops->wait_turn(b->s, "k", wid(1), 30000, &b->woken);
    return NULL;
}

/* The head polls once a minute here, and waits up to 30 s: only the datagram can wake it. */
static void release_wakes_a_blocked_head_at_once(void **state)
{
    struct fix *f = *state;
    struct tl_store *holder = open_store(f, &tl__real_clock);
    struct tl_store *ws = open_store(f, &tl__real_clock);
    struct tl_record held = {0};
    struct blocked b = {.s = ws};
    pthread_t t;
    bool woken = true;

    win(holder, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(ws, "k", 1, 0, 1, 0);
    tl__sqlite_test_poll_ms(ws, 60000);
    assert_int_equal(ws->ops->wait_turn(ws, "k", wid(1), 0, &woken), TL_OK);
    assert_false(woken);
    assert_int_equal(tl__sqlite_test_wakeups(ws), 0);

    assert_int_equal(pthread_create(&t, NULL, wait_long, &b), 0);
    int64_t start = tl__real_mono_ms();
    release(holder, &held);
    pthread_join(t, NULL);
    int64_t took = tl__real_mono_ms() - start;
    assert_int_equal(b.st, TL_OK);
    assert_true(b.woken);
    assert_true(took < 10000); /* generous for the sanitizers; the poll would be 60 s */
    /* Whether it was blocked already or polled after the release, the datagram was there. */
    assert_int_equal(tl__sqlite_test_wakeups(ws), 1);

    win(ws, "k", 1, 0, TL_CLAIM_NORMAL, &held);
    release(ws, &held);
    tl__store_close(ws);
    tl__store_close(holder);
}

/* Waiters 1, 2 (the head: priority 1) and 3 on connections of their own, each bound by a first
 * wait_turn: each wake-up reaches the head alone, and is queued until it waits. */
static void wake_ups_go_to_the_head_only(void **state)
{
    struct fix *f = *state;
    struct tl_store *holder = open_store(f, &tl__real_clock);
    struct tl_store *w[4] = {NULL};
    struct tl_record held = {0};
    struct tl_claim_result r = {0};
    bool woken = true;

    win(holder, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    for (int n = 1; n <= 3; n++) {
        w[n] = open_store(f, &tl__real_clock);
        join(w[n], "k", n, n == 2, (uint32_t)n, n == 2 ? 0 : n == 3 ? 2 : 0);
        assert_int_equal(w[n]->ops->wait_turn(w[n], "k", wid(n), 0, &woken), TL_OK);
        assert_false(woken);
    }

    /* A release: to 2 only, before it waits. */
    release(holder, &held);
    assert_int_equal(tl__sqlite_test_wakeups(w[1]), 0);
    assert_int_equal(tl__sqlite_test_wakeups(w[3]), 0);
    assert_int_equal(w[2]->ops->wait_turn(w[2], "k", wid(2), 10000, &woken), TL_OK);
    assert_true(woken);
    assert_int_equal(tl__sqlite_test_wakeups(w[2]), 1);

    /* The head leaves: 1 is next. */
    assert_int_equal(w[2]->ops->leave(w[2], "k", wid(2)), TL_OK);
    assert_int_equal(tl__sqlite_test_wakeups(w[1]), 1);
    assert_int_equal(tl__sqlite_test_wakeups(w[3]), 0);

    /* 1 wins (no wake-up: the key is held), then is broken: 3 is next. */
    win(w[1], "k", 1, 0, TL_CLAIM_NORMAL, &held);
    assert_int_equal(tl__sqlite_test_wakeups(w[3]), 0);
    const struct tl_force_release fr = {
        .key = "k", .worker_id = "admin", .node_id = "node-1", .summary = "broken"};
    struct tl_record former = {0};
    bool found = false;
    assert_int_equal(holder->ops->force_release(holder, &fr, &former, &found), TL_OK);
    assert_true(found);
    tl__record_clear(&former);
    assert_int_equal(tl__sqlite_test_wakeups(w[3]), 1);
    assert_int_equal(tl__sqlite_test_wakeups(w[1]), 1);
    assert_int_equal(tl__sqlite_test_wakeups(w[2]), 1);

    /* A claim without a waiter leaves the key and the line as they are: no wake-up. */
    assert_int_equal(claim(holder, "k", -1, 0, TL_CLAIM_NORMAL, &r), TL_EBUSY);
    assert_int_equal(tl__sqlite_test_wakeups(w[3]), 1);
    tl__record_clear(&r.rec);
    tl__record_clear(&held);
    for (int n = 1; n <= 3; n++)
        tl__store_close(w[n]);
    tl__store_close(holder);
}

/* On the fake clock: 1, the head of a free key, dies; the claim that deletes it wakes 2. */
static void removing_a_dead_head_wakes_the_next(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_store *s2 = open_store(f, &f->clock);
    struct tl_record held = {0};
    bool woken = true;

    win(s, "k", 0, 0, TL_CLAIM_NORMAL, &held);
    join(s, "k", 1, 0, 1, 0);
    join(s2, "k", 2, 0, 2, 1);
    assert_int_equal(s2->ops->wait_turn(s2, "k", wid(2), 0, &woken), TL_OK);
    assert_false(woken);
    release(s, &held);
    assert_int_equal(tl__sqlite_test_wakeups(s2), 0); /* 1 is the head */

    advance(&f->cs, 200);
    join(s2, "k", 2, 0, 2, 1);
    advance(&f->cs, WAITER_TIMEOUT - 200); /* 1 is dead, 2 is not */
    join(s, "k", 3, 0, 2, 1);              /* deletes 1 */
    assert_int_equal(tl__sqlite_test_wakeups(s2), 1);
    assert_int_equal(s2->ops->wait_turn(s2, "k", wid(2), 10000, &woken), TL_OK);
    assert_true(woken);
    tl__store_close(s2);
}
#else
static void release_wakes_a_blocked_head_at_once(void **state)
{
    (void)state;
    skip();
}

static void wake_ups_go_to_the_head_only(void **state)
{
    (void)state;
    skip();
}

static void removing_a_dead_head_wakes_the_next(void **state)
{
    (void)state;
    skip();
}
#endif

static void bad_input_is_refused(void **state)
{
    struct fix *f = *state;
    struct tl_store *s = f->s;
    struct tl_claim_result r = {0};
    struct tl_waiter **w = (struct tl_waiter **)&r;
    size_t n = 1;
    bool woken = true;

    assert_int_equal(claim(s, "k", 1, TL_PRIORITY_MAX + 1, TL_CLAIM_NORMAL, &r), TL_EINVAL);
    assert_int_equal(claim(s, "k", 1, TL_PRIORITY_MIN - 1, TL_CLAIM_NORMAL, &r), TL_EINVAL);
    const struct tl_claim no_timeout = {.key = "k",
                                        .worker_id = "w",
                                        .node_id = "n",
                                        .task_info = "{}",
                                        .lock_timeout_ms = 1000,
                                        .waiter_id = wid(1)};
    assert_int_equal(s->ops->claim(s, &no_timeout, &r), TL_EINVAL);
    assert_int_equal(s->ops->leave(s, "k", NULL), TL_EINVAL);
    assert_int_equal(s->ops->wait_turn(s, "k", NULL, 10, &woken), TL_EINVAL);
    assert_false(woken);
    /* No key: every waiter of the file (the wait-for graph), here none. */
    assert_int_equal(s->ops->waiters(s, NULL, &w, &n), TL_OK);
    assert_null(w);
    assert_int_equal(n, 0);
    /* Quotes and the like are only data. */
    assert_int_equal(s->ops->leave(s, "k'; DROP TABLE tl_waiters; --", wid(1)), TL_OK);
    expect_line(s, "k", NULL, 0);
    tl__record_clear(&r.rec);
}

/* A file made by the tasklock before the line (schema 1 without tl_waiters) gets the line, and
 * keeps its locks. */
static void a_file_from_before_the_line_gets_one(void **state)
{
    struct fix *f = *state;
    char path[500];
    sqlite3 *db = NULL;

    (void)snprintf(path, sizeof(path), "%s/old.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "PRAGMA journal_mode = WAL;"
                     "CREATE TABLE tl_locks (key TEXT PRIMARY KEY NOT NULL, token INTEGER NOT "
                     "NULL, worker_id TEXT, node_id TEXT, claimed_at INTEGER, heartbeat_at "
                     "INTEGER, lock_timeout_ms INTEGER, task_info TEXT) WITHOUT ROWID;"
                     "CREATE TABLE tl_history (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER "
                     "NOT NULL, key TEXT NOT NULL, event TEXT NOT NULL CHECK (event IN "
                     "('acquired','released','stolen','forced','lost')), worker_id TEXT NOT "
                     "NULL, node_id TEXT NOT NULL, token INTEGER NOT NULL, detail TEXT);"
                     "CREATE INDEX tl_history_by_key ON tl_history(key, id);"
                     "INSERT INTO tl_locks VALUES ('k', 7, 'old', 'n', 1767225600000, "
                     "1767225600000, 10000, '{}');"
                     "PRAGMA user_version = 1;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    (void)snprintf(f->url, sizeof(f->url), "sqlite:%s", path);
    struct tl_store *s = open_store(f, &f->clock);
    struct tl_record info = {0};
    bool found = false;
    assert_int_equal(s->ops->inspect(s, "k", &info, &found), TL_OK);
    assert_true(found);
    assert_string_equal(info.info.worker_id, "old");
    assert_int_equal(info.info.waiting, 0);
    tl__record_clear(&info);
    join(s, "k", 1, 0, 1, 0);
    expect_line(s, "k", (int[]){1}, 1);
    tl__store_close(s);

    /* And opens again as it is. */
    s = open_store(f, &f->clock);
    expect_line(s, "k", (int[]){1}, 1);
    tl__store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fifo_order, setup, teardown),
        cmocka_unit_test_setup_teardown(priority_order_and_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(no_barging, setup, teardown),
        cmocka_unit_test_setup_teardown(dead_waiter_skipped_and_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(dead_waiter_joins_again_at_the_back, setup, teardown),
        cmocka_unit_test_setup_teardown(leave_gives_up_the_place, setup, teardown),
        cmocka_unit_test_setup_teardown(steal_by_the_head, setup, teardown),
        cmocka_unit_test_setup_teardown(force_passes_the_line, setup, teardown),
        cmocka_unit_test_setup_teardown(extend_records_the_new_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(wait_turn_keeps_its_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(release_wakes_only_the_head, setup, teardown),
        cmocka_unit_test_setup_teardown(release_wakes_a_blocked_head_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(wake_ups_go_to_the_head_only, setup, teardown),
        cmocka_unit_test_setup_teardown(removing_a_dead_head_wakes_the_next, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_input_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_from_before_the_line_gets_one, setup, teardown),
    };

    return cmocka_run_group_tests_name("sqlite_line", tests, NULL, NULL);
}
