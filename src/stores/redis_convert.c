/*
 * redis_convert.c -- the Redis store's conversions (store.h version 5, convert): an upgrade or
 * a downgrade of one holder is one script (redis_convert_scripts.h, which describes the fields
 * an upgrader's waiter adds), so it is atomic and takes one round trip.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "redis_int.h"
#include "store.h"
#include "tl.h"

/* The scripts report an upgrader's priority as this number (redis_convert_scripts.h). */
_Static_assert(TL_PRIORITY_UPGRADE == 1001, "UPGRADE in redis_convert_scripts.h");

tl_status tl__redis_convert(struct tl_store *s, const struct tl_record *held,
                            const struct tl_claim *req, struct tl_claim_result *out)
{
    struct redis_store *rs = (struct redis_store *)s;
    char rk[RKEY_SIZE], ck[RKEY_SIZE], hk[RKEY_SIZE], lk[RKEY_SIZE], wk[RKEY_SIZE], sk[RKEY_SIZE];
    char gk[RKEY_SIZE], wp[RKEY_SIZE], chan[RKEY_SIZE], nonce[40], token[24], ttl[24], hmax[24];
    char prio[24], wtimeout[24], slots[24], what[TL_KEY_MAX + 32];
    const char *key = held->info.key;
    redisReply *r = NULL;
    long long now, waiting, ahead;
    tl_status st;

    cat3(what, sizeof(what), req->shared ? "downgrading " : "upgrading ", key, NULL);
    if (req->mode != TL_CLAIM_NORMAL && req->mode != TL_CLAIM_STEAL)
        return tl__store_fail(s, TL_EINVAL, "redis %s: %s: a conversion is normal or stealing",
                              rs->where, what);
    if (req->waiter_id != NULL) {
        if (!tl__redis_waiter_id_ok(req->waiter_id))
            return tl__redis_bad_waiter_id(rs, what);
        if (req->priority < TL_PRIORITY_MIN || req->priority > TL_PRIORITY_UPGRADE)
            return tl__store_fail(s, TL_EINVAL, "redis %s: %s: priority %ld is not in %d..%d",
                                  rs->where, what, (long)req->priority, TL_PRIORITY_MIN,
                                  TL_PRIORITY_UPGRADE);
        /* The waiter's fields are kept newline-separated: ids must be ids. */
        if (tl__check_id(held->info.worker_id, TL_ID_MAX) != NULL ||
            tl__check_id(req->node_id, TL_ID_MAX) != NULL)
            return tl__store_fail(s, TL_EINVAL, "redis %s: %s: bad worker or node id", rs->where,
                                  what);
    }
    tl__redis_begin_call(rs, 0);
    tl__redis_make_key(rs, rk, "lock:", key);
    tl__redis_make_key(rs, ck, "token:", key);
    tl__redis_make_key(rs, hk, "history", NULL);
    tl__redis_make_key(rs, lk, "line:", key);
    tl__redis_make_key(rs, wk, "waiters:", key);
    tl__redis_make_key(rs, sk, "lineseq:", key);
    tl__redis_make_key(rs, gk, "lines", NULL);
    tl__redis_make_key(rs, chan, "released:", key);
    tl__redis_wake_prefix(rs, wp, key);
    tl__redis_new_nonce(rs, nonce);
    u64_text(held->info.token, token);
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
                          held->info.worker_id,
                          req->node_id ? req->node_id : "?",
                          token,
                          req->mode == TL_CLAIM_STEAL ? "steal" : "normal",
                          req->shared ? "1" : "0",
                          slots,
                          ttl,
                          hmax,
                          key,
                          req->waiter_id ? req->waiter_id : "",
                          prio,
                          wtimeout,
                          wp,
                          req->waiter_id && req->holding ? req->holding : "",
                          nonce,
                          chan};

    st = tl__redis_eval(rs, SC_CONVERT, 7, 23, argv, NULL, &r, what);
    if (st != TL_OK)
        return st;
    if (el_is(r, 0, "lost") && r->elements == 2 && el_int(r, 1, &now)) {
        st = tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu", key,
                            held->info.worker_id, (unsigned long long)held->info.token);
        goto out_free;
    }
    bool won = el_is(r, 0, "won"), busy = el_is(r, 0, "busy");
    if ((!won && !busy) || r->elements != 14 || !el_int(r, 1, &now) || !el_int(r, 12, &waiting) ||
        !el_int(r, 13, &ahead) || waiting < 0 || ahead < 0 || waiting > UINT32_MAX ||
        ahead > UINT32_MAX) {
        st = tl__redis_unexpected(rs, what, r);
        goto out_free;
    }
    st = tl__redis_parse_holder(rs, r, 3, key, &out->rec, what);
    if (st != TL_OK)
        goto out_free;
    tl__record_judge(&out->rec, now);
    out->holder_known = busy;
    out->waiting = (uint32_t)waiting;
    out->ahead = (uint32_t)ahead;
    st = busy ? TL_EBUSY : TL_OK;

out_free:
    freeReplyObject(r);
    return st;
}
