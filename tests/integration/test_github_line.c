/*
 * test_github_line.c -- the GitHub Issues store's line (store ops version 3; DESIGN.md section
 * 7), at the store's interface, on a private tl-github-server: a waiter's claim comment is its
 * place, comment order the line's order (FIFO only), a hand-over costs the waiter no write.
 *
 * Staleness comes from moving the server's clock, never from sleeping; the one sleep (a
 * waiter's refresh falling due) only makes time pass, and the wake-up test bounds its waits.
 * Each test uses its own issues of acme/widgets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_test.h"

#ifndef TL_WITH_GITHUB
int main(void)
{
    fprintf(stderr, "github line: this build has no GitHub store; skipped\n");
    return 77;
}
#else
#include <jansson.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"
#include "store.h"
#include "stores/github.h"

static struct tl_ghs srv;
#define TOKEN "line-token"
#define LONG  60000u /* a lock timeout that never runs out here */
#define SHORT 2000u  /* one that the server's clock passes (GitHub keeps whole seconds) */

/* ---- helpers ---- */

static void advance_clock(uint32_t ms)
{
    char body[64];

    (void)snprintf(body, sizeof(body), "{\"advance_ms\":%u}", ms);
    assert_int_equal(tl_ghs_admin(&srv, "POST", "/_admin/clock", body, NULL), 200);
}

/* Past a SHORT timeout, and the store's second of margin, and whole seconds. */
static void make_short_stale(void)
{
    advance_clock(SHORT + 2500);
}

static void stats_reset(void)
{
    assert_int_equal(tl_ghs_admin(&srv, "POST", "/_admin/stats/reset", NULL, NULL), 200);
}

static long stat(const char *name)
{
    return tl_ghs_stat(&srv, name);
}

static struct tl_store *open_store(void)
{
    char url[512], err[TL_ERRMSG_SIZE];
    struct tl_store *s = NULL;

    (void)snprintf(url, sizeof(url),
                   "github://acme/widgets?api_url=%s&write_budget=off&reread_delay=50ms"
                   "&line_poll=100ms",
                   srv.url);
    if (tl__store_open(url, NULL, &tl__real_clock, NULL, &s, err) != TL_OK)
        fail_msg("open: %s", err);
    return s;
}

/* A worker at the store's interface: its own connection, and its waiter id (none: a claim
 * that waits in no line). */
struct party {
    struct tl_store *s;
    char worker[32];
    char waiter[33];
    enum tl_claim_mode mode;
    uint32_t timeout;
    int32_t priority;
    bool shared; /* a shared claim, of a semaphore of `slots` when not 0 */
    uint32_t slots;
    const char *holding; /* the wait-for graph's text its claims carry (NULL: none) */
    struct tl_claim_result res;
};

static struct party *party_new(const char *worker, unsigned waiter, uint32_t timeout,
                               enum tl_claim_mode mode)
{
    struct party *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    p->s = open_store();
    (void)snprintf(p->worker, sizeof(p->worker), "%s", worker);
    if (waiter != 0)
        (void)snprintf(p->waiter, sizeof(p->waiter), "%032x", waiter);
    p->timeout = timeout;
    p->mode = mode;
    return p;
}

static void party_free(struct party *p)
{
    if (p == NULL)
        return;
    tl__record_clear(&p->res.rec);
    tl__store_close(p->s);
    free(p);
}

static tl_status claim(struct party *p, const char *key)
{
    tl__record_clear(&p->res.rec);
    memset(&p->res, 0, sizeof(p->res));
    const struct tl_claim req = {.key = key,
                                 .worker_id = p->worker,
                                 .node_id = "line-node",
                                 .task_info = "{}",
                                 .lock_timeout_ms = p->timeout,
                                 .mode = p->mode,
                                 .waiter_id = p->waiter[0] ? p->waiter : NULL,
                                 .priority = p->priority,
                                 .waiter_timeout_ms = p->timeout,
                                 .shared = p->shared,
                                 .slots = p->slots,
                                 .holding = p->holding};
    p->s->deadline_mono_ms = 0;
    p->s->errmsg[0] = '\0';
    return p->s->ops->claim(p->s, &req, &p->res);
}

static void must_win(struct party *p, const char *key)
{
    tl_status st = claim(p, key);

    if (st != TL_OK)
        fail_msg("%s: claim of %s: %s: %s", p->worker, key, tl_strerror(st), p->s->errmsg);
}

static void must_wait(struct party *p, const char *key)
{
    tl_status st = claim(p, key);

    if (st != TL_EBUSY)
        fail_msg("%s: claim of %s: %s (expected busy): %s", p->worker, key, tl_strerror(st),
                 p->s->errmsg);
}

static tl_status release(struct party *p)
{
    return p->s->ops->release(p->s, &p->res.rec, "line test");
}

static tl_status leave(struct party *p, const char *key)
{
    return p->s->ops->leave(p->s, key, p->waiter);
}

/* The key's line through `p`'s connection. */
static struct tl_waiter **line_of(struct party *p, const char *key, size_t *n)
{
    struct tl_waiter **w = NULL;

    assert_int_equal(p->s->ops->waiters(p->s, key, &w, n), TL_OK);
    return w;
}

static struct tl_record inspect(struct party *p, const char *key, bool *found)
{
    struct tl_record r = {0};

    assert_int_equal(p->s->ops->inspect(p->s, key, &r, found), TL_OK);
    return r;
}

/* The body of comment `id` of issue `n` (admin view); a copy the caller frees, or NULL. */
static char *body_of(int n, uint64_t id)
{
    char path[128], *resp = NULL, *out = NULL;
    size_t i;
    json_t *c;

    (void)snprintf(path, sizeof(path), "/_admin/comments?repo=acme/widgets&number=%d", n);
    assert_int_equal(tl_ghs_admin(&srv, "GET", path, NULL, &resp), 200);
    json_t *arr = json_loads(resp, 0, NULL);
    free(resp);
    json_array_foreach(arr, i, c)
    {
        if (out == NULL && (uint64_t)json_integer_value(json_object_get(c, "id")) == id)
            out = strdup(json_string_value(json_object_get(c, "body")));
    }
    json_decref(arr);
    return out;
}

/* ---- FIFO order, tokens, the line's listing ---- */

static void fifo_order_and_tokens(void **state)
{
    struct party *h = party_new("line-h", 0, LONG, TL_CLAIM_NORMAL);
    struct party *w[3];
    size_t n;
    bool found;

    (void)state;
    must_win(h, "1");
    for (unsigned i = 0; i < 3; i++) {
        char name[16];
        (void)snprintf(name, sizeof(name), "line-w%u", i + 1);
        w[i] = party_new(name, 0x100 + i, LONG, TL_CLAIM_NORMAL);
        must_wait(w[i], "1");
        assert_true(w[i]->res.holder_known);
        assert_string_equal(w[i]->res.rec.info.worker_id, "line-h");
        assert_int_equal(w[i]->res.waiting, i + 1);
        assert_int_equal(w[i]->res.ahead, i);
    }

    /* The line in order, every field filled. */
    struct tl_waiter **l = line_of(h, "1", &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(l[i]->key, "1");
        assert_string_equal(l[i]->waiter_id, w[i]->waiter);
        assert_string_equal(l[i]->worker_id, w[i]->worker);
        assert_string_equal(l[i]->node_id, "line-node");
        assert_int_equal(l[i]->priority, 0);
        assert_true(l[i]->seq > h->res.rec.info.token);
        assert_true(i == 0 || l[i]->seq > l[i - 1]->seq);
        assert_true(l[i]->since_ms > 0);
        assert_true(l[i]->heartbeat_at_ms >= l[i]->since_ms);
        assert_int_equal(l[i]->timeout_ms, LONG);
        assert_false(l[i]->dead);
    }
    uint64_t seq[3] = {l[0]->seq, l[1]->seq, l[2]->seq};
    tl_waiter_array_free(l, n);

    /* inspect and list count the waiting. */
    struct tl_record r = inspect(h, "1", &found);
    assert_true(found);
    assert_string_equal(r.info.worker_id, "line-h");
    assert_int_equal(r.info.waiting, 3);
    tl__record_clear(&r);
    struct tl_record **all = NULL;
    size_t nall = 0;
    assert_int_equal(h->s->ops->list(h->s, &all, &nall), TL_OK);
    bool listed = false;
    for (size_t i = 0; i < nall; i++) {
        if (strcmp(all[i]->info.key, "1") == 0) {
            listed = true;
            assert_int_equal(all[i]->info.waiting, 3);
        }
    }
    assert_true(listed);
    tl_info_array_free((struct tl_info **)all, nall);

    /* A waiter claiming again keeps its place (same seq, no new comment). */
    must_wait(w[1], "1");
    assert_int_equal(w[1]->res.ahead, 1);
    assert_int_equal(w[1]->res.waiting, 3);
    l = line_of(h, "1", &n);
    assert_int_equal(n, 3);
    assert_int_equal(l[1]->seq, seq[1]);
    tl_waiter_array_free(l, n);

    /* Hand-overs in comment order; each token is the waiter's seq, larger than the last. */
    uint64_t last = h->res.rec.info.token;
    assert_int_equal(release(h), TL_OK);
    for (unsigned i = 0; i < 3; i++) {
        must_win(w[i], "1");
        assert_int_equal(w[i]->res.rec.info.token, seq[i]);
        assert_true(w[i]->res.rec.info.token > last);
        assert_true(w[i]->res.beat_sent_mono_ms != 0); /* held without a write */
        last = w[i]->res.rec.info.token;
        if (i + 1 < 3) {
            must_wait(w[i + 1], "1");
            assert_string_equal(w[i + 1]->res.rec.info.worker_id, w[i]->worker);
            assert_int_equal(w[i + 1]->res.ahead, 0);
        }
        assert_int_equal(release(w[i]), TL_OK);
    }
    r = inspect(h, "1", &found);
    assert_false(found);
    tl__record_clear(&r);
    for (unsigned i = 0; i < 3; i++)
        party_free(w[i]);
    party_free(h);
}

static void priority_and_bad_waiter_ids_are_refused(void **state)
{
    struct party *p = party_new("line-p", 0x200, LONG, TL_CLAIM_NORMAL);

    (void)state;
    stats_reset();
    p->priority = 5;
    assert_int_equal(claim(p, "2"), TL_EINVAL);
    assert_non_null(strstr(p->s->errmsg, "FIFO only; priority must be 0"));
    p->priority = 0;
    (void)snprintf(p->waiter, sizeof(p->waiter), "%s", "NOT-HEX");
    assert_int_equal(claim(p, "2"), TL_EINVAL);
    assert_int_equal(stat("total"), 0); /* refused before any request */
    party_free(p);
}

/* ---- no barging; a claim without a waiter id reports the line ---- */

static void no_barging(void **state)
{
    struct party *h = party_new("line-h", 0, LONG, TL_CLAIM_NORMAL);
    struct party *w1 = party_new("line-w1", 0x301, LONG, TL_CLAIM_NORMAL);
    struct party *w2 = party_new("line-w2", 0x302, LONG, TL_CLAIM_NORMAL);
    struct party *x = party_new("line-x", 0, LONG, TL_CLAIM_NORMAL);
    size_t n;

    (void)state;
    must_win(h, "3");
    must_wait(w1, "3");
    must_wait(w2, "3");
    must_wait(x, "3"); /* one attempt: busy, and says how many wait */
    assert_int_equal(x->res.waiting, 2);
    assert_int_equal(x->res.ahead, 2);
    assert_int_equal(release(h), TL_OK);
    /* The key is the first waiter's now: a claim from outside the line loses to it. */
    must_wait(x, "3");
    assert_true(x->res.holder_known);
    assert_string_equal(x->res.rec.info.worker_id, "line-w1");
    assert_int_equal(x->res.waiting, 1);
    struct tl_waiter **l = line_of(x, "3", &n);
    assert_int_equal(n, 1); /* x left nothing behind */
    assert_string_equal(l[0]->worker_id, "line-w2");
    tl_waiter_array_free(l, n);
    must_win(w1, "3");
    assert_int_equal(release(w1), TL_OK);
    must_win(w2, "3");
    assert_int_equal(release(w2), TL_OK);
    party_free(h);
    party_free(w1);
    party_free(w2);
    party_free(x);
}

/* ---- dead waiters: skipped, deleted, and back in line at its end ---- */

static void dead_waiters_are_skipped_and_deleted(void **state)
{
    struct party *h = party_new("line-h", 0, LONG, TL_CLAIM_NORMAL);
    struct party *d = party_new("line-dead", 0x401, SHORT, TL_CLAIM_NORMAL);
    struct party *w = party_new("line-w", 0x402, LONG, TL_CLAIM_NORMAL);
    struct party *e = party_new("line-late", 0x403, SHORT, TL_CLAIM_NORMAL);
    size_t n;
    bool found;

    (void)state;
    must_win(h, "4");
    must_wait(d, "4");
    must_wait(w, "4");
    assert_int_equal(w->res.ahead, 1);
    make_short_stale(); /* d's place goes dead; h and w stay live */

    must_wait(w, "4");
    assert_int_equal(w->res.ahead, 0); /* the dead waiter is not ahead */
    assert_int_equal(w->res.waiting, 1);
    struct tl_waiter **l = line_of(h, "4", &n);
    assert_int_equal(n, 2);
    assert_string_equal(l[0]->worker_id, "line-dead");
    assert_true(l[0]->dead);
    assert_false(l[1]->dead);
    uint64_t dead_seq = l[0]->seq;
    tl_waiter_array_free(l, n);
    struct tl_record r = inspect(h, "4", &found);
    assert_int_equal(r.info.waiting, 1);
    tl__record_clear(&r);

    /* The release deletes the dead waiter right after the holder first: w holds at once. */
    assert_int_equal(release(h), TL_OK);
    r = inspect(h, "4", &found);
    assert_true(found);
    assert_string_equal(r.info.worker_id, "line-w");
    assert_false(r.info.stale);
    tl__record_clear(&r);
    must_win(w, "4");
    l = line_of(h, "4", &n);
    assert_int_equal(n, 0);
    tl_waiter_array_free(l, n);

    /* The dead waiter claims again: its place is gone, it joins at the end. */
    must_wait(d, "4");
    assert_int_equal(d->res.ahead, 0);
    l = line_of(h, "4", &n);
    assert_int_equal(n, 1);
    assert_string_equal(l[0]->waiter_id, d->waiter);
    assert_true(l[0]->seq > dead_seq && l[0]->seq > w->res.rec.info.token);
    uint64_t back = l[0]->seq;
    tl_waiter_array_free(l, n);

    /* A place that went dead but is still there: its waiter does not refresh it back to life
     * in front of others, it joins again at the end. */
    must_wait(e, "4");
    make_short_stale();
    must_wait(d, "4"); /* d's second place is dead too: it goes behind e's dead one */
    must_wait(e, "4");
    l = line_of(h, "4", &n);
    assert_int_equal(n, 2);
    assert_string_equal(l[0]->worker_id, "line-dead");
    assert_string_equal(l[1]->worker_id, "line-late");
    assert_true(l[0]->seq > back);
    assert_false(l[0]->dead);
    assert_false(l[1]->dead);
    tl_waiter_array_free(l, n);

    assert_int_equal(release(w), TL_OK);
    must_win(d, "4");
    assert_int_equal(release(d), TL_OK);
    must_win(e, "4");
    assert_int_equal(release(e), TL_OK);
    party_free(h);
    party_free(d);
    party_free(w);
    party_free(e);
}

/* ---- leave ---- */

static void leave_deletes_the_place(void **state)
{
    struct party *h = party_new("line-h", 0, LONG, TL_CLAIM_NORMAL);
    struct party *w1 = party_new("line-w1", 0x501, LONG, TL_CLAIM_NORMAL);
    struct party *w2 = party_new("line-w2", 0x502, LONG, TL_CLAIM_NORMAL);
    size_t n;
    bool found;

    (void)state;
    must_win(h, "5");
    must_wait(w1, "5");
    must_wait(w2, "5");
    assert_int_equal(leave(w1, "5"), TL_OK);
    assert_int_equal(leave(w1, "5"), TL_OK); /* not in line: fine */
    struct tl_waiter **l = line_of(h, "5", &n);
    assert_int_equal(n, 1);
    assert_string_equal(l[0]->worker_id, "line-w2");
    tl_waiter_array_free(l, n);
    must_wait(w2, "5");
    assert_int_equal(w2->res.ahead, 0);

    /* Leaving after the hand-over came frees the key. */
    assert_int_equal(release(h), TL_OK);
    assert_int_equal(leave(w2, "5"), TL_OK);
    struct tl_record r = inspect(h, "5", &found);
    assert_false(found);
    tl__record_clear(&r);
    party_free(h);
    party_free(w1);
    party_free(w2);
}

/* ---- wake-ups: the head only ---- */

struct waiting {
    struct party *p;
    bool woken;
    tl_status st;
};

static void *wait_thread(void *arg)
{
    struct waiting *w = arg;

    w->p->s->deadline_mono_ms = 0;
    w->st = w->p->s->ops->wait_turn(w->p->s, "6", w->p->waiter, 2500, &w->woken);
    return NULL;
}

static void only_the_head_is_woken(void **state)
{
    struct party *h = party_new("line-h", 0, LONG, TL_CLAIM_NORMAL);
    struct waiting w[3];
    pthread_t t[3];

    (void)state;
    must_win(h, "6");
    for (unsigned i = 0; i < 3; i++) {
        char name[16];
        (void)snprintf(name, sizeof(name), "line-w%u", i + 1);
        w[i] = (struct waiting){.p = party_new(name, 0x601 + i, LONG, TL_CLAIM_NORMAL)};
        must_wait(w[i].p, "6");
    }
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
    assert_int_equal(release(h), TL_OK);
    int woken = 0;
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].st, TL_OK);
        woken += w[i].woken;
    }
    assert_int_equal(woken, 1);
    assert_true(w[0].woken);
    must_win(w[0].p, "6");

    /* A turn that came before the waiter waits is not lost. */
    assert_int_equal(release(w[0].p), TL_OK);
    int64_t t0 = tl__real_mono_ms();
    bool now = false;
    assert_int_equal(w[1].p->s->ops->wait_turn(w[1].p->s, "6", w[1].p->waiter, 5000, &now), TL_OK);
    assert_true(now);
    assert_true(tl__real_mono_ms() - t0 < 2500);
    must_win(w[1].p, "6");
    assert_int_equal(release(w[1].p), TL_OK);
    must_win(w[2].p, "6");
    assert_int_equal(release(w[2].p), TL_OK);
    for (unsigned i = 0; i < 3; i++)
        party_free(w[i].p);
    party_free(h);
}

/* ---- steal and force ---- */

static void the_head_steals_a_stale_holder(void **state)
{
    struct party *h = party_new("line-h", 0, SHORT, TL_CLAIM_NORMAL);
    struct party *w0 = party_new("line-w0", 0x700, LONG, TL_CLAIM_NORMAL);
    struct party *s1 = party_new("line-thief", 0x701, LONG, TL_CLAIM_STEAL);
    int64_t beat;

    (void)state;
    must_win(h, "7");
    must_wait(w0, "7");
    must_wait(s1, "7");
    make_short_stale();
    must_wait(s1, "7"); /* stale holder, but a live waiter is ahead */
    assert_int_equal(s1->res.ahead, 1);
    must_wait(w0, "7"); /* the head may not steal in normal mode */
    assert_true(w0->res.holder_known);
    assert_true(w0->res.rec.info.stale);
    assert_int_equal(leave(w0, "7"), TL_OK);
    must_win(s1, "7");
    assert_true(s1->res.took_stale);
    assert_true(s1->res.rec.info.token > h->res.rec.info.token);
    assert_int_equal(h->s->ops->renew(h->s, &h->res.rec, 1, &beat), TL_ELOST);
    assert_int_equal(release(s1), TL_OK);
    party_free(h);
    party_free(w0);
    party_free(s1);
}

static void force_goes_past_the_line(void **state)
{
    struct party *h = party_new("line-h", 0, LONG, TL_CLAIM_NORMAL);
    struct party *w = party_new("line-w", 0x801, LONG, TL_CLAIM_NORMAL);
    struct party *f = party_new("line-admin", 0, LONG, TL_CLAIM_FORCE);
    int64_t beat;
    size_t n;

    (void)state;
    must_win(h, "8");
    must_wait(w, "8");
    must_win(f, "8");
    assert_true(f->res.took_forced);
    assert_int_equal(h->s->ops->renew(h->s, &h->res.rec, 1, &beat), TL_ELOST);
    /* Comment order cannot put a forced claim before the line: the waiters' places go, and
     * they join the line again behind it. */
    must_wait(w, "8");
    assert_string_equal(w->res.rec.info.worker_id, "line-admin");
    struct tl_waiter **l = line_of(f, "8", &n);
    assert_int_equal(n, 1);
    assert_true(l[0]->seq > f->res.rec.info.token);
    tl_waiter_array_free(l, n);
    assert_int_equal(release(f), TL_OK);
    must_win(w, "8");
    assert_int_equal(release(w), TL_OK);
    party_free(h);
    party_free(w);
    party_free(f);
}

/* ---- extend; a hand-over's holder is marked held by its first heartbeat ---- */

static void extend_records_the_new_timeout(void **state)
{
    struct party *h = party_new("line-h", 0, SHORT, TL_CLAIM_NORMAL);
    struct party *w = party_new("line-w", 0x901, SHORT, TL_CLAIM_NORMAL);
    int64_t beat = 0;
    bool found;

    (void)state;
    must_win(h, "9");
    assert_int_equal(h->s->ops->extend(h->s, &h->res.rec, LONG, &beat), TL_OK);
    assert_true(beat > 0);
    make_short_stale();
    struct tl_record r = inspect(h, "9", &found);
    assert_true(found);
    assert_int_equal(r.info.lock_timeout_ms, LONG);
    assert_false(r.info.stale);
    tl__record_clear(&r);
    struct tl_record other = {0};
    assert_int_equal(tl__record_copy(&other, &h->res.rec), TL_OK);
    other.info.token += 1;
    assert_int_equal(h->s->ops->extend(h->s, &other, LONG, &beat), TL_ELOST);
    tl__record_clear(&other);

    /* A waiter's claim says it is in line; holding by the hand-over, its first heartbeat
     * writes the lock line. */
    must_wait(w, "9");
    assert_int_equal(release(h), TL_OK);
    must_win(w, "9");
    char *b = body_of(9, w->res.rec.info.token);
    assert_non_null(b);
    assert_non_null(strstr(b, "In line for the lock"));
    free(b);
    assert_int_equal(w->s->ops->renew(w->s, &w->res.rec, 1, &beat), TL_OK);
    b = body_of(9, w->res.rec.info.token);
    assert_non_null(strstr(b, "Locked by `line-w`"));
    assert_non_null(strstr(b, "\"held\":true"));
    free(b);
    assert_int_equal(release(w), TL_OK);
    party_free(h);
    party_free(w);
}

/* ---- what the line costs ---- */

static void requests_per_hand_over(void **state)
{
    struct party *h = party_new("line-h", 0, LONG, TL_CLAIM_NORMAL);
    struct party *w = party_new("line-w", 0xa01, 4000, TL_CLAIM_NORMAL);
    bool woken = false;

    (void)state;
    must_win(h, "10");
    stats_reset();
    must_wait(w, "10");
    print_message("joining the line: %ld requests, %ld writes\n", stat("total"), stat("writes"));
    assert_int_equal(stat("writes"), 1); /* its claim: its place */

    /* Claiming again before its refresh is due: reads only, 304s. */
    stats_reset();
    must_wait(w, "10");
    print_message("waiting, refresh not due: %ld requests, %ld writes, %ld 304\n", stat("total"),
                  stat("writes"), stat("not_modified"));
    assert_int_equal(stat("writes"), 0);
    assert_int_equal(stat("total"), 1);
    assert_int_equal(stat("not_modified"), 1);

    /* Due (a quarter of its 4 s timeout, with slack): one edit. */
    tl__real_sleep_ms(800);
    stats_reset();
    must_wait(w, "10");
    print_message("waiting, refresh due: %ld requests, %ld writes\n", stat("total"),
                  stat("writes"));
    assert_int_equal(stat("writes"), 1);
    assert_int_equal(stat("PATCH /repos/{o}/{r}/issues/comments/{id}"), 1);

    /* Waiting: 304s (but the first read after its own edit). */
    stats_reset();
    assert_int_equal(w->s->ops->wait_turn(w->s, "10", w->waiter, 350, &woken), TL_OK);
    assert_false(woken);
    print_message("wait_turn 350 ms: %ld requests, %ld 304\n", stat("total"), stat("not_modified"));
    assert_int_equal(stat("writes"), 0);
    assert_true(stat("total") - stat("not_modified") <= 1);

    /* The hand-over. */
    stats_reset();
    assert_int_equal(release(h), TL_OK);
    long rel = stat("total"), relw = stat("writes");
    stats_reset();
    assert_int_equal(w->s->ops->wait_turn(w->s, "10", w->waiter, 5000, &woken), TL_OK);
    assert_true(woken);
    must_win(w, "10");
    print_message("hand-over: release %ld requests (%ld writes); the waiter %ld requests "
                  "(%ld writes)\n",
                  rel, relw, stat("total"), stat("writes"));
    assert_int_equal(stat("writes"), 0);
    assert_true(rel <= 4);
    assert_int_equal(release(w), TL_OK);
    party_free(h);
    party_free(w);
}

/* ---- shared holders and semaphores (github_modes.c) ---- */

static struct party *reader_new(const char *worker, unsigned waiter, uint32_t timeout,
                                uint32_t slots)
{
    struct party *p = party_new(worker, waiter, timeout, TL_CLAIM_NORMAL);

    p->shared = true;
    p->slots = slots;
    return p;
}

/* Adds comment `body` to issue `n` as `login`, through the admin API. */
static void add_comment(int n, const char *login, const char *body)
{
    json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "repo", "acme/widgets", "number", n, "login",
                          login, "body", body);
    char *text = json_dumps(o, JSON_COMPACT);

    assert_int_equal(tl_ghs_admin(&srv, "POST", "/_admin/comments", text, NULL), 201);
    free(text);
    json_decref(o);
}

/* A claim comment exactly as tasklock wrote them before shared holders (no mode in "lock"),
 * of worker `worker`, waiting in line as `waiter` when not NULL. */
static char *old_claim(const char *worker, const char *nonce, const char *waiter)
{
    char w[64] = "";

    if (waiter != NULL)
        (void)snprintf(w, sizeof(w), ",\"waiter\":\"%s\"", waiter);
    return tl__asprintf(
        "\xf0\x9f\x94\x92 Locked by `%s` on `old-node` since 2026-11-26T23:28:01Z (lock timeout "
        "1m00s; last heartbeat 2026-11-26T23:29:16Z, #0).\n\n<!-- tasklock {\"lock\":{"
        "\"worker_id\":\"%s\",\"node_id\":\"old-node\",\"claimed_at\":\"2026-11-26T23:28:01.123Z\","
        "\"heartbeat_last\":\"2026-11-26T23:29:16.000Z\",\"task_info\":{},\"lock_timeout_ms\":"
        "60000},\"v\":1,\"nonce\":\"%s\",\"seq\":0%s} -->",
        worker, worker, nonce, w);
}

/* The holders of `key` through `p`'s connection. */
static struct tl_record **holders_of(struct party *p, const char *key, size_t *n)
{
    struct tl_record **h = NULL;

    assert_int_equal(p->s->ops->holders(p->s, key, &h, n), TL_OK);
    return h;
}

static void holders_free(struct tl_record **h, size_t n)
{
    tl_info_array_free((struct tl_info **)h, n);
}

static size_t count_holders(struct party *p, const char *key)
{
    size_t n = 0;
    struct tl_record **h = holders_of(p, key, &n);

    holders_free(h, n);
    return n;
}

/* Claims written by the previous version (exclusive holders and waiters without a mode) keep
 * their meaning: an old holder excludes readers, an old waiter queued behind readers stays
 * ahead of later ones and comes to hold when they leave. */
static void old_layout_claims_keep_working(void **state)
{
    struct party *r1 = reader_new("modes-r1", 0, LONG, 0);
    struct party *r2 = reader_new("modes-r2", 0, LONG, 0);
    struct party *r3 = reader_new("modes-r3", 0, LONG, 0);
    size_t n;
    bool found;

    (void)state;
    char *body = old_claim("old-holder", "0123456789abcdef0123456789abcdef", NULL);
    add_comment(11, "tasklock-bot", body);
    free(body);
    must_wait(r1, "11");
    assert_true(r1->res.holder_known);
    assert_string_equal(r1->res.rec.info.worker_id, "old-holder");
    assert_int_equal(r1->res.rec.info.mode, TL_EXCLUSIVE);
    struct tl_record **h = holders_of(r1, "11", &n);
    assert_int_equal(n, 1);
    assert_int_equal(h[0]->info.mode, TL_EXCLUSIVE);
    uint64_t old_token = h[0]->info.token;
    holders_free(h, n);

    /* Broken by an administrator as any holder; then readers share the key. */
    const struct tl_force_release fr = {
        .key = "11", .worker_id = "admin", .node_id = "n", .token = old_token, .summary = "x"};
    struct tl_record former = {0};
    assert_int_equal(r1->s->ops->force_release(r1->s, &fr, &former, &found), TL_OK);
    assert_true(found);
    assert_string_equal(former.info.worker_id, "old-holder");
    tl__record_clear(&former);
    must_win(r1, "11");
    must_win(r2, "11");
    assert_int_equal(count_holders(r3, "11"), 2);

    /* An old waiter behind the readers: later readers wait behind it. */
    body = old_claim("old-waiter", "fedcba9876543210fedcba9876543210",
                     "00000000000000000000000000000b11");
    add_comment(11, "tasklock-bot", body);
    free(body);
    must_wait(r3, "11");
    assert_int_equal(r3->res.waiting, 1);
    assert_int_equal(count_holders(r3, "11"), 2);
    struct tl_record r = inspect(r3, "11", &found);
    assert_true(found);
    assert_int_equal(r.info.holders, 2);
    assert_int_equal(r.info.waiting, 1);
    tl__record_clear(&r);

    /* The readers leave: the old waiter holds, by comment order, alone. */
    assert_int_equal(release(r1), TL_OK);
    must_wait(r3, "11");
    assert_int_equal(release(r2), TL_OK);
    r = inspect(r3, "11", &found);
    assert_true(found);
    assert_string_equal(r.info.worker_id, "old-waiter");
    assert_int_equal(r.info.mode, TL_EXCLUSIVE);
    assert_int_equal(r.info.holders, 1);
    tl__record_clear(&r);
    must_wait(r3, "11");
    party_free(r1);
    party_free(r2);
    party_free(r3);
}

/* What a tasklock that predates shared holders makes of them: it ignores the mode (every field
 * it reads is where it was), takes the lowest trusted claim for the holder and the later ones for
 * its line, and so sees the key held, never free. Its parser is the one here minus the mode and
 * slots: the markers with those removed are claims all the same. */
static void an_older_reader_sees_shared_holders_as_held(void **state)
{
    struct party *a = reader_new("modes-a", 0, LONG, 2);
    struct party *b = reader_new("modes-b", 0, LONG, 2);
    char path[128], *resp = NULL;
    size_t i, claims = 0;
    json_t *c;
    uint64_t lowest = 0;

    (void)state;
    must_win(a, "12");
    must_win(b, "12");
    (void)snprintf(path, sizeof(path), "/_admin/comments?repo=acme/widgets&number=12");
    assert_int_equal(tl_ghs_admin(&srv, "GET", path, NULL, &resp), 200);
    json_t *arr = json_loads(resp, 0, NULL);
    free(resp);
    assert_non_null(arr);
    json_array_foreach(arr, i, c)
    {
        const char *bd = json_string_value(json_object_get(c, "body"));
        if (bd == NULL || strstr(bd, "<!-- tasklock {") == NULL)
            continue;
        /* The older reader's view: the same marker without the new fields. */
        char *old = strdup(bd), *at;
        assert_non_null(old);
        assert_non_null(strstr(old, ",\"mode\":\"shared\""));
        while ((at = strstr(old, ",\"mode\":\"shared\"")) != NULL)
            memmove(at, at + strlen(",\"mode\":\"shared\""),
                    strlen(at + strlen(",\"mode\":\"shared\"")) + 1);
        while ((at = strstr(old, ",\"slots\":2")) != NULL)
            memmove(at, at + strlen(",\"slots\":2"), strlen(at + strlen(",\"slots\":2")) + 1);
        struct tl_gh_claim cl;
        char why[TL_ERRMSG_SIZE];
        assert_int_equal(tl__gh_parse_claim(old, strlen(old), &cl, why), TL_GH_CLAIM);
        assert_int_equal(cl.rec.info.mode, TL_EXCLUSIVE);
        tl__gh_claim_clear(&cl);
        free(old);
        uint64_t id = (uint64_t)json_integer_value(json_object_get(c, "id"));
        if (claims++ == 0)
            lowest = id;
    }
    json_decref(arr);
    assert_int_equal(claims, 2);
    /* The lowest claim, which the older reader takes for the holder, is a live holder's. */
    assert_int_equal(lowest, a->res.rec.info.token);
    assert_true(b->res.rec.info.token > lowest);
    assert_int_equal(release(a), TL_OK);
    assert_int_equal(release(b), TL_OK);
    party_free(a);
    party_free(b);
}

/* A claim comment of a trusted account whose mode or slots are garbled is no claim: it neither
 * holds nor waits, the store says why in its log, and nothing crashes. */
static void garbled_modes_are_not_claims(void **state)
{
    struct party *w = party_new("modes-w", 0, LONG, TL_CLAIM_NORMAL);
    struct party *r = reader_new("modes-r", 0, LONG, 0);
    static const char *const bad[] = {",\"mode\":\"reader\"", ",\"mode\":\"shared\",\"slots\":-1",
                                      ",\"mode\":\"shared\",\"slots\":\"3\"", ",\"slots\":2"};
    size_t n;
    bool found;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body = old_claim("forger", "0123456789abcdef0123456789abcdef", NULL);
        char *at = strstr(body, "\"lock_timeout_ms\":60000");
        assert_non_null(at);
        at += strlen("\"lock_timeout_ms\":60000");
        char *forged = tl__asprintf("%.*s%s%s", (int)(at - body), body, bad[i], at);
        add_comment(13, "tasklock-bot", forged);
        free(body);
        tl__free(forged);
    }
    struct tl_record rec = inspect(r, "13", &found);
    assert_false(found);
    tl__record_clear(&rec);
    assert_int_equal(count_holders(r, "13"), 0);
    struct tl_waiter **l = line_of(r, "13", &n);
    assert_int_equal(n, 0);
    tl_waiter_array_free(l, n);
    must_win(r, "13");
    assert_int_equal(release(r), TL_OK);
    must_win(w, "13");
    assert_int_equal(release(w), TL_OK);
    party_free(w);
    party_free(r);
}

/* A waiter leaving from between the holders and a dead reader would let that reader hold (a
 * stale holder only a steal takes): the dead reader's claim goes first. */
static void a_dead_reader_does_not_join_the_holders(void **state)
{
    struct party *r1 = reader_new("modes-r1", 0, LONG, 0);
    struct party *w = party_new("modes-w", 0x1401, LONG, TL_CLAIM_NORMAL);
    struct party *r2 = reader_new("modes-dead", 0x1402, SHORT, 0);
    size_t n;

    (void)state;
    must_win(r1, "14");
    must_wait(w, "14");
    must_wait(r2, "14");
    assert_int_equal(r2->res.ahead, 1);
    make_short_stale(); /* r2's place goes dead; r1 and w stay live */
    assert_int_equal(leave(w, "14"), TL_OK);
    struct tl_record **h = holders_of(r1, "14", &n);
    assert_int_equal(n, 1);
    assert_string_equal(h[0]->info.worker_id, "modes-r1");
    holders_free(h, n);
    struct tl_waiter **l = line_of(r1, "14", &n);
    assert_int_equal(n, 0); /* the dead reader's claim was deleted */
    tl_waiter_array_free(l, n);
    assert_int_equal(release(r1), TL_OK);
    party_free(r1);
    party_free(w);
    party_free(r2);
}

struct turn {
    struct party *p;
    const char *key;
    uint32_t ms;
    bool woken;
    tl_status st;
};

static void *turn_thread(void *arg)
{
    struct turn *t = arg;

    t->p->s->deadline_mono_ms = 0;
    t->st = t->p->s->ops->wait_turn(t->p->s, t->key, t->p->waiter, t->ms, &t->woken);
    return NULL;
}

/* wait_turn's wake-up is "admitted, and no live waiter ahead": when a writer leaves, every
 * reader queued behind it is woken (each holds by comment order already), and a writer queued
 * behind them is not (its own busy claims would not wake it either). */
static void readers_behind_a_writer_are_all_woken(void **state)
{
    struct party *x = party_new("modes-x", 0, LONG, TL_CLAIM_NORMAL);
    struct turn t[3] = {
        {.p = reader_new("modes-r1", 0x1501, LONG, 0), .key = "15", .ms = 2500},
        {.p = reader_new("modes-r2", 0x1502, LONG, 0), .key = "15", .ms = 2500},
        {.p = party_new("modes-w2", 0x1503, LONG, TL_CLAIM_NORMAL), .key = "15", .ms = 2500},
    };
    pthread_t th[3];

    (void)state;
    must_win(x, "15");
    for (size_t i = 0; i < 3; i++)
        must_wait(t[i].p, "15");
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, turn_thread, &t[i]), 0);
    assert_int_equal(release(x), TL_OK);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t[i].st, TL_OK);
    }
    assert_true(t[0].woken);
    assert_true(t[1].woken);
    assert_false(t[2].woken);
    must_win(t[0].p, "15");
    must_win(t[1].p, "15");
    must_wait(t[2].p, "15");
    assert_int_equal(t[2].p->res.rec.info.holders, 2);

    /* The readers leave: now the writer's turn. */
    assert_int_equal(release(t[0].p), TL_OK);
    assert_int_equal(release(t[1].p), TL_OK);
    t[2].ms = 5000;
    turn_thread(&t[2]);
    assert_true(t[2].woken);
    must_win(t[2].p, "15");
    assert_int_equal(release(t[2].p), TL_OK);
    for (size_t i = 0; i < 3; i++)
        party_free(t[i].p);
    party_free(x);
}

/* A reader pays what any claim pays, however many hold beside it; reading the holders is one
 * list read; a full semaphore's and a mismatched claim's refusals write nothing. */
static void a_reader_pays_no_request_per_holder(void **state)
{
    struct party *first = reader_new("modes-first", 0, LONG, 5);
    struct party *more[3], *late = reader_new("modes-late", 0, LONG, 5);
    struct party *odd = reader_new("modes-odd", 0, LONG, 2);

    (void)state;
    /* The parties share the process's session (one clock): the first claim posts it. Posted
     * before the measure, so that the first reader pays what the last does. */
    must_win(first, "16");
    assert_int_equal(release(first), TL_OK);
    stats_reset();
    must_win(first, "16");
    long one = stat("total"), one_w = stat("writes");
    for (size_t i = 0; i < 3; i++) {
        char name[16];
        (void)snprintf(name, sizeof(name), "modes-m%zu", i);
        more[i] = reader_new(name, 0, LONG, 5);
        must_win(more[i], "16");
    }
    stats_reset();
    must_win(late, "16");
    print_message("a reader beside none: %ld requests (%ld writes); beside 4: %ld (%ld)\n", one,
                  one_w, stat("total"), stat("writes"));
    assert_int_equal(stat("total"), one);
    assert_int_equal(stat("writes"), one_w);

    stats_reset();
    assert_int_equal(count_holders(odd, "16"), 5);
    assert_int_equal(stat("total"), 1);

    stats_reset();
    assert_int_equal(claim(odd, "16"), TL_EINVAL);
    assert_non_null(strstr(odd->s->errmsg, "5 slots"));
    odd->slots = 5;
    assert_int_equal(claim(odd, "16"), TL_EBUSY); /* 5 of 5 */
    assert_int_equal(odd->res.rec.info.holders, 5);
    assert_int_equal(stat("writes"), 0);

    assert_int_equal(release(first), TL_OK);
    assert_int_equal(release(late), TL_OK);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(release(more[i]), TL_OK);
        party_free(more[i]);
    }
    party_free(first);
    party_free(late);
    party_free(odd);
}

/* A racer process: on "g" claims `key` (shared of `slots`, or exclusive), answers 'W' (won),
 * 'B' (busy) or 'E'; on "r" releases what it won and answers 'r'; on "q" (or EOF) ends. */
static void racer_child(const char *key, bool shared, uint32_t slots, int i, int cmd, int res)
{
    char name[32], c;

    (void)snprintf(name, sizeof(name), "modes-proc-%d", i);
    struct party *p =
        shared ? reader_new(name, 0, LONG, slots) : party_new(name, 0, LONG, TL_CLAIM_NORMAL);
    bool won = false;
    while (read(cmd, &c, 1) == 1 && c != 'q') {
        char a = 'r';
        if (c == 'g') {
            tl_status st = claim(p, key);
            won = st == TL_OK;
            a = won ? 'W' : st == TL_EBUSY ? 'B' : 'E';
            if (a == 'E')
                fprintf(stderr, "%s: %s: %s\n", name, tl_strerror(st), p->s->errmsg);
        } else if (won && release(p) != TL_OK) {
            a = 'E';
        }
        if (c != 'g')
            won = false;
        if (write(res, &a, 1) != 1)
            break;
    }
    party_free(p);
    _exit(0);
}

/* Processes (not threads: nothing in a process coordinates them) racing for a semaphore of 3
 * slots: exactly 3 win each round; racing readers and writers: never both. */
static void processes_racing_for_shared_keys(void **state)
{
    enum { N = 8, ROUNDS = 3 };
    static const char *const keys[] = {"17", "18"};

    (void)state;
    for (size_t k = 0; k < 2; k++) {
        pid_t pids[N];
        int cmd[N], res[N];
        bool shared[N];
        for (int i = 0; i < N; i++) {
            int c[2], r[2];
            shared[i] = k == 0 || i % 2 == 1;
            assert_int_equal(pipe(c), 0);
            assert_int_equal(pipe(r), 0);
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                close(c[1]);
                close(r[0]);
                racer_child(keys[k], shared[i], k == 0 ? 3 : 0, i, c[0], r[1]);
            }
            close(c[0]);
            close(r[1]);
            cmd[i] = c[1];
            res[i] = r[0];
        }
        for (int round = 0; round < ROUNDS; round++) {
            int readers = 0, writers = 0;
            char b;
            for (int i = 0; i < N; i++)
                assert_int_equal(write(cmd[i], "g", 1), 1);
            for (int i = 0; i < N; i++) {
                if (read(res[i], &b, 1) != 1 || b == 'E')
                    fail_msg("key %s round %d: racer %d failed", keys[k], round, i);
                readers += b == 'W' && shared[i];
                writers += b == 'W' && !shared[i];
            }
            if (k == 0 && readers != 3)
                fail_msg("round %d: %d of %d processes got a semaphore of 3 slots", round, readers,
                         N);
            if (k == 1 && !(writers == 1 && readers == 0) && !(writers == 0 && readers >= 1))
                fail_msg("round %d: %d writers and %d readers held at once", round, writers,
                         readers);
            for (int i = 0; i < N; i++)
                assert_int_equal(write(cmd[i], "r", 1), 1);
            for (int i = 0; i < N; i++)
                assert_true(read(res[i], &b, 1) == 1 && b == 'r');
        }
        for (int i = 0; i < N; i++) {
            int status;
            assert_int_equal(write(cmd[i], "q", 1), 1);
            close(cmd[i]);
            close(res[i]);
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
    }
}

/* ---- upgrades, downgrades and the wait-for graph (github_convert.c) ---- */

/* Converts `p`'s lock to shared or exclusive; with `wait`, an upgrade waits in line (p's waiter
 * id). On TL_OK p->res.rec is the new record. */
static tl_status convert(struct party *p, bool shared, bool wait)
{
    struct tl_record held;

    assert_int_equal(tl__record_copy(&held, &p->res.rec), TL_OK);
    const struct tl_claim req = {.key = held.info.key,
                                 .worker_id = p->worker,
                                 .node_id = "line-node",
                                 .task_info = "{}",
                                 .lock_timeout_ms = p->timeout,
                                 .mode = p->mode,
                                 .waiter_id = wait ? p->waiter : NULL,
                                 .priority = TL_PRIORITY_UPGRADE,
                                 .waiter_timeout_ms = p->timeout,
                                 .shared = shared,
                                 .holding = p->holding};
    struct tl_claim_result res = {0};
    p->s->deadline_mono_ms = 0;
    p->s->errmsg[0] = '\0';
    tl_status st = p->s->ops->convert(p->s, &held, &req, &res);
    if (st == TL_OK) {
        tl__record_clear(&p->res.rec);
        p->res = res;
    } else {
        tl__record_clear(&res.rec);
    }
    tl__record_clear(&held);
    return st;
}

/* An upgrader waits at the head (a waiter of priority TL_PRIORITY_UPGRADE that no newcomer
 * passes) and is woken exactly when its shared claim is the only holder left: not while
 * another reader holds. */
static void an_upgrader_is_woken_when_it_is_the_only_holder(void **state)
{
    struct party *a = reader_new("conv-a", 0x2101, LONG, 0);
    struct party *b = reader_new("conv-b", 0, LONG, 0);
    struct party *c = reader_new("conv-c", 0, LONG, 0);
    struct party *d = reader_new("conv-d", 0, LONG, 0);
    size_t n;

    (void)state;
    must_win(a, "21");
    must_win(b, "21");
    must_win(c, "21");
    uint64_t shared_token = a->res.rec.info.token;
    (void)snprintf(a->waiter, sizeof(a->waiter), "%032x", 0x2102); /* the upgrade's own */
    assert_int_equal(convert(a, false, true), TL_EBUSY);
    struct tl_waiter **w = line_of(b, "21", &n);
    assert_int_equal(n, 1);
    assert_string_equal(w[0]->worker_id, "conv-a");
    assert_int_equal(w[0]->priority, TL_PRIORITY_UPGRADE);
    assert_false(w[0]->dead);
    tl_waiter_array_free(w, n);
    assert_int_equal(count_holders(b, "21"), 3); /* it keeps its shared hold meanwhile */
    must_wait(d, "21");                          /* no reader passes it */

    struct turn t = {.p = a, .key = "21", .ms = 2500};
    assert_int_equal(release(b), TL_OK);
    turn_thread(&t);
    assert_int_equal(t.st, TL_OK);
    assert_false(t.woken); /* c still holds */
    assert_int_equal(convert(a, false, true), TL_EBUSY);

    assert_int_equal(release(c), TL_OK);
    t.ms = 5000;
    turn_thread(&t);
    assert_true(t.woken);
    assert_int_equal(convert(a, false, true), TL_OK);
    assert_int_equal(a->res.rec.info.mode, TL_EXCLUSIVE);
    assert_true(a->res.rec.info.token > shared_token);
    assert_int_equal(count_holders(d, "21"), 1);
    w = line_of(d, "21", &n);
    assert_int_equal(n, 0); /* its place became the lock */
    tl_waiter_array_free(w, n);
    assert_int_equal(release(a), TL_OK);
    party_free(a);
    party_free(b);
    party_free(c);
    party_free(d);
}

/* An upgrade goes ahead of the waiters that stood behind its shared claim: they are posted
 * again behind the new claim (the same place, moved), and come to hold after it. */
static void an_upgrade_moves_the_waiters_behind_it(void **state)
{
    struct party *a = reader_new("conv-m", 0, LONG, 0);
    struct party *w = party_new("conv-w", 0x2201, LONG, TL_CLAIM_NORMAL);
    size_t n;

    (void)state;
    must_win(a, "22");
    must_wait(w, "22");
    struct tl_waiter **line = line_of(a, "22", &n);
    assert_int_equal(n, 1);
    uint64_t place = line[0]->seq;
    tl_waiter_array_free(line, n);

    assert_int_equal(convert(a, false, false), TL_OK); /* alone: at once */
    assert_int_equal(a->res.rec.info.mode, TL_EXCLUSIVE);
    assert_true(a->res.rec.info.token > place);
    line = line_of(a, "22", &n);
    assert_int_equal(n, 1);
    assert_string_equal(line[0]->worker_id, "conv-w");
    assert_true(line[0]->seq > a->res.rec.info.token); /* moved behind the upgrade */
    tl_waiter_array_free(line, n);
    must_wait(w, "22"); /* finds its place moved, and waits */

    /* The downgrade moves it again: a writer still waits beside a reader. */
    assert_int_equal(convert(a, true, false), TL_OK);
    assert_int_equal(a->res.rec.info.mode, TL_SHARED);
    must_wait(w, "22");
    assert_int_equal(release(a), TL_OK);
    must_win(w, "22");
    assert_true(w->res.rec.info.token > a->res.rec.info.token);
    assert_int_equal(release(w), TL_OK);
    party_free(a);
    party_free(w);
}

static const struct tl_waiter *find_waiter(struct tl_waiter **w, size_t n, const char *worker)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(w[i]->worker_id, worker) == 0)
            return w[i];
    }
    return NULL;
}

/* A waiter's holding text is in its claim, replaced when it changes (the refresh writes it at
 * once, not only when due); the waiters of every issue are listed with their keys. */
static void holding_is_kept_and_every_line_is_listed(void **state)
{
    struct party *h1 = party_new("hold-h1", 0, LONG, TL_CLAIM_NORMAL);
    struct party *h2 = party_new("hold-h2", 0, LONG, TL_CLAIM_NORMAL);
    struct party *v = party_new("hold-v", 0x2301, LONG, TL_CLAIM_NORMAL);
    struct party *u = party_new("hold-u", 0x2401, LONG, TL_CLAIM_NORMAL);
    struct party *plain = party_new("hold-p", 0x2402, LONG, TL_CLAIM_NORMAL);
    size_t n;

    (void)state;
    must_win(h1, "23");
    must_win(h2, "24");
    v->holding = "x 24 7";
    must_wait(v, "23");
    struct tl_waiter **w = line_of(h1, "23", &n);
    assert_int_equal(n, 1);
    assert_string_equal(w[0]->holding, "x 24 7");
    tl_waiter_array_free(w, n);
    v->holding = "x 24 7 25 9";
    must_wait(v, "23");
    w = line_of(h1, "23", &n);
    assert_string_equal(w[0]->holding, "x 24 7 25 9");
    tl_waiter_array_free(w, n);

    u->holding = "s 23 5";
    must_wait(u, "24");
    must_wait(plain, "24"); /* holds nothing: "" */
    assert_int_equal(h1->s->ops->waiters(h1->s, NULL, &w, &n), TL_OK);
    const struct tl_waiter *fv = find_waiter(w, n, "hold-v");
    const struct tl_waiter *fu = find_waiter(w, n, "hold-u");
    const struct tl_waiter *fp = find_waiter(w, n, "hold-p");
    assert_non_null(fv);
    assert_non_null(fu);
    assert_non_null(fp);
    assert_string_equal(fv->key, "23");
    assert_string_equal(fu->key, "24");
    assert_string_equal(fu->holding, "s 23 5");
    assert_string_equal(fp->holding, "");
    assert_true(fu->since_ms < fp->since_ms); /* joined first, even within one second */
    tl_waiter_array_free(w, n);

    assert_int_equal(leave(v, "23"), TL_OK);
    assert_int_equal(leave(u, "24"), TL_OK);
    assert_int_equal(leave(plain, "24"), TL_OK);
    assert_int_equal(release(h1), TL_OK);
    assert_int_equal(release(h2), TL_OK);
    party_free(h1);
    party_free(h2);
    party_free(v);
    party_free(u);
    party_free(plain);
}

/* The audit trail: an upgrade and a downgrade are events of their own ("from token N"), and
 * stay so once the lock is released (the completion comment records the conversion). */
static void the_trail_tells_upgrades_and_downgrades(void **state)
{
    struct party *a = reader_new("trail-a", 0, LONG, 0);
    struct tl_event **ev = NULL;
    size_t n = 0;

    (void)state;
    must_win(a, "25");
    uint64_t t0 = a->res.rec.info.token;
    assert_int_equal(convert(a, false, false), TL_OK);
    uint64_t t1 = a->res.rec.info.token;
    assert_int_equal(convert(a, true, false), TL_OK);
    uint64_t t2 = a->res.rec.info.token;
    assert_true(t0 < t1 && t1 < t2);
    assert_int_equal(release(a), TL_OK);

    assert_int_equal(a->s->ops->history(a->s, "25", 50, &ev, &n), TL_OK);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        char want[64];
        if (ev[i]->kind == TL_EVENT_ACQUIRED && ev[i]->token == t0)
            seen |= 1;
        (void)snprintf(want, sizeof(want), "from token %llu", (unsigned long long)t0);
        if (ev[i]->kind == TL_EVENT_UPGRADED && ev[i]->token == t1 && ev[i]->detail != NULL &&
            strcmp(ev[i]->detail, want) == 0)
            seen |= 2;
        (void)snprintf(want, sizeof(want), "from token %llu", (unsigned long long)t1);
        if (ev[i]->kind == TL_EVENT_DOWNGRADED && ev[i]->token == t2 && ev[i]->detail != NULL &&
            strcmp(ev[i]->detail, want) == 0)
            seen |= 4;
        if (ev[i]->kind == TL_EVENT_RELEASED && ev[i]->token == t2)
            seen |= 8;
    }
    tl_event_array_free(ev, n);
    assert_int_equal(seen, 15);
    party_free(a);
}

/* A stealing upgrader's turn comes when the other holders left are stale (they do not count for
 * it); a plain upgrader's does not (they do). */
static void a_stealing_upgrader_is_woken_when_the_others_are_stale(void **state)
{
    struct party *a = reader_new("steal-a", 0x2601, LONG, 0);
    struct party *n = reader_new("steal-n", 0x2701, LONG, 0);
    struct party *b = reader_new("steal-b", 0, SHORT, 0);
    struct party *c = reader_new("steal-c", 0, SHORT, 0);

    (void)state;
    a->mode = TL_CLAIM_STEAL;
    must_win(a, "26");
    must_win(b, "26");
    must_win(n, "27");
    must_win(c, "27");
    /* An upgrade is a call of its own: its waiter id is not the acquire's. */
    (void)snprintf(a->waiter, sizeof(a->waiter), "%032x", 0x2602);
    (void)snprintf(n->waiter, sizeof(n->waiter), "%032x", 0x2702);
    assert_int_equal(convert(a, false, true), TL_EBUSY);
    assert_int_equal(convert(n, false, true), TL_EBUSY);
    make_short_stale(); /* b and c; the upgraders and their places have a long timeout */

    struct turn ta = {.p = a, .key = "26", .ms = 5000};
    struct turn tn = {.p = n, .key = "27", .ms = 2500};
    turn_thread(&ta);
    assert_true(ta.woken);
    turn_thread(&tn);
    assert_int_equal(tn.st, TL_OK);
    assert_false(tn.woken);
    assert_int_equal(convert(a, false, true), TL_OK);
    assert_int_equal(a->res.rec.info.mode, TL_EXCLUSIVE);
    assert_int_equal(count_holders(b, "26"), 1); /* the stale reader was displaced */
    assert_int_equal(convert(n, false, true), TL_EBUSY);

    assert_int_equal(release(a), TL_OK);
    assert_int_equal(leave(n, "27"), TL_OK);
    assert_int_equal(release(n), TL_OK);
    assert_int_equal(release(c), TL_OK);
    party_free(a);
    party_free(n);
    party_free(b);
    party_free(c);
}

/* An upgrader whose shared claim is broken meanwhile holds nothing: its turn comes at once, its
 * next call learns TL_ELOST, and its place is gone. */
static void an_upgrader_that_holds_nothing_learns_it(void **state)
{
    struct party *a = reader_new("lost-a", 0, LONG, 0);
    struct party *b = reader_new("lost-b", 0, LONG, 0);
    struct tl_record former = {0};
    bool found = false;
    size_t n;

    (void)state;
    must_win(a, "28");
    must_win(b, "28");
    (void)snprintf(a->waiter, sizeof(a->waiter), "%032x", 0x2801);
    assert_int_equal(convert(a, false, true), TL_EBUSY);
    const struct tl_force_release fr = {.key = "28",
                                        .worker_id = "admin",
                                        .node_id = "n",
                                        .token = a->res.rec.info.token,
                                        .summary = "broken"};
    assert_int_equal(b->s->ops->force_release(b->s, &fr, &former, &found), TL_OK);
    assert_true(found);
    tl__record_clear(&former);

    struct turn t = {.p = a, .key = "28", .ms = 5000};
    turn_thread(&t);
    assert_true(t.woken);
    assert_int_equal(convert(a, false, true), TL_ELOST);
    struct tl_waiter **w = line_of(b, "28", &n);
    assert_int_equal(n, 0); /* its place went with it */
    tl_waiter_array_free(w, n);
    assert_int_equal(count_holders(b, "28"), 1);
    assert_int_equal(release(b), TL_OK);
    party_free(a);
    party_free(b);
}

/* ---- every waiter of the repository (waiters without a key) ---- */

#define ALL_FIRST 31 /* issues 31..45: every_waiter_of_the_repository_is_listed */
#define ALL_N     10 /* waiters planted before the first read */
#define ALL_MORE  6  /* and after it: 5 on issues of their own, 1 behind the first waiter */
#define FIVE      46 /* issues 46..50: a_connection_keeps_four_places_in_line */

/* A store of its own whose lists have `per_page` comments a page. */
static struct tl_store *open_store_per_page(unsigned per_page)
{
    char url[512], err[TL_ERRMSG_SIZE];
    struct tl_store *s = NULL;

    (void)snprintf(url, sizeof(url),
                   "github://acme/widgets?api_url=%s&write_budget=off&per_page=%u", srv.url,
                   per_page);
    if (tl__store_open(url, NULL, &tl__real_clock, NULL, &s, err) != TL_OK)
        fail_msg("open: %s", err);
    return s;
}

/* Every waiter of the repository as `s` lists it (waiters, no key), checked against the
 * parties `w[0..n)` that should be in it: each listed once, with its key and holding text.
 * Waiters of other tests are left out of the count. */
static void all_listed(struct tl_store *s, struct party **w, const int *issue, size_t n)
{
    struct tl_waiter **l = NULL;
    size_t nl = 0, ours = 0;
    char key[16];

    s->errmsg[0] = '\0';
    if (s->ops->waiters(s, NULL, &l, &nl) != TL_OK)
        fail_msg("waiters: %s", s->errmsg);
    for (size_t i = 0; i < nl; i++)
        ours += strncmp(l[i]->worker_id, "all-", 4) == 0;
    for (size_t i = 0; i < n; i++) {
        size_t seen = 0;
        (void)snprintf(key, sizeof(key), "%d", issue[i]);
        for (size_t j = 0; j < nl; j++) {
            if (strcmp(l[j]->waiter_id, w[i]->waiter) != 0)
                continue;
            seen++;
            assert_string_equal(l[j]->key, key);
            assert_string_equal(l[j]->holding, w[i]->holding);
            assert_false(l[j]->dead);
        }
        if (seen != 1)
            fail_msg("waiter %s (%s, #%s) listed %zu times among %zu", w[i]->waiter, w[i]->worker,
                     key, seen, nl);
    }
    if (ours != n)
        fail_msg("%zu of this test's waiters listed, %zu expected", ours, n);
    tl_waiter_array_free(l, nl);
}

/* The waiters of every issue, read from the repository-wide comment list: all of them, when
 * the list has many pages, when a first read was cached and more waiters joined since (the
 * pages read before answer 304), and when a waiter left from the middle of it. Each waiter has
 * a connection of its own, as each manager has (see a_connection_keeps_four_places_in_line). */
static void every_waiter_of_the_repository_is_listed(void **state)
{
    enum { N = ALL_N + ALL_MORE };
    struct party *h = party_new("all-holder", 0, LONG, TL_CLAIM_NORMAL);
    struct party *w[N];
    struct tl_record held[N - 1];
    char holding[N][32], key[16];
    int issue[N];
    struct tl_store *paged = open_store_per_page(5); /* the list in pages of 5 comments */
    struct tl_store *whole = open_store();           /* in pages of 100 */

    (void)state;
    memset(held, 0, sizeof(held));
    for (int i = 0; i < N - 1; i++) { /* issues 31..45 held */
        (void)snprintf(key, sizeof(key), "%d", ALL_FIRST + i);
        must_win(h, key);
        assert_int_equal(tl__record_copy(&held[i], &h->res.rec), TL_OK);
    }
    for (int i = 0; i < N; i++) {
        char worker[32];
        (void)snprintf(worker, sizeof(worker), "all-w%d", i);
        w[i] = party_new(worker, 0x3100u + (unsigned)i, LONG, TL_CLAIM_NORMAL);
        (void)snprintf(holding[i], sizeof(holding[i]), "x all-z%d %d", i, i + 1);
        w[i]->holding = holding[i];
        /* The first ALL_N on issues of their own, then ALL_MORE - 1 more, then one behind the
         * first waiter. */
        issue[i] = i < N - 1 ? ALL_FIRST + i : ALL_FIRST;
    }

    for (int i = 0; i < ALL_N; i++) {
        (void)snprintf(key, sizeof(key), "%d", issue[i]);
        must_wait(w[i], key);
    }
    all_listed(paged, w, issue, ALL_N);
    all_listed(whole, w, issue, ALL_N);

    /* More join; the pages read before are asked for with If-None-Match. */
    for (int i = ALL_N; i < N; i++) {
        (void)snprintf(key, sizeof(key), "%d", issue[i]);
        must_wait(w[i], key);
    }
    stats_reset();
    all_listed(paged, w, issue, N);
    assert_true(stat("status:304") > 0); /* the cached pages were used */
    all_listed(whole, w, issue, N);

    /* One leaves from the middle: every page after it changes. */
    (void)snprintf(key, sizeof(key), "%d", issue[3]);
    assert_int_equal(leave(w[3], key), TL_OK);
    struct party *gone = w[3];
    memmove(&w[3], &w[4], (N - 4) * sizeof(w[0]));
    memmove(&issue[3], &issue[4], (N - 4) * sizeof(issue[0]));
    all_listed(paged, w, issue, N - 1);
    all_listed(whole, w, issue, N - 1);
    struct tl_store *fresh = open_store_per_page(5); /* nothing cached */
    all_listed(fresh, w, issue, N - 1);

    for (int i = 0; i < N - 1; i++) {
        (void)snprintf(key, sizeof(key), "%d", issue[i]);
        assert_int_equal(leave(w[i], key), TL_OK);
        party_free(w[i]);
    }
    party_free(gone);
    for (int i = 0; i < N - 1; i++) {
        assert_int_equal(h->s->ops->release(h->s, &held[i], "line test"), TL_OK);
        tl__record_clear(&held[i]);
    }
    tl__store_close(fresh);
    tl__store_close(whole);
    tl__store_close(paged);
    party_free(h);
}

/* One connection keeps the places of at most 4 waiters (it serves one thread, which waits in
 * one line at a time): a fifth place gives up the oldest, whose claim is deleted, and the
 * repository's waiters are then the 4 the connection kept. bench_modes plants its waiters 4
 * to a connection on GitHub for this reason. */
static void a_connection_keeps_four_places_in_line(void **state)
{
    struct party *h = party_new("five-holder", 0, LONG, TL_CLAIM_NORMAL);
    struct party *p = party_new("five-planter", 0, LONG, TL_CLAIM_NORMAL);
    struct tl_record held[5];
    char key[16], waiter[5][33];
    int issue[5];

    (void)state;
    memset(held, 0, sizeof(held));
    for (int i = 0; i < 5; i++) {
        issue[i] = FIVE + i;
        (void)snprintf(key, sizeof(key), "%d", issue[i]);
        must_win(h, key);
        assert_int_equal(tl__record_copy(&held[i], &h->res.rec), TL_OK);
    }
    /* One party, one connection: five waiters, one after the other, in five lines. */
    for (int i = 0; i < 5; i++) {
        (void)snprintf(waiter[i], sizeof(waiter[i]), "%032x", 0x3200u + (unsigned)i);
        memcpy(p->waiter, waiter[i], sizeof(p->waiter));
        (void)snprintf(key, sizeof(key), "%d", issue[i]);
        must_wait(p, key);
        struct tl_waiter **l = NULL;
        size_t nl = 0, ours = 0;
        assert_int_equal(h->s->ops->waiters(h->s, NULL, &l, &nl), TL_OK);
        for (size_t j = 0; j < nl; j++) {
            if (strcmp(l[j]->worker_id, "five-planter") != 0)
                continue;
            ours++;
            if (i == 4) /* the first place was given up */
                assert_string_not_equal(l[j]->waiter_id, waiter[0]);
        }
        assert_int_equal(ours, i < 4 ? i + 1 : 4);
        tl_waiter_array_free(l, nl);
    }
    for (int i = 0; i < 5; i++) {
        memcpy(p->waiter, waiter[i], sizeof(p->waiter));
        (void)snprintf(key, sizeof(key), "%d", issue[i]);
        assert_int_equal(leave(p, key), TL_OK); /* the given-up one: nothing to do */
        assert_int_equal(h->s->ops->release(h->s, &held[i], "line test"), TL_OK);
        tl__record_clear(&held[i]);
    }
    party_free(p);
    party_free(h);
}

int main(void)
{
    /* The rate limit is not what these tests are about (test_github_limits.c). */
    const char *const args[] = {"--repo",       "acme/widgets", "--issues",
                                "50",           "--token",      "tasklock-bot=line-token",
                                "--rate-limit", "1000000",      NULL};
    const struct CMUnitTest tests[] = {
        /* First, while the process has no other threads to fork with. */
        cmocka_unit_test(processes_racing_for_shared_keys),
        cmocka_unit_test(fifo_order_and_tokens),
        cmocka_unit_test(priority_and_bad_waiter_ids_are_refused),
        cmocka_unit_test(no_barging),
        cmocka_unit_test(dead_waiters_are_skipped_and_deleted),
        cmocka_unit_test(leave_deletes_the_place),
        cmocka_unit_test(only_the_head_is_woken),
        cmocka_unit_test(the_head_steals_a_stale_holder),
        cmocka_unit_test(force_goes_past_the_line),
        cmocka_unit_test(extend_records_the_new_timeout),
        cmocka_unit_test(requests_per_hand_over),
        cmocka_unit_test(old_layout_claims_keep_working),
        cmocka_unit_test(an_older_reader_sees_shared_holders_as_held),
        cmocka_unit_test(garbled_modes_are_not_claims),
        cmocka_unit_test(a_dead_reader_does_not_join_the_holders),
        cmocka_unit_test(readers_behind_a_writer_are_all_woken),
        cmocka_unit_test(a_reader_pays_no_request_per_holder),
        cmocka_unit_test(an_upgrader_is_woken_when_it_is_the_only_holder),
        cmocka_unit_test(an_upgrade_moves_the_waiters_behind_it),
        cmocka_unit_test(holding_is_kept_and_every_line_is_listed),
        cmocka_unit_test(the_trail_tells_upgrades_and_downgrades),
        cmocka_unit_test(a_stealing_upgrader_is_woken_when_the_others_are_stale),
        cmocka_unit_test(an_upgrader_that_holds_nothing_learns_it),
        cmocka_unit_test(every_waiter_of_the_repository_is_listed),
        cmocka_unit_test(a_connection_keeps_four_places_in_line),
    };

    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", TOKEN, 1); /* NOLINT(concurrency-mt-unsafe): before any thread */
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tl_ghs_stop(&srv);
    return rc;
}
#endif
