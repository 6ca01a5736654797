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

#include "cli.h"

extern char **environ;

enum { OPT_HEARTBEAT = TL_OPT_COMMAND, OPT_KILL_AFTER, OPT_LOST_EXIT_CODE };

#define DEFAULT_KILL_AFTER_MS 10000
#define LEFTOVER_KILL_WAIT_MS 5000 /* after SIGKILL, how long to wait for the group to go */
#define LOST_RELEASE_MS       3000 /* after a loss, how long to try to release the lock */
#define LOST_RELEASE_PAUSE_MS 100

/*
 * The self-pipe and the signals seen. File scope because a signal handler can reach nothing
 * else: the one kind of mutable global this code has.
 */
static int wake_fd = -1;
static volatile sig_atomic_t got_sigint, got_sigterm, got_sighup;
static volatile sig_atomic_t acquire_cancel; /* a waiting acquire leaves the line */

static void wake(void)
{
    const char b = 1;
    ssize_t n = write(wake_fd, &b, 1); /* non-blocking: a full pipe is awake already */

    (void)n;
}

static void on_signal(int sig)
{
    int saved = errno;

    if (sig == SIGINT)
        got_sigint = 1;
    else if (sig == SIGTERM)
        got_sigterm = 1;
    else if (sig == SIGHUP)
        got_sighup = 1;
    if (sig != SIGCHLD)
        acquire_cancel = 1;
    wake();
    errno = saved;
}

/* The lost callback: on the heartbeat thread, so it only wakes the main loop, which asks
 * tl_lock_is_lost(). */
static void on_lost(void *ud, tl_lock *lock)
{
    int saved = errno;

    (void)ud;
    (void)lock;
    wake();
    errno = saved;
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP};

static int set_handlers(void (*fn)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fn;
    sa.sa_flags = SA_RESTART;
    (void)sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++) {
        if (sigaction(forwarded[i], &sa, NULL) != 0)
            return -1;
    }
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    return sigaction(SIGCHLD, &sa, NULL);
}

/* The next forwarded signal that arrived, or 0. */
static int take_signal(void)
{
    if (got_sigint) {
        got_sigint = 0;
        return SIGINT;
    }
    if (got_sigterm) {
        got_sigterm = 0;
        return SIGTERM;
    }
    if (got_sighup) {
        got_sighup = 0;
        return SIGHUP;
    }
    return 0;
}

static void drain(int fd)
{
    char buf[64];

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static int cloexec_pipe(int fds[2], bool nonblock)
{
    if (pipe(fds) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(fds[i], F_GETFL);

        if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0 ||
            (nonblock && (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0))) {
            (void)close(fds[0]);
            (void)close(fds[1]);
            return -1;
        }
    }
    return 0;
}

/* environ with TASKLOCK_KEY, _TOKEN, _WORKER and _STORE set. Freed with free_env(). */
static char **make_env(const char *key, uint64_t token, const char *worker, const char *store)
{
    static const char *const ours[] = {
        "TASKLOCK_KEY=", "TASKLOCK_TOKEN=", "TASKLOCK_WORKER=", "TASKLOCK_STORE="};
    const size_t nours = sizeof(ours) / sizeof(ours[0]);
    size_t n = 0;

    while (environ[n] != NULL)
        n++;

    char **env = calloc(n + nours + 1, sizeof(*env));
    if (env == NULL)
        return NULL;

    char tok[32];
    (void)snprintf(tok, sizeof(tok), "%llu", (unsigned long long)token);
    const char *values[] = {key, tok, worker, store};
    size_t k = 0;
    for (; k < nours; k++) {
        size_t a = strlen(ours[k]), b = strlen(values[k]);

        env[k] = malloc(a + b + 1);
        if (env[k] == NULL)
            goto err;
        memcpy(env[k], ours[k], a);
        memcpy(env[k] + a, values[k], b + 1);
    }
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;

        for (size_t j = 0; j < nours; j++)
            replaced = replaced || strncmp(environ[i], ours[j], strlen(ours[j])) == 0;
        if (!replaced)
            env[k++] = environ[i];
    }
    return env;

err:
    for (size_t i = 0; i < k; i++)
        free(env[i]);
    free(env);
    return NULL;
}

static void free_env(char **env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; i < 4; i++) /* the first four are ours; the rest are environ's */
        free(env[i]);
    free(env);
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void exec_child(char **cmd, char **env, int report_fd, pid_t parent)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    (void)sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        (void)sigaction(forwarded[i], &sa, NULL);
    (void)sigaction(SIGCHLD, &sa, NULL);
    (void)setpgid(0, 0);
#if defined(__linux__)
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* tasklock died before the line above */
        _exit(127);
#else
    (void)parent;
#endif
    environ = env;
    execvp(cmd[0], cmd);

    int err = errno;
    ssize_t n = write(report_fd, &err, sizeof(err));
    (void)n;
    _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
}

struct run {
    const struct tl_cli *cli;
    const char *key;
    tl_lock *lock;
    pid_t pid;      /* the command, leader of its process group */
    int wake_rd;    /* the self-pipe's read end */
    int report_rd;  /* errno of a failed exec, from the child; -1 when closed */
    int exec_errno; /* 0: the command started */
    bool exited;    /* the command's status is in `status` */
    int status;
    bool lost; /* the lock was lost while the command ran */
    uint32_t kill_after_ms;
    int64_t kill_at;   /* monotonic ms to send SIGKILL at; 0: SIGTERM not sent yet */
    int64_t killed_at; /* when SIGKILL was sent; 0: not yet */
};

/* SIGTERM to the group, once; SIGCONT too, so that a stopped process can act on it. */
static void stop_group(struct run *r)
{
    if (r->kill_at != 0 || r->killed_at != 0)
        return;
    (void)kill(-r->pid, SIGTERM);
    (void)kill(-r->pid, SIGCONT);
    r->kill_at = tl_cli_mono_ms() + r->kill_after_ms;
}

/* SIGKILL to the group once --kill-after has passed since SIGTERM. */
static void escalate(struct run *r)
{
    if (r->kill_at == 0 || r->killed_at != 0 || tl_cli_mono_ms() < r->kill_at)
        return;
    (void)kill(-r->pid, SIGKILL);
    r->killed_at = tl_cli_mono_ms();
}

/* Reaps every child that has ended (with a subreaper, the command's orphans too). */
static void reap(struct run *r)
{
    for (;;) {
        int status;
        pid_t w = waitpid(-1, &status, WNOHANG);

        if (w <= 0)
            break;
        if (w == r->pid) {
            r->exited = true;
            r->status = status;
        }
    }
}

static void read_report(struct run *r)
{
    int err;

    if (r->report_rd < 0)
        return;
    ssize_t n = read(r->report_rd, &err, sizeof(err));
    if (n == (ssize_t)sizeof(err))
        r->exec_errno = err;
    if (n == (ssize_t)sizeof(err) || n == 0) {
        (void)close(r->report_rd);
        r->report_rd = -1;
    }
}

/* Waits until something happens or `deadline` (monotonic ms; 0: none) passes. */
static void wait_event(struct run *r, int64_t deadline)
{
    struct pollfd fds[2] = {{.fd = r->wake_rd, .events = POLLIN},
                            {.fd = r->report_rd, .events = POLLIN}};
    int timeout = -1;

    if (deadline != 0) {
        int64_t left = deadline - tl_cli_mono_ms();
        timeout = left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
    }
    (void)poll(fds, r->report_rd >= 0 ? 2 : 1, timeout);
    drain(r->wake_rd);
    if (r->report_rd >= 0 && (fds[1].revents & (POLLIN | POLLHUP)) != 0)
        read_report(r);
}

/* The main loop: until the command has ended. */
static void supervise(struct run *r)
{
    while (!r->exited) {
        int sig = take_signal();

        for (; sig != 0; sig = take_signal())
            (void)kill(-r->pid, sig);
        if (!r->lost && tl_lock_is_lost(r->lock)) {
            char after[32];

            r->lost = true;
            stop_group(r);
            /* Not renewed in time: the lock is ours for a margin more, then anyone may take it.
             * The command must be gone by then, whatever --kill-after says: SIGKILL halfway. */
            int64_t left = tl_lock_expires_in_ms(r->lock);
            int64_t grace = r->kill_after_ms;
            if (left > 0 && left / 2 < grace) {
                grace = left / 2;
                r->kill_at = tl_cli_mono_ms() + grace;
            }
            tl_cli_format_age(grace, after, sizeof(after));
            tl_cli_error(r->cli,
                         "lost the lock of %s (token %llu): it was stolen, forced or not "
                         "renewed in time; stopping the command (SIGTERM, SIGKILL after %s)",
                         r->key, (unsigned long long)tl_lock_token(r->lock), after);
        }
        escalate(r);
        reap(r);
        if (!r->exited)
            wait_event(r, r->killed_at != 0 ? 0 : r->kill_at);
    }
    read_report(r); /* the child wrote it before exiting, if exec failed */
}

static bool group_alive(pid_t pgid)
{
    return kill(-pgid, 0) == 0 || errno != ESRCH;
}

/* Whatever the command left in its group: SIGTERM, then SIGKILL after --kill-after (counted
 * from the SIGTERM sent when the lock was lost, if it was). */
static void end_group(struct run *r)
{
    reap(r);
    while (group_alive(r->pid)) {
        stop_group(r);
        escalate(r);
        if (r->killed_at != 0 && tl_cli_mono_ms() - r->killed_at > LEFTOVER_KILL_WAIT_MS) {
            tl_cli_error(r->cli, "processes of the command's group %ld survived SIGKILL",
                         (long)r->pid);
            break;
        }
        (void)take_signal(); /* the group is being stopped already */
        wait_event(r, tl_cli_mono_ms() + 20);
        reap(r);
    }
}

/*
 * After a loss, with the command gone: a lock declared lost because it was not renewed in time
 * may still be ours in the store (it was unreachable, and no one took the lock), and a renewal
 * that was on its way may even have refreshed it. Release it, so that it does not look held for
 * another lock timeout; give up after LOST_RELEASE_MS, since the store may stay unreachable.
 */
static void release_lost(const struct tl_cli *cli, const char *key, tl_lock *lock, tl_manager *m)
{
    int64_t end = tl_cli_mono_ms() + LOST_RELEASE_MS;

    for (;;) {
        int64_t left = end - tl_cli_mono_ms();
        if (left <= 0) {
            tl_cli_error(cli,
                         "could not release %s after the loss within %d s: %s; it goes stale "
                         "after its lock timeout",
                         key, LOST_RELEASE_MS / 1000, tl_errmsg(m));
            return;
        }
        tl_status st = tl_release_with(
            lock, &(struct tl_release_opts){
                      .summary = "tasklock run: the lock was lost; the command was stopped",
                      .deadline_ms = (uint32_t)left});
        if (st == TL_OK) {
            tl_cli_info(cli, "released %s, which was still ours after the loss", key);
            return;
        }
        if (st == TL_ENOTOWNER) {
            tl_cli_info(cli, "%s is another worker's now: %s", key, tl_errmsg(m));
            return;
        }
        left = end - tl_cli_mono_ms();
        struct timespec ts = {.tv_nsec = (long)LOST_RELEASE_PAUSE_MS * 1000000L};
        if (left > LOST_RELEASE_PAUSE_MS)
            (void)nanosleep(&ts, NULL);
    }
}

static int child_exit_code(const struct run *r, char *summary, size_t size)
{
    if (r->exec_errno != 0) {
        int code = r->exec_errno == ENOENT || r->exec_errno == ENOTDIR ? 127 : 126;
        (void)snprintf(summary, size, "command could not start (exit %d)", code);
        return code;
    }
    if (WIFEXITED(r->status)) {
        (void)snprintf(summary, size, "command exited with status %d", WEXITSTATUS(r->status));
        return WEXITSTATUS(r->status);
    }
    if (WIFSIGNALED(r->status)) {
        (void)snprintf(summary, size, "command killed by signal %d", WTERMSIG(r->status));
        return 128 + WTERMSIG(r->status);
    }
    (void)snprintf(summary, size, "command ended");
    return 125;
}

static const char help[] =
    "Acquires the lock of KEY (default strategy steal-stale), runs COMMAND while holding it\n"
    "and heartbeating it, and releases it when COMMAND ends. COMMAND runs in its own process\n"
    "group with TASKLOCK_KEY, TASKLOCK_TOKEN, TASKLOCK_WORKER and TASKLOCK_STORE (the store's\n"
    "URL, the default SQLite file written out) in its environment. SIGINT, SIGTERM and SIGHUP\n"
    "sent to tasklock are forwarded to the group; while tasklock waits for the lock, they\n"
    "make it leave KEY's line and exit 128 + the signal's number.\n"
    "If the lock is lost (stolen, forced, or not renewed in time: declared lost a margin\n"
    "before another worker could take it), the group gets SIGTERM, then SIGKILL after\n"
    "--kill-after, or sooner so that it is gone before the lock could be taken; tasklock\n"
    "then releases the lock if it is still its own (trying for up to 3s) and exits 5 (or\n"
    "--lost-exit-code). No process of the group is left running when tasklock exits.\n"
    "\n"
    "Options (and the acquire options: --strategy, --retries, --wait, --lock-timeout,\n"
    "--priority, --info; see 'tasklock help acquire'):\n"
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
                    .report_rd = -1,
                    .kill_after_ms = ro->kill_after_ms};
    int report[2] = {-1, -1};
    char summary[128], err[128];

    /* The store as resolved (the default SQLite file written out), so that the command's own
     * tasklock finds the same store whatever its HOME or working directory. */
    char **env =
        make_env(key, tl_lock_token(lock), tl_manager_worker_id(m), tl_manager_store_url(m));
    if (env == NULL || cloexec_pipe(report, false) != 0) {
        tl_cli_error(cli, "cannot start the command: %s", tl_cli_strerror(errno, err));
        free_env(env);
        (void)tl_release(lock, "tasklock could not start the command");
        return TL_EXIT_STORE;
    }

    int sig = take_signal(); /* told to stop while acquiring: do not start the command */
    if (sig != 0) {
        (void)tl_release(lock, "interrupted before the command started");
        r.pid = -1;
    } else {
        (void)fflush(NULL);
        pid_t parent = getpid();
        cli->outcome->stdout_given = true; /* the command's, from now on */
        r.pid = fork();
        if (r.pid == 0)
            exec_child(cmd, env, report[1], parent);
        if (r.pid < 0) {
            tl_cli_error(cli, "cannot start the command: fork: %s", tl_cli_strerror(errno, err));
            (void)tl_release(lock, "tasklock could not start the command");
        }
    }
    (void)close(report[1]);
    free_env(env);
    if (r.pid <= 0) {
        (void)close(report[0]);
        return sig != 0 ? 128 + sig : TL_EXIT_STORE;
    }

    (void)setpgid(r.pid, r.pid); /* also here, so that the group exists before we signal it */
    r.report_rd = report[0];
    tl_cli_info(cli, "holding %s (token %llu); started %s as process group %ld", key,
                (unsigned long long)tl_lock_token(lock), cmd[0], (long)r.pid);
    supervise(&r);
    end_group(&r);
    if (r.report_rd >= 0)
        (void)close(r.report_rd);

    int rc = child_exit_code(&r, summary, sizeof(summary));
    if (r.exec_errno != 0)
        tl_cli_error(cli, "cannot run \"%s\": %s", cmd[0], tl_cli_strerror(r.exec_errno, err));
    if (r.lost) {
        release_lost(cli, key, lock, m);
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
    struct tl_options o = {.on_lost = on_lost};
    struct run_opts ro = {.kill_after_ms = DEFAULT_KILL_AFTER_MS,
                          .conflict_rc = TL_EXIT_BUSY,
                          .lost_rc = TL_EXIT_LOST};
    int wake[2] = {-1, -1};
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

    if (cloexec_pipe(wake, true) != 0) {
        tl_cli_error(cli, "cannot create a pipe: %s", tl_cli_strerror(errno, err));
        rc = TL_EXIT_STORE;
        goto out;
    }
    wake_fd = wake[1];
    if ((rc = tl_cli_connect(cli, &o, &m)) != TL_EXIT_OK)
        goto out;
#if defined(__linux__)
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1); /* the command's orphans come back to us */
#endif

    /* A signal while we wait for the lock makes the acquire leave the key's line (within
     * 100 ms) and us exit as if killed by it; one that comes after the acquire won stops us
     * before the command starts (run_locked). */
    if (set_handlers(on_signal) != 0) {
        tl_cli_error(cli, "cannot install signal handlers: %s", tl_cli_strerror(errno, err));
        rc = TL_EXIT_STORE;
        goto out;
    }
    acquire_cancel = 0;
    a.opts.cancel = &acquire_cancel;
    tl_status st = tl_acquire(m, key, &a.opts, &lock);
    a.opts.cancel = NULL;
    if (st == TL_ECANCELED) {
        int sig = take_signal();

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
    rc = run_locked(cli, key, lock, m, argv + split + 1, &ro, wake[0]);

out:
    (void)set_handlers(SIG_DFL);
    tl_lock_free(lock);
    tl_manager_free(m); /* stops the heartbeat thread: the lost callback cannot fire after */
    wake_fd = -1;
    for (int i = 0; i < 2; i++) {
        if (wake[i] >= 0)
            (void)close(wake[i]);
    }
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
