/*
 * github_release.c -- release and forced release on the GitHub store: delete the claim (after the
 * dead waiters right after it), remove the assignee, post the completion comment that the audit
 * trail reads. See github.c for the protocol.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "github_int.h"

#define COMPLETION_ATTEMPTS 5 /* a completion comment: 0.25 + 0.5 + 1 + 2 s between tries */
#define COMPLETION_RETRY_MS 250u

/* ---- release ---- */

/* Whether the list has a trusted completion comment of token `token` with nonce `nonce`. */
static bool has_completion(struct github_store *g, const struct gh_list *l, uint64_t token,
                           const char *nonce)
{
    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            const struct gh_item *c = &l->pages[i].items[j];
            if (c->kind == TL_GH_RELEASE && !c->deleted && tl__gh_trusted(g, c->login) &&
                c->rel.token == token && strcmp(c->rel.nonce, nonce) == 0)
                return true;
        }
    }
    return false;
}

/* Posts the completion comment of `held`'s tenure. `forced` (NULL for the holder's own
 * release) is the forced release that ended it: the comment then names who broke the lock.
 * `done`: a done release's (the task is finished). Returns whether it was posted (a failure is
 * logged; the errmsg is kept). */
static tl_status post_completion(struct github_store *g, int64_t number,
                                 const struct tl_record *held, const char *nonce,
                                 const struct gh_item *claim, int64_t at, const char *summary,
                                 const struct tl_force_release *forced, bool done)
{
    struct tl_gh_release rel = {0};
    struct gh_item posted;
    char keep[TL_ERRMSG_SIZE];

    memcpy(keep, g->base.errmsg, sizeof(keep));
    if (nonce[0] == '\0' && claim != NULL && claim->claim.nonce[0] != '\0')
        nonce = claim->claim.nonce;
    if (nonce[0] != '\0')
        memcpy(rel.nonce, nonce, sizeof(rel.nonce));
    else
        memset(rel.nonce, '0', TL_GH_NONCE_LEN);
    rel.token = held->info.token;
    rel.worker_id = held->info.worker_id;
    rel.node_id = held->info.node_id;
    rel.claimed_at_ms = held->info.claimed_at_ms;
    rel.released_at_ms = at;
    rel.summary = (char *)summary;
    rel.done = done && forced == NULL;
    if (forced != NULL) {
        rel.forced_worker_id = (char *)forced->worker_id;
        rel.forced_node_id = (char *)forced->node_id;
    }
    if (claim != NULL) {
        rel.took = claim->claim.took;
        rel.conv = claim->claim.conv;
        rel.nfrom = claim->claim.nfrom;
        memcpy(rel.from, claim->claim.from, sizeof(rel.from));
    }
    char *text = tl__gh_build_release(&rel);
    tl_status st = text != NULL ? TL_ESTORE : TL_ENOMEM;
    bool maybe = false, transient = text != NULL;

    /* The comment is the tenure's only record once the claim is gone: a failure that may pass
     * (a 5xx, a dropped connection) is tried again, a few times and within the call's limits.
     * After a POST that may have been written, the comments are read first, so that
     * the completion is not posted twice (a lagging list may still show it late; the history
     * reads a repeated completion once). */
    for (uint32_t a = 0; transient && a < COMPLETION_ATTEMPTS; a++) {
        if (a > 0) {
            struct gh_list *l;
            if (!tl__gh_nap(g, COMPLETION_RETRY_MS << (a - 1)))
                break;
            if (maybe && tl__gh_read_list(g, number, true, &l) == TL_OK &&
                has_completion(g, l, rel.token, rel.nonce)) {
                st = TL_OK;
                break;
            }
        }
        if ((st = tl__gh_post_comment(g, number, text, &posted, &maybe, &transient)) == TL_OK) {
            tl__gh_item_clear(&posted);
            break;
        }
        LOG(g, TL_LOG_DEBUG, "github: #%lld: completion comment, attempt %u: %s", (long long)number,
            a + 1, g->base.errmsg);
    }
    if (st != TL_OK)
        LOG(g, TL_LOG_WARN,
            "github: #%lld: the lock is released, but the completion comment failed: %s",
            (long long)number, text ? g->base.errmsg : "out of memory");
    tl__free(text);
    memcpy(g->base.errmsg, keep, sizeof(keep));
    return st;
}

/*
 * The release. `done` (claim-next's done release): once the claim is known to be ours, the
 * issue is closed and the completion comment, marked done, is posted; only then is the claim
 * deleted, so that the task is never free without its done marker. If closing or posting
 * fails, the claim stays and the call fails (the lock is as before, but for a closed issue).
 */
static tl_status release_as(struct tl_store *s, const struct tl_record *held, const char *summary,
                            bool done)
{
    struct github_store *g = (struct github_store *)s;

    g->committed = false; /* see struct github_store */
    char nonce[TL_GH_NONCE_LEN + 1], login[128];
    struct gh_item fetched = {0}, kept = {0};
    struct gh_list *l;
    int64_t number, id = (int64_t)held->info.token;
    bool gone = false, found;
    tl_status st = TL_OK;

    if (!tl__gh_parse_key(held->info.key, &number) ||
        !tl__gh_opaque_split(held, nonce, login, sizeof(login)))
        return tl__gh_fail(g, TL_ENOTOWNER, "github: #%s: not a lock of this store",
                           held->info.key);
    tl__gh_learn_login(g, login);
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;

    /* 1. Is comment `id` our claim? The list is read (conditionally) for the line: the dead
     * waiters right after our claim go first. If it cannot be read, what this instance listed
     * of our claim still holds: only its author can edit a comment, so a claim of ours stays
     * one until it is deleted. */
    struct gh_list *cur = NULL;
    if (tl__gh_read_list(g, number, true, &cur) != TL_OK) {
        LOG(g, TL_LOG_DEBUG, "github: #%lld: release: %s", (long long)number, g->base.errmsg);
        g->base.errmsg[0] = '\0';
        cur = NULL;
    }
    struct gh_item *it = NULL;
    for (size_t i = 0; i < g->nlists && it == NULL; i++) {
        if (g->lists[i]->number == number)
            it = tl__gh_list_find(g->lists[i], id);
    }
    if (it == NULL) {
        if ((st = tl__gh_get_comment(g, id, number, &fetched, &found)) != TL_OK)
            goto done;
        if (found)
            it = &fetched;
        else if (fetched.id == id) /* exists, but is an ordinary comment */
            return tl__gh_fail(g, TL_ENOTOWNER, "github: #%s: comment %llu is not our claim",
                               held->info.key, (unsigned long long)id);
        else
            gone = true;
    }
    if (it != NULL && !tl__gh_is_held_claim(g, it, held, nonce)) {
        st = tl__gh_fail(g, TL_ENOTOWNER, "github: #%s: comment %llu is not our claim",
                         held->info.key, (unsigned long long)id);
        goto done;
    }
    if (it != NULL && it->deleted)
        gone = true;  /* we deleted it before: see who holds the issue now */
    if (it != NULL) { /* keep what the completion comment reports of it */
        memcpy(kept.claim.nonce, it->claim.nonce, sizeof(kept.claim.nonce));
        if ((st = tl__gh_copy_took(g, &kept.claim, &it->claim)) != TL_OK)
            goto done;
    }

    /* 1'. Done: the marker before the lock goes (github_next.c closes the issue). */
    bool posted = false;
    if (done && !gone) {
        int64_t closed_at = 0;
        if ((st = tl__gh_next_close(s, number, true, &closed_at)) != TL_OK)
            goto done;
        g->committed = true;
        /* Unless a release before this one got that far. */
        if ((cur == NULL || !has_completion(g, cur, held->info.token, nonce)) &&
            (st = post_completion(g, number, held, nonce, it ? &kept : NULL,
                                  closed_at ? closed_at : (cur ? cur->date_ms : 0), summary, NULL,
                                  true)) != TL_OK) {
            st = tl__gh_fail(
                g, st,
                "github: #%lld: closed, but the done comment could not be posted; the lock "
                "is kept (release again): %s",
                (long long)number, g->base.errmsg);
            goto done;
        }
        posted = true;
    }

    /* 2. Delete it, after the dead waiters right after it, so that the next holder is live. The
     * next holder keeps the assignee if it is ours as well (one write less). */
    int64_t at = 0;
    bool keep_assignee = false;
    if (!gone && cur != NULL && it != &fetched && tl__gh_list_find(cur, id) == it) {
        const struct gh_item *next = tl__gh_clear_dead_after(g, cur, id);
        keep_assignee = next != NULL && next->login != NULL && g->login != NULL &&
                        strcasecmp(next->login, g->login) == 0;
    }
    if (!gone) {
        struct tl_http_resp r = {0};
        char *url = tl__gh_comment_url(g, id);
        if (url == NULL) {
            st = tl__gh_oom(g);
            goto done;
        }
        st = tl__gh_call(g, "DELETE", url, NULL, NULL, &r);
        if (st == TL_OK && r.status == 404)
            gone = true;
        else if (st == TL_OK && r.status != 204 && r.status != 200)
            st = tl__gh_unexpected_answer(g, "DELETE", url, &r, 0);
        at = tl__gh_resp_date(&r);
        tl__http_resp_clear(&r);
        tl__free(url);
        if (st != TL_OK)
            goto done;
        if (it != NULL && it != &fetched)
            it->deleted = true;
    }

    if (gone) {
        /* 3'. Already gone: released by us before (fine), or taken by someone since (not). */
        if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
            goto done;
        /* Someone claimed it since (the contract: then our retry is refused): a holder now
         * with a later token (dead waiters hold nothing; shared holders that claimed before
         * us do not count), or a completion of a later tenure. */
        struct gh_run run;
        struct gh_item *h = NULL;
        tl__gh_run(g, l, 0, 0, &run);
        for (struct gh_item *c = run.first; c != NULL && h == NULL;
             c = tl__gh_run_next(g, l, &run, c))
            if (c->id > id)
                h = c;
        /* Holders below ours count too unless ours could have held beside them. */
        if (h == NULL && run.first != NULL &&
            (held->info.mode != TL_SHARED || run.exclusive || run.slots != held->info.slots))
            h = run.first;
        bool mine_done = false, later = false;
        for (size_t i = 0; i < l->npages; i++) {
            for (size_t j = 0; j < l->pages[i].nitems; j++) {
                struct gh_item *c = &l->pages[i].items[j];
                if (c->kind != TL_GH_RELEASE || !tl__gh_trusted(g, c->login))
                    continue;
                /* A completion of our token written by a forced release is not ours: the
                 * lock was broken, not released by us. */
                bool forced = c->rel.forced_worker_id != NULL;
                if (c->rel.token == (uint64_t)id && !forced &&
                    (nonce[0] == '\0' || strcmp(c->rel.nonce, nonce) == 0))
                    mine_done = true;
                else if (c->rel.token > (uint64_t)id || (c->rel.token == (uint64_t)id && forced))
                    later = true;
            }
        }
        if (h != NULL || later) {
            st = tl__gh_fail(
                g, TL_ENOTOWNER,
                "github: #%s: our claim %llu is gone, taken or broken by someone else%s%s",
                held->info.key, (unsigned long long)id, h ? "; held now by " : "",
                h ? h->claim.rec.info.worker_id : "");
            goto done;
        }
        if (!mine_done) { /* deleted, but the completion comment never made it */
            if (done)
                (void)tl__gh_next_close(s, number, true, NULL);
            (void)post_completion(g, number, held, nonce, it ? &kept : NULL, l->date_ms, summary,
                                  NULL, done);
        }
        goto done;
    }

    /* 3. The visible hint and the audit trail; the lock is free already, so failures here are
     * logged, not returned. */
    if (g->cfg.assign && g->login != NULL && !keep_assignee) {
        int64_t ignored;
        (void)tl__gh_assignee(g, number, false, &ignored);
    }
    if (!posted)
        (void)post_completion(g, number, held, nonce, it ? &kept : NULL, at, summary, NULL, false);
done:
    tl__gh_item_clear(&fetched);
    tl__gh_item_clear(&kept);
    return st;
}

tl_status tl__github_release(struct tl_store *s, const struct tl_record *held, const char *summary)
{
    return release_as(s, held, summary, false);
}

/* Deletes holder claim `h` of a forced release and posts the completion comment that records
 * the tenure it ended and who ended it. *gone: it was deleted meanwhile (nothing posted). */
static tl_status force_one(struct github_store *g, int64_t number,
                           const struct tl_force_release *req, struct gh_list *l, struct gh_item *h,
                           bool *gone)
{
    struct gh_item kept = {0};
    struct tl_record rec = {0};
    struct tl_http_resp r = {0};
    tl_status st;

    *gone = false;
    /* What the completion comment reports of the claim: the list may be read again (and its
     * items freed) before it is posted. */
    memcpy(kept.claim.nonce, h->claim.nonce, sizeof(kept.claim.nonce));
    if ((st = tl__gh_copy_took(g, &kept.claim, &h->claim)) != TL_OK ||
        (st = tl__gh_item_record(g, h, req->key, l->date_ms, &rec)) != TL_OK)
        goto done;
    char *url = tl__gh_comment_url(g, h->id);
    if (url == NULL) {
        st = tl__gh_oom(g);
        goto done;
    }
    st = tl__gh_call(g, "DELETE", url, NULL, NULL, &r);
    *gone = st == TL_OK && r.status == 404;
    if (st == TL_OK && !*gone && r.status != 204 && r.status != 200)
        st = tl__gh_unexpected_answer(g, "DELETE", url, &r, 0);
    int64_t at = tl__gh_resp_date(&r);
    tl__free(url);
    if (st != TL_OK)
        goto done;
    h->deleted = true;
    if (*gone) {
        /* Deleted meanwhile: released by its holder, or broken by someone else. Nothing of ours
         * to report; the caller looks again if it wants to. */
        LOG(g, TL_LOG_INFO, "github: #%lld: the claim %lld was gone before it could be deleted",
            (long long)number, (long long)h->id);
        goto done;
    }
    (void)post_completion(g, number, &rec, kept.claim.nonce, &kept, at ? at : l->date_ms,
                          req->summary, req, false);
done:
    tl__http_resp_clear(&r);
    tl__record_clear(&rec);
    tl__gh_item_clear(&kept);
    return st;
}

/*
 * A forced release: delete the holders' claims (every holder's, or the one with req->token),
 * remove the assignee, and post for each a completion comment that records the tenure it ended
 * and who ended it. The next claim's comment id is larger than every one before it, so tokens
 * keep growing; a holder's heartbeat finds its claim gone (404: lost), and its release finds a
 * forced completion of its token, which is not its own (refused).
 */
tl_status tl__github_force_release(struct tl_store *s, const struct tl_force_release *req,
                                   struct tl_record *former, bool *found)
{
    struct github_store *g = (struct github_store *)s;

    g->committed = false; /* see struct github_store */
    struct gh_list *l;
    struct gh_run run;
    int64_t number;
    tl_status st;

    *found = false;
    if (!tl__gh_parse_key(req->key, &number))
        return tl__github_check_key(s, req->key);
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
        return st;
    tl__gh_run(g, l, 0, 0, &run); /* dead waiters hold nothing */
    if (run.first == NULL)
        return TL_OK;
    struct gh_item *which = NULL; /* the one holder to break; NULL: all */
    for (struct gh_item *c = run.first; req->token != 0 && c != NULL;
         c = tl__gh_run_next(g, l, &run, c))
        if ((uint64_t)c->id == req->token)
            which = c;
    if ((st = tl__gh_item_record(g, which ? which : run.first, req->key, l->date_ms, former)) !=
        TL_OK)
        return st;
    former->info.waiting = (uint32_t)run.live_after;
    former->info.holders = (uint32_t)run.n;
    *found = true;
    if (req->token != 0 && which == NULL)
        return tl__gh_fail(g, TL_ENOTOWNER, "github: #%s is held by %s with token %llu%s", req->key,
                           former->info.worker_id, (unsigned long long)run.first->id,
                           run.n > 1 ? " (and others), none with the token given" : "");

    /* The claims that go, noted before the list may be read again; the dead waiters that
     * would then hold go first, so that the next holders are live. */
    int64_t ids[64];
    size_t nids = 0;
    for (struct gh_item *c = which ? which : run.first; c != NULL && nids < 64;
         c = which ? NULL : tl__gh_run_next(g, l, &run, c)) {
        ids[nids++] = c->id;
        c->deleted = true;
    }
    (void)tl__gh_clear_joiners(g, l, run.last->id);
    for (size_t i = 0; i < nids; i++) {
        struct gh_item *c = tl__gh_list_find(l, ids[i]);
        if (c != NULL)
            c->deleted = false;
    }

    size_t broken = 0;
    for (size_t i = 0; i < nids && st == TL_OK; i++) {
        /* A completion's retry may have read the list again: not listed then, it is gone. */
        struct gh_item *h = tl__gh_list_find(l, ids[i]);
        bool gone = h == NULL;
        if (h != NULL)
            st = force_one(g, number, req, l, h, &gone);
        broken += st == TL_OK && !gone;
    }
    if (st != TL_OK)
        return st;
    if (broken == 0) {
        tl__record_clear(former);
        *found = false;
        return TL_OK;
    }
    if (g->cfg.assign && g->login != NULL && (which == NULL || run.n == 1)) {
        int64_t ignored;
        (void)tl__gh_assignee(g, number, false, &ignored);
    }
    return TL_OK;
}

tl_status tl__gh_release_as(struct tl_store *s, const struct tl_record *held, const char *summary,
                            bool done)
{
    return release_as(s, held, summary, done);
}
