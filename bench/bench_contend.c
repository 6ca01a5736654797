/*
 * bench_contend.c -- contended acquire+release: P worker processes, each with its own manager
 * and worker id, loop for a fixed time over: pick a key (the one key, or one of K at random),
 * tl_acquire with the library's default strategy (RETRY, bounded by the end of the run: a worker
 * that finds the key held joins the key's line and waits for the store to wake it, or with -L,
 * struct tl_options.no_line, backs off and polls as before the line: the baseline), an empty
 * critical section, tl_release. Measures critical sections per second, each worker's share, and
 * the waits (from calling tl_acquire to holding the lock; a worker still waiting at the end
 * counts with the time it has waited so far, so a starved worker is never hidden).
 *
 * The longest wait is also given in contended cycle times of the same run (cycle time = the
 * run's time / its critical sections), and the line's cost as the managers count it: wake-ups
 * per release (the sum of struct tl_metrics.wakeups over the workers / critical sections) and
 * acquires that queued. With -a (GitHub test server), the server's request and write counters
 * over the run's window are divided by its critical sections: the requests of one hand-over,
 * waiters' polling included.
 *
 * The critical section (empty, or -c milliseconds of sleep) checks exclusivity: a slot per key in
 * shared memory that must be free on entry. An overlap would be a bug in the library or the store,
 * and is reported.
 *
 *   bench_contend -u URL -p PROCS [-K KEYS] [-t SECONDS] [-w WARMUP] [-c CS_MS]
 *                 [-k BASE | -n ISSUE] [-L] [-a GITHUB_API_URL] [-o CSV -r REP -S STORE]
 *   bench_contend -u URL -Q      prints "line" if the store has a line (wait_turn), else "no line"
 *
 * Rows go under subject "ours" (the line) or, with -L, "ours-no-line". The loop runs for WARMUP
 * seconds (default 0.5) before the measured SECONDS, so that first connections, prepared
 * statements, scripts and the line's channels are not in the figures; a wait that began in the
 * warm-up counts from the window's start.
 *
 * Keys are "BASE-0" ... "BASE-(K-1)" (default BASE "bench-contend-PID"); with -n they are issue
 * numbers N..N+K-1 instead (GitHub).
 */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "store.h"
#include "tasklock.h"

#define PROG      "bench_contend"
#define MAX_PROCS 64
#define MAX_KEYS  1000
#define MAX_WAITS 65536

struct worker_out {
    long cycles;
    long failures;   /* acquires that ended with an error other than the end of the run */
    double max_wait; /* seconds, censored waits included */
    double first_cs; /* seconds from the start to its first critical section; -1: none */
    /* struct tl_metrics of its manager at the end, and its releases, over the whole loop
     * (warm-up included: a wait that began in the warm-up may end in the window) */
    uint64_t wakeups;
    uint64_t queued;
    uint64_t conflicts;
    uint64_t releases;
    size_t nwaits;
    double max_wait_at;      /* seconds from the start to when its longest wait began */
    double censored;         /* seconds, the wait the end of the run cut short (0: none) */
    double runq_wait;        /* seconds its main thread was runnable but not running (schedstat) */
    double max_gap;          /* seconds, the longest hand-over it took part in (see shared) */
    double waits[MAX_WAITS]; /* seconds, successful acquires (the first MAX_WAITS) */
    double gaps[MAX_WAITS];  /* seconds, hand-overs to it (the first MAX_WAITS) */
    size_t ngaps;
};

struct shared {
    atomic_int ready;
    atomic_int go; /* set once start and end are written */
    atomic_long overlaps;
    double warm;       /* monotonic seconds: the loop starts (the warm-up) */
    double start, end; /* monotonic seconds: the measured window */
    atomic_int holder[MAX_KEYS];
    /* When the key's last holder called tl_release (monotonic ns; 0: not yet): a hand-over is
     * from then to the next holder's tl_acquire returning (release, wake-up, claim). */
    atomic_llong released_ns[MAX_KEYS];
    struct worker_out w[MAX_PROCS];
};

/* splitmix64: every worker's sequence is independent even though their seeds are close. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void key_name(char *buf, size_t size, const char *base, long issue_base, int i)
{
    if (issue_base > 0)
        (void)snprintf(buf, size, "%ld", issue_base + i);
    else
        (void)snprintf(buf, size, "%s-%d", base, i);
}

/* Seconds this thread has spent runnable but waiting for a CPU (/proc/self/schedstat, second
 * field); 0 where the kernel does not say. */
static double runq_wait_s(void)
{
    FILE *f = fopen("/proc/self/schedstat", "r");
    unsigned long long run = 0, wait = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu %llu", &run, &wait) != 2)
        wait = 0;
    fclose(f);
    return (double)wait / 1e9;
}

static int worker(struct shared *sh, int id, const char *url, int keys, const char *base,
                  long issue_base, double cs_s, bool no_line)
{
    char wid[32], key[300];
    struct worker_out *o = &sh->w[id];
    uint64_t rng = ((uint64_t)getpid() << 32) ^ (uint64_t)id ^ (uint64_t)(bench_now_s() * 1e9);

    (void)snprintf(wid, sizeof(wid), "w%d", id);
    tl_manager *m = tl_manager_new(&(struct tl_options){
        .store_url = url, .worker_id = wid, .node_id = "b", .no_line = no_line});
    if (m == NULL || tl_connect(m) != TL_OK) {
        fprintf(stderr, PROG ": worker %d: connect: %s\n", id, m ? tl_errmsg(m) : "no memory");
        atomic_fetch_add(&sh->ready, 1);
        return 1;
    }
    o->first_cs = -1;
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go))
        bench_sleep_s(0.001);
    bench_sleep_until(sh->warm);

    /* The warm-up (connections, prepared statements, scripts, the line's channels) runs the
     * same loop, unmeasured; a wait that began in it counts from the window's start. */
    double rq0 = 0;
    bool in_window = false;
    for (;;) {
        double t0 = bench_now_s();
        if (t0 >= sh->end)
            break;
        if (!in_window && t0 >= sh->start) {
            in_window = true;
            rq0 = runq_wait_s();
        }
        int k = keys == 1 ? 0 : (int)(rng_next(&rng) % (uint64_t)keys);
        key_name(key, sizeof(key), base, issue_base, k);

        uint32_t left = (uint32_t)((sh->end - t0) * 1000) + 1;
        const struct tl_acquire_opts ao = {.strategy = TL_RETRY, .deadline_ms = left};
        tl_lock *l = NULL;
        tl_status st = tl_acquire(m, key, &ao, &l);
        double t1 = bench_now_s();
        double waited = t1 - (t0 < sh->start ? sh->start : t0);
        bool measured = t1 >= sh->start;
        if (measured && waited > o->max_wait) {
            o->max_wait = waited;
            o->max_wait_at = t0 < sh->start ? 0 : t0 - sh->start;
        }
        if (st != TL_OK) {
            /* The deadline is the end of the run, in whole milliseconds on the library's clock:
             * any failure within a few of them of the end is the end (a TL_EBUSY, or a store's
             * "no answer within 1 ms"), not a fault. */
            if (t1 >= sh->end - 0.02) {
                o->censored = waited;
            } else {
                o->failures++;
                fprintf(stderr, PROG ": worker %d: acquire %s: %s\n", id, key, tl_errmsg(m));
            }
            continue;
        }
        if (t1 >= sh->end) { /* got it after the end: not counted, but give it back */
            (void)tl_release(l, NULL);
            tl_lock_free(l);
            o->releases++;
            break;
        }
        long long rel = atomic_load(&sh->released_ns[k]);
        double gap = rel > 0 ? t1 - (double)rel / 1e9 : -1;
        int expect = 0;
        if (!atomic_compare_exchange_strong(&sh->holder[k], &expect, id + 1))
            atomic_fetch_add(&sh->overlaps, 1);
        bench_sleep_s(cs_s); /* the critical section */
        expect = id + 1;
        if (!atomic_compare_exchange_strong(&sh->holder[k], &expect, 0))
            atomic_fetch_add(&sh->overlaps, 1);
        atomic_store(&sh->released_ns[k], (long long)(bench_now_s() * 1e9));
        if (tl_release(l, NULL) != TL_OK) {
            o->failures++;
            fprintf(stderr, PROG ": worker %d: release %s: %s\n", id, key, tl_errmsg(m));
        }
        tl_lock_free(l);
        o->releases++;
        if (bench_now_s() > sh->end)
            break; /* its release ended after the run: not a critical section of the run */
        if (!measured)
            continue;
        if (o->first_cs < 0)
            o->first_cs = t1 - sh->start;
        if (o->nwaits < MAX_WAITS)
            o->waits[o->nwaits++] = waited;
        if (gap >= 0 && o->ngaps < MAX_WAITS)
            o->gaps[o->ngaps++] = gap;
        if (gap > o->max_gap)
            o->max_gap = gap;
        o->cycles++;
    }
    struct tl_metrics mt;
    tl_metrics_get(m, &mt, sizeof(mt));
    o->wakeups = mt.wakeups;
    o->queued = mt.queued;
    o->conflicts = mt.total_conflicts;
    o->runq_wait = in_window ? runq_wait_s() - rq0 : 0;
    tl_manager_free(m);
    return 0;
}

/* The GitHub test server's request counters (GET /_admin/stats); false if it did not answer. */
static bool gh_stats(const char *api, long *total, long *writes)
{
    static char resp[1 << 16];

    if (bench_http(api, "GET", "/_admin/stats", NULL, resp, sizeof(resp)) != 200)
        return false;
    *total = bench_json_long(resp, "total");
    *writes = bench_json_long(resp, "writes");
    return true;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *csv = NULL, *store = "?", *base = NULL, *api = NULL;
    int procs = 4, keys = 1, rep = 1, c;
    long issue_base = 0;
    double seconds = 3.0, cs_ms = 0, warmup = 0.5;
    bool no_line = false, query = false;

    while ((c = getopt(argc, argv, "u:p:K:t:w:c:k:n:o:r:S:La:Q")) != -1) {
        switch (c) {
        case 'u': url = optarg; break;
        case 'p': procs = (int)strtol(optarg, NULL, 10); break;
        case 'K': keys = (int)strtol(optarg, NULL, 10); break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 'w': warmup = strtod(optarg, NULL); break;
        case 'c': cs_ms = strtod(optarg, NULL); break;
        case 'k': base = optarg; break;
        case 'n': issue_base = strtol(optarg, NULL, 10); break;
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        case 'S': store = optarg; break;
        case 'L': no_line = true; break;
        case 'a': api = optarg; break;
        case 'Q': query = true; break;
        default:
            fprintf(stderr, "usage: " PROG
                            " -u URL -p PROCS [-K KEYS] [-t SECONDS] [-w WARMUP] [-k BASE | -n "
                            "ISSUE] [-c CS_MS] [-L] [-a API] [-o CSV -r REP -S STORE] | -u URL "
                            "-Q\n");
            return 2;
        }
    }
    if (url == NULL || procs < 1 || procs > MAX_PROCS || keys < 1 || keys > MAX_KEYS ||
        seconds <= 0 || warmup < 0)
        bench_die(PROG, "usage", "need -u URL, 1 <= -p <= 64, 1 <= -K <= 1000, -t > 0");
    const struct tl_store_ops *ops = url ? tl__store_find(url) : NULL;
    if (query && ops != NULL) {
        puts(ops->version >= 3 && ops->wait_turn != NULL && ops->leave != NULL ? "line"
                                                                               : "no line");
        return 0;
    }
    if (ops == NULL) {
        printf("not measured: this build has no store for %.*s\n", (int)strcspn(url, ":"), url);
        return 3;
    }
    char basebuf[64];
    if (base == NULL) {
        (void)snprintf(basebuf, sizeof(basebuf), "bench-contend-%ld", (long)getpid());
        base = basebuf;
    }

    /* Shared memory for the workers: an unlinked temporary file (MAP_ANONYMOUS is not POSIX). */
    char shm[] = "/tmp/tasklock-bench-contend.XXXXXX";
    int fd = mkstemp(shm);
    if (fd < 0 || unlink(shm) != 0 || ftruncate(fd, (off_t)sizeof(struct shared)) != 0)
        bench_die(PROG, shm, "cannot make the shared memory file");
    struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sh == MAP_FAILED)
        bench_die(PROG, "mmap", "failed");
    close(fd);
    memset(sh, 0, sizeof(*sh));
    sh->warm = 1e18;
    sh->start = 1e18;
    sh->end = 1e18;

    pid_t pids[MAX_PROCS];
    fflush(NULL);
    for (int i = 0; i < procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            bench_die(PROG, "fork", "failed");
        if (pids[i] == 0)
            _exit(worker(sh, i, url, keys, base, issue_base, cs_ms / 1000.0, no_line));
    }
    /* Every worker connected, then one common start a little later. */
    double deadline = bench_now_s() + 30;
    while (atomic_load(&sh->ready) < procs && bench_now_s() < deadline)
        bench_sleep_s(0.01);
    double start = bench_now_s() + 0.2 + warmup;
    sh->end = start + seconds;
    sh->start = start;
    sh->warm = start - warmup;
    atomic_store(&sh->go, 1); /* seq_cst: the workers see start and end after go */

    /* The server's counters over the run's window (the workers' connects before it and their
     * last releases after it are not in it). */
    long req0 = 0, wr0 = 0, req1 = 0, wr1 = 0;
    bool counted = false;
    if (api != NULL) {
        bench_sleep_until(start);
        counted = gh_stats(api, &req0, &wr0);
        bench_sleep_until(sh->end);
        counted = counted && gh_stats(api, &req1, &wr1);
        if (!counted)
            fprintf(stderr, PROG ": %s/_admin/stats did not answer: requests not counted\n", api);
    }

    int failed = 0;
    for (int i = 0; i < procs; i++) {
        int status = 0;
        double limit = sh->end + 60;
        for (;;) {
            pid_t r = waitpid(pids[i], &status, WNOHANG);
            if (r == pids[i])
                break;
            if (bench_now_s() > limit) {
                kill(pids[i], SIGKILL);
                (void)waitpid(pids[i], &status, 0);
                fprintf(stderr, PROG ": worker %d did not finish; killed\n", i);
                break;
            }
            bench_sleep_s(0.01);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }

    long total = 0, failures = 0;
    double max_wait = 0, max_wait_at = 0, max_gap = 0;
    size_t nw = 0, ng = 0;
    uint64_t wakeups = 0, queued = 0, conflicts = 0, releases = 0;
    double runq = 0;
    for (int i = 0; i < procs; i++) {
        runq += sh->w[i].runq_wait;
        wakeups += sh->w[i].wakeups;
        queued += sh->w[i].queued;
        conflicts += sh->w[i].conflicts;
        releases += sh->w[i].releases;
        total += sh->w[i].cycles;
        failures += sh->w[i].failures;
        nw += sh->w[i].nwaits;
        ng += sh->w[i].ngaps;
        if (sh->w[i].max_wait > max_wait) {
            max_wait = sh->w[i].max_wait;
            max_wait_at = sh->w[i].max_wait_at;
        }
        if (sh->w[i].max_gap > max_gap)
            max_gap = sh->w[i].max_gap;
    }
    double *waits = malloc((nw ? nw : 1) * sizeof(double));
    double *gaps = malloc((ng ? ng : 1) * sizeof(double));
    if (waits == NULL || gaps == NULL)
        bench_die(PROG, "memory", "out of memory");
    nw = ng = 0;
    for (int i = 0; i < procs; i++) {
        memcpy(waits + nw, sh->w[i].waits, sh->w[i].nwaits * sizeof(double));
        nw += sh->w[i].nwaits;
        memcpy(gaps + ng, sh->w[i].gaps, sh->w[i].ngaps * sizeof(double));
        ng += sh->w[i].ngaps;
    }

    char config[32];
    (void)snprintf(config, sizeof(config), "p%d-k%d", procs, keys);
    if (cs_ms > 0)
        (void)snprintf(config + strlen(config), sizeof(config) - strlen(config), "-cs%g", cs_ms);
    struct bench_csv out;
    bench_csv_open(&out, csv, rep, store, no_line ? "ours-no-line" : "ours");
    double share_min = 1, share_max = 0;
    int starved = 0;
    for (int i = 0; i < procs; i++) {
        double share = total ? (double)sh->w[i].cycles / (double)total : 0;
        char metric[32];
        (void)snprintf(metric, sizeof(metric), "share_w%d", i);
        bench_csv_row(&out, config, metric, share);
        share_min = share < share_min ? share : share_min;
        share_max = share > share_max ? share : share_max;
        starved += sh->w[i].cycles == 0;
    }
    double cs = (double)total / seconds;
    double w50 = bench_quantile(waits, nw, 0.50), w99 = bench_quantile(waits, nw, 0.99);
    bench_csv_row(&out, config, "cs_per_s", cs);
    bench_csv_row(&out, config, "share_min", share_min);
    bench_csv_row(&out, config, "share_max", share_max);
    bench_csv_row(&out, config, "workers_starved", starved);
    bench_csv_row(&out, config, "longest_wait_ms", max_wait * 1000);
    bench_csv_row(&out, config, "wait_p50_ms", w50 * 1000);
    bench_csv_row(&out, config, "wait_p99_ms", w99 * 1000);
    bench_csv_row(&out, config, "overlaps", (double)atomic_load(&sh->overlaps));
    bench_csv_row(&out, config, "errors", (double)(failures + failed));
    /* Cycle time of this run: its time over its critical sections (on one key, a hand-over). */
    double cycle_ms = total ? seconds * 1000 / (double)total : 0;
    double per = total ? 1.0 / (double)total : 0;
    if (total) {
        /* How many waits were over the fairness limit (2 x P cycle times), and when the longest
         * began: a tail of one stall, or many. */
        size_t over = 0, n = nw;
        for (size_t i = 0; i < nw; i++)
            over += waits[i] * 1000 > 2.0 * procs * cycle_ms;
        for (int i = 0; i < procs; i++) {
            over += sh->w[i].censored * 1000 > 2.0 * procs * cycle_ms;
            n += sh->w[i].censored > 0;
        }
        bench_csv_row(&out, config, "cycle_ms", cycle_ms);
        bench_csv_row(&out, config, "longest_wait_cycles", max_wait * 1000 / cycle_ms);
        bench_csv_row(&out, config, "longest_wait_at_s", max_wait_at);
        bench_csv_row(&out, config, "waits_over_2p_pct", n ? 100.0 * (double)over / (double)n : 0);
        bench_csv_row(&out, config, "handover_p50_ms", bench_quantile(gaps, ng, 0.50) * 1000);
        bench_csv_row(&out, config, "handover_p99_ms", bench_quantile(gaps, ng, 0.99) * 1000);
        bench_csv_row(&out, config, "handover_max_ms", max_gap * 1000);
    }
    /* The managers' counters cover the whole loop, warm-up included: so do these releases. */
    double per_rel = releases ? 1.0 / (double)releases : 0;
    bench_csv_row(&out, config, "wakeups_per_release", (double)wakeups * per_rel);
    bench_csv_row(&out, config, "queued_per_cs", (double)queued * per_rel);
    bench_csv_row(&out, config, "conflicts_per_cs", (double)conflicts * per_rel);
    /* CPU the workers wanted and did not get: the machine's share in the waits. */
    bench_csv_row(&out, config, "runq_wait_ms_per_s", runq * 1000 / seconds);
    if (counted && total) {
        bench_csv_row(&out, config, "requests_per_cs", (double)(req1 - req0) * per);
        bench_csv_row(&out, config, "writes_per_cs", (double)(wr1 - wr0) * per);
    }
    bench_csv_close(&out);

    fprintf(stderr,
            "%s %s%s: %.0f critical sections/s; shares %.2f-%.2f (%d of %d workers got none); "
            "longest wait %.0f ms = %.1f cycle times, p50 %.1f ms, p99 %.1f ms; wake-ups per "
            "release %.2f, queued per cs %.2f; overlaps %ld; errors %ld\n",
            store, config, no_line ? " no-line" : "", cs, share_min, share_max, starved, procs,
            max_wait * 1000, cycle_ms > 0 ? max_wait * 1000 / cycle_ms : 0, w50 * 1000, w99 * 1000,
            (double)wakeups * per_rel, (double)queued * per_rel, (long)atomic_load(&sh->overlaps),
            failures + failed);
    if (counted && total)
        fprintf(stderr, "%s %s: %.2f requests and %.2f writes per critical section\n", store,
                config, (double)(req1 - req0) * per, (double)(wr1 - wr0) * per);
    if (total)
        fprintf(stderr,
                "%s %s: hand-over p50 %.3f ms, p99 %.2f ms, longest %.1f ms; the longest wait "
                "began %.2f s into the run; the workers waited for a CPU %.0f ms per s\n",
                store, config, bench_quantile(gaps, ng, 0.50) * 1000,
                bench_quantile(gaps, ng, 0.99) * 1000, max_gap * 1000, max_wait_at,
                runq * 1000 / seconds);
    free(gaps);
    free(waits);
    return atomic_load(&sh->overlaps) != 0 ? 1 : 0;
}
