/*
 * test_github_session_sweep.c -- the sweep of stale session comments on the GitHub store
 * (docs/github.md "Sessions"; github_session.c, session_sweep), on a private tl-github-server.
 * A manager that posts a new session first deletes up to 2 session comments of trusted
 * accounts that are stale by twice their lock timeout by GitHub's clock, oldest first, never
 * one this process still uses. The evidence: what is swept and what is left (a session stale
 * by less than 2x, a fresh one, a comment that is not a session, an untrusted login's session,
 * a live manager's of this process); the session issue stays small however many one-shot
 * managers come and go; a live holder in another process keeps its session through sweeps;
 * a sweep that fails (5xx, a rate limit, a spent write budget) does not fail the acquire.
 *
 * Each test has a session issue of its own (session_issue=N, issues 41..45 of acme/widgets)
 * and lock keys of its own.
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
    fprintf(stderr, "github session sweep: this build has no GitHub store; skipped\n");
    return 77;
}
#else
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gh_test.h"
#include "http.h"
#include "spawn.h"
#include "store.h"
#include "stores/github.h"
#include "stores/github_next.h"
#include "tl_spawn.h"

static struct tl_ghs srv;
#define TOKEN   "sweep-token"
#define LOGIN   "tasklock-bot"
#define T       4000u /* the lock timeout of the sessions: stale by 2x at 8 s + the 1 s margin */
#define DELETES "DELETE /repos/{o}/{r}/issues/comments/{id}"

/* ---- helpers ---- */

static void store_url(char *url, size_t size, int session_issue, const char *budget)
{
    (void)snprintf(url, size,
                   "github://acme/widgets?api_url=%s&write_budget=%s&reread_delay=50ms&sessions=on"
                   "&session_issue=%d",
                   srv.url, budget ? budget : "off", session_issue);
}

/* A manager whose sessions go on issue `session_issue`, with lock timeout T. */
static tl_manager *mgr_budget(int session_issue, const char *worker, const char *budget)
{
    char url[512];

    store_url(url, sizeof(url), session_issue, budget);
    const struct tl_options o = {.store_url = url,
                                 .worker_id = worker,
                                 .node_id = "sweep-node",
                                 .lock_timeout_ms = T,
                                 .backoff_initial_ms = 10,
                                 .backoff_max_ms = 50};
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

static tl_manager *mgr(int session_issue, const char *worker)
{
    return mgr_budget(session_issue, worker, NULL);
}

/* Acquires `key` (fail-fast: it is free) and releases it: the manager's first claim posts its
 * session, after the sweep. Returns the DELETEs the acquire sent (it deletes nothing else: the
 * key is free), before the release deletes the claim. */
static long claim_and_release(tl_manager *m, const char *key)
{
    tl_lock *l = NULL;

    gh_stats_reset(&srv);
    if (tl_acquire(m, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l) != TL_OK)
        fail_msg("acquire %s: %s", key, tl_errmsg(m));
    long deletes = tl_ghs_stat(&srv, DELETES);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    return deletes;
}

/* A manager of its own that claims `key` once and is freed: `tasklock acquire` and release.
 * Returns the DELETEs of the acquire, as claim_and_release. */
static long one_shot(int session_issue, const char *worker, const char *key)
{
    tl_manager *m = mgr(session_issue, worker);
    long deletes = claim_and_release(m, key);

    tl_manager_free(m);
    return deletes;
}

static size_t count_comments(int n)
{
    json_t *arr = gh_comments(&srv, n);
    size_t c = json_array_size(arr);

    json_decref(arr);
    return c;
}

static bool exists(int n, int64_t id)
{
    json_t *arr = gh_comments(&srv, n), *c;
    size_t i;
    bool found = false;

    json_array_foreach(arr, i, c)
    {
        found = found || json_integer_value(json_object_get(c, "id")) == id;
    }
    json_decref(arr);
    return found;
}

/* The id of the session comment of `worker` on issue `n` (0: none). */
static int64_t session_by(int n, const char *worker)
{
    json_t *arr = gh_comments(&srv, n), *c;
    size_t i;
    int64_t id = 0;

    json_array_foreach(arr, i, c)
    {
        json_t *body = json_object_get(c, "body");
        struct tl_gh_session s;
        if (json_is_string(body) &&
            tl__gh_parse_session(json_string_value(body), json_string_length(body), &s) ==
                TL_GH_SESSION) {
            if (strcmp(s.worker_id, worker) == 0)
                id = json_integer_value(json_object_get(c, "id"));
            tl__gh_session_clear(&s);
        }
    }
    json_decref(arr);
    return id;
}

static char *session_body(uint32_t timeout_ms, uint64_t seq)
{
    struct tl_gh_session s = {
        .lock_timeout_ms = timeout_ms, .seq = seq, .worker_id = "gone", .node_id = "n"};

    static unsigned long long serial;

    (void)snprintf(s.nonce, sizeof(s.nonce), "%032llx", ++serial);
    char *body = tl__gh_build_session(&s, tl__real_now_ms());
    assert_non_null(body);
    return body;
}

/* A session comment on issue `n` by `login`, as a manager that then ended leaves it. */
static int64_t post_session(int n, const char *login, uint32_t timeout_ms)
{
    char *body = session_body(timeout_ms, 0);
    int64_t id = gh_add_comment(&srv, n, login, body);

    tl__free(body);
    return id;
}

/* Edits session comment `id` through manager `m`'s store (moves its updated_at to now). */
static void touch_session(tl_manager *m, int64_t id)
{
    struct tl_http_resp r = {0};
    char suffix[64], *text = session_body(T, 1);

    (void)snprintf(suffix, sizeof(suffix), "/issues/comments/%lld", (long long)id);
    char *url = tl__gh_repo_url(m->store, suffix);
    json_t *o = json_pack("{s:s}", "body", text);
    char *body = json_dumps(o, JSON_COMPACT);
    assert_non_null(url);
    assert_int_equal(tl__gh_request(m->store, "PATCH", url, body, NULL, &r), TL_OK);
    assert_int_equal(r.status, 200);
    tl__http_resp_clear(&r);
    tl__free(url);
    tl__free(text);
    free(body);
    json_decref(o);
}

/* ---- what is swept, and what is left ---- */

static void stale_sessions_are_swept_two_at_a_time_oldest_first(void **state)
{
    enum { S = 41 };

    (void)state;
    /* A live manager of this process: its session goes stale too, but it is in use here. */
    tl_manager *keeper = mgr(S, "keeper");
    assert_int_equal(claim_and_release(keeper, "1"), 0);
    int64_t kept = session_by(S, "keeper");
    assert_true(kept > 0);
    int64_t s1 = post_session(S, LOGIN, T), s2 = post_session(S, LOGIN, T);
    int64_t s3 = post_session(S, LOGIN, T);
    int64_t untrusted = post_session(S, "mallory", T);
    int64_t plain = gh_add_comment(&srv, S, LOGIN, "not a session: a note by a person");
    /* s1 is edited later than s2 and s3: the oldest by updated_at are s2 and s3, not the lowest
     * ids. */
    gh_advance_clock(&srv, 2000);
    touch_session(keeper, s1);
    gh_advance_clock(&srv, 2 * T + 3000); /* s1 stale by 2x + 2 s; s2, s3, mallory's by 2x + 4 s */
    int64_t under2x = post_session(S, LOGIN, T);
    int64_t long_timeout = post_session(S, LOGIN, 60000);
    gh_advance_clock(&srv, T + T / 2); /* under2x: stale, but by less than 2x */
    int64_t fresh = post_session(S, LOGIN, T);

    /* The first sweep: two, the oldest. */
    tl_manager *m1 = mgr(S, "sweeper-1");
    assert_int_equal(claim_and_release(m1, "2"), 2);
    assert_false(exists(S, s2));
    assert_false(exists(S, s3));
    assert_true(exists(S, s1));
    /* The next: the last stale one of a trusted account that this process does not use. */
    tl_manager *m2 = mgr(S, "sweeper-2");
    assert_int_equal(claim_and_release(m2, "3"), 1); /* mallory's was not even tried */
    assert_false(exists(S, s1));
    assert_true(exists(S, untrusted));
    assert_true(exists(S, plain));
    assert_true(exists(S, under2x));
    assert_true(exists(S, long_timeout));
    assert_true(exists(S, fresh));
    assert_true(exists(S, kept));
    /* Once its manager is gone, the keeper's session is swept like any other. */
    tl_manager_free(keeper);
    tl_manager *m3 = mgr(S, "sweeper-3");
    assert_int_equal(claim_and_release(m3, "4"), 1);
    assert_false(exists(S, kept));
    assert_true(exists(S, under2x));
    assert_true(session_by(S, "sweeper-1") > 0 && session_by(S, "sweeper-2") > 0);
    tl_manager_free(m1);
    tl_manager_free(m2);
    tl_manager_free(m3);
}

/* ---- bounded growth ---- */

/* One-shot managers (each acquires one lock, releases it and is freed), GitHub's clock moving
 * past 2x the timeout between them: each sweeps two before it posts one, so a backlog shrinks
 * by one per manager, and then the issue holds just the last manager's session. */
static void one_shot_managers_leave_a_bounded_session_issue(void **state)
{
    enum { S = 42, BACKLOG = 4, K = 8 };
    size_t before = BACKLOG;

    (void)state;
    for (int i = 0; i < BACKLOG; i++)
        (void)post_session(S, LOGIN, T);
    for (int i = 0; i < K; i++) {
        char worker[32];
        (void)snprintf(worker, sizeof(worker), "one-shot-%d", i);
        gh_advance_clock(&srv, 2 * T + 3000);
        (void)one_shot(S, worker, "10");
        size_t now = count_comments(S);
        print_message("after manager %d: %zu comments on the session issue\n", i + 1, now);
        assert_int_equal(now, (before > 2 ? before - 2 : 0) + 1);
        assert_true(now <= BACKLOG);
        before = now;
    }
    assert_int_equal(before, 1);
}

/* ---- a live holder in another process ---- */

/* `tasklock run KEY -- cat` with sessions on issue `S`: holds KEY and heartbeats until its
 * stdin (cat's) is closed. */
static pid_t spawn_holder(int session_issue, const char *key, int *to_child, int *from_child)
{
    const char *dir = tl_test_env("TL_TEST_BINARY_DIR");
    char bin[600], url[512];
    pid_t pid;

    (void)snprintf(bin, sizeof(bin), "%s/tasklock", dir ? dir : ".");
    store_url(url, sizeof(url), session_issue, NULL);
    const char *const argv[] = {bin,   "--store", url,      "--worker", "holder",
                                "run", key,       "--wait", "0",        "--lock-timeout",
                                "4s",  "--",      "cat",    NULL};
    assert_int_equal(tl_spawn_piped("holder", argv, &pid, to_child, from_child), 0);
    return pid;
}

static void a_live_holders_session_is_never_swept(void **state)
{
    enum { S = 43 };
    int to_child, from_child;
    tl_manager *reader = mgr(S, "reader");

    (void)state;
    pid_t pid = spawn_holder(S, "20", &to_child, &from_child);
    int64_t t0 = tl__real_mono_ms(), sid = 0;
    while ((sid = gh_session_of(&srv, 20)) == 0 && tl__real_mono_ms() - t0 < 10000)
        tl__real_sleep_ms(20);
    assert_true(sid > 0);
    assert_int_equal(session_by(S, "holder"), sid);
    int64_t decoy = post_session(S, LOGIN, T); /* a stale one: the sweeps do run */
    for (int round = 0; round < 3; round++) {
        /* 1.5x the timeout by GitHub's clock: stale (until the holder's next heartbeat), but
         * not by 2x; three rounds: 4.5x since the session was posted. */
        gh_advance_clock(&srv, T + T / 2);
        char key[8];
        (void)snprintf(key, sizeof(key), "%d", 21 + round);
        (void)one_shot(S, "sweeper", key);
        assert_true(exists(S, sid));
        /* The holder's heartbeat (a quarter of its timeout) makes its claim live again. */
        t0 = tl__real_mono_ms();
        while (gh_is_stale(reader, "20") && tl__real_mono_ms() - t0 < 10000)
            tl__real_sleep_ms(50);
        assert_false(gh_is_stale(reader, "20"));
    }
    assert_false(exists(S, decoy));
    assert_int_equal(gh_session_of(&srv, 20), sid);
    /* cat ends, and the holder releases: exit 0, not 5 (lost). */
    close(to_child);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(from_child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    tl_manager_free(reader);
}

/* ---- a failing sweep ---- */

static void a_failing_sweep_does_not_fail_the_acquire(void **state)
{
    enum { S = 44 };

    (void)state;
    int64_t a = post_session(S, LOGIN, T), b = post_session(S, LOGIN, T);
    gh_advance_clock(&srv, 2 * T + 3000);
    /* A 5xx: the sweep stops at its first DELETE. */
    assert_int_equal(gh_admin(&srv, "POST", "/_admin/faults",
                              "{\"status_5xx\":{\"count\":1,\"endpoint\":\"" DELETES "\"}}"),
                     200);
    assert_int_equal(one_shot(S, "faulted-1", "30"), 1);
    assert_true(exists(S, a) && exists(S, b));
    /* A secondary rate limit (403, retry after 1 s): the sweep does not wait for it. */
    assert_int_equal(gh_admin(&srv, "POST", "/_admin/faults",
                              "{\"secondary_limit\":{\"count\":1,\"status\":403,\"retry_after\":1,"
                              "\"endpoint\":\"" DELETES "\"}}"),
                     200);
    assert_int_equal(one_shot(S, "faulted-2", "31"), 1);
    assert_true(exists(S, a) && exists(S, b));
    /* The primary limit spent: likewise. */
    assert_int_equal(gh_admin(&srv, "POST", "/_admin/faults",
                              "{\"primary_exhausted\":{\"count\":1,\"reset_in_s\":1,"
                              "\"endpoint\":\"" DELETES "\"}}"),
                     200);
    assert_int_equal(one_shot(S, "faulted-3", "32"), 1);
    assert_true(exists(S, a) && exists(S, b));
    /* A write budget with no more than the claim's own writes to spare: no sweep. */
    tl_manager *m = mgr_budget(S, "frugal", "4,100");
    tl_lock *l = NULL;
    gh_stats_reset(&srv);
    assert_int_equal(tl_acquire(m, "33", &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l),
                     TL_OK);
    assert_int_equal(tl_ghs_stat(&srv, DELETES), 0);
    tl_lock_free(l); /* not released: a release's 3 writes would wait for the budget */
    tl_manager_free(m);
    assert_true(exists(S, a) && exists(S, b));
    /* And without faults, both go. */
    assert_int_equal(one_shot(S, "clean", "34"), 2);
    assert_false(exists(S, a));
    assert_false(exists(S, b));
}

int main(void)
{
    /* The rate limit is not what these tests are about (test_github_limits.c). */
    const char *const args[] = {"--repo",        "acme/widgets", "--issues", "60", "--token",
                                LOGIN "=" TOKEN, "--rate-limit", "1000000",  NULL};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stale_sessions_are_swept_two_at_a_time_oldest_first),
        cmocka_unit_test(one_shot_managers_leave_a_bounded_session_issue),
        cmocka_unit_test(a_live_holders_session_is_never_swept),
        cmocka_unit_test(a_failing_sweep_does_not_fail_the_acquire),
    };

    signal(SIGPIPE, SIG_IGN);
    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", TOKEN, 1);
    unsetenv("GITHUB_API_URL");
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tl_ghs_stop(&srv);
    return rc;
}
#endif
