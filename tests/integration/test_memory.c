/*
 * test_memory.c -- the conformance suite against the in-process store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conformance.h"

int main(void)
{
    const struct tl_conformance c = {
        .name = "memory",
        .url = "memory:conformance",
        .fake_clock = true,
        .key_format = "conf-%d",
    };

    return tl_conformance_run(&c);
}
