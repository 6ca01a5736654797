/*
 * postgres_convert_sql.c -- the SQL of the PostgreSQL store's conversions and wait-for graph
 * (store.h, version 5: convert, waiters with key NULL, tl_waiter.holding): the columns, the
 * history's check and the _v7 functions that postgres_convert.c calls. See postgres_convert.c
 * for the layout and why it is so.
 *
 * Functions are made only when missing, so a changed behaviour needs a new name: an older
 * library that remakes its own functions (CREATE OR REPLACE) must not undo ours. The _v7
 * variants of drop, leave, force, finish and claim differ from their _v6 sources only in the
 * functions they call (tasklock_wake_head_v7, which knows upgraders) and, for the claim, in
 * keeping the waiter's holding text; they are derived from the _v6 text at open
 * (tl__pg_conv_template) so that the two cannot drift apart. The _v6 ones stay as they were.
 */
#include <stdio.h>
#include <string.h>

#include "postgres_int.h"

/* clang-format off */
#define MS(x) "floor(extract(epoch FROM " x ") * 1000)::int8"
#define STALE(t, now) "(" now " - " t ".heartbeat_at > " t ".lock_timeout_ms * interval '1 ms')"
#define LIVE(w, now) "(" w ".heartbeat_at + " w ".timeout_ms * interval '1 ms' > " now ")"
/* As in postgres_modes_sql.c: key row `l` stands for shared holders. */
#define MARK(l) "(" l ".worker_id IS NOT NULL AND " l ".shared_token = " l ".token)"
#define SHARED_ID   "'" PG_SHARED_ID "'"
#define SHARED_TASK "'{\"tasklock\":\"held shared: a newer tasklock lists the holders\"}'"
#define FAR_FUTURE  "timestamptz '9999-01-01 00:00:00+00'"
#define WAITER_COLS                                                                                \
    "w.waiter_id, w.worker_id, w.node_id, w.priority, w.seq, " MS("w.since") ", "                 \
    MS("w.heartbeat_at") ", w.timeout_ms, NOT " LIVE("w", "now()") ", w.key, "                    \
    "coalesce(w.holding, '')"

const char *const tl__pg_conv_sql[PG_CONV_SQL] = {
    [PC_CONVERT] = "SELECT * FROM {s}.tasklock_convert_v7($1, $2, $3::int8, $4::int4, $5::bool, "
                   "$6::int4, $7, $8, $9::int4, $10::int4, $11, $12)",
    [PC_WAITERS_KEY] = "SELECT " WAITER_COLS " FROM {s}.tasklock_waiters w WHERE w.key = $1 "
                       "ORDER BY w.priority DESC, w.seq",
    /* Every waiter of the store: the wait-for graph (one statement, one round trip). */
    [PC_WAITERS_ALL] = "SELECT " WAITER_COLS " FROM {s}.tasklock_waiters w ORDER BY w.key, "
                       "w.priority DESC, w.seq",
};

/* Entries of tl__pg_conv_ddl that are made from a _v6 function of tl__pg_modes_ddl: the
 * source's name, and what is renamed in it (each must occur at least once). */
struct rename {
    const char *from, *to;
};
struct derived {
    const char *source;
    struct rename r[4];
};
#define WAKE {"tasklock_wake_head_v6(", "tasklock_wake_head_v7("}
static const struct derived derived[PG_CONV_DDL] = {
    [PC_DDL_DROP] = {"tasklock_drop_v6(", {{"tasklock_drop_v6(", "tasklock_drop_v7("}, WAKE}},
    [PC_DDL_LEAVE] = {"tasklock_leave_v6(", {{"tasklock_leave_v6(", "tasklock_leave_v7("}, WAKE}},
    [PC_DDL_FORCE] = {"tasklock_force_v6(", {{"tasklock_force_v6(", "tasklock_force_v7("}, WAKE}},
    [PC_DDL_FINISH] = {"tasklock_finish_v6(",
                       {{"tasklock_finish_v6(", "tasklock_finish_v7("},
                        {"tasklock_drop_v6(", "tasklock_drop_v7("}}},
    /* The claim keeps its waiter's holding text (a new last argument). */
    [PC_DDL_CLAIM] = {"tasklock_claim_v6(",
                      {{"tasklock_claim_v6(", "tasklock_claim_v7("},
                       {"p_shared boolean, p_slots integer, OUT o_outcome",
                        "p_shared boolean, p_slots integer, p_holding text, OUT o_outcome"},
                       {"tasklock_queue_v6(p_key, p_waiter, p_worker, p_node, p_priority, "
                        "p_wtimeout, t, in_line, p_shared, p_slots)",
                        "tasklock_queue_v7(p_key, p_waiter, p_worker, p_node, p_priority, "
                        "p_wtimeout, t, in_line, p_shared, p_slots, coalesce(p_holding, ''), "
                        "NULL)"},
                       WAKE}},
};

const char *const tl__pg_conv_ddl[PG_CONV_DDL] = {
    /* A waiter's holding text (the wait-for graph), and for an upgrader the token of the
     * shared hold it converts (NULL: a claim's waiter). Older rows: NULL, read as "". */
    [PC_DDL_COLUMNS] = "ALTER TABLE {s}.tasklock_waiters ADD COLUMN IF NOT EXISTS holding text, "
                       "ADD COLUMN IF NOT EXISTS upgrading bigint",
    /* The history takes the two new kinds: a check that lacks them (the one the tables were
     * made with, or postgres_next.c's) is replaced, under the same name, as postgres_next.c
     * does for `done` and `reopened` (NOT VALID: every old row passes the new one anyway, so
     * there is no need to scan the table under its lock). */
    [PC_DDL_EVENTS] =
    "DO $d$\n"
    "DECLARE\n"
    "  c record;\n"
    "BEGIN\n"
    "  FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = "
    "'{s}.tasklock_history'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE "
    "'%''lost''%' AND pg_get_constraintdef(oid) NOT LIKE '%''downgraded''%' LOOP\n"
    "    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '{s}.tasklock_history', "
    "c.conname);\n"
    "    ALTER TABLE {s}.tasklock_history ADD CONSTRAINT tasklock_history_event_check CHECK "
    "(event IN ('acquired','released','stolen','forced','lost','done','reopened','upgraded',"
    "'downgraded')) NOT VALID;\n"
    "  END LOOP;\n"
    "END\n"
    "$d$",

    /* Whether a waiter's claim may go ahead now: an upgrader (p_up, the token it converts)
     * when no other holder is left (it is the only holder) or when its own hold is gone (its
     * conversion then answers TL_ELOST, sooner than its heartbeat would tell it);
     * any other when the holders would admit it, as tasklock_turn_v6 says. */
    [PC_DDL_READY] =
    "CREATE OR REPLACE FUNCTION {s}.tasklock_ready_v7(p_key text, p_shared boolean, p_slots "
    "integer, p_up bigint) RETURNS boolean LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  s record;\n"
    "BEGIN\n"
    "  IF p_up IS NOT NULL THEN\n"
    "    RETURN NOT EXISTS (SELECT 1 FROM {s}.tasklock_holding_v6 v WHERE v.key = p_key AND "
    "v.token <> p_up) OR NOT EXISTS (SELECT 1 FROM {s}.tasklock_holding_v6 v WHERE v.key = "
    "p_key AND v.token = p_up);\n"
    "  END IF;\n"
    "  SELECT * INTO s FROM {s}.tasklock_state_v6(p_key, now(), 0);\n"
    "  RETURN {s}.tasklock_admit_v6(p_shared, p_slots, s.o_counted, s.o_excl, s.o_slots) <> "
    "'no';\n"
    "END\n"
    "$f$",

    /* tasklock_wake_head_v6 that knows upgraders. */
    [PC_DDL_WAKE] =
    "CREATE OR REPLACE FUNCTION {s}.tasklock_wake_head_v7(p_key text) RETURNS integer "
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  h record;\n"
    "BEGIN\n"
    "  SELECT w.waiter_id, w.shared, w.slots, w.upgrading INTO h FROM {s}.tasklock_waiters w "
    "WHERE w.key = p_key AND " LIVE("w", "now()") " ORDER BY w.priority DESC, w.seq LIMIT 1;\n"
    "  IF NOT FOUND OR NOT {s}.tasklock_ready_v7(p_key, h.shared, h.slots, h.upgrading) THEN\n"
    "    RETURN 0;\n"
    "  END IF;\n"
    "  PERFORM pg_notify('tlw_' || h.waiter_id, p_key);\n"
    "  RETURN 1;\n"
    "END\n"
    "$f$",

    /* wait_turn's question (tasklock_turn_v6 that knows upgraders). */
    [PC_DDL_TURN] =
    "CREATE OR REPLACE FUNCTION {s}.tasklock_turn_v7(p_key text, p_waiter text) RETURNS boolean "
    "LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  sh boolean;\n"
    "  sl integer;\n"
    "  up bigint;\n"
    "BEGIN\n"
    "  SELECT w.shared, w.slots, w.upgrading INTO sh, sl, up FROM {s}.tasklock_waiters w WHERE "
    "w.waiter_id = p_waiter AND w.key = p_key;\n"
    "  RETURN {s}.tasklock_ready_v7(p_key, coalesce(sh, false), coalesce(sl, 0), up);\n"
    "END\n"
    "$f$",

    /* tasklock_queue_v6 that also keeps the holding text and the token an upgrader converts,
     * on joining and on each refresh. */
    [PC_DDL_QUEUE] =
    "CREATE OR REPLACE FUNCTION {s}.tasklock_queue_v7(p_key text, p_waiter text, p_worker text, "
    "p_node text, p_priority integer, p_wtimeout integer, t timestamptz, p_in_line boolean, "
    "p_shared boolean, p_slots integer, p_holding text, p_up bigint) RETURNS void "
    "LANGUAGE plpgsql AS $f$\n"
    "BEGIN\n"
    "  IF p_in_line THEN\n"
    "    UPDATE {s}.tasklock_waiters w SET heartbeat_at = greatest(w.heartbeat_at, t), "
    "timeout_ms = p_wtimeout, shared = p_shared, slots = p_slots, holding = p_holding, "
    "upgrading = p_up WHERE w.waiter_id = p_waiter;\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  INSERT INTO {s}.tasklock_waiters AS w (waiter_id, key, worker_id, node_id, priority, "
    "seq, since, heartbeat_at, timeout_ms, shared, slots, holding, upgrading) VALUES (p_waiter, "
    "p_key, p_worker, p_node, p_priority, nextval('{s}.tasklock_waiter_seq'), t, t, p_wtimeout, "
    "p_shared, p_slots, p_holding, p_up)\n"
    "  ON CONFLICT (waiter_id) DO UPDATE SET key = excluded.key, worker_id = "
    "excluded.worker_id, node_id = excluded.node_id, priority = excluded.priority, seq = "
    "excluded.seq, since = excluded.since, heartbeat_at = excluded.heartbeat_at, timeout_ms = "
    "excluded.timeout_ms, shared = excluded.shared, slots = excluded.slots, holding = "
    "excluded.holding, upgrading = excluded.upgrading;\n"
    "END\n"
    "$f$",

    [PC_DDL_DROP] = NULL,   /* derived */
    [PC_DDL_LEAVE] = NULL,  /* derived */
    [PC_DDL_FORCE] = NULL,  /* derived */
    [PC_DDL_FINISH] = NULL, /* derived */
    [PC_DDL_CLAIM] = NULL,  /* derived */

    /* The grant of a conversion that wins (tasklock_convert_v7, under the key row's lock): the
     * key's next token for the holder, the key row and tasklock_holders rearranged for its new
     * mode, the event. Returns the new token. */
    [PC_DDL_REGRANT] =
    "CREATE OR REPLACE FUNCTION {s}.tasklock_regrant_v7(p_key text, p_worker text, p_token "
    "bigint, p_mode integer, p_shared boolean, p_slots integer, p_claim text, p_channel text, "
    "t timestamptz) RETURNS bigint LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  k record;\n"
    "  me record;\n"
    "  d text;\n"
    "  tk bigint;\n"
    "BEGIN\n"
    "  SELECT x.* INTO k FROM {s}.tasklock_locks x WHERE x.key = p_key;\n"
    "  SELECT v.* INTO me FROM {s}.tasklock_holding_v6 v WHERE v.key = p_key AND v.token = "
    "p_token AND v.worker_id = p_worker;\n"
    "  tk := greatest(nextval('{s}.tasklock_tokens'), k.token + 1);\n"
    "  IF NOT p_shared THEN\n"
    "    IF p_mode = 1 THEN\n"
    "      SELECT string_agg(v.worker_id || ' (token ' || v.token || ')', ', ' ORDER BY "
    "v.token) INTO d FROM {s}.tasklock_holding_v6 v WHERE v.key = p_key AND v.token <> p_token "
    "AND " STALE("v", "t") ";\n"
    "    END IF;\n"
    "    DELETE FROM {s}.tasklock_holders h WHERE h.key = p_key;\n"
    "    UPDATE {s}.tasklock_locks x SET token = tk, worker_id = p_worker, node_id = "
    "me.node_id, claimed_at = t, heartbeat_at = t, lock_timeout_ms = me.lock_timeout_ms, "
    "task_info = me.task_info, claim_id = p_claim, how = CASE WHEN d IS NULL THEN 'acquired' "
    "ELSE 'stolen' END, displaced = d, shared_token = NULL, slots = NULL WHERE x.key = p_key;\n"
    "    INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token, "
    "detail) VALUES (t, p_key, 'upgraded', p_worker, me.node_id, tk, 'from token ' || p_token "
    "|| coalesce('; displaced ' || d, ''));\n"
    "  ELSE\n"
    "    DELETE FROM {s}.tasklock_holders h WHERE h.key = p_key AND (NOT " MARK("k") " OR "
    "h.token = p_token);\n"
    "    UPDATE {s}.tasklock_locks x SET token = tk, shared_token = tk, slots = p_slots, "
    "worker_id = " SHARED_ID ", node_id = " SHARED_ID ", claimed_at = CASE WHEN " MARK("x")
    " THEN x.claimed_at ELSE t END, heartbeat_at = " FAR_FUTURE ", lock_timeout_ms = "
    "2147483647, task_info = " SHARED_TASK ", claim_id = NULL, how = 'acquired', displaced = "
    "NULL, wake = false WHERE x.key = p_key;\n"
    "    INSERT INTO {s}.tasklock_holders (key, token, worker_id, node_id, claimed_at, "
    "heartbeat_at, lock_timeout_ms, task_info, claim_id, slots) VALUES (p_key, tk, p_worker, "
    "me.node_id, t, t, me.lock_timeout_ms, me.task_info, p_claim, p_slots);\n"
    "    INSERT INTO {s}.tasklock_history (at, key, event, worker_id, node_id, token, "
    "detail) VALUES (t, p_key, 'downgraded', p_worker, me.node_id, tk, 'from token ' || "
    "p_token);\n"
    "    IF k.wake THEN\n"
    "      PERFORM pg_notify(p_channel, p_key);\n"
    "    END IF;\n"
    "  END IF;\n"
    "  RETURN tk;\n"
    "END\n"
    "$f$",

    /*
     * Convert one holder (p_token, p_worker) of p_key to shared (p_shared: a downgrade) or
     * exclusive (an upgrade), under the key row's lock, as one statement. A retry of this same
     * call finds its grant by p_claim ('mine'); a holder not found is 'lost'. Dead waiters of
     * the key are deleted first. An upgrade counts the other holders (stealing: the live
     * ones); with none it wins: the key row becomes the exclusive holder with the key's next
     * token (stale shared holders displaced), its waiter leaves the line. Else 'held' with the
     * oldest other counted holder, and with p_waiter the upgrader joins the line (or refreshes
     * its place) remembering p_token. A downgrade always wins: the key row becomes the mark
     * of a shared holder with the next token. Either win writes its event and wakes the head
     * if it may now go ahead (a downgrade also notifies a flagged key row).
     */
    [PC_DDL_CONVERT] =
    "CREATE OR REPLACE FUNCTION {s}.tasklock_convert_v7(p_key text, p_worker text, p_token "
    "bigint, p_mode integer, p_shared boolean, p_slots integer, p_claim text, p_waiter text, "
    "p_priority integer, p_wtimeout integer, p_holding text, p_channel text, "
    "OUT o_outcome text, OUT o_token bigint, OUT o_worker text, OUT o_node text, "
    "OUT o_claimed bigint, OUT o_beat bigint, OUT o_timeout integer, OUT o_task text, "
    "OUT o_stale boolean, OUT o_now bigint, OUT o_how text, OUT o_waiting integer, "
    "OUT o_ahead integer, OUT o_shared boolean, OUT o_slots integer) LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  k record;\n"
    "  me record;\n"
    "  r record;\n"
    "  t timestamptz := now();\n"
    "  n_dead integer := 0;\n"
    "  counted integer := 0;\n"
    "  tk bigint;\n"
    "  in_line boolean;\n"
    "BEGIN\n"
    "  IF current_setting('synchronous_commit') = 'off' THEN\n"
    "    PERFORM set_config('synchronous_commit', 'on', true);\n"
    "  END IF;\n"
    "  o_now := " MS("t") "; o_waiting := 0; o_ahead := 0;\n"
    "  SELECT x.* INTO k FROM {s}.tasklock_locks x WHERE x.key = p_key FOR UPDATE;\n"
    "  IF NOT FOUND THEN\n"
    "    o_outcome := 'lost';\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  SELECT v.* INTO r FROM {s}.tasklock_holding_v6 v WHERE v.key = p_key AND v.claim_id = "
    "p_claim AND v.worker_id = p_worker;\n"
    "  IF FOUND THEN\n"
    "    o_outcome := 'mine';\n"
    "  ELSE\n"
    "    SELECT v.* INTO me FROM {s}.tasklock_holding_v6 v WHERE v.key = p_key AND v.token = "
    "p_token AND v.worker_id = p_worker;\n"
    "    IF NOT FOUND THEN\n"
    "      o_outcome := 'lost';\n"
    "      RETURN;\n"
    "    END IF;\n"
    "    DELETE FROM {s}.tasklock_waiters w WHERE w.key = p_key AND NOT " LIVE("w", "t") ";\n"
    "    GET DIAGNOSTICS n_dead = ROW_COUNT;\n"
    "    IF NOT p_shared THEN\n"
    "      SELECT count(*) INTO counted FROM {s}.tasklock_holding_v6 v WHERE v.key = p_key AND "
    "v.token <> p_token AND NOT (p_mode = 1 AND " STALE("v", "t") ");\n"
    "    END IF;\n"
    "    IF counted > 0 THEN\n"
    "      IF p_waiter IS NOT NULL THEN\n"
    "        in_line := EXISTS (SELECT 1 FROM {s}.tasklock_waiters w WHERE w.waiter_id = "
    "p_waiter AND w.key = p_key);\n"
    "        PERFORM {s}.tasklock_queue_v7(p_key, p_waiter, p_worker, me.node_id, p_priority, "
    "p_wtimeout, t, in_line, false, 0, coalesce(p_holding, ''), p_token);\n"
    "        SELECT count(*) INTO o_ahead FROM {s}.tasklock_waiters w, {s}.tasklock_waiters m "
    "WHERE m.waiter_id = p_waiter AND w.key = p_key AND " LIVE("w", "t") " AND (w.priority > "
    "m.priority OR (w.priority = m.priority AND w.seq < m.seq));\n"
    "      END IF;\n"
    "      IF n_dead > 0 THEN\n"
    "        PERFORM {s}.tasklock_wake_head_v7(p_key);\n"
    "      END IF;\n"
    "      SELECT count(*) INTO o_waiting FROM {s}.tasklock_waiters w WHERE w.key = p_key AND "
    LIVE("w", "t") ";\n"
    "      SELECT v.* INTO r FROM {s}.tasklock_holding_v6 v WHERE v.key = p_key AND v.token <> "
    "p_token AND NOT (p_mode = 1 AND " STALE("v", "t") ") ORDER BY v.shared, v.token LIMIT 1;\n"
    "      o_outcome := 'held';\n"
    "    ELSE\n"
    "      tk := {s}.tasklock_regrant_v7(p_key, p_worker, p_token, p_mode, p_shared, p_slots, "
    "p_claim, p_channel, t);\n"
    "      IF p_waiter IS NOT NULL THEN\n"
    "        DELETE FROM {s}.tasklock_waiters w WHERE w.waiter_id = p_waiter;\n"
    "      END IF;\n"
    "      PERFORM {s}.tasklock_wake_head_v7(p_key);\n"
    "      SELECT v.* INTO r FROM {s}.tasklock_holding_v6 v WHERE v.key = p_key AND v.token = "
    "tk;\n"
    "      o_outcome := 'won';\n"
    "    END IF;\n"
    "  END IF;\n"
    "  o_token := r.token; o_worker := r.worker_id; o_node := r.node_id;\n"
    "  o_claimed := " MS("r.claimed_at") "; o_beat := " MS("r.heartbeat_at") ";\n"
    "  o_timeout := r.lock_timeout_ms; o_task := r.task_info; o_stale := " STALE("r", "t") ";\n"
    "  o_shared := r.shared; o_slots := r.slots; o_how := 'acquired';\n"
    "END\n"
    "$f$",
};
/* clang-format on */

/* Replaces every `from` in `src` by `to`: a new string (tl__malloc), or NULL when out of
 * memory; *count says how many were replaced. */
static char *replace_all(const char *src, const char *from, const char *to, size_t *count)
{
    size_t lf = strlen(from), lt = strlen(to), n = 0;

    for (const char *p = strstr(src, from); p != NULL; p = strstr(p + lf, from))
        n++;
    *count = n;
    char *out = tl__malloc(strlen(src) + n * lt + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (const char *p = src;;) {
        const char *hit = strstr(p, from);
        size_t keep = hit ? (size_t)(hit - p) : strlen(p);

        memcpy(o, p, keep);
        o += keep;
        if (hit == NULL)
            break;
        memcpy(o, to, lt);
        o += lt;
        p = hit + lf;
    }
    *o = '\0';
    return out;
}

tl_status tl__pg_conv_template(size_t i, char **out)
{
    *out = NULL;
    if (tl__pg_conv_ddl[i] != NULL) {
        *out = tl__strdup(tl__pg_conv_ddl[i]);
        return *out ? TL_OK : TL_ENOMEM;
    }
    char head[96];
    const char *src = NULL;
    (void)snprintf(head, sizeof(head), "FUNCTION {s}.%s", derived[i].source);
    for (size_t j = 0; j < PG_MODES_DDL && src == NULL; j++) {
        if (strstr(tl__pg_modes_ddl[j], head) != NULL)
            src = tl__pg_modes_ddl[j];
    }
    if (src == NULL)
        return TL_ESTORE;
    char *text = tl__strdup(src);
    for (size_t j = 0; text != NULL && j < 4 && derived[i].r[j].from != NULL; j++) {
        size_t n = 0;
        char *next = replace_all(text, derived[i].r[j].from, derived[i].r[j].to, &n);

        tl__free(text);
        text = next;
        if (text != NULL && n == 0) {
            tl__free(text);
            return TL_ESTORE; /* the _v6 text changed: the derivation must follow it */
        }
    }
    if (text == NULL)
        return TL_ENOMEM;
    *out = text;
    return TL_OK;
}

bool tl__pg_conv_check(char *buf, size_t size, const char *sc)
{
    int n = snprintf(
        buf, size,
        "AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
        "to_regclass('\"%s\".tasklock_waiters') AND attname = 'upgrading' AND NOT attisdropped) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = "
        "to_regclass('\"%s\".tasklock_history') AND contype = 'c' AND "
        "pg_get_constraintdef(oid) LIKE '%%''lost''%%' AND pg_get_constraintdef(oid) NOT LIKE "
        "'%%''downgraded''%%') AND "
        "to_regprocedure('\"%s\".tasklock_regrant_v7(text, text, bigint, integer, boolean, "
        "integer, text, text, timestamptz)') IS NOT NULL AND "
        "to_regprocedure('\"%s\".tasklock_convert_v7(text, text, bigint, integer, boolean, "
        "integer, text, text, integer, integer, text, text)') IS NOT NULL AND "
        "to_regprocedure('\"%s\".tasklock_claim_v7(text, text, text, text, integer, integer, "
        "text, text, integer, integer, boolean, integer, text)') IS NOT NULL AND "
        "to_regprocedure('\"%s\".tasklock_drop_v7(text, text, bigint, text, text, text, "
        "boolean)') IS NOT NULL AND to_regprocedure('\"%s\".tasklock_leave_v7(text, text)') IS "
        "NOT NULL AND to_regprocedure('\"%s\".tasklock_force_v7(text, bigint, text, text, text, "
        "text)') IS NOT NULL AND to_regprocedure('\"%s\".tasklock_turn_v7(text, text)') IS NOT "
        "NULL AND to_regprocedure('\"%s\".tasklock_finish_v7(text, text, bigint, text, text, "
        "text, boolean, text[], text, text, text, integer, integer, text)') IS NOT NULL",
        sc, sc, sc, sc, sc, sc, sc, sc, sc, sc);
    return n >= 0 && (size_t)n < size;
}
