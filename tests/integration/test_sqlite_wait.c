/*
 * test_sqlite_wait.c -- a waiter on a held SQLite key learns of the release while it backs off:
 * with a 10 s backoff it still gets the key soon after the holder lets go.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_test.h"

struct holder {
    const char *url;
    tl_lock *lock;
    tl_manager *m;
};

static void *release_soon(void *arg)
{
    struct holder *h = arg;

    tl__real_sleep_ms(200); /* the waiter is backing off by now */
    (void)tl_release(h->lock, NULL);
    return NULL;
}

static void a_waiter_wakes_on_release_not_after_its_backoff(void **state)
{
    char *dir = tl_test_mkdtemp();
    char url[600];
    pthread_t t;

    (void)state;
    assert_non_null(dir);
    (void)snprintf(url, sizeof(url), "sqlite:%s/wait.db", dir);
    struct holder h = {.url = url};
    h.m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "holder"});
    assert_int_equal(tl_acquire(h.m, "k", NULL, &h.lock), TL_OK);

    tl_manager *w = tl_manager_new(
        &(struct tl_options){.store_url = url, .worker_id = "waiter", .backoff_initial_ms = 10000});
    tl_lock *l = NULL;
    assert_int_equal(pthread_create(&t, NULL, release_soon, &h), 0);
    int64_t start = tl__real_mono_ms();
    assert_int_equal(tl_acquire(w, "k", NULL, &l), TL_OK);
    int64_t took = tl__real_mono_ms() - start;
    pthread_join(t, NULL);

    struct tl_metrics mt;
    tl_metrics_get(w, &mt, sizeof(mt));
    assert_int_equal(mt.total_retries, 1); /* one wait, cut short by the release */
    /* Without the wake-up the wait alone is at least 7.5 s (10 s, jitter -25 %). */
    if (took >= 5000)
        fail_msg("the waiter took %lld ms: it slept out its backoff", (long long)took);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_lock_free(h.lock);
    tl_manager_free(w);
    tl_manager_free(h.m);
    tl_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_waiter_wakes_on_release_not_after_its_backoff),
    };

    return cmocka_run_group_tests_name("sqlite_wait", tests, NULL, NULL);
}
