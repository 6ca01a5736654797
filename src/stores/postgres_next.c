/*
 * postgres_next.c -- claim-next and done markers of the PostgreSQL store (store.h, version 4;
 * DESIGN.md section 8).
 *
 * A done marker is a row of tasklock_done (key, worker, node, token, done_at, summary). Three
 * PL/pgSQL functions, made with the other tables (and added to a schema made before them, as
 * the line was), do the work, each called as one statement in one round trip:
 *
 * - tasklock_next_v5 (claim-next): one plain read walks the candidates in order (unnest WITH
 *   ORDINALITY, each with its lock row, marker and live waiters); for each that looks
 *   claimable, it takes the key's row lock with FOR UPDATE SKIP LOCKED on that one key (so
 *   concurrent claimers over the same candidates spread out instead of queueing behind each
 *   other, and a key another transaction is working on counts as held: "no row" is not "no
 *   work"; a key without a row yet is first taken with pg_try_advisory_xact_lock, since the
 *   insert of its row would wait for another inserter's commit, which SKIP LOCKED does not
 *   spare), re-checks marker, holder and line under the lock (fresh snapshots: READ
 *   COMMITTED), and grants it with tasklock_grant_v2, the claim's own grant (token, `acquired`
 *   or `stolen` event). No `IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`, which the planner
 *   may re-run and so claim more than one key. A claim-next that finds nothing claimable
 *   writes nothing. A retry of the same call (its reply lost with the connection) finds its
 *   own win by the claim id, as a claim does. It also returns the indices of the candidates
 *   it found done (store.h's done_seen).
 * - tasklock_finish_v5: the release (tasklock_release_v1's, notifying only flagged rows and a
 *   line's head, as before), with `done` the marker and the `done` event in the same
 *   transaction, then with candidates tasklock_next_v5 in it too.
 * - tasklock_reopen_v4: deletes the marker and records `reopened`.
 * - tasklock_next_v4 and tasklock_finish_v4, the same without the done indices, are kept for
 *   clients made before them (SQL wrappers of the v5 functions).
 * - This version calls tasklock_next_v6 and tasklock_finish_v6 (postgres_modes_sql.c): the same
 *   with shared holders (a key with any holder that counts is held; the release is
 *   tasklock_drop_v6's, of one holder); the v5 ones stay for libraries made before them.
 *
 * wait_any is pg_wait over many keys: LISTEN on the release channel (wait session), then one
 * statement flags the candidates that are held or done (wake = true; rows already flagged are
 * not written again) and says whether one is free already; then it blocks until a release (or
 * reopen) of a flagged candidate notifies. As with pg_wait, only flagged rows notify, so
 * releases nobody waits for never take the server's notification lock.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postgres_int.h"
#include "store.h"
#include "tl.h"

enum next_stmt { NS_NEXT, NS_FINISH, NS_REOPEN, NS_DONE_LIST, NS_ANY_FLAG, NS_ANY_FREE };
_Static_assert(NS_ANY_FREE + 1 == PG_NEXT_SQL, "PG_NEXT_SQL counts the statements");

/* clang-format off */
#define MS(x) "floor(extract(epoch FROM " x ") * 1000)::int8"
#define STALE(t, now) "(" now " - " t ".heartbeat_at > " t ".lock_timeout_ms * interval '1 ms')"
#define LIVE(w, now) "(" w ".heartbeat_at + " w ".timeout_ms * interval '1 ms' > " now ")"
/* The reply of a claim-next: index (0-based; NULL: none won), token, how, the server's now,
 * then the tally and the indices (0-based) of the candidates it found done. */
#define NEXT_COLS 8

const char *const tl__pg_next_sql[PG_NEXT_SQL] = {
    [NS_NEXT] = "SELECT * FROM {s}.tasklock_next_v6($1::text[], $2, $3, $4, $5::int4, $6::int4, "
                "$7)",
    /* One more column first: 1 released, 2 released before by this token, 0 not ours. */
    [NS_FINISH] = "SELECT * FROM {s}.tasklock_finish_v7($1, $2, $3::int8, $4, $5, $6, $7::bool, "
                  "$8::text[], $9, $10, $11, $12::int4, $13::int4, $14)",
    [NS_REOPEN] = "SELECT {s}.tasklock_reopen_v4($1, $2, $3, $4)",
    [NS_DONE_LIST] = "SELECT key, worker_id, node_id, token, " MS("done_at") ", summary FROM "
                     "{s}.tasklock_done WHERE $1::text IS NULL OR key = $1 ORDER BY key",
    /* wait_any: flag the held or done candidates that are not flagged yet, and say whether
     * one is free (not done, no live waiter, and not held: free in this snapshot, or held but
     * not flagged by us, which means a release committed while the flag waited for the row:
     * the update then skips it). */
    [NS_ANY_FLAG] =
        "WITH c AS (SELECT u.k FROM unnest($1::text[]) u(k)),\n"
        "f AS (UPDATE {s}.tasklock_locks l SET wake = true FROM c WHERE l.key = c.k AND NOT "
        "l.wake AND (l.worker_id IS NOT NULL OR EXISTS (SELECT 1 FROM {s}.tasklock_done d WHERE "
        "d.key = l.key)) RETURNING l.key)\n"
        "SELECT EXISTS (SELECT 1 FROM c LEFT JOIN {s}.tasklock_locks l ON l.key = c.k WHERE NOT "
        "EXISTS (SELECT 1 FROM f WHERE f.key = c.k) AND (l.worker_id IS NULL OR NOT l.wake) AND "
        "NOT EXISTS (SELECT 1 FROM {s}.tasklock_done d WHERE d.key = c.k) AND NOT EXISTS (SELECT "
        "1 FROM {s}.tasklock_waiters w WHERE w.key = c.k AND " LIVE("w", "now()") "))",
    /* The same question without flags (pooled=true, wakeup=off: polled). */
    [NS_ANY_FREE] =
        "SELECT EXISTS (SELECT 1 FROM unnest($1::text[]) c(k) LEFT JOIN {s}.tasklock_locks l ON "
        "l.key = c.k WHERE l.worker_id IS NULL AND NOT EXISTS (SELECT 1 FROM {s}.tasklock_done d "
        "WHERE d.key = c.k) AND NOT EXISTS (SELECT 1 FROM {s}.tasklock_waiters w WHERE w.key = "
        "c.k AND " LIVE("w", "now()") "))",
};

/* clang-format on */

void tl__pg_next_check(char *buf, size_t size, const char *sc)
{
    (void)snprintf(
        buf, size,
        "AND to_regclass('\"%s\".tasklock_done') IS NOT NULL AND "
        "to_regprocedure('\"%s\".tasklock_next_v4(text[], text, text, text, integer, integer, "
        "text)') IS NOT NULL AND to_regprocedure('\"%s\".tasklock_finish_v4(text, text, bigint, "
        "text, text, text, boolean, text[], text, text, text, integer, integer, text)') IS NOT "
        "NULL "
        "AND to_regprocedure('\"%s\".tasklock_reopen_v4(text, text, text, text)') IS NOT NULL "
        "AND to_regprocedure('\"%s\".tasklock_next_v5(text[], text, text, text, integer, integer, "
        "text)') IS NOT NULL AND to_regprocedure('\"%s\".tasklock_finish_v5(text, text, bigint, "
        "text, text, text, boolean, text[], text, text, text, integer, integer, text)') IS NOT "
        "NULL",
        sc, sc, sc, sc, sc, sc);
}
/* clang-format off */

const char *const tl__pg_next_ddl[PG_NEXT_DDL] = {
    "CREATE TABLE IF NOT EXISTS {s}.tasklock_done ("
    " key text COLLATE \"C\" PRIMARY KEY,"
    " worker_id text NOT NULL, node_id text NOT NULL, token bigint NOT NULL,"
    " done_at timestamptz NOT NULL, summary text NOT NULL)",

    /* A schema made before done markers: tasklock_history's CHECK refuses the events `done`
     * and `reopened`. Replaced (NOT VALID: every old row passes the new one anyway, so there
     * is no need to scan the table under its lock). */
    "DO $d$\n"
    "DECLARE\n"
    "  c record;\n"
    "BEGIN\n"
    "  FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = "
    "'{s}.tasklock_history'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE "
    "'%''lost''%' AND pg_get_constraintdef(oid) NOT LIKE '%''reopened''%' LOOP\n"
    "    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '{s}.tasklock_history', "
    "c.conname);\n"
    "    ALTER TABLE {s}.tasklock_history ADD CONSTRAINT tasklock_history_event_check CHECK "
    "(event IN ('acquired','released','stolen','forced','lost','done','reopened')) NOT VALID;\n"
    "  END LOOP;\n"
    "END\n"
    "$d$",

    "CREATE OR REPLACE FUNCTION {s}.tasklock_next_v5(p_keys text[], p_worker text, p_node text, "
    "p_task text, p_timeout integer, p_mode integer, p_claim text, OUT o_index integer, "
    "OUT o_token bigint, OUT o_how text, OUT o_now bigint, OUT o_done integer, "
    "OUT o_held integer, OUT o_queued integer, OUT o_seen integer[]) LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  t timestamptz := now();\n"
    "  c record;\n"
    "  r record;\n"
    "  g record;\n"
    "BEGIN\n"
    "  IF current_setting('synchronous_commit') = 'off' THEN\n"
    "    PERFORM set_config('synchronous_commit', 'on', true);\n"
    "  END IF;\n"
    "  o_now := " MS("t") "; o_done := 0; o_held := 0; o_queued := 0; o_seen := '{}';\n"
    /* A retry of this same call whose first reply was lost: its win. */
    "  SELECT u.i, l.token, l.how INTO r FROM unnest(p_keys) WITH ORDINALITY u(k, i) JOIN "
    "{s}.tasklock_locks l ON l.key = u.k WHERE l.claim_id = p_claim AND l.worker_id = p_worker "
    "LIMIT 1;\n"
    "  IF FOUND THEN\n"
    "    o_index := r.i - 1; o_token := r.token; o_how := r.how;\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  FOR c IN SELECT u.k, u.i, l.key IS NULL AS missing, coalesce(l.worker_id IS NOT NULL AND "
    "NOT (p_mode = 1 AND " STALE("l", "t") "), false) AS busy, EXISTS (SELECT 1 FROM "
    "{s}.tasklock_done d WHERE d.key = u.k) AS done, EXISTS (SELECT 1 FROM {s}.tasklock_waiters "
    "w WHERE w.key = u.k AND " LIVE("w", "t") ") AS queued FROM unnest(p_keys) WITH ORDINALITY "
    "u(k, i) LEFT JOIN {s}.tasklock_locks l ON l.key = u.k ORDER BY u.i LOOP\n"
    "    IF c.done THEN o_done := o_done + 1; o_seen := o_seen || (c.i::int4 - 1); CONTINUE; END "
    "IF;\n"
    "    IF c.busy THEN o_held := o_held + 1; CONTINUE; END IF;\n"
    "    IF c.queued THEN o_queued := o_queued + 1; CONTINUE; END IF;\n"
    "    IF c.missing THEN\n"
    /* Another claimer inserting this row would make the insert wait for its commit: that
     * claimer holds the key's advisory lock meanwhile, so the key counts as held instead. */
    "      IF NOT pg_try_advisory_xact_lock(" PG_NEXT_ADVISORY ", hashtext(c.k)) THEN\n"
    "        o_held := o_held + 1; CONTINUE;\n"
    "      END IF;\n"
    "      INSERT INTO {s}.tasklock_locks (key, token) VALUES (c.k, "
    "nextval('{s}.tasklock_tokens')) ON CONFLICT (key) DO NOTHING;\n"
    "    END IF;\n"
    /* This key alone, without waiting: another transaction on it makes it held for now. */
    "    SELECT l.* INTO r FROM {s}.tasklock_locks l WHERE l.key = c.k FOR UPDATE SKIP LOCKED;\n"
    "    IF NOT FOUND THEN o_held := o_held + 1; CONTINUE; END IF;\n"
    /* Under the row lock, with fresh snapshots: what a release or a waiter committed. */
    "    IF EXISTS (SELECT 1 FROM {s}.tasklock_done d WHERE d.key = c.k) THEN\n"
    "      o_done := o_done + 1; o_seen := o_seen || (c.i::int4 - 1); CONTINUE;\n"
    "    END IF;\n"
    "    IF r.worker_id IS NOT NULL AND NOT (p_mode = 1 AND " STALE("r", "t") ") THEN\n"
    "      o_held := o_held + 1; CONTINUE;\n"
    "    END IF;\n"
    "    IF EXISTS (SELECT 1 FROM {s}.tasklock_waiters w WHERE w.key = c.k AND " LIVE("w", "t")
    ") THEN\n"
    "      o_queued := o_queued + 1; CONTINUE;\n"
    "    END IF;\n"
    "    SELECT * INTO g FROM {s}.tasklock_grant_v2(c.k, p_worker, p_node, p_task, p_timeout, "
    "p_claim, NULL, t);\n"
    "    o_index := c.i - 1; o_token := g.g_token; o_how := g.g_how;\n"
    "    RETURN;\n"
    "  END LOOP;\n"
    "END\n"
    "$f$",

    "CREATE OR REPLACE FUNCTION {s}.tasklock_finish_v5(p_key text, p_worker text, p_token "
    "bigint, p_node text, p_summary text, p_channel text, p_done boolean, p_keys text[], "
    "p_nworker text, p_nnode text, p_task text, p_timeout integer, p_mode integer, p_claim text, "
    "OUT o_released integer, OUT o_index integer, OUT o_token bigint, OUT o_how text, "
    "OUT o_now bigint, OUT o_done integer, OUT o_held integer, OUT o_queued integer, "
    "OUT o_seen integer[]) LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  w boolean;\n"
    "  c record;\n"
    "  n record;\n"
    "BEGIN\n"
    "  UPDATE {s}.tasklock_locks l SET worker_id = NULL, node_id = NULL, claimed_at = NULL, "
    "heartbeat_at = NULL, lock_timeout_ms = NULL, task_info = NULL, claim_id = NULL, how = NULL, "
    "displaced = NULL\n"
    "  WHERE l.key = p_key AND l.worker_id = p_worker AND l.token = p_token RETURNING l.wake "
    "INTO w;\n"
    "  IF FOUND THEN\n"
    "    IF p_done THEN\n"
    "      INSERT INTO {s}.tasklock_done AS d (key, worker_id, node_id, token, done_at, summary) "
    "VALUES (p_key, p_worker, p_node, p_token, now(), p_summary) ON CONFLICT (key) DO UPDATE SET "
    "worker_id = excluded.worker_id, node_id = excluded.node_id, token = excluded.token, "
    "done_at = excluded.done_at, summary = excluded.summary;\n"
    "    END IF;\n"
    "    INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token, detail) "
    "VALUES (now(), p_key, CASE WHEN p_done THEN 'done' ELSE 'released' END, p_worker, p_node, "
    "p_token, p_summary);\n"
    /* Only a flagged row notifies (pg_wait, wait_any), and only a line's live head is told. */
    "    IF w THEN\n"
    "      PERFORM pg_notify(p_channel, p_key);\n"
    "    END IF;\n"
    "    PERFORM {s}.tasklock_wake_head_v2(p_key);\n"
    "    o_released := 1;\n"
    "  ELSE\n"
    "    SELECT l.token, l.worker_id IS NULL AS free INTO c FROM {s}.tasklock_locks l WHERE "
    "l.key = p_key;\n"
    "    IF NOT (FOUND AND c.free AND c.token = p_token) THEN\n"
    "      o_released := 0;\n"
    "      RETURN;\n"
    "    END IF;\n"
    "    o_released := 2;\n" /* free, our token still the last: released by us before */
    "  END IF;\n"
    "  IF p_keys IS NOT NULL THEN\n"
    "    SELECT * INTO n FROM {s}.tasklock_next_v5(p_keys, p_nworker, p_nnode, p_task, "
    "p_timeout, p_mode, p_claim);\n"
    "    o_index := n.o_index; o_token := n.o_token; o_how := n.o_how; o_now := n.o_now;\n"
    "    o_done := n.o_done; o_held := n.o_held; o_queued := n.o_queued; o_seen := n.o_seen;\n"
    "  END IF;\n"
    "END\n"
    "$f$",

    /* The version 4 functions, for clients made before o_seen: the same calls without it. */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_next_v4(p_keys text[], p_worker text, p_node text, "
    "p_task text, p_timeout integer, p_mode integer, p_claim text, OUT o_index integer, "
    "OUT o_token bigint, OUT o_how text, OUT o_now bigint, OUT o_done integer, "
    "OUT o_held integer, OUT o_queued integer) LANGUAGE sql AS $f$\n"
    "SELECT n.o_index, n.o_token, n.o_how, n.o_now, n.o_done, n.o_held, n.o_queued FROM "
    "{s}.tasklock_next_v5(p_keys, p_worker, p_node, p_task, p_timeout, p_mode, p_claim) n\n"
    "$f$",

    "CREATE OR REPLACE FUNCTION {s}.tasklock_finish_v4(p_key text, p_worker text, p_token "
    "bigint, p_node text, p_summary text, p_channel text, p_done boolean, p_keys text[], "
    "p_nworker text, p_nnode text, p_task text, p_timeout integer, p_mode integer, p_claim text, "
    "OUT o_released integer, OUT o_index integer, OUT o_token bigint, OUT o_how text, "
    "OUT o_now bigint, OUT o_done integer, OUT o_held integer, OUT o_queued integer) "
    "LANGUAGE sql AS $f$\n"
    "SELECT f.o_released, f.o_index, f.o_token, f.o_how, f.o_now, f.o_done, f.o_held, "
    "f.o_queued FROM {s}.tasklock_finish_v5(p_key, p_worker, p_token, p_node, p_summary, "
    "p_channel, p_done, p_keys, p_nworker, p_nnode, p_task, p_timeout, p_mode, p_claim) f\n"
    "$f$",

    /* A reopen notifies the claim-next waiters that flagged the key (wait_any). */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_reopen_v4(p_key text, p_worker text, p_node text, "
    "p_channel text) RETURNS boolean LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  d record;\n"
    "BEGIN\n"
    "  DELETE FROM {s}.tasklock_done x WHERE x.key = p_key RETURNING x.worker_id, x.token INTO "
    "d;\n"
    "  IF NOT FOUND THEN\n"
    "    RETURN false;\n"
    "  END IF;\n"
    "  INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token, detail) "
    "VALUES (now(), p_key, 'reopened', p_worker, p_node, d.token, 'done by ' || d.worker_id || "
    "' (token ' || d.token || ')');\n"
    "  PERFORM pg_notify(p_channel, p_key) FROM {s}.tasklock_locks l WHERE l.key = p_key AND "
    "l.wake;\n"
    "  RETURN true;\n"
    "END\n"
    "$f$",
};
/* clang-format on */

/* The candidates as a text[] literal: every key quoted, `"` and `\` escaped. NULL: no
 * memory. */
static char *keys_array(const struct tl_candidates *c)
{
    size_t len = 3;

    for (size_t i = 0; i < c->nkeys; i++)
        len += 3 + 2 * strlen(c->keys[i]);
    char *out = tl__malloc(len);
    if (out == NULL)
        return NULL;

    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < c->nkeys; i++) {
        if (i > 0)
            *p++ = ',';
        *p++ = '"';
        for (const char *k = c->keys[i]; *k; k++) {
            if (*k == '"' || *k == '\\')
                *p++ = '\\';
            *p++ = *k;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

static tl_status no_labels(struct tl_store *s)
{
    return tl__store_fail(s, TL_ENOTSUP, "the postgres store has no labels; name the keys");
}

/* A claim's parameters as text: timeout, mode and a fresh claim id. */
struct next_params {
    char timeout[16];
    char mode[8];
    char claim_id[64];
};

static void next_params(struct pg_store *ps, const struct tl_claim *req, struct next_params *np)
{
    (void)snprintf(np->timeout, sizeof(np->timeout), "%u", req->lock_timeout_ms);
    (void)snprintf(np->mode, sizeof(np->mode), "%d", (int)req->mode);
    (void)snprintf(np->claim_id, sizeof(np->claim_id), "%lx.%llx.%llx.%llu",
                   (unsigned long)getpid(), (unsigned long long)(uintptr_t)ps,
                   (unsigned long long)tl__real_now_ms(), (unsigned long long)++ps->claims);
}

static bool get_count(const PGresult *r, int col, uint32_t *out)
{
    int64_t v;

    if (!tl__pg_get_i64(r, 0, col, &v) || v < 0 || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Marks in c->done_seen the indices of the int4[] in column `col` ("{1,5}"; NULL: none). False
 * if it is not such a list. */
static bool read_seen(const PGresult *r, int col, const struct tl_candidates *c)
{
    if (PQgetisnull(r, 0, col))
        return true;
    const char *p = PQgetvalue(r, 0, col);
    if (*p++ != '{')
        return false;
    while (*p != '}') {
        char *end;
        if (*p < '0' || *p > '9')
            return false;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v >= c->nkeys || (*end != ',' && *end != '}'))
            return false;
        if (c->done_seen != NULL)
            c->done_seen[v] = 1;
        p = *end == ',' ? end + 1 : end;
    }
    return p[1] == '\0';
}

/* Reads a claim-next's NEXT_COLS columns at `col` of the one row of `r`: TL_OK won (out->rec
 * ours, *won its index), TL_EBUSY (the tally), or a bad reply. */
static tl_status read_next(struct pg_store *ps, const PGresult *r, int col, const char *what,
                           const struct tl_claim *req, const struct tl_candidates *c,
                           struct tl_claim_result *out, size_t *won, struct tl_next_tally *tally)
{
    int64_t index = -1, token = 0, now = 0;

    if (PQntuples(r) != 1 || PQnfields(r) != col + NEXT_COLS ||
        !get_count(r, col + 4, &tally->done) || !get_count(r, col + 5, &tally->held) ||
        !get_count(r, col + 6, &tally->queued) || !tl__pg_get_i64(r, 0, col + 3, &now) ||
        !read_seen(r, col + 7, c))
        return tl__pg_bad_reply(ps, what);
    if (PQgetisnull(r, 0, col))
        return TL_EBUSY;
    if (!tl__pg_get_i64(r, 0, col, &index) || index < 0 || (uint64_t)index >= c->nkeys ||
        !tl__pg_get_i64(r, 0, col + 1, &token) || token <= 0)
        return tl__pg_bad_reply(ps, what);

    const char *how = tl__pg_get_text(r, 0, col + 2);
    struct tl_record *rec = &out->rec;
    rec->info.key = tl__strdup(c->keys[index]);
    rec->info.worker_id = tl__strdup(req->worker_id);
    rec->info.node_id = tl__strdup(req->node_id);
    rec->info.task_info = tl__strdup(req->task_info);
    rec->info.token = (uint64_t)token;
    rec->info.claimed_at_ms = rec->info.heartbeat_at_ms = now;
    rec->info.lock_timeout_ms = req->lock_timeout_ms;
    rec->info.observed_at_ms = now;
    out->took_stale = how != NULL && strcmp(how, "stolen") == 0;
    if (!rec->info.key || !rec->info.worker_id || !rec->info.node_id || !rec->info.task_info) {
        /* Ours in the store, but we cannot describe it: give it back so that it does not rot. */
        const struct tl_record held = {.info = {.key = (char *)c->keys[index],
                                                .worker_id = (char *)req->worker_id,
                                                .node_id = (char *)req->node_id,
                                                .token = (uint64_t)token}};
        tl__record_clear(rec);
        (void)ps->base.ops->release(&ps->base, &held, "out of memory after claiming");
        return tl__store_fail(&ps->base, TL_ENOMEM, "out of memory");
    }
    *won = (size_t)index;
    return TL_OK;
}

tl_status tl__pg_claim_next(struct tl_store *s, const struct tl_claim *req,
                            const struct tl_candidates *c, struct tl_claim_result *out, size_t *won,
                            struct tl_next_tally *tally)
{
    struct pg_store *ps = (struct pg_store *)s;
    struct next_params np;
    PGresult *r = NULL;

    *won = SIZE_MAX;
    memset(tally, 0, sizeof(*tally));
    memset(out, 0, sizeof(*out));
    if (c->keys == NULL)
        return no_labels(s);
    if (c->nkeys == 0)
        return TL_EBUSY;
    char *keys = keys_array(c);
    if (keys == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    next_params(ps, req, &np);
    const char *const p[] = {keys,       req->worker_id, req->node_id, req->task_info,
                             np.timeout, np.mode,        np.claim_id};
    tl_status st =
        tl__pg_run(ps, &ps->main, "claiming the next task", ps->next_sql[NS_NEXT], 7, p, &r);
    tl__free(keys);
    if (st != TL_OK)
        return st;
    st = read_next(ps, r, 0, "claiming the next task", req, c, out, won, tally);
    PQclear(r);
    return st;
}

tl_status tl__pg_finish(struct tl_store *s, const struct tl_finish *f, struct tl_finish_result *out)
{
    struct pg_store *ps = (struct pg_store *)s;
    const struct tl_record *held = f->held;
    const struct tl_claim *next = f->next;
    bool with_next = next != NULL && f->candidates != NULL && f->candidates->keys != NULL &&
                     f->candidates->nkeys > 0;
    struct next_params np = {.timeout = "1", .mode = "0", .claim_id = ""};
    char token[24];
    char *keys = NULL;
    PGresult *r = NULL;
    int64_t released = -1;

    if (with_next) {
        if ((keys = keys_array(f->candidates)) == NULL)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
        next_params(ps, next, &np);
    }
    (void)snprintf(token, sizeof(token), "%llu", (unsigned long long)held->info.token);
    const char *const p[] = {held->info.key,
                             held->info.worker_id,
                             token,
                             held->info.node_id ? held->info.node_id : "?",
                             f->summary ? f->summary : "",
                             ps->channel,
                             f->done ? "true" : "false",
                             keys,
                             with_next ? next->worker_id : NULL,
                             with_next ? next->node_id : NULL,
                             with_next ? next->task_info : NULL,
                             np.timeout,
                             np.mode,
                             np.claim_id};
    tl_status st = tl__pg_run(ps, &ps->main, f->done ? "finishing a task" : "releasing a lock",
                              ps->next_sql[NS_FINISH], 14, p, &r);
    tl__free(keys);
    if (st != TL_OK)
        return st;
    if (PQntuples(r) != 1 || !tl__pg_get_i64(r, 0, 0, &released) || released < 0 || released > 2) {
        PQclear(r);
        return tl__pg_bad_reply(ps, "releasing a lock");
    }
    if (released == 0) {
        PQclear(r);
        return tl__store_fail(s, TL_ENOTOWNER, "%s is held by someone else now", held->info.key);
    }
    if (next != NULL) {
        out->next_tried = true;
        out->won = SIZE_MAX;
        memset(&out->tally, 0, sizeof(out->tally));
        memset(&out->next, 0, sizeof(out->next));
        if (f->candidates == NULL || f->candidates->keys == NULL)
            out->next_status = no_labels(s);
        else if (!with_next)
            out->next_status = TL_EBUSY;
        else
            out->next_status = read_next(ps, r, 1, "claiming the next task", next, f->candidates,
                                         &out->next, &out->won, &out->tally);
    }
    PQclear(r);
    return TL_OK; /* 1: released now; 2: released before by this token, no one claimed since */
}

tl_status tl__pg_reopen(struct tl_store *s, const char *key, const char *worker_id,
                        const char *node_id, bool *was_done)
{
    struct pg_store *ps = (struct pg_store *)s;
    const char *const p[] = {key, worker_id, node_id, ps->channel};
    PGresult *r = NULL;
    bool was = false;

    *was_done = false;
    tl_status st = tl__pg_run(ps, &ps->main, "reopening a task", ps->next_sql[NS_REOPEN], 4, p, &r);
    if (st != TL_OK)
        return st;
    bool ok = PQntuples(r) == 1 && PQnfields(r) == 1 && tl__pg_get_bool(r, 0, 0, &was);
    PQclear(r);
    if (!ok)
        return tl__pg_bad_reply(ps, "reopening a task");
    *was_done = was;
    return TL_OK;
}

tl_status tl__pg_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                           size_t *count)
{
    struct pg_store *ps = (struct pg_store *)s;
    const char *const p[] = {key};
    struct tl_done **arr = NULL;
    size_t n = 0, cap = 0;
    PGresult *r = NULL;

    tl_status st =
        tl__pg_run(ps, &ps->main, "reading the done markers", ps->next_sql[NS_DONE_LIST], 1, p, &r);
    if (st != TL_OK)
        return st;
    if (PQntuples(r) > 0 && PQnfields(r) != 6)
        st = tl__pg_bad_reply(ps, "reading the done markers");
    for (int i = 0; st == TL_OK && i < PQntuples(r); i++) {
        const char *k = tl__pg_get_text(r, i, 0), *w = tl__pg_get_text(r, i, 1);
        const char *nd = tl__pg_get_text(r, i, 2), *sum = tl__pg_get_text(r, i, 5);
        int64_t token, at;

        if (k == NULL || w == NULL || nd == NULL || sum == NULL ||
            !tl__pg_get_i64(r, i, 3, &token) || !tl__pg_get_i64(r, i, 4, &at)) {
            st = tl__store_fail(s, TL_ESTORE,
                                "postgres: a row of %s.tasklock_done has a missing or bad field",
                                ps->schema);
            break;
        }
        struct tl_done *d = tl__done_new();
        if (d != NULL) {
            d->key = tl__strdup(k);
            d->worker_id = tl__strdup(w);
            d->node_id = tl__strdup(nd);
            d->summary = tl__strdup(sum);
            d->token = (uint64_t)token;
            d->done_at_ms = at;
        }
        if (d == NULL || !d->key || !d->worker_id || !d->node_id || !d->summary ||
            tl__done_array_push(&arr, &n, &cap, d) != TL_OK) {
            tl__done_free(d);
            st = tl__store_fail(s, TL_ENOMEM, "out of memory");
        }
    }
    PQclear(r);
    if (st != TL_OK) {
        tl_done_array_free(arr, n);
        return st;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

/* One boolean answer of NS_ANY_FLAG or NS_ANY_FREE. */
static tl_status any_free(struct pg_store *ps, struct pg_conn *pc, enum next_stmt id,
                          const char *keys, bool *free)
{
    const char *const p[] = {keys};
    PGresult *r = NULL;

    tl_status st = tl__pg_run(ps, pc, "waiting for a free candidate", ps->next_sql[id], 1, p, &r);
    if (st != TL_OK)
        return st;
    bool ok = PQntuples(r) == 1 && PQnfields(r) == 1 && tl__pg_get_bool(r, 0, 0, free);
    PQclear(r);
    return ok ? TL_OK : tl__pg_bad_reply(ps, "waiting for a free candidate");
}

static bool is_candidate(const struct tl_candidates *c, const char *key)
{
    for (size_t i = 0; key != NULL && i < c->nkeys; i++) {
        if (strcmp(c->keys[i], key) == 0)
            return true;
    }
    return false;
}

enum any_end { ANY_TIMEOUT, ANY_NOTIFIED, ANY_BROKEN };

/* Blocks until a release notification for one of the candidates, or `end`. */
static enum any_end await_any(struct pg_store *ps, const struct tl_candidates *c, int64_t end)
{
    PGconn *conn = ps->wait.c;

    for (;;) {
        PGnotify *nt;

        while ((nt = PQnotifies(conn)) != NULL) {
            bool match = strcmp(nt->relname, ps->channel) == 0 && is_candidate(c, nt->extra);
            PQfreemem(nt);
            if (match)
                return ANY_NOTIFIED;
        }
        int w = tl__pg_wait_socket(conn, POLLIN, end);
        if (w == 0)
            return ANY_TIMEOUT;
        if (w < 0 || !PQconsumeInput(conn))
            return ANY_BROKEN;
    }
}

/*
 * Waits up to `timeout_ms` (and the caller's deadline) for a candidate to come free. With
 * wake-ups: LISTEN, flag and look (one statement), block until notified. Without (pooled=true,
 * wakeup=off): the look alone, every 20 ms at first, up to every 250 ms, as poll_turn.
 */
tl_status tl__pg_wait_any(struct tl_store *s, const struct tl_candidates *c, uint32_t timeout_ms)
{
    struct pg_store *ps = (struct pg_store *)s;
    int64_t end = tl__real_mono_ms() + timeout_ms;
    int64_t caller = tl__pg_caller_deadline(ps);
    bool free = false;
    tl_status st;

    if (c->keys == NULL)
        return no_labels(s);
    if (caller < end)
        end = caller;
    char *keys = keys_array(c);
    if (keys == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");

    if (!ps->wakeup) {
        uint32_t step = 20;
        for (;;) {
            if ((st = any_free(ps, &ps->main, NS_ANY_FREE, keys, &free)) != TL_OK || free)
                break;
            int64_t left = end - tl__real_mono_ms();
            if (left <= 0)
                break;
            tl__real_sleep_ms(left < step ? (uint32_t)left : step);
            step = step * 2 > 250 ? 250 : step * 2;
        }
        tl__free(keys);
        return st;
    }

    if ((st = tl__pg_listen(ps)) != TL_OK)
        goto out;
    uint64_t generation = ps->wait.generation;
    st = any_free(ps, &ps->wait, NS_ANY_FLAG, keys, &free);
    if (st == TL_OK && ps->wait.generation != generation)
        st = tl__store_fail(s, TL_ESTORE, "postgres: the listening session was reopened");
    if (st == TL_OK && !free && await_any(ps, c, end) == ANY_BROKEN) {
        tl__pg_conn_drop(&ps->wait);
        st = tl__store_fail(s, TL_ESTORE,
                            "postgres: the listening session broke while waiting for a free "
                            "candidate");
        goto out;
    }
    tl__pg_unlisten(ps);
out:
    tl__free(keys);
    return st;
}
