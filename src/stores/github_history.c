/*
 * github_history.c -- the GitHub store's read-only views: inspect, list, the audit trail read back
 * from the comments (history), and the done/reopen marks github_next.c asks for. Nothing here
 * writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "github_int.h"

/* ---- inspect, list ---- */

tl_status tl__github_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                             bool *found)
{
    struct github_store *g = (struct github_store *)s;
    struct gh_list *l;
    int64_t number;
    tl_status st;

    *found = false;
    if (!tl__gh_parse_key(key, &number))
        return tl__github_check_key(s, key);
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
        return st;
    struct gh_item *h = tl__gh_line_holder(g, l, 0, 0, NULL);
    if (h == NULL)
        return TL_OK; /* free: dead waiters at most, and no live claim (it would hold) */
    if ((st = tl__gh_item_record(g, h, key, l->date_ms, out)) != TL_OK)
        return st;
    tl__free(out->opaque);
    out->opaque = NULL;
    struct gh_run run;
    tl__gh_run(g, l, 0, 0, &run);
    out->info.waiting = (uint32_t)run.live_after;
    out->info.holders = (uint32_t)run.n; /* h is the first: the exclusive one, else the oldest */
    *found = true;
    return TL_OK;
}

static int cmp_key(const void *a, const void *b)
{
    const struct tl_record *x = *(struct tl_record *const *)a;
    const struct tl_record *y = *(struct tl_record *const *)b;

    int c = strcmp(x->info.key, y->info.key);

    return c != 0 ? c : (x->info.token > y->info.token) - (x->info.token < y->info.token);
}

tl_status tl__github_list(struct tl_store *s, struct tl_record ***out, size_t *count)
{
    struct github_store *g = (struct github_store *)s;
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    struct gh_list *l;
    tl_status st;

    g->op_seq++;

    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = tl__gh_read_list(g, 0, true, &l)) != TL_OK || l == NULL)
        return st;
    /* The holders of each issue (github_modes.c), found from its lowest claim. */
    for (size_t i = 0; i < l->npages && st == TL_OK; i++) {
        for (size_t j = 0; j < l->pages[i].nitems && st == TL_OK; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!tl__gh_is_claim(g, it) || it->issue <= 0 ||
                tl__gh_line_holder(g, l, it->issue, 0, NULL) != it)
                continue;
            struct gh_run run;
            tl__gh_run(g, l, it->issue, 0, &run);
            st = tl__gh_push_run(g, l, it->issue, &run, &arr, &n, &cap);
        }
    }
    if (st != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return st;
    }
    if (n > 1)
        qsort(arr, n, sizeof(*arr), cmp_key); /* NOLINT(bugprone-sizeof-expression) */
    *out = arr;
    *count = n;
    return TL_OK;
}

/* ---- history ----
 *
 * The issue's comments are the audit trail. A completion comment tells of a whole tenure: the
 * claim it ends (token, worker, when it was claimed, how: free, stale or forced) and the release
 * (when, the summary). The live holder's claim tells of its own acquisition. A claim that was
 * stolen or forced away is deleted without a completion; it lives on in the "from" chain of the
 * claim that displaced it (and in that claim's completion later), which names the displaced
 * holders with their tokens and claim times. Losses cannot be told: the loser's claim is gone.
 */

/* An event as the comments tell it, before it is handed out. Strings are borrowed from the
 * listed comments. */
struct gh_ev {
    int64_t issue;
    uint64_t token; /* the holder the event is about */
    int phase;      /* 0: it took the lock (acquired, stolen, forced); 1: it released it */
    int rank;       /* 0: told by the holder's own comment; 1: by another claim's "from" */
    int64_t at_ms;
    tl_event_kind kind;
    const char *worker_id;
    const char *node_id;
    const char *summary;     /* released: the summary, or NULL */
    const char *from_worker; /* stolen, forced: whom it displaced, when known */
    uint64_t from_token;
    bool conv; /* upgraded, downgraded: from_token is the claim it converted */
};

struct gh_evs {
    struct gh_ev *v;
    size_t n, cap;
};

/* One holder of a chain: a claim, or a holder it displaced. */
struct gh_link {
    uint64_t token;
    enum tl_gh_took took;
    enum tl_gh_conv conv; /* a conversion (upgraded, downgraded) of an earlier claim */
    const char *worker_id;
    const char *node_id;
    int64_t at_ms;
};

static bool evs_push(struct gh_evs *e, const struct gh_ev *ev)
{
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 32;
        struct gh_ev *n = tl__realloc(e->v, ncap * sizeof(*n));
        if (n == NULL)
            return false;
        e->v = n;
        e->cap = ncap;
    }
    e->v[e->n++] = *ev;
    return true;
}

/* The acquisitions a chain tells of: chain[0] is the claim itself, the rest the holders it
 * displaced. Whom a steal or force displaced is the nearest earlier holder in the chain. */
static bool add_chain(struct gh_evs *e, int64_t issue, const struct gh_link *chain, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct gh_link *c = &chain[i];
        struct gh_ev ev = {.issue = issue,
                           .token = c->token,
                           .rank = i == 0 ? 0 : 1,
                           .at_ms = c->at_ms,
                           .kind = c->conv == TL_GH_CONV_UPGRADED     ? TL_EVENT_UPGRADED
                                   : c->conv == TL_GH_CONV_DOWNGRADED ? TL_EVENT_DOWNGRADED
                                   : c->took == TL_GH_TOOK_STALE      ? TL_EVENT_STOLEN
                                   : c->took == TL_GH_TOOK_FORCED     ? TL_EVENT_FORCED
                                                                      : TL_EVENT_ACQUIRED,
                           .worker_id = c->worker_id,
                           .node_id = c->node_id,
                           .conv = c->conv != TL_GH_CONV_NONE};
        bool from = c->took != TL_GH_TOOK_FREE || c->conv != TL_GH_CONV_NONE;
        for (size_t j = 0; from && j < n; j++) {
            if (chain[j].token < c->token &&
                (ev.from_worker == NULL || chain[j].token > ev.from_token)) {
                ev.from_worker = chain[j].worker_id;
                ev.from_token = chain[j].token;
            }
        }
        if (!evs_push(e, &ev))
            return false;
    }
    return true;
}

static size_t chain_of(struct gh_link chain[1 + TL_GH_FROM_DEPTH], const struct gh_link *self,
                       const struct tl_gh_from *from, size_t nfrom)
{
    size_t n = 1;

    chain[0] = *self;
    for (size_t i = 0; i < nfrom && i < TL_GH_FROM_DEPTH; i++, n++)
        chain[n] = (struct gh_link){.token = from[i].token,
                                    .took = from[i].took,
                                    .conv = from[i].conv,
                                    .worker_id = from[i].worker_id,
                                    .node_id = from[i].node_id,
                                    .at_ms = from[i].claimed_at_ms};
    return n;
}

struct gh_claimref {
    int64_t issue;
    const struct gh_item *it;
};

static int cmp_claimref(const void *a, const void *b)
{
    const struct gh_claimref *x = a, *y = b;

    if (x->issue != y->issue)
        return x->issue < y->issue ? -1 : 1;
    return (x->it->id > y->it->id) - (x->it->id < y->it->id);
}

/* Same event (issue, token, phase), the best-told first. */
static int cmp_ev_identity(const void *a, const void *b)
{
    const struct gh_ev *x = a, *y = b;

    if (x->issue != y->issue)
        return x->issue < y->issue ? -1 : 1;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    if (x->phase != y->phase)
        return x->phase - y->phase;
    return x->rank - y->rank;
}

/* Oldest first: by time, then (GitHub's times have whole seconds) by the holders' tokens, an
 * acquisition before its release. */
static int cmp_ev_order(const void *a, const void *b)
{
    const struct gh_ev *x = a, *y = b;

    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    if (x->phase != y->phase)
        return x->phase - y->phase;
    return (x->issue > y->issue) - (x->issue < y->issue);
}

/*
 * The events the listed comments tell of, one per (issue, token, phase), unordered: of issue
 * `number`, or (0) of the issue each comment names. Only trusted accounts' markers count; a
 * live claim counts only if it is its issue's holder (the lowest). *oldest_ms: the creation time
 * of the oldest marker comment listed (INT64_MAX: none).
 */
static tl_status collect_events(struct github_store *g, const struct gh_page *pages, size_t npages,
                                int64_t number, struct gh_evs *out, int64_t *oldest_ms)
{
    struct gh_claimref *claims = NULL;
    size_t nclaims = 0, total = 0;
    struct gh_link chain[1 + TL_GH_FROM_DEPTH];
    tl_status st = TL_OK;

    memset(out, 0, sizeof(*out));
    *oldest_ms = INT64_MAX;
    for (size_t i = 0; i < npages; i++)
        total += pages[i].nitems;
    /* Never NULL, also for no items (which clang-analyzer cannot tell from the loop below). */
    if ((claims = tl__malloc((total > 0 ? total : 1) * sizeof(*claims))) == NULL)
        return tl__gh_oom(g);

    for (size_t i = 0; i < npages && st == TL_OK; i++) {
        for (size_t j = 0; j < pages[i].nitems && st == TL_OK; j++) {
            const struct gh_item *it = &pages[i].items[j];
            int64_t issue = number > 0 ? number : it->issue;

            if (it->created_ms > 0 && it->created_ms < *oldest_ms)
                *oldest_ms = it->created_ms;
            if (issue <= 0 || it->deleted || !tl__gh_trusted(g, it->login))
                continue;
            if (it->kind == TL_GH_CLAIM) {
                claims[nclaims++] = (struct gh_claimref){.issue = issue, .it = it};
            } else if (it->kind == TL_GH_RELEASE) {
                const struct tl_gh_release *r = &it->rel;
                const struct gh_link self = {.token = r->token,
                                             .took = r->took,
                                             .conv = r->conv,
                                             .worker_id = r->worker_id,
                                             .node_id = r->node_id,
                                             .at_ms = r->claimed_at_ms};
                struct gh_ev rel = {.issue = issue,
                                    .token = r->token,
                                    .phase = 1,
                                    .at_ms = r->released_at_ms,
                                    .kind = r->done ? TL_EVENT_DONE : TL_EVENT_RELEASED,
                                    .worker_id = r->worker_id,
                                    .node_id = r->node_id,
                                    .summary = r->summary};
                size_t n = chain_of(chain, &self, r->from, r->nfrom);
                bool ok = add_chain(out, issue, chain, n);
                if (ok && r->forced_worker_id != NULL) {
                    /* A forced release: whoever broke the lock forced it and released it at
                     * once, with the completion comment's id as its token (larger than the
                     * holder's, smaller than the next claim's). */
                    const struct gh_ev forced = {.issue = issue,
                                                 .token = (uint64_t)it->id,
                                                 .at_ms = r->released_at_ms,
                                                 .kind = TL_EVENT_FORCED,
                                                 .worker_id = r->forced_worker_id,
                                                 .node_id = r->forced_node_id,
                                                 .from_worker = r->worker_id,
                                                 .from_token = r->token};
                    rel.token = (uint64_t)it->id;
                    rel.worker_id = r->forced_worker_id;
                    rel.node_id = r->forced_node_id;
                    ok = evs_push(out, &forced);
                }
                if (!ok || !evs_push(out, &rel))
                    st = tl__gh_oom(g);
            } else if (it->kind == TL_GH_REOPEN) {
                /* Told by the reopen comment (github_next.c); its id keeps it one of its own
                 * (phase 2), and the event reports no token. */
                const struct gh_ev ro = {.issue = issue,
                                         .token = (uint64_t)it->id,
                                         .phase = 2,
                                         .at_ms = it->rel.released_at_ms,
                                         .kind = TL_EVENT_REOPENED,
                                         .worker_id = it->rel.worker_id,
                                         .node_id = it->rel.node_id};
                if (!evs_push(out, &ro))
                    st = tl__gh_oom(g);
            }
        }
    }
    /* The holders of each issue are the leading run of its claims (github_modes.c): its
     * lowest claim, and the shared claims right after a shared one, up to its slots; later ones
     * wait in line, or are racing or withdrawing claimants that never held it. */
    if (nclaims > 1)
        qsort(claims, nclaims, sizeof(*claims), cmp_claimref);
    bool open = false; /* the current issue's run may still grow */
    uint32_t slots = 0;
    size_t held = 0;
    for (size_t i = 0; i < nclaims && st == TL_OK; i++) {
        const struct gh_item *it = claims[i].it;
        const struct tl_info *ci = &it->claim.rec.info;
        if (i == 0 || claims[i].issue != claims[i - 1].issue) {
            slots = ci->mode == TL_SHARED ? ci->slots : 0;
            held = 1;
            open = ci->mode == TL_SHARED && slots != 1;
        } else if (open && ci->mode == TL_SHARED && ci->slots == slots) {
            held++;
            open = slots == 0 || held < slots;
        } else {
            open = false;
            continue;
        }
        const struct gh_link self = {.token = (uint64_t)it->id,
                                     .took = it->claim.took,
                                     .conv = it->claim.conv,
                                     .worker_id = it->claim.rec.info.worker_id,
                                     .node_id = it->claim.rec.info.node_id,
                                     .at_ms = it->created_ms};
        size_t n = chain_of(chain, &self, it->claim.from, it->claim.nfrom);
        if (!add_chain(out, claims[i].issue, chain, n))
            st = tl__gh_oom(g);
    }
    tl__free(claims);
    if (st != TL_OK) {
        tl__free(out->v);
        memset(out, 0, sizeof(*out));
        return st;
    }

    /* One of each: a holder's own comment tells it best; chains may repeat it. */
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), cmp_ev_identity);
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++) {
        const struct gh_ev *v = &out->v[i];
        if (k > 0 && out->v[k - 1].issue == v->issue && out->v[k - 1].token == v->token &&
            out->v[k - 1].phase == v->phase)
            continue;
        out->v[k++] = *v;
    }
    out->n = k;
    return TL_OK;
}

struct gh_enough {
    struct github_store *g;
    size_t limit;
};

/*
 * Whether the newest pages of the repository-wide list (newest first) already hold the newest
 * `limit` events. Every event is at most as recent as the comment that tells it, so the events
 * after the oldest comment read are all known: once there are `limit` of them, older pages
 * cannot change the answer.
 */
static bool history_enough(void *ud, const struct gh_page *pages, size_t npages, tl_status *err)
{
    struct gh_enough *e = ud;
    struct gh_evs evs;
    int64_t oldest;
    size_t after = 0;

    if ((*err = collect_events(e->g, pages, npages, 0, &evs, &oldest)) != TL_OK)
        return true;
    for (size_t i = 0; i < evs.n; i++)
        after += evs.v[i].at_ms > oldest;
    tl__free(evs.v);
    return after >= e->limit;
}

static tl_status make_event(struct github_store *g, const struct gh_ev *v, const char *key,
                            struct tl_event **out)
{
    char num[32];
    struct tl_event *e = tl__event_new();

    *out = NULL;
    if (e == NULL)
        return tl__gh_oom(g);
    (void)snprintf(num, sizeof(num), "%lld", (long long)v->issue);
    e->at_ms = v->at_ms;
    e->kind = v->kind;
    e->token = v->kind == TL_EVENT_REOPENED ? 0 : v->token;
    e->key = tl__strdup(key ? key : num);
    e->worker_id = tl__strdup(v->worker_id);
    e->node_id = tl__strdup(v->node_id);
    bool detail = false;
    bool released = v->kind == TL_EVENT_RELEASED || v->kind == TL_EVENT_DONE;
    if (released && v->summary != NULL) {
        detail = true;
        e->detail = tl__strdup(v->summary);
    } else if (!released && v->conv && v->from_worker != NULL) {
        detail = true;
        e->detail = tl__asprintf("from token %llu", (unsigned long long)v->from_token);
    } else if (!released && v->from_worker != NULL) {
        detail = true;
        e->detail =
            tl__asprintf("from %s (token %llu)", v->from_worker, (unsigned long long)v->from_token);
    }
    if (!e->key || !e->worker_id || !e->node_id || (detail && !e->detail)) {
        tl__event_free(e);
        return tl__gh_oom(g);
    }
    *out = e;
    return TL_OK;
}

tl_status tl__github_history(struct tl_store *s, const char *key, size_t limit,
                             struct tl_event ***out, size_t *count)
{
    struct github_store *g = (struct github_store *)s;
    struct tl_event **arr = NULL;
    size_t n = 0, cap = 0;
    struct gh_evs evs = {0};
    struct gh_list *l;
    bool complete = true;
    int64_t number = 0, oldest;
    tl_status st;

    *out = NULL;
    *count = 0;
    if (key != NULL && !tl__gh_parse_key(key, &number))
        return tl__github_check_key(s, key);
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if (number > 0) {
        /* The issue's every comment (one request per 100; 304s when unchanged). */
        if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
            return st;
    } else {
        /* The repository's newest comments first, until they hold the newest `limit` events,
         * at most history_pages pages: a busy repository's log is bounded, not complete. */
        struct gh_enough e = {.g = g, .limit = limit};
        char *url = tl__asprintf("%s/repos/%s/%s/issues/comments?sort=created&direction=desc"
                                 "&per_page=%u",
                                 g->api, g->owner, g->repo, g->cfg.per_page);
        if (url == NULL || (l = tl__gh_list_get(g, -1)) == NULL) {
            tl__free(url);
            return tl__gh_oom(g);
        }
        if ((st = tl__gh_read_pages(g, l, url, 0, true, g->cfg.history_pages, false, history_enough,
                                    &e, &complete)) != TL_OK)
            return st;
    }
    if ((st = collect_events(g, l->pages, l->npages, number, &evs, &oldest)) != TL_OK)
        return st;
    if (!complete) {
        /* Only what the pages read tell completely: the events after their oldest comment. */
        size_t k = 0;
        for (size_t i = 0; i < evs.n; i++) {
            if (evs.v[i].at_ms > oldest)
                evs.v[k++] = evs.v[i];
        }
        LOG(g, TL_LOG_DEBUG,
            "github: the repository's log read its newest %zu pages of comments (at most %u): "
            "%zu events after the oldest of them",
            l->npages, g->cfg.history_pages, k);
        evs.n = k;
    }
    if (evs.n > 1)
        qsort(evs.v, evs.n, sizeof(*evs.v), cmp_ev_order);
    for (size_t i = evs.n > limit ? evs.n - limit : 0; i < evs.n; i++) {
        struct tl_event *e;
        if ((st = make_event(g, &evs.v[i], key, &e)) != TL_OK)
            break;
        if (tl__event_array_push(&arr, &n, &cap, e) != TL_OK) {
            tl__event_free(e);
            st = tl__gh_oom(g);
            break;
        }
    }
    tl__free(evs.v);
    if (st != TL_OK) {
        tl_event_array_free(arr, n);
        return st;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

tl_status tl__gh_marks(struct tl_store *s, int64_t number, tl_gh_mark_fn *fn, void *ud)
{
    struct github_store *g = (struct github_store *)s;
    struct gh_list *l = NULL;
    tl_status st;

    if (number > 0) {
        if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
            return st;
    } else {
        bool complete;
        char *url = tl__asprintf("%s/repos/%s/%s/issues/comments?sort=created&direction=desc"
                                 "&per_page=%u",
                                 g->api, g->owner, g->repo, g->cfg.per_page);
        if (url == NULL || (l = tl__gh_list_get(g, -1)) == NULL) {
            tl__free(url);
            return tl__gh_oom(g);
        }
        if ((st = tl__gh_read_pages(g, l, url, 0, true, g->cfg.history_pages, false, NULL, NULL,
                                    &complete)) != TL_OK)
            return st;
    }
    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            const struct gh_item *it = &l->pages[i].items[j];
            if (it->deleted || !tl__gh_trusted(g, it->login) ||
                (it->kind != TL_GH_RELEASE && it->kind != TL_GH_REOPEN))
                continue;
            const struct tl_gh_mark m = {.issue = number > 0 ? number : it->issue,
                                         .id = it->id,
                                         .kind = it->kind,
                                         .rel = &it->rel};
            fn(ud, &m);
        }
    }
    return TL_OK;
}
