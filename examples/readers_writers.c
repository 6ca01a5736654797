/*
 * readers_writers.c -- shared and exclusive locks, a semaphore, and an upgrade that may meet a
 * deadlock, through one store.
 *
 *   example_readers_writers [STORE_URL]
 *
 * Six threads share a document, each with its own manager and worker id:
 * - readers take the document's lock shared (TL_SHARED): any number read at once, never while a
 *   writer writes;
 * - writers take it exclusive (the default): alone;
 * - every thread also takes a slot of a semaphore of 2 (`slots = 2`): at most two of them
 *   "render" at once, whatever their mode;
 * - now and then a reader decides to write what it read: it upgrades its shared lock in place
 *   (tl_upgrade). If two readers upgrade at once they would wait for each other forever; the
 *   store's wait-for graph catches that, the later one gets TL_EDEADLK, releases its lock and
 *   starts over as a writer.
 * The program checks that no writer ever overlapped anyone, that the semaphore never admitted
 * more than 2, and that every write was counted, and prints what happened.
 *
 * Without an argument the store is a SQLite file in a temporary directory that is removed at
 * the end. Exits 0 when every check passes.
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

#define NTHREADS 6
#define ROUNDS   8

struct shared {
    const char *store_url;
    atomic_int readers;   /* inside the document shared */
    atomic_int writers;   /* inside it exclusive */
    atomic_int rendering; /* inside the semaphore */
    atomic_int max_readers, max_rendering;
    atomic_int writes, upgrades, deadlocks;
    atomic_bool broken; /* an invariant failed */
    atomic_bool failed; /* an unexpected error */
    int document;       /* written only under the exclusive lock */
};

struct worker {
    pthread_t thread;
    struct shared *sh;
    int id;
};

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};

    (void)nanosleep(&ts, NULL);
}

static void raise_max(atomic_int *max, int v)
{
    int m = atomic_load(max);

    while (v > m && !atomic_compare_exchange_weak(max, &m, v))
        ;
}

static void fail(struct shared *sh, tl_manager *m, const char *what, tl_status st)
{
    fprintf(stderr, "%s: %s: %s\n", what, tl_strerror(st), tl_errmsg(m));
    atomic_store(&sh->failed, true);
}

/* Writes under an exclusive lock: nobody else may be inside. */
static void write_document(struct shared *sh)
{
    if (atomic_fetch_add(&sh->writers, 1) != 0 || atomic_load(&sh->readers) != 0)
        atomic_store(&sh->broken, true);
    sh->document++;
    atomic_fetch_add(&sh->writes, 1);
    pause_ms(2);
    atomic_fetch_sub(&sh->writers, 1);
}

/* A slot of the semaphore of 2 around some work. */
static void render(struct shared *sh, tl_manager *m)
{
    const struct tl_acquire_opts o = {.slots = 2, .deadline_ms = 30000};
    tl_lock *slot = NULL;
    tl_status st = tl_acquire(m, "renderer", &o, &slot);

    if (st != TL_OK) {
        fail(sh, m, "renderer slot", st);
        return;
    }
    int now = atomic_fetch_add(&sh->rendering, 1) + 1;
    raise_max(&sh->max_rendering, now);
    if (now > 2)
        atomic_store(&sh->broken, true);
    pause_ms(3);
    atomic_fetch_sub(&sh->rendering, 1);
    if ((st = tl_release(slot, NULL)) != TL_OK)
        fail(sh, m, "release the slot", st);
    tl_lock_free(slot);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    char name[32];

    (void)snprintf(name, sizeof(name), "rw-%d", w->id);
    const struct tl_options mo = {.store_url = sh->store_url,
                                  .worker_id = name,
                                  .backoff_initial_ms = 5,
                                  .backoff_max_ms = 50};
    tl_manager *m = tl_manager_new(&mo);
    if (m == NULL) {
        atomic_store(&sh->failed, true);
        return NULL;
    }
    for (int round = 0; round < ROUNDS && !atomic_load(&sh->failed); round++) {
        bool writer = w->id < 2;
        const struct tl_acquire_opts o = {.mode = writer ? TL_EXCLUSIVE : TL_SHARED,
                                          .deadline_ms = 30000};
        tl_lock *doc = NULL;
        tl_status st = tl_acquire(m, "document", &o, &doc);
        if (st != TL_OK) {
            fail(sh, m, "document", st);
            break;
        }
        if (writer) {
            write_document(sh);
        } else {
            raise_max(&sh->max_readers, atomic_fetch_add(&sh->readers, 1) + 1);
            if (atomic_load(&sh->writers) != 0)
                atomic_store(&sh->broken, true);
            pause_ms(2);
            atomic_fetch_sub(&sh->readers, 1);
            if (round % 3 == w->id % 3) { /* this reader wants to write what it read */
                const struct tl_acquire_opts up = {.deadline_ms = 30000};
                st = tl_upgrade(doc, &up);
                if (st == TL_OK) {
                    atomic_fetch_add(&sh->upgrades, 1);
                    write_document(sh);
                } else if (st == TL_EDEADLK) {
                    /* Another reader upgrades too: give way, then write as a writer. */
                    atomic_fetch_add(&sh->deadlocks, 1);
                    if ((st = tl_release(doc, NULL)) != TL_OK)
                        fail(sh, m, "release after the deadlock", st);
                    tl_lock_free(doc);
                    const struct tl_acquire_opts x = {.deadline_ms = 30000};
                    if ((st = tl_acquire(m, "document", &x, &doc)) != TL_OK) {
                        fail(sh, m, "document, exclusive", st);
                        break;
                    }
                    write_document(sh);
                } else {
                    fail(sh, m, "upgrade", st);
                }
            }
        }
        if ((st = tl_release(doc, NULL)) != TL_OK)
            fail(sh, m, "release the document", st);
        tl_lock_free(doc);
        render(sh, m);
    }
    tl_manager_free(m);
    return NULL;
}

int main(int argc, char **argv)
{
    struct shared sh = {0};
    char dir[] = "/tmp/tasklock-rw-XXXXXX", url[128] = "";
    struct worker ws[NTHREADS];

    if (argc > 1) {
        sh.store_url = argv[1];
    } else {
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        (void)snprintf(url, sizeof(url), "sqlite:%s/locks.db", dir);
        sh.store_url = url;
    }
    for (int i = 0; i < NTHREADS; i++) {
        ws[i] = (struct worker){.sh = &sh, .id = i};
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(ws[i].thread, NULL);
    if (argc <= 1) { /* the database and SQLite's files beside it */
        static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
            char path[160];
            (void)snprintf(path, sizeof(path), "%s/locks.db%s", dir, suffixes[i]);
            (void)unlink(path);
        }
        (void)rmdir(dir);
    }

    printf("writes: %d (the document counts %d), upgrades: %d, deadlocks caught: %d\n",
           atomic_load(&sh.writes), sh.document, atomic_load(&sh.upgrades),
           atomic_load(&sh.deadlocks));
    printf("most readers at once: %d; most in the semaphore of 2: %d\n",
           atomic_load(&sh.max_readers), atomic_load(&sh.max_rendering));
    if (atomic_load(&sh.failed))
        return 1;
    if (atomic_load(&sh.broken) || sh.document != atomic_load(&sh.writes)) {
        fprintf(stderr, "a writer overlapped someone, or the semaphore let in more than 2\n");
        return 1;
    }
    return 0;
}
