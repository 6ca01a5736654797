/*
 * bench_etcd.c -- the etcd store against its floors and anchors on the same etcd, and what
 * heartbeating costs on it.
 *
 *   bench_etcd [-o CSV -r REP] [-s SUBJECT] [-q QUERY] HOST:PORT SECONDS MODE
 *   bench_etcd [-o CSV -r REP] -N LOCKS [-T LOCK_TIMEOUT_MS] [-w WINDOWS] [-t WINDOW_S]
 *              [-P ETCD_PID] HOST:PORT 0 heartbeat
 *
 * MODE:
 *   lib          tl_acquire (FAIL_FAST) + tl_release through the public API on etcd://HOST:PORT
 *                (QUERY, e.g. "history_max=0", is appended as ?QUERY): subject "ours" (or -s),
 *                with the gateway requests a cycle takes (tl__etcd_stats of the manager's store)
 *   floor        the same two gateway calls done bare with libcurl + jansson on one kept-alive
 *                connection: a txn put-if-absent (compare CREATE == 0, put with a lease granted
 *                once) and a txn delete (compare MOD == the put's revision): "floor-txn"
 *   floor-store  the store's own two transactions (etcd.c: a claim of a free key with an empty
 *                line, and a release), sent bare the same way: "floor-store-txns". What the
 *                store's protocol costs etcd, without the library
 *   v3lock       etcd's own lock service on the gateway (ETCD-API.md A.6): /v3/lock/lock with a
 *                lease granted once, then /v3/lock/unlock: "anchor-v3lock"
 *   heartbeat    one manager holds LOCKS locks with a short lock timeout (-T, default 6000 ms:
 *                a 6 s lease, renewed every 2 s); over each window the CPU time of the whole
 *                process (getrusage) is divided by the renewals made, and the counters of the
 *                heartbeat thread's own store instance (manager.h: hb_store) give the
 *                keep-alives and gateway requests behind those renewals. With -P, etcd's own
 *                CPU over the window (/proc/PID/stat) is given too. Rows go under store "etcd",
 *                subject "ours", config "nLOCKS-tTIMEOUT"
 *
 * Cycles are counted for SECONDS after a 0.2 s warm-up (connection, lease grant); the rate and
 * the p50/p99 of a cycle go to the CSV (bench_common.h's long format) under store "etcd".
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "manager.h"
#include "store.h"
#include "stores/etcd.h"
#include "tasklock.h"

#define PROG       "bench_etcd"
#define MAX_CYCLES 2000000

static void die(const char *what, const char *why)
{
    bench_die(PROG, what, why);
}

/* ---- base64 (standard, padded): keys and values on the gateway ---- */

static char *b64(const char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

    if (out == NULL)
        die("base64", "out of memory");
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (uint32_t)(unsigned char)s[i + 2];
        *o++ = tab[(v >> 18) & 63];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static json_t *b64j(const char *s)
{
    char *e = b64(s, strlen(s));
    json_t *j = json_string(e);

    free(e);
    return j;
}

static json_t *i64j(long long v)
{
    char t[32];

    (void)snprintf(t, sizeof(t), "%lld", v);
    return json_string(t);
}

/* An int64 field of a gateway answer (a JSON string, or absent: 0). */
static long long field_i64(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);

    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* ---- a bare gateway client: one easy handle, options set once, the connection kept ---- */

struct gw {
    CURL *e;
    struct curl_slist *hdrs;
    char base[128];
    char url[256];
    char *buf;
    size_t len, cap;
};

static size_t gw_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct gw *g = ud;
    size_t n = size * nmemb;

    if (g->len + n + 1 > g->cap) {
        size_t cap = (g->len + n + 1) * 2;
        char *b = realloc(g->buf, cap);
        if (b == NULL)
            return 0;
        g->buf = b;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, data, n);
    g->len += n;
    return n;
}

static void gw_open(struct gw *g, const char *endpoint)
{
    memset(g, 0, sizeof(*g));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (g->e = curl_easy_init()) == NULL)
        die("libcurl", "cannot start");
    (void)snprintf(g->base, sizeof(g->base), "http://%s", endpoint);
    /* The headers and options etcd_client.c sends. */
    g->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    g->hdrs = curl_slist_append(g->hdrs, "Expect:");
    (void)curl_easy_setopt(g->e, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(g->e, CURLOPT_NOPROXY, "*");
    (void)curl_easy_setopt(g->e, CURLOPT_HTTPHEADER, g->hdrs);
    (void)curl_easy_setopt(g->e, CURLOPT_TCP_NODELAY, 1L);
    (void)curl_easy_setopt(g->e, CURLOPT_TIMEOUT_MS, 10000L);
    (void)curl_easy_setopt(g->e, CURLOPT_WRITEFUNCTION, gw_body);
    (void)curl_easy_setopt(g->e, CURLOPT_WRITEDATA, g);
}

static void gw_close(struct gw *g)
{
    curl_easy_cleanup(g->e);
    curl_slist_free_all(g->hdrs);
    free(g->buf);
}

/* POSTs `body` (stolen) to `path`; returns the answer (a JSON object) or dies. */
static json_t *gw_post(struct gw *g, const char *path, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    long http = 0;

    json_decref(body);
    if (text == NULL)
        die(path, "out of memory");
    (void)snprintf(g->url, sizeof(g->url), "%s%s", g->base, path);
    (void)curl_easy_setopt(g->e, CURLOPT_URL, g->url);
    (void)curl_easy_setopt(g->e, CURLOPT_POSTFIELDS, text);
    (void)curl_easy_setopt(g->e, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    g->len = 0;
    CURLcode rc = curl_easy_perform(g->e);
    free(text);
    if (rc != CURLE_OK)
        die(path, curl_easy_strerror(rc));
    (void)curl_easy_getinfo(g->e, CURLINFO_RESPONSE_CODE, &http);
    json_t *ans = json_loadb(g->buf ? g->buf : "", g->len, 0, NULL);
    if (http != 200 || !json_is_object(ans)) {
        (void)fprintf(stderr, "%s: %s: HTTP %ld: %.*s\n", PROG, path, http, (int)g->len,
                      g->buf ? g->buf : "");
        exit(1);
    }
    return ans;
}

static long long gw_revision(const json_t *ans)
{
    return field_i64(json_object_get(ans, "header"), "revision");
}

static bool gw_succeeded(const json_t *ans)
{
    return json_is_true(json_object_get(ans, "succeeded"));
}

static long long gw_lease(struct gw *g, long ttl_s)
{
    json_t *ans = gw_post(g, "/v3/lease/grant", json_pack("{s:I}", "TTL", (json_int_t)ttl_s));
    long long id = field_i64(ans, "ID");

    json_decref(ans);
    if (id == 0)
        die("lease grant", "no lease in the answer");
    return id;
}

static json_t *put_op(const char *key, const char *value, long long lease)
{
    json_t *p = json_pack("{s:o, s:o}", "key", b64j(key), "value", b64j(value));

    if (lease != 0)
        (void)json_object_set_new(p, "lease", i64j(lease));
    return json_pack("{s:o}", "request_put", p);
}

static json_t *delete_op(const char *key, const char *end)
{
    json_t *d = json_pack("{s:o}", "key", b64j(key));

    if (end != NULL)
        (void)json_object_set_new(d, "range_end", b64j(end));
    return json_pack("{s:o}", "request_delete_range", d);
}

static json_t *range_op(const char *key, const char *end, bool count_only)
{
    json_t *r = json_pack("{s:o}", "key", b64j(key));

    if (end != NULL)
        (void)json_object_set_new(r, "range_end", b64j(end));
    if (count_only)
        (void)json_object_set_new(r, "count_only", json_true());
    return json_pack("{s:o}", "request_range", r);
}

static json_t *compare(const char *key, const char *end, const char *target, const char *result,
                       const char *field, json_t *value)
{
    json_t *c = json_pack("{s:o, s:s, s:s, s:o}", "key", b64j(key), "target", target, "result",
                          result, field, value);

    if (end != NULL)
        (void)json_object_set_new(c, "range_end", b64j(end));
    return c;
}

static json_t *txn_body(json_t *cmp, json_t *success, json_t *failure)
{
    return json_pack("{s:o, s:o, s:o}", "compare", cmp, "success", success, "failure",
                     failure ? failure : json_array());
}

/* ---- timing ---- */

struct timing {
    double *lat;
    size_t n;
    double start, end;
};

static void timing_start(struct timing *t, double seconds)
{
    t->lat = malloc(sizeof(double) * MAX_CYCLES);
    if (t->lat == NULL)
        die("timing", "out of memory");
    t->n = 0;
    t->start = bench_now_s();
    t->end = t->start + seconds;
}

static void timing_report(struct timing *t, const char *csv, int rep, const char *subject,
                          const char *what)
{
    double wall = bench_now_s() - t->start, rate = (double)t->n / wall;
    double p50 = bench_quantile(t->lat, t->n, 0.5) * 1e3,
           p99 = bench_quantile(t->lat, t->n, 0.99) * 1e3;
    struct bench_csv out;

    bench_csv_open(&out, csv, rep, "etcd", subject);
    bench_csv_row(&out, "", "cycles_per_s", rate);
    bench_csv_row(&out, "", "cycle_p50_ms", p50);
    bench_csv_row(&out, "", "cycle_p99_ms", p99);
    bench_csv_close(&out);
    printf("%-18s %8.0f cycles/s  p50 %.3f ms  p99 %.3f ms  (%s)\n", subject, rate, p50, p99, what);
    free(t->lat);
}

/* Runs `fn` for a warm-up of 0.2 s, then for `seconds`, timing each call. */
#define CYCLES(t, seconds, call)                       \
    do {                                               \
        double warm_end_ = bench_now_s() + 0.2;        \
        while (bench_now_s() < warm_end_) {            \
            call;                                      \
        }                                              \
        timing_start(&(t), (seconds));                 \
        for (;;) {                                     \
            double c0_ = bench_now_s();                \
            if (c0_ >= (t).end || (t).n == MAX_CYCLES) \
                break;                                 \
            call;                                      \
            (t).lat[(t).n++] = bench_now_s() - c0_;    \
        }                                              \
    } while (0)

/* ---- floor: txn put-if-absent + txn delete, bare ---- */

static void floor_cycle(struct gw *g, const char *key, long long lease)
{
    json_t *ans = gw_post(g, "/v3/kv/txn",
                          txn_body(json_pack("[o]", compare(key, NULL, "CREATE", "EQUAL",
                                                            "create_revision", json_string("0"))),
                                   json_pack("[o]", put_op(key, "bench", lease)), NULL));
    long long rev = gw_revision(ans);
    bool won = gw_succeeded(ans);

    json_decref(ans);
    if (!won)
        die("floor", "the put-if-absent failed: is the key free?");
    ans = gw_post(
        g, "/v3/kv/txn",
        txn_body(json_pack("[o]", compare(key, NULL, "MOD", "EQUAL", "mod_revision", i64j(rev))),
                 json_pack("[o]", delete_op(key, NULL)), NULL));
    won = gw_succeeded(ans);
    json_decref(ans);
    if (!won)
        die("floor", "the delete's compare failed");
}

static void bench_floor(const char *endpoint, double seconds, const char *csv, int rep)
{
    struct gw g;
    struct timing t;
    char key[64];

    gw_open(&g, endpoint);
    (void)snprintf(key, sizeof(key), "bench-floor/%ld", (long)getpid());
    long long lease = gw_lease(&g, 300);
    CYCLES(t, seconds, floor_cycle(&g, key, lease));
    timing_report(&t, csv, rep, "floor-txn", "txn put-if-absent + txn delete, bare libcurl");
    json_decref(gw_post(&g, "/v3/lease/revoke", json_pack("{s:o}", "ID", i64j(lease))));
    gw_close(&g);
}

/* ---- floor-store: the store's own claim and release transactions, bare ---- */

struct store_keys {
    char l[128], o[128], h[128], line[128], line_end[128], epre[128], eend[128];
};

static void store_cycle(struct gw *g, const struct store_keys *k, long long lease, long *seq)
{
    char rec[400], ev[300], ekey[200];
    long long at = (long long)(bench_now_s() * 1000);

    /* etcd.c: record_value, live_value, event_value, op_event (the shapes, same sizes). */
    (void)snprintf(rec, sizeof(rec),
                   "{\"worker\":\"bench\",\"node\":\"bench\",\"claimed_at\":%lld,\"timeout\":"
                   "300000,\"task\":{},\"nonce\":\"0123456789abcdef0123456789abcdef\"}",
                   at);
    (void)snprintf(ev, sizeof(ev),
                   "{\"kind\":\"acquired\",\"worker\":\"bench\",\"node\":\"bench\",\"token\":0,"
                   "\"at\":%lld,\"order\":0}",
                   at);
    (void)snprintf(ekey, sizeof(ekey), "%s%013llx-%08lx-0", k->epre, at, (*seq)++);
    json_t *cmp = json_pack(
        "[o, o]", compare(k->l, NULL, "CREATE", "EQUAL", "create_revision", json_string("0")),
        compare(k->line, k->line_end, "CREATE", "LESS", "create_revision", json_string("1")));
    json_t *win = json_pack("[o, o, o, o]", put_op(k->l, rec, 0), put_op(k->o, "bench", 0),
                            put_op(k->h, "{\"timeout\":300000}", lease), put_op(ekey, ev, 0));
    json_t *fail = json_pack("[o, o, o]", range_op(k->l, NULL, false), range_op(k->h, NULL, false),
                             range_op(k->line, k->line_end, false));
    json_t *ans = gw_post(g, "/v3/kv/txn", txn_body(cmp, win, fail));
    long long rev = gw_revision(ans);
    bool won = gw_succeeded(ans);

    json_decref(ans);
    if (!won)
        die("floor-store", "the claim failed: is the key free?");
    (void)snprintf(ev, sizeof(ev),
                   "{\"kind\":\"released\",\"worker\":\"bench\",\"node\":\"bench\",\"token\":%lld,"
                   "\"at\":%lld,\"order\":0}",
                   rev, at);
    (void)snprintf(ekey, sizeof(ekey), "%s%013llx-%08lx-0", k->epre, at, (*seq)++);
    char *owner = b64("bench", 5);
    cmp = json_pack("[o, o]", compare(k->l, NULL, "MOD", "EQUAL", "mod_revision", i64j(rev)),
                    compare(k->o, NULL, "VALUE", "EQUAL", "value", json_string(owner)));
    free(owner);
    json_t *ops =
        json_pack("[o, o, o, o, o]", delete_op(k->l, NULL), delete_op(k->o, NULL),
                  delete_op(k->h, NULL), put_op(ekey, ev, 0), range_op(k->epre, k->eend, true));
    ans =
        gw_post(g, "/v3/kv/txn", txn_body(cmp, ops, json_pack("[o]", range_op(k->l, NULL, false))));
    won = gw_succeeded(ans);
    json_decref(ans);
    if (!won)
        die("floor-store", "the release's compare failed");
}

static void bench_floor_store(const char *endpoint, double seconds, const char *csv, int rep)
{
    struct gw g;
    struct timing t;
    struct store_keys k;
    char pfx[64];
    long seq = 0;

    gw_open(&g, endpoint);
    (void)snprintf(pfx, sizeof(pfx), "bench-fs%ld/", (long)getpid());
    (void)snprintf(k.l, sizeof(k.l), "%sl/key", pfx);
    (void)snprintf(k.o, sizeof(k.o), "%so/key", pfx);
    (void)snprintf(k.h, sizeof(k.h), "%sh/key", pfx);
    (void)snprintf(k.line, sizeof(k.line), "%sw/key\x1f", pfx);
    (void)snprintf(k.line_end, sizeof(k.line_end), "%sw/key\x20", pfx);
    (void)snprintf(k.epre, sizeof(k.epre), "%se/key\x1f", pfx);
    (void)snprintf(k.eend, sizeof(k.eend), "%se/key\x20", pfx);
    long long lease = gw_lease(&g, 300);
    CYCLES(t, seconds, store_cycle(&g, &k, lease, &seq));
    timing_report(&t, csv, rep, "floor-store-txns",
                  "the store's claim and release txns, bare libcurl");
    /* Leave nothing behind: the events of this run. */
    char end[64];
    (void)snprintf(end, sizeof(end), "bench-fs%ld0", (long)getpid());
    json_decref(gw_post(&g, "/v3/kv/deleterange",
                        json_pack("{s:o, s:o}", "key", b64j(pfx), "range_end", b64j(end))));
    json_decref(gw_post(&g, "/v3/lease/revoke", json_pack("{s:o}", "ID", i64j(lease))));
    gw_close(&g);
}

/* ---- anchor: etcd's lock service on the gateway ---- */

static void v3lock_cycle(struct gw *g, json_t *name, long long lease)
{
    json_t *ans =
        gw_post(g, "/v3/lock/lock", json_pack("{s:O, s:o}", "name", name, "lease", i64j(lease)));
    json_t *key = json_object_get(ans, "key");

    if (!json_is_string(key))
        die("v3lock", "no key in the lock's answer");
    json_decref(gw_post(g, "/v3/lock/unlock", json_pack("{s:O}", "key", key)));
    json_decref(ans);
}

static void bench_v3lock(const char *endpoint, double seconds, const char *csv, int rep)
{
    struct gw g;
    struct timing t;
    char name[64];

    gw_open(&g, endpoint);
    (void)snprintf(name, sizeof(name), "bench-v3lock-%ld", (long)getpid());
    json_t *n = b64j(name);
    long long lease = gw_lease(&g, 300);
    CYCLES(t, seconds, v3lock_cycle(&g, n, lease));
    timing_report(&t, csv, rep, "anchor-v3lock",
                  "etcd's /v3/lock/lock + unlock, lease granted once");
    json_decref(n);
    json_decref(gw_post(&g, "/v3/lease/revoke", json_pack("{s:o}", "ID", i64j(lease))));
    gw_close(&g);
}

/* ---- ours: the public API ---- */

static struct tl_etcd_stats store_stats(const struct tl_store *s)
{
    struct tl_etcd_stats st;

    (void)tl__etcd_stats(s, &st);
    return st;
}

static void lib_cycle(tl_manager *m, const char *key)
{
    tl_lock *l = NULL;

    if (tl_acquire(m, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &l) != TL_OK ||
        tl_release(l, NULL) != TL_OK)
        die("cycle", tl_errmsg(m));
    tl_lock_free(l);
}

static void bench_lib(const char *endpoint, const char *query, double seconds, const char *csv,
                      int rep, const char *subject)
{
    char url[512], key[64];
    struct timing t;

    (void)snprintf(url, sizeof(url), "etcd://%s%s%s", endpoint, query ? "?" : "",
                   query ? query : "");
    tl_manager *m = tl_manager_new(
        &(struct tl_options){.store_url = url, .worker_id = "bench", .node_id = "bench"});
    if (m == NULL || tl_connect(m) != TL_OK)
        die("connect", m ? tl_errmsg(m) : "out of memory");
    (void)snprintf(key, sizeof(key), "bench-lib-%ld", (long)getpid());
    struct tl_etcd_stats s0 = {0}, s1;
    /* The warm-up's first cycle grants the lease; the stats are read after the warm-up. */
    double warm_end = bench_now_s() + 0.2;
    while (bench_now_s() < warm_end)
        lib_cycle(m, key);
    s0 = store_stats(m->store);
    timing_start(&t, seconds);
    for (;;) {
        double c0 = bench_now_s();
        if (c0 >= t.end || t.n == MAX_CYCLES)
            break;
        lib_cycle(m, key);
        t.lat[t.n++] = bench_now_s() - c0;
    }
    s1 = store_stats(m->store);
    double n = t.n ? (double)t.n : 1;
    struct bench_csv out;
    bench_csv_open(&out, csv, rep, "etcd", subject);
    bench_csv_row(&out, "", "requests_per_cycle", (double)(s1.requests - s0.requests) / n);
    bench_csv_row(&out, "", "keepalives_per_cycle", (double)(s1.keepalives - s0.keepalives) / n);
    bench_csv_close(&out);
    printf("%s: %.3f gateway requests per cycle (%.4f keep-alives, %llu grants)\n", subject,
           (double)(s1.requests - s0.requests) / n, (double)(s1.keepalives - s0.keepalives) / n,
           (unsigned long long)(s1.grants - s0.grants));
    timing_report(&t, csv, rep, subject, "tl_acquire + tl_release on etcd://");
    tl_manager_free(m);
}

/* ---- heartbeat ---- */

/* CPU seconds (user + system) of process `pid` from /proc, or -1. */
static double proc_cpu_s(long pid)
{
    char path[64], buf[2048];
    unsigned long long ut = 0, stt = 0;

    if (pid <= 0)
        return -1;
    (void)snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
        return -1;
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static struct tl_metrics metrics(const tl_manager *m)
{
    struct tl_metrics mt;

    tl_metrics_get(m, &mt, sizeof(mt));
    return mt;
}

static struct tl_etcd_stats hb_stats(const tl_manager *m)
{
    /* The heartbeat thread opens its store once and owns it: the counters are read while it
     * runs (a benchmark's approximate read; each is a word). */
    const struct tl_store *s = __atomic_load_n(&m->hb_store, __ATOMIC_ACQUIRE);

    return store_stats(s);
}

static void bench_heartbeat(const char *endpoint, long nlocks, uint32_t timeout_ms, int windows,
                            double window_s, long etcd_pid, const char *csv, int rep)
{
    char url[300];

    (void)snprintf(url, sizeof(url), "etcd://%s", endpoint);
    tl_manager *m = tl_manager_new(&(struct tl_options){.store_url = url,
                                                        .worker_id = "bench-hb",
                                                        .node_id = "bench",
                                                        .lock_timeout_ms = timeout_ms});
    if (m == NULL || tl_connect(m) != TL_OK)
        die("connect", m ? tl_errmsg(m) : "out of memory");
    tl_lock **locks = calloc((size_t)nlocks, sizeof(*locks));
    if (locks == NULL)
        die("memory", "out of memory");
    double a0 = bench_now_s();
    for (long i = 0; i < nlocks; i++) {
        char key[64];
        (void)snprintf(key, sizeof(key), "bench-hb-%ld-%ld", (long)getpid(), i);
        if (tl_acquire(m, key, &(struct tl_acquire_opts){.strategy = TL_FAIL_FAST}, &locks[i]) !=
            TL_OK)
            die(key, tl_errmsg(m));
    }
    double acquire_s = bench_now_s() - a0;
    uint32_t interval = tl__lock_interval(m, m->store, timeout_ms);
    fprintf(stderr,
            "etcd: %ld locks acquired in %.1f s; lock timeout %u ms, heartbeat every %u ms\n",
            nlocks, acquire_s, timeout_ms, interval);
    if (window_s <= 0)
        window_s = 3.0 * interval / 1000.0;

    /* Settle: every lock renewed once since the last acquire. */
    struct tl_metrics mt = metrics(m);
    double settle_until = bench_now_s() + 4.0 * interval / 1000.0;
    while (mt.heartbeats_sent < (uint64_t)nlocks && bench_now_s() < settle_until) {
        bench_sleep_s(0.05);
        mt = metrics(m);
    }

    char config[48];
    (void)snprintf(config, sizeof(config), "n%ld-t%u", nlocks, timeout_ms);
    struct bench_csv out;
    bench_csv_open(&out, csv, rep, "etcd", "ours");
    bench_csv_row(&out, config, "interval_ms", interval);
    bench_csv_row(&out, config, "default_interval_ms", TL_DEFAULT_HEARTBEAT_MS);
    bench_csv_row(&out, config, "acquire_all_s", acquire_s);
    double us_med[64], pct_med[64];
    int nw = windows < 64 ? windows : 64;
    for (int w = 0; w < nw; w++) {
        struct tl_metrics m0 = metrics(m);
        struct tl_etcd_stats s0 = hb_stats(m);
        double c0 = bench_cpu_s(), e0 = proc_cpu_s(etcd_pid), t0 = bench_now_s();
        bench_sleep_s(window_s);
        struct tl_metrics m1 = metrics(m);
        struct tl_etcd_stats s1 = hb_stats(m);
        double cpu = bench_cpu_s() - c0, wall = bench_now_s() - t0;
        double ecpu = e0 >= 0 ? proc_cpu_s(etcd_pid) - e0 : -1;
        double renewals = (double)(m1.heartbeats_sent - m0.heartbeats_sent);
        double renews = (double)(s1.renews - s0.renews);
        double kas = (double)(s1.keepalives - s0.keepalives);
        double reqs = (double)(s1.requests - s0.requests);
        double intervals = wall * 1000.0 / interval;
        double us = renewals > 0 ? cpu / renewals * 1e6 : 0;
        /* At the default interval (30 s, the cap for every lock timeout of 90 s and more): the
         * same renewals, nlocks per 30 s, at this cost each. */
        double pct_default = us * 1e-6 * (double)nlocks / (TL_DEFAULT_HEARTBEAT_MS / 1000.0) * 100;
        char wc[64];
        (void)snprintf(wc, sizeof(wc), "%s-w%d", config, w + 1);
        bench_csv_row(&out, wc, "wall_s", wall);
        bench_csv_row(&out, wc, "cpu_s", cpu);
        bench_csv_row(&out, wc, "renewals", renewals);
        bench_csv_row(&out, wc, "store_renews", renews);
        bench_csv_row(&out, wc, "keepalives", kas);
        bench_csv_row(&out, wc, "requests", reqs);
        bench_csv_row(&out, wc, "keepalives_per_interval", kas / intervals);
        bench_csv_row(&out, wc, "requests_per_renewal", renewals > 0 ? reqs / renewals : 0);
        bench_csv_row(&out, wc, "cpu_us_per_renewal", us);
        bench_csv_row(&out, wc, "core_pct_measured", cpu / wall * 100);
        bench_csv_row(&out, wc, "core_pct_at_default", pct_default);
        if (ecpu >= 0)
            bench_csv_row(&out, wc, "etcd_core_pct", ecpu / wall * 100);
        us_med[w] = us;
        pct_med[w] = cpu / wall * 100;
        fprintf(stderr,
                "etcd window %d: %.0f renewals (%.0f store renews, %.0f keep-alives = %.2f per "
                "interval, %.2f requests per renewal) in %.1f s; CPU %.3f s = %.2f%% of a core "
                "(%.1f us per renewal; %.3f%% at the default 30 s interval)%s",
                w + 1, renewals, renews, kas, kas / intervals, renewals > 0 ? reqs / renewals : 0,
                wall, cpu, cpu / wall * 100, us, pct_default, ecpu >= 0 ? "" : "\n");
        if (ecpu >= 0)
            fprintf(stderr, "; etcd itself %.2f%% of a core\n", ecpu / wall * 100);
    }
    mt = metrics(m);
    double med_us = bench_quantile(us_med, (size_t)nw, 0.5);
    bench_csv_row(&out, config, "cpu_us_per_renewal_median", med_us);
    bench_csv_row(&out, config, "core_pct_measured_median",
                  bench_quantile(pct_med, (size_t)nw, 0.5));
    bench_csv_row(&out, config, "core_pct_at_default_median",
                  med_us * 1e-6 * (double)nlocks / (TL_DEFAULT_HEARTBEAT_MS / 1000.0) * 100);
    bench_csv_row(&out, config, "heartbeats_failed", (double)mt.heartbeats_failed);
    bench_csv_row(&out, config, "locks_lost", (double)mt.locks_lost);
    bench_csv_close(&out);
    fprintf(stderr, "etcd: %llu heartbeats failed, %llu locks lost\n",
            (unsigned long long)mt.heartbeats_failed, (unsigned long long)mt.locks_lost);
    for (long i = 0; i < nlocks; i++) {
        (void)tl_release(locks[i], NULL);
        tl_lock_free(locks[i]);
    }
    free(locks);
    tl_manager_free(m);
}

int main(int argc, char **argv)
{
    const char *csv = NULL, *subject = "ours", *query = NULL;
    int rep = 1, windows = 3, c;
    long nlocks = 1000, etcd_pid = 0;
    uint32_t timeout_ms = 6000;
    double window_s = 0;

    while ((c = getopt(argc, argv, "o:r:s:q:N:T:w:t:P:")) != -1) {
        switch (c) {
        case 'o': csv = optarg; break;
        case 'r': rep = (int)strtol(optarg, NULL, 10); break;
        case 's': subject = optarg; break;
        case 'q': query = optarg; break;
        case 'N': nlocks = strtol(optarg, NULL, 10); break;
        case 'T': timeout_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'w': windows = (int)strtol(optarg, NULL, 10); break;
        case 't': window_s = strtod(optarg, NULL); break;
        case 'P': etcd_pid = strtol(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, "usage: " PROG " [-o CSV -r REP -s SUBJECT -q QUERY] HOST:PORT SECONDS "
                        "lib|floor|floor-store|v3lock\n"
                        "       " PROG " [-o CSV -r REP] -N LOCKS [-T TIMEOUT_MS -w WINDOWS "
                        "-t WINDOW_S -P ETCD_PID] HOST:PORT 0 heartbeat\n");
        return 2;
    }
    const char *endpoint = argv[optind], *mode = argv[optind + 2];
    double seconds = strtod(argv[optind + 1], NULL);

    if (tl__store_find("etcd:") == NULL) {
        printf("not measured: this build has no etcd store\n");
        return 3;
    }
    if (strcmp(mode, "heartbeat") == 0) {
        if (nlocks < 1 || windows < 1 || timeout_ms < 1000)
            die("usage", "need -N >= 1, -w >= 1, -T >= 1000");
        bench_heartbeat(endpoint, nlocks, timeout_ms, windows, window_s, etcd_pid, csv, rep);
        return 0;
    }
    if (seconds <= 0)
        die("usage", "SECONDS must be more than 0");
    if (strcmp(mode, "lib") == 0)
        bench_lib(endpoint, query, seconds, csv, rep, subject);
    else if (strcmp(mode, "floor") == 0)
        bench_floor(endpoint, seconds, csv, rep);
    else if (strcmp(mode, "floor-store") == 0)
        bench_floor_store(endpoint, seconds, csv, rep);
    else if (strcmp(mode, "v3lock") == 0)
        bench_v3lock(endpoint, seconds, csv, rep);
    else
        die(mode, "no such mode (lib, floor, floor-store, v3lock, heartbeat)");
    return 0;
}
