/*
 * test_clock.c -- the time formats of clock.c: ISO-8601 UTC (the metadata) and the HTTP
 * IMF-fixdate (the GitHub store's server clock); and the real clocks' sanity.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl.h"

/* 9999-12-31T23:59:59.999Z: the last instant with a four-digit year. */
#define ISO_LAST_MS INT64_C(253402300799999)

static int64_t iso_ok(const char *s)
{
    int64_t ms = -42;

    if (!tl__parse_iso(s, &ms))
        fail_msg("\"%s\" was rejected", s);
    return ms;
}

static void iso_bad(const char *s)
{
    int64_t ms = -42;

    if (tl__parse_iso(s, &ms))
        fail_msg("\"%s\" was accepted as %lld", s ? s : "(null)", (long long)ms);
}

static void format_is(int64_t ms, const char *want)
{
    char buf[TL_ISO_SIZE];

    memset(buf, 'x', sizeof(buf));
    tl__format_iso(ms, buf);
    assert_string_equal(buf, want);
}

static void iso_format(void **state)
{
    (void)state;
    format_is(0, "1970-01-01T00:00:00.000Z");
    format_is(1, "1970-01-01T00:00:00.001Z");
    format_is(1709210096123, "2024-02-29T12:34:56.123Z");
    format_is(1795735681000, "2026-11-26T23:28:01.000Z");
    format_is(951782400000, "2000-02-29T00:00:00.000Z");
    format_is(4107542400000, "2100-03-01T00:00:00.000Z");
    format_is(ISO_LAST_MS, "9999-12-31T23:59:59.999Z");
    /* Before the epoch the fraction still counts forward within the second. */
    format_is(-1, "1969-12-31T23:59:59.999Z");
    format_is(-1000, "1969-12-31T23:59:59.000Z");
    format_is(-1001, "1969-12-31T23:59:58.999Z");
    format_is(-86400000, "1969-12-31T00:00:00.000Z");
}

static void iso_format_extremes(void **state)
{
    char buf[TL_ISO_SIZE];

    (void)state;
    /* Not meaningful times, but a corrupt record must not make the formatter overflow
     * (UBSan would stop here) or write past the buffer. */
    tl__format_iso(INT64_MIN, buf);
    assert_non_null(memchr(buf, '\0', sizeof(buf)));
    assert_true(buf[strlen(buf) - 1] == 'Z');
    assert_true(buf[0] == '-');
    tl__format_iso(INT64_MIN + 1, buf);
    assert_true(buf[strlen(buf) - 1] == 'Z');
    tl__format_iso(INT64_MAX, buf);
    assert_non_null(memchr(buf, '\0', sizeof(buf)));
    assert_true(buf[strlen(buf) - 1] == 'Z');
    assert_non_null(strstr(buf, ".807Z"));
    /* And a text beyond year 9999 is not read back. */
    int64_t ms;
    tl__format_iso(ISO_LAST_MS + 1, buf);
    assert_string_equal(buf, "10000-01-01T00:00:00.000Z");
    assert_false(tl__parse_iso(buf, &ms));
}

static void iso_round_trip(void **state)
{
    static const int64_t values[] = {
        0,
        1,
        999,
        1000,
        86399999,
        86400000,
        951782400000,  /* 2000-02-29 */
        1709210096123, /* 2024-02-29 */
        1767225600000, /* 2026-01-01 */
        4107542400000, /* 2100-03-01 */
        ISO_LAST_MS,
        ISO_LAST_MS - 86400000 * INT64_C(366),
    };
    char buf[TL_ISO_SIZE];

    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        int64_t back = -42;

        tl__format_iso(values[i], buf);
        if (!tl__parse_iso(buf, &back) || back != values[i])
            fail_msg("%lld -> \"%s\" -> %lld", (long long)values[i], buf, (long long)back);
    }
    /* Every day of a leap year and of a common year. */
    for (int64_t ms = 1704067200000; ms < 1767225600000; ms += 86400000 + 1001) {
        int64_t back = -42;

        tl__format_iso(ms, buf);
        assert_true(tl__parse_iso(buf, &back));
        assert_true(back == ms);
    }
}

static void iso_parse_values(void **state)
{
    (void)state;
    assert_true(iso_ok("1970-01-01T00:00:00Z") == 0);
    assert_true(iso_ok("1970-01-01T00:00:00.000Z") == 0);
    assert_true(iso_ok("2024-02-29T12:34:56Z") == 1709210096000);
    assert_true(iso_ok("2024-02-29T12:34:56.123Z") == 1709210096123);
    assert_true(iso_ok("2000-02-29T00:00:00Z") == 951782400000);
    assert_true(iso_ok("9999-12-31T23:59:59.999Z") == ISO_LAST_MS);
    /* Lower-case separators (RFC 3339 allows them) and the explicit zero offset. */
    assert_true(iso_ok("2024-02-29t12:34:56.123z") == 1709210096123);
    assert_true(iso_ok("2024-02-29T12:34:56.123+00:00") == 1709210096123);
    assert_true(iso_ok("2024-02-29T12:34:56+00:00") == 1709210096000);
    /* A leap second reads as the first instant of the next minute. */
    assert_true(iso_ok("2016-12-31T23:59:60Z") == iso_ok("2017-01-01T00:00:00Z"));
}

static void iso_fractions(void **state)
{
    (void)state;
    const int64_t base = 1709210096000;

    assert_true(iso_ok("2024-02-29T12:34:56.1Z") == base + 100);
    assert_true(iso_ok("2024-02-29T12:34:56.12Z") == base + 120);
    assert_true(iso_ok("2024-02-29T12:34:56.123Z") == base + 123);
    assert_true(iso_ok("2024-02-29T12:34:56.1234Z") == base + 123);
    assert_true(iso_ok("2024-02-29T12:34:56.12345Z") == base + 123);
    assert_true(iso_ok("2024-02-29T12:34:56.123456Z") == base + 123);
    assert_true(iso_ok("2024-02-29T12:34:56.1234567Z") == base + 123);
    assert_true(iso_ok("2024-02-29T12:34:56.12345678Z") == base + 123);
    assert_true(iso_ok("2024-02-29T12:34:56.999999999Z") == base + 999);
    iso_bad("2024-02-29T12:34:56.1234567891Z"); /* ten digits */
    iso_bad("2024-02-29T12:34:56.Z");
    iso_bad("2024-02-29T12:34:56..1Z");
    iso_bad("2024-02-29T12:34:56.1.2Z");
    iso_bad("2024-02-29T12:34:56,123Z");
}

static void iso_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "2024-02-29",
        "2024-02-29T12:34:56",     /* missing Z */
        "2024-02-29T12:34:56.123", /* missing Z */
        "2024-02-29 12:34:56Z",    /* space for T */
        "2024-02-29T12:34:56ZZ",   /* trailing junk */
        "2024-02-29T12:34:56Z ",   /* trailing junk */
        "2024-02-29T12:34:56.5Zx", /* trailing junk */
        "2024-02-29T12:34:56+00:00x",
        "2024-02-29T12:34:56+0000",
        "2024-02-29T12:34:56+01:00", /* not UTC */
        "2024-02-29T12:34:56-00:00",
        "2023-02-29T00:00:00Z", /* not a leap year */
        "2100-02-29T00:00:00Z", /* not a leap year */
        "2024-02-30T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-13-01T00:00:00Z", /* month 13 */
        "2024-00-01T00:00:00Z", /* month 0 */
        "2024-01-00T00:00:00Z", /* day 0 */
        "2024-01-32T00:00:00Z",
        "2024-01-01T24:00:00Z", /* hour 24 */
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:61Z",
        "1969-12-31T23:59:59Z", /* before the epoch */
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:60Z", /* a leap second into year 10000 */
        "10000-01-01T00:00:00Z",
        "+2024-02-29T12:34:56Z",
        "2024-2-29T12:34:56.000Z",
        "2024-02-29T1:34:56.000Z",
        "2024-02-29T12:34:5.000Z",
        "2024-02-29T12:34:-1.000Z",
        "2024/02/29T12:34:56Z",
        "2024-02-29T12.34.56Z",
        "２０２４-02-29T12:34:56Z",
        "2024-02-29T12:34:56\xef\xbc\xba",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        iso_bad(bad[i]);
    iso_bad(NULL);
}

/* ---- HTTP dates ---- */

static void http_date_valid(void **state)
{
    int64_t ms = -42;

    (void)state;
    assert_true(tl__parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &ms));
    assert_true(ms == 784111777000);
    assert_true(tl__parse_http_date("Thu, 29 Feb 2024 12:34:56 GMT", &ms));
    assert_true(ms == 1709210096000);
    assert_true(tl__parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", &ms));
    assert_true(ms == 0);
    assert_true(tl__parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT", &ms));
    assert_true(ms == ISO_LAST_MS - 999);
    /* The weekday is not checked against the date: servers get it right, and it carries no
     * information. */
    assert_true(tl__parse_http_date("Mon, 06 Nov 1994 08:49:37 GMT", &ms));
    assert_true(ms == 784111777000);
    assert_true(tl__parse_http_date("Xyz, 06 Nov 1994 08:49:37 GMT", &ms));
    assert_true(ms == 784111777000);
    /* Every month name. */
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++) {
        char text[40];
        char iso[32];
        int64_t want = -1;

        (void)snprintf(text, sizeof(text), "Sun, 15 %s 2026 10:20:30 GMT", months[i]);
        (void)snprintf(iso, sizeof(iso), "2026-%02d-15T10:20:30Z", i + 1);
        assert_true(tl__parse_iso(iso, &want));
        assert_true(tl__parse_http_date(text, &ms));
        assert_true(ms == want);
    }
}

static void http_date_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37",     /* no zone */
        "Sun, 06 Nov 1994 08:49:37 UTC", /* IMF-fixdate says GMT */
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 06 Nov 1994 08:49:37 GMX",
        "Sun, 06 Nov 1994 08:49:37 GMT ", /* trailing junk */
        "Sun, 06 Nov 1994 08:49:37 GMTX",
        "Sun, 6 Nov 1994 08:49:37 GMT",  /* one-digit day */
        "Sun, 06 Nov 94 08:49:37 GMT",   /* two-digit year */
        "Sun, 06 Xyz 1994 08:49:37 GMT", /* no such month */
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 06 NOV 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT", /* RFC 850 form */
        "Sun Nov  6 08:49:37 1994",       /* asctime form */
        "Sun, 31 Nov 1994 08:49:37 GMT",  /* no 31st of November */
        "Thu, 29 Feb 2023 12:34:56 GMT",  /* not a leap year */
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 06 Nov 1994 08:60:37 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Wed, 31 Dec 1969 23:59:59 GMT",
        "Fri, 31 Dec 9999 23:59:60 GMT", /* a leap second into year 10000 */
        "Sun; 06 Nov 1994 08:49:37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT ",
        "Sun, 06 Nov 1994 08-49-37 GMT",
        "Sun, 0x Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994T08:49:37 GMT",
    };
    int64_t ms = -42;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tl__parse_http_date(bad[i], &ms))
            fail_msg("\"%s\" was accepted as %lld", bad[i], (long long)ms);
    }
    assert_false(tl__parse_http_date(NULL, &ms));
}

/* ---- the real clocks ---- */

static void real_clocks_are_sane(void **state)
{
    (void)state;
    int64_t now = tl__real_now_ms();
    assert_true(now > 1704067200000); /* after 2024-01-01 */
    assert_true(now < ISO_LAST_MS);

    int64_t a = tl__real_mono_ms();
    int64_t b = tl__real_mono_ms();
    assert_true(b >= a);
    assert_true(tl__real_clock.now_ms != NULL);
    assert_true(tl__real_clock.mono_ms != NULL);
    assert_true(tl__real_clock.sleep_ms != NULL);
    assert_true(tl__real_clock.now_ms(NULL) >= now);
    assert_true(tl__real_clock.mono_ms(NULL) >= b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(iso_format),           cmocka_unit_test(iso_format_extremes),
        cmocka_unit_test(iso_round_trip),       cmocka_unit_test(iso_parse_values),
        cmocka_unit_test(iso_fractions),        cmocka_unit_test(iso_rejects),
        cmocka_unit_test(http_date_valid),      cmocka_unit_test(http_date_rejects),
        cmocka_unit_test(real_clocks_are_sane),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
