/*
 * test_sqlite_open.c -- many threads opening the same new SQLite file at once all succeed (the
 * switch to WAL answers SQLITE_BUSY without the busy handler; the store must retry it).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_test.h"

enum { THREADS = 8, ROUNDS = 40 };

struct opener {
    pthread_t thread;
    pthread_barrier_t *start;
    const char *url;
    tl_status st;
    char msg[256];
};

static void *open_it(void *arg)
{
    struct opener *o = arg;
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = o->url});

    (void)pthread_barrier_wait(o->start);
    o->st = m ? tl_connect(m) : TL_ENOMEM;
    (void)snprintf(o->msg, sizeof(o->msg), "%s", tl_errmsg(m));
    tl_manager_free(m);
    return NULL;
}

static void threads_opening_a_new_file_at_once_all_succeed(void **state)
{
    char *dir = tl_test_mkdtemp();
    struct opener o[THREADS];
    pthread_barrier_t start;

    (void)state;
    assert_non_null(dir);
    for (int round = 0; round < ROUNDS; round++) {
        char url[600];

        (void)snprintf(url, sizeof(url), "sqlite:%s/fresh-%d.db", dir, round);
        pthread_barrier_init(&start, NULL, THREADS);
        for (int i = 0; i < THREADS; i++) {
            o[i] = (struct opener){.start = &start, .url = url};
            assert_int_equal(pthread_create(&o[i].thread, NULL, open_it, &o[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(o[i].thread, NULL);
            if (o[i].st != TL_OK)
                fail_msg("round %d, thread %d: %s: %s", round, i, tl_strerror(o[i].st), o[i].msg);
        }
        pthread_barrier_destroy(&start);
    }
    tl_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(threads_opening_a_new_file_at_once_all_succeed),
    };

    return cmocka_run_group_tests_name("sqlite_open", tests, NULL, NULL);
}
