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
#ifdef __linux__
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#endif

#include "sqlite_int.h"
#include "store.h"
#include "tl.h"

#define SCHEMA_VERSION  1
#define DEFAULT_BUSY_MS 10000
/* wait_turn's pauses between polls: from MIN_POLL_MS, an eighth of the time spent at the
 * same place in line, up to HEAD_POLL_MS for the head and POLL_PER_AHEAD_MS more per waiter
 * ahead of the others, and never more than MAX_POLL_MS. */
#define MIN_POLL_MS       2
#define HEAD_POLL_MS      10
#define POLL_PER_AHEAD_MS 5
#define MAX_POLL_MS       50
/* The busy handler for a claim (see on_busy): CLAIM_SPIN_TRIES tries with no pause but the
 * system call's, then one every CLAIM_BUSY_PAUSE_MS. */
#define CLAIM_SPIN_TRIES    100
#define CLAIM_BUSY_PAUSE_MS 1
/* How to get away from the default file, for messages about it. */
#define DEFAULT_HINT "set TASKLOCK_DB to another file, or give the store URL a path: sqlite:PATH"

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
    /* A record per holder, by key and token: exclusive holders are tl_locks rows, shared
     * ones tl_shared rows (columns 9-11: shared, slots, the key's holders). */
    [ST_LIST] = "SELECT token, worker_id, node_id, claimed_at, heartbeat_at, lock_timeout_ms, "
                "task_info, key, (SELECT COUNT(*) FROM tl_waiters w WHERE w.key = l.key AND "
                "w.heartbeat_at + w.timeout_ms > ?1), 0, 0, 1 FROM tl_locks l WHERE worker_id "
                "IS NOT NULL AND worker_id <> '" SHARED_SENTINEL "' UNION ALL SELECT token, "
                "worker_id, node_id, claimed_at, heartbeat_at, lock_timeout_ms, task_info, key, "
                "(SELECT COUNT(*) FROM tl_waiters w WHERE w.key = s.key AND w.heartbeat_at + "
                "w.timeout_ms > ?1), 1, slots, (SELECT COUNT(*) FROM tl_shared t WHERE t.key = "
                "s.key) FROM tl_shared s ORDER BY 8, 1",
    [ST_HISTORY_KEY] = "SELECT at, key, event, worker_id, node_id, token, detail FROM tl_history "
                       "WHERE key = ?1 ORDER BY id DESC LIMIT ?2",
    [ST_HISTORY_ALL] = "SELECT at, key, event, worker_id, node_id, token, detail FROM tl_history "
                       "ORDER BY id DESC LIMIT ?2",
    [ST_FORCE_FREE] = "UPDATE tl_locks SET worker_id = NULL, node_id = NULL, claimed_at = NULL, "
                      "heartbeat_at = NULL, lock_timeout_ms = NULL, task_info = NULL, token = ?2 "
                      "WHERE key = ?1",
    [ST_EXTEND] = "UPDATE tl_locks SET heartbeat_at = ?1, lock_timeout_ms = ?5 WHERE key = ?2 "
                  "AND worker_id = ?3 AND token = ?4",
    /* The line. A waiter is live while heartbeat_at + timeout_ms > now (the store's clock). */
    [ST_W_DELETE_DEAD] = "DELETE FROM tl_waiters WHERE key = ?1 AND heartbeat_at + timeout_ms "
                         "<= ?2",
    [ST_W_FIND] = "SELECT priority, seq FROM tl_waiters WHERE key = ?1 AND waiter_id = ?2",
    /* Live waiters, and of those the ones ahead of the caller: ?3 = 0, a claim without a
     * waiter (all of them); 1, a waiter in line with priority ?4 and seq ?5; 2, a waiter not in
     * line yet with priority ?4. */
    [ST_W_COUNT] = "SELECT COUNT(*), COALESCE(SUM(CASE ?3 WHEN 0 THEN 1 WHEN 1 THEN (priority > "
                   "?4 OR (priority = ?4 AND seq < ?5)) ELSE priority >= ?4 END), 0) FROM "
                   "tl_waiters WHERE key = ?1 AND heartbeat_at + timeout_ms > ?2",
    /* ?10: an upgrade's waiter, the token of the shared hold it converts (else 0), and ?12
     * whether it steals; ?11: the locks its manager holds (the wait-for graph). */
    [ST_W_INSERT] = "INSERT INTO tl_waiters(key, waiter_id, worker_id, node_id, priority, since, "
                    "heartbeat_at, timeout_ms, shared, slots, upgrading, holding, steals) VALUES "
                    "(?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_W_REFRESH] = "UPDATE tl_waiters SET heartbeat_at = ?3, timeout_ms = ?4, holding = ?5 "
                     "WHERE key = ?1 AND waiter_id = ?2",
    [ST_W_DELETE] = "DELETE FROM tl_waiters WHERE key = ?1 AND waiter_id = ?2",
    /* wait_turn's poll: the key's holders (its tl_locks worker id, NULL: free or no row; its
     * shared holders and their slots), is the caller's waiter ?3 live in line (with its mode),
     * how many live waiters are ahead of it (all of them if it is not), and for an upgrade's
     * waiter the token it converts, the number of shared holders other than that one that
     * count (a stealing upgrade counts the live ones: as tl__record_judge, heartbeat_at >= now
     * - lock_timeout_ms), and whether it steals. */
    [ST_W_TURN] = "SELECT (SELECT worker_id FROM tl_locks WHERE key = ?1), (SELECT COUNT(*) FROM "
                  "tl_shared s WHERE s.key = ?1), (SELECT slots FROM tl_shared s WHERE s.key = "
                  "?1 LIMIT 1), m.seq IS NOT NULL, m.shared, m.slots, (SELECT COUNT(*) FROM "
                  "tl_waiters w WHERE w.key = ?1 AND w.heartbeat_at + w.timeout_ms > ?2 AND "
                  "(m.seq IS NULL OR w.priority > m.priority OR (w.priority = m.priority AND "
                  "w.seq < m.seq))), m.upgrading, (SELECT COUNT(*) FROM tl_shared s WHERE s.key = "
                  "?1 AND s.token IS NOT m.upgrading AND (m.steals IS NOT 1 OR s.heartbeat_at >= "
                  "?2 - s.lock_timeout_ms)), m.steals FROM (SELECT 1) LEFT JOIN tl_waiters m ON "
                  "m.key = ?1 AND m.waiter_id = ?3 AND m.heartbeat_at + m.timeout_ms > ?2",
    [ST_W_LIST] = "SELECT waiter_id, worker_id, node_id, priority, seq, since, heartbeat_at, "
                  "timeout_ms, holding, key FROM tl_waiters WHERE key = ?1 ORDER BY priority "
                  "DESC, seq",
    /* Every waiter of the file, for the wait-for graph: one read of the table. */
    [ST_W_LIST_ALL] = "SELECT waiter_id, worker_id, node_id, priority, seq, since, heartbeat_at, "
                      "timeout_ms, holding, key FROM tl_waiters ORDER BY key, priority DESC, seq",
    /* The live head of the line with its mode, and the key's holders as ST_W_TURN reads
     * them, for its wake-up (an upgrade's waiter: the token it converts, and the number of
     * shared holders other than that one that count, as ST_W_TURN counts them). */
    [ST_W_HEAD] = "SELECT waiter_id, shared, slots, (SELECT worker_id FROM tl_locks WHERE key = "
                  "?1), (SELECT COUNT(*) FROM tl_shared s WHERE s.key = ?1), (SELECT slots FROM "
                  "tl_shared s WHERE s.key = ?1 LIMIT 1), upgrading, (SELECT COUNT(*) FROM "
                  "tl_shared s WHERE s.key = ?1 AND s.token IS NOT w.upgrading AND (w.steals IS "
                  "NOT 1 OR s.heartbeat_at >= ?2 - s.lock_timeout_ms)) FROM tl_waiters w WHERE "
                  "key = ?1 AND heartbeat_at + timeout_ms > ?2 ORDER BY priority DESC, seq LIMIT 1",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

/* tl_history's columns; its CHECK names every event kind (tl_event_kind_name). */
#define HISTORY_COLUMNS                                                                     \
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"                                                \
    " at INTEGER NOT NULL, key TEXT NOT NULL,"                                              \
    " event TEXT NOT NULL CHECK (event IN ('acquired','released','stolen','forced','lost'," \
    "'done','reopened','upgraded','downgraded')),"                                          \
    " worker_id TEXT NOT NULL, node_id TEXT NOT NULL, token INTEGER NOT NULL, detail TEXT"

/* A waiting claim's mode, for the wake-ups (tl_waiters; added to an older file's table). */
#define WAITER_SHARED_COLUMN " shared INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1))"
#define WAITER_SLOTS_COLUMN  " slots INTEGER NOT NULL DEFAULT 0 CHECK (slots BETWEEN 0 AND 100000)"
#define WAITER_MODE_COLUMNS  WAITER_SHARED_COLUMN "," WAITER_SLOTS_COLUMN
/* An upgrade's waiter: the token of the shared hold it converts (0: a claim's waiter), and
 * whether it steals (stale holders then do not keep it waiting); and the locks the waiter's
 * manager held at its latest claim, the wait-for graph's edges ('': none, or written by a
 * tasklock from before them). Added to an older file's table. */
#define WAITER_UPGRADING_COLUMN " upgrading INTEGER NOT NULL DEFAULT 0"
#define WAITER_HOLDING_COLUMN   " holding TEXT NOT NULL DEFAULT ''"
#define WAITER_STEALS_COLUMN    " steals INTEGER NOT NULL DEFAULT 0 CHECK (steals IN (0, 1))"
#define WAITER_GRAPH_COLUMNS \
    WAITER_UPGRADING_COLUMN "," WAITER_HOLDING_COLUMN "," WAITER_STEALS_COLUMN

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS tl_locks ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " token INTEGER NOT NULL,"       /* the last token issued for the key */
    " worker_id TEXT, node_id TEXT," /* NULL when free */
    " claimed_at INTEGER, heartbeat_at INTEGER, lock_timeout_ms INTEGER, task_info TEXT"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS tl_history (" HISTORY_COLUMNS ");"
    "CREATE INDEX IF NOT EXISTS tl_history_by_key ON tl_history(key, id);"
    /* The line of each key (DESIGN.md section 7). seq is the arrival order across the store:
     * AUTOINCREMENT never hands out a number twice, so a waiter that joins again (after it was
     * deleted as dead) goes to the back. */
    "CREATE TABLE IF NOT EXISTS tl_waiters ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key TEXT NOT NULL, waiter_id TEXT NOT NULL,"
    " worker_id TEXT NOT NULL, node_id TEXT NOT NULL,"
    " priority INTEGER NOT NULL, since INTEGER NOT NULL,"
    " heartbeat_at INTEGER NOT NULL, timeout_ms INTEGER NOT NULL," WAITER_MODE_COLUMNS
    "," WAITER_GRAPH_COLUMNS ", UNIQUE (key, waiter_id));"
    "CREATE INDEX IF NOT EXISTS tl_waiters_line ON tl_waiters(key, priority DESC, seq);"
    /* Done markers (DESIGN.md section 8): a finished task's row, until it is reopened. */
    "CREATE TABLE IF NOT EXISTS tl_done ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " worker_id TEXT NOT NULL, node_id TEXT NOT NULL, token INTEGER NOT NULL,"
    " done_at INTEGER NOT NULL, summary TEXT NOT NULL"
    ") WITHOUT ROWID;"
    /* Shared holders (DESIGN.md section 9; see sqlite_modes.c): a row each, while the key's
     * tl_locks row names SHARED_SENTINEL. The triggers keep that so for a tasklock from
     * before them, which knows tl_locks only: when it takes or breaks the sentinel's row (or
     * deletes it), the shared holders go in the same statement; and the sentinel carries the
     * latest heartbeat and the longest timeout, so it looks stale only when they all are. */
    "CREATE TABLE IF NOT EXISTS tl_shared ("
    " key TEXT NOT NULL, token INTEGER NOT NULL,"
    " worker_id TEXT NOT NULL, node_id TEXT NOT NULL,"
    " claimed_at INTEGER NOT NULL, heartbeat_at INTEGER NOT NULL,"
    " lock_timeout_ms INTEGER NOT NULL, task_info TEXT NOT NULL,"
    " slots INTEGER NOT NULL CHECK (typeof(slots) = 'integer' AND slots BETWEEN 0 AND 100000),"
    " PRIMARY KEY (key, token)) WITHOUT ROWID;"
    "CREATE TRIGGER IF NOT EXISTS tl_shared_taken AFTER UPDATE OF worker_id ON tl_locks"
    " WHEN OLD.worker_id IS '" SHARED_SENTINEL "' AND NEW.worker_id IS NOT '" SHARED_SENTINEL "'"
    " BEGIN DELETE FROM tl_shared WHERE key = OLD.key; END;"
    "CREATE TRIGGER IF NOT EXISTS tl_shared_gone AFTER DELETE ON tl_locks"
    " BEGIN DELETE FROM tl_shared WHERE key = OLD.key; END;"
    "CREATE TRIGGER IF NOT EXISTS tl_shared_beat AFTER UPDATE OF heartbeat_at, lock_timeout_ms"
    " ON tl_shared BEGIN UPDATE tl_locks SET heartbeat_at = MAX(heartbeat_at, NEW.heartbeat_at),"
    " lock_timeout_ms = MAX(lock_timeout_ms, NEW.lock_timeout_ms)"
    " WHERE key = NEW.key AND worker_id = '" SHARED_SENTINEL "'; END;";

/* A file made before done markers (or before upgrades) has tl_history with an old CHECK, which
 * refuses the events `done` and `reopened` (`upgraded` and `downgraded`). SQLite cannot change a
 * CHECK in place, so the table is made again (the documented way: new table, copy, drop, rename),
 * in the transaction that adds tl_done. The ids are kept, and with them the order of the trail. */
static const char history_rebuild_sql[] =
    "CREATE TABLE tl_history_new (" HISTORY_COLUMNS ");"
    "INSERT INTO tl_history_new(id, at, key, event, worker_id, node_id, token, detail)"
    " SELECT id, at, key, event, worker_id, node_id, token, detail FROM tl_history ORDER BY id;"
    "DROP TABLE tl_history;"
    "ALTER TABLE tl_history_new RENAME TO tl_history;"
    "CREATE INDEX IF NOT EXISTS tl_history_by_key ON tl_history(key, id);";

/* A file made before shared holders: its waiters (exclusive claims all) get their mode. */
static const char waiters_mode_sql[] = "ALTER TABLE tl_waiters ADD COLUMN" WAITER_SHARED_COLUMN ";"
                                       "ALTER TABLE tl_waiters ADD COLUMN" WAITER_SLOTS_COLUMN ";";

/* A file made before upgrades: its waiters are claims' (upgrading 0) and list no holds (''). */
static const char waiters_graph_sql[] =
    "ALTER TABLE tl_waiters ADD COLUMN" WAITER_UPGRADING_COLUMN ";"
    "ALTER TABLE tl_waiters ADD COLUMN" WAITER_HOLDING_COLUMN ";"
    "ALTER TABLE tl_waiters ADD COLUMN" WAITER_STEALS_COLUMN ";";

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
 *
 * A claim retries at once instead, CLAIM_SPIN_TRIES times (a zero sleep: the kernel's timer
 * slack, about 50 us, so some 5-10 ms in all), then every CLAIM_BUSY_PAUSE_MS. SQLite has no
 * queue for its write lock: whoever retries at the right moment gets it. A holder that releases
 * and claims again takes it back within microseconds, so a claim that pauses longer and longer
 * (to 100 ms) rarely finds it free and cannot even join the line: on one key, 4 processes left
 * 2 or 3 of them without a turn for a whole 2 s run, and the head's own claim lost time the
 * same way. Measured with 8 processes on one key (bench_contend): a constant 1 ms pause made
 * the line fair but a hand-over took 2 ms at the median, the zero sleep 0.8-1 ms and 1.3 ms of
 * CPU per critical section (1.7 ms with 1 ms pauses: less waiting, fewer retries of all
 * kinds). Only a write lock held for long (another program's transaction) makes the spinning
 * cost: its first 5-10 ms, then a try a millisecond.
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
    int64_t pause = ss->busy_fast ? (count < CLAIM_SPIN_TRIES ? 0 : CLAIM_BUSY_PAUSE_MS)
                    : (size_t)count < sizeof(pauses) ? pauses[count]
                                                     : 100;
    if (pause > end - now)
        pause = end - now;
    c->sleep_ms(c->ud, (uint32_t)pause);
    return 1;
}

/*
 * Same-machine wake-ups (Linux). SQLite cannot message another process, so a waiter would only
 * notice its turn at its next poll: a hand-over took 15-17 ms where a cycle takes 0.4 ms. So a
 * waiter in wait_turn binds a datagram socket in the abstract UNIX namespace, named after the
 * database file (its device and inode: every path to it gives the same name) and the waiter id,
 * and blocks in poll() on it between its polls. A call that frees a key or changes the head of
 * a free key (release, force_release, leave, a claim that deleted a dead head) sends one
 * datagram to the new live head after its commit. A datagram only makes the waiter poll now, so
 * a lost, late or stray one (another user can send to any abstract name) costs nothing but a
 * read; a waiter whose name cannot be bound (taken, or another network namespace) still polls.
 * The socket is kept for the waiter id, so a datagram sent between two waits is queued on it,
 * and closed when the waiter wins, leaves, or its connection closes.
 */
#ifdef __linux__
/* FNV-1a over the 8 bytes of `v`, lowest first. */
static uint64_t fnv1a(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xff;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The file's part of the names; without one (no file to stat, e.g. ":memory:") there are no
 * wake-ups. */
static void wake_init(struct sqlite_store *ss)
{
    struct stat sb;

    if (stat(ss->path, &sb) != 0)
        return;
    uint64_t h = fnv1a(fnv1a(0xcbf29ce484222325ULL, (uint64_t)sb.st_dev), (uint64_t)sb.st_ino);
    (void)snprintf(ss->wake_base, sizeof(ss->wake_base), "tasklock-%016llx", (unsigned long long)h);
}

/* "\0tasklock-<16 hex>-<waiter id>": its length, 0 if there is no such name. */
static socklen_t wake_addr(const struct sqlite_store *ss, const char *waiter_id,
                           struct sockaddr_un *a)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    if (ss->wake_base[0] == '\0' || strlen(waiter_id) > MAX_WAITER_ID)
        return 0;
    int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "%s-%s", ss->wake_base, waiter_id);
    if (n < 0 || (size_t)n >= sizeof(a->sun_path) - 1)
        return 0;
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static void wake_close(struct sqlite_store *ss)
{
    if (ss->wake_fd >= 0)
        (void)close(ss->wake_fd);
    ss->wake_fd = -1;
    ss->wake_id[0] = '\0';
}

/* Drops the datagrams queued on the waiter's socket. */
static void wake_drain(struct sqlite_store *ss)
{
    char buf[16];

    while (ss->wake_fd >= 0 && recv(ss->wake_fd, buf, sizeof(buf), 0) >= 0)
        ss->test_wakeups++;
}

/* The socket of waiter `waiter_id`, bound before its first poll; -1: it polls only. */
static int wake_listen(struct sqlite_store *ss, const char *waiter_id)
{
    struct sockaddr_un a;

    if (ss->wake_fd >= 0 && strcmp(ss->wake_id, waiter_id) == 0)
        return ss->wake_fd;
    wake_close(ss);
    socklen_t len = wake_addr(ss, waiter_id, &a);
    if (len == 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (const struct sockaddr *)&a, len) != 0) {
        (void)close(fd);
        return -1;
    }
    ss->wake_fd = fd;
    (void)snprintf(ss->wake_id, sizeof(ss->wake_id), "%s", waiter_id);
    return fd;
}

/* A waiter that won or left: its socket goes, and with it any wake-up left over. */
static void wake_forget(struct sqlite_store *ss, const char *waiter_id)
{
    if (waiter_id != NULL && ss->wake_fd >= 0 && strcmp(ss->wake_id, waiter_id) == 0)
        wake_close(ss);
}

/* One datagram to the waiter; no answer is awaited, and no failure matters (see above). */
static void wake_send(struct sqlite_store *ss, const char *waiter_id)
{
    struct sockaddr_un a;

    if (waiter_id[0] == '\0')
        return;
    socklen_t len = wake_addr(ss, waiter_id, &a);
    if (len == 0)
        return;
    if (ss->send_fd < 0)
        ss->send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ss->send_fd >= 0)
        (void)sendto(ss->send_fd, "w", 1, 0, (const struct sockaddr *)&a, len);
}

/* Waits up to `ms` for a wake-up; false: it cannot, the caller sleeps instead. */
static bool wake_wait(struct sqlite_store *ss, int fd, uint32_t ms)
{
    const struct tl_clock *c = ss->base.clock;

    if (fd < 0)
        return false;
    if (c->sleep_ms != tl__real_clock.sleep_ms) {
        /* A test's clock: its sleep moves its time, so poll() must not wait. */
        wake_drain(ss);
        return false;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms) > 0)
        wake_drain(ss);
    return true;
}

static void wake_fini(struct sqlite_store *ss)
{
    wake_close(ss);
    if (ss->send_fd >= 0)
        (void)close(ss->send_fd);
    ss->send_fd = -1;
}
#else
static void wake_init(struct sqlite_store *ss)
{
    (void)ss;
}

static void wake_drain(struct sqlite_store *ss)
{
    (void)ss;
}

static int wake_listen(struct sqlite_store *ss, const char *waiter_id)
{
    (void)ss;
    (void)waiter_id;
    return -1;
}

static void wake_forget(struct sqlite_store *ss, const char *waiter_id)
{
    (void)ss;
    (void)waiter_id;
}

static void wake_send(struct sqlite_store *ss, const char *waiter_id)
{
    (void)ss;
    (void)waiter_id;
}

static bool wake_wait(struct sqlite_store *ss, int fd, uint32_t ms)
{
    (void)ss;
    (void)fd;
    (void)ms;
    return false;
}

static void wake_fini(struct sqlite_store *ss)
{
    (void)ss;
}
#endif

/* Test hooks (declared by tests/integration/test_sqlite_line.c): a fixed pause between
 * wait_turn's polls (0: the line's own), and the wake-up datagrams this connection received. */
void tl__sqlite_test_poll_ms(struct tl_store *s, uint32_t ms);
uint64_t tl__sqlite_test_wakeups(struct tl_store *s);

void tl__sqlite_test_poll_ms(struct tl_store *s, uint32_t ms)
{
    ((struct sqlite_store *)s)->test_poll_ms = ms;
}

uint64_t tl__sqlite_test_wakeups(struct tl_store *s)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;

    wake_drain(ss);
    return ss->test_wakeups;
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

/*
 * Creates the tables, or adds the ones a file made by an earlier tasklock lacks: tl_waiters came
 * with the line, tl_done with done markers, tl_shared (with its triggers, and tl_waiters'
 * shared and slots) with shared holders, and tl_waiters' upgrading, steals and holding with
 * upgrades and the wait-for graph, without a new schema version, because each change only adds a
 * table or columns (and widens tl_history's CHECK, see history_rebuild_sql). A tasklock from before
 * them still opens such a file and works (its claims do not queue, so they can pass the line,
 * and it ignores done markers; it shows the events `done`, `reopened`, `upgraded` and
 * `downgraded` as acquisitions; its waiters list no holds), where a new version number would
 * lock it out.
 */
static tl_status create_schema(struct sqlite_store *ss)
{
    static const char probe_sql[] =
        "SELECT user_version, EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
        "name = 'tl_waiters'), EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name "
        "= 'tl_done'), EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
        "'tl_history' AND sql NOT LIKE '%''downgraded''%'), EXISTS (SELECT 1 FROM sqlite_master "
        "WHERE type = 'table' AND name = 'tl_shared'), EXISTS (SELECT 1 FROM "
        "pragma_table_info('tl_waiters') WHERE name = 'slots'), EXISTS (SELECT 1 FROM "
        "pragma_table_info('tl_waiters') WHERE name = 'steals') FROM pragma_user_version";
    sqlite3_stmt *st = NULL;
    int version = 0;
    bool current = false, old_history = false, old_waiters = false, old_graph = false;
    int rc = sqlite3_prepare_v2(ss->db, probe_sql, -1, &st, NULL);

    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
        current = sqlite3_column_int(st, 1) != 0 && sqlite3_column_int(st, 2) != 0 &&
                  sqlite3_column_int(st, 3) == 0 && sqlite3_column_int(st, 4) != 0 &&
                  sqlite3_column_int(st, 5) != 0 && sqlite3_column_int(st, 6) != 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return db_fail(ss, rc, "reading the schema version");
    if (version == SCHEMA_VERSION && current)
        return TL_OK;
    if (version > SCHEMA_VERSION)
        return tl__store_fail(&ss->base, TL_ESTORE,
                              "sqlite: %s: written by a newer tasklock (schema %d, this one "
                              "knows %d)",
                              ss->path, version, SCHEMA_VERSION);

    char sql[sizeof(schema_sql) + 64];
    (void)snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE;%sPRAGMA user_version = %d;", schema_sql,
                   SCHEMA_VERSION);
    rc = sqlite3_exec(ss->db, sql, NULL, NULL, NULL);
    /* Under the write lock now: another process may have migrated the file meanwhile. */
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(ss->db, probe_sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            old_history = sqlite3_column_int(st, 3) != 0;
            old_waiters = sqlite3_column_int(st, 5) == 0;
            old_graph = sqlite3_column_int(st, 6) == 0;
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK && old_history)
        rc = sqlite3_exec(ss->db, history_rebuild_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK && old_waiters)
        rc = sqlite3_exec(ss->db, waiters_mode_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK && old_graph)
        rc = sqlite3_exec(ss->db, waiters_graph_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(ss->db, "COMMIT", NULL, NULL, NULL);
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
    ss->wake_fd = ss->send_fd = -1;
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
    wake_init(ss);

    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(ss->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &ss->stmt[i],
                                NULL);
        if (rc != SQLITE_OK)
            return db_fail(ss, rc, "preparing statements");
    }
    if ((rc = tl__sqlite_next_prepare(ss)) != SQLITE_OK ||
        (rc = tl__sqlite_modes_prepare(ss)) != SQLITE_OK)
        return db_fail(ss, rc, "preparing statements");
    s->modes = true;
    s->deadlocks = true;
    return TL_OK;
}

static void sqlite_close(struct tl_store *s)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;

    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(ss->stmt[i]);
    tl__sqlite_next_finalize(ss);
    tl__sqlite_modes_finalize(ss);
    sqlite3_close(ss->db);
    tl__free(ss->path);
    wake_fini(ss);
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

/* Runs a statement with no result rows whose parameters are key and then waiter id. */
static int exec_key_waiter(struct sqlite_store *ss, enum stmt_id id, const char *key,
                           const char *waiter_id)
{
    sqlite3_stmt *st = ss->stmt[id];

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, waiter_id, -1, SQLITE_STATIC);
    int rc = exec_stmt(ss, id);
    sqlite3_clear_bindings(st);
    return rc;
}

/* The live head of the line of `key` if the key's holders admit its claim, for its wake-up
 * (empty: none, or no wake-ups). A read, in the caller's transaction or on its own. */
static int find_head(struct sqlite_store *ss, const char *key, int64_t now,
                     char head[MAX_WAITER_ID + 1])
{
    sqlite3_stmt *st = ss->stmt[ST_W_HEAD];

    head[0] = '\0';
    if (ss->wake_base[0] == '\0')
        return SQLITE_OK;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        int64_t slots = sqlite3_column_int64(st, 2);
        bool admitted =
            sqlite3_column_int64(st, 6) != 0 /* an upgrader: when it is the only holder */
                ? tl__sqlite_upgrade_turn(sqlite3_column_text(st, 3), sqlite3_column_int64(st, 7))
                : tl__sqlite_admits(sqlite3_column_int(st, 1) != 0,
                                    slots < 0 || slots > TL_SLOTS_MAX ? 0 : (uint32_t)slots,
                                    sqlite3_column_text(st, 3), sqlite3_column_int64(st, 4),
                                    sqlite3_column_int64(st, 5));

        /* Only a head the holders admit: one they do not (a writer beside readers) would be
         * woken by its own busy claims again and again. */
        if (admitted && t != NULL && strlen((const char *)t) <= MAX_WAITER_ID)
            (void)snprintf(head, MAX_WAITER_ID + 1, "%s", (const char *)t);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* A renew (ST_RENEW), or an extend (ST_EXTEND) that also records `lock_timeout_ms`: one
 * statement either way, so the heartbeat and the new timeout are written together. */
static tl_status renew_lock(struct tl_store *s, enum stmt_id id, const struct tl_record *held,
                            uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    const bool shared = held->info.mode == TL_SHARED;
    int64_t now = now_ms(s);
    int rc = SQLITE_DONE, changes = 0;

    /* By its mode, then as the other mode (see tl__sqlite_unhold): a holder renews its own row
     * with the first statement; only a lock already lost costs the second. */
    for (int i = 0; i < 2 && rc == SQLITE_DONE && changes == 0; i++) {
        sqlite3_stmt *st = tl__sqlite_renew_stmt(ss, i == 0 ? shared : !shared, id == ST_EXTEND);

        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_text(st, 2, held->info.key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, held->info.worker_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)held->info.token);
        if (id == ST_EXTEND)
            sqlite3_bind_int64(st, 5, lock_timeout_ms);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        changes = rc == SQLITE_DONE ? sqlite3_changes(ss->db) : 0;
    }
    if (rc != SQLITE_DONE)
        return db_fail(ss, rc, id == ST_EXTEND ? "extending a lock" : "renewing a lock");
    if (changes == 0) {
        (void)add_history(ss, now, TL_EVENT_LOST, &held->info, NULL);
        return tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu",
                              held->info.key, held->info.worker_id,
                              (unsigned long long)held->info.token);
    }
    *heartbeat_at_ms = now;
    return TL_OK;
}

static tl_status sqlite_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                              int64_t *heartbeat_at_ms)
{
    (void)seq;
    return renew_lock(s, ST_RENEW, held, 0, heartbeat_at_ms);
}

static tl_status sqlite_extend(struct tl_store *s, const struct tl_record *held,
                               uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    return renew_lock(s, ST_EXTEND, held, lock_timeout_ms, heartbeat_at_ms);
}

static tl_status sqlite_release(struct tl_store *s, const struct tl_record *held,
                                const char *summary)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    tl_status ret = TL_OK;
    bool removed = false, before = false;
    int rc;

    if ((rc = exec_stmt(ss, ST_BEGIN)) != SQLITE_OK)
        return db_fail(ss, rc, "starting a release");
    if ((rc = tl__sqlite_unhold(ss, held, &removed)) != SQLITE_OK)
        goto err_rollback;

    char head[MAX_WAITER_ID + 1] = "";
    if (removed) {
        int64_t now = now_ms(s);

        rc = add_history(ss, now, TL_EVENT_RELEASED, &held->info, summary);
        if (rc == SQLITE_OK)
            rc = find_head(ss, held->info.key, now, head);
    } else {
        rc = tl__sqlite_released_before(ss, held, &before);
        if (rc == SQLITE_OK && !before)
            ret = tl__store_fail(s, TL_ENOTOWNER, "%s is not held by %s with token %llu",
                                 held->info.key, held->info.worker_id,
                                 (unsigned long long)held->info.token);
    }
    if (rc != SQLITE_OK || (rc = exec_stmt(ss, ST_COMMIT)) != SQLITE_OK)
        goto err_rollback;
    wake_send(ss, head);
    return ret;

err_rollback:
    ret = db_fail(ss, rc, "releasing a lock");
    rollback(ss);
    return ret;
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

    sqlite3_bind_int64(st, 1, now);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tl_record *r = tl__record_new();

        if (r == NULL || read_record(st, (const char *)sqlite3_column_text(st, 7), r) != TL_OK) {
            tl__free(r);
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
            break;
        }
        tl__record_judge(r, now);
        r->info.waiting = (uint32_t)sqlite3_column_int(st, 8);
        r->info.mode = sqlite3_column_int(st, 9) ? TL_SHARED : TL_EXCLUSIVE;
        int64_t slots = sqlite3_column_int64(st, 10), holders = sqlite3_column_int64(st, 11);
        if (sqlite3_column_type(st, 10) != SQLITE_INTEGER || slots < 0 || slots > TL_SLOTS_MAX) {
            ret = tl__store_fail(s, TL_ESTORE,
                                 "sqlite: %s: the shared holder of %s with token %llu has "
                                 "slots \"%.40s\", not a number from 0 to %d (the file was "
                                 "changed by something other than tasklock)",
                                 ss->path, r->info.key, (unsigned long long)r->info.token,
                                 (const char *)sqlite3_column_text(st, 10), TL_SLOTS_MAX);
            tl__record_free(r);
            break;
        }
        r->info.slots = (uint32_t)slots;
        r->info.holders = holders > UINT32_MAX ? UINT32_MAX : (uint32_t)holders;
        if (tl__record_array_push(&arr, &n, &cap, r) != TL_OK) {
            tl__record_free(r);
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
            break;
        }
    }
    if (ret == TL_OK && rc != SQLITE_DONE)
        ret = db_fail(ss, rc, "listing locks");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
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
            /* The CHECK constraint keeps other names out of the table, unless the file was
             * written around it: say so rather than guess. */
            if (!tl__event_kind_from_name((const char *)sqlite3_column_text(st, 2), &e->kind)) {
                const unsigned char *k = sqlite3_column_text(st, 2);
                ret = tl__store_fail(s, TL_ESTORE,
                                     "sqlite: %s: an event of %.200s at %lld has the kind "
                                     "\"%.40s\", which this tasklock does not know (the file "
                                     "was changed by something other than tasklock)",
                                     ss->path, e->key ? e->key : "?", (long long)e->at_ms,
                                     k ? (const char *)k : "NULL");
                tl__event_free(e);
                break;
            }
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

/* A waiter gives up its place. If the key is free, its head (the next one, if the leaver was
 * the head) is woken: a wake-up to a head that was one already only makes it poll once more. */
static tl_status sqlite_leave(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    char head[MAX_WAITER_ID + 1] = "";

    if (key == NULL || waiter_id == NULL)
        return tl__store_fail(s, TL_EINVAL, "leave: no key or no waiter id");
    wake_forget(ss, waiter_id);
    int rc = exec_key_waiter(ss, ST_W_DELETE, key, waiter_id);
    if (rc == SQLITE_OK && sqlite3_changes(ss->db) > 0)
        rc = find_head(ss, key, now_ms(s), head);
    if (rc != SQLITE_OK)
        return db_fail(ss, rc, "leaving the line");
    wake_send(ss, head);
    return TL_OK;
}

/*
 * SQLite has no messages, so the waiter polls its own turn with one read (no write lock, no
 * fsync): "the key's holders admit my claim and I am its live head" (free, for an exclusive
 * claim; no exclusive holder and a free slot, for a shared one). Only the head can see that,
 * so a release
 * still wakes one waiter. On Linux it waits between polls in poll() on its wake-up socket (see
 * wake_init), so that a release on this machine wakes it at once; the polls below remain for
 * the wake-ups that cannot come (another machine's network namespace, a dead head's removal
 * that no one made).
 *
 * The pauses follow the line. A waiter that has just moved up polls every 2 ms, and slows down
 * (by an eighth of the time it has spent at that place) the longer it stays there: to 10 ms
 * for the head, and to 5 ms more per waiter ahead for the others, 50 ms at most. On a busy key
 * (short locks, a long line) everyone keeps moving up and polls fast, so the next head notices
 * its turn within a few ms of the release: one pause for everyone behind the head made each
 * hand-over wait for the new head's next poll, up to that pause (8 processes on one key: 24 ms
 * a hand-over with 50 ms). Behind a long lock the polls slow down to about 350 short reads a
 * second for 8 waiters.
 *
 * A waiter that is not in line (deleted as dead) is woken by a free key with no one in line,
 * so that it does not sleep out its timeout in front of a free key.
 */
static tl_status sqlite_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                                  uint32_t timeout_ms, bool *woken)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *st = ss->stmt[ST_W_TURN];
    const struct tl_clock *c = s->clock;
    int64_t end = c->mono_ms(c->ud) + timeout_ms;
    int64_t place = -1, place_since = 0; /* waiters ahead at the last poll, and since when */

    *woken = false;
    if (key == NULL || waiter_id == NULL)
        return tl__store_fail(s, TL_EINVAL, "wait_turn: no key or no waiter id");
    if (s->deadline_mono_ms != 0 && s->deadline_mono_ms < end)
        end = s->deadline_mono_ms;
    /* Bound before the first poll: a release between that poll and the wait is queued. */
    int fd = wake_listen(ss, waiter_id);
    for (;;) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms(s));
        sqlite3_bind_text(st, 3, waiter_id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        bool admitted = false, garbled = false;
        int64_t ahead = 0;
        if (rc == SQLITE_ROW) {
            /* Not in line: judged as an exclusive claim (free, and no one in line). */
            bool in_line = sqlite3_column_int(st, 3) != 0;
            int64_t shared = sqlite3_column_int64(st, 4), slots = sqlite3_column_int64(st, 5);
            int64_t upgrading = sqlite3_column_int64(st, 7), steals = sqlite3_column_int64(st, 9);
            garbled = in_line &&
                      (sqlite3_column_type(st, 4) != SQLITE_INTEGER ||
                       sqlite3_column_type(st, 5) != SQLITE_INTEGER || shared < 0 || shared > 1 ||
                       slots < 0 || slots > TL_SLOTS_MAX ||
                       sqlite3_column_type(st, 7) != SQLITE_INTEGER || upgrading < 0 ||
                       sqlite3_column_type(st, 9) != SQLITE_INTEGER || steals < 0 || steals > 1);
            if (garbled)
                admitted = false;
            else if (in_line && upgrading != 0) /* an upgrader: no other holder counts */
                admitted = tl__sqlite_upgrade_turn(sqlite3_column_text(st, 0),
                                                   sqlite3_column_int64(st, 8));
            else
                admitted =
                    tl__sqlite_admits(in_line && shared == 1, in_line ? (uint32_t)slots : 0,
                                      sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
                                      sqlite3_column_int64(st, 2));
            ahead = sqlite3_column_int64(st, 6);
            rc = SQLITE_OK;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_OK)
            return db_fail(ss, rc, "waiting in line");
        if (garbled)
            return tl__store_fail(s, TL_ESTORE,
                                  "sqlite: %s: waiter %s of %s has a mode, slots, upgraded "
                                  "token or steals that are not 0/1, 0 to %d, a token and 0/1 "
                                  "(the file was changed by something other than tasklock)",
                                  ss->path, waiter_id, key, TL_SLOTS_MAX);
        /* Admitted by the holders, and the head (or no one is in line, and neither is the
         * caller). */
        if (admitted && ahead == 0) {
            wake_drain(ss); /* the wake-up for this turn, if it came */
            *woken = true;
            return TL_OK;
        }

        int64_t now = c->mono_ms(c->ud), left = end - now;
        if (left <= 0)
            return TL_OK;
        if (ahead != place) {
            place = ahead;
            place_since = now;
        }
        int64_t cap = ahead >= (MAX_POLL_MS - HEAD_POLL_MS) / POLL_PER_AHEAD_MS
                          ? MAX_POLL_MS
                          : HEAD_POLL_MS + POLL_PER_AHEAD_MS * ahead;
        int64_t pause = (now - place_since) / 8;
        pause = pause < MIN_POLL_MS ? MIN_POLL_MS : pause > cap ? cap : pause;
        if (ss->test_poll_ms != 0)
            pause = ss->test_poll_ms;
        uint32_t ms = (uint32_t)(left < pause ? left : pause);
        if (!wake_wait(ss, fd, ms))
            c->sleep_ms(c->ud, ms);
    }
}

/* The line of `key`, or with key NULL every waiter of the file (the wait-for graph's nodes, by
 * key), each with the holds its latest claim listed ("" when none). */
static tl_status sqlite_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                                size_t *count)
{
    struct sqlite_store *ss = (struct sqlite_store *)s;
    sqlite3_stmt *st = ss->stmt[key != NULL ? ST_W_LIST : ST_W_LIST_ALL];
    struct tl_waiter **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status ret = TL_OK;
    int rc;

    *out = NULL;
    *count = 0;
    int64_t now = now_ms(s);
    if (key != NULL)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tl_waiter *w = tl__waiter_new();

        if (w != NULL) {
            w->key = column_dup(st, 9);
            w->holding = column_dup(st, 8);
            if (w->holding == NULL && sqlite3_column_type(st, 8) == SQLITE_NULL)
                w->holding = tl__strdup(""); /* NOT NULL: only a file changed around it */
            w->waiter_id = column_dup(st, 0);
            w->worker_id = column_dup(st, 1);
            w->node_id = column_dup(st, 2);
            w->priority = sqlite3_column_int(st, 3);
            w->seq = (uint64_t)sqlite3_column_int64(st, 4);
            w->since_ms = sqlite3_column_int64(st, 5);
            w->heartbeat_at_ms = sqlite3_column_int64(st, 6);
            w->timeout_ms = (uint32_t)sqlite3_column_int64(st, 7);
            w->dead = w->heartbeat_at_ms + (int64_t)w->timeout_ms <= now;
        }
        if (w == NULL || !w->key || !w->waiter_id || !w->worker_id || !w->node_id || !w->holding ||
            tl__waiter_array_push(&arr, &n, &cap, w) != TL_OK) {
            tl__waiter_free(w);
            ret = tl__store_fail(s, TL_ENOMEM, "out of memory");
            break;
        }
    }
    if (ret == TL_OK && rc != SQLITE_DONE)
        ret = db_fail(ss, rc, "reading the line");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (ret != TL_OK) {
        tl_waiter_array_free(arr, n);
        return ret;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

/* sqlite.c's helpers for sqlite_next.c (sqlite_int.h). */
tl_status tl__sqlite_fail(struct sqlite_store *ss, int rc, const char *what)
{
    return db_fail(ss, rc, what);
}

int tl__sqlite_exec(struct sqlite_store *ss, enum stmt_id id)
{
    return exec_stmt(ss, id);
}

void tl__sqlite_rollback(struct sqlite_store *ss)
{
    rollback(ss);
}

int tl__sqlite_add_history(struct sqlite_store *ss, int64_t at, tl_event_kind kind,
                           const struct tl_info *who, const char *detail)
{
    return add_history(ss, at, kind, who, detail);
}

int tl__sqlite_find_head(struct sqlite_store *ss, const char *key, int64_t now,
                         char head[MAX_WAITER_ID + 1])
{
    return find_head(ss, key, now, head);
}

void tl__sqlite_wake_send(struct sqlite_store *ss, const char *waiter_id)
{
    wake_send(ss, waiter_id);
}

void tl__sqlite_wake_forget(struct sqlite_store *ss, const char *waiter_id)
{
    wake_forget(ss, waiter_id);
}

tl_status tl__sqlite_read_record(sqlite3_stmt *st, const char *key, struct tl_record *r)
{
    return read_record(st, key, r);
}

const struct tl_store_ops tl__store_sqlite = {
    .version = TL_STORE_OPS_VERSION,
    .scheme = "sqlite",
    .size = sizeof(struct sqlite_store),
    .open = sqlite_open,
    .close = sqlite_close,
    .claim = tl__sqlite_claim,
    .renew = sqlite_renew,
    .release = sqlite_release,
    .inspect = tl__sqlite_inspect,
    .list = sqlite_list,
    .history = sqlite_history,
    .wait = sqlite_wait,
    .force_release = tl__sqlite_force_release,
    .leave = sqlite_leave,
    .wait_turn = sqlite_wait_turn,
    .waiters = sqlite_waiters,
    .extend = sqlite_extend,
    .claim_next = tl__sqlite_claim_next,
    .finish = tl__sqlite_finish,
    .reopen = tl__sqlite_reopen,
    .done_list = tl__sqlite_done_list,
    .wait_any = tl__sqlite_wait_any,
    .holders = tl__sqlite_holders,
    .convert = tl__sqlite_convert,
};
