/*
 * conformance_util.c -- helpers of the conformance suite's parts (conformance_util.h): each
 * was written twice, in the shared holders' part and in the conversions' part, and the live
 * count of a line a third time, in the line's part.
 */
#include "conformance_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manager.h"
#include "tasklock.h"
#include "tl_test.h"

tl_manager *tl__conformance_real_mgr(const struct tl_conformance *c, const char *node_id,
                                     const char *worker)
{
    const struct tl_options o = {
        .store_url = c->url,
        .worker_id = worker,
        .node_id = node_id,
        .lock_timeout_ms = TL_CONFORMANCE_LONG_TIMEOUT_MS,
        .backoff_initial_ms = 10,
        .backoff_max_ms = 50,
    };
    tl_manager *m = tl_manager_new(&o);

    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect %s: %s", c->name, tl_errmsg(m));
    return m;
}

tl_status tl__conformance_try(tl_manager *m, const char *k, tl_mode mode, uint32_t slots,
                              tl_strategy strategy, tl_lock **out)
{
    const struct tl_acquire_opts o = {
        .strategy = strategy, .retries = TL_NO_RETRIES, .mode = mode, .slots = slots};

    return tl_acquire(m, k, &o, out);
}

tl_lock *tl__conformance_must(tl_manager *m, const char *k, tl_mode mode, uint32_t slots)
{
    tl_lock *l = NULL;
    tl_status st = tl__conformance_try(m, k, mode, slots, TL_FAIL_FAST, &l);

    if (st != TL_OK)
        fail_msg("%s acquire of %s by %s: %s: %s", mode == TL_SHARED ? "shared" : "exclusive", k,
                 tl_manager_worker_id(m), tl_strerror(st), tl_errmsg(m));
    return l;
}

void tl__conformance_must_release(tl_lock *l)
{
    if (tl_release(l, NULL) != TL_OK)
        fail_msg("release of %s: %s", tl_lock_key(l), tl_errmsg(l->m));
    tl_lock_free(l);
}

size_t tl__conformance_live_waiters(tl_manager *m, const char *k, int32_t *head_priority)
{
    struct tl_waiter **ws = NULL;
    size_t n = 0, live = 0;

    if (tl_waiters(m, k, &ws, &n) != TL_OK)
        fail_msg("waiters of %s: %s", k, tl_errmsg(m));
    for (size_t i = 0; i < n; i++) {
        if (ws[i]->dead)
            continue;
        if (live == 0 && head_priority != NULL)
            *head_priority = ws[i]->priority;
        live++;
    }
    tl_waiter_array_free(ws, n);
    return live;
}

bool tl__conformance_line_has(void *arg)
{
    struct tl_conformance_line_probe *p = arg;

    return tl__conformance_live_waiters(p->m, p->key, NULL) == p->live;
}

static bool flag_set(void *arg)
{
    return atomic_load((atomic_int *)arg) != 0;
}

static void *job_main(void *arg)
{
    struct tl_conformance_job *j = arg;
    const struct tl_acquire_opts o = {
        .strategy = TL_RETRY, .deadline_ms = TL_CONFORMANCE_EVENT_LIMIT_MS, .mode = j->mode};

    if (j->upgrade)
        j->st = tl_upgrade(j->lock, &o);
    else
        j->st = tl_acquire(j->m, j->key, &o, &j->lock);
    if (j->st != TL_OK)
        (void)snprintf(j->err, sizeof(j->err), "%s", tl_errmsg(j->m));
    atomic_store(&j->done, 1);
    if (!j->hold || j->st != TL_OK)
        return NULL;
    if (!tl_test_poll(flag_set, &j->release, 2, TL_CONFORMANCE_EVENT_LIMIT_MS * 2))
        (void)snprintf(j->err, sizeof(j->err), "never told to release");
    if (tl_release(j->lock, NULL) != TL_OK)
        (void)snprintf(j->err, sizeof(j->err), "release: %s", tl_errmsg(j->m));
    return NULL;
}

void tl__conformance_job_start(struct tl_conformance_job *j, tl_manager *observer, const char *k,
                               size_t place)
{
    if (j->key[0] == '\0')
        (void)snprintf(j->key, sizeof(j->key), "%s", k);
    assert_int_equal(pthread_create(&j->thread, NULL, job_main, j), 0);
    struct tl_conformance_line_probe p = {.m = observer, .key = k, .live = place};
    if (!tl_test_poll(tl__conformance_line_has, &p, 5, TL_CONFORMANCE_EVENT_LIMIT_MS))
        fail_msg("%s never stood in line for %s as number %zu (done: %d, %s)",
                 tl_manager_worker_id(j->m), k, place, atomic_load(&j->done), j->err);
}

void tl__conformance_job_await(struct tl_conformance_job *j)
{
    if (!tl_test_poll(flag_set, &j->done, 2, TL_CONFORMANCE_EVENT_LIMIT_MS))
        fail_msg("%s never got %s", tl_manager_worker_id(j->m), j->key);
    if (j->st != TL_OK)
        fail_msg("%s: %s: %s", tl_manager_worker_id(j->m), tl_strerror(j->st), j->err);
}
