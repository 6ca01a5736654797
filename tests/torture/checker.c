/*
 * checker.c -- proves mutual exclusion, token order and lock hand-over from the records of a
 * torture run (struct tt_log). Every verdict depends on the order of recorded events only, never
 * on how long anything took, so a slow or loaded machine cannot fail a correct run:
 *
 * - A section's recorded interval [enter, exit] lies inside the time its holder really held the
 *   lock (enter is taken after tl_acquire() returned, exit before tl_release() was called), so a
 *   recorded overlap is a real one.
 * - If one acquire returned before another began, the second one's token must be larger.
 * - A killed section is taken to last until its last write to the fenced resource.
 *
 * The one rule that uses a duration, "a steal comes at least a lock timeout after the claim it
 * replaced", compares two instants that bracket the store's own two clock readings, so it too
 * holds on any machine (with a slack for the store clock's granularity).
 *
 * Partition runs add one rule, again an order: a holder cut off from the store that lost its
 * lock left its section before the next holder entered (the library declares the loss a margin
 * before anyone can take the lock, and a careful worker stops at once).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "torture.h"

static void violated(struct tt_verdict *v, const char *fmt, ...)
{
    if (v->nviolated < TT_MAX_VIOLATED) {
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(v->violated[v->nviolated], TT_MSG_SIZE, fmt, ap);
        va_end(ap);
    }
    v->nviolated++;
}

/* A sort entry: sections (or writes) of one key ordered by one field. */
struct ref {
    uint32_t key;
    int64_t by;
    uint64_t tie;
    uint32_t idx;
};

static int cmp_ref(const void *a, const void *b)
{
    const struct ref *x = a, *y = b;

    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->by != y->by)
        return x->by < y->by ? -1 : 1;
    if (x->tie != y->tie)
        return x->tie < y->tie ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Sections sorted by key, then by the field `which` picks. */
enum order { BY_ENTER, BY_ACQ, BY_TOKEN };

static struct ref *sorted_sections(const struct tt_log *log, enum order which)
{
    struct ref *r = calloc(log->nsec ? log->nsec : 1, sizeof(*r));

    if (r == NULL)
        return NULL;
    for (size_t i = 0; i < log->nsec; i++) {
        const struct tt_section *s = &log->sec[i];

        r[i].key = s->key;
        r[i].idx = (uint32_t)i;
        r[i].tie = s->token;
        r[i].by = which == BY_ENTER ? s->enter_ns
                  : which == BY_ACQ ? s->acq_ns
                                    : (int64_t)(s->token >> 1); /* keeps the order, fits */
    }
    qsort(r, log->nsec, sizeof(*r), cmp_ref);
    return r;
}

static const char *end_name(uint8_t end)
{
    static const char *const names[] = {"never ended", "released", "lost",      "unsure",
                                        "killed",      "upgraded", "downgraded"};

    return end < sizeof(names) / sizeof(names[0]) ? names[end] : "?";
}

/* Per-section facts derived from the writes and the audit trail. */
struct facts {
    int64_t last_write_ns;
    uint64_t first_seq; /* UINT64_MAX: no write */
    uint64_t rejected;
    bool trail_released; /* the audit trail has this token's release */
};

/* A holder that kept its lock to the end: it released it, or the store said "not owner" while
 * its own audit trail shows that this very token released it (a retried release; see
 * misreported_lost). */
static bool is_valid(const struct tt_section *s, const struct facts *f)
{
    return s->end == TT_END_RELEASED || s->end == TT_END_UPGRADED || s->end == TT_END_DOWNGRADED ||
           (s->end == TT_END_LOST && f->trail_released);
}

static bool is_shared(const struct tt_section *s)
{
    return s->mode == TL_SHARED;
}

static int64_t exit_of(const struct tt_section *s, const struct facts *f)
{
    if (s->end == TT_END_KILLED || s->exit_ns == 0)
        return f->last_write_ns > s->enter_ns ? f->last_write_ns : s->enter_ns;
    return s->exit_ns;
}

static void check_overlaps(const struct tt_log *log, const struct facts *facts,
                           const struct ref *by_enter, struct tt_verdict *v)
{
    uint32_t *active = calloc(log->nsec ? log->nsec : 1, sizeof(*active));
    size_t nactive = 0;

    if (active == NULL) {
        violated(v, "checker: out of memory");
        return;
    }
    for (size_t i = 0; i < log->nsec; i++) {
        const struct tt_section *b = &log->sec[by_enter[i].idx];

        if (i > 0 && by_enter[i - 1].key != by_enter[i].key)
            nactive = 0;
        /* Drop the sections that ended before b entered. */
        size_t keep = 0;
        for (size_t j = 0; j < nactive; j++) {
            const struct tt_section *a = &log->sec[active[j]];

            if (exit_of(a, &facts[active[j]]) > b->enter_ns)
                active[keep++] = active[j];
        }
        nactive = keep;
        /* A semaphore: b and the holders inside that kept their slot (a lost or killed one may
         * have been displaced already) must fit in its slots. */
        uint32_t inside = 1;
        for (size_t j = 0; j < nactive; j++) {
            const struct tt_section *a = &log->sec[active[j]];

            if (is_shared(a) && is_shared(b)) {
                /* Readers beside readers: allowed, in any token order. */
                v->shared_overlaps++;
                inside += a->slots > 0 && is_valid(a, &facts[active[j]]);
                continue;
            }
            if (a->token >= b->token) {
                v->overlaps++;
                violated(v,
                         "key %u: w%u (token %llu, %s) was still inside when w%u entered with "
                         "token %llu, not a larger one",
                         a->key, a->worker, (unsigned long long)a->token, end_name(a->end),
                         b->worker, (unsigned long long)b->token);
            } else if (is_valid(a, &facts[active[j]])) {
                v->overlaps++;
                violated(v,
                         "key %u: w%u (token %llu) still held its lock (it released it) when "
                         "w%u entered with token %llu: overlap of %.3f ms",
                         a->key, a->worker, (unsigned long long)a->token, b->worker,
                         (unsigned long long)b->token,
                         (double)(exit_of(a, &facts[active[j]]) - b->enter_ns) / 1e6);
            } else {
                v->allowed_overlaps++;
            }
        }
        if (b->slots > 0 && inside > v->max_slots_inside)
            v->max_slots_inside = inside;
        if (b->slots > 0 && inside > b->slots) {
            v->semaphore_overflows++;
            violated(v,
                     "key %u: w%u (token %llu) entered a semaphore of %u slots with %u holders "
                     "that kept their slots inside",
                     b->key, b->worker, (unsigned long long)b->token, b->slots, inside - 1);
        }
        active[nactive++] = by_enter[i].idx;
    }
    free(active);
}

static void check_token_order(const struct tt_log *log, const struct ref *by_enter,
                              const struct ref *by_acq, struct tt_verdict *v)
{
    size_t e = 0;

    for (size_t q = 0; q < log->nsec;) {
        uint32_t key = by_acq[q].key;
        uint64_t max = 0;
        uint32_t max_idx = 0;
        bool any = false;

        while (e < log->nsec && by_enter[e].key < key)
            e++;
        for (; q < log->nsec && by_acq[q].key == key; q++) {
            const struct tt_section *b = &log->sec[by_acq[q].idx];

            /* Every section whose acquire returned before b's began. */
            for (; e < log->nsec && by_enter[e].key == key &&
                   log->sec[by_enter[e].idx].enter_ns < b->acq_ns;
                 e++) {
                const struct tt_section *a = &log->sec[by_enter[e].idx];

                if (!any || a->token > max) {
                    max = a->token;
                    max_idx = by_enter[e].idx;
                    any = true;
                }
            }
            if (any && b->token <= max) {
                v->token_regressions++;
                violated(v,
                         "key %u: w%u got token %llu after w%u had already got token %llu "
                         "(tokens must grow)",
                         key, b->worker, (unsigned long long)b->token, log->sec[max_idx].worker,
                         (unsigned long long)max);
            }
        }
    }
}

/* Walks the writes in their global order: the fenced resource's own rule, and per-section
 * facts. */
static void scan_writes(const struct tt_log *log, struct facts *facts, struct tt_verdict *v)
{
    uint64_t max[TT_MAX_KEYS] = {0}, max_excl[TT_MAX_KEYS] = {0};
    uint64_t last_seq = 0;

    for (size_t i = 0; i < log->nsec; i++) {
        facts[i].first_seq = UINT64_MAX;
        facts[i].last_write_ns = 0;
        facts[i].rejected = 0;
    }
    for (size_t i = 0; i < log->nwr; i++) {
        const struct tt_write *w = &log->wr[i];

        if (w->key >= log->nkeys || w->key >= TT_MAX_KEYS || w->section >= log->nsec ||
            w->seq <= last_seq) {
            v->resource_errors++;
            violated(v, "write %zu: bad record (key %u, section %u, seq %llu)", i, w->key,
                     w->section, (unsigned long long)w->seq);
            continue;
        }
        last_seq = w->seq;
        /* A reader (modes) is judged against the writers only (struct tt_resource). */
        bool reader = is_shared(&log->sec[w->section]);
        uint64_t bar = reader ? max_excl[w->key] : max[w->key];
        bool expect = w->token >= bar;
        if (w->accepted != expect) {
            v->resource_errors++;
            violated(v, "key %u: the fenced resource %s token %llu with %llu seen", w->key,
                     w->accepted ? "accepted" : "rejected", (unsigned long long)w->token,
                     (unsigned long long)bar);
        }
        if (w->accepted && w->token > max[w->key])
            max[w->key] = w->token;
        if (w->accepted && !reader && w->token > max_excl[w->key])
            max_excl[w->key] = w->token;

        struct facts *f = &facts[w->section];
        if (f->first_seq == UINT64_MAX)
            f->first_seq = w->seq;
        if (w->at_ns > f->last_write_ns)
            f->last_write_ns = w->at_ns;
        v->writes++;
        if (!w->accepted) {
            f->rejected++;
            v->writes_rejected++;
        }
    }
}

/* Fencing: a holder that kept its lock is never fenced off; a holder that lost it has every
 * write after its successor's first write rejected. */
static void check_fencing(const struct tt_log *log, const struct facts *facts,
                          const struct ref *by_token, struct tt_verdict *v)
{
    /* fence[i]: the first seq of any write with a larger token on the same key; for a reader
     * (modes), of any exclusive holder's write with a larger token (readers beside it may read
     * with larger tokens, and its reads stay good until a writer has written). */
    uint64_t *fence = malloc((log->nsec ? log->nsec : 1) * sizeof(*fence));

    if (fence == NULL) {
        violated(v, "checker: out of memory");
        return;
    }
    uint64_t run = UINT64_MAX, run_excl = UINT64_MAX;
    for (size_t i = log->nsec; i-- > 0;) {
        const struct tt_section *s = &log->sec[by_token[i].idx];
        uint64_t first = facts[by_token[i].idx].first_seq;

        if (i + 1 < log->nsec && by_token[i + 1].key != by_token[i].key)
            run = run_excl = UINT64_MAX;
        fence[by_token[i].idx] = is_shared(s) ? run_excl : run;
        if (first < run)
            run = first;
        if (!is_shared(s) && first < run_excl)
            run_excl = first;
    }
    for (size_t i = 0; i < log->nwr; i++) {
        const struct tt_write *w = &log->wr[i];

        if (w->section >= log->nsec)
            continue;
        const struct tt_section *s = &log->sec[w->section];
        if (is_valid(s, &facts[w->section])) {
            if (!w->accepted) {
                v->valid_writes_rejected++;
                violated(v,
                         "key %u: w%u (token %llu) never lost its lock, yet the fenced "
                         "resource rejected its write: a larger token wrote meanwhile",
                         s->key, s->worker, (unsigned long long)s->token);
            }
            continue;
        }
        if (!w->accepted)
            v->stale_writes_rejected++;
        else if (w->seq > fence[w->section]) {
            v->stale_writes_accepted++;
            violated(v, "key %u: w%u (token %llu, %s) wrote after a larger token had written",
                     s->key, s->worker, (unsigned long long)s->token, end_name(s->end));
        }
    }
    free(fence);
}

/* Hand-over: how each lock ended and how the next holder got it. */
static void check_handover(const struct tt_log *log, const struct facts *facts,
                           const struct ref *by_token, struct tt_verdict *v)
{
    for (size_t i = 0; i < log->nsec; i++) {
        const struct tt_section *b = &log->sec[by_token[i].idx];
        const struct tt_section *a =
            i > 0 && by_token[i - 1].key == by_token[i].key ? &log->sec[by_token[i - 1].idx] : NULL;

        switch (b->end) {
        case TT_END_RELEASED: v->released++; break;
        case TT_END_LOST: v->lost++; break;
        case TT_END_UNSURE: v->unsure++; break;
        case TT_END_KILLED: v->killed++; break;
        case TT_END_UPGRADED: v->upgraded++; break;
        case TT_END_DOWNGRADED: v->downgraded++; break;
        default:
            v->unended++;
            violated(v, "key %u: w%u (token %llu) never ended its section and was not killed",
                     b->key, b->worker, (unsigned long long)b->token);
        }
        if (a != NULL && a->token == b->token) {
            v->duplicate_tokens++;
            violated(v, "key %u: w%u and w%u both got token %llu", b->key, a->worker, b->worker,
                     (unsigned long long)b->token);
        }
        if (b->took_stale)
            v->steals++;
        if (b->took_forced)
            v->forced++;
        if (is_shared(b)) {
            v->shared++;
            v->slot_holds += b->slots > 0;
        }
        if ((b->took_stale && b->strategy != TL_STEAL_STALE && b->strategy != TL_FORCE_ACQUIRE) ||
            (b->took_forced && b->strategy != TL_FORCE_ACQUIRE)) {
            v->forbidden_steals++;
            violated(v, "key %u: w%u took a %s lock with strategy %u", b->key, b->worker,
                     b->took_forced ? "live" : "stale", b->strategy);
        }
        if (a == NULL)
            continue;
        bool taken = (a->end == TT_END_LOST && !facts[by_token[i - 1].idx].trail_released) ||
                     a->end == TT_END_KILLED;
        /* A reader enters beside readers, stale or not, without taking anything. */
        if (taken && !(is_shared(a) && is_shared(b)) && !b->took_stale && !b->took_forced) {
            v->unexplained_takeovers++;
            violated(v,
                     "key %u: w%u's lock (token %llu, %s) passed to w%u (token %llu) without a "
                     "steal or force",
                     b->key, a->worker, (unsigned long long)a->token, end_name(a->end), b->worker,
                     (unsigned long long)b->token);
        }
        if (!b->took_stale)
            continue;
        /* The holder b displaced: the one before it by token, or with readers (modes) the
         * newest one before it that did not keep its lock (an earlier reader may have been
         * displaced while newer ones released theirs). A reader that steals enters beside the
         * live readers, one of which may be the newest: its gap is not judged. */
        size_t ai = by_token[i - 1].idx;
        if (is_shared(a) && is_shared(b)) {
            ai = SIZE_MAX - 1;
        } else if (is_shared(a) && is_valid(a, &facts[ai])) {
            ai = SIZE_MAX;
            for (size_t j = i - 1; j-- > 0 && by_token[j].key == b->key;) {
                if (!is_valid(&log->sec[by_token[j].idx], &facts[by_token[j].idx])) {
                    ai = by_token[j].idx;
                    break;
                }
            }
        }
        if (ai == SIZE_MAX) {
            v->orphan_steals++;
            continue;
        }
        if (a->end == TT_END_RELEASED && !is_shared(a))
            v->orphan_steals++;
        if (ai == SIZE_MAX - 1)
            continue;
        a = &log->sec[ai];
        /* The stolen claim was made after a's acquire began, and was stale by then. */
        int64_t gap_ms = (b->enter_ns - a->acq_ns) / 1000000;
        if (gap_ms + (int64_t)log->steal_slack_ms < (int64_t)log->lock_timeout_ms) {
            v->premature_steals++;
            violated(v,
                     "key %u: w%u stole token %llu's lock %lld ms after w%u began to "
                     "acquire it, under the lock timeout of %u ms",
                     b->key, b->worker, (unsigned long long)a->token, (long long)gap_ms, a->worker,
                     log->lock_timeout_ms);
        }
        if (a->end == TT_END_KILLED) {
            int64_t rec = (b->enter_ns - exit_of(a, &facts[ai])) / 1000000;
            if (rec > v->max_recovery_ms)
                v->max_recovery_ms = rec;
        }
    }
}

/* Whether section `s` overlapped a freeze of the proxy. */
static bool overlaps_freeze(const struct tt_log *log, const struct tt_section *s, int64_t exit)
{
    for (size_t i = 0; i < log->nfreezes; i++) {
        if (log->freezes[i].start_ns < exit && s->enter_ns < log->freezes[i].end_ns)
            return true;
    }
    return false;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/*
 * Partition: every section of a worker behind the proxy that overlapped a freeze is cut off.
 * If its lock was taken (it did not end released), the next holder of the key (the next
 * section by token) must have entered after it left. The margins between the two are the
 * figures of the run.
 */
static void check_partitions(const struct tt_log *log, const struct facts *facts,
                             const struct ref *by_token, struct tt_verdict *v)
{
    int64_t *margin = malloc((log->nsec ? log->nsec : 1) * sizeof(*margin));
    size_t n = 0;

    if (margin == NULL) {
        violated(v, "checker: out of memory");
        v->partition_violations++;
        return;
    }
    for (size_t i = 0; i < log->nsec; i++) {
        const struct tt_section *a = &log->sec[by_token[i].idx];
        const struct facts *fa = &facts[by_token[i].idx];
        int64_t exit = exit_of(a, fa);

        if (!a->proxied || !overlaps_freeze(log, a, exit))
            continue;
        v->cut_off++;
        if (is_valid(a, fa)) {
            if (a->learned_ns != 0 || a->lost_ns != 0)
                v->partition_released++;
            continue;
        }
        v->partitioned_holders++;
        if (i + 1 >= log->nsec || by_token[i + 1].key != by_token[i].key)
            continue;

        const struct tt_section *b = &log->sec[by_token[i + 1].idx];
        margin[n++] = b->enter_ns - exit;
        if (b->enter_ns <= exit) {
            v->partition_violations++;
            violated(v,
                     "key %u: w%u (token %llu, %s), cut off by a partition, was still inside "
                     "%.3f ms after w%u entered with token %llu",
                     a->key, a->worker, (unsigned long long)a->token, end_name(a->end),
                     (double)(exit - b->enter_ns) / 1e6, b->worker, (unsigned long long)b->token);
        }
    }
    v->partition_measured = n;
    if (n > 0) {
        qsort(margin, n, sizeof(*margin), cmp_i64);
        v->partition_margin_min_ns = margin[0];
        v->partition_margin_median_ns =
            n % 2 ? margin[n / 2] : margin[n / 2 - 1] + (margin[n / 2] - margin[n / 2 - 1]) / 2;
    }
    free(margin);
}

static bool is_acquisition(const struct tl_event *e)
{
    return e->kind == TL_EVENT_ACQUIRED || e->kind == TL_EVENT_STOLEN ||
           e->kind == TL_EVENT_FORCED || e->kind == TL_EVENT_UPGRADED ||
           e->kind == TL_EVENT_DOWNGRADED;
}

static int cmp_event(const void *a, const void *b)
{
    const struct tl_event *x = *(const struct tl_event *const *)a;
    const struct tl_event *y = *(const struct tl_event *const *)b;

    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    return (x->kind > y->kind) - (x->kind < y->kind);
}

/* The first event of `token` in `ev` (sorted by token) that is an acquisition (or a release). */
static const struct tl_event *find_event(struct tl_event *const *ev, size_t n, uint64_t token,
                                         bool acquisition)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ev[mid]->token < token)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < n && ev[lo]->token == token; lo++) {
        if (acquisition ? is_acquisition(ev[lo]) : ev[lo]->kind == TL_EVENT_RELEASED)
            return ev[lo];
    }
    return NULL;
}

/* Whether a section of `key` has `token` (by_token is sorted by key, then token). */
static bool has_section(const struct tt_log *log, const struct ref *by_token, uint32_t key,
                        uint64_t token)
{
    size_t lo = 0, hi = log->nsec;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct tt_section *s = &log->sec[by_token[mid].idx];
        if (s->key < key || (s->key == key && s->token < token))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < log->nsec && log->sec[by_token[lo].idx].key == key &&
           log->sec[by_token[lo].idx].token == token;
}

static void check_section_history(const struct tt_log *log, const struct tt_section *s,
                                  struct facts *f, struct tl_event *const *ev, size_t n,
                                  struct tt_verdict *v)
{
    char name[64];
    tl_event_kind want = s->upgraded      ? TL_EVENT_UPGRADED
                         : s->downgraded  ? TL_EVENT_DOWNGRADED
                         : s->took_forced ? TL_EVENT_FORCED
                         : s->took_stale  ? TL_EVENT_STOLEN
                                          : TL_EVENT_ACQUIRED;
    const struct tl_event *e = find_event(ev, n, s->token, true);

    log->worker_name(s->worker, name, sizeof(name));
    v->history_events++;
    if (e == NULL || e->kind != want || (e->worker_id != NULL && strcmp(e->worker_id, name) != 0)) {
        v->history_mismatches++;
        violated(v, "key %u: token %llu by %s: the audit trail has %s%s%s, not %s", s->key,
                 (unsigned long long)s->token, name,
                 e ? tl_event_kind_name(e->kind) : "no acquisition", e ? " by " : "",
                 e && e->worker_id ? e->worker_id : "", tl_event_kind_name(want));
        return;
    }
    bool released = find_event(ev, n, s->token, false) != NULL;
    f->trail_released = released;
    if (s->end == TT_END_LOST && released) {
        /* Told "not owner" although its release went through: a release retried after its
         * answer was lost (the first attempt freed the key, someone claimed it, the retry was
         * refused). No safety issue, but the holder was wrongly told that its lock was lost. */
        v->misreported_lost++;
        return;
    }
    if (s->end == TT_END_RELEASED && !released) {
        v->history_mismatches++;
        violated(v, "key %u: token %llu by %s ended %s, but the audit trail %s a release", s->key,
                 (unsigned long long)s->token, name, end_name(s->end), released ? "has" : "lacks");
    }
}

/* The store's audit trail, where it keeps one, must tell the same story as the sections. */
static void check_history(const struct tt_log *log, const struct ref *by_token, struct facts *facts,
                          struct tt_verdict *v)
{
    for (uint32_t k = 0; k < log->nkeys; k++) {
        const struct tt_history *h = &log->history[k];
        uint64_t oldest = UINT64_MAX;

        if (h->ev == NULL)
            continue;
        struct tl_event **ev = malloc((h->n ? h->n : 1) * sizeof(*ev));
        if (ev == NULL) {
            violated(v, "checker: out of memory");
            v->history_mismatches++;
            return;
        }
        memcpy(ev, h->ev, h->n * sizeof(*ev));
        qsort(ev, h->n, sizeof(*ev), cmp_event);
        for (size_t i = 0; i < h->n; i++) {
            if (is_acquisition(ev[i]) && ev[i]->token < oldest)
                oldest = ev[i]->token;
        }
        for (size_t i = 0; i < log->nsec; i++) {
            const struct tt_section *s = &log->sec[by_token[i].idx];

            /* Sections older than the trail goes back are not in it. */
            if (s->key == k && s->token >= oldest)
                check_section_history(log, s, &facts[by_token[i].idx], ev, h->n, v);
        }
        /* Acquisitions no section recorded: claims whose acquire reported an error. */
        for (size_t i = 0; i < h->n; i++) {
            if (is_acquisition(ev[i]) && !has_section(log, by_token, k, ev[i]->token))
                v->history_unrecorded++;
        }
        free(ev);
    }
}

uint64_t tt_check(const struct tt_log *log, struct tt_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->sections = log->nsec;

    struct facts *facts = calloc(log->nsec ? log->nsec : 1, sizeof(*facts));
    struct ref *by_enter = sorted_sections(log, BY_ENTER);
    struct ref *by_acq = sorted_sections(log, BY_ACQ);
    struct ref *by_token = sorted_sections(log, BY_TOKEN);

    if (facts == NULL || by_enter == NULL || by_acq == NULL || by_token == NULL) {
        violated(v, "checker: out of memory");
        v->resource_errors++;
        goto out;
    }
    for (size_t i = 0; i < log->nsec; i++) {
        if (log->sec[i].key >= log->nkeys) {
            v->resource_errors++;
            violated(v, "section %zu: key %u out of range", i, log->sec[i].key);
            goto out;
        }
    }
    scan_writes(log, facts, v);
    if (log->history != NULL && log->worker_name != NULL)
        check_history(log, by_token, facts, v);
    check_overlaps(log, facts, by_enter, v);
    check_token_order(log, by_enter, by_acq, v);
    check_fencing(log, facts, by_token, v);
    check_handover(log, facts, by_token, v);
    if (log->nfreezes > 0)
        check_partitions(log, facts, by_token, v);

out:
    free(facts);
    free(by_enter);
    free(by_acq);
    free(by_token);
    return v->overlaps + v->token_regressions + v->duplicate_tokens + v->stale_writes_accepted +
           v->valid_writes_rejected + v->resource_errors + v->unexplained_takeovers +
           v->premature_steals + v->forbidden_steals + v->unended + v->history_mismatches +
           v->partition_violations + v->semaphore_overflows;
}

/* ---- the line ---- */

/*
 * The line's proofs, over the acquire calls of a line run (struct tt_attempt). What the records
 * bracket: every claim, leave and wait_turn call of an acquire, by clock readings taken just
 * before it was sent and just after it returned, so whatever the store did in it happened in
 * between. Two facts of the store contract (src/store.h, "The line") are used:
 *
 * - A claim with a waiter id that does not win puts its waiter in line, with a sequence number
 *   larger than any given before (by the same key's counter); every claim refreshes its
 *   waiter's heartbeat, and a waiter is dead (skipped) only once its store has not heard from
 *   it for the waiter timeout.
 * - A claim wins only if no live waiter is ahead of it: before it in the order priority (higher
 *   first), then sequence; for a claim whose waiter is not in line yet, any live waiter of its
 *   priority or higher. Tokens come from the key's counter at the grant, so they order grants.
 *
 * Patience (no lost wake-up, no waiter left behind): an acquire call that returned TL_EBUSY
 * did so at its deadline or after (the core gives up only when its patience has run out, by its
 * millisecond clock: 1 ms of slack), and
 * no call returned more than `overrun_ms` after its deadline. Calls whose worker the scenario
 * stopped or killed are left out.
 *
 * Order: call A is an *earlier waiter* if its first claim was busy (it joined the line then),
 * its worker was neither stopped nor killed during it, every claim and leave it made answered
 * (no store error that leaves its place unknown), and it can never have been dead: from each
 * claim's send to the return of the next claim (or leave, or of the acquire) less than the
 * waiter timeout passed, less a slack for the store clock. A call B of the same key is a *later
 * arrival* if its first claim was sent after A's first claim returned, so its place (if any)
 * has a larger sequence than A's, and its priority is not higher than A's: then A was ahead of
 * B for as long as A waited. So B must not be granted the lock while A waited:
 *
 * - both granted: B's token is larger than A's;
 * - A gave up: B's granting claim returned after A's leave was sent.
 *
 * Nothing here depends on how long anything took, except the liveness gaps, which only take
 * calls out of the proof (counted as `lapsed`): a loaded machine makes the proof smaller,
 * never wrong. Stopped or killed waiters may be passed (their place goes dead): they are never
 * an earlier waiter. A later arrival would need no such care (a place lost and taken again only
 * comes later still), but calls of stopped or killed workers are left out as later arrivals
 * too, to keep the proof simple.
 */

static void line_violated(struct tt_line_verdict *v, const char *fmt, ...)
{
    if (v->nviolated < TT_MAX_VIOLATED) {
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(v->violated[v->nviolated], TT_MSG_SIZE, fmt, ap);
        va_end(ap);
    }
    v->nviolated++;
}

static bool line_ended(const struct tt_attempt *a)
{
    return a->end_ns != 0 && !a->disturbed && a->lined;
}

static int64_t live_limit_ns(const struct tt_line_log *log)
{
    return ((int64_t)log->waiter_timeout_ms - (int64_t)log->liveness_slack_ms) * 1000000;
}

static bool earlier_waiter(const struct tt_line_log *log, const struct tt_attempt *a)
{
    return line_ended(a) && a->queued && !a->store_failed &&
           (a->outcome == TT_OUT_GRANTED || a->outcome == TT_OUT_GAVE_UP) &&
           a->max_gap_ns < live_limit_ns(log);
}

static void check_patience(const struct tt_line_log *log, const struct tt_attempt *a,
                           struct tt_line_verdict *v)
{
    int64_t due = a->start_ns + a->patience_ns;
    int64_t over = a->end_ns - due;

    /* The core reckons the deadline on its millisecond clock, truncated: up to 1 ms early by
     * ours. */
    if (a->outcome == TT_OUT_GAVE_UP && a->end_ns < due - 1000000) {
        v->early_give_ups++;
        line_violated(v,
                      "key %u: w%u gave up (busy) %.1f ms into its acquire, before its patience of "
                      "%.1f ms ran out (%u claims, %u wake-ups)",
                      a->key, a->worker, (double)(a->end_ns - a->start_ns) / 1e6,
                      (double)a->patience_ns / 1e6, a->claims, a->wakeups);
    }
    if (over > v->max_overrun_ns)
        v->max_overrun_ns = over;
    if (over > (int64_t)log->overrun_ms * 1000000) {
        v->overruns++;
        line_violated(v,
                      "key %u: w%u's acquire (status %u) returned %.1f ms past its patience of "
                      "%.1f ms, more than the bound of %u ms (%u claims, the last sent at "
                      "%.1f ms and answered at %.1f ms; leave sent at %.1f ms, answered at "
                      "%.1f ms; longest gap %.1f ms)",
                      a->key, a->worker, (unsigned)a->status, (double)over / 1e6,
                      (double)a->patience_ns / 1e6, log->overrun_ms, a->claims,
                      (double)(a->last_send_ns - a->start_ns) / 1e6,
                      (double)(a->last_ret_ns - a->start_ns) / 1e6,
                      a->left ? (double)(a->leave_send_ns - a->start_ns) / 1e6 : 0.0,
                      a->left ? (double)(a->leave_ret_ns - a->start_ns) / 1e6 : 0.0,
                      (double)a->max_gap_ns / 1e6);
    }
}

static void judge_pair(const struct tt_attempt *a, const struct tt_attempt *b,
                       struct tt_line_verdict *v)
{
    if (b->priority > a->priority) {
        /* May pass: a figure that shows priorities at work. */
        if (a->outcome == TT_OUT_GRANTED && b->token < a->token)
            v->overtakes++;
        return;
    }
    v->pairs++;
    v->fifo_pairs += b->priority == a->priority;
    if (a->outcome == TT_OUT_GRANTED && b->token < a->token) {
        v->order_violations++;
        line_violated(v,
                      "key %u: w%u (priority %d) joined the line behind w%u (priority %d) and was "
                      "granted first (token %llu < %llu) while w%u was live and waiting",
                      a->key, b->worker, (int)b->priority, a->worker, (int)a->priority,
                      (unsigned long long)b->token, (unsigned long long)a->token, a->worker);
    } else if (a->outcome == TT_OUT_GAVE_UP) {
        int64_t left = a->left ? a->leave_send_ns : a->end_ns;

        if (b->last_ret_ns < left) {
            v->order_violations++;
            line_violated(
                v,
                "key %u: w%u (priority %d) joined the line behind w%u (priority %d) and was "
                "granted (token %llu) %.1f ms before w%u, live and waiting, gave up",
                a->key, b->worker, (int)b->priority, a->worker, (int)a->priority,
                (unsigned long long)b->token, (double)(left - b->last_ret_ns) / 1e6, a->worker);
        }
    }
}

/* Whether a waiter's place could have held the line up while dead (it was stopped, killed,
 * lapsed, lost track of, or failed to leave), from its first claim until a waiter timeout
 * after it was last heard of. */
static bool troubled(const struct tt_line_log *log, const struct tt_attempt *a, int64_t from,
                     int64_t to)
{
    if (!a->lined || a->claims == 0)
        return false;
    if (!(a->disturbed || a->end_ns == 0 || a->store_failed || a->leave_failed ||
          (a->queued && a->max_gap_ns >= live_limit_ns(log))))
        return false;

    int64_t last = a->end_ns > a->last_ret_ns ? a->end_ns : a->last_ret_ns;
    return a->first_send_ns < to && last + (int64_t)log->waiter_timeout_ms * 1000000 > from;
}

/* When a clean waiter that joined before `at` stopped waiting: the send of its granting claim
 * or of its leave. */
static int64_t wait_end(const struct tt_attempt *a)
{
    if (a->outcome == TT_OUT_GRANTED)
        return a->last_send_ns;
    return a->left ? a->leave_send_ns : a->end_ns;
}

/*
 * The stalls (a figure): after each release of a key, the span until the first claim that won
 * it was sent, cut short when every waiter that was in line at the release had stopped waiting.
 * A span with such a waiter that lasts longer than stall_ms is a stall.
 */
static void find_stalls(const struct tt_line_log *log, struct tt_line_verdict *v)
{
    int64_t limit = (int64_t)log->stall_ms * 1000000;

    for (size_t i = 0; i < log->nsec; i++) {
        const struct tt_section *s = &log->sec[i];
        int64_t r = s->released_ns, grant = INT64_MAX, waited = INT64_MIN;

        if (s->end != TT_END_RELEASED || r == 0)
            continue;
        for (size_t j = 0; j < log->n; j++) {
            const struct tt_attempt *a = &log->att[j];

            if (a->key != s->key || !a->lined || a->claims == 0)
                continue;
            if (a->outcome == TT_OUT_GRANTED && a->last_ret_ns > r && a->last_send_ns < grant)
                grant = a->last_send_ns;
            if (line_ended(a) && a->queued && a->first_ret_ns < r && wait_end(a) > waited)
                waited = wait_end(a);
        }
        if (waited <= r)
            continue; /* no one waited */
        int64_t until = grant < waited ? grant : waited;
        if (until - r <= limit)
            continue;
        bool explained = false, failed_leave = false;
        for (size_t j = 0; j < log->n; j++) {
            const struct tt_attempt *a = &log->att[j];

            if (a->key == s->key && troubled(log, a, r, until)) {
                explained = true;
                /* A failed leave leaves the place behind, live until its timeout. */
                failed_leave |= a->leave_failed && a->leave_send_ns < until &&
                                a->last_send_ns + (int64_t)log->waiter_timeout_ms * 1000000 > r;
            }
        }
        v->stalls++;
        v->stalls_failed_leave += failed_leave;
        if (until - r > v->max_stall_ns)
            v->max_stall_ns = until - r;
        if (!explained) {
            v->stalls_unexplained++;
            if (until - r > v->max_stall_unexplained_ns)
                v->max_stall_unexplained_ns = until - r;
        }
    }
}

uint64_t tt_check_line(const struct tt_line_log *log, struct tt_line_verdict *v)
{
    memset(v, 0, sizeof(*v));
    /* The calls that made a claim, by key, then by their first claim's send. */
    struct ref *idx = calloc(log->n ? log->n : 1, sizeof(*idx));
    if (idx == NULL) {
        line_violated(v, "checker: out of memory");
        return 1;
    }

    size_t m = 0;
    for (size_t i = 0; i < log->n; i++) {
        const struct tt_attempt *a = &log->att[i];

        v->attempts++;
        if (a->end_ns == 0) {
            v->never_ended++;
            if (!a->disturbed)
                continue;
        }
        if (a->disturbed) {
            v->disturbed++;
            continue;
        }
        v->lined += a->lined;
        v->queued += a->queued;
        v->granted += a->outcome == TT_OUT_GRANTED;
        v->gave_up += a->outcome == TT_OUT_GAVE_UP;
        v->errors += a->outcome == TT_OUT_ERROR;
        v->wakeups += a->wakeups;
        v->wakeups_spent += a->wakeups_spent;
        v->leave_failed += a->leave_failed;
        if (a->max_waiting > v->max_line)
            v->max_line = a->max_waiting;
        if (!line_ended(a))
            continue;
        check_patience(log, a, v);
        if (a->queued && a->max_gap_ns >= live_limit_ns(log))
            v->lapsed++;
        if (a->claims > 0)
            idx[m++] = (struct ref){.key = a->key, .by = a->first_send_ns, .idx = (uint32_t)i};
    }
    qsort(idx, m, sizeof(*idx), cmp_ref);

    for (size_t i = 0; i < m; i++) {
        const struct tt_attempt *a = &log->att[idx[i].idx];

        if (!earlier_waiter(log, a))
            continue;
        v->eligible++;
        /* Later arrivals: first claim sent after a's first claim returned, while a waited. */
        for (size_t j = i + 1; j < m; j++) {
            const struct tt_attempt *b = &log->att[idx[j].idx];

            if (b->key != a->key || b->first_send_ns > a->end_ns)
                break;
            if (b->first_send_ns <= a->first_ret_ns || b->outcome != TT_OUT_GRANTED)
                continue;
            judge_pair(a, b, v);
        }
    }
    free(idx);
    if (log->stall_ms > 0)
        find_stalls(log, v);
    return v->early_give_ups + v->overruns + v->order_violations;
}
