/*
 * github_marker.c -- the text of the GitHub store: claim and completion comments (a visible line
 * for people, a hidden marker for tasklock), the Link header, issue keys. Pure functions: no I/O,
 * no globals, so that the unit tests and the fuzzer can call them on any input.
 *
 * A claim comment:
 *     🔒 Locked by `worker-1` on `node-abc` since 2026-11-26T23:28:01Z (lock timeout 5m;
 *     last heartbeat 2026-11-26T23:29:16Z, #1).
 *
 *     <!-- tasklock {"v":1,"nonce":"<32 hex>","seq":1,"lock":{...the seed's metadata...}} -->
 * A completion comment ends in <!-- tasklock:released {...} --> instead. In the marker JSON the
 * characters < > & are written as \u003c \u003e \u0026, so that no text inside it (a task_info
 * string, say) can end the HTML comment or open another marker.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "github.h"
#include "tl.h"

#define CLAIM_PREFIX "<!-- tasklock"
#define RELEASE_TAG  ":released"
#define SUMMARY_MAX  4000

static void set_why(char *why, const char *fmt, ...) TL_PRINTF(2, 3);

static void set_why(char *why, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL)
        return;
    va_start(ap, fmt);
    tl__vformat(why, fmt, ap);
    va_end(ap);
}

/* memmem, which C11 and POSIX lack. */
static const char *find(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);

    if (n == 0 || len < n)
        return NULL;
    for (size_t i = 0; i + n <= len; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
            return hay + i;
    }
    return NULL;
}

static const char *took_name(enum tl_gh_took t)
{
    return t == TL_GH_TOOK_STALE ? "stale" : t == TL_GH_TOOK_FORCED ? "forced" : NULL;
}

static bool took_parse(json_t *v, enum tl_gh_took *out)
{
    *out = TL_GH_TOOK_FREE;
    if (v == NULL)
        return true;
    if (!json_is_string(v))
        return false;
    if (strcmp(json_string_value(v), "stale") == 0)
        *out = TL_GH_TOOK_STALE;
    else if (strcmp(json_string_value(v), "forced") == 0)
        *out = TL_GH_TOOK_FORCED;
    else
        return false;
    return true;
}

static const char *conv_name(enum tl_gh_conv c)
{
    return c == TL_GH_CONV_UPGRADED ? "upgraded" : c == TL_GH_CONV_DOWNGRADED ? "downgraded" : NULL;
}

static bool conv_parse(json_t *v, enum tl_gh_conv *out)
{
    *out = TL_GH_CONV_NONE;
    if (v == NULL)
        return true;
    if (!json_is_string(v))
        return false;
    if (strcmp(json_string_value(v), "upgraded") == 0)
        *out = TL_GH_CONV_UPGRADED;
    else if (strcmp(json_string_value(v), "downgraded") == 0)
        *out = TL_GH_CONV_DOWNGRADED;
    else
        return false;
    return true;
}

static bool conv_put(json_t *o, enum tl_gh_conv c)
{
    return conv_name(c) == NULL || json_object_set_new(o, "conv", json_string(conv_name(c))) == 0;
}

void tl__gh_claim_clear(struct tl_gh_claim *c)
{
    if (c == NULL)
        return;
    tl__record_clear(&c->rec);
    tl__free(c->holding);
    for (size_t i = 0; i < c->nfrom && i < TL_GH_FROM_DEPTH; i++) {
        tl__free(c->from[i].worker_id);
        tl__free(c->from[i].node_id);
    }
    memset(c, 0, sizeof(*c));
}

void tl__gh_release_clear(struct tl_gh_release *r)
{
    if (r == NULL)
        return;
    tl__free(r->worker_id);
    tl__free(r->node_id);
    tl__free(r->summary);
    tl__free(r->forced_worker_id);
    tl__free(r->forced_node_id);
    for (size_t i = 0; i < r->nfrom && i < TL_GH_FROM_DEPTH; i++) {
        tl__free(r->from[i].worker_id);
        tl__free(r->from[i].node_id);
    }
    memset(r, 0, sizeof(*r));
}

/* ---- decoding ---- */

/* A field of 32 lower-case hex digits (a nonce, a waiter id). */
static bool get_hex32(json_t *root, const char *field, char out[TL_GH_NONCE_LEN + 1])
{
    json_t *v = json_object_get(root, field);

    if (!json_is_string(v) || json_string_length(v) != TL_GH_NONCE_LEN)
        return false;
    const char *s = json_string_value(v);
    for (size_t i = 0; i < TL_GH_NONCE_LEN; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    memcpy(out, s, TL_GH_NONCE_LEN + 1);
    return true;
}

static bool get_nonce(json_t *root, char out[TL_GH_NONCE_LEN + 1])
{
    return get_hex32(root, "nonce", out);
}

static bool get_u64(json_t *root, const char *field, bool required, uint64_t *out)
{
    json_t *v = json_object_get(root, field);

    *out = 0;
    if (v == NULL)
        return !required;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool get_time(json_t *root, const char *field, bool required, int64_t *out)
{
    json_t *v = json_object_get(root, field);

    *out = 0;
    if (v == NULL)
        return !required;
    return json_is_string(v) && tl__parse_iso(json_string_value(v), out);
}

static bool get_id(json_t *root, const char *field, char **out)
{
    json_t *v = json_object_get(root, field);

    *out = NULL;
    if (!json_is_string(v) || tl__check_id(json_string_value(v), TL_ID_MAX) != NULL)
        return false;
    *out = tl__strdup(json_string_value(v));
    return *out != NULL;
}

/* Reads the optional "from" array into `from`; false if it is of the wrong shape. */
static bool get_from(json_t *root, struct tl_gh_from *from, size_t *n)
{
    json_t *arr = json_object_get(root, "from");
    size_t i;
    json_t *el;

    *n = 0;
    if (arr == NULL)
        return true;
    if (!json_is_array(arr) || json_array_size(arr) > TL_GH_FROM_DEPTH)
        return false;
    json_array_foreach(arr, i, el)
    {
        struct tl_gh_from *f = &from[*n];
        uint64_t token;

        if (!json_is_object(el))
            return false;
        (*n)++; /* counted first, so that the caller frees what was read */
        if (!get_id(el, "worker_id", &f->worker_id) || !get_id(el, "node_id", &f->node_id) ||
            !get_u64(el, "token", true, &token) || token > INT64_MAX ||
            !get_time(el, "claimed_at", false, &f->claimed_at_ms) ||
            !get_time(el, "heartbeat_last", false, &f->heartbeat_at_ms) ||
            !took_parse(json_object_get(el, "took"), &f->took) ||
            !conv_parse(json_object_get(el, "conv"), &f->conv))
            return false;
        f->token = token;
    }
    return true;
}

static bool version_ok(json_t *root)
{
    json_t *v = json_object_get(root, "v");

    return json_is_integer(v) && json_integer_value(v) == 1;
}

static enum tl_gh_kind decode_claim(const char *text, size_t len, struct tl_gh_claim *out,
                                    char *why)
{
    json_error_t jerr;
    enum tl_gh_kind kind = TL_GH_BAD;

    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        set_why(why, "claim marker is not a JSON object%s%s", root ? "" : ": ",
                root ? "" : jerr.text);
        goto done;
    }
    if (!version_ok(root)) {
        set_why(why, "claim marker has no \"v\":1");
        goto done;
    }
    if (!get_nonce(root, out->nonce)) {
        set_why(why, "claim marker has no valid nonce");
        goto done;
    }
    if (!get_u64(root, "seq", false, &out->seq) ||
        !took_parse(json_object_get(root, "took"), &out->took)) {
        set_why(why, "claim marker has a bad \"seq\" or \"took\"");
        goto done;
    }
    if (!get_from(root, out->from, &out->nfrom)) {
        set_why(why, "claim marker has a bad \"from\"");
        goto done;
    }
    if (!conv_parse(json_object_get(root, "conv"), &out->conv) ||
        (out->conv != TL_GH_CONV_NONE && out->nfrom == 0)) {
        set_why(why, "claim marker has a bad \"conv\" (upgraded or downgraded, with a \"from\")");
        goto done;
    }
    /* The wait-for graph's text: bounded; a garbled one only loses its edges. */
    json_t *holding = json_object_get(root, "holding");
    if (json_is_string(holding) && json_string_length(holding) <= TL_GH_HOLDING_MAX &&
        strlen(json_string_value(holding)) == json_string_length(holding) &&
        (out->holding = tl__strdup(json_string_value(holding))) == NULL) {
        set_why(why, "out of memory");
        goto done;
    }
    json_t *held = json_object_get(root, "held");
    if ((json_object_get(root, "waiter") != NULL && !get_hex32(root, "waiter", out->waiter)) ||
        (held != NULL && !json_is_boolean(held))) {
        set_why(why, "claim marker has a bad \"waiter\" or \"held\"");
        goto done;
    }
    out->held = json_is_true(held);
    json_t *sess = json_object_get(root, "session");
    if (sess != NULL) {
        json_t *sid = json_object_get(sess, "id");
        if (!json_is_object(sess) || !json_is_integer(sid) || json_integer_value(sid) <= 0 ||
            !get_hex32(sess, "nonce", out->session_nonce)) {
            set_why(why, "claim marker has a bad \"session\"");
            goto done;
        }
        out->session = (int64_t)json_integer_value(sid);
    }
    /* The lock's own timeout, when the claim names a session (see tl__gh_build_claim); a
     * session claim written before it was there carries its timeout in "lock" only. */
    uint64_t sess_timeout = 0;
    json_t *st_json = sess != NULL ? json_object_get(sess, "timeout_ms") : NULL;
    if (st_json != NULL && (!json_is_integer(st_json) || json_integer_value(st_json) <= 0 ||
                            json_integer_value(st_json) > (json_int_t)TL_DURATION_MAX_MS)) {
        set_why(why, "claim marker has a bad \"session\" timeout");
        goto done;
    }
    if (st_json != NULL)
        sess_timeout = (uint64_t)json_integer_value(st_json);
    /* The seed's metadata is decoded on its own, as the core wrote it: the GitHub fields and the
     * escaping of < > & do not count against the core's size limit of metadata. */
    char err2[TL_ERRMSG_SIZE] = "";
    json_t *lock = json_object_get(root, "lock");
    if (!json_is_object(lock)) {
        set_why(why, "claim marker has no \"lock\" object");
        goto done;
    }
    json_t *meta = json_pack("{s:O}", "lock", lock);
    char *meta_text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    json_decref(meta);
    if (meta_text == NULL) {
        set_why(why, "out of memory");
        goto done;
    }
    tl_status st = tl__meta_decode(meta_text, strlen(meta_text), NULL, &out->rec, err2);
    free(meta_text);
    if (st != TL_OK) {
        set_why(why, "claim marker: %s", err2);
        goto done;
    }
    if (out->rec.info.lock_timeout_ms == 0) {
        set_why(why, "claim marker has no lock timeout");
        goto done;
    }
    if (sess_timeout != 0)
        out->rec.info.lock_timeout_ms = (uint32_t)sess_timeout;
    kind = TL_GH_CLAIM;
done:
    json_decref(root);
    return kind;
}

static enum tl_gh_kind decode_release(const char *text, size_t len, struct tl_gh_release *out,
                                      char *why)
{
    json_error_t jerr;
    enum tl_gh_kind kind = TL_GH_BAD;
    uint64_t token;

    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root) || !version_ok(root) || !get_nonce(root, out->nonce) ||
        !get_u64(root, "token", true, &token) || token > INT64_MAX ||
        !get_id(root, "worker_id", &out->worker_id) || !get_id(root, "node_id", &out->node_id) ||
        !get_time(root, "claimed_at", true, &out->claimed_at_ms) ||
        !get_time(root, "released_at", true, &out->released_at_ms) ||
        !took_parse(json_object_get(root, "took"), &out->took) ||
        !get_from(root, out->from, &out->nfrom) ||
        !conv_parse(json_object_get(root, "conv"), &out->conv)) {
        set_why(why, "completion marker is garbled");
        goto done;
    }
    json_t *sum = json_object_get(root, "summary");
    if (sum != NULL && !json_is_string(sum)) {
        set_why(why, "completion marker has a bad summary");
        goto done;
    }
    if (sum != NULL && (out->summary = tl__strdup(json_string_value(sum))) == NULL) {
        set_why(why, "out of memory");
        goto done;
    }
    json_t *done = json_object_get(root, "done");
    if (done != NULL && !json_is_boolean(done)) {
        set_why(why, "completion marker has a bad \"done\"");
        goto done;
    }
    out->done = json_is_true(done);
    json_t *forced = json_object_get(root, "forced_by");
    if (forced != NULL &&
        (!json_is_object(forced) || !get_id(forced, "worker_id", &out->forced_worker_id) ||
         !get_id(forced, "node_id", &out->forced_node_id))) {
        set_why(why, "completion marker has a bad \"forced_by\"");
        goto done;
    }
    if (out->forced_worker_id != NULL)
        out->done = false; /* a forced release never finishes the task */
    out->token = token;
    kind = TL_GH_RELEASE;
done:
    json_decref(root);
    return kind;
}

enum tl_gh_kind tl__gh_parse_comment(const char *body, size_t len, struct tl_gh_claim *claim,
                                     struct tl_gh_release *rel, char *why)
{
    const char *first = NULL;
    size_t count = 0;
    struct tl_gh_claim c_local;
    struct tl_gh_release r_local;

    if (claim != NULL)
        memset(claim, 0, sizeof(*claim));
    if (rel != NULL)
        memset(rel, 0, sizeof(*rel));
    if (body == NULL)
        return TL_GH_NONE;

    /* Every "<!-- tasklock" followed by white space or ":released" is a marker. */
    const char *p = body;
    size_t left = len;
    const char *m;
    while ((m = find(p, left, CLAIM_PREFIX)) != NULL) {
        size_t off = (size_t)(m - body) + strlen(CLAIM_PREFIX);
        bool ws = off < len &&
                  (body[off] == ' ' || body[off] == '\n' || body[off] == '\t' || body[off] == '\r');
        bool is_rel = len - off >= strlen(RELEASE_TAG) &&
                      memcmp(body + off, RELEASE_TAG, strlen(RELEASE_TAG)) == 0;
        bool is_marker = ws || is_rel;

        if (is_marker) {
            if (first == NULL)
                first = m;
            count++;
        }
        p = body + off;
        left = len - off;
    }
    if (count == 0)
        return TL_GH_NONE;
    if (count > 1) {
        set_why(why, "%zu tasklock markers in one comment", count);
        return TL_GH_BAD;
    }

    size_t off = (size_t)(first - body) + strlen(CLAIM_PREFIX);
    bool release = len - off >= strlen(RELEASE_TAG) &&
                   memcmp(body + off, RELEASE_TAG, strlen(RELEASE_TAG)) == 0;
    if (release)
        off += strlen(RELEASE_TAG);
    const char *start = body + off;
    const char *end = find(start, len - off, "-->");
    if (end == NULL) {
        set_why(why, "tasklock marker is not closed by -->");
        return TL_GH_BAD;
    }
    while (start < end && (*start == ' ' || *start == '\n' || *start == '\t' || *start == '\r'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    size_t jlen = (size_t)(end - start);
    if (jlen == 0) {
        set_why(why, "empty tasklock marker");
        return TL_GH_BAD;
    }
    if (jlen > (size_t)TL_GH_MARKER_MAX) {
        set_why(why, "tasklock marker of %zu bytes, over the limit of %zu", jlen, TL_GH_MARKER_MAX);
        return TL_GH_BAD;
    }

    enum tl_gh_kind kind;
    if (release) {
        struct tl_gh_release *r = rel ? rel : &r_local;
        memset(r, 0, sizeof(*r));
        kind = decode_release(start, jlen, r, why);
        if (kind != TL_GH_RELEASE || rel == NULL)
            tl__gh_release_clear(r);
    } else {
        struct tl_gh_claim *c = claim ? claim : &c_local;
        memset(c, 0, sizeof(*c));
        kind = decode_claim(start, jlen, c, why);
        if (kind != TL_GH_CLAIM || claim == NULL)
            tl__gh_claim_clear(c);
    }
    return kind;
}

enum tl_gh_kind tl__gh_parse_claim(const char *body, size_t len, struct tl_gh_claim *out, char *why)
{
    enum tl_gh_kind k = tl__gh_parse_comment(body, len, out, NULL, why);

    return k == TL_GH_RELEASE ? TL_GH_NONE : k;
}

/* ---- encoding ---- */

/* "2026-11-26T23:28:01Z" (GitHub's own precision). */
static void fmt_time(int64_t ms, char buf[TL_ISO_SIZE])
{
    tl__format_iso(ms, buf);
    char *dot = strchr(buf, '.');
    if (dot != NULL) {
        dot[0] = 'Z';
        dot[1] = '\0';
    }
}

static void fmt_duration(int64_t ms, char *buf, size_t size)
{
    if (ms < 0)
        ms = 0;
    if (ms % 1000 != 0 && ms < 60000) {
        (void)snprintf(buf, size, "%lld.%03llds", (long long)(ms / 1000), (long long)(ms % 1000));
        return;
    }
    long long s = (long long)(ms / 1000), h = s / 3600, m = s / 60 % 60;
    s %= 60;
    if (h > 0)
        (void)snprintf(buf, size, "%lldh%02lldm%02llds", h, m, s);
    else if (m > 0)
        (void)snprintf(buf, size, "%lldm%02llds", m, s);
    else
        (void)snprintf(buf, size, "%llds", s);
}

/* A copy of an id fit for a Markdown code span: no backticks or angle brackets. */
static void visible_id(const char *id, char *buf, size_t size)
{
    size_t i = 0;

    for (; id != NULL && id[i] != '\0' && i + 1 < size; i++) {
        buf[i] = id[i];
        if (id[i] == '`' || id[i] == '<' || id[i] == '>')
            buf[i] = '_';
    }
    buf[i] = '\0';
}

/* Dumps `root` compactly with < > & escaped (they only occur inside JSON strings). */
static char *dump_escaped(json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT);

    if (text == NULL)
        return NULL;
    size_t extra = 0;
    for (const char *p = text; *p; p++)
        extra += (*p == '<' || *p == '>' || *p == '&') ? 5 : 0;
    char *out = tl__malloc(strlen(text) + extra + 1);
    if (out != NULL) {
        char *q = out;
        for (const char *p = text; *p; p++) {
            if (*p == '<' || *p == '>' || *p == '&') {
                (void)snprintf(q, 7, "\\u%04x", (unsigned)(unsigned char)*p); /* fits 4 digits */
                q += 6;
            } else {
                *q++ = *p;
            }
        }
        *q = '\0';
    }
    free(text);
    return out;
}

static json_t *from_json(const struct tl_gh_from *from, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr != NULL && i < n && i < TL_GH_FROM_DEPTH; i++) {
        char claimed[TL_ISO_SIZE], beat[TL_ISO_SIZE];
        const struct tl_gh_from *f = &from[i];

        tl__format_iso(f->claimed_at_ms, claimed);
        tl__format_iso(f->heartbeat_at_ms, beat);
        json_t *o =
            json_pack("{s:s, s:s, s:I, s:s, s:s}", "worker_id", f->worker_id ? f->worker_id : "?",
                      "node_id", f->node_id ? f->node_id : "?", "token", (json_int_t)f->token,
                      "claimed_at", claimed, "heartbeat_last", beat);
        if (o != NULL && ((took_name(f->took) != NULL &&
                           json_object_set_new(o, "took", json_string(took_name(f->took))) != 0) ||
                          !conv_put(o, f->conv))) {
            json_decref(o);
            o = NULL;
        }
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

char *tl__gh_build_claim(const struct tl_gh_claim *c, int64_t server_now_ms)
{
    char *meta = NULL, *marker = NULL, *out = NULL;
    json_t *root = NULL;
    char w[TL_ID_MAX + 1], n[TL_ID_MAX + 1], since[TL_ISO_SIZE], beat[TL_ISO_SIZE], dur[64];
    char note[512] = "";

    struct tl_info info = c->rec.info;
    info.token = 0; /* the comment id is the token; it is not known before posting */
    /* A claim that names a session: readers that predate sessions judge it by its own
     * updated_at, never edited after posting, and would take it for stale after its timeout and
     * steal it. For them its lock timeout is the longest there is (the key held, never free); the
     * lock's own timeout goes in the session reference, where readers that know sessions find
     * it (the claim is judged by its session anyway). */
    if (c->session > 0)
        info.lock_timeout_ms = TL_DURATION_MAX_MS;
    if ((meta = tl__meta_encode(&info)) == NULL)
        goto done;
    if ((root = json_loads(meta, 0, NULL)) == NULL)
        goto done;
    /* json_object_del drops the token placeholder the seed's encoder always writes. */
    json_t *lock = json_object_get(root, "lock");
    if (lock != NULL)
        (void)json_object_del(lock, "token");
    if (json_object_set_new(root, "v", json_integer(1)) != 0 ||
        json_object_set_new(root, "nonce", json_string(c->nonce)) != 0 ||
        json_object_set_new(root, "seq", json_integer((json_int_t)c->seq)) != 0)
        goto done;
    if (took_name(c->took) != NULL &&
        json_object_set_new(root, "took", json_string(took_name(c->took))) != 0)
        goto done;
    if (c->waiter[0] != '\0' && json_object_set_new(root, "waiter", json_string(c->waiter)) != 0)
        goto done;
    if (c->held && json_object_set_new(root, "held", json_true()) != 0)
        goto done;
    if (!conv_put(root, c->conv))
        goto done;
    if (c->holding != NULL && c->holding[0] != '\0' &&
        json_object_set_new(root, "holding", json_string(c->holding)) != 0)
        goto done;
    if (c->session > 0 &&
        json_object_set_new(root, "session",
                            json_pack("{s:I, s:s, s:I}", "id", (json_int_t)c->session, "nonce",
                                      c->session_nonce, "timeout_ms",
                                      (json_int_t)c->rec.info.lock_timeout_ms)) != 0)
        goto done;
    if (c->nfrom > 0) {
        json_t *arr = from_json(c->from, c->nfrom);
        if (arr == NULL || json_object_set_new(root, "from", arr) != 0)
            goto done;
    }
    if ((marker = dump_escaped(root)) == NULL)
        goto done;

    visible_id(c->rec.info.worker_id, w, sizeof(w));
    visible_id(c->rec.info.node_id, n, sizeof(n));
    fmt_time(c->rec.info.claimed_at_ms, since);
    fmt_time(server_now_ms, beat);
    fmt_duration(c->rec.info.lock_timeout_ms, dur, sizeof(dur));
    if (c->conv != TL_GH_CONV_NONE && c->nfrom > 0) {
        (void)snprintf(note, sizeof(note), "\n\n%s (token %llu).",
                       c->conv == TL_GH_CONV_UPGRADED
                           ? (tl__gh_claim_held(c) ? "⬆️ Upgraded from its shared lock"
                                                   : "⬆️ Upgrading its shared lock")
                           : "⬇️ Downgraded from its exclusive lock",
                       (unsigned long long)c->from[0].token);
    } else if (c->took != TL_GH_TOOK_FREE && c->nfrom > 0) {
        char fw[TL_ID_MAX + 1], fn[TL_ID_MAX + 1], fb[TL_ISO_SIZE];
        visible_id(c->from[0].worker_id, fw, sizeof(fw));
        visible_id(c->from[0].node_id, fn, sizeof(fn));
        fmt_time(c->from[0].heartbeat_at_ms, fb);
        if (c->took == TL_GH_TOOK_STALE)
            (void)snprintf(note, sizeof(note),
                           "\n\n♻️ Recovered the stale lock of `%s` on `%s` (token %llu, last "
                           "heartbeat %s).",
                           fw, fn, (unsigned long long)c->from[0].token, fb);
        else
            (void)snprintf(note, sizeof(note),
                           "\n\n⚠️ Forced out the lock of `%s` on `%s` (token %llu).", fw, fn,
                           (unsigned long long)c->from[0].token);
    }
    /* A queued claim says so; it may come to hold without an edit (the line's hand-over), and
     * its holder's first heartbeat then writes the lock line. */
    out = tl__asprintf("%s `%s` on `%s` since %s (lock timeout %s; last heartbeat %s, "
                       "#%llu).%s\n\n<!-- tasklock %s -->",
                       tl__gh_claim_held(c) ? "🔒 Locked by" : "⏳ In line for the lock:", w, n,
                       since, dur, beat, (unsigned long long)c->seq, note, marker);
done:
    json_decref(root);
    tl__free(meta);
    tl__free(marker);
    return out;
}

/* Copies at most SUMMARY_MAX bytes of `s` as valid UTF-8 (bad bytes become '?'). */
static char *clean_summary(const char *s)
{
    size_t n = strlen(s);
    char *out = tl__malloc((n < SUMMARY_MAX ? n : SUMMARY_MAX) + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n && o < SUMMARY_MAX;) {
        unsigned char ch = (unsigned char)s[i];
        size_t len = ch < 0x80                  ? 1
                     : ch >= 0xc2 && ch <= 0xdf ? 2
                     : ch >= 0xe0 && ch <= 0xef ? 3
                     : ch >= 0xf0 && ch <= 0xf4 ? 4
                                                : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
        if (ok && len == 1 && ch < 0x20 && ch != '\n' && ch != '\t')
            ok = false;
        if (!ok) {
            out[o++] = '?';
            i++;
            continue;
        }
        if (o + len > SUMMARY_MAX)
            break;
        memcpy(out + o, s + i, len);
        o += len;
        i += len;
    }
    out[o] = '\0';
    /* json_string() checks UTF-8 strictly (no surrogates, no overlongs): fall back to ASCII. */
    json_t *probe = json_string(out);
    if (probe == NULL) {
        for (size_t i = 0; i < o; i++) {
            if ((unsigned char)out[i] >= 0x80)
                out[i] = '?';
        }
    }
    json_decref(probe);
    return out;
}

/* The summary as a Markdown block quote, with < and > made harmless. */
static char *quote_summary(const char *s)
{
    size_t n = 0;

    for (const char *p = s; *p; p++)
        n += *p == '\n' ? 3 : (*p == '<' || *p == '>') ? 4 : 1;
    char *out = tl__malloc(n + 3);
    if (out == NULL)
        return NULL;
    char *q = out;
    *q++ = '>';
    *q++ = ' ';
    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            memcpy(q, "\n> ", 3);
            q += 3;
        } else if (*p == '<' || *p == '>') {
            memcpy(q, *p == '<' ? "&lt;" : "&gt;", 4);
            q += 4;
        } else {
            *q++ = *p;
        }
    }
    *q = '\0';
    return out;
}

char *tl__gh_build_release(const struct tl_gh_release *r)
{
    char claimed[TL_ISO_SIZE], released[TL_ISO_SIZE], dur[64];
    char w[TL_ID_MAX + 1], n[TL_ID_MAX + 1];
    char *summary = NULL, *quoted = NULL, *marker = NULL, *out = NULL;

    tl__format_iso(r->claimed_at_ms, claimed);
    tl__format_iso(r->released_at_ms, released);
    json_t *root =
        json_pack("{s:i, s:s, s:I, s:s, s:s, s:s, s:s}", "v", 1, "nonce", r->nonce, "token",
                  (json_int_t)r->token, "worker_id", r->worker_id ? r->worker_id : "?", "node_id",
                  r->node_id ? r->node_id : "?", "claimed_at", claimed, "released_at", released);
    if (root == NULL)
        goto done;
    if (r->summary != NULL && r->summary[0] != '\0') {
        if ((summary = clean_summary(r->summary)) == NULL ||
            (quoted = quote_summary(summary)) == NULL ||
            json_object_set_new(root, "summary", json_string(summary)) != 0)
            goto done;
    }
    if (took_name(r->took) != NULL &&
        json_object_set_new(root, "took", json_string(took_name(r->took))) != 0)
        goto done;
    if (r->nfrom > 0) {
        json_t *arr = from_json(r->from, r->nfrom);
        if (arr == NULL || json_object_set_new(root, "from", arr) != 0)
            goto done;
    }
    if (!conv_put(root, r->conv))
        goto done;
    if (r->forced_worker_id != NULL &&
        json_object_set_new(root, "forced_by",
                            json_pack("{s:s, s:s}", "worker_id", r->forced_worker_id, "node_id",
                                      r->forced_node_id ? r->forced_node_id : "?")) != 0)
        goto done;
    if (r->done && r->forced_worker_id == NULL &&
        json_object_set_new(root, "done", json_true()) != 0)
        goto done;
    if ((marker = dump_escaped(root)) == NULL)
        goto done;

    visible_id(r->worker_id, w, sizeof(w));
    visible_id(r->node_id, n, sizeof(n));
    fmt_time(r->claimed_at_ms, claimed);
    fmt_time(r->released_at_ms, released);
    fmt_duration(r->released_at_ms - r->claimed_at_ms, dur, sizeof(dur));
    if (r->forced_worker_id != NULL) {
        char fw[TL_ID_MAX + 1], fn[TL_ID_MAX + 1];

        visible_id(r->forced_worker_id, fw, sizeof(fw));
        visible_id(r->forced_node_id ? r->forced_node_id : "?", fn, sizeof(fn));
        out = tl__asprintf("⚠️ Lock broken by `%s` on `%s` at %s: it was held by `%s` on `%s` "
                           "for %s (since %s, token %llu).%s%s\n\n<!-- tasklock:released %s -->",
                           fw, fn, released, w, n, dur, claimed, (unsigned long long)r->token,
                           quoted ? "\n\n" : "", quoted ? quoted : "", marker);
    } else {
        out = tl__asprintf("✅ %s by `%s` on `%s` at %s, after %s (held since %s, token "
                           "%llu).%s%s\n\n<!-- tasklock:released %s -->",
                           r->done ? "Done: finished and closed" : "Released", w, n, released, dur,
                           claimed, (unsigned long long)r->token, quoted ? "\n\n" : "",
                           quoted ? quoted : "", marker);
    }
done:
    json_decref(root);
    tl__free(summary);
    tl__free(quoted);
    tl__free(marker);
    return out;
}

size_t tl__gh_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* ---- Link, keys ---- */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static bool ieq(const char *a, size_t n, const char *b)
{
    if (strlen(b) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char x = a[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x + ('a' - 'A'));
        if (x != b[i])
            return false;
    }
    return true;
}

/* Whether the space-separated relation list [v, v+n) contains "next". */
static bool rel_has_next(const char *v, size_t n)
{
    size_t i = 0;

    while (i < n) {
        while (i < n && is_ws(v[i]))
            i++;
        size_t s = i;
        while (i < n && !is_ws(v[i]))
            i++;
        if (i > s && ieq(v + s, i - s, "next"))
            return true;
    }
    return false;
}

char *tl__gh_link_next(const char *link)
{
    const char *p = link;

    if (link == NULL)
        return NULL;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            return NULL;
        if (*p != '<')
            return NULL;
        const char *u = ++p;
        while (*p != '\0' && *p != '>')
            p++;
        if (*p != '>')
            return NULL;
        size_t ulen = (size_t)(p - u);
        p++;
        bool next = false;
        /* parameters: ; name=value or ; name="value" */
        for (;;) {
            while (is_ws(*p))
                p++;
            if (*p != ';')
                break;
            p++;
            while (is_ws(*p))
                p++;
            const char *name = p;
            while (*p != '\0' && *p != '=' && *p != ';' && *p != ',' && !is_ws(*p))
                p++;
            size_t nlen = (size_t)(p - name);
            while (is_ws(*p))
                p++;
            const char *val = p;
            size_t vlen = 0;
            if (*p == '=') {
                p++;
                while (is_ws(*p))
                    p++;
                if (*p == '"') {
                    val = ++p;
                    while (*p != '\0' && *p != '"')
                        p++;
                    if (*p != '"')
                        return NULL;
                    vlen = (size_t)(p - val);
                    p++;
                } else {
                    val = p;
                    while (*p != '\0' && *p != ';' && *p != ',' && !is_ws(*p))
                        p++;
                    vlen = (size_t)(p - val);
                }
            }
            if (ieq(name, nlen, "rel") && rel_has_next(val, vlen))
                next = true;
        }
        while (is_ws(*p))
            p++;
        if (*p != ',' && *p != '\0')
            return NULL;
        if (next && ulen > 0)
            return tl__strndup(u, ulen);
    }
}

bool tl__gh_parse_key(const char *key, int64_t *number)
{
    int64_t v = 0;

    if (key == NULL)
        return false;
    if (*key == '#')
        key++;
    if (*key < '1' || *key > '9')
        return false;
    for (; *key; key++) {
        if (*key < '0' || *key > '9')
            return false;
        v = v * 10 + (*key - '0');
        if (v > (INT64_C(1) << 53))
            return false;
    }
    *number = v;
    return true;
}

/* ---- the reopen marker (claim-next, store ops version 4) ----
 *
 *     🔓 Reopened by `worker-1` on `node-abc` at 2026-12-04T14:00:00Z.
 *
 *     <!-- tasklock:reopened {"v":1,"worker_id":"...","node_id":"...","at":"..."} -->
 *
 * tl__gh_parse_comment does not know it (an ordinary comment to it, and to every reader that
 * predates it): only its own parser below tells it.
 */
#define REOPEN_PREFIX "<!-- tasklock:reopened"

void tl__gh_reopen_clear(struct tl_gh_reopen *r)
{
    if (r == NULL)
        return;
    tl__free(r->worker_id);
    tl__free(r->node_id);
    memset(r, 0, sizeof(*r));
}

/*
 * The JSON of the one marker `prefix` ... `-->` in `body` (reopen and session comments):
 * TL_GH_NONE without one, TL_GH_BAD for two, an unterminated or oversized one; else `found`,
 * with *root the parsed JSON (NULL if it is not JSON; the caller judges its shape and releases
 * it).
 */
static enum tl_gh_kind marker_json(const char *body, size_t len, const char *prefix,
                                   enum tl_gh_kind found, json_t **root)
{
    json_error_t jerr;

    *root = NULL;
    if (body == NULL)
        return TL_GH_NONE;
    const char *m = find(body, len, prefix);
    if (m == NULL)
        return TL_GH_NONE;
    size_t off = (size_t)(m - body) + strlen(prefix);
    if (find(body + off, len - off, prefix) != NULL)
        return TL_GH_BAD;
    const char *end = find(body + off, len - off, "-->");
    if (end == NULL || (size_t)(end - (body + off)) > 4096)
        return TL_GH_BAD;
    *root = json_loadb(body + off, (size_t)(end - (body + off)), JSON_REJECT_DUPLICATES, &jerr);
    return found;
}

enum tl_gh_kind tl__gh_parse_reopen(const char *body, size_t len, struct tl_gh_reopen *out)
{
    json_t *root = NULL;

    memset(out, 0, sizeof(*out));
    enum tl_gh_kind kind = marker_json(body, len, REOPEN_PREFIX, TL_GH_REOPEN, &root);
    if (kind != TL_GH_REOPEN)
        return kind;
    kind = TL_GH_BAD;
    if (json_is_object(root) && version_ok(root) && get_id(root, "worker_id", &out->worker_id) &&
        get_id(root, "node_id", &out->node_id) && get_time(root, "at", true, &out->at_ms))
        kind = TL_GH_REOPEN;
    json_decref(root);
    if (kind != TL_GH_REOPEN)
        tl__gh_reopen_clear(out);
    return kind;
}

char *tl__gh_build_reopen(const struct tl_gh_reopen *r)
{
    char at[TL_ISO_SIZE], w[TL_ID_MAX + 1], n[TL_ID_MAX + 1];
    char *marker = NULL, *out = NULL;

    tl__format_iso(r->at_ms, at);
    json_t *root =
        json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "worker_id", r->worker_id ? r->worker_id : "?",
                  "node_id", r->node_id ? r->node_id : "?", "at", at);
    if (root != NULL && (marker = dump_escaped(root)) != NULL) {
        visible_id(r->worker_id ? r->worker_id : "?", w, sizeof(w));
        visible_id(r->node_id ? r->node_id : "?", n, sizeof(n));
        fmt_time(r->at_ms, at);
        out = tl__asprintf(
            "🔓 Reopened by `%s` on `%s` at %s: the task is offered again.\n\n" REOPEN_PREFIX
            " %s -->",
            w, n, at, marker);
    }
    json_decref(root);
    tl__free(marker);
    return out;
}

/* ---- sessions ---- */

#define SESSION_PREFIX "<!-- tasklock:session"

void tl__gh_session_clear(struct tl_gh_session *s)
{
    if (s == NULL)
        return;
    tl__free(s->worker_id);
    tl__free(s->node_id);
    memset(s, 0, sizeof(*s));
}

enum tl_gh_kind tl__gh_parse_session(const char *body, size_t len, struct tl_gh_session *out)
{
    json_t *root = NULL;
    uint64_t timeout = 0;

    memset(out, 0, sizeof(*out));
    enum tl_gh_kind kind = marker_json(body, len, SESSION_PREFIX, TL_GH_SESSION, &root);
    if (kind != TL_GH_SESSION)
        return kind;
    kind = TL_GH_BAD;
    if (json_is_object(root) && version_ok(root) && get_nonce(root, out->nonce) &&
        get_u64(root, "lock_timeout_ms", true, &timeout) && timeout > 0 && timeout <= UINT32_MAX &&
        get_u64(root, "seq", false, &out->seq) && get_id(root, "worker_id", &out->worker_id) &&
        get_id(root, "node_id", &out->node_id)) {
        out->lock_timeout_ms = (uint32_t)timeout;
        kind = TL_GH_SESSION;
    }
    json_decref(root);
    if (kind != TL_GH_SESSION)
        tl__gh_session_clear(out);
    return kind;
}

char *tl__gh_build_session(const struct tl_gh_session *s, int64_t server_now_ms)
{
    char beat[TL_ISO_SIZE], dur[64], w[TL_ID_MAX + 1], n[TL_ID_MAX + 1];
    char *marker = NULL, *out = NULL;

    json_t *root =
        json_pack("{s:i, s:s, s:I, s:I, s:s, s:s}", "v", 1, "nonce", s->nonce, "lock_timeout_ms",
                  (json_int_t)s->lock_timeout_ms, "seq", (json_int_t)s->seq, "worker_id",
                  s->worker_id ? s->worker_id : "?", "node_id", s->node_id ? s->node_id : "?");
    if (root != NULL && (marker = dump_escaped(root)) != NULL) {
        visible_id(s->worker_id ? s->worker_id : "?", w, sizeof(w));
        visible_id(s->node_id ? s->node_id : "?", n, sizeof(n));
        fmt_time(server_now_ms, beat);
        fmt_duration(s->lock_timeout_ms, dur, sizeof(dur));
        out = tl__asprintf(
            "🫀 tasklock session of `%s` on `%s`: the locks that name it are held "
            "while it is fresh (lock timeout %s; last heartbeat %s, #%llu).\n\n" SESSION_PREFIX
            " %s -->",
            w, n, dur, beat, (unsigned long long)s->seq, marker);
    }
    json_decref(root);
    tl__free(marker);
    return out;
}
