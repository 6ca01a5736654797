/*
 * test_util.c -- the validators and parsers of util.c: durations, keys and ids, decimal
 * numbers, URL redaction; and the static texts (status, event kind, version).
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

/* ---- tl_parse_duration ---- */

static uint32_t duration_ok(const char *text)
{
    uint32_t ms = 12345;

    if (tl_parse_duration(text, &ms) != TL_OK)
        fail_msg("duration \"%s\" was rejected", text);
    return ms;
}

static void duration_bad(const char *text)
{
    uint32_t ms = 12345;

    if (tl_parse_duration(text, &ms) != TL_EINVAL)
        fail_msg("duration \"%s\" was accepted as %u ms", text ? text : "(null)", ms);
    if (ms != 0)
        fail_msg("duration \"%s\": *out is %u after a rejection, not 0", text ? text : "(null)",
                 ms);
}

static void duration_units(void **state)
{
    (void)state;
    assert_int_equal(duration_ok("250ms"), 250);
    assert_int_equal(duration_ok("30s"), 30000);
    assert_int_equal(duration_ok("1.5s"), 1500);
    assert_int_equal(duration_ok("5m"), 300000);
    assert_int_equal(duration_ok("1h"), 3600000);
    assert_int_equal(duration_ok("1ms"), 1);
    assert_int_equal(duration_ok("0.25s"), 250);
    assert_int_equal(duration_ok("0.5m"), 30000);
    assert_int_equal(duration_ok("1.5h"), 5400000);
    assert_int_equal(duration_ok("007s"), 7000);
    /* Fractions finer than the unit's millisecond are cut, not rounded. */
    assert_int_equal(duration_ok("1.9999ms"), 1);
    assert_int_equal(duration_ok("1.0009s"), 1000);
    assert_int_equal(duration_ok("1.123456789s"), 1123);
}

static void duration_bare_seconds(void **state)
{
    (void)state;
    assert_int_equal(duration_ok("30"), 30000);
    assert_int_equal(duration_ok("1"), 1000);
    assert_int_equal(duration_ok("1.5"), 1500);
    assert_int_equal(duration_ok("0.001"), 1);
}

static void duration_zero_rejected(void **state)
{
    (void)state;
    /* The contract: more than zero (the CLI maps "--wait 0" itself). */
    duration_bad("0");
    duration_bad("0s");
    duration_bad("0ms");
    duration_bad("0.0s");
    duration_bad("0.0001s"); /* rounds down to 0 ms */
    duration_bad("0.5ms");
}

static void duration_limits(void **state)
{
    (void)state;
    /* 24 days is the largest duration. */
    assert_int_equal(duration_ok("576h"), TL_DURATION_MAX_MS);
    assert_int_equal(duration_ok("34560m"), TL_DURATION_MAX_MS);
    assert_int_equal(duration_ok("2073600s"), TL_DURATION_MAX_MS);
    assert_int_equal(duration_ok("2073600"), TL_DURATION_MAX_MS);
    assert_int_equal(duration_ok("2073600000ms"), TL_DURATION_MAX_MS);
    duration_bad("2073600001ms");
    duration_bad("2073600.001s");
    duration_bad("576.0001h");
    duration_bad("577h");
    duration_bad("34561m");
    duration_bad("4294967296ms"); /* would wrap a uint32 to 0 */
    duration_bad("4294968s");     /* would wrap a uint32 to a small value */
    /* Overflow attempts of the parser's own arithmetic. */
    duration_bad("99999999999999999999h");
    duration_bad("18446744073709551616ms");
    duration_bad("18446744073709551617");
    duration_bad("5124095576030431h"); /* 2^64 / 3600000 */
    duration_bad("307445734561825861m");
    /* Long fractions are cut at microseconds, never accumulated. */
    assert_int_equal(duration_ok("1.99999999999999999999999999999s"), 1999);
    assert_int_equal(duration_ok("575.99999999999999999999999999h"), TL_DURATION_MAX_MS - 4);
}

static void duration_junk(void **state)
{
    static const char *const junk[] = {
        "",      "s",     "ms",   "1x",   "-1s", "+1s",  "1 s", " 1s",  "1s ", "1.s",  ".5s",
        "1..5s", "1.5.s", "1e3",  "1S",   "1MS", "1sec", "1d",  "1mss", "1hh", "1m s", "0x10",
        "1,5s",  "1s1",   "\t1s", "1s\n", "inf", "nan",  "1.",  "1.5 ", "h",   ".",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        duration_bad(junk[i]);
    duration_bad(NULL);
    assert_int_equal(tl_parse_duration("1s", NULL), TL_EINVAL);
}

/* ---- tl__check_id / tl_key_is_valid ---- */

static void id_bad(const char *s, size_t max, const char *why_part)
{
    const char *why = tl__check_id(s, max);

    if (why == NULL)
        fail_msg("id \"%s\" was accepted", s ? s : "(null)");
    if (strstr(why, why_part) == NULL)
        fail_msg("id \"%s\": \"%s\" does not say \"%s\"", s ? s : "(null)", why, why_part);
}

static void key_bad(const char *key, const char *why_part)
{
    assert_false(tl_key_is_valid(key));
    id_bad(key, TL_KEY_MAX, why_part);
    id_bad(key, TL_ID_MAX, why_part);
}

static void key_good(const char *key)
{
    const char *why = tl__check_id(key, TL_KEY_MAX);

    if (why != NULL)
        fail_msg("key \"%s\" was rejected: %s", key, why);
    assert_true(tl_key_is_valid(key));
}

static void id_empty_and_length(void **state)
{
    char buf[TL_KEY_MAX + 2];

    (void)state;
    key_bad(NULL, "empty");
    key_bad("", "empty");

    memset(buf, 'k', sizeof(buf));
    buf[TL_KEY_MAX] = '\0';
    key_good(buf);
    buf[TL_KEY_MAX] = 'k';
    buf[TL_KEY_MAX + 1] = '\0';
    assert_false(tl_key_is_valid(buf));
    id_bad(buf, TL_KEY_MAX, "too long");

    buf[TL_ID_MAX] = '\0';
    assert_null(tl__check_id(buf, TL_ID_MAX));
    buf[TL_ID_MAX] = 'k';
    buf[TL_ID_MAX + 1] = '\0';
    id_bad(buf, TL_ID_MAX, "too long");
    assert_null(tl__check_id(buf, TL_KEY_MAX)); /* 129 bytes is a fine key */

    /* The limit counts bytes, not characters: 85 x "漢" is 255 bytes, one more is 258. */
    for (int i = 0; i < 85; i++)
        memcpy(buf + 3 * i, "\xe6\xbc\xa2", 3);
    buf[255] = '\0';
    assert_int_equal(strlen(buf), 255);
    key_good(buf);
    char longer[260];
    (void)snprintf(longer, sizeof(longer), "%s\xe6\xbc\xa2", buf);
    id_bad(longer, TL_KEY_MAX, "too long");
}

static void id_good(void **state)
{
    (void)state;
    key_good("a");
    key_good("task-42");
    key_good("#123");
    key_good("build/linux:x86_64@main");
    key_good("caf\xc3\xa9");              /* é */
    key_good("\xe6\xbc\xa2\xe5\xad\x97"); /* 漢字 */
    key_good("job-\xf0\x9f\x94\x92");     /* 🔒 */
    key_good("\xc2\xa1");                 /* U+00A1, first code point after the C1 block */
    key_good("\xef\xbf\xbd");             /* U+FFFD */
    key_good("\xf4\x8f\xbf\xbf");         /* U+10FFFF, the last code point */
    key_good("~!$%^&*()[]{}<>|\\\"'`");
}

static void id_control_and_space(void **state)
{
    (void)state;
    key_bad("a\tb", "control");
    key_bad("a\nb", "control");
    key_bad("a\rb", "control");
    key_bad("\x01", "control");
    key_bad("x\x1f", "control");
    key_bad("a\x7f", "control");
    key_bad("a\xc2\x80", "control"); /* U+0080 */
    key_bad("a\xc2\x85", "control"); /* U+0085 NEL */
    key_bad("a\xc2\x9f", "control"); /* U+009F */
    key_bad("a b", "white space");
    key_bad(" a", "white space");
    key_bad("a ", "white space");
    key_bad("a\xc2\xa0"
            "b",
            "white space");                  /* U+00A0 no-break space */
    key_bad("a\xe3\x80\x80", "white space"); /* U+3000 ideographic space */
    key_bad("a\xe2\x80\x83", "white space"); /* U+2003 em space */
    key_bad("a\xe1\x9a\x80", "white space"); /* U+1680 ogham space mark */
    key_bad("a\xe2\x80\x80", "white space"); /* U+2000 en quad */
    key_bad("a\xe2\x80\x8a", "white space"); /* U+200A hair space */
    key_bad("a\xe2\x80\xaf", "white space"); /* U+202F narrow no-break space */
    key_bad("a\xe2\x81\x9f", "white space"); /* U+205F medium mathematical space */
    key_bad("a\xe2\x80\xa8", "white space"); /* U+2028 line separator */
    key_bad("a\xe2\x80\xa9", "white space"); /* U+2029 paragraph separator */
    key_bad("\xef\xbb\xbf"
            "a",
            "white space"); /* U+FEFF byte order mark */
    /* Invisible formatting: an id that would display as another one. */
    key_bad("a\xe2\x80\x8b"
            "b",
            "invisible"); /* U+200B zero width space */
    key_bad("a\xe2\x80\x8d"
            "b",
            "invisible"); /* U+200D zero width joiner */
    key_bad("a\xe2\x80\x8f"
            "b",
            "invisible"); /* U+200F right-to-left mark */
    key_bad("a\xe2\x80\xae"
            "b",
            "invisible"); /* U+202E right-to-left override */
    key_bad("a\xe2\x81\xa0"
            "b",
            "invisible"); /* U+2060 word joiner */
    key_bad("a\xe2\x81\xa6"
            "b",
            "invisible"); /* U+2066 left-to-right isolate */
    key_bad("a\xe2\x81\xa9"
            "b",
            "invisible"); /* U+2069 pop directional isolate */
    assert_true(tl_key_is_valid("a\xe2\x80\x90"
                                "b")); /* U+2010 hyphen: visible */
}

static void id_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\x80",                     /* lone continuation byte */
        "a\xbf",                    /* lone continuation byte */
        "\xc0\xaf",                 /* overlong '/' */
        "\xc1\xbf",                 /* overlong */
        "\xc0\x80",                 /* overlong NUL */
        "\xe0\x80\xaf",             /* overlong '/' in three bytes */
        "\xe0\x9f\xbf",             /* overlong U+07FF */
        "\xf0\x80\x80\xaf",         /* overlong '/' in four bytes */
        "\xf0\x8f\xbf\xbf",         /* overlong U+FFFF */
        "\xed\xa0\x80",             /* U+D800, a surrogate */
        "\xed\xbf\xbf",             /* U+DFFF, a surrogate */
        "\xed\xa0\xbd\xed\xb2\xa9", /* a CESU-8 surrogate pair */
        "\xf4\x90\x80\x80",         /* U+110000 */
        "\xf5\x80\x80\x80",         /* lead byte 0xF5 */
        "\xf8\x88\x80\x80\x80",     /* five-byte form */
        "\xfe",
        "\xff",
        "a\xc3",         /* truncated at the end */
        "\xe6\xbc",      /* truncated at the end */
        "\xf0\x9f\x94",  /* truncated at the end */
        "\xc3x",         /* truncated by an ASCII byte */
        "\xe6\xbcx",     /* truncated by an ASCII byte */
        "\xf0\x9f\x94x", /* truncated by an ASCII byte */
        "\xe6\xc3\xa9",  /* a lead byte where a continuation byte belongs */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(tl_key_is_valid(bad[i]));
        id_bad(bad[i], TL_ID_MAX, "UTF-8");
    }
}

/* ---- tl__parse_u64 ---- */

static void u64_bounds(void **state)
{
    uint64_t v = 7;

    (void)state;
    assert_true(tl__parse_u64("0", &v));
    assert_true(v == 0);
    assert_true(tl__parse_u64("42", &v));
    assert_true(v == 42);
    assert_true(tl__parse_u64("000123", &v));
    assert_true(v == 123);
    assert_true(tl__parse_u64("18446744073709551615", &v));
    assert_true(v == UINT64_MAX);
    assert_true(tl__parse_u64("18446744073709551609", &v));
    assert_true(v == UINT64_MAX - 6);
    assert_true(tl__parse_u64("9223372036854775808", &v));
    assert_true(v == (uint64_t)INT64_MAX + 1);
}

static void u64_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "18446744073709551616", /* UINT64_MAX + 1 */
        "18446744073709551620",
        "18446744073709551625",
        "99999999999999999999",
        "184467440737095516150",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1a",
        "0x10",
        "1.0",
        "1e3",
    };
    uint64_t v = 7;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tl__parse_u64(bad[i], &v))
            fail_msg("\"%s\" parsed as %llu", bad[i], (unsigned long long)v);
    }
    assert_false(tl__parse_u64(NULL, &v));
    assert_true(v == 7); /* untouched on failure */
}

/* ---- tl__redact_url ---- */

static char *redact(const char *url)
{
    char *out = tl__redact_url(url);

    assert_non_null(out);
    return out;
}

static void redact_is(const char *url, const char *want)
{
    char *out = redact(url);

    if (strcmp(out, want) != 0)
        fail_msg("redact(\"%s\") = \"%s\", want \"%s\"", url, out, want);
    assert_null(strstr(out, "secret"));
    tl__free(out);
}

static void redact_unchanged(const char *url)
{
    redact_is(url, url);
}

static void redact_userinfo(void **state)
{
    (void)state;
    redact_is("redis://user:secret@h:1/0", "redis://user:***@h:1/0");
    redact_is("redis://:secret@h", "redis://:***@h");
    redact_is("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db");
    redact_is("postgres://u:secret@[::1]:5432/db", "postgres://u:***@[::1]:5432/db");
    redact_is("redis://default:se:cr:et@h:6379", "redis://default:***@h:6379");
    /* A raw '@' in the password: the last '@' of the authority ends the userinfo. */
    redact_is("redis://u:sec@ret@h/0", "redis://u:***@h/0");
    /* Every URL inside the text, not only the first. */
    redact_is("postgresql://h/db?next=redis://u:secret@h2",
              "postgresql://h/db?next=redis://u:***@h2");
    redact_is("a://b@c://u:secret@h", "a://b@c://u:***@h");
    redact_is("a://x:secret@y#://u:secret@h", "a://x:***@y#://u:***@h");
    redact_is("?password=://#://u:secret@h", "?password=***#://u:***@h");
    /* A user name alone is no secret. */
    redact_unchanged("redis://user@h:6379/0");
    redact_unchanged("postgresql://u@h/db");
}

static void redact_raw_delimiters_in_password(void **state)
{
    (void)state;
    /* RFC 3986 ends the authority at '/', '?' or '#', but a password with such a raw character
     * (base64 makes them) is still a password and must not be shown. */
    redact_is("redis://:ab/secret@h:6379/0", "redis://:***@h:6379/0");
    redact_is("redis://u:sec?ret@h/0", "redis://u:***@h/0");
    redact_is("redis://u:sec#ret@h/0", "redis://u:***@h/0");
    redact_is("postgresql://u:x/y+secret=@h/db", "postgresql://u:***@h/db");
    redact_is("postgresql://u:12ab/secret@h/db", "postgresql://u:***@h/db");
}

static void redact_query_password(void **state)
{
    (void)state;
    redact_is("postgresql://h/db?password=secret", "postgresql://h/db?password=***");
    redact_is("postgresql://h/db?password=secret&sslmode=require",
              "postgresql://h/db?password=***&sslmode=require");
    redact_is("postgresql://h/db?user=u&password=secret&sslmode=require",
              "postgresql://h/db?user=u&password=***&sslmode=require");
    redact_is("postgresql://h/db?user=u&password=secret", "postgresql://h/db?user=u&password=***");
    redact_is("postgresql://h/db?password=secret#frag", "postgresql://h/db?password=***#frag");
    redact_is("postgresql://h/db?password=secret&password=secret2",
              "postgresql://h/db?password=***&password=***");
    redact_is("postgresql://h/db?password=&a=1", "postgresql://h/db?password=***&a=1");
    /* libpq's other secret, the passphrase of the client key. */
    redact_is("postgresql://h/db?sslpassword=secret", "postgresql://h/db?sslpassword=***");
    redact_is("postgresql://h/db?a=1&sslpassword=secret&b=2",
              "postgresql://h/db?a=1&sslpassword=***&b=2");
    /* Both places at once. */
    redact_is("postgresql://u:secret@h/db?password=secret", "postgresql://u:***@h/db?password=***");
    /* No "://" at all. */
    redact_is("sqlite:/tmp/x.db?password=secret", "sqlite:/tmp/x.db?password=***");
    /* libpq decodes parameter names: an encoded or differently cased name is the same secret. */
    redact_is("postgresql://h/db?pass%77ord=secret", "postgresql://h/db?pass%77ord=***");
    redact_is("postgresql://h/db?%70assword=secret&a=1", "postgresql://h/db?%70assword=***&a=1");
    redact_is("postgresql://h/db?ssl%70assword=secret", "postgresql://h/db?ssl%70assword=***");
    redact_is("postgresql://h/db?PASSWORD=secret", "postgresql://h/db?PASSWORD=***");
}

static void redact_leaves_lookalikes(void **state)
{
    (void)state;
    redact_unchanged("postgresql://h/db?xpassword=visible");
    redact_unchanged("postgresql://h/db?a=1&xpassword=visible&b=2");
    redact_unchanged("postgresql://h/db?a=password=visible");
    redact_unchanged("postgresql://h/password=visible");
    redact_unchanged("postgresql://h/db#password=visible");
    redact_is("postgresql://h/db?xpassword=v&password=secret",
              "postgresql://h/db?xpassword=v&password=***");
}

static void redact_without_userinfo(void **state)
{
    (void)state;
    redact_unchanged("redis://h:6379/0");
    redact_unchanged("redis://h");
    redact_unchanged("redis://[::1]:6379/0");
    redact_unchanged("postgresql://h/db?sslmode=require");
    redact_unchanged("github://owner/repo");
    redact_unchanged("sqlite:/var/lib/tasklock.db");
    redact_unchanged("sqlite:///var/lib/tasklock.db");
    redact_unchanged("memory:");
    redact_unchanged("");
    /* An '@' in the path or query is not userinfo. */
    redact_unchanged("redis://h:6379/0@x");
    redact_unchanged("postgresql://h/db@x");
    redact_unchanged("postgresql://h:5432/db?user=me@corp");
    redact_unchanged("postgresql://[::1]:5432/db?user=me@corp");
    redact_unchanged("github://owner/repo@main");
    redact_unchanged("sqlite:///tmp/a@b:c.db");

    char *out = tl__redact_url(NULL);
    assert_non_null(out);
    assert_string_equal(out, "(null)");
    tl__free(out);
}

/* ---- static texts ---- */

static void strerror_all_distinct(void **state)
{
    const char *texts[TL_ERATELIMIT + 1];

    (void)state;
    for (int st = TL_OK; st <= TL_ERATELIMIT; st++) {
        texts[st] = tl_strerror((tl_status)st);
        assert_non_null(texts[st]);
        assert_true(texts[st][0] != '\0');
        assert_string_not_equal(texts[st], tl_strerror((tl_status)(TL_ERATELIMIT + 1)));
        for (int j = 0; j < st; j++)
            assert_string_not_equal(texts[st], texts[j]);
    }
    assert_string_equal(tl_strerror(TL_OK), "success");
    assert_string_equal(tl_strerror(TL_EBUSY), "held by another owner");
    assert_non_null(tl_strerror((tl_status)-1));
    assert_non_null(tl_strerror((tl_status)1000));
}

static void event_kind_names(void **state)
{
    (void)state;
    assert_string_equal(tl_event_kind_name(TL_EVENT_ACQUIRED), "acquired");
    assert_string_equal(tl_event_kind_name(TL_EVENT_RELEASED), "released");
    assert_string_equal(tl_event_kind_name(TL_EVENT_STOLEN), "stolen");
    assert_string_equal(tl_event_kind_name(TL_EVENT_FORCED), "forced");
    assert_string_equal(tl_event_kind_name(TL_EVENT_LOST), "lost");
    assert_string_equal(tl_event_kind_name((tl_event_kind)0), "unknown");
    assert_string_equal(tl_event_kind_name((tl_event_kind)99), "unknown");
}

static void version_matches_header(void **state)
{
    char want[32];

    (void)state;
    assert_string_equal(tl_version(), TL_VERSION_STRING);
    (void)snprintf(want, sizeof(want), "%d.%d.%d", TL_VERSION_MAJOR, TL_VERSION_MINOR,
                   TL_VERSION_PATCH);
    assert_string_equal(tl_version(), want);
    assert_int_equal(TL_VERSION_NUM,
                     (TL_VERSION_MAJOR << 16) | (TL_VERSION_MINOR << 8) | TL_VERSION_PATCH);
}

/* ---- tl__percent_decode ---- */

static void percent_decode_cases(void **state)
{
    static const struct {
        const char *in;
        tl_status st;
        const char *out;
    } cases[] = {
        {"plain", TL_OK, "plain"}, {"p%40ss", TL_OK, "p@ss"},
        {"%2F%2f", TL_OK, "//"},   {"%41", TL_OK, "A"},
        {"", TL_OK, ""},           {"%", TL_EINVAL, NULL},
        {"%4", TL_EINVAL, NULL},   {"a%4g", TL_EINVAL, NULL},
        {"%00", TL_EINVAL, NULL}, /* an encoded NUL would cut the text short */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = (char *)1;
        tl_status st = tl__percent_decode(cases[i].in, strlen(cases[i].in), &out);

        if (st != cases[i].st)
            fail_msg("decode(\"%s\"): status %d, want %d", cases[i].in, st, cases[i].st);
        if (cases[i].out == NULL) {
            assert_null(out);
        } else {
            assert_string_equal(out, cases[i].out);
            tl_free(out);
        }
    }
    /* Only the first n bytes count. */
    char *out = NULL;
    assert_int_equal(tl__percent_decode("ab%41cd", 5, &out), TL_OK);
    assert_string_equal(out, "abA");
    tl_free(out);
    assert_int_equal(tl__hex_value('f'), 15);
    assert_int_equal(tl__hex_value('G'), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percent_decode_cases),
        cmocka_unit_test(duration_units),
        cmocka_unit_test(duration_bare_seconds),
        cmocka_unit_test(duration_zero_rejected),
        cmocka_unit_test(duration_limits),
        cmocka_unit_test(duration_junk),
        cmocka_unit_test(id_empty_and_length),
        cmocka_unit_test(id_good),
        cmocka_unit_test(id_control_and_space),
        cmocka_unit_test(id_invalid_utf8),
        cmocka_unit_test(u64_bounds),
        cmocka_unit_test(u64_rejects),
        cmocka_unit_test(redact_userinfo),
        cmocka_unit_test(redact_raw_delimiters_in_password),
        cmocka_unit_test(redact_query_password),
        cmocka_unit_test(redact_leaves_lookalikes),
        cmocka_unit_test(redact_without_userinfo),
        cmocka_unit_test(strerror_all_distinct),
        cmocka_unit_test(event_kind_names),
        cmocka_unit_test(version_matches_header),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
