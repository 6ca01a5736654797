/*
 * claim.c -- claiming the next task, and finishing tasks (DESIGN.md section 8): tl_claim_next,
 * tl_claim_next_label, tl_release_claim_next, tl_reopen, tl_list_done.
 *
 * The store does the choosing, atomically over every candidate (struct tl_store_ops
 * claim_next); the core validates, waits between attempts (woken by the store's wait_any where
 * it has one) and turns a win into a heartbeated lock exactly as an acquire does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "store.h"
#include "tl.h"

/* More candidates than this in one call is a mistake (a store script's arguments, a statement's
 * array): split the work, or use a label. */
#define TL_CANDIDATES_MAX 10000

/*
 * A list longer than TL_NEXT_WINDOW is claimed from in windows: the first TL_NEXT_WINDOW
 * candidates not known to be done, then the next ones if none of those was free. The manager
 * remembers its last list and which of its candidates the store said were done (struct
 * tl_candidates done_seen), so that a queue drained in order costs each call O(window), not a
 * walk over the whole finished head: O(M) per task, O(M^2) in all. What it remembers can only
 * grow stale by a reopen elsewhere; so before saying nothing is free it asks about the whole
 * list, and it does so at least every TL_NEXT_REFRESH_MS anyway, so that a reopened task
 * comes back in its order soon. The first call over a list asks about all of it (one round trip
 * learns what is done already), and an attempt whose first TL_NEXT_WINDOWS windows have nothing to
 * win asks about the whole list rather than walk it window by window (a long held head costs
 * at most that many small calls and one large one, not one call per window).
 */
#define TL_NEXT_WINDOW     32
#define TL_NEXT_WINDOWS    4
#define TL_NEXT_REFRESH_MS 1000

struct tl_next_memo {
    size_t n;
    char *text; /* the keys, each with its NUL, in order */
    size_t text_len;
    uint8_t *done; /* [n]: the store said it was done */
    size_t ndone;
    size_t first;     /* every candidate before it is known done */
    int64_t whole_at; /* when the store was last asked about the whole list (monotonic) */
};

/* One claim-next call: what it claims from and how. */
struct next_call {
    tl_manager *m;
    struct tl_candidates cand;
    struct tl_claim req;
    struct acquire_plan plan;
    const volatile sig_atomic_t *cancel;
    char *task_info;
    uint32_t timeout;
    int64_t start;      /* when the call began (monotonic), for the latency metric */
    int64_t until;      /* when its patience ends (monotonic); INT64_MAX: never */
    int64_t first_sent; /* when a finish that also claimed was sent */

    /* The manager's memo of this list (NULL: the list is short, a label, or the memo could not
     * be kept), and the window the last store call was given. */
    struct tl_next_memo *memo;
    struct tl_candidates win;
    bool win_full;  /* the window is the whole list */
    size_t win_end; /* where the next window starts */
    const char *win_keys[TL_NEXT_WINDOW];
    size_t win_idx[TL_NEXT_WINDOW];
    uint8_t win_seen[TL_NEXT_WINDOW];
};

void tl__next_memo_free(struct tl_next_memo *mm)
{
    if (mm == NULL)
        return;
    tl__free(mm->text);
    tl__free(mm->done);
    tl__free(mm);
}

/* Whether `keys` is the list `mm` remembers (then it was checked before). One pass over the
 * bytes: this runs on every call over a long list. */
static bool memo_matches(const struct tl_next_memo *mm, const char *const *keys, size_t n)
{
    if (mm == NULL || mm->n != n || keys == NULL)
        return false;
    const char *t = mm->text;
    const char *end = mm->text + mm->text_len;
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i];
        if (k == NULL)
            return false;
        while (t < end && *t == *k && *k != '\0') {
            t++;
            k++;
        }
        if (t == end || *t != '\0' || *k != '\0')
            return false;
        t++;
    }
    return t == end;
}

/* Remembers `keys` (checked) in place of the manager's last list; NULL if memory is short (the
 * calls then go over the whole list, as for a short one). */
static struct tl_next_memo *memo_new(const char *const *keys, size_t n)
{
    struct tl_next_memo *mm = tl__calloc(1, sizeof(*mm));
    if (mm == NULL)
        return NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(keys[i]) + 1;
    mm->n = n;
    mm->whole_at = INT64_MIN; /* the first call asks about the whole list */
    mm->text_len = total;
    mm->text = tl__malloc(total);
    mm->done = tl__calloc(n, 1);
    if (mm->text == NULL || mm->done == NULL) {
        tl__next_memo_free(mm);
        return NULL;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(keys[i]) + 1;
        memcpy(mm->text + off, keys[i], len);
        off += len;
    }
    return mm;
}

/* Whether the next attempt asks about the whole list. */
static bool whole_due(const struct next_call *c)
{
    return c->memo->whole_at == INT64_MIN ||
           c->m->clock.mono_ms(c->m->clock.ud) - c->memo->whole_at >= TL_NEXT_REFRESH_MS;
}

/* The window of the next store call, from position `pos` of the list; the whole list when there
 * is no memo or `whole`. A window may be empty: nothing at or after `pos` is left unknown. */
static void window_prepare(struct next_call *c, size_t pos, bool whole)
{
    struct tl_next_memo *mm = c->memo;

    c->win = c->cand;
    c->win_full = true;
    c->win_end = c->cand.nkeys;
    if (mm == NULL)
        return;
    if (whole) {
        memset(mm->done, 0, mm->n);
        mm->ndone = 0;
        mm->first = 0;
        mm->whole_at = c->m->clock.mono_ms(c->m->clock.ud);
        c->win.done_seen = mm->done;
        return;
    }
    size_t k = 0;
    size_t i = pos > mm->first ? pos : mm->first;
    for (; i < mm->n && k < TL_NEXT_WINDOW; i++) {
        if (mm->done[i])
            continue;
        c->win_keys[k] = c->cand.keys[i];
        c->win_idx[k] = i;
        k++;
    }
    memset(c->win_seen, 0, sizeof(c->win_seen));
    c->win = (struct tl_candidates){.keys = c->win_keys, .nkeys = k, .done_seen = c->win_seen};
    c->win_full = false;
    c->win_end = i;
}

/* Takes in what the store said of the window, and maps *won to the whole list. */
static void window_learn(struct next_call *c, size_t *won)
{
    struct tl_next_memo *mm = c->memo;

    if (!c->win_full) {
        for (size_t j = 0; j < c->win.nkeys; j++) {
            if (c->win_seen[j] && !mm->done[c->win_idx[j]]) {
                mm->done[c->win_idx[j]] = 1;
                mm->ndone++;
            }
        }
        if (*won < c->win.nkeys)
            *won = c->win_idx[*won];
    } else if (mm != NULL) {
        mm->ndone = 0;
        for (size_t i = 0; i < mm->n; i++)
            mm->ndone += mm->done[i] != 0;
    }
    if (mm != NULL) {
        while (mm->first < mm->n && mm->done[mm->first])
            mm->first++;
    }
}

/* One store call over the current window. */
static tl_status window_claim(struct next_call *c, struct tl_claim_result *res, size_t *won,
                              struct tl_next_tally *tally)
{
    tl_manager *m = c->m;

    memset(res, 0, sizeof(*res));
    memset(tally, 0, sizeof(*tally));
    *won = SIZE_MAX;
    m->store->errmsg[0] = '\0';
    tl_status st = m->store->ops->claim_next(m->store, &c->req, &c->win, res, won, tally);
    window_learn(c, won);
    return st;
}

/*
 * One attempt of claim-next over the whole list: window after window from position `pos` (the
 * attempt has made `windows` calls already), then, when known-done candidates were left out or
 * the windows ran out before the list did, one call over the whole list, which alone may then
 * say that nothing is free. `sum` holds what earlier windows of this attempt found; the
 * result's tally is the attempt's.
 */
static tl_status claim_attempt(struct next_call *c, size_t pos, unsigned windows,
                               struct tl_next_tally sum, struct tl_claim_result *res, size_t *won,
                               struct tl_next_tally *tally)
{
    struct tl_next_memo *mm = c->memo;
    tl_status st;

    if (mm == NULL || c->cand.keys == NULL) {
        window_prepare(c, 0, true);
        return window_claim(c, res, won, tally);
    }
    if (pos == 0 && whole_due(c)) {
        window_prepare(c, 0, true);
        return window_claim(c, res, won, tally);
    }
    bool rest_unseen = false;
    for (;;) {
        window_prepare(c, pos, false);
        if (c->win.nkeys == 0)
            break;
        if (windows++ == TL_NEXT_WINDOWS) {
            rest_unseen = true;
            break;
        }
        st = window_claim(c, res, won, tally);
        if (st != TL_EBUSY)
            return st;
        tl__record_clear(&res->rec);
        sum.done += tally->done;
        sum.held += tally->held;
        sum.queued += tally->queued;
        if (tally->cut) {
            sum.cut = true;
            break;
        }
        pos = c->win_end;
    }
    if ((mm->ndone > 0 || rest_unseen) && !sum.cut) {
        window_prepare(c, 0, true);
        return window_claim(c, res, won, tally);
    }
    memset(res, 0, sizeof(*res));
    *won = SIZE_MAX;
    *tally = sum;
    return TL_EBUSY;
}

static bool has_claim_next(const tl_manager *m)
{
    return m->store->ops->version >= 4 && m->store->ops->claim_next != NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every key valid for the store, none twice. */
static tl_status check_list(tl_manager *m, const char *const *keys, size_t n)
{
    tl_status st;

    if (n > TL_CANDIDATES_MAX)
        return tl__fail(m, TL_EINVAL, "%zu candidates is over the limit of %d", n,
                        TL_CANDIDATES_MAX);
    if (n > 0 && keys == NULL)
        return tl__fail(m, TL_EINVAL, "no candidate keys (NULL)");
    for (size_t i = 0; i < n; i++) {
        if (keys[i] == NULL)
            return tl__fail(m, TL_EINVAL, "candidate %zu is NULL", i + 1);
        if ((st = tl__check_key(m, keys[i])) != TL_OK)
            return st;
    }
    if (n < 2)
        return TL_OK;

    const char **sorted = tl__malloc(n * sizeof(*sorted));
    if (sorted == NULL)
        return tl__fail(m, TL_ENOMEM, "out of memory");
    memcpy((void *)sorted, (const void *)keys, n * sizeof(*sorted));
    qsort((void *)sorted, n, sizeof(*sorted), cmp_str);
    st = TL_OK;
    for (size_t i = 1; i < n && st == TL_OK; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            st = tl__fail(m, TL_EINVAL, "candidate %s is given twice", sorted[i]);
    }
    tl__free((void *)sorted);
    return st;
}

/* Every key valid for the store, none twice. A list the manager remembers was checked when it
 * was remembered; a new long one is remembered. */
static tl_status check_candidates(tl_manager *m, const char *const *keys, size_t n)
{
    tl_status st;

    if (n > TL_NEXT_WINDOW && memo_matches(m->next_memo, keys, n))
        return TL_OK;
    if ((st = check_list(m, keys, n)) != TL_OK)
        return st;
    if (n > TL_NEXT_WINDOW) {
        tl__next_memo_free(m->next_memo);
        m->next_memo = memo_new(keys, n);
    }
    return TL_OK;
}

/* Checks the call and fills `c`. The caller frees c->task_info. */
static tl_status next_prepare(tl_manager *m, const char *const *keys, size_t nkeys,
                              const char *label, const struct tl_acquire_opts *opts,
                              struct next_call *c)
{
    static const struct tl_acquire_opts defaults;
    tl_status st;

    memset(c, 0, sizeof(*c));
    if (opts == NULL)
        opts = &defaults;
    c->m = m;
    c->cancel = opts->cancel;
    c->timeout = opts->lock_timeout_ms ? opts->lock_timeout_ms : m->lock_timeout_ms;
    if ((st = tl__ensure_connected(m)) != TL_OK)
        return st;
    if (opts->strategy == TL_FORCE_ACQUIRE)
        return tl__fail(m, TL_EINVAL,
                        "claim-next takes a free task; forcing one is tl_acquire()'s job");
    if (opts->priority != 0)
        return tl__fail(m, TL_EINVAL,
                        "claim-next does not wait in a line, so a priority means nothing "
                        "(order the candidates instead)");
    if (opts->mode != TL_EXCLUSIVE || opts->slots != 0)
        return tl__fail(m, TL_EINVAL,
                        "claim-next takes a task for one worker: it is exclusive only (drop "
                        "the shared mode or the slots)");
    if ((st = tl__plan_acquire(m, opts, c->timeout, &c->plan)) != TL_OK)
        return st;
    c->plan.line = false;
    if (label != NULL) {
        if (label[0] == '\0')
            return tl__fail(m, TL_EINVAL, "empty label");
        c->cand.label = label;
    } else {
        if ((st = check_candidates(m, keys, nkeys)) != TL_OK)
            return st;
        c->cand.keys = keys;
        c->cand.nkeys = nkeys;
        c->memo = nkeys > TL_NEXT_WINDOW ? m->next_memo : NULL;
    }
    if (!has_claim_next(m))
        return tl__fail(m, TL_ENOTSUP, "the %s store cannot claim the next task",
                        m->store->ops->scheme);
    if ((st = tl__task_info_normalize(opts->task_info, &c->task_info, m->errmsg)) != TL_OK)
        return st;
    c->req = (struct tl_claim){
        .key = NULL,
        .worker_id = m->worker_id,
        .node_id = m->node_id,
        .task_info = c->task_info,
        .lock_timeout_ms = c->timeout,
        .mode = c->plan.mode,
    };
    c->start = m->clock.mono_ms(m->clock.ud);
    /* Patience is time, not attempts: a wake-up that another worker turned into its claim
     * first must not use up a waiter's retries. The deadline, or what the retries would have
     * slept, whichever ends first. */
    c->until = c->plan.unlimited ? INT64_MAX : c->start + tl__patience_ms(m, c->plan.retries);
    if (c->plan.deadline != 0 && c->plan.deadline < c->until)
        c->until = c->plan.deadline;
    return TL_OK;
}

/* Nothing could be claimed: TL_ENOTASK when nothing is left to wait for, else TL_EBUSY. */
static tl_status fail_next(struct next_call *c, const struct tl_next_tally *t, uint32_t attempts)
{
    tl_manager *m = c->m;

    if (t->held == 0 && t->queued == 0) {
        if (c->cand.label != NULL)
            return tl__fail(m, TL_ENOTASK, "no task with label %s is left to claim%s",
                            c->cand.label, t->done ? " (every one is done)" : "");
        if (c->cand.nkeys == 0)
            return tl__fail(m, TL_ENOTASK, "no candidates were given");
        return tl__fail(m, TL_ENOTASK, "every candidate (%zu) is done", c->cand.nkeys);
    }
    return tl__fail(m, TL_EBUSY,
                    "no candidate is free: %u held, %u with waiters in line, %u done; gave up "
                    "after %u attempt%s",
                    t->held, t->queued, t->done, attempts, attempts == 1 ? "" : "s");
}

/* Sleeps `ms`, or less when the store says a candidate may have come free; looks at the cancel
 * flag every 100 ms. */
static tl_status wait_for_any(struct next_call *c, uint32_t ms)
{
    tl_manager *m = c->m;
    const struct tl_store_ops *ops = m->store->ops;
    bool real = m->clock.sleep_ms == tl__real_clock.sleep_ms;
    int64_t now = m->clock.mono_ms(m->clock.ud);
    int64_t end = now + ms;
    /* Only the candidates not known done: a done one comes free only by a reopen, which the
     * next attempt's call over the whole list sees (the store's wait need not watch them). */
    struct tl_candidates wait_on = c->cand;
    const char **open_keys = NULL;
    if (real && ops->wait_any != NULL && c->memo != NULL && c->memo->ndone > 0 &&
        c->memo->ndone < c->memo->n &&
        (open_keys = tl__malloc((c->memo->n - c->memo->ndone) * sizeof(*open_keys))) != NULL) {
        size_t k = 0;
        for (size_t i = 0; i < c->memo->n; i++)
            if (!c->memo->done[i])
                open_keys[k++] = c->cand.keys[i];
        wait_on = (struct tl_candidates){.keys = open_keys, .nkeys = k};
    }

    while (now < end) {
        if (tl__cancelled(c->cancel)) {
            tl__free((void *)open_keys);
            return TL_ECANCELED;
        }
        int64_t slice = end - now;
        if (c->cancel != NULL && slice > 100)
            slice = 100;
        if (real && ops->wait_any != NULL) {
            m->store->errmsg[0] = '\0';
            if (ops->wait_any(m->store, &wait_on, (uint32_t)slice) == TL_OK) {
                tl__free((void *)open_keys);
                return TL_OK; /* something may have changed: try again */
            }
            TL_LOG(&m->log, TL_LOG_DEBUG, "waiting for a free candidate failed (%s); sleeping",
                   m->store->errmsg);
            int64_t spent = m->clock.mono_ms(m->clock.ud) - now;
            if (spent < slice)
                m->clock.sleep_ms(m->clock.ud, (uint32_t)(slice - spent));
        } else {
            m->clock.sleep_ms(m->clock.ud, (uint32_t)slice);
        }
        now = m->clock.mono_ms(m->clock.ud);
    }
    tl__free((void *)open_keys);
    return tl__cancelled(c->cancel) ? TL_ECANCELED : TL_OK;
}

/*
 * The claim-next loop. With `first` (a store's finish that already tried), its outcome is the
 * first attempt's.
 */
static tl_status next_loop(struct next_call *c, const struct tl_finish_result *first, tl_lock **out)
{
    tl_manager *m = c->m;
    struct tl_claim_result res;
    struct tl_next_tally tally;
    size_t won = SIZE_MAX;
    tl_status st;
    int64_t sent = 0;

    tl_lock *l = tl__calloc(1, sizeof(*l));
    if (l == NULL)
        return tl__fail(m, TL_ENOMEM, "out of memory");
    m->store->deadline_mono_ms = c->plan.deadline;
    for (uint32_t attempt = 0;; attempt++) {
        memset(&tally, 0, sizeof(tally));
        if (attempt == 0 && first != NULL) {
            res = first->next;
            st = first->next_status;
            won = first->won;
            tally = first->tally;
            sent = c->first_sent;
            window_learn(c, &won);
            if (st == TL_EBUSY && !c->win_full && !tally.cut) {
                /* The finish claimed from the first window only: the rest of the attempt. */
                tl__record_clear(&res.rec);
                st = claim_attempt(c, c->win_end, 1, tally, &res, &won, &tally);
            }
        } else {
            sent = m->clock.mono_ms(m->clock.ud);
            st = claim_attempt(c, 0, 0, (struct tl_next_tally){0}, &res, &won, &tally);
        }
        if (st != TL_EBUSY)
            break;
        tl__record_clear(&res.rec);

        pthread_mutex_lock(&m->mu);
        m->metrics.total_conflicts++;
        pthread_mutex_unlock(&m->mu);

        int64_t now = m->clock.mono_ms(m->clock.ud);
        bool nothing_left = tally.held == 0 && tally.queued == 0;
        if (nothing_left || now >= c->until) {
            st = fail_next(c, &tally, attempt + 1);
            goto fail;
        }
        uint32_t delay = tl__backoff_delay(m, attempt);
        /* A stealing claimer waits for a holder to go stale, which no store announces: look
         * again within a quarter of the lock timeout (the pool's, as a rule) at the latest. */
        uint32_t stale_step = c->timeout / 4 > 100 ? c->timeout / 4 : 100;
        if (c->req.mode == TL_CLAIM_STEAL && tally.held > 0 && delay > stale_step)
            delay = stale_step;
        if (now + delay > c->until)
            delay = (uint32_t)(c->until - now);
        TL_LOG(&m->log, TL_LOG_DEBUG,
               "claim-next: none free (%u held, %u queued, %u done); retry %u in %u ms", tally.held,
               tally.queued, tally.done, attempt + 1, delay);
        pthread_mutex_lock(&m->mu);
        m->metrics.total_retries++;
        pthread_mutex_unlock(&m->mu);
        if (wait_for_any(c, delay) == TL_ECANCELED) {
            st = tl__fail(m, TL_ECANCELED, "cancelled while waiting for a free candidate");
            goto fail;
        }
    }
    m->store->deadline_mono_ms = 0;
    if (st != TL_OK) {
        tl__record_clear(&res.rec);
        st = tl__mgr_fail(m, st);
        goto fail;
    }
    (void)won;
    if (res.beat_sent_mono_ms != 0 && res.beat_sent_mono_ms < sent)
        sent = res.beat_sent_mono_ms;
    return tl__lock_adopt(m, l, &res, sent, c->timeout, c->start, out);

fail:
    m->store->deadline_mono_ms = 0;
    tl__free(l);
    return st;
}

static void count_failure(tl_manager *m, tl_status st)
{
    if (st != TL_OK && st != TL_EINVAL && st != TL_ENOTASK) {
        pthread_mutex_lock(&m->mu);
        m->metrics.failed_acquisitions++;
        pthread_mutex_unlock(&m->mu);
    }
}

static tl_status claim_next(tl_manager *m, const char *const *keys, size_t nkeys, const char *label,
                            const struct tl_acquire_opts *opts, tl_lock **out)
{
    struct next_call c;

    if (out != NULL)
        *out = NULL;
    if (m == NULL || out == NULL)
        return TL_EINVAL;
    tl__begin(m);

    tl_status st = next_prepare(m, keys, nkeys, label, opts, &c);
    if (st == TL_OK) {
        if (label == NULL && nkeys == 0)
            st = tl__fail(m, TL_ENOTASK, "no candidates were given");
        else
            st = next_loop(&c, NULL, out);
    }
    tl__free(c.task_info);
    count_failure(m, st);
    return st;
}

tl_status tl_claim_next(tl_manager *m, const char *const *keys, size_t nkeys,
                        const struct tl_acquire_opts *opts, tl_lock **out)
{
    return claim_next(m, keys, nkeys, NULL, opts, out);
}

tl_status tl_claim_next_label(tl_manager *m, const char *label, const struct tl_acquire_opts *opts,
                              tl_lock **out)
{
    if (label == NULL) {
        if (out != NULL)
            *out = NULL;
        if (m != NULL)
            return tl__fail(m, TL_EINVAL, "no label");
        return TL_EINVAL;
    }
    return claim_next(m, NULL, 0, label, opts, out);
}

tl_status tl_release_claim_next(tl_lock *l, const char *summary, bool done, const char *const *keys,
                                size_t nkeys, const struct tl_acquire_opts *opts, tl_lock **next)
{
    struct next_call c;
    enum tl_lock_state before;
    struct tl_finish_result fres;
    bool released = false;

    if (next != NULL)
        *next = NULL;
    if (l == NULL || next == NULL)
        return TL_EINVAL;

    tl_manager *m = l->m;
    tl__begin(m);
    /* The arguments first: a call that cannot claim must not release either. */
    tl_status st = next_prepare(m, keys, nkeys, NULL, opts, &c);
    if (st != TL_OK)
        goto out;
    const struct tl_store_ops *ops = m->store->ops;
    if (done && ops->finish == NULL) {
        st = tl__fail(m, TL_ENOTSUP, "the %s store cannot mark a task done (no done markers)",
                      ops->scheme);
        goto out;
    }

    memset(&fres, 0, sizeof(fres));
    if (tl__lock_begin_release(l, &before)) {
        m->store->errmsg[0] = '\0';
        if (ops->finish != NULL) {
            bool whole = c.memo != NULL && whole_due(&c);
            window_prepare(&c, 0, whole || c.memo == NULL);
            const struct tl_finish f = {
                .held = &l->rec,
                .summary = summary ? summary : "",
                .done = done,
                .next = nkeys > 0 && c.win.nkeys > 0 ? &c.req : NULL,
                .candidates = nkeys > 0 && c.win.nkeys > 0 ? &c.win : NULL,
            };
            c.first_sent = m->clock.mono_ms(m->clock.ud);
            st = ops->finish(m->store, &f, &fres);
        } else {
            st = ops->release(m->store, &l->rec, summary);
        }
        if (st != TL_OK) {
            tl__record_clear(&fres.next.rec);
            memset(&fres, 0, sizeof(fres));
        }
        st = tl__lock_end_release(l, before, st, done);
        released = st == TL_OK;
    } else {
        released = true; /* released before: only the claim is left to do */
    }
    if (!released)
        goto out;

    if (nkeys == 0) {
        st = tl__fail(m, TL_ENOTASK, "no candidates were given");
    } else {
        st = next_loop(&c, fres.next_tried ? &fres : NULL, next);
    }
    count_failure(m, st);
out:
    tl__free(c.task_info);
    return st;
}

tl_status tl_reopen(tl_manager *m, const char *key, bool *was_done)
{
    bool was = false;
    tl_status st;

    if (was_done != NULL)
        *was_done = false;
    if (m == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK || (st = tl__check_key(m, key)) != TL_OK)
        return st;
    if (m->store->ops->version < 4 || m->store->ops->reopen == NULL)
        return tl__fail(m, TL_ENOTSUP, "the %s store keeps no done markers", m->store->ops->scheme);
    m->store->errmsg[0] = '\0';
    /* What this manager remembers as done may include the key. */
    tl__next_memo_free(m->next_memo);
    m->next_memo = NULL;
    st = m->store->ops->reopen(m->store, key, m->worker_id, m->node_id, &was);
    if (st != TL_OK)
        return tl__mgr_fail(m, st);
    if (was_done != NULL)
        *was_done = was;
    return TL_OK;
}

tl_status tl_list_done(tl_manager *m, const char *key, struct tl_done ***out, size_t *count)
{
    tl_status st;

    if (out != NULL)
        *out = NULL;
    if (count != NULL)
        *count = 0;
    if (m == NULL || out == NULL || count == NULL)
        return TL_EINVAL;
    tl__begin(m);
    if ((st = tl__ensure_connected(m)) != TL_OK)
        return st;
    if (key != NULL && (st = tl__check_key(m, key)) != TL_OK)
        return st;
    if (m->store->ops->version < 4 || m->store->ops->done_list == NULL)
        return tl__fail(m, TL_ENOTSUP, "the %s store keeps no done markers", m->store->ops->scheme);
    m->store->errmsg[0] = '\0';
    st = m->store->ops->done_list(m->store, key, out, count);
    if (st != TL_OK) {
        *out = NULL;
        *count = 0;
        return tl__mgr_fail(m, st);
    }
    return TL_OK;
}
