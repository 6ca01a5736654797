/*
 * redis_line.c -- the Redis store's line operations (store.h version 3): leave, wait_turn and
 * waiters. A claim joins the line (redis_holders.c); the scripts are in redis_scripts.h.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"
#include "store.h"
#include "tl.h"

#define WKEY_SIZE     (RKEY_SIZE + WAITER_ID_MAX) /* prefix + "wake:" + key + ":" + id */
#define WAKE_GRACE_MS 100 /* how long past a wait's end a late BLPOP answer is awaited */

tl_status tl__redis_leave(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct redis_store *rs = (struct redis_store *)s;
    char rk[RKEY_SIZE], lk[RKEY_SIZE], wk[RKEY_SIZE], wp[RKEY_SIZE], chan[RKEY_SIZE];
    char gk[RKEY_SIZE], what[TL_KEY_MAX + 32];
    redisReply *r = NULL;
    tl_status st;

    cat3(what, sizeof(what), "leaving the line of ", key, NULL);
    if (!tl__redis_waiter_id_ok(waiter_id))
        return tl__redis_bad_waiter_id(rs, what);
    tl__redis_begin_call(rs, 0);
    tl__redis_make_key(rs, rk, "lock:", key);
    tl__redis_make_key(rs, lk, "line:", key);
    tl__redis_make_key(rs, wk, "waiters:", key);
    tl__redis_wake_prefix(rs, wp, key);
    tl__redis_make_key(rs, chan, "released:", key);
    tl__redis_make_key(rs, gk, "lines", NULL);
    const char *argv[] = {rk, lk, wk, gk, waiter_id, wp, chan, key};
    st = tl__redis_eval(rs, SC_LEAVE, 4, 8, argv, NULL, &r, what);
    if (st == TL_OK && !(el_is(r, 0, "ok") && r->elements == 1))
        st = tl__redis_unexpected(rs, what, r);
    freeReplyObject(r);
    return st;
}

/*
 * Pops the waiter's wake-up list with BLPOP on the command connection: the server's timeout
 * ends a little before ours, so a quiet wait ends with a nil reply and the connection stays
 * usable; only when even that answer is late is the connection dropped (the next call makes a
 * new one), since a blocked connection cannot be used for anything else.
 */
tl_status tl__redis_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                              uint32_t timeout_ms, bool *woken)
{
    struct redis_store *rs = (struct redis_store *)s;
    char wp[RKEY_SIZE], wkey[WKEY_SIZE], secs[32], what[TL_KEY_MAX + 32];
    redisReply *r = NULL;
    tl_status st;

    *woken = false;
    cat3(what, sizeof(what), "waiting in the line of ", key, NULL);
    if (!tl__redis_waiter_id_ok(waiter_id))
        return tl__redis_bad_waiter_id(rs, what);
    tl__redis_wake_prefix(rs, wp, key);
    (void)snprintf(wkey, sizeof(wkey), "%s%s", wp, waiter_id);

    /* The wait ends at the timeout or the core's deadline, whichever is first. */
    int64_t start = tl__real_mono_ms();
    int64_t left = timeout_ms;
    bool capped = false;
    if (s->deadline_mono_ms != 0) {
        int64_t dl = s->deadline_mono_ms - s->clock->mono_ms(s->clock->ud);
        if (dl < left) {
            left = dl;
            capped = true;
        }
    }
    if (left <= 0)
        return TL_OK;
    /* The server gives up first, by a margin that covers the round trip. */
    int64_t margin = left > 200 ? 20 : left / 10;
    int64_t server_ms = left - margin;
    if (server_ms < 1)
        server_ms = 1;
    if (rs->blpop_whole_seconds)
        (void)snprintf(secs, sizeof(secs), "%lld", (long long)((server_ms + 999) / 1000));
    else
        (void)snprintf(secs, sizeof(secs), "%lld.%03lld", (long long)(server_ms / 1000),
                       (long long)(server_ms % 1000));

    /* Connecting counts against the store's timeout as in every call; the wait itself does
     * not. */
    tl__redis_begin_call(rs, 0);
    st = tl__redis_ensure_conn(rs);
    if (st != TL_OK)
        return st;
    int64_t until = start + left + (capped ? 0 : WAKE_GRACE_MS);
    rs->deadline = until;
    rs->call_ms = until - start;

    const char *argv[] = {"BLPOP", wkey, secs};
    rs->out.len = 0;
    if (!tl__redis_buf_cmd(&rs->out, 3, argv, NULL))
        return tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
    st = tl__redis_exchange1(rs, &r, what);
    if (st == TL_ETIMEDOUT && tl__real_mono_ms() >= until) {
        /* No answer by the end of the wait: the connection (dropped by exchange) was still
         * blocked. Not a failure: nobody woke us. */
        return TL_OK;
    }
    if (st != TL_OK)
        return st;
    if (r->type == REDIS_REPLY_ERROR && !rs->blpop_whole_seconds && r->str != NULL &&
        strstr(r->str, "timeout") != NULL) {
        /* Redis before 6.0 takes whole seconds only: the next waits use them (and our own
         * deadline cuts them short). */
        rs->blpop_whole_seconds = true;
        freeReplyObject(r);
        return TL_OK;
    }
    if (r->type == REDIS_REPLY_ERROR)
        st = tl__redis_error_reply(rs, what, r);
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        *woken = true;
    else if (r->type != REDIS_REPLY_NIL)
        st = tl__redis_unexpected(rs, what, r);
    freeReplyObject(r);
    return st;
}

/* One waiter of a waiters script's reply: {key, id, worker, node, priority, seq, since,
 * heartbeat_at, timeout_ms, live, holding}. NULL: `e` is not one (*bad) or out of memory. */
static struct tl_waiter *parse_waiter(const redisReply *e, bool *bad)
{
    const redisReply *key = el_str(e, 0), *id = el_str(e, 1), *worker = el_str(e, 2);
    const redisReply *node = el_str(e, 3), *holding = el_str(e, 10);
    long long prio, seq, since, beat, timeout, live;

    *bad = e->type != REDIS_REPLY_ARRAY || e->elements != 11 || !is_text(key) || !is_text(id) ||
           !is_text(worker) || !is_text(node) || !is_text(holding) || !el_int(e, 4, &prio) ||
           !el_int(e, 5, &seq) || !el_int(e, 6, &since) || !el_int(e, 7, &beat) ||
           !el_int(e, 8, &timeout) || !el_int(e, 9, &live) || prio < TL_PRIORITY_MIN ||
           prio > TL_PRIORITY_UPGRADE || seq < 0 || timeout < 0 || timeout > UINT32_MAX;
    if (*bad)
        return NULL;
    struct tl_waiter *w = tl__waiter_new();
    if (w == NULL)
        return NULL;
    w->key = tl__strdup(key->str);
    w->waiter_id = tl__strdup(id->str);
    w->worker_id = tl__strdup(worker->str);
    w->node_id = tl__strdup(node->str);
    w->holding = tl__strdup(holding->str);
    w->priority = (int32_t)prio;
    w->seq = (uint64_t)seq;
    w->since_ms = since;
    w->heartbeat_at_ms = beat;
    w->timeout_ms = (uint32_t)timeout;
    w->dead = live == 0;
    if (!w->key || !w->waiter_id || !w->worker_id || !w->node_id || !w->holding) {
        tl__waiter_free(w);
        return NULL;
    }
    return w;
}

/* The line of `key`, or with key NULL every waiter of the store: the lines named in the set
 * PREFIX lines (redis_convert_scripts.h), one script either way. */
tl_status tl__redis_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                            size_t *count)
{
    struct redis_store *rs = (struct redis_store *)s;
    char lk[RKEY_SIZE], wk[RKEY_SIZE], what[TL_KEY_MAX + 32];
    struct tl_waiter **arr = NULL;
    size_t n = 0, cap = 0;
    redisReply *r = NULL;
    long long now;
    tl_status st;

    *out = NULL;
    *count = 0;
    tl__redis_begin_call(rs, 0);
    if (key != NULL) {
        tl__redis_make_key(rs, lk, "line:", key);
        tl__redis_make_key(rs, wk, "waiters:", key);
        cat3(what, sizeof(what), "reading the line of ", key, NULL);
        const char *argv[] = {lk, wk, key};
        st = tl__redis_eval(rs, SC_WAITERS, 2, 3, argv, NULL, &r, what);
    } else {
        tl__redis_make_key(rs, lk, "lines", NULL);
        cat3(what, sizeof(what), "reading every line", NULL, NULL);
        const char *argv[] = {lk, rs->prefix};
        st = tl__redis_eval(rs, SC_WAITERS_ALL, 1, 2, argv, NULL, &r, what);
    }
    if (st != TL_OK)
        return st;
    if (!el_int(r, 0, &now)) {
        st = tl__redis_unexpected(rs, what, r);
        goto out_free;
    }
    for (size_t i = 1; i < r->elements && st == TL_OK; i++) {
        bool bad;
        struct tl_waiter *w = parse_waiter(r->element[i], &bad);
        if (bad)
            st = tl__redis_unexpected(rs, what, r->element[i]);
        else if (w == NULL || tl__waiter_array_push(&arr, &n, &cap, w) != TL_OK) {
            tl__waiter_free(w);
            st = tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
        }
    }

out_free:
    freeReplyObject(r);
    if (st != TL_OK) {
        tl_waiter_array_free(arr, n);
        return st;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}
