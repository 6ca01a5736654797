/*
 * test_etcd_auth.c -- the etcd store with etcd's authentication on: a private etcd (started by
 * tests/harness/start-etcd in a temporary directory, stopped by its PID), auth enabled through
 * the gateway, a user who may read and write the store's prefix only. The right password works
 * for every operation; a wrong one, none, or a prefix outside the user's role fail with clear
 * messages that never show the password. Skipped (77) when etcd is not installed.
 */
#include <libgen.h>
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

#include "store.h"
#include "stores/etcd_client.h"
#include "tasklock.h"
#include "tl.h"
#include "tl_etcd_private.h"
#include "tl_test.h"

#define PASSWORD     "p@ss:w%rd"
#define PASSWORD_URL "p%40ss%3Aw%25rd"

static struct tl_test_etcd server;
static const char *endpoint = server.endpoint;

static void gateway(struct tl_etcd *c, const char *path, const char *body)
{
    char err[TL_ERRMSG_SIZE];
    json_t *req = json_loads(body, 0, NULL), *ans = NULL;

    assert_non_null(req);
    if (tl__etcd_post(c, path, req, TL_ETCD_WRITE, tl__real_mono_ms() + 10000, &ans, err) != TL_OK)
        fail_msg("%s: %s", path, err);
    json_decref(req);
    json_decref(ans);
}

static int start(void **state)
{
    (void)state;
    if (!tl_test_etcd_start(&server, NULL, NULL))
        fail_msg("could not start a private etcd");

    /* root (needed to enable auth), and alice, who may use the prefix "authz/" only. */
    const char *eps[] = {endpoint};
    const struct tl_etcd_opts o = {.endpoints = eps, .nendpoints = 1};
    struct tl_etcd *c = NULL;
    char err[TL_ERRMSG_SIZE];
    assert_int_equal(tl__etcd_new(&o, &c, err), TL_OK);
    gateway(c, "/v3/auth/user/add", "{\"name\":\"root\",\"password\":\"rootpw\"}");
    gateway(c, "/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}");
    gateway(c, "/v3/auth/user/add", "{\"name\":\"alice\",\"password\":\"" PASSWORD "\"}");
    gateway(c, "/v3/auth/role/add", "{\"name\":\"tl\"}");
    /* "authz/" .. "authz0" in base64 */
    gateway(c, "/v3/auth/role/grant",
            "{\"name\":\"tl\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"YXV0aHov\","
            "\"range_end\":\"YXV0aHow\"}}");
    gateway(c, "/v3/auth/user/grant", "{\"user\":\"alice\",\"role\":\"tl\"}");
    gateway(c, "/v3/auth/enable", "{}");
    tl__etcd_free(c);
    return 0;
}

static int stop(void **state)
{
    (void)state;
    tl_test_etcd_stop(&server);
    return 0;
}

static tl_manager *mgr(const char *url)
{
    tl_manager *m = tl_manager_new(
        &(struct tl_options){.store_url = url, .worker_id = "alice-w", .lock_timeout_ms = 5000});

    assert_non_null(m);
    return m;
}

static void the_right_password_does_everything(void **state)
{
    char url[256];
    tl_lock *l = NULL;
    struct tl_info **infos = NULL;
    size_t n = 0;

    (void)state;
    (void)snprintf(url, sizeof(url), "etcd://alice:%s@%s?prefix=authz/", PASSWORD_URL, endpoint);
    tl_manager *m = mgr(url);
    if (tl_connect(m) != TL_OK)
        fail_msg("connect: %s", tl_errmsg(m));
    assert_int_equal(tl_acquire(m, "job", &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l),
                     TL_OK);
    assert_int_equal(tl_renew(l), TL_OK);
    assert_int_equal(tl_list(m, &infos, &n), TL_OK);
    assert_int_equal(n, 1);
    tl_info_array_free(infos, n);
    assert_int_equal(tl_release(l, "done"), TL_OK);
    tl_lock_free(l);
    tl_manager_free(m);
}

static void wrong_or_missing_credentials_are_clear_and_secret(void **state)
{
    static const struct {
        const char *user, *prefix, *want;
    } cases[] = {
        {"alice:wrong-pw@", "authz/", "authentication failed"},
        {"", "authz/", "user name is empty"},
        {"alice:" PASSWORD_URL "@", "elsewhere/", "permission denied"}, /* outside her role */
    };
    char url[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        (void)snprintf(url, sizeof(url), "etcd://%s%s?prefix=%s", cases[i].user, endpoint,
                       cases[i].prefix);
        tl_manager *m = mgr(url);
        tl_status st = tl_connect(m);
        const char *msg = tl_errmsg(m);
        if (st != TL_ESTORE || strstr(msg, cases[i].want) == NULL)
            fail_msg("case %zu: got %s \"%s\", want \"%s\"", i, tl_strerror(st), msg,
                     cases[i].want);
        assert_null(strstr(msg, "wrong-pw"));
        assert_null(strstr(msg, "p@ss"));
        assert_null(strstr(msg, PASSWORD_URL));
        tl_manager_free(m);
    }
}

int main(void)
{
    if (!tl_test_etcd_installed()) {
        (void)fprintf(stderr, "etcd auth: etcd is not installed; skipped\n");
        return 77;
    }
    if (tl__store_find("etcd://x:1") == NULL) {
        (void)fprintf(stderr, "etcd auth: this build has no etcd store; skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_right_password_does_everything),
        cmocka_unit_test(wrong_or_missing_credentials_are_clear_and_secret),
    };
    return cmocka_run_group_tests_name("etcd auth", tests, start, stop);
}
