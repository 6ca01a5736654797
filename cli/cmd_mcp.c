/*
 * cmd_mcp.c -- `tasklock mcp`: a Model Context Protocol server on stdio, through which AI agents
 * acquire, heartbeat, release and inspect locks (docs/mcp.md). The protocol is in mcp_server.c
 * and mcp_tools.c; this file is the transport and the process around them.
 *
 * Two threads of ours. The reader thread reads standard input, one JSON-RPC message per line,
 * and queues the messages; it answers `ping` at once, takes `notifications/cancelled` (a
 * waiting acquire leaves the key's line), refuses an id already in use, and notices the end of
 * input and SIGTERM/SIGINT/SIGHUP (whose handlers only write to a pipe it polls). The main
 * thread handles the queued messages in order with the one manager, whose own heartbeat thread
 * keeps the granted locks alive. A waiting acquire watches a flag that only a handler of SIGUSR1
 * sets, and the reader sends SIGUSR1 to the main thread alone (pthread_kill): the flag is
 * written and read on one thread, as tl_acquire_opts.cancel wants it.
 *
 * Standard output carries protocol messages only, each written whole under a mutex; messages
 * for people go to standard error. On the end of input or a signal the granted locks are
 * released (--on-exit release) or left to go stale (--on-exit keep), and the process exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cli.h"
#include "mcp.h"

enum { OPT_ON_EXIT = TL_OPT_COMMAND, OPT_MAX_WAIT, OPT_ALLOW_FORCE };

static const char help[] =
    "Serves the Model Context Protocol on standard input and output, one JSON-RPC message per\n"
    "line, so that AI agents lock through tools: lock_acquire, claim_next, lock_heartbeat,\n"
    "lock_release (done: finished), lock_reopen, lock_status, lock_list, lock_history; and\n"
    "read the locks as resources (tasklock://locks, tasklock://locks/{key}). Standard output "
    "carries protocol messages only; messages for\n"
    "people go to standard error. docs/mcp.md shows how to add it to an agent's configuration.\n"
    "\n"
    "The server heartbeats every lock it granted while its client is connected. When the\n"
    "input ends (the client closed it or died) or on SIGTERM, SIGINT or SIGHUP, it releases\n"
    "them, or with --on-exit keep stops heartbeating them so that they go stale after their\n"
    "lock timeout, and exits.\n"
    "\n"
    "The worker id is --worker (or $TASKLOCK_WORKER); without one, the client's name from its\n"
    "initialize request (clientInfo.name) and a random suffix of 6 hex digits, new for every\n"
    "connection, so that two agents never share an identity by accident.\n"
    "\n"
    "Options:\n"
    "  --on-exit release|keep  what happens to the granted locks when the client goes away\n"
    "                          (default release)\n"
    "  --max-wait DURATION     the longest a lock_acquire or claim_next waits, counted from\n"
    "                          the request's arrival (default 50s, below the usual 60 s\n"
    "                          request timeout of MCP clients; 0: never wait)\n"
    "  --allow-force           offer the strategy \"force\" (take a lock from a live holder)\n"
    "\n"
    "Exit status: 0 when the client went away, 2 usage error.\n";

/* ---- the state the two threads share ---- */

#define QUEUE_MAX ((size_t)64 * 1024 * 1024) /* bytes of messages read and not yet handled */

struct msg {
    struct msg *next;
    char *text;
    size_t len;
    int64_t arrived_ms;
    char *id; /* the request id as compact JSON, or NULL */
};

struct io {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a message was queued, or the input ended */
    pthread_cond_t drained; /* the queue shrank, or the main thread stopped */
    struct msg *head, *tail;
    size_t queued;  /* bytes in the queue */
    bool eof;       /* no more input: the queue is still handled */
    bool stop;      /* a signal, or standard output closed: stop now */
    int signal;     /* the signal that stopped us, or 0 */
    char *inflight; /* the id of the request the main thread handles, or NULL */
    bool waiting;   /* ... and it is an acquire waiting in line */
    bool cancelled; /* ... and notifications/cancelled named it */
    pthread_t main_thread;
    pthread_mutex_t out_mu; /* one message at a time on standard output */
    bool out_broken;        /* under out_mu */
    int wake_r, wake_w;     /* the reader polls wake_r: signal numbers, or 'Q' to quit */
};

static int wake_fd = -1; /* the write end, for the signal handlers; set before they are installed */
static volatile sig_atomic_t cancel_flag; /* written and read on the main thread only */

static void on_stop_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;

    (void)!write(wake_fd, &b, 1);
    errno = saved;
}

static void on_cancel_signal(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static int64_t mono_ms(void)
{
    return tl_mcp_mono_ms(NULL);
}

/* Writes one message and its newline, whole (one writev, unless the pipe takes part of it).
 * False when standard output is gone. */
static bool send_line(struct io *io, const char *line)
{
    static char newline[] = "\n";
    struct iovec iov[2] = {{.iov_base = (void *)line, .iov_len = strlen(line)},
                           {.iov_base = newline, .iov_len = 1}};
    int i = 0;
    bool ok;

    pthread_mutex_lock(&io->out_mu);
    ok = !io->out_broken;
    while (ok && i < 2) {
        ssize_t w = writev(STDOUT_FILENO, iov + i, 2 - i);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ok = false;
            io->out_broken = true;
            break;
        }
        size_t left = (size_t)w;
        while (i < 2 && left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            i++;
        }
        if (i < 2) {
            iov[i].iov_base = (char *)iov[i].iov_base + left;
            iov[i].iov_len -= left;
        }
    }
    pthread_mutex_unlock(&io->out_mu);
    return ok;
}

static void send_error(struct io *io, const json_t *id, int code, const char *message)
{
    char *line = tl_mcp_error_line(id, code, message);

    if (line != NULL)
        (void)send_line(io, line);
    free(line);
}

static void msg_free(struct msg *m)
{
    if (m == NULL)
        return;
    free(m->text);
    free(m->id);
    free(m);
}

/* ---- the reader thread ---- */

/* notifications/cancelled: the request in hand stops (a waiting acquire leaves the line) and
 * gets no answer; a queued one is dropped. Under io->mu. */
static void cancel_request(struct io *io, const char *id)
{
    if (io->inflight != NULL && strcmp(io->inflight, id) == 0) {
        io->cancelled = true;
        if (io->waiting)
            (void)pthread_kill(io->main_thread, SIGUSR1);
        return;
    }
    for (struct msg **pp = &io->head; *pp != NULL; pp = &(*pp)->next) {
        struct msg *m = *pp;

        if (m->id != NULL && strcmp(m->id, id) == 0) {
            *pp = m->next;
            io->queued -= m->len;
            if (io->tail == m) {
                io->tail = NULL;
                for (struct msg *t = io->head; t != NULL; t = t->next)
                    io->tail = t;
            }
            msg_free(m);
            return;
        }
    }
}

/* Whether `id` belongs to a request not yet answered. Under io->mu. */
static bool id_in_use(const struct io *io, const char *id)
{
    if (io->inflight != NULL && strcmp(io->inflight, id) == 0)
        return true;
    for (const struct msg *m = io->head; m != NULL; m = m->next) {
        if (m->id != NULL && strcmp(m->id, id) == 0)
            return true;
    }
    return false;
}

/* One line from the client: handled here (ping, cancellation, an id in use) or queued. */
static void take_line(struct io *io, const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *id = json_object_get(j, "id");
    const char *method = json_string_value(json_object_get(j, "method"));
    json_t *params = json_object_get(j, "params");
    bool valid_id = json_is_string(id) || json_is_integer(id);
    char *id_text = valid_id ? json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

    if (method != NULL && id == NULL && strcmp(method, "notifications/cancelled") == 0) {
        json_t *rid = json_object_get(params, "requestId");
        char *rid_text = json_is_string(rid) || json_is_integer(rid)
                             ? json_dumps(rid, JSON_ENCODE_ANY | JSON_COMPACT)
                             : NULL;
        if (rid_text != NULL) {
            pthread_mutex_lock(&io->mu);
            cancel_request(io, rid_text);
            pthread_mutex_unlock(&io->mu);
        }
        free(rid_text);
        goto out;
    }
    if (method != NULL && id_text != NULL) {
        pthread_mutex_lock(&io->mu);
        bool dup = id_in_use(io, id_text);
        pthread_mutex_unlock(&io->mu);
        if (dup) { /* only the reader queues, and the main thread takes ids only from the queue */
            char why[200];

            (void)snprintf(why, sizeof(why),
                           "Invalid Request: id %.64s is in use by a request not yet answered",
                           id_text);
            send_error(io, NULL, TL_MCP_INVALID_REQUEST, why);
            goto out;
        }
    }
    const char *version = json_string_value(json_object_get(j, "jsonrpc"));
    if (method != NULL && valid_id && strcmp(method, "ping") == 0 && version != NULL &&
        strcmp(version, "2.0") == 0 && (params == NULL || json_is_object(params)) &&
        json_object_get(params, "_meta") == NULL) {
        /* At once, even while an acquire waits: clients ping to see that we are alive. */
        json_t *doc = json_pack("{s:s, s:O, s:{}}", "jsonrpc", "2.0", "id", id, "result");
        char *line = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

        if (line != NULL)
            (void)send_line(io, line);
        free(line);
        json_decref(doc);
        goto out;
    }

    struct msg *m = calloc(1, sizeof(*m));
    char *copy = malloc(len + 1);
    if (m == NULL || copy == NULL) {
        free(m);
        free(copy);
        send_error(io, valid_id ? id : NULL, TL_MCP_INTERNAL_ERROR,
                   "Internal error: out of memory");
        goto out;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    *m = (struct msg){.text = copy, .len = len, .arrived_ms = mono_ms(), .id = id_text};
    id_text = NULL;

    pthread_mutex_lock(&io->mu);
    if (io->tail != NULL)
        io->tail->next = m;
    else
        io->head = m;
    io->tail = m;
    io->queued += m->len;
    pthread_cond_signal(&io->cv);
    /* A client that writes faster than it reads our answers: stop reading for a while rather
     * than queue without bound. */
    while (io->queued > QUEUE_MAX && !io->stop)
        pthread_cond_wait(&io->drained, &io->mu);
    pthread_mutex_unlock(&io->mu);
out:
    free(id_text);
    json_decref(j);
}

/* Whether a line holds anything but white space (blank lines are skipped). */
static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    }
    return true;
}

static void stop_reading(struct io *io, int sig)
{
    pthread_mutex_lock(&io->mu);
    io->eof = true;
    if (sig != 0) {
        io->stop = true;
        io->signal = sig;
    }
    if (io->waiting) /* a waiting acquire leaves the line */
        (void)pthread_kill(io->main_thread, SIGUSR1);
    pthread_cond_broadcast(&io->cv);
    pthread_mutex_unlock(&io->mu);
}

static void *reader(void *arg)
{
    struct io *io = arg;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    bool skipping = false; /* the rest of a line that was too long */
    int sig = 0;

    if (buf == NULL) {
        (void)fprintf(stderr, "tasklock: mcp: out of memory\n");
        stop_reading(io, SIGTERM);
        return NULL;
    }
    for (;;) {
        struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                {.fd = io->wake_r, .events = POLLIN}};

        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents & POLLIN) {
            unsigned char b = 0;

            if (read(io->wake_r, &b, 1) == 1 && b != 'Q')
                sig = b;
            break;
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) == 0)
            continue;
        if (cap - len < 65536) {
            char *p = realloc(buf, cap * 2);

            if (p == NULL) {
                send_error(io, NULL, TL_MCP_INTERNAL_ERROR, "Internal error: out of memory");
                len = 0;
                skipping = true;
                continue;
            }
            buf = p;
            cap *= 2;
        }
        ssize_t got = read(STDIN_FILENO, buf + len, cap - len);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0)
            break;
        size_t from = len, start = 0;
        len += (size_t)got;
        for (size_t i = from; i < len; i++) {
            if (buf[i] != '\n')
                continue;
            if (!skipping && !blank(buf + start, i - start))
                take_line(io, buf + start, i - start);
            skipping = false;
            start = i + 1;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        if (len > TL_MCP_LINE_MAX) {
            if (!skipping)
                send_error(io, NULL, TL_MCP_INVALID_REQUEST,
                           "Invalid Request: message longer than 4 MiB");
            skipping = true;
            len = 0;
        }
        if (cap > 1048576 && len < 65536) { /* give back what a long line took */
            char *p = realloc(buf, 65536);

            if (p != NULL) {
                buf = p;
                cap = 65536;
            }
        }
    }
    if (sig == 0 && !skipping && len > 0 && !blank(buf, len))
        take_line(io, buf, len); /* the last message, without its newline */
    free(buf);
    stop_reading(io, sig);
    return NULL;
}

/* ---- the engine's hooks ---- */

static void begin_wait(void *ud, const char *id)
{
    struct io *io = ud; /* the first member of struct server_ctx */

    (void)id;
    pthread_mutex_lock(&io->mu);
    cancel_flag = io->cancelled || io->eof; /* the main thread: no other writer runs now */
    io->waiting = true;
    pthread_mutex_unlock(&io->mu);
}

static enum tl_mcp_wait_end end_wait(void *ud)
{
    struct io *io = ud; /* the first member of struct server_ctx */
    enum tl_mcp_wait_end r;

    pthread_mutex_lock(&io->mu);
    io->waiting = false;
    r = io->cancelled ? TL_MCP_WAIT_CANCELLED : io->eof ? TL_MCP_WAIT_SHUTDOWN : TL_MCP_WAIT_ON;
    pthread_mutex_unlock(&io->mu);
    return r;
}

/* What the engine's hooks get as their `ud`. */
struct server_ctx {
    struct io io;
    const struct tl_cli *cli;
    struct tl_cli conn_cli; /* the library's log callback keeps a pointer to it */
    struct tl_cli_outcome outcome;
};
_Static_assert(offsetof(struct server_ctx, io) == 0, "begin_wait and end_wait take it as an io");

static tl_status connect_with(void *ud, const char *worker_id, tl_manager **out, char *err,
                              size_t errsize)
{
    struct server_ctx *cc = ud;

    cc->conn_cli = *cc->cli;
    cc->conn_cli.worker = worker_id;
    cc->conn_cli.handed_off = true; /* decided at the start, before any thread ran */
    memset(&cc->outcome, 0, sizeof(cc->outcome));
    cc->conn_cli.outcome = &cc->outcome;
    int rc = tl_cli_connect(&cc->conn_cli, NULL, out);
    if (rc == TL_EXIT_OK)
        return TL_OK; /* with -v, tl_cli_connect said which store and worker */
    (void)snprintf(err, errsize, "%s", cc->outcome.error[0] ? cc->outcome.error : "failed");
    return rc == TL_EXIT_USAGE ? TL_EINVAL : TL_ESTORE;
}

static int parse(struct tl_cli *cli, int argc, char **argv, bool *keep, uint32_t *max_wait,
                 bool *allow_force)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS,
                                             {"on-exit", 1, NULL, OPT_ON_EXIT},
                                             {"max-wait", 1, NULL, OPT_MAX_WAIT},
                                             {"allow-force", 0, NULL, OPT_ALLOW_FORCE},
                                             {0}};

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        if (opt == OPT_ON_EXIT) {
            if (strcmp(optarg, "release") != 0 && strcmp(optarg, "keep") != 0)
                return tl_cli_usage_error(cli, "--on-exit: \"%s\" is neither release nor keep",
                                          optarg);
            *keep = strcmp(optarg, "keep") == 0;
        } else if (opt == OPT_MAX_WAIT) {
            if (strcmp(optarg, "0") == 0)
                *max_wait = 0;
            else if (!tl_cli_duration(cli, "--max-wait", optarg, max_wait))
                return TL_EXIT_USAGE;
        } else if (opt == OPT_ALLOW_FORCE) {
            *allow_force = true;
        } else {
            int rc = tl_cli_global_opt(cli, opt, optarg, argv);
            if (rc >= 0)
                return rc;
        }
    }
    if (optind != argc)
        return tl_cli_usage_error(cli, "takes no arguments (\"%s\")", argv[optind]);
    return -1;
}

static bool install(int sig, void (*fn)(int), struct sigaction *saved)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fn;
    sa.sa_flags = SA_RESTART;
    (void)sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, saved) == 0;
}

static int run_mcp(struct tl_cli *cli, int argc, char **argv)
{
    static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};
    struct sigaction saved[3], saved_usr1;
    bool keep = false, allow_force = false;
    uint32_t max_wait = 50000;

    /* Standard output is the protocol's: no --json error document of ours, ever. */
    cli->outcome->stdout_given = true;
    int rc = parse(cli, argc, argv, &keep, &max_wait, &allow_force);
    int pipefd[2];

    if (rc >= 0)
        return rc;
    /* A closed standard input or output would be taken by the pipe below: make them /dev/null
     * (no input: the end at once; no output: answers go nowhere). */
    for (int fd = STDIN_FILENO; fd <= STDOUT_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) < 0 &&
            open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY) != fd)
            return TL_EXIT_STORE;
    }
    /* A network store: this process becomes tasklock-net now, before any thread starts. */
    tl_cli_handoff(cli, tl_cli_store_url(cli));

    struct server_ctx *sc = calloc(1, sizeof(*sc));
    if (sc == NULL || pipe(pipefd) != 0) {
        tl_cli_error(cli, "out of memory");
        free(sc);
        return TL_EXIT_STORE;
    }
    struct io *io = &sc->io;
    sc->cli = cli;
    (void)fcntl(pipefd[0], F_SETFD, FD_CLOEXEC);
    (void)fcntl(pipefd[1], F_SETFD, FD_CLOEXEC);
    (void)fcntl(pipefd[1], F_SETFL, O_NONBLOCK);
    io->wake_r = pipefd[0];
    io->wake_w = pipefd[1];
    io->main_thread = pthread_self();
    pthread_mutex_init(&io->mu, NULL);
    pthread_mutex_init(&io->out_mu, NULL);
    pthread_cond_init(&io->cv, NULL);
    pthread_cond_init(&io->drained, NULL);
    wake_fd = io->wake_w;

    (void)signal(SIGPIPE, SIG_IGN); /* a closed standard output is an error to handle */
    (void)install(SIGUSR1, on_cancel_signal, &saved_usr1);
    for (size_t i = 0; i < 3; i++)
        (void)install(stop_signals[i], on_stop_signal, &saved[i]);

    const struct tl_mcp_config cfg = {
        .worker_id = cli->worker,
        .max_wait_ms = max_wait,
        .allow_force = allow_force,
        .connect = connect_with,
        .ud = sc,
        .cancel = &cancel_flag,
        .begin_wait = begin_wait,
        .end_wait = end_wait,
    };
    struct tl_mcp_server *srv = tl_mcp_server_new(&cfg);
    pthread_t rd;
    if (srv == NULL || pthread_create(&rd, NULL, reader, io) != 0) {
        tl_cli_error(cli, "cannot start: out of memory");
        rc = TL_EXIT_STORE;
        tl_mcp_server_free(srv);
        goto out_signals;
    }
    tl_cli_info(cli, "serving MCP on standard input and output (on exit: %s; max wait %u ms)",
                keep ? "keep" : "release", max_wait);

    for (;;) {
        pthread_mutex_lock(&io->mu);
        while (io->head == NULL && !io->eof)
            pthread_cond_wait(&io->cv, &io->mu);
        struct msg *m = io->stop ? NULL : io->head;
        if (m != NULL) {
            io->head = m->next;
            if (io->head == NULL)
                io->tail = NULL;
            io->queued -= m->len;
            pthread_cond_signal(&io->drained);
            io->inflight = m->id;
            m->id = NULL;
            io->cancelled = false;
        }
        pthread_mutex_unlock(&io->mu);
        if (m == NULL)
            break;

        char *reply = tl_mcp_handle(srv, m->text, m->len, m->arrived_ms);
        pthread_mutex_lock(&io->mu);
        bool drop = io->cancelled;
        free(io->inflight);
        io->inflight = NULL;
        pthread_mutex_unlock(&io->mu);
        bool sent = reply == NULL || drop || send_line(io, reply);
        free(reply);
        msg_free(m);
        if (!sent) { /* standard output is gone: so is the client */
            pthread_mutex_lock(&io->mu);
            io->stop = true;
            pthread_mutex_unlock(&io->mu);
            break;
        }
    }

    /* Wake the reader if it still reads (we stopped for standard output), and wait for it. */
    pthread_mutex_lock(&io->mu);
    io->stop = true;
    pthread_cond_broadcast(&io->drained);
    pthread_mutex_unlock(&io->mu);
    unsigned char q = 'Q';
    (void)!write(io->wake_w, &q, 1);
    (void)pthread_join(rd, NULL);

    size_t held = tl_mcp_held_count(srv), failed = 0;
    if (keep && held > 0) {
        tl_cli_note(cli, "the client went away; %zu lock%s left to go stale (--on-exit keep)", held,
                    held == 1 ? "" : "s");
    } else if (held > 0) {
        size_t n = tl_mcp_release_all(srv, 5000, &failed);
        tl_cli_info(cli, "the client went away; released %zu lock%s", n, n == 1 ? "" : "s");
    }
    if (io->signal != 0)
        tl_cli_info(cli, "stopped by signal %d", io->signal);
    tl_mcp_server_free(srv); /* stops the heartbeats */
    rc = failed > 0 ? TL_EXIT_STORE : TL_EXIT_OK;

    for (struct msg *m = io->head, *next; m != NULL; m = next) {
        next = m->next;
        msg_free(m);
    }
out_signals:
    for (size_t i = 0; i < 3; i++)
        (void)sigaction(stop_signals[i], &saved[i], NULL);
    (void)sigaction(SIGUSR1, &saved_usr1, NULL);
    wake_fd = -1;
    (void)close(io->wake_r);
    (void)close(io->wake_w);
    pthread_cond_destroy(&io->cv);
    pthread_cond_destroy(&io->drained);
    pthread_mutex_destroy(&io->out_mu);
    pthread_mutex_destroy(&io->mu);
    free(sc);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_mcp = {
    .name = "mcp",
    .usage = "mcp [--on-exit release|keep] [--max-wait DURATION] [--allow-force]",
    .summary = "Serve the locks to AI agents over the Model Context Protocol (stdio)",
    .help = help,
    .run = run_mcp,
};
