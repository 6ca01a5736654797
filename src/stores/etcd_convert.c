/*
 * etcd_convert.c -- the etcd store's conversions (store.h, convert) and what its waiters keep
 * for the wait-for graph (store.h, version 5).
 *
 * A conversion is one transaction that compares l/KEY's mod_revision with the one read, so it
 * decides on exactly the set of holders it replaces, and takes the transaction's revision as
 * the holder's new token:
 *
 *   downgrade  l/KEY becomes a set of one shared holder (etcd_modes.c) with a new nonce, its
 *              liveness moves from h/KEY to PREFIX s/KEY ETCD_SEP NONCE on the holder's lease,
 *              h/KEY stays on no lease and o/KEY goes, as for a shared claim of a free key.
 *   upgrade    l/KEY becomes an exclusive record with a new nonce, o/KEY and h/KEY (on the
 *              lease) are written, every shared liveness key goes; displaced stale holders are
 *              compared still gone, and the upgrader's waiter is deleted in the same step.
 *
 * A lost answer is settled as a claim's is: the next attempt reads again and finds its nonce.
 *
 * An upgrade beside other holders joins the line (one transaction that also compares l/KEY, so
 * that it never joins beside a set that has changed) with priority TL_PRIORITY_UPGRADE and, in
 * the waiter's value, "upgrading": the token it converts. The waiter's wait (etcd_read.c) reads
 * that at the head and is woken when no other holder counts: it watches l/KEY, which every
 * change of the set rewrites.
 *
 * Every waiter's value also keeps the holding text of its latest claim ("holding"; absent when
 * it holds nothing, and in waiters written before the wait-for graph): written when it joins,
 * rewritten at a refresh only when the text changed (a rewrite keeps the key's create revision,
 * its seq, and its "since"). Watches on waiter keys ignore puts, so a rewrite wakes nobody.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_int.h"

/* ---- waiter values ---- */

char *tl__etcd_waiter_value(const struct tl_claim *req, int64_t since, uint64_t upgrading)
{
    json_t *v = json_pack("{s:s, s:s, s:i, s:I, s:I}", "worker", req->worker_id, "node",
                          req->node_id, "priority", (int)req->priority, "since", (json_int_t)since,
                          "timeout", (json_int_t)req->waiter_timeout_ms);
    bool ok = v != NULL;

    if (ok && req->holding != NULL && req->holding[0] != '\0')
        tl__etcd_set(v, "holding", json_string(req->holding), &ok);
    if (ok && upgrading != 0)
        tl__etcd_set(v, "upgrading", tl__etcd_i64s((int64_t)upgrading), &ok);
    char *text = ok ? json_dumps(v, JSON_COMPACT) : NULL;
    char *out = text ? tl__strdup(text) : NULL;

    json_decref(v);
    free(text);
    return out;
}

bool tl__etcd_waiter_parse(const struct etcd_kv *w, struct etcd_waiter_info *out)
{
    json_t *v = json_loadb(w->value, w->value_len, 0, NULL);
    json_t *since = json_object_get(v, "since"), *h = json_object_get(v, "holding");
    int64_t up = 0;

    memset(out, 0, sizeof(*out));
    out->since = json_is_integer(since) ? json_integer_value(since) : 0;
    out->upgrading = tl__etcd_i64(v, "upgrading", &up) && up > 0 ? (uint64_t)up : 0;
    out->holding = tl__strdup(json_is_string(h) ? json_string_value(h) : "");
    json_decref(v);
    return out->holding != NULL;
}

tl_status tl__etcd_line_put(struct tl_store *s, const struct etcd_names *k,
                            const struct tl_claim *req, const struct etcd_kv *w, uint64_t upgrading,
                            int64_t at, int64_t l_mod, bool *written)
{
    struct etcd_store *es = es_of(s);
    int64_t wl = 0, sent = 0, since = at;
    tl_status st = tl__etcd_lease_for(s, req->waiter_timeout_ms, &wl, &sent);

    *written = true;
    if (st != TL_OK)
        return st;
    if (w != NULL) {
        struct etcd_waiter_info wi;
        if (!tl__etcd_waiter_parse(w, &wi))
            return tl__etcd_oom(s);
        bool same =
            strcmp(wi.holding, req->holding ? req->holding : "") == 0 && wi.upgrading == upgrading;
        since = wi.since;
        tl__free(wi.holding);
        if (same)
            return TL_OK; /* its lease, kept alive above, is its heartbeat */
    }
    bool ok = true;
    char *value = tl__etcd_waiter_value(req, since, upgrading);
    json_t *compare = json_array(), *ops = json_array(), *ans = NULL;
    if (w == NULL)
        tl__etcd_push(compare, tl__etcd_cmp(k->waiter, NULL, "CREATE", "EQUAL", 0, &ok), &ok);
    else
        tl__etcd_push(compare, tl__etcd_cmp(k->waiter, NULL, "MOD", "EQUAL", w->mod, &ok), &ok);
    if (l_mod > 0)
        tl__etcd_push(compare, tl__etcd_cmp(k->l, NULL, "MOD", "EQUAL", l_mod, &ok), &ok);
    tl__etcd_push(ops, value ? tl__etcd_op_put(k->waiter, value, wl, &ok) : NULL, &ok);
    tl__free(value);
    st = tl__etcd_txn(s, compare, ops, NULL, ok, TL_ETCD_WRITE, &ans);
    if (st == TL_OK)
        *written = tl__etcd_txn_succeeded(ans);
    json_decref(ans);
    if (st != TL_OK && tl__etcd_unsure(es))
        return TL_OK; /* the next claim sees whether it is there */
    if (st != TL_OK && tl__etcd_lease_gone(es))
        tl__etcd_forget_lease(es, wl);
    return st;
}

/* ---- convert ---- */

/* Fills out->rec as the holder's new record, granted at revision `rev`. */
static tl_status converted(struct tl_store *s, const struct tl_claim *req, int64_t rev,
                           int64_t lease, int64_t at, struct tl_claim_result *out)
{
    struct tl_record *r = &out->rec;

    memset(r, 0, sizeof(*r));
    r->info.key = tl__strdup(req->key);
    r->info.worker_id = tl__strdup(req->worker_id);
    r->info.node_id = tl__strdup(req->node_id);
    r->info.task_info = tl__strdup(req->task_info);
    r->opaque = tl__asprintf("%llx", (unsigned long long)lease);
    if (!r->info.key || !r->info.worker_id || !r->info.node_id || !r->info.task_info ||
        !r->opaque) {
        tl__record_clear(r);
        return tl__etcd_oom(s);
    }
    r->info.token = (uint64_t)rev;
    r->info.claimed_at_ms = r->info.heartbeat_at_ms = r->info.observed_at_ms = at;
    r->info.lock_timeout_ms = req->lock_timeout_ms;
    r->info.mode = req->shared ? TL_SHARED : TL_EXCLUSIVE;
    r->info.slots = req->shared ? req->slots : 0;
    return TL_OK;
}

/* The ops of a downgrade of the exclusive holder to a set of one shared holder. */
static json_t *downgrade_ops(struct tl_store *s, const struct etcd_names *k,
                             const struct tl_claim *req, const char *nonce, int64_t at,
                             int64_t lease, bool *ok)
{
    struct etcd_store *es = es_of(s);
    json_t *ops = json_array();
    char *value = tl__etcd_group_value(NULL, NULL, req, nonce, at, req->slots, ok);
    char *live = tl__etcd_live_value(req->lock_timeout_ms);
    char *lk = tl__etcd_shared_live_key(es, req->key, nonce);

    tl__etcd_push(ops, value ? tl__etcd_op_put(k->l, value, 0, ok) : NULL, ok);
    /* h/KEY on no lease while the key is shared (etcd_modes.c). */
    tl__etcd_push(ops, live ? tl__etcd_op_put(k->h, live, 0, ok) : NULL, ok);
    tl__etcd_push(ops, live && lk ? tl__etcd_op_put(lk, live, lease, ok) : NULL, ok);
    tl__etcd_push(ops, tl__etcd_op_delete(k->o, NULL, ok), ok);
    tl__free(value);
    tl__free(live);
    tl__free(lk);
    return ops;
}

/* The ops of an upgrade of a shared holder to the exclusive one. */
static json_t *upgrade_ops(const struct etcd_names *k, const struct tl_claim *req,
                           const char *nonce, int64_t at, int64_t lease, bool *ok)
{
    json_t *ops = json_array();
    char *value = tl__etcd_record_value(req, nonce, at);
    char *live = tl__etcd_live_value(req->lock_timeout_ms);

    tl__etcd_push(ops, value ? tl__etcd_op_put(k->l, value, 0, ok) : NULL, ok);
    tl__etcd_push(ops, tl__etcd_op_put(k->o, req->worker_id, 0, ok), ok);
    tl__etcd_push(ops, live ? tl__etcd_op_put(k->h, live, lease, ok) : NULL, ok);
    tl__etcd_push(ops, tl__etcd_op_delete(k->s, k->s_end, ok), ok);
    if (req->waiter_id != NULL)
        tl__etcd_push(ops, tl__etcd_op_delete(k->waiter, NULL, ok), ok);
    tl__free(value);
    tl__free(live);
    return ops;
}

/* An upgrade beside other holders: the oldest of them, and the upgrader's place in line. */
static tl_status upgrade_busy(struct tl_store *s, const struct etcd_names *k,
                              const struct tl_record *held, const struct tl_claim *req,
                              const struct etcd_key_state *ks, const struct etcd_group *g,
                              size_t other, int64_t at, struct tl_claim_result *out, bool *again)
{
    struct etcd_store *es = es_of(s);
    long mine = tl__etcd_line_index(ks, req->waiter_id);
    uint32_t waiting = (uint32_t)ks->nline, ahead = 0;
    tl_status st;

    *again = false;
    for (size_t i = 0; i < ks->nline; i++)
        if (mine >= 0 ? (long)i < mine : ks->line[i].priority >= req->priority)
            ahead++;
    if (req->waiter_id != NULL) {
        bool written = true;
        st = tl__etcd_line_put(s, k, req, mine >= 0 ? &ks->line[mine].kv : NULL, held->info.token,
                               at, ks->l.mod, &written);
        if (st != TL_OK)
            return st;
        if (!written) {
            *again = true; /* the set (or our place) changed since the read: decide again */
            return TL_OK;
        }
        if (mine < 0)
            waiting++;
        tl__free(es->wait_key);
        es->wait_key = tl__strdup(req->key);
        (void)snprintf(es->wait_id, sizeof(es->wait_id), "%s", req->waiter_id);
        es->wait_mode = req->mode;
        es->wait_shared = false;
        es->wait_slots = 0;
    }
    out->waiting = waiting;
    out->ahead = ahead;
    if ((st = tl__etcd_holder_judged(s, g, other, &out->rec)) != TL_OK)
        return st;
    out->holder_known = true;
    return TL_EBUSY;
}

tl_status tl__etcd_convert(struct tl_store *s, const struct tl_record *held,
                           const struct tl_claim *req, struct tl_claim_result *out)
{
    struct etcd_store *es = es_of(s);
    struct etcd_names k;
    struct etcd_key_state ks = {0};
    struct etcd_group g = {0};
    char nonce[33];
    int64_t at = now_ms(s), lease = 0, beat_sent = 0, call_start = mono(s);
    tl_status st;

    if (req->mode == TL_CLAIM_FORCE)
        return tl__store_fail(s, TL_EINVAL, "etcd: a conversion is never forced");
    tl__etcd_random_hex(nonce, 16);
    if ((st = tl__etcd_names_for(s, held->info.key, req->waiter_id, &k)) != TL_OK)
        return st;
    for (int attempt = 0;; attempt++) {
        tl__etcd_group_clear(&g);
        tl__etcd_state_clear(&ks);
        if (s->deadline_mono_ms != 0 && attempt > 0 && mono(s) >= s->deadline_mono_ms) {
            st = tl__store_fail(s, TL_ETIMEDOUT, "etcd: conversion of %s: out of time",
                                held->info.key);
            goto out;
        }
        if (attempt > 50) {
            st = tl__store_fail(s, TL_ESTORE,
                                "etcd: conversion of %s: the key changed under every one of 50 "
                                "attempts",
                                held->info.key);
            goto out;
        }
        if (attempt > 0)
            tl__etcd_contention_pause(s, attempt);
        if ((st = tl__etcd_read_state(s, &k, &ks)) != TL_OK ||
            (st = tl__etcd_group_of(s, held->info.key, &ks, &g)) != TL_OK)
            goto out;

        /* Our own earlier attempt may have converted (its answer was lost). */
        for (size_t i = 0; i < g.n; i++) {
            if (strcmp(g.h[i].nonce, nonce) == 0) {
                st = converted(s, req, (int64_t)g.h[i].rec.info.token,
                               g.h[i].live ? g.h[i].live->lease : lease, at, out);
                goto done;
            }
        }
        long i = tl__etcd_group_find(&g, held->info.token, held->info.worker_id);
        if (i < 0) {
            st = tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu",
                                held->info.key, held->info.worker_id,
                                (unsigned long long)held->info.token);
            goto out;
        }
        if (req->shared != g.exclusive) {
            st = tl__store_fail(s, TL_EINVAL, "%s (token %llu) is %s already", held->info.key,
                                (unsigned long long)held->info.token,
                                g.exclusive ? "exclusive" : "shared");
            goto out;
        }

        bool ok = true;
        char detail[400];
        json_t *compare = json_array(), *ops = NULL, *ans = NULL;
        int k_len = snprintf(detail, sizeof(detail), "from token %llu",
                             (unsigned long long)held->info.token);
        tl__etcd_push(compare, tl__etcd_cmp(k.l, NULL, "MOD", "EQUAL", ks.l.mod, &ok), &ok);
        if (!req->shared) {
            /* The other holders that count: all, or the live ones when stealing. */
            size_t counted = 0, other = 0, displaced = 0;
            for (size_t j = 0; j < g.n; j++) {
                if ((long)j == i)
                    continue;
                if (req->mode == TL_CLAIM_STEAL && g.h[j].live == NULL) {
                    /* Stale: displaced by a win, if it is still gone then. */
                    char *lk = tl__etcd_shared_live_key(es, held->info.key, g.h[j].nonce);
                    tl__etcd_push(compare,
                                  lk ? tl__etcd_cmp(lk, NULL, "CREATE", "EQUAL", 0, &ok) : NULL,
                                  &ok);
                    tl__free(lk);
                    if (k_len > 0 && (size_t)k_len < sizeof(detail)) {
                        int n = snprintf(detail + k_len, sizeof(detail) - (size_t)k_len,
                                         "%s%s (token %llu)", displaced ? ", " : "; displaced ",
                                         g.h[j].rec.info.worker_id,
                                         (unsigned long long)g.h[j].rec.info.token);
                        k_len = n < 0 ? -1 : k_len + n;
                    }
                    displaced++;
                    continue;
                }
                if (counted++ == 0)
                    other = j;
            }
            if (counted > 0) {
                json_decref(compare);
                bool again = false;
                st = upgrade_busy(s, &k, held, req, &ks, &g, other, at, out, &again);
                if (st == TL_OK && again)
                    continue;
                goto out;
            }
        }
        if ((st = tl__etcd_lease_for(s, req->lock_timeout_ms, &lease, &beat_sent)) != TL_OK) {
            json_decref(compare);
            goto out;
        }
        ops = req->shared ? downgrade_ops(s, &k, req, nonce, at, lease, &ok)
                          : upgrade_ops(&k, req, nonce, at, lease, &ok);
        tl__etcd_push(ops,
                      tl__etcd_op_event(es, held->info.key,
                                        req->shared ? TL_EVENT_DOWNGRADED : TL_EVENT_UPGRADED,
                                        req->worker_id, req->node_id, 0, at, detail, 0, &ok),
                      &ok);
        st = tl__etcd_txn(s, compare, ops, NULL, ok, TL_ETCD_WRITE, &ans);
        if (st == TL_OK && tl__etcd_txn_succeeded(ans)) {
            st = converted(s, req, tl__etcd_header_revision(ans), lease, at, out);
            json_decref(ans);
            goto done;
        }
        json_decref(ans);
        if (st != TL_OK && tl__etcd_lease_gone(es)) {
            tl__etcd_forget_lease(es, lease);
            continue;
        }
        if (st != TL_OK && !tl__etcd_unsure(es))
            goto out;
        /* The set changed since we read it, or the answer was lost: again. */
    }
done:
    if (st == TL_OK) {
        if (beat_sent != 0 && beat_sent < call_start)
            out->beat_sent_mono_ms = beat_sent;
        if (es->wait_key != NULL && req->waiter_id != NULL &&
            strcmp(es->wait_id, req->waiter_id) == 0) {
            tl__free(es->wait_key);
            es->wait_key = NULL;
        }
        tl__etcd_turn_end(s); /* a watch left open for this waiter is of no more use */
    }
out:
    tl__etcd_group_clear(&g);
    tl__etcd_state_clear(&ks);
    tl__etcd_names_clear(&k);
    return st;
}
