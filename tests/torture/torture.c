/*
 * torture.c -- tl-torture: runs N workers against a store, injects a scenario's faults, and
 * proves from the records that no two holders of a key were inside at once (docs/reliability.md).
 *
 *   tl-torture --store URL --workers N --cycles M --keys K --lock-timeout DUR --heartbeat DUR
 *              --scenario NAME [--seed S] [--report FILE] [more options: --help]
 *
 * Prints one line of JSON (the summary) on stdout and exits 0 when every proof holds, 1 when one
 * fails (the failures are listed on stderr), 2 on a usage error, 3 when the run could not be set
 * up, and 77 when the scenario does not apply to this store or the store is not built in.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "store.h"
#include "tl_proxy.h"
#include "torture.h"

#define EXIT_PROOF_FAILED 1
#define EXIT_USAGE        2
#define EXIT_SETUP        3
#define EXIT_SKIP         77

static const char *const scenario_names[] = {
    [TT_CLEAN] = "clean",
    [TT_SIGKILL] = "sigkill",
    [TT_SIGSTOP] = "sigstop",
    [TT_RESTART] = "restart",
    [TT_GITHUB_FAULTS] = "github-faults",
    [TT_CLOCK_SKEW] = "clock-skew",
    [TT_PARTITION] = "partition",
    [TT_LINE] = "line",
    [TT_LEADER_KILL] = "leader-kill",
    [TT_DEADLOCK] = "deadlock",
};

/* leader-kill: every worker must acquire again within this long of a member's kill or stop. */
#define RESUME_BOUND_MS    15000
#define MAX_CLUSTER_FAULTS 64

/* Everything the parent keeps about a run. */
struct parent {
    struct tt_run run;
    char dir[512];  /* temporary directory: the shared file, a default SQLite file */
    char url[1024]; /* the store URL after defaults */
    char scheme[32];
    const char *restart_cmd;
    const char *github_admin; /* http://127.0.0.1:PORT of the GitHub test server */
    char github_admin_buf[64];
    bool github_spawned;
    struct tl_proxy proxy; /* partition: between the odd workers and the store */
    bool run_anyway;       /* run a scenario even where it does not apply (to see what happens) */
    bool sessions;         /* GitHub: sessions=on */
    bool pause_given;
    const char *report;
    double scale;
    pid_t pids[TT_MAX_WORKERS];
    bool alive[TT_MAX_WORKERS];
    bool killed[TT_MAX_WORKERS];
    uint32_t crashed;
    uint32_t faults_missed; /* stops that found their victim outside a section: undone */
    uint32_t restarts_failed;
    uint64_t rng;
    int64_t start_ns;
    int64_t last_fault_end_ns;
    uint64_t extra_failures;
    char extra[8][TT_MSG_SIZE];
    uint32_t nextra;
    uint32_t keys_left_held;
    bool history_kept;
    bool github;
    bool line_wrapped;            /* line: the workers' store ops record their calls */
    enum tt_sabotage sabotage;    /* line: --sabotage */
    struct tt_line_verdict line;  /* line: the line's proofs */
    uint64_t dead_waiters_passed; /* line: stops in line during which the key changed hands */
    /* leader-kill: per leader kill and per follower stop, the time from the signal to the first
     * acquire of any worker and to the last worker's first acquire (ms; -1: not within the
     * poll's limit). */
    int64_t kill_first_ms[MAX_CLUSTER_FAULTS], kill_all_ms[MAX_CLUSTER_FAULTS];
    int64_t stop_first_ms[MAX_CLUSTER_FAULTS], stop_all_ms[MAX_CLUSTER_FAULTS];
    uint32_t nkills, nstops;
    struct tt_features features; /* modes, deadlock: what the store has */
    bool triples_given, slots_given;
    /* deadlock: cycles made on purpose (every member held its first key and asked for the
     * next), reported (exactly one member got TL_EDEADLK within the bound), missed (none got
     * it), reported more than once, reported late (past a wait interval plus the overrun
     * slack), disturbed (a member's second acquire failed otherwise); the longest time from
     * the last member's call to the report; false reports in the ordered workload. */
    uint64_t cycles_created, cycles_reported, cycles_missed, cycles_overreported, cycles_late,
        cycles_disturbed, false_deadlocks;
    int64_t max_detect_ns;
    uint32_t wait_interval_ms;
};

static void fail_extra(struct parent *p, const char *fmt, ...) TL_PRINTF(2, 3);

static void fail_extra(struct parent *p, const char *fmt, ...)
{
    if (p->nextra < sizeof(p->extra) / sizeof(p->extra[0])) {
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(p->extra[p->nextra++], TT_MSG_SIZE, fmt, ap);
        va_end(ap);
    }
    p->extra_failures++;
}

static uint64_t prand(struct parent *p)
{
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * 0x2545f4914f6cdd1dull;
}

static void usage(FILE *f)
{
    (void)fprintf(
        f,
        "usage: tl-torture --store URL --scenario NAME [options]\n"
        "  --store URL          sqlite:PATH (sqlite: = a temporary file), memory:, redis://...,\n"
        "                       postgres://..., github: (= a private GitHub test server)\n"
        "  --scenario NAME      clean | sigkill | sigstop | restart | github-faults | clock-skew\n"
        "                       | partition | line | leader-kill (etcd) | deadlock\n"
        "  --modes              each section is, at random, shared, exclusive, shared then\n"
        "                       upgraded, or exclusive then downgraded; every third key is a\n"
        "                       semaphore of --slots (skipped, 77, on a store without\n"
        "                       shared holders)\n"
        "  --slots N            modes: the semaphores' slots [2]\n"
        "  --triples N          deadlock: groups of three (3-cycles); the other workers pair\n"
        "                       up [1 with 5 workers or more]; --keys is then the ordered\n"
        "                       workload's keys, and --cycles the rounds\n"
        "  --workers N          worker processes (threads for memory:) [8]\n"
        "  --cycles M           acquire attempts per worker [200]\n"
        "  --keys K             keys they contend for [3]\n"
        "  --lock-timeout DUR   lock timeout [per scenario]\n"
        "  --heartbeat DUR      heartbeat interval [lock timeout / 4]\n"
        "  --hold DUR           longest stay inside a section [2ms; clock-skew: 50ms]\n"
        "  --faults N           faults to inject [per scenario]\n"
        "  --fault-interval DUR mean time between faults [per scenario]\n"
        "  --stop DUR           sigstop: how long a holder stays stopped\n"
        "                       [lock timeout + the larger of 1s and the lock timeout]\n"
        "  --skew DUR           clock-skew: how far the skewed clocks are off [10m]\n"
        "  --freeze DUR         partition: how long the proxy stays frozen [2.5 x lock timeout]\n"
        "  --priorities N       line: priorities drawn from -N..N [2; GitHub: 0]\n"
        "  --patience MIN,MAX   line: each acquire's deadline, drawn from MIN..MAX\n"
        "                       [the hold (at least 10ms), 3 x lock timeout]\n"
        "  --overrun DUR        line: how far past its deadline an acquire may return [3s]\n"
        "  --sabotage WHAT      line: show that the proofs bite: invert-priority (claims carry\n"
        "                       the opposite priority) or lose-wakeups (hidden from the core)\n"
        "  --restart-cmd CMD    restart: shell command that restarts the store's server;\n"
        "                       leader-kill: `CMD ACTION [MEMBER]` runs an action of\n"
        "                       tests/harness/etcd-cluster.sh on the cluster (servers.sh fault)\n"
        "  --github-admin URL   github-faults: the GitHub test server, http://127.0.0.1:PORT\n"
        "  --backoff MIN,MAX    acquire backoff [2ms,64ms; GitHub: 20ms,500ms]\n"
        "  --pause DUR          think time before each cycle [0; GitHub: 100ms]\n"
        "  --seed S             random seed [time]\n"
        "  --scale X            multiply the cycles [1]; $TL_TORTURE_SCALE multiplies cycles\n"
        "                       and faults\n"
        "  --report FILE        also write the JSON summary to FILE\n"
        "  --has-store SCHEME   exit 0 if the store is built in, else 77\n"
        "  --run-anyway         run clock-skew even on a store that judges by the machine's\n"
        "                       clock, or deadlock on one without the wait-for graph (it is\n"
        "                       then expected to fail: a demonstration)\n"
        "  -v, --verbose        log what the workers see\n"
        "      --no-line        the workers wait in no line: they poll (GitHub with\n"
        "                       --sessions: every claim then hangs on its manager's session)\n"
        "      --sessions       GitHub: the store URL gets sessions=on\n");
}

static bool parse_ms(const char *arg, uint32_t *out)
{
    return tl_parse_duration(arg, out) == TL_OK;
}

static bool parse_u32(const char *arg, uint32_t *out)
{
    uint64_t v;

    if (!tl__parse_u64(arg, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static int scenario_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof(scenario_names) / sizeof(scenario_names[0]); i++) {
        if (strcmp(name, scenario_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

static void scheme_of(const char *url, char *out, size_t size)
{
    size_t n = strcspn(url, ":");

    if (n >= size)
        n = size - 1;
    memcpy(out, url, n);
    out[n] = '\0';
    if (strcmp(out, "postgresql") == 0)
        (void)snprintf(out, size, "postgres");
}

/* Defaults that depend on the scenario, for options left out (0). */
static void apply_defaults(struct tt_config *c, bool timeout_given)
{
    if (!timeout_given) {
        switch (c->scenario) {
        case TT_CLEAN: c->lock_timeout_ms = 30000; break;
        case TT_CLOCK_SKEW: c->lock_timeout_ms = 60000; break;
        case TT_RESTART:
        case TT_LEADER_KILL: c->lock_timeout_ms = 3000; break;
        case TT_GITHUB_FAULTS: c->lock_timeout_ms = 8000; break;
        case TT_PARTITION: c->lock_timeout_ms = 4000; break;
        default: c->lock_timeout_ms = 1000; break;
        }
    }
    if (c->heartbeat_ms == 0)
        c->heartbeat_ms = c->lock_timeout_ms / 4 ? c->lock_timeout_ms / 4 : 1;
    if (c->scenario == TT_CLOCK_SKEW && c->heartbeat_ms > 2000)
        c->heartbeat_ms = 2000;
    if (c->deadline_ms == 0)
        c->deadline_ms = 4 * c->lock_timeout_ms + 30000;
    if (c->stop_ms == 0)
        c->stop_ms =
            c->lock_timeout_ms + (c->lock_timeout_ms / 2 > 1000 ? c->lock_timeout_ms / 2 : 1000);
    if (c->skew_ms == 0)
        c->skew_ms = 10 * 60 * 1000;
    if (c->scenario != TT_PARTITION)
        c->freeze_ms = 0;
    else if (c->freeze_ms == 0)
        c->freeze_ms = c->lock_timeout_ms * 5 / 2;
    if (c->fault_interval_ms == 0) {
        switch (c->scenario) {
        case TT_RESTART:
        case TT_LEADER_KILL: c->fault_interval_ms = 3000; break;
        case TT_GITHUB_FAULTS: c->fault_interval_ms = 1500; break;
        case TT_PARTITION: c->fault_interval_ms = c->lock_timeout_ms; break;
        default: c->fault_interval_ms = 500; break;
        }
    }
    if (c->scenario == TT_CLEAN || c->scenario == TT_CLOCK_SKEW || c->scenario == TT_DEADLOCK)
        c->faults = 0;
    if (c->slots == 0)
        c->slots = 2;
    /* Patience from about one hold (many give up) to three lock timeouts (outlasting a dead
     * holder, or a waiter stopped ahead). */
    if (c->patience_max_ms == 0) {
        c->patience_min_ms = c->hold_ms > 10 ? c->hold_ms : 10;
        c->patience_max_ms = 3 * c->lock_timeout_ms;
    }
    if (c->overrun_ms == 0)
        c->overrun_ms = 3000;
    if (c->faults == UINT32_MAX) {
        switch (c->scenario) {
        case TT_SIGKILL:
        case TT_SIGSTOP:
        case TT_LINE: c->faults = 4; break;
        case TT_RESTART:
        case TT_LEADER_KILL:
        case TT_PARTITION: c->faults = 2; break;
        case TT_GITHUB_FAULTS: c->faults = 6; break;
        default: c->faults = 0; break;
        }
    }
}

/* ---- workers ---- */

static void catch_fatal_signals(const char *dir, bool on);

static void start_worker(struct parent *p, uint32_t slot)
{
    pid_t pid = fork();

    if (pid < 0) {
        fail_extra(p, "fork: %s", strerror(errno)); /* NOLINT(concurrency-mt-unsafe) */
        return;
    }
    if (pid == 0) {
        catch_fatal_signals(NULL, false); /* the parent cleans up, not a worker */
        tl_proxy_forget(&p->proxy);       /* the proxy ends when the parent closes its input */
#ifdef __linux__
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* no worker outlives a killed harness */
#endif
        tt_worker_run(&p->run, slot);
        _exit(atomic_load(&p->run.sh->workers[slot].state) == TT_DONE ? 0 : 1);
    }
    p->run.sh->workers[slot].pid = pid;
    p->pids[slot] = pid;
    p->alive[slot] = true;
}

static uint32_t new_slot(struct parent *p, uint32_t cycles, int64_t skew_ms, bool replacement)
{
    struct tt_shared *sh = p->run.sh;

    if (sh->nworkers >= TT_MAX_WORKERS - 1) /* the last slot is the sweeper's */
        return UINT32_MAX;

    uint32_t slot = sh->nworkers++;
    sh->workers[slot].cycles = cycles;
    sh->workers[slot].skew_ms = skew_ms;
    sh->workers[slot].replacement = replacement;
    return slot;
}

static void reap(struct parent *p, bool block)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, block ? 0 : WNOHANG);

        if (pid <= 0)
            return;
        for (uint32_t s = 0; s < p->run.sh->nworkers; s++) {
            if (p->pids[s] != pid || !p->alive[s])
                continue;
            p->alive[s] = false;
            if (p->killed[s])
                break;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                p->crashed++;
                fail_extra(p, "worker w%u (pid %d) died: %s %d", s, (int)pid,
                           WIFSIGNALED(status) ? "signal" : "exit status",
                           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            }
            break;
        }
        if (block)
            return;
    }
}

static uint32_t alive_count(const struct parent *p)
{
    uint32_t n = 0;

    for (uint32_t s = 0; s < p->run.sh->nworkers; s++)
        n += p->alive[s];
    return n;
}

/* ---- faults ---- */

static struct tt_fault *new_fault(struct parent *p, enum tt_fault_kind kind)
{
    struct tt_shared *sh = p->run.sh;

    if (sh->nfaults >= TT_MAX_FAULTS)
        return NULL;

    struct tt_fault *f = &sh->faults[sh->nfaults++];
    memset(f, 0, sizeof(*f));
    f->kind = (uint8_t)kind;
    f->start_ns = tt_now_ns();
    return f;
}

/* Sleeps `ns` while reaping workers that end meanwhile. */
static void wait_reaping(struct parent *p, int64_t ns)
{
    int64_t until = tt_now_ns() + ns;

    for (;;) {
        reap(p, false);
        int64_t left = until - tt_now_ns();
        if (left <= 0)
            return;
        tt_sleep_ns(left < 5000000 ? left : 5000000);
    }
}

/*
 * Stops a random worker that is inside a section, and keeps it stopped only if it is still
 * there once stopped (and not inside the fenced resource's mutex): then it is a holder frozen
 * mid-section. Returns its slot, or UINT32_MAX (the worker was resumed; try again later).
 */
static uint32_t freeze_holder(struct parent *p)
{
    struct tt_shared *sh = p->run.sh;
    uint32_t cand[TT_MAX_WORKERS], n = 0;

    for (uint32_t s = 0; s < sh->nworkers; s++) {
        if (p->alive[s] && atomic_load(&sh->workers[s].state) == TT_IN_SECTION)
            cand[n++] = s;
    }
    if (n == 0)
        return UINT32_MAX;

    uint32_t s = cand[prand(p) % n];
    int status;
    if (kill(p->pids[s], SIGSTOP) != 0)
        return UINT32_MAX;
    pid_t r = waitpid(p->pids[s], &status, WUNTRACED);
    if (r == p->pids[s] && !WIFSTOPPED(status)) {
        /* It ended on its own just now. */
        p->alive[s] = false;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            p->crashed++;
            fail_extra(p, "worker w%u died on its own", s);
        }
        return UINT32_MAX;
    }
    if (atomic_load(&sh->workers[s].state) != TT_IN_SECTION ||
        atomic_load(&sh->workers[s].in_resource)) {
        (void)kill(p->pids[s], SIGCONT);
        p->faults_missed++;
        return UINT32_MAX;
    }
    return s;
}

static bool inject_kill(struct parent *p)
{
    struct tt_shared *sh = p->run.sh;
    uint32_t s = freeze_holder(p);

    if (s == UINT32_MAX)
        return false;

    struct tt_worker *w = &sh->workers[s];
    uint32_t sec = atomic_load(&w->section);
    struct tt_fault *f = new_fault(p, TT_FAULT_KILL);
    p->killed[s] = true;
    tt_sections(sh)[sec].end = TT_END_KILLED;
    (void)kill(p->pids[s], SIGKILL);
    (void)waitpid(p->pids[s], NULL, 0);
    p->alive[s] = false;
    if (f != NULL) {
        f->worker = s;
        f->section = sec;
        f->bit = true;
        f->end_ns = tt_now_ns();
    }

    /* A replacement runs the cycles the victim had left. */
    uint64_t done = atomic_load(&w->cycles_done) + 1;
    if (done < w->cycles) {
        uint32_t r = new_slot(p, (uint32_t)(w->cycles - done), w->skew_ms, true);
        if (r != UINT32_MAX)
            start_worker(p, r);
    }
    return true;
}

static bool inject_stop(struct parent *p)
{
    struct tt_shared *sh = p->run.sh;
    uint32_t s = freeze_holder(p);

    if (s == UINT32_MAX)
        return false;

    uint32_t sec = atomic_load(&sh->workers[s].section);
    struct tt_fault *f = new_fault(p, TT_FAULT_STOP);
    tt_sections(sh)[sec].stopped = true;
    wait_reaping(p, (int64_t)p->run.cfg.stop_ms * 1000000);
    (void)kill(p->pids[s], SIGCONT);
    if (f != NULL) {
        f->worker = s;
        f->section = sec;
        f->end_ns = tt_now_ns();
    }
    return true;
}

/*
 * line: stops a random worker that is waiting in a key's line (a claim of its acquire call was
 * busy), and keeps it stopped only if it is still there once stopped and not inside a claim or
 * a leave (a store write: SQLite's write lock, say, would stop everyone). Returns its slot, or
 * UINT32_MAX (resumed; try again later).
 */
static uint32_t freeze_waiter(struct parent *p)
{
    struct tt_shared *sh = p->run.sh;
    uint32_t cand[TT_MAX_WORKERS], n = 0;

    for (uint32_t s = 0; s < sh->nworkers; s++) {
        const struct tt_worker *w = &sh->workers[s];
        if (p->alive[s] && atomic_load(&w->state) == TT_ACQUIRING && atomic_load(&w->in_line) &&
            !atomic_load(&w->in_claim))
            cand[n++] = s;
    }
    if (n == 0)
        return UINT32_MAX;

    uint32_t s = cand[prand(p) % n];
    struct tt_worker *w = &sh->workers[s];
    int status;
    if (kill(p->pids[s], SIGSTOP) != 0)
        return UINT32_MAX;
    pid_t r = waitpid(p->pids[s], &status, WUNTRACED);
    if (r == p->pids[s] && !WIFSTOPPED(status)) {
        p->alive[s] = false;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            p->crashed++;
            fail_extra(p, "worker w%u died on its own", s);
        }
        return UINT32_MAX;
    }
    if (atomic_load(&w->state) != TT_ACQUIRING || !atomic_load(&w->in_line) ||
        atomic_load(&w->in_claim)) {
        (void)kill(p->pids[s], SIGCONT);
        p->faults_missed++;
        return UINT32_MAX;
    }
    return s;
}

/* line: SIGKILLs (kill) or SIGSTOPs for --stop a worker waiting in line. */
static bool inject_waiter(struct parent *p, bool kill_it)
{
    struct tt_shared *sh = p->run.sh;
    uint32_t s = freeze_waiter(p);

    if (s == UINT32_MAX)
        return false;

    struct tt_worker *w = &sh->workers[s];
    uint32_t at = atomic_load(&w->attempt);
    struct tt_fault *f = new_fault(p, kill_it ? TT_FAULT_KILL_WAITER : TT_FAULT_STOP_WAITER);
    tt_attempts(sh)[at].disturbed = true; /* its worker is stopped: no race */
    if (f != NULL) {
        f->worker = s;
        f->attempt = at;
    }
    if (!kill_it) {
        wait_reaping(p, (int64_t)p->run.cfg.stop_ms * 1000000);
        (void)kill(p->pids[s], SIGCONT);
        if (f != NULL)
            f->end_ns = tt_now_ns();
        return true;
    }
    p->killed[s] = true;
    (void)kill(p->pids[s], SIGKILL);
    (void)waitpid(p->pids[s], NULL, 0);
    p->alive[s] = false;
    if (f != NULL) {
        f->bit = true;
        f->end_ns = tt_now_ns();
    }
    uint64_t done = atomic_load(&w->cycles_done) + 1;
    if (done < w->cycles) {
        uint32_t r = new_slot(p, (uint32_t)(w->cycles - done), w->skew_ms, true);
        if (r != UINT32_MAX)
            start_worker(p, r);
    }
    return true;
}

/* line: in turn, a waiter killed, a waiter stopped, a holder killed, a holder stopped. */
static bool inject_line(struct parent *p, uint32_t n)
{
    switch (n % 4) {
    case 0: return inject_waiter(p, true);
    case 1: return inject_waiter(p, false);
    case 2: return inject_kill(p);
    default: return inject_stop(p);
    }
}

static int run_command(const char *cmd)
{
    pid_t pid = fork();

    if (pid < 0)
        return -1;
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }

    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static bool inject_restart(struct parent *p)
{
    struct tt_fault *f = new_fault(p, TT_FAULT_RESTART);
    int rc = run_command(p->restart_cmd);

    if (f != NULL) {
        f->end_ns = tt_now_ns();
        f->bit = rc == 0;
        (void)snprintf(f->detail, sizeof(f->detail), "exit %d", rc);
    }
    if (rc != 0) {
        p->restarts_failed++;
        fail_extra(p, "restart command failed (exit %d): %s", rc, p->restart_cmd);
    }
    p->last_fault_end_ns = tt_now_ns();
    return true;
}

/*
 * leader-kill: runs `RESTART_CMD ACTION [MEMBER]` (an action of tests/harness/etcd-cluster.sh,
 * through servers.sh fault) and returns its exit status, with the first line it printed in
 * `out` (may be NULL).
 */
static int cluster_cmd(const struct parent *p, const char *action, const char *member, char *out,
                       size_t size)
{
    char cmd[2048];

    (void)snprintf(cmd, sizeof(cmd), "%s %s %s", p->restart_cmd, action, member ? member : "");
    FILE *f = popen(cmd, "r"); /* NOLINT(cert-env33-c): the harness's own script */
    if (f == NULL)
        return -1;

    char line[256] = "";
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    while (fgetc(f) != EOF)
        continue;
    int st = pclose(f);
    line[strcspn(line, "\n")] = '\0';
    if (out != NULL)
        (void)snprintf(out, size, "%s", line);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static pid_t member_pid(const struct parent *p, const char *member)
{
    char out[32];
    uint64_t v = 0;

    if (cluster_cmd(p, "pid", member, out, sizeof(out)) != 0 || !tl__parse_u64(out, &v) || v <= 1 ||
        v > INT32_MAX)
        return -1;
    return (pid_t)v;
}

/*
 * After a member's kill or stop at t0: waits (reaping, polling the records every 2 ms, bounded)
 * until every worker still running at t0 with cycles left has entered a section after t0, or
 * has finished. Then *first and *all are the times from t0 to the first such entry of any
 * worker and to the last worker's first one (ms, from the records); *all is -1 if the poll
 * gave up.
 */
static void wait_resumed(struct parent *p, int64_t t0, uint32_t n0, int64_t *first, int64_t *all)
{
    struct tt_shared *sh = p->run.sh;
    const struct tt_section *sec = tt_sections(sh);
    int64_t limit = t0 + (int64_t)4 * RESUME_BOUND_MS * 1000000;
    int64_t entered[TT_MAX_WORKERS];
    bool waited[TT_MAX_WORKERS];
    uint32_t scanned = n0;

    for (uint32_t s = 0; s < sh->nworkers; s++) {
        entered[s] = 0;
        waited[s] = p->alive[s] && atomic_load(&sh->workers[s].state) != TT_DONE;
    }
    *first = -1;
    *all = -1;
    for (;;) {
        uint32_t nsec = atomic_load(&sh->nsections);
        if (nsec > sh->max_sections)
            nsec = sh->max_sections;
        for (; scanned < nsec; scanned++) {
            int64_t e = sec[scanned].enter_ns;
            uint32_t w = sec[scanned].worker;
            if (e == 0) /* allocated, not yet written: look again */
                break;
            if (w < sh->nworkers && e > t0 && (entered[w] == 0 || e < entered[w]))
                entered[w] = e;
        }
        bool every = true;
        for (uint32_t s = 0; s < sh->nworkers; s++) {
            if (waited[s] && entered[s] == 0 && p->alive[s] &&
                atomic_load(&sh->workers[s].state) != TT_DONE)
                every = false;
        }
        if (every || tt_now_ns() > limit)
            break;
        wait_reaping(p, 2000000);
    }
    int64_t lo = INT64_MAX, hi = 0;
    bool missing = false;
    for (uint32_t s = 0; s < sh->nworkers; s++) {
        if (!waited[s])
            continue;
        if (entered[s] == 0) {
            missing = missing || (p->alive[s] && atomic_load(&sh->workers[s].state) != TT_DONE);
            continue;
        }
        lo = entered[s] < lo ? entered[s] : lo;
        hi = entered[s] > hi ? entered[s] : hi;
    }
    if (lo != INT64_MAX)
        *first = (lo - t0) / 1000000;
    if (!missing && hi != 0)
        *all = (hi - t0) / 1000000;
    else if (!missing)
        *all = 0; /* nobody had cycles left */
}

/*
 * leader-kill: SIGKILLs the etcd cluster's leader, measures how soon the workers acquire again,
 * restarts the member on its data, then SIGSTOPs a follower for --stop (measuring the same), and
 * SIGCONTs it. The signals are sent from here, so that the times start at the signal.
 */
static bool inject_leader_kill(struct parent *p)
{
    struct tt_shared *sh = p->run.sh;
    char leader[16], follower[16] = "";
    int64_t first, all;

    if (cluster_cmd(p, "wait-leader", NULL, NULL, 0) != 0 ||
        cluster_cmd(p, "leader", NULL, leader, sizeof(leader)) != 0) {
        fail_extra(p, "leader-kill: the cluster has no leader before the fault");
        return true;
    }
    pid_t pid = member_pid(p, leader);
    if (pid < 0) {
        fail_extra(p, "leader-kill: no PID for the leader %s", leader);
        return true;
    }
    struct tt_fault *f = new_fault(p, TT_FAULT_LEADER_KILL);
    uint32_t n0 = atomic_load(&sh->nsections);
    int64_t t0 = tt_now_ns();
    if (f != NULL) {
        f->start_ns = t0;
        (void)snprintf(f->detail, sizeof(f->detail), "%s", leader);
    }
    (void)kill(pid, SIGKILL);
    if (cluster_cmd(p, "kill-member", leader, NULL, 0) != 0) /* waits until it is gone */
        fail_extra(p, "leader-kill: the leader %s (pid %d) did not die", leader, (int)pid);
    wait_resumed(p, t0, n0, &first, &all);
    if (p->nkills < MAX_CLUSTER_FAULTS) {
        p->kill_first_ms[p->nkills] = first;
        p->kill_all_ms[p->nkills++] = all;
    }
    int rc = cluster_cmd(p, "restart-member", leader, NULL, 0);
    if (f != NULL) {
        f->end_ns = tt_now_ns();
        f->bit = rc == 0;
    }
    if (rc != 0) {
        p->restarts_failed++;
        fail_extra(p, "leader-kill: %s did not come back (exit %d)", leader, rc);
        return true;
    }

    /* A follower, stopped: a different one each time. */
    char now_leader[16];
    if (cluster_cmd(p, "wait-leader", NULL, NULL, 0) != 0 ||
        cluster_cmd(p, "leader", NULL, now_leader, sizeof(now_leader)) != 0) {
        fail_extra(p, "leader-kill: no leader after %s came back", leader);
        return true;
    }
    for (int i = 0, n = 0; i < 3; i++) {
        (void)snprintf(follower, sizeof(follower), "m%d", i + 1);
        if (strcmp(follower, now_leader) != 0 && (uint32_t)n++ == p->nstops % 2)
            break;
    }
    pid = member_pid(p, follower);
    if (pid < 0) {
        fail_extra(p, "leader-kill: no PID for the follower %s", follower);
        return true;
    }
    struct tt_fault *g = new_fault(p, TT_FAULT_STOP_MEMBER);
    n0 = atomic_load(&sh->nsections);
    t0 = tt_now_ns();
    if (g != NULL) {
        g->start_ns = t0;
        (void)snprintf(g->detail, sizeof(g->detail), "%s", follower);
    }
    (void)kill(pid, SIGSTOP);
    wait_resumed(p, t0, n0, &first, &all);
    if (p->nstops < MAX_CLUSTER_FAULTS) {
        p->stop_first_ms[p->nstops] = first;
        p->stop_all_ms[p->nstops++] = all;
    }
    int64_t left = t0 + (int64_t)p->run.cfg.stop_ms * 1000000 - tt_now_ns();
    if (left > 0)
        wait_reaping(p, left);
    (void)kill(pid, SIGCONT);
    if (g != NULL) {
        g->end_ns = tt_now_ns();
        g->bit = true;
    }
    p->last_fault_end_ns = tt_now_ns();
    return true;
}

/* The GitHub test server's counted knobs: one is set per fault, in turn. */
static const struct gh_knob {
    const char *knob; /* the knob, as GET /_admin/faults names it */
    const char *set;  /* the JSON that sets it */
    bool timed;       /* on for a while, then off again */
} gh_knobs[] = {
    {"latency_ms", "{\"latency_ms\":300}", true},
    {"status_5xx", "{\"status_5xx\":3}", false},
    {"post_commit_then_5xx", "{\"post_commit_then_5xx\":2}", false},
    {"drop_connections", "{\"drop_connections\":3}", false},
    {"visibility_lag_reads", "{\"visibility_lag_reads\":2}", true},
    {"secondary_limit", "{\"secondary_limit\":{\"count\":2,\"status\":403,\"retry_after\":1}}",
     false},
    {"primary_exhausted", "{\"primary_exhausted\":{\"count\":1,\"reset_in_s\":2}}", false},
    {"secondary_limit", "{\"secondary_limit\":{\"count\":2,\"status\":429,\"retry_after\":2}}",
     false},
    /* Last: without retry-after, a client must wait a minute (GITHUB-API.md), so a short run
     * (8 faults or fewer) leaves it out. */
    {"secondary_limit", "{\"secondary_limit\":{\"count\":1,\"status\":429}}", false},
};

static struct tt_fault *gh_pending; /* NOLINT: the parent's one pending counted knob */

/* A counted knob has bitten once the server has counted it down to zero. */
static void gh_settle(struct parent *p)
{
    if (gh_pending == NULL)
        return;

    int left = tt_gh_remaining(p->github_admin, gh_pending->detail);
    gh_pending->bit = left == 0;
    gh_pending = NULL;
}

static bool inject_github(struct parent *p, uint32_t n)
{
    const struct gh_knob *k = &gh_knobs[n % (sizeof(gh_knobs) / sizeof(gh_knobs[0]))];

    gh_settle(p);
    struct tt_fault *f = new_fault(p, TT_FAULT_GITHUB);
    if (f == NULL)
        return true;
    (void)snprintf(f->detail, sizeof(f->detail), "%s", k->knob);
    long before = tt_gh_stat_total(p->github_admin);
    int st = tt_gh_request(p->github_admin, "POST", "/_admin/faults", k->set, NULL);
    if (st != 200) {
        fail_extra(p, "GitHub test server: setting %s answered %d", k->knob, st);
        return true;
    }
    if (k->timed) {
        char off[64];

        wait_reaping(p, (int64_t)p->run.cfg.fault_interval_ms * 500000);
        (void)snprintf(off, sizeof(off), "{\"%s\":0}", k->knob);
        (void)tt_gh_request(p->github_admin, "POST", "/_admin/faults", off, NULL);
        long after = tt_gh_stat_total(p->github_admin);
        f->bit = before >= 0 && after > before; /* requests were served under it */
    } else {
        gh_pending = f;
    }
    f->end_ns = tt_now_ns();
    p->last_fault_end_ns = f->end_ns;
    return true;
}

/*
 * Partition: arms the workers behind the proxy (the next one to enter a section holds it until
 * its loss), waits until one of them is inside such a section, then freezes the proxy at a
 * random point of that holder's heartbeat cycle, for --freeze, and thaws it. Returns false while
 * no armed holder is inside yet (the fault loop calls again shortly).
 */
static bool inject_partition(struct parent *p)
{
    struct tt_shared *sh = p->run.sh;
    const struct tt_config *cfg = &p->run.cfg;

    if (!atomic_load(&sh->partition_armed)) {
        atomic_store(&sh->partition_armed, 1);
        return false;
    }

    uint32_t holder = UINT32_MAX;
    for (uint32_t s = 0; s < sh->nworkers && holder == UINT32_MAX; s++) {
        if (p->alive[s] && tt_slot_proxied(&p->run, s) && atomic_load(&sh->workers[s].long_hold))
            holder = s;
    }
    if (holder == UINT32_MAX)
        return false;

    wait_reaping(p, (int64_t)(prand(p) % ((uint64_t)cfg->heartbeat_ms + 1)) * 1000000);
    struct tt_fault *f = new_fault(p, TT_FAULT_PARTITION);
    if (tl_proxy_cmd(&p->proxy, "freeze") != 0)
        fail_extra(p, "the proxy did not freeze: %s", p->proxy.answer);
    atomic_store(&sh->partition_armed, 0);
    if (f != NULL) {
        f->worker = holder;
        f->section = atomic_load(&sh->workers[holder].section);
    }
    wait_reaping(p, (int64_t)cfg->freeze_ms * 1000000);
    if (tl_proxy_cmd(&p->proxy, "thaw") != 0)
        fail_extra(p, "the proxy did not thaw: %s", p->proxy.answer);
    if (f != NULL)
        f->end_ns = tt_now_ns();
    p->last_fault_end_ns = tt_now_ns();
    return true;
}

static bool inject_fault(struct parent *p, uint32_t n)
{
    bool done;

    switch (p->run.cfg.scenario) {
    case TT_SIGKILL: done = inject_kill(p); break;
    case TT_SIGSTOP: done = inject_stop(p); break;
    case TT_RESTART: done = inject_restart(p); break;
    case TT_GITHUB_FAULTS: done = inject_github(p, n); break;
    case TT_PARTITION: done = inject_partition(p); break;
    case TT_LINE: done = inject_line(p, n); break;
    case TT_LEADER_KILL: done = inject_leader_kill(p); break;
    default: done = true; break;
    }
    if (done && p->run.cfg.verbose && p->run.sh->nfaults > 0) {
        const struct tt_fault *f = &p->run.sh->faults[p->run.sh->nfaults - 1];
        (void)fprintf(stderr, "tl-torture: fault %u at %.3f s: kind %u %s (w%u)\n", n + 1,
                      (double)(f->start_ns - p->start_ns) / 1e9, f->kind, f->detail, f->worker);
    }
    return done;
}

/*
 * Injects the scenario's faults while the workers run, spaced by about the fault interval, then
 * tells the workers that the faults are over (they run a tail of cycles after it). Gives up
 * when no fault could be injected for a long while, or when the log is nearly full.
 */
/*
 * line: an acquire call still waiting long after its patience ran out (nothing woke it, and it
 * never gave up) fails the run; its worker is killed so that the run ends.
 */
static void line_watchdog(struct parent *p)
{
    struct tt_shared *sh = p->run.sh;
    int64_t now = tt_now_ns();

    for (uint32_t s = 0; s < sh->nworkers; s++) {
        struct tt_worker *w = &sh->workers[s];
        if (!p->alive[s] || atomic_load(&w->state) != TT_ACQUIRING)
            continue;
        const struct tt_attempt *a = &tt_attempts(sh)[atomic_load(&w->attempt)];
        int64_t limit =
            a->patience_ns + (int64_t)p->run.cfg.overrun_ms * 1000000 + (int64_t)30 * 1000000000;
        if (a->start_ns == 0 || a->end_ns != 0 || a->disturbed || now - a->start_ns < limit)
            continue;
        fail_extra(p,
                   "line: w%u's acquire of key %u has not returned %.1f s after its patience "
                   "of %.1f s ran out: killed",
                   s, a->key, (double)(now - a->start_ns - a->patience_ns) / 1e9,
                   (double)a->patience_ns / 1e9);
        p->killed[s] = true;
        (void)kill(p->pids[s], SIGKILL);
        (void)waitpid(p->pids[s], NULL, 0);
        p->alive[s] = false;
    }
}

static void fault_loop(struct parent *p)
{
    const struct tt_config *cfg = &p->run.cfg;
    struct tt_shared *sh = p->run.sh;
    uint32_t done = 0;
    int64_t interval = (int64_t)cfg->fault_interval_ms * 1000000;
    int64_t next = tt_now_ns() + interval / 2 + (int64_t)(prand(p) % (uint64_t)(interval + 1));
    int64_t last_success = tt_now_ns();
    int64_t patience = 10 * interval + (int64_t)60 * 1000000000;

    if (cfg->faults == 0)
        atomic_store(&sh->faults_done, 1);
    while (alive_count(p) > 0) {
        reap(p, false);
        if (cfg->scenario == TT_LINE)
            line_watchdog(p);
        if (!atomic_load(&sh->faults_done)) {
            bool full = atomic_load(&sh->nsections) > sh->max_sections / 10 * 9 ||
                        sh->nwrites > sh->max_writes / 10 * 9;
            if (done >= cfg->faults || full || tt_now_ns() - last_success > patience) {
                if (done < cfg->faults)
                    (void)fprintf(stderr, "tl-torture: gave up injecting faults after %u of %u\n",
                                  done, cfg->faults);
                if (p->last_fault_end_ns == 0)
                    p->last_fault_end_ns = tt_now_ns();
                atomic_store(&sh->partition_armed, 0);
                atomic_store(&sh->faults_done, 1);
            } else if (tt_now_ns() >= next) {
                if (inject_fault(p, done)) {
                    done++;
                    last_success = tt_now_ns();
                    next = last_success + interval / 2 +
                           (int64_t)(prand(p) % (uint64_t)(interval + 1));
                } else {
                    next = tt_now_ns() + 2000000; /* no holder to hit right now */
                }
            }
        }
        tt_sleep_ns(1000000);
    }
    reap(p, false);
    atomic_store(&sh->faults_done, 1);
    atomic_store(&sh->partition_armed, 0);
    if (cfg->scenario == TT_GITHUB_FAULTS) {
        gh_settle(p);
        (void)tt_gh_request(p->github_admin, "POST", "/_admin/faults", "{\"clear\":true}", NULL);
    }
}

struct thread_arg {
    const struct tt_run *run;
    uint32_t slot;
};

static void *thread_main(void *arg)
{
    const struct thread_arg *a = arg;

    tt_worker_run(a->run, a->slot);
    return NULL;
}

/* ---- the end: sweep, audit trail, proofs ---- */

/*
 * After the workers: takes every key once more with STEAL_STALE and releases it. This recovers
 * the locks of killed workers that no one stole before the run ended, so that every acquisition
 * is followed by a hand-over the checker can see, and it shows that no key is left wedged.
 */
static void sweep(struct parent *p, tl_manager *m, uint32_t slot)
{
    const struct tt_config *cfg = &p->run.cfg;
    struct tt_shared *sh = p->run.sh;
    struct tt_worker *w = &sh->workers[slot];

    for (uint32_t k = 0; k < cfg->keys; k++) {
        struct tl_acquire_opts o = {.strategy = TL_STEAL_STALE,
                                    .deadline_ms = 3 * cfg->lock_timeout_ms + 60000};
        struct tl_metrics before, after;
        tl_lock *l = NULL;

        tl_metrics_get(m, &before, sizeof(before));
        int64_t acq = tt_now_ns();
        tl_status st = tl_acquire(m, p->run.keys[k], &o, &l);
        int64_t enter = tt_now_ns();
        if (st != TL_OK) {
            fail_extra(p, "sweep: cannot take key %s back: %s", p->run.keys[k], tl_errmsg(m));
            continue;
        }
        tl_metrics_get(m, &after, sizeof(after));

        uint32_t id;
        struct tt_section *s = tt_section_new(sh, &id);
        if (s == NULL) {
            (void)tl_release(l, NULL);
            tl_lock_free(l);
            continue;
        }
        s->key = k;
        s->worker = slot;
        s->token = tl_lock_token(l);
        s->acq_ns = acq;
        s->enter_ns = enter;
        s->strategy = TL_STEAL_STALE;
        s->took_stale = after.stale_locks_claimed > before.stale_locks_claimed;
        s->took_forced = after.forced_acquisitions > before.forced_acquisitions;
        (void)tt_resource_write(sh, w, id, TT_PHASE_ENTRY);
        (void)tt_resource_write(sh, w, id, TT_PHASE_EXIT);
        s->exit_ns = tt_now_ns();
        st = tl_release(l, "torture sweep");
        s->end = st == TL_OK ? TT_END_RELEASED : st == TL_ENOTOWNER ? TT_END_LOST : TT_END_UNSURE;
        if (st != TL_OK)
            fail_extra(p, "sweep: cannot release key %s: %s", p->run.keys[k], tl_errmsg(m));
        tl_lock_free(l);

        struct tl_info *info = NULL;
        if (tl_inspect(m, p->run.keys[k], &info) != TL_OK || info != NULL) {
            p->keys_left_held++;
            fail_extra(p, "key %s is still held after the sweep released it", p->run.keys[k]);
        }
        tl_info_free(info);
    }
}

static void collect_history(struct parent *p, tl_manager *m, struct tt_history *h)
{
    const struct tt_shared *sh = p->run.sh;
    uint32_t nsec = atomic_load(&((struct tt_shared *)sh)->nsections);
    const struct tt_section *sec = tt_sections((struct tt_shared *)sh);

    if (nsec > sh->max_sections)
        nsec = sh->max_sections;
    for (uint32_t k = 0; k < p->run.cfg.keys; k++) {
        size_t mine = 0;
        uint64_t first = UINT64_MAX;

        for (uint32_t i = 0; i < nsec; i++) {
            if (sec[i].key == k) {
                mine++;
                if (sec[i].token < first)
                    first = sec[i].token;
            }
        }
        tl_status st = tl_history(m, p->run.keys[k], 4 * mine + 256, &h[k].ev, &h[k].n);
        if (st == TL_ENOTSUP) {
            h[k].ev = NULL;
            h[k].n = 0;
            continue;
        }
        if (st != TL_OK) {
            fail_extra(p, "history of key %s: %s", p->run.keys[k], tl_errmsg(m));
            continue;
        }
        p->history_kept = true;
        for (size_t i = 0; i < h[k].n; i++) {
            if (h[k].ev[i]->token <= first && h[k].ev[i]->kind != TL_EVENT_RELEASED)
                h[k].complete = true;
        }
    }
}

/*
 * Partition, on top of the checker's rule: a holder that was inside its section when the proxy
 * froze, and held on (long_hold), must have been told of the loss while the proxy was frozen:
 * its last renewal that succeeded was sent before the freeze, so its loss deadline came less
 * than a lock timeout after it, and every freeze lasts longer. A freeze bit when such a holder
 * was told.
 */
static void check_partition(struct parent *p)
{
    struct tt_shared *sh = p->run.sh;
    const struct tt_section *sec = tt_sections(sh);
    uint32_t nsec = atomic_load(&sh->nsections);

    if (nsec > sh->max_sections)
        nsec = sh->max_sections;
    for (uint32_t i = 0; i < sh->nfaults; i++) {
        struct tt_fault *f = &sh->faults[i];

        if (f->kind != TT_FAULT_PARTITION || f->end_ns == 0)
            continue;
        for (uint32_t j = 0; j < nsec; j++) {
            const struct tt_section *s = &sec[j];

            if (!s->long_hold || s->enter_ns >= f->start_ns || s->exit_ns <= f->start_ns)
                continue;
            if (s->learned_ns != 0 && s->learned_ns < f->end_ns) {
                f->bit = true;
                continue;
            }
            fail_extra(p,
                       "w%u (token %llu) was cut off from the store for %.1f s, longer than its "
                       "lock timeout of %u ms, and was not told that its lock was lost meanwhile",
                       s->worker, (unsigned long long)s->token,
                       (double)(f->end_ns - f->start_ns) / 1e9, p->run.cfg.lock_timeout_ms);
        }
    }
}

/* The core's waiter timeout (src/manager.c, waiter_timeout()): a waiter is dead once its store
 * has not heard from it for this long. GitHub's waiters are claims, judged by the lock timeout. */
static uint32_t waiter_timeout_ms(const struct parent *p)
{
    const struct tt_config *c = &p->run.cfg;
    uint64_t t = 10000; /* TL_WAITER_TIMEOUT_MS */

    if (p->github)
        return c->lock_timeout_ms;
    if (3ull * c->heartbeat_ms > t)
        t = 3ull * c->heartbeat_ms;
    return t < c->lock_timeout_ms ? (uint32_t)t : c->lock_timeout_ms;
}

/*
 * line: the checker's proofs over the acquire calls, and the figures of the waiters stopped in
 * line: a stop bit when the key changed hands while the waiter was frozen past its waiter
 * timeout (its place was dead, and the line went on without it).
 */
static uint64_t check_line(struct parent *p)
{
    struct tt_shared *sh = p->run.sh;
    const struct tt_section *sec = tt_sections(sh);
    const struct tt_attempt *att = tt_attempts(sh);
    uint32_t nsec = atomic_load(&sh->nsections);
    uint32_t natt = atomic_load(&sh->nattempts);
    int64_t wt = (int64_t)waiter_timeout_ms(p) * 1000000;

    if (nsec > sh->max_sections)
        nsec = sh->max_sections;
    if (natt > sh->max_attempts)
        natt = sh->max_attempts;
    for (uint32_t i = 0; i < sh->nfaults; i++) {
        struct tt_fault *f = &sh->faults[i];

        if (f->kind != TT_FAULT_STOP_WAITER || f->end_ns == 0)
            continue;
        uint32_t key = att[f->attempt].key;
        for (uint32_t j = 0; j < nsec && !f->bit; j++)
            f->bit = sec[j].key == key && sec[j].enter_ns > f->start_ns + wt &&
                     sec[j].enter_ns < f->end_ns;
        p->dead_waiters_passed += f->bit;
    }

    const struct tt_line_log log = {
        .att = att,
        .n = natt,
        .nkeys = p->run.cfg.keys,
        .waiter_timeout_ms = waiter_timeout_ms(p),
        .liveness_slack_ms = p->github ? 1100 : 100,
        .overrun_ms = p->run.cfg.overrun_ms,
        .sec = sec,
        .nsec = nsec,
        .stall_ms = 200,
    };
    uint64_t failures = tt_check_line(&log, &p->line);
    for (uint64_t i = 0; i < p->line.nviolated && i < TT_MAX_VIOLATED; i++)
        (void)fprintf(stderr, "tl-torture: FAILED: %s\n", p->line.violated[i]);
    if (p->line.lined == 0)
        fail_extra(p, "line: no acquire call waited in line: the run proves nothing of it");
    return failures;
}

/*
 * deadlock: every cycle made on purpose was reported to exactly one of its members, within one
 * wait interval (a waiter checks for a cycle when it joins the line and at each refresh) of the
 * last member's call, plus the overrun slack the line's patience proof allows a call (a loaded
 * or sanitized machine delays the check and its answer, not its order); and the ordered
 * workload, where no cycle can form, had no TL_EDEADLK at all.
 */
static void check_deadlocks(struct parent *p)
{
    const struct tt_config *cfg = &p->run.cfg;
    struct tt_shared *sh = p->run.sh;
    int64_t bound = ((int64_t)p->wait_interval_ms + cfg->overrun_ms) * 1000000;

    for (uint32_t i = 0; i < TT_MAX_CYCLES; i++) {
        const struct tt_cycle *cy = &sh->cycles[i];
        uint32_t reports = 0, errors = 0, youngest = 0;
        int64_t last_call = 0;
        bool formed = cy->size > 0 && atomic_load(&cy->failed) == 0;

        for (uint32_t j = 0; formed && j < cy->size; j++) {
            formed = cy->call_ns[j] != 0 && cy->returned[j];
            last_call = cy->call_ns[j] > last_call ? cy->call_ns[j] : last_call;
        }
        if (!formed)
            continue;
        p->cycles_created++;
        for (uint32_t j = 0; j < cy->size; j++) {
            if (cy->status[j] == TL_EDEADLK) {
                reports++;
                youngest = j;
            } else if (cy->status[j] != TL_OK && cy->status[j] != TL_EBUSY) {
                errors++; /* a store error: not a wait that ran out (TL_EBUSY, a miss) */
            }
        }
        if (reports == 0 && errors > 0) {
            p->cycles_disturbed++;
            continue;
        }
        if (reports == 0) {
            p->cycles_missed++;
            fail_extra(p,
                       "deadlock: group %u round %u: a cycle of %u waits was never reported "
                       "(no member got TL_EDEADLK)",
                       cy->group, cy->round, cy->size);
            continue;
        }
        if (reports > 1) {
            p->cycles_overreported++;
            fail_extra(p, "deadlock: group %u round %u: %u members of one cycle got TL_EDEADLK",
                       cy->group, cy->round, reports);
            continue;
        }
        p->cycles_reported++;
        int64_t took = cy->ret_ns[youngest] - last_call;
        if (took > p->max_detect_ns)
            p->max_detect_ns = took;
        if (took > bound) {
            p->cycles_late++;
            fail_extra(p,
                       "deadlock: group %u round %u: the cycle was reported %.0f ms after it "
                       "formed, more than a wait interval (%u ms) and the slack (%u ms)",
                       cy->group, cy->round, (double)took / 1e6, p->wait_interval_ms,
                       cfg->overrun_ms);
        }
    }
    for (uint32_t s = 0; s < sh->nworkers; s++)
        p->false_deadlocks += sh->workers[s].n.false_deadlocks;
    if (p->false_deadlocks > 0)
        fail_extra(p,
                   "deadlock: %llu acquire(s) of the ordered workload (keys taken in one order: "
                   "no cycle possible) answered TL_EDEADLK",
                   (unsigned long long)p->false_deadlocks);
    if (p->cycles_created == 0)
        fail_extra(p, "deadlock: no cycle formed: the run proves nothing of detection");
}

/* Scenario-specific proofs on top of the checker's. */
static void check_scenario(struct parent *p, const struct tt_verdict *v, uint64_t *late_rejected,
                           uint64_t *stops_learned)
{
    struct tt_shared *sh = p->run.sh;
    const struct tt_section *sec = tt_sections(sh);
    const struct tt_write *wr = tt_writes(sh);
    const struct tt_config *cfg = &p->run.cfg;

    for (uint32_t i = 0; i < sh->nfaults; i++) {
        struct tt_fault *f = &sh->faults[i];

        if (f->kind != TT_FAULT_STOP)
            continue;
        const struct tt_section *s = &sec[f->section];
        f->bit = s->end == TT_END_LOST || s->end == TT_END_UNSURE || s->learned_ns != 0;
        if (s->learned_ns != 0)
            (*stops_learned)++;
        if (s->end == TT_END_LOST && s->learned_ns == 0)
            fail_extra(p,
                       "w%u was stopped past its lock timeout and its lock was taken, but no "
                       "heartbeat told it (it learned only when its release was refused)",
                       f->worker);
        for (uint32_t j = 0; j < sh->nwrites; j++) {
            if (wr[j].section == f->section && !wr[j].accepted)
                (*late_rejected)++;
        }
    }
    if (cfg->scenario == TT_PARTITION)
        check_partition(p);
    if (cfg->scenario == TT_CLOCK_SKEW && (v->steals > 0 || v->forced > 0))
        fail_extra(p,
                   "clock-skew: %llu live lock(s) were taken although every holder heartbeated "
                   "far inside the %u ms lock timeout: a skewed client clock made them look stale",
                   (unsigned long long)(v->steals + v->forced), cfg->lock_timeout_ms);
    if (cfg->scenario == TT_LEADER_KILL) {
        for (uint32_t i = 0; i < p->nkills; i++) {
            if (p->kill_all_ms[i] < 0 || p->kill_all_ms[i] > RESUME_BOUND_MS)
                fail_extra(p,
                           "leader-kill: after leader kill %u, not every worker acquired "
                           "again within %d ms (%lld ms)",
                           i + 1, RESUME_BOUND_MS, (long long)p->kill_all_ms[i]);
        }
        for (uint32_t i = 0; i < p->nstops; i++) {
            if (p->stop_all_ms[i] < 0 || p->stop_all_ms[i] > RESUME_BOUND_MS)
                fail_extra(p,
                           "leader-kill: after follower stop %u, not every worker acquired "
                           "again within %d ms (%lld ms)",
                           i + 1, RESUME_BOUND_MS, (long long)p->stop_all_ms[i]);
        }
    }
    if (cfg->scenario == TT_RESTART || cfg->scenario == TT_GITHUB_FAULTS ||
        cfg->scenario == TT_LEADER_KILL) {
        uint64_t after = 0;
        uint32_t nsec = atomic_load(&sh->nsections);

        for (uint32_t i = 0; i < nsec && i < sh->max_sections; i++)
            after += sec[i].worker != TT_MAX_WORKERS - 1 && sec[i].enter_ns > p->last_fault_end_ns;
        if (sh->nfaults > 0 && after == 0)
            fail_extra(p, "no worker got a lock after the last fault: the workers did not recover");
    }
}

static void json_counts(FILE *f, const char *name, const uint64_t *n)
{
    bool first = true;

    (void)fprintf(f, "\"%s\":{", name);
    for (int st = 1; st < TT_STATUS_MAX; st++) {
        if (n[st] == 0)
            continue;
        (void)fprintf(f, "%s\"%s\":%llu", first ? "" : ",", tt_status_name(st),
                      (unsigned long long)n[st]);
        first = false;
    }
    (void)fprintf(f, "}");
}

static void json_string(FILE *f, const char *s)
{
    (void)fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            (void)fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            (void)fprintf(f, "\\u%04x", *s);
        else
            (void)fputc(*s, f);
    }
    (void)fputc('"', f);
}

/* "NAME":[a,b,...], */
static void json_ms_list(FILE *f, const char *name, const int64_t *ms, uint32_t n)
{
    (void)fprintf(f, "\"%s\":[", name);
    for (uint32_t i = 0; i < n; i++)
        (void)fprintf(f, "%s%lld", i ? "," : "", (long long)ms[i]);
    (void)fprintf(f, "],");
}

/* The largest of n times; -1 if one is -1 (never), or none. */
static int64_t max_ms(const int64_t *ms, uint32_t n)
{
    int64_t hi = -1;

    for (uint32_t i = 0; i < n; i++) {
        if (ms[i] < 0)
            return -1;
        hi = ms[i] > hi ? ms[i] : hi;
    }
    return hi;
}

static char *summary(struct parent *p, const struct tt_verdict *v, uint64_t failures,
                     uint64_t late_rejected, uint64_t stops_learned)
{
    const struct tt_config *cfg = &p->run.cfg;
    struct tt_shared *sh = p->run.sh;
    struct tt_counts sum = {0};
    uint64_t faults_bit = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL)
        return NULL;
    for (uint32_t s = 0; s < sh->nworkers; s++) {
        const struct tt_counts *n = &sh->workers[s].n;

        sum.cycles += n->cycles;
        for (int i = 0; i < TT_STATUS_MAX; i++) {
            sum.acquire_errors[i] += n->acquire_errors[i];
            sum.release_errors[i] += n->release_errors[i];
        }
        sum.errors_without_message += n->errors_without_message;
        sum.conflicts += n->conflicts;
        sum.heartbeats_sent += n->heartbeats_sent;
        sum.heartbeats_failed += n->heartbeats_failed;
        sum.locks_lost += n->locks_lost;
        sum.lost_callbacks += n->lost_callbacks;
        sum.probes_refused += n->probes_refused;
        sum.logged_warnings += n->logged_warnings;
        sum.logged_errors += n->logged_errors;
        sum.stale_steals_by_skewed += n->stale_steals_by_skewed;
    }
    for (uint32_t i = 0; i < sh->nfaults; i++)
        faults_bit += sh->faults[i].bit;

    (void)fprintf(f, "{\"store\":\"%s\",\"scenario\":\"%s\",\"workers\":%u,\"keys\":%u,", p->scheme,
                  scenario_names[cfg->scenario], cfg->workers, cfg->keys);
    (void)fprintf(f, "\"lock_timeout_ms\":%u,\"heartbeat_ms\":%u,\"seed\":%llu,",
                  cfg->lock_timeout_ms, cfg->heartbeat_ms, (unsigned long long)cfg->seed);
    (void)fprintf(f, "\"cycles\":%llu,\"sections\":%llu,\"writes\":%llu,",
                  (unsigned long long)sum.cycles, (unsigned long long)v->sections,
                  (unsigned long long)v->writes);
    (void)fprintf(f, "\"faults\":{\"wanted\":%u,\"injected\":%u,\"bit\":%llu,\"missed\":%u",
                  cfg->faults, sh->nfaults, (unsigned long long)faults_bit, p->faults_missed);
    if (cfg->scenario == TT_GITHUB_FAULTS) {
        (void)fprintf(f, ",\"knobs\":{");
        for (uint32_t i = 0; i < sh->nfaults; i++)
            (void)fprintf(f, "%s\"%u:%s\":%s", i ? "," : "", i, sh->faults[i].detail,
                          sh->faults[i].bit ? "true" : "false");
        (void)fprintf(f, "}");
    }
    (void)fprintf(f, "},");
    (void)fprintf(f,
                  "\"overlaps\":%llu,\"token_regressions\":%llu,\"stale_writes_rejected\":%llu,"
                  "\"stale_writes_accepted\":%llu,",
                  (unsigned long long)v->overlaps, (unsigned long long)v->token_regressions,
                  (unsigned long long)v->stale_writes_rejected,
                  (unsigned long long)v->stale_writes_accepted);
    (void)fprintf(f,
                  "\"ended\":{\"released\":%llu,\"lost\":%llu,\"unsure\":%llu,\"killed\":%llu},"
                  "\"steals\":%llu,\"forced\":%llu,\"orphan_steals\":%llu,"
                  "\"allowed_overlaps\":%llu,\"workers_crashed\":%u,\"keys_left_held\":%u,",
                  (unsigned long long)v->released, (unsigned long long)v->lost,
                  (unsigned long long)v->unsure, (unsigned long long)v->killed,
                  (unsigned long long)v->steals, (unsigned long long)v->forced,
                  (unsigned long long)v->orphan_steals, (unsigned long long)v->allowed_overlaps,
                  p->crashed, p->keys_left_held);
    if (cfg->scenario == TT_SIGSTOP)
        (void)fprintf(f,
                      "\"stopped\":{\"learned_by_heartbeat\":%llu,\"late_writes_rejected\":%llu},",
                      (unsigned long long)stops_learned, (unsigned long long)late_rejected);
    if (cfg->scenario == TT_SIGKILL)
        (void)fprintf(f, "\"max_recovery_ms\":%lld,", (long long)v->max_recovery_ms);
    if (cfg->scenario == TT_LEADER_KILL) {
        (void)fprintf(f, "\"leader_kill\":{\"kills\":%u,\"stops\":%u,", p->nkills, p->nstops);
        json_ms_list(f, "resume_first_ms", p->kill_first_ms, p->nkills);
        json_ms_list(f, "resume_all_ms", p->kill_all_ms, p->nkills);
        json_ms_list(f, "stop_resume_first_ms", p->stop_first_ms, p->nstops);
        json_ms_list(f, "stop_resume_all_ms", p->stop_all_ms, p->nstops);
        (void)fprintf(f, "\"resume_all_max_ms\":%lld,\"stop_resume_all_max_ms\":%lld},",
                      (long long)max_ms(p->kill_all_ms, p->nkills),
                      (long long)max_ms(p->stop_all_ms, p->nstops));
    }
    if (cfg->scenario == TT_PARTITION)
        (void)fprintf(
            f,
            "\"partition\":{\"freeze_ms\":%u,\"cut_off\":%llu,\"holders\":%llu,"
            "\"released_after_thaw\":%llu,\"measured\":%llu,\"violations\":%llu,"
            "\"margin_min_ms\":%.1f,\"margin_median_ms\":%.1f},",
            cfg->freeze_ms, (unsigned long long)v->cut_off,
            (unsigned long long)v->partitioned_holders, (unsigned long long)v->partition_released,
            (unsigned long long)v->partition_measured, (unsigned long long)v->partition_violations,
            (double)v->partition_margin_min_ns / 1e6, (double)v->partition_margin_median_ns / 1e6);
    if (cfg->scenario == TT_CLOCK_SKEW)
        (void)fprintf(f,
                      "\"skew_ms\":%lld,\"skewed\":{\"steal_attempts_refused\":%llu,"
                      "\"steals\":%llu},",
                      (long long)cfg->skew_ms, (unsigned long long)sum.probes_refused,
                      (unsigned long long)sum.stale_steals_by_skewed);
    if (cfg->scenario == TT_LINE) {
        const struct tt_line_verdict *l = &p->line;
        uint64_t wakeups = 0, queued_m = 0;
        int64_t connect = 0;

        for (uint32_t s = 0; s < sh->nworkers; s++) {
            wakeups += sh->workers[s].n.wakeups;
            queued_m += sh->workers[s].n.queued;
            if (sh->workers[s].n.connect_ns > connect)
                connect = sh->workers[s].n.connect_ns;
        }
        (void)fprintf(
            f,
            "\"line\":{\"attempts\":%llu,\"lined\":%llu,\"queued\":%llu,\"granted\":%llu,"
            "\"gave_up\":%llu,\"errors\":%llu,\"never_ended\":%llu,\"disturbed\":%llu,"
            "\"lapsed\":%llu,\"eligible\":%llu,\"pairs_checked\":%llu,\"fifo_pairs\":%llu,"
            "\"priority_overtakes\":%llu,\"order_violations\":%llu,\"early_give_ups\":%llu,"
            "\"overruns\":%llu,\"max_overrun_ms\":%.1f,\"max_line\":%u,\"wakeups\":%llu,"
            "\"wakeups_spent\":%llu,\"leave_failed\":%llu,\"stalls\":%llu,\"max_stall_ms\":%.1f,"
            "\"stalls_failed_leave\":%llu,\"stalls_unexplained\":%llu,\"max_stall_unexplained_ms\":"
            "%.1f,"
            "\"metrics\":{\"queued\":%llu,"
            "\"wakeups\":%llu},\"waiter_timeout_ms\":%u,\"dead_waiters_passed\":%llu,"
            "\"max_connect_ms\":%.1f},",
            (unsigned long long)l->attempts, (unsigned long long)l->lined,
            (unsigned long long)l->queued, (unsigned long long)l->granted,
            (unsigned long long)l->gave_up, (unsigned long long)l->errors,
            (unsigned long long)l->never_ended, (unsigned long long)l->disturbed,
            (unsigned long long)l->lapsed, (unsigned long long)l->eligible,
            (unsigned long long)l->pairs, (unsigned long long)l->fifo_pairs,
            (unsigned long long)l->overtakes, (unsigned long long)l->order_violations,
            (unsigned long long)l->early_give_ups, (unsigned long long)l->overruns,
            (double)l->max_overrun_ns / 1e6, l->max_line, (unsigned long long)l->wakeups,
            (unsigned long long)l->wakeups_spent, (unsigned long long)l->leave_failed,
            (unsigned long long)l->stalls, (double)l->max_stall_ns / 1e6,
            (unsigned long long)l->stalls_failed_leave, (unsigned long long)l->stalls_unexplained,
            (double)l->max_stall_unexplained_ns / 1e6, (unsigned long long)queued_m,
            (unsigned long long)wakeups, waiter_timeout_ms(p),
            (unsigned long long)p->dead_waiters_passed, (double)connect / 1e6);
    }
    if (cfg->modes) {
        struct tt_counts m = {0};
        for (uint32_t s = 0; s < sh->nworkers; s++) {
            const struct tt_counts *n = &sh->workers[s].n;
            m.shared_sections += n->shared_sections;
            m.exclusive_sections += n->exclusive_sections;
            m.slot_sections += n->slot_sections;
            m.upgrades += n->upgrades;
            m.upgrades_granted += n->upgrades_granted;
            m.upgrades_deadlocked += n->upgrades_deadlocked;
            m.upgrades_busy += n->upgrades_busy;
            m.upgrades_failed += n->upgrades_failed;
            m.downgrades += n->downgrades;
            m.downgrades_failed += n->downgrades_failed;
        }
        /* Whom the faults hit: readers, slot holders, writers. */
        uint64_t hit[3] = {0};
        for (uint32_t i = 0; i < sh->nfaults; i++) {
            const struct tt_fault *ft = &sh->faults[i];
            if (ft->kind != TT_FAULT_KILL && ft->kind != TT_FAULT_STOP)
                continue;
            const struct tt_section *vs = &tt_sections(sh)[ft->section];
            hit[vs->slots > 0 ? 1 : vs->mode == TL_SHARED ? 0 : 2]++;
        }
        (void)fprintf(f, "\"victims\":{\"shared\":%llu,\"slot\":%llu,\"exclusive\":%llu},",
                      (unsigned long long)hit[0], (unsigned long long)hit[1],
                      (unsigned long long)hit[2]);
        (void)fprintf(
            f,
            "\"modes\":{\"slots\":%u,\"shared\":%llu,\"exclusive\":%llu,\"slot_holds\":%llu,"
            "\"shared_overlaps\":%llu,\"max_slots_inside\":%u,\"semaphore_overflows\":%llu,"
            "\"upgrades\":{\"tried\":%llu,\"granted\":%llu,\"deadlocks\":%llu,\"busy\":%llu,"
            "\"failed\":%llu,\"checked\":%llu},\"downgrades\":{\"tried\":%llu,\"failed\":%llu,"
            "\"checked\":%llu}},",
            cfg->slots, (unsigned long long)m.shared_sections,
            (unsigned long long)m.exclusive_sections, (unsigned long long)m.slot_sections,
            (unsigned long long)v->shared_overlaps, v->max_slots_inside,
            (unsigned long long)v->semaphore_overflows, (unsigned long long)m.upgrades,
            (unsigned long long)m.upgrades_granted, (unsigned long long)m.upgrades_deadlocked,
            (unsigned long long)m.upgrades_busy, (unsigned long long)m.upgrades_failed,
            (unsigned long long)v->upgraded, (unsigned long long)m.downgrades,
            (unsigned long long)m.downgrades_failed, (unsigned long long)v->downgraded);
    }
    if (cfg->scenario == TT_DEADLOCK) {
        uint64_t ordered = 0;
        for (uint32_t s = 0; s < sh->nworkers; s++)
            ordered += sh->workers[s].n.ordered_acquires;
        (void)fprintf(
            f,
            "\"deadlock\":{\"groups\":%u,\"triples\":%u,\"wait_interval_ms\":%u,"
            "\"created\":%llu,\"reported\":%llu,\"missed\":%llu,"
            "\"overreported\":%llu,\"late\":%llu,\"disturbed\":%llu,"
            "\"max_detect_ms\":%.1f,\"ordered_acquires\":%llu,\"false_reports\":%llu},",
            cfg->groups, cfg->triples, p->wait_interval_ms, (unsigned long long)p->cycles_created,
            (unsigned long long)p->cycles_reported, (unsigned long long)p->cycles_missed,
            (unsigned long long)p->cycles_overreported, (unsigned long long)p->cycles_late,
            (unsigned long long)p->cycles_disturbed, (double)p->max_detect_ns / 1e6,
            (unsigned long long)ordered, (unsigned long long)p->false_deadlocks);
    }
    (void)fprintf(f, "\"history\":");
    if (p->history_kept)
        (void)fprintf(f,
                      "{\"checked\":%llu,\"unrecorded_acquisitions\":%llu,"
                      "\"lost_but_released\":%llu},",
                      (unsigned long long)v->history_events,
                      (unsigned long long)v->history_unrecorded,
                      (unsigned long long)v->misreported_lost);
    else
        (void)fprintf(f, "null,");
    (void)fprintf(f, "\"errors\":{");
    json_counts(f, "acquire", sum.acquire_errors);
    (void)fprintf(f, ",");
    json_counts(f, "release", sum.release_errors);
    (void)fprintf(f,
                  ",\"heartbeats_failed\":%llu,\"locks_lost\":%llu,\"lost_callbacks\":%llu,"
                  "\"without_message\":%llu,\"logged\":{\"warnings\":%llu,\"errors\":%llu}",
                  (unsigned long long)sum.heartbeats_failed, (unsigned long long)sum.locks_lost,
                  (unsigned long long)sum.lost_callbacks,
                  (unsigned long long)sum.errors_without_message,
                  (unsigned long long)sum.logged_warnings, (unsigned long long)sum.logged_errors);
    for (uint32_t s = 0; s < sh->nworkers; s++) {
        if (sh->workers[s].first_error[0] != '\0') {
            (void)fprintf(f, ",\"first\":");
            json_string(f, sh->workers[s].first_error);
            break;
        }
    }
    (void)fprintf(f, "},\"failures\":%llu,\"elapsed_s\":%.1f,\"ok\":%s}",
                  (unsigned long long)failures, (double)(tt_now_ns() - p->start_ns) / 1e9,
                  failures == 0 ? "true" : "false");
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- main ---- */

/* The run's temporary directory, for the signal handler below. */
static char cleanup_dir[512]; /* NOLINT: set once by the parent before any signal matters */

/* SIGTERM/SIGINT/SIGHUP (a test timeout, ^C): remove the temporary files, then die of the
 * signal. The workers die with the parent (PR_SET_PDEATHSIG), the GitHub test server when its
 * stdin closes. Only async-signal-safe calls here. */
static void on_fatal_signal(int sig)
{
    static const char *const files[] = {"shared", "torture.db", "torture.db-wal", "torture.db-shm",
                                        "torture.db-journal"};
    char path[600];

    for (size_t i = 0; cleanup_dir[0] != '\0' && i < sizeof(files) / sizeof(files[0]); i++) {
        size_t d = strlen(cleanup_dir), f = strlen(files[i]);
        if (d + 1 + f + 1 > sizeof(path))
            break;
        memcpy(path, cleanup_dir, d);
        path[d] = '/';
        memcpy(path + d + 1, files[i], f + 1);
        (void)unlink(path);
    }
    if (cleanup_dir[0] != '\0')
        (void)rmdir(cleanup_dir);
    (void)signal(sig, SIG_DFL);
    (void)raise(sig);
}

static void catch_fatal_signals(const char *dir, bool on)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    struct sigaction sa = {0};

    if (on)
        (void)snprintf(cleanup_dir, sizeof(cleanup_dir), "%s", dir);
    sa.sa_handler = on ? on_fatal_signal : SIG_DFL;
    (void)sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        (void)sigaction(sigs[i], &sa, NULL);
}

static void remove_dir(const char *dir)
{
    char cmd[700];

    if (dir[0] == '\0')
        return;
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)run_command(cmd);
}

static int parse_args(struct parent *p, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"store", required_argument, NULL, 's'},
        {"scenario", required_argument, NULL, 'S'},
        {"workers", required_argument, NULL, 'w'},
        {"cycles", required_argument, NULL, 'c'},
        {"keys", required_argument, NULL, 'k'},
        {"lock-timeout", required_argument, NULL, 't'},
        {"heartbeat", required_argument, NULL, 'b'},
        {"hold", required_argument, NULL, 'H'},
        {"faults", required_argument, NULL, 'f'},
        {"fault-interval", required_argument, NULL, 'i'},
        {"stop", required_argument, NULL, 'T'},
        {"skew", required_argument, NULL, 'K'},
        {"freeze", required_argument, NULL, 'F'},
        {"steal-slack", required_argument, NULL, 'L'},
        {"restart-cmd", required_argument, NULL, 'r'},
        {"priorities", required_argument, NULL, 'p' + 256},
        {"patience", required_argument, NULL, 'q' + 256},
        {"overrun", required_argument, NULL, 'o' + 256},
        {"sabotage", required_argument, NULL, 's' + 256},
        {"github-admin", required_argument, NULL, 'g'},
        {"backoff", required_argument, NULL, 'B'},
        {"pause", required_argument, NULL, 'P'},
        {"seed", required_argument, NULL, 'e'},
        {"scale", required_argument, NULL, 'x'},
        {"report", required_argument, NULL, 'o'},
        {"has-store", required_argument, NULL, 'h' + 256},
        {"verbose", no_argument, NULL, 'v'},
        {"no-line", no_argument, NULL, 'n' + 256},
        {"sessions", no_argument, NULL, 'S' + 512},
        {"run-anyway", no_argument, NULL, 'A'},
        {"modes", no_argument, NULL, 'm' + 256},
        {"slots", required_argument, NULL, 'l' + 256},
        {"triples", required_argument, NULL, 't' + 256},
        {"help", no_argument, NULL, '?' + 256},
        {NULL, 0, NULL, 0},
    };
    struct tt_config *c = &p->run.cfg;
    bool timeout_given = false, seed_given = false;
    uint32_t hold = UINT32_MAX, skew = 0;
    int opt, sc = -1;

    c->workers = 8;
    c->cycles = 200;
    c->keys = 3;
    c->faults = UINT32_MAX;
    c->steal_slack_ms = UINT32_MAX;
    c->max_priority = 2;
    p->scale = 1.0;
    while ((opt = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
        bool ok = true;

        switch (opt) {
        case 's': c->store = optarg; break;
        case 'S': ok = (sc = scenario_by_name(optarg)) >= 0; break;
        case 'w': ok = parse_u32(optarg, &c->workers) && c->workers > 0; break;
        case 'c': ok = parse_u32(optarg, &c->cycles); break;
        case 'k': ok = parse_u32(optarg, &c->keys) && c->keys > 0 && c->keys <= TT_MAX_KEYS; break;
        case 't':
            ok = parse_ms(optarg, &c->lock_timeout_ms);
            timeout_given = true;
            break;
        case 'b': ok = parse_ms(optarg, &c->heartbeat_ms); break;
        case 'H':
            hold = 0;
            ok = strcmp(optarg, "0") == 0 || parse_ms(optarg, &hold);
            break;
        case 'f': ok = parse_u32(optarg, &c->faults); break;
        case 'i': ok = parse_ms(optarg, &c->fault_interval_ms); break;
        case 'T': ok = parse_ms(optarg, &c->stop_ms); break;
        case 'K': ok = parse_ms(optarg, &skew); break;
        case 'F': ok = parse_ms(optarg, &c->freeze_ms); break;
        case 'L':
            c->steal_slack_ms = 0;
            ok = strcmp(optarg, "0") == 0 || parse_ms(optarg, &c->steal_slack_ms);
            break;
        case 'r': p->restart_cmd = optarg; break;
        case 'p' + 256: {
            uint32_t n;
            ok = parse_u32(optarg, &n) && n <= TL_PRIORITY_MAX;
            c->max_priority = ok ? (int32_t)n : 0;
            break;
        }
        case 'q' + 256: {
            char *comma = strchr(optarg, ',');
            ok = comma != NULL;
            if (ok) {
                *comma = '\0';
                ok = parse_ms(optarg, &c->patience_min_ms) &&
                     parse_ms(comma + 1, &c->patience_max_ms) &&
                     c->patience_min_ms <= c->patience_max_ms && c->patience_max_ms > 0;
            }
            break;
        }
        case 'o' + 256: ok = parse_ms(optarg, &c->overrun_ms); break;
        case 's' + 256:
            ok = strcmp(optarg, "invert-priority") == 0 || strcmp(optarg, "lose-wakeups") == 0;
            p->sabotage = strcmp(optarg, "invert-priority") == 0 ? TT_SABOTAGE_INVERT_PRIORITY
                                                                 : TT_SABOTAGE_LOSE_WAKEUPS;
            break;
        case 'g': p->github_admin = optarg; break;
        case 'P':
            c->pause_ms = 0;
            p->pause_given = true;
            ok = strcmp(optarg, "0") == 0 || parse_ms(optarg, &c->pause_ms);
            break;
        case 'B': {
            char *comma = strchr(optarg, ',');
            ok = comma != NULL;
            if (ok) {
                *comma = '\0';
                ok = parse_ms(optarg, &c->backoff_min_ms) &&
                     parse_ms(comma + 1, &c->backoff_max_ms) &&
                     c->backoff_min_ms <= c->backoff_max_ms;
            }
            break;
        }
        case 'e':
            ok = tl__parse_u64(optarg, &c->seed);
            seed_given = true;
            break;
        case 'x':
            p->scale = strtod(optarg, NULL);
            ok = p->scale > 0;
            break;
        case 'o': p->report = optarg; break;
        case 'v': c->verbose = true; break;
        case 'n' + 256: c->no_line = true; break;
        case 'S' + 512: p->sessions = true; break;
        case 'A': p->run_anyway = true; break;
        case 'm' + 256: c->modes = true; break;
        case 'l' + 256:
            ok = parse_u32(optarg, &c->slots) && c->slots > 0 && c->slots <= TL_SLOTS_MAX;
            p->slots_given = true;
            break;
        case 't' + 256:
            ok = parse_u32(optarg, &c->triples);
            p->triples_given = true;
            break;
        case 'h' + 256: {
            char url[64];
            (void)snprintf(url, sizeof(url), "%s:", optarg);
            return tl__store_find(url) != NULL ? 0 : EXIT_SKIP;
        }
        case '?' + 256: usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
        if (!ok) {
            (void)fprintf(stderr, "tl-torture: bad value: %s\n", optarg);
            return EXIT_USAGE;
        }
    }
    if (c->store == NULL || sc < 0 || optind != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    c->scenario = (enum tt_scenario)sc;
    /* Clock-skew: holders stay a while, so that the skewed workers find live locks to try. */
    /* Line: holders stay a while, so that lines form behind them. */
    c->hold_ms = hold != UINT32_MAX             ? hold
                 : c->scenario == TT_CLOCK_SKEW ? 50
                 : c->scenario == TT_LINE       ? 20
                                                : 2;
    c->skew_ms = skew;
    if (!seed_given)
        c->seed = (uint64_t)tt_now_ns() ^ ((uint64_t)getpid() << 20);

    /* --scale (the sanitizer builds' ctest entries) scales the cycles only: the faults are the
     * point of a scenario. $TL_TORTURE_SCALE (a person's) scales both. */
    double fault_scale = 1.0;
    const char *env = getenv("TL_TORTURE_SCALE"); /* NOLINT(concurrency-mt-unsafe) */
    if (env != NULL && env[0] != '\0') {
        double s = strtod(env, NULL);
        if (s > 0) {
            p->scale *= s;
            fault_scale = s;
        }
    }
    apply_defaults(c, timeout_given);
    c->cycles = (uint32_t)((double)c->cycles * p->scale + 0.5);
    if (c->cycles == 0)
        c->cycles = 1;
    if (c->faults > 0) {
        uint32_t f = (uint32_t)((double)c->faults * fault_scale + 0.5);
        c->faults = f ? f : 1;
    }
    if (c->heartbeat_ms >= c->lock_timeout_ms) {
        (void)fprintf(stderr, "tl-torture: the heartbeat must be shorter than the lock timeout\n");
        return EXIT_USAGE;
    }
    return -1;
}

/* Whether the scenario applies to the store; if not, says why. */
static const char *not_applicable(const struct parent *p)
{
    const struct tt_config *c = &p->run.cfg;
    bool machine_clock = strcmp(p->scheme, "sqlite") == 0 || strcmp(p->scheme, "memory") == 0;

    if (c->modes && !p->features.modes)
        return "this store has no shared holders or semaphores (store contract version 5) in "
               "this build";
    if (c->scenario == TT_DEADLOCK && !p->features.deadlocks)
        return "this store keeps no wait-for graph (struct tl_store's deadlocks) in this build";
    if (c->threads && c->scenario != TT_CLEAN && c->scenario != TT_LINE &&
        c->scenario != TT_DEADLOCK)
        return "the memory store lives in one process, whose workers are threads: a signal "
               "cannot stop or kill one of them, and there is no server to restart";
    if (c->scenario == TT_LINE && !p->line_wrapped)
        return "this store has no line of waiters (store contract version 3) in this build";
    if (c->scenario == TT_CLOCK_SKEW && machine_clock)
        return "this store judges staleness by the machine's clock, which every worker of the "
               "machine shares: a per-worker skew cannot happen there (docs/reliability.md)";
    if (c->scenario == TT_RESTART && machine_clock)
        return "this store has no server to restart";
    if (c->scenario == TT_RESTART && p->restart_cmd == NULL)
        return "restart needs --restart-cmd";
    if (c->scenario == TT_LEADER_KILL && strcmp(p->scheme, "etcd") != 0)
        return "leader-kill needs an etcd cluster (etcd://A,B,C)";
    if (c->scenario == TT_LEADER_KILL && p->restart_cmd == NULL)
        return "leader-kill needs --restart-cmd (tests/torture/servers.sh fault etcd DIR)";
    if (c->scenario == TT_GITHUB_FAULTS &&
        (strcmp(p->scheme, "github") != 0 || p->github_admin == NULL))
        return "github-faults needs a github:// store and --github-admin";
    if (c->scenario == TT_PARTITION && machine_clock)
        return "this store lives on this machine (a file, or the process): there is no network "
               "between the workers and it to cut";
    if (c->scenario == TT_PARTITION && tl_proxy_url_port(p->url) == 0)
        return "partition needs a store on 127.0.0.1:PORT (or localhost:PORT) to put a proxy "
               "in front of";
    return NULL;
}

static int setup(struct parent *p)
{
    struct tt_config *c = &p->run.cfg;
    const char *tmp = getenv("TMPDIR"); /* NOLINT(concurrency-mt-unsafe) */

    /* deadlock: pairs of workers (and groups of three), three keys each, then the ordered
     * workload's keys. */
    if (c->scenario == TT_DEADLOCK) {
        if (!p->triples_given)
            c->triples = c->workers >= 5 ? 1 : 0;
        if (3 * c->triples > c->workers)
            c->triples = c->workers / 3;
        c->groups = c->triples + (c->workers - 3 * c->triples) / 2;
        c->group_keys = 3 * c->groups;
        if (c->keys < 2)
            c->keys = 2;
        c->keys += c->group_keys;
        if (c->ordered_cycles == 0)
            c->ordered_cycles = 2;
        if (c->keys > TT_MAX_KEYS || c->groups == 0 ||
            (uint64_t)c->groups * c->cycles > TT_MAX_CYCLES) {
            (void)fprintf(stderr, "tl-torture: deadlock: too many workers, keys or rounds\n");
            return EXIT_USAGE;
        }
    }

    (void)snprintf(p->dir, sizeof(p->dir), "%s/tl-torture.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(p->dir) == NULL) {
        p->dir[0] = '\0';
        (void)fprintf(stderr, "tl-torture: mkdtemp: %s\n", strerror(errno)); /* NOLINT */
        return EXIT_SETUP;
    }
    catch_fatal_signals(p->dir, true);
    if (strcmp(c->store, "sqlite:") == 0 || strcmp(c->store, "sqlite") == 0)
        (void)snprintf(p->url, sizeof(p->url), "sqlite:%s/torture.db", p->dir);
    else if (strcmp(c->store, "memory:") == 0 || strcmp(c->store, "memory") == 0)
        (void)snprintf(p->url, sizeof(p->url), "memory:torture-%d", (int)getpid());
    else if (strcmp(c->store, "github:") == 0 || strcmp(c->store, "github") == 0) {
        if (tt_github_start(c->keys, p->url, sizeof(p->url), p->github_admin_buf,
                            sizeof(p->github_admin_buf)) != 0) {
            (void)fprintf(stderr, "tl-torture: cannot start the GitHub test server\n");
            return EXIT_SETUP;
        }
        p->github_spawned = true;
        p->github_admin = p->github_admin_buf;
    } else
        (void)snprintf(p->url, sizeof(p->url), "%s", c->store);
    scheme_of(p->url, p->scheme, sizeof(p->scheme));
    /* Redis: a prefix of the run's own, so that its audit trail (one stream per prefix) holds
     * this run's events only, and reaches back over the whole run (the store caps it at 10000
     * events by default). */
    if (strcmp(p->scheme, "redis") == 0 && strstr(p->url, "history_max=") == NULL) {
        size_t n = strlen(p->url);
        (void)snprintf(p->url + n, sizeof(p->url) - n, "%shistory_max=10000000",
                       strchr(p->url, '?') ? "&" : "?");
    }
    if (strcmp(p->scheme, "redis") == 0 && strstr(p->url, "prefix=") == NULL) {
        size_t n = strlen(p->url);
        (void)snprintf(p->url + n, sizeof(p->url) - n, "&prefix=tl-torture-%d:", (int)getpid());
    }
    /* etcd: the audit trail reaches back over the whole run (the store keeps 1000 events per
     * key by default). */
    if (strcmp(p->scheme, "etcd") == 0 && strstr(p->url, "history_max=") == NULL) {
        size_t n = strlen(p->url);
        (void)snprintf(p->url + n, sizeof(p->url) - n, "%shistory_max=100000",
                       strchr(p->url, '?') ? "&" : "?");
    }
    if (p->sessions && strcmp(p->scheme, "github") == 0 && strstr(p->url, "sessions=") == NULL) {
        size_t n = strlen(p->url);
        (void)snprintf(p->url + n, sizeof(p->url) - n, "%ssessions=on",
                       strchr(p->url, '?') ? "&" : "?");
    }
    c->store = p->url;
    c->threads = strcmp(p->scheme, "memory") == 0;
    bool github = strcmp(p->scheme, "github") == 0;
    p->github = github;
    if (c->threads && c->scenario == TT_LINE)
        c->faults = 0; /* threads: no signals (see not_applicable()) */
    /* The GitHub line is FIFO only: the store refuses any other priority. */
    if (github)
        c->max_priority = 0;
    /* etcd: a manager's lease is reused for a new claim while its last keepalive is under a
     * sixth of the lock timeout old, and the claim goes stale when the lease expires: up to
     * that much before a lock timeout from the acquire's start (the holder reckons its own
     * loss from that keepalive: TL_OK's beat_sent_mono_ms). */
    if (c->steal_slack_ms == UINT32_MAX)
        c->steal_slack_ms = github                           ? 1100
                            : strcmp(p->scheme, "etcd") == 0 ? c->lock_timeout_ms / 6 + 50
                                                             : 50;
    /* GitHub: waiters poll (each poll reads the comment list), and every cycle leaves a
     * completion comment: a slower pace and backoff keep both moderate. */
    if (github && !p->pause_given)
        c->pause_ms = 100;
    if (c->backoff_max_ms == 0) {
        c->backoff_min_ms = github ? 20 : 2;
        c->backoff_max_ms = github ? 500 : 64;
    }

    /* Keys: issue numbers on GitHub, else names no other test uses. */
    for (uint32_t k = 0; k < c->keys; k++) {
        if (strcmp(p->scheme, "github") == 0)
            (void)snprintf(p->run.keys[k], sizeof(p->run.keys[k]), "%u", k + 1);
        else
            (void)snprintf(p->run.keys[k], sizeof(p->run.keys[k]), "tt%d-%llx-k%u", (int)getpid(),
                           (unsigned long long)(c->seed & 0xffffff), k);
    }

    /* Room for the cycles, and as many again while faults are still being injected. */
    uint64_t sections = 4 * (uint64_t)c->workers * c->cycles + 65536;
    if (c->scenario == TT_DEADLOCK)
        sections += (2 + 2 * (uint64_t)c->ordered_cycles) * c->workers * c->cycles;
    uint64_t writes = sections * 4 + (uint64_t)(c->faults + 1) * 2048;
    if (sections > UINT32_MAX / 2 || writes > UINT32_MAX / 2) {
        (void)fprintf(stderr, "tl-torture: too many cycles\n");
        return EXIT_USAGE;
    }
    char path[600];
    (void)snprintf(path, sizeof(path), "%s/shared", p->dir);
    uint32_t attempts = c->scenario == TT_LINE ? (uint32_t)sections : 0;
    p->run.sh = tt_shared_create(path, c->keys, (uint32_t)sections, (uint32_t)writes, attempts);
    if (p->run.sh == NULL) {
        (void)fprintf(stderr, "tl-torture: cannot map %s: %s\n", path,
                      strerror(errno)); /* NOLINT */
        return EXIT_SETUP;
    }
    p->rng = c->seed * 0x9e3779b97f4a7c15ull + 1;
    if (c->scenario == TT_LINE)
        p->line_wrapped = tt_line_wrap_store(p->url, p->sabotage);
    /* modes, deadlock: what this store has is known once it is open (store contract version
     * 5: struct tl_store's modes and deadlocks, ops->convert for upgrades). */
    if ((c->modes || c->scenario == TT_DEADLOCK) && !tt_store_features(p->url, &p->features)) {
        (void)fprintf(stderr, "tl-torture: cannot open the store to see what it has\n");
        return EXIT_SETUP;
    }
    c->upgrades = c->modes && p->features.convert;
    if (c->scenario == TT_DEADLOCK)
        c->modes = p->features.modes;
    return -1;
}

static tl_manager *sweeper_new(const struct parent *p, uint32_t slot)
{
    char name[32];

    tt_worker_name(slot, name, sizeof(name));
    tl_manager *m = tl_manager_new(&(struct tl_options){
        .store_url = p->run.cfg.store,
        .worker_id = name,
        .node_id = "torture",
        .backoff_initial_ms = p->run.cfg.backoff_min_ms,
        .backoff_max_ms = p->run.cfg.backoff_max_ms,
        .heartbeat_ms = p->run.cfg.heartbeat_ms,
        .lock_timeout_ms = p->run.cfg.lock_timeout_ms,
    });
    if (m != NULL && tl_connect(m) != TL_OK) {
        (void)fprintf(stderr, "tl-torture: cannot open %s: %s\n", p->scheme, tl_errmsg(m));
        tl_manager_free(m);
        return NULL;
    }
    return m;
}

static int run(struct parent *p)
{
    struct tt_config *c = &p->run.cfg;
    struct tt_shared *sh = p->run.sh;
    uint32_t sweeper_slot = TT_MAX_WORKERS - 1;
    tl_manager *sweeper = NULL;

    if (c->scenario == TT_PARTITION) {
        if (tl_proxy_start(NULL, "127.0.0.1", tl_proxy_url_port(p->url), &p->proxy) != 0 ||
            tl_proxy_url_via(p->url, p->proxy.port, p->run.proxied_url,
                             sizeof(p->run.proxied_url)) != 0) {
            (void)fprintf(stderr, "tl-torture: cannot start the proxy (tl-proxy)\n");
            return EXIT_SETUP;
        }
    }
    p->start_ns = tt_now_ns();
    for (uint32_t i = 0; i < c->workers; i++) {
        int64_t skew = 0;
        if (c->scenario == TT_CLOCK_SKEW)
            skew = i % 3 == 0 ? c->skew_ms : i % 3 == 1 ? -c->skew_ms : 0;
        if (new_slot(p, c->cycles, skew, false) == UINT32_MAX) {
            (void)fprintf(stderr, "tl-torture: too many workers\n");
            return EXIT_USAGE;
        }
    }

    if (c->threads) {
        /* The sweeper's connection keeps the memory store alive after the workers end. */
        pthread_t th[TT_MAX_WORKERS];
        struct thread_arg args[TT_MAX_WORKERS];
        uint32_t started = 0;

        sweeper = sweeper_new(p, sweeper_slot);
        if (sweeper == NULL)
            return EXIT_SETUP;
        atomic_store(&sh->faults_done, 1); /* threads: no faults to wait for */
        for (uint32_t i = 0; i < c->workers; i++) {
            args[i].run = &p->run;
            args[i].slot = i;
            if (pthread_create(&th[i], NULL, thread_main, &args[i]) != 0) {
                fail_extra(p, "cannot start worker thread %u", i);
                break;
            }
            started++;
        }
        for (uint32_t i = 0; i < started; i++)
            (void)pthread_join(th[i], NULL);
    } else {
        for (uint32_t i = 0; i < c->workers; i++)
            start_worker(p, i);
        fault_loop(p);
        while (alive_count(p) > 0)
            reap(p, true);
        sweeper = sweeper_new(p, sweeper_slot);
        if (sweeper == NULL)
            return EXIT_SETUP;
    }

    sweep(p, sweeper, sweeper_slot);
    struct tt_history *hist = calloc(c->keys, sizeof(*hist));
    if (hist != NULL)
        collect_history(p, sweeper, hist);

    /* The proofs. */
    uint32_t nsec = atomic_load(&sh->nsections);
    if (nsec > sh->max_sections)
        nsec = sh->max_sections;
    struct tt_freeze freezes[TT_MAX_FAULTS];
    size_t nfreezes = 0;
    for (uint32_t i = 0; i < sh->nfaults; i++) {
        if (sh->faults[i].kind == TT_FAULT_PARTITION)
            freezes[nfreezes++] = (struct tt_freeze){.start_ns = sh->faults[i].start_ns,
                                                     .end_ns = sh->faults[i].end_ns};
    }
    struct tt_log log = {
        .nkeys = c->keys,
        .sec = tt_sections(sh),
        .nsec = nsec,
        .wr = tt_writes(sh),
        .nwr = sh->nwrites,
        .lock_timeout_ms = c->lock_timeout_ms,
        .steal_slack_ms = c->steal_slack_ms,
        .history = p->history_kept ? hist : NULL,
        .worker_name = tt_worker_name,
        .freezes = freezes,
        .nfreezes = nfreezes,
    };
    struct tt_verdict v;
    uint64_t failures = tt_check(&log, &v);
    if (c->scenario == TT_LINE)
        failures += check_line(p);
    uint64_t late_rejected = 0, stops_learned = 0;
    check_scenario(p, &v, &late_rejected, &stops_learned);
    if (c->scenario == TT_DEADLOCK) {
        p->wait_interval_ms = waiter_timeout_ms(p) / (p->github ? 4 : 3);
        check_deadlocks(p);
    }
    if (atomic_load(&sh->log_full))
        fail_extra(p, "the shared log was too small: the run proves nothing");
    if (v.sections == 0)
        fail_extra(p, "no critical section completed: the run proves nothing");
    for (uint32_t s = 0; s < sh->nworkers; s++) {
        if (sh->workers[s].n.errors_without_message > 0)
            fail_extra(p, "w%u: %llu failed call(s) left tl_errmsg() empty", s,
                       (unsigned long long)sh->workers[s].n.errors_without_message);
    }
    failures += p->extra_failures;

    for (uint64_t i = 0; i < v.nviolated && i < TT_MAX_VIOLATED; i++)
        (void)fprintf(stderr, "tl-torture: FAILED: %s\n", v.violated[i]);
    for (uint32_t i = 0; i < p->nextra; i++)
        (void)fprintf(stderr, "tl-torture: FAILED: %s\n", p->extra[i]);

    char *line = summary(p, &v, failures, late_rejected, stops_learned);
    if (line != NULL) {
        (void)printf("%s\n", line);
        if (p->report != NULL) {
            FILE *f = fopen(p->report, "w");
            if (f == NULL || fprintf(f, "%s\n", line) < 0 || fclose(f) != 0)
                (void)fprintf(stderr, "tl-torture: cannot write %s\n", p->report);
        }
        free(line);
    }
    if (hist != NULL) {
        for (uint32_t k = 0; k < c->keys; k++)
            tl_event_array_free(hist[k].ev, hist[k].n);
        free(hist);
    }
    tl_manager_free(sweeper);
    return failures == 0 ? 0 : EXIT_PROOF_FAILED;
}

int main(int argc, char **argv)
{
    static struct parent p; /* large: keep it off the stack */
    int rc = parse_args(&p, argc, argv);

    if (rc >= 0)
        return rc;
    if (tl__store_find(p.run.cfg.store) == NULL) {
        if (tl__store_known_but_missing(p.run.cfg.store)) {
            (void)fprintf(stderr, "tl-torture: skipped: this build has no %.*s store\n",
                          (int)strcspn(p.run.cfg.store, ":"), p.run.cfg.store);
            return EXIT_SKIP;
        }
        (void)fprintf(stderr, "tl-torture: unknown store URL scheme\n");
        return EXIT_USAGE;
    }
    (void)setvbuf(stdout, NULL, _IOLBF, 0);
    rc = setup(&p);
    if (rc < 0) {
        const char *why = not_applicable(&p);
        bool demo = p.run.cfg.scenario == TT_CLOCK_SKEW ||
                    (p.run.cfg.scenario == TT_DEADLOCK && p.features.modes);
        if (why != NULL && !(p.run_anyway && demo)) {
            (void)fprintf(stderr, "tl-torture: skipped: %s on %s: %s\n",
                          scenario_names[p.run.cfg.scenario], p.scheme, why);
            rc = EXIT_SKIP;
        } else {
            rc = run(&p);
        }
    }
    if (tl_proxy_stop(&p.proxy) != 0)
        (void)fprintf(stderr, "tl-torture: the proxy did not end cleanly\n");
    if (p.github_spawned)
        tt_github_stop();
    tt_shared_destroy(p.run.sh);
    remove_dir(p.dir);
    return rc;
}
