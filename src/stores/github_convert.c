/*
 * github_convert.c -- upgrades and downgrades on the GitHub store (store ops version 5, the
 * convert op; DESIGN.md section 9; docs/github.md "Upgrades, downgrades and deadlocks").
 *
 * A conversion is a new grant, so it needs the key's next token: a new claim comment, posted
 * after every comment of the issue. GitHub has no transactions, and comment order decides who
 * holds, so a conversion is a sequence of writes arranged so that at every moment every reader,
 * of this version or an older one, sees a run of holders that is safe:
 *
 * 1. Post the new claim N (the new mode, "conv" and the converted claim X as from[0]). Until X
 *    goes, N stands after every waiter: an exclusive N closes the run, and every claim posted
 *    after it waits behind it.
 * 2. Read the list again, complete (the issue's count): a claim we cannot see could come to hold
 *    when X goes.
 * 3. Move the live waiters between X and N behind N, as a forced claim does: post each one's
 *    copy (same waiter id and nonce: its waiter finds its place moved), then delete the
 *    originals from the last to the first, so that no deletion lets a waiter into the run while
 *    X still holds. Dead waiters (and, when stealing, stale holders) are deleted.
 * 4. Delete X. N is now the lowest claim of the run: it holds in the new mode.
 *
 * A downgrade always goes through. An upgrade goes through only when X is the only holder that
 * counts (the others released, or stale when stealing); else it is busy, and with a waiter id N
 * stays as the upgrader's place in line (held false, a waiter id): by comment order no one
 * posted after it passes it, and the new holders it may still see are the waiters posted before
 * it that comment order lets into the run (readers queued behind a writer that leaves): a
 * bounded set. Its turn (wait_turn, github_modes.c) is "X is the only holder"; then the next
 * convert call runs steps 2-4 on it. The upgrader's place reads as a waiter of priority
 * TL_PRIORITY_UPGRADE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "github_int.h"

_Static_assert(TL_GH_HOLDING_MAX == TL_HOLDING_MAX, "the marker's bound is the core's");

#define MOVE_MAX 64 /* waiters one conversion moves behind its claim, at most */

/* Whether a claim's stored holding text says what `holding` (the core's, NULL: none) says. */
bool tl__gh_same_holding(const char *stored, const char *holding)
{
    return strcmp(stored != NULL ? stored : "", holding != NULL ? holding : "") == 0;
}

int64_t tl__gh_upgrade_of(const struct gh_item *it)
{
    const struct tl_gh_claim *c = &it->claim;

    if (c->conv != TL_GH_CONV_UPGRADED || c->nfrom == 0 || c->waiter[0] == '\0')
        return 0;
    return (int64_t)c->from[0].token;
}

/* Our claim `x` for `held`, listed and among the holders; NULL: not a holder (lost). */
static struct gh_item *held_claim(struct github_store *g, struct gh_list *l,
                                  const struct tl_record *held, const struct gh_run *r)
{
    char nonce[TL_GH_NONCE_LEN + 1], login[128];
    struct gh_item *x = tl__gh_list_find(l, (int64_t)held->info.token);

    if (!tl__gh_opaque_split(held, nonce, login, sizeof(login)))
        return NULL;
    if (x == NULL || x->deleted || !tl__gh_is_claim(g, x) ||
        !tl__gh_is_held_claim(g, x, held, nonce) || !tl__gh_in_run(r, x))
        return NULL;
    return x;
}

/* Whether holder `c` of the run counts against an upgrade in `mode` (it is not `x`). */
static bool counts(const struct gh_item *c, const struct gh_item *x, enum tl_claim_mode mode,
                   int64_t now_ms)
{
    return c != x && (mode != TL_CLAIM_STEAL || !tl__gh_stale_at(c, now_ms));
}

/* Reads the list until it is complete (the issue's count) and shows claim `id`, within the
 * re-reads and the call's deadline. TL_EBUSY ("outcome unknown") when it stays short. */
static tl_status read_complete(struct github_store *g, int64_t number, int64_t id,
                               struct gh_list **l)
{
    tl_status st;

    for (uint32_t a = 0;; a++) {
        if ((st = tl__gh_read_list(g, number, true, l)) != TL_OK)
            return st;
        int64_t count = -1;
        if ((st = tl__gh_issue_count(g, *l, &count)) != TL_OK)
            return st;
        size_t seen = tl__gh_list_count(*l);
        bool visible = id == 0 || tl__gh_list_find(*l, id) != NULL;
        if (visible && ((int64_t)seen >= count || !g->cfg.reconcile))
            return TL_OK;
        (*l)->recheck_tail = true;
        uint32_t delay = tl__gh_reread_delay(g, a + 1);
        if (a >= g->cfg.rereads || !tl__gh_may_wait(g, delay))
            return tl__gh_fail(g, TL_EBUSY,
                               "github: #%lld: outcome unknown: the comment list stayed "
                               "incomplete (%zu listed, %lld counted); the lock is unchanged",
                               (long long)number, seen, (long long)count);
        tl__real_sleep_ms(delay);
    }
}

/* Fills a busy upgrade's result: the oldest other holder that counts, and the line. */
static tl_status busy(struct github_store *g, struct gh_list *l, const struct gh_run *r,
                      const struct gh_item *x, const struct tl_claim *req, bool placed,
                      struct tl_claim_result *out)
{
    const struct gh_item *h = NULL;

    for (struct gh_item *c = r->first; c != NULL && h == NULL; c = tl__gh_run_next(g, l, r, c)) {
        if (counts(c, x, req->mode, l->date_ms))
            h = c;
    }
    if (h != NULL) {
        tl_status st = tl__gh_item_record(g, h, req->key, l->date_ms, &out->rec);
        if (st != TL_OK)
            return st;
        tl__free(out->rec.opaque);
        out->rec.opaque = NULL;
        out->rec.info.holders = (uint32_t)r->n;
        out->holder_known = true;
    }
    out->waiting = (uint32_t)r->live_after + (placed ? 1 : 0);
    out->ahead = 0; /* an upgrader is ahead of every waiter */
    return tl__gh_fail(g, TL_EBUSY, "github: #%s: the other holders hold it; %u waiting", req->key,
                       out->waiting);
}

/*
 * Steps 3 and 4: moves the live waiters between `x` and our claim `n` behind `n`, deletes the
 * dead claims there (and, with `steal`, the stale holders other than x), then deletes x. Once
 * anything is deleted, the call finishes what it started (committed).
 */
static tl_status hand_over(struct github_store *g, int64_t number, struct gh_list *l,
                           struct gh_item *x, struct gh_item *n, bool steal)
{
    struct gh_item *move[MOVE_MAX], *drop[MOVE_MAX];
    size_t nmove = 0, ndrop = 0;
    struct gh_run r;
    bool gone;
    tl_status st;

    tl__gh_run(g, l, 0, 0, &r);
    for (struct gh_item *c = tl__gh_next_claim(g, l, 0, n->id); c != NULL;
         c = tl__gh_next_claim(g, l, c->id, n->id)) {
        bool stale = tl__gh_stale_at(c, l->date_ms);
        if (c == x)
            continue;
        if (tl__gh_in_run(&r, c)) {
            if (steal && stale && ndrop < MOVE_MAX)
                drop[ndrop++] = c; /* a stale holder the upgrade displaces */
            continue;
        }
        if (stale || c->claim.waiter[0] == '\0') {
            /* A dead waiter, or a claim that waits in no line (a racing claimant that will
             * withdraw): either way no place to keep. */
            if (ndrop < MOVE_MAX)
                drop[ndrop++] = c;
        } else if (nmove < MOVE_MAX) {
            move[nmove++] = c;
        }
    }
    g->committed = true;
    for (size_t i = 0; i < nmove; i++)
        tl__gh_repost_place(g, number, move[i], l->date_ms);
    /* The last first: deleting a waiter never lets the one behind it into the run. */
    for (size_t i = nmove; i-- > 0;) {
        if ((st = tl__gh_delete_comment(g, move[i]->id, &gone)) != TL_OK)
            return st;
        move[i]->deleted = true;
    }
    for (size_t i = ndrop; i-- > 0;) {
        if ((st = tl__gh_delete_comment(g, drop[i]->id, &gone)) != TL_OK)
            return st;
        drop[i]->deleted = true;
        LOG(g, TL_LOG_INFO, "github: #%lld: deleted the stale or dead claim %lld of %s",
            (long long)number, (long long)drop[i]->id, drop[i]->claim.rec.info.worker_id);
    }
    if ((st = tl__gh_delete_comment(g, x->id, &gone)) != TL_OK)
        return st;
    x->deleted = true;
    return TL_OK;
}

/* Builds and posts our new claim: `req`'s mode, converting `x` (and displacing `victims`). */
static tl_status post_claim(struct github_store *g, int64_t number, struct gh_list *l,
                            const struct tl_claim *req, struct gh_item *x,
                            struct gh_item *const *victims, size_t nvictims, bool wait,
                            bool expect_win, struct gh_item *posted, struct tl_gh_claim *mine)
{
    char *text = NULL;
    bool maybe;
    tl_status st;

    mine->rec.info.worker_id = tl__strdup(req->worker_id);
    mine->rec.info.node_id = tl__strdup(req->node_id);
    mine->rec.info.task_info = tl__strdup(req->task_info);
    if (!mine->rec.info.worker_id || !mine->rec.info.node_id || !mine->rec.info.task_info)
        return tl__gh_oom(g);
    mine->rec.info.claimed_at_ms = mine->rec.info.heartbeat_at_ms = l->date_ms;
    mine->rec.info.lock_timeout_ms = req->lock_timeout_ms;
    mine->rec.info.mode = req->shared ? TL_SHARED : TL_EXCLUSIVE;
    mine->rec.info.slots = req->shared ? req->slots : 0;
    tl__gh_random_nonce(g, mine->nonce);
    for (size_t i = 0; i < nvictims; i++)
        tl__gh_push_from(mine, victims[i]);
    if (nvictims > 0)
        mine->took = TL_GH_TOOK_STALE;
    tl__gh_push_from(mine, x); /* from[0]: the claim it converts */
    mine->conv = req->shared ? TL_GH_CONV_DOWNGRADED : TL_GH_CONV_UPGRADED;
    /* A place in line says it waits (the visible line); it comes to hold by comment order,
     * and its first heartbeat marks it held. */
    mine->held = !wait;
    (void)expect_win;
    if (wait) {
        (void)snprintf(mine->waiter, sizeof(mine->waiter), "%s", req->waiter_id);
        if (req->holding != NULL && req->holding[0] != '\0' &&
            (mine->holding = tl__strndup(req->holding, TL_HOLDING_MAX)) == NULL)
            return tl__gh_oom(g);
    }
    if ((text = tl__gh_build_claim(mine, l->date_ms)) == NULL)
        return tl__gh_oom(g);
    if ((st = tl__gh_check_size(g, text)) == TL_OK) {
        st = tl__gh_post_comment(g, number, text, posted, &maybe, NULL);
        if (st != TL_OK && maybe)
            st = tl__gh_fail(g, TL_EBUSY,
                             "github: #%lld: outcome unknown: the conversion's claim POST failed "
                             "(%.160s); the lock is unchanged (a claim posted after all goes "
                             "stale)",
                             (long long)number, g->base.errmsg);
    }
    if (st == TL_OK)
        tl__gh_learn_login(g, posted->login);
    tl__free(text);
    return st;
}

/* Our waiting upgrade's place for `x`, as listed; NULL: none (forgotten when it is gone). */
static struct gh_item *upgrade_place(struct github_store *g, struct gh_list *l, struct gh_place *p,
                                     const struct gh_item *x)
{
    if (p == NULL)
        return NULL;
    struct gh_item *it = tl__gh_list_find(l, p->comment);
    if (it == NULL || it->deleted || !tl__gh_is_claim(g, it))
        it = tl__gh_waiter_claim(g, l, p->waiter, p->nonce, 0); /* moved by a forced claim */
    if (it == NULL || strcmp(it->claim.nonce, p->nonce) != 0 || tl__gh_upgrade_of(it) != x->id ||
        tl__gh_stale_at(it, l->date_ms)) {
        if (it != NULL) {
            tl__gh_withdraw_claim(g, it->id);
            it->deleted = true;
        }
        tl__gh_place_forget(p);
        return NULL;
    }
    p->comment = it->id;
    return it;
}

/* The place just kept for req's waiter: whether its turn counts stale holders. */
static void keep_steals(struct github_store *g, const struct tl_claim *req)
{
    struct gh_place *p = tl__gh_place_find(g, req->waiter_id);

    if (p != NULL)
        p->steals = req->mode == TL_CLAIM_STEAL;
}

tl_status tl__github_convert(struct tl_store *s, const struct tl_record *held,
                             const struct tl_claim *req, struct tl_claim_result *out)
{
    struct github_store *g = (struct github_store *)s;
    struct gh_item *victims[MOVE_MAX];
    struct tl_gh_claim mine = {0};
    struct gh_item posted = {0};
    struct gh_list *l = NULL;
    struct gh_place *place = NULL;
    size_t nvictims = 0;
    int64_t number, id = 0, sent = 0;
    bool wrote = false, wait = req->waiter_id != NULL;
    tl_status st;

    g->committed = false;
    g->issue_closed = -1;
    if (!tl__gh_parse_key(req->key, &number))
        return tl__github_check_key(s, req->key);
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if (wait) {
        place = tl__gh_place_find(g, req->waiter_id);
        if (place != NULL && place->number != number) {
            tl__gh_withdraw_claim(g, place->comment);
            tl__gh_place_forget(place);
            place = NULL;
        }
    }
    if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
        goto done;
    if (place != NULL) {
        place->polled = g->base.clock->mono_ms(g->base.clock->ud);
        place->steals = req->mode == TL_CLAIM_STEAL;
    }

    struct gh_run r;
    tl__gh_run(g, l, 0, 0, &r);
    struct gh_item *x = held_claim(g, l, held, &r);
    if (x == NULL && tl__gh_list_find(l, (int64_t)held->info.token) == NULL) {
        /* Not listed: deleted, or listed late (GitHub's lists can lag). Only a lock that is
         * gone is lost; one not listed yet is busy, and the next call sees. */
        struct gh_item fetched = {0};
        bool found = false;
        st = tl__gh_get_comment(g, (int64_t)held->info.token, number, &fetched, &found);
        tl__gh_item_clear(&fetched);
        if (st != TL_OK)
            goto done;
        if (found) {
            l->recheck_tail = true;
            st = tl__gh_fail(g, TL_EBUSY,
                             "github: #%lld: outcome unknown: our claim %llu is not listed yet; "
                             "the lock is unchanged",
                             (long long)number, (unsigned long long)held->info.token);
            goto done;
        }
    }
    if (x == NULL) {
        if (place != NULL) {
            tl__gh_withdraw_claim(g, place->comment);
            tl__gh_place_forget(place);
        }
        st = tl__gh_fail(g, TL_ELOST,
                         "github: #%lld: token %llu is not a holder of the issue (released, "
                         "stolen or forced)",
                         (long long)number, (unsigned long long)held->info.token);
        goto done;
    }
    struct gh_item *n = req->shared ? NULL : upgrade_place(g, l, place, x);
    if (n != NULL)
        id = n->id;

    if (!req->shared) {
        /* An upgrade: the other holders that count. */
        size_t others = 0;
        for (struct gh_item *c = r.first; c != NULL; c = tl__gh_run_next(g, l, &r, c)) {
            if (counts(c, x, req->mode, l->date_ms))
                others++;
            else if (c != x && nvictims < MOVE_MAX)
                victims[nvictims++] = c;
        }
        if (others > 0) {
            if (!wait) {
                st = busy(g, l, &r, x, req, false, out);
                goto done;
            }
            if (n == NULL) {
                /* Join the line: our claim is the upgrade's place. */
                sent = g->base.clock->mono_ms(g->base.clock->ud);
                st = post_claim(g, number, l, req, x, NULL, 0, true, false, &posted, &mine);
                if (st != TL_OK)
                    goto done;
                tl__gh_place_keep(g, req->waiter_id, number, posted.id, mine.nonce, sent);
                keep_steals(g, req);
                st = busy(g, l, &r, x, req, true, out);
                goto done;
            }
            /* Refresh our place when due, or when the graph's text changed. */
            int64_t since = g->base.clock->mono_ms(g->base.clock->ud) - place->beat_sent;
            bool gone = false;
            if (since >= (int64_t)req->lock_timeout_ms * 3 / 16 ||
                (req->holding != NULL && !tl__gh_same_holding(n->claim.holding, req->holding))) {
                if (tl__gh_refresh_place(g, n, place, l->date_ms, req->holding, &gone) != TL_OK)
                    LOG(g, TL_LOG_WARN, "github: #%lld: refreshing the upgrade's place failed: %s",
                        (long long)number, g->base.errmsg);
                if (gone)
                    tl__gh_place_forget(place);
            }
            st = busy(g, l, &r, x, req, false, out);
            if (gone)
                out->waiting--;
            goto done;
        }
    }

    /* Admitted: post the new claim, unless the upgrade's place is it. */
    if (n == NULL) {
        sent = g->base.clock->mono_ms(g->base.clock->ud);
        st = post_claim(g, number, l, req, x, victims, nvictims, wait, true, &posted, &mine);
        if (st != TL_OK)
            goto done;
        id = posted.id;
        wrote = true;
    }
    if ((st = read_complete(g, number, id, &l)) != TL_OK)
        goto withdraw;
    tl__gh_run(g, l, 0, 0, &r);
    if ((x = held_claim(g, l, held, &r)) == NULL) {
        st = tl__gh_fail(g, TL_ELOST, "github: #%lld: token %llu was taken meanwhile",
                         (long long)number, (unsigned long long)held->info.token);
        goto withdraw;
    }
    n = tl__gh_list_find(l, id);
    if (!req->shared) {
        /* A holder that joined between our reads (a reader by comment order) is waited for. */
        for (struct gh_item *c = r.first; c != NULL; c = tl__gh_run_next(g, l, &r, c)) {
            if (!counts(c, x, req->mode, l->date_ms))
                continue;
            if (wait && place == NULL) {
                tl__gh_place_keep(g, req->waiter_id, number, id, mine.nonce, sent);
                keep_steals(g, req);
            }
            if (wait) {
                st = busy(g, l, &r, x, req, false, out);
                goto done;
            }
            st = busy(g, l, &r, x, req, false, out);
            goto withdraw;
        }
    }
    if ((st = hand_over(g, number, l, x, n, req->mode == TL_CLAIM_STEAL)) != TL_OK) {
        /* Part done: x may still hold beside our claim, or be gone with ours holding. Either
         * way our claim is the lock if it holds now: the caller retries, and finds out. */
        LOG(g, TL_LOG_WARN, "github: #%lld: the conversion stopped halfway: %s", (long long)number,
            g->base.errmsg);
        goto withdraw;
    }
    if ((st = tl__gh_item_record(g, n, req->key, l->date_ms, &out->rec)) != TL_OK)
        goto done;
    out->took_stale = n->claim.took == TL_GH_TOOK_STALE;
    out->beat_sent_mono_ms = wrote ? 0 : place != NULL ? place->beat_sent : 0;
    tl__gh_place_forget(place);
    goto done;

withdraw:
    if (id != 0 && !g->committed) {
        if (wait && st == TL_EBUSY) {
            if (place == NULL) {
                tl__gh_place_keep(g, req->waiter_id, number, id, mine.nonce, sent);
                keep_steals(g, req);
            }
        } else {
            tl__gh_withdraw_claim(g, id);
            tl__gh_place_forget(place);
        }
    }
done:
    tl__gh_item_clear(&posted);
    tl__gh_claim_clear(&mine);
    return st;
}
