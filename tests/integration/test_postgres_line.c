/*
 * test_postgres_line.c -- the line (store contract version 3) of the PostgreSQL store, tested at
 * the store's own interface on the server that tests/harness/start-postgres started
 * (TL_TEST_POSTGRES_URI; skipped when unset): FIFO and priority order, no barging, dead waiters
 * skipped, deleted and re-queued, leave, the head-only wake-up (NOTIFY on the waiter's own
 * channel, and polling with pooled=true), steal by the head, force past the line, token order,
 * extend, waiters(), the tables of a schema made before the line, and bad input.
 *
 * Liveness is the server's: a waiter that must go dead has a 300 ms timeout, and the tests poll
 * waiters() (bounded) until the server says it is dead. No test relies on a sleep.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

#define LONG_MS  30000 /* a waiter or lock that must stay live for the whole test */
#define SHORT_MS 300   /* one that must go dead soon */

static const char *base_url;
static char run_id[40];
static unsigned counter;

/* ---- helpers ---- */

static struct tl_store *open_url(const char *url)
{
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE] = "";

    if (tl__store_open(url, NULL, &tl__real_clock, NULL, &s, err) != TL_OK)
        fail_msg("open %s: %s", url, err);
    return s;
}

static struct tl_store *open_store(void)
{
    return open_url(base_url);
}

/* A URL of the test server with one more query parameter. */
static void url_with(char *buf, size_t size, const char *param)
{
    (void)snprintf(buf, size, "%s%s%s", base_url, strchr(base_url, '?') ? "&" : "?", param);
}

static void new_key(char *buf, size_t size, const char *what)
{
    (void)snprintf(buf, size, "line-%s-%s-%u", run_id, what, ++counter);
}

/* 32 lower-case hex digits, unique in this run. */
static void new_waiter(char out[33])
{
    (void)snprintf(out, 33, "%016llx%016llx", (unsigned long long)getpid(),
                   (unsigned long long)(((uint64_t)time(NULL) << 20) + ++counter));
}

struct claimer {
    const char *worker;
    const char *waiter; /* NULL: a claim that will not wait */
    int32_t priority;
    uint32_t waiter_timeout_ms;
    uint32_t lock_timeout_ms;
    enum tl_claim_mode mode;
};

static tl_status claim(struct tl_store *s, const char *key, const struct claimer *c,
                       struct tl_claim_result *res)
{
    const struct tl_claim req = {
        .key = key,
        .worker_id = c->worker,
        .node_id = "node-line",
        .task_info = "{}",
        .lock_timeout_ms = c->lock_timeout_ms ? c->lock_timeout_ms : LONG_MS,
        .mode = c->mode,
        .waiter_id = c->waiter,
        .priority = c->priority,
        .waiter_timeout_ms = c->waiter_timeout_ms ? c->waiter_timeout_ms : LONG_MS,
    };

    memset(res, 0, sizeof(*res));
    s->errmsg[0] = '\0';
    return s->ops->claim(s, &req, res);
}

/* Claims `key` as `worker` (no line) and expects to win; returns the record's token. */
static uint64_t hold(struct tl_store *s, const char *key, const char *worker, uint32_t timeout,
                     struct tl_record *held)
{
    struct tl_claim_result res;
    tl_status st =
        claim(s, key, &(struct claimer){.worker = worker, .lock_timeout_ms = timeout}, &res);

    if (st != TL_OK)
        fail_msg("hold %s: %s (%s)", key, tl_strerror(st), s->errmsg);
    *held = res.rec;
    return held->info.token;
}

/* Queues waiter `id` (expects a busy claim); returns res.ahead. */
static uint32_t queue(struct tl_store *s, const char *key, const char *worker, const char *id,
                      int32_t priority, uint32_t waiter_timeout, uint32_t *waiting)
{
    struct tl_claim_result res;
    tl_status st = claim(s, key,
                         &(struct claimer){.worker = worker,
                                           .waiter = id,
                                           .priority = priority,
                                           .waiter_timeout_ms = waiter_timeout},
                         &res);

    if (st != TL_EBUSY)
        fail_msg("queue %s on %s: %s (%s)", id, key, tl_strerror(st), s->errmsg);
    if (waiting != NULL)
        *waiting = res.waiting;
    tl__record_clear(&res.rec);
    return res.ahead;
}

static void release(struct tl_store *s, struct tl_record *held)
{
    tl_status st = s->ops->release(s, held, "done");

    if (st != TL_OK)
        fail_msg("release %s: %s (%s)", held->info.key, tl_strerror(st), s->errmsg);
    tl__record_clear(held);
}

struct line {
    struct tl_waiter **w;
    size_t n;
};

static void read_line(struct tl_store *s, const char *key, struct line *l)
{
    tl_status st = s->ops->waiters(s, key, &l->w, &l->n);

    if (st != TL_OK)
        fail_msg("waiters %s: %s (%s)", key, tl_strerror(st), s->errmsg);
}

static void free_line(struct line *l)
{
    tl_waiter_array_free(l->w, l->n);
    l->w = NULL;
    l->n = 0;
}

struct dead_wait {
    struct tl_store *s;
    const char *key;
    const char *waiter;
};

/* Whether the server judges the waiter dead (a tl_test_poll() condition). */
static bool waiter_is_dead(void *arg)
{
    struct dead_wait *d = arg;
    struct line l = {0};
    bool dead = false;

    read_line(d->s, d->key, &l);
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.w[i]->waiter_id, d->waiter) == 0)
            dead = l.w[i]->dead;
    }
    free_line(&l);
    return dead;
}

static void await_dead(struct tl_store *s, const char *key, const char *waiter)
{
    struct dead_wait d = {.s = s, .key = key, .waiter = waiter};

    if (!tl_test_poll(waiter_is_dead, &d, 20, 10000))
        fail_msg("waiter %s of %s did not go dead within 10 s", waiter, key);
}

static bool wait_turn(struct tl_store *s, const char *key, const char *waiter, uint32_t ms)
{
    bool woken = true;

    s->errmsg[0] = '\0';
    tl_status st = s->ops->wait_turn(s, key, waiter, ms, &woken);
    if (st != TL_OK)
        fail_msg("wait_turn %s: %s (%s)", waiter, tl_strerror(st), s->errmsg);
    return woken;
}

/* ---- order ---- */

static void fifo_order_and_tokens(void **state)
{
    char key[128], w[3][33];
    struct tl_store *h = open_store(), *s = open_store();
    struct tl_record held;
    uint32_t waiting = 0;

    (void)state;
    new_key(key, sizeof(key), "fifo");
    uint64_t last = hold(h, key, "holder", 0, &held);
    for (int i = 0; i < 3; i++) {
        new_waiter(w[i]);
        assert_int_equal(queue(s, key, "waiter", w[i], 0, 0, &waiting), (uint32_t)i);
        assert_int_equal(waiting, (uint32_t)i + 1);
    }
    /* A refresh keeps the place: same seq, same answer. */
    assert_int_equal(queue(s, key, "waiter", w[1], 0, 0, &waiting), 1);
    assert_int_equal(waiting, 3);
    release(h, &held);

    for (int turn = 0; turn < 3; turn++) {
        struct tl_claim_result res;
        /* Everyone behind the head is refused, the key being free. */
        for (int j = turn + 1; j < 3; j++) {
            assert_int_equal(
                claim(s, key, &(struct claimer){.worker = "waiter", .waiter = w[j]}, &res),
                TL_EBUSY);
            assert_false(res.holder_known);
            assert_int_equal(res.ahead, (uint32_t)(j - turn));
            assert_int_equal(res.waiting, (uint32_t)(3 - turn));
        }
        assert_int_equal(
            claim(s, key, &(struct claimer){.worker = "waiter", .waiter = w[turn]}, &res), TL_OK);
        assert_true(res.rec.info.token > last);
        last = res.rec.info.token;
        release(s, &res.rec);
    }
    struct line l = {0};
    read_line(s, key, &l);
    assert_int_equal(l.n, 0);
    assert_null(l.w);
    tl__store_close(h);
    tl__store_close(s);
}

static void priority_order_and_tokens(void **state)
{
    char key[128], w[5][33];
    const int32_t prio[5] = {0, 5, 5, -1, 1000};
    /* Expected order: w[4] (1000), w[1], w[2] (5, by arrival), w[0] (0), w[3] (-1). */
    const int order[5] = {4, 1, 2, 0, 3};
    struct tl_store *h = open_store(), *s = open_store();
    struct tl_record held;

    (void)state;
    new_key(key, sizeof(key), "prio");
    uint64_t last = hold(h, key, "holder", 0, &held);
    const uint32_t ahead[5] = {0, 0, 1, 3, 0}; /* of priority >= its own, when it joined */
    for (int i = 0; i < 5; i++) {
        new_waiter(w[i]);
        assert_int_equal(queue(s, key, "waiter", w[i], prio[i], 0, NULL), ahead[i]);
    }
    struct line l = {0};
    read_line(s, key, &l);
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(l.w[i]->waiter_id, w[order[i]]);
        assert_int_equal(l.w[i]->priority, prio[order[i]]);
    }
    free_line(&l);

    /* A claim of priority 5 not yet in line has the two of 5 and the one of 1000 ahead. */
    char x[33];
    new_waiter(x);
    struct tl_claim_result res;
    release(h, &held);
    assert_int_equal(
        claim(s, key, &(struct claimer){.worker = "late", .waiter = x, .priority = 5}, &res),
        TL_EBUSY);
    assert_int_equal(res.ahead, 3);
    assert_int_equal(res.waiting, 6);
    assert_int_equal(s->ops->leave(s, key, x), TL_OK);

    /* Granted in the line's order, tokens still growing. */
    for (int i = 0; i < 5; i++) {
        int who = order[i];
        assert_int_equal(
            claim(s, key,
                  &(struct claimer){.worker = "waiter", .waiter = w[who], .priority = prio[who]},
                  &res),
            TL_OK);
        assert_true(res.rec.info.token > last);
        last = res.rec.info.token;
        release(s, &res.rec);
    }
    tl__store_close(h);
    tl__store_close(s);
}

/* A claim without a waiter (one attempt) does not pass the line on a free key; nor does STEAL. */
static void no_barging_on_a_free_key(void **state)
{
    char key[128], w[33];
    struct tl_store *h = open_store(), *s = open_store();
    struct tl_record held;
    struct tl_claim_result res;

    (void)state;
    new_key(key, sizeof(key), "barge");
    new_waiter(w);
    (void)hold(h, key, "holder", 0, &held);
    assert_int_equal(queue(s, key, "waiter", w, 0, 0, NULL), 0);
    release(h, &held);

    assert_int_equal(claim(h, key, &(struct claimer){.worker = "barger"}, &res), TL_EBUSY);
    assert_false(res.holder_known);
    assert_int_equal(res.waiting, 1);
    assert_int_equal(res.ahead, 1);
    assert_int_equal(
        claim(h, key, &(struct claimer){.worker = "barger", .mode = TL_CLAIM_STEAL}, &res),
        TL_EBUSY);
    assert_false(res.holder_known);
    /* A waiter of the same priority not yet in line goes behind. */
    char late[33];
    new_waiter(late);
    assert_int_equal(queue(h, key, "late", late, 0, 0, NULL), 1);

    struct tl_record rec;
    bool found = false;
    assert_int_equal(s->ops->inspect(s, key, &rec, &found), TL_OK);
    assert_false(found);

    assert_int_equal(claim(s, key, &(struct claimer){.worker = "waiter", .waiter = w}, &res),
                     TL_OK);
    assert_int_equal(s->ops->inspect(s, key, &rec, &found), TL_OK);
    assert_true(found);
    assert_int_equal(rec.info.waiting, 1); /* `late` */
    tl__record_clear(&rec);
    release(s, &res.rec);
    assert_int_equal(claim(h, key, &(struct claimer){.worker = "late", .waiter = late}, &res),
                     TL_OK);
    release(h, &res.rec);
    tl__store_close(h);
    tl__store_close(s);
}

/* ---- dead waiters ---- */

static void dead_waiter_is_skipped_and_deleted(void **state)
{
    char key[128], dead[33], live[33];
    struct tl_store *h = open_store(), *s = open_store();
    struct tl_record held;
    struct tl_claim_result res;
    struct line l = {0};

    (void)state;
    new_key(key, sizeof(key), "dead");
    new_waiter(dead);
    new_waiter(live);
    (void)hold(h, key, "holder", 0, &held);
    assert_int_equal(queue(s, key, "short", dead, 0, SHORT_MS, NULL), 0);
    assert_int_equal(queue(s, key, "long", live, 0, 0, NULL), 1);
    await_dead(s, key, dead);

    /* Listed, marked dead, with every field. */
    read_line(s, key, &l);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.w[0]->waiter_id, dead);
    assert_true(l.w[0]->dead);
    assert_int_equal(l.w[0]->timeout_ms, SHORT_MS);
    assert_false(l.w[1]->dead);
    assert_true(l.w[0]->seq < l.w[1]->seq);
    free_line(&l);

    /* Not counted: busy because held, one live waiter. */
    assert_int_equal(claim(h, key, &(struct claimer){.worker = "other"}, &res), TL_EBUSY);
    assert_true(res.holder_known);
    assert_int_equal(res.waiting, 1);
    assert_int_equal(res.ahead, 1);
    tl__record_clear(&res.rec);
    struct tl_record rec;
    bool found = false;
    assert_int_equal(h->ops->inspect(h, key, &rec, &found), TL_OK);
    assert_true(found);
    assert_int_equal(rec.info.waiting, 1);
    tl__record_clear(&rec);

    /* The release wakes the live waiter, the dead head being skipped. */
    release(h, &held);
    assert_true(wait_turn(s, key, live, 5000));
    assert_int_equal(claim(s, key, &(struct claimer){.worker = "long", .waiter = live}, &res),
                     TL_OK);
    read_line(s, key, &l); /* the winner's claim deleted the dead one */
    assert_int_equal(l.n, 0);
    free_line(&l);
    release(s, &res.rec);
    tl__store_close(h);
    tl__store_close(s);
}

/* A waiter deleted as dead that claims again joins at the back, with a new seq. */
static void dead_waiter_requeues_at_the_back(void **state)
{
    char key[128], w1[33], w2[33];
    struct tl_store *h = open_store(), *s = open_store();
    struct tl_record held;
    struct line l = {0};
    uint32_t waiting = 0;

    (void)state;
    new_key(key, sizeof(key), "requeue");
    new_waiter(w1);
    new_waiter(w2);
    (void)hold(h, key, "holder", 0, &held);
    assert_int_equal(queue(s, key, "one", w1, 0, SHORT_MS, NULL), 0);
    read_line(s, key, &l);
    uint64_t first_seq = l.w[0]->seq;
    free_line(&l);
    assert_int_equal(queue(s, key, "two", w2, 0, 0, NULL), 1);
    await_dead(s, key, w1);
    assert_int_equal(queue(s, key, "two", w2, 0, 0, &waiting), 0); /* deletes w1 */
    assert_int_equal(waiting, 1);
    read_line(s, key, &l);
    assert_int_equal(l.n, 1);
    free_line(&l);

    /* Its wait_turn returns at once: not in line, its claim puts it back. */
    int64_t start = tl__real_mono_ms();
    assert_false(wait_turn(s, key, w1, 5000));
    assert_true(tl__real_mono_ms() - start < 3000);

    assert_int_equal(queue(s, key, "one", w1, 0, SHORT_MS, &waiting), 1);
    assert_int_equal(waiting, 2);
    read_line(s, key, &l);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.w[0]->waiter_id, w2);
    assert_string_equal(l.w[1]->waiter_id, w1);
    assert_true(l.w[1]->seq > l.w[0]->seq);
    assert_true(l.w[1]->seq > first_seq);
    free_line(&l);
    release(h, &held);
    tl__store_close(h);
    tl__store_close(s);
}

/* ---- wake-ups ---- */

struct turn_thread {
    const char *url;
    const char *key;
    char waiter[33];
    uint32_t timeout_ms;
    struct tl_store *s;
    bool started;
    bool woken;
    tl_status st;
    int64_t took_ms;
    pthread_mutex_t *mu;
};

static void *turn_main(void *arg)
{
    struct turn_thread *t = arg;
    bool woken = false;

    pthread_mutex_lock(t->mu);
    t->started = true;
    pthread_mutex_unlock(t->mu);
    int64_t start = tl__real_mono_ms();
    tl_status st = t->s->ops->wait_turn(t->s, t->key, t->waiter, t->timeout_ms, &woken);
    pthread_mutex_lock(t->mu);
    t->st = st;
    t->woken = woken;
    t->took_ms = tl__real_mono_ms() - start;
    pthread_mutex_unlock(t->mu);
    return NULL;
}

struct idle_waits {
    PGconn *c;
    int want;
};

/* Whether `want` sessions sit idle after looking at a line (blocked in wait_turn, most
 * likely): for the release to come after their LISTEN, which the test does not rely on. */
static bool waits_idle(void *arg)
{
    struct idle_waits *iw = arg;
    PGresult *r = PQexec(iw->c, "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' "
                                "AND query LIKE 'WITH me AS%'");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
              atoi(PQgetvalue(r, 0, 0)) >= iw->want;
    PQclear(r);
    return ok;
}

/* ---- leave ---- */

static void leave_deletes_and_wakes_the_next(void **state)
{
    char key[128], w[3][33];
    struct tl_store *h = open_store(), *s[3];
    struct tl_record held;
    struct line l = {0};

    (void)state;
    new_key(key, sizeof(key), "leave");
    (void)hold(h, key, "holder", 0, &held);
    for (int i = 0; i < 3; i++) {
        s[i] = open_store();
        new_waiter(w[i]);
        assert_int_equal(queue(s[i], key, "waiter", w[i], 0, 0, NULL), (uint32_t)i);
    }
    /* Leaving the middle, twice: the second finds nothing, which is fine. */
    assert_int_equal(s[1]->ops->leave(s[1], key, w[1]), TL_OK);
    assert_int_equal(s[1]->ops->leave(s[1], key, w[1]), TL_OK);
    read_line(h, key, &l);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.w[0]->waiter_id, w[0]);
    assert_string_equal(l.w[1]->waiter_id, w[2]);
    free_line(&l);

    /* The release wakes w[0]; it leaves instead of claiming; that wakes w[2], which was
     * waiting (most likely: the test does not rely on it) since before the leave. */
    release(h, &held);
    assert_true(wait_turn(s[0], key, w[0], 5000));
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct turn_thread t = {.key = key, .timeout_ms = 8000, .mu = &mu, .s = s[2]};
    pthread_t th;
    memcpy(t.waiter, w[2], sizeof(t.waiter));
    assert_int_equal(pthread_create(&th, NULL, turn_main, &t), 0);
    struct idle_waits iw = {.c = PQconnectdb(base_url), .want = 2};
    (void)tl_test_poll(waits_idle, &iw, 10, 3000);
    PQfinish(iw.c);
    assert_int_equal(s[0]->ops->leave(s[0], key, w[0]), TL_OK);
    pthread_join(th, NULL);
    assert_int_equal(t.st, TL_OK);
    assert_true(t.woken);
    if (t.took_ms >= 6000)
        fail_msg("the next waiter was woken after %lld ms", (long long)t.took_ms);
    struct tl_claim_result res;
    assert_int_equal(claim(s[2], key, &(struct claimer){.worker = "waiter", .waiter = w[2]}, &res),
                     TL_OK);
    release(s[2], &res.rec);
    for (int i = 0; i < 3; i++)
        tl__store_close(s[i]);
    tl__store_close(h);
}

/* One release wakes the head, and only it. */
static void release_wakes_only_the_head(void **state)
{
    enum { N = 3 };
    char key[128];
    struct tl_store *h = open_store();
    struct tl_record held;
    struct turn_thread t[N];
    pthread_t th[N];
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

    (void)state;
    new_key(key, sizeof(key), "head");
    (void)hold(h, key, "holder", 0, &held);
    for (int i = 0; i < N; i++) {
        t[i] = (struct turn_thread){.key = key, .timeout_ms = i == 0 ? 8000 : 1500, .mu = &mu};
        t[i].s = open_store();
        new_waiter(t[i].waiter);
        assert_int_equal(queue(t[i].s, key, "waiter", t[i].waiter, 0, 0, NULL), (uint32_t)i);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&th[i], NULL, turn_main, &t[i]), 0);
    struct idle_waits iw = {.c = PQconnectdb(base_url), .want = N};
    (void)tl_test_poll(waits_idle, &iw, 10, 3000);
    PQfinish(iw.c);
    release(h, &held);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);

    int woken = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].st, TL_OK);
        woken += t[i].woken;
    }
    assert_int_equal(woken, 1);
    assert_true(t[0].woken);
    if (t[0].took_ms >= 6000)
        fail_msg("the head was woken after %lld ms", (long long)t[0].took_ms);
    for (int i = 1; i < N; i++)
        assert_true(t[i].took_ms >= 1400); /* waited its whole timeout */

    /* A wake-up sent before the waiter waits is not lost: the next head's turn came when the
     * head won and released again. */
    struct tl_claim_result res;
    assert_int_equal(
        claim(t[0].s, key, &(struct claimer){.worker = "waiter", .waiter = t[0].waiter}, &res),
        TL_OK);
    release(t[0].s, &res.rec);
    assert_true(wait_turn(t[1].s, key, t[1].waiter, 5000));
    assert_false(wait_turn(t[2].s, key, t[2].waiter, 300));
    for (int i = 1; i < N; i++)
        assert_int_equal(t[i].s->ops->leave(t[i].s, key, t[i].waiter), TL_OK);
    for (int i = 0; i < N; i++)
        tl__store_close(t[i].s);
    tl__store_close(h);
}

/* Waiters that each wait for their turn, claim, and release at once are granted the key in
 * the line's order, by wake-ups alone (a turn timeout far longer than the test). */
struct runner {
    const char *key;
    char waiter[33];
    int32_t priority;
    struct tl_store *s;
    int *order;
    int *done;
    int id;
    tl_status st;
    pthread_mutex_t *mu;
};

static void *runner_main(void *arg)
{
    struct runner *r = arg;
    int64_t end = tl__real_mono_ms() + 20000;

    while (tl__real_mono_ms() < end) {
        bool woken = false;
        if ((r->st = r->s->ops->wait_turn(r->s, r->key, r->waiter, 20000, &woken)) != TL_OK)
            return NULL;
        if (!woken)
            continue;
        struct tl_claim_result res;
        tl_status st = claim(
            r->s, r->key,
            &(struct claimer){.worker = "runner", .waiter = r->waiter, .priority = r->priority},
            &res);
        if (st == TL_EBUSY) {
            tl__record_clear(&res.rec);
            continue;
        }
        r->st = st;
        if (st != TL_OK)
            return NULL;
        pthread_mutex_lock(r->mu);
        r->order[(*r->done)++] = r->id;
        pthread_mutex_unlock(r->mu);
        r->st = r->s->ops->release(r->s, &res.rec, "done");
        tl__record_clear(&res.rec);
        return NULL;
    }
    r->st = TL_ETIMEDOUT;
    return NULL;
}

static void hand_over_follows_the_line(void **state)
{
    enum { N = 5 };
    const int32_t prio[N] = {0, 0, 7, 0, 7};
    const int expect[N] = {2, 4, 0, 1, 3};
    char key[128];
    struct tl_store *h = open_store();
    struct tl_record held;
    struct runner r[N];
    pthread_t th[N];
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int order[N] = {0}, done = 0;

    (void)state;
    new_key(key, sizeof(key), "handover");
    uint64_t first = hold(h, key, "holder", 0, &held);
    for (int i = 0; i < N; i++) {
        r[i] = (struct runner){
            .key = key, .priority = prio[i], .order = order, .done = &done, .id = i, .mu = &mu};
        r[i].s = open_store();
        new_waiter(r[i].waiter);
        (void)queue(r[i].s, key, "runner", r[i].waiter, prio[i], 0, NULL);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&th[i], NULL, runner_main, &r[i]), 0);
    int64_t start = tl__real_mono_ms();
    release(h, &held);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    int64_t took = tl__real_mono_ms() - start;

    for (int i = 0; i < N; i++)
        assert_int_equal(r[i].st, TL_OK);
    assert_int_equal(done, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(order[i], expect[i]);
    if (took >= 15000)
        fail_msg("five hand-overs took %lld ms", (long long)took);

    /* Tokens followed the grants. */
    struct tl_event **ev = NULL;
    size_t n = 0;
    assert_int_equal(h->ops->history(h, key, 100, &ev, &n), TL_OK);
    uint64_t last = first;
    for (size_t i = 0; i < n; i++) {
        if (ev[i]->kind == TL_EVENT_ACQUIRED && ev[i]->token != first) {
            assert_true(ev[i]->token > last);
            last = ev[i]->token;
        }
    }
    tl_event_array_free(ev, n);
    for (int i = 0; i < N; i++)
        tl__store_close(r[i].s);
    tl__store_close(h);
}

/* With pooled=true there is no LISTEN: wait_turn polls, and still sees its turn come. */
static void pooled_wait_turn_polls(void **state)
{
    char key[128], url[600];
    struct tl_store *h = open_store();
    struct tl_record held;
    pthread_t th;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

    (void)state;
    url_with(url, sizeof(url), "pooled=true");
    new_key(key, sizeof(key), "pooled");
    (void)hold(h, key, "holder", 0, &held);
    struct turn_thread t = {.key = key, .timeout_ms = 8000, .mu = &mu};
    t.s = open_url(url);
    new_waiter(t.waiter);
    assert_int_equal(queue(t.s, key, "waiter", t.waiter, 0, 0, NULL), 0);
    assert_false(wait_turn(t.s, key, t.waiter, 100));
    assert_int_equal(pthread_create(&th, NULL, turn_main, &t), 0);
    release(h, &held);
    pthread_join(th, NULL);
    assert_int_equal(t.st, TL_OK);
    assert_true(t.woken);
    if (t.took_ms >= 6000)
        fail_msg("the polling waiter saw its turn after %lld ms", (long long)t.took_ms);
    assert_int_equal(t.s->ops->leave(t.s, key, t.waiter), TL_OK);
    tl__store_close(t.s);
    tl__store_close(h);
}

/* wait_turn returns by the caller's deadline, whatever its timeout. */
static void wait_turn_keeps_the_deadline(void **state)
{
    char key[128], w[33];
    struct tl_store *h = open_store(), *s = open_store();
    struct tl_record held;

    (void)state;
    new_key(key, sizeof(key), "deadline");
    new_waiter(w);
    (void)hold(h, key, "holder", 0, &held);
    assert_int_equal(queue(s, key, "waiter", w, 0, 0, NULL), 0);
    s->deadline_mono_ms = tl__real_clock.mono_ms(tl__real_clock.ud) + 300;
    int64_t start = tl__real_mono_ms();
    bool woken = true;
    assert_int_equal(s->ops->wait_turn(s, key, w, 20000, &woken), TL_OK);
    assert_false(woken);
    assert_true(tl__real_mono_ms() - start < 3000);
    s->deadline_mono_ms = 0;
    assert_int_equal(s->ops->leave(s, key, w), TL_OK);
    release(h, &held);
    tl__store_close(h);
    tl__store_close(s);
}

/* ---- steal and force ---- */

static bool holder_is_stale(void *arg)
{
    struct dead_wait *d = arg;
    struct tl_record rec;
    bool found = false, stale = false;

    if (d->s->ops->inspect(d->s, d->key, &rec, &found) == TL_OK && found) {
        stale = rec.info.stale;
        tl__record_clear(&rec);
    }
    return stale;
}

static void head_steals_a_stale_holder(void **state)
{
    char key[128], w1[33], w2[33];
    struct tl_store *h = open_store(), *s = open_store();
    struct tl_record held;
    struct tl_claim_result res;

    (void)state;
    new_key(key, sizeof(key), "steal");
    new_waiter(w1);
    new_waiter(w2);
    uint64_t token = hold(h, key, "holder", SHORT_MS, &held);
    tl__record_clear(&held); /* it dies without releasing */
    const struct claimer c1 = {.worker = "one", .waiter = w1, .mode = TL_CLAIM_STEAL};
    const struct claimer c2 = {.worker = "two", .waiter = w2, .mode = TL_CLAIM_STEAL};
    assert_int_equal(claim(s, key, &c1, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    assert_int_equal(claim(s, key, &c2, &res), TL_EBUSY);
    tl__record_clear(&res.rec);
    struct dead_wait d = {.s = s, .key = key};
    assert_true(tl_test_poll(holder_is_stale, &d, 20, 10000));

    assert_int_equal(
        claim(h, key, &(struct claimer){.worker = "barger", .mode = TL_CLAIM_STEAL}, &res),
        TL_EBUSY);
    assert_true(res.holder_known);
    assert_true(res.rec.info.stale);
    assert_int_equal(res.waiting, 2);
    assert_int_equal(res.ahead, 2);
    tl__record_clear(&res.rec);
    assert_int_equal(claim(s, key, &c2, &res), TL_EBUSY);
    assert_int_equal(res.ahead, 1);
    tl__record_clear(&res.rec);
    assert_int_equal(claim(s, key, &c1, &res), TL_OK);
    assert_true(res.took_stale);
    assert_true(res.rec.info.token > token);
    release(s, &res.rec);
    assert_true(wait_turn(s, key, w2, 5000));
    assert_int_equal(claim(s, key, &c2, &res), TL_OK);
    release(s, &res.rec);
    tl__store_close(h);
    tl__store_close(s);
}

static void force_passes_the_line(void **state)
{
    char key[128], w[33];
    struct tl_store *h = open_store(), *s = open_store();
    struct tl_record held;
    struct tl_claim_result res;
    struct line l = {0};

    (void)state;
    new_key(key, sizeof(key), "force");
    new_waiter(w);
    uint64_t token = hold(h, key, "holder", 0, &held);
    assert_int_equal(queue(s, key, "waiter", w, 0, 0, NULL), 0);
    assert_int_equal(
        claim(h, key, &(struct claimer){.worker = "admin", .mode = TL_CLAIM_FORCE}, &res), TL_OK);
    assert_true(res.took_forced);
    assert_true(res.rec.info.token > token);
    read_line(s, key, &l); /* the line is untouched */
    assert_int_equal(l.n, 1);
    assert_string_equal(l.w[0]->waiter_id, w);
    free_line(&l);
    release(h, &res.rec);
    tl__record_clear(&held);
    /* Force on a free key with a line: wins too. */
    assert_int_equal(
        claim(h, key, &(struct claimer){.worker = "admin", .mode = TL_CLAIM_FORCE}, &res), TL_OK);
    assert_false(res.took_forced);
    /* force_release wakes the head. */
    struct tl_record former;
    bool found = false;
    const struct tl_force_release fr = {
        .key = key, .worker_id = "admin2", .node_id = "n", .summary = "broken"};
    assert_int_equal(h->ops->force_release(h, &fr, &former, &found), TL_OK);
    assert_true(found);
    tl__record_clear(&former);
    tl__record_clear(&res.rec);
    assert_true(wait_turn(s, key, w, 5000));
    assert_int_equal(claim(s, key, &(struct claimer){.worker = "waiter", .waiter = w}, &res),
                     TL_OK);
    release(s, &res.rec);
    tl__store_close(h);
    tl__store_close(s);
}

/* ---- extend, waiters(), list ---- */

static void extend_records_the_new_timeout(void **state)
{
    char key[128];
    struct tl_store *s = open_store();
    struct tl_record held, rec;
    bool found = false;
    int64_t beat = 0;

    (void)state;
    new_key(key, sizeof(key), "extend");
    (void)hold(s, key, "holder", SHORT_MS, &held);
    assert_int_equal(s->ops->extend(s, &held, 60000, &beat), TL_OK);
    assert_true(beat >= held.info.heartbeat_at_ms);
    assert_int_equal(s->ops->inspect(s, key, &rec, &found), TL_OK);
    assert_true(found);
    assert_int_equal(rec.info.lock_timeout_ms, 60000);
    assert_int_equal(rec.info.heartbeat_at_ms, beat);
    tl__record_clear(&rec);
    assert_int_equal(s->ops->extend(s, &held, 0, &beat), TL_EINVAL);

    struct tl_record other;
    assert_int_equal(tl__record_copy(&other, &held), TL_OK);
    other.info.token = held.info.token + 1000;
    assert_int_equal(s->ops->extend(s, &other, 60000, &beat), TL_ELOST);
    other.info.token = held.info.token;
    release(s, &held); /* released: ours no more */
    assert_int_equal(s->ops->extend(s, &other, 60000, &beat), TL_ELOST);
    tl__record_clear(&other);
    tl__store_close(s);
}

static void waiters_lists_the_line_with_all_fields(void **state)
{
    char key[128], w[3][33];
    struct tl_store *h = open_store(), *s = open_store();
    struct tl_record held;
    struct line l = {0};

    (void)state;
    new_key(key, sizeof(key), "list");
    read_line(s, key, &l);
    assert_int_equal(l.n, 0);
    (void)hold(h, key, "holder", 0, &held);
    new_waiter(w[0]);
    new_waiter(w[1]);
    new_waiter(w[2]);
    (void)queue(s, key, "w-a", w[0], -3, 0, NULL);
    (void)queue(s, key, "w-b", w[1], 2, SHORT_MS, NULL);
    (void)queue(s, key, "w-c", w[2], 2, 0, NULL);
    await_dead(s, key, w[1]);
    read_line(s, key, &l);
    assert_int_equal(l.n, 3);
    const int order[3] = {1, 2, 0};
    const char *const workers[3] = {"w-a", "w-b", "w-c"};
    for (size_t i = 0; i < 3; i++) {
        const struct tl_waiter *x = l.w[i];
        assert_string_equal(x->key, key);
        assert_string_equal(x->waiter_id, w[order[i]]);
        assert_string_equal(x->worker_id, workers[order[i]]);
        assert_string_equal(x->node_id, "node-line");
        assert_true(x->since_ms > 1000000000000LL);
        assert_true(x->heartbeat_at_ms >= x->since_ms);
        assert_int_equal(x->timeout_ms, order[i] == 1 ? SHORT_MS : LONG_MS);
        assert_int_equal(x->dead, order[i] == 1);
        if (i > 0 && x->priority == l.w[i - 1]->priority)
            assert_true(x->seq > l.w[i - 1]->seq);
    }
    free_line(&l);

    struct tl_record **all = NULL;
    size_t n = 0;
    bool seen = false;
    assert_int_equal(s->ops->list(s, &all, &n), TL_OK);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i]->info.key, key) == 0) {
            seen = true;
            assert_int_equal(all[i]->info.waiting, 2);
        }
    }
    assert_true(seen);
    tl_info_array_free((struct tl_info **)all, n);
    release(h, &held);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s->ops->leave(s, key, w[i]), TL_OK);
    tl__store_close(h);
    tl__store_close(s);
}

/* ---- schema and input ---- */

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* A schema made before the line (the tables and functions of version 1, no waiters table):
 * opening adds what is missing, and the line works. */
static void a_schema_from_before_the_line_is_completed(void **state)
{
    char url[600], schema[64], key[128], w[33], sql[1024];
    struct tl_claim_result res;
    struct tl_record held;

    (void)state;
    (void)snprintf(schema, sizeof(schema), "tl_line_%s", run_id);
    (void)snprintf(url, sizeof(url), "schema=%s", schema);
    char full[700];
    url_with(full, sizeof(full), url);
    struct tl_store *s = open_url(full);
    tl__store_close(s);

    PGconn *c = PQconnectdb(base_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    (void)PQsetNoticeProcessor(c, quiet, NULL);
    (void)snprintf(sql, sizeof(sql),
                   "DROP TABLE \"%s\".tasklock_waiters; DROP SEQUENCE \"%s\".tasklock_waiter_seq; "
                   "DROP FUNCTION \"%s\".tasklock_claim_v2, \"%s\".tasklock_release_v2, "
                   "\"%s\".tasklock_leave_v2, \"%s\".tasklock_extend_v2, "
                   "\"%s\".tasklock_wake_head_v2, \"%s\".tasklock_line_v2, "
                   "\"%s\".tasklock_queue_v2, \"%s\".tasklock_grant_v2",
                   schema, schema, schema, schema, schema, schema, schema, schema, schema, schema);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s", PQresultErrorMessage(r));
    PQclear(r);

    s = open_url(full);
    struct tl_store *h = open_url(full);
    new_key(key, sizeof(key), "old");
    new_waiter(w);
    (void)hold(h, key, "holder", 0, &held);
    assert_int_equal(queue(s, key, "waiter", w, 0, 0, NULL), 0);
    release(h, &held);
    assert_true(wait_turn(s, key, w, 5000));
    assert_int_equal(claim(s, key, &(struct claimer){.worker = "waiter", .waiter = w}, &res),
                     TL_OK);
    release(s, &res.rec);
    tl__store_close(s);
    tl__store_close(h);

    (void)snprintf(sql, sizeof(sql), "DROP SCHEMA \"%s\" CASCADE", schema);
    PQclear(PQexec(c, sql));
    PQfinish(c);
}

static void bad_input_is_refused(void **state)
{
    char key[128], w[33];
    struct tl_store *s = open_store();
    struct tl_claim_result res;
    bool woken = true;
    const char *const bad[] = {"",
                               "0123",
                               "0123456789abcdef0123456789ABCDEF",
                               "0123456789abcdef0123456789abcdef0",
                               "0123456789abcdef0123456789abcde'",
                               "x; DROP TABLE tasklock_locks; --"};

    (void)state;
    new_key(key, sizeof(key), "bad");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(claim(s, key, &(struct claimer){.worker = "w", .waiter = bad[i]}, &res),
                         TL_EINVAL);
        assert_int_equal(s->ops->leave(s, key, bad[i]), TL_EINVAL);
        assert_int_equal(s->ops->wait_turn(s, key, bad[i], 10, &woken), TL_EINVAL);
        assert_false(woken);
    }
    new_waiter(w);
    assert_int_equal(
        claim(s, key, &(struct claimer){.worker = "w", .waiter = w, .priority = 1001}, &res),
        TL_EINVAL);
    assert_int_equal(
        claim(s, key, &(struct claimer){.worker = "w", .waiter = w, .priority = -1001}, &res),
        TL_EINVAL);
    /* Not in line, on a key never seen: no error, not woken, at once. */
    assert_int_equal(s->ops->leave(s, key, w), TL_OK);
    assert_false(wait_turn(s, key, w, 5000));
    tl__store_close(s);
}

int main(void)
{
    base_url = tl_test_env("TL_TEST_POSTGRES_URI");
    if (base_url == NULL)
        return 77;
    (void)snprintf(run_id, sizeof(run_id), "%lx_%lx", (unsigned long)time(NULL),
                   (unsigned long)getpid());

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fifo_order_and_tokens),
        cmocka_unit_test(priority_order_and_tokens),
        cmocka_unit_test(no_barging_on_a_free_key),
        cmocka_unit_test(dead_waiter_is_skipped_and_deleted),
        cmocka_unit_test(dead_waiter_requeues_at_the_back),
        cmocka_unit_test(leave_deletes_and_wakes_the_next),
        cmocka_unit_test(release_wakes_only_the_head),
        cmocka_unit_test(hand_over_follows_the_line),
        cmocka_unit_test(pooled_wait_turn_polls),
        cmocka_unit_test(wait_turn_keeps_the_deadline),
        cmocka_unit_test(head_steals_a_stale_holder),
        cmocka_unit_test(force_passes_the_line),
        cmocka_unit_test(extend_records_the_new_timeout),
        cmocka_unit_test(waiters_lists_the_line_with_all_fields),
        cmocka_unit_test(a_schema_from_before_the_line_is_completed),
        cmocka_unit_test(bad_input_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
