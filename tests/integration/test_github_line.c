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

#include "spawn.h"
#include "store.h"

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
                                 .waiter_timeout_ms = p->timeout};
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
        if ((uint64_t)json_integer_value(json_object_get(c, "id")) == id)
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

int main(void)
{
    const char *const args[] = {"--repo",  "acme/widgets",        "--issues", "20",
                                "--token", "tasklock-bot=" TOKEN, NULL};
    const struct CMUnitTest tests[] = {
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
    };

    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", TOKEN, 1);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tl_ghs_stop(&srv);
    return rc;
}
#endif
