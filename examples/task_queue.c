/*
 * task_queue.c -- a task queue on claim-next: worker threads drain a list of tasks, each
 * claiming the next free one, finishing it (a done marker) and claiming the next in one call.
 *
 *   example_task_queue [STORE_URL]
 *
 * Each thread has its own manager. tl_claim_next() takes the first task of the list that is
 * free (not held, nobody in its line, not done) atomically; after the work,
 * tl_release_claim_next() releases it as done and claims the next in the same store call,
 * until TL_ENOTASK says nothing is left. One task fails on its first try: it is released not
 * done, so that a worker retries it. At the end the program checks that every task is done
 * exactly once (tl_list_done() shows each), reopens one and claims it again.
 *
 * Without an argument the store is a SQLite file in a temporary directory that is removed at
 * the end; `memory:queue` keeps it in this process. Exits 0 when every check passes.
 */
#define _POSIX_C_SOURCE 200809L

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
#define NTASKS   30

struct queue {
    const char *store_url;
    const char *keys[NTASKS];
    char names[NTASKS][32];
    atomic_int done[NTASKS];    /* successful runs per task: must end at 1 */
    atomic_int running[NTASKS]; /* threads in a task right now: must stay 0 or 1 */
    atomic_int overlaps;
    atomic_int flaky_failed; /* task-07 fails once */
};

struct worker {
    pthread_t thread;
    struct queue *q;
    int id;
    int did;
    tl_status last;
    char err[256];
};

static int task_index(const struct queue *q, const char *key)
{
    for (int i = 0; i < NTASKS; i++) {
        if (strcmp(q->keys[i], key) == 0)
            return i;
    }
    return -1;
}

/* The work: a few milliseconds; task-07's first run fails. */
static bool work(struct queue *q, int task)
{
    struct timespec ts = {.tv_nsec = 2000000L};

    if (atomic_fetch_add(&q->running[task], 1) != 0)
        atomic_fetch_add(&q->overlaps, 1);
    (void)nanosleep(&ts, NULL);
    bool ok = !(task == 6 && atomic_exchange(&q->flaky_failed, 1) == 0);
    atomic_fetch_sub(&q->running[task], 1);
    if (ok)
        atomic_fetch_add(&q->done[task], 1);
    return ok;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[32];

    (void)snprintf(name, sizeof(name), "queue-worker-%d", w->id);
    tl_manager *m =
        tl_manager_new(&(struct tl_options){.store_url = w->q->store_url, .worker_id = name});
    const struct tl_acquire_opts opts = {.strategy = TL_RETRY, .deadline_ms = 30000};
    tl_lock *lock = NULL;

    if (m == NULL) {
        w->last = TL_ENOMEM;
        return NULL;
    }
    w->last = tl_claim_next(m, w->q->keys, NTASKS, &opts, &lock);
    while (w->last == TL_OK) {
        int task = task_index(w->q, tl_lock_key(lock));
        bool ok = work(w->q, task);
        tl_lock *next = NULL;

        w->did += ok;
        /* Done (or not, to be retried), and the next task, in one call. */
        w->last = tl_release_claim_next(lock, ok ? "built" : "failed; retry", ok, w->q->keys,
                                        NTASKS, &opts, &next);
        tl_lock_free(lock);
        lock = next;
    }
    if (w->last != TL_ENOTASK)
        (void)snprintf(w->err, sizeof(w->err), "%s", tl_errmsg(m));
    tl_manager_free(m);
    return NULL;
}

int main(int argc, char **argv)
{
    static struct queue q;
    char dir[] = "/tmp/tasklock-queue-XXXXXX";
    char url[128];
    int failures = 0;

    if (argc > 1) {
        q.store_url = argv[1];
    } else {
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        (void)snprintf(url, sizeof(url), "sqlite:%s/queue.db", dir);
        q.store_url = url;
    }
    /* Task names unique to this run: a shared store may hold an earlier run's done markers. */
    for (int i = 0; i < NTASKS; i++) {
        (void)snprintf(q.names[i], sizeof(q.names[i]), "q%ld-task-%02d", (long)getpid(), i + 1);
        q.keys[i] = q.names[i];
    }

    /* Opened first and kept to the end: it also keeps a memory: store alive between the
     * workers' managers. */
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = q.store_url});
    if (m == NULL || tl_connect(m) != TL_OK) {
        (void)fprintf(stderr, "connect: %s\n", m ? tl_errmsg(m) : "out of memory");
        return 1;
    }

    struct worker w[NTHREADS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < NTHREADS; i++) {
        w[i].q = &q;
        w[i].id = i + 1;
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 0; i < NTHREADS; i++) {
        (void)pthread_join(w[i].thread, NULL);
        (void)printf("queue-worker-%d did %d tasks, then: %s\n", w[i].id, w[i].did,
                     tl_strerror(w[i].last));
        if (w[i].last != TL_ENOTASK) {
            (void)fprintf(stderr, "queue-worker-%d: %s\n", w[i].id, w[i].err);
            failures++;
        }
    }
    for (int i = 0; i < NTASKS; i++) {
        if (atomic_load(&q.done[i]) != 1) {
            (void)fprintf(stderr, "%s was done %d times\n", q.keys[i], atomic_load(&q.done[i]));
            failures++;
        }
    }
    if (atomic_load(&q.overlaps) != 0) {
        (void)fprintf(stderr, "%d overlaps: two workers in one task\n", atomic_load(&q.overlaps));
        failures++;
    }

    /* Every task carries its done marker; reopen one, and it is offered again. */
    struct tl_done **done = NULL;
    size_t ndone = 0;
    int ours = 0;
    if (tl_list_done(m, NULL, &done, &ndone) != TL_OK) {
        (void)fprintf(stderr, "list done: %s\n", tl_errmsg(m));
        failures++;
    }
    for (size_t i = 0; i < ndone; i++)
        ours += task_index(&q, done[i]->key) >= 0;
    tl_done_array_free(done, ndone);
    if (ours != NTASKS) {
        (void)fprintf(stderr, "%d of %d tasks have a done marker\n", ours, NTASKS);
        failures++;
    }
    bool was = false;
    tl_lock *again = NULL;
    if (tl_reopen(m, q.keys[4], &was) != TL_OK || !was ||
        tl_claim_next(m, q.keys, NTASKS, NULL, &again) != TL_OK ||
        strcmp(tl_lock_key(again), q.keys[4]) != 0) {
        (void)fprintf(stderr, "reopen and claim again: %s\n", tl_errmsg(m));
        failures++;
    }
    if (again != NULL)
        (void)tl_release_with(again, &(struct tl_release_opts){.done = true});
    tl_lock_free(again);
    tl_manager_free(m);

    if (argc <= 1) {
        char path[160];
        const char *files[] = {"queue.db", "queue.db-wal", "queue.db-shm"};
        for (size_t i = 0; i < 3; i++) {
            (void)snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
            (void)unlink(path);
        }
        (void)rmdir(dir);
    }
    if (failures)
        (void)printf("FAILED: %d check%s failed\n", failures, failures == 1 ? "" : "s");
    else
        (void)printf("ok: %d tasks, each done exactly once; one failed once and was retried\n",
                     NTASKS);
    return failures ? 1 : 0;
}
