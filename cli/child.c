/*
 * child.c -- running a command under a lock, for `tasklock run` and `tasklock work` (child.h).
 *
 * Signal handlers and the lost callback (which runs on the library's heartbeat thread) only
 * write a byte to a self-pipe and set a flag; the main thread waits in poll() and does the work.
 * The command runs in its own process group, so that it and everything it starts can be
 * signalled as one; on Linux it gets SIGKILL should tasklock itself die.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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

extern char **environ;

/*
 * The self-pipe and the signals seen. File scope because a signal handler can reach nothing
 * else: the one kind of mutable global this code has.
 */
static int wake_fds[2] = {-1, -1};
static volatile sig_atomic_t got_sigint, got_sigterm, got_sighup;
volatile sig_atomic_t tl_cli_cancel_flag;

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP};

#define LOST_RELEASE_MS       3000 /* after a loss, how long to try to release the lock */
#define LOST_RELEASE_PAUSE_MS 100

static void wake(void)
{
    const char b = 1;
    ssize_t n = write(wake_fds[1], &b, 1); /* non-blocking: a full pipe is awake already */

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
        tl_cli_cancel_flag = 1;
    wake();
    errno = saved;
}

void tl_cli_on_lost(void *ud, tl_lock *lock)
{
    int saved = errno;

    (void)ud;
    (void)lock;
    wake();
    errno = saved;
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

int tl_cli_wake_open(void)
{
    if (cloexec_pipe(wake_fds, true) != 0) {
        wake_fds[0] = wake_fds[1] = -1;
        return -1;
    }
    return wake_fds[0];
}

void tl_cli_wake_close(void)
{
    for (int i = 0; i < 2; i++) {
        if (wake_fds[i] >= 0)
            (void)close(wake_fds[i]);
        wake_fds[i] = -1;
    }
}

int tl_cli_set_handlers(bool install)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = install ? on_signal : SIG_DFL;
    sa.sa_flags = SA_RESTART;
    (void)sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++) {
        if (sigaction(forwarded[i], &sa, NULL) != 0)
            return -1;
    }
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    return sigaction(SIGCHLD, &sa, NULL);
}

int tl_cli_take_signal(void)
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

bool tl_cli_wait_event(int wake_rd, int extra_fd, int64_t deadline)
{
    struct pollfd fds[2] = {{.fd = wake_rd, .events = POLLIN}, {.fd = extra_fd, .events = POLLIN}};
    int timeout = 60000;

    if (deadline != 0) {
        int64_t left = deadline - tl_cli_mono_ms();
        timeout = left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
    }
    (void)poll(fds, extra_fd >= 0 ? 2 : 1, timeout);
    drain(wake_rd);
    return extra_fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP)) != 0;
}

/* environ with TASKLOCK_KEY, _TOKEN, _WORKER, _STORE and _HOLDING set (the last: the locks held
 * for the command, this one added to those of an enclosing run, for deadlock detection in a
 * `tasklock run` inside it). Freed with free_env(). */
static char **make_env(const char *key, uint64_t token, const char *worker, const char *store)
{
    static const char *const ours[] = {"TASKLOCK_KEY=", "TASKLOCK_TOKEN=", "TASKLOCK_WORKER=",
                                       "TASKLOCK_STORE=", "TASKLOCK_HOLDING="};
    const size_t nours = sizeof(ours) / sizeof(ours[0]);
    size_t n = 0;

    while (environ[n] != NULL)
        n++;

    char **env = calloc(n + nours + 1, sizeof(*env));
    if (env == NULL)
        return NULL;

    char tok[32], holding[2400];
    (void)snprintf(tok, sizeof(tok), "%llu", (unsigned long long)token);
    const char *outer = getenv("TASKLOCK_HOLDING"); /* NOLINT(concurrency-mt-unsafe) */
    int hn = snprintf(holding, sizeof(holding), "%s%s%s %s", outer ? outer : "",
                      outer && outer[0] ? " " : "", key, tok);
    if (hn < 0 || hn > 2048) /* too many enclosing runs: this one's lock alone */
        (void)snprintf(holding, sizeof(holding), "%s %s", key, tok);
    const char *values[] = {key, tok, worker, store, holding};
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
    for (size_t i = 0; i < 5; i++) /* the first five are ours; the rest are environ's */
        free(env[i]);
    free(env);
}

/*
 * In the child, between fork and exec: only async-signal-safe calls. The signals were blocked
 * across the fork (tl_cli_child_start): their handlers go back to the defaults first, then the
 * mask is restored, so that a SIGINT forwarded in between is not swallowed by our handler but
 * acts on the child as it would on the command.
 */
static void exec_child(char **cmd, char **env, int report_fd, pid_t parent, const sigset_t *mask)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    (void)sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        (void)sigaction(forwarded[i], &sa, NULL);
    (void)sigaction(SIGCHLD, &sa, NULL);
    (void)pthread_sigmask(SIG_SETMASK, mask, NULL);
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

int tl_cli_child_start(const struct tl_cli *cli, struct tl_cli_child *c, char **cmd,
                       const char *key, uint64_t token, tl_manager *m)
{
    int report[2] = {-1, -1};
    char err[128];

    c->pid = -1;
    c->report_rd = -1;
    c->exec_errno = 0;
    c->exited = false;
    c->kill_at = c->killed_at = 0;
    /* The store as resolved (the default SQLite file written out), so that the command's own
     * tasklock finds the same store whatever its HOME or working directory. */
    char **env = make_env(key, token, tl_manager_worker_id(m), tl_manager_store_url(m));
    if (env == NULL || cloexec_pipe(report, false) != 0) {
        tl_cli_error(cli, "cannot start the command: %s", tl_cli_strerror(errno, err));
        free_env(env);
        return -1;
    }
    (void)fflush(NULL);
    pid_t parent = getpid();
    cli->outcome->stdout_given = true; /* the command's, from now on */
    /* Signals blocked across the fork: a child must not run our handlers (see exec_child). */
    sigset_t block, old;
    (void)sigemptyset(&block);
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        (void)sigaddset(&block, forwarded[i]);
    (void)sigaddset(&block, SIGCHLD);
    (void)pthread_sigmask(SIG_BLOCK, &block, &old);
    c->pid = fork();
    if (c->pid == 0)
        exec_child(cmd, env, report[1], parent, &old);
    int fork_errno = errno;
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    (void)close(report[1]);
    free_env(env);
    if (c->pid < 0) {
        tl_cli_error(cli, "cannot start the command: fork: %s", tl_cli_strerror(fork_errno, err));
        (void)close(report[0]);
        return -1;
    }
    (void)setpgid(c->pid, c->pid); /* also here, so that the group exists before we signal it */
    c->report_rd = report[0];
    return 0;
}

void tl_cli_child_stop(struct tl_cli_child *c, int64_t grace_ms)
{
    if (c->kill_at == 0 && c->killed_at == 0) {
        (void)kill(-c->pid, SIGTERM);
        (void)kill(-c->pid, SIGCONT);
        c->kill_at = tl_cli_mono_ms() + c->kill_after_ms;
    }
    if (grace_ms >= 0 && c->killed_at == 0 && tl_cli_mono_ms() + grace_ms < c->kill_at)
        c->kill_at = tl_cli_mono_ms() + grace_ms;
}

void tl_cli_child_escalate(struct tl_cli_child *c)
{
    if (c->kill_at == 0 || c->killed_at != 0 || tl_cli_mono_ms() < c->kill_at)
        return;
    (void)kill(-c->pid, SIGKILL);
    c->killed_at = tl_cli_mono_ms();
}

void tl_cli_reap(struct tl_cli_child *const *kids, size_t n)
{
    for (;;) {
        int status;
        pid_t w = waitpid(-1, &status, WNOHANG);

        if (w <= 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (kids[i] != NULL && kids[i]->pid == w) {
                kids[i]->exited = true;
                kids[i]->status = status;
            }
        }
    }
}

void tl_cli_child_read_report(struct tl_cli_child *c)
{
    int err;

    if (c->report_rd < 0)
        return;
    ssize_t n = read(c->report_rd, &err, sizeof(err));
    if (n == (ssize_t)sizeof(err))
        c->exec_errno = err;
    if (n == (ssize_t)sizeof(err) || n == 0) {
        (void)close(c->report_rd);
        c->report_rd = -1;
    }
}

bool tl_cli_group_alive(pid_t pgid)
{
    return kill(-pgid, 0) == 0 || errno != ESRCH;
}

int tl_cli_child_exit_code(const struct tl_cli_child *c, char *summary, size_t size)
{
    if (c->exec_errno != 0) {
        int code = c->exec_errno == ENOENT || c->exec_errno == ENOTDIR ? 127 : 126;
        (void)snprintf(summary, size, "command could not start (exit %d)", code);
        return code;
    }
    if (WIFEXITED(c->status)) {
        (void)snprintf(summary, size, "command exited with status %d", WEXITSTATUS(c->status));
        return WEXITSTATUS(c->status);
    }
    if (WIFSIGNALED(c->status)) {
        (void)snprintf(summary, size, "command killed by signal %d", WTERMSIG(c->status));
        return 128 + WTERMSIG(c->status);
    }
    (void)snprintf(summary, size, "command ended");
    return 125;
}

void tl_cli_child_close(struct tl_cli_child *c)
{
    if (c->report_rd >= 0)
        (void)close(c->report_rd);
    c->report_rd = -1;
}

void tl_cli_release_lost(const struct tl_cli *cli, const char *key, tl_lock *lock, tl_manager *m,
                         const char *who)
{
    int64_t end = tl_cli_mono_ms() + LOST_RELEASE_MS;
    char summary[128];

    (void)snprintf(summary, sizeof(summary), "%s: the lock was lost; the command was stopped", who);
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
            lock, &(struct tl_release_opts){.summary = summary, .deadline_ms = (uint32_t)left});
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
