/*
 * github_modes.c -- shared holders and semaphores on the GitHub store (store ops version 5;
 * DESIGN.md section 9; docs/github.md "Shared holders and semaphores").
 *
 * A shared claim is a claim comment whose marker's "lock" says "mode":"shared" (and "slots":N
 * for a semaphore); a claim without a mode is exclusive, as every claim written before. Comment
 * order still decides everything: the holders of an issue are the *leading run* of its claims
 * that the modes admit: the lowest claim (stale or not, as before), and, when it is shared, the
 * shared claims right after it with the same slots, up to the slots. An exclusive claim holds
 * only when it is the lowest. The claims after the run are the line: live ones wait, stale ones
 * are dead waiters. So a reader costs what any claim costs (one post, the list reads, one edit
 * per heartbeat), and reading the holders is the same list read as before: no request per
 * holder.
 *
 * Older readers ignore the mode and see the lowest claim as the holder and the other shared
 * holders as waiters in line: they see the key held, never free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "github_int.h"

/* The lowest claim of `issue` (0: any) with `after` < id < `below` (0: no bound). */
static struct gh_item *next_of(const struct github_store *g, struct gh_list *l, int64_t issue,
                               int64_t after, int64_t below)
{
    struct gh_item *best = NULL;

    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!tl__gh_is_claim(g, it) || (issue > 0 && it->issue != issue) || it->id <= after ||
                (below > 0 && it->id >= below))
                continue;
            if (best == NULL || it->id < best->id)
                best = it;
        }
    }
    return best;
}

/* ---- claims in comment order ---- */

/* The holder as `l` shows it: the lowest claim (of `issue` in a repository-wide list; 0: any)
 * below `below` (0: any); NULL: none. `*live` (may be NULL): how many of those claims are live
 * (the holder included, if live). */
struct gh_item *tl__gh_line_holder(const struct github_store *g, struct gh_list *l, int64_t issue,
                                   int64_t below, uint32_t *live)
{
    struct gh_item *best = NULL;
    uint32_t n = 0;

    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!tl__gh_is_claim(g, it) || (issue > 0 && it->issue != issue) ||
                (below > 0 && it->id >= below))
                continue;
            n += !tl__gh_stale_at(it, l->date_ms);
            if (best == NULL || it->id < best->id)
                best = it;
        }
    }
    if (live != NULL)
        *live = n;
    return best;
}

/* Live waiters of a key in `l`: its live claims after the holders (github_modes.c). */
uint32_t tl__gh_line_waiting(const struct github_store *g, struct gh_list *l, int64_t issue,
                             const struct gh_item *holder)
{
    struct gh_run r;

    (void)holder;
    tl__gh_run(g, l, issue, 0, &r);
    return (uint32_t)r.live_after;
}

/* The lowest claim with `after` < id < `below` (0: no bound): the claims in id order. */
struct gh_item *tl__gh_next_claim(const struct github_store *g, struct gh_list *l, int64_t after,
                                  int64_t below)
{
    struct gh_item *best = NULL;

    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!tl__gh_is_claim(g, it) || it->id <= after || (below > 0 && it->id >= below))
                continue;
            if (best == NULL || it->id < best->id)
                best = it;
        }
    }
    return best;
}

/* The lowest claim of waiter `waiter` (with nonce `nonce`, if not NULL) other than `except`. */
struct gh_item *tl__gh_waiter_claim(const struct github_store *g, struct gh_list *l,
                                    const char *waiter, const char *nonce, int64_t except)
{
    struct gh_item *best = NULL;

    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!tl__gh_is_claim(g, it) || it->id == except ||
                strcmp(it->claim.waiter, waiter) != 0 ||
                (nonce != NULL && strcmp(it->claim.nonce, nonce) != 0))
                continue;
            if (best == NULL || it->id < best->id)
                best = it;
        }
    }
    return best;
}

/* ---- the holders ---- */

void tl__gh_run(const struct github_store *g, struct gh_list *l, int64_t issue, int64_t below,
                struct gh_run *r)
{
    bool open = true; /* the run may still grow */

    memset(r, 0, sizeof(*r));
    for (struct gh_item *c = next_of(g, l, issue, 0, below); c != NULL;
         c = next_of(g, l, issue, c->id, below)) {
        const struct tl_info *ci = &c->claim.rec.info;
        bool live = !tl__gh_stale_at(c, l->date_ms);
        bool shared = ci->mode == TL_SHARED;

        if (r->first == NULL) {
            r->first = r->last = c;
            r->n = 1;
            r->live = live;
            r->exclusive = !shared;
            r->slots = shared ? ci->slots : 0;
            open = shared && r->slots != 1;
            continue;
        }
        if (open && shared && ci->slots == r->slots) {
            r->last = c;
            r->n++;
            r->live += live;
            open = r->slots == 0 || r->n < r->slots;
            continue;
        }
        open = false;
        r->after++;
        r->live_after += live;
    }
}

bool tl__gh_in_run(const struct gh_run *r, const struct gh_item *it)
{
    return r->first != NULL && it != NULL && it->id >= r->first->id && it->id <= r->last->id;
}

enum tl_admit tl__gh_admit(const struct gh_run *r, const struct tl_claim *req, int64_t now_ms)
{
    bool steal = req->mode == TL_CLAIM_STEAL;
    size_t n = steal ? r->live : r->n;
    bool excl = r->exclusive && (!steal || !tl__gh_stale_at(r->first, now_ms));

    return tl__admit(req->shared, req->slots, n, excl, r->slots);
}

bool tl__gh_holds_at(const struct github_store *g, struct gh_list *l, int64_t id, bool shared,
                     uint32_t slots)
{
    struct gh_run r;

    tl__gh_run(g, l, 0, id, &r);
    return r.after == 0 && tl__admit(shared, slots, r.n, r.exclusive, r.slots) == TL_ADMIT_YES;
}

bool tl__gh_turn(const struct github_store *g, struct gh_list *l, const struct gh_item *it,
                 bool steals)
{
    struct gh_run r;
    int64_t of = tl__gh_upgrade_of(it);

    if (of != 0) {
        /* An upgrader's place (github_convert.c): its turn is when no other holder counts (the
         * claim it converts is the only holder; or the only live one, when the upgrade steals),
         * or when that claim is no holder at all (the convert call then says it is lost). */
        tl__gh_run(g, l, 0, 0, &r);
        const struct gh_item *x = tl__gh_list_find(l, of);
        return x == NULL || x->deleted || !tl__gh_in_run(&r, x) || r.n == 1 ||
               (steals && r.live == 1 && !tl__gh_stale_at(x, l->date_ms));
    }
    const struct tl_claim req = {.shared = it->claim.rec.info.mode == TL_SHARED,
                                 .slots = it->claim.rec.info.slots};

    tl__gh_run(g, l, 0, it->id, &r);
    /* A mismatch wakes it too: its claim then says so (TL_EINVAL) instead of waiting. */
    return r.live_after == 0 && tl__gh_admit(&r, &req, l->date_ms) != TL_ADMIT_NO;
}

/*
 * Deletes the dead waiters that would join the holders once the claims the caller has marked
 * deleted (and is about to delete) are gone: when a holder leaves, the claims after it may come
 * to hold, and they had better be live, or they would be stale holders that only a steal takes.
 * `old_last` is the last holder's id before the marking (0: none). Returns the first holder
 * afterwards (NULL: none, or a deletion failed, which is logged).
 */
struct gh_item *tl__gh_clear_joiners(struct github_store *g, struct gh_list *l, int64_t old_last)
{
    char keep[TL_ERRMSG_SIZE];
    struct gh_run r;

    memcpy(keep, g->base.errmsg, sizeof(keep));
    for (;;) {
        tl__gh_run(g, l, 0, 0, &r);
        struct gh_item *dead = NULL;
        for (struct gh_item *c = r.first; c != NULL && dead == NULL;
             c = c == r.last ? NULL : next_of(g, l, 0, c->id, 0)) {
            if (c->id > old_last && tl__gh_stale_at(c, l->date_ms))
                dead = c;
        }
        if (dead == NULL)
            break;
        bool gone;
        if (tl__gh_delete_comment(g, dead->id, &gone) != TL_OK) {
            LOG(g, TL_LOG_WARN, "github: #%lld: could not delete the dead waiter's claim %lld: %s",
                (long long)l->number, (long long)dead->id, g->base.errmsg);
            r.first = NULL;
            break;
        }
        LOG(g, TL_LOG_INFO, "github: #%lld: deleted the dead waiter's claim %lld of %s",
            (long long)l->number, (long long)dead->id, dead->claim.rec.info.worker_id);
        dead->deleted = true;
    }
    memcpy(g->base.errmsg, keep, sizeof(keep));
    return r.first;
}

struct gh_item *tl__gh_clear_dead_after(struct github_store *g, struct gh_list *l, int64_t id)
{
    struct gh_item *me = tl__gh_list_find(l, id);
    struct gh_run r;

    tl__gh_run(g, l, 0, 0, &r);
    if (me == NULL || me->deleted)
        return tl__gh_clear_joiners(g, l, r.last != NULL ? r.last->id : 0);
    me->deleted = true;
    struct gh_item *first = tl__gh_clear_joiners(g, l, r.last != NULL ? r.last->id : 0);
    me->deleted = false;
    return first;
}

/* Appends a record of holder `it` of `key` (judged at the list's time) to the array. */
tl_status tl__gh_push_holder(struct github_store *g, struct gh_list *l, const struct gh_item *it,
                             const char *key, const struct gh_run *r, struct tl_record ***arr,
                             size_t *n, size_t *cap)
{
    struct tl_record *rec = tl__record_new();

    if (rec == NULL || tl__gh_item_record(g, it, key, l->date_ms, rec) != TL_OK) {
        tl__free(rec);
        return tl__gh_oom(g);
    }
    tl__free(rec->opaque);
    rec->opaque = NULL;
    rec->info.waiting = (uint32_t)r->live_after;
    rec->info.holders = (uint32_t)r->n;
    if (tl__record_array_push(arr, n, cap, rec) != TL_OK) {
        tl__record_free(rec);
        return tl__gh_oom(g);
    }
    return TL_OK;
}

/* The `holders` op: every claim of the run, by comment id (= token). One list read. */
tl_status tl__github_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                             size_t *count)
{
    struct github_store *g = (struct github_store *)s;
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    struct gh_list *l;
    struct gh_run r;
    int64_t number;
    tl_status st;

    *out = NULL;
    *count = 0;
    g->committed = false;
    if (!tl__gh_parse_key(key, &number))
        return tl__github_check_key(s, key);
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
        return st;
    tl__gh_run(g, l, 0, 0, &r);
    for (struct gh_item *c = r.first; c != NULL && st == TL_OK;
         c = c == r.last ? NULL : next_of(g, l, 0, c->id, 0))
        st = tl__gh_push_holder(g, l, c, key, &r, &arr, &n, &cap);
    if (st != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return st;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

/* The holders of the run `r` of issue `issue` in a repository-wide list, for tl_list. */
tl_status tl__gh_push_run(struct github_store *g, struct gh_list *l, int64_t issue,
                          const struct gh_run *r, struct tl_record ***arr, size_t *n, size_t *cap)
{
    char key[32];
    tl_status st = TL_OK;

    (void)snprintf(key, sizeof(key), "%lld", (long long)issue);
    for (struct gh_item *c = r->first; c != NULL && st == TL_OK;
         c = c == r->last ? NULL : next_of(g, l, issue, c->id, 0))
        st = tl__gh_push_holder(g, l, c, key, r, arr, n, cap);
    return st;
}

/* The next claim of the run after `c` (NULL: `c` is its last). */
struct gh_item *tl__gh_run_next(const struct github_store *g, struct gh_list *l,
                                const struct gh_run *r, const struct gh_item *c)
{
    return c == r->last ? NULL : next_of(g, l, r->first->issue, c->id, 0);
}
