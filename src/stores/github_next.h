/*
 * github_next.h -- the narrow interface between the GitHub store's lock protocol (github.c) and
 * its claim-next and done markers (github_next.c; store ops version 4). Internal to the store.
 *
 * github_next.c builds only on what is declared here: the normal claim and release, one request
 * through the store's limits, a comment post, the markers of an issue's (or the repository's)
 * comments, and what the store already knows of an issue's line without asking.
 */
#ifndef TL_STORES_GITHUB_NEXT_H
#define TL_STORES_GITHUB_NEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "../http.h"
#include "github.h"
#include "store.h"

/* ---- github.c and its siblings (github_int.h), for github_next.c ---- */

/* A new call: its waits bounded by the store's max_wait (or the caller's deadline). */
void tl__gh_begin(struct tl_store *s);
/* The store's claim op (github_claim), and its release with `done` (see release_as). */
tl_status tl__gh_claim(struct tl_store *s, const struct tl_claim *req, struct tl_claim_result *out);
tl_status tl__gh_release_as(struct tl_store *s, const struct tl_record *held, const char *summary,
                            bool done);
/* After a won claim: whether the issue was closed in the issue answer that claim read (the
 * assignee's): 1 closed, 0 open, -1 not known (no such answer). No request. */
int tl__gh_claimed_closed(struct tl_store *s);
/* Takes back a claim just won (deletes it, without a completion comment; removes the
 * assignee): for a task found done after all. Failures are logged (the claim is retried as an
 * orphan). */
void tl__gh_withdraw(struct tl_store *s, const struct tl_record *held);
/* One request through the store's limits and retries (gh_call). `inm`: If-None-Match or NULL. */
tl_status tl__gh_request(struct tl_store *s, const char *method, const char *url, const char *body,
                         const char *inm, struct tl_http_resp *r);
/* "API/repos/OWNER/REPO" followed by `suffix` (a new string, NULL when out of memory). */
char *tl__gh_repo_url(struct tl_store *s, const char *suffix);
/* The rel="next" target of a Link header, checked to stay on the API's origin (NULL: none). */
char *tl__gh_next_url(struct tl_store *s, const char *link);
/* The error for a status the caller did not expect (issue > 0: about that issue). */
tl_status tl__gh_unexpected(struct tl_store *s, const char *method, const char *url,
                            const struct tl_http_resp *r, int64_t issue);
int64_t tl__gh_resp_ms(const struct tl_http_resp *r); /* the server's Date, or local time */
bool tl__gh_trusts(struct tl_store *s, const char *login);
/* github_next.c's slot in the store (NULL at first; freed by tl__gh_next_free at close). */
void **tl__gh_next_slot(struct tl_store *s);
const char *tl__gh_priorities(struct tl_store *s); /* ?priorities= or NULL */
uint32_t tl__gh_per_page(struct tl_store *s);
uint32_t tl__gh_history_pages(struct tl_store *s);
/* Posts a comment (no retry; TL_OK: posted). */
tl_status tl__gh_post(struct tl_store *s, int64_t number, const char *text);

/* What the store knows of an issue's line from its last read of the comments (no request). */
struct tl_gh_line {
    bool known;      /* a list of the issue is cached */
    bool holder;     /* it has a trusted claim (the lowest holds) */
    bool stale;      /* that claim is stale (at the list's server time) */
    bool waiting;    /* that claim is a queued waiter's, not yet marked held */
    uint32_t live;   /* live claims in the line, the holder's included */
    int64_t read_ms; /* the server time of that read */
};
void tl__gh_line_known(struct tl_store *s, int64_t number, struct tl_gh_line *out);

/* A trusted marker comment that is not a claim: a completion (kind TL_GH_RELEASE, `rel` as
 * parsed) or a reopen comment (TL_GH_REOPEN: rel.worker_id, rel.node_id, rel.released_at_ms =
 * when). Borrowed for the callback. */
struct tl_gh_mark {
    int64_t issue;
    int64_t id; /* the comment's id */
    enum tl_gh_kind kind;
    const struct tl_gh_release *rel;
};
typedef void tl_gh_mark_fn(void *ud, const struct tl_gh_mark *m);
/* Reads (conditionally) the comments of issue `number`, or the repository's newest ones (0: at
 * most history_pages pages), and calls `fn` on each trusted completion and reopen comment. */
tl_status tl__gh_marks(struct tl_store *s, int64_t number, tl_gh_mark_fn *fn, void *ud);

/* ---- github_next.c, for github.c ---- */

/* Closes (or reopens) issue `number`: PATCH state. *at_ms (may be NULL): the server's time. */
tl_status tl__gh_next_close(struct tl_store *s, int64_t number, bool close, int64_t *at_ms);
void tl__gh_next_free(void *state);
/* Whether ?priorities= has a usable value. */
bool tl__gh_next_priorities_ok(const char *v);
/* The version-4 ops. */
tl_status tl__gh_claim_next(struct tl_store *s, const struct tl_claim *req,
                            const struct tl_candidates *c, struct tl_claim_result *out, size_t *won,
                            struct tl_next_tally *tally);
tl_status tl__gh_finish(struct tl_store *s, const struct tl_finish *f,
                        struct tl_finish_result *out);
tl_status tl__gh_reopen(struct tl_store *s, const char *key, const char *worker_id,
                        const char *node_id, bool *was_done);
tl_status tl__gh_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                           size_t *count);

#endif /* TL_STORES_GITHUB_NEXT_H */
