/*
 * github_next.c -- claim-next and done markers of the GitHub Issues store (store ops version 4;
 * DESIGN.md section 8, docs/github.md "Claim-next and done markers"). Built on github.c's
 * protocol through github_next.h only.
 *
 * - claim_next over keys (issue numbers, in the caller's order): each candidate's state is read
 *   with a conditional GET of the issue (a 304 costs no primary rate budget); a closed issue is
 *   done and skipped; an open one gets the store's normal claim (github_claim), at most
 *   NEXT_TRIES of them per attempt. A busy claim is told held or queued from the list that
 *   claim has just read (no request).
 * - claim_next over a label: one list read of the open issues with that label (paginated, at
 *   most LABEL_PAGES pages), ranked by the priority-label table (?priorities=, most urgent
 *   first; unlabelled after the last), then oldest first. The listing tells, without a request
 *   per issue, which issues are closed (not listed: done) and which are assigned to a trusted
 *   account (the store assigns its login to a holder and removes it at release: likely held,
 *   skipped; tried last when stealing, since a dead holder leaves its assignee behind). Within a
 *   run of equal priority, the first SPREAD issues are rotated by a hash of the worker id, so
 *   that concurrent claimers start on different issues. Then the normal claim on at most
 *   NEXT_TRIES of them.
 * - Done: the completion comment that release posts, marked "done":true, on a closed issue.
 *   The release (github_release.c) closes the issue and posts it, THEN deletes the claim.
 *   A done marker is the newest trusted done completion of a closed issue, if no trusted reopen
 *   comment is newer. reopen reopens the issue and posts a reopen comment (the `reopened` event).
 * - finish: no transaction to fold the next claim into: next_tried is false and the core makes
 *   the claim-next. wait_any: none (GitHub cannot wake anyone); the core sleeps its backoff.
 */
#include "github_next.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tl.h"

#define NEXT_TRIES       3   /* normal claims per claim-next attempt, at most */
#define LABEL_PAGES      10  /* a label's listing: at most this many pages (of per_page) */
#define SPREAD           8   /* ties spread over the first this many of an equal-priority run */
#define PRIORITIES_MAX   32  /* labels in the priority table */
#define PRIORITY_LEN_MAX 100 /* characters of one (GitHub's own limit is 50) */
#define STATES_MAX       256 /* issue states remembered (ETag, closed) */

static const char *const default_priorities[] = {"priority: critical", "priority: high",
                                                 "priority: medium", "priority: low"};

/* ---- the issue-state cache: conditional GETs of issues ---- */

struct gh_state {
    int64_t number;
    char *etag;
    bool closed;
    uint64_t used;
};

/* A page of a label's listing as last read: asked for again with If-None-Match. */
struct label_page {
    char *url;
    char *etag;
    char *body;
    size_t len;
    char *next;   /* its next page's URL, NULL: none known */
    size_t count; /* items on it */
};

struct gh_next {
    struct gh_state states[STATES_MAX];
    size_t nstates;
    uint64_t clock;
    struct label_page pages[LABEL_PAGES]; /* the last label's listing */
};

static void label_page_clear(struct label_page *p)
{
    tl__free(p->url);
    tl__free(p->etag);
    tl__free(p->body);
    tl__free(p->next);
    memset(p, 0, sizeof(*p));
}

void tl__gh_next_free(void *state)
{
    struct gh_next *n = state;

    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nstates; i++)
        tl__free(n->states[i].etag);
    for (size_t i = 0; i < LABEL_PAGES; i++)
        label_page_clear(&n->pages[i]);
    tl__free(n);
}

static struct gh_next *next_of(struct tl_store *s)
{
    void **slot = tl__gh_next_slot(s);

    if (*slot == NULL)
        *slot = tl__calloc(1, sizeof(struct gh_next));
    return *slot;
}

static struct gh_state *state_get(struct gh_next *n, int64_t number, bool add)
{
    for (size_t i = 0; i < n->nstates; i++) {
        if (n->states[i].number == number) {
            n->states[i].used = ++n->clock;
            return &n->states[i];
        }
    }
    if (!add)
        return NULL;
    struct gh_state *st;
    if (n->nstates < STATES_MAX) {
        st = &n->states[n->nstates++];
    } else { /* the least recently used goes */
        st = &n->states[0];
        for (size_t i = 1; i < n->nstates; i++) {
            if (n->states[i].used < st->used)
                st = &n->states[i];
        }
        tl__free(st->etag);
    }
    memset(st, 0, sizeof(*st));
    st->number = number;
    st->used = ++n->clock;
    return st;
}

static tl_status oom(struct tl_store *s)
{
    return tl__store_fail(s, TL_ENOMEM, "github: out of memory");
}

/* Whether issue `number` is closed: GET with If-None-Match (a 304 costs no primary budget). */
static tl_status issue_closed(struct tl_store *s, int64_t number, bool *closed)
{
    struct gh_next *n = next_of(s);
    char suffix[64];
    struct tl_http_resp r = {0};

    if (n == NULL)
        return oom(s);
    struct gh_state *cached = state_get(n, number, false);
    (void)snprintf(suffix, sizeof(suffix), "/issues/%lld", (long long)number);
    char *url = tl__gh_repo_url(s, suffix);
    if (url == NULL)
        return oom(s);
    tl_status st = tl__gh_request(s, "GET", url, NULL, cached ? cached->etag : NULL, &r);
    if (st == TL_OK && r.status == 304 && cached != NULL) {
        *closed = cached->closed;
    } else if (st == TL_OK && r.status == 200) {
        json_t *o = json_loadb(r.body, r.body_len, 0, NULL);
        json_t *state = json_object_get(o, "state");
        if (json_is_string(state)) {
            *closed = strcmp(json_string_value(state), "closed") == 0;
            struct gh_state *e = state_get(n, number, true);
            tl__free(e->etag);
            e->etag = r.etag ? tl__strdup(r.etag) : NULL;
            e->closed = *closed;
        } else {
            st = tl__store_fail(s, TL_ESTORE, "github: issue #%lld: the answer has no state",
                                (long long)number);
        }
        json_decref(o);
    } else if (st == TL_OK) {
        st = tl__gh_unexpected(s, "GET", url, &r, number);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

tl_status tl__gh_next_close(struct tl_store *s, int64_t number, bool close, int64_t *at_ms)
{
    char suffix[64];
    struct tl_http_resp r = {0};
    struct gh_next *n = next_of(s);

    if (n == NULL)
        return oom(s);
    (void)snprintf(suffix, sizeof(suffix), "/issues/%lld", (long long)number);
    char *url = tl__gh_repo_url(s, suffix);
    if (url == NULL)
        return oom(s);
    const char *body = close ? "{\"state\":\"closed\",\"state_reason\":\"completed\"}"
                             : "{\"state\":\"open\",\"state_reason\":\"reopened\"}";
    tl_status st = tl__gh_request(s, "PATCH", url, body, NULL, &r);
    if (st == TL_OK && r.status == 200) {
        struct gh_state *e = state_get(n, number, true);
        tl__free(e->etag); /* the next GET asks afresh */
        e->etag = NULL;
        e->closed = close;
        if (at_ms != NULL)
            *at_ms = tl__gh_resp_ms(&r);
    } else if (st == TL_OK) {
        st = tl__gh_unexpected(s, "PATCH", url, &r, number);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

/* ---- the priority table ---- */

struct prio_table {
    char *names[PRIORITIES_MAX];
    size_t n;
    char *buf;
};

/* Splits `v` at commas, trimming blanks. False if an entry is empty or too long, or there are
 * too many or none. With `t`, fills it (t->buf owns the strings). */
static bool prio_split(const char *v, struct prio_table *t)
{
    char *buf = tl__strdup(v);
    size_t n = 0;
    bool ok = buf != NULL;

    for (char *p = buf; ok && p != NULL;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            p[--len] = '\0';
        if (len == 0 || len > PRIORITY_LEN_MAX || n == PRIORITIES_MAX)
            ok = false;
        else if (t != NULL)
            t->names[n] = p;
        n++;
        p = comma ? comma + 1 : NULL;
    }
    if (ok && t != NULL) {
        t->n = n;
        t->buf = buf;
    } else {
        tl__free(buf);
    }
    return ok;
}

bool tl__gh_next_priorities_ok(const char *v)
{
    return prio_split(v, NULL);
}

static bool prio_load(struct tl_store *s, struct prio_table *t)
{
    const char *v = tl__gh_priorities(s);

    memset(t, 0, sizeof(*t));
    if (v != NULL)
        return prio_split(v, t);
    t->n = sizeof(default_priorities) / sizeof(default_priorities[0]);
    for (size_t i = 0; i < t->n; i++)
        t->names[i] = (char *)default_priorities[i];
    return true;
}

/* ---- a label's listing ---- */

struct cand {
    int64_t number;
    int64_t created_ms;
    size_t rank;   /* index in the priority table; t->n: none of its labels */
    bool assigned; /* to a trusted account: likely held */
};

struct cands {
    struct cand *v;
    size_t n, cap;
};

/* The query value of `label`, percent-encoded. */
static char *pct_encode(const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = tl__malloc(strlen(v) * 3 + 1), *q = out;

    if (out == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *q++ = (char)*p;
        } else {
            *q++ = '%';
            *q++ = hex[*p >> 4];
            *q++ = hex[*p & 15];
        }
    }
    *q = '\0';
    return out;
}

static size_t rank_of(json_t *labels, const struct prio_table *t)
{
    size_t best = t->n, i;
    json_t *l;

    json_array_foreach(labels, i, l)
    {
        json_t *name = json_is_string(l) ? l : json_object_get(l, "name");
        if (!json_is_string(name))
            continue;
        for (size_t k = 0; k < best; k++) {
            if (strcasecmp(t->names[k], json_string_value(name)) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

static bool assigned_trusted(struct tl_store *s, json_t *issue)
{
    size_t i;
    json_t *a;

    json_array_foreach(json_object_get(issue, "assignees"), i, a)
    {
        json_t *login = json_object_get(a, "login");
        if (json_is_string(login) && tl__gh_trusts(s, json_string_value(login)))
            return true;
    }
    json_t *one = json_object_get(json_object_get(issue, "assignee"), "login");
    return json_is_string(one) && tl__gh_trusts(s, json_string_value(one));
}

/* Appends the issues of one page (pull requests are not tasks); *count: items on it. */
static tl_status take_page(struct tl_store *s, const char *body, size_t len,
                           const struct prio_table *t, struct cands *out, size_t *count)
{
    json_t *arr = json_loadb(body, len, 0, NULL);
    size_t i;
    json_t *o;
    tl_status st = TL_OK;

    if (!json_is_array(arr)) {
        json_decref(arr);
        return tl__store_fail(s, TL_ESTORE, "github: the issue list is not a JSON array");
    }
    *count = json_array_size(arr);
    json_array_foreach(arr, i, o)
    {
        json_t *num = json_object_get(o, "number");
        json_t *created = json_object_get(o, "created_at");
        json_t *state = json_object_get(o, "state");
        int64_t ms = 0;
        if (!json_is_integer(num) || json_integer_value(num) <= 0 ||
            json_object_get(o, "pull_request") != NULL ||
            (json_is_string(state) && strcmp(json_string_value(state), "open") != 0))
            continue;
        if (json_is_string(created))
            (void)tl__parse_iso(json_string_value(created), &ms);
        if (out->n == out->cap) {
            size_t ncap = out->cap ? out->cap * 2 : 64;
            struct cand *v = tl__realloc(out->v, ncap * sizeof(*v));
            if (v == NULL) {
                st = oom(s);
                break;
            }
            out->v = v;
            out->cap = ncap;
        }
        out->v[out->n++] = (struct cand){.number = json_integer_value(num),
                                         .created_ms = ms,
                                         .rank = rank_of(json_object_get(o, "labels"), t),
                                         .assigned = assigned_trusted(s, o)};
    }
    json_decref(arr);
    return st;
}

/* One list read: the open issues with `label`, oldest first (paginated). Each page is asked for
 * with If-None-Match when it was read before (a 304 costs no primary rate budget). A 304 need
 * not carry a Link: a full page whose next page is not known is followed in our own URL form
 * (page N+1), as the comment lists are (github_rest.c, tl__gh_read_pages). */
static tl_status list_label(struct tl_store *s, const char *label, const struct prio_table *t,
                            struct cands *out)
{
    struct gh_next *n = next_of(s);
    char *enc = pct_encode(label);
    char suffix[64];

    if (enc == NULL || n == NULL) {
        tl__free(enc);
        return oom(s);
    }
    (void)snprintf(suffix, sizeof(suffix), "&per_page=%u", tl__gh_per_page(s));
    char *tail =
        tl__asprintf("/issues?state=open&labels=%s&sort=created&direction=asc%s", enc, suffix);
    tl__free(enc);
    char *first = tail ? tl__gh_repo_url(s, tail) : NULL;
    char *url = first ? tl__strdup(first) : NULL;
    tl__free(tail);
    if (url == NULL) {
        tl__free(first);
        return oom(s);
    }
    tl_status st = TL_OK;
    for (size_t page = 0; url != NULL && st == TL_OK; page++) {
        struct tl_http_resp r = {0};
        if (page == LABEL_PAGES) {
            TL_LOG(s->log, TL_LOG_INFO,
                   "github: label %s: more than %d pages of open issues; the oldest %zu "
                   "are ranked",
                   label, LABEL_PAGES, out->n);
            break;
        }
        struct label_page *c = &n->pages[page];
        bool cached = c->url != NULL && strcmp(c->url, url) == 0 && c->etag != NULL;
        st = tl__gh_request(s, "GET", url, NULL, cached ? c->etag : NULL, &r);
        if (st == TL_OK && r.status == 200) {
            label_page_clear(c);
            c->url = url;
            url = NULL;
            c->etag = r.etag ? tl__strdup(r.etag) : NULL;
            c->body = tl__strdup(r.body);
            c->len = r.body_len;
            c->next = r.link != NULL ? tl__gh_next_url(s, r.link) : NULL;
            if (c->body == NULL)
                st = oom(s);
        } else if (st == TL_OK && !(r.status == 304 && cached)) {
            st = tl__gh_unexpected(s, "GET", url, &r, 0);
        }
        tl__http_resp_clear(&r);
        if (st == TL_OK)
            st = take_page(s, c->body, c->len, t, out, &c->count);
        tl__free(url);
        url = NULL;
        if (st != TL_OK)
            break;
        if (c->next != NULL)
            url = tl__strdup(c->next);
        else if (c->count >= tl__gh_per_page(s))
            url = tl__asprintf("%s&page=%zu", first, page + 2);
    }
    if (st != TL_OK) /* read afresh next time */
        for (size_t i = 0; i < LABEL_PAGES; i++)
            label_page_clear(&n->pages[i]);
    tl__free(url);
    tl__free(first);
    return st;
}

static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;

    if (x->assigned != y->assigned) /* stealing: the assigned ones last */
        return x->assigned ? 1 : -1;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return (x->number > y->number) - (x->number < y->number);
}

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Rotates the first min(SPREAD, run) of each run of equal rank (and assignment) by `h`. */
static void spread_ties(struct cand *v, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && v[j].rank == v[i].rank && v[j].assigned == v[i].assigned)
            j++;
        size_t w = j - i < SPREAD ? j - i : SPREAD;
        size_t k = w > 1 ? (size_t)(h % w) : 0;
        if (k > 0) {
            struct cand tmp[SPREAD];
            for (size_t x = 0; x < w; x++)
                tmp[x] = v[i + (x + k) % w];
            memcpy(v + i, tmp, w * sizeof(*tmp));
        }
        i = j;
    }
}

/* ---- claim_next ---- */

/* A busy claim: held or queued, from the list it has just read. */
static void count_busy(struct tl_store *s, int64_t number, enum tl_claim_mode mode,
                       struct tl_next_tally *t)
{
    struct tl_gh_line ln;

    tl__gh_line_known(s, number, &ln);
    /* Queued: a waiter has come to the head of the line and is about to take it, or the
     * holder is stealable but live waiters are in line. Else held (or a race lost: then someone
     * else holds it now). */
    bool queued =
        ln.known && ln.holder &&
        ((!ln.stale && ln.waiting) || (ln.stale && mode == TL_CLAIM_STEAL && ln.live > 0));
    if (queued)
        t->queued++;
    else
        t->held++;
}

/* The normal claim on issue `number`: TL_OK won, TL_EBUSY counted in `t`, or an error. */
static tl_status try_claim(struct tl_store *s, const struct tl_claim *req, int64_t number,
                           struct tl_claim_result *out, struct tl_next_tally *t)
{
    char key[32];
    struct tl_claim one = *req;

    (void)snprintf(key, sizeof(key), "%lld", (long long)number);
    one.key = key;
    one.waiter_id = NULL;
    memset(out, 0, sizeof(*out));
    tl_status st = tl__gh_claim(s, &one, out);
    if (st == TL_OK && out->rec.info.key == NULL && (out->rec.info.key = tl__strdup(key)) == NULL)
        st = oom(s);
    if (st == TL_OK) {
        /* Done meanwhile? A done release closes the issue before it deletes its claim, so an
         * issue read after our claim won tells (the assignee's answer says it for free). */
        int closed = tl__gh_claimed_closed(s);
        bool is_closed = closed == 1;
        if (closed < 0 && (st = issue_closed(s, number, &is_closed)) != TL_OK)
            tl__gh_withdraw(s, &out->rec);
        else if (!is_closed)
            return TL_OK;
        if (st == TL_OK) {
            TL_LOG(s->log, TL_LOG_DEBUG, "github: #%lld: done (closed) meanwhile: claim withdrawn",
                   (long long)number);
            tl__gh_withdraw(s, &out->rec);
            t->done++;
            st = TL_EBUSY;
        }
    } else if (st == TL_EBUSY) {
        count_busy(s, number, req->mode, t);
    }
    tl__record_clear(&out->rec);
    memset(out, 0, sizeof(*out));
    return st;
}

static tl_status next_by_label(struct tl_store *s, const struct tl_claim *req, const char *label,
                               struct tl_claim_result *out, struct tl_next_tally *t)
{
    struct prio_table pt;
    struct cands c = {0};
    tl_status st;

    if (!prio_load(s, &pt))
        return tl__store_fail(s, TL_EINVAL, "github: the priorities table is not usable");
    if ((st = list_label(s, label, &pt, &c)) != TL_OK)
        goto done;
    bool steal = req->mode == TL_CLAIM_STEAL;
    size_t k = 0;
    for (size_t i = 0; i < c.n; i++) {
        if (c.v[i].assigned && !steal) {
            t->held++; /* likely held: the store assigns its holders */
            continue;
        }
        c.v[k++] = c.v[i];
    }
    c.n = k;
    if (c.n > 1)
        qsort(c.v, c.n, sizeof(*c.v), cmp_cand);
    spread_ties(c.v, c.n, hash_id(req->worker_id));
    st = TL_EBUSY;
    for (size_t i = 0; i < c.n; i++) {
        if (i == NEXT_TRIES) {
            t->held += (uint32_t)(c.n - i); /* not tried this time: the next attempt may */
            t->cut = true;
            break;
        }
        st = try_claim(s, req, c.v[i].number, out, t);
        if (st != TL_EBUSY)
            break;
    }
done:
    if (pt.buf != NULL)
        tl__free(pt.buf);
    tl__free(c.v);
    return st;
}

static tl_status next_by_keys(struct tl_store *s, const struct tl_claim *req,
                              const struct tl_candidates *c, struct tl_claim_result *out,
                              size_t *won, struct tl_next_tally *t)
{
    size_t tries = 0;
    tl_status st;

    for (size_t i = 0; i < c->nkeys; i++) {
        int64_t number;
        bool closed = false;
        if (!tl__gh_parse_key(c->keys[i], &number))
            return tl__store_fail(s, TL_EINVAL, "github: key \"%.64s\" is not an issue number",
                                  c->keys[i]);
        if (tries == NEXT_TRIES) {
            t->held += (uint32_t)(c->nkeys - i); /* not looked at: the next attempt may */
            t->cut = true;
            break;
        }
        if ((st = issue_closed(s, number, &closed)) != TL_OK)
            return st;
        if (closed) {
            t->done++;
            if (c->done_seen != NULL)
                c->done_seen[i] = 1;
            continue;
        }
        tries++;
        st = try_claim(s, req, number, out, t);
        if (st == TL_OK) {
            /* The key as the caller spelled it ("#12" or "12"). */
            char *key = tl__strdup(c->keys[i]);
            if (key == NULL) {
                tl__record_clear(&out->rec);
                return oom(s);
            }
            tl__free(out->rec.info.key);
            out->rec.info.key = key;
            *won = i;
            return TL_OK;
        }
        if (st != TL_EBUSY)
            return st;
    }
    return TL_EBUSY;
}

tl_status tl__gh_claim_next(struct tl_store *s, const struct tl_claim *req,
                            const struct tl_candidates *c, struct tl_claim_result *out, size_t *won,
                            struct tl_next_tally *tally)
{
    memset(tally, 0, sizeof(*tally));
    *won = SIZE_MAX;
    if (req->mode == TL_CLAIM_FORCE || req->priority != 0)
        return tl__store_fail(s, TL_EINVAL, "github: claim-next neither forces nor queues");
    tl__gh_begin(s);
    if (c->keys == NULL) {
        if (c->label == NULL || c->label[0] == '\0')
            return tl__store_fail(s, TL_EINVAL, "github: claim-next: no keys and no label");
        return next_by_label(s, req, c->label, out, tally);
    }
    return next_by_keys(s, req, c, out, won, tally);
}

/* ---- finish, reopen ---- */

tl_status tl__gh_finish(struct tl_store *s, const struct tl_finish *f, struct tl_finish_result *out)
{
    memset(out, 0, sizeof(*out));
    /* No transaction: the core makes the claim-next (next_tried false). */
    return tl__gh_release_as(s, f->held, f->summary, f->done);
}

tl_status tl__gh_reopen(struct tl_store *s, const char *key, const char *worker_id,
                        const char *node_id, bool *was_done)
{
    int64_t number, at = 0;
    bool closed = false;
    tl_status st;

    *was_done = false;
    if (!tl__gh_parse_key(key, &number))
        return tl__store_fail(s, TL_EINVAL, "github: key \"%.64s\" is not an issue number", key);
    tl__gh_begin(s);
    if ((st = issue_closed(s, number, &closed)) != TL_OK || !closed)
        return st;
    if ((st = tl__gh_next_close(s, number, false, &at)) != TL_OK)
        return st;
    *was_done = true;
    /* The audit trail's `reopened` event. The issue is open already: a failure is logged. */
    const struct tl_gh_reopen ro = {
        .worker_id = (char *)worker_id, .node_id = (char *)node_id, .at_ms = at};
    char *text = tl__gh_build_reopen(&ro);
    if (text == NULL || tl__gh_post(s, number, text) != TL_OK)
        TL_LOG(s->log, TL_LOG_WARN, "github: #%lld: reopened, but the reopen comment failed: %s",
               (long long)number, text ? s->errmsg : "out of memory");
    tl__free(text);
    s->errmsg[0] = '\0';
    return TL_OK;
}

/* ---- done_list ---- */

struct done_scan {
    int64_t issue; /* one issue, or 0: every issue */
    struct {       /* per issue: its newest done completion and reopen */
        int64_t issue;
        int64_t done_id, reopen_id;
        const struct tl_gh_release *rel;
    } * v;
    size_t n, cap;
    bool oom;
};

static void scan_mark(void *ud, const struct tl_gh_mark *m)
{
    struct done_scan *d = ud;
    size_t i = 0;

    if (d->oom || m->issue <= 0 || (d->issue > 0 && m->issue != d->issue))
        return;
    if (m->kind == TL_GH_RELEASE && (!m->rel->done || m->rel->forced_worker_id != NULL))
        return;
    while (i < d->n && d->v[i].issue != m->issue)
        i++;
    if (i == d->n) {
        if (d->n == d->cap) {
            size_t ncap = d->cap ? d->cap * 2 : 16;
            void *v = tl__realloc(d->v, ncap * sizeof(*d->v));
            if (v == NULL) {
                d->oom = true;
                return;
            }
            d->v = v;
            d->cap = ncap;
        }
        memset(&d->v[d->n], 0, sizeof(d->v[d->n]));
        d->v[d->n++].issue = m->issue;
    }
    if (m->kind == TL_GH_REOPEN && m->id > d->v[i].reopen_id) {
        d->v[i].reopen_id = m->id;
    } else if (m->kind == TL_GH_RELEASE && m->id > d->v[i].done_id) {
        d->v[i].done_id = m->id;
        d->v[i].rel = m->rel;
    }
}

/* The closed issues, most recently updated first, at most history_pages pages: `*out` sorted. */
static tl_status closed_issues(struct tl_store *s, int64_t **out, size_t *n)
{
    char suffix[96];
    size_t cap = 0;
    tl_status st = TL_OK;

    *out = NULL;
    *n = 0;
    (void)snprintf(suffix, sizeof(suffix),
                   "/issues?state=closed&sort=updated&direction=desc&per_page=%u",
                   tl__gh_per_page(s));
    char *url = tl__gh_repo_url(s, suffix);
    for (uint32_t page = 0; url != NULL && page < tl__gh_history_pages(s) && st == TL_OK; page++) {
        struct tl_http_resp r = {0};
        st = tl__gh_request(s, "GET", url, NULL, NULL, &r);
        if (st == TL_OK && r.status != 200)
            st = tl__gh_unexpected(s, "GET", url, &r, 0);
        json_t *arr = st == TL_OK ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
        size_t i;
        json_t *o;
        json_array_foreach(arr, i, o)
        {
            json_t *num = json_object_get(o, "number");
            if (!json_is_integer(num) || json_object_get(o, "pull_request") != NULL)
                continue;
            if (*n == cap) {
                size_t ncap = cap ? cap * 2 : 128;
                int64_t *v = tl__realloc(*out, ncap * sizeof(*v));
                if (v == NULL) {
                    st = oom(s);
                    break;
                }
                *out = v;
                cap = ncap;
            }
            (*out)[(*n)++] = json_integer_value(num);
        }
        json_decref(arr);
        tl__free(url);
        url = st == TL_OK && r.link != NULL ? tl__gh_next_url(s, r.link) : NULL;
        tl__http_resp_clear(&r);
    }
    tl__free(url);
    return st;
}

static int cmp_done(const void *a, const void *b)
{
    const struct tl_done *x = *(struct tl_done *const *)a;
    const struct tl_done *y = *(struct tl_done *const *)b;

    return strcmp(x->key, y->key);
}

static tl_status push_done(struct tl_store *s, int64_t issue, const char *key,
                           const struct tl_gh_release *rel, struct tl_done ***arr, size_t *n,
                           size_t *cap)
{
    char num[32];
    struct tl_done *d = tl__done_new();

    (void)snprintf(num, sizeof(num), "%lld", (long long)issue);
    if (d == NULL)
        return oom(s);
    d->key = tl__strdup(key ? key : num);
    d->worker_id = tl__strdup(rel->worker_id ? rel->worker_id : "?");
    d->node_id = tl__strdup(rel->node_id ? rel->node_id : "?");
    d->token = rel->token;
    d->done_at_ms = rel->released_at_ms;
    d->summary = tl__strdup(rel->summary ? rel->summary : "");
    if (!d->key || !d->worker_id || !d->node_id || !d->summary ||
        tl__done_array_push(arr, n, cap, d) != TL_OK) {
        tl__done_free(d);
        return oom(s);
    }
    return TL_OK;
}

tl_status tl__gh_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                           size_t *count)
{
    struct done_scan d = {0};
    struct tl_done **arr = NULL;
    size_t n = 0, cap = 0;
    int64_t number = 0, *closed = NULL;
    size_t nclosed = 0;
    bool is_closed = false;
    tl_status st;

    *out = NULL;
    *count = 0;
    if (key != NULL && !tl__gh_parse_key(key, &number))
        return tl__store_fail(s, TL_EINVAL, "github: key \"%.64s\" is not an issue number", key);
    tl__gh_begin(s);
    if (number > 0) {
        if ((st = issue_closed(s, number, &is_closed)) != TL_OK || !is_closed)
            return st;
    } else if ((st = closed_issues(s, &closed, &nclosed)) != TL_OK) {
        return st;
    }
    d.issue = number;
    if ((st = tl__gh_marks(s, number, scan_mark, &d)) == TL_OK && d.oom)
        st = oom(s);
    for (size_t i = 0; i < d.n && st == TL_OK; i++) {
        if (d.v[i].done_id == 0 || d.v[i].reopen_id > d.v[i].done_id)
            continue;
        bool is = number > 0;
        for (size_t k = 0; !is && k < nclosed; k++)
            is = closed[k] == d.v[i].issue;
        if (is)
            st = push_done(s, d.v[i].issue, number > 0 ? key : NULL, d.v[i].rel, &arr, &n, &cap);
    }
    tl__free(d.v);
    tl__free(closed);
    if (st != TL_OK) {
        tl_done_array_free(arr, n);
        return st;
    }
    if (n > 1)
        qsort((void *)arr, n, sizeof(struct tl_done *), cmp_done);
    *out = arr;
    *count = n;
    return TL_OK;
}
