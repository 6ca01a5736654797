/*
 * test_cli.c -- drives the built `tasklock` binary: every command and exit code, `run` passing
 * through statuses and signals and stopping its whole process group when the lock is lost, bad
 * input of every kind, and the demo. Each test uses its own keys on one temporary SQLite store.
 * Waits on real time are bounded polls with short, explicit lock timeouts.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tasklock.h"
#include "tl_test.h"

#define MAX_ARGS 32
#define OUT_SIZE 65536
#define LIMIT_MS 60000 /* no single command may take longer than this */

static char *dir;        /* the temporary directory of this run */
static char store[700];  /* sqlite:DIR/cli.db */
static char binary[700]; /* DIR/tasklock */
/* Changes to the environment of the next commands: "NAME=VALUE" sets, "NAME" unsets. NULL
 * or a NULL-terminated list; tests that set it put it back to NULL. */
static const char *const *extra_env;

struct out {
    int code; /* exit status, or 128 + the signal that killed it */
    char out[OUT_SIZE];
    char err[OUT_SIZE];
};

/* A running `tasklock`. */
struct proc {
    pid_t pid;
    int out_fd, err_fd;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    (void)nanosleep(&ts, NULL);
}

static void path_in_dir(char *buf, size_t size, const char *name)
{
    (void)snprintf(buf, size, "%s/%s", dir, name);
}

/* Starts `tasklock ARGS...` (NULL-terminated) with TASKLOCK_STORE set to the test store and
 * TASKLOCK_WORKER=tester, and stdout/stderr on pipes. */
static struct proc start_v(const char *first, va_list ap)
{
    const char *argv[MAX_ARGS + 2] = {binary};
    int n = 1, out[2], err[2];
    struct proc p = {.pid = -1, .out_fd = -1, .err_fd = -1};

    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang 14 loses the caller's va_start */
    for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
        assert_true(n < MAX_ARGS);
        argv[n++] = a;
    }
    argv[n] = NULL;
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    p.pid = fork();
    assert_true(p.pid >= 0);
    if (p.pid == 0) {
        (void)dup2(out[1], STDOUT_FILENO);
        (void)dup2(err[1], STDERR_FILENO);
        (void)close(out[0]);
        (void)close(out[1]);
        (void)close(err[0]);
        (void)close(err[1]);
        /* The test is single-threaded: setenv after fork is safe here. */
        (void)setenv("TASKLOCK_STORE", store, 1);     /* NOLINT(concurrency-mt-unsafe) */
        (void)setenv("TASKLOCK_WORKER", "tester", 1); /* NOLINT(concurrency-mt-unsafe) */
        (void)setenv("TASKLOCK_NODE", "testnode", 1); /* NOLINT(concurrency-mt-unsafe) */
        for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL; i++) {
            const char *eq = strchr(extra_env[i], '=');
            char name[64];

            (void)snprintf(name, sizeof(name), "%.*s",
                           (int)(eq ? (size_t)(eq - extra_env[i]) : strlen(extra_env[i])),
                           extra_env[i]);
            if (eq != NULL)
                (void)setenv(name, eq + 1, 1); /* NOLINT(concurrency-mt-unsafe) */
            else
                (void)unsetenv(name); /* NOLINT(concurrency-mt-unsafe) */
        }
        /* A shell may start us with SIGINT ignored; the commands under test must not be. */
        (void)signal(SIGINT, SIG_DFL);
        (void)signal(SIGTERM, SIG_DFL);
        (void)signal(SIGHUP, SIG_DFL);
        execv(binary, (char *const *)argv);
        _exit(126);
    }
    (void)close(out[1]);
    (void)close(err[1]);
    p.out_fd = out[0];
    p.err_fd = err[0];
    return p;
}

/* Starts `tasklock FIRST ...` (NULL-terminated) in the background. */
static struct proc start(const char *first, ...)
{
    va_list ap;

    va_start(ap, first);
    struct proc p = start_v(first, ap);
    va_end(ap);
    return p;
}

/* Collects the output of `p` and waits for it; returns its exit code (128+N for signal N). */
static int finish(struct proc *p, struct out *o)
{
    size_t nout = 0, nerr = 0;
    int64_t end = mono_ms() + LIMIT_MS;

    memset(o, 0, sizeof(*o));
    while (p->out_fd >= 0 || p->err_fd >= 0) {
        struct pollfd fds[2] = {{.fd = p->out_fd, .events = POLLIN},
                                {.fd = p->err_fd, .events = POLLIN}};
        int left = (int)(end - mono_ms());

        if (left <= 0) {
            (void)kill(p->pid, SIGKILL);
            fail_msg("tasklock did not finish within %d ms", LIMIT_MS);
        }
        (void)poll(fds, 2, left);
        for (int i = 0; i < 2; i++) {
            int *fd = i == 0 ? &p->out_fd : &p->err_fd;
            char *buf = i == 0 ? o->out : o->err;
            size_t *len = i == 0 ? &nout : &nerr;

            if (*fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
                continue;
            char tmp[4096];
            ssize_t got = read(*fd, tmp, sizeof(tmp));
            if (got <= 0) {
                (void)close(*fd);
                *fd = -1;
                continue;
            }
            size_t keep = (size_t)got < OUT_SIZE - 1 - *len ? (size_t)got : OUT_SIZE - 1 - *len;
            memcpy(buf + *len, tmp, keep);
            *len += keep;
        }
    }

    int status;
    while (waitpid(p->pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    o->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return o->code;
}

/* Runs `tasklock FIRST ...` (NULL-terminated; FIRST NULL for no arguments) to the end;
 * returns its exit code. */
static int tlk(struct out *o, const char *first, ...)
{
    va_list ap;

    va_start(ap, first);
    struct proc p = start_v(first, ap);
    va_end(ap);
    return finish(&p, o);
}

/* The message format of every error: "tasklock: CMD: ...". */
static void assert_error(const struct out *o, const char *cmd)
{
    char prefix[64];

    (void)snprintf(prefix, sizeof(prefix), "tasklock: %s: ", cmd);
    if (strncmp(o->err, prefix, strlen(prefix)) != 0)
        fail_msg("stderr does not start with \"%s\": %s", prefix, o->err);
}

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("\"%s\" not found in: %s", part, text);
}

static json_t *parse_json(const char *text)
{
    json_error_t e;
    json_t *doc = json_loads(text, 0, &e);

    if (doc == NULL)
        fail_msg("not JSON (%s): %s", e.text, text);
    return doc;
}

static uint64_t token_of(const struct out *o)
{
    char *end;
    unsigned long long v = strtoull(o->out, &end, 10);

    if (end == o->out || strcmp(end, "\n") != 0)
        fail_msg("acquire printed more than a token: \"%s\"", o->out);
    return (uint64_t)v;
}

/* Reads a pid a command wrote to `path`, waiting for it up to 10 s. */
static pid_t read_pid(const char *path)
{
    int64_t deadline = mono_ms() + 10000;

    for (;;) {
        FILE *f = fopen(path, "r");
        char line[32] = "";

        if (f != NULL) {
            bool got = fgets(line, sizeof(line), f) != NULL;
            char *end;
            long pid = strtol(line, &end, 10);

            (void)fclose(f);
            if (got && end != line && *end == '\n' && pid > 0)
                return (pid_t)pid;
        }
        if (mono_ms() > deadline)
            fail_msg("no pid in %s after 10 s", path);
        sleep_ms(10);
    }
}

static bool process_gone(void *arg)
{
    pid_t pid = *(pid_t *)arg;

    return kill(pid, 0) != 0 && errno == ESRCH;
}

static void assert_gone(pid_t pid)
{
    if (!tl_test_poll(process_gone, &pid, 10, 5000))
        fail_msg("process %ld is still running", (long)pid);
}

/* ---- help, version, usage ---- */

static void help_and_version(void **state)
{
    static const char *const cmds[] = {"acquire", "release", "renew", "run",
                                       "status",  "list",    "log",   "demo"};
    struct out *o = *state;

    assert_int_equal(tlk(o, "--version", NULL), 0);
    assert_contains(o->out, "tasklock " TL_VERSION_STRING);
    assert_int_equal(tlk(o, "--help", NULL), 0);
    assert_contains(o->out, "Commands:");
    assert_int_equal(tlk(o, "help", NULL), 0);
    assert_contains(o->out, "demo");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char usage[64];

        (void)snprintf(usage, sizeof(usage), "usage: tasklock [global options] %s", cmds[i]);
        assert_int_equal(tlk(o, cmds[i], "--help", NULL), 0);
        assert_contains(o->out, usage);
        assert_int_equal(tlk(o, "help", cmds[i], NULL), 0);
        assert_contains(o->out, usage);
    }
    assert_int_equal(tlk(o, "acquire", "-h", NULL), 0);
    assert_contains(o->out, "renew"); /* the help says nothing heartbeats after exit */
    assert_int_equal(tlk(o, "help", "nosuch", NULL), 2);
    assert_error(o, "help");
}

static void usage_errors(void **state)
{
    struct out *o = *state;
    char overlong[300], file[800], url[900];

    memset(overlong, 'k', 256);
    overlong[256] = '\0';

    assert_int_equal(tlk(o, NULL), 2);
    assert_contains(o->err, "tasklock: no command given");
    assert_int_equal(tlk(o, "nosuch", NULL), 2);
    assert_contains(o->err, "unknown command \"nosuch\"");
    assert_int_equal(tlk(o, "--bogus", "list", NULL), 2);
    assert_contains(o->err, "unknown option \"--bogus\"");

    /* Unknown flags, per command. */
    assert_int_equal(tlk(o, "acquire", "k", "--bogus", NULL), 2);
    assert_error(o, "acquire");
    assert_contains(o->err, "--bogus");
    assert_int_equal(tlk(o, "status", "-x", "k", NULL), 2);
    assert_error(o, "status");
    assert_int_equal(tlk(o, "run", "k", "--bogus", "--", "true", NULL), 2);
    assert_error(o, "run");

    /* Bad values. */
    assert_int_equal(tlk(o, "acquire", "k", "--wait", "soon", NULL), 2);
    assert_contains(o->err, "not a duration");
    assert_int_equal(tlk(o, "acquire", "k", "--lock-timeout", "0", NULL), 2);
    assert_int_equal(tlk(o, "acquire", "k", "--lock-timeout", "25d", NULL), 2);
    assert_int_equal(tlk(o, "run", "k", "--heartbeat", "-1s", "--", "true", NULL), 2);
    assert_int_equal(tlk(o, "run", "k", "--kill-after", "1x", "--", "true", NULL), 2);
    assert_int_equal(tlk(o, "acquire", "k", "--retries", "many", NULL), 2);
    assert_int_equal(tlk(o, "acquire", "k", "--strategy", "polite", NULL), 2);
    assert_contains(o->err, "steal-stale");
    assert_int_equal(tlk(o, "acquire", "k", "--info", "novalue", NULL), 2);
    assert_int_equal(tlk(o, "acquire", "k", "--info", "=v", NULL), 2);
    assert_int_equal(tlk(o, "acquire", "k", "--info", "a=1", "--info", "a=2", NULL), 2);
    assert_int_equal(tlk(o, "acquire", "k", "--wait", NULL), 2);
    assert_contains(o->err, "needs a value");
    assert_int_equal(tlk(o, "run", "k", "-E", "256", "--", "true", NULL), 2);
    assert_int_equal(tlk(o, "release", "k", "--token", "x1", NULL), 2);
    assert_int_equal(tlk(o, "log", "--limit", "0", NULL), 2);
    assert_int_equal(tlk(o, "demo", "--workers", "0", NULL), 2);
    assert_int_equal(tlk(o, "demo", "--crash", "--workers", "1", NULL), 2);

    /* Keys. */
    assert_int_equal(tlk(o, "acquire", "", NULL), 2);
    assert_contains(o->err, "empty");
    assert_int_equal(tlk(o, "acquire", overlong, NULL), 2);
    assert_contains(o->err, "256 bytes");
    assert_int_equal(tlk(o, "status", "two words", NULL), 2);
    assert_int_equal(tlk(o, "acquire", NULL), 2);
    assert_int_equal(tlk(o, "acquire", "a", "b", NULL), 2);

    /* run needs "--" and a command. */
    assert_int_equal(tlk(o, "run", "k", "true", NULL), 2);
    assert_contains(o->err, "put --");
    assert_int_equal(tlk(o, "run", "k", "--", NULL), 2);
    assert_int_equal(tlk(o, "run", "--", "true", NULL), 2);

    /* Stores: unknown scheme (2), not built or unreachable or unwritable (3), bad ids (2). */
    assert_int_equal(tlk(o, "--store", "nosuch://x", "list", NULL), 2);
    assert_error(o, "list");
    assert_contains(o->err, "unknown scheme");
    assert_int_equal(tlk(o, "--store", "no-scheme-at-all", "list", NULL), 2);
    path_in_dir(file, sizeof(file), "a-file");
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    (void)fclose(f);
    (void)snprintf(url, sizeof(url), "sqlite:%s/x.db", file); /* under a file: cannot exist */
    assert_int_equal(tlk(o, "--store", url, "acquire", "k", NULL), 3);
    assert_error(o, "acquire");
    assert_contains(o->err, "sqlite");
    assert_int_equal(tlk(o, "--store", "sqlite:/proc/1/no/x.db", "status", "k", NULL), 3);
    assert_int_equal(tlk(o, "--worker", "has space", "acquire", "k", NULL), 2);
    assert_contains(o->err, "worker id");
}

/* ---- acquire, release, renew ---- */

static void acquire_prints_token_and_conflicts(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "acquire", "a1", NULL), 0);
    uint64_t first = token_of(o);
    assert_true(first >= 1);
    assert_string_equal(o->err, "");

    /* Held, whoever asks: another worker, and this same worker id. */
    assert_int_equal(tlk(o, "-w", "other", "acquire", "a1", "--strategy", "fail-fast", NULL), 1);
    assert_error(o, "acquire");
    assert_contains(o->err, "held by tester");
    assert_string_equal(o->out, "");
    assert_int_equal(tlk(o, "acquire", "a1", "--wait", "0", NULL), 1);
    assert_int_equal(tlk(o, "acquire", "a1", "--retries", "0", NULL), 1);
    int64_t t0 = mono_ms();
    assert_int_equal(tlk(o, "acquire", "a1", "--wait", "300ms", NULL), 1);
    assert_true(mono_ms() - t0 >= 250);

    /* Options after the key and global options after the command both work. */
    assert_int_equal(tlk(o, "release", "a1", "-q", NULL), 0);
    assert_int_equal(tlk(o, "acquire", "a1", "--info", "job=build", "-w", "w2", NULL), 0);
    assert_true(token_of(o) > first);
    assert_int_equal(tlk(o, "-w", "w2", "--json", "status", "a1", NULL), 0);
    json_t *doc = parse_json(o->out);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(doc, "lock"), "task_info"), "job")),
                        "build");
    json_decref(doc);
}

static void release_and_renew(void **state)
{
    struct out *o = *state;
    char tok[32], wrong[32];

    assert_int_equal(tlk(o, "acquire", "r1", NULL), 0);
    uint64_t token = token_of(o);
    (void)snprintf(tok, sizeof(tok), "%llu", (unsigned long long)token);
    (void)snprintf(wrong, sizeof(wrong), "%llu", (unsigned long long)token + 7);

    /* Not the owner: another worker, or the wrong token. */
    assert_int_equal(tlk(o, "-w", "other", "release", "r1", NULL), 4);
    assert_error(o, "release");
    assert_contains(o->err, "held by tester");
    assert_int_equal(tlk(o, "-w", "other", "renew", "r1", NULL), 4);
    assert_error(o, "renew");
    assert_int_equal(tlk(o, "release", "r1", "--token", wrong, NULL), 4);
    assert_int_equal(tlk(o, "renew", "r1", "--token", wrong, NULL), 4);

    /* The owner renews, by its own token or the one it holds. */
    assert_int_equal(tlk(o, "renew", "r1", NULL), 0);
    assert_string_equal(o->out, "");
    assert_int_equal(tlk(o, "renew", "r1", "--token", tok, "--json", NULL), 0);
    json_t *doc = parse_json(o->out);
    assert_true(json_is_true(json_object_get(doc, "renewed")));
    json_decref(doc);

    assert_int_equal(tlk(o, "release", "r1", "--summary", "all done", NULL), 0);
    /* Released: releasing again is fine, with its token or without (see below). */
    assert_int_equal(tlk(o, "release", "r1", "--token", tok, NULL), 0);
    assert_int_equal(tlk(o, "renew", "r1", NULL), 4);
    assert_int_equal(tlk(o, "renew", "r1", "--token", tok, NULL), 4);
    assert_int_equal(tlk(o, "release", "never-held", NULL), 4);
    assert_int_equal(tlk(o, "release", "never-held", "--token", "1", NULL), 4);

    assert_int_equal(tlk(o, "log", "r1", NULL), 0);
    assert_contains(o->out, "released");
    assert_contains(o->out, "all done");
}

static void status_list_log(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "status", "s1", NULL), 0);
    assert_contains(o->out, "s1 is free");
    assert_int_equal(tlk(o, "--json", "status", "s1", NULL), 0);
    json_t *doc = parse_json(o->out);
    assert_true(json_is_false(json_object_get(doc, "held")));
    assert_true(json_is_null(json_object_get(doc, "lock")));
    json_decref(doc);

    assert_int_equal(tlk(o, "acquire", "s1", "--lock-timeout", "10m", NULL), 0);
    uint64_t token = token_of(o);
    assert_int_equal(tlk(o, "status", "s1", NULL), 0);
    assert_contains(o->out, "holder:         tester");
    assert_contains(o->out, "node:           testnode");
    assert_contains(o->out, "last heartbeat:");
    assert_contains(o->out, "ago)");
    assert_contains(o->out, "lock timeout:   10m00s");
    assert_contains(o->out, "state:          held");

    assert_int_equal(tlk(o, "status", "s1", "--json", NULL), 0);
    doc = parse_json(o->out);
    json_t *lock = json_object_get(doc, "lock");
    assert_string_equal(json_string_value(json_object_get(doc, "key")), "s1");
    assert_true(json_is_true(json_object_get(doc, "held")));
    assert_string_equal(json_string_value(json_object_get(lock, "worker_id")), "tester");
    assert_string_equal(json_string_value(json_object_get(lock, "node_id")), "testnode");
    assert_int_equal(json_integer_value(json_object_get(lock, "token")), token);
    assert_true(json_is_string(json_object_get(lock, "claimed_at")));
    assert_true(json_is_string(json_object_get(lock, "heartbeat_last")));
    assert_true(json_is_object(json_object_get(lock, "task_info")));
    assert_true(json_is_false(json_object_get(lock, "stale")));
    json_decref(doc);

    assert_int_equal(tlk(o, "list", NULL), 0);
    assert_contains(o->out, "KEY");
    assert_contains(o->out, "s1");
    assert_int_equal(tlk(o, "list", "--json", NULL), 0);
    doc = parse_json(o->out);
    json_t *locks = json_object_get(doc, "locks");
    assert_true(json_is_array(locks));
    bool found = false;
    for (size_t i = 0; i < json_array_size(locks); i++)
        found = found || strcmp(json_string_value(json_object_get(json_array_get(locks, i), "key")),
                                "s1") == 0;
    assert_true(found);
    json_decref(doc);
    assert_int_equal(tlk(o, "list", "extra", NULL), 2);

    assert_int_equal(tlk(o, "release", "s1", NULL), 0);
    assert_int_equal(tlk(o, "log", "s1", "--json", NULL), 0);
    doc = parse_json(o->out);
    json_t *events = json_object_get(doc, "events");
    assert_int_equal(json_array_size(events), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(events, 0), "event")),
                        "acquired");
    assert_string_equal(json_string_value(json_object_get(json_array_get(events, 1), "event")),
                        "released");
    json_decref(doc);
    assert_int_equal(tlk(o, "log", "--limit", "1", NULL), 0);
    assert_contains(o->out, "released");
    assert_int_equal(tlk(o, "log", "nothing-here", NULL), 0);
    assert_contains(o->out, "no events");
}

static bool is_stale(void *arg)
{
    struct out *o = arg;

    return tlk(o, "--json", "status", "st1", NULL) == 0 && strstr(o->out, "\"stale\":true");
}

static void stale_steal_and_force(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "acquire", "st1", "--lock-timeout", "1s", NULL), 0);
    uint64_t first = token_of(o);
    /* A live lock is not stolen: steal-stale waits, then gives up. */
    assert_int_equal(
        tlk(o, "-w", "thief", "acquire", "st1", "--strategy", "steal-stale", "--wait", "0", NULL),
        1);
    /* Nothing heartbeats a lock taken by `acquire`: it goes stale after its timeout. */
    assert_true(tl_test_poll(is_stale, o, 100, 10000));
    assert_int_equal(tlk(o, "status", "st1", NULL), 0);
    assert_contains(o->out, "STALE");
    assert_int_equal(tlk(o, "list", NULL), 0);
    assert_contains(o->out, "STALE");
    /* Still held: a normal acquire does not take it. */
    assert_int_equal(tlk(o, "-w", "thief", "acquire", "st1", "--strategy", "fail-fast", NULL), 1);
    assert_contains(o->err, "steal-stale"); /* the hint says how */
    assert_int_equal(tlk(o, "-w", "thief", "acquire", "st1", "--strategy", "steal-stale", NULL), 0);
    uint64_t stolen = token_of(o);
    assert_true(stolen > first);
    /* The former holder has lost it. */
    assert_int_equal(tlk(o, "renew", "st1", NULL), 4);
    assert_int_equal(tlk(o, "log", "st1", NULL), 0);
    assert_contains(o->out, "stolen");

    /* force takes a live lock. */
    assert_int_equal(tlk(o, "-w", "admin", "acquire", "st1", "--strategy", "force", NULL), 0);
    assert_true(token_of(o) > stolen);
    assert_int_equal(tlk(o, "-w", "thief", "release", "st1", NULL), 4);
    assert_int_equal(tlk(o, "log", "st1", NULL), 0);
    assert_contains(o->out, "forced");
    assert_int_equal(tlk(o, "-w", "admin", "release", "st1", NULL), 0);
}

static void store_option_beats_environment(void **state)
{
    struct out *o = *state;
    char url[800], other[760];

    path_in_dir(other, sizeof(other), "other.db");
    (void)snprintf(url, sizeof(url), "sqlite:%s", other);
    assert_int_equal(tlk(o, "--store", url, "acquire", "env1", NULL), 0);
    assert_int_equal(tlk(o, "status", "env1", NULL), 0); /* $TASKLOCK_STORE: another file */
    assert_contains(o->out, "free");
    assert_int_equal(tlk(o, "-s", url, "status", "env1", NULL), 0);
    assert_contains(o->out, "tester");
}

static void stdout_write_error_is_reported(void **state)
{
    int full = open("/dev/full", O_WRONLY);

    (void)state;
    if (full < 0)
        skip();
    /* finish() reads stdout through a pipe; start this one by hand with stdout on /dev/full. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)dup2(full, STDOUT_FILENO);
        (void)setenv("TASKLOCK_STORE", store, 1); /* NOLINT(concurrency-mt-unsafe) */
        execl(binary, binary, "-w", "tester", "status", "w1", (char *)NULL);
        _exit(126);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    (void)close(full);
}

/* Runs `tasklock -w tester CMD KEY` with stdout on `fd`; returns its exit code. */
static int run_with_stdout(int fd, const char *cmd, const char *key, char *err, size_t errsize)
{
    int errpipe[2];

    assert_int_equal(pipe(errpipe), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)dup2(fd, STDOUT_FILENO);
        (void)dup2(errpipe[1], STDERR_FILENO);
        (void)close(errpipe[0]);
        (void)signal(SIGPIPE, SIG_DFL);           /* as a shell would start it */
        (void)setenv("TASKLOCK_STORE", store, 1); /* NOLINT(concurrency-mt-unsafe) */
        execl(binary, binary, "-w", "tester", cmd, key, (char *)NULL);
        _exit(126);
    }
    (void)close(errpipe[1]);
    size_t n = 0;
    ssize_t got;
    while (n < errsize - 1 && (got = read(errpipe[0], err + n, errsize - 1 - n)) > 0)
        n += (size_t)got;
    err[n] = '\0';
    (void)close(errpipe[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A token that cannot be delivered is a lock no one would ever release: it is released again,
 * and the exit status says the acquire failed. */
static void acquire_releases_a_token_it_cannot_print(void **state)
{
    struct out *o = *state;
    char err[4096];
    int full = open("/dev/full", O_WRONLY);

    if (full < 0)
        skip();
    assert_int_equal(run_with_stdout(full, "acquire", "undelivered", err, sizeof(err)), 3);
    (void)close(full);
    assert_contains(err, "cannot write the token to standard output");
    assert_contains(err, "released undelivered");
    assert_int_equal(tlk(o, "status", "undelivered", NULL), 0);
    assert_contains(o->out, "undelivered is free");
    assert_int_equal(tlk(o, "log", "undelivered", NULL), 0);
    assert_contains(o->out, "could not be written to standard output");

    /* A reader that went away (a closed pipe): the same, not a death by SIGPIPE. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    (void)close(fds[0]);
    assert_int_equal(run_with_stdout(fds[1], "acquire", "undelivered", err, sizeof(err)), 3);
    (void)close(fds[1]);
    assert_contains(err, "released undelivered");
    assert_int_equal(tlk(o, "status", "undelivered", NULL), 0);
    assert_contains(o->out, "undelivered is free");
}

/* The environment of a command that finds its default store by HOME alone. */
static const char *home_env[] = {"TASKLOCK_STORE", "TASKLOCK_DB", "XDG_STATE_HOME", NULL, NULL};

static void default_store_needs_a_home(void **state)
{
    struct out *o = *state;
    char home[900], file[800], expect[900];
    struct stat st;
    bool shared_existed = stat("/tmp/.local/state/tasklock", &st) == 0;

    /* No HOME, no XDG_STATE_HOME, no TASKLOCK_DB: refused, never a directory in /tmp that
     * every user would share. */
    home_env[3] = "HOME";
    extra_env = home_env;
    assert_int_equal(tlk(o, "acquire", "h1", NULL), 3);
    assert_error(o, "acquire");
    assert_contains(o->err, "HOME is not set");
    assert_contains(o->err, "TASKLOCK_DB");
    assert_contains(o->err, "XDG_STATE_HOME");
    assert_contains(o->err, "sqlite:PATH");
    if (!shared_existed)
        assert_int_not_equal(stat("/tmp/.local/state/tasklock", &st), 0);

    /* A default directory that cannot be made says how to go elsewhere. */
    path_in_dir(file, sizeof(file), "home-is-a-file");
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    (void)fclose(f);
    (void)snprintf(home, sizeof(home), "HOME=%s", file);
    home_env[3] = home;
    assert_int_equal(tlk(o, "list", NULL), 3);
    assert_contains(o->err, "cannot create the directory");
    assert_contains(o->err, "TASKLOCK_DB");
    assert_contains(o->err, "sqlite:PATH");

    /* With a HOME: the file under it, which `where` and -v name. */
    (void)snprintf(home, sizeof(home), "HOME=%s/home-1", dir);
    assert_int_equal(mkdir(home + 5, 0700), 0);
    assert_int_equal(tlk(o, "where", NULL), 0);
    (void)snprintf(expect, sizeof(expect),
                   "store:  sqlite:%s/home-1/.local/state/tasklock/locks.db (default)\n", dir);
    assert_contains(o->out, expect);
    assert_contains(o->out, "worker: tester\n");
    assert_int_equal(tlk(o, "--json", "where", NULL), 0);
    json_t *doc = parse_json(o->out);
    (void)snprintf(expect, sizeof(expect), "sqlite:%s/home-1/.local/state/tasklock/locks.db", dir);
    assert_string_equal(json_string_value(json_object_get(doc, "store")), expect);
    assert_string_equal(json_string_value(json_object_get(doc, "from")), "default");
    json_decref(doc);
    assert_int_equal(tlk(o, "list", NULL), 0);
    assert_contains(o->out, "no locks held in sqlite:");
    assert_contains(o->out, "/home-1/.local/state/tasklock/locks.db");
    extra_env = NULL;
}

/* -v says what each command did, and on which store. */
static void verbose_says_what_and_where(void **state)
{
    struct out *o = *state;
    char where[800];

    (void)snprintf(where, sizeof(where), "store %s, worker tester", store);
    assert_int_equal(tlk(o, "-v", "acquire", "v1", NULL), 0);
    assert_contains(o->err, where);
    assert_contains(o->err, "acquired v1 with token");
    assert_int_equal(tlk(o, "-v", "renew", "v1", NULL), 0);
    assert_contains(o->err, "renewed v1 (token");
    assert_int_equal(tlk(o, "-vv", "release", "v1", NULL), 0);
    assert_contains(o->err, where);
    assert_contains(o->err, "released v1 (token");
    assert_int_equal(tlk(o, "-v", "status", "v1", NULL), 0);
    assert_contains(o->err, "read the lock of v1: free");
    assert_int_equal(tlk(o, "-v", "log", "v1", NULL), 0);
    assert_contains(o->err, "read 2 events of v1");
    assert_int_equal(tlk(o, "-v", "list", NULL), 0);
    assert_contains(o->err, " held in sqlite:");
    /* Without -v, a quiet success. */
    assert_int_equal(tlk(o, "acquire", "v1", NULL), 0);
    assert_int_equal(tlk(o, "release", "v1", NULL), 0);
    assert_string_equal(o->err, "");
}

/* Releasing again without --token: fine when the audit trail's last event is this worker's
 * release (the retry of a release whose answer was lost), refused otherwise. */
static void release_again_without_token(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "acquire", "again1", NULL), 0);
    uint64_t token = token_of(o);
    assert_int_equal(tlk(o, "release", "again1", NULL), 0);
    assert_int_equal(tlk(o, "release", "again1", NULL), 0);
    assert_contains(o->err, "released by this worker already");
    assert_int_equal(tlk(o, "release", "again1", "--json", "-q", NULL), 0);
    json_t *doc = parse_json(o->out);
    assert_true(json_is_true(json_object_get(doc, "released")));
    assert_true(json_is_true(json_object_get(doc, "already")));
    assert_int_equal(json_integer_value(json_object_get(doc, "token")), token);
    json_decref(doc);
    assert_string_equal(o->err, "");

    /* Not when someone else held it since, nor for another worker. */
    assert_int_equal(tlk(o, "-w", "other", "release", "again1", NULL), 4);
    assert_contains(o->err, "not locked");
    assert_contains(o->err, "its last event: released by tester");
    assert_int_equal(tlk(o, "-w", "other", "acquire", "again1", NULL), 0);
    assert_int_equal(tlk(o, "-w", "other", "release", "again1", NULL), 0);
    assert_int_equal(tlk(o, "release", "again1", NULL), 4);
    assert_contains(o->err, "released by other");
    /* A key never locked has no trail at all. */
    assert_int_equal(tlk(o, "release", "never-locked", NULL), 4);
    assert_contains(o->err, "never-locked is not locked");
}

/* A lock held by another worker: say what works (that worker's id, or --force), not --token,
 * which cannot reach another worker's lock. */
static void not_the_owner_says_what_works(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "-w", "holder-w", "acquire", "own1", NULL), 0);
    assert_int_equal(tlk(o, "release", "own1", NULL), 4);
    assert_contains(o->err, "--worker holder-w");
    assert_contains(o->err, "tasklock release own1 --force");
    assert_true(strstr(o->err, "--token") == NULL);
    assert_int_equal(tlk(o, "renew", "own1", NULL), 4);
    assert_contains(o->err, "--worker holder-w");
    assert_true(strstr(o->err, "--token") == NULL);
    /* What it says works. */
    assert_int_equal(tlk(o, "-w", "holder-w", "release", "own1", NULL), 0);
}

static void release_force_breaks_a_lock(void **state)
{
    struct out *o = *state;
    char tok[32], wrong[32];

    assert_int_equal(tlk(o, "-w", "hung", "acquire", "brk1", NULL), 0);
    uint64_t token = token_of(o);
    (void)snprintf(tok, sizeof(tok), "%llu", (unsigned long long)token);
    (void)snprintf(wrong, sizeof(wrong), "%llu", (unsigned long long)token + 1);

    /* Only token N, if given: another holder is left alone. */
    assert_int_equal(tlk(o, "-w", "admin", "release", "brk1", "--force", "--token", wrong, NULL),
                     4);
    assert_contains(o->err, "held by hung");
    assert_int_equal(tlk(o, "status", "brk1", NULL), 0);
    assert_contains(o->out, "holder:         hung");

    assert_int_equal(tlk(o, "-w", "admin", "--json", "release", "brk1", "--force", "--token", tok,
                         "--summary", "hung worker cleared", NULL),
                     0);
    json_t *doc = parse_json(o->out);
    assert_true(json_is_true(json_object_get(doc, "released")));
    assert_true(json_is_true(json_object_get(doc, "forced")));
    json_t *holder = json_object_get(doc, "holder");
    assert_string_equal(json_string_value(json_object_get(holder, "worker_id")), "hung");
    assert_int_equal(json_integer_value(json_object_get(holder, "token")), token);
    json_decref(doc);
    assert_contains(o->err, "broke the lock of brk1: it was held by hung");

    assert_int_equal(tlk(o, "status", "brk1", NULL), 0);
    assert_contains(o->out, "brk1 is free");
    /* The holder has lost it: its renew and its release are refused. */
    assert_int_equal(tlk(o, "-w", "hung", "renew", "brk1", "--token", tok, NULL), 4);
    assert_int_equal(tlk(o, "-w", "hung", "release", "brk1", "--token", tok, NULL), 4);
    assert_int_equal(tlk(o, "-w", "hung", "release", "brk1", NULL), 4);
    assert_contains(o->err, "released by admin");

    /* The trail: forced, then released, by admin, with a token of its own. */
    assert_int_equal(tlk(o, "log", "brk1", "--json", NULL), 0);
    doc = parse_json(o->out);
    json_t *ev = json_object_get(doc, "events");
    size_t n = json_array_size(ev);
    assert_true(n >= 3);
    json_t *forced = json_array_get(ev, n - 2), *rel = json_array_get(ev, n - 1);
    assert_string_equal(json_string_value(json_object_get(forced, "event")), "forced");
    assert_string_equal(json_string_value(json_object_get(forced, "worker_id")), "admin");
    assert_contains(json_string_value(json_object_get(forced, "detail")), "from hung");
    assert_string_equal(json_string_value(json_object_get(rel, "event")), "released");
    assert_string_equal(json_string_value(json_object_get(rel, "detail")), "hung worker cleared");
    assert_true(json_integer_value(json_object_get(rel, "token")) > (json_int_t)token);
    json_decref(doc);

    /* A free key: nothing to break, not an error (a retry after success). */
    assert_int_equal(tlk(o, "-w", "admin", "release", "brk1", "--force", NULL), 0);
    assert_contains(o->err, "nothing to break");
}

/* With --json every failure is one document on stdout: {"error","exit","command",...}. */
static void json_errors_are_documents(void **state)
{
    struct out *o = *state;
    static const struct {
        const char *args[8];
        int code;
        const char *cmd;
    } cases[] = {
        {{"--json", "nosuch", NULL}, 2, "tasklock"},
        {{"acquire", "--bogus", "k", "--json", NULL}, 2, "acquire"},
        {{"--json", "acquire", "two words", NULL}, 2, "acquire"},
        {{"--json", "-s", "nosuch://x", "list", NULL}, 2, "list"},
        {{"--json", "-s", "sqlite:/proc/1/no/x.db", "status", "k", NULL}, 3, "status"},
        {{"--json", "release", "json-never", NULL}, 4, "release"},
        {{"--json", "renew", "json-never", NULL}, 4, "renew"},
        {{"--json", "log", "--limit", "0", NULL}, 2, "log"},
        {{"--json", "demo", "--workers", "0", NULL}, 2, "demo"},
        {{"--json", "run", "k", "--", NULL}, 2, "run"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const *a = cases[i].args;
        int code = tlk(o, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);

        if (code != cases[i].code)
            fail_msg("case %zu: exit %d, not %d: %s", i, code, cases[i].code, o->err);
        json_t *doc = parse_json(o->out);
        assert_int_equal(json_integer_value(json_object_get(doc, "exit")), cases[i].code);
        assert_string_equal(json_string_value(json_object_get(doc, "command")), cases[i].cmd);
        const char *error = json_string_value(json_object_get(doc, "error"));
        assert_non_null(error);
        assert_true(strlen(error) > 0);
        assert_contains(o->err, error); /* the same message as on stderr */
        json_decref(doc);
    }

    /* Held: the holder comes with it, for acquire and run (also with -q). */
    assert_int_equal(tlk(o, "-w", "json-holder", "acquire", "json1", NULL), 0);
    assert_int_equal(tlk(o, "--json", "acquire", "json1", "--wait", "0", NULL), 1);
    json_t *doc = parse_json(o->out);
    assert_int_equal(json_integer_value(json_object_get(doc, "exit")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "holder"), "worker_id")),
        "json-holder");
    json_decref(doc);
    assert_int_equal(
        tlk(o, "--json", "-q", "run", "json1", "--wait", "0", "-E", "9", "--", "true", NULL), 9);
    doc = parse_json(o->out);
    assert_int_equal(json_integer_value(json_object_get(doc, "exit")), 9);
    assert_non_null(json_object_get(doc, "holder"));
    json_decref(doc);
    assert_string_equal(o->err, "");
    /* Once run's command started, stdout is the command's: no document of ours. */
    assert_int_equal(tlk(o, "--json", "run", "json2", "--", "sh", "-c", "echo mine; exit 3", NULL),
                     3);
    assert_string_equal(o->out, "mine\n");
    assert_int_equal(tlk(o, "-w", "json-holder", "release", "json1", NULL), 0);
}

/* Hints for a held key follow what was asked. */
static void held_hints_fit_the_options(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "acquire", "hint1", NULL), 0);
    /* The holder is this same worker id. */
    assert_int_equal(tlk(o, "acquire", "hint1", "--wait", "0", NULL), 1);
    assert_contains(o->err, "that is this worker id: locks are not re-entrant");
    assert_contains(o->err, "tasklock release hint1");
    /* --wait was given: not "wait with --wait". */
    assert_int_equal(tlk(o, "-w", "other", "acquire", "hint1", "--wait", "200ms", NULL), 1);
    assert_contains(o->err, "still held when --wait ran out");
    assert_int_equal(tlk(o, "-w", "other", "acquire", "hint1", "--strategy", "fail-fast", NULL), 1);
    assert_contains(o->err, "wait for it with --wait DURATION");
    assert_int_equal(tlk(o, "release", "hint1", NULL), 0);
}

/* Values out of range say the same rule whatever they are; units are the ones accepted. */
static void option_values_say_their_rule(void **state)
{
    struct out *o = *state;
    char zero[512];

    assert_int_equal(tlk(o, "log", "--limit", "0", NULL), 2);
    (void)snprintf(zero, sizeof(zero), "%s", strstr(o->err, "is not a whole number"));
    assert_contains(zero, "from 1 to 1000000");
    assert_int_equal(tlk(o, "log", "--limit", "-1", NULL), 2);
    assert_contains(o->err, zero);
    assert_int_equal(tlk(o, "log", "--limit", "99999999999999999999999", NULL), 2);
    assert_contains(o->err, zero);
    assert_int_equal(tlk(o, "demo", "--workers", "65", NULL), 2);
    assert_contains(o->err, "from 1 to 64");

    assert_int_equal(tlk(o, "acquire", "k", "--wait", "25d", NULL), 2);
    assert_contains(o->err, "ms, s, m or h");
    assert_contains(o->err, "576h");
    assert_true(strstr(o->err, "day") == NULL);

    /* --kill-after 0: SIGKILL at once. */
    assert_int_equal(tlk(o, "run", "ka0", "--kill-after", "0", "--", "true", NULL), 0);
    /* An empty store URL is not "the default". */
    assert_int_equal(tlk(o, "-s", "", "list", NULL), 2);
    assert_contains(o->err, "--store: the URL is empty");
    assert_int_equal(tlk(o, "list", "--store=", NULL), 2);

    /* SQLite parameters: a known name with a bad value says what is allowed. */
    char url[800];
    (void)snprintf(url, sizeof(url), "%s?busy_timeout=abc", store);
    assert_int_equal(tlk(o, "-s", url, "list", NULL), 2);
    assert_contains(o->err, "busy_timeout=\"abc\" is not a number of milliseconds");
    assert_true(strstr(o->err, "unknown") == NULL);
    (void)snprintf(url, sizeof(url), "%s?synchronous=off", store);
    assert_int_equal(tlk(o, "-s", url, "list", NULL), 2);
    assert_contains(o->err, "synchronous=\"off\" is not allowed (full or normal");
}

/* Column of the end of `word` in the first line of `text` that has it; -1 if none. */
static int column_end(const char *text, const char *word, int line)
{
    const char *p = text;

    for (int i = 0; i < line && p != NULL; i++) {
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    if (p == NULL)
        return -1;
    const char *eol = strchr(p, '\n');
    const char *w = strstr(p, word);
    if (w == NULL || (eol != NULL && w > eol))
        return -1;
    return (int)(w - p + (ptrdiff_t)strlen(word));
}

/* 16-digit tokens (SQLite's and Redis's) fit the TOKEN column of list and log. */
static void list_and_log_fit_long_tokens(void **state)
{
    struct out *o = *state;
    char tok[32];

    assert_int_equal(tlk(o, "acquire", "wide1", NULL), 0);
    (void)snprintf(tok, sizeof(tok), "%llu", (unsigned long long)token_of(o));
    assert_true(strlen(tok) >= 16);
    assert_int_equal(tlk(o, "-s", store, "list", NULL), 0);
    int line = 1;
    while (column_end(o->out, "wide1", line) < 0)
        line++;
    assert_true(column_end(o->out, "TOKEN", 0) > 0);
    assert_int_equal(column_end(o->out, "TOKEN", 0), column_end(o->out, tok, line));
    assert_int_equal(tlk(o, "log", "wide1", NULL), 0);
    assert_int_equal(column_end(o->out, "TOKEN", 0), column_end(o->out, tok, 1));
    assert_int_equal(tlk(o, "release", "wide1", NULL), 0);
}

/* ---- run ---- */

static void run_passes_exit_status_and_environment(void **state)
{
    struct out *o = *state;
    char expect[900];

    assert_int_equal(tlk(o, "run", "x1", "--", "true", NULL), 0);
    assert_int_equal(tlk(o, "run", "x1", "--", "sh", "-c", "exit 7", NULL), 7);
    assert_int_equal(tlk(o, "run", "x1", "--", "sh", "-c", "exit 255", NULL), 255);
    assert_int_equal(tlk(o, "run", "x1", "--", "sh", "-c",
                         "echo \"$TASKLOCK_KEY $TASKLOCK_TOKEN $TASKLOCK_WORKER $TASKLOCK_STORE\"",
                         NULL),
                     0);
    assert_int_equal(tlk(o, "log", "x1", "--limit", "1", "--json", NULL), 0);
    json_t *doc = parse_json(o->out);
    json_int_t token = json_integer_value(
        json_object_get(json_array_get(json_object_get(doc, "events"), 0), "token"));
    json_decref(doc);
    assert_int_equal(tlk(o, "run", "x1", "--", "sh", "-c",
                         "echo \"$TASKLOCK_KEY $TASKLOCK_TOKEN $TASKLOCK_WORKER $TASKLOCK_STORE\"",
                         NULL),
                     0);
    /* The next token: larger than the last one (SQLite tokens follow the clock, see
     * docs/guide.md), with the key, worker and store around it. */
    unsigned long long next = 0;
    int used = 0;
    assert_int_equal(sscanf(o->out, "x1 %llu %n", &next, &used), 1);
    assert_true(next > (unsigned long long)token);
    (void)snprintf(expect, sizeof(expect), "tester %s\n", store);
    assert_string_equal(o->out + used, expect);

    /* Options before the key, after it, and a command with its own "--" and options. */
    assert_int_equal(tlk(o, "run", "--wait", "1s", "x1", "--lock-timeout", "1m", "--", "sh", "-c",
                         "echo \"$@\"", "sh", "--", "-v", NULL),
                     0);
    assert_string_equal(o->out, "-- -v\n");

    /* Released when the command ends, whatever its status. */
    assert_int_equal(tlk(o, "status", "x1", NULL), 0);
    assert_contains(o->out, "free");
    assert_int_equal(tlk(o, "log", "x1", NULL), 0);
    assert_contains(o->out, "exited with status 7");
}

static void run_reports_signals_and_missing_commands(void **state)
{
    struct out *o = *state;
    char script[800];

    assert_int_equal(tlk(o, "run", "x2", "--", "sh", "-c", "kill -TERM $$", NULL), 128 + SIGTERM);
    assert_int_equal(tlk(o, "run", "x2", "--", "sh", "-c", "kill -KILL $$", NULL), 128 + SIGKILL);

    assert_int_equal(tlk(o, "run", "x2", "--", "/no/such/command", NULL), 127);
    assert_error(o, "run");
    assert_contains(o->err, "cannot run \"/no/such/command\"");
    assert_int_equal(tlk(o, "run", "x2", "--", "no-such-command-tasklock-test", NULL), 127);

    path_in_dir(script, sizeof(script), "not-executable");
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    (void)fputs("#!/bin/sh\nexit 0\n", f);
    (void)fclose(f);
    assert_int_equal(chmod(script, 0644), 0);
    assert_int_equal(tlk(o, "run", "x2", "--", script, NULL), 126);
    assert_error(o, "run");

    /* Each failed start still released the lock. */
    assert_int_equal(tlk(o, "status", "x2", NULL), 0);
    assert_contains(o->out, "free");
}

static void run_conflict_exit_codes(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "-w", "holder", "acquire", "x3", NULL), 0);
    assert_int_equal(tlk(o, "run", "x3", "--wait", "0", "--", "true", NULL), 1);
    assert_error(o, "run");
    assert_contains(o->err, "held by holder");
    assert_int_equal(tlk(o, "run", "x3", "--strategy", "fail-fast", "-E", "42", "--", "true", NULL),
                     42);
    assert_int_equal(tlk(o, "run", "x3", "--conflict-exit-code", "0", "-q", "--wait", "0", "--",
                         "sh", "-c", "echo ran", NULL),
                     0);
    assert_string_equal(o->out, ""); /* the command did not run */
    assert_string_equal(o->err, ""); /* -q */
    assert_int_equal(tlk(o, "-w", "holder", "release", "x3", NULL), 0);
}

/* `run` with a command that writes its pid to DIR/NAME and then sleeps. */
static struct proc start_sleeper(const char *key, const char pidfile[300], const char *extra)
{
    static char cmd[1600];

    (void)snprintf(cmd, sizeof(cmd), "echo $$ > %s.tmp && mv %s.tmp %s; %s exec sleep 1000",
                   pidfile, pidfile, pidfile, extra);
    return start("run", key, "--", "sh", "-c", cmd, NULL);
}

static void run_forwards_signals(void **state)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    struct out *o = *state;

    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        char pidfile[300], name[32];

        (void)snprintf(name, sizeof(name), "fwd-%d.pid", sigs[i]);
        path_in_dir(pidfile, sizeof(pidfile), name);
        struct proc p = start_sleeper("x4", pidfile, "");
        pid_t child = read_pid(pidfile);

        assert_int_equal(kill(p.pid, sigs[i]), 0);
        assert_int_equal(finish(&p, o), 128 + sigs[i]);
        assert_gone(child);
        assert_int_equal(tlk(o, "status", "x4", NULL), 0);
        assert_contains(o->out, "free");
    }
}

static void run_kills_group_when_lock_is_forced_away(void **state)
{
    struct out *o = *state;
    char pidfile[300], bgfile[300], cmd[2400];

    path_in_dir(pidfile, sizeof(pidfile), "lost-sh.pid");
    path_in_dir(bgfile, sizeof(bgfile), "lost-bg.pid");
    /* The shell ignores SIGTERM, and so does its background child: only SIGKILL stops them. */
    (void)snprintf(cmd, sizeof(cmd),
                   "trap '' TERM; sleep 1000 & echo $! > %s.tmp && mv %s.tmp %s; "
                   "echo $$ > %s.tmp && mv %s.tmp %s; while :; do wait; done",
                   bgfile, bgfile, bgfile, pidfile, pidfile, pidfile);
    struct proc p = start("run", "x5", "--lock-timeout", "3s", "--heartbeat", "100ms",
                          "--kill-after", "500ms", "--", "sh", "-c", cmd, NULL);
    pid_t sh = read_pid(pidfile), bg = read_pid(bgfile);

    struct out admin;
    assert_int_equal(tlk(&admin, "-w", "admin", "acquire", "x5", "--strategy", "force", NULL), 0);
    int64_t t0 = mono_ms();
    assert_int_equal(finish(&p, o), 5);
    assert_true(mono_ms() - t0 < 10000);
    assert_error(o, "run");
    assert_contains(o->err, "lost the lock of x5");
    assert_gone(sh);
    assert_gone(bg);

    /* The lock is admin's still: run did not release it. */
    assert_int_equal(tlk(o, "status", "x5", NULL), 0);
    assert_contains(o->out, "holder:         admin");
    assert_int_equal(tlk(o, "log", "x5", NULL), 0);
    assert_contains(o->out, "lost");
    assert_int_equal(tlk(o, "-w", "admin", "release", "x5", NULL), 0);
}

/* --lost-exit-code replaces the 5 of a lost lock; the lock broken by `release --force`. */
static void run_lost_exit_code(void **state)
{
    struct out *o = *state;
    char pidfile[300];

    path_in_dir(pidfile, sizeof(pidfile), "lostcode.pid");
    static char cmd[1000];
    (void)snprintf(cmd, sizeof(cmd), "echo $$ > %s.tmp && mv %s.tmp %s; exec sleep 1000", pidfile,
                   pidfile, pidfile);
    struct proc p =
        start("run", "x8", "--lock-timeout", "3s", "--heartbeat", "100ms", "--kill-after", "0",
              "--lost-exit-code", "76", "--", "sh", "-c", cmd, NULL);
    pid_t child = read_pid(pidfile);
    struct out admin;
    assert_int_equal(tlk(&admin, "-w", "admin", "release", "x8", "--force", NULL), 0);
    assert_int_equal(finish(&p, o), 76);
    assert_contains(o->err, "lost the lock of x8");
    assert_gone(child);
    assert_int_equal(tlk(o, "run", "x8", "--lost-exit-code", "256", "--", "true", NULL), 2);
}

/* The command sees the store as resolved: the default file written out, so that a tasklock it
 * runs with another HOME (or in another directory) finds the same store. */
static void run_passes_the_resolved_store(void **state)
{
    struct out *o = *state;
    char home[800], expect[900], script[2000];
    const char *env[] = {"TASKLOCK_STORE", "TASKLOCK_DB", "XDG_STATE_HOME", home, NULL};

    (void)snprintf(home, sizeof(home), "HOME=%s/home-run", dir);
    assert_int_equal(mkdir(home + 5, 0700), 0);
    extra_env = env;
    (void)snprintf(script, sizeof(script),
                   "echo \"$TASKLOCK_STORE\"; cd / && HOME=/nonexistent %s status rs1", binary);
    assert_int_equal(tlk(o, "run", "rs1", "--", "sh", "-c", script, NULL), 0);
    extra_env = NULL;
    (void)snprintf(expect, sizeof(expect),
                   "sqlite:%s/home-run/.local/state/tasklock/locks.db\nkey:            rs1\n", dir);
    if (strncmp(o->out, expect, strlen(expect)) != 0)
        fail_msg("expected \"%s\" first, got: %s", expect, o->out);
    assert_contains(o->out, "holder:         tester");

    /* A relative sqlite: path is made absolute too. */
    (void)snprintf(script, sizeof(script),
                   "cd %s && %s -s sqlite:rel.db run rs2 -- sh -c "
                   "'echo \"$TASKLOCK_STORE\"'",
                   dir, binary);
    assert_int_equal(tlk(o, "run", "rs3", "--", "sh", "-c", script, NULL), 0);
    (void)snprintf(expect, sizeof(expect), "sqlite:%s/rel.db\n", dir);
    assert_string_equal(o->out, expect);
}

static void run_kills_leftovers_of_a_finished_command(void **state)
{
    struct out *o = *state;
    char bgfile[800], cmd[1200];

    path_in_dir(bgfile, sizeof(bgfile), "left.pid");
    (void)snprintf(cmd, sizeof(cmd), "sleep 1000 & echo $! > %s; exit 3", bgfile);
    assert_int_equal(tlk(o, "run", "x6", "--kill-after", "1s", "--", "sh", "-c", cmd, NULL), 3);
    assert_gone(read_pid(bgfile));
}

static void run_keeps_the_lock_alive(void **state)
{
    struct out *o = *state;

    /* Lock timeout 1s, heartbeat 200ms, a command of 1.5s: the lock never goes stale. */
    assert_int_equal(tlk(o, "run", "x7", "--lock-timeout", "1s", "--heartbeat", "200ms", "--", "sh",
                         "-c", "sleep 1.5", NULL),
                     0);
    assert_int_equal(tlk(o, "log", "x7", NULL), 0);
    assert_true(strstr(o->out, "lost") == NULL);
    assert_contains(o->out, "released");
    /* A heartbeat as long as the lock timeout is refused. */
    assert_int_equal(
        tlk(o, "run", "x7", "--lock-timeout", "1s", "--heartbeat", "1s", "--", "true", NULL), 2);
    assert_contains(o->err, "heartbeat");
}

/* ---- demo ---- */

static void check_demo(const struct out *o, bool crash)
{
    json_t *doc = parse_json(o->out);

    assert_true(json_is_true(json_object_get(doc, "exactly_once")));
    assert_int_equal(json_integer_value(json_object_get(doc, "done")), 40);
    assert_int_equal(json_integer_value(json_object_get(doc, "missing")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "done_twice")), 0);
    if (crash) {
        json_t *c = json_object_get(doc, "crash");

        assert_true(json_is_string(json_object_get(c, "recovered_by")));
        assert_true(json_integer_value(json_object_get(c, "recovered_token")) >
                    json_integer_value(json_object_get(c, "token")));
        assert_true(json_integer_value(json_object_get(doc, "stale_locks_claimed")) >= 1);
    }
    assert_true(json_integer_value(json_object_get(doc, "elapsed_ms")) < 15000);
    json_decref(doc);
}

static void demo_does_every_task_once(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "demo", NULL), 0);
    assert_contains(o->out, "Every task was done exactly once");
    assert_int_equal(tlk(o, "demo", "--json", NULL), 0);
    check_demo(o, false);
    assert_int_equal(tlk(o, "demo", "--workers", "2", "--tasks", "5", "-q", NULL), 0);
    assert_contains(o->out, "5 of 5");
}

static void demo_crash_recovers_the_task(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "demo", "--crash", NULL), 0);
    assert_contains(o->out, "killed with SIGKILL");
    assert_contains(o->out, "through steal-stale");
    assert_int_equal(tlk(o, "demo", "--crash", "--json", NULL), 0);
    check_demo(o, true);
}

/* ---- the line ---- */

struct line_probe {
    const char *key;
    size_t live;
};

static size_t live_waiters_of(const char *key)
{
    struct out o;
    size_t live = 0;

    if (tlk(&o, "status", key, "--json", NULL) != 0)
        fail_msg("status %s: %s", key, o.err);
    json_t *doc = parse_json(o.out);
    json_t *ws = json_object_get(doc, "waiters");
    if (!json_is_array(ws))
        fail_msg("status --json has no \"waiters\" array: %s", o.out);
    for (size_t i = 0; i < json_array_size(ws); i++)
        live += !json_is_true(json_object_get(json_array_get(ws, i), "dead"));
    json_decref(doc);
    return live;
}

static bool line_has(void *arg)
{
    const struct line_probe *p = arg;

    return live_waiters_of(p->key) == p->live;
}

static void the_line_in_status_list_and_signals(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "acquire", "line-1", "-w", "holder", NULL), 0);
    struct proc w =
        start("acquire", "line-1", "-w", "waiter", "--wait", "50s", "--priority", "3", NULL);
    struct line_probe p = {.key = "line-1", .live = 1};
    assert_true(tl_test_poll(line_has, &p, 20, LIMIT_MS / 2));

    /* status shows the line, in text and in JSON. */
    assert_int_equal(tlk(o, "status", "line-1", NULL), 0);
    assert_contains(o->out, "waiting:        1\n");
    assert_contains(o->out, "  1. waiter on testnode, priority 3, waiting ");
    assert_int_equal(tlk(o, "status", "line-1", "--json", NULL), 0);
    json_t *doc = parse_json(o->out);
    json_t *one = json_array_get(json_object_get(doc, "waiters"), 0);
    assert_string_equal(json_string_value(json_object_get(one, "worker_id")), "waiter");
    assert_string_equal(json_string_value(json_object_get(one, "node_id")), "testnode");
    assert_int_equal(json_integer_value(json_object_get(one, "priority")), 3);
    assert_non_null(json_string_value(json_object_get(one, "since")));
    json_decref(doc);

    /* list counts it. */
    assert_int_equal(tlk(o, "list", NULL), 0);
    assert_contains(o->out, "WAITING");
    assert_int_equal(tlk(o, "list", "--json", NULL), 0);
    doc = parse_json(o->out);
    json_t *locks = json_object_get(doc, "locks");
    bool seen = false;
    for (size_t i = 0; i < json_array_size(locks); i++) {
        json_t *l = json_array_get(locks, i);
        if (strcmp(json_string_value(json_object_get(l, "key")), "line-1") == 0) {
            assert_int_equal(json_integer_value(json_object_get(l, "waiting")), 1);
            seen = true;
        }
    }
    assert_true(seen);
    json_decref(doc);

    /* FAIL_FAST never queues, and says how many wait. */
    assert_int_equal(tlk(o, "acquire", "line-1", "-w", "other", "--wait", "0", NULL), 1);
    assert_contains(o->err, "1 waiting");

    /* Interrupted, the waiter leaves the line and exits as killed by the signal. */
    assert_int_equal(kill(w.pid, SIGTERM), 0);
    struct out *wo = calloc(1, sizeof(*wo));
    assert_non_null(wo);
    assert_int_equal(finish(&w, wo), 128 + SIGTERM);
    assert_contains(wo->err, "cancelled while waiting in line");
    free(wo);
    assert_int_equal(live_waiters_of("line-1"), 0);
    assert_int_equal(tlk(o, "release", "line-1", "-w", "holder", NULL), 0);
}

static void a_released_lock_goes_to_the_waiter(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "acquire", "line-2", "-w", "holder", NULL), 0);
    struct proc w = start("acquire", "line-2", "-w", "waiter", "--wait", "50s", NULL);
    struct line_probe p = {.key = "line-2", .live = 1};
    assert_true(tl_test_poll(line_has, &p, 20, LIMIT_MS / 2));
    assert_int_equal(tlk(o, "release", "line-2", "-w", "holder", NULL), 0);
    assert_int_equal(finish(&w, o), 0);
    uint64_t token = token_of(o);
    assert_int_equal(tlk(o, "status", "line-2", NULL), 0);
    assert_contains(o->out, "holder:         waiter\n");
    char release_token[32];
    (void)snprintf(release_token, sizeof(release_token), "%llu", (unsigned long long)token);
    assert_int_equal(tlk(o, "release", "line-2", "-w", "waiter", "--token", release_token, NULL),
                     0);
}

static void renew_extends_the_lock_timeout(void **state)
{
    struct out *o = *state;

    assert_int_equal(tlk(o, "acquire", "line-3", "--lock-timeout", "1m", NULL), 0);
    assert_int_equal(tlk(o, "renew", "line-3", "--lock-timeout", "10m", NULL), 0);
    assert_int_equal(tlk(o, "status", "line-3", NULL), 0);
    assert_contains(o->out, "lock timeout:   10m00s\n");
    assert_int_equal(tlk(o, "renew", "line-3", "--lock-timeout", "90s", "--json", NULL), 0);
    json_t *doc = parse_json(o->out);
    assert_int_equal(json_integer_value(json_object_get(doc, "lock_timeout_ms")), 90000);
    json_decref(doc);
    assert_int_equal(tlk(o, "renew", "line-3", "--lock-timeout", "0", NULL), 2);
    assert_int_equal(tlk(o, "renew", "line-3", "--lock-timeout", "soon", NULL), 2);
    assert_int_equal(tlk(o, "release", "line-3", NULL), 0);
    assert_int_equal(tlk(o, "renew", "line-3", "--lock-timeout", "10m", NULL), 4);
}

static void priority_is_checked(void **state)
{
    struct out *o = *state;
    static const char *const bad[] = {"2000", "-1001", "high", "1.5", ""};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tlk(o, "acquire", "line-4", "--priority", bad[i], NULL), 2);
        assert_contains(o->err, "--priority");
        assert_int_equal(tlk(o, "run", "line-4", "--priority", bad[i], "--", "true", NULL), 2);
    }
    assert_int_equal(tlk(o, "run", "line-4", "--priority", "-1000", "--", "true", NULL), 0);
}

static void shared_locks_and_semaphores(void **state)
{
    struct out *o = *state;

    /* Two readers share a key; a writer is held off, and so is a wrong number of slots. */
    assert_int_equal(tlk(o, "-w", "r1", "acquire", "sh-1", "--shared", NULL), 0);
    uint64_t t1 = token_of(o);
    assert_int_equal(tlk(o, "-w", "r2", "acquire", "sh-1", "--shared", NULL), 0);
    assert_true(token_of(o) > t1);
    assert_int_equal(tlk(o, "-w", "w", "acquire", "sh-1", "--wait", "0", NULL), 1);
    assert_int_equal(tlk(o, "status", "sh-1", NULL), 0);
    assert_contains(o->out, "held shared by 2");
    assert_contains(o->out, "1. r1 on ");
    assert_contains(o->out, "2. r2 on ");
    assert_int_equal(tlk(o, "--json", "status", "sh-1", NULL), 0);
    json_t *doc = parse_json(o->out);
    json_t *hs = json_object_get(doc, "holders");
    assert_int_equal(json_array_size(hs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(hs, 1), "mode")),
                        "shared");
    json_decref(doc);
    assert_int_equal(tlk(o, "list", NULL), 0);
    assert_contains(o->out, "held (shared)");

    /* Each reader releases its own hold; the key is free after the second. */
    assert_int_equal(tlk(o, "-w", "r1", "release", "sh-1", NULL), 0);
    assert_int_equal(tlk(o, "-w", "r2", "release", "sh-1", NULL), 0);
    assert_int_equal(tlk(o, "status", "sh-1", NULL), 0);
    assert_contains(o->out, "sh-1 is free");

    /* A semaphore of 2: a third holder waits; another number of slots is a usage error. */
    assert_int_equal(tlk(o, "-w", "s1", "acquire", "sem-1", "--slots", "2", NULL), 0);
    assert_int_equal(tlk(o, "-w", "s2", "acquire", "sem-1", "--slots", "2", NULL), 0);
    assert_int_equal(tlk(o, "-w", "s3", "acquire", "sem-1", "--slots", "2", "--wait", "0", NULL),
                     1);
    assert_int_equal(tlk(o, "-w", "s3", "acquire", "sem-1", "--slots", "3", NULL), 2);
    assert_contains(o->err, "semaphore of 2 slots");
    assert_contains(o->err, "3 slots");
    assert_int_equal(tlk(o, "status", "sem-1", NULL), 0);
    assert_contains(o->out, "held shared by 2 of 2 slots");
    assert_int_equal(tlk(o, "acquire", "sem-1", "--slots", "0", NULL), 2);
    assert_contains(o->err, "--slots");

    /* Tasks are claimed by one worker: claim-next and work refuse a mode. */
    assert_int_equal(tlk(o, "claim-next", "t1", "t2", "--shared", NULL), 2);
    assert_int_equal(tlk(o, "work", "t1", "--slots", "2", "--", "true", NULL), 2);
    assert_contains(o->err, "tasklock run --slots");
}

static void upgrade_downgrade_and_deadlocks(void **state)
{
    struct out *o = *state;

    /* Alone: the upgrade is immediate and prints the new token; a downgrade goes back. */
    assert_int_equal(tlk(o, "-w", "u1", "acquire", "up-1", "--shared", NULL), 0);
    uint64_t shared = token_of(o);
    assert_int_equal(tlk(o, "-w", "u1", "upgrade", "up-1", NULL), 0);
    uint64_t excl = token_of(o);
    assert_true(excl > shared);
    assert_int_equal(tlk(o, "-w", "u1", "upgrade", "up-1", NULL), 2);
    assert_contains(o->err, "exclusive already");
    assert_int_equal(tlk(o, "-w", "u1", "--json", "downgrade", "up-1", NULL), 0);
    json_t *doc = parse_json(o->out);
    assert_true((uint64_t)json_integer_value(json_object_get(doc, "token")) > excl);
    assert_int_equal(json_integer_value(json_object_get(doc, "from_token")), (json_int_t)excl);
    assert_string_equal(json_string_value(json_object_get(doc, "mode")), "shared");
    json_decref(doc);
    assert_int_equal(tlk(o, "log", "up-1", NULL), 0);
    assert_contains(o->out, "upgraded");
    assert_contains(o->out, "downgraded");

    /* Beside another reader: busy with --wait 0, and still held shared. */
    assert_int_equal(tlk(o, "-w", "u2", "acquire", "up-1", "--shared", NULL), 0);
    assert_int_equal(tlk(o, "-w", "u1", "upgrade", "up-1", "--wait", "0", NULL), 1);
    assert_contains(o->err, "still held shared");

    /* Both upgrade: the one that came last is told (exit 7) and keeps its shared lock; when it
     * releases, the other's upgrade goes through. */
    struct proc first = start("-w", "u1", "upgrade", "up-1", "--wait", "50s", NULL);
    struct line_probe p = {.key = "up-1", .live = 1};
    assert_true(tl_test_poll(line_has, &p, 20, LIMIT_MS / 2));
    assert_int_equal(tlk(o, "-w", "u2", "upgrade", "up-1", "--wait", "50s", NULL), 7);
    assert_contains(o->err, "deadlock");
    assert_contains(o->err, "u2 waits for up-1 held by u1");
    assert_int_equal(tlk(o, "status", "up-1", NULL), 0);
    assert_contains(o->out, "held shared by 2");
    assert_int_equal(tlk(o, "-w", "u2", "release", "up-1", NULL), 0);
    struct out fo;
    assert_int_equal(finish(&first, &fo), 0);
    assert_true(strtoull(fo.out, NULL, 10) > excl);
    assert_int_equal(tlk(o, "-w", "u1", "release", "up-1", NULL), 0);

    /* Inside `tasklock run`, the run's lock counts as held by the command: a run in a run that
     * waits for a lock held by someone who waits for the outer one is a deadlock. */
    assert_int_equal(tlk(o, "-w", "u2", "acquire", "dl-b", NULL), 0);
    char holding[64];
    (void)snprintf(holding, sizeof(holding), "TASKLOCK_HOLDING=dl-b %llu",
                   (unsigned long long)token_of(o));
    struct proc nested = start("-w", "u1", "run", "dl-a", "--", binary, "-w", "u1", "run", "dl-b",
                               "--wait", "50s", "--", "true", NULL);
    struct line_probe pb = {.key = "dl-b", .live = 1};
    assert_true(tl_test_poll(line_has, &pb, 20, LIMIT_MS / 2));
    const char *env[] = {holding, NULL};
    extra_env = env; /* as if u2's acquire ran inside the run that holds dl-b */
    int rc = tlk(o, "-w", "u2", "acquire", "dl-a", "--wait", "50s", NULL);
    extra_env = NULL;
    assert_int_equal(rc, 7);
    assert_contains(o->err, "u2 waits for dl-a held by u1");
    assert_contains(o->err, "u1 waits for dl-b held by u2");
    assert_int_equal(tlk(o, "-w", "u2", "release", "dl-b", NULL), 0);
    struct out no;
    assert_int_equal(finish(&nested, &no), 0);

    /* A TASKLOCK_HOLDING that run would never set is refused, not ignored. */
    const char *bad[] = {"TASKLOCK_HOLDING=dl-a notatoken", NULL};
    extra_env = bad;
    rc = tlk(o, "acquire", "dl-c", NULL);
    extra_env = NULL;
    assert_int_equal(rc, 2);
    assert_contains(o->err, "TASKLOCK_HOLDING");
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct out));
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

int main(void)
{
    const char *bindir = tl_test_env("TL_TEST_BINARY_DIR");

    if (bindir == NULL) {
        (void)fprintf(stderr, "TL_TEST_BINARY_DIR is not set: skipping\n");
        return 77;
    }
    (void)snprintf(binary, sizeof(binary), "%s/tasklock", bindir);
    if (access(binary, X_OK) != 0) {
        (void)fprintf(stderr, "%s is not built: skipping\n", binary);
        return 77;
    }
    dir = tl_test_mkdtemp();
    if (dir == NULL)
        return 1;
    (void)snprintf(store, sizeof(store), "sqlite:%s/cli.db", dir);

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(help_and_version),
        T(usage_errors),
        T(acquire_prints_token_and_conflicts),
        T(release_and_renew),
        T(status_list_log),
        T(stale_steal_and_force),
        T(store_option_beats_environment),
        T(stdout_write_error_is_reported),
        T(acquire_releases_a_token_it_cannot_print),
        T(default_store_needs_a_home),
        T(verbose_says_what_and_where),
        T(release_again_without_token),
        T(not_the_owner_says_what_works),
        T(release_force_breaks_a_lock),
        T(json_errors_are_documents),
        T(held_hints_fit_the_options),
        T(option_values_say_their_rule),
        T(list_and_log_fit_long_tokens),
        T(run_passes_exit_status_and_environment),
        T(run_reports_signals_and_missing_commands),
        T(run_conflict_exit_codes),
        T(run_forwards_signals),
        T(run_kills_group_when_lock_is_forced_away),
        T(run_lost_exit_code),
        T(run_passes_the_resolved_store),
        T(run_kills_leftovers_of_a_finished_command),
        T(run_keeps_the_lock_alive),
        T(demo_does_every_task_once),
        T(demo_crash_recovers_the_task),
        T(the_line_in_status_list_and_signals),
        T(a_released_lock_goes_to_the_waiter),
        T(renew_extends_the_lock_timeout),
        T(priority_is_checked),
        T(shared_locks_and_semaphores),
        T(upgrade_downgrade_and_deadlocks),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    tl_test_rmtree(dir);
    free(dir);
    return rc;
}
