/*
 * redis_int.h -- what the Redis store's files share (redis.c: connections, the line, history,
 * wake-ups; redis_holders.c: claim, renew, release, inspect and list of a key's holders;
 * redis_line.c: leave, wait_turn, waiters; redis_next.c: claim-next and done markers;
 * redis_convert.c: upgrades and downgrades). Internal to the store; nothing else includes it.
 */
#ifndef TL_STORES_REDIS_INT_H
#define TL_STORES_REDIS_INT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "redis.h"
#include "store.h"
#include "tl.h"

#define PREFIX_MAX    128
#define RKEY_SIZE     (PREFIX_MAX + 16 + TL_KEY_MAX + 1) /* prefix + "released:" + key */
#define WAITER_ID_MAX 64                                 /* see tl__redis_waiter_id_ok() */

/* The scripts, loaded on every new command connection (redis.c's table holds their text). */
enum script_id {
    SC_CLAIM,
    SC_RENEW,
    SC_RELEASE,
    SC_INSPECT,
    SC_READ_MANY,
    SC_FORCE_RELEASE,
    SC_LEAVE,
    SC_WAITERS,
    SC_CLAIM_NEXT,
    SC_FINISH,
    SC_REOPEN,
    SC_HOLDERS,
    SC_CONVERT,     /* version 5: redis_convert.c */
    SC_WAITERS_ALL, /* the wait-for graph: redis_line.c */
    SC_COUNT
};

/* A growable buffer of RESP-encoded commands. */
struct buf {
    char *p;
    size_t len, cap;
};

struct redis_store {
    struct tl_store base; /* must be first */

    /* From the URL. */
    char *host;
    int port;
    int db;
    char *user;     /* NULL: the default user */
    char *password; /* NULL: no AUTH */
    char *prefix;
    uint32_t timeout_ms;
    uint32_t safety_ttl_ms;
    uint32_t history_max;
    char where[TL_KEY_MAX + 32]; /* "HOST:PORT/DB" for messages: never the password */

    redisContext *ctx; /* commands; NULL when disconnected */
    redisContext *sub; /* wake-ups (SUBSCRIBE); NULL until the first wait */
    bool connected_once;
    char sha[SC_COUNT][41];
    struct buf out;
    int64_t deadline; /* real monotonic ms by which the current call must end */
    int64_t call_ms;  /* the current call's time limit, for messages */

    bool blpop_whole_seconds; /* the server takes BLPOP timeouts in whole seconds (before 6.0) */
    /* no_resend: exchange() must not send the commands again on a new connection when the
     * first one died (the caller resends itself, saying so). dropped: the last exchange()
     * failed because the connection died after the commands were written (they may have run). */
    bool no_resend;
    bool dropped;
    bool next_steal; /* the last claim-next stole stale tasks: wait_any waits for staleness too */
    uint64_t nonce_seed;
    uint64_t nonce_seq;
    struct tl_redis_stats stats;
};
_Static_assert(offsetof(struct redis_store, base) == 0, "base must be first");

/* How an exchange with the server failed. */
enum io_fail {
    IO_OK = 0,
    IO_DROPPED, /* the connection is gone (closed, reset, refused): a new one may help */
    IO_TIMEOUT, /* no answer in time */
    IO_PROTOCOL /* the server answered something that is not RESP */
};

/* Concatenates a, b and c into out (size bytes), cutting at the end. These run on every call,
 * so they copy rather than format: snprintf was the largest client cost after the syscalls. */
static inline void cat3(char *out, size_t size, const char *a, const char *b, const char *c)
{
    const char *parts[] = {a, b, c};
    size_t n = 0;

    for (int i = 0; i < 3; i++) {
        size_t l = parts[i] ? strlen(parts[i]) : 0;
        if (l > size - 1 - n)
            l = size - 1 - n;
        if (l > 0)
            memcpy(out + n, parts[i], l);
        n += l;
    }
    out[n] = '\0';
}

/* Writes v in decimal and a NUL; returns the number of digits. */
static inline size_t u64_text(uint64_t v, char out[24])
{
    char tmp[24];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* Element i of array `a` if it is a bulk or status string. */
static inline const redisReply *el_str(const redisReply *a, size_t i)
{
    if (a == NULL || a->type != REDIS_REPLY_ARRAY || i >= a->elements)
        return NULL;
    const redisReply *e = a->element[i];
    if (e == NULL || (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS) ||
        e->str == NULL)
        return NULL;
    return e;
}

static inline bool el_int(const redisReply *a, size_t i, long long *v)
{
    if (a == NULL || a->type != REDIS_REPLY_ARRAY || i >= a->elements)
        return false;
    const redisReply *e = a->element[i];
    if (e == NULL || e->type != REDIS_REPLY_INTEGER)
        return false;
    *v = e->integer;
    return true;
}

static inline bool el_is(const redisReply *a, size_t i, const char *text)
{
    const redisReply *e = el_str(a, i);

    return e != NULL && e->len == strlen(text) && memcmp(e->str, text, e->len) == 0;
}

/* A bulk string that is text: no NUL inside. */
static inline bool is_text(const redisReply *e)
{
    return e != NULL && memchr(e->str, '\0', e->len) == NULL;
}

/* redis.c: the machinery the operations share (see there). */
void tl__redis_make_key(const struct redis_store *rs, char out[RKEY_SIZE], const char *kind,
                        const char *key);
tl_status tl__redis_unexpected(struct redis_store *rs, const char *what, const redisReply *r);
bool tl__redis_buf_cmd(struct buf *b, int argc, const char *const *argv, const size_t *len);
enum io_fail tl__redis_conn_send(redisContext *c, const struct buf *b, int64_t until, char *why,
                                 size_t whysize);
enum io_fail tl__redis_read_reply(redisContext *c, int64_t until, redisReply **out, char *why,
                                  size_t whysize);
void tl__redis_free_replies(redisReply **r, size_t n);
void tl__redis_begin_call(struct redis_store *rs, uint32_t cap_ms);
tl_status tl__redis_connect_once(struct redis_store *rs, redisContext **out, bool load_scripts,
                                 bool *retry);
void tl__redis_drop_conn(redisContext **c);
tl_status tl__redis_exchange(struct redis_store *rs, size_t n, redisReply **r, const char *what);
tl_status tl__redis_exchange1(struct redis_store *rs, redisReply **r, const char *what);
tl_status tl__redis_error_reply(struct redis_store *rs, const char *what, const redisReply *r);
tl_status tl__redis_eval(struct redis_store *rs, enum script_id id, int nkeys, int argc,
                         const char *const *argv, const size_t *len, redisReply **out,
                         const char *what);
tl_status tl__redis_parse_record(struct redis_store *rs, const redisReply *a, size_t off,
                                 const char *key, struct tl_record *rec, const char *what);
void tl__redis_new_nonce(struct redis_store *rs, char out[40]);
bool tl__redis_is_push(const redisReply *r, const char *kind, const char *chan);
char *tl__redis_scan_pattern(const struct redis_store *rs, const char *kind);
void tl__redis_wake_prefix(const struct redis_store *rs, char out[RKEY_SIZE], const char *key);
bool tl__redis_waiter_id_ok(const char *id);
tl_status tl__redis_bad_waiter_id(struct redis_store *rs, const char *what);
tl_status tl__redis_ensure_conn(struct redis_store *rs);

/* redis_line.c: the line's operations (version 3). */
tl_status tl__redis_leave(struct tl_store *s, const char *key, const char *waiter_id);
tl_status tl__redis_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                              uint32_t timeout_ms, bool *woken);
tl_status tl__redis_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                            size_t *count);

/* redis_holders.c: the operations on a key's holders (shared ones: version 5). */
tl_status tl__redis_claim(struct tl_store *s, const struct tl_claim *req,
                          struct tl_claim_result *out);
tl_status tl__redis_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                          int64_t *heartbeat_at_ms);
tl_status tl__redis_extend(struct tl_store *s, const struct tl_record *held,
                           uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms);
tl_status tl__redis_release(struct tl_store *s, const struct tl_record *held, const char *summary);
tl_status tl__redis_force_release(struct tl_store *s, const struct tl_force_release *req,
                                  struct tl_record *former, bool *found);
tl_status tl__redis_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                            bool *found);
tl_status tl__redis_list(struct tl_store *s, struct tl_record ***out, size_t *count);
tl_status tl__redis_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                            size_t *count);
tl_status tl__redis_parse_holder(struct redis_store *rs, const redisReply *a, size_t off,
                                 const char *key, struct tl_record *rec, const char *what);

/* redis_convert.c: an upgrade or a downgrade of one holder (version 5). */
tl_status tl__redis_convert(struct tl_store *s, const struct tl_record *held,
                            const struct tl_claim *req, struct tl_claim_result *out);

/* redis_next.c: the version 4 operations. */
tl_status tl__redis_claim_next(struct tl_store *s, const struct tl_claim *req,
                               const struct tl_candidates *c, struct tl_claim_result *out,
                               size_t *won, struct tl_next_tally *tally);
tl_status tl__redis_finish(struct tl_store *s, const struct tl_finish *f,
                           struct tl_finish_result *out);
tl_status tl__redis_reopen(struct tl_store *s, const char *key, const char *worker_id,
                           const char *node_id, bool *was_done);
tl_status tl__redis_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                              size_t *count);
tl_status tl__redis_wait_any(struct tl_store *s, const struct tl_candidates *c,
                             uint32_t timeout_ms);

#endif /* TL_STORES_REDIS_INT_H */
