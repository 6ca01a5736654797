/*
 * tl_spawn.c -- see tl_spawn.h.
 */
#include "tl_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static void report(const char *who, const char *what, int err)
{
    char msg[128];

    if (strerror_r(err, msg, sizeof(msg)) != 0)
        (void)snprintf(msg, sizeof(msg), "error %d", err);
    (void)fprintf(stderr, "%s: %s: %s\n", who, what, msg);
}

int tl_spawn_piped(const char *who, const char *const argv[], pid_t *pid, int *to_child,
                   int *from_child)
{
    int outp[2] = {-1, -1}, inp[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int err;

    *pid = 0;
    *to_child = *from_child = -1;
    if (pipe(outp) != 0 || pipe(inp) != 0) {
        report(who, "pipe", errno);
        goto err_close;
    }
    /* Our ends must not leak into other children, or the helper would outlive this process. */
    (void)fcntl(outp[0], F_SETFD, FD_CLOEXEC);
    (void)fcntl(inp[1], F_SETFD, FD_CLOEXEC);
    if ((err = posix_spawn_file_actions_init(&fa)) != 0) {
        report(who, "posix_spawn_file_actions_init", err);
        goto err_close;
    }
    (void)posix_spawn_file_actions_adddup2(&fa, outp[1], STDOUT_FILENO);
    (void)posix_spawn_file_actions_adddup2(&fa, inp[0], STDIN_FILENO);
    (void)posix_spawn_file_actions_addclose(&fa, outp[1]);
    (void)posix_spawn_file_actions_addclose(&fa, inp[0]);
    err = posix_spawn(pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    (void)posix_spawn_file_actions_destroy(&fa);
    if (err != 0) {
        report(who, argv[0], err);
        *pid = 0;
        goto err_close;
    }
    (void)close(outp[1]);
    (void)close(inp[0]);
    *to_child = inp[1];
    *from_child = outp[0];
    return 0;

err_close:
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0)
            (void)close(outp[i]);
        if (inp[i] >= 0)
            (void)close(inp[i]);
    }
    return -1;
}
