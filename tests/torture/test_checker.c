/*
 * test_checker.c -- the torture checker must catch what it claims to catch. Each test builds a
 * small log by hand, plants one violation (or none), and checks the verdict.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "torture.h"

#define MS 1000000LL /* ns */

struct fixture {
    struct tt_section sec[16];
    size_t nsec;
    struct tt_write wr[64];
    size_t nwr;
    uint64_t seq;
    uint64_t max[2];
    uint64_t max_excl[2];        /* modes: the largest token an exclusive holder wrote with */
    struct tt_freeze freezes[2]; /* partition */
    size_t nfreezes;
};

/* A section of key 0 from `acq` ms to `exit` ms (enter = acq + 1). */
static struct tt_section *section(struct fixture *f, uint32_t worker, uint64_t token, int64_t acq,
                                  int64_t exit, enum tt_end end)
{
    struct tt_section *s = &f->sec[f->nsec++];

    memset(s, 0, sizeof(*s));
    s->worker = worker;
    s->token = token;
    s->acq_ns = acq * MS;
    s->enter_ns = (acq + 1) * MS;
    s->exit_ns = end == TT_END_KILLED ? 0 : exit * MS;
    s->end = (uint8_t)end;
    s->strategy = TL_STEAL_STALE;
    return s;
}

/* A write of section `i` at `at` ms, judged as the fenced resource would (a reader's against
 * the writers' tokens only). */
static void write_at(struct fixture *f, uint32_t i, int64_t at)
{
    const struct tt_section *s = &f->sec[i];
    struct tt_write *w = &f->wr[f->nwr++];
    bool reader = s->mode == TL_SHARED;

    w->section = i;
    w->key = s->key;
    w->token = s->token;
    w->seq = ++f->seq;
    w->at_ns = at * MS;
    w->accepted = s->token >= (reader ? f->max_excl[s->key] : f->max[s->key]);
    if (w->accepted && s->token > f->max[s->key])
        f->max[s->key] = s->token;
    if (w->accepted && !reader)
        f->max_excl[s->key] = s->token;
}

/* modes: a shared section (a slot of a semaphore of `slots` when slots > 0). */
static struct tt_section *shared(struct fixture *f, uint32_t worker, uint64_t token, int64_t acq,
                                 int64_t exit, enum tt_end end, uint32_t slots)
{
    struct tt_section *s = section(f, worker, token, acq, exit, end);

    s->mode = TL_SHARED;
    s->slots = slots;
    return s;
}

/* Writes at entry and exit of every section (a killed one: at entry only). */
static void write_all(struct fixture *f)
{
    for (uint32_t i = 0; i < f->nsec; i++) {
        write_at(f, i, f->sec[i].enter_ns / MS);
        if (f->sec[i].exit_ns != 0)
            write_at(f, i, f->sec[i].exit_ns / MS);
    }
}

static uint64_t check(const struct fixture *f, struct tt_verdict *v)
{
    const struct tt_log log = {
        .nkeys = 2,
        .sec = f->sec,
        .nsec = f->nsec,
        .wr = f->wr,
        .nwr = f->nwr,
        .lock_timeout_ms = 1000,
        .steal_slack_ms = 50,
        .freezes = f->freezes,
        .nfreezes = f->nfreezes,
    };
    uint64_t n = tt_check(&log, v);

    for (uint64_t i = 0; i < v->nviolated && i < TT_MAX_VIOLATED; i++)
        print_message("  violated: %s\n", v->violated[i]);
    return n;
}

static void sequential_sections_pass(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 10, TT_END_RELEASED);
    section(&f, 1, 2, 5, 20, TT_END_RELEASED)->acq_ns = 5 * MS; /* waited while w0 held it */
    f.sec[1].enter_ns = 11 * MS;
    section(&f, 0, 3, 21, 30, TT_END_RELEASED);
    for (uint32_t i = 0; i < 3; i++) {
        write_at(&f, i, f.sec[i].enter_ns / MS);
        write_at(&f, i, f.sec[i].exit_ns / MS);
    }
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.sections, 3);
    assert_int_equal(v.writes, 6);
    assert_int_equal(v.released, 3);
}

static void overlap_of_valid_holders_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 10, TT_END_RELEASED);
    section(&f, 1, 2, 5, 20, TT_END_RELEASED); /* entered at 6 while w0 was inside */
    assert_int_equal(check(&f, &v), 1);
    assert_int_equal(v.overlaps, 1);
}

static void overlap_on_different_keys_passes(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 10, TT_END_RELEASED);
    section(&f, 1, 1, 5, 20, TT_END_RELEASED)->key = 1;
    assert_int_equal(check(&f, &v), 0);
}

static void lost_holder_fenced_off_passes(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    /* w0 is stopped inside; w1 steals after the timeout; w0's late writes are rejected. */
    section(&f, 0, 1, 0, 3000, TT_END_LOST)->learned_ns = 2990 * MS;
    section(&f, 1, 2, 1500, 1600, TT_END_RELEASED)->took_stale = true;
    write_at(&f, 0, 2);
    write_at(&f, 1, 1502);
    write_at(&f, 0, 2995);
    write_at(&f, 1, 1599);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.allowed_overlaps, 1);
    assert_int_equal(v.stale_writes_rejected, 1);
    assert_int_equal(v.steals, 1);
}

static void stale_write_accepted_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 3000, TT_END_LOST);
    section(&f, 1, 2, 1500, 1600, TT_END_RELEASED)->took_stale = true;
    write_at(&f, 1, 1502);
    write_at(&f, 0, 2995);
    f.wr[1].accepted = true; /* a resource that let the stale write in */
    assert_true(check(&f, &v) >= 1);
    assert_int_equal(v.stale_writes_accepted, 1);
    assert_int_equal(v.resource_errors, 1);
}

static void thief_with_smaller_token_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 5, 0, 3000, TT_END_LOST);
    section(&f, 1, 4, 1500, 1600, TT_END_RELEASED)->took_stale = true;
    assert_true(check(&f, &v) >= 1);
    assert_int_equal(v.overlaps, 1);
}

static void token_regression_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 7, 0, 10, TT_END_RELEASED);
    section(&f, 1, 6, 20, 30, TT_END_RELEASED);
    assert_true(check(&f, &v) >= 1);
    assert_int_equal(v.token_regressions, 1);
}

static void concurrent_acquires_may_finish_out_of_order(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    /* Both acquires were in flight at once: either may have got the smaller token. */
    section(&f, 0, 2, 0, 10, TT_END_RELEASED)->enter_ns = 5 * MS;
    section(&f, 1, 1, 1, 4, TT_END_RELEASED)->enter_ns = 3 * MS;
    assert_int_equal(check(&f, &v), 0);
}

static void duplicate_token_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 3, 0, 10, TT_END_RELEASED);
    section(&f, 1, 3, 5, 20, TT_END_RELEASED)->enter_ns = 11 * MS;
    assert_true(check(&f, &v) >= 1);
    assert_int_equal(v.duplicate_tokens, 1);
}

static void takeover_without_steal_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 10, TT_END_LOST);
    section(&f, 1, 2, 2000, 2010, TT_END_RELEASED); /* not a steal, yet w0 was told "not owner" */
    assert_int_equal(check(&f, &v), 1);
    assert_int_equal(v.unexplained_takeovers, 1);
}

static void premature_steal_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 10, TT_END_LOST);
    section(&f, 1, 2, 500, 600, TT_END_RELEASED)->took_stale = true; /* 501 ms < 1000 ms */
    f.sec[0].exit_ns = 400 * MS;
    assert_int_equal(check(&f, &v), 1);
    assert_int_equal(v.premature_steals, 1);
}

static void steal_by_retry_strategy_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 10, TT_END_LOST);
    struct tt_section *s = section(&f, 1, 2, 2000, 2010, TT_END_RELEASED);
    s->took_stale = true;
    s->strategy = TL_RETRY;
    assert_int_equal(check(&f, &v), 1);
    assert_int_equal(v.forbidden_steals, 1);
}

static void valid_holder_fenced_off_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    /* Both acquires were in flight at once; w1 (token 2) wrote inside w0's section, so w0's
     * write was rejected although w0 released normally. */
    section(&f, 0, 1, 0, 10, TT_END_RELEASED);
    section(&f, 1, 2, 0, 5, TT_END_RELEASED)->enter_ns = 4 * MS;
    write_at(&f, 1, 4);
    write_at(&f, 0, 6);
    assert_true(check(&f, &v) >= 1);
    assert_int_equal(v.valid_writes_rejected, 1);
    assert_int_equal(v.overlaps, 1);
}

static void killed_holder_ends_at_its_last_write(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 0, TT_END_KILLED);
    section(&f, 1, 2, 1200, 1300, TT_END_RELEASED)->took_stale = true;
    write_at(&f, 0, 2);
    write_at(&f, 0, 5);
    write_at(&f, 1, 1202);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.killed, 1);
    assert_int_equal(v.max_recovery_ms, 1201 - 5);

    /* A killed holder still writing after the next holder entered is an overlap to explain:
     * allowed only because the store took the lock from it (a steal) and fencing held. */
    write_at(&f, 0, 1250);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.allowed_overlaps, 1);
    assert_int_equal(v.stale_writes_rejected, 1);
}

static void unended_section_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 10, TT_END_NONE);
    assert_int_equal(check(&f, &v), 1);
    assert_int_equal(v.unended, 1);
}

static void name_of(uint32_t slot, char *buf, size_t size)
{
    (void)snprintf(buf, size, "w%u", slot);
}

static void history_must_agree(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;
    struct tl_event e1 = {.kind = TL_EVENT_ACQUIRED, .token = 1, .worker_id = "w0"};
    struct tl_event e2 = {.kind = TL_EVENT_RELEASED, .token = 1, .worker_id = "w0"};
    struct tl_event e3 = {.kind = TL_EVENT_ACQUIRED, .token = 2, .worker_id = "w1"};
    struct tl_event e4 = {.kind = TL_EVENT_ACQUIRED, .token = 3, .worker_id = "w9"};
    struct tl_event *ev[] = {&e1, &e2, &e3, &e4};
    struct tt_history h[2] = {{.ev = ev, .n = 4, .complete = true}, {0}};

    (void)state;
    section(&f, 0, 1, 0, 10, TT_END_RELEASED);
    section(&f, 1, 2, 2000, 2010, TT_END_RELEASED); /* the trail lacks its release */
    struct tt_log log = {.nkeys = 2,
                         .sec = f.sec,
                         .nsec = f.nsec,
                         .lock_timeout_ms = 1000,
                         .history = h,
                         .worker_name = name_of};
    uint64_t n = tt_check(&log, &v);
    for (uint64_t i = 0; i < v.nviolated && i < TT_MAX_VIOLATED; i++)
        print_message("  violated: %s\n", v.violated[i]);
    assert_int_equal(n, 1);
    assert_int_equal(v.history_mismatches, 1);
    assert_int_equal(v.history_events, 2);
    assert_int_equal(v.history_unrecorded, 1); /* token 3: an acquisition no section saw */

    /* A steal recorded as a plain acquisition is a mismatch too. */
    e2.kind = TL_EVENT_RELEASED;
    struct tl_event e5 = {.kind = TL_EVENT_RELEASED, .token = 2, .worker_id = "w1"};
    struct tl_event *ev2[] = {&e1, &e2, &e3, &e4, &e5};
    h[0].ev = ev2;
    h[0].n = 5;
    f.sec[1].took_stale = true;
    assert_int_equal(tt_check(&log, &v), 1);
    assert_int_equal(v.history_mismatches, 1);
    f.sec[1].took_stale = false;
    assert_int_equal(tt_check(&log, &v), 0);
}

static void lost_answer_to_a_release_that_went_through(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;
    struct tl_event e1 = {.kind = TL_EVENT_ACQUIRED, .token = 1, .worker_id = "w0"};
    struct tl_event e2 = {.kind = TL_EVENT_RELEASED, .token = 1, .worker_id = "w0"};
    struct tl_event e3 = {.kind = TL_EVENT_ACQUIRED, .token = 2, .worker_id = "w1"};
    struct tl_event e4 = {.kind = TL_EVENT_RELEASED, .token = 2, .worker_id = "w1"};
    struct tl_event *ev[] = {&e1, &e2, &e3, &e4};
    struct tt_history h[2] = {{.ev = ev, .n = 4, .complete = true}, {0}};

    (void)state;
    /* w0's release went through, its answer was lost, the retry found w1 holding the key. */
    section(&f, 0, 1, 0, 10, TT_END_LOST);
    section(&f, 1, 2, 11, 20, TT_END_RELEASED);
    write_at(&f, 0, 5);
    write_at(&f, 1, 15);
    struct tt_log log = {.nkeys = 2,
                         .sec = f.sec,
                         .nsec = f.nsec,
                         .wr = f.wr,
                         .nwr = f.nwr,
                         .lock_timeout_ms = 1000,
                         .history = h,
                         .worker_name = name_of};
    assert_int_equal(tt_check(&log, &v), 0);
    assert_int_equal(v.misreported_lost, 1);

    /* Without the trail's word for it, the same hand-over is unexplained. */
    log.history = NULL;
    assert_int_equal(tt_check(&log, &v), 1);
    assert_int_equal(v.unexplained_takeovers, 1);
}

/*
 * Partition: w1 reaches the store through the proxy, which is frozen from 1000 to 4000 ms; its
 * lock (token 1, last renewed just before the freeze) is declared lost at 1900 ms, a margin
 * before w0 can steal it at 2000 ms. Ends `w1_exit` ms, with `end`.
 */
static void partition(struct fixture *f, int64_t w1_exit, enum tt_end end)
{
    f->freezes[f->nfreezes++] = (struct tt_freeze){.start_ns = 1000 * MS, .end_ns = 4000 * MS};
    struct tt_section *a = section(f, 1, 1, 0, w1_exit, end);
    a->proxied = true;
    a->long_hold = true;
    a->learned_ns = 1900 * MS;
    a->lost_ns = 1900 * MS;
    write_at(f, 0, 1);
    if (end == TT_END_RELEASED)
        return; /* nobody took it */
    section(f, 0, 2, 1001, 2100, TT_END_RELEASED)->took_stale = true;
    f->sec[1].enter_ns = 2000 * MS;
    write_at(f, 1, 2001);
}

static void partitioned_holder_gone_before_the_thief_passes(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    partition(&f, 1905, TT_END_LOST);
    /* A direct worker's section during the freeze is not cut off. */
    section(&f, 2, 3, 2200, 2300, TT_END_RELEASED);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.cut_off, 1);
    assert_int_equal(v.partitioned_holders, 1);
    assert_int_equal(v.partition_measured, 1);
    assert_int_equal(v.partition_margin_min_ns, 95 * MS);
    assert_int_equal(v.partition_margin_median_ns, 95 * MS);
    assert_int_equal(v.allowed_overlaps, 0);
}

static void partitioned_holder_still_inside_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    /* Left 5 ms after the thief entered: fencing would cover it (an allowed overlap for the
     * general rule), the partition rule does not. */
    partition(&f, 2005, TT_END_UNSURE);
    assert_int_equal(check(&f, &v), 1);
    assert_int_equal(v.partition_violations, 1);
    assert_int_equal(v.overlaps, 0);
    assert_int_equal(v.allowed_overlaps, 1);
    assert_int_equal(v.partition_margin_min_ns, -5 * MS);
}

static void partitioned_lock_nobody_took_is_released(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    partition(&f, 1905, TT_END_RELEASED);
    section(&f, 0, 2, 4100, 4200, TT_END_RELEASED);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.cut_off, 1);
    assert_int_equal(v.partitioned_holders, 0);
    assert_int_equal(v.partition_released, 1);
    assert_int_equal(v.partition_measured, 0);
}

/* ---- the line ---- */

struct line_fixture {
    struct tt_attempt att[16];
    size_t n;
};

/*
 * An acquire call of key 0 by `worker` with `priority`: started at `first` ms, its first claim
 * sent then and returned 1 ms later (busy, unless it is also its last), its last claim sent at
 * `last` - 1 and returned at `last` ms, returned at `last` + 1 with `out`; patience 10 s,
 * claims every 100 ms at most (the waiter timeout is 1000 ms below).
 */
static struct tt_attempt *attempt(struct line_fixture *f, uint32_t worker, int32_t priority,
                                  int64_t first, int64_t last, enum tt_outcome out, uint64_t token)
{
    struct tt_attempt *a = &f->att[f->n++];

    memset(a, 0, sizeof(*a));
    a->worker = worker;
    a->priority = priority;
    a->strategy = TL_STEAL_STALE;
    a->outcome = (uint8_t)out;
    a->status = out == TT_OUT_GRANTED ? TL_OK : TL_EBUSY;
    a->lined = true;
    a->queued = last > first + 1 || out != TT_OUT_GRANTED;
    a->start_ns = first * MS;
    a->first_send_ns = first * MS;
    a->first_ret_ns = (first + 1) * MS;
    a->last_send_ns = (last - 1) * MS;
    a->last_ret_ns = last * MS;
    a->end_ns = (last + 1) * MS;
    a->patience_ns = out == TT_OUT_GAVE_UP ? (last - first) * MS : 10000 * MS;
    a->max_gap_ns = 100 * MS;
    a->claims = last > first + 1 ? 3 : 1;
    a->token = token;
    if (out == TT_OUT_GAVE_UP) {
        a->left = true;
        a->leave_send_ns = (last + 1) * MS;
        a->leave_ret_ns = (last + 1) * MS;
        a->end_ns = (last + 2) * MS;
    }
    return a;
}

static uint64_t check_line(const struct line_fixture *f, struct tt_line_verdict *v)
{
    const struct tt_line_log log = {
        .att = f->att,
        .n = f->n,
        .nkeys = 1,
        .waiter_timeout_ms = 1000,
        .liveness_slack_ms = 100,
        .overrun_ms = 500,
    };
    uint64_t n = tt_check_line(&log, v);

    for (uint64_t i = 0; i < v->nviolated && i < TT_MAX_VIOLATED; i++)
        print_message("  violated: %s\n", v->violated[i]);
    return n;
}

static void line_fair_history_passes(void **state)
{
    struct line_fixture f = {0};
    struct tt_line_verdict v;

    (void)state;
    attempt(&f, 0, 0, 0, 1, TT_OUT_GRANTED, 1);     /* the holder, at once */
    attempt(&f, 1, 0, 5, 60, TT_OUT_GRANTED, 3);    /* joined behind it */
    attempt(&f, 2, 0, 8, 90, TT_OUT_GRANTED, 4);    /* behind w1: after it */
    attempt(&f, 3, 2, 20, 30, TT_OUT_GRANTED, 2);   /* higher priority: passes w1 and w2 */
    attempt(&f, 4, 0, 10, 70, TT_OUT_GAVE_UP, 0);   /* gave up (left at 71) before w2's grant */
    attempt(&f, 5, -1, 12, 120, TT_OUT_GRANTED, 5); /* lowest: last */
    attempt(&f, 6, 0, 95, 96, TT_OUT_GRANTED, 6);   /* came after everyone had left the line */
    assert_int_equal(check_line(&f, &v), 0);
    assert_int_equal(v.order_violations, 0);
    assert_int_equal(v.overtakes, 3); /* w3 passed w1, w2 and w5 */
    assert_int_equal(v.pairs, 4);     /* (w1,w2) (w1,w5) (w2,w5) (w4,w5) */
    assert_int_equal(v.eligible, 5);
    assert_int_equal(v.gave_up, 1);
}

static void line_fifo_violation_fails(void **state)
{
    struct line_fixture f = {0};
    struct tt_line_verdict v;

    (void)state;
    attempt(&f, 0, 0, 0, 1, TT_OUT_GRANTED, 1);
    attempt(&f, 1, 0, 5, 60, TT_OUT_GRANTED, 3);
    attempt(&f, 2, 0, 8, 40, TT_OUT_GRANTED, 2); /* joined after w1, granted before it */
    assert_int_equal(check_line(&f, &v), 1);
    assert_int_equal(v.order_violations, 1);
    assert_non_null(strstr(v.violated[0], "w2 (priority 0) joined the line behind w1"));
}

static void line_barging_fails(void **state)
{
    struct line_fixture f = {0};
    struct tt_line_verdict v;

    (void)state;
    attempt(&f, 0, 0, 0, 1, TT_OUT_GRANTED, 1);
    attempt(&f, 1, 1, 5, 60, TT_OUT_GRANTED, 3);
    attempt(&f, 2, 1, 20, 21, TT_OUT_GRANTED, 2); /* one claim, won past a waiter of its rank */
    assert_int_equal(check_line(&f, &v), 1);
    assert_int_equal(v.order_violations, 1);
}

static void line_priority_violation_fails(void **state)
{
    struct line_fixture f = {0};
    struct tt_line_verdict v;

    (void)state;
    attempt(&f, 0, 0, 0, 1, TT_OUT_GRANTED, 1);
    attempt(&f, 1, 5, 5, 60, TT_OUT_GRANTED, 3);
    attempt(&f, 2, 4, 8, 40, TT_OUT_GRANTED, 2); /* lower priority, later, granted first */
    assert_int_equal(check_line(&f, &v), 1);
    assert_int_equal(v.order_violations, 1);
}

static void line_passing_a_waiter_before_it_gave_up_fails(void **state)
{
    struct line_fixture f = {0};
    struct tt_line_verdict v;

    (void)state;
    attempt(&f, 0, 0, 0, 1, TT_OUT_GRANTED, 1);
    attempt(&f, 1, 0, 5, 60, TT_OUT_GAVE_UP, 0); /* left at 61 */
    attempt(&f, 2, 0, 8, 50, TT_OUT_GRANTED, 2); /* granted by 50: w1 was still waiting */
    assert_int_equal(check_line(&f, &v), 1);
    assert_int_equal(v.order_violations, 1);
    assert_non_null(strstr(v.violated[0], "before w1, live and waiting, gave up"));

    /* Granted by a claim sent after w1's leave was sent: not judged a violation. */
    f.att[2].last_send_ns = 62 * MS;
    f.att[2].last_ret_ns = 63 * MS;
    f.att[2].end_ns = 64 * MS;
    assert_int_equal(check_line(&f, &v), 0);
}

static void line_stopped_or_lapsed_waiter_may_be_passed(void **state)
{
    struct line_fixture f = {0};
    struct tt_line_verdict v;

    (void)state;
    attempt(&f, 0, 0, 0, 1, TT_OUT_GRANTED, 1);
    struct tt_attempt *a = attempt(&f, 1, 0, 5, 3000, TT_OUT_GRANTED, 3);
    attempt(&f, 2, 0, 8, 40, TT_OUT_GRANTED, 2);
    a->disturbed = true; /* stopped in line past its waiter timeout: its place went dead */
    assert_int_equal(check_line(&f, &v), 0);
    assert_int_equal(v.disturbed, 1);

    /* Not stopped, but 950 ms between two of its claims: the store (whose clock we know to
     * 100 ms) may have found its place dead. */
    a->disturbed = false;
    a->max_gap_ns = 950 * MS;
    assert_int_equal(check_line(&f, &v), 0);
    assert_int_equal(v.lapsed, 1);

    /* 850 ms: it was live all along, so passing it was wrong. */
    a->max_gap_ns = 850 * MS;
    assert_int_equal(check_line(&f, &v), 1);
    assert_int_equal(v.order_violations, 1);

    /* A claim of its failed: where it stands in line is unknown. */
    a->store_failed = true;
    assert_int_equal(check_line(&f, &v), 0);
}

static void line_joins_in_flight_together_are_not_judged(void **state)
{
    struct line_fixture f = {0};
    struct tt_line_verdict v;

    (void)state;
    attempt(&f, 0, 0, 0, 1, TT_OUT_GRANTED, 1);
    attempt(&f, 1, 0, 5, 60, TT_OUT_GRANTED, 3);
    /* w2's first claim was sent before w1's first claim returned: either may be first. */
    struct tt_attempt *b = attempt(&f, 2, 0, 5, 40, TT_OUT_GRANTED, 2);
    b->first_send_ns = 5 * MS + 500000;
    assert_int_equal(check_line(&f, &v), 0);
    assert_int_equal(v.pairs, 0); /* neither joined surely before the other */
}

static void line_early_give_up_fails(void **state)
{
    struct line_fixture f = {0};
    struct tt_line_verdict v;

    (void)state;
    attempt(&f, 0, 0, 0, 1, TT_OUT_GRANTED, 1);
    struct tt_attempt *a = attempt(&f, 1, 0, 5, 60, TT_OUT_GAVE_UP, 0);
    a->patience_ns = 200 * MS; /* gave up at 62 ms of a 200 ms patience: a wake-up was lost */
    assert_int_equal(check_line(&f, &v), 1);
    assert_int_equal(v.early_give_ups, 1);

    /* Stopped meanwhile: not judged. */
    a->disturbed = true;
    assert_int_equal(check_line(&f, &v), 0);
}

static void line_overrun_fails(void **state)
{
    struct line_fixture f = {0};
    struct tt_line_verdict v;

    (void)state;
    struct tt_attempt *a = attempt(&f, 1, 0, 0, 60, TT_OUT_GAVE_UP, 0);
    a->end_ns = a->start_ns + a->patience_ns + 400 * MS; /* within the 500 ms bound */
    assert_int_equal(check_line(&f, &v), 0);
    assert_int_equal(v.max_overrun_ns, 400 * MS);
    a->end_ns = a->start_ns + a->patience_ns + 600 * MS;
    assert_int_equal(check_line(&f, &v), 1);
    assert_int_equal(v.overruns, 1);
}

/* ---- modes: shared holders, semaphores, upgrades ---- */

static void readers_overlapping_pass(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    shared(&f, 0, 1, 0, 10, TT_END_RELEASED, 0);
    shared(&f, 1, 2, 2, 20, TT_END_RELEASED, 0);
    shared(&f, 2, 3, 4, 8, TT_END_RELEASED, 0);
    write_at(&f, 0, 1);
    write_at(&f, 1, 3);
    write_at(&f, 2, 5);
    write_at(&f, 0, 9); /* a smaller token reads after larger ones: fine for readers */
    write_at(&f, 1, 19);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.shared_overlaps, 3);
    assert_int_equal(v.shared, 3);
    assert_int_equal(v.writes_rejected, 0);
}

static void writer_overlapping_a_reader_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    shared(&f, 0, 1, 0, 10, TT_END_RELEASED, 0);
    section(&f, 1, 2, 5, 20, TT_END_RELEASED); /* a writer entered at 6 while w0 read */
    write_all(&f);
    assert_int_not_equal(check(&f, &v), 0);
    assert_int_equal(v.overlaps, 1);
}

static void reader_overlapping_a_writer_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    section(&f, 0, 1, 0, 10, TT_END_RELEASED);
    shared(&f, 1, 2, 5, 20, TT_END_RELEASED, 0);
    write_all(&f);
    assert_int_not_equal(check(&f, &v), 0);
    assert_int_equal(v.overlaps, 1);
}

static void semaphore_full_passes_and_one_more_fails(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    shared(&f, 0, 1, 0, 10, TT_END_RELEASED, 2);
    shared(&f, 1, 2, 2, 20, TT_END_RELEASED, 2);
    shared(&f, 2, 3, 10, 30, TT_END_RELEASED, 2); /* enters at 11, after w0 left */
    write_all(&f);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.max_slots_inside, 2);

    shared(&f, 3, 4, 12, 14, TT_END_RELEASED, 2); /* a third holder beside w1 and w2 */
    assert_int_equal(check(&f, &v), 1);
    assert_int_equal(v.semaphore_overflows, 1);
    assert_int_equal(v.max_slots_inside, 3);
}

static void semaphore_slot_of_a_lost_holder_may_be_taken(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    /* w0 stopped inside past the lock timeout; w2 stole its slot while w1 held the other. */
    shared(&f, 0, 1, 0, 2000, TT_END_LOST, 2)->stopped = true;
    shared(&f, 1, 2, 100, 1500, TT_END_RELEASED, 2);
    struct tt_section *t = shared(&f, 2, 3, 1200, 1300, TT_END_RELEASED, 2);
    t->took_stale = true;
    write_all(&f);
    assert_int_equal(check(&f, &v), 0);
}

static void upgrade_passes(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    /* w0 reads, w1 reads beside it, w0 upgrades (new token 3) once w1 has left, then writes. */
    shared(&f, 0, 1, 0, 5, TT_END_UPGRADED, 0);
    shared(&f, 1, 2, 1, 7, TT_END_RELEASED, 0);
    struct tt_section *u = section(&f, 0, 3, 5, 20, TT_END_RELEASED);
    u->upgraded = true;
    u->enter_ns = 8 * MS; /* tl_upgrade() returned after w1 had left */
    write_all(&f);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.upgraded, 1);

    u->enter_ns = 6 * MS; /* ...or before: the writer beside a reader */
    assert_int_equal(check(&f, &v), 1);
    assert_int_equal(v.overlaps, 1);
}

static void downgrade_passes(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    /* w0 writes, downgrades (new token 2) and reads on; w1 reads beside it once it has. */
    section(&f, 0, 1, 0, 5, TT_END_DOWNGRADED);
    struct tt_section *d = shared(&f, 0, 2, 5, 20, TT_END_RELEASED, 0);
    d->downgraded = true;
    struct tt_section *r = shared(&f, 1, 3, 3, 15, TT_END_RELEASED, 0);
    r->enter_ns = 7 * MS;
    write_all(&f);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.downgraded, 1);
    assert_int_equal(v.shared_overlaps, 1);

    r->enter_ns = 4 * MS; /* a reader inside before the writer's downgrade began... */
    assert_int_equal(check(&f, &v), 2);
    assert_int_equal(v.overlaps, 1);
    assert_int_equal(v.token_regressions, 1); /* ...and granted before it, with a smaller token */
}

static void writer_steals_from_a_dead_reader(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    /* w0 was killed reading; w1 read beside its stale hold and left; w2 stole the key. */
    shared(&f, 0, 1, 0, 0, TT_END_KILLED, 0);
    shared(&f, 1, 2, 800, 900, TT_END_RELEASED, 0);
    struct tt_section *t = section(&f, 2, 3, 500, 1200, TT_END_RELEASED);
    t->took_stale = true;
    t->enter_ns = 1100 * MS;
    write_all(&f);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.steals, 1);
    assert_int_equal(v.orphan_steals, 0);

    t->enter_ns = 900 * MS + 1; /* under the lock timeout after w0's claim */
    assert_int_equal(check(&f, &v), 1);
    assert_int_equal(v.premature_steals, 1);
}

static void reader_fenced_off_by_a_writer(void **state)
{
    struct fixture f = {0};
    struct tt_verdict v;

    (void)state;
    /* w0 stopped reading past the lock timeout; w1 (a writer) stole it and wrote; w0's late
     * read is rejected. */
    struct tt_section *r = shared(&f, 0, 1, 0, 2000, TT_END_LOST, 0);
    struct tt_section *w = section(&f, 1, 2, 1000, 1500, TT_END_RELEASED);
    w->took_stale = true;
    r->learned_ns = 1900 * MS;
    write_at(&f, 0, 1);
    write_at(&f, 1, 1001);
    write_at(&f, 0, 1900);
    write_at(&f, 1, 1500);
    assert_int_equal(check(&f, &v), 0);
    assert_int_equal(v.stale_writes_rejected, 1);

    f.wr[2].accepted = true; /* a resource that let the stale read in */
    assert_int_not_equal(check(&f, &v), 0);
    assert_int_equal(v.stale_writes_accepted, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sequential_sections_pass),
        cmocka_unit_test(overlap_of_valid_holders_fails),
        cmocka_unit_test(overlap_on_different_keys_passes),
        cmocka_unit_test(lost_holder_fenced_off_passes),
        cmocka_unit_test(stale_write_accepted_fails),
        cmocka_unit_test(thief_with_smaller_token_fails),
        cmocka_unit_test(token_regression_fails),
        cmocka_unit_test(concurrent_acquires_may_finish_out_of_order),
        cmocka_unit_test(duplicate_token_fails),
        cmocka_unit_test(takeover_without_steal_fails),
        cmocka_unit_test(premature_steal_fails),
        cmocka_unit_test(steal_by_retry_strategy_fails),
        cmocka_unit_test(valid_holder_fenced_off_fails),
        cmocka_unit_test(killed_holder_ends_at_its_last_write),
        cmocka_unit_test(unended_section_fails),
        cmocka_unit_test(history_must_agree),
        cmocka_unit_test(lost_answer_to_a_release_that_went_through),
        cmocka_unit_test(partitioned_holder_gone_before_the_thief_passes),
        cmocka_unit_test(partitioned_holder_still_inside_fails),
        cmocka_unit_test(partitioned_lock_nobody_took_is_released),
        cmocka_unit_test(readers_overlapping_pass),
        cmocka_unit_test(writer_overlapping_a_reader_fails),
        cmocka_unit_test(reader_overlapping_a_writer_fails),
        cmocka_unit_test(semaphore_full_passes_and_one_more_fails),
        cmocka_unit_test(semaphore_slot_of_a_lost_holder_may_be_taken),
        cmocka_unit_test(upgrade_passes),
        cmocka_unit_test(downgrade_passes),
        cmocka_unit_test(writer_steals_from_a_dead_reader),
        cmocka_unit_test(reader_fenced_off_by_a_writer),
        cmocka_unit_test(line_fair_history_passes),
        cmocka_unit_test(line_fifo_violation_fails),
        cmocka_unit_test(line_barging_fails),
        cmocka_unit_test(line_priority_violation_fails),
        cmocka_unit_test(line_passing_a_waiter_before_it_gave_up_fails),
        cmocka_unit_test(line_stopped_or_lapsed_waiter_may_be_passed),
        cmocka_unit_test(line_joins_in_flight_together_are_not_judged),
        cmocka_unit_test(line_early_give_up_fails),
        cmocka_unit_test(line_overrun_fails),
    };

    return cmocka_run_group_tests_name("torture_checker", tests, NULL, NULL);
}
