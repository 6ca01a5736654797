/*
 * test_etcd_tls.c -- the etcd store over TLS (`?tls=1`): a private etcd whose client port
 * speaks https with a self-signed certificate for 127.0.0.1 made by openssl for this run. With
 * the certificate as `cacert` everything works; without it the peer is not trusted (never
 * silently accepted), and plain http to a TLS port fails clearly. Skipped (77) when etcd or
 * openssl is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "tasklock.h"
#include "tl_etcd_private.h"
#include "tl_test.h"

static struct tl_test_etcd server;
static char certdir[1024];

static int start(void **state)
{
    char cmd[4096], env[2200];
    char *dir = tl_test_mkdtemp();

    (void)state;
    assert_non_null(dir);
    (void)snprintf(certdir, sizeof(certdir), "%s", dir);
    free(dir);
    (void)snprintf(cmd, sizeof(cmd),
                   "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                   "-keyout %s/key.pem -out %s/cert.pem -days 2 -subj /CN=127.0.0.1 "
                   "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
                   certdir, certdir);
    if (system(cmd) != 0)
        fail_msg("openssl could not make a certificate");
    (void)snprintf(env, sizeof(env), "TL_ETCD_CERT=%s/cert.pem TL_ETCD_KEY=%s/key.pem", certdir,
                   certdir);
    if (!tl_test_etcd_start(&server, NULL, env))
        fail_msg("could not start a private etcd with TLS");
    return 0;
}

static int stop(void **state)
{
    (void)state;
    tl_test_etcd_stop(&server);
    tl_test_rmtree(certdir);
    return 0;
}

static tl_status connect_to(const char *url, char *msg, size_t cap)
{
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "tls-w"});
    tl_lock *l = NULL;

    assert_non_null(m);
    tl_status st = tl_connect(m);
    if (st == TL_OK) {
        st = tl_acquire(m, "job", &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l);
        if (st == TL_OK)
            st = tl_release(l, "done");
        tl_lock_free(l);
    }
    (void)snprintf(msg, cap, "%s", tl_errmsg(m));
    tl_manager_free(m);
    return st;
}

static void tls_with_the_ca_works(void **state)
{
    char url[2048], msg[512];

    (void)state;
    (void)snprintf(url, sizeof(url), "etcd://%s?tls=1&cacert=%s/cert.pem", server.endpoint,
                   certdir);
    if (connect_to(url, msg, sizeof(msg)) != TL_OK)
        fail_msg("%s: %s", url, msg);
}

static void an_untrusted_or_plain_connection_fails_clearly(void **state)
{
    char url[2048], msg[512];

    (void)state;
    /* The system's CAs do not know this certificate. */
    (void)snprintf(url, sizeof(url), "etcd://%s?tls=1", server.endpoint);
    assert_int_equal(connect_to(url, msg, sizeof(msg)), TL_ESTORE);
    assert_non_null(strstr(msg, "certificate"));
    /* http to an https port. */
    (void)snprintf(url, sizeof(url), "etcd://%s?request_timeout=1s", server.endpoint);
    tl_status st = connect_to(url, msg, sizeof(msg));
    if (st == TL_OK)
        fail_msg("plain http to a TLS port succeeded");
    assert_non_null(strstr(msg, server.endpoint));
}

int main(void)
{
    if (!tl_test_etcd_installed() || system("command -v openssl >/dev/null 2>&1") != 0) {
        (void)fprintf(stderr, "etcd tls: etcd or openssl is not installed; skipped\n");
        return 77;
    }
    if (tl__store_find("etcd://x:1") == NULL) {
        (void)fprintf(stderr, "etcd tls: this build has no etcd store; skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_with_the_ca_works),
        cmocka_unit_test(an_untrusted_or_plain_connection_fails_clearly),
    };
    return cmocka_run_group_tests_name("etcd tls", tests, start, stop);
}
