/*
 * bench_github.c -- the GitHub store against the project's GitHub test server (127.0.0.1):
 *
 *   requests  the requests and writes of one acquire, one heartbeat (tl_renew), one release,
 *             and of an acquire that finds the issue held (first and repeated), read from the
 *             server's counters (GET /_admin/stats) around each call
 *   latency   the time of one acquire with L ms added to every request by the server
 *             (POST /_admin/faults {"latency_ms":L}), and that time in round trips of L
 *
 *   reset     only reset the server (before another driver's GitHub run)
 *   comments  print the number of live comments on issue -n (after another driver's run)
 *
 *   bench_github -a API_URL [-R REPO] [-m requests|latency|reset|comments] [-L MS] [-n ISSUE]
 *                [-o CSV -r REP]
 *
 * The server's state is reset before each measurement (POST /_admin/reset), and its primary
 * rate budget raised, so that earlier runs leave no comments behind. GH_TOKEN must hold a token
 * the server knows (the harness's: test-token). The store runs with write_budget=off: this
 * measures the protocol, not GitHub's content-creation limits (80 writes/min, 500/h).
 */
#include <getopt.h>
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
    if (ms > 0) {
        (void)snprintf(body, sizeof(body), "{\"latency_ms\":%d}", ms);
        admin("POST", "/_admin/faults", body);
    }
    /* connect (GET /user) is not timed; ms 0: the same acquire with no latency added */
    tl_manager *a = manager(url, "bench-a");
    tl_lock *l = NULL;

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

int main(int argc, char **argv)
{
    const char *repo = "acme/widgets", *mode = "requests", *csv = NULL, *key = "7";
    int rep = 1, lat = 50, c;

    while ((c = getopt(argc, argv, "a:R:m:L:n:o:r:")) != -1) {
        switch (c) {
        case 'a': api = optarg; break;
        case 'R': repo = optarg; break;
        case 'm': mode = optarg; break;
        case 'L': lat = (int)strtol(optarg, NULL, 10); break;
        case 'n': key = optarg; break;
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: " PROG " -a API_URL [-R REPO] [-m requests|latency] [-L MS] "
                            "[-n ISSUE] [-o CSV -r REP]\n");
            return 2;
        }
    }
    if (api == NULL || lat < 0)
        bench_die(PROG, "usage", "need -a http://127.0.0.1:PORT");

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
    else
        bench_die(PROG, mode, "unknown mode");
    bench_csv_close(&out);
    return 0;
}
