/*
 * bench_claim.c -- draining a queue: P worker processes finish M tasks, three ways, on one store.
 *
 *   bench_claim -u URL -p PROCS -M TASKS -m MODE [-k BASE] [-o CSV -r REP -S STORE]
 *
 * MODE:
 *   next   `tasklock work`'s loop through the library: tl_claim_next (fail-fast), then per task
 *          tl_release_claim_next(done) -- release, done marker and the next claim in one store
 *          call -- until TL_ENOTASK. A worker that finds every task left held (the tail of the
 *          queue) waits in tl_claim_next with TL_RETRY, woken by the store, as `work` does with
 *          nothing running. The task's "work" is nothing: the store is what is measured.
 *   naive  the loop a user writes without claim-next: for each key in order, tl_acquire
 *          (fail-fast); if it succeeds, look for the key's done marker (tl_list_done of that
 *          key: the done record), then tl_release_with(done) if it was not done, or a plain
 *          tl_release if it was. Three round trips per task won, and every worker walks every
 *          key (a key held by another worker costs one failed acquire, a done one two more).
 *   floor  the store's one-round-trip floor per task: one minimal round trip per task on the
 *          same kind of connection, the M tasks split among the P processes. SQLite: BEGIN
 *          IMMEDIATE; INSERT OR REPLACE of one row; COMMIT (WAL, synchronous=FULL, as the store).
 *          Redis: SET over a bare socket (RESP, TCP_NODELAY). PostgreSQL: a prepared
 *          single-row upsert, autocommit (one durable commit: the least a claim must write).
 *   floor-rtt  PostgreSQL only: a prepared `SELECT $1::int` (a round trip that writes nothing:
 *          the network and protocol alone).
 *
 * Every process connects first (its manager or connection, a warm-up call on a key of its own so
 * that scripts and prepared statements are loaded), then all start together; the time is from
 * that start to the last task finished (by any process), and tasks/s = M / time. The time until
 * the last process stopped is given apart (seconds_to_exit): in `next`, a worker that waits in
 * the tail of the queue learns only after the last task is done that nothing is left, and on a
 * store that cannot wake it (SQLite) that takes up to its polling interval. Checks: the tasks
 * finished add up to M (each key done once); errors are counted and reported.
 *
 * Rows (bench_common.h) under config "pP-mM": tasks_per_s, seconds, seconds_to_exit, tasks,
 * errors; for next,
 * tail_wait_ms (the longest a worker waited in the queue's tail) and claims_busy; for naive,
 * acquires_per_task and busy_per_task. Subjects: ours-next, naive, floor, floor-rtt.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef TL_BENCH_HAVE_PG
#include <libpq-fe.h>
#endif

#include "bench_common.h"
#include "store.h"
#include "tasklock.h"

#define PROG      "bench_claim"
#define MAX_PROCS 64
#define MAX_TASKS 10000

struct worker_out {
    long tasks;       /* tasks this worker finished */
    long errors;      /* calls that failed other than by the expected busy / no task */
    long acquires;    /* naive: acquire attempts */
    long busy;        /* naive: acquires that found the key held; next: claims that said busy */
    double tail_wait; /* next: seconds, the longest wait in the queue's tail */
    double last_done; /* monotonic seconds when its last task was finished (0: none) */
    double end;       /* monotonic seconds when it stopped (it saw that no task was left) */
};

struct shared {
    atomic_int ready;
    atomic_int go;
    double start;
    struct worker_out w[MAX_PROCS];
};

enum mode { MODE_NEXT, MODE_NAIVE, MODE_FLOOR, MODE_FLOOR_RTT };

struct run {
    const char *url;
    int procs;
    int tasks;
    enum mode mode;
    char **keys;
    const char *base;
};

static void wait_start(struct shared *sh)
{
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go))
        bench_sleep_s(0.0005);
    bench_sleep_until(sh->start);
}

/* ---- the library: next and naive ---- */

static tl_manager *connect_manager(const struct run *r, int id)
{
    char wid[32];

    (void)snprintf(wid, sizeof(wid), "w%d", id);
    tl_manager *m = tl_manager_new(
        &(struct tl_options){.store_url = r->url, .worker_id = wid, .node_id = "bench"});
    if (m == NULL || tl_connect(m) != TL_OK) {
        (void)fprintf(stderr, PROG ": worker %d: connect: %s\n", id,
                      m ? tl_errmsg(m) : "no memory");
        tl_manager_free(m);
        return NULL;
    }
    return m;
}

/* A claim-next and a finish-and-claim on a key of the worker's own, outside the measured window:
 * the store's scripts and statements are loaded, its connections open. */
static bool warm_up(const struct run *r, tl_manager *m, int id)
{
    char wk[2][128];
    const char *warm[2] = {wk[0], wk[1]};
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    tl_lock *l = NULL, *n = NULL;

    (void)snprintf(wk[0], sizeof(wk[0]), "%s-warm%d-a", r->base, id);
    (void)snprintf(wk[1], sizeof(wk[1]), "%s-warm%d-b", r->base, id);
    if (tl_claim_next(m, warm, 2, &ff, &l) != TL_OK)
        return false;
    tl_status st = tl_release_claim_next(l, NULL, true, warm, 2, &ff, &n);
    tl_lock_free(l);
    if (st != TL_OK)
        return false;
    struct tl_done **d = NULL;
    size_t nd = 0;
    if (tl_list_done(m, wk[0], &d, &nd) != TL_OK)
        return false;
    tl_done_array_free(d, nd);
    st = tl_release_with(n, &(struct tl_release_opts){.done = true});
    tl_lock_free(n);
    return st == TL_OK;
}

static int worker_next(struct shared *sh, const struct run *r, int id, tl_manager *m)
{
    struct worker_out *o = &sh->w[id];
    const char *const *keys = (const char *const *)r->keys;
    const size_t n = (size_t)r->tasks;
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    const struct tl_acquire_opts wait = {.strategy = TL_RETRY, .deadline_ms = 30000};
    tl_lock *l = NULL;

    wait_start(sh);
    tl_status st = tl_claim_next(m, keys, n, &ff, &l);
    for (;;) {
        while (st == TL_OK) {
            tl_lock *next = NULL;
            st = tl_release_claim_next(l, NULL, true, keys, n, &ff, &next);
            if (!tl_lock_is_released(l)) {
                (void)fprintf(stderr, PROG ": worker %d: release %s: %s\n", id, tl_lock_key(l),
                              tl_errmsg(m));
                o->errors++;
                tl_lock_free(l);
                o->end = bench_now_s();
                return 1;
            }
            o->tasks++;
            o->last_done = bench_now_s();
            tl_lock_free(l);
            l = next;
        }
        if (st == TL_ENOTASK)
            break;
        if (st != TL_EBUSY) {
            (void)fprintf(stderr, PROG ": worker %d: claim-next: %s\n", id, tl_errmsg(m));
            o->errors++;
            break;
        }
        /* Every task left is held by another worker: wait for one, as `work` does. */
        o->busy++;
        double t0 = bench_now_s();
        st = tl_claim_next(m, keys, n, &wait, &l);
        double waited = bench_now_s() - t0;
        if (waited > o->tail_wait)
            o->tail_wait = waited;
        if (st == TL_EBUSY) { /* a whole wait and still held: a task was not released */
            (void)fprintf(stderr, PROG ": worker %d: waited %.0f s in the tail: %s\n", id, waited,
                          tl_errmsg(m));
            o->errors++;
            break;
        }
    }
    o->end = bench_now_s();
    return o->errors ? 1 : 0;
}

static int worker_naive(struct shared *sh, const struct run *r, int id, tl_manager *m)
{
    struct worker_out *o = &sh->w[id];
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};

    wait_start(sh);
    for (int i = 0; i < r->tasks; i++) {
        tl_lock *l = NULL;
        o->acquires++;
        tl_status st = tl_acquire(m, r->keys[i], &ff, &l);
        if (st == TL_EBUSY) {
            o->busy++;
            continue;
        }
        if (st != TL_OK) {
            (void)fprintf(stderr, PROG ": worker %d: acquire %s: %s\n", id, r->keys[i],
                          tl_errmsg(m));
            o->errors++;
            continue;
        }
        struct tl_done **d = NULL;
        size_t nd = 0;
        if (tl_list_done(m, r->keys[i], &d, &nd) != TL_OK) {
            (void)fprintf(stderr, PROG ": worker %d: list done %s: %s\n", id, r->keys[i],
                          tl_errmsg(m));
            o->errors++;
            nd = 1; /* do not count it */
        }
        tl_done_array_free(d, nd);
        /* The task's work: nothing. */
        st = tl_release_with(l, &(struct tl_release_opts){.done = nd == 0});
        if (st != TL_OK) {
            (void)fprintf(stderr, PROG ": worker %d: release %s: %s\n", id, r->keys[i],
                          tl_errmsg(m));
            o->errors++;
        } else if (nd == 0) {
            o->tasks++;
            o->last_done = bench_now_s();
        }
        tl_lock_free(l);
    }
    o->end = bench_now_s();
    return o->errors ? 1 : 0;
}

static int worker_lib(struct shared *sh, const struct run *r, int id)
{
    tl_manager *m = connect_manager(r, id);

    if (m == NULL || !warm_up(r, m, id)) {
        if (m != NULL)
            (void)fprintf(stderr, PROG ": worker %d: warm-up: %s\n", id, tl_errmsg(m));
        sh->w[id].errors++;
        tl_manager_free(m);
        wait_start(sh);
        sh->w[id].end = bench_now_s();
        return 1;
    }
    int rc = r->mode == MODE_NEXT ? worker_next(sh, r, id, m) : worker_naive(sh, r, id, m);
    tl_manager_free(m);
    return rc;
}

/* ---- floors ---- */

/* The tasks of worker `id` in a floor: id, id + P, id + 2P, ... */
static long floor_share(const struct run *r, int id)
{
    return r->tasks / r->procs + (id < r->tasks % r->procs ? 1 : 0);
}

static int floor_sqlite(struct shared *sh, const struct run *r, int id)
{
    struct worker_out *o = &sh->w[id];
    const char *path = r->url + strlen("sqlite:");
    sqlite3 *db = NULL;
    sqlite3_stmt *b = NULL, *ins = NULL, *c = NULL;
    char *err = NULL;
    int rc = 1;

    if (strncmp(path, "//", 2) == 0)
        path += 2;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; "
                     "PRAGMA synchronous = FULL; "
                     "CREATE TABLE IF NOT EXISTS bench_claim_floor (k INTEGER PRIMARY KEY, v)",
                     NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &b, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO bench_claim_floor VALUES (?, 1)", -1, &ins,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "COMMIT", -1, &c, NULL) != SQLITE_OK) {
        (void)fprintf(stderr, PROG ": worker %d: sqlite %s: %s\n", id, path,
                      err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        o->errors++;
        wait_start(sh);
        goto out;
    }
    wait_start(sh);
    for (long i = 0, n = floor_share(r, id); i < n; i++) {
        int s1 = sqlite3_step(b), s2 = SQLITE_DONE, s3 = SQLITE_DONE;
        if (s1 == SQLITE_DONE) {
            sqlite3_bind_int64(ins, 1, (sqlite3_int64)id + (sqlite3_int64)i * r->procs);
            s2 = sqlite3_step(ins);
            s3 = sqlite3_step(c);
        }
        sqlite3_reset(b);
        sqlite3_reset(ins);
        sqlite3_reset(c);
        if (s1 != SQLITE_DONE || s2 != SQLITE_DONE || s3 != SQLITE_DONE) {
            (void)fprintf(stderr, PROG ": worker %d: sqlite: %s\n", id, sqlite3_errmsg(db));
            o->errors++;
            (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            continue;
        }
        o->tasks++;
        o->last_done = bench_now_s();
    }
    rc = 0;
out:
    o->end = bench_now_s();
    sqlite3_finalize(b);
    sqlite3_finalize(ins);
    sqlite3_finalize(c);
    sqlite3_close(db);
    return rc;
}

/* A bare RESP client: SET over one socket, as bench_redis's floors do. */
static int redis_connect(const char *url)
{
    unsigned port = 0;
    char host[64] = "";
    int one = 1;

    if (sscanf(url, "redis://%63[0-9.]:%u", host, &port) != 2)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* SET KEY 1, waits for +OK. */
static bool redis_set(int fd, const char *key)
{
    char cmd[256], buf[64];
    size_t kl = strlen(key), got = 0;
    int n = snprintf(cmd, sizeof(cmd), "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$1\r\n1\r\n", kl, key);

    if (n <= 0 || (size_t)n >= sizeof(cmd) || send(fd, cmd, (size_t)n, 0) != n)
        return false;
    while (got < 5) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - got, 0);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return memcmp(buf, "+OK\r\n", 5) == 0;
}

static int floor_redis(struct shared *sh, const struct run *r, int id)
{
    struct worker_out *o = &sh->w[id];
    char key[128];
    int fd = redis_connect(r->url);

    (void)snprintf(key, sizeof(key), "%s-floor-warm%d", r->base, id);
    if (fd < 0 || !redis_set(fd, key)) {
        (void)fprintf(stderr, PROG ": worker %d: redis %s: cannot connect or SET\n", id, r->url);
        o->errors++;
        wait_start(sh);
        o->end = bench_now_s();
        if (fd >= 0)
            close(fd);
        return 1;
    }
    wait_start(sh);
    for (long i = 0, n = floor_share(r, id); i < n; i++) {
        (void)snprintf(key, sizeof(key), "%s-floor-%ld", r->base, id + i * r->procs);
        if (!redis_set(fd, key)) {
            o->errors++;
            break;
        }
        o->tasks++;
        o->last_done = bench_now_s();
    }
    o->end = bench_now_s();
    close(fd);
    return o->errors ? 1 : 0;
}

#ifdef TL_BENCH_HAVE_PG
static int floor_postgres(struct shared *sh, const struct run *r, int id)
{
    struct worker_out *o = &sh->w[id];
    PGconn *c = PQconnectdb(r->url);
    bool rtt = r->mode == MODE_FLOOR_RTT;
    const char *sql = rtt ? "SELECT $1::int"
                          : "INSERT INTO bench_claim_floor VALUES ($1::int, 1) ON CONFLICT (k) "
                            "DO UPDATE SET v = bench_claim_floor.v + 1";
    PGresult *res = NULL;
    int ok = 0;

    if (PQstatus(c) == CONNECTION_OK) {
        res = PQexec(c, "CREATE TABLE IF NOT EXISTS bench_claim_floor (k int PRIMARY KEY, v int)");
        PQclear(res);
        res = PQprepare(c, "floor", sql, 1, NULL);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (!ok) {
        (void)fprintf(stderr, PROG ": worker %d: postgres: %s", id, PQerrorMessage(c));
        o->errors++;
        PQfinish(c);
        wait_start(sh);
        o->end = bench_now_s();
        return 1;
    }
    wait_start(sh);
    for (long i = 0, n = floor_share(r, id); i < n; i++) {
        char v[32];
        const char *params[1] = {v};
        (void)snprintf(v, sizeof(v), "%ld", (long)id + i * r->procs);
        res = PQexecPrepared(c, "floor", 1, params, NULL, NULL, 0);
        ExecStatusType s = PQresultStatus(res);
        PQclear(res);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            (void)fprintf(stderr, PROG ": worker %d: postgres: %s", id, PQerrorMessage(c));
            o->errors++;
            break;
        }
        o->tasks++;
        o->last_done = bench_now_s();
    }
    o->end = bench_now_s();
    PQfinish(c);
    return o->errors ? 1 : 0;
}
#endif

static int worker(struct shared *sh, const struct run *r, int id)
{
    if (r->mode == MODE_NEXT || r->mode == MODE_NAIVE)
        return worker_lib(sh, r, id);
    if (strncmp(r->url, "sqlite:", 7) == 0)
        return floor_sqlite(sh, r, id);
    if (strncmp(r->url, "redis://", 8) == 0)
        return floor_redis(sh, r, id);
#ifdef TL_BENCH_HAVE_PG
    if (strncmp(r->url, "postgres", 8) == 0)
        return floor_postgres(sh, r, id);
#endif
    return 1;
}

static const char *subject_of(enum mode m)
{
    switch (m) {
    case MODE_NEXT: return "ours-next";
    case MODE_NAIVE: return "naive";
    case MODE_FLOOR: return "floor";
    case MODE_FLOOR_RTT: return "floor-rtt";
    }
    return "?";
}

int main(int argc, char **argv)
{
    struct run r = {.procs = 1, .tasks = 2000, .mode = MODE_NEXT};
    const char *csv = NULL, *store = "?", *mode = "next";
    int rep = 1, c;

    while ((c = getopt(argc, argv, "u:p:M:m:k:o:r:S:")) != -1) {
        switch (c) {
        case 'u': r.url = optarg; break;
        case 'p': r.procs = (int)strtol(optarg, NULL, 10); break;
        case 'M': r.tasks = (int)strtol(optarg, NULL, 10); break;
        case 'm': mode = optarg; break;
        case 'k': r.base = optarg; break;
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        case 'S': store = optarg; break;
        default:
            (void)fprintf(stderr,
                          "usage: " PROG " -u URL -p PROCS -M TASKS -m next|naive|floor|floor-rtt"
                          " [-k BASE] [-o CSV -r REP -S STORE]\n");
            return 2;
        }
    }
    if (r.url == NULL || r.procs < 1 || r.procs > MAX_PROCS || r.tasks < 1 || r.tasks > MAX_TASKS)
        bench_die(PROG, "usage", "need -u URL, 1 <= -p <= 64, 1 <= -M <= 10000");
    if (strcmp(mode, "next") == 0)
        r.mode = MODE_NEXT;
    else if (strcmp(mode, "naive") == 0)
        r.mode = MODE_NAIVE;
    else if (strcmp(mode, "floor") == 0)
        r.mode = MODE_FLOOR;
    else if (strcmp(mode, "floor-rtt") == 0)
        r.mode = MODE_FLOOR_RTT;
    else
        bench_die(PROG, mode, "no such mode (next, naive, floor, floor-rtt)");

    bool pg = strncmp(r.url, "postgres", 8) == 0;
    if (r.mode == MODE_NEXT || r.mode == MODE_NAIVE) {
        if (tl__store_find(r.url) == NULL) {
            printf("not measured: this build has no store for %.*s\n", (int)strcspn(r.url, ":"),
                   r.url);
            return 3;
        }
    } else if (r.mode == MODE_FLOOR_RTT && !pg) {
        printf("not measured: floor-rtt is PostgreSQL's only\n");
        return 3;
    } else if (!(strncmp(r.url, "sqlite:", 7) == 0 || strncmp(r.url, "redis://", 8) == 0 || pg)) {
        printf("not measured: no floor for %.*s\n", (int)strcspn(r.url, ":"), r.url);
        return 3;
    }
#ifndef TL_BENCH_HAVE_PG
    if (pg && r.mode != MODE_NEXT && r.mode != MODE_NAIVE) {
        printf("not measured: this build has no libpq\n");
        return 3;
    }
#endif

    char basebuf[64];
    if (r.base == NULL) {
        (void)snprintf(basebuf, sizeof(basebuf), "bc%ld-%s", (long)getpid(), mode);
        r.base = basebuf;
    }
    r.keys = calloc((size_t)r.tasks, sizeof(char *));
    if (r.keys == NULL)
        bench_die(PROG, "memory", "out of memory");
    for (int i = 0; i < r.tasks; i++) {
        char k[128];
        (void)snprintf(k, sizeof(k), "%s-%05d", r.base, i);
        if ((r.keys[i] = strdup(k)) == NULL)
            bench_die(PROG, "memory", "out of memory");
    }

    /* Shared memory for the workers: an unlinked temporary file (MAP_ANONYMOUS is not POSIX). */
    char shm[] = "/tmp/tasklock-bench-claim.XXXXXX";
    int fd = mkstemp(shm);
    if (fd < 0 || unlink(shm) != 0 || ftruncate(fd, (off_t)sizeof(struct shared)) != 0)
        bench_die(PROG, shm, "cannot make the shared memory file");
    struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sh == MAP_FAILED)
        bench_die(PROG, "mmap", "failed");
    close(fd);
    memset(sh, 0, sizeof(*sh));
    sh->start = 1e18;

    /* SQLite's floor: the file, WAL and the table made once, before the workers open it (P
     * processes switching a fresh file to WAL at once may find it locked). */
    if (r.mode == MODE_FLOOR && strncmp(r.url, "sqlite:", 7) == 0) {
        const char *path = r.url + 7;
        sqlite3 *db = NULL;
        char *err = NULL;

        if (strncmp(path, "//", 2) == 0)
            path += 2;
        if (sqlite3_open(path, &db) != SQLITE_OK ||
            sqlite3_exec(db,
                         "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; CREATE TABLE IF "
                         "NOT EXISTS bench_claim_floor (k INTEGER PRIMARY KEY, v)",
                         NULL, NULL, &err) != SQLITE_OK)
            bench_die(PROG, path, err ? err : sqlite3_errmsg(db));
        sqlite3_close(db);
    }

    pid_t pids[MAX_PROCS];
    (void)fflush(NULL);
    for (int i = 0; i < r.procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            bench_die(PROG, "fork", "failed");
        if (pids[i] == 0)
            _exit(worker(sh, &r, i));
    }
    double deadline = bench_now_s() + 60;
    while (atomic_load(&sh->ready) < r.procs && bench_now_s() < deadline)
        bench_sleep_s(0.005);
    double start = bench_now_s() + 0.2;
    sh->start = start;
    atomic_store(&sh->go, 1);

    int failed = 0;
    for (int i = 0; i < r.procs; i++) {
        int status = 0;
        double limit = bench_now_s() + 600;
        for (;;) {
            pid_t w = waitpid(pids[i], &status, WNOHANG);
            if (w == pids[i])
                break;
            if (bench_now_s() > limit) {
                kill(pids[i], SIGKILL);
                (void)waitpid(pids[i], &status, 0);
                (void)fprintf(stderr, PROG ": worker %d did not finish; killed\n", i);
                break;
            }
            bench_sleep_s(0.002);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }

    long tasks = 0, errors = failed, acquires = 0, busy = 0;
    double end = start, drained = start, tail = 0;
    for (int i = 0; i < r.procs; i++) {
        tasks += sh->w[i].tasks;
        errors += sh->w[i].errors;
        acquires += sh->w[i].acquires;
        busy += sh->w[i].busy;
        if (sh->w[i].end > end)
            end = sh->w[i].end;
        if (sh->w[i].last_done > drained)
            drained = sh->w[i].last_done;
        if (sh->w[i].tail_wait > tail)
            tail = sh->w[i].tail_wait;
    }
    /* The queue's rate: M over the time from the start to the last task finished. The time
     * until the last worker stopped (it had to see that nothing was left) is given apart. */
    double secs = drained - start;
    double rate = secs > 0 ? (double)tasks / secs : 0;
    char config[32];
    (void)snprintf(config, sizeof(config), "p%d-m%d", r.procs, r.tasks);

    struct bench_csv out;
    bench_csv_open(&out, csv, rep, store, subject_of(r.mode));
    if (tasks == r.tasks)
        bench_csv_row(&out, config, "tasks_per_s", rate);
    bench_csv_row(&out, config, "seconds", secs);
    bench_csv_row(&out, config, "seconds_to_exit", end - start);
    bench_csv_row(&out, config, "tasks", (double)tasks);
    bench_csv_row(&out, config, "errors", (double)errors);
    if (r.mode == MODE_NEXT) {
        bench_csv_row(&out, config, "tail_wait_ms", tail * 1000);
        bench_csv_row(&out, config, "claims_busy", (double)busy);
    } else if (r.mode == MODE_NAIVE && tasks > 0) {
        bench_csv_row(&out, config, "acquires_per_task", (double)acquires / (double)tasks);
        bench_csv_row(&out, config, "busy_per_task", (double)busy / (double)tasks);
    }
    bench_csv_close(&out);

    (void)fprintf(stderr,
                  "%s %s %s: %ld of %d tasks in %.3f s: %.0f tasks/s (every worker stopped after "
                  "%.3f s)",
                  store, config, subject_of(r.mode), tasks, r.tasks, secs, rate, end - start);
    if (r.mode == MODE_NEXT)
        (void)fprintf(stderr, "; longest tail wait %.1f ms", tail * 1000);
    if (r.mode == MODE_NAIVE && tasks > 0)
        (void)fprintf(stderr, "; %.2f acquires per task (%.2f found it held)",
                      (double)acquires / (double)tasks, (double)busy / (double)tasks);
    (void)fprintf(stderr, "; errors %ld\n", errors);
    for (int i = 0; i < r.tasks; i++)
        free(r.keys[i]);
    free((void *)r.keys);
    if (tasks != r.tasks) {
        (void)fprintf(stderr, "%s: %ld tasks finished, not %d\n", PROG, tasks, r.tasks);
        return 1;
    }
    return errors ? 1 : 0;
}
