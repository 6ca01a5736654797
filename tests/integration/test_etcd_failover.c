/*
 * test_etcd_failover.c -- the etcd store across a leader's death: a three-member cluster on
 * loopback that this test starts itself (tests/harness/etcd-cluster.sh, fast elections), workers
 * (threads, each with its own manager, heartbeat thread and connections, each starting at a
 * different member) contending for a few keys with a fenced resource per key, and mid-run the
 * leader SIGKILLed and restarted on its data, then a follower SIGSTOPped and SIGCONTed, twice.
 *
 * Proved: no two workers inside one key's critical section at once; every holder's token larger
 * than every earlier holder's of that key; the fenced resource (which rejects a token lower than
 * the highest it has seen) never rejects a write of a holder that kept its lock, and does reject
 * a stale one; every worker acquires again within RESUME_BOUND_MS of the leader's kill and of the
 * follower's stop. The times are printed. Every wait is a bounded poll on what the workers did,
 * never a sleep that correctness depends on (it runs under TSan and ASan on busy machines).
 *
 * Skipped (77) only when `etcd` is not installed or the build has no etcd store.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

#define NWORKERS        6
#define NKEYS           3
#define ROUNDS          2
#define LOCK_TIMEOUT_MS 3000
#define RESUME_BOUND_MS 15000 /* generous: measured well under 2 s (docs/reliability.md) */
#define POLL_LIMIT_MS   60000 /* a poll that waits for the workers gives up after this */
#define PROGRESS        3     /* acquires each worker must make to count as running */

/* A resource that a token protects: per key, accepts a write only with a token at least as
 * high as the highest it has seen. `inside` counts the workers in the key's section. */
struct resource {
    pthread_mutex_t mu;
    uint64_t highest;
    uint64_t first; /* the first token written: a stale one at the end */
    int inside;
    uint64_t accepted, rejected;
};

struct worker {
    pthread_t th;
    int id;
    char url[512];
    _Atomic int64_t last_ok_ms; /* when its last acquire returned TL_OK (monotonic) */
    _Atomic uint64_t acquires;
    _Atomic uint64_t errors; /* acquires that failed with a store error */
    _Atomic uint64_t busy;   /* acquires that ran out of patience (TL_EBUSY/ETIMEDOUT) */
    _Atomic uint64_t release_retries;
    _Atomic uint64_t release_failed; /* releases that never succeeded */
    _Atomic uint64_t lost;           /* locks found lost at the end of a section */
    char last_error[256];            /* written by the worker, read after the join */
};

static struct resource res[NKEYS];
static char keys[NKEYS][64];
static struct worker workers[NWORKERS];
static atomic_bool stop;
static atomic_ulong overlaps, regressions, held_rejected;
static char script[1024];
static char *cluster_dir;

static int64_t mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A write to the fenced resource of key k with `token`; whether it was accepted. */
static bool fenced_write(int k, uint64_t token)
{
    struct resource *r = &res[k];
    bool ok;

    pthread_mutex_lock(&r->mu);
    ok = token >= r->highest;
    if (ok) {
        r->highest = token;
        if (r->first == 0)
            r->first = token;
        r->accepted++;
    } else {
        r->rejected++;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void enter(int k, uint64_t token)
{
    struct resource *r = &res[k];

    pthread_mutex_lock(&r->mu);
    if (r->inside > 0)
        atomic_fetch_add(&overlaps, 1);
    r->inside++;
    /* Sections of a key never overlap, so the one entered last was granted last: a token not
     * above the highest seen is a regression. */
    if (token <= r->highest)
        atomic_fetch_add(&regressions, 1);
    pthread_mutex_unlock(&r->mu);
}

static void leave(int k)
{
    pthread_mutex_lock(&res[k].mu);
    res[k].inside--;
    pthread_mutex_unlock(&res[k].mu);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[32];
    uint32_t rnd = (uint32_t)w->id * 2654435761u + 1;

    (void)snprintf(name, sizeof(name), "fo-w%d", w->id);
    tl_manager *m = tl_manager_new(&(struct tl_options){
        .store_url = w->url,
        .worker_id = name,
        .node_id = "failover",
        .lock_timeout_ms = LOCK_TIMEOUT_MS,
        .backoff_initial_ms = 5,
        .backoff_max_ms = 100,
    });
    if (m == NULL) {
        (void)snprintf(w->last_error, sizeof(w->last_error), "out of memory");
        return NULL;
    }
    tl_status st = tl_connect(m);
    if (st != TL_OK) {
        (void)snprintf(w->last_error, sizeof(w->last_error), "connect: %s", tl_errmsg(m));
        atomic_fetch_add(&w->errors, 1);
        tl_manager_free(m);
        return NULL;
    }
    while (!atomic_load(&stop)) {
        rnd = rnd * 1103515245u + 12345u;
        int k = (int)((rnd >> 16) % NKEYS);
        tl_lock *lock = NULL;

        st = tl_acquire(m, keys[k], &(struct tl_acquire_opts){.deadline_ms = 5000}, &lock);
        if (st == TL_EBUSY || st == TL_ETIMEDOUT) {
            atomic_fetch_add(&w->busy, 1);
            continue;
        }
        if (st != TL_OK) {
            atomic_fetch_add(&w->errors, 1);
            (void)snprintf(w->last_error, sizeof(w->last_error), "acquire: %s: %s", tl_strerror(st),
                           tl_errmsg(m));
            continue;
        }
        atomic_store(&w->last_ok_ms, mono_ms());
        atomic_fetch_add(&w->acquires, 1);

        uint64_t token = tl_lock_token(lock);
        enter(k, token);
        bool first_ok = fenced_write(k, token);
        /* The work: a moment inside (not a wait for anything). */
        (void)nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        bool last_ok = fenced_write(k, token);
        bool lost = tl_lock_is_lost(lock);
        if ((!first_ok || !last_ok) && !lost)
            atomic_fetch_add(&held_rejected, 1);
        if (lost)
            atomic_fetch_add(&w->lost, 1);
        leave(k);

        /* A release that the store did not answer leaves the lock held: try again (the
         * library's contract), bounded. */
        int64_t until = mono_ms() + 30000;
        for (;;) {
            st = tl_release(lock, NULL);
            if (st == TL_OK || st == TL_ENOTOWNER || mono_ms() > until)
                break;
            atomic_fetch_add(&w->release_retries, 1);
        }
        if (st != TL_OK) {
            atomic_fetch_add(&w->release_failed, 1);
            (void)snprintf(w->last_error, sizeof(w->last_error), "release: %s: %s", tl_strerror(st),
                           tl_errmsg(m));
        }
        tl_lock_free(lock);
    }
    tl_manager_free(m);
    return NULL;
}

/* Runs `script ACTION DIR [MEMBER]`; its first line of output goes to `out` (may be NULL). */
static int cluster(const char *action, const char *member, char *out, size_t size)
{
    char cmd[2048];

    (void)snprintf(cmd, sizeof(cmd), "'%s' %s '%s' %s", script, action, cluster_dir,
                   member ? member : "");
    FILE *p = popen(cmd, "r"); /* NOLINT(cert-env33-c): the test's own script */
    if (p == NULL)
        return -1;

    char line[1024] = "";
    if (fgets(line, sizeof(line), p) == NULL)
        line[0] = '\0';
    while (fgetc(p) != EOF)
        continue;
    int rc = pclose(p);
    line[strcspn(line, "\n")] = '\0';
    if (out != NULL)
        (void)snprintf(out, size, "%s", line);
    return rc;
}

struct since {
    int64_t t0;
    uint64_t base[NWORKERS];
};

/* Every worker has acquired after t0, and PROGRESS times since `base`. */
static bool all_progressed(void *arg)
{
    const struct since *s = arg;

    for (int i = 0; i < NWORKERS; i++) {
        if (atomic_load(&workers[i].last_ok_ms) <= s->t0 ||
            atomic_load(&workers[i].acquires) < s->base[i] + PROGRESS)
            return false;
    }
    return true;
}

static void mark(struct since *s)
{
    s->t0 = mono_ms();
    for (int i = 0; i < NWORKERS; i++)
        s->base[i] = atomic_load(&workers[i].acquires);
}

/* The PID of a running member. */
static pid_t member_pid(const char *member)
{
    char out[32];
    uint64_t v = 0;

    assert_int_equal(cluster("pid", member, out, sizeof(out)), 0);
    assert_true(tl__parse_u64(out, &v) && v > 1 && v < INT32_MAX);
    return (pid_t)v;
}

static bool find_etcd(void)
{
    const char *path = getenv("PATH"); /* NOLINT(concurrency-mt-unsafe) */
    char dirs[4096], exe[4200];

    (void)snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        (void)snprintf(exe, sizeof(exe), "%s/etcd", d);
        if (access(exe, X_OK) == 0)
            return true;
    }
    return false;
}

/* Polls every 5 ms until every worker has acquired after s->t0 (the time of the first such
 * acquire is when the poll saw it, so the figures are bounds from above, within 5 ms). */
static void wait_resumed(const struct since *s, int64_t *first, int64_t *all)
{
    int64_t seen_first = -1;
    int64_t limit = s->t0 + POLL_LIMIT_MS;

    for (;;) {
        int64_t now = mono_ms();
        bool any = false, every = true;
        for (int i = 0; i < NWORKERS; i++) {
            bool r = atomic_load(&workers[i].last_ok_ms) > s->t0;
            any = any || r;
            every = every && r;
        }
        if (any && seen_first < 0)
            seen_first = now - s->t0;
        if (every) {
            *first = seen_first;
            *all = now - s->t0;
            return;
        }
        if (now > limit)
            break;
        (void)nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
    }
    *first = seen_first;
    *all = -1;
}

static void failover(void **state)
{
    (void)state;
    char url[512], leader[16], follower[16];
    int64_t kill_first[ROUNDS], kill_all[ROUNDS], stop_first[ROUNDS], stop_all[ROUNDS];

    assert_int_equal(cluster("start", NULL, url, sizeof(url)), 0);
    assert_true(strncmp(url, "etcd://", 7) == 0);
    (void)fprintf(stderr, "failover: cluster %s\n", url);

    /* Each worker starts at a different member: the endpoints rotated. */
    char eps[3][64];
    const char *hosts = url + 7;
    for (int e = 0; e < 3; e++) {
        size_t n = strcspn(hosts, ",");
        assert_true(n > 0 && n < sizeof(eps[e]));
        memcpy(eps[e], hosts, n);
        eps[e][n] = '\0';
        hosts += n + (hosts[n] == ',');
    }
    for (int k = 0; k < NKEYS; k++) {
        (void)snprintf(keys[k], sizeof(keys[k]), "fo-k%d", k);
        pthread_mutex_init(&res[k].mu, NULL);
    }
    for (int i = 0; i < NWORKERS; i++) {
        struct worker *w = &workers[i];
        w->id = i;
        (void)snprintf(w->url, sizeof(w->url), "etcd://%s,%s,%s?prefix=fo-%ld/", eps[i % 3],
                       eps[(i + 1) % 3], eps[(i + 2) % 3], (long)getpid());
        assert_int_equal(pthread_create(&w->th, NULL, worker_main, w), 0);
    }

    struct since s;
    s.t0 = 0;
    memset(s.base, 0, sizeof(s.base));
    assert_true(tl_test_poll(all_progressed, &s, 5, POLL_LIMIT_MS));

    for (int r = 0; r < ROUNDS; r++) {
        /* The leader, SIGKILLed: time from the kill to every worker's next acquire. */
        assert_int_equal(cluster("wait-leader", NULL, NULL, 0), 0);
        assert_int_equal(cluster("leader", NULL, leader, sizeof(leader)), 0);
        pid_t pid = member_pid(leader);
        mark(&s);
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(cluster("kill-member", leader, NULL, 0), 0); /* waits until it is gone */
        wait_resumed(&s, &kill_first[r], &kill_all[r]);
        (void)fprintf(stderr,
                      "failover: round %d: leader %s killed: first acquire after %lld ms, "
                      "every worker after %lld ms\n",
                      r + 1, leader, (long long)kill_first[r], (long long)kill_all[r]);
        assert_true(kill_all[r] >= 0);
        assert_true(tl_test_poll(all_progressed, &s, 5, POLL_LIMIT_MS));

        /* Back on its data; then the cluster is whole again. */
        assert_int_equal(cluster("restart-member", leader, NULL, 0), 0);
        mark(&s);
        assert_true(tl_test_poll(all_progressed, &s, 5, POLL_LIMIT_MS));

        /* A follower, frozen: requests to it stall until the client's request timeout. */
        char now_leader[16];
        assert_int_equal(cluster("wait-leader", NULL, NULL, 0), 0);
        assert_int_equal(cluster("leader", NULL, now_leader, sizeof(now_leader)), 0);
        for (int i = 0, n = 0; i < 3; i++) { /* one follower, a different one each round */
            (void)snprintf(follower, sizeof(follower), "m%d", i + 1);
            if (strcmp(follower, now_leader) != 0 && n++ == r % 2)
                break;
        }
        pid = member_pid(follower);
        mark(&s);
        assert_int_equal(kill(pid, SIGSTOP), 0);
        wait_resumed(&s, &stop_first[r], &stop_all[r]);
        bool progressed = tl_test_poll(all_progressed, &s, 5, POLL_LIMIT_MS);
        (void)fprintf(stderr,
                      "failover: round %d: follower %s stopped: first acquire after %lld ms, "
                      "every worker after %lld ms\n",
                      r + 1, follower, (long long)stop_first[r], (long long)stop_all[r]);
        assert_int_equal(cluster("cont-member", follower, NULL, 0), 0);
        assert_true(stop_all[r] >= 0);
        assert_true(progressed);
        mark(&s);
        assert_true(tl_test_poll(all_progressed, &s, 5, POLL_LIMIT_MS));
    }

    atomic_store(&stop, true);
    uint64_t acquires = 0, errors = 0, busy = 0, retries = 0, rfailed = 0, lost = 0;
    for (int i = 0; i < NWORKERS; i++) {
        struct worker *w = &workers[i];
        assert_int_equal(pthread_join(w->th, NULL), 0);
        acquires += atomic_load(&w->acquires);
        errors += atomic_load(&w->errors);
        busy += atomic_load(&w->busy);
        retries += atomic_load(&w->release_retries);
        rfailed += atomic_load(&w->release_failed);
        lost += atomic_load(&w->lost);
        if (w->last_error[0])
            (void)fprintf(stderr, "failover: w%d's last error: %s\n", i, w->last_error);
    }

    /* The fence bites: the first token ever written to a key is stale now. */
    uint64_t accepted = 0, rejected = 0;
    for (int k = 0; k < NKEYS; k++) {
        accepted += res[k].accepted;
        rejected += res[k].rejected;
    }
    assert_true(res[0].first > 0 && res[0].first < res[0].highest);
    assert_false(fenced_write(0, res[0].first));

    (void)fprintf(stderr,
                  "failover: %llu acquires, %llu overlaps, %llu token regressions, writes "
                  "%llu accepted / %llu rejected (%llu of a holder that kept its lock); "
                  "acquire errors %llu, out of patience %llu; release retries %llu, releases "
                  "failed %llu; locks lost %llu\n",
                  (unsigned long long)acquires, (unsigned long long)atomic_load(&overlaps),
                  (unsigned long long)atomic_load(&regressions), (unsigned long long)accepted,
                  (unsigned long long)rejected, (unsigned long long)atomic_load(&held_rejected),
                  (unsigned long long)errors, (unsigned long long)busy, (unsigned long long)retries,
                  (unsigned long long)rfailed, (unsigned long long)lost);
    assert_int_equal(atomic_load(&overlaps), 0);
    assert_int_equal(atomic_load(&regressions), 0);
    assert_int_equal(atomic_load(&held_rejected), 0);
    assert_int_equal(rfailed, 0);
    for (int r = 0; r < ROUNDS; r++) {
        assert_true(kill_all[r] <= RESUME_BOUND_MS);
        assert_true(stop_all[r] <= RESUME_BOUND_MS);
    }
    for (int k = 0; k < NKEYS; k++)
        pthread_mutex_destroy(&res[k].mu);
}

static int teardown(void **state)
{
    (void)state;
    if (cluster_dir != NULL) {
        (void)cluster("stop", NULL, NULL, 0);
        tl_test_rmtree(cluster_dir);
        free(cluster_dir);
        cluster_dir = NULL;
    }
    return 0;
}

int main(void)
{
    if (tl__store_find("etcd://127.0.0.1:1") == NULL) {
        (void)fprintf(stderr, "etcd failover: this build has no etcd store; skipped\n");
        return 77;
    }
    if (!find_etcd()) {
        (void)fprintf(stderr, "etcd failover: etcd is not installed; skipped\n");
        return 77;
    }
    const char *sh = tl_test_env("TL_ETCD_CLUSTER_SH");
    if (sh != NULL) {
        (void)snprintf(script, sizeof(script), "%s", sh);
    } else { /* beside this file's folder */
        (void)snprintf(script, sizeof(script), "%s", __FILE__);
        char *slash = strrchr(script, '/');
        size_t at = slash ? (size_t)(slash - script) : 0;
        (void)snprintf(script + at, sizeof(script) - at, "%s../harness/etcd-cluster.sh",
                       slash ? "/" : "");
    }
    if (access(script, X_OK) != 0) {
        (void)fprintf(stderr, "etcd failover: %s: %s\n", script, strerror(errno));
        return 1;
    }
    cluster_dir = tl_test_mkdtemp();
    if (cluster_dir == NULL)
        return 1;

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(failover, teardown),
    };
    return cmocka_run_group_tests_name("etcd failover", tests, NULL, NULL);
}
