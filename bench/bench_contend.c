/*
 * bench_contend.c -- contended acquire+release: P worker processes, each with its own manager
 * and worker id, loop for a fixed time over: pick a key (the one key, or one of K at random),
 * tl_acquire with the library's default strategy (RETRY: backoff 1 s, 2 s, ... with jitter, and
 * the store's wake-up on release where it has one) bounded by the end of the run, an empty
 * critical section, tl_release. Measures critical sections per second, each worker's share, and
 * the waits (from calling tl_acquire to holding the lock; a worker still waiting at the end
 * counts with the time it has waited so far, so a starved worker is never hidden).
 *
 * The critical section (empty, or -c milliseconds of sleep) checks exclusivity: a slot per key in
 * shared memory that must be free on entry. An overlap would be a bug in the library or the store,
 * and is reported.
 *
 *   bench_contend -u URL -p PROCS [-K KEYS] [-t SECONDS] [-c CS_MS] [-k BASE | -n ISSUE]
 *                 [-o CSV -r REP -S STORE]
 *
 * Keys are "BASE-0" ... "BASE-(K-1)" (default BASE "bench-contend-PID"); with -n they are issue
 * numbers N..N+K-1 instead (GitHub).
 */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
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
    size_t nwaits;
    double waits[MAX_WAITS]; /* seconds, successful acquires (the first MAX_WAITS) */
};

struct shared {
    atomic_int ready;
    atomic_int go; /* set once start and end are written */
    atomic_long overlaps;
    double start, end; /* monotonic seconds */
    atomic_int holder[MAX_KEYS];
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

static int worker(struct shared *sh, int id, const char *url, int keys, const char *base,
                  long issue_base, double cs_s)
{
    char wid[32], key[300];
    struct worker_out *o = &sh->w[id];
    uint64_t rng = ((uint64_t)getpid() << 32) ^ (uint64_t)id ^ (uint64_t)(bench_now_s() * 1e9);

    (void)snprintf(wid, sizeof(wid), "w%d", id);
    tl_manager *m =
        tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = wid, .node_id = "b"});
    if (m == NULL || tl_connect(m) != TL_OK) {
        fprintf(stderr, PROG ": worker %d: connect: %s\n", id, m ? tl_errmsg(m) : "no memory");
        atomic_fetch_add(&sh->ready, 1);
        return 1;
    }
    o->first_cs = -1;
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go))
        bench_sleep_s(0.001);
    bench_sleep_until(sh->start);

    for (;;) {
        double t0 = bench_now_s();
        if (t0 >= sh->end)
            break;
        int k = keys == 1 ? 0 : (int)(rng_next(&rng) % (uint64_t)keys);
        key_name(key, sizeof(key), base, issue_base, k);

        uint32_t left = (uint32_t)((sh->end - t0) * 1000) + 1;
        const struct tl_acquire_opts ao = {.strategy = TL_RETRY, .deadline_ms = left};
        tl_lock *l = NULL;
        tl_status st = tl_acquire(m, key, &ao, &l);
        double t1 = bench_now_s();
        double waited = t1 - t0;
        if (waited > o->max_wait)
            o->max_wait = waited;
        if (st != TL_OK) {
            /* The deadline is whole milliseconds on the library's clock: a TL_EBUSY within a
             * few of them of the end is the end. */
            if (st != TL_EBUSY || t1 < sh->end - 0.02) {
                o->failures++;
                fprintf(stderr, PROG ": worker %d: acquire %s: %s\n", id, key, tl_errmsg(m));
            }
            continue;
        }
        if (t1 >= sh->end) { /* got it after the end: not counted, but give it back */
            (void)tl_release(l, NULL);
            tl_lock_free(l);
            break;
        }
        int expect = 0;
        if (!atomic_compare_exchange_strong(&sh->holder[k], &expect, id + 1))
            atomic_fetch_add(&sh->overlaps, 1);
        bench_sleep_s(cs_s); /* the critical section */
        expect = id + 1;
        if (!atomic_compare_exchange_strong(&sh->holder[k], &expect, 0))
            atomic_fetch_add(&sh->overlaps, 1);
        if (tl_release(l, NULL) != TL_OK) {
            o->failures++;
            fprintf(stderr, PROG ": worker %d: release %s: %s\n", id, key, tl_errmsg(m));
        }
        tl_lock_free(l);
        if (bench_now_s() > sh->end)
            break; /* its release ended after the run: not a critical section of the run */
        if (o->first_cs < 0)
            o->first_cs = t1 - sh->start;
        if (o->nwaits < MAX_WAITS)
            o->waits[o->nwaits++] = waited;
        o->cycles++;
    }
    tl_manager_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *csv = NULL, *store = "?", *base = NULL;
    int procs = 4, keys = 1, rep = 1, c;
    long issue_base = 0;
    double seconds = 3.0, cs_ms = 0;

    while ((c = getopt(argc, argv, "u:p:K:t:c:k:n:o:r:S:")) != -1) {
        switch (c) {
        case 'u': url = optarg; break;
        case 'p': procs = (int)strtol(optarg, NULL, 10); break;
        case 'K': keys = (int)strtol(optarg, NULL, 10); break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 'c': cs_ms = strtod(optarg, NULL); break;
        case 'k': base = optarg; break;
        case 'n': issue_base = strtol(optarg, NULL, 10); break;
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        case 'S': store = optarg; break;
        default:
            fprintf(stderr, "usage: " PROG " -u URL -p PROCS [-K KEYS] [-t SECONDS] [-k BASE | -n "
                            "ISSUE] [-c CS_MS] [-o CSV -r REP -S STORE]\n");
            return 2;
        }
    }
    if (url == NULL || procs < 1 || procs > MAX_PROCS || keys < 1 || keys > MAX_KEYS ||
        seconds <= 0)
        bench_die(PROG, "usage", "need -u URL, 1 <= -p <= 64, 1 <= -K <= 1000, -t > 0");
    if (tl__store_find(url) == NULL) {
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
    sh->start = 1e18;
    sh->end = 1e18;

    pid_t pids[MAX_PROCS];
    fflush(NULL);
    for (int i = 0; i < procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            bench_die(PROG, "fork", "failed");
        if (pids[i] == 0)
            _exit(worker(sh, i, url, keys, base, issue_base, cs_ms / 1000.0));
    }
    /* Every worker connected, then one common start a little later. */
    double deadline = bench_now_s() + 30;
    while (atomic_load(&sh->ready) < procs && bench_now_s() < deadline)
        bench_sleep_s(0.01);
    double start = bench_now_s() + 0.2;
    sh->end = start + seconds;
    sh->start = start;
    atomic_store(&sh->go, 1); /* seq_cst: the workers see start and end after go */

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
    double max_wait = 0;
    size_t nw = 0;
    for (int i = 0; i < procs; i++) {
        total += sh->w[i].cycles;
        failures += sh->w[i].failures;
        nw += sh->w[i].nwaits;
        if (sh->w[i].max_wait > max_wait)
            max_wait = sh->w[i].max_wait;
    }
    double *waits = malloc((nw ? nw : 1) * sizeof(double));
    if (waits == NULL)
        bench_die(PROG, "memory", "out of memory");
    nw = 0;
    for (int i = 0; i < procs; i++) {
        memcpy(waits + nw, sh->w[i].waits, sh->w[i].nwaits * sizeof(double));
        nw += sh->w[i].nwaits;
    }

    char config[32];
    (void)snprintf(config, sizeof(config), "p%d-k%d", procs, keys);
    if (cs_ms > 0)
        (void)snprintf(config + strlen(config), sizeof(config) - strlen(config), "-cs%g", cs_ms);
    struct bench_csv out;
    bench_csv_open(&out, csv, rep, store, "ours");
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
    bench_csv_close(&out);

    fprintf(stderr,
            "%s %s: %.0f critical sections/s; shares %.2f-%.2f (%d of %d workers got none); "
            "longest wait %.0f ms, p50 %.1f ms, p99 %.1f ms; overlaps %ld; errors %ld\n",
            store, config, cs, share_min, share_max, starved, procs, max_wait * 1000, w50 * 1000,
            w99 * 1000, (long)atomic_load(&sh->overlaps), failures + failed);
    free(waits);
    return atomic_load(&sh->overlaps) != 0 ? 1 : 0;
}
