/*
 * github.h -- internals of the GitHub Issues store that tests and fuzzers call directly.
 *
 * The parsers take text written by anyone who can comment on an issue: they accept any bytes of
 * any length, never read past `len`, never crash, and say "bad" rather than guess. Whether a
 * comment's author is trusted is decided by the caller, before a claim counts.
 */
#ifndef TL_STORES_GITHUB_H
#define TL_STORES_GITHUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl.h"

#define TL_GH_NONCE_LEN 32 /* lowercase hex characters */
/*
 * GitHub's limit on a comment body: 65536 characters, counted here as Unicode code points (what
 * its 422 message says). A body within it is also within the 262144 UTF-8 bytes that GitHub has
 * been observed to enforce instead (4 bytes a code point at most).
 */
#define TL_GH_BODY_MAX 65536
/*
 * Bytes of marker JSON we parse at most. More than any comment GitHub stores (4 * TL_GH_BODY_MAX
 * bytes), and more than the largest marker tl__gh_build_claim can write (about 400 KiB: metadata
 * of the core's largest size with every byte escaped to six, plus a full "from" chain), so that
 * every marker we build parses back. The claim path refuses bodies over TL_GH_BODY_MAX before
 * posting them.
 */
#define TL_GH_MARKER_MAX  ((size_t)512 * 1024)
#define TL_GH_FROM_DEPTH  4    /* displaced holders remembered in a claim, at most */
#define TL_GH_HOLDING_MAX 4096 /* a waiter's holding text, at most: store.h's TL_HOLDING_MAX */

enum tl_gh_took { TL_GH_TOOK_FREE = 0, TL_GH_TOOK_STALE, TL_GH_TOOK_FORCED };
/* A claim that converts another holder's claim (tl_upgrade, tl_downgrade; store ops version 5):
 * written as "conv":"upgraded" or "downgraded", with the converted claim as from[0]. Readers
 * that predate it ignore the field (the claim then reads as a plain acquisition); a value this
 * reader does not know makes the marker garbled, as a bad "took" does. */
enum tl_gh_conv { TL_GH_CONV_NONE = 0, TL_GH_CONV_UPGRADED, TL_GH_CONV_DOWNGRADED };

/* A holder that a claim displaced (stole or forced out): all that is left of its claim, which
 * was deleted. The audit trail tells its acquisition from this. */
struct tl_gh_from {
    char *worker_id;
    char *node_id;
    uint64_t token;
    int64_t claimed_at_ms;
    int64_t heartbeat_at_ms;
    enum tl_gh_took took; /* how that holder had got it */
    enum tl_gh_conv conv; /* and whether by converting an earlier claim of its own */
};

/*
 * A claim comment's hidden marker. `rec` carries worker_id, node_id, task_info, claimed_at_ms,
 * heartbeat_at_ms (the writer's view, informational) and lock_timeout_ms; its key, token and
 * opaque are not part of the marker.
 */
struct tl_gh_claim {
    struct tl_record rec;
    char nonce[TL_GH_NONCE_LEN + 1];
    uint64_t seq; /* heartbeat counter: 0 when posted; each edit writes a larger one */
    /* The line (store ops version 3). `waiter`: the acquire call's waiter id (32 lower-case hex
     * digits), "" for a claim that does not wait in line (written as "waiter" only when set).
     * `held`: written by a holder's heartbeat (and by a waiter's claim posted on a key it
     * expected to find free), for people: the visible line says the claim holds the lock, not
     * that it waits in line (a queued claim comes to hold without an edit). A claim without a
     * waiter id counts as held. Which claim holds is told by comment order alone. */
    char waiter[TL_GH_NONCE_LEN + 1];
    bool held;
    enum tl_gh_took took;
    struct tl_gh_from from[TL_GH_FROM_DEPTH]; /* newest first */
    size_t nfrom;
    /* Sessions (docs/github.md "Sessions"): the session comment whose freshness keeps this claim
     * live, written as "session":{"id":N,"nonce":"..."}; 0 for a claim that keeps itself live
     * (every claim written before sessions, and every claim with ?sessions=off). The claim is
     * live only while that comment exists, is by a trusted account, still carries this nonce,
     * and is fresh. Readers that predate sessions ignore the field. */
    int64_t session;
    char session_nonce[TL_GH_NONCE_LEN + 1];
    /* Conversions (store ops version 5): the claim converts from[0], a claim of the same
     * holder. An upgrader's claim that waits (a waiter id, not held) is the upgrade's place in
     * line; it holds only once the claim it converts is the key's only holder and is deleted. */
    enum tl_gh_conv conv;
    /* The wait-for graph: a waiter's mode and the locks its manager holds, as the core wrote them
     * ("holding", at most TL_HOLDING_MAX bytes); NULL when none, or when the field is not a
     * string of that size (a garbled one gives no edges; the claim still counts). */
    char *holding;
};

/*
 * A completion comment's hidden marker (written by release). It records the whole tenure it
 * ends, so that the audit trail (the store's history op) can tell it after the claim is gone.
 */
struct tl_gh_release {
    char nonce[TL_GH_NONCE_LEN + 1]; /* the released claim's nonce */
    uint64_t token;                  /* the released claim's comment id */
    char *worker_id;
    char *node_id;
    int64_t claimed_at_ms;                    /* the released claim's created_at */
    int64_t released_at_ms;                   /* when the claim was deleted (server clock) */
    char *summary;                            /* NULL if none */
    enum tl_gh_took took;                     /* how the released claim had got the lock */
    struct tl_gh_from from[TL_GH_FROM_DEPTH]; /* and whom it had displaced */
    size_t nfrom;
    /* A forced release (tl_release_force): who broke the lock; NULL for the holder's own
     * release. Written as "forced_by":{"worker_id","node_id"}; markers without it read as
     * before. */
    char *forced_worker_id;
    char *forced_node_id;
    /* A done release (claim-next, store ops version 4): the task is finished and the issue was
     * closed before the claim was deleted. Written as "done":true; markers without it read as
     * plain releases, and readers that predate it ignore it. */
    bool done;
    enum tl_gh_conv conv; /* the released claim's conversion, if it was one */
};

enum tl_gh_kind {
    TL_GH_NONE = 0, /* no tasklock marker: an ordinary comment */
    TL_GH_CLAIM,    /* a well-formed claim marker */
    TL_GH_RELEASE,  /* a well-formed completion marker */
    TL_GH_BAD,      /* a marker that is garbled, oversized, duplicated or of the wrong shape */
    /* A reopen comment (<!-- tasklock:reopened {...} -->, written by tl_reopen). Never returned
     * by tl__gh_parse_comment, to which it is an ordinary comment (so that older readers skip
     * it too): tl__gh_parse_reopen tells it. */
    TL_GH_REOPEN,
    /* A session comment (<!-- tasklock:session {...} -->): never returned by
     * tl__gh_parse_comment (an ordinary comment to it, and to older readers); see
     * tl__gh_parse_session. */
    TL_GH_SESSION
};

/*
 * Classifies a comment body of `len` bytes (need not be NUL-terminated). TL_GH_CLAIM fills
 * `claim` (if not NULL), TL_GH_RELEASE fills `rel` (if not NULL); the caller clears them with
 * tl__gh_claim_clear / tl__gh_release_clear. TL_GH_BAD writes the reason into `why`
 * (TL_ERRMSG_SIZE bytes, may be NULL). Returns TL_GH_BAD, never crashes, on any input.
 */
enum tl_gh_kind tl__gh_parse_comment(const char *body, size_t len, struct tl_gh_claim *claim,
                                     struct tl_gh_release *rel, char *why);
/* The claim parser on its own: TL_GH_CLAIM, TL_GH_NONE or TL_GH_BAD (a release is TL_GH_NONE). */
enum tl_gh_kind tl__gh_parse_claim(const char *body, size_t len, struct tl_gh_claim *out,
                                   char *why);
void tl__gh_claim_clear(struct tl_gh_claim *c);
void tl__gh_release_clear(struct tl_gh_release *r);

/* A reopen comment's marker: who reopened the issue, and when (the writer's view of the server
 * clock). */
struct tl_gh_reopen {
    char *worker_id;
    char *node_id;
    int64_t at_ms;
};

/* Classifies a comment body as tl__gh_parse_comment does, for the reopen marker alone:
 * TL_GH_REOPEN (fills `out`; clear it with tl__gh_reopen_clear), TL_GH_NONE, or TL_GH_BAD (a
 * garbled or repeated reopen marker). Never crashes on any input. */
enum tl_gh_kind tl__gh_parse_reopen(const char *body, size_t len, struct tl_gh_reopen *out);
void tl__gh_reopen_clear(struct tl_gh_reopen *r);
/* Builds a reopen comment body. Returns a new string or NULL when out of memory. */
char *tl__gh_build_reopen(const struct tl_gh_reopen *r);

/*
 * A session comment's marker: many claims hang on one session, and only the session comment is
 * edited by the heartbeat. `nonce` is the session's identity (a claim names it; a session comment
 * taken over by another session gets a new one), `lock_timeout_ms` how long the session stays
 * fresh after its comment's updated_at, `seq` its heartbeat counter.
 */
struct tl_gh_session {
    char nonce[TL_GH_NONCE_LEN + 1];
    uint32_t lock_timeout_ms;
    uint64_t seq;
    char *worker_id;
    char *node_id;
};

/* Classifies a comment body for the session marker alone: TL_GH_SESSION (fills `out`; clear it
 * with tl__gh_session_clear), TL_GH_NONE, or TL_GH_BAD (garbled or repeated). Never crashes on
 * any input. */
enum tl_gh_kind tl__gh_parse_session(const char *body, size_t len, struct tl_gh_session *out);
void tl__gh_session_clear(struct tl_gh_session *s);
/* Builds a session comment body; `server_now_ms` is shown as its last heartbeat. Returns a new
 * string or NULL when out of memory. */
char *tl__gh_build_session(const struct tl_gh_session *s, int64_t server_now_ms);

/* Whether a claim counts as a (possibly stale) holder's rather than a queued waiter's: it waits
 * in no line, or it has been marked held. */
static inline bool tl__gh_claim_held(const struct tl_gh_claim *c)
{
    return c->waiter[0] == '\0' || c->held;
}

/*
 * Builds a claim comment body: the visible line, a note on a displaced holder, and the marker.
 * `server_now_ms` is the time shown as the last heartbeat. Returns a new string (caller frees)
 * or NULL when out of memory. Whatever it builds parses back; whether GitHub takes it
 * (TL_GH_BODY_MAX) is the caller's check.
 */
char *tl__gh_build_claim(const struct tl_gh_claim *c, int64_t server_now_ms);
/* Builds a completion comment body. Returns a new string or NULL when out of memory. */
char *tl__gh_build_release(const struct tl_gh_release *r);

/* The length of NUL-terminated UTF-8 text in Unicode code points (how GitHub counts a body). */
size_t tl__gh_chars(const char *s);

/*
 * Finds the rel="next" target in a Link header value. Returns a new string (caller frees), or
 * NULL when there is none or the value is malformed. Accepts quoted or bare rel values and
 * several relation types in one rel.
 */
char *tl__gh_link_next(const char *link);

/* Parses an issue key: "123" or "#123" (1 to 2^53, no sign, no leading zero). */
bool tl__gh_parse_key(const char *key, int64_t *number);

/*
 * Resolves the API base URL: `param` (the store URL's api_url, may be NULL), else
 * $GITHUB_API_URL, else $GH_HOST, else https://api.github.com. The result has no trailing slash;
 * http:// is accepted only for loopback hosts. On success `*out` is a new string; else TL_EINVAL
 * with a message in `err`.
 */
tl_status tl__gh_resolve_api_url(const char *param, char **out, char *err);

/* What kind of GitHub a base URL points at, for the token variables and `gh --hostname`. */
enum tl_gh_host_kind { TL_GH_DOTCOM, TL_GH_TENANCY, TL_GH_ENTERPRISE, TL_GH_LOOPBACK };
/* Classifies `api_url` and copies its web host (github.com, X.ghe.com, the GHES host) into
 * `host` (256 bytes). */
enum tl_gh_host_kind tl__gh_host_kind(const char *api_url, char host[256]);

/*
 * Finds the token for `api_url`: $GH_TOKEN, else $GITHUB_TOKEN (on Enterprise Server hosts
 * $GH_ENTERPRISE_TOKEN, else $GITHUB_ENTERPRISE_TOKEN), else the output of
 * `gh auth token --hostname HOST` when gh is on PATH (run without a shell, at most
 * `gh_timeout_ms`). On success `*token` is a new string (wipe and free it) and `*source` static
 * text naming where it came from ("GH_TOKEN", ..., "gh auth token"). TL_EINVAL with a message
 * naming the variables to set when there is none; the token is never part of a message.
 */
tl_status tl__gh_resolve_token(const char *api_url, uint32_t gh_timeout_ms, char **token,
                               const char **source, char *err);

/* Test hook: forgets the process-wide write budget and rate-limit blocks. Thread-safe. */
void tl__gh_reset_limits(void);

#endif /* TL_STORES_GITHUB_H */
