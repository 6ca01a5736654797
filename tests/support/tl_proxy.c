/*
 * tl_proxy.c -- see tl_proxy.h.
 */
#include "tl_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tl_spawn.h"

#define ANSWER_MS 10000
#define STOP_MS   5000

static int64_t mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    (void)nanosleep(&ts, NULL);
}

static void resolve_bin(const char *bin, char *out, size_t size)
{
    const char *env = getenv("TL_PROXY_BIN");       /* NOLINT(concurrency-mt-unsafe) */
    const char *dir = getenv("TL_TEST_BINARY_DIR"); /* NOLINT(concurrency-mt-unsafe) */

    if (bin != NULL) {
        (void)snprintf(out, size, "%s", bin);
        return;
    }
    if (env != NULL && env[0] != '\0') {
        (void)snprintf(out, size, "%s", env);
        return;
    }
    if (dir != NULL && dir[0] != '\0') {
        (void)snprintf(out, size, "%s/tl-proxy", dir);
        return;
    }
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n > 0) {
        out[n] = '\0';
        char *slash = strrchr(out, '/');
        if (slash != NULL && (size_t)(slash - out) + sizeof("/tl-proxy") <= size) {
            (void)snprintf(slash, size - (size_t)(slash - out), "/tl-proxy");
            if (access(out, X_OK) == 0)
                return;
        }
    }
    (void)snprintf(out, size, "./tl-proxy");
}

/* Reads one line from the proxy into p->answer within `limit_ms`; 0, or -1. */
static int read_line(struct tl_proxy *p, int64_t limit_ms)
{
    int64_t end = mono_ms() + limit_ms;

    for (;;) {
        char *nl = memchr(p->pending, '\n', p->npending);
        if (nl != NULL) {
            size_t n = (size_t)(nl - p->pending);
            size_t keep = n < sizeof(p->answer) - 1 ? n : sizeof(p->answer) - 1;

            memcpy(p->answer, p->pending, keep);
            p->answer[keep] = '\0';
            p->npending -= n + 1;
            memmove(p->pending, nl + 1, p->npending);
            return 0;
        }
        if (p->npending == sizeof(p->pending)) {
            (void)fprintf(stderr, "tl_proxy: an answer line longer than %zu bytes\n",
                          sizeof(p->pending));
            return -1;
        }

        int64_t left = end - mono_ms();
        if (left <= 0) {
            (void)fprintf(stderr, "tl_proxy: no answer from proxy %d within %lld ms\n", (int)p->pid,
                          (long long)limit_ms);
            return -1;
        }
        struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc <= 0)
            continue;

        ssize_t got = read(p->out_fd, p->pending + p->npending, sizeof(p->pending) - p->npending);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            (void)fprintf(stderr, "tl_proxy: proxy %d closed its output\n", (int)p->pid);
            return -1;
        }
        p->npending += (size_t)got;
    }
}

/* Waits up to `limit_ms` for `pid`; its wait status, or -1 when it is still running. */
static int wait_for(pid_t pid, int64_t limit_ms)
{
    int64_t end = mono_ms() + limit_ms;
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (mono_ms() >= end)
            return -1;
        pause_ms(5);
    }
}

static void reset(struct tl_proxy *p)
{
    memset(p, 0, sizeof(*p));
    p->in_fd = -1;
    p->out_fd = -1;
}

int tl_proxy_start(const char *bin, const char *target_host, int target_port, struct tl_proxy *out)
{
    char path[4096], port[16];

    reset(out);
    resolve_bin(bin, path, sizeof(path));
    (void)snprintf(port, sizeof(port), "%d", target_port);
    const char *argv[] = {path, target_host, port, NULL};
    if (tl_spawn_piped("tl_proxy", argv, &out->pid, &out->in_fd, &out->out_fd) != 0) {
        reset(out);
        return -1;
    }
    if (read_line(out, ANSWER_MS) != 0) {
        (void)tl_proxy_stop(out);
        return -1;
    }

    char *end = NULL;
    long v = strtol(out->answer, &end, 10);
    if (end == out->answer || *end != '\0' || v <= 0 || v > 65535) {
        (void)fprintf(stderr, "tl_proxy: unexpected first line from %s: %s\n", path, out->answer);
        (void)tl_proxy_stop(out);
        return -1;
    }
    out->port = (int)v;
    return 0;
}

int tl_proxy_cmd(struct tl_proxy *p, const char *cmd)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "%s\n", cmd);

    if (p->pid <= 0 || n <= 0 || (size_t)n >= sizeof(line))
        return -1;
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = write(p->in_fd, line + off, (size_t)n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            (void)fprintf(stderr, "tl_proxy: cannot send \"%s\" to proxy %d\n", cmd, (int)p->pid);
            return -1;
        }
        off += (size_t)w;
    }
    if (read_line(p, ANSWER_MS) != 0)
        return -1;
    if (strncmp(p->answer, "ok", 2) != 0 || (p->answer[2] != '\0' && p->answer[2] != ' ')) {
        (void)fprintf(stderr, "tl_proxy: \"%s\": %s\n", cmd, p->answer);
        return -1;
    }
    return 0;
}

long long tl_proxy_stat(const struct tl_proxy *p, const char *name)
{
    size_t n = strlen(name);

    for (const char *s = p->answer; (s = strstr(s, name)) != NULL; s += n) {
        if ((s == p->answer || s[-1] == ' ') && s[n] == '=')
            return strtoll(s + n + 1, NULL, 10);
    }
    return -1;
}

int tl_proxy_stop(struct tl_proxy *p)
{
    int rc = 0;

    if (p == NULL || p->pid <= 0) /* never started (a zeroed struct), or stopped already */
        return 0;
    if (p->in_fd >= 0)
        (void)close(p->in_fd);
    if (p->out_fd >= 0)
        (void)close(p->out_fd);

    int status = wait_for(p->pid, STOP_MS);
    if (status == -1) {
        (void)fprintf(stderr, "tl_proxy: proxy %d did not exit at end of input: SIGKILL\n",
                      (int)p->pid);
        (void)kill(p->pid, SIGKILL);
        while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
            ;
        rc = -1;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        (void)fprintf(stderr, "tl_proxy: proxy %d ended with status %d\n", (int)p->pid, status);
        rc = -1;
    }
    reset(p);
    return rc;
}

void tl_proxy_forget(struct tl_proxy *p)
{
    if (p->pid <= 0)
        return;
    if (p->in_fd >= 0)
        (void)close(p->in_fd);
    if (p->out_fd >= 0)
        (void)close(p->out_fd);
    reset(p);
}

/* The first "127.0.0.1:" or "localhost:" followed by digits: where the digits begin. */
static const char *find_port(const char *url, size_t *len)
{
    static const char *const hosts[] = {"127.0.0.1:", "localhost:"};
    const char *best = NULL;

    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        for (const char *s = url; (s = strstr(s, hosts[i])) != NULL; s++) {
            const char *d = s + strlen(hosts[i]);
            size_t n = strspn(d, "0123456789");

            if (n > 0 && n <= 5) {
                if (best == NULL || d < best) {
                    best = d;
                    *len = n;
                }
                break;
            }
        }
    }
    return best;
}

int tl_proxy_url_port(const char *url)
{
    size_t n = 0;
    const char *d = find_port(url, &n);

    if (d == NULL)
        return 0;

    long v = strtol(d, NULL, 10);
    return v > 0 && v <= 65535 ? (int)v : 0;
}

int tl_proxy_url_via(const char *url, int port, char *out, size_t size)
{
    size_t n = 0;
    const char *d = find_port(url, &n);

    if (d == NULL)
        return -1;

    int w = snprintf(out, size, "%.*s%d%s", (int)(d - url), url, port, d + n);
    return w > 0 && (size_t)w < size ? 0 : -1;
}
