/*
 * sqlite_modes.c -- a key's set of holders in the SQLite store: shared holders and semaphores
 * (store.h, version 5; DESIGN.md section 9), and the ops that read or write the set: claim,
 * force_release, inspect, holders, convert (upgrades and downgrades); renew and release find
 * their holder through it.
 *
 * The layout keeps tl_locks as it was, one row per key: its token is the key's counter (the
 * last token granted), and an exclusive holder's row is the holder itself, as before. Shared
 * holders are rows of tl_shared (key, token, worker, node, times, timeout, task_info, slots),
 * and while a key has any, its tl_locks row names SHARED_SENTINEL as its holder, with the
 * latest heartbeat and the longest timeout of the shared holders (a trigger keeps them as the
 * holders renew). So a tasklock from before shared holders, which reads tl_locks only, sees
 * such a key held, and stale only when every shared holder is; if it steals or forces it (or
 * breaks it with force_release), a trigger deletes the shared holders in the same statement,
 * so it never holds the key beside them. The schema version stays 1: such a tasklock opens
 * the file and keeps working with exclusive locks.
 *
 * A claim is one BEGIN IMMEDIATE transaction that reads the key's row (and its shared holders
 * only when the row names the sentinel: an exclusive key costs what it did), judges admission
 * by tl__admit, and writes the holder, its event and the line. A claim without a waiter that
 * will lose anyway answers from plain reads first, without the write lock.
 */
#include <stdio.h>
#include <string.h>

#include "sqlite_int.h"
#include "store.h"
#include "tl.h"

#define SENTINEL_SQL "'" SHARED_SENTINEL "'"
/* The shared holders' columns, in tl__sqlite_read_record's order, and slots. */
#define SHARED_COLUMNS \
    "token, worker_id, node_id, claimed_at, heartbeat_at, lock_timeout_ms, task_info, slots"

static const char *const modes_sql[MST_COUNT] = {
    [MST_SHARED_OF] = "SELECT " SHARED_COLUMNS " FROM tl_shared WHERE key = ?1 ORDER BY token",
    [MST_SHARED_INSERT] = "INSERT INTO tl_shared(key, token, worker_id, node_id, claimed_at, "
                          "heartbeat_at, lock_timeout_ms, task_info, slots) VALUES (?1, ?2, ?3, "
                          "?4, ?5, ?5, ?6, ?7, ?8)",
    [MST_SHARED_DELETE] = "DELETE FROM tl_shared WHERE key = ?1 AND token = ?2",
    [MST_SHARED_DELETE_MINE] = "DELETE FROM tl_shared WHERE key = ?1 AND token = ?2 AND "
                               "worker_id = ?3",
    [MST_SHARED_DELETE_ALL] = "DELETE FROM tl_shared WHERE key = ?1",
    /* The key's row names the sentinel, with the new token: the latest heartbeat and the
     * longest timeout of its shared holders, the first shared claim's time. */
    [MST_SENTINEL_SET] =
        "INSERT INTO tl_locks(key, token, worker_id, node_id, claimed_at, heartbeat_at, "
        "lock_timeout_ms, task_info) VALUES (?1, ?2, " SENTINEL_SQL ", '', ?3, ?3, ?4, "
        "'{\"tasklock\":\"held by shared holders (a tasklock with shared locks lists them)\"}') "
        "ON CONFLICT(key) DO UPDATE SET token = excluded.token, claimed_at = CASE WHEN worker_id "
        "IS " SENTINEL_SQL " THEN claimed_at ELSE excluded.claimed_at END, heartbeat_at = CASE "
        "WHEN worker_id IS " SENTINEL_SQL " THEN MAX(heartbeat_at, excluded.heartbeat_at) ELSE "
        "excluded.heartbeat_at END, lock_timeout_ms = CASE WHEN worker_id IS " SENTINEL_SQL
        " THEN MAX(lock_timeout_ms, excluded.lock_timeout_ms) ELSE excluded.lock_timeout_ms END, "
        "task_info = excluded.task_info, node_id = '', worker_id = " SENTINEL_SQL,
    /* The last shared holder left: the key is free (its token stays). */
    [MST_SENTINEL_FREE] = "UPDATE tl_locks SET worker_id = NULL, node_id = NULL, claimed_at = "
                          "NULL, heartbeat_at = NULL, lock_timeout_ms = NULL, task_info = NULL "
                          "WHERE key = ?1 AND worker_id = " SENTINEL_SQL " AND NOT EXISTS "
                          "(SELECT 1 FROM tl_shared WHERE key = ?1)",
    [MST_TOKEN_SET] = "UPDATE tl_locks SET token = ?2 WHERE key = ?1",
    /* As ST_RENEW and ST_EXTEND; the trigger tl_shared_beat carries the beat to the sentinel. */
    [MST_SHARED_RENEW] = "UPDATE tl_shared SET heartbeat_at = ?1 WHERE key = ?2 AND worker_id = "
                         "?3 AND token = ?4",
    [MST_SHARED_EXTEND] = "UPDATE tl_shared SET heartbeat_at = ?1, lock_timeout_ms = ?5 WHERE "
                          "key = ?2 AND worker_id = ?3 AND token = ?4",
    /* Released before: the token is the key's last and no holder has it. */
    [MST_RELEASED] = "SELECT EXISTS (SELECT 1 FROM tl_locks l WHERE l.key = ?1 AND l.token = ?2 "
                     "AND (l.worker_id IS NULL OR l.worker_id = " SENTINEL_SQL ") AND NOT "
                     "EXISTS (SELECT 1 FROM tl_shared s WHERE s.key = ?1 AND s.token = ?2))",
};

int tl__sqlite_modes_prepare(struct sqlite_store *ss)
{
    for (int i = 0; i < MST_COUNT; i++) {
        int rc = sqlite3_prepare_v3(ss->db, modes_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &ss->modes_stmt[i], NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

void tl__sqlite_modes_finalize(struct sqlite_store *ss)
{
    for (int i = 0; i < MST_COUNT; i++) {
        sqlite3_finalize(ss->modes_stmt[i]);
        ss->modes_stmt[i] = NULL;
    }
}

static int64_t now_ms(struct tl_store *s)
{
    return s->clock->now_ms(s->clock->ud);
}

/* Runs a statement with no result rows and clears its bindings. */
static int run(struct sqlite_store *ss, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    (void)ss;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static bool is_sentinel(const unsigned char *worker)
{
    return worker != NULL && strcmp((const char *)worker, SHARED_SENTINEL) == 0;
}

/* ---- the holder set ---- */

struct holder_set {
    bool exists;            /* tl_locks has the key's row */
    uint64_t last_token;    /* its token: the last one granted */
    struct tl_record *recs; /* by token: one exclusive holder, or the shared ones */
    size_t n;
};

static void holders_clear(struct holder_set *hs)
{
    for (size_t i = 0; i < hs->n; i++)
        tl__record_clear(&hs->recs[i]);
    tl__free(hs->recs);
    memset(hs, 0, sizeof(*hs));
}

/* The holder a newcomer waits for first: the exclusive one, else the oldest. */
static const struct tl_record *blocker(const struct holder_set *hs)
{
    return hs->n > 0 ? &hs->recs[0] : NULL;
}

static tl_status push(struct sqlite_store *ss, struct holder_set *hs, size_t *cap, sqlite3_stmt *st,
                      const char *key, bool shared)
{
    if (hs->n == *cap) {
        size_t ncap = *cap ? 2 * *cap : 4;
        struct tl_record *r = tl__realloc(hs->recs, ncap * sizeof(*r));
        if (r == NULL)
            return tl__store_fail(&ss->base, TL_ENOMEM, "out of memory");
        hs->recs = r;
        *cap = ncap;
    }
    struct tl_record *r = &hs->recs[hs->n];
    memset(r, 0, sizeof(*r));
    if (tl__sqlite_read_record(st, key, r) != TL_OK)
        return tl__store_fail(&ss->base, TL_ENOMEM, "out of memory");
    hs->n++;
    if (!shared)
        return TL_OK;
    /* The CHECK keeps other values out, unless the file was written around it. */
    sqlite3_int64 slots = sqlite3_column_int64(st, 7);
    if (sqlite3_column_type(st, 7) != SQLITE_INTEGER || slots < 0 || slots > TL_SLOTS_MAX) {
        const unsigned char *t = sqlite3_column_text(st, 7);
        return tl__store_fail(&ss->base, TL_ESTORE,
                              "sqlite: %s: the shared holder of %s with token %llu has slots "
                              "\"%.40s\", not a number from 0 to %d (the file was changed by "
                              "something other than tasklock)",
                              ss->path, key, (unsigned long long)r->info.token,
                              t ? (const char *)t : "NULL", TL_SLOTS_MAX);
    }
    r->info.mode = TL_SHARED;
    r->info.slots = (uint32_t)slots;
    return TL_OK;
}

/* Reads the holders of `key`: its tl_locks row, and its shared holders when that row names
 * the sentinel. A read, in the caller's transaction or on its own. */
static tl_status load_holders(struct sqlite_store *ss, const char *key, struct holder_set *hs)
{
    sqlite3_stmt *st = ss->stmt[ST_SELECT];
    size_t cap = 0;
    bool shared = false;
    tl_status ret = TL_OK;

    memset(hs, 0, sizeof(*hs));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        hs->exists = true;
        hs->last_token = (uint64_t)sqlite3_column_int64(st, 0);
        const unsigned char *w = sqlite3_column_text(st, 1);
        shared = is_sentinel(w);
        if (w != NULL && !shared)
            ret = push(ss, hs, &cap, st, key, false);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_OK && ret == TL_OK && shared) {
        st = ss->modes_stmt[MST_SHARED_OF];
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        while (ret == TL_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
            ret = push(ss, hs, &cap, st, key, true);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (ret == TL_OK && rc != SQLITE_OK)
        ret = tl__sqlite_fail(ss, rc, "reading the holders of a lock");
    if (ret != TL_OK)
        holders_clear(hs);
    return ret;
}

/* What a claim does to the key, by tl__admit over the holders that count (all; the live ones
 * when stealing; FORCE: none). *held_slots: the counting holders' slots (for a mismatch). */
static enum tl_verdict judge(const struct holder_set *hs, const struct tl_claim *req, int64_t now,
                             bool *mismatch, uint32_t *held_slots)
{
    size_t counted = 0, stale = 0;
    bool excl = false;

    *mismatch = false;
    *held_slots = 0;
    if (req->mode == TL_CLAIM_FORCE)
        return hs->n > 0 ? TL_VERDICT_FORCE : TL_VERDICT_FREE;
    for (size_t i = 0; i < hs->n; i++) {
        struct tl_record r = hs->recs[i];
        tl__record_judge(&r, now);
        if (r.info.stale && req->mode == TL_CLAIM_STEAL) {
            stale++;
            continue;
        }
        counted++;
        excl = excl || r.info.mode != TL_SHARED;
        *held_slots = r.info.slots;
    }
    enum tl_admit a = tl__admit(req->shared, req->slots, counted, excl, *held_slots);
    if (a == TL_ADMIT_MISMATCH) {
        *mismatch = true;
        return TL_VERDICT_BUSY;
    }
    return a == TL_ADMIT_NO ? TL_VERDICT_BUSY : stale > 0 ? TL_VERDICT_STEAL : TL_VERDICT_FREE;
}

/* "from W (token N), ..." of the holders a win displaces (all when `all`, else the stale). */
static void displaced(const struct holder_set *hs, bool all, int64_t now, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < hs->n && len < size; i++) {
        struct tl_record r = hs->recs[i];
        tl__record_judge(&r, now);
        if (!all && !r.info.stale)
            continue;
        int k = snprintf(buf + len, size - len, "%s%s (token %llu)", len ? ", " : "from ",
                         r.info.worker_id, (unsigned long long)r.info.token);
        if (k < 0)
            break;
        len += (size_t)k;
    }
}

bool tl__sqlite_upgrade_turn(const unsigned char *lock_worker, int64_t other_shared)
{
    return lock_worker == NULL || (is_sentinel(lock_worker) && other_shared == 0);
}

bool tl__sqlite_admits(bool shared, uint32_t slots, const unsigned char *lock_worker,
                       int64_t nshared, int64_t held_slots)
{
    bool excl = lock_worker != NULL && !is_sentinel(lock_worker);
    size_t n = excl ? 1 : lock_worker != NULL && nshared > 0 ? (size_t)nshared : 0;

    if (held_slots < 0 || held_slots > TL_SLOTS_MAX)
        held_slots = 0;
    return tl__admit(shared, slots, n, excl, (uint32_t)held_slots) != TL_ADMIT_NO;
}

int tl__sqlite_drop_shared(struct sqlite_store *ss, const char *key, char *detail, size_t size)
{
    sqlite3_stmt *st = ss->modes_stmt[MST_SHARED_OF];
    size_t len = 0;
    int rc;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && len < size) {
        const unsigned char *w = sqlite3_column_text(st, 1);
        int k =
            snprintf(detail + len, size - len, "%s%s (token %llu)", len ? ", " : "from ",
                     w ? (const char *)w : "?", (unsigned long long)sqlite3_column_int64(st, 0));
        if (k < 0)
            break;
        len += (size_t)k;
    }
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_OK;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK)
        return rc;
    st = ss->modes_stmt[MST_SHARED_DELETE_ALL];
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    return run(ss, st);
}

static int delete_shared(struct sqlite_store *ss, const char *key, uint64_t token)
{
    sqlite3_stmt *st = ss->modes_stmt[MST_SHARED_DELETE];

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
    return run(ss, st);
}

static int free_sentinel(struct sqlite_store *ss, const char *key)
{
    sqlite3_stmt *st = ss->modes_stmt[MST_SENTINEL_FREE];

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    return run(ss, st);
}

int tl__sqlite_unhold(struct sqlite_store *ss, const struct tl_record *held, bool *removed)
{
    const bool shared = held->info.mode == TL_SHARED;
    int rc = SQLITE_OK;

    *removed = false;
    /* By its mode, then as the other mode: a record the core made from a key and a token (a
     * release by token) does not say how it is held. Tokens are unique, so at most one row is
     * the holder's. */
    for (int i = 0; i < 2 && rc == SQLITE_OK && !*removed; i++) {
        bool as_shared = i == 0 ? shared : !shared;
        sqlite3_stmt *st = as_shared ? ss->modes_stmt[MST_SHARED_DELETE_MINE] : ss->stmt[ST_FREE];

        sqlite3_bind_text(st, 1, held->info.key, -1, SQLITE_STATIC);
        if (as_shared) { /* key, token, worker */
            sqlite3_bind_int64(st, 2, (sqlite3_int64)held->info.token);
            sqlite3_bind_text(st, 3, held->info.worker_id, -1, SQLITE_STATIC);
        } else { /* ST_FREE: key, worker, token */
            sqlite3_bind_text(st, 2, held->info.worker_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)held->info.token);
        }
        rc = run(ss, st);
        *removed = rc == SQLITE_OK && sqlite3_changes(ss->db) == 1;
        if (*removed && as_shared)
            rc = free_sentinel(ss, held->info.key);
    }
    return rc;
}

int tl__sqlite_released_before(struct sqlite_store *ss, const struct tl_record *held, bool *yes)
{
    sqlite3_stmt *st = ss->modes_stmt[MST_RELEASED];

    *yes = false;
    sqlite3_bind_text(st, 1, held->info.key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)held->info.token);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *yes = sqlite3_column_int(st, 0) != 0;
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

sqlite3_stmt *tl__sqlite_renew_stmt(struct sqlite_store *ss, bool shared, bool extend)
{
    if (shared)
        return ss->modes_stmt[extend ? MST_SHARED_EXTEND : MST_SHARED_RENEW];
    return ss->stmt[extend ? ST_EXTEND : ST_RENEW];
}

/* ---- the line, as a claim sees it ---- */

/* Who ST_W_COUNT counts as ahead of the caller. */
enum line_how { LINE_ALL = 0, LINE_IN = 1, LINE_NEW = 2 };

struct line {
    uint32_t waiting; /* live waiters of the key */
    uint32_t ahead;   /* of those, the ones ahead of the caller */
};

static int count_line(struct sqlite_store *ss, const char *key, int64_t now, enum line_how how,
                      int32_t priority, int64_t seq, struct line *out)
{
    sqlite3_stmt *st = ss->stmt[ST_W_COUNT];
    int rc;

    memset(out, 0, sizeof(*out));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int(st, 3, (int)how);
    sqlite3_bind_int(st, 4, priority);
    sqlite3_bind_int64(st, 5, seq);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(st, 0), a = sqlite3_column_int64(st, 1);

        out->waiting = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
        out->ahead = a > UINT32_MAX ? UINT32_MAX : (uint32_t)a;
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* The waiter's place in line, if it is there. */
static int find_waiter(struct sqlite_store *ss, const char *key, const char *waiter_id,
                       bool *in_line, int32_t *priority, int64_t *seq)
{
    sqlite3_stmt *st = ss->stmt[ST_W_FIND];
    int rc;

    *in_line = false;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, waiter_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *in_line = true;
        *priority = sqlite3_column_int(st, 0);
        *seq = sqlite3_column_int64(st, 1);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Whoever finds dead waiters may delete them: they never held anything. */
static int delete_dead(struct sqlite_store *ss, const char *key, int64_t now)
{
    sqlite3_stmt *st = ss->stmt[ST_W_DELETE_DEAD];

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    return run(ss, st);
}

static int delete_waiter(struct sqlite_store *ss, const char *key, const char *waiter_id)
{
    sqlite3_stmt *st = ss->stmt[ST_W_DELETE];

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, waiter_id, -1, SQLITE_STATIC);
    return run(ss, st);
}

/* Puts the claim's waiter at the back of the line (with its mode, for the wake-ups; an
 * upgrade's with the token it converts, `upgrading`), or refreshes its heartbeat where it is.
 * Either way the waiter keeps the holds its claim lists (the wait-for graph). */
static int join_line(struct sqlite_store *ss, const struct tl_claim *req, bool in_line, int64_t now,
                     uint64_t upgrading)
{
    sqlite3_stmt *st = ss->stmt[in_line ? ST_W_REFRESH : ST_W_INSERT];
    const char *holding = req->holding != NULL ? req->holding : "";

    sqlite3_bind_text(st, 1, req->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, req->waiter_id, -1, SQLITE_STATIC);
    if (in_line) {
        sqlite3_bind_int64(st, 3, now);
        sqlite3_bind_int64(st, 4, req->waiter_timeout_ms);
        sqlite3_bind_text(st, 5, holding, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_text(st, 3, req->worker_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, req->node_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, req->priority);
        sqlite3_bind_int64(st, 6, now);
        sqlite3_bind_int64(st, 7, req->waiter_timeout_ms);
        sqlite3_bind_int(st, 8, req->shared ? 1 : 0);
        sqlite3_bind_int64(st, 9, req->shared ? req->slots : 0);
        sqlite3_bind_int64(st, 10, (sqlite3_int64)upgrading);
        sqlite3_bind_text(st, 11, holding, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 12, upgrading != 0 && req->mode == TL_CLAIM_STEAL ? 1 : 0);
    }
    return run(ss, st);
}

/* A busy answer: the blocker's record if the key is held (else the line is what is ahead). */
static tl_status answer_busy(struct tl_store *s, struct tl_claim_result *out,
                             const struct holder_set *hs, const struct line *line, int64_t now)
{
    tl__record_clear(&out->rec);
    out->holder_known = false;
    out->waiting = line->waiting;
    out->ahead = line->ahead;
    if (hs->n > 0) {
        if (tl__record_copy(&out->rec, blocker(hs)) != TL_OK)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
        tl__record_judge(&out->rec, now);
        out->rec.info.holders = (uint32_t)hs->n;
        out->holder_known = true;
    }
    return TL_EBUSY;
}

/* The claim's own holder row(s), in its transaction: an exclusive one replaces every holder
 * (they are all displaced, or there are none); a shared one removes the stale holders a steal
 * displaces and joins the others. */
static int write_holder(struct sqlite_store *ss, const struct tl_claim *req,
                        const struct holder_set *hs, enum tl_verdict v, uint64_t token, int64_t now)
{
    int rc = SQLITE_OK;
    bool shared_held = hs->n > 0 && hs->recs[0].info.mode == TL_SHARED;

    if (!req->shared) {
        sqlite3_stmt *st = ss->stmt[ST_UPSERT];
        if (shared_held) {
            sqlite3_stmt *d = ss->modes_stmt[MST_SHARED_DELETE_ALL];
            sqlite3_bind_text(d, 1, req->key, -1, SQLITE_STATIC);
            rc = run(ss, d);
        }
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_text(st, 1, req->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
        sqlite3_bind_text(st, 3, req->worker_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, req->node_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, now);
        sqlite3_bind_int64(st, 6, req->lock_timeout_ms);
        sqlite3_bind_text(st, 7, req->task_info, -1, SQLITE_STATIC);
        return run(ss, st);
    }
    for (size_t i = 0; shared_held && v == TL_VERDICT_STEAL && i < hs->n && rc == SQLITE_OK; i++) {
        struct tl_record r = hs->recs[i];
        tl__record_judge(&r, now);
        if (r.info.stale)
            rc = delete_shared(ss, req->key, r.info.token);
    }
    /* A stale exclusive holder's row becomes the sentinel's. */
    sqlite3_stmt *st = ss->modes_stmt[MST_SENTINEL_SET];
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, req->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
        sqlite3_bind_int64(st, 3, now);
        sqlite3_bind_int64(st, 4, req->lock_timeout_ms);
        rc = run(ss, st);
    }
    if (rc != SQLITE_OK)
        return rc;
    st = ss->modes_stmt[MST_SHARED_INSERT];
    sqlite3_bind_text(st, 1, req->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
    sqlite3_bind_text(st, 3, req->worker_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, req->node_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, req->lock_timeout_ms);
    sqlite3_bind_text(st, 7, req->task_info, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, req->slots);
    return run(ss, st);
}

/* A won claim's record, after the commit. */
static tl_status describe(struct tl_store *s, const struct tl_claim *req, const struct tl_info *who,
                          enum tl_verdict v, int64_t now, struct tl_claim_result *out)
{
    struct tl_record *r = &out->rec;

    r->info.key = tl__strdup(req->key);
    r->info.worker_id = tl__strdup(req->worker_id);
    r->info.node_id = tl__strdup(req->node_id);
    r->info.task_info = tl__strdup(req->task_info);
    r->info.token = who->token;
    r->info.claimed_at_ms = r->info.heartbeat_at_ms = now;
    r->info.lock_timeout_ms = req->lock_timeout_ms;
    r->info.observed_at_ms = now;
    r->info.mode = who->mode;
    r->info.slots = who->slots;
    out->took_stale = v == TL_VERDICT_STEAL;
    out->took_forced = v == TL_VERDICT_FORCE;
    if (!r->info.key || !r->info.worker_id || !r->info.node_id || !r->info.task_info) {
        /* Committed, but we cannot describe it: give it back so that it does not rot. */
        const struct tl_record held = {.info = *who};
        (void)s->ops->release(s, &held, "out of memory after claiming");
        tl__record_clear(r);
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    return TL_OK;
}

/*
 * A claim is one IMMEDIATE transaction that reads the key's holders and its line and then
 * writes: its holder if it wins (and the removal of its own waiter), else its waiter's place in
 * line. Dead waiters of the key go in the same transaction. A claim without a waiter that will
 * lose anyway (holders that do not admit it, or anyone in line) answers from plain reads,
 * without the write lock, so that pollers do not queue behind the holders' writes.
 */
tl_status tl__sqlite_claim(struct tl_store *s, const struct tl_claim *req,
                           struct tl_claim_result *out)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    const char *wid = req->waiter_id;
    const bool force = req->mode == TL_CLAIM_FORCE;
    struct line line = {0};
    struct holder_set hs;
    bool mismatch;
    uint32_t held_slots;
    tl_status ret;
    int rc;

    out->holder_known = false;
    out->waiting = out->ahead = 0;
    out->beat_sent_mono_ms = 0;
    if (wid != NULL && (req->priority < TL_PRIORITY_MIN || req->priority > TL_PRIORITY_MAX ||
                        req->waiter_timeout_ms == 0))
        return tl__store_fail(s, TL_EINVAL,
                              "claim of %s: priority %d must be %d to %d and the waiter's "
                              "timeout (%u ms) above 0",
                              req->key, (int)req->priority, TL_PRIORITY_MIN, TL_PRIORITY_MAX,
                              (unsigned)req->waiter_timeout_ms);
    if (req->shared && (force || req->slots > TL_SLOTS_MAX))
        return tl__store_fail(s, TL_EINVAL,
                              "claim of %s: a shared claim is never forced, and "
                              "has at most %d slots",
                              req->key, TL_SLOTS_MAX);

    int64_t now = now_ms(s);
    if (wid == NULL) {
        if ((ret = load_holders(ss, req->key, &hs)) != TL_OK)
            return ret;
        rc = force ? SQLITE_OK : count_line(ss, req->key, now, LINE_ALL, 0, 0, &line);
        enum tl_verdict v = judge(&hs, req, now, &mismatch, &held_slots);
        if (rc != SQLITE_OK)
            ret = tl__sqlite_fail(ss, rc, "reading a lock");
        else if (mismatch)
            ret = tl__slots_mismatch(s, req->key, held_slots, req->slots);
        else if (v == TL_VERDICT_BUSY || line.waiting > 0)
            ret = answer_busy(s, out, &hs, &line, now);
        holders_clear(&hs);
        if (ret != TL_OK)
            return ret;
    }

    ss->busy_cut = false;
    ss->busy_fast = true;
    rc = tl__sqlite_exec(ss, ST_BEGIN);
    ss->busy_fast = false;
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_BUSY && ss->busy_cut) {
            /* Another connection kept the write lock until the caller's deadline: to the
             * caller that is the lock not coming free in time. */
            (void)tl__store_fail(s, TL_EBUSY,
                                 "the database stayed locked by another connection until the "
                                 "deadline (%lld ms)",
                                 (long long)ss->busy_waited);
            /* The line, from a plain read (which the writer does not block). */
            if (count_line(ss, req->key, now_ms(s), LINE_ALL, 0, 0, &line) == SQLITE_OK)
                out->waiting = line.waiting;
            return TL_EBUSY;
        }
        return tl__sqlite_fail(ss, rc, "starting a claim");
    }
    now = now_ms(s); /* the write lock may have taken a while */
    if ((ret = load_holders(ss, req->key, &hs)) != TL_OK) {
        tl__sqlite_rollback(ss);
        return ret;
    }

    /* FORCE passes the line and leaves it as it is. */
    bool in_line = false, deleted_dead = false;
    int32_t priority = req->priority;
    int64_t seq = 0;
    if (!force) {
        rc = delete_dead(ss, req->key, now);
        deleted_dead = rc == SQLITE_OK && sqlite3_changes(ss->db) > 0;
        if (rc == SQLITE_OK && wid != NULL)
            rc = find_waiter(ss, req->key, wid, &in_line, &priority, &seq);
        if (rc == SQLITE_OK)
            rc = count_line(ss, req->key, now,
                            wid == NULL ? LINE_ALL
                            : in_line   ? LINE_IN
                                        : LINE_NEW,
                            priority, seq, &line);
        if (rc != SQLITE_OK)
            goto err_rollback;
    }

    enum tl_verdict v = judge(&hs, req, now, &mismatch, &held_slots);
    if (mismatch) { /* nothing written: no line joined, no dead waiter deleted */
        tl__sqlite_rollback(ss);
        holders_clear(&hs);
        return tl__slots_mismatch(s, req->key, held_slots, req->slots);
    }
    char head[MAX_WAITER_ID + 1] = "";
    if (v == TL_VERDICT_BUSY || (!force && line.ahead > 0)) {
        if (wid != NULL) {
            rc = join_line(ss, req, in_line, now, 0);
            line.waiting += in_line ? 0 : 1;
        }
        /* The dead ones may have included the head: wake the next one if it is admitted. */
        if (rc == SQLITE_OK && deleted_dead)
            rc = tl__sqlite_find_head(ss, req->key, now, head);
        if (rc != SQLITE_OK || (rc = tl__sqlite_exec(ss, ST_COMMIT)) != SQLITE_OK)
            goto err_rollback;
        tl__sqlite_wake_send(ss, head);
        ret = answer_busy(s, out, &hs, &line, now);
        holders_clear(&hs);
        return ret;
    }

    char detail[400] = "";
    if (v != TL_VERDICT_FREE)
        displaced(&hs, v == TL_VERDICT_FORCE, now, detail, sizeof(detail));

    /* Tokens grow from the last one, but never start below the wall clock in microseconds:
     * a database file deleted and made again (or restored from an old copy) would otherwise
     * hand out tokens that earlier holders already gave to fenced resources. */
    uint64_t token = hs.last_token + 1;
    if (now > 0 && (uint64_t)now * 1000 > token)
        token = (uint64_t)now * 1000;
    rc = write_holder(ss, req, &hs, v, token, now);
    if (rc == SQLITE_OK && wid != NULL)
        rc = delete_waiter(ss, req->key, wid);
    if (rc != SQLITE_OK)
        goto err_rollback;

    const struct tl_info who = {.key = (char *)req->key,
                                .worker_id = (char *)req->worker_id,
                                .node_id = (char *)req->node_id,
                                .token = token,
                                .mode = req->shared ? TL_SHARED : TL_EXCLUSIVE,
                                .slots = req->shared ? req->slots : 0};
    rc = tl__sqlite_add_history(ss, now,
                                v == TL_VERDICT_STEAL   ? TL_EVENT_STOLEN
                                : v == TL_VERDICT_FORCE ? TL_EVENT_FORCED
                                                        : TL_EVENT_ACQUIRED,
                                &who, detail[0] ? detail : NULL);
    /* A reader's win may leave another reader at the head, whom the holders admit: wake it. */
    if (rc == SQLITE_OK && req->shared)
        rc = tl__sqlite_find_head(ss, req->key, now, head);
    if (rc != SQLITE_OK || (rc = tl__sqlite_exec(ss, ST_COMMIT)) != SQLITE_OK)
        goto err_rollback;
    holders_clear(&hs);
    tl__sqlite_wake_forget(ss, wid);
    tl__sqlite_wake_send(ss, head);
    return describe(s, req, &who, v, now, out);

err_rollback:
    holders_clear(&hs);
    tl__record_clear(&out->rec);
    ret = tl__sqlite_fail(ss, rc, "claiming a lock");
    tl__sqlite_rollback(ss);
    return ret;
}

/*
 * A forced release: with token 0 every holder goes (one `forced` event naming them all, and
 * `released`); with a token, that holder only (the others keep the key). Either way the key
 * takes a new token, so that the holders broken find their lock lost and their release refused.
 */
tl_status tl__sqlite_force_release(struct tl_store *s, const struct tl_force_release *req,
                                   struct tl_record *former, bool *found)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    struct holder_set hs;
    tl_status ret;
    int rc;

    *found = false;
    if ((rc = tl__sqlite_exec(ss, ST_BEGIN)) != SQLITE_OK)
        return tl__sqlite_fail(ss, rc, "starting a forced release");
    int64_t now = now_ms(s);
    if ((ret = load_holders(ss, req->key, &hs)) != TL_OK) {
        tl__sqlite_rollback(ss);
        return ret;
    }
    if (hs.n == 0) {
        tl__sqlite_rollback(ss);
        holders_clear(&hs);
        return TL_OK;
    }
    size_t which = hs.n; /* the one holder to remove; hs.n: all */
    for (size_t i = 0; req->token != 0 && i < hs.n; i++)
        if (hs.recs[i].info.token == req->token)
            which = i;
    if (tl__record_copy(former, which < hs.n ? &hs.recs[which] : blocker(&hs)) != TL_OK) {
        tl__sqlite_rollback(ss);
        holders_clear(&hs);
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    tl__record_judge(former, now);
    former->info.holders = (uint32_t)hs.n;
    *found = true;
    if (req->token != 0 && which == hs.n) {
        tl__sqlite_rollback(ss);
        ret = tl__store_fail(s, TL_ENOTOWNER, "%s is held by %s with token %llu%s", req->key,
                             former->info.worker_id, (unsigned long long)former->info.token,
                             hs.n > 1 ? " (and others), none with the token given" : "");
        holders_clear(&hs);
        return ret;
    }

    /* A token of its own, as a forced claim would take: the holder's is no longer the key's
     * last, so its release is refused rather than taken for a retry of its own. */
    uint64_t token = hs.last_token + 1;
    if (now > 0 && (uint64_t)now * 1000 > token)
        token = (uint64_t)now * 1000;
    char detail[400];
    if (which < hs.n)
        (void)snprintf(detail, sizeof(detail), "from %s (token %llu)", former->info.worker_id,
                       (unsigned long long)former->info.token);
    else
        displaced(&hs, true, now, detail, sizeof(detail));

    bool one_shared = which < hs.n && hs.recs[which].info.mode == TL_SHARED;
    if (one_shared) {
        sqlite3_stmt *st = ss->modes_stmt[MST_TOKEN_SET];
        rc = delete_shared(ss, req->key, hs.recs[which].info.token);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, req->key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
            rc = run(ss, st);
        }
        if (rc == SQLITE_OK)
            rc = free_sentinel(ss, req->key); /* if it was the last */
    } else {
        sqlite3_stmt *st = ss->stmt[ST_FORCE_FREE]; /* its trigger drops the shared holders */
        rc = SQLITE_OK;
        if (hs.recs[0].info.mode == TL_SHARED) {
            sqlite3_stmt *d = ss->modes_stmt[MST_SHARED_DELETE_ALL];
            sqlite3_bind_text(d, 1, req->key, -1, SQLITE_STATIC);
            rc = run(ss, d);
        }
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, req->key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
            rc = run(ss, st);
        }
    }
    holders_clear(&hs);

    const struct tl_info who = {.key = (char *)req->key,
                                .worker_id = (char *)req->worker_id,
                                .node_id = (char *)req->node_id,
                                .token = token};
    char head[MAX_WAITER_ID + 1] = "";
    if (rc != SQLITE_OK ||
        (rc = tl__sqlite_add_history(ss, now, TL_EVENT_FORCED, &who, detail)) != SQLITE_OK ||
        (rc = tl__sqlite_add_history(ss, now, TL_EVENT_RELEASED, &who, req->summary)) !=
            SQLITE_OK ||
        (rc = tl__sqlite_find_head(ss, req->key, now, head)) != SQLITE_OK ||
        (rc = tl__sqlite_exec(ss, ST_COMMIT)) != SQLITE_OK) {
        *found = false;
        tl__record_clear(former);
        ret = tl__sqlite_fail(ss, rc, "breaking a lock");
        tl__sqlite_rollback(ss);
        return ret;
    }
    tl__sqlite_wake_send(ss, head);
    return TL_OK;
}

/* The number of live waiters of `key`, for inspect and holders. */
static tl_status live_waiters(struct sqlite_store *ss, const char *key, int64_t now,
                              uint32_t *waiting)
{
    struct line line;
    int rc = count_line(ss, key, now, LINE_ALL, 0, 0, &line);

    *waiting = line.waiting;
    return rc == SQLITE_OK ? TL_OK : tl__sqlite_fail(ss, rc, "counting the waiters of a lock");
}

tl_status tl__sqlite_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                             bool *found)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    struct holder_set hs;
    int64_t now = now_ms(s);
    uint32_t waiting = 0;

    *found = false;
    tl_status ret = load_holders(ss, key, &hs);
    if (ret == TL_OK && hs.n > 0)
        ret = live_waiters(ss, key, now, &waiting);
    if (ret == TL_OK && hs.n > 0) {
        if (tl__record_copy(out, blocker(&hs)) != TL_OK) {
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
        } else {
            tl__record_judge(out, now);
            out->info.waiting = waiting;
            out->info.holders = (uint32_t)hs.n;
            *found = true;
        }
    }
    holders_clear(&hs);
    return ret;
}

tl_status tl__sqlite_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                             size_t *count)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    struct tl_record **arr = NULL;
    struct holder_set hs;
    size_t n = 0, cap = 0;
    int64_t now = now_ms(s);
    uint32_t waiting = 0;

    *out = NULL;
    *count = 0;
    tl_status ret = load_holders(ss, key, &hs);
    if (ret == TL_OK && hs.n > 0)
        ret = live_waiters(ss, key, now, &waiting);
    for (size_t i = 0; ret == TL_OK && i < hs.n; i++) {
        struct tl_record *r = tl__record_new();

        if (r == NULL || tl__record_copy(r, &hs.recs[i]) != TL_OK) {
            tl__free(r);
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
            break;
        }
        tl__record_judge(r, now);
        r->info.waiting = waiting;
        r->info.holders = (uint32_t)hs.n;
        if (tl__record_array_push(&arr, &n, &cap, r) != TL_OK) {
            tl__record_free(r);
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
        }
    }
    holders_clear(&hs);
    if (ret != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return ret;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

/* ---- conversions (store.h, convert) ---- */

/* The holder `held` among the key's holders (by token and worker id), or hs->n. */
static size_t holder_index(const struct holder_set *hs, const struct tl_record *held)
{
    for (size_t i = 0; i < hs->n; i++)
        if (hs->recs[i].info.token == held->info.token &&
            strcmp(hs->recs[i].info.worker_id, held->info.worker_id) == 0)
            return i;
    return hs->n;
}

/* "from token N", and for an upgrade that displaces stale holders "; displaced W (token M),
 * ..." (every holder but `me` that is stale: with nothing counted, those are the others). */
static void convert_detail(const struct holder_set *hs, size_t me, bool displace, char *buf,
                           size_t size)
{
    int k = snprintf(buf, size, "from token %llu", (unsigned long long)hs->recs[me].info.token);
    size_t len = k > 0 ? (size_t)k : 0;
    bool first = true;

    for (size_t i = 0; displace && i < hs->n && len < size; i++) {
        if (i == me)
            continue;
        k = snprintf(buf + len, size - len, "%s%s (token %llu)", first ? "; displaced " : ", ",
                     hs->recs[i].info.worker_id, (unsigned long long)hs->recs[i].info.token);
        if (k < 0)
            break;
        len += (size_t)k;
        first = false;
    }
}

/* The converted holder's rows, in the convert's transaction. To shared: the key's tl_locks row
 * names the sentinel (an exclusive holder's row becomes it) and the holder is a tl_shared row
 * with the new token. To exclusive: every shared row goes (the holder's own and the stale ones
 * displaced) and the tl_locks row is the holder's, as an exclusive claim writes it. */
static int write_converted(struct sqlite_store *ss, const struct tl_claim *req,
                           const struct holder_set *hs, const struct tl_info *me, uint64_t token,
                           int64_t now)
{
    bool shared_held = hs->recs[0].info.mode == TL_SHARED;
    int rc = SQLITE_OK;

    if (!req->shared) {
        sqlite3_stmt *st = ss->stmt[ST_UPSERT];
        if (shared_held) {
            sqlite3_stmt *d = ss->modes_stmt[MST_SHARED_DELETE_ALL];
            sqlite3_bind_text(d, 1, me->key, -1, SQLITE_STATIC);
            rc = run(ss, d);
        }
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_text(st, 1, me->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
        sqlite3_bind_text(st, 3, me->worker_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, me->node_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, now);
        sqlite3_bind_int64(st, 6, me->lock_timeout_ms);
        sqlite3_bind_text(st, 7, me->task_info, -1, SQLITE_STATIC);
        return run(ss, st);
    }
    if (me->mode == TL_SHARED) /* shared already (a record's call): its row takes the token */
        rc = delete_shared(ss, me->key, me->token);
    sqlite3_stmt *st = ss->modes_stmt[MST_SENTINEL_SET];
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, me->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
        sqlite3_bind_int64(st, 3, now);
        sqlite3_bind_int64(st, 4, me->lock_timeout_ms);
        rc = run(ss, st);
    }
    if (rc != SQLITE_OK)
        return rc;
    st = ss->modes_stmt[MST_SHARED_INSERT];
    sqlite3_bind_text(st, 1, me->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
    sqlite3_bind_text(st, 3, me->worker_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, me->node_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, me->lock_timeout_ms);
    sqlite3_bind_text(st, 7, me->task_info, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, req->slots);
    return run(ss, st);
}

/*
 * A conversion is one IMMEDIATE transaction, like a claim: it reads the key's holders and finds
 * the converting one; a downgrade is always admitted, an upgrade when no other holder counts.
 * The winner's rows take the key's next token, its waiter (if any) leaves the line, and the
 * event is written; a busy upgrade with a waiter id joins the line (or refreshes its place)
 * with its priority (TL_PRIORITY_UPGRADE: ahead of every claim's) and the token it converts,
 * by which the wake-ups and wait_turn's poll know its turn: no other holder is left.
 */
tl_status tl__sqlite_convert(struct tl_store *s, const struct tl_record *held,
                             const struct tl_claim *req, struct tl_claim_result *out)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    const char *wid = req->waiter_id;
    const char *key = held->info.key;
    struct line line = {0};
    struct holder_set hs;
    tl_status ret;
    int rc;

    out->holder_known = out->took_stale = out->took_forced = false;
    out->waiting = out->ahead = 0;
    out->beat_sent_mono_ms = 0;
    if (req->mode == TL_CLAIM_FORCE || (req->shared && req->slots > TL_SLOTS_MAX) ||
        (wid != NULL && (req->priority < TL_PRIORITY_MIN || req->priority > TL_PRIORITY_UPGRADE ||
                         req->waiter_timeout_ms == 0)))
        return tl__store_fail(s, TL_EINVAL,
                              "conversion of %s: never forced, at most %d slots, a priority of "
                              "%d to %d and a waiter's timeout above 0",
                              key, TL_SLOTS_MAX, TL_PRIORITY_MIN, TL_PRIORITY_UPGRADE);

    ss->busy_cut = false;
    ss->busy_fast = true;
    rc = tl__sqlite_exec(ss, ST_BEGIN);
    ss->busy_fast = false;
    if (rc != SQLITE_OK && (rc & 0xff) == SQLITE_BUSY && ss->busy_cut && !req->shared)
        /* As for a claim: to a waiting upgrade, the write lock kept until its deadline is the
         * other holders not leaving in time. */
        return tl__store_fail(s, TL_EBUSY,
                              "the database stayed locked by another connection until the "
                              "deadline (%lld ms)",
                              (long long)ss->busy_waited);
    if (rc != SQLITE_OK)
        return tl__sqlite_fail(ss, rc, "starting a conversion");
    int64_t now = now_ms(s);
    if ((ret = load_holders(ss, key, &hs)) != TL_OK) {
        tl__sqlite_rollback(ss);
        return ret;
    }
    size_t me = holder_index(&hs, held);
    if (me == hs.n) {
        tl__sqlite_rollback(ss);
        holders_clear(&hs);
        return tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu", key,
                              held->info.worker_id, (unsigned long long)held->info.token);
    }

    bool in_line = false, deleted_dead = false;
    int32_t priority = req->priority;
    int64_t seq = 0;
    rc = delete_dead(ss, key, now);
    deleted_dead = rc == SQLITE_OK && sqlite3_changes(ss->db) > 0;
    if (rc == SQLITE_OK && wid != NULL)
        rc = find_waiter(ss, key, wid, &in_line, &priority, &seq);
    if (rc != SQLITE_OK)
        goto err_rollback;

    /* The other holders that count against an upgrade; the oldest of them is its blocker. */
    size_t counted = 0, stale = 0, other = hs.n;
    for (size_t i = 0; !req->shared && i < hs.n; i++) {
        struct tl_record r = hs.recs[i];
        if (i == me)
            continue;
        tl__record_judge(&r, now);
        if (r.info.stale && req->mode == TL_CLAIM_STEAL) {
            stale++;
            continue;
        }
        counted++;
        if (other == hs.n)
            other = i;
    }

    char head[MAX_WAITER_ID + 1] = "";
    if (counted > 0) { /* an upgrade beside other holders: wait at the head */
        if (wid != NULL) {
            rc = count_line(ss, key, now, in_line ? LINE_IN : LINE_NEW, priority, seq, &line);
            if (rc == SQLITE_OK)
                rc = join_line(ss, req, in_line, now, held->info.token);
            line.waiting += in_line ? 0 : 1;
        } else {
            rc = count_line(ss, key, now, LINE_ALL, 0, 0, &line);
            line.ahead = 0;
        }
        if (rc == SQLITE_OK && deleted_dead)
            rc = tl__sqlite_find_head(ss, key, now, head);
        if (rc != SQLITE_OK || (rc = tl__sqlite_exec(ss, ST_COMMIT)) != SQLITE_OK)
            goto err_rollback;
        tl__sqlite_wake_send(ss, head);
        tl__record_clear(&out->rec);
        out->waiting = line.waiting;
        out->ahead = line.ahead;
        if (tl__record_copy(&out->rec, &hs.recs[other]) != TL_OK) {
            holders_clear(&hs);
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
        }
        tl__record_judge(&out->rec, now);
        out->rec.info.holders = (uint32_t)hs.n;
        out->holder_known = true;
        holders_clear(&hs);
        return TL_EBUSY;
    }

    char detail[400];
    convert_detail(&hs, me, stale > 0, detail, sizeof(detail));
    uint64_t token = hs.last_token + 1; /* as a claim's: never below the clock (see there) */
    if (now > 0 && (uint64_t)now * 1000 > token)
        token = (uint64_t)now * 1000;
    struct tl_info who = hs.recs[me].info; /* borrowed from hs */
    rc = write_converted(ss, req, &hs, &who, token, now);
    if (rc == SQLITE_OK && wid != NULL)
        rc = delete_waiter(ss, key, wid);
    who.token = token;
    who.mode = req->shared ? TL_SHARED : TL_EXCLUSIVE;
    who.slots = req->shared ? req->slots : 0;
    if (rc == SQLITE_OK)
        rc = tl__sqlite_add_history(ss, now, req->shared ? TL_EVENT_DOWNGRADED : TL_EVENT_UPGRADED,
                                    &who, detail);
    /* A downgrade may admit the head (readers); a win that deleted dead waiters may too. */
    if (rc == SQLITE_OK)
        rc = tl__sqlite_find_head(ss, key, now, head);
    if (rc != SQLITE_OK || (rc = tl__sqlite_exec(ss, ST_COMMIT)) != SQLITE_OK)
        goto err_rollback;
    tl__sqlite_wake_forget(ss, wid);
    tl__sqlite_wake_send(ss, head);

    struct tl_record *r = &out->rec;
    tl__record_clear(r);
    r->info.key = tl__strdup(key);
    r->info.worker_id = tl__strdup(who.worker_id);
    r->info.node_id = tl__strdup(who.node_id);
    r->info.task_info = tl__strdup(who.task_info);
    r->info.token = token;
    r->info.claimed_at_ms = r->info.heartbeat_at_ms = r->info.observed_at_ms = now;
    r->info.lock_timeout_ms = who.lock_timeout_ms;
    r->info.mode = who.mode;
    r->info.slots = who.slots;
    r->info.holders = req->shared ? (uint32_t)hs.n : 1;
    out->took_stale = stale > 0;
    holders_clear(&hs);
    if (!r->info.key || !r->info.worker_id || !r->info.node_id || !r->info.task_info) {
        tl__record_clear(r);
        return tl__store_fail(s, TL_ENOMEM, "out of memory after converting %s", key);
    }
    return TL_OK;

err_rollback:
    holders_clear(&hs);
    ret = tl__sqlite_fail(ss, rc, "converting a lock");
    tl__sqlite_rollback(ss);
    return ret;
}
