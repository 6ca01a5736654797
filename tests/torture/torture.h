/*
 * torture.h -- the torture harness of tasklock (tests/torture/README in docs/reliability.md).
 *
 * Worker processes (or threads, for the in-process memory store) run cycles of acquire ->
 * critical section -> release over a few keys. Each critical section is recorded in a shared
 * file mapping (struct tt_shared) together with every write it makes to the *fenced resource*,
 * which accepts a write only with a token at least as high as any it has seen for the key. The
 * parent injects the scenario's faults, then the checker (checker.c) proves the properties from
 * the records alone:
 *
 * - no two critical sections on one key overlap, unless the earlier holder lost its lock to the
 *   later one (a higher token), and then the earlier holder's writes after the later holder's
 *   first write were all rejected by the fenced resource;
 * - fencing tokens strictly increase per key: a section whose acquire finished before another's
 *   acquire began has the smaller token;
 * - every acquired lock ended released, or was taken over by a steal or a force with a higher
 *   token (the store's audit trail cross-checks this where it keeps one);
 * - partition: a holder cut off from the store (through a frozen tl-proxy) whose lock was taken
 *   had left its section before the next holder entered;
 * - line: every acquire call (struct tt_attempt) gave up no sooner than its patience and
 *   returned no later than a bound past it, and a waiter that stayed live was never passed by a
 *   later arrival of its priority or lower (checker.c, "the line").
 *
 * All times are CLOCK_MONOTONIC nanoseconds, which on Linux is one clock for every process of
 * the machine, so that sections of different processes can be compared.
 */
#ifndef TT_TORTURE_H
#define TT_TORTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tasklock.h"

#define TT_MAX_KEYS     64
#define TT_MAX_WORKERS  512 /* worker slots: workers + their replacements + the sweeper */
#define TT_MAX_FAULTS   4096
#define TT_MAX_VIOLATED 16 /* violation messages kept for the report */
#define TT_MSG_SIZE     240
#define TT_STATUS_MAX   16 /* > the largest tl_status */

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "shared atomics must be lock-free across processes");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared atomics must be lock-free across processes");

/* How a critical section ended. */
enum tt_end {
    TT_END_NONE = 0,  /* never ended: its worker died without the scenario killing it */
    TT_END_RELEASED,  /* tl_release() said TL_OK */
    TT_END_LOST,      /* tl_release() said TL_ENOTOWNER at once: stolen or forced */
    TT_END_UNSURE,    /* release failed with store errors, then gave up or said TL_ENOTOWNER */
    TT_END_KILLED,    /* the scenario SIGKILLed the worker inside the section */
    TT_END_UPGRADED,  /* modes: a shared hold that tl_upgrade() turned into the next section */
    TT_END_DOWNGRADED /* modes: an exclusive hold that tl_downgrade() turned into the next one */
};

/* One critical section, written by its worker (and by the parent while the worker is stopped). */
struct tt_section {
    uint32_t key;    /* index into the key list */
    uint32_t worker; /* worker slot; its worker id is "w<slot>" */
    uint64_t token;
    int64_t acq_ns;      /* just before tl_acquire() */
    int64_t enter_ns;    /* just after tl_acquire() returned TL_OK */
    int64_t exit_ns;     /* just before tl_release(); 0 if the worker never got there */
    int64_t learned_ns;  /* when tl_lock_is_lost() first said true; 0: never */
    int64_t lost_ns;     /* when the lost callback fired, by the end of the release; 0: never */
    int64_t released_ns; /* just after tl_release() said TL_OK (workers' sections); 0: not */
    uint8_t end;         /* enum tt_end */
    uint8_t strategy;    /* tl_strategy of the acquire */
    bool took_stale;     /* the acquire took a stale lock (the manager's stale_locks_claimed) */
    bool took_forced;
    bool stopped;   /* the scenario SIGSTOPped the worker inside this section */
    bool overran;   /* the section lasted longer than the lock timeout (the worker polled) */
    bool proxied;   /* partition: its worker reaches the store through the proxy */
    bool long_hold; /* partition: held until the loss (the parent was about to freeze) */
    uint16_t release_errors;
    /* modes: how it was held (TL_EXCLUSIVE or TL_SHARED), the semaphore's slots (0: none), and
     * whether tl_upgrade() granted it (the shared section before it ended TT_END_UPGRADED). */
    uint8_t mode;
    bool upgraded;
    bool downgraded; /* tl_downgrade() granted it (the section before ended TT_END_DOWNGRADED) */
    uint32_t slots;
};

/* One write to the fenced resource, appended under the resource's mutex. */
struct tt_write {
    uint32_t section;
    uint32_t key;
    uint64_t token;
    uint64_t seq;  /* global order of writes */
    int64_t at_ns; /* taken under the mutex */
    bool accepted;
    uint8_t phase; /* enum tt_phase */
};

enum tt_phase { TT_PHASE_ENTRY = 0, TT_PHASE_MIDDLE, TT_PHASE_EXIT, TT_PHASE_LATE };

/* How an acquire call of the line scenario ended. */
enum tt_outcome {
    TT_OUT_NONE = 0, /* never returned: its worker was killed (or crashed) during it */
    TT_OUT_GRANTED,  /* TL_OK */
    TT_OUT_GAVE_UP,  /* TL_EBUSY: its patience (deadline) ran out */
    TT_OUT_ERROR     /* any other status */
};

/*
 * One acquire call of the line scenario, written by its worker as it goes. The claim, leave
 * and wait_turn calls the core makes on the worker's store are recorded by a wrapper around the
 * store's ops (worker.c), bracketed by CLOCK_MONOTONIC readings: whatever the store does in a
 * call happens between its send and its return.
 */
struct tt_attempt {
    uint32_t key;
    uint32_t worker;
    int32_t priority;
    uint8_t strategy;
    uint8_t outcome;     /* enum tt_outcome */
    uint8_t status;      /* what tl_acquire() returned */
    bool lined;          /* its claims carried a waiter id (the core queues it) */
    bool queued;         /* its first claim was busy: it joined the line then */
    bool disturbed;      /* the scenario stopped or killed its worker during the call */
    bool store_failed;   /* a claim or leave answered an error (its place in line is unknown) */
    bool left;           /* it sent a leave (gave up) */
    bool leave_failed;   /* ... which answered an error */
    bool woken;          /* the last wait_turn said woken (cleared by the next claim) */
    int64_t start_ns;    /* just before tl_acquire() */
    int64_t end_ns;      /* just after it returned; 0: never */
    int64_t patience_ns; /* its deadline_ms */
    int64_t first_send_ns, first_ret_ns; /* its first claim */
    int64_t last_send_ns, last_ret_ns;   /* its latest claim */
    /* The longest span from one claim's send to the return of the next claim (or of the leave,
     * or of tl_acquire()): its place in line can have lapsed only if this reached the waiter
     * timeout, since every claim refreshes it. */
    int64_t max_gap_ns;
    int64_t leave_send_ns, leave_ret_ns;
    uint64_t token;   /* granted: the lock's token */
    uint32_t section; /* granted: its section */
    uint32_t claims;
    uint32_t wakeups;       /* wait_turn calls that said woken */
    uint32_t wakeups_spent; /* ... after which the next claim was busy all the same */
    uint32_t max_ahead;     /* the most waiters a busy claim said were ahead of it */
    uint32_t max_waiting;   /* the longest line a busy claim reported */
};

enum tt_worker_state { TT_IDLE = 0, TT_ACQUIRING, TT_IN_SECTION, TT_RELEASING, TT_DONE };

/* Counters of one worker, summed into the report. */
struct tt_counts {
    uint64_t cycles;   /* acquire attempts */
    uint64_t sections; /* acquires that succeeded */
    uint64_t acquire_errors[TT_STATUS_MAX];
    uint64_t release_errors[TT_STATUS_MAX];
    uint64_t errors_without_message; /* a failed call with an empty tl_errmsg(): a defect */
    uint64_t conflicts, retries, stale_claimed, forced, locks_lost, heartbeats_sent,
        heartbeats_failed;
    uint64_t lost_callbacks;                 /* times the on_lost callback fired */
    uint64_t logged_warnings, logged_errors; /* the library's log, at those levels */
    uint64_t stale_steals_by_skewed; /* clock-skew: steals by a worker with a skewed clock */
    uint64_t probes_refused;         /* clock-skew: single steal attempts that found it live */
    uint64_t queued, wakeups;        /* line: the manager's metrics of the same names */
    /* modes: sections by kind; upgrades tried, granted, refused as deadlocks, given up (busy)
     * or failed otherwise. deadlock: acquires of the ordered workload answered TL_EDEADLK (a
     * false report: no cycle can form there), and its acquires. */
    uint64_t shared_sections, exclusive_sections, slot_sections;
    uint64_t upgrades, upgrades_granted, upgrades_deadlocked, upgrades_busy, upgrades_failed;
    uint64_t downgrades, downgrades_failed;
    uint64_t ordered_acquires, false_deadlocks;
    int64_t connect_ns; /* line: how long tl_connect() took before the cycles */
};

/* A worker slot: one incarnation of a worker (a replacement gets a new slot). */
struct tt_worker {
    atomic_int state;       /* enum tt_worker_state */
    atomic_uint section;    /* the current section while TT_IN_SECTION/TT_RELEASING */
    atomic_int in_resource; /* inside the fenced resource's mutex */
    atomic_int long_hold;   /* partition: in a section held until the loss */
    /* line: the worker's acquire call (its index in the attempt log) is in the key's line (a
     * claim of it was busy), and whether it is inside a claim or a leave (a store write). */
    atomic_int in_line;
    atomic_int in_claim;
    atomic_uint attempt;
    atomic_ullong cycles_done;
    pid_t pid;
    uint32_t cycles; /* cycles to run */
    int64_t skew_ms; /* wall-clock skew injected into this worker's manager */
    uint8_t strategy;
    bool replacement; /* started to replace a killed worker */
    struct tt_counts n;
    char first_error[TT_MSG_SIZE]; /* the first error message this worker saw */
};

enum tt_fault_kind {
    TT_FAULT_KILL = 1,
    TT_FAULT_STOP,
    TT_FAULT_RESTART,
    TT_FAULT_GITHUB,      /* one knob of the GitHub test server; detail names it */
    TT_FAULT_PARTITION,   /* the proxy frozen from start_ns to end_ns */
    TT_FAULT_KILL_WAITER, /* line: a worker SIGKILLed while in line (attempt names its call) */
    TT_FAULT_STOP_WAITER, /* line: a worker SIGSTOPped while in line, from start_ns to end_ns */
    TT_FAULT_LEADER_KILL, /* leader-kill: the etcd leader SIGKILLed (start_ns), back (end_ns) */
    TT_FAULT_STOP_MEMBER, /* leader-kill: an etcd follower SIGSTOPped from start_ns to end_ns */
};

/*
 * deadlock: one round of a group of 2 or 3 workers that make a cycle on purpose: member i takes
 * key i of the group's keys, all wait until each holds its key, then member i asks for key
 * i + 1 (mod size). Written by the members.
 */
#define TT_MAX_CYCLES 4096
#define TT_CYCLE_MAX  3
struct tt_cycle {
    uint32_t size; /* 2 or 3; 0: unused */
    uint32_t group, round;
    uint32_t worker[TT_CYCLE_MAX]; /* member slots */
    atomic_int holding;            /* members that got their first key */
    atomic_int failed;             /* a member could not get its first key: no cycle */
    atomic_int waiting;            /* members that called their second acquire */
    int64_t call_ns[TT_CYCLE_MAX]; /* just before the second acquire; 0: not called */
    int64_t ret_ns[TT_CYCLE_MAX];  /* just after it returned */
    uint8_t status[TT_CYCLE_MAX];  /* what it returned */
    bool returned[TT_CYCLE_MAX];
};

/* deadlock: a counting barrier of one group (members pass barrier k once k * size arrived). */
struct tt_group {
    atomic_uint arrived;
};

struct tt_fault {
    uint8_t kind;     /* enum tt_fault_kind */
    bool bit;         /* known to have taken effect (see docs/reliability.md) */
    uint32_t worker;  /* kill/stop: the victim's slot */
    uint32_t section; /* kill/stop: the victim's section */
    uint32_t attempt; /* line, a waiter's kill/stop: the victim's acquire call */
    int64_t start_ns; /* when it was injected */
    int64_t end_ns;   /* stop: SIGCONT; restart: server back */
    char detail[48];  /* github: the knob */
};

/* The fenced resource of one key. An exclusive holder writes: accepted with a token at least
 * as high as any seen. A shared holder reads (modes): accepted with a token at least as high as
 * any exclusive holder's write, since readers beside each other may come in any token order. */
struct tt_resource {
    uint64_t max_token;
    uint64_t max_exclusive;
    uint64_t accepted;
    uint64_t rejected;
};

/* The shared file mapping: header, then the section and write arrays. */
struct tt_shared {
    uint64_t magic;
    pthread_mutex_t mu; /* the fenced resource: process-shared, robust */
    uint64_t seq;
    uint32_t nkeys;
    struct tt_resource res[TT_MAX_KEYS];
    atomic_uint nsections;
    uint32_t max_sections;
    uint32_t nwrites; /* under mu */
    uint32_t max_writes;
    atomic_int log_full; /* a section or write did not fit: the run cannot prove anything */
    /* Set by the parent once it has injected every fault (or given up): the workers run their
     * cycles, and keep going until then, and then a tail of cycles more. */
    atomic_int faults_done;
    /* Set by a worker that got a lock in a cycle begun after faults_done: the system recovered.
     * The workers' tail goes on until then (bounded), not for a fixed count of cycles. */
    atomic_int recovered;
    /* Partition: set by the parent when it is about to freeze the proxy; a worker that goes
     * through the proxy and enters a section meanwhile holds it until the loss. */
    atomic_int partition_armed;
    uint32_t nworkers; /* slots in use (parent only) */
    struct tt_worker workers[TT_MAX_WORKERS];
    uint32_t nfaults; /* parent only */
    struct tt_fault faults[TT_MAX_FAULTS];
    struct tt_cycle cycles[TT_MAX_CYCLES]; /* deadlock: group g's round r at g * rounds + r */
    struct tt_group groups[TT_MAX_WORKERS];
    atomic_uint nattempts; /* line: acquire calls recorded */
    uint32_t max_attempts;
    size_t sections_off; /* byte offsets of the arrays from the start of the mapping */
    size_t writes_off;
    size_t attempts_off;
    size_t size;
};

/* shared.c */
struct tt_shared *tt_shared_create(const char *path, uint32_t nkeys, uint32_t max_sections,
                                   uint32_t max_writes, uint32_t max_attempts);
void tt_shared_destroy(struct tt_shared *sh);
struct tt_section *tt_sections(struct tt_shared *sh);
struct tt_write *tt_writes(struct tt_shared *sh);
struct tt_attempt *tt_attempts(struct tt_shared *sh);
/* A new zeroed acquire-call record (line), or NULL (and log_full set) when the log is full. */
struct tt_attempt *tt_attempt_new(struct tt_shared *sh, uint32_t *id);
/* A new zeroed section record, or NULL (and log_full set) when the log is full. */
struct tt_section *tt_section_new(struct tt_shared *sh, uint32_t *id);
/* Writes to the fenced resource of the section's key with its token. Returns whether the write
 * was accepted. `slot` marks the worker as inside the resource's mutex meanwhile. */
bool tt_resource_write(struct tt_shared *sh, struct tt_worker *slot, uint32_t section_id,
                       enum tt_phase phase);
int64_t tt_now_ns(void);
void tt_sleep_ns(int64_t ns);

/* ---- checker.c: proofs over the records ---- */

/* The audit trail of one key, from tl_history(), or none. */
struct tt_history {
    struct tl_event **ev;
    size_t n;
    bool complete; /* the trail reaches back to the key's first section */
};

/* A time the proxy was frozen (partition). */
struct tt_freeze {
    int64_t start_ns; /* before the freeze took effect */
    int64_t end_ns;   /* after the thaw took effect */
};

struct tt_log {
    uint32_t nkeys;
    const struct tt_section *sec;
    size_t nsec;
    const struct tt_write *wr;
    size_t nwr;
    uint32_t lock_timeout_ms;
    /* Slack for the store's clock against CLOCK_MONOTONIC when judging that a steal came after
     * the lock timeout (clock granularity: GitHub timestamps have whole seconds). */
    uint32_t steal_slack_ms;
    const struct tt_history *history; /* nkeys entries, or NULL */
    /* Worker id of a slot, for comparing with the audit trail. */
    void (*worker_name)(uint32_t slot, char *buf, size_t size);
    const struct tt_freeze *freezes; /* partition: the freezes of the proxy, or NULL */
    size_t nfreezes;
};

struct tt_verdict {
    /* Proof failures: any of these non-zero fails the run. */
    uint64_t overlaps;              /* two sections overlapped without a lost lock to explain it */
    uint64_t token_regressions;     /* a later acquire got a token not above an earlier one */
    uint64_t duplicate_tokens;      /* two sections of one key with one token */
    uint64_t stale_writes_accepted; /* a lost holder's write accepted after the thief's write */
    uint64_t valid_writes_rejected; /* a holder that never lost its lock was fenced off */
    uint64_t resource_errors;       /* the fenced resource broke its own rule */
    uint64_t unexplained_takeovers; /* a lock taken from its holder without a steal or force */
    uint64_t premature_steals;      /* a steal sooner than the lock timeout after the claim */
    uint64_t forbidden_steals;      /* a steal by a worker whose strategy does not steal */
    uint64_t unended;               /* sections whose worker vanished without ending them */
    uint64_t history_mismatches;    /* the audit trail disagrees with the sections */
    uint64_t partition_violations;  /* a cut-off holder still inside when the next one entered */
    uint64_t semaphore_overflows;   /* more holders inside a semaphore key than its slots */
    /* Figures (not failures). */
    uint64_t sections, writes, writes_rejected;
    uint64_t stale_writes_rejected; /* writes of lost holders rejected by the fenced resource */
    uint64_t allowed_overlaps;      /* a lost holder still inside when the next holder entered */
    uint64_t steals, forced, lost, unsure, killed, released;
    /* modes: sections held shared (slots of semaphores among them), shared sections inside
     * together (allowed), upgrades (shared sections that ended TT_END_UPGRADED), and the most
     * holders seen inside one semaphore key at once. */
    uint64_t shared, slot_holds, shared_overlaps, upgraded, downgraded;
    uint32_t max_slots_inside;
    uint64_t orphan_steals;      /* steals of a lock no recorded section held (a claim whose
                                    acquire reported an error, yet was written) */
    uint64_t history_events;     /* events cross-checked */
    uint64_t history_unrecorded; /* acquisitions in the audit trail with no section */
    /* Releases answered "not owner" although the audit trail shows that they went through (a
     * release retried after a lost answer): the holder was wrongly told its lock was lost. A
     * defect of the store, not of mutual exclusion; reported, not failed. */
    uint64_t misreported_lost;
    int64_t max_recovery_ms; /* longest time from a killed holder's claim to its thief */
    /* Partition: sections of workers behind the proxy that overlapped a freeze (cut off); of
     * those, the ones whose lock was taken (ended lost or unsure: partitioned holders), and the
     * ones released after the thaw although the loss had been declared (nobody took them). For
     * partitioned holders with a next holder, the margin from the victim's exit to the next
     * holder's entry: the smallest and the median. */
    uint64_t cut_off, partitioned_holders, partition_released, partition_measured;
    int64_t partition_margin_min_ns, partition_margin_median_ns;
    uint64_t nviolated;
    char violated[TT_MAX_VIOLATED][TT_MSG_SIZE];
};

/* Runs every proof; returns the number of proof failures (0: all hold). Sections older than
 * the oldest acquisition in a key's audit trail are not cross-checked against it. */
uint64_t tt_check(const struct tt_log *log, struct tt_verdict *v);

/* ---- checker.c: the line's proofs ---- */

struct tt_line_log {
    const struct tt_attempt *att;
    size_t n;
    uint32_t nkeys;
    /* A waiter is dead once its store has not heard from it for this long (the core's waiter
     * timeout), less `liveness_slack_ms` for the store clock's granularity against ours. */
    uint32_t waiter_timeout_ms;
    uint32_t liveness_slack_ms;
    /* How far past its patience an acquire call may return (a leave, the scheduler). */
    uint32_t overrun_ms;
    /* The sections of the run, for the stalls (a figure): a key free after a release while a
     * waiter was in line, and no claim won it for longer than stall_ms. */
    const struct tt_section *sec;
    size_t nsec;
    uint32_t stall_ms;
};

struct tt_line_verdict {
    /* Proof failures. */
    uint64_t early_give_ups;   /* TL_EBUSY before its patience ran out */
    uint64_t overruns;         /* returned later than its patience plus overrun_ms */
    uint64_t order_violations; /* granted ahead of a live waiter it joined behind */
    /* Figures. */
    uint64_t attempts, lined, queued, granted, gave_up, errors, never_ended;
    uint64_t disturbed;  /* stopped or killed during the call: left out of both proofs */
    uint64_t lapsed;     /* a gap between its claims could have let its place go dead */
    uint64_t eligible;   /* calls that could be the earlier waiter of the order proof */
    uint64_t pairs;      /* (earlier waiter, later arrival) pairs the order proof judged */
    uint64_t fifo_pairs; /* ... of which with equal priorities */
    uint64_t overtakes;  /* a later arrival of higher priority granted before the earlier */
    uint64_t wakeups, wakeups_spent;
    uint64_t leave_failed;
    uint32_t max_line;
    int64_t max_overrun_ns; /* the latest a call returned past its patience */
    /* Stalls: a key released while a waiter was in line, and then no claim that won it sent
     * for more than stall_ms while one still waited. Explained when a waiter of the key that
     * was stopped, killed, lapsed or failed to leave was in line then (a dead place at the
     * head holds the line up until it expires); else unexplained. Figures, not failures: the
     * head may simply not have been scheduled. */
    uint64_t stalls, stalls_unexplained;
    uint64_t stalls_failed_leave; /* ... with a waiter in line whose leave had failed */
    int64_t max_stall_ns, max_stall_unexplained_ns;
    uint64_t nviolated;
    char violated[TT_MAX_VIOLATED][TT_MSG_SIZE];
};

/*
 * The line's proofs over the acquire calls (see checker.c): no waiter gives up before its
 * patience or overruns it by more than a bound, and grants follow priority then arrival among
 * waiters that stayed live. Returns the number of failures.
 */
uint64_t tt_check_line(const struct tt_line_log *log, struct tt_line_verdict *v);

/* ---- the run (torture.c, worker.c) ---- */

enum tt_scenario {
    TT_CLEAN = 0,
    TT_SIGKILL,
    TT_SIGSTOP,
    TT_RESTART,
    TT_GITHUB_FAULTS,
    TT_CLOCK_SKEW,
    TT_PARTITION,
    TT_LINE,
    TT_LEADER_KILL, /* etcd: the cluster's leader SIGKILLed and restarted, a follower stopped */
    TT_DEADLOCK,    /* cycles of waits made on purpose, and an ordered workload that has none */
};

struct tt_config {
    const char *store; /* store URL */
    enum tt_scenario scenario;
    uint32_t workers, cycles, keys;
    uint32_t lock_timeout_ms, heartbeat_ms;
    uint32_t hold_ms;     /* longest stay inside a section (uniform 0..hold_ms) */
    uint32_t deadline_ms; /* per acquire */
    uint32_t backoff_min_ms, backoff_max_ms;
    uint32_t faults;            /* faults to inject */
    uint32_t fault_interval_ms; /* mean time between faults */
    uint32_t stop_ms;           /* sigstop: how long a holder stays stopped */
    int64_t skew_ms;            /* clock-skew: how far the skewed clocks are off */
    uint32_t freeze_ms;         /* partition: how long the proxy stays frozen */
    uint32_t steal_slack_ms;
    uint32_t pause_ms; /* think time before each cycle */
    /* line: priorities are drawn from -max_priority..max_priority (GitHub: 0 only); patience
     * (deadline) per call from patience_min_ms..patience_max_ms; a call may return at most
     * overrun_ms past it. */
    int32_t max_priority;
    uint32_t patience_min_ms, patience_max_ms;
    uint32_t overrun_ms;
    uint64_t seed;
    bool threads; /* workers are threads of one process (memory:) */
    bool verbose;
    bool no_line; /* the workers' managers take no place in line (tl_options.no_line): on
                     GitHub every claim then hangs on its manager's session */
    /* modes (--modes): each section is, at random, a shared hold, an exclusive one, or a shared
     * hold that upgrades (when the store can: `upgrades`); the last key of every three is a
     * semaphore of `slots` (when there are at least three keys). */
    bool modes;
    bool upgrades;
    uint32_t slots;
    /* deadlock: the groups (pairs, and `triples` groups of three), their rounds (cycles), the
     * keys of the ordered workload (after the groups' keys) and its cycles per round. */
    uint32_t triples, groups, group_keys, ordered_cycles;
};

/* What the store of a URL has (store contract version 5), read from an open manager. */
struct tt_features {
    bool modes, deadlocks, convert;
};
/* false: the store could not be opened (*f is then all false). */
bool tt_store_features(const char *url, struct tt_features *f);
/* deadlock: the group of a worker slot (UINT32_MAX: none, it runs the ordered workload only),
 * and its index in the group; the group's first slot and size. */
uint32_t tt_group_of(const struct tt_config *c, uint32_t slot, uint32_t *index, uint32_t *first,
                     uint32_t *size);

struct tt_run {
    struct tt_config cfg;
    struct tt_shared *sh;
    char keys[TT_MAX_KEYS][64];
    char proxied_url[1024]; /* partition: the store through the proxy */
};

/* line: makes the workers' managers record their claims, leaves and waits on the store of
 * `url` (call before starting them); false if that store has no line. */
enum tt_sabotage {
    TT_SABOTAGE_NONE = 0,
    TT_SABOTAGE_INVERT_PRIORITY, /* claims carry the opposite of the recorded priority */
    TT_SABOTAGE_LOSE_WAKEUPS,    /* wake-ups are hidden from the core */
};
bool tt_line_wrap_store(const char *url, enum tt_sabotage sabotage);
const struct tl_store_ops *tt_line_store_ops(void);

/* Runs the cycles of worker slot `slot` (a forked process or a thread). */
void tt_worker_run(const struct tt_run *run, uint32_t slot);
void tt_worker_name(uint32_t slot, char *buf, size_t size);
/* Partition: whether the worker of `slot` reaches the store through the proxy (odd slots). */
bool tt_slot_proxied(const struct tt_run *run, uint32_t slot);
const char *tt_status_name(int st);

/* github.c: a private GitHub test server, and its admin API at `base` ("http://127.0.0.1:PORT").
 * tt_github_start() spawns one with `issues` issues, sets GH_TOKEN, and writes the store URL and
 * the admin base; -1 if it cannot (or this build has no server helper). */
int tt_github_start(uint32_t issues, char *url, size_t url_size, char *admin, size_t admin_size);
void tt_github_stop(void);
/* Sends one request; returns the HTTP status (-1: no answer) and, if `response` is not NULL,
 * the body (the caller frees it). */
int tt_gh_request(const char *base, const char *method, const char *path, const char *body,
                  char **response);
long tt_gh_stat_total(const char *base);                 /* requests served so far; -1: unknown */
int tt_gh_remaining(const char *base, const char *knob); /* a counted knob's count; -1: unknown */

#endif /* TT_TORTURE_H */
