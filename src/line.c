/*
 * line.c -- waiting in a key's line (DESIGN.md section 7): the claim loop shared by tl_acquire()
 * and tl_upgrade(), its waits, leaving the line, and the busy message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "manager.h"
#include "store.h"
#include "tl.h"

static void describe_holder(const struct tl_record *h, char *buf, size_t size)
{
    char since[TL_ISO_SIZE];
    int64_t age = h->info.observed_at_ms - h->info.heartbeat_at_ms;

    tl__format_iso(h->info.claimed_at_ms, since);
    if (h->info.observed_at_ms == 0 || age < 0)
        age = 0;
    (void)snprintf(buf, size, "by %s on %s since %s (token %llu, last heartbeat %lld.%llds ago%s)",
                   h->info.worker_id ? h->info.worker_id : "?",
                   h->info.node_id ? h->info.node_id : "?", since,
                   (unsigned long long)h->info.token, (long long)(age / 1000),
                   (long long)(age % 1000 / 100), h->info.stale ? ", stale" : "");
}

/* A waiter's timeout: short, so that a waiter that died frees its place soon, but three of the
 * manager's heartbeat intervals at least; never longer than the lock timeout. Stores whose
 * waiters are claims (GitHub) judge them by the lock timeout. */
uint32_t tl__waiter_timeout(const tl_manager *m, const struct tl_store *s, uint32_t timeout)
{
    uint64_t t = TL_WAITER_TIMEOUT_MS;

    if (s->waiter_timeout_is_lock_timeout)
        return timeout;
    if (3ull * m->heartbeat_ms > t)
        t = 3ull * m->heartbeat_ms;
    return t < timeout ? (uint32_t)t : timeout;
}

/* How often a waiter refreshes its place in line (by claiming again). */
static uint32_t waiter_interval(const struct tl_store *s, uint32_t waiter_timeout_ms)
{
    uint32_t div = s->heartbeat_divisor ? s->heartbeat_divisor : 3;
    uint32_t iv = waiter_timeout_ms / div;

    return iv ? iv : 1;
}

/* 32 lower-case hex digits, unique per acquire call. */
void tl__make_waiter_id(tl_manager *m, char out[33])
{
    unsigned char b[16];

    if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
        /* No entropy yet (early boot): unique enough from the time, the process and our own
         * generator, which differ between every two calls. */
        uint64_t x = (uint64_t)tl__real_now_ms() ^ ((uint64_t)getpid() << 40);
        for (size_t i = 0; i < sizeof(b); i++) {
            x ^= tl__next_random(m);
            b[i] = (unsigned char)(x >> ((i % 8) * 8));
        }
    }
    for (size_t i = 0; i < sizeof(b); i++)
        (void)snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/*
 * Waits in line after a busy claim: until the store wakes this waiter (its turn may have come),
 * or until it must claim again to stay live (its refresh), or the head of a stale holder's line
 * may steal, or patience ends. A cancel flag is looked at every 100 ms.
 */
static tl_status wait_in_line(tl_manager *m, const struct tl_claim *req,
                              const struct tl_claim_result *res, const struct acquire_plan *plan,
                              const volatile sig_atomic_t *cancel)
{
    int64_t now = m->clock.mono_ms(m->clock.ud);
    int64_t next = now + waiter_interval(m->store, req->waiter_timeout_ms);
    bool real = m->clock.sleep_ms == tl__real_clock.sleep_ms;

    if (plan->line_end != 0 && next > plan->line_end)
        next = plan->line_end;
    if (req->mode == TL_CLAIM_STEAL && res->holder_known && res->ahead == 0 &&
        res->rec.info.observed_at_ms != 0) {
        int64_t left = res->rec.info.heartbeat_at_ms + res->rec.info.lock_timeout_ms -
                       res->rec.info.observed_at_ms + 1;
        if (left >= 0 && now + left < next)
            next = now + left;
    }
    while (now < next) {
        if (tl__cancelled(cancel))
            return TL_ECANCELED;
        int64_t slice = next - now;
        bool woken = false;
        if (cancel != NULL && slice > 100)
            slice = 100;
        if (real) {
            m->store->errmsg[0] = '\0';
            if (m->store->ops->wait_turn(m->store, req->key, req->waiter_id, (uint32_t)slice,
                                         &woken) != TL_OK) {
                TL_LOG(&m->log, TL_LOG_DEBUG, "%s: waiting in line failed (%s); sleeping instead",
                       req->key, m->store->errmsg);
                int64_t spent = m->clock.mono_ms(m->clock.ud) - now;
                if (spent < slice)
                    m->clock.sleep_ms(m->clock.ud, (uint32_t)(slice - spent));
            }
        } else {
            m->clock.sleep_ms(m->clock.ud, (uint32_t)slice);
        }
        if (woken) {
            pthread_mutex_lock(&m->mu);
            m->metrics.wakeups++;
            pthread_mutex_unlock(&m->mu);
            return TL_OK;
        }
        now = m->clock.mono_ms(m->clock.ud);
    }
    return tl__cancelled(cancel) ? TL_ECANCELED : TL_OK;
}

/* Leaves the line (giving up, or failing): best effort, since a waiter that is not heard from
 * dies on its own, but then it holds the line up for its timeout. */
static void leave_line(tl_manager *m, const struct tl_claim *req)
{
    char keep[TL_ERRMSG_SIZE];
    int64_t deadline = m->store->deadline_mono_ms;

    memcpy(keep, m->store->errmsg, sizeof(keep));
    m->store->errmsg[0] = '\0';
    /* The acquire's deadline has usually passed (that is why it leaves): leaving gets a short
     * time of its own past it, so that a store that must send it can. */
    int64_t budget = m->clock.mono_ms(m->clock.ud) + TL_LEAVE_BUDGET_MS;
    m->store->deadline_mono_ms = deadline != 0 && deadline > budget ? deadline : budget;
    tl_status st = m->store->ops->leave(m->store, req->key, req->waiter_id);
    m->store->deadline_mono_ms = deadline;
    if (st != TL_OK)
        TL_LOG(&m->log, TL_LOG_WARN,
               "%s: could not leave the line (%s); its place goes dead in %u ms", req->key,
               m->store->errmsg, req->waiter_timeout_ms);
    memcpy(m->store->errmsg, keep, sizeof(keep));
}

/* Records a busy outcome: the holder's record and a message naming it. */
static tl_status fail_busy(tl_manager *m, const char *key, struct tl_claim_result *res,
                           uint32_t attempts)
{
    char holder[200], line[64] = "";

    if (!res->holder_known && res->waiting > 0) {
        return tl__fail(m, TL_EBUSY,
                        "key %s is free, but %u waiting in its line; gave up after %u attempt%s",
                        key, res->waiting, attempts, attempts == 1 ? "" : "s");
    }
    if (!res->holder_known) {
        return tl__fail(m, TL_EBUSY, "key %s is held by another worker (%u attempt%s)%s%s", key,
                        attempts, attempts == 1 ? "" : "s", m->store->errmsg[0] ? ": " : "",
                        m->store->errmsg);
    }
    if (res->waiting > 0)
        (void)snprintf(line, sizeof(line), "; %u waiting", res->waiting);
    m->last_holder = tl__record_new();
    if (m->last_holder != NULL && tl__record_copy(m->last_holder, &res->rec) != TL_OK) {
        tl__free(m->last_holder);
        m->last_holder = NULL;
    }
    describe_holder(&res->rec, holder, sizeof(holder));
    return tl__fail(m, TL_EBUSY, "key %s is held %s%s; gave up after %u attempt%s", key, holder,
                    line, attempts, attempts == 1 ? "" : "s");
}

tl_status tl__check_holding(tl_manager *m, const char *holding)
{
    if (holding == NULL)
        return TL_OK;
    if (strlen(holding) > TL_HOLDING_MAX / 2)
        return tl__fail(m, TL_EINVAL, "holding: over %d bytes", TL_HOLDING_MAX / 2);
    char copy[TL_HOLDING_MAX / 2 + 1];
    (void)snprintf(copy, sizeof(copy), "%s", holding);
    char *save = NULL;
    for (char *k = strtok_r(copy, " ", &save); k != NULL; k = strtok_r(NULL, " ", &save)) {
        char *t = strtok_r(NULL, " ", &save);
        uint64_t token;
        if (!tl_key_is_valid(k) || t == NULL || !tl__parse_u64(t, &token) || token == 0)
            return tl__fail(m, TL_EINVAL,
                            "holding: \"%s\" is not a list of KEY TOKEN pairs (a key, a space, "
                            "its token, a space, ...)",
                            holding);
    }
    return TL_OK;
}

/* The waiter's mode and the locks `m` holds, "MODE KEY TOKEN KEY TOKEN ..." (MODE "s" for a
 * shared claim, else "x"), at most TL_HOLDING_MAX bytes (whole pairs only); NULL when it holds
 * none (or out of memory: the graph then misses this waiter's edges). */
static char *holding_text(tl_manager *m, bool shared, const char *extra)
{
    size_t cap = 256, len = 1;
    char *buf = NULL;

    if (extra != NULL && extra[0] != '\0') { /* checked: at most half of TL_HOLDING_MAX */
        size_t n = strlen(extra);
        while (cap < n + 3)
            cap *= 2;
        if ((buf = tl__malloc(cap)) == NULL)
            return NULL;
        buf[0] = shared ? 's' : 'x';
        buf[1] = ' ';
        memcpy(buf + 2, extra, n + 1);
        len = n + 2;
    }

    pthread_mutex_lock(&m->mu);
    for (const tl_lock *l = m->held; l != NULL; l = l->next) {
        if (l->state != TL_HELD)
            continue;
        char pair[TL_KEY_MAX + 32];
        int n = snprintf(pair, sizeof(pair), " %s %llu", l->rec.info.key,
                         (unsigned long long)l->rec.info.token);
        if (n < 0 || len + (size_t)n > TL_HOLDING_MAX)
            break;
        if (buf == NULL || len + (size_t)n + 1 > cap) {
            while (len + (size_t)n + 1 > cap)
                cap *= 2;
            char *nb = tl__realloc(buf, cap);
            if (nb == NULL)
                break;
            if (buf == NULL)
                nb[0] = shared ? 's' : 'x';
            buf = nb;
        }
        memcpy(buf + len, pair, (size_t)n + 1);
        len += (size_t)n;
    }
    pthread_mutex_unlock(&m->mu);
    return buf;
}

static void count(tl_manager *m, uint64_t *metric)
{
    pthread_mutex_lock(&m->mu);
    (*metric)++;
    pthread_mutex_unlock(&m->mu);
}

tl_status tl__claim_loop(tl_manager *m, struct tl_loop *lp)
{
    struct tl_claim *req = lp->req;
    const struct acquire_plan *plan = lp->plan;
    const char *key = req->key;
    char *holding = NULL;
    uint32_t attempt = 0;
    tl_status st;

    lp->queued = false;
    m->store->deadline_mono_ms = plan->deadline;
    for (;;) {
        memset(&lp->res, 0, sizeof(lp->res));
        m->store->errmsg[0] = '\0';
        if (req->waiter_id != NULL && m->store->deadlocks) {
            tl__free(holding);
            holding = holding_text(m, req->shared, lp->extra);
            req->holding = holding;
        }
        lp->sent = m->clock.mono_ms(m->clock.ud);
        st = lp->attempt(m, lp->ctx, req, &lp->res);
        if (st != TL_EBUSY)
            break;
        count(m, &m->metrics.total_conflicts);

        int64_t now = m->clock.mono_ms(m->clock.ud);
        if (plan->line) {
            if (!lp->queued) {
                lp->queued = true;
                count(m, &m->metrics.queued);
            }
            /* Waiting in line while holding locks: does this wait close a cycle? */
            tl_status wst = holding != NULL ? tl__deadlock_check(m, req) : TL_OK;
            if (wst == TL_OK)
                wst = now >= plan->line_end ? TL_EBUSY
                                            : wait_in_line(m, req, &lp->res, plan, lp->cancel);
            if (wst == TL_OK && m->clock.mono_ms(m->clock.ud) >= plan->line_end &&
                plan->line_end == plan->deadline)
                wst = TL_EBUSY; /* the deadline has come: no claim after it */
            if (wst != TL_OK) {
                leave_line(m, req);
                if (wst == TL_ECANCELED)
                    st = tl__fail(m, TL_ECANCELED,
                                  "key %s: cancelled while waiting in line (%u ahead)", key,
                                  lp->res.ahead);
                else if (wst == TL_EDEADLK)
                    st = TL_EDEADLK; /* its message is set */
                else
                    st = fail_busy(m, key, &lp->res, attempt + 1);
                goto out;
            }
            tl__record_clear(&lp->res.rec);
            count(m, &m->metrics.total_retries);
            attempt++;
            continue;
        }
        bool out_of_time = plan->deadline != 0 && now >= plan->deadline;
        if ((!plan->unlimited && attempt >= plan->retries) || out_of_time) {
            st = fail_busy(m, key, &lp->res, attempt + 1);
            goto out;
        }

        uint32_t delay = tl__backoff_delay(m, attempt);
        if (plan->deadline != 0 && now + delay > plan->deadline)
            delay = (uint32_t)(plan->deadline - now);
        tl__record_clear(&lp->res.rec);
        TL_LOG(&m->log, TL_LOG_DEBUG, "%s: held; retry %u in %u ms", key, attempt + 1, delay);
        count(m, &m->metrics.total_retries);
        tl__wait_before_retry(m, key, delay);
        attempt++;
    }
    if (st != TL_OK) {
        if (lp->queued)
            leave_line(m, req);
        st = tl__mgr_fail(m, st);
    }
out:
    m->store->deadline_mono_ms = 0;
    if (st != TL_OK)
        tl__record_clear(&lp->res.rec);
    req->holding = NULL;
    tl__free(holding);
    return st;
}
