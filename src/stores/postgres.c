/*
 * postgres.c -- the PostgreSQL store: `postgres://...` or `postgresql://...`, any libpq URI.
 *
 * Tables (created on first use, in the schema named by `?schema=NAME`, default `public`):
 * tasklock_locks holds one row per key ever locked (a released key keeps its row, with the
 * holder's columns NULL and the last token, so that a retried release can tell "released by
 * me" from "claimed by someone since"); tasklock_history is the append-only audit trail; the
 * sequence tasklock_tokens hands out the fencing tokens. nextval() is not transactional, so a
 * claim that loses may burn a value: tokens only increase, they are not dense. A claim also
 * takes at least the key's last token + 1, so that a sequence set back (dropped and recreated,
 * restored from an older backup than the table) cannot make a key's tokens go backwards.
 *
 * Every call is one round trip carrying one statement, unnamed, in its own (implicit)
 * transaction: nothing outlives it, no named prepared statements, no SET, no temp tables, so
 * claim, renew and release work behind a transaction-pooling pooler. The three writes are calls
 * of PL/pgSQL functions created with the tables (tasklock_claim_v1, ..._renew_v1,
 * ..._release_v1): one short statement to send, plans cached by the server inside the function,
 * and each query in it sees a fresh snapshot. A claim is: a plain read (a claim the row already
 * refuses writes nothing, so polling waiters cause no WAL and no fsync), then INSERT ... ON
 * CONFLICT ... DO UPDATE ... WHERE free, stale (steal) or always (force), which decides on the
 * latest row version under its row lock, then the history row, all in the one transaction; a
 * losing claim returns the holder's record. (A data-modifying CTE sent as text does the same
 * in one statement, but is planned afresh on every call: 0.3 ms of planning per claim here,
 * more than the rest of the claim.) Only the optional wake-up (the `wait` op) keeps session
 * state, a LISTEN, on a second, direct connection of its own.
 *
 * Staleness is judged by the server's now(), the transaction's start, which with one statement
 * per transaction is the statement's start; a claim that waited for a row lock judges as of
 * before it waited, which errs on the side of "not stale".
 *
 * The line (store contract version 3): tasklock_waiters holds one row per waiter (key, waiter
 * id, priority, seq from the sequence tasklock_waiter_seq, since, heartbeat, timeout), ordered by
 * the index (key, priority DESC, seq); liveness is judged by the server's now(). Claims, leaves
 * and releases change the line under the key's row lock in tasklock_locks, so that the line and
 * the key change together. A write that frees the key or changes the head of a free key sends
 * NOTIFY on the head waiter's own channel "tlw_<waiter id>"; wait_turn LISTENs on it on the wait
 * connection (and, with pooled=true or wakeup=off, polls the line instead).
 *
 * Shared holders and semaphores (store contract version 5): postgres_modes.c (the layout, and
 * why) and postgres_modes_sql.c. This version's claim, renew, extend, release, leave, forced
 * release, inspect and list are the _v6 functions and view there; the functions made below are
 * kept unchanged for libraries of earlier versions sharing the schema (and tasklock_line_v2 is
 * still a helper of this one's claim). What follows describes them; the _v6 ones do the same
 * for a key's exclusive holder. Upgrades, downgrades and the wait-for graph: postgres_convert.c
 * and postgres_convert_sql.c, whose _v7 release, leave and turn this file calls.
 *
 * Each claim carries a random claim id stored in the row, so that a claim retried after a lost
 * connection recognises its own earlier success instead of finding the key held.
 *
 * Time limits: libpq's connect_timeout (10 s unless the URI sets it), the server-side
 * statement timeout (`?statement_timeout=DURATION`, default 10 s), sent once in the startup
 * packet's options rather than per call (a SET per call costs as much as the call; with
 * `?pooled=true` it is not sent, as poolers refuse startup options), and a client-side deadline
 * a little longer than it, or the caller's deadline if that is sooner (a renew's is its lock's
 * loss deadline), which bounds the connect too and also covers a dead network: on expiry the
 * connection is closed and TL_ETIMEDOUT returned. A connection found broken is reopened on the next
 * call (once at once within the call that found it broken, since a server restart or a pooler
 * closing idle connections breaks every idle connection), with a bounded backoff between failed
 * attempts.
 */
#include "postgres.h"

#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postgres_int.h"
#include "store.h"
#include "tl.h"

#define SCHEMA_VERSION            1
#define DEFAULT_SCHEMA            "public"
#define DEFAULT_TIMEOUT_MS        10000
#define DEFAULT_CONNECT_TIMEOUT_S "10"
/* The client waits this much longer than the server's statement timeout. */
#define CLIENT_GRACE_MS 2000
#define BACKOFF_MIN_MS  100
#define BACKOFF_MAX_MS  2000

/* The SQL is laid out for reading as SQL, not as C. */
/* clang-format off */
/* Epoch milliseconds of a timestamptz, and whether a row's holder is stale at `now`. */
#define MS(x) "floor(extract(epoch FROM " x ") * 1000)::int8"
#define STALE(t, now) "(" now " - " t ".heartbeat_at > " t ".lock_timeout_ms * interval '1 ms')"
/* Whether waiter row `w` is live at `now`: its last heartbeat younger than its timeout. */
#define LIVE(w, now) "(" w ".heartbeat_at + " w ".timeout_ms * interval '1 ms' > " now ")"

/* "{s}" stands for the quoted schema, "{c}" for the quoted channel. Each is one statement,
 * sent unnamed: a pooler may run each on another session. */
static const char *const sql_text[ST_COUNT] = {
    /* The new heartbeat (epoch ms), or NULL when the lock is no longer ours. */
    [ST_RENEW] = "SELECT {s}.tasklock_renew_v6($1, $2, $3::int8, $4, NULL)",
    /* 1 released, 2 released before by this token, 0 not ours. */
    [ST_RELEASE] = "SELECT {s}.tasklock_drop_v7($1, $2, $3::int8, $4, $5, $6, false)",
    [ST_HISTORY_KEY] = "SELECT " MS("at") ", key, event, worker_id, node_id, token, detail FROM "
                       "{s}.tasklock_history WHERE key = $1 ORDER BY id DESC LIMIT $2::int8",
    [ST_HISTORY_ALL] = "SELECT " MS("at") ", key, event, worker_id, node_id, token, detail FROM "
                       "{s}.tasklock_history ORDER BY id DESC LIMIT $1::int8",
    /* $1 key: asks the holder's release to notify; no row when the key is free. */
    [ST_WAKE] = "UPDATE {s}.tasklock_locks SET wake = true WHERE key = $1 AND worker_id IS NOT "
                "NULL RETURNING token",
    [ST_LISTEN] = "LISTEN {c}",
    [ST_UNLISTEN] = "UNLISTEN {c}",
    /* The new heartbeat (epoch ms), or NULL when the lock is no longer ours. */
    [ST_EXTEND] = "SELECT {s}.tasklock_renew_v6($1, $2, $3::int8, $4, $5::int4)",
    /* 1 left, 0 was not in line. */
    [ST_LEAVE] = "SELECT {s}.tasklock_leave_v7($1, $2)",
    /* $1 key, $2 waiter: (the holders would admit its claim, in line and live, live waiters
     * ahead, ms until the first of those goes dead). */
    [ST_TURN] =
        "WITH me AS (SELECT w.priority, w.seq FROM {s}.tasklock_waiters w WHERE w.waiter_id = $2 "
        "AND w.key = $1 AND " LIVE("w", "now()") "),\n"
        "a AS (SELECT w.heartbeat_at + w.timeout_ms * interval '1 ms' AS dies FROM "
        "{s}.tasklock_waiters w, me WHERE w.key = $1 AND " LIVE("w", "now()") " AND "
        "(w.priority > me.priority OR (w.priority = me.priority AND w.seq < me.seq)))\n"
        "SELECT {s}.tasklock_turn_v7($1, $2), EXISTS (SELECT 1 FROM me), (SELECT count(*) FROM a), (SELECT "
        "ceil(extract(epoch FROM min(a.dies) - now()) * 1000)::int8 FROM a)",
};

/* Table creation: one explicit transaction, serialised by a transaction-scoped advisory lock so
 * that processes starting together do not race on the catalog ("{n}" is the schema as a string
 * literal). $1 of the limits statement is the timeout in ms. */
static const char sql_begin[] = "BEGIN ISOLATION LEVEL READ COMMITTED";
static const char sql_limits[] = "SELECT set_config('statement_timeout', $1, true), "
                                 "set_config('idle_in_transaction_session_timeout', $1, true)";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";

/*
 * The three writes are PL/pgSQL functions, so that each is one short statement to send and the
 * server plans its queries once per session (plan caching inside the function, invisible to a
 * pooler), and so that each query inside takes a fresh snapshot (READ COMMITTED): a claim that
 * loses the race under the row lock reads the winner in the same round trip. Names carry the
 * version, so that libraries of different versions can share one schema.
 *
 * Claim: a plain read first, so that a claim the row already refuses writes nothing (waiters
 * that poll cause no WAL and no fsync); then INSERT ... ON CONFLICT DO UPDATE ... WHERE free,
 * stale (steal) or always (force), which decides on the latest row version under its row lock;
 * then the history row. The claim id makes a claim retried after a lost connection find its own
 * earlier win ('mine'). The token is nextval(), and at least the key's last token + 1, so that a
 * sequence set back (dropped, restored from an older backup) cannot make a key's tokens go
 * backwards. A claim must be durable before it returns (its token must never be handed out
 * twice), so synchronous_commit is raised for it if the server has it off.
 */
static const char *const schema_sql[] = {
    "SELECT pg_advisory_xact_lock(1953262699, hashtext({n}))",
    "CREATE SEQUENCE IF NOT EXISTS {s}.tasklock_tokens AS bigint",
    "CREATE TABLE IF NOT EXISTS {s}.tasklock_locks ("
    " key text COLLATE \"C\" PRIMARY KEY,"
    " token bigint NOT NULL CHECK (token > 0)," /* the last token issued for the key */
    " worker_id text, node_id text,"            /* NULL when free */
    " claimed_at timestamptz, heartbeat_at timestamptz,"
    " lock_timeout_ms integer CHECK (lock_timeout_ms > 0),"
    " task_info text,"
    " claim_id text,"  /* the claim's random id: a retried claim knows its own win */
    " how text,"       /* acquired | stolen | forced */
    " displaced text," /* whom a steal or force displaced */
    " wake boolean NOT NULL DEFAULT false," /* a waiter wants the release notified */
    " CHECK (worker_id IS NULL OR (node_id IS NOT NULL AND claimed_at IS NOT NULL AND"
    " heartbeat_at IS NOT NULL AND lock_timeout_ms IS NOT NULL AND task_info IS NOT NULL)))",
    "CREATE TABLE IF NOT EXISTS {s}.tasklock_history ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " at timestamptz NOT NULL DEFAULT now(),"
    " key text COLLATE \"C\" NOT NULL,"
    " event text NOT NULL CHECK (event IN ('acquired','released','stolen','forced','lost',"
    "'done','reopened')),"
    " worker_id text NOT NULL, node_id text NOT NULL, token bigint NOT NULL, detail text)",
    "CREATE INDEX IF NOT EXISTS tasklock_history_by_key ON {s}.tasklock_history (key, id)",
    /* The line (added by the library's version 3 of the store contract; made on open in a
     * schema made before it). A waiter is one row; seq comes from a sequence of its own. */
    "CREATE SEQUENCE IF NOT EXISTS {s}.tasklock_waiter_seq AS bigint",
    "CREATE TABLE IF NOT EXISTS {s}.tasklock_waiters ("
    " waiter_id text COLLATE \"C\" PRIMARY KEY,"
    " key text COLLATE \"C\" NOT NULL,"
    " worker_id text NOT NULL, node_id text NOT NULL,"
    " priority integer NOT NULL,"
    " seq bigint NOT NULL,"
    " since timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL,"
    " timeout_ms integer NOT NULL CHECK (timeout_ms > 0))",
    "CREATE INDEX IF NOT EXISTS tasklock_waiters_line ON {s}.tasklock_waiters "
    "(key, priority DESC, seq)",

    "CREATE OR REPLACE FUNCTION {s}.tasklock_claim_v1(p_key text, p_worker text, p_node text, "
    "p_task text, p_timeout integer, p_mode integer, p_claim text, OUT o_outcome text, "
    "OUT o_token bigint, OUT o_worker text, OUT o_node text, OUT o_claimed bigint, "
    "OUT o_beat bigint, OUT o_timeout integer, OUT o_task text, OUT o_stale boolean, "
    "OUT o_now bigint, OUT o_how text) LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  r record;\n"
    "  t timestamptz := now();\n"
    "BEGIN\n"
    "  IF current_setting('synchronous_commit') = 'off' THEN\n"
    "    PERFORM set_config('synchronous_commit', 'on', true);\n"
    "  END IF;\n"
    "  o_now := " MS("t") ";\n"
    "  SELECT l.* INTO r FROM {s}.tasklock_locks l WHERE l.key = p_key;\n"
    "  IF NOT FOUND OR r.worker_id IS NULL OR (r.claim_id IS DISTINCT FROM p_claim AND (p_mode = 2 "
    "OR (p_mode = 1 AND " STALE("r", "t") "))) THEN\n"
    "    INSERT INTO {s}.tasklock_locks AS l (key, token, worker_id, node_id, claimed_at, "
    "heartbeat_at, lock_timeout_ms, task_info, claim_id, how, displaced, wake)\n"
    "    VALUES (p_key, nextval('{s}.tasklock_tokens'), p_worker, p_node, t, t, p_timeout, "
    "p_task, p_claim, 'acquired', NULL, false)\n"
    "    ON CONFLICT (key) DO UPDATE SET token = greatest(excluded.token, l.token + 1), "
    "worker_id = excluded.worker_id, node_id = excluded.node_id, claimed_at = "
    "excluded.claimed_at, heartbeat_at = excluded.heartbeat_at, lock_timeout_ms = "
    "excluded.lock_timeout_ms, task_info = excluded.task_info, claim_id = excluded.claim_id, "
    "wake = false,\n"
    "      how = CASE WHEN l.worker_id IS NULL THEN 'acquired' WHEN " STALE("l", "t") " THEN "
    "'stolen' ELSE 'forced' END,\n"
    "      displaced = CASE WHEN l.worker_id IS NULL THEN NULL ELSE 'from ' || l.worker_id || "
    "' (token ' || l.token || ')' END\n"
    "    WHERE l.claim_id IS DISTINCT FROM p_claim AND (l.worker_id IS NULL OR p_mode = 2 OR "
    "(p_mode = 1 AND " STALE("l", "t") "))\n"
    "    RETURNING l.token, l.how, l.displaced INTO r;\n"
    "    IF FOUND THEN\n"
    "      INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token, detail) "
    "VALUES (t, p_key, r.how, p_worker, p_node, r.token, r.displaced);\n"
    "      o_outcome := 'won'; o_token := r.token; o_worker := p_worker; o_node := p_node;\n"
    "      o_claimed := o_now; o_beat := o_now; o_timeout := p_timeout; o_task := p_task;\n"
    "      o_stale := false; o_how := r.how;\n"
    "      RETURN;\n"
    "    END IF;\n"
    /* Lost under the row lock: a new snapshot shows the winner. */
    "    SELECT l.* INTO r FROM {s}.tasklock_locks l WHERE l.key = p_key;\n"
    "    IF NOT FOUND OR r.worker_id IS NULL THEN\n"
    "      o_outcome := 'unknown';\n" /* already released again */
    "      RETURN;\n"
    "    END IF;\n"
    "  END IF;\n"
    "  o_outcome := CASE WHEN r.claim_id = p_claim AND r.worker_id = p_worker THEN 'mine' ELSE "
    "'held' END;\n"
    "  o_token := r.token; o_worker := r.worker_id; o_node := r.node_id;\n"
    "  o_claimed := " MS("r.claimed_at") "; o_beat := " MS("r.heartbeat_at") ";\n"
    "  o_timeout := r.lock_timeout_ms; o_task := r.task_info; o_stale := " STALE("r", "t") ";\n"
    "  o_how := r.how;\n"
    "END\n"
    "$f$",

    "CREATE OR REPLACE FUNCTION {s}.tasklock_renew_v1(p_key text, p_worker text, p_token bigint, "
    "p_node text) RETURNS bigint LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  b timestamptz;\n"
    "BEGIN\n"
    "  UPDATE {s}.tasklock_locks SET heartbeat_at = greatest(heartbeat_at, now())\n"
    "  WHERE key = p_key AND worker_id = p_worker AND token = p_token RETURNING heartbeat_at "
    "INTO b;\n"
    "  IF NOT FOUND THEN\n"
    "    INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token) "
    "VALUES (now(), p_key, 'lost', p_worker, p_node, p_token);\n"
    "    RETURN NULL;\n"
    "  END IF;\n"
    "  RETURN " MS("b") ";\n"
    "END\n"
    "$f$",

    /* The notification goes out only if a waiter flagged the row: a release no one waits for
     * does not take the server's notification lock, which serialises committing notifiers. */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_release_v1(p_key text, p_worker text, p_token "
    "bigint, p_node text, p_summary text, p_channel text) RETURNS integer LANGUAGE plpgsql AS "
    "$f$\n"
    "DECLARE\n"
    "  w boolean;\n"
    "  c record;\n"
    "BEGIN\n"
    "  UPDATE {s}.tasklock_locks SET worker_id = NULL, node_id = NULL, claimed_at = NULL, "
    "heartbeat_at = NULL, lock_timeout_ms = NULL, task_info = NULL, claim_id = NULL, how = NULL, "
    "displaced = NULL\n"
    "  WHERE key = p_key AND worker_id = p_worker AND token = p_token RETURNING wake INTO w;\n"
    "  IF FOUND THEN\n"
    "    INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token, detail) "
    "VALUES (now(), p_key, 'released', p_worker, p_node, p_token, p_summary);\n"
    "    IF w THEN\n"
    "      PERFORM pg_notify(p_channel, p_key);\n"
    "    END IF;\n"
    "    RETURN 1;\n"
    "  END IF;\n"
    "  SELECT token, worker_id IS NULL AS free INTO c FROM {s}.tasklock_locks WHERE key = "
    "p_key;\n"
    "  IF FOUND AND c.free AND c.token = p_token THEN\n"
    "    RETURN 2;\n" /* free, our token still the last: released by us before */
    "  END IF;\n"
    "  RETURN 0;\n"
    "END\n"
    "$f$",

    /*
     * The line. Every write that changes it, or frees a key, first locks the key's row in
     * tasklock_locks (a claim FOR UPDATE, a leave FOR SHARE, a release by its UPDATE), so that
     * the line and the key change together, in one order per key: a release waits for a
     * waiter being queued and then sees it; a claim under the lock sees every waiter queued
     * before it. Each query in a function takes a fresh snapshot (READ COMMITTED, volatile),
     * so a query after the lock sees all that committed before it.
     *
     * Wake-up: NOTIFY on the head waiter's own channel "tlw_" || waiter_id, sent at commit;
     * only the first live waiter of a free key is told.
     */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_wake_head_v2(p_key text) RETURNS integer "
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  h text;\n"
    "BEGIN\n"
    "  SELECT w.waiter_id INTO h FROM {s}.tasklock_waiters w WHERE w.key = p_key AND "
    LIVE("w", "now()") " ORDER BY w.priority DESC, w.seq LIMIT 1;\n"
    "  IF NOT FOUND THEN\n"
    "    RETURN 0;\n"
    "  END IF;\n"
    "  PERFORM pg_notify('tlw_' || h, p_key);\n"
    "  RETURN 1;\n"
    "END\n"
    "$f$",

    /* Where a claim stands in the key's line at `t`: whether its waiter is in line (and
     * live), the live waiters, and how many of them are ahead of it: before its waiter, or of
     * its priority or higher if its waiter is not in line, or all for a claim without one. */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_line_v2(p_key text, p_waiter text, p_priority "
    "integer, t timestamptz, OUT o_in_line boolean, OUT o_waiting integer, OUT o_ahead integer) "
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  my_prio integer;\n"
    "  my_seq bigint;\n"
    "BEGIN\n"
    "  o_in_line := false;\n"
    "  IF p_waiter IS NOT NULL THEN\n"
    "    SELECT w.priority, w.seq INTO my_prio, my_seq FROM {s}.tasklock_waiters w WHERE "
    "w.waiter_id = p_waiter AND w.key = p_key AND " LIVE("w", "t") ";\n"
    "    o_in_line := FOUND;\n"
    "  END IF;\n"
    "  SELECT count(*), count(*) FILTER (WHERE p_waiter IS NULL OR (o_in_line AND (w.priority > "
    "my_prio OR (w.priority = my_prio AND w.seq < my_seq))) OR (NOT o_in_line AND w.priority >= "
    "p_priority)) INTO o_waiting, o_ahead FROM {s}.tasklock_waiters w WHERE w.key = p_key AND "
    LIVE("w", "t") ";\n"
    "END\n"
    "$f$",
    /* Puts a waiter in line (a new seq) or, if it is there, refreshes its heartbeat. */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_queue_v2(p_key text, p_waiter text, p_worker text, "
    "p_node text, p_priority integer, p_wtimeout integer, t timestamptz, p_in_line boolean) "
    "RETURNS void LANGUAGE plpgsql AS $f$\n"
    "BEGIN\n"
    "  IF p_in_line THEN\n"
    "    UPDATE {s}.tasklock_waiters w SET heartbeat_at = greatest(w.heartbeat_at, t), "
    "timeout_ms = p_wtimeout WHERE w.waiter_id = p_waiter;\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  INSERT INTO {s}.tasklock_waiters AS w (waiter_id, key, worker_id, node_id, priority, "
    "seq, since, heartbeat_at, timeout_ms) VALUES (p_waiter, p_key, p_worker, p_node, "
    "p_priority, nextval('{s}.tasklock_waiter_seq'), t, t, p_wtimeout)\n"
    "  ON CONFLICT (waiter_id) DO UPDATE SET key = excluded.key, worker_id = "
    "excluded.worker_id, node_id = excluded.node_id, priority = excluded.priority, seq = "
    "excluded.seq, since = excluded.since, heartbeat_at = excluded.heartbeat_at, timeout_ms = "
    "excluded.timeout_ms;\n"
    "END\n"
    "$f$",

    /* Grants the key's row (locked by the caller) to a claim: a new token, the history row;
     * the winner leaves the line. */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_grant_v2(p_key text, p_worker text, p_node text, "
    "p_task text, p_timeout integer, p_claim text, p_waiter text, t timestamptz, OUT g_token "
    "bigint, OUT g_how text) LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  r record;\n"
    "BEGIN\n"
    "  UPDATE {s}.tasklock_locks l SET token = greatest(nextval('{s}.tasklock_tokens'), "
    "l.token + 1), worker_id = p_worker, node_id = p_node, claimed_at = t, heartbeat_at = t, "
    "lock_timeout_ms = p_timeout, task_info = p_task, claim_id = p_claim, wake = false,\n"
    "    how = CASE WHEN l.worker_id IS NULL THEN 'acquired' WHEN " STALE("l", "t") " THEN "
    "'stolen' ELSE 'forced' END,\n"
    "    displaced = CASE WHEN l.worker_id IS NULL THEN NULL ELSE 'from ' || l.worker_id || "
    "' (token ' || l.token || ')' END\n"
    "  WHERE l.key = p_key RETURNING l.token, l.how, l.displaced INTO r;\n"
    "  IF p_waiter IS NOT NULL THEN\n"
    "    DELETE FROM {s}.tasklock_waiters w WHERE w.waiter_id = p_waiter;\n"
    "  END IF;\n"
    "  INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token, detail) "
    "VALUES (t, p_key, r.how, p_worker, p_node, r.token, r.displaced);\n"
    "  g_token := r.token; g_how := r.how;\n"
    "END\n"
    "$f$",

    /*
     * Claim with the line. A claim that will not wait (no waiter id) and that the row or the
     * line already refuses writes nothing (a plain read, as in tasklock_claim_v1). Any other
     * locks the key's row (making a free row first if the key has none), deletes the key's
     * dead waiters (not for FORCE: it leaves the line alone), and decides on what it then
     * reads: NORMAL wins iff free and no live waiter ahead, STEAL iff free or stale and none
     * ahead, FORCE always. A win deletes the winner's waiter row; a loss with a waiter id
     * queues it (new seq) or refreshes its heartbeat (same seq). If deleting dead waiters may
     * have changed the head of a free key, the new head is woken.
     */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_claim_v2(p_key text, p_worker text, p_node text, "
    "p_task text, p_timeout integer, p_mode integer, p_claim text, p_waiter text, "
    "p_priority integer, p_wtimeout integer, OUT o_outcome text, "
    "OUT o_token bigint, OUT o_worker text, OUT o_node text, OUT o_claimed bigint, "
    "OUT o_beat bigint, OUT o_timeout integer, OUT o_task text, OUT o_stale boolean, "
    "OUT o_now bigint, OUT o_how text, OUT o_waiting integer, OUT o_ahead integer) "
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  r record;\n"
    "  t timestamptz := now();\n"
    "  in_line boolean := false;\n"
    "  n_dead integer := 0;\n"
    "  quick boolean := false;\n"
    "  mine boolean := false;\n"
    "BEGIN\n"
    "  IF current_setting('synchronous_commit') = 'off' THEN\n"
    "    PERFORM set_config('synchronous_commit', 'on', true);\n"
    "  END IF;\n"
    "  o_now := " MS("t") ";\n"
    "  o_waiting := 0; o_ahead := 0;\n"
    "  SELECT l.* INTO r FROM {s}.tasklock_locks l WHERE l.key = p_key;\n"
    "  IF NOT FOUND THEN\n"
    "    INSERT INTO {s}.tasklock_locks (key, token) VALUES (p_key, "
    "nextval('{s}.tasklock_tokens')) ON CONFLICT (key) DO NOTHING;\n"
    "  ELSIF r.claim_id = p_claim AND r.worker_id = p_worker THEN\n"
    "    quick := true; mine := true;\n" /* an earlier try of this claim won */
    "  ELSIF p_waiter IS NULL AND p_mode <> 2 THEN\n"
    "    SELECT count(*) INTO o_waiting FROM {s}.tasklock_waiters w WHERE w.key = p_key AND "
    LIVE("w", "t") ";\n"
    "    o_ahead := o_waiting;\n"
    "    quick := o_waiting > 0 OR (r.worker_id IS NOT NULL AND NOT (p_mode = 1 AND "
    STALE("r", "t") "));\n"
    "  END IF;\n"
    "  IF NOT quick THEN\n"
    "    SELECT l.* INTO r FROM {s}.tasklock_locks l WHERE l.key = p_key FOR UPDATE;\n"
    "    mine := coalesce(r.claim_id = p_claim AND r.worker_id = p_worker, false);\n"
    "    IF p_mode <> 2 THEN\n"
    "      DELETE FROM {s}.tasklock_waiters w WHERE w.key = p_key AND NOT " LIVE("w", "t") ";\n"
    "      GET DIAGNOSTICS n_dead = ROW_COUNT;\n"
    "    END IF;\n"
    "    SELECT * INTO in_line, o_waiting, o_ahead FROM {s}.tasklock_line_v2(p_key, p_waiter, "
    "p_priority, t);\n"
    "  END IF;\n"
    "  IF NOT quick AND NOT mine AND "
    "(p_mode = 2 OR (o_ahead = 0 AND (r.worker_id IS NULL OR (p_mode = 1 AND " STALE("r", "t")
    ")))) THEN\n"
    "    SELECT * INTO r FROM {s}.tasklock_grant_v2(p_key, p_worker, p_node, p_task, p_timeout, "
    "p_claim, p_waiter, t);\n"
    "    o_outcome := 'won'; o_token := r.g_token; o_worker := p_worker; o_node := p_node;\n"
    "    o_claimed := o_now; o_beat := o_now; o_timeout := p_timeout; o_task := p_task;\n"
    "    o_stale := false; o_how := r.g_how;\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  IF mine THEN\n"
    "    o_outcome := 'mine';\n"
    "  ELSE\n"
    "    IF p_waiter IS NOT NULL THEN\n"
    "      PERFORM {s}.tasklock_queue_v2(p_key, p_waiter, p_worker, p_node, p_priority, "
    "p_wtimeout, t, in_line);\n"
    "      o_waiting := o_waiting + CASE WHEN in_line THEN 0 ELSE 1 END;\n"
    "    END IF;\n"
    "    IF r.worker_id IS NULL AND n_dead > 0 THEN\n"
    "      PERFORM {s}.tasklock_wake_head_v2(p_key);\n"
    "    END IF;\n"
    "    IF r.worker_id IS NULL THEN\n"
    "      o_outcome := 'line';\n"
    "      RETURN;\n"
    "    END IF;\n"
    "    o_outcome := 'held';\n"
    "  END IF;\n"
    "  o_token := r.token; o_worker := r.worker_id; o_node := r.node_id;\n"
    "  o_claimed := " MS("r.claimed_at") "; o_beat := " MS("r.heartbeat_at") ";\n"
    "  o_timeout := r.lock_timeout_ms; o_task := r.task_info; o_stale := " STALE("r", "t") ";\n"
    "  o_how := r.how;\n"
    "END\n"
    "$f$",

    /* Release (tasklock_release_v1), then wake the head of the line, if there is one. */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_release_v2(p_key text, p_worker text, p_token "
    "bigint, p_node text, p_summary text, p_channel text) RETURNS integer LANGUAGE plpgsql AS "
    "$f$\n"
    "DECLARE\n"
    "  r integer;\n"
    "BEGIN\n"
    "  r := {s}.tasklock_release_v1(p_key, p_worker, p_token, p_node, p_summary, p_channel);\n"
    "  IF r = 1 THEN\n"
    "    PERFORM {s}.tasklock_wake_head_v2(p_key);\n"
    "  END IF;\n"
    "  RETURN r;\n"
    "END\n"
    "$f$",

    /* Leave the line: delete the waiter; if it was the head of a free key, wake the next. The
     * key's row is locked FOR SHARE first, so that a release in flight either sees the waiter
     * gone or is seen to have freed the key. */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_leave_v2(p_key text, p_waiter text) RETURNS "
    "integer LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  me record;\n"
    "BEGIN\n"
    "  PERFORM 1 FROM {s}.tasklock_locks l WHERE l.key = p_key FOR SHARE;\n"
    "  DELETE FROM {s}.tasklock_waiters w WHERE w.waiter_id = p_waiter AND w.key = p_key "
    "RETURNING w.priority, w.seq INTO me;\n"
    "  IF NOT FOUND THEN\n"
    "    RETURN 0;\n"
    "  END IF;\n"
    "  IF NOT EXISTS (SELECT 1 FROM {s}.tasklock_locks l WHERE l.key = p_key AND l.worker_id IS "
    "NOT NULL) AND NOT EXISTS (SELECT 1 FROM {s}.tasklock_waiters w WHERE w.key = p_key AND "
    LIVE("w", "now()") " AND (w.priority > me.priority OR (w.priority = me.priority AND w.seq < "
    "me.seq))) THEN\n"
    "    PERFORM {s}.tasklock_wake_head_v2(p_key);\n"
    "  END IF;\n"
    "  RETURN 1;\n"
    "END\n"
    "$f$",

    /* A renew that also records a new lock timeout, in one statement. */
    "CREATE OR REPLACE FUNCTION {s}.tasklock_extend_v2(p_key text, p_worker text, p_token "
    "bigint, p_node text, p_timeout integer) RETURNS bigint LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  b timestamptz;\n"
    "BEGIN\n"
    "  UPDATE {s}.tasklock_locks SET heartbeat_at = greatest(heartbeat_at, now()), "
    "lock_timeout_ms = p_timeout\n"
    "  WHERE key = p_key AND worker_id = p_worker AND token = p_token RETURNING heartbeat_at "
    "INTO b;\n"
    "  IF NOT FOUND THEN\n"
    "    INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token) "
    "VALUES (now(), p_key, 'lost', p_worker, p_node, p_token);\n"
    "    RETURN NULL;\n"
    "  END IF;\n"
    "  RETURN " MS("b") ";\n"
    "END\n"
    "$f$",
    "COMMENT ON TABLE {s}.tasklock_locks IS 'tasklock schema 1'",
};
/* clang-format on */
#define SCHEMA_STMTS (sizeof(schema_sql) / sizeof(schema_sql[0]))
_Static_assert(SCHEMA_STMTS == PG_CORE_DDL, "PG_CORE_DDL (postgres_int.h) counts schema_sql");

/* ---- text helpers ---- */

/* Copies `text` as one line (white space runs become one space), with every occurrence of
 * the password, in any form we know, replaced by "***", into `buf`. The password is taken out
 * before the text is cut to size, so that no prefix of it can remain. */
static void clean_text(const struct pg_store *ps, char *buf, size_t size, const char *text)
{
    const char *src = text ? text : "";
    size_t len = strlen(src), cap = len * 3 + 4;
    char *flat = tl__malloc(cap), *tmp = tl__malloc(cap);
    size_t n = 0;
    bool space = false;

    if (flat == NULL || tmp == NULL) {
        (void)snprintf(buf, size, "(message withheld: out of memory)");
        goto out;
    }
    for (const char *p = src; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t' || *p == ' ') {
            space = n > 0;
            continue;
        }
        if (space)
            flat[n++] = ' ';
        space = false;
        flat[n++] = *p;
    }
    flat[n] = '\0';
    /* Each secret is at least one byte and becomes three: one pass can triple the text, so
     * a buffer of three times the input holds the result of the first secret. Later secrets
     * run on that result; if it outgrew a third of the buffer, the buffers are grown first. */
    for (int i = 0; i < SECRETS_MAX; i++) {
        const char *what = ps->secret[i];
        size_t wl = what ? strlen(what) : 0, o = 0, cur = strlen(flat);

        if (wl == 0)
            continue;
        if (cur * 3 + 4 > cap) {
            char *f2 = tl__realloc(flat, cur * 3 + 4), *t2 = NULL;
            if (f2 != NULL)
                flat = f2;
            if (f2 != NULL && (t2 = tl__realloc(tmp, cur * 3 + 4)) != NULL)
                tmp = t2;
            if (f2 == NULL || t2 == NULL) {
                (void)snprintf(buf, size, "(message withheld: out of memory)");
                goto out;
            }
            cap = cur * 3 + 4;
        }
        for (const char *p = flat; *p != '\0';) {
            if (strncmp(p, what, wl) == 0) {
                memcpy(tmp + o, "***", 3);
                o += 3;
                p += wl;
            } else {
                tmp[o++] = *p++;
            }
        }
        tmp[o] = '\0';
        memcpy(flat, tmp, o + 1);
    }
    (void)snprintf(buf, size, "%s", flat);
out:
    tl__free(flat);
    tl__free(tmp);
}

/* Percent-decodes `n` bytes of `s` into a new string; NULL on bad encoding or no memory. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = NULL;

    (void)tl__percent_decode(s, n, &out);
    return out;
}

/* Replaces "{s}", "{c}" and "{n}" in `tmpl`. Caller frees; NULL when out of memory. */
static char *expand(const struct pg_store *ps, const char *tmpl)
{
    char qschema[SCHEMA_MAX + 3], qchannel[70], lschema[SCHEMA_MAX + 3];
    size_t cap = strlen(tmpl) * 2 + 256, n = 0;
    char *out = tl__malloc(cap);

    (void)snprintf(qschema, sizeof(qschema), "\"%s\"", ps->schema);
    (void)snprintf(qchannel, sizeof(qchannel), "\"%s\"", ps->channel);
    (void)snprintf(lschema, sizeof(lschema), "'%s'", ps->schema);
    if (out == NULL)
        return NULL;
    for (const char *p = tmpl; *p != '\0';) {
        const char *rep = NULL;

        if (strncmp(p, "{s}", 3) == 0)
            rep = qschema;
        else if (strncmp(p, "{c}", 3) == 0)
            rep = qchannel;
        else if (strncmp(p, "{n}", 3) == 0)
            rep = lschema;
        size_t add = rep ? strlen(rep) : 1;
        if (n + add + 1 > cap) {
            char *grown = tl__realloc(out, cap * 2 + add);
            if (grown == NULL) {
                tl__free(out);
                return NULL;
            }
            out = grown;
            cap = cap * 2 + add;
        }
        if (rep != NULL) {
            memcpy(out + n, rep, add);
            p += 3;
        } else {
            out[n] = *p++;
        }
        n += add;
    }
    out[n] = '\0';
    return out;
}

/* ---- URL ---- */

static bool valid_schema(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SCHEMA_MAX || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
            c != '_')
            return false;
    }
    return true;
}

/* Takes our parameters (schema, statement_timeout, wakeup, pooled) out of the URI's query, since
 * libpq rejects parameters it does not know, and leaves everything else as the user wrote it. */
static tl_status strip_params(struct pg_store *ps, const char *url)
{
    const char *q = strchr(url, '?');
    size_t base = q ? (size_t)(q - url) : strlen(url);
    char *out = tl__malloc(strlen(url) + 1);
    size_t n = base;
    tl_status st = TL_OK;

    if (out == NULL)
        return tl__store_fail(&ps->base, TL_ENOMEM, "out of memory");
    memcpy(out, url, base);
    for (const char *p = q ? q + 1 : NULL; p != NULL && *p != '\0' && st == TL_OK;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t)(eq - p) : len;
        char *val = eq ? pct_decode(eq + 1, len - nlen - 1) : NULL;

        if (nlen == 6 && strncmp(p, "schema", 6) == 0) {
            if (val == NULL || !valid_schema(val))
                st = tl__store_fail(&ps->base, TL_EINVAL,
                                    "postgres store URL %s: schema must be 1 to %d letters, "
                                    "digits or _, not starting with a digit",
                                    ps->shown, SCHEMA_MAX);
            else
                (void)snprintf(ps->schema, sizeof(ps->schema), "%s", val);
        } else if (nlen == 17 && strncmp(p, "statement_timeout", 17) == 0) {
            uint32_t ms = 0;
            if (val == NULL || tl_parse_duration(val, &ms) != TL_OK || ms > INT32_MAX / 2)
                st = tl__store_fail(&ps->base, TL_EINVAL,
                                    "postgres store URL %s: statement_timeout must be a duration "
                                    "such as 5s or 500ms",
                                    ps->shown);
            else
                ps->timeout_ms = ms;
        } else if (nlen == 6 && strncmp(p, "pooled", 6) == 0) {
            if (val != NULL && (strcmp(val, "true") == 0 || strcmp(val, "1") == 0))
                ps->pooled = true;
            else if (val != NULL && (strcmp(val, "false") == 0 || strcmp(val, "0") == 0))
                ps->pooled = false;
            else
                st = tl__store_fail(&ps->base, TL_EINVAL,
                                    "postgres store URL %s: pooled must be true or false",
                                    ps->shown);
        } else if (nlen == 6 && strncmp(p, "wakeup", 6) == 0) {
            if (val != NULL && (strcmp(val, "on") == 0 || strcmp(val, "1") == 0))
                ps->wakeup = true;
            else if (val != NULL && (strcmp(val, "off") == 0 || strcmp(val, "0") == 0))
                ps->wakeup = false;
            else
                st = tl__store_fail(&ps->base, TL_EINVAL,
                                    "postgres store URL %s: wakeup must be on or off", ps->shown);
        } else {
            out[n] = n == base ? '?' : '&';
            n++;
            memcpy(out + n, p, len);
            n += len;
        }
        tl__free(val);
        p = p[len] == '&' ? p + len + 1 : NULL;
    }
    out[n] = '\0';
    if (st != TL_OK) {
        tl__free(out);
        return st;
    }
    ps->conninfo = out;
    return TL_OK;
}

/* Collects the password as written in the URI (raw and decoded, from the userinfo and from a
 * password= parameter) and as libpq parses it, to scrub it from any text libpq produces. */
static void collect_secrets(struct pg_store *ps, const char *url, PQconninfoOption *opts)
{
    int k = 0;
    const char *sep = strstr(url, "://");

    if (sep != NULL) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = NULL;
        for (size_t i = 0; i < alen; i++) {
            if (auth[i] == '@')
                at = auth + i;
        }
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL && colon + 1 < at) {
            ps->secret[k++] = tl__strndup(colon + 1, (size_t)(at - colon - 1));
            ps->secret[k++] = pct_decode(colon + 1, (size_t)(at - colon - 1));
        }
    }
    for (const char *p = strstr(url, "password="); p != NULL && k < SECRETS_MAX - 1;
         p = strstr(p + 1, "password=")) {
        if (p > url && (p[-1] == '?' || p[-1] == '&')) {
            const char *v = p + strlen("password=");
            ps->secret[k++] = tl__strndup(v, strcspn(v, "&#"));
            break;
        }
    }
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL && k < SECRETS_MAX; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
            ps->secret[k++] = tl__strdup(o->val);
    }
}

/* ---- sessions ---- */

static void on_notice(void *arg, const char *message)
{
    struct pg_store *ps = arg;
    char buf[TL_ERRMSG_SIZE];

    if (ps->base.log == NULL || ps->base.log->fn == NULL || ps->base.log->level < TL_LOG_DEBUG)
        return;
    clean_text(ps, buf, sizeof(buf), message);
    TL_LOG(ps->base.log, TL_LOG_DEBUG, "postgres: server notice: %s", buf);
}

static void conn_drop(struct pg_conn *pc)
{
    PQfinish(pc->c);
    pc->c = NULL;
}

static tl_status conn_fail(struct pg_store *ps, struct pg_conn *pc, tl_status st)
{
    int64_t delay = BACKOFF_MIN_MS;

    for (uint32_t i = 1; i < pc->failures && delay < BACKOFF_MAX_MS; i++)
        delay *= 2;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    pc->failures++;
    pc->retry_at = tl__real_mono_ms() + delay;
    return tl__store_fail(&ps->base, st, "postgres: cannot connect to %s: %s", ps->shown,
                          pc->lasterr);
}

/* The caller's deadline (struct tl_store.deadline_mono_ms: a renew's is its lock's loss
 * deadline) on the real monotonic clock, or INT64_MAX when it has none. */
static int64_t caller_deadline(const struct pg_store *ps)
{
    const struct tl_store *b = &ps->base;

    if (b->deadline_mono_ms == 0)
        return INT64_MAX;
    return tl__real_mono_ms() + (b->deadline_mono_ms - b->clock->mono_ms(b->clock->ud));
}

/* Waits until the session's socket is ready for `events`: 1 ready, 0 deadline, -1 error. */
static int wait_socket(PGconn *c, short events, int64_t deadline)
{
    int fd = PQsocket(c);

    if (fd < 0)
        return -1;
    for (;;) {
        int64_t left = deadline - tl__real_mono_ms();
        struct pollfd p = {.fd = fd, .events = events};

        if (left <= 0)
            return 0;
        int rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc > 0)
            return 1;
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* The session's connect_timeout in ms (ours, or the URI's); 0: none. */
static int64_t connect_timeout_ms(PGconn *c)
{
    PQconninfoOption *opts = PQconninfo(c);
    int64_t ms = 0;

    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL) {
            long v = strtol(o->val, NULL, 10);
            ms = v <= 0 ? 0 : v < 2 ? 2000 : (int64_t)v * 1000; /* libpq's rule: at least 2 s */
        }
    }
    PQconninfoFree(opts);
    return ms;
}

/*
 * Opens the session if it is not open, unless the last attempt failed too recently. The
 * connection is made without blocking, so that our notice processor is in place before the
 * server can say anything (the library never prints) and the attempt has a deadline.
 */
static tl_status conn_open(struct pg_store *ps, struct pg_conn *pc)
{
    int64_t now = tl__real_mono_ms();
    tl_status st = TL_ESTORE;

    if (pc->c != NULL)
        return TL_OK;
    if (pc->failures > 0 && now < pc->retry_at)
        return tl__store_fail(&ps->base, TL_ESTORE,
                              "postgres: not connected to %s (%u failed attempts, next in %lld "
                              "ms): %s",
                              ps->shown, pc->failures, (long long)(pc->retry_at - now),
                              pc->lasterr);

    /* Ours come first: the URI (expanded from dbname) overrides them. Then the startup options,
     * which already hold the URI's own. */
    const char *const keys[] = {"connect_timeout",
                                "client_encoding",
                                "fallback_application_name",
                                "dbname",
                                ps->options ? "options" : NULL,
                                NULL};
    const char *const vals[] = {
        DEFAULT_CONNECT_TIMEOUT_S, "UTF8", "tasklock", ps->conninfo, ps->options, NULL};
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    if (c == NULL)
        return tl__store_fail(&ps->base, TL_ENOMEM, "out of memory");
    (void)PQsetNoticeProcessor(c, on_notice, ps);

    int64_t limit = connect_timeout_ms(c);
    int64_t deadline = limit > 0 ? now + limit : INT64_MAX;
    int64_t caller = caller_deadline(ps);
    if (caller < deadline)
        deadline = caller;
    PostgresPollingStatusType poll_st = PGRES_POLLING_WRITING;
    while (PQstatus(c) != CONNECTION_BAD && poll_st != PGRES_POLLING_OK &&
           poll_st != PGRES_POLLING_FAILED) {
        int w = wait_socket(c, poll_st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (w <= 0) {
            if (w == 0)
                st = TL_ETIMEDOUT;
            (void)snprintf(pc->lasterr, sizeof(pc->lasterr), "%s",
                           w == 0 ? "timeout expired while connecting" : "poll failed");
            PQfinish(c);
            return conn_fail(ps, pc, st);
        }
        poll_st = PQconnectPoll(c);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        clean_text(ps, pc->lasterr, sizeof(pc->lasterr), PQerrorMessage(c));
        PQfinish(c);
        return conn_fail(ps, pc, st);
    }
    if (PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1) {
        clean_text(ps, pc->lasterr, sizeof(pc->lasterr), PQerrorMessage(c));
        PQfinish(c);
        return conn_fail(ps, pc, TL_ESTORE);
    }
    pc->c = c;
    pc->failures = 0;
    pc->generation++;
    return TL_OK;
}

enum pipe_rc { PIPE_OK, PIPE_SQL, PIPE_TIMEOUT, PIPE_CONN };

struct pipe_err {
    char sqlstate[6];
    const char *text; /* libpq's, valid until the result or session goes; NULL: none */
    PGresult *res;    /* the failed result, kept for its text */
};

/* Sends `q` as one pipeline with a Sync and reads every result up to the Sync. The result of
 * query `keep` (if it succeeded) goes to *out. */
static enum pipe_rc pipeline(PGconn *c, const struct pg_query *q, int nq, int keep, PGresult **out,
                             int64_t deadline, struct pipe_err *e)
{
    int done = 0;

    for (int i = 0; i < nq; i++) {
        if (!PQsendQueryParams(c, q[i].sql, q[i].n, NULL, q[i].v, NULL, NULL, 0))
            return PIPE_CONN;
    }
    if (!PQpipelineSync(c))
        return PIPE_CONN;

    for (;;) {
        int f, w;

        while ((f = PQflush(c)) == 1) {
            if ((w = wait_socket(c, POLLOUT | POLLIN, deadline)) <= 0)
                return w == 0 ? PIPE_TIMEOUT : PIPE_CONN;
            if (!PQconsumeInput(c))
                return PIPE_CONN;
        }
        if (f < 0)
            return PIPE_CONN;
        while (PQisBusy(c)) {
            if ((w = wait_socket(c, POLLIN, deadline)) <= 0)
                return w == 0 ? PIPE_TIMEOUT : PIPE_CONN;
            if (!PQconsumeInput(c))
                return PIPE_CONN;
        }

        PGresult *r = PQgetResult(c);
        if (r == NULL) {
            if (PQstatus(c) != CONNECTION_OK || ++done > nq)
                return PIPE_CONN; /* lost, or out of step with the server: start afresh */
            continue;
        }
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return e->res != NULL ? PIPE_SQL : PIPE_OK;
        }
        if ((rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) && done == keep && out != NULL &&
            *out == NULL) {
            *out = r;
            continue;
        }
        if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK && rs != PGRES_PIPELINE_ABORTED &&
            e->res == NULL) {
            const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            (void)snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", code ? code : "");
            e->res = r;
            e->text = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            if (e->text == NULL)
                e->text = PQresultErrorMessage(r);
            if (PQstatus(c) != CONNECTION_OK)
                return PIPE_CONN;
            continue;
        }
        PQclear(r);
        if (PQstatus(c) != CONNECTION_OK)
            return PIPE_CONN;
    }
}

/* Runs the pipeline `q` once on the open session `pc`. *lost: the session broke. */
static tl_status run_once(struct pg_store *ps, struct pg_conn *pc, const char *what,
                          const struct pg_query *q, int nq, int keep, PGresult **out, bool *lost)
{
    struct pipe_err e = {.res = NULL};
    char text[TL_ERRMSG_SIZE];
    int64_t start = tl__real_mono_ms();
    int64_t deadline = start + ps->timeout_ms + CLIENT_GRACE_MS;
    int64_t caller = caller_deadline(ps);
    tl_status st = TL_OK;

    if (caller < deadline)
        deadline = caller; /* a renew: its lock's loss deadline */

    *lost = false;
    ps->sqlstate[0] = '\0';
    enum pipe_rc rc = pipeline(pc->c, q, nq, keep, out, deadline, &e);
    if (rc == PIPE_OK)
        return TL_OK;
    PQclear(*out);
    *out = NULL;

    if (rc == PIPE_SQL) {
        clean_text(ps, text, sizeof(text), e.text);
        memcpy(ps->sqlstate, e.sqlstate, sizeof(ps->sqlstate));
        if (strcmp(e.sqlstate, "57014") == 0 || strcmp(e.sqlstate, "55P03") == 0 ||
            strcmp(e.sqlstate, "25P03") == 0)
            st = tl__store_fail(&ps->base, TL_ETIMEDOUT, "postgres: %s: no answer within %u ms: %s",
                                what, ps->timeout_ms, text);
        else
            st = tl__store_fail(&ps->base, TL_ESTORE, "postgres: %s: %s (SQLSTATE %s)", what, text,
                                e.sqlstate[0] ? e.sqlstate : "?");
        PQclear(e.res);
        /* The error left the transaction open and failed: end it before the next call. */
        if (PQtransactionStatus(pc->c) != PQTRANS_IDLE) {
            const struct pg_query rb = {.sql = sql_rollback};
            struct pipe_err e2 = {.res = NULL};

            if (pipeline(pc->c, &rb, 1, -1, NULL, deadline, &e2) != PIPE_OK ||
                PQtransactionStatus(pc->c) != PQTRANS_IDLE)
                conn_drop(pc);
            PQclear(e2.res);
        }
        return st;
    }
    if (rc == PIPE_TIMEOUT) {
        conn_drop(pc);
        PQclear(e.res);
        return tl__store_fail(&ps->base, TL_ETIMEDOUT,
                              "postgres: %s: no answer from %s within %lld ms; the connection "
                              "was closed and is reopened on the next call",
                              what, ps->shown, (long long)(deadline - start));
    }
    clean_text(ps, text, sizeof(text),
               e.text != NULL && e.text[0] != '\0' ? e.text : PQerrorMessage(pc->c));
    PQclear(e.res);
    conn_drop(pc);
    *lost = true;
    (void)snprintf(pc->lasterr, sizeof(pc->lasterr), "%s", text[0] ? text : "connection lost");
    return tl__store_fail(&ps->base, TL_ESTORE, "postgres: %s: connection to %s lost: %s", what,
                          ps->shown, pc->lasterr);
}

static bool retryable(const char *sqlstate)
{
    /* serialization_failure, deadlock_detected: possible when the server's default isolation
     * is stricter than READ COMMITTED; the statement is safe to run again. */
    return strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0;
}

/* Runs a pipeline, opening the session first if needed. A session that breaks after having
 * been idle (a server restart, a pooler that closes idle connections) is reopened and the
 * pipeline sent again once, and a serialization failure is retried (bounded): every statement
 * here is safe to repeat. */
static tl_status run_many(struct pg_store *ps, struct pg_conn *pc, const char *what,
                          const struct pg_query *q, int nq, int keep, PGresult **out)
{
    tl_status st;
    bool reconnected = false;

    *out = NULL;
    for (int attempt = 0;; attempt++) {
        bool fresh = pc->c == NULL, lost = false;

        if ((st = conn_open(ps, pc)) != TL_OK)
            return st;
        st = run_once(ps, pc, what, q, nq, keep, out, &lost);
        if (st == TL_OK || attempt >= 3)
            return st;
        if (lost && !fresh && !reconnected) {
            reconnected = true;
            TL_LOG(ps->base.log, TL_LOG_INFO, "%s; reconnecting", ps->base.errmsg);
        } else if (!lost && retryable(ps->sqlstate)) {
            TL_LOG(ps->base.log, TL_LOG_DEBUG, "%s; trying again", ps->base.errmsg);
        } else {
            return st;
        }
    }
}

static tl_status ensure_schema(struct pg_store *ps, bool force);

/* Runs one statement (its own transaction: autocommit) and returns its result in *out. If our
 * tables or functions are missing (dropped, or the schema of an older version), they are made
 * again and the statement retried, once. */
static tl_status run_sql(struct pg_store *ps, struct pg_conn *pc, const char *what, const char *sql,
                         int n, const char *const *v, PGresult **out)
{
    const struct pg_query q = {.sql = sql, .n = n, .v = v};
    tl_status st = run_many(ps, pc, what, &q, 1, 0, out);

    if (st != TL_OK && !ps->healing &&
        (strcmp(ps->sqlstate, "42883") == 0 || strcmp(ps->sqlstate, "42P01") == 0)) {
        char keep[TL_ERRMSG_SIZE];

        memcpy(keep, ps->base.errmsg, sizeof(keep));
        ps->healing = true;
        tl_status fix = ensure_schema(ps, true);
        ps->healing = false;
        if (fix != TL_OK) {
            memcpy(ps->base.errmsg, keep, sizeof(keep));
            return st;
        }
        TL_LOG(ps->base.log, TL_LOG_WARN, "postgres: %s; made the tables again", keep);
        st = run_many(ps, pc, what, &q, 1, 0, out);
    }
    return st;
}

static tl_status run(struct pg_store *ps, struct pg_conn *pc, const char *what, enum stmt_id id,
                     int n, const char *const *v, PGresult **out)
{
    return run_sql(ps, pc, what, ps->sql[id], n, v, out);
}

/* ---- reading rows ---- */

static bool get_i64(const PGresult *r, int row, int col, int64_t *out)
{
    char *end;

    if (col >= PQnfields(r) || PQgetisnull(r, row, col))
        return false;
    const char *s = PQgetvalue(r, row, col);
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

static const char *get_text(const PGresult *r, int row, int col)
{
    if (col >= PQnfields(r) || PQgetisnull(r, row, col))
        return NULL;
    return PQgetvalue(r, row, col);
}

static bool get_bool(const PGresult *r, int row, int col, bool *out)
{
    const char *s = get_text(r, row, col);

    if (s == NULL || (strcmp(s, "t") != 0 && strcmp(s, "f") != 0))
        return false;
    *out = s[0] == 't';
    return true;
}

/* Fills `rec` from the PG_NRECORD record columns at `col` of `row`. A row that does not make sense
 * (typed in by hand, or damaged) is TL_ESTORE with a message naming the key and the field. */
static tl_status read_record(struct pg_store *ps, const PGresult *r, int row, int col,
                             const char *key, struct tl_record *rec)
{
    int64_t token, claimed, beat, timeout, now;
    bool stale;
    const char *worker = get_text(r, row, col + 1), *node = get_text(r, row, col + 2);
    const char *task = get_text(r, row, col + 6);
    const char *bad = NULL;
    char err[TL_ERRMSG_SIZE] = "";
    char *norm = NULL;

    memset(rec, 0, sizeof(*rec));
    if (!get_i64(r, row, col, &token) || token <= 0)
        bad = "token";
    else if (worker == NULL || tl__check_id(worker, TL_ID_MAX) != NULL)
        bad = "worker_id";
    else if (node == NULL || tl__check_id(node, TL_ID_MAX) != NULL)
        bad = "node_id";
    else if (!get_i64(r, row, col + 3, &claimed))
        bad = "claimed_at";
    else if (!get_i64(r, row, col + 4, &beat))
        bad = "heartbeat_at";
    else if (!get_i64(r, row, col + 5, &timeout) || timeout <= 0 || timeout > UINT32_MAX)
        bad = "lock_timeout_ms";
    else if (!get_bool(r, row, col + 7, &stale) || !get_i64(r, row, col + 8, &now))
        bad = "the server's clock";
    else if (task == NULL)
        bad = "task_info";
    if (bad != NULL)
        return tl__store_fail(&ps->base, TL_ESTORE,
                              "postgres: lock \"%s\": the row has a missing or bad %s (fix or "
                              "delete it in %s.tasklock_locks)",
                              key, bad, ps->schema);
    tl_status st = tl__task_info_normalize(task, &norm, err);
    if (st == TL_ENOMEM)
        return tl__store_fail(&ps->base, TL_ENOMEM, "out of memory");
    if (st != TL_OK)
        return tl__store_fail(&ps->base, TL_ESTORE,
                              "postgres: lock \"%s\": the row's task_info is not a JSON object "
                              "(%s); fix or delete it in %s.tasklock_locks",
                              key, err, ps->schema);
    rec->info.key = tl__strdup(key);
    rec->info.worker_id = tl__strdup(worker);
    rec->info.node_id = tl__strdup(node);
    rec->info.task_info = norm;
    rec->info.token = (uint64_t)token;
    rec->info.claimed_at_ms = claimed;
    rec->info.heartbeat_at_ms = beat;
    rec->info.lock_timeout_ms = (uint32_t)timeout;
    rec->info.observed_at_ms = now;
    rec->info.stale = stale;
    if (rec->info.key == NULL || rec->info.worker_id == NULL || rec->info.node_id == NULL) {
        tl__record_clear(rec);
        return tl__store_fail(&ps->base, TL_ENOMEM, "out of memory");
    }
    return TL_OK;
}

static tl_status bad_reply(struct pg_store *ps, const char *what)
{
    return tl__store_fail(&ps->base, TL_ESTORE,
                          "postgres: %s: unexpected reply from the server (is %s.tasklock_locks "
                          "a tasklock table?)",
                          what, ps->schema);
}

/* ---- open / close ---- */

/* Makes the tables, sequence and functions unless they are there (or if `force`). Checking
 * first means that a role with only the DML grants works once an administrator made them. */
static tl_status ensure_schema(struct pg_store *ps, bool force)
{
    char check[6144];
    PGresult *r = NULL;
    tl_status st;
    const char *const sc = ps->schema;
    char next_check[1024], modes_check[1536], conv_check[2048];

    /* The claim-next part (postgres_next.c) and the shared holders (postgres_modes_sql.c),
     * added to a schema made before them like the line. */
    tl__pg_next_check(next_check, sizeof(next_check), sc);
    tl__pg_modes_check(modes_check, sizeof(modes_check), sc);
    if (!tl__pg_conv_check(conv_check, sizeof(conv_check), sc))
        return tl__store_fail(&ps->base, TL_ESTORE, "postgres: the schema check does not fit");

    int len =
        snprintf(check, sizeof(check),
                 "SELECT to_regnamespace('\"%s\"') IS NOT NULL, "
                 "coalesce(obj_description(to_regclass('\"%s\".tasklock_locks'), 'pg_class'), "
                 "''), to_regclass('\"%s\".tasklock_history') IS NOT NULL AND "
                 "to_regclass('\"%s\".tasklock_tokens') IS NOT NULL AND "
                 "to_regprocedure('\"%s\".tasklock_claim_v1(text, text, text, text, integer, "
                 "integer, text)') IS NOT NULL AND "
                 "to_regprocedure('\"%s\".tasklock_renew_v1(text, text, bigint, text)') IS NOT "
                 "NULL AND to_regprocedure('\"%s\".tasklock_release_v1(text, text, bigint, "
                 "text, text, text)') IS NOT NULL AND "
                 "to_regclass('\"%s\".tasklock_waiters') IS NOT NULL AND "
                 "to_regprocedure('\"%s\".tasklock_wake_head_v2(text)') IS NOT NULL AND "
                 "to_regprocedure('\"%s\".tasklock_grant_v2(text, text, text, text, integer, "
                 "text, text, timestamptz)') IS NOT NULL AND "
                 "to_regprocedure('\"%s\".tasklock_line_v2(text, text, integer, "
                 "timestamptz)') IS NOT NULL AND to_regprocedure('\"%s\".tasklock_queue_v2("
                 "text, text, text, text, integer, integer, timestamptz, boolean)') IS NOT "
                 "NULL AND "
                 "to_regprocedure('\"%s\".tasklock_claim_v2(text, text, text, text, integer, "
                 "integer, text, text, integer, integer)') IS NOT NULL AND "
                 "to_regprocedure('\"%s\".tasklock_release_v2(text, text, bigint, text, text, "
                 "text)') IS NOT NULL AND to_regprocedure('\"%s\".tasklock_leave_v2(text, "
                 "text)') IS NOT NULL AND to_regprocedure('\"%s\".tasklock_extend_v2(text, "
                 "text, bigint, text, integer)') IS NOT NULL %s %s %s",
                 sc, sc, sc, sc, sc, sc, sc, sc, sc, sc, sc, sc, sc, sc, sc, sc, next_check,
                 modes_check, conv_check);
    if (len < 0 || (size_t)len >= sizeof(check))
        return tl__store_fail(&ps->base, TL_ESTORE, "postgres: the schema check does not fit");
    const struct pg_query q[] = {{.sql = check}};
    if ((st = run_many(ps, &ps->main, "checking the tables", q, 1, 0, &r)) != TL_OK)
        return st;

    bool ns = false, others = false;
    const char *comment = PQntuples(r) == 1 ? get_text(r, 0, 1) : NULL;
    if (comment == NULL || !get_bool(r, 0, 0, &ns) || !get_bool(r, 0, 2, &others)) {
        PQclear(r);
        return bad_reply(ps, "checking the tables");
    }
    /* The table's comment carries the schema version: "tasklock schema N". */
    const char *const mark = "tasklock schema ";
    uint64_t version = 0;
    bool ours = strncmp(comment, mark, strlen(mark)) == 0 &&
                tl__parse_u64(comment + strlen(mark), &version);
    PQclear(r);
    if (ours && version > SCHEMA_VERSION)
        return tl__store_fail(&ps->base, TL_ESTORE,
                              "postgres: %s.tasklock_locks was made by a newer tasklock (schema "
                              "%llu, this one knows %d)",
                              ps->schema, (unsigned long long)version, SCHEMA_VERSION);
    if (ours && version == SCHEMA_VERSION && others && !force)
        return TL_OK; /* the common case: no DDL, no CREATE privilege needed */

    char create_schema[SCHEMA_MAX + 64];
    const char *const limits[] = {ps->timeout_text};
    struct pg_query ddl[SCHEMA_STMTS + PG_NEXT_DDL + PG_MODES_DDL + PG_CONV_DDL + 4];
    int n = 0;
    ddl[n++] = (struct pg_query){.sql = sql_begin};
    ddl[n++] = (struct pg_query){.sql = sql_limits, .n = 1, .v = limits};
    ddl[n++] = (struct pg_query){.sql = ps->ddl[0]};
    if (!ns) {
        (void)snprintf(create_schema, sizeof(create_schema), "CREATE SCHEMA IF NOT EXISTS \"%s\"",
                       ps->schema);
        ddl[n++] = (struct pg_query){.sql = create_schema};
    }
    for (size_t i = 1; i < SCHEMA_STMTS; i++)
        ddl[n++] = (struct pg_query){.sql = ps->ddl[i]};
    for (size_t i = 0; i < PG_NEXT_DDL; i++)
        ddl[n++] = (struct pg_query){.sql = ps->next_ddl[i]};
    for (size_t i = 0; i < PG_MODES_DDL; i++)
        ddl[n++] = (struct pg_query){.sql = ps->modes_ddl[i]};
    for (size_t i = 0; i < PG_CONV_DDL; i++)
        ddl[n++] = (struct pg_query){.sql = ps->conv_ddl[i]};
    ddl[n++] = (struct pg_query){.sql = sql_commit};
    st = run_many(ps, &ps->main, "creating the tables", ddl, n, -1, &r);
    PQclear(r);
    if (st == TL_OK)
        TL_LOG(ps->base.log, TL_LOG_INFO, "postgres: tables ready in schema %s", ps->schema);
    return st;
}

static tl_status pg_open(struct tl_store *s, const char *url)
{
    struct pg_store *ps = (struct pg_store *)s;
    char *err = NULL;
    tl_status st;

    ps->timeout_ms = DEFAULT_TIMEOUT_MS;
    ps->wakeup = true;
    (void)snprintf(ps->schema, sizeof(ps->schema), "%s", DEFAULT_SCHEMA);
    if ((ps->shown = tl__redact_url(url)) == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    if ((st = strip_params(ps, url)) != TL_OK)
        return st;

    PQconninfoOption *opts = PQconninfoParse(ps->conninfo, &err);
    collect_secrets(ps, url, opts);
    if (opts == NULL) {
        char text[TL_ERRMSG_SIZE];
        tl_status bad = err != NULL ? TL_EINVAL : TL_ENOMEM;

        clean_text(ps, text, sizeof(text), err ? err : "out of memory");
        PQfreemem(err);
        return tl__store_fail(s, bad, "postgres store URL %s: %s", ps->shown, text);
    }
    /* The server-side statement timeout rides on the startup packet, after the URI's own
     * options: no statement per call. A transaction pooler may refuse startup options, and a
     * LISTEN needs a session of its own: `pooled=true` sends neither (set statement_timeout on
     * the role there: ALTER ROLE ... SET statement_timeout). */
    const char *user_options = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "options") == 0 && o->val != NULL && o->val[0] != '\0')
            user_options = o->val;
    }
    if (!ps->pooled)
        ps->options = tl__asprintf("%s%s-c statement_timeout=%u", user_options ? user_options : "",
                                   user_options ? " " : "", ps->timeout_ms);
    else if (user_options != NULL)
        ps->options = tl__strdup(user_options);
    PQconninfoFree(opts);
    if (ps->pooled)
        ps->wakeup = false;
    if ((!ps->pooled || user_options != NULL) && ps->options == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");

    (void)snprintf(ps->timeout_text, sizeof(ps->timeout_text), "%u", ps->timeout_ms);
    (void)snprintf(ps->channel, sizeof(ps->channel), "tasklock_released:%s", ps->schema);
    for (int i = 0; i < ST_COUNT; i++) {
        if ((ps->sql[i] = expand(ps, sql_text[i])) == NULL)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < SCHEMA_STMTS; i++) {
        if ((ps->ddl[i] = expand(ps, schema_sql[i])) == NULL)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < PG_NEXT_SQL; i++) {
        if ((ps->next_sql[i] = expand(ps, tl__pg_next_sql[i])) == NULL)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < PG_NEXT_DDL; i++) {
        if ((ps->next_ddl[i] = expand(ps, tl__pg_next_ddl[i])) == NULL)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < PG_MODES_SQL; i++) {
        if ((ps->modes_sql[i] = expand(ps, tl__pg_modes_sql[i])) == NULL)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < PG_MODES_DDL; i++) {
        if ((ps->modes_ddl[i] = expand(ps, tl__pg_modes_ddl[i])) == NULL)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < PG_CONV_SQL; i++) {
        if ((ps->conv_sql[i] = expand(ps, tl__pg_conv_sql[i])) == NULL)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < PG_CONV_DDL; i++) {
        char *tmpl = NULL;

        if ((st = tl__pg_conv_template(i, &tmpl)) != TL_OK)
            return tl__store_fail(s, st,
                                  st == TL_ENOMEM ? "out of memory"
                                                  : "postgres: a _v7 function cannot be made "
                                                    "from its _v6 source (a bug)");
        ps->conv_ddl[i] = expand(ps, tmpl);
        tl__free(tmpl);
        if (ps->conv_ddl[i] == NULL)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    if ((st = conn_open(ps, &ps->main)) != TL_OK)
        return st;
    if ((st = ensure_schema(ps, false)) != TL_OK)
        return st;
    s->modes = true;
    s->deadlocks = true;
    return TL_OK;
}

static void pg_close(struct tl_store *s)
{
    struct pg_store *ps = (struct pg_store *)s;

    conn_drop(&ps->main);
    conn_drop(&ps->wait);
    for (int i = 0; i < ST_COUNT; i++)
        tl__free(ps->sql[i]);
    for (size_t i = 0; i < SCHEMA_STMTS; i++)
        tl__free(ps->ddl[i]);
    for (size_t i = 0; i < PG_NEXT_SQL; i++)
        tl__free(ps->next_sql[i]);
    for (size_t i = 0; i < PG_NEXT_DDL; i++)
        tl__free(ps->next_ddl[i]);
    for (size_t i = 0; i < PG_MODES_SQL; i++)
        tl__free(ps->modes_sql[i]);
    for (size_t i = 0; i < PG_MODES_DDL; i++)
        tl__free(ps->modes_ddl[i]);
    for (size_t i = 0; i < PG_CONV_SQL; i++)
        tl__free(ps->conv_sql[i]);
    for (size_t i = 0; i < PG_CONV_DDL; i++)
        tl__free(ps->conv_ddl[i]);
    for (int i = 0; i < SECRETS_MAX; i++)
        tl__free(ps->secret[i]);
    tl__free(ps->conninfo);
    tl__free(ps->options);
    tl__free(ps->shown);
}

/* ---- the contract ---- */

/* Whether `id` is a waiter id: 32 lower-case hex digits (so "tlw_" || id is a channel name). */
static bool valid_waiter_id(const char *id)
{
    size_t n = 0;

    if (id == NULL)
        return false;
    for (; id[n] != '\0'; n++) {
        if (n >= 32 || !((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
            return false;
    }
    return n == 32;
}

static tl_status bad_waiter_id(struct tl_store *s)
{
    return tl__store_fail(s, TL_EINVAL, "postgres: a waiter id must be 32 lower-case hex digits");
}

static tl_status pg_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                          int64_t *heartbeat_at_ms)
{
    struct pg_store *ps = (struct pg_store *)s;
    char token[24];
    PGresult *r = NULL;
    int64_t beat = 0;

    (void)seq;
    (void)snprintf(token, sizeof(token), "%llu", (unsigned long long)held->info.token);
    const char *const p[] = {held->info.key, held->info.worker_id, token,
                             held->info.node_id ? held->info.node_id : "?"};
    tl_status st = run(ps, &ps->main, "renewing a lock", ST_RENEW, 4, p, &r);
    if (st != TL_OK)
        return st;
    bool one = PQntuples(r) == 1 && PQnfields(r) == 1;
    bool lost = one && PQgetisnull(r, 0, 0);
    bool ok = one && get_i64(r, 0, 0, &beat);
    PQclear(r);
    if (lost)
        return tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu",
                              held->info.key, held->info.worker_id,
                              (unsigned long long)held->info.token);
    if (!ok)
        return bad_reply(ps, "renewing a lock");
    *heartbeat_at_ms = beat;
    return TL_OK;
}

static tl_status pg_release(struct tl_store *s, const struct tl_record *held, const char *summary)
{
    struct pg_store *ps = (struct pg_store *)s;
    char token[24];
    PGresult *r = NULL;
    int64_t outcome = -1;

    (void)snprintf(token, sizeof(token), "%llu", (unsigned long long)held->info.token);
    const char *const p[] = {held->info.key, held->info.worker_id,
                             token,          held->info.node_id ? held->info.node_id : "?",
                             summary,        ps->channel};
    tl_status st = run(ps, &ps->main, "releasing a lock", ST_RELEASE, 6, p, &r);
    if (st != TL_OK)
        return st;
    bool ok = PQntuples(r) == 1 && PQnfields(r) == 1 && get_i64(r, 0, 0, &outcome);
    PQclear(r);
    if (!ok || outcome < 0 || outcome > 2)
        return bad_reply(ps, "releasing a lock");
    if (outcome == 0)
        return tl__store_fail(s, TL_ENOTOWNER, "%s is held by someone else now", held->info.key);
    return TL_OK; /* 1: released now; 2: released before by this token, no one claimed since */
}

static tl_status pg_history(struct tl_store *s, const char *key, size_t limit,
                            struct tl_event ***out, size_t *count)
{
    struct pg_store *ps = (struct pg_store *)s;
    struct tl_event **arr = NULL;
    size_t n = 0, cap = 0;
    PGresult *r = NULL;
    char lim[24];
    tl_status st;

    (void)snprintf(lim, sizeof(lim), "%llu",
                   (unsigned long long)(limit > INT64_MAX ? INT64_MAX : limit));
    const char *const pk[] = {key, lim};
    const char *const pa[] = {lim};
    if (key != NULL)
        st = run(ps, &ps->main, "reading the history", ST_HISTORY_KEY, 2, pk, &r);
    else
        st = run(ps, &ps->main, "reading the history", ST_HISTORY_ALL, 1, pa, &r);
    if (st != TL_OK)
        return st;

    for (int i = 0; st == TL_OK && i < PQntuples(r); i++) {
        struct tl_event *e = tl__event_new();
        int64_t at, token;
        const char *k = get_text(r, i, 1), *w = get_text(r, i, 3), *nd = get_text(r, i, 4);
        const char *detail = get_text(r, i, 6);

        if (e == NULL) {
            st = tl__store_fail(s, TL_ENOMEM, "out of memory");
            break;
        }
        if (!get_i64(r, i, 0, &at) || !get_i64(r, i, 5, &token) || k == NULL || w == NULL ||
            nd == NULL || !tl__event_kind_from_name(get_text(r, i, 2), &e->kind)) {
            tl__event_free(e);
            st = tl__store_fail(s, TL_ESTORE,
                                "postgres: a row of %s.tasklock_history has a missing or bad "
                                "field",
                                ps->schema);
            break;
        }
        e->at_ms = at;
        e->token = (uint64_t)token;
        e->key = tl__strdup(k);
        e->worker_id = tl__strdup(w);
        e->node_id = tl__strdup(nd);
        e->detail = detail ? tl__strdup(detail) : NULL;
        if (!e->key || !e->worker_id || !e->node_id || (detail && !e->detail) ||
            tl__event_array_push(&arr, &n, &cap, e) != TL_OK) {
            tl__event_free(e);
            st = tl__store_fail(s, TL_ENOMEM, "out of memory");
        }
    }
    PQclear(r);
    if (st != TL_OK) {
        tl_event_array_free(arr, n);
        return st;
    }
    tl__event_array_reverse(arr, n); /* newest first from SQL; oldest first out */
    *out = arr;
    *count = n;
    return TL_OK;
}

/* ---- wake-up on release ---- */

enum wait_end { WAIT_TIMEOUT, WAIT_NOTIFIED, WAIT_BROKEN };

static void drain_notifies(PGconn *c)
{
    PGnotify *nt;

    while (c != NULL && (nt = PQnotifies(c)) != NULL)
        PQfreemem(nt);
}

static void unlisten(struct pg_store *ps)
{
    PGresult *r = NULL;
    char keep[TL_ERRMSG_SIZE];

    if (ps->wait.c == NULL)
        return;
    memcpy(keep, ps->base.errmsg, sizeof(keep));
    const struct pg_query q[] = {{.sql = ps->sql[ST_UNLISTEN]}};
    if (run_once(ps, &ps->wait, "stopping to listen", q, 1, 0, &r, &(bool){false}) != TL_OK)
        conn_drop(&ps->wait); /* a session that may still listen is not kept */
    PQclear(r);
    drain_notifies(ps->wait.c);
    memcpy(ps->base.errmsg, keep, sizeof(keep));
}

static enum wait_end await_release(struct pg_store *ps, const char *key, int64_t end)
{
    PGconn *c = ps->wait.c;

    for (;;) {
        PGnotify *nt;

        while ((nt = PQnotifies(c)) != NULL) {
            bool match = strcmp(nt->relname, ps->channel) == 0 && nt->extra != NULL &&
                         strcmp(nt->extra, key) == 0;
            PQfreemem(nt);
            if (match)
                return WAIT_NOTIFIED;
        }
        int w = wait_socket(c, POLLIN, end);
        if (w == 0)
            return WAIT_TIMEOUT;
        if (w < 0 || !PQconsumeInput(c))
            return WAIT_BROKEN;
    }
}

/*
 * LISTEN (committed on its own, so that every release committed after it is delivered), then
 * flag the row as waited for, which also re-checks it: a release committed between the failed
 * claim and the LISTEN shows as a free key, and one committed after the flag sees it and
 * notifies. Then wait on the socket. Releases notify only flagged rows, so that releases no one
 * waits for do not take the server's notification lock, which serialises committing notifiers.
 */
static tl_status pg_wait(struct tl_store *s, const char *key, uint32_t timeout_ms)
{
    struct pg_store *ps = (struct pg_store *)s;
    int64_t end = tl__real_mono_ms() + timeout_ms;
    const char *const p[] = {key};
    PGresult *r = NULL;
    tl_status st;

    ps->stats.calls++;
    if (!ps->wakeup) {
        ps->stats.failed++;
        return tl__store_fail(s, TL_ENOTSUP, "postgres: wake-up on release is off (wakeup=off)");
    }
    if ((st = run(ps, &ps->wait, "listening for releases", ST_LISTEN, 0, NULL, &r)) != TL_OK)
        goto err;
    PQclear(r);
    uint64_t generation = ps->wait.generation;
    st = run(ps, &ps->wait, "waiting for a release", ST_WAKE, 1, p, &r);
    if (st == TL_OK && ps->wait.generation != generation)
        st = tl__store_fail(s, TL_ESTORE, "postgres: the listening session was reopened");
    if (st != TL_OK) {
        PQclear(r);
        unlisten(ps);
        goto err;
    }
    bool held = PQntuples(r) > 0;
    PQclear(r);
    if (!held) {
        ps->stats.free++;
        unlisten(ps);
        return TL_OK;
    }

    enum wait_end how = await_release(ps, key, end);
    if (how == WAIT_BROKEN) {
        conn_drop(&ps->wait);
        ps->stats.failed++;
        int64_t left = end - tl__real_mono_ms();
        TL_LOG(s->log, TL_LOG_DEBUG, "postgres: the listening session broke; sleeping instead");
        if (left > 0)
            s->clock->sleep_ms(s->clock->ud, (uint32_t)left);
        return TL_OK;
    }
    if (how == WAIT_NOTIFIED)
        ps->stats.notified++;
    else
        ps->stats.timed_out++;
    unlisten(ps);
    return TL_OK;

err:
    ps->stats.failed++;
    return st;
}

/* ---- the line ---- */

static tl_status pg_extend(struct tl_store *s, const struct tl_record *held,
                           uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    struct pg_store *ps = (struct pg_store *)s;
    char token[24], timeout[16];
    PGresult *r = NULL;
    int64_t beat = 0;

    if (lock_timeout_ms == 0 || lock_timeout_ms > INT32_MAX)
        return tl__store_fail(s, TL_EINVAL, "postgres: a lock timeout must be 1 to %d ms",
                              INT32_MAX);
    (void)snprintf(token, sizeof(token), "%llu", (unsigned long long)held->info.token);
    (void)snprintf(timeout, sizeof(timeout), "%u", lock_timeout_ms);
    const char *const p[] = {held->info.key, held->info.worker_id, token,
                             held->info.node_id ? held->info.node_id : "?", timeout};
    tl_status st = run(ps, &ps->main, "extending a lock", ST_EXTEND, 5, p, &r);
    if (st != TL_OK)
        return st;
    bool one = PQntuples(r) == 1 && PQnfields(r) == 1;
    bool lost = one && PQgetisnull(r, 0, 0);
    bool ok = one && get_i64(r, 0, 0, &beat);
    PQclear(r);
    if (lost)
        return tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu",
                              held->info.key, held->info.worker_id,
                              (unsigned long long)held->info.token);
    if (!ok)
        return bad_reply(ps, "extending a lock");
    *heartbeat_at_ms = beat;
    return TL_OK;
}

/* Stops listening on the channel of the waiter the wait session listens for, if any (best
 * effort: a session that cannot say UNLISTEN is closed, which ends its LISTEN too). */
static void unlisten_turn(struct pg_store *ps)
{
    char sql[64], keep[TL_ERRMSG_SIZE];
    PGresult *r = NULL;

    if (ps->listen_id[0] == '\0' || ps->wait.c == NULL || ps->listen_gen != ps->wait.generation) {
        ps->listen_id[0] = '\0';
        return;
    }
    memcpy(keep, ps->base.errmsg, sizeof(keep));
    (void)snprintf(sql, sizeof(sql), "UNLISTEN \"tlw_%s\"", ps->listen_id);
    const struct pg_query q[] = {{.sql = sql}};
    if (run_once(ps, &ps->wait, "stopping to listen", q, 1, 0, &r, &(bool){false}) != TL_OK)
        conn_drop(&ps->wait);
    PQclear(r);
    ps->listen_id[0] = '\0';
    memcpy(ps->base.errmsg, keep, sizeof(keep));
}

static tl_status pg_leave(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct pg_store *ps = (struct pg_store *)s;
    PGresult *r = NULL;
    int64_t left = -1;

    /* The core gives a leave a short time of its own past the acquire's deadline. */
    if (!valid_waiter_id(waiter_id))
        return bad_waiter_id(s);
    const char *const p[] = {key, waiter_id};
    tl_status st = run(ps, &ps->main, "leaving the line", ST_LEAVE, 2, p, &r);
    if (st != TL_OK)
        return st;
    bool ok = PQntuples(r) == 1 && PQnfields(r) == 1 && get_i64(r, 0, 0, &left);
    PQclear(r);
    if (!ok || left < 0 || left > 1)
        return bad_reply(ps, "leaving the line");
    if (strcmp(ps->listen_id, waiter_id) == 0)
        unlisten_turn(ps);
    return TL_OK;
}

/* Where a waiter stands (ST_TURN). */
struct turn {
    bool free;       /* no one holds the key */
    bool in_line;    /* the waiter is in line and live */
    int64_t ahead;   /* live waiters ahead of it */
    int64_t recheck; /* ms until the first of those goes dead; -1: none ahead */
};

static tl_status read_turn(struct pg_store *ps, struct pg_conn *pc, const char *key,
                           const char *waiter_id, struct turn *t)
{
    const char *const p[] = {key, waiter_id};
    PGresult *r = NULL;

    *t = (struct turn){.recheck = -1};
    tl_status st = run(ps, pc, "looking at the line", ST_TURN, 2, p, &r);
    if (st != TL_OK)
        return st;
    bool ok = PQntuples(r) == 1 && PQnfields(r) == 4 && get_bool(r, 0, 0, &t->free) &&
              get_bool(r, 0, 1, &t->in_line) && get_i64(r, 0, 2, &t->ahead) &&
              (PQgetisnull(r, 0, 3) || get_i64(r, 0, 3, &t->recheck));
    PQclear(r);
    return ok ? TL_OK : bad_reply(ps, "looking at the line");
}

/* The waiter's turn has come: the key is free and no live waiter is ahead of it. */
static bool turn_come(const struct turn *t)
{
    return t->free && t->in_line && t->ahead == 0;
}

/* How long to block before looking again: until `end`, or soon after the first waiter ahead
 * of us (on a free key) goes dead, since no one is bound to write then, and so to wake us. */
static int64_t turn_block_until(const struct turn *t, int64_t end)
{
    if (t->free && t->recheck >= 0) {
        int64_t at = tl__real_mono_ms() + (t->recheck < 5 ? 5 : t->recheck + 5);
        if (at < end)
            return at;
    }
    return end;
}

/* Without LISTEN (pooled=true, or wakeup=off): looks at the line every so often, cheaply (a
 * plain read), from every 20 ms at first to every 250 ms. */
static tl_status poll_turn(struct pg_store *ps, const char *key, const char *waiter_id, int64_t end,
                           bool *woken)
{
    uint32_t step = 20;

    for (;;) {
        struct turn t;
        tl_status st = read_turn(ps, &ps->main, key, waiter_id, &t);

        if (st != TL_OK)
            return st;
        if (turn_come(&t)) {
            *woken = true;
            return TL_OK;
        }
        if (!t.in_line) {
            *woken = true; /* not (or no longer) in line: the caller's claim puts it back */
            return TL_OK;
        }
        int64_t left = end - tl__real_mono_ms();
        if (left <= 0)
            return TL_OK;
        tl__real_sleep_ms(left < step ? (uint32_t)left : step);
        step = step * 2 > 250 ? 250 : step * 2;
    }
}

/* Blocks until a notification on `channel` for `key`, or `end`. */
static enum wait_end await_turn(struct pg_store *ps, const char *channel, const char *key,
                                int64_t end)
{
    PGconn *c = ps->wait.c;

    for (;;) {
        PGnotify *nt;

        while ((nt = PQnotifies(c)) != NULL) {
            bool match = strcmp(nt->relname, channel) == 0 && nt->extra != NULL &&
                         strcmp(nt->extra, key) == 0;
            PQfreemem(nt);
            if (match)
                return WAIT_NOTIFIED;
        }
        int w = wait_socket(c, POLLIN, end);
        if (w == 0)
            return WAIT_TIMEOUT;
        if (w < 0 || !PQconsumeInput(c))
            return WAIT_BROKEN;
    }
}

/*
 * LISTEN on the waiter's own channel (kept from one wait_turn to the next of the same waiter),
 * then look at the line: a wake-up sent before the LISTEN took effect is not lost, since it
 * was sent because the key was free and this waiter the head, which the look then finds.
 * Then block on the socket until our notification, the timeout, or (on a free key) the moment
 * the first waiter ahead would go dead, and look again.
 */
static tl_status pg_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                              uint32_t timeout_ms, bool *woken)
{
    struct pg_store *ps = (struct pg_store *)s;
    int64_t end = tl__real_mono_ms() + timeout_ms;
    int64_t caller = caller_deadline(ps);
    char channel[40], sql[2][64];
    tl_status st = TL_OK;

    *woken = false;
    if (!valid_waiter_id(waiter_id))
        return bad_waiter_id(s);
    if (caller < end)
        end = caller;
    if (!ps->wakeup)
        return poll_turn(ps, key, waiter_id, end, woken);

    (void)snprintf(channel, sizeof(channel), "tlw_%s", waiter_id);
    for (int attempt = 0; attempt < 3; attempt++) {
        if (ps->wait.c == NULL || ps->listen_gen != ps->wait.generation ||
            strcmp(ps->listen_id, waiter_id) != 0) {
            struct pg_query q[2];
            int n = 0;
            PGresult *r = NULL;

            /* The former waiter's LISTEN ends in the same transaction as ours begins. */
            if (ps->wait.c != NULL && ps->listen_id[0] != '\0' &&
                ps->listen_gen == ps->wait.generation) {
                (void)snprintf(sql[n], sizeof(sql[n]), "UNLISTEN \"tlw_%s\"", ps->listen_id);
                q[n] = (struct pg_query){.sql = sql[n]};
                n++;
            }
            ps->listen_id[0] = '\0';
            (void)snprintf(sql[n], sizeof(sql[n]), "LISTEN \"%s\"", channel);
            q[n] = (struct pg_query){.sql = sql[n]};
            n++;
            if ((st = run_many(ps, &ps->wait, "listening for a turn", q, n, -1, &r)) != TL_OK)
                return st;
            PQclear(r);
            memcpy(ps->listen_id, waiter_id, sizeof(ps->listen_id));
            ps->listen_gen = ps->wait.generation;
        }
        for (;;) {
            struct turn t;

            if ((st = read_turn(ps, &ps->wait, key, waiter_id, &t)) != TL_OK)
                return st;
            if (ps->listen_gen != ps->wait.generation)
                break; /* the session was reopened: its LISTEN is gone; listen again */
            if (turn_come(&t)) {
                *woken = true;
                return TL_OK;
            }
            if (!t.in_line) {
                *woken = true; /* not in line (deleted as dead): the caller's claim requeues */
                return TL_OK;
            }
            if (tl__real_mono_ms() >= end)
                return TL_OK;
            enum wait_end how = await_turn(ps, channel, key, turn_block_until(&t, end));
            if (how == WAIT_NOTIFIED) {
                *woken = true;
                return TL_OK;
            }
            if (how == WAIT_BROKEN) {
                conn_drop(&ps->wait);
                ps->listen_id[0] = '\0';
                return tl__store_fail(s, TL_ESTORE,
                                      "postgres: the listening session to %s broke while "
                                      "waiting in line",
                                      ps->shown);
            }
            if (tl__real_mono_ms() >= end)
                return TL_OK;
        }
    }
    return tl__store_fail(s, TL_ESTORE, "postgres: the listening session kept being reopened");
}

/* ---- test hooks (postgres.h) ---- */

bool tl__postgres_wait_stats(const struct tl_store *s, struct tl_pg_wait_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || s->ops != &tl__store_postgres)
        return false;
    *out = ((const struct pg_store *)s)->stats;
    return true;
}

bool tl__postgres_swap_sessions(struct tl_store *a, struct tl_store *b)
{
    if (a == NULL || b == NULL || a->ops != &tl__store_postgres || b->ops != &tl__store_postgres)
        return false;

    struct pg_store *pa = (struct pg_store *)a, *pb = (struct pg_store *)b;
    PGconn *c = pa->main.c;
    pa->main.c = pb->main.c;
    pb->main.c = c;
    if (pa->main.c != NULL)
        (void)PQsetNoticeProcessor(pa->main.c, on_notice, pa);
    if (pb->main.c != NULL)
        (void)PQsetNoticeProcessor(pb->main.c, on_notice, pb);
    return true;
}

void *tl__postgres_session(struct tl_store *s)
{
    if (s == NULL || s->ops != &tl__store_postgres)
        return NULL;
    return ((struct pg_store *)s)->main.c;
}

/* ---- postgres.c's helpers for postgres_next.c (postgres_int.h) ---- */

tl_status tl__pg_run(struct pg_store *ps, struct pg_conn *pc, const char *what, const char *sql,
                     int n, const char *const *v, PGresult **out)
{
    return run_sql(ps, pc, what, sql, n, v, out);
}

bool tl__pg_get_i64(const PGresult *r, int row, int col, int64_t *out)
{
    return get_i64(r, row, col, out);
}

const char *tl__pg_get_text(const PGresult *r, int row, int col)
{
    return get_text(r, row, col);
}

bool tl__pg_get_bool(const PGresult *r, int row, int col, bool *out)
{
    return get_bool(r, row, col, out);
}

tl_status tl__pg_bad_reply(struct pg_store *ps, const char *what)
{
    return bad_reply(ps, what);
}

tl_status tl__pg_read_record(struct pg_store *ps, const PGresult *r, int row, int col,
                             const char *key, struct tl_record *rec)
{
    return read_record(ps, r, row, col, key, rec);
}

bool tl__pg_valid_waiter_id(const char *id)
{
    return valid_waiter_id(id);
}

tl_status tl__pg_listen(struct pg_store *ps)
{
    PGresult *r = NULL;
    tl_status st = run(ps, &ps->wait, "listening for releases", ST_LISTEN, 0, NULL, &r);

    PQclear(r);
    return st;
}

void tl__pg_unlisten(struct pg_store *ps)
{
    unlisten(ps);
}

int tl__pg_wait_socket(PGconn *c, short events, int64_t deadline)
{
    return wait_socket(c, events, deadline);
}

int64_t tl__pg_caller_deadline(const struct pg_store *ps)
{
    return caller_deadline(ps);
}

void tl__pg_conn_drop(struct pg_conn *pc)
{
    conn_drop(pc);
}

const struct tl_store_ops tl__store_postgres = {
    .version = TL_STORE_OPS_VERSION,
    .scheme = "postgres",
    .size = sizeof(struct pg_store),
    .open = pg_open,
    .close = pg_close,
    .claim = tl__pg_claim,
    .renew = pg_renew,
    .release = pg_release,
    .inspect = tl__pg_inspect,
    .list = tl__pg_list,
    .history = pg_history,
    .wait = pg_wait,
    .force_release = tl__pg_force_release,
    .leave = pg_leave,
    .wait_turn = pg_wait_turn,
    .waiters = tl__pg_waiters,
    .extend = pg_extend,
    .claim_next = tl__pg_claim_next,
    .finish = tl__pg_finish,
    .reopen = tl__pg_reopen,
    .done_list = tl__pg_done_list,
    .wait_any = tl__pg_wait_any,
    .holders = tl__pg_holders,
    .convert = tl__pg_convert,
};
