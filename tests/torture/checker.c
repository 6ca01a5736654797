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
    static const char *const names[] = {"never ended", "released", "lost", "unsure", "killed"};

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
    return s->end == TT_END_RELEASED || (s->end == TT_END_LOST && f->trail_released);
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
        for (size_t j = 0; j < nactive; j++) {
            const struct tt_section *a = &log->sec[active[j]];

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
    uint64_t max[TT_MAX_KEYS] = {0};
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
        bool expect = w->token >= max[w->key];
        if (w->accepted != expect) {
            v->resource_errors++;
            violated(v, "key %u: the fenced resource %s token %llu with %llu seen", w->key,
                     w->accepted ? "accepted" : "rejected", (unsigned long long)w->token,
                     (unsigned long long)max[w->key]);
        }
        if (w->accepted && w->token > max[w->key])
            max[w->key] = w->token;

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
    /* fence[i]: the first seq of any write with a larger token on the same key. */
    uint64_t *fence = malloc((log->nsec ? log->nsec : 1) * sizeof(*fence));

    if (fence == NULL) {
        violated(v, "checker: out of memory");
        return;
    }
    uint64_t run = UINT64_MAX;
    for (size_t i = log->nsec; i-- > 0;) {
        if (i + 1 < log->nsec && by_token[i + 1].key != by_token[i].key)
            run = UINT64_MAX;
        fence[by_token[i].idx] = run;
        if (facts[by_token[i].idx].first_seq < run)
            run = facts[by_token[i].idx].first_seq;
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
        if (taken && !b->took_stale && !b->took_forced) {
            v->unexplained_takeovers++;
            violated(v,
                     "key %u: w%u's lock (token %llu, %s) passed to w%u (token %llu) without a "
                     "steal or force",
                     b->key, a->worker, (unsigned long long)a->token, end_name(a->end), b->worker,
                     (unsigned long long)b->token);
        }
        if (b->took_stale && a->end == TT_END_RELEASED)
            v->orphan_steals++;
        if (b->took_stale) {
            /* The stolen claim was made after a's acquire began, and was stale by then. */
            int64_t gap_ms = (b->enter_ns - a->acq_ns) / 1000000;
            if (gap_ms + (int64_t)log->steal_slack_ms < (int64_t)log->lock_timeout_ms) {
                v->premature_steals++;
                violated(v,
                         "key %u: w%u stole token %llu's lock %lld ms after w%u began to "
                         "acquire it, under the lock timeout of %u ms",
                         b->key, b->worker, (unsigned long long)a->token, (long long)gap_ms,
                         a->worker, log->lock_timeout_ms);
            }
            if (a->end == TT_END_KILLED) {
                int64_t rec = (b->enter_ns - exit_of(a, &facts[by_token[i - 1].idx])) / 1000000;
                if (rec > v->max_recovery_ms)
                    v->max_recovery_ms = rec;
            }
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
    return e->kind == TL_EVENT_ACQUIRED || e->kind == TL_EVENT_STOLEN || e->kind == TL_EVENT_FORCED;
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
    tl_event_kind want = s->took_forced  ? TL_EVENT_FORCED
                         : s->took_stale ? TL_EVENT_STOLEN
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
           v->partition_violations;
}
