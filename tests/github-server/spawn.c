/*
 * spawn.c -- see spawn.h.
 */
#include "spawn.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
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

static int64_t mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void resolve_bin(const char *bin, char *out, size_t outlen)
{
    const char *env = getenv("TL_GITHUB_SERVER_BIN"); /* NOLINT(concurrency-mt-unsafe) */
    const char *dir = getenv("TL_TEST_BINARY_DIR");   /* NOLINT(concurrency-mt-unsafe) */

    if (bin)
        (void)snprintf(out, outlen, "%s", bin);
    else if (env && *env)
        (void)snprintf(out, outlen, "%s", env);
    else if (dir && *dir)
        (void)snprintf(out, outlen, "%s/tl-github-server", dir);
    else
        (void)snprintf(out, outlen, "./tl-github-server");
}

/* SIGTERM, then SIGKILL after 5 s; returns the wait status, or -1. */
static int reap(pid_t pid)
{
    int64_t deadline = mono_ms() + 5000;
    int status = 0;

    (void)kill(pid, SIGTERM);
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (mono_ms() > deadline) {
            (void)fprintf(stderr, "tl_ghs_stop: server %d ignored SIGTERM for 5 s: SIGKILL\n",
                          (int)pid);
            (void)kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                    return -1;
            return status;
        }
        struct timespec ts = {.tv_nsec = 10 * 1000000L};
        (void)nanosleep(&ts, NULL);
    }
}

/* Reads the child's stdout until the ready line; returns the port or -1. */
static int read_port(int fd, pid_t pid)
{
    char line[256];
    size_t len = 0;
    int64_t deadline = mono_ms() + 10000;

    while (len < sizeof(line) - 1) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        line[len] = '\0';
        char *nl = strchr(line, '\n');
        if (nl) {
            static const char prefix[] = "listening on http://127.0.0.1:";
            char *end = NULL;
            *nl = '\0';
            if (strncmp(line, prefix, sizeof(prefix) - 1) == 0) {
                unsigned long port = strtoul(line + sizeof(prefix) - 1, &end, 10);
                if (end && *end == '\0' && port > 0 && port < 65536)
                    return (int)port;
            }
            (void)fprintf(stderr, "tl_ghs_spawn: unexpected line from server %d: %s\n", (int)pid,
                          line);
            return -1;
        }
    }
    (void)fprintf(stderr, "tl_ghs_spawn: server %d did not report its port within 10 s\n",
                  (int)pid);
    return -1;
}

int tl_ghs_spawn(const char *bin, const char *const extra_args[], struct tl_ghs *out)
{
    char path[4096];
    size_t nextra = 0;
    pid_t pid = 0;
    int to = -1, from = -1, rc = -1;

    memset(out, 0, sizeof(*out));
    out->stdin_fd = -1;
    resolve_bin(bin, path, sizeof(path));
    while (extra_args && extra_args[nextra])
        nextra++;
    const char **argv = calloc(nextra + 5, sizeof(*argv));
    if (!argv)
        return -1;
    argv[0] = path;
    argv[1] = "--port";
    argv[2] = "0";
    argv[3] = "--die-with-stdin";
    for (size_t i = 0; i < nextra; i++)
        argv[4 + i] = extra_args[i];

    if (tl_spawn_piped("tl_ghs_spawn", argv, &pid, &to, &from) != 0)
        goto out_free;
    int port = read_port(from, pid);
    (void)close(from);
    if (port < 0) {
        (void)close(to);
        (void)reap(pid);
        goto out_free;
    }
    out->pid = pid;
    out->port = port;
    out->stdin_fd = to;
    (void)snprintf(out->url, sizeof(out->url), "http://127.0.0.1:%d", port);
    rc = 0;
out_free:
    free(argv);
    return rc;
}

int tl_ghs_stop(struct tl_ghs *g)
{
    int rc = 0;

    if (!g)
        return 0;
    if (g->pid > 0) {
        int status = reap(g->pid);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            /* A sanitizer report, a crash or a hang of the server: make it visible. */
            if (status != -1 && WIFSIGNALED(status))
                (void)fprintf(stderr, "tl_ghs_stop: server %d died of signal %d\n", (int)g->pid,
                              WTERMSIG(status));
            else if (status != -1)
                (void)fprintf(stderr, "tl_ghs_stop: server %d exited with status %d\n", (int)g->pid,
                              WEXITSTATUS(status));
            rc = -1;
        }
    }
    if (g->stdin_fd >= 0)
        (void)close(g->stdin_fd);
    memset(g, 0, sizeof(*g));
    g->stdin_fd = -1;
    return rc;
}

/* ---- admin requests ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct buf {
    char *data;
    size_t len;
    bool failed;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);

    if (!grown) {
        b->failed = true;
        return 0;
    }
    memcpy(grown + b->len, ptr, n);
    b->len += n;
    grown[b->len] = '\0';
    b->data = grown;
    return n;
}

int tl_ghs_admin(const struct tl_ghs *g, const char *method, const char *path,
                 const char *json_body, char **response)
{
    char url[2048];
    struct buf b = {0};
    struct curl_slist *hdrs = NULL;
    long code = -1;

    if (response)
        *response = NULL;
    (void)pthread_once(&curl_once, curl_init_once);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    (void)snprintf(url, sizeof(url), "%s%s", g->url, path);
    if (!json_body && strcmp(method, "POST") == 0)
        json_body = "{}";
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    (void)curl_easy_setopt(c, CURLOPT_URL, url);
    (void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    (void)curl_easy_setopt(c, CURLOPT_USERAGENT, "tl-ghs-client");
    (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (json_body)
        (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
    if (strcmp(method, "HEAD") == 0)
        (void)curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (curl_easy_perform(c) == CURLE_OK && !b.failed)
        (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    else
        code = -1;
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (code >= 0 && response) {
        *response = b.data ? b.data : calloc(1, 1);
        b.data = NULL;
    }
    free(b.data);
    return (int)code;
}

long tl_ghs_stat(const struct tl_ghs *g, const char *name)
{
    char *body = NULL;
    long value = -1;

    if (tl_ghs_admin(g, "GET", "/_admin/stats", NULL, &body) != 200) {
        free(body);
        return -1;
    }
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    if (!j)
        return -1;
    json_t *v;
    if (strncmp(name, "status:", 7) == 0)
        v = json_object_get(json_object_get(j, "by_status"), name + 7);
    else if (strncmp(name, "login:", 6) == 0)
        v = json_object_get(json_object_get(j, "by_login"), name + 6);
    else if (strchr(name, ' ') || strcmp(name, "other") == 0)
        v = json_object_get(json_object_get(j, "by_endpoint"), name);
    else
        v = json_object_get(j, name);
    value = v ? (long)json_integer_value(v) : 0;
    json_decref(j);
    return value;
}
