/*
 * github_session.c -- sessions on the GitHub store (docs/github.md "Sessions", docs/design.md).
 *
 * Every heartbeat on GitHub is a write, and an account has about 500 of them an hour. So a
 * manager's claims hang on one *session comment* on a session issue: the claim's marker names
 * the session (comment id and nonce), the claim is live while that comment is fresh by GitHub's
 * clock, and the heartbeat edits only the session comment, once per interval however many
 * locks hang on it.
 *
 * - Which session is the manager's: its instances (the caller's and the heartbeat thread's)
 *   share the manager's clock, so the process-wide table below is keyed by that clock. An
 *   entry lives while an instance of the manager uses it; a new manager never inherits one.
 * - Writes: one POST per manager and lock timeout (the session, after a sweep of stale sessions
 *   that deletes at most 2: see session_sweep), one POST per repository ever (the session
 *   issue, when none is configured or labelled), then one PATCH per interval. A
 *   renew within a quarter of the session's timeout of its last write relies on it and says so
 *   (struct tl_store.beat_sent_mono_ms), as etcd's leases do.
 * - Readers: after each list read the distinct sessions its claims name are fetched once per
 *   call, with If-None-Match (a 304 costs no primary budget); a session this manager wrote
 *   lately is not fetched at all. A session comment that is gone, not by a trusted account,
 *   not a session, or that carries another nonce makes its claims stale.
 * - A session that goes stale or is deleted while its manager lives: the next renew of each of
 *   its claims finds it so, and edits the claim to point at a fresh session (one write per
 *   claim, once), as a renew revives a stale claim that nobody took.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "github_int.h"

#define SESSION_LABEL "tasklock-sessions"
#define SESSIONS_MAX  256 /* sessions the process knows of (its managers' and those it renewed) */
/* The sweep (session_sweep): stale sessions it deletes at most, candidates it tries at most (a
 * 403 or a 404 passes to the next), pages of the session issue it reads at most (the oldest
 * comments), its time at most (and at most half the time left before the caller's deadline),
 * the writes of the budget it leaves to the claim, and its list's slot in the instance's cache
 * (number -1 is github_history.c's). */
#define SWEEP_MAX     2
#define SWEEP_TRIES   4
#define SWEEP_PAGES   3
#define SWEEP_MS      3000
#define SWEEP_MIN_MS  200
#define SWEEP_RESERVE 4
#define SWEEP_LIST    (-2)

struct sess_entry {
    const struct tl_clock *clock; /* the manager's: its instances share its sessions */
    int64_t id;                   /* the session comment */
    struct tl_gh_session s;       /* its marker as last written (worker_id, node_id: owned) */
    int64_t beat_mono;            /* when it was last written (the clock's mono_ms) */
    int64_t updated_ms;           /* its updated_at after that write (server clock) */
    bool own;                     /* the manager's own: its new claims name it */
    unsigned refs;                /* instances that use it */
};

/* The process's sessions: a global, like the write budget (github_rest.c), because the two
 * instances of a manager must share one session. Guarded by its mutex, never held across I/O. */
static struct {
    pthread_mutex_t mu;
    struct sess_entry e[SESSIONS_MAX];
    size_t n;
} sess_global = {.mu = PTHREAD_MUTEX_INITIALIZER}; /* NOLINT: see the comment above */

/* Whether a session written `mono_age` ms ago by our clock, and `server_age` ms ago by GitHub's
 * (its updated_at against a response's Date: whole seconds), is recent enough to rely on: a
 * quarter of its timeout, by both clocks (GitHub's may have moved on: a test server's jump,
 * a session made stale meanwhile). */
static bool recent(int64_t mono_age, int64_t server_age, uint32_t timeout_ms)
{
    return mono_age < (int64_t)timeout_ms / 4 && server_age < (int64_t)timeout_ms / 4 + 2000;
}

/* Whether an idle session of the manager may be written again for a new claim to name it:
 * written less than half its timeout ago by both clocks. An older one may be stale by GitHub's
 * clock, and writing it would revive the claims of locks the manager lost with it. */
static bool revivable(int64_t mono_age, int64_t server_age, uint32_t timeout_ms)
{
    return mono_age < (int64_t)timeout_ms / 2 && server_age < (int64_t)timeout_ms / 2;
}

/* ---- the process-wide table (callers hold sess_global.mu) ---- */

static struct sess_entry *entry_find(const struct tl_clock *clock, int64_t id)
{
    for (size_t i = 0; i < sess_global.n; i++) {
        if (sess_global.e[i].clock == clock && sess_global.e[i].id == id)
            return &sess_global.e[i];
    }
    return NULL;
}

static void entry_drop(struct sess_entry *e)
{
    tl__gh_session_clear(&e->s);
    *e = sess_global.e[--sess_global.n];
    memset(&sess_global.e[sess_global.n], 0, sizeof(sess_global.e[0]));
}

/* Records that this instance uses session `id` (once), so that close can let it go. */
static void take_ref(struct github_store *g, struct sess_entry *e)
{
    for (size_t i = 0; i < g->nsess_used; i++) {
        if (g->sess_used[i] == e->id)
            return;
    }
    if (g->nsess_used < SESS_USED_MAX) {
        g->sess_used[g->nsess_used++] = e->id;
        e->refs++;
    }
}

/* Writes what a successful write of session `id` told into the table; false when out of
 * memory or the table is full (then nothing is shared: the session still works, at the cost
 * of a fetch or a write more). */
static bool entry_put(struct github_store *g, int64_t id, const struct tl_gh_session *s,
                      int64_t beat_mono, int64_t updated_ms, bool own)
{
    char *w = tl__strdup(s->worker_id ? s->worker_id : "?");
    char *n = tl__strdup(s->node_id ? s->node_id : "?");
    bool ok = false;

    pthread_mutex_lock(&sess_global.mu);
    struct sess_entry *e = entry_find(g->base.clock, id);
    if (e == NULL && w != NULL && n != NULL && sess_global.n < SESSIONS_MAX) {
        e = &sess_global.e[sess_global.n++];
        memset(e, 0, sizeof(*e));
        e->clock = g->base.clock;
        e->id = id;
    }
    if (e != NULL && w != NULL && n != NULL) {
        tl__gh_session_clear(&e->s);
        e->s = *s;
        e->s.worker_id = w;
        e->s.node_id = n;
        w = n = NULL;
        e->beat_mono = beat_mono;
        e->updated_ms = updated_ms;
        e->own = e->own || own;
        take_ref(g, e);
        ok = true;
    }
    pthread_mutex_unlock(&sess_global.mu);
    tl__free(w);
    tl__free(n);
    return ok;
}

/* Forgets session `id` (gone, or not ours to write). */
static void entry_forget(struct github_store *g, int64_t id)
{
    pthread_mutex_lock(&sess_global.mu);
    struct sess_entry *e = entry_find(g->base.clock, id);
    if (e != NULL)
        entry_drop(e);
    pthread_mutex_unlock(&sess_global.mu);
}

void tl__gh_sessions_close(struct github_store *g)
{
    pthread_mutex_lock(&sess_global.mu);
    for (size_t i = 0; i < g->nsess_used; i++) {
        struct sess_entry *e = entry_find(g->base.clock, g->sess_used[i]);
        if (e != NULL && e->refs <= 1) /* 0: written again after it was forgotten */
            entry_drop(e);
        else if (e != NULL)
            e->refs--;
    }
    pthread_mutex_unlock(&sess_global.mu);
    g->nsess_used = 0;
    for (size_t i = 0; i < g->nseen; i++) {
        tl__free(g->seen[i].etag);
        tl__free(g->seen[i].login);
        tl__gh_session_clear(&g->seen[i].s);
    }
    g->nseen = 0;
}

/* ---- writing a session comment ---- */

/* PATCHes session `id` with `s` (a counter above the one it had). TL_OK with *gone set when the
 * comment is gone or not ours to edit (404, 403); else *updated_ms is its new updated_at. */
static tl_status session_write(struct github_store *g, int64_t id, struct tl_gh_session *s,
                               bool own, bool *gone)
{
    struct tl_http_resp r = {0};
    char *url = tl__gh_comment_url(g, id), *text = NULL, *body = NULL;
    tl_status st;

    *gone = false;
    s->seq = s->seq < INT64_MAX ? s->seq + 1 : s->seq;
    int64_t sent = g->base.clock->mono_ms(g->base.clock->ud);
    if (url == NULL || (text = tl__gh_build_session(s, tl__real_now_ms())) == NULL ||
        (body = tl__gh_json_body("body", text)) == NULL) {
        st = tl__gh_oom(g);
        goto done;
    }
    if ((st = tl__gh_call(g, "PATCH", url, body, NULL, &r)) != TL_OK)
        goto done;
    if (r.status == 404 || r.status == 403 || r.status == 410) {
        LOG(g, TL_LOG_WARN, "github: session comment %lld: PATCH answered %ld: it is gone",
            (long long)id, r.status);
        *gone = true;
        entry_forget(g, id);
    } else if (r.status == 200) {
        json_t *o = tl__gh_load_json(&r);
        int64_t upd;
        if (!tl__gh_json_time(o, "updated_at", &upd))
            upd = tl__gh_resp_date(&r);
        json_decref(o);
        (void)entry_put(g, id, s, sent, upd, own);
    } else {
        st = tl__gh_unexpected_answer(g, "PATCH", url, &r, 0);
    }
done:
    tl__http_resp_clear(&r);
    tl__free(url);
    tl__free(text);
    tl__free(body);
    return st;
}

/* ---- sweeping stale session comments ----
 *
 * A manager never deletes its session comment (one that ends leaves it behind, stale), so
 * without a sweep the session issue would gain a comment for every manager ever started: each
 * one-shot `tasklock acquire`, each worker restart. So a manager that posts a new session (rare:
 * once per manager and lock timeout) first deletes up to SWEEP_MAX session comments by trusted
 * accounts whose updated_at is older than twice their lock timeout plus the store's stale
 * margin by GitHub's clock (the list's Date), oldest first, never one in this process's table.
 * With any backlog the issue shrinks: one posted, two swept.
 *
 * Why it is safe:
 * - A session stale by GitHub's clock makes its claims stale already: anyone may steal them. A
 *   session that is gone makes them stale too (tl__gh_sessions_resolve), which is the same: the
 *   sweep takes nothing that a thief could not take already.
 * - Its owner cannot be relying on it. The core declares a lock lost at its last successful
 *   write's send time + timeout - margin, which is before GitHub's updated_at + timeout; and the
 *   owner never writes an idle session of its own again once it is half its timeout old
 *   (revivable(): it posts a new one instead). So no owner revives a session in the 2x window.
 * - A renew by token from another process (`tasklock renew`) that revives a session older than
 *   twice its timeout races the sweep exactly as reviving a stale claim races a thief (who read
 *   it stale, then deletes it): the sweep may delete the session just after the renew wrote it,
 *   and the claim is then stale; a renew after the sweep finds the session gone and edits the
 *   claim instead, as it revives a stale claim that nobody took (docs/github.md says so).
 * - Only comments that parse as sessions (tl__gh_parse_session) by trusted accounts: a comment
 *   by anyone else is not even tried (the token could not delete it anyway, or should not).
 *
 * It is housekeeping, and never fails or delays the claim beyond its own bound: it waits for
 * nothing (no rate limit, no write budget, no retry), its requests end within SWEEP_MS (or half
 * the time left before the caller's deadline; with less than SWEEP_MIN_MS it is skipped), it
 * leaves SWEEP_RESERVE writes of the budget to the claim, and a failure is logged, not returned.
 * It reads the issue's oldest SWEEP_PAGES pages at most, so its cost stays small however long
 * the issue has grown: one request per page, up to SWEEP_MAX deletes. A renew that posts a new
 * session does not sweep: its time belongs to the lock.
 */

/* Whether session comment `id` is one this process knows (a live manager's, or one it renewed). */
static bool in_table(int64_t id)
{
    bool found = false;

    pthread_mutex_lock(&sess_global.mu);
    for (size_t i = 0; i < sess_global.n && !found; i++)
        found = sess_global.e[i].id == id;
    pthread_mutex_unlock(&sess_global.mu);
    return found;
}

/* Whether session comment `it` may be swept at `now_ms` (GitHub's clock): stale by twice its
 * lock timeout, by the store's rule of staleness (tl__gh_stale_at: the same margin). */
static bool sweepable(const struct github_store *g, const struct gh_item *it, int64_t now_ms)
{
    if (it->kind != TL_GH_SESSION || it->deleted || !tl__gh_trusted(g, it->login) ||
        it->session_timeout_ms == 0 || it->session_timeout_ms > UINT32_MAX / 2)
        return false;
    const struct gh_item twice = {.updated_ms = it->updated_ms,
                                  .beat_timeout_ms = it->session_timeout_ms * 2};
    return tl__gh_stale_at(&twice, now_ms) && !in_table(it->id);
}

/* Deletes session comment `id`: 1 deleted, 0 already gone (404: swept by someone else), 2
 * refused (403: passed over), -1 the sweep stops (a rate limit, no time left, a server error). */
static int sweep_delete(struct github_store *g, int64_t number, int64_t id, int64_t idle_ms)
{
    struct tl_http_resp r = {0};
    char *url = tl__gh_comment_url(g, id);
    int rc = -1;

    if (url == NULL)
        return -1;
    tl_status st = tl__gh_call(g, "DELETE", url, NULL, NULL, &r);
    g->committed = false; /* housekeeping: the claim's own requests stay bounded */
    if (st == TL_OK && (r.status == 204 || r.status == 200)) {
        LOG(g, TL_LOG_INFO,
            "github: swept the stale session comment %lld on #%lld (idle %lld s by GitHub's "
            "clock)",
            (long long)id, (long long)number, (long long)(idle_ms / 1000));
        rc = 1;
    } else if (st == TL_OK && (r.status == 404 || r.status == 410)) {
        LOG(g, TL_LOG_DEBUG, "github: session comment %lld: already gone", (long long)id);
        rc = 0;
    } else if (r.status == 403 && st != TL_ERATELIMIT) {
        LOG(g, TL_LOG_WARN, "github: sweeping session comment %lld: %s; passed over", (long long)id,
            g->base.errmsg);
        rc = 2;
    } else if (st == TL_OK) {
        LOG(g, TL_LOG_WARN, "github: DELETE session comment %lld answered %ld; the sweep stops",
            (long long)id, r.status);
    } else {
        LOG(g, TL_LOG_WARN, "github: sweeping session comment %lld: %s; the sweep stops",
            (long long)id, g->base.errmsg);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return rc;
}

/* Sweeps the session issue `number` (see above). Never fails: what goes wrong is logged. */
static void session_sweep(struct github_store *g, int64_t number)
{
    int64_t now = g->base.clock->mono_ms(g->base.clock->ud);
    int64_t end = now + SWEEP_MS, deadline = g->base.deadline_mono_ms;

    if (g->op_deadline != 0)
        return; /* a renew: its time is its lock's */
    if (deadline != 0 && now + (deadline - now) / 2 < end)
        end = now + (deadline - now) / 2;
    if (end - now < SWEEP_MIN_MS) {
        LOG(g, TL_LOG_DEBUG, "github: no time to sweep the session issue");
        return;
    }
    char keep[TL_ERRMSG_SIZE];
    bool committed = g->committed;
    memcpy(keep, g->base.errmsg, sizeof(keep));
    /* Requests end by `end`; waits are allowed none (their end is now). */
    g->base.deadline_mono_ms = end;
    g->op_deadline = now;
    g->committed = false;

    struct gh_list *l = tl__gh_list_get(g, SWEEP_LIST);
    char *url = tl__asprintf("%s/repos/%s/%s/issues/%lld/comments?per_page=%u", g->api, g->owner,
                             g->repo, (long long)number, g->cfg.per_page);
    bool complete;
    tl_status st = TL_ENOMEM;
    if (l != NULL && url != NULL)
        st = tl__gh_read_pages(g, l, url, number, true, SWEEP_PAGES, false, NULL, NULL, &complete);
    else
        tl__free(url);
    g->committed = false;
    if (st != TL_OK) {
        LOG(g, TL_LOG_WARN, "github: could not read the session issue #%lld to sweep it: %s",
            (long long)number, st == TL_ENOMEM ? "out of memory" : g->base.errmsg);
        goto done;
    }

    /* The SWEEP_TRIES stalest candidates, oldest first (then by id). */
    struct gh_item *cand[SWEEP_TRIES];
    size_t n = 0;
    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!sweepable(g, it, l->date_ms))
                continue;
            size_t at = n;
            while (at > 0 &&
                   (cand[at - 1]->updated_ms > it->updated_ms ||
                    (cand[at - 1]->updated_ms == it->updated_ms && cand[at - 1]->id > it->id)))
                at--;
            if (at == SWEEP_TRIES)
                continue;
            if (n < SWEEP_TRIES)
                n++;
            for (size_t k = n - 1; k > at; k--)
                cand[k] = cand[k - 1];
            cand[at] = it;
        }
    }
    uint32_t swept = 0;
    for (size_t i = 0; i < n && swept < SWEEP_MAX; i++) {
        if (tl__gh_budget_free(&g->cfg) <= SWEEP_RESERVE) {
            LOG(g, TL_LOG_INFO, "github: the write budget is low: the session issue is not swept");
            break;
        }
        int rc = sweep_delete(g, number, cand[i]->id, l->date_ms - cand[i]->updated_ms);
        if (rc < 0)
            break;
        swept += rc == 1;
        cand[i]->deleted = rc != 2;
    }
done:
    g->base.deadline_mono_ms = deadline;
    g->op_deadline = 0;
    g->committed = committed;
    memcpy(g->base.errmsg, keep, sizeof(keep));
}

/* The session issue: ?session_issue=N, else the oldest issue labelled SESSION_LABEL, else one
 * created now. */
static tl_status session_issue(struct github_store *g, int64_t *number)
{
    struct tl_http_resp r = {0};
    char *url = NULL, *body = NULL;
    tl_status st = TL_OK;
    char msg[200] = "";

    *number = 0;
    if (g->sess_issue > 0) {
        *number = g->sess_issue;
        return TL_OK;
    }
    if (g->cfg.session_issue > 0) {
        *number = g->sess_issue = g->cfg.session_issue;
        return TL_OK;
    }
    url = tl__asprintf("%s/repos/%s/%s/issues?labels=%s&state=all&sort=created&direction=asc"
                       "&per_page=1",
                       g->api, g->owner, g->repo, SESSION_LABEL);
    if (url == NULL)
        return tl__gh_oom(g);
    if ((st = tl__gh_call(g, "GET", url, NULL, NULL, &r)) != TL_OK)
        goto done;
    if (r.status == 200) {
        json_t *arr = tl__gh_load_json(&r);
        json_t *num = json_object_get(json_array_get(arr, 0), "number");
        if (json_is_integer(num) && json_integer_value(num) > 0)
            g->sess_issue = json_integer_value(num);
        json_decref(arr);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    url = NULL;
    if (g->sess_issue == 0) {
        json_t *o = json_pack("{s:s, s:s, s:[s]}", "title", "tasklock sessions", "body",
                              "tasklock keeps its sessions here: one comment per worker process, "
                              "edited at each heartbeat. The locks on other issues name their "
                              "session; do not delete these comments while locks are held.",
                              "labels", SESSION_LABEL);
        char *d = o ? json_dumps(o, JSON_COMPACT) : NULL;
        body = d ? tl__strdup(d) : NULL;
        free(d);
        json_decref(o);
        url = tl__asprintf("%s/repos/%s/%s/issues", g->api, g->owner, g->repo);
        if (body == NULL || url == NULL) {
            st = tl__gh_oom(g);
            goto done;
        }
        if ((st = tl__gh_call(g, "POST", url, body, NULL, &r)) != TL_OK) {
            (void)snprintf(msg, sizeof(msg), "%.160s", g->base.errmsg);
        } else if (r.status == 201) {
            json_t *is = tl__gh_load_json(&r);
            json_t *num = json_object_get(is, "number");
            if (json_is_integer(num) && json_integer_value(num) > 0)
                g->sess_issue = json_integer_value(num);
            json_decref(is);
            LOG(g, TL_LOG_INFO, "github: created the session issue #%lld",
                (long long)g->sess_issue);
        } else {
            (void)snprintf(msg, sizeof(msg), "POST /issues answered %ld", r.status);
        }
        if (g->sess_issue == 0)
            st = tl__gh_fail(g, TL_ESTORE,
                             "github: sessions need an issue of %s/%s to keep their comments on: "
                             "none is labelled %s and creating one failed (%s); set "
                             "session_issue=N in the store URL (an issue the token may comment "
                             "on), or sessions=off",
                             g->owner, g->repo, SESSION_LABEL, msg[0] ? msg : "no issue number");
    }
    *number = g->sess_issue;
done:
    tl__http_resp_clear(&r);
    tl__free(url);
    tl__free(body);
    return st;
}

tl_status tl__gh_session_for(struct github_store *g, const char *worker_id, const char *node_id,
                             uint32_t timeout_ms, int64_t server_now_ms, int64_t *id,
                             char nonce[TL_GH_NONCE_LEN + 1], int64_t *sent)
{
    struct tl_gh_session s = {0};
    int64_t found = 0, beat = 0, upd = 0;
    bool gone = false;
    tl_status st = TL_OK;

    *id = 0;
    *sent = 0;
    nonce[0] = '\0';
    pthread_mutex_lock(&sess_global.mu);
    for (size_t i = 0; i < sess_global.n && found == 0; i++) {
        struct sess_entry *e = &sess_global.e[i];
        if (e->clock == g->base.clock && e->own && e->s.lock_timeout_ms == timeout_ms) {
            found = e->id;
            beat = e->beat_mono;
            upd = e->updated_ms;
            s = e->s;
            s.worker_id = tl__strdup(e->s.worker_id);
            s.node_id = tl__strdup(e->s.node_id);
            take_ref(g, e);
        }
    }
    pthread_mutex_unlock(&sess_global.mu);
    if (found != 0 && (s.worker_id == NULL || s.node_id == NULL)) {
        st = tl__gh_oom(g);
        goto done;
    }
    int64_t now = g->base.clock->mono_ms(g->base.clock->ud);
    int64_t at = beat; /* when what a claim would name was written (sent) */
    if (found != 0 && recent(now - beat, server_now_ms - upd, timeout_ms))
        goto use; /* fresh: a claim naming it is born live */
    if (found != 0 && revivable(now - beat, server_now_ms - upd, timeout_ms)) {
        /* Idle for a while (no lock held): refresh it before a claim names it. */
        at = now;
        if ((st = session_write(g, found, &s, true, &gone)) != TL_OK)
            goto done;
        if (!gone)
            goto use;
    } else if (found != 0) {
        /* Idle for half its timeout or more: it may have gone stale, and the claims of locks
         * the manager lost with it must stay stale (and its comment may be swept: see
         * session_sweep). A new session, then. */
        LOG(g, TL_LOG_INFO, "github: session comment %lld idle for %lld ms: a new one is made",
            (long long)found, (long long)(now - beat));
        entry_forget(g, found);
    }
    if (found != 0) {
        tl__gh_session_clear(&s);
        memset(&s, 0, sizeof(s));
    }

    /* A new session: a comment on the session issue. */
    int64_t number = 0;
    struct gh_item posted;
    bool maybe;
    if ((st = session_issue(g, &number)) != TL_OK)
        goto done;
    session_sweep(g, number);
    s.lock_timeout_ms = timeout_ms;
    s.seq = 0;
    if ((s.worker_id = tl__strdup(worker_id)) == NULL ||
        (s.node_id = tl__strdup(node_id)) == NULL) {
        st = tl__gh_oom(g);
        goto done;
    }
    tl__gh_random_nonce(g, s.nonce);
    char *text = tl__gh_build_session(&s, tl__real_now_ms());
    if (text == NULL) {
        st = tl__gh_oom(g);
        goto done;
    }
    at = g->base.clock->mono_ms(g->base.clock->ud);
    st = tl__gh_post_comment(g, number, text, &posted, &maybe, NULL);
    tl__free(text);
    if (st != TL_OK) {
        /* A session written after all is litter, not a danger: no claim names it. */
        st = tl__gh_fail(g, st == TL_ERATELIMIT ? st : TL_ESTORE,
                         "github: could not post the session comment on #%lld (%.120s); set "
                         "session_issue=N to an issue the token may comment on, or sessions=off",
                         (long long)number, g->base.errmsg);
        goto done;
    }
    found = posted.id;
    tl__gh_learn_login(g, posted.login);
    LOG(g, TL_LOG_INFO, "github: session comment %lld on #%lld (lock timeout %u ms)",
        (long long)found, (long long)number, timeout_ms);
    (void)entry_put(g, found, &s, at, posted.updated_ms, true);
    tl__gh_item_clear(&posted);
use:
    *id = found;
    memcpy(nonce, s.nonce, TL_GH_NONCE_LEN + 1);
    *sent = at;
done:
    tl__gh_session_clear(&s);
    return st;
}

int64_t tl__gh_session_sent(struct github_store *g, const struct gh_item *it, int64_t server_now_ms)
{
    int64_t at = 0;

    pthread_mutex_lock(&sess_global.mu);
    struct sess_entry *e = entry_find(g->base.clock, it->claim.session);
    if (e != NULL && strcmp(e->s.nonce, it->claim.session_nonce) == 0)
        at = e->beat_mono;
    pthread_mutex_unlock(&sess_global.mu);
    if (at != 0)
        return at;
    int64_t now = g->base.clock->mono_ms(g->base.clock->ud);
    int64_t age = it->beat_ms != 0 && server_now_ms > it->beat_ms ? server_now_ms - it->beat_ms : 0;
    return now - age - 1000;
}

/* ---- reading sessions ---- */

static struct gh_seen *seen_get(struct github_store *g, int64_t id)
{
    for (size_t i = 0; i < g->nseen; i++) {
        if (g->seen[i].id == id)
            return &g->seen[i];
    }
    size_t slot = g->nseen;
    if (g->nseen == SEEN_MAX) { /* evict the least recently used */
        slot = 0;
        for (size_t i = 1; i < g->nseen; i++) {
            if (g->seen[i].used < g->seen[slot].used)
                slot = i;
        }
        tl__free(g->seen[slot].etag);
        tl__free(g->seen[slot].login);
        tl__gh_session_clear(&g->seen[slot].s);
    } else {
        g->nseen++;
    }
    memset(&g->seen[slot], 0, sizeof(g->seen[slot]));
    g->seen[slot].id = id;
    return &g->seen[slot];
}

/* Reads session comment `e->id` (If-None-Match when read before) into `e`. */
static tl_status seen_fetch(struct github_store *g, struct gh_seen *e)
{
    struct tl_http_resp r = {0};
    char *url = tl__gh_comment_url(g, e->id);
    tl_status st;

    if (url == NULL)
        return tl__gh_oom(g);
    st = tl__gh_call(g, "GET", url, NULL, e->etag, &r);
    if (st != TL_OK)
        goto done;
    if (r.status == 304 && e->etag != NULL) {
        /* unchanged */
    } else if (r.status == 200) {
        json_t *o = tl__gh_load_json(&r);
        json_t *body = json_object_get(o, "body");
        json_t *login = json_object_get(json_object_get(o, "user"), "login");
        tl__free(e->etag);
        tl__free(e->login);
        tl__gh_session_clear(&e->s);
        e->etag = r.etag ? tl__strdup(r.etag) : NULL;
        e->login = json_is_string(login) ? tl__strdup(json_string_value(login)) : NULL;
        e->found = true;
        e->valid = json_is_string(body) &&
                   tl__gh_parse_session(json_string_value(body), json_string_length(body), &e->s) ==
                       TL_GH_SESSION &&
                   tl__gh_json_time(o, "updated_at", &e->updated_ms);
        json_decref(o);
    } else if (r.status == 404 || r.status == 410) {
        tl__free(e->etag);
        e->etag = NULL;
        e->found = e->valid = false;
    } else {
        st = tl__gh_unexpected_answer(g, "GET", url, &r, 0);
    }
done:
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

tl_status tl__gh_sessions_resolve(struct github_store *g, struct gh_list *l)
{
    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            it->beat_ms = 0;
            it->beat_timeout_ms = 0;
            it->session_dead = false;
            if (it->kind != TL_GH_CLAIM || it->claim.session == 0 || !tl__gh_trusted(g, it->login))
                continue;
            int64_t sid = it->claim.session;

            /* Written by this manager lately: what it wrote is what is there. */
            int64_t upd = 0;
            uint32_t timeout = 0;
            bool mine = false;
            pthread_mutex_lock(&sess_global.mu);
            struct sess_entry *e = entry_find(g->base.clock, sid);
            if (e != NULL && g->base.clock->mono_ms(g->base.clock->ud) - e->beat_mono <
                                 (int64_t)e->s.lock_timeout_ms / 2) {
                mine = strcmp(e->s.nonce, it->claim.session_nonce) == 0;
                upd = e->updated_ms;
                timeout = e->s.lock_timeout_ms;
                if (!mine)
                    e = NULL;
            } else {
                e = NULL;
            }
            pthread_mutex_unlock(&sess_global.mu);
            if (e != NULL) {
                it->beat_ms = upd;
                it->beat_timeout_ms = timeout;
                continue;
            }

            struct gh_seen *s = seen_get(g, sid);
            if (s->op != g->op_seq) {
                tl_status st = seen_fetch(g, s);
                if (st != TL_OK)
                    return st;
                s->op = g->op_seq;
            }
            s->used = ++g->use_clock;
            if (s->found && s->valid && tl__gh_trusted(g, s->login) &&
                strcmp(s->s.nonce, it->claim.session_nonce) == 0) {
                it->beat_ms = s->updated_ms;
                it->beat_timeout_ms = s->s.lock_timeout_ms;
            } else {
                it->session_dead = true;
            }
        }
    }
    return TL_OK;
}

/* ---- renewing through a session ---- */

tl_status tl__gh_session_renew(struct github_store *g, const struct gh_item *it,
                               int64_t server_now_ms, int64_t *sent, int64_t *heartbeat_at_ms,
                               bool *gone)
{
    struct tl_gh_session s = {0};
    int64_t sid = it->claim.session, beat = 0, upd = 0;
    bool known = false, own = false;
    tl_status st = TL_OK;

    *sent = 0;
    *gone = it->session_dead;
    if (*gone)
        return TL_OK;
    pthread_mutex_lock(&sess_global.mu);
    struct sess_entry *e = entry_find(g->base.clock, sid);
    if (e != NULL && strcmp(e->s.nonce, it->claim.session_nonce) == 0) {
        known = true;
        beat = e->beat_mono;
        upd = e->updated_ms;
        own = e->own;
        s = e->s;
        s.worker_id = tl__strdup(e->s.worker_id);
        s.node_id = tl__strdup(e->s.node_id);
        take_ref(g, e);
    }
    pthread_mutex_unlock(&sess_global.mu);
    int64_t now = g->base.clock->mono_ms(g->base.clock->ud);
    if (known && (s.worker_id == NULL || s.node_id == NULL)) {
        st = tl__gh_oom(g);
        goto done;
    }
    if (known && recent(now - beat, server_now_ms - upd, s.lock_timeout_ms)) {
        /* Written a moment ago, for another lock on the same session. */
        *sent = beat;
        *heartbeat_at_ms = upd;
        goto done;
    }
    if (!known) {
        /* Another manager's session (`tasklock renew` in a process of its own): the list read
         * fetched it; write it back as it was, with a larger counter. */
        struct gh_seen *seen = NULL;
        for (size_t i = 0; i < g->nseen; i++) {
            if (g->seen[i].id == sid)
                seen = &g->seen[i];
        }
        if (seen == NULL || !seen->found || !seen->valid ||
            strcmp(seen->s.nonce, it->claim.session_nonce) != 0) {
            *gone = true;
            goto done;
        }
        s = seen->s;
        s.worker_id = tl__strdup(seen->s.worker_id);
        s.node_id = tl__strdup(seen->s.node_id);
        if (s.worker_id == NULL || s.node_id == NULL) {
            st = tl__gh_oom(g);
            goto done;
        }
    }
    if ((st = session_write(g, sid, &s, own, gone)) != TL_OK || *gone)
        goto done;
    pthread_mutex_lock(&sess_global.mu);
    e = entry_find(g->base.clock, sid);
    *heartbeat_at_ms = e != NULL ? e->updated_ms : tl__real_now_ms();
    pthread_mutex_unlock(&sess_global.mu);
done:
    tl__gh_session_clear(&s);
    return st;
}
