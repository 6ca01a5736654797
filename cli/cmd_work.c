/*
 * cmd_work.c -- `tasklock work [KEY... | --keys-from FILE | --label L] [-j N] [--forever] --
 * COMMAND [ARG]...`: the worker loop. Claim the next task, run COMMAND on it exactly as `run`
 * does (its own process group, TASKLOCK_KEY/_TOKEN in its environment, heartbeats, stopped when
 * the lock is lost, signals forwarded), release it -- done when COMMAND exits 0, not done
 * otherwise, so that another worker may retry it -- and repeat until no task is left.
 *
 * One thread, N slots: the main loop waits in poll() on the self-pipe (signals, SIGCHLD, the
 * lost callback) and does everything itself. A finished command's release and the next claim
 * are one store call (tl_release_claim_next). While commands run, a slot that found every
 * candidate taken tries again after a short backoff and whenever a command ends; with nothing
 * running, the loop waits in the library's claim-next, woken by the store.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "child.h"
#include "cli.h"

enum { OPT_FOREVER = TL_OPT_COMMAND, OPT_KILL_AFTER, OPT_HEARTBEAT };

#define DEFAULT_KILL_AFTER_MS 10000
#define MAX_JOBS              256
#define BUSY_RETRY_MIN_MS     100  /* a slot that found nothing free tries again this soon... */
#define BUSY_RETRY_MAX_MS     2000 /* ...backing off to this */
#define FOREVER_POLL_MS       2000 /* --forever with every task done: look again this often */

struct slot {
    int id;
    tl_lock *lock; /* NULL: idle */
    struct tl_cli_child c;
    bool lost;
    int64_t started;
};

struct work {
    struct tl_cli *cli;
    tl_manager *m;
    struct tl_cli_acquire *a;
    struct tl_cli_candidates *cand;
    char **cmd;
    bool forever;
    struct slot *slots;
    size_t nslots;
    int wake_rd;
    /* The candidates this worker still offers itself: a task whose command failed here is
     * left for another worker rather than retried at once by this one. */
    const char **active;
    size_t nactive;
    char **failed_keys;
    size_t nfailed;
    unsigned done, failed, lost;
    int stop_sig;     /* a forwarded signal came: no new tasks */
    bool none_left;   /* claim-next said TL_ENOTASK */
    bool busy;        /* claim-next said TL_EBUSY: tasks held by others */
    int fatal;        /* a store error stopped the loop: its exit code */
    int64_t retry_at; /* when an idle slot tries again (monotonic ms); 0: now */
    uint32_t retry_ms;
    int64_t start;
    uint64_t stale_seen; /* the manager's stale_locks_claimed at the last start */
};

static const char help[] =
    "The worker loop: claims the next task (as 'tasklock claim-next'), runs COMMAND on it as\n"
    "'tasklock run' does (its own process group; TASKLOCK_KEY, TASKLOCK_TOKEN, TASKLOCK_WORKER\n"
    "and TASKLOCK_STORE in its environment; the lock heartbeated; SIGTERM then SIGKILL if the\n"
    "lock is lost; SIGINT, SIGTERM and SIGHUP forwarded), releases it -- marked done when\n"
    "COMMAND exits 0, not done otherwise, so that another worker may retry it -- and repeats\n"
    "until no task is left. A task whose command failed is not taken again by this process.\n"
    "A finished task's release and the next claim are one store call.\n"
    "\n"
    "Each task's start and end is one line on standard error (--json: one JSON object per\n"
    "line), and a summary at the end: done, failed, lost, time. Standard output is the\n"
    "commands'.\n"
    "\n"
    "Candidates: KEY arguments, --keys-from FILE or --label L (see 'tasklock help\n"
    "claim-next').\n"
    "\n"
    "Options (and the acquire options: --strategy, --retries, --wait, --lock-timeout, --info;\n"
    "see 'tasklock help acquire'):\n"
    "  -j, --jobs N              run N tasks at once in this process (1-256, default 1)\n"
    "  --forever                 when no task is left, wait for one (a reopened task) instead\n"
    "                            of exiting; when every candidate is held, wait without limit\n"
    "  --heartbeat DURATION      renew this often (default: a third of the lock timeout)\n"
    "  --kill-after DURATION     SIGKILL this long after SIGTERM (default 10s)\n"
    "With --strategy steal-stale a task whose holder is stale (crashed) is taken over; the\n"
    "default, retry, waits for held tasks to be released within the acquire's patience\n"
    "(--wait, or the retries' backoff, about 31s).\n"
    "\n"
    "Exit status: 0 no task left and every command here succeeded; 1 tasks left: held by\n"
    "other workers when patience ran out, or failed here; 2 usage error; 3 store error; 5 a\n"
    "lock was lost (its command was stopped); 128+N stopped by signal N.\n"
    "\n"
    "Example: tasklock work --keys-from tasks.txt -j 4 -- ./build-one.sh\n";

/* ---- events ---- */

static void event(const struct work *w, const struct slot *s, const char *what, const char *key,
                  uint64_t token, int code, const char *text)
{
    double secs = (double)(tl_cli_mono_ms() - s->started) / 1000.0;

    if (w->cli->json) {
        json_t *doc =
            json_pack("{s:s, s:s, s:I, s:i, s:s}", "event", what, "key", key, "token",
                      (json_int_t)token, "slot", s->id, "worker", tl_manager_worker_id(w->m));
        if (doc != NULL && strcmp(what, "start") == 0)
            (void)json_object_set_new(doc, "took_stale", json_boolean(code != 0));
        if (doc != NULL && strcmp(what, "start") != 0) {
            (void)json_object_set_new(doc, "exit", json_integer(code));
            (void)json_object_set_new(doc, "seconds", json_real(secs));
        }
        char *line = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(4)) : NULL;
        if (line != NULL)
            (void)fprintf(stderr, "%s\n", line);
        free(line);
        json_decref(doc);
        return;
    }
    if (w->cli->quiet)
        return;
    if (strcmp(what, "start") == 0)
        (void)fprintf(stderr, "tasklock: work: %s: started (token %llu)\n", key,
                      (unsigned long long)token);
    else
        (void)fprintf(stderr, "tasklock: work: %s: %s in %.1fs (%s)\n", key, what, secs, text);
}

static void summary(const struct work *w)
{
    double secs = (double)(tl_cli_mono_ms() - w->start) / 1000.0;

    struct tl_metrics mt;

    tl_metrics_get(w->m, &mt, sizeof(mt));
    if (w->cli->json) {
        json_t *doc = json_pack(
            "{s:s, s:i, s:i, s:i, s:f, s:b, s:I, s:I, s:I, s:f, s:f}", "event", "summary", "done",
            w->done, "failed", w->failed, "lost", w->lost, "seconds", secs, "tasks_left",
            !w->none_left, "acquisitions", (json_int_t)mt.total_acquisitions, "conflicts",
            (json_int_t)mt.total_conflicts, "stale_locks_claimed",
            (json_int_t)mt.stale_locks_claimed, "acquisition_ms_average", mt.average_acquisition_ms,
            "acquisition_ms_p99", mt.p99_acquisition_ms);
        char *line = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(4)) : NULL;
        if (line != NULL)
            (void)fprintf(stderr, "%s\n", line);
        free(line);
        json_decref(doc);
        return;
    }
    if (!w->cli->quiet)
        (void)fprintf(stderr, "tasklock: work: %u done, %u failed, %u lost in %.1fs%s\n", w->done,
                      w->failed, w->lost, secs,
                      w->none_left ? "; no task left" : "; tasks are left");
}

/* ---- candidates ---- */

static bool failed_here(const struct work *w, const char *key)
{
    for (size_t i = 0; i < w->nfailed; i++) {
        if (strcmp(w->failed_keys[i], key) == 0)
            return true;
    }
    return false;
}

/* Leaves `key` to other workers from now on. */
static void forget(struct work *w, const char *key)
{
    char **f = realloc(w->failed_keys, (w->nfailed + 1) * sizeof(*f));

    if (f == NULL)
        return; /* retried here, then: still correct */
    w->failed_keys = f;
    if ((f[w->nfailed] = strdup(key)) == NULL)
        return;
    w->nfailed++;
    size_t n = 0;
    for (size_t i = 0; i < w->nactive; i++) {
        if (!failed_here(w, w->active[i]))
            w->active[n++] = w->active[i];
    }
    w->nactive = n;
}

static tl_status claim(struct work *w, const struct tl_acquire_opts *o, tl_lock **out)
{
    if (w->cand->label != NULL)
        return tl_claim_next_label(w->m, w->cand->label, o, out);
    return tl_claim_next(w->m, w->active, w->nactive, o, out);
}

/* One attempt, no waiting: fail-fast, or steal-stale without retries. */
static struct tl_acquire_opts attempt_opts(const struct work *w)
{
    struct tl_acquire_opts o = w->a->opts;

    o.retries = TL_NO_RETRIES;
    o.deadline_ms = 0;
    o.cancel = NULL;
    if (o.strategy != TL_STEAL_STALE)
        o.strategy = TL_FAIL_FAST;
    return o;
}

/* What a claim's status means for the loop. Returns true when a lock came. */
static bool claimed(struct work *w, tl_status st)
{
    w->busy = false;
    if (st == TL_OK) {
        w->none_left = false;
        w->retry_ms = 0;
        w->retry_at = 0;
        return true;
    }
    if (st == TL_ENOTASK) {
        w->none_left = true;
        w->retry_at = tl_cli_mono_ms() + BUSY_RETRY_MAX_MS; /* a reopened task, at the most */
        return false;
    }
    if (st == TL_EBUSY) {
        w->none_left = false;
        w->busy = true;
        w->retry_ms = w->retry_ms ? w->retry_ms * 2 : BUSY_RETRY_MIN_MS;
        if (w->retry_ms > BUSY_RETRY_MAX_MS)
            w->retry_ms = BUSY_RETRY_MAX_MS;
        w->retry_at = tl_cli_mono_ms() + w->retry_ms;
        return false;
    }
    if (st == TL_ECANCELED)
        return false;
    w->fatal = tl_cli_fail(w->cli, w->m, st, NULL);
    return false;
}

/* ---- slots ---- */

static size_t running(const struct work *w)
{
    size_t n = 0;

    for (size_t i = 0; i < w->nslots; i++)
        n += w->slots[i].lock != NULL;
    return n;
}

static void start(struct work *w, struct slot *s, tl_lock *lock)
{
    s->lock = lock;
    s->lost = false;
    s->started = tl_cli_mono_ms();
    s->c.kill_after_ms = w->slots[0].c.kill_after_ms;
    struct tl_metrics mt;
    tl_metrics_get(w->m, &mt, sizeof(mt));
    bool stale = mt.stale_locks_claimed > w->stale_seen;
    w->stale_seen = mt.stale_locks_claimed;
    event(w, s, "start", tl_lock_key(lock), tl_lock_token(lock), stale, NULL);
    if (stale && !w->cli->json && !w->cli->quiet)
        (void)fprintf(stderr, "tasklock: work: %s: its holder was stale; taken over\n",
                      tl_lock_key(lock));
    if (tl_cli_child_start(w->cli, &s->c, w->cmd, tl_lock_key(lock), tl_lock_token(lock), w->m) !=
        0) {
        (void)tl_release(lock, "tasklock work could not start the command");
        tl_lock_free(lock);
        s->lock = NULL;
        w->fatal = TL_EXIT_STORE;
    }
}

/* A slot's command ended: release its lock (done on success) and, unless stopping, claim the
 * next task into the same slot in the same store call. */
static void finish(struct work *w, struct slot *s)
{
    char text[128], err[128];
    tl_lock *lock = s->lock;
    char key[256];
    uint64_t token = tl_lock_token(lock);

    (void)snprintf(key, sizeof(key), "%s", tl_lock_key(lock));
    tl_cli_child_read_report(&s->c);
    tl_cli_child_close(&s->c);
    int code = tl_cli_child_exit_code(&s->c, text, sizeof(text));
    if (s->c.exec_errno != 0)
        tl_cli_error(w->cli, "cannot run \"%s\": %s", w->cmd[0],
                     tl_cli_strerror(s->c.exec_errno, err));
    s->lock = NULL;
    if (s->lost) {
        w->lost++;
        event(w, s, "lost", key, token, code, "the lock was lost; the command was stopped");
        tl_cli_release_lost(w->cli, key, lock, w->m, "tasklock work");
        tl_lock_free(lock);
        return;
    }

    bool ok = code == 0;
    bool next = w->stop_sig == 0 && w->fatal == 0 && w->cand->label == NULL && w->nactive > 0;
    const struct tl_acquire_opts o = attempt_opts(w);
    tl_lock *again = NULL;
    tl_status st;
    if (!ok)
        forget(w, key); /* before the claim: not this one again */
    if (next && (ok || w->nactive > 0)) {
        st = tl_release_claim_next(lock, text, ok, w->active, w->nactive, &o, &again);
    } else {
        st = tl_release_with(lock, &(struct tl_release_opts){.summary = text, .done = ok});
        next = false;
    }
    bool released = tl_lock_is_released(lock);
    if (!released) {
        tl_cli_error(w->cli, "could not release %s: %s", key, tl_errmsg(w->m));
        if (st == TL_ENOTOWNER || st == TL_ELOST) {
            w->lost++;
            event(w, s, "lost", key, token, code, "the lock was taken before the release");
        } else {
            w->failed++;
            event(w, s, "failed", key, token, code, "not released; it goes stale");
        }
    } else {
        *(ok ? &w->done : &w->failed) += 1;
        event(w, s, ok ? "done" : "failed", key, token, code, text);
    }
    tl_lock_free(lock);
    if (!next || !released) {
        return;
    }
    if (claimed(w, st))
        start(w, s, again);
}

/* Fills idle slots with one attempt each, until one finds nothing. */
static void fill(struct work *w)
{
    if (w->stop_sig != 0 || w->fatal != 0 || (w->retry_at != 0 && tl_cli_mono_ms() < w->retry_at))
        return;
    const struct tl_acquire_opts o = attempt_opts(w);
    for (size_t i = 0; i < w->nslots && w->fatal == 0; i++) {
        struct slot *s = &w->slots[i];
        tl_lock *lock = NULL;

        if (s->lock != NULL)
            continue;
        if (!claimed(w, claim(w, &o, &lock)))
            break;
        start(w, s, lock);
    }
}

/* Nothing runs and nothing was free: wait in the library, woken by the store. Returns whether
 * the loop goes on. */
static bool wait_idle(struct work *w)
{
    if (w->none_left) {
        if (!w->forever)
            return false;
        (void)tl_cli_wait_event(w->wake_rd, -1, tl_cli_mono_ms() + FOREVER_POLL_MS);
        w->retry_at = 0;
        return true;
    }
    struct tl_acquire_opts o = w->a->opts;
    tl_lock *lock = NULL;

    if (o.strategy == TL_FAIL_FAST)
        return false;
    tl_cli_cancel_flag = 0;
    o.cancel = &tl_cli_cancel_flag;
    tl_status st = claim(w, &o, &lock);
    if (st == TL_EBUSY && w->forever) {
        w->retry_at = 0;
        return true;
    }
    if (claimed(w, st)) {
        start(w, &w->slots[0], lock);
        return true;
    }
    if (st == TL_EBUSY && !w->cli->quiet)
        tl_cli_error(w->cli, "%s", tl_errmsg(w->m));
    return st == TL_ENOTASK && w->forever;
}

static void check_lost(struct work *w, struct slot *s)
{
    if (s->lost || !tl_lock_is_lost(s->lock))
        return;
    s->lost = true;
    int64_t left = tl_lock_expires_in_ms(s->lock);
    int64_t grace = s->c.kill_after_ms;
    if (left > 0 && left / 2 < grace)
        grace = left / 2;
    tl_cli_child_stop(&s->c, grace);
    tl_cli_error(w->cli,
                 "lost the lock of %s (token %llu): it was stolen, forced or not renewed in "
                 "time; stopping its command",
                 tl_lock_key(s->lock), (unsigned long long)tl_lock_token(s->lock));
}

static void loop(struct work *w)
{
    struct tl_cli_child **kids = calloc(w->nslots, sizeof(struct tl_cli_child *));

    if (kids == NULL) {
        tl_cli_error(w->cli, "out of memory");
        w->fatal = TL_EXIT_STORE;
        return;
    }
    for (size_t i = 0; i < w->nslots; i++)
        kids[i] = &w->slots[i].c;
    fill(w);
    for (;;) {
        int sig;
        while ((sig = tl_cli_take_signal()) != 0) {
            if (w->stop_sig == 0)
                tl_cli_note(w->cli, "signal %d: no new tasks; waiting for the running ones", sig);
            w->stop_sig = sig;
            for (size_t i = 0; i < w->nslots; i++) {
                if (w->slots[i].lock != NULL && w->slots[i].c.pid > 0)
                    (void)kill(-w->slots[i].c.pid, sig);
            }
        }
        int64_t wake_at = 0;
        tl_cli_reap(kids, w->nslots);
        for (size_t i = 0; i < w->nslots; i++) {
            struct slot *s = &w->slots[i];
            if (s->lock == NULL)
                continue;
            check_lost(w, s);
            tl_cli_child_escalate(&s->c);
            if (s->c.exited && !tl_cli_group_alive(s->c.pid)) {
                finish(w, s);
            } else if (s->c.exited) {
                tl_cli_child_stop(&s->c, -1); /* the command left processes behind */
                tl_cli_child_escalate(&s->c);
                wake_at = tl_cli_mono_ms() + 20;
            }
            if (s->lock != NULL && s->c.kill_at != 0 && s->c.killed_at == 0 &&
                (wake_at == 0 || s->c.kill_at < wake_at))
                wake_at = s->c.kill_at;
        }
        fill(w);
        if (running(w) == 0) {
            if (w->stop_sig != 0 || w->fatal != 0 || !wait_idle(w))
                break;
            continue;
        }
        if (w->busy && w->retry_at != 0 && (wake_at == 0 || w->retry_at < wake_at))
            wake_at = w->retry_at;
        (void)tl_cli_wait_event(w->wake_rd, -1, wake_at);
    }
    free((void *)kids);
}

/* ---- the command ---- */

static int parse(struct tl_cli *cli, int argc, char **argv, struct tl_cli_acquire *a,
                 struct tl_cli_candidates *c, struct tl_options *o, struct work *w,
                 uint32_t *kill_after_ms)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS,
                                             TL_CLI_ACQUIRE_LONGOPTS,
                                             {"keys-from", 1, NULL, TL_OPT_KEYS_FROM},
                                             {"label", 1, NULL, TL_OPT_LABEL},
                                             {"jobs", 1, NULL, 'j'},
                                             {"forever", 0, NULL, OPT_FOREVER},
                                             {"kill-after", 1, NULL, OPT_KILL_AFTER},
                                             {"heartbeat", 1, NULL, OPT_HEARTBEAT},
                                             {0}};
    uint64_t v;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":j:" TL_CLI_GLOBAL_SHORTOPTS, longopts);
        int rc = -1;

        if (opt == -1)
            break;
        if (opt == 'j') {
            if (!tl_cli_uint(cli, "--jobs", optarg, 1, MAX_JOBS, &v))
                return TL_EXIT_USAGE;
            w->nslots = (size_t)v;
        } else if (opt == OPT_FOREVER) {
            w->forever = true;
        } else if (opt == OPT_KILL_AFTER) {
            if (strcmp(optarg, "0") == 0)
                *kill_after_ms = 0;
            else if (!tl_cli_duration(cli, "--kill-after", optarg, kill_after_ms))
                return TL_EXIT_USAGE;
        } else if (opt == OPT_HEARTBEAT) {
            if (!tl_cli_duration(cli, "--heartbeat", optarg, &o->heartbeat_ms))
                return TL_EXIT_USAGE;
        } else {
            rc = tl_cli_candidates_opt(cli, c, opt, optarg);
            if (rc == 0)
                rc = tl_cli_acquire_opt(cli, a, opt, optarg);
            if (rc == 0)
                rc = tl_cli_global_opt(cli, opt, optarg, argv);
        }
        if (rc >= 0)
            return rc;
    }
    int rc = tl_cli_candidates_finish(cli, c, argc, argv);
    if (rc >= 0)
        return rc;
    if (a->opts.strategy == TL_FORCE_ACQUIRE)
        return tl_cli_usage_error(cli, "work takes free tasks: --strategy force is refused");
    if (a->opts.priority != 0)
        return tl_cli_usage_error(cli, "work does not wait in a line: --priority is refused");
    if (a->opts.mode != TL_EXCLUSIVE || a->opts.slots != 0)
        return tl_cli_usage_error(cli,
                                  "work claims each task for one worker: --shared and --slots "
                                  "are refused (to bound how many workers run at once, hold a "
                                  "semaphore around it: tasklock run --slots N KEY -- tasklock "
                                  "work ...)");
    o->lock_timeout_ms = a->opts.lock_timeout_ms;
    return tl_cli_acquire_finish(cli, a) == TL_EXIT_OK ? -1 : TL_EXIT_STORE;
}

static int run_work(struct tl_cli *cli, int argc, char **argv)
{
    struct tl_cli_acquire a;
    struct tl_cli_candidates c = {0};
    struct tl_options o = {.on_lost = tl_cli_on_lost};
    struct work w = {.cli = cli, .a = &a, .cand = &c, .nslots = 1, .wake_rd = -1};
    uint32_t kill_after_ms = DEFAULT_KILL_AFTER_MS;
    char err[128];
    int rc, split = 1;

    while (split < argc && strcmp(argv[split], "--") != 0)
        split++;
    tl_cli_acquire_init(&a, TL_RETRY);
    rc = parse(cli, split, argv, &a, &c, &o, &w, &kill_after_ms);
    if (rc >= 0)
        goto out;
    if (split >= argc - 1) {
        rc = tl_cli_usage_error(cli, split == argc ? "put -- before the command: tasklock work "
                                                     "[KEY...] [options] -- COMMAND [ARG]..."
                                                   : "no command after --");
        goto out;
    }
    w.cmd = argv + split + 1;
    w.slots = calloc(w.nslots, sizeof(*w.slots));
    w.active = calloc(c.n ? c.n : 1, sizeof(*w.active));
    if (w.slots == NULL || w.active == NULL) {
        tl_cli_error(cli, "out of memory");
        rc = TL_EXIT_STORE;
        goto out;
    }
    for (size_t i = 0; i < c.n; i++)
        w.active[i] = c.keys[i];
    w.nactive = c.n;
    for (size_t i = 0; i < w.nslots; i++) {
        w.slots[i].id = (int)i;
        w.slots[i].c = (struct tl_cli_child){.pid = -1, .report_rd = -1};
        w.slots[i].c.kill_after_ms = kill_after_ms;
    }
    if ((w.wake_rd = tl_cli_wake_open()) < 0) {
        tl_cli_error(cli, "cannot create a pipe: %s", tl_cli_strerror(errno, err));
        rc = TL_EXIT_STORE;
        goto out;
    }
    if ((rc = tl_cli_connect(cli, &o, &w.m)) != TL_EXIT_OK)
        goto out;
#if defined(__linux__)
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1); /* the commands' orphans come back to us */
#endif
    if (tl_cli_set_handlers(true) != 0) {
        tl_cli_error(cli, "cannot install signal handlers: %s", tl_cli_strerror(errno, err));
        rc = TL_EXIT_STORE;
        goto out;
    }
    if (c.label == NULL && c.n == 0) {
        /* Nothing to do: said the same way as claim-next says it. */
        tl_cli_error(cli, "no candidates were given");
        rc = TL_EXIT_NOTASK;
        goto out;
    }
    w.start = tl_cli_mono_ms();
    loop(&w);
    summary(&w);
    if (w.stop_sig != 0)
        rc = 128 + w.stop_sig;
    else if (w.fatal != 0)
        rc = w.fatal;
    else if (w.lost > 0)
        rc = TL_EXIT_LOST;
    else if (w.failed > 0 || !w.none_left)
        rc = TL_EXIT_BUSY;
    else
        rc = TL_EXIT_OK;

out:
    (void)tl_cli_set_handlers(false);
    tl_manager_free(w.m);
    tl_cli_wake_close();
    for (size_t i = 0; i < w.nfailed; i++)
        free(w.failed_keys[i]);
    free((void *)w.failed_keys);
    free((void *)w.active);
    free(w.slots);
    tl_cli_candidates_fini(&c);
    tl_cli_acquire_fini(&a);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_work = {
    .name = "work",
    .usage = "work [KEY... | --keys-from FILE | --label L] [-j N] [--forever] [acquire options]\n"
             "    [--heartbeat DURATION] [--kill-after DURATION] -- COMMAND [ARG]...",
    .summary = "The worker loop: claim the next task, run a command on it, release, repeat",
    .help = help,
    .run = run_work,
};
