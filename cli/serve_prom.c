/*
 * serve_prom.c -- text building for `tasklock serve`: a growable buffer, the Prometheus text
 * exposition (format 0.0.4) of serve's own counters, label values and the bounded key prefix.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

const unsigned tl_serve_codes[TL_SERVE_CODES] = {200, 400, 401, 403, 404, 405, 409, 413, 500, 503};
const char *const tl_serve_route_names[TL_ROUTE_COUNT] = {
    [TL_ROUTE_PAGE] = "/",
    [TL_ROUTE_CSS] = "/app.css",
    [TL_ROUTE_JS] = "/app.js",
    [TL_ROUTE_LOCKS] = "/api/locks",
    [TL_ROUTE_LOCK] = "/api/locks/{key}",
    [TL_ROUTE_RELEASE] = "/api/locks/{key}/release",
    [TL_ROUTE_HISTORY] = "/api/history",
    [TL_ROUTE_API_METRICS] = "/api/metrics",
    [TL_ROUTE_EVENTS] = "/api/events",
    [TL_ROUTE_METRICS] = "/metrics",
    [TL_ROUTE_OTHER] = "other",
};

void tl_serve_buf_add(struct tl_serve_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 1024;

        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void tl_serve_buf_puts(struct tl_serve_buf *b, const char *s)
{
    tl_serve_buf_add(b, s, strlen(s));
}

void tl_serve_buf_printf(struct tl_serve_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;

    va_start(ap, fmt);
    int n =
        vsnprintf(small, sizeof(small), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        tl_serve_buf_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(big, (size_t)n + 1, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    tl_serve_buf_add(b, big, (size_t)n);
    free(big);
}

void tl_serve_buf_json(struct tl_serve_buf *b, json_t *doc)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    if (text == NULL) {
        b->failed = true;
        return;
    }
    tl_serve_buf_puts(b, text);
    free(text);
}

char *tl_serve_buf_take(struct tl_serve_buf *b)
{
    char *text = b->failed ? NULL : b->data;

    if (b->failed)
        free(b->data);
    if (text == NULL && !b->failed)
        text = strdup("");
    *b = (struct tl_serve_buf){0};
    return text;
}

const char *tl_serve_key_prefix(const char *key, char *buf, size_t size)
{
    size_t n = strcspn(key, ":/");

    if (key[n] == '\0')
        return "none";
    if (n > TL_SERVE_PREFIX_MAX || n >= size)
        return "other";
    memcpy(buf, key, n);
    buf[n] = '\0';
    return buf;
}

void tl_serve_prom_label(struct tl_serve_buf *b, const char *value)
{
    tl_serve_buf_puts(b, "\"");
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\\')
            tl_serve_buf_puts(b, "\\\\");
        else if (*p == '"')
            tl_serve_buf_puts(b, "\\\"");
        else if (*p == '\n')
            tl_serve_buf_puts(b, "\\n");
        else
            tl_serve_buf_add(b, p, 1);
    }
    tl_serve_buf_puts(b, "\"");
}

void tl_serve_prom_self(struct tl_serve *s, struct tl_serve_buf *b)
{
    (void)pthread_mutex_lock(&s->mu);
    tl_serve_buf_printf(
        b,
        "# HELP tasklock_serve_store_reads_total Times serve read the store (one refresh: the "
        "locks, their lines, the trail), for every client at once.\n"
        "# TYPE tasklock_serve_store_reads_total counter\n"
        "tasklock_serve_store_reads_total %llu\n"
        "# HELP tasklock_serve_store_calls_total Calls to the store's read functions.\n"
        "# TYPE tasklock_serve_store_calls_total counter\n"
        "tasklock_serve_store_calls_total %llu\n"
        "# HELP tasklock_serve_store_errors_total Refreshes that failed to read the store.\n"
        "# TYPE tasklock_serve_store_errors_total counter\n"
        "tasklock_serve_store_errors_total %llu\n"
        "# HELP tasklock_serve_history_gaps_total Refreshes after which audit-trail events may "
        "have gone uncounted.\n"
        "# TYPE tasklock_serve_history_gaps_total counter\n"
        "tasklock_serve_history_gaps_total %llu\n"
        "# HELP tasklock_serve_refresh_duration_seconds How long the last refresh took.\n"
        "# TYPE tasklock_serve_refresh_duration_seconds gauge\n"
        "tasklock_serve_refresh_duration_seconds %.6f\n"
        "# HELP tasklock_serve_sse_clients Event streams (live pages) open now.\n"
        "# TYPE tasklock_serve_sse_clients gauge\n"
        "tasklock_serve_sse_clients %llu\n"
        "# HELP tasklock_serve_requests_total HTTP requests answered, by route and status.\n"
        "# TYPE tasklock_serve_requests_total counter\n",
        (unsigned long long)s->refreshes, (unsigned long long)s->store_calls,
        (unsigned long long)s->store_errors, (unsigned long long)s->history_gaps,
        s->refresh_seconds, (unsigned long long)s->sse_clients);
    for (int r = 0; r < TL_ROUTE_COUNT; r++) {
        for (int c = 0; c < TL_SERVE_CODES; c++) {
            if (s->requests[r][c] == 0)
                continue;
            tl_serve_buf_printf(b, "tasklock_serve_requests_total{route=\"%s\",code=\"%u\"} %llu\n",
                                tl_serve_route_names[r], tl_serve_codes[c],
                                (unsigned long long)s->requests[r][c]);
        }
    }
    (void)pthread_mutex_unlock(&s->mu);
}
