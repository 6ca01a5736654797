/*
 * cmd_demo.c -- `tasklock demo`: N worker processes share M tasks through the locks.
 *
 * Each worker is a process with its own manager on one store (a fresh SQLite file by default).
 * It repeatedly picks a task not yet done, acquires it fail-fast (steal-stale when the holder
 * is stale), checks the ledger again now that it holds the lock, works 20-60 ms, appends
 * "TASK TOKEN WORKER" to the ledger and releases. The parent draws the progress from the
 * workers' reports, and at the end checks the ledger: every task exactly once.
 *
 * With --crash the first worker is killed with SIGKILL while it holds its first task; the lock
 * timeout is short (2 s) so that another worker soon finds the lock stale and takes it over.
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
#define LOCK_TIMEOUT_MS 2000 /* short, so that a crashed worker's task is recovered soon */
#define HEARTBEAT_MS    500
#define WORK_MIN_MS     20
#define WORK_SPREAD_MS  41     /* work takes 20-60 ms */
#define IDLE_MS         50     /* every remaining task is held: wait this long and look again */
#define VICTIM_HOLD_MS  30000  /* the crash victim "works" this long, or until it is killed */
#define DEADLINE_MS     120000 /* the demo gives up after this long: something is wrong */

enum msg_kind { MSG_ACQUIRED = 1, MSG_DONE, MSG_STATS, MSG_ERROR };

/* A worker's report to the parent: one write() each, smaller than PIPE_BUF, so atomic. */
struct msg {
    int32_t kind;
    int32_t worker; /* 1-based */
    int32_t task;   /* 0-based */
    int32_t stolen; /* MSG_ACQUIRED: took a stale lock */
    uint64_t token;
    double ms;          /* MSG_ACQUIRED: acquisition time */
    uint64_t conflicts; /* MSG_DONE and MSG_STATS: the worker's total so far */
    uint64_t retries;   /* MSG_STATS: idle rounds */
    uint64_t stale;     /* MSG_STATS: stale locks claimed */
    uint64_t acquired;  /* MSG_STATS: acquisitions */
    char text[200];     /* MSG_ERROR */
};
_Static_assert(sizeof(struct msg) <= 512, "a report must be written atomically");

struct demo {
    const struct tl_cli *cli;
    int workers;
    int tasks;
    bool crash;
    char *dir;       /* our temporary directory */
    char *store;     /* the store URL */
    bool own_store;  /* a temporary SQLite file in dir */
    char *ledger;    /* path of the ledger */
    char prefix[64]; /* of the task keys */
    int report_fd;   /* workers: the write end of the report pipe */
};

/* ---- the workers ---- */

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Monotonic time in ms with a fraction: acquisitions take well under a millisecond. */
static double precise_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static uint32_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 0x2545f4914f6cdd1dull) >> 32);
}

static void task_key(const struct demo *d, int task, char *buf, size_t size)
{
    (void)snprintf(buf, size, "%s%02d", d->prefix, task + 1);
}

/* Marks done[] from the ledger; returns how many tasks are done, or -1 if it cannot be read. */
static int read_ledger(const struct demo *d, bool *done, int *count)
{
    FILE *f = fopen(d->ledger, "r");
    char line[128];
    int n = 0;

    memset(done, 0, (size_t)d->tasks * sizeof(*done));
    if (count != NULL)
        memset(count, 0, (size_t)d->tasks * sizeof(*count));
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *end;
        long task = strtol(line, &end, 10); /* "TASK TOKEN WORKER" */

        if (end == line || *end != ' ' || task < 0 || task >= d->tasks)
            continue;
        if (!done[task])
            n++;
        done[task] = true;
        if (count != NULL)
            count[task]++;
    }
    (void)fclose(f);
    return n;
}

static void report(const struct demo *d, const struct msg *m)
{
    ssize_t n = write(d->report_fd, m, sizeof(*m));

    (void)n; /* the parent is gone: nothing to tell */
}

static int worker_fail(const struct demo *d, int id, const char *what, tl_manager *m)
{
    struct msg e = {.kind = MSG_ERROR, .worker = id};

    (void)snprintf(e.text, sizeof(e.text), "worker-%d: %s: %s", id, what,
                   m != NULL ? tl_errmsg(m) : "out of memory");
    report(d, &e);
    return TL_EXIT_STORE;
}

/* Tries to take `task`: fail-fast, then steal-stale if its holder is stale. */
static tl_status take(tl_manager *m, const char *key, tl_lock **lock, bool *stolen)
{
    struct tl_acquire_opts o = {.strategy = TL_FAIL_FAST};
    tl_status st = tl_acquire(m, key, &o, lock);

    *stolen = false;
    if (st == TL_EBUSY && tl_last_holder(m) != NULL && tl_last_holder(m)->stale) {
        struct tl_metrics before, after;

        tl_metrics_get(m, &before, sizeof(before));
        o.strategy = TL_STEAL_STALE;
        o.retries = TL_NO_RETRIES;
        st = tl_acquire(m, key, &o, lock);
        tl_metrics_get(m, &after, sizeof(after));
        *stolen = st == TL_OK && after.stale_locks_claimed > before.stale_locks_claimed;
    }
    return st;
}

/* Does one task if it can; returns 1 if it did, 0 if every candidate was held, else -exit. */
static int work_once(const struct demo *d, tl_manager *m, int id, bool *done, int *order, int left,
                     uint64_t *rng, bool *victim)
{
    char key[96], line[128];

    for (int i = left - 1; i > 0; i--) { /* pick in random order */
        int j = (int)(next_random(rng) % (uint32_t)(i + 1)), t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < left; i++) {
        int task = order[i];
        tl_lock *lock = NULL;
        bool stolen;

        task_key(d, task, key, sizeof(key));
        double t0 = precise_ms();
        tl_status st = take(m, key, &lock, &stolen);
        if (st == TL_EBUSY)
            continue;
        if (st != TL_OK)
            return -worker_fail(d, id, key, m);
        double ms = precise_ms() - t0;

        /* Now that we hold it, look again: it may have been done since we read the ledger. */
        if (read_ledger(d, done, NULL) < 0 || done[task]) {
            (void)tl_release(lock, "already done");
            tl_lock_free(lock);
            continue;
        }

        struct msg a = {.kind = MSG_ACQUIRED,
                        .worker = id,
                        .task = task,
                        .stolen = stolen,
                        .token = tl_lock_token(lock),
                        .ms = ms};
        report(d, &a);
        if (*victim) {
            *victim = false;
            sleep_ms(VICTIM_HOLD_MS); /* the parent kills us in here */
        }
        sleep_ms(WORK_MIN_MS + next_random(rng) % WORK_SPREAD_MS);
        if (tl_lock_is_lost(lock)) { /* another worker has it now: our work must not count */
            struct msg e = {.kind = MSG_ERROR, .worker = id};
            (void)snprintf(e.text, sizeof(e.text),
                           "worker-%d: lost the lock of %s mid-task; not recording it", id, key);
            report(d, &e);
            tl_lock_free(lock);
            return -TL_EXIT_STORE;
        }

        int fd = open(d->ledger, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        int len = snprintf(line, sizeof(line), "%d %llu worker-%d\n", task,
                           (unsigned long long)tl_lock_token(lock), id);
        bool written = fd >= 0 && write(fd, line, (size_t)len) == (ssize_t)len;
        if (fd >= 0)
            (void)close(fd);
        if (!written) {
            struct msg e = {.kind = MSG_ERROR, .worker = id};
            (void)snprintf(e.text, sizeof(e.text), "worker-%d: cannot write the ledger %s", id,
                           d->ledger);
            report(d, &e);
            tl_lock_free(lock);
            return -TL_EXIT_STORE;
        }

        st = tl_release(lock, "done");
        tl_lock_free(lock);
        if (st != TL_OK)
            return -worker_fail(d, id, key, m);

        struct tl_metrics mt;
        tl_metrics_get(m, &mt, sizeof(mt));
        struct msg dn = {
            .kind = MSG_DONE, .worker = id, .task = task, .conflicts = mt.total_conflicts};
        report(d, &dn);
        return 1;
    }
    return 0;
}

static int worker_main(const struct demo *d, int id)
{
    char name[32];
    struct tl_options o = {.store_url = d->store,
                           .worker_id = name,
                           .node_id = d->cli->node,
                           .lock_timeout_ms = LOCK_TIMEOUT_MS,
                           .heartbeat_ms = HEARTBEAT_MS};
    bool *done = calloc((size_t)d->tasks, sizeof(*done));
    int *order = calloc((size_t)d->tasks, sizeof(*order));
    uint64_t rng = ((uint64_t)getpid() << 32) ^ (uint64_t)tl_cli_now_ms() ^ 0x9e3779b97f4a7c15ull;
    bool victim = d->crash && id == 1;
    uint64_t retries = 0;
    int rc = TL_EXIT_OK;

    (void)snprintf(name, sizeof(name), "worker-%d", id);
    tl_manager *m = done && order ? tl_manager_new(&o) : NULL;
    if (m == NULL) {
        rc = worker_fail(d, id, "starting", NULL);
        goto out;
    }
    if (tl_connect(m) != TL_OK) {
        rc = worker_fail(d, id, "connecting", m);
        goto out;
    }

    int64_t deadline = tl_cli_mono_ms() + DEADLINE_MS;
    for (;;) {
        int n = read_ledger(d, done, NULL);
        if (n < 0) {
            struct msg e = {.kind = MSG_ERROR, .worker = id};
            (void)snprintf(e.text, sizeof(e.text), "worker-%d: cannot read the ledger %s", id,
                           d->ledger);
            report(d, &e);
            rc = TL_EXIT_STORE;
            break;
        }
        if (n == d->tasks || tl_cli_mono_ms() > deadline)
            break;

        int left = 0;
        for (int t = 0; t < d->tasks; t++) {
            if (!done[t])
                order[left++] = t;
        }
        int did = work_once(d, m, id, done, order, left, &rng, &victim);
        if (did < 0) {
            rc = -did;
            break;
        }
        if (did == 0) {
            retries++;
            sleep_ms(IDLE_MS + next_random(&rng) % 20);
        }
    }

    struct tl_metrics mt;
    tl_metrics_get(m, &mt, sizeof(mt));
    struct msg s = {.kind = MSG_STATS,
                    .worker = id,
                    .conflicts = mt.total_conflicts,
                    .retries = retries,
                    .stale = mt.stale_locks_claimed,
                    .acquired = mt.total_acquisitions};
    report(d, &s);

out:
    tl_manager_free(m);
    free(done);
    free(order);
    return rc;
}

/* ---- the parent ---- */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    interrupted = sig;
}

struct tally {
    int done;
    uint64_t conflicts[MAX_WORKERS + 1]; /* live, per worker */
    uint64_t conflicts_total, retries, stale, acquired;
    double *ms;
    size_t nms, capms;
    /* --crash */
    int victim_task; /* -1: not yet */
    uint64_t victim_token;
    int64_t crash_at;
    int recovered_by; /* 0: not yet */
    uint64_t recovered_token;
    int64_t recovered_at;
    bool errors;
    char buf[sizeof(struct msg) * 16]; /* reports read but not handled yet */
    size_t have;
};

static uint64_t live_conflicts(const struct tally *t, int workers)
{
    uint64_t n = 0;

    for (int i = 1; i <= workers; i++)
        n += t->conflicts[i];
    return n;
}

static void draw_bar(const struct demo *d, const struct tally *t, int64_t start)
{
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    int filled = t->done * WIDTH / d->tasks;

    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    (void)printf("\r  [%s] %d/%d tasks done, %llu conflicts, %.1fs ", bar, t->done, d->tasks,
                 (unsigned long long)live_conflicts(t, d->workers),
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

static bool add_ms(struct tally *t, double ms)
{
    if (t->nms == t->capms) {
        size_t cap = t->capms ? t->capms * 2 : 64;
        double *p = realloc(t->ms, cap * sizeof(*p));

        if (p == NULL)
            return false;
        t->ms = p;
        t->capms = cap;
    }
    t->ms[t->nms++] = ms;
    return true;
}

static void handle(const struct demo *d, struct tally *t, const struct msg *m, pid_t *pids,
                   bool tty, int64_t start)
{
    char key[96];

    if (m->worker < 1 || m->worker > d->workers)
        return;
    task_key(d, m->task >= 0 && m->task < d->tasks ? m->task : 0, key, sizeof(key));
    switch (m->kind) {
    case MSG_ACQUIRED:
        if (!add_ms(t, m->ms))
            t->errors = true;
        if (d->crash && m->worker == 1 && t->victim_task < 0) {
            (void)kill(pids[1], SIGKILL);
            t->victim_task = m->task;
            t->victim_token = m->token;
            t->crash_at = tl_cli_mono_ms();
            progress_line(d, tty, "  worker-1 killed with SIGKILL while holding %s (token %llu)",
                          key, (unsigned long long)m->token);
        } else if (m->stolen) {
            if (d->crash && m->task == t->victim_task && t->recovered_by == 0) {
                t->recovered_by = m->worker;
                t->recovered_token = m->token;
                t->recovered_at = tl_cli_mono_ms();
            }
            progress_line(d, tty, "  %s was stale: taken over by worker-%d (token %llu)", key,
                          (int)m->worker, (unsigned long long)m->token);
        }
        break;
    case MSG_DONE:
        t->done++;
        t->conflicts[m->worker] = m->conflicts;
        if (!tty)
            progress_line(d, tty, "  %s done by worker-%d (%d/%d)", key, (int)m->worker, t->done,
                          d->tasks);
        break;
    case MSG_STATS:
        t->conflicts[m->worker] = m->conflicts;
        t->retries += m->retries;
        t->stale += m->stale;
        t->acquired += m->acquired;
        break;
    case MSG_ERROR:
        t->errors = true;
        if (tty)
            (void)printf("\r%-79s\r", "");
        tl_cli_error(d->cli, "%.200s", m->text);
        break;
    default: break;
    }
    if (tty && !d->cli->quiet && !d->cli->json)
        draw_bar(d, t, start);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

struct verdict {
    int done, twice, missing;
    char twice_list[256], missing_list[256];
};

static bool check_ledger(const struct demo *d, struct verdict *v)
{
    bool *done = calloc((size_t)d->tasks, sizeof(*done));
    int *count = calloc((size_t)d->tasks, sizeof(*count));
    bool ok = done != NULL && count != NULL && read_ledger(d, done, count) >= 0;

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
    free(done);
    free(count);
    return ok;
}

static void summary_text(const struct demo *d, const struct tally *t, const struct verdict *v,
                         int64_t elapsed, double avg, double p99)
{
    char key[96];

    (void)printf("\nSummary (workers: %d, tasks: %d, time: %.1f s, store: %s)\n", d->workers,
                 d->tasks, (double)elapsed / 1000.0,
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
        (void)printf("  Crash: worker-1 was killed with SIGKILL while holding %s (token %llu).\n",
                     key, (unsigned long long)t->victim_token);
        if (t->recovered_by != 0)
            (void)printf("  Recovered: %s went stale after its %.0f s lock timeout and "
                         "worker-%d took it\n  through steal-stale (token %llu) %.1f s after "
                         "the crash.\n",
                         key, LOCK_TIMEOUT_MS / 1000.0, t->recovered_by,
                         (unsigned long long)t->recovered_token,
                         (double)(t->recovered_at - t->crash_at) / 1000.0);
        else
            (void)printf("  NOT recovered: no worker took %s over.\n", key);
    }
    (void)printf("  Conflicts: %llu (attempts that found a task held by another worker).\n",
                 (unsigned long long)t->conflicts_total);
    (void)printf("  Retries: %llu (every remaining task was held; the worker waited %d ms and "
                 "looked again).\n",
                 (unsigned long long)t->retries, IDLE_MS);
    (void)printf("  Stale locks claimed: %llu.\n", (unsigned long long)t->stale);
    (void)printf("  Acquisition time: average %.2f ms, p99 %.2f ms (%zu acquisitions).\n", avg, p99,
                 t->nms);
}

static int summary_json(const struct demo *d, const struct tally *t, const struct verdict *v,
                        int64_t elapsed, double avg, double p99)
{
    char key[96];
    json_t *crash = json_null();

    if (d->crash && t->victim_task >= 0) {
        task_key(d, t->victim_task, key, sizeof(key));
        crash =
            json_pack("{s:s, s:s, s:I, s:o, s:I, s:I}", "worker", "worker-1", "task", key, "token",
                      (json_int_t)t->victim_token, "recovered_by",
                      t->recovered_by ? json_sprintf("worker-%d", t->recovered_by) : json_null(),
                      "recovered_token", (json_int_t)t->recovered_token, "recovered_after_ms",
                      (json_int_t)(t->recovered_by ? t->recovered_at - t->crash_at : 0));
    }
    return tl_cli_print_json(
        d->cli,
        json_pack("{s:s, s:i, s:i, s:I, s:b, s:i, s:i, s:i, s:I, s:I, s:I, s:{s:f, s:f, "
                  "s:I}, s:o}",
                  "store", d->store, "workers", d->workers, "tasks", d->tasks, "elapsed_ms",
                  (json_int_t)elapsed, "exactly_once", v->twice == 0 && v->missing == 0, "done",
                  v->done, "done_twice", v->twice, "missing", v->missing, "conflicts",
                  (json_int_t)t->conflicts_total, "retries", (json_int_t)t->retries,
                  "stale_locks_claimed", (json_int_t)t->stale, "acquisition_ms", "average", avg,
                  "p99", p99, "count", (json_int_t)t->nms, "crash", crash));
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

/* Creates the temporary directory, the store URL and the ledger path. */
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
    if (d->ledger == NULL || d->store == NULL) {
        tl_cli_error(d->cli, "out of memory");
        return TL_EXIT_STORE;
    }
    return TL_EXIT_OK;
}

static void cleanup(struct demo *d)
{
    static const char *const files[] = {"/ledger", "/demo.db", "/demo.db-wal", "/demo.db-shm",
                                        "/demo.db-journal"};

    if (d->dir != NULL) {
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            char *p = concat(d->dir, files[i]);

            if (p != NULL)
                (void)unlink(p);
            free(p);
        }
        (void)rmdir(d->dir);
    }
    free(d->dir);
    free(d->ledger);
    free(d->store);
}

/*
 * Reads reports until every worker has closed the pipe, or with `until_crash` until the crash
 * victim was killed. `tty`: draw the progress bar.
 */
static void collect(const struct demo *d, struct tally *t, int rd, pid_t *pids, int64_t start,
                    bool until_crash)
{
    bool tty = isatty(STDOUT_FILENO) && !d->cli->quiet && !d->cli->json;
    int64_t give_up = tl_cli_mono_ms() + (until_crash ? 10000 : DEADLINE_MS + 5000);

    if (tty)
        draw_bar(d, t, start);
    while (!(until_crash && t->victim_task >= 0)) {
        struct pollfd p = {.fd = rd, .events = POLLIN};
        int n = poll(&p, 1, 100);

        if (interrupted || tl_cli_mono_ms() > give_up || (until_crash && t->errors)) {
            t->errors = true;
            break;
        }
        if (n <= 0) {
            if (tty)
                draw_bar(d, t, start);
            continue;
        }
        ssize_t got = read(rd, t->buf + t->have, sizeof(t->buf) - t->have);
        if (got == 0)
            break;
        if (got < 0)
            continue;
        t->have += (size_t)got;
        size_t off = 0;
        for (; t->have - off >= sizeof(struct msg); off += sizeof(struct msg)) {
            struct msg m;

            memcpy(&m, t->buf + off, sizeof(m));
            handle(d, t, &m, pids, tty, start);
        }
        memmove(t->buf, t->buf + off, t->have - off);
        t->have -= off;
    }
    if (tty && !until_crash)
        (void)printf("\n");
}

static int run_demo(struct tl_cli *cli, int argc, char **argv)
{
    struct demo d = {.cli = cli, .workers = 4, .tasks = 40};
    struct tally t = {.victim_task = -1};
    pid_t pids[MAX_WORKERS + 1] = {0};
    int fds[2] = {-1, -1};
    tl_manager *m = NULL;
    int rc = parse(cli, argc, argv, &d);

    if (rc >= 0)
        return rc;
    if (cli->store != NULL)
        tl_cli_handoff(cli, cli->store); /* before the temporary directory exists */
    if ((rc = setup(&d)) != TL_EXIT_OK)
        goto out;

    /* Open the store once before the workers start: it checks the URL and creates the
     * tables. No lock is taken, so no heartbeat thread exists when we fork. */
    struct tl_cli probe = *cli;
    probe.store = d.store;
    if ((rc = tl_cli_connect(&probe, NULL, &m)) != TL_EXIT_OK)
        goto out;
    /* A store that restricts its keys (as GitHub does) would refuse every task: say so now,
     * rather than after every worker failed. */
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
        (void)printf(
            "tasklock demo: %d worker%s share%s %d task%s through %s%s\n", d.workers,
            d.workers == 1 ? "" : "s", d.workers == 1 ? "s" : "", d.tasks, d.tasks == 1 ? "" : "s",
            d.own_store ? "a fresh SQLite store in " : "the store ", d.own_store ? d.dir : d.store);
    if (pipe(fds) != 0) {
        char err[128];
        tl_cli_error(cli, "cannot create a pipe: %s", tl_cli_strerror(errno, err));
        rc = TL_EXIT_STORE;
        goto out;
    }

    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_interrupt;
    (void)sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, &old_int);
    (void)sigaction(SIGTERM, &sa, &old_term);

    int64_t start = tl_cli_mono_ms();
    (void)fflush(NULL);
    for (int i = 1; i <= d.workers; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            (void)sigaction(SIGINT, &old_int, NULL);
            (void)sigaction(SIGTERM, &old_term, NULL);
            (void)close(fds[0]);
            d.report_fd = fds[1];
            _exit(worker_main(&d, i));
        }
        if (pids[i] < 0) {
            char err[128];
            tl_cli_error(cli, "cannot start worker %d: %s", i, tl_cli_strerror(errno, err));
            t.errors = true;
            break;
        }
        /* --crash: the others start once worker-1 holds its first task and was killed, so
         * that it always has one, however few the tasks. */
        if (i == 1 && d.crash) {
            collect(&d, &t, fds[0], pids, start, true);
            if (t.errors)
                break;
        }
    }
    (void)close(fds[1]);
    fds[1] = -1;

    if (!t.errors)
        collect(&d, &t, fds[0], pids, start, false);
    if (t.errors || interrupted) {
        for (int i = 1; i <= d.workers; i++) {
            if (pids[i] > 0)
                (void)kill(pids[i], SIGKILL);
        }
    }
    for (int i = 1; i <= d.workers; i++) {
        int status = 0;

        if (pids[i] <= 0)
            continue;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
            ;
        bool crashed = d.crash && i == 1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (!crashed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            t.errors = true;
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
    t.conflicts_total = live_conflicts(&t, d.workers);
    double avg = 0, p99 = 0;
    if (t.nms > 0) {
        for (size_t i = 0; i < t.nms; i++)
            avg += t.ms[i];
        avg /= (double)t.nms;
        qsort(t.ms, t.nms, sizeof(double), cmp_double);
        p99 = t.ms[(t.nms * 99 + 99) / 100 - 1];
    }
    if (cli->json)
        rc = summary_json(&d, &t, &v, elapsed, avg, p99);
    else
        summary_text(&d, &t, &v, elapsed, avg, p99);

    bool ok = v.twice == 0 && v.missing == 0 && (!d.crash || t.recovered_by != 0);
    if (t.errors)
        rc = rc ? rc : TL_EXIT_STORE;
    else if (!ok)
        rc = rc ? rc : TL_EXIT_BUSY;

out:
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0)
            (void)close(fds[i]);
    }
    tl_manager_free(m);
    free(t.ms);
    cleanup(&d);
    return rc;
}

static const char help[] =
    "Runs N worker processes over M tasks on a fresh temporary SQLite store (or the store\n"
    "of --store; the task keys are then demo-PID-task-NN). Each worker repeatedly picks a\n"
    "task that is not done, acquires it fail-fast (steal-stale if its holder is stale), does\n"
    "20-60 ms of simulated work, records it in a ledger and releases it. The summary checks\n"
    "the ledger: every task done exactly once. The demo's lock timeout is 2s (heartbeat\n"
    "500ms), so that a crashed worker's task is recovered quickly.\n"
    "\n"
    "Options:\n"
    "  --workers N   worker processes (default 4, at most 64)\n"
    "  --tasks M     tasks (default 40, at most 10000)\n"
    "  --crash       kill worker-1 with SIGKILL while it holds its first task, and show\n"
    "                another worker recovering that task through steal-stale\n"
    "\n"
    "Exit status: 0 every task done exactly once (and, with --crash, recovered), 1 the check\n"
    "failed, 2 usage error, 3 store error.\n";

const struct tl_cli_cmd tl_cli_cmd_demo = {
    .name = "demo",
    .usage = "demo [--workers N] [--tasks M] [--crash]",
    .summary = "Show workers sharing tasks, every task done exactly once",
    .help = help,
    .run = run_demo,
};
