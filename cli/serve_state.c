/*
 * serve_state.c -- the one reader of `tasklock serve`: reads the store once per refresh interval
 * for every client (never once per client), and publishes what it read as an immutable,
 * reference-counted snapshot that the HTTP threads serve from.
 *
 * Each refresh: tl_list(), tl_waiters() of every key with someone waiting, and the audit trail
 * read incrementally: the last event seen is remembered and only the events after it are
 * counted, so that the counters only grow (Prometheus `_total`). When the last event seen is no
 * longer in the window read (more events than the window since the last refresh), the window is
 * widened (100, 1000, 10000 events); failing that, everything in it counts as new and the gap is
 * counted (tasklock_serve_history_gaps_total). Counters start at 0 when serve starts; the trail
 * already there seeds the feed and the per-minute chart only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"
#include "shapes.h"

enum { MINUTES = 60 };
static const size_t windows[] = {100, 1000, 10000};

struct seen {
    bool any;
    int64_t at_ms;
    int kind;
    uint64_t token;
    char *key;
    char *worker;
};

/* The texts of one held lock, kept from one refresh to the next while its record is the same
 * (most are: 1,000 locks heartbeated every 30 s change about 33 a second). */
struct cached {
    char *key;
    uint64_t token;
    int64_t heartbeat_at_ms;
    uint32_t lock_timeout_ms, waiting;
    bool stale;
    char *item;   /* its `tasklock list --json` entry */
    char *page;   /* the entry with "waiters", for the page */
    char *status; /* its `tasklock status KEY --json` document */
};

struct tl_serve_reader {
    /* the last good read of the locks */
    struct tl_info **infos;
    size_t n;
    struct tl_waiter ***ws; /* per lock: its line (NULL when nobody waits) */
    size_t *nws;
    bool has_line, has_history, ok;
    char error[512];
    int64_t last_ok_ms;
    /* the trail */
    bool primed;
    struct seen last;
    struct tl_serve_event *ring[TL_SERVE_EVENTS]; /* oldest first */
    size_t nring;
    char prefix[TL_SERVE_PREFIXES][TL_SERVE_PREFIX_MAX + 1];
    size_t nprefix;
    uint64_t counts[TL_SERVE_PREFIXES + 1][TL_SERVE_KINDS]; /* the last row: "other" */
    uint64_t totals[TL_SERVE_KINDS];
    struct {
        int64_t minute;
        uint64_t n;
    } minutes[MINUTES];
    /* One per r->infos, in its order: by key, which is strcmp order on SQLite and Redis; on a
     * store that collates otherwise the lookups (bsearch) miss more, and texts are rebuilt. */
    struct cached *cache;
    size_t ncache;
    char *last_state;
    uint64_t generation;
    uint64_t calls; /* store calls of the refresh under way */
};

static const char *const kind_names[TL_SERVE_KINDS] = {"acquired", "released", "stolen", "forced",
                                                       "lost"};

void tl_serve_event_unref(struct tl_serve_event *e)
{
    if (e == NULL || __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(e->key);
    free(e->text);
    free(e);
}

static struct tl_serve_event *event_new(const struct tl_event *ev)
{
    struct tl_serve_event *e = calloc(1, sizeof(*e));
    json_t *doc = tl_cli_event_json(ev);

    if (e == NULL || doc == NULL)
        goto err;
    e->refs = 1;
    e->at_ms = ev->at_ms;
    e->kind = (int)ev->kind;
    e->key = strdup(ev->key);
    e->text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    doc = NULL;
    if (e->key == NULL || e->text == NULL)
        goto err;
    return e;
err:
    json_decref(doc);
    if (e != NULL)
        e->refs = 1;
    tl_serve_event_unref(e);
    return NULL;
}

static void free_lines(struct tl_waiter ***ws, size_t *nws, size_t n)
{
    for (size_t i = 0; ws != NULL && i < n; i++)
        tl_waiter_array_free(ws[i], nws[i]);
    free(ws);
    free(nws);
}

static void snapshot_free(struct tl_serve_snapshot *snap)
{
    if (snap == NULL)
        return;
    free(snap->locks);
    for (size_t i = 0; i < snap->nlock; i++) {
        free(snap->lock[i].key);
        free(snap->lock[i].status);
    }
    free(snap->lock);
    for (size_t i = 0; i < snap->nevents; i++)
        tl_serve_event_unref(snap->events[i]);
    free(snap->events);
    free(snap->metrics);
    free(snap->prom);
    free(snap->state);
    free(snap);
}

struct tl_serve_snapshot *tl_serve_snapshot_get(struct tl_serve *s)
{
    (void)pthread_mutex_lock(&s->mu);
    struct tl_serve_snapshot *snap = s->snap;
    if (snap != NULL)
        snap->refs++;
    (void)pthread_mutex_unlock(&s->mu);
    return snap;
}

void tl_serve_snapshot_put(struct tl_serve *s, struct tl_serve_snapshot *snap)
{
    if (snap == NULL)
        return;
    (void)pthread_mutex_lock(&s->mu);
    bool last = --snap->refs == 0;
    (void)pthread_mutex_unlock(&s->mu);
    if (last)
        snapshot_free(snap);
}

void tl_serve_refresh_now(struct tl_serve *s)
{
    (void)pthread_mutex_lock(&s->mu);
    s->refresh_now = true;
    (void)pthread_cond_signal(&s->wake);
    (void)pthread_mutex_unlock(&s->mu);
}

/* ---- the audit trail ---- */

static bool same_event(const struct seen *a, const struct tl_event *e)
{
    return a->any && a->at_ms == e->at_ms && a->kind == (int)e->kind && a->token == e->token &&
           strcmp(a->key, e->key) == 0 && strcmp(a->worker, e->worker_id) == 0;
}

static void remember(struct seen *a, const struct tl_event *e)
{
    char *key = strdup(e->key), *worker = strdup(e->worker_id);

    if (key == NULL || worker == NULL) { /* keep the old one: events may count twice */
        free(key);
        free(worker);
        return;
    }
    free(a->key);
    free(a->worker);
    *a = (struct seen){.any = true,
                       .at_ms = e->at_ms,
                       .kind = (int)e->kind,
                       .token = e->token,
                       .key = key,
                       .worker = worker};
}

static size_t prefix_slot(struct tl_serve_reader *r, const char *key)
{
    char buf[TL_SERVE_PREFIX_MAX + 8];
    const char *p = tl_serve_key_prefix(key, buf, sizeof(buf));

    for (size_t i = 0; i < r->nprefix; i++) {
        if (strcmp(r->prefix[i], p) == 0)
            return i;
    }
    if (r->nprefix == TL_SERVE_PREFIXES || strcmp(p, "other") == 0)
        return TL_SERVE_PREFIXES;
    (void)snprintf(r->prefix[r->nprefix], sizeof(r->prefix[0]), "%s", p);
    return r->nprefix++;
}

static bool is_acquisition(int kind)
{
    return kind == TL_EVENT_ACQUIRED || kind == TL_EVENT_STOLEN || kind == TL_EVENT_FORCED;
}

static void chart_add(struct tl_serve_reader *r, int64_t at_ms)
{
    int64_t minute = at_ms / 60000;
    size_t i = (size_t)(minute % MINUTES);

    if (r->minutes[i].minute != minute) {
        r->minutes[i].minute = minute;
        r->minutes[i].n = 0;
    }
    r->minutes[i].n++;
}

/* Takes in one event: the feed, the chart, and (`count`) the counters. */
static void take_event(struct tl_serve_reader *r, const struct tl_event *e, bool count)
{
    int k = (int)e->kind - 1;

    if (count && k >= 0 && k < TL_SERVE_KINDS) {
        r->counts[prefix_slot(r, e->key)][k]++;
        r->totals[k]++;
    }
    if (is_acquisition((int)e->kind))
        chart_add(r, e->at_ms);
    struct tl_serve_event *se = event_new(e);
    if (se == NULL)
        return;
    if (r->nring == TL_SERVE_EVENTS) {
        tl_serve_event_unref(r->ring[0]);
        memmove(r->ring, r->ring + 1, (TL_SERVE_EVENTS - 1) * sizeof(struct tl_serve_event *));
        r->nring--;
    }
    r->ring[r->nring++] = se;
}

/* Reads the new events of the trail. Returns TL_OK, or the status of a failed read. */
static tl_status read_trail(struct tl_serve *s, struct tl_serve_reader *r, uint64_t *gaps)
{
    struct tl_event **ev = NULL;
    size_t n = 0;
    tl_status st = TL_OK;

    if (!r->has_history)
        return TL_OK;
    for (size_t w = r->primed ? 0 : 1; w < sizeof(windows) / sizeof(windows[0]); w++) {
        tl_event_array_free(ev, n);
        ev = NULL;
        n = 0;
        r->calls++;
        st = tl_history(s->m, NULL, windows[w], &ev, &n);
        if (st == TL_ENOTSUP) {
            r->has_history = false;
            return TL_OK;
        }
        if (st != TL_OK)
            return st;
        if (!r->primed || n < windows[w])
            break; /* the whole trail (or the first read) */
        bool found = false;
        for (size_t i = n; i-- > 0 && !found;)
            found = same_event(&r->last, ev[i]);
        if (found || !r->last.any)
            break;
    }

    size_t from = 0;
    if (r->primed && r->last.any) {
        size_t i = n;
        while (i-- > 0 && !same_event(&r->last, ev[i]))
            ;
        if (i < n) {
            from = i + 1;
        } else {
            /* Gone from the window: the events after its time are new. If the window holds
             * nothing as old, events may have been missed. */
            bool older = false;
            for (size_t j = 0; j < n; j++)
                older = older || ev[j]->at_ms <= r->last.at_ms;
            while (from < n && older && ev[from]->at_ms <= r->last.at_ms)
                from++;
            if (!older && n > 0)
                (*gaps)++;
        }
    }
    for (size_t i = from; i < n; i++)
        take_event(r, ev[i], r->primed);
    if (n > 0)
        remember(&r->last, ev[n - 1]);
    r->primed = true;
    tl_event_array_free(ev, n);
    return TL_OK;
}

/* ---- the locks ---- */

static tl_status read_locks(struct tl_serve *s, struct tl_serve_reader *r)
{
    struct tl_info **infos = NULL;
    size_t n = 0;

    r->calls++;
    tl_status st = tl_list(s->m, &infos, &n);
    if (st != TL_OK)
        return st;
    struct tl_waiter ***ws = calloc(n + 1, sizeof(*ws));
    size_t *nws = calloc(n + 1, sizeof(*nws));
    if (ws == NULL || nws == NULL) {
        st = TL_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && r->has_line; i++) {
        if (infos[i]->waiting == 0)
            continue;
        r->calls++;
        st = tl_waiters(s->m, infos[i]->key, &ws[i], &nws[i]);
        if (st == TL_ENOTSUP)
            r->has_line = false;
        else if (st != TL_OK)
            goto out;
    }
    free_lines(r->ws, r->nws, r->n);
    tl_info_array_free(r->infos, r->n);
    r->infos = infos;
    r->n = n;
    r->ws = ws;
    r->nws = nws;
    return TL_OK;
out:
    free_lines(ws, nws, n);
    tl_info_array_free(infos, n);
    return st;
}

/* ---- the snapshot ---- */

static json_t *kinds_json(const uint64_t counts[TL_SERVE_KINDS])
{
    json_t *o = json_object();

    for (int k = 0; o != NULL && k < TL_SERVE_KINDS; k++) {
        if (json_object_set_new(o, kind_names[k], json_integer((json_int_t)counts[k])) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

struct gauges {
    size_t held, stale, waiters;
    double oldest_beat_s;
};

static struct gauges gauges_of(const struct tl_serve_reader *r, int64_t now)
{
    struct gauges g = {.held = r->n};

    for (size_t i = 0; i < r->n; i++) {
        const struct tl_info *info = r->infos[i];
        int64_t at = info->observed_at_ms != 0 ? info->observed_at_ms : now;
        double age = (double)(at - info->heartbeat_at_ms) / 1000.0;

        g.stale += info->stale;
        g.waiters += info->waiting;
        if (age > g.oldest_beat_s)
            g.oldest_beat_s = age;
    }
    return g;
}

static void cached_free(struct cached *c)
{
    free(c->key);
    free(c->item);
    free(c->page);
    free(c->status);
}

static int cmp_cached(const void *key, const void *elem)
{
    return strcmp(key, ((const struct cached *)elem)->key);
}

static char *dump(json_t *doc) /* steals doc */
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    return text;
}

/* Builds the texts of lock i (or takes them from the last refresh's). */
static bool cache_fill(struct tl_serve_reader *r, struct cached *old, size_t nold, struct cached *c,
                       size_t i)
{
    const struct tl_info *info = r->infos[i];
    struct cached *o = nold > 0 ? bsearch(info->key, old, nold, sizeof(*old), cmp_cached) : NULL;

    *c = (struct cached){.token = info->token,
                         .heartbeat_at_ms = info->heartbeat_at_ms,
                         .lock_timeout_ms = info->lock_timeout_ms,
                         .waiting = info->waiting,
                         .stale = info->stale};
    if (o != NULL && o->item != NULL && o->token == c->token &&
        o->heartbeat_at_ms == c->heartbeat_at_ms && o->lock_timeout_ms == c->lock_timeout_ms &&
        o->waiting == 0 && c->waiting == 0 && o->stale == c->stale) {
        /* The texts move; the old key stays, for the lookups of the other locks. */
        c->key = strdup(info->key);
        c->item = o->item;
        c->page = o->page;
        c->status = o->status;
        o->item = o->page = o->status = NULL;
        return c->key != NULL;
    }
    json_t *item = tl_cli_list_item_json(info);
    json_t *line = tl_cli_waiters_json(r->ws[i], r->nws[i]);

    c->key = strdup(info->key);
    c->item = item != NULL ? json_dumps(item, JSON_COMPACT) : NULL;
    /* A key held shared is listed once per holder, next to each other (by key, then token). */
    size_t first = i, last = i;
    while (first > 0 && strcmp(r->infos[first - 1]->key, info->key) == 0)
        first--;
    while (last + 1 < r->n && strcmp(r->infos[last + 1]->key, info->key) == 0)
        last++;
    c->status = dump(tl_cli_status_json(info->key, info, &r->infos[first], last - first + 1,
                                        r->ws[i], r->nws[i], r->has_line));
    if (item != NULL && line != NULL && json_object_set_new(item, "waiters", line) == 0)
        c->page = dump(item);
    else
        json_decref(item);
    return c->key != NULL && c->item != NULL && c->page != NULL && c->status != NULL;
}

/* Brings the cache in line with r->infos. */
static bool cache_update(struct tl_serve_reader *r)
{
    struct cached *fresh = calloc(r->n + 1, sizeof(*fresh));
    bool ok = fresh != NULL;

    for (size_t i = 0; ok && i < r->n; i++)
        ok = cache_fill(r, r->cache, r->ncache, &fresh[i], i);
    for (size_t i = 0; i < r->ncache; i++)
        cached_free(&r->cache[i]);
    free(r->cache);
    r->cache = fresh;
    r->ncache = ok ? r->n : 0;
    if (!ok && fresh != NULL) {
        for (size_t i = 0; i < r->n; i++)
            cached_free(&fresh[i]);
    }
    return ok;
}

static void add_locks_page(struct tl_serve_buf *b, const struct tl_serve_reader *r)
{
    tl_serve_buf_puts(b, "[");
    for (size_t i = 0; i < r->ncache; i++) {
        if (i > 0)
            tl_serve_buf_puts(b, ",");
        tl_serve_buf_puts(b, r->cache[i].page);
    }
    tl_serve_buf_puts(b, "]");
}

static char *page_state(struct tl_serve *s, const struct tl_serve_reader *r, int64_t now)
{
    struct tl_serve_buf b = {0};
    char last_ok[48];
    struct gauges g = gauges_of(r, now);

    tl_cli_format_time(r->last_ok_ms, true, last_ok, sizeof(last_ok));
    tl_serve_buf_json(&b, json_pack("{s:s, s:b, s:s?, s:s?, s:I, s:b, s:b, s:b}", "store",
                                    s->store_shown, "store_ok", r->ok, "store_error",
                                    r->ok ? NULL : r->error, "last_ok",
                                    !r->ok && r->last_ok_ms != 0 ? last_ok : NULL, "refresh_ms",
                                    (json_int_t)s->refresh_ms, "admin", s->admin_enabled,
                                    "has_line", r->has_line, "has_history", r->has_history));
    if (b.len > 0)
        b.len--; /* reopen the object */
    tl_serve_buf_puts(&b, ",\"locks\":");
    add_locks_page(&b, r);
    tl_serve_buf_puts(&b, ",\"events\":[");
    size_t from = r->nring > TL_SERVE_FEED ? r->nring - TL_SERVE_FEED : 0;
    for (size_t i = from; i < r->nring; i++) {
        if (i > from)
            tl_serve_buf_puts(&b, ",");
        tl_serve_buf_puts(&b, r->ring[i]->text);
    }
    tl_serve_buf_puts(&b, "],\"counters\":");
    tl_serve_buf_json(&b, kinds_json(r->totals));
    tl_serve_buf_printf(&b, ",\"gauges\":{\"locks_held\":%zu,\"locks_stale\":%zu,\"waiters\":%zu}",
                        g.held, g.stale, g.waiters);
    int64_t minute = now / 60000;
    tl_serve_buf_printf(&b, ",\"per_minute\":{\"last_minute\":%lld,\"acquisitions\":[",
                        (long long)minute);
    for (int64_t m = minute - MINUTES + 1; m <= minute; m++) {
        size_t i = (size_t)(m % MINUTES);
        uint64_t v = r->minutes[i].minute == m ? r->minutes[i].n : 0;
        tl_serve_buf_printf(&b, "%s%llu", m > minute - MINUTES + 1 ? "," : "",
                            (unsigned long long)v);
    }
    tl_serve_buf_puts(&b, "]}}");
    return tl_serve_buf_take(&b);
}

static char *metrics_json(struct tl_serve *s, const struct tl_serve_reader *r, int64_t now)
{
    struct gauges g = gauges_of(r, now);
    json_t *by = json_object();

    for (size_t i = 0; by != NULL && i <= r->nprefix; i++) {
        const char *name = i < r->nprefix ? r->prefix[i] : "other";
        size_t row = i < r->nprefix ? i : TL_SERVE_PREFIXES;
        uint64_t sum = 0;

        for (int k = 0; k < TL_SERVE_KINDS; k++)
            sum += r->counts[row][k];
        if (sum > 0 && json_object_set_new(by, name, kinds_json(r->counts[row])) != 0) {
            json_decref(by);
            by = NULL;
        }
    }
    json_t *doc =
        by == NULL ? NULL
                   : json_pack("{s:s, s:b, s:I, s:I, s:I, s:f, s:o, s:o}", "store", s->store_shown,
                               "store_ok", r->ok, "locks_held", (json_int_t)g.held, "locks_stale",
                               (json_int_t)g.stale, "waiters", (json_int_t)g.waiters,
                               "oldest_heartbeat_age_seconds", g.oldest_beat_s, "events_total",
                               kinds_json(r->totals), "events_by_prefix", by);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

static void prom_gauge(struct tl_serve_buf *b, const char *store, const char *name,
                       const char *help, double v)
{
    tl_serve_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s{store=", name, help, name, name);
    tl_serve_prom_label(b, store);
    tl_serve_buf_printf(b, "} %.6g\n", v);
}

static char *prom_store(struct tl_serve *s, const struct tl_serve_reader *r, int64_t now)
{
    struct tl_serve_buf b = {0};
    struct gauges g = gauges_of(r, now);

    prom_gauge(&b, s->store_shown, "tasklock_store_up",
               "Whether the last read of the store succeeded (1) or failed (0).", r->ok);
    prom_gauge(&b, s->store_shown, "tasklock_locks_held",
               "Locks held in the store at the last good read, stale ones included.",
               (double)g.held);
    prom_gauge(&b, s->store_shown, "tasklock_locks_stale",
               "Held locks whose last heartbeat is older than their lock timeout.",
               (double)g.stale);
    prom_gauge(&b, s->store_shown, "tasklock_waiters",
               "Live waiters in the keys' lines, summed over the held keys.", (double)g.waiters);
    prom_gauge(&b, s->store_shown, "tasklock_oldest_heartbeat_age_seconds",
               "Age of the oldest last heartbeat among the held locks (0 when none is held).",
               g.oldest_beat_s);
    if (r->has_history)
        tl_serve_buf_puts(&b, "# HELP tasklock_events_total Audit-trail events seen since serve "
                              "started, by key prefix (text before the first ':' or '/') and "
                              "kind.\n# TYPE tasklock_events_total counter\n");
    for (size_t i = 0; r->has_history && i <= r->nprefix; i++) {
        const char *name = i < r->nprefix ? r->prefix[i] : "other";
        size_t row = i < r->nprefix ? i : TL_SERVE_PREFIXES;
        uint64_t sum = 0;

        for (int k = 0; k < TL_SERVE_KINDS; k++)
            sum += r->counts[row][k];
        for (int k = 0; sum > 0 && k < TL_SERVE_KINDS; k++) {
            tl_serve_buf_puts(&b, "tasklock_events_total{store=");
            tl_serve_prom_label(&b, s->store_shown);
            tl_serve_buf_puts(&b, ",prefix=");
            tl_serve_prom_label(&b, name);
            tl_serve_buf_printf(&b, ",event=\"%s\"} %llu\n", kind_names[k],
                                (unsigned long long)r->counts[row][k]);
        }
    }
    return tl_serve_buf_take(&b);
}

static int cmp_lock(const void *a, const void *b)
{
    return strcmp(((const struct tl_serve_lock *)a)->key, ((const struct tl_serve_lock *)b)->key);
}

static struct tl_serve_snapshot *snapshot_build(struct tl_serve *s, struct tl_serve_reader *r)
{
    int64_t now = tl_cli_now_ms();
    struct tl_serve_snapshot *snap = calloc(1, sizeof(*snap));

    if (snap == NULL)
        return NULL;
    snap->refs = 1;
    snap->store_ok = r->ok;
    snap->has_line = r->has_line;
    if (!cache_update(r))
        goto err;
    struct tl_serve_buf lb = {0};
    tl_serve_buf_puts(&lb, "{\"locks\":[");
    for (size_t i = 0; i < r->ncache; i++) {
        tl_serve_buf_puts(&lb, i > 0 ? "," : "");
        tl_serve_buf_puts(&lb, r->cache[i].item);
    }
    tl_serve_buf_puts(&lb, "]}");
    snap->locks = tl_serve_buf_take(&lb);
    snap->lock = calloc(r->ncache + 1, sizeof(*snap->lock));
    snap->events = calloc(r->nring + 1, sizeof(struct tl_serve_event *));
    if (snap->locks == NULL || snap->lock == NULL || snap->events == NULL)
        goto err;
    for (size_t i = 0; i < r->ncache; i++) {
        snap->lock[i].key = strdup(r->cache[i].key);
        snap->lock[i].status = strdup(r->cache[i].status);
        snap->nlock++;
        if (snap->lock[i].key == NULL || snap->lock[i].status == NULL)
            goto err;
    }
    qsort(snap->lock, snap->nlock, sizeof(*snap->lock), cmp_lock);
    for (size_t i = 0; i < r->nring; i++) {
        __atomic_add_fetch(&r->ring[i]->refs, 1, __ATOMIC_RELAXED);
        snap->events[snap->nevents++] = r->ring[i];
    }
    snap->metrics = metrics_json(s, r, now);
    snap->prom = prom_store(s, r, now);
    snap->state = page_state(s, r, now);
    if (snap->metrics == NULL || snap->prom == NULL || snap->state == NULL)
        goto err;
    if (r->last_state == NULL || strcmp(r->last_state, snap->state) != 0) {
        r->generation++;
        free(r->last_state);
        r->last_state = strdup(snap->state);
    }
    snap->generation = r->generation;
    return snap;
err:
    snapshot_free(snap);
    return NULL;
}

/* One refresh: reads the store, publishes a snapshot, wakes the event streams. */
static void refresh(struct tl_serve *s)
{
    struct tl_serve_reader *r = s->reader;
    struct timespec t0, t1;
    uint64_t gaps = 0;

    (void)clock_gettime(CLOCK_MONOTONIC, &t0);

    r->calls = 0;
    tl_status st = read_locks(s, r);
    if (st == TL_OK)
        st = read_trail(s, r, &gaps);
    r->ok = st == TL_OK;
    if (r->ok) {
        r->last_ok_ms = tl_cli_now_ms();
        r->error[0] = '\0';
    } else {
        (void)snprintf(r->error, sizeof(r->error), "%s",
                       st == TL_ENOMEM ? "out of memory" : tl_errmsg(s->m));
        tl_cli_info(s->cli, "reading the store failed: %s", r->error);
    }
    struct tl_serve_snapshot *snap = snapshot_build(s, r);
    (void)clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    (void)pthread_mutex_lock(&s->mu);
    struct tl_serve_snapshot *old = NULL;
    if (snap != NULL) {
        old = s->snap;
        s->snap = snap;
    }
    s->refreshes++;
    s->store_calls += r->calls;
    s->store_errors += !r->ok;
    s->history_gaps += gaps;
    s->refresh_seconds = took;
    (void)pthread_cond_broadcast(&s->tick);
    (void)pthread_mutex_unlock(&s->mu);
    tl_serve_snapshot_put(s, old);
}

static void *reader_main(void *arg)
{
    struct tl_serve *s = arg;
    struct timespec due;

    (void)clock_gettime(CLOCK_MONOTONIC, &due);
    (void)pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        due.tv_sec += s->refresh_ms / 1000;
        due.tv_nsec += (long)(s->refresh_ms % 1000) * 1000000L;
        if (due.tv_nsec >= 1000000000L) {
            due.tv_sec++;
            due.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!s->stop && !s->refresh_now && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&s->wake, &s->mu, &due);
        if (s->stop)
            break;
        if (s->refresh_now)
            (void)clock_gettime(CLOCK_MONOTONIC, &due); /* the next one an interval later */
        s->refresh_now = false;
        (void)pthread_mutex_unlock(&s->mu);
        refresh(s);
        (void)pthread_mutex_lock(&s->mu);
    }
    (void)pthread_mutex_unlock(&s->mu);
    return NULL;
}

int tl_serve_state_init(struct tl_serve *s)
{
    pthread_condattr_t attr;

    s->reader = calloc(1, sizeof(*s->reader));
    if (s->reader == NULL)
        return -1;
    s->reader->has_line = true;
    s->reader->has_history = true;
    (void)pthread_mutex_init(&s->mu, NULL);
    (void)pthread_mutex_init(&s->admin_mu, NULL);
    (void)pthread_condattr_init(&attr);
    (void)pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    (void)pthread_cond_init(&s->tick, &attr);
    (void)pthread_cond_init(&s->wake, &attr);
    (void)pthread_condattr_destroy(&attr);
    refresh(s);
    return s->snap != NULL ? 0 : -1;
}

int tl_serve_state_start(struct tl_serve *s)
{
    int rc = pthread_create(&s->thread, NULL, reader_main, s);

    s->thread_started = rc == 0;
    return rc;
}

void tl_serve_state_stop(struct tl_serve *s)
{
    (void)pthread_mutex_lock(&s->mu);
    s->stop = true;
    (void)pthread_cond_broadcast(&s->wake);
    (void)pthread_cond_broadcast(&s->tick);
    (void)pthread_mutex_unlock(&s->mu);
    if (s->thread_started)
        (void)pthread_join(s->thread, NULL);
    s->thread_started = false;
}

void tl_serve_state_fini(struct tl_serve *s)
{
    struct tl_serve_reader *r = s->reader;

    if (r == NULL)
        return;
    tl_serve_snapshot_put(s, s->snap);
    s->snap = NULL;
    free_lines(r->ws, r->nws, r->n);
    tl_info_array_free(r->infos, r->n);
    for (size_t i = 0; i < r->nring; i++)
        tl_serve_event_unref(r->ring[i]);
    for (size_t i = 0; i < r->ncache; i++)
        cached_free(&r->cache[i]);
    free(r->cache);
    free(r->last.key);
    free(r->last.worker);
    free(r->last_state);
    free(r);
    s->reader = NULL;
    (void)pthread_cond_destroy(&s->tick);
    (void)pthread_cond_destroy(&s->wake);
    (void)pthread_mutex_destroy(&s->admin_mu);
    (void)pthread_mutex_destroy(&s->mu);
}
