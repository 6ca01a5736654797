/*
 * github_line.c -- waiting in line on the GitHub store: a waiter's claim comment is its place
 * (see "the line" in github.c); wait_turn polls the issue's comments, leave deletes the claim,
 * waiters lists the line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "github_int.h"

/* ---- the line: wait_turn, leave, waiters ---- */

/*
 * Waits for waiter `waiter_id`'s turn. GitHub sends no messages: this reads the issue's
 * comments every line_poll (1 s) with If-None-Match (a 304 costs no primary rate budget),
 * counting from the last read for this waiter (its claim's too), however the caller slices its
 * waits, and reports a wake-up when the holders below ours admit it and no live waiter is
 * ahead (github_modes.c: the next claim call takes it, without a write when it holds by comment
 * order already; a writer beside readers is not woken), or when ours is gone or dead (the next
 * claim joins the line again). A read is bounded by the caller's deadline, not by the end of this
 * wait: a short wait must not cut every read short. A waiter without a place (it has none yet, or
 * it was given up) is woken at once, so that its claim puts it back.
 */
tl_status tl__github_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                               uint32_t timeout_ms, bool *woken)
{
    struct github_store *g = (struct github_store *)s;
    const struct tl_clock *ck = g->base.clock;
    int64_t number, keep_deadline = g->base.deadline_mono_ms;
    tl_status st = TL_OK;

    *woken = false;
    g->committed = false;
    if (!tl__gh_parse_key(key, &number))
        return tl__github_check_key(s, key);
    struct gh_place *p = waiter_id != NULL ? tl__gh_place_find(g, waiter_id) : NULL;
    if (p == NULL || p->number != number) {
        *woken = true;
        return TL_OK;
    }
    int64_t end = ck->mono_ms(ck->ud) + timeout_ms;
    if (keep_deadline != 0 && keep_deadline < end)
        end = keep_deadline;
    g->op_seq++;
    g->op_max_wait_ms = timeout_ms;
    for (;;) {
        int64_t now = ck->mono_ms(ck->ud);
        int64_t due = p->polled + g->line_poll_ms;
        if (now < due) {
            /* Not yet time to read: sleep until then, or to the end of this wait. */
            int64_t until = due < end ? due : end;
            if (until > now)
                tl__real_sleep_ms((uint32_t)(until - now));
            if (due >= end)
                break;
            continue;
        }
        struct gh_list *l;
        p->polled = now;
        if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
            break;
        struct gh_item *it = tl__gh_list_find(l, p->comment);
        if (it == NULL || !tl__gh_is_claim(g, it) || tl__gh_stale_at(it, l->date_ms) ||
            tl__gh_turn(g, l, it, p->steals)) {
            *woken = true;
            break;
        }
        if (ck->mono_ms(ck->ud) >= end)
            break;
    }
    return st;
}

/* Leaves the line: deletes the waiter's claim (worth a request past the caller's deadline, as
 * any withdrawal; retried later as an orphan if it fails). TL_OK if it has none. */
tl_status tl__github_leave(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct github_store *g = (struct github_store *)s;
    struct gh_place *p = waiter_id != NULL ? tl__gh_place_find(g, waiter_id) : NULL;
    int64_t number;

    g->committed = false;
    if (!tl__gh_parse_key(key, &number))
        return tl__github_check_key(s, key);
    if (p == NULL)
        return TL_OK;
    bool gone;
    int64_t id = p->comment;
    struct gh_list *l;
    tl__gh_place_forget(p);
    g->cleaning_up = true;
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    /* The dead waiters that our claim's going would let hold go first, as in a release
     * (holding already, when the hand-over came while it gave up; or, with shared holders, the
     * one claim that kept a dead reader behind it out of the holders). */
    if (tl__gh_read_list(g, number, true, &l) == TL_OK) {
        struct gh_item *it = tl__gh_list_find(l, id);
        if (it != NULL)
            (void)tl__gh_clear_dead_after(g, l, id);
        /* A copy of our place that a forced claim posted again goes too. */
        struct gh_item *dup;
        while ((dup = tl__gh_waiter_claim(g, l, waiter_id, NULL, id)) != NULL) {
            tl__gh_withdraw_claim(g, dup->id);
            dup->deleted = true;
        }
    }
    g->base.errmsg[0] = '\0';
    tl_status st = tl__gh_delete_comment(g, id, &gone);
    g->cleaning_up = false;
    if (st != TL_OK && g->norphans < ORPHANS_MAX)
        g->orphans[g->norphans++] = id;
    for (size_t i = 0; st == TL_OK && i < g->nlists; i++) {
        struct gh_item *it =
            g->lists[i]->number == number ? tl__gh_list_find(g->lists[i], id) : NULL;
        if (it != NULL)
            it->deleted = true;
    }
    return st;
}

/*
 * GitHub's times have whole seconds, and the core tells the younger of two waiters by `since`
 * (the youngest waiter of a cycle gives up): two waiters that joined in the same second would be
 * told apart by their random waiter ids. Comment ids grow with time across the repository, so
 * the claims listed with the same created_at second are ranked by id, and a waiter's `since` is
 * that second plus its rank in milliseconds (at most 999): the join order, whole seconds kept.
 */
static int64_t same_second_rank(const struct github_store *g, struct gh_list *l,
                                const struct gh_item *it)
{
    int64_t rank = 0;

    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            const struct gh_item *c = &l->pages[i].items[j];
            if (c->id < it->id && c->created_ms == it->created_ms && tl__gh_is_claim(g, c))
                rank++;
        }
    }
    return rank < 999 ? rank : 999;
}

/* Appends waiter claim `it` of `issue` (run `run`) to the array, as key `key` (the caller's
 * spelling; NULL: the issue number). An upgrader's place is a waiter of priority
 * TL_PRIORITY_UPGRADE while the claim it converts holds. */
static tl_status push_waiter(struct github_store *g, struct gh_list *l, const struct gh_item *it,
                             const char *key, int64_t issue, const struct gh_run *run,
                             struct tl_waiter ***arr, size_t *n, size_t *cap)
{
    struct tl_waiter *w = tl__waiter_new();
    int64_t of = tl__gh_upgrade_of(it);

    if (w == NULL)
        return tl__gh_oom(g);
    w->key = key != NULL ? tl__strdup(key) : tl__asprintf("%lld", (long long)issue);
    w->waiter_id = tl__strdup(it->claim.waiter);
    w->worker_id = tl__strdup(it->claim.rec.info.worker_id);
    w->node_id = tl__strdup(it->claim.rec.info.node_id);
    w->holding = tl__strdup(it->claim.holding != NULL ? it->claim.holding : "");
    w->priority = 0;
    if (of != 0 && tl__gh_in_run(run, tl__gh_list_find(l, of)))
        w->priority = TL_PRIORITY_UPGRADE;
    w->seq = (uint64_t)it->id;
    w->since_ms = it->created_ms + same_second_rank(g, l, it);
    /* Never before it joined: `since` may carry its rank within its second. */
    w->heartbeat_at_ms = it->updated_ms > w->since_ms ? it->updated_ms : w->since_ms;
    w->timeout_ms = it->claim.rec.info.lock_timeout_ms;
    w->dead = tl__gh_stale_at(it, l->date_ms);
    if (!w->key || !w->waiter_id || !w->worker_id || !w->node_id || !w->holding ||
        tl__waiter_array_push(arr, n, cap, w) != TL_OK) {
        tl__waiter_free(w);
        return tl__gh_oom(g);
    }
    return TL_OK;
}

/* The line's order (store.h): priority, then seq (the comment id), per key. */
static int cmp_waiter(const void *a, const void *b)
{
    const struct tl_waiter *x = *(const struct tl_waiter *const *)a;
    const struct tl_waiter *y = *(const struct tl_waiter *const *)b;
    int k = strcmp(x->key, y->key);

    if (k != 0)
        return k;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The line of a key: every claim but the holders', in comment order (dead waiters marked),
 * an upgrader's place first. Without a key: every issue's line, from the repository-wide
 * comment list (what tl_list reads: one request per 100 comments, 304s when unchanged). */
tl_status tl__github_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                             size_t *count)
{
    struct github_store *g = (struct github_store *)s;
    struct tl_waiter **arr = NULL;
    size_t n = 0, cap = 0;
    struct gh_list *l;
    int64_t number = 0;
    tl_status st;

    *out = NULL;
    *count = 0;
    g->committed = false;
    if (key != NULL && !tl__gh_parse_key(key, &number))
        return tl__github_check_key(s, key);
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
        return st;
    if (l == NULL)
        return TL_OK;
    struct gh_run run = {0};
    int64_t run_issue = -1;
    for (struct gh_item *it = tl__gh_next_claim(g, l, 0, 0); it != NULL && st == TL_OK;
         it = tl__gh_next_claim(g, l, it->id, 0)) {
        int64_t issue = number > 0 ? number : it->issue;
        if (issue <= 0)
            continue;
        if (issue != run_issue) {
            tl__gh_run(g, l, number > 0 ? 0 : issue, 0, &run);
            run_issue = issue;
        }
        if (tl__gh_in_run(&run, it))
            continue;
        st = push_waiter(g, l, it, key, issue, &run, &arr, &n, &cap);
    }
    if (st != TL_OK) {
        tl_waiter_array_free(arr, n);
        return st;
    }
    if (n > 1)
        qsort(arr, n, sizeof(*arr), cmp_waiter); /* NOLINT(bugprone-sizeof-expression) */
    *out = arr;
    *count = n;
    return TL_OK;
}
