/*
 * postgres_int.h -- what the files of the PostgreSQL store share (not installed; nothing else
 * includes it): postgres.c (sessions, the schema, claim, renew, release, the line) and
 * postgres_next.c (claim-next and done markers: claim_next, finish, reopen, done_list,
 * wait_any) and postgres_modes.c with postgres_modes_sql.c (shared holders and semaphores:
 * claim, inspect, list, holders, force_release), and postgres_convert.c with
 * postgres_convert_sql.c (upgrades, downgrades and the wait-for graph: convert, waiters).
 */
#ifndef TL_STORES_POSTGRES_INT_H
#define TL_STORES_POSTGRES_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "postgres.h"
#include "store.h"
#include "tl.h"

/* The channel name "tasklock_released:SCHEMA" must fit in 63 bytes. */
#define SCHEMA_MAX  40
#define SECRETS_MAX 4
/* The statements of postgres.c's schema_sql, and postgres_next.c's statements and functions. */
#define PG_CORE_DDL 20
#define PG_NEXT_SQL 6
#define PG_NEXT_DDL 7
/* postgres_modes.c's statements and postgres_modes_sql.c's table, view and functions. */
#define PG_MODES_SQL 5
#define PG_MODES_DDL 19
/* postgres_convert.c's statements and postgres_convert_sql.c's functions. */
#define PG_CONV_SQL 3
#define PG_CONV_DDL 13
/* The record columns every read of a holder returns (see tl__pg_read_record()). */
#define PG_NRECORD 9
/* The worker and node id an older library sees holding a key held shared. */
#define PG_SHARED_ID "tasklock:shared"
/* The first half of the advisory lock a claim-next takes on a key whose row it is about to
 * insert ("tlk"); the second is hashtext(key). */
#define PG_NEXT_ADVISORY "1953262336"

enum stmt_id {
    ST_RENEW,
    ST_RELEASE,
    ST_HISTORY_KEY,
    ST_HISTORY_ALL,
    ST_WAKE,
    ST_LISTEN,
    ST_UNLISTEN,
    ST_EXTEND,
    ST_LEAVE,
    ST_TURN,
    ST_COUNT
};

/* One server session. */
struct pg_conn {
    PGconn *c;
    uint64_t generation; /* bumped by each new session: a LISTEN lives as long as its session */
    uint32_t failures;   /* failed connection attempts in a row */
    int64_t retry_at;    /* real monotonic ms before which no new attempt is made */
    char lasterr[TL_ERRMSG_SIZE];
};

struct pg_store {
    struct tl_store base;      /* must be first */
    char *conninfo;            /* the URI without our parameters, as libpq takes it */
    char *options;             /* the startup options: the URI's, then our statement timeout */
    char *shown;               /* the URI with its password redacted, for messages */
    char *secret[SECRETS_MAX]; /* the password in every form, scrubbed from libpq's text */
    char schema[SCHEMA_MAX + 1];
    char channel[64];
    char timeout_text[16];
    uint32_t timeout_ms;
    bool wakeup;
    bool pooled;      /* behind a transaction pooler: no startup options, no LISTEN */
    bool healing;     /* recreating missing tables or functions (once per call) */
    char sqlstate[6]; /* of the last failed statement, "" if none */
    uint64_t claims;
    char *sql[ST_COUNT];
    char *ddl[PG_CORE_DDL];
    char *next_sql[PG_NEXT_SQL];   /* postgres_next.c's statements, expanded */
    char *next_ddl[PG_NEXT_DDL];   /* and its functions */
    char *modes_sql[PG_MODES_SQL]; /* postgres_modes.c's statements, expanded */
    char *modes_ddl[PG_MODES_DDL]; /* and postgres_modes_sql.c's table, view and functions */
    char *conv_sql[PG_CONV_SQL];   /* postgres_convert.c's statements, expanded */
    char *conv_ddl[PG_CONV_DDL];   /* and postgres_convert_sql.c's columns and functions */
    struct pg_conn main, wait;
    struct tl_pg_wait_stats stats;
    /* The waiter whose channel the wait session listens on ("" none), and in which session
     * (generation): a LISTEN lasts until the next waiter's wait_turn or its leave. */
    char listen_id[33];
    uint64_t listen_gen;
};
_Static_assert(offsetof(struct pg_store, base) == 0, "base must be first");

struct pg_query {
    const char *sql;
    int n;
    const char *const *v;
};

/* postgres.c's helpers, for postgres_next.c. */
/* Runs one statement (`sql`, expanded) in its own transaction, as postgres.c's calls do
 * (reconnecting once, remaking missing tables and functions once). */
tl_status tl__pg_run(struct pg_store *ps, struct pg_conn *pc, const char *what, const char *sql,
                     int n, const char *const *v, PGresult **out);
bool tl__pg_get_i64(const PGresult *r, int row, int col, int64_t *out);
const char *tl__pg_get_text(const PGresult *r, int row, int col);
bool tl__pg_get_bool(const PGresult *r, int row, int col, bool *out);
tl_status tl__pg_bad_reply(struct pg_store *ps, const char *what);
/* Fills `rec` from the PG_NRECORD record columns at `col` of `row` (token, worker, node,
 * claimed, heartbeat, timeout, task_info, stale, now); a bad row is TL_ESTORE naming `key`. */
tl_status tl__pg_read_record(struct pg_store *ps, const PGresult *r, int row, int col,
                             const char *key, struct tl_record *rec);
/* Whether `id` is a waiter id: 32 lower-case hex digits. */
bool tl__pg_valid_waiter_id(const char *id);
/* The wait session: LISTEN on the release channel (tl__pg_listen), stop (tl__pg_unlisten), and
 * wait for its socket (1 ready, 0 deadline, -1 broken). */
tl_status tl__pg_listen(struct pg_store *ps);
void tl__pg_unlisten(struct pg_store *ps);
int tl__pg_wait_socket(PGconn *c, short events, int64_t deadline);
int64_t tl__pg_caller_deadline(const struct pg_store *ps);
void tl__pg_conn_drop(struct pg_conn *pc);

/* postgres_next.c: its SQL templates ("{s}" the schema), and the ops. */
extern const char *const tl__pg_next_sql[PG_NEXT_SQL];
extern const char *const tl__pg_next_ddl[PG_NEXT_DDL];
/* The schema check's part for them ("AND ..."), for schema `sc`. */
void tl__pg_next_check(char *buf, size_t size, const char *sc);
tl_status tl__pg_claim_next(struct tl_store *s, const struct tl_claim *req,
                            const struct tl_candidates *c, struct tl_claim_result *out, size_t *won,
                            struct tl_next_tally *tally);
tl_status tl__pg_finish(struct tl_store *s, const struct tl_finish *f,
                        struct tl_finish_result *out);
tl_status tl__pg_reopen(struct tl_store *s, const char *key, const char *worker_id,
                        const char *node_id, bool *was_done);
tl_status tl__pg_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                           size_t *count);
tl_status tl__pg_wait_any(struct tl_store *s, const struct tl_candidates *c, uint32_t timeout_ms);

/* postgres_modes.c and postgres_modes_sql.c: shared holders and semaphores. */
enum pg_modes_stmt { PM_CLAIM, PM_INSPECT, PM_HOLDERS, PM_LIST, PM_FORCE };
extern const char *const tl__pg_modes_sql[PG_MODES_SQL];
extern const char *const tl__pg_modes_ddl[PG_MODES_DDL];
/* The schema check's part for them ("AND ..."), for schema `sc`. */
void tl__pg_modes_check(char *buf, size_t size, const char *sc);
tl_status tl__pg_claim(struct tl_store *s, const struct tl_claim *req, struct tl_claim_result *out);
tl_status tl__pg_inspect(struct tl_store *s, const char *key, struct tl_record *out, bool *found);
tl_status tl__pg_list(struct tl_store *s, struct tl_record ***out, size_t *count);
tl_status tl__pg_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                         size_t *count);
tl_status tl__pg_force_release(struct tl_store *s, const struct tl_force_release *req,
                               struct tl_record *former, bool *found);

/* postgres_convert.c and postgres_convert_sql.c: conversions and the wait-for graph. */
enum pg_conv_stmt { PC_CONVERT, PC_WAITERS_KEY, PC_WAITERS_ALL };
enum pg_conv_ddl {
    PC_DDL_COLUMNS,
    PC_DDL_EVENTS,
    PC_DDL_READY,
    PC_DDL_WAKE,
    PC_DDL_TURN,
    PC_DDL_QUEUE,
    PC_DDL_DROP,
    PC_DDL_LEAVE,
    PC_DDL_FORCE,
    PC_DDL_FINISH,
    PC_DDL_CLAIM,
    PC_DDL_REGRANT,
    PC_DDL_CONVERT,
    PC_DDL_COUNT
};
_Static_assert(PC_DDL_COUNT == PG_CONV_DDL, "PG_CONV_DDL counts enum pg_conv_ddl");
extern const char *const tl__pg_conv_sql[PG_CONV_SQL];
/* The templates ("{s}" the schema); NULL for those derived from a _v6 function. */
extern const char *const tl__pg_conv_ddl[PG_CONV_DDL];
/* Template `i` of tl__pg_conv_ddl, derived if need be (allocated; TL_ENOMEM, or TL_ESTORE if
 * the _v6 text it is derived from no longer fits the derivation). */
tl_status tl__pg_conv_template(size_t i, char **out);
/* The schema check's part for them ("AND ..."), for schema `sc`; false if it did not fit. */
bool tl__pg_conv_check(char *buf, size_t size, const char *sc);
tl_status tl__pg_convert(struct tl_store *s, const struct tl_record *held,
                         const struct tl_claim *req, struct tl_claim_result *out);
tl_status tl__pg_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                         size_t *count);

#endif
