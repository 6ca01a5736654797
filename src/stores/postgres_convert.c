/*
 * postgres_convert.c -- upgrades, downgrades and the wait-for graph of the PostgreSQL store
 * (store.h, version 5: convert, waiters with key NULL, tl_waiter.holding); the SQL is in
 * postgres_convert_sql.c.
 *
 * A conversion is one call of tasklock_convert_v7: one statement, one transaction, under the
 * key row's lock (FOR UPDATE), like a claim. The holder is found by token and worker in
 * tasklock_holding_v6 (the key row's exclusive holder, or a shared one in tasklock_holders).
 * An upgrade that wins turns the key row into the exclusive holder (the layout of an
 * exclusive claim: an older library sees an ordinary held key); a downgrade turns it into the
 * mark of one shared holder, a row of tasklock_holders (the layout of a shared claim).
 *
 * An upgrade beside other holders waits in line as a row of tasklock_waiters with priority
 * TL_PRIORITY_UPGRADE (ahead of every claim's waiter, whose priorities end at TL_PRIORITY_MAX)
 * and `upgrading`, the token of the shared hold it converts. tasklock_wake_head_v7 (called by
 * this library's release, leave, forced release and claim: their _v7 functions) wakes such a
 * head when no other holder is left, and tasklock_turn_v7 (polled turns) says the same.
 *
 * The wait-for graph: each waiter row keeps `holding`, the claim's text as the core gave it,
 * written when the waiter joins and at each refresh (tasklock_queue_v7); waiters() with key
 * NULL is one SELECT over tasklock_waiters, so a deadlock check costs one round trip for the
 * graph (plus the core's holder reads).
 *
 * Older libraries on the same schema keep their own functions. They never write `holding` nor
 * `upgrading` (NULL: read as "" and as a claim's waiter), and they see an upgrader's row as an
 * exclusive waiter of priority 1001: ahead of each of their claims, so they do not pass it.
 * Their releases call tasklock_wake_head_v6, which does not wake an upgrader at the head: it
 * then finds its turn at its next refresh of the line instead (a wait of at most one refresh
 * interval, not a lost grant).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postgres_int.h"
#include "store.h"
#include "tl.h"

static tl_status bad_reply(struct pg_store *ps, const char *what)
{
    return tl__pg_bad_reply(ps, what);
}

/* Reads the mode (shared) and slots at `col`, `col + 1` of `row` into `rec`. */
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

tl_status tl__pg_convert(struct tl_store *s, const struct tl_record *held,
                         const struct tl_claim *req, struct tl_claim_result *out)
{
    struct pg_store *ps = (struct pg_store *)s;
    char token[24], mode[8], slots[16], claim_id[64], prio[16], wtimeout[16];
    PGresult *r = NULL;
    tl_status st;

    if (req->waiter_id != NULL && !tl__pg_valid_waiter_id(req->waiter_id))
        return tl__store_fail(s, TL_EINVAL,
                              "postgres: a waiter id must be 32 lower-case hex digits");
    if (req->priority < TL_PRIORITY_MIN || req->priority > TL_PRIORITY_UPGRADE)
        return tl__store_fail(s, TL_EINVAL, "postgres: priority %d is out of range (%d to %d)",
                              (int)req->priority, TL_PRIORITY_MIN, TL_PRIORITY_UPGRADE);
    if (req->mode == TL_CLAIM_FORCE || (req->shared && req->slots > TL_SLOTS_MAX))
        return tl__store_fail(s, TL_EINVAL,
                              "postgres: a conversion is never forced, and has at most %u slots",
                              TL_SLOTS_MAX);
    if (req->holding != NULL && strlen(req->holding) > TL_HOLDING_MAX)
        return tl__store_fail(s, TL_EINVAL, "postgres: a holding text has at most %d bytes",
                              TL_HOLDING_MAX);
    uint32_t wt = req->waiter_timeout_ms ? req->waiter_timeout_ms : req->lock_timeout_ms;
    (void)snprintf(token, sizeof(token), "%llu", (unsigned long long)held->info.token);
    (void)snprintf(mode, sizeof(mode), "%d", (int)req->mode);
    (void)snprintf(slots, sizeof(slots), "%u", req->shared ? req->slots : 0);
    (void)snprintf(prio, sizeof(prio), "%d", (int)req->priority);
    (void)snprintf(wtimeout, sizeof(wtimeout), "%u", wt ? (wt > INT32_MAX ? INT32_MAX : wt) : 1);
    /* Its own id, as a claim's: a call retried after a lost reply finds its grant. */
    (void)snprintf(claim_id, sizeof(claim_id), "c%lx.%llx.%llx.%llu", (unsigned long)getpid(),
                   (unsigned long long)(uintptr_t)ps, (unsigned long long)tl__real_now_ms(),
                   (unsigned long long)++ps->claims);
    const char *const p[] = {held->info.key,
                             held->info.worker_id,
                             token,
                             mode,
                             req->shared ? "true" : "false",
                             slots,
                             claim_id,
                             req->waiter_id,
                             prio,
                             wtimeout,
                             req->holding != NULL ? req->holding : "",
                             ps->channel};
    const char *what = req->shared ? "downgrading a lock" : "upgrading a lock";
    st = tl__pg_run(ps, &ps->main, what, ps->conv_sql[PC_CONVERT], 12, p, &r);
    if (st != TL_OK)
        return st;

    /* (outcome, record, how, waiting, ahead, shared, slots), as tasklock_claim_v6's. */
    const int c_how = 1 + PG_NRECORD, c_wait = c_how + 1, c_ahead = c_how + 2;
    const int c_shared = c_how + 3;
    const char *outcome =
        PQntuples(r) == 1 && PQnfields(r) == c_shared + 2 ? tl__pg_get_text(r, 0, 0) : NULL;
    int64_t waiting = 0, ahead = 0;
    if (outcome != NULL && strcmp(outcome, "lost") == 0) {
        PQclear(r);
        return tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu",
                              held->info.key, held->info.worker_id,
                              (unsigned long long)held->info.token);
    }
    if (outcome == NULL || !tl__pg_get_i64(r, 0, c_wait, &waiting) ||
        !tl__pg_get_i64(r, 0, c_ahead, &ahead) || waiting < 0 || ahead < 0 ||
        waiting > UINT32_MAX || ahead > UINT32_MAX ||
        (strcmp(outcome, "won") != 0 && strcmp(outcome, "mine") != 0 &&
         strcmp(outcome, "held") != 0)) {
        PQclear(r);
        return bad_reply(ps, what);
    }
    st = tl__pg_read_record(ps, r, 0, 1, held->info.key, &out->rec);
    if (st == TL_OK && !read_mode(r, 0, c_shared, &out->rec)) {
        tl__record_clear(&out->rec);
        st = bad_reply(ps, what);
    }
    if (st == TL_OK && strcmp(outcome, "held") == 0) {
        out->holder_known = true;
        out->waiting = (uint32_t)waiting;
        out->ahead = (uint32_t)ahead;
        st = TL_EBUSY;
    } else if (st == TL_OK) {
        out->rec.info.stale = false;
        if (strcmp(outcome, "mine") == 0)
            TL_LOG(s->log, TL_LOG_INFO, "postgres: %s: a retried conversion had already won",
                   held->info.key);
    }
    PQclear(r);
    return st;
}

/* Reads row `row` of a waiters reply (postgres_convert_sql.c's WAITER_COLS). */
static tl_status read_waiter(struct pg_store *ps, const PGresult *r, int row,
                             struct tl_waiter **out)
{
    const char *id = tl__pg_get_text(r, row, 0), *w = tl__pg_get_text(r, row, 1);
    const char *nd = tl__pg_get_text(r, row, 2), *key = tl__pg_get_text(r, row, 9);
    const char *holding = tl__pg_get_text(r, row, 10);
    int64_t prio, seq, since, beat, timeout;
    bool dead;

    *out = NULL;
    if (id == NULL || w == NULL || nd == NULL || key == NULL || holding == NULL ||
        !tl__pg_get_i64(r, row, 3, &prio) || prio < INT32_MIN || prio > INT32_MAX ||
        !tl__pg_get_i64(r, row, 4, &seq) || seq < 0 || !tl__pg_get_i64(r, row, 5, &since) ||
        !tl__pg_get_i64(r, row, 6, &beat) || !tl__pg_get_i64(r, row, 7, &timeout) || timeout <= 0 ||
        timeout > UINT32_MAX || !tl__pg_get_bool(r, row, 8, &dead))
        return tl__store_fail(&ps->base, TL_ESTORE,
                              "postgres: a row of %s.tasklock_waiters%s%s%s has a missing or bad "
                              "field",
                              ps->schema, key ? " for \"" : "", key ? key : "", key ? "\"" : "");
    struct tl_waiter *x = tl__waiter_new();
    if (x != NULL) {
        x->key = tl__strdup(key);
        x->waiter_id = tl__strdup(id);
        x->worker_id = tl__strdup(w);
        x->node_id = tl__strdup(nd);
        x->holding = tl__strdup(holding);
        x->priority = (int32_t)prio;
        x->seq = (uint64_t)seq;
        x->since_ms = since;
        x->heartbeat_at_ms = beat;
        x->timeout_ms = (uint32_t)timeout;
        x->dead = dead;
    }
    if (x == NULL || !x->key || !x->waiter_id || !x->worker_id || !x->node_id || !x->holding) {
        tl__waiter_free(x);
        return tl__store_fail(&ps->base, TL_ENOMEM, "out of memory");
    }
    *out = x;
    return TL_OK;
}

tl_status tl__pg_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                         size_t *count)
{
    struct pg_store *ps = (struct pg_store *)s;
    struct tl_waiter **arr = NULL;
    size_t n = 0, cap = 0;
    PGresult *r = NULL;
    const char *const p[] = {key};
    tl_status st;

    *out = NULL;
    *count = 0;
    /* key NULL: every waiter of the store, for the wait-for graph. */
    st =
        tl__pg_run(ps, &ps->main, "reading the line",
                   ps->conv_sql[key != NULL ? PC_WAITERS_KEY : PC_WAITERS_ALL], key ? 1 : 0, p, &r);
    if (st != TL_OK)
        return st;
    if (PQntuples(r) > 0 && PQnfields(r) != 11)
        st = bad_reply(ps, "reading the line");
    for (int i = 0; st == TL_OK && i < PQntuples(r); i++) {
        struct tl_waiter *x = NULL;

        if ((st = read_waiter(ps, r, i, &x)) != TL_OK)
            break;
        if (tl__waiter_array_push(&arr, &n, &cap, x) != TL_OK) {
            tl__waiter_free(x);
            st = tl__store_fail(s, TL_ENOMEM, "out of memory");
        }
    }
    PQclear(r);
    if (st != TL_OK) {
        tl_waiter_array_free(arr, n);
        return st;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}
