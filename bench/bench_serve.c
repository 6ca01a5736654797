/*
 * bench_serve.c -- the CPU of `tasklock serve` per refresh (issue 16's target: under 2 % of a
 * core at the default 1 s refresh with 1,000 locks and 50 live clients).
 *
 * One process of ours holds N locks on a SQLite store (its heartbeat thread renews them every
 * 30 s, so the store changes between refreshes, as a busy one would); `tasklock serve` runs on
 * it; its CPU time is read from /proc/PID/stat over windows of T seconds, and divided by the
 * refreshes it did in them (its own counter, /api/metrics serve.store_reads):
 *   idle     no client connected
 *   clients  C event streams open (the page's), drained by a thread of ours
 * Baseline, in the same run: the CPU of one `tasklock list --json` plus one `tasklock log --json`
 * (what each client polling the store itself would spend per refresh), children's rusage.
 *
 *   bench_serve -b BUILD/tasklock [-n 1000] [-c 50] [-i 1000] [-t 20] [-w 3] [-o CSV] [-r REP]
 *
 * Rows: REP,sqlite,serve,nN-cC-iMS,METRIC,VALUE with cpu_ms_per_refresh_{idle,clients},
 * core_pct_{idle,clients}, baseline_cpu_ms_per_poll, ratio_clients_to_baseline, sse_bytes_per_s.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "bench_common.h"
#include "tasklock.h"

static const char *prog = "bench_serve";

struct drain {
    int *fds;
    int n;
    volatile int stop; /* read and written under mu */
    pthread_mutex_t mu;
    unsigned long long bytes;
};

static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;

    (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        bench_die(prog, path, "cannot read");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    (void)fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command name */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        bench_die(prog, path, "cannot parse");
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long store_reads(const char *base)
{
    static char resp[1 << 16];

    int status = bench_http(base, "GET", "/api/metrics", NULL, resp, sizeof(resp));

    if (status != 200) {
        fprintf(stderr, "%s: %s/api/metrics: status %d\n", prog, base, status);
        exit(1);
    }
    return bench_json_long(resp, "store_reads");
}

static int dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        bench_die(prog, "connect", strerror(errno));
    return fd;
}

static void *drain_main(void *arg)
{
    struct drain *d = arg;
    struct pollfd *p = calloc((size_t)d->n, sizeof(*p));
    static char buf[1 << 16];

    for (int i = 0; i < d->n; i++)
        p[i] = (struct pollfd){.fd = d->fds[i], .events = POLLIN};
    for (;;) {
        pthread_mutex_lock(&d->mu);
        int stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        if (stop)
            break;
        if (poll(p, (nfds_t)d->n, 100) <= 0)
            continue;
        for (int i = 0; i < d->n; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            ssize_t r = recv(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (r > 0) {
                pthread_mutex_lock(&d->mu);
                d->bytes += (unsigned long long)r;
                pthread_mutex_unlock(&d->mu);
            } else if (r == 0) {
                p[i].fd = -1;
            }
        }
    }
    free(p);
    return NULL;
}

/* CPU ms of serve per refresh over a window of `t` seconds (after `warm` seconds). */
static double window(pid_t pid, const char *base, double warm, double t, double *per_s)
{
    bench_sleep_s(warm);
    double c0 = proc_cpu_s(pid), t0 = bench_now_s();
    long r0 = store_reads(base);
    bench_sleep_s(t);
    double c1 = proc_cpu_s(pid), t1 = bench_now_s();
    long r1 = store_reads(base);
    *per_s = (c1 - c0) / (t1 - t0);
    return r1 > r0 ? (c1 - c0) * 1000.0 / (double)(r1 - r0) : -1;
}

/* CPU seconds of running BIN ARGS... to the end (children's rusage). */
static double child_cpu(char *const argv[])
{
    struct rusage before, ru;
    int st;

    (void)getrusage(RUSAGE_CHILDREN, &before);
    pid_t pid = fork();

    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        (void)dup2(null, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die(prog, argv[0], "a baseline command failed");
    (void)getrusage(RUSAGE_CHILDREN, &ru);
    return (double)(ru.ru_utime.tv_sec - before.ru_utime.tv_sec) +
           (double)(ru.ru_utime.tv_usec - before.ru_utime.tv_usec) / 1e6 +
           (double)(ru.ru_stime.tv_sec - before.ru_stime.tv_sec) +
           (double)(ru.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    const char *bin = NULL, *csv = NULL;
    int n = 1000, clients = 50, interval = 1000, windows = 3, rep = 1, opt;
    double t = 20;

    while ((opt = getopt(argc, argv, "b:n:c:i:t:w:o:r:")) != -1) {
        switch (opt) {
        case 'b': bin = optarg; break;
        case 'n': n = (int)strtol(optarg, NULL, 10); break;
        case 'c': clients = (int)strtol(optarg, NULL, 10); break;
        case 'i': interval = (int)strtol(optarg, NULL, 10); break;
        case 't': t = strtod(optarg, NULL); break;
        case 'w': windows = (int)strtol(optarg, NULL, 10); break;
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        default:
            bench_die(prog, "usage",
                      "-b BUILD/tasklock [-n N] [-c C] [-i MS] [-t S] [-w W] [-o CSV]");
        }
    }
    if (bin == NULL)
        bench_die(prog, "usage", "-b BUILD/tasklock is required");
    (void)signal(SIGPIPE, SIG_IGN);

    char dir[] = "/tmp/bench-serve.XXXXXX", store[128], refresh[32], line[256];
    if (mkdtemp(dir) == NULL)
        bench_die(prog, "mkdtemp", strerror(errno));
    (void)snprintf(store, sizeof(store), "sqlite:%s/serve.db", dir);
    (void)snprintf(refresh, sizeof(refresh), "%dms", interval);

    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = store, .worker_id = "bench"});
    if (m == NULL || tl_connect(m) != TL_OK)
        bench_die(prog, store, "cannot open");
    tl_lock **locks = calloc((size_t)n, sizeof(*locks));
    for (int i = 0; i < n; i++) {
        char key[64];
        (void)snprintf(key, sizeof(key), "%s:%d",
                       i % 3 == 0   ? "deploy"
                       : i % 3 == 1 ? "build"
                                    : "db",
                       i);
        if (tl_acquire(m, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &locks[i]) !=
            TL_OK)
            bench_die(prog, key, tl_errmsg(m));
    }

    int out[2];
    if (pipe(out) != 0)
        bench_die(prog, "pipe", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        (void)dup2(out[1], 1);
        (void)close(out[0]);
        execl(bin, bin, "-q", "-s", store, "serve", "--listen", "127.0.0.1:0", "--refresh", refresh,
              (char *)NULL);
        _exit(127);
    }
    (void)close(out[1]);
    FILE *f = fdopen(out[0], "r");
    if (f == NULL || fgets(line, sizeof(line), f) == NULL)
        bench_die(prog, bin, "serve did not start");
    int port = (int)strtol(strrchr(line, ':') + 1, NULL, 10);
    char base[64];
    (void)snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);

    char config[64];
    (void)snprintf(config, sizeof(config), "n%d-c%d-i%d", n, clients, interval);
    struct bench_csv c;
    bench_csv_open(&c, csv, rep, "sqlite", "serve");

    /* Baseline: one CLI poll of the same store (list + log), averaged over 10. */
    char *list_argv[] = {(char *)bin, "-q", "-s", store, "list", "--json", NULL};
    char *log_argv[] = {(char *)bin, "-q", "-s", store, "log", "--json", NULL};
    double base_cpu = 0;
    for (int i = 0; i < 10; i++)
        base_cpu += child_cpu(list_argv) + child_cpu(log_argv);
    base_cpu = base_cpu / 10 * 1000.0;

    double idle = 0, busy = 0, idle_s = 0, busy_s = 0, per_s;
    for (int w = 0; w < windows; w++) {
        double v = window(pid, base, w == 0 ? 2 : 0.5, t, &per_s);
        idle += v / windows;
        idle_s += per_s / windows;
    }
    struct drain d = {.n = clients, .mu = PTHREAD_MUTEX_INITIALIZER};
    d.fds = calloc((size_t)clients, sizeof(int));
    for (int i = 0; i < clients; i++) {
        d.fds[i] = dial(port);
        const char *req = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        if (send(d.fds[i], req, strlen(req), 0) < 0)
            bench_die(prog, "send", strerror(errno));
    }
    pthread_t th;
    pthread_create(&th, NULL, drain_main, &d);
    double b0 = bench_now_s();
    for (int w = 0; w < windows; w++) {
        double v = window(pid, base, w == 0 ? 2 : 0.5, t, &per_s);
        busy += v / windows;
        busy_s += per_s / windows;
    }
    double bt = bench_now_s() - b0;
    pthread_mutex_lock(&d.mu);
    d.stop = 1;
    unsigned long long bytes = d.bytes;
    pthread_mutex_unlock(&d.mu);
    pthread_join(th, NULL);

    fprintf(
        stderr,
        "bench_serve: %d locks, refresh %d ms, %d windows of %.0f s\n"
        "  serve, no client:     %.2f ms CPU per refresh, %.2f %% of a core\n"
        "  serve, %d streams:    %.2f ms CPU per refresh, %.2f %% of a core (%.0f bytes/s sent)\n"
        "  baseline, one CLI poll (list --json + log --json): %.2f ms CPU\n"
        "  ratio: serve with %d streams per refresh / one client's CLI poll = %.3f\n",
        n, interval, windows, t, idle, idle_s * 100, clients, busy, busy_s * 100,
        (double)bytes / bt, base_cpu, clients, busy / base_cpu);
    bench_csv_row(&c, config, "cpu_ms_per_refresh_idle", idle);
    bench_csv_row(&c, config, "cpu_ms_per_refresh_clients", busy);
    bench_csv_row(&c, config, "core_pct_idle", idle_s * 100);
    bench_csv_row(&c, config, "core_pct_clients", busy_s * 100);
    bench_csv_row(&c, config, "baseline_cpu_ms_per_poll", base_cpu);
    bench_csv_row(&c, config, "ratio_clients_to_baseline", busy / base_cpu);
    bench_csv_row(&c, config, "sse_bytes_per_s", (double)bytes / bt);
    bench_csv_close(&c);

    for (int i = 0; i < clients; i++)
        (void)close(d.fds[i]);
    (void)kill(pid, SIGTERM);
    (void)waitpid(pid, NULL, 0);
    for (int i = 0; i < n; i++) {
        (void)tl_release(locks[i], NULL);
        tl_lock_free(locks[i]);
    }
    tl_manager_free(m);
    char rm[128];
    (void)snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    if (system(rm) != 0) /* NOLINT(cert-env33-c,concurrency-mt-unsafe) */
        fprintf(stderr, "%s: could not remove %s\n", prog, dir);
    return 0;
}
