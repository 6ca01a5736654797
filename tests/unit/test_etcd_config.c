/*
 * test_etcd_config.c -- the etcd store's URL, its wire helpers, and what it does when a server
 * answers nonsense, refuses, or says nothing: every case against a fake gateway on 127.0.0.1 (a
 * thread of this test) or no server at all.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "stores/etcd_client.h"
#include "tl.h"
#include "tl_test.h"

static const struct tl_logger quiet = {0};

/* Opens `url` on the etcd store; returns the status and the message in `err`. */
static tl_status open_url(const char *url, char err[TL_ERRMSG_SIZE])
{
    struct tl_store *s = NULL;
    tl_status st = tl__store_open(url, NULL, &tl__real_clock, &quiet, &s, err);

    tl__store_close(s);
    return st;
}

static void bad_urls_are_refused_before_any_io(void **state)
{
    static const struct {
        const char *url;
        const char *msg;
    } cases[] = {
        {"etcd://", "no endpoint"},
        {"etcd://127.0.0.1", "has no port"},
        {"etcd://127.0.0.1:0", "bad port"},
        {"etcd://127.0.0.1:65536", "bad port"},
        {"etcd://127.0.0.1:12x", "bad port"},
        {"etcd://127.0.0.1:1,,127.0.0.1:2", "empty endpoint"},
        {"etcd://127.0.0.1:1,", "empty endpoint"},
        {"etcd://:1", "bad host"},
        {"etcd://ho$t:1", "bad host"},
        {"etcd://[::1:1", "[ADDR]:PORT"},
        {"etcd://127.0.0.1:1/some/path", "has a path"},
        {"etcd://127.0.0.1:1?bogus=1", "unknown parameter bogus"},
        {"etcd://127.0.0.1:1?prefix", "has no value"},
        {"etcd://127.0.0.1:1?prefix=", "prefix must be"},
        {"etcd://127.0.0.1:1?prefix=a%20b", "prefix must be"},
        {"etcd://127.0.0.1:1?prefix=%zz", "bad percent-encoding"},
        {"etcd://127.0.0.1:1?tls=2", "tls must be 0 or 1"},
        {"etcd://127.0.0.1:1?cacert=/x.pem", "cacert needs tls=1"},
        {"etcd://127.0.0.1:1?request_timeout=forever", "request_timeout must be"},
        {"etcd://127.0.0.1:1?history_max=-1", "history_max must be"},
        {"etcd://127.0.0.1:1?history_max=0", "history_max must be 1 to"},
        {"etcd://:pw@127.0.0.1:1", "no user name"},
        {"etcd://a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9,j:10,k:11,l:12,m:13,n:14,o:15,p:16,q:17",
         "more than 16 endpoints"},
    };
    char err[TL_ERRMSG_SIZE];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        tl_status st = open_url(cases[i].url, err);
        if (st != TL_EINVAL || strstr(err, cases[i].msg) == NULL)
            fail_msg("%s: got %s \"%s\", want EINVAL \"%s\"", cases[i].url, tl_strerror(st), err,
                     cases[i].msg);
    }
}

static void a_password_never_shows(void **state)
{
    char err[TL_ERRMSG_SIZE] = "";

    (void)state;
    /* Nothing listens on port 1: the open fails at once, naming the endpoint only. */
    assert_int_equal(open_url("etcd://alice:s3cr%40t@127.0.0.1:1", err), TL_ESTORE);
    assert_non_null(strstr(err, "127.0.0.1:1"));
    assert_null(strstr(err, "s3cr"));
    assert_null(strstr(err, "alice"));
}

static void base64_round_trips_and_refuses_garbage(void **state)
{
    static const char *const plain[] = {"", "a", "ab", "abc", "tl/lock/a", "\x1f\xff\x01"};
    static const char *const bad[] = {"a", "abc", "ab=c", "a===", "====", "ab$d", "YQ==YQ=="};
    size_t len = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        char *enc = tl__b64_encode(plain[i], strlen(plain[i]));
        char *dec = tl__b64_decode(enc, &len);
        assert_non_null(dec);
        assert_int_equal(len, strlen(plain[i]));
        assert_memory_equal(dec, plain[i], len);
        tl__free(enc);
        tl__free(dec);
    }
    char *enc = tl__b64_encode("tl/lock/a", 9);
    assert_string_equal(enc, "dGwvbG9jay9h"); /* ETCD-API.md A.1 */
    tl__free(enc);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(tl__b64_decode(bad[i], &len));
}

static void int64_fields_come_as_strings_or_numbers(void **state)
{
    json_t *o = json_loads("{\"a\":\"2228897092896400661\",\"b\":7,\"c\":\"-1\",\"d\":\"12x\","
                           "\"e\":1.5,\"f\":\"99999999999999999999\"}",
                           0, NULL);
    int64_t v = 0;

    (void)state;
    assert_true(tl__etcd_i64(o, "a", &v));
    assert_true(v == 2228897092896400661LL); /* above 2^53: never through a double */
    assert_true(tl__etcd_i64(o, "b", &v) && v == 7);
    assert_true(tl__etcd_i64(o, "c", &v) && v == -1);
    assert_true(tl__etcd_i64(o, "absent", &v) && v == 0); /* the gateway omits zero values */
    assert_false(tl__etcd_i64(o, "d", &v));
    assert_false(tl__etcd_i64(o, "e", &v));
    assert_false(tl__etcd_i64(o, "f", &v));
    json_decref(o);
}

/* ---- a fake gateway ---- */

struct fake {
    int fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    const char *status; /* "200 OK" */
    const char *body;   /* NULL: accept, read, and never answer */
    atomic_int requests;
};

static void *serve(void *arg)
{
    struct fake *f = arg;

    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[8192];
        size_t got = 0;
        /* Read the headers and the body (Content-Length), bounded. */
        for (int i = 0; i < 100 && got < sizeof(buf) - 1; i++) {
            struct pollfd q = {.fd = c, .events = POLLIN};
            if (poll(&q, 1, 50) <= 0)
                break;
            ssize_t n = read(c, buf + got, sizeof(buf) - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            const char *end = strstr(buf, "\r\n\r\n");
            const char *cl = strstr(buf, "Content-Length:");
            if (end != NULL &&
                (cl == NULL || got >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10)))
                break;
        }
        atomic_fetch_add(&f->requests, 1);
        if (f->body == NULL) {
            while (!atomic_load(&f->stop))
                (void)poll(NULL, 0, 20); /* say nothing */
        } else {
            char resp[4096];
            int n = snprintf(resp, sizeof(resp),
                             "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: "
                             "%zu\r\nConnection: close\r\n\r\n%s",
                             f->status, strlen(f->body), f->body);
            (void)!write(c, resp, (size_t)n);
        }
        close(c);
    }
    return NULL;
}

static void fake_start(struct fake *f, const char *status, const char *body)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(f, 0, sizeof(*f));
    f->status = status;
    f->body = body;
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->fd >= 0);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->fd, 16), 0);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->fd);
}

static void nonsense_answers_are_clear_errors(void **state)
{
    static const struct {
        const char *status, *body, *msg;
        tl_status st;
    } cases[] = {
        {"200 OK", "<html>hello</html>", "not a JSON object", TL_ESTORE},
        {"200 OK", "[1,2,3]", "not a JSON object", TL_ESTORE},
        {"400 Bad Request", "{\"error\":\"bad\",\"message\":\"etcdserver: bad\",\"code\":3}",
         "HTTP 400: etcdserver: bad", TL_ESTORE},
        {"404 Not Found", "Not Found", "HTTP 404", TL_ESTORE},
        {"412 Precondition Failed",
         "{\"error\":\"x\",\"message\":\"etcdserver: user name not found\",\"code\":9}",
         "user name not found", TL_ESTORE},
    };
    char url[128], err[TL_ERRMSG_SIZE];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fake f;
        fake_start(&f, cases[i].status, cases[i].body);
        (void)snprintf(url, sizeof(url), "etcd://127.0.0.1:%d?request_timeout=2s", f.port);
        err[0] = '\0';
        tl_status st = open_url(url, err);
        fake_stop(&f);
        if (st != cases[i].st || strstr(err, cases[i].msg) == NULL)
            fail_msg("%s %s: got %s \"%s\", want \"%s\"", cases[i].status, cases[i].body,
                     tl_strerror(st), err, cases[i].msg);
    }
}

static void garbled_records_are_errors_not_crashes(void **state)
{
    /* A range answer whose key is not base64, then one whose lock record is not ours: open
     * (a count) passes, inspect must fail cleanly. */
    static const char *const bodies[] = {
        "{\"header\":{\"revision\":\"5\"},\"kvs\":[{\"key\":\"!!!\",\"mod_revision\":\"3\"}]}",
        "{\"header\":{\"revision\":\"5\"},\"succeeded\":true,\"responses\":[{\"response_range\":"
        "{\"kvs\":[{\"key\":\"dGFza2xvY2svbC9r\",\"value\":\"bm90IGpzb24=\",\"mod_revision\":"
        "\"3\",\"create_revision\":\"3\"}]}},{\"response_range\":{}},{\"response_range\":{}}]}",
        "{\"header\":{\"revision\":\"5\"},\"responses\":\"nope\"}",
    };
    char url[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct fake f;
        char err[TL_ERRMSG_SIZE] = "";
        struct tl_store *s = NULL;
        fake_start(&f, "200 OK", bodies[i]);
        (void)snprintf(url, sizeof(url), "etcd://127.0.0.1:%d?request_timeout=2s", f.port);
        assert_int_equal(tl__store_open(url, NULL, &tl__real_clock, &quiet, &s, err), TL_OK);
        struct tl_record r = {0};
        bool found = true;
        tl_status st = s->ops->inspect(s, "k", &r, &found);
        if (st != TL_ESTORE || strstr(s->errmsg, "etcd:") == NULL)
            fail_msg("body %zu: inspect gave %s \"%s\"", i, tl_strerror(st), s->errmsg);
        tl__record_clear(&r);
        tl__store_close(s);
        fake_stop(&f);
    }
}

static void a_silent_server_times_out(void **state)
{
    struct fake f;
    char url[128], err[TL_ERRMSG_SIZE] = "";

    (void)state;
    fake_start(&f, "200 OK", NULL);
    (void)snprintf(url, sizeof(url), "etcd://127.0.0.1:%d?request_timeout=200ms", f.port);
    struct tl_store *s = NULL;
    int64_t t0 = tl__real_mono_ms();
    /* The open's own budget bounds it; a deadline makes it shorter still. */
    tl_status st = tl__store_open(url, NULL, &tl__real_clock, &quiet, &s, err);
    int64_t spent = tl__real_mono_ms() - t0;
    tl__store_close(s);
    fake_stop(&f);
    assert_int_equal(st, TL_ETIMEDOUT);
    assert_non_null(strstr(err, "no endpoint answered in time"));
    assert_true(spent < 30000);
    assert_true(atomic_load(&f.requests) >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_urls_are_refused_before_any_io),
        cmocka_unit_test(a_password_never_shows),
        cmocka_unit_test(base64_round_trips_and_refuses_garbage),
        cmocka_unit_test(int64_fields_come_as_strings_or_numbers),
        cmocka_unit_test(nonsense_answers_are_clear_errors),
        cmocka_unit_test(garbled_records_are_errors_not_crashes),
        cmocka_unit_test(a_silent_server_times_out),
    };
    return cmocka_run_group_tests_name("etcd config", tests, NULL, NULL);
}
