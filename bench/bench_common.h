/*
 * bench_common.h -- what the benchmark drivers share: clocks, medians and percentiles, the raw
 * CSV rows, CPU time and resident memory, and a minimal HTTP/1.0 client for the GitHub test
 * server's admin API on 127.0.0.1. Header-only (static functions), included by bench_*.c.
 *
 * Raw figures are rows of one long format, appended to a CSV file (bench/run.sh writes the
 * header): rep,store,subject,config,metric,value
 *   rep      the repetition (1, 2, ...); repetitions of different subjects are interleaved
 *   store    sqlite | redis | postgres | github | cli | ...
 *   subject  ours | floor name | anchor name
 *   config   what was varied (e.g. "p4-k1": 4 processes on 1 key); "" when nothing
 *   metric   e.g. cycles_per_s, p50_ms
 */
#ifndef TL_BENCH_COMMON_H
#define TL_BENCH_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now_s(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void bench_sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Sleeps until the monotonic time `t` (shared by every process of the machine). */
static inline void bench_sleep_until(double t)
{
    bench_sleep_s(t - bench_now_s());
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of v[0..n), nearest rank; sorts v. 0 when n is 0. */
static inline double bench_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(double), bench_cmp_double);
    size_t i = (size_t)(q * (double)n);
    return v[i < n ? i : n - 1];
}

static inline void bench_die(const char *prog, const char *what, const char *why)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, why);
    exit(1);
}

/* Where the rows of one driver go. */
struct bench_csv {
    FILE *f; /* NULL: rows go nowhere (the summary on stderr is still printed) */
    int rep;
    const char *store;
    const char *subject;
};

static inline void bench_csv_open(struct bench_csv *c, const char *path, int rep, const char *store,
                                  const char *subject)
{
    c->f = NULL;
    if (path != NULL && (c->f = fopen(path, "a")) == NULL)
        bench_die("bench", path, "cannot open for appending");
    c->rep = rep;
    c->store = store;
    c->subject = subject;
}

static inline void bench_csv_row(const struct bench_csv *c, const char *config, const char *metric,
                                 double value)
{
    if (c->f == NULL)
        return;
    fprintf(c->f, "%d,%s,%s,%s,%s,%.6g\n", c->rep, c->store, c->subject, config ? config : "",
            metric, value);
    fflush(c->f);
}

static inline void bench_csv_close(struct bench_csv *c)
{
    if (c->f != NULL)
        fclose(c->f);
    c->f = NULL;
}

/* One row, `cycles_per_s` of `subject`, when `path` is not NULL (a driver's -o). */
static inline void bench_csv_rate(const char *path, int rep, const char *store, const char *subject,
                                  double rate)
{
    struct bench_csv out;

    if (path == NULL)
        return;
    bench_csv_open(&out, path, rep, store, subject);
    bench_csv_row(&out, "", "cycles_per_s", rate);
    bench_csv_close(&out);
}

/* CPU time (user + system) of this process, all its threads, in seconds. */
static inline double bench_cpu_s(void)
{
    struct rusage ru;

    (void)getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A field of /proc/self/status in kB ("VmRSS", "VmHWM"), or -1. */
static inline long bench_status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(field);

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/*
 * One HTTP/1.0 request to `base` ("http://127.0.0.1:PORT"; loopback IPv4 only). The body of the
 * answer goes into resp (NUL-terminated, truncated to size). Returns the status, or -1.
 */
static inline int bench_http(const char *base, const char *method, const char *path,
                             const char *body, char *resp, size_t size)
{
    char host[64] = "";
    unsigned port = 0;
    int status = -1;

    if (sscanf(base, "http://%63[0-9.]:%u", host, &port) != 2 || strcmp(host, "127.0.0.1") != 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        goto out;

    size_t blen = body ? strlen(body) : 0;
    size_t cap = strlen(path) + blen + 256;
    char *req = malloc(cap);
    if (req == NULL)
        goto out;
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%u\r\nUser-Agent: tasklock-bench\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, port, blen, body ? body : "");
    ssize_t sent = send(fd, req, (size_t)n, 0);
    free(req);
    if (sent != n)
        goto out;

    size_t got = 0, cap2 = 65536;
    char *buf = malloc(cap2);
    if (buf == NULL)
        goto out;
    for (;;) {
        if (got + 1 >= cap2) {
            char *nb = realloc(buf, cap2 * 2);
            if (nb == NULL)
                break;
            buf = nb;
            cap2 *= 2;
        }
        ssize_t r = recv(fd, buf + got, cap2 - got - 1, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    const char *b = strstr(buf, "\r\n\r\n");
    if (resp != NULL && size > 0) {
        (void)snprintf(resp, size, "%s", b ? b + 4 : "");
    }
    free(buf);
out:
    close(fd);
    return status;
}

/* The number after `"name":` in a JSON text (the first occurrence), or -1. Enough for the test
 * server's flat counters. */
static inline long bench_json_long(const char *json, const char *name)
{
    char pat[160];

    (void)snprintf(pat, sizeof(pat), "\"%s\":", name);
    const char *p = strstr(json, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

#endif /* TL_BENCH_COMMON_H */
