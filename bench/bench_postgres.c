/*
 * bench_postgres.c -- acquire+release cycles per second on the PostgreSQL store, against the
 * floor of the same work done by hand on the same server.
 *
 *   bench_postgres [-o CSV -r REP] URL [SECONDS] [MODE]
 *
 * MODE (default: all three, one after the other):
 *   lib       tl_acquire (FAIL_FAST) + tl_release through the library, one key: what a worker
 *             pays per task
 *   row       the bare durable row cycle the library's work is built on: INSERT ... ON CONFLICT
 *             DO NOTHING, then DELETE, two autocommit statements (two commits), via libpq
 *   advisory  pg_advisory_lock + pg_advisory_unlock (session locks: nothing durable, the anchor)
 *
 * With -o, each rate is also appended to CSV as a raw row (bench_common.h; bench/run.sh), under
 * the subjects floor-row-libpq, anchor-advisory-libpq and ours-lib.
 *
 * One client, one connection (plus the library's heartbeat connection, idle here). The same
 * numbers for row and advisory come from pgbench -c 1 -f SCRIPT; see docs/postgres.md.
 * Build (until bench/ is wired into CMake), from the repository root after building build-pg:
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc bench/bench_postgres.c \
 *      build-pg/libtasklock.a $(pkg-config --libs libpq sqlite3 jansson) -lpthread \
 *      -o build-pg/bench_postgres
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "tasklock.h"

static double bench_lib(const char *url, double seconds)
{
    const struct tl_options o = {.store_url = url, .worker_id = "bench", .node_id = "bench"};
    tl_manager *m = tl_manager_new(&o);
    const struct tl_acquire_opts ao = {.strategy = TL_FAIL_FAST};
    char key[64];
    long n = 0;

    if (m == NULL || tl_connect(m) != TL_OK) {
        fprintf(stderr, "bench: %s\n", m ? tl_errmsg(m) : "out of memory");
        exit(1);
    }
    (void)snprintf(key, sizeof(key), "bench-%ld", (long)getpid());
    double start = bench_now_s(), end = start + seconds;
    while (bench_now_s() < end) {
        tl_lock *l = NULL;

        if (tl_acquire(m, key, &ao, &l) != TL_OK || tl_release(l, NULL) != TL_OK) {
            fprintf(stderr, "bench: %s\n", tl_errmsg(m));
            exit(1);
        }
        tl_lock_free(l);
        n++;
    }
    double rate = (double)n / (bench_now_s() - start);
    tl_manager_free(m);
    return rate;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench: %s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
}

static double bench_sql(const char *url, double seconds, const char *setup, const char *a,
                        const char *b)
{
    PGconn *c = PQconnectdb(url);
    long n = 0;

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench: %s", PQerrorMessage(c));
        exit(1);
    }
    if (setup != NULL)
        exec_ok(c, setup);
    double start = bench_now_s(), end = start + seconds;
    while (bench_now_s() < end) {
        exec_ok(c, a);
        exec_ok(c, b);
        n++;
    }
    double rate = (double)n / (bench_now_s() - start);
    PQfinish(c);
    return rate;
}

int main(int argc, char **argv)
{
    const char *csv = NULL;
    int rep = 1, c;

    while ((c = getopt(argc, argv, "o:r:")) != -1) {
        switch (c) {
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    argc -= optind - 1;
    argv += optind - 1;
    if (argc < 2) {
        fprintf(stderr, "usage: bench_postgres [-o CSV -r REP] URL [SECONDS] [lib|row|advisory]\n");
        return 2;
    }
    const char *url = argv[1];
    double seconds = argc > 2 ? strtod(argv[2], NULL) : 5.0;
    const char *mode = argc > 3 ? argv[3] : NULL;
    double lib = 0, row = 0, adv = 0;

    if (seconds <= 0)
        seconds = 5.0;
    if (mode == NULL || strcmp(mode, "row") == 0) {
        row = bench_sql(url, seconds,
                        "CREATE TABLE IF NOT EXISTS bench_rows (key text PRIMARY KEY, v int)",
                        "INSERT INTO bench_rows VALUES ('k', 1) ON CONFLICT DO NOTHING",
                        "DELETE FROM bench_rows WHERE key = 'k'");
        bench_csv_rate(csv, rep, "postgres", "floor-row-libpq", row);
    }
    if (mode == NULL || strcmp(mode, "advisory") == 0) {
        adv = bench_sql(url, seconds, NULL, "SELECT pg_advisory_lock(42)",
                        "SELECT pg_advisory_unlock(42)");
        bench_csv_rate(csv, rep, "postgres", "anchor-advisory-libpq", adv);
    }
    if (mode == NULL || strcmp(mode, "lib") == 0) {
        lib = bench_lib(url, seconds);
        bench_csv_rate(csv, rep, "postgres", "ours-lib", lib);
    }

    if (row > 0)
        printf("row cycle (2 commits)       %10.1f cycles/s\n", row);
    if (adv > 0)
        printf("advisory lock/unlock        %10.1f cycles/s\n", adv);
    if (lib > 0)
        printf("tasklock acquire+release    %10.1f cycles/s\n", lib);
    if (lib > 0 && row > 0)
        printf("tasklock / row cycle        %10.1f %%\n", 100.0 * lib / row);
    return 0;
}
