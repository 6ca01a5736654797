/*
 * bench_exec.c -- runs of a command per second: fork, exec, wait, again, for a fixed time (after
 * a few warm-up runs), as a shell loop would but without the shell's own cost. For the CLI
 * beside its one-machine anchors: `flock FILE true`, `tasklock run KEY -- true`,
 * `etcdctl lock L true`, where starting processes dominates.
 *
 *   bench_exec [-t SECONDS] [-W WARMUP_RUNS] [-o CSV -r REP -S STORE -s SUBJECT] -- CMD [ARG]...
 *
 * The command's output goes to /dev/null; a run that exits non-zero counts as a failure (and is
 * reported: a failing command is not a fast command).
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"

#define PROG "bench_exec"

static int run_once(char **argv)
{
    pid_t pid = fork();
    int status = 0;

    if (pid < 0)
        bench_die(PROG, "fork", "failed");
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            (void)dup2(fd, 0);
            (void)dup2(fd, 1);
            (void)dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    const char *csv = NULL, *store = "cli", *subject = "?";
    double seconds = 2.0;
    int rep = 1, warm = 3, c;

    while ((c = getopt(argc, argv, "+t:W:o:r:S:s:")) != -1) {
        switch (c) {
        case 't': seconds = strtod(optarg, NULL); break;
        case 'W': warm = (int)strtol(optarg, NULL, 10); break;
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        case 'S': store = optarg; break;
        case 's': subject = optarg; break;
        default:
            fprintf(stderr, "usage: " PROG " [-t SECONDS] [-W WARMUP] [-o CSV -r REP -S STORE -s "
                            "SUBJECT] -- CMD [ARG]...\n");
            return 2;
        }
    }
    if (optind >= argc || seconds <= 0)
        bench_die(PROG, "usage", "need a command after --");
    char **cmd = argv + optind;

    for (int i = 0; i < warm; i++) {
        int rc = run_once(cmd);
        if (rc != 0) {
            fprintf(stderr, PROG ": %s exited %d in warm-up\n", cmd[0], rc);
            return 1;
        }
    }
    size_t cap = 4096, n = 0;
    long failures = 0;
    double *lat = malloc(cap * sizeof(double));
    if (lat == NULL)
        bench_die(PROG, "memory", "out of memory");
    double t0 = bench_now_s(), end = t0 + seconds;
    while (bench_now_s() < end) {
        double c0 = bench_now_s();
        if (run_once(cmd) != 0)
            failures++;
        if (n == cap) {
            double *p = realloc(lat, (cap *= 2) * sizeof(double));
            if (p == NULL)
                bench_die(PROG, "memory", "out of memory");
            lat = p;
        }
        lat[n++] = (bench_now_s() - c0) * 1000;
    }
    double rate = (double)n / (bench_now_s() - t0);

    struct bench_csv out;
    bench_csv_open(&out, csv, rep, store, subject);
    bench_csv_row(&out, "", "runs_per_s", rate);
    bench_csv_row(&out, "", "runs", (double)n);
    bench_csv_row(&out, "", "failures", (double)failures);
    bench_csv_row(&out, "", "run_p50_ms", bench_quantile(lat, n, 0.50));
    bench_csv_row(&out, "", "run_p99_ms", bench_quantile(lat, n, 0.99));
    bench_csv_close(&out);
    fprintf(stderr, "%s: %.0f runs/s (%zu runs, p50 %.2f ms, p99 %.2f ms, %ld failed)\n", subject,
            rate, n, bench_quantile(lat, n, 0.50), bench_quantile(lat, n, 0.99), failures);
    free(lat);
    return failures ? 1 : 0;
}
