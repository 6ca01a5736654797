/*
 * basic.c -- the smallest complete use of tasklock: acquire a task's lock, work while the
 * library heartbeats it, release it.
 *
 *   example_basic [STORE_URL]
 *
 * Without an argument the lock lives in a SQLite file in a fresh temporary directory, which the
 * program removes at the end. Exits 0 on success, 1 on any error (with tl_errmsg()).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tasklock.h"

/* A temporary directory for the SQLite file: "<dir>/locks.db". */
struct tmp_store {
    char dir[64];
    char url[128];
};

static int tmp_store_make(struct tmp_store *t)
{
    const char *base = getenv("TMPDIR"); /* NOLINT(concurrency-mt-unsafe): before any thread */

    if (base == NULL || base[0] == '\0' || strlen(base) > 40)
        base = "/tmp";
    (void)snprintf(t->dir, sizeof(t->dir), "%s/tl-basic-XXXXXX", base);
    if (mkdtemp(t->dir) == NULL)
        return -1;
    (void)snprintf(t->url, sizeof(t->url), "sqlite:%s/locks.db", t->dir);
    return 0;
}

/* Removes the database, its WAL and shared-memory files, then the directory. */
static void tmp_store_remove(const struct tmp_store *t)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char path[96];

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/locks.db%s", t->dir, suffixes[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            perror(path);
    }
    if (rmdir(t->dir) != 0)
        perror(t->dir);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The work done under the lock. A real worker would pass `token` to whatever it writes to
 * (see fencing.c); here we only pretend to work. */
static int do_work(const char *key, uint64_t token)
{
    printf("working on %s with fencing token %llu\n", key, (unsigned long long)token);
    for (int step = 1; step <= 3; step++) {
        sleep_ms(20);
        printf("  step %d of 3 done\n", step);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct tmp_store tmp = {0};
    const char *url = argc > 1 ? argv[1] : NULL;
    int rc = 1;

    if (url == NULL) {
        if (tmp_store_make(&tmp) != 0) {
            perror("mkdtemp");
            return 1;
        }
        url = tmp.url;
    }

    /* All-zero options are the defaults; here we name the store and this worker. The worker id
     * is who holds the lock: without one it is "USER@HOST". */
    const struct tl_options opts = {
        .store_url = url,
        .worker_id = "basic-example",
    };
    tl_manager *m = tl_manager_new(&opts);
    if (m == NULL) { /* tl_manager_new fails only when out of memory */
        fprintf(stderr, "example_basic: out of memory\n");
        goto out_remove;
    }

    /* Connecting is optional (every call connects on demand), but doing it first separates
     * "the store is unreachable or misconfigured" from "the task is taken". */
    tl_status st = tl_connect(m);
    if (st != TL_OK) {
        fprintf(stderr, "example_basic: connect: %s: %s\n", tl_strerror(st), tl_errmsg(m));
        goto out_free_manager;
    }

    /* FAIL_FAST: if another worker has this task, do not wait for it. task_info is any JSON
     * object; it is stored with the lock for whoever inspects it. */
    const struct tl_acquire_opts aopts = {
        .strategy = TL_FAIL_FAST,
        .task_info = "{\"job\":\"nightly-report\",\"attempt\":1}",
    };
    tl_lock *lock = NULL;
    st = tl_acquire(m, "nightly-report", &aopts, &lock);
    if (st == TL_EBUSY) {
        /* Not an error of ours: someone else is running the task. */
        fprintf(stderr, "example_basic: %s\n", tl_errmsg(m));
        goto out_free_manager;
    }
    if (st != TL_OK) {
        fprintf(stderr, "example_basic: acquire: %s: %s\n", tl_strerror(st), tl_errmsg(m));
        goto out_free_manager;
    }
    printf("acquired %s, token %llu\n", tl_lock_key(lock), (unsigned long long)tl_lock_token(lock));

    char *meta = tl_lock_metadata(lock); /* ours to free, with tl_free() */
    if (meta != NULL)
        printf("metadata: %s\n", meta);
    tl_free(meta);

    int work_failed = do_work(tl_lock_key(lock), tl_lock_token(lock));

    /* Release: the summary goes into the audit trail. TL_ENOTOWNER here would mean the lock
     * was taken from us while we worked (see lost_lock.c). */
    st = tl_release(lock, work_failed ? "failed" : "done");
    if (st != TL_OK) {
        fprintf(stderr, "example_basic: release: %s: %s\n", tl_strerror(st), tl_errmsg(m));
        tl_lock_free(lock);
        goto out_free_manager;
    }
    printf("released %s\n", tl_lock_key(lock));
    tl_lock_free(lock); /* the handle outlives the release until freed */
    rc = work_failed;

out_free_manager:
    tl_manager_free(m);
out_remove:
    if (tmp.dir[0] != '\0')
        tmp_store_remove(&tmp);
    return rc;
}
