/*
 * worker.c -- one torture worker: cycles of acquire -> critical section -> release, each section
 * recorded in the shared log with its writes to the fenced resource.
 *
 * The worker behaves like a careful but naive client: it writes to the resource at entry, in
 * the middle and before it leaves, and it keeps writing even after its lock was lost (a real
 * client would stop; the harness wants the late writes, to show that fencing rejects them).
 * A section that lasted longer than the lock timeout (the worker was stopped, or starved) stays
 * open and keeps writing until the heartbeat reports the loss or a bound passes, so that the
 * run shows when the holder learned it.
 *
 * In the line scenario every acquire call is recorded too (struct tt_attempt): the worker's
 * managers use the store through a thin wrapper of its ops that brackets each claim, leave and
 * wait_turn with clock readings, so the checker knows when the call joined the line, how often
 * it refreshed its place, when it was granted the lock or left.
 *
 * In the partition scenario the workers are careful clients instead: inside a section they
 * sleep in small steps and leave at once when tl_lock_is_lost() says the lock is lost, writing
 * nothing more. Odd slots reach the store through the proxy the parent freezes.
 */
#include <stdio.h>
#include <string.h>

#include "manager.h"
#include "torture.h"

struct ctx {
    const struct tt_run *run;
    struct tt_shared *sh;
    struct tt_worker *w;
    uint32_t slot;
    uint64_t rng;
    int64_t skew_ms;
    atomic_ullong lost_callbacks;
    _Atomic int64_t lost_ns;       /* when the lost callback fired for the current lock; 0: not */
    atomic_ullong logged_warnings; /* the library's own reports, from any of its threads */
    atomic_ullong logged_errors;
    char name[32];
};

/* ---- line: the store's ops, wrapped to record the acquire call in progress ---- */

/* The store's own ops, and a copy whose claim, leave and wait_turn record. Set by the parent
 * before it starts the workers (which inherit them), never changed after. */
static const struct tl_store_ops *real_ops;
static struct tl_store_ops line_ops;
/* A demonstration that the proofs bite (tl-torture --sabotage): breaks what the core and the
 * store see, never what is recorded. */
static enum tt_sabotage sabotage;

/* The acquire call the calling thread is in, and its worker slot (NULL: not recording; the
 * heartbeat thread, the sweeper). */
static _Thread_local struct tt_attempt *cur_attempt;
static _Thread_local struct tt_worker *cur_worker;

static void note_gap(struct tt_attempt *a, int64_t until)
{
    if (a->claims > 0 && until - a->last_send_ns > a->max_gap_ns)
        a->max_gap_ns = until - a->last_send_ns;
}

static tl_status rec_claim(struct tl_store *s, const struct tl_claim *req,
                           struct tl_claim_result *out)
{
    struct tt_attempt *a = cur_attempt;

    if (a == NULL)
        return real_ops->claim(s, req, out);
    struct tl_claim sent = *req;
    if (sabotage == TT_SABOTAGE_INVERT_PRIORITY)
        sent.priority = -req->priority;
    atomic_store(&cur_worker->in_claim, 1);
    int64_t send = tt_now_ns();
    tl_status st = real_ops->claim(s, &sent, out);
    int64_t ret = tt_now_ns();
    atomic_store(&cur_worker->in_claim, 0);

    note_gap(a, ret);
    if (a->claims == 0) {
        a->first_send_ns = send;
        a->first_ret_ns = ret;
        a->lined = req->waiter_id != NULL;
        a->queued = st == TL_EBUSY && a->lined;
    }
    a->claims++;
    a->last_send_ns = send;
    a->last_ret_ns = ret;
    if (st == TL_EBUSY) {
        if (a->woken)
            a->wakeups_spent++;
        if (out->ahead > a->max_ahead)
            a->max_ahead = out->ahead;
        if (out->waiting > a->max_waiting)
            a->max_waiting = out->waiting;
        if (a->queued)
            atomic_store(&cur_worker->in_line, 1);
    } else if (st != TL_OK) {
        a->store_failed = true;
    }
    a->woken = false;
    return st;
}

static tl_status rec_leave(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct tt_attempt *a = cur_attempt;

    if (a == NULL)
        return real_ops->leave(s, key, waiter_id);
    atomic_store(&cur_worker->in_claim, 1);
    int64_t send = tt_now_ns();
    tl_status st = real_ops->leave(s, key, waiter_id);
    int64_t ret = tt_now_ns();
    atomic_store(&cur_worker->in_claim, 0);
    note_gap(a, ret);
    a->left = true;
    a->leave_send_ns = send;
    a->leave_ret_ns = ret;
    if (st != TL_OK)
        a->leave_failed = true;
    return st;
}

static tl_status rec_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                               uint32_t timeout_ms, bool *woken)
{
    struct tt_attempt *a = cur_attempt;
    tl_status st = real_ops->wait_turn(s, key, waiter_id, timeout_ms, woken);

    if (a != NULL && st == TL_OK && *woken) {
        a->wakeups++;
        a->woken = true;
        if (sabotage == TT_SABOTAGE_LOSE_WAKEUPS) {
            /* Hidden: the core waits on until its refresh (or patience) ends. */
            *woken = false;
            int64_t until = tt_now_ns() + (int64_t)timeout_ms * 1000000;
            tt_sleep_ns(until - tt_now_ns());
        }
    }
    return st;
}

bool tt_line_wrap_store(const char *url, enum tt_sabotage how)
{
    sabotage = how;
    real_ops = tl__store_find(url);
    if (real_ops == NULL || real_ops->version < 3 || real_ops->leave == NULL ||
        real_ops->wait_turn == NULL || real_ops->claim == NULL)
        return false;
    line_ops = *real_ops;
    line_ops.claim = rec_claim;
    line_ops.leave = rec_leave;
    line_ops.wait_turn = rec_wait_turn;
    return true;
}

const struct tl_store_ops *tt_line_store_ops(void)
{
    return real_ops != NULL ? &line_ops : NULL;
}

const char *tt_status_name(int st)
{
    static const char *const names[] = {"OK",        "EINVAL",     "ENOMEM",    "EBUSY",
                                        "ENOTOWNER", "ELOST",      "ETIMEDOUT", "ESTORE",
                                        "ENOTSUP",   "ERATELIMIT", "ECANCELED", "EDEADLK"};

    return st >= 0 && (size_t)st < sizeof(names) / sizeof(names[0]) ? names[st] : "E?";
}

void tt_worker_name(uint32_t slot, char *buf, size_t size)
{
    (void)snprintf(buf, size, "w%u", slot);
}

static uint64_t next_rand(struct ctx *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545f4914f6cdd1dull;
}

static int64_t skewed_now(void *ud)
{
    const struct ctx *c = ud;

    return tl__real_now_ms() + c->skew_ms;
}

bool tt_slot_proxied(const struct tt_run *run, uint32_t slot)
{
    return run->cfg.scenario == TT_PARTITION && run->proxied_url[0] != '\0' && slot % 2 == 1 &&
           slot != TT_MAX_WORKERS - 1;
}

bool tt_store_features(const char *url, struct tt_features *f)
{
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url, .worker_id = "probe"});
    bool ok = m != NULL && tl_connect(m) == TL_OK;

    *f = (struct tt_features){0};
    if (ok) {
        f->modes = m->store->modes;
        f->deadlocks = m->store->deadlocks;
        f->convert = m->store->ops->convert != NULL;
    }
    tl_manager_free(m);
    return ok;
}

uint32_t tt_group_of(const struct tt_config *c, uint32_t slot, uint32_t *index, uint32_t *first,
                     uint32_t *size)
{
    uint32_t g, base;

    if (slot < 3 * c->triples) {
        g = slot / 3;
        *size = 3;
        base = 3 * g;
    } else {
        g = c->triples + (slot - 3 * c->triples) / 2;
        *size = 2;
        base = 3 * c->triples + 2 * (g - c->triples);
    }
    if (g >= c->groups)
        return UINT32_MAX;
    *first = base;
    *index = slot - base;
    return g;
}

static void on_lost(void *ud, tl_lock *lock)
{
    struct ctx *c = ud;
    int64_t zero = 0;

    (void)lock;
    (void)atomic_compare_exchange_strong(&c->lost_ns, &zero, tt_now_ns());
    atomic_fetch_add(&c->lost_callbacks, 1);
}

static void on_log(void *ud, int level, const char *msg)
{
    struct ctx *c = ud;

    if (level == TL_LOG_WARN)
        atomic_fetch_add(&c->logged_warnings, 1);
    else if (level == TL_LOG_ERROR)
        atomic_fetch_add(&c->logged_errors, 1);
    if (c->run->cfg.verbose)
        (void)fprintf(stderr, "tl-torture: %s: [%d] %s\n", c->name, level, msg);
}

static void note_error(struct ctx *c, tl_manager *m, const char *what, tl_status st)
{
    const char *msg = tl_errmsg(m);

    if (msg[0] == '\0')
        c->w->n.errors_without_message++;
    if (c->w->first_error[0] == '\0')
        (void)snprintf(c->w->first_error, sizeof(c->w->first_error), "%s: %s: %s", what,
                       tt_status_name(st), msg);
    if (c->run->cfg.verbose)
        (void)fprintf(stderr, "tl-torture: %s: %s: %s\n", c->name, what, msg);
}

static void poll_lost(tl_lock *l, struct tt_section *s)
{
    if (s->learned_ns == 0 && tl_lock_is_lost(l))
        s->learned_ns = tt_now_ns();
}

#define STEP_NS 5000000 /* a careful worker's step: 5 ms */

/*
 * The part between acquire and release, done carefully (partition): in steps of 5 ms, leaving
 * at once, without another write, when the lock is lost. A worker behind the proxy that enters
 * while the parent is about to freeze it holds on until the loss (or a generous bound).
 */
static void careful_section(struct ctx *c, tl_lock *l, struct tt_section *s, uint32_t id)
{
    const struct tt_config *cfg = &c->run->cfg;
    int64_t hold = cfg->hold_ms ? (int64_t)(next_rand(c) % ((uint64_t)cfg->hold_ms * 1000 + 1))
                                : 0; /* microseconds */
    int64_t end = s->enter_ns + hold * 1000;

    if (s->proxied && atomic_load(&c->sh->partition_armed)) {
        s->long_hold = true;
        atomic_store(&c->w->long_hold, 1);
        end = s->enter_ns + ((int64_t)cfg->freeze_ms + 3 * (int64_t)cfg->lock_timeout_ms) * 1000000;
    }
    (void)tt_resource_write(c->sh, c->w, id, TT_PHASE_ENTRY);
    bool middle = false;
    for (;;) {
        poll_lost(l, s);
        if (s->learned_ns != 0)
            break;

        int64_t now = tt_now_ns();
        if (now >= end) {
            (void)tt_resource_write(c->sh, c->w, id, TT_PHASE_EXIT);
            break;
        }
        if (!middle && now >= s->enter_ns + (end - s->enter_ns) / 2) {
            (void)tt_resource_write(c->sh, c->w, id, TT_PHASE_MIDDLE);
            middle = true;
            continue; /* check again before anything else */
        }
        tt_sleep_ns(end - now < STEP_NS ? end - now : STEP_NS);
    }
    s->exit_ns = tt_now_ns();
    atomic_store(&c->w->long_hold, 0);
    atomic_store(&c->w->state, TT_RELEASING);
}

/* The part between acquire and release. */
static void critical_section(struct ctx *c, tl_manager *m, tl_lock *l, struct tt_section *s,
                             uint32_t id)
{
    const struct tt_config *cfg = &c->run->cfg;
    int64_t hold = cfg->hold_ms ? (int64_t)(next_rand(c) % ((uint64_t)cfg->hold_ms * 1000 + 1))
                                : 0; /* microseconds */

    (void)tt_resource_write(c->sh, c->w, id, TT_PHASE_ENTRY);
    tt_sleep_ns(hold * 500);
    poll_lost(l, s);
    (void)tt_resource_write(c->sh, c->w, id, TT_PHASE_MIDDLE);
    tt_sleep_ns(hold * 500);
    poll_lost(l, s);
    (void)tt_resource_write(c->sh, c->w, id, TT_PHASE_EXIT);

    /* From here on the parent leaves this worker alone (see the faults in torture.c). */
    atomic_store(&c->w->state, TT_RELEASING);
    int64_t timeout_ns = (int64_t)cfg->lock_timeout_ms * 1000000;
    if (tt_now_ns() - s->enter_ns > timeout_ns) {
        /* Overran the lock timeout: stopped or starved. The heartbeat renews the overdue lock
         * as soon as the process runs again: keep writing until it says the lock is lost, or
         * until two more renewals went through without saying so (the first may have been in
         * flight before the stop), or a generous bound passes. */
        int64_t bound = tt_now_ns() + 4 * (int64_t)cfg->heartbeat_ms * 1000000 + 10000000000;
        struct tl_metrics mt;
        tl_metrics_get(m, &mt, sizeof(mt));
        uint64_t rounds = mt.heartbeats_sent + mt.heartbeats_failed;

        s->overran = true;
        poll_lost(l, s);
        while (s->learned_ns == 0 && tt_now_ns() < bound) {
            (void)tt_resource_write(c->sh, c->w, id, TT_PHASE_LATE);
            tt_sleep_ns(10000000);
            poll_lost(l, s);
            tl_metrics_get(m, &mt, sizeof(mt));
            if (s->learned_ns == 0 && mt.heartbeats_sent + mt.heartbeats_failed >= rounds + 2)
                break;
        }
        (void)tt_resource_write(c->sh, c->w, id, TT_PHASE_LATE);
    }
    poll_lost(l, s);
    s->exit_ns = tt_now_ns();
}

static void release(struct ctx *c, tl_manager *m, tl_lock *l, struct tt_section *s)
{
    const struct tt_config *cfg = &c->run->cfg;
    int64_t deadline =
        tt_now_ns() +
        (3 * (int64_t)cfg->lock_timeout_ms + (int64_t)cfg->freeze_ms + 10000) * 1000000;

    for (;;) {
        tl_status st = tl_release(l, NULL);

        if (st == TL_OK) {
            s->released_ns = tt_now_ns();
            s->end = TT_END_RELEASED;
            return;
        }
        if (st == TL_ENOTOWNER) {
            s->end = s->release_errors ? TT_END_UNSURE : TT_END_LOST;
            return;
        }
        s->release_errors++;
        c->w->n.release_errors[st < TT_STATUS_MAX ? st : 0]++;
        note_error(c, m, "release", st);
        if (tt_now_ns() > deadline) {
            s->end = TT_END_UNSURE; /* left to go stale; a steal recovers it */
            return;
        }
        tt_sleep_ns(50000000);
    }
}

static tl_strategy pick_strategy(const struct ctx *c)
{
    switch (c->run->cfg.scenario) {
    case TT_CLEAN: return TL_RETRY;
    default: return TL_STEAL_STALE;
    }
}

/*
 * line: the acquire call's options (a random strategy that waits, a random priority, a random
 * patience) and its record, or NULL when the log is full.
 */
static struct tt_attempt *line_attempt(struct ctx *c, uint32_t key, struct tl_acquire_opts *o)
{
    const struct tt_config *cfg = &c->run->cfg;
    uint32_t id;
    struct tt_attempt *a = tt_attempt_new(c->sh, &id);

    if (a == NULL)
        return NULL;
    /* A quarter wait with RETRY: the head of a line whose holder died cannot steal, and holds
     * the line up until its patience ends (DESIGN.md section 7). */
    o->strategy = next_rand(c) % 4 == 0 ? TL_RETRY : TL_STEAL_STALE;
    o->priority =
        cfg->max_priority > 0
            ? (int32_t)(next_rand(c) % (2 * (uint64_t)cfg->max_priority + 1)) - cfg->max_priority
            : 0;
    o->deadline_ms =
        cfg->patience_min_ms +
        (uint32_t)(next_rand(c) % ((uint64_t)cfg->patience_max_ms - cfg->patience_min_ms + 1));
    o->retries = 0; /* with a deadline: unlimited until then */
    a->key = key;
    a->worker = c->slot;
    a->priority = o->priority;
    a->strategy = (uint8_t)o->strategy;
    a->patience_ns = (int64_t)o->deadline_ms * 1000000;
    atomic_store(&c->w->attempt, id);
    return a;
}

/*
 * modes: after a shared section, tl_upgrade() on the same lock. The shared section ends where
 * the call begins (its exit was taken just before); on success the exclusive hold is a section
 * of its own from the call's start (acq) to its return (enter). A refused upgrade (TL_EDEADLK:
 * two readers upgrading at once, on a store that finds deadlocks; TL_EBUSY: its patience, one
 * lock timeout, ran out) keeps the shared lock, which the caller then releases. Returns the
 * section to release.
 */
static struct tt_section *upgrade_section(struct ctx *c, tl_manager *m, tl_lock *l,
                                          struct tt_section *s)
{
    const struct tt_config *cfg = &c->run->cfg;
    const struct tl_acquire_opts o = {.strategy = TL_RETRY, .deadline_ms = cfg->lock_timeout_ms};
    uint32_t id;

    c->w->n.upgrades++;
    int64_t acq = tt_now_ns();
    tl_status st = tl_upgrade(l, &o);
    int64_t enter = tt_now_ns();
    if (st != TL_OK) {
        if (st == TL_EDEADLK)
            c->w->n.upgrades_deadlocked++;
        else if (st == TL_EBUSY)
            c->w->n.upgrades_busy++;
        else {
            c->w->n.upgrades_failed++;
            note_error(c, m, "upgrade", st);
        }
        return s;
    }
    c->w->n.upgrades_granted++;
    struct tt_section *u = tt_section_new(c->sh, &id);
    if (u == NULL)
        return s; /* the log is full (reported); release the lock as the shared section's */
    s->end = TT_END_UPGRADED;
    u->key = s->key;
    u->worker = c->slot;
    u->token = tl_lock_token(l);
    u->acq_ns = acq;
    u->enter_ns = enter;
    u->strategy = TL_RETRY;
    u->mode = TL_EXCLUSIVE;
    u->upgraded = true;
    atomic_store(&c->w->section, id);
    atomic_store(&c->w->state, TT_IN_SECTION);
    critical_section(c, m, l, u, id);
    return u;
}

/*
 * modes: after an exclusive section, tl_downgrade() on the same lock: the exclusive section ends
 * where the call begins, and the shared hold it turns into is a section of its own (a reader,
 * with its new token) from the call to its return. Returns the section to release.
 */
static struct tt_section *downgrade_section(struct ctx *c, tl_manager *m, tl_lock *l,
                                            struct tt_section *s)
{
    uint32_t id;

    c->w->n.downgrades++;
    int64_t acq = tt_now_ns();
    tl_status st = tl_downgrade(l);
    int64_t enter = tt_now_ns();
    if (st != TL_OK) {
        c->w->n.downgrades_failed++;
        note_error(c, m, "downgrade", st);
        return s;
    }
    struct tt_section *d = tt_section_new(c->sh, &id);
    if (d == NULL)
        return s; /* the log is full (reported) */
    s->end = TT_END_DOWNGRADED;
    d->key = s->key;
    d->worker = c->slot;
    d->token = tl_lock_token(l);
    d->acq_ns = acq;
    d->enter_ns = enter;
    d->strategy = s->strategy;
    d->mode = TL_SHARED;
    d->downgraded = true;
    atomic_store(&c->w->section, id);
    atomic_store(&c->w->state, TT_IN_SECTION);
    critical_section(c, m, l, d, id);
    return d;
}

static void one_cycle(struct ctx *c, tl_manager *m)
{
    const struct tt_config *cfg = &c->run->cfg;
    uint32_t key = (uint32_t)(next_rand(c) % cfg->keys);
    tl_strategy strategy = pick_strategy(c);
    /* Clock-skew: the workers whose clock runs ahead try single steals of live locks. */
    bool prober = cfg->scenario == TT_CLOCK_SKEW && c->skew_ms > 0;
    struct tl_acquire_opts opts = {
        .strategy = strategy,
        .deadline_ms = prober ? 0 : cfg->deadline_ms,
        .retries = prober ? TL_NO_RETRIES : 0,
    };
    struct tl_metrics before, after;
    tl_lock *l = NULL;
    bool upgrade = false, downgrade = false;

    /* modes: a slot of the semaphore (every third key), else a reader, a writer, or a reader
     * that then upgrades. */
    if (cfg->modes && cfg->keys >= 3 && key % 3 == 2) {
        opts.mode = TL_SHARED;
        opts.slots = cfg->slots;
    } else if (cfg->modes) {
        uint64_t r = next_rand(c) % 20;
        opts.mode = r < 8 ? TL_EXCLUSIVE : TL_SHARED;
        upgrade = r >= 15 && cfg->upgrades;
        downgrade = r < 2 && cfg->upgrades;
    }

    struct tt_attempt *att = NULL;
    if (cfg->scenario == TT_LINE) {
        att = line_attempt(c, key, &opts);
        if (att == NULL)
            return; /* the log is full (reported as a failure) */
        strategy = opts.strategy;
    }

    c->w->n.cycles++;
    bool after_faults = atomic_load(&c->sh->faults_done) != 0;
    atomic_store(&c->lost_ns, 0);
    tl_metrics_get(m, &before, sizeof(before));
    atomic_store(&c->w->state, TT_ACQUIRING);
    int64_t acq = tt_now_ns();
    if (att != NULL) {
        att->start_ns = acq;
        cur_attempt = att;
        cur_worker = c->w;
    }
    tl_status st = tl_acquire(m, c->run->keys[key], &opts, &l);
    int64_t enter = tt_now_ns();
    if (att != NULL) {
        cur_attempt = NULL;
        atomic_store(&c->w->in_line, 0);
        if (!att->left && st != TL_OK)
            note_gap(att, enter);
        att->status = (uint8_t)st;
        att->outcome = st == TL_OK      ? TT_OUT_GRANTED
                       : st == TL_EBUSY ? TT_OUT_GAVE_UP
                                        : TT_OUT_ERROR;
        att->end_ns = enter;
    }
    if (st != TL_OK) {
        atomic_store(&c->w->state, TT_IDLE);
        if (prober && st == TL_EBUSY) {
            c->w->n.probes_refused++; /* the expected answer to a steal of a live lock */
            return;
        }
        c->w->n.acquire_errors[st < TT_STATUS_MAX ? st : 0]++;
        note_error(c, m, "acquire", st);
        if (st != TL_EBUSY)
            tt_sleep_ns(20000000); /* the store is failing: do not spin */
        return;
    }
    tl_metrics_get(m, &after, sizeof(after));

    uint32_t id;
    struct tt_section *s = tt_section_new(c->sh, &id);
    if (s == NULL) {
        /* The log is full (reported as a failure); give the lock back and stop. */
        (void)tl_release(l, NULL);
        tl_lock_free(l);
        atomic_store(&c->w->state, TT_IDLE);
        return;
    }
    s->key = key;
    s->worker = c->slot;
    s->token = tl_lock_token(l);
    s->acq_ns = acq;
    s->enter_ns = enter;
    s->strategy = (uint8_t)strategy;
    s->took_stale = after.stale_locks_claimed > before.stale_locks_claimed;
    s->took_forced = after.forced_acquisitions > before.forced_acquisitions;
    s->proxied = tt_slot_proxied(c->run, c->slot);
    s->mode = (uint8_t)(opts.slots > 0 ? TL_SHARED : opts.mode);
    s->slots = opts.slots;
    if (cfg->modes) {
        if (opts.slots > 0)
            c->w->n.slot_sections++;
        else if (opts.mode == TL_SHARED)
            c->w->n.shared_sections++;
        else
            c->w->n.exclusive_sections++;
    }
    if (att != NULL) {
        att->token = s->token;
        att->section = id;
    }
    if (s->took_stale && c->skew_ms != 0)
        c->w->n.stale_steals_by_skewed++;
    c->w->n.sections++;
    atomic_store(&c->w->section, id);
    atomic_store(&c->w->state, TT_IN_SECTION);
    if (after_faults)
        atomic_store(&c->sh->recovered, 1);

    if (cfg->scenario == TT_PARTITION)
        careful_section(c, l, s, id);
    else
        critical_section(c, m, l, s, id);
    if (upgrade && s->learned_ns == 0)
        s = upgrade_section(c, m, l, s);
    else if (downgrade && s->learned_ns == 0)
        s = downgrade_section(c, m, l, s);
    release(c, m, l, s);
    s->lost_ns = atomic_load(&c->lost_ns);
    atomic_store(&c->w->state, TT_IDLE);
    tl_lock_free(l);
}

/* ---- deadlock: cycles made on purpose, and an ordered workload ---- */

/* A random stay inside, up to the configured hold. */
static void critical_pause(struct ctx *c)
{
    uint32_t hold = c->run->cfg.hold_ms;

    if (hold > 0)
        tt_sleep_ns((int64_t)(next_rand(c) % ((uint64_t)hold * 1000 + 1)) * 1000);
}

/* deadlock: one held lock, recorded as a section (entry and exit writes). */
struct held {
    tl_lock *l;
    struct tt_section *s;
    uint32_t id;
};

/* Acquires key `key` in `mode` and records the section; false (and nothing held) on failure,
 * with *st what tl_acquire() said. */
static bool take(struct ctx *c, tl_manager *m, uint32_t key, tl_mode mode, uint32_t deadline_ms,
                 struct held *h, tl_status *st)
{
    const struct tl_acquire_opts o = {
        .strategy = TL_RETRY, .deadline_ms = deadline_ms, .mode = mode};

    c->w->n.cycles++;
    int64_t acq = tt_now_ns();
    *st = tl_acquire(m, c->run->keys[key], &o, &h->l);
    int64_t enter = tt_now_ns();
    if (*st != TL_OK)
        return false;
    h->s = tt_section_new(c->sh, &h->id);
    if (h->s == NULL) {
        (void)tl_release(h->l, NULL);
        tl_lock_free(h->l);
        return false;
    }
    h->s->key = key;
    h->s->worker = c->slot;
    h->s->token = tl_lock_token(h->l);
    h->s->acq_ns = acq;
    h->s->enter_ns = enter;
    h->s->strategy = TL_RETRY;
    h->s->mode = (uint8_t)mode;
    c->w->n.sections++;
    if (mode == TL_SHARED)
        c->w->n.shared_sections++;
    else
        c->w->n.exclusive_sections++;
    (void)tt_resource_write(c->sh, c->w, h->id, TT_PHASE_ENTRY);
    return true;
}

static void give_back(struct ctx *c, tl_manager *m, struct held *h)
{
    (void)tt_resource_write(c->sh, c->w, h->id, TT_PHASE_EXIT);
    h->s->exit_ns = tt_now_ns();
    release(c, m, h->l, h->s);
    tl_lock_free(h->l);
}

static void acquire_failed(struct ctx *c, tl_manager *m, tl_status st)
{
    c->w->n.acquire_errors[st < TT_STATUS_MAX ? st : 0]++;
    note_error(c, m, "acquire", st);
}

/* Waits until `*count` reaches `want` (polling; every member gets there unless it crashed), at
 * most `limit_ns`. */
static bool wait_count(atomic_int *count, int want, int64_t limit_ns)
{
    int64_t until = tt_now_ns() + limit_ns;

    while (atomic_load(count) < want) {
        if (tt_now_ns() > until)
            return false;
        tt_sleep_ns(1000000);
    }
    return true;
}

static bool wait_group(atomic_uint *arrived, uint32_t want, int64_t limit_ns)
{
    int64_t until = tt_now_ns() + limit_ns;

    while (atomic_load(arrived) < want) {
        if (tt_now_ns() > until)
            return false;
        tt_sleep_ns(1000000);
    }
    return true;
}

/*
 * A cycle on purpose: member i of the group takes its key i, waits until every member holds
 * its own, then asks for key i + 1 (mod size) while holding it. Exactly one member (the
 * youngest waiter) must get TL_EDEADLK; it releases its key, and the others get theirs in turn.
 */
static void cycle_round(struct ctx *c, tl_manager *m, uint32_t g, uint32_t idx, uint32_t size,
                        uint32_t round)
{
    const struct tt_config *cfg = &c->run->cfg;
    uint32_t n = g * cfg->cycles + round;
    struct tt_cycle *cy = n < TT_MAX_CYCLES ? &c->sh->cycles[n] : NULL;
    /* Long enough for any detection that is not a miss (the checker's bound is a wait
     * interval plus the overrun slack), short enough that a miss costs seconds. */
    uint32_t patience = 3 * cfg->lock_timeout_ms + cfg->overrun_ms + 5000;
    int64_t limit = ((int64_t)cfg->deadline_ms + 30000) * 1000000;
    struct held first, second;
    tl_status st;

    if (cy == NULL)
        return;
    if (idx == 0) { /* one writer (threads: no race); the parent reads them after the run */
        cy->size = size;
        cy->group = g;
        cy->round = round;
    }
    cy->worker[idx] = c->slot;
    bool held = take(c, m, 3 * g + idx, TL_EXCLUSIVE, cfg->deadline_ms, &first, &st);
    if (!held) {
        acquire_failed(c, m, st);
        atomic_fetch_add(&cy->failed, 1);
    }
    atomic_fetch_add(&cy->holding, 1);
    if (!wait_count(&cy->holding, (int)size, limit))
        atomic_fetch_add(&cy->failed, 1);
    if (held && atomic_load(&cy->failed) == 0) {
        atomic_fetch_add(&cy->waiting, 1);
        cy->call_ns[idx] = tt_now_ns();
        bool got = take(c, m, 3 * g + (idx + 1) % size, TL_EXCLUSIVE, patience, &second, &st);
        cy->ret_ns[idx] = tt_now_ns();
        cy->status[idx] = (uint8_t)st;
        cy->returned[idx] = true;
        if (got) {
            give_back(c, m, &second);
        } else if (st != TL_EDEADLK) {
            acquire_failed(c, m, st);
        }
    }
    if (held)
        give_back(c, m, &first);
}

/* Keys taken in one global order (ascending index): no cycle of waits can form, so a
 * TL_EDEADLK here is a false report. Readers and writers where the store has modes. */
static void ordered_cycle(struct ctx *c, tl_manager *m)
{
    const struct tt_config *cfg = &c->run->cfg;
    uint32_t n = cfg->keys - cfg->group_keys;
    uint32_t a = cfg->group_keys + (uint32_t)(next_rand(c) % n);
    uint32_t b = cfg->group_keys + (uint32_t)(next_rand(c) % n);
    struct held first, second;
    tl_status st;

    if (a == b)
        b = a + 1 < cfg->keys ? a + 1 : cfg->group_keys;
    if (a > b) {
        uint32_t t = a;
        a = b;
        b = t;
    }
    tl_mode ma = cfg->modes && next_rand(c) % 2 ? TL_SHARED : TL_EXCLUSIVE;
    tl_mode mb = cfg->modes && next_rand(c) % 2 ? TL_SHARED : TL_EXCLUSIVE;
    c->w->n.ordered_acquires++;
    if (!take(c, m, a, ma, cfg->deadline_ms, &first, &st)) {
        c->w->n.false_deadlocks += st == TL_EDEADLK;
        acquire_failed(c, m, st);
        return;
    }
    critical_pause(c);
    c->w->n.ordered_acquires++;
    if (take(c, m, b, mb, cfg->deadline_ms, &second, &st)) {
        critical_pause(c);
        give_back(c, m, &second);
    } else {
        c->w->n.false_deadlocks += st == TL_EDEADLK;
        acquire_failed(c, m, st);
    }
    give_back(c, m, &first);
}

static void deadlock_run(struct ctx *c, tl_manager *m)
{
    const struct tt_config *cfg = &c->run->cfg;
    uint32_t idx = 0, first = 0, size = 0; /* set by tt_group_of for a member */
    uint32_t g = tt_group_of(cfg, c->slot, &idx, &first, &size);
    int64_t limit = ((int64_t)cfg->deadline_ms * 3 + 60000) * 1000000;

    for (uint32_t r = 0; r < cfg->cycles && !atomic_load(&c->sh->log_full); r++) {
        if (g != UINT32_MAX) {
            cycle_round(c, m, g, idx, size, r);
            /* The round ends when every member is done with it. */
            atomic_fetch_add(&c->sh->groups[g].arrived, 1);
            (void)wait_group(&c->sh->groups[g].arrived, size * (r + 1), limit);
        }
        for (uint32_t i = 0; i < cfg->ordered_cycles; i++)
            ordered_cycle(c, m);
        atomic_fetch_add(&c->w->cycles_done, 1);
    }
}

void tt_worker_run(const struct tt_run *run, uint32_t slot)
{
    struct tt_shared *sh = run->sh;
    struct ctx c = {
        .run = run,
        .sh = sh,
        .w = &sh->workers[slot],
        .slot = slot,
        .rng = (run->cfg.seed + 1) * 0x9e3779b97f4a7c15ull ^
               ((uint64_t)slot + 1) * 0xbf58476d1ce4e5b9ull,
        .skew_ms = sh->workers[slot].skew_ms,
    };
    atomic_init(&c.lost_callbacks, 0);
    atomic_init(&c.lost_ns, 0);
    atomic_init(&c.logged_warnings, 0);
    atomic_init(&c.logged_errors, 0);
    tt_worker_name(slot, c.name, sizeof(c.name));
    if (c.rng == 0)
        c.rng = 1;

    tl_manager *m = tl_manager_new(&(struct tl_options){
        .store_url = tt_slot_proxied(run, slot) ? run->proxied_url : run->cfg.store,
        .worker_id = c.name,
        .node_id = "torture",
        .backoff_initial_ms = run->cfg.backoff_min_ms,
        .backoff_max_ms = run->cfg.backoff_max_ms,
        .heartbeat_ms = run->cfg.heartbeat_ms,
        .lock_timeout_ms = run->cfg.lock_timeout_ms,
        .log = on_log,
        .log_ud = &c,
        .log_level = run->cfg.verbose ? TL_LOG_INFO : TL_LOG_WARN,
        .on_lost = on_lost,
        .lost_ud = &c,
        .no_line = run->cfg.no_line,
    });
    if (m == NULL) {
        (void)snprintf(c.w->first_error, sizeof(c.w->first_error), "out of memory");
        atomic_store(&c.w->state, TT_DONE);
        return;
    }
    if (run->cfg.scenario == TT_LINE && tt_line_store_ops() != NULL) {
        tl__manager_set_store_ops(m, tt_line_store_ops());
        /* Connect first: an acquire's deadline does not cover the connection its first call
         * opens (on a fresh PostgreSQL database, workers starting together create the tables
         * one after the other, seconds in all), and the patience proof is about waiting. */
        int64_t t0 = tt_now_ns();
        tl_status st = tl_connect(m);
        c.w->n.connect_ns = tt_now_ns() - t0;
        if (st != TL_OK)
            note_error(&c, m, "connect", st);
    }
    if (c.skew_ms != 0) {
        struct tl_clock clock = tl__real_clock;

        clock.now_ms = skewed_now;
        clock.ud = &c;
        tl__manager_set_clock(m, &clock);
    }

    /* The cycles, more while the parent still injects faults, then a tail after the last one
     * (so that every fault is followed by work that shows the system recovered). */
    /* The tail lasts until some worker got a lock after the faults (a server restarting
     * under a sanitizer can refuse the first few cycles), at most 60 s. */
    uint32_t tail = run->cfg.faults > 0 ? run->cfg.cycles / 10 + 1 : 0;
    uint64_t tail_end = UINT64_MAX;
    int64_t tail_limit = INT64_MAX;
    if (run->cfg.scenario == TT_DEADLOCK)
        deadlock_run(&c, m);
    for (uint64_t i = 0; run->cfg.scenario != TT_DEADLOCK && !atomic_load(&sh->log_full); i++) {
        if (tail_end == UINT64_MAX && atomic_load(&sh->faults_done)) {
            tail_end = i + tail;
            tail_limit = tt_now_ns() + (int64_t)60 * 1000000000;
        }
        bool recovered = tail == 0 || atomic_load(&sh->recovered) || tt_now_ns() > tail_limit;
        if (i >= c.w->cycles && i >= tail_end && recovered)
            break;
        tt_sleep_ns((int64_t)run->cfg.pause_ms * 1000000); /* think time */
        one_cycle(&c, m);
        atomic_fetch_add(&c.w->cycles_done, 1);
    }

    struct tl_metrics mt;
    tl_metrics_get(m, &mt, sizeof(mt));
    c.w->n.conflicts = mt.total_conflicts;
    c.w->n.retries = mt.total_retries;
    c.w->n.stale_claimed = mt.stale_locks_claimed;
    c.w->n.forced = mt.forced_acquisitions;
    c.w->n.locks_lost = mt.locks_lost;
    c.w->n.heartbeats_sent = mt.heartbeats_sent;
    c.w->n.heartbeats_failed = mt.heartbeats_failed;
    c.w->n.queued = mt.queued;
    c.w->n.wakeups = mt.wakeups;
    tl_manager_free(m);
    c.w->n.lost_callbacks = atomic_load(&c.lost_callbacks);
    c.w->n.logged_warnings = atomic_load(&c.logged_warnings);
    c.w->n.logged_errors = atomic_load(&c.logged_errors);
    atomic_store(&c.w->state, TT_DONE);
}
