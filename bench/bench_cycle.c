/*
 * bench_cycle.c -- uncontended acquire+release cycles per second through the library, on any
 * store: one process, one manager, one key, tl_acquire (FAIL_FAST) then tl_release, for a
 * fixed time after a short warm-up (connect, script loads, the heartbeat thread's start).
 * Reports the rate and the p50/p99 of the cycle time and of the acquire alone.
 *
 *   bench_cycle -u URL [-t SECONDS] [-w WARMUP] [-k KEY | -n FIRST [-K COUNT]]
 *               [-o CSV -r REP -S STORE -s SUBJECT]
 *   bench_cycle -l SCHEME      exit 0 if this build has that store, 3 if not (for bench/run.sh)
 *
 * Store URLs as the library takes them; GitHub keys are issue numbers (-k 7). With -n FIRST
 * -K COUNT the cycles go round the numeric keys FIRST..FIRST+COUNT-1, one key per cycle (still
 * one process and no contention): on GitHub every release leaves a completion comment on its
 * issue, and a single issue would pile up hundreds of them within a run.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "store.h"
#include "tasklock.h"

#define PROG "bench_cycle"

int main(int argc, char **argv)
{
    const char *url = NULL, *key = NULL, *csv = NULL, *store = "?", *subject = "ours";
    double seconds = 2.0, warm = 0.2;
    int rep = 1, c;
    long first = 0, count = 1;

    while ((c = getopt(argc, argv, "l:u:t:k:n:K:o:r:S:s:w:")) != -1) {
        switch (c) {
        case 'l': {
            char probe[64];
            (void)snprintf(probe, sizeof(probe), "%s:", optarg);
            return tl__store_find(probe) != NULL ? 0 : 3;
        }
        case 'u': url = optarg; break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 'w': warm = strtod(optarg, NULL); break;
        case 'k': key = optarg; break;
        case 'n': first = strtol(optarg, NULL, 10); break;
        case 'K': count = strtol(optarg, NULL, 10); break;
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        case 'S': store = optarg; break;
        case 's': subject = optarg; break;
        default:
            fprintf(stderr, "usage: " PROG " -u URL [-t SECONDS] [-w WARMUP] [-k KEY] "
                            "[-o CSV -r REP -S STORE -s SUBJECT]\n");
            return 2;
        }
    }
    if (url == NULL || seconds <= 0)
        bench_die(PROG, "usage", "need -u URL and -t > 0");
    if (tl__store_find(url) == NULL) {
        printf("not measured: this build has no store for %.*s\n", (int)strcspn(url, ":"), url);
        return 3;
    }

    char keybuf[64];
    if (first > 0 && count >= 1) {
        (void)snprintf(keybuf, sizeof(keybuf), "%ld", first);
        key = keybuf;
    } else if (key == NULL) {
        (void)snprintf(keybuf, sizeof(keybuf), "bench-cycle-%ld", (long)getpid());
        key = keybuf;
    }
    tl_manager *m = tl_manager_new(
        &(struct tl_options){.store_url = url, .worker_id = "bench", .node_id = "bench"});
    if (m == NULL || tl_connect(m) != TL_OK)
        bench_die(PROG, "connect", m ? tl_errmsg(m) : "out of memory");

    const struct tl_acquire_opts ao = {.strategy = TL_FAIL_FAST};
    size_t cap = 1 << 16, n = 0;
    double *cyc = malloc(cap * sizeof(double)), *acq = malloc(cap * sizeof(double));
    if (cyc == NULL || acq == NULL)
        bench_die(PROG, "memory", "out of memory");

    double start = bench_now_s(), measure_from = start + warm, end = measure_from + seconds;
    double t0 = 0;
    for (long i = 0;; i++) {
        if (first > 0 && count > 1)
            (void)snprintf(keybuf, sizeof(keybuf), "%ld", first + i % count);
        double c0 = bench_now_s();
        if (c0 >= end)
            break;
        if (t0 == 0 && c0 >= measure_from)
            t0 = c0;
        tl_lock *l = NULL;
        if (tl_acquire(m, key, &ao, &l) != TL_OK)
            bench_die(PROG, "acquire", tl_errmsg(m));
        double c1 = bench_now_s();
        if (tl_release(l, NULL) != TL_OK)
            bench_die(PROG, "release", tl_errmsg(m));
        tl_lock_free(l);
        double c2 = bench_now_s();
        if (t0 == 0)
            continue; /* warm-up */
        if (n == cap) {
            cap *= 2;
            double *a = realloc(cyc, cap * sizeof(double)), *b = realloc(acq, cap * sizeof(double));
            if (a == NULL || b == NULL)
                bench_die(PROG, "memory", "out of memory");
            cyc = a;
            acq = b;
        }
        cyc[n] = (c2 - c0) * 1000;
        acq[n] = (c1 - c0) * 1000;
        n++;
    }
    double wall = bench_now_s() - t0;
    double rate = t0 > 0 ? (double)n / wall : 0;

    struct bench_csv out;
    bench_csv_open(&out, csv, rep, store, subject);
    bench_csv_row(&out, "", "cycles_per_s", rate);
    bench_csv_row(&out, "", "cycles", (double)n);
    bench_csv_row(&out, "", "cycle_p50_ms", bench_quantile(cyc, n, 0.50));
    bench_csv_row(&out, "", "cycle_p99_ms", bench_quantile(cyc, n, 0.99));
    bench_csv_row(&out, "", "acquire_p50_ms", bench_quantile(acq, n, 0.50));
    bench_csv_row(&out, "", "acquire_p99_ms", bench_quantile(acq, n, 0.99));
    bench_csv_close(&out);
    fprintf(stderr, "%s %s: %.0f cycles/s over %zu cycles (p50 %.3f ms, p99 %.3f ms)\n", store,
            subject, rate, n, bench_quantile(cyc, n, 0.50), bench_quantile(cyc, n, 0.99));
    free(cyc);
    free(acq);
    tl_manager_free(m);
    return 0;
}
