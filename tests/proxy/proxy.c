/*
 * proxy.c -- tl-proxy: a TCP proxy on the loopback interface for tests, which can freeze every
 * connection at once (a network partition: connections stay open, nothing gets through), thaw
 * them and drop them.
 *
 *   tl-proxy TARGET_HOST TARGET_PORT
 *
 * Listens on 127.0.0.1 on a port the kernel picks, prints "PORT\n" on stdout when it is ready,
 * and forwards each accepted connection to TARGET_HOST:TARGET_PORT (a loopback address: this is
 * a test tool). Then it reads commands from stdin, one per line, and answers each on stdout once
 * it has taken effect:
 *
 *   freeze   stop forwarding in both directions on every connection, and stop accepting new
 *            ones; every socket stays open. (The kernel still completes the handshakes of
 *            connects queued on the listening socket, up to its backlog: a client sees its
 *            connect succeed and then no answer, as behind a partition.)          -> "ok"
 *   thaw     forward and accept again, starting with whatever was held up         -> "ok"
 *   drop     close every proxied connection abruptly (RST to both sides)          -> "ok"
 *   stats    "ok conns=N accepted=N bytes=N frozen=0|1": open connections, connections
 *            accepted so far, bytes forwarded so far
 *
 * Anything else is answered "error ...". At end of file on stdin it closes everything and exits
 * 0, so a test that dies takes its proxy with it.
 *
 * One thread, one poll() loop, non-blocking sockets. Each direction of a connection has a
 * bounded buffer; a side whose peer's buffer is full is not read until the buffer drains. An end
 * of file is passed on as a shutdown of the other side's write half once the buffer is empty;
 * an error on either socket closes both abruptly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE  65536 /* per direction of a connection */
#define LINE_SIZE 256   /* longest command */
#define BACKLOG   128

/* One direction's bytes: read from one side, not yet written to the other. */
struct buf {
    size_t off, len; /* the pending bytes are data[off .. off+len) */
    char data[BUF_SIZE];
};

/* A proxied connection: side 0 is the client's socket (accepted), side 1 the target's. */
struct conn {
    int fd[2];
    bool connecting;    /* side 1's connect has not finished */
    bool eof[2];        /* side i has sent its end of file */
    bool shut[2];       /* side i's write half has been shut down */
    bool dead;          /* to be closed (abruptly) and removed */
    struct buf from[2]; /* from[i]: read from side i, to be written to side 1 - i */
};

struct proxy {
    int listen_fd;
    struct sockaddr_in target;
    bool frozen;
    struct conn **conns;
    size_t nconns, cap;
    unsigned long accepted;
    unsigned long long bytes;
    char line[LINE_SIZE];
    size_t line_len;
    bool line_too_long;
};

static void die(const char *what)
{
    char msg[128];

    if (strerror_r(errno, msg, sizeof(msg)) != 0)
        (void)snprintf(msg, sizeof(msg), "error %d", errno);
    (void)fprintf(stderr, "tl-proxy: %s: %s\n", what, msg);
    exit(1); /* NOLINT(concurrency-mt-unsafe): one thread */
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* Closes a socket so that its peer sees a reset rather than an end of file. */
static void close_abruptly(int fd)
{
    const struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (fd < 0)
        return;
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    (void)close(fd);
}

static void conn_free(struct conn *c, bool abrupt)
{
    for (int i = 0; i < 2; i++) {
        if (abrupt)
            close_abruptly(c->fd[i]);
        else if (c->fd[i] >= 0)
            (void)close(c->fd[i]);
    }
    free(c);
}

/* Removes the connections marked dead. */
static void reap_dead(struct proxy *p)
{
    size_t keep = 0;

    for (size_t i = 0; i < p->nconns; i++) {
        if (p->conns[i]->dead)
            conn_free(p->conns[i], true);
        else
            p->conns[keep++] = p->conns[i];
    }
    p->nconns = keep;
}

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write to stdout");
        s += w;
        n -= (size_t)w;
    }
}

static void answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void answer(const char *fmt, ...)
{
    char msg[LINE_SIZE + 64];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(msg) - 2)
        n = (int)sizeof(msg) - 2;
    msg[n++] = '\n';
    write_all(STDOUT_FILENO, msg, (size_t)n);
}

/* Accepts every connection waiting on the listening socket and starts its connect. */
static void accept_all(struct proxy *p)
{
    for (;;) {
        int cfd = accept(p->listen_fd, NULL, NULL);

        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or out of descriptors: the next round tries again */
        }
        p->accepted++;

        int sfd = socket(AF_INET, SOCK_STREAM, 0);
        struct conn *c = calloc(1, sizeof(*c));
        if (sfd < 0 || c == NULL || set_nonblock(cfd) != 0 || set_nonblock(sfd) != 0 ||
            (p->nconns == p->cap && p->cap >= 4096)) {
            close_abruptly(cfd);
            if (sfd >= 0)
                (void)close(sfd);
            free(c);
            continue;
        }
        if (p->nconns == p->cap) {
            size_t ncap = p->cap ? 2 * p->cap : 16;
            struct conn **n = realloc(p->conns, ncap * sizeof(struct conn *));
            if (n == NULL) {
                close_abruptly(cfd);
                (void)close(sfd);
                free(c);
                continue;
            }
            p->conns = n;
            p->cap = ncap;
        }
        const int one = 1;
        (void)setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        (void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->fd[0] = cfd;
        c->fd[1] = sfd;
        if (connect(sfd, (const struct sockaddr *)&p->target, sizeof(p->target)) == 0)
            c->connecting = false;
        else if (errno == EINPROGRESS || errno == EINTR)
            c->connecting = true;
        else
            c->dead = true; /* the target refuses: the client gets a reset */
        p->conns[p->nconns++] = c;
    }
}

/* Reads what side `i` of `c` has sent into its buffer; marks end of file or death. */
static void pull(struct conn *c, int i)
{
    struct buf *b = &c->from[i];

    if (b->off > 0 && b->len > 0 && b->off + b->len == BUF_SIZE) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    } else if (b->len == 0) {
        b->off = 0;
    }
    size_t room = BUF_SIZE - b->off - b->len;
    if (room == 0 || c->eof[i])
        return;

    ssize_t n = recv(c->fd[i], b->data + b->off + b->len, room, 0);
    if (n > 0)
        b->len += (size_t)n;
    else if (n == 0)
        c->eof[i] = true;
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        c->dead = true;
}

/* Writes what the other side sent to side `i`. */
static void push(struct proxy *p, struct conn *c, int i)
{
    struct buf *b = &c->from[1 - i];

    if (b->len == 0)
        return;

    ssize_t n = send(c->fd[i], b->data + b->off, b->len, MSG_NOSIGNAL);
    if (n > 0) {
        b->off += (size_t)n;
        b->len -= (size_t)n;
        p->bytes += (unsigned long long)n;
        if (b->len == 0)
            b->off = 0;
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        c->dead = true;
    }
}

/* Passes ends of file on, and retires a connection both of whose directions are done. */
static void settle(struct conn *c)
{
    for (int i = 0; i < 2 && !c->dead; i++) {
        if (c->eof[i] && c->from[i].len == 0 && !c->shut[1 - i]) {
            (void)shutdown(c->fd[1 - i], SHUT_WR);
            c->shut[1 - i] = true;
        }
    }
    if (c->shut[0] && c->shut[1] && !c->dead) {
        /* Both halves are closed: an orderly end. */
        (void)close(c->fd[0]);
        (void)close(c->fd[1]);
        c->fd[0] = c->fd[1] = -1;
        c->dead = true;
    }
}

static void handle(struct proxy *p, struct conn *c, const struct pollfd *pf)
{
    if (c->connecting) {
        if (pf[1].revents == 0)
            return;

        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
            c->dead = true;
        else
            c->connecting = false;
        return;
    }
    for (int i = 0; i < 2 && !c->dead; i++) {
        if ((pf[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
            pull(c, i);
        if (!c->dead && (pf[i].revents & POLLERR) != 0 && !c->eof[i])
            c->dead = true;
    }
    for (int i = 0; i < 2 && !c->dead; i++) {
        if ((pf[i].revents & POLLOUT) != 0)
            push(p, c, i);
    }
    if (!c->dead)
        settle(c);
}

/* The events to wait for on side `i` of `c`. */
static short wanted(const struct conn *c, int i)
{
    short ev = 0;

    if (c->connecting)
        return i == 1 ? POLLOUT : 0;
    if (!c->eof[i] && c->from[i].len < BUF_SIZE)
        ev |= POLLIN;
    if (c->from[1 - i].len > 0)
        ev |= POLLOUT;
    return ev;
}

static void command(struct proxy *p, const char *cmd)
{
    if (strcmp(cmd, "freeze") == 0) {
        p->frozen = true;
        answer("ok");
    } else if (strcmp(cmd, "thaw") == 0) {
        p->frozen = false;
        answer("ok");
    } else if (strcmp(cmd, "drop") == 0) {
        for (size_t i = 0; i < p->nconns; i++)
            p->conns[i]->dead = true;
        reap_dead(p);
        answer("ok");
    } else if (strcmp(cmd, "stats") == 0) {
        answer("ok conns=%zu accepted=%lu bytes=%llu frozen=%d", p->nconns, p->accepted, p->bytes,
               p->frozen ? 1 : 0);
    } else if (cmd[0] != '\0') {
        answer("error unknown command: %s", cmd);
    }
}

/* Reads commands from stdin; returns false at end of file. */
static bool read_commands(struct proxy *p)
{
    char chunk[LINE_SIZE];
    ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));

    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    for (ssize_t i = 0; i < n; i++) {
        char ch = chunk[i];

        if (ch == '\n') {
            while (p->line_len > 0 &&
                   (p->line[p->line_len - 1] == '\r' || p->line[p->line_len - 1] == ' '))
                p->line_len--;
            p->line[p->line_len] = '\0';
            if (p->line_too_long)
                answer("error command too long");
            else
                command(p, p->line);
            p->line_len = 0;
            p->line_too_long = false;
        } else if (p->line_len + 1 < sizeof(p->line)) {
            p->line[p->line_len++] = ch;
        } else {
            p->line_too_long = true;
        }
    }
    return true;
}

/* Resolves the target; only loopback addresses are accepted. */
static int resolve(const char *host, const char *port, struct sockaddr_in *out)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);

    if (rc != 0) {
        (void)fprintf(stderr, "tl-proxy: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, sizeof(*out));
    freeaddrinfo(res);
    if ((ntohl(out->sin_addr.s_addr) >> 24) != 127) {
        (void)fprintf(stderr, "tl-proxy: %s is not a loopback address: refused\n", host);
        return -1;
    }
    return 0;
}

static int listen_loopback(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || set_nonblock(fd) != 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(fd, BACKLOG) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("listen on 127.0.0.1");
    *port = ntohs(a.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    static struct proxy p; /* zeroed */
    int port;

    if (argc != 3) {
        (void)fprintf(stderr, "usage: tl-proxy TARGET_HOST TARGET_PORT\n"
                              "  then commands on stdin: freeze, thaw, drop, stats\n");
        return 2;
    }
    (void)signal(SIGPIPE, SIG_IGN);
    if (resolve(argv[1], argv[2], &p.target) != 0)
        return 2;
    p.listen_fd = listen_loopback(&port);
    answer("%d", port);

    size_t pf_cap = 64;
    struct pollfd *pf = malloc(pf_cap * sizeof(*pf));
    if (pf == NULL)
        die("out of memory");
    for (;;) {
        size_t need = 2 + 2 * p.nconns;
        if (need > pf_cap) {
            struct pollfd *n = realloc(pf, need * sizeof(*n));
            if (n == NULL)
                die("out of memory");
            pf = n;
            pf_cap = need;
        }
        pf[0] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        pf[1] = (struct pollfd){.fd = p.frozen ? -1 : p.listen_fd, .events = POLLIN};
        for (size_t i = 0; i < p.nconns; i++) {
            for (int s = 0; s < 2; s++) {
                const struct conn *c = p.conns[i];
                short ev = 0;
                if (!p.frozen)
                    ev = wanted(c, s);
                pf[2 + 2 * i + (size_t)s] =
                    (struct pollfd){.fd = ev != 0 ? c->fd[s] : -1, .events = ev};
            }
        }
        size_t polled = p.nconns;
        if (poll(pf, (nfds_t)need, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        /* Connections first, so that a command read below acts on a settled state. */
        for (size_t i = 0; i < polled; i++)
            handle(&p, p.conns[i], &pf[2 + 2 * i]);
        reap_dead(&p);
        if (pf[1].revents != 0 && !p.frozen)
            accept_all(&p);
        if ((pf[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !read_commands(&p))
            break;
    }
    for (size_t i = 0; i < p.nconns; i++)
        conn_free(p.conns[i], true);
    free(p.conns);
    free(pf);
    (void)close(p.listen_fd);
    return 0;
}
