/*
 * cmd_serve.c -- `tasklock serve`: a live dashboard page, a JSON API and Prometheus /metrics
 * (issue 16; serve.h has the map of its modules). This file: options, the admin token, the
 * listening socket, signals, start and stop.
 *
 * serve is only in tasklock-net (it links libmicrohttpd, which `tasklock` should not load at
 * every start): `tasklock serve` hands off to it whatever the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#ifdef TL_CLI_SERVE
#include "serve.h"
#endif

enum {
    OPT_LISTEN = TL_OPT_COMMAND,
    OPT_ADMIN_TOKEN_FILE,
    OPT_REFRESH,
    OPT_READ_ONLY_PUBLIC,
};

static const char help[] =
    "Serves a live dashboard page, a JSON API and Prometheus metrics over HTTP, for any\n"
    "store. It reads the store once per refresh interval for every client. It prints the URL\n"
    "it listens on (with --json: {\"listening\":URL,\"port\":N}) and runs until SIGINT or\n"
    "SIGTERM. docs/serve.md has the routes and the metrics.\n"
    "\n"
    "Routes: / (the page), /api/locks, /api/locks/KEY, /api/history?key=&limit=, /api/metrics,\n"
    "/api/events (server-sent events), /metrics (Prometheus), and with an admin token\n"
    "POST /api/locks/KEY/release[?token=N] (Authorization: Bearer TOKEN) to force-release.\n"
    "\n"
    "Options:\n"
    "  --listen ADDR:PORT         where to listen (default 127.0.0.1:7878; [::1]:PORT for IPv6;\n"
    "                             port 0: any free port)\n"
    "  --admin-token-file FILE    enables force-release with the token this file holds\n"
    "                             (surrounding white space ignored); without it, read-only\n"
    "  --refresh DURATION         how often to read the store (default 1s, at least 50ms)\n"
    "  --read-only-public         allow a non-loopback --listen without an admin token\n"
    "  -v                         one line per request on stderr (--json: a JSON object)\n"
    "\n"
    "Exit status: 0 after SIGINT/SIGTERM, 2 usage error, 3 store error or cannot listen.\n";

#ifdef TL_CLI_SERVE

struct opts {
    const char *listen;
    const char *token_file;
    uint32_t refresh_ms;
    bool read_only_public;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Reads the admin token from `path` into s->admin_token, surrounding white space dropped.
 * Messages never show the token. */
static int read_token(struct tl_cli *cli, struct tl_serve *s, const char *path)
{
    char buf[4097], err[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        tl_cli_error(cli, "--admin-token-file: cannot open %s: %s", path,
                     tl_cli_strerror(errno, err));
        return TL_EXIT_USAGE;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
        tl_cli_note(cli, "--admin-token-file: %s can be read by other users (chmod 600 it)", path);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof(buf) - 1)
            break;
    }
    (void)close(fd);
    if (n == sizeof(buf) - 1) {
        tl_cli_error(cli, "--admin-token-file: %s is too long for a token (4 KiB at most)", path);
        return TL_EXIT_USAGE;
    }
    size_t a = 0, b = n;
    while (a < b && is_space(buf[a]))
        a++;
    while (b > a && is_space(buf[b - 1]))
        b--;
    if (a == b) {
        tl_cli_error(cli, "--admin-token-file: %s holds no token", path);
        return TL_EXIT_USAGE;
    }
    s->admin_token = strndup(buf + a, b - a);
    s->admin_token_len = b - a;
    memset(buf, 0, sizeof(buf));
    if (s->admin_token == NULL) {
        tl_cli_error(cli, "out of memory");
        return TL_EXIT_STORE;
    }
    s->admin_enabled = true;
    return TL_EXIT_OK;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

/* Splits "HOST:PORT" / "[V6]:PORT" into host and port. */
static bool split_listen(const char *text, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon;

    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - text - 1) >= hsize)
            return false;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= hsize ||
            memchr(text, ':', (size_t)(colon - text)) != NULL)
            return false;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
    }
    char *end = NULL;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (host[0] == '\0' || colon[1] < '0' || colon[1] > '9' || *end != '\0' || p > 65535)
        return false;
    (void)snprintf(port, psize, "%s", colon + 1);
    return true;
}

/* Opens the listening socket. Returns the exit code; *fd and *url on success. */
static int open_listener(struct tl_cli *cli, const struct opts *o, bool *loopback, int *fd,
                         char *url, size_t usize)
{
    char host[256], port[8], err[128];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;

    if (!split_listen(o->listen, host, sizeof(host), port, sizeof(port)))
        return tl_cli_usage_error(cli,
                                  "--listen: give ADDR:PORT (127.0.0.1:7878, [::1]:7878, "
                                  "0.0.0.0:7878), not \"%s\"",
                                  o->listen);
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return tl_cli_usage_error(cli, "--listen: %s: %s", host, gai_strerror(rc));
    *loopback = true;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        *loopback = *loopback && is_loopback(ai->ai_addr);
    *fd = -1;
    int saved = 0;
    for (struct addrinfo *ai = res; ai != NULL && *fd < 0; ai = ai->ai_next) {
        int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        int one = 1;

        if (s < 0) {
            saved = errno;
            continue;
        }
        (void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(s, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s, 128) != 0) {
            saved = errno;
            (void)close(s);
            continue;
        }
        *fd = s;
    }
    freeaddrinfo(res);
    if (*fd < 0) {
        tl_cli_error(cli, "cannot listen on %s: %s", o->listen, tl_cli_strerror(saved, err));
        return TL_EXIT_STORE;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    unsigned bound = 0;
    if (getsockname(*fd, (struct sockaddr *)&ss, &len) == 0)
        bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    (void)snprintf(url, usize, "http://%s%s%s:%u/", strchr(host, ':') ? "[" : "", host,
                   strchr(host, ':') ? "]" : "", bound);
    return TL_EXIT_OK;
}

static int serve(struct tl_cli *cli, const struct opts *o)
{
    struct tl_serve s = {.cli = cli, .refresh_ms = o->refresh_ms};
    char url[400];
    bool loopback = true;
    int fd = -1, rc;
    sigset_t set;

    if (o->token_file != NULL && (rc = read_token(cli, &s, o->token_file)) != TL_EXIT_OK)
        goto out;
    if ((rc = open_listener(cli, o, &loopback, &fd, url, sizeof(url))) != TL_EXIT_OK)
        goto out;
    if (!loopback && !s.admin_enabled && !o->read_only_public) {
        rc = tl_cli_usage_error(cli,
                                "--listen %s is not a loopback address: give "
                                "--admin-token-file, or --read-only-public to serve it "
                                "read-only to the network",
                                o->listen);
        goto out;
    }
    if ((rc = tl_cli_connect(cli, NULL, &s.m)) != TL_EXIT_OK)
        goto out;
    if (s.admin_enabled && (rc = tl_cli_connect(cli, NULL, &s.admin)) != TL_EXIT_OK)
        goto out;
    s.store_shown = tl_cli_store_shown(s.m);
    if (s.store_shown == NULL || tl_serve_state_init(&s) != 0) {
        tl_cli_error(cli, "out of memory");
        rc = TL_EXIT_STORE;
        goto out_state;
    }

    /* Every thread started from here on blocks these; the main thread waits for them. */
    (void)sigemptyset(&set);
    (void)sigaddset(&set, SIGINT);
    (void)sigaddset(&set, SIGTERM);
    (void)pthread_sigmask(SIG_BLOCK, &set, NULL);
    (void)signal(SIGPIPE, SIG_IGN); /* NOLINT(cert-err33-c) */
    if (tl_serve_state_start(&s) != 0 || tl_serve_http_start(&s, fd) != 0) {
        tl_cli_error(cli, "cannot start the server on %s", o->listen);
        rc = TL_EXIT_STORE;
        goto out_stop;
    }
    fd = -1; /* the server's now */
    if (cli->json)
        rc = tl_cli_print_json(cli, json_pack("{s:s, s:b, s:b}", "listening", url, "admin",
                                              s.admin_enabled, "store_ok", s.snap->store_ok));
    else
        (void)printf("listening on %s\n", url);
    if (fflush(stdout) != 0)
        rc = TL_EXIT_STORE;
    cli->outcome->printed = true;
    tl_cli_note(cli, "serving %s on %s (%s, refresh %ums)", s.store_shown, url,
                s.admin_enabled ? "admin token set" : "read-only", (unsigned)s.refresh_ms);

    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    tl_cli_info(cli, "signal %d: stopping", sig);
out_stop:
    tl_serve_state_stop(&s); /* ends the event streams */
    tl_serve_http_stop(&s);
out_state:
    tl_serve_state_fini(&s);
out:
    if (fd >= 0)
        (void)close(fd);
    tl_manager_free(s.m);
    tl_manager_free(s.admin);
    free(s.store_shown);
    if (s.admin_token != NULL)
        memset(s.admin_token, 0, s.admin_token_len);
    free(s.admin_token);
    return rc;
}

#endif /* TL_CLI_SERVE */

static int run_serve(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        TL_CLI_GLOBAL_LONGOPTS,
        {"listen", 1, NULL, OPT_LISTEN},
        {"admin-token-file", 1, NULL, OPT_ADMIN_TOKEN_FILE},
        {"refresh", 1, NULL, OPT_REFRESH},
        {"read-only-public", 0, NULL, OPT_READ_ONLY_PUBLIC},
        {0},
    };
#ifdef TL_CLI_SERVE
    struct opts o = {.listen = "127.0.0.1:7878", .refresh_ms = 1000};
#endif
    int rc;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
#ifdef TL_CLI_SERVE
        switch (opt) {
        case OPT_LISTEN: o.listen = optarg; continue;
        case OPT_ADMIN_TOKEN_FILE: o.token_file = optarg; continue;
        case OPT_READ_ONLY_PUBLIC: o.read_only_public = true; continue;
        case OPT_REFRESH:
            if (!tl_cli_duration(cli, "--refresh", optarg, &o.refresh_ms))
                return TL_EXIT_USAGE;
            if (o.refresh_ms < 50)
                return tl_cli_usage_error(cli, "--refresh: at least 50ms");
            continue;
        default: break;
        }
#else
        if (opt == OPT_LISTEN || opt == OPT_ADMIN_TOKEN_FILE || opt == OPT_READ_ONLY_PUBLIC ||
            opt == OPT_REFRESH)
            continue;
#endif
        rc = tl_cli_global_opt(cli, opt, optarg, argv);
        if (rc >= 0)
            return rc;
    }
    if (optind < argc)
        return tl_cli_usage_error(cli, "unexpected argument \"%s\"", argv[optind]);
#ifdef TL_CLI_SERVE
    if (o.read_only_public && o.token_file != NULL)
        return tl_cli_usage_error(cli, "--read-only-public and --admin-token-file: give one");
    return serve(cli, &o);
#else
    tl_cli_handoff_net(cli);
    tl_cli_error(cli, "this build has no tasklock-net beside tasklock, which serve needs");
    return TL_EXIT_STORE;
#endif
}

const struct tl_cli_cmd tl_cli_cmd_serve = {
    .name = "serve",
    .usage = "serve [--listen ADDR:PORT] [--admin-token-file FILE] [--refresh DURATION] "
             "[--read-only-public]",
    .summary = "Serve a live dashboard, a JSON API and Prometheus metrics over HTTP",
    .help = help,
    .run = run_serve,
};
