/*
 * bench_redis.c -- acquire+release cycles per second on the Redis store, against the floor of
 * two round trips on the same server and connection type.
 *
 *   bench_redis [-o CSV -r REP] URL [SECONDS] [MODE]   URL: redis://127.0.0.1:PORT/0 (no password)
 *
 * MODE (default: all four, one after the other):
 *   lib    tl_acquire (FAIL_FAST) + tl_release through the library, one key: what a worker pays
 *   store  the store's claim + release ops called directly (the library minus the manager)
 *   eval   the floor with the same work on the server: EVALSHA of the store's own claim and
 *          release scripts over a bare socket (no hiredis, no library), two round trips
 *   ping   the floor of two round trips that do nothing: PING, PING (cf. redis-benchmark -c 1
 *          -t ping; one cycle = two round trips)
 *
 * With -o, each rate is also appended to CSV as a raw row (bench_common.h; bench/run.sh), under
 * the subjects floor-ping, floor-eval, ours-store and ours-lib.
 *
 * One client, one connection (plus the library's heartbeat connection, idle here). Needs no
 * hiredis itself: the floors speak RESP over a plain socket. Build: bench/bench.cmake builds
 * every bench/bench_*.c against tl_static; or by hand after building build-redis:
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc bench/bench_redis.c \
 *      build-redis/libtasklock.a $(pkg-config --libs hiredis sqlite3 jansson) -lpthread \
 *      -o build-redis/bench_redis
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "store.h"
#include "stores/redis_convert_scripts.h"
#include "stores/redis_holders_scripts.h"
#include "stores/redis_scripts.h"
#include "tasklock.h"
#include "tl.h"

static void die(const char *what, const char *why)
{
    (void)fprintf(stderr, "bench_redis: %s: %s\n", what, why);
    exit(1);
}

/* ---- a bare RESP client: enough for PING, SCRIPT LOAD and EVALSHA ---- */

struct raw {
    int fd;
    char buf[1 << 16];
    size_t len;
};

static void raw_connect(struct raw *r, const char *url)
{
    unsigned port = 0;
    char host[64] = "";
    int one = 1;

    if (sscanf(url, "redis://%63[0-9.]:%u", host, &port) != 2)
        die(url, "the floors need redis://IPV4:PORT (no password)");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        die(url, "bad address");
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    r->len = 0;
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die(url, "cannot connect");
    (void)setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* as hiredis does */
}

/* Length of the complete RESP value at p[0..n), or 0 if incomplete. */
static size_t resp_len(const char *p, size_t n)
{
    const char *eol = memchr(p, '\n', n);
    if (eol == NULL)
        return 0;
    size_t head = (size_t)(eol - p) + 1;
    long long v = strtoll(p + 1, NULL, 10);

    switch (p[0]) {
    case '+':
    case '-':
    case ':': return head;
    case '$': return v < 0 ? head : head + (size_t)v + 2 <= n ? head + (size_t)v + 2 : 0;
    case '*': {
        size_t off = head;
        for (long long i = 0; i < v; i++) {
            size_t l = off < n ? resp_len(p + off, n - off) : 0;
            if (l == 0)
                return 0;
            off += l;
        }
        return off;
    }
    default: die("reply", "not RESP"); return 0;
    }
}

/* Sends `cmd` and reads one whole reply into r->buf; returns its length. */
static size_t raw_call(struct raw *r, const char *cmd, size_t len)
{
    if (send(r->fd, cmd, len, 0) != (ssize_t)len)
        die("send", "failed");
    r->len = 0;
    for (;;) {
        size_t l = r->len ? resp_len(r->buf, r->len) : 0;
        if (l != 0) {
            if (r->buf[0] == '-')
                die("server", r->buf);
            return l;
        }
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
        if (n <= 0)
            die("recv", "connection closed");
        r->len += (size_t)n;
    }
}

static char *resp_cmd(int argc, const char **argv, size_t *len)
{
    size_t cap = 64;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) + 32;
    char *out = malloc(cap);
    size_t n = (size_t)snprintf(out, cap, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        n += (size_t)snprintf(out + n, cap - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    *len = n;
    return out;
}

#define SCRIPT_PARTS 8

/* Loads a script made of parts joined, as the store loads its own (redis.c's script table; the
 * store also drops indentation and comment lines, which changes nothing the server runs); the
 * parts end at the first NULL. */
static void script_sha(struct raw *r, const char *const parts[SCRIPT_PARTS], char sha[41])
{
    size_t total = 1;
    for (int i = 0; i < SCRIPT_PARTS && parts[i] != NULL; i++)
        total += strlen(parts[i]);
    char *body = malloc(total);
    if (body == NULL)
        die("SCRIPT LOAD", "out of memory");
    body[0] = '\0';
    for (int i = 0; i < SCRIPT_PARTS && parts[i] != NULL; i++)
        strcat(body, parts[i]);
    const char *argv[] = {"SCRIPT", "LOAD", body};
    size_t len;
    char *cmd = resp_cmd(3, argv, &len);

    (void)raw_call(r, cmd, len);
    free(cmd);
    free(body);
    if (sscanf(r->buf, "$40\r\n%40s", sha) != 1)
        die("SCRIPT LOAD", "unexpected reply");
}

/* ---- the four modes ---- */

static double bench_ping(const char *url, double seconds)
{
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    struct raw *r = malloc(sizeof(*r));
    long n = 0;

    raw_connect(r, url);
    double start = bench_now_s(), end = start + seconds;
    while (bench_now_s() < end) {
        (void)raw_call(r, ping, sizeof(ping) - 1);
        (void)raw_call(r, ping, sizeof(ping) - 1);
        n++;
    }
    double rate = (double)n / (bench_now_s() - start);
    close(r->fd);
    free(r);
    return rate;
}

static double bench_eval(const char *url, double seconds)
{
    struct raw *r = malloc(sizeof(*r));
    char claim_sha[41], release_sha[41], rk[128], ck[128], hk[64], ch[128], key[64], token[32];
    char lk[128], wk[128], sk[128], wp[128], gk[64];
    long n = 0;

    raw_connect(r, url);
    /* The store's own scripts and arguments (redis.c: redis_claim, redis_release), without the
     * line: no waiter id, so a claim of the free key wins at once. */
    script_sha(r,
               (const char *const[SCRIPT_PARTS]){lua_prelude, lua_line, lua_holders, lua_holders2,
                                                 lua_graph, script_claim, script_claim_busy,
                                                 script_claim_win},
               claim_sha);
    script_sha(r,
               (const char *const[SCRIPT_PARTS]){lua_prelude, lua_line, lua_holders, lua_holders2,
                                                 script_release, NULL},
               release_sha);
    (void)snprintf(key, sizeof(key), "bench-eval-%ld", (long)getpid());
    (void)snprintf(rk, sizeof(rk), "tasklock:lock:%s", key);
    (void)snprintf(ck, sizeof(ck), "tasklock:token:%s", key);
    (void)snprintf(hk, sizeof(hk), "tasklock:history");
    (void)snprintf(ch, sizeof(ch), "tasklock:released:%s", key);
    (void)snprintf(lk, sizeof(lk), "tasklock:line:%s", key);
    (void)snprintf(wk, sizeof(wk), "tasklock:waiters:%s", key);
    (void)snprintf(sk, sizeof(sk), "tasklock:lineseq:%s", key);
    (void)snprintf(wp, sizeof(wp), "tasklock:wake:%s:", key);
    (void)snprintf(gk, sizeof(gk), "tasklock:lines");
    /* As redis_holders.c's claim: 7 keys, then worker, node, task info, timeout, mode, nonce,
     * safety ttl, history max, key, waiter id, priority, waiter timeout, wake prefix, shared,
     * slots, holding. */
    const char *claim[] = {"EVALSHA",  claim_sha, "7",      rk,
                           ck,         hk,        lk,       wk,
                           sk,         gk,        "bench",  "bench",
                           "{}",       "300000",  "normal", "0123456789abcdef0123456789abcdef",
                           "86400000", "10000",   key,      "",
                           "0",        "0",       wp,       "0",
                           "0",        ""};
    size_t claim_len;
    char *claim_cmd = resp_cmd(26, claim, &claim_len);

    double start = bench_now_s(), end = start + seconds;
    while (bench_now_s() < end) {
        (void)raw_call(r, claim_cmd, claim_len);
        /* The token is element 6 (":N"): skip six values of the reply array. */
        const char *p = (const char *)memchr(r->buf, '\n', r->len) + 1;
        for (int i = 0; i < 5; i++)
            p += resp_len(p, r->len - (size_t)(p - r->buf));
        if (sscanf(p, ":%31[0-9]", token) != 1)
            die("claim", "no token in the reply (is the key free?)");
        /* As redis_holders.c's release: 5 keys, then worker, node, token, summary, safety
         * ttl, history max, key, channel, wake prefix. */
        const char *release[] = {"EVALSHA",  release_sha, "5",     rk,      ck,    hk,
                                 lk,         wk,          "bench", "bench", token, "",
                                 "86400000", "10000",     key,     ch,      wp};
        size_t len;
        char *cmd = resp_cmd(17, release, &len);
        (void)raw_call(r, cmd, len);
        free(cmd);
        n++;
    }
    double rate = (double)n / (bench_now_s() - start);
    free(claim_cmd);
    close(r->fd);
    free(r);
    return rate;
}

static double bench_lib(const char *url, double seconds)
{
    const struct tl_options o = {.store_url = url, .worker_id = "bench", .node_id = "bench"};
    tl_manager *m = tl_manager_new(&o);
    const struct tl_acquire_opts ao = {.strategy = TL_FAIL_FAST};
    char key[64];
    long n = 0;

    if (m == NULL || tl_connect(m) != TL_OK)
        die("connect", m ? tl_errmsg(m) : "out of memory");
    (void)snprintf(key, sizeof(key), "bench-lib-%ld", (long)getpid());
    double start = bench_now_s(), end = start + seconds;
    while (bench_now_s() < end) {
        tl_lock *l = NULL;

        if (tl_acquire(m, key, &ao, &l) != TL_OK || tl_release(l, NULL) != TL_OK)
            die("cycle", tl_errmsg(m));
        tl_lock_free(l);
        n++;
    }
    double rate = (double)n / (bench_now_s() - start);
    tl_manager_free(m);
    return rate;
}

static double bench_store(const char *url, double seconds)
{
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE], key[64];
    struct tl_logger log = {0};
    long n = 0;

    if (tl__store_open(url, NULL, &tl__real_clock, &log, &s, err) != TL_OK)
        die("open", err);
    (void)snprintf(key, sizeof(key), "bench-store-%ld", (long)getpid());
    const struct tl_claim req = {.key = key,
                                 .worker_id = "bench",
                                 .node_id = "bench",
                                 .task_info = "{}",
                                 .lock_timeout_ms = 300000};
    double start = bench_now_s(), end = start + seconds;
    while (bench_now_s() < end) {
        struct tl_claim_result res = {0};

        if (s->ops->claim(s, &req, &res) != TL_OK || s->ops->release(s, &res.rec, NULL) != TL_OK)
            die("cycle", s->errmsg);
        tl__record_clear(&res.rec);
        n++;
    }
    double rate = (double)n / (bench_now_s() - start);
    tl__store_close(s);
    return rate;
}

int main(int argc, char **argv)
{
    const char *csv = NULL;
    int rep = 1, c;

    while ((c = getopt(argc, argv, "o:r:")) != -1) {
        switch (c) {
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    argc -= optind - 1;
    argv += optind - 1;

    const char *url = argc > 1 ? argv[1] : NULL;
    double seconds = argc > 2 ? atof(argv[2]) : 5.0;
    const char *mode = argc > 3 ? argv[3] : "all";

    if (url == NULL || seconds <= 0) {
        fprintf(stderr, "usage: bench_redis [-o CSV -r REP] redis://127.0.0.1:PORT/0 [SECONDS] "
                        "[lib|store|eval|ping|all]\n");
        return 2;
    }
    if (tl__store_find(url) == NULL) {
        printf("not measured: this build has no Redis store\n");
        return 3;
    }

    bool all = strcmp(mode, "all") == 0;
    double ping = 0, eval = 0;
    if (all || strcmp(mode, "ping") == 0) {
        ping = bench_ping(url, seconds);
        bench_csv_rate(csv, rep, "redis", "floor-ping", ping);
        printf("ping   %9.0f cycles/s  (2 x PING: the two-round-trip floor)\n", ping);
    }
    if (all || strcmp(mode, "eval") == 0) {
        eval = bench_eval(url, seconds);
        bench_csv_rate(csv, rep, "redis", "floor-eval", eval);
        printf("eval   %9.0f cycles/s  (EVALSHA claim + release, bare socket)\n", eval);
    }
    if (all || strcmp(mode, "store") == 0) {
        double v = bench_store(url, seconds);
        bench_csv_rate(csv, rep, "redis", "ours-store", v);
        printf("store  %9.0f cycles/s", v);
        if (eval > 0)
            printf("  (%.0f%% of eval)", 100.0 * v / eval);
        printf("\n");
    }
    if (all || strcmp(mode, "lib") == 0) {
        double v = bench_lib(url, seconds);
        bench_csv_rate(csv, rep, "redis", "ours-lib", v);
        printf("lib    %9.0f cycles/s", v);
        if (ping > 0)
            printf("  (%.0f%% of ping", 100.0 * v / ping);
        if (eval > 0)
            printf(", %.0f%% of eval", 100.0 * v / eval);
        printf("%s\n", ping > 0 || eval > 0 ? ")" : "");
    }
    return 0;
}
