/*
 * test_manager.c -- the lock manager on the memory store with an injected clock: strategies,
 * the backoff schedule, deadlines, metrics, ownership, options and their errors. No sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_store.h"
#include "manager.h"
#include "tasklock.h"
#include "tl_test.h"

static struct tl_fake_clock fc;
static int space; /* each test gets its own memory space */

static tl_manager *mgr_opts(struct tl_options o)
{
    char url[64];

    (void)snprintf(url, sizeof(url), "memory:manager-%d", space);
    if (o.store_url == NULL)
        o.store_url = url;
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    tl_fake_clock_install(m, &fc);
    return m;
}

/* A manager without the line: most tests here check the backoff schedule of waiting without
 * it (the line's own tests use line_mgr). */
static tl_manager *mgr(const char *worker)
{
    return mgr_opts((struct tl_options){.worker_id = worker, .node_id = "node-1", .no_line = true});
}

static tl_manager *line_mgr(const char *worker)
{
    return mgr_opts((struct tl_options){.worker_id = worker, .node_id = "node-1"});
}

static int setup(void **state)
{
    (void)state;
    tl_fake_clock_init(&fc);
    tl_fake_reset();
    space++;
    return 0;
}

static struct tl_metrics metrics(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt;
}

/* ---- options and connecting ---- */

static void defaults_are_the_seeds(void **state)
{
    tl_manager *m = tl_manager_new(NULL);
    char host[256];

    (void)state;
    assert_non_null(m);
    assert_int_equal(m->max_retries, 5);
    assert_int_equal(m->backoff_initial_ms, 1000);
    assert_int_equal(m->backoff_max_ms, 16000);
    assert_int_equal(m->lock_timeout_ms, 300000);
    assert_int_equal(m->heartbeat_ms, 0); /* per store: min(30 s, timeout / 3) */
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    assert_string_equal(tl_manager_node_id(m), host);
    const char *at = strchr(tl_manager_worker_id(m), '@');
    assert_non_null(at);
    assert_string_equal(at + 1, host);
    assert_string_equal(tl_errmsg(m), "");
    tl_manager_free(m);
}

static void store_url_comes_from_the_environment(void **state)
{
    (void)state;
    assert_int_equal(setenv("TASKLOCK_STORE", "memory:from-env", 1), 0);
    tl_manager *m = tl_manager_new(NULL);
    assert_non_null(m);
    assert_string_equal(m->store_url, "memory:from-env");
    tl_manager_free(m);
    assert_int_equal(unsetenv("TASKLOCK_STORE"), 0);

    m = tl_manager_new(&(struct tl_options){.store_url = "memory:explicit"});
    assert_string_equal(m->store_url, "memory:explicit");
    tl_manager_free(m);
}

static void heartbeat_interval_follows_the_lock_timeout(void **state)
{
    tl_manager *m = mgr("w");
    struct tl_store s = {0};

    (void)state;
    assert_int_equal(tl__lock_interval(m, &s, 300000), 30000); /* capped at 30 s */
    assert_int_equal(tl__lock_interval(m, &s, 6000), 2000);    /* a third */
    s.heartbeat_divisor = 4;
    s.heartbeat_uncapped = true; /* GitHub */
    assert_int_equal(tl__lock_interval(m, &s, 300000), 75000);
    tl_manager_free(m);

    m = mgr_opts((struct tl_options){.heartbeat_ms = 1234});
    assert_int_equal(tl__lock_interval(m, &s, 300000), 1234); /* explicit wins */
    tl_manager_free(m);
}

static void connect_reports_bad_urls(void **state)
{
    static const struct {
        const char *url;
        tl_status st;
        const char *msg;
    } cases[] = {
        {"nosuch://x", TL_EINVAL, "unknown scheme"},
        {"no-scheme-here", TL_EINVAL, "no scheme"},
        {"etcd://127.0.0.1", TL_EINVAL, "has no port"},
        {"sqlite:/nonexistent-dir/x/locks.db", TL_ESTORE, "/nonexistent-dir/x/locks.db"},
        {"sqlite:/tmp/x.db?bogus=1", TL_EINVAL, "unknown parameter"},
        /* A known parameter with a bad value says what is allowed, not "unknown". */
        {"sqlite:/tmp/x.db?busy_timeout=abc", TL_EINVAL,
         "busy_timeout=\"abc\" is not a number of "
         "milliseconds (0 to 2147483647)"},
        {"sqlite:/tmp/x.db?busy_timeout=-1", TL_EINVAL, "is not a number of milliseconds"},
        {"sqlite:/tmp/x.db?synchronous=off", TL_EINVAL,
         "synchronous=\"off\" is not allowed "
         "(full or normal"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = cases[i].url});
        assert_non_null(m);
        assert_int_equal(tl_connect(m), cases[i].st);
        if (strstr(tl_errmsg(m), cases[i].msg) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].url, tl_errmsg(m), cases[i].msg);
        tl_manager_free(m);
    }
}

/* Sets or (NULL) unsets an environment variable; the unit tests are single-threaded. */
static void put_env(const char *name, const char *value)
{
    if (value != NULL)
        (void)setenv(name, value, 1); /* NOLINT(concurrency-mt-unsafe) */
    else
        (void)unsetenv(name); /* NOLINT(concurrency-mt-unsafe) */
}

static const char *connected_url(const char *url, tl_status want)
{
    static char out[1024];
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url});

    assert_non_null(m);
    assert_string_equal(tl_manager_store_url(m), url); /* as given before connecting */
    tl_status st = tl_connect(m);
    if (st != want)
        fail_msg("%s: %s: %s", url, tl_strerror(st), tl_errmsg(m));
    (void)snprintf(out, sizeof(out), "%s", st == TL_OK ? tl_manager_store_url(m) : tl_errmsg(m));
    tl_manager_free(m);
    return out;
}

static void store_url_is_resolved_once_connected(void **state)
{
    char *dir = tl_test_mkdtemp(), want[700], cwd[512];
    const char *keep[] = {"TASKLOCK_DB", "XDG_STATE_HOME", "HOME"};
    char *saved[3];

    (void)state;
    assert_non_null(dir);
    if (dir == NULL)
        return;
    for (size_t i = 0; i < 3; i++)
        saved[i] = getenv(keep[i]) ? strdup(getenv(keep[i])) : NULL; /* NOLINT */

    /* The default file, from each variable in turn, parameters kept. */
    (void)snprintf(want, sizeof(want), "%s/db.db", dir);
    put_env("TASKLOCK_DB", want);
    (void)snprintf(want, sizeof(want), "sqlite:%s/db.db?busy_timeout=5", dir);
    assert_string_equal(connected_url("sqlite:?busy_timeout=5", TL_OK), want);
    put_env("TASKLOCK_DB", NULL);
    put_env("XDG_STATE_HOME", dir);
    (void)snprintf(want, sizeof(want), "sqlite:%s/tasklock/locks.db", dir);
    assert_string_equal(connected_url("sqlite:", TL_OK), want);
    put_env("XDG_STATE_HOME", "relative/is/ignored");
    put_env("HOME", dir);
    (void)snprintf(want, sizeof(want), "sqlite:%s/.local/state/tasklock/locks.db", dir);
    assert_string_equal(connected_url("sqlite:", TL_OK), want);

    /* No HOME (nor the others): no default, rather than a directory every user shares. */
    put_env("XDG_STATE_HOME", NULL);
    put_env("HOME", NULL);
    const char *msg = connected_url("sqlite:", TL_ESTORE);
    assert_non_null(strstr(msg, "HOME is not set"));
    assert_non_null(strstr(msg, "TASKLOCK_DB"));
    assert_non_null(strstr(msg, "XDG_STATE_HOME"));
    put_env("HOME", "not/absolute");
    assert_non_null(strstr(connected_url("sqlite:", TL_ESTORE), "not an absolute path"));

    /* A relative path becomes absolute; other stores keep their URL. */
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    (void)snprintf(want, sizeof(want), "sqlite:%s/rel.db", dir);
    assert_string_equal(connected_url("sqlite:rel.db", TL_OK), want);
    assert_int_equal(chdir(cwd), 0);
    assert_string_equal(connected_url("memory:x", TL_OK), "memory:x");

    for (size_t i = 0; i < 3; i++) {
        put_env(keep[i], saved[i]);
        free(saved[i]);
    }
    tl_test_rmtree(dir);
    free(dir);
}

static void connect_never_shows_a_password(void **state)
{
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = "nosuch://u:hunter2@h/x"});

    (void)state;
    assert_int_equal(tl_connect(m), TL_EINVAL);
    assert_null(strstr(tl_errmsg(m), "hunter2"));
    assert_non_null(strstr(tl_errmsg(m), "u:***@h"));
    tl_manager_free(m);
}

static void connect_checks_the_options(void **state)
{
    static const struct {
        struct tl_options o;
        const char *msg;
    } cases[] = {
        {{.worker_id = ""}, "worker id must not be empty"},
        {{.worker_id = "two words"}, "worker id contains white space"},
        {{.worker_id = "ctl\x01"}, "worker id contains a control character"},
        {{.node_id = "\xff"}, "node id is not valid UTF-8"},
        {{.heartbeat_ms = 5000, .lock_timeout_ms = 5000}, "must be shorter than the lock timeout"},
        {{.backoff_initial_ms = 5000, .backoff_max_ms = 100}, "initial backoff"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tl_manager *m = mgr_opts(cases[i].o);
        assert_int_equal(tl_connect(m), TL_EINVAL);
        if (strstr(tl_errmsg(m), cases[i].msg) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, tl_errmsg(m), cases[i].msg);
        /* Every call that needs the store reports the same. */
        tl_lock *l = NULL;
        assert_int_equal(tl_acquire(m, "k", NULL, &l), TL_EINVAL);
        assert_null(l);
        tl_manager_free(m);
    }
}

static void acquire_checks_its_arguments(void **state)
{
    tl_manager *m = mgr("w");
    tl_lock *l = NULL;
    char big[70000];

    (void)state;
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.task_info = "[1,2]"}, &l),
                     TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(m), "task info: must be a JSON object"));
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.task_info = "{bad"}, &l),
                     TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(m), "task info: not JSON"));
    memset(big, ' ', sizeof(big) - 3);
    big[0] = '{';
    big[sizeof(big) - 3] = '}';
    big[sizeof(big) - 2] = '\0';
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.task_info = big}, &l),
                     TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(m), "over the limit"));
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.strategy = 42}, &l), TL_EINVAL);
    assert_int_equal(tl_acquire(m, NULL, NULL, &l), TL_EINVAL);
    assert_int_equal(tl_acquire(m, "k", NULL, NULL), TL_EINVAL);
    assert_null(l);
    /* Argument errors are the caller's bug, not failed acquisitions (docs/guide.md). */
    assert_int_equal(metrics(m).failed_acquisitions, 0);
    /* A later success leaves no stale message behind. */
    assert_int_equal(tl_connect(m), TL_OK);
    assert_string_equal(tl_errmsg(m), "");
    tl_manager_free(m);

    /* A per-call lock timeout must leave room for the manager's heartbeat. */
    m = mgr_opts((struct tl_options){.heartbeat_ms = 2000});
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.lock_timeout_ms = 1000}, &l),
                     TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(m), "heartbeat"));
    assert_int_equal(tl_acquire(m, "k", &(struct tl_acquire_opts){.lock_timeout_ms = 3000}, &l),
                     TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

/* ---- strategies and backoff ---- */

static void retry_backs_off_exponentially_then_gives_up(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);

    fc.random = 0; /* jitter factor 0.75 */
    assert_int_equal(tl_acquire(b, "k", NULL, &lb), TL_EBUSY);
    assert_null(lb);
    static const uint32_t low[] = {750, 1500, 3000, 6000, 12000};
    assert_int_equal(fc.nslept, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(fc.slept[i], low[i]);

    fc.nslept = 0;
    fc.random = 511; /* jitter factor 1279/1024, then capped at 16 s */
    assert_int_equal(tl_acquire(b, "k", NULL, &lb), TL_EBUSY);
    static const uint32_t high[] = {1249, 2498, 4996, 9992, 16000};
    assert_int_equal(fc.nslept, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(fc.slept[i], high[i]);

    struct tl_metrics mt = metrics(b);
    assert_int_equal(mt.total_conflicts, 12);
    assert_int_equal(mt.total_retries, 10);
    assert_int_equal(mt.failed_acquisitions, 2);
    assert_int_equal(mt.total_acquisitions, 0);
    assert_non_null(strstr(tl_errmsg(b), "held by a on node-1"));
    assert_non_null(strstr(tl_errmsg(b), "6 attempts"));
    assert_string_equal(tl_last_holder(b)->worker_id, "a");

    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void jitter_spreads_waiters(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;
    struct tl_clock c;

    (void)state;
    /* With the manager's own generator, two waiters do not sleep in lockstep. */
    tl_fake_clock_install(b, &fc);
    c = b->clock;
    c.random = NULL;
    tl__manager_set_clock(b, &c);
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    assert_int_equal(tl_acquire(b, "k", NULL, &lb), TL_EBUSY);
    bool varied = false;
    for (size_t i = 0; i < fc.nslept; i++) {
        uint32_t base = 1000u << i;
        if (base > 16000)
            base = 16000;
        assert_true(fc.slept[i] >= base * 3 / 4);
        assert_true(fc.slept[i] <= 16000 && fc.slept[i] <= base * 5 / 4);
        varied |= fc.slept[i] != base * 3 / 4;
    }
    assert_true(varied);
    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void retry_count_per_call(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    assert_int_equal(tl_acquire(b, "k", &(struct tl_acquire_opts){.retries = 2}, &lb), TL_EBUSY);
    assert_int_equal(fc.nslept, 2);
    assert_int_equal(tl_acquire(b, "k", &(struct tl_acquire_opts){.retries = TL_NO_RETRIES}, &lb),
                     TL_EBUSY);
    assert_int_equal(
        tl_acquire(b, "k", &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST, .retries = 9}, &lb),
        TL_EBUSY);
    assert_int_equal(fc.nslept, 2); /* neither slept */
    assert_int_equal(metrics(b).total_retries, 2);
    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void deadline_bounds_the_wait(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    fc.random = 0;
    /* A deadline without a retry count: retries until the deadline, the last wait clipped. */
    assert_int_equal(tl_acquire(b, "k", &(struct tl_acquire_opts){.deadline_ms = 60000}, &lb),
                     TL_EBUSY);
    assert_int_equal(fc.slept_total, 60000);
    assert_true(fc.nslept > 5); /* more than the default 5 retries */

    /* Both: whichever ends first. */
    fc.nslept = 0;
    fc.slept_total = 0;
    assert_int_equal(
        tl_acquire(b, "k", &(struct tl_acquire_opts){.deadline_ms = 2000, .retries = 10}, &lb),
        TL_EBUSY);
    assert_int_equal(fc.slept_total, 2000);
    assert_int_equal(fc.nslept, 2); /* 750, then 1250 clipped */
    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

struct release_on_sleep {
    tl_lock *lock;
    size_t after;
};

static void release_on_nth_sleep(void *arg, size_t n)
{
    struct release_on_sleep *r = arg;

    if (n == r->after)
        assert_int_equal(tl_release(r->lock, NULL), TL_OK);
}

static void retry_wins_once_released(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    struct release_on_sleep r = {.lock = la, .after = 2};
    fc.on_sleep = release_on_nth_sleep;
    fc.on_sleep_arg = &r;
    fc.random = 0;
    assert_int_equal(tl_acquire(b, "k", NULL, &lb), TL_OK);
    fc.on_sleep = NULL;
    assert_true(tl_lock_token(lb) > tl_lock_token(la));

    struct tl_metrics mt = metrics(b);
    assert_int_equal(mt.total_acquisitions, 1);
    assert_int_equal(mt.total_conflicts, 2);
    assert_int_equal(mt.total_retries, 2);
    assert_int_equal(mt.failed_acquisitions, 0);
    /* The acquire took the two waits, 750 + 1500 ms of (fake) time. */
    assert_true(mt.average_acquisition_ms == 2250.0);
    assert_true(mt.p50_acquisition_ms == 2250.0);
    assert_null(tl_last_holder(b));
    assert_string_equal(tl_errmsg(b), "");
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void steal_stale_waits_for_staleness_then_steals(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", &(struct tl_acquire_opts){.lock_timeout_ms = 3000}, &la),
                     TL_OK);
    tl__heartbeat_stop(a); /* a is gone */
    fc.random = 0;
    /* 750 + 1500 ms: still fresh; after 3000 more it is stale at the 4th attempt. */
    assert_int_equal(
        tl_acquire(b, "k",
                   &(struct tl_acquire_opts){.strategy = TL_STEAL_STALE, .lock_timeout_ms = 3000},
                   &lb),
        TL_OK);
    assert_int_equal(fc.nslept, 3);
    struct tl_metrics mt = metrics(b);
    assert_int_equal(mt.stale_locks_claimed, 1);
    assert_int_equal(mt.total_conflicts, 3);

    /* RETRY would have waited it out and given up instead. */
    tl__heartbeat_stop(b);
    fc.nslept = 0;
    tl_manager *c = mgr("c");
    tl_lock *lc = NULL;
    assert_int_equal(tl_acquire(c, "k", NULL, &lc), TL_EBUSY);
    assert_int_equal(metrics(c).stale_locks_claimed, 0);
    assert_true(tl_last_holder(c)->stale);
    assert_non_null(strstr(tl_errmsg(c), "stale"));

    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(c);
}

static void force_takes_a_live_lock_at_once(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    assert_int_equal(
        tl_acquire(b, "k", &(struct tl_acquire_opts){.strategy = TL_FORCE_ACQUIRE}, &lb), TL_OK);
    assert_int_equal(fc.nslept, 0);
    assert_int_equal(metrics(b).forced_acquisitions, 1);
    assert_int_equal(metrics(b).stale_locks_claimed, 0);
    assert_int_equal(tl_renew(la), TL_ELOST);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void fail_one_claim(struct tl_fake_faults *f, void *arg)
{
    (void)arg;
    f->claim_errors = 1;
}

static void store_errors_end_the_acquire(void **state)
{
    tl_manager *m = mgr("w");
    tl_lock *l = NULL;

    (void)state;
    tl__manager_set_store_ops(m, tl_fake_store());
    tl_fake_with(fail_one_claim, NULL);
    /* No retry on a store error: the caller hears it at once, with the store's message. */
    assert_int_equal(tl_acquire(m, "k", NULL, &l), TL_ESTORE);
    assert_null(l);
    assert_string_equal(tl_errmsg(m), "fake: claim failed");
    assert_int_equal(fc.nslept, 0);
    assert_int_equal(metrics(m).failed_acquisitions, 1);
    /* The next one goes through. */
    assert_int_equal(tl_acquire(m, "k", NULL, &l), TL_OK);
    assert_string_equal(tl_errmsg(m), "");
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

/* ---- ownership ---- */

static void release_after_loss_is_refused(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    assert_int_equal(
        tl_acquire(b, "k", &(struct tl_acquire_opts){.strategy = TL_FORCE_ACQUIRE}, &lb), TL_OK);
    assert_int_equal(tl_release(la, NULL), TL_ENOTOWNER);
    assert_non_null(strstr(tl_errmsg(a), "no longer ours"));
    assert_true(tl_lock_is_lost(la));
    assert_int_equal(metrics(a).locks_lost, 1);
    assert_int_equal(metrics(a).total_releases, 0);
    assert_int_equal(tl_renew(la), TL_ELOST); /* known lost: no store call needed */

    /* b's lock is untouched by a's attempts. */
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(a, "k", &info), TL_OK);
    assert_int_equal(info->token, tl_lock_token(lb));
    tl_info_free(info);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void a_release_whose_reply_was_lost_is_not_a_loss(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    /* The release reached the store, but its answer was lost (a dropped connection)... */
    assert_int_equal(a->store->ops->release(a->store, &la->rec, NULL), TL_OK);
    /* ...and before it was sent again, b claimed the key. */
    assert_int_equal(tl_acquire(b, "k", NULL, &lb), TL_OK);
    /* The audit trail shows that a's token released it: a released, it did not lose. */
    assert_int_equal(tl_release(la, NULL), TL_OK);
    assert_false(tl_lock_is_lost(la));
    assert_int_equal(metrics(a).locks_lost, 0);
    assert_int_equal(metrics(a).total_releases, 1);
    /* A stolen lock is still refused: its token released nothing. */
    tl_lock *la2 = NULL;
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    assert_int_equal(tl_acquire(a, "k", NULL, &la2), TL_OK);
    assert_int_equal(
        tl_acquire(b, "k", &(struct tl_acquire_opts){.strategy = TL_FORCE_ACQUIRE}, &lb), TL_OK);
    assert_int_equal(tl_release(la2, NULL), TL_ENOTOWNER);
    assert_true(tl_lock_is_lost(la2));
    tl_lock_free(la);
    tl_lock_free(la2);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void release_of_a_timed_out_lock_still_frees_it(void **state)
{
    tl_manager *a = mgr("a");
    tl_lock *la = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    /* Renewals failed past the timeout: reported lost, but the record is still ours. */
    pthread_mutex_lock(&a->mu);
    (void)tl__lock_mark_lost_locked(la);
    pthread_mutex_unlock(&a->mu);
    assert_true(tl_lock_is_lost(la));
    assert_int_equal(tl_release(la, NULL), TL_OK);
    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(a, "k", &info), TL_OK);
    assert_null(info);
    assert_int_equal(metrics(a).locks_held, 0);
    tl_lock_free(la);
    tl_manager_free(a);
}

static void metrics_count_what_happened(void **state)
{
    tl_manager *a = mgr("a"), *b = mgr("b");
    tl_lock *l[10] = {0}, *lb = NULL;

    (void)state;
    for (int i = 0; i < 10; i++) {
        char k[16];
        (void)snprintf(k, sizeof(k), "k%d", i);
        assert_int_equal(tl_acquire(a, k, NULL, &l[i]), TL_OK);
    }
    assert_int_equal(metrics(a).locks_held, 10);
    assert_int_equal(metrics(a).total_acquisitions, 10);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tl_release(l[i], NULL), TL_OK);
    assert_int_equal(metrics(a).locks_held, 5);
    assert_int_equal(metrics(a).total_releases, 5);
    tl_lock_free(l[9]); /* freed without release: no longer held by us */
    l[9] = NULL;
    assert_int_equal(metrics(a).locks_held, 4);

    /* Acquisition times: waits of 750 and 750+1500 ms, then p50/p99 over the window. */
    fc.random = 0;
    struct release_on_sleep r = {.lock = l[5], .after = 1};
    fc.on_sleep = release_on_nth_sleep;
    fc.on_sleep_arg = &r;
    assert_int_equal(tl_acquire(b, "k5", NULL, &lb), TL_OK);
    tl_lock_free(lb);
    fc.nslept = 0;
    r.lock = l[6];
    r.after = 2;
    assert_int_equal(tl_acquire(b, "k6", NULL, &lb), TL_OK);
    tl_lock_free(lb);
    fc.on_sleep = NULL;
    assert_int_equal(tl_acquire(b, "fresh", NULL, &lb), TL_OK);
    tl_lock_free(lb);
    struct tl_metrics mt = metrics(b);
    assert_true(mt.average_acquisition_ms == (750.0 + 2250.0 + 0.0) / 3);
    assert_true(mt.p50_acquisition_ms == 750.0);
    assert_true(mt.p99_acquisition_ms == 2250.0);

    /* An older caller's smaller struct gets only what it knows. */
    struct tl_metrics partial;
    memset(&partial, 0xab, sizeof(partial));
    tl_metrics_get(b, &partial, offsetof(struct tl_metrics, total_conflicts));
    assert_int_equal(partial.total_acquisitions, 3);
    assert_int_equal(partial.total_releases, 0);
    assert_int_equal(partial.total_conflicts, 0xabababababababab);

    for (int i = 0; i < 10; i++)
        tl_lock_free(l[i]);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void inspect_list_history_on_the_memory_store(void **state)
{
    tl_manager *a = mgr("a");
    tl_lock *l1 = NULL, *l2 = NULL;
    struct tl_info **infos = NULL;
    struct tl_event **ev = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(tl_acquire(a, "b-key", NULL, &l1), TL_OK);
    assert_int_equal(tl_acquire(a, "a-key", NULL, &l2), TL_OK);
    assert_int_equal(tl_list(a, &infos, &n), TL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(infos[0]->key, "a-key");
    assert_string_equal(infos[1]->key, "b-key");
    tl_info_array_free(infos, n);
    assert_int_equal(tl_release(l1, "all good"), TL_OK);

    assert_int_equal(tl_history(a, NULL, 0, &ev, &n), TL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ev[0]->kind, TL_EVENT_ACQUIRED);
    assert_string_equal(ev[0]->key, "b-key");
    assert_int_equal(ev[2]->kind, TL_EVENT_RELEASED);
    assert_string_equal(ev[2]->detail, "all good");
    tl_event_array_free(ev, n);
    assert_int_equal(tl_history(a, "a-key", 0, &ev, &n), TL_OK);
    assert_int_equal(n, 1);
    tl_event_array_free(ev, n);
    assert_int_equal(tl_history(a, NULL, 1, &ev, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0]->kind, TL_EVENT_RELEASED); /* the newest */
    tl_event_array_free(ev, n);

    struct tl_info *info = NULL;
    assert_int_equal(tl_inspect(a, "bad key", &info), TL_EINVAL);
    assert_null(info);
    tl_lock_free(l1);
    tl_lock_free(l2);
    tl_manager_free(a);
}

/* ---- the line (fake clock: sleeps instead of wake-ups) ---- */

static size_t line_length(tl_manager *m, const char *key)
{
    struct tl_waiter **w = NULL;
    size_t n = 0;

    assert_int_equal(tl_waiters(m, key, &w, &n), TL_OK);
    tl_waiter_array_free(w, n);
    return n;
}

static void a_waiter_is_patient_for_the_backoff_schedule_then_leaves(void **state)
{
    tl_manager *a = line_mgr("a"), *b = line_mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    /* Patience: 1 + 2 + 4 + 8 + 16 s; the waiter claims again every third of its 10 s timeout
     * to stay live, and the last wait is clipped to the patience. */
    assert_int_equal(tl_acquire(b, "k", NULL, &lb), TL_EBUSY);
    assert_int_equal(fc.slept_total, 31000);
    assert_int_equal(fc.slept[0], 3333);
    assert_int_equal(fc.nslept, 10);
    assert_non_null(strstr(tl_errmsg(b), "held by a on node-1"));
    assert_non_null(strstr(tl_errmsg(b), "1 waiting"));
    assert_int_equal(line_length(a, "k"), 0); /* it left the line */
    struct tl_metrics mt = metrics(b);
    assert_int_equal(mt.queued, 1);
    assert_int_equal(mt.total_retries, 10);
    assert_int_equal(mt.wakeups, 0);

    /* A deadline is the patience instead; explicit retries make a shorter one. */
    fc.nslept = 0;
    fc.slept_total = 0;
    assert_int_equal(tl_acquire(b, "k", &(struct tl_acquire_opts){.deadline_ms = 5000}, &lb),
                     TL_EBUSY);
    assert_int_equal(fc.slept_total, 5000);
    fc.slept_total = 0;
    assert_int_equal(tl_acquire(b, "k", &(struct tl_acquire_opts){.retries = 2}, &lb), TL_EBUSY);
    assert_int_equal(fc.slept_total, 3000);
    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

struct in_line {
    tl_manager *other;
    tl_lock *holder;
    tl_status other_st;
    char other_msg[256];
    size_t line;
};

/* While b waits in line: the holder releases; a newcomer that will not wait finds the key free
 * but refused, since b waits ahead of it. */
static void release_then_try_to_barge(void *arg, size_t n)
{
    struct in_line *t = arg;
    tl_lock *l = NULL;

    if (n != 1)
        return;
    t->line = line_length(t->other, "k");
    assert_int_equal(tl_release(t->holder, NULL), TL_OK);
    t->other_st =
        tl_acquire(t->other, "k", &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l);
    (void)snprintf(t->other_msg, sizeof(t->other_msg), "%s", tl_errmsg(t->other));
    tl_lock_free(l);
}

static void a_free_key_goes_to_the_waiter_not_to_a_newcomer(void **state)
{
    tl_manager *a = line_mgr("a"), *b = line_mgr("b"), *c = line_mgr("c");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    struct in_line t = {.other = c, .holder = la};
    fc.on_sleep = release_then_try_to_barge;
    fc.on_sleep_arg = &t;
    assert_int_equal(tl_acquire(b, "k", NULL, &lb), TL_OK);
    fc.on_sleep = NULL;
    assert_int_equal(t.line, 1);
    assert_int_equal(t.other_st, TL_EBUSY);
    assert_non_null(strstr(t.other_msg, "free, but 1 waiting"));
    assert_true(tl_lock_token(lb) > tl_lock_token(la));
    assert_int_equal(line_length(a, "k"), 0);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(c);
}

static volatile sig_atomic_t cancel_flag;

static void cancel_on_second_sleep(void *arg, size_t n)
{
    (void)arg;
    if (n == 2)
        cancel_flag = 1;
}

static void a_cancelled_waiter_leaves_the_line(void **state)
{
    tl_manager *a = line_mgr("a"), *b = line_mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", NULL, &la), TL_OK);
    cancel_flag = 0;
    fc.on_sleep = cancel_on_second_sleep;
    assert_int_equal(tl_acquire(b, "k", &(struct tl_acquire_opts){.cancel = &cancel_flag}, &lb),
                     TL_ECANCELED);
    fc.on_sleep = NULL;
    assert_null(lb);
    /* With a cancel flag the waits are cut in slices of 100 ms to look at it. */
    assert_int_equal(fc.slept[0], 100);
    assert_int_equal(fc.nslept, 2);
    assert_non_null(strstr(tl_errmsg(b), "cancelled"));
    assert_int_equal(line_length(a, "k"), 0);
    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void priority_is_checked_and_no_line_means_no_waiters(void **state)
{
    tl_manager *a = line_mgr("a"), *b = mgr("b");
    tl_lock *la = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(
        tl_acquire(a, "k", &(struct tl_acquire_opts){.priority = TL_PRIORITY_MAX + 1}, &la),
        TL_EINVAL);
    assert_non_null(strstr(tl_errmsg(a), "priority 1001 is out of range"));
    assert_int_equal(
        tl_acquire(a, "k", &(struct tl_acquire_opts){.priority = TL_PRIORITY_MIN}, &la), TL_OK);
    /* Without the line a waiter never queues: it backs off and polls. */
    assert_int_equal(tl_acquire(b, "k", &(struct tl_acquire_opts){.retries = 1}, &lb), TL_EBUSY);
    assert_int_equal(metrics(b).queued, 0);
    assert_int_equal(fc.nslept, 1);
    tl_lock_free(la);
    tl_manager_free(a);
    tl_manager_free(b);
}

/* ---- lease extension ---- */

static void extend_changes_the_lock_timeout_and_the_deadline(void **state)
{
    tl_manager *a = line_mgr("a"), *b = line_mgr("b");
    tl_lock *la = NULL, *lb = NULL;
    struct tl_info *info = NULL;

    (void)state;
    assert_int_equal(tl_acquire(a, "k", &(struct tl_acquire_opts){.lock_timeout_ms = 3000}, &la),
                     TL_OK);
    assert_int_equal(tl_extend(la, 0), TL_EINVAL);
    assert_int_equal(tl_extend(la, 60000), TL_OK);
    assert_int_equal(tl_inspect(b, "k", &info), TL_OK);
    assert_int_equal(info->lock_timeout_ms, 60000);
    tl_info_free(info);
    assert_int_equal(tl_lock_expires_in_ms(la), 60000);
    assert_int_equal(la->interval_ms, 20000);

    /* Longer than the old timeout, it is not stale; shorter again, it is. */
    tl__heartbeat_stop(a);
    tl_fake_clock_advance(&fc, 10000);
    assert_false(tl_lock_is_lost(la));
    assert_int_equal(
        tl_acquire(b, "k",
                   &(struct tl_acquire_opts){.strategy = TL_STEAL_STALE, .retries = TL_NO_RETRIES},
                   &lb),
        TL_EBUSY);
    assert_int_equal(tl_extend(la, 2000), TL_OK);
    tl_fake_clock_advance(&fc, 2001);
    assert_true(tl_lock_is_lost(la));
    assert_int_equal(tl_extend(la, 60000), TL_ELOST);
    assert_int_equal(
        tl_acquire(b, "k",
                   &(struct tl_acquire_opts){.strategy = TL_STEAL_STALE, .retries = TL_NO_RETRIES},
                   &lb),
        TL_OK);
    /* By token, from another handle-less caller: only the holder may. */
    assert_int_equal(tl_extend_token(a, "k", tl_lock_token(lb), 5000), TL_ELOST);
    assert_int_equal(tl_extend_token(b, "k", tl_lock_token(lb), 5000), TL_OK);
    assert_int_equal(tl_inspect(a, "k", &info), TL_OK);
    assert_int_equal(info->lock_timeout_ms, 5000);
    tl_info_free(info);
    assert_int_equal(tl_release(lb, NULL), TL_OK);
    assert_int_equal(tl_extend(lb, 5000), TL_ENOTOWNER);
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(defaults_are_the_seeds, setup),
        cmocka_unit_test_setup(store_url_comes_from_the_environment, setup),
        cmocka_unit_test_setup(heartbeat_interval_follows_the_lock_timeout, setup),
        cmocka_unit_test_setup(connect_reports_bad_urls, setup),
        cmocka_unit_test_setup(store_url_is_resolved_once_connected, setup),
        cmocka_unit_test_setup(connect_never_shows_a_password, setup),
        cmocka_unit_test_setup(connect_checks_the_options, setup),
        cmocka_unit_test_setup(acquire_checks_its_arguments, setup),
        cmocka_unit_test_setup(retry_backs_off_exponentially_then_gives_up, setup),
        cmocka_unit_test_setup(jitter_spreads_waiters, setup),
        cmocka_unit_test_setup(retry_count_per_call, setup),
        cmocka_unit_test_setup(deadline_bounds_the_wait, setup),
        cmocka_unit_test_setup(retry_wins_once_released, setup),
        cmocka_unit_test_setup(steal_stale_waits_for_staleness_then_steals, setup),
        cmocka_unit_test_setup(force_takes_a_live_lock_at_once, setup),
        cmocka_unit_test_setup(store_errors_end_the_acquire, setup),
        cmocka_unit_test_setup(release_after_loss_is_refused, setup),
        cmocka_unit_test_setup(a_release_whose_reply_was_lost_is_not_a_loss, setup),
        cmocka_unit_test_setup(release_of_a_timed_out_lock_still_frees_it, setup),
        cmocka_unit_test_setup(metrics_count_what_happened, setup),
        cmocka_unit_test_setup(inspect_list_history_on_the_memory_store, setup),
        cmocka_unit_test_setup(a_waiter_is_patient_for_the_backoff_schedule_then_leaves, setup),
        cmocka_unit_test_setup(a_free_key_goes_to_the_waiter_not_to_a_newcomer, setup),
        cmocka_unit_test_setup(a_cancelled_waiter_leaves_the_line, setup),
        cmocka_unit_test_setup(priority_is_checked_and_no_line_means_no_waiters, setup),
        cmocka_unit_test_setup(extend_changes_the_lock_timeout_and_the_deadline, setup),
    };

    return cmocka_run_group_tests_name("manager", tests, NULL, NULL);
}
