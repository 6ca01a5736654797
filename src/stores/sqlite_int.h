/*
 * sqlite_int.h -- what the files of the SQLite store share (not installed; nothing else includes
 * it): sqlite.c (open, the schema, renew, release, the line), sqlite_modes.c (a key's set of
 * holders: claim, force_release, inspect, holders, convert) and sqlite_next.c (claim-next and done
 * markers: claim_next, finish, reopen, done_list, wait_any).
 */
#ifndef TL_STORES_SQLITE_INT_H
#define TL_STORES_SQLITE_INT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "tl.h"

/* Longest waiter id that gets a wake-up socket (the core's are 32 hex digits). */
#define MAX_WAITER_ID 64

/* The worker id of a key's tl_locks row while shared holders hold it (their rows are in
 * tl_shared). It has a space, which no worker id may have, so no renew or release can match
 * it; a tasklock from before shared holders sees the key held by it (sqlite_modes.c). */
#define SHARED_SENTINEL "(shared holders)"

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
    ST_EXTEND,
    ST_W_DELETE_DEAD,
    ST_W_FIND,
    ST_W_COUNT,
    ST_W_INSERT,
    ST_W_REFRESH,
    ST_W_DELETE,
    ST_W_TURN,
    ST_W_LIST,
    ST_W_LIST_ALL,
    ST_W_HEAD,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_COUNT
};

/* sqlite_next.c's statements, prepared at open with sqlite.c's. */
enum next_stmt_id {
    NST_SCAN,
    NST_ANY_FREE,
    NST_DONE_SET,
    NST_DONE_GET,
    NST_DONE_DELETE,
    NST_DONE_KEY,
    NST_DONE_ALL,
    NST_COUNT
};

/* sqlite_modes.c's statements, prepared at open with sqlite.c's. */
enum modes_stmt_id {
    MST_SHARED_OF,
    MST_SHARED_INSERT,
    MST_SHARED_DELETE,
    MST_SHARED_DELETE_MINE,
    MST_SHARED_DELETE_ALL,
    MST_SENTINEL_SET,
    MST_SENTINEL_FREE,
    MST_TOKEN_SET,
    MST_SHARED_RENEW,
    MST_SHARED_EXTEND,
    MST_RELEASED,
    MST_COUNT
};

struct sqlite_store {
    struct tl_store base; /* must be first */
    sqlite3 *db;
    char *path;
    bool default_path; /* the path came from the defaults, not the URL */
    uint32_t busy_ms;
    sqlite3_stmt *stmt[ST_COUNT];
    sqlite3_stmt *next_stmt[NST_COUNT];
    sqlite3_stmt *modes_stmt[MST_COUNT];
    /* The busy handler's state for the statement waiting now, and how its last wait ended. */
    int64_t busy_start;
    int64_t busy_waited;
    bool busy_cut;  /* it gave up at the caller's deadline, before busy_ms */
    bool busy_fast; /* a claim is waiting: short constant pauses */
    /* Same-machine wake-ups (Linux): the file's name for them, the socket of the waiter that
     * waits on this connection (bound to its name, -1: none) and its waiter id, and an unbound
     * socket to send with (-1: not made yet). */
    char wake_base[32]; /* "tasklock-" and 16 hex digits; empty: no wake-ups */
    int wake_fd;
    char wake_id[MAX_WAITER_ID + 1];
    int send_fd;
    /* Test hooks: a fixed pause between wait_turn's polls (0: the line's), datagrams received. */
    uint32_t test_poll_ms;
    uint64_t test_wakeups;
};
_Static_assert(offsetof(struct sqlite_store, base) == 0, "base must be first");

/* A key's row of tl_locks (select_row: sqlite_wait's poll). */
struct row {
    bool exists;
    bool held;
    uint64_t token;
    int64_t heartbeat_at;
    uint32_t timeout;
};

/* sqlite.c's helpers, for sqlite_next.c and sqlite_modes.c. */
tl_status tl__sqlite_fail(struct sqlite_store *ss, int rc, const char *what);
int tl__sqlite_exec(struct sqlite_store *ss, enum stmt_id id);
void tl__sqlite_rollback(struct sqlite_store *ss);
int tl__sqlite_add_history(struct sqlite_store *ss, int64_t at, tl_event_kind kind,
                           const struct tl_info *who, const char *detail);
int tl__sqlite_find_head(struct sqlite_store *ss, const char *key, int64_t now,
                         char head[MAX_WAITER_ID + 1]);
void tl__sqlite_wake_send(struct sqlite_store *ss, const char *waiter_id);
void tl__sqlite_wake_forget(struct sqlite_store *ss, const char *waiter_id);
tl_status tl__sqlite_read_record(sqlite3_stmt *st, const char *key, struct tl_record *r);

/* sqlite_modes.c: its statements (the schema's tl_shared must exist), the ops, and what the
 * release paths and the line share with them. */
int tl__sqlite_modes_prepare(struct sqlite_store *ss);
void tl__sqlite_modes_finalize(struct sqlite_store *ss);
tl_status tl__sqlite_claim(struct tl_store *s, const struct tl_claim *req,
                           struct tl_claim_result *out);
tl_status tl__sqlite_force_release(struct tl_store *s, const struct tl_force_release *req,
                                   struct tl_record *former, bool *found);
tl_status tl__sqlite_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                             bool *found);
tl_status tl__sqlite_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                             size_t *count);
/* In the caller's transaction: removes the holder `held` (by its token and worker id, looked
 * for by its mode first); *removed says whether it held the key. */
int tl__sqlite_unhold(struct sqlite_store *ss, const struct tl_record *held, bool *removed);
/* Whether `held` released the key before: no holder has its token and it is the key's last. */
int tl__sqlite_released_before(struct sqlite_store *ss, const struct tl_record *held, bool *yes);
/* The renew (or extend) statement of a shared or exclusive holder; parameters as ST_RENEW's
 * (ST_EXTEND's). */
sqlite3_stmt *tl__sqlite_renew_stmt(struct sqlite_store *ss, bool shared, bool extend);
/* Whether the holders of a key admit a claim (shared or not, slots), from the key's tl_locks
 * worker id (NULL: free), its number of shared holders and their slots; a mismatch admits (the
 * claim then answers TL_EINVAL). For the wake-ups and wait_turn's poll. */
bool tl__sqlite_admits(bool shared, uint32_t slots, const unsigned char *lock_worker,
                       int64_t nshared, int64_t held_slots);
/* Whether an upgrade's waiter may convert now: no holder but it counts, by the key's tl_locks
 * worker id (NULL: free) and the number of shared holders other than its hold that count (the
 * live ones for an upgrade that steals). */
bool tl__sqlite_upgrade_turn(const unsigned char *lock_worker, int64_t other_shared);
/* The convert op (store.h): a holder's new mode, in one transaction. */
tl_status tl__sqlite_convert(struct tl_store *s, const struct tl_record *held,
                             const struct tl_claim *req, struct tl_claim_result *out);
/* In the caller's transaction: deletes every shared holder of `key` and names them in
 * `detail` ("from W (token N), ..."; unchanged when there were none). */
int tl__sqlite_drop_shared(struct sqlite_store *ss, const char *key, char *detail, size_t size);

/* sqlite_next.c: its statements (the schema's tl_done must exist), and the ops. */
int tl__sqlite_next_prepare(struct sqlite_store *ss);
void tl__sqlite_next_finalize(struct sqlite_store *ss);
tl_status tl__sqlite_claim_next(struct tl_store *s, const struct tl_claim *req,
                                const struct tl_candidates *c, struct tl_claim_result *out,
                                size_t *won, struct tl_next_tally *tally);
tl_status tl__sqlite_finish(struct tl_store *s, const struct tl_finish *f,
                            struct tl_finish_result *out);
tl_status tl__sqlite_reopen(struct tl_store *s, const char *key, const char *worker_id,
                            const char *node_id, bool *was_done);
tl_status tl__sqlite_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                               size_t *count);
tl_status tl__sqlite_wait_any(struct tl_store *s, const struct tl_candidates *c,
                              uint32_t timeout_ms);

#endif
