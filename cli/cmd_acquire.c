/*
 * cmd_acquire.c -- `tasklock acquire KEY`: take a lock and print its fencing token.
 *
 * The lock outlives the process: nothing heartbeats it once the command exits, so it goes stale
 * after its lock timeout unless `tasklock renew` is called. The acquire options are shared with
 * `tasklock run` (tl_cli_acquire_opt below).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void tl_cli_acquire_init(struct tl_cli_acquire *a, tl_strategy strategy)
{
    memset(a, 0, sizeof(*a));
    a->opts.strategy = strategy;
    /* Inside `tasklock run` (or `work`): the enclosing lock is held for this process, and the
     * deadlock check must know it (child.c sets it). */
    a->opts.holding = getenv("TASKLOCK_HOLDING"); /* NOLINT(concurrency-mt-unsafe): no threads */
    if (a->opts.holding != NULL && a->opts.holding[0] == '\0')
        a->opts.holding = NULL;
}

void tl_cli_acquire_fini(struct tl_cli_acquire *a)
{
    json_decref(a->info);
    free(a->info_text);
    memset(a, 0, sizeof(*a));
}

static const struct {
    const char *name;
    tl_strategy strategy;
} strategies[] = {
    {"retry", TL_RETRY},
    {"fail-fast", TL_FAIL_FAST},
    {"steal-stale", TL_STEAL_STALE},
    {"force", TL_FORCE_ACQUIRE},
};

const char *tl_cli_strategy_name(tl_strategy s)
{
    for (size_t i = 0; i < sizeof(strategies) / sizeof(strategies[0]); i++) {
        if (strategies[i].strategy == s)
            return strategies[i].name;
    }
    return "?";
}

static int add_info(const struct tl_cli *cli, struct tl_cli_acquire *a, const char *arg)
{
    const char *eq = strchr(arg, '=');

    if (eq == NULL || eq == arg)
        return tl_cli_usage_error(cli, "--info: \"%s\" is not NAME=VALUE", arg);
    if (a->info == NULL && (a->info = json_object()) == NULL) {
        tl_cli_error(cli, "out of memory");
        return TL_EXIT_STORE;
    }

    size_t n = (size_t)(eq - arg);
    char name[256];
    if (n >= sizeof(name))
        return tl_cli_usage_error(cli, "--info: the name is longer than %zu bytes",
                                  sizeof(name) - 1);
    memcpy(name, arg, n);
    name[n] = '\0';
    if (json_object_get(a->info, name) != NULL)
        return tl_cli_usage_error(cli, "--info: \"%s\" is given twice", name);

    json_t *value = json_string(eq + 1);
    if (value == NULL || json_object_set_new(a->info, name, value) != 0)
        return tl_cli_usage_error(cli, "--info: \"%s\" is not valid UTF-8 text", arg);
    return -1;
}

int tl_cli_acquire_opt(const struct tl_cli *cli, struct tl_cli_acquire *a, int opt, const char *arg)
{
    uint64_t v;
    uint32_t ms;

    switch (opt) {
    case TL_OPT_STRATEGY:
        for (size_t i = 0; i < sizeof(strategies) / sizeof(strategies[0]); i++) {
            if (strcmp(arg, strategies[i].name) == 0) {
                a->opts.strategy = strategies[i].strategy;
                return -1;
            }
        }
        return tl_cli_usage_error(cli,
                                  "--strategy: unknown strategy \"%s\" (retry, fail-fast, "
                                  "steal-stale or force)",
                                  arg);
    case TL_OPT_RETRIES:
        if (!tl_cli_uint(cli, "--retries", arg, 0, 1000000, &v))
            return TL_EXIT_USAGE;
        a->opts.retries = v == 0 ? TL_NO_RETRIES : (int32_t)v;
        return -1;
    case TL_OPT_WAIT:
        if (strcmp(arg, "0") == 0) { /* like flock -w 0: one attempt */
            a->no_wait = true;
            return -1;
        }
        if (!tl_cli_duration(cli, "--wait", arg, &ms))
            return TL_EXIT_USAGE;
        a->opts.deadline_ms = ms;
        a->no_wait = false;
        return -1;
    case TL_OPT_LOCK_TIMEOUT:
        if (!tl_cli_duration(cli, "--lock-timeout", arg, &ms))
            return TL_EXIT_USAGE;
        a->opts.lock_timeout_ms = ms;
        return -1;
    case TL_OPT_INFO: return add_info(cli, a, arg);
    case TL_OPT_PRIORITY: {
        char *end = NULL;
        errno = 0;
        long p = strtol(arg, &end, 10);
        if (errno != 0 || end == arg || *end != '\0' || p < TL_PRIORITY_MIN || p > TL_PRIORITY_MAX)
            return tl_cli_usage_error(cli, "--priority: \"%s\" is not a whole number from %d to %d",
                                      arg, TL_PRIORITY_MIN, TL_PRIORITY_MAX);
        a->opts.priority = (int32_t)p;
        return -1;
    }
    case TL_OPT_SHARED: a->opts.mode = TL_SHARED; return -1;
    case TL_OPT_SLOTS:
        if (!tl_cli_uint(cli, "--slots", arg, 1, TL_SLOTS_MAX, &v))
            return TL_EXIT_USAGE;
        a->opts.slots = (uint32_t)v;
        a->opts.mode = TL_SHARED;
        return -1;
    default: return 0;
    }
}

/* Whether `text` is "KEY TOKEN KEY TOKEN ..." (the library checks the keys themselves). */
static bool holding_ok(const char *text)
{
    bool want_key = true;
    size_t words = 0;

    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, " ");
        if (n == 0)
            return false;
        if (!want_key && strspn(p, "0123456789") != n)
            return false;
        want_key = !want_key;
        words++;
        p += n;
        if (*p == ' ')
            p++;
    }
    return words > 0 && want_key && strlen(text) <= 2048;
}

int tl_cli_acquire_finish(const struct tl_cli *cli, struct tl_cli_acquire *a)
{
    if (a->opts.holding != NULL && !holding_ok(a->opts.holding))
        return tl_cli_usage_error(cli,
                                  "TASKLOCK_HOLDING: \"%.80s\" is not what 'tasklock run' sets "
                                  "(KEY TOKEN pairs): unset it",
                                  a->opts.holding);
    if (a->no_wait && a->opts.retries == 0) {
        a->opts.retries = TL_NO_RETRIES;
        a->opts.deadline_ms = 0;
    }
    if (a->info != NULL) {
        a->info_text = json_dumps(a->info, JSON_COMPACT);
        if (a->info_text == NULL) {
            tl_cli_error(cli, "out of memory");
            return TL_EXIT_STORE;
        }
        a->opts.task_info = a->info_text;
    }
    return TL_EXIT_OK;
}

static volatile sig_atomic_t cancel_flag; /* set by the handler below: one acquire at a time */
static volatile sig_atomic_t cancel_signal;
static const int cancel_signals[] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction cancel_saved[3];

static void on_cancel_signal(int sig)
{
    cancel_signal = sig;
    cancel_flag = 1;
}

void tl_cli_cancel_begin(struct tl_cli_acquire *a)
{
    struct sigaction sa;

    cancel_flag = 0;
    cancel_signal = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_cancel_signal;
    (void)sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < 3; i++)
        (void)sigaction(cancel_signals[i], &sa, &cancel_saved[i]);
    a->opts.cancel = &cancel_flag;
}

int tl_cli_cancel_end(struct tl_cli_acquire *a)
{
    for (size_t i = 0; i < 3; i++)
        (void)sigaction(cancel_signals[i], &cancel_saved[i], NULL);
    a->opts.cancel = NULL;
    return cancel_signal != 0 ? 128 + cancel_signal : 0;
}

const char *tl_cli_busy_hint(const struct tl_cli_acquire *a, tl_manager *m, const char *key,
                             char *buf, size_t size)
{
    const struct tl_info *h = tl_last_holder(m);
    const char *hint;

    if (h != NULL && strcmp(h->worker_id, tl_manager_worker_id(m)) == 0) {
        (void)snprintf(buf, size,
                       "that is this worker id: locks are not re-entrant, so a lock held by %s is "
                       "held for %s too; release it first ('tasklock release %s'), or give each "
                       "worker its own --worker ID",
                       h->worker_id, h->worker_id, key);
        return buf;
    }
    if (h != NULL && h->stale && a->opts.strategy != TL_STEAL_STALE)
        hint = "its holder is stale: --strategy steal-stale takes it";
    else if (a->no_wait || a->opts.strategy == TL_FAIL_FAST || a->opts.retries == TL_NO_RETRIES)
        hint = "try again later, or wait for it with --wait DURATION";
    else if (a->opts.deadline_ms != 0 && a->opts.retries > 0)
        hint = "--retries ran out before --wait did: leave --retries out to retry until --wait "
               "ends";
    else if (a->opts.deadline_ms != 0)
        hint = "it was still held when --wait ran out: wait longer with a larger --wait";
    else
        hint = "its retries ran out: wait longer with --wait DURATION";
    (void)snprintf(buf, size, "%s", hint);
    return buf;
}

json_t *tl_cli_lock_json(const char *key, const char *metadata, bool with_stale, bool stale)
{
    json_t *meta = metadata != NULL ? json_loads(metadata, 0, NULL) : NULL;
    json_t *lock = json_object_get(meta, "lock");
    json_t *doc = NULL;

    if (json_is_object(lock) &&
        (!with_stale || json_object_set_new(lock, "stale", json_boolean(stale)) == 0))
        doc = json_pack("{s:s, s:O}", "key", key, "lock", lock); /* "key" first, for people */
    json_decref(meta);
    return doc;
}

static const char help[] =
    "Acquires the lock of KEY and prints its fencing token on one line.\n"
    "\n"
    "Nothing heartbeats the lock after this command exits: it goes stale after its lock\n"
    "timeout (default 5m) unless 'tasklock renew KEY' is called in time, and a stale lock\n"
    "can be stolen. Release it with 'tasklock release KEY'. To hold a lock while a command\n"
    "runs, with heartbeats, use 'tasklock run' instead.\n"
    "\n"
    "Options:\n"
    "  --strategy S          what to do when KEY is held: retry (default; back off and try\n"
    "                        again, never steal), fail-fast (one attempt), steal-stale (retry,\n"
    "                        and take the lock if its holder is stale), force (take it now)\n"
    "  --retries N           attempts after the first (default 5; 0: one attempt)\n"
    "  --wait DURATION       give up after this long (0: one attempt); with no --retries,\n"
    "                        retry until then\n"
    "  --lock-timeout DURATION\n"
    "                        stale this long after the last heartbeat (default 5m)\n"
    "  --info NAME=VALUE     record NAME=VALUE in the lock's task info (repeatable)\n"
    "  --priority N          place in KEY's line while waiting: higher first, then arrival\n"
    "                        (-1000 to 1000, default 0; GitHub: 0 only)\n"
    "  --shared              hold KEY beside other shared holders (readers): any number\n"
    "                        of them, never beside an exclusive holder; a shared acquire\n"
    "                        arriving after a waiting exclusive one waits behind it\n"
    "  --slots N             KEY is a semaphore of N slots: shared, at most N holders at\n"
    "                        once (1 to 100000); every holder must give the same N\n"
    "\n"
    "While it waits, the command stands in KEY's line: a released lock goes to the first in\n"
    "line, never to a newcomer. Interrupted (SIGINT, SIGTERM, SIGHUP), it leaves the line and\n"
    "exits 128 + the signal's number.\n"
    "\n"
    "If the token cannot be written to standard output (a full disk, a closed pipe), the\n"
    "lock is released again and the command exits 3: a lock whose token no one saw would\n"
    "stay held, unseen, for its lock timeout.\n"
    "\n"
    "Exit status: 0 acquired, 1 held by another worker (or by this same worker id: locks\n"
    "are not re-entrant), 2 usage error, 3 store error or the token not written.\n";

/*
 * The token could not be written: no one will ever release this lock by it, and a caller that
 * reads a non-zero exit as "not acquired" would leave it held, unseen, for the lock timeout.
 * Release it, and say so.
 */
int tl_cli_undelivered(const struct tl_cli *cli, tl_manager *m, const char *key, tl_lock *lock,
                       const char *why)
{
    uint64_t token = tl_lock_token(lock);

    cli->outcome->stdout_failed = true;
    tl_status st = tl_release(lock, "its token could not be written to standard output");
    if (st == TL_OK)
        tl_cli_error(cli,
                     "cannot write the token to standard output: %s; released %s (token %llu) "
                     "again, so that it is not held unseen",
                     why, key, (unsigned long long)token);
    else
        tl_cli_error(cli,
                     "cannot write the token to standard output: %s; and could not release %s "
                     "(token %llu) again: %s; it goes stale after its lock timeout",
                     why, key, (unsigned long long)token, tl_errmsg(m));
    return TL_EXIT_STORE;
}

static int run_acquire(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS, TL_CLI_ACQUIRE_LONGOPTS, {0}};
    struct tl_cli_acquire a;
    tl_manager *m = NULL;
    tl_lock *lock = NULL;
    int rc;

    tl_cli_acquire_init(&a, TL_RETRY);
    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        rc = tl_cli_acquire_opt(cli, &a, opt, optarg);
        if (rc == 0)
            rc = tl_cli_global_opt(cli, opt, optarg, argv);
        if (rc >= 0)
            goto out;
    }
    if (argc - optind != 1) {
        rc = tl_cli_usage_error(cli, argc == optind ? "give the KEY to acquire"
                                                    : "give one KEY, not more");
        goto out;
    }
    const char *key = argv[optind];
    if (!tl_cli_key(cli, key)) {
        rc = TL_EXIT_USAGE;
        goto out;
    }
    if ((rc = tl_cli_acquire_finish(cli, &a)) != TL_EXIT_OK)
        goto out;

    const struct tl_options o = {.lock_timeout_ms = a.opts.lock_timeout_ms};
    if ((rc = tl_cli_connect(cli, &o, &m)) != TL_EXIT_OK)
        goto out;

    tl_cli_cancel_begin(&a);
    tl_status st = tl_acquire(m, key, &a.opts, &lock);
    int sig_rc = tl_cli_cancel_end(&a);
    if (st == TL_ECANCELED) {
        tl_cli_error(cli, "%s", tl_errmsg(m));
        rc = sig_rc ? sig_rc : TL_EXIT_BUSY;
        goto out;
    }
    if (st != TL_OK) {
        char hint[512];

        rc = tl_cli_fail(cli, m, st,
                         st == TL_EBUSY ? tl_cli_busy_hint(&a, m, key, hint, sizeof(hint)) : NULL);
        goto out;
    }

    tl_cli_info(cli, "acquired %s with token %llu (strategy %s)", key,
                (unsigned long long)tl_lock_token(lock), tl_cli_strategy_name(a.opts.strategy));
    /* A closed pipe must be an error to handle (below), not a SIGPIPE that kills us with the
     * lock held. */
    (void)signal(SIGPIPE, SIG_IGN);
    if (cli->json) {
        char *meta = tl_lock_metadata(lock);

        rc = tl_cli_print_json(cli, tl_cli_lock_json(key, meta, false, false));
        tl_free(meta);
    } else {
        (void)printf("%llu\n", (unsigned long long)tl_lock_token(lock));
    }
    if (rc != TL_EXIT_OK) { /* the JSON document could not be made */
        rc = tl_cli_undelivered(cli, m, key, lock, "out of memory");
        goto out;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        char why[128];

        rc = tl_cli_undelivered(cli, m, key, lock, tl_cli_strerror(errno, why));
        goto out;
    }
    if (isatty(STDERR_FILENO)) {
        char timeout[32];

        tl_cli_format_age(a.opts.lock_timeout_ms ? a.opts.lock_timeout_ms : 300000, timeout,
                          sizeof(timeout));
        tl_cli_note(cli,
                    "%s is yours (token %llu); nothing heartbeats it now, so it goes stale in "
                    "%s unless you run 'tasklock renew %s'",
                    key, (unsigned long long)tl_lock_token(lock), timeout, key);
    }

out:
    tl_lock_free(lock); /* stops heartbeating it; the lock stays held in the store */
    tl_manager_free(m);
    tl_cli_acquire_fini(&a);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_acquire = {
    .name = "acquire",
    .usage = "acquire KEY [--strategy retry|fail-fast|steal-stale|force]\n"
             "    [--retries N] [--wait DURATION] [--lock-timeout DURATION] [--priority N]\n"
             "    [--shared | --slots N] [--info NAME=VALUE]...",
    .summary = "Acquire a lock and print its fencing token (no heartbeat after exit)",
    .help = help,
    .run = run_acquire,
};
