/*
 * cmd_run.c -- `tasklock run KEY [options] -- COMMAND [ARG]...`: hold a lock while a command
 * runs, like flock(1), but with heartbeats, an acquire timeout and a guarantee that the command
 * stops when the lock is lost.
 *
 * The command runs in its own process group, so that it and everything it starts can be
 * signalled as one. tasklock forwards SIGINT, SIGTERM and SIGHUP to the group; when the lock is
 * lost (stolen, forced, or not renewed by its loss deadline) the group gets SIGTERM and, after
 * --kill-after or by half the time left before the lock expires if that is sooner, SIGKILL;
 * then tasklock releases the lock if it is still its own and exits 5. Whatever happens, the
 * group is gone before tasklock exits.
 *
 * Signal handlers and the lost callback (which runs on the library's heartbeat thread) only
 * write a byte to a self-pipe and set a flag; the main thread waits in poll() and does the work.
 * On Linux tasklock is also a child subreaper, so that processes the command leaves behind are
 * reparented to it and can be reaped, and the command gets SIGKILL should tasklock itself die.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "child.h"
#include "cli.h"

extern char **environ;

enum { OPT_HEARTBEAT = TL_OPT_COMMAND, OPT_KILL_AFTER, OPT_LOST_EXIT_CODE };

#define DEFAULT_KILL_AFTER_MS 10000
#define LEFTOVER_KILL_WAIT_MS 5000 /* after SIGKILL, how long to wait for the group to go */

struct run {
    const struct tl_cli *cli;
    const char *key;
    tl_lock *lock;
    struct tl_cli_child c; /* the command */
    int wake_rd;           /* the self-pipe's read end */
    bool lost;             /* the lock was lost while the command ran */
};

/* The main loop: until the command has ended. */
static void supervise(struct run *r)
{
    struct tl_cli_child *kids[] = {&r->c};

    while (!r->c.exited) {
        int sig = tl_cli_take_signal();

        for (; sig != 0; sig = tl_cli_take_signal())
            (void)kill(-r->c.pid, sig);
        if (!r->lost && tl_lock_is_lost(r->lock)) {
            char after[32];

            r->lost = true;
            /* Not renewed in time: the lock is ours for a margin more, then anyone may take it.
             * The command must be gone by then, whatever --kill-after says: SIGKILL halfway. */
            int64_t left = tl_lock_expires_in_ms(r->lock);
            int64_t grace = r->c.kill_after_ms;
            if (left > 0 && left / 2 < grace)
                grace = left / 2;
            tl_cli_child_stop(&r->c, grace);
            tl_cli_format_age(grace, after, sizeof(after));
            tl_cli_error(r->cli,
                         "lost the lock of %s (token %llu): it was stolen, forced or not "
                         "renewed in time; stopping the command (SIGTERM, SIGKILL after %s)",
                         r->key, (unsigned long long)tl_lock_token(r->lock), after);
        }
        tl_cli_child_escalate(&r->c);
        tl_cli_reap(kids, 1);
        if (!r->c.exited &&
            tl_cli_wait_event(r->wake_rd, r->c.report_rd, r->c.killed_at != 0 ? 0 : r->c.kill_at))
            tl_cli_child_read_report(&r->c);
    }
    tl_cli_child_read_report(&r->c); /* the child wrote it before exiting, if exec failed */
}

/* Whatever the command left in its group: SIGTERM, then SIGKILL after --kill-after (counted
 * from the SIGTERM sent when the lock was lost, if it was). */
static void end_group(struct run *r)
{
    struct tl_cli_child *kids[] = {&r->c};

    tl_cli_reap(kids, 1);
    while (tl_cli_group_alive(r->c.pid)) {
        tl_cli_child_stop(&r->c, -1);
        tl_cli_child_escalate(&r->c);
        if (r->c.killed_at != 0 && tl_cli_mono_ms() - r->c.killed_at > LEFTOVER_KILL_WAIT_MS) {
            tl_cli_error(r->cli, "processes of the command's group %ld survived SIGKILL",
                         (long)r->c.pid);
            break;
        }
        (void)tl_cli_take_signal(); /* the group is being stopped already */
        (void)tl_cli_wait_event(r->wake_rd, -1, tl_cli_mono_ms() + 20);
        tl_cli_reap(kids, 1);
    }
}

static const char help[] =
    "Acquires the lock of KEY (default strategy steal-stale), runs COMMAND while holding it\n"
    "and heartbeating it, and releases it when COMMAND ends. COMMAND runs in its own process\n"
    "group with TASKLOCK_KEY, TASKLOCK_TOKEN, TASKLOCK_WORKER, TASKLOCK_STORE (the store's\n"
    "URL, the default SQLite file written out) and TASKLOCK_HOLDING (the locks held for it, for\n"
    "the deadlock check of a tasklock inside it) in its environment. SIGINT, SIGTERM and SIGHUP\n"
    "sent to tasklock are forwarded to the group; while tasklock waits for the lock, they\n"
    "make it leave KEY's line and exit 128 + the signal's number.\n"
    "If the lock is lost (stolen, forced, or not renewed in time: declared lost a margin\n"
    "before another worker could take it), the group gets SIGTERM, then SIGKILL after\n"
    "--kill-after, or sooner so that it is gone before the lock could be taken; tasklock\n"
    "then releases the lock if it is still its own (trying for up to 3s) and exits 5 (or\n"
    "--lost-exit-code). No process of the group is left running when tasklock exits.\n"
    "\n"
    "Options (and the acquire options: --strategy, --retries, --wait, --lock-timeout,\n"
    "--priority, --shared, --slots, --info; see 'tasklock help acquire'):\n"
    "  --heartbeat DURATION      renew this often (default: a third of the lock timeout, at\n"
    "                            most 30s; must be shorter than the lock timeout)\n"
    "  --kill-after DURATION     SIGKILL this long after SIGTERM (default 10s; 0: at once)\n"
    "  -E, --conflict-exit-code N\n"
    "                            exit with N (0-255) instead of 1 when KEY is held\n"
    "  --lost-exit-code N        exit with N (0-255) instead of 5 when the lock is lost\n"
    "\n"
    "Exit status: COMMAND's own; 126 not executable, 127 not found, 128+N killed by signal\n"
    "N; 1 (or -E) held by another worker, 2 usage error, 3 store error, 5 (or\n"
    "--lost-exit-code) lock lost. A command may exit 1 to 5 itself: give -E and\n"
    "--lost-exit-code values it never uses (say 75 and 76) to tell them apart.\n"
    "\n"
    "Example: tasklock run nightly-backup --wait 10m -- ./backup.sh --full\n";

/* What run does besides acquiring: its own options. */
struct run_opts {
    uint32_t kill_after_ms;
    int conflict_rc; /* when the key is held */
    int lost_rc;     /* when the lock is lost */
};

static int parse(struct tl_cli *cli, int argc, char **argv, bool dashdash, struct tl_cli_acquire *a,
                 struct tl_options *o, struct run_opts *ro)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS,
                                             TL_CLI_ACQUIRE_LONGOPTS,
                                             {"heartbeat", 1, NULL, OPT_HEARTBEAT},
                                             {"kill-after", 1, NULL, OPT_KILL_AFTER},
                                             {"conflict-exit-code", 1, NULL, 'E'},
                                             {"lost-exit-code", 1, NULL, OPT_LOST_EXIT_CODE},
                                             {0}};
    uint64_t v;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":E:" TL_CLI_GLOBAL_SHORTOPTS, longopts);
        int rc = -1;

        if (opt == -1)
            break;
        if (opt == OPT_HEARTBEAT) {
            if (!tl_cli_duration(cli, "--heartbeat", optarg, &o->heartbeat_ms))
                return TL_EXIT_USAGE;
        } else if (opt == OPT_KILL_AFTER) {
            if (strcmp(optarg, "0") == 0) /* SIGKILL right after SIGTERM */
                ro->kill_after_ms = 0;
            else if (!tl_cli_duration(cli, "--kill-after", optarg, &ro->kill_after_ms))
                return TL_EXIT_USAGE;
        } else if (opt == 'E' || opt == OPT_LOST_EXIT_CODE) {
            bool conflict = opt == 'E';

            if (!tl_cli_uint(cli, conflict ? "--conflict-exit-code" : "--lost-exit-code", optarg, 0,
                             255, &v))
                return TL_EXIT_USAGE;
            *(conflict ? &ro->conflict_rc : &ro->lost_rc) = (int)v;
        } else {
            rc = tl_cli_acquire_opt(cli, a, opt, optarg);
            if (rc == 0)
                rc = tl_cli_global_opt(cli, opt, optarg, argv);
        }
        if (rc >= 0)
            return rc;
    }
    if (argc == optind)
        return tl_cli_usage_error(cli, "give the KEY to lock");
    if (argc - optind > 1)
        return tl_cli_usage_error(cli, dashdash ? "give one KEY before --, not more"
                                                : "put -- between the KEY and the command: "
                                                  "tasklock run KEY [options] -- COMMAND "
                                                  "[ARG]...");
    if (!tl_cli_key(cli, argv[optind]))
        return TL_EXIT_USAGE;
    o->lock_timeout_ms = a->opts.lock_timeout_ms;
    return tl_cli_acquire_finish(cli, a) == TL_EXIT_OK ? -1 : TL_EXIT_STORE;
}

/* Runs the command while holding `lock`; returns the exit code. */
static int run_locked(const struct tl_cli *cli, const char *key, tl_lock *lock, tl_manager *m,
                      char **cmd, const struct run_opts *ro, int wake_rd)
{
    struct run r = {.cli = cli,
                    .key = key,
                    .lock = lock,
                    .wake_rd = wake_rd,
                    .c = {.pid = -1, .report_rd = -1, .kill_after_ms = ro->kill_after_ms}};
    char summary[128], err[128];

    int sig = tl_cli_take_signal(); /* told to stop while acquiring: do not start the command */
    if (sig != 0) {
        (void)tl_release(lock, "interrupted before the command started");
        return 128 + sig;
    }
    if (tl_cli_child_start(cli, &r.c, cmd, key, tl_lock_token(lock), m) != 0) {
        (void)tl_release(lock, "tasklock could not start the command");
        return TL_EXIT_STORE;
    }
    tl_cli_info(cli, "holding %s (token %llu); started %s as process group %ld", key,
                (unsigned long long)tl_lock_token(lock), cmd[0], (long)r.c.pid);
    supervise(&r);
    end_group(&r);
    tl_cli_child_close(&r.c);

    int rc = tl_cli_child_exit_code(&r.c, summary, sizeof(summary));
    if (r.c.exec_errno != 0)
        tl_cli_error(cli, "cannot run \"%s\": %s", cmd[0], tl_cli_strerror(r.c.exec_errno, err));
    if (r.lost) {
        tl_cli_release_lost(cli, key, lock, m, "tasklock run");
        return ro->lost_rc;
    }

    tl_status st = tl_release(lock, summary);
    if (st == TL_OK)
        tl_cli_info(cli, "%s; released %s", summary, key);
    if (st == TL_ENOTOWNER) {
        tl_cli_error(cli, "lost the lock of %s before the command ended: %s", key, tl_errmsg(m));
        return ro->lost_rc;
    }
    if (st != TL_OK)
        tl_cli_error(cli, "could not release %s: %s; it goes stale after its lock timeout", key,
                     tl_errmsg(m));
    return rc;
}

static int run_run(struct tl_cli *cli, int argc, char **argv)
{
    struct tl_cli_acquire a;
    struct tl_options o = {.on_lost = tl_cli_on_lost};
    struct run_opts ro = {.kill_after_ms = DEFAULT_KILL_AFTER_MS,
                          .conflict_rc = TL_EXIT_BUSY,
                          .lost_rc = TL_EXIT_LOST};
    int wake_rd = -1;
    tl_manager *m = NULL;
    tl_lock *lock = NULL;
    char err[128];
    int rc, split = 1;

    /* Everything after the first "--" is the command, untouched by getopt. */
    while (split < argc && strcmp(argv[split], "--") != 0)
        split++;
    tl_cli_acquire_init(&a, TL_STEAL_STALE);
    rc = parse(cli, split, argv, split < argc, &a, &o, &ro);
    if (rc >= 0)
        goto out;
    const char *key = argv[optind];
    if (split >= argc - 1) {
        rc = tl_cli_usage_error(cli, split == argc ? "put -- before the command: tasklock run "
                                                     "KEY [options] -- COMMAND [ARG]..."
                                                   : "no command after --");
        goto out;
    }

    if ((wake_rd = tl_cli_wake_open()) < 0) {
        tl_cli_error(cli, "cannot create a pipe: %s", tl_cli_strerror(errno, err));
        rc = TL_EXIT_STORE;
        goto out;
    }
    if ((rc = tl_cli_connect(cli, &o, &m)) != TL_EXIT_OK)
        goto out;
#if defined(__linux__)
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1); /* the command's orphans come back to us */
#endif

    /* A signal while we wait for the lock makes the acquire leave the key's line (within
     * 100 ms) and us exit as if killed by it; one that comes after the acquire won stops us
     * before the command starts (run_locked). */
    if (tl_cli_set_handlers(true) != 0) {
        tl_cli_error(cli, "cannot install signal handlers: %s", tl_cli_strerror(errno, err));
        rc = TL_EXIT_STORE;
        goto out;
    }
    tl_cli_cancel_flag = 0;
    a.opts.cancel = &tl_cli_cancel_flag;
    tl_status st = tl_acquire(m, key, &a.opts, &lock);
    a.opts.cancel = NULL;
    if (st == TL_ECANCELED) {
        int sig = tl_cli_take_signal();

        if (!cli->quiet)
            tl_cli_error(cli, "%s", tl_errmsg(m));
        rc = 128 + (sig != 0 ? sig : SIGTERM);
        goto out;
    }
    if (st == TL_EBUSY) {
        char hint[512];

        if (cli->quiet)
            (void)tl_cli_fail_silently(cli, m, st);
        else
            (void)tl_cli_fail(cli, m, st, tl_cli_busy_hint(&a, m, key, hint, sizeof(hint)));
        rc = ro.conflict_rc;
        goto out;
    }
    if (st != TL_OK) {
        rc = tl_cli_fail(cli, m, st, NULL);
        goto out;
    }
    rc = run_locked(cli, key, lock, m, argv + split + 1, &ro, wake_rd);

out:
    (void)tl_cli_set_handlers(false);
    tl_lock_free(lock);
    tl_manager_free(m); /* stops the heartbeat thread: the lost callback cannot fire after */
    tl_cli_wake_close();
    tl_cli_acquire_fini(&a);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_run = {
    .name = "run",
    .usage = "run KEY [acquire options] [--heartbeat DURATION] [--kill-after DURATION]\n"
             "    [-E|--conflict-exit-code N] [--lost-exit-code N] -- COMMAND [ARG]...",
    .summary = "Run a command while holding a lock, with heartbeats",
    .help = help,
    .run = run_run,
};
