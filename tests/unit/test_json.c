/*
 * test_json.c -- the lock metadata (json.c) and lock records (record.c): decoding checks every
 * field of text that anyone may have written, encoding and decoding round-trip, task info is
 * normalised, records are copied and judged stale.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "tasklock.h"
#include "tl.h"

/* The metadata's own fields need at most this much beside the task info (json.c). */
#define META_ROOM 1024

#define T0    "2026-01-01T00:00:00.000Z"
#define T1    "2026-01-01T00:00:30.500Z"
#define T0_MS INT64_C(1767225600000)
#define T1_MS (T0_MS + 30500)

#define GOOD_TASK "{\"a\":[1,2.5,\"x\"],\"b\":{\"c\":null},\"u\":\"caf\xc3\xa9\"}"
#define GOOD                                                                             \
    "{\"lock\":{\"worker_id\":\"w-1\",\"node_id\":\"node-a\",\"claimed_at\":\"" T0 "\"," \
    "\"heartbeat_last\":\"" T1 "\",\"task_info\":" GOOD_TASK ",\"token\":42,"            \
    "\"lock_timeout_ms\":300000}}"

/* A field left out of meta(). */
#define OMIT NULL

/*
 * Metadata text with each field given as raw JSON (OMIT leaves it out). The text is in a
 * static buffer, valid until the next call.
 */
static const char *meta(const char *worker, const char *node, const char *claimed, const char *beat,
                        const char *task, const char *token, const char *timeout)
{
    static char buf[8192];
    const char *names[] = {"worker_id", "node_id", "claimed_at",     "heartbeat_last",
                           "task_info", "token",   "lock_timeout_ms"};
    const char *values[] = {worker, node, claimed, beat, task, token, timeout};
    size_t n = 0;

    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"lock\":{");
    for (size_t i = 0; i < 7; i++) {
        if (values[i] == NULL)
            continue;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%s\":%s", buf[n - 1] == '{' ? "" : ",",
                              names[i], values[i]);
    }
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "}}");
    assert_true(n < sizeof(buf));
    return buf;
}

/* meta() with every field valid except the ones replaced. */
#define W "\"w-1\""
#define N "\"node-a\""
#define C "\"" T0 "\""
#define H "\"" T1 "\""

static bool record_is_clear(const struct tl_record *r)
{
    static const struct tl_record zero;

    return memcmp(r, &zero, sizeof(*r)) == 0;
}

static void decode_ok_len(const char *text, size_t len, struct tl_record *rec)
{
    char err[TL_ERRMSG_SIZE] = "";
    tl_status st = tl__meta_decode(text, len, "key-1", rec, err);

    if (st != TL_OK)
        fail_msg("decode failed (%d): %s\n  input: %.300s", st, err, text);
}

static void decode_ok(const char *text, struct tl_record *rec)
{
    decode_ok_len(text, strlen(text), rec);
}

/* Decoding must fail with TL_EINVAL, name `part` in the message and leave the record clear. */
static void decode_bad_len(const char *text, size_t len, const char *part)
{
    char err[TL_ERRMSG_SIZE] = "";
    struct tl_record rec;

    memset(&rec, 0x5a, sizeof(rec)); /* decode must not trust what it is given */
    tl_status st = tl__meta_decode(text, len, "key-1", &rec, err);
    if (st != TL_EINVAL)
        fail_msg("decode returned %d, not TL_EINVAL, for: %.300s", st, text ? text : "(null)");
    if (!record_is_clear(&rec))
        fail_msg("record not cleared after a rejection of: %.300s", text);
    if (strncmp(err, "metadata: ", 10) != 0 || strstr(err, part) == NULL)
        fail_msg("message \"%s\" does not name \"%s\"\n  input: %.300s", err, part, text);
}

static void decode_bad(const char *text, const char *part)
{
    decode_bad_len(text, strlen(text), part);
}

static void normalize_bad(const char *text, const char *part);

/* ---- decoding ---- */

static void decode_every_field(void **state)
{
    struct tl_record rec;

    (void)state;
    decode_ok(GOOD, &rec);
    assert_string_equal(rec.info.key, "key-1");
    assert_string_equal(rec.info.worker_id, "w-1");
    assert_string_equal(rec.info.node_id, "node-a");
    assert_true(rec.info.claimed_at_ms == T0_MS);
    assert_true(rec.info.heartbeat_at_ms == T1_MS);
    assert_string_equal(rec.info.task_info, GOOD_TASK);
    assert_true(rec.info.token == 42);
    assert_int_equal(rec.info.lock_timeout_ms, 300000);
    assert_true(rec.info.observed_at_ms == 0);
    assert_false(rec.info.stale);
    assert_null(rec.opaque);
    tl__record_clear(&rec);
    assert_true(record_is_clear(&rec));
}

static void decode_seed_shape(void **state)
{
    struct tl_record rec;
    char err[TL_ERRMSG_SIZE] = "";

    (void)state;
    /* The seed's metadata has no token and no lock timeout; task_info may be absent. */
    const char *text = meta(W, N, C, H, OMIT, OMIT, OMIT);
    assert_int_equal(tl__meta_decode(text, strlen(text), NULL, &rec, err), TL_OK);
    assert_null(rec.info.key);
    assert_string_equal(rec.info.task_info, "{}");
    assert_true(rec.info.token == 0);
    assert_int_equal(rec.info.lock_timeout_ms, 0);
    tl__record_clear(&rec);

    /* Unknown fields are kept out, not refused (newer writers may add some). */
    decode_ok("{\"v\":2,\"lock\":{\"worker_id\":\"w\",\"node_id\":\"n\",\"claimed_at\":\"" T0
              "\",\"heartbeat_last\":\"" T0 "\",\"extra\":[1]}}",
              &rec);
    assert_string_equal(rec.info.worker_id, "w");
    tl__record_clear(&rec);

    /* White space and escapes are JSON's business. */
    decode_ok(" {\n \"lock\" : { \"worker_id\" : \"w\\u002d1\", \"node_id\":\"\\u6f22\","
              "\"claimed_at\":\"" T0 "\", \"heartbeat_last\":\"" T1 "\" } }\n",
              &rec);
    assert_string_equal(rec.info.worker_id, "w-1");
    assert_string_equal(rec.info.node_id, "\xe6\xbc\xa2");
    tl__record_clear(&rec);
}

static void decode_not_json(void **state)
{
    (void)state;
    decode_bad("{", "not JSON");
    decode_bad("lock", "not JSON");
    decode_bad("{\"lock\":{}", "not JSON");
    decode_bad(GOOD "x", "not JSON");
    decode_bad(GOOD GOOD, "not JSON");
    decode_bad("\"lock\"", "not JSON"); /* only an object or array may be the whole text */
    decode_bad("42", "not JSON");
    decode_bad_len("", 0, "empty");
    decode_bad_len(NULL, 0, "empty");
    decode_bad_len(NULL, 10, "empty");
    /* `len` bounds the text: a valid text cut short is not JSON. */
    decode_bad_len(GOOD, strlen(GOOD) - 1, "not JSON");
}

static void decode_not_lock_object(void **state)
{
    (void)state;
    decode_bad("[]", "\"lock\"");
    decode_bad("[" GOOD "]", "\"lock\"");
    decode_bad("{}", "\"lock\"");
    decode_bad("{\"Lock\":{}}", "\"lock\"");
    decode_bad("{\"lock\":[]}", "\"lock\"");
    decode_bad("{\"lock\":\"x\"}", "\"lock\"");
    decode_bad("{\"lock\":null}", "\"lock\"");
    decode_bad("{\"lock\":1}", "\"lock\"");
    decode_bad("{\"x\":" GOOD "}", "\"lock\"");
}

static void decode_field_types(void **state)
{
    (void)state;
    decode_bad(meta(OMIT, N, C, H, "{}", "1", "1"), "\"worker_id\"");
    decode_bad(meta("1", N, C, H, "{}", "1", "1"), "\"worker_id\"");
    decode_bad(meta("null", N, C, H, "{}", "1", "1"), "\"worker_id\"");
    decode_bad(meta("[\"w\"]", N, C, H, "{}", "1", "1"), "\"worker_id\"");
    decode_bad(meta(W, OMIT, C, H, "{}", "1", "1"), "\"node_id\"");
    decode_bad(meta(W, "true", C, H, "{}", "1", "1"), "\"node_id\"");
    decode_bad(meta(W, "{}", C, H, "{}", "1", "1"), "\"node_id\"");
    decode_bad(meta(W, N, OMIT, H, "{}", "1", "1"), "\"claimed_at\"");
    decode_bad(meta(W, N, "1767225600000", H, "{}", "1", "1"), "\"claimed_at\"");
    decode_bad(meta(W, N, "null", H, "{}", "1", "1"), "\"claimed_at\"");
    decode_bad(meta(W, N, C, OMIT, "{}", "1", "1"), "\"heartbeat_last\"");
    decode_bad(meta(W, N, C, "{}", "{}", "1", "1"), "\"heartbeat_last\"");
    decode_bad(meta(W, N, C, H, "[]", "1", "1"), "\"task_info\"");
    decode_bad(meta(W, N, C, H, "\"{}\"", "1", "1"), "\"task_info\"");
    decode_bad(meta(W, N, C, H, "null", "1", "1"), "\"task_info\"");
    decode_bad(meta(W, N, C, H, "1", "1", "1"), "\"task_info\"");
    decode_bad(meta(W, N, C, H, "{}", "\"42\"", "1"), "\"token\"");
    decode_bad(meta(W, N, C, H, "{}", "42.0", "1"), "\"token\"");
    decode_bad(meta(W, N, C, H, "{}", "4.2e1", "1"), "\"token\"");
    decode_bad(meta(W, N, C, H, "{}", "true", "1"), "\"token\"");
    decode_bad(meta(W, N, C, H, "{}", "null", "1"), "\"token\"");
    decode_bad(meta(W, N, C, H, "{}", "1", "\"300000\""), "\"lock_timeout_ms\"");
    decode_bad(meta(W, N, C, H, "{}", "1", "1.5"), "\"lock_timeout_ms\"");
    decode_bad(meta(W, N, C, H, "{}", "1", "[]"), "\"lock_timeout_ms\"");
}

static void decode_bad_ids(void **state)
{
    char big[TL_ID_MAX + 8];

    (void)state;
    decode_bad(meta("\"\"", N, C, H, OMIT, OMIT, OMIT), "\"worker_id\" must not be empty");
    decode_bad(meta(W, "\"\"", C, H, OMIT, OMIT, OMIT), "\"node_id\" must not be empty");
    decode_bad(meta("\"w 1\"", N, C, H, OMIT, OMIT, OMIT), "\"worker_id\" contains white space");
    decode_bad(meta(W, "\" n\"", C, H, OMIT, OMIT, OMIT), "\"node_id\" contains white space");
    decode_bad(meta("\"w\\t1\"", N, C, H, OMIT, OMIT, OMIT), "\"worker_id\" contains a control");
    decode_bad(meta("\"w\\n\"", N, C, H, OMIT, OMIT, OMIT), "\"worker_id\" contains a control");
    decode_bad(meta("\"w\\u007f\"", N, C, H, OMIT, OMIT, OMIT), "\"worker_id\" contains a cont");
    decode_bad(meta("\"w\\u0085\"", N, C, H, OMIT, OMIT, OMIT), "\"worker_id\" contains a cont");
    decode_bad(meta(W, "\"n\\u2028\"", C, H, OMIT, OMIT, OMIT), "\"node_id\"");
    decode_bad(meta(W, "\"n\\u00a0\"", C, H, OMIT, OMIT, OMIT), "\"node_id\"");
    decode_bad(meta(W, "\"\\ufeffn\"", C, H, OMIT, OMIT, OMIT), "\"node_id\"");

    /* TL_ID_MAX bytes exactly is fine; one more is not. */
    big[0] = '"';
    memset(big + 1, 'w', TL_ID_MAX);
    big[TL_ID_MAX + 1] = '"';
    big[TL_ID_MAX + 2] = '\0';
    struct tl_record rec;
    decode_ok(meta(big, N, C, H, OMIT, OMIT, OMIT), &rec);
    assert_int_equal(strlen(rec.info.worker_id), TL_ID_MAX);
    tl__record_clear(&rec);
    decode_ok(meta(W, big, C, H, OMIT, OMIT, OMIT), &rec);
    assert_int_equal(strlen(rec.info.node_id), TL_ID_MAX);
    tl__record_clear(&rec);
    big[TL_ID_MAX + 1] = 'w';
    big[TL_ID_MAX + 2] = '"';
    big[TL_ID_MAX + 3] = '\0';
    decode_bad(meta(big, N, C, H, OMIT, OMIT, OMIT), "\"worker_id\" is too long");
    decode_bad(meta(W, big, C, H, OMIT, OMIT, OMIT), "\"node_id\" is too long");
}

static void decode_bad_times(void **state)
{
    static const char *const bad[] = {
        "\"\"",
        "\"yesterday\"",
        "\"2026-01-01T00:00:00\"",             /* missing Z */
        "\"2023-02-29T00:00:00Z\"",            /* not a leap year */
        "\"2026-13-01T00:00:00Z\"",            /* month 13 */
        "\"2026-01-01T24:00:00Z\"",            /* hour 24 */
        "\"2026-01-01T00:00:00.1234567890Z\"", /* ten fraction digits */
        "\"1969-12-31T23:59:59Z\"",
        "\"Thu, 01 Jan 2026 00:00:00 GMT\"", /* an HTTP date is not ISO-8601 */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        decode_bad(meta(W, N, bad[i], H, OMIT, OMIT, OMIT), "\"claimed_at\" must be an ISO");
        decode_bad(meta(W, N, C, bad[i], OMIT, OMIT, OMIT), "\"heartbeat_last\" must be an ISO");
    }

    struct tl_record rec;
    decode_ok(meta(W, N, "\"2024-02-29T12:34:56.123+00:00\"", "\"2024-02-29t12:34:56z\"", OMIT,
                   OMIT, OMIT),
              &rec);
    assert_true(rec.info.claimed_at_ms == 1709210096123);
    assert_true(rec.info.heartbeat_at_ms == 1709210096000);
    tl__record_clear(&rec);
}

static void decode_numbers(void **state)
{
    struct tl_record rec;

    (void)state;
    decode_ok(meta(W, N, C, H, OMIT, "9223372036854775807", "2073600000"), &rec);
    assert_true(rec.info.token == (uint64_t)INT64_MAX);
    assert_int_equal(rec.info.lock_timeout_ms, TL_DURATION_MAX_MS);
    tl__record_clear(&rec);
    decode_ok(meta(W, N, C, H, OMIT, "0", "0"), &rec);
    assert_true(rec.info.token == 0);
    tl__record_clear(&rec);

    decode_bad(meta(W, N, C, H, OMIT, "-1", OMIT), "\"token\"");
    decode_bad(meta(W, N, C, H, OMIT, "-9223372036854775808", OMIT), "\"token\"");
    /* Beyond int64 the JSON parser itself refuses, naming the number. */
    decode_bad(meta(W, N, C, H, OMIT, "9223372036854775808", OMIT), "9223372036854775808");
    decode_bad(meta(W, N, C, H, OMIT, "18446744073709551616", OMIT), "too big");
    decode_bad(meta(W, N, C, H, OMIT, "1e400", OMIT), "not JSON");
    decode_bad(meta(W, N, C, H, OMIT, OMIT, "2073600001"), "\"lock_timeout_ms\"");
    decode_bad(meta(W, N, C, H, OMIT, OMIT, "4294967296"), "\"lock_timeout_ms\"");
    decode_bad(meta(W, N, C, H, OMIT, OMIT, "-1"), "\"lock_timeout_ms\"");
}

static void decode_duplicate_keys(void **state)
{
    (void)state;
    decode_bad("{\"lock\":{},\"lock\":{}}", "duplicate");
    decode_bad("{\"lock\":{\"worker_id\":\"a\",\"worker_id\":\"b\",\"node_id\":\"n\","
               "\"claimed_at\":\"" T0 "\",\"heartbeat_last\":\"" T0 "\"}}",
               "worker_id");
    decode_bad("{\"lock\":{\"worker_id\":\"a\",\"node_id\":\"n\",\"token\":1,\"token\":2,"
               "\"claimed_at\":\"" T0 "\",\"heartbeat_last\":\"" T0 "\"}}",
               "token");
    decode_bad(meta(W, N, C, H, "{\"x\":1,\"x\":1}", OMIT, OMIT), "duplicate");
    decode_bad(meta(W, N, C, H, "{\"a\":{\"x\":1,\"x\":1}}", OMIT, OMIT), "duplicate");
}

static void decode_nul_bytes(void **state)
{
    (void)state;
    decode_bad(meta("\"w\\u0000x\"", N, C, H, OMIT, OMIT, OMIT), "not JSON");
    decode_bad(meta(W, N, C, H, "{\"a\":\"x\\u0000\"}", OMIT, OMIT), "not JSON");
    decode_bad(meta(W, N, C, H, "{\"a\\u0000b\":1}", OMIT, OMIT), "not JSON");

    /* Raw NUL bytes inside `len`: in a string, between tokens, and after the value. */
    char text[512];
    const char *good = meta(W, N, C, H, OMIT, OMIT, OMIT);
    size_t len = strlen(good);
    assert_true(len + 1 < sizeof(text));

    memcpy(text, good, len + 1);
    char *w = strstr(text, "w-1");
    w[1] = '\0';
    decode_bad_len(text, len, "not JSON");

    memcpy(text, good, len + 1);
    text[1] = '\0'; /* in place of the first '"' */
    decode_bad_len(text, len, "not JSON");

    memcpy(text, good, len + 1);
    decode_bad_len(text, len + 1, "not JSON"); /* the terminator counted in */
}

static void decode_invalid_utf8(void **state)
{
    (void)state;
    decode_bad(meta("\"w\xff\"", N, C, H, OMIT, OMIT, OMIT), "not JSON");
    decode_bad(meta("\"w\xc0\xaf\"", N, C, H, OMIT, OMIT, OMIT), "not JSON");
    decode_bad(meta(W, "\"\xed\xa0\x80\"", C, H, OMIT, OMIT, OMIT), "not JSON");
    decode_bad(meta(W, "\"n\xe6\xbc\"", C, H, OMIT, OMIT, OMIT), "not JSON");
    decode_bad(meta(W, N, C, H, "{\"a\":\"\xf5\x80\x80\x80\"}", OMIT, OMIT), "not JSON");
    decode_bad(meta(W, N, C, H, "{\"\xc3\":1}", OMIT, OMIT), "not JSON");
    /* An escaped lone surrogate is no better. */
    decode_bad(meta("\"w\\ud800\"", N, C, H, OMIT, OMIT, OMIT), "not JSON");
    decode_bad(meta(W, N, C, H, "{\"a\":\"\\udfff\"}", OMIT, OMIT), "not JSON");
    /* An escaped pair is a real character. */
    struct tl_record rec;
    decode_ok(meta("\"w\\ud83d\\udd12\"", N, C, H, OMIT, OMIT, OMIT), &rec);
    assert_string_equal(rec.info.worker_id, "w\xf0\x9f\x94\x92");
    tl__record_clear(&rec);
}

/* Returns metadata text of exactly `len` bytes (padding a task_info string). Caller frees. */
static char *meta_of_size(size_t len)
{
    const char *head =
        "{\"lock\":{\"worker_id\":\"w-1\",\"node_id\":\"node-a\",\"claimed_at\":\"" T0
        "\",\"heartbeat_last\":\"" T1 "\",\"task_info\":{\"pad\":\"";
    const char *tail = "\"}}}";
    size_t fixed = strlen(head) + strlen(tail);
    char *text = malloc(len + 1);

    assert_non_null(text);
    assert_true(len >= fixed);
    memcpy(text, head, strlen(head));
    memset(text + strlen(head), 'p', len - fixed);
    memcpy(text + len - strlen(tail), tail, strlen(tail) + 1);
    return text;
}

static void decode_size_limit(void **state)
{
    struct tl_record rec;

    (void)state;
    /* The limit is the task info's own (TL_META_MAX) plus room for the lock's fields, so that a
     * lock with the largest task info can still be read back. */
    char *text = meta_of_size(TL_META_MAX);
    decode_ok(text, &rec);
    tl__record_clear(&rec);
    free(text);

    text = meta_of_size(TL_META_MAX + META_ROOM);
    decode_ok(text, &rec);
    tl__record_clear(&rec);
    free(text);

    text = meta_of_size(TL_META_MAX + META_ROOM + 1);
    decode_bad(text, "over the limit");
    free(text);

    text = meta_of_size(4 * TL_META_MAX);
    decode_bad(text, "over the limit");
    free(text);
}

static void decode_deep_nesting(void **state)
{
    const size_t huge = 100000, depth = 30000;
    const char *head = "{\"lock\":{\"worker_id\":\"w-1\",\"node_id\":\"node-a\",\"claimed_at\":"
                       "\"" T0 "\",\"heartbeat_last\":\"" T1 "\",\"task_info\":{\"a\":";
    size_t hlen = strlen(head);
    char *text = malloc(hlen + 2 * huge + 8);

    (void)state;
    assert_non_null(text);
    memcpy(text, head, hlen);
    /* 100000 '[' is over the size limit, checked before any parsing. */
    memset(text + hlen, '[', huge);
    text[hlen + huge] = '\0';
    decode_bad(text, "over the limit");

    /* 30000 '[' fits the size limit: the parser's depth limit stops it, without a crash. */
    text[hlen + depth] = '\0';
    decode_bad(text, "depth");
    memset(text + hlen + depth, ']', depth);
    memcpy(text + hlen + 2 * depth, "}}}", 4);
    decode_bad(text, "depth");
    normalize_bad(text + hlen - 5, "depth"); /* the task info alone: {"a":[[[...]]]}}} */

    /* Deep but within the limit: accepted, and survives a round trip. */
    const size_t ok_depth = 1000;
    memset(text + hlen, '[', ok_depth);
    memset(text + hlen + ok_depth, ']', ok_depth);
    memcpy(text + hlen + 2 * ok_depth, "}}}", 4);
    struct tl_record rec, back;
    decode_ok(text, &rec);
    char *again = tl__meta_encode(&rec.info);
    assert_non_null(again);
    decode_ok(again, &back);
    assert_string_equal(back.info.task_info, rec.info.task_info);
    tl__free(again);
    tl__record_clear(&back);
    tl__record_clear(&rec);
    free(text);
}

static void decode_err_may_be_null(void **state)
{
    struct tl_record rec;

    (void)state;
    assert_int_equal(tl__meta_decode("{", 1, NULL, &rec, NULL), TL_EINVAL);
    assert_int_equal(tl__meta_decode("{}", 2, NULL, &rec, NULL), TL_EINVAL);
    assert_int_equal(tl__meta_decode(GOOD, strlen(GOOD), NULL, &rec, NULL), TL_OK);
    tl__record_clear(&rec);
}

/* ---- encoding ---- */

static struct tl_record sample(void)
{
    struct tl_record r = {
        .info =
            {
                .key = "key-1",
                .worker_id = "w-1",
                .node_id = "node-a",
                .token = 42,
                .claimed_at_ms = T0_MS,
                .heartbeat_at_ms = T1_MS,
                .lock_timeout_ms = 300000,
                .task_info = GOOD_TASK,
                .observed_at_ms = T1_MS + 1,
                .stale = true,
            },
    };

    return r;
}

static void encode_exact_text(void **state)
{
    struct tl_record r = sample();

    (void)state;
    char *text = tl__meta_encode(&r.info);
    assert_non_null(text);
    assert_string_equal(text, GOOD);
    tl__free(text);

    text = tl_info_to_json(&r.info);
    assert_non_null(text);
    assert_string_equal(text, GOOD);
    tl_free(text);
    assert_null(tl_info_to_json(NULL));
}

static void encode_task_info_fallbacks(void **state)
{
    struct tl_record r = sample();
    struct tl_record back;

    (void)state;
    static const char *const not_objects[] = {NULL, "", "[1]", "{", "\"x\"", "{\"a\":1,\"a\":2}"};
    for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
        r.info.task_info = (char *)not_objects[i];
        char *text = tl__meta_encode(&r.info);
        assert_non_null(text);
        assert_non_null(strstr(text, "\"task_info\":{},"));
        decode_ok(text, &back);
        assert_string_equal(back.info.task_info, "{}");
        tl__record_clear(&back);
        tl__free(text);
    }
}

static void assert_same_record(const struct tl_record *a, const struct tl_record *b)
{
    assert_string_equal(a->info.worker_id, b->info.worker_id);
    assert_string_equal(a->info.node_id, b->info.node_id);
    assert_string_equal(a->info.task_info, b->info.task_info);
    assert_true(a->info.token == b->info.token);
    assert_true(a->info.claimed_at_ms == b->info.claimed_at_ms);
    assert_true(a->info.heartbeat_at_ms == b->info.heartbeat_at_ms);
    assert_int_equal(a->info.lock_timeout_ms, b->info.lock_timeout_ms);
}

static void round_trip_every_field(void **state)
{
    static const struct {
        const char *worker, *node, *task;
        uint64_t token;
        int64_t claimed, beat;
        uint32_t timeout;
    } cases[] = {
        {"w-1", "node-a", GOOD_TASK, 42, T0_MS, T1_MS, 300000},
        {"w", "n", "{}", 0, 0, 0, 0},
        {"caf\xc3\xa9", "\xe6\xbc\xa2", "{\"k\":\"\xf0\x9f\x94\x92\"}", 1, 1, 999, 1},
        {"\"quoted\\\"", "a/b</script>", "{\"s\":\"\\\"\\\\\\n\\u001f\"}", (uint64_t)INT64_MAX,
         INT64_C(253402300799999), INT64_C(253402300799999), TL_DURATION_MAX_MS},
        {"user@host", "pod-7", "{\"n\":-0.0,\"r\":1e-300,\"i\":-9223372036854775808,\"e\":[]}", 7,
         951782400000, 951782400001, 1000},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tl_record r = {.info = {.worker_id = (char *)cases[i].worker,
                                       .node_id = (char *)cases[i].node,
                                       .task_info = (char *)cases[i].task,
                                       .token = cases[i].token,
                                       .claimed_at_ms = cases[i].claimed,
                                       .heartbeat_at_ms = cases[i].beat,
                                       .lock_timeout_ms = cases[i].timeout}};
        struct tl_record back, again;
        char *norm = NULL;

        assert_int_equal(tl__task_info_normalize(cases[i].task, &norm, NULL), TL_OK);
        char *text = tl__meta_encode(&r.info);
        assert_non_null(text);
        decode_ok(text, &back);
        r.info.task_info = norm;
        assert_same_record(&r, &back);

        char *text2 = tl__meta_encode(&back.info);
        assert_non_null(text2);
        assert_string_equal(text2, text);
        decode_ok(text2, &again);
        assert_same_record(&back, &again);

        tl__record_clear(&again);
        tl__record_clear(&back);
        tl__free(text2);
        tl__free(text);
        tl__free(norm);
    }
}

static void round_trip_largest_lock(void **state)
{
    char worker[TL_ID_MAX + 1], node[TL_ID_MAX + 1];
    char *task = malloc(TL_META_MAX + 1);
    char *norm = NULL;
    char err[TL_ERRMSG_SIZE] = "";

    (void)state;
    /* Ids that JSON must escape, so that they take the most room. */
    memset(worker, '"', TL_ID_MAX);
    worker[TL_ID_MAX] = '\0';
    memset(node, '\\', TL_ID_MAX);
    node[TL_ID_MAX] = '\0';
    assert_null(tl__check_id(worker, TL_ID_MAX));
    assert_null(tl__check_id(node, TL_ID_MAX));

    /* The largest task info accepted. */
    assert_non_null(task);
    memcpy(task, "{\"pad\":\"", 8);
    memset(task + 8, 'p', TL_META_MAX - 10);
    memcpy(task + TL_META_MAX - 2, "\"}", 3);
    assert_int_equal(strlen(task), TL_META_MAX);
    assert_int_equal(tl__task_info_normalize(task, &norm, err), TL_OK);
    assert_int_equal(strlen(norm), TL_META_MAX);

    struct tl_record r = {.info = {.worker_id = worker,
                                   .node_id = node,
                                   .task_info = norm,
                                   .token = (uint64_t)INT64_MAX,
                                   .claimed_at_ms = INT64_C(253402300799999),
                                   .heartbeat_at_ms = INT64_C(253402300799999),
                                   .lock_timeout_ms = TL_DURATION_MAX_MS}};
    char *text = tl__meta_encode(&r.info);
    assert_non_null(text);
    assert_true(strlen(text) <= TL_META_MAX + META_ROOM);

    struct tl_record back;
    decode_ok(text, &back);
    assert_same_record(&r, &back);
    tl__record_clear(&back);
    tl__free(text);
    tl__free(norm);
    free(task);
}

/* ---- task info ---- */

static char *normalize_ok(const char *text)
{
    char *out = (char *)1;
    char err[TL_ERRMSG_SIZE] = "";

    if (tl__task_info_normalize(text, &out, err) != TL_OK)
        fail_msg("normalize(\"%.200s\") failed: %s", text ? text : "(null)", err);
    assert_non_null(out);
    return out;
}

static void normalize_bad(const char *text, const char *part)
{
    char *out = (char *)1;
    char err[TL_ERRMSG_SIZE] = "";

    if (tl__task_info_normalize(text, &out, err) != TL_EINVAL)
        fail_msg("normalize(\"%.200s\") did not fail with TL_EINVAL", text);
    assert_null(out);
    if (strncmp(err, "task info: ", 11) != 0 || strstr(err, part) == NULL)
        fail_msg("message \"%s\" does not say \"%s\"", err, part);
}

static void normalize_is(const char *text, const char *want)
{
    char *out = normalize_ok(text);

    assert_string_equal(out, want);
    tl__free(out);
}

static void task_info_normalize(void **state)
{
    (void)state;
    normalize_is(NULL, "{}");
    normalize_is("", "{}");
    normalize_is("{}", "{}");
    normalize_is(" { \"b\" : [ 1 , 2 ] ,\n\"a\" : \"x\" } ", "{\"b\":[1,2],\"a\":\"x\"}");
    normalize_is("{\"u\":\"\\u00e9\\/\"}", "{\"u\":\"\xc3\xa9/\"}");
    normalize_is(GOOD_TASK, GOOD_TASK);

    normalize_bad("[]", "must be a JSON object");
    normalize_bad("1", "not JSON");
    normalize_bad("\"x\"", "not JSON");
    normalize_bad("null", "not JSON");
    normalize_bad(" ", "not JSON");
    normalize_bad("{", "not JSON");
    normalize_bad("{} {}", "not JSON");
    normalize_bad("{\"a\":1,\"a\":2}", "duplicate");
    normalize_bad("{\"a\":\"\\u0000\"}", "not JSON");
    normalize_bad("{\"a\":\"\xff\"}", "not JSON");
    normalize_bad("{\"a\":NaN}", "not JSON");
}

static void task_info_size(void **state)
{
    char *text = malloc(2 * TL_META_MAX);

    (void)state;
    assert_non_null(text);
    memcpy(text, "{\"pad\":\"", 8);
    memset(text + 8, 'p', TL_META_MAX - 10);
    memcpy(text + TL_META_MAX - 2, "\"}", 3);
    char *out = normalize_ok(text);
    assert_int_equal(strlen(out), TL_META_MAX);
    tl__free(out);

    memcpy(text + TL_META_MAX - 2, "p\"}", 4);
    normalize_bad(text, "over the limit");

    /* Within the limit as written, but longer once normalised ("1e9" is 1000000000.0): the
     * limit applies to what would be stored. */
    size_t n = 0;
    text[n++] = '{';
    for (int i = 0; n < TL_META_MAX - 40; i++)
        n += (size_t)snprintf(text + n, 2 * TL_META_MAX - n, "%s\"%x\":1e9", i ? "," : "", i);
    text[n++] = '}';
    text[n] = '\0';
    assert_true(strlen(text) <= TL_META_MAX);
    normalize_bad(text, "over the limit");
    free(text);
}

/* ---- records ---- */

static void record_copy_and_judge(void **state)
{
    struct tl_record src = sample();
    struct tl_record dst;

    (void)state;
    src.opaque = "nonce";
    assert_int_equal(tl__record_copy(&dst, &src), TL_OK);
    assert_same_record(&src, &dst);
    assert_string_equal(dst.info.key, "key-1");
    assert_string_equal(dst.opaque, "nonce");
    assert_ptr_not_equal(dst.info.worker_id, src.info.worker_id);
    tl__record_clear(&dst);

    struct tl_record r = {.info = {.heartbeat_at_ms = 1000, .lock_timeout_ms = 500}};
    tl__record_judge(&r, 1500);
    assert_false(r.info.stale); /* exactly the timeout: not yet */
    assert_true(r.info.observed_at_ms == 1500);
    tl__record_judge(&r, 1501);
    assert_true(r.info.stale);
    tl__record_judge(&r, 0); /* a clock behind the heartbeat */
    assert_false(r.info.stale);

    /* A corrupt heartbeat time must not overflow the arithmetic (UBSan would stop here). */
    r.info.heartbeat_at_ms = INT64_MIN;
    tl__record_judge(&r, T0_MS);
    assert_true(r.info.stale);
    r.info.heartbeat_at_ms = INT64_MAX;
    tl__record_judge(&r, -T0_MS);
    assert_false(r.info.stale);

    assert_int_equal(tl__claim_verdict(false, 0, 0, TL_CLAIM_NORMAL, 0), TL_VERDICT_FREE);
    assert_int_equal(tl__claim_verdict(true, 1000, 500, TL_CLAIM_STEAL, 1500), TL_VERDICT_BUSY);
    assert_int_equal(tl__claim_verdict(true, 1000, 500, TL_CLAIM_STEAL, 1501), TL_VERDICT_STEAL);
    assert_int_equal(tl__claim_verdict(true, 1000, 500, TL_CLAIM_NORMAL, 9999), TL_VERDICT_BUSY);
    assert_int_equal(tl__claim_verdict(true, 1000, 500, TL_CLAIM_FORCE, 1000), TL_VERDICT_FORCE);
    assert_int_equal(tl__claim_verdict(true, INT64_MIN, 0, TL_CLAIM_STEAL, T0_MS),
                     TL_VERDICT_STEAL);
    assert_int_equal(tl__claim_verdict(true, INT64_MAX, 0, TL_CLAIM_STEAL, -T0_MS),
                     TL_VERDICT_BUSY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_every_field),     cmocka_unit_test(decode_seed_shape),
        cmocka_unit_test(decode_not_json),        cmocka_unit_test(decode_not_lock_object),
        cmocka_unit_test(decode_field_types),     cmocka_unit_test(decode_bad_ids),
        cmocka_unit_test(decode_bad_times),       cmocka_unit_test(decode_numbers),
        cmocka_unit_test(decode_duplicate_keys),  cmocka_unit_test(decode_nul_bytes),
        cmocka_unit_test(decode_invalid_utf8),    cmocka_unit_test(decode_size_limit),
        cmocka_unit_test(decode_deep_nesting),    cmocka_unit_test(decode_err_may_be_null),
        cmocka_unit_test(encode_exact_text),      cmocka_unit_test(encode_task_info_fallbacks),
        cmocka_unit_test(round_trip_every_field), cmocka_unit_test(round_trip_largest_lock),
        cmocka_unit_test(task_info_normalize),    cmocka_unit_test(task_info_size),
        cmocka_unit_test(record_copy_and_judge),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
