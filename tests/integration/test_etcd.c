/*
 * test_etcd.c -- the conformance suite against the etcd store, on the single-member etcd that
 * tests/harness/start-etcd started ($TL_TEST_ETCD_URL; skipped when unset). Each run uses a
 * prefix of its own, so runs sharing a server do not meet.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conformance.h"
#include "store.h"
#include "tl_test.h"

int main(void)
{
    const char *base = tl_test_env("TL_TEST_ETCD_URL");
    char url[512];

    if (base != NULL && tl__store_find(base) == NULL) {
        (void)fprintf(stderr, "conformance etcd: this build has no etcd store; skipped\n");
        return 77;
    }
    if (base != NULL)
        (void)snprintf(url, sizeof(url), "%s?prefix=conf-%lx-%ld/", base, (unsigned long)time(NULL),
                       (long)getpid());

    /* Leases have whole seconds, at least one with the harness's election settings. */
    const struct tl_conformance c = {
        .name = "etcd",
        .url = base ? url : NULL,
        .multi_process = true,
        .short_timeout_ms = 1000,
        .key_format = "conf-%d",
        .dead_waiters_vanish = true,
    };
    return tl_conformance_run(&c);
}
