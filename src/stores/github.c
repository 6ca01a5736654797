/*
 * github.c -- the GitHub Issues store: `github://OWNER/REPO[?param=value&...]`, key = issue
 * number. DESIGN.md section 5 is the protocol; docs/github.md the user's view; docs/design.md
 * why it is built this way. In short:
 *
 * - A claim is an issue comment by a trusted account (the token's login, plus ?trusted=a,b)
 *   with a hidden `<!-- tasklock {...} -->` marker (github_marker.c). The holder is the trusted
 *   claim with the lowest comment id; that id is the fencing token.
 * - Acquire: list the comments (If-None-Match: a 304 costs no primary rate budget); if held,
 *   busy (steal-stale deletes a stale holder's claim, force any holder's); else post our claim,
 *   list again, and keep the claim only if it is the lowest; then add the assignee (a hint), whose
 *   answer is the issue with its `comments` count: a list shorter than that count is stale and
 *   is read again (bounded, and never past the caller's deadline); if it stays short the claim
 *   is withdrawn and the outcome reported unknown (busy), never won. A claim POST that fails
 *   ambiguously (5xx, timeout) is looked for by its nonce before anything is posted again.
 * - Lists are read a page at a time with If-None-Match. A 304 need not carry a Link, so a full
 *   page is always followed by a request for the next one (see read_pages).
 * - Renew: list (also to notice a lower claim that became visible late: then the lock is lost),
 *   then edit our claim in place (never a new comment). 404 = deleted = lost.
 * - Release: delete our claim, remove the assignee, post the completion comment.
 * - Staleness by the server's clock: the `Date` of the list response against the claim's
 *   `updated_at`, with the lock timeout the claim records.
 * - History: read back from the comments (completions, the holder's claim, the "from" chains of
 *   claims that displaced others); see "history" below. Nothing is written for it.
 * - Size: a claim is built and checked against GitHub's body limit before any write.
 * - Rate limits: x-ratelimit-* read on every response; primary exhaustion and secondary limits
 *   block every instance of the process until they end (waited out when the caller's deadline
 *   allows, else TL_ERATELIMIT saying until when); writes spend a process-wide budget.
 * - Waits: every sleep of a call (limits, retries, re-reads) asks may_wait first, so it ends by
 *   the caller's deadline; a renew also gets its own (a quarter of the timeout). Every request
 *   ends by the caller's deadline as well (libcurl's timeout is cut to the time left), so that a
 *   renew, whose deadline is its lock's loss deadline, never outlives the lock.
 *
 * Everything renew and release need is in the held record (token = comment id, opaque = nonce
 * and login), because the manager renews on its heartbeat thread's own instance.
 */
#include "github.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../http.h"
#include "github_next.h"
#include "store.h"
#include "tl.h"

#define DEFAULT_API           "https://api.github.com"
#define DEFAULT_PER_MIN       80
#define DEFAULT_PER_HOUR      500
#define BUDGET_RING           4096 /* writes remembered: the largest per-hour budget accepted */
#define DEFAULT_MAX_WAIT_MS   (5u * 60 * 1000)
#define DEFAULT_REREADS       3
#define DEFAULT_REREAD_MS     500
#define DEFAULT_PER_PAGE      100
#define DEFAULT_HISTORY_PAGES 10 /* the repository-wide log: the newest 1000 comments */
#define HISTORY_PAGES_MAX     100
#define GH_TIMEOUT_MS         5000
#define MAX_PAGES             2000
#define CACHE_MAX             64
#define ORPHANS_MAX           16
#define SECONDARY_BASE_MS     60000
#define SECONDARY_MAX_MS      (15 * 60 * 1000)
#define STALE_MARGIN_MS       1000 /* GitHub's timestamps have 1 s precision */
#define VICTIMS_MAX           64   /* claims one acquire takes out of its way, at most */
#define COMPLETION_ATTEMPTS   5    /* a completion comment: 0.25 + 0.5 + 1 + 2 s between tries */
#define COMPLETION_RETRY_MS   250u
#define PLACES_MAX            4    /* places in line one instance keeps (one thread's) */
#define LINE_POLL_MS          1000 /* wait_turn reads the list this often (304s are free) */
/* Characters a claim body may grow by after it is posted: its heartbeat counter, written twice
 * ("#N" and "seq":N), from one digit to at most 19 (it stays within int64); a queued claim's
 * held mark ("held":true) and its visible line turned into the holder's; an extended lock
 * timeout's longer duration. */
#define SEQ_ROOM 100

/* ---- process-wide state ----
 *
 * GitHub's limits are per account, not per connection: the manager's two instances (caller and
 * heartbeat thread), and every other manager of the process, spend one account's allowance. A
 * budget kept per instance would let N instances spend N times GitHub's content-creation limit
 * and be blocked as a whole; a secondary limit seen by one instance must stop the others from
 * hammering too. So the write budget and the "blocked until" times are the process's one piece
 * of GitHub state: a global, guarded by its mutex, never held across I/O. (Instances of several
 * accounts in one process share it too, which is conservative.)
 */
static struct {
    pthread_mutex_t mu;
    int64_t writes[BUDGET_RING]; /* real monotonic ms of recent writes, a ring */
    size_t next;
    size_t count;
    int64_t blocked_until;   /* real monotonic ms: no request before this */
    bool blocked_secondary;  /* why: a secondary limit (else the primary one) */
    uint32_t secondary_next; /* backoff of the next secondary limit without retry-after */
} gh_global = {.mu = PTHREAD_MUTEX_INITIALIZER}; /* NOLINT: see the comment above */

/* ---- the instance ---- */

struct gh_item { /* a listed comment with a tasklock marker */
    int64_t id;
    char *login;
    int64_t created_ms;
    int64_t updated_ms;
    enum tl_gh_kind kind; /* TL_GH_CLAIM, TL_GH_RELEASE, TL_GH_BAD or TL_GH_REOPEN */
    struct tl_gh_claim claim;
    struct tl_gh_release rel;
    int64_t issue; /* repo-wide lists: the issue number */
    bool deleted;  /* we deleted it since it was listed */
};

struct gh_page {
    char *url;
    char *etag;
    char *next;   /* the next page's URL; NULL on the last page */
    size_t count; /* comments on the page */
    struct gh_item *items;
    size_t nitems;
};

struct gh_list {    /* what this instance last read of a comment list */
    int64_t number; /* the issue; 0: the repository-wide list */
    struct gh_page *pages;
    size_t npages;
    int64_t date_ms; /* the server clock at the last read */
    char *issue_etag;
    int64_t issue_comments;
    uint64_t used;
    /* The list was found shorter than the issue's `comments` count: the next read asks for its
     * last page without If-None-Match, so that the answer (and its Link) is not the cache's. */
    bool recheck_tail;
};

struct gh_place {                     /* a waiter's place in line: its claim comment */
    char waiter[TL_GH_NONCE_LEN + 1]; /* the waiter id; "": a free slot */
    char nonce[TL_GH_NONCE_LEN + 1];
    int64_t number;
    int64_t comment;
    int64_t beat_sent; /* when its last write (post or edit) was sent: the clock's mono_ms */
    int64_t polled;    /* when the issue's comments were last read for it (claim, wait_turn) */
    uint64_t used;
};

struct gh_config {
    uint32_t per_min, per_hour; /* write budget; 0: off */
    uint32_t timeout_ms;
    uint32_t max_wait_ms;
    uint32_t rereads;
    uint32_t reread_ms;
    uint32_t per_page;
    uint32_t history_pages; /* the repository-wide log reads at most this many pages */
    bool assign;
    bool reconcile; /* false only in tests: trust a re-list without the count check */
};

struct github_store {
    struct tl_store base; /* must be first */
    struct tl_http *http;
    struct gh_config cfg;
    char *api;    /* base URL without a trailing slash */
    char *origin; /* scheme://host[:port] of api: Link targets must stay on it */
    char *owner;
    char *repo;
    char *login; /* the token's login; NULL until known */
    char **trusted;
    size_t ntrusted;
    const char *token_source;
    enum tl_gh_host_kind host_kind;
    struct gh_list *lists[CACHE_MAX];
    size_t nlists;
    uint64_t use_clock;
    int64_t orphans[ORPHANS_MAX]; /* our claims we failed to delete: retried later */
    size_t norphans;
    int64_t pending_issue; /* a claim POST that failed ambiguously, looked for later */
    char pending_nonce[TL_GH_NONCE_LEN + 1];
    uint32_t op_max_wait_ms; /* the current call's wait limit when it has no deadline */
    int64_t op_deadline;     /* renew: the clock's mono_ms its waits end by (0: none); see renew */
    bool cleaning_up;        /* withdrawing a claim: its request may outlive the deadline */
    /* A claim or release has made its first write: its later requests may outlive the
     * caller's deadline (libcurl's timeout still bounds them), so that it is not left half
     * done, e.g. a holder's claim deleted by a steal whose own claim, which records that
     * holder, was then never posted. A renew's requests are always bounded. */
    bool committed;
    uint64_t nonce_ctr;
    int64_t pending_sent;               /* when that POST was sent (the clock's mono_ms) */
    struct gh_place places[PLACES_MAX]; /* the line: our waiters' claims */
    uint32_t line_poll_ms;              /* wait_turn's cadence of list reads */
    char *priorities; /* ?priorities=: claim-next's priority-label table (github_next.c) */
    void *next_state; /* github_next.c's own cache (tl__gh_next_slot) */
    /* The state of the issue in the last issue answer this call read (claim: the assignee's
     * answer, or the count check): 1 closed, 0 open, -1 none read. */
    int issue_closed;
};
_Static_assert(offsetof(struct github_store, base) == 0, "base must be first");

#define LOG(g, lvl, ...) TL_LOG((g)->base.log, lvl, __VA_ARGS__)

static tl_status fail(struct github_store *g, tl_status st, const char *fmt, ...) TL_PRINTF(3, 4);

static tl_status fail(struct github_store *g, tl_status st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tl__vformat(g->base.errmsg, fmt, ap);
    va_end(ap);
    return st;
}

static tl_status oom(struct github_store *g)
{
    return fail(g, TL_ENOMEM, "out of memory");
}

/* ---- URL, token ---- */

static const char *env(const char *name)
{
    const char *v = getenv(name); /* NOLINT(concurrency-mt-unsafe): read-only use */

    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Splits "scheme://host[:port][/path]" into its host; false if it is not of that shape. */
static bool url_host(const char *url, const char **host, size_t *hlen, bool *https)
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
    if (!url_host(url, &host, &hlen, &https) || strpbrk(url, "?# \t\r\n") != NULL) {
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
    if (!url_host(api_url, &h, &n, &https) || n >= 256)
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

static bool name_ok(const char *s, size_t n)
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
            if (!name_ok(p, n))
                return fail(g, TL_EINVAL, "github store URL: trusted: bad login \"%.*s\"",
                            (int)(n > 64 ? 64 : n), p);
            char **t = tl__realloc(g->trusted, (g->ntrusted + 1) * sizeof(*t));
            if (t == NULL)
                return oom(g);
            g->trusted = t;
            if ((t[g->ntrusted] = tl__strndup(p, n)) == NULL)
                return oom(g);
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
    };

    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (strcmp(rules[i].name, name) == 0)
            return rules[i].rule;
    }
    return "see docs/github.md";
}

static tl_status parse_params(struct github_store *g, char *query, char **api_param)
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
            return oom(g);
        if (dst != TL_OK)
            return fail(g, TL_EINVAL, "github store URL: bad %%-escape in \"%s\"", p);

        bool ok = true;
        struct gh_config *c = &g->cfg;
        if (strcmp(p, "api_url") == 0) {
            tl__free(*api_param);
            ok = (*api_param = tl__strdup(v)) != NULL;
            if (!ok)
                return oom(g);
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
        } else if (strcmp(p, "priorities") == 0) {
            tl__free(g->priorities);
            if ((g->priorities = tl__strdup(v)) == NULL)
                return oom(g);
            ok = tl__gh_next_priorities_ok(v);
        } else if (strcmp(p, "assign") == 0) {
            ok = strcmp(v, "true") == 0 || strcmp(v, "false") == 0 || strcmp(v, "1") == 0 ||
                 strcmp(v, "0") == 0;
            c->assign = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        } else {
            return fail(g, TL_EINVAL,
                        "github store URL: unknown parameter \"%s\" (known: api_url, trusted, "
                        "write_budget, timeout, max_wait, assign, rereads, reread_delay, "
                        "per_page, history_pages, line_poll, reconcile, priorities)",
                        p);
        }
        if (!ok)
            return fail(g, TL_EINVAL, "github store URL: %s=\"%.64s\" is not allowed (%s)", p, v,
                        param_rule(p));
        p = amp ? amp + 1 : NULL;
    }
    return TL_OK;
}

/* ---- rate limits and the write budget ---- */

static int64_t mono(void)
{
    return tl__real_mono_ms();
}

static void until_text(int64_t wait_ms, char buf[TL_ISO_SIZE])
{
    tl__format_iso(tl__real_now_ms() + wait_ms, buf);
    char *dot = strchr(buf, '.');
    if (dot != NULL) {
        dot[0] = 'Z';
        dot[1] = '\0';
    }
}

/*
 * Whether the current call may wait `ms`: the wait must end by the caller's deadline, or by the
 * call's own one (a renew's), or else be at most the call's wait limit. Every wait of a call
 * (rate limits, the write budget, retry and re-read delays) asks this first.
 */
/* The end of the current call by the clock's mono_ms: the caller's deadline or the call's own,
 * whichever is sooner; 0 when it has neither. */
static int64_t call_end(const struct github_store *g)
{
    int64_t a = g->base.deadline_mono_ms, b = g->op_deadline;

    return a == 0 ? b : b == 0 || a < b ? a : b;
}

static bool may_wait(struct github_store *g, int64_t ms)
{
    int64_t end = call_end(g);

    if (end != 0)
        return g->base.clock->mono_ms(g->base.clock->ud) + ms <= end;
    return ms <= (int64_t)g->op_max_wait_ms;
}

/* Sleeps `ms` if may_wait allows it; else returns false at once, without sleeping. */
static bool nap(struct github_store *g, uint32_t ms)
{
    if (!may_wait(g, ms))
        return false;
    tl__real_sleep_ms(ms);
    return true;
}

/* The wait before any request may go out (a limit in force), and why. */
static int64_t blocked_wait(bool *secondary)
{
    pthread_mutex_lock(&gh_global.mu);
    int64_t w = gh_global.blocked_until - mono();
    *secondary = gh_global.blocked_secondary;
    pthread_mutex_unlock(&gh_global.mu);
    return w > 0 ? w : 0;
}

static void block_for(int64_t ms, bool secondary)
{
    pthread_mutex_lock(&gh_global.mu);
    int64_t until = mono() + ms;
    if (until > gh_global.blocked_until) {
        gh_global.blocked_until = until;
        gh_global.blocked_secondary = secondary;
    }
    pthread_mutex_unlock(&gh_global.mu);
}

void tl__gh_reset_limits(void)
{
    pthread_mutex_lock(&gh_global.mu);
    gh_global.next = gh_global.count = 0;
    gh_global.blocked_until = 0;
    gh_global.blocked_secondary = false;
    gh_global.secondary_next = 0;
    pthread_mutex_unlock(&gh_global.mu);
}

/* Takes a write from the budget, or says how long until one is free. */
static int64_t budget_take(const struct gh_config *c)
{
    int64_t wait = 0;

    if (c->per_min == 0)
        return 0;
    pthread_mutex_lock(&gh_global.mu);
    int64_t now = mono();
    uint32_t in_min = 0, in_hour = 0;
    int64_t oldest_min = INT64_MAX, oldest_hour = INT64_MAX;
    for (size_t i = 0; i < gh_global.count; i++) {
        int64_t t = gh_global.writes[(gh_global.next + BUDGET_RING - 1 - i) % BUDGET_RING];
        if (now - t < 3600000) {
            in_hour++;
            if (t < oldest_hour)
                oldest_hour = t;
            if (now - t < 60000) {
                in_min++;
                if (t < oldest_min)
                    oldest_min = t;
            }
        }
    }
    if (in_min >= c->per_min)
        wait = oldest_min + 60000 - now;
    if (in_hour >= c->per_hour && oldest_hour + 3600000 - now > wait)
        wait = oldest_hour + 3600000 - now;
    if (wait <= 0) {
        wait = 0;
        gh_global.writes[gh_global.next] = now;
        gh_global.next = (gh_global.next + 1) % BUDGET_RING;
        if (gh_global.count < BUDGET_RING)
            gh_global.count++;
    }
    pthread_mutex_unlock(&gh_global.mu);
    return wait > 0 ? wait : 0;
}

/* Server time of a response in ms (its Date), or the local clock. */
static int64_t resp_date(const struct tl_http_resp *r)
{
    int64_t ms;

    if (r->date != NULL && tl__parse_http_date(r->date, &ms))
        return ms;
    return tl__real_now_ms();
}

static bool is_write(const char *method)
{
    return strcmp(method, "GET") != 0;
}

/* The "message" of a GitHub error body, or "". */
static void error_message(const struct tl_http_resp *r, char *buf, size_t size)
{
    json_t *root = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    json_t *m = json_object_get(root, "message");

    (void)snprintf(buf, size, "%s", json_is_string(m) ? json_string_value(m) : "");
    json_decref(root);
    for (char *p = buf; *p; p++) {
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    }
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++) {
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    }
    return false;
}

/* The path part of a URL, for logs and messages. */
static const char *path_of(const struct github_store *g, const char *url)
{
    size_t n = strlen(g->origin);

    return strncmp(url, g->origin, n) == 0 ? url + n : url;
}

static const char *token_hint(const struct github_store *g)
{
    if (g->token_source != NULL && strcmp(g->token_source, "gh auth token") == 0)
        return "run `gh auth login`, or set GH_TOKEN";
    return g->host_kind == TL_GH_ENTERPRISE ? "set GH_ENTERPRISE_TOKEN to a valid token"
                                            : "set GH_TOKEN (or GITHUB_TOKEN) to a valid token";
}

/*
 * Sends one request through the limits. TL_OK when GitHub answered with a status the caller
 * interprets (anything but 401, a rate limit and a 403 refusal); GETs are retried on 5xx and
 * dropped connections. Writes are sent once (the caller decides what an ambiguous failure
 * means); they spend the write budget first.
 */
static tl_status gh_call(struct github_store *g, const char *method, const char *url,
                         const char *body, const char *inm, struct tl_http_resp *r)
{
    char until[TL_ISO_SIZE], msg[160];
    tl_status st;

    for (int attempt = 0;; attempt++) {
        bool secondary;
        int64_t wait = blocked_wait(&secondary);
        if (wait > 0) {
            until_text(wait, until);
            if (!may_wait(g, wait))
                return fail(g, TL_ERATELIMIT,
                            "github: %s rate limit in force until %s (%lld s); not waiting "
                            "past the call's deadline",
                            secondary ? "secondary" : "primary", until,
                            (long long)(wait + 999) / 1000);
            LOG(g, TL_LOG_WARN, "github: %s rate limit: waiting %lld ms, until %s",
                secondary ? "secondary" : "primary", (long long)wait, until);
            tl__real_sleep_ms((uint32_t)wait);
        }
        if (is_write(method)) {
            int64_t bw = budget_take(&g->cfg);
            if (bw > 0) {
                until_text(bw, until);
                if (!may_wait(g, bw))
                    return fail(g, TL_ERATELIMIT,
                                "github: this process's write budget (%u/min, %u/h) is spent "
                                "until %s",
                                g->cfg.per_min, g->cfg.per_hour, until);
                LOG(g, TL_LOG_INFO, "github: write budget spent: waiting %lld ms", (long long)bw);
                tl__real_sleep_ms((uint32_t)bw);
                attempt--; /* not a failed attempt */
                continue;
            }
        }

        /* A request ends by the caller's deadline too (a renew's: its lock's loss deadline). */
        uint32_t limit = 0;
        bool bounded = !g->cleaning_up && (g->op_deadline != 0 || !g->committed);
        int64_t end = bounded ? g->base.deadline_mono_ms : 0;
        if (end != 0) {
            int64_t left = end - g->base.clock->mono_ms(g->base.clock->ud);
            if (left <= 0)
                return fail(g, TL_ETIMEDOUT, "github: %s %s: no time left before the deadline",
                            method, path_of(g, url));
            limit = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
        }
        st = tl__http_request(g->http, method, url, body, inm, limit, r, g->base.errmsg);
        if (is_write(method) && (st == TL_OK || r->maybe_sent))
            g->committed = true;
        if (st == TL_ENOMEM)
            return st;
        if (st != TL_OK) {
            LOG(g, TL_LOG_DEBUG, "%s", g->base.errmsg);
            if (!is_write(method) && attempt < 2 && nap(g, 200u << attempt))
                continue;
            return st;
        }
        LOG(g, TL_LOG_DEBUG, "github: %s %s -> %ld (rate limit remaining %lld)", method,
            path_of(g, url), r->status, (long long)r->rl_remaining);

        int64_t date = resp_date(r);
        bool core = r->rl_resource == NULL || strcmp(r->rl_resource, "core") == 0;
        int64_t to_reset = r->rl_reset > 0 ? r->rl_reset * 1000 - date + 1000 : 60000;
        if (to_reset < 1000)
            to_reset = 1000;
        if (r->status == 401) {
            error_message(r, msg, sizeof(msg));
            return fail(g, TL_ESTORE, "github: %s %s: 401 %s: the token from %s was rejected; %s",
                        method, path_of(g, url), msg[0] ? msg : "Unauthorized",
                        g->token_source ? g->token_source : "?", token_hint(g));
        }
        if (r->status == 403 || r->status == 429) {
            error_message(r, msg, sizeof(msg));
            int64_t ra = -1;
            uint64_t secs;
            int64_t when;
            if (r->retry_after != NULL && tl__parse_u64(r->retry_after, &secs) && secs < 86400)
                ra = (int64_t)secs * 1000;
            else if (r->retry_after != NULL && tl__parse_http_date(r->retry_after, &when))
                ra = when - date > 0 ? when - date : 1000;

            if (ra >= 0) {
                block_for(ra, true);
            } else if (r->rl_remaining == 0 && core) {
                block_for(to_reset, false);
            } else if (contains_ci(msg, "secondary rate limit") || r->status == 429) {
                pthread_mutex_lock(&gh_global.mu);
                uint32_t b =
                    gh_global.secondary_next ? gh_global.secondary_next : SECONDARY_BASE_MS;
                gh_global.secondary_next = b * 2 > SECONDARY_MAX_MS ? SECONDARY_MAX_MS : b * 2;
                pthread_mutex_unlock(&gh_global.mu);
                block_for(b, true);
            } else {
                return fail(g, TL_ESTORE,
                            "github: %s %s: 403 %s (the token needs read and write access to "
                            "issues of %s/%s)",
                            method, path_of(g, url), msg[0] ? msg : "Forbidden", g->owner, g->repo);
            }
            LOG(g, TL_LOG_WARN, "github: %s %s: %ld %s", method, path_of(g, url), r->status, msg);
            if (attempt >= 4) {
                bool sec;
                int64_t w = blocked_wait(&sec);
                until_text(w, until);
                return fail(g, TL_ERATELIMIT, "github: rate limited (%s) until %s", msg, until);
            }
            tl__http_resp_clear(r);
            continue; /* the gate at the top waits, or fails saying until when */
        }
        if (r->rl_remaining == 0 && core && r->rl_reset > 0)
            block_for(to_reset, false); /* the next request would be refused */
        if (r->status >= 500 && !is_write(method) && attempt < 2 && may_wait(g, 200u << attempt)) {
            tl__http_resp_clear(r);
            tl__real_sleep_ms(200u << attempt);
            continue;
        }
        if (r->status < 400) {
            pthread_mutex_lock(&gh_global.mu);
            gh_global.secondary_next = 0;
            pthread_mutex_unlock(&gh_global.mu);
        }
        return TL_OK;
    }
}

/* An error for a status the caller did not expect. */
static tl_status unexpected(struct github_store *g, const char *method, const char *url,
                            const struct tl_http_resp *r, int64_t issue)
{
    char msg[160];

    error_message(r, msg, sizeof(msg));
    if (issue > 0 && r->status == 404)
        return fail(g, TL_ESTORE,
                    "github: issue #%lld not found in %s/%s (404): check the repository, the "
                    "issue number, and that the token can read it",
                    (long long)issue, g->owner, g->repo);
    if (issue > 0 && r->status == 410)
        return fail(g, TL_ESTORE, "github: issue #%lld of %s/%s was deleted (410)",
                    (long long)issue, g->owner, g->repo);
    if (issue > 0 && (r->status == 301 || r->status == 302 || r->status == 307))
        return fail(g, TL_ESTORE,
                    "github: issue #%lld of %s/%s was transferred or its repository moved (%ld "
                    "to %.120s); lock the issue where it is now",
                    (long long)issue, g->owner, g->repo, r->status,
                    r->location ? path_of(g, r->location) : "?");
    return fail(g, TL_ESTORE, "github: %s %s: unexpected %ld%s%s", method, path_of(g, url),
                r->status, msg[0] ? " " : "", msg);
}

/* ---- JSON of comments and issues ---- */

static json_t *load_json(const struct tl_http_resp *r)
{
    return json_loadb(r->body ? r->body : "", r->body_len, 0, NULL);
}

static bool json_time(json_t *o, const char *field, int64_t *out)
{
    json_t *v = json_object_get(o, field);

    return json_is_string(v) && tl__parse_iso(json_string_value(v), out);
}

static void item_clear(struct gh_item *it)
{
    tl__free(it->login);
    tl__gh_claim_clear(&it->claim);
    tl__gh_release_clear(&it->rel);
    memset(it, 0, sizeof(*it));
}

static bool trusted(const struct github_store *g, const char *login)
{
    if (login == NULL)
        return false;
    if (g->login != NULL && strcasecmp(login, g->login) == 0)
        return true;
    for (size_t i = 0; i < g->ntrusted; i++) {
        if (strcasecmp(login, g->trusted[i]) == 0)
            return true;
    }
    return false;
}

/* The issue number at the end of an issue_url. */
static int64_t issue_of(json_t *o)
{
    json_t *v = json_object_get(o, "issue_url");
    int64_t n = 0;

    if (!json_is_string(v))
        return 0;
    const char *s = strrchr(json_string_value(v), '/');
    return s != NULL && tl__gh_parse_key(s + 1, &n) ? n : 0;
}

/*
 * Reads one comment object. Returns 1 and fills `it` when it carries a tasklock marker, 0 when
 * it is an ordinary comment, -1 when it is not a comment object at all.
 */
static int read_comment(struct github_store *g, json_t *o, struct gh_item *it)
{
    char why[TL_ERRMSG_SIZE] = "";
    json_t *id = json_object_get(o, "id");
    json_t *user = json_object_get(o, "user");
    json_t *login = json_object_get(user, "login");
    json_t *body = json_object_get(o, "body");

    memset(it, 0, sizeof(*it));
    if (!json_is_integer(id) || json_integer_value(id) <= 0)
        return -1;
    it->id = json_integer_value(id);
    if (!json_is_string(body))
        return 0;
    enum tl_gh_kind k = tl__gh_parse_comment(json_string_value(body), json_string_length(body),
                                             &it->claim, &it->rel, why);
    if (k == TL_GH_NONE) {
        /* A reopen comment (github_next.c): kept in `rel` (who, and when: released_at_ms). */
        struct tl_gh_reopen ro;
        if (tl__gh_parse_reopen(json_string_value(body), json_string_length(body), &ro) !=
            TL_GH_REOPEN)
            return 0;
        k = TL_GH_REOPEN;
        it->rel.worker_id = ro.worker_id;
        it->rel.node_id = ro.node_id;
        it->rel.released_at_ms = ro.at_ms;
    }
    it->kind = k;
    it->issue = issue_of(o);
    it->login = json_is_string(login) ? tl__strdup(json_string_value(login)) : NULL;
    if (!json_time(o, "created_at", &it->created_ms) ||
        !json_time(o, "updated_at", &it->updated_ms)) {
        it->kind = TL_GH_BAD;
        (void)snprintf(why, sizeof(why), "no valid created_at/updated_at");
    }
    if (it->kind == TL_GH_BAD) {
        tl__gh_claim_clear(&it->claim);
        tl__gh_release_clear(&it->rel);
        if (trusted(g, it->login))
            LOG(g, TL_LOG_WARN, "github: comment %lld by %s: ignored: %s", (long long)it->id,
                it->login, why);
        else
            LOG(g, TL_LOG_DEBUG, "github: comment %lld by %s: ignored: %s", (long long)it->id,
                it->login ? it->login : "?", why);
    }
    return 1;
}

/* ---- comment lists ---- */

static void page_clear(struct gh_page *p)
{
    tl__free(p->url);
    tl__free(p->etag);
    tl__free(p->next);
    for (size_t i = 0; i < p->nitems; i++)
        item_clear(&p->items[i]);
    tl__free(p->items);
    memset(p, 0, sizeof(*p));
}

static void list_free(struct gh_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->npages; i++)
        page_clear(&l->pages[i]);
    tl__free(l->pages);
    tl__free(l->issue_etag);
    tl__free(l);
}

static struct gh_list *list_get(struct github_store *g, int64_t number)
{
    for (size_t i = 0; i < g->nlists; i++) {
        if (g->lists[i]->number == number) {
            g->lists[i]->used = ++g->use_clock;
            return g->lists[i];
        }
    }
    struct gh_list *l = tl__calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->number = number;
    l->issue_comments = -1;
    l->used = ++g->use_clock;
    if (g->nlists == CACHE_MAX) { /* evict the least recently used */
        size_t lru = 0;
        for (size_t i = 1; i < g->nlists; i++) {
            if (g->lists[i]->used < g->lists[lru]->used)
                lru = i;
        }
        list_free(g->lists[lru]);
        g->lists[lru] = l;
    } else {
        g->lists[g->nlists++] = l;
    }
    return l;
}

/* A Link target we may follow with our token: on the API's own origin. */
static char *next_link(struct github_store *g, const char *link)
{
    char *next = tl__gh_link_next(link);
    size_t n = strlen(g->origin);

    if (next != NULL && (strncmp(next, g->origin, n) != 0 || (next[n] != '/' && next[n] != '\0'))) {
        LOG(g, TL_LOG_WARN, "github: ignored a Link to another origin");
        tl__free(next);
        return NULL;
    }
    return next;
}

/* Parses a page body into `p`. */
static tl_status parse_page(struct github_store *g, const struct tl_http_resp *r, struct gh_page *p)
{
    json_t *arr = load_json(r);
    size_t i, cap = 0;
    json_t *o;
    tl_status st = TL_OK;

    if (!json_is_array(arr)) {
        json_decref(arr);
        return fail(g, TL_ESTORE, "github: a comment list is not a JSON array");
    }
    p->count = json_array_size(arr);
    json_array_foreach(arr, i, o)
    {
        struct gh_item it;
        int rc = read_comment(g, o, &it);
        if (rc <= 0)
            continue;
        if (p->nitems == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct gh_item *n = tl__realloc(p->items, ncap * sizeof(*n));
            if (n == NULL) {
                item_clear(&it);
                st = oom(g);
                break;
            }
            p->items = n;
            cap = ncap;
        }
        p->items[p->nitems++] = it;
    }
    json_decref(arr);
    return st;
}

/* Asked after each page whether enough has been read; sets *err (a status) to stop on an
 * error of its own. */
typedef bool gh_enough_fn(void *ud, const struct gh_page *pages, size_t npages, tl_status *err);

/*
 * Reads the pages of a comment list from `url` (taken over: the first page, in the store's own
 * form) into the cache entry `l`, following rel="next": up to `max_pages` (more is an error when
 * `cap_fails`, else the read stops there), or until `enough` (may be NULL) says so. *complete:
 * the last page was read. With `conditional`, each page already read is asked for with
 * If-None-Match and a 304 keeps what we had (and costs no primary rate budget), except the last
 * page when `l->recheck_tail` asks for it afresh. `number` is the issue, for messages (0: none).
 *
 * A 304 says the page's comments are unchanged, not that no page follows: it need not carry a
 * Link (RFC 7232 does not require one, GitHub does not document one, and the test server sends
 * none), and the cached "no next page" may date from when the page was the last. A full page
 * (per_page comments) whose next page the cache does not know is therefore always followed, to
 * page N+1 in the store's own URL form; past the end that page is empty, and the read ends.
 */
static tl_status read_pages(struct github_store *g, struct gh_list *l, char *url, int64_t number,
                            bool conditional, size_t max_pages, bool cap_fails,
                            gh_enough_fn *enough, void *ud, bool *complete)
{
    struct gh_page *pages = NULL;
    size_t npages = 0, cap = 0;
    struct tl_http_resp r = {0};
    tl_status st = TL_OK;

    *complete = false;
    bool recheck = l->recheck_tail;
    l->recheck_tail = false;
    while (url != NULL) {
        if (npages == max_pages) {
            if (cap_fails)
                st = fail(g, TL_ESTORE, "github: more than %zu pages of comments", max_pages);
            break;
        }
        for (size_t i = 0; i < npages; i++) {
            if (strcmp(pages[i].url, url) == 0) {
                st = fail(g, TL_ESTORE, "github: the comment pages link in a loop");
                break;
            }
        }
        if (st != TL_OK)
            break;
        struct gh_page *old = NULL;
        bool tail = false;
        for (size_t i = 0; i < l->npages; i++) {
            if (l->pages[i].url != NULL && strcmp(l->pages[i].url, url) == 0) {
                old = &l->pages[i];
                tail = i == l->npages - 1;
            }
        }
        const char *inm = conditional && old != NULL && !(recheck && tail) ? old->etag : NULL;
        if ((st = gh_call(g, "GET", url, NULL, inm, &r)) != TL_OK)
            break;
        if (npages == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct gh_page *n = tl__realloc(pages, ncap * sizeof(*n));
            if (n == NULL) {
                st = oom(g);
                break;
            }
            pages = n;
            cap = ncap;
        }
        struct gh_page *p = &pages[npages];
        memset(p, 0, sizeof(*p));
        if (r.status == 304 && old != NULL) {
            *p = *old; /* moved: the old slot is emptied */
            memset(old, 0, sizeof(*old));
            if (r.link != NULL) {
                tl__free(p->next);
                p->next = next_link(g, r.link);
            }
            tl__free(p->url);
            p->url = NULL;
            if (p->next == NULL && p->count >= g->cfg.per_page &&
                (p->next = tl__asprintf("%s&page=%zu", npages == 0 ? url : pages[0].url,
                                        npages + 2)) == NULL) {
                page_clear(p);
                st = oom(g);
                break;
            }
        } else if (r.status == 200) {
            if ((st = parse_page(g, &r, p)) != TL_OK) {
                page_clear(p);
                break;
            }
            p->next = next_link(g, r.link);
            p->etag = r.etag ? tl__strdup(r.etag) : NULL;
        } else {
            st = unexpected(g, "GET", url, &r, number);
            break;
        }
        p->url = url;
        url = NULL;
        npages++;
        l->date_ms = resp_date(&r);
        tl__http_resp_clear(&r);
        if (p->next == NULL) {
            *complete = true;
            break;
        }
        if (enough != NULL && enough(ud, pages, npages, &st))
            break;
        if ((url = tl__strdup(p->next)) == NULL) {
            st = oom(g);
            break;
        }
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    if (st != TL_OK) {
        for (size_t i = 0; i < npages; i++)
            page_clear(&pages[i]);
        tl__free(pages);
        /* Pages moved out of the cache are gone: forget the rest too. */
        for (size_t i = 0; i < l->npages; i++)
            page_clear(&l->pages[i]);
        l->npages = 0;
        return st;
    }
    for (size_t i = 0; i < l->npages; i++)
        page_clear(&l->pages[i]);
    tl__free(l->pages);
    l->pages = pages;
    l->npages = npages;
    return TL_OK;
}

/*
 * Reads every page of a comment list into the cache: the issue's (`number` > 0) or the whole
 * repository's (0). With `conditional`, each page already read is asked for with If-None-Match
 * and a 304 keeps what we had (and costs no primary rate budget).
 */
static tl_status read_list(struct github_store *g, int64_t number, bool conditional,
                           struct gh_list **out)
{
    struct gh_list *l = list_get(g, number);
    bool complete;
    char *url;

    *out = NULL;
    if (l == NULL) {
        (void)oom(g);
        return TL_ENOMEM; /* spelled out: *out is set exactly when TL_OK is returned */
    }
    if (number > 0)
        url = tl__asprintf("%s/repos/%s/%s/issues/%lld/comments?per_page=%u", g->api, g->owner,
                           g->repo, (long long)number, g->cfg.per_page);
    else
        url = tl__asprintf("%s/repos/%s/%s/issues/comments?per_page=%u", g->api, g->owner, g->repo,
                           g->cfg.per_page);
    if (url == NULL) {
        (void)oom(g);
        return TL_ENOMEM;
    }
    tl_status st =
        read_pages(g, l, url, number, conditional, MAX_PAGES, true, NULL, NULL, &complete);
    if (st == TL_OK)
        *out = l;
    return st;
}

static size_t list_count(const struct gh_list *l)
{
    size_t n = 0;

    for (size_t i = 0; i < l->npages; i++)
        n += l->pages[i].count;
    return n;
}

static struct gh_item *list_find(struct gh_list *l, int64_t id)
{
    for (size_t i = 0; l != NULL && i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            if (l->pages[i].items[j].id == id)
                return &l->pages[i].items[j];
        }
    }
    return NULL;
}

static bool is_claim(const struct github_store *g, const struct gh_item *it)
{
    return it->kind == TL_GH_CLAIM && !it->deleted && trusted(g, it->login);
}

/* ---- records ---- */

static bool stale_at(const struct gh_item *it, int64_t now_ms)
{
    return now_ms - it->updated_ms > (int64_t)it->claim.rec.info.lock_timeout_ms + STALE_MARGIN_MS;
}

static tl_status item_record(struct github_store *g, const struct gh_item *it, const char *key,
                             int64_t now_ms, struct tl_record *out)
{
    const struct tl_info *c = &it->claim.rec.info;

    memset(out, 0, sizeof(*out));
    out->info.key = tl__strdup(key);
    out->info.worker_id = tl__strdup(c->worker_id);
    out->info.node_id = tl__strdup(c->node_id);
    out->info.task_info = tl__strdup(c->task_info ? c->task_info : "{}");
    out->opaque = tl__asprintf("%s %s", it->claim.nonce, it->login ? it->login : "-");
    if (!out->info.key || !out->info.worker_id || !out->info.node_id || !out->info.task_info ||
        !out->opaque) {
        tl__record_clear(out);
        return oom(g);
    }
    out->info.token = (uint64_t)it->id;
    out->info.claimed_at_ms = it->created_ms;
    out->info.heartbeat_at_ms = it->updated_ms;
    out->info.lock_timeout_ms = c->lock_timeout_ms;
    out->info.observed_at_ms = now_ms;
    out->info.stale = stale_at(it, now_ms);
    return TL_OK;
}

/* ---- the line ----
 *
 * A waiter's place in line is its claim comment (DESIGN.md section 7): comment order is the
 * line's order, the comment id its seq and, once it holds, its token. The holder is the lowest
 * claim, stale or not (DESIGN.md section 5); the claims after it wait, and one of them that is
 * stale is a dead waiter: skipped (not counted, not ahead of anyone) and deleted by whoever
 * wins past it. A hand-over costs no write: when the holder deletes its claim, the next one
 * holds (the holder first deletes the dead waiters right after its claim, so that the next
 * holder is live). Hence FIFO only (priority 0).
 */

/* The holder as `l` shows it: the lowest claim (of `issue` in a repository-wide list; 0: any)
 * below `below` (0: any); NULL: none. `*live` (may be NULL): how many of those claims are live
 * (the holder included, if live). */
static struct gh_item *line_holder(const struct github_store *g, struct gh_list *l, int64_t issue,
                                   int64_t below, uint32_t *live)
{
    struct gh_item *best = NULL;
    uint32_t n = 0;

    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!is_claim(g, it) || (issue > 0 && it->issue != issue) ||
                (below > 0 && it->id >= below))
                continue;
            n += !stale_at(it, l->date_ms);
            if (best == NULL || it->id < best->id)
                best = it;
        }
    }
    if (live != NULL)
        *live = n;
    return best;
}

/* Live waiters of a key in `l`: its live claims but the holder. */
static uint32_t line_waiting(const struct github_store *g, struct gh_list *l, int64_t issue,
                             const struct gh_item *holder)
{
    uint32_t live;

    (void)line_holder(g, l, issue, 0, &live);
    if (holder != NULL && !stale_at(holder, l->date_ms) && live > 0)
        live--;
    return live;
}

/* Fills a busy result's line counts: live waiters, and how many of them are ahead of claim `id`
 * (0: none). `ours`: `id` is our place in line (counted as waiting even before the list shows
 * it); else it is a claim being withdrawn (not counted), with every live waiter ahead of it. */
static void busy_counts(const struct github_store *g, struct gh_list *l, const struct gh_item *h,
                        int64_t id, bool ours, struct tl_claim_result *out)
{
    const struct gh_item *it = id != 0 ? list_find(l, id) : NULL;
    bool live = it != NULL && is_claim(g, it) && !stale_at(it, l->date_ms);
    uint32_t before = 0;

    out->waiting = line_waiting(g, l, 0, h);
    if (ours && it == NULL && id != 0)
        out->waiting++;
    else if (!ours && live && out->waiting > 0)
        out->waiting--;
    if (!ours) {
        out->ahead = out->waiting;
        return;
    }
    (void)line_holder(g, l, 0, id, &before);
    if (h != NULL && h->id < id && !stale_at(h, l->date_ms) && before > 0)
        before--;
    out->ahead = before;
}

/* A waiter's place in line: which comment is its claim, and when it last wrote it. */
static struct gh_place *place_find(struct github_store *g, const char *waiter_id)
{
    for (size_t i = 0; waiter_id != NULL && i < PLACES_MAX; i++) {
        if (g->places[i].waiter[0] != '\0' && strcmp(g->places[i].waiter, waiter_id) == 0)
            return &g->places[i];
    }
    return NULL;
}

static void place_forget(struct gh_place *p)
{
    if (p != NULL)
        memset(p, 0, sizeof(*p));
}

/* Whether `s` is a waiter id as the core makes them: 32 lower-case hex digits. */
static bool waiter_id_ok(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (n == TL_GH_NONCE_LEN || !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    }
    return n == TL_GH_NONCE_LEN;
}

/* Splits the opaque "NONCE LOGIN" of a held record. */
static bool opaque_split(const struct tl_record *held, char nonce[TL_GH_NONCE_LEN + 1], char *login,
                         size_t lsize)
{
    const char *o = held->opaque;

    nonce[0] = login[0] = '\0';
    if (o == NULL)
        return true; /* released or renewed by token alone: worker id and token identify it */
    if (strlen(o) < TL_GH_NONCE_LEN || (o[TL_GH_NONCE_LEN] != ' ' && o[TL_GH_NONCE_LEN] != '\0'))
        return false;
    memcpy(nonce, o, TL_GH_NONCE_LEN);
    nonce[TL_GH_NONCE_LEN] = '\0';
    login[0] = '\0';
    if (o[TL_GH_NONCE_LEN] == ' ')
        (void)snprintf(login, lsize, "%s", o + TL_GH_NONCE_LEN + 1);
    return true;
}

/* Whether the listed or fetched comment is the claim `held` describes. */
static bool is_held_claim(const struct github_store *g, const struct gh_item *it,
                          const struct tl_record *held, const char *nonce)
{
    return it != NULL && it->kind == TL_GH_CLAIM && trusted(g, it->login) &&
           (nonce[0] == '\0' || strcmp(it->claim.nonce, nonce) == 0) &&
           held->info.worker_id != NULL &&
           strcmp(it->claim.rec.info.worker_id, held->info.worker_id) == 0;
}

static void learn_login(struct github_store *g, const char *login)
{
    if (g->login == NULL && login != NULL && login[0] != '\0' && strcmp(login, "-") != 0) {
        g->login = tl__strdup(login);
        if (g->login != NULL)
            LOG(g, TL_LOG_INFO, "github: acting as %s", g->login);
    }
}

static void random_nonce(struct github_store *g, char out[TL_GH_NONCE_LEN + 1])
{
    unsigned char b[TL_GH_NONCE_LEN / 2];
    bool ok = false;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        ok = read(fd, b, sizeof(b)) == (ssize_t)sizeof(b);
        close(fd);
    }
    if (!ok) { /* splitmix64 over the clocks, pid and a counter: unique, if not secret */
        uint64_t x = (uint64_t)tl__real_now_ms() ^ ((uint64_t)getpid() << 40) ^
                     (uint64_t)tl__real_mono_ms() << 20 ^ (uintptr_t)g ^ ++g->nonce_ctr;
        for (size_t i = 0; i < sizeof(b); i++) {
            if (i % 8 == 0) {
                x += 0x9e3779b97f4a7c15ull;
                uint64_t z = x;
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
                x = z ^ (z >> 31);
            }
            b[i] = (unsigned char)(x >> (8 * (i % 8)));
        }
    }
    for (size_t i = 0; i < sizeof(b); i++)
        (void)snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* ---- single requests ---- */

static char *comment_url(const struct github_store *g, int64_t id)
{
    return tl__asprintf("%s/repos/%s/%s/issues/comments/%lld", g->api, g->owner, g->repo,
                        (long long)id);
}

static char *json_body(const char *field, const char *text)
{
    json_t *o = json_pack("{s:s}", field, text);
    char *d = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char *out = d ? tl__strdup(d) : NULL;

    free(d);
    json_decref(o);
    return out;
}

static char *assignees_body(const char *login)
{
    json_t *o = json_pack("{s:[s]}", "assignees", login);
    char *d = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char *out = d ? tl__strdup(d) : NULL;

    free(d);
    json_decref(o);
    return out;
}

/* Deletes a comment. *gone: it was already gone (404). */
static tl_status delete_comment(struct github_store *g, int64_t id, bool *gone)
{
    struct tl_http_resp r = {0};
    char *url = comment_url(g, id);
    tl_status st;

    *gone = false;
    if (url == NULL)
        return oom(g);
    st = gh_call(g, "DELETE", url, NULL, NULL, &r);
    if (st == TL_OK) {
        if (r.status == 404)
            *gone = true;
        else if (r.status != 204 && r.status != 200)
            st = unexpected(g, "DELETE", url, &r, 0);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

/* Deletes our own claim, or remembers it to retry later. */
static void withdraw(struct github_store *g, int64_t id)
{
    bool gone;
    char keep[TL_ERRMSG_SIZE];

    memcpy(keep, g->base.errmsg, sizeof(keep));
    /* Clean-up: worth a request past the caller's deadline (libcurl's timeout still bounds it),
     * since a claim left behind blocks the key until the orphan is retried. */
    g->cleaning_up = true;
    tl_status st = delete_comment(g, id, &gone);
    g->cleaning_up = false;
    if (st != TL_OK) {
        LOG(g, TL_LOG_WARN, "github: could not delete our claim %lld (%s); will retry",
            (long long)id, g->base.errmsg);
        if (g->norphans < ORPHANS_MAX)
            g->orphans[g->norphans++] = id;
    }
    memcpy(g->base.errmsg, keep, sizeof(keep));
}

static void retry_orphans(struct github_store *g)
{
    size_t n = g->norphans;
    int64_t ids[ORPHANS_MAX];

    memcpy(ids, g->orphans, n * sizeof(ids[0]));
    g->norphans = 0;
    for (size_t i = 0; i < n; i++)
        withdraw(g, ids[i]);
}

/* Reads an issue object's comment count and whether `login` is among its assignees. */
static bool issue_fields(struct github_store *g, const struct tl_http_resp *r, const char *login,
                         int64_t *comments, bool *assigned)
{
    json_t *o = load_json(r);
    json_t *c = json_object_get(o, "comments");
    json_t *state = json_object_get(o, "state");

    if (json_is_string(state)) /* for claim-next (github_next.c): is the issue closed? */
        g->issue_closed = strcmp(json_string_value(state), "closed") == 0 ? 1 : 0;
    json_t *as = json_object_get(o, "assignees");
    size_t i;
    json_t *a;
    bool ok = json_is_integer(c);

    *assigned = false;
    if (ok)
        *comments = json_integer_value(c);
    json_array_foreach(as, i, a)
    {
        json_t *l = json_object_get(a, "login");
        if (login != NULL && json_is_string(l) && strcasecmp(json_string_value(l), login) == 0)
            *assigned = true;
    }
    json_decref(o);
    return ok;
}

/* Adds (add) or removes our login as an assignee. On success of an add, `*comments` is the
 * issue's comment count from the answer. A failure is logged, never fatal. */
static bool assignee(struct github_store *g, int64_t number, bool add, int64_t *comments)
{
    char keep[TL_ERRMSG_SIZE];
    struct tl_http_resp r = {0};
    char *url = tl__asprintf("%s/repos/%s/%s/issues/%lld/assignees", g->api, g->owner, g->repo,
                             (long long)number);
    char *body = g->login ? assignees_body(g->login) : NULL;
    bool ok = false, assigned = false;

    memcpy(keep, g->base.errmsg, sizeof(keep));
    if (url != NULL && body != NULL &&
        gh_call(g, add ? "POST" : "DELETE", url, body, NULL, &r) == TL_OK) {
        if (r.status == (add ? 201 : 200) && issue_fields(g, &r, g->login, comments, &assigned)) {
            ok = true;
            if (add && !assigned)
                LOG(g, TL_LOG_INFO,
                    "github: #%lld: %s could not be assigned (no push access?); the lock holds "
                    "all the same",
                    (long long)number, g->login);
        } else {
            char msg[160];
            error_message(&r, msg, sizeof(msg));
            LOG(g, TL_LOG_WARN, "github: #%lld: %s the assignee failed: %ld %s", (long long)number,
                add ? "adding" : "removing", r.status, msg);
        }
    } else {
        LOG(g, TL_LOG_WARN, "github: #%lld: %s the assignee failed: %s", (long long)number,
            add ? "adding" : "removing", g->base.errmsg);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    tl__free(body);
    memcpy(g->base.errmsg, keep, sizeof(keep));
    return ok;
}

/* The issue's comment count, by GET (If-None-Match when we have an ETag). */
static tl_status issue_count(struct github_store *g, struct gh_list *l, int64_t *comments)
{
    struct tl_http_resp r = {0};
    char *url =
        tl__asprintf("%s/repos/%s/%s/issues/%lld", g->api, g->owner, g->repo, (long long)l->number);
    bool assigned;
    tl_status st;

    if (url == NULL)
        return oom(g);
    st = gh_call(g, "GET", url, NULL, l->issue_comments >= 0 ? l->issue_etag : NULL, &r);
    if (st == TL_OK) {
        if (r.status == 304 && l->issue_comments >= 0) {
            *comments = l->issue_comments;
        } else if (r.status == 200 && issue_fields(g, &r, NULL, comments, &assigned)) {
            l->issue_comments = *comments;
            tl__free(l->issue_etag);
            l->issue_etag = r.etag ? tl__strdup(r.etag) : NULL;
        } else {
            st = unexpected(g, "GET", url, &r, l->number);
        }
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

/* Posts a comment. TL_OK with *item filled (the 201's comment); TL_EAGAIN-like ambiguity is
 * reported through *maybe (the POST may have been committed although it failed), and a failure
 * worth trying again (a 5xx, no answer at all) through *transient when it is not NULL. */
static tl_status post_comment(struct github_store *g, int64_t number, const char *text,
                              struct gh_item *item, bool *maybe, bool *transient)
{
    struct tl_http_resp r = {0};
    char *url = tl__asprintf("%s/repos/%s/%s/issues/%lld/comments", g->api, g->owner, g->repo,
                             (long long)number);
    char *body = json_body("body", text);
    tl_status st;

    *maybe = false;
    if (transient != NULL)
        *transient = false;
    memset(item, 0, sizeof(*item));
    if (url == NULL || body == NULL) {
        tl__free(url);
        tl__free(body);
        return oom(g);
    }
    st = gh_call(g, "POST", url, body, NULL, &r);
    if (st == TL_OK && r.status == 201) {
        json_t *o = load_json(&r);
        int rc = read_comment(g, o, item);
        json_t *login = json_object_get(json_object_get(o, "user"), "login");
        if (rc >= 0 && item->login == NULL && json_is_string(login))
            item->login = tl__strdup(json_string_value(login));
        if (rc >= 0 && item->created_ms == 0) {
            (void)json_time(o, "created_at", &item->created_ms);
            (void)json_time(o, "updated_at", &item->updated_ms);
        }
        json_decref(o);
        if (rc < 0) {
            item_clear(item);
            *maybe = true;
            st = fail(g, TL_ESTORE, "github: the new comment's answer is not a comment");
        }
    } else if (st == TL_OK) {
        *maybe = r.status >= 500;
        if (transient != NULL)
            *transient = r.status >= 500;
        st = unexpected(g, "POST", url, &r, number);
    } else {
        *maybe = r.status == 0 && r.maybe_sent;
        if (transient != NULL)
            *transient = st == TL_ESTORE && r.status == 0; /* no answer: the connection failed */
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    tl__free(body);
    return st;
}

/* GETs one comment by id (not subject to list lag). *found false on 404. */
static tl_status get_comment(struct github_store *g, int64_t id, int64_t issue,
                             struct gh_item *item, bool *found)
{
    struct tl_http_resp r = {0};
    char *url = comment_url(g, id);
    tl_status st;

    *found = false;
    memset(item, 0, sizeof(*item));
    if (url == NULL)
        return oom(g);
    st = gh_call(g, "GET", url, NULL, NULL, &r);
    if (st == TL_OK && r.status == 200) {
        json_t *o = load_json(&r);
        int rc = read_comment(g, o, item);
        json_decref(o);
        if (rc == 1 && item->issue == issue)
            *found = true;
        else
            item_clear(item);
        if (rc == 0) /* an ordinary comment: exists, but is no claim */
            item->id = id;
    } else if (st == TL_OK && r.status != 404) {
        st = unexpected(g, "GET", url, &r, 0);
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

/* ---- open / close ---- */

static tl_status fetch_login(struct github_store *g)
{
    struct tl_http_resp r = {0};
    char *url = tl__asprintf("%s/user", g->api);
    tl_status st;

    if (url == NULL)
        return oom(g);
    st = gh_call(g, "GET", url, NULL, NULL, &r);
    if (st == TL_OK) {
        json_t *o = load_json(&r);
        json_t *login = json_object_get(o, "login");
        if (r.status == 200 && json_is_string(login) &&
            name_ok(json_string_value(login), strlen(json_string_value(login)))) {
            g->login = tl__strdup(json_string_value(login));
            if (g->login == NULL)
                st = oom(g);
        } else if (r.status == 200) {
            st = fail(g, TL_ESTORE, "github: GET /user: no login in the answer");
        } else {
            st = unexpected(g, "GET", url, &r, 0);
        }
        json_decref(o);
    } else if (st == TL_ESTORE && strstr(g->base.errmsg, ": 403 ") != NULL) {
        /* An app installation token (GitHub Actions' GITHUB_TOKEN) cannot read /user: the
         * login is learnt from our first claim's author instead. */
        LOG(g, TL_LOG_INFO, "github: %s; the login will be learnt from the first claim",
            g->base.errmsg);
        g->base.errmsg[0] = '\0';
        st = TL_OK;
    }
    tl__http_resp_clear(&r);
    tl__free(url);
    return st;
}

static tl_status github_open(struct tl_store *s, const char *url)
{
    struct github_store *g = (struct github_store *)s;
    char *api_param = NULL, *token = NULL, *copy = NULL;
    tl_status st;

    g->cfg = (struct gh_config){.per_min = DEFAULT_PER_MIN,
                                .per_hour = DEFAULT_PER_HOUR,
                                .max_wait_ms = DEFAULT_MAX_WAIT_MS,
                                .rereads = DEFAULT_REREADS,
                                .reread_ms = DEFAULT_REREAD_MS,
                                .per_page = DEFAULT_PER_PAGE,
                                .history_pages = DEFAULT_HISTORY_PAGES,
                                .assign = true,
                                .reconcile = true};
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    s->heartbeat_divisor = 4; /* a quarter of the lock timeout, and no 30 s cap: writes cost */
    s->heartbeat_uncapped = true;
    /* A waiter's place is its claim comment, judged live or stale as any claim. */
    s->waiter_timeout_is_lock_timeout = true;
    g->line_poll_ms = LINE_POLL_MS;

    if (strncmp(url, "github://", 9) != 0)
        return fail(g, TL_EINVAL, "github store URL must be github://OWNER/REPO");
    if ((copy = tl__strdup(url + 9)) == NULL)
        return oom(g);
    char *query = strchr(copy, '?');
    if (query != NULL)
        *query++ = '\0';
    char *slash = strchr(copy, '/');
    size_t olen = slash ? (size_t)(slash - copy) : 0;
    if (slash == NULL || !name_ok(copy, olen) || !name_ok(slash + 1, strlen(slash + 1))) {
        st = fail(g, TL_EINVAL, "github store URL must be github://OWNER/REPO[?params]");
        goto done;
    }
    g->owner = tl__strndup(copy, olen);
    g->repo = tl__strdup(slash + 1);
    if (g->owner == NULL || g->repo == NULL) {
        st = oom(g);
        goto done;
    }
    if ((st = parse_params(g, query, &api_param)) != TL_OK)
        goto done;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = tl__gh_resolve_api_url(api_param, &g->api, g->base.errmsg)) != TL_OK)
        goto done;

    char host[256];
    const char *h = g->api;
    size_t hlen = 0;
    bool https = true;
    g->host_kind = tl__gh_host_kind(g->api, host);
    (void)url_host(g->api, &h, &hlen, &https);
    size_t alen = strcspn(h, "/?#");
    if ((g->origin = tl__strndup(g->api, (size_t)(h - g->api) + alen)) == NULL) {
        st = oom(g);
        goto done;
    }
    if ((st = tl__gh_resolve_token(g->api, GH_TIMEOUT_MS, &token, &g->token_source,
                                   g->base.errmsg)) != TL_OK)
        goto done;

    const struct tl_http_opts ho = {.user_agent = "tasklock/" TL_VERSION_STRING,
                                    .timeout_ms = g->cfg.timeout_ms,
                                    .allow_http = !https};
    if ((st = tl__http_new(&ho, token, &g->http, g->base.errmsg)) != TL_OK)
        goto done;
    st = fetch_login(g);
done:
    if (token != NULL) {
        volatile char *p = token;
        while (*p)
            *p++ = '\0';
    }
    tl__free(token);
    tl__free(api_param);
    tl__free(copy);
    return st;
}

static void github_close(struct tl_store *s)
{
    struct github_store *g = (struct github_store *)s;

    if (g->http != NULL && g->norphans > 0)
        retry_orphans(g);
    tl__http_free(g->http);
    for (size_t i = 0; i < g->nlists; i++)
        list_free(g->lists[i]);
    for (size_t i = 0; i < g->ntrusted; i++)
        tl__free(g->trusted[i]);
    tl__free(g->trusted);
    tl__free(g->api);
    tl__free(g->origin);
    tl__free(g->owner);
    tl__free(g->repo);
    tl__free(g->login);
    tl__free(g->priorities);
    tl__gh_next_free(g->next_state);
}

static tl_status github_check_key(struct tl_store *s, const char *key)
{
    int64_t n;

    if (!tl__gh_parse_key(key, &n))
        return tl__store_fail(s, TL_EINVAL,
                              "github: key \"%.64s\" is not an issue number (123 or #123)", key);
    return TL_OK;
}

/* ---- claim ---- */

static void from_of(const struct gh_item *it, struct tl_gh_from *f)
{
    f->worker_id = tl__strdup(it->claim.rec.info.worker_id);
    f->node_id = tl__strdup(it->claim.rec.info.node_id);
    f->token = (uint64_t)it->id;
    f->claimed_at_ms = it->created_ms;
    f->heartbeat_at_ms = it->updated_ms;
    f->took = it->claim.took;
}

/* Records a displaced holder in our new claim (newest first, bounded). */
static void push_from(struct tl_gh_claim *c, const struct gh_item *it)
{
    if (c->nfrom == TL_GH_FROM_DEPTH) {
        tl__free(c->from[TL_GH_FROM_DEPTH - 1].worker_id);
        tl__free(c->from[TL_GH_FROM_DEPTH - 1].node_id);
        c->nfrom--;
    }
    memmove(&c->from[1], &c->from[0], c->nfrom * sizeof(c->from[0]));
    from_of(it, &c->from[0]);
    c->nfrom++;
    /* what the displaced claim itself had displaced, while there is room */
    for (size_t i = 0; i < it->claim.nfrom && c->nfrom < TL_GH_FROM_DEPTH; i++) {
        struct tl_gh_from *f = &c->from[c->nfrom++];
        *f = it->claim.from[i];
        f->worker_id = tl__strdup(it->claim.from[i].worker_id);
        f->node_id = tl__strdup(it->claim.from[i].node_id);
    }
}

/*
 * Plans what this claim takes out of its way (steal-stale: stale claims; force: any), lowest
 * first, without a request yet: each one is marked deleted in the list, listed in `victims`, and
 * recorded in `mine` (from, took). Returns TL_EBUSY with the holder in `out` (and nothing
 * planned) when this mode may not take the key.
 */
static tl_status plan_the_way(struct github_store *g, const struct tl_claim *req, struct gh_list *l,
                              struct tl_gh_claim *mine, bool *forced, struct gh_item **victims,
                              size_t *nvictims, struct tl_claim_result *out)
{
    *nvictims = 0;
    uint32_t live;
    struct gh_item *h = line_holder(g, l, 0, 0, &live);
    if (h == NULL)
        return TL_OK;
    bool stale = stale_at(h, l->date_ms);
    /* Steal-stale takes a stale holder when no one live is in line either (the stale claims
     * after it are dead waiters, deleted unrecorded); force takes the holder whatever, and
     * the waiters after it are deleted unrecorded (they join the line again behind ours). */
    if (req->mode == TL_CLAIM_NORMAL || (req->mode == TL_CLAIM_STEAL && live > 0)) {
        tl_status st = item_record(g, h, req->key, l->date_ms, &out->rec);
        if (st != TL_OK)
            return st;
        tl__free(out->rec.opaque);
        out->rec.opaque = NULL;
        out->holder_known = true;
        busy_counts(g, l, h, 0, false, out);
        return TL_EBUSY;
    }
    if (!stale)
        *forced = true;
    push_from(mine, h);
    h->deleted = true;
    victims[(*nvictims)++] = h;
    if (mine->nfrom > 0)
        mine->took = *forced ? TL_GH_TOOK_FORCED : TL_GH_TOOK_STALE;
    return TL_OK;
}

/* Whether `c` records the claim `id` among the holders it displaced. */
static bool from_has(const struct tl_gh_claim *c, int64_t id)
{
    for (size_t i = 0; i < c->nfrom; i++) {
        if (c->from[i].token == (uint64_t)id)
            return true;
    }
    return false;
}

/*
 * Whether GitHub takes `text` as a claim body, with room for the heartbeat counter to grow to
 * its widest (it is written twice: "#N" and "seq":N). Else TL_EINVAL saying how large it is.
 */
static tl_status check_size(struct github_store *g, const char *text)
{
    size_t chars = tl__gh_chars(text) + SEQ_ROOM;

    if (chars <= TL_GH_BODY_MAX)
        return TL_OK;
    return fail(g, TL_EINVAL,
                "github: task info too large for a GitHub comment: the claim would be %zu "
                "characters; GitHub allows %d",
                chars, TL_GH_BODY_MAX);
}

/* Copies a claim's took and from into `mine` (which has none): for our claim found again, and
 * for what a completion comment reports of the claim it ends. */
static tl_status copy_took(struct github_store *g, struct tl_gh_claim *mine,
                           const struct tl_gh_claim *c)
{
    mine->took = c->took;
    for (size_t i = 0; i < c->nfrom && i < TL_GH_FROM_DEPTH; i++) {
        struct tl_gh_from *f = &mine->from[mine->nfrom++];
        *f = c->from[i];
        f->worker_id = tl__strdup(c->from[i].worker_id);
        f->node_id = tl__strdup(c->from[i].node_id);
        if (f->worker_id == NULL || f->node_id == NULL)
            return oom(g);
    }
    return TL_OK;
}

/*
 * Records in our claim the holders deleted after it was posted (a lower claim that became
 * visible late, taken by steal-stale or force), so that the issue's audit trail names them. One
 * edit, only in that race; a failure is logged: the lock is ours all the same.
 */
static void amend_claim(struct github_store *g, int64_t number, struct gh_item *it,
                        const struct tl_gh_claim *mine, int64_t now_ms)
{
    char keep[TL_ERRMSG_SIZE];
    struct tl_http_resp r = {0};
    char *text = tl__gh_build_claim(mine, now_ms);
    char *url = comment_url(g, it->id);
    char *body = text ? json_body("body", text) : NULL;

    memcpy(keep, g->base.errmsg, sizeof(keep));
    if (text == NULL || url == NULL || body == NULL) {
        LOG(g, TL_LOG_WARN, "github: #%lld: out of memory recording the displaced holders",
            (long long)number);
    } else if (check_size(g, text) != TL_OK) {
        LOG(g, TL_LOG_WARN, "github: #%lld: the displaced holders are not recorded: %s",
            (long long)number, g->base.errmsg);
    } else if (gh_call(g, "PATCH", url, body, NULL, &r) != TL_OK || r.status != 200) {
        LOG(g, TL_LOG_WARN, "github: #%lld: recording the displaced holders failed (%ld): %s",
            (long long)number, r.status, g->base.errmsg);
    } else {
        json_t *o = load_json(&r);
        int64_t upd;
        if (json_time(o, "updated_at", &upd))
            it->updated_ms = upd;
        json_decref(o);
        /* What the listed claim says now: a release reads its took and from chain from it,
         * for the completion comment. */
        for (size_t i = 0; i < it->claim.nfrom && i < TL_GH_FROM_DEPTH; i++) {
            tl__free(it->claim.from[i].worker_id);
            tl__free(it->claim.from[i].node_id);
        }
        it->claim.nfrom = 0;
        if (copy_took(g, &it->claim, mine) != TL_OK)
            LOG(g, TL_LOG_WARN, "github: #%lld: out of memory noting the displaced holders",
                (long long)number);
        it->claim.seq = mine->seq;
        it->claim.held = mine->held;
    }
    tl__http_resp_clear(&r);
    tl__free(text);
    tl__free(url);
    tl__free(body);
    memcpy(g->base.errmsg, keep, sizeof(keep));
}

/* The delay before re-read `a` (1, 2, ...): reread_delay, doubling, at most 16 times it. */
static uint32_t reread_delay(const struct github_store *g, uint32_t a)
{
    uint64_t d = (uint64_t)g->cfg.reread_ms << (a - 1 < 4 ? a - 1 : 4);

    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* The lowest claim with `after` < id < `below` (0: no bound): the claims in id order. */
static struct gh_item *next_claim(const struct github_store *g, struct gh_list *l, int64_t after,
                                  int64_t below)
{
    struct gh_item *best = NULL;

    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!is_claim(g, it) || it->id <= after || (below > 0 && it->id >= below))
                continue;
            if (best == NULL || it->id < best->id)
                best = it;
        }
    }
    return best;
}

/* Remembers the place of waiter `waiter_id`: claim comment `id` (nonce `nonce`) of issue
 * `number`, last written at `sent` (the clock's mono_ms). An instance serves one thread, which
 * waits in one line at a time; should the places run out, the oldest is given up. */
static void place_keep(struct github_store *g, const char *waiter_id, int64_t number, int64_t id,
                       const char *nonce, int64_t sent)
{
    struct gh_place *p = place_find(g, waiter_id);

    for (size_t i = 0; i < PLACES_MAX && p == NULL; i++) {
        if (g->places[i].waiter[0] == '\0')
            p = &g->places[i];
    }
    if (p == NULL) {
        p = &g->places[0];
        for (size_t i = 1; i < PLACES_MAX; i++) {
            if (g->places[i].used < p->used)
                p = &g->places[i];
        }
        LOG(g, TL_LOG_WARN, "github: #%lld: too many places in line; giving up comment %lld",
            (long long)p->number, (long long)p->comment);
        withdraw(g, p->comment);
    }
    memset(p, 0, sizeof(*p));
    (void)snprintf(p->waiter, sizeof(p->waiter), "%s", waiter_id);
    (void)snprintf(p->nonce, sizeof(p->nonce), "%s", nonce);
    p->number = number;
    p->comment = id;
    p->beat_sent = sent;
    p->used = ++g->use_clock;
}

/*
 * Refreshes our queued claim `it` in place: a new counter and heartbeat (one edit), and no held
 * mark (it may have been posted with one, expecting to find the key free). *gone when it was
 * deleted meanwhile (as dead, or by a forced claim).
 */
static tl_status refresh_place(struct github_store *g, struct gh_item *it, struct gh_place *p,
                               int64_t server_now_ms, bool *gone)
{
    struct tl_http_resp r = {0};
    struct tl_gh_claim c = it->claim; /* shallow: only read by the builder */
    char *text = NULL, *url = NULL, *body = NULL;
    tl_status st;

    *gone = false;
    c.seq = it->claim.seq < INT64_MAX ? it->claim.seq + 1 : it->claim.seq;
    c.held = false;
    c.rec.info.heartbeat_at_ms = server_now_ms;
    if ((text = tl__gh_build_claim(&c, server_now_ms)) == NULL ||
        (url = comment_url(g, it->id)) == NULL || (body = json_body("body", text)) == NULL) {
        st = oom(g);
        goto done;
    }
    int64_t sent = g->base.clock->mono_ms(g->base.clock->ud);
    if ((st = gh_call(g, "PATCH", url, body, NULL, &r)) != TL_OK)
        goto done;
    if (r.status == 404) {
        *gone = true;
    } else if (r.status == 200) {
        json_t *o = load_json(&r);
        int64_t upd;
        if (json_time(o, "updated_at", &upd))
            it->updated_ms = upd;
        json_decref(o);
        it->claim.seq = c.seq;
        it->claim.held = false;
        p->beat_sent = sent;
    } else {
        st = unexpected(g, "PATCH", url, &r, 0);
    }
done:
    tl__http_resp_clear(&r);
    tl__free(text);
    tl__free(url);
    tl__free(body);
    return st;
}

/* The lowest claim of waiter `waiter` (with nonce `nonce`, if not NULL) other than `except`. */
static struct gh_item *waiter_claim(const struct github_store *g, struct gh_list *l,
                                    const char *waiter, const char *nonce, int64_t except)
{
    struct gh_item *best = NULL;

    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!is_claim(g, it) || it->id == except || strcmp(it->claim.waiter, waiter) != 0 ||
                (nonce != NULL && strcmp(it->claim.nonce, nonce) != 0))
                continue;
            if (best == NULL || it->id < best->id)
                best = it;
        }
    }
    return best;
}

/*
 * Posts a live waiter's claim `c` (deleted by our forced claim, which must be the lowest)
 * again, behind ours: its waiter finds its place moved there (same waiter id and nonce), and the
 * line keeps its order. A failure is logged: the waiter then joins the line again itself.
 */
static void repost_place(struct github_store *g, int64_t number, const struct gh_item *c,
                         int64_t server_now_ms)
{
    char keep[TL_ERRMSG_SIZE];
    struct tl_gh_claim copy = c->claim; /* shallow: only read by the builder */
    struct gh_item posted;
    bool maybe;

    memcpy(keep, g->base.errmsg, sizeof(keep));
    copy.seq = c->claim.seq < INT64_MAX ? c->claim.seq + 1 : c->claim.seq;
    copy.held = false;
    copy.rec.info.heartbeat_at_ms = server_now_ms;
    char *text = tl__gh_build_claim(&copy, server_now_ms);
    if (text == NULL || post_comment(g, number, text, &posted, &maybe, NULL) != TL_OK)
        LOG(g, TL_LOG_WARN, "github: #%lld: could not put the waiter %s back in line: %s",
            (long long)number, c->claim.rec.info.worker_id,
            text ? g->base.errmsg : "out of memory");
    else
        item_clear(&posted);
    tl__free(text);
    memcpy(g->base.errmsg, keep, sizeof(keep));
}

static tl_status github_claim(struct tl_store *s, const struct tl_claim *req,
                              struct tl_claim_result *out)
{
    struct github_store *g = (struct github_store *)s;

    g->committed = false; /* see struct github_store */
    g->issue_closed = -1;
    struct tl_gh_claim mine = {0};
    struct gh_item posted = {0}, fetched = {0};
    struct gh_item *victims[VICTIMS_MAX];
    struct gh_list *l = NULL;
    char *text = NULL;
    bool forced = false, assigned = false, amend = false, maybe;
    bool planned = false, took_any = false; /* victims planned; any of them deleted by us */
    /* The line: `queue`, a claim that keeps its comment as its place when it loses; `existing`,
     * deciding on a comment an earlier call posted; `wrote`, this call wrote our claim. */
    bool queue, existing = false, wrote = false;
    struct gh_place *place = NULL;
    int64_t number, id = 0, posted_at = 0; /* posted_at: when our claim was last written */
    size_t nvictims = 0;
    tl_status st;

    if (!tl__gh_parse_key(req->key, &number))
        return github_check_key(s, req->key);
    if (req->priority != 0)
        return fail(g, TL_EINVAL,
                    "github: the github store keeps its line in comment order: FIFO only; "
                    "priority must be 0 (not %d)",
                    (int)req->priority);
    if (req->waiter_id != NULL && !waiter_id_ok(req->waiter_id))
        return fail(g, TL_EINVAL, "github: a waiter id must be 32 lower-case hex digits");
    /* A forced claim waits in no line: its old place, if any, is below it and goes. */
    queue = req->waiter_id != NULL && req->mode != TL_CLAIM_FORCE;
    if (req->waiter_id != NULL && !queue)
        place_forget(place_find(g, req->waiter_id));
    place = queue ? place_find(g, req->waiter_id) : NULL;
    if (place != NULL && place->number != number) {
        withdraw(g, place->comment); /* a waiter id is one acquire call's: not reused */
        place_forget(place);
        place = NULL;
    }
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    retry_orphans(g);

    /* 1. Who holds it? (Conditional: a 304 is free, and answers "still the same holder".) */
    if (place != NULL)
        place->polled = g->base.clock->mono_ms(g->base.clock->ud);
    if ((st = read_list(g, number, true, &l)) != TL_OK)
        goto done;
    if (g->pending_issue == number) {
        /* An earlier POST failed ambiguously: if it was written after all, it is ours. */
        for (size_t i = 0; i < l->npages && id == 0; i++) {
            for (size_t j = 0; j < l->pages[i].nitems; j++) {
                struct gh_item *it = &l->pages[i].items[j];
                if (it->kind == TL_GH_CLAIM && strcmp(it->claim.nonce, g->pending_nonce) == 0 &&
                    strcmp(it->claim.rec.info.worker_id, req->worker_id) == 0) {
                    learn_login(g, it->login);
                    if (trusted(g, it->login)) {
                        id = it->id;
                        memcpy(mine.nonce, g->pending_nonce, sizeof(mine.nonce));
                        LOG(g, TL_LOG_INFO, "github: #%lld: found our earlier claim %lld",
                            (long long)number, (long long)id);
                    }
                }
            }
        }
        if (id == 0) {
            /* Not listed. If the list is complete, the POST was never written: forget it. If
             * not, the claim may be there unseen: posting again could duplicate it. */
            int64_t count = -1;
            if ((st = issue_count(g, l, &count)) != TL_OK)
                goto done;
            if ((int64_t)list_count(l) < count) {
                l->recheck_tail = true;
                st = fail(g, TL_EBUSY,
                          "github: #%lld: outcome unknown: an earlier claim POST may have been "
                          "written but is not listed yet (%zu listed, %lld counted)",
                          (long long)number, list_count(l), (long long)count);
                goto done;
            }
        }
        g->pending_issue = 0;
        if (id != 0) {
            struct gh_item *it = list_find(l, id);
            if (strcmp(it->claim.waiter, queue ? req->waiter_id : "") != 0) {
                /* Posted for another acquire call (or place in line), which gave up. */
                withdraw(g, id);
                it->deleted = true;
                id = 0;
                memset(mine.nonce, 0, sizeof(mine.nonce));
            }
        }
        if (id != 0) {
            struct gh_item *it = list_find(l, id);
            posted.id = id;
            posted.created_ms = it->created_ms;
            posted.updated_ms = it->updated_ms;
            posted_at = g->pending_sent;
            if (tl__record_copy(&mine.rec, &it->claim.rec) != TL_OK) {
                st = oom(g);
                goto done;
            }
            if ((st = copy_took(g, &mine, &it->claim)) != TL_OK)
                goto done;
            memcpy(mine.waiter, it->claim.waiter, sizeof(mine.waiter));
            mine.held = it->claim.held;
            mine.seq = it->claim.seq;
            goto decide;
        }
    }

    /* 1'. A waiter that has a place in line decides on it (no new comment). */
    if (place != NULL) {
        struct gh_item *it = list_find(l, place->comment);
        if (it == NULL || !is_claim(g, it)) {
            /* Moved: a forced claim deleted it and posted it again behind its own. */
            struct gh_item *moved = waiter_claim(g, l, place->waiter, place->nonce, 0);
            if (moved != NULL) {
                LOG(g, TL_LOG_INFO,
                    "github: #%lld: our place in line moved from comment %lld to "
                    "%lld",
                    (long long)number, (long long)place->comment, (long long)moved->id);
                place->comment = moved->id;
                it = moved;
            }
        }
        bool found = it != NULL;
        if (it == NULL) {
            /* Not listed: deleted (as dead, or by a forced claim), or listed late. */
            if ((st = get_comment(g, place->comment, number, &fetched, &found)) != TL_OK)
                goto done;
            if (found)
                it = &fetched;
        }
        if (found && (!is_claim(g, it) || strcmp(it->claim.nonce, place->nonce) != 0))
            found = false;
        if (found && (stale_at(it, l->date_ms) || g->base.clock->mono_ms(g->base.clock->ud) >=
                                                      place->beat_sent + req->lock_timeout_ms)) {
            /* Our place went dead: others skip it, and may delete it. Give it up and join the
             * line again at its end (a refresh now could put it back in front of a holder
             * that skipped it). */
            LOG(g, TL_LOG_INFO, "github: #%lld: our place in line (comment %lld) went dead",
                (long long)number, (long long)it->id);
            withdraw(g, it->id);
            if (it != &fetched)
                it->deleted = true;
            found = false;
        }
        if (!found) {
            place_forget(place);
            place = NULL;
        } else if (it == &fetched) {
            /* Ours, but the list does not show it yet: read afresh next time. */
            l->recheck_tail = true;
            struct gh_item *h = line_holder(g, l, 0, 0, NULL);
            if (h != NULL && item_record(g, h, req->key, l->date_ms, &out->rec) == TL_OK) {
                tl__free(out->rec.opaque);
                out->rec.opaque = NULL;
                out->holder_known = true;
            }
            busy_counts(g, l, h, place->comment, true, out);
            st = fail(g, TL_EBUSY,
                      "github: #%lld: our place in line (comment %lld) is not listed "
                      "yet",
                      (long long)number, (long long)place->comment);
            goto done;
        } else {
            /* Other claims of this waiter (a copy a forced claim posted again after we had
             * joined anew) are not its place: they go. */
            struct gh_item *dup;
            while ((dup = waiter_claim(g, l, place->waiter, NULL, it->id)) != NULL) {
                withdraw(g, dup->id);
                dup->deleted = true;
            }
            id = it->id;
            existing = true;
            posted_at = place->beat_sent;
            place->used = ++g->use_clock;
            if (tl__record_copy(&mine.rec, &it->claim.rec) != TL_OK) {
                st = oom(g);
                goto done;
            }
            if ((st = copy_took(g, &mine, &it->claim)) != TL_OK)
                goto done;
            memcpy(mine.nonce, it->claim.nonce, sizeof(mine.nonce));
            memcpy(mine.waiter, it->claim.waiter, sizeof(mine.waiter));
            mine.held = it->claim.held;
            mine.seq = it->claim.seq;
            goto decide;
        }
    }

    /* 2. What this mode takes out of its way (nothing is deleted before the size check). A
     * waiter that would lose posts all the same: its claim is its place in line. */
    st = plan_the_way(g, req, l, &mine, &forced, victims, &nvictims, out);
    bool expect_win = st == TL_OK;
    if (st == TL_EBUSY && queue) {
        tl__record_clear(&out->rec);
        memset(out, 0, sizeof(*out));
        st = TL_OK;
    }
    if (st != TL_OK)
        goto done;

    /* 3. Our claim: built and checked against GitHub's size limit before any write. */
    mine.rec.info.worker_id = tl__strdup(req->worker_id);
    mine.rec.info.node_id = tl__strdup(req->node_id);
    mine.rec.info.task_info = tl__strdup(req->task_info);
    if (!mine.rec.info.worker_id || !mine.rec.info.node_id || !mine.rec.info.task_info) {
        st = oom(g);
        goto done;
    }
    mine.rec.info.claimed_at_ms = mine.rec.info.heartbeat_at_ms = l->date_ms;
    mine.rec.info.lock_timeout_ms = req->lock_timeout_ms;
    random_nonce(g, mine.nonce);
    if (queue) {
        /* Posted on a key it expects to find free, a waiter's claim is marked held: if it wins
         * and its holder dies before its first heartbeat, it is a stale holder, not a dead
         * waiter. Should it lose the race after all, its first refresh clears the mark. */
        (void)snprintf(mine.waiter, sizeof(mine.waiter), "%s", req->waiter_id);
        mine.held = expect_win;
    }
    if ((text = tl__gh_build_claim(&mine, l->date_ms)) == NULL) {
        st = oom(g);
        goto unplan;
    }
    if ((st = check_size(g, text)) != TL_OK)
        goto unplan;
    /* The planned victims are deleted only once our claim is posted (step 5 takes out the
     * stale or forced claims below ours): deleting first would leave the key free for a
     * moment, a plain claim could slip in below ours, and the holder we deleted would then be
     * recorded nowhere, since the claim that names it would be withdrawn. */
    for (size_t i = 0; i < nvictims; i++)
        victims[i]->deleted = false;
    planned = nvictims > 0;
    nvictims = 0;

    /* 4. Post it. */
    posted_at = g->base.clock->mono_ms(g->base.clock->ud);
    st = post_comment(g, number, text, &posted, &maybe, NULL);
    if (st == TL_OK) {
        id = posted.id;
        wrote = true;
        learn_login(g, posted.login);
    } else if (maybe) {
        /* It may have been written: look for our nonce before anything is posted again. */
        char why[TL_ERRMSG_SIZE];
        memcpy(why, g->base.errmsg, sizeof(why));
        LOG(g, TL_LOG_WARN, "github: #%lld: claim POST failed (%s); looking for its nonce",
            (long long)number, why);
        for (uint32_t a = 0; a <= g->cfg.rereads && id == 0; a++) {
            if (a > 0 && !nap(g, reread_delay(g, a))) {
                LOG(g, TL_LOG_INFO,
                    "github: #%lld: no time left before the deadline to look for the nonce "
                    "again",
                    (long long)number);
                break;
            }
            if ((st = read_list(g, number, true, &l)) != TL_OK) {
                g->pending_issue = number; /* look again on the next attempt */
                g->pending_sent = posted_at;
                memcpy(g->pending_nonce, mine.nonce, sizeof(g->pending_nonce));
                goto done;
            }
            for (size_t i = 0; i < l->npages && id == 0; i++) {
                for (size_t j = 0; j < l->pages[i].nitems; j++) {
                    struct gh_item *it = &l->pages[i].items[j];
                    if (it->kind == TL_GH_CLAIM && strcmp(it->claim.nonce, mine.nonce) == 0) {
                        learn_login(g, it->login);
                        if (trusted(g, it->login)) {
                            id = it->id;
                            posted.created_ms = it->created_ms;
                            posted.updated_ms = it->updated_ms;
                        }
                        break;
                    }
                }
            }
        }
        if (id == 0) {
            g->pending_issue = number;
            g->pending_sent = posted_at;
            memcpy(g->pending_nonce, mine.nonce, sizeof(g->pending_nonce));
            st = fail(g, TL_EBUSY,
                      "github: #%lld: outcome unknown: the claim POST failed (%.120s) and no "
                      "comment with its nonce is visible yet; it is looked for before posting "
                      "again",
                      (long long)number, why);
            goto done;
        }
        posted.id = id;
        wrote = true;
        LOG(g, TL_LOG_INFO, "github: #%lld: the failed POST was written after all (comment %lld)",
            (long long)number, (long long)id);
    } else {
        goto done;
    }

decide:
    /* 5. Keep it only if no claim below it is ahead (a dead waiter is not: it is deleted; the
     * holder is, unless this mode takes it; a waiter after the holder is, unless we force),
     * in a list that is complete. */
    for (uint32_t a = 0;; a++) {
        /* A place in line was just found in a list read by this call: no second read. */
        if ((a > 0 || !existing) && (st = read_list(g, number, true, &l)) != TL_OK)
            goto withdraw;
        struct gh_item *blocker = NULL;
        for (struct gh_item *c = next_claim(g, l, 0, id); c != NULL && blocker == NULL;
             c = next_claim(g, l, c->id, id)) {
            bool stale = stale_at(c, l->date_ms);
            if (req->mode == TL_CLAIM_NORMAL || (req->mode == TL_CLAIM_STEAL && !stale))
                blocker = c;
        }
        if (blocker != NULL) {
            /* Someone else's claim is ahead: the holder holds (for a waiter: we wait). */
            struct gh_item *h = line_holder(g, l, 0, 0, NULL);
            st = item_record(g, h, req->key, l->date_ms, &out->rec);
            if (st != TL_OK)
                goto withdraw;
            tl__free(out->rec.opaque);
            out->rec.opaque = NULL;
            out->holder_known = true;
            if (queue)
                goto queued;
            busy_counts(g, l, h, id, false, out);
            st = TL_EBUSY;
            goto withdraw;
        }
        /* Nothing ahead: out of our way goes what this mode takes: the stale holder and the
         * dead waiters after it; forced, the holder and the waiters after it. The audit trail
         * records the holder (the lowest). */
        bool first = true;
        struct gh_item *requeue[VICTIMS_MAX];
        size_t nrequeue = 0;
        for (struct gh_item *c = next_claim(g, l, 0, id); c != NULL;
             c = next_claim(g, l, c->id, id)) {
            bool stale = stale_at(c, l->date_ms), dead = stale && !first, gone;
            if ((st = delete_comment(g, c->id, &gone)) != TL_OK)
                goto withdraw;
            c->deleted = true;
            LOG(g, TL_LOG_INFO, "github: #%lld: deleted the %s claim %lld of %s", (long long)number,
                dead    ? "dead waiter's"
                : first ? (stale ? "stale" : "live")
                        : "waiting",
                (long long)c->id, c->claim.rec.info.worker_id);
            bool holder = first;
            first = false;
            if (!dead && !holder && c->claim.waiter[0] != '\0' && nrequeue < VICTIMS_MAX &&
                (req->waiter_id == NULL || strcmp(c->claim.waiter, req->waiter_id) != 0))
                requeue[nrequeue++] = c; /* a live waiter (forced out of our way) */
            if (dead || !holder)
                continue;
            if (!stale)
                forced = true;
            took_any = true;
            if (!from_has(&mine, c->id)) { /* not planned: our claim must name it */
                push_from(&mine, c);
                amend = true;
            }
        }
        /* Forced: the live waiters go back in line behind us, in their order. */
        for (size_t i = 0; i < nrequeue; i++)
            repost_place(g, number, requeue[i], l->date_ms);

        int64_t count = -1;
        if (g->cfg.assign && !assigned && !existing && g->login != NULL)
            assigned = assignee(g, number, true, &count);
        if (count < 0 && (st = issue_count(g, l, &count)) != TL_OK)
            goto withdraw;
        size_t seen = list_count(l);
        bool visible = list_find(l, id) != NULL;
        if (visible && ((int64_t)seen >= count || !g->cfg.reconcile))
            break; /* won */
        l->recheck_tail = true;
        uint32_t delay = reread_delay(g, a + 1);
        const char *then = queue ? "our claim stays in line" : "claim withdrawn";
        if (a >= g->cfg.rereads) {
            st = fail(g, TL_EBUSY,
                      "github: #%lld: outcome unknown: the comment list stayed incomplete (%zu "
                      "listed, %lld counted%s) after %u re-reads; %s",
                      (long long)number, seen, (long long)count, visible ? "" : ", ours not listed",
                      a, then);
        } else if (!may_wait(g, delay)) {
            st = fail(g, TL_EBUSY,
                      "github: #%lld: outcome unknown: the comment list is incomplete (%zu "
                      "listed, %lld counted%s) and re-reading it in %u ms would pass the call's "
                      "deadline; %s",
                      (long long)number, seen, (long long)count, visible ? "" : ", ours not listed",
                      delay, then);
        }
        if (st == TL_EBUSY && queue) {
            busy_counts(g, l, NULL, id, true, out);
            goto keep;
        }
        if (st == TL_EBUSY)
            goto withdraw;
        LOG(g, TL_LOG_INFO,
            "github: #%lld: the comment list is stale (%zu listed, the issue counts %lld%s); "
            "reading it again in %u ms",
            (long long)number, seen, (long long)count, visible ? "" : ", ours not yet listed",
            delay);
        tl__real_sleep_ms(delay);
    }

    /* Won. */
    {
        struct gh_item *it = list_find(l, id);
        if (it == NULL || !is_claim(g, it)) {
            st = fail(g, TL_ESTORE, "github: our claim %lld is not readable", (long long)id);
            goto withdraw;
        }
        if (queue) {
            mine.held = true;
            mine.seq = it->claim.seq < INT64_MAX ? it->claim.seq + 1 : it->claim.seq;
        }
        if (planned && !took_any) {
            /* The holders we meant to take out were gone by the time ours was posted (released,
             * or taken by another): we took the key free, and our claim must not say
             * otherwise. One edit, only in that race. */
            for (size_t i = 0; i < mine.nfrom; i++) {
                tl__free(mine.from[i].worker_id);
                tl__free(mine.from[i].node_id);
            }
            mine.nfrom = 0;
            mine.took = TL_GH_TOOK_FREE;
            forced = false;
            amend_claim(g, number, it, &mine, l->date_ms);
            wrote = true;
        } else if (amend) {
            mine.took = forced ? TL_GH_TOOK_FORCED : TL_GH_TOOK_STALE;
            amend_claim(g, number, it, &mine, l->date_ms);
            wrote = true;
        }
        if ((st = item_record(g, it, req->key, l->date_ms, &out->rec)) != TL_OK)
            goto withdraw;
        out->took_forced = forced || mine.took == TL_GH_TOOK_FORCED;
        out->took_stale = !out->took_forced && mine.took == TL_GH_TOOK_STALE;
        /* A claim that holds without a write this call (the line's hand-over) is as fresh as
         * its last write, which the core reckons the lock's loss deadline from. */
        out->beat_sent_mono_ms = wrote ? 0 : posted_at;
        place_forget(place);
    }
    goto done;

queued:
    /* Busy, and our claim stays in line as this waiter's place. A place written by an earlier
     * call is refreshed when its heartbeat is due (a quarter of the lock timeout, as a holder's,
     * with some slack for the core's timing): one edit per interval per waiter. */
    busy_counts(g, l, line_holder(g, l, 0, 0, NULL), id, true, out);
    if (existing) {
        struct gh_item *it = list_find(l, id);
        int64_t since = g->base.clock->mono_ms(g->base.clock->ud) - place->beat_sent;
        bool gone = false;
        if (it != NULL && since >= (int64_t)req->lock_timeout_ms * 3 / 16) {
            char keep[TL_ERRMSG_SIZE];
            memcpy(keep, g->base.errmsg, sizeof(keep));
            if (refresh_place(g, it, place, l->date_ms, &gone) != TL_OK)
                LOG(g, TL_LOG_WARN, "github: #%lld: refreshing our place in line failed: %s",
                    (long long)number, g->base.errmsg);
            memcpy(g->base.errmsg, keep, sizeof(keep));
        }
        if (gone) {
            /* Deleted meanwhile: the next claim joins the line again (wait_turn returns at
             * once for a waiter without a place). */
            LOG(g, TL_LOG_INFO, "github: #%lld: our place in line (comment %lld) was deleted",
                (long long)number, (long long)id);
            place_forget(place);
        }
    }
    st = fail(g, TL_EBUSY, "github: #%lld is held; %u waiting, %u ahead of us", (long long)number,
              out->waiting, out->ahead);
keep:
    if (!existing) /* posted by this call, or found after an ambiguous POST */
        place_keep(g, req->waiter_id, number, id, mine.nonce, posted_at);
    goto done;

withdraw:
    if (id != 0)
        withdraw(g, id);
    place_forget(place);
    if (assigned) {
        int64_t ignored;
        (void)assignee(g, number, false, &ignored);
    }
unplan:
    for (size_t i = 0; i < nvictims; i++) /* planned, not deleted: they count again */
        victims[i]->deleted = false;
done:
    item_clear(&posted);
    item_clear(&fetched);
    tl__gh_claim_clear(&mine);
    tl__free(text);
    return st;
}

/* ---- renew ---- */

static tl_status lost(struct github_store *g, const struct tl_record *held, const char *why)
{
    return fail(g, TL_ELOST, "github: #%s: lock lost (token %llu): %s", held->info.key,
                (unsigned long long)held->info.token, why);
}

/* Renews `held` (a heartbeat: renew's `seq`, or 0 for one above the comment's) and, when
 * `timeout_ms` is not 0, records it as the lock's new timeout (extend): one edit either way. */
static tl_status renew_claim(struct github_store *g, const struct tl_record *held, uint64_t seq,
                             uint32_t timeout_ms, int64_t *heartbeat_at_ms)
{
    char nonce[TL_GH_NONCE_LEN + 1], login[128], why[TL_ERRMSG_SIZE];
    struct gh_item fetched = {0};
    struct tl_http_resp r = {0};
    struct gh_list *l;
    char *url = NULL, *text = NULL, *body = NULL;
    int64_t number, id = (int64_t)held->info.token;
    tl_status st;

    if (!tl__gh_parse_key(held->info.key, &number) ||
        !opaque_split(held, nonce, login, sizeof(login)))
        return lost(g, held, "not a lock of this store");
    learn_login(g, login);
    /* A renew has no caller's deadline, but it must be done well before the lock expires: all its
     * waits together (rate limits, the write budget, retries) end within a quarter of the lock
     * timeout (at most max_wait) of its start. Its requests are bounded too: one list read (one
     * request per page, each retried at most twice), at most one GET of our comment, one PATCH. */
    uint32_t cap = held->info.lock_timeout_ms / 4;
    g->op_max_wait_ms = cap < g->cfg.max_wait_ms ? cap : g->cfg.max_wait_ms;
    g->op_deadline = g->base.clock->mono_ms(g->base.clock->ud) + g->op_max_wait_ms;

    /* 1. Is it still ours, and still the lowest? */
    if ((st = read_list(g, number, true, &l)) != TL_OK)
        goto done;
    struct gh_item *it = list_find(l, id);
    if (it != NULL && !is_held_claim(g, it, held, nonce)) {
        st = lost(g, held, "that comment is not our claim");
        goto done;
    }
    struct gh_item *lower = line_holder(g, l, 0, id, NULL);
    if (lower != NULL) {
        (void)snprintf(why, sizeof(why),
                       "an earlier claim (comment %lld by %s on %s) became visible late, and it "
                       "holds the lock",
                       (long long)lower->id, lower->claim.rec.info.worker_id,
                       lower->claim.rec.info.node_id);
        if (it != NULL)
            withdraw(g, id);
        LOG(g, TL_LOG_WARN, "github: #%s: %s; our claim %lld is withdrawn", held->info.key, why,
            (long long)id);
        st = lost(g, held, why);
        goto done;
    }
    if (it == NULL) {
        /* Not listed: deleted, or listed late. Ask for it by id. */
        bool found;
        if ((st = get_comment(g, id, number, &fetched, &found)) != TL_OK)
            goto done;
        if (!found || !is_held_claim(g, &fetched, held, nonce)) {
            st = lost(g, held,
                      found ? "that comment is not our claim"
                            : "our claim was deleted (stolen, forced or released)");
            goto done;
        }
        it = &fetched;
    }

    /* 2. Edit it in place: a new counter (and time) in every heartbeat. The counter is above
     * the one the comment has, whatever `seq` says: a renew by token alone (`tasklock renew` in
     * another process) always passes 1, and its body must still change, since GitHub does not
     * document that an identical edit moves `updated_at`. */
    struct tl_gh_claim c = it->claim; /* shallow: only read by the builder */
    c.seq = seq > it->claim.seq ? seq : it->claim.seq + 1;
    if (c.seq > INT64_MAX)
        c.seq = INT64_MAX;
    c.rec.info.claimed_at_ms = held->info.claimed_at_ms;
    c.rec.info.heartbeat_at_ms = l->date_ms;
    /* Only a holder renews: the held mark makes the claim a stale holder, not a dead waiter,
     * should it go stale (a claim that came to hold by the line's hand-over gets it here). */
    c.held = true;
    if (timeout_ms != 0)
        c.rec.info.lock_timeout_ms = timeout_ms;
    if (timeout_ms != 0 && (text = tl__gh_build_claim(&c, l->date_ms)) != NULL &&
        (st = check_size(g, text)) != TL_OK)
        goto done;
    tl__free(text);
    text = NULL;
    if ((text = tl__gh_build_claim(&c, l->date_ms)) == NULL || (url = comment_url(g, id)) == NULL ||
        (body = json_body("body", text)) == NULL) {
        st = oom(g);
        goto done;
    }
    if ((st = gh_call(g, "PATCH", url, body, NULL, &r)) != TL_OK)
        goto done;
    if (r.status == 404) {
        st = lost(g, held, "our claim was deleted (stolen, forced or released)");
    } else if (r.status == 200) {
        json_t *o = load_json(&r);
        int64_t upd;
        *heartbeat_at_ms = json_time(o, "updated_at", &upd) ? upd : resp_date(&r);
        json_decref(o);
    } else {
        st = unexpected(g, "PATCH", url, &r, 0);
    }
done:
    g->op_deadline = 0;
    item_clear(&fetched);
    tl__http_resp_clear(&r);
    tl__free(url);
    tl__free(text);
    tl__free(body);
    return st;
}

static tl_status github_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                              int64_t *heartbeat_at_ms)
{
    return renew_claim((struct github_store *)s, held, seq, 0, heartbeat_at_ms);
}

/* A renew that writes the new lock timeout into the claim's marker: the same one edit. */
static tl_status github_extend(struct tl_store *s, const struct tl_record *held,
                               uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    struct github_store *g = (struct github_store *)s;

    if (lock_timeout_ms == 0)
        return fail(g, TL_EINVAL, "github: a lock timeout must be more than 0");
    return renew_claim(g, held, 0, lock_timeout_ms, heartbeat_at_ms);
}

/* ---- release ---- */

/*
 * Deletes the dead waiters right after claim `id` in `l` (the stale claims before the first live
 * one): when the holder's claim `id` goes, the next claim holds, and it had better be live, or
 * it would be a stale holder that only a steal takes. Returns that next live claim (NULL: none,
 * or a deletion failed, which is logged).
 */
static struct gh_item *clear_dead_after(struct github_store *g, struct gh_list *l, int64_t id)
{
    char keep[TL_ERRMSG_SIZE];
    struct gh_item *c = next_claim(g, l, id, 0);

    memcpy(keep, g->base.errmsg, sizeof(keep));
    while (c != NULL && stale_at(c, l->date_ms)) {
        bool gone;
        if (delete_comment(g, c->id, &gone) != TL_OK) {
            LOG(g, TL_LOG_WARN, "github: #%lld: could not delete the dead waiter's claim %lld: %s",
                (long long)l->number, (long long)c->id, g->base.errmsg);
            c = NULL;
            break;
        }
        LOG(g, TL_LOG_INFO, "github: #%lld: deleted the dead waiter's claim %lld of %s",
            (long long)l->number, (long long)c->id, c->claim.rec.info.worker_id);
        c->deleted = true;
        c = next_claim(g, l, c->id, 0);
    }
    memcpy(g->base.errmsg, keep, sizeof(keep));
    return c;
}

/* Whether the list has a trusted completion comment of token `token` with nonce `nonce`. */
static bool has_completion(struct github_store *g, const struct gh_list *l, uint64_t token,
                           const char *nonce)
{
    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            const struct gh_item *c = &l->pages[i].items[j];
            if (c->kind == TL_GH_RELEASE && !c->deleted && trusted(g, c->login) &&
                c->rel.token == token && strcmp(c->rel.nonce, nonce) == 0)
                return true;
        }
    }
    return false;
}

/* Posts the completion comment of `held`'s tenure. `forced` (NULL for the holder's own
 * release) is the forced release that ended it: the comment then names who broke the lock.
 * `done`: a done release's (the task is finished). Returns whether it was posted (a failure is
 * logged; the errmsg is kept). */
static tl_status post_completion(struct github_store *g, int64_t number,
                                 const struct tl_record *held, const char *nonce,
                                 const struct gh_item *claim, int64_t at, const char *summary,
                                 const struct tl_force_release *forced, bool done)
{
    struct tl_gh_release rel = {0};
    struct gh_item posted;
    char keep[TL_ERRMSG_SIZE];

    memcpy(keep, g->base.errmsg, sizeof(keep));
    if (nonce[0] == '\0' && claim != NULL && claim->claim.nonce[0] != '\0')
        nonce = claim->claim.nonce;
    if (nonce[0] != '\0')
        memcpy(rel.nonce, nonce, sizeof(rel.nonce));
    else
        memset(rel.nonce, '0', TL_GH_NONCE_LEN);
    rel.token = held->info.token;
    rel.worker_id = held->info.worker_id;
    rel.node_id = held->info.node_id;
    rel.claimed_at_ms = held->info.claimed_at_ms;
    rel.released_at_ms = at;
    rel.summary = (char *)summary;
    rel.done = done && forced == NULL;
    if (forced != NULL) {
        rel.forced_worker_id = (char *)forced->worker_id;
        rel.forced_node_id = (char *)forced->node_id;
    }
    if (claim != NULL) {
        rel.took = claim->claim.took;
        rel.nfrom = claim->claim.nfrom;
        memcpy(rel.from, claim->claim.from, sizeof(rel.from));
    }
    char *text = tl__gh_build_release(&rel);
    tl_status st = text != NULL ? TL_ESTORE : TL_ENOMEM;
    bool maybe = false, transient = text != NULL;

    /* The comment is the tenure's only record once the claim is gone: a failure that may pass
     * (a 5xx, a dropped connection) is tried again, a few times and within the call's limits.
     * After a POST that may have been written, the issue's comments are read first, so that
     * the completion is not posted twice (a lagging list may still show it late; the history
     * reads a repeated completion once). */
    for (uint32_t a = 0; transient && a < COMPLETION_ATTEMPTS; a++) {
        if (a > 0) {
            struct gh_list *l;
            if (!nap(g, COMPLETION_RETRY_MS << (a - 1)))
                break;
            if (maybe && read_list(g, number, true, &l) == TL_OK &&
                has_completion(g, l, rel.token, rel.nonce)) {
                st = TL_OK;
                break;
            }
        }
        if ((st = post_comment(g, number, text, &posted, &maybe, &transient)) == TL_OK) {
            item_clear(&posted);
            break;
        }
        LOG(g, TL_LOG_DEBUG, "github: #%lld: completion comment, attempt %u: %s", (long long)number,
            a + 1, g->base.errmsg);
    }
    if (st != TL_OK)
        LOG(g, TL_LOG_WARN,
            "github: #%lld: the lock is released, but the completion comment failed: %s",
            (long long)number, text ? g->base.errmsg : "out of memory");
    tl__free(text);
    memcpy(g->base.errmsg, keep, sizeof(keep));
    return st;
}

/*
 * The release. `done` (claim-next's done release): once the claim is known to be ours, the
 * issue is closed and the completion comment, marked done, is posted; only then is the claim
 * deleted, so that the task is never free without its done marker. If closing or posting
 * fails, the claim stays and the call fails (the lock is as before, but for a closed issue).
 */
static tl_status release_as(struct tl_store *s, const struct tl_record *held, const char *summary,
                            bool done)
{
    struct github_store *g = (struct github_store *)s;

    g->committed = false; /* see struct github_store */
    char nonce[TL_GH_NONCE_LEN + 1], login[128];
    struct gh_item fetched = {0}, kept = {0};
    struct gh_list *l;
    int64_t number, id = (int64_t)held->info.token;
    bool gone = false, found;
    tl_status st = TL_OK;

    if (!tl__gh_parse_key(held->info.key, &number) ||
        !opaque_split(held, nonce, login, sizeof(login)))
        return fail(g, TL_ENOTOWNER, "github: #%s: not a lock of this store", held->info.key);
    learn_login(g, login);
    g->op_max_wait_ms = g->cfg.max_wait_ms;

    /* 1. Is comment `id` our claim? The list is read (conditionally) for the line: the dead
     * waiters right after our claim go first. If it cannot be read, what this instance listed
     * of our claim still holds: only its author can edit a comment, so a claim of ours stays
     * one until it is deleted. */
    struct gh_list *cur = NULL;
    if (read_list(g, number, true, &cur) != TL_OK) {
        LOG(g, TL_LOG_DEBUG, "github: #%lld: release: %s", (long long)number, g->base.errmsg);
        g->base.errmsg[0] = '\0';
        cur = NULL;
    }
    struct gh_item *it = NULL;
    for (size_t i = 0; i < g->nlists && it == NULL; i++) {
        if (g->lists[i]->number == number)
            it = list_find(g->lists[i], id);
    }
    if (it == NULL) {
        if ((st = get_comment(g, id, number, &fetched, &found)) != TL_OK)
            goto done;
        if (found)
            it = &fetched;
        else if (fetched.id == id) /* exists, but is an ordinary comment */
            return fail(g, TL_ENOTOWNER, "github: #%s: comment %llu is not our claim",
                        held->info.key, (unsigned long long)id);
        else
            gone = true;
    }
    if (it != NULL && !is_held_claim(g, it, held, nonce)) {
        st = fail(g, TL_ENOTOWNER, "github: #%s: comment %llu is not our claim", held->info.key,
                  (unsigned long long)id);
        goto done;
    }
    if (it != NULL && it->deleted)
        gone = true;  /* we deleted it before: see who holds the issue now */
    if (it != NULL) { /* keep what the completion comment reports of it */
        memcpy(kept.claim.nonce, it->claim.nonce, sizeof(kept.claim.nonce));
        if ((st = copy_took(g, &kept.claim, &it->claim)) != TL_OK)
            goto done;
    }

    /* 1'. Done: the marker before the lock goes (github_next.c closes the issue). */
    bool posted = false;
    if (done && !gone) {
        int64_t closed_at = 0;
        if ((st = tl__gh_next_close(s, number, true, &closed_at)) != TL_OK)
            goto done;
        g->committed = true;
        /* Unless a release before this one got that far. */
        if ((cur == NULL || !has_completion(g, cur, held->info.token, nonce)) &&
            (st = post_completion(g, number, held, nonce, it ? &kept : NULL,
                                  closed_at ? closed_at : (cur ? cur->date_ms : 0), summary, NULL,
                                  true)) != TL_OK) {
            st = fail(g, st,
                      "github: #%lld: closed, but the done comment could not be posted; the lock "
                      "is kept (release again): %s",
                      (long long)number, g->base.errmsg);
            goto done;
        }
        posted = true;
    }

    /* 2. Delete it, after the dead waiters right after it, so that the next holder is live. The
     * next holder keeps the assignee if it is ours as well (one write less). */
    int64_t at = 0;
    bool keep_assignee = false;
    if (!gone && cur != NULL && it != &fetched && list_find(cur, id) == it) {
        const struct gh_item *next = clear_dead_after(g, cur, id);
        keep_assignee = next != NULL && next->login != NULL && g->login != NULL &&
                        strcasecmp(next->login, g->login) == 0;
    }
    if (!gone) {
        struct tl_http_resp r = {0};
        char *url = comment_url(g, id);
        if (url == NULL) {
            st = oom(g);
            goto done;
        }
        st = gh_call(g, "DELETE", url, NULL, NULL, &r);
        if (st == TL_OK && r.status == 404)
            gone = true;
        else if (st == TL_OK && r.status != 204 && r.status != 200)
            st = unexpected(g, "DELETE", url, &r, 0);
        at = resp_date(&r);
        tl__http_resp_clear(&r);
        tl__free(url);
        if (st != TL_OK)
            goto done;
        if (it != NULL && it != &fetched)
            it->deleted = true;
    }

    if (gone) {
        /* 3'. Already gone: released by us before (fine), or taken by someone since (not). */
        if ((st = read_list(g, number, true, &l)) != TL_OK)
            goto done;
        /* Someone claimed it since (the contract: then our retry is refused): a holder now
         * (dead waiters hold nothing), or a completion of a later tenure. */
        struct gh_item *h = line_holder(g, l, 0, 0, NULL);
        bool mine_done = false, later = false;
        for (size_t i = 0; i < l->npages; i++) {
            for (size_t j = 0; j < l->pages[i].nitems; j++) {
                struct gh_item *c = &l->pages[i].items[j];
                if (c->kind != TL_GH_RELEASE || !trusted(g, c->login))
                    continue;
                /* A completion of our token written by a forced release is not ours: the
                 * lock was broken, not released by us. */
                bool forced = c->rel.forced_worker_id != NULL;
                if (c->rel.token == (uint64_t)id && !forced &&
                    (nonce[0] == '\0' || strcmp(c->rel.nonce, nonce) == 0))
                    mine_done = true;
                else if (c->rel.token > (uint64_t)id || (c->rel.token == (uint64_t)id && forced))
                    later = true;
            }
        }
        if (h != NULL || later) {
            st = fail(g, TL_ENOTOWNER,
                      "github: #%s: our claim %llu is gone, taken or broken by someone else%s%s",
                      held->info.key, (unsigned long long)id, h ? "; held now by " : "",
                      h ? h->claim.rec.info.worker_id : "");
            goto done;
        }
        if (!mine_done) { /* deleted, but the completion comment never made it */
            if (done)
                (void)tl__gh_next_close(s, number, true, NULL);
            (void)post_completion(g, number, held, nonce, it ? &kept : NULL, l->date_ms, summary,
                                  NULL, done);
        }
        goto done;
    }

    /* 3. The visible hint and the audit trail; the lock is free already, so failures here are
     * logged, not returned. */
    if (g->cfg.assign && g->login != NULL && !keep_assignee) {
        int64_t ignored;
        (void)assignee(g, number, false, &ignored);
    }
    if (!posted)
        (void)post_completion(g, number, held, nonce, it ? &kept : NULL, at, summary, NULL, false);
done:
    item_clear(&fetched);
    item_clear(&kept);
    return st;
}

static tl_status github_release(struct tl_store *s, const struct tl_record *held,
                                const char *summary)
{
    return release_as(s, held, summary, false);
}

/*
 * A forced release: delete the holder's claim (the lowest trusted one), remove the assignee,
 * and post a completion comment that records the tenure it ended and who ended it. The next
 * claim's comment id is larger than every one before it, so tokens keep growing; the holder's
 * heartbeat finds its claim gone (404: lost), and its release finds a forced completion of its
 * token, which is not its own (refused).
 */
static tl_status github_force_release(struct tl_store *s, const struct tl_force_release *req,
                                      struct tl_record *former, bool *found)
{
    struct github_store *g = (struct github_store *)s;

    g->committed = false; /* see struct github_store */
    struct gh_item kept = {0};
    struct gh_list *l;
    int64_t number;
    tl_status st;

    *found = false;
    if (!tl__gh_parse_key(req->key, &number))
        return github_check_key(s, req->key);
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = read_list(g, number, true, &l)) != TL_OK)
        return st;
    struct gh_item *h = line_holder(g, l, 0, 0, NULL); /* dead waiters hold nothing */
    if (h == NULL)
        return TL_OK;
    if ((st = item_record(g, h, req->key, l->date_ms, former)) != TL_OK)
        return st;
    former->info.waiting = line_waiting(g, l, 0, h);
    *found = true;
    if (req->token != 0 && (uint64_t)h->id != req->token)
        return fail(g, TL_ENOTOWNER, "github: #%s is held by %s with token %llu", req->key,
                    former->info.worker_id, (unsigned long long)h->id);

    /* What the completion comment reports of the claim: the list may be read again (and its
     * items freed) before it is posted. */
    int64_t id = h->id;
    memcpy(kept.claim.nonce, h->claim.nonce, sizeof(kept.claim.nonce));
    if ((st = copy_took(g, &kept.claim, &h->claim)) != TL_OK)
        goto done;
    (void)clear_dead_after(g, l, id); /* so that the next holder is live */

    struct tl_http_resp r = {0};
    char *url = comment_url(g, id);
    if (url == NULL) {
        st = oom(g);
        goto done;
    }
    st = gh_call(g, "DELETE", url, NULL, NULL, &r);
    bool gone = st == TL_OK && r.status == 404;
    if (st == TL_OK && !gone && r.status != 204 && r.status != 200)
        st = unexpected(g, "DELETE", url, &r, 0);
    int64_t at = resp_date(&r);
    tl__http_resp_clear(&r);
    tl__free(url);
    if (st != TL_OK)
        goto done;
    h->deleted = true;
    if (gone) {
        /* Deleted meanwhile: released by its holder, or broken by someone else. Nothing of ours
         * to report; the caller looks again if it wants to. */
        LOG(g, TL_LOG_INFO, "github: #%lld: the claim %lld was gone before it could be deleted",
            (long long)number, (long long)id);
        tl__record_clear(former);
        *found = false;
        goto done;
    }
    if (g->cfg.assign && g->login != NULL) {
        int64_t ignored;
        (void)assignee(g, number, false, &ignored);
    }
    (void)post_completion(g, number, former, kept.claim.nonce, &kept, at ? at : l->date_ms,
                          req->summary, req, false);
done:
    item_clear(&kept);
    return st;
}

/* ---- inspect, list ---- */

static tl_status github_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                                bool *found)
{
    struct github_store *g = (struct github_store *)s;
    struct gh_list *l;
    int64_t number;
    tl_status st;

    *found = false;
    if (!tl__gh_parse_key(key, &number))
        return github_check_key(s, key);
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = read_list(g, number, true, &l)) != TL_OK)
        return st;
    struct gh_item *h = line_holder(g, l, 0, 0, NULL);
    if (h == NULL)
        return TL_OK; /* free: dead waiters at most, and no live claim (it would hold) */
    if ((st = item_record(g, h, key, l->date_ms, out)) != TL_OK)
        return st;
    tl__free(out->opaque);
    out->opaque = NULL;
    out->info.waiting = line_waiting(g, l, 0, h);
    *found = true;
    return TL_OK;
}

static int cmp_key(const void *a, const void *b)
{
    const struct tl_record *x = *(struct tl_record *const *)a;
    const struct tl_record *y = *(struct tl_record *const *)b;

    return strcmp(x->info.key, y->info.key);
}

static tl_status github_list(struct tl_store *s, struct tl_record ***out, size_t *count)
{
    struct github_store *g = (struct github_store *)s;
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    struct gh_list *l;
    tl_status st;

    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = read_list(g, 0, true, &l)) != TL_OK || l == NULL)
        return st;
    /* The holder of each issue: its lowest claim that is not a dead waiter. */
    for (size_t i = 0; i < l->npages && st == TL_OK; i++) {
        for (size_t j = 0; j < l->pages[i].nitems && st == TL_OK; j++) {
            struct gh_item *it = &l->pages[i].items[j];
            if (!is_claim(g, it) || it->issue <= 0 || line_holder(g, l, it->issue, 0, NULL) != it)
                continue;
            char key[32];
            (void)snprintf(key, sizeof(key), "%lld", (long long)it->issue);
            struct tl_record *r = tl__record_new();
            if (r == NULL || item_record(g, it, key, l->date_ms, r) != TL_OK) {
                tl__free(r);
                st = oom(g);
                break;
            }
            tl__free(r->opaque);
            r->opaque = NULL;
            r->info.waiting = line_waiting(g, l, it->issue, it);
            if (tl__record_array_push(&arr, &n, &cap, r) != TL_OK) {
                tl__record_free(r);
                st = oom(g);
            }
        }
    }
    if (st != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return st;
    }
    if (n > 1)
        qsort(arr, n, sizeof(*arr), cmp_key); /* NOLINT(bugprone-sizeof-expression) */
    *out = arr;
    *count = n;
    return TL_OK;
}

/* ---- history ----
 *
 * The issue's comments are the audit trail. A completion comment tells of a whole tenure: the
 * claim it ends (token, worker, when it was claimed, how: free, stale or forced) and the release
 * (when, the summary). The live holder's claim tells of its own acquisition. A claim that was
 * stolen or forced away is deleted without a completion; it lives on in the "from" chain of the
 * claim that displaced it (and in that claim's completion later), which names the displaced
 * holders with their tokens and claim times. Losses cannot be told: the loser's claim is gone.
 */

/* An event as the comments tell it, before it is handed out. Strings are borrowed from the
 * listed comments. */
struct gh_ev {
    int64_t issue;
    uint64_t token; /* the holder the event is about */
    int phase;      /* 0: it took the lock (acquired, stolen, forced); 1: it released it */
    int rank;       /* 0: told by the holder's own comment; 1: by another claim's "from" */
    int64_t at_ms;
    tl_event_kind kind;
    const char *worker_id;
    const char *node_id;
    const char *summary;     /* released: the summary, or NULL */
    const char *from_worker; /* stolen, forced: whom it displaced, when known */
    uint64_t from_token;
};

struct gh_evs {
    struct gh_ev *v;
    size_t n, cap;
};

/* One holder of a chain: a claim, or a holder it displaced. */
struct gh_link {
    uint64_t token;
    enum tl_gh_took took;
    const char *worker_id;
    const char *node_id;
    int64_t at_ms;
};

static bool evs_push(struct gh_evs *e, const struct gh_ev *ev)
{
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 32;
        struct gh_ev *n = tl__realloc(e->v, ncap * sizeof(*n));
        if (n == NULL)
            return false;
        e->v = n;
        e->cap = ncap;
    }
    e->v[e->n++] = *ev;
    return true;
}

/* The acquisitions a chain tells of: chain[0] is the claim itself, the rest the holders it
 * displaced. Whom a steal or force displaced is the nearest earlier holder in the chain. */
static bool add_chain(struct gh_evs *e, int64_t issue, const struct gh_link *chain, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct gh_link *c = &chain[i];
        struct gh_ev ev = {.issue = issue,
                           .token = c->token,
                           .rank = i == 0 ? 0 : 1,
                           .at_ms = c->at_ms,
                           .kind = c->took == TL_GH_TOOK_STALE    ? TL_EVENT_STOLEN
                                   : c->took == TL_GH_TOOK_FORCED ? TL_EVENT_FORCED
                                                                  : TL_EVENT_ACQUIRED,
                           .worker_id = c->worker_id,
                           .node_id = c->node_id};
        for (size_t j = 0; c->took != TL_GH_TOOK_FREE && j < n; j++) {
            if (chain[j].token < c->token &&
                (ev.from_worker == NULL || chain[j].token > ev.from_token)) {
                ev.from_worker = chain[j].worker_id;
                ev.from_token = chain[j].token;
            }
        }
        if (!evs_push(e, &ev))
            return false;
    }
    return true;
}

static size_t chain_of(struct gh_link chain[1 + TL_GH_FROM_DEPTH], const struct gh_link *self,
                       const struct tl_gh_from *from, size_t nfrom)
{
    size_t n = 1;

    chain[0] = *self;
    for (size_t i = 0; i < nfrom && i < TL_GH_FROM_DEPTH; i++, n++)
        chain[n] = (struct gh_link){.token = from[i].token,
                                    .took = from[i].took,
                                    .worker_id = from[i].worker_id,
                                    .node_id = from[i].node_id,
                                    .at_ms = from[i].claimed_at_ms};
    return n;
}

struct gh_claimref {
    int64_t issue;
    const struct gh_item *it;
};

static int cmp_claimref(const void *a, const void *b)
{
    const struct gh_claimref *x = a, *y = b;

    if (x->issue != y->issue)
        return x->issue < y->issue ? -1 : 1;
    return (x->it->id > y->it->id) - (x->it->id < y->it->id);
}

/* Same event (issue, token, phase), the best-told first. */
static int cmp_ev_identity(const void *a, const void *b)
{
    const struct gh_ev *x = a, *y = b;

    if (x->issue != y->issue)
        return x->issue < y->issue ? -1 : 1;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    if (x->phase != y->phase)
        return x->phase - y->phase;
    return x->rank - y->rank;
}

/* Oldest first: by time, then (GitHub's times have whole seconds) by the holders' tokens, an
 * acquisition before its release. */
static int cmp_ev_order(const void *a, const void *b)
{
    const struct gh_ev *x = a, *y = b;

    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    if (x->phase != y->phase)
        return x->phase - y->phase;
    return (x->issue > y->issue) - (x->issue < y->issue);
}

/*
 * The events the listed comments tell of, one per (issue, token, phase), unordered: of issue
 * `number`, or (0) of the issue each comment names. Only trusted accounts' markers count; a
 * live claim counts only if it is its issue's holder (the lowest). *oldest_ms: the creation time
 * of the oldest marker comment listed (INT64_MAX: none).
 */
static tl_status collect_events(struct github_store *g, const struct gh_page *pages, size_t npages,
                                int64_t number, struct gh_evs *out, int64_t *oldest_ms)
{
    struct gh_claimref *claims = NULL;
    size_t nclaims = 0, total = 0;
    struct gh_link chain[1 + TL_GH_FROM_DEPTH];
    tl_status st = TL_OK;

    memset(out, 0, sizeof(*out));
    *oldest_ms = INT64_MAX;
    for (size_t i = 0; i < npages; i++)
        total += pages[i].nitems;
    /* Never NULL, also for no items (which clang-analyzer cannot tell from the loop below). */
    if ((claims = tl__malloc((total > 0 ? total : 1) * sizeof(*claims))) == NULL)
        return oom(g);

    for (size_t i = 0; i < npages && st == TL_OK; i++) {
        for (size_t j = 0; j < pages[i].nitems && st == TL_OK; j++) {
            const struct gh_item *it = &pages[i].items[j];
            int64_t issue = number > 0 ? number : it->issue;

            if (it->created_ms > 0 && it->created_ms < *oldest_ms)
                *oldest_ms = it->created_ms;
            if (issue <= 0 || it->deleted || !trusted(g, it->login))
                continue;
            if (it->kind == TL_GH_CLAIM) {
                claims[nclaims++] = (struct gh_claimref){.issue = issue, .it = it};
            } else if (it->kind == TL_GH_RELEASE) {
                const struct tl_gh_release *r = &it->rel;
                const struct gh_link self = {.token = r->token,
                                             .took = r->took,
                                             .worker_id = r->worker_id,
                                             .node_id = r->node_id,
                                             .at_ms = r->claimed_at_ms};
                struct gh_ev rel = {.issue = issue,
                                    .token = r->token,
                                    .phase = 1,
                                    .at_ms = r->released_at_ms,
                                    .kind = r->done ? TL_EVENT_DONE : TL_EVENT_RELEASED,
                                    .worker_id = r->worker_id,
                                    .node_id = r->node_id,
                                    .summary = r->summary};
                size_t n = chain_of(chain, &self, r->from, r->nfrom);
                bool ok = add_chain(out, issue, chain, n);
                if (ok && r->forced_worker_id != NULL) {
                    /* A forced release: whoever broke the lock forced it and released it at
                     * once, with the completion comment's id as its token (larger than the
                     * holder's, smaller than the next claim's). */
                    const struct gh_ev forced = {.issue = issue,
                                                 .token = (uint64_t)it->id,
                                                 .at_ms = r->released_at_ms,
                                                 .kind = TL_EVENT_FORCED,
                                                 .worker_id = r->forced_worker_id,
                                                 .node_id = r->forced_node_id,
                                                 .from_worker = r->worker_id,
                                                 .from_token = r->token};
                    rel.token = (uint64_t)it->id;
                    rel.worker_id = r->forced_worker_id;
                    rel.node_id = r->forced_node_id;
                    ok = evs_push(out, &forced);
                }
                if (!ok || !evs_push(out, &rel))
                    st = oom(g);
            } else if (it->kind == TL_GH_REOPEN) {
                /* Told by the reopen comment (github_next.c); its id keeps it one of its own
                 * (phase 2), and the event reports no token. */
                const struct gh_ev ro = {.issue = issue,
                                         .token = (uint64_t)it->id,
                                         .phase = 2,
                                         .at_ms = it->rel.released_at_ms,
                                         .kind = TL_EVENT_REOPENED,
                                         .worker_id = it->rel.worker_id,
                                         .node_id = it->rel.node_id};
                if (!evs_push(out, &ro))
                    st = oom(g);
            }
        }
    }
    /* The holder of each issue is its lowest live claim; later ones are racing or withdrawing
     * claimants that never held it. */
    if (nclaims > 1)
        qsort(claims, nclaims, sizeof(*claims), cmp_claimref);
    for (size_t i = 0; i < nclaims && st == TL_OK; i++) {
        if (i > 0 && claims[i].issue == claims[i - 1].issue)
            continue;
        const struct gh_item *it = claims[i].it;
        const struct gh_link self = {.token = (uint64_t)it->id,
                                     .took = it->claim.took,
                                     .worker_id = it->claim.rec.info.worker_id,
                                     .node_id = it->claim.rec.info.node_id,
                                     .at_ms = it->created_ms};
        size_t n = chain_of(chain, &self, it->claim.from, it->claim.nfrom);
        if (!add_chain(out, claims[i].issue, chain, n))
            st = oom(g);
    }
    tl__free(claims);
    if (st != TL_OK) {
        tl__free(out->v);
        memset(out, 0, sizeof(*out));
        return st;
    }

    /* One of each: a holder's own comment tells it best; chains may repeat it. */
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), cmp_ev_identity);
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++) {
        const struct gh_ev *v = &out->v[i];
        if (k > 0 && out->v[k - 1].issue == v->issue && out->v[k - 1].token == v->token &&
            out->v[k - 1].phase == v->phase)
            continue;
        out->v[k++] = *v;
    }
    out->n = k;
    return TL_OK;
}

struct gh_enough {
    struct github_store *g;
    size_t limit;
};

/*
 * Whether the newest pages of the repository-wide list (newest first) already hold the newest
 * `limit` events. Every event is at most as recent as the comment that tells it, so the events
 * after the oldest comment read are all known: once there are `limit` of them, older pages
 * cannot change the answer.
 */
static bool history_enough(void *ud, const struct gh_page *pages, size_t npages, tl_status *err)
{
    struct gh_enough *e = ud;
    struct gh_evs evs;
    int64_t oldest;
    size_t after = 0;

    if ((*err = collect_events(e->g, pages, npages, 0, &evs, &oldest)) != TL_OK)
        return true;
    for (size_t i = 0; i < evs.n; i++)
        after += evs.v[i].at_ms > oldest;
    tl__free(evs.v);
    return after >= e->limit;
}

static tl_status make_event(struct github_store *g, const struct gh_ev *v, const char *key,
                            struct tl_event **out)
{
    char num[32];
    struct tl_event *e = tl__event_new();

    *out = NULL;
    if (e == NULL)
        return oom(g);
    (void)snprintf(num, sizeof(num), "%lld", (long long)v->issue);
    e->at_ms = v->at_ms;
    e->kind = v->kind;
    e->token = v->kind == TL_EVENT_REOPENED ? 0 : v->token;
    e->key = tl__strdup(key ? key : num);
    e->worker_id = tl__strdup(v->worker_id);
    e->node_id = tl__strdup(v->node_id);
    bool detail = false;
    bool released = v->kind == TL_EVENT_RELEASED || v->kind == TL_EVENT_DONE;
    if (released && v->summary != NULL) {
        detail = true;
        e->detail = tl__strdup(v->summary);
    } else if (!released && v->from_worker != NULL) {
        detail = true;
        e->detail =
            tl__asprintf("from %s (token %llu)", v->from_worker, (unsigned long long)v->from_token);
    }
    if (!e->key || !e->worker_id || !e->node_id || (detail && !e->detail)) {
        tl__event_free(e);
        return oom(g);
    }
    *out = e;
    return TL_OK;
}

static tl_status github_history(struct tl_store *s, const char *key, size_t limit,
                                struct tl_event ***out, size_t *count)
{
    struct github_store *g = (struct github_store *)s;
    struct tl_event **arr = NULL;
    size_t n = 0, cap = 0;
    struct gh_evs evs = {0};
    struct gh_list *l;
    bool complete = true;
    int64_t number = 0, oldest;
    tl_status st;

    *out = NULL;
    *count = 0;
    if (key != NULL && !tl__gh_parse_key(key, &number))
        return github_check_key(s, key);
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if (number > 0) {
        /* The issue's every comment (one request per 100; 304s when unchanged). */
        if ((st = read_list(g, number, true, &l)) != TL_OK)
            return st;
    } else {
        /* The repository's newest comments first, until they hold the newest `limit` events,
         * at most history_pages pages: a busy repository's log is bounded, not complete. */
        struct gh_enough e = {.g = g, .limit = limit};
        char *url = tl__asprintf("%s/repos/%s/%s/issues/comments?sort=created&direction=desc"
                                 "&per_page=%u",
                                 g->api, g->owner, g->repo, g->cfg.per_page);
        if (url == NULL || (l = list_get(g, -1)) == NULL) {
            tl__free(url);
            return oom(g);
        }
        if ((st = read_pages(g, l, url, 0, true, g->cfg.history_pages, false, history_enough, &e,
                             &complete)) != TL_OK)
            return st;
    }
    if ((st = collect_events(g, l->pages, l->npages, number, &evs, &oldest)) != TL_OK)
        return st;
    if (!complete) {
        /* Only what the pages read tell completely: the events after their oldest comment. */
        size_t k = 0;
        for (size_t i = 0; i < evs.n; i++) {
            if (evs.v[i].at_ms > oldest)
                evs.v[k++] = evs.v[i];
        }
        LOG(g, TL_LOG_DEBUG,
            "github: the repository's log read its newest %zu pages of comments (at most %u): "
            "%zu events after the oldest of them",
            l->npages, g->cfg.history_pages, k);
        evs.n = k;
    }
    if (evs.n > 1)
        qsort(evs.v, evs.n, sizeof(*evs.v), cmp_ev_order);
    for (size_t i = evs.n > limit ? evs.n - limit : 0; i < evs.n; i++) {
        struct tl_event *e;
        if ((st = make_event(g, &evs.v[i], key, &e)) != TL_OK)
            break;
        if (tl__event_array_push(&arr, &n, &cap, e) != TL_OK) {
            tl__event_free(e);
            st = oom(g);
            break;
        }
    }
    tl__free(evs.v);
    if (st != TL_OK) {
        tl_event_array_free(arr, n);
        return st;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

/* ---- the line: wait_turn, leave, waiters ---- */

/*
 * Waits for waiter `waiter_id`'s turn. GitHub sends no messages: this reads the issue's
 * comments every line_poll (1 s) with If-None-Match (a 304 costs no primary rate budget),
 * counting from the last read for this waiter (its claim's too), however the caller slices its
 * waits, and reports a wake-up when no claim is left below ours (it holds: the next claim call
 * takes it without a write), or when ours is gone or dead (the next claim joins the line
 * again). A read is bounded by the caller's deadline, not by the end of this wait: a short wait
 * must not cut every read short. A waiter without a place (it has none yet, or it was given
 * up) is woken at once, so that its claim puts it back.
 */
static tl_status github_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                                  uint32_t timeout_ms, bool *woken)
{
    struct github_store *g = (struct github_store *)s;
    const struct tl_clock *ck = g->base.clock;
    int64_t number, keep_deadline = g->base.deadline_mono_ms;
    tl_status st = TL_OK;

    *woken = false;
    g->committed = false;
    if (!tl__gh_parse_key(key, &number))
        return github_check_key(s, key);
    struct gh_place *p = waiter_id != NULL ? place_find(g, waiter_id) : NULL;
    if (p == NULL || p->number != number) {
        *woken = true;
        return TL_OK;
    }
    int64_t end = ck->mono_ms(ck->ud) + timeout_ms;
    if (keep_deadline != 0 && keep_deadline < end)
        end = keep_deadline;
    g->op_max_wait_ms = timeout_ms;
    for (;;) {
        int64_t now = ck->mono_ms(ck->ud);
        int64_t due = p->polled + g->line_poll_ms;
        if (now < due) {
            /* Not yet time to read: sleep until then, or to the end of this wait. */
            int64_t until = due < end ? due : end;
            if (until > now)
                tl__real_sleep_ms((uint32_t)(until - now));
            if (due >= end)
                break;
            continue;
        }
        struct gh_list *l;
        p->polled = now;
        if ((st = read_list(g, number, true, &l)) != TL_OK)
            break;
        struct gh_item *it = list_find(l, p->comment);
        if (it == NULL || !is_claim(g, it) || stale_at(it, l->date_ms) ||
            line_holder(g, l, 0, it->id, NULL) == NULL) {
            *woken = true;
            break;
        }
        if (ck->mono_ms(ck->ud) >= end)
            break;
    }
    return st;
}

/* Leaves the line: deletes the waiter's claim (worth a request past the caller's deadline, as
 * any withdrawal; retried later as an orphan if it fails). TL_OK if it has none. */
static tl_status github_leave(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct github_store *g = (struct github_store *)s;
    struct gh_place *p = waiter_id != NULL ? place_find(g, waiter_id) : NULL;
    int64_t number;

    g->committed = false;
    if (!tl__gh_parse_key(key, &number))
        return github_check_key(s, key);
    if (p == NULL)
        return TL_OK;
    bool gone;
    int64_t id = p->comment;
    struct gh_list *l;
    place_forget(p);
    g->cleaning_up = true;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    /* Holding already (the hand-over came while it gave up): leaving is releasing, and the
     * dead waiters right after it go first, as in a release. */
    if (read_list(g, number, true, &l) == TL_OK) {
        struct gh_item *it = list_find(l, id);
        if (it != NULL && line_holder(g, l, 0, 0, NULL) == it)
            (void)clear_dead_after(g, l, id);
        /* A copy of our place that a forced claim posted again goes too. */
        struct gh_item *dup;
        while ((dup = waiter_claim(g, l, waiter_id, NULL, id)) != NULL) {
            withdraw(g, dup->id);
            dup->deleted = true;
        }
    }
    g->base.errmsg[0] = '\0';
    tl_status st = delete_comment(g, id, &gone);
    g->cleaning_up = false;
    if (st != TL_OK && g->norphans < ORPHANS_MAX)
        g->orphans[g->norphans++] = id;
    for (size_t i = 0; st == TL_OK && i < g->nlists; i++) {
        struct gh_item *it = g->lists[i]->number == number ? list_find(g->lists[i], id) : NULL;
        if (it != NULL)
            it->deleted = true;
    }
    return st;
}

/* The line of a key: every claim but the holder's, in comment order (dead waiters marked). */
static tl_status github_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                                size_t *count)
{
    struct github_store *g = (struct github_store *)s;
    struct tl_waiter **arr = NULL;
    size_t n = 0, cap = 0;
    struct gh_list *l;
    int64_t number;
    tl_status st;

    *out = NULL;
    *count = 0;
    g->committed = false;
    if (!tl__gh_parse_key(key, &number))
        return github_check_key(s, key);
    g->op_max_wait_ms = g->cfg.max_wait_ms;
    if ((st = read_list(g, number, true, &l)) != TL_OK)
        return st;
    const struct gh_item *h = line_holder(g, l, 0, 0, NULL);
    for (struct gh_item *it = next_claim(g, l, 0, 0); it != NULL && st == TL_OK;
         it = next_claim(g, l, it->id, 0)) {
        if (it == h)
            continue;
        struct tl_waiter *w = tl__waiter_new();
        if (w == NULL) {
            st = oom(g);
            break;
        }
        w->key = tl__strdup(key);
        w->waiter_id = tl__strdup(it->claim.waiter);
        w->worker_id = tl__strdup(it->claim.rec.info.worker_id);
        w->node_id = tl__strdup(it->claim.rec.info.node_id);
        w->priority = 0;
        w->seq = (uint64_t)it->id;
        w->since_ms = it->created_ms;
        w->heartbeat_at_ms = it->updated_ms;
        w->timeout_ms = it->claim.rec.info.lock_timeout_ms;
        w->dead = stale_at(it, l->date_ms);
        if (!w->key || !w->waiter_id || !w->worker_id || !w->node_id ||
            tl__waiter_array_push(&arr, &n, &cap, w) != TL_OK) {
            tl__waiter_free(w);
            st = oom(g);
        }
    }
    if (st != TL_OK) {
        tl_waiter_array_free(arr, n);
        return st;
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

/* ---- the interface of github_next.c (github_next.h) ---- */

void tl__gh_begin(struct tl_store *s)
{
    struct github_store *g = (struct github_store *)s;

    g->committed = false;
    g->op_max_wait_ms = g->cfg.max_wait_ms;
}

tl_status tl__gh_claim(struct tl_store *s, const struct tl_claim *req, struct tl_claim_result *out)
{
    return github_claim(s, req, out);
}

tl_status tl__gh_release_as(struct tl_store *s, const struct tl_record *held, const char *summary,
                            bool done)
{
    return release_as(s, held, summary, done);
}

int tl__gh_claimed_closed(struct tl_store *s)
{
    return ((const struct github_store *)s)->issue_closed;
}

void tl__gh_withdraw(struct tl_store *s, const struct tl_record *held)
{
    struct github_store *g = (struct github_store *)s;
    int64_t number, ignored;

    if (!tl__gh_parse_key(held->info.key, &number))
        return;
    withdraw(g, (int64_t)held->info.token);
    for (size_t i = 0; i < g->nlists; i++) {
        struct gh_item *it = g->lists[i]->number == number
                                 ? list_find(g->lists[i], (int64_t)held->info.token)
                                 : NULL;
        if (it != NULL)
            it->deleted = true;
    }
    if (g->cfg.assign && g->login != NULL)
        (void)assignee(g, number, false, &ignored);
}

tl_status tl__gh_request(struct tl_store *s, const char *method, const char *url, const char *body,
                         const char *inm, struct tl_http_resp *r)
{
    return gh_call((struct github_store *)s, method, url, body, inm, r);
}

char *tl__gh_repo_url(struct tl_store *s, const char *suffix)
{
    const struct github_store *g = (const struct github_store *)s;

    return tl__asprintf("%s/repos/%s/%s%s", g->api, g->owner, g->repo, suffix);
}

char *tl__gh_next_url(struct tl_store *s, const char *link)
{
    return next_link((struct github_store *)s, link);
}

tl_status tl__gh_unexpected(struct tl_store *s, const char *method, const char *url,
                            const struct tl_http_resp *r, int64_t issue)
{
    return unexpected((struct github_store *)s, method, url, r, issue);
}

int64_t tl__gh_resp_ms(const struct tl_http_resp *r)
{
    return resp_date(r);
}

void **tl__gh_next_slot(struct tl_store *s)
{
    return &((struct github_store *)s)->next_state;
}

bool tl__gh_trusts(struct tl_store *s, const char *login)
{
    return trusted((const struct github_store *)s, login);
}

const char *tl__gh_priorities(struct tl_store *s)
{
    return ((const struct github_store *)s)->priorities;
}

uint32_t tl__gh_per_page(struct tl_store *s)
{
    return ((const struct github_store *)s)->cfg.per_page;
}

uint32_t tl__gh_history_pages(struct tl_store *s)
{
    return ((const struct github_store *)s)->cfg.history_pages;
}

tl_status tl__gh_post(struct tl_store *s, int64_t number, const char *text)
{
    struct gh_item posted;
    bool maybe;
    tl_status st = post_comment((struct github_store *)s, number, text, &posted, &maybe, NULL);

    if (st == TL_OK)
        item_clear(&posted);
    return st;
}

void tl__gh_line_known(struct tl_store *s, int64_t number, struct tl_gh_line *out)
{
    struct github_store *g = (struct github_store *)s;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < g->nlists; i++) {
        struct gh_list *l = g->lists[i];
        if (l->number != number || l->npages == 0)
            continue;
        struct gh_item *h = line_holder(g, l, 0, 0, &out->live);
        out->known = true;
        out->read_ms = l->date_ms;
        out->holder = h != NULL;
        out->stale = h != NULL && stale_at(h, l->date_ms);
        out->waiting = h != NULL && !tl__gh_claim_held(&h->claim);
        return;
    }
}

tl_status tl__gh_marks(struct tl_store *s, int64_t number, tl_gh_mark_fn *fn, void *ud)
{
    struct github_store *g = (struct github_store *)s;
    struct gh_list *l = NULL;
    tl_status st;

    if (number > 0) {
        if ((st = read_list(g, number, true, &l)) != TL_OK)
            return st;
    } else {
        bool complete;
        char *url = tl__asprintf("%s/repos/%s/%s/issues/comments?sort=created&direction=desc"
                                 "&per_page=%u",
                                 g->api, g->owner, g->repo, g->cfg.per_page);
        if (url == NULL || (l = list_get(g, -1)) == NULL) {
            tl__free(url);
            return oom(g);
        }
        if ((st = read_pages(g, l, url, 0, true, g->cfg.history_pages, false, NULL, NULL,
                             &complete)) != TL_OK)
            return st;
    }
    for (size_t i = 0; i < l->npages; i++) {
        for (size_t j = 0; j < l->pages[i].nitems; j++) {
            const struct gh_item *it = &l->pages[i].items[j];
            if (it->deleted || !trusted(g, it->login) ||
                (it->kind != TL_GH_RELEASE && it->kind != TL_GH_REOPEN))
                continue;
            const struct tl_gh_mark m = {.issue = number > 0 ? number : it->issue,
                                         .id = it->id,
                                         .kind = it->kind,
                                         .rel = &it->rel};
            fn(ud, &m);
        }
    }
    return TL_OK;
}

const struct tl_store_ops tl__store_github = {
    .version = TL_STORE_OPS_VERSION,
    .scheme = "github",
    .size = sizeof(struct github_store),
    .open = github_open,
    .close = github_close,
    .claim = github_claim,
    .renew = github_renew,
    .release = github_release,
    .inspect = github_inspect,
    .list = github_list,
    .history = github_history,
    .check_key = github_check_key,
    .force_release = github_force_release,
    .leave = github_leave,
    .wait_turn = github_wait_turn,
    .waiters = github_waiters,
    .extend = github_extend,
    .claim_next = tl__gh_claim_next,
    .finish = tl__gh_finish,
    .reopen = tl__gh_reopen,
    .done_list = tl__gh_done_list,
    .wait_any = NULL, /* GitHub cannot wake a waiter: the core sleeps its backoff */
};
