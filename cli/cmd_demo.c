/*
 * cmd_demo.c -- `tasklock demo`: N `tasklock work` processes share M tasks through the locks.
 *
 * The demo is a showcase of `tasklock work`, the worker loop: it starts N worker processes, each
 * `tasklock --json work --keys-from TASKS --strategy steal-stale -- sh -c TASK` on one store (a
 * fresh SQLite file by default). Each claims the next free task atomically, runs the task's
 * command (20-60 ms of simulated work that appends "KEY TOKEN WORKER" to a ledger), releases
 * it as done and claims the next, in one store call. The parent reads the workers' JSON events
 * for the progress, and at the end checks the ledger: every task exactly once.
 *
 * With --crash worker-1 is killed with SIGKILL while its first task runs; the lock timeout is
 * short (2 s) so that another worker soon finds the lock stale and takes it over.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum { OPT_WORKERS = TL_OPT_COMMAND, OPT_TASKS, OPT_CRASH };

#define MAX_WORKERS     64
#define MAX_TASKS       10000
#define LOCK_TIMEOUT    "2s" /* short, so that a crashed worker's task is recovered soon */
#define LOCK_TIMEOUT_MS 2000
#define HEARTBEAT       "500ms"
#define DEADLINE_MS     120000 /* the demo gives up after this long: something is wrong */

/*
 * A task's command. worker-1's first task under --crash "works" for 30 s (the parent kills
 * worker-1 meanwhile; the command dies with it); every task works 20-60 ms and then appends
 * its line to the ledger.
 */
static const char task_cmd[] =
    "if [ \"$TASKLOCK_WORKER\" = \"$DEMO_VICTIM\" ] && mkdir \"$DEMO_DIR/victim\" 2>/dev/null; "
    "then exec sleep 30; fi; "
    "n=${TASKLOCK_KEY##*-}; n=${n#0}; sleep 0.0$(( (n * 37) % 41 + 20 )); "
    "printf '%s %s %s\\n' \"$TASKLOCK_KEY\" \"$TASKLOCK_TOKEN\" \"$TASKLOCK_WORKER\" "
    ">> \"$DEMO_DIR/ledger\"";

struct demo {
    const struct tl_cli *cli;
    int workers;
    int tasks;
    bool crash;
    char *dir;       /* our temporary directory */
    char *store;     /* the store URL */
    bool own_store;  /* a temporary SQLite file in dir */
    char *ledger;    /* path of the ledger */
    char *keys;      /* path of the task list */
    char prefix[64]; /* of the task keys */
};

static void task_key(const struct demo *d, int task, char *buf, size_t size)
{
    (void)snprintf(buf, size, "%s%02d", d->prefix, task + 1);
}

/* The task number of a key, or -1. */
static int task_of(const struct demo *d, const char *key)
{
    size_t n = strlen(d->prefix);
    char *end;

    if (strncmp(key, d->prefix, n) != 0)
        return -1;
    long t = strtol(key + n, &end, 10);
    return end != key + n && *end == '\0' && t >= 1 && t <= d->tasks ? (int)t - 1 : -1;
}

/* Counts the ledger's lines per task; returns how many tasks are done, or -1. */
static int read_ledger(const struct demo *d, int *count)
{
    FILE *f = fopen(d->ledger, "r");
    char line[256];
    int n = 0;

    memset(count, 0, (size_t)d->tasks * sizeof(*count));
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *sp = strchr(line, ' '); /* "KEY TOKEN WORKER" */
        if (sp == NULL)
            continue;
        *sp = '\0';
        int task = task_of(d, line);
        if (task < 0)
            continue;
        n += count[task] == 0;
        count[task]++;
    }
    (void)fclose(f);
    return n;
}

/* ---- the parent ---- */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    interrupted = sig;
}

/* A worker: a `tasklock work` process and the pipe of its JSON events (its stderr). */
struct worker {
    pid_t pid;
    int fd; /* -1 when closed */
    char buf[8192];
    size_t have;
    bool summary; /* its summary event came */
};

struct tally {
    int done;
    uint64_t conflicts, stale, acquired;
    double ms_sum, ms_p99; /* acquisition time: sum of the workers' averages * count; worst p99 */
    /* --crash */
    int victim_task; /* -1: not yet */
    uint64_t victim_token;
    int64_t crash_at;
    char recovered_by[64]; /* "": not yet */
    uint64_t recovered_token;
    int64_t recovered_at;
    bool errors;
};

static void draw_bar(const struct demo *d, const struct tally *t, int64_t start)
{
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    int filled = t->done * WIDTH / d->tasks;

    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    (void)printf("\r  [%s] %d/%d tasks done, %.1fs ", bar, t->done, d->tasks,
                 (double)(tl_cli_mono_ms() - start) / 1000.0);
    (void)fflush(stdout);
}

/* A line of progress: above the bar on a terminal. */
static void progress_line(const struct demo *d, bool tty, const char *fmt, ...) TL_CLI_PRINTF(3, 4);

static void progress_line(const struct demo *d, bool tty, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (!d->cli->quiet && !d->cli->json) {
        if (tty)
            (void)printf("\r%-79s\r", "");
        (void)vprintf(fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized): see common.c */
        (void)printf("\n");
    }
    va_end(ap);
}

/* One JSON event line of worker `id` (1-based). */
static void handle(const struct demo *d, struct tally *t, struct worker *ws, int id,
                   const char *line, bool tty, int64_t start)
{
    json_error_t jerr;
    json_t *ev = json_loads(line, 0, &jerr);
    const char *kind = json_string_value(json_object_get(ev, "event"));
    const char *key = json_string_value(json_object_get(ev, "key"));
    uint64_t token = (uint64_t)json_integer_value(json_object_get(ev, "token"));

    if (kind == NULL) {
        /* Not an event: an error message of the worker's, shown as it is. */
        if (tty)
            (void)printf("\r%-79s\r", "");
        tl_cli_error(d->cli, "worker-%d: %s", id, line);
        if (strstr(line, "tasklock: work:") != NULL)
            t->errors = true;
        json_decref(ev);
        return;
    }
    if (strcmp(kind, "start") == 0 && key != NULL) {
        int task = task_of(d, key);
        if (d->crash && id == 1 && t->victim_task < 0) {
            (void)kill(ws[1].pid, SIGKILL);
            t->victim_task = task;
            t->victim_token = token;
            t->crash_at = tl_cli_mono_ms();
            progress_line(d, tty, "  worker-1 killed with SIGKILL while working on %s (token %llu)",
                          key, (unsigned long long)token);
        } else if (json_is_true(json_object_get(ev, "took_stale"))) {
            if (d->crash && task == t->victim_task && t->recovered_by[0] == '\0') {
                (void)snprintf(t->recovered_by, sizeof(t->recovered_by), "worker-%d", id);
                t->recovered_token = token;
                t->recovered_at = tl_cli_mono_ms();
            }
            progress_line(d, tty, "  %s was stale: taken over by worker-%d (token %llu)", key, id,
                          (unsigned long long)token);
        }
    } else if (strcmp(kind, "done") == 0 && key != NULL) {
        t->done++;
        if (!tty)
            progress_line(d, tty, "  %s done by worker-%d (%d/%d)", key, id, t->done, d->tasks);
    } else if ((strcmp(kind, "failed") == 0 || strcmp(kind, "lost") == 0) && key != NULL) {
        t->errors = true;
        progress_line(d, tty, "  %s %s by worker-%d", key, kind, id);
    } else if (strcmp(kind, "summary") == 0) {
        ws[id].summary = true;
        json_int_t acq = json_integer_value(json_object_get(ev, "acquisitions"));
        double p99 = json_real_value(json_object_get(ev, "acquisition_ms_p99"));
        t->acquired += (uint64_t)acq;
        t->conflicts += (uint64_t)json_integer_value(json_object_get(ev, "conflicts"));
        t->stale += (uint64_t)json_integer_value(json_object_get(ev, "stale_locks_claimed"));
        t->ms_sum += json_real_value(json_object_get(ev, "acquisition_ms_average")) * (double)acq;
        if (p99 > t->ms_p99)
            t->ms_p99 = p99;
    }
    json_decref(ev);
    if (tty && !d->cli->quiet && !d->cli->json)
        draw_bar(d, t, start);
}

/* Reads what worker `id` wrote; false at its end of file. */
static bool read_worker(const struct demo *d, struct tally *t, struct worker *ws, int id, bool tty,
                        int64_t start)
{
    struct worker *w = &ws[id];
    ssize_t got = read(w->fd, w->buf + w->have, sizeof(w->buf) - 1 - w->have);

    if (got < 0)
        return errno == EINTR || errno == EAGAIN;
    if (got == 0 && w->have == 0)
        return false;
    w->have += (size_t)got;
    w->buf[w->have] = '\0';
    char *line = w->buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL || (got == 0 && *line != '\0') ||
           w->have == sizeof(w->buf) - 1) {
        if (nl != NULL)
            *nl = '\0';
        handle(d, t, ws, id, line, tty, start);
        if (nl == NULL) {
            line += strlen(line);
            break;
        }
        line = nl + 1;
    }
    w->have -= (size_t)(line - w->buf);
    memmove(w->buf, line, w->have);
    return got > 0;
}

/* Reads the workers' events until every one has closed its pipe, or with `until_crash` until
 * the crash victim was killed. `tty`: draw the progress bar. */
static void collect(const struct demo *d, struct tally *t, struct worker *ws, int n, int64_t start,
                    bool until_crash)
{
    bool tty = isatty(STDOUT_FILENO) && !d->cli->quiet && !d->cli->json;
    int64_t give_up = tl_cli_mono_ms() + (until_crash ? 15000 : DEADLINE_MS + 5000);
    struct pollfd fds[MAX_WORKERS];
    int ids[MAX_WORKERS];

    if (tty)
        draw_bar(d, t, start);
    while (!(until_crash && t->victim_task >= 0)) {
        int nfds = 0;
        for (int i = 1; i <= n; i++) {
            if (ws[i].fd >= 0) {
                fds[nfds] = (struct pollfd){.fd = ws[i].fd, .events = POLLIN};
                ids[nfds++] = i;
            }
        }
        if (nfds == 0)
            break;
        int ready = poll(fds, (nfds_t)nfds, 100);
        if (interrupted || tl_cli_mono_ms() > give_up || (until_crash && t->errors)) {
            t->errors = true;
            break;
        }
        if (ready <= 0) {
            if (tty)
                draw_bar(d, t, start);
            continue;
        }
        for (int i = 0; i < nfds; i++) {
            if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
                continue;
            if (!read_worker(d, t, ws, ids[i], tty, start)) {
                (void)close(ws[ids[i]].fd);
                ws[ids[i]].fd = -1;
            }
        }
    }
    if (tty && !until_crash)
        (void)printf("\n");
}

/* Starts worker `id`: `tasklock -s STORE -w worker-ID --json work ...`, this same binary. */
static pid_t start_worker(const struct demo *d, int id, int *fd, const char *self)
{
    char worker[32], victim[32];
    int p[2];

    (void)snprintf(worker, sizeof(worker), "worker-%d", id);
    (void)snprintf(victim, sizeof(victim), "%s", d->crash ? "worker-1" : "");
    if (pipe(p) != 0)
        return -1;
    (void)fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        const char *argv[] = {
            self,         "-s",          d->store,  "-w",         worker,        "--json",
            "work",       "--keys-from", d->keys,   "--strategy", "steal-stale", "--lock-timeout",
            LOCK_TIMEOUT, "--heartbeat", HEARTBEAT, "--wait",     "60s",         "--kill-after",
            "1s",         "--",          "/bin/sh", "-c",         task_cmd,      NULL};
        int devnull = open("/dev/null", O_RDWR);

        (void)dup2(p[1], STDERR_FILENO);
        if (devnull >= 0) {
            (void)dup2(devnull, STDIN_FILENO);
            (void)dup2(devnull, STDOUT_FILENO);
        }
        (void)close(p[0]);
        (void)close(p[1]);
        (void)signal(SIGINT, SIG_DFL);
        (void)signal(SIGTERM, SIG_DFL);
        /* Single-threaded here: setenv after fork is safe. */
        (void)setenv("DEMO_DIR", d->dir, 1);    /* NOLINT(concurrency-mt-unsafe) */
        (void)setenv("DEMO_VICTIM", victim, 1); /* NOLINT(concurrency-mt-unsafe) */
        (void)unsetenv("TASKLOCK_STORE");       /* NOLINT(concurrency-mt-unsafe) */
        execv(self, (char *const *)argv);
        _exit(127);
    }
    (void)close(p[1]);
    if (pid < 0) {
        (void)close(p[0]);
        return -1;
    }
    (void)fcntl(p[0], F_SETFD, FD_CLOEXEC);
    *fd = p[0];
    return pid;
}

struct verdict {
    int done, twice, missing;
    char twice_list[256], missing_list[256];
};

static bool check_ledger(const struct demo *d, struct verdict *v)
{
    int *count = calloc((size_t)d->tasks, sizeof(*count));
    bool ok = count != NULL && read_ledger(d, count) >= 0;

    memset(v, 0, sizeof(*v));
    for (int i = 0; ok && i < d->tasks; i++) {
        char key[96];
        char *list = count[i] == 0 ? v->missing_list : count[i] > 1 ? v->twice_list : NULL;

        v->done += count[i] > 0;
        v->twice += count[i] > 1;
        v->missing += count[i] == 0;
        if (list == NULL)
            continue;
        task_key(d, i, key, sizeof(key));
        size_t used = strlen(list);
        if (used + strlen(key) + 3 < 256)
            (void)snprintf(list + used, 256 - used, "%s%s", used ? ", " : "", key);
    }
    free(count);
    return ok;
}

static void summary_text(const struct demo *d, const struct tally *t, const struct verdict *v,
                         int64_t elapsed, double avg)
{
    char key[96];

    (void)printf("\nSummary (%d 'tasklock work' processes, %d tasks, %.1f s, store: %s)\n",
                 d->workers, d->tasks, (double)elapsed / 1000.0,
                 d->own_store ? "a temporary SQLite file, removed now" : d->store);
    if (v->twice == 0 && v->missing == 0)
        (void)printf("  Every task was done exactly once: %d of %d in the ledger, none twice, "
                     "none missing.\n",
                     v->done, d->tasks);
    else
        (void)printf("  FAILED: not every task was done exactly once: %d done twice (%s), %d "
                     "missing (%s).\n",
                     v->twice, v->twice ? v->twice_list : "-", v->missing,
                     v->missing ? v->missing_list : "-");
    if (d->crash && t->victim_task >= 0) {
        task_key(d, t->victim_task, key, sizeof(key));
        (void)printf("  Crash: worker-1 was killed with SIGKILL while working on %s (token "
                     "%llu).\n",
                     key, (unsigned long long)t->victim_token);
        if (t->recovered_by[0] != '\0')
            (void)printf("  Recovered: %s went stale after its %.0f s lock timeout and "
                         "%s took it\n  through steal-stale (token %llu) %.1f s after "
                         "the crash.\n",
                         key, LOCK_TIMEOUT_MS / 1000.0, t->recovered_by,
                         (unsigned long long)t->recovered_token,
                         (double)(t->recovered_at - t->crash_at) / 1000.0);
        else
            (void)printf("  NOT recovered: no worker took %s over.\n", key);
    }
    (void)printf("  Claims: %llu, each the next free task, taken atomically (claim-next); a\n"
                 "  finished task's release and the next claim were one store call.\n",
                 (unsigned long long)t->acquired);
    (void)printf("  Conflicts: %llu (claims that found every remaining task held).\n",
                 (unsigned long long)t->conflicts);
    (void)printf("  Stale locks claimed: %llu.\n", (unsigned long long)t->stale);
    (void)printf("  Claim time: average %.2f ms, p99 %.2f ms (worst worker).\n", avg, t->ms_p99);
}

static int summary_json(const struct demo *d, const struct tally *t, const struct verdict *v,
                        int64_t elapsed, double avg)
{
    char key[96];
    json_t *crash = json_null();

    if (d->crash && t->victim_task >= 0) {
        task_key(d, t->victim_task, key, sizeof(key));
        crash = json_pack("{s:s, s:s, s:I, s:o, s:I, s:I}", "worker", "worker-1", "task", key,
                          "token", (json_int_t)t->victim_token, "recovered_by",
                          t->recovered_by[0] ? json_string(t->recovered_by) : json_null(),
                          "recovered_token", (json_int_t)t->recovered_token, "recovered_after_ms",
                          (json_int_t)(t->recovered_by[0] ? t->recovered_at - t->crash_at : 0));
    }
    return tl_cli_print_json(
        d->cli,
        json_pack("{s:s, s:i, s:i, s:I, s:b, s:i, s:i, s:i, s:I, s:I, s:{s:f, s:f, s:I}, s:o}",
                  "store", d->store, "workers", d->workers, "tasks", d->tasks, "elapsed_ms",
                  (json_int_t)elapsed, "exactly_once", v->twice == 0 && v->missing == 0, "done",
                  v->done, "done_twice", v->twice, "missing", v->missing, "conflicts",
                  (json_int_t)t->conflicts, "stale_locks_claimed", (json_int_t)t->stale,
                  "acquisition_ms", "average", avg, "p99", t->ms_p99, "count",
                  (json_int_t)t->acquired, "crash", crash));
}

static int parse(struct tl_cli *cli, int argc, char **argv, struct demo *d)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS,
                                             {"workers", 1, NULL, OPT_WORKERS},
                                             {"tasks", 1, NULL, OPT_TASKS},
                                             {"crash", 0, NULL, OPT_CRASH},
                                             {0}};
    uint64_t v;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        if (opt == OPT_WORKERS || opt == OPT_TASKS) {
            const char *name = opt == OPT_WORKERS ? "--workers" : "--tasks";
            uint64_t max = opt == OPT_WORKERS ? MAX_WORKERS : MAX_TASKS;

            if (!tl_cli_uint(cli, name, optarg, 1, max, &v))
                return TL_EXIT_USAGE;
            *(opt == OPT_WORKERS ? &d->workers : &d->tasks) = (int)v;
        } else if (opt == OPT_CRASH) {
            d->crash = true;
        } else {
            int rc = tl_cli_global_opt(cli, opt, optarg, argv);
            if (rc >= 0)
                return rc;
        }
    }
    if (optind != argc)
        return tl_cli_usage_error(cli, "takes no arguments (\"%s\")", argv[optind]);
    if (cli->store != NULL && strncmp(cli->store, "memory:", 7) == 0)
        return tl_cli_usage_error(cli, "the memory: store lives in one process, and the demo's "
                                       "workers are processes; use sqlite:PATH or a server");
    if (cli->store != NULL && strncmp(cli->store, "github:", 7) == 0)
        return tl_cli_usage_error(cli, "the GitHub store locks issue numbers, and the demo's "
                                       "tasks are names (demo-PID-task-NN); run the demo on "
                                       "sqlite:PATH, redis://, postgres:// or etcd://");
    if (d->crash && d->workers < 2)
        return tl_cli_usage_error(cli, "--crash needs at least 2 workers: one crashes, "
                                       "another recovers its task");
    return -1;
}

static char *concat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);

    if (s != NULL)
        (void)snprintf(s, n, "%s%s", a, b);
    return s;
}

/* Creates the temporary directory, the store URL, the ledger path and the task list. */
static int setup(struct demo *d)
{
    const char *tmp = getenv("TMPDIR"); /* NOLINT(concurrency-mt-unsafe): no threads yet */
    char err[128];

    if (tmp == NULL || tmp[0] != '/')
        tmp = "/tmp";
    d->dir = concat(tmp, "/tasklock-demo-XXXXXX");
    if (d->dir == NULL || mkdtemp(d->dir) == NULL) {
        tl_cli_error(d->cli, "cannot create a temporary directory in %s: %s (set TMPDIR)", tmp,
                     tl_cli_strerror(errno, err));
        free(d->dir);
        d->dir = NULL;
        return TL_EXIT_STORE;
    }
    d->ledger = concat(d->dir, "/ledger");
    d->keys = concat(d->dir, "/tasks");
    if (d->cli->store != NULL) {
        d->store = concat(d->cli->store, "");
        (void)snprintf(d->prefix, sizeof(d->prefix), "demo-%ld-task-", (long)getpid());
    } else {
        char *url = concat("sqlite:", d->dir);

        d->store = url ? concat(url, "/demo.db") : NULL;
        d->own_store = true;
        free(url);
        (void)snprintf(d->prefix, sizeof(d->prefix), "task-");
    }
    if (d->ledger == NULL || d->store == NULL || d->keys == NULL) {
        tl_cli_error(d->cli, "out of memory");
        return TL_EXIT_STORE;
    }
    FILE *f = fopen(d->keys, "w");
    for (int i = 0; f != NULL && i < d->tasks; i++) {
        char key[96];
        task_key(d, i, key, sizeof(key));
        (void)fprintf(f, "%s\n", key);
    }
    if (f == NULL || fclose(f) != 0) {
        tl_cli_error(d->cli, "cannot write the task list %s: %s", d->keys,
                     tl_cli_strerror(errno, err));
        return TL_EXIT_STORE;
    }
    return TL_EXIT_OK;
}

static void cleanup(struct demo *d)
{
    static const char *const files[] = {"/ledger",      "/tasks",       "/demo.db",
                                        "/demo.db-wal", "/demo.db-shm", "/demo.db-journal"};

    if (d->dir != NULL) {
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            char *p = concat(d->dir, files[i]);

            if (p != NULL)
                (void)unlink(p);
            free(p);
        }
        char *victim = concat(d->dir, "/victim");
        if (victim != NULL)
            (void)rmdir(victim);
        free(victim);
        (void)rmdir(d->dir);
    }
    free(d->dir);
    free(d->ledger);
    free(d->keys);
    free(d->store);
}

static int run_demo(struct tl_cli *cli, int argc, char **argv)
{
    struct demo d = {.cli = cli, .workers = 4, .tasks = 40};
    struct tally t = {.victim_task = -1};
    struct worker ws[MAX_WORKERS + 1];
    tl_manager *m = NULL;
    char self[4096];
    int rc = parse(cli, argc, argv, &d);

    for (int i = 0; i <= MAX_WORKERS; i++)
        ws[i] = (struct worker){.pid = -1, .fd = -1};
    if (rc >= 0)
        return rc;
    if (cli->store != NULL)
        tl_cli_handoff(cli, cli->store); /* before the temporary directory exists */
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
        char err[128];
        tl_cli_error(cli, "cannot find this program (/proc/self/exe): %s",
                     tl_cli_strerror(errno, err));
        return TL_EXIT_STORE;
    }
    self[len] = '\0';
    if ((rc = setup(&d)) != TL_EXIT_OK)
        goto out;

    /* Open the store once before the workers start: it checks the URL and creates the
     * tables, and a store that restricts its keys (as GitHub does) is refused now. */
    struct tl_cli probe = *cli;
    probe.store = d.store;
    if ((rc = tl_cli_connect(&probe, NULL, &m)) != TL_EXIT_OK)
        goto out;
    char first[96];
    struct tl_info *info = NULL;
    task_key(&d, 0, first, sizeof(first));
    tl_status st = tl_inspect(m, first, &info);
    tl_info_free(info);
    if (st == TL_EINVAL) {
        rc = tl_cli_usage_error(cli, "this store does not take the demo's task keys (%s): %s",
                                first, tl_errmsg(m));
        goto out;
    }
    tl_manager_free(m);
    m = NULL;

    if (!cli->quiet && !cli->json)
        (void)printf("tasklock demo: %d 'tasklock work' process%s share%s %d task%s through "
                     "%s%s\n",
                     d.workers, d.workers == 1 ? "" : "es", d.workers == 1 ? "s" : "", d.tasks,
                     d.tasks == 1 ? "" : "s",
                     d.own_store ? "a fresh SQLite store in " : "the store ",
                     d.own_store ? d.dir : d.store);

    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_interrupt;
    (void)sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, &old_int);
    (void)sigaction(SIGTERM, &sa, &old_term);

    int64_t start = tl_cli_mono_ms();
    int started = 0;
    for (int i = 1; i <= d.workers; i++) {
        ws[i].pid = start_worker(&d, i, &ws[i].fd, self);
        if (ws[i].pid < 0) {
            char err[128];
            tl_cli_error(cli, "cannot start worker %d: %s", i, tl_cli_strerror(errno, err));
            t.errors = true;
            break;
        }
        started = i;
        /* --crash: the others start once worker-1 works on its first task and was killed,
         * so that it always has one, however few the tasks. */
        if (i == 1 && d.crash) {
            collect(&d, &t, ws, 1, start, true);
            if (t.errors)
                break;
        }
    }
    if (!t.errors)
        collect(&d, &t, ws, started, start, false);
    if (t.errors || interrupted) {
        for (int i = 1; i <= started; i++)
            (void)kill(ws[i].pid, SIGTERM);
    }
    for (int i = 1; i <= started; i++) {
        int status = 0;

        while (waitpid(ws[i].pid, &status, 0) < 0 && errno == EINTR)
            ;
        bool crashed = d.crash && i == 1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (!crashed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            t.errors = true;
        if (ws[i].fd >= 0)
            (void)close(ws[i].fd);
        ws[i].fd = -1;
    }
    (void)sigaction(SIGINT, &old_int, NULL);
    (void)sigaction(SIGTERM, &old_term, NULL);
    int64_t elapsed = tl_cli_mono_ms() - start;

    if (interrupted) {
        tl_cli_error(cli, "interrupted; the workers were stopped");
        rc = 128 + interrupted;
        goto out;
    }

    struct verdict v;
    if (!check_ledger(&d, &v)) {
        tl_cli_error(cli, "cannot read the ledger %s", d.ledger);
        rc = TL_EXIT_STORE;
        goto out;
    }
    double avg = t.acquired > 0 ? t.ms_sum / (double)t.acquired : 0;
    if (cli->json)
        rc = summary_json(&d, &t, &v, elapsed, avg);
    else
        summary_text(&d, &t, &v, elapsed, avg);

    bool ok = v.twice == 0 && v.missing == 0 && (!d.crash || t.recovered_by[0] != '\0');
    if (t.errors)
        rc = rc ? rc : TL_EXIT_STORE;
    else if (!ok)
        rc = rc ? rc : TL_EXIT_BUSY;

out:
    for (int i = 1; i <= MAX_WORKERS; i++) {
        if (ws[i].fd >= 0)
            (void)close(ws[i].fd);
    }
    tl_manager_free(m);
    cleanup(&d);
    return rc;
}

static const char help[] =
    "A showcase of 'tasklock work': runs N worker processes -- each 'tasklock work\n"
    "--keys-from TASKS --strategy steal-stale -- sh -c TASK' -- over M tasks on a fresh\n"
    "temporary SQLite store (or the store of --store; the task keys are then\n"
    "demo-PID-task-NN). Each worker claims the next free task atomically (claim-next), runs\n"
    "its command (20-60 ms of simulated work that appends the task to a ledger), releases it\n"
    "as done and claims the next in one store call. The summary checks the ledger: every\n"
    "task done exactly once. The demo's lock timeout is 2s (heartbeat 500ms), so that a\n"
    "crashed worker's task is recovered quickly.\n"
    "\n"
    "Options:\n"
    "  --workers N   worker processes (default 4, at most 64)\n"
    "  --tasks M     tasks (default 40, at most 10000)\n"
    "  --crash       kill worker-1 with SIGKILL while its first task runs, and show another\n"
    "                worker recovering that task through steal-stale\n"
    "\n"
    "Exit status: 0 every task done exactly once (and, with --crash, recovered), 1 the check\n"
    "failed, 2 usage error, 3 store error.\n";

const struct tl_cli_cmd tl_cli_cmd_demo = {
    .name = "demo",
    .usage = "demo [--workers N] [--tasks M] [--crash]",
    .summary = "Show 'tasklock work' processes sharing tasks, every task done exactly once",
    .help = help,
    .run = run_demo,
};
