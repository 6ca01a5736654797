/*
 * test_oom.c -- every allocation of the library can fail. The link wraps malloc, calloc and
 * realloc of the library's objects (tests/tests.cmake); this test fails the Nth call, for every
 * N that a scenario reaches, and checks that each call then either succeeds or reports
 * TL_ENOMEM, that nothing crashes or leaks (ASan build), and that a failed acquire never leaves
 * a lock held that no handle owns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_test.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static atomic_long countdown; /* fail when it reaches 0; negative: never */
static atomic_long failures;

static bool should_fail(void)
{
    long left = atomic_fetch_sub(&countdown, 1);

    if (left == 1) {
        atomic_fetch_add(&failures, 1);
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

static void fail_nth(long n)
{
    atomic_store(&failures, 0);
    atomic_store(&countdown, n);
}

static void no_faults(void)
{
    atomic_store(&countdown, -1);
}

static bool ok_or_nomem(tl_status st)
{
    return st == TL_OK || st == TL_ENOMEM;
}

/* Everything a program does with the library, tolerating out-of-memory at every step. */
static void scenario(const char *url)
{
    tl_manager *a = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "oom-a"});
    tl_manager *b = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "oom-b"});
    tl_lock *la = NULL, *lb = NULL;

    if (a == NULL || b == NULL)
        goto out;
    assert_true(ok_or_nomem(tl_connect(a)));

    tl_status st =
        tl_acquire(a, "oom-key", &(struct tl_acquire_opts){.task_info = "{\"x\":[1,2]}"}, &la);
    assert_true(ok_or_nomem(st));
    if (st == TL_OK) {
        char *md = tl_lock_metadata(la);
        tl_free(md);
        assert_true(ok_or_nomem(tl_renew(la)));
    }

    struct tl_info *info = NULL;
    assert_true(ok_or_nomem(tl_inspect(b, "oom-key", &info)));
    tl_info_free(info);

    struct tl_info **infos = NULL;
    size_t n = 0;
    assert_true(ok_or_nomem(tl_list(b, &infos, &n)));
    tl_info_array_free(infos, n);

    struct tl_event **ev = NULL;
    assert_true(ok_or_nomem(tl_history(b, NULL, 10, &ev, &n)));
    tl_event_array_free(ev, n);

    st = tl_acquire(b, "oom-key", &(struct tl_acquire_opts){.strategy = TL_FORCE_ACQUIRE}, &lb);
    assert_true(ok_or_nomem(st));
    if (lb != NULL) {
        st = tl_release(lb, "summary");
        assert_true(ok_or_nomem(st));
    }
    if (la != NULL)
        (void)tl_release(la, NULL); /* lost to b, or still ours if b's force failed */

out:
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* After a scenario, with allocations working again: nobody holds the key. */
static void assert_key_free(const char *url)
{
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "check"});
    struct tl_info *info = NULL;

    assert_non_null(m);
    assert_int_equal(tl_inspect(m, "oom-key", &info), TL_OK);
    if (info != NULL) {
        /* Only a lock whose release was refused for lack of memory may remain; free it. */
        struct tl_lock *l = NULL;
        assert_int_equal(
            tl_acquire(m, "oom-key", &(struct tl_acquire_opts){.strategy = TL_FORCE_ACQUIRE}, &l),
            TL_OK);
        assert_int_equal(tl_release(l, NULL), TL_OK);
        tl_lock_free(l);
        tl_info_free(info);
    }
    tl_manager_free(m);
}

static void run_every_failure_point(const char *url)
{
    long n;

    for (n = 1; n < 100000; n++) {
        fail_nth(n);
        scenario(url);
        bool injected = atomic_load(&failures) > 0;
        no_faults();
        assert_key_free(url);
        if (!injected)
            break; /* the scenario made fewer than n allocations: all points covered */
    }
    assert_true(n > 20); /* the scenario really allocates */
    print_message("%s: %ld failure points\n", url, n - 1);
}

static void memory_store_survives_every_failed_allocation(void **state)
{
    (void)state;
    run_every_failure_point("memory:oom");
}

static void sqlite_store_survives_every_failed_allocation(void **state)
{
    char *dir = tl_test_mkdtemp();
    char url[600];

    (void)state;
    assert_non_null(dir);
    (void)snprintf(url, sizeof(url), "sqlite:%s/oom.db", dir);
    run_every_failure_point(url);
    tl_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_store_survives_every_failed_allocation),
        cmocka_unit_test(sqlite_store_survives_every_failed_allocation),
    };

    no_faults();
    return cmocka_run_group_tests_name("oom", tests, NULL, NULL);
}
