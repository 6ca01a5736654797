/*
 * github_config.c -- the GitHub store's connection settings: the API base URL, the token (from
 * the environment or `gh auth token`), and the store URL's parameters. No request is made here.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "github_int.h"

#define DEFAULT_API       "https://api.github.com"
#define HISTORY_PAGES_MAX 100

/* ---- URL, token ---- */

static const char *env(const char *name)
{
    const char *v = getenv(name); /* NOLINT(concurrency-mt-unsafe): read-only use */

    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Splits "scheme://host[:port][/path]" into its host; false if it is not of that shape. */
bool tl__gh_url_host(const char *url, const char **host, size_t *hlen, bool *https)
{
    const char *p;

    if (strncmp(url, "https://", 8) == 0) {
        *https = true;
        p = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        *https = false;
        p = url + 7;
    } else {
        return false;
    }
    size_t alen = strcspn(p, "/?#");
    if (alen == 0 || memchr(p, '@', alen) != NULL)
        return false;
    *host = p;
    if (p[0] == '[') {
        const char *rb = memchr(p, ']', alen);
        if (rb == NULL)
            return false;
        *hlen = (size_t)(rb - p) + 1;
    } else {
        const char *colon = memchr(p, ':', alen);
        *hlen = colon ? (size_t)(colon - p) : alen;
    }
    return *hlen > 0;
}

tl_status tl__gh_resolve_api_url(const char *param, char **out, char *err)
{
    const char *src = param, *what = "api_url";
    char *url = NULL;

    *out = NULL;
    if (src == NULL && (src = env("GITHUB_API_URL")) != NULL)
        what = "GITHUB_API_URL";
    if (src == NULL && (src = env("GH_HOST")) != NULL) {
        what = "GH_HOST";
        if (strchr(src, '/') != NULL || strchr(src, '@') != NULL) {
            (void)snprintf(err, TL_ERRMSG_SIZE, "github: GH_HOST must be a host name");
            return TL_EINVAL;
        }
        size_t n = strlen(src);
        if (strcmp(src, "github.com") == 0)
            url = tl__strdup(DEFAULT_API);
        else if (n > 8 && strcmp(src + n - 8, ".ghe.com") == 0)
            url = tl__asprintf("https://api.%s", src);
        else
            url = tl__asprintf("https://%s/api/v3", src);
    } else {
        url = tl__strdup(src ? src : DEFAULT_API);
    }
    if (url == NULL) {
        (void)snprintf(err, TL_ERRMSG_SIZE, "out of memory");
        return TL_ENOMEM;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';

    const char *host;
    size_t hlen;
    bool https;
    if (!tl__gh_url_host(url, &host, &hlen, &https) || strpbrk(url, "?# \t\r\n") != NULL) {
        (void)snprintf(err, TL_ERRMSG_SIZE,
                       "github: %s must be an https:// URL without query or credentials", what);
        tl__free(url);
        return TL_EINVAL;
    }
    if (!https && !tl__http_host_is_loopback(host, hlen)) {
        (void)snprintf(err, TL_ERRMSG_SIZE,
                       "github: %s: plain http:// is accepted only for a loopback test server; "
                       "use https://",
                       what);
        tl__free(url);
        return TL_EINVAL;
    }
    *out = url;
    return TL_OK;
}

enum tl_gh_host_kind tl__gh_host_kind(const char *api_url, char host[256])
{
    const char *h;
    size_t n;
    bool https;

    host[0] = '\0';
    if (!tl__gh_url_host(api_url, &h, &n, &https) || n >= 256)
        return TL_GH_ENTERPRISE;
    memcpy(host, h, n);
    host[n] = '\0';
    if (tl__http_host_is_loopback(h, n))
        return TL_GH_LOOPBACK;
    if (strcasecmp(host, "api.github.com") == 0) {
        (void)snprintf(host, 256, "github.com");
        return TL_GH_DOTCOM;
    }
    if (n > 8 && strcasecmp(host + n - 8, ".ghe.com") == 0) {
        if (strncasecmp(host, "api.", 4) == 0)
            memmove(host, host + 4, n - 3);
        return TL_GH_TENANCY;
    }
    return TL_GH_ENTERPRISE;
}

static bool token_ok(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > 1024)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (t[i] <= ' ' || t[i] > '~')
            return false;
    }
    return true;
}

/* Runs `gh auth token --hostname HOST` without a shell, for at most `timeout_ms`. Returns the
 * token (trimmed) or NULL. */
static char *gh_auth_token(const char *host, uint32_t timeout_ms)
{
    char *argv[] = {"gh", "auth", "token", "--hostname", (char *)host, NULL};
    int fds[2];
    char buf[2048];
    size_t n = 0;

    if (pipe(fds) != 0)
        return NULL;
    (void)fcntl(fds[0], F_SETFD, FD_CLOEXEC); /* not into other threads' children */
    (void)fcntl(fds[1], F_SETFD, FD_CLOEXEC); /* dup2 in the child clears it on fd 1 */
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            (void)dup2(devnull, 0);
            (void)dup2(devnull, 2);
        }
        (void)dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp("gh", argv);
        _exit(127);
    }
    close(fds[1]);

    int64_t end = tl__real_mono_ms() + timeout_ms;
    bool timed_out = false;
    for (;;) {
        int64_t left = end - tl__real_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0) {
            timed_out = rc == 0;
            break;
        }
        ssize_t got = read(fds[0], buf + n, sizeof(buf) - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        if (n == sizeof(buf) - 1)
            break;
    }
    close(fds[0]);
    if (timed_out)
        (void)kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    buf[n] = '\0';
    if (timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        memset(buf, 0, sizeof(buf));
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    char *tok = token_ok(buf) ? tl__strdup(buf) : NULL;
    memset(buf, 0, sizeof(buf));
    return tok;
}

static bool gh_on_path(void)
{
    const char *path = env("PATH");

    while (path != NULL && *path != '\0') {
        size_t len = strcspn(path, ":");
        char file[4096];
        if (len > 0 && len < sizeof(file) - 4) {
            (void)snprintf(file, sizeof(file), "%.*s/gh", (int)len, path);
            if (access(file, X_OK) == 0)
                return true;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return false;
}

tl_status tl__gh_resolve_token(const char *api_url, uint32_t gh_timeout_ms, char **token,
                               const char **source, char *err)
{
    char host[256];
    enum tl_gh_host_kind kind = tl__gh_host_kind(api_url, host);
    static const char *const dotcom[] = {"GH_TOKEN", "GITHUB_TOKEN", NULL};
    static const char *const ghes[] = {"GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN", NULL};
    const char *const *vars = kind == TL_GH_ENTERPRISE ? ghes : dotcom;

    *token = NULL;
    *source = NULL;
    for (size_t i = 0; vars[i] != NULL; i++) {
        const char *v = env(vars[i]);
        if (v == NULL)
            continue;
        if (!token_ok(v)) {
            (void)snprintf(err, TL_ERRMSG_SIZE,
                           "github: %s holds something that is not a token (white space or "
                           "control characters)",
                           vars[i]);
            return TL_ESTORE;
        }
        if ((*token = tl__strdup(v)) == NULL) {
            (void)snprintf(err, TL_ERRMSG_SIZE, "out of memory");
            return TL_ENOMEM;
        }
        *source = vars[i];
        return TL_OK;
    }
    if (gh_on_path() && (*token = gh_auth_token(host, gh_timeout_ms)) != NULL) {
        *source = "gh auth token";
        return TL_OK;
    }
    (void)snprintf(err, TL_ERRMSG_SIZE,
                   "github: no token for %.80s: set %s (or %s), or log in with `gh auth login "
                   "--hostname %.80s`",
                   host, vars[0], vars[1], host);
    return TL_ESTORE; /* authentication, like a token GitHub refuses (401) */
}

/* ---- store URL ---- */

bool tl__gh_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 100)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

/* Decodes %XX in place (the decoded text is never longer). */
static tl_status percent_decode(char *s)
{
    char *d = NULL;
    tl_status st = tl__percent_decode(s, strlen(s), &d);

    if (st == TL_OK) {
        memcpy(s, d, strlen(d) + 1);
        tl__free(d);
    }
    return st;
}

static bool parse_ms(const char *v, uint32_t *out)
{
    return tl_parse_duration(v, out) == TL_OK;
}

static bool parse_uint(const char *v, uint32_t max, uint32_t *out)
{
    uint64_t x;

    if (!tl__parse_u64(v, &x) || x > max)
        return false;
    *out = (uint32_t)x;
    return true;
}

/* "off", "N/min,M/h" or "N,M". */
static bool parse_budget(const char *v, struct gh_config *c)
{
    uint64_t a, b;
    char tmp[64];

    if (strcmp(v, "off") == 0 || strcmp(v, "0") == 0) {
        c->per_min = c->per_hour = 0;
        return true;
    }
    if (strlen(v) >= sizeof(tmp))
        return false;
    (void)snprintf(tmp, sizeof(tmp), "%s", v);
    char *comma = strchr(tmp, ',');
    if (comma == NULL)
        return false;
    *comma = '\0';
    char *x = tmp, *y = comma + 1;
    size_t xl = strlen(x), yl = strlen(y);
    if (xl > 4 && strcmp(x + xl - 4, "/min") == 0)
        x[xl - 4] = '\0';
    if (yl > 2 && strcmp(y + yl - 2, "/h") == 0)
        y[yl - 2] = '\0';
    if (!tl__parse_u64(x, &a) || !tl__parse_u64(y, &b) || a == 0 || b == 0 || a > b ||
        b > BUDGET_RING)
        return false;
    c->per_min = (uint32_t)a;
    c->per_hour = (uint32_t)b;
    return true;
}

static tl_status add_trusted(struct github_store *g, const char *list)
{
    const char *p = list;

    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if (n > 0) {
            if (!tl__gh_name_ok(p, n))
                return tl__gh_fail(g, TL_EINVAL, "github store URL: trusted: bad login \"%.*s\"",
                                   (int)(n > 64 ? 64 : n), p);
            char **t = tl__realloc(g->trusted, (g->ntrusted + 1) * sizeof(*t));
            if (t == NULL)
                return tl__gh_oom(g);
            g->trusted = t;
            if ((t[g->ntrusted] = tl__strndup(p, n)) == NULL)
                return tl__gh_oom(g);
            g->ntrusted++;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return TL_OK;
}

/* What parameter `name` takes, for the message about a bad value. */
static const char *param_rule(const char *name)
{
    static const struct {
        const char *name, *rule;
    } rules[] = {
        {"write_budget", "N/min,M/h or N,M with 1 <= N <= M <= 4096, or off"},
        {"timeout", "a duration: 250ms, 20s, 1m"},
        {"max_wait", "a duration, or 0"},
        {"rereads", "a whole number from 0 to 20"},
        {"reread_delay", "a duration: 500ms, 2s"},
        {"per_page", "a whole number from 1 to 100"},
        {"history_pages", "a whole number from 1 to 100"},
        {"reconcile", "true or false"},
        {"line_poll", "a duration from 50ms to 1m"},
        {"assign", "true or false"},
        {"priorities", "labels separated by commas, most urgent first"},
        {"sessions", "on or off"},
        {"session_issue", "an issue number"},
    };

    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (strcmp(rules[i].name, name) == 0)
            return rules[i].rule;
    }
    return "see docs/github.md";
}

tl_status tl__gh_parse_params(struct github_store *g, char *query, char **api_param)
{
    for (char *p = query; p != NULL && *p != '\0';) {
        char *amp = strchr(p, '&');
        if (amp != NULL)
            *amp = '\0';
        char *eq = strchr(p, '=');
        char *v = eq ? eq + 1 : (char *)"";
        if (eq != NULL)
            *eq = '\0';
        tl_status dst = percent_decode(v);
        if (dst == TL_ENOMEM)
            return tl__gh_oom(g);
        if (dst != TL_OK)
            return tl__gh_fail(g, TL_EINVAL, "github store URL: bad %%-escape in \"%s\"", p);

        bool ok = true;
        struct gh_config *c = &g->cfg;
        if (strcmp(p, "api_url") == 0) {
            tl__free(*api_param);
            ok = (*api_param = tl__strdup(v)) != NULL;
            if (!ok)
                return tl__gh_oom(g);
        } else if (strcmp(p, "trusted") == 0) {
            tl_status st = add_trusted(g, v);
            if (st != TL_OK)
                return st;
        } else if (strcmp(p, "write_budget") == 0) {
            ok = parse_budget(v, c);
        } else if (strcmp(p, "timeout") == 0) {
            ok = parse_ms(v, &c->timeout_ms);
        } else if (strcmp(p, "max_wait") == 0) {
            ok = parse_ms(v, &c->max_wait_ms) || strcmp(v, "0") == 0;
            if (strcmp(v, "0") == 0)
                c->max_wait_ms = 0;
        } else if (strcmp(p, "rereads") == 0) {
            ok = parse_uint(v, 20, &c->rereads);
        } else if (strcmp(p, "reread_delay") == 0) {
            ok = parse_ms(v, &c->reread_ms);
        } else if (strcmp(p, "per_page") == 0) {
            ok = parse_uint(v, 100, &c->per_page) && c->per_page > 0;
        } else if (strcmp(p, "history_pages") == 0) {
            ok = parse_uint(v, HISTORY_PAGES_MAX, &c->history_pages) && c->history_pages > 0;
        } else if (strcmp(p, "line_poll") == 0) {
            ok = parse_ms(v, &g->line_poll_ms) && g->line_poll_ms >= 50 && g->line_poll_ms <= 60000;
        } else if (strcmp(p, "reconcile") == 0) {
            ok = strcmp(v, "true") == 0 || strcmp(v, "false") == 0;
            c->reconcile = strcmp(v, "true") == 0;
        } else if (strcmp(p, "sessions") == 0) {
            ok = strcmp(v, "on") == 0 || strcmp(v, "off") == 0 || strcmp(v, "true") == 0 ||
                 strcmp(v, "false") == 0;
            c->sessions = strcmp(v, "on") == 0 || strcmp(v, "true") == 0;
        } else if (strcmp(p, "session_issue") == 0) {
            int64_t n = 0;
            ok = tl__gh_parse_key(v, &n);
            c->session_issue = ok ? n : 0;
        } else if (strcmp(p, "priorities") == 0) {
            tl__free(g->priorities);
            if ((g->priorities = tl__strdup(v)) == NULL)
                return tl__gh_oom(g);
            ok = tl__gh_next_priorities_ok(v);
        } else if (strcmp(p, "assign") == 0) {
            ok = strcmp(v, "true") == 0 || strcmp(v, "false") == 0 || strcmp(v, "1") == 0 ||
                 strcmp(v, "0") == 0;
            c->assign = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        } else {
            return tl__gh_fail(
                g, TL_EINVAL,
                "github store URL: unknown parameter \"%s\" (known: api_url, trusted, "
                "write_budget, timeout, max_wait, assign, rereads, reread_delay, "
                "per_page, history_pages, line_poll, reconcile, priorities, sessions, "
                "session_issue)",
                p);
        }
        if (!ok)
            return tl__gh_fail(g, TL_EINVAL, "github store URL: %s=\"%.64s\" is not allowed (%s)",
                               p, v, param_rule(p));
        p = amp ? amp + 1 : NULL;
    }
    return TL_OK;
}
