/*
 * serve.h -- `tasklock serve` (issue 16): a live dashboard page, a JSON API and Prometheus
 * /metrics over HTTP (libmicrohttpd), a thin face over the public API (tasklock.h).
 *
 *   cmd_serve.c    options, the admin token, the listening socket, signals, start and stop
 *   serve_state.c  the one reader: reads the store once per refresh interval for every client,
 *                  counts the audit trail incrementally, publishes an immutable snapshot
 *   serve_http.c   the routes, server-sent events, admin actions, headers, the request log
 *   serve_prom.c   text building: the Prometheus exposition, bounded key-prefix labels
 *   serve_page.*   the page, its CSS and JavaScript, embedded at build time (cli/cli.cmake)
 *
 * Threads: the reader thread owns `m`; the HTTP server runs a thread per connection, which reads
 * snapshots (reference-counted under `mu`) and never the store; admin actions use their own
 * manager `admin` under `admin_mu`. The main thread waits for SIGINT/SIGTERM.
 */
#ifndef TL_CLI_SERVE_H
#define TL_CLI_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

/* Audit-trail event kinds counted, in tl_event_kind order (kind - 1). */
enum { TL_SERVE_KINDS = 5 };
/* At most this many distinct key prefixes label the counters; the rest count as "other". */
enum { TL_SERVE_PREFIXES = 32, TL_SERVE_PREFIX_MAX = 64 };
/* Events kept in memory for the feed and /api/history (the trail's last ones). */
enum { TL_SERVE_EVENTS = 1000, TL_SERVE_FEED = 50 };

/* The routes, for the request counters and the log. */
enum tl_serve_route {
    TL_ROUTE_PAGE,
    TL_ROUTE_CSS,
    TL_ROUTE_JS,
    TL_ROUTE_LOCKS,
    TL_ROUTE_LOCK,
    TL_ROUTE_RELEASE,
    TL_ROUTE_HISTORY,
    TL_ROUTE_API_METRICS,
    TL_ROUTE_EVENTS,
    TL_ROUTE_METRICS,
    TL_ROUTE_OTHER,
    TL_ROUTE_COUNT
};
/* The status codes counted; anything else counts as 500. */
enum { TL_SERVE_CODES = 10 };
extern const unsigned tl_serve_codes[TL_SERVE_CODES];
extern const char *const tl_serve_route_names[TL_ROUTE_COUNT];

/* A growable string; on allocation failure `failed` is set and appends do nothing. */
struct tl_serve_buf {
    char *data;
    size_t len, cap;
    bool failed;
};
void tl_serve_buf_add(struct tl_serve_buf *b, const char *s, size_t n);
void tl_serve_buf_puts(struct tl_serve_buf *b, const char *s);
void tl_serve_buf_printf(struct tl_serve_buf *b, const char *fmt, ...) TL_CLI_PRINTF(2, 3);
/* Appends `doc` as compact JSON and drops the reference (steals it; NULL fails the buffer). */
void tl_serve_buf_json(struct tl_serve_buf *b, json_t *doc);
/* The text, the caller's (free()); NULL when anything failed. Resets the buffer. */
char *tl_serve_buf_take(struct tl_serve_buf *b);

/* One event of the audit trail, shared by the reader and snapshots (atomic reference count). */
struct tl_serve_event {
    unsigned refs;
    int64_t at_ms;
    int kind; /* tl_event_kind */
    char *key;
    char *text; /* its `tasklock log --json` object */
};
void tl_serve_event_unref(struct tl_serve_event *e);

/* One held lock in a snapshot. */
struct tl_serve_lock {
    char *key;
    char *status; /* the `tasklock status KEY --json` document */
};

/* What every client is served until the next refresh: immutable once published. */
struct tl_serve_snapshot {
    unsigned refs;       /* under tl_serve.mu */
    uint64_t generation; /* changes when the page's state changes */
    bool store_ok;
    bool has_line;
    char *locks;                /* /api/locks: `tasklock list --json` */
    struct tl_serve_lock *lock; /* sorted by key (strcmp) */
    size_t nlock;
    struct tl_serve_event **events; /* oldest first */
    size_t nevents;
    char *metrics; /* /api/metrics */
    char *prom;    /* /metrics: the store's gauges and the audit trail's counters */
    char *state;   /* the page's state (server-sent event "state") */
};

struct tl_serve_reader; /* serve_state.c */

struct tl_serve {
    struct tl_cli *cli;
    uint32_t refresh_ms;
    bool admin_enabled;
    char *admin_token; /* NULL: read-only; never printed */
    size_t admin_token_len;
    char *store_shown; /* the store URL without secrets, for labels and the page */

    tl_manager *m; /* the reader's (its thread only, once started) */
    pthread_mutex_t admin_mu;
    tl_manager *admin; /* admin actions, under admin_mu */

    pthread_mutex_t mu;
    pthread_cond_t tick; /* broadcast after every refresh, and on stop (CLOCK_MONOTONIC) */
    pthread_cond_t wake; /* wakes the reader: stop or refresh_now */
    struct tl_serve_snapshot *snap;
    bool stop;
    bool refresh_now;
    /* serve's own counters, under mu */
    uint64_t refreshes;     /* times the store was read (each: list, lines, trail) */
    uint64_t store_calls;   /* calls to the store's read functions */
    uint64_t store_errors;  /* refreshes that failed */
    uint64_t history_gaps;  /* refreshes that found the last event seen gone from the window */
    double refresh_seconds; /* duration of the last refresh */
    uint64_t sse_clients;   /* event streams open now */
    uint64_t requests[TL_ROUTE_COUNT][TL_SERVE_CODES];

    struct tl_serve_reader *reader;
    pthread_t thread;
    bool thread_started;
    struct MHD_Daemon *daemon;
};

/* serve_state.c */
int tl_serve_state_init(struct tl_serve *s);  /* first refresh, on the calling thread */
int tl_serve_state_start(struct tl_serve *s); /* the reader thread */
void tl_serve_state_stop(struct tl_serve *s); /* stops and joins it; wakes every waiter */
void tl_serve_state_fini(struct tl_serve *s);
/* The current snapshot, with a reference the caller drops with tl_serve_snapshot_put(). */
struct tl_serve_snapshot *tl_serve_snapshot_get(struct tl_serve *s);
void tl_serve_snapshot_put(struct tl_serve *s, struct tl_serve_snapshot *snap);
/* Asks the reader to read the store now (after an admin action). */
void tl_serve_refresh_now(struct tl_serve *s);

/* serve_prom.c */
/* The key prefix that labels a key's events: the text before the first ':' or '/', "none"
 * when there is neither, "other" when longer than TL_SERVE_PREFIX_MAX bytes. In `buf`. */
const char *tl_serve_key_prefix(const char *key, char *buf, size_t size);
/* Appends `value` escaped as a Prometheus label value (backslash, quote, newline). */
void tl_serve_prom_label(struct tl_serve_buf *b, const char *value);
/* Appends the gauges and counters of serve itself (under s->mu). */
void tl_serve_prom_self(struct tl_serve *s, struct tl_serve_buf *b);

/* serve_http.c */
int tl_serve_http_start(struct tl_serve *s, int listen_fd);
void tl_serve_http_stop(struct tl_serve *s);

/* serve_page.c (generated from cli/serve_page.*) */
extern const char *const tl_serve_page_html, *const tl_serve_page_css, *const tl_serve_page_js;
extern const size_t tl_serve_page_html_len, tl_serve_page_css_len, tl_serve_page_js_len;

#endif /* TL_CLI_SERVE_H */
