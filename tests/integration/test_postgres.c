/*
 * test_postgres.c -- the conformance suite against the PostgreSQL store, on the server that
 * tests/harness/start-postgres started (TL_TEST_POSTGRES_URI; skipped when unset). The keys are
 * unique per run, so a long-lived server can be reused.
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
#include "tl_test.h"

int main(void)
{
    char keys[64];

    (void)snprintf(keys, sizeof(keys), "conf-%lx-%lx-%%d", (unsigned long)time(NULL),
                   (unsigned long)getpid());
    const struct tl_conformance c = {
        .name = "postgres",
        .url = tl_test_env("TL_TEST_POSTGRES_URI"),
        .multi_process = true,
        .short_timeout_ms = 300,
        .key_format = keys,
    };
    return tl_conformance_run(&c);
}
