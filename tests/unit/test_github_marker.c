/*
 * test_github_marker.c -- the text of the GitHub store: claim and completion markers, the Link
 * header, issue keys. Pure functions: no server, no network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stores/github.h"
#include "tl.h"

#define NONCE_A "0123456789abcdef0123456789abcdef"
static const char nonce_a[] = NONCE_A;

/* A copy of `s` with its first `from` replaced by `to` (which must be there). */
static char *replaced(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);

    assert_non_null(at);
    char *out = tl__asprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    assert_non_null(out);
    return out;
}

static void fill_claim(struct tl_gh_claim *c, const char *task_info)
{
    memset(c, 0, sizeof(*c));
    c->rec.info.worker_id = tl__strdup("worker-1");
    c->rec.info.node_id = tl__strdup("node-abc");
    c->rec.info.task_info = tl__strdup(task_info);
    c->rec.info.claimed_at_ms = 1795735681000; /* 2026-11-26T23:28:01Z */
    c->rec.info.heartbeat_at_ms = 1795735681000;
    c->rec.info.lock_timeout_ms = 300000;
    memcpy(c->nonce, nonce_a, sizeof(c->nonce));
    c->seq = 7;
}

static void claim_roundtrip(void **state)
{
    struct tl_gh_claim c, back;
    char why[TL_ERRMSG_SIZE];

    (void)state;
    fill_claim(&c, "{\"job\":\"build\",\"n\":3}");
    char *body = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(body);
    assert_non_null(strstr(body, "Locked by `worker-1` on `node-abc` since 2026-11-26T23:28:01Z"));
    assert_non_null(strstr(body, "<!-- tasklock {"));
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, why), TL_GH_CLAIM);
    assert_string_equal(back.rec.info.worker_id, "worker-1");
    assert_string_equal(back.rec.info.node_id, "node-abc");
    assert_string_equal(back.rec.info.task_info, "{\"job\":\"build\",\"n\":3}");
    assert_int_equal(back.rec.info.lock_timeout_ms, 300000);
    assert_int_equal(back.rec.info.claimed_at_ms, 1795735681000);
    assert_string_equal(back.nonce, nonce_a);
    assert_int_equal(back.seq, 7);
    assert_int_equal(back.took, TL_GH_TOOK_FREE);
    assert_int_equal(back.nfrom, 0);
    tl__gh_claim_clear(&back);
    tl__free(body);
    tl__gh_claim_clear(&c);
}

/* The line: a queued claim carries its waiter id and says it is in line; a holder's heartbeat
 * marks it held. A claim without a waiter id counts as held. */
static void claim_in_line_and_held(void **state)
{
    static const char waiter[] = "fedcba9876543210fedcba9876543210";
    struct tl_gh_claim c, back;
    char why[TL_ERRMSG_SIZE];

    (void)state;
    fill_claim(&c, "{}");
    assert_true(tl__gh_claim_held(&c)); /* no waiter id: a claim that waits in no line */
    memcpy(c.waiter, waiter, sizeof(c.waiter));
    assert_false(tl__gh_claim_held(&c));
    char *body = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(body);
    assert_non_null(strstr(body, "In line for the lock: `worker-1` on `node-abc`"));
    assert_null(strstr(body, "Locked by"));
    assert_null(strstr(body, "\"held\""));
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, why), TL_GH_CLAIM);
    assert_string_equal(back.waiter, waiter);
    assert_false(back.held);
    assert_false(tl__gh_claim_held(&back));
    tl__gh_claim_clear(&back);
    tl__free(body);

    c.held = true;
    body = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(body);
    assert_non_null(strstr(body, "Locked by `worker-1`"));
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, why), TL_GH_CLAIM);
    assert_string_equal(back.waiter, waiter);
    assert_true(back.held);
    assert_true(tl__gh_claim_held(&back));
    tl__gh_claim_clear(&back);
    tl__free(body);
    tl__gh_claim_clear(&c);

    /* A waiter id that is not 32 lower-case hex digits, or a "held" that is not a boolean. */
    static const char *const bad[] = {"\"waiter\":\"FEDCBA9876543210FEDCBA9876543210\"",
                                      "\"waiter\":\"abc\"", "\"waiter\":7", "\"held\":1",
                                      "\"held\":\"yes\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t = tl__asprintf(
            "<!-- tasklock {\"v\":1,\"nonce\":\"%s\",%s,\"lock\":{\"worker_id\":\"w\","
            "\"node_id\":\"n\",\"claimed_at\":\"2026-11-26T23:28:01.123Z\",\"heartbeat_last\":"
            "\"2026-11-26T23:29:16.000Z\",\"task_info\":{},\"lock_timeout_ms\":300000}} -->",
            nonce_a, bad[i]);
        assert_non_null(t);
        assert_int_equal(tl__gh_parse_claim(t, strlen(t), &back, why), TL_GH_BAD);
        assert_non_null(strstr(why, "waiter"));
        tl__free(t);
    }
}

static void claim_with_displaced_holder(void **state)
{
    struct tl_gh_claim c, back;

    (void)state;
    fill_claim(&c, "{}");
    c.took = TL_GH_TOOK_STALE;
    c.nfrom = 1;
    c.from[0].worker_id = tl__strdup("old-worker");
    c.from[0].node_id = tl__strdup("old-node");
    c.from[0].token = 3000000001;
    c.from[0].claimed_at_ms = 1795735000000;
    c.from[0].heartbeat_at_ms = 1795735100000;
    char *body = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(body);
    assert_non_null(strstr(body, "Recovered the stale lock of `old-worker` on `old-node`"));
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, NULL), TL_GH_CLAIM);
    assert_int_equal(back.took, TL_GH_TOOK_STALE);
    assert_int_equal(back.nfrom, 1);
    assert_string_equal(back.from[0].worker_id, "old-worker");
    assert_int_equal(back.from[0].token, 3000000001);
    tl__gh_claim_clear(&back);
    tl__free(body);
    tl__gh_claim_clear(&c);
}

/* Text inside the metadata cannot end the HTML comment or open a second marker. */
static void hostile_task_info_stays_inside(void **state)
{
    struct tl_gh_claim c, back;

    (void)state;
    fill_claim(&c, "{\"x\":\"--> <!-- tasklock {\\\"v\\\":1} --> & <b>\"}");
    char *body = tl__gh_build_claim(&c, 0);
    assert_non_null(body);
    assert_null(strstr(strstr(body, "<!-- tasklock ") + 5, "<!-- tasklock"));
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, NULL), TL_GH_CLAIM);
    assert_non_null(strstr(back.rec.info.task_info, "--> <!-- tasklock"));
    tl__gh_claim_clear(&back);
    tl__free(body);
    tl__gh_claim_clear(&c);
}

static void ids_are_neutralised_in_the_visible_line(void **state)
{
    struct tl_gh_claim c;

    (void)state;
    fill_claim(&c, "{}");
    tl__free(c.rec.info.worker_id);
    c.rec.info.worker_id = tl__strdup("evil`@someone<x>");
    char *body = tl__gh_build_claim(&c, 0);
    assert_non_null(body);
    assert_non_null(strstr(body, "`evil_@someone_x_`"));
    tl__free(body);
    tl__gh_claim_clear(&c);
}

static enum tl_gh_kind parse(const char *body, char *why)
{
    struct tl_gh_claim c;
    enum tl_gh_kind k = tl__gh_parse_claim(body, strlen(body), &c, why);

    tl__gh_claim_clear(&c);
    return k;
}

static void bad_markers_are_bad(void **state)
{
    char why[TL_ERRMSG_SIZE];
    struct tl_gh_claim c;

    (void)state;
    assert_int_equal(parse("just a comment", why), TL_GH_NONE);
    assert_int_equal(parse("<!-- tasklocks are nice -->", why), TL_GH_NONE);
    assert_int_equal(parse("<!-- tasklock {\"v\":1", why), TL_GH_BAD);
    assert_non_null(strstr(why, "not closed"));
    assert_int_equal(parse("<!-- tasklock -->", why), TL_GH_BAD);
    assert_int_equal(parse("<!-- tasklock not json -->", why), TL_GH_BAD);
    assert_int_equal(parse("<!-- tasklock [1,2] -->", why), TL_GH_BAD);
    assert_int_equal(parse("<!-- tasklock {\"v\":2} -->", why), TL_GH_BAD);
    assert_int_equal(parse("<!-- tasklock {\"v\":1,\"nonce\":5} -->", why), TL_GH_BAD);
    assert_int_equal(parse("<!-- tasklock {\"v\":1,\"nonce\":\"0123456789abcdef0123456789abcdeF\","
                           "\"lock\":{}} -->",
                           why),
                     TL_GH_BAD);
    assert_int_equal(parse("<!-- tasklock {\"v\":1,\"nonce\":\"0123456789abcdef0123456789abcdef\","
                           "\"lock\":{\"worker_id\":\"w\"}} -->",
                           why),
                     TL_GH_BAD);
    assert_int_equal(parse("<!-- tasklock {\"v\":1,\"nonce\":\"0123456789abcdef0123456789abcdef\","
                           "\"seq\":-1,\"lock\":{}} -->",
                           why),
                     TL_GH_BAD);

    /* duplicated: a valid claim quoted twice is not a claim */
    fill_claim(&c, "{}");
    char *one = tl__gh_build_claim(&c, 0);
    char *two = tl__asprintf("%s\n%s", one, one);
    assert_int_equal(parse(one, why), TL_GH_CLAIM);
    assert_int_equal(parse(two, why), TL_GH_BAD);
    assert_non_null(strstr(why, "2 tasklock markers"));
    tl__free(one);
    tl__free(two);
    tl__gh_claim_clear(&c);

    /* oversized */
    size_t n = TL_GH_MARKER_MAX + 100;
    char *big = malloc(n + 64);
    assert_non_null(big);
    strcpy(big, "<!-- tasklock {\"v\":1,\"x\":\"");
    size_t at = strlen(big);
    memset(big + at, 'a', n);
    strcpy(big + at + n, "\"} -->");
    assert_int_equal(parse(big, why), TL_GH_BAD);
    assert_non_null(strstr(why, "over the limit"));
    free(big);

    /* not NUL-terminated: the length is what counts */
    const char buf[] = {'<', '!', '-', '-', ' ', 't', 'a', 's', 'k', 'l', 'o', 'c', 'k', ' '};
    assert_int_equal(tl__gh_parse_claim(buf, sizeof(buf), &c, why), TL_GH_BAD);
    assert_int_equal(tl__gh_parse_claim(NULL, 0, &c, why), TL_GH_NONE);
}

static void release_roundtrip(void **state)
{
    struct tl_gh_release r = {0}, back;
    struct tl_gh_claim c;
    char why[TL_ERRMSG_SIZE];

    (void)state;
    memcpy(r.nonce, nonce_a, sizeof(r.nonce));
    r.token = 3000000042;
    r.worker_id = "worker-1";
    r.node_id = "node-abc";
    r.claimed_at_ms = 1795735681000;
    r.released_at_ms = 1795735681000 + 192000;
    r.summary = "built <!-- tasklock {\"v\":1} --> ok\nsecond line \xff";
    char *body = tl__gh_build_release(&r);
    assert_non_null(body);
    assert_non_null(strstr(body, "Released by `worker-1` on `node-abc`"));
    assert_non_null(strstr(body, "after 3m12s"));
    assert_non_null(strstr(body, "> second line"));
    assert_int_equal(tl__gh_parse_comment(body, strlen(body), &c, &back, why), TL_GH_RELEASE);
    assert_string_equal(back.nonce, nonce_a);
    assert_int_equal(back.token, 3000000042);
    assert_string_equal(back.worker_id, "worker-1");
    assert_int_equal(back.released_at_ms - back.claimed_at_ms, 192000);
    assert_non_null(back.summary);
    assert_non_null(strstr(back.summary, "second line ?"));
    /* a completion is never a claim */
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &c, why), TL_GH_NONE);
    tl__gh_release_clear(&back);
    tl__free(body);
}

/* A forced release's completion names who broke the lock, in the text and in the marker; a
 * marker without "forced_by" (every older one) is the holder's own release. */
static void forced_release_roundtrip(void **state)
{
    struct tl_gh_release r = {0}, back;
    char why[TL_ERRMSG_SIZE];

    (void)state;
    memcpy(r.nonce, nonce_a, sizeof(r.nonce));
    r.token = 3000000042;
    r.worker_id = "worker-1";
    r.node_id = "node-abc";
    r.claimed_at_ms = 1795735681000;
    r.released_at_ms = 1795735681000 + 720000;
    r.summary = "hung";
    r.forced_worker_id = "admin";
    r.forced_node_id = "ops";
    char *body = tl__gh_build_release(&r);
    assert_non_null(body);
    assert_non_null(strstr(body, "Lock broken by `admin` on `ops`"));
    assert_non_null(strstr(body, "held by `worker-1` on `node-abc` for 12m00s"));
    assert_int_equal(tl__gh_parse_comment(body, strlen(body), NULL, &back, why), TL_GH_RELEASE);
    assert_int_equal(back.token, 3000000042);
    assert_string_equal(back.worker_id, "worker-1");
    assert_string_equal(back.forced_worker_id, "admin");
    assert_string_equal(back.forced_node_id, "ops");
    tl__gh_release_clear(&back);
    tl__free(body);

    /* A bad "forced_by" makes the marker bad, not a release of the holder's own. */
    static const char *const bad[] = {
        "\"forced_by\":\"admin\"",
        "\"forced_by\":{\"worker_id\":\"admin\"}",
        "\"forced_by\":{\"worker_id\":\"two words\",\"node_id\":\"ops\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[1024];
        (void)snprintf(text, sizeof(text),
                       "x\n\n<!-- tasklock:released {\"v\":1,\"nonce\":\"%s\",\"token\":5,"
                       "\"worker_id\":\"w\",\"node_id\":\"n\",\"claimed_at\":"
                       "\"2026-11-26T23:28:01Z\",\"released_at\":\"2026-11-26T23:29:01Z\",%s} -->",
                       nonce_a, bad[i]);
        assert_int_equal(tl__gh_parse_comment(text, strlen(text), NULL, &back, why), TL_GH_BAD);
        assert_non_null(strstr(why, "forced_by"));
    }
}

/* An id of TL_ID_MAX bytes that escapes worst in the marker: '<' is six bytes there. */
static char *worst_id(void)
{
    char *id = tl__malloc(TL_ID_MAX + 1);

    assert_non_null(id);
    memset(id, '<', TL_ID_MAX);
    id[TL_ID_MAX] = '\0';
    return id;
}

/* The normalised task info of `len` bytes: {"x":"..."} with `len - 8` copies of `unit`. */
static char *task_info_of(size_t len, const char *unit)
{
    size_t u = strlen(unit), n = (len - 8) / u;
    char *raw = tl__malloc(n * u + 16), *norm = NULL;
    char err[TL_ERRMSG_SIZE];

    assert_non_null(raw);
    memcpy(raw, "{\"x\":\"", 6);
    for (size_t i = 0; i < n; i++)
        memcpy(raw + 6 + i * u, unit, u);
    memcpy(raw + 6 + n * u, "\"}", 3);
    assert_int_equal(tl__task_info_normalize(raw, &norm, err), TL_OK);
    tl__free(raw);
    return norm;
}

static void fill_worst_from(struct tl_gh_from *from, size_t *nfrom)
{
    for (size_t i = 0; i < TL_GH_FROM_DEPTH; i++) {
        from[i].worker_id = worst_id();
        from[i].node_id = worst_id();
        from[i].token = INT64_MAX - i;
        from[i].claimed_at_ms = 1795735000000;
        from[i].heartbeat_at_ms = 1795735100000;
        from[i].took = i % 2 ? TL_GH_TOOK_FORCED : TL_GH_TOOK_STALE;
    }
    *nfrom = TL_GH_FROM_DEPTH;
}

/* Builds the claim, parses it back, and checks what came back; returns the body's characters. */
static size_t claim_comes_back(const struct tl_gh_claim *c)
{
    struct tl_gh_claim back;
    char why[TL_ERRMSG_SIZE] = "";

    char *body = tl__gh_build_claim(c, 1795735741000);
    assert_non_null(body);
    enum tl_gh_kind k = tl__gh_parse_claim(body, strlen(body), &back, why);
    if (k != TL_GH_CLAIM)
        fail_msg("a built claim of %zu bytes does not parse back: %s", strlen(body), why);
    assert_string_equal(back.rec.info.task_info, c->rec.info.task_info);
    assert_string_equal(back.rec.info.worker_id, c->rec.info.worker_id);
    assert_string_equal(back.rec.info.node_id, c->rec.info.node_id);
    assert_int_equal(back.nfrom, c->nfrom);
    for (size_t i = 0; i < c->nfrom; i++) {
        assert_string_equal(back.from[i].worker_id, c->from[i].worker_id);
        assert_int_equal(back.from[i].token, c->from[i].token);
        assert_int_equal(back.from[i].took, c->from[i].took);
    }
    assert_int_equal(back.seq, c->seq);
    size_t chars = tl__gh_chars(body);
    print_message("claim body: %zu bytes, %zu characters\n", strlen(body), chars);
    tl__gh_claim_clear(&back);
    tl__free(body);
    return chars;
}

/*
 * Whatever the store can build, it parses back: the core's largest task info (64 KiB) with
 * every character escaped to six bytes, the longest ids, a full chain of displaced holders and
 * the widest heartbeat counter. Such a claim is far over GitHub's limit (the claim path refuses
 * it before posting); 64 KiB of four-byte characters is not, and its marker is over 64 KiB.
 */
static void largest_claims_round_trip(void **state)
{
    struct tl_gh_claim c;

    (void)state;
    fill_claim(&c, "{}");
    tl__free(c.rec.info.task_info);
    tl__free(c.rec.info.worker_id);
    tl__free(c.rec.info.node_id);
    c.rec.info.task_info = task_info_of(TL_META_MAX, "<");
    assert_int_equal(strlen(c.rec.info.task_info), TL_META_MAX);
    c.rec.info.worker_id = worst_id();
    c.rec.info.node_id = worst_id();
    c.seq = INT64_MAX;
    c.took = TL_GH_TOOK_FORCED;
    fill_worst_from(c.from, &c.nfrom);
    assert_true(claim_comes_back(&c) > TL_GH_BODY_MAX);

    /* Four-byte characters: 16 K characters, 64 KiB of bytes; GitHub takes it. */
    tl__free(c.rec.info.task_info);
    c.rec.info.task_info = task_info_of(TL_META_MAX, "\xf0\x9f\x94\x92");
    assert_true(strlen(c.rec.info.task_info) > TL_META_MAX - 8);
    assert_true(claim_comes_back(&c) <= TL_GH_BODY_MAX);

    /* Plain ASCII, the whole 64 KiB. */
    tl__free(c.rec.info.task_info);
    c.rec.info.task_info = task_info_of(TL_META_MAX, "a");
    assert_true(claim_comes_back(&c) > TL_GH_BODY_MAX);
    tl__gh_claim_clear(&c);
}

/* The largest completion comment (longest summary of characters that escape worst, longest
 * ids, a full chain) fits GitHub's limit and parses back. */
static void largest_completion_fits(void **state)
{
    struct tl_gh_release r = {0}, back;
    char why[TL_ERRMSG_SIZE] = "";

    (void)state;
    memcpy(r.nonce, nonce_a, sizeof(r.nonce));
    r.token = INT64_MAX;
    r.worker_id = worst_id();
    r.node_id = worst_id();
    r.claimed_at_ms = 1795735681000;
    r.released_at_ms = 1795735681000 + 192000;
    char *summary = tl__malloc(10001);
    assert_non_null(summary);
    for (size_t i = 0; i < 10000; i++)
        summary[i] = i % 2 ? '<' : '\n';
    summary[10000] = '\0';
    r.summary = summary;
    r.took = TL_GH_TOOK_STALE;
    fill_worst_from(r.from, &r.nfrom);
    r.forced_worker_id = worst_id(); /* a forced release's completion is the larger */
    r.forced_node_id = worst_id();
    char *body = tl__gh_build_release(&r);
    assert_non_null(body);
    print_message("completion body: %zu bytes, %zu characters\n", strlen(body), tl__gh_chars(body));
    assert_true(tl__gh_chars(body) <= TL_GH_BODY_MAX);
    assert_int_equal(tl__gh_parse_comment(body, strlen(body), NULL, &back, why), TL_GH_RELEASE);
    assert_int_equal(back.token, INT64_MAX);
    assert_int_equal(back.nfrom, TL_GH_FROM_DEPTH);
    assert_string_equal(back.worker_id, r.worker_id);
    tl__gh_release_clear(&back);
    tl__free(body);
    tl__free(summary);
    r.summary = NULL;
    tl__free(r.worker_id);
    tl__free(r.node_id);
    r.worker_id = r.node_id = NULL;
    tl__gh_release_clear(&r);
}

static void characters_are_code_points(void **state)
{
    (void)state;
    assert_int_equal(tl__gh_chars(""), 0);
    assert_int_equal(tl__gh_chars("abc"), 3);
    assert_int_equal(tl__gh_chars("\xc3\xa9"), 1);                         /* é */
    assert_int_equal(tl__gh_chars("\xe2\x9c\x85 ok"), 4);                  /* ✅ ok */
    assert_int_equal(tl__gh_chars("\xf0\x9f\x94\x92\xf0\x9f\x94\x92"), 2); /* two U+1F512 */
}

/* Markers written before this version (the fuzz corpus has more) still parse. */
/* Shared holders (store ops version 5): a shared claim's marker says "mode":"shared" (and
 * "slots" for a semaphore) inside its "lock"; an exclusive claim's text is as before, so that
 * older readers, which ignore the mode, read both. Garbled modes or slots are bad markers, with
 * a reason, never a guess. */
static void shared_claims_round_trip(void **state)
{
    struct tl_gh_claim c, back;
    char why[TL_ERRMSG_SIZE];

    (void)state;
    fill_claim(&c, "{}");
    char *excl = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(excl);
    assert_null(strstr(excl, "\"mode\""));
    assert_null(strstr(excl, "\"slots\""));
    assert_int_equal(tl__gh_parse_claim(excl, strlen(excl), &back, why), TL_GH_CLAIM);
    assert_int_equal(back.rec.info.mode, TL_EXCLUSIVE);
    assert_int_equal(back.rec.info.slots, 0);
    tl__gh_claim_clear(&back);

    c.rec.info.mode = TL_SHARED;
    char *shared = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(shared);
    assert_non_null(strstr(shared, "\"mode\":\"shared\""));
    assert_null(strstr(shared, "\"slots\""));
    assert_int_equal(tl__gh_parse_claim(shared, strlen(shared), &back, why), TL_GH_CLAIM);
    assert_int_equal(back.rec.info.mode, TL_SHARED);
    assert_int_equal(back.rec.info.slots, 0);
    tl__gh_claim_clear(&back);

    c.rec.info.slots = 3;
    char *sem = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(sem);
    assert_int_equal(tl__gh_parse_claim(sem, strlen(sem), &back, why), TL_GH_CLAIM);
    assert_int_equal(back.rec.info.mode, TL_SHARED);
    assert_int_equal(back.rec.info.slots, 3);
    tl__gh_claim_clear(&back);

    /* The mode lives inside "lock", which older readers decode field by field: what they
     * need is all there, and nothing of theirs moved. */
    const char *lock = strstr(sem, "\"lock\":{");
    assert_non_null(lock);
    const char *end = strstr(lock, "},\"v\":1"); /* the end of "lock" */
    assert_non_null(end);
    const char *mode = strstr(lock, "\"mode\":\"shared\"");
    assert_true(mode != NULL && mode < end);
    tl__free(excl);
    tl__free(shared);
    tl__free(sem);
    tl__gh_claim_clear(&c);

    static const char *const bad[] = {
        "\"mode\":\"reader\"",
        "\"mode\":1",
        "\"mode\":null",
        "\"mode\":\"shared\",\"slots\":-2",
        "\"mode\":\"shared\",\"slots\":\"2\"",
        "\"mode\":\"shared\",\"slots\":100001",
        "\"slots\":2",
        "\"mode\":\"exclusive\",\"slots\":1",
        "\"mode\":\"shared\",\"slots\":2.5",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body = tl__asprintf(
            "<!-- tasklock {\"lock\":{\"worker_id\":\"w\",\"node_id\":\"n\",\"claimed_at\":"
            "\"2026-11-26T23:28:01.123Z\",\"heartbeat_last\":\"2026-11-26T23:29:16.000Z\","
            "\"task_info\":{},\"lock_timeout_ms\":300000,%s},\"v\":1,\"nonce\":"
            "\"0123456789abcdef0123456789abcdef\",\"seq\":1} -->",
            bad[i]);
        assert_non_null(body);
        why[0] = '\0';
        if (parse(body, why) != TL_GH_BAD)
            fail_msg("not refused: %s", bad[i]);
        if (strstr(why, "mode") == NULL && strstr(why, "slots") == NULL)
            fail_msg("%s: the reason does not say what is wrong: %s", bad[i], why);
        tl__free(body);
    }
    /* "exclusive" said out loud is an exclusive claim. */
    char *said = tl__asprintf(
        "<!-- tasklock {\"lock\":{\"worker_id\":\"w\",\"node_id\":\"n\",\"claimed_at\":"
        "\"2026-11-26T23:28:01.123Z\",\"heartbeat_last\":\"2026-11-26T23:29:16.000Z\","
        "\"task_info\":{},\"lock_timeout_ms\":300000,\"mode\":\"exclusive\"},\"v\":1,"
        "\"nonce\":\"0123456789abcdef0123456789abcdef\",\"seq\":1} -->");
    assert_int_equal(tl__gh_parse_claim(said, strlen(said), &back, why), TL_GH_CLAIM);
    assert_int_equal(back.rec.info.mode, TL_EXCLUSIVE);
    tl__gh_claim_clear(&back);
    tl__free(said);
}

static void older_markers_still_parse(void **state)
{
    struct tl_gh_claim c;
    struct tl_gh_release r;
    static const char claim[] =
        "\xf0\x9f\x94\x92 Locked by `w` on `n` since 2026-11-26T23:28:01Z (lock timeout 5m00s; "
        "last heartbeat 2026-11-26T23:29:16Z, #1).\n\n<!-- tasklock {\"lock\":{\"worker_id\":"
        "\"w\",\"node_id\":\"n\",\"claimed_at\":\"2026-11-26T23:28:01.123Z\",\"heartbeat_last\":"
        "\"2026-11-26T23:29:16.000Z\",\"task_info\":{},\"lock_timeout_ms\":300000},\"v\":1,"
        "\"nonce\":\"0123456789abcdef0123456789abcdef\",\"seq\":1} -->";
    static const char release[] =
        "<!-- tasklock:released {\"v\":1,\"nonce\":\"fedcba9876543210fedcba9876543210\","
        "\"token\":987654321,\"worker_id\":\"w\",\"node_id\":\"n\",\"claimed_at\":"
        "\"2026-11-26T23:28:01.123Z\",\"released_at\":\"2026-11-27T00:28:01.000Z\"} -->";

    (void)state;
    assert_int_equal(tl__gh_parse_comment(claim, strlen(claim), &c, NULL, NULL), TL_GH_CLAIM);
    assert_string_equal(c.rec.info.worker_id, "w");
    tl__gh_claim_clear(&c);
    assert_int_equal(tl__gh_parse_comment(release, strlen(release), NULL, &r, NULL), TL_GH_RELEASE);
    assert_int_equal(r.token, 987654321);
    assert_int_equal(r.took, TL_GH_TOOK_FREE);
    assert_null(r.summary);
    tl__gh_release_clear(&r);
}

static void link_next(void **state)
{
    char *n;

    (void)state;
    n = tl__gh_link_next("<https://api.github.com/repositories/515435940/issues/5/comments"
                         "?per_page=100&page=2>; rel=\"next\", <https://api.github.com/"
                         "repositories/515435940/issues/5/comments?per_page=100&page=3>; "
                         "rel=\"last\"");
    assert_non_null(n);
    assert_string_equal(n, "https://api.github.com/repositories/515435940/issues/5/comments"
                           "?per_page=100&page=2");
    tl__free(n);
    n = tl__gh_link_next("<http://x/a?page=1>; rel=\"first\", <http://x/a?page=4>; rel=\"prev\", "
                         "<http://x/a?page=6>; rel=next");
    assert_non_null(n);
    assert_string_equal(n, "http://x/a?page=6");
    tl__free(n);
    n = tl__gh_link_next("<http://x/b>; title=\"a, b; c\"; REL=\"prev NEXT\"");
    assert_non_null(n);
    assert_string_equal(n, "http://x/b");
    tl__free(n);
    assert_null(tl__gh_link_next("<http://x/a?page=1>; rel=\"last\""));
    assert_null(tl__gh_link_next(NULL));
    assert_null(tl__gh_link_next(""));
    assert_null(tl__gh_link_next("garbage"));
    assert_null(tl__gh_link_next("<http://x/a; rel=\"next\""));
    assert_null(tl__gh_link_next("<http://x/a>; rel=\"next"));
    assert_null(tl__gh_link_next("<>; rel=\"next\""));
}

static void keys(void **state)
{
    int64_t n = 0;

    (void)state;
    assert_true(tl__gh_parse_key("123", &n));
    assert_int_equal(n, 123);
    assert_true(tl__gh_parse_key("#7", &n));
    assert_int_equal(n, 7);
    assert_false(tl__gh_parse_key("0", &n));
    assert_false(tl__gh_parse_key("012", &n));
    assert_false(tl__gh_parse_key("-1", &n));
    assert_false(tl__gh_parse_key("+1", &n));
    assert_false(tl__gh_parse_key("12a", &n));
    assert_false(tl__gh_parse_key("", &n));
    assert_false(tl__gh_parse_key("#", &n));
    assert_false(tl__gh_parse_key("##1", &n));
    assert_false(tl__gh_parse_key("issue-5", &n));
    assert_false(tl__gh_parse_key("99999999999999999999999", &n));
    assert_false(tl__gh_parse_key(NULL, &n));
}

/* Deterministic garbage and mutations of a valid marker: never a crash, never a leak. */
static void garbage_never_crashes(void **state)
{
    struct tl_gh_claim c;
    struct tl_gh_release r;
    uint64_t x = 88172645463325252ull;

    (void)state;
    fill_claim(&c, "{\"a\":[1,2,{\"b\":null}]}");
    char *valid = tl__gh_build_claim(&c, 0);
    tl__gh_claim_clear(&c);
    size_t vlen = strlen(valid);
    char *buf = malloc(vlen + 1);
    assert_non_null(buf);
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, valid, vlen + 1);
        int edits = 1 + round % 5;
        for (int e = 0; e < edits; e++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[x % vlen] = (char)(x >> 32);
        }
        size_t len = round % 7 == 0 ? (size_t)(x % vlen) : vlen;
        enum tl_gh_kind k = tl__gh_parse_comment(buf, len, &c, &r, NULL);
        assert_true(k <= TL_GH_BAD);
        tl__gh_claim_clear(&c);
        tl__gh_release_clear(&r);
        char *l = tl__gh_link_next(buf);
        tl__free(l);
    }
    free(buf);
    tl__free(valid);
}

/* A done release's completion says "done":true; one without it (every older one) is a plain
 * release; a "done" that is not a boolean makes the marker garbled. A forced release is never
 * done. */
static void done_release_roundtrip(void **state)
{
    struct tl_gh_release r = {0}, back;
    char why[TL_ERRMSG_SIZE];

    (void)state;
    memcpy(r.nonce, nonce_a, sizeof(r.nonce));
    r.token = 3000000043;
    r.worker_id = "worker-1";
    r.node_id = "node-abc";
    r.claimed_at_ms = 1795735681000;
    r.released_at_ms = 1795735681000 + 1000;
    r.done = true;
    char *body = tl__gh_build_release(&r);
    assert_non_null(body);
    assert_non_null(strstr(body, "Done: finished and closed by `worker-1`"));
    assert_int_equal(tl__gh_parse_comment(body, strlen(body), NULL, &back, why), TL_GH_RELEASE);
    assert_true(back.done);
    tl__gh_release_clear(&back);
    tl__free(body);

    r.done = false;
    body = tl__gh_build_release(&r);
    assert_null(strstr(body, "\"done\""));
    assert_int_equal(tl__gh_parse_comment(body, strlen(body), NULL, &back, why), TL_GH_RELEASE);
    assert_false(back.done);
    tl__gh_release_clear(&back);
    tl__free(body);

    r.done = true;
    r.forced_worker_id = "breaker";
    body = tl__gh_build_release(&r);
    assert_int_equal(tl__gh_parse_comment(body, strlen(body), NULL, &back, why), TL_GH_RELEASE);
    assert_false(back.done);
    tl__gh_release_clear(&back);
    tl__free(body);

    const char *bad =
        "<!-- tasklock:released {\"v\":1,\"nonce\":\"00112233445566778899aabbccddeeff\","
        "\"token\":5,\"worker_id\":\"w\",\"node_id\":\"n\",\"claimed_at\":"
        "\"2026-12-04T14:00:00Z\",\"released_at\":\"2026-12-04T14:00:01Z\","
        "\"done\":\"yes\"} -->";
    assert_int_equal(tl__gh_parse_comment(bad, strlen(bad), NULL, &back, why), TL_GH_BAD);
    assert_non_null(strstr(why, "done"));
}

/* The reopen comment: its own parser tells it; to the claim and completion parser (and so to
 * every older reader) it is an ordinary comment. */
static void reopen_roundtrip(void **state)
{
    const struct tl_gh_reopen r = {
        .worker_id = "worker-2", .node_id = "node-x", .at_ms = 1795735681000};
    struct tl_gh_reopen back;
    char why[TL_ERRMSG_SIZE];

    (void)state;
    char *body = tl__gh_build_reopen(&r);
    assert_non_null(body);
    assert_non_null(strstr(body, "Reopened by `worker-2` on `node-x`"));
    assert_int_equal(tl__gh_parse_reopen(body, strlen(body), &back), TL_GH_REOPEN);
    assert_string_equal(back.worker_id, "worker-2");
    assert_string_equal(back.node_id, "node-x");
    assert_int_equal(back.at_ms, 1795735681000);
    tl__gh_reopen_clear(&back);
    assert_int_equal(tl__gh_parse_comment(body, strlen(body), NULL, NULL, why), TL_GH_NONE);
    tl__free(body);

    const char *cases[] = {
        "<!-- tasklock:reopened {\"v\":2,\"worker_id\":\"w\",\"node_id\":\"n\","
        "\"at\":\"2026-12-04T14:00:00Z\"} -->",
        "<!-- tasklock:reopened {\"v\":1,\"worker_id\":\"w\"} -->",
        "<!-- tasklock:reopened {\"v\":1",
        "<!-- tasklock:reopened {} --> <!-- tasklock:reopened {} -->",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(tl__gh_parse_reopen(cases[i], strlen(cases[i]), &back), TL_GH_BAD);
    assert_int_equal(tl__gh_parse_reopen("plain text", 10, &back), TL_GH_NONE);
    /* any prefix of a valid one: never a crash */
    body = tl__gh_build_reopen(&r);
    for (size_t n = 0; n <= strlen(body); n++) {
        if (tl__gh_parse_reopen(body, n, &back) == TL_GH_REOPEN)
            tl__gh_reopen_clear(&back);
    }
    tl__free(body);
}

/* Sessions: a claim names its session (id and nonce); readers that predate sessions read it
 * as before. A session comment is no claim to the claim parser, and parses back. */
static void session_claim_and_comment_roundtrip(void **state)
{
    struct tl_gh_claim c, back;
    char why[TL_ERRMSG_SIZE];

    (void)state;
    fill_claim(&c, "{}");
    c.session = 3000000123;
    memcpy(c.session_nonce, nonce_a, sizeof(c.session_nonce));
    char *body = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(body);
    assert_non_null(strstr(body, "\"session\":{\"id\":3000000123,\"nonce\":\""));
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, why), TL_GH_CLAIM);
    assert_int_equal(back.session, 3000000123);
    assert_string_equal(back.session_nonce, nonce_a);
    tl__gh_claim_clear(&back);
    tl__free(body);
    c.session = 0; /* without a session: no field */
    body = tl__gh_build_claim(&c, 1795735741000);
    assert_null(strstr(body, "session"));
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, why), TL_GH_CLAIM);
    assert_int_equal(back.session, 0);
    tl__gh_claim_clear(&back);
    tl__free(body);
    tl__gh_claim_clear(&c);

    /* What a reader that predates sessions reads in a session claim: the longest lock timeout
     * there is (it judges the claim by its own updated_at, never edited: held, never free); the
     * lock's own timeout is in the session reference, and is what it parses back to. */
    fill_claim(&c, "{}");
    c.rec.info.lock_timeout_ms = 300000;
    c.session = 42;
    memcpy(c.session_nonce, nonce_a, sizeof(c.session_nonce));
    body = tl__gh_build_claim(&c, 1795735741000);
    tl__gh_claim_clear(&c);
    assert_non_null(body);
    char older[64];
    (void)snprintf(older, sizeof(older), "\"lock_timeout_ms\":%u", TL_DURATION_MAX_MS);
    assert_non_null(strstr(body, older));
    const char *ref = "\"session\":{\"id\":42,\"nonce\":\"" NONCE_A "\",\"timeout_ms\":300000}";
    assert_non_null(strstr(body, ref));
    assert_non_null(strstr(body, "lock timeout 5m")); /* the visible text: the lock's own */
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, why), TL_GH_CLAIM);
    assert_int_equal(back.rec.info.lock_timeout_ms, 300000);
    assert_int_equal(back.session, 42);
    tl__gh_claim_clear(&back);
    /* A session claim written before the reference carried the timeout: the lock's. */
    char *earlier = replaced(body, ",\"timeout_ms\":300000}", "}");
    char *earlier2 = replaced(earlier, older, "\"lock_timeout_ms\":1000");
    if (tl__gh_parse_claim(earlier2, strlen(earlier2), &back, why) != TL_GH_CLAIM)
        fail_msg("%s", why);
    assert_int_equal(back.rec.info.lock_timeout_ms, 1000);
    assert_int_equal(back.session, 42);
    tl__gh_claim_clear(&back);
    tl__free(earlier);
    tl__free(earlier2);

    /* Garbled references, in an otherwise good claim. */
    const char *bad[][2] = {
        {ref, "\"session\":7"},
        {"\"id\":42", "\"id\":-1"},
        {"\"session\":{\"id\":42,\"nonce\":\"" NONCE_A, "\"session\":{\"id\":42,\"nonce\":\"XYZ"},
        {"\"timeout_ms\":300000", "\"timeout_ms\":0"},
        {"\"timeout_ms\":300000", "\"timeout_ms\":\"5m\""},
        {"\"timeout_ms\":300000", "\"timeout_ms\":9999999999"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *b = replaced(body, bad[i][0], bad[i][1]);
        assert_int_equal(tl__gh_parse_claim(b, strlen(b), &back, why), TL_GH_BAD);
        tl__free(b);
    }
    tl__free(body);

    struct tl_gh_session s = {
        .lock_timeout_ms = 300000, .seq = 4, .worker_id = "worker-1", .node_id = "node-abc"};
    struct tl_gh_session sb;
    memcpy(s.nonce, nonce_a, sizeof(s.nonce));
    body = tl__gh_build_session(&s, 1795735741000);
    assert_non_null(body);
    assert_non_null(strstr(body, "session of `worker-1` on `node-abc`"));
    assert_int_equal(tl__gh_parse_comment(body, strlen(body), NULL, NULL, why), TL_GH_NONE);
    assert_int_equal(tl__gh_parse_session(body, strlen(body), &sb), TL_GH_SESSION);
    assert_string_equal(sb.nonce, nonce_a);
    assert_int_equal(sb.lock_timeout_ms, 300000);
    assert_int_equal(sb.seq, 4);
    assert_string_equal(sb.worker_id, "worker-1");
    tl__gh_session_clear(&sb);
    assert_int_equal(tl__gh_parse_session("plain text", 10, &sb), TL_GH_NONE);
    const char *sbad[] = {
        "<!-- tasklock:session {\"v\":1,\"nonce\":\"0123456789abcdef0123456789abcdef\"} -->",
        "<!-- tasklock:session {\"v\":1,\"nonce\":\"0123456789abcdef0123456789abcdef\","
        "\"lock_timeout_ms\":0,\"worker_id\":\"w\",\"node_id\":\"n\"} -->",
        "<!-- tasklock:session {} --> <!-- tasklock:session {} -->",
        "<!-- tasklock:session {\"v\":1",
    };
    for (size_t i = 0; i < sizeof(sbad) / sizeof(sbad[0]); i++)
        assert_int_equal(tl__gh_parse_session(sbad[i], strlen(sbad[i]), &sb), TL_GH_BAD);
    for (size_t n = 0; n <= strlen(body); n++) { /* any prefix: never a crash */
        if (tl__gh_parse_session(body, n, &sb) == TL_GH_SESSION)
            tl__gh_session_clear(&sb);
    }
    tl__free(body);
}

/* Conversions and the wait-for graph (store ops version 5): "conv" with the converted claim as
 * from[0], in the claim, its from entries and the completion; a waiter's "holding" text. */
static void conversions_and_holding_round_trip(void **state)
{
    struct tl_gh_claim c, back;
    struct tl_gh_release r = {0}, rback;

    (void)state;
    fill_claim(&c, "{}");
    c.conv = TL_GH_CONV_DOWNGRADED;
    c.nfrom = 1;
    c.from[0].worker_id = tl__strdup("worker-1");
    c.from[0].node_id = tl__strdup("node-abc");
    c.from[0].token = 3000000001;
    c.from[0].conv = TL_GH_CONV_UPGRADED;
    memcpy(c.waiter, nonce_a, sizeof(c.waiter));
    c.holding = tl__strdup("x 12 3000000001 <b>&");
    char *body = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(body);
    assert_non_null(strstr(body, "Downgraded from its exclusive lock (token 3000000001)"));
    assert_null(strstr(body, "<b>")); /* escaped inside the marker, as any text there */
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, NULL), TL_GH_CLAIM);
    assert_int_equal(back.conv, TL_GH_CONV_DOWNGRADED);
    assert_int_equal(back.from[0].conv, TL_GH_CONV_UPGRADED);
    assert_int_equal(back.from[0].token, 3000000001);
    assert_string_equal(back.holding, "x 12 3000000001 <b>&");
    tl__gh_claim_clear(&back);
    tl__free(body);

    r.token = 3000000009;
    memcpy(r.nonce, nonce_a, sizeof(r.nonce));
    r.worker_id = tl__strdup("worker-1");
    r.node_id = tl__strdup("node-abc");
    r.claimed_at_ms = 1795735681000;
    r.released_at_ms = 1795735741000;
    r.conv = TL_GH_CONV_UPGRADED;
    body = tl__gh_build_release(&r);
    assert_non_null(body);
    assert_int_equal(tl__gh_parse_comment(body, strlen(body), NULL, &rback, NULL), TL_GH_RELEASE);
    assert_int_equal(rback.conv, TL_GH_CONV_UPGRADED);
    tl__gh_release_clear(&rback);
    tl__gh_release_clear(&r);
    tl__free(body);
    tl__gh_claim_clear(&c);
}

/* A conversion this reader does not know is a garbled marker, with a reason, as a bad "took"
 * is; a garbled or oversized holding text loses only its edges (the claim still counts); a
 * marker from before both reads as no conversion and no holding. */
static void bad_conversions_and_holding(void **state)
{
    struct tl_gh_claim c, back;
    char why[TL_ERRMSG_SIZE] = "";

    (void)state;
    fill_claim(&c, "{}");
    char *body = tl__gh_build_claim(&c, 1795735741000);
    assert_non_null(body);
    assert_int_equal(tl__gh_parse_claim(body, strlen(body), &back, NULL), TL_GH_CLAIM);
    assert_int_equal(back.conv, TL_GH_CONV_NONE);
    assert_null(back.holding);
    tl__gh_claim_clear(&back);

    /* The marker's JSON is an object: fields go in right after its opening brace. */
    char *at = strstr(body, "<!-- tasklock {") + strlen("<!-- tasklock {");
    const char *inserts[] = {"\"conv\":\"sideways\",", "\"conv\":7,",
                             "\"conv\":\"upgraded\","}; /* the last: no from */
    for (size_t i = 0; i < sizeof(inserts) / sizeof(inserts[0]); i++) {
        char *bad = tl__asprintf("%.*s%s%s", (int)(at - body), body, inserts[i], at);
        assert_non_null(bad);
        why[0] = '\0';
        assert_int_equal(tl__gh_parse_claim(bad, strlen(bad), &back, why), TL_GH_BAD);
        assert_non_null(strstr(why, "conv"));
        tl__gh_claim_clear(&back);
        tl__free(bad);
    }
    char *big = tl__malloc(TL_GH_HOLDING_MAX + 2);
    assert_non_null(big);
    memset(big, 'k', TL_GH_HOLDING_MAX + 1);
    big[TL_GH_HOLDING_MAX + 1] = '\0';
    char *over = tl__asprintf("\"holding\":\"%s\",", big);
    const char *holdings[] = {"\"holding\":17,", "\"holding\":[\"x\"],", over};
    for (size_t i = 0; i < sizeof(holdings) / sizeof(holdings[0]); i++) {
        char *odd = tl__asprintf("%.*s%s%s", (int)(at - body), body, holdings[i], at);
        assert_non_null(odd);
        assert_int_equal(tl__gh_parse_claim(odd, strlen(odd), &back, NULL), TL_GH_CLAIM);
        assert_null(back.holding);
        tl__gh_claim_clear(&back);
        tl__free(odd);
    }
    tl__free(over);
    tl__free(big);
    tl__free(body);
    tl__gh_claim_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(session_claim_and_comment_roundtrip),
        cmocka_unit_test(claim_roundtrip),
        cmocka_unit_test(claim_with_displaced_holder),
        cmocka_unit_test(claim_in_line_and_held),
        cmocka_unit_test(hostile_task_info_stays_inside),
        cmocka_unit_test(ids_are_neutralised_in_the_visible_line),
        cmocka_unit_test(bad_markers_are_bad),
        cmocka_unit_test(release_roundtrip),
        cmocka_unit_test(forced_release_roundtrip),
        cmocka_unit_test(done_release_roundtrip),
        cmocka_unit_test(reopen_roundtrip),
        cmocka_unit_test(largest_claims_round_trip),
        cmocka_unit_test(largest_completion_fits),
        cmocka_unit_test(characters_are_code_points),
        cmocka_unit_test(older_markers_still_parse),
        cmocka_unit_test(shared_claims_round_trip),
        cmocka_unit_test(link_next),
        cmocka_unit_test(keys),
        cmocka_unit_test(garbage_never_crashes),
        cmocka_unit_test(conversions_and_holding_round_trip),
        cmocka_unit_test(bad_conversions_and_holding),
    };
    return cmocka_run_group_tests_name("github_marker", tests, NULL, NULL);
}
