/*
 * worker_pool.c -- a pool of worker threads sharing a list of tasks through one store.
 *
 *   example_worker_pool [STORE_URL]
 *
 * Each thread has its own manager (a manager and its locks are used by one thread at a time)
 * with its own worker id. A thread walks the task list, skips tasks already done, tries each
 * remaining task's lock once (TL_FAIL_FAST: a held task is someone else's), does the task,
 * records it as done and releases the lock. At the end the program checks that every task was
 * done exactly once and never by two threads at the same time, and prints what each thread did.
 *
 * Without an argument the store is a SQLite file in a temporary directory that is removed at
 * the end; `memory:pool` keeps it in this process. Exits 0 when every check passes.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tasklock.h"

#define NTHREADS 4
#define NTASKS   24

/* What the threads share, apart from the store. */
struct pool {
    const char *store_url;
    pthread_mutex_t mu;     /* guards done_by and done_count */
    int done_by[NTASKS];    /* the thread that did the task; -1: not yet */
    int done_count[NTASKS]; /* how many times the task was done: must end at 1 */
    /* Threads inside a task's work right now. The lock must keep this at 0 or 1; it is
     * atomic, and deliberately not under `mu`, so that the check does not itself serialise
     * the work. */
    atomic_int running[NTASKS];
    atomic_bool overlap; /* set if two threads ever worked on one task at once */
    atomic_bool failed;  /* set if a thread hit an error other than "busy" */
    pthread_barrier_t start;
};

struct worker {
    pthread_t thread;
    struct pool *pool;
    struct tl_metrics metrics; /* copied at the end of the thread */
    int id;
    int tasks_done;
};

static void task_key(int task, char *buf, size_t size)
{
    (void)snprintf(buf, size, "pool-task-%02d", task);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool is_done(struct pool *p, int task)
{
    pthread_mutex_lock(&p->mu);
    bool done = p->done_by[task] >= 0;
    pthread_mutex_unlock(&p->mu);
    return done;
}

static bool all_done(struct pool *p)
{
    for (int t = 0; t < NTASKS; t++) {
        if (!is_done(p, t))
            return false;
    }
    return true;
}

/* The task itself: a few milliseconds of "work", watched for overlap. */
static void do_task(struct pool *p, int task, uint64_t token)
{
    if (atomic_fetch_add(&p->running[task], 1) != 0)
        atomic_store(&p->overlap, true);
    (void)token; /* a real task would hand the token to the resource it writes (fencing.c) */
    sleep_ms(2 + task % 3);
    atomic_fetch_sub(&p->running[task], 1);
}

/* One pass over the task list. Returns false on an error that should stop this thread. */
static bool one_pass(struct worker *w, tl_manager *m)
{
    struct pool *p = w->pool;
    const struct tl_acquire_opts fail_fast = {.strategy = TL_FAIL_FAST};

    for (int i = 0; i < NTASKS; i++) {
        /* Start at a different place in the list in each thread, to spread the work. */
        int task = (i + w->id * NTASKS / NTHREADS) % NTASKS;
        char key[32];
        tl_lock *lock = NULL;

        if (is_done(p, task))
            continue;
        task_key(task, key, sizeof(key));
        tl_status st = tl_acquire(m, key, &fail_fast, &lock);
        if (st == TL_EBUSY)
            continue; /* another thread is on it */
        if (st != TL_OK) {
            fprintf(stderr, "worker %d: acquire %s: %s\n", w->id, key, tl_errmsg(m));
            return false;
        }

        /* Check again now that we hold the lock: the task may have been finished (and its lock
         * released) between the check above and our acquire. Without this re-check a task
         * could run twice, one run after the other: the lock prevents overlap, not repetition.
         */
        bool skip = is_done(p, task);
        if (!skip) {
            do_task(p, task, tl_lock_token(lock));
            pthread_mutex_lock(&p->mu);
            p->done_by[task] = w->id;
            p->done_count[task]++;
            pthread_mutex_unlock(&p->mu);
            w->tasks_done++;
        }

        st = tl_release(lock, skip ? "already done" : "done");
        tl_lock_free(lock);
        if (st != TL_OK) {
            fprintf(stderr, "worker %d: release %s: %s\n", w->id, key, tl_errmsg(m));
            return false;
        }
    }
    return true;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char worker_id[32];

    (void)snprintf(worker_id, sizeof(worker_id), "pool-worker-%d", w->id);
    const struct tl_options opts = {.store_url = w->pool->store_url, .worker_id = worker_id};
    tl_manager *m = tl_manager_new(&opts);
    if (m == NULL) {
        atomic_store(&w->pool->failed, true);
        (void)pthread_barrier_wait(&w->pool->start);
        return NULL;
    }
    if (tl_connect(m) != TL_OK) {
        fprintf(stderr, "worker %d: connect: %s\n", w->id, tl_errmsg(m));
        atomic_store(&w->pool->failed, true);
    }

    /* Start together, once every thread is connected, so that the work is shared. */
    (void)pthread_barrier_wait(&w->pool->start);

    /* Passes until every task is done. A pass that finds only held tasks waits a little
     * rather than spin on the store. */
    while (!all_done(w->pool) && !atomic_load(&w->pool->failed)) {
        if (!one_pass(w, m)) {
            atomic_store(&w->pool->failed, true);
            break;
        }
        sleep_ms(1);
    }
    tl_metrics_get(m, &w->metrics, sizeof(w->metrics));
    tl_manager_free(m);
    return NULL;
}

/* A temporary directory for the SQLite file; removed by tmp_remove(). */
static int tmp_make(char *dir, size_t dsize, char *url, size_t usize)
{
    const char *base = getenv("TMPDIR"); /* NOLINT(concurrency-mt-unsafe): before any thread */

    if (base == NULL || base[0] == '\0' || strlen(base) > 40)
        base = "/tmp";
    (void)snprintf(dir, dsize, "%s/tl-pool-XXXXXX", base);
    if (mkdtemp(dir) == NULL)
        return -1;
    (void)snprintf(url, usize, "sqlite:%s/locks.db", dir);
    return 0;
}

static void tmp_remove(const char *dir)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char path[96];

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/locks.db%s", dir, suffixes[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            perror(path);
    }
    if (rmdir(dir) != 0)
        perror(dir);
}

int main(int argc, char **argv)
{
    static struct pool pool = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct worker workers[NTHREADS] = {0};
    char dir[64] = "", url[128];
    int rc = 0;

    pool.store_url = argc > 1 ? argv[1] : NULL;
    if (pool.store_url == NULL) {
        if (tmp_make(dir, sizeof(dir), url, sizeof(url)) != 0) {
            perror("mkdtemp");
            return 1;
        }
        pool.store_url = url;
    }
    for (int t = 0; t < NTASKS; t++) {
        pool.done_by[t] = -1;
        atomic_init(&pool.running[t], 0);
    }
    atomic_init(&pool.overlap, false);
    atomic_init(&pool.failed, false);

    /* The main thread's own manager. Connecting it before the threads start creates the
     * database file and its tables, so that the workers all open a ready store; at the end it
     * checks, through the store, that no task is left locked. */
    tl_manager *main_m =
        tl_manager_new(&(struct tl_options){.store_url = pool.store_url, .worker_id = "pool-main"});
    if (main_m == NULL || tl_connect(main_m) != TL_OK) {
        fprintf(stderr, "connect: %s\n", main_m ? tl_errmsg(main_m) : "out of memory");
        tl_manager_free(main_m);
        rc = 1;
        goto out_remove;
    }

    int started = 0;
    if (pthread_barrier_init(&pool.start, NULL, NTHREADS) != 0) {
        tl_manager_free(main_m);
        rc = 1;
        goto out_remove;
    }
    for (int i = 0; i < NTHREADS; i++) {
        workers[i].id = i;
        workers[i].pool = &pool;
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            /* The others would wait at the barrier for ever: give up at once. */
            fprintf(stderr, "cannot start thread %d\n", i);
            return 1;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        (void)pthread_join(workers[i].thread, NULL);
    (void)pthread_barrier_destroy(&pool.start);

    /* The checks: each task done exactly once, never two runs at once. */
    for (int t = 0; t < NTASKS; t++) {
        if (pool.done_count[t] != 1) {
            fprintf(stderr, "task %d was done %d times\n", t, pool.done_count[t]);
            rc = 1;
        }
    }
    if (atomic_load(&pool.overlap)) {
        fprintf(stderr, "two threads worked on one task at the same time\n");
        rc = 1;
    }
    if (atomic_load(&pool.failed))
        rc = 1;

    /* Every lock was released: none of the pool's keys is held any more. */
    struct tl_info **held = NULL;
    size_t nheld = 0;
    tl_status st = tl_list(main_m, &held, &nheld);
    if (st == TL_OK) {
        for (size_t i = 0; i < nheld; i++) {
            if (strncmp(held[i]->key, "pool-task-", 10) == 0) {
                fprintf(stderr, "%s is still held by %s\n", held[i]->key, held[i]->worker_id);
                rc = 1;
            }
        }
        tl_info_array_free(held, nheld);
    } else if (st != TL_ENOTSUP) { /* some stores cannot list their locks */
        fprintf(stderr, "list: %s\n", tl_errmsg(main_m));
        rc = 1;
    }
    tl_manager_free(main_m);

    printf("%-14s %5s %9s %9s %8s %8s %10s\n", "worker", "tasks", "acquired", "conflicts",
           "released", "failed", "avg acq ms");
    uint64_t total_conflicts = 0;
    int total_done = 0;
    for (int i = 0; i < started; i++) {
        const struct tl_metrics *mt = &workers[i].metrics;

        printf("pool-worker-%-2d %5d %9llu %9llu %8llu %8llu %10.2f\n", i, workers[i].tasks_done,
               (unsigned long long)mt->total_acquisitions, (unsigned long long)mt->total_conflicts,
               (unsigned long long)mt->total_releases, (unsigned long long)mt->failed_acquisitions,
               mt->average_acquisition_ms);
        total_conflicts += mt->total_conflicts;
        total_done += workers[i].tasks_done;
    }
    printf("%d tasks done by %d threads, %llu conflicts: %s\n", total_done, started,
           (unsigned long long)total_conflicts, rc == 0 ? "every task ran exactly once" : "FAILED");

out_remove:
    if (dir[0] != '\0')
        tmp_remove(dir);
    return rc;
}
