/*
 * test_work.c -- the worker loop end to end: `tasklock claim-next`, `release --done`,
 * `reopen`, `list --done` and `tasklock work` driven as a user would, on SQLite and on every
 * network store the harness started (Redis, PostgreSQL, etcd: skipped when absent).
 *
 * The drain: 8 `tasklock work` processes over 200 keys, each task's command appending its key to
 * a ledger when it succeeds: every key exactly once in the ledger, every key done. The crash:
 * workers with steal-stale and a short lock timeout; one worker is SIGKILLed while its command
 * runs; another takes the task once its lock goes stale and finishes it: still once in the
 * ledger of successful runs. Waits are bounded polls.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
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

#define MAX_ARGS      40
#define LIMIT_MS      120000 /* no command may take longer */
#define DRAIN_KEYS    200
#define DRAIN_WORKERS 8
#define CRASH_KEYS    12

static char *dir;
static char binary[700];
static char prefix[64]; /* keys of this run: shared servers keep keys of earlier runs */

struct store {
    const char *name;
    char url[700];
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

/* Starts `tasklock` with `argv` (NULL-terminated, without the binary) on `url`, stdout and
 * stderr to files in the run's directory named after `tag`. */
static pid_t start(const char *url, const char *worker, const char *tag, const char *const *argv)
{
    const char *full[MAX_ARGS + 2] = {binary};
    int n = 1;
    char out[800], err[800];

    for (; argv[n - 1] != NULL; n++) {
        assert_true(n < MAX_ARGS);
        full[n] = argv[n - 1];
    }
    full[n] = NULL;
    (void)snprintf(out, sizeof(out), "%s/%s.out", dir, tag);
    (void)snprintf(err, sizeof(err), "%s/%s.err", dir, tag);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0)
            _exit(126);
        (void)dup2(o, STDOUT_FILENO);
        (void)dup2(e, STDERR_FILENO);
        (void)setenv("TASKLOCK_STORE", url, 1);     /* NOLINT(concurrency-mt-unsafe) */
        (void)setenv("TASKLOCK_WORKER", worker, 1); /* NOLINT(concurrency-mt-unsafe) */
        (void)setenv("LEDGER_DIR", dir, 1);         /* NOLINT(concurrency-mt-unsafe) */
        execv(binary, (char *const *)full);
        _exit(126);
    }
    return pid;
}

/* Waits (bounded) for `pid`; returns its exit code, or 128 + the signal. */
static int finish(pid_t pid)
{
    int64_t end = mono_ms() + LIMIT_MS;
    int status;

    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (mono_ms() > end) {
            (void)kill(pid, SIGKILL);
            (void)waitpid(pid, &status, 0);
            fail_msg("tasklock (pid %ld) did not finish in %d ms", (long)pid, LIMIT_MS);
        }
        sleep_ms(10);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0;

    if (f == NULL)
        return strdup("");
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    (void)fclose(f);
    if (n < 0) {
        free(buf);
        return strdup("");
    }
    return buf;
}

static char *tag_file(const char *tag, const char *ext)
{
    char path[800];

    (void)snprintf(path, sizeof(path), "%s/%s.%s", dir, tag, ext);
    return slurp(path);
}

/* Runs `tasklock ARGS` to the end; returns its exit code; stdout in *out if out is not NULL. */
static int run(const struct store *s, const char *tag, char **out, const char *const *argv)
{
    int rc = finish(start(s->url, "tester", tag, argv));

    if (out != NULL)
        *out = tag_file(tag, "out");
    return rc;
}

static void key_name(char *buf, size_t size, const char *what, int i)
{
    (void)snprintf(buf, size, "%.40s-%.40s-%d", prefix, what, i);
}

/* A keys file of `n` keys named WHAT-0.. in the run's directory. */
static void write_keys(const char *path, const char *what, int n)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    (void)fprintf(f, "# tasks of %s\n\n", what);
    for (int i = 0; i < n; i++) {
        char k[128];
        key_name(k, sizeof(k), what, i);
        (void)fprintf(f, "%s\n", k);
    }
    assert_int_equal(fclose(f), 0);
}

/* How often each key of WHAT-0..n-1 appears in the ledger file (one "KEY TOKEN" per line). */
static void ledger_counts(const char *ledger, const char *what, int n, int *counts)
{
    char *text = slurp(ledger);
    char *save = NULL;

    memset(counts, 0, sizeof(int) * (size_t)n);
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char k[128];
        for (int i = 0; i < n; i++) {
            key_name(k, sizeof(k), what, i);
            size_t kl = strlen(k);
            if (strncmp(line, k, kl) == 0 && line[kl] == ' ')
                counts[i]++;
        }
    }
    free(text);
}

/* ---- the stores ---- */

static struct store stores[4];
static size_t nstores;

static void add_store(const char *name, const char *url)
{
    if (url == NULL || nstores == sizeof(stores) / sizeof(stores[0]))
        return;
    stores[nstores].name = name;
    (void)snprintf(stores[nstores].url, sizeof(stores[nstores].url), "%s", url);
    nstores++;
}

/* ---- claim-next and friends, by hand ---- */

static void claim_next_by_hand(const struct store *s)
{
    char a[128], b[128], c[128], expect[300];
    char *out = NULL;
    key_name(a, sizeof(a), "hand", 0);
    key_name(b, sizeof(b), "hand", 1);
    key_name(c, sizeof(c), "hand", 2);

    /* The first free, in order; the key and its token on one line. */
    assert_int_equal(run(s, "cn1", &out, (const char *[]){"claim-next", a, b, c, NULL}), 0);
    (void)snprintf(expect, sizeof(expect), "%s ", a);
    assert_int_equal(strncmp(out, expect, strlen(expect)), 0);
    free(out);
    assert_int_equal(run(s, "cn2", &out, (const char *[]){"claim-next", "--json", a, b, c, NULL}),
                     0);
    json_error_t jerr;
    json_t *doc = json_loads(out, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "key")), b);
    assert_true(json_integer_value(json_object_get(doc, "token")) > 0);
    assert_non_null(json_object_get(doc, "lock"));
    json_decref(doc);
    free(out);

    /* Done, then skipped; the third one; then every one held or done: exit 1. */
    assert_int_equal(
        run(s, "rd", NULL, (const char *[]){"release", a, "--done", "--summary", "built", NULL}),
        0);
    assert_int_equal(run(s, "cn3", &out, (const char *[]){"claim-next", a, b, c, NULL}), 0);
    (void)snprintf(expect, sizeof(expect), "%s ", c);
    assert_int_equal(strncmp(out, expect, strlen(expect)), 0);
    free(out);
    assert_int_equal(run(s, "cn4", NULL,
                         (const char *[]){"claim-next", "--strategy", "fail-fast", a, b, c, NULL}),
                     1);
    char *err = tag_file("cn4", "err");
    assert_non_null(strstr(err, "2 held"));
    assert_non_null(strstr(err, "1 done"));
    free(err);

    /* Every one done: exit 6, also for nothing given. */
    assert_int_equal(run(s, "rd2", NULL, (const char *[]){"release", b, "--done", NULL}), 0);
    assert_int_equal(run(s, "rd3", NULL, (const char *[]){"release", c, "--done", NULL}), 0);
    assert_int_equal(run(s, "cn5", NULL, (const char *[]){"claim-next", a, b, c, NULL}), 6);
    assert_int_equal(run(s, "cn6", NULL, (const char *[]){"claim-next", NULL}), 6);

    /* list --done shows them, with who and the summary. */
    assert_int_equal(run(s, "ld", &out, (const char *[]){"list", "--done", "--json", NULL}), 0);
    doc = json_loads(out, 0, &jerr);
    assert_non_null(doc);
    size_t found = 0, i;
    json_t *one;
    json_array_foreach(json_object_get(doc, "done"), i, one)
    {
        const char *k = json_string_value(json_object_get(one, "key"));
        if (k != NULL && strcmp(k, a) == 0) {
            assert_string_equal(json_string_value(json_object_get(one, "summary")), "built");
            assert_string_equal(json_string_value(json_object_get(one, "worker_id")), "tester");
        }
        found += k != NULL && (strcmp(k, a) == 0 || strcmp(k, b) == 0 || strcmp(k, c) == 0);
    }
    assert_int_equal(found, 3);
    json_decref(doc);
    free(out);

    /* Reopen: offered again. */
    assert_int_equal(run(s, "ro", NULL, (const char *[]){"reopen", b, NULL}), 0);
    assert_int_equal(run(s, "ro2", &out, (const char *[]){"reopen", "--json", b, NULL}), 0);
    assert_non_null(strstr(out, "\"was_done\":false"));
    free(out);
    assert_int_equal(run(s, "cn7", &out, (const char *[]){"claim-next", a, b, c, NULL}), 0);
    (void)snprintf(expect, sizeof(expect), "%s ", b);
    assert_int_equal(strncmp(out, expect, strlen(expect)), 0);
    free(out);
    assert_int_equal(run(s, "rl", NULL, (const char *[]){"release", b, NULL}), 0);

    /* Bad input: a repeated key, force, a bad keys file. */
    assert_int_equal(run(s, "bad1", NULL, (const char *[]){"claim-next", a, a, NULL}), 2);
    assert_int_equal(
        run(s, "bad2", NULL, (const char *[]){"claim-next", "--strategy", "force", a, NULL}), 2);
    assert_int_equal(
        run(s, "bad3", NULL, (const char *[]){"claim-next", "--keys-from", "/nonexistent", NULL}),
        2);
    assert_int_equal(
        run(s, "bad4", NULL, (const char *[]){"release", a, "--done", "--force", NULL}), 2);
    assert_int_equal(run(s, "bad5", NULL, (const char *[]){"work", a, NULL}), 2);
}

static void claim_next_sqlite(void **state)
{
    (void)state;
    claim_next_by_hand(&stores[0]);
}

static void claim_next_network(void **state)
{
    (void)state;
    if (nstores < 2)
        skip();
    for (size_t i = 1; i < nstores; i++)
        claim_next_by_hand(&stores[i]);
}

/* ---- the drain ---- */

/* The command of each task: appends "KEY TOKEN" to the ledger once its work is done. */
static const char ledger_cmd[] = "printf '%s %s\\n' \"$TASKLOCK_KEY\" \"$TASKLOCK_TOKEN\" >> "
                                 "\"$LEDGER_DIR/$LEDGER\"";

static void drain(const struct store *s)
{
    char keys[800], ledger[800], tag[128], what[64], env_ledger[128];
    pid_t pids[DRAIN_WORKERS];
    int counts[DRAIN_KEYS];

    (void)snprintf(what, sizeof(what), "drain-%s", s->name);
    (void)snprintf(keys, sizeof(keys), "%s/%s.keys", dir, what);
    (void)snprintf(env_ledger, sizeof(env_ledger), "%s.ledger", what);
    (void)snprintf(ledger, sizeof(ledger), "%s/%s", dir, env_ledger);
    write_keys(keys, what, DRAIN_KEYS);

    char cmd[400];
    (void)snprintf(cmd, sizeof(cmd), "LEDGER=%s; %s", env_ledger, ledger_cmd);
    int64_t t0 = mono_ms();
    for (int i = 0; i < DRAIN_WORKERS; i++) {
        char worker[32];
        (void)snprintf(worker, sizeof(worker), "drainer-%d", i);
        (void)snprintf(tag, sizeof(tag), "%s-%d", what, i);
        pids[i] =
            start(s->url, worker, tag,
                  (const char *[]){"work", "--keys-from", keys, "-q", "--", "sh", "-c", cmd, NULL});
    }
    for (int i = 0; i < DRAIN_WORKERS; i++) {
        int rc = finish(pids[i]);
        if (rc != 0) {
            (void)snprintf(tag, sizeof(tag), "%s-%d", what, i);
            char *err = tag_file(tag, "err");
            fail_msg("worker %d on %s exited %d: %s", i, s->name, rc, err);
        }
    }
    (void)fprintf(stderr, "work %s: %d workers drained %d tasks in %lld ms\n", s->name,
                  DRAIN_WORKERS, DRAIN_KEYS, (long long)(mono_ms() - t0));
    ledger_counts(ledger, what, DRAIN_KEYS, counts);
    for (int i = 0; i < DRAIN_KEYS; i++) {
        if (counts[i] != 1)
            fail_msg("%s: task %d ran %d times", s->name, i, counts[i]);
    }
    /* Nothing left: a ninth worker finds every task done. */
    (void)snprintf(tag, sizeof(tag), "%s-late", what);
    assert_int_equal(
        finish(start(s->url, "late", tag,
                     (const char *[]){"work", "--keys-from", keys, "--", "true", NULL})),
        0);
    char *err = tag_file(tag, "err");
    assert_non_null(strstr(err, "0 done, 0 failed, 0 lost"));
    free(err);
}

static void eight_workers_drain_200_tasks(void **state)
{
    (void)state;
    for (size_t i = 0; i < nstores; i++)
        drain(&stores[i]);
}

/* ---- the crash ---- */

/*
 * The command: the victim task's first run records its worker's pid and hangs (the test then
 * SIGKILLs that worker: PR_SET_PDEATHSIG takes the command down with it); every other run
 * appends to the ledger.
 */
static const char crash_cmd[] =
    "if [ \"$TASKLOCK_KEY\" = \"$VICTIM\" ] && [ ! -e \"$LEDGER_DIR/$VICTIM.pid\" ]; then "
    "echo $PPID > \"$LEDGER_DIR/$VICTIM.tmp\"; mv \"$LEDGER_DIR/$VICTIM.tmp\" "
    "\"$LEDGER_DIR/$VICTIM.pid\"; exec sleep 600; fi; "
    "printf '%s %s\\n' \"$TASKLOCK_KEY\" \"$TASKLOCK_TOKEN\" >> \"$LEDGER_DIR/$LEDGER\"";

static bool file_exists(void *arg)
{
    return access((const char *)arg, F_OK) == 0;
}

static void crash(const struct store *s)
{
    char keys[800], ledger[800], pidfile[800], tag[128], what[64], env_ledger[128], victim[128];
    pid_t pids[4];
    int counts[CRASH_KEYS];

    (void)snprintf(what, sizeof(what), "crash-%s", s->name);
    (void)snprintf(keys, sizeof(keys), "%s/%s.keys", dir, what);
    (void)snprintf(env_ledger, sizeof(env_ledger), "%s.ledger", what);
    (void)snprintf(ledger, sizeof(ledger), "%s/%s", dir, env_ledger);
    key_name(victim, sizeof(victim), what, 0); /* the first: claimed at once */
    (void)snprintf(pidfile, sizeof(pidfile), "%s/%s.pid", dir, victim);
    write_keys(keys, what, CRASH_KEYS);

    char cmd[900];
    (void)snprintf(cmd, sizeof(cmd), "LEDGER=%s; VICTIM=%s; %s", env_ledger, victim, crash_cmd);
    for (int i = 0; i < 4; i++) {
        char worker[32];
        (void)snprintf(worker, sizeof(worker), "crasher-%d", i);
        (void)snprintf(tag, sizeof(tag), "%s-%d", what, i);
        pids[i] = start(s->url, worker, tag,
                        (const char *[]){"work", "--keys-from", keys, "--strategy", "steal-stale",
                                         "--lock-timeout", "1500ms", "--wait", "60s", "-q", "--",
                                         "sh", "-c", cmd, NULL});
    }
    if (!tl_test_poll(file_exists, pidfile, 10, LIMIT_MS))
        fail_msg("%s: the victim task never started", s->name);
    char *text = slurp(pidfile);
    long victim_pid = strtol(text, NULL, 10);
    free(text);
    int killed = -1;
    for (int i = 0; i < 4; i++) {
        if (pids[i] == (pid_t)victim_pid)
            killed = i;
    }
    if (killed < 0)
        fail_msg("%s: the victim's worker %ld is not one of ours", s->name, victim_pid);
    assert_int_equal(kill(pids[killed], SIGKILL), 0);
    assert_int_equal(finish(pids[killed]), 128 + SIGKILL);
    for (int i = 0; i < 4; i++) {
        if (i == killed)
            continue;
        int rc = finish(pids[i]);
        if (rc != 0) {
            (void)snprintf(tag, sizeof(tag), "%s-%d", what, i);
            char *err = tag_file(tag, "err");
            fail_msg("worker %d on %s exited %d: %s", i, s->name, rc, err);
        }
    }
    ledger_counts(ledger, what, CRASH_KEYS, counts);
    for (int i = 0; i < CRASH_KEYS; i++) {
        if (counts[i] != 1)
            fail_msg("%s: task %d succeeded %d times", s->name, i, counts[i]);
    }
}

static void a_crashed_workers_task_is_done_by_another(void **state)
{
    (void)state;
    for (size_t i = 0; i < nstores; i++)
        crash(&stores[i]);
}

/* ---- failures and signals ---- */

static bool err_has(void *arg)
{
    char *err = tag_file((const char *)arg, "err");
    bool has = strstr(err, "\"event\":\"start\"") != NULL;

    free(err);
    return has;
}

static void a_failed_task_is_left_and_a_signal_stops_the_loop(void **state)
{
    (void)state;
    const struct store *s = &stores[0];
    char f0[128], f1[128], cmd[300], s0[128];
    key_name(f0, sizeof(f0), "fail", 0);
    key_name(f1, sizeof(f1), "fail", 1);
    key_name(s0, sizeof(s0), "sig", 0);

    /* f1's command fails: it is released not done, and this process does not take it again. */
    (void)snprintf(cmd, sizeof(cmd), "test \"$TASKLOCK_KEY\" != %s", f1);
    assert_int_equal(run(s, "fails", NULL,
                         (const char *[]){"--json", "work", f0, f1, "--", "sh", "-c", cmd, NULL}),
                     1);
    char *err = tag_file("fails", "err");
    int starts = 0, fails = 0;
    for (const char *p = err; (p = strstr(p, "\"event\":\"start\"")) != NULL; p++)
        starts++;
    for (const char *p = err; (p = strstr(p, "\"event\":\"failed\"")) != NULL; p++)
        fails++;
    assert_int_equal(starts, 2);
    assert_int_equal(fails, 1);
    assert_non_null(strstr(err, "\"event\":\"summary\",\"done\":1,\"failed\":1,\"lost\":0"));
    free(err);
    char *out = NULL;
    assert_int_equal(run(s, "fails-done", &out, (const char *[]){"list", "--done", NULL}), 0);
    assert_non_null(strstr(out, f0));
    assert_null(strstr(out, f1));
    free(out);

    /* SIGINT: forwarded to the running command; the task is released, not done; 128 + 2. */
    pid_t pid = start(s->url, "tester", "sig",
                      (const char *[]){"--json", "work", s0, "--", "sleep", "30", NULL});
    if (!tl_test_poll(err_has, (void *)"sig", 10, LIMIT_MS))
        fail_msg("the signalled worker never started its task");
    assert_int_equal(kill(pid, SIGINT), 0);
    assert_int_equal(finish(pid), 128 + SIGINT);
    err = tag_file("sig", "err");
    assert_non_null(strstr(err, "\"event\":\"failed\""));
    free(err);
    assert_int_equal(run(s, "sig-status", &out, (const char *[]){"--json", "status", s0, NULL}), 0);
    assert_non_null(strstr(out, "\"held\":false"));
    free(out);
    assert_int_equal(run(s, "sig-again", NULL,
                         (const char *[]){"claim-next", "--strategy", "fail-fast", s0, NULL}),
                     0);
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
    (void)snprintf(prefix, sizeof(prefix), "w%lx%ld", (unsigned long)time(NULL), (long)getpid());

    char url[800];
    (void)snprintf(url, sizeof(url), "sqlite:%s/work.db", dir);
    add_store("sqlite", url);
    add_store("redis", tl_test_env("TL_TEST_REDIS_URI"));
    add_store("postgres", tl_test_env("TL_TEST_POSTGRES_URI"));
    const char *etcd = tl_test_env("TL_TEST_ETCD_URI");
    if (etcd != NULL) {
        (void)snprintf(url, sizeof(url), "%s?prefix=%s/", etcd, prefix);
        add_store("etcd", url);
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claim_next_sqlite),
        cmocka_unit_test(claim_next_network),
        cmocka_unit_test(eight_workers_drain_200_tasks),
        cmocka_unit_test(a_crashed_workers_task_is_done_by_another),
        cmocka_unit_test(a_failed_task_is_left_and_a_signal_stops_the_loop),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    tl_test_rmtree(dir);
    free(dir);
    return rc;
}
