/*
 * fuzz_duration.c -- tl_parse_duration on arbitrary text, against a model written separately:
 * the grammar DIGITS [ "." DIGITS ] [ "ms" | "s" | "m" | "h" ], a value above zero and at most
 * 24 days, read to within the parser's documented precision.
 */
#include "fuzz.h"
#include "tasklock.h"
#include "tl.h"

/* The model: whether `s` is in the grammar, and its exact value in ms (as a long double). */
static bool model(const char *s, long double *ms)
{
    long double whole = 0, frac = 0, scale = 1;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++)
        whole = whole * 10 + (*p - '0'); /* inexact when huge, but then far over the limit */
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (scale < 1e30L) {
                scale *= 10;
                frac += (*p - '0') / scale;
            }
        }
    }

    long double unit;
    if (strcmp(p, "") == 0 || strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "m") == 0)
        unit = 60000;
    else if (strcmp(p, "h") == 0)
        unit = 3600000;
    else
        return false;
    *ms = (whole + frac) * unit;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    uint32_t ms = 12345;
    tl_status st = tl_parse_duration(s, &ms);
    long double want = 0;
    bool grammar = model(s, &want);

    fuzz_check(st == TL_OK || st == TL_EINVAL, "status is TL_OK or TL_EINVAL");
    if (st != TL_OK) {
        fuzz_check(ms == 0, "*out_ms is 0 after a rejection");
        /* Whatever the grammar accepts with a value clearly inside the range must parse. */
        fuzz_check(!grammar || want < 1.0L + 3.6L || want > (long double)TL_DURATION_MAX_MS,
                   "a valid duration inside the range is accepted");
    } else {
        fuzz_check(grammar, "only the grammar is accepted");
        fuzz_check(ms > 0 && ms <= TL_DURATION_MAX_MS, "the value is within (0, 24 days]");
        /* Digits past the sixth of a fraction are cut: at most 3.6 ms (for "h"), plus the
         * rounding down to whole ms. */
        fuzz_check((long double)ms <= want + 1e-6L, "the value is not rounded up");
        fuzz_check((long double)ms > want - 1.0L - 3.6L, "the value is cut by at most 4.6 ms");

        /* The value printed back in ms reads the same. */
        char again[32];
        uint32_t back = 0;
        (void)snprintf(again, sizeof(again), "%ums", ms);
        fuzz_check(tl_parse_duration(again, &back) == TL_OK && back == ms,
                   "the value printed in ms parses back to itself");
    }

    fuzz_check(tl_parse_duration(s, NULL) == TL_EINVAL, "a NULL out is refused");
    free(s);
    return 0;
}
