/*
 * github.c -- the GitHub test server for the torture runs: a private tl-github-server spawned
 * with its own helper (tests/github-server/spawn.h), and its admin API (PROTOCOL.md section 4),
 * through which the github-faults scenario turns faults on and reads whether they fired.
 * Built without the helper (TT_WITH_GHS undefined), GitHub runs are skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "torture.h"

#ifdef TT_WITH_GHS
#include <jansson.h>

#include "spawn.h"

static struct tl_ghs server; /* NOLINT: the run's one private server, parent only */

/* The server binary: $TL_GITHUB_SERVER_BIN or $TL_TEST_BINARY_DIR (the helper looks there),
 * else the tl-github-server beside this program (both are built into the build directory). */
static const char *server_bin(char *buf, size_t size)
{
    const char *env = getenv("TL_GITHUB_SERVER_BIN"); /* NOLINT(concurrency-mt-unsafe) */
    const char *dir = getenv("TL_TEST_BINARY_DIR");   /* NOLINT(concurrency-mt-unsafe) */

    if ((env != NULL && env[0] != '\0') || (dir != NULL && dir[0] != '\0'))
        return NULL;
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL || (size_t)(slash - buf) + sizeof("/tl-github-server") > size)
        return NULL;
    (void)snprintf(slash, size - (size_t)(slash - buf), "/tl-github-server");
    return access(buf, X_OK) == 0 ? buf : NULL;
}

int tt_github_start(uint32_t issues, char *url, size_t url_size, char *admin, size_t admin_size)
{
    char n[16];
    (void)snprintf(n, sizeof(n), "%u", issues);
    /* Far more requests than one account may make on GitHub: the torture is about the lock,
     * and the rate-limit faults are injected on purpose. */
    const char *const args[] = {
        "--repo",       "acme/widgets", "--issues", n, "--token", "tasklock-bot=torture-token",
        "--rate-limit", "100000000",    NULL};

    char bin[4096];
    if (tl_ghs_spawn(server_bin(bin, sizeof(bin)), args, &server) != 0)
        return -1;
    if (setenv("GH_TOKEN", "torture-token", 1) != 0) {
        (void)tl_ghs_stop(&server);
        return -1;
    }
    /* write_budget=off: GitHub's content limits (80 writes a minute) are the store's own test;
     * here they would only slow the run down. */
    (void)snprintf(url, url_size,
                   "github://acme/widgets?api_url=%s&write_budget=off&reread_delay=50ms"
                   "&history_pages=100",
                   server.url);
    (void)snprintf(admin, admin_size, "%s", server.url);
    return 0;
}

void tt_github_stop(void)
{
    (void)tl_ghs_stop(&server);
}

int tt_gh_request(const char *base, const char *method, const char *path, const char *body,
                  char **response)
{
    struct tl_ghs g = {.stdin_fd = -1};

    (void)snprintf(g.url, sizeof(g.url), "%s", base);
    return tl_ghs_admin(&g, method, path, body, response);
}

long tt_gh_stat_total(const char *base)
{
    struct tl_ghs g = {.stdin_fd = -1};

    (void)snprintf(g.url, sizeof(g.url), "%s", base);
    return tl_ghs_stat(&g, "total");
}

int tt_gh_remaining(const char *base, const char *knob)
{
    char *resp = NULL;
    int left = -1;

    if (tt_gh_request(base, "GET", "/_admin/faults", NULL, &resp) == 200 && resp != NULL) {
        json_t *j = json_loads(resp, 0, NULL);
        json_t *k = j ? json_object_get(j, knob) : NULL;

        if (json_is_object(k))
            k = json_object_get(k, "count");
        if (json_is_integer(k))
            left = (int)json_integer_value(k);
        else if (k == NULL || json_is_null(k) || json_is_false(k))
            left = 0;
        json_decref(j);
    }
    free(resp);
    return left;
}

#else /* no GitHub test server helper in this build */

int tt_github_start(uint32_t issues, char *url, size_t url_size, char *admin, size_t admin_size)
{
    (void)issues;
    (void)url;
    (void)url_size;
    (void)admin;
    (void)admin_size;
    return -1;
}

void tt_github_stop(void)
{
}

int tt_gh_request(const char *base, const char *method, const char *path, const char *body,
                  char **response)
{
    (void)base;
    (void)method;
    (void)path;
    (void)body;
    if (response != NULL)
        *response = NULL;
    return -1;
}

long tt_gh_stat_total(const char *base)
{
    (void)base;
    return -1;
}

int tt_gh_remaining(const char *base, const char *knob)
{
    (void)base;
    (void)knob;
    return -1;
}
#endif
