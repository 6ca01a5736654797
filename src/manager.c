/*
 * manager.c -- the lock manager: the part of the protocol that is the same for every store.
 * Strategies, backoff with jitter, deadlines, ownership checks, metrics, and the life cycle of
 * lock handles (the heartbeat itself is in heartbeat.c).
 */
#include "manager.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "tl.h"

const char *tl_version(void)
{
    return TL_VERSION_STRING;
}

static char *default_host(void)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        return tl__strdup("localhost");
    host[sizeof(host) - 1] = '\0';
    return tl__strdup(host);
}

static char *default_user(void)
{
    const char *env = getenv("USER"); /* NOLINT(concurrency-mt-unsafe): read-only use */

    if (env != NULL && env[0] != '\0')
        return tl__strdup(env);

    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
        return tl__strdup(pw.pw_name);
    return tl__asprintf("uid%lu", (unsigned long)getuid());
}

tl_manager *tl_manager_new(const struct tl_options *opts)
{
    static const struct tl_options zero;
    tl_manager *m = tl__calloc(1, sizeof(*m));

    if (opts == NULL)
        opts = &zero;
    if (m == NULL)
        return NULL;

    const char *url = opts->store_url;
    if (url == NULL)
        url = getenv("TASKLOCK_STORE"); /* NOLINT(concurrency-mt-unsafe) */
    if (url == NULL || url[0] == '\0')
        url = "sqlite:";
    m->store_url = tl__strdup(url);

    char *host = default_host();
    if (opts->worker_id != NULL) {
        m->worker_id = tl__strdup(opts->worker_id);
    } else if (host != NULL) {
        char *user = default_user();

        m->worker_id = user ? tl__asprintf("%s@%s", user, host) : NULL;
        tl__free(user);
    }
    if (opts->node_id != NULL) {
        m->node_id = tl__strdup(opts->node_id);
        tl__free(host);
    } else {
        m->node_id = host;
    }

    m->max_retries = opts->max_retries ? opts->max_retries : TL_DEFAULT_RETRIES;
    m->backoff_initial_ms =
        opts->backoff_initial_ms ? opts->backoff_initial_ms : TL_DEFAULT_BACKOFF_INITIAL_MS;
    m->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms : TL_DEFAULT_BACKOFF_MAX_MS;
    m->heartbeat_ms = opts->heartbeat_ms;
    m->lock_timeout_ms = opts->lock_timeout_ms ? opts->lock_timeout_ms : TL_DEFAULT_LOCK_TIMEOUT_MS;
    m->on_lost = opts->on_lost;
    m->lost_ud = opts->lost_ud;
    m->no_line = opts->no_line;
    m->log.fn = opts->log;
    m->log.ud = opts->log_ud;
    m->log.level = opts->log_level ? opts->log_level : TL_LOG_WARN;
    m->clock = tl__real_clock;
    m->rng = (uint64_t)tl__real_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)m ^
             (uint64_t)tl__real_mono_ms() * 0x9e3779b97f4a7c15ull;
    if (m->rng == 0)
        m->rng = 0x9e3779b97f4a7c15ull;

    if (m->store_url == NULL || m->worker_id == NULL || m->node_id == NULL)
        goto err_free;

    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        goto err_free;
    (void)pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&m->wake, &attr);
    if (rc == 0 && (rc = pthread_cond_init(&m->lw_wake, &attr)) != 0)
        (void)pthread_cond_destroy(&m->wake);
    if (rc == 0 && (rc = pthread_cond_init(&m->renewed, &attr)) != 0) {
        (void)pthread_cond_destroy(&m->wake);
        (void)pthread_cond_destroy(&m->lw_wake);
    }
    (void)pthread_condattr_destroy(&attr);
    if (rc != 0)
        goto err_free;
    if (pthread_mutex_init(&m->mu, NULL) != 0)
        goto err_destroy_cond;
    return m;

err_destroy_cond:
    (void)pthread_cond_destroy(&m->wake);
    (void)pthread_cond_destroy(&m->lw_wake);
    (void)pthread_cond_destroy(&m->renewed);
err_free:
    tl__free(m->store_url);
    tl__free(m->worker_id);
    tl__free(m->node_id);
    tl__free(m);
    return NULL;
}

void tl__manager_set_clock(tl_manager *m, const struct tl_clock *clock)
{
    m->clock = *clock;
}

void tl__manager_set_store_ops(tl_manager *m, const struct tl_store_ops *ops)
{
    m->store_ops = ops;
}

static void lock_free_now(tl_lock *l)
{
    tl__record_clear(&l->rec);
    tl__free(l);
}

void tl_manager_free(tl_manager *m)
{
    if (m == NULL)
        return;
    tl__heartbeat_stop(m);
    tl__store_close(m->store);

    /* The heartbeat has stopped, so no round holds a reference any more. */
    tl_lock *l = m->held;
    while (l != NULL) {
        tl_lock *next = l->next;

        lock_free_now(l);
        l = next;
    }
    tl__record_free(m->last_holder);
    tl__next_memo_free(m->next_memo);
    (void)pthread_mutex_destroy(&m->mu);
    (void)pthread_cond_destroy(&m->wake);
    (void)pthread_cond_destroy(&m->lw_wake);
    (void)pthread_cond_destroy(&m->renewed);
    tl__free(m->store_url);
    tl__free(m->worker_id);
    tl__free(m->node_id);
    tl__free(m);
}

const char *tl_errmsg(const tl_manager *m)
{
    return m == NULL ? "no manager (out of memory?)" : m->errmsg;
}

const char *tl_manager_worker_id(const tl_manager *m)
{
    return m->worker_id;
}

const char *tl_manager_node_id(const tl_manager *m)
{
    return m->node_id;
}

const char *tl_manager_store_url(const tl_manager *m)
{
    if (m->store != NULL && m->store->resolved_url != NULL)
        return m->store->resolved_url;
    return m->store_url;
}

const struct tl_info *tl_last_holder(const tl_manager *m)
{
    return m == NULL || m->last_holder == NULL ? NULL : &m->last_holder->info;
}

/* Starts a public call: clears the message slot. */
void tl__begin(tl_manager *m)
{
    m->errmsg[0] = '\0';
}

tl_status tl__mgr_fail(tl_manager *m, tl_status st)
{
    return tl__fail(m, st, "%s", m->store->errmsg[0] ? m->store->errmsg : tl_strerror(st));
}

tl_status tl_connect(tl_manager *m)
{
    const char *why;

    if (m == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if (m->store != NULL)
        return TL_OK;
    if ((why = tl__check_id(m->worker_id, TL_ID_MAX)) != NULL)
        return tl__fail(m, TL_EINVAL, "worker id %s (at most %d bytes, no spaces or controls)", why,
                        TL_ID_MAX);
    if ((why = tl__check_id(m->node_id, TL_ID_MAX)) != NULL)
        return tl__fail(m, TL_EINVAL, "node id %s (at most %d bytes, no spaces or controls)", why,
                        TL_ID_MAX);
    if (m->lock_timeout_ms > TL_DURATION_MAX_MS)
        return tl__fail(m, TL_EINVAL, "lock timeout of %u ms is over the limit of 24 days",
                        m->lock_timeout_ms);
    if (m->heartbeat_ms != 0 && m->heartbeat_ms >= m->lock_timeout_ms)
        return tl__fail(m, TL_EINVAL,
                        "heartbeat interval (%u ms) must be shorter than the lock timeout (%u ms)",
                        m->heartbeat_ms, m->lock_timeout_ms);
    if (m->backoff_initial_ms > m->backoff_max_ms)
        return tl__fail(m, TL_EINVAL, "initial backoff (%u ms) is over the maximum (%u ms)",
                        m->backoff_initial_ms, m->backoff_max_ms);

    tl_status st =
        tl__store_open(m->store_url, m->store_ops, &m->clock, &m->log, &m->store, m->errmsg);
    return st;
}

tl_status tl__ensure_connected(tl_manager *m)
{
    return m->store != NULL ? TL_OK : tl_connect(m);
}

tl_status tl__check_key(tl_manager *m, const char *key)
{
    const char *why = tl__check_id(key, TL_KEY_MAX);

    if (why != NULL)
        return tl__fail(m, TL_EINVAL, "key %s (1 to %d bytes, no spaces or controls)", why,
                        TL_KEY_MAX);
    if (m->store->ops->check_key != NULL) {
        tl_status st = m->store->ops->check_key(m->store, key);
        if (st != TL_OK)
            return tl__mgr_fail(m, st);
    }
    return TL_OK;
}

uint32_t tl__lock_interval(const tl_manager *m, const struct tl_store *s, uint32_t timeout_ms)
{
    if (m->heartbeat_ms != 0)
        return m->heartbeat_ms;

    uint32_t div = s->heartbeat_divisor ? s->heartbeat_divisor : 3;
    uint32_t iv = timeout_ms / div;
    if (!s->heartbeat_uncapped && iv > TL_DEFAULT_HEARTBEAT_MS)
        iv = TL_DEFAULT_HEARTBEAT_MS;
    return iv ? iv : 1;
}

uint32_t tl__next_random(tl_manager *m)
{
    if (m->clock.random != NULL)
        return m->clock.random(m->clock.ud);
    /* xorshift64*: jitter needs spread, not cryptographic strength. */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return (uint32_t)((m->rng * 0x2545f4914f6cdd1dull) >> 32);
}

/* The wait before retry number `attempt` (0-based): initial * 2^attempt, capped, times a
 * jitter factor in [0.75, 1.25), capped again. */
uint32_t tl__backoff_delay(tl_manager *m, uint32_t attempt)
{
    uint64_t base = m->backoff_initial_ms;

    for (uint32_t i = 0; i < attempt && base < m->backoff_max_ms; i++)
        base *= 2;
    if (base > m->backoff_max_ms)
        base = m->backoff_max_ms;

    uint64_t jittered = base * (768 + (tl__next_random(m) % 512)) / 1024;
    if (jittered > m->backoff_max_ms)
        jittered = m->backoff_max_ms;
    return jittered ? (uint32_t)jittered : 1;
}

static void record_latency(tl_manager *m, double ms)
{
    m->acq_total_ms += ms;
    m->latency[m->latency_next] = ms;
    m->latency_next = (m->latency_next + 1) % TL_LATENCY_WINDOW;
    if (m->latency_count < TL_LATENCY_WINDOW)
        m->latency_count++;
}

void tl__wait_before_retry(tl_manager *m, const char *key, uint32_t ms)
{
    if (m->store->ops->wait != NULL && m->clock.sleep_ms == tl__real_clock.sleep_ms) {
        int64_t start = m->clock.mono_ms(m->clock.ud);

        if (m->store->ops->wait(m->store, key, ms) == TL_OK)
            return;
        TL_LOG(&m->log, TL_LOG_DEBUG, "wake-up wait failed (%s); sleeping instead",
               m->store->errmsg);
        /* Sleep out what the failed wait left of the delay, not the whole delay again. */
        int64_t spent = m->clock.mono_ms(m->clock.ud) - start;
        if (spent >= ms)
            return;
        ms -= (uint32_t)spent;
    }
    m->clock.sleep_ms(m->clock.ud, ms);
}

static void link_lock(tl_manager *m, tl_lock *l)
{
    l->prev = NULL;
    l->next = m->held;
    if (m->held != NULL)
        m->held->prev = l;
    m->held = l;
    l->in_list = true;
}

static void unlink_lock(tl_manager *m, tl_lock *l)
{
    if (!l->in_list)
        return;
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        m->held = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    l->in_list = false;
}

int64_t tl__patience_ms(const tl_manager *m, uint32_t retries)
{
    int64_t patience = 0;
    uint64_t base = m->backoff_initial_ms;

    for (uint32_t i = 0; i < retries && patience < TL_DURATION_MAX_MS; i++) {
        patience += (int64_t)(base < m->backoff_max_ms ? base : m->backoff_max_ms);
        if (base < m->backoff_max_ms)
            base *= 2;
    }
    return patience;
}

tl_status tl__plan_acquire(tl_manager *m, const struct tl_acquire_opts *o, uint32_t timeout,
                           struct acquire_plan *p)
{
    if ((unsigned)o->strategy > TL_FORCE_ACQUIRE)
        return tl__fail(m, TL_EINVAL, "unknown strategy %d", (int)o->strategy);
    if (timeout > TL_DURATION_MAX_MS)
        return tl__fail(m, TL_EINVAL, "lock timeout of %u ms is over the limit of 24 days",
                        timeout);
    if (m->heartbeat_ms != 0 && m->heartbeat_ms >= timeout)
        return tl__fail(m, TL_EINVAL,
                        "lock timeout (%u ms) must be longer than the heartbeat interval (%u ms)",
                        timeout, m->heartbeat_ms);

    p->mode = o->strategy == TL_FORCE_ACQUIRE ? TL_CLAIM_FORCE
              : o->strategy == TL_STEAL_STALE ? TL_CLAIM_STEAL
                                              : TL_CLAIM_NORMAL;
    p->unlimited = false;
    if (o->strategy == TL_FAIL_FAST || o->strategy == TL_FORCE_ACQUIRE || o->retries < 0)
        p->retries = 0;
    else if (o->retries > 0)
        p->retries = (uint32_t)o->retries;
    else if (o->deadline_ms > 0)
        p->unlimited = true;
    else
        p->retries = m->max_retries;
    if (o->priority < TL_PRIORITY_MIN || o->priority > TL_PRIORITY_MAX)
        return tl__fail(m, TL_EINVAL, "priority %d is out of range (%d to %d)", (int)o->priority,
                        TL_PRIORITY_MIN, TL_PRIORITY_MAX);

    int64_t now = m->clock.mono_ms(m->clock.ud);
    p->deadline = o->deadline_ms ? now + o->deadline_ms : 0;

    /* Patience in line: the deadline, or the sum of the backoff schedule the retries would
     * have slept (without jitter), whichever ends first. */
    const struct tl_store_ops *ops = m->store->ops;
    p->line = !m->no_line && ops->version >= 3 && ops->leave != NULL && ops->wait_turn != NULL &&
              (p->unlimited || p->retries > 0);
    p->line_end = p->deadline;
    if (p->line && !p->unlimited) {
        int64_t patience = tl__patience_ms(m, p->retries);
        if (p->line_end == 0 || now + patience < p->line_end)
            p->line_end = now + patience;
    }
    return TL_OK;
}

tl_status tl__plan_mode(tl_manager *m, const struct tl_acquire_opts *o, bool *shared)
{
    if ((unsigned)o->mode > TL_SHARED)
        return tl__fail(m, TL_EINVAL, "unknown lock mode %d", (int)o->mode);
    if (o->slots > TL_SLOTS_MAX)
        return tl__fail(m, TL_EINVAL, "%u slots is over the limit of %u", o->slots, TL_SLOTS_MAX);
    *shared = o->mode == TL_SHARED || o->slots > 0;
    if (!*shared)
        return TL_OK;
    if (o->strategy == TL_FORCE_ACQUIRE)
        return tl__fail(m, TL_EINVAL,
                        "a forced acquire takes the lock from every holder: it is exclusive "
                        "only (drop the shared mode or the slots)");
    if (m->store->ops->version < 5 || !m->store->modes)
        return tl__fail(m, TL_ENOTSUP, "the %s store has no shared locks or semaphores yet",
                        m->store->ops->scheme);
    return TL_OK;
}

bool tl__cancelled(const volatile sig_atomic_t *cancel)
{
    return cancel != NULL && *cancel != 0;
}

tl_status tl__lock_adopt(tl_manager *m, tl_lock *l, struct tl_claim_result *res, int64_t sent,
                         uint32_t timeout, int64_t start, tl_lock **out)
{
    int64_t now = m->clock.mono_ms(m->clock.ud);
    tl_status st;

    l->m = m;
    l->rec = res->rec;
    memset(&res->rec, 0, sizeof(res->rec));
    const char *key = l->rec.info.key;
    l->interval_ms = tl__lock_interval(m, m->store, timeout);
    l->state = TL_HELD;
    l->refs = 1;
    l->heartbeat_at_ms = l->rec.info.heartbeat_at_ms;
    tl__lock_renewed_locked(l, sent); /* not shared yet: no mutex needed */
    tl__lock_schedule_locked(l, sent, now);
    if (now >= l->lose_at_mono_ms) {
        /* The store answered so late that another worker may take the lock any moment: it
         * protects nothing. Give it back rather than hand out a lock that is lost already. */
        char why[TL_ERRMSG_SIZE];
        (void)snprintf(why, sizeof(why), "the claim took %lld ms, past the loss deadline",
                       (long long)(now - sent));
        (void)m->store->ops->release(m->store, &l->rec, why);
        st = tl__fail(m, TL_ETIMEDOUT,
                      "key %s: the store answered the claim after %lld ms, too close to the lock "
                      "timeout (%u ms) to hold it safely; released it",
                      key, (long long)(now - sent), timeout);
        tl__record_clear(&l->rec);
        tl__free(l);
        return st;
    }
    int64_t due = l->next_due_mono_ms; /* once linked, the heartbeat thread owns the field */
    int64_t lose_at = l->lose_at_mono_ms;

    pthread_mutex_lock(&m->mu);
    link_lock(m, l);
    m->metrics.total_acquisitions++;
    m->metrics.locks_held++;
    if (res->took_stale)
        m->metrics.stale_locks_claimed++;
    if (res->took_forced)
        m->metrics.forced_acquisitions++;
    record_latency(m, (double)(now - start));
    pthread_mutex_unlock(&m->mu);

    if (res->took_stale || res->took_forced)
        TL_LOG(&m->log, TL_LOG_INFO, "%s: took a %s lock (token %llu)", key,
               res->took_stale ? "stale" : "live", (unsigned long long)l->rec.info.token);

    st = tl__heartbeat_start(m, due, lose_at);
    if (st != TL_OK) {
        /* We hold it but could not keep it alive: give it back rather than let it rot. */
        (void)m->store->ops->release(m->store, &l->rec, "heartbeat could not start");
        pthread_mutex_lock(&m->mu);
        unlink_lock(m, l);
        m->metrics.locks_held--;
        pthread_mutex_unlock(&m->mu);
        lock_free_now(l);
        return tl__fail(m, st, "cannot start the heartbeat thread");
    }
    *out = l;
    return TL_OK;
}

static tl_status claim_attempt(tl_manager *m, void *ctx, struct tl_claim *req,
                               struct tl_claim_result *res)
{
    (void)ctx;
    return m->store->ops->claim(m->store, req, res);
}

static tl_status acquire(tl_manager *m, const char *key, const struct tl_acquire_opts *opts,
                         tl_lock **out)
{
    static const struct tl_acquire_opts defaults;
    struct acquire_plan plan = {0};
    char *task_info = NULL;
    tl_status st;

    if (out != NULL)
        *out = NULL;
    if (m == NULL || out == NULL)
        return TL_EINVAL;
    tl__begin(m);
    tl__record_free(m->last_holder);
    m->last_holder = NULL;
    if (opts == NULL)
        opts = &defaults;

    uint32_t timeout = opts->lock_timeout_ms ? opts->lock_timeout_ms : m->lock_timeout_ms;
    if ((st = tl__ensure_connected(m)) != TL_OK || (st = tl__check_key(m, key)) != TL_OK ||
        (st = tl__plan_acquire(m, opts, timeout, &plan)) != TL_OK)
        return st;
    bool shared = false;
    if ((st = tl__plan_mode(m, opts, &shared)) != TL_OK ||
        (st = tl__check_holding(m, opts->holding)) != TL_OK)
        return st;
    if ((st = tl__task_info_normalize(opts->task_info, &task_info, m->errmsg)) != TL_OK)
        return st;

    /* Allocate the handle first: once the store says we won, nothing may fail. */
    tl_lock *l = tl__calloc(1, sizeof(*l));
    if (l == NULL) {
        tl__free(task_info);
        return tl__fail(m, TL_ENOMEM, "out of memory");
    }

    char waiter_id[33];
    struct tl_claim req = {
        .key = key,
        .worker_id = m->worker_id,
        .node_id = m->node_id,
        .task_info = task_info,
        .lock_timeout_ms = timeout,
        .mode = plan.mode,
        .priority = opts->priority,
        .shared = shared,
        .slots = shared ? opts->slots : 0,
    };
    if (plan.line) {
        tl__make_waiter_id(m, waiter_id);
        req.waiter_id = waiter_id;
        req.waiter_timeout_ms = tl__waiter_timeout(m, m->store, timeout);
    }
    int64_t start = m->clock.mono_ms(m->clock.ud);
    struct tl_loop lp = {.req = &req,
                         .extra = opts->holding,
                         .plan = &plan,
                         .cancel = opts->cancel,
                         .attempt = claim_attempt};

    st = tl__claim_loop(m, &lp);
    if (st == TL_OK) {
        /* A waiter that found itself holding without writing: its heartbeat is as old as its
         * last refresh, and so is the protection it has. */
        int64_t sent = lp.sent;
        if (lp.res.beat_sent_mono_ms != 0 && lp.res.beat_sent_mono_ms < sent)
            sent = lp.res.beat_sent_mono_ms;
        st = tl__lock_adopt(m, l, &lp.res, sent, timeout, start, out);
        l = NULL;
    }
    tl__free(l);
    tl__free(task_info);
    return st;
}

tl_status tl_acquire(tl_manager *m, const char *key, const struct tl_acquire_opts *opts,
                     tl_lock **out)
{
    tl_status st = acquire(m, key, opts, out);

    /* Argument errors are the caller's bug, not an outcome of the protocol or the store: they
     * would only blur what the metric watches (docs/guide.md, Metrics). */
    if (st != TL_OK && st != TL_EINVAL && m != NULL) {
        pthread_mutex_lock(&m->mu);
        m->metrics.failed_acquisitions++;
        pthread_mutex_unlock(&m->mu);
    }
    return st;
}

bool tl__lock_mark_lost_locked(tl_lock *l)
{
    if (l->state == TL_HELD)
        l->m->metrics.locks_held--;
    if (l->state != TL_LOST)
        l->m->metrics.locks_lost++;
    l->state = TL_LOST;
    if (l->lost_notified)
        return false;
    l->lost_notified = true;
    return l->m->on_lost != NULL;
}

void tl__lock_fire_lost(tl_lock *l)
{
    l->m->on_lost(l->m->lost_ud, l);
}

/*
 * Whether the store's audit trail shows that `r` (key, worker id, token) was released. A release
 * the store refused may have happened after all: its reply lost with a dropped connection, the
 * store sent it again, and by then someone else had claimed the key. Only the holder's own
 * release writes a "released" event with its token (tokens are unique per key), so finding one
 * settles it. Stores without an audit trail cannot tell, and the refusal stands.
 */
bool tl__released_by(tl_manager *m, const struct tl_record *r)
{
    struct tl_event **ev = NULL;
    size_t n = 0;
    bool found = false;
    char refusal[TL_ERRMSG_SIZE];

    if (m->store->ops->history == NULL)
        return false;
    memcpy(refusal, m->store->errmsg, sizeof(refusal)); /* the message if the refusal stands */
    if (m->store->ops->history(m->store, r->info.key, 64, &ev, &n) == TL_OK) {
        for (size_t i = 0; i < n && !found; i++)
            found = (ev[i]->kind == TL_EVENT_RELEASED || ev[i]->kind == TL_EVENT_DONE) &&
                    ev[i]->token == r->info.token && ev[i]->worker_id != NULL &&
                    strcmp(ev[i]->worker_id, r->info.worker_id) == 0;
    }
    tl_event_array_free(ev, n);
    memcpy(m->store->errmsg, refusal, sizeof(refusal));
    return found;
}

static void tl__lock_released(tl_lock *l, enum tl_lock_state before)
{
    if (before == TL_HELD)
        l->m->metrics.locks_held--;
    l->state = TL_RELEASED;
    l->m->metrics.total_releases++;
}

bool tl_lock_is_released(const tl_lock *l)
{
    if (l == NULL)
        return false;
    pthread_mutex_lock(&l->m->mu);
    bool released = l->state == TL_RELEASED;
    pthread_mutex_unlock(&l->m->mu);
    return released;
}

/* A release, done or not, through the store (TL_ENOTSUP: done on a store without markers). */
static tl_status store_release(tl_manager *m, const struct tl_record *held, const char *summary,
                               bool done)
{
    if (!done)
        return m->store->ops->release(m->store, held, summary);
    if (m->store->ops->version < 4 || m->store->ops->finish == NULL)
        return tl__store_fail(m->store, TL_ENOTSUP,
                              "the %s store cannot mark a task done (no done markers)",
                              m->store->ops->scheme);

    const struct tl_finish f = {.held = held, .summary = summary ? summary : "", .done = true};
    struct tl_finish_result res;

    memset(&res, 0, sizeof(res));
    return m->store->ops->finish(m->store, &f, &res);
}

bool tl__lock_begin_release(tl_lock *l, enum tl_lock_state *before)
{
    pthread_mutex_lock(&l->m->mu);
    *before = l->state;
    bool go = *before != TL_RELEASED && *before != TL_RELEASING;
    if (go)
        l->state = TL_RELEASING; /* the heartbeat leaves it alone from now on */
    pthread_mutex_unlock(&l->m->mu);
    return go;
}

tl_status tl__lock_end_release(tl_lock *l, enum tl_lock_state before, tl_status st, bool done)
{
    tl_manager *m = l->m;
    bool fire = false;

    if (st == TL_ENOTOWNER && tl__released_by(m, &l->rec))
        st = TL_OK;
    pthread_mutex_lock(&m->mu);
    if (st == TL_OK) {
        tl__lock_released(l, before);
        if (done)
            m->metrics.tasks_done++;
    } else if (st == TL_ENOTOWNER) {
        l->state = before;
        fire = tl__lock_mark_lost_locked(l);
    } else {
        l->state = before;
    }
    pthread_mutex_unlock(&m->mu);

    if (fire)
        tl__lock_fire_lost(l);
    if (st == TL_ENOTOWNER)
        return tl__fail(m, st, "lock %s (token %llu) is no longer ours: %s", l->rec.info.key,
                        (unsigned long long)l->rec.info.token, m->store->errmsg);
    if (st != TL_OK && m->store != NULL)
        return tl__mgr_fail(m, st);
    return st;
}

tl_status tl_release_with(tl_lock *l, const struct tl_release_opts *opts)
{
    static const struct tl_release_opts defaults;
    enum tl_lock_state before;

    if (l == NULL)
        return TL_EINVAL;
    if (opts == NULL)
        opts = &defaults;

    tl_manager *m = l->m;
    tl__begin(m);
    if (!tl__lock_begin_release(l, &before))
        return TL_OK;

    tl_status st = tl__ensure_connected(m);
    if (st == TL_OK) {
        m->store->errmsg[0] = '\0';
        m->store->deadline_mono_ms =
            opts->deadline_ms ? m->clock.mono_ms(m->clock.ud) + opts->deadline_ms : 0;
        st = store_release(m, &l->rec, opts->summary, opts->done);
        m->store->deadline_mono_ms = 0;
    }
    return tl__lock_end_release(l, before, st, opts->done);
}

tl_status tl_release(tl_lock *l, const char *summary)
{
    return tl_release_with(l, &(struct tl_release_opts){.summary = summary});
}

/*
 * The record to hand the store for a lock known only by (key, token). The store's own record
 * when it is still ours, since a store may need more than the key, worker id and token (the lock
 * timeout, the task info, a claim's nonce); else *mine stays cleared and *ours is false.
 */
tl_status tl__token_record(tl_manager *m, const char *key, uint64_t token, struct tl_record *mine,
                           bool *ours)
{
    bool found = false;

    *ours = false;
    memset(mine, 0, sizeof(*mine));
    m->store->errmsg[0] = '\0';
    const struct tl_store_ops *ops = m->store->ops;
    if (ops->version >= 5 && ops->holders != NULL) { /* a key held shared has several */
        struct tl_record **hs = NULL;
        size_t n = 0;
        tl_status st = ops->holders(m->store, key, &hs, &n);
        if (st != TL_OK)
            return tl__mgr_fail(m, st);
        for (size_t i = 0; i < n && !*ours; i++) {
            if (hs[i]->info.token == token && hs[i]->info.worker_id != NULL &&
                strcmp(hs[i]->info.worker_id, m->worker_id) == 0) {
                *mine = *hs[i];
                memset(hs[i], 0, sizeof(*hs[i]));
                *ours = true;
            }
        }
        tl_info_array_free((struct tl_info **)hs, n);
        return TL_OK;
    }
    tl_status st = ops->inspect(m->store, key, mine, &found);
    if (st != TL_OK)
        return tl__mgr_fail(m, st);
    if (found && mine->info.token == token && mine->info.worker_id != NULL &&
        strcmp(mine->info.worker_id, m->worker_id) == 0) {
        *ours = true;
        return TL_OK;
    }
    tl__record_clear(mine);
    return TL_OK;
}

tl_status tl_release_token(tl_manager *m, const char *key, uint64_t token, const char *summary)
{
    return tl_release_token_with(m, key, token, &(struct tl_release_opts){.summary = summary});
}

tl_status tl_release_token_with(tl_manager *m, const char *key, uint64_t token,
                                const struct tl_release_opts *opts)
{
    static const struct tl_release_opts defaults;
    struct tl_record mine;
    bool ours;
    tl_status st;

    if (m == NULL)
        return TL_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK || (st = tl__check_key(m, key)) != TL_OK ||
        (st = tl__token_record(m, key, token, &mine, &ours)) != TL_OK)
        return st;

    /* Not ours now: the store still decides, since our token may have released it already. */
    const struct tl_record named = {
        .info = {
            .key = (char *)key, .worker_id = m->worker_id, .node_id = m->node_id, .token = token}};
    m->store->errmsg[0] = '\0';
    m->store->deadline_mono_ms =
        opts->deadline_ms ? m->clock.mono_ms(m->clock.ud) + opts->deadline_ms : 0;
    st = store_release(m, ours ? &mine : &named, opts->summary, opts->done);
    if (st == TL_ENOTOWNER && tl__released_by(m, ours ? &mine : &named))
        st = TL_OK;
    m->store->deadline_mono_ms = 0;
    tl__record_clear(&mine);
    if (st == TL_OK) {
        pthread_mutex_lock(&m->mu);
        m->metrics.total_releases++;
        if (opts->done)
            m->metrics.tasks_done++;
        pthread_mutex_unlock(&m->mu);
        return TL_OK;
    }
    if (st == TL_ENOTOWNER)
        return tl__fail(m, st, "lock %s with token %llu is not held by %s: %s", key,
                        (unsigned long long)token, m->worker_id,
                        m->store->errmsg[0] ? m->store->errmsg : tl_strerror(st));
    return tl__mgr_fail(m, st);
}

tl_status tl_release_force(tl_manager *m, const char *key, uint64_t token, const char *summary,
                           struct tl_info **former)
{
    tl_status st;

    if (former != NULL)
        *former = NULL;
    if (m == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK || (st = tl__check_key(m, key)) != TL_OK)
        return st;
    const struct tl_store_ops *ops = m->store->ops;
    if (ops->version < 2 || ops->force_release == NULL)
        return tl__fail(m, TL_ENOTSUP, "the %s store cannot break a lock", ops->scheme);

    struct tl_record *r = tl__record_new();
    if (r == NULL)
        return tl__fail(m, TL_ENOMEM, "out of memory");
    const struct tl_force_release req = {.key = key,
                                         .worker_id = m->worker_id,
                                         .node_id = m->node_id,
                                         .token = token,
                                         .summary = summary ? summary : "forced release"};
    bool found = false;
    m->store->errmsg[0] = '\0';
    st = ops->force_release(m->store, &req, r, &found);
    if (st == TL_ENOTOWNER) {
        if (found && r->info.worker_id != NULL)
            st = tl__fail(m, st, "lock %s is held by %s with token %llu, not %llu: left alone", key,
                          r->info.worker_id, (unsigned long long)r->info.token,
                          (unsigned long long)token);
        else
            st = tl__mgr_fail(m, st);
        tl__record_free(r);
        return st;
    }
    if (st != TL_OK || !found) {
        tl__record_free(r);
        return st == TL_OK ? TL_OK : tl__mgr_fail(m, st);
    }
    TL_LOG(&m->log, TL_LOG_INFO, "%s: broke the lock of %s (token %llu)", key, r->info.worker_id,
           (unsigned long long)r->info.token);
    if (former != NULL) {
        tl__free(r->opaque);
        r->opaque = NULL;
        *former = &r->info;
    } else {
        tl__record_free(r);
    }
    return TL_OK;
}

static tl_status check_timeout(tl_manager *m, uint32_t timeout)
{
    if (timeout == 0 || timeout > TL_DURATION_MAX_MS)
        return tl__fail(m, TL_EINVAL,
                        "lock timeout of %u ms: must be more than 0 and at most 24 days", timeout);
    if (m->heartbeat_ms != 0 && m->heartbeat_ms >= timeout)
        return tl__fail(m, TL_EINVAL,
                        "lock timeout (%u ms) must be longer than the heartbeat interval (%u ms)",
                        timeout, m->heartbeat_ms);
    return TL_OK;
}

/* For an extension (`timeout` not 0): the timeout is valid and the store can record it. */
static tl_status check_extend(tl_manager *m, uint32_t timeout)
{
    const struct tl_store_ops *ops = m->store->ops;

    if (timeout == 0)
        return TL_OK;
    if (ops->version < 3 || ops->extend == NULL)
        return tl__fail(m, TL_ENOTSUP, "the %s store cannot change a lock's timeout", ops->scheme);
    return check_timeout(m, timeout);
}

/* One store call of a renewal: an extension to `timeout` when it is not 0. */
static tl_status store_renew(tl_manager *m, const struct tl_record *rec, uint64_t seq,
                             uint32_t timeout, int64_t *beat)
{
    m->store->errmsg[0] = '\0';
    m->store->beat_sent_mono_ms = 0;
    if (timeout != 0)
        return m->store->ops->extend(m->store, rec, timeout, beat);
    return m->store->ops->renew(m->store, rec, seq, beat);
}

/*
 * Renews `l` now on the calling thread (tl_renew), or extends it to `timeout` (tl_extend) when
 * that is not 0. An extension keeps the heartbeat away from the lock while the store changes its
 * record (a renew hands the store the record, lock timeout included), and then moves the
 * lock's timeout, interval, next renewal and loss deadline.
 */
static tl_status renew_now(tl_lock *l, uint32_t timeout)
{
    if (l == NULL)
        return TL_EINVAL;

    tl_manager *m = l->m;
    tl__begin(m);
    tl_status st;
    if ((st = tl__ensure_connected(m)) != TL_OK || (st = check_extend(m, timeout)) != TL_OK)
        return st;

    bool fire = false;
    pthread_mutex_lock(&m->mu);
    while (timeout != 0 && l->renewing)
        pthread_cond_wait(&m->renewed, &m->mu);
    int64_t sent = m->clock.mono_ms(m->clock.ud);
    enum tl_lock_state state = l->state;
    uint64_t seq = ++l->renewals;
    int64_t lose_at = l->lose_at_mono_ms;
    if (state == TL_HELD && sent >= lose_at) {
        l->expired = true;
        fire = tl__lock_mark_lost_locked(l);
        state = TL_LOST;
    }
    if (state == TL_HELD && timeout != 0)
        l->extending = true;
    pthread_mutex_unlock(&m->mu);
    if (fire)
        tl__lock_fire_lost(l);
    if (state == TL_RELEASED || state == TL_RELEASING)
        return tl__fail(m, TL_ENOTOWNER, "lock %s was released", l->rec.info.key);
    if (state == TL_LOST)
        return tl__fail(m, TL_ELOST,
                        "lock %s was lost (stolen, forced, or not renewed before its loss "
                        "deadline)",
                        l->rec.info.key);

    int64_t beat = 0;
    tl__loss_watch_ensure(m); /* the store call may hang: the watch keeps the deadline */
    m->store->deadline_mono_ms = lose_at;
    st = store_renew(m, &l->rec, seq, timeout, &beat);
    m->store->deadline_mono_ms = 0;
    int64_t replied = m->clock.mono_ms(m->clock.ud);
    if (st == TL_OK && m->store->beat_sent_mono_ms != 0 && m->store->beat_sent_mono_ms < sent)
        sent = m->store->beat_sent_mono_ms;

    int64_t due = 0, lose = 0;
    pthread_mutex_lock(&m->mu);
    l->extending = false;
    if (st == TL_OK) {
        m->metrics.heartbeats_sent++;
        if (l->state == TL_HELD && replied < l->lose_at_mono_ms) {
            l->heartbeat_at_ms = beat;
            if (timeout != 0) {
                l->rec.info.lock_timeout_ms = timeout;
                l->interval_ms = tl__lock_interval(m, m->store, timeout);
                tl__lock_renewed_locked(l, sent);
                tl__lock_schedule_locked(l, sent, replied);
                due = l->next_due_mono_ms;
                lose = l->lose_at_mono_ms;
            } else if (sent > l->last_ok_mono_ms) {
                tl__lock_renewed_locked(l, sent);
            }
        } else if (l->state == TL_HELD) {
            l->expired = true;
            fire = tl__lock_mark_lost_locked(l); /* answered after the deadline */
            st = TL_ELOST;
            (void)tl__store_fail(m->store, TL_ELOST,
                                 "lock %s: the %s was answered after the loss deadline",
                                 l->rec.info.key, timeout != 0 ? "extension" : "renewal");
        }
    } else if (st == TL_ELOST) {
        if (l->state == TL_HELD)
            fire = tl__lock_mark_lost_locked(l);
    } else {
        m->metrics.heartbeats_failed++;
    }
    pthread_mutex_unlock(&m->mu);

    if (fire)
        tl__lock_fire_lost(l);
    if (st != TL_OK)
        return tl__mgr_fail(m, st);
    /* The next renewal, or the loss deadline, may now come before the threads would look. */
    if (due != 0 && tl__heartbeat_start(m, due, lose) != TL_OK)
        TL_LOG(&m->log, TL_LOG_WARN, "%s: could not wake the heartbeat", l->rec.info.key);
    return TL_OK;
}

tl_status tl_renew(tl_lock *l)
{
    return renew_now(l, 0);
}

tl_status tl_extend(tl_lock *l, uint32_t lock_timeout_ms)
{
    /* 0 would be a plain renewal: check it here, where it is an error. */
    if (l != NULL && lock_timeout_ms == 0) {
        tl__begin(l->m);
        return check_timeout(l->m, 0);
    }
    return renew_now(l, lock_timeout_ms);
}

/* tl_renew_token, or tl_extend_token when `timeout` is not 0. */
static tl_status renew_by_token(tl_manager *m, const char *key, uint64_t token, uint32_t timeout)
{
    struct tl_record mine;
    bool ours;
    tl_status st;

    if (m == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK || (st = tl__check_key(m, key)) != TL_OK ||
        (st = check_extend(m, timeout)) != TL_OK ||
        (st = tl__token_record(m, key, token, &mine, &ours)) != TL_OK)
        return st;
    if (!ours)
        return tl__fail(m, TL_ELOST, "lock %s with token %llu is not held by %s", key,
                        (unsigned long long)token, m->worker_id);

    int64_t beat = 0;
    m->store->renew_by_token = true;
    st = store_renew(m, &mine, 1, timeout, &beat);
    m->store->renew_by_token = false;
    tl__record_clear(&mine);

    pthread_mutex_lock(&m->mu);
    if (st == TL_OK)
        m->metrics.heartbeats_sent++;
    else if (st == TL_ELOST)
        m->metrics.locks_lost++;
    else
        m->metrics.heartbeats_failed++;
    pthread_mutex_unlock(&m->mu);
    return st == TL_OK ? TL_OK : tl__mgr_fail(m, st);
}

tl_status tl_renew_token(tl_manager *m, const char *key, uint64_t token)
{
    return renew_by_token(m, key, token, 0);
}

tl_status tl_extend_token(tl_manager *m, const char *key, uint64_t token, uint32_t lock_timeout_ms)
{
    if (m != NULL && lock_timeout_ms == 0) {
        tl__begin(m);
        return check_timeout(m, 0);
    }
    return renew_by_token(m, key, token, lock_timeout_ms);
}

tl_status tl_waiters(tl_manager *m, const char *key, struct tl_waiter ***out, size_t *count)
{
    tl_status st;

    if (out != NULL)
        *out = NULL;
    if (count != NULL)
        *count = 0;
    if (m == NULL || out == NULL || count == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK || (st = tl__check_key(m, key)) != TL_OK)
        return st;
    const struct tl_store_ops *ops = m->store->ops;
    if (ops->version < 3 || ops->waiters == NULL)
        return tl__fail(m, TL_ENOTSUP, "the %s store has no line of waiters", ops->scheme);
    m->store->errmsg[0] = '\0';
    st = ops->waiters(m->store, key, out, count);
    return st == TL_OK ? TL_OK : tl__mgr_fail(m, st);
}

void tl__lock_unref(tl_lock *l)
{
    tl_manager *m = l->m;

    pthread_mutex_lock(&m->mu);
    bool last = --l->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (last)
        lock_free_now(l);
}

void tl_lock_free(tl_lock *l)
{
    if (l == NULL)
        return;

    tl_manager *m = l->m;
    pthread_mutex_lock(&m->mu);
    unlink_lock(m, l);
    if (l->state == TL_HELD) {
        m->metrics.locks_held--;
        l->state = TL_RELEASED; /* not in the store: we just stop heartbeating it */
    }
    pthread_mutex_unlock(&m->mu);
    tl__lock_unref(l);
}

const char *tl_lock_key(const tl_lock *l)
{
    return l->rec.info.key;
}

/* Under the mutex: tl_upgrade() and tl_downgrade() change them (convert.c). */
uint64_t tl_lock_token(const tl_lock *l)
{
    pthread_mutex_lock(&l->m->mu);
    uint64_t token = l->rec.info.token;
    pthread_mutex_unlock(&l->m->mu);
    return token;
}

tl_mode tl_lock_mode(const tl_lock *l)
{
    pthread_mutex_lock(&l->m->mu);
    tl_mode mode = l->rec.info.mode;
    pthread_mutex_unlock(&l->m->mu);
    return mode;
}

bool tl_lock_is_lost(const tl_lock *l)
{
    tl_manager *m = l->m;
    int64_t now = m->clock.mono_ms(m->clock.ud);

    pthread_mutex_lock(&m->mu);
    /* Past the deadline it is lost, even if the loss watch has not run yet. */
    bool lost = l->state == TL_LOST || (l->state == TL_HELD && now >= l->lose_at_mono_ms);
    pthread_mutex_unlock(&m->mu);
    return lost;
}

int64_t tl_lock_expires_in_ms(const tl_lock *l)
{
    tl_manager *m = l->m;
    int64_t now = m->clock.mono_ms(m->clock.ud);

    pthread_mutex_lock(&m->mu);
    bool gone =
        l->state == TL_RELEASED || l->state == TL_RELEASING || (l->state == TL_LOST && !l->expired);
    int64_t left = l->last_ok_mono_ms + l->rec.info.lock_timeout_ms - now;
    pthread_mutex_unlock(&m->mu);
    return gone || left < 0 ? 0 : left;
}

char *tl_lock_metadata(const tl_lock *l)
{
    struct tl_info info;

    pthread_mutex_lock(&l->m->mu);
    info = l->rec.info; /* tl_extend() changes the lock timeout under the mutex */
    info.heartbeat_at_ms = l->heartbeat_at_ms;
    pthread_mutex_unlock(&l->m->mu);
    return tl__meta_encode(&info);
}

tl_status tl_inspect(tl_manager *m, const char *key, struct tl_info **out)
{
    tl_status st;

    if (out != NULL)
        *out = NULL;
    if (m == NULL || out == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK || (st = tl__check_key(m, key)) != TL_OK)
        return st;

    struct tl_record *r = tl__record_new();
    bool found = false;
    if (r == NULL)
        return tl__fail(m, TL_ENOMEM, "out of memory");
    m->store->errmsg[0] = '\0';
    st = m->store->ops->inspect(m->store, key, r, &found);
    if (st != TL_OK || !found) {
        tl__record_free(r);
        return st == TL_OK ? TL_OK : tl__mgr_fail(m, st);
    }
    if (r->info.holders == 0)
        r->info.holders = 1; /* a store without shared holders */
    *out = &r->info;
    return TL_OK;
}

tl_status tl_holders(tl_manager *m, const char *key, struct tl_info ***out, size_t *count)
{
    tl_status st;

    if (out != NULL)
        *out = NULL;
    if (count != NULL)
        *count = 0;
    if (m == NULL || out == NULL || count == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK || (st = tl__check_key(m, key)) != TL_OK)
        return st;
    const struct tl_store_ops *ops = m->store->ops;
    m->store->errmsg[0] = '\0';
    if (ops->version >= 5 && ops->holders != NULL) {
        struct tl_record **recs = NULL;
        st = ops->holders(m->store, key, &recs, count);
        if (st != TL_OK)
            return tl__mgr_fail(m, st);
        *out = (struct tl_info **)recs;
        return TL_OK;
    }

    struct tl_info *one = NULL;
    if ((st = tl_inspect(m, key, &one)) != TL_OK || one == NULL)
        return st;
    struct tl_info **arr = tl__calloc(1, sizeof(struct tl_info *));
    if (arr == NULL) {
        tl_info_free(one);
        return tl__fail(m, TL_ENOMEM, "out of memory");
    }
    arr[0] = one;
    *out = arr;
    *count = 1;
    return TL_OK;
}

tl_status tl_list(tl_manager *m, struct tl_info ***out, size_t *count)
{
    tl_status st;
    struct tl_record **recs = NULL;

    if (out != NULL)
        *out = NULL;
    if (count != NULL)
        *count = 0;
    if (m == NULL || out == NULL || count == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK)
        return st;
    if (m->store->ops->list == NULL)
        return tl__fail(m, TL_ENOTSUP, "the %s store cannot list its locks", m->store->ops->scheme);
    m->store->errmsg[0] = '\0';
    st = m->store->ops->list(m->store, &recs, count);
    if (st != TL_OK)
        return tl__mgr_fail(m, st);
    /* Each record starts with its tl_info, so the array can be handed out as it is. */
    *out = (struct tl_info **)recs;
    return TL_OK;
}

tl_status tl_history(tl_manager *m, const char *key, size_t limit, struct tl_event ***out,
                     size_t *count)
{
    tl_status st;

    if (out != NULL)
        *out = NULL;
    if (count != NULL)
        *count = 0;
    if (m == NULL || out == NULL || count == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK ||
        (key != NULL && (st = tl__check_key(m, key)) != TL_OK))
        return st;
    if (m->store->ops->history == NULL)
        return tl__fail(m, TL_ENOTSUP, "the %s store keeps no audit trail here",
                        m->store->ops->scheme);
    m->store->errmsg[0] = '\0';
    st = m->store->ops->history(m->store, key, limit ? limit : 100, out, count);
    return st == TL_OK ? TL_OK : tl__mgr_fail(m, st);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

void tl_metrics_get(const tl_manager *m, struct tl_metrics *out, size_t size)
{
    struct tl_metrics mt;
    double sorted[TL_LATENCY_WINDOW];
    tl_manager *mm = (tl_manager *)m; /* the mutex is not part of the logical state */

    pthread_mutex_lock(&mm->mu);
    mt = m->metrics;
    size_t n = m->latency_count;
    memcpy(sorted, m->latency, n * sizeof(double));
    mt.average_acquisition_ms =
        mt.total_acquisitions ? m->acq_total_ms / (double)mt.total_acquisitions : 0.0;
    pthread_mutex_unlock(&mm->mu);

    if (n > 0) {
        qsort(sorted, n, sizeof(double), cmp_double);
        mt.p50_acquisition_ms = sorted[(n - 1) / 2];
        mt.p99_acquisition_ms = sorted[(n * 99 + 99) / 100 - 1];
    }
    memcpy(out, &mt, size < sizeof(mt) ? size : sizeof(mt));
}
