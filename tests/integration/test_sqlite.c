/*
 * test_sqlite.c -- the conformance suite against the embedded SQLite store, on a fresh file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "conformance.h"
#include "tl_test.h"

int main(void)
{
    char *dir = tl_test_mkdtemp();
    char url[600];

    if (dir == NULL)
        return 1;
    (void)snprintf(url, sizeof(url), "sqlite:%s/locks.db", dir);

    const struct tl_conformance c = {
        .name = "sqlite",
        .url = url,
        .fake_clock = true,
        .multi_process = true,
        .key_format = "conf-%d",
    };
    int rc = tl_conformance_run(&c);

    tl_test_rmtree(dir);
    free(dir);
    return rc;
}
