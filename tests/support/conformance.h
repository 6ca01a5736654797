/*
 * conformance.h -- the store conformance suite: one suite, run against every store
 * (DESIGN.md section 3). A store's integration test is a main() that fills in the description
 * and returns tl_conformance_run(&c):
 *
 *     int main(void)
 *     {
 *         const char *url = tl_test_env("TL_TEST_REDIS_URI");
 *         struct tl_conformance c = {.name = "redis", .url = url, .multi_process = true,
 *                                    .short_timeout_ms = 300, .key_format = "conf-%d"};
 *         return tl_conformance_run(&c); // 77 (skipped) when url is NULL
 *     }
 *
 * The suite checks, through the public API and the store vtable:
 * - acquire/inspect/release round trip, metadata and task_info as recorded;
 * - a held key is held for everyone, the same worker id included (no re-entrance);
 * - tokens strictly increase per key across release, steal and force;
 * - steal-stale wins only once the holder is stale; force always wins;
 * - renew after a steal or force reports lost; release by a non-owner or with a wrong token is
 *   refused; release is safe to retry;
 * - N threads (and, if multi_process, N processes) claiming one key: exactly one winner per round;
 * - list (if the store has it) shows every held key, stale ones marked;
 * - history (if the store has it) records acquired, released, stolen, forced, lost;
 * - a forced release (tl_release_force) breaks any holder's lock, or only the given token's, in
 *   the audit trail as `forced` and `released` by whoever broke it;
 * - the line (keys 85-99): waiters are granted in arrival order, or by priority then arrival;
 *   only the head is woken at a release; a free key goes to the head, not to a newcomer; a dead
 *   waiter is skipped and removed; a waiter that gives up leaves; the head steals a stale lock;
 *   FORCE passes the line; tokens increase across hand-overs; inspect and list count waiters;
 * - tl_extend changes the recorded lock timeout;
 * - claim-next (keys 60-84): candidates in order, held/queued/done ones skipped, a stale one
 *   taken only when stealing, each key won once by concurrent claimers, done markers and
 *   reopen, release-and-claim-next, a waiting claim-next woken by a release;
 * - shared holders and semaphores (keys 30-59): readers share and exclude a writer, tokens grow
 *   across modes, a queued writer is not starved by new readers, readers queued behind a writer
 *   all enter, a semaphore admits at most its slots and refuses a mismatch, a stale shared
 *   holder is stolen, a forced release breaks one holder or all, list shows every holder,
 *   racing threads never exceed the slots nor mix a writer with anyone. A store without shared
 *   holders must refuse them with TL_ENOTSUP;
 * - upgrades and downgrades (keys 40-43): an upgrade alone is immediate, beside others it waits
 *   at the head keeping its shared hold, two upgraders deadlock and the younger is told, a
 *   downgrade lets queued readers in; tokens grow; events recorded;
 * - deadlocks (keys 44-59, stores that keep the wait-for graph): 2- and 3-cycles reported to
 *   their youngest waiter, whose message names the cycle, while the others go on; a dead waiter
 *   or a stale holder closes no cycle.
 */
#ifndef TL_CONFORMANCE_H
#define TL_CONFORMANCE_H

#include <stdbool.h>
#include <stdint.h>

struct tl_conformance {
    const char *name; /* shown in the cmocka group name */
    const char *url;  /* store URL; NULL: the suite is skipped (returns 77) */
    /* The store judges staleness by the manager's clock (memory, sqlite): the suite then moves a
     * fake clock instead of waiting. Otherwise it waits (polling, bounded) for short_timeout_ms
     * to pass by the store's own clock. */
    bool fake_clock;
    bool multi_process;        /* separate processes share the store (not memory:) */
    uint32_t short_timeout_ms; /* a lock timeout the suite can wait out; 0: 300 ms */
    /* printf format with one %d that makes keys: "conf-%d", or "%d" for GitHub issue numbers.
     * The suite uses numbers key_base .. key_base + 99. */
    const char *key_format;
    int key_base;
    int contenders; /* threads/processes racing per round; 0: 8 */
    int rounds;     /* racing rounds; 0: 20 */
    /* The store cannot record that a former holder found its lock gone (GitHub: the loser's
     * claim comment is deleted, so nothing is left to write it on). */
    bool skip_lost_event;
    /* Stores whose server clock a test can move (the GitHub test server): the suite then makes
     * a lock stale by moving that clock forward `ms` instead of waiting. NULL: wait. */
    void (*advance_store_clock)(void *ud, uint32_t ms);
    void *clock_ud;
    /* The store's line is first come, first served (GitHub): a priority is refused, and the
     * suite checks that instead of priority order. */
    bool fifo_only;
    /* A dead waiter disappears from the line by itself (etcd: its key hangs on a lease that
     * expires) instead of staying listed, marked dead, until someone removes it. */
    bool dead_waiters_vanish;
};

/* Runs the suite; returns cmocka's result (0 when every test passed) or 77 when url is NULL. */
int tl_conformance_run(const struct tl_conformance *c);

/* For the suite's own files: key number `n` of the store under test, and the line's part. */
const char *tl_conformance_key(const struct tl_conformance *c, int n, char buf[64]);
int tl__conformance_line_run(const struct tl_conformance *c);
int tl__conformance_next_run(const struct tl_conformance *c);    /* claim-next: keys 60-84 */
int tl__conformance_modes_run(const struct tl_conformance *c);   /* shared holders: keys 30-39 */
int tl__conformance_convert_run(const struct tl_conformance *c); /* convert, deadlocks: 40-59 */
/* The main part's helpers, for the other parts: a manager on the store under test (fake-clock
 * stores share the suite's fake clock), a lock made stale, the short lock timeout. The parts'
 * other shared helpers (a manager on the real clock, acquires, lines, jobs on threads) are in
 * conformance_util.h. */
struct tl_manager;
struct tl_manager *tl__conformance_mgr(const char *worker, uint32_t timeout_ms);
void tl__conformance_make_stale(struct tl_manager *observer, const char *k);
uint32_t tl__conformance_short_timeout(void);

#endif /* TL_CONFORMANCE_H */
