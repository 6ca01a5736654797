/*
 * sqlite_next.c -- claim-next and done markers of the SQLite store (store.h, version 4;
 * DESIGN.md section 8).
 *
 * A done marker is a row of tl_done (key, worker, node, token, time, summary), in the same file
 * as the locks, so it lasts as they do. A claim-next is one BEGIN IMMEDIATE transaction: one
 * SELECT walks the candidates in order (a JSON array of the keys, read by json_each) with each
 * one's lock row, done marker and count of live waiters, and the first that a claim without a
 * waiter would win is written as sqlite_claim writes it (the token, the `acquired` or `stolen`
 * event). As with a claim, that SELECT first runs as a plain read, without the write lock: when
 * every candidate is held, queued or done, the answer comes from it, and pollers do not queue
 * behind the holders' writes. A finish is the release, the marker and (with a next claim) that
 * claim, all in one transaction: one commit, one fsync.
 *
 * wait_any polls, as sqlite_wait does (SQLite cannot notify another process): one read of all
 * the candidates, "is one of them free, not done and without live waiters, or is none of them
 * held or queued any more", every 2 ms at first, then less often, up to every 32 ms. The second
 * half ends the wait of a claimer in the tail of a queue when the last tasks are finished (then
 * nothing is free, but nothing is left either), as a release's message does on the other stores.
 */
#include <stdio.h>
#include <string.h>

#include "sqlite_int.h"
#include "store.h"
#include "tl.h"

static const char *const next_sql[NST_COUNT] = {
    /* Each candidate in order (?1: a JSON array of the keys): done, its lock (worker_id NULL or
     * no row: free; SHARED_SENTINEL: its shared holders), its live waiters at ?2, its shared
     * holders and the live ones among them. */
    [NST_SCAN] = "SELECT c.key, EXISTS (SELECT 1 FROM tl_done d WHERE d.key = c.value), l.token, "
                 "l.worker_id, l.heartbeat_at, l.lock_timeout_ms, (SELECT COUNT(*) FROM "
                 "tl_waiters w WHERE w.key = c.value AND w.heartbeat_at + w.timeout_ms > ?2), "
                 "(SELECT COUNT(*) FROM tl_shared s WHERE s.key = c.value), (SELECT COUNT(*) FROM "
                 "tl_shared s WHERE s.key = c.value AND s.heartbeat_at >= ?2 - s.lock_timeout_ms) "
                 "FROM json_each(?1) c LEFT JOIN tl_locks l ON l.key = c.value ORDER BY c.key",
    /* wait_any's poll: is a candidate free, not done, and without live waiters; or is none
     * held or queued any more (the last ones were finished: nothing is left to wait for). */
    [NST_ANY_FREE] = "SELECT EXISTS (SELECT 1 FROM json_each(?1) c LEFT JOIN tl_locks l ON l.key "
                     "= c.value WHERE l.worker_id IS NULL AND NOT EXISTS (SELECT 1 FROM tl_done "
                     "d WHERE d.key = c.value) AND NOT EXISTS (SELECT 1 FROM tl_waiters w WHERE "
                     "w.key = c.value AND w.heartbeat_at + w.timeout_ms > ?2)) OR NOT EXISTS "
                     "(SELECT 1 FROM json_each(?1) c LEFT JOIN tl_locks l ON l.key = c.value "
                     "WHERE l.worker_id IS NOT NULL OR EXISTS (SELECT 1 FROM tl_waiters w WHERE "
                     "w.key = c.value AND w.heartbeat_at + w.timeout_ms > ?2))",
    [NST_DONE_SET] = "INSERT OR REPLACE INTO tl_done(key, worker_id, node_id, token, done_at, "
                     "summary) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [NST_DONE_GET] = "SELECT worker_id, token FROM tl_done WHERE key = ?1",
    [NST_DONE_DELETE] = "DELETE FROM tl_done WHERE key = ?1",
    [NST_DONE_KEY] = "SELECT key, worker_id, node_id, token, done_at, summary FROM tl_done WHERE "
                     "key = ?1",
    [NST_DONE_ALL] = "SELECT key, worker_id, node_id, token, done_at, summary FROM tl_done ORDER "
                     "BY key",
};

int tl__sqlite_next_prepare(struct sqlite_store *ss)
{
    for (int i = 0; i < NST_COUNT; i++) {
        int rc = sqlite3_prepare_v3(ss->db, next_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &ss->next_stmt[i], NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

void tl__sqlite_next_finalize(struct sqlite_store *ss)
{
    for (int i = 0; i < NST_COUNT; i++) {
        sqlite3_finalize(ss->next_stmt[i]);
        ss->next_stmt[i] = NULL;
    }
}

static int64_t now_ms(struct tl_store *s)
{
    return s->clock->now_ms(s->clock->ud);
}

static char *column_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    return t ? tl__strdup((const char *)t) : NULL;
}

/* The candidates as a JSON array of strings, for json_each; NULL: out of memory. */
static char *keys_json(const struct tl_candidates *c)
{
    size_t len = 3;

    for (size_t i = 0; i < c->nkeys; i++)
        len += 3 + 6 * strlen(c->keys[i]);
    char *out = tl__malloc(len);
    if (out == NULL)
        return NULL;

    char *p = out;
    *p++ = '[';
    for (size_t i = 0; i < c->nkeys; i++) {
        if (i > 0)
            *p++ = ',';
        *p++ = '"';
        for (const unsigned char *k = (const unsigned char *)c->keys[i]; *k; k++) {
            if (*k == '"' || *k == '\\') {
                *p++ = '\\';
                *p++ = (char)*k;
            } else if (*k < 0x20) {
                p += snprintf(p, 7, "\\u%04x", *k);
            } else {
                *p++ = (char)*k;
            }
        }
        *p++ = '"';
    }
    *p++ = ']';
    *p = '\0';
    return out;
}

/* The candidate a scan found claimable. */
struct pick {
    bool found;
    size_t index;
    enum tl_verdict verdict;
    uint64_t last_token;        /* the key's last token (0: no row) */
    char holder[TL_ID_MAX + 1]; /* a stale holder's worker id, for the `stolen` event */
    bool shared_held;           /* its holders are (stale) shared ones: they go on a win */
};

/* Walks the candidates in order up to the first that a claim in `mode` without a waiter would
 * win; the tally counts the ones before it. */
static int scan(struct sqlite_store *ss, const char *json, enum tl_claim_mode mode, int64_t now,
                struct pick *p, struct tl_next_tally *tally, uint8_t *done_seen)
{
    sqlite3_stmt *st = ss->next_stmt[NST_SCAN];
    int rc;

    memset(p, 0, sizeof(*p));
    memset(tally, 0, sizeof(*tally));
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int(st, 1) != 0) {
            tally->done++;
            if (done_seen != NULL)
                done_seen[sqlite3_column_int64(st, 0)] = 1;
            continue;
        }
        bool held = sqlite3_column_type(st, 3) != SQLITE_NULL;
        int64_t beat = sqlite3_column_int64(st, 4), timeout = sqlite3_column_int64(st, 5);
        const unsigned char *w = sqlite3_column_text(st, 3);
        bool shared = w != NULL && strcmp((const char *)w, SHARED_SENTINEL) == 0;
        if (shared) {
            /* Held while it has shared holders, stale when none of them is live. */
            held = sqlite3_column_int64(st, 7) > 0;
            beat = sqlite3_column_int64(st, 8) > 0 ? now : INT64_MIN;
            timeout = 0;
        }
        enum tl_verdict v = tl__claim_verdict(held, beat, (uint32_t)timeout, mode, now);
        if (v == TL_VERDICT_BUSY) {
            tally->held++;
            continue;
        }
        if (sqlite3_column_int64(st, 6) > 0) {
            tally->queued++;
            continue;
        }
        p->found = true;
        p->index = (size_t)sqlite3_column_int64(st, 0);
        p->verdict = v;
        p->last_token = (uint64_t)sqlite3_column_int64(st, 2);
        p->shared_held = shared && held;
        if (held)
            (void)snprintf(p->holder, sizeof(p->holder), "%s", w ? (const char *)w : "");
        break;
    }
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_OK;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Takes `key` (the pick) for `req`, in the caller's transaction: its new token. */
static int take(struct sqlite_store *ss, const struct tl_claim *req, const char *key,
                const struct pick *p, int64_t now, uint64_t *token)
{
    sqlite3_stmt *st = ss->stmt[ST_UPSERT];
    char detail[400] = "";
    int rc = SQLITE_OK;

    /* Stale shared holders (a steal): they go, named in the event. */
    if (p->shared_held)
        rc = tl__sqlite_drop_shared(ss, key, detail, sizeof(detail));
    else if (p->verdict != TL_VERDICT_FREE)
        (void)snprintf(detail, sizeof(detail), "from %s (token %llu)", p->holder,
                       (unsigned long long)p->last_token);
    if (rc != SQLITE_OK)
        return rc;
    /* As sqlite_claim: from the last token, never below the wall clock in microseconds. */
    *token = p->last_token + 1;
    if (now > 0 && (uint64_t)now * 1000 > *token)
        *token = (uint64_t)now * 1000;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)*token);
    sqlite3_bind_text(st, 3, req->worker_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, req->node_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, req->lock_timeout_ms);
    sqlite3_bind_text(st, 7, req->task_info, -1, SQLITE_STATIC);
    rc = tl__sqlite_exec(ss, ST_UPSERT);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK)
        return rc;

    const struct tl_info who = {.key = (char *)key,
                                .worker_id = (char *)req->worker_id,
                                .node_id = (char *)req->node_id,
                                .token = *token};
    return tl__sqlite_add_history(
        ss, now, p->verdict == TL_VERDICT_STEAL ? TL_EVENT_STOLEN : TL_EVENT_ACQUIRED, &who,
        detail[0] ? detail : NULL);
}

/* A won claim's record, after the commit. */
static tl_status describe(struct tl_store *s, const struct tl_claim *req, const char *key,
                          const struct pick *p, int64_t now, uint64_t token,
                          struct tl_claim_result *out)
{
    struct tl_record *r = &out->rec;

    r->info.key = tl__strdup(key);
    r->info.worker_id = tl__strdup(req->worker_id);
    r->info.node_id = tl__strdup(req->node_id);
    r->info.task_info = tl__strdup(req->task_info);
    r->info.token = token;
    r->info.claimed_at_ms = r->info.heartbeat_at_ms = now;
    r->info.lock_timeout_ms = req->lock_timeout_ms;
    r->info.observed_at_ms = now;
    out->took_stale = p->verdict == TL_VERDICT_STEAL;
    if (!r->info.key || !r->info.worker_id || !r->info.node_id || !r->info.task_info) {
        /* Committed, but we cannot describe it: give it back so that it does not rot. */
        const struct tl_record held = {.info = {.key = (char *)key,
                                                .worker_id = (char *)req->worker_id,
                                                .node_id = (char *)req->node_id,
                                                .token = token}};
        (void)s->ops->release(s, &held, "out of memory after claiming");
        tl__record_clear(r);
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    return TL_OK;
}

static tl_status not_claimable(struct tl_store *s, const struct tl_candidates *c)
{
    if (c->keys == NULL)
        return tl__store_fail(s, TL_ENOTSUP, "the sqlite store has no labels; name the keys");
    return TL_OK;
}

tl_status tl__sqlite_claim_next(struct tl_store *s, const struct tl_claim *req,
                                const struct tl_candidates *c, struct tl_claim_result *out,
                                size_t *won, struct tl_next_tally *tally)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    struct pick p;
    uint64_t token = 0;
    tl_status ret;
    int rc;

    *won = SIZE_MAX;
    memset(tally, 0, sizeof(*tally));
    memset(out, 0, sizeof(*out));
    if ((ret = not_claimable(s, c)) != TL_OK)
        return ret;
    if (c->nkeys == 0)
        return TL_EBUSY;
    char *json = keys_json(c);
    if (json == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");

    /* A plain read first: nothing to win means no write lock. */
    int64_t now = now_ms(s);
    if ((rc = scan(ss, json, req->mode, now, &p, tally, c->done_seen)) != SQLITE_OK) {
        ret = tl__sqlite_fail(ss, rc, "reading the candidates");
        goto out;
    }
    if (!p.found) {
        ret = TL_EBUSY;
        goto out;
    }

    ss->busy_cut = false;
    ss->busy_fast = true;
    rc = tl__sqlite_exec(ss, ST_BEGIN);
    ss->busy_fast = false;
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_BUSY && ss->busy_cut) {
            /* As a claim: the write lock not coming free by the deadline is the candidate
             * not coming free in time. */
            tally->held++;
            ret = tl__store_fail(s, TL_EBUSY,
                                 "the database stayed locked by another connection until the "
                                 "deadline (%lld ms)",
                                 (long long)ss->busy_waited);
        } else {
            ret = tl__sqlite_fail(ss, rc, "starting a claim-next");
        }
        goto out;
    }
    now = now_ms(s); /* the write lock may have taken a while */
    rc = scan(ss, json, req->mode, now, &p, tally, c->done_seen);
    if (rc == SQLITE_OK && p.found)
        rc = take(ss, req, c->keys[p.index], &p, now, &token);
    if (rc == SQLITE_OK)
        rc = tl__sqlite_exec(ss, p.found ? ST_COMMIT : ST_ROLLBACK);
    if (rc != SQLITE_OK) {
        ret = tl__sqlite_fail(ss, rc, "claiming the next task");
        tl__sqlite_rollback(ss);
        goto out;
    }
    if (!p.found) {
        ret = TL_EBUSY; /* another claimer was first */
        goto out;
    }
    ret = describe(s, req, c->keys[p.index], &p, now, token, out);
    if (ret == TL_OK)
        *won = p.index;

out:
    tl__free(json);
    return ret;
}

/* The done marker of the release being finished, in its transaction. */
static int set_done(struct sqlite_store *ss, const struct tl_record *held, const char *summary,
                    int64_t now)
{
    sqlite3_stmt *st = ss->next_stmt[NST_DONE_SET];

    sqlite3_bind_text(st, 1, held->info.key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, held->info.worker_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, held->info.node_id ? held->info.node_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)held->info.token);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_text(st, 6, summary ? summary : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * A release (sqlite_release's), with the done marker written in its transaction, and with
 * f->next the claim-next in it too: one transaction, one commit for all of it. A failure of the
 * claim's statements rolls the release back as well (the lock is as before the call).
 */
tl_status tl__sqlite_finish(struct tl_store *s, const struct tl_finish *f,
                            struct tl_finish_result *out)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    const struct tl_record *held = f->held;
    bool removed = false, before = false;
    char head[MAX_WAITER_ID + 1] = "";
    char *json = NULL;
    struct pick p = {0};
    uint64_t token = 0;
    tl_status ret = TL_OK;
    int rc;

    if (f->next != NULL && f->candidates != NULL && f->candidates->keys != NULL &&
        (json = keys_json(f->candidates)) == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    if ((rc = tl__sqlite_exec(ss, ST_BEGIN)) != SQLITE_OK) {
        tl__free(json);
        return tl__sqlite_fail(ss, rc, "starting a release");
    }
    if ((rc = tl__sqlite_unhold(ss, held, &removed)) != SQLITE_OK)
        goto err_rollback;

    int64_t now = now_ms(s);
    if (removed) {
        if (f->done)
            rc = set_done(ss, held, f->summary, now);
        if (rc == SQLITE_OK)
            rc = tl__sqlite_add_history(ss, now, f->done ? TL_EVENT_DONE : TL_EVENT_RELEASED,
                                        &held->info, f->summary);
        if (rc == SQLITE_OK)
            rc = tl__sqlite_find_head(ss, held->info.key, now, head);
    } else {
        rc = tl__sqlite_released_before(ss, held, &before);
        if (rc == SQLITE_OK && !before)
            ret = tl__store_fail(s, TL_ENOTOWNER, "%s is not held by %s with token %llu",
                                 held->info.key, held->info.worker_id,
                                 (unsigned long long)held->info.token);
    }
    if (rc != SQLITE_OK)
        goto err_rollback;

    if (ret == TL_OK && f->next != NULL && f->candidates != NULL) {
        out->next_tried = true;
        out->won = SIZE_MAX;
        memset(&out->tally, 0, sizeof(out->tally));
        memset(&out->next, 0, sizeof(out->next));
        out->next_status = not_claimable(s, f->candidates);
        if (out->next_status == TL_OK && json != NULL) {
            rc = scan(ss, json, f->next->mode, now, &p, &out->tally, f->candidates->done_seen);
            if (rc == SQLITE_OK && p.found)
                rc = take(ss, f->next, f->candidates->keys[p.index], &p, now, &token);
            if (rc != SQLITE_OK)
                goto err_rollback;
        }
        if (out->next_status == TL_OK)
            out->next_status = p.found ? TL_OK : TL_EBUSY;
    }
    if ((rc = tl__sqlite_exec(ss, ST_COMMIT)) != SQLITE_OK)
        goto err_rollback;
    tl__free(json);
    tl__sqlite_wake_send(ss, head);
    if (out->next_tried && p.found) {
        out->next_status =
            describe(s, f->next, f->candidates->keys[p.index], &p, now, token, &out->next);
        if (out->next_status == TL_OK)
            out->won = p.index;
    }
    return ret;

err_rollback:
    tl__free(json);
    ret = tl__sqlite_fail(ss, rc, "releasing a lock");
    tl__sqlite_rollback(ss);
    out->next_tried = false;
    return ret;
}

tl_status tl__sqlite_reopen(struct tl_store *s, const char *key, const char *worker_id,
                            const char *node_id, bool *was_done)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *get = ss->next_stmt[NST_DONE_GET];
    sqlite3_stmt *del = ss->next_stmt[NST_DONE_DELETE];
    char detail[TL_ID_MAX + 64] = "";
    uint64_t token = 0;
    bool found = false;
    int rc;

    *was_done = false;
    if ((rc = tl__sqlite_exec(ss, ST_BEGIN)) != SQLITE_OK)
        return tl__sqlite_fail(ss, rc, "starting a reopen");
    sqlite3_bind_text(get, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) {
        const unsigned char *w = sqlite3_column_text(get, 0);

        found = true;
        token = (uint64_t)sqlite3_column_int64(get, 1);
        (void)snprintf(detail, sizeof(detail), "done by %s (token %llu)", w ? (const char *)w : "?",
                       (unsigned long long)token);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(get);
    sqlite3_clear_bindings(get);
    if (rc == SQLITE_OK && found) {
        sqlite3_bind_text(del, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(del);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(del);
        sqlite3_clear_bindings(del);
        const struct tl_info who = {.key = (char *)key,
                                    .worker_id = (char *)worker_id,
                                    .node_id = (char *)node_id,
                                    .token = token};
        if (rc == SQLITE_OK)
            rc = tl__sqlite_add_history(ss, now_ms(s), TL_EVENT_REOPENED, &who, detail);
    }
    if (rc == SQLITE_OK)
        rc = tl__sqlite_exec(ss, found ? ST_COMMIT : ST_ROLLBACK);
    if (rc != SQLITE_OK) {
        tl_status ret = tl__sqlite_fail(ss, rc, "reopening a task");
        tl__sqlite_rollback(ss);
        return ret;
    }
    *was_done = found;
    return TL_OK;
}

tl_status tl__sqlite_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                               size_t *count)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *st = ss->next_stmt[key ? NST_DONE_KEY : NST_DONE_ALL];
    struct tl_done **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status ret = TL_OK;
    int rc;

    if (key != NULL)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tl_done *d = tl__done_new();

        if (d != NULL) {
            d->key = column_dup(st, 0);
            d->worker_id = column_dup(st, 1);
            d->node_id = column_dup(st, 2);
            d->token = (uint64_t)sqlite3_column_int64(st, 3);
            d->done_at_ms = sqlite3_column_int64(st, 4);
            d->summary = column_dup(st, 5);
        }
        if (d == NULL || !d->key || !d->worker_id || !d->node_id || !d->summary ||
            tl__done_array_push(&arr, &n, &cap, d) != TL_OK) {
            tl__done_free(d);
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
            break;
        }
    }
    if (ret == TL_OK && rc != SQLITE_DONE)
        ret = tl__sqlite_fail(ss, rc, "reading the done markers");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (ret != TL_OK) {
        tl_done_array_free(arr, n);
        return ret;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

/*
 * Waits up to `timeout_ms` (and the caller's deadline) for a candidate to come free: one plain
 * read over all of them per poll (no write lock, no fsync), every 2 ms at first, doubling up to
 * every 32 ms, as sqlite_wait. Only a free key without live waiters ends the wait: a stale
 * holder does not, or a claimer that may not steal would spin.
 */
tl_status tl__sqlite_wait_any(struct tl_store *s, const struct tl_candidates *c,
                              uint32_t timeout_ms)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *st = ss->next_stmt[NST_ANY_FREE];
    const struct tl_clock *clk = s->clock;
    int64_t end = clk->mono_ms(clk->ud) + timeout_ms;
    uint32_t step = 2;
    tl_status ret = TL_OK;

    if (c->keys == NULL)
        return tl__store_fail(s, TL_ENOTSUP, "the sqlite store has no labels; name the keys");
    if (s->deadline_mono_ms != 0 && s->deadline_mono_ms < end)
        end = s->deadline_mono_ms;
    char *json = keys_json(c);
    if (json == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    for (;;) {
        sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms(s));
        int rc = sqlite3_step(st);
        bool any = rc == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_ROW) {
            ret = tl__sqlite_fail(ss, rc, "waiting for a free candidate");
            break;
        }
        int64_t left = end - clk->mono_ms(clk->ud);
        if (any || left <= 0)
            break;
        clk->sleep_ms(clk->ud, left < step ? (uint32_t)left : step);
        step = step < 32 ? step * 2 : 32;
    }
    tl__free(json);
    return ret;
}
