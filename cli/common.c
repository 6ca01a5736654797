/*
 * common.c -- helpers the commands share: messages, exit codes, option values, the manager.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "store.h"

/* Prints a message; an error (`error`) is also kept, the first one, for the --json error. */
static void vmessage(const struct tl_cli *cli, bool error, const char *fmt, va_list ap)
{
    char buf[1024];

    /* The analyzer of clang-tidy 14 loses va_start when it inlines a variadic caller. */
    (void)vsnprintf(buf, sizeof(buf), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    if (strcmp(cli->cmd, "tasklock") == 0)      /* before a command was named */
        (void)fprintf(stderr, "tasklock: %s\n", buf);
    else
        (void)fprintf(stderr, "tasklock: %s: %s\n", cli->cmd, buf);
    if (error && cli->outcome != NULL && cli->outcome->error[0] == '\0')
        (void)snprintf(cli->outcome->error, sizeof(cli->outcome->error), "%s", buf);
}

void tl_cli_error(const struct tl_cli *cli, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage(cli, true, fmt, ap);
    va_end(ap);
}

void tl_cli_note(const struct tl_cli *cli, const char *fmt, ...)
{
    va_list ap;

    if (cli->quiet)
        return;
    va_start(ap, fmt);
    vmessage(cli, false, fmt, ap);
    va_end(ap);
}

void tl_cli_info(const struct tl_cli *cli, const char *fmt, ...)
{
    va_list ap;

    if (cli->verbose == 0)
        return;
    va_start(ap, fmt);
    vmessage(cli, false, fmt, ap);
    va_end(ap);
}

int tl_cli_usage_error(const struct tl_cli *cli, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage(cli, true, fmt, ap);
    va_end(ap);
    if (strcmp(cli->cmd, "tasklock") == 0)
        (void)fprintf(stderr, "Try 'tasklock --help'.\n");
    else
        (void)fprintf(stderr, "Try 'tasklock help %s'.\n", cli->cmd);
    return TL_EXIT_USAGE;
}

int tl_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    opterr = 0;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): options are parsed before any thread starts */
    return getopt_long(argc, argv, shortopts, longopts, NULL);
}

int tl_cli_global_opt(struct tl_cli *cli, int opt, const char *arg, char **argv)
{
    switch (opt) {
    case 's':
        if (arg[0] == '\0')
            return tl_cli_usage_error(cli,
                                      "--store: the URL is empty (give sqlite:PATH, "
                                      "github://OWNER/REPO, redis://HOST:PORT/DB, "
                                      "postgres://... or etcd://HOST:PORT; leave --store out for "
                                      "$TASKLOCK_STORE, else the default SQLite file)");
        cli->store = arg;
        return -1;
    case 'w': cli->worker = arg; return -1;
    case 'n': cli->node = arg; return -1;
    case 'q': cli->quiet = true; return -1;
    case 'v': cli->verbose++; return -1;
    case TL_OPT_JSON: cli->json = true; return -1;
    case TL_OPT_GITHUB_API_URL:
        /* The GitHub store reads it from the environment (after a URL's api_url parameter). */
        /* NOLINTNEXTLINE(concurrency-mt-unsafe): options are parsed before any thread starts */
        if (setenv("GITHUB_API_URL", arg, 1) != 0)
            return tl_cli_usage_error(cli, "cannot set GITHUB_API_URL");
        return -1;
    case 'h':
        if (tl_cli_find(cli->cmd) != NULL)
            tl_cli_print_help(tl_cli_find(cli->cmd));
        return TL_EXIT_OK;
    case ':': return tl_cli_usage_error(cli, "option \"%s\" needs a value", argv[optind - 1]);
    default:
        if (optopt != 0)
            return tl_cli_usage_error(cli, "unknown option \"-%c\"", optopt);
        return tl_cli_usage_error(cli, "unknown option \"%s\"", argv[optind - 1]);
    }
}

int tl_cli_exit_code(tl_status st)
{
    switch (st) {
    case TL_OK: return TL_EXIT_OK;
    case TL_EBUSY: return TL_EXIT_BUSY;
    case TL_EINVAL: return TL_EXIT_USAGE;
    case TL_ENOTOWNER:
    case TL_ELOST: return TL_EXIT_NOTOWNER;
    case TL_ENOMEM:
    case TL_ETIMEDOUT:
    case TL_ESTORE:
    case TL_ENOTSUP:
    case TL_ERATELIMIT: return TL_EXIT_STORE;
    case TL_ECANCELED: return TL_EXIT_BUSY;
    case TL_ENOTASK: return TL_EXIT_NOTASK;
    case TL_EDEADLK: return TL_EXIT_DEADLOCK;
    }
    return TL_EXIT_STORE;
}

int tl_cli_fail_silently(const struct tl_cli *cli, tl_manager *m, tl_status st)
{
    const char *msg = m != NULL ? tl_errmsg(m) : "";
    struct tl_cli_outcome *o = cli->outcome;

    if (o->error[0] == '\0')
        (void)snprintf(o->error, sizeof(o->error), "%s", msg[0] ? msg : tl_strerror(st));
    const struct tl_info *h = st == TL_EBUSY && m != NULL ? tl_last_holder(m) : NULL;
    if (cli->json && h != NULL && o->holder == NULL) {
        char *meta = tl_info_to_json(h);

        o->holder = tl_cli_lock_json(h->key, meta, true, h->stale);
        tl_free(meta);
    }
    return tl_cli_exit_code(st);
}

int tl_cli_fail(const struct tl_cli *cli, tl_manager *m, tl_status st, const char *hint)
{
    const char *msg = m != NULL ? tl_errmsg(m) : "";

    if (msg[0] == '\0')
        msg = tl_strerror(st);
    if (hint != NULL)
        tl_cli_error(cli, "%s (%s)", msg, hint);
    else
        tl_cli_error(cli, "%s", msg);
    return tl_cli_fail_silently(cli, m, st);
}

void tl_cli_json_error(const struct tl_cli *cli, int rc)
{
    struct tl_cli_outcome *o = cli->outcome;

    if (!cli->json || rc == TL_EXIT_OK || o->printed || o->stdout_failed || o->stdout_given)
        return;
    json_t *doc = json_pack("{s:s, s:i, s:s}", "error",
                            o->error[0] ? o->error : "failed (see standard error)", "exit", rc,
                            "command", cli->cmd);
    json_t *lock = json_object_get(o->holder, "lock");
    if (doc != NULL && lock != NULL)
        (void)json_object_set(doc, "holder", lock);
    (void)tl_cli_print_json(cli, doc);
}

bool tl_cli_duration(const struct tl_cli *cli, const char *opt, const char *text, uint32_t *out_ms)
{
    if (tl_parse_duration(text, out_ms) == TL_OK)
        return true;
    (void)tl_cli_usage_error(cli,
                             "%s: \"%s\" is not a duration (a number and a unit, ms, s, m or h: "
                             "250ms, 30s, 1.5s, 5m, 1h; more than zero and at most 576h)",
                             opt, text);
    return false;
}

bool tl_cli_uint(const struct tl_cli *cli, const char *opt, const char *text, uint64_t min,
                 uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = text;
    bool over = false;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');

        over = over || v > (max - d) / 10;
        if (!over)
            v = v * 10 + d;
    }
    if (p == text || *p != '\0' || over || v < min) {
        (void)tl_cli_usage_error(cli, "%s: \"%s\" is not a whole number from %llu to %llu", opt,
                                 text, (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

bool tl_cli_key(const struct tl_cli *cli, const char *key)
{
    if (tl_key_is_valid(key))
        return true;

    size_t n = strlen(key);
    if (n == 0)
        (void)tl_cli_usage_error(cli, "the key is empty (give 1 to 255 bytes)");
    else if (n > 255)
        (void)tl_cli_usage_error(cli, "the key is %zu bytes long; the limit is 255", n);
    else
        (void)tl_cli_usage_error(cli,
                                 "key \"%s\" contains white space, a control character or "
                                 "invalid UTF-8",
                                 key);
    return false;
}

const char *tl_cli_store_url(const struct tl_cli *cli)
{
    const char *env = getenv("TASKLOCK_STORE"); /* NOLINT(concurrency-mt-unsafe): no threads yet */

    if (cli->store != NULL)
        return cli->store;
    if (env != NULL && env[0] != '\0')
        return env;
    return "sqlite:";
}

static const char *level_name(int level)
{
    switch (level) {
    case TL_LOG_ERROR: return "error";
    case TL_LOG_WARN: return "warning";
    case TL_LOG_INFO: return "info";
    default: return "debug";
    }
}

/* The library's log, on stderr. It may be called on the heartbeat thread: stdio locks. */
static void log_to_stderr(void *ud, int level, const char *msg)
{
    const struct tl_cli *cli = ud;

    (void)fprintf(stderr, "tasklock: %s: %s: %s\n", cli->cmd, level_name(level), msg);
}

/* Runs `path` with our arguments if it is an executable file; returns only if it is not or the
 * exec failed. */
static void exec_if_there(const struct tl_cli *cli, const char *path)
{
    if (access(path, X_OK) != 0)
        return;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): no thread exists before a store is opened */
    if (setenv("TASKLOCK_HANDED_OFF", "1", 1) != 0)
        return;
    (void)fflush(stdout);
    (void)execv(path, cli->argv);

    char err[128];
    tl_cli_error(cli, "cannot run %s: %s", path, tl_cli_strerror(errno, err));
}

void tl_cli_handoff(const struct tl_cli *cli, const char *url)
{
    if (tl__store_find(url) != NULL || !tl__store_known_but_missing(url))
        return;
    tl_cli_handoff_net(cli);
}

void tl_cli_handoff_net(const struct tl_cli *cli)
{
    if (cli->handed_off || cli->argv == NULL)
        return;

    char self[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return;
    *slash = '\0';

    /* Beside us (a build directory), then where `cmake --install` puts it. */
    (void)snprintf(path, sizeof(path), "%s/tasklock-net", self);
    exec_if_there(cli, path);
    (void)snprintf(path, sizeof(path), "%s/%s", self, TL_NET_FROM_BIN);
    exec_if_there(cli, path);
}

int tl_cli_connect(const struct tl_cli *cli, const struct tl_options *base, tl_manager **out)
{
    struct tl_options o = {0};

    *out = NULL;
    tl_cli_handoff(cli, tl_cli_store_url(cli));
    if (base != NULL)
        o = *base;
    o.store_url = tl_cli_store_url(cli);
    o.worker_id = cli->worker;
    o.node_id = cli->node;
    if (cli->verbose > 0) {
        o.log = log_to_stderr;
        o.log_ud = (void *)cli;
        o.log_level = cli->verbose > 1 ? TL_LOG_DEBUG : TL_LOG_INFO;
    } else if (!cli->quiet) {
        o.log = log_to_stderr; /* errors (a lock lost to failing renewals) are worth seeing */
        o.log_ud = (void *)cli;
        o.log_level = TL_LOG_ERROR;
    }

    tl_manager *m = tl_manager_new(&o);
    if (m == NULL) {
        tl_cli_error(cli, "out of memory");
        return TL_EXIT_STORE;
    }
    tl_status st = tl_connect(m);
    if (st != TL_OK) {
        int rc = tl_cli_fail(cli, m, st, NULL);
        tl_manager_free(m);
        return rc;
    }
    if (cli->verbose > 0) {
        char *shown = tl_cli_store_shown(m);

        tl_cli_info(cli, "store %s, worker %s", shown ? shown : "?", tl_manager_worker_id(m));
        free(shown);
    }
    *out = m;
    return TL_EXIT_OK;
}

char *tl_cli_store_shown(tl_manager *m)
{
    char *lib = tl__redact_url(tl_manager_store_url(m));
    char *out = lib != NULL ? strdup(lib) : NULL; /* the library's memory goes back to it */

    tl__free(lib);
    return out;
}

void tl_cli_format_time(int64_t ms, bool millis, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char sec[32];

    if (ms <= 0 || gmtime_r(&t, &tm) == NULL ||
        strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        (void)snprintf(buf, size, "-");
        return;
    }
    if (millis)
        (void)snprintf(buf, size, "%s.%03dZ", sec, (int)(ms % 1000));
    else
        (void)snprintf(buf, size, "%sZ", sec);
}

int64_t tl_cli_now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tl_cli_mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tl_cli_print_json(const struct tl_cli *cli, json_t *doc)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    if (text == NULL) {
        tl_cli_error(cli, "out of memory");
        return TL_EXIT_STORE;
    }
    (void)printf("%s\n", text);
    free(text);
    cli->outcome->printed = true;
    return TL_EXIT_OK;
}

int tl_cli_own_token(const struct tl_cli *cli, tl_manager *m, const char *key, uint64_t *token,
                     bool *is_free)
{
    struct tl_info **hs = NULL;
    size_t n = 0, mine = 0;
    tl_status st = tl_holders(m, key, &hs, &n);
    int rc = TL_EXIT_OK;

    *is_free = false;
    if (st != TL_OK)
        return tl_cli_fail(cli, m, st, NULL);
    if (n == 0) {
        *is_free = true;
        return TL_EXIT_NOTOWNER;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(hs[i]->worker_id, tl_manager_worker_id(m)) == 0) {
            mine++;
            *token = hs[i]->token;
        }
    }
    const struct tl_info *info = hs[0];
    if (mine > 1) {
        /* Several shared holds of this worker: the token says which. */
        tl_cli_error(cli,
                     "%s is held shared %zu times by this worker (%s): say which with --token N "
                     "('tasklock status %s' lists the tokens)",
                     key, mine, tl_manager_worker_id(m), key);
        rc = TL_EXIT_USAGE;
    } else if (mine == 0) {
        /* A token identifies a lock only together with its worker id: --token alone cannot
         * reach another worker's lock. */
        if (strcmp(cli->cmd, "release") == 0)
            tl_cli_error(cli,
                         "%s is held by %s (token %llu), not by this worker (%s): release it as "
                         "that worker (--worker %s), or break it with 'tasklock release %s "
                         "--force'",
                         key, info->worker_id, (unsigned long long)info->token,
                         tl_manager_worker_id(m), info->worker_id, key);
        else
            tl_cli_error(cli,
                         "%s is held by %s (token %llu), not by this worker (%s): only its holder "
                         "may %s it (--worker %s)",
                         key, info->worker_id, (unsigned long long)info->token,
                         tl_manager_worker_id(m), cli->cmd, info->worker_id);
        rc = TL_EXIT_NOTOWNER;
    }
    tl_info_array_free(hs, n);
    return rc;
}

const char *tl_cli_strerror(int err, char buf[128])
{
    if (strerror_r(err, buf, 128) != 0) /* the XSI strerror_r: thread-safe */
        (void)snprintf(buf, 128, "error %d", err);
    return buf;
}

int tl_cli_no_args(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS, {0}};

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        int rc = tl_cli_global_opt(cli, opt, optarg, argv);
        if (rc >= 0)
            return rc;
    }
    if (optind != argc)
        return tl_cli_usage_error(cli, "takes no arguments (\"%s\")", argv[optind]);
    return -1;
}
