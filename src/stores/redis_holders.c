/*
 * redis_holders.c -- the Redis store's operations on a key's holders: claim, renew, extend,
 * release, force_release, inspect, list, and holders (store.h version 5: shared holders and
 * semaphores). Each is one Lua script (redis_holders_scripts.h, which describes the layout), so
 * each is atomic and takes one round trip; list takes one per SCAN batch.
 */
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"
#include "store.h"
#include "tl.h"

#define SCAN_COUNT 500 /* keys per SCAN of list */

/*
 * Fills `rec` from the 9 elements of `a` from `off`: the 7 of tl__redis_parse_record(), then
 * shared (1 or 0) and slots.
 */
tl_status tl__redis_parse_holder(struct redis_store *rs, const redisReply *a, size_t off,
                                 const char *key, struct tl_record *rec, const char *what)
{
    long long shared, slots;
    tl_status st = tl__redis_parse_record(rs, a, off, key, rec, what);

    if (st != TL_OK)
        return st;
    if (!el_int(a, off + 7, &shared) || (shared != 0 && shared != 1) ||
        !el_int(a, off + 8, &slots) || slots < 0 || slots > UINT32_MAX ||
        (shared == 0 && slots != 0)) {
        tl__record_clear(rec);
        return tl__store_fail(&rs->base, TL_ESTORE,
                              "redis %s: %s: a holder of %s has a bad mode or slots field (delete "
                              "the Redis key %slock:%s, or force-acquire the lock)",
                              rs->where, what, key, rs->prefix, key);
    }
    rec->info.mode = shared ? TL_SHARED : TL_EXCLUSIVE;
    rec->info.slots = (uint32_t)slots;
    return TL_OK;
}

tl_status tl__redis_claim(struct tl_store *s, const struct tl_claim *req,
                          struct tl_claim_result *out)
{
    struct redis_store *rs = (struct redis_store *)s;
    char rk[RKEY_SIZE], ck[RKEY_SIZE], hk[RKEY_SIZE], lk[RKEY_SIZE], wk[RKEY_SIZE], sk[RKEY_SIZE];
    char gk[RKEY_SIZE], wp[RKEY_SIZE], nonce[40], timeout[24], ttl[24], hmax[24], prio[24];
    char wtimeout[24];
    char slots[24], what[TL_KEY_MAX + 32];
    static const char *const modes[] = {"normal", "steal", "force"};
    redisReply *r = NULL;
    long long now, token, claimed, waiting, ahead, held_slots;
    tl_status st;

    cat3(what, sizeof(what), "claiming ", req->key, NULL);
    if ((unsigned)req->mode > TL_CLAIM_FORCE)
        return tl__store_fail(s, TL_EINVAL, "redis %s: %s: bad claim mode", rs->where, what);
    if (req->shared && req->mode == TL_CLAIM_FORCE)
        return tl__store_fail(s, TL_EINVAL, "redis %s: %s: a forced claim is exclusive only",
                              rs->where, what);
    if (req->waiter_id != NULL) {
        if (!tl__redis_waiter_id_ok(req->waiter_id))
            return tl__redis_bad_waiter_id(rs, what);
        if (req->priority < TL_PRIORITY_MIN || req->priority > TL_PRIORITY_MAX)
            return tl__store_fail(s, TL_EINVAL, "redis %s: %s: priority %ld is not in %d..%d",
                                  rs->where, what, (long)req->priority, TL_PRIORITY_MIN,
                                  TL_PRIORITY_MAX);
        /* The waiter's fields are kept newline-separated: ids must be ids. */
        if (tl__check_id(req->worker_id, TL_ID_MAX) != NULL ||
            tl__check_id(req->node_id, TL_ID_MAX) != NULL)
            return tl__store_fail(s, TL_EINVAL, "redis %s: %s: bad worker or node id", rs->where,
                                  what);
    }
    tl__redis_begin_call(rs, 0);
    tl__redis_make_key(rs, rk, "lock:", req->key);
    tl__redis_make_key(rs, ck, "token:", req->key);
    tl__redis_make_key(rs, hk, "history", NULL);
    tl__redis_make_key(rs, lk, "line:", req->key);
    tl__redis_make_key(rs, wk, "waiters:", req->key);
    tl__redis_make_key(rs, sk, "lineseq:", req->key);
    tl__redis_make_key(rs, gk, "lines", NULL);
    tl__redis_wake_prefix(rs, wp, req->key);
    tl__redis_new_nonce(rs, nonce);
    u64_text(req->lock_timeout_ms, timeout);
    u64_text(rs->safety_ttl_ms, ttl);
    u64_text(rs->history_max, hmax);
    (void)snprintf(prio, sizeof(prio), "%ld", (long)(req->waiter_id ? req->priority : 0));
    u64_text(req->waiter_id ? req->waiter_timeout_ms : 0, wtimeout);
    u64_text(req->shared ? req->slots : 0, slots);
    const char *argv[] = {rk,
                          ck,
                          hk,
                          lk,
                          wk,
                          sk,
                          gk,
                          req->worker_id,
                          req->node_id,
                          req->task_info,
                          timeout,
                          modes[req->mode],
                          nonce,
                          ttl,
                          hmax,
                          req->key,
                          req->waiter_id ? req->waiter_id : "",
                          prio,
                          wtimeout,
                          wp,
                          req->shared ? "1" : "0",
                          slots,
                          req->waiter_id && req->holding ? req->holding : ""};

    st = tl__redis_eval(rs, SC_CLAIM, 7, 23, argv, NULL, &r, what);
    if (st != TL_OK)
        return st;

    if (el_is(r, 0, "mismatch")) {
        /* Shared holders of another number of slots: nothing was written. */
        if (r->elements != 3 || !el_int(r, 2, &held_slots) || held_slots < 0 ||
            held_slots > UINT32_MAX)
            st = tl__redis_unexpected(rs, what, r);
        else
            st = tl__slots_mismatch(s, req->key, (uint32_t)held_slots, req->slots);
        goto out_free;
    }

    if (el_is(r, 0, "line")) {
        /* Free, but live waiters are ahead of us. */
        if (r->elements != 4 || !el_int(r, 1, &now) || !el_int(r, 2, &waiting) ||
            !el_int(r, 3, &ahead) || waiting < 0 || ahead < 0 || waiting > UINT32_MAX ||
            ahead > UINT32_MAX) {
            st = tl__redis_unexpected(rs, what, r);
            goto out_free;
        }
        out->holder_known = false;
        out->waiting = (uint32_t)waiting;
        out->ahead = (uint32_t)ahead;
        st = TL_EBUSY;
        goto out_free;
    }

    bool won = el_is(r, 0, "won"), busy = el_is(r, 0, "busy");
    const redisReply *event = el_str(r, 2);
    if ((!won && !busy) || event == NULL || !el_int(r, 1, &now) || r->elements != 14 ||
        !el_int(r, 5, &token) || token <= 0 || !el_int(r, 6, &claimed) ||
        !el_int(r, 12, &waiting) || !el_int(r, 13, &ahead) || waiting < 0 || ahead < 0 ||
        waiting > UINT32_MAX || ahead > UINT32_MAX) {
        st = tl__redis_unexpected(rs, what, r);
        goto out_free;
    }

    if (busy || strcmp(event->str, "replayed") == 0) {
        st = tl__redis_parse_holder(rs, r, 3, req->key, &out->rec, what);
        if (st != TL_OK)
            goto out_free;
        tl__record_judge(&out->rec, now);
        out->holder_known = busy;
        if (busy) {
            out->waiting = (uint32_t)waiting;
            out->ahead = (uint32_t)ahead;
        }
        st = busy ? TL_EBUSY : TL_OK;
        goto out_free;
    }

    struct tl_record *rec = &out->rec;
    rec->info.key = tl__strdup(req->key);
    rec->info.worker_id = tl__strdup(req->worker_id);
    rec->info.node_id = tl__strdup(req->node_id);
    rec->info.task_info = tl__strdup(req->task_info);
    rec->info.token = (uint64_t)token;
    rec->info.claimed_at_ms = rec->info.heartbeat_at_ms = claimed;
    rec->info.lock_timeout_ms = req->lock_timeout_ms;
    rec->info.observed_at_ms = now;
    rec->info.mode = req->shared ? TL_SHARED : TL_EXCLUSIVE;
    rec->info.slots = req->shared ? req->slots : 0;
    out->took_stale = strcmp(event->str, "stolen") == 0;
    out->took_forced = strcmp(event->str, "forced") == 0;
    if (!rec->info.key || !rec->info.worker_id || !rec->info.node_id || !rec->info.task_info) {
        /* Won, but we cannot describe it: give it back so that it does not rot. */
        const struct tl_record held = {.info = {.key = (char *)req->key,
                                                .worker_id = (char *)req->worker_id,
                                                .node_id = (char *)req->node_id,
                                                .token = (uint64_t)token}};
        tl__record_clear(rec);
        (void)s->ops->release(s, &held, "out of memory after claiming");
        st = tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
        goto out_free;
    }
    st = TL_OK;

out_free:
    freeReplyObject(r);
    return st;
}

/* renew, and with `extend` also record `lock_timeout_ms` (extend), in one script. */
static tl_status renew_or_extend(struct tl_store *s, const struct tl_record *held, bool extend,
                                 uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    struct redis_store *rs = (struct redis_store *)s;
    char rk[RKEY_SIZE], ck[RKEY_SIZE], hk[RKEY_SIZE], token[24], ttl[24], hmax[24], newt[24] = "";
    char what[TL_KEY_MAX + 32];
    redisReply *r = NULL;
    long long now;
    tl_status st;

    /* A renew must not spend the lock's whole timeout reconnecting: the heartbeat retries. */
    tl__redis_begin_call(rs, held->info.lock_timeout_ms / 2);
    tl__redis_make_key(rs, rk, "lock:", held->info.key);
    tl__redis_make_key(rs, ck, "token:", held->info.key);
    tl__redis_make_key(rs, hk, "history", NULL);
    u64_text(held->info.token, token);
    u64_text(rs->safety_ttl_ms, ttl);
    u64_text(rs->history_max, hmax);
    if (extend)
        u64_text(lock_timeout_ms, newt);
    cat3(what, sizeof(what), extend ? "extending " : "renewing ", held->info.key, NULL);
    const char *argv[] = {
        rk,    ck,  hk,   held->info.worker_id, held->info.node_id ? held->info.node_id : "?",
        token, ttl, hmax, held->info.key,       newt};

    st = tl__redis_eval(rs, SC_RENEW, 3, 10, argv, NULL, &r, what);
    if (st != TL_OK)
        return st;
    bool ok = el_is(r, 0, "ok"), lost = el_is(r, 0, "lost");
    if ((!ok && !lost) || !el_int(r, 1, &now)) {
        st = tl__redis_unexpected(rs, what, r);
    } else if (ok) {
        *heartbeat_at_ms = now;
        st = TL_OK;
    } else {
        const redisReply *holder = el_str(r, 2);
        long long htoken = 0;
        if (holder != NULL && is_text(holder) && el_int(r, 4, &htoken))
            st = tl__store_fail(s, TL_ELOST,
                                "%s is no longer held by %s with token %llu: %s "
                                "holds it now (token %lld)",
                                held->info.key, held->info.worker_id,
                                (unsigned long long)held->info.token, holder->str, htoken);
        else
            st = tl__store_fail(s, TL_ELOST,
                                "%s is no longer held by %s with token %llu: the "
                                "key is free",
                                held->info.key, held->info.worker_id,
                                (unsigned long long)held->info.token);
    }
    freeReplyObject(r);
    return st;
}

tl_status tl__redis_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                          int64_t *heartbeat_at_ms)
{
    (void)seq;
    return renew_or_extend(s, held, false, 0, heartbeat_at_ms);
}

tl_status tl__redis_extend(struct tl_store *s, const struct tl_record *held,
                           uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    return renew_or_extend(s, held, true, lock_timeout_ms, heartbeat_at_ms);
}

tl_status tl__redis_release(struct tl_store *s, const struct tl_record *held, const char *summary)
{
    struct redis_store *rs = (struct redis_store *)s;
    char rk[RKEY_SIZE], ck[RKEY_SIZE], hk[RKEY_SIZE], chan[RKEY_SIZE], token[24], ttl[24], hmax[24];
    char lk[RKEY_SIZE], wk[RKEY_SIZE], wp[RKEY_SIZE];
    char what[TL_KEY_MAX + 32];
    redisReply *r = NULL;
    tl_status st;

    tl__redis_begin_call(rs, 0);
    tl__redis_make_key(rs, rk, "lock:", held->info.key);
    tl__redis_make_key(rs, ck, "token:", held->info.key);
    tl__redis_make_key(rs, hk, "history", NULL);
    tl__redis_make_key(rs, chan, "released:", held->info.key);
    tl__redis_make_key(rs, lk, "line:", held->info.key);
    tl__redis_make_key(rs, wk, "waiters:", held->info.key);
    tl__redis_wake_prefix(rs, wp, held->info.key);
    u64_text(held->info.token, token);
    u64_text(rs->safety_ttl_ms, ttl);
    u64_text(rs->history_max, hmax);
    cat3(what, sizeof(what), "releasing ", held->info.key, NULL);
    const char *argv[] = {rk,
                          ck,
                          hk,
                          lk,
                          wk,
                          held->info.worker_id,
                          held->info.node_id ? held->info.node_id : "?",
                          token,
                          summary ? summary : "",
                          ttl,
                          hmax,
                          held->info.key,
                          chan,
                          wp};

    st = tl__redis_eval(rs, SC_RELEASE, 5, 14, argv, NULL, &r, what);
    if (st != TL_OK)
        return st;
    const redisReply *holder = el_str(r, 1), *since = el_str(r, 1);
    long long htoken = 0;
    if (el_is(r, 0, "released") || el_is(r, 0, "already"))
        st = TL_OK;
    else if (el_is(r, 0, "held") && is_text(holder) && el_int(r, 3, &htoken))
        st = tl__store_fail(s, TL_ENOTOWNER, "%s is held by %s now (token %lld)", held->info.key,
                            holder->str, htoken);
    else if (el_is(r, 0, "since") && is_text(since))
        st = tl__store_fail(s, TL_ENOTOWNER, "%s is free, and was claimed since (last token %s)",
                            held->info.key, since->str);
    else if (el_is(r, 0, "never"))
        st = tl__store_fail(s, TL_ENOTOWNER, "%s is free, and no record of token %llu is left",
                            held->info.key, (unsigned long long)held->info.token);
    else
        st = tl__redis_unexpected(rs, what, r);
    freeReplyObject(r);
    return st;
}

tl_status tl__redis_force_release(struct tl_store *s, const struct tl_force_release *req,
                                  struct tl_record *former, bool *found)
{
    struct redis_store *rs = (struct redis_store *)s;
    char rk[RKEY_SIZE], ck[RKEY_SIZE], hk[RKEY_SIZE], chan[RKEY_SIZE], token[24], ttl[24], hmax[24];
    char lk[RKEY_SIZE], wk[RKEY_SIZE], wp[RKEY_SIZE];
    char what[TL_KEY_MAX + 32];
    redisReply *r = NULL;
    long long now, nholders = 0;
    tl_status st;

    *found = false;
    tl__redis_begin_call(rs, 0);
    tl__redis_make_key(rs, rk, "lock:", req->key);
    tl__redis_make_key(rs, ck, "token:", req->key);
    tl__redis_make_key(rs, hk, "history", NULL);
    tl__redis_make_key(rs, chan, "released:", req->key);
    tl__redis_make_key(rs, lk, "line:", req->key);
    tl__redis_make_key(rs, wk, "waiters:", req->key);
    tl__redis_wake_prefix(rs, wp, req->key);
    u64_text(req->token, token);
    u64_text(rs->safety_ttl_ms, ttl);
    u64_text(rs->history_max, hmax);
    cat3(what, sizeof(what), "breaking the lock of ", req->key, NULL);
    const char *argv[] = {rk,    ck,           hk,  lk,   wk,       req->worker_id, req->node_id,
                          token, req->summary, ttl, hmax, req->key, chan,           wp};

    st = tl__redis_eval(rs, SC_FORCE_RELEASE, 5, 14, argv, NULL, &r, what);
    if (st != TL_OK)
        return st;
    bool released = el_is(r, 0, "released"), other = el_is(r, 0, "other");
    if (el_is(r, 0, "free") && r->elements == 1) {
        st = TL_OK;
    } else if (el_is(r, 0, "cleared") && r->elements == 4) {
        const redisReply *why = el_str(r, 3);
        TL_LOG(s->log, TL_LOG_WARN,
               "redis %s: %s: deleted a record that was not a tasklock one: %s", rs->where,
               req->key, is_text(why) ? why->str : "?");
        st = TL_OK;
    } else if ((released || other) && r->elements == 12) {
        if (!el_int(r, 1, &now) || (other && !el_int(r, 2, &nholders))) {
            st = tl__redis_unexpected(rs, what, r);
        } else if ((st = tl__redis_parse_holder(rs, r, 3, req->key, former, what)) == TL_OK) {
            tl__record_judge(former, now);
            *found = true;
            if (other)
                st = tl__store_fail(s, TL_ENOTOWNER, "%s is held by %s with token %llu%s", req->key,
                                    former->info.worker_id, (unsigned long long)former->info.token,
                                    nholders > 1 ? " (and others), none with the token given" : "");
        }
    } else {
        st = tl__redis_unexpected(rs, what, r);
    }
    freeReplyObject(r);
    return st;
}

tl_status tl__redis_inspect(struct tl_store *s, const char *key, struct tl_record *out, bool *found)
{
    struct redis_store *rs = (struct redis_store *)s;
    char rk[RKEY_SIZE], lk[RKEY_SIZE], wk[RKEY_SIZE], what[TL_KEY_MAX + 32];
    redisReply *r = NULL;
    long long now, waiting, nholders = 0;
    tl_status st;

    *found = false;
    tl__redis_begin_call(rs, 0);
    tl__redis_make_key(rs, rk, "lock:", key);
    tl__redis_make_key(rs, lk, "line:", key);
    tl__redis_make_key(rs, wk, "waiters:", key);
    cat3(what, sizeof(what), "reading ", key, NULL);
    const char *argv[] = {rk, lk, wk};
    st = tl__redis_eval(rs, SC_INSPECT, 3, 3, argv, NULL, &r, what);
    if (st != TL_OK)
        return st;
    if (!el_int(r, 0, &now) || !el_int(r, 1, &waiting) || waiting < 0 || waiting > UINT32_MAX ||
        (r->elements != 2 && r->elements != 12) ||
        (r->elements == 12 &&
         (!el_int(r, 2, &nholders) || nholders < 1 || nholders > UINT32_MAX))) {
        st = tl__redis_unexpected(rs, what, r);
    } else if (r->elements == 12) {
        st = tl__redis_parse_holder(rs, r, 3, key, out, what);
        if (st == TL_OK) {
            tl__record_judge(out, now);
            out->info.waiting = (uint32_t)waiting;
            out->info.holders = (uint32_t)nholders;
            *found = true;
        }
    }
    freeReplyObject(r);
    return st;
}

static int cmp_record_key(const void *a, const void *b)
{
    const struct tl_record *x = *(struct tl_record *const *)a;
    const struct tl_record *y = *(struct tl_record *const *)b;

    int c = strcmp(x->info.key, y->info.key);

    return c != 0 ? c : (x->info.token > y->info.token) - (x->info.token < y->info.token);
}

/*
 * Appends the holders of `key` in `e`, {live waiters, {record..., shared, slots}...} (the holders
 * and read_many scripts), each judged at `now`.
 */
static tl_status push_holders(struct redis_store *rs, const redisReply *e, const char *key,
                              long long now, struct tl_record ***arr, size_t *n, size_t *cap,
                              const char *what)
{
    long long waiting;

    if (!el_int(e, 0, &waiting) || waiting < 0 || waiting > UINT32_MAX)
        return tl__redis_unexpected(rs, what, e);
    for (size_t j = 1; j < e->elements; j++) {
        const redisReply *h = e->element[j];
        if (h->type != REDIS_REPLY_ARRAY || h->elements != 9)
            return tl__redis_unexpected(rs, what, e);

        struct tl_record *rec = tl__record_new();
        if (rec == NULL)
            return tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
        tl_status st = tl__redis_parse_holder(rs, h, 0, key, rec, what);
        if (st == TL_OK) {
            tl__record_judge(rec, now);
            rec->info.waiting = (uint32_t)waiting;
            rec->info.holders = (uint32_t)(e->elements - 1);
            if (tl__record_array_push(arr, n, cap, rec) != TL_OK)
                st = tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
        }
        if (st != TL_OK) {
            tl__record_free(rec);
            return st;
        }
    }
    return TL_OK;
}

/* Reads the records of the keys in SCAN's batch `keys` and appends them to the array. */
static tl_status list_batch(struct redis_store *rs, const redisReply *keys, struct tl_record ***arr,
                            size_t *n, size_t *cap)
{
    size_t nk = keys->elements, plen = strlen(rs->prefix) + strlen("lock:");
    const char **argv = tl__calloc(nk + 1, sizeof(*argv));
    size_t *len = tl__calloc(nk + 1, sizeof(*len));
    redisReply *r = NULL;
    tl_status st = TL_OK;
    long long now;

    if (argv == NULL || len == NULL) {
        st = tl__store_fail(&rs->base, TL_ENOMEM, "redis %s: out of memory", rs->where);
        goto out_free;
    }
    if (nk > INT_MAX - 8) {
        st = tl__redis_unexpected(rs, "listing locks", keys);
        goto out_free;
    }
    for (size_t i = 0; i < nk; i++) {
        const redisReply *k = el_str(keys, i);
        if (k == NULL || k->len <= plen) {
            st = tl__redis_unexpected(rs, "listing locks", keys);
            goto out_free;
        }
        argv[i] = k->str;
        len[i] = k->len;
    }
    argv[nk] = rs->prefix;
    len[nk] = strlen(rs->prefix);
    st = tl__redis_eval(rs, SC_READ_MANY, (int)nk, (int)nk + 1, argv, len, &r, "listing locks");
    if (st != TL_OK)
        goto out_free;
    if (!el_int(r, 0, &now) || r->elements != nk + 1) {
        st = tl__redis_unexpected(rs, "listing locks", r);
        goto out_free;
    }
    for (size_t i = 0; i < nk && st == TL_OK; i++) {
        const redisReply *e = r->element[i + 1];
        if (e->type == REDIS_REPLY_INTEGER)
            continue; /* released between SCAN and now */

        const char *key = argv[i] + plen;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !is_text(keys->element[i]) ||
            tl__check_id(key, TL_KEY_MAX) != NULL) {
            st = tl__store_fail(&rs->base, TL_ESTORE,
                                "redis %s: listing locks: the Redis key \"%.*s\" is not a "
                                "tasklock record (delete it)",
                                rs->where, (int)(len[i] > 200 ? 200 : len[i]), argv[i]);
            break;
        }
        st = push_holders(rs, e, key, now, arr, n, cap, "listing locks");
    }

out_free:
    freeReplyObject(r);
    tl__free(argv);
    tl__free(len);
    return st;
}

tl_status tl__redis_list(struct tl_store *s, struct tl_record ***out, size_t *count)
{
    struct redis_store *rs = (struct redis_store *)s;
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    char cursor[32] = "0", scount[16];
    char *pattern = tl__redis_scan_pattern(rs, "lock:");
    tl_status st = TL_OK;

    if (pattern == NULL)
        return tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
    (void)snprintf(scount, sizeof(scount), "%d", SCAN_COUNT);
    tl__redis_begin_call(rs, 0);
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", scount};
        redisReply *r = NULL;

        rs->out.len = 0;
        if (!tl__redis_buf_cmd(&rs->out, 6, argv, NULL)) {
            st = tl__store_fail(s, TL_ENOMEM, "redis %s: out of memory", rs->where);
            break;
        }
        if ((st = tl__redis_exchange1(rs, &r, "listing locks")) != TL_OK)
            break;
        const redisReply *next = el_str(r, 0);
        if (r->type == REDIS_REPLY_ERROR) {
            st = tl__redis_error_reply(rs, "listing locks", r);
        } else if (next == NULL || next->len >= sizeof(cursor) || r->elements != 2 ||
                   r->element[1]->type != REDIS_REPLY_ARRAY) {
            st = tl__redis_unexpected(rs, "listing locks", r);
        } else {
            memcpy(cursor, next->str, next->len + 1);
            if (r->element[1]->elements > 0)
                st = list_batch(rs, r->element[1], &arr, &n, &cap);
        }
        freeReplyObject(r);
        /* Each round trip gets its own time: a large keyspace takes many. */
        tl__redis_begin_call(rs, 0);
    } while (st == TL_OK && strcmp(cursor, "0") != 0);
    tl__free(pattern);

    if (st != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return st;
    }
    if (n > 1) {
        /* SCAN may return a key twice: sort by key and token, then drop repeats. */
        qsort(arr, n, sizeof(struct tl_record *), cmp_record_key);
        size_t j = 1;
        for (size_t i = 1; i < n; i++) {
            if (cmp_record_key(&arr[i], &arr[j - 1]) == 0)
                tl__record_free(arr[i]);
            else
                arr[j++] = arr[i];
        }
        n = j;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

tl_status tl__redis_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                            size_t *count)
{
    struct redis_store *rs = (struct redis_store *)s;
    char rk[RKEY_SIZE], lk[RKEY_SIZE], wk[RKEY_SIZE], what[TL_KEY_MAX + 32];
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    redisReply *r = NULL;
    long long now;
    tl_status st;

    tl__redis_begin_call(rs, 0);
    tl__redis_make_key(rs, rk, "lock:", key);
    tl__redis_make_key(rs, lk, "line:", key);
    tl__redis_make_key(rs, wk, "waiters:", key);
    cat3(what, sizeof(what), "reading the holders of ", key, NULL);
    const char *argv[] = {rk, lk, wk};
    st = tl__redis_eval(rs, SC_HOLDERS, 3, 3, argv, NULL, &r, what);
    if (st != TL_OK)
        return st;
    if (!el_int(r, 0, &now) || r->elements < 2) {
        st = tl__redis_unexpected(rs, what, r);
    } else {
        /* The reply is {now, waiting, holders...}: push_holders reads from its element 1. */
        redisReply tail = *r;
        tail.element = r->element + 1;
        tail.elements = r->elements - 1;
        st = push_holders(rs, &tail, key, now, &arr, &n, &cap, what);
    }
    freeReplyObject(r);
    if (st != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return st;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}
