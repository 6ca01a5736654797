/*
 * server.h -- internals of tl-github-server, the project's local stand-in for the GitHub REST API.
 *
 * The server is one process: server.c (command line, daemon, signals), state.c (the model:
 * users, repos, issues, comments, clock, budgets, stats and their JSON), faults.c (fault knobs),
 * http.c (libmicrohttpd glue, request pipeline, responses), api.c (the GitHub endpoints) and
 * admin.c (/_admin/). PROTOCOL.md is the contract.
 *
 * Threads: libmicrohttpd runs one thread per connection. All of `struct ghs_server` except the
 * immutable `cfg` and `port` is guarded by `mu`; functions named *_locked expect it held. Nothing
 * sleeps with `mu` held except through pthread_cond_timedwait on `wake`.
 */
#ifndef TL_GHS_SERVER_H
#define TL_GHS_SERVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GHS_MAX_ASSIGNEES     10
#define GHS_MAX_BODY          (INT64_C(1024) * 1024) /* request body limit, bytes */
#define GHS_MAX_COMMENT_CHARS 65536                  /* GitHub's comment body limit, code points */
#define GHS_REPO_ID_BASE      INT64_C(515435940)
#define GHS_ISSUE_ID_BASE     INT64_C(1500000000)
#define GHS_USER_ID_BASE      INT64_C(7000000)
#define GHS_FIRST_COMMENT_ID  INT64_C(3000000001)
#define GHS_ANON_LIMIT        60
#define GHS_WINDOW_S          3600

#if defined(__GNUC__)
#define GHS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define GHS_PRINTF(fmt, args)
#endif

/* ---- command line (immutable once the daemon runs) ---- */

struct ghs_token_arg {
    char *login;
    char *token;
};

struct ghs_config {
    unsigned port;
    const char *port_file;
    struct ghs_token_arg *tokens;
    size_t ntokens;
    char **repos; /* "owner/repo" */
    size_t nrepos;
    char **assignables;
    size_t nassignables;
    int64_t issues;
    int64_t rate_limit;
    bool verbose;
    bool die_with_stdin;
};

/* ---- the model ---- */

struct ghs_user {
    char *login;
    int64_t id;
    bool assignable;
    int64_t used;  /* primary budget spent in the current window */
    int64_t reset; /* end of the window, epoch seconds of the server clock; 0: no window yet */
};

struct ghs_token {
    char *token;
    size_t user; /* index into users */
};

struct ghs_issue {
    int64_t id;
    int64_t number;
    char *title;
    char *body; /* NULL: null */
    bool closed;
    char *state_reason; /* NULL: null */
    json_t *labels;     /* array of label objects, owned */
    size_t assignees[GHS_MAX_ASSIGNEES];
    size_t nassignees;
    int64_t ncomments;
    int64_t created, updated, closed_at; /* epoch seconds; closed_at 0: null */
    int status;                          /* 200, or 301/404/410 set by the admin API */
    int64_t moved_to;                    /* for status 301 */
};

struct ghs_repo {
    int64_t id;
    char *owner;
    char *name;
    struct ghs_issue *issues;
    size_t nissues, cap;
};

struct ghs_comment {
    int64_t id;
    size_t repo; /* index into repos */
    int64_t number;
    size_t user;
    char *body;
    int64_t created, updated;
    int64_t hidden_reads;    /* list reads it still stays out of */
    int64_t hidden_until_ms; /* monotonic ms; hidden from lists before it */
};

/* A fault that fires on the next `count` matching requests. */
struct ghs_counted {
    int64_t count;
    char *method;   /* NULL: any */
    char *endpoint; /* stats name; NULL: any */
};

struct ghs_faults {
    int64_t latency_ms;
    int64_t visibility_lag_reads;
    int64_t visibility_lag_ms;
    struct ghs_counted post_commit_then_5xx;
    int64_t post_hang_ms;
    int64_t post_hang_count;
    struct ghs_counted secondary_limit;
    int secondary_status;
    int64_t secondary_retry_after; /* < 0: no retry-after header */
    struct ghs_counted primary_exhausted;
    int64_t primary_reset_in_s;
    struct ghs_counted assignee_422;
    struct ghs_counted drop_connections;
    struct ghs_counted status_5xx;
};

struct ghs_stats {
    int64_t total, writes, not_modified, dropped;
    json_t *by_endpoint, *by_status, *by_login; /* objects of integers, owned */
};

struct ghs_server {
    const struct ghs_config *cfg;
    unsigned port; /* set once before the first request */

    pthread_mutex_t mu;
    pthread_cond_t wake; /* broadcast when `stopping` is set */
    bool stopping;

    int64_t clock_offset_ms;
    int64_t rate_limit;
    struct ghs_user *users;
    size_t nusers;
    struct ghs_token *tokens;
    size_t ntokens;
    struct ghs_repo *repos;
    size_t nrepos;
    struct ghs_comment *comments; /* ascending id */
    size_t ncomments, ccap;
    int64_t next_comment_id, comment_seq, next_issue_id;
    uint64_t request_seq;
    struct ghs_faults faults;
    struct ghs_stats stats;
};

/* ---- state.c ---- */

/* 0 on success, -1 on out of memory (the state is then empty but valid for ghs_state_fini). */
int ghs_state_init(struct ghs_server *s, const struct ghs_config *cfg);
void ghs_state_fini(struct ghs_server *s);
int ghs_state_reset_locked(struct ghs_server *s);

int64_t ghs_now_ms_locked(const struct ghs_server *s); /* server clock: real + offset */
int64_t ghs_mono_ms(void);
void ghs_fmt_iso(int64_t epoch_s, char out[32]);        /* 2026-11-26T23:28:01Z */
void ghs_fmt_imf(int64_t epoch_s, char out[40]);        /* Thu, 26 Nov 2026 23:28:01 GMT */
bool ghs_parse_iso(const char *text, int64_t *epoch_s); /* false: not a timestamp */
bool ghs_parse_i64(const char *text, int64_t *out);     /* decimal, no sign, no junk */
size_t ghs_utf8_chars(const char *text);

/* Lookups return an index or SIZE_MAX / NULL. */
size_t ghs_user_find(const struct ghs_server *s, const char *login);
size_t ghs_user_add(struct ghs_server *s, const char *login); /* find or add; SIZE_MAX: OOM */
size_t ghs_token_user(const struct ghs_server *s, const char *token);
int ghs_token_add(struct ghs_server *s, const char *token, size_t user);
size_t ghs_repo_find(const struct ghs_server *s, const char *owner, const char *name);
size_t ghs_repo_find_id(const struct ghs_server *s, int64_t id);
size_t ghs_repo_find_full(const struct ghs_server *s, const char *full); /* "owner/repo" */
struct ghs_issue *ghs_issue_find(struct ghs_server *s, size_t repo, int64_t number);
struct ghs_issue *ghs_issue_add(struct ghs_server *s, size_t repo, int64_t number);
int64_t ghs_issue_next_number(const struct ghs_server *s, size_t repo);
size_t ghs_comment_find(const struct ghs_server *s, int64_t id);
/* Appends a comment with the next id; NULL on out of memory. */
struct ghs_comment *ghs_comment_add(struct ghs_server *s, size_t repo, struct ghs_issue *is,
                                    size_t user, const char *body);
void ghs_comment_remove(struct ghs_server *s, size_t index);
bool ghs_comment_hidden(const struct ghs_comment *c, int64_t mono_ms);

/* Primary budget of a user: rolls the window over when the server clock passed its end. */
void ghs_budget_touch_locked(struct ghs_server *s, struct ghs_user *u);

/* JSON renderings (new references; NULL on out of memory). `base` is "http://HOST". */
json_t *ghs_user_json(const struct ghs_server *s, const char *base, size_t user);
json_t *ghs_issue_json(const struct ghs_server *s, const char *base, size_t repo,
                       const struct ghs_issue *is);
json_t *ghs_comment_json(const struct ghs_server *s, const char *base, const struct ghs_comment *c);

void ghs_stats_bump(json_t *obj, const char *key);
void ghs_stats_clear(struct ghs_stats *st);

/* ---- faults.c ---- */

void ghs_faults_clear(struct ghs_faults *f);
/* Applies a POST /_admin/faults body. Returns 0; -1 with `err` set for a bad field (knobs
 * before it may already be applied: the caller's test is wrong anyway); 1 with `err` set when
 * hide_comment names no live comment (answered 404). */
int ghs_faults_apply_locked(struct ghs_server *s, json_t *body, char *err, size_t errlen);
json_t *ghs_faults_json(const struct ghs_faults *f);
/* True (and counts down) when the knob fires for this request. */
bool ghs_fault_take(struct ghs_counted *c, const char *method, const char *endpoint);

/* ---- http.c: response under construction ---- */

#define GHS_MAX_HEADERS 16

struct ghs_header {
    const char *name; /* static string */
    char *value;      /* owned */
};

struct ghs_resp {
    int status;
    char *body; /* malloc'd, owned; NULL: empty */
    size_t len;
    struct ghs_header hdr[GHS_MAX_HEADERS];
    size_t nhdr;
    int64_t delay_ms; /* sleep before answering (post_hang_ms) */
    bool oom;
};

/* What a handler sees of the request. */
struct ghs_req {
    const char *method;
    const char *path;
    const char *base; /* "http://HOST" */
    json_t *json;     /* parsed body object, or NULL when the body was not JSON */
    bool bad_json;    /* body present and not valid JSON */
    bool not_object;  /* valid JSON but not an object */
    size_t user;      /* authenticated user, SIZE_MAX for admin */
    void *conn;       /* struct MHD_Connection * */
};

const char *ghs_query(const struct ghs_req *rq, const char *key);
void ghs_resp_header(struct ghs_resp *r, const char *name, const char *fmt, ...) GHS_PRINTF(3, 4);
void ghs_resp_json(struct ghs_resp *r, int status, json_t *body); /* steals body */
void ghs_resp_error(struct ghs_resp *r, int status, const char *message);
void ghs_resp_empty(struct ghs_resp *r, int status);

/* ---- api.c ---- */

enum ghs_ep {
    GHS_EP_NONE = 0,
    GHS_EP_ISSUE_GET,
    GHS_EP_ISSUE_PATCH,
    GHS_EP_ASSIGNEES_ADD,
    GHS_EP_ASSIGNEES_REMOVE,
    GHS_EP_ISSUE_ASSIGNEE_CHECK,
    GHS_EP_REPO_ASSIGNEE_CHECK,
    GHS_EP_REPO_ASSIGNEES,
    GHS_EP_COMMENTS_LIST,
    GHS_EP_REPO_COMMENTS,
    GHS_EP_COMMENT_CREATE,
    GHS_EP_COMMENT_GET,
    GHS_EP_COMMENT_PATCH,
    GHS_EP_COMMENT_DELETE,
    GHS_EP_USER,
    GHS_EP_RATE_LIMIT,
    GHS_EP_ISSUES_LIST,
    GHS_EP_ISSUE_CREATE,
    GHS_EP_COUNT
};

#define GHS_SEG 256 /* longest path segment kept; longer ones are a 404 */

struct ghs_route {
    enum ghs_ep ep;
    bool by_id; /* /repositories/{id}/... form */
    int64_t repo_id;
    char owner[GHS_SEG];
    char repo[GHS_SEG];
    int64_t number;
    int64_t comment_id;
    char assignee[GHS_SEG];
    char tail[GHS_SEG]; /* path after /issues/{n}, for a 301 Location */
};

/* Pure: classifies method + path. */
void ghs_route_parse(const char *method, const char *path, struct ghs_route *rt);
const char *ghs_ep_name(enum ghs_ep ep); /* stats name; "other" for GHS_EP_NONE */
void ghs_api_handle_locked(struct ghs_server *s, const struct ghs_route *rt,
                           const struct ghs_req *rq, struct ghs_resp *r);

/* ---- admin.c ---- */

void ghs_admin_handle_locked(struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r);

/* ---- http.c ---- */

/* Starts libmicrohttpd on 127.0.0.1:cfg->port; returns the daemon (opaque) or NULL. */
void *ghs_http_start(struct ghs_server *s, unsigned *port);
void ghs_http_stop(void *daemon);
/* Sleeps up to ms unless the server is stopping; takes and releases `mu`. */
void ghs_sleep_ms(struct ghs_server *s, int64_t ms);

#endif /* TL_GHS_SERVER_H */
