/*
 * postgres_modes.c -- shared holders and semaphores of the PostgreSQL store (store.h, version
 * 5; DESIGN.md section 9): claim, inspect, list, holders and force_release, whose SQL
 * (postgres_modes_sql.c) knows several holders per key.
 *
 * Layout. tasklock_locks keeps one row per key, as before: its token column is the key's one
 * token counter, and its row lock orders every write on the key. An exclusive holder lives in
 * that row, as it always did (so a store written by an older library needs no migration of its
 * rows). Shared holders are rows of tasklock_holders (key, token, worker, node, claimed,
 * heartbeat, timeout, task_info, claim id, slots), and while a key has any, its key row stands
 * for them: shared_token = token (the *mark*), worker_id and node_id "tasklock:shared", a
 * heartbeat in the year 9999 and the longest timeout, so that an older library sees the key
 * held and never stale. The view tasklock_holding_v6 lists every holder (the key row's
 * exclusive one, or the shared ones its mark vouches for); inspect, list, holders and the
 * functions read it. Waiters record their claim's mode and slots (tasklock_waiters.shared,
 * .slots; an older library's waiters are exclusive by the columns' defaults).
 *
 * Every claim is one call of tasklock_claim_v6 (this version calls tasklock_claim_v7, the same
 * but for the waiter's holding text and the upgrader-aware wake-up: postgres_convert_sql.c;
 * forced releases likewise call tasklock_force_v7): one statement, one transaction, deciding
 * under the key row's lock (FOR UPDATE) with fresh snapshots (READ COMMITTED), so that
 * concurrent claims, from threads or processes, never exceed the slots nor mix a writer with
 * anyone. A claim that will not wait and that the holders or the line refuse writes nothing.
 *
 * Older libraries on the same schema call their own functions (tasklock_claim_v2, ...), which
 * are kept as they were: they see a key held shared as held by "tasklock:shared", never stale,
 * so NORMAL and STEAL claims are refused; a forced claim or release of theirs replaces the key
 * row with a new token, which ends the mark: the shared holders are then gone (their renew
 * answers TL_ELOST) and a later claim of ours deletes their rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postgres_int.h"
#include "store.h"
#include "tl.h"

/* clang-format off */
#define MS(x) "floor(extract(epoch FROM " x ") * 1000)::int8"
#define STALE(t, now) "(" now " - " t ".heartbeat_at > " t ".lock_timeout_ms * interval '1 ms')"
#define LIVE(w, now) "(" w ".heartbeat_at + " w ".timeout_ms * interval '1 ms' > " now ")"
/* A holder's record columns, in tl__pg_read_record()'s order, then key, waiting, shared,
 * slots and the key's holder count. */
#define HOLDER_COLS(v)                                                                             \
    v ".token, " v ".worker_id, " v ".node_id, " MS(v ".claimed_at") ", " MS(v ".heartbeat_at")   \
    ", " v ".lock_timeout_ms, " v ".task_info, " STALE(v, "now()") ", " MS("now()") ", " v        \
    ".key, (SELECT count(*) FROM {s}.tasklock_waiters w WHERE w.key = " v ".key AND "             \
    LIVE("w", "now()") "), " v ".shared, " v ".slots, count(*) OVER (PARTITION BY " v ".key)"
#define NHOLDER (PG_NRECORD + 5)

const char *const tl__pg_modes_sql[PG_MODES_SQL] = {
    [PM_CLAIM] = "SELECT * FROM {s}.tasklock_claim_v7($1, $2, $3, $4, $5::int4, $6::int4, $7, "
                 "$8, $9::int4, $10::int4, $11::bool, $12::int4, $13)",
    /* The blocker: the exclusive holder, else the oldest shared one. */
    [PM_INSPECT] = "SELECT " HOLDER_COLS("v") " FROM {s}.tasklock_holding_v6 v WHERE v.key = $1 "
                   "ORDER BY v.shared, v.token LIMIT 1",
    [PM_HOLDERS] = "SELECT " HOLDER_COLS("v") " FROM {s}.tasklock_holding_v6 v WHERE v.key = $1 "
                   "ORDER BY v.token",
    [PM_LIST] = "SELECT " HOLDER_COLS("v") " FROM {s}.tasklock_holding_v6 v ORDER BY v.key, "
                "v.token",
    [PM_FORCE] = "SELECT * FROM {s}.tasklock_force_v7($1, $2::int8, $3, $4, $5, $6)",
};
/* clang-format on */

static tl_status bad_reply(struct pg_store *ps, const char *what)
{
    return tl__pg_bad_reply(ps, what);
}

/* Reads the mode (a boolean, shared) and slots at `col`, `col + 1` of `row` into `rec`. */
static bool read_mode(const PGresult *r, int row, int col, struct tl_record *rec)
{
    bool shared = false;
    int64_t slots = 0;

    if (!tl__pg_get_bool(r, row, col, &shared) || !tl__pg_get_i64(r, row, col + 1, &slots) ||
        slots < 0 || slots > TL_SLOTS_MAX)
        return false;
    rec->info.mode = shared ? TL_SHARED : TL_EXCLUSIVE;
    rec->info.slots = shared ? (uint32_t)slots : 0;
    return true;
}

static tl_status bad_mode(struct pg_store *ps, const char *key)
{
    return tl__store_fail(&ps->base, TL_ESTORE,
                          "postgres: lock \"%s\": a holder has a missing or bad mode or slots "
                          "(fix or delete it in %s.tasklock_holders)",
                          key, ps->schema);
}

tl_status tl__pg_claim(struct tl_store *s, const struct tl_claim *req, struct tl_claim_result *out)
{
    struct pg_store *ps = (struct pg_store *)s;
    char timeout[16], mode[8], claim_id[64], prio[16], wtimeout[16], slots[16];
    PGresult *r = NULL;
    tl_status st;

    if (req->waiter_id != NULL && !tl__pg_valid_waiter_id(req->waiter_id))
        return tl__store_fail(s, TL_EINVAL,
                              "postgres: a waiter id must be 32 lower-case hex digits");
    if (req->priority < TL_PRIORITY_MIN || req->priority > TL_PRIORITY_MAX)
        return tl__store_fail(s, TL_EINVAL, "postgres: priority %d is out of range (%d to %d)",
                              (int)req->priority, TL_PRIORITY_MIN, TL_PRIORITY_MAX);
    if (req->shared && (req->mode == TL_CLAIM_FORCE || req->slots > TL_SLOTS_MAX))
        return tl__store_fail(s, TL_EINVAL,
                              "postgres: a shared claim is never forced and has at most %u slots",
                              TL_SLOTS_MAX);
    /* A waiter without a timeout of its own lives as long as the lock would. */
    uint32_t wt = req->waiter_timeout_ms ? req->waiter_timeout_ms : req->lock_timeout_ms;
    (void)snprintf(prio, sizeof(prio), "%d", (int)req->priority);
    (void)snprintf(wtimeout, sizeof(wtimeout), "%u", wt ? (wt > INT32_MAX ? INT32_MAX : wt) : 1);
    (void)snprintf(timeout, sizeof(timeout), "%u", req->lock_timeout_ms);
    (void)snprintf(mode, sizeof(mode), "%d", (int)req->mode);
    (void)snprintf(slots, sizeof(slots), "%u", req->shared ? req->slots : 0);
    (void)snprintf(claim_id, sizeof(claim_id), "%lx.%llx.%llx.%llu", (unsigned long)getpid(),
                   (unsigned long long)(uintptr_t)ps, (unsigned long long)tl__real_now_ms(),
                   (unsigned long long)++ps->claims);
    const char *const p[] = {req->key,
                             req->worker_id,
                             req->node_id,
                             req->task_info,
                             timeout,
                             mode,
                             claim_id,
                             req->waiter_id,
                             prio,
                             wtimeout,
                             req->shared ? "true" : "false",
                             slots,
                             req->holding};
    st = tl__pg_run(ps, &ps->main, "claiming a lock", ps->modes_sql[PM_CLAIM], 13, p, &r);
    if (st != TL_OK)
        return st;

    /* (outcome, record, how, waiting, ahead, shared, slots) */
    const int c_how = 1 + PG_NRECORD, c_wait = c_how + 1, c_ahead = c_how + 2;
    const int c_shared = c_how + 3, c_slots = c_how + 4;
    const char *outcome =
        PQntuples(r) == 1 && PQnfields(r) == c_slots + 1 ? tl__pg_get_text(r, 0, 0) : NULL;
    int64_t waiting = 0, ahead = 0, held_slots = 0;
    if (outcome != NULL && strcmp(outcome, "mismatch") == 0) {
        bool ok = tl__pg_get_i64(r, 0, c_slots, &held_slots) && held_slots >= 0 &&
                  held_slots <= UINT32_MAX;
        PQclear(r);
        if (!ok)
            return bad_reply(ps, "claiming a lock");
        return tl__slots_mismatch(s, req->key, (uint32_t)held_slots, req->slots);
    }
    if (outcome == NULL || !tl__pg_get_i64(r, 0, c_wait, &waiting) ||
        !tl__pg_get_i64(r, 0, c_ahead, &ahead) || waiting < 0 || ahead < 0 ||
        waiting > UINT32_MAX || ahead > UINT32_MAX ||
        (strcmp(outcome, "won") != 0 && strcmp(outcome, "mine") != 0 &&
         strcmp(outcome, "held") != 0 && strcmp(outcome, "line") != 0)) {
        PQclear(r);
        return bad_reply(ps, "claiming a lock");
    }
    if (strcmp(outcome, "line") == 0) {
        PQclear(r); /* free, but live waiters are ahead: no holder to show */
        out->waiting = (uint32_t)waiting;
        out->ahead = (uint32_t)ahead;
        return TL_EBUSY;
    }
    st = tl__pg_read_record(ps, r, 0, 1, req->key, &out->rec);
    if (st == TL_OK && !read_mode(r, 0, c_shared, &out->rec)) {
        tl__record_clear(&out->rec);
        st = bad_mode(ps, req->key);
    }
    const char *how = tl__pg_get_text(r, 0, c_how);
    if (st == TL_OK && strcmp(outcome, "held") == 0) {
        out->holder_known = true;
        out->waiting = (uint32_t)waiting;
        out->ahead = (uint32_t)ahead;
        st = TL_EBUSY;
    } else if (st == TL_OK) { /* won, now or by an earlier try of this same claim */
        out->took_stale = how != NULL && strcmp(how, "stolen") == 0;
        out->took_forced = how != NULL && strcmp(how, "forced") == 0;
        out->rec.info.stale = false;
        if (strcmp(outcome, "mine") == 0)
            TL_LOG(s->log, TL_LOG_INFO, "postgres: %s: a retried claim had already won", req->key);
    }
    PQclear(r);
    return st;
}

/* Reads row `row` of a HOLDER_COLS reply into a new record. */
static tl_status read_holder(struct pg_store *ps, const PGresult *r, int row,
                             struct tl_record **out)
{
    const char *key = tl__pg_get_text(r, row, PG_NRECORD);
    int64_t waiting = 0, holders = 0;
    struct tl_record *rec = tl__record_new();
    tl_status st;

    *out = NULL;
    if (rec == NULL)
        return tl__store_fail(&ps->base, TL_ENOMEM, "out of memory");
    if (key == NULL || !tl__pg_get_i64(r, row, PG_NRECORD + 1, &waiting) || waiting < 0 ||
        waiting > UINT32_MAX || !tl__pg_get_i64(r, row, PG_NRECORD + 4, &holders) || holders < 1 ||
        holders > UINT32_MAX) {
        tl__record_free(rec);
        return bad_reply(ps, "reading a lock");
    }
    if ((st = tl__pg_read_record(ps, r, row, 0, key, rec)) != TL_OK) {
        tl__record_free(rec);
        return st;
    }
    if (!read_mode(r, row, PG_NRECORD + 2, rec)) {
        tl__record_free(rec);
        return bad_mode(ps, key);
    }
    rec->info.waiting = (uint32_t)waiting;
    rec->info.holders = (uint32_t)holders;
    *out = rec;
    return TL_OK;
}

/* Runs statement `id` (with `key` unless NULL) and reads every row as a holder. */
static tl_status read_holders(struct pg_store *ps, enum pg_modes_stmt id, const char *what,
                              const char *key, struct tl_record ***out, size_t *count)
{
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    PGresult *r = NULL;
    const char *const p[] = {key};

    *out = NULL;
    *count = 0;
    tl_status st = tl__pg_run(ps, &ps->main, what, ps->modes_sql[id], key ? 1 : 0, p, &r);
    if (st != TL_OK)
        return st;
    if (PQntuples(r) > 0 && PQnfields(r) != NHOLDER)
        st = bad_reply(ps, what);
    for (int i = 0; st == TL_OK && i < PQntuples(r); i++) {
        struct tl_record *rec = NULL;

        if ((st = read_holder(ps, r, i, &rec)) != TL_OK)
            break;
        if (tl__record_array_push(&arr, &n, &cap, rec) != TL_OK) {
            tl__record_free(rec);
            st = tl__store_fail(&ps->base, TL_ENOMEM, "out of memory");
        }
    }
    PQclear(r);
    if (st != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return st;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

tl_status tl__pg_inspect(struct tl_store *s, const char *key, struct tl_record *out, bool *found)
{
    struct pg_store *ps = (struct pg_store *)s;
    struct tl_record **arr = NULL;
    size_t n = 0;

    *found = false;
    tl_status st = read_holders(ps, PM_INSPECT, "reading a lock", key, &arr, &n);
    if (st != TL_OK)
        return st;
    if (n == 1) {
        *out = *arr[0]; /* the strings move to `out` */
        memset(arr[0], 0, sizeof(*arr[0]));
        *found = true;
    }
    tl_info_array_free((struct tl_info **)arr, n);
    return TL_OK;
}

tl_status tl__pg_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                         size_t *count)
{
    return read_holders((struct pg_store *)s, PM_HOLDERS, "reading the holders", key, out, count);
}

tl_status tl__pg_list(struct tl_store *s, struct tl_record ***out, size_t *count)
{
    return read_holders((struct pg_store *)s, PM_LIST, "listing locks", NULL, out, count);
}

tl_status tl__pg_force_release(struct tl_store *s, const struct tl_force_release *req,
                               struct tl_record *former, bool *found)
{
    struct pg_store *ps = (struct pg_store *)s;
    char token[24];
    PGresult *r = NULL;
    bool any = false;

    *found = false;
    (void)snprintf(token, sizeof(token), "%llu", (unsigned long long)req->token);
    const char *const p[] = {req->key,     token,        req->worker_id,
                             req->node_id, req->summary, ps->channel};
    tl_status st = tl__pg_run(ps, &ps->main, "breaking a lock", ps->modes_sql[PM_FORCE], 6, p, &r);
    if (st != TL_OK)
        return st;
    /* (found, record, shared, slots, new token) */
    if (PQntuples(r) != 1 || PQnfields(r) != PG_NRECORD + 4 || !tl__pg_get_bool(r, 0, 0, &any)) {
        PQclear(r);
        return bad_reply(ps, "breaking a lock");
    }
    if (any && (st = tl__pg_read_record(ps, r, 0, 1, req->key, former)) == TL_OK) {
        if (!read_mode(r, 0, 1 + PG_NRECORD, former)) {
            tl__record_clear(former);
            st = bad_mode(ps, req->key);
        } else {
            *found = true;
            if (PQgetisnull(r, 0, PG_NRECORD + 3))
                st = tl__store_fail(s, TL_ENOTOWNER, "%s is held by %s with token %llu%s", req->key,
                                    former->info.worker_id, (unsigned long long)former->info.token,
                                    former->info.mode == TL_SHARED
                                        ? " (and maybe others), none with the token given"
                                        : "");
        }
    }
    PQclear(r);
    return st;
}
