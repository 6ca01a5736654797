/*
 * github_int.h -- what the files of the GitHub Issues store share (not an interface of the store:
 * tests use github.h and github_next.h). The store is split along its seams, one job a file:
 *
 *   github_config.c   the API URL, the token, the store URL's parameters
 *   github_rest.c     the REST client: rate limits and the write budget, gh_call, conditional
 *                     reads, pagination and the comment-list cache, single requests,
 *                     the token's login
 *   github.c          the lock protocol: open/close, records, claim, renew
 *   github_release.c  release and forced release
 *   github_line.c     waiting in line: wait_turn, leave, waiters
 *   github_history.c  inspect, list, history
 *   github_marker.c   the markers; github_next.c claim-next and done markers
 *   github_modes.c    claims in comment order; shared holders and semaphores: the holders as
 *                     comment order tells them, the `holders` op
 *   github_convert.c  upgrades and downgrades (the convert op)
 *
 * github.c's opening comment describes the protocol.
 */
#ifndef TL_STORES_GITHUB_INT_H
#define TL_STORES_GITHUB_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../http.h"
#include "github.h"
#include "github_next.h"
#include "store.h"
#include "tl.h"

#define BUDGET_RING 4096 /* writes remembered: the largest per-hour budget accepted */
#define CACHE_MAX   64
#define ORPHANS_MAX 16
#define PLACES_MAX  4 /* places in line one instance keeps (one thread's) */

/* ---- the instance ---- */

struct gh_item { /* a listed comment with a tasklock marker */
    int64_t id;
    char *login;
    int64_t created_ms;
    int64_t updated_ms;
    enum tl_gh_kind kind; /* TL_GH_CLAIM, _RELEASE, _BAD, _REOPEN or _SESSION */
    struct tl_gh_claim claim;
    struct tl_gh_release rel;
    int64_t issue; /* repo-wide lists: the issue number */
    bool deleted;  /* we deleted it since it was listed */
    /* A claim that names a session (github_session.c), as the list read resolved it: its
     * session's updated_at and lock timeout (0: judge the claim by its own), or dead (the
     * session is gone, forged or another's): stale whatever its own times say. */
    int64_t beat_ms;
    uint32_t beat_timeout_ms;
    bool session_dead;
    uint32_t session_timeout_ms; /* TL_GH_SESSION: the session comment's lock timeout */
};

struct gh_page {
    char *url;
    char *etag;
    char *next;   /* the next page's URL; NULL on the last page */
    size_t count; /* comments on the page */
    struct gh_item *items;
    size_t nitems;
};

struct gh_list {    /* what this instance last read of a comment list */
    int64_t number; /* the issue; 0: the repository-wide list */
    struct gh_page *pages;
    size_t npages;
    int64_t date_ms; /* the server clock at the last read */
    char *issue_etag;
    int64_t issue_comments;
    uint64_t used;
    /* The list was found shorter than the issue's `comments` count: the next read asks for its
     * last page without If-None-Match, so that the answer (and its Link) is not the cache's. */
    bool recheck_tail;
};

struct gh_place {                     /* a waiter's place in line: its claim comment */
    char waiter[TL_GH_NONCE_LEN + 1]; /* the waiter id; "": a free slot */
    char nonce[TL_GH_NONCE_LEN + 1];
    int64_t number;
    int64_t comment;
    int64_t beat_sent; /* when its last write (post or edit) was sent: the clock's mono_ms */
    int64_t polled;    /* when the issue's comments were last read for it (claim, wait_turn) */
    uint64_t used;
    bool steals; /* an upgrader's place whose upgrade steals: stale holders do not count */
};

struct gh_config {
    uint32_t per_min, per_hour; /* write budget; 0: off */
    uint32_t timeout_ms;
    uint32_t max_wait_ms;
    uint32_t rereads;
    uint32_t reread_ms;
    uint32_t per_page;
    uint32_t history_pages; /* the repository-wide log reads at most this many pages */
    bool assign;
    bool reconcile;        /* false only in tests: trust a re-list without the count check */
    bool sessions;         /* claims hang on the manager's session (github_session.c) */
    int64_t session_issue; /* ?session_issue=N; 0: the labelled one, created if need be */
};

#define SEEN_MAX      64 /* session comments an instance remembers having read */
#define SESS_USED_MAX 16 /* process-wide sessions an instance holds a reference to */

struct gh_seen { /* a session comment as this instance last read it */
    int64_t id;
    char *etag;
    char *login;
    bool found; /* it exists */
    bool valid; /* and carries a well-formed session marker and times */
    int64_t updated_ms;
    struct tl_gh_session s;
    uint64_t op; /* read during call op_seq == op: not again in that call */
    uint64_t used;
};

struct github_store {
    struct tl_store base; /* must be first */
    struct tl_http *http;
    struct gh_config cfg;
    char *api;    /* base URL without a trailing slash */
    char *origin; /* scheme://host[:port] of api: Link targets must stay on it */
    char *owner;
    char *repo;
    char *login; /* the token's login; NULL until known */
    char **trusted;
    size_t ntrusted;
    const char *token_source;
    enum tl_gh_host_kind host_kind;
    struct gh_list *lists[CACHE_MAX];
    size_t nlists;
    uint64_t use_clock;
    int64_t orphans[ORPHANS_MAX]; /* our claims we failed to delete: retried later */
    size_t norphans;
    int64_t pending_issue; /* a claim POST that failed ambiguously, looked for later */
    char pending_nonce[TL_GH_NONCE_LEN + 1];
    uint32_t op_max_wait_ms; /* the current call's wait limit when it has no deadline */
    int64_t op_deadline;     /* renew: the clock's mono_ms its waits end by (0: none); see renew */
    bool cleaning_up;        /* withdrawing a claim: its request may outlive the deadline */
    /* A claim or release has made its first write: its later requests may outlive the
     * caller's deadline (libcurl's timeout still bounds them), so that it is not left half
     * done, e.g. a holder's claim deleted by a steal whose own claim, which records that
     * holder, was then never posted. A renew's requests are always bounded. */
    bool committed;
    uint64_t nonce_ctr;
    int64_t pending_sent;               /* when that POST was sent (the clock's mono_ms) */
    struct gh_place places[PLACES_MAX]; /* the line: our waiters' claims */
    uint32_t line_poll_ms;              /* wait_turn's cadence of list reads */
    char *priorities; /* ?priorities=: claim-next's priority-label table (github_next.c) */
    void *next_state; /* github_next.c's own cache (tl__gh_next_slot) */
    /* The state of the issue in the last issue answer this call read (claim: the assignee's
     * answer, or the count check): 1 closed, 0 open, -1 none read. */
    int issue_closed;
    /* Sessions (github_session.c). */
    uint64_t op_seq; /* counts this instance's calls: a session is read once per call */
    bool op_nested;  /* a claim made for claim-next (github_next.c): the same call */
    int64_t sess_issue;
    struct gh_seen seen[SEEN_MAX];
    size_t nseen;
    int64_t sess_used[SESS_USED_MAX];
    size_t nsess_used;
};
_Static_assert(offsetof(struct github_store, base) == 0, "base must be first");

#define LOG(g, lvl, ...) TL_LOG((g)->base.log, lvl, __VA_ARGS__)

/* Asked after each page whether enough has been read; sets *err (a status) to stop on an
 * error of its own. */
typedef bool gh_enough_fn(void *ud, const struct gh_page *pages, size_t npages, tl_status *err);

/* ---- github_config.c: where to connect and as whom (API URL, token, store URL parameters) ---- */

bool tl__gh_url_host(const char *url, const char **host, size_t *hlen, bool *https);
bool tl__gh_name_ok(const char *s, size_t n);
tl_status tl__gh_parse_params(struct github_store *g, char *query, char **api_param);

/* ---- github_rest.c: the REST client (limits, requests, JSON, comment lists) ---- */

tl_status tl__gh_fail(struct github_store *g, tl_status st, const char *fmt, ...) TL_PRINTF(3, 4);
tl_status tl__gh_oom(struct github_store *g);
bool tl__gh_may_wait(struct github_store *g, int64_t ms);
bool tl__gh_nap(struct github_store *g, uint32_t ms);
int64_t tl__gh_resp_date(const struct tl_http_resp *r);
/* Writes the process's write budget would give now without waiting (UINT32_MAX: no budget). */
uint32_t tl__gh_budget_free(const struct gh_config *c);
tl_status tl__gh_call(struct github_store *g, const char *method, const char *url, const char *body,
                      const char *inm, struct tl_http_resp *r);
tl_status tl__gh_unexpected_answer(struct github_store *g, const char *method, const char *url,
                                   const struct tl_http_resp *r, int64_t issue);
json_t *tl__gh_load_json(const struct tl_http_resp *r);
bool tl__gh_json_time(json_t *o, const char *field, int64_t *out);
void tl__gh_item_clear(struct gh_item *it);
bool tl__gh_trusted(const struct github_store *g, const char *login);
void tl__gh_list_free(struct gh_list *l);
struct gh_list *tl__gh_list_get(struct github_store *g, int64_t number);
tl_status tl__gh_read_pages(struct github_store *g, struct gh_list *l, char *url, int64_t number,
                            bool conditional, size_t max_pages, bool cap_fails,
                            gh_enough_fn *enough, void *ud, bool *complete);
tl_status tl__gh_read_list(struct github_store *g, int64_t number, bool conditional,
                           struct gh_list **out);
size_t tl__gh_list_count(const struct gh_list *l);
struct gh_item *tl__gh_list_find(struct gh_list *l, int64_t id);
bool tl__gh_is_claim(const struct github_store *g, const struct gh_item *it);
char *tl__gh_comment_url(const struct github_store *g, int64_t id);
char *tl__gh_json_body(const char *field, const char *text);
tl_status tl__gh_delete_comment(struct github_store *g, int64_t id, bool *gone);
bool tl__gh_assignee(struct github_store *g, int64_t number, bool add, int64_t *comments);
tl_status tl__gh_issue_count(struct github_store *g, struct gh_list *l, int64_t *comments);
tl_status tl__gh_post_comment(struct github_store *g, int64_t number, const char *text,
                              struct gh_item *item, bool *maybe, bool *transient);
tl_status tl__gh_get_comment(struct github_store *g, int64_t id, int64_t issue,
                             struct gh_item *item, bool *found);
tl_status tl__gh_fetch_login(struct github_store *g);

/* ---- github.c: open/close, records, claim, renew, and the interface of github_next.c ---- */

bool tl__gh_stale_at(const struct gh_item *it, int64_t now_ms);
void tl__gh_random_nonce(struct github_store *g, char out[TL_GH_NONCE_LEN + 1]);
tl_status tl__gh_item_record(struct github_store *g, const struct gh_item *it, const char *key,
                             int64_t now_ms, struct tl_record *out);
struct gh_place *tl__gh_place_find(struct github_store *g, const char *waiter_id);
void tl__gh_place_forget(struct gh_place *p);
bool tl__gh_opaque_split(const struct tl_record *held, char nonce[TL_GH_NONCE_LEN + 1], char *login,
                         size_t lsize);
bool tl__gh_is_held_claim(const struct github_store *g, const struct gh_item *it,
                          const struct tl_record *held, const char *nonce);
void tl__gh_learn_login(struct github_store *g, const char *login);
void tl__gh_withdraw_claim(struct github_store *g, int64_t id);
tl_status tl__github_check_key(struct tl_store *s, const char *key);
tl_status tl__gh_copy_took(struct github_store *g, struct tl_gh_claim *mine,
                           const struct tl_gh_claim *c);
/* Records holder `it`, displaced or converted, in claim `c`'s from chain (newest first). */
void tl__gh_push_from(struct tl_gh_claim *c, const struct gh_item *it);
/* TL_EINVAL unless GitHub takes `text` as a claim body, with room for its later edits. */
tl_status tl__gh_check_size(struct github_store *g, const char *text);
/* The delay before re-read `a` (1, 2, ...) of a list shorter than the issue's count. */
uint32_t tl__gh_reread_delay(const struct github_store *g, uint32_t a);
bool tl__gh_same_holding(const char *stored, const char *holding);
/* The line's places (github.c): remember one; refresh one's claim in place (a new counter and
 * heartbeat, `holding` as the waiter's text); post a live waiter's claim again behind ours
 * (same waiter id and nonce: its waiter finds its place moved). */
void tl__gh_place_keep(struct github_store *g, const char *waiter_id, int64_t number, int64_t id,
                       const char *nonce, int64_t sent);
tl_status tl__gh_refresh_place(struct github_store *g, struct gh_item *it, struct gh_place *p,
                               int64_t server_now_ms, const char *holding, bool *gone);
void tl__gh_repost_place(struct github_store *g, int64_t number, const struct gh_item *c,
                         int64_t server_now_ms);

/* ---- github_modes.c: claims in comment order; shared holders and semaphores ---- */

struct gh_item *tl__gh_line_holder(const struct github_store *g, struct gh_list *l, int64_t issue,
                                   int64_t below, uint32_t *live);
uint32_t tl__gh_line_waiting(const struct github_store *g, struct gh_list *l, int64_t issue,
                             const struct gh_item *holder);
struct gh_item *tl__gh_next_claim(const struct github_store *g, struct gh_list *l, int64_t after,
                                  int64_t below);
struct gh_item *tl__gh_waiter_claim(const struct github_store *g, struct gh_list *l,
                                    const char *waiter, const char *nonce, int64_t except);

/* The holders of an issue as a list shows them: the leading run of its claims that the modes
 * admit (github_modes.c), and the line after them. */
struct gh_run {
    struct gh_item *first, *last; /* the holders: the claims first..last; NULL: none */
    size_t n, live;               /* holders (stale ones included), and the live ones */
    bool exclusive;               /* the one holder is exclusive */
    uint32_t slots;               /* the shared holders' slots (0: no limit) */
    size_t after, live_after;     /* claims after the holders (the line), and the live ones */
};

/* The run of `issue` (0: any; repository-wide lists need it) among the claims below `below`
 * (0: all). The claims below a claim are a prefix, so their run is a prefix of the whole. */
void tl__gh_run(const struct github_store *g, struct gh_list *l, int64_t issue, int64_t below,
                struct gh_run *r);
bool tl__gh_in_run(const struct gh_run *r, const struct gh_item *it);
struct gh_item *tl__gh_run_next(const struct github_store *g, struct gh_list *l,
                                const struct gh_run *r, const struct gh_item *c);
/* Whether the holders `r` that count for `req` (all, or the live ones when stealing) admit it. */
enum tl_admit tl__gh_admit(const struct gh_run *r, const struct tl_claim *req, int64_t now_ms);
/* Whether a claim (shared, slots) at comment `id` is among the holders of `l`. */
bool tl__gh_holds_at(const struct github_store *g, struct gh_list *l, int64_t id, bool shared,
                     uint32_t slots);
/* Whether waiter claim `it` would win now (admitted, no live waiter ahead): wait_turn's wake-up. */
bool tl__gh_turn(const struct github_store *g, struct gh_list *l, const struct gh_item *it,
                 bool steals);
struct gh_item *tl__gh_clear_joiners(struct github_store *g, struct gh_list *l, int64_t old_last);
struct gh_item *tl__gh_clear_dead_after(struct github_store *g, struct gh_list *l, int64_t id);
tl_status tl__gh_push_holder(struct github_store *g, struct gh_list *l, const struct gh_item *it,
                             const char *key, const struct gh_run *r, struct tl_record ***arr,
                             size_t *n, size_t *cap);
tl_status tl__gh_push_run(struct github_store *g, struct gh_list *l, int64_t issue,
                          const struct gh_run *r, struct tl_record ***arr, size_t *n, size_t *cap);
tl_status tl__github_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                             size_t *count);

/* ---- github_convert.c: upgrades and downgrades (the convert op) ---- */

tl_status tl__github_convert(struct tl_store *s, const struct tl_record *held,
                             const struct tl_claim *req, struct tl_claim_result *out);
/* The claim an upgrader's place converts (its from[0]) when `it` is such a place: a waiting
 * upgrade's claim; else 0. */
int64_t tl__gh_upgrade_of(const struct gh_item *it);

/* ---- github_release.c: release and forced release ---- */

tl_status tl__github_release(struct tl_store *s, const struct tl_record *held, const char *summary);
tl_status tl__github_force_release(struct tl_store *s, const struct tl_force_release *req,
                                   struct tl_record *former, bool *found);

/* ---- github_line.c: waiting in line (wait_turn, leave, waiters) ---- */

tl_status tl__github_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                               uint32_t timeout_ms, bool *woken);
tl_status tl__github_leave(struct tl_store *s, const char *key, const char *waiter_id);
tl_status tl__github_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                             size_t *count);

/* ---- github_history.c: inspect, list, history and the done/reopen marks ---- */

tl_status tl__github_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                             bool *found);
tl_status tl__github_list(struct tl_store *s, struct tl_record ***out, size_t *count);
tl_status tl__github_history(struct tl_store *s, const char *key, size_t limit,
                             struct tl_event ***out, size_t *count);

/* ---- github_session.c: sessions (a manager's claims hang on one session comment) ---- */

/* The manager's session for claims of `timeout_ms` (made fresh, or created, with the session
 * issue if need be): its comment id and nonce, for the claim's marker, and when it was last
 * written (*sent, the clock's mono_ms: a claim that names it is only as fresh as that, and the
 * core reckons its loss deadline from then). A failure names the settings (session_issue,
 * sessions=off). */
tl_status tl__gh_session_for(struct github_store *g, const char *worker_id, const char *node_id,
                             uint32_t timeout_ms, int64_t server_now_ms, int64_t *id,
                             char nonce[TL_GH_NONCE_LEN + 1], int64_t *sent);
/* When the session that claim `it` names was last written, as the clock's mono_ms: by this
 * process's table, else (another process wrote it) from its updated_at as the list read resolved
 * it, against the list's Date (`server_now_ms`), a second older for the Date's whole seconds. */
int64_t tl__gh_session_sent(struct github_store *g, const struct gh_item *it,
                            int64_t server_now_ms);
/* Judges the session claims of a list just read: fetches each distinct session once per call
 * (conditional), and sets their beat_ms/beat_timeout_ms or session_dead. */
tl_status tl__gh_sessions_resolve(struct github_store *g, struct gh_list *l);
/* Renews what keeps session claim `it` live: its session comment, unless written within a
 * quarter of its timeout by both clocks (then *sent says when: the core reckons from then). *gone:
 * the session is dead or not ours to write; the caller then edits the claim instead. */
tl_status tl__gh_session_renew(struct github_store *g, const struct gh_item *it,
                               int64_t server_now_ms, int64_t *sent, int64_t *heartbeat_at_ms,
                               bool *gone);
/* Lets go of the process-wide sessions this instance used, and of what it read. */
void tl__gh_sessions_close(struct github_store *g);

#endif /* TL_STORES_GITHUB_INT_H */
