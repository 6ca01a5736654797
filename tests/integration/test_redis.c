/*
 * test_redis.c -- the conformance suite against the Redis store, on the server that
 * tests/harness/start-redis started ($TL_TEST_REDIS_URI; skipped when unset). Keys carry the
 * time and process id, so runs sharing a server do not meet.
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
    const char *url = tl_test_env("TL_TEST_REDIS_URI");
    char fmt[64];

    if (url != NULL && tl__store_find(url) == NULL) {
        (void)fprintf(stderr, "conformance redis: this build has no Redis store; skipped\n");
        return 77;
    }
    (void)snprintf(fmt, sizeof(fmt), "conf-%lx-%ld-%%d", (unsigned long)time(NULL), (long)getpid());

    const struct tl_conformance c = {
        .name = "redis",
        .url = url,
        .multi_process = true,
        .short_timeout_ms = 300,
        .key_format = fmt,
    };
    return tl_conformance_run(&c);
}
