/*
 * test_proxy.c -- tl-proxy does what the partition tests rely on, against an echo server of this
 * test's own: it forwards both ways (a megabyte each way through its bounded buffers, and an end
 * of file); `freeze` stops every byte on open and new connections while keeping them open, and
 * `thaw` delivers what was held up; `drop` resets every connection; it exits 0 at end of input.
 * Waits are bounded polls; the two checks that nothing arrives while frozen watch for 300 ms.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tl_proxy.h"

#define LIMIT_MS 10000 /* no single step may take longer */
#define QUIET_MS 300   /* how long "nothing arrives" is watched */

/* ---- an echo server on 127.0.0.1, on a thread of its own ---- */

struct echo {
    int listen_fd;
    int port;
    int stop[2]; /* a pipe: writing to stop[1] ends the thread */
    pthread_t thread;
    pthread_mutex_t mu;
    long long received; /* bytes received, under mu */
};

static void *echo_main(void *arg)
{
    struct echo *e = arg;
    int fds[64];
    size_t n = 0;

    for (;;) {
        struct pollfd pf[66];
        pf[0] = (struct pollfd){.fd = e->stop[0], .events = POLLIN};
        pf[1] = (struct pollfd){.fd = e->listen_fd, .events = POLLIN};
        for (size_t i = 0; i < n; i++)
            pf[2 + i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(pf, (nfds_t)(2 + n), -1) < 0)
            continue;
        if (pf[0].revents != 0)
            break;
        if (pf[1].revents != 0 && n < 64) {
            int c = accept(e->listen_fd, NULL, NULL);
            if (c >= 0)
                fds[n++] = c;
        }
        for (size_t i = 0; i < n; i++) {
            if (pf[2 + i].revents == 0)
                continue;

            char buf[16384];
            ssize_t got = recv(fds[i], buf, sizeof(buf), 0);
            if (got <= 0) {
                (void)close(fds[i]);
                fds[i] = -1;
                continue;
            }
            pthread_mutex_lock(&e->mu);
            e->received += got;
            pthread_mutex_unlock(&e->mu);
            for (ssize_t off = 0; off < got;) {
                ssize_t w = send(fds[i], buf + off, (size_t)(got - off), MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                off += w;
            }
        }
        size_t keep = 0;
        for (size_t i = 0; i < n; i++) {
            if (fds[i] >= 0)
                fds[keep++] = fds[i];
        }
        n = keep;
    }
    for (size_t i = 0; i < n; i++)
        (void)close(fds[i]);
    return NULL;
}

static void echo_start(struct echo *e)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    e->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(e->listen_fd >= 0);
    assert_int_equal(bind(e->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(e->listen_fd, 16), 0);
    assert_int_equal(getsockname(e->listen_fd, (struct sockaddr *)&a, &len), 0);
    e->port = ntohs(a.sin_port);
    assert_int_equal(pipe(e->stop), 0);
    assert_int_equal(pthread_create(&e->thread, NULL, echo_main, e), 0);
}

static void echo_stop(struct echo *e)
{
    assert_int_equal(write(e->stop[1], "x", 1), 1);
    (void)pthread_join(e->thread, NULL);
    (void)close(e->stop[0]);
    (void)close(e->stop[1]);
    (void)close(e->listen_fd);
    pthread_mutex_destroy(&e->mu);
}

static long long echo_received(struct echo *e)
{
    pthread_mutex_lock(&e->mu);
    long long n = e->received;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- clients ---- */

static int connect_to(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Reads exactly `n` bytes within LIMIT_MS. */
static void recv_exactly(int fd, char *buf, size_t n)
{
    struct timespec t0;
    (void)clock_gettime(CLOCK_MONOTONIC, &t0);

    for (size_t got = 0; got < n;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&pf, 1, LIMIT_MS), 1);
        ssize_t r = recv(fd, buf + got, n - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

/* Whether anything (data, an end of file, an error) arrives on `fd` within `ms`. */
static bool anything_within(int fd, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};

    return poll(&pf, 1, ms) > 0;
}

static struct echo echo;
static struct tl_proxy proxy;

static int setup(void **state)
{
    (void)state;
    echo_start(&echo);
    if (tl_proxy_start(NULL, "127.0.0.1", echo.port, &proxy) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int rc = tl_proxy_stop(&proxy);
    echo_stop(&echo);
    return rc;
}

static void forwards_both_ways_and_passes_an_end_of_file(void **state)
{
    char buf[8];

    (void)state;
    int fd = connect_to(proxy.port);
    send_all(fd, "hello", 5);
    recv_exactly(fd, buf, 5);
    assert_memory_equal(buf, "hello", 5);

    /* The client's end of file reaches the server, which closes: the client sees the end. */
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_true(anything_within(fd, LIMIT_MS));
    assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0);
    (void)close(fd);
}

/* More than the proxy buffers, both ways at once: the bounded buffers apply back-pressure
 * rather than losing or reordering bytes. */
static void a_megabyte_each_way_arrives_whole(void **state)
{
    enum { TOTAL = 1 << 20 };
    char *out = malloc(TOTAL), *in = malloc(TOTAL);
    size_t sent = 0, got = 0;

    (void)state;
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < TOTAL; i++)
        out[i] = (char)(i * 7 + i / 251);
    int fd = connect_to(proxy.port);
    while (got < TOTAL) {
        struct pollfd pf = {.fd = fd, .events = POLLIN | (sent < TOTAL ? POLLOUT : 0)};
        assert_int_equal(poll(&pf, 1, LIMIT_MS), 1);
        if ((pf.revents & POLLOUT) != 0) {
            ssize_t w = send(fd, out + sent, TOTAL - sent < 4096 ? TOTAL - sent : 4096,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        if ((pf.revents & POLLIN) != 0) {
            ssize_t r = recv(fd, in + got, TOTAL - got, MSG_DONTWAIT);
            assert_true(r > 0 || (r < 0 && errno == EAGAIN));
            if (r > 0)
                got += (size_t)r;
        }
    }
    assert_memory_equal(in, out, TOTAL);
    (void)close(fd);
    free(out);
    free(in);
}

static void freeze_holds_everything_until_thaw(void **state)
{
    char buf[8];

    (void)state;
    int fd = connect_to(proxy.port);
    send_all(fd, "one", 3);
    recv_exactly(fd, buf, 3);

    assert_int_equal(tl_proxy_cmd(&proxy, "freeze"), 0);
    long long before = echo_received(&echo);
    send_all(fd, "two", 3);
    /* A new connection completes its handshake (the kernel's backlog) and then hangs too. */
    int fd2 = connect_to(proxy.port);
    send_all(fd2, "new", 3);
    assert_false(anything_within(fd, QUIET_MS));
    assert_false(anything_within(fd2, 1));
    assert_int_equal(echo_received(&echo), before);
    assert_int_equal(tl_proxy_cmd(&proxy, "stats"), 0);
    assert_int_equal(tl_proxy_stat(&proxy, "frozen"), 1);

    /* Thawed, what was held up goes through, on the old connection and on the new one. */
    assert_int_equal(tl_proxy_cmd(&proxy, "thaw"), 0);
    recv_exactly(fd, buf, 3);
    assert_memory_equal(buf, "two", 3);
    recv_exactly(fd2, buf, 3);
    assert_memory_equal(buf, "new", 3);
    assert_int_equal(tl_proxy_cmd(&proxy, "stats"), 0);
    assert_int_equal(tl_proxy_stat(&proxy, "frozen"), 0);
    assert_true(tl_proxy_stat(&proxy, "conns") >= 2);
    assert_true(tl_proxy_stat(&proxy, "bytes") >= 12);
    (void)close(fd);
    (void)close(fd2);
}

static void drop_resets_every_connection(void **state)
{
    char buf[8];

    (void)state;
    int fd = connect_to(proxy.port);
    send_all(fd, "abc", 3);
    recv_exactly(fd, buf, 3);
    assert_int_equal(tl_proxy_cmd(&proxy, "drop"), 0);
    assert_true(anything_within(fd, LIMIT_MS));
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
    (void)close(fd);

    /* New connections work afterwards. */
    fd = connect_to(proxy.port);
    send_all(fd, "xyz", 3);
    recv_exactly(fd, buf, 3);
    assert_memory_equal(buf, "xyz", 3);
    (void)close(fd);
}

static void unknown_commands_are_refused(void **state)
{
    (void)state;
    assert_int_equal(tl_proxy_cmd(&proxy, "melt"), -1);
    assert_non_null(strstr(proxy.answer, "unknown command"));
    assert_int_equal(tl_proxy_cmd(&proxy, "stats"), 0);
}

static void urls_are_pointed_at_the_proxy(void **state)
{
    char out[256];

    (void)state;
    assert_int_equal(tl_proxy_url_port("redis://127.0.0.1:6390/0?prefix=a:"), 6390);
    assert_int_equal(
        tl_proxy_url_via("redis://127.0.0.1:6390/0?prefix=a:", 41000, out, sizeof(out)), 0);
    assert_string_equal(out, "redis://127.0.0.1:41000/0?prefix=a:");
    assert_int_equal(
        tl_proxy_url_via("postgresql://tasklock@127.0.0.1:5499/tasklock", 7, out, sizeof(out)), 0);
    assert_string_equal(out, "postgresql://tasklock@127.0.0.1:7/tasklock");
    assert_int_equal(tl_proxy_url_via("github://acme/w?api_url=http://127.0.0.1:8080&x=1", 9090,
                                      out, sizeof(out)),
                     0);
    assert_string_equal(out, "github://acme/w?api_url=http://127.0.0.1:9090&x=1");
    assert_int_equal(tl_proxy_url_port("sqlite:/tmp/x.db"), 0);
    assert_int_equal(tl_proxy_url_via("redis://db.example:6379/0", 1, out, sizeof(out)), -1);
    assert_int_equal(tl_proxy_url_via("redis://127.0.0.1:6379/0", 41000, out, 10), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forwards_both_ways_and_passes_an_end_of_file),
        cmocka_unit_test(a_megabyte_each_way_arrives_whole),
        cmocka_unit_test(freeze_holds_everything_until_thaw),
        cmocka_unit_test(drop_resets_every_connection),
        cmocka_unit_test(unknown_commands_are_refused),
        cmocka_unit_test(urls_are_pointed_at_the_proxy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
