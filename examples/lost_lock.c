/*
 * lost_lock.c -- noticing that a lock was taken away while working, and stopping.
 *
 *   example_lost_lock
 *
 * A worker holds a lock with a short heartbeat and works in small steps. An administrator (a
 * second manager, on another thread) takes the lock with TL_FORCE_ACQUIRE. The worker's next
 * heartbeat finds the lock gone, and the lost callback runs on the heartbeat thread: it sets an
 * atomic flag (for loops that compute) and writes a byte to a pipe (for loops that wait in
 * poll/select/epoll). The worker notices, stops without committing its result, and exits
 * cleanly. Runs on the in-process memory store.
 *
 * Exits 0 when the loss was noticed and reported as described.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "tasklock.h"

#define STORE "memory:lost-lock"
#define KEY   "index-rebuild"

/* What the lost callback shares with the worker's main loop. */
struct lost_signal {
    atomic_bool lost;
    atomic_uint_fast64_t token; /* the token of the lock that was lost */
    int pipe_w;                 /* non-blocking write end of the pipe */
};

/*
 * The lost callback. It runs on the manager's heartbeat thread, so it does as little as
 * possible: it only flags the loss. Inside it, only tl_lock_key, tl_lock_token and
 * tl_lock_is_lost may be used on the lock; never release or free it here.
 */
static void on_lost(void *ud, tl_lock *lock)
{
    struct lost_signal *sig = ud;
    const char byte = 'L';

    atomic_store(&sig->token, tl_lock_token(lock));
    atomic_store(&sig->lost, true);
    ssize_t n = write(sig->pipe_w, &byte, 1); /* a full pipe already says "lost" */
    (void)n;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct admin {
    tl_manager *m;
    tl_lock *lock;
    tl_status st;
};

/* The administrator: lets the worker get going, then forces the lock away. Its manager is
 * used by this thread only until the main thread joins it. */
static void *admin_main(void *arg)
{
    struct admin *ad = arg;

    sleep_ms(150);
    ad->st =
        tl_acquire(ad->m, KEY, &(struct tl_acquire_opts){.strategy = TL_FORCE_ACQUIRE}, &ad->lock);
    return NULL;
}

int main(void)
{
    struct lost_signal sig = {.pipe_w = -1};
    struct admin ad = {0};
    tl_manager *m = NULL;
    tl_lock *lock = NULL;
    pthread_t admin_thread;
    bool admin_started = false;
    int fds[2] = {-1, -1};
    int rc = 1;

    atomic_init(&sig.lost, false);
    atomic_init(&sig.token, 0);
    if (pipe(fds) != 0 || fcntl(fds[1], F_SETFL, O_NONBLOCK) != 0) {
        perror("pipe");
        goto out;
    }
    sig.pipe_w = fds[1];

    /* The worker: heartbeat every 50 ms, so that a loss is noticed within about 50 ms. */
    const struct tl_options wopts = {
        .store_url = STORE,
        .worker_id = "indexer-1",
        .heartbeat_ms = 50,
        .lock_timeout_ms = 2000,
        .on_lost = on_lost,
        .lost_ud = &sig,
    };
    m = tl_manager_new(&wopts);
    ad.m = tl_manager_new(&(struct tl_options){.store_url = STORE, .worker_id = "admin"});
    if (m == NULL || ad.m == NULL) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    if (tl_acquire(m, KEY, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &lock) != TL_OK) {
        fprintf(stderr, "acquire: %s\n", tl_errmsg(m));
        goto out;
    }
    printf("indexer-1 holds %s with token %llu\n", KEY, (unsigned long long)tl_lock_token(lock));

    if (pthread_create(&admin_thread, NULL, admin_main, &ad) != 0) {
        fprintf(stderr, "cannot start the admin thread\n");
        goto out;
    }
    admin_started = true;

    /* The work: small steps. Between steps, wait up to 20 ms on the pipe, so that a loss
     * interrupts the wait; a loop without waits would test `sig.lost` instead. The loop is
     * bounded: if the loss were never noticed, the example fails rather than hangs. */
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    int64_t give_up = now_ms() + 10000;
    int steps = 0;
    while (!atomic_load(&sig.lost) && now_ms() < give_up) {
        steps++; /* one step of work, kept in memory until the end */
        if (poll(&pfd, 1, 20) > 0)
            break;
    }
    if (!atomic_load(&sig.lost)) {
        fprintf(stderr, "the loss was not noticed within 10 s\n");
        goto out;
    }
    char byte;
    ssize_t n = read(fds[0], &byte, 1);
    (void)n;

    /* Stop: do not commit the work, since another worker may be doing the same now. */
    printf("lost the lock after %d steps (callback for token %llu); stopping without "
           "committing\n",
           steps, (unsigned long long)atomic_load(&sig.token));
    printf("tl_lock_is_lost: %s\n", tl_lock_is_lost(lock) ? "true" : "false");

    /* A release is refused: the lock is someone else's now. */
    tl_status st = tl_release(lock, "abandoned");
    printf("tl_release: %s (%s)\n", tl_strerror(st), tl_errmsg(m));

    struct tl_metrics mt;
    tl_metrics_get(m, &mt, sizeof(mt));
    printf("metrics: %llu lock lost, %llu held, %llu heartbeats sent\n",
           (unsigned long long)mt.locks_lost, (unsigned long long)mt.locks_held,
           (unsigned long long)mt.heartbeats_sent);

    (void)pthread_join(admin_thread, NULL);
    admin_started = false;
    if (ad.st != TL_OK) {
        fprintf(stderr, "admin: %s\n", tl_errmsg(ad.m));
        goto out;
    }
    struct tl_info *info = NULL;
    if (tl_inspect(m, KEY, &info) == TL_OK && info != NULL)
        printf("%s is now held by %s with token %llu\n", KEY, info->worker_id,
               (unsigned long long)info->token);

    if (tl_lock_is_lost(lock) && st == TL_ENOTOWNER && mt.locks_lost == 1 && info != NULL &&
        info->token == tl_lock_token(ad.lock) && tl_lock_token(ad.lock) > tl_lock_token(lock))
        rc = 0;
    tl_info_free(info);
    if (tl_release(ad.lock, "index rebuilt by the admin") != TL_OK) {
        fprintf(stderr, "admin release: %s\n", tl_errmsg(ad.m));
        rc = 1;
    }

out:
    if (admin_started)
        (void)pthread_join(admin_thread, NULL);
    tl_lock_free(lock);
    tl_lock_free(ad.lock);
    tl_manager_free(m); /* stops the heartbeat thread: no callback runs after this */
    tl_manager_free(ad.m);
    if (fds[0] >= 0)
        (void)close(fds[0]);
    if (fds[1] >= 0)
        (void)close(fds[1]);
    printf("%s\n", rc == 0 ? "stopped cleanly after losing the lock" : "FAILED");
    return rc;
}
