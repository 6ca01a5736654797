/*
 * convert.c -- tl_upgrade() and tl_downgrade(): a held lock changes its mode as a new grant
 * (DESIGN.md section 9; store.h, convert).
 *
 * The handle stays; its record takes the new token and mode. The heartbeat thread renews by
 * token, so it must not renew the old one while the store converts it (the renew would find the
 * lock gone and declare it lost): each conversion call waits for a renewal in flight and holds
 * the heartbeat off that lock (`extending`, as tl_extend() does) until the record is updated.
 * Between the calls of a waiting upgrade the heartbeat renews the shared lock as usual.
 */
#include <stdio.h>
#include <string.h>

#include "manager.h"
#include "store.h"
#include "tl.h"

/* Holds the heartbeat off `l` for one store call. TL_OK, or why the lock cannot be converted. */
static tl_status begin_call(tl_lock *l, int64_t *lose_at)
{
    tl_manager *m = l->m;
    int64_t now = m->clock.mono_ms(m->clock.ud);
    bool fire = false;
    tl_status st = TL_OK;

    pthread_mutex_lock(&m->mu);
    while (l->renewing)
        pthread_cond_wait(&m->renewed, &m->mu);
    if (l->state == TL_HELD && now >= l->lose_at_mono_ms) {
        l->expired = true;
        fire = tl__lock_mark_lost_locked(l);
    }
    if (l->state == TL_RELEASED || l->state == TL_RELEASING)
        st = TL_ENOTOWNER;
    else if (l->state == TL_LOST)
        st = TL_ELOST;
    else
        l->extending = true;
    *lose_at = l->lose_at_mono_ms;
    pthread_mutex_unlock(&m->mu);
    if (fire)
        tl__lock_fire_lost(l);
    /* In the store's slot: the claim loop makes it the call's message. */
    if (st == TL_ENOTOWNER)
        return tl__store_fail(m->store, st, "lock %s was released", l->rec.info.key);
    if (st == TL_ELOST)
        return tl__store_fail(m->store, st,
                              "lock %s was lost (stolen, forced, or not renewed in time)",
                              l->rec.info.key);
    return TL_OK;
}

/* Ends the call: on TL_OK takes the new record into the handle (the key string stays: other
 * threads may hold tl_lock_key()'s pointer), as renewed at `sent`. */
static tl_status end_call(tl_lock *l, tl_status st, struct tl_claim_result *res, int64_t sent)
{
    tl_manager *m = l->m;
    int64_t replied = m->clock.mono_ms(m->clock.ud), due = 0, lose = 0;
    bool fire = false;

    pthread_mutex_lock(&m->mu);
    l->extending = false;
    if (st == TL_OK && l->state == TL_HELD && replied < l->lose_at_mono_ms) {
        char *key = l->rec.info.key;
        tl__free(res->rec.info.key);
        res->rec.info.key = key;
        l->rec.info.key = NULL;
        tl__record_clear(&l->rec);
        l->rec = res->rec;
        memset(&res->rec, 0, sizeof(res->rec));
        l->heartbeat_at_ms = l->rec.info.heartbeat_at_ms;
        if (res->beat_sent_mono_ms != 0 && res->beat_sent_mono_ms < sent)
            sent = res->beat_sent_mono_ms;
        tl__lock_renewed_locked(l, sent);
        tl__lock_schedule_locked(l, sent, replied);
        due = l->next_due_mono_ms;
        lose = l->lose_at_mono_ms;
    } else if (st == TL_OK || st == TL_ELOST) {
        /* Converted too late to be safe, or gone: either way no longer ours to use. */
        if (l->state == TL_HELD) {
            l->expired = st == TL_OK;
            fire = tl__lock_mark_lost_locked(l);
        }
        if (st == TL_OK)
            (void)tl__store_fail(m->store, TL_ELOST,
                                 "lock %s: the store answered the conversion after the loss "
                                 "deadline",
                                 l->rec.info.key);
        st = TL_ELOST;
    }
    pthread_mutex_unlock(&m->mu);
    if (fire)
        tl__lock_fire_lost(l);
    if (due != 0 && tl__heartbeat_start(m, due, lose) != TL_OK)
        TL_LOG(&m->log, TL_LOG_WARN, "%s: could not wake the heartbeat", l->rec.info.key);
    return st;
}

/* One conversion call (an attempt of the claim loop for an upgrade). */
static tl_status convert_attempt(tl_manager *m, void *ctx, struct tl_claim *req,
                                 struct tl_claim_result *res)
{
    tl_lock *l = ctx;
    int64_t lose_at, deadline = m->store->deadline_mono_ms;
    tl_status st = begin_call(l, &lose_at);

    if (st != TL_OK)
        return st; /* the message is the call's; the claim loop keeps it */
    int64_t sent = m->clock.mono_ms(m->clock.ud);
    if (deadline == 0 || lose_at < deadline)
        m->store->deadline_mono_ms = lose_at;
    st = m->store->ops->convert(m->store, &l->rec, req, res);
    m->store->deadline_mono_ms = deadline;
    return end_call(l, st, res, sent);
}

/* One conversion call of a lock without a handle (the *_token calls). */
static tl_status record_attempt(tl_manager *m, void *ctx, struct tl_claim *req,
                                struct tl_claim_result *res)
{
    return m->store->ops->convert(m->store, ctx, req, res);
}

static tl_status check_store(tl_manager *m)
{
    tl_status st;

    if ((st = tl__ensure_connected(m)) != TL_OK)
        return st;
    const struct tl_store_ops *ops = m->store->ops;
    if (ops->version < 5 || ops->convert == NULL || !m->store->modes)
        return tl__fail(m, TL_ENOTSUP, "the %s store cannot upgrade or downgrade locks yet",
                        ops->scheme);
    return TL_OK;
}

static tl_status check(tl_lock *l, tl_mode from)
{
    tl_manager *m = l->m;
    tl_status st;

    if ((st = check_store(m)) != TL_OK)
        return st;
    pthread_mutex_lock(&m->mu);
    tl_mode mode = l->rec.info.mode;
    enum tl_lock_state state = l->state;
    pthread_mutex_unlock(&m->mu);
    if (state == TL_RELEASED || state == TL_RELEASING)
        return tl__fail(m, TL_ENOTOWNER, "lock %s was released", l->rec.info.key);
    if (mode != from)
        return tl__fail(m, TL_EINVAL, "lock %s (token %llu) is %s already", l->rec.info.key,
                        (unsigned long long)tl_lock_token(l),
                        mode == TL_SHARED ? "shared" : "exclusive");
    return TL_OK;
}

/* A downgrade of `rec` (a handle's, with `l`; else a record of the *_token calls). */
static tl_status downgrade(tl_manager *m, tl_lock *l, struct tl_record *rec,
                           struct tl_claim_result *res)
{
    struct tl_claim req = {
        .key = rec->info.key,
        .worker_id = m->worker_id,
        .node_id = m->node_id,
        .task_info = rec->info.task_info,
        .lock_timeout_ms = rec->info.lock_timeout_ms,
        .mode = TL_CLAIM_NORMAL,
        .shared = true,
    };

    m->store->errmsg[0] = '\0';
    tl_status st = l != NULL ? convert_attempt(m, l, &req, res) : record_attempt(m, rec, &req, res);
    return st == TL_OK ? TL_OK : tl__mgr_fail(m, st);
}

/* An upgrade of `rec` (as for downgrade()), waiting as `opts` says. */
static tl_status upgrade(tl_manager *m, tl_lock *l, struct tl_record *rec,
                         const struct tl_acquire_opts *opts, struct tl_claim_result *res)
{
    static const struct tl_acquire_opts defaults;

    tl__record_free(m->last_holder);
    m->last_holder = NULL;
    if (opts == NULL)
        opts = &defaults;
    if (opts->strategy == TL_FORCE_ACQUIRE || opts->priority != 0 || opts->mode != TL_EXCLUSIVE ||
        opts->slots != 0)
        return tl__fail(m, TL_EINVAL,
                        "an upgrade waits at the head of the line for the other holders to "
                        "leave: a forced strategy, a priority, a mode and slots are refused");

    struct acquire_plan plan = {0};
    uint32_t timeout = rec->info.lock_timeout_ms;
    tl_status st = tl__plan_acquire(m, opts, timeout, &plan);
    if (st != TL_OK || (st = tl__check_holding(m, opts->holding)) != TL_OK)
        return st;
    /* A lock without a handle is not among the manager's: the graph must still see it held. */
    char extra[TL_HOLDING_MAX / 2 + TL_KEY_MAX + 32] = "";
    if (l == NULL)
        (void)snprintf(extra, sizeof(extra), "%s %llu", rec->info.key,
                       (unsigned long long)rec->info.token);
    if (opts->holding != NULL && opts->holding[0] != '\0') {
        size_t n = strlen(extra);
        (void)snprintf(extra + n, sizeof(extra) - n, "%s%s", n ? " " : "", opts->holding);
    }

    char waiter_id[33];
    struct tl_claim req = {
        .key = rec->info.key,
        .worker_id = m->worker_id,
        .node_id = m->node_id,
        .task_info = rec->info.task_info,
        .lock_timeout_ms = timeout,
        .mode = plan.mode,
        .priority = TL_PRIORITY_UPGRADE,
    };
    if (plan.line) {
        tl__make_waiter_id(m, waiter_id);
        req.waiter_id = waiter_id;
        req.waiter_timeout_ms = tl__waiter_timeout(m, m->store, timeout);
    }
    struct tl_loop lp = {.req = &req,
                         .extra = extra[0] != '\0' ? extra : NULL,
                         .plan = &plan,
                         .cancel = opts->cancel,
                         .attempt = l != NULL ? convert_attempt : record_attempt,
                         .ctx = l != NULL ? (void *)l : (void *)rec};
    st = tl__claim_loop(m, &lp);
    *res = lp.res;
    return st;
}

tl_status tl_downgrade(tl_lock *l)
{
    if (l == NULL)
        return TL_EINVAL;
    tl__begin(l->m);
    tl_status st = check(l, TL_EXCLUSIVE);
    if (st != TL_OK)
        return st;
    struct tl_claim_result res = {0};
    st = downgrade(l->m, l, &l->rec, &res);
    tl__record_clear(&res.rec);
    return st;
}

tl_status tl_upgrade(tl_lock *l, const struct tl_acquire_opts *opts)
{
    if (l == NULL)
        return TL_EINVAL;
    tl__begin(l->m);
    tl_status st = check(l, TL_SHARED);
    if (st != TL_OK)
        return st;
    struct tl_claim_result res = {0};
    st = upgrade(l->m, l, &l->rec, opts, &res);
    tl__record_clear(&res.rec);
    return st;
}

/* The *_token calls: the holder's record, checked to be ours and in mode `from`. */
static tl_status token_holder(tl_manager *m, const char *key, uint64_t token, tl_mode from,
                              struct tl_record *rec)
{
    bool ours = false;
    tl_status st;

    memset(rec, 0, sizeof(*rec));
    tl__begin(m);
    if ((st = check_store(m)) != TL_OK || (st = tl__check_key(m, key)) != TL_OK ||
        (st = tl__token_record(m, key, token, rec, &ours)) != TL_OK)
        return st;
    if (!ours)
        return tl__fail(m, TL_ELOST, "lock %s with token %llu is not held by %s", key,
                        (unsigned long long)token, m->worker_id);
    if (rec->info.mode != from) {
        tl__record_clear(rec);
        return tl__fail(m, TL_EINVAL, "lock %s (token %llu) is %s already", key,
                        (unsigned long long)token, from == TL_SHARED ? "exclusive" : "shared");
    }
    return TL_OK;
}

tl_status tl_upgrade_token(tl_manager *m, const char *key, uint64_t token,
                           const struct tl_acquire_opts *opts, uint64_t *new_token)
{
    struct tl_record rec;
    struct tl_claim_result res = {0};

    if (m == NULL)
        return TL_EINVAL;
    tl_status st = token_holder(m, key, token, TL_SHARED, &rec);
    if (st != TL_OK)
        return st;
    st = upgrade(m, NULL, &rec, opts, &res);
    if (st == TL_OK && new_token != NULL)
        *new_token = res.rec.info.token;
    tl__record_clear(&res.rec);
    tl__record_clear(&rec);
    return st;
}

tl_status tl_downgrade_token(tl_manager *m, const char *key, uint64_t token, uint64_t *new_token)
{
    struct tl_record rec;
    struct tl_claim_result res = {0};

    if (m == NULL)
        return TL_EINVAL;
    tl_status st = token_holder(m, key, token, TL_EXCLUSIVE, &rec);
    if (st != TL_OK)
        return st;
    st = downgrade(m, NULL, &rec, &res);
    if (st == TL_OK && new_token != NULL)
        *new_token = res.rec.info.token;
    tl__record_clear(&res.rec);
    tl__record_clear(&rec);
    return st;
}
