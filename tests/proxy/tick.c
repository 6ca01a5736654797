/*
 * tick.c -- tl-tick: a stand-in for the work a lock protects, for tests of `tasklock run`.
 *
 *   tl-tick FILE [--ignore-term]
 *
 * Appends a line with the CLOCK_MONOTONIC time in nanoseconds to FILE every 10 ms, each line in
 * one write(2) to a file opened O_APPEND, until it is killed. On Linux CLOCK_MONOTONIC is one
 * clock for every process of the machine, so a test can compare the last line with instants of
 * its own (when another worker took the lock). With --ignore-term it ignores SIGTERM, so that
 * only SIGKILL stops it. It gives up by itself after 10 minutes, so that a test that lost track
 * of it leaves nothing running for long.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STEP_NS  10000000LL /* 10 ms */
#define LIMIT_NS 600000000000LL

static int64_t mono_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--ignore-term") != 0)) {
        (void)fprintf(stderr, "usage: tl-tick FILE [--ignore-term]\n");
        return 2;
    }
    if (argc == 3)
        (void)signal(SIGTERM, SIG_IGN);

    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        (void)fprintf(stderr, "tl-tick: cannot open %s\n", argv[1]);
        return 1;
    }
    int64_t end = mono_ns() + LIMIT_NS;
    for (;;) {
        char line[32];
        int64_t now = mono_ns();
        int n = snprintf(line, sizeof(line), "%lld\n", (long long)now);

        if (now > end)
            return 3;
        if (n <= 0 || write(fd, line, (size_t)n) != n)
            return 1;

        struct timespec ts = {.tv_nsec = STEP_NS};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}
