/*
 * github_rest.c -- the GitHub store's REST client: every request goes through tl__gh_call, which
 * honours the process-wide rate limits and write budget and bounds each wait by the call's
 * deadline; comment lists are read a page at a time with If-None-Match into a per-instance cache;
 * and the single requests the protocol makes (post, get, delete a comment; the assignee; the
 * issue's comment count; the token's login). Nothing here knows what a claim means beyond
 * parsing its marker (github_marker.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "github_int.h"

#define MAX_PAGES         2000
#define SECONDARY_BASE_MS 60000
#define SECONDARY_MAX_MS  (15 * 60 * 1000)

/* ---- process-wide state ----
 *
 * GitHub's limits are per account, not per connection: the manager's two instances (caller and
 * heartbeat thread), and every other manager of the process, spend one account's allowance. A
 * budget kept per instance would let N instances spend N times GitHub's content-creation limit
 * and be blocked as a whole; a secondary limit seen by one instance must stop the others from
 * hammering too. So the write budget and the "blocked until" times are the process's one piece
 * of GitHub state: a global, guarded by its mutex, never held across I/O. (Instances of several
 * accounts in one process share it too, which is conservative.)
 */
static struct {
    pthread_mutex_t mu;
    int64_t writes[BUDGET_RING]; /* real monotonic ms of recent writes, a ring */
    size_t next;
    size_t count;
    int64_t blocked_until;   /* real monotonic ms: no request before this */
    bool blocked_secondary;  /* why: a secondary limit (else the primary one) */
    uint32_t secondary_next; /* backoff of the next secondary limit without retry-after */
} gh_global = {.mu = PTHREAD_MUTEX_INITIALIZER}; /* NOLINT: see the comment above */

tl_status tl__gh_fail(struct github_store *g, tl_status st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tl__vformat(g->base.errmsg, fmt, ap);
    va_end(ap);
    return st;
}

tl_status tl__gh_oom(struct github_store *g)
{
    return tl__gh_fail(g, TL_ENOMEM, "out of memory");
}

/* ---- rate limits and the write budget ---- */

static int64_t mono(void)
{
    return tl__real_mono_ms();
}

static void until_text(int64_t wait_ms, char buf[TL_ISO_SIZE])
{
    tl__format_iso(tl__real_now_ms() + wait_ms, buf);
    char *dot = strchr(buf, '.');
    if (dot != NULL) {
        dot[0] = 'Z';
        dot[1] = '\0';
    }
}

/*
 * Whether the current call may wait `ms`: the wait must end by the caller's deadline, or by the
 * call's own one (a renew's), or else be at most the call's wait limit. Every wait of a call
 * (rate limits, the write budget, retry and re-read delays) asks this first.
 */
/* The end of the current call by the clock's mono_ms: the caller's deadline or the call's own,
 * whichever is sooner; 0 when it has neither. */
static int64_t call_end(const struct github_store *g)
{
    int64_t a = g->base.deadline_mono_ms, b = g->op_deadline;

    return a == 0 ? b : b == 0 || a < b ? a : b;
}

bool tl__gh_may_wait(struct github_store *g, int64_t ms)
{
    int64_t end = call_end(g);

    if (end != 0)
        return g->base.clock->mono_ms(g->base.clock->ud) + ms <= end;
    return ms <= (int64_t)g->op_max_wait_ms;
}

/* Sleeps `ms` if may_wait allows it; else returns false at once, without sleeping. */
bool tl__gh_nap(struct github_store *g, uint32_t ms)
{
    if (!tl__gh_may_wait(g, ms))
        return false;
    tl__real_sleep_ms(ms);
    return true;
}

/* The wait before any request may go out (a limit in force), and why. */
static int64_t blocked_wait(bool *secondary)
{
    pthread_mutex_lock(&gh_global.mu);
    int64_t w = gh_global.blocked_until - mono();
    *secondary = gh_global.blocked_secondary;
    pthread_mutex_unlock(&gh_global.mu);
    return w > 0 ? w : 0;
}

static void block_for(int64_t ms, bool secondary)
{
    pthread_mutex_lock(&gh_global.mu);
    int64_t until = mono() + ms;
    if (until > gh_global.blocked_until) {
        gh_global.blocked_until = until;
        gh_global.blocked_secondary = secondary;
    }
    pthread_mutex_unlock(&gh_global.mu);
}

void tl__gh_reset_limits(void)
{
    pthread_mutex_lock(&gh_global.mu);
    gh_global.next = gh_global.count = 0;
    gh_global.blocked_until = 0;
    gh_global.blocked_secondary = false;
    gh_global.secondary_next = 0;
    pthread_mutex_unlock(&gh_global.mu);
}

/* Takes a write from the budget, or says how long until one is free. */
static int64_t budget_take(const struct gh_config *c)
{
    int64_t wait = 0;

    if (c->per_min == 0)
        return 0;
    pthread_mutex_lock(&gh_global.mu);
    int64_t now = mono();
    uint32_t in_min = 0, in_hour = 0;
    int64_t oldest_min = INT64_MAX, oldest_hour = INT64_MAX;
    for (size_t i = 0; i < gh_global.count; i++) {
        int64_t t = gh_global.writes[(gh_global.next + BUDGET_RING - 1 - i) % BUDGET_RING];
        if (now - t < 3600000) {
            in_hour++;
            if (t < oldest_hour)
                oldest_hour = t;
            if (now - t < 60000) {
                in_min++;
                if (t < oldest_min)
                    oldest_min = t;
            }
        }
    }
    if (in_min >= c->per_min)
        wait = oldest_min + 60000 - now;
    if (in_hour >= c->per_hour && oldest_hour + 3600000 - now > wait)
        wait = oldest_hour + 3600000 - now;
    if (wait <= 0) {
        wait = 0;
        gh_global.writes[gh_global.next] = now;
        gh_global.next = (gh_global.next + 1) % BUDGET_RING;
        if (gh_global.count < BUDGET_RING)
            gh_global.count++;
    }
    pthread_mutex_unlock(&gh_global.mu);
    return wait > 0 ? wait : 0;
}

uint32_t tl__gh_budget_free(const struct gh_config *c)
{
    if (c->per_min == 0)
        return UINT32_MAX;
    pthread_mutex_lock(&gh_global.mu);
    int64_t now = mono();
    uint32_t in_min = 0, in_hour = 0;
    for (size_t i = 0; i < gh_global.count; i++) {
        int64_t t = gh_global.writes[(gh_global.next + BUDGET_RING - 1 - i) % BUDGET_RING];
        in_hour += now - t < 3600000;
        in_min += now - t < 60000;
    }
    pthread_mutex_unlock(&gh_global.mu);
    uint32_t m = in_min < c->per_min ? c->per_min - in_min : 0;
    uint32_t h = in_hour < c->per_hour ? c->per_hour - in_hour : 0;
    return m < h ? m : h;
}

/* Server time of a response in ms (its Date), or the local clock. */
int64_t tl__gh_resp_date(const struct tl_http_resp *r)
{
    int64_t ms;

    if (r->date != NULL && tl__parse_http_date(r->date, &ms))
        return ms;
    return tl__real_now_ms();
}

static bool is_write(const char *method)
{
    return strcmp(method, "GET") != 0;
}

/* The "message" of a GitHub error body, or "". */
static void error_message(const struct tl_http_resp *r, char *buf, size_t size)
{
    json_t *root = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    json_t *m = json_object_get(root, "message");

    (void)snprintf(buf, size, "%s", json_is_string(m) ? json_string_value(m) : "");
    json_decref(root);
    for (char *p = buf; *p; p++) {
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    }
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++) {
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    }
    return false;
}

/* The path part of a URL, for logs and messages. */
static const char *path_of(const struct github_store *g, const char *url)
{
    size_t n = strlen(g->origin);

    return strncmp(url, g->origin, n) == 0 ? url + n : url;
}

static const char *token_hint(const struct github_store *g)
{
    if (g->token_source != NULL && strcmp(g->token_source, "gh auth token") == 0)
        return "run `gh auth login`, or set GH_TOKEN";
    return g->host_kind == TL_GH_ENTERPRISE ? "set GH_ENTERPRISE_TOKEN to a valid token"
                                            : "set GH_TOKEN (or GITHUB_TOKEN) to a valid token";
}

/*
 * Sends one request through the limits. TL_OK when GitHub answered with a status the caller
 * interprets (anything but 401, a rate limit and a 403 refusal); GETs are retried on 5xx and
 * dropped connections. Writes are sent once (the caller decides what an ambiguous failure
 * means); they spend the write budget first.
 */
tl_status tl__gh_call(struct github_store *g, const char *method, const char *url, const char *body,
                      const char *inm, struct tl_http_resp *r)
{
    char until[TL_ISO_SIZE], msg[160];
    tl_status st;

    for (int attempt = 0;; attempt++) {
        bool secondary;
        int64_t wait = blocked_wait(&secondary);
        if (wait > 0) {
            until_text(wait, until);
            if (!tl__gh_may_wait(g, wait))
                return tl__gh_fail(g, TL_ERATELIMIT,
                                   "github: %s rate limit in force until %s (%lld s); not waiting "
                                   "past the call's deadline",
                                   secondary ? "secondary" : "primary", until,
                                   (long long)(wait + 999) / 1000);
            LOG(g, TL_LOG_WARN, "github: %s rate limit: waiting %lld ms, until %s",
                secondary ? "secondary" : "primary", (long long)wait, until);
            tl__real_sleep_ms((uint32_t)wait);
        }
        if (is_write(method)) {
            int64_t bw = budget_take(&g->cfg);
            if (bw > 0) {
                until_text(bw, until);
                if (!tl__gh_may_wait(g, bw))
                    return tl__gh_fail(
                        g, TL_ERATELIMIT,
                        "github: this process's write budget (%u/min, %u/h) is spent "
                        "until %s",
                        g->cfg.per_min, g->cfg.per_hour, until);
                LOG(g, TL_LOG_INFO, "github: write budget spent: waiting %lld ms", (long long)bw);
                tl__real_sleep_ms((uint32_t)bw);
                attempt--; /* not a failed attempt */
                continue;
            }
        }

        /* A request ends by the caller's deadline too (a renew's: its lock's loss deadline). */
        uint32_t limit = 0;
        bool bounded = !g->cleaning_up && (g->op_deadline != 0 || !g->committed);
        int64_t end = bounded ? g->base.deadline_mono_ms : 0;
        if (end != 0) {
            int64_t left = end - g->base.clock->mono_ms(g->base.clock->ud);
            if (left <= 0)
                return tl__gh_fail(g, TL_ETIMEDOUT,
                                   "github: %s %s: no time left before the deadline", method,
                                   path_of(g, url));
            limit = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
        }
        st = tl__http_request(g->http, method, url, body, inm, limit, r, g->base.errmsg);
        if (is_write(method) && (st == TL_OK || r->maybe_sent))
            g->committed = true;
        if (st == TL_ENOMEM)
            return st;
        if (st != TL_OK) {
            LOG(g, TL_LOG_DEBUG, "%s", g->base.errmsg);
            if (!is_write(method) && attempt < 2 && tl__gh_nap(g, 200u << attempt))
                continue;
            return st;
        }
        LOG(g, TL_LOG_DEBUG, "github: %s %s -> %ld (rate limit remaining %lld)", method,
            path_of(g, url), r->status, (long long)r->rl_remaining);

        int64_t date = tl__gh_resp_date(r);
        bool core = r->rl_resource == NULL || strcmp(r->rl_resource, "core") == 0;
        int64_t to_reset = r->rl_reset > 0 ? r->rl_reset * 1000 - date + 1000 : 60000;
        if (to_reset < 1000)
            to_reset = 1000;
        if (r->status == 401) {
            error_message(r, msg, sizeof(msg));
            return tl__gh_fail(g, TL_ESTORE,
                               "github: %s %s: 401 %s: the token from %s was rejected; %s", method,
                               path_of(g, url), msg[0] ? msg : "Unauthorized",
                               g->token_source ? g->token_source : "?", token_hint(g));
        }
        if (r->status == 403 || r->status == 429) {
            error_message(r, msg, sizeof(msg));
            int64_t ra = -1;
            uint64_t secs;
            int64_t when;
            if (r->retry_after != NULL && tl__parse_u64(r->retry_after, &secs) && secs < 86400)
                ra = (int64_t)secs * 1000;
            else if (r->retry_after != NULL && tl__parse_http_date(r->retry_after, &when))
                ra = when - date > 0 ? when - date : 1000;

            if (ra >= 0) {
                block_for(ra, true);
            } else if (r->rl_remaining == 0 && core) {
                block_for(to_reset, false);
            } else if (contains_ci(msg, "secondary rate limit") || r->status == 429) {
                pthread_mutex_lock(&gh_global.mu);
                uint32_t b =
                    gh_global.secondary_next ? gh_global.secondary_next : SECONDARY_BASE_MS;
                gh_global.secondary_next = b * 2 > SECONDARY_MAX_MS ? SECONDARY_MAX_MS : b * 2;
                pthread_mutex_unlock(&gh_global.mu);
                block_for(b, true);
            } else {
                return tl__gh_fail(
                    g, TL_ESTORE,
                    "github: %s %s: 403 %s (the token needs read and write access to "
                    "issues of %s/%s)",
                    method, path_of(g, url), msg[0] ? msg : "Forbidden", g->owner, g->repo);
            }
            LOG(g, TL_LOG_WARN, "github: %s %s: %ld %s", method, path_of(g, url), r->status, msg);
            if (attempt >= 4) {
                bool sec;
                int64_t w = blocked_wait(&sec);
                until_text(w, until);
                return tl__gh_fail(g, TL_ERATELIMIT, "github: rate limited (%s) until %s", msg,
                                   until);
            }
            tl__http_resp_clear(r);
            continue; /* the gate at the top waits, or fails saying until when */
        }
        if (r->rl_remaining == 0 && core && r->rl_reset > 0)
            block_for(to_reset, false); /* the next request would be refused */
        if (r->status >= 500 && !is_write(method) && attempt < 2 &&
            tl__gh_may_wait(g, 200u << attempt)) {
            tl__http_resp_clear(r);
            tl__real_sleep_ms(200u << attempt);
            continue;
        }
        if (r->status < 400) {
            pthread_mutex_lock(&gh_global.mu);
            gh_global.secondary_next = 0;
            pthread_mutex_unlock(&gh_global.mu);
        }
        return TL_OK;
    }
}

/* An error for a status the caller did not expect. */
tl_status tl__gh_unexpected_answer(struct github_store *g, const char *method, const char *url,
                                   const struct tl_http_resp *r, int64_t issue)
{
    char msg[160];

    error_message(r, msg, sizeof(msg));
    if (issue > 0 && r->status == 404)
        return tl__gh_fail(
            g, TL_ESTORE,
            "github: issue #%lld not found in %s/%s (404): check the repository, the "
            "issue number, and that the token can read it",
            (long long)issue, g->owner, g->repo);
    if (issue > 0 && r->status == 410)
        return tl__gh_fail(g, TL_ESTORE, "github: issue #%lld of %s/%s was deleted (410)",
                           (long long)issue, g->owner, g->repo);
    if (issue > 0 && (r->status == 301 || r->status == 302 || r->status == 307))
        return tl__gh_fail(
            g, TL_ESTORE,
            "github: issue #%lld of %s/%s was transferred or its repository moved (%ld "
            "to %.120s); lock the issue where it is now",
            (long long)issue, g->owner, g->repo, r->status,
            r->location ? path_of(g, r->location) : "?");
    return tl__gh_fail(g, TL_ESTORE, "github: %s %s: unexpected %ld%s%s", method, path_of(g, url),
                       r->status, msg[0] ? " " : "", msg);
}

/* ---- JSON of comments and issues ---- */

json_t *tl__gh_load_json(const struct tl_http_resp *r)
{
    return json_loadb(r->body ? r->body : "", r->body_len, 0, NULL);
}

bool tl__gh_json_time(json_t *o, const char *field, int64_t *out)
{
    json_t *v = json_object_get(o, field);

    return json_is_string(v) && tl__parse_iso(json_string_value(v), out);
}

void tl__gh_item_clear(struct gh_item *it)
{
    tl__free(it->login);
    tl__gh_claim_clear(&it->claim);
    tl__gh_release_clear(&it->rel);
    memset(it, 0, sizeof(*it));
}

bool tl__gh_trusted(const struct github_store *g, const char *login)
{
    if (login == NULL)
        return false;
    if (g->login != NULL && strcasecmp(login, g->login) == 0)
        return true;
    for (size_t i = 0; i < g->ntrusted; i++) {
        if (strcasecmp(login, g->trusted[i]) == 0)
            return true;
    }
    return false;
}

/* The issue number at the end of an issue_url. */
static int64_t issue_of(json_t *o)
{
    json_t *v = json_object_get(o, "issue_url");
    int64_t n = 0;

    if (!json_is_string(v))
        return 0;
    const char *s = strrchr(json_string_value(v), '/');
    return s != NULL && tl__gh_parse_key(s + 1, &n) ? n : 0;
}

/*
 * Reads one comment object. Returns 1 and fills `it` when it carries a tasklock marker, 0 when
 * it is an ordinary comment, -1 when it is not a comment object at all.
 */
static int read_comment(struct github_store *g, json_t *o, struct gh_item *it)
{
    char why[TL_ERRMSG_SIZE] = "";
    json_t *id = json_object_get(o, "id");
    json_t *user = json_object_get(o, "user");
    json_t *login = json_object_get(user, "login");
    json_t *body = json_object_get(o, "body");

    memset(it, 0, sizeof(*it));
    if (!json_is_integer(id) || json_integer_value(id) <= 0)
        return -1;
    it->id = json_integer_value(id);
    if (!json_is_string(body))
        return 0;
    enum tl_gh_kind k = tl__gh_parse_comment(json_string_value(body), json_string_length(body),
                                             &it->claim, &it->rel, why);
    if (k == TL_GH_NONE) {
        /* A reopen comment (github_next.c): kept in `rel` (who, and when: released_at_ms). A
         * session comment: kept with its lock timeout, for the sweep (github_session.c). */
        struct tl_gh_reopen ro;
        struct tl_gh_session ss;
        if (tl__gh_parse_reopen(json_string_value(body), json_string_length(body), &ro) ==
            TL_GH_REOPEN) {
            k = TL_GH_REOPEN;
            it->rel.worker_id = ro.worker_id;
            it->rel.node_id = ro.node_id;
            it->rel.released_at_ms = ro.at_ms;
        } else if (tl__gh_parse_session(json_string_value(body), json_string_length(body), &ss) ==
                   TL_GH_SESSION) {
            k = TL_GH_SESSION;
            it->session_timeout_ms = ss.lock_timeout_ms;
            tl__gh_session_clear(&ss);
        } else {
            return 0;
        }
    }
    it->kind = k;
    it->issue = issue_of(o);
    it->login = json_is_string(login) ? tl__strdup(json_string_value(login)) : NULL;
    if (!tl__gh_json_time(o, "created_at", &it->created_ms) ||
        !tl__gh_json_time(o, "updated_at", &it->updated_ms)) {
        it->kind = TL_GH_BAD;
        (void)snprintf(why, sizeof(why), "no valid created_at/updated_at");
    }
    if (it->kind == TL_GH_BAD) {
        tl__gh_claim_clear(&it->claim);
        tl__gh_release_clear(&it->rel);
        if (tl__gh_trusted(g, it->login))
            LOG(g, TL_LOG_WARN, "github: comment %lld by %s: ignored: %s", (long long)it->id,
                it->login, why);
        else
            LOG(g, TL_LOG_DEBUG, "github: comment %lld by %s: ignored: %s", (long long)it->id,
                it->login ? it->login : "?", why);
    }
    return 1;
}

/* ---- comment lists ---- */

static void page_clear(struct gh_page *p)
{
    tl__free(p->url);
    tl__free(p->etag);
    tl__free(p->next);
    for (size_t i = 0; i < p->nitems; i++)
        tl__gh_item_clear(&p->items[i]);
    tl__free(p->items);
    memset(p, 0, sizeof(*p));
}

void tl__gh_list_free(struct gh_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->npages; i++)
        page_clear(&l->pages[i]);
    tl__free(l->pages);
    tl__free(l->issue_etag);
    tl__free(l);
}

struct gh_list *tl__gh_list_get(struct github_store *g, int64_t number)
{
    for (size_t i = 0; i < g->nlists; i++) {
        if (g->lists[i]->number == number) {
            g->lists[i]->used = ++g->use_clock;
            return g->lists[i];
        }
    }
    struct gh_list *l = tl__calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->number = number;
    l->issue_comments = -1;
    l->used = ++g->use_clock;
    if (g->nlists == CACHE_MAX) { /* evict the least recently used */
        size_t lru = 0;
        for (size_t i = 1; i < g->nlists; i++) {
            if (g->lists[i]->used < g->lists[lru]->used)
                lru = i;
        }
        tl__gh_list_free(g->lists[lru]);
        g->lists[lru] = l;
    } else {
        g->lists[g->nlists++] = l;
    }
    return l;
}

/* A Link target we may follow with our token: on the API's own origin. */
static char *next_link(struct github_store *g, const char *link)
{
    char *next = tl__gh_link_next(link);
    size_t n = strlen(g->origin);

    if (next != NULL && (strncmp(next, g->origin, n) != 0 || (next[n] != '/' && next[n] != '\0'))) {
        LOG(g, TL_LOG_WARN, "github: ignored a Link to another origin");
        tl__free(next);
        return NULL;
    }
    return next;
}

/* Parses a page body into `p`. */
static tl_status parse_page(struct github_store *g, const struct tl_http_resp *r, struct gh_page *p)
{
    json_t *arr = tl__gh_load_json(r);
    size_t i, cap = 0;
    json_t *o;
    tl_status st = TL_OK;

    if (!json_is_array(arr)) {
        json_decref(arr);
        return tl__gh_fail(g, TL_ESTORE, "github: a comment list is not a JSON array");
    }
    p->count = json_array_size(arr);
    json_array_foreach(arr, i, o)
    {
        struct gh_item it;
        int rc = read_comment(g, o, &it);
        if (rc <= 0)
            continue;
        if (p->nitems == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct gh_item *n = tl__realloc(p->items, ncap * sizeof(*n));
            if (n == NULL) {
                tl__gh_item_clear(&it);
                st = tl__gh_oom(g);
                break;
            }
            p->items = n;
            cap = ncap;
        }
        p->items[p->nitems++] = it;
    }
    json_decref(arr);
    return st;
}

/*
 * Reads the pages of a comment list from `url` (taken over: the first page, in the store's own
 * form) into the cache entry `l`, following rel="next": up to `max_pages` (more is an error when
 * `cap_fails`, else the read stops there), or until `enough` (may be NULL) says so. *complete:
 * the last page was read. With `conditional`, each page already read is asked for with
 * If-None-Match and a 304 keeps what we had (and costs no primary rate budget), except the last
 * page when `l->recheck_tail` asks for it afresh. `number` is the issue, for messages (0: none).
 *
 * A 304 says the page's comments are unchanged, not that no page follows: it need not carry a
 * Link (RFC 7232 does not require one, GitHub does not document one, and the test server sends
 * none), and the cached "no next page" may date from when the page was the last. A full page
 * (per_page comments) whose next page the cache does not know is therefore always followed, to
 * page N+1 in the store's own URL form; past the end that page is empty, and the read ends.
 */
tl_status tl__gh_read_pages(struct github_store *g, struct gh_list *l, char *url, int64_t number,
                            bool conditional, size_t max_pages, bool cap_fails,
                            gh_enough_fn *enough, void *ud, bool *complete)
{
    struct gh_page *pages = NULL;
    size_t npages = 0, cap = 0;
    struct tl_http_resp r = {0};
    tl_status st = TL_OK;

    *complete = false;
    bool recheck = l->recheck_tail;
    l->recheck_tail = false;
    while (url != NULL) {
        if (npages == max_pages) {
            if (cap_fails)
                st =
                    tl__gh_fail(g, TL_ESTORE, "github: more than %zu pages of comments", max_pages);
            break;
        }
        for (size_t i = 0; i < npages; i++) {
            if (strcmp(pages[i].url, url) == 0) {
                st = tl__gh_fail(g, TL_ESTORE, "github: the comment pages link in a loop");
                break;
            }
        }
        if (st != TL_OK)
            break;
        struct gh_page *old = NULL;
        bool tail = false;
        for (size_t i = 0; i < l->npages; i++) {
            if (l->pages[i].url != NULL && strcmp(l->pages[i].url, url) == 0) {
                old = &l->pages[i];
                tail = i == l->npages - 1;
            }
        }
        const char *inm = conditional && old != NULL && !(recheck && tail) ? old->etag : NULL;
        if ((st = tl__gh_call(g, "GET", url, NULL, inm, &r)) != TL_OK)
            break;
        if (npages == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct gh_page *n = tl__realloc(pages, ncap * sizeof(*n));
            if (n == NULL) {
                st = tl__gh_oom(g);
                break;
            }
            pages = n;
            cap = ncap;
        }
        struct gh_page *p = &pages[npages];
        memset(p, 0, sizeof(*p));
        if (r.status == 304 && old != NULL) {
            *p = *old; /* moved: the old slot is emptied */
            memset(old, 0, sizeof(*old));
            if (r.link != NULL) {
                tl__free(p->next);
                p->next = next_link(g, r.link);
            }
            tl__free(p->url);
            p->url = NULL;
            if (p->next == NULL && p->count >= g->cfg.per_page &&
                (p->next = tl__asprintf("%s&page=%zu", npages == 0 ? url : pages[0].url,
                                        npages + 2)) == NULL) {
                page_clear(p);
                st = tl__gh_oom(g);
                break;
            }
        } else if (r.status == 200) {
            if ((st = parse_page(g, &r, p)) != TL_OK) {
                page_clear(p);
                break;
            }
            p->next = next_link(g, r.link);
            p->etag = r.etag ? tl__strdup(r.etag) : NULL;
        } else {
            st = tl__gh_unexpected_answer(g, "GET", url, &r, number);
            break;
        }
        p->url = url;
        url = NULL;
        npages++;
        l->date_ms = tl__gh_resp_date(&r);
        tl__http_resp_clear(&r);
        if (p->next == NULL) {
            *complete = true;
            break;
        }
        if (enough != NULL && enough(ud, pages, npages, &st))
            break;
        if ((url = tl__strdup(p->next)) == NULL) {
            st = tl__gh_oom(g);
            break;
        }
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    if (st != TL_OK) {
        for (size_t i = 0; i < npages; i++)
            page_clear(&pages[i]);
        tl__free(pages);
        /* Pages moved out of the cache are gone: forget the rest too. */
        for (size_t i = 0; i < l->npages; i++)
            page_clear(&l->pages[i]);
        l->npages = 0;
        return st;
    }
    for (size_t i = 0; i < l->npages; i++)
        page_clear(&l->pages[i]);
    tl__free(l->pages);
    l->pages = pages;
    l->npages = npages;
    return TL_OK;
}

/*
 * Reads every page of a comment list into the cache: the issue's (`number` > 0) or the whole
 * repository's (0). With `conditional`, each page already read is asked for with If-None-Match
 * and a 304 keeps what we had (and costs no primary rate budget).
 */
tl_status tl__gh_read_list(struct github_store *g, int64_t number, bool conditional,
                           struct gh_list **out)
{
    struct gh_list *l = tl__gh_list_get(g, number);
    bool complete;
    char *url;

    *out = NULL;
    if (l == NULL) {
        (void)tl__gh_oom(g);
        return TL_ENOMEM; /* spelled out: *out is set exactly when TL_OK is returned */
    }
    if (number > 0)
        url = tl__asprintf("%s/repos/%s/%s/issues/%lld/comments?per_page=%u", g->api, g->owner,
                           g->repo, (long long)number, g->cfg.per_page);
    else
        url = tl__asprintf("%s/repos/%s/%s/issues/comments?per_page=%u", g->api, g->owner, g->repo,
                           g->cfg.per_page);
    if (url == NULL) {
        (void)tl__gh_oom(g);
        return TL_ENOMEM;
    }
    tl_status st =
        tl__gh_read_pages(g, l, url, number, conditional, MAX_PAGES, true, NULL, NULL, &complete);
    if (st == TL_OK)
        st = tl__gh_sessions_resolve(g, l);
    if (st == TL_OK)
        *out = l;
    return st;
}

size_t tl__gh_list_count(const struct gh_list *l)
{
    size_t n = 0;

    for (size_t i = 0; i < l->npages; i++)
        n += l->pages[i].count;
    return n;
}

struct gh_item *tl__gh_list_find(struct gh_list *l, int64_t id)
{
    for (size_t i = 0; l != NULL && i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            if (l->pages[i].items[j].id == id)
                return &l->pages[i].items[j];
        }
    }
    return NULL;
}

bool tl__gh_is_claim(const struct github_store *g, const struct gh_item *it)
{
    return it->kind == TL_GH_CLAIM && !it->deleted && tl__gh_trusted(g, it->login);
}

/* ---- single requests ---- */

char *tl__gh_comment_url(const struct github_store *g, int64_t id)
{
    return tl__asprintf("%s/repos/%s/%s/issues/comments/%lld", g->api, g->owner, g->repo,
                        (long long)id);
}

char *tl__gh_json_body(const char *field, const char *text)
{
    json_t *o = json_pack("{s:s}", field, text);
    char *d = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char *out = d ? tl__strdup(d) : NULL;

    free(d);
    json_decref(o);
    return out;
}

static char *assignees_body(const char *login)
{
    json_t *o = json_pack("{s:[s]}", "assignees", login);
    char *d = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char *out = d ? tl__strdup(d) : NULL;

    free(d);
    json_decref(o);
    return out;
}

/* Deletes a comment. *gone: it was already gone (404). */
tl_status tl__gh_delete_comment(struct github_store *g, int64_t id, bool *gone)
{
    struct tl_http_resp r = {0};
    char *url = tl__gh_comment_url(g, id);
    tl_status st;

    *gone = false;
    if (url == NULL)
        return tl__gh_oom(g);
    st = tl__gh_call(g, "DELETE", url, NULL, NULL, &r);
    if (st == TL_OK) {
        if (r.status == 404)
            *gone = true;
        else if (r.status != 204 && r.status != 200)
            st = tl__gh_unexpected_answer(g, "DELETE", url, &r, 0);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

/* Reads an issue object's comment count and whether `login` is among its assignees. */
static bool issue_fields(struct github_store *g, const struct tl_http_resp *r, const char *login,
                         int64_t *comments, bool *assigned)
{
    json_t *o = tl__gh_load_json(r);
    json_t *c = json_object_get(o, "comments");
    json_t *state = json_object_get(o, "state");

    if (json_is_string(state)) /* for claim-next (github_next.c): is the issue closed? */
        g->issue_closed = strcmp(json_string_value(state), "closed") == 0 ? 1 : 0;
    json_t *as = json_object_get(o, "assignees");
    size_t i;
    json_t *a;
    bool ok = json_is_integer(c);

    *assigned = false;
    if (ok)
        *comments = json_integer_value(c);
    json_array_foreach(as, i, a)
    {
        json_t *l = json_object_get(a, "login");
        if (login != NULL && json_is_string(l) && strcasecmp(json_string_value(l), login) == 0)
            *assigned = true;
    }
    json_decref(o);
    return ok;
}

/* Adds (add) or removes our login as an assignee. On success of an add, `*comments` is the
 * issue's comment count from the answer. A failure is logged, never fatal. */
bool tl__gh_assignee(struct github_store *g, int64_t number, bool add, int64_t *comments)
{
    char keep[TL_ERRMSG_SIZE];
    struct tl_http_resp r = {0};
    char *url = tl__asprintf("%s/repos/%s/%s/issues/%lld/assignees", g->api, g->owner, g->repo,
                             (long long)number);
    char *body = g->login ? assignees_body(g->login) : NULL;
    bool ok = false, assigned = false;

    memcpy(keep, g->base.errmsg, sizeof(keep));
    if (url != NULL && body != NULL &&
        tl__gh_call(g, add ? "POST" : "DELETE", url, body, NULL, &r) == TL_OK) {
        if (r.status == (add ? 201 : 200) && issue_fields(g, &r, g->login, comments, &assigned)) {
            ok = true;
            if (add && !assigned)
                LOG(g, TL_LOG_INFO,
                    "github: #%lld: %s could not be assigned (no push access?); the lock holds "
                    "all the same",
                    (long long)number, g->login);
        } else {
            char msg[160];
            error_message(&r, msg, sizeof(msg));
            LOG(g, TL_LOG_WARN, "github: #%lld: %s the assignee failed: %ld %s", (long long)number,
                add ? "adding" : "removing", r.status, msg);
        }
    } else {
        LOG(g, TL_LOG_WARN, "github: #%lld: %s the assignee failed: %s", (long long)number,
            add ? "adding" : "removing", g->base.errmsg);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    tl__free(body);
    memcpy(g->base.errmsg, keep, sizeof(keep));
    return ok;
}

/* The issue's comment count, by GET (If-None-Match when we have an ETag). */
tl_status tl__gh_issue_count(struct github_store *g, struct gh_list *l, int64_t *comments)
{
    struct tl_http_resp r = {0};
    char *url =
        tl__asprintf("%s/repos/%s/%s/issues/%lld", g->api, g->owner, g->repo, (long long)l->number);
    bool assigned;
    tl_status st;

    if (url == NULL)
        return tl__gh_oom(g);
    st = tl__gh_call(g, "GET", url, NULL, l->issue_comments >= 0 ? l->issue_etag : NULL, &r);
    if (st == TL_OK) {
        if (r.status == 304 && l->issue_comments >= 0) {
            *comments = l->issue_comments;
        } else if (r.status == 200 && issue_fields(g, &r, NULL, comments, &assigned)) {
            l->issue_comments = *comments;
            tl__free(l->issue_etag);
            l->issue_etag = r.etag ? tl__strdup(r.etag) : NULL;
        } else {
            st = tl__gh_unexpected_answer(g, "GET", url, &r, l->number);
        }
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

/* Posts a comment. TL_OK with *item filled (the 201's comment); TL_EAGAIN-like ambiguity is
 * reported through *maybe (the POST may have been committed although it failed), and a failure
 * worth trying again (a 5xx, no answer at all) through *transient when it is not NULL. */
tl_status tl__gh_post_comment(struct github_store *g, int64_t number, const char *text,
                              struct gh_item *item, bool *maybe, bool *transient)
{
    struct tl_http_resp r = {0};
    char *url = tl__asprintf("%s/repos/%s/%s/issues/%lld/comments", g->api, g->owner, g->repo,
                             (long long)number);
    char *body = tl__gh_json_body("body", text);
    tl_status st;

    *maybe = false;
    if (transient != NULL)
        *transient = false;
    memset(item, 0, sizeof(*item));
    if (url == NULL || body == NULL) {
        tl__free(url);
        tl__free(body);
        return tl__gh_oom(g);
    }
    st = tl__gh_call(g, "POST", url, body, NULL, &r);
    if (st == TL_OK && r.status == 201) {
        json_t *o = tl__gh_load_json(&r);
        int rc = read_comment(g, o, item);
        json_t *login = json_object_get(json_object_get(o, "user"), "login");
        if (rc >= 0 && item->login == NULL && json_is_string(login))
            item->login = tl__strdup(json_string_value(login));
        if (rc >= 0 && item->created_ms == 0) {
            (void)tl__gh_json_time(o, "created_at", &item->created_ms);
            (void)tl__gh_json_time(o, "updated_at", &item->updated_ms);
        }
        json_decref(o);
        if (rc < 0) {
            tl__gh_item_clear(item);
            *maybe = true;
            st = tl__gh_fail(g, TL_ESTORE, "github: the new comment's answer is not a comment");
        }
    } else if (st == TL_OK) {
        *maybe = r.status >= 500;
        if (transient != NULL)
            *transient = r.status >= 500;
        st = tl__gh_unexpected_answer(g, "POST", url, &r, number);
    } else {
        *maybe = r.status == 0 && r.maybe_sent;
        if (transient != NULL)
            *transient = st == TL_ESTORE && r.status == 0; /* no answer: the connection failed */
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    tl__free(body);
    return st;
}

/* GETs one comment by id (not subject to list lag). *found false on 404. */
tl_status tl__gh_get_comment(struct github_store *g, int64_t id, int64_t issue,
                             struct gh_item *item, bool *found)
{
    struct tl_http_resp r = {0};
    char *url = tl__gh_comment_url(g, id);
    tl_status st;

    *found = false;
    memset(item, 0, sizeof(*item));
    if (url == NULL)
        return tl__gh_oom(g);
    st = tl__gh_call(g, "GET", url, NULL, NULL, &r);
    if (st == TL_OK && r.status == 200) {
        json_t *o = tl__gh_load_json(&r);
        int rc = read_comment(g, o, item);
        json_decref(o);
        if (rc == 1 && item->issue == issue)
            *found = true;
        else
            tl__gh_item_clear(item);
        if (rc == 0) /* an ordinary comment: exists, but is no claim */
            item->id = id;
    } else if (st == TL_OK && r.status != 404) {
        st = tl__gh_unexpected_answer(g, "GET", url, &r, 0);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

/* ---- the token's login ---- */

tl_status tl__gh_fetch_login(struct github_store *g)
{
    struct tl_http_resp r = {0};
    char *url = tl__asprintf("%s/user", g->api);
    tl_status st;

    if (url == NULL)
        return tl__gh_oom(g);
    st = tl__gh_call(g, "GET", url, NULL, NULL, &r);
    if (st == TL_OK) {
        json_t *o = tl__gh_load_json(&r);
        json_t *login = json_object_get(o, "login");
        if (r.status == 200 && json_is_string(login) &&
            tl__gh_name_ok(json_string_value(login), strlen(json_string_value(login)))) {
            g->login = tl__strdup(json_string_value(login));
            if (g->login == NULL)
                st = tl__gh_oom(g);
        } else if (r.status == 200) {
            st = tl__gh_fail(g, TL_ESTORE, "github: GET /user: no login in the answer");
        } else {
            st = tl__gh_unexpected_answer(g, "GET", url, &r, 0);
        }
        json_decref(o);
    } else if (st == TL_ESTORE && strstr(g->base.errmsg, ": 403 ") != NULL) {
        /* An app installation token (GitHub Actions' GITHUB_TOKEN) cannot read /user: the
         * login is learnt from our first claim's author instead. */
        LOG(g, TL_LOG_INFO, "github: %s; the login will be learnt from the first claim",
            g->base.errmsg);
        g->base.errmsg[0] = '\0';
        st = TL_OK;
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

tl_status tl__gh_request(struct tl_store *s, const char *method, const char *url, const char *body,
                         const char *inm, struct tl_http_resp *r)
{
    return tl__gh_call((struct github_store *)s, method, url, body, inm, r);
}

char *tl__gh_repo_url(struct tl_store *s, const char *suffix)
{
    const struct github_store *g = (const struct github_store *)s;

    return tl__asprintf("%s/repos/%s/%s%s", g->api, g->owner, g->repo, suffix);
}

char *tl__gh_next_url(struct tl_store *s, const char *link)
{
    return next_link((struct github_store *)s, link);
}

tl_status tl__gh_unexpected(struct tl_store *s, const char *method, const char *url,
                            const struct tl_http_resp *r, int64_t issue)
{
    return tl__gh_unexpected_answer((struct github_store *)s, method, url, r, issue);
}

int64_t tl__gh_resp_ms(const struct tl_http_resp *r)
{
    return tl__gh_resp_date(r);
}

void **tl__gh_next_slot(struct tl_store *s)
{
    return &((struct github_store *)s)->next_state;
}

bool tl__gh_trusts(struct tl_store *s, const char *login)
{
    return tl__gh_trusted((const struct github_store *)s, login);
}

const char *tl__gh_priorities(struct tl_store *s)
{
    return ((const struct github_store *)s)->priorities;
}

uint32_t tl__gh_per_page(struct tl_store *s)
{
    return ((const struct github_store *)s)->cfg.per_page;
}

uint32_t tl__gh_history_pages(struct tl_store *s)
{
    return ((const struct github_store *)s)->cfg.history_pages;
}

tl_status tl__gh_post(struct tl_store *s, int64_t number, const char *text)
{
    struct gh_item posted;
    bool maybe;
    tl_status st =
        tl__gh_post_comment((struct github_store *)s, number, text, &posted, &maybe, NULL);

    if (st == TL_OK)
        tl__gh_item_clear(&posted);
    return st;
}
