/*
 * conformance.c -- the store contract (DESIGN.md section 3), checked against any store.
 * See conformance.h for what it covers and how a store's test runs it.
 */
#include "conformance.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager.h"
#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

static const struct tl_conformance *conf; /* the store under test, for the whole run */
static struct tl_fake_clock fclock;

/* ---- helpers ---- */

const char *tl_conformance_key(const struct tl_conformance *c, int n, char buf[64])
{
    const char *fmt = c->key_format ? c->key_format : "conf-%d";
    const char *d = strstr(fmt, "%d");

    if (d == NULL)
        (void)snprintf(buf, 64, "%s%d", fmt, c->key_base + n);
    else
        (void)snprintf(buf, 64, "%.*s%d%s", (int)(d - fmt), fmt, c->key_base + n, d + 2);
    return buf;
}

static const char *key(int n, char buf[64])
{
    return tl_conformance_key(conf, n, buf);
}

static uint32_t short_timeout(void)
{
    return conf->short_timeout_ms ? conf->short_timeout_ms : 300;
}

/* A manager on the store under test. Fake-clock stores share one fake clock unless `real`. */
static tl_manager *mgr_full(const char *worker, uint32_t timeout_ms, uint32_t heartbeat_ms,
                            bool real, tl_lost_fn *on_lost, void *ud)
{
    const struct tl_options o = {
        .store_url = conf->url,
        .worker_id = worker,
        .node_id = "conformance-node",
        .lock_timeout_ms = timeout_ms,
        .heartbeat_ms = heartbeat_ms,
        .backoff_initial_ms = 10,
        .backoff_max_ms = 50,
        .on_lost = on_lost,
        .lost_ud = ud,
    };
    tl_manager *m = tl_manager_new(&o);

    assert_non_null(m);
    if (conf->fake_clock && !real)
        tl_fake_clock_install(m, &fclock);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect %s: %s", conf->name, tl_errmsg(m));
    return m;
}

static tl_manager *mgr(const char *worker, uint32_t timeout_ms)
{
    return mgr_full(worker, timeout_ms, 0, false, NULL, NULL);
}

static tl_lock *must_acquire(tl_manager *m, const char *k, tl_strategy strategy)
{
    const struct tl_acquire_opts o = {.strategy = strategy, .retries = TL_NO_RETRIES};
    tl_lock *l = NULL;
    tl_status st = tl_acquire(m, k, &o, &l);

    if (st != TL_OK)
        fail_msg("acquire %s by %s: %s: %s", k, tl_manager_worker_id(m), tl_strerror(st),
                 tl_errmsg(m));
    assert_non_null(l);
    return l;
}

static tl_status try_acquire(tl_manager *m, const char *k, tl_strategy strategy, tl_lock **out)
{
    const struct tl_acquire_opts o = {.strategy = strategy, .retries = TL_NO_RETRIES};

    return tl_acquire(m, k, &o, out);
}

struct stale_probe {
    tl_manager *m;
    const char *key;
};

static bool is_stale(void *arg)
{
    struct stale_probe *p = arg;
    struct tl_info *info = NULL;
    bool stale = tl_inspect(p->m, p->key, &info) == TL_OK && info != NULL && info->stale;

    tl_info_free(info);
    return stale;
}

/* Makes the holder of `k` (who no longer heartbeats) stale: moves the fake clock, or waits for
 * the store's clock to pass the lock timeout, polling with a bound. */
static void make_stale(tl_manager *observer, const char *k)
{
    struct stale_probe p = {.m = observer, .key = k};

    if (conf->fake_clock) {
        tl_fake_clock_advance(&fclock, short_timeout() + 1);
        assert_true(is_stale(&p));
        return;
    }
    if (conf->advance_store_clock != NULL) {
        /* Past the timeout by more than two seconds: a server that keeps whole seconds only,
         * and a store that judges with a second of margin on top of that. */
        conf->advance_store_clock(conf->clock_ud, short_timeout() + 2500);
        assert_true(is_stale(&p));
        return;
    }
    if (!tl_test_poll(is_stale, &p, 20, short_timeout() * 20 + 10000))
        fail_msg("%s: the lock never became stale", k);
}

tl_manager *tl__conformance_mgr(const char *worker, uint32_t timeout_ms)
{
    return mgr(worker, timeout_ms);
}

void tl__conformance_make_stale(tl_manager *observer, const char *k)
{
    make_stale(observer, k);
}

uint32_t tl__conformance_short_timeout(void)
{
    return short_timeout();
}

static struct tl_metrics metrics(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt;
}

/* ---- the contract ---- */

static void acquire_inspect_release_roundtrip(void **state)
{
    char kb[64];
    const char *k = key(0, kb);
    tl_manager *a = mgr("conf-a", 60000), *b = mgr("conf-b", 60000);
    const struct tl_acquire_opts o = {.retries = TL_NO_RETRIES,
                                      .task_info = "{\"job\":\"build\",\"n\":3}"};
    tl_lock *l = NULL;
    struct tl_info *info = NULL;

    (void)state;
    assert_int_equal(tl_inspect(b, k, &info), TL_OK);
    assert_null(info); /* free at the start */

    assert_int_equal(tl_acquire(a, k, &o, &l), TL_OK);
    assert_true(tl_lock_token(l) > 0);
    assert_string_equal(tl_lock_key(l), k);
    assert_false(tl_lock_is_lost(l));

    assert_int_equal(tl_inspect(b, k, &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->key, k);
    assert_string_equal(info->worker_id, "conf-a");
    assert_string_equal(info->node_id, "conformance-node");
    assert_int_equal(info->token, tl_lock_token(l));
    assert_int_equal(info->lock_timeout_ms, 60000);
    assert_false(info->stale);
    assert_true(info->claimed_at_ms > 0);
    assert_true(info->heartbeat_at_ms >= info->claimed_at_ms);
    assert_non_null(strstr(info->task_info, "\"job\":\"build\""));
    tl_info_free(info);

    char *md = tl_lock_metadata(l);
    assert_non_null(md);
    assert_non_null(strstr(md, "\"worker_id\":\"conf-a\""));
    assert_non_null(strstr(md, "\"task_info\":{"));
    tl_free(md);

    assert_int_equal(tl_release(l, "done"), TL_OK);
    assert_int_equal(tl_inspect(b, k, &info), TL_OK);
    assert_null(info);

    struct tl_metrics mt = metrics(a);
    assert_int_equal(mt.total_acquisitions, 1);
    assert_int_equal(mt.total_releases, 1);
    assert_int_equal(mt.locks_held, 0);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void held_key_is_held_for_everyone(void **state)
{
    char kb[64];
    const char *k = key(1, kb);
    tl_manager *a = mgr("conf-a", 60000), *b = mgr("conf-b", 60000);
    tl_manager *a2 = mgr("conf-a", 60000); /* same worker id, another process or thread */
    tl_lock *l = must_acquire(a, k, TL_RETRY), *other = NULL;

    (void)state;
    assert_int_equal(try_acquire(b, k, TL_FAIL_FAST, &other), TL_EBUSY);
    assert_null(other);
    assert_non_null(tl_last_holder(b));
    assert_string_equal(tl_last_holder(b)->worker_id, "conf-a");
    assert_int_equal(tl_last_holder(b)->token, tl_lock_token(l));
    assert_non_null(strstr(tl_errmsg(b), "conf-a"));

    assert_int_equal(try_acquire(a2, k, TL_RETRY, &other), TL_EBUSY);
    assert_int_equal(try_acquire(a2, k, TL_STEAL_STALE, &other), TL_EBUSY);
    assert_int_equal(metrics(b).total_conflicts, 1);
    assert_int_equal(metrics(b).failed_acquisitions, 1);

    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    l = must_acquire(b, k, TL_FAIL_FAST); /* free again: anyone may take it */
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(a2);
    tl_manager_free(b);
}

static void tokens_strictly_increase(void **state)
{
    char kb[64];
    const char *k = key(2, kb);
    tl_manager *a = mgr("conf-a", short_timeout()), *b = mgr("conf-b", short_timeout());
    uint64_t last = 0;

    (void)state;
    /* acquire/release, by turns */
    for (int i = 0; i < 4; i++) {
        tl_lock *l = must_acquire(i % 2 ? b : a, k, TL_FAIL_FAST);
        assert_true(tl_lock_token(l) > last);
        last = tl_lock_token(l);
        assert_int_equal(tl_release(l, NULL), TL_OK);
        tl_lock_free(l);
    }
    /* force over a live holder */
    tl_lock *la = must_acquire(a, k, TL_FAIL_FAST);
    assert_true(tl_lock_token(la) > last);
    last = tl_lock_token(la);
    tl_lock *lb = must_acquire(b, k, TL_FORCE_ACQUIRE);
    assert_true(tl_lock_token(lb) > last);
    last = tl_lock_token(lb);
    /* steal from a stale holder */
    tl__heartbeat_stop(b);
    make_stale(a, k);
    tl_lock *la2 = must_acquire(a, k, TL_STEAL_STALE);
    assert_true(tl_lock_token(la2) > last);
    assert_int_equal(tl_release(la2, NULL), TL_OK);

    tl_lock_free(la);
    tl_lock_free(lb);
    tl_lock_free(la2);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void steal_stale_wins_only_when_stale(void **state)
{
    char kb[64];
    const char *k = key(3, kb);
    tl_manager *a = mgr("conf-a", short_timeout()), *b = mgr("conf-b", short_timeout());
    tl_lock *la = must_acquire(a, k, TL_FAIL_FAST), *lb = NULL;

    (void)state;
    tl__heartbeat_stop(a); /* a crashed worker: its lock is no longer renewed */
    if (conf->fake_clock) {
        /* Fresh: not even steal-stale takes it. (With a real clock the lock may already be
         * stale by the time we ask, so this half is checked on fake-clock stores only.) */
        assert_int_equal(try_acquire(b, k, TL_STEAL_STALE, &lb), TL_EBUSY);
        assert_false(tl_last_holder(b)->stale);
    }
    make_stale(b, k);

    /* Stale, but RETRY and FAIL_FAST never steal. */
    assert_int_equal(try_acquire(b, k, TL_RETRY, &lb), TL_EBUSY);
    assert_true(tl_last_holder(b)->stale);
    assert_int_equal(try_acquire(b, k, TL_FAIL_FAST, &lb), TL_EBUSY);

    lb = must_acquire(b, k, TL_STEAL_STALE);
    assert_true(tl_lock_token(lb) > tl_lock_token(la));
    assert_int_equal(metrics(b).stale_locks_claimed, 1);

    /* The former holder learns it lost the lock, and cannot release the thief's. */
    assert_int_equal(tl_renew(la), TL_ELOST);
    assert_true(tl_lock_is_lost(la));
    assert_int_equal(metrics(a).locks_lost, 1);
    assert_int_equal(tl_release(la, NULL), TL_ENOTOWNER);

    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(a, k, &info), TL_OK);
    assert_non_null(info);
    assert_string_equal(info->worker_id, "conf-b");
    tl_info_free(info);

    assert_int_equal(tl_release(lb, NULL), TL_OK);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void force_always_wins(void **state)
{
    char kb[64];
    const char *k = key(4, kb);
    tl_manager *a = mgr("conf-a", 60000), *b = mgr("conf-b", 60000);
    tl_lock *la = must_acquire(a, k, TL_FAIL_FAST);
    tl_lock *lb = must_acquire(b, k, TL_FORCE_ACQUIRE);

    (void)state;
    assert_true(tl_lock_token(lb) > tl_lock_token(la));
    assert_int_equal(metrics(b).forced_acquisitions, 1);
    assert_int_equal(tl_renew(la), TL_ELOST);
    assert_int_equal(tl_renew(lb), TL_OK);
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* A record as a caller of the store would hold it. */
static struct tl_record held_as(const tl_lock *l, const char *worker, uint64_t token)
{
    struct tl_record r = {0};

    r.info = l->rec.info;
    r.opaque = l->rec.opaque;
    r.info.worker_id = (char *)worker;
    r.info.token = token;
    return r;
}

static void release_and_renew_check_owner_and_token(void **state)
{
    char kb[64];
    const char *k = key(5, kb);
    tl_manager *a = mgr("conf-a", 60000);
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST);
    struct tl_store *s = a->store;
    int64_t beat;

    (void)state;
    struct tl_record wrong_worker = held_as(l, "conf-b", tl_lock_token(l));
    struct tl_record wrong_token = held_as(l, "conf-a", tl_lock_token(l) + 1000);
    assert_int_equal(s->ops->release(s, &wrong_worker, NULL), TL_ENOTOWNER);
    assert_int_equal(s->ops->release(s, &wrong_token, NULL), TL_ENOTOWNER);
    assert_int_equal(s->ops->renew(s, &wrong_worker, 1, &beat), TL_ELOST);
    assert_int_equal(s->ops->renew(s, &wrong_token, 1, &beat), TL_ELOST);

    /* Still ours after all that. */
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(a, k, &info), TL_OK);
    assert_non_null(info);
    assert_int_equal(info->token, tl_lock_token(l));
    tl_info_free(info);
    assert_int_equal(tl_renew(l), TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(a);
}

static void release_is_safe_to_retry(void **state)
{
    char kb[64];
    const char *k = key(6, kb);
    tl_manager *a = mgr("conf-a", 60000), *b = mgr("conf-b", 60000);
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST);
    struct tl_store *s = a->store;

    (void)state;
    /* At the store: the owner's second release is not an error... */
    assert_int_equal(s->ops->release(s, &l->rec, NULL), TL_OK);
    assert_int_equal(s->ops->release(s, &l->rec, NULL), TL_OK);
    /* ...until someone else claims the key. */
    tl_lock *lb = must_acquire(b, k, TL_FAIL_FAST);
    assert_int_equal(s->ops->release(s, &l->rec, NULL), TL_ENOTOWNER);

    /* Through the handle: released twice is fine too. */
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    assert_int_equal(tl_renew(lb), TL_ENOTOWNER);
    tl_lock_free(l);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void renew_records_a_heartbeat(void **state)
{
    char kb[64];
    const char *k = key(7, kb);
    tl_manager *a = mgr("conf-a", short_timeout());
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST);
    struct tl_info *before = NULL, *after = NULL;

    (void)state;
    tl__heartbeat_stop(a);
    assert_int_equal(tl_inspect(a, k, &before), TL_OK);
    assert_non_null(before);
    if (conf->fake_clock) {
        /* Renewing just before the loss deadline keeps it fresh for another timeout. */
        uint32_t before_deadline = short_timeout() - tl__loss_margin(short_timeout()) - 1;
        tl_fake_clock_advance(&fclock, before_deadline);
        assert_int_equal(tl_renew(l), TL_OK);
        tl_fake_clock_advance(&fclock, before_deadline);
        assert_int_equal(tl_inspect(a, k, &after), TL_OK);
        assert_non_null(after);
        assert_false(after->stale);
        assert_true(after->heartbeat_at_ms > before->heartbeat_at_ms);
        assert_int_equal(metrics(a).heartbeats_sent, 1);
    } else {
        /* At the store, a stale lock is still ours until someone takes it. (The holder's
         * manager may have declared it lost by its own deadline: that is the holder's view.) */
        int64_t beat = 0;
        make_stale(a, k);
        assert_int_equal(a->store->ops->renew(a->store, &l->rec, 2, &beat), TL_OK);
        assert_int_equal(tl_inspect(a, k, &after), TL_OK);
        assert_non_null(after);
        assert_false(after->stale);
        assert_true(after->heartbeat_at_ms > before->heartbeat_at_ms);
    }
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_info_free(before);
    tl_info_free(after);
    tl_lock_free(l);
    tl_manager_free(a);
}

/* ---- racing ---- */

struct racer {
    pthread_t thread;
    tl_manager *m;
    pthread_barrier_t *start, *attempted, *released;
    int rounds;
    int wins[64];
};

static void *race_thread(void *arg)
{
    struct racer *r = arg;
    char kb[64];

    for (int round = 0; round < r->rounds; round++) {
        tl_lock *l = NULL;

        (void)pthread_barrier_wait(r->start);
        r->wins[round] = try_acquire(r->m, key(20 + round, kb), TL_FAIL_FAST, &l) == TL_OK;
        (void)pthread_barrier_wait(r->attempted);
        if (l != NULL) {
            (void)tl_release(l, NULL);
            tl_lock_free(l);
        }
        (void)pthread_barrier_wait(r->released);
    }
    return NULL;
}

static void threads_racing_for_a_key_one_wins(void **state)
{
    int n = conf->contenders ? conf->contenders : 8;
    int rounds = conf->rounds ? conf->rounds : 20;
    struct racer *r = calloc((size_t)n, sizeof(*r));
    pthread_barrier_t start, attempted, released;

    (void)state;
    assert_non_null(r);
    if (rounds > 64)
        rounds = 64;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    pthread_barrier_init(&attempted, NULL, (unsigned)n);
    pthread_barrier_init(&released, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        char worker[32];
        (void)snprintf(worker, sizeof(worker), "racer-%d", i);
        r[i].m = mgr_full(worker, 60000, 0, true, NULL, NULL);
        r[i].start = &start;
        r[i].attempted = &attempted;
        r[i].released = &released;
        r[i].rounds = rounds;
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&r[i].thread, NULL, race_thread, &r[i]), 0);
    for (int i = 0; i < n; i++)
        pthread_join(r[i].thread, NULL);

    for (int round = 0; round < rounds; round++) {
        int winners = 0;
        for (int i = 0; i < n; i++)
            winners += r[i].wins[round];
        if (winners != 1)
            fail_msg("round %d: %d winners among %d threads", round, winners, n);
    }
    for (int i = 0; i < n; i++)
        tl_manager_free(r[i].m);
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&attempted);
    pthread_barrier_destroy(&released);
    free(r);
}

/* A child process of the process race. Commands on `cmd`: 'g' = try round r, 'r' = release,
 * 'q' = quit. Answers on `res`: one byte per command ('W'/'L' for a try, 'd' for a release). */
static void race_child(int id, int cmd, int res)
{
    char worker[32], kb[64], c;
    tl_lock *l = NULL;
    int round = 0;

    (void)snprintf(worker, sizeof(worker), "proc-%d", id);
    const struct tl_options o = {
        .store_url = conf->url, .worker_id = worker, .lock_timeout_ms = 60000};
    tl_manager *m = tl_manager_new(&o);
    if (m == NULL || tl_connect(m) != TL_OK) {
        fprintf(stderr, "proc-%d: connect: %s\n", id, m ? tl_errmsg(m) : "out of memory");
        _exit(3);
    }
    while (read(cmd, &c, 1) == 1 && c != 'q') {
        char out;
        if (c == 'g') {
            out = try_acquire(m, key(40 + round, kb), TL_FAIL_FAST, &l) == TL_OK ? 'W' : 'L';
            round++;
        } else {
            if (l != NULL && tl_release(l, NULL) != TL_OK) {
                fprintf(stderr, "proc-%d: release: %s\n", id, tl_errmsg(m));
                _exit(4);
            }
            tl_lock_free(l);
            l = NULL;
            out = 'd';
        }
        if (write(res, &out, 1) != 1)
            _exit(5);
    }
    tl_manager_free(m);
    _exit(0);
}

static void processes_racing_for_a_key_one_wins(void **state)
{
    int n = conf->contenders ? conf->contenders : 8;
    int rounds = conf->rounds ? conf->rounds : 20;
    pid_t pids[64];
    int cmd[64], res[64];

    (void)state;
    if (!conf->multi_process)
        skip();
    if (n > 64)
        n = 64;
    /* The store is set up (a fresh database's schema) before the children race for its keys:
     * what is raced for is a key, not the first open. */
    tl_manager_free(mgr("proc-parent", 60000));
    for (int i = 0; i < n; i++) {
        int c[2], r[2];
        assert_int_equal(pipe(c), 0);
        assert_int_equal(pipe(r), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(c[1]);
            close(r[0]);
            race_child(i, c[0], r[1]);
        }
        close(c[0]);
        close(r[1]);
        cmd[i] = c[1];
        res[i] = r[0];
    }

    for (int round = 0; round < rounds; round++) {
        int winners = 0;
        char b;
        for (int i = 0; i < n; i++)
            assert_int_equal(write(cmd[i], "g", 1), 1);
        for (int i = 0; i < n; i++) {
            if (read(res[i], &b, 1) != 1) {
                int status = 0;
                (void)waitpid(pids[i], &status, 0);
                fail_msg("round %d: child %d died (exit %d, signal %d; its message above)", round,
                         i, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                         WIFSIGNALED(status) ? WTERMSIG(status) : 0);
            }
            winners += b == 'W';
        }
        for (int i = 0; i < n; i++)
            assert_int_equal(write(cmd[i], "r", 1), 1);
        for (int i = 0; i < n; i++)
            assert_int_equal(read(res[i], &b, 1), 1);
        if (winners != 1)
            fail_msg("round %d: %d winners among %d processes", round, winners, n);
    }
    for (int i = 0; i < n; i++) {
        int status;
        assert_int_equal(write(cmd[i], "q", 1), 1);
        close(cmd[i]);
        close(res[i]);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

/* ---- listing, history, heartbeats ---- */

static void list_shows_every_held_key(void **state)
{
    char k0[64], k1[64], k2[64];
    tl_manager *a = mgr("conf-a", short_timeout()), *b = mgr("conf-b", 60000);
    struct tl_info **infos = NULL;
    size_t n = 0;

    (void)state;
    if (b->store->ops->list == NULL) {
        tl_manager_free(a);
        tl_manager_free(b);
        skip();
    }
    key(10, k0);
    key(11, k1);
    key(12, k2);
    tl_lock *l0 = must_acquire(b, k0, TL_FAIL_FAST);
    tl_lock *l1 = must_acquire(b, k1, TL_FAIL_FAST);
    tl_lock *l2 = must_acquire(a, k2, TL_FAIL_FAST);
    tl__heartbeat_stop(a);
    make_stale(b, k2);

    assert_int_equal(tl_list(b, &infos, &n), TL_OK);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(strcmp(infos[i - 1]->key, infos[i]->key) <= 0);
        if (strcmp(infos[i]->key, k0) == 0 || strcmp(infos[i]->key, k1) == 0) {
            assert_string_equal(infos[i]->worker_id, "conf-b");
            assert_false(infos[i]->stale);
            seen++;
        } else if (strcmp(infos[i]->key, k2) == 0) {
            assert_string_equal(infos[i]->worker_id, "conf-a");
            assert_true(infos[i]->stale);
            seen++;
        }
    }
    assert_int_equal(seen, 3);
    tl_info_array_free(infos, n);

    assert_int_equal(tl_release(l0, NULL), TL_OK);
    assert_int_equal(tl_release(l1, NULL), TL_OK);
    assert_int_equal(tl_release(l2, NULL), TL_OK);
    assert_int_equal(tl_list(b, &infos, &n), TL_OK);
    for (size_t i = 0; i < n; i++)
        assert_true(strcmp(infos[i]->key, k0) && strcmp(infos[i]->key, k1) &&
                    strcmp(infos[i]->key, k2));
    tl_info_array_free(infos, n);
    tl_lock_free(l0);
    tl_lock_free(l1);
    tl_lock_free(l2);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void history_records_the_audit_trail(void **state)
{
    char kb[64];
    const char *k = key(13, kb);
    tl_manager *a = mgr("hist-a", short_timeout()), *b = mgr("hist-b", short_timeout());
    tl_manager *c = mgr("hist-c", short_timeout()), *d = mgr("hist-d", short_timeout());
    struct tl_event **ev = NULL;
    size_t n = 0;

    (void)state;
    if (a->store->ops->history == NULL) {
        tl_manager_free(a);
        tl_manager_free(b);
        tl_manager_free(c);
        tl_manager_free(d);
        skip();
    }
    tl_lock *la = must_acquire(a, k, TL_FAIL_FAST);
    assert_int_equal(tl_release(la, "first done"), TL_OK);
    tl_lock *lb = must_acquire(b, k, TL_FAIL_FAST);
    tl__heartbeat_stop(b);
    tl_lock *lc = must_acquire(c, k, TL_FORCE_ACQUIRE);
    assert_int_equal(tl_renew(lb), TL_ELOST); /* before its deadline: the store tells it */
    tl__heartbeat_stop(c);
    make_stale(d, k);
    tl_lock *ld = must_acquire(d, k, TL_STEAL_STALE);
    assert_int_equal(tl_release(ld, NULL), TL_OK);

    assert_int_equal(tl_history(a, k, 50, &ev, &n), TL_OK);

    /* In order: acquired(a) released(a) acquired(b) forced(c) [lost(b)] stolen(d) released(d) */
    static const struct {
        tl_event_kind kind;
        const char *worker;
    } want[] = {
        {TL_EVENT_ACQUIRED, "hist-a"}, {TL_EVENT_RELEASED, "hist-a"}, {TL_EVENT_ACQUIRED, "hist-b"},
        {TL_EVENT_FORCED, "hist-c"},   {TL_EVENT_LOST, "hist-b"},     {TL_EVENT_STOLEN, "hist-d"},
        {TL_EVENT_RELEASED, "hist-d"},
    };
    size_t w = 0;
    bool released_summary = false;
    for (size_t i = 0; i < n && w < sizeof(want) / sizeof(want[0]); i++) {
        assert_string_equal(ev[i]->key, k);
        if (want[w].kind == TL_EVENT_LOST && ev[i]->kind != TL_EVENT_LOST && conf->skip_lost_event)
            w++;
        if (ev[i]->kind == want[w].kind && strcmp(ev[i]->worker_id, want[w].worker) == 0) {
            if (ev[i]->kind == TL_EVENT_RELEASED && ev[i]->detail != NULL &&
                strcmp(ev[i]->detail, "first done") == 0)
                released_summary = true;
            w++;
        }
    }
    if (w != sizeof(want) / sizeof(want[0]))
        fail_msg("history matched only %zu of %zu expected events (of %zu events)", w,
                 sizeof(want) / sizeof(want[0]), n);
    assert_true(released_summary);
    tl_event_array_free(ev, n);

    tl_lock_free(la);
    tl_lock_free(lb);
    tl_lock_free(lc);
    tl_lock_free(ld);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(c);
    tl_manager_free(d);
}

static bool three_heartbeats(void *arg)
{
    return metrics(arg).heartbeats_sent >= 3;
}

static void heartbeat_keeps_a_lock_fresh(void **state)
{
    char kb[64];
    const char *k = key(14, kb);
    /* Real clocks: the heartbeat thread runs on its own. The lock timeout is long enough that
     * only a stopped heartbeat could let it go stale while we watch. */
    uint32_t timeout = short_timeout() * 10 > 3000 ? short_timeout() * 10 : 3000;
    tl_manager *a = mgr_full("conf-a", timeout, timeout / 30, true, NULL, NULL);
    tl_manager *b = mgr_full("conf-b", timeout, 0, true, NULL, NULL);
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST), *lb = NULL;

    (void)state;
    if (!tl_test_poll(three_heartbeats, a, 10, 30000))
        fail_msg("three heartbeats did not come within 30 s");
    assert_int_equal(try_acquire(b, k, TL_STEAL_STALE, &lb), TL_EBUSY);
    assert_false(tl_last_holder(b)->stale);
    assert_false(tl_lock_is_lost(l));
    assert_int_equal(metrics(a).heartbeats_failed, 0);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void heartbeat_reports_a_forced_lock_lost(void **state)
{
    char kb[64];
    const char *k = key(15, kb);
    struct tl_test_lost seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint32_t timeout = 60000;
    tl_manager *a = mgr_full("conf-a", timeout, 50, true, tl_test_on_lost, &seen);
    tl_manager *b = mgr_full("conf-b", timeout, 0, true, NULL, NULL);
    tl_lock *l = must_acquire(a, k, TL_FAIL_FAST);
    tl_lock *lb = must_acquire(b, k, TL_FORCE_ACQUIRE);

    (void)state;
    if (!tl_test_poll(tl_test_lost_fired, &seen, 10, 30000))
        fail_msg("the lost callback did not fire within 30 s");
    assert_true(tl_lock_is_lost(l));
    pthread_mutex_lock(&seen.mu);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.token, tl_lock_token(l));
    pthread_mutex_unlock(&seen.mu);
    assert_int_equal(metrics(a).locks_lost, 1);
    assert_int_equal(metrics(a).locks_held, 0);
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    tl_lock_free(l);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

static bool is_free(tl_manager *m, const char *k)
{
    struct tl_info *info = NULL;

    assert_int_equal(tl_inspect(m, k, &info), TL_OK);
    tl_info_free(info);
    return info == NULL;
}

static void force_release_breaks_a_lock(void **state)
{
    char kb[64];
    const char *k = key(16, kb);
    tl_manager *a = mgr("conf-a", 60000), *b = mgr("conf-b", 60000);
    tl_manager *admin = mgr("conf-admin", 60000);
    struct tl_info *former = NULL;

    (void)state;
    if (a->store->ops->force_release == NULL) {
        tl_manager_free(a);
        tl_manager_free(b);
        tl_manager_free(admin);
        skip();
    }
    tl_lock *la = must_acquire(a, k, TL_FAIL_FAST);
    uint64_t ta = tl_lock_token(la);

    /* Another token: left alone, and the message names the holder. */
    assert_int_equal(tl_release_force(admin, k, ta + 1, "wrong token", &former), TL_ENOTOWNER);
    assert_null(former);
    assert_non_null(strstr(tl_errmsg(admin), "conf-a"));
    assert_false(is_free(admin, k));

    /* Its token (or 0, any holder): broken, and the holder's record comes back. */
    assert_int_equal(tl_release_force(admin, k, ta, "cleared by hand", &former), TL_OK);
    assert_non_null(former);
    assert_string_equal(former->worker_id, "conf-a");
    assert_int_equal(former->token, ta);
    tl_info_free(former);
    former = NULL;
    assert_true(is_free(admin, k));

    /* The former holder finds it lost, and its release is refused, not taken for a retry. */
    assert_int_equal(tl_renew(la), TL_ELOST);
    assert_int_equal(tl_release(la, NULL), TL_ENOTOWNER);
    assert_int_equal(tl_release_token(a, k, ta, NULL), TL_ENOTOWNER);

    /* Safe to retry: a free key is nothing to do. */
    assert_int_equal(tl_release_force(admin, k, 0, NULL, &former), TL_OK);
    assert_null(former);
    assert_int_equal(tl_release_force(admin, k, ta, NULL, NULL), TL_OK);

    /* The trail: forced and released by the administrator, with a token of its own between
     * the holder's and the next holder's. */
    uint64_t forced_token = 0;
    if (a->store->ops->history != NULL) {
        struct tl_event **ev = NULL;
        size_t n = 0;
        assert_int_equal(tl_history(admin, k, 50, &ev, &n), TL_OK);
        size_t f = 0; /* after acquired(a); the renew's lost(a) may come after the two */
        while (f < n && ev[f]->kind != TL_EVENT_FORCED)
            f++;
        if (f + 1 >= n)
            fail_msg("no forced event followed by another in %zu events", n);
        assert_string_equal(ev[f]->worker_id, "conf-admin");
        assert_non_null(ev[f]->detail);
        assert_non_null(strstr(ev[f]->detail, "conf-a"));
        assert_int_equal(ev[f + 1]->kind, TL_EVENT_RELEASED);
        assert_string_equal(ev[f + 1]->worker_id, "conf-admin");
        assert_string_equal(ev[f + 1]->detail, "cleared by hand");
        forced_token = ev[f + 1]->token;
        assert_int_equal(ev[f]->token, forced_token);
        assert_true(forced_token > ta);
        for (size_t i = 0; i < n; i++)
            assert_false(ev[i]->kind == TL_EVENT_RELEASED &&
                         strcmp(ev[i]->worker_id, "conf-a") == 0);
        tl_event_array_free(ev, n);
    }

    /* The next holder's token is larger still; a force with token 0 breaks whoever holds it. */
    tl_lock *lb = must_acquire(b, k, TL_FAIL_FAST);
    assert_true(tl_lock_token(lb) > ta);
    assert_true(tl_lock_token(lb) > forced_token);
    assert_int_equal(tl_release_force(admin, k, 0, NULL, &former), TL_OK);
    assert_non_null(former);
    assert_string_equal(former->worker_id, "conf-b");
    tl_info_free(former);
    assert_true(is_free(a, k));
    assert_int_equal(tl_renew(lb), TL_ELOST);

    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(admin);
}

static void bad_keys_are_refused(void **state)
{
    tl_manager *a = mgr("conf-a", 60000);
    tl_lock *l = NULL;
    char longkey[300];

    (void)state;
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    assert_int_equal(try_acquire(a, "", TL_FAIL_FAST, &l), TL_EINVAL);
    assert_int_equal(try_acquire(a, "has space", TL_FAIL_FAST, &l), TL_EINVAL);
    assert_int_equal(try_acquire(a, "tab\there", TL_FAIL_FAST, &l), TL_EINVAL);
    assert_int_equal(try_acquire(a, longkey, TL_FAIL_FAST, &l), TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(a), "key"));
    assert_null(l);
    tl_manager_free(a);
}

int tl_conformance_run(const struct tl_conformance *c)
{
    char name[128];
    const struct CMUnitTest tests[] = {
        /* First, while the process has no other threads to fork with. */
        cmocka_unit_test(processes_racing_for_a_key_one_wins),
        cmocka_unit_test(acquire_inspect_release_roundtrip),
        cmocka_unit_test(held_key_is_held_for_everyone),
        cmocka_unit_test(tokens_strictly_increase),
        cmocka_unit_test(steal_stale_wins_only_when_stale),
        cmocka_unit_test(force_always_wins),
        cmocka_unit_test(release_and_renew_check_owner_and_token),
        cmocka_unit_test(release_is_safe_to_retry),
        cmocka_unit_test(renew_records_a_heartbeat),
        cmocka_unit_test(threads_racing_for_a_key_one_wins),
        cmocka_unit_test(list_shows_every_held_key),
        cmocka_unit_test(history_records_the_audit_trail),
        cmocka_unit_test(heartbeat_keeps_a_lock_fresh),
        cmocka_unit_test(heartbeat_reports_a_forced_lock_lost),
        cmocka_unit_test(force_release_breaks_a_lock),
        cmocka_unit_test(bad_keys_are_refused),
    };

    if (c->url == NULL) {
        fprintf(stderr, "conformance %s: no store URL set; skipped\n", c->name);
        return 77;
    }
    conf = c;
    tl_fake_clock_init(&fclock);
    (void)snprintf(name, sizeof(name), "conformance/%s", c->name);
    int rc = cmocka_run_group_tests_name(name, tests, NULL, NULL);
    const struct tl_store_ops *ops = tl__store_find(c->url);
    if (ops != NULL && ops->version >= 3 && ops->leave != NULL)
        rc += tl__conformance_line_run(c);
    else
        fprintf(stderr, "conformance %s: the store has no line; its part skipped\n", c->name);
    if (ops != NULL && ops->version >= 4 && ops->claim_next != NULL)
        rc += tl__conformance_next_run(c);
    else
        fprintf(stderr, "conformance %s: the store has no claim-next; its part skipped\n", c->name);
    rc += tl__conformance_modes_run(c);
    rc += tl__conformance_convert_run(c);
    return rc;
}
