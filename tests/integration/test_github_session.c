/*
 * test_github_session.c -- sessions on the GitHub store (issue 18; docs/github.md "Sessions"),
 * on a private tl-github-server: a manager's claims hang on one session comment, and the
 * heartbeat writes only that comment. The evidence: one write per heartbeat interval for a
 * manager holding 100 locks; a stale session loses every lock to stealers, and its manager
 * learns it within one interval; a forged session makes nothing live; a deleted session makes
 * its claims stale; claims without a session keep working beside the others; a renew from
 * another manager refreshes the session; the request budget of an acquire and a release; the
 * session issue (found, created, or refused with a message naming the settings).
 *
 * Issues 1..130 of acme/widgets; acme/empty (issues 1..3) has no session issue yet.
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
    fprintf(stderr, "github session: this build has no GitHub store; skipped\n");
    return 77;
}
#else
#include <jansson.h>

#include "gh_test.h"
#include "http.h"
#include "spawn.h"
#include "store.h"
#include "stores/github.h"
#include "stores/github_next.h"

static struct tl_ghs srv;
#define TOKEN "session-token"
#define LOGIN "tasklock-bot"

/* ---- helpers ---- */

static tl_manager *mgr_on(const char *repo, const char *worker, const char *extra,
                          uint32_t timeout_ms, struct tl_test_lost *lost)
{
    char url[512];

    (void)snprintf(url, sizeof(url),
                   "github://%s?api_url=%s&write_budget=off&reread_delay=50ms&sessions=on%s%s",
                   repo, srv.url, extra && extra[0] ? "&" : "", extra ? extra : "");
    const struct tl_options o = {.store_url = url,
                                 .worker_id = worker,
                                 .node_id = "session-node",
                                 .lock_timeout_ms = timeout_ms ? timeout_ms : 60000,
                                 .backoff_initial_ms = 10,
                                 .backoff_max_ms = 50,
                                 .on_lost = lost ? tl_test_on_lost : NULL,
                                 .lost_ud = lost};
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

static tl_manager *mgr(const char *worker, const char *extra)
{
    return mgr_on("acme/widgets", worker, extra, 0, NULL);
}

static tl_status acquire_with(tl_manager *m, const char *key, enum tl_strategy strategy,
                              tl_lock **out)
{
    const struct tl_acquire_opts o = {.strategy = strategy};

    return tl_acquire(m, key, &o, out);
}

static tl_status try_acquire(tl_manager *m, const char *key, tl_lock **out)
{
    return acquire_with(m, key, TL_FAIL_FAST, out);
}

/* ---- one write per heartbeat interval ---- */

static void hundred_locks_one_write_per_interval(void **state)
{
    enum { LOCKS = 100 };
    const uint32_t timeout = 8000, interval = timeout / 4; /* the GitHub store's default ratio */
    tl_manager *m = mgr_on("acme/widgets", "hundred", NULL, timeout, NULL);
    tl_lock *l[LOCKS];

    (void)state;
    for (int i = 0; i < LOCKS; i++) {
        char k[8];
        (void)snprintf(k, sizeof(k), "%d", i + 1);
        if (try_acquire(m, k, &l[i]) != TL_OK)
            fail_msg("acquire %s: %s", k, tl_errmsg(m));
    }
    int64_t session = gh_session_of(&srv, 1);
    assert_true(session > 0);
    for (int i = 2; i <= LOCKS; i++)
        assert_int_equal(gh_session_of(&srv, i), session); /* one session for all of them */

    struct tl_metrics before, after;
    tl_metrics_get(m, &before, sizeof(before));
    gh_stats_reset(&srv);
    const uint32_t intervals = 3;
    tl__real_sleep_ms(intervals * interval + interval / 2);
    tl_metrics_get(m, &after, sizeof(after));
    long writes = tl_ghs_stat(&srv, "writes"),
         patches = tl_ghs_stat(&srv, "PATCH /repos/{o}/{r}/issues/comments/{id}");
    print_message("%u intervals of %u ms: %ld writes, %llu renewals\n", intervals, interval, writes,
                  (unsigned long long)(after.heartbeats_sent - before.heartbeats_sent));
    /* Per-claim heartbeats would have written LOCKS per interval. */
    assert_true(after.heartbeats_sent - before.heartbeats_sent >= (uint64_t)LOCKS * 2);
    assert_int_equal(patches, writes); /* the session comment, nothing else */
    assert_true(writes >= intervals - 1 && writes <= intervals + 1);
    assert_int_equal(after.locks_lost, 0);
    for (int i = 0; i < LOCKS; i++) {
        assert_int_equal(tl_release(l[i], NULL), TL_OK);
        tl_lock_free(l[i]);
    }
    tl_manager_free(m);
}

/* ---- a stale session: stealers take all, and its manager learns it ---- */

static void stale_session_loses_every_lock_within_an_interval(void **state)
{
    enum { LOCKS = 5 };
    const uint32_t timeout = 4000, interval = timeout / 4;
    struct tl_test_lost lost = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *a = mgr_on("acme/widgets", "owner", NULL, timeout, &lost);
    tl_manager *b = mgr("thief", NULL);
    tl_lock *la[LOCKS], *lb[LOCKS] = {0};
    char keys[LOCKS][8];

    (void)state;
    for (int i = 0; i < LOCKS; i++) {
        (void)snprintf(keys[i], sizeof(keys[i]), "%d", 101 + i);
        assert_int_equal(try_acquire(a, keys[i], &la[i]), TL_OK);
    }
    assert_false(gh_is_stale(b, keys[0]));
    /* Past the session's timeout by GitHub's clock: every claim of the session is stale at
     * once (its own comment is as young as ever). The owner's heartbeat may refresh it again
     * between the jump and a steal: then the jump is repeated. */
    int stolen = 0;
    for (int round = 0; round < 5 && stolen < LOCKS; round++) {
        gh_advance_clock(&srv, timeout + 2500);
        for (int i = 0; i < LOCKS; i++) {
            if (lb[i] != NULL)
                continue;
            tl_status st = acquire_with(b, keys[i], TL_STEAL_STALE, &lb[i]);
            if (st == TL_OK)
                stolen++;
            else
                lb[i] = NULL;
        }
    }
    assert_int_equal(stolen, LOCKS);
    int64_t t0 = tl__real_mono_ms();
    struct tl_test_lost *p = &lost;
    bool all = false;
    while (!all && tl__real_mono_ms() - t0 < (int64_t)interval * 4 + 4000) {
        pthread_mutex_lock(&p->mu);
        all = p->calls >= LOCKS;
        pthread_mutex_unlock(&p->mu);
        if (!all)
            tl__real_sleep_ms(20);
    }
    int64_t took = tl__real_mono_ms() - t0;
    print_message("the owner learnt of %d losses in %lld ms (heartbeat interval %u ms)\n",
                  lost.calls, (long long)took, interval);
    assert_true(all);
    /* Within one interval, plus the renew's own requests on a busy machine. */
    assert_true(took <= (int64_t)interval + 1500);
    for (int i = 0; i < LOCKS; i++) {
        assert_true(tl_lock_is_lost(la[i]));
        tl_lock_free(la[i]);
        assert_int_equal(tl_release(lb[i], NULL), TL_OK);
        tl_lock_free(lb[i]);
    }
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- forged and deleted sessions ---- */

/* A fresh claim by the trusted login on issue `n`, naming session comment `sid` with `nonce`. */
static void post_claim(int n, int64_t sid, const char *nonce)
{
    struct tl_gh_claim c = {0};

    c.rec.info.worker_id = "forger";
    c.rec.info.node_id = "forge";
    c.rec.info.task_info = "{}";
    c.rec.info.lock_timeout_ms = 60000;
    c.rec.info.claimed_at_ms = c.rec.info.heartbeat_at_ms = tl__real_now_ms();
    (void)snprintf(c.nonce, sizeof(c.nonce), "%s", "0123456789abcdef0123456789abcdef");
    c.session = sid;
    (void)snprintf(c.session_nonce, sizeof(c.session_nonce), "%s", nonce);
    char *body = tl__gh_build_claim(&c, tl__real_now_ms());
    assert_non_null(body);
    (void)gh_add_comment(&srv, n, LOGIN, body);
    tl__free(body);
}

static int64_t post_session(const char *login, const char *nonce)
{
    struct tl_gh_session s = {.lock_timeout_ms = 60000, .worker_id = "forger", .node_id = "f"};

    (void)snprintf(s.nonce, sizeof(s.nonce), "%s", nonce);
    char *body = tl__gh_build_session(&s, tl__real_now_ms());
    assert_non_null(body);
    int64_t id = gh_add_comment(&srv, 120, login, body);
    tl__free(body);
    return id;
}

static void forged_session_makes_nothing_live(void **state)
{
    const char *nonce = "fedcba9876543210fedcba9876543210";
    tl_manager *m = mgr("judge", NULL);
    tl_lock *l = NULL;

    (void)state;
    /* The control: the same claim on a session by the trusted login is live. */
    post_claim(110, post_session(LOGIN, nonce), nonce);
    assert_true(gh_session_of(&srv, 110) > 0);
    assert_false(gh_is_stale(m, "110"));
    assert_int_equal(acquire_with(m, "110", TL_STEAL_STALE, &l), TL_EBUSY);
    /* A session comment by anyone else makes the claim naming it stale at once. */
    post_claim(111, post_session("mallory", nonce), nonce);
    assert_true(gh_is_stale(m, "111"));
    /* And so does a trusted session that carries another nonce. */
    post_claim(112, post_session(LOGIN, "00000000000000000000000000000000"), nonce);
    assert_true(gh_is_stale(m, "112"));
    assert_int_equal(acquire_with(m, "111", TL_STEAL_STALE, &l), TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void deleted_session_makes_its_claims_stale(void **state)
{
    tl_manager *a = mgr("doomed", NULL), *b = mgr("reader", NULL);
    tl_lock *l1 = NULL, *l2 = NULL, *lb = NULL;
    struct tl_http_resp r = {0};

    (void)state;
    assert_int_equal(try_acquire(a, "113", &l1), TL_OK);
    assert_int_equal(try_acquire(a, "114", &l2), TL_OK);
    assert_false(gh_is_stale(b, "113"));
    int64_t sid = gh_session_of(&srv, 113);
    assert_true(sid > 0);
    char suffix[64];
    (void)snprintf(suffix, sizeof(suffix), "/issues/comments/%lld", (long long)sid);
    char *url = tl__gh_repo_url(b->store, suffix);
    assert_non_null(url);
    assert_int_equal(tl__gh_request(b->store, "DELETE", url, NULL, NULL, &r), TL_OK);
    assert_int_equal(r.status, 204);
    tl__http_resp_clear(&r);
    tl__free(url);
    assert_true(gh_is_stale(b, "113"));
    assert_true(gh_is_stale(b, "114"));
    assert_int_equal(acquire_with(b, "114", TL_STEAL_STALE, &lb), TL_OK);
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    tl_lock_free(lb);
    /* Its manager finds the session gone at its next write of it (a quarter of the timeout
     * after the last, by GitHub's clock too), and points the claim it still has at a fresh
     * session. */
    gh_advance_clock(&srv, 20000);
    assert_int_equal(tl_renew(l1), TL_OK);
    assert_true(gh_session_of(&srv, 113) > 0 && gh_session_of(&srv, 113) != sid);
    assert_false(gh_is_stale(b, "113"));
    assert_int_equal(tl_renew(l2), TL_ELOST);
    assert_int_equal(tl_release(l1, NULL), TL_OK);
    tl_lock_free(l1);
    tl_lock_free(l2);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- both kinds side by side ---- */

static void claims_without_a_session_work_beside_the_others(void **state)
{
    tl_manager *old = mgr("per-claim", "sessions=off"), *neu = mgr("sessioned", NULL);
    tl_manager *reader = mgr("reader", NULL);
    tl_lock *lo = NULL, *ln = NULL, *steal = NULL;

    (void)state;
    assert_int_equal(try_acquire(old, "115", &lo), TL_OK);
    assert_int_equal(try_acquire(neu, "116", &ln), TL_OK);
    assert_int_equal(gh_session_of(&srv, 115), 0);
    assert_true(gh_session_of(&srv, 116) > 0);
    assert_false(gh_is_stale(reader, "115"));
    assert_false(gh_is_stale(reader, "116"));
    /* Each renews what keeps it live: its claim, or its session. */
    struct tl_gh_claim before;
    assert_true(gh_claim_on(&srv, 115, &before));
    gh_stats_reset(&srv);
    assert_int_equal(tl_renew(lo), TL_OK);
    assert_int_equal(tl_ghs_stat(&srv, "PATCH /repos/{o}/{r}/issues/comments/{id}"), 1);
    struct tl_gh_claim after;
    assert_true(gh_claim_on(&srv, 115, &after));
    assert_true(after.seq > before.seq); /* the claim itself was edited */
    tl__gh_claim_clear(&before);
    tl__gh_claim_clear(&after);
    /* Both stale past their timeouts by GitHub's clock; both stolen alike. */
    gh_advance_clock(&srv, 60000 + 2500);
    assert_true(gh_is_stale(reader, "115"));
    assert_true(gh_is_stale(reader, "116"));
    assert_int_equal(acquire_with(reader, "115", TL_STEAL_STALE, &steal), TL_OK);
    assert_int_equal(tl_release(steal, NULL), TL_OK);
    tl_lock_free(steal);
    assert_int_equal(acquire_with(reader, "116", TL_STEAL_STALE, &steal), TL_OK);
    assert_int_equal(tl_release(steal, NULL), TL_OK);
    tl_lock_free(steal);
    assert_int_equal(tl_renew(lo), TL_ELOST);
    assert_int_equal(tl_renew(ln), TL_ELOST);
    tl_lock_free(lo);
    tl_lock_free(ln);
    tl_manager_free(old);
    tl_manager_free(neu);
    tl_manager_free(reader);
}

/* `tasklock renew` in a process of its own: a manager that knows only the key, worker id and
 * token refreshes the session the claim names, and writes nothing else. */
static void renew_by_token_refreshes_the_session(void **state)
{
    tl_manager *a = mgr("one-shot", NULL), *b = mgr("one-shot", NULL);
    struct tl_info *info = NULL;
    tl_lock *l = NULL;
    int64_t beat = 0;

    (void)state;
    assert_int_equal(try_acquire(a, "117", &l), TL_OK);
    int64_t sid = gh_session_of(&srv, 117);
    gh_advance_clock(&srv, 40000); /* not stale yet: 20 s of the 60 s timeout left */
    assert_int_equal(tl_inspect(b, "117", &info), TL_OK);
    assert_non_null(info);
    struct tl_record held = {.info = *info};
    struct tl_store *s = b->store;
    gh_stats_reset(&srv);
    assert_int_equal(s->ops->renew(s, &held, 1, &beat), TL_OK);
    assert_int_equal(tl_ghs_stat(&srv, "writes"), 1);
    assert_int_equal(tl_ghs_stat(&srv, "PATCH /repos/{o}/{r}/issues/comments/{id}"), 1);
    assert_int_equal(gh_session_of(&srv, 117), sid); /* the claim was not edited */
    gh_advance_clock(&srv, 40000); /* 80 s after the claim: live by its refreshed session */
    assert_false(gh_is_stale(b, "117"));
    tl_info_free(info);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* tl_extend: the claim moves to the manager's session of its new timeout (one edit). */
static void extend_moves_the_claim_to_a_session_of_its_timeout(void **state)
{
    tl_manager *m = mgr("extender", NULL), *r = mgr("reader", NULL);
    tl_lock *l = NULL;
    struct tl_gh_claim c;

    (void)state;
    assert_int_equal(try_acquire(m, "121", &l), TL_OK);
    int64_t before = gh_session_of(&srv, 121);
    assert_int_equal(tl_extend(l, 120000), TL_OK);
    assert_true(gh_claim_on(&srv, 121, &c));
    assert_int_equal(c.rec.info.lock_timeout_ms, 120000);
    assert_true(c.session > 0 && c.session != before);
    tl__gh_claim_clear(&c);
    gh_advance_clock(&srv, 90000); /* past the old session's 60 s, within the new one's 120 s */
    assert_false(gh_is_stale(r, "121"));
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
    tl_manager_free(r);
}

/* ---- the request budget ---- */

static void request_budget_with_sessions(void **state)
{
    tl_manager *a = mgr("budget-a", NULL), *b = mgr("budget-b", NULL);
    tl_lock *l = NULL, *lb = NULL;

    (void)state;
    /* The repository's session issue, made by a first manager. */
    tl_manager *w = mgr("warm", NULL);
    assert_int_equal(try_acquire(w, "119", &l), TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(w);
    /* A manager's first acquire also finds the session issue, sweeps it (one page read: nothing
     * there is stale, so nothing is deleted) and posts its session comment. */
    gh_stats_reset(&srv);
    assert_int_equal(try_acquire(a, "118", &l), TL_OK);
    print_message("first acquire: %ld requests, %ld writes\n", tl_ghs_stat(&srv, "total"),
                  tl_ghs_stat(&srv, "writes"));
    assert_int_equal(tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues"), 1);
    assert_true(tl_ghs_stat(&srv, "total") <= 7);
    assert_true(tl_ghs_stat(&srv, "writes") <= 3);
    assert_int_equal(tl_ghs_stat(&srv, "POST /repos/{o}/{r}/issues/{n}/comments"), 2);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    /* Then as without sessions: 4 requests, 2 writes. */
    gh_stats_reset(&srv);
    assert_int_equal(try_acquire(a, "118", &l), TL_OK);
    long total = tl_ghs_stat(&srv, "total"), writes = tl_ghs_stat(&srv, "writes");
    print_message("uncontended acquire: %ld requests, %ld writes\n", total, writes);
    assert_true(total <= 4);
    assert_true(writes <= 2);
    /* A busy acquire reads the holder's session once: a conditional GET, then a 304. */
    assert_int_equal(try_acquire(b, "118", &lb), TL_EBUSY);
    gh_stats_reset(&srv);
    assert_int_equal(try_acquire(b, "118", &lb), TL_EBUSY);
    assert_int_equal(tl_ghs_stat(&srv, "total"), 2);
    assert_int_equal(tl_ghs_stat(&srv, "not_modified"), 2);
    /* The release: 3 or 4 requests, as before. */
    gh_stats_reset(&srv);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    print_message("release: %ld requests, %ld writes\n", tl_ghs_stat(&srv, "total"),
                  tl_ghs_stat(&srv, "writes"));
    assert_true(tl_ghs_stat(&srv, "total") <= 4);
    assert_true(tl_ghs_stat(&srv, "writes") <= 3);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- the default ---- */

static void sessions_are_on_by_default(void **state)
{
    char url[512];
    tl_lock *l = NULL;

    (void)state;
    (void)snprintf(url, sizeof(url), "github://acme/widgets?api_url=%s&write_budget=off", srv.url);
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "dflt"});
    assert_non_null(m);
    assert_int_equal(try_acquire(m, "127", &l), TL_OK);
    assert_true(gh_session_of(&srv, 127) > 0);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

/* ---- the freshness of a claim that names a session ---- */

/* The `seq` of session comment `sid`, read through manager `m`'s store. */
static uint64_t session_seq(tl_manager *m, int64_t sid)
{
    struct tl_http_resp r = {0};
    char suffix[64];
    struct tl_gh_session s = {0};

    (void)snprintf(suffix, sizeof(suffix), "/issues/comments/%lld", (long long)sid);
    char *url = tl__gh_repo_url(m->store, suffix);
    assert_non_null(url);
    assert_int_equal(tl__gh_request(m->store, "GET", url, NULL, NULL, &r), TL_OK);
    assert_int_equal(r.status, 200);
    json_t *o = json_loadb(r.body, r.body_len, 0, NULL);
    json_t *body = json_object_get(o, "body");
    assert_true(json_is_string(body));
    assert_int_equal(tl__gh_parse_session(json_string_value(body), json_string_length(body), &s),
                     TL_GH_SESSION);
    uint64_t seq = (uint64_t)s.seq;
    tl__gh_session_clear(&s);
    json_decref(o);
    tl__http_resp_clear(&r);
    tl__free(url);
    return seq;
}

/* A claim that names a session written a while ago (for another lock) is only as fresh as that
 * write: its loss deadline is reckoned from the session's write, not from the claim's post. */
static void a_claim_is_as_fresh_as_its_session(void **state)
{
    tl_manager *m = mgr("fresh", NULL);
    tl_lock *a = NULL, *b = NULL;

    (void)state;
    int64_t t0 = tl__real_mono_ms();
    assert_int_equal(try_acquire(m, "122", &a), TL_OK); /* posts the session */
    int64_t took = tl__real_mono_ms() - t0;
    tl__real_sleep_ms(600);
    assert_int_equal(try_acquire(m, "123", &b), TL_OK); /* names it, 600 ms later */
    assert_int_equal(gh_session_of(&srv, 123), gh_session_of(&srv, 122));
    int64_t ea = tl_lock_expires_in_ms(a), eb = tl_lock_expires_in_ms(b);
    print_message("expires in: %lld ms (first), %lld ms (second); the first acquire took %lld "
                  "ms\n",
                  (long long)ea, (long long)eb, (long long)took);
    /* The session was written during the first acquire: the second lock expires no later than
     * that call's length after the first (without the rule: 600 ms or more after it). */
    assert_true(eb - ea <= took + 100);
    assert_int_equal(tl_release(a, NULL), TL_OK);
    assert_int_equal(tl_release(b, NULL), TL_OK);
    tl_lock_free(a);
    tl_lock_free(b);
    tl_manager_free(m);
}

/* A session idle for half its timeout is not written again for a new claim: it may be stale by
 * GitHub's clock, and reviving it would revive the claims of locks lost with it. */
static void an_idle_session_is_not_revived(void **state)
{
    const uint32_t timeout = 8000;
    tl_manager *m = mgr_on("acme/widgets", "idle", NULL, timeout, NULL);
    tl_lock *l = NULL;

    (void)state;
    assert_int_equal(try_acquire(m, "124", &l), TL_OK);
    int64_t first = gh_session_of(&srv, 124);
    assert_true(first > 0);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    gh_advance_clock(&srv, timeout / 2 + 1000); /* by GitHub's clock */
    assert_int_equal(try_acquire(m, "124", &l), TL_OK);
    int64_t second = gh_session_of(&srv, 124);
    assert_true(second > 0);
    assert_true(second != first);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

/* ---- waiters' claims, and renews by token ---- */

/* A claim posted as a place in line (a RETRY acquire; the line's hand-over) keeps itself live
 * while it waits; once it holds, the holder's first renew points it at the manager's session
 * (the edit it makes anyway), and from then on only the session is written. */
static void a_waiters_claim_moves_onto_the_session_when_it_holds(void **state)
{
    const uint32_t timeout = 4000;
    tl_manager *m = mgr_on("acme/widgets", "queued", NULL, timeout, NULL);
    tl_lock *l = NULL;

    (void)state;
    assert_int_equal(acquire_with(m, "125", TL_RETRY, &l), TL_OK);
    assert_int_equal(gh_session_of(&srv, 125), 0); /* a place in line names no session */
    int64_t t0 = tl__real_mono_ms(), sid = 0;
    while ((sid = gh_session_of(&srv, 125)) == 0 && tl__real_mono_ms() - t0 < 30000)
        tl__real_sleep_ms(50);
    assert_true(sid > 0); /* the heartbeat's first renew moved it */
    struct tl_gh_claim c1, c2;
    assert_true(gh_claim_on(&srv, 125, &c1));
    assert_true(c1.held);
    uint64_t s1 = session_seq(m, sid), s2 = s1;
    t0 = tl__real_mono_ms();
    while ((s2 = session_seq(m, sid)) <= s1 + 1 && tl__real_mono_ms() - t0 < 30000)
        tl__real_sleep_ms(50);
    assert_true(s2 > s1 + 1); /* two heartbeats since, at least */
    assert_true(gh_claim_on(&srv, 125, &c2));
    assert_int_equal(c2.seq, c1.seq); /* the claim was not written again */
    assert_int_equal(c2.session, sid);
    tl__gh_claim_clear(&c1);
    tl__gh_claim_clear(&c2);
    assert_false(tl_lock_is_lost(l));
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

/* A renew by token alone (`tasklock renew`: often a process of its own that ends at once) of a
 * claim without a session keeps the claim live by its own edit: it posts no session of its own,
 * which would die with that process. */
static void a_renew_by_token_hangs_nothing_on_its_session(void **state)
{
    tl_manager *a = mgr("by-token", "sessions=off"), *b = mgr("by-token", NULL);
    tl_lock *l = NULL;

    (void)state;
    assert_int_equal(try_acquire(a, "126", &l), TL_OK);
    assert_int_equal(gh_session_of(&srv, 126), 0);
    struct tl_gh_claim before, after;
    assert_true(gh_claim_on(&srv, 126, &before));
    gh_stats_reset(&srv);
    assert_int_equal(tl_renew_token(b, "126", tl_lock_token(l)), TL_OK);
    assert_int_equal(tl_ghs_stat(&srv, "POST /repos/{o}/{r}/issues/{n}/comments"), 0);
    assert_int_equal(tl_ghs_stat(&srv, "writes"), 1);
    assert_int_equal(gh_session_of(&srv, 126), 0);
    assert_true(gh_claim_on(&srv, 126, &after));
    assert_true(after.seq > before.seq);
    tl__gh_claim_clear(&before);
    tl__gh_claim_clear(&after);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- the session issue ---- */

static void session_issue_is_found_made_or_refused(void **state)
{
    tl_lock *l = NULL;

    (void)state;
    /* Creating it fails: the message names the settings. */
    assert_int_equal(
        gh_admin(&srv, "POST", "/_admin/faults",
                 "{\"status_5xx\":{\"count\":1,\"endpoint\":\"POST /repos/{o}/{r}/issues\"}}"),
        200);
    tl_manager *m = mgr_on("acme/empty", "first", NULL, 0, NULL);
    assert_int_equal(try_acquire(m, "1", &l), TL_ESTORE);
    print_message("%s\n", tl_errmsg(m));
    assert_non_null(strstr(tl_errmsg(m), "session_issue=N"));
    assert_non_null(strstr(tl_errmsg(m), "sessions=off"));
    tl_manager_free(m);
    /* Made on first use, labelled; a later manager finds it and makes no other. */
    gh_stats_reset(&srv);
    m = mgr_on("acme/empty", "first", NULL, 0, NULL);
    assert_int_equal(try_acquire(m, "1", &l), TL_OK);
    assert_int_equal(tl_ghs_stat(&srv, "POST /repos/{o}/{r}/issues"), 1);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
    gh_stats_reset(&srv);
    m = mgr_on("acme/empty", "second", NULL, 0, NULL);
    assert_int_equal(try_acquire(m, "2", &l), TL_OK);
    assert_int_equal(tl_ghs_stat(&srv, "POST /repos/{o}/{r}/issues"), 0);
    assert_int_equal(tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues"), 1);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
    /* ?session_issue=N: that issue, without looking. */
    gh_stats_reset(&srv);
    m = mgr_on("acme/empty", "third", "session_issue=3", 0, NULL);
    assert_int_equal(try_acquire(m, "2", &l), TL_OK);
    assert_int_equal(tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues"), 0);
    char path[128], *resp = NULL;
    (void)snprintf(path, sizeof(path), "/_admin/comments?repo=acme/empty&number=3");
    assert_int_equal(tl_ghs_admin(&srv, "GET", path, NULL, &resp), 200);
    assert_non_null(strstr(resp, "tasklock:session"));
    free(resp);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
    /* A bad value is refused before any request. */
    tl_manager *bad = tl_manager_new(
        &(struct tl_options){.store_url = "github://acme/empty?session_issue=x", .worker_id = "w"});
    assert_non_null(bad);
    assert_int_equal(tl_connect(bad), TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(bad), "session_issue"));
    tl_manager_free(bad);
}

int main(void)
{
    /* The rate limit is not what these tests are about (test_github_limits.c). */
    const char *const args[] = {"--repo",       "acme/widgets", "--repo",  "acme/empty",
                                "--issues",     "130",          "--token", LOGIN "=" TOKEN,
                                "--rate-limit", "1000000",      NULL};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(session_issue_is_found_made_or_refused),
        cmocka_unit_test(request_budget_with_sessions),
        cmocka_unit_test(forged_session_makes_nothing_live),
        cmocka_unit_test(deleted_session_makes_its_claims_stale),
        cmocka_unit_test(renew_by_token_refreshes_the_session),
        cmocka_unit_test(extend_moves_the_claim_to_a_session_of_its_timeout),
        cmocka_unit_test(claims_without_a_session_work_beside_the_others),
        cmocka_unit_test(stale_session_loses_every_lock_within_an_interval),
        cmocka_unit_test(sessions_are_on_by_default),
        cmocka_unit_test(a_claim_is_as_fresh_as_its_session),
        cmocka_unit_test(an_idle_session_is_not_revived),
        cmocka_unit_test(a_waiters_claim_moves_onto_the_session_when_it_holds),
        cmocka_unit_test(a_renew_by_token_hangs_nothing_on_its_session),
        cmocka_unit_test(hundred_locks_one_write_per_interval),
    };

    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", TOKEN, 1);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tl_ghs_stop(&srv);
    return rc;
}
#endif
