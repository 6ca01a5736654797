/*
 * sqlite.c -- the embedded store: one SQLite file shared by the workers of one machine.
 *
 * Each claim, renew and release is one short transaction (BEGIN IMMEDIATE for the ones that read
 * before they write), so many processes can share the file safely. The file is in WAL mode with
 * synchronous=FULL: every commit is durable before the call returns. NORMAL would be several
 * times faster, but after a power loss it can roll back the last commits, and with them the
 * token counter: a new holder could then receive a fencing token that an earlier holder already
 * handed to a resource, and fencing would no longer protect it. Tokens must never go backwards,
 * so the store pays one fsync per transaction (`?synchronous=normal` trades that away).
 *
 * Rows of tl_locks stay after release (worker_id NULL) so that the key's last token survives;
 * tl_history is the append-only audit trail. Staleness is judged by this machine's clock. A new
 * token is the last one + 1, but at least the wall clock in microseconds, so that tokens keep
 * growing even when the file is lost and made again (as the Redis store does).
 *
 * Waiting for the write lock is bounded by the busy timeout (`?busy_timeout=MS`, default 10 s)
 * and by the caller's deadline, whichever is first: an acquire's deadline, a renew's loss
 * deadline. A claim that cannot get the write lock by its deadline reports the key busy.
 */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "tl.h"

#define SCHEMA_VERSION  1
#define DEFAULT_BUSY_MS 10000
/* How to get away from the default file, for messages about it. */
#define DEFAULT_HINT "set TASKLOCK_DB to another file, or give the store URL a path: sqlite:PATH"

enum stmt_id {
    ST_SELECT,
    ST_UPSERT,
    ST_HISTORY_ADD,
    ST_RENEW,
    ST_FREE,
    ST_LIST,
    ST_HISTORY_KEY,
    ST_HISTORY_ALL,
    ST_FORCE_FREE,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
    [ST_SELECT] = "SELECT token, worker_id, node_id, claimed_at, heartbeat_at, lock_timeout_ms, "
                  "task_info FROM tl_locks WHERE key = ?1",
    [ST_UPSERT] = "INSERT INTO tl_locks(key, token, worker_id, node_id, claimed_at, "
                  "heartbeat_at, lock_timeout_ms, task_info) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, "
                  "?7) ON CONFLICT(key) DO UPDATE SET token = excluded.token, worker_id = "
                  "excluded.worker_id, node_id = excluded.node_id, claimed_at = "
                  "excluded.claimed_at, heartbeat_at = excluded.heartbeat_at, lock_timeout_ms = "
                  "excluded.lock_timeout_ms, task_info = excluded.task_info",
    [ST_HISTORY_ADD] = "INSERT INTO tl_history(at, key, event, worker_id, node_id, token, "
                       "detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_RENEW] = "UPDATE tl_locks SET heartbeat_at = ?1 WHERE key = ?2 AND worker_id = ?3 AND "
                 "token = ?4",
    [ST_FREE] = "UPDATE tl_locks SET worker_id = NULL, node_id = NULL, claimed_at = NULL, "
                "heartbeat_at = NULL, lock_timeout_ms = NULL, task_info = NULL WHERE key = ?1 "
                "AND worker_id = ?2 AND token = ?3",
    [ST_LIST] = "SELECT token, worker_id, node_id, claimed_at, heartbeat_at, lock_timeout_ms, "
                "task_info, key FROM tl_locks WHERE worker_id IS NOT NULL ORDER BY key",
    [ST_HISTORY_KEY] = "SELECT at, key, event, worker_id, node_id, token, detail FROM tl_history "
                       "WHERE key = ?1 ORDER BY id DESC LIMIT ?2",
    [ST_HISTORY_ALL] = "SELECT at, key, event, worker_id, node_id, token, detail FROM tl_history "
                       "ORDER BY id DESC LIMIT ?2",
    [ST_FORCE_FREE] = "UPDATE tl_locks SET worker_id = NULL, node_id = NULL, claimed_at = NULL, "
                      "heartbeat_at = NULL, lock_timeout_ms = NULL, task_info = NULL, token = ?2 "
                      "WHERE key = ?1",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS tl_locks ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " token INTEGER NOT NULL,"       /* the last token issued for the key */
    " worker_id TEXT, node_id TEXT," /* NULL when free */
    " claimed_at INTEGER, heartbeat_at INTEGER, lock_timeout_ms INTEGER, task_info TEXT"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS tl_history ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at INTEGER NOT NULL, key TEXT NOT NULL,"
    " event TEXT NOT NULL CHECK (event IN ('acquired','released','stolen','forced','lost')),"
    " worker_id TEXT NOT NULL, node_id TEXT NOT NULL, token INTEGER NOT NULL, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS tl_history_by_key ON tl_history(key, id);";

struct sqlite_store {
    struct tl_store base; /* must be first */
    sqlite3 *db;
    char *path;
    bool default_path; /* the path came from the defaults, not the URL */
    uint32_t busy_ms;
    sqlite3_stmt *stmt[ST_COUNT];
    /* The busy handler's state for the statement waiting now, and how its last wait ended. */
    int64_t busy_start;
    int64_t busy_waited;
    bool busy_cut; /* it gave up at the caller's deadline, before busy_ms */
};
_Static_assert(offsetof(struct sqlite_store, base) == 0, "base must be first");

static tl_status db_fail(struct sqlite_store *ss, int rc, const char *what)
{
    int base = rc & 0xff;

    if ((base == SQLITE_BUSY || base == SQLITE_LOCKED) && ss->busy_cut)
        return tl__store_fail(&ss->base, TL_ETIMEDOUT,
                              "sqlite: %s: %s: the database stayed locked by another connection "
                              "until the call's deadline (%lld ms)",
                              ss->path, what, (long long)ss->busy_waited);
    if (base == SQLITE_BUSY || base == SQLITE_LOCKED)
        return tl__store_fail(&ss->base, TL_ETIMEDOUT,
                              "sqlite: %s: %s: the database stayed locked by another connection "
                              "for %lld ms, the limit (busy_timeout=%u)",
                              ss->path, what, (long long)ss->busy_waited, ss->busy_ms);
    const char *msg = ss->db ? sqlite3_errmsg(ss->db) : sqlite3_errstr(rc);
    if (base == SQLITE_CANTOPEN || base == SQLITE_READONLY || base == SQLITE_PERM)
        return tl__store_fail(&ss->base, TL_ESTORE,
                              "sqlite: %s: %s: %s (check that the directory exists and is "
                              "writable%s)",
                              ss->path, what, msg, ss->default_path ? "; or " DEFAULT_HINT : "");
    return tl__store_fail(&ss->base, TL_ESTORE, "sqlite: %s: %s: %s", ss->path, what, msg);
}

/* mkdir -p of the parent directories of `path`. */
static int make_parents(const char *path)
{
    char *dir = tl__strdup(path);
    int rc = 0;

    if (dir == NULL)
        return ENOMEM;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            rc = errno;
            break;
        }
        *p = '/';
    }
    tl__free(dir);
    return rc;
}

/*
 * $TASKLOCK_DB, else $XDG_STATE_HOME/tasklock/locks.db (XDG_STATE_HOME absolute), else
 * $HOME/.local/state/tasklock/locks.db (HOME absolute). With none of them there is no default:
 * a fixed directory that every user shares (/tmp/...) would belong to whoever made it first,
 * who could then read or lock every other user's locks, and would fail for everyone else.
 */
static tl_status default_path(struct tl_store *s, char **out)
{
    const char *db = getenv("TASKLOCK_DB");     /* NOLINT(concurrency-mt-unsafe) */
    const char *xdg = getenv("XDG_STATE_HOME"); /* NOLINT(concurrency-mt-unsafe) */
    const char *home = getenv("HOME");          /* NOLINT(concurrency-mt-unsafe) */

    if (db != NULL && db[0] != '\0')
        *out = tl__strdup(db);
    else if (xdg != NULL && xdg[0] == '/')
        *out = tl__asprintf("%s/tasklock/locks.db", xdg);
    else if (home != NULL && home[0] == '/')
        *out = tl__asprintf("%s/.local/state/tasklock/locks.db", home);
    else
        return tl__store_fail(s, TL_ESTORE,
                              "sqlite: no default database file: HOME is %s, and neither "
                              "TASKLOCK_DB nor XDG_STATE_HOME is set; set TASKLOCK_DB to a file "
                              "(or HOME or XDG_STATE_HOME to a directory), or give the store URL "
                              "a path: sqlite:PATH",
                              home == NULL || home[0] == '\0' ? "not set" : "not an absolute path");
    return *out != NULL ? TL_OK : tl__store_fail(s, TL_ENOMEM, "out of memory");
}

/*
 * The URL naming this file from anywhere: "sqlite:" and the absolute path, then the parameters.
 * A path that starts with two slashes gets two more, which the parser drops again.
 */
static char *resolved_url(const char *path, const char *query)
{
    char cwd[4096];
    char *abs = NULL;

    if (path[0] == '/')
        abs = tl__strdup(path);
    else if (getcwd(cwd, sizeof(cwd)) != NULL)
        abs = tl__asprintf("%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path);
    if (abs == NULL)
        return NULL;

    char *url = tl__asprintf("sqlite:%s%s%s%s", strncmp(abs, "//", 2) == 0 ? "//" : "", abs,
                             query ? "?" : "", query ? query : "");
    tl__free(abs);
    return url;
}

/*
 * The busy handler: SQLite calls it while another connection holds the write lock. It waits with
 * growing pauses, as SQLite's own does, but by the store's clock and only until the busy timeout
 * or the caller's deadline (an acquire's --wait, a renew's loss deadline), whichever is first.
 */
static int on_busy(void *arg, int count)
{
    static const uint8_t pauses[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50};
    struct sqlite_store *ss = arg;
    const struct tl_clock *c = ss->base.clock;
    int64_t now = c->mono_ms(c->ud);

    if (count == 0) {
        ss->busy_start = now;
        ss->busy_cut = false;
    }
    int64_t end = ss->busy_start + ss->busy_ms;
    bool cut = ss->base.deadline_mono_ms != 0 && ss->base.deadline_mono_ms < end;
    if (cut)
        end = ss->base.deadline_mono_ms;
    ss->busy_waited = now - ss->busy_start;
    if (now >= end) {
        ss->busy_cut = cut;
        return 0;
    }
    int64_t pause = (size_t)count < sizeof(pauses) ? pauses[count] : 100;
    if (pause > end - now)
        pause = end - now;
    c->sleep_ms(c->ud, (uint32_t)pause);
    return 1;
}

static tl_status parse_params(struct sqlite_store *ss, char *query, const char **sync)
{
    for (char *p = query; p != NULL && *p != '\0';) {
        char *amp = strchr(p, '&');
        if (amp != NULL)
            *amp = '\0';

        uint64_t v;
        if (strncmp(p, "busy_timeout=", 13) == 0) {
            if (!tl__parse_u64(p + 13, &v) || v > INT_MAX)
                return tl__store_fail(&ss->base, TL_EINVAL,
                                      "sqlite store URL: busy_timeout=\"%s\" is not a number of "
                                      "milliseconds (0 to %d)",
                                      p + 13, INT_MAX);
            ss->busy_ms = (uint32_t)v;
        } else if (strncmp(p, "synchronous=", 12) == 0) {
            if (strcmp(p + 12, "full") == 0)
                *sync = "FULL";
            else if (strcmp(p + 12, "normal") == 0)
                *sync = "NORMAL";
            else
                return tl__store_fail(&ss->base, TL_EINVAL,
                                      "sqlite store URL: synchronous=\"%s\" is not allowed (full "
                                      "or normal, lower case)",
                                      p + 12);
        } else {
            return tl__store_fail(&ss->base, TL_EINVAL,
                                  "sqlite store URL: unknown parameter \"%s\" (known: "
                                  "busy_timeout=MS, synchronous=full|normal)",
                                  p);
        }
        p = amp ? amp + 1 : NULL;
    }
    return TL_OK;
}

static tl_status create_schema(struct sqlite_store *ss)
{
    sqlite3_stmt *st = NULL;
    int version = 0;
    int rc = sqlite3_prepare_v2(ss->db, "PRAGMA user_version", -1, &st, NULL);

    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return db_fail(ss, rc, "reading the schema version");
    if (version == SCHEMA_VERSION)
        return TL_OK;
    if (version > SCHEMA_VERSION)
        return tl__store_fail(&ss->base, TL_ESTORE,
                              "sqlite: %s: written by a newer tasklock (schema %d, this one "
                              "knows %d)",
                              ss->path, version, SCHEMA_VERSION);

    char sql[sizeof(schema_sql) + 64];
    (void)snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE;%sPRAGMA user_version = %d;COMMIT;",
                   schema_sql, SCHEMA_VERSION);
    rc = sqlite3_exec(ss->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        tl_status ret = db_fail(ss, rc, "creating the tables");
        (void)sqlite3_exec(ss->db, "ROLLBACK", NULL, NULL, NULL);
        return ret;
    }
    return TL_OK;
}

/*
 * Switches the file to WAL and creates the tables. When several processes open a new file at
 * once, the switch to WAL answers SQLITE_BUSY without calling the busy handler, so this retries
 * on its own, within the same busy timeout.
 */
static tl_status setup_file(struct sqlite_store *ss, const char *sync)
{
    const struct tl_clock *c = ss->base.clock;
    int64_t end = c->mono_ms(c->ud) + ss->busy_ms;
    char pragmas[128];
    uint32_t pause = 1;

    (void)snprintf(pragmas, sizeof(pragmas), "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;",
                   sync);
    for (;;) {
        int rc = sqlite3_exec(ss->db, pragmas, NULL, NULL, NULL);
        tl_status st = rc == SQLITE_OK ? create_schema(ss) : db_fail(ss, rc, "opening");

        if (st != TL_ETIMEDOUT || c->mono_ms(c->ud) >= end)
            return st;
        c->sleep_ms(c->ud, pause);
        pause = pause < 32 ? pause * 2 : 32;
    }
}

static tl_status sqlite_open(struct tl_store *s, const char *url)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    const char *rest = url + strlen("sqlite:");
    const char *sync = "FULL";
    tl_status st;

    ss->busy_ms = DEFAULT_BUSY_MS;
    if (strncmp(rest, "//", 2) == 0)
        rest += 2; /* sqlite:///abs/path and sqlite://rel/path read like sqlite:PATH */

    char *copy = tl__strdup(rest);
    if (copy == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    char *query = strchr(copy, '?');
    if (query != NULL)
        *query++ = '\0';
    bool by_default = copy[0] == '\0';
    ss->default_path = by_default;
    if (by_default)
        st = default_path(s, &ss->path);
    else
        st = (ss->path = tl__strdup(copy)) != NULL ? TL_OK
                                                   : tl__store_fail(s, TL_ENOMEM, "out of memory");
    if (st == TL_OK && (s->resolved_url = resolved_url(ss->path, query)) == NULL)
        st = tl__store_fail(s, TL_ENOMEM, "out of memory");
    if (st == TL_OK)
        st = parse_params(ss, query, &sync);
    tl__free(copy);
    if (st != TL_OK)
        return st;

    if (by_default) {
        int err = make_parents(ss->path);
        if (err != 0)
            return tl__store_fail(s, TL_ESTORE,
                                  "sqlite: cannot create the directory of %s: %s (%s)", ss->path,
                                  strerror(err), /* NOLINT(concurrency-mt-unsafe) */
                                  DEFAULT_HINT);
    }

    int rc = sqlite3_open_v2(
        ss->path, &ss->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return db_fail(ss, rc, "opening");
    (void)sqlite3_extended_result_codes(ss->db, 1);
    (void)sqlite3_busy_handler(ss->db, on_busy, ss);

    if ((st = setup_file(ss, sync)) != TL_OK)
        return st;

    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(ss->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &ss->stmt[i],
                                NULL);
        if (rc != SQLITE_OK)
            return db_fail(ss, rc, "preparing statements");
    }
    return TL_OK;
}

static void sqlite_close(struct tl_store *s)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;

    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(ss->stmt[i]);
    sqlite3_close(ss->db);
    tl__free(ss->path);
}

/* Runs a statement with no result rows. */
static int exec_stmt(struct sqlite_store *ss, enum stmt_id id)
{
    sqlite3_stmt *st = ss->stmt[id];
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void rollback(struct sqlite_store *ss)
{
    if (!sqlite3_get_autocommit(ss->db))
        (void)exec_stmt(ss, ST_ROLLBACK);
}

static char *column_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    return t ? tl__strdup((const char *)t) : NULL;
}

/* Fills `r` from a row of ST_SELECT/ST_LIST (columns 0-6). */
static tl_status read_record(sqlite3_stmt *st, const char *key, struct tl_record *r)
{
    r->info.token = (uint64_t)sqlite3_column_int64(st, 0);
    r->info.worker_id = column_dup(st, 1);
    r->info.node_id = column_dup(st, 2);
    r->info.claimed_at_ms = sqlite3_column_int64(st, 3);
    r->info.heartbeat_at_ms = sqlite3_column_int64(st, 4);
    r->info.lock_timeout_ms = (uint32_t)sqlite3_column_int64(st, 5);
    r->info.task_info = column_dup(st, 6);
    r->info.key = tl__strdup(key);
    if (r->info.task_info == NULL)
        r->info.task_info = tl__strdup("{}");
    if (r->info.worker_id == NULL || r->info.node_id == NULL || r->info.task_info == NULL ||
        r->info.key == NULL) {
        tl__record_clear(r);
        return TL_ENOMEM;
    }
    return TL_OK;
}

struct row {
    bool exists;
    bool held;
    uint64_t token;
    int64_t heartbeat_at;
    uint32_t timeout;
};

/* Reads the key's row; if `holder` is not NULL and the key is held, copies the record. */
static int select_row(struct sqlite_store *ss, const char *key, struct row *row,
                      struct tl_record *holder, tl_status *oom)
{
    sqlite3_stmt *st = ss->stmt[ST_SELECT];
    int rc;

    memset(row, 0, sizeof(*row));
    *oom = TL_OK;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row->exists = true;
        row->token = (uint64_t)sqlite3_column_int64(st, 0);
        row->held = sqlite3_column_type(st, 1) != SQLITE_NULL;
        row->heartbeat_at = sqlite3_column_int64(st, 4);
        row->timeout = (uint32_t)sqlite3_column_int64(st, 5);
        if (row->held && holder != NULL)
            *oom = read_record(st, key, holder);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int add_history(struct sqlite_store *ss, int64_t at, tl_event_kind kind,
                       const struct tl_info *who, const char *detail)
{
    sqlite3_stmt *st = ss->stmt[ST_HISTORY_ADD];

    sqlite3_bind_int64(st, 1, at);
    sqlite3_bind_text(st, 2, who->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, tl_event_kind_name(kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, who->worker_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, who->node_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)who->token);
    if (detail != NULL)
        sqlite3_bind_text(st, 7, detail, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 7);
    int rc = exec_stmt(ss, ST_HISTORY_ADD);
    sqlite3_clear_bindings(st);
    return rc;
}

static int64_t now_ms(struct tl_store *s)
{
    return s->clock->now_ms(s->clock->ud);
}

/* A held key that this claim cannot take: answer from a plain read, without the write lock,
 * so that waiters polling a held key do not queue behind the holder's writes. */
static bool clearly_busy(const struct row *row, enum tl_claim_mode mode, int64_t now)
{
    return row->held &&
           tl__claim_verdict(true, row->heartbeat_at, row->timeout, mode, now) == TL_VERDICT_BUSY;
}

static tl_status sqlite_claim(struct tl_store *s, const struct tl_claim *req,
                              struct tl_claim_result *out)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    struct row row;
    tl_status oom;
    int rc;

    int64_t now = now_ms(s);
    rc = select_row(ss, req->key, &row, &out->rec, &oom);
    if (rc != SQLITE_OK)
        return db_fail(ss, rc, "reading a lock");
    if (oom != TL_OK)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    if (clearly_busy(&row, req->mode, now)) {
        tl__record_judge(&out->rec, now);
        out->holder_known = true;
        return TL_EBUSY;
    }
    tl__record_clear(&out->rec);

    ss->busy_cut = false;
    if ((rc = exec_stmt(ss, ST_BEGIN)) != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_BUSY && ss->busy_cut) {
            /* Another connection kept the write lock until the caller's deadline: to the
             * caller that is the lock not coming free in time. */
            (void)tl__store_fail(s, TL_EBUSY,
                                 "the database stayed locked by another connection until the "
                                 "deadline (%lld ms)",
                                 (long long)ss->busy_waited);
            return TL_EBUSY;
        }
        return db_fail(ss, rc, "starting a claim");
    }
    now = now_ms(s); /* the write lock may have taken a while */
    rc = select_row(ss, req->key, &row, &out->rec, &oom);
    if (rc != SQLITE_OK || oom != TL_OK)
        goto err_rollback;

    enum tl_verdict v = tl__claim_verdict(row.held, row.heartbeat_at, row.timeout, req->mode, now);
    if (v == TL_VERDICT_BUSY) {
        rollback(ss);
        tl__record_judge(&out->rec, now);
        out->holder_known = true;
        return TL_EBUSY;
    }

    char detail[200] = "";
    if (v != TL_VERDICT_FREE)
        (void)snprintf(detail, sizeof(detail), "from %s (token %llu)", out->rec.info.worker_id,
                       (unsigned long long)out->rec.info.token);
    tl__record_clear(&out->rec);

    /* Tokens grow from the last one, but never start below the wall clock in microseconds:
     * a database file deleted and made again (or restored from an old copy) would otherwise
     * hand out tokens that earlier holders already gave to fenced resources. */
    uint64_t token = row.token + 1;
    if (now > 0 && (uint64_t)now * 1000 > token)
        token = (uint64_t)now * 1000;
    sqlite3_stmt *st = ss->stmt[ST_UPSERT];
    sqlite3_bind_text(st, 1, req->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
    sqlite3_bind_text(st, 3, req->worker_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, req->node_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, req->lock_timeout_ms);
    sqlite3_bind_text(st, 7, req->task_info, -1, SQLITE_STATIC);
    rc = exec_stmt(ss, ST_UPSERT);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK)
        goto err_rollback;

    const struct tl_info who = {.key = (char *)req->key,
                                .worker_id = (char *)req->worker_id,
                                .node_id = (char *)req->node_id,
                                .token = token};
    rc = add_history(ss, now,
                     v == TL_VERDICT_STEAL   ? TL_EVENT_STOLEN
                     : v == TL_VERDICT_FORCE ? TL_EVENT_FORCED
                                             : TL_EVENT_ACQUIRED,
                     &who, detail[0] ? detail : NULL);
    if (rc != SQLITE_OK || (rc = exec_stmt(ss, ST_COMMIT)) != SQLITE_OK)
        goto err_rollback;

    struct tl_record *r = &out->rec;
    r->info.key = tl__strdup(req->key);
    r->info.worker_id = tl__strdup(req->worker_id);
    r->info.node_id = tl__strdup(req->node_id);
    r->info.task_info = tl__strdup(req->task_info);
    r->info.token = token;
    r->info.claimed_at_ms = r->info.heartbeat_at_ms = now;
    r->info.lock_timeout_ms = req->lock_timeout_ms;
    r->info.observed_at_ms = now;
    out->took_stale = v == TL_VERDICT_STEAL;
    out->took_forced = v == TL_VERDICT_FORCE;
    if (!r->info.key || !r->info.worker_id || !r->info.node_id || !r->info.task_info) {
        /* Committed, but we cannot describe it: give it back so that it does not rot. */
        const struct tl_record held = {.info = who};
        (void)s->ops->release(s, &held, "out of memory after claiming");
        tl__record_clear(r);
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    return TL_OK;

err_rollback:
    tl__record_clear(&out->rec);
    {
        tl_status ret = oom != TL_OK && rc == SQLITE_OK
                            ? tl__store_fail(s, TL_ENOMEM, "out of memory")
                            : db_fail(ss, rc, "claiming a lock");
        rollback(ss);
        return ret;
    }
}

static tl_status sqlite_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                              int64_t *heartbeat_at_ms)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *st = ss->stmt[ST_RENEW];
    int64_t now = now_ms(s);

    (void)seq;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, held->info.key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, held->info.worker_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)held->info.token);
    int rc = exec_stmt(ss, ST_RENEW);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK)
        return db_fail(ss, rc, "renewing a lock");
    if (sqlite3_changes(ss->db) == 0) {
        (void)add_history(ss, now, TL_EVENT_LOST, &held->info, NULL);
        return tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu",
                              held->info.key, held->info.worker_id,
                              (unsigned long long)held->info.token);
    }
    *heartbeat_at_ms = now;
    return TL_OK;
}

static tl_status sqlite_release(struct tl_store *s, const struct tl_record *held,
                                const char *summary)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *st = ss->stmt[ST_FREE];
    struct row row;
    tl_status oom, ret = TL_OK;
    int rc;

    if ((rc = exec_stmt(ss, ST_BEGIN)) != SQLITE_OK)
        return db_fail(ss, rc, "starting a release");
    sqlite3_bind_text(st, 1, held->info.key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, held->info.worker_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)held->info.token);
    rc = exec_stmt(ss, ST_FREE);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK)
        goto err_rollback;

    if (sqlite3_changes(ss->db) == 1) {
        rc = add_history(ss, now_ms(s), TL_EVENT_RELEASED, &held->info, summary);
    } else {
        rc = select_row(ss, held->info.key, &row, NULL, &oom);
        /* Free with our token still the last one: we released it before. */
        if (rc == SQLITE_OK && !(row.exists && !row.held && row.token == held->info.token))
            ret = tl__store_fail(s, TL_ENOTOWNER, "%s is not held by %s with token %llu",
                                 held->info.key, held->info.worker_id,
                                 (unsigned long long)held->info.token);
    }
    if (rc != SQLITE_OK || (rc = exec_stmt(ss, ST_COMMIT)) != SQLITE_OK)
        goto err_rollback;
    return ret;

err_rollback:
    ret = db_fail(ss, rc, "releasing a lock");
    rollback(ss);
    return ret;
}

static tl_status sqlite_force_release(struct tl_store *s, const struct tl_force_release *req,
                                      struct tl_record *former, bool *found)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *st = ss->stmt[ST_FORCE_FREE];
    struct row row;
    tl_status oom = TL_OK;
    int rc;

    *found = false;
    if ((rc = exec_stmt(ss, ST_BEGIN)) != SQLITE_OK)
        return db_fail(ss, rc, "starting a forced release");
    int64_t now = now_ms(s);
    rc = select_row(ss, req->key, &row, former, &oom);
    if (rc != SQLITE_OK || oom != TL_OK)
        goto err_rollback;
    if (!row.held) {
        rollback(ss);
        return TL_OK;
    }
    *found = true;
    tl__record_judge(former, now);
    if (req->token != 0 && row.token != req->token) {
        rollback(ss);
        return tl__store_fail(s, TL_ENOTOWNER, "%s is held by %s with token %llu", req->key,
                              former->info.worker_id, (unsigned long long)row.token);
    }

    /* A token of its own, as a forced claim would take: the holder's is no longer the key's
     * last, so its release is refused rather than taken for a retry of its own. */
    uint64_t token = row.token + 1;
    if (now > 0 && (uint64_t)now * 1000 > token)
        token = (uint64_t)now * 1000;
    sqlite3_bind_text(st, 1, req->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)token);
    rc = exec_stmt(ss, ST_FORCE_FREE);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK)
        goto err_rollback;

    char detail[200];
    (void)snprintf(detail, sizeof(detail), "from %s (token %llu)", former->info.worker_id,
                   (unsigned long long)row.token);
    const struct tl_info who = {.key = (char *)req->key,
                                .worker_id = (char *)req->worker_id,
                                .node_id = (char *)req->node_id,
                                .token = token};
    if ((rc = add_history(ss, now, TL_EVENT_FORCED, &who, detail)) != SQLITE_OK ||
        (rc = add_history(ss, now, TL_EVENT_RELEASED, &who, req->summary)) != SQLITE_OK ||
        (rc = exec_stmt(ss, ST_COMMIT)) != SQLITE_OK)
        goto err_rollback;
    return TL_OK;

err_rollback:
    *found = false;
    tl__record_clear(former);
    {
        tl_status ret = oom != TL_OK && rc == SQLITE_OK
                            ? tl__store_fail(s, TL_ENOMEM, "out of memory")
                            : db_fail(ss, rc, "breaking a lock");
        rollback(ss);
        return ret;
    }
}

static tl_status sqlite_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                                bool *found)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    struct row row;
    tl_status oom;

    *found = false;
    int rc = select_row(ss, key, &row, out, &oom);
    if (rc != SQLITE_OK)
        return db_fail(ss, rc, "reading a lock");
    if (oom != TL_OK)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    if (row.held) {
        tl__record_judge(out, now_ms(s));
        *found = true;
    }
    return TL_OK;
}

static tl_status sqlite_list(struct tl_store *s, struct tl_record ***out, size_t *count)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *st = ss->stmt[ST_LIST];
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status ret = TL_OK;
    int64_t now = now_ms(s);
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tl_record *r = tl__record_new();

        if (r == NULL || read_record(st, (const char *)sqlite3_column_text(st, 7), r) != TL_OK) {
            tl__free(r);
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
            break;
        }
        tl__record_judge(r, now);
        if (tl__record_array_push(&arr, &n, &cap, r) != TL_OK) {
            tl__record_free(r);
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
            break;
        }
    }
    if (ret == TL_OK && rc != SQLITE_DONE)
        ret = db_fail(ss, rc, "listing locks");
    sqlite3_reset(st);
    if (ret != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return ret;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

static tl_status sqlite_history(struct tl_store *s, const char *key, size_t limit,
                                struct tl_event ***out, size_t *count)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *st = ss->stmt[key ? ST_HISTORY_KEY : ST_HISTORY_ALL];
    struct tl_event **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status ret = TL_OK;
    int rc;

    if (key != NULL)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tl_event *e = tl__event_new();

        if (e != NULL) {
            e->at_ms = sqlite3_column_int64(st, 0);
            e->key = column_dup(st, 1);
            /* The CHECK constraint keeps other names out of the table. */
            if (!tl__event_kind_from_name((const char *)sqlite3_column_text(st, 2), &e->kind))
                e->kind = TL_EVENT_ACQUIRED;
            e->worker_id = column_dup(st, 3);
            e->node_id = column_dup(st, 4);
            e->token = (uint64_t)sqlite3_column_int64(st, 5);
            e->detail = column_dup(st, 6);
        }
        if (e == NULL || !e->key || !e->worker_id || !e->node_id ||
            (sqlite3_column_type(st, 6) != SQLITE_NULL && !e->detail) ||
            tl__event_array_push(&arr, &n, &cap, e) != TL_OK) {
            tl__event_free(e);
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
            break;
        }
    }
    if (ret == TL_OK && rc != SQLITE_DONE)
        ret = db_fail(ss, rc, "reading the history");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (ret != TL_OK) {
        tl_event_array_free(arr, n);
        return ret;
    }
    tl__event_array_reverse(arr, n); /* newest first from SQL; oldest first out */
    *out = arr;
    *count = n;
    return TL_OK;
}

/*
 * Waits for `key` to be released, at most `timeout_ms`. SQLite cannot notify another process, so
 * this polls the key with a plain read (no write lock, no fsync): every 2 ms at first, then less
 * often, up to every 32 ms. A waiter thus learns of a release within milliseconds instead of
 * sleeping out its whole backoff. Only a free key ends the wait early: a stale holder does not,
 * or a waiter that may not steal would spin.
 */
static tl_status sqlite_wait(struct tl_store *s, const char *key, uint32_t timeout_ms)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    const struct tl_clock *c = s->clock;
    int64_t end = c->mono_ms(c->ud) + timeout_ms;
    uint32_t step = 2;

    for (;;) {
        struct row row;
        tl_status oom;
        int rc = select_row(ss, key, &row, NULL, &oom);

        if (rc != SQLITE_OK)
            return db_fail(ss, rc, "waiting for a release");
        if (!row.held)
            return TL_OK;

        int64_t left = end - c->mono_ms(c->ud);
        if (left <= 0)
            return TL_OK;
        c->sleep_ms(c->ud, left < step ? (uint32_t)left : step);
        step = step < 32 ? step * 2 : 32;
    }
}

const struct tl_store_ops tl__store_sqlite = {
    .version = TL_STORE_OPS_VERSION,
    .scheme = "sqlite",
    .size = sizeof(struct sqlite_store),
    .open = sqlite_open,
    .close = sqlite_close,
    .claim = sqlite_claim,
    .renew = sqlite_renew,
    .release = sqlite_release,
    .inspect = sqlite_inspect,
    .list = sqlite_list,
    .history = sqlite_history,
    .wait = sqlite_wait,
    .force_release = sqlite_force_release,
};
