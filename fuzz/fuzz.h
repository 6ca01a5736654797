/*
 * fuzz.h -- helpers shared by the libFuzzer targets in this folder.
 */
#ifndef TL_FUZZ_H
#define TL_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entry point libFuzzer calls with each input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stops the run with `what` when an oracle does not hold: libFuzzer keeps the input. */
static inline void fuzz_check(bool ok, const char *what)
{
    if (!ok) {
        (void)fprintf(stderr, "fuzz oracle failed: %s\n", what);
        abort();
    }
}

/* The input as a C string (cut at its first NUL, if any). The caller frees it with free(). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    fuzz_check(s != NULL, "out of memory");
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif /* TL_FUZZ_H */
