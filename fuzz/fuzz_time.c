/*
 * fuzz_time.c -- tl__parse_iso and tl__parse_http_date on arbitrary text. Whatever they accept
 * must be what the text says (checked by writing the time back with the C library), must be in
 * the range tl__format_iso writes, and must survive format -> parse unchanged. tl__format_iso
 * itself gets any int64 from the input's first bytes.
 */
#include <time.h>

#include "fuzz.h"
#include "tasklock.h"
#include "tl.h"

#define TIME_MAX_MS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

/* The broken-down UTC time of `ms` (>= 0), by the C library rather than by clock.c. */
static void utc(int64_t ms, struct tm *tm)
{
    time_t t = (time_t)(ms / 1000);

    fuzz_check(gmtime_r(&t, tm) != NULL, "gmtime_r");
}

static void check_round_trip(int64_t ms)
{
    char buf[TL_ISO_SIZE];
    int64_t back = -1;

    tl__format_iso(ms, buf);
    fuzz_check(tl__parse_iso(buf, &back), "a formatted time parses");
    fuzz_check(back == ms, "format -> parse gives the same time");
}

static void fuzz_iso(const char *s)
{
    int64_t ms = -1;

    if (!tl__parse_iso(s, &ms))
        return;
    fuzz_check(strlen(s) >= 20, "an ISO time has at least 20 characters");
    fuzz_check(ms >= 0 && ms <= TIME_MAX_MS, "an ISO time is within 1970..9999");
    check_round_trip(ms);

    /* The date and time fields say what was parsed. A leap second (":60") reads as the next
     * second, so it is compared as the ":59" before it. Lower-case 't' is allowed. */
    struct tm tm;
    char want[32];
    bool leap = strncmp(s + 17, "60", 2) == 0;
    utc(ms - (leap ? 1000 : 0), &tm);
    fuzz_check(strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm) == 19, "strftime");
    if (leap) {
        want[17] = '6';
        want[18] = '0';
    }
    for (size_t i = 0; i < 19; i++) {
        /* s has at least 20 characters (checked above), which the analyzer cannot see. */
        // NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult)
        bool same = s[i] == want[i] || (s[i] == 't' && want[i] == 'T');
        fuzz_check(same, "the parsed ISO time is the one written");
    }

    /* The milliseconds are the fraction's first three digits. */
    int frac = 0, scale = 100;
    if (s[19] == '.') {
        for (const char *p = s + 20; *p >= '0' && *p <= '9' && scale > 0; p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    fuzz_check(ms % 1000 == frac, "the milliseconds are the fraction's first digits");
}

static void fuzz_http(const char *s)
{
    int64_t ms = -1;

    if (!tl__parse_http_date(s, &ms))
        return;
    fuzz_check(strlen(s) == 29, "an HTTP date has 29 characters");
    fuzz_check(ms >= 0 && ms <= TIME_MAX_MS, "an HTTP date is within 1970..9999");
    fuzz_check(ms % 1000 == 0, "an HTTP date has whole seconds");
    check_round_trip(ms);

    /* Everything after the (unchecked) weekday is what the C library writes for that time; a
     * leap second is compared as the ":59" before it. */
    struct tm tm;
    char want[40];
    bool leap = strncmp(s + 23, "60", 2) == 0;
    utc(ms - (leap ? 1000 : 0), &tm);
    fuzz_check(strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 29, "strftime");
    if (leap) {
        want[23] = '6';
        want[24] = '0';
    }
    fuzz_check(strcmp(s + 3, want + 3) == 0, "the parsed HTTP date is the one written");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);

    fuzz_iso(s);
    fuzz_http(s);

    /* Any int64 formats without overflow into a terminated text; those in range read back. */
    if (size >= sizeof(int64_t)) {
        int64_t v;
        char buf[TL_ISO_SIZE];

        memcpy(&v, data, sizeof(v));
        tl__format_iso(v, buf);
        fuzz_check(memchr(buf, '\0', sizeof(buf)) != NULL, "the text is terminated");
        if (v >= 0 && v <= TIME_MAX_MS)
            check_round_trip(v);
        else
            check_round_trip(v < 0 ? (int64_t)((uint64_t)v % (TIME_MAX_MS + 1))
                                   : v % (TIME_MAX_MS + 1));
    }
    free(s);
    return 0;
}
