/*
 * test_sqlite_contention.c -- 8 processes x 500 contended cycles on one key of one SQLite file.
 * Each critical section registers itself in shared memory on entry and leaves on exit, so the
 * test sees any overlap; it also checks that every holder's token is larger than the last.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_test.h"

enum { WORKERS = 8, CYCLES = 500 };

struct shared {
    atomic_int occupant;      /* worker id + 1 inside the critical section, 0 when empty */
    atomic_ullong last_token; /* the last token seen inside */
    atomic_int overlaps;
    atomic_int token_regressions;
    atomic_int failures;
    atomic_int cycles;
};

static void worker(struct shared *sh, const char *url, int id)
{
    char name[32];

    (void)snprintf(name, sizeof(name), "worker-%d", id);
    tl_manager *m = tl_manager_new(&(struct tl_options){
        .store_url = url, .worker_id = name, .backoff_initial_ms = 1, .backoff_max_ms = 4});
    if (m == NULL)
        _exit(2);
    for (int i = 0; i < CYCLES; i++) {
        tl_lock *l = NULL;
        tl_status st = tl_acquire(m, "hot", &(struct tl_acquire_opts){.deadline_ms = 120000}, &l);
        if (st != TL_OK) {
            fprintf(stderr, "%s: acquire: %s\n", name, tl_errmsg(m));
            atomic_fetch_add(&sh->failures, 1);
            continue;
        }

        int expected = 0;
        if (!atomic_compare_exchange_strong(&sh->occupant, &expected, id + 1))
            atomic_fetch_add(&sh->overlaps, 1);
        unsigned long long last = atomic_exchange(&sh->last_token, tl_lock_token(l));
        if (tl_lock_token(l) <= last)
            atomic_fetch_add(&sh->token_regressions, 1);
        /* Some work inside, so that an overlap would have room to show. */
        nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
        expected = id + 1;
        if (!atomic_compare_exchange_strong(&sh->occupant, &expected, 0))
            atomic_fetch_add(&sh->overlaps, 1);
        atomic_fetch_add(&sh->cycles, 1);

        if (tl_release(l, NULL) != TL_OK) {
            fprintf(stderr, "%s: release: %s\n", name, tl_errmsg(m));
            atomic_fetch_add(&sh->failures, 1);
        }
        tl_lock_free(l);
    }
    tl_manager_free(m);
    _exit(0);
}

static void eight_processes_never_overlap(void **state)
{
    char *dir = tl_test_mkdtemp();
    char url[600];
    pid_t pids[WORKERS];

    (void)state;
    assert_non_null(dir);
    (void)snprintf(url, sizeof(url), "sqlite:%s/contention.db", dir);
    /* A shared file mapping (MAP_ANONYMOUS is not POSIX). */
    char shm[620];
    (void)snprintf(shm, sizeof(shm), "%s/shared", dir);
    int fd = open(shm, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, sizeof(struct shared)), 0);
    struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(sh != MAP_FAILED);
    close(fd);
    atomic_init(&sh->occupant, 0);
    atomic_init(&sh->last_token, 0);

    for (int i = 0; i < WORKERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            worker(sh, url, i);
    }
    for (int i = 0; i < WORKERS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    print_message("%d cycles, %d overlaps, %d token regressions, %d failures\n",
                  atomic_load(&sh->cycles), atomic_load(&sh->overlaps),
                  atomic_load(&sh->token_regressions), atomic_load(&sh->failures));
    assert_int_equal(atomic_load(&sh->overlaps), 0);
    assert_int_equal(atomic_load(&sh->token_regressions), 0);
    assert_int_equal(atomic_load(&sh->failures), 0);
    assert_int_equal(atomic_load(&sh->cycles), WORKERS * CYCLES);

    /* The audit trail saw every one of them. */
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url});
    struct tl_event **ev = NULL;
    size_t n = 0, acquired = 0, released = 0;
    assert_int_equal(tl_history(m, "hot", WORKERS * CYCLES * 2, &ev, &n), TL_OK);
    for (size_t i = 0; i < n; i++) {
        acquired += ev[i]->kind == TL_EVENT_ACQUIRED;
        released += ev[i]->kind == TL_EVENT_RELEASED;
    }
    assert_int_equal(acquired, WORKERS * CYCLES);
    assert_int_equal(released, WORKERS * CYCLES);
    tl_event_array_free(ev, n);
    tl_manager_free(m);

    munmap(sh, sizeof(*sh));
    tl_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eight_processes_never_overlap),
    };

    return cmocka_run_group_tests_name("sqlite_contention", tests, NULL, NULL);
}
