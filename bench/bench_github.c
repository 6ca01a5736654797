/*
 * bench_github.c -- the GitHub store against the project's GitHub test server (127.0.0.1):
 *
 *   requests  the requests and writes of one acquire, one heartbeat (tl_renew), one release,
 *             and of an acquire that finds the issue held (first and repeated), read from the
 *             server's counters (GET /_admin/stats) around each call
 *   latency   the time of one acquire with L ms added to every request by the server
 *             (POST /_admin/faults {"latency_ms":L}), and that time in round trips of L
 *   sessions  the writes of holding: M managers (threads of this process, each its own
 *             manager, worker id and heartbeat thread) hold N locks between them (fail-fast
 *             acquires of issues 1..N, dealt round-robin; missing issues are created) with a
 *             lock timeout of T ms (-T; the heartbeat every quarter of it), with sessions
 *             (-s on) or per-claim heartbeats (-s off); after every lock has been renewed once,
 *             the server's write counter is read over K heartbeat intervals (-K). Writes per
 *             interval do not depend on the interval, so the figure holds at the default 5 min
 *             timeout (interval 75 s: per hour = per interval x 48). The renewals the managers
 *             made in the window (tl_metrics) show whether the heartbeats kept up.
 *
 *   reset     only reset the server (before another driver's GitHub run)
 *   comments  print the number of live comments on issue -n (after another driver's run)
 *
 *   bench_github -a API_URL [-R REPO] [-m requests|latency|sessions|reset|comments] [-L MS]
 *                [-n ISSUE] [-N LOCKS -M MANAGERS -T TIMEOUT_MS -K INTERVALS -s on|off]
 *                [-o CSV -r REP]
 *
 * The server's state is reset before each measurement (POST /_admin/reset), and its primary
 * rate budget raised, so that earlier runs leave no comments behind. GH_TOKEN must hold a token
 * the server knows (the harness's: test-token). The store runs with write_budget=off: this
 * measures the protocol, not GitHub's content-creation limits (80 writes/min, 500/h).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "store.h"
#include "tasklock.h"

#define PROG "bench_github"

static const char *api;

static void admin(const char *method, const char *path, const char *body)
{
    char resp[4096];
    int st = bench_http(api, method, path, body, resp, sizeof(resp));

    if (st != 200 && st != 201)
        bench_die(PROG, path, resp);
}

static void reset_server(void)
{
    admin("POST", "/_admin/reset", "{}");
    admin("POST", "/_admin/rate_limit", "{\"limit\":1000000000}");
}

struct counts {
    long total, writes, not_modified;
};

static struct counts stats(void)
{
    static char resp[1 << 16];
    struct counts c;

    if (bench_http(api, "GET", "/_admin/stats", NULL, resp, sizeof(resp)) != 200)
        bench_die(PROG, "stats", resp);
    c.total = bench_json_long(resp, "total");
    c.writes = bench_json_long(resp, "writes");
    c.not_modified = bench_json_long(resp, "not_modified");
    return c;
}

static void report(struct bench_csv *out, const char *op, struct counts a, struct counts b)
{
    char m[64];

    (void)snprintf(m, sizeof(m), "%s_requests", op);
    bench_csv_row(out, "", m, (double)(b.total - a.total));
    (void)snprintf(m, sizeof(m), "%s_writes", op);
    bench_csv_row(out, "", m, (double)(b.writes - a.writes));
    (void)snprintf(m, sizeof(m), "%s_not_modified", op);
    bench_csv_row(out, "", m, (double)(b.not_modified - a.not_modified));
    fprintf(stderr, "github %-14s %ld requests, %ld writes, %ld answered 304\n", op,
            b.total - a.total, b.writes - a.writes, b.not_modified - a.not_modified);
}

static tl_manager *manager(const char *url, const char *wid)
{
    tl_manager *m =
        tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = wid, .node_id = "b"});

    if (m == NULL || tl_connect(m) != TL_OK)
        bench_die(PROG, "connect", m ? tl_errmsg(m) : "out of memory");
    return m;
}

static void requests(const char *url, const char *key, struct bench_csv *out)
{
    reset_server();
    tl_manager *a = manager(url, "bench-a"), *b = manager(url, "bench-b");
    tl_lock *l = NULL, *lb = NULL;
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};

    /* A manager's first claim also posts its session comment (sessions are on by default:
     * docs/github.md), after a sweep of the session issue; measured on its own. */
    struct counts f0 = stats();
    if (tl_acquire(a, key, &ff, &l) != TL_OK)
        bench_die(PROG, "acquire", tl_errmsg(a));
    struct counts f1 = stats();
    report(out, "acquire_first", f0, f1);
    if (tl_release(l, NULL) != TL_OK)
        bench_die(PROG, "release", tl_errmsg(a));
    tl_lock_free(l);
    l = NULL;

    struct counts c0 = stats();
    if (tl_acquire(a, key, &ff, &l) != TL_OK)
        bench_die(PROG, "acquire", tl_errmsg(a));
    struct counts c1 = stats();
    report(out, "acquire", c0, c1);

    if (tl_renew(l) != TL_OK)
        bench_die(PROG, "renew", tl_errmsg(a));
    struct counts c2 = stats();
    report(out, "heartbeat", c1, c2);

    if (tl_acquire(b, key, &ff, &lb) != TL_EBUSY)
        bench_die(PROG, "busy acquire", "did not find the issue held");
    struct counts c3 = stats();
    report(out, "busy_first", c2, c3);
    if (tl_acquire(b, key, &ff, &lb) != TL_EBUSY)
        bench_die(PROG, "busy acquire", "did not find the issue held");
    struct counts c4 = stats();
    report(out, "busy_again", c3, c4);

    if (tl_release(l, NULL) != TL_OK)
        bench_die(PROG, "release", tl_errmsg(a));
    struct counts c5 = stats();
    report(out, "release", c4, c5);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void latency(const char *url, const char *key, int ms, struct bench_csv *out)
{
    char body[64], config[32];

    reset_server();
    /* connect (GET /user) is not timed, nor the manager's first claim (its session's post:
     * acquire_first above counts it); ms 0: the same acquire with no latency added */
    tl_manager *a = manager(url, "bench-a");
    tl_lock *l = NULL;
    if (tl_acquire(a, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l) != TL_OK ||
        tl_release(l, NULL) != TL_OK)
        bench_die(PROG, "first acquire", tl_errmsg(a));
    tl_lock_free(l);
    l = NULL;
    if (ms > 0) {
        (void)snprintf(body, sizeof(body), "{\"latency_ms\":%d}", ms);
        admin("POST", "/_admin/faults", body);
    }

    struct counts c0 = stats();
    double t0 = bench_now_s();
    if (tl_acquire(a, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l) != TL_OK)
        bench_die(PROG, "acquire", tl_errmsg(a));
    double acq = (bench_now_s() - t0) * 1000;
    struct counts c1 = stats();
    double t1 = bench_now_s();
    if (tl_release(l, NULL) != TL_OK)
        bench_die(PROG, "release", tl_errmsg(a));
    double rel = (bench_now_s() - t1) * 1000;
    tl_lock_free(l);
    tl_manager_free(a);
    admin("POST", "/_admin/faults", "{\"clear\":true}");

    (void)snprintf(config, sizeof(config), "latency%d", ms);
    bench_csv_row(out, config, "acquire_ms", acq);
    if (ms > 0)
        bench_csv_row(out, config, "acquire_round_trips", acq / ms);
    bench_csv_row(out, config, "acquire_requests", (double)(c1.total - c0.total));
    bench_csv_row(out, config, "release_ms", rel);
    fprintf(stderr,
            "github latency %d ms: acquire %.1f ms = %.2f round trips (%ld requests); "
            "release %.1f ms\n",
            ms, acq, ms > 0 ? acq / ms : 0.0, c1.total - c0.total, rel);
}

struct hold_opts {
    long locks;          /* N: issues 1..N */
    int managers;        /* M */
    uint32_t timeout_ms; /* T: the lock timeout; the heartbeat every T/4 */
    int intervals;       /* K: heartbeat intervals measured */
    bool sessions;       /* ?sessions=on, else off */
};

static struct tl_metrics metrics_sum(tl_manager *const *m, int n)
{
    struct tl_metrics sum = {0};

    for (int i = 0; i < n; i++) {
        struct tl_metrics mt;
        tl_metrics_get(m[i], &mt, sizeof(mt));
        sum.heartbeats_sent += mt.heartbeats_sent;
        sum.heartbeats_failed += mt.heartbeats_failed;
        sum.locks_lost += mt.locks_lost;
    }
    return sum;
}

/* Issues 1..n on the server: it starts with 100 (the harness's --issues); the rest are made. */
static void make_issues(const char *repo, long n)
{
    char body[160], resp[4096];

    for (long i = 101; i <= n; i++) {
        (void)snprintf(body, sizeof(body), "{\"repo\":\"%s\",\"number\":%ld}", repo, i);
        int st = bench_http(api, "POST", "/_admin/issues", body, resp, sizeof(resp));
        if (st != 200 && st != 201)
            bench_die(PROG, "creating issues", resp);
    }
}

static void hold(const char *url, const char *repo, const struct hold_opts *o,
                 struct bench_csv *out)
{
    char murl[600], wid[32], key[32], config[48];
    uint32_t interval_ms = o->timeout_ms / 4;

    reset_server();
    make_issues(repo, o->locks);
    (void)snprintf(murl, sizeof(murl), "%s&sessions=%s", url, o->sessions ? "on" : "off");
    tl_manager **m = calloc((size_t)o->managers, sizeof(*m));
    tl_lock **l = calloc((size_t)o->locks, sizeof(*l));
    if (m == NULL || l == NULL)
        bench_die(PROG, "memory", "out of memory");
    for (int i = 0; i < o->managers; i++) {
        (void)snprintf(wid, sizeof(wid), "bench-m%d", i + 1);
        m[i] = tl_manager_new(&(struct tl_options){
            .store_url = murl, .worker_id = wid, .node_id = "b", .lock_timeout_ms = o->timeout_ms});
        if (m[i] == NULL || tl_connect(m[i]) != TL_OK)
            bench_die(PROG, "connect", m[i] ? tl_errmsg(m[i]) : "out of memory");
    }
    double a0 = bench_now_s();
    for (long i = 0; i < o->locks; i++) {
        tl_manager *mi = m[i % o->managers];
        (void)snprintf(key, sizeof(key), "%ld", i + 1);
        if (tl_acquire(mi, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l[i]) !=
            TL_OK)
            bench_die(PROG, key, tl_errmsg(mi));
    }
    double acquire_s = bench_now_s() - a0;

    /* Settle: every lock renewed once since the last acquire (bounded: three intervals), so
     * that the window holds heartbeats only, in their rhythm. */
    struct tl_metrics s0 = metrics_sum(m, o->managers), s1 = s0;
    double until = bench_now_s() + 3.0 * interval_ms / 1000.0;
    while (s1.heartbeats_sent - s0.heartbeats_sent < (uint64_t)o->locks && bench_now_s() < until) {
        bench_sleep_s(0.02);
        s1 = metrics_sum(m, o->managers);
    }

    struct counts c0 = stats();
    struct tl_metrics w0 = metrics_sum(m, o->managers);
    double t0 = bench_now_s();
    bench_sleep_s((double)o->intervals * interval_ms / 1000.0);
    struct counts c1 = stats();
    struct tl_metrics w1 = metrics_sum(m, o->managers);
    double wall = bench_now_s() - t0;

    /* the window's own length, in intervals (it runs a little over K) */
    double ivs = wall * 1000.0 / interval_ms;
    double writes = (double)(c1.writes - c0.writes), requests = (double)(c1.total - c0.total);
    double renewals = (double)(w1.heartbeats_sent - w0.heartbeats_sent);
    double per_iv = writes / ivs;

    (void)snprintf(config, sizeof(config), "n%ld-m%d-%s", o->locks, o->managers,
                   o->sessions ? "sessions" : "per-claim");
    bench_csv_row(out, config, "lock_timeout_ms", o->timeout_ms);
    bench_csv_row(out, config, "interval_ms", interval_ms);
    bench_csv_row(out, config, "window_intervals", ivs);
    bench_csv_row(out, config, "acquire_all_s", acquire_s);
    bench_csv_row(out, config, "writes", writes);
    bench_csv_row(out, config, "requests", requests);
    bench_csv_row(out, config, "writes_per_interval", per_iv);
    bench_csv_row(out, config, "requests_per_interval", requests / ivs);
    /* at the default 5 min lock timeout: an interval of 75 s, 48 of them an hour */
    bench_csv_row(out, config, "writes_per_hour_default", per_iv * 48);
    bench_csv_row(out, config, "renewals_per_lock_interval", renewals / ivs / (double)o->locks);
    bench_csv_row(out, config, "heartbeats_failed", (double)w1.heartbeats_failed);
    bench_csv_row(out, config, "locks_lost", (double)w1.locks_lost);
    fprintf(stderr,
            "github hold %s: %ld locks acquired in %.2f s; %.0f writes, %.0f requests in %.2f "
            "intervals of %u ms = %.2f writes per interval (%.0f/h at the 5 min timeout); "
            "%.2f renewals per lock per interval; %llu heartbeats failed, %llu locks lost\n",
            config, o->locks, acquire_s, writes, requests, ivs, interval_ms, per_iv, per_iv * 48,
            renewals / ivs / (double)o->locks, (unsigned long long)w1.heartbeats_failed,
            (unsigned long long)w1.locks_lost);
    if (w1.locks_lost > 0)
        bench_die(PROG, config,
                  "locks were lost while held: the figure would not be one of holding");

    /* Not released: the server is reset before the next run. */
    for (long i = 0; i < o->locks; i++)
        tl_lock_free(l[i]);
    for (int i = 0; i < o->managers; i++)
        tl_manager_free(m[i]);
    free(l);
    free(m);
}

int main(int argc, char **argv)
{
    const char *repo = "acme/widgets", *mode = "requests", *csv = NULL, *key = "7";
    int rep = 1, lat = 50, c;
    struct hold_opts ho = {.locks = 10, .managers = 1, .timeout_ms = 2000, .intervals = 8};

    while ((c = getopt(argc, argv, "a:R:m:L:n:N:M:T:K:s:o:r:")) != -1) {
        switch (c) {
        case 'a': api = optarg; break;
        case 'R': repo = optarg; break;
        case 'm': mode = optarg; break;
        case 'L': lat = (int)strtol(optarg, NULL, 10); break;
        case 'n': key = optarg; break;
        case 'N': ho.locks = strtol(optarg, NULL, 10); break;
        case 'M': ho.managers = (int)strtol(optarg, NULL, 10); break;
        case 'T': ho.timeout_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'K': ho.intervals = (int)strtol(optarg, NULL, 10); break;
        case 's': ho.sessions = strcmp(optarg, "on") == 0; break;
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: " PROG " -a API_URL [-R REPO] [-m requests|latency|sessions] "
                            "[-L MS] [-n ISSUE] [-N LOCKS -M MANAGERS -T TIMEOUT_MS -K "
                            "INTERVALS -s on|off] [-o CSV -r REP]\n");
            return 2;
        }
    }
    if (api == NULL || lat < 0)
        bench_die(PROG, "usage", "need -a http://127.0.0.1:PORT");
    if (ho.locks < 1 || ho.managers < 1 || ho.managers > ho.locks || ho.timeout_ms < 400 ||
        ho.intervals < 1)
        bench_die(PROG, "usage", "need -N >= -M >= 1, -T >= 400, -K >= 1");

    if (strcmp(mode, "reset") == 0) {
        reset_server();
        return 0;
    }
    if (strcmp(mode, "comments") == 0) {
        static char resp[1 << 22];
        char path[128];
        long n = 0;

        (void)snprintf(path, sizeof(path), "/_admin/comments?repo=%s&number=%s", repo, key);
        if (bench_http(api, "GET", path, NULL, resp, sizeof(resp)) != 200)
            bench_die(PROG, path, resp);
        for (const char *p = resp; (p = strstr(p, "\"tl_hidden\"")) != NULL; p++)
            n++;
        printf("%ld\n", n);
        return 0;
    }
    char url[512];
    (void)snprintf(url, sizeof(url), "github://%s?api_url=%s&write_budget=off", repo, api);
    if (tl__store_find(url) == NULL) {
        printf("not measured: this build has no GitHub store\n");
        return 3;
    }
    struct bench_csv out;
    bench_csv_open(&out, csv, rep, "github", "ours");
    if (strcmp(mode, "requests") == 0)
        requests(url, key, &out);
    else if (strcmp(mode, "latency") == 0)
        latency(url, key, lat, &out);
    else if (strcmp(mode, "sessions") == 0)
        hold(url, repo, &ho, &out);
    else
        bench_die(PROG, mode, "unknown mode");
    bench_csv_close(&out);
    return 0;
}
