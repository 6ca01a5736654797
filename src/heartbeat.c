/*
 * heartbeat.c -- the heartbeat thread and the loss watch.
 *
 * The heartbeat thread renews every held lock when it is due, on its own store connection
 * (connections belong to one thread), and reports a lock lost when a renew says so.
 *
 * The loss watch enforces the holder's deadline. A renew sent at monotonic time t that succeeds
 * proves the store recorded a heartbeat no earlier than t, so no other worker can take the lock
 * before t + lock timeout. A lock is therefore declared lost at last_ok + lock timeout - margin
 * (tl__loss_margin), unless a renew sent before then has succeeded. The renew itself carries that
 * deadline into the store, which gives up by then, but a store call can still overrun it (a
 * stalled fsync, a name lookup), and the heartbeat thread renews one lock at a time: so a second
 * thread, which does no I/O at all, sleeps until the earliest deadline and declares the loss on
 * time. A renew that answers after the deadline does not revive the lock.
 *
 * Neither thread writes the manager's message slot; they log and fire the lost callback.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "manager.h"
#include "store.h"
#include "tl.h"

struct due {
    tl_lock *lock;
    uint64_t seq;
    int64_t lose_at;
};

uint32_t tl__loss_margin(uint32_t timeout_ms)
{
    uint32_t margin = timeout_ms / 20;

    if (margin < 100)
        margin = 100;
    if (margin > timeout_ms / 4)
        margin = timeout_ms / 4;
    return margin;
}

void tl__lock_renewed_locked(tl_lock *l, int64_t sent)
{
    uint32_t timeout = l->rec.info.lock_timeout_ms;

    l->last_ok_mono_ms = sent;
    l->lose_at_mono_ms = sent + timeout - tl__loss_margin(timeout);
}

void tl__lock_schedule_locked(tl_lock *l, int64_t sent, int64_t now)
{
    int64_t due = sent + l->interval_ms;

    if (due <= now) {
        /* Relied on a write older than the interval: renewing again at once would rely on it
         * again (the store's window for that is its own, often longer than a short configured
         * interval) and spin until the write is out of the window. */
        int64_t room = (l->lose_at_mono_ms - now) / 2;
        due = now + (room > 0 && room < (int64_t)l->interval_ms ? room : (int64_t)l->interval_ms);
    }
    l->next_due_mono_ms = due;
}

/* Applies the outcome of one renew, sent at `sent` and answered at `replied`, then logs it
 * (never under the mutex: the log callback is the user's). Returns whether the lost callback
 * must fire. */
static bool apply_renew(tl_manager *m, tl_lock *l, tl_status st, int64_t sent, int64_t replied,
                        int64_t beat, const char *why)
{
    enum { QUIET, LOST, TIMED_OUT, TOO_LATE, RETRYING } what = QUIET;
    bool fire = false;
    int64_t silent = 0;

    pthread_mutex_lock(&m->mu);
    if (l->state != TL_HELD) {
        /* Released, freed or declared lost while the renew was in flight: its answer means
         * nothing now (a lost lock stays lost). */
    } else if (st == TL_OK && replied < l->lose_at_mono_ms) {
        m->metrics.heartbeats_sent++;
        l->heartbeat_at_ms = beat;
        tl__lock_renewed_locked(l, sent);
        tl__lock_schedule_locked(l, sent, replied);
    } else if (st == TL_OK) {
        /* The store took it, but after the deadline: the lock was unprotected meanwhile. */
        m->metrics.heartbeats_sent++;
        silent = replied - l->last_ok_mono_ms;
        l->expired = true;
        fire = tl__lock_mark_lost_locked(l);
        what = TOO_LATE;
    } else if (st == TL_ELOST) {
        fire = tl__lock_mark_lost_locked(l);
        what = LOST;
    } else {
        m->metrics.heartbeats_failed++;
        silent = replied - l->last_ok_mono_ms;
        if (replied >= l->lose_at_mono_ms) {
            l->expired = true;
            fire = tl__lock_mark_lost_locked(l);
            what = TIMED_OUT;
        } else {
            /* Retry sooner than a full interval; the loss watch keeps the deadline. */
            int64_t retry = l->interval_ms / 4 ? l->interval_ms / 4 : 1;
            l->next_due_mono_ms = replied + retry;
            what = RETRYING;
        }
    }
    pthread_mutex_unlock(&m->mu);

    const char *key = l->rec.info.key;
    unsigned long long token = (unsigned long long)l->rec.info.token;
    if (what == LOST)
        TL_LOG(&m->log, TL_LOG_WARN, "%s: lock lost (token %llu): %s", key, token, why);
    else if (what == TIMED_OUT || what == TOO_LATE)
        TL_LOG(&m->log, TL_LOG_ERROR,
               "%s: lock lost (token %llu): no successful renew for %lld ms, past its loss "
               "deadline (lock timeout %u ms less a %u ms margin)%s%s",
               key, token, (long long)silent, l->rec.info.lock_timeout_ms,
               tl__loss_margin(l->rec.info.lock_timeout_ms),
               what == TOO_LATE ? "; a renew succeeded only after it" : ": ",
               what == TOO_LATE ? "" : why);
    else if (what == RETRYING)
        TL_LOG(&m->log, TL_LOG_WARN, "%s: renew failed, retrying: %s", key, why);
    return fire;
}

size_t tl__heartbeat_round(tl_manager *m, struct tl_store *store, int64_t mono_now, bool all)
{
    struct due *due = NULL;
    size_t n = 0, cap = 0;

    pthread_mutex_lock(&m->mu);
    for (tl_lock *l = m->held; l != NULL; l = l->next) {
        if (l->state != TL_HELD || l->extending || (!all && l->next_due_mono_ms > mono_now))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct due *d = tl__realloc(due, ncap * sizeof(*d));

            if (d == NULL)
                break; /* renew what fits now; the rest stay due for the next round */
            due = d;
            cap = ncap;
        }
        l->refs++;
        l->renewing = true;
        due[n].lock = l;
        due[n].seq = ++l->renewals;
        due[n].lose_at = l->lose_at_mono_ms;
        n++;
    }
    pthread_mutex_unlock(&m->mu);

    for (size_t i = 0; i < n; i++) {
        tl_lock *l = due[i].lock;
        int64_t sent = m->clock.mono_ms(m->clock.ud), beat = 0;
        tl_status st;
        const char *why;

        if (sent >= due[i].lose_at) {
            /* Nothing sent now could protect it: the loss watch declares it (or has). */
            st = TL_ETIMEDOUT;
            why = "no time left before its loss deadline";
        } else if (store != NULL) {
            store->errmsg[0] = '\0';
            store->deadline_mono_ms = due[i].lose_at;
            store->beat_sent_mono_ms = 0;
            st = store->ops->renew(store, &l->rec, due[i].seq, &beat);
            store->deadline_mono_ms = 0;
            if (st == TL_OK && store->beat_sent_mono_ms != 0 && store->beat_sent_mono_ms < sent)
                sent = store->beat_sent_mono_ms;
            why = store->errmsg[0] ? store->errmsg : tl_strerror(st);
        } else {
            st = TL_ESTORE;
            why = "the heartbeat could not connect to the store";
        }
        int64_t replied = m->clock.mono_ms(m->clock.ud);
        bool fire = apply_renew(m, l, st, sent, replied, beat, why);
        pthread_mutex_lock(&m->mu);
        l->renewing = false;
        pthread_cond_broadcast(&m->renewed);
        pthread_mutex_unlock(&m->mu);
        if (fire)
            tl__lock_fire_lost(l);
        tl__lock_unref(l);
    }
    tl__free(due);
    return n;
}

size_t tl__loss_sweep(tl_manager *m, int64_t mono_now)
{
    tl_lock *lost[32];
    int64_t late[32];
    bool fire[32];
    size_t total = 0;

    for (;;) {
        size_t n = 0;

        pthread_mutex_lock(&m->mu);
        for (tl_lock *l = m->held; l != NULL && n < 32; l = l->next) {
            if (l->state != TL_HELD || l->lose_at_mono_ms > mono_now)
                continue;
            late[n] = mono_now - l->last_ok_mono_ms;
            l->expired = true;
            fire[n] = tl__lock_mark_lost_locked(l);
            l->refs++;
            lost[n++] = l;
        }
        pthread_mutex_unlock(&m->mu);

        for (size_t i = 0; i < n; i++) {
            tl_lock *l = lost[i];
            uint32_t timeout = l->rec.info.lock_timeout_ms;

            TL_LOG(&m->log, TL_LOG_ERROR,
                   "%s: lock lost (token %llu): no successful renew sent in the last %lld ms; "
                   "another worker may take it in %u ms (lock timeout %u ms)",
                   l->rec.info.key, (unsigned long long)l->rec.info.token, (long long)late[i],
                   tl__loss_margin(timeout), timeout);
            if (fire[i])
                tl__lock_fire_lost(l);
            tl__lock_unref(l);
        }
        total += n;
        if (n < 32)
            return total;
    }
}

/* The earliest due time of a held lock, or INT64_MAX when none is held. Under m->mu. */
static int64_t earliest_due(const tl_manager *m)
{
    int64_t t = INT64_MAX;

    for (const tl_lock *l = m->held; l != NULL; l = l->next) {
        if (l->state == TL_HELD && l->next_due_mono_ms < t)
            t = l->next_due_mono_ms;
    }
    return t;
}

/* How long the thread sleeps when no lock is held: the interval of a lock with the manager's
 * own lock timeout (locks with shorter intervals wake it when acquired). */
static int64_t idle_interval(const tl_manager *m)
{
    if (m->heartbeat_ms != 0)
        return m->heartbeat_ms;

    uint32_t iv = m->lock_timeout_ms / 3;
    return iv > TL_DEFAULT_HEARTBEAT_MS ? TL_DEFAULT_HEARTBEAT_MS : (iv ? iv : 1);
}

/* The earliest loss deadline of a held lock, or INT64_MAX. Under m->mu. */
static int64_t earliest_loss(const tl_manager *m)
{
    int64_t t = INT64_MAX;

    for (const tl_lock *l = m->held; l != NULL; l = l->next) {
        if (l->state == TL_HELD && l->lose_at_mono_ms < t)
            t = l->lose_at_mono_ms;
    }
    return t;
}

static void loss_watch_ensure_locked(tl_manager *m);

static void *heartbeat_main(void *arg)
{
    tl_manager *m = arg;
    char err[TL_ERRMSG_SIZE];

    pthread_mutex_lock(&m->mu);
    while (!m->hb_stop) {
        int64_t due = earliest_due(m);
        int64_t now = m->clock.mono_ms(m->clock.ud);

        if (!m->lw_running) {
            /* Until the loss watch runs (it starts with the first renewal), this thread, which
             * does no I/O before then, keeps the deadlines itself. */
            int64_t loss = earliest_loss(m);
            if (loss <= now) {
                pthread_mutex_unlock(&m->mu);
                (void)tl__loss_sweep(m, now);
                pthread_mutex_lock(&m->mu);
                continue;
            }
            if (loss < due)
                due = loss;
        }
        if (due > now) {
            /* With nothing held, still wake after a default interval rather than never: then a
             * lock acquired meanwhile, due no sooner than that, needs no wake-up call, which
             * keeps acquire/release cycles free of context switches. */
            if (due == INT64_MAX)
                due = now + idle_interval(m);
            m->hb_wait_until = due;
            /* Sleep on the real monotonic clock for the time the manager's clock says is
             * left, so that an injected clock cannot make this loop spin. */
            int64_t until = tl__real_mono_ms() + (due - now);
            struct timespec ts = {.tv_sec = until / 1000,
                                  .tv_nsec = (long)(until % 1000) * 1000000L};
            int rc = pthread_cond_timedwait(&m->wake, &m->mu, &ts);
            m->hb_wait_until = INT64_MIN;
            if (rc != 0 && rc != ETIMEDOUT)
                break;
            continue; /* re-check stop and the due times */
        }
        /* Store I/O can hang from here on: the loss watch keeps the deadlines meanwhile. It
         * starts with the first renewal, so that a short-lived holder (a `tasklock run` of a
         * quick command) never pays for the thread. */
        loss_watch_ensure_locked(m);
        pthread_mutex_unlock(&m->mu);

        if (m->hb_store == NULL) {
            tl_status st =
                tl__store_open(m->store_url, m->store_ops, &m->clock, &m->log, &m->hb_store, err);
            if (st != TL_OK)
                TL_LOG(&m->log, TL_LOG_WARN, "heartbeat: cannot open the store: %s", err);
        }
        (void)tl__heartbeat_round(m, m->hb_store, m->clock.mono_ms(m->clock.ud), false);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* The loss watch: sleeps until the earliest loss deadline, then sweeps. Renewals only move
 * deadlines later, so it needs waking only for a new lock due sooner than it looks again. */
static void *loss_watch_main(void *arg)
{
    tl_manager *m = arg;

    pthread_mutex_lock(&m->mu);
    while (!m->hb_stop) {
        int64_t when = earliest_loss(m);
        int64_t now = m->clock.mono_ms(m->clock.ud);

        if (when <= now) {
            pthread_mutex_unlock(&m->mu);
            (void)tl__loss_sweep(m, now);
            pthread_mutex_lock(&m->mu);
            continue;
        }
        m->lw_wait_until = when;
        int rc;
        if (when == INT64_MAX) {
            rc = pthread_cond_wait(&m->lw_wake, &m->mu);
        } else {
            int64_t until = tl__real_mono_ms() + (when - now);
            struct timespec ts = {.tv_sec = until / 1000,
                                  .tv_nsec = (long)(until % 1000) * 1000000L};
            rc = pthread_cond_timedwait(&m->lw_wake, &m->mu, &ts);
        }
        m->lw_wait_until = INT64_MIN;
        if (rc != 0 && rc != ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/*
 * Starts one of the library's threads with the asynchronous signals blocked: a signal meant for
 * the program (SIGINT, SIGTERM, SIGCHLD...) is then never run by a thread the program does not
 * know of, where its handler would race with the program's own threads. The signals of a fault
 * in the thread itself stay unblocked, so that a crash is still reported as one.
 */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    sigset_t all, old;

    (void)sigfillset(&all);
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
        (void)sigdelset(&all, faults[i]);
    (void)pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

tl_status tl__heartbeat_start(tl_manager *m, int64_t due, int64_t lose_at)
{
    tl_status st = TL_OK;

    pthread_mutex_lock(&m->mu);
    if (m->hb_running) {
        /* Due (or, while the heartbeat thread keeps the deadlines, to be declared lost) before
         * the thread would look again. */
        if (due < m->hb_wait_until || (!m->lw_running && lose_at < m->hb_wait_until))
            (void)pthread_cond_signal(&m->wake);
    } else if (start_thread(&m->hb_thread, heartbeat_main, m) == 0) {
        m->hb_running = true;
        m->hb_wait_until = INT64_MIN;
    } else {
        st = TL_ENOMEM;
    }
    if (m->lw_running && lose_at < m->lw_wait_until)
        (void)pthread_cond_signal(&m->lw_wake);
    pthread_mutex_unlock(&m->mu);
    return st;
}

/* Under m->mu. See tl__loss_watch_ensure(). */
static void loss_watch_ensure_locked(tl_manager *m)
{
    if (m->lw_running || m->hb_stop)
        return;
    if (start_thread(&m->lw_thread, loss_watch_main, m) == 0) {
        m->lw_running = true;
        m->lw_wait_until = INT64_MIN;
    } else if (!m->lw_failed) {
        m->lw_failed = true; /* the rounds and tl_lock_is_lost() still keep the deadlines */
        TL_LOG(&m->log, TL_LOG_WARN, "cannot start the loss watch thread");
    }
}

void tl__loss_watch_ensure(tl_manager *m)
{
    pthread_mutex_lock(&m->mu);
    loss_watch_ensure_locked(m);
    pthread_mutex_unlock(&m->mu);
}

void tl__heartbeat_stop(tl_manager *m)
{
    pthread_mutex_lock(&m->mu);
    bool running = m->hb_running, watching = m->lw_running;
    m->hb_stop = true;
    (void)pthread_cond_signal(&m->wake);
    (void)pthread_cond_signal(&m->lw_wake);
    pthread_mutex_unlock(&m->mu);

    if (running)
        (void)pthread_join(m->hb_thread, NULL);
    if (watching)
        (void)pthread_join(m->lw_thread, NULL);
    tl__store_close(m->hb_store);
    m->hb_store = NULL;
    m->hb_running = false;
    m->lw_running = false;
}
