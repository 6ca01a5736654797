/*
 * bench_sqlite.c -- uncontended acquire+release cycles per second on the SQLite store, beside
 * the floor: the two bare write transactions such a cycle needs (BEGIN IMMEDIATE; one upsert;
 * COMMIT), on a file with the same settings (WAL, synchronous=FULL), in the same directory,
 * measured in the same run. Repetitions alternate between the two so that machine noise falls
 * on both; the median and the spread are reported.
 *
 *   bench_sqlite [-d DIR] [-n CYCLES] [-r REPS] [-c CSV]
 */
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "tasklock.h"

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_sqlite: %s: %s\n", what, msg);
    exit(1);
}

/* Cycles per second of two bare durable write transactions. */
static double floor_rate(const char *path, int cycles)
{
    sqlite3 *db;
    sqlite3_stmt *up, *begin, *commit;

    if (sqlite3_open(path, &db) != SQLITE_OK)
        die(path, sqlite3_errmsg(db));
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS t(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;",
                     NULL, NULL, NULL) != SQLITE_OK)
        die(path, sqlite3_errmsg(db));
    sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL);
    sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL);
    sqlite3_prepare_v2(db,
                       "INSERT INTO t(k, v) VALUES ('bench', ?1) "
                       "ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                       -1, &up, NULL);

    double t0 = bench_now_s();
    for (int i = 0; i < cycles * 2; i++) {
        sqlite3_bind_int(up, 1, i);
        if (sqlite3_step(begin) != SQLITE_DONE || sqlite3_step(up) != SQLITE_DONE ||
            sqlite3_step(commit) != SQLITE_DONE)
            die(path, sqlite3_errmsg(db));
        sqlite3_reset(begin);
        sqlite3_reset(up);
        sqlite3_reset(commit);
    }
    double rate = cycles / (bench_now_s() - t0);

    sqlite3_finalize(up);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_close(db);
    return rate;
}

/* Cycles per second of tl_acquire + tl_release, one key, no contention. */
static double ours_rate(const char *path, int cycles, double *p50_ms, double *p99_ms)
{
    char url[4300];

    (void)snprintf(url, sizeof(url), "sqlite:%s", path);
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "bench"});
    if (m == NULL || tl_connect(m) != TL_OK)
        die(url, m ? tl_errmsg(m) : "out of memory");

    double *lat = malloc(sizeof(double) * (size_t)cycles);
    if (lat == NULL)
        die("bench", "out of memory");
    double t0 = bench_now_s();
    for (int i = 0; i < cycles; i++) {
        tl_lock *l = NULL;
        double c0 = bench_now_s();

        if (tl_acquire(m, "bench", &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l) !=
                TL_OK ||
            tl_release(l, NULL) != TL_OK)
            die("cycle", tl_errmsg(m));
        tl_lock_free(l);
        lat[i] = (bench_now_s() - c0) * 1000;
    }
    double rate = cycles / (bench_now_s() - t0);

    qsort(lat, (size_t)cycles, sizeof(double), bench_cmp_double);
    *p50_ms = lat[cycles / 2];
    *p99_ms = lat[(cycles * 99) / 100];
    free(lat);
    tl_manager_free(m);
    return rate;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *csv = NULL;
    int cycles = 2000, reps = 5, c;

    while ((c = getopt(argc, argv, "d:n:r:c:")) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'n': cycles = (int)strtol(optarg, NULL, 10); break;
        case 'r': reps = (int)strtol(optarg, NULL, 10); break;
        case 'c': csv = optarg; break;
        default:
            fprintf(stderr, "usage: bench_sqlite [-d DIR] [-n CYCLES] [-r REPS] [-c CSV]\n");
            return 2;
        }
    }
    if (cycles < 100 || reps < 1 || reps > 99) {
        fprintf(stderr, "bench_sqlite: need -n >= 100 and 1 <= -r <= 99\n");
        return 2;
    }

    char tmpl[4096];
    (void)snprintf(tmpl, sizeof(tmpl), "%s/tasklock-bench.XXXXXX", dir ? dir : "/tmp");
    if (mkdtemp(tmpl) == NULL)
        die(tmpl, "cannot create a directory");

    double ours[99], base[99], ratio[99], p50[99], p99[99];
    for (int r = 0; r < reps; r++) {
        char a[4200], b[4200];

        (void)snprintf(a, sizeof(a), "%s/floor-%d.db", tmpl, r);
        (void)snprintf(b, sizeof(b), "%s/ours-%d.db", tmpl, r);
        base[r] = floor_rate(a, cycles);
        ours[r] = ours_rate(b, cycles, &p50[r], &p99[r]);
        ratio[r] = ours[r] / base[r];
        fprintf(stderr, "rep %d: floor %.0f/s, ours %.0f/s, ratio %.2f\n", r + 1, base[r], ours[r],
                ratio[r]);
    }

    FILE *out = csv ? fopen(csv, "w") : NULL;
    if (out != NULL) {
        fprintf(out, "rep,floor_cycles_per_s,ours_cycles_per_s,ratio,ours_p50_ms,ours_p99_ms\n");
        for (int r = 0; r < reps; r++)
            fprintf(out, "%d,%.1f,%.1f,%.3f,%.3f,%.3f\n", r + 1, base[r], ours[r], ratio[r], p50[r],
                    p99[r]);
        fclose(out);
    }

    double rmin = ratio[0], rmax = ratio[0];
    for (int r = 1; r < reps; r++) {
        rmin = ratio[r] < rmin ? ratio[r] : rmin;
        rmax = ratio[r] > rmax ? ratio[r] : rmax;
    }
    double mr = median(ratio, reps), mo = median(ours, reps), mb = median(base, reps);
    printf("sqlite: ours %.0f cycles/s (p50 %.3f ms, p99 %.3f ms), floor %.0f cycles/s "
           "(2 bare write transactions), ratio %.2f (spread %.2f-%.2f over %d reps; "
           "target >= 0.50)\n",
           mo, median(p50, reps), median(p99, reps), mb, mr, rmin, rmax, reps);

    char cmd[4300];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
    return system(cmd) == 0 ? 0 : 1;
}
