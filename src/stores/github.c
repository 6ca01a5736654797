/*
 * github.c -- the GitHub Issues store: `github://OWNER/REPO[?param=value&...]`, key = issue
 * number. DESIGN.md section 5 is the protocol; docs/github.md the user's view; docs/design.md
 * why it is built this way. In short:
 *
 * - A claim is an issue comment by a trusted account (the token's login, plus ?trusted=a,b)
 *   with a hidden `<!-- tasklock {...} -->` marker (github_marker.c). The holder is the trusted
 *   claim with the lowest comment id; that id is the fencing token. Shared claims (readers,
 *   semaphores) hold beside each other: the holders are the leading run of claims the modes
 *   admit (github_modes.c), and "the lowest" below reads "among the holders".
 * - Acquire: list the comments (If-None-Match: a 304 costs no primary rate budget); if held,
 *   busy (steal-stale deletes a stale holder's claim, force any holder's); else post our claim,
 *   list again, and keep the claim only if it is the lowest; then add the assignee (a hint), whose
 *   answer is the issue with its `comments` count: a list shorter than that count is stale and
 *   is read again (bounded, and never past the caller's deadline); if it stays short the claim
 *   is withdrawn and the outcome reported unknown (busy), never won. A claim POST that fails
 *   ambiguously (5xx, timeout) is looked for by its nonce before anything is posted again.
 * - Lists are read a page at a time with If-None-Match. A 304 need not carry a Link, so a full
 *   page is always followed by a request for the next one (see tl__gh_read_pages).
 * - Renew: list (also to notice a lower claim that became visible late: then the lock is lost),
 *   then edit our claim in place (never a new comment). 404 = deleted = lost.
 * - Release: delete our claim, remove the assignee, post the completion comment.
 * - Staleness by the server's clock: the `Date` of the list response against the claim's
 *   `updated_at`, with the lock timeout the claim records.
 * - History: read back from the comments (completions, the holder's claim, the "from" chains of
 *   claims that displaced others); see github_history.c. Nothing is written for it.
 * - Size: a claim is built and checked against GitHub's body limit before any write.
 * - Rate limits: x-ratelimit-* read on every response; primary exhaustion and secondary limits
 *   block every instance of the process until they end (waited out when the caller's deadline
 *   allows, else TL_ERATELIMIT saying until when); writes spend a process-wide budget.
 * - Waits: every sleep of a call (limits, retries, re-reads) asks may_wait first, so it ends by
 *   the caller's deadline; a renew also gets its own (a quarter of the timeout). Every request
 *   ends by the caller's deadline as well (libcurl's timeout is cut to the time left), so that a
 *   renew, whose deadline is its lock's loss deadline, never outlives the lock.
 *
 * Everything renew and release need is in the held record (token = comment id, opaque = nonce
 * and login), because the manager renews on its heartbeat thread's own instance.
 *
 * The store is split along its seams, one job a file: github_int.h lists them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "github_int.h"

#define DEFAULT_PER_MIN       80
#define DEFAULT_PER_HOUR      500
#define DEFAULT_MAX_WAIT_MS   (5u * 60 * 1000)
#define DEFAULT_REREADS       3
#define DEFAULT_REREAD_MS     500
#define DEFAULT_PER_PAGE      100
#define DEFAULT_HISTORY_PAGES 10 /* the repository-wide log: the newest 1000 comments */
#define GH_TIMEOUT_MS         5000
#define STALE_MARGIN_MS       1000 /* GitHub's timestamps have 1 s precision */
#define VICTIMS_MAX           64   /* claims one acquire takes out of its way, at most */
#define LINE_POLL_MS          1000 /* wait_turn reads the list this often (304s are free) */
/* Characters a claim body may grow by after it is posted: its heartbeat counter, written twice
 * ("#N" and "seq":N), from one digit to at most 19 (it stays within int64); a queued claim's
 * held mark ("held":true) and its visible line turned into the holder's; an extended lock
 * timeout's longer duration. */
#define SEQ_ROOM 100

/* ---- records ---- */

/* A claim that names a session is judged by it (github_session.c), others by their own
 * updated_at. */
bool tl__gh_stale_at(const struct gh_item *it, int64_t now_ms)
{
    if (it->session_dead)
        return true;
    int64_t beat = it->beat_ms != 0 ? it->beat_ms : it->updated_ms;
    uint32_t timeout =
        it->beat_timeout_ms != 0 ? it->beat_timeout_ms : it->claim.rec.info.lock_timeout_ms;
    return now_ms - beat > (int64_t)timeout + STALE_MARGIN_MS;
}

tl_status tl__gh_item_record(struct github_store *g, const struct gh_item *it, const char *key,
                             int64_t now_ms, struct tl_record *out)
{
    const struct tl_info *c = &it->claim.rec.info;

    memset(out, 0, sizeof(*out));
    out->info.key = tl__strdup(key);
    out->info.worker_id = tl__strdup(c->worker_id);
    out->info.node_id = tl__strdup(c->node_id);
    out->info.task_info = tl__strdup(c->task_info ? c->task_info : "{}");
    out->opaque = tl__asprintf("%s %s", it->claim.nonce, it->login ? it->login : "-");
    if (!out->info.key || !out->info.worker_id || !out->info.node_id || !out->info.task_info ||
        !out->opaque) {
        tl__record_clear(out);
        return tl__gh_oom(g);
    }
    out->info.token = (uint64_t)it->id;
    out->info.claimed_at_ms = it->created_ms;
    out->info.heartbeat_at_ms = it->beat_ms != 0 ? it->beat_ms : it->updated_ms;
    out->info.lock_timeout_ms = c->lock_timeout_ms;
    out->info.mode = c->mode;
    out->info.slots = c->mode == TL_SHARED ? c->slots : 0;
    out->info.holders = 1; /* the callers that know the run say how many */
    out->info.observed_at_ms = now_ms;
    out->info.stale = tl__gh_stale_at(it, now_ms);
    return TL_OK;
}

/* ---- the line ----
 *
 * A waiter's place in line is its claim comment (DESIGN.md section 7): comment order is the
 * line's order, the comment id its seq and, once it holds, its token. The holder is the lowest
 * claim, stale or not (DESIGN.md section 5); with shared claims, the holders are the leading run
 * of claims the modes admit (github_modes.c). The claims after them wait, and one of them that
 * is stale is a dead waiter: skipped (not counted, not ahead of anyone) and deleted by whoever
 * wins past it. A hand-over costs no write: when a holder deletes its claim, the next ones
 * hold (it first deletes the dead waiters that would, so that the next holders are live).
 * Hence FIFO only (priority 0).
 */

/* Fills a busy result's line counts: live waiters, and how many of them are ahead of claim `id`
 * (0: none). `ours`: `id` is our place in line (counted as waiting even before the list shows
 * it); else it is a claim being withdrawn (not counted), with every live waiter ahead of it. */
static void busy_counts(const struct github_store *g, struct gh_list *l, const struct gh_item *h,
                        int64_t id, bool ours, struct tl_claim_result *out)
{
    const struct gh_item *it = id != 0 ? tl__gh_list_find(l, id) : NULL;
    bool live = it != NULL && tl__gh_is_claim(g, it) && !tl__gh_stale_at(it, l->date_ms);
    uint32_t before = 0;

    out->waiting = tl__gh_line_waiting(g, l, 0, h);
    if (ours && it == NULL && id != 0)
        out->waiting++;
    else if (!ours && live && out->waiting > 0)
        out->waiting--;
    if (!ours) {
        out->ahead = out->waiting;
        return;
    }
    /* The live claims below ours that do not hold: a prefix's run is the whole run's prefix. */
    struct gh_run r;
    (void)h;
    tl__gh_run(g, l, 0, id, &r);
    before = (uint32_t)r.live_after;
    out->ahead = before;
}

/* A waiter's place in line: which comment is its claim, and when it last wrote it. */
struct gh_place *tl__gh_place_find(struct github_store *g, const char *waiter_id)
{
    for (size_t i = 0; waiter_id != NULL && i < PLACES_MAX; i++) {
        if (g->places[i].waiter[0] != '\0' && strcmp(g->places[i].waiter, waiter_id) == 0)
            return &g->places[i];
    }
    return NULL;
}

void tl__gh_place_forget(struct gh_place *p)
{
    if (p != NULL)
        memset(p, 0, sizeof(*p));
}

/* Whether `s` is a waiter id as the core makes them: 32 lower-case hex digits. */
static bool waiter_id_ok(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (n == TL_GH_NONCE_LEN || !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    }
    return n == TL_GH_NONCE_LEN;
}

/* Splits the opaque "NONCE LOGIN" of a held record. */
bool tl__gh_opaque_split(const struct tl_record *held, char nonce[TL_GH_NONCE_LEN + 1], char *login,
                         size_t lsize)
{
    const char *o = held->opaque;

    nonce[0] = login[0] = '\0';
    if (o == NULL)
        return true; /* released or renewed by token alone: worker id and token identify it */
    if (strlen(o) < TL_GH_NONCE_LEN || (o[TL_GH_NONCE_LEN] != ' ' && o[TL_GH_NONCE_LEN] != '\0'))
        return false;
    memcpy(nonce, o, TL_GH_NONCE_LEN);
    nonce[TL_GH_NONCE_LEN] = '\0';
    login[0] = '\0';
    if (o[TL_GH_NONCE_LEN] == ' ')
        (void)snprintf(login, lsize, "%s", o + TL_GH_NONCE_LEN + 1);
    return true;
}

/* Whether the listed or fetched comment is the claim `held` describes. */
bool tl__gh_is_held_claim(const struct github_store *g, const struct gh_item *it,
                          const struct tl_record *held, const char *nonce)
{
    return it != NULL && it->kind == TL_GH_CLAIM && tl__gh_trusted(g, it->login) &&
           (nonce[0] == '\0' || strcmp(it->claim.nonce, nonce) == 0) &&
           held->info.worker_id != NULL &&
           strcmp(it->claim.rec.info.worker_id, held->info.worker_id) == 0;
}

void tl__gh_learn_login(struct github_store *g, const char *login)
{
    if (g->login == NULL && login != NULL && login[0] != '\0' && strcmp(login, "-") != 0) {
        g->login = tl__strdup(login);
        if (g->login != NULL)
            LOG(g, TL_LOG_INFO, "github: acting as %s", g->login);
    }
}

void tl__gh_random_nonce(struct github_store *g, char out[TL_GH_NONCE_LEN + 1])
{
    unsigned char b[TL_GH_NONCE_LEN / 2];
    bool ok = false;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        ok = read(fd, b, sizeof(b)) == (ssize_t)sizeof(b);
        close(fd);
    }
    if (!ok) { /* splitmix64 over the clocks, pid and a counter: unique, if not secret */
        uint64_t x = (uint64_t)tl__real_now_ms() ^ ((uint64_t)getpid() << 40) ^
                     (uint64_t)tl__real_mono_ms() << 20 ^ (uintptr_t)g ^ ++g->nonce_ctr;
        for (size_t i = 0; i < sizeof(b); i++) {
            if (i % 8 == 0) {
                x += 0x9e3779b97f4a7c15ull;
                uint64_t z = x;
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
                x = z ^ (z >> 31);
            }
            b[i] = (unsigned char)(x >> (8 * (i % 8)));
        }
    }
    for (size_t i = 0; i < sizeof(b); i++)
        (void)snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Deletes our own claim, or remembers it to retry later. */
void tl__gh_withdraw_claim(struct github_store *g, int64_t id)
{
    bool gone;
    char keep[TL_ERRMSG_SIZE];

    memcpy(keep, g->base.errmsg, sizeof(keep));
    /* Clean-up: worth a request past the caller's deadline (libcurl's timeout still bounds it),
     * since a claim left behind blocks the key until the orphan is retried. */
    g->cleaning_up = true;
    tl_status st = tl__gh_delete_comment(g, id, &gone);
    g->cleaning_up = false;
    if (st != TL_OK) {
        LOG(g, TL_LOG_WARN, "github: could not delete our claim %lld (%s); will retry",
            (long long)id, g->base.errmsg);
        if (g->norphans < ORPHANS_MAX)
            g->orphans[g->norphans++] = id;
    }
    memcpy(g->base.errmsg, keep, sizeof(keep));
}

static void retry_orphans(struct github_store *g)
{
    size_t n = g->norphans;
    int64_t ids[ORPHANS_MAX];

    memcpy(ids, g->orphans, n * sizeof(ids[0]));
    g->norphans = 0;
    for (size_t i = 0; i < n; i++)
        tl__gh_withdraw_claim(g, ids[i]);
}

/* ---- open / close ---- */

static tl_status github_open(struct tl_store *s, const char *url)
{
    struct github_store *g = (struct github_store *)s;
    char *api_param = NULL, *token = NULL, *copy = NULL;
    tl_status st;

    g->cfg = (struct gh_config){.per_min = DEFAULT_PER_MIN,
                                .per_hour = DEFAULT_PER_HOUR,
                                .max_wait_ms = DEFAULT_MAX_WAIT_MS,
                                .rereads = DEFAULT_REREADS,
                                .reread_ms = DEFAULT_REREAD_MS,
                                .per_page = DEFAULT_PER_PAGE,
                                .history_pages = DEFAULT_HISTORY_PAGES,
                                .assign = true,
                                .reconcile = true,
                                .sessions = true};
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    s->heartbeat_divisor = 4; /* a quarter of the lock timeout, and no 30 s cap: writes cost */
    s->heartbeat_uncapped = true;
    /* A waiter's place is its claim comment, judged live or stale as any claim. */
    s->waiter_timeout_is_lock_timeout = true;
    g->line_poll_ms = LINE_POLL_MS;
    s->modes = true; /* shared claims: github_modes.c */
    /* The wait-for graph: a waiter's holding text is in its claim's marker, and the waiters of
     * every issue are the repository-wide comment list's (github_line.c). */
    s->deadlocks = true;

    if (strncmp(url, "github://", 9) != 0)
        return tl__gh_fail(g, TL_EINVAL, "github store URL must be github://OWNER/REPO");
    if ((copy = tl__strdup(url + 9)) == NULL)
        return tl__gh_oom(g);
    char *query = strchr(copy, '?');
    if (query != NULL)
        *query++ = '\0';
    char *slash = strchr(copy, '/');
    size_t olen = slash ? (size_t)(slash - copy) : 0;
    if (slash == NULL || !tl__gh_name_ok(copy, olen) ||
        !tl__gh_name_ok(slash + 1, strlen(slash + 1))) {
        st = tl__gh_fail(g, TL_EINVAL, "github store URL must be github://OWNER/REPO[?params]");
        goto done;
    }
    g->owner = tl__strndup(copy, olen);
    g->repo = tl__strdup(slash + 1);
    if (g->owner == NULL || g->repo == NULL) {
        st = tl__gh_oom(g);
        goto done;
    }
    if ((st = tl__gh_parse_params(g, query, &api_param)) != TL_OK)
        goto done;
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = tl__gh_resolve_api_url(api_param, &g->api, g->base.errmsg)) != TL_OK)
        goto done;

    char host[256];
    const char *h = g->api;
    size_t hlen = 0;
    bool https = true;
    g->host_kind = tl__gh_host_kind(g->api, host);
    (void)tl__gh_url_host(g->api, &h, &hlen, &https);
    size_t alen = strcspn(h, "/?#");
    if ((g->origin = tl__strndup(g->api, (size_t)(h - g->api) + alen)) == NULL) {
        st = tl__gh_oom(g);
        goto done;
    }
    if ((st = tl__gh_resolve_token(g->api, GH_TIMEOUT_MS, &token, &g->token_source,
                                   g->base.errmsg)) != TL_OK)
        goto done;

    const struct tl_http_opts ho = {.user_agent = "tasklock/" TL_VERSION_STRING,
                                    .timeout_ms = g->cfg.timeout_ms,
                                    .allow_http = !https};
    if ((st = tl__http_new(&ho, token, &g->http, g->base.errmsg)) != TL_OK)
        goto done;
    st = tl__gh_fetch_login(g);
done:
    if (token != NULL) {
        volatile char *p = token;
        while (*p)
            *p++ = '\0';
    }
    tl__free(token);
    tl__free(api_param);
    tl__free(copy);
    return st;
}

static void github_close(struct tl_store *s)
{
    struct github_store *g = (struct github_store *)s;

    if (g->http != NULL && g->norphans > 0)
        retry_orphans(g);
    tl__gh_sessions_close(g);
    tl__http_free(g->http);
    for (size_t i = 0; i < g->nlists; i++)
        tl__gh_list_free(g->lists[i]);
    for (size_t i = 0; i < g->ntrusted; i++)
        tl__free(g->trusted[i]);
    tl__free(g->trusted);
    tl__free(g->api);
    tl__free(g->origin);
    tl__free(g->owner);
    tl__free(g->repo);
    tl__free(g->login);
    tl__free(g->priorities);
    tl__gh_next_free(g->next_state);
}

tl_status tl__github_check_key(struct tl_store *s, const char *key)
{
    int64_t n;

    if (!tl__gh_parse_key(key, &n))
        return tl__store_fail(s, TL_EINVAL,
                              "github: key \"%.64s\" is not an issue number (123 or #123)", key);
    return TL_OK;
}

/* ---- claim ---- */

static void from_of(const struct gh_item *it, struct tl_gh_from *f)
{
    f->worker_id = tl__strdup(it->claim.rec.info.worker_id);
    f->node_id = tl__strdup(it->claim.rec.info.node_id);
    f->token = (uint64_t)it->id;
    f->claimed_at_ms = it->created_ms;
    f->heartbeat_at_ms = it->beat_ms != 0 ? it->beat_ms : it->updated_ms;
    f->took = it->claim.took;
    f->conv = it->claim.conv;
}

/* Records a displaced holder in our new claim (newest first, bounded). */
void tl__gh_push_from(struct tl_gh_claim *c, const struct gh_item *it)
{
    if (c->nfrom == TL_GH_FROM_DEPTH) {
        tl__free(c->from[TL_GH_FROM_DEPTH - 1].worker_id);
        tl__free(c->from[TL_GH_FROM_DEPTH - 1].node_id);
        c->nfrom--;
    }
    memmove(&c->from[1], &c->from[0], c->nfrom * sizeof(c->from[0]));
    from_of(it, &c->from[0]);
    c->nfrom++;
    /* what the displaced claim itself had displaced, while there is room */
    for (size_t i = 0; i < it->claim.nfrom && c->nfrom < TL_GH_FROM_DEPTH; i++) {
        struct tl_gh_from *f = &c->from[c->nfrom++];
        *f = it->claim.from[i];
        f->worker_id = tl__strdup(it->claim.from[i].worker_id);
        f->node_id = tl__strdup(it->claim.from[i].node_id);
    }
}

/*
 * Plans what this claim takes out of its way (steal-stale: stale claims; force: any), lowest
 * first, without a request yet: each one is marked deleted in the list, listed in `victims`, and
 * recorded in `mine` (from, took). Returns TL_EBUSY with the holder in `out` (and nothing
 * planned) when this mode may not take the key.
 */
static tl_status plan_the_way(struct github_store *g, const struct tl_claim *req, struct gh_list *l,
                              struct tl_gh_claim *mine, bool *forced, struct gh_item **victims,
                              size_t *nvictims, struct tl_claim_result *out)
{
    struct gh_run r;

    *nvictims = 0;
    tl__gh_run(g, l, 0, 0, &r);
    if (r.first == NULL)
        return TL_OK;
    /* The holders that count admit the claim and no one live waits (github_modes.c): then
     * steal-stale takes the stale holders (the dead waiters after them go unrecorded); force
     * takes every holder whatever (the waiters after them are deleted unrecorded: they join the
     * line again behind ours). A slots mismatch writes nothing. */
    if (req->mode != TL_CLAIM_FORCE) {
        enum tl_admit a = tl__gh_admit(&r, req, l->date_ms);
        if (a == TL_ADMIT_MISMATCH)
            return tl__slots_mismatch(&g->base, req->key, r.slots, req->slots);
        if (a == TL_ADMIT_NO || r.live_after > 0) {
            tl_status st = tl__gh_item_record(g, r.first, req->key, l->date_ms, &out->rec);
            if (st != TL_OK)
                return st;
            tl__free(out->rec.opaque);
            out->rec.opaque = NULL;
            out->rec.info.holders = (uint32_t)r.n;
            out->holder_known = true;
            busy_counts(g, l, r.first, 0, false, out);
            return TL_EBUSY;
        }
    }
    for (struct gh_item *h = r.first; h != NULL && *nvictims < VICTIMS_MAX;
         h = tl__gh_run_next(g, l, &r, h)) {
        bool stale = tl__gh_stale_at(h, l->date_ms);
        if (req->mode != TL_CLAIM_FORCE && !stale)
            continue;
        if (!stale)
            *forced = true;
        tl__gh_push_from(mine, h);
        h->deleted = true;
        victims[(*nvictims)++] = h;
    }
    if (mine->nfrom > 0)
        mine->took = *forced ? TL_GH_TOOK_FORCED : TL_GH_TOOK_STALE;
    return TL_OK;
}

/* Whether `c` records the claim `id` among the holders it displaced. */
static bool from_has(const struct tl_gh_claim *c, int64_t id)
{
    for (size_t i = 0; i < c->nfrom; i++) {
        if (c->from[i].token == (uint64_t)id)
            return true;
    }
    return false;
}

/*
 * Whether GitHub takes `text` as a claim body, with room for the heartbeat counter to grow to
 * its widest (it is written twice: "#N" and "seq":N). Else TL_EINVAL saying how large it is.
 */
tl_status tl__gh_check_size(struct github_store *g, const char *text)
{
    size_t chars = tl__gh_chars(text) + SEQ_ROOM;

    if (chars <= TL_GH_BODY_MAX)
        return TL_OK;
    return tl__gh_fail(g, TL_EINVAL,
                       "github: task info too large for a GitHub comment: the claim would be %zu "
                       "characters; GitHub allows %d",
                       chars, TL_GH_BODY_MAX);
}

/* Copies a claim's took and from into `mine` (which has none): for our claim found again, and
 * for what a completion comment reports of the claim it ends. */
tl_status tl__gh_copy_took(struct github_store *g, struct tl_gh_claim *mine,
                           const struct tl_gh_claim *c)
{
    mine->took = c->took;
    mine->conv = c->conv;
    for (size_t i = 0; i < c->nfrom && i < TL_GH_FROM_DEPTH; i++) {
        struct tl_gh_from *f = &mine->from[mine->nfrom++];
        *f = c->from[i];
        f->worker_id = tl__strdup(c->from[i].worker_id);
        f->node_id = tl__strdup(c->from[i].node_id);
        if (f->worker_id == NULL || f->node_id == NULL)
            return tl__gh_oom(g);
    }
    return TL_OK;
}

/*
 * Records in our claim the holders deleted after it was posted (a lower claim that became
 * visible late, taken by steal-stale or force), so that the issue's audit trail names them. One
 * edit, only in that race; a failure is logged: the lock is ours all the same.
 */
static void amend_claim(struct github_store *g, int64_t number, struct gh_item *it,
                        const struct tl_gh_claim *mine, int64_t now_ms)
{
    char keep[TL_ERRMSG_SIZE];
    struct tl_http_resp r = {0};
    char *text = tl__gh_build_claim(mine, now_ms);
    char *url = tl__gh_comment_url(g, it->id);
    char *body = text ? tl__gh_json_body("body", text) : NULL;

    memcpy(keep, g->base.errmsg, sizeof(keep));
    if (text == NULL || url == NULL || body == NULL) {
        LOG(g, TL_LOG_WARN, "github: #%lld: out of memory recording the displaced holders",
            (long long)number);
    } else if (tl__gh_check_size(g, text) != TL_OK) {
        LOG(g, TL_LOG_WARN, "github: #%lld: the displaced holders are not recorded: %s",
            (long long)number, g->base.errmsg);
    } else if (tl__gh_call(g, "PATCH", url, body, NULL, &r) != TL_OK || r.status != 200) {
        LOG(g, TL_LOG_WARN, "github: #%lld: recording the displaced holders failed (%ld): %s",
            (long long)number, r.status, g->base.errmsg);
    } else {
        json_t *o = tl__gh_load_json(&r);
        int64_t upd;
        if (tl__gh_json_time(o, "updated_at", &upd))
            it->updated_ms = upd;
        json_decref(o);
        /* What the listed claim says now: a release reads its took and from chain from it,
         * for the completion comment. */
        for (size_t i = 0; i < it->claim.nfrom && i < TL_GH_FROM_DEPTH; i++) {
            tl__free(it->claim.from[i].worker_id);
            tl__free(it->claim.from[i].node_id);
        }
        it->claim.nfrom = 0;
        if (tl__gh_copy_took(g, &it->claim, mine) != TL_OK)
            LOG(g, TL_LOG_WARN, "github: #%lld: out of memory noting the displaced holders",
                (long long)number);
        it->claim.seq = mine->seq;
        it->claim.held = mine->held;
    }
    tl__http_resp_clear(&r);
    tl__free(text);
    tl__free(url);
    tl__free(body);
    memcpy(g->base.errmsg, keep, sizeof(keep));
}

/* The delay before re-read `a` (1, 2, ...): reread_delay, doubling, at most 16 times it. */
uint32_t tl__gh_reread_delay(const struct github_store *g, uint32_t a)
{
    uint64_t d = (uint64_t)g->cfg.reread_ms << (a - 1 < 4 ? a - 1 : 4);

    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* Remembers the place of waiter `waiter_id`: claim comment `id` (nonce `nonce`) of issue
 * `number`, last written at `sent` (the clock's mono_ms). An instance serves one thread, which
 * waits in one line at a time; should the places run out, the oldest is given up. */
void tl__gh_place_keep(struct github_store *g, const char *waiter_id, int64_t number, int64_t id,
                       const char *nonce, int64_t sent)
{
    struct gh_place *p = tl__gh_place_find(g, waiter_id);

    for (size_t i = 0; i < PLACES_MAX && p == NULL; i++) {
        if (g->places[i].waiter[0] == '\0')
            p = &g->places[i];
    }
    if (p == NULL) {
        p = &g->places[0];
        for (size_t i = 1; i < PLACES_MAX; i++) {
            if (g->places[i].used < p->used)
                p = &g->places[i];
        }
        LOG(g, TL_LOG_WARN, "github: #%lld: too many places in line; giving up comment %lld",
            (long long)p->number, (long long)p->comment);
        tl__gh_withdraw_claim(g, p->comment);
    }
    memset(p, 0, sizeof(*p));
    (void)snprintf(p->waiter, sizeof(p->waiter), "%s", waiter_id);
    (void)snprintf(p->nonce, sizeof(p->nonce), "%s", nonce);
    p->number = number;
    p->comment = id;
    p->beat_sent = sent;
    p->used = ++g->use_clock;
}

/*
 * Refreshes our queued claim `it` in place: a new counter and heartbeat (one edit), and no held
 * mark (it may have been posted with one, expecting to find the key free). *gone when it was
 * deleted meanwhile (as dead, or by a forced claim).
 */
tl_status tl__gh_refresh_place(struct github_store *g, struct gh_item *it, struct gh_place *p,
                               int64_t server_now_ms, const char *holding, bool *gone)
{
    struct tl_http_resp r = {0};
    struct tl_gh_claim c = it->claim; /* shallow: only read by the builder */
    char *text = NULL, *url = NULL, *body = NULL;
    tl_status st;

    *gone = false;
    c.seq = it->claim.seq < INT64_MAX ? it->claim.seq + 1 : it->claim.seq;
    c.held = false;
    c.rec.info.heartbeat_at_ms = server_now_ms;
    c.holding = (char *)holding; /* the waiter's latest (the wait-for graph) */
    if ((text = tl__gh_build_claim(&c, server_now_ms)) == NULL ||
        (url = tl__gh_comment_url(g, it->id)) == NULL ||
        (body = tl__gh_json_body("body", text)) == NULL) {
        st = tl__gh_oom(g);
        goto done;
    }
    int64_t sent = g->base.clock->mono_ms(g->base.clock->ud);
    if ((st = tl__gh_call(g, "PATCH", url, body, NULL, &r)) != TL_OK)
        goto done;
    if (r.status == 404) {
        *gone = true;
    } else if (r.status == 200) {
        json_t *o = tl__gh_load_json(&r);
        int64_t upd;
        if (tl__gh_json_time(o, "updated_at", &upd))
            it->updated_ms = upd;
        json_decref(o);
        it->claim.seq = c.seq;
        it->claim.held = false;
        p->beat_sent = sent;
        if (!tl__gh_same_holding(it->claim.holding, holding)) {
            tl__free(it->claim.holding);
            it->claim.holding = holding != NULL && holding[0] != '\0' ? tl__strdup(holding) : NULL;
        }
    } else {
        st = tl__gh_unexpected_answer(g, "PATCH", url, &r, 0);
    }
done:
    tl__http_resp_clear(&r);
    tl__free(text);
    tl__free(url);
    tl__free(body);
    return st;
}

/*
 * Posts a live waiter's claim `c` (deleted by our forced claim, which must be the lowest)
 * again, behind ours: its waiter finds its place moved there (same waiter id and nonce), and the
 * line keeps its order. A failure is logged: the waiter then joins the line again itself.
 */
void tl__gh_repost_place(struct github_store *g, int64_t number, const struct gh_item *c,
                         int64_t server_now_ms)
{
    char keep[TL_ERRMSG_SIZE];
    struct tl_gh_claim copy = c->claim; /* shallow: only read by the builder */
    struct gh_item posted;
    bool maybe;

    memcpy(keep, g->base.errmsg, sizeof(keep));
    copy.seq = c->claim.seq < INT64_MAX ? c->claim.seq + 1 : c->claim.seq;
    copy.held = false;
    copy.rec.info.heartbeat_at_ms = server_now_ms;
    char *text = tl__gh_build_claim(&copy, server_now_ms);
    if (text == NULL || tl__gh_post_comment(g, number, text, &posted, &maybe, NULL) != TL_OK)
        LOG(g, TL_LOG_WARN, "github: #%lld: could not put the waiter %s back in line: %s",
            (long long)number, c->claim.rec.info.worker_id,
            text ? g->base.errmsg : "out of memory");
    else
        tl__gh_item_clear(&posted);
    tl__free(text);
    memcpy(g->base.errmsg, keep, sizeof(keep));
}

static tl_status github_claim(struct tl_store *s, const struct tl_claim *req,
                              struct tl_claim_result *out)
{
    struct github_store *g = (struct github_store *)s;

    g->committed = false; /* see struct github_store */
    g->issue_closed = -1;
    struct tl_gh_claim mine = {0};
    struct gh_item posted = {0}, fetched = {0};
    struct gh_item *victims[VICTIMS_MAX];
    struct gh_list *l = NULL;
    char *text = NULL;
    bool forced = false, assigned = false, amend = false, maybe;
    bool planned = false, took_any = false; /* victims planned; any of them deleted by us */
    /* The line: `queue`, a claim that keeps its comment as its place when it loses; `existing`,
     * deciding on a comment an earlier call posted; `wrote`, this call wrote our claim. */
    bool queue, existing = false, wrote = false;
    struct gh_place *place = NULL;
    int64_t number, id = 0, posted_at = 0; /* posted_at: when our claim was last written */
    int64_t session_sent = 0;              /* when the session our claim names was written */
    size_t nvictims = 0;
    tl_status st;

    if (!tl__gh_parse_key(req->key, &number))
        return tl__github_check_key(s, req->key);
    if (req->priority != 0)
        return tl__gh_fail(g, TL_EINVAL,
                           "github: the github store keeps its line in comment order: FIFO only; "
                           "priority must be 0 (not %d)",
                           (int)req->priority);
    if (req->waiter_id != NULL && !waiter_id_ok(req->waiter_id))
        return tl__gh_fail(g, TL_EINVAL, "github: a waiter id must be 32 lower-case hex digits");
    /* A forced claim waits in no line: its old place, if any, is below it and goes. */
    queue = req->waiter_id != NULL && req->mode != TL_CLAIM_FORCE;
    if (req->waiter_id != NULL && !queue)
        tl__gh_place_forget(tl__gh_place_find(g, req->waiter_id));
    place = queue ? tl__gh_place_find(g, req->waiter_id) : NULL;
    if (place != NULL && place->number != number) {
        tl__gh_withdraw_claim(g,
                              place->comment); /* a waiter id is one acquire call's: not reused */
        tl__gh_place_forget(place);
        place = NULL;
    }
    if (!g->op_nested) /* claim-next's candidates are one call */
        g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    retry_orphans(g);

    /* 1. Who holds it? (Conditional: a 304 is free, and answers "still the same holder".) */
    if (place != NULL)
        place->polled = g->base.clock->mono_ms(g->base.clock->ud);
    if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
        goto done;
    if (g->pending_issue == number) {
        /* An earlier POST failed ambiguously: if it was written after all, it is ours. */
        for (size_t i = 0; i < l->npages && id == 0; i++) {
            for (size_t j = 0; j < l->pages[i].nitems; j++) {
                struct gh_item *it = &l->pages[i].items[j];
                if (it->kind == TL_GH_CLAIM && strcmp(it->claim.nonce, g->pending_nonce) == 0 &&
                    strcmp(it->claim.rec.info.worker_id, req->worker_id) == 0) {
                    tl__gh_learn_login(g, it->login);
                    if (tl__gh_trusted(g, it->login)) {
                        id = it->id;
                        memcpy(mine.nonce, g->pending_nonce, sizeof(mine.nonce));
                        LOG(g, TL_LOG_INFO, "github: #%lld: found our earlier claim %lld",
                            (long long)number, (long long)id);
                    }
                }
            }
        }
        if (id == 0) {
            /* Not listed. If the list is complete, the POST was never written: forget it. If
             * not, the claim may be there unseen: posting again could duplicate it. */
            int64_t count = -1;
            if ((st = tl__gh_issue_count(g, l, &count)) != TL_OK)
                goto done;
            if ((int64_t)tl__gh_list_count(l) < count) {
                l->recheck_tail = true;
                st = tl__gh_fail(
                    g, TL_EBUSY,
                    "github: #%lld: outcome unknown: an earlier claim POST may have been "
                    "written but is not listed yet (%zu listed, %lld counted)",
                    (long long)number, tl__gh_list_count(l), (long long)count);
                goto done;
            }
        }
        g->pending_issue = 0;
        if (id != 0) {
            struct gh_item *it = tl__gh_list_find(l, id);
            if (strcmp(it->claim.waiter, queue ? req->waiter_id : "") != 0) {
                /* Posted for another acquire call (or place in line), which gave up. */
                tl__gh_withdraw_claim(g, id);
                it->deleted = true;
                id = 0;
                memset(mine.nonce, 0, sizeof(mine.nonce));
            }
        }
        if (id != 0) {
            struct gh_item *it = tl__gh_list_find(l, id);
            posted.id = id;
            posted.created_ms = it->created_ms;
            posted.updated_ms = it->updated_ms;
            posted_at = g->pending_sent;
            if (tl__record_copy(&mine.rec, &it->claim.rec) != TL_OK) {
                st = tl__gh_oom(g);
                goto done;
            }
            if ((st = tl__gh_copy_took(g, &mine, &it->claim)) != TL_OK)
                goto done;
            memcpy(mine.waiter, it->claim.waiter, sizeof(mine.waiter));
            mine.held = it->claim.held;
            mine.seq = it->claim.seq;
            mine.session = it->claim.session;
            memcpy(mine.session_nonce, it->claim.session_nonce, sizeof(mine.session_nonce));
            goto decide;
        }
    }

    /* 1'. A waiter that has a place in line decides on it (no new comment). */
    if (place != NULL) {
        struct gh_item *it = tl__gh_list_find(l, place->comment);
        if (it == NULL || !tl__gh_is_claim(g, it)) {
            /* Moved: a forced claim deleted it and posted it again behind its own. */
            struct gh_item *moved = tl__gh_waiter_claim(g, l, place->waiter, place->nonce, 0);
            if (moved != NULL) {
                LOG(g, TL_LOG_INFO,
                    "github: #%lld: our place in line moved from comment %lld to "
                    "%lld",
                    (long long)number, (long long)place->comment, (long long)moved->id);
                place->comment = moved->id;
                it = moved;
            }
        }
        bool found = it != NULL;
        if (it == NULL) {
            /* Not listed: deleted (as dead, or by a forced claim), or listed late. */
            if ((st = tl__gh_get_comment(g, place->comment, number, &fetched, &found)) != TL_OK)
                goto done;
            if (found)
                it = &fetched;
        }
        if (found && (!tl__gh_is_claim(g, it) || strcmp(it->claim.nonce, place->nonce) != 0))
            found = false;
        if (found &&
            (tl__gh_stale_at(it, l->date_ms) || g->base.clock->mono_ms(g->base.clock->ud) >=
                                                    place->beat_sent + req->lock_timeout_ms)) {
            /* Our place went dead: others skip it, and may delete it. Give it up and join the
             * line again at its end (a refresh now could put it back in front of a holder
             * that skipped it). */
            LOG(g, TL_LOG_INFO, "github: #%lld: our place in line (comment %lld) went dead",
                (long long)number, (long long)it->id);
            tl__gh_withdraw_claim(g, it->id);
            if (it != &fetched)
                it->deleted = true;
            found = false;
        }
        if (!found) {
            tl__gh_place_forget(place);
            place = NULL;
        } else if (it == &fetched) {
            /* Ours, but the list does not show it yet: read afresh next time. */
            l->recheck_tail = true;
            struct gh_item *h = tl__gh_line_holder(g, l, 0, 0, NULL);
            if (h != NULL && tl__gh_item_record(g, h, req->key, l->date_ms, &out->rec) == TL_OK) {
                tl__free(out->rec.opaque);
                out->rec.opaque = NULL;
                out->holder_known = true;
            }
            busy_counts(g, l, h, place->comment, true, out);
            st = tl__gh_fail(g, TL_EBUSY,
                             "github: #%lld: our place in line (comment %lld) is not listed "
                             "yet",
                             (long long)number, (long long)place->comment);
            goto done;
        } else {
            /* Other claims of this waiter (a copy a forced claim posted again after we had
             * joined anew) are not its place: they go. */
            struct gh_item *dup;
            while ((dup = tl__gh_waiter_claim(g, l, place->waiter, NULL, it->id)) != NULL) {
                tl__gh_withdraw_claim(g, dup->id);
                dup->deleted = true;
            }
            id = it->id;
            existing = true;
            posted_at = place->beat_sent;
            place->used = ++g->use_clock;
            if (tl__record_copy(&mine.rec, &it->claim.rec) != TL_OK) {
                st = tl__gh_oom(g);
                goto done;
            }
            if ((st = tl__gh_copy_took(g, &mine, &it->claim)) != TL_OK)
                goto done;
            memcpy(mine.nonce, it->claim.nonce, sizeof(mine.nonce));
            memcpy(mine.waiter, it->claim.waiter, sizeof(mine.waiter));
            mine.held = it->claim.held;
            mine.seq = it->claim.seq;
            mine.session = it->claim.session;
            memcpy(mine.session_nonce, it->claim.session_nonce, sizeof(mine.session_nonce));
            goto decide;
        }
    }

    /* 2. What this mode takes out of its way (nothing is deleted before the size check). A
     * waiter that would lose posts all the same: its claim is its place in line. */
    st = plan_the_way(g, req, l, &mine, &forced, victims, &nvictims, out);
    bool expect_win = st == TL_OK;
    if (st == TL_EBUSY && queue) {
        tl__record_clear(&out->rec);
        memset(out, 0, sizeof(*out));
        st = TL_OK;
    }
    if (st != TL_OK)
        goto done;

    /* 3. Our claim: built and checked against GitHub's size limit before any write. */
    mine.rec.info.worker_id = tl__strdup(req->worker_id);
    mine.rec.info.node_id = tl__strdup(req->node_id);
    mine.rec.info.task_info = tl__strdup(req->task_info);
    if (!mine.rec.info.worker_id || !mine.rec.info.node_id || !mine.rec.info.task_info) {
        st = tl__gh_oom(g);
        goto done;
    }
    mine.rec.info.claimed_at_ms = mine.rec.info.heartbeat_at_ms = l->date_ms;
    mine.rec.info.lock_timeout_ms = req->lock_timeout_ms;
    mine.rec.info.mode = req->shared ? TL_SHARED : TL_EXCLUSIVE;
    mine.rec.info.slots = req->shared ? req->slots : 0;
    tl__gh_random_nonce(g, mine.nonce);
    if (queue) {
        /* Posted on a key it expects to find free, a waiter's claim is marked held: if it wins
         * and its holder dies before its first heartbeat, it is a stale holder, not a dead
         * waiter. Should it lose the race after all, its first refresh clears the mark. */
        (void)snprintf(mine.waiter, sizeof(mine.waiter), "%s", req->waiter_id);
        mine.held = expect_win;
        if (req->holding != NULL && req->holding[0] != '\0' &&
            (mine.holding = tl__strndup(req->holding, TL_HOLDING_MAX)) == NULL) {
            st = tl__gh_oom(g);
            goto done;
        }
    }
    /* A claim that waits in no line hangs on the manager's session (github_session.c): the
     * heartbeat then writes the session, not the claim. A waiter's claim is its place in line
     * and keeps itself live, as before sessions. The size is checked with the longest session
     * reference first: nothing is written before the size check. */
    bool sessioned = !queue && g->cfg.sessions;
    if (sessioned) {
        mine.session = INT64_MAX;
        memset(mine.session_nonce, 'f', TL_GH_NONCE_LEN);
        mine.session_nonce[TL_GH_NONCE_LEN] = '\0';
    }
    if ((text = tl__gh_build_claim(&mine, l->date_ms)) == NULL) {
        st = tl__gh_oom(g);
        goto unplan;
    }
    if ((st = tl__gh_check_size(g, text)) != TL_OK)
        goto unplan;
    if (sessioned) {
        tl__free(text);
        text = NULL;
        if ((st = tl__gh_session_for(g, req->worker_id, req->node_id, req->lock_timeout_ms,
                                     l->date_ms, &mine.session, mine.session_nonce,
                                     &session_sent)) != TL_OK)
            goto unplan;
        if ((text = tl__gh_build_claim(&mine, l->date_ms)) == NULL) {
            st = tl__gh_oom(g);
            goto unplan;
        }
    }
    /* The planned victims are deleted only once our claim is posted (step 5 takes out the
     * stale or forced claims below ours): deleting first would leave the key free for a
     * moment, a plain claim could slip in below ours, and the holder we deleted would then be
     * recorded nowhere, since the claim that names it would be withdrawn. */
    for (size_t i = 0; i < nvictims; i++)
        victims[i]->deleted = false;
    planned = nvictims > 0;
    nvictims = 0;

    /* 4. Post it. */
    posted_at = g->base.clock->mono_ms(g->base.clock->ud);
    st = tl__gh_post_comment(g, number, text, &posted, &maybe, NULL);
    if (st == TL_OK) {
        id = posted.id;
        wrote = true;
        tl__gh_learn_login(g, posted.login);
    } else if (maybe) {
        /* It may have been written: look for our nonce before anything is posted again. */
        char why[TL_ERRMSG_SIZE];
        memcpy(why, g->base.errmsg, sizeof(why));
        LOG(g, TL_LOG_WARN, "github: #%lld: claim POST failed (%s); looking for its nonce",
            (long long)number, why);
        for (uint32_t a = 0; a <= g->cfg.rereads && id == 0; a++) {
            if (a > 0 && !tl__gh_nap(g, tl__gh_reread_delay(g, a))) {
                LOG(g, TL_LOG_INFO,
                    "github: #%lld: no time left before the deadline to look for the nonce "
                    "again",
                    (long long)number);
                break;
            }
            if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK) {
                g->pending_issue = number; /* look again on the next attempt */
                g->pending_sent = posted_at;
                memcpy(g->pending_nonce, mine.nonce, sizeof(g->pending_nonce));
                goto done;
            }
            for (size_t i = 0; i < l->npages && id == 0; i++) {
                for (size_t j = 0; j < l->pages[i].nitems; j++) {
                    struct gh_item *it = &l->pages[i].items[j];
                    if (it->kind == TL_GH_CLAIM && strcmp(it->claim.nonce, mine.nonce) == 0) {
                        tl__gh_learn_login(g, it->login);
                        if (tl__gh_trusted(g, it->login)) {
                            id = it->id;
                            posted.created_ms = it->created_ms;
                            posted.updated_ms = it->updated_ms;
                        }
                        break;
                    }
                }
            }
        }
        if (id == 0) {
            g->pending_issue = number;
            g->pending_sent = posted_at;
            memcpy(g->pending_nonce, mine.nonce, sizeof(g->pending_nonce));
            st = tl__gh_fail(
                g, TL_EBUSY,
                "github: #%lld: outcome unknown: the claim POST failed (%.120s) and no "
                "comment with its nonce is visible yet; it is looked for before posting "
                "again",
                (long long)number, why);
            goto done;
        }
        posted.id = id;
        wrote = true;
        LOG(g, TL_LOG_INFO, "github: #%lld: the failed POST was written after all (comment %lld)",
            (long long)number, (long long)id);
    } else {
        goto done;
    }

decide:
    /* 5. Keep it only if no claim below it is ahead (a dead waiter is not: it is deleted; the
     * holder is, unless this mode takes it; a waiter after the holder is, unless we force),
     * in a list that is complete. */
    for (uint32_t a = 0;; a++) {
        /* A place in line was just found in a list read by this call: no second read. */
        if ((a > 0 || !existing) && (st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
            goto withdraw;
        /* Admitted by the holders below ours that count, with no live waiter between
         * (github_modes.c)? Force is admitted whatever. */
        struct gh_run run;
        tl__gh_run(g, l, 0, id, &run);
        bool busy = false;
        if (req->mode != TL_CLAIM_FORCE) {
            enum tl_admit ad = tl__gh_admit(&run, req, l->date_ms);
            if (ad == TL_ADMIT_MISMATCH) {
                /* Only in a race (the plan refuses it before posting): ours goes. */
                st = tl__slots_mismatch(&g->base, req->key, run.slots, req->slots);
                goto withdraw;
            }
            busy = ad == TL_ADMIT_NO || run.live_after > 0;
        }
        if (busy) {
            /* Someone else's claim is ahead: the holders hold (for a waiter: we wait). */
            st = tl__gh_item_record(g, run.first, req->key, l->date_ms, &out->rec);
            if (st != TL_OK)
                goto withdraw;
            tl__free(out->rec.opaque);
            out->rec.opaque = NULL;
            out->rec.info.holders = (uint32_t)run.n;
            out->holder_known = true;
            if (queue)
                goto queued;
            busy_counts(g, l, run.first, id, false, out);
            st = TL_EBUSY;
            goto withdraw;
        }
        /* Nothing ahead: out of our way goes what this mode takes: the stale holders and the
         * dead waiters; forced, every holder and the waiters. The audit trail records the
         * holders taken. */
        struct gh_item *requeue[VICTIMS_MAX];
        size_t nrequeue = 0;
        for (struct gh_item *c = tl__gh_next_claim(g, l, 0, id); c != NULL;
             c = tl__gh_next_claim(g, l, c->id, id)) {
            bool stale = tl__gh_stale_at(c, l->date_ms), gone;
            bool holder = tl__gh_in_run(&run, c), dead = stale && !holder;
            if (holder && (req->mode == TL_CLAIM_NORMAL || (req->mode == TL_CLAIM_STEAL && !stale)))
                continue; /* a holder beside which ours holds */
            if ((st = tl__gh_delete_comment(g, c->id, &gone)) != TL_OK)
                goto withdraw;
            c->deleted = true;
            LOG(g, TL_LOG_INFO, "github: #%lld: deleted the %s claim %lld of %s", (long long)number,
                dead     ? "dead waiter's"
                : holder ? (stale ? "stale" : "live")
                         : "waiting",
                (long long)c->id, c->claim.rec.info.worker_id);
            if (!dead && !holder && c->claim.waiter[0] != '\0' && nrequeue < VICTIMS_MAX &&
                (req->waiter_id == NULL || strcmp(c->claim.waiter, req->waiter_id) != 0))
                requeue[nrequeue++] = c; /* a live waiter (forced out of our way) */
            if (!holder)
                continue;
            if (!stale)
                forced = true;
            took_any = true;
            if (!from_has(&mine, c->id)) { /* not planned: our claim must name it */
                tl__gh_push_from(&mine, c);
                amend = true;
            }
        }
        /* Forced: the live waiters go back in line behind us, in their order. */
        for (size_t i = 0; i < nrequeue; i++)
            tl__gh_repost_place(g, number, requeue[i], l->date_ms);

        int64_t count = -1;
        if (g->cfg.assign && !assigned && !existing && g->login != NULL)
            assigned = tl__gh_assignee(g, number, true, &count);
        if (count < 0 && (st = tl__gh_issue_count(g, l, &count)) != TL_OK)
            goto withdraw;
        size_t seen = tl__gh_list_count(l);
        bool visible = tl__gh_list_find(l, id) != NULL;
        if (visible && ((int64_t)seen >= count || !g->cfg.reconcile))
            break; /* won */
        l->recheck_tail = true;
        uint32_t delay = tl__gh_reread_delay(g, a + 1);
        const char *then = queue ? "our claim stays in line" : "claim withdrawn";
        if (a >= g->cfg.rereads) {
            st = tl__gh_fail(
                g, TL_EBUSY,
                "github: #%lld: outcome unknown: the comment list stayed incomplete (%zu "
                "listed, %lld counted%s) after %u re-reads; %s",
                (long long)number, seen, (long long)count, visible ? "" : ", ours not listed", a,
                then);
        } else if (!tl__gh_may_wait(g, delay)) {
            st = tl__gh_fail(
                g, TL_EBUSY,
                "github: #%lld: outcome unknown: the comment list is incomplete (%zu "
                "listed, %lld counted%s) and re-reading it in %u ms would pass the call's "
                "deadline; %s",
                (long long)number, seen, (long long)count, visible ? "" : ", ours not listed",
                delay, then);
        }
        if (st == TL_EBUSY && queue) {
            busy_counts(g, l, NULL, id, true, out);
            goto keep;
        }
        if (st == TL_EBUSY)
            goto withdraw;
        LOG(g, TL_LOG_INFO,
            "github: #%lld: the comment list is stale (%zu listed, the issue counts %lld%s); "
            "reading it again in %u ms",
            (long long)number, seen, (long long)count, visible ? "" : ", ours not yet listed",
            delay);
        tl__real_sleep_ms(delay);
    }

    /* Won. */
    {
        struct gh_item *it = tl__gh_list_find(l, id);
        if (it == NULL || !tl__gh_is_claim(g, it)) {
            st = tl__gh_fail(g, TL_ESTORE, "github: our claim %lld is not readable", (long long)id);
            goto withdraw;
        }
        if (queue) {
            mine.held = true;
            mine.seq = it->claim.seq < INT64_MAX ? it->claim.seq + 1 : it->claim.seq;
        }
        if (planned && !took_any) {
            /* The holders we meant to take out were gone by the time ours was posted (released,
             * or taken by another): we took the key free, and our claim must not say
             * otherwise. One edit, only in that race. */
            for (size_t i = 0; i < mine.nfrom; i++) {
                tl__free(mine.from[i].worker_id);
                tl__free(mine.from[i].node_id);
            }
            mine.nfrom = 0;
            mine.took = TL_GH_TOOK_FREE;
            forced = false;
            amend_claim(g, number, it, &mine, l->date_ms);
            wrote = true;
        } else if (amend) {
            mine.took = forced ? TL_GH_TOOK_FORCED : TL_GH_TOOK_STALE;
            amend_claim(g, number, it, &mine, l->date_ms);
            wrote = true;
        }
        if ((st = tl__gh_item_record(g, it, req->key, l->date_ms, &out->rec)) != TL_OK)
            goto withdraw;
        out->took_forced = forced || mine.took == TL_GH_TOOK_FORCED;
        out->took_stale = !out->took_forced && mine.took == TL_GH_TOOK_STALE;
        /* A claim that holds without a write this call (the line's hand-over) is as fresh as
         * its last write, which the core reckons the lock's loss deadline from. */
        out->beat_sent_mono_ms = wrote ? 0 : posted_at;
        /* One that names a session is as fresh as the session's last write, which may be older
         * (the manager's other locks keep it fresh); one adopted from an earlier call may name
         * a session this call did not look at: the table says when it was written. */
        if (it->claim.session != 0 && session_sent == 0)
            session_sent = tl__gh_session_sent(g, it, l->date_ms);
        if (it->claim.session != 0 &&
            (out->beat_sent_mono_ms == 0 || session_sent < out->beat_sent_mono_ms))
            out->beat_sent_mono_ms = session_sent;
        tl__gh_place_forget(place);
    }
    goto done;

queued:
    /* Busy, and our claim stays in line as this waiter's place. A place written by an earlier
     * call is refreshed when its heartbeat is due (a quarter of the lock timeout, as a holder's,
     * with some slack for the core's timing): one edit per interval per waiter. */
    busy_counts(g, l, tl__gh_line_holder(g, l, 0, 0, NULL), id, true, out);
    if (existing) {
        struct gh_item *it = tl__gh_list_find(l, id);
        int64_t since = g->base.clock->mono_ms(g->base.clock->ud) - place->beat_sent;
        bool gone = false;
        /* The wait-for graph's text changed (the manager took or let go of a lock): the place
         * says so at once, or a deadlock check would miss or invent an edge until the refresh. */
        bool moved = it != NULL && req->holding != NULL &&
                     !tl__gh_same_holding(it->claim.holding, req->holding);
        if (it != NULL && (moved || since >= (int64_t)req->lock_timeout_ms * 3 / 16)) {
            char keep[TL_ERRMSG_SIZE];
            memcpy(keep, g->base.errmsg, sizeof(keep));
            if (tl__gh_refresh_place(g, it, place, l->date_ms, req->holding, &gone) != TL_OK)
                LOG(g, TL_LOG_WARN, "github: #%lld: refreshing our place in line failed: %s",
                    (long long)number, g->base.errmsg);
            memcpy(g->base.errmsg, keep, sizeof(keep));
        }
        if (gone) {
            /* Deleted meanwhile: the next claim joins the line again (wait_turn returns at
             * once for a waiter without a place). */
            LOG(g, TL_LOG_INFO, "github: #%lld: our place in line (comment %lld) was deleted",
                (long long)number, (long long)id);
            tl__gh_place_forget(place);
        }
    }
    st = tl__gh_fail(g, TL_EBUSY, "github: #%lld is held; %u waiting, %u ahead of us",
                     (long long)number, out->waiting, out->ahead);
keep:
    if (!existing) /* posted by this call, or found after an ambiguous POST */
        tl__gh_place_keep(g, req->waiter_id, number, id, mine.nonce, posted_at);
    goto done;

withdraw:
    if (id != 0)
        tl__gh_withdraw_claim(g, id);
    tl__gh_place_forget(place);
    if (assigned) {
        int64_t ignored;
        (void)tl__gh_assignee(g, number, false, &ignored);
    }
unplan:
    for (size_t i = 0; i < nvictims; i++) /* planned, not deleted: they count again */
        victims[i]->deleted = false;
done:
    tl__gh_item_clear(&posted);
    tl__gh_item_clear(&fetched);
    tl__gh_claim_clear(&mine);
    tl__free(text);
    return st;
}

/* ---- renew ---- */

static tl_status lost(struct github_store *g, const struct tl_record *held, const char *why)
{
    return tl__gh_fail(g, TL_ELOST, "github: #%s: lock lost (token %llu): %s", held->info.key,
                       (unsigned long long)held->info.token, why);
}

/* Renews `held` (a heartbeat: renew's `seq`, or 0 for one above the comment's) and, when
 * `timeout_ms` is not 0, records it as the lock's new timeout (extend): one edit either way. */
static tl_status renew_claim(struct github_store *g, const struct tl_record *held, uint64_t seq,
                             uint32_t timeout_ms, int64_t *heartbeat_at_ms)
{
    char nonce[TL_GH_NONCE_LEN + 1], login[128], why[TL_ERRMSG_SIZE];
    struct gh_item fetched = {0};
    struct tl_http_resp r = {0};
    struct gh_list *l;
    char *url = NULL, *text = NULL, *body = NULL;
    int64_t number, id = (int64_t)held->info.token;
    tl_status st;

    if (!tl__gh_parse_key(held->info.key, &number) ||
        !tl__gh_opaque_split(held, nonce, login, sizeof(login)))
        return lost(g, held, "not a lock of this store");
    tl__gh_learn_login(g, login);
    /* A renew has no caller's deadline, but it must be done well before the lock expires: all its
     * waits together (rate limits, the write budget, retries) end within a quarter of the lock
     * timeout (at most max_wait) of its start. Its requests are bounded too: one list read (one
     * request per page, each retried at most twice), at most one GET of our comment, one PATCH. */
    uint32_t cap = held->info.lock_timeout_ms / 4;
    g->op_seq++;
    g->op_max_wait_ms = cap < g->cfg.max_wait_ms ? cap : g->cfg.max_wait_ms;
    g->op_deadline = g->base.clock->mono_ms(g->base.clock->ud) + g->op_max_wait_ms;

    /* 1. Is it still ours, and still the lowest? */
    if ((st = tl__gh_read_list(g, number, true, &l)) != TL_OK)
        goto done;
    struct gh_item *it = tl__gh_list_find(l, id);
    if (it != NULL && !tl__gh_is_held_claim(g, it, held, nonce)) {
        st = lost(g, held, "that comment is not our claim");
        goto done;
    }
    /* Ours must be among the holders (github_modes.c): a claim below it that became visible
     * late may hold instead, or stand in line ahead of it. Judged by the listed claim's own
     * mode (a renew by token alone does not know it), else by the held record's. */
    const struct tl_info *mi = it != NULL ? &it->claim.rec.info : &held->info;
    struct gh_item *lower = NULL;
    if (!tl__gh_holds_at(g, l, id, mi->mode == TL_SHARED, mi->slots)) {
        struct gh_run run;
        tl__gh_run(g, l, 0, id, &run);
        lower = run.after > 0 ? tl__gh_next_claim(g, l, run.last->id, id) : run.first;
    }
    if (lower != NULL) {
        (void)snprintf(why, sizeof(why),
                       "an earlier claim (comment %lld by %s on %s) became visible late, and "
                       "ours is not among the holders",
                       (long long)lower->id, lower->claim.rec.info.worker_id,
                       lower->claim.rec.info.node_id);
        if (it != NULL)
            tl__gh_withdraw_claim(g, id);
        LOG(g, TL_LOG_WARN, "github: #%s: %s; our claim %lld is withdrawn", held->info.key, why,
            (long long)id);
        st = lost(g, held, why);
        goto done;
    }
    if (it == NULL) {
        /* Not listed: deleted, or listed late. Ask for it by id. */
        bool found;
        if ((st = tl__gh_get_comment(g, id, number, &fetched, &found)) != TL_OK)
            goto done;
        if (!found || !tl__gh_is_held_claim(g, &fetched, held, nonce)) {
            st = lost(g, held,
                      found ? "that comment is not our claim"
                            : "our claim was deleted (stolen, forced or released)");
            goto done;
        }
        it = &fetched;
    }

    /* 2. A claim that names a session lives by it: the session is renewed (one write per
     * interval for all the claims that name it), not the claim. */
    if (timeout_ms == 0 && it->claim.session != 0) {
        int64_t sent = 0;
        bool gone = false;
        if ((st = tl__gh_session_renew(g, it, l->date_ms, &sent, heartbeat_at_ms, &gone)) != TL_OK)
            goto done;
        if (!gone) {
            if (sent != 0 && sent < g->base.clock->mono_ms(g->base.clock->ud))
                g->base.beat_sent_mono_ms = sent;
            goto done;
        }
        LOG(g, TL_LOG_WARN,
            "github: #%s: the session %lld of our claim %lld is gone: the claim is pointed at a "
            "fresh one",
            held->info.key, (long long)it->claim.session, (long long)id);
    }

    /* 3. Edit it in place: a new counter (and time) in every heartbeat. The counter is above
     * the one the comment has, whatever `seq` says: a renew by token alone (`tasklock renew` in
     * another process) always passes 1, and its body must still change, since GitHub does not
     * document that an identical edit moves `updated_at`. */
    struct tl_gh_claim c = it->claim; /* shallow: only read by the builder */
    c.seq = seq > it->claim.seq ? seq : it->claim.seq + 1;
    if (c.seq > INT64_MAX)
        c.seq = INT64_MAX;
    c.rec.info.claimed_at_ms = held->info.claimed_at_ms;
    c.rec.info.heartbeat_at_ms = l->date_ms;
    /* Only a holder renews: the held mark makes the claim a stale holder, not a dead waiter,
     * should it go stale (a claim that came to hold by the line's hand-over gets it here). */
    c.held = true;
    if (timeout_ms != 0)
        c.rec.info.lock_timeout_ms = timeout_ms;
    /* What the claim hangs on from now: its session is gone, or the lock gets a new timeout, or
     * it keeps itself live (a waiter's claim that came to hold by the line's hand-over, one
     * posted before sessions): the manager's session (that timeout's), if sessions are on and
     * the lock's own manager renews it, else none (the claim keeps itself live). A renew by
     * token alone is often a process of its own that ends at once: its session would die with
     * it. Moving onto a session costs nothing more: this edit is made anyway. */
    int64_t session_sent = 0;
    bool hang = g->cfg.sessions && !g->base.renew_by_token;
    if (c.session != 0 || hang) {
        char keep[TL_ERRMSG_SIZE];
        memcpy(keep, g->base.errmsg, sizeof(keep));
        c.session = 0;
        c.session_nonce[0] = '\0';
        if (hang && tl__gh_session_for(g, c.rec.info.worker_id, c.rec.info.node_id,
                                       c.rec.info.lock_timeout_ms, l->date_ms, &c.session,
                                       c.session_nonce, &session_sent) != TL_OK) {
            LOG(g, TL_LOG_WARN, "github: #%s: no session for our claim (%s): it keeps itself live",
                held->info.key, g->base.errmsg);
            c.session = 0;
            c.session_nonce[0] = '\0';
        }
        memcpy(g->base.errmsg, keep, sizeof(keep));
    }
    if ((timeout_ms != 0 || c.session != 0) &&
        (text = tl__gh_build_claim(&c, l->date_ms)) != NULL &&
        tl__gh_check_size(g, text) != TL_OK) {
        /* The session reference, or the new timeout, does not fit in GitHub's limit. */
        if (timeout_ms != 0) {
            st = TL_EINVAL;
            goto done;
        }
        LOG(g, TL_LOG_WARN, "github: #%s: %s: the claim keeps itself live", held->info.key,
            g->base.errmsg);
        g->base.errmsg[0] = '\0';
        c.session = 0;
        c.session_nonce[0] = '\0';
    }
    tl__free(text);
    text = NULL;
    if ((text = tl__gh_build_claim(&c, l->date_ms)) == NULL ||
        (url = tl__gh_comment_url(g, id)) == NULL ||
        (body = tl__gh_json_body("body", text)) == NULL) {
        st = tl__gh_oom(g);
        goto done;
    }
    if ((st = tl__gh_call(g, "PATCH", url, body, NULL, &r)) != TL_OK)
        goto done;
    if (r.status == 404) {
        st = lost(g, held, "our claim was deleted (stolen, forced or released)");
    } else if (r.status == 200) {
        json_t *o = tl__gh_load_json(&r);
        int64_t upd;
        *heartbeat_at_ms = tl__gh_json_time(o, "updated_at", &upd) ? upd : tl__gh_resp_date(&r);
        json_decref(o);
        /* Now hanging on a session: as fresh as its last write (the core reckons from it). */
        if (c.session != 0 && session_sent != 0 &&
            session_sent < g->base.clock->mono_ms(g->base.clock->ud))
            g->base.beat_sent_mono_ms = session_sent;
    } else {
        st = tl__gh_unexpected_answer(g, "PATCH", url, &r, 0);
    }
done:
    g->op_deadline = 0;
    tl__gh_item_clear(&fetched);
    tl__http_resp_clear(&r);
    tl__free(url);
    tl__free(text);
    tl__free(body);
    return st;
}

static tl_status github_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                              int64_t *heartbeat_at_ms)
{
    return renew_claim((struct github_store *)s, held, seq, 0, heartbeat_at_ms);
}

/* A renew that writes the new lock timeout into the claim's marker: the same one edit. */
static tl_status github_extend(struct tl_store *s, const struct tl_record *held,
                               uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    struct github_store *g = (struct github_store *)s;

    if (lock_timeout_ms == 0)
        return tl__gh_fail(g, TL_EINVAL, "github: a lock timeout must be more than 0");
    return renew_claim(g, held, 0, lock_timeout_ms, heartbeat_at_ms);
}

/* ---- the interface of github_next.c (github_next.h) ---- */

void tl__gh_begin(struct tl_store *s)
{
    struct github_store *g = (struct github_store *)s;

    g->committed = false;
    g->op_seq++;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
}

tl_status tl__gh_claim(struct tl_store *s, const struct tl_claim *req, struct tl_claim_result *out)
{
    struct github_store *g = (struct github_store *)s;

    g->op_nested = true; /* a claim-next's: its sessions are read once for all its candidates */
    tl_status st = github_claim(s, req, out);
    g->op_nested = false;
    return st;
}

int tl__gh_claimed_closed(struct tl_store *s)
{
    return ((const struct github_store *)s)->issue_closed;
}

void tl__gh_withdraw(struct tl_store *s, const struct tl_record *held)
{
    struct github_store *g = (struct github_store *)s;
    int64_t number, ignored;

    if (!tl__gh_parse_key(held->info.key, &number))
        return;
    tl__gh_withdraw_claim(g, (int64_t)held->info.token);
    for (size_t i = 0; i < g->nlists; i++) {
        struct gh_item *it = g->lists[i]->number == number
                                 ? tl__gh_list_find(g->lists[i], (int64_t)held->info.token)
                                 : NULL;
        if (it != NULL)
            it->deleted = true;
    }
    if (g->cfg.assign && g->login != NULL)
        (void)tl__gh_assignee(g, number, false, &ignored);
}

void tl__gh_line_known(struct tl_store *s, int64_t number, struct tl_gh_line *out)
{
    struct github_store *g = (struct github_store *)s;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < g->nlists; i++) {
        struct gh_list *l = g->lists[i];
        if (l->number != number || l->npages == 0)
            continue;
        struct gh_item *h = tl__gh_line_holder(g, l, 0, 0, &out->live);
        out->known = true;
        out->read_ms = l->date_ms;
        out->holder = h != NULL;
        out->stale = h != NULL && tl__gh_stale_at(h, l->date_ms);
        out->waiting = h != NULL && !tl__gh_claim_held(&h->claim);
        return;
    }
}

const struct tl_store_ops tl__store_github = {
    .version = TL_STORE_OPS_VERSION,
    .scheme = "github",
    .size = sizeof(struct github_store),
    .open = github_open,
    .close = github_close,
    .claim = github_claim,
    .renew = github_renew,
    .release = tl__github_release,
    .inspect = tl__github_inspect,
    .list = tl__github_list,
    .history = tl__github_history,
    .check_key = tl__github_check_key,
    .force_release = tl__github_force_release,
    .leave = tl__github_leave,
    .wait_turn = tl__github_wait_turn,
    .waiters = tl__github_waiters,
    .extend = github_extend,
    .claim_next = tl__gh_claim_next,
    .finish = tl__gh_finish,
    .reopen = tl__gh_reopen,
    .done_list = tl__gh_done_list,
    .wait_any = NULL, /* GitHub cannot wake a waiter: the core sleeps its backoff */
    .holders = tl__github_holders,
    .convert = tl__github_convert,
};
