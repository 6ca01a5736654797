/*
 * redis.c -- the Redis store: redis://[USER:PASSWORD@]HOST[:PORT][/DB][?PARAMS].
 *
 * Claim, renew, release and inspect are each one Lua script (redis_scripts.h and
 * redis_holders_scripts.h; the operations themselves are in redis_holders.c), loaded with
 * SCRIPT LOAD when a connection is made and run with EVALSHA (loaded again on NOSCRIPT), so
 * each is atomic and takes one round trip. Staleness is judged by the server's clock (TIME
 * inside the scripts), never by ours.
 *
 * Keys, under a prefix (default "tasklock:"):
 *   PREFIX lock:KEY      hash: the record, while the lock is held (stale ones included); held
 *                        shared, a field per holder besides (redis_holders_scripts.h)
 *   PREFIX token:KEY     string: the last token issued for KEY; survives release
 *   PREFIX history       stream: the audit trail, capped (XADD MAXLEN ~ history_max)
 *   PREFIX released:KEY  pub/sub channel: the release script publishes on it (for waiters
 *                        outside the line: managers with no_line, or older ones)
 *   PREFIX line:KEY      sorted set: the line's waiter ids, scored (1000 - priority) * 2^40 + seq
 *   PREFIX waiters:KEY   hash: waiter id -> its fields (seq, priority, since, heartbeat, timeout,
 *                        worker, node); "m:" waiter id -> slots for a shared claim; "g:" waiter
 *                        id -> its holding text; "u:" waiter id -> the token an upgrader
 *                        converts (redis_convert_scripts.h)
 *   PREFIX lines         set: the KEYs whose line may have waiters (the wait-for graph)
 *   PREFIX lineseq:KEY   string: the line's seq counter
 *   PREFIX wake:KEY:ID   list: a wake-up for waiter ID (one element at most; expires a minute
 *                        after the waiter's timeout)
 *   PREFIX done:KEY      hash: the task's done marker, no TTL (claim-next and the done markers
 *                        are in redis_next.c)
 *
 * The line (DESIGN.md section 7): claim, release, force_release and leave are each one script
 * that reads the whole line, judges each waiter live or dead by the server's clock, deletes the
 * dead ones, and, when the head changed (a release, a leave of the head, a dead head deleted, a
 * reader's win) and the holders left would admit the head's claim, pushes a wake-up to the
 * head's list only. wait_turn is BLPOP
 * on that list, on the command connection, with a server timeout a little shorter than the
 * wait so that a quiet wait ends with an answer; a wait the server did not end in time drops
 * the connection. A waiter's wake-up is deleted when it wins, leaves or loses a claim (the
 * claim answered it). waiters and inspect read only (waiters of every key, the wait-for graph,
 * also drops the names of lines that are gone from PREFIX lines); a claim costs O(waiters of the
 * key). Conversions (upgrades, downgrades) are one script each: redis_convert.c.
 *
 * Fencing tokens are max(last token + 1, server time in microseconds). The counter alone would
 * start again from 1 after a restart without persistence (or a failover to a replica that had
 * not seen the last claims) and hand out tokens that earlier holders already used; the time
 * floor keeps them growing as long as the server clock does not step back by more than the
 * outage lasted. The counter still matters: it keeps tokens growing when the clock does step
 * back, and it tells release that our token was the last one (release is safe to retry).
 *
 * TTLs: nothing we write lives forever. A record expires safety_ttl (default 24 h) after its
 * lock went stale (PEXPIRE safety_ttl + lock timeout, refreshed by every renew): until then a
 * stale lock stays held until it is stolen, forced or released, as the contract says. The
 * counter gets the same TTL while held, and safety_ttl after release; once it is gone the time
 * floor alone keeps tokens growing, and a release retried that late answers "not owner".
 *
 * Connections: one per instance for commands, plus one for SUBSCRIBE (wake-ups), made on the
 * first wait. Commands are written with send(MSG_NOSIGNAL) by this file (never by hiredis, whose
 * write(2) would raise SIGPIPE on a closed socket) and replies read with hiredis's reader after
 * poll(2), so that the call's deadline bounds every connect, write and read: the store's timeout,
 * the caller's deadline (a renew's is its lock's loss deadline), whichever is first. A
 * connection that fails is dropped; the next call makes a new one, retrying with backoff within
 * the call's time. A command whose connection turns out to be dead is sent once
 * more on a new connection: every command here is safe to repeat (a repeated claim recognises
 * its own nonce and answers as the first one did).
 */
#include "redis.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "redis_convert_scripts.h"
#include "redis_holders_scripts.h"
#include "redis_int.h"
#include "redis_next_scripts.h"
#include "redis_scripts.h"
#include "store.h"
#include "tl.h"

#define DEFAULT_HOST             "127.0.0.1"
#define DEFAULT_PORT             6379
#define DEFAULT_PREFIX           "tasklock:"
#define DEFAULT_TIMEOUT_MS       5000u
#define DEFAULT_SAFETY_TTL_MS    (24u * 3600 * 1000)
#define DEFAULT_HISTORY_MAX      10000u
#define HISTORY_MAX_LIMIT        10000000u
#define HISTORY_BATCH            1000
#define RECONNECT_FIRST_PAUSE_MS 20
#define RECONNECT_MAX_PAUSE_MS   500

#define SCRIPT_PARTS 8

/* Each script's text is its parts joined (NULL ends the list early). */
static const struct {
    const char *name;
    const char *parts[SCRIPT_PARTS];
} scripts[SC_COUNT] = {
    [SC_CLAIM] = {"claim",
                  {lua_prelude, lua_line, lua_holders, lua_holders2, lua_graph, script_claim,
                   script_claim_busy, script_claim_win}},
    [SC_RENEW] = {"renew", {lua_prelude, lua_line, lua_holders, lua_holders2, script_renew}},
    [SC_RELEASE] = {"release", {lua_prelude, lua_line, lua_holders, lua_holders2, script_release}},
    [SC_INSPECT] = {"inspect", {lua_prelude, lua_line, lua_holders, lua_holders2, script_inspect}},
    [SC_READ_MANY] = {"read_many",
                      {lua_prelude, lua_line, lua_holders, lua_holders2, script_read_many}},
    [SC_FORCE_RELEASE] = {"force_release",
                          {lua_prelude, lua_line, lua_holders, lua_holders2, script_force_release}},
    [SC_LEAVE] = {"leave",
                  {lua_prelude, lua_line, lua_holders, lua_holders2, lua_graph, script_leave}},
    [SC_WAITERS] = {"waiters", {lua_prelude, lua_line, lua_graph, script_waiters}},
    [SC_CLAIM_NEXT] = {"claim_next",
                       {lua_prelude, lua_line, lua_holders, lua_holders2, lua_next, lua_next_one,
                        lua_next_walk, script_claim_next}},
    [SC_FINISH] = {"finish",
                   {lua_prelude, lua_line, lua_holders, lua_holders2, lua_next, lua_next_one,
                    lua_next_walk, script_finish}},
    [SC_REOPEN] = {"reopen", {lua_prelude, script_reopen}},
    [SC_HOLDERS] = {"holders", {lua_prelude, lua_line, lua_holders, lua_holders2, script_holders}},
    [SC_CONVERT] = {"convert",
                    {lua_prelude, lua_line, lua_holders, lua_holders2, lua_graph, script_convert,
                     script_convert_win}},
    [SC_WAITERS_ALL] = {"waiters_all", {lua_prelude, lua_line, lua_graph, script_waiters_all}},
};

/* ---- small helpers ---- */

static int64_t mono_ms(void)
{
    return tl__real_mono_ms();
}

static struct timeval tv_of(uint32_t ms)
{
    if (ms == 0)
        ms = 1;
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000};
}

static void error_text(int err, char *buf, size_t size)
{
    if (strerror_r(err, buf, size) != 0)
        (void)snprintf(buf, size, "error %d", err);
}

/* Overwrites a secret before freeing it. */
static void free_secret(char *s)
{
    if (s == NULL)
        return;
    for (volatile char *p = s; *p != '\0'; p++)
        *p = '\0';
    tl__free(s);
}

void tl__redis_make_key(const struct redis_store *rs, char out[RKEY_SIZE], const char *kind,
                        const char *key)
{
    cat3(out, RKEY_SIZE, rs->prefix, kind, key);
}

/* Describes a reply for "unexpected reply" messages. */
static void describe_reply(const redisReply *r, char *buf, size_t size)
{
    if (r == NULL) {
        (void)snprintf(buf, size, "no reply");
        return;
    }
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR: {
        char text[41];
        size_t n = r->str == NULL ? 0 : r->len > 40 ? 40 : r->len;
        for (size_t i = 0; i < n; i++) { /* a confused server may send anything */
            unsigned char c = (unsigned char)r->str[i];
            text[i] = '?';
            if (c >= 0x20 && c < 0x7f)
                text[i] = (char)c;
        }
        text[n] = '\0';
        (void)snprintf(buf, size, "%s \"%s%s\"",
                       r->type == REDIS_REPLY_STRING   ? "string"
                       : r->type == REDIS_REPLY_STATUS ? "status"
                                                       : "error",
                       text, r->len > 40 ? "..." : "");
        break;
    }
    case REDIS_REPLY_INTEGER: (void)snprintf(buf, size, "integer %lld", r->integer); break;
    case REDIS_REPLY_NIL: (void)snprintf(buf, size, "nil"); break;
    case REDIS_REPLY_ARRAY: (void)snprintf(buf, size, "array of %zu", r->elements); break;
    default: (void)snprintf(buf, size, "reply type %d", r->type); break;
    }
}

tl_status tl__redis_unexpected(struct redis_store *rs, const char *what, const redisReply *r)
{
    char desc[80];

    describe_reply(r, desc, sizeof(desc));
    return tl__store_fail(&rs->base, TL_ESTORE,
                          "redis %s: %s: unexpected reply from the server (%s); is this a Redis "
                          "server (5.0 or later)?",
                          rs->where, what, desc);
}

/* ---- RESP encoding ---- */

static bool buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return true;

    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    char *p = tl__realloc(b->p, cap);
    if (p == NULL)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static bool buf_put(struct buf *b, const char *p, size_t n)
{
    if (n == 0)
        return true; /* also tells the analyzer that an empty buffer gets room below */
    if (!buf_reserve(b, n))
        return false;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

/* Appends a RESP header: `kind` ('*' or '$'), the number, CRLF. */
static bool buf_head(struct buf *b, char kind, size_t v)
{
    char head[32];

    head[0] = kind;
    size_t n = 1 + u64_text(v, head + 1);
    head[n++] = '\r';
    head[n++] = '\n';
    return buf_put(b, head, n);
}

static bool buf_arg(struct buf *b, const char *p, size_t n)
{
    return buf_head(b, '$', n) && buf_put(b, p, n) && buf_put(b, "\r\n", 2);
}

/* Appends one command. `len` may be NULL: then every argument is a C string. */
bool tl__redis_buf_cmd(struct buf *b, int argc, const char *const *argv, const size_t *len)
{
    if (!buf_head(b, '*', (size_t)argc))
        return false;
    for (int i = 0; i < argc; i++) {
        if (!buf_arg(b, argv[i], len ? len[i] : strlen(argv[i])))
            return false;
    }
    return true;
}

/* Appends SCRIPT LOAD of script `id`, its parts joined. */
/*
 * Appends Lua `text` without each line's indentation and without its comment lines to `b` (or,
 * with `b` NULL, only counts); returns the length. Redis 7 closes the connection of a client
 * that has not authenticated yet when it sends a bulk string over 16 KiB, and the scripts are
 * loaded in the same round trip as AUTH: a refused AUTH must come back as its error, not as a
 * reset connection, so each script must stay below that (the largest, finish and claim, are
 * about 16 KiB as written and 13 KiB compacted). Our Lua has no string that spans lines.
 */
static size_t put_compact(struct buf *b, const char *text, bool *ok)
{
    size_t n = 0;

    for (const char *p = text; *p != '\0';) {
        while (*p == ' ')
            p++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        if (!(len >= 2 && p[0] == '-' && p[1] == '-')) {
            if (b != NULL && *ok)
                *ok = buf_put(b, p, len);
            n += len;
        }
        p += len;
    }
    return n;
}

static bool buf_script_load(struct buf *b, enum script_id id)
{
    size_t total = 0;
    bool ok = true;

    for (int i = 0; i < SCRIPT_PARTS && scripts[id].parts[i] != NULL; i++)
        total += put_compact(NULL, scripts[id].parts[i], &ok);
    ok = buf_head(b, '*', 3) && buf_arg(b, "SCRIPT", 6) && buf_arg(b, "LOAD", 4) &&
         buf_head(b, '$', total);
    for (int i = 0; ok && i < SCRIPT_PARTS && scripts[id].parts[i] != NULL; i++)
        (void)put_compact(b, scripts[id].parts[i], &ok);
    return ok && buf_put(b, "\r\n", 2);
}

/* ---- talking to one connection ---- */

/* Waits until `fd` is ready for `events` or `until` (real monotonic ms) passes: 1 ready,
 * 0 time is up, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t until)
{
    for (;;) {
        int64_t left = until - mono_ms();
        struct pollfd p = {.fd = fd, .events = events};

        if (left <= 0)
            return 0;
        int rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc >= 0 || errno != EINTR)
            return rc > 0 ? 1 : rc;
    }
}

/* Writes all of `b` to the connection by `until` (real monotonic ms). */
enum io_fail tl__redis_conn_send(redisContext *c, const struct buf *b, int64_t until, char *why,
                                 size_t whysize)
{
    size_t off = 0;

    while (off < b->len) {
        ssize_t n = send(c->fd, b->p + off, b->len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            off += (size_t)n;
            continue;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            int w = wait_fd(c->fd, POLLOUT, until);
            if (w > 0)
                continue;
            if (w == 0) {
                (void)snprintf(why, whysize, "could not send in time");
                return IO_TIMEOUT;
            }
            err = errno;
        }
        error_text(err, why, whysize);
        return IO_DROPPED;
    }
    return IO_OK;
}

/*
 * Reads one reply by `until` (real monotonic ms). The deadline bounds the whole reply, not each
 * read(2): a socket timeout would restart with every byte that trickles in. On IO_OK, *out is
 * NULL if the time ran out first.
 */
enum io_fail tl__redis_read_reply(redisContext *c, int64_t until, redisReply **out, char *why,
                                  size_t whysize)
{
    *out = NULL;
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
            (void)snprintf(why, whysize, "%s", c->errstr);
            return IO_PROTOCOL;
        }
        if (reply != NULL) {
            *out = reply;
            return IO_OK;
        }
        int w = wait_fd(c->fd, POLLIN, until);
        if (w < 0) {
            error_text(errno, why, whysize);
            return IO_DROPPED;
        }
        if (w == 0)
            return IO_OK;
        if (redisBufferRead(c) != REDIS_OK) {
            if (c->err == REDIS_ERR_PROTOCOL || c->err == REDIS_ERR_OOM ||
                c->err == REDIS_ERR_OTHER) {
                (void)snprintf(why, whysize, "%s", c->errstr);
                return IO_PROTOCOL;
            }
            (void)snprintf(why, whysize, "%s",
                           c->err == REDIS_ERR_EOF ? "the server closed the connection"
                                                   : c->errstr);
            return IO_DROPPED;
        }
    }
}

/* Reads one reply by `until`; no reply in time is IO_TIMEOUT. */
static enum io_fail conn_read(redisContext *c, int64_t until, redisReply **out, char *why,
                              size_t whysize)
{
    enum io_fail f = tl__redis_read_reply(c, until, out, why, whysize);

    if (f == IO_OK && *out == NULL) {
        (void)snprintf(why, whysize, "no answer in time");
        return IO_TIMEOUT;
    }
    return f;
}

void tl__redis_free_replies(redisReply **r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        freeReplyObject(r[i]);
        r[i] = NULL;
    }
}

/* Sends `b` (n commands) and reads n replies, all by `until` (real monotonic ms). On failure
 * every r[i] is NULL. */
static enum io_fail conn_exchange(redisContext *c, const struct buf *b, size_t n, int64_t until,
                                  redisReply **r, char *why, size_t whysize)
{
    enum io_fail f = tl__redis_conn_send(c, b, until, why, whysize);

    for (size_t i = 0; i < n; i++)
        r[i] = NULL;
    for (size_t i = 0; f == IO_OK && i < n; i++)
        f = conn_read(c, until, &r[i], why, whysize);
    if (f != IO_OK)
        tl__redis_free_replies(r, n);
    return f;
}

/* ---- connecting ---- */

/* The time left in the current call, at least 1 ms. */
static uint32_t time_left(const struct redis_store *rs)
{
    int64_t left = rs->deadline - mono_ms();

    if (left < 1)
        return 1;
    return left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
}

/* Starts a call: it must end within the store's timeout, the core's deadline and `cap_ms`
 * (0: none). */
void tl__redis_begin_call(struct redis_store *rs, uint32_t cap_ms)
{
    int64_t now = mono_ms();
    int64_t limit = rs->timeout_ms;

    if (rs->base.deadline_mono_ms != 0) {
        int64_t left = rs->base.deadline_mono_ms - rs->base.clock->mono_ms(rs->base.clock->ud);
        if (left < limit)
            limit = left > 0 ? left : 1;
    }
    if (cap_ms != 0 && cap_ms < limit)
        limit = cap_ms;
    rs->deadline = now + limit;
    rs->call_ms = limit;
}

/* Why a setup reply failed, and whether trying again later may help (LOADING: the server is
 * still reading its data set after a restart). */
static tl_status setup_reply_fail(struct redis_store *rs, const char *step, const redisReply *r,
                                  bool *retry)
{
    if (r->type == REDIS_REPLY_ERROR) {
        const char *msg = r->str ? r->str : "";
        const char *hint = "";

        *retry = strncmp(msg, "LOADING", 7) == 0 || strncmp(msg, "BUSY", 4) == 0;
        if (strncmp(msg, "NOAUTH", 6) == 0)
            hint = rs->password ? "" : " (the store URL has no password: redis://:PASSWORD@HOST)";
        return tl__store_fail(&rs->base, TL_ESTORE, "redis %s: %s: %s%s", rs->where, step, msg,
                              hint);
    }
    *retry = false;
    return tl__redis_unexpected(rs, step, r);
}

/*
 * Makes one connection: connect, AUTH, SELECT and (for the command connection) SCRIPT LOAD, all
 * in one round trip after the connect. On failure `*retry` says whether trying again may help.
 */
tl_status tl__redis_connect_once(struct redis_store *rs, redisContext **out, bool load_scripts,
                                 bool *retry)
{
    char why[160];
    uint32_t left = time_left(rs);
    redisContext *c = redisConnectWithTimeout(rs->host, rs->port, tv_of(left));
    struct buf b = {0};
    redisReply *r[2 + SC_COUNT] = {0};
    size_t n = 0;
    tl_status st = TL_OK;

    *out = NULL;
    *retry = false;
    if (c == NULL)
        return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
    if (c->err) {
        bool timed_out = strstr(c->errstr, "timed out") != NULL;
        *retry = true;
        st = tl__store_fail(&rs->base, timed_out ? TL_ETIMEDOUT : TL_ESTORE,
                            "redis %s: cannot connect: %s", rs->where, c->errstr);
        goto out_free;
    }
    /* The receive timeout bounds every read of this connection; send(2) uses it too. */
    if (redisSetTimeout(c, tv_of(rs->timeout_ms)) != REDIS_OK) {
        st = tl__store_fail(&rs->base, TL_ESTORE, "redis %s: %s", rs->where, c->errstr);
        goto out_free;
    }
    (void)redisEnableKeepAlive(c);

    bool ok = true;
    if (rs->password != NULL) {
        const char *auth[] = {"AUTH", rs->user ? rs->user : rs->password, rs->password};
        ok = ok && tl__redis_buf_cmd(&b, rs->user ? 3 : 2, auth, NULL);
        n++;
    }
    if (rs->db != 0) {
        char db[24];
        (void)snprintf(db, sizeof(db), "%d", rs->db);
        const char *sel[] = {"SELECT", db};
        ok = ok && tl__redis_buf_cmd(&b, 2, sel, NULL);
        n++;
    }
    for (int i = 0; load_scripts && i < SC_COUNT; i++) {
        ok = ok && buf_script_load(&b, (enum script_id)i);
        n++;
    }
    if (!ok) {
        st = tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
        goto out_free;
    }
    if (n > 0) {
        enum io_fail f = conn_exchange(c, &b, n, rs->deadline, r, why, sizeof(why));
        if (f != IO_OK) {
            *retry = f != IO_PROTOCOL;
            st = tl__store_fail(&rs->base, f == IO_TIMEOUT ? TL_ETIMEDOUT : TL_ESTORE,
                                "redis %s: %s: %s", rs->where,
                                f == IO_PROTOCOL ? "the server does not speak RESP"
                                                 : "setting up the connection",
                                why);
            goto out_free;
        }
    }

    size_t i = 0;
    if (rs->password != NULL) {
        if (r[i]->type != REDIS_REPLY_STATUS) {
            st = setup_reply_fail(rs, "authentication failed", r[i], retry);
            goto out_free;
        }
        i++;
    }
    if (rs->db != 0) {
        if (r[i]->type != REDIS_REPLY_STATUS) {
            char step[48];
            (void)snprintf(step, sizeof(step), "cannot select database %d", rs->db);
            st = setup_reply_fail(rs, step, r[i], retry);
            goto out_free;
        }
        i++;
    }
    for (int s = 0; load_scripts && s < SC_COUNT; s++, i++) {
        if (r[i]->type != REDIS_REPLY_STRING || r[i]->len != 40) {
            char step[48];
            (void)snprintf(step, sizeof(step), "loading the %s script", scripts[s].name);
            st = setup_reply_fail(rs, step, r[i], retry);
            goto out_free;
        }
        memcpy(rs->sha[s], r[i]->str, 40);
        rs->sha[s][40] = '\0';
    }
    *out = c;
    c = NULL;

out_free:
    tl__redis_free_replies(r, n);
    tl__free(b.p);
    if (c != NULL)
        redisFree(c);
    return st;
}

void tl__redis_drop_conn(redisContext **c)
{
    if (*c != NULL)
        redisFree(*c);
    *c = NULL;
}

/*
 * Makes the command connection if there is none. The first connection of an instance is tried
 * once (a wrong URL should fail fast); after that, a lost connection is tried again with backoff
 * until the call's time is up.
 */
tl_status tl__redis_ensure_conn(struct redis_store *rs)
{
    uint32_t pause = RECONNECT_FIRST_PAUSE_MS;
    int64_t start = mono_ms();
    tl_status st;
    bool retry;

    if (rs->ctx != NULL)
        return TL_OK;
    for (int attempt = 1;; attempt++) {
        st = tl__redis_connect_once(rs, &rs->ctx, true, &retry);
        if (st == TL_OK) {
            if (rs->connected_once) {
                rs->stats.reconnects++;
                TL_LOG(rs->base.log, TL_LOG_INFO, "redis %s: reconnected (attempt %d)", rs->where,
                       attempt);
            }
            rs->connected_once = true;
            return TL_OK;
        }
        int64_t now = mono_ms();
        if (!retry || !rs->connected_once || now + pause >= rs->deadline) {
            if (rs->connected_once && retry) {
                char msg[TL_ERRMSG_SIZE];
                (void)snprintf(msg, sizeof(msg), "%s", rs->base.errmsg);
                st =
                    tl__store_fail(&rs->base, st,
                                   "%s (gave up reconnecting after %d attempt%s "
                                   "in %lld ms)",
                                   msg, attempt, attempt == 1 ? "" : "s", (long long)(now - start));
            }
            return st;
        }
        tl__real_sleep_ms(pause);
        pause = pause * 2 > RECONNECT_MAX_PAUSE_MS ? RECONNECT_MAX_PAUSE_MS : pause * 2;
    }
}

/*
 * Sends the n commands encoded in rs->out on the command connection and reads their n replies
 * (each may be an error reply). Connects first if needed. When the connection turns out to be
 * dead, makes a new one and sends the commands once more. On failure writes the message.
 */
tl_status tl__redis_exchange(struct redis_store *rs, size_t n, redisReply **r, const char *what)
{
    char why[160];

    rs->dropped = false;
    for (int attempt = 0;; attempt++) {
        tl_status st = tl__redis_ensure_conn(rs);
        if (st != TL_OK)
            return st;

        rs->stats.round_trips++;
        enum io_fail f = conn_exchange(rs->ctx, &rs->out, n, rs->deadline, r, why, sizeof(why));
        if (f == IO_OK)
            return TL_OK;
        tl__redis_drop_conn(&rs->ctx);
        rs->dropped = f == IO_DROPPED;
        if (f == IO_DROPPED && attempt == 0 && !rs->no_resend && mono_ms() < rs->deadline) {
            TL_LOG(rs->base.log, TL_LOG_INFO, "redis %s: %s: connection lost (%s); reconnecting",
                   rs->where, what, why);
            continue;
        }
        if (f == IO_TIMEOUT)
            return tl__store_fail(&rs->base, TL_ETIMEDOUT, "redis %s: %s: no answer within %lld ms",
                                  rs->where, what, (long long)rs->call_ms);
        if (f == IO_PROTOCOL)
            return tl__store_fail(&rs->base, TL_ESTORE,
                                  "redis %s: %s: the server's answer is not RESP: %s", rs->where,
                                  what, why);
        return tl__store_fail(&rs->base, TL_ESTORE, "redis %s: %s: connection lost: %s", rs->where,
                              what, why);
    }
}

/* tl__redis_exchange() of the one command in rs->out: on TL_OK, *r is its reply (never NULL). */
tl_status tl__redis_exchange1(struct redis_store *rs, redisReply **r, const char *what)
{
    *r = NULL;
    tl_status st = tl__redis_exchange(rs, 1, r, what);
    if (st != TL_OK || *r != NULL)
        return st;
    (void)tl__redis_unexpected(rs, what, NULL);
    return TL_ESTORE;
}

/* An error reply to one of our commands, as a message. TLBAD: garbage under our prefix. */
tl_status tl__redis_error_reply(struct redis_store *rs, const char *what, const redisReply *r)
{
    const char *msg = r->str ? r->str : "";

    if (strncmp(msg, "TLBAD ", 6) == 0)
        return tl__store_fail(&rs->base, TL_ESTORE,
                              "redis %s: %s: not a tasklock record: %s (delete that Redis key, "
                              "or force-acquire the lock)",
                              rs->where, what, msg + 6);
    return tl__store_fail(&rs->base, TL_ESTORE, "redis %s: %s: %s", rs->where, what, msg);
}

/*
 * Runs script `id` with argv = keys then args (`len` may be NULL for C strings) and returns its
 * reply, which is never an error reply. Loads the script again when the server has lost it.
 */
tl_status tl__redis_eval(struct redis_store *rs, enum script_id id, int nkeys, int argc,
                         const char *const *argv, const size_t *len, redisReply **out,
                         const char *what)
{
    char nk[24];
    size_t nklen = u64_text((uint64_t)nkeys, nk);
    tl_status st;

    *out = NULL;
    for (int attempt = 0;; attempt++) {
        bool ok = true;
        size_t n = 1;

        rs->out.len = 0;
        if (attempt > 0) {
            ok = buf_script_load(&rs->out, id);
            n = 2;
        }
        /* EVALSHA sha numkeys argv... as one command. */
        ok = ok && buf_head(&rs->out, '*', 3 + (size_t)argc) && buf_arg(&rs->out, "EVALSHA", 7) &&
             buf_arg(&rs->out, rs->sha[id], 40) && buf_arg(&rs->out, nk, nklen);
        for (int i = 0; ok && i < argc; i++)
            ok = buf_arg(&rs->out, argv[i], len ? len[i] : strlen(argv[i]));
        if (!ok)
            return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);

        redisReply *r[2] = {NULL, NULL};
        if ((st = tl__redis_exchange(rs, n, r, what)) != TL_OK)
            return st;
        if (r[0] == NULL || (n == 2 && r[1] == NULL)) { /* exchange() fills all on TL_OK */
            tl__redis_free_replies(r, n);
            return tl__redis_unexpected(rs, what, NULL);
        }
        if (n == 2) {
            bool loaded = r[0]->type == REDIS_REPLY_STRING && r[0]->len == 40 &&
                          memcmp(r[0]->str, rs->sha[id], 40) == 0;
            if (!loaded) {
                st = r[0]->type == REDIS_REPLY_ERROR
                         ? tl__redis_error_reply(rs, "loading a script", r[0])
                         : tl__redis_unexpected(rs, "loading a script", r[0]);
                tl__redis_free_replies(r, 2);
                return st;
            }
            rs->stats.script_reloads++;
            freeReplyObject(r[0]);
            r[0] = r[1];
        }
        if (r[0]->type == REDIS_REPLY_ERROR) {
            if (attempt == 0 && r[0]->str != NULL && strncmp(r[0]->str, "NOSCRIPT", 8) == 0) {
                freeReplyObject(r[0]);
                continue;
            }
            st = tl__redis_error_reply(rs, what, r[0]);
            freeReplyObject(r[0]);
            return st;
        }
        *out = r[0];
        return TL_OK;
    }
}

/* ---- records ---- */

/*
 * Fills `rec` from the 7 elements of `a` from `off` (worker, node, token, claimed_at,
 * heartbeat_at, lock_timeout_ms, task_info), checking each. `key` is copied.
 */
tl_status tl__redis_parse_record(struct redis_store *rs, const redisReply *a, size_t off,
                                 const char *key, struct tl_record *rec, const char *what)
{
    const redisReply *worker = el_str(a, off), *node = el_str(a, off + 1);
    const redisReply *task = el_str(a, off + 6);
    long long token, claimed, beat, timeout;
    char err[TL_ERRMSG_SIZE] = "";
    const char *bad = NULL;

    memset(rec, 0, sizeof(*rec));
    if (!is_text(worker) || tl__check_id(worker->str, TL_ID_MAX) != NULL)
        bad = "worker_id";
    else if (!is_text(node) || tl__check_id(node->str, TL_ID_MAX) != NULL)
        bad = "node_id";
    else if (!el_int(a, off + 2, &token) || token <= 0)
        bad = "token";
    else if (!el_int(a, off + 3, &claimed) || claimed < 0)
        bad = "claimed_at";
    else if (!el_int(a, off + 4, &beat) || beat < 0)
        bad = "heartbeat_at";
    else if (!el_int(a, off + 5, &timeout) || timeout < 0 ||
             timeout > (long long)TL_DURATION_MAX_MS)
        bad = "lock_timeout_ms";
    else if (!is_text(task))
        bad = "task_info";
    if (bad != NULL)
        return tl__store_fail(&rs->base, TL_ESTORE,
                              "redis %s: %s: the record of %s has a bad %s field (delete the "
                              "Redis key %slock:%s, or force-acquire the lock)",
                              rs->where, what, key, bad, rs->prefix, key);

    tl_status st = tl__task_info_normalize(task->str, &rec->info.task_info, err);
    if (st == TL_EINVAL)
        return tl__store_fail(&rs->base, TL_ESTORE,
                              "redis %s: %s: the record of %s has a bad task_info field: %s",
                              rs->where, what, key, err);
    rec->info.key = tl__strdup(key);
    rec->info.worker_id = tl__strdup(worker->str);
    rec->info.node_id = tl__strdup(node->str);
    rec->info.token = (uint64_t)token;
    rec->info.claimed_at_ms = claimed;
    rec->info.heartbeat_at_ms = beat;
    rec->info.lock_timeout_ms = (uint32_t)timeout;
    if (st != TL_OK || !rec->info.key || !rec->info.worker_id || !rec->info.node_id ||
        !rec->info.task_info) {
        tl__record_clear(rec);
        return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
    }
    return TL_OK;
}

static void hex64(uint64_t v, char out[16])
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 15];
        v >>= 4;
    }
}

/* A fresh claim nonce: unique per claim call, repeated only when that call resends. */
void tl__redis_new_nonce(struct redis_store *rs, char out[40])
{
    hex64(rs->nonce_seed, out);
    hex64(++rs->nonce_seq, out + 16);
    out[32] = '\0';
}

/* ---- the operations ---- */

/* The key prefix of the wake-up lists of `key`'s waiters: PREFIX wake:KEY: (then the id). */
void tl__redis_wake_prefix(const struct redis_store *rs, char out[RKEY_SIZE], const char *key)
{
    tl__redis_make_key(rs, out, "wake:", key);
    size_t n = strlen(out);
    if (n + 1 < RKEY_SIZE) {
        out[n] = ':';
        out[n + 1] = '\0';
    }
}

/* Whether `id` can name a waiter here: 1..64 letters, digits, '-' or '_' (the core's ids are 32
 * hex digits). No ':' keeps PREFIX wake:KEY:ID unambiguous; no newline keeps the fields apart. */
bool tl__redis_waiter_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;

    if (n == 0 || n > WAITER_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

tl_status tl__redis_bad_waiter_id(struct redis_store *rs, const char *what)
{
    return tl__store_fail(&rs->base, TL_EINVAL,
                          "redis %s: %s: bad waiter id (1 to %d letters, digits, - or _)",
                          rs->where, what, WAITER_ID_MAX);
}

/* SCAN's MATCH pattern for our keys of one kind ("lock:", "done:"): the prefix with glob
 * characters escaped, the kind, "*". */
char *tl__redis_scan_pattern(const struct redis_store *rs, const char *kind)
{
    size_t n = strlen(rs->prefix), k = strlen(kind);
    char *p = tl__malloc(2 * n + k + 2);

    if (p == NULL)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", rs->prefix[i]) != NULL)
            p[j++] = '\\';
        p[j++] = rs->prefix[i];
    }
    memcpy(p + j, kind, k + 1);
    p[j + k] = '*';
    p[j + k + 1] = '\0';
    return p;
}

/* The field `name` of a stream entry's field/value array, or NULL. */
static const redisReply *entry_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        if (el_is(fields, i, name))
            return is_text(el_str(fields, i + 1)) ? fields->element[i + 1] : NULL;
    }
    return NULL;
}

/* Parses one stream entry [id, [field, value, ...]]. *e is NULL when it is for another key. */
static tl_status parse_event(struct redis_store *rs, const redisReply *entry, const char *key,
                             struct tl_event **e)
{
    const redisReply *id = el_str(entry, 0);
    const redisReply *fields = entry && entry->elements == 2 ? entry->element[1] : NULL;
    const redisReply *at, *ev, *k, *worker, *node, *token, *detail;
    tl_event_kind kind;
    uint64_t at_v, token_v;

    *e = NULL;
    if (id == NULL || fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return tl__redis_unexpected(rs, "reading the history", entry);
    k = entry_field(fields, "key");
    if (k != NULL && key != NULL && strcmp(k->str, key) != 0)
        return TL_OK;
    at = entry_field(fields, "at");
    ev = entry_field(fields, "event");
    worker = entry_field(fields, "worker_id");
    node = entry_field(fields, "node_id");
    token = entry_field(fields, "token");
    detail = entry_field(fields, "detail");
    if (k == NULL || at == NULL || ev == NULL || worker == NULL || node == NULL || token == NULL ||
        !tl__parse_u64(at->str, &at_v) || at_v > INT64_MAX ||
        !tl__parse_u64(token->str, &token_v) || !tl__event_kind_from_name(ev->str, &kind))
        return tl__store_fail(&rs->base, TL_ESTORE,
                              "redis %s: reading the history: entry %.40s of %shistory is not a "
                              "tasklock event",
                              rs->where, id->str, rs->prefix);

    struct tl_event *ne = tl__event_new();
    if (ne != NULL) {
        ne->at_ms = (int64_t)at_v;
        ne->kind = kind;
        ne->token = token_v;
        ne->key = tl__strdup(k->str);
        ne->worker_id = tl__strdup(worker->str);
        ne->node_id = tl__strdup(node->str);
        ne->detail = detail && detail->len > 0 ? tl__strdup(detail->str) : NULL;
    }
    if (ne == NULL || !ne->key || !ne->worker_id || !ne->node_id ||
        (detail && detail->len > 0 && !ne->detail)) {
        tl__event_free(ne);
        return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
    }
    *e = ne;
    return TL_OK;
}

/* The stream ID just before `id` ("MS-SEQ"), for paging backwards without exclusive ranges
 * (Redis 5 has none). False when `id` is the first possible ID. */
static bool id_before(const char *id, char out[48])
{
    const char *dash = strchr(id, '-');
    char ms_text[24];
    uint64_t ms, seq;

    if (dash == NULL || (size_t)(dash - id) >= sizeof(ms_text))
        return false;
    memcpy(ms_text, id, (size_t)(dash - id));
    ms_text[dash - id] = '\0';
    if (!tl__parse_u64(ms_text, &ms) || !tl__parse_u64(dash + 1, &seq))
        return false;
    if (seq > 0)
        (void)snprintf(out, 48, "%llu-%llu", (unsigned long long)ms, (unsigned long long)seq - 1);
    else if (ms > 0)
        (void)snprintf(out, 48, "%llu-%llu", (unsigned long long)ms - 1,
                       (unsigned long long)UINT64_MAX);
    else
        return false;
    return true;
}

static tl_status redis_history(struct tl_store *s, const char *key, size_t limit,
                               struct tl_event ***out, size_t *count)
{
    struct redis_store *rs = (struct redis_store *)s;
    struct tl_event **arr = NULL;
    size_t n = 0, cap = 0;
    char hk[RKEY_SIZE], end[48] = "+", batch[16];
    tl_status st = TL_OK;
    bool more = true;

    if (rs->history_max == 0)
        return tl__store_fail(s, TL_ENOTSUP, "redis %s: the history is off (history_max=0)",
                              rs->where);
    tl__redis_make_key(rs, hk, "history", NULL);
    size_t want = key != NULL || limit > HISTORY_BATCH ? HISTORY_BATCH : limit;
    (void)snprintf(batch, sizeof(batch), "%zu", want);
    while (st == TL_OK && more && n < limit) {
        const char *argv[] = {"XREVRANGE", hk, end, "-", "COUNT", batch};
        redisReply *r = NULL;

        tl__redis_begin_call(rs, 0);
        rs->out.len = 0;
        if (!tl__redis_buf_cmd(&rs->out, 6, argv, NULL)) {
            st = tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
            break;
        }
        if ((st = tl__redis_exchange1(rs, &r, "reading the history")) != TL_OK)
            break;
        if (r->type == REDIS_REPLY_ERROR) {
            st = tl__redis_error_reply(rs, "reading the history", r);
        } else if (r->type != REDIS_REPLY_ARRAY) {
            st = tl__redis_unexpected(rs, "reading the history", r);
        } else {
            for (size_t i = 0; i < r->elements && st == TL_OK && n < limit; i++) {
                struct tl_event *e = NULL;
                st = parse_event(rs, r->element[i], key, &e);
                if (st == TL_OK && e != NULL && tl__event_array_push(&arr, &n, &cap, e) != TL_OK) {
                    tl__event_free(e);
                    st = tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
                }
            }
            const redisReply *last =
                r->elements > 0 ? el_str(r->element[r->elements - 1], 0) : NULL;
            more = st == TL_OK && r->elements == want && last != NULL && id_before(last->str, end);
        }
        freeReplyObject(r);
    }
    if (st != TL_OK) {
        tl_event_array_free(arr, n);
        return st;
    }
    tl__event_array_reverse(arr, n); /* newest first from the stream; oldest first out */
    *out = arr;
    *count = n;
    return TL_OK;
}

/* ---- wake-ups ---- */

/* Whether `r` is a pub/sub message or confirmation of `kind` for channel `chan`. */
bool tl__redis_is_push(const redisReply *r, const char *kind, const char *chan)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 && el_is(r, 0, kind) &&
           el_is(r, 1, chan);
}

static tl_status sub_fail(struct redis_store *rs, const char *why)
{
    tl__redis_drop_conn(&rs->sub);
    rs->stats.wait_failures++;
    return tl__store_fail(&rs->base, TL_ESTORE, "redis %s: waiting for a release: %s", rs->where,
                          why);
}

static tl_status redis_wait(struct tl_store *s, const char *key, uint32_t timeout_ms)
{
    struct redis_store *rs = (struct redis_store *)s;
    char chan[RKEY_SIZE], rk[RKEY_SIZE], why[160];
    int64_t until = mono_ms() + timeout_ms;
    redisReply *r = NULL;
    tl_status st;
    bool retry;

    rs->stats.waits++;
    tl__redis_begin_call(rs, timeout_ms);
    tl__redis_make_key(rs, chan, "released:", key);
    tl__redis_make_key(rs, rk, "lock:", key);
    if (rs->sub == NULL) {
        st = tl__redis_connect_once(rs, &rs->sub, false, &retry);
        if (st != TL_OK) {
            rs->stats.wait_failures++;
            return st;
        }
    }

    /* Subscribe, and read up to its confirmation: whatever comes first is left over from the
     * last wait (its unsubscribe, a late message) and means nothing now. */
    struct buf b = {0};
    const char *argv[] = {"SUBSCRIBE", chan};
    if (!tl__redis_buf_cmd(&b, 2, argv, NULL)) {
        tl__free(b.p);
        rs->stats.wait_failures++;
        return tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
    }
    enum io_fail f = tl__redis_conn_send(rs->sub, &b, rs->deadline, why, sizeof(why));
    tl__free(b.p);
    if (f != IO_OK)
        return sub_fail(rs, why);
    for (;;) {
        f = tl__redis_read_reply(rs->sub, rs->deadline, &r, why, sizeof(why));
        if (f != IO_OK)
            return sub_fail(rs, why);
        if (r == NULL)
            return sub_fail(rs, "no answer to SUBSCRIBE in time");
        if (r->type == REDIS_REPLY_ERROR) {
            (void)snprintf(why, sizeof(why), "SUBSCRIBE: %s", r->str ? r->str : "");
            freeReplyObject(r);
            return sub_fail(rs, why);
        }
        bool confirmed = tl__redis_is_push(r, "subscribe", chan);
        freeReplyObject(r);
        if (confirmed)
            break;
    }

    /* Subscribed. A release between our failed claim and now published to no one: look once
     * more, on the command connection, before blocking. */
    const char *ex[] = {"EXISTS", rk};
    rs->out.len = 0;
    r = NULL;
    if (!tl__redis_buf_cmd(&rs->out, 2, ex, NULL)) {
        tl__redis_drop_conn(&rs->sub);
        rs->stats.wait_failures++;
        return tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
    }
    st = tl__redis_exchange1(rs, &r, "waiting for a release");
    if (st != TL_OK) {
        tl__redis_drop_conn(&rs->sub);
        rs->stats.wait_failures++;
        return st;
    }
    bool exists = r->type == REDIS_REPLY_INTEGER && r->integer != 0;
    bool sane = r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    r = NULL;
    if (!sane)
        return sub_fail(rs, "unexpected reply to EXISTS");

    if (!exists) {
        rs->stats.woke_by_recheck++;
    } else {
        for (;;) {
            f = tl__redis_read_reply(rs->sub, until, &r, why, sizeof(why));
            if (f != IO_OK)
                return sub_fail(rs, why);
            if (r == NULL) {
                rs->stats.woke_by_timeout++;
                break;
            }
            bool released = tl__redis_is_push(r, "message", chan);
            freeReplyObject(r);
            if (released) {
                rs->stats.woke_by_message++;
                break;
            }
        }
    }

    /* Unsubscribe without waiting for the answer: the next wait skips it. */
    const char *un[] = {"UNSUBSCRIBE", chan};
    b = (struct buf){0};
    if (!tl__redis_buf_cmd(&b, 2, un, NULL) ||
        tl__redis_conn_send(rs->sub, &b, mono_ms() + rs->timeout_ms, why, sizeof(why)) != IO_OK)
        tl__redis_drop_conn(&rs->sub);
    tl__free(b.p);
    return TL_OK;
}

/* ---- opening ---- */

/* Percent-decodes `n` bytes of `s` into a new string; NULL on a bad escape, a NUL, or out of
 * memory (*oom then true). */
static char *decode(const char *s, size_t n, bool *oom)
{
    char *out = NULL;

    *oom = tl__percent_decode(s, n, &out) == TL_ENOMEM;
    return out;
}

static tl_status bad_url(struct redis_store *rs, const char *url, const char *why)
{
    char *shown = tl__redact_url(url);
    tl_status st = tl__store_fail(&rs->base, TL_EINVAL,
                                  "redis store URL \"%s\": %s (expected redis://[USER:PASSWORD@]"
                                  "HOST[:PORT][/DB][?prefix=P&safety_ttl=D&timeout=D&history_max="
                                  "N])",
                                  shown ? shown : "?", why);
    tl__free(shown);
    return st;
}

static tl_status parse_query(struct redis_store *rs, const char *url, const char *q)
{
    while (q != NULL && *q != '\0') {
        size_t n = strcspn(q, "&#");
        const char *eq = memchr(q, '=', n);
        char name[32], msg[160];
        bool oom = false;

        if (eq == NULL || (size_t)(eq - q) >= sizeof(name)) {
            (void)snprintf(msg, sizeof(msg), "bad parameter \"%.*s\"", (int)(n > 40 ? 40 : n), q);
            return bad_url(rs, url, msg);
        }
        memcpy(name, q, (size_t)(eq - q));
        name[eq - q] = '\0';
        char *value = decode(eq + 1, n - (size_t)(eq - q) - 1, &oom);
        if (value == NULL)
            return oom ? tl__store_fail(&rs->base, TL_ENOMEM, "out of memory")
                       : bad_url(rs, url, "bad %-escape in a parameter");

        uint32_t ms = 0;
        uint64_t v = 0;
        bool ok = true;
        if (strcmp(name, "prefix") == 0) {
            ok = value[0] != '\0' && strlen(value) <= PREFIX_MAX;
            if (ok) {
                tl__free(rs->prefix);
                rs->prefix = value;
                value = NULL;
            }
        } else if (strcmp(name, "timeout") == 0) {
            ok = tl_parse_duration(value, &ms) == TL_OK;
            rs->timeout_ms = ms;
        } else if (strcmp(name, "safety_ttl") == 0) {
            ok = tl_parse_duration(value, &ms) == TL_OK;
            rs->safety_ttl_ms = ms;
        } else if (strcmp(name, "history_max") == 0) {
            ok = tl__parse_u64(value, &v) && v <= HISTORY_MAX_LIMIT;
            rs->history_max = (uint32_t)v;
        } else {
            (void)snprintf(msg, sizeof(msg),
                           "unknown parameter \"%s\" (known: prefix, safety_ttl, timeout, "
                           "history_max)",
                           name);
            tl__free(value);
            return bad_url(rs, url, msg);
        }
        tl__free(value);
        if (!ok) {
            (void)snprintf(msg, sizeof(msg), "bad value of \"%s\"", name);
            return bad_url(rs, url, msg);
        }
        q += n;
        if (*q == '&')
            q++;
        else
            break; /* '#' ends the query */
    }
    return TL_OK;
}

static tl_status parse_url(struct redis_store *rs, const char *url)
{
    const char *p = url + strlen("redis://");
    bool oom = false;
    uint64_t v;

    if (strncmp(url, "redis://", 8) != 0)
        return bad_url(rs, url, "it must start with redis://");

    size_t alen = strcspn(p, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++) {
        if (p[i] == '@')
            at = p + i;
    }
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return bad_url(rs, url, "a user name needs a password (USER:PASSWORD@)");
        if (colon > p) {
            rs->user = decode(p, (size_t)(colon - p), &oom);
            if (rs->user == NULL)
                goto err_decode;
        }
        if (at > colon + 1) {
            rs->password = decode(colon + 1, (size_t)(at - colon - 1), &oom);
            if (rs->password == NULL)
                goto err_decode;
        }
        if (rs->user != NULL && rs->password == NULL)
            return bad_url(rs, url, "a user name needs a password (USER:PASSWORD@)");
        alen -= (size_t)(at + 1 - p);
        p = at + 1;
    }

    /* HOST[:PORT], HOST possibly an IPv6 address in brackets. */
    const char *host = p, *hend, *port = NULL;
    if (alen > 0 && *p == '[') {
        const char *close = memchr(p, ']', alen);
        if (close == NULL)
            return bad_url(rs, url, "unclosed [ in the host");
        host = p + 1;
        hend = close;
        if (close + 1 < p + alen) {
            if (close[1] != ':')
                return bad_url(rs, url, "junk after the host");
            port = close + 2;
        }
    } else {
        hend = memchr(p, ':', alen);
        if (hend != NULL)
            port = hend + 1;
        else
            hend = p + alen;
    }
    if (hend - host > TL_KEY_MAX)
        return bad_url(rs, url, "the host name is too long");
    rs->host = hend > host ? tl__strndup(host, (size_t)(hend - host)) : tl__strdup(DEFAULT_HOST);
    if (rs->host == NULL)
        return tl__store_fail(&rs->base, TL_ENOMEM, "out of memory");
    rs->port = DEFAULT_PORT;
    if (port != NULL) {
        char text[8];
        size_t plen = (size_t)(p + alen - port);
        if (plen == 0 || plen >= sizeof(text))
            return bad_url(rs, url, "bad port");
        memcpy(text, port, plen);
        text[plen] = '\0';
        if (!tl__parse_u64(text, &v) || v == 0 || v > 65535)
            return bad_url(rs, url, "bad port");
        rs->port = (int)v;
    }
    p += alen;

    /* /DB */
    if (*p == '/') {
        p++;
        size_t dlen = strcspn(p, "?#");
        char text[16];
        if (dlen > 0) {
            if (dlen >= sizeof(text))
                return bad_url(rs, url, "bad database number");
            memcpy(text, p, dlen);
            text[dlen] = '\0';
            if (!tl__parse_u64(text, &v) || v > INT_MAX)
                return bad_url(rs, url, "bad database number");
            rs->db = (int)v;
        }
        p += dlen;
    }
    if (*p == '?')
        return parse_query(rs, url, p + 1);
    return TL_OK;

err_decode:
    return oom ? tl__store_fail(&rs->base, TL_ENOMEM, "out of memory")
               : bad_url(rs, url, "bad %-escape in the user or password");
}

static uint64_t seed(const struct redis_store *rs)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
            v = 0;
        (void)close(fd);
    }
    /* Without /dev/urandom: time, process and address still differ between instances. */
    v ^= (uint64_t)tl__real_now_ms() * 0x9e3779b97f4a7c15ull;
    v ^= (uint64_t)getpid() << 32;
    v ^= (uint64_t)(uintptr_t)rs;
    return v;
}

static tl_status redis_open(struct tl_store *s, const char *url)
{
    struct redis_store *rs = (struct redis_store *)s;
    tl_status st;

    rs->timeout_ms = DEFAULT_TIMEOUT_MS;
    rs->safety_ttl_ms = DEFAULT_SAFETY_TTL_MS;
    rs->history_max = DEFAULT_HISTORY_MAX;
    rs->prefix = tl__strdup(DEFAULT_PREFIX);
    if (rs->prefix == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    if ((st = parse_url(rs, url)) != TL_OK)
        return st;
    (void)snprintf(rs->where, sizeof(rs->where), "%s%s%s:%d/%d", strchr(rs->host, ':') ? "[" : "",
                   rs->host, strchr(rs->host, ':') ? "]" : "", rs->port, rs->db);
    rs->nonce_seed = seed(rs);
    s->modes = true;     /* shared holders and semaphores: redis_holders.c */
    s->deadlocks = true; /* the wait-for graph: redis_convert_scripts.h */
    tl__redis_begin_call(rs, 0);
    return tl__redis_ensure_conn(rs);
}

static void redis_close(struct tl_store *s)
{
    struct redis_store *rs = (struct redis_store *)s;

    tl__redis_drop_conn(&rs->ctx);
    tl__redis_drop_conn(&rs->sub);
    tl__free(rs->host);
    tl__free(rs->user);
    free_secret(rs->password);
    tl__free(rs->prefix);
    tl__free(rs->out.p);
}

bool tl__redis_stats(const struct tl_store *s, struct tl_redis_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || s->ops != &tl__store_redis)
        return false;
    *out = ((const struct redis_store *)s)->stats;
    return true;
}

const struct tl_store_ops tl__store_redis = {
    .version = TL_STORE_OPS_VERSION,
    .scheme = "redis",
    .size = sizeof(struct redis_store),
    .open = redis_open,
    .close = redis_close,
    .claim = tl__redis_claim,
    .renew = tl__redis_renew,
    .release = tl__redis_release,
    .inspect = tl__redis_inspect,
    .list = tl__redis_list,
    .history = redis_history,
    .wait = redis_wait,
    .force_release = tl__redis_force_release,
    .leave = tl__redis_leave,
    .wait_turn = tl__redis_wait_turn,
    .waiters = tl__redis_waiters,
    .extend = tl__redis_extend,
    .claim_next = tl__redis_claim_next,
    .finish = tl__redis_finish,
    .reopen = tl__redis_reopen,
    .done_list = tl__redis_done_list,
    .wait_any = tl__redis_wait_any,
    .holders = tl__redis_holders,
    .convert = tl__redis_convert,
};
