/*
 * server.c -- tl-github-server: command line, start-up, signals. See PROTOCOL.md.
 */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: tl-github-server [--port N] [--port-file PATH] [--token LOGIN=TOKEN]...\n"
    "                        [--repo OWNER/REPO]... [--issues N] [--assignable LOGIN]...\n"
    "                        [--rate-limit N] [--die-with-stdin] [--verbose] [--help]\n"
    "A local stand-in for the GitHub REST API, on 127.0.0.1 only (see PROTOCOL.md).\n"
    "Defaults: --port 0 (any free port), --token tasklock-bot=test-token, --repo acme/widgets,\n"
    "--issues 10, --rate-limit 5000.\n";

static bool name_ok(const char *p, size_t n)
{
    if (n == 0 || n >= 100)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static bool number_arg(const char *text, int64_t max, int64_t *out)
{
    return ghs_parse_i64(text, out) && *out <= max;
}

static int push(void *arrp, size_t *n, size_t size, const void *item)
{
    void **arr = arrp;
    char *grown = realloc(*arr, (*n + 1) * size);

    if (!grown)
        return -1;
    memcpy(grown + *n * size, item, size);
    *arr = grown;
    (*n)++;
    return 0;
}

static void config_free(struct ghs_config *cfg)
{
    for (size_t i = 0; i < cfg->ntokens; i++) {
        free(cfg->tokens[i].login);
        free(cfg->tokens[i].token);
    }
    free(cfg->tokens);
    for (size_t i = 0; i < cfg->nrepos; i++)
        free(cfg->repos[i]);
    free(cfg->repos);
    for (size_t i = 0; i < cfg->nassignables; i++)
        free(cfg->assignables[i]);
    free(cfg->assignables);
}

static int bad_value(const char *name, const char *val)
{
    (void)fprintf(stderr, "tl-github-server: bad value for %s: '%s'\n", name, val);
    return 2;
}

/* Returns 0, -1 (--help printed), 2 (usage error, message printed) or 1 (out of memory). */
static int parse_args(int argc, char **argv, struct ghs_config *cfg)
{
    cfg->rate_limit = 5000;
    cfg->issues = 10;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        char name[32];
        const char *eq = strchr(arg, '=');

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            (void)fputs(usage, stdout);
            return -1;
        }
        if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
            cfg->verbose = true;
            continue;
        }
        if (strcmp(arg, "--die-with-stdin") == 0) {
            cfg->die_with_stdin = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            (void)fprintf(stderr, "tl-github-server: unexpected argument '%s'\n%s", arg, usage);
            return 2;
        }
        /* --name=value or --name value */
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof(name)) {
            (void)fprintf(stderr, "tl-github-server: unknown option '%s'\n%s", arg, usage);
            return 2;
        }
        memcpy(name, arg, nlen);
        name[nlen] = '\0';
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            (void)fprintf(stderr, "tl-github-server: %s needs a value\n", name);
            return 2;
        }

        int64_t n;
        if (strcmp(name, "--port") == 0) {
            if (!number_arg(val, 65535, &n))
                return bad_value(name, val);
            cfg->port = (unsigned)n;
        } else if (strcmp(name, "--port-file") == 0) {
            if (!*val)
                return bad_value(name, val);
            cfg->port_file = val;
        } else if (strcmp(name, "--issues") == 0) {
            if (!number_arg(val, 100000, &n))
                return bad_value(name, val);
            cfg->issues = n;
        } else if (strcmp(name, "--rate-limit") == 0) {
            if (!number_arg(val, INT64_C(1000000000000), &n))
                return bad_value(name, val);
            cfg->rate_limit = n;
        } else if (strcmp(name, "--token") == 0) {
            const char *sep = strchr(val, '=');
            if (!sep || !name_ok(val, (size_t)(sep - val)) || !sep[1] || strlen(sep + 1) > 500)
                return bad_value(name, val);
            struct ghs_token_arg t = {strndup(val, (size_t)(sep - val)), strdup(sep + 1)};
            if (!t.login || !t.token || push(&cfg->tokens, &cfg->ntokens, sizeof(t), &t) != 0) {
                free(t.login);
                free(t.token);
                return 1;
            }
        } else if (strcmp(name, "--repo") == 0) {
            const char *sep = strchr(val, '/');
            if (!sep || !name_ok(val, (size_t)(sep - val)) || !name_ok(sep + 1, strlen(sep + 1)))
                return bad_value(name, val);
            char *copy = strdup(val);
            if (!copy || push(&cfg->repos, &cfg->nrepos, sizeof(copy), &copy) != 0) {
                free(copy);
                return 1;
            }
        } else if (strcmp(name, "--assignable") == 0) {
            if (!name_ok(val, strlen(val)))
                return bad_value(name, val);
            char *copy = strdup(val);
            if (!copy || push(&cfg->assignables, &cfg->nassignables, sizeof(copy), &copy) != 0) {
                free(copy);
                return 1;
            }
        } else {
            (void)fprintf(stderr, "tl-github-server: unknown option '%s'\n%s", name, usage);
            return 2;
        }
    }
    if (cfg->ntokens == 0) {
        struct ghs_token_arg t = {strdup("tasklock-bot"), strdup("test-token")};
        if (!t.login || !t.token || push(&cfg->tokens, &cfg->ntokens, sizeof(t), &t) != 0) {
            free(t.login);
            free(t.token);
            return 1;
        }
    }
    if (cfg->nrepos == 0) {
        char *copy = strdup("acme/widgets");
        if (!copy || push(&cfg->repos, &cfg->nrepos, sizeof(copy), &copy) != 0) {
            free(copy);
            return 1;
        }
    }
    return 0;
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);

    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int rc = fprintf(f, "%u\n", port) < 0 ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0)
        (void)unlink(tmp);
    return rc;
}

/* --die-with-stdin: the parent holds our stdin; when it goes away (EOF or error), stop as if
 * sent SIGTERM. Polls so that it also notices a normal stop and can be joined. */
static void *watch_stdin(void *arg)
{
    struct ghs_server *s = arg;
    char buf[256];

    for (;;) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int rc = poll(&pfd, 1, 200);

        pthread_mutex_lock(&s->mu);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stopping)
            break;
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0)
            continue;
        ssize_t n = rc > 0 ? read(STDIN_FILENO, buf, sizeof(buf)) : -1;
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        (void)kill(getpid(), SIGTERM);
        break;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct ghs_config cfg = {0};
    struct ghs_server s = {0};
    sigset_t sigs;
    int sig, rc = parse_args(argc, argv, &cfg);
    pthread_t watcher;
    bool watching = false;

    if (rc != 0) {
        if (rc < 0)
            rc = 0; /* --help */
        if (rc == 1)
            (void)fputs("tl-github-server: out of memory\n", stderr);
        config_free(&cfg);
        return rc;
    }
    /* Every thread (libmicrohttpd's too) inherits this mask; the main thread takes the signals
     * with sigwait, so no handler and no global flag are needed. */
    (void)signal(SIGPIPE, SIG_IGN);
    (void)sigemptyset(&sigs);
    (void)sigaddset(&sigs, SIGTERM);
    (void)sigaddset(&sigs, SIGINT);
    (void)pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (ghs_state_init(&s, &cfg) != 0) {
        (void)fputs("tl-github-server: out of memory\n", stderr);
        rc = 1;
        goto out_state;
    }
    unsigned port = 0;
    void *daemon = ghs_http_start(&s, &port);
    if (!daemon) {
        (void)fprintf(stderr, "tl-github-server: cannot listen on 127.0.0.1:%u\n", cfg.port);
        rc = 1;
        goto out_state;
    }
    pthread_mutex_lock(&s.mu);
    s.port = port;
    pthread_mutex_unlock(&s.mu);
    if (cfg.port_file && write_port_file(cfg.port_file, port) != 0) {
        char msg[128];
        if (strerror_r(errno, msg, sizeof(msg)) != 0)
            (void)snprintf(msg, sizeof(msg), "error %d", errno);
        (void)fprintf(stderr, "tl-github-server: cannot write %s: %s\n", cfg.port_file, msg);
        rc = 1;
        goto out_daemon;
    }
    if (printf("listening on http://127.0.0.1:%u\n", port) < 0 || fflush(stdout) != 0) {
        rc = 1;
        goto out_daemon;
    }
    if (cfg.verbose)
        (void)fprintf(stderr, "tl-github-server: %zu repo(s), %lld issue(s) each, %zu token(s)\n",
                      cfg.nrepos, (long long)cfg.issues, cfg.ntokens);
    if (cfg.die_with_stdin)
        watching = pthread_create(&watcher, NULL, watch_stdin, &s) == 0;

    (void)sigwait(&sigs, &sig);
    if (cfg.verbose)
        (void)fprintf(stderr, "tl-github-server: signal %d, stopping\n", sig);

out_daemon:
    pthread_mutex_lock(&s.mu);
    s.stopping = true; /* wakes requests sleeping for latency or a hang */
    pthread_cond_broadcast(&s.wake);
    pthread_mutex_unlock(&s.mu);
    ghs_http_stop(daemon);
    if (watching)
        (void)pthread_join(watcher, NULL);
out_state:
    ghs_state_fini(&s);
    config_free(&cfg);
    return rc;
}
