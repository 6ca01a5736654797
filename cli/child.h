/*
 * child.h -- running a command under a lock (cli/child.c), shared by `tasklock run` and
 * `tasklock work`: the self-pipe that signal handlers and the lost callback write to, the
 * command's process group, its environment, and how it ended.
 */
#ifndef TL_CLI_CHILD_H
#define TL_CLI_CHILD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli.h"

/*
 * The self-pipe: signal handlers (SIGINT, SIGTERM, SIGHUP, SIGCHLD) and the lost callback only
 * set a flag and write a byte to it; the main thread waits in poll() on its read end. One per
 * process. tl_cli_wake_open() creates it; tl_cli_wake_close() closes it.
 */
int tl_cli_wake_open(void); /* the read end, or -1 (errno set) */
void tl_cli_wake_close(void);
/* Installs the handlers (SIG_DFL restores the defaults). Returns 0, or -1 with errno. */
int tl_cli_set_handlers(bool install);
/* The next forwarded signal that arrived (SIGINT, SIGTERM, SIGHUP), or 0. */
int tl_cli_take_signal(void);
/* Set by every forwarded signal: a waiting acquire or claim leaves (opts.cancel). */
extern volatile sig_atomic_t tl_cli_cancel_flag;
/* The lost callback for struct tl_options.on_lost: wakes the main loop. */
void tl_cli_on_lost(void *ud, tl_lock *lock);
/* Waits until the self-pipe is written, `extra_fd` (if >= 0) is readable, or `deadline`
 * (monotonic ms; 0: none, at most 60 s) passes. Returns whether extra_fd became readable. */
bool tl_cli_wait_event(int wake_rd, int extra_fd, int64_t deadline);

/* A running command: the leader of its own process group. */
struct tl_cli_child {
    pid_t pid;      /* -1: not started */
    int report_rd;  /* errno of a failed exec, from the child; -1 when closed */
    int exec_errno; /* 0: the command started */
    bool exited;    /* its status is in `status` */
    int status;
    uint32_t kill_after_ms;
    int64_t kill_at;   /* monotonic ms to send SIGKILL at; 0: SIGTERM not sent yet */
    int64_t killed_at; /* when SIGKILL was sent; 0: not yet */
};

/*
 * Starts `cmd` in a new process group with TASKLOCK_KEY, _TOKEN, _WORKER and _STORE set (the
 * store as resolved by the manager); stdout becomes the command's (cli->outcome->stdout_given).
 * Returns 0, or -1 after printing why.
 */
int tl_cli_child_start(const struct tl_cli *cli, struct tl_cli_child *c, char **cmd,
                       const char *key, uint64_t token, tl_manager *m);
/* SIGTERM (and SIGCONT) to the group, once; SIGKILL `kill_after_ms` later (tl_cli_child_escalate).
 * `grace_ms` >= 0 shortens that wait. */
void tl_cli_child_stop(struct tl_cli_child *c, int64_t grace_ms);
void tl_cli_child_escalate(struct tl_cli_child *c);
/* Reads the exec report if there is one. */
void tl_cli_child_read_report(struct tl_cli_child *c);
/* Reaps every child that has ended (with a subreaper, the commands' orphans too), marking those
 * of `kids` that exited. */
void tl_cli_reap(struct tl_cli_child *const *kids, size_t n);
/* Whether anything of the group is left. */
bool tl_cli_group_alive(pid_t pgid);
/* The command's exit code, as a shell would give it (126, 127, 128+N), and a summary line. */
int tl_cli_child_exit_code(const struct tl_cli_child *c, char *summary, size_t size);
/*
 * After a loss, with the command gone: a lock declared lost because it was not renewed in time
 * may still be ours in the store (it was unreachable, and no one took the lock), and a renewal
 * that was on its way may even have refreshed it. Releases it, so that it does not look held for
 * another lock timeout; gives up after 3 s, since the store may stay unreachable. `who` names
 * the command in the summary ("tasklock run").
 */
void tl_cli_release_lost(const struct tl_cli *cli, const char *key, tl_lock *lock, tl_manager *m,
                         const char *who);
/* Closes the report pipe. */
void tl_cli_child_close(struct tl_cli_child *c);

#endif /* TL_CLI_CHILD_H */
