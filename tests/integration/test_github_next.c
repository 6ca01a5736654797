/*
 * test_github_next.c -- claim-next and done markers on the GitHub Issues store
 * (src/stores/github_next.c, docs/github.md), on a private tl-github-server: a label's open
 * issues ranked by the priority table, ties spread by worker id, closed issues skipped, a done
 * release closing the issue before it deletes the claim, reopen, forged completion comments,
 * and the request budget of one claim-next (read from the server's counters); four threads, and
 * four `tasklock work --label` processes, each draining a label with every issue done once.
 *
 * Issues 1..100 of acme/widgets; each test uses its own issue numbers and labels.
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
    fprintf(stderr, "github next: this build has no GitHub store; skipped\n");
    return 77;
}
#else
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gh_test.h"
#include "spawn.h"
#include "stores/github.h"

static struct tl_ghs srv;
#define TOKEN "next-token"
#define LOGIN "tasklock-bot"

/* ---- helpers ---- */

/* Sets issue `n`'s fields: `fields` is JSON object text without braces, e.g. "\"labels\":[]". */
static void set_issue(int n, const char *fields)
{
    char body[1024];

    (void)snprintf(body, sizeof(body), "{\"repo\":\"acme/widgets\",\"number\":%d%s%s}", n,
                   fields[0] ? "," : "", fields);
    int st = gh_admin(&srv, "POST", "/_admin/issues", body);
    if (st != 200 && st != 201)
        fail_msg("admin issue %d (%s): %d", n, fields, st);
}

/* Issue `n`'s state as GET would tell it ("open" or "closed"), through the admin API. */
static bool is_closed(int n)
{
    char body[128], *resp = NULL;

    (void)snprintf(body, sizeof(body), "{\"repo\":\"acme/widgets\",\"number\":%d}", n);
    assert_int_equal(tl_ghs_admin(&srv, "POST", "/_admin/issues", body, &resp), 200);
    json_t *o = json_loads(resp, 0, NULL);
    free(resp);
    const char *state = json_string_value(json_object_get(json_object_get(o, "issue"), "state"));
    assert_non_null(state);
    bool closed = strcmp(state, "closed") == 0;
    json_decref(o);
    return closed;
}

#define CLAIM_MARK  "<!-- tasklock {"
#define DONE_MARK   "\"done\":true"
#define REOPEN_MARK "<!-- tasklock:reopened"

static tl_manager *mgr(const char *worker, const char *extra)
{
    char url[512];

    (void)snprintf(url, sizeof(url),
                   "github://acme/widgets?api_url=%s&write_budget=off&reread_delay=50ms%s%s",
                   srv.url, extra && extra[0] ? "&" : "", extra ? extra : "");
    const struct tl_options o = {.store_url = url,
                                 .worker_id = worker,
                                 .node_id = "next-node",
                                 .lock_timeout_ms = 60000,
                                 .backoff_initial_ms = 10,
                                 .backoff_max_ms = 50};
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

static const struct tl_acquire_opts fail_fast = {.strategy = TL_FAIL_FAST};

static tl_lock *must_label(tl_manager *m, const char *label)
{
    tl_lock *l = NULL;
    tl_status st = tl_claim_next_label(m, label, &fail_fast, &l);

    if (st != TL_OK)
        fail_msg("claim-next --label %s: %s: %s", label, tl_strerror(st), tl_errmsg(m));
    return l;
}

static tl_lock *must_keys(tl_manager *m, const char *const *keys, size_t n)
{
    tl_lock *l = NULL;
    tl_status st = tl_claim_next(m, keys, n, &fail_fast, &l);

    if (st != TL_OK)
        fail_msg("claim-next: %s: %s", tl_strerror(st), tl_errmsg(m));
    return l;
}

static void release_free(tl_lock *l)
{
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
}

static void release_done(tl_lock *l, const char *summary)
{
    const struct tl_release_opts o = {.summary = summary, .done = true};
    tl_status st = tl_release_with(l, &o);

    if (st != TL_OK)
        fail_msg("done release of %s: %s", tl_lock_key(l), tl_strerror(st));
    tl_lock_free(l);
}

static bool has_event(tl_manager *m, const char *k, tl_event_kind kind)
{
    struct tl_event **ev = NULL;
    size_t n = 0;
    bool found = false;

    assert_int_equal(tl_history(m, k, 50, &ev, &n), TL_OK);
    for (size_t i = 0; i < n; i++)
        found = found || ev[i]->kind == kind;
    tl_event_array_free(ev, n);
    return found;
}

/* ---- tests ---- */

static void label_ranking_follows_the_priority_table(void **state)
{
    (void)state;
    set_issue(1, "\"labels\":[\"rank\",\"priority: low\"]");
    set_issue(2, "\"labels\":[\"rank\"]");
    set_issue(3, "\"labels\":[\"rank\",\"priority: high\"]");
    set_issue(4, "\"labels\":[\"Rank\",\"Priority: Critical\"]"); /* names are case-blind */
    set_issue(5, "\"labels\":[\"other\",\"priority: critical\"]");
    set_issue(6, "\"labels\":[\"rank\",\"priority: medium\"]");
    set_issue(7, "\"labels\":[\"rank\",\"priority: critical\"],\"state\":\"closed\"");

    tl_manager *m = mgr("ranker", NULL);
    const char *want[] = {"4", "3", "6", "1", "2"};
    tl_lock *held[5];
    for (size_t i = 0; i < 5; i++) {
        held[i] = must_label(m, "rank");
        assert_string_equal(tl_lock_key(held[i]), want[i]);
    }
    /* All held (assigned to the store's login: skipped without a request each): busy. */
    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next_label(m, "rank", &fail_fast, &none), TL_EBUSY);
    assert_non_null(strstr(tl_errmsg(m), "5 held"));
    /* A label nobody carries: nothing to do. */
    assert_int_equal(tl_claim_next_label(m, "no-such-label", &fail_fast, &none), TL_ENOTASK);
    for (size_t i = 0; i < 5; i++)
        release_free(held[i]);
    tl_manager_free(m);

    /* A table of one's own (?priorities=), most urgent first; the rest after it. */
    tl_manager *c = mgr("custom", "priorities=priority%3A%20low,%20priority%3A%20high%20");
    tl_lock *a = must_label(c, "rank");
    assert_string_equal(tl_lock_key(a), "1");
    tl_lock *b = must_label(c, "rank");
    assert_string_equal(tl_lock_key(b), "3");
    release_free(a);
    release_free(b);
    tl_manager_free(c);

    /* A bad table is refused when the store is opened. */
    char url[512];
    (void)snprintf(url, sizeof(url), "github://acme/widgets?api_url=%s&priorities=a,,b", srv.url);
    const struct tl_options o = {.store_url = url, .worker_id = "bad"};
    tl_manager *bad = tl_manager_new(&o);
    assert_non_null(bad);
    assert_int_equal(tl_connect(bad), TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(bad), "priorities"));
    tl_manager_free(bad);
}

static void ties_are_spread_by_worker_id(void **state)
{
    (void)state;
    for (int n = 10; n <= 17; n++)
        set_issue(n, "\"labels\":[\"tie\",\"priority: high\"]");
    set_issue(18, "\"labels\":[\"tie\",\"priority: high\"]"); /* 9th of the run: never first */

    int first[8], seen[9] = {0}, distinct = 0;
    for (int w = 0; w < 8; w++) {
        char worker[16];
        (void)snprintf(worker, sizeof(worker), "spread-%d", w);
        tl_manager *m = mgr(worker, NULL);
        tl_lock *l = must_label(m, "tie");
        first[w] = atoi(tl_lock_key(l));
        assert_true(first[w] >= 10 && first[w] <= 17); /* within the oldest SPREAD (8) */
        distinct += seen[first[w] - 10]++ == 0;
        release_free(l);
        /* The same worker starts on the same issue again. */
        l = must_label(m, "tie");
        assert_int_equal(atoi(tl_lock_key(l)), first[w]);
        release_free(l);
        tl_manager_free(m);
    }
    assert_true(distinct >= 3);
}

static void closed_issues_are_skipped(void **state)
{
    (void)state;
    set_issue(20, "\"labels\":[\"skip\"],\"state\":\"closed\"");
    set_issue(22, "\"labels\":[\"skip\"]");
    tl_manager *m = mgr("skipper", NULL);

    const char *both[] = {"20", "21"}, *closed[] = {"20"};
    tl_lock *l = must_keys(m, both, 2);
    assert_string_equal(tl_lock_key(l), "21");
    release_free(l);
    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next(m, closed, 1, &fail_fast, &none), TL_ENOTASK);
    assert_non_null(strstr(tl_errmsg(m), "done"));

    l = must_label(m, "skip");
    assert_string_equal(tl_lock_key(l), "22");
    release_free(l);

    /* A plain acquire of a closed issue works: a lock is a lock. */
    assert_int_equal(tl_acquire(m, "20", &fail_fast, &l), TL_OK);
    release_free(l);
    assert_true(is_closed(20));
    tl_manager_free(m);
}

static void done_closes_then_deletes_the_claim(void **state)
{
    (void)state;
    tl_manager *m = mgr("finisher", NULL);
    const char *keys[] = {"24"};

    tl_lock *l = must_keys(m, keys, 1);
    uint64_t token = tl_lock_token(l);
    /* The claim's DELETE fails once: the release stops after the close and the done comment,
     * with the claim still there -- the marker exists before the lock goes. */
    assert_int_equal(gh_admin(&srv, "POST", "/_admin/faults",
                              "{\"status_5xx\":{\"count\":1,\"endpoint\":"
                              "\"DELETE /repos/{o}/{r}/issues/comments/{id}\"}}"),
                     200);
    const struct tl_release_opts o = {.summary = "shipped", .done = true};
    assert_int_not_equal(tl_release_with(l, &o), TL_OK);
    assert_false(tl_lock_is_released(l));
    assert_true(is_closed(24));
    assert_int_equal(gh_count_bodies(&srv, 24, DONE_MARK), 1);
    assert_int_equal(gh_count_bodies(&srv, 24, CLAIM_MARK), 1);

    /* Released again: one done comment still, the claim gone. */
    assert_int_equal(tl_release_with(l, &o), TL_OK);
    assert_true(tl_lock_is_released(l));
    tl_lock_free(l);
    assert_int_equal(gh_count_bodies(&srv, 24, DONE_MARK), 1);
    assert_int_equal(gh_count_bodies(&srv, 24, CLAIM_MARK), 0);
    assert_true(is_closed(24));

    struct tl_done **d = NULL;
    size_t n = 0;
    assert_int_equal(tl_list_done(m, "24", &d, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(d[0]->token, token);
    assert_string_equal(d[0]->worker_id, "finisher");
    assert_string_equal(d[0]->summary, "shipped");
    tl_done_array_free(d, n);
    assert_true(has_event(m, "24", TL_EVENT_DONE));
    assert_false(has_event(m, "24", TL_EVENT_RELEASED));
    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next(m, keys, 1, &fail_fast, &none), TL_ENOTASK);
    tl_manager_free(m);
}

static void reopen_reopens_the_issue(void **state)
{
    (void)state;
    tl_manager *m = mgr("reopener", NULL);
    const char *keys[] = {"26"};
    bool was = false;

    release_done(must_keys(m, keys, 1), NULL);
    assert_true(is_closed(26));
    assert_int_equal(tl_reopen(m, "26", &was), TL_OK);
    assert_true(was);
    assert_false(is_closed(26));
    assert_int_equal(gh_count_bodies(&srv, 26, REOPEN_MARK), 1);
    assert_true(has_event(m, "26", TL_EVENT_REOPENED));
    struct tl_done **d = NULL;
    size_t n = 0;
    assert_int_equal(tl_list_done(m, "26", &d, &n), TL_OK);
    assert_int_equal(n, 0);
    tl_done_array_free(d, n);

    assert_int_equal(tl_reopen(m, "26", &was), TL_OK); /* open: nothing to do */
    assert_false(was);
    assert_int_equal(gh_count_bodies(&srv, 26, REOPEN_MARK), 1);
    tl_lock *l = must_keys(m, keys, 1);
    release_free(l);

    /* Closed again by hand, without tasklock: done for claim-next, but no done marker is
     * listed (the old one was cleared by the reopen comment after it). */
    set_issue(26, "\"state\":\"closed\"");
    tl_lock *none = NULL;
    assert_int_equal(tl_claim_next(m, keys, 1, &fail_fast, &none), TL_ENOTASK);
    assert_int_equal(tl_list_done(m, "26", &d, &n), TL_OK);
    assert_int_equal(n, 0);
    tl_done_array_free(d, n);
    tl_manager_free(m);
}

static void forged_completion_is_not_a_done_marker(void **state)
{
    (void)state;
    tl_manager *m = mgr("truster", NULL);

    /* An outsider's done completion on a closed issue. */
    struct tl_gh_release fake = {.token = 1,
                                 .worker_id = "mallory-w",
                                 .node_id = "mallory-n",
                                 .claimed_at_ms = tl__real_now_ms(),
                                 .released_at_ms = tl__real_now_ms(),
                                 .summary = "I did it",
                                 .done = true};
    memcpy(fake.nonce, "00112233445566778899aabbccddeeff", TL_GH_NONCE_LEN + 1);
    char *body = tl__gh_build_release(&fake);
    assert_non_null(body);
    assert_non_null(strstr(body, DONE_MARK));
    set_issue(28, "\"state\":\"closed\"");
    gh_add_comment(&srv, 28, "mallory", body);
    struct tl_done **d = NULL;
    size_t n = 0;
    assert_int_equal(tl_list_done(m, "28", &d, &n), TL_OK);
    assert_int_equal(n, 0);
    tl_done_array_free(d, n);

    /* A trusted done marker, then an outsider's reopen comment: still done. */
    const char *keys[] = {"29"};
    release_done(must_keys(m, keys, 1), "real");
    const struct tl_gh_reopen ro = {
        .worker_id = "mallory-w", .node_id = "mallory-n", .at_ms = tl__real_now_ms()};
    char *rbody = tl__gh_build_reopen(&ro);
    assert_non_null(rbody);
    gh_add_comment(&srv, 29, "mallory", rbody);
    assert_int_equal(tl_list_done(m, "29", &d, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_string_equal(d[0]->summary, "real");
    tl_done_array_free(d, n);

    /* The whole repository: 29 (and the other tests' done issues), never 28. */
    assert_int_equal(tl_list_done(m, NULL, &d, &n), TL_OK);
    bool has29 = false, has28 = false;
    for (size_t i = 0; i < n; i++) {
        has29 = has29 || strcmp(d[i]->key, "29") == 0;
        has28 = has28 || strcmp(d[i]->key, "28") == 0;
        assert_true(i == 0 || strcmp(d[i - 1]->key, d[i]->key) < 0);
    }
    assert_true(has29);
    assert_false(has28);
    tl_done_array_free(d, n);
    tl__free(body);
    tl__free(rbody);
    tl_manager_free(m);
}

static void request_budget_per_claim_next(void **state)
{
    (void)state;
    tl_manager *m = mgr("budgeter", NULL);
    tl_lock *l = NULL;

    /* The existing budget: a plain acquire of a fresh issue (after the manager's first, which
     * posts its session). */
    assert_int_equal(tl_acquire(m, "30", &fail_fast, &l), TL_OK);
    release_free(l);
    gh_stats_reset(&srv);
    assert_int_equal(tl_acquire(m, "30", &fail_fast, &l), TL_OK);
    long acquire = tl_ghs_stat(&srv, "total");
    long acquire_writes = tl_ghs_stat(&srv, "writes");
    release_free(l);

    /* By label: one list read more. */
    set_issue(31, "\"labels\":[\"budget\"]");
    set_issue(32, "\"labels\":[\"budget\"]");
    gh_stats_reset(&srv);
    l = must_label(m, "budget");
    assert_int_equal(tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues"), 1);
    assert_true(tl_ghs_stat(&srv, "total") <= acquire + 1);
    assert_int_equal(tl_ghs_stat(&srv, "writes"), acquire_writes);
    release_free(l);

    /* By keys: one issue read more (a conditional GET: a 304 when asked again). */
    const char *keys[] = {"33"};
    gh_stats_reset(&srv);
    l = must_keys(m, keys, 1);
    assert_true(tl_ghs_stat(&srv, "total") <= acquire + 1);
    assert_int_equal(tl_ghs_stat(&srv, "writes"), acquire_writes);
    release_free(l);
    /* A closed candidate costs one conditional GET: a 304 when unchanged. */
    const char *k35[] = {"35"};
    tl_lock *none = NULL;
    set_issue(35, "\"state\":\"closed\"");
    assert_int_equal(tl_claim_next(m, k35, 1, &fail_fast, &none), TL_ENOTASK);
    gh_stats_reset(&srv);
    assert_int_equal(tl_claim_next(m, k35, 1, &fail_fast, &none), TL_ENOTASK);
    assert_int_equal(tl_ghs_stat(&srv, "total"), 1);
    assert_int_equal(tl_ghs_stat(&srv, "not_modified"), 1);

    /* A done release: a plain release's requests and one PATCH (the close). */
    const char *k34[] = {"34"};
    l = must_keys(m, k34, 1);
    tl_lock *l2 = must_keys(m, keys, 1);
    gh_stats_reset(&srv);
    release_free(l);
    long release = tl_ghs_stat(&srv, "total");
    gh_stats_reset(&srv);
    release_done(l2, NULL);
    assert_int_equal(tl_ghs_stat(&srv, "PATCH /repos/{o}/{r}/issues/{n}"), 1);
    assert_true(tl_ghs_stat(&srv, "total") <= release + 1);

    /* Over busy candidates, at most 3 claims per attempt. */
    for (int n = 40; n <= 45; n++)
        set_issue(n, "\"labels\":[\"busy\"]");
    tl_manager *other = mgr("holder", "assign=false"); /* no assignee: not skipped unread */
    tl_lock *h[6];
    for (int i = 0; i < 6; i++) {
        char k[8];
        (void)snprintf(k, sizeof(k), "%d", 40 + i);
        assert_int_equal(tl_acquire(other, k, &fail_fast, &h[i]), TL_OK);
    }
    tl_manager *unassigned = mgr("prober", "assign=false");
    gh_stats_reset(&srv);
    assert_int_equal(tl_claim_next_label(unassigned, "busy", &fail_fast, &none), TL_EBUSY);
    assert_int_equal(tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues"), 1);
    assert_int_equal(tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues/{n}/comments"), 3);
    assert_int_equal(tl_ghs_stat(&srv, "writes"), 0);
    /* Asked again, nothing changed: every read a 304 (no primary rate budget spent): the
     * label's list, the three issues' comments and the one session their holder hangs on. */
    gh_stats_reset(&srv);
    assert_int_equal(tl_claim_next_label(unassigned, "busy", &fail_fast, &none), TL_EBUSY);
    assert_int_equal(tl_ghs_stat(&srv, "total"), 5);
    assert_int_equal(tl_ghs_stat(&srv, "not_modified"), 5);
    assert_int_equal(tl_ghs_stat(&srv, "GET /repos/{o}/{r}/issues/comments/{id}"), 1);
    for (int i = 0; i < 6; i++)
        release_free(h[i]);
    tl_manager_free(unassigned);
    tl_manager_free(other);
    tl_manager_free(m);
}

/* ---- four workers drain a label ---- */

#define DRAIN_FIRST   61
#define DRAIN_COUNT   20
#define DRAIN_WORKERS 4

struct drain {
    pthread_t thread;
    int id;
    int *claims; /* DRAIN_COUNT counters, under mu */
    pthread_mutex_t *mu;
    tl_status last;
    char err[TL_ERRMSG_SIZE];
};

static void *drain_main(void *arg)
{
    struct drain *d = arg;
    char worker[32];

    (void)snprintf(worker, sizeof(worker), "drain-%d", d->id);
    tl_manager *m = mgr(worker, NULL);
    const struct tl_acquire_opts wait = {.strategy = TL_RETRY, .deadline_ms = 30000};
    for (;;) {
        tl_lock *l = NULL;
        d->last = tl_claim_next_label(m, "drain", &wait, &l);
        if (d->last != TL_OK)
            break;
        int n = atoi(tl_lock_key(l));
        pthread_mutex_lock(d->mu);
        if (n >= DRAIN_FIRST && n < DRAIN_FIRST + DRAIN_COUNT)
            d->claims[n - DRAIN_FIRST]++;
        pthread_mutex_unlock(d->mu);
        const struct tl_release_opts done = {.done = true};
        d->last = tl_release_with(l, &done);
        tl_lock_free(l);
        if (d->last != TL_OK)
            break;
    }
    (void)snprintf(d->err, sizeof(d->err), "%s", tl_errmsg(m));
    tl_manager_free(m);
    return NULL;
}

static void four_workers_drain_a_label_once_each(void **state)
{
    (void)state;
    int claims[DRAIN_COUNT] = {0};
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct drain d[DRAIN_WORKERS];

    for (int n = DRAIN_FIRST; n < DRAIN_FIRST + DRAIN_COUNT; n++)
        set_issue(n, n % 3 == 0 ? "\"labels\":[\"drain\",\"priority: high\"]"
                                : "\"labels\":[\"drain\"]");
    memset(d, 0, sizeof(d));
    for (int i = 0; i < DRAIN_WORKERS; i++) {
        d[i].id = i;
        d[i].claims = claims;
        d[i].mu = &mu;
        assert_int_equal(pthread_create(&d[i].thread, NULL, drain_main, &d[i]), 0);
    }
    for (int i = 0; i < DRAIN_WORKERS; i++) {
        assert_int_equal(pthread_join(d[i].thread, NULL), 0);
        if (d[i].last != TL_ENOTASK)
            fail_msg("worker %d ended with %s: %s", i, tl_strerror(d[i].last), d[i].err);
    }
    for (int i = 0; i < DRAIN_COUNT; i++) {
        if (claims[i] != 1)
            fail_msg("issue %d was claimed %d times", DRAIN_FIRST + i, claims[i]);
        assert_true(is_closed(DRAIN_FIRST + i));
    }
}

/* ---- four `tasklock work` processes drain a label ---- */

#define WORK_FIRST 81
#define WORK_COUNT 20

static int64_t mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void work_processes_drain_a_label_once_each(void **state)
{
    (void)state;
    const char *bindir = tl_test_env("TL_TEST_BINARY_DIR");
    char binary[600], url[512], ledger[700], cmd[900];
    pid_t pids[4];

    if (bindir == NULL)
        skip();
    (void)snprintf(binary, sizeof(binary), "%s/tasklock", bindir);
    char *dir = tl_test_mkdtemp();
    assert_non_null(dir);
    (void)snprintf(ledger, sizeof(ledger), "%s/ledger", dir);
    (void)snprintf(url, sizeof(url),
                   "github://acme/widgets?api_url=%s&write_budget=off&reread_delay=50ms", srv.url);
    (void)snprintf(cmd, sizeof(cmd),
                   "printf '%%s %%s\\n' \"$TASKLOCK_KEY\" \"$TASKLOCK_TOKEN\" >> '%s'", ledger);
    for (int n = WORK_FIRST; n < WORK_FIRST + WORK_COUNT; n++)
        set_issue(n, "\"labels\":[\"cli-drain\"]");

    for (int i = 0; i < 4; i++) {
        char worker[32];
        (void)snprintf(worker, sizeof(worker), "cli-drain-%d", i);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0)
                (void)dup2(null, STDOUT_FILENO);
            execl(binary, binary, "-s", url, "-w", worker, "-q", "work", "--label", "cli-drain",
                  "--wait", "30s", "--", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
    }
    int64_t end = mono_ms() + 120000;
    for (int i = 0; i < 4; i++) {
        int status = 0;
        pid_t w;
        while ((w = waitpid(pids[i], &status, WNOHANG)) == 0 && mono_ms() < end) {
            struct timespec ts = {.tv_nsec = 20000000L};
            (void)nanosleep(&ts, NULL);
        }
        if (w == 0) {
            (void)kill(pids[i], SIGKILL);
            (void)waitpid(pids[i], &status, 0);
            fail_msg("tasklock work %d did not finish in 120 s", i);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("tasklock work %d exited with status %d", i, status);
    }

    int count[WORK_COUNT] = {0};
    FILE *f = fopen(ledger, "r");
    assert_non_null(f);
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        int n = atoi(line);
        if (n >= WORK_FIRST && n < WORK_FIRST + WORK_COUNT)
            count[n - WORK_FIRST]++;
    }
    (void)fclose(f);
    for (int i = 0; i < WORK_COUNT; i++) {
        if (count[i] != 1)
            fail_msg("issue %d was worked on %d times", WORK_FIRST + i, count[i]);
        assert_true(is_closed(WORK_FIRST + i));
    }
    tl_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    /* The rate limit is not what these tests are about (test_github_limits.c). */
    const char *const args[] = {"--repo",        "acme/widgets", "--issues", "100", "--token",
                                LOGIN "=" TOKEN, "--rate-limit", "1000000",  NULL};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(label_ranking_follows_the_priority_table),
        cmocka_unit_test(ties_are_spread_by_worker_id),
        cmocka_unit_test(closed_issues_are_skipped),
        cmocka_unit_test(done_closes_then_deletes_the_claim),
        cmocka_unit_test(reopen_reopens_the_issue),
        cmocka_unit_test(forged_completion_is_not_a_done_marker),
        cmocka_unit_test(request_budget_per_claim_next),
        cmocka_unit_test(four_workers_drain_a_label_once_each),
        cmocka_unit_test(work_processes_drain_a_label_once_each),
    };

    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", TOKEN, 1);
    int rc = cmocka_run_group_tests_name("github_next", tests, NULL, NULL);
    tl_ghs_stop(&srv);
    return rc;
}
#endif
