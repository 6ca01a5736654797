/*
 * test_github_limits.c -- the GitHub store under rate limits, on a private tl-github-server:
 * secondary limits (403/429, with and without retry-after), primary exhaustion, and the
 * process-wide write budget. It waits as told when the caller's deadline allows, fails with
 * TL_ERATELIMIT saying until when otherwise, and never hammers: while a limit is in force no
 * request leaves the process. Its own executable, because that state is process-wide.
 */
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

#ifndef TL_WITH_GITHUB
int main(void)
{
    fprintf(stderr, "github limits: this build has no GitHub store; skipped\n");
    return 77;
}
#else
#include "spawn.h"
#include "stores/github.h"

static struct tl_ghs srv;

static int admin(const char *method, const char *path, const char *body)
{
    char *resp = NULL;
    int st = tl_ghs_admin(&srv, method, path, body, &resp);

    free(resp);
    return st;
}

static int setup(void **state)
{
    (void)state;
    tl__gh_reset_limits();
    assert_int_equal(admin("POST", "/_admin/faults", "{\"clear\":true}"), 200);
    assert_int_equal(admin("POST", "/_admin/stats/reset", NULL), 200);
    return 0;
}

static tl_manager *mgr(const char *worker, const char *extra)
{
    char url[512];

    /* Per-claim heartbeats (sessions=off): the counts below are the claim protocol's; the
     * sessions' own budget is tested in test_github_session.c. */
    (void)snprintf(url, sizeof(url), "github://acme/widgets?api_url=%s&sessions=off%s%s", srv.url,
                   extra ? "&" : "", extra ? extra : "");
    const struct tl_options o = {
        .store_url = url, .worker_id = worker, .node_id = "n", .lock_timeout_ms = 60000};
    tl_manager *m = tl_manager_new(&o);
    assert_non_null(m);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    return m;
}

static tl_status acquire(tl_manager *m, const char *key, uint32_t deadline_ms, tl_lock **out)
{
    const struct tl_acquire_opts o = {.strategy = TL_FAIL_FAST, .deadline_ms = deadline_ms};

    return tl_acquire(m, key, &o, out);
}

static void secondary_limit_with_retry_after_is_waited_out(void **state)
{
    tl_manager *m = mgr("w1", NULL);
    tl_lock *l = NULL;

    (void)state;
    assert_int_equal(admin("POST", "/_admin/stats/reset", NULL), 200);
    assert_int_equal(admin("POST", "/_admin/faults",
                           "{\"secondary_limit\":{\"count\":1,\"status\":403,\"retry_after\":2}}"),
                     200);
    int64_t t0 = tl__real_mono_ms();
    assert_int_equal(acquire(m, "1", 10000, &l), TL_OK);
    int64_t took = tl__real_mono_ms() - t0;
    print_message("waited %lld ms; %ld requests, %ld refused\n", (long long)took,
                  tl_ghs_stat(&srv, "total"), tl_ghs_stat(&srv, "status:403"));
    assert_true(took >= 1900);
    assert_int_equal(tl_ghs_stat(&srv, "status:403"), 1);
    assert_int_equal(tl_ghs_stat(&srv, "total"), 5); /* 4 + the one refused */
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void secondary_limit_without_retry_after_never_hammers(void **state)
{
    tl_manager *a = mgr("w2", NULL), *b = mgr("w3", NULL);
    tl_lock *l = NULL;

    (void)state;
    assert_int_equal(admin("POST", "/_admin/stats/reset", NULL), 200);
    assert_int_equal(
        admin("POST", "/_admin/faults", "{\"secondary_limit\":{\"count\":100,\"status\":429}}"),
        200);
    int64_t t0 = tl__real_mono_ms();
    assert_int_equal(acquire(a, "2", 3000, &l), TL_ERATELIMIT);
    print_message("%s\n", tl_errmsg(a));
    assert_true(tl__real_mono_ms() - t0 < 3000);
    assert_non_null(strstr(tl_errmsg(a), "until"));
    assert_int_equal(tl_ghs_stat(&srv, "total"), 1); /* backs off 60 s: not waited, not retried */
    /* Another manager of the process does not send anything while the limit is in force. */
    assert_int_equal(acquire(b, "3", 3000, &l), TL_ERATELIMIT);
    assert_int_equal(tl_ghs_stat(&srv, "total"), 1);
    tl_manager_free(a);
    tl_manager_free(b);
}

static void primary_exhaustion_waits_until_reset(void **state)
{
    tl_manager *m = mgr("w4", NULL);
    tl_lock *l = NULL;

    (void)state;
    assert_int_equal(
        admin("POST", "/_admin/faults", "{\"primary_exhausted\":{\"count\":1,\"reset_in_s\":60}}"),
        200);
    assert_int_equal(acquire(m, "4", 2000, &l), TL_ERATELIMIT);
    print_message("%s\n", tl_errmsg(m));
    assert_non_null(strstr(tl_errmsg(m), "primary"));
    assert_non_null(strstr(tl_errmsg(m), "until"));
    assert_int_equal(tl_ghs_stat(&srv, "status:403"), 1);

    tl__gh_reset_limits();
    assert_int_equal(
        admin("POST", "/_admin/faults", "{\"primary_exhausted\":{\"count\":1,\"reset_in_s\":2}}"),
        200);
    int64_t t0 = tl__real_mono_ms();
    assert_int_equal(acquire(m, "4", 15000, &l), TL_OK);
    print_message("waited %lld ms for the reset\n", (long long)(tl__real_mono_ms() - t0));
    assert_true(tl__real_mono_ms() - t0 >= 1500);
    assert_int_equal(tl_ghs_stat(&srv, "status:403"), 2);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void write_budget_is_shared_by_the_process(void **state)
{
    tl_manager *a = mgr("w5", "write_budget=2/min,100/h"), *b = mgr("w6", "write_budget=2,100");
    tl_lock *l = NULL, *lb = NULL;

    (void)state;
    assert_int_equal(acquire(a, "5", 0, &l), TL_OK); /* 2 writes: the budget is spent */
    assert_int_equal(admin("POST", "/_admin/stats/reset", NULL), 200);
    assert_int_equal(acquire(b, "6", 1000, &lb), TL_ERATELIMIT);
    print_message("%s\n", tl_errmsg(b));
    assert_non_null(strstr(tl_errmsg(b), "write budget"));
    assert_non_null(strstr(tl_errmsg(b), "until"));
    assert_int_equal(tl_ghs_stat(&srv, "writes"), 0);
    /* the heartbeat too: it waits at most a quarter of the lock timeout (15 s), not a minute */
    assert_int_equal(tl_renew(l), TL_ERATELIMIT);
    assert_int_equal(tl_ghs_stat(&srv, "writes"), 0);
    tl__gh_reset_limits();
    assert_int_equal(tl_renew(l), TL_OK);
    /* Released through a connection without a budget: a's 3 writes would wait out the
     * minute (a call without a deadline may wait up to max_wait). */
    tl_manager *c = mgr("w5", "write_budget=off");
    assert_int_equal(c->store->ops->release(c->store, &l->rec, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(a);
    tl_manager_free(b);
    tl_manager_free(c);
}

/*
 * A renew has no caller's deadline, yet all its waits together end within its limit (a quarter
 * of the lock timeout, here max_wait=2s): secondary limits answered one after another, each with
 * retry-after 1 s, are not waited out one by one past it (that took 4 s, and could outlast the
 * lock). It fails with TL_ERATELIMIT instead, and the heartbeat tries again later.
 */
static void renew_waits_within_its_limit_in_all(void **state)
{
    tl_manager *m = mgr("w7", "max_wait=2s");
    tl_lock *l = NULL;

    (void)state;
    assert_int_equal(acquire(m, "7", 0, &l), TL_OK); /* heartbeat: every 15 s, not in the way */
    assert_int_equal(admin("POST", "/_admin/stats/reset", NULL), 200);
    assert_int_equal(admin("POST", "/_admin/faults",
                           "{\"secondary_limit\":{\"count\":4,\"status\":403,\"retry_after\":1}}"),
                     200);
    int64_t t0 = tl__real_mono_ms();
    tl_status st = tl_renew(l);
    int64_t took = tl__real_mono_ms() - t0;
    print_message("renew under repeated secondary limits: %s after %lld ms, %ld refused\n",
                  tl_strerror(st), (long long)took, tl_ghs_stat(&srv, "status:403"));
    assert_int_equal(st, TL_ERATELIMIT);
    assert_true(took < 2000 + 500);
    /* Each wait runs to "retry-after" past the server's Date, which has whole seconds only, so
     * a wait may be shorter than a second: at most 2 s / 1 s + 1 requests fit in the limit. The
     * old code went on to the fourth. */
    assert_true(tl_ghs_stat(&srv, "status:403") <= 3);

    tl__gh_reset_limits();
    assert_int_equal(admin("POST", "/_admin/faults", "{\"clear\":true}"), 200);
    assert_int_equal(tl_renew(l), TL_OK);
    assert_int_equal(tl_release(l, NULL), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

int main(void)
{
    const char *const args[] = {
        "--repo", "acme/widgets", "--issues", "10", "--token", "tasklock-bot=limits-token", NULL};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(secondary_limit_with_retry_after_is_waited_out, setup),
        cmocka_unit_test_setup(secondary_limit_without_retry_after_never_hammers, setup),
        cmocka_unit_test_setup(primary_exhaustion_waits_until_reset, setup),
        cmocka_unit_test_setup(write_budget_is_shared_by_the_process, setup),
        cmocka_unit_test_setup(renew_waits_within_its_limit_in_all, setup),
    };

    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", "limits-token", 1);
    int rc = cmocka_run_group_tests_name("github_limits", tests, NULL, NULL);
    tl_ghs_stop(&srv);
    return rc;
}
#endif
