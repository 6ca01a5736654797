/*
 * bench_heartbeat.c -- what heartbeating costs: one manager acquires N locks and holds them
 * while its heartbeat thread renews every one of them each interval. The interval is set short
 * (-i) so that several rounds fall in a short run; the CPU time of the whole process (getrusage:
 * every thread) is read over W windows, and divided by the renewals made in each window. That
 * cost per renewal, times N renewals per default interval (-D: 30 s on sqlite, redis and
 * postgres; 75 s on GitHub), is the share of one core that holding N locks costs at the default
 * settings. Resident memory is read before the first acquire and while holding the N locks.
 *
 *   bench_heartbeat -u URL -N LOCKS [-i INTERVAL_MS] [-D DEFAULT_MS] [-w WINDOWS]
 *                   [-t WINDOW_SECONDS] [-s SETTLE_SECONDS] [-k BASE | -n FIRST_ISSUE
 *                   [-a API_URL]] [-R] [-o CSV -r REP -S STORE]
 *
 * With -i equal to -D (the default interval itself) and one window of a little more than two
 * intervals (-s 0: no settling), the figure is measured directly, not extrapolated: every lock
 * is renewed twice inside the window, and the CPU time over the window's length is the share
 * of a core.
 *
 * GitHub: keys are the issues FIRST..FIRST+N-1; with -a (the test server's URL) the server is
 * reset, its rate budget raised, and any missing issue created first. With -R the locks are
 * released at the end (not measured); by default they are left to go stale, since the servers
 * are thrown away after the run and 10,000 releases would take as long as the acquires.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "store.h"
#include "tasklock.h"

#define PROG "bench_heartbeat"

static struct tl_metrics metrics(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *csv = NULL, *store = "?", *base = NULL, *api = NULL;
    bool release = false;
    long nlocks = 1000, issue_base = 0;
    uint32_t interval = 2000, def_interval = 30000;
    int windows = 3, rep = 1, c;
    double window_s = 0, settle_s = -1;

    while ((c = getopt(argc, argv, "u:N:i:D:w:t:s:k:n:a:Ro:r:S:")) != -1) {
        switch (c) {
        case 'u': url = optarg; break;
        case 'N': nlocks = strtol(optarg, NULL, 10); break;
        case 'i': interval = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'D': def_interval = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'w': windows = (int)strtol(optarg, NULL, 10); break;
        case 't': window_s = strtod(optarg, NULL); break;
        case 's': settle_s = strtod(optarg, NULL); break;
        case 'k': base = optarg; break;
        case 'n': issue_base = strtol(optarg, NULL, 10); break;
        case 'a': api = optarg; break;
        case 'R': release = true; break;
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        case 'S': store = optarg; break;
        default:
            fprintf(stderr, "usage: " PROG " -u URL -N LOCKS [-i INTERVAL_MS] [-D DEFAULT_MS] "
                            "[-w WINDOWS] [-t WINDOW_S] [-k BASE | -n ISSUE] [-o CSV -r REP -S "
                            "STORE]\n");
            return 2;
        }
    }
    if (url == NULL || nlocks < 1 || interval < 100 || windows < 1)
        bench_die(PROG, "usage", "need -u URL, -N >= 1, -i >= 100, -w >= 1");
    if (window_s <= 0)
        window_s = 2.0 * interval / 1000.0;
    if (tl__store_find(url) == NULL) {
        printf("not measured: this build has no store for %.*s\n", (int)strcspn(url, ":"), url);
        return 3;
    }
    char basebuf[64];
    if (base == NULL) {
        (void)snprintf(basebuf, sizeof(basebuf), "bench-hb-%ld", (long)getpid());
        base = basebuf;
    }

    if (api != NULL && issue_base > 0) {
        char resp[4096], body[128];

        if (bench_http(api, "POST", "/_admin/reset", "{}", resp, sizeof(resp)) != 200 ||
            bench_http(api, "POST", "/_admin/rate_limit", "{\"limit\":1000000000}", resp,
                       sizeof(resp)) != 200)
            bench_die(PROG, api, "the test server's admin API does not answer");
        for (long i = 0; i < nlocks; i++) {
            (void)snprintf(body, sizeof(body), "{\"repo\":\"acme/widgets\",\"number\":%ld}",
                           issue_base + i);
            int st = bench_http(api, "POST", "/_admin/issues", body, resp, sizeof(resp));
            if (st != 200 && st != 201)
                bench_die(PROG, "creating issues", resp);
        }
    }
    long rss0 = bench_status_kb("VmRSS");
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url,
                                                        .worker_id = "bench-hb",
                                                        .node_id = "bench",
                                                        .heartbeat_ms = interval,
                                                        .lock_timeout_ms = 600000});
    if (m == NULL || tl_connect(m) != TL_OK)
        bench_die(PROG, "connect", m ? tl_errmsg(m) : "out of memory");
    long rss_connected = bench_status_kb("VmRSS");

    tl_lock **locks = calloc((size_t)nlocks, sizeof(*locks));
    if (locks == NULL)
        bench_die(PROG, "memory", "out of memory");
    double a0 = bench_now_s();
    for (long i = 0; i < nlocks; i++) {
        char key[300];
        if (issue_base > 0)
            (void)snprintf(key, sizeof(key), "%ld", issue_base + i);
        else
            (void)snprintf(key, sizeof(key), "%s-%ld", base, i);
        if (tl_acquire(m, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &locks[i]) !=
            TL_OK)
            bench_die(PROG, key, tl_errmsg(m));
    }
    double acquire_s = bench_now_s() - a0;
    long rss_held = bench_status_kb("VmRSS");
    fprintf(stderr, "%s: %ld locks acquired in %.1f s; heartbeat every %u ms\n", store, nlocks,
            acquire_s, interval);

    /* Let the heartbeat settle into its rhythm: every lock renewed once since the last acquire,
     * or, where a round takes longer than the interval (the thread then renews back to back),
     * two intervals. */
    struct tl_metrics mt = metrics(m);
    double settle_until = bench_now_s() + (settle_s >= 0 ? settle_s : 2.0 * interval / 1000.0);
    while (settle_s != 0 && mt.heartbeats_sent < (uint64_t)nlocks && bench_now_s() < settle_until) {
        bench_sleep_s(0.05);
        mt = metrics(m);
    }

    char config[32];
    (void)snprintf(config, sizeof(config), "n%ld", nlocks);
    struct bench_csv out;
    bench_csv_open(&out, csv, rep, store, "ours");
    bench_csv_row(&out, config, "interval_ms", interval);
    bench_csv_row(&out, config, "default_interval_ms", def_interval);
    bench_csv_row(&out, config, "acquire_all_s", acquire_s);
    bench_csv_row(&out, config, "rss_start_kb", (double)rss0);
    bench_csv_row(&out, config, "rss_connected_kb", (double)rss_connected);
    bench_csv_row(&out, config, "rss_held_kb", (double)rss_held);

    double per_renew[64];
    int nw = windows < 64 ? windows : 64;
    for (int w = 0; w < nw; w++) {
        struct tl_metrics before = metrics(m);
        double c0 = bench_cpu_s(), t0 = bench_now_s();
        bench_sleep_s(window_s);
        struct tl_metrics after = metrics(m);
        double cpu = bench_cpu_s() - c0, wall = bench_now_s() - t0;
        double renewals = (double)(after.heartbeats_sent - before.heartbeats_sent);
        double us = renewals > 0 ? cpu / renewals * 1e6 : 0;
        /* N renewals per default interval, at this cost each: the share of one core. */
        double core_pct = us * 1e-6 * (double)nlocks / (def_interval / 1000.0) * 100;
        char wconf[48];
        (void)snprintf(wconf, sizeof(wconf), "%s-w%d", config, w + 1);
        bench_csv_row(&out, wconf, "renewals", renewals);
        bench_csv_row(&out, wconf, "cpu_s", cpu);
        bench_csv_row(&out, wconf, "wall_s", wall);
        bench_csv_row(&out, wconf, "renewals_per_s", renewals / wall);
        bench_csv_row(&out, wconf, "cpu_us_per_renewal", us);
        bench_csv_row(&out, wconf, "core_pct_measured", cpu / wall * 100);
        bench_csv_row(&out, wconf, "core_pct_at_default", core_pct);
        per_renew[w] = us;
        fprintf(stderr,
                "%s window %d: %.0f renewals in %.1f s (%.0f/s), CPU %.3f s = %.1f%% of a core; "
                "%.1f us per renewal -> %.3f%% of a core for %ld locks every %u ms\n",
                store, w + 1, renewals, wall, renewals / wall, cpu, cpu / wall * 100, us, core_pct,
                nlocks, def_interval);
    }
    mt = metrics(m);
    long rss_end = bench_status_kb("VmRSS"), hwm = bench_status_kb("VmHWM");
    bench_csv_row(&out, config, "rss_end_kb", (double)rss_end);
    bench_csv_row(&out, config, "rss_peak_kb", (double)hwm);
    bench_csv_row(&out, config, "heartbeats_failed", (double)mt.heartbeats_failed);
    bench_csv_row(&out, config, "locks_lost", (double)mt.locks_lost);
    double med = bench_quantile(per_renew, (size_t)nw, 0.5);
    bench_csv_row(&out, config, "cpu_us_per_renewal_median", med);
    bench_csv_row(&out, config, "core_pct_at_default_median",
                  med * 1e-6 * (double)nlocks / (def_interval / 1000.0) * 100);
    bench_csv_row(&out, config, "core_pct_at_default_per_1000",
                  med * 1e-6 * 1000.0 / (def_interval / 1000.0) * 100);
    bench_csv_close(&out);
    fprintf(stderr,
            "%s: RSS %ld kB before, %ld kB holding %ld locks (%.0f bytes per lock); "
            "%llu heartbeats failed, %llu locks lost\n",
            store, rss_connected, rss_held, nlocks,
            (double)(rss_held - rss_connected) * 1024 / (double)nlocks,
            (unsigned long long)mt.heartbeats_failed, (unsigned long long)mt.locks_lost);

    for (long i = 0; i < nlocks; i++) {
        if (release)
            (void)tl_release(locks[i], NULL);
        tl_lock_free(locks[i]);
    }
    free(locks);
    tl_manager_free(m);
    return 0;
}
