/*
 * redis_next.c -- the Redis store's claim-next and done markers (store.h version 4; the Lua is
 * in redis_next_scripts.h).
 *
 * claim_next is one script over the candidates' names (one round trip, atomic: of concurrent
 * claim-nexts each key is won once); finish is one script too: the release, the done marker in
 * the same step, and with a next, the claim-next after it. The done marker is a hash at
 * PREFIX done:KEY without a TTL; reopen deletes it (one script), done_list reads it (HMGET, or
 * SCAN MATCH PREFIX done:* and one pipelined HMGET per batch).
 *
 * A claim-next's win writes our nonce into the record, like a claim's. When the connection dies
 * after the script was sent, the script is sent again on a new connection with `replay`, and
 * then first looks through the candidates for a record with our nonce: had the first sending
 * won, the second answers with that win instead of claiming a second key (which nobody would
 * heartbeat or release).
 *
 * wait_any PSUBSCRIBEs to PREFIX released:* on the store's subscribe connection (the one the
 * wait op uses), looks once more whether a candidate is free (the claim-next script in probe
 * mode, which writes nothing: a release between the failed claim-next and the subscription
 * published to no one), then waits for a message on a candidate's channel. Release,
 * force-release, finish, reopen, and a leave that empties a free key's line publish there, and
 * so do older versions' releases. One pattern whatever the number of candidates; messages for
 * other keys are read and ignored (docs/redis.md says why this and not one channel per
 * candidate).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"

#define NEXT_FIXED    12 /* argv[0] (the history key) and ARGV 1..11, before a claim's names */
#define FINISH_FIXED  19 /* the same with the release's ARGV 12..18 */
#define ARG_REPLAY    10
#define DONE_BATCH    500
#define WAIT_SETUP_MS 250

static const char *const next_modes[] = {"normal", "steal"};

/* The text arguments a claim-next needs, kept alive for the call. */
struct next_args {
    char hk[RKEY_SIZE];
    char ttl[24], hmax[24], timeout[24], nonce[40];
};

/* Fills argv[0..11] for a claim-next of `req` (NULL: the finish without one; empty fields). */
static void next_argv(struct redis_store *rs, const struct tl_claim *req, struct next_args *na,
                      const char **argv)
{
    tl__redis_make_key(rs, na->hk, "history", NULL);
    u64_text(rs->safety_ttl_ms, na->ttl);
    u64_text(rs->history_max, na->hmax);
    argv[0] = na->hk;
    argv[1] = rs->prefix;
    argv[2] = na->ttl;
    argv[3] = na->hmax;
    if (req == NULL) {
        for (int i = 4; i < NEXT_FIXED; i++)
            argv[i] = "";
        argv[ARG_REPLAY] = "0";
        argv[11] = "0";
        return;
    }
    tl__redis_new_nonce(rs, na->nonce);
    u64_text(req->lock_timeout_ms, na->timeout);
    argv[4] = req->worker_id;
    argv[5] = req->node_id;
    argv[6] = req->task_info;
    argv[7] = na->timeout;
    argv[8] = next_modes[req->mode];
    argv[9] = na->nonce;
    argv[ARG_REPLAY] = "0";
    argv[11] = "0"; /* probe */
}

static tl_status check_next(struct redis_store *rs, const struct tl_claim *req,
                            const struct tl_candidates *c)
{
    if (c->keys == NULL)
        return tl__store_fail(&rs->base, TL_ENOTSUP,
                              "redis %s: the Redis store has no labels; name the keys", rs->where);
    if (req->mode != TL_CLAIM_NORMAL && req->mode != TL_CLAIM_STEAL)
        return tl__store_fail(&rs->base, TL_EINVAL, "redis %s: claim-next: bad claim mode",
                              rs->where);
    if (c->nkeys > (size_t)INT_MAX - FINISH_FIXED)
        return tl__store_fail(&rs->base, TL_EINVAL, "redis %s: claim-next: too many candidates",
                              rs->where);
    return TL_OK;
}

/*
 * Runs a script that may claim, so that it claims at most once: sent once; if the connection
 * died after sending, sent again with `replay` set (the script then answers with the first
 * sending's win, if it had one).
 */
static tl_status eval_claiming(struct redis_store *rs, enum script_id id, int argc,
                               const char **argv, redisReply **r, const char *what)
{
    rs->no_resend = true;
    tl_status st = tl__redis_eval(rs, id, 1, argc, argv, NULL, r, what);
    rs->no_resend = false;
    if (st != TL_OK && rs->dropped && tl__real_mono_ms() < rs->deadline) {
        TL_LOG(rs->base.log, TL_LOG_INFO, "redis %s: %s: connection lost (%s); sending again",
               rs->where, what, rs->base.errmsg);
        rs->stats.claim_next_replays++;
        argv[ARG_REPLAY] = "1";
        st = tl__redis_eval(rs, id, 1, argc, argv, NULL, r, what);
    }
    return st;
}

/* An error a script returned as text ("TLBAD ..." for garbage under the prefix). */
static tl_status script_error(struct redis_store *rs, const char *what, const redisReply *msg)
{
    const char *text = is_text(msg) ? msg->str : "?";

    if (strncmp(text, "TLBAD ", 6) == 0)
        return tl__store_fail(&rs->base, TL_ESTORE,
                              "redis %s: %s: not a tasklock record: %s (delete that Redis key, "
                              "or force-acquire the lock)",
                              rs->where, what, text + 6);
    return tl__store_fail(&rs->base, TL_ESTORE, "redis %s: %s: %s", rs->where, what, text);
}

static bool count_ok(long long v)
{
    return v >= 0 && v <= UINT32_MAX;
}

/* The last element of a claim-next reply: the indices of the candidates found done, marked in
 * c->done_seen. False if it is not a list of indices. */
static bool read_seen(const redisReply *r, const struct tl_candidates *c)
{
    if (r->elements == 0)
        return false;
    const redisReply *seen = r->element[r->elements - 1];
    if (seen->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < seen->elements; i++) {
        long long v;
        if (!el_int(seen, i, &v) || v < 0 || (unsigned long long)v >= c->nkeys)
            return false;
        if (c->done_seen != NULL)
            c->done_seen[v] = 1;
    }
    return true;
}

/* Turns the claim-next script's reply `r` into the op's results. */
static tl_status parse_next(struct redis_store *rs, const redisReply *r, const struct tl_claim *req,
                            const struct tl_candidates *c, struct tl_claim_result *out, size_t *won,
                            struct tl_next_tally *tally, const char *what)
{
    long long now, a, b, d, token;

    if (el_is(r, 0, "busy")) {
        if (r->elements != 6 || !el_int(r, 1, &now) || !el_int(r, 2, &a) || !el_int(r, 3, &b) ||
            !el_int(r, 4, &d) || !count_ok(a) || !count_ok(b) || !count_ok(d) || !read_seen(r, c))
            return tl__redis_unexpected(rs, what, r);
        tally->done = (uint32_t)a;
        tally->held = (uint32_t)b;
        tally->queued = (uint32_t)d;
        return TL_EBUSY;
    }
    const redisReply *event = el_str(r, 2);
    if (!el_is(r, 0, "won") || event == NULL || !el_int(r, 1, &now) || !el_int(r, 3, &a) || a < 0 ||
        (unsigned long long)a >= c->nkeys)
        return tl__redis_unexpected(rs, what, r);
    const char *key = c->keys[a];
    if (el_is(r, 2, "replayed")) {
        if (r->elements != 12 || !read_seen(r, c))
            return tl__redis_unexpected(rs, what, r);
        tl_status st = tl__redis_parse_record(rs, r, 4, key, &out->rec, what);
        if (st != TL_OK)
            return st;
        tl__record_judge(&out->rec, now);
        *won = (size_t)a;
        return TL_OK;
    }
    bool stolen = el_is(r, 2, "stolen");
    if (r->elements != 6 || (!stolen && !el_is(r, 2, "acquired")) || !el_int(r, 4, &token) ||
        token <= 0 || !read_seen(r, c))
        return tl__redis_unexpected(rs, what, r);

    struct tl_record *rec = &out->rec;
    rec->info.key = tl__strdup(key);
    rec->info.worker_id = tl__strdup(req->worker_id);
    rec->info.node_id = tl__strdup(req->node_id);
    rec->info.task_info = tl__strdup(req->task_info);
    rec->info.token = (uint64_t)token;
    rec->info.claimed_at_ms = rec->info.heartbeat_at_ms = now;
    rec->info.lock_timeout_ms = req->lock_timeout_ms;
    rec->info.observed_at_ms = now;
    out->took_stale = stolen;
    if (!rec->info.key || !rec->info.worker_id || !rec->info.node_id || !rec->info.task_info) {
        /* Won, but we cannot describe it: give it back so that it does not rot. */
        const struct tl_record held = {.info = {.key = (char *)key,
                                                .worker_id = (char *)req->worker_id,
                                                .node_id = (char *)req->node_id,
                                                .token = (uint64_t)token}};
        tl__record_clear(rec);
        (void)rs->base.ops->release(&rs->base, &held, "out of memory after claiming");
        return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
    }
    *won = (size_t)a;
    return TL_OK;
}

tl_status tl__redis_claim_next(struct tl_store *s, const struct tl_claim *req,
                               const struct tl_candidates *c, struct tl_claim_result *out,
                               size_t *won, struct tl_next_tally *tally)
{
    struct redis_store *rs = (struct redis_store *)s;
    struct next_args na;
    redisReply *r = NULL;
    tl_status st;

    *won = SIZE_MAX;
    memset(tally, 0, sizeof(*tally));
    if ((st = check_next(rs, req, c)) != TL_OK)
        return st;
    const char **argv = tl__calloc(NEXT_FIXED + c->nkeys, sizeof(*argv));
    if (argv == NULL)
        return tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
    tl__redis_begin_call(rs, 0);
    rs->next_steal = req->mode == TL_CLAIM_STEAL;
    next_argv(rs, req, &na, argv);
    for (size_t i = 0; i < c->nkeys; i++)
        argv[NEXT_FIXED + i] = c->keys[i];
    st = eval_claiming(rs, SC_CLAIM_NEXT, NEXT_FIXED + (int)c->nkeys, argv, &r, "claiming next");
    if (st == TL_OK)
        st = parse_next(rs, r, req, c, out, won, tally, "claiming next");
    freeReplyObject(r);
    tl__free((void *)argv);
    return st;
}

/* The release part of finish's reply, as redis_release reads its own. */
static tl_status parse_release(struct redis_store *rs, const redisReply *r,
                               const struct tl_record *held, const char *what)
{
    const redisReply *holder = el_str(r, 1);
    long long htoken = 0;

    if (el_is(r, 0, "released") || el_is(r, 0, "already"))
        return TL_OK;
    if (el_is(r, 0, "held") && is_text(holder) && el_int(r, 3, &htoken))
        return tl__store_fail(&rs->base, TL_ENOTOWNER, "%s is held by %s now (token %lld)",
                              held->info.key, holder->str, htoken);
    if (el_is(r, 0, "since") && is_text(holder))
        return tl__store_fail(&rs->base, TL_ENOTOWNER,
                              "%s is free, and was claimed since (last token %s)", held->info.key,
                              holder->str);
    if (el_is(r, 0, "never"))
        return tl__store_fail(&rs->base, TL_ENOTOWNER,
                              "%s is free, and no record of token %llu is left", held->info.key,
                              (unsigned long long)held->info.token);
    return tl__redis_unexpected(rs, what, r);
}

tl_status tl__redis_finish(struct tl_store *s, const struct tl_finish *f,
                           struct tl_finish_result *out)
{
    struct redis_store *rs = (struct redis_store *)s;
    const struct tl_record *held = f->held;
    bool next = f->next != NULL && f->candidates != NULL && f->candidates->keys != NULL &&
                check_next(rs, f->next, f->candidates) == TL_OK;
    size_t nkeys = next ? f->candidates->nkeys : 0;
    char token[24], what[TL_KEY_MAX + 32];
    struct next_args na;
    redisReply *r = NULL;
    tl_status st;

    const char **argv = tl__calloc(FINISH_FIXED + nkeys, sizeof(*argv));
    if (argv == NULL)
        return tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
    tl__redis_begin_call(rs, 0);
    cat3(what, sizeof(what), f->done ? "finishing " : "releasing ", held->info.key, NULL);
    next_argv(rs, next ? f->next : NULL, &na, argv);
    u64_text(held->info.token, token);
    argv[12] = held->info.key;
    argv[13] = held->info.worker_id;
    argv[14] = held->info.node_id ? held->info.node_id : "?";
    argv[15] = token;
    argv[16] = f->summary ? f->summary : "";
    argv[17] = f->done ? "1" : "0";
    argv[18] = next ? "1" : "0";
    for (size_t i = 0; i < nkeys; i++)
        argv[FINISH_FIXED + i] = f->candidates->keys[i];
    int argc = FINISH_FIXED + (int)nkeys;
    if (next)
        rs->next_steal = f->next->mode == TL_CLAIM_STEAL;
    if (next)
        st = eval_claiming(rs, SC_FINISH, argc, argv, &r, what);
    else
        st = tl__redis_eval(rs, SC_FINISH, 1, argc, argv, NULL, &r, what);
    if (st != TL_OK)
        goto out;
    if ((st = parse_release(rs, r, held, what)) != TL_OK || !next)
        goto out;
    if (r->elements != 2 && r->elements != 3) {
        st = tl__redis_unexpected(rs, what, r);
        goto out;
    }

    /* Released: what happens to the claim is the claim's outcome, not the release's. */
    out->next_tried = true;
    out->won = SIZE_MAX;
    if (r->elements == 3 && el_is(r, 1, "error"))
        out->next_status = script_error(rs, "claiming next", el_str(r, 2));
    else if (r->elements == 2 && r->element[1]->type == REDIS_REPLY_ARRAY)
        out->next_status = parse_next(rs, r->element[1], f->next, f->candidates, &out->next,
                                      &out->won, &out->tally, "claiming next");
    else
        out->next_status = tl__redis_unexpected(rs, "claiming next", r);

out:
    freeReplyObject(r);
    tl__free((void *)argv);
    return st;
}

tl_status tl__redis_reopen(struct tl_store *s, const char *key, const char *worker_id,
                           const char *node_id, bool *was_done)
{
    struct redis_store *rs = (struct redis_store *)s;
    char dk[RKEY_SIZE], hk[RKEY_SIZE], chan[RKEY_SIZE], hmax[24], what[TL_KEY_MAX + 32];
    redisReply *r = NULL;

    *was_done = false;
    tl__redis_begin_call(rs, 0);
    tl__redis_make_key(rs, dk, "done:", key);
    tl__redis_make_key(rs, hk, "history", NULL);
    tl__redis_make_key(rs, chan, "released:", key);
    u64_text(rs->history_max, hmax);
    cat3(what, sizeof(what), "reopening ", key, NULL);
    const char *argv[] = {dk, hk, worker_id, node_id, key, hmax, chan};
    tl_status st = tl__redis_eval(rs, SC_REOPEN, 2, 7, argv, NULL, &r, what);
    if (st != TL_OK)
        return st;
    if (el_is(r, 0, "reopened") && r->elements == 1)
        *was_done = true;
    else if (!(el_is(r, 0, "none") && r->elements == 1))
        st = tl__redis_unexpected(rs, what, r);
    freeReplyObject(r);
    return st;
}

/* ---- done_list ---- */

static const char *const done_fields[] = {"worker_id", "node_id", "token", "done_at", "summary"};
#define DONE_NFIELDS (sizeof(done_fields) / sizeof(done_fields[0]))

static bool append_hmget(struct buf *b, const char *rkey, size_t rlen)
{
    const char *argv[2 + DONE_NFIELDS] = {"HMGET", rkey};
    size_t len[2 + DONE_NFIELDS] = {5, rlen};

    for (size_t i = 0; i < DONE_NFIELDS; i++) {
        argv[2 + i] = done_fields[i];
        len[2 + i] = strlen(done_fields[i]);
    }
    return tl__redis_buf_cmd(b, 2 + (int)DONE_NFIELDS, argv, len);
}

/* A reply's bulk string as a number, or false. */
static bool el_u64(const redisReply *a, size_t i, uint64_t *v)
{
    const redisReply *e = el_str(a, i);

    return is_text(e) && tl__parse_u64(e->str, v);
}

/*
 * Parses the HMGET reply `r` of the marker of `key` (at the Redis key `rkey`). *d is NULL when
 * there is none (never written, or reopened since SCAN saw it).
 */
static tl_status parse_done(struct redis_store *rs, const redisReply *r, const char *key,
                            const char *rkey, struct tl_done **d)
{
    uint64_t token, at;

    *d = NULL;
    if (r->type == REDIS_REPLY_ERROR)
        return tl__store_fail(&rs->base, TL_ESTORE,
                              "redis %s: reading done markers: %s: %s (delete that Redis key, "
                              "or reopen %s)",
                              rs->where, rkey, r->str ? r->str : "error", key);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != DONE_NFIELDS)
        return tl__redis_unexpected(rs, "reading done markers", r);
    bool empty = true;
    for (size_t i = 0; i < DONE_NFIELDS; i++)
        empty = empty && r->element[i]->type == REDIS_REPLY_NIL;
    if (empty)
        return TL_OK;
    const redisReply *worker = el_str(r, 0), *node = el_str(r, 1), *summary = el_str(r, 4);
    if (!is_text(worker) || tl__check_id(worker->str, TL_ID_MAX) != NULL || !is_text(node) ||
        !el_u64(r, 2, &token) || !el_u64(r, 3, &at) || at > INT64_MAX || !is_text(summary))
        return tl__store_fail(&rs->base, TL_ESTORE,
                              "redis %s: reading done markers: %s is not a tasklock done marker "
                              "(delete that Redis key, or reopen %s)",
                              rs->where, rkey, key);

    struct tl_done *nd = tl__done_new();
    if (nd != NULL) {
        nd->key = tl__strdup(key);
        nd->worker_id = tl__strdup(worker->str);
        nd->node_id = tl__strdup(node->str);
        nd->summary = tl__strdup(summary->str);
        nd->token = token;
        nd->done_at_ms = (int64_t)at;
    }
    if (nd == NULL || !nd->key || !nd->worker_id || !nd->node_id || !nd->summary) {
        tl__done_free(nd);
        return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
    }
    *d = nd;
    return TL_OK;
}

/* Reads the markers at the Redis keys of SCAN's batch `keys` (one pipelined round trip). */
static tl_status done_batch(struct redis_store *rs, const redisReply *keys, struct tl_done ***arr,
                            size_t *n, size_t *cap)
{
    size_t nk = keys->elements, plen = strlen(rs->prefix) + strlen("done:");
    redisReply **r = tl__calloc(nk, sizeof(redisReply *));
    tl_status st = TL_OK;

    if (r == NULL)
        return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
    rs->out.len = 0;
    for (size_t i = 0; i < nk && st == TL_OK; i++) {
        const redisReply *k = el_str(keys, i);
        if (k == NULL || k->len <= plen)
            st = tl__redis_unexpected(rs, "reading done markers", keys);
        else if (!append_hmget(&rs->out, k->str, k->len))
            st = tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
    }
    if (st == TL_OK)
        st = tl__redis_exchange(rs, nk, r, "reading done markers");
    for (size_t i = 0; i < nk && st == TL_OK; i++) {
        const redisReply *k = keys->element[i];
        const char *key = k->str + plen;
        struct tl_done *d = NULL;
        if (!is_text(k) || tl__check_id(key, TL_KEY_MAX) != NULL) {
            st = tl__store_fail(&rs->base, TL_ESTORE,
                                "redis %s: reading done markers: the Redis key \"%.*s\" is not a "
                                "tasklock done marker (delete it)",
                                rs->where, (int)(k->len > 200 ? 200 : k->len), k->str);
            break;
        }
        st = parse_done(rs, r[i], key, k->str, &d);
        if (st == TL_OK && d != NULL && tl__done_array_push(arr, n, cap, d) != TL_OK) {
            tl__done_free(d);
            st = tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
        }
    }
    tl__redis_free_replies(r, nk);
    tl__free(r);
    return st;
}

static int cmp_done_key(const void *a, const void *b)
{
    return strcmp((*(struct tl_done *const *)a)->key, (*(struct tl_done *const *)b)->key);
}

/* Every marker under the prefix: SCAN, then each batch's markers in one round trip. */
static tl_status done_scan(struct redis_store *rs, struct tl_done ***arr, size_t *n, size_t *cap)
{
    char cursor[32] = "0", scount[16];
    char *pattern = tl__redis_scan_pattern(rs, "done:");
    tl_status st = TL_OK;

    if (pattern == NULL)
        return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
    (void)snprintf(scount, sizeof(scount), "%d", DONE_BATCH);
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", scount};
        redisReply *r = NULL;

        tl__redis_begin_call(rs, 0); /* each round trip gets its own time */
        rs->out.len = 0;
        if (!tl__redis_buf_cmd(&rs->out, 6, argv, NULL)) {
            st = tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
            break;
        }
        if ((st = tl__redis_exchange1(rs, &r, "listing done markers")) != TL_OK)
            break;
        const redisReply *next = el_str(r, 0);
        if (r->type == REDIS_REPLY_ERROR) {
            st = tl__redis_error_reply(rs, "listing done markers", r);
        } else if (next == NULL || next->len >= sizeof(cursor) || r->elements != 2 ||
                   r->element[1]->type != REDIS_REPLY_ARRAY) {
            st = tl__redis_unexpected(rs, "listing done markers", r);
        } else {
            memcpy(cursor, next->str, next->len + 1);
            if (r->element[1]->elements > 0) {
                tl__redis_begin_call(rs, 0);
                st = done_batch(rs, r->element[1], arr, n, cap);
            }
        }
        freeReplyObject(r);
    } while (st == TL_OK && strcmp(cursor, "0") != 0);
    tl__free(pattern);
    return st;
}

tl_status tl__redis_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                              size_t *count)
{
    struct redis_store *rs = (struct redis_store *)s;
    struct tl_done **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status st;

    if (key != NULL) {
        char dk[RKEY_SIZE];
        redisReply *r = NULL;
        struct tl_done *d = NULL;

        tl__redis_begin_call(rs, 0);
        tl__redis_make_key(rs, dk, "done:", key);
        rs->out.len = 0;
        if (!append_hmget(&rs->out, dk, strlen(dk)))
            return tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
        if ((st = tl__redis_exchange1(rs, &r, "reading a done marker")) != TL_OK)
            return st;
        st = parse_done(rs, r, key, dk, &d);
        freeReplyObject(r);
        if (st == TL_OK && d != NULL && tl__done_array_push(&arr, &n, &cap, d) != TL_OK) {
            tl__done_free(d);
            st = tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
        }
    } else {
        st = done_scan(rs, &arr, &n, &cap);
    }
    if (st != TL_OK) {
        tl_done_array_free(arr, n);
        return st;
    }
    if (n > 1) {
        /* SCAN may return a key twice: sort, then drop repeats. */
        qsort((void *)arr, n, sizeof(struct tl_done *), cmp_done_key);
        size_t j = 1;
        for (size_t i = 1; i < n; i++) {
            if (strcmp(arr[i]->key, arr[j - 1]->key) == 0)
                tl__done_free(arr[i]);
            else
                arr[j++] = arr[i];
        }
        n = j;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

/* ---- wait_any ---- */

static tl_status any_fail(struct redis_store *rs, const char *why)
{
    tl__redis_drop_conn(&rs->sub);
    rs->stats.any_wait_failures++;
    return tl__store_fail(&rs->base, TL_ESTORE, "redis %s: waiting for a free candidate: %s",
                          rs->where, why);
}

/* Whether `r` is a pattern message on the release channel of one of the candidates. */
static bool is_candidate_release(const struct redis_store *rs, const redisReply *r,
                                 const char *pattern, const struct tl_candidates *c)
{
    char chan[RKEY_SIZE];

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4 || !el_is(r, 0, "pmessage") ||
        !el_is(r, 1, pattern))
        return false;
    const redisReply *ch = el_str(r, 2);
    if (!is_text(ch))
        return false;
    for (size_t i = 0; i < c->nkeys; i++) {
        tl__redis_make_key(rs, chan, "released:", c->keys[i]);
        if (strcmp(ch->str, chan) == 0)
            return true;
    }
    return false;
}

/*
 * Looks whether a candidate may be claimed now (the claim-next script in probe mode, in the mode
 * of this instance's last claim-next: writes nothing): *now is true when one is free, or when
 * nothing is left to wait for (all done). *stale_in is the ms until the first held candidate goes
 * stale when stealing, else -1.
 */
static tl_status probe(struct redis_store *rs, const struct tl_candidates *c, bool *now,
                       long long *stale_in)
{
    const struct tl_claim any = {.worker_id = "-",
                                 .node_id = "-",
                                 .task_info = "{}",
                                 .mode = rs->next_steal ? TL_CLAIM_STEAL : TL_CLAIM_NORMAL};
    struct next_args na;
    redisReply *r = NULL;
    long long held, queued;

    *now = false;
    *stale_in = -1;
    const char **argv = tl__calloc(NEXT_FIXED + c->nkeys, sizeof(*argv));
    if (argv == NULL)
        return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
    next_argv(rs, &any, &na, argv);
    argv[11] = "1";
    for (size_t i = 0; i < c->nkeys; i++)
        argv[NEXT_FIXED + i] = c->keys[i];
    tl_status st = tl__redis_eval(rs, SC_CLAIM_NEXT, 1, NEXT_FIXED + (int)c->nkeys, argv, NULL, &r,
                                  "waiting for a free candidate");
    tl__free((void *)argv);
    if (st != TL_OK)
        return st;
    if (el_is(r, 0, "free"))
        *now = true;
    else if (el_is(r, 0, "busy") && r->elements == 6 && el_int(r, 3, &held) &&
             el_int(r, 4, &queued) && el_int(r, 5, stale_in))
        *now = held == 0 && queued == 0;
    else
        st = tl__redis_unexpected(rs, "waiting for a free candidate", r);
    freeReplyObject(r);
    return st;
}

tl_status tl__redis_wait_any(struct tl_store *s, const struct tl_candidates *c, uint32_t timeout_ms)
{
    struct redis_store *rs = (struct redis_store *)s;
    char why[160];
    int64_t until = tl__real_mono_ms() + timeout_ms;
    redisReply *r = NULL;
    struct buf b = {0};
    tl_status st;
    bool retry, free_now = false;
    long long stale_in = -1;

    if (c->keys == NULL || c->nkeys == 0)
        return tl__store_fail(s, TL_ENOTSUP, "redis %s: nothing to wait for", rs->where);
    rs->stats.any_waits++;
    if (s->deadline_mono_ms != 0) {
        int64_t left = s->deadline_mono_ms - s->clock->mono_ms(s->clock->ud);
        if (left < (int64_t)timeout_ms)
            until = tl__real_mono_ms() + (left > 0 ? left : 0);
    }
    /* Subscribing and looking get the wait's time, but at least WAIT_SETUP_MS, so that a short
     * wait on a slow server does not give up (and reconnect) every time; the waiting itself is
     * bounded by `until`. */
    tl__redis_begin_call(rs, timeout_ms > WAIT_SETUP_MS ? timeout_ms : WAIT_SETUP_MS);
    char *pattern = tl__redis_scan_pattern(rs, "released:");
    if (pattern == NULL)
        return tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
    if (rs->sub == NULL && (st = tl__redis_connect_once(rs, &rs->sub, false, &retry)) != TL_OK) {
        rs->stats.any_wait_failures++;
        goto out;
    }

    /* Subscribe, and read up to its confirmation: whatever comes first is left over from the
     * last wait (an unsubscribe, a late message) and means nothing now. */
    const char *argv[] = {"PSUBSCRIBE", pattern};
    if (!tl__redis_buf_cmd(&b, 2, argv, NULL)) {
        st = tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
        goto out;
    }
    if (tl__redis_conn_send(rs->sub, &b, rs->deadline, why, sizeof(why)) != IO_OK) {
        st = any_fail(rs, why);
        goto out;
    }
    for (;;) {
        if (tl__redis_read_reply(rs->sub, rs->deadline, &r, why, sizeof(why)) != IO_OK) {
            st = any_fail(rs, why);
            goto out;
        }
        if (r == NULL) {
            st = any_fail(rs, "no answer to PSUBSCRIBE in time");
            goto out;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            (void)snprintf(why, sizeof(why), "PSUBSCRIBE: %s", r->str ? r->str : "");
            freeReplyObject(r);
            st = any_fail(rs, why);
            goto out;
        }
        bool confirmed = tl__redis_is_push(r, "psubscribe", pattern);
        freeReplyObject(r);
        if (confirmed)
            break;
    }

    /* Subscribed. A release between the failed claim-next and now published to no one: look
     * once more, on the command connection, before blocking. */
    if ((st = probe(rs, c, &free_now, &stale_in)) != TL_OK) {
        tl__redis_drop_conn(&rs->sub);
        rs->stats.any_wait_failures++;
        goto out;
    }
    /* Stealing: nobody publishes when a lock goes stale, so the wait ends by then at the latest
     * (a few ms after, for the clocks' rounding). */
    if (stale_in >= 0 && tl__real_mono_ms() + stale_in + 5 < until)
        until = tl__real_mono_ms() + stale_in + 5;
    if (free_now) {
        rs->stats.any_woke_by_recheck++;
    } else {
        for (;;) {
            if (tl__redis_read_reply(rs->sub, until, &r, why, sizeof(why)) != IO_OK) {
                st = any_fail(rs, why);
                goto out;
            }
            if (r == NULL) {
                rs->stats.any_woke_by_timeout++;
                break;
            }
            bool released = is_candidate_release(rs, r, pattern, c);
            freeReplyObject(r);
            if (released) {
                rs->stats.any_woke_by_message++;
                break;
            }
        }
    }

    /* Unsubscribe without waiting for the answer: the next wait skips it. */
    const char *un[] = {"PUNSUBSCRIBE", pattern};
    b.len = 0;
    if (!tl__redis_buf_cmd(&b, 2, un, NULL) ||
        tl__redis_conn_send(rs->sub, &b, tl__real_mono_ms() + rs->timeout_ms, why, sizeof(why)) !=
            IO_OK)
        tl__redis_drop_conn(&rs->sub);
    st = TL_OK;

out:
    tl__free(b.p);
    tl__free(pattern);
    return st;
}
