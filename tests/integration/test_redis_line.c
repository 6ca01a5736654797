/*
 * test_redis_line.c -- the line (store contract version 3) of the Redis store, op by op, on the
 * server that tests/harness/start-redis started ($TL_TEST_REDIS_URI; skipped when unset):
 * FIFO and priority order, no barging, dead waiters skipped and deleted, leave, wake-ups of the
 * head only, steal by the head, force past the line, token order, extend, waiters(), and a
 * waiter queued again after it was deleted as dead. Liveness is the server's clock: a waiter
 * that must die gets a timeout of 1 s at most, and the tests poll (with a limit) until the store
 * says it is dead. Keys carry the time and process id, so runs sharing a server do not meet.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "tasklock.h"
#include "tl.h"
#include "tl_test.h"

#define LONG_MS  30000u /* a waiter or lock that must stay live for the whole test */
#define SHORT_MS 300u   /* one that must go dead (or stale) soon */
#define DYING_MS 1000u  /* one that must go dead, but only after a few more round trips */
#define POLL_MS  5000u  /* the most a test waits for the server's clock to move past SHORT_MS */

static const char *url;
static const struct tl_logger quiet = {0};
static int key_seq;
static unsigned waiter_seq;

/* ---- helpers ---- */

static struct tl_store *open_store(void)
{
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE] = "";
    tl_status st = tl__store_open(url, NULL, &tl__real_clock, &quiet, &s, err);

    if (st != TL_OK)
        fail_msg("opening %s: %s", url, err);
    return s;
}

static void new_key(char *out, size_t size)
{
    (void)snprintf(out, size, "line-%lx-%ld-%d", (unsigned long)time(NULL), (long)getpid(),
                   ++key_seq);
}

/* A waiter id as the core makes them: 32 lower-case hex digits. */
static void new_waiter(char out[33])
{
    (void)snprintf(out, 33, "%08lx%08x%016x", (unsigned long)getpid(), ++waiter_seq, 0xabcdu);
}

struct claim_args {
    const char *worker;
    const char *waiter; /* NULL: not in line */
    int32_t priority;
    uint32_t waiter_timeout_ms;
    enum tl_claim_mode mode;
    uint32_t lock_timeout_ms;
};

/* Claims `key`; res->rec must be freed with tl__record_clear(). */
static tl_status claim(struct tl_store *s, const char *key, const struct claim_args *a,
                       struct tl_claim_result *res)
{
    const struct tl_claim req = {
        .key = key,
        .worker_id = a->worker,
        .node_id = "node-1",
        .task_info = "{}",
        .lock_timeout_ms = a->lock_timeout_ms ? a->lock_timeout_ms : LONG_MS,
        .mode = a->mode,
        .waiter_id = a->waiter,
        .priority = a->priority,
        .waiter_timeout_ms = a->waiter_timeout_ms ? a->waiter_timeout_ms : LONG_MS,
    };

    memset(res, 0, sizeof(*res));
    s->deadline_mono_ms = 0;
    return s->ops->claim(s, &req, res);
}

/* A claim by `worker` (waiter `waiter`, priority `prio`) that must not win: checks waiting and
 * ahead. */
static void queue(struct tl_store *s, const char *key, const char *worker, const char *waiter,
                  int32_t prio, uint32_t wtimeout, uint32_t waiting, uint32_t ahead)
{
    struct tl_claim_result res;
    const struct claim_args a = {
        .worker = worker, .waiter = waiter, .priority = prio, .waiter_timeout_ms = wtimeout};

    assert_int_equal(claim(s, key, &a, &res), TL_EBUSY);
    assert_int_equal(res.waiting, waiting);
    assert_int_equal(res.ahead, ahead);
    tl__record_clear(&res.rec);
}

/* A claim that must win; returns the record (the caller clears it). */
static struct tl_record win(struct tl_store *s, const char *key, const char *worker,
                            const char *waiter, int32_t prio)
{
    struct tl_claim_result res;
    const struct claim_args a = {.worker = worker, .waiter = waiter, .priority = prio};

    tl_status st = claim(s, key, &a, &res);
    if (st != TL_OK)
        fail_msg("claim of %s by %s: %s (%s)", key, worker, tl_strerror(st), s->errmsg);
    assert_false(res.took_stale);
    assert_false(res.took_forced);
    return res.rec;
}

static void release(struct tl_store *s, struct tl_record *rec)
{
    s->deadline_mono_ms = 0;
    assert_int_equal(s->ops->release(s, rec, "done"), TL_OK);
    tl__record_clear(rec);
}

static void read_line(struct tl_store *s, const char *key, struct tl_waiter ***w, size_t *n)
{
    s->deadline_mono_ms = 0;
    tl_status st = s->ops->waiters(s, key, w, n);
    if (st != TL_OK)
        fail_msg("waiters of %s: %s (%s)", key, tl_strerror(st), s->errmsg);
}

static size_t line_length(struct tl_store *s, const char *key)
{
    struct tl_waiter **w = NULL;
    size_t n = 0;

    read_line(s, key, &w, &n);
    tl_waiter_array_free(w, n);
    return n;
}

/* Whether wait_turn of `waiter` returns woken within `timeout_ms`. */
static bool woken_within(struct tl_store *s, const char *key, const char *waiter,
                         uint32_t timeout_ms)
{
    bool woken = true;

    s->deadline_mono_ms = 0;
    tl_status st = s->ops->wait_turn(s, key, waiter, timeout_ms, &woken);
    if (st != TL_OK)
        fail_msg("wait_turn of %s: %s (%s)", waiter, tl_strerror(st), s->errmsg);
    return woken;
}

/* Polls until the store says waiter `waiter` of `key` is dead. */
struct dead_probe {
    struct tl_store *s;
    const char *key;
    const char *waiter;
};

static bool waiter_is_dead(void *arg)
{
    struct dead_probe *p = arg;
    struct tl_waiter **w = NULL;
    size_t n = 0;
    bool dead = false;

    read_line(p->s, p->key, &w, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(w[i]->waiter_id, p->waiter) == 0)
            dead = w[i]->dead;
    }
    tl_waiter_array_free(w, n);
    return dead;
}

static void await_dead(struct tl_store *s, const char *key, const char *waiter)
{
    struct dead_probe p = {s, key, waiter};

    assert_true(tl_test_poll(waiter_is_dead, &p, 20, POLL_MS));
}

/* ---- tests ---- */

static void fifo_order(void **state)
{
    struct tl_store *s = open_store();
    char key[64], a[33], b[33], c[33];

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(a);
    new_waiter(b);
    new_waiter(c);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    queue(s, key, "wa", a, 0, 0, 1, 0);
    queue(s, key, "wb", b, 0, 0, 2, 1);
    queue(s, key, "wc", c, 0, 0, 3, 2);
    /* A refresh keeps the place (and the first priority). */
    queue(s, key, "wb", b, 900, 0, 3, 1);
    queue(s, key, "wa", a, 0, 0, 3, 0);
    release(s, &h);

    /* Free now, but B and C are behind A: they lose, A wins. */
    queue(s, key, "wc", c, 0, 0, 3, 2);
    queue(s, key, "wb", b, 0, 0, 3, 1);
    struct tl_record ra = win(s, key, "wa", a, 0);
    assert_int_equal(line_length(s, key), 2);
    release(s, &ra);
    queue(s, key, "wc", c, 0, 0, 2, 1);
    struct tl_record rb = win(s, key, "wb", b, 0);
    release(s, &rb);
    struct tl_record rc = win(s, key, "wc", c, 0);
    assert_int_equal(line_length(s, key), 0);
    release(s, &rc);
    tl__store_close(s);
}

static void priority_order_and_waiters(void **state)
{
    struct tl_store *s = open_store();
    char key[64], w0[33], w5a[33], wm3[33], w5b[33];
    struct tl_waiter **w = NULL;
    size_t n = 0;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(w0);
    new_waiter(w5a);
    new_waiter(wm3);
    new_waiter(w5b);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    queue(s, key, "p0", w0, 0, 0, 1, 0);
    queue(s, key, "p5a", w5a, 5, 0, 2, 0);
    queue(s, key, "pm3", wm3, -3, 0, 3, 2);
    queue(s, key, "p5b", w5b, 5, 0, 4, 1);

    /* Order: 5 (first come), 5, 0, -3; every field filled. */
    read_line(s, key, &w, &n);
    assert_int_equal(n, 4);
    const char *want[] = {w5a, w5b, w0, wm3};
    const char *workers[] = {"p5a", "p5b", "p0", "pm3"};
    const int32_t prios[] = {5, 5, 0, -3};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(w[i]->waiter_id, want[i]);
        assert_string_equal(w[i]->worker_id, workers[i]);
        assert_string_equal(w[i]->node_id, "node-1");
        assert_string_equal(w[i]->key, key);
        assert_int_equal(w[i]->priority, prios[i]);
        assert_int_equal(w[i]->timeout_ms, LONG_MS);
        assert_true(w[i]->since_ms > 1700000000000);
        assert_true(w[i]->heartbeat_at_ms >= w[i]->since_ms);
        assert_false(w[i]->dead);
    }
    assert_true(w[0]->seq < w[1]->seq); /* same priority: arrival */
    assert_true(w[2]->seq < w[0]->seq); /* p0 came first, yet is behind the 5s */
    tl_waiter_array_free(w, n);

    /* inspect and list count the live waiters. */
    struct tl_record rec;
    bool found = false;
    assert_int_equal(s->ops->inspect(s, key, &rec, &found), TL_OK);
    assert_true(found);
    assert_int_equal(rec.info.waiting, 4);
    tl__record_clear(&rec);
    struct tl_record **all = NULL;
    size_t nall = 0;
    bool listed = false;
    assert_int_equal(s->ops->list(s, &all, &nall), TL_OK);
    for (size_t i = 0; i < nall; i++) {
        if (strcmp(all[i]->info.key, key) == 0) {
            assert_int_equal(all[i]->info.waiting, 4);
            listed = true;
        }
    }
    assert_true(listed);
    tl_info_array_free((struct tl_info **)all, nall);

    release(s, &h);
    const char *order[] = {w5a, w5b, w0, wm3};
    const int32_t oprio[] = {5, 5, 0, -3};
    for (size_t i = 0; i < 4; i++) {
        /* The last in line cannot go first. */
        if (i < 3)
            queue(s, key, "pm3", wm3, -3, 0, (uint32_t)(4 - i), (uint32_t)(3 - i));
        struct tl_record r = win(s, key, workers[i], order[i], oprio[i]);
        release(s, &r);
    }
    tl__store_close(s);
}

static void no_barging(void **state)
{
    struct tl_store *s = open_store();
    char key[64], a[33], low[33], high[33];
    struct tl_claim_result res;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(a);
    new_waiter(low);
    new_waiter(high);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    queue(s, key, "wa", a, 0, 0, 1, 0);
    release(s, &h);

    /* A claim that will not wait loses on the free key: A is ahead. */
    const struct claim_args plain = {.worker = "barger"};
    assert_int_equal(claim(s, key, &plain, &res), TL_EBUSY);
    assert_false(res.holder_known);
    assert_int_equal(res.waiting, 1);
    tl__record_clear(&res.rec);
    const struct claim_args steal = {.worker = "barger", .mode = TL_CLAIM_STEAL};
    assert_int_equal(claim(s, key, &steal, &res), TL_EBUSY);
    assert_false(res.holder_known);
    tl__record_clear(&res.rec);

    /* A newcomer of the same priority queues behind A; one of a higher priority goes first. */
    queue(s, key, "low", low, 0, 0, 2, 1);
    struct tl_record rh = win(s, key, "high", high, 1);
    assert_int_equal(line_length(s, key), 2);
    release(s, &rh);
    struct tl_record ra = win(s, key, "wa", a, 0);
    release(s, &ra);
    struct tl_record rl = win(s, key, "low", low, 0);
    release(s, &rl);
    tl__store_close(s);
}

static void dead_waiter_skipped_and_deleted(void **state)
{
    struct tl_store *s = open_store();
    char key[64], d[33], b[33];
    struct tl_waiter **w = NULL;
    size_t n = 0;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(d);
    new_waiter(b);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    queue(s, key, "dies", d, 0, DYING_MS, 1, 0);
    queue(s, key, "wb", b, 0, 0, 2, 1);
    await_dead(s, key, d);

    /* Listed as dead (fields still there); no longer counted. */
    read_line(s, key, &w, &n);
    assert_int_equal(n, 2);
    assert_string_equal(w[0]->waiter_id, d);
    assert_true(w[0]->dead);
    assert_int_equal(w[0]->timeout_ms, DYING_MS);
    assert_string_equal(w[0]->worker_id, "dies");
    assert_false(w[1]->dead);
    tl_waiter_array_free(w, n);
    queue(s, key, "wb", b, 0, 0, 1, 0); /* the refresh skips and deletes the dead one */
    assert_int_equal(line_length(s, key), 1);

    release(s, &h);
    struct tl_record rb = win(s, key, "wb", b, 0);
    release(s, &rb);
    tl__store_close(s);
}

static void dead_head_deleted_wakes_the_next(void **state)
{
    struct tl_store *s = open_store();
    char key[64], d[33], b[33];
    struct tl_claim_result res;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(d);
    new_waiter(b);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    queue(s, key, "dies", d, 0, DYING_MS, 1, 0);
    queue(s, key, "wb", b, 0, 0, 2, 1);
    release(s, &h); /* wakes the head, which then dies without claiming */
    assert_false(woken_within(s, key, b, 50));
    await_dead(s, key, d);

    /* A passer-by deletes the dead head: B, the new head of a free key, is woken. */
    const struct claim_args plain = {.worker = "passer"};
    assert_int_equal(claim(s, key, &plain, &res), TL_EBUSY);
    assert_int_equal(res.waiting, 1);
    tl__record_clear(&res.rec);
    assert_true(woken_within(s, key, b, 2000));
    assert_int_equal(line_length(s, key), 1);
    struct tl_record rb = win(s, key, "wb", b, 0);
    release(s, &rb);
    tl__store_close(s);
}

static void leave_wakes_the_next_head(void **state)
{
    struct tl_store *s = open_store();
    char key[64], a[33], b[33], c[33];

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(a);
    new_waiter(b);
    new_waiter(c);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    queue(s, key, "wa", a, 0, 0, 1, 0);
    queue(s, key, "wb", b, 0, 0, 2, 1);
    queue(s, key, "wc", c, 0, 0, 3, 2);

    /* Leaving while the key is held, or from the middle, wakes no one. */
    assert_int_equal(s->ops->leave(s, key, c), TL_OK);
    assert_int_equal(line_length(s, key), 2);
    assert_int_equal(s->ops->leave(s, key, c), TL_OK); /* not there: still fine */
    assert_false(woken_within(s, key, b, 50));
    release(s, &h);
    assert_false(woken_within(s, key, b, 50)); /* A is the head */

    /* The head leaves a free key: B is woken, and A's wake-up is gone with A. */
    assert_int_equal(s->ops->leave(s, key, a), TL_OK);
    assert_true(woken_within(s, key, b, 2000));
    assert_false(woken_within(s, key, a, 50));
    assert_int_equal(line_length(s, key), 1);
    struct tl_record rb = win(s, key, "wb", b, 0);
    assert_int_equal(line_length(s, key), 0);
    release(s, &rb);
    tl__store_close(s);
}

static void head_only_wakeup(void **state)
{
    struct tl_store *s = open_store();
    char key[64], ids[4][33];
    int woken = 0;

    (void)state;
    new_key(key, sizeof(key));
    struct tl_record h = win(s, key, "holder", NULL, 0);
    for (int i = 0; i < 4; i++) {
        new_waiter(ids[i]);
        queue(s, key, "w", ids[i], i == 2 ? 7 : 0, 0, (uint32_t)i + 1, i == 2 ? 0 : (uint32_t)i);
    }
    release(s, &h);
    /* Wake-ups wait for their waiter: asking after the release still finds it. */
    for (int i = 0; i < 4; i++) {
        bool got = woken_within(s, key, ids[i], 200);
        assert_true(got == (i == 2)); /* priority 7 heads the line */
        woken += got;
    }
    assert_int_equal(woken, 1);
    /* The wake-up is consumed: asking again waits out the timeout. */
    assert_false(woken_within(s, key, ids[2], 50));
    tl__store_close(s);
}

struct blocked_wait {
    const char *key;
    const char *waiter;
    bool woken;
    int64_t took_ms;
};

static void *wait_in_thread(void *arg)
{
    struct blocked_wait *bw = arg;
    struct tl_store *s = open_store();
    int64_t start = tl__real_mono_ms();

    s->deadline_mono_ms = 0;
    if (s->ops->wait_turn(s, bw->key, bw->waiter, 20000, &bw->woken) != TL_OK)
        bw->woken = false;
    bw->took_ms = tl__real_mono_ms() - start;
    tl__store_close(s);
    return NULL;
}

static void wakeup_ends_a_blocked_wait(void **state)
{
    struct tl_store *s = open_store();
    char key[64], a[33];
    pthread_t t;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(a);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    queue(s, key, "wa", a, 0, 0, 1, 0);
    struct blocked_wait bw = {.key = key, .waiter = a};
    assert_int_equal(pthread_create(&t, NULL, wait_in_thread, &bw), 0);
    tl__real_sleep_ms(100); /* not needed for correctness: either order ends the wait */
    release(s, &h);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(bw.woken);
    assert_true(bw.took_ms < 10000);
    struct tl_record ra = win(s, key, "wa", a, 0);
    release(s, &ra);
    tl__store_close(s);
}

static void wait_turn_keeps_the_deadline(void **state)
{
    struct tl_store *s = open_store();
    char key[64], a[33];
    bool woken = true;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(a);
    int64_t start = tl__real_mono_ms();
    s->deadline_mono_ms = start + 200;
    assert_int_equal(s->ops->wait_turn(s, key, a, 20000, &woken), TL_OK);
    assert_false(woken);
    int64_t took = tl__real_mono_ms() - start;
    assert_true(took >= 150);
    assert_true(took < 1500);
    /* A deadline already past returns at once; the connection still works afterwards. */
    s->deadline_mono_ms = tl__real_mono_ms() - 1;
    assert_int_equal(s->ops->wait_turn(s, key, a, 20000, &woken), TL_OK);
    assert_false(woken);
    assert_int_equal(line_length(s, key), 0);
    tl__store_close(s);
}

static void steal_by_head(void **state)
{
    struct tl_store *s = open_store();
    char key[64], a[33];
    struct tl_claim_result res;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(a);
    const struct claim_args hold = {.worker = "holder", .lock_timeout_ms = SHORT_MS};
    assert_int_equal(claim(s, key, &hold, &res), TL_OK);
    struct tl_record h = res.rec;
    queue(s, key, "wa", a, 0, 0, 1, 0);

    /* Poll the server's judgement until the holder is stale. */
    bool stale = false;
    for (int64_t end = tl__real_mono_ms() + POLL_MS; !stale && tl__real_mono_ms() < end;) {
        struct tl_record rec;
        bool found = false;
        assert_int_equal(s->ops->inspect(s, key, &rec, &found), TL_OK);
        assert_true(found);
        assert_int_equal(rec.info.waiting, 1);
        stale = rec.info.stale;
        tl__record_clear(&rec);
        if (!stale)
            tl__real_sleep_ms(20);
    }
    assert_true(stale);

    /* A normal claim by the head waits; a steal by someone not in line loses to the head. */
    const struct claim_args head_normal = {.worker = "wa", .waiter = a};
    assert_int_equal(claim(s, key, &head_normal, &res), TL_EBUSY);
    assert_true(res.holder_known);
    assert_int_equal(res.ahead, 0);
    tl__record_clear(&res.rec);
    const struct claim_args other = {.worker = "other", .mode = TL_CLAIM_STEAL};
    assert_int_equal(claim(s, key, &other, &res), TL_EBUSY);
    assert_int_equal(res.waiting, 1);
    tl__record_clear(&res.rec);
    const struct claim_args head = {.worker = "wa", .waiter = a, .mode = TL_CLAIM_STEAL};
    assert_int_equal(claim(s, key, &head, &res), TL_OK);
    assert_true(res.took_stale);
    assert_true(res.rec.info.token > h.info.token);
    assert_int_equal(line_length(s, key), 0);
    release(s, &res.rec);
    tl__record_clear(&h);
    tl__store_close(s);
}

static void force_past_the_line(void **state)
{
    struct tl_store *s = open_store();
    char key[64], a[33], b[33];
    struct tl_claim_result res;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(a);
    new_waiter(b);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    queue(s, key, "wa", a, 0, 0, 1, 0);
    queue(s, key, "wb", b, 0, 0, 2, 1);
    const struct claim_args force = {.worker = "admin", .mode = TL_CLAIM_FORCE};
    assert_int_equal(claim(s, key, &force, &res), TL_OK);
    assert_true(res.took_forced);
    assert_true(res.rec.info.token > h.info.token);
    assert_int_equal(line_length(s, key), 2); /* the line is untouched */
    release(s, &res.rec);
    tl__record_clear(&h);
    assert_true(woken_within(s, key, a, 2000));

    /* A forced release also hands the key to the head. */
    struct tl_record ra = win(s, key, "wa", a, 0);
    const struct tl_force_release fr = {
        .key = key, .worker_id = "admin", .node_id = "node-1", .summary = "broken"};
    struct tl_record former;
    bool found = false;
    memset(&former, 0, sizeof(former));
    assert_int_equal(s->ops->force_release(s, &fr, &former, &found), TL_OK);
    assert_true(found);
    tl__record_clear(&former);
    tl__record_clear(&ra);
    assert_true(woken_within(s, key, b, 2000));
    struct tl_record rb = win(s, key, "wb", b, 0);
    release(s, &rb);
    tl__store_close(s);
}

static void tokens_grow_in_grant_order(void **state)
{
    struct tl_store *s = open_store();
    char key[64], early[33], late[33];

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(early);
    new_waiter(late);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    uint64_t t0 = h.info.token;
    queue(s, key, "early", early, 0, 0, 1, 0);
    queue(s, key, "late", late, 9, 0, 2, 0);
    release(s, &h);
    struct tl_record r1 = win(s, key, "late", late, 9);
    uint64_t t1 = r1.info.token;
    release(s, &r1);
    struct tl_record r2 = win(s, key, "early", early, 0);
    assert_true(t1 > t0);
    assert_true(r2.info.token > t1);
    release(s, &r2);
    tl__store_close(s);
}

static void extend_records_the_new_timeout(void **state)
{
    struct tl_store *s = open_store();
    char key[64];
    struct tl_claim_result res;
    int64_t beat = 0;

    (void)state;
    new_key(key, sizeof(key));
    const struct claim_args a = {.worker = "holder", .lock_timeout_ms = SHORT_MS};
    assert_int_equal(claim(s, key, &a, &res), TL_OK);
    assert_int_equal(s->ops->extend(s, &res.rec, 60000, &beat), TL_OK);
    assert_true(beat >= res.rec.info.claimed_at_ms);

    struct tl_record rec;
    bool found = false;
    assert_int_equal(s->ops->inspect(s, key, &rec, &found), TL_OK);
    assert_true(found);
    assert_int_equal(rec.info.lock_timeout_ms, 60000);
    assert_int_equal(rec.info.heartbeat_at_ms, beat);
    assert_int_equal(rec.info.token, res.rec.info.token);
    tl__record_clear(&rec);

    /* Another token, or a released lock, is lost. */
    struct tl_record wrong = res.rec;
    wrong.info.token++;
    assert_int_equal(s->ops->extend(s, &wrong, 1000, &beat), TL_ELOST);
    release(s, &res.rec);
    const struct tl_record gone = {.info = {.key = key, .worker_id = "holder", .token = 1}};
    assert_int_equal(s->ops->extend(s, &gone, 1000, &beat), TL_ELOST);
    tl__store_close(s);
}

static void requeued_after_deleted_as_dead(void **state)
{
    struct tl_store *s = open_store();
    char key[64], a[33], b[33];
    struct tl_waiter **w = NULL;
    size_t n = 0;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(a);
    new_waiter(b);
    struct tl_record h = win(s, key, "holder", NULL, 0);
    queue(s, key, "wa", a, 0, DYING_MS, 1, 0);
    read_line(s, key, &w, &n);
    assert_int_equal(n, 1);
    uint64_t first_seq = w[0]->seq;
    tl_waiter_array_free(w, n);
    queue(s, key, "wb", b, 0, 0, 2, 1);
    await_dead(s, key, a);
    queue(s, key, "wb", b, 0, 0, 1, 0); /* deletes A */
    assert_int_equal(line_length(s, key), 1);

    /* A comes back: a new place, behind B. */
    queue(s, key, "wa", a, 0, LONG_MS, 2, 1);
    read_line(s, key, &w, &n);
    assert_int_equal(n, 2);
    assert_string_equal(w[0]->waiter_id, b);
    assert_string_equal(w[1]->waiter_id, a);
    assert_true(w[1]->seq > w[0]->seq);
    assert_true(w[1]->seq > first_seq);
    tl_waiter_array_free(w, n);
    release(s, &h);
    struct tl_record rb = win(s, key, "wb", b, 0);
    release(s, &rb);
    struct tl_record ra = win(s, key, "wa", a, 0);
    release(s, &ra);
    tl__store_close(s);
}

static void bad_input_is_refused(void **state)
{
    struct tl_store *s = open_store();
    char key[64], a[33];
    struct tl_claim_result res;
    bool woken = false;

    (void)state;
    new_key(key, sizeof(key));
    new_waiter(a);
    const struct claim_args bad_id = {.worker = "w", .waiter = "no:colons"};
    assert_int_equal(claim(s, key, &bad_id, &res), TL_EINVAL);
    const struct claim_args empty = {.worker = "w", .waiter = ""};
    assert_int_equal(claim(s, key, &empty, &res), TL_EINVAL);
    const struct claim_args too_high = {.worker = "w", .waiter = a, .priority = 1001};
    assert_int_equal(claim(s, key, &too_high, &res), TL_EINVAL);
    const struct claim_args too_low = {.worker = "w", .waiter = a, .priority = -1001};
    assert_int_equal(claim(s, key, &too_low, &res), TL_EINVAL);
    const struct claim_args spaced = {.worker = "a b", .waiter = a};
    assert_int_equal(claim(s, key, &spaced, &res), TL_EINVAL);
    assert_int_equal(s->ops->leave(s, key, "x\ny"), TL_EINVAL);
    assert_int_equal(s->ops->wait_turn(s, key, NULL, 10, &woken), TL_EINVAL);
    assert_false(woken);
    assert_int_equal(line_length(s, key), 0);
    tl__store_close(s);
}

int main(void)
{
    url = tl_test_env("TL_TEST_REDIS_URI");
    if (url == NULL) {
        (void)fprintf(stderr, "redis line: TL_TEST_REDIS_URI is not set; skipped\n");
        return 77;
    }
    if (tl__store_find(url) == NULL) {
        (void)fprintf(stderr, "redis line: this build has no Redis store; skipped\n");
        return 77;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fifo_order),
        cmocka_unit_test(priority_order_and_waiters),
        cmocka_unit_test(no_barging),
        cmocka_unit_test(dead_waiter_skipped_and_deleted),
        cmocka_unit_test(dead_head_deleted_wakes_the_next),
        cmocka_unit_test(leave_wakes_the_next_head),
        cmocka_unit_test(head_only_wakeup),
        cmocka_unit_test(wakeup_ends_a_blocked_wait),
        cmocka_unit_test(wait_turn_keeps_the_deadline),
        cmocka_unit_test(steal_by_head),
        cmocka_unit_test(force_past_the_line),
        cmocka_unit_test(tokens_grow_in_grant_order),
        cmocka_unit_test(extend_records_the_new_timeout),
        cmocka_unit_test(requeued_after_deleted_as_dead),
        cmocka_unit_test(bad_input_is_refused),
    };
    return cmocka_run_group_tests_name("redis line", tests, NULL, NULL);
}
