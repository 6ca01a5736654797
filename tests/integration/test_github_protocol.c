/*
 * test_github_protocol.c -- the GitHub Issues store's own protocol (DESIGN.md section 5), on a
 * private tl-github-server: racing processes, late-visible claims, ambiguous POSTs, untrusted
 * and garbled markers, pagination, error statuses, the request budget of each operation (read
 * from the server's counters), the audit trail read back from the comments, and GitHub's
 * comment size limit.
 *
 * Issues 1..40 of acme/widgets; each test uses its own issue numbers. The tests of a long-lived
 * connection and of deadlines run on a private server of their own (its own budget and faults).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_test.h"

#ifndef TL_WITH_GITHUB
int main(void)
{
    fprintf(stderr, "github protocol: this build has no GitHub store; skipped\n");
    return 77;
}
#else
#include <jansson.h>
#include <pthread.h>

#include "gh_test.h"
#include "spawn.h"
#include "stores/github.h"

static struct tl_ghs srv;
#define TOKEN "proto-token"
#define LOGIN "tasklock-bot"

/* ---- helpers ---- */

static void faults(const char *json)
{
    assert_int_equal(gh_admin(&srv, "POST", "/_admin/faults", json), 200);
}

static void url_for(char *buf, size_t size, const char *extra)
{
    (void)snprintf(buf, size, "github://acme/widgets?api_url=%s&reread_delay=50ms%s%s", srv.url,
                   extra && extra[0] ? "&" : "", extra ? extra : "");
}

struct logbuf {
    pthread_mutex_t mu;
    char text[8192];
    int warnings;
};

static void capture(void *ud, int level, const char *msg)
{
    struct logbuf *b = ud;

    pthread_mutex_lock(&b->mu);
    size_t n = strlen(b->text);
    (void)snprintf(b->text + n, sizeof(b->text) - n, "%d %s\n", level, msg);
    if (level == TL_LOG_WARN)
        b->warnings++;
    pthread_mutex_unlock(&b->mu);
}

static tl_manager *mgr_log(const char *worker, const char *extra, uint32_t timeout_ms,
                           uint32_t heartbeat_ms, struct logbuf *log)
{
    char url[512];

    url_for(url, sizeof(url), extra);
    const struct tl_options o = {.store_url = url,
                                 .worker_id = worker,
                                 .node_id = "proto-node",
                                 .lock_timeout_ms = timeout_ms ? timeout_ms : 60000,
                                 .heartbeat_ms = heartbeat_ms,
                                 .backoff_initial_ms = 10,
                                 .backoff_max_ms = 50,
                                 .log = log ? capture : NULL,
                                 .log_ud = log,
                                 .log_level = TL_LOG_DEBUG};
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

static tl_manager *mgr(const char *worker, const char *extra)
{
    return mgr_log(worker, extra, 0, 0, NULL);
}

static tl_status try_acquire(tl_manager *m, const char *key, tl_lock **out)
{
    const struct tl_acquire_opts o = {.strategy = TL_FAIL_FAST};

    return tl_acquire(m, key, &o, out);
}

/* How many live comments of issue `n` carry a claim marker. */
static int claims_on(int n)
{
    return gh_count_bodies(&srv, n, "<!-- tasklock {");
}

static struct tl_metrics metrics_of(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt;
}

/* A claim body as the store would write it. */
static char *claim_body(const char *worker, uint32_t timeout_ms)
{
    struct tl_gh_claim c;

    memset(&c, 0, sizeof(c));
    c.rec.info.worker_id = tl__strdup(worker);
    c.rec.info.node_id = tl__strdup("elsewhere");
    c.rec.info.task_info = tl__strdup("{}");
    c.rec.info.claimed_at_ms = c.rec.info.heartbeat_at_ms = tl__real_now_ms();
    c.rec.info.lock_timeout_ms = timeout_ms;
    memcpy(c.nonce, "fedcba9876543210fedcba9876543210", TL_GH_NONCE_LEN + 1);
    char *body = tl__gh_build_claim(&c, tl__real_now_ms());
    tl__gh_claim_clear(&c);
    assert_non_null(body);
    return body;
}

static void release_and_free(tl_lock *l)
{
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
}

/* ---- the request budget ----
 *
 * Of per-claim heartbeats (sessions=off), as before sessions; test_github_session.c has the
 * budget with sessions. */

static void request_budget(void **state)
{
    tl_manager *a = mgr("budget-a", "sessions=off"), *b = mgr("budget-b", "sessions=off");
    tl_lock *l = NULL, *lb = NULL;

    (void)state;
    gh_stats_reset(&srv);
    assert_int_equal(try_acquire(a, "1", &l), TL_OK);
    long total = tl_ghs_stat(&srv, "total"), writes = tl_ghs_stat(&srv, "writes");
    print_message("uncontended acquire: %ld requests, %ld writes\n", total, writes);
    assert_true(total <= 4);
    assert_true(writes <= 2);

    gh_stats_reset(&srv);
    assert_int_equal(tl_renew(l), TL_OK);
    print_message("heartbeat: %ld requests, %ld writes\n", tl_ghs_stat(&srv, "total"),
                  tl_ghs_stat(&srv, "writes"));
    assert_int_equal(tl_ghs_stat(&srv, "writes"), 1);
    assert_int_equal(tl_ghs_stat(&srv, "PATCH /repos/{o}/{r}/issues/comments/{id}"), 1);

    /* Waiting on a held lock without the line (no_line): once the holder is known, every
     * retry is a 304. (Waiting in line costs its place's claim and its withdrawal:
     * test_github_line.c counts that.) */
    char url[512];
    url_for(url, sizeof(url), NULL);
    const struct tl_options nl = {.store_url = url,
                                  .worker_id = "budget-b",
                                  .node_id = "proto-node",
                                  .lock_timeout_ms = 60000,
                                  .backoff_initial_ms = 10,
                                  .backoff_max_ms = 50,
                                  .no_line = true};
    tl_manager_free(b);
    b = tl_manager_new(&nl);
    assert_non_null(b);
    assert_int_equal(tl_connect(b), TL_OK);
    assert_int_equal(try_acquire(b, "1", &lb), TL_EBUSY);
    gh_stats_reset(&srv);
    const struct tl_acquire_opts wait = {.strategy = TL_RETRY, .retries = 4};
    assert_int_equal(tl_acquire(b, "1", &wait, &lb), TL_EBUSY);
    print_message("waiting, 5 attempts: %ld requests, %ld answered 304, %ld answered 200\n",
                  tl_ghs_stat(&srv, "total"), tl_ghs_stat(&srv, "not_modified"),
                  tl_ghs_stat(&srv, "status:200"));
    assert_int_equal(tl_ghs_stat(&srv, "total"), 5);
    assert_int_equal(tl_ghs_stat(&srv, "not_modified"), 5);
    assert_int_equal(tl_ghs_stat(&srv, "status:200"), 0);
    assert_int_equal(tl_ghs_stat(&srv, "writes"), 0);
    assert_string_equal(tl_last_holder(b)->worker_id, "budget-a");

    gh_stats_reset(&srv);
    assert_int_equal(tl_release(l, "budget done"), TL_OK);
    print_message("release: %ld requests, %ld writes\n", tl_ghs_stat(&srv, "total"),
                  tl_ghs_stat(&srv, "writes"));
    /* list (the line: dead waiters after ours go first), DELETE claim, DELETE assignee, POST
     * completion */
    assert_true(tl_ghs_stat(&srv, "total") <= 4);
    assert_int_equal(tl_ghs_stat(&srv, "POST /repos/{o}/{r}/issues/{n}/comments"),
                     1); /* the completion */
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void heartbeat_defaults_to_a_quarter_of_the_timeout(void **state)
{
    tl_manager *a = mgr_log("hb-a", NULL, 600000, 0, NULL);
    tl_lock *l = NULL;

    (void)state;
    assert_int_equal(try_acquire(a, "2", &l), TL_OK);
    assert_int_equal(l->interval_ms, 150000); /* 10 min / 4: no 30 s cap on GitHub */
    release_and_free(l);
    tl_manager_free(a);
}

/* ---- racing processes ---- */

static void race_child(const char *extra, int id, int cmd, int res)
{
    char worker[32], c;
    tl_lock *l = NULL;

    (void)snprintf(worker, sizeof(worker), "racer-%d", id);
    tl_manager *m = mgr(worker, extra);
    while (read(cmd, &c, 1) == 1 && c != 'q') {
        char out = 'd';
        if (c == 'g') {
            out = try_acquire(m, "3", &l) == TL_OK ? 'W' : 'L';
        } else if (l != NULL) {
            if (tl_release(l, NULL) != TL_OK)
                _exit(4);
            tl_lock_free(l);
            l = NULL;
        }
        if (write(res, &out, 1) != 1)
            _exit(5);
    }
    tl_manager_free(m);
    _exit(0);
}

/* Eight processes race for one issue, round after round, with list lag: one holder each time,
 * and it is the one the issue shows. */
static void eight_processes_one_holder_per_round(void **state)
{
    enum { N = 8, ROUNDS = 6 };
    pid_t pids[N];
    int cmd[N], res[N];

    (void)state;
    faults("{\"clear\":true,\"visibility_lag_ms\":150}");
    for (int i = 0; i < N; i++) {
        int c[2], r[2];
        assert_int_equal(pipe(c), 0);
        assert_int_equal(pipe(r), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(c[1]);
            close(r[0]);
            race_child("write_budget=off&reread_delay=100ms&rereads=4", i, c[0], r[1]);
        }
        close(c[0]);
        close(r[1]);
        cmd[i] = c[1];
        res[i] = r[0];
    }
    for (int round = 0; round < ROUNDS; round++) {
        int winners = 0;
        char b;
        for (int i = 0; i < N; i++)
            assert_int_equal(write(cmd[i], "g", 1), 1);
        for (int i = 0; i < N; i++) {
            assert_int_equal(read(res[i], &b, 1), 1);
            winners += b == 'W';
        }
        if (winners != 1)
            fail_msg("round %d: %d holders among %d processes", round, winners, N);
        assert_int_equal(claims_on(3), 1); /* the losers withdrew theirs */
        for (int i = 0; i < N; i++)
            assert_int_equal(write(cmd[i], "r", 1), 1);
        for (int i = 0; i < N; i++)
            assert_int_equal(read(res[i], &b, 1), 1);
        assert_int_equal(claims_on(3), 0);
    }
    for (int i = 0; i < N; i++) {
        int status;
        assert_int_equal(write(cmd[i], "q", 1), 1);
        close(cmd[i]);
        close(res[i]);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    faults("{\"clear\":true}");
}

/* ---- consistency ---- */

/*
 * An earlier (lower-id) claim that the lists did not show when we claimed: if even the issue's
 * count hid it (here: reconciliation off), the next heartbeat finds it, reports the lock lost,
 * says why, and withdraws our claim.
 */
static void late_lower_claim_is_lost_within_one_heartbeat(void **state)
{
    struct tl_test_lost seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct logbuf log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    char url[512];
    tl_lock *l = NULL;

    (void)state;
    char *early = claim_body("early-bird", 60000);
    gh_add_comment_with(&srv, 4, LOGIN, early,
                        "{\"hidden_reads\":2}"); /* our pre-list and re-list miss it */
    tl__free(early);

    url_for(url, sizeof(url), "reconcile=false");
    const struct tl_options o = {.store_url = url,
                                 .worker_id = "late-comer",
                                 .lock_timeout_ms = 60000,
                                 .heartbeat_ms = 200,
                                 .on_lost = tl_test_on_lost,
                                 .lost_ud = &seen,
                                 .log = capture,
                                 .log_ud = &log};
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    assert_int_equal(try_acquire(m, "4", &l), TL_OK);
    if (!tl_test_poll(tl_test_lost_fired, &seen, 10, 5000))
        fail_msg("the lost callback did not fire within 5 s");
    assert_true(tl_lock_is_lost(l));
    pthread_mutex_lock(&log.mu);
    assert_non_null(strstr(log.text, "became visible late"));
    assert_non_null(strstr(log.text, "early-bird"));
    pthread_mutex_unlock(&log.mu);

    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(m, "4", &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->worker_id, "early-bird");
    tl_info_free(info);
    assert_int_equal(claims_on(4), 1); /* ours was withdrawn */
    tl_lock_free(l);
    tl_manager_free(m);
}

/* With reconciliation on (the default), the same hidden claim makes the outcome unknown: the
 * claim is withdrawn and reported busy, never won. */
static void hidden_claim_means_unknown_not_won(void **state)
{
    tl_manager *m = mgr("careful", "rereads=2");
    tl_lock *l = NULL;

    (void)state;
    char *early = claim_body("early-bird", 60000);
    gh_add_comment_with(&srv, 5, LOGIN, early, "{\"hidden_reads\":10}");
    tl__free(early);
    assert_int_equal(try_acquire(m, "5", &l), TL_EBUSY);
    assert_non_null(strstr(tl_errmsg(m), "unknown"));
    assert_int_equal(claims_on(5), 1); /* only the hidden one */
    tl_manager_free(m);
}

/* A POST that commits and then answers 502: found by its nonce, never posted twice. */
static void ambiguous_post_leaves_no_duplicate(void **state)
{
    tl_manager *m = mgr("retrier", "sessions=off");
    tl_lock *l = NULL;

    (void)state;
    faults("{\"clear\":true,\"post_commit_then_5xx\":1}");
    assert_int_equal(try_acquire(m, "6", &l), TL_OK);
    assert_int_equal(claims_on(6), 1);
    release_and_free(l);

    /* Committed, failed, and not listed for a while: unknown until it shows, then adopted. */
    faults("{\"clear\":true,\"post_commit_then_5xx\":1,\"visibility_lag_reads\":7}");
    int attempts = 0;
    tl_status st;
    do {
        st = try_acquire(m, "7", &l);
        attempts++;
        assert_true(claims_on(7) <= 1);
    } while (st == TL_EBUSY && attempts < 10);
    assert_int_equal(st, TL_OK);
    assert_true(attempts > 1);
    assert_int_equal(claims_on(7), 1);
    faults("{\"clear\":true}");
    release_and_free(l);
    tl_manager_free(m);
}

/* ---- who may claim ---- */

static void untrusted_claim_is_ignored(void **state)
{
    tl_manager *m = mgr("honest", NULL), *t = mgr("trusting", "trusted=mallory");
    struct tl_info *info = NULL;
    tl_lock *l = NULL;

    (void)state;
    char *fake = claim_body("mallory-worker", 600000);
    gh_add_comment(&srv, 8, "mallory", fake);
    tl__free(fake);
    assert_int_equal(tl_inspect(m, "8", &info), TL_OK);
    assert_null(info);
    /* A store told to trust mallory sees the claim. */
    assert_int_equal(tl_inspect(t, "8", &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->worker_id, "mallory-worker");
    tl_info_free(info);
    assert_int_equal(try_acquire(m, "8", &l), TL_OK);
    release_and_free(l);
    tl_manager_free(m);
    tl_manager_free(t);
}

static void garbled_markers_are_ignored_with_a_warning(void **state)
{
    struct logbuf log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *m = mgr_log("robust", NULL, 0, 0, &log);
    struct tl_info *info = NULL;
    tl_lock *l = NULL;

    (void)state;
    gh_add_comment(&srv, 9, LOGIN, "🔒 <!-- tasklock {\"v\":1,\"nonce\":42} -->");
    gh_add_comment(&srv, 9, LOGIN, "<!-- tasklock {{{{ -->");
    gh_add_comment(&srv, 9, LOGIN, "<!-- tasklock {\"v\":1");
    char *one = claim_body("twice", 60000);
    char *two = tl__asprintf("%s\n%s", one, one);
    gh_add_comment(&srv, 9, LOGIN, two);
    tl__free(one);
    tl__free(two);
    size_t n = 200000;
    char *big = malloc(n + 64);
    assert_non_null(big);
    strcpy(big, "<!-- tasklock {\"v\":1,\"pad\":\"");
    memset(big + strlen(big), 'x', n);
    strcpy(big + strlen("<!-- tasklock {\"v\":1,\"pad\":\"") + n, "\"} -->");
    gh_add_comment(&srv, 9, LOGIN, big);
    free(big);

    assert_int_equal(tl_inspect(m, "9", &info), TL_OK);
    assert_null(info);
    pthread_mutex_lock(&log.mu);
    assert_true(log.warnings >= 5);
    assert_non_null(strstr(log.text, "ignored"));
    pthread_mutex_unlock(&log.mu);
    assert_int_equal(try_acquire(m, "9", &l), TL_OK);
    release_and_free(l);
    tl_manager_free(m);
}

/* Another process of the same worker renews and releases by token alone (no nonce). */
static void renew_and_release_by_token_alone(void **state)
{
    tl_manager *a = mgr("by-token", NULL), *b = mgr("by-token", NULL);
    struct tl_info *info = NULL;
    tl_lock *l = NULL;
    int64_t beat = 0;

    (void)state;
    assert_int_equal(try_acquire(a, "15", &l), TL_OK);
    assert_int_equal(tl_inspect(b, "15", &info), TL_OK);
    assert_non_null(info);
    struct tl_record held = {.info = *info}; /* what a caller knows: key, worker id, token */
    struct tl_store *s = b->store;
    assert_int_equal(s->ops->renew(s, &held, 1, &beat), TL_OK);
    assert_true(beat >= info->claimed_at_ms);
    held.info.worker_id = "someone-else";
    assert_int_equal(s->ops->release(s, &held, NULL), TL_ENOTOWNER);
    held.info.worker_id = info->worker_id;
    assert_int_equal(s->ops->release(s, &held, "released by token"), TL_OK);
    assert_int_equal(s->ops->release(s, &held, NULL), TL_OK); /* safe to retry */
    assert_int_equal(gh_count_bodies(&srv, 15, "released by token"), 1);
    assert_int_equal(tl_renew(l), TL_ELOST);
    tl_info_free(info);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- pages ---- */

static void two_hundred_fifty_comments_are_paginated(void **state)
{
    tl_manager *a = mgr("pager-a", "sessions=off"), *b = mgr("pager-b", "sessions=off");
    struct tl_info *info = NULL;
    tl_lock *l = NULL, *lb = NULL;

    (void)state;
    for (int i = 0; i < 250; i++) {
        char text[64];
        (void)snprintf(text, sizeof(text), "comment %d", i);
        gh_add_comment(&srv, 10, i % 2 ? "alice" : LOGIN, text);
    }
    /* the claim lands on the third page */
    assert_int_equal(try_acquire(a, "10", &l), TL_OK);
    gh_stats_reset(&srv);
    assert_int_equal(tl_inspect(b, "10", &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->worker_id, "pager-a");
    assert_int_equal(info->token, tl_lock_token(l));
    tl_info_free(info);
    assert_int_equal(tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues/{n}/comments"), 3);
    /* polling again: three conditional requests, all 304 */
    gh_stats_reset(&srv);
    assert_int_equal(try_acquire(b, "10", &lb), TL_EBUSY);
    assert_int_equal(tl_ghs_stat(&srv, "not_modified"), 3);
    assert_int_equal(tl_ghs_stat(&srv, "total"), 3);
    release_and_free(l);
    assert_int_equal(try_acquire(b, "10", &lb), TL_OK);
    release_and_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- one connection for a long time; deadlines ---- */

static struct tl_ghs shared_srv;

/* A private server for one test (its own budget, counters and faults), swapped in for the shared
 * one, and out again by the teardown even when the test fails. */
static int private_server_up(void **state)
{
    /* The rate limit is not what these tests are about (test_github_limits.c). */
    const char *const args[] = {"--repo",        "acme/widgets", "--issues", "5", "--token",
                                LOGIN "=" TOKEN, "--rate-limit", "1000000",  NULL};

    (void)state;
    shared_srv = srv;
    if (tl_ghs_spawn(NULL, args, &srv) != 0) {
        srv = shared_srv;
        return -1;
    }
    return 0;
}

static int private_server_down(void **state)
{
    (void)state;
    (void)tl_ghs_stop(&srv);
    srv = shared_srv;
    return 0;
}

/*
 * One connection acquires and releases one issue, cycle after cycle; each release leaves a
 * completion comment, so the list grows past a page (100 comments). Then the first page stops
 * changing: its conditional read is a 304, which carries no Link, although new comments now
 * start a second page. The store must still read that page: no acquire may find the list short
 * (that would read the issue, and end in "outcome unknown"), and each costs one more
 * conditional request per page and list read: at most 2 * pages + 2 requests, 2 writes.
 */
static void long_lived_connection_reads_past_the_first_page(void **state)
{
    enum { CYCLES = 130 };
    tl_manager *m = mgr("cycler", "write_budget=off&sessions=off"), *w = mgr("waiter", NULL);
    tl_lock *l = NULL, *lw = NULL;

    (void)state;
    for (int i = 0; i < CYCLES; i++) { /* i comments (completions) before each acquire */
        gh_stats_reset(&srv);
        if (try_acquire(m, "1", &l) != TL_OK)
            fail_msg("cycle %d (%d comments on the issue): %s", i, i, tl_errmsg(m));
        long pages = i / 100 + 1, total = tl_ghs_stat(&srv, "total"),
             issue = tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues/{n}");
        if (total > 2 * pages + 2 || tl_ghs_stat(&srv, "writes") > 2 || issue != 0)
            fail_msg("cycle %d: acquire took %ld requests (%ld writes, %ld issue reads) on %ld "
                     "page(s)",
                     i, total, tl_ghs_stat(&srv, "writes"), issue, pages);
        if (i == CYCLES - 1)
            print_message("acquire on an issue of %d comments (2 pages): %ld requests, %ld "
                          "writes\n",
                          i, total, tl_ghs_stat(&srv, "writes"));
        if (i < CYCLES - 1)
            release_and_free(l);
    }
    /* Waiting on the held lock: one 304 per page. */
    assert_int_equal(try_acquire(w, "1", &lw), TL_EBUSY);
    gh_stats_reset(&srv);
    assert_int_equal(try_acquire(w, "1", &lw), TL_EBUSY);
    assert_int_equal(tl_ghs_stat(&srv, "total"), 2);
    assert_int_equal(tl_ghs_stat(&srv, "not_modified"), 2);
    assert_string_equal(tl_last_holder(w)->worker_id, "cycler");
    release_and_free(l);
    assert_int_equal(gh_count_bodies(&srv, 1, "Released by"), CYCLES);
    tl_manager_free(m);
    tl_manager_free(w);
}

/*
 * An acquire with a deadline while the list lags (our own claim stays unlisted, so the list is
 * shorter than the issue's count): the re-read delays (500 ms, 1 s, 2 s) must not carry it past
 * the deadline. Every request takes the injected latency; the call ends within the deadline plus
 * a few of them (the claim's withdrawal), where it used to take every re-read (over 3.5 s). The
 * answer is "unknown" (busy), with the claim withdrawn. The same for the nonce look-up after an
 * ambiguous POST, and for the retries of a GET that fails.
 */
static void acquire_ends_by_its_deadline(void **state)
{
    enum { LATENCY = 100, DEADLINE = 1200, BOUND = DEADLINE + 6 * LATENCY };
    tl_manager *m = mgr("hasty", "reread_delay=500ms&write_budget=off");
    const struct tl_acquire_opts o = {.strategy = TL_FAIL_FAST, .deadline_ms = DEADLINE};
    tl_lock *l = NULL;

    (void)state;
    /* 1. The claim's re-reads. */
    faults("{\"clear\":true,\"latency_ms\":100,\"visibility_lag_reads\":1000}");
    int64_t t0 = tl__real_mono_ms();
    tl_status st = tl_acquire(m, "2", &o, &l);
    int64_t took = tl__real_mono_ms() - t0;
    print_message("stale list, deadline %d ms: %s after %lld ms: %s\n", DEADLINE, tl_strerror(st),
                  (long long)took, tl_errmsg(m));
    assert_true(took <= BOUND);
    assert_int_equal(st, TL_EBUSY);
    assert_non_null(strstr(tl_errmsg(m), "unknown"));
    assert_non_null(strstr(tl_errmsg(m), "deadline"));
    assert_int_equal(claims_on(2), 0); /* withdrawn */

    /* 2. Looking for the nonce of a POST that committed and then failed. */
    faults("{\"clear\":true,\"latency_ms\":100,\"visibility_lag_reads\":3,"
           "\"post_commit_then_5xx\":1}");
    t0 = tl__real_mono_ms();
    st = tl_acquire(m, "3", &o, &l);
    took = tl__real_mono_ms() - t0;
    print_message("ambiguous POST, deadline %d ms: %s after %lld ms: %s\n", DEADLINE,
                  tl_strerror(st), (long long)took, tl_errmsg(m));
    assert_true(took <= BOUND);
    assert_int_equal(st, TL_EBUSY);
    assert_non_null(strstr(tl_errmsg(m), "unknown"));
    faults("{\"clear\":true}");
    int attempts = 0;
    do { /* the claim shows after its hidden reads, and is adopted */
        st = try_acquire(m, "3", &l);
        assert_true(claims_on(3) == 1);
    } while (st == TL_EBUSY && ++attempts < 10);
    assert_int_equal(st, TL_OK);
    release_and_free(l);

    /* 3. The retries of a list read answered 500 (200 ms, then 400 ms apart). */
    faults("{\"clear\":true,\"latency_ms\":100,\"status_5xx\":{\"count\":10,\"method\":\"GET\"}}");
    const struct tl_acquire_opts quick = {.strategy = TL_FAIL_FAST, .deadline_ms = 250};
    t0 = tl__real_mono_ms();
    st = tl_acquire(m, "4", &quick, &l);
    took = tl__real_mono_ms() - t0;
    print_message("5xx, deadline 250 ms: %s after %lld ms\n", tl_strerror(st), (long long)took);
    assert_true(took <= 250 + 3 * LATENCY);
    assert_int_equal(st, TL_ESTORE);
    faults("{\"clear\":true}");
    tl_manager_free(m);
}

/* ---- errors ---- */

static void bad_token_names_the_variable(void **state)
{
    char url[512];

    (void)state;
    setenv("GH_TOKEN", "wrong-token-value", 1);
    url_for(url, sizeof(url), NULL);
    const struct tl_options o = {.store_url = url, .worker_id = "w"};
    tl_manager *m = tl_manager_new(&o);
    assert_int_equal(tl_connect(m), TL_ESTORE);
    print_message("401: %s\n", tl_errmsg(m));
    assert_non_null(strstr(tl_errmsg(m), "401"));
    assert_non_null(strstr(tl_errmsg(m), "GH_TOKEN"));
    assert_null(strstr(tl_errmsg(m), "wrong-token-value"));
    tl_manager_free(m);
    setenv("GH_TOKEN", TOKEN, 1);
}

static void issue_status(int n, int status)
{
    char body[128];

    (void)snprintf(body, sizeof(body), "{\"repo\":\"acme/widgets\",\"number\":%d,\"status\":%d}", n,
                   status);
    int st = gh_admin(&srv, "POST", "/_admin/issues", body);
    assert_true(st == 200 || st == 201);
}

static void moved_deleted_and_missing_issues(void **state)
{
    tl_manager *m = mgr("errs", NULL);
    tl_lock *l = NULL;

    (void)state;
    issue_status(11, 301);
    assert_int_equal(try_acquire(m, "11", &l), TL_ESTORE);
    print_message("301: %s\n", tl_errmsg(m));
    assert_non_null(strstr(tl_errmsg(m), "transferred"));
    issue_status(12, 410);
    assert_int_equal(try_acquire(m, "12", &l), TL_ESTORE);
    print_message("410: %s\n", tl_errmsg(m));
    assert_non_null(strstr(tl_errmsg(m), "deleted"));
    issue_status(13, 404);
    assert_int_equal(try_acquire(m, "#13", &l), TL_ESTORE);
    assert_non_null(strstr(tl_errmsg(m), "not found"));
    assert_int_equal(try_acquire(m, "999", &l), TL_ESTORE);
    print_message("404: %s\n", tl_errmsg(m));
    assert_non_null(strstr(tl_errmsg(m), "#999 not found in acme/widgets"));
    assert_int_equal(try_acquire(m, "task-1", &l), TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(m), "issue number"));
    assert_null(l);
    tl_manager_free(m);
}

/* Release and the completion comment, steal and its note in the new claim. */
static void audit_trail_on_the_issue(void **state)
{
    tl_manager *a = mgr_log("auditor-a", NULL, 2000, 0, NULL), *b = mgr("auditor-b", NULL);
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(try_acquire(a, "14", &la), TL_OK);
    tl__heartbeat_stop(a);
    /* Stale by the server's clock: 2 s timeout + 1 s precision margin, moved on, not waited. */
    assert_int_equal(gh_admin(&srv, "POST", "/_admin/clock", "{\"advance_ms\":4000}"), 200);
    const struct tl_acquire_opts steal = {.strategy = TL_STEAL_STALE, .retries = TL_NO_RETRIES};
    assert_int_equal(tl_acquire(b, "14", &steal, &lb), TL_OK);
    assert_int_equal(metrics_of(b).stale_locks_claimed, 1);
    assert_int_equal(gh_count_bodies(&srv, 14, "Recovered the stale lock of `auditor-a`"), 1);
    assert_int_equal(claims_on(14), 1); /* one claim: no extra comment for the steal */
    assert_int_equal(tl_release(lb, "all <b>done</b>"), TL_OK);
    assert_int_equal(tl_renew(la), TL_ELOST);
    assert_int_equal(gh_count_bodies(&srv, 14, "Released by `auditor-b`"), 1);
    assert_int_equal(gh_count_bodies(&srv, 14, "> all &lt;b&gt;done&lt;/b&gt;"), 1);
    assert_int_equal(gh_count_bodies(&srv, 14, "Released by `auditor-a`"), 0);
    assert_int_equal(claims_on(14), 0);
    assert_int_equal(gh_admin(&srv, "POST", "/_admin/clock", "{\"offset_ms\":0}"), 200);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- the audit trail (tl_history) ---- */

struct want_event {
    tl_event_kind kind;
    const char *worker;
    uint64_t token;
    const char *detail; /* NULL: none */
};

static void expect_events(struct tl_event **ev, size_t n, const struct want_event *want,
                          size_t nwant, const char *key)
{
    for (size_t i = 0; i < n; i++)
        print_message("  event %-8s #%s %llu %s %s\n", tl_event_kind_name(ev[i]->kind), ev[i]->key,
                      (unsigned long long)ev[i]->token, ev[i]->worker_id,
                      ev[i]->detail ? ev[i]->detail : "");
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ev[i]->kind, want[i].kind);
        assert_string_equal(ev[i]->worker_id, want[i].worker);
        assert_int_equal(ev[i]->token, want[i].token);
        if (key != NULL)
            assert_string_equal(ev[i]->key, key);
        if (want[i].detail == NULL)
            assert_null(ev[i]->detail);
        else
            assert_string_equal(ev[i]->detail, want[i].detail);
        if (i > 0)
            assert_true(ev[i]->at_ms >= ev[i - 1]->at_ms);
    }
}

static char *from_text(const char *worker, uint64_t token)
{
    return tl__asprintf("from %s (token %llu)", worker, (unsigned long long)token);
}

/*
 * A steal and a force chain, released with summaries: the issue's comments tell it all but the
 * loss. An untrusted account's fake completion and claim are ignored; a garbled trusted marker
 * is skipped with a warning.
 */
static void history_tells_steals_forces_and_summaries(void **state)
{
    struct logbuf log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tl_manager *a = mgr_log("hist-a", "write_budget=off", 2000, 0, NULL);
    tl_manager *b = mgr_log("hist-b", "write_budget=off", 2000, 0, NULL);
    tl_manager *c = mgr_log("hist-c", "write_budget=off", 2000, 0, NULL);
    tl_manager *d = mgr_log("hist-d", "write_budget=off", 2000, 0, NULL);
    tl_manager *v = mgr_log("viewer", NULL, 0, 0, &log);
    const struct tl_acquire_opts steal = {.strategy = TL_STEAL_STALE, .retries = TL_NO_RETRIES};
    const struct tl_acquire_opts force = {.strategy = TL_FORCE_ACQUIRE, .retries = TL_NO_RETRIES};
    struct tl_event **ev = NULL;
    size_t n = 0;
    tl_lock *la = NULL, *lb = NULL, *lc = NULL, *ld = NULL;

    (void)state;
    /* Nothing yet: an empty trail, not an error. */
    assert_int_equal(tl_history(v, "16", 10, &ev, &n), TL_OK);
    assert_int_equal(n, 0);
    tl_event_array_free(ev, n);

    assert_int_equal(try_acquire(a, "16", &la), TL_OK);
    assert_int_equal(tl_release(la, "first <done>"), TL_OK);
    assert_int_equal(try_acquire(b, "16", &lb), TL_OK);
    tl__heartbeat_stop(b);
    gh_advance_clock(&srv, 4000); /* b is stale: 2 s timeout + 1 s margin */
    assert_int_equal(tl_acquire(c, "16", &steal, &lc), TL_OK);
    assert_int_equal(tl_acquire(d, "#16", &force, &ld), TL_OK);
    assert_int_equal(tl_renew(lb), TL_ELOST);

    /* An outsider writes a completion and a claim of its own; a trusted comment is garbled. */
    struct tl_gh_release fake = {.token = tl_lock_token(ld),
                                 .worker_id = "mallory-w",
                                 .node_id = "mallory-n",
                                 .claimed_at_ms = tl__real_now_ms(),
                                 .released_at_ms = tl__real_now_ms(),
                                 .summary = "I did it"};
    memcpy(fake.nonce, "00112233445566778899aabbccddeeff", TL_GH_NONCE_LEN + 1);
    char *fake_body = tl__gh_build_release(&fake);
    assert_non_null(fake_body);
    gh_add_comment(&srv, 16, "mallory", fake_body);
    tl__free(fake_body);
    char *fake_claim = claim_body("mallory-claim", 600000);
    gh_add_comment(&srv, 16, "mallory", fake_claim);
    tl__free(fake_claim);
    gh_add_comment(&srv, 16, LOGIN, "✅ <!-- tasklock:released {\"v\":1,\"token\":\"x\"} -->");

    assert_int_equal(tl_release(ld, "all done"), TL_OK);

    uint64_t ta = tl_lock_token(la), tb = tl_lock_token(lb), tc = tl_lock_token(lc),
             td = tl_lock_token(ld);
    char *fb = from_text("hist-b", tb), *fc = from_text("hist-c", tc);
    const struct want_event want[] = {
        {TL_EVENT_ACQUIRED, "hist-a", ta, NULL}, {TL_EVENT_RELEASED, "hist-a", ta, "first <done>"},
        {TL_EVENT_ACQUIRED, "hist-b", tb, NULL}, {TL_EVENT_STOLEN, "hist-c", tc, fb},
        {TL_EVENT_FORCED, "hist-d", td, fc},     {TL_EVENT_RELEASED, "hist-d", td, "all done"},
    };
    gh_stats_reset(&srv);
    assert_int_equal(tl_history(v, "16", 50, &ev, &n), TL_OK);
    expect_events(ev, n, want, 6, "16");
    tl_event_array_free(ev, n);
    /* One list request; asked again unchanged, a 304 (free). */
    assert_int_equal(tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues/{n}/comments"), 1);
    assert_int_equal(tl_ghs_stat(&srv, "writes"), 0);
    pthread_mutex_lock(&log.mu);
    assert_true(log.warnings >= 1);
    assert_non_null(strstr(log.text, "ignored"));
    pthread_mutex_unlock(&log.mu);
    gh_stats_reset(&srv);
    assert_int_equal(tl_history(v, "#16", 2, &ev, &n), TL_OK);
    assert_int_equal(tl_ghs_stat(&srv, "total"), 1);
    assert_int_equal(tl_ghs_stat(&srv, "not_modified"), 1);
    expect_events(ev, n, want + 4, 2, "#16"); /* the newest two, oldest first */
    tl_event_array_free(ev, n);

    tl__free(fb);
    tl__free(fc);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_lock_free(lc);
    tl_lock_free(ld);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(c);
    tl_manager_free(d);
    tl_manager_free(v);
}

/* The live holder's claim alone tells its acquisition and whom it displaced. */
static void history_of_a_held_lock(void **state)
{
    tl_manager *a = mgr_log("held-a", "write_budget=off", 2000, 0, NULL);
    tl_manager *b = mgr_log("held-b", "write_budget=off", 2000, 0, NULL);
    const struct tl_acquire_opts force = {.strategy = TL_FORCE_ACQUIRE, .retries = TL_NO_RETRIES};
    struct tl_event **ev = NULL;
    size_t n = 0;
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(try_acquire(a, "17", &la), TL_OK);
    assert_int_equal(tl_acquire(b, "17", &force, &lb), TL_OK);
    char *fa = from_text("held-a", tl_lock_token(la));
    const struct want_event want[] = {
        {TL_EVENT_ACQUIRED, "held-a", tl_lock_token(la), NULL},
        {TL_EVENT_FORCED, "held-b", tl_lock_token(lb), fa},
    };
    assert_int_equal(tl_history(a, "17", 0, &ev, &n), TL_OK);
    expect_events(ev, n, want, 2, "17");
    tl_event_array_free(ev, n);
    tl__free(fa);
    release_and_free(lb);
    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

/*
 * A stale claim that the first list did not show, taken by steal-stale after our claim was
 * posted: our claim is edited once to name it, so that the trail still has it.
 */
static void holder_taken_after_posting_is_recorded(void **state)
{
    tl_manager *m = mgr_log("late-thief", "write_budget=off", 0, 0, NULL);
    const struct tl_acquire_opts steal = {.strategy = TL_STEAL_STALE, .retries = TL_NO_RETRIES};
    struct tl_event **ev = NULL;
    size_t n = 0;
    tl_lock *l = NULL;

    (void)state;
    char *ghost = claim_body("ghost", 2000);
    gh_add_comment_with(&srv, 20, LOGIN, ghost,
                        "{\"hidden_reads\":1}"); /* our first list misses it */
    tl__free(ghost);
    json_t *arr = gh_comments(&srv, 20);
    uint64_t ghost_token =
        (uint64_t)json_integer_value(json_object_get(json_array_get(arr, 0), "id"));
    json_decref(arr);
    gh_advance_clock(&srv, 4000);
    gh_stats_reset(&srv);
    assert_int_equal(tl_acquire(m, "20", &steal, &l), TL_OK);
    assert_int_equal(tl_ghs_stat(&srv, "PATCH /repos/{o}/{r}/issues/comments/{id}"), 1);
    assert_int_equal(metrics_of(m).stale_locks_claimed, 1);
    assert_int_equal(claims_on(20), 1);
    assert_int_equal(gh_count_bodies(&srv, 20, "Recovered the stale lock of `ghost`"), 1);

    char *fg = from_text("ghost", ghost_token);
    const struct want_event want[] = {
        {TL_EVENT_ACQUIRED, "ghost", ghost_token, NULL},
        {TL_EVENT_STOLEN, "late-thief", tl_lock_token(l), fg},
    };
    assert_int_equal(tl_history(m, "20", 10, &ev, &n), TL_OK);
    expect_events(ev, n, want, 2, "20");
    tl_event_array_free(ev, n);
    tl__free(fg);
    release_and_free(l);
    tl_manager_free(m);
}

/*
 * Every key: the repository's newest comments, read newest first only as far as the newest
 * `limit` events need; a page bound keeps a busy repository's log cheap.
 */
static void history_of_the_repository(void **state)
{
    tl_manager *a = mgr_log("repo-a", "write_budget=off", 0, 0, NULL);
    tl_manager *v = mgr_log("repo-viewer", "per_page=4", 0, 0, NULL);
    tl_manager *w = mgr_log("repo-viewer", "per_page=2&history_pages=1", 0, 0, NULL);
    struct tl_event **ev = NULL;
    size_t n = 0;
    tl_lock *l = NULL;
    uint64_t tok[3];

    (void)state;
    gh_advance_clock(&srv, 10000); /* later than anything before, on any issue */
    for (int i = 0; i < 3; i++) {
        char key[8];
        (void)snprintf(key, sizeof(key), "%d", 21 + i);
        assert_int_equal(try_acquire(a, key, &l), TL_OK);
        tok[i] = tl_lock_token(l);
        gh_advance_clock(&srv, 2000);
        release_and_free(l);
        gh_advance_clock(&srv, 2000);
    }
    /* The newest 4 events: acquired 22, released 22, acquired 23, released 23. */
    gh_stats_reset(&srv);
    assert_int_equal(tl_history(v, NULL, 4, &ev, &n), TL_OK);
    assert_int_equal(n, 4);
    assert_string_equal(ev[0]->key, "22");
    assert_int_equal(ev[0]->kind, TL_EVENT_ACQUIRED);
    assert_int_equal(ev[0]->token, tok[1]);
    assert_string_equal(ev[1]->key, "22");
    assert_int_equal(ev[1]->kind, TL_EVENT_RELEASED);
    assert_string_equal(ev[2]->key, "23");
    assert_int_equal(ev[2]->kind, TL_EVENT_ACQUIRED);
    assert_int_equal(ev[3]->token, tok[2]);
    assert_int_equal(ev[3]->kind, TL_EVENT_RELEASED);
    tl_event_array_free(ev, n);
    long pages = tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues/comments");
    print_message("repository log, 4 events: %ld page requests of 4 comments\n", pages);
    assert_true(pages <= 2);

    /* One page of two comments (the newest completions): only what it tells completely. */
    assert_int_equal(tl_history(w, NULL, 100, &ev, &n), TL_OK);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ev[i]->key, "23");
    assert_true(n >= 1);
    assert_int_equal(ev[n - 1]->kind, TL_EVENT_RELEASED);
    tl_event_array_free(ev, n);

    assert_int_equal(tl_history(v, "abc", 4, &ev, &n), TL_EINVAL);
    tl_manager_free(a);
    tl_manager_free(v);
    tl_manager_free(w);
}

/* ---- size limits ---- */

/* {"x":"&&&...aaa..."}: `amp` ampersands (six characters each in the marker), `k` letters. */
static char *info_of(size_t amp, size_t k)
{
    char *t = tl__malloc(amp + k + 16);

    assert_non_null(t);
    memcpy(t, "{\"x\":\"", 6);
    memset(t + 6, '&', amp);
    memset(t + 6 + amp, 'a', k);
    memcpy(t + 6 + amp + k, "\"}", 3);
    return t;
}

static tl_status acquire_with(tl_manager *m, const char *key, tl_strategy strategy,
                              const char *info, tl_lock **out)
{
    const struct tl_acquire_opts o = {
        .strategy = strategy, .retries = TL_NO_RETRIES, .task_info = info};

    return tl_acquire(m, key, &o, out);
}

/*
 * A task_info the core takes can make a claim GitHub would refuse: it is refused before any
 * write (a forced acquire deletes nothing), with the size in the message; one character less
 * than the limit is posted, read back and renewed.
 */
static void task_info_too_large_for_a_comment(void **state)
{
    tl_manager *h = mgr_log("size-holder", "write_budget=off", 0, 0, NULL);
    tl_manager *m = mgr_log("size-taker", "write_budget=off", 0, 0, NULL);
    struct tl_info *info = NULL;
    tl_lock *lh = NULL, *l = NULL;
    size_t got = 0;

    (void)state;
    assert_int_equal(try_acquire(h, "24", &lh), TL_OK);
    /* 20000 '&' are 120000 characters once escaped in the marker. */
    char *lt = info_of(20000, 0);
    gh_stats_reset(&srv);
    assert_int_equal(acquire_with(m, "24", TL_FORCE_ACQUIRE, lt, &l), TL_EINVAL);
    print_message("%s\n", tl_errmsg(m));
    assert_non_null(strstr(tl_errmsg(m), "task info too large for a GitHub comment: the claim "
                                         "would be "));
    assert_non_null(strstr(tl_errmsg(m), "characters; GitHub allows 65536"));
    assert_int_equal(tl_ghs_stat(&srv, "writes"), 0);
    assert_int_equal(tl_inspect(m, "24", &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->worker_id, "size-holder");
    tl_info_free(info);
    tl__free(lt);
    release_and_free(lh);

    /* Find the boundary from the message, then stand on it (10800 '&': 64800 characters). */
    char *big = info_of(10800, 1000);
    assert_int_equal(acquire_with(m, "24", TL_FAIL_FAST, big, &l), TL_EINVAL);
    const char *p = strstr(tl_errmsg(m), "would be ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "would be %zu", &got), 1);
    tl__free(big);
    assert_true(got > 65536 && got - 65536 < 1000);
    size_t k = 1000 - (got - 65536);
    char *edge = info_of(10800, k + 1);
    assert_int_equal(acquire_with(m, "24", TL_FAIL_FAST, edge, &l), TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(m), "would be 65537 characters"));
    tl__free(edge);
    edge = info_of(10800, k);
    assert_int_equal(acquire_with(m, "24", TL_FAIL_FAST, edge, &l), TL_OK);
    assert_int_equal(tl_inspect(h, "24", &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->task_info, edge);
    tl_info_free(info);
    assert_int_equal(tl_renew(l), TL_OK);
    assert_int_equal(tl_renew(l), TL_OK);
    release_and_free(l);
    tl__free(edge);

    /* Four-byte characters: 64 KiB of them are far fewer characters, and the marker (over
     * 64 KiB of bytes) is read back. */
    size_t nchars = (TL_META_MAX - 16) / 4;
    char *wide = tl__malloc(nchars * 4 + 16);
    assert_non_null(wide);
    memcpy(wide, "{\"x\":\"", 6);
    for (size_t i = 0; i < nchars; i++)
        memcpy(wide + 6 + 4 * i, "\xf0\x9f\x94\x92", 4); /* U+1F512 */
    memcpy(wide + 6 + 4 * nchars, "\"}", 3);
    assert_int_equal(acquire_with(m, "24", TL_FAIL_FAST, wide, &l), TL_OK);
    assert_int_equal(tl_inspect(h, "24", &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->task_info, wide);
    tl_info_free(info);
    release_and_free(l);
    tl__free(wide);
    tl_manager_free(h);
    tl_manager_free(m);
}

/*
 * The completion comment is a released tenure's only record: a POST of it answered 500 (not
 * written) or whose connection dropped is posted again; one written before its 502 is found by
 * its nonce and not posted twice. The history tells each tenure.
 */
static void completion_comment_survives_failed_posts(void **state)
{
    static const char *const knobs[] = {
        "{\"clear\":true,\"status_5xx\":{\"count\":2,"
        "\"endpoint\":\"POST /repos/{o}/{r}/issues/{n}/comments\"}}",
        "{\"clear\":true,\"drop_connections\":{\"count\":1,"
        "\"endpoint\":\"POST /repos/{o}/{r}/issues/{n}/comments\"}}",
        "{\"clear\":true,\"post_commit_then_5xx\":1}",
    };
    tl_manager *m = mgr("completer", NULL);

    (void)state;
    for (int i = 0; i < 3; i++) {
        char key[8], done[64];
        tl_lock *l = NULL;
        struct tl_event **ev = NULL;
        size_t n = 0;

        (void)snprintf(key, sizeof(key), "%d", 30 + i);
        (void)snprintf(done, sizeof(done), "tenure %d done", i);
        assert_int_equal(try_acquire(m, key, &l), TL_OK);
        uint64_t token = tl_lock_token(l);
        faults(knobs[i]);
        gh_stats_reset(&srv);
        assert_int_equal(tl_release(l, done), TL_OK);
        long posts = tl_ghs_stat(&srv, "POST /repos/{o}/{r}/issues/{n}/comments");
        print_message("%s: release made %ld POSTs\n", knobs[i], posts);
        /* 500 twice, then written; dropped once, then written; written before its 502, then
         * found by its nonce and not posted again. */
        assert_int_equal(posts, i == 0 ? 3 : i == 1 ? 2 : 1);
        faults("{\"clear\":true}");
        assert_int_equal(gh_count_bodies(&srv, 30 + i, "Released by `completer`"), 1);
        assert_int_equal(tl_history(m, key, 10, &ev, &n), TL_OK);
        const struct want_event want[] = {{TL_EVENT_ACQUIRED, "completer", token, NULL},
                                          {TL_EVENT_RELEASED, "completer", token, done}};
        expect_events(ev, n, want, 2, key);
        tl_event_array_free(ev, n);
        tl_lock_free(l);
    }
    tl_manager_free(m);
}

int main(void)
{
    /* The rate limit is not what these tests are about (test_github_limits.c). */
    const char *const args[] = {"--repo",        "acme/widgets", "--issues", "40", "--token",
                                LOGIN "=" TOKEN, "--rate-limit", "1000000",  NULL};
    const struct CMUnitTest tests[] = {
        /* First, while the process has no other threads to fork with. */
        cmocka_unit_test(eight_processes_one_holder_per_round),
        cmocka_unit_test(request_budget),
        cmocka_unit_test(heartbeat_defaults_to_a_quarter_of_the_timeout),
        cmocka_unit_test(late_lower_claim_is_lost_within_one_heartbeat),
        cmocka_unit_test(hidden_claim_means_unknown_not_won),
        cmocka_unit_test(ambiguous_post_leaves_no_duplicate),
        cmocka_unit_test(untrusted_claim_is_ignored),
        cmocka_unit_test(garbled_markers_are_ignored_with_a_warning),
        cmocka_unit_test(renew_and_release_by_token_alone),
        cmocka_unit_test(two_hundred_fifty_comments_are_paginated),
        cmocka_unit_test(bad_token_names_the_variable),
        cmocka_unit_test(moved_deleted_and_missing_issues),
        cmocka_unit_test(audit_trail_on_the_issue),
        cmocka_unit_test(history_tells_steals_forces_and_summaries),
        cmocka_unit_test(history_of_a_held_lock),
        cmocka_unit_test(holder_taken_after_posting_is_recorded),
        cmocka_unit_test(history_of_the_repository),
        cmocka_unit_test(task_info_too_large_for_a_comment),
        cmocka_unit_test(completion_comment_survives_failed_posts),
        cmocka_unit_test_setup_teardown(long_lived_connection_reads_past_the_first_page,
                                        private_server_up, private_server_down),
        cmocka_unit_test_setup_teardown(acquire_ends_by_its_deadline, private_server_up,
                                        private_server_down),
    };

    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", TOKEN, 1);
    int rc = cmocka_run_group_tests_name("github_protocol", tests, NULL, NULL);
    tl_ghs_stop(&srv);
    return rc;
}
#endif
