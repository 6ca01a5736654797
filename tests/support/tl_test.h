/*
 * tl_test.h -- helpers shared by the tests: a fake clock, temporary directories, environment.
 * Include after the four standard headers and <cmocka.h>.
 */
#ifndef TL_TEST_H
#define TL_TEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manager.h"
#include "tasklock.h"

/*
 * A clock that moves only when told to, or when the code under test sleeps (a sleep advances
 * both clocks by the time asked and records it). Install with tl_fake_clock_install() before any
 * other call on the manager.
 */
struct tl_fake_clock {
    /* Atomic: a heartbeat thread may read the clock while the test moves it. */
    _Atomic int64_t now_ms;  /* wall clock; starts at 2026-01-01T00:00:00Z */
    _Atomic int64_t mono_ms; /* monotonic; starts at 1000000 */
    uint32_t random;         /* what random() returns: 0 gives the smallest jitter factor (0.75) */
    uint32_t slept[256];     /* sleeps in order */
    size_t nslept;
    uint64_t slept_total; /* sum of all sleeps, also beyond the 256 recorded */
    /* Called after each sleep has moved the clock, with the number of sleeps so far. */
    void (*on_sleep)(void *arg, size_t nslept);
    void *on_sleep_arg;
};
void tl_fake_clock_init(struct tl_fake_clock *fc);
void tl_fake_clock_install(tl_manager *m, struct tl_fake_clock *fc);
void tl_fake_clock_advance(struct tl_fake_clock *fc, int64_t ms);

/* A new empty directory under $TMPDIR (or /tmp); the caller removes it with tl_test_rmtree(). */
char *tl_test_mkdtemp(void);
void tl_test_rmtree(const char *path);

/* getenv(name) if set and non-empty, else NULL. */
const char *tl_test_env(const char *name);

/* A port on 127.0.0.1 for a server a test starts itself: free now, and below the kernel's range
 * of ephemeral ports (net.ipv4.ip_local_port_range), where no outgoing connection can take it
 * while the server is down between a kill and a restart on the same port. 0 when none is
 * found. tests/harness/ports.sh picks the servers' ports of the harness the same way. */
int tl_test_server_port(void);

/* Polls `cond(arg)` every `step_ms` until it is true or `limit_ms` passed; returns the last
 * answer. For waiting on real time with a bound (a server clock, a heartbeat thread). */
bool tl_test_poll(bool (*cond)(void *arg), void *arg, uint32_t step_ms, uint32_t limit_ms);

/*
 * Counts lost-lock callbacks: tl_options.on_lost = tl_test_on_lost, .lost_ud = &seen, with
 * `struct tl_test_lost seen = {.mu = PTHREAD_MUTEX_INITIALIZER};`. The callback runs on the
 * heartbeat thread: read the fields under `mu`, or poll with tl_test_lost_fired().
 */
struct tl_test_lost {
    pthread_mutex_t mu;
    int calls;
    uint64_t token; /* the token of the lock last reported lost */
};
void tl_test_on_lost(void *ud, tl_lock *l);
/* Whether the callback has fired yet (a tl_test_poll() condition; arg: struct tl_test_lost). */
bool tl_test_lost_fired(void *arg);

#endif /* TL_TEST_H */
