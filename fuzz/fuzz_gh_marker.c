/*
 * fuzz_gh_marker.c -- the GitHub store's comment parser on arbitrary bytes (exactly `size` of
 * them: no terminator). A claim or completion that parses is built into a comment again and
 * parsed back: the claim must come back field for field, and a second round must change nothing
 * (a summary is cleaned once). The same bytes, as text, also go to the Link header and issue
 * key parsers.
 */
#include "fuzz.h"
#include "stores/github.h"
#include "tasklock.h"
#include "tl.h"

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_from(const struct tl_gh_from *a, size_t na, const struct tl_gh_from *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        if (!same_str(a[i].worker_id, b[i].worker_id) || !same_str(a[i].node_id, b[i].node_id) ||
            a[i].token != b[i].token || a[i].claimed_at_ms != b[i].claimed_at_ms ||
            a[i].heartbeat_at_ms != b[i].heartbeat_at_ms || a[i].took != b[i].took)
            return false;
    }
    return true;
}

/* The token is not part of a claim marker (the comment id is the token): a "token" someone wrote
 * into the marker is read, but never written back. */
static bool same_claim(const struct tl_gh_claim *a, const struct tl_gh_claim *b)
{
    const struct tl_info *x = &a->rec.info, *y = &b->rec.info;

    return same_str(x->worker_id, y->worker_id) && same_str(x->node_id, y->node_id) &&
           same_str(x->task_info, y->task_info) && x->claimed_at_ms == y->claimed_at_ms &&
           x->heartbeat_at_ms == y->heartbeat_at_ms && x->lock_timeout_ms == y->lock_timeout_ms &&
           x->mode == y->mode && x->slots == y->slots && strcmp(a->nonce, b->nonce) == 0 &&
           a->seq == b->seq && a->took == b->took &&
           same_from(a->from, a->nfrom, b->from, b->nfrom) && a->session == b->session &&
           strcmp(a->session_nonce, b->session_nonce) == 0;
}

static bool same_release(const struct tl_gh_release *a, const struct tl_gh_release *b)
{
    return strcmp(a->nonce, b->nonce) == 0 && a->token == b->token &&
           same_str(a->worker_id, b->worker_id) && same_str(a->node_id, b->node_id) &&
           a->claimed_at_ms == b->claimed_at_ms && a->released_at_ms == b->released_at_ms &&
           a->took == b->took && same_from(a->from, a->nfrom, b->from, b->nfrom);
}

/* Parses `body` expecting `want`; aborts with the body shown otherwise. */
static void parse_expect(const char *body, enum tl_gh_kind want, struct tl_gh_claim *c,
                         struct tl_gh_release *r)
{
    char why[TL_ERRMSG_SIZE] = "";
    enum tl_gh_kind k = tl__gh_parse_comment(body, strlen(body), c, r, why);

    if (k != want) {
        (void)fprintf(stderr, "built comment parsed as %d (%s):\n%s\n", (int)k, why, body);
        fuzz_check(false, "a built comment parses back as what it was built from");
    }
}

static void claim_round_trip(const struct tl_gh_claim *c1)
{
    struct tl_gh_claim c2, c3;

    char *body1 = tl__gh_build_claim(c1, c1->rec.info.heartbeat_at_ms);
    fuzz_check(body1 != NULL, "a parsed claim builds");
    parse_expect(body1, TL_GH_CLAIM, &c2, NULL);
    fuzz_check(same_claim(c1, &c2), "parse -> build -> parse gives the same claim");

    char *body2 = tl__gh_build_claim(&c2, c2.rec.info.heartbeat_at_ms);
    fuzz_check(body2 != NULL && strcmp(body1, body2) == 0, "building a claim is stable");
    parse_expect(body2, TL_GH_CLAIM, &c3, NULL);
    fuzz_check(same_claim(&c2, &c3), "a second round trip changes nothing");

    tl__gh_claim_clear(&c3);
    tl__gh_claim_clear(&c2);
    tl__free(body2);
    tl__free(body1);
}

static void release_round_trip(const struct tl_gh_release *r1)
{
    struct tl_gh_release r2, r3;

    char *body1 = tl__gh_build_release(r1);
    fuzz_check(body1 != NULL, "a parsed completion builds");
    parse_expect(body1, TL_GH_RELEASE, NULL, &r2);
    fuzz_check(same_release(r1, &r2), "parse -> build -> parse gives the same completion");

    char *body2 = tl__gh_build_release(&r2);
    fuzz_check(body2 != NULL && strcmp(body1, body2) == 0, "building a completion is stable");
    parse_expect(body2, TL_GH_RELEASE, NULL, &r3);
    fuzz_check(same_release(&r2, &r3) && same_str(r2.summary, r3.summary),
               "a second round trip changes nothing");

    tl__gh_release_clear(&r3);
    tl__gh_release_clear(&r2);
    tl__free(body2);
    tl__free(body1);
}

static void fuzz_comment(const uint8_t *data, size_t size)
{
    struct tl_gh_claim c;
    struct tl_gh_release r;
    char why[TL_ERRMSG_SIZE] = "";

    enum tl_gh_kind k = tl__gh_parse_comment((const char *)data, size, &c, &r, why);
    fuzz_check(k == TL_GH_NONE || k == TL_GH_CLAIM || k == TL_GH_RELEASE || k == TL_GH_BAD,
               "the kind is one of the four");
    if (k == TL_GH_BAD)
        fuzz_check(why[0] != '\0', "a bad marker says why");
    if (k == TL_GH_CLAIM) {
        fuzz_check(tl__check_id(c.rec.info.worker_id, TL_ID_MAX) == NULL, "claim worker_id");
        fuzz_check(strlen(c.nonce) == TL_GH_NONCE_LEN, "claim nonce");
        fuzz_check(c.nfrom <= TL_GH_FROM_DEPTH, "claim from[] within its depth");
        claim_round_trip(&c);
    }
    if (k == TL_GH_RELEASE) {
        fuzz_check(tl__check_id(r.worker_id, TL_ID_MAX) == NULL, "completion worker_id");
        fuzz_check(r.nfrom <= TL_GH_FROM_DEPTH, "completion from[] within its depth");
        release_round_trip(&r);
    }

    /* The claim parser alone agrees, and needs no out-parameter. */
    struct tl_gh_claim c2;
    enum tl_gh_kind k2 = tl__gh_parse_claim((const char *)data, size, &c2, NULL);
    fuzz_check(k2 == (k == TL_GH_RELEASE ? TL_GH_NONE : k), "parse_claim agrees");
    fuzz_check(k2 != TL_GH_CLAIM || same_claim(&c, &c2), "parse_claim gives the same claim");
    enum tl_gh_kind k3 = tl__gh_parse_comment((const char *)data, size, NULL, NULL, NULL);
    fuzz_check(k3 == k, "parsing without out-parameters agrees");

    /* The session parser: never a crash; what it reads builds and parses back the same. */
    struct tl_gh_session ss, ss2;
    enum tl_gh_kind ks = tl__gh_parse_session((const char *)data, size, &ss);
    fuzz_check(ks == TL_GH_NONE || ks == TL_GH_SESSION || ks == TL_GH_BAD, "a session kind");
    if (ks == TL_GH_SESSION) {
        fuzz_check(strlen(ss.nonce) == TL_GH_NONCE_LEN && ss.lock_timeout_ms > 0, "session");
        char *sb = tl__gh_build_session(&ss, 0);
        fuzz_check(sb != NULL, "a session builds");
        fuzz_check(tl__gh_parse_session(sb, strlen(sb), &ss2) == TL_GH_SESSION &&
                       strcmp(ss2.nonce, ss.nonce) == 0 && ss2.seq == ss.seq &&
                       ss2.lock_timeout_ms == ss.lock_timeout_ms,
                   "a session round-trips");
        tl__gh_session_clear(&ss2);
        tl__free(sb);
    }
    tl__gh_session_clear(&ss);

    tl__gh_claim_clear(&c2);
    tl__gh_claim_clear(&c);
    tl__gh_release_clear(&r);
}

static void fuzz_link_and_key(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);

    char *next = tl__gh_link_next(s);
    if (next != NULL) {
        fuzz_check(next[0] != '\0' && strchr(next, '>') == NULL, "a link target is <...>");
        fuzz_check(strstr(s, next) != NULL, "a link target is part of the header");
        tl__free(next);
    }

    int64_t number = -1;
    if (tl__gh_parse_key(s, &number)) {
        char back[32];

        fuzz_check(number >= 1 && number <= (INT64_C(1) << 53), "an issue number is in range");
        (void)snprintf(back, sizeof(back), "%s%lld", s[0] == '#' ? "#" : "", (long long)number);
        fuzz_check(strcmp(back, s) == 0, "an issue key is its number written out");
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_comment(data, size);
    fuzz_link_and_key(data, size);
    return 0;
}
