/*
 * bench_modes.c -- shared locks and deadlock checks: what readers gain, and what a waiter that
 * holds locks pays for looking for a cycle.
 *
 *   bench_modes -u URL -m shared|exclusive -p THREADS [-t SECONDS] [-k BASE] [OUT]
 *   bench_modes -u URL -m deadlock -W WAITERS [-n CHECKS] [-k BASE | -N ISSUE] [OUT]
 *   OUT: -o CSV -r REP -S STORE
 *
 * MODE:
 *   shared     P threads, each with its own manager (and so its own store connection), acquire
 *              one key shared (TL_SHARED, RETRY) and release it, in a loop, for SECONDS. The
 *              acquisitions finished before the end are counted: acquisitions/s for all of them.
 *   exclusive  the same with exclusive acquires: the P threads wait in the key's line for each
 *              other (RETRY with a deadline well past the end: a thread still waiting at the end
 *              gets the key afterwards, which is not counted). The baseline of `shared`.
 *   deadlock   the cost of one deadlock check (src/deadlock.c, tl__deadlock_check) against the
 *              round trip a waiter makes anyway (its busy claim), on one manager, one thread:
 *              - a holder manager H holds key B and Q = min(W, 10) keys q0..; planting managers
 *                plant W waiters in the lines of the q keys (store claims with a waiter id
 *                each and a holding text "x KEY TOKEN" naming a key of their own: no edge): one
 *                manager, except on GitHub, whose store connection keeps at most 4 places in line
 *                (a fifth gives up the oldest, deleting its claim): a manager per 4 waiters there.
 *                A read of every waiter must then list W + 1 (the checker's place too), or the
 *                run fails;
 *              - the checker C holds key A and waits in B's line (a claim with its waiter id and
 *                "x A TOKEN"): a check reads every waiter of the store and finds no cycle
 *                (subject check, expected TL_OK), then the same claim again (busy-claim: the
 *                refresh a waiter makes at each turn, expected TL_EBUSY);
 *              - H then waits in A's line naming B, and C joins B's line again after it (the
 *                youngest): a check finds the 2-cycle, reads the holders of its 2 keys to confirm
 *                it and answers TL_EDEADLK (subject check-cycle).
 *              Each call is timed on its own; CHECKS of each, after a few unmeasured ones. The
 *              store calls of C are counted by a wrapper of its store's ops (waiters, holders,
 *              claim, inspect); where the server can count its requests they are counted too
 *              (Redis: INFO commandstats, every command including those a script runs; etcd:
 *              the gRPC calls its /metrics counts, the JSON gateway's included; the GitHub test
 *              server: GET /_admin/stats), over the CHECKS calls, nothing else running. Keys are
 *              BASE-a, BASE-b, BASE-q0...; with -N (GitHub, whose keys are issues) the issues
 *              ISSUE (A), ISSUE+1 (B) and ISSUE+2... (the q keys), which must exist.
 *
 * A store without shared holders (`modes`), or without the wait-for graph (`deadlocks`) for
 * -m deadlock, is "not measured" (exit 3, the reason on stdout), decided at run time by what its
 * store instance says after connecting.
 *
 * Rows (bench_common.h): shared/exclusive under config "pP": acquires_per_s, acquires, errors
 * (a run with errors still gives its rate; it fails only without any acquisition), acquire_p50_ms
 * (one acquire's time, the wait in line included). deadlock under config "wW": subjects check,
 * check-cycle and busy-claim: p50_ms, mean_ms, p99_ms, calls, errors; check and check-cycle also
 * waiters_reads, holders_reads, store_calls (per check), server_requests and (Redis) server_scripts
 * (per check, where counted), and waiters_listed (what one read returned).
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"
#include "manager.h"
#include "store.h"
#include "tasklock.h"

#define PROG        "bench_modes"
#define MAX_THREADS 64
#define MAX_WAITERS 1000
#define MAX_QKEYS   10
/* Waiters one GitHub store connection keeps places in line for (PLACES_MAX in
 * src/stores/github_int.h: a connection serves one thread, which waits in one line at a time;
 * a fifth place gives up the oldest, and its claim is deleted). */
#define GH_PLACES    4
#define MAX_PLANTERS (MAX_WAITERS / GH_PLACES)
#define LOCK_MS      120000 /* the benchmark's locks and waiters: nothing expires meanwhile */

enum mode { MODE_SHARED, MODE_EXCLUSIVE, MODE_DEADLOCK };

struct opts {
    const char *url;
    enum mode mode;
    int threads;
    double seconds;
    int waiters;
    int checks;
    const char *base;
    long issue; /* > 0: keys are issue numbers from this one (GitHub) */
    const char *csv;
    const char *store;
    int rep;
};

static tl_manager *connect_manager(const char *url, const char *worker,
                                   const struct tl_store_ops *ops)
{
    tl_manager *m = tl_manager_new(&(struct tl_options){
        .store_url = url, .worker_id = worker, .node_id = "bench", .lock_timeout_ms = LOCK_MS});

    if (m == NULL)
        return NULL;
    if (ops != NULL)
        tl__manager_set_store_ops(m, ops);
    if (tl_connect(m) != TL_OK) {
        (void)fprintf(stderr, PROG ": %s: connect: %s\n", worker, tl_errmsg(m));
        tl_manager_free(m);
        return NULL;
    }
    return m;
}

/* "not measured: ..." on stdout and exit 3, as bench/run.sh's run() expects. */
static int not_measured(const struct opts *o, const char *what)
{
    printf("not measured: the %s store has no %s in this build\n", o->store, what);
    return 3;
}

/* ---- readers and writers on one key ---- */

struct shared_state {
    const struct opts *o;
    pthread_mutex_t connect_mu; /* connections one at a time (a fresh SQLite file) */
    atomic_int ready;
    atomic_int go;
    atomic_int unsupported; /* a manager's store has no shared holders */
    double start, end;
};

struct thread_out {
    struct shared_state *sh;
    int id;
    long acquires;
    long errors;
    double *lat; /* seconds, one per counted acquire (up to cap) */
    size_t nlat, cap;
};

static void *loop_thread(void *arg)
{
    struct thread_out *t = arg;
    struct shared_state *sh = t->sh;
    const struct opts *o = sh->o;
    char worker[32], key[128], warm[128];
    const bool shared = o->mode == MODE_SHARED;
    const struct tl_acquire_opts ao = {
        .strategy = TL_RETRY,
        .deadline_ms = (uint32_t)(o->seconds * 1000) + 30000,
        .mode = shared ? TL_SHARED : TL_EXCLUSIVE,
    };

    (void)snprintf(worker, sizeof(worker), "%s%d", shared ? "r" : "w", t->id);
    (void)snprintf(key, sizeof(key), "%s-key", o->base);
    (void)snprintf(warm, sizeof(warm), "%s-warm%d", o->base, t->id);
    pthread_mutex_lock(&sh->connect_mu);
    tl_manager *m = connect_manager(o->url, worker, NULL);
    pthread_mutex_unlock(&sh->connect_mu);
    if (m != NULL && !m->store->modes)
        atomic_store(&sh->unsupported, 1);
    /* A warm-up on a key of its own: scripts loaded, statements prepared. */
    tl_lock *l = NULL;
    if (m == NULL || atomic_load(&sh->unsupported) || tl_acquire(m, warm, &ao, &l) != TL_OK ||
        tl_release(l, NULL) != TL_OK) {
        if (m != NULL && !atomic_load(&sh->unsupported))
            (void)fprintf(stderr, PROG ": %s: warm-up: %s\n", worker, tl_errmsg(m));
        t->errors++;
    }
    tl_lock_free(l);
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go))
        bench_sleep_s(0.0005);
    if (t->errors != 0)
        goto out;
    bench_sleep_until(sh->start);
    while (bench_now_s() < sh->end) {
        double t0 = bench_now_s();
        l = NULL;
        tl_status st = tl_acquire(m, key, &ao, &l);
        double t1 = bench_now_s();
        if (st != TL_OK) {
            (void)fprintf(stderr, PROG ": %s: acquire: %s\n", worker, tl_errmsg(m));
            t->errors++;
            break;
        }
        if (t1 <= sh->end) {
            t->acquires++;
            if (t->nlat < t->cap)
                t->lat[t->nlat++] = t1 - t0;
        }
        if (tl_release(l, NULL) != TL_OK) {
            (void)fprintf(stderr, PROG ": %s: release: %s\n", worker, tl_errmsg(m));
            t->errors++;
        }
        tl_lock_free(l);
    }
out:
    tl_manager_free(m);
    return NULL;
}

static int run_loop(const struct opts *o)
{
    struct shared_state sh = {.o = o, .start = 1e18, .end = 1e18};
    struct thread_out t[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started = 0;

    pthread_mutex_init(&sh.connect_mu, NULL);
    memset(t, 0, sizeof(t));
    for (int i = 0; i < o->threads; i++) {
        t[i].sh = &sh;
        t[i].id = i;
        t[i].cap = 1000000;
        t[i].lat = calloc(t[i].cap, sizeof(double));
        if (t[i].lat == NULL || pthread_create(&tid[i], NULL, loop_thread, &t[i]) != 0)
            bench_die(PROG, "threads", "cannot start");
        started++;
    }
    while (atomic_load(&sh.ready) < started)
        bench_sleep_s(0.002);
    sh.start = bench_now_s() + 0.05;
    sh.end = sh.start + o->seconds;
    atomic_store(&sh.go, 1);

    long acquires = 0, errors = 0;
    size_t nlat = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        acquires += t[i].acquires;
        errors += t[i].errors;
        nlat += t[i].nlat;
    }
    pthread_mutex_destroy(&sh.connect_mu);
    if (atomic_load(&sh.unsupported)) {
        for (int i = 0; i < started; i++)
            free(t[i].lat);
        return not_measured(o, "shared holders (modes)");
    }
    double *lat = calloc(nlat ? nlat : 1, sizeof(double));
    if (lat == NULL)
        bench_die(PROG, "memory", "out of memory");
    nlat = 0;
    for (int i = 0; i < started; i++) {
        memcpy(lat + nlat, t[i].lat, t[i].nlat * sizeof(double));
        nlat += t[i].nlat;
        free(t[i].lat);
    }
    double rate = (double)acquires / o->seconds;
    double p50 = bench_quantile(lat, nlat, 0.5) * 1000;
    free(lat);

    char config[16];
    (void)snprintf(config, sizeof(config), "p%d", o->threads);
    struct bench_csv out;
    bench_csv_open(&out, o->csv, o->rep, o->store, o->mode == MODE_SHARED ? "shared" : "exclusive");
    bench_csv_row(&out, config, "acquires_per_s", rate); /* errors say whether it is whole */
    bench_csv_row(&out, config, "acquires", (double)acquires);
    bench_csv_row(&out, config, "errors", (double)errors);
    bench_csv_row(&out, config, "acquire_p50_ms", p50);
    bench_csv_close(&out);
    (void)fprintf(stderr,
                  "%s %s %s: %ld acquisitions in %.1f s: %.0f/s (acquire p50 %.3f ms); "
                  "errors %ld\n",
                  o->store, config, o->mode == MODE_SHARED ? "shared" : "exclusive", acquires,
                  o->seconds, rate, p50, errors);
    /* Calls that failed are figures (the errors row, shown beside the rate), not a failed run. */
    return acquires > 0 ? 0 : 1;
}

/* ---- the deadlock check ---- */

/* The checker's store calls, counted by a wrapper of its store's ops (one thread). */
static struct tl_store_ops counted;
static const struct tl_store_ops *inner;
static struct {
    long waiters, holders, claim, inspect;
} calls;

static tl_status count_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                               size_t *count)
{
    calls.waiters++;
    return inner->waiters(s, key, out, count);
}

static tl_status count_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                               size_t *count)
{
    calls.holders++;
    return inner->holders(s, key, out, count);
}

static tl_status count_claim(struct tl_store *s, const struct tl_claim *req,
                             struct tl_claim_result *out)
{
    calls.claim++;
    return inner->claim(s, req, out);
}

static tl_status count_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                               bool *found)
{
    calls.inspect++;
    return inner->inspect(s, key, out, found);
}

/* Requests the server has answered so far, where it counts them; -1 where not. Redis: every
 * command, those a script runs included; *scripts the EVALSHA and EVAL calls among them. */
static long redis_commands(const char *url, long *scripts)
{
    unsigned port = 0;
    char host[64] = "";

    if (sscanf(url, "redis://%63[0-9.]:%u", host, &port) != 2)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    long total = -1;
    static const char cmd[] = "*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n";
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        send(fd, cmd, sizeof(cmd) - 1, 0) != (ssize_t)(sizeof(cmd) - 1))
        goto out;
    char buf[65536];
    size_t got = 0;
    long want = -1;
    while (got + 1 < sizeof(buf)) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
        char *nl = strstr(buf, "\r\n");
        if (want < 0 && buf[0] == '$' && nl != NULL)
            want = strtol(buf + 1, NULL, 10) + (long)(nl - buf) + 4;
        if (want >= 0 && (long)got >= want)
            break;
    }
    buf[got] = '\0';
    total = 0;
    for (const char *p = strstr(buf, "calls="); p != NULL; p = strstr(p + 6, "calls="))
        total += strtol(p + 6, NULL, 10);
    *scripts = 0;
    for (const char *p = strstr(buf, "cmdstat_eval"); p != NULL;
         p = strstr(p + 1, "cmdstat_eval")) {
        const char *c = strstr(p, "calls=");
        if (c != NULL)
            *scripts += strtol(c + 6, NULL, 10);
    }
out:
    close(fd);
    return total;
}

static long etcd_grpc_calls(const char *url)
{
    char base[128];
    unsigned port = 0;
    char host[64] = "";

    if (sscanf(url, "etcd://%63[0-9.]:%u", host, &port) != 2)
        return -1;
    (void)snprintf(base, sizeof(base), "http://%s:%u", host, port);
    size_t size = 4 << 20;
    char *resp = malloc(size);
    if (resp == NULL || bench_http(base, "GET", "/metrics", NULL, resp, size) != 200) {
        free(resp);
        return -1;
    }
    long total = 0;
    static const char name[] = "grpc_server_handled_total{";
    for (const char *p = strstr(resp, name); p != NULL; p = strstr(p + 1, name)) {
        if (p != resp && p[-1] != '\n')
            continue;
        const char *end = strchr(p, '}');
        if (end != NULL)
            total += (long)strtod(end + 1, NULL);
    }
    free(resp);
    return total;
}

static long github_requests(const char *url)
{
    const char *p = strstr(url, "api_url=");
    char base[128], resp[4096];

    if (p == NULL)
        return -1;
    p += strlen("api_url=");
    (void)snprintf(base, sizeof(base), "%.*s", (int)strcspn(p, "&"), p);
    if (bench_http(base, "GET", "/_admin/stats", NULL, resp, sizeof(resp)) != 200)
        return -1;
    return bench_json_long(resp, "total");
}

/* The requests the server counted so far, and how many the counting itself adds; *scripts:
 * the server-side scripts among them (Redis), else -1. */
static long server_requests(const char *url, long *self, long *scripts)
{
    *self = 0;
    *scripts = -1;
    if (strncmp(url, "redis://", 8) == 0) {
        *self = 1; /* the INFO before */
        return redis_commands(url, scripts);
    }
    if (strncmp(url, "etcd://", 7) == 0)
        return etcd_grpc_calls(url); /* /metrics is not a gRPC call */
    if (strncmp(url, "github://", 9) == 0)
        return github_requests(url); /* the admin API is never counted */
    return -1;
}

static void waiter_id(char out[33], int n)
{
    (void)snprintf(out, 33, "%032x", (unsigned)n + 1);
    out[0] = 'b'; /* lower-case hex, distinct from the core's random ones in practice */
}

struct timed {
    double *v;
    size_t n;
    long errors;
};

static void timed_rows(struct bench_csv *out, const char *config, struct timed *t)
{
    double sum = 0;

    for (size_t i = 0; i < t->n; i++)
        sum += t->v[i];
    double mean = t->n ? sum / (double)t->n * 1000 : 0;
    bench_csv_row(out, config, "mean_ms", mean);
    bench_csv_row(out, config, "p99_ms", bench_quantile(t->v, t->n, 0.99) * 1000);
    bench_csv_row(out, config, "p50_ms", bench_quantile(t->v, t->n, 0.5) * 1000);
    bench_csv_row(out, config, "calls", (double)t->n);
    bench_csv_row(out, config, "errors", (double)t->errors);
}

/* N deadlock checks of req; each expected to answer `want`. */
static void time_checks(tl_manager *c, const struct tl_claim *req, int n, tl_status want,
                        struct timed *t)
{
    for (int i = 0; i < n; i++) {
        double t0 = bench_now_s();
        tl_status st = tl__deadlock_check(c, req);
        t->v[t->n++] = bench_now_s() - t0;
        if (st != want)
            t->errors++;
    }
}

static void time_claims(tl_manager *c, const struct tl_claim *req, int n, struct timed *t)
{
    for (int i = 0; i < n; i++) {
        struct tl_claim_result res = {0};
        double t0 = bench_now_s();
        tl_status st = c->store->ops->claim(c->store, req, &res);
        t->v[t->n++] = bench_now_s() - t0;
        tl__record_clear(&res.rec);
        if (st != TL_EBUSY)
            t->errors++;
    }
}

struct counts {
    double waiters, holders, store_calls; /* per check */
    double server, scripts;               /* per check; < 0: not counted */
};

static struct counts measure_checks(const struct opts *o, tl_manager *c, const struct tl_claim *req,
                                    tl_status want, struct timed *t)
{
    struct counts k = {.server = -1, .scripts = -1};
    long self = 0, sc0 = -1, sc1 = -1;

    time_checks(c, req, 5, want, t); /* warm-up, not kept */
    t->n = 0;
    t->errors = 0;
    memset(&calls, 0, sizeof(calls));
    long s0 = server_requests(o->url, &self, &sc0);
    time_checks(c, req, o->checks, want, t);
    long s1 = server_requests(o->url, &self, &sc1);
    k.waiters = (double)calls.waiters / o->checks;
    k.holders = (double)calls.holders / o->checks;
    k.store_calls =
        (double)(calls.waiters + calls.holders + calls.claim + calls.inspect) / o->checks;
    if (s0 >= 0 && s1 >= 0)
        k.server = (double)(s1 - s0 - self) / o->checks;
    if (sc0 >= 0 && sc1 >= 0)
        k.scripts = (double)(sc1 - sc0) / o->checks;
    return k;
}

static void count_rows(struct bench_csv *out, const char *config, const struct counts *k)
{
    bench_csv_row(out, config, "waiters_reads", k->waiters);
    bench_csv_row(out, config, "holders_reads", k->holders);
    bench_csv_row(out, config, "store_calls", k->store_calls);
    if (k->server >= 0)
        bench_csv_row(out, config, "server_requests", k->server);
    if (k->scripts >= 0)
        bench_csv_row(out, config, "server_scripts", k->scripts);
}

static tl_status join_line(tl_manager *m, const char *key, const char *wid, const char *holding)
{
    const struct tl_claim req = {
        .key = key,
        .worker_id = m->worker_id,
        .node_id = "bench",
        .task_info = "{}",
        .lock_timeout_ms = LOCK_MS,
        .waiter_id = wid,
        .waiter_timeout_ms = LOCK_MS,
        .holding = holding,
    };
    struct tl_claim_result res = {0};
    tl_status st = m->store->ops->claim(m->store, &req, &res);

    tl__record_clear(&res.rec);
    return st;
}

static int run_deadlock(const struct opts *o)
{
    const int nq = o->waiters < MAX_QKEYS ? o->waiters : MAX_QKEYS;
    char key_a[128], key_b[128], qkeys[MAX_QKEYS][128];
    char wc[33], wc2[33], wh[33], hold_c[256], hold_h[256];
    tl_lock *la = NULL, *lb = NULL, *lq[MAX_QKEYS] = {0};
    const struct tl_acquire_opts ff = {.strategy = TL_FAIL_FAST};
    int rc = 1, planted = 0;
    bool joined_c = false, joined_c2 = false, joined_h = false;
    tl_manager *h = NULL, *pl[MAX_PLANTERS] = {0};
    /* Waiters planted per planting manager: all of them on one, but 4 on GitHub. */
    const int per_pl = strncmp(o->url, "github://", 9) == 0 ? GH_PLACES : MAX_WAITERS;
    const int npl = (o->waiters + per_pl - 1) / per_pl;
    bool planters = true;
    struct timed tc = {0}, tcy = {0}, tb = {0};

    inner = tl__store_find(o->url);
    if (inner == NULL) {
        printf("not measured: this build has no store for %.*s\n", (int)strcspn(o->url, ":"),
               o->url);
        return 3;
    }
    counted = *inner;
    if (inner->waiters != NULL)
        counted.waiters = count_waiters;
    if (inner->holders != NULL)
        counted.holders = count_holders;
    if (inner->claim != NULL)
        counted.claim = count_claim;
    if (inner->inspect != NULL)
        counted.inspect = count_inspect;
    tl_manager *c = connect_manager(o->url, "checker", &counted);
    if (c == NULL)
        return 1;
    if (!c->store->deadlocks) {
        tl_manager_free(c);
        return not_measured(o, "wait-for graph (deadlocks)");
    }
    h = connect_manager(o->url, "holder", NULL);
    for (int i = 0; i < npl && planters; i++)
        planters = (pl[i] = connect_manager(o->url, "planted", NULL)) != NULL;
    tc.v = calloc((size_t)o->checks + 8, sizeof(double));
    tcy.v = calloc((size_t)o->checks + 8, sizeof(double));
    tb.v = calloc((size_t)o->checks + 8, sizeof(double));
    if (h == NULL || !planters || tc.v == NULL || tcy.v == NULL || tb.v == NULL)
        goto out;

    (void)snprintf(key_a, sizeof(key_a), "%s-a", o->base);
    (void)snprintf(key_b, sizeof(key_b), "%s-b", o->base);
    if (o->issue > 0) {
        (void)snprintf(key_a, sizeof(key_a), "%ld", o->issue);
        (void)snprintf(key_b, sizeof(key_b), "%ld", o->issue + 1);
    }
    if (tl_acquire(c, key_a, &ff, &la) != TL_OK || tl_acquire(h, key_b, &ff, &lb) != TL_OK) {
        (void)fprintf(stderr, PROG ": holding A and B: %s / %s\n", tl_errmsg(c), tl_errmsg(h));
        goto out;
    }
    for (int i = 0; i < nq; i++) {
        if (o->issue > 0)
            (void)snprintf(qkeys[i], sizeof(qkeys[i]), "%ld", o->issue + 2 + i);
        else
            (void)snprintf(qkeys[i], sizeof(qkeys[i]), "%s-q%d", o->base, i);
        if (tl_acquire(h, qkeys[i], &ff, &lq[i]) != TL_OK) {
            (void)fprintf(stderr, PROG ": holding %s: %s\n", qkeys[i], tl_errmsg(h));
            goto out;
        }
    }
    /* W waiters in the q keys' lines, each holding a key of its own (a holding text, no edge). */
    for (; planted < o->waiters; planted++) {
        char wid[33], holding[160];
        waiter_id(wid, planted);
        (void)snprintf(holding, sizeof(holding), "x %s-z%d %d", o->base, planted, planted + 1);
        tl_manager *m = pl[planted / per_pl];
        if (join_line(m, qkeys[planted % nq], wid, holding) != TL_EBUSY) {
            (void)fprintf(stderr, PROG ": planting waiter %d: %s\n", planted, m->store->errmsg);
            goto out;
        }
    }
    /* The checker waits for B holding A: no cycle. */
    waiter_id(wc, MAX_WAITERS + 1);
    (void)snprintf(hold_c, sizeof(hold_c), "x %s %llu", key_a,
                   (unsigned long long)tl_lock_token(la));
    const struct tl_claim req = {
        .key = key_b,
        .worker_id = c->worker_id,
        .node_id = "bench",
        .task_info = "{}",
        .lock_timeout_ms = LOCK_MS,
        .waiter_id = wc,
        .waiter_timeout_ms = LOCK_MS,
        .holding = hold_c,
    };
    if (join_line(c, key_b, wc, hold_c) != TL_EBUSY) {
        (void)fprintf(stderr, PROG ": the checker's claim: %s\n", c->store->errmsg);
        goto out;
    }
    joined_c = true;
    struct tl_waiter **ws = NULL;
    size_t nw = 0;
    if (inner->waiters(c->store, NULL, &ws, &nw) != TL_OK) {
        (void)fprintf(stderr, PROG ": reading every waiter: %s\n", c->store->errmsg);
        goto out;
    }
    tl_waiter_array_free(ws, nw);
    /* What is measured is a read of the W + 1 waiters: any other count fails the run. */
    if (nw != (size_t)planted + 1) {
        (void)fprintf(stderr, PROG ": %zu waiters listed; %d planted and the checker's expected\n",
                      nw, planted);
        goto out;
    }

    struct counts kc = measure_checks(o, c, &req, TL_OK, &tc);
    time_claims(c, &req, 5, &tb);
    tb.n = 0;
    tb.errors = 0;
    time_claims(c, &req, o->checks, &tb);

    /* The cycle: H waits for A naming B; the checker joins B's line again after it. */
    waiter_id(wh, MAX_WAITERS + 2);
    (void)snprintf(hold_h, sizeof(hold_h), "x %s %llu", key_b,
                   (unsigned long long)tl_lock_token(lb));
    if (join_line(h, key_a, wh, hold_h) != TL_EBUSY) {
        (void)fprintf(stderr, PROG ": the holder's claim: %s\n", h->store->errmsg);
        goto out;
    }
    joined_h = true;
    (void)inner->leave(c->store, key_b, wc);
    joined_c = false;
    bench_sleep_s(0.01); /* a later since_ms: the checker is the youngest */
    waiter_id(wc2, MAX_WAITERS + 3);
    struct tl_claim req2 = req;
    req2.waiter_id = wc2;
    if (join_line(c, key_b, wc2, hold_c) != TL_EBUSY) {
        (void)fprintf(stderr, PROG ": the checker's second claim: %s\n", c->store->errmsg);
        goto out;
    }
    joined_c2 = true;
    struct counts ky = measure_checks(o, c, &req2, TL_EDEADLK, &tcy);

    char config[16];
    (void)snprintf(config, sizeof(config), "w%d", o->waiters);
    struct bench_csv out;
    bench_csv_open(&out, o->csv, o->rep, o->store, "check");
    timed_rows(&out, config, &tc);
    count_rows(&out, config, &kc);
    bench_csv_row(&out, config, "waiters_listed", (double)nw);
    bench_csv_close(&out);
    bench_csv_open(&out, o->csv, o->rep, o->store, "check-cycle");
    timed_rows(&out, config, &tcy);
    count_rows(&out, config, &ky);
    bench_csv_close(&out);
    bench_csv_open(&out, o->csv, o->rep, o->store, "busy-claim");
    timed_rows(&out, config, &tb);
    bench_csv_close(&out);
    /* timed_rows sorted the times: the medians are v[n/2]. */
    (void)fprintf(stderr,
                  "%s %s: %zu waiters listed; check p50 %.3f ms (%.2f waiters reads, %.2f holders "
                  "reads, server %.1f requests), with a cycle %.3f ms (%.2f holders reads, server "
                  "%.1f), busy claim %.3f ms; errors %ld/%ld/%ld\n",
                  o->store, config, nw, tc.v[tc.n / 2] * 1000, kc.waiters, kc.holders, kc.server,
                  tcy.v[tcy.n / 2] * 1000, ky.holders, ky.server, tb.v[tb.n / 2] * 1000, tc.errors,
                  tcy.errors, tb.errors);
    rc = tc.errors || tcy.errors || tb.errors ? 1 : 0;
out:
    if (joined_c)
        (void)inner->leave(c->store, key_b, wc);
    if (joined_c2)
        (void)inner->leave(c->store, key_b, wc2);
    if (joined_h)
        (void)inner->leave(h->store, key_a, wh);
    for (int i = 0; i < planted; i++) {
        char wid[33];
        waiter_id(wid, i);
        (void)inner->leave(pl[i / per_pl]->store, qkeys[i % nq], wid);
    }
    for (int i = 0; i < nq; i++) {
        if (lq[i] != NULL)
            (void)tl_release(lq[i], NULL);
        tl_lock_free(lq[i]);
    }
    if (la != NULL)
        (void)tl_release(la, NULL);
    if (lb != NULL)
        (void)tl_release(lb, NULL);
    tl_lock_free(la);
    tl_lock_free(lb);
    free(tc.v);
    free(tcy.v);
    free(tb.v);
    for (int i = 0; i < npl; i++)
        tl_manager_free(pl[i]);
    tl_manager_free(h);
    tl_manager_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {
        .threads = 1, .seconds = 2, .waiters = 1, .checks = 200, .store = "?", .rep = 1};
    const char *mode = NULL;
    int c;

    while ((c = getopt(argc, argv, "u:m:p:t:W:n:k:N:o:r:S:")) != -1) {
        switch (c) {
        case 'u': o.url = optarg; break;
        case 'm': mode = optarg; break;
        case 'p': o.threads = (int)strtol(optarg, NULL, 10); break;
        case 't': o.seconds = strtod(optarg, NULL); break;
        case 'W': o.waiters = (int)strtol(optarg, NULL, 10); break;
        case 'n': o.checks = (int)strtol(optarg, NULL, 10); break;
        case 'k': o.base = optarg; break;
        case 'N': o.issue = strtol(optarg, NULL, 10); break;
        case 'o': o.csv = optarg; break;
        case 'r': o.rep = (int)strtol(optarg, NULL, 10); break;
        case 'S': o.store = optarg; break;
        default:
            (void)fprintf(stderr, "usage: " PROG " -u URL -m shared|exclusive|deadlock [-p THREADS]"
                                  " [-t SECONDS] [-W WAITERS] [-n CHECKS] [-k BASE | -N ISSUE]"
                                  " [-o CSV -r REP -S STORE]\n");
            return 2;
        }
    }
    if (o.url == NULL || mode == NULL || o.threads < 1 || o.threads > MAX_THREADS ||
        o.seconds <= 0 || o.waiters < 1 || o.waiters > MAX_WAITERS || o.checks < 1)
        bench_die(PROG, "usage",
                  "need -u URL -m MODE, 1 <= -p <= 64, -t > 0, 1 <= -W <= 1000, -n >= 1");
    if (strcmp(mode, "shared") == 0)
        o.mode = MODE_SHARED;
    else if (strcmp(mode, "exclusive") == 0)
        o.mode = MODE_EXCLUSIVE;
    else if (strcmp(mode, "deadlock") == 0)
        o.mode = MODE_DEADLOCK;
    else
        bench_die(PROG, mode, "no such mode (shared, exclusive, deadlock)");
    if (tl__store_find(o.url) == NULL) {
        printf("not measured: this build has no store for %.*s\n", (int)strcspn(o.url, ":"), o.url);
        return 3;
    }
    char basebuf[64];
    if (o.base == NULL) {
        (void)snprintf(basebuf, sizeof(basebuf), "bm%ld-%s", (long)getpid(), mode);
        o.base = basebuf;
    }
    return o.mode == MODE_DEADLOCK ? run_deadlock(&o) : run_loop(&o);
}
