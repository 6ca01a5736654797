/*
 * etcd.c -- the etcd store: etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][/][?PARAMS].
 *
 * The lock protocol on etcd's keys and leases; etcd_client.c speaks the v3 JSON gateway and
 * fails over between the endpoints. Keys, under a prefix (default "tasklock/"; KEY is the lock's
 * key, SEP the byte 0x1f, which a valid key never contains):
 *
 *   PREFIX l/KEY          the lock record: holder, node, claim time, lock timeout, task info,
 *                         and the claim's nonce. No lease: it stays until released, stolen or
 *                         forced (a stale lock stays held, as the contract says).
 *   PREFIX o/KEY          the holder's worker id, written and deleted with the record: a write
 *                         on behalf of a holder compares it (and the token) exactly.
 *   PREFIX h/KEY          the holder's liveness: attached to the holder's lease, so etcd deletes
 *                         it when the lease expires. Present = live, absent = stale (judged by
 *                         etcd, not by anyone's clock). Its value holds the current lock timeout.
 *   PREFIX w/KEY SEP ID   a waiter in KEY's line, attached to its manager's waiter lease: a
 *                         waiter that stops refreshing disappears by itself (a dead waiter is
 *                         never seen). Its create revision is its seq.
 *   PREFIX e/KEY SEP ID   an audit-trail event; at most history_max per key.
 *
 * Tokens are revisions: a grant (claim, steal, force) writes the lock record, and the record's
 * mod_revision, the revision of that transaction, is the holder's fencing token; nothing else
 * writes the record while it is held, so every write on behalf of a holder compares
 * mod_revision == token (Mutex.IsOwner() in etcd's own client). Revisions are strictly
 * increasing across the whole cluster, so tokens increase across release, steal and force.
 *
 * Every write is one transaction guarded by compares on what was read before it, at revision R:
 * a claim of a free key compares the record's absence and that no waiter joined the line after
 * R; a steal also compares the liveness key's absence; a force compares the record's revision.
 * When the answer to a write is lost (etcd_client.c does not repeat a write that may have been
 * applied), the store reads again and decides again: a claim recognises its own nonce.
 *
 * Leases (ETCD-API.md A.2): one per store instance and whole-second TTL (a lock timeout rounded
 * up), granted on first use and shared by every lock and waiter of that timeout. A renew keeps
 * the lease alive (one keep-alive per lease however many locks hang on it: a renew within a
 * sixth of the timeout of the last keep-alive relies on it, and says so through
 * beat_sent_mono_ms) and checks that the record is still ours; a renew of a stale lock whose
 * record is still ours (its lease expired, nobody took it) attaches the liveness key to a fresh
 * lease. A new leader refreshes every lease (A.9): a dead holder's lock can outlive its timeout
 * by an election, so fencing tokens, not TTL arithmetic, protect the work.
 *
 * The line: the head waiter watches the lock record (and the liveness key, when it may steal),
 * every other waiter watches its predecessor's waiter key only, from the revision it read, so
 * that nothing between the read and the watch is missed (A.5, A.7).
 *
 * Times: etcd has no clock we can read. Claim and event times are the writer's clock; a live
 * holder's last heartbeat is estimated from its lease's remaining TTL (whole seconds).
 */
#include "etcd.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "etcd_client.h"
#include "store.h"
#include "tl.h"

#define DEFAULT_PREFIX      "tasklock/"
#define DEFAULT_HISTORY_MAX 1000u
#define HISTORY_MAX_LIMIT   100000u
#define OP_BUDGET_MS        15000 /* a call without a deadline of its own */
#define MAX_ENDPOINTS       16
#define MAX_LEASES          8
#define SEP                 "\x1f"
#define SEP_NEXT            "\x20"
#define TXN_MAX_OPS         100 /* etcd allows 128 per transaction */

struct lease {
    int64_t id;
    uint32_t ttl_s;
    int64_t beat_mono; /* when its last grant or keep-alive was sent (the store clock's mono) */
};

struct etcd_store {
    struct tl_store base;
    struct tl_etcd *cli;
    char *prefix;
    uint32_t history_max;
    struct lease leases[MAX_LEASES];
    size_t nleases;
    /* The last busy claim with a waiter: what wait_turn needs to know of it. */
    char *wait_key;
    char wait_id[40];
    enum tl_claim_mode wait_mode;
    struct tl_etcd_stats stats;
};

_Static_assert(offsetof(struct etcd_store, base) == 0, "base must be first");

/* ---- small helpers ---- */

static struct etcd_store *es_of(struct tl_store *s)
{
    return (struct etcd_store *)s;
}

static int64_t mono(struct tl_store *s)
{
    return s->clock->mono_ms(s->clock->ud);
}

static int64_t now_ms(struct tl_store *s)
{
    return s->clock->now_ms(s->clock->ud);
}

/* The call's deadline on the real monotonic clock (the client's), from the store's. */
static int64_t real_deadline(struct tl_store *s)
{
    int64_t real = tl__real_mono_ms();

    if (s->deadline_mono_ms == 0)
        return real + OP_BUDGET_MS;
    int64_t left = s->deadline_mono_ms - mono(s);
    return real + (left > 0 ? left : 0);
}

static tl_status oom(struct tl_store *s)
{
    return tl__store_fail(s, TL_ENOMEM, "etcd: out of memory");
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char b[32];

    if (bytes > sizeof(b))
        bytes = sizeof(b);
    if (getrandom(b, bytes, GRND_NONBLOCK) != (ssize_t)bytes) {
        uint64_t x = (uint64_t)tl__real_now_ms() * 6364136223846793005ull ^
                     (uint64_t)tl__real_mono_ms() ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < bytes; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            b[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < bytes; i++)
        (void)snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* PREFIX + part + key [+ SEP [+ id]]. */
static char *path(const struct etcd_store *es, const char *part, const char *key, const char *sep,
                  const char *id)
{
    return tl__asprintf("%s%s%s%s%s", es->prefix, part, key ? key : "", sep ? sep : "",
                        id ? id : "");
}

/* The first key after every key that starts with `prefix` (whose last byte is not 0xff). */
static char *prefix_end(const char *prefix)
{
    char *end = tl__strdup(prefix);
    size_t n = end ? strlen(end) : 0;

    if (end != NULL && n > 0)
        end[n - 1] = (char)(end[n - 1] + 1);
    return end;
}

/* ---- JSON for the gateway ---- */

/* A base64 JSON string of `s`, or NULL. */
static json_t *b64s(const char *s)
{
    char *enc = tl__b64_encode(s, strlen(s));
    json_t *j = enc ? json_string(enc) : NULL;

    tl__free(enc);
    return j;
}

static json_t *i64s(int64_t v)
{
    char buf[32];

    (void)snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return json_string(buf);
}

/* json_object_set_new that tolerates NULL values (and then marks the object bad). */
static void set(json_t *obj, const char *field, json_t *v, bool *ok)
{
    if (v == NULL || obj == NULL || json_object_set_new(obj, field, v) != 0)
        *ok = false;
}

static json_t *op_put(const char *key, const char *value, int64_t lease, bool *ok)
{
    json_t *put = json_object();

    set(put, "key", b64s(key), ok);
    set(put, "value", b64s(value), ok);
    if (lease != 0)
        set(put, "lease", i64s(lease), ok);
    json_t *op = json_object();
    set(op, "request_put", put, ok);
    return op;
}

static json_t *op_delete(const char *key, const char *end, bool *ok)
{
    json_t *del = json_object();

    set(del, "key", b64s(key), ok);
    if (end != NULL)
        set(del, "range_end", b64s(end), ok);
    json_t *op = json_object();
    set(op, "request_delete_range", del, ok);
    return op;
}

/* A range request body (also the inside of a request_range op). */
static json_t *range_req(const char *key, const char *end, bool *ok)
{
    json_t *r = json_object();

    set(r, "key", b64s(key), ok);
    if (end != NULL)
        set(r, "range_end", b64s(end), ok);
    return r;
}

static json_t *op_range(json_t *req, bool *ok)
{
    json_t *op = json_object();

    set(op, "request_range", req, ok);
    return op;
}

/* A compare of `target` ("CREATE", "MOD") on key (or [key, end)) by `result` with `v`. */
static json_t *cmp(const char *key, const char *end, const char *target, const char *result,
                   int64_t v, bool *ok)
{
    json_t *c = json_object();

    set(c, "key", b64s(key), ok);
    if (end != NULL)
        set(c, "range_end", b64s(end), ok);
    set(c, "target", json_string(target), ok);
    set(c, "result", json_string(result), ok);
    set(c, strcmp(target, "CREATE") == 0 ? "create_revision" : "mod_revision", i64s(v), ok);
    return c;
}

static void push(json_t *arr, json_t *v, bool *ok)
{
    if (v == NULL || arr == NULL || json_array_append_new(arr, v) != 0)
        *ok = false;
}

/* A compare of the value of `key` with `value`, exactly. */
static json_t *cmp_value(const char *key, const char *value, bool *ok)
{
    json_t *c = json_object();

    set(c, "key", b64s(key), ok);
    set(c, "target", json_string("VALUE"), ok);
    set(c, "result", json_string("EQUAL"), ok);
    set(c, "value", b64s(value), ok);
    return c;
}

/* ---- answers ---- */

/* One key-value of an answer, decoded. */
struct kv {
    char *key;
    char *value;
    size_t value_len;
    int64_t create, mod, lease;
};

static void kv_clear(struct kv *k)
{
    tl__free(k->key);
    tl__free(k->value);
    memset(k, 0, sizeof(*k));
}

static void kvs_free(struct kv *arr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kv_clear(&arr[i]);
    tl__free(arr);
}

/* Decodes one kv object; false (with a message) when it is not one. */
static tl_status kv_parse(struct tl_store *s, json_t *o, struct kv *out)
{
    size_t klen = 0;
    json_t *k = json_object_get(o, "key"), *v = json_object_get(o, "value");

    memset(out, 0, sizeof(*out));
    if (!json_is_object(o) || !json_is_string(k) || (v != NULL && !json_is_string(v)) ||
        !tl__etcd_i64(o, "create_revision", &out->create) ||
        !tl__etcd_i64(o, "mod_revision", &out->mod) || !tl__etcd_i64(o, "lease", &out->lease))
        return tl__store_fail(s, TL_ESTORE, "etcd: a key in the answer is malformed");
    out->key = tl__b64_decode(json_string_value(k), &klen);
    out->value = tl__b64_decode(v ? json_string_value(v) : "", &out->value_len);
    if (out->key == NULL || out->value == NULL) {
        kv_clear(out);
        return tl__store_fail(s, TL_ESTORE, "etcd: a key in the answer is not base64");
    }
    if (strlen(out->key) != klen || strlen(out->value) != out->value_len) {
        kv_clear(out);
        return tl__store_fail(s, TL_ESTORE, "etcd: a key in the answer holds a NUL byte");
    }
    return TL_OK;
}

/* The kvs of a range answer (response_range's content), decoded. */
static tl_status kvs_parse(struct tl_store *s, json_t *range, struct kv **out, size_t *n)
{
    json_t *arr = json_object_get(range, "kvs");
    size_t count = json_is_array(arr) ? json_array_size(arr) : 0;

    *out = NULL;
    *n = 0;
    if (arr != NULL && !json_is_array(arr))
        return tl__store_fail(s, TL_ESTORE, "etcd: \"kvs\" is not an array");
    if (count == 0)
        return TL_OK;
    struct kv *kvs = tl__calloc(count, sizeof(*kvs));
    if (kvs == NULL)
        return oom(s);
    for (size_t i = 0; i < count; i++) {
        tl_status st = kv_parse(s, json_array_get(arr, i), &kvs[i]);
        if (st != TL_OK) {
            kvs_free(kvs, i);
            return st;
        }
    }
    *out = kvs;
    *n = count;
    return TL_OK;
}

/* response i of a txn answer, of kind `kind` ("response_range"). */
static json_t *txn_response(json_t *ans, size_t i, const char *kind)
{
    return json_object_get(json_array_get(json_object_get(ans, "responses"), i), kind);
}

static bool txn_succeeded(json_t *ans)
{
    return json_is_true(json_object_get(ans, "succeeded"));
}

static int64_t header_revision(json_t *ans)
{
    int64_t rev = 0;

    (void)tl__etcd_i64(json_object_get(ans, "header"), "revision", &rev);
    return rev;
}

/* POSTs and copies the client's message on failure. */
static tl_status post(struct tl_store *s, const char *p, json_t *body, enum tl_etcd_call kind,
                      json_t **out)
{
    char err[TL_ERRMSG_SIZE];
    struct etcd_store *es = es_of(s);

    if (body == NULL) {
        *out = NULL;
        return oom(s);
    }
    es->stats.requests++;
    tl_status st = tl__etcd_post(es->cli, p, body, kind, real_deadline(s), out, err);
    if (st != TL_OK)
        (void)tl__store_fail(s, st, "%s", err);
    return st;
}

/* A transaction; `compare`, `success`, `failure` are stolen (NULL: empty). */
static tl_status txn(struct tl_store *s, json_t *compare, json_t *success, json_t *failure,
                     bool ok, enum tl_etcd_call kind, json_t **out)
{
    json_t *body = json_object();

    set(body, "compare", compare ? compare : json_array(), &ok);
    set(body, "success", success ? success : json_array(), &ok);
    set(body, "failure", failure ? failure : json_array(), &ok);
    if (!ok) {
        json_decref(body);
        *out = NULL;
        return oom(s);
    }
    tl_status st = post(s, "/v3/kv/txn", body, kind, out);
    json_decref(body);
    return st;
}

/* Whether the last failure was a write that may have been applied. */
static bool unsure(const struct etcd_store *es)
{
    return tl__etcd_last_error(es->cli)->unsure;
}

/* Whether the last failure was etcd saying that a lease does not exist (it expired). */
static bool lease_gone(const struct etcd_store *es)
{
    const struct tl_etcd_error *e = tl__etcd_last_error(es->cli);

    return e->code == 5 || e->http == 404;
}

/* ---- leases ---- */

static uint32_t ttl_of(uint32_t timeout_ms)
{
    uint32_t s = (uint32_t)(((uint64_t)timeout_ms + 999) / 1000);

    return s ? s : 1;
}

/* A keep-alive of lease `id`: *alive false when etcd no longer has it. */
static tl_status keepalive(struct tl_store *s, int64_t id, bool *alive)
{
    json_t *body = json_pack("{s:o}", "ID", i64s(id)), *ans = NULL;
    tl_status st = post(s, "/v3/lease/keepalive", body, TL_ETCD_READ, &ans);
    int64_t ttl = 0;

    json_decref(body);
    es_of(s)->stats.keepalives++;
    if (st != TL_OK)
        return st;
    json_t *res = json_object_get(ans, "result");
    if (!json_is_object(res) || !tl__etcd_i64(res, "TTL", &ttl)) {
        json_decref(ans);
        return tl__store_fail(s, TL_ESTORE, "etcd: a keep-alive answer is malformed");
    }
    json_decref(ans);
    *alive = ttl > 0;
    return TL_OK;
}

static struct lease *find_lease(struct etcd_store *es, uint32_t ttl_s)
{
    for (size_t i = 0; i < es->nleases; i++)
        if (es->leases[i].ttl_s == ttl_s)
            return &es->leases[i];
    return NULL;
}

static void forget_lease(struct etcd_store *es, int64_t id)
{
    for (size_t i = 0; i < es->nleases; i++) {
        if (es->leases[i].id == id) {
            es->leases[i] = es->leases[--es->nleases];
            return;
        }
    }
}

/*
 * A lease of this instance for `timeout_ms`, alive for at least that long from *sent (when its
 * grant or last keep-alive was sent): one kept alive within a sixth of the timeout is used as it
 * is, else it is kept alive now, or a new one is granted.
 */
static tl_status lease_for(struct tl_store *s, uint32_t timeout_ms, int64_t *id, int64_t *sent)
{
    struct etcd_store *es = es_of(s);
    uint32_t ttl = ttl_of(timeout_ms);
    struct lease *l = find_lease(es, ttl);
    int64_t t = mono(s);
    tl_status st;

    if (l != NULL && t - l->beat_mono < (int64_t)(timeout_ms / 6)) {
        *id = l->id;
        *sent = l->beat_mono;
        return TL_OK;
    }
    if (l != NULL) {
        bool alive = false;
        if ((st = keepalive(s, l->id, &alive)) != TL_OK)
            return st;
        if (alive) {
            l->beat_mono = t;
            *id = l->id;
            *sent = t;
            return TL_OK;
        }
        forget_lease(es, l->id);
    }

    json_t *body = json_pack("{s:I}", "TTL", (json_int_t)ttl), *ans = NULL;
    st = post(s, "/v3/lease/grant", body, TL_ETCD_READ, &ans);
    json_decref(body);
    if (st != TL_OK)
        return st;
    int64_t got = 0;
    if (!tl__etcd_i64(ans, "ID", &got) || got == 0) {
        json_decref(ans);
        return tl__store_fail(s, TL_ESTORE, "etcd: a lease grant answer has no lease");
    }
    json_decref(ans);
    es->stats.grants++;
    if (es->nleases == MAX_LEASES)
        es->leases[0] = es->leases[--es->nleases]; /* forget one: it expires on its own */
    es->leases[es->nleases++] = (struct lease){.id = got, .ttl_s = ttl, .beat_mono = t};
    *id = got;
    *sent = t;
    return TL_OK;
}

/* When the holder of lease `id` last heartbeated (our clock, estimated from the remaining TTL),
 * or *alive false when the lease is gone. */
static tl_status lease_beat(struct tl_store *s, int64_t id, int64_t *beat_ms, bool *alive)
{
    json_t *body = json_pack("{s:o}", "ID", i64s(id)), *ans = NULL;
    tl_status st = post(s, "/v3/lease/timetolive", body, TL_ETCD_READ, &ans);
    int64_t ttl = 0, granted = 0;

    json_decref(body);
    if (st != TL_OK)
        return st;
    if (!tl__etcd_i64(ans, "TTL", &ttl) || !tl__etcd_i64(ans, "grantedTTL", &granted)) {
        json_decref(ans);
        return tl__store_fail(s, TL_ESTORE, "etcd: a lease time-to-live answer is malformed");
    }
    json_decref(ans);
    *alive = ttl > 0;
    /* TTL counts whole seconds left, rounded down: the beat was within that second. */
    *beat_ms = now_ms(s) - (granted > ttl ? (granted - ttl) * 1000 - 500 : 0);
    return TL_OK;
}

/* ---- values ---- */

/* The lock record's value. */
static char *record_value(const struct tl_claim *req, const char *nonce, int64_t at)
{
    json_t *task = json_loads(req->task_info, 0, NULL);
    json_t *v = json_pack("{s:s, s:s, s:I, s:I, s:o, s:s}", "worker", req->worker_id, "node",
                          req->node_id, "claimed_at", (json_int_t)at, "timeout",
                          (json_int_t)req->lock_timeout_ms, "task",
                          json_is_object(task) ? task : json_object(), "nonce", nonce);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    char *out = text ? tl__strdup(text) : NULL;

    if (!json_is_object(task))
        json_decref(task);
    json_decref(v);
    free(text);
    return out;
}

static char *live_value(uint32_t timeout_ms)
{
    return tl__asprintf("{\"timeout\":%u}", timeout_ms);
}

/* The lock timeout a liveness value records, or 0. */
static uint32_t live_timeout(const struct kv *h)
{
    json_t *v = json_loadb(h->value, h->value_len, 0, NULL);
    json_t *t = json_object_get(v, "timeout");
    json_int_t x = json_is_integer(t) ? json_integer_value(t) : 0;

    json_decref(v);
    return x > 0 && x <= TL_DURATION_MAX_MS ? (uint32_t)x : 0;
}

/* A record from the lock record `l` (token = its mod revision) and liveness `h` (may be NULL;
 * its lock timeout and lease), not judged yet; with `nonce_copy`, the claim's nonce too. */
static tl_status record_from(struct tl_store *s, const char *key, const struct kv *l,
                             const struct kv *h, struct tl_record *out, char **nonce_copy)
{
    json_error_t je;
    json_t *v = json_loadb(l->value, l->value_len, JSON_REJECT_DUPLICATES, &je);
    json_t *w = json_object_get(v, "worker"), *n = json_object_get(v, "node");
    json_t *c = json_object_get(v, "claimed_at"), *t = json_object_get(v, "timeout");
    json_t *task = json_object_get(v, "task"), *nonce = json_object_get(v, "nonce");
    tl_status st = TL_OK;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(v) || !json_is_string(w) || !json_is_string(n) || !json_is_integer(c) ||
        !json_is_integer(t) || !json_is_object(task) ||
        tl__check_id(json_string_value(w), TL_ID_MAX) != NULL ||
        tl__check_id(json_string_value(n), TL_ID_MAX) != NULL || json_integer_value(t) <= 0 ||
        json_integer_value(t) > TL_DURATION_MAX_MS) {
        st = tl__store_fail(s, TL_ESTORE, "etcd: the lock record of %s is malformed", key);
        goto out;
    }
    char *task_text = json_dumps(task, JSON_COMPACT);
    out->info.key = tl__strdup(key);
    out->info.worker_id = tl__strdup(json_string_value(w));
    out->info.node_id = tl__strdup(json_string_value(n));
    out->info.task_info = task_text ? tl__strdup(task_text) : NULL;
    free(task_text);
    out->info.token = (uint64_t)l->mod;
    out->info.claimed_at_ms = json_integer_value(c);
    out->info.lock_timeout_ms = (uint32_t)json_integer_value(t);
    if (h != NULL) {
        uint32_t ht = live_timeout(h);
        if (ht != 0)
            out->info.lock_timeout_ms = ht;
        out->opaque = tl__asprintf("%llx", (unsigned long long)h->lease);
    }
    if (nonce_copy != NULL)
        *nonce_copy = json_is_string(nonce) ? tl__strdup(json_string_value(nonce)) : NULL;
    if (!out->info.key || !out->info.worker_id || !out->info.node_id || !out->info.task_info ||
        (h != NULL && out->opaque == NULL) ||
        (nonce_copy != NULL && json_is_string(nonce) && *nonce_copy == NULL)) {
        tl__record_clear(out);
        st = oom(s);
    }
out:
    json_decref(v);
    return st;
}

/* Fills heartbeat, staleness and observation time of a record whose liveness key is `h`: stale
 * exactly when etcd has deleted it (the claim's steal compares that), the heartbeat estimated
 * from the lease's remaining whole seconds. */
static tl_status judge(struct tl_store *s, struct tl_record *r, const struct kv *h)
{
    int64_t now = now_ms(s), beat = now;
    int64_t timeout = r->info.lock_timeout_ms;

    r->info.observed_at_ms = now;
    if (h == NULL) {
        r->info.heartbeat_at_ms = now - timeout - 1;
        r->info.stale = true;
        return TL_OK;
    }
    bool alive = true;
    tl_status st = lease_beat(s, h->lease, &beat, &alive);
    if (st != TL_OK)
        return st;
    /* Never older than the claim, and never judged stale while etcd keeps the key. */
    if (beat < r->info.claimed_at_ms)
        beat = r->info.claimed_at_ms;
    if (beat <= now - timeout)
        beat = now - timeout + 1;
    r->info.heartbeat_at_ms = beat < now ? beat : now;
    r->info.stale = false;
    return TL_OK;
}

/* ---- events ---- */

/* An event value; token 0 means "this transaction's revision" (a grant). */
static char *event_value(tl_event_kind kind, const char *worker, const char *node,
                         uint64_t token, int64_t at, const char *detail, int order)
{
    json_t *v = json_pack("{s:s, s:s, s:s, s:I, s:i}", "kind", tl_event_kind_name(kind), "worker",
                          worker, "node", node, "at", (json_int_t)at, "order", order);
    bool ok = v != NULL;

    if (token != 0)
        set(v, "token", i64s((int64_t)token), &ok);
    if (detail != NULL)
        set(v, "detail", json_string(detail), &ok);
    char *text = ok ? json_dumps(v, JSON_COMPACT) : NULL;
    char *out = text ? tl__strdup(text) : NULL;
    json_decref(v);
    free(text);
    return out;
}

/* A put op of an event of `key`. */
static json_t *op_event(const struct etcd_store *es, const char *key, tl_event_kind kind,
                        const char *worker, const char *node, uint64_t token, int64_t at,
                        const char *detail, int order, bool *ok)
{
    char id[64], rnd[17];

    random_hex(rnd, 8);
    (void)snprintf(id, sizeof(id), "%013llx-%s-%d", (unsigned long long)(at > 0 ? at : 0), rnd,
                   order);
    char *k = path(es, "e/", key, SEP, id);
    char *v = event_value(kind, worker, node, token, at, detail, order);
    json_t *op = k && v ? op_put(k, v, 0, ok) : NULL;

    if (op == NULL)
        *ok = false;
    tl__free(k);
    tl__free(v);
    return op;
}

/* ---- the state of a key ---- */

struct waiter_kv {
    struct kv kv;
    const char *id; /* in kv.key, after SEP */
    int32_t priority;
};

struct key_state {
    int64_t rev; /* the revision it was read at */
    bool held, live;
    struct kv l, h;
    struct waiter_kv *line; /* in line order */
    size_t nline;
};

static void state_clear(struct key_state *ks)
{
    kv_clear(&ks->l);
    kv_clear(&ks->h);
    for (size_t i = 0; i < ks->nline; i++)
        kv_clear(&ks->line[i].kv);
    tl__free(ks->line);
    memset(ks, 0, sizeof(*ks));
}

static int cmp_waiter(const void *a, const void *b)
{
    const struct waiter_kv *x = a, *y = b;

    if (tl__waiter_before(x->priority, (uint64_t)x->kv.create, y->priority, (uint64_t)y->kv.create))
        return -1;
    if (tl__waiter_before(y->priority, (uint64_t)y->kv.create, x->priority, (uint64_t)x->kv.create))
        return 1;
    return 0;
}

static int32_t waiter_priority(const struct kv *k)
{
    json_t *v = json_loadb(k->value, k->value_len, 0, NULL);
    json_t *p = json_object_get(v, "priority");
    json_int_t x = json_is_integer(p) ? json_integer_value(p) : 0;

    json_decref(v);
    return x < TL_PRIORITY_MIN ? TL_PRIORITY_MIN : x > TL_PRIORITY_MAX ? TL_PRIORITY_MAX : (int32_t)x;
}

/* Fills `ks` from the three range answers (lock record, liveness, line) at revision `rev`. */
static tl_status state_parse(struct tl_store *s, json_t *rl, json_t *rh, json_t *rw, int64_t rev,
                             size_t line_prefix_len, struct key_state *ks)
{
    struct kv *arr = NULL;
    size_t n = 0;
    tl_status st;

    memset(ks, 0, sizeof(*ks));
    ks->rev = rev;
    if (rl == NULL || rh == NULL || rw == NULL || rev <= 0)
        return tl__store_fail(s, TL_ESTORE, "etcd: a transaction answer lacks its ranges");
    if ((st = kvs_parse(s, rl, &arr, &n)) != TL_OK)
        return st;
    if (n > 0) {
        ks->held = true;
        ks->l = arr[0];
        memset(&arr[0], 0, sizeof(arr[0]));
    }
    kvs_free(arr, n);
    if ((st = kvs_parse(s, rh, &arr, &n)) != TL_OK)
        goto err;
    if (n > 0) {
        ks->live = true;
        ks->h = arr[0];
        memset(&arr[0], 0, sizeof(arr[0]));
    }
    kvs_free(arr, n);
    if ((st = kvs_parse(s, rw, &arr, &n)) != TL_OK)
        goto err;
    if (n > 0) {
        ks->line = tl__calloc(n, sizeof(*ks->line));
        if (ks->line == NULL) {
            kvs_free(arr, n);
            st = oom(s);
            goto err;
        }
        for (size_t i = 0; i < n; i++) {
            ks->line[i].kv = arr[i];
            ks->line[i].id = arr[i].key + (strlen(arr[i].key) >= line_prefix_len ? line_prefix_len
                                                                                  : 0);
            ks->line[i].priority = waiter_priority(&arr[i]);
        }
        ks->nline = n;
        tl__free(arr);
        qsort(ks->line, n, sizeof(*ks->line), cmp_waiter);
    }
    return TL_OK;
err:
    state_clear(ks);
    return st;
}

/* The keys of a lock, for one call. */
struct names {
    char *l, *o, *h, *line, *line_end, *waiter;
    size_t line_len;
};

static void names_clear(struct names *k)
{
    tl__free(k->l);
    tl__free(k->o);
    tl__free(k->h);
    tl__free(k->line);
    tl__free(k->line_end);
    tl__free(k->waiter);
    memset(k, 0, sizeof(*k));
}

static tl_status names_for(struct tl_store *s, const char *key, const char *waiter_id,
                           struct names *k)
{
    const struct etcd_store *es = es_of(s);

    memset(k, 0, sizeof(*k));
    k->l = path(es, "l/", key, NULL, NULL);
    k->o = path(es, "o/", key, NULL, NULL);
    k->h = path(es, "h/", key, NULL, NULL);
    k->line = path(es, "w/", key, SEP, NULL);
    k->line_end = path(es, "w/", key, SEP_NEXT, NULL);
    k->waiter = waiter_id ? path(es, "w/", key, SEP, waiter_id) : NULL;
    if (!k->l || !k->o || !k->h || !k->line || !k->line_end || (waiter_id && !k->waiter)) {
        names_clear(k);
        return oom(s);
    }
    k->line_len = strlen(k->line);
    return TL_OK;
}

/* The three ranges of a key's state, as ops (appended to `ops`). */
static void state_ops(json_t *ops, const struct names *k, bool *ok)
{
    push(ops, op_range(range_req(k->l, NULL, ok), ok), ok);
    push(ops, op_range(range_req(k->h, NULL, ok), ok), ok);
    push(ops, op_range(range_req(k->line, k->line_end, ok), ok), ok);
}

/* Parses the state from responses first..first+2 of a txn answer. */
static tl_status state_from(struct tl_store *s, json_t *ans, size_t first, const struct names *k,
                            struct key_state *ks)
{
    return state_parse(s, txn_response(ans, first, "response_range"),
                       txn_response(ans, first + 1, "response_range"),
                       txn_response(ans, first + 2, "response_range"), header_revision(ans),
                       k->line_len, ks);
}

static tl_status read_state(struct tl_store *s, const struct names *k, struct key_state *ks)
{
    bool ok = true;
    json_t *ops = json_array(), *ans = NULL;

    state_ops(ops, k, &ok);
    tl_status st = txn(s, NULL, ops, NULL, ok, TL_ETCD_READ, &ans);
    if (st == TL_OK)
        st = state_from(s, ans, 0, k, ks);
    json_decref(ans);
    return st;
}

/* Our place in the line: index of waiter `id`, or -1. */
static long line_index(const struct key_state *ks, const char *id)
{
    for (size_t i = 0; id != NULL && i < ks->nline; i++)
        if (strcmp(ks->line[i].id, id) == 0)
            return (long)i;
    return -1;
}

/* ---- open, close ---- */

static tl_status parse_endpoints(struct tl_store *s, const char *hosts, size_t len, char **eps,
                                 size_t *n)
{
    size_t i = 0;

    *n = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && hosts[j] != ',')
            j++;
        const char *h = hosts + i;
        size_t hl = j - i;
        if (hl == 0)
            return tl__store_fail(s, TL_EINVAL, "etcd: an empty endpoint in the URL");
        if (*n == MAX_ENDPOINTS)
            return tl__store_fail(s, TL_EINVAL, "etcd: more than %d endpoints", MAX_ENDPOINTS);
        /* HOST:PORT, HOST as a name, a dotted quad or [IPv6]. */
        const char *colon = NULL;
        if (h[0] == '[') {
            const char *close = memchr(h, ']', hl);
            if (close == NULL || close + 1 >= h + hl || close[1] != ':')
                return tl__store_fail(s, TL_EINVAL,
                                      "etcd: endpoint %.*s: an IPv6 address is [ADDR]:PORT",
                                      (int)(hl > 80 ? 80 : hl), h);
            colon = close + 1;
        } else {
            colon = memchr(h, ':', hl);
        }
        if (colon == NULL)
            return tl__store_fail(s, TL_EINVAL, "etcd: endpoint %.*s has no port (HOST:PORT)",
                                  (int)(hl > 80 ? 80 : hl), h);
        for (const char *p = h; p < colon; p++) {
            char c = *p;
            bool fine = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
                        (h[0] == '[' && (c == ':' || c == '[' || c == ']'));
            if (!fine || colon == h)
                return tl__store_fail(s, TL_EINVAL, "etcd: endpoint %.*s: bad host",
                                      (int)(hl > 80 ? 80 : hl), h);
        }
        uint64_t port = 0;
        char pbuf[8];
        size_t pl = (size_t)(h + hl - colon - 1);
        if (pl == 0 || pl >= sizeof(pbuf))
            return tl__store_fail(s, TL_EINVAL, "etcd: endpoint %.*s: bad port",
                                  (int)(hl > 80 ? 80 : hl), h);
        memcpy(pbuf, colon + 1, pl);
        pbuf[pl] = '\0';
        if (!tl__parse_u64(pbuf, &port) || port == 0 || port > 65535)
            return tl__store_fail(s, TL_EINVAL, "etcd: endpoint %.*s: bad port",
                                  (int)(hl > 80 ? 80 : hl), h);
        if ((eps[*n] = tl__strndup(h, hl)) == NULL)
            return oom(s);
        (*n)++;
        i = j + 1;
        if (j < len && i == len)
            return tl__store_fail(s, TL_EINVAL, "etcd: an empty endpoint in the URL");
    }
    if (*n == 0)
        return tl__store_fail(s, TL_EINVAL, "etcd: the URL names no endpoint (etcd://HOST:PORT)");
    return TL_OK;
}

/* One query parameter. */
static tl_status parse_param(struct tl_store *s, const char *name, size_t nlen, const char *val,
                             size_t vlen, struct tl_etcd_opts *o, char **cacert, bool *tls_set)
{
    struct etcd_store *es = es_of(s);
    char *v = NULL;
    tl_status st = tl__percent_decode(val, vlen, &v);

    if (st != TL_OK)
        return tl__store_fail(s, st == TL_ENOMEM ? st : TL_EINVAL,
                              "etcd: parameter %.*s: bad percent-encoding", (int)nlen, name);
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
    if (IS("prefix")) {
        if (v[0] == '\0' || tl__check_id(v, 200) != NULL) {
            st = tl__store_fail(s, TL_EINVAL,
                                "etcd: prefix must be 1-200 characters without space or controls");
        } else {
            tl__free(es->prefix);
            es->prefix = v;
            v = NULL;
        }
    } else if (IS("tls")) {
        if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
            st = tl__store_fail(s, TL_EINVAL, "etcd: tls must be 0 or 1");
        o->tls = strcmp(v, "1") == 0;
        *tls_set = true;
    } else if (IS("cacert")) {
        tl__free(*cacert);
        *cacert = v;
        v = NULL;
    } else if (IS("request_timeout") || IS("connect_timeout")) {
        uint32_t ms = 0;
        if (tl_parse_duration(v, &ms) != TL_OK || ms == 0 || ms > 600000)
            st = tl__store_fail(s, TL_EINVAL, "etcd: %.*s must be a duration of up to 10m",
                                (int)nlen, name);
        else if (IS("request_timeout"))
            o->request_ms = ms;
        else
            o->connect_ms = ms;
    } else if (IS("history_max")) {
        uint64_t x = 0;
        if (!tl__parse_u64(v, &x) || x > HISTORY_MAX_LIMIT)
            st = tl__store_fail(s, TL_EINVAL, "etcd: history_max must be 0 to %u",
                                HISTORY_MAX_LIMIT);
        es->history_max = (uint32_t)x;
    } else {
        st = tl__store_fail(s, TL_EINVAL,
                            "etcd: unknown parameter %.*s (prefix, tls, cacert, request_timeout, "
                            "connect_timeout, history_max)",
                            (int)(nlen > 40 ? 40 : nlen), name);
    }
#undef IS
    tl__free(v);
    return st;
}

static tl_status etcd_open(struct tl_store *s, const char *url)
{
    struct etcd_store *es = es_of(s);
    struct tl_etcd_opts o = {0};
    char *eps[MAX_ENDPOINTS] = {0};
    size_t neps = 0;
    char *user = NULL, *password = NULL, *cacert = NULL;
    bool tls_set = false;
    tl_status st;

    es->history_max = DEFAULT_HISTORY_MAX;
    if ((es->prefix = tl__strdup(DEFAULT_PREFIX)) == NULL)
        return oom(s);
    if (strncmp(url, "etcd://", 7) != 0)
        return tl__store_fail(s, TL_EINVAL, "etcd: the URL must start with etcd://");
    const char *p = url + 7;
    size_t auth_end = strcspn(p, "/?");
    const char *at = NULL;
    for (const char *q = p; q < p + auth_end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (ulen == 0) {
            st = tl__store_fail(s, TL_EINVAL, "etcd: the URL has a password but no user name");
            goto out;
        }
        if (tl__percent_decode(p, ulen, &user) != TL_OK ||
            tl__percent_decode(colon ? colon + 1 : at, colon ? (size_t)(at - colon - 1) : 0,
                               &password) != TL_OK) {
            st = tl__store_fail(s, TL_EINVAL, "etcd: bad percent-encoding in the URL's user info");
            goto out;
        }
        p = at + 1;
    }
    size_t hosts_len = strcspn(p, "/?");
    if ((st = parse_endpoints(s, p, hosts_len, eps, &neps)) != TL_OK)
        goto out;
    p += hosts_len;
    if (*p == '/')
        p++;
    if (*p != '\0' && *p != '?') {
        st = tl__store_fail(s, TL_EINVAL, "etcd: the URL has a path; use ?prefix= for a prefix");
        goto out;
    }
    if (*p == '?')
        p++;
    while (*p != '\0') {
        size_t plen = strcspn(p, "&");
        const char *eq = memchr(p, '=', plen);
        if (eq == NULL) {
            st = tl__store_fail(s, TL_EINVAL, "etcd: parameter %.*s has no value",
                                (int)(plen > 40 ? 40 : plen), p);
            goto out;
        }
        if ((st = parse_param(s, p, (size_t)(eq - p), eq + 1, (size_t)(p + plen - eq - 1), &o,
                              &cacert, &tls_set)) != TL_OK)
            goto out;
        p += plen;
        if (*p == '&')
            p++;
    }
    if (cacert != NULL && !o.tls) {
        st = tl__store_fail(s, TL_EINVAL, "etcd: cacert needs tls=1");
        goto out;
    }
    o.endpoints = (const char *const *)eps;
    o.nendpoints = neps;
    o.cacert = cacert;
    o.user = user;
    o.password = password;
    char err[TL_ERRMSG_SIZE];
    if ((st = tl__etcd_new(&o, &es->cli, err)) != TL_OK) {
        (void)tl__store_fail(s, st, "%s", err);
        goto out;
    }
    /* One read proves the endpoints, the credentials and the prefix. */
    bool ok = true;
    char *lp = path(es, "l/", NULL, NULL, NULL), *lend = lp ? prefix_end(lp) : NULL;
    json_t *req = lp && lend ? range_req(lp, lend, &ok) : NULL, *ans = NULL;
    tl__free(lp);
    tl__free(lend);
    if (req == NULL || !ok) {
        json_decref(req);
        st = oom(s);
        goto out;
    }
    set(req, "count_only", json_true(), &ok);
    st = post(s, "/v3/kv/range", req, TL_ETCD_READ, &ans);
    json_decref(req);
    json_decref(ans);

out:
    for (size_t i = 0; i < neps; i++)
        tl__free(eps[i]);
    tl__free(user);
    if (password != NULL) {
        volatile char *w = password;
        while (*w)
            *w++ = '\0';
        tl__free(password);
    }
    tl__free(cacert);
    return st;
}

static void etcd_close(struct tl_store *s)
{
    struct etcd_store *es = es_of(s);

    /* Leases are left to expire: a lock taken by a process that exits at once (`tasklock
     * acquire`) must stay live until its timeout, renewed from elsewhere. */
    tl__etcd_free(es->cli);
    tl__free(es->prefix);
    tl__free(es->wait_key);
}

/* ---- claim ---- */

struct claim_ctx {
    const struct tl_claim *req;
    struct names k;
    char nonce[33];
    char *value; /* the record we write */
    int64_t at;
};

/* Ops that make us the holder (after the compares that guard them). */
static json_t *win_ops(struct tl_store *s, struct claim_ctx *c, int64_t lease, bool in_line,
                       tl_event_kind kind, const char *detail, bool *ok)
{
    const struct tl_claim *req = c->req;
    json_t *ops = json_array();
    char *live = live_value(req->lock_timeout_ms);

    if (live == NULL)
        *ok = false;
    push(ops, op_put(c->k.l, c->value, 0, ok), ok);
    push(ops, op_put(c->k.o, req->worker_id, 0, ok), ok);
    push(ops, live ? op_put(c->k.h, live, lease, ok) : NULL, ok);
    if (in_line)
        push(ops, op_delete(c->k.waiter, NULL, ok), ok);
    push(ops,
         op_event(es_of(s), req->key, kind, req->worker_id, req->node_id, 0, c->at, detail, 0, ok),
         ok);
    tl__free(live);
    return ops;
}

/* Fills out->rec as our record, won at revision `rev`. */
static tl_status won(struct tl_store *s, struct claim_ctx *c, int64_t rev, int64_t lease,
                     struct tl_claim_result *out)
{
    const struct tl_claim *req = c->req;
    struct tl_record *r = &out->rec;

    memset(r, 0, sizeof(*r));
    r->info.key = tl__strdup(req->key);
    r->info.worker_id = tl__strdup(req->worker_id);
    r->info.node_id = tl__strdup(req->node_id);
    r->info.task_info = tl__strdup(req->task_info);
    r->opaque = tl__asprintf("%llx", (unsigned long long)lease);
    if (!r->info.key || !r->info.worker_id || !r->info.node_id || !r->info.task_info ||
        !r->opaque) {
        tl__record_clear(r);
        return oom(s);
    }
    r->info.token = (uint64_t)rev;
    r->info.claimed_at_ms = r->info.heartbeat_at_ms = c->at;
    r->info.lock_timeout_ms = req->lock_timeout_ms;
    r->info.observed_at_ms = c->at;
    return TL_OK;
}

/* Answers busy: the holder's record (judged) and the line's counts; joins or refreshes the
 * line when the claim has a waiter. */
static tl_status busy(struct tl_store *s, struct claim_ctx *c, const struct key_state *ks,
                      long mine, uint32_t ahead, struct tl_claim_result *out)
{
    struct etcd_store *es = es_of(s);
    const struct tl_claim *req = c->req;
    uint32_t waiting = (uint32_t)ks->nline;
    tl_status st;

    if (req->waiter_id != NULL) {
        int64_t wl = 0, sent = 0;
        if ((st = lease_for(s, req->waiter_timeout_ms, &wl, &sent)) != TL_OK)
            return st;
        if (mine < 0) {
            bool ok = true;
            json_t *v = json_pack("{s:s, s:s, s:i, s:I, s:I}", "worker", req->worker_id, "node",
                                  req->node_id, "priority", (int)req->priority, "since",
                                  (json_int_t)c->at, "timeout",
                                  (json_int_t)req->waiter_timeout_ms);
            char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
            json_decref(v);
            json_t *compare = json_array(), *ops = json_array(), *ans = NULL;
            push(compare, cmp(c->k.waiter, NULL, "CREATE", "EQUAL", 0, &ok), &ok);
            push(ops, text ? op_put(c->k.waiter, text, wl, &ok) : NULL, &ok);
            free(text);
            st = txn(s, compare, ops, NULL, ok, TL_ETCD_WRITE, &ans);
            json_decref(ans);
            if (st != TL_OK && !unsure(es)) {
                if (lease_gone(es))
                    forget_lease(es, wl);
                return st;
            }
            /* Unsure: the next claim sees whether it is there. */
            waiting++;
        }
        tl__free(es->wait_key);
        es->wait_key = tl__strdup(req->key);
        (void)snprintf(es->wait_id, sizeof(es->wait_id), "%s", req->waiter_id);
        es->wait_mode = req->mode;
    }
    out->waiting = waiting;
    out->ahead = ahead;
    if (ks->held) {
        st = record_from(s, req->key, &ks->l, ks->live ? &ks->h : NULL, &out->rec, NULL);
        if (st == TL_OK)
            st = judge(s, &out->rec, ks->live ? &ks->h : NULL);
        if (st != TL_OK) {
            tl__record_clear(&out->rec);
            return st;
        }
        out->holder_known = true;
    }
    return TL_EBUSY;
}

static tl_status etcd_claim(struct tl_store *s, const struct tl_claim *req,
                            struct tl_claim_result *out)
{
    struct etcd_store *es = es_of(s);
    struct claim_ctx c = {.req = req, .at = now_ms(s)};
    struct key_state ks = {0};
    int64_t lease = 0, beat_sent = 0, call_start = mono(s);
    tl_status st;

    es->stats.claims++;
    random_hex(c.nonce, 16);
    if ((st = names_for(s, req->key, req->waiter_id, &c.k)) != TL_OK)
        return st;
    if ((c.value = record_value(req, c.nonce, c.at)) == NULL) {
        st = oom(s);
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        json_t *ans = NULL;
        bool ok = true;
        state_clear(&ks);
        if (s->deadline_mono_ms != 0 && attempt > 0 && mono(s) >= s->deadline_mono_ms) {
            st = tl__store_fail(s, TL_ETIMEDOUT, "etcd: claim of %s: out of time", req->key);
            goto out;
        }
        if (attempt > 50) {
            st = tl__store_fail(s, TL_ESTORE, "etcd: claim of %s: the key changed under every "
                                              "one of 50 attempts", req->key);
            goto out;
        }
        if (attempt == 0 && req->mode != TL_CLAIM_FORCE) {
            /* The common case in one round trip: free key, empty line. */
            if ((st = lease_for(s, req->lock_timeout_ms, &lease, &beat_sent)) != TL_OK)
                goto out;
            json_t *compare = json_array(), *fail = json_array();
            push(compare, cmp(c.k.l, NULL, "CREATE", "EQUAL", 0, &ok), &ok);
            push(compare, cmp(c.k.line, c.k.line_end, "CREATE", "LESS", 1, &ok), &ok);
            state_ops(fail, &c.k, &ok);
            json_t *win = win_ops(s, &c, lease, false, TL_EVENT_ACQUIRED, NULL, &ok);
            st = txn(s, compare, win, fail, ok, TL_ETCD_WRITE, &ans);
            if (st == TL_OK && txn_succeeded(ans)) {
                st = won(s, &c, header_revision(ans), lease, out);
                json_decref(ans);
                goto done;
            }
            if (st == TL_OK)
                st = state_from(s, ans, 0, &c.k, &ks);
            json_decref(ans);
            if (st != TL_OK && lease_gone(es)) {
                forget_lease(es, lease);
                continue;
            }
            if (st != TL_OK && unsure(es))
                continue; /* read again: the nonce tells */
            if (st != TL_OK)
                goto out;
        } else if ((st = read_state(s, &c.k, &ks)) != TL_OK) {
            goto out;
        }

        /* Our own earlier attempt may have won (its answer was lost). */
        if (ks.held) {
            struct tl_record r;
            char *nonce = NULL;
            if (record_from(s, req->key, &ks.l, NULL, &r, &nonce) == TL_OK) {
                bool ours = nonce != NULL && strcmp(nonce, c.nonce) == 0;
                tl__record_clear(&r);
                tl__free(nonce);
                if (ours) {
                    st = won(s, &c, ks.l.mod, ks.live ? ks.h.lease : lease, out);
                    goto done;
                }
            }
        }

        long mine = line_index(&ks, req->waiter_id);
        uint32_t ahead = 0;
        for (size_t i = 0; i < ks.nline; i++) {
            if (mine >= 0 ? (long)i < mine
                          : req->waiter_id == NULL || ks.line[i].priority >= req->priority)
                ahead++;
        }
        int64_t now = now_ms(s);
        /* Stale is etcd's judgement (the liveness key is gone): as a heartbeat older than a
         * zero timeout. */
        enum tl_verdict v = tl__claim_verdict(ks.held, ks.live ? now : now - 1, 0, req->mode, now);
        if (v == TL_VERDICT_BUSY || (ahead > 0 && req->mode != TL_CLAIM_FORCE)) {
            st = busy(s, &c, &ks, mine, ahead, out);
            goto out;
        }

        if ((st = lease_for(s, req->lock_timeout_ms, &lease, &beat_sent)) != TL_OK)
            goto out;
        char detail[200] = "";
        struct tl_record former = {0};
        if (ks.held &&
            record_from(s, req->key, &ks.l, NULL, &former, NULL) == TL_OK)
            (void)snprintf(detail, sizeof(detail), "from %s (token %llu)",
                           former.info.worker_id, (unsigned long long)ks.l.mod);
        tl__record_clear(&former);
        json_t *compare = json_array();
        if (ks.held)
            push(compare, cmp(c.k.l, NULL, "MOD", "EQUAL", ks.l.mod, &ok), &ok);
        else
            push(compare, cmp(c.k.l, NULL, "CREATE", "EQUAL", 0, &ok), &ok);
        if (v == TL_VERDICT_STEAL)
            push(compare, cmp(c.k.h, NULL, "CREATE", "EQUAL", 0, &ok), &ok);
        if (req->mode != TL_CLAIM_FORCE)
            push(compare, cmp(c.k.line, c.k.line_end, "CREATE", "LESS", ks.rev + 1, &ok), &ok);
        tl_event_kind kind = v == TL_VERDICT_STEAL   ? TL_EVENT_STOLEN
                             : v == TL_VERDICT_FORCE ? TL_EVENT_FORCED
                                                     : TL_EVENT_ACQUIRED;
        json_t *win = win_ops(s, &c, lease, mine >= 0, kind, detail[0] ? detail : NULL, &ok);
        st = txn(s, compare, win, NULL, ok, TL_ETCD_WRITE, &ans);
        if (st == TL_OK && txn_succeeded(ans)) {
            st = won(s, &c, header_revision(ans), lease, out);
            json_decref(ans);
            if (st == TL_OK) {
                out->took_stale = v == TL_VERDICT_STEAL;
                out->took_forced = v == TL_VERDICT_FORCE;
            }
            goto done;
        }
        json_decref(ans);
        if (st != TL_OK && lease_gone(es)) {
            forget_lease(es, lease);
            continue;
        }
        if (st != TL_OK && !unsure(es))
            goto out;
        /* The key or its line changed since we read it, or the answer was lost: again. */
    }
done:
    if (st == TL_OK) {
        if (beat_sent != 0 && beat_sent < call_start)
            out->beat_sent_mono_ms = beat_sent;
        if (es->wait_key != NULL && req->waiter_id != NULL &&
            strcmp(es->wait_id, req->waiter_id) == 0) {
            tl__free(es->wait_key);
            es->wait_key = NULL;
        }
    }
out:
    state_clear(&ks);
    names_clear(&c.k);
    tl__free(c.value);
    return st;
}

/* ---- renew, extend, release ---- */

static tl_status note_lost(struct tl_store *s, const struct tl_record *held)
{
    bool ok = true;
    json_t *ops = json_array(), *ans = NULL;

    push(ops,
         op_event(es_of(s), held->info.key, TL_EVENT_LOST, held->info.worker_id,
                  held->info.node_id, held->info.token, now_ms(s), NULL, 0, &ok),
         &ok);
    (void)txn(s, NULL, ops, NULL, ok, TL_ETCD_WRITE, &ans);
    json_decref(ans);
    return tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu",
                          held->info.key, held->info.worker_id,
                          (unsigned long long)held->info.token);
}

/* Whether `ks` shows the lock of `held` (same grant, same worker). */
static bool still_ours(struct tl_store *s, const struct key_state *ks,
                       const struct tl_record *held)
{
    if (!ks->held || (uint64_t)ks->l.mod != held->info.token)
        return false;
    struct tl_record r;
    if (record_from(s, held->info.key, &ks->l, NULL, &r, NULL) != TL_OK)
        return false;
    bool same = strcmp(r.info.worker_id, held->info.worker_id) == 0;
    tl__record_clear(&r);
    return same;
}

/* Attaches the liveness of `held` to a lease of ours for `timeout` (a revival, an extension). */
static tl_status attach(struct tl_store *s, const struct names *k, const struct tl_record *held,
                        uint32_t timeout, int64_t *sent)
{
    struct etcd_store *es = es_of(s);

    for (int attempt = 0; attempt < 3; attempt++) {
        int64_t lease = 0;
        tl_status st = lease_for(s, timeout, &lease, sent);
        if (st != TL_OK)
            return st;
        bool ok = true;
        char *live = live_value(timeout);
        json_t *compare = json_array(), *ops = json_array(), *ans = NULL;
        push(compare, cmp(k->l, NULL, "MOD", "EQUAL", (int64_t)held->info.token, &ok), &ok);
        push(compare, cmp_value(k->o, held->info.worker_id, &ok), &ok);
        push(ops, live ? op_put(k->h, live, lease, &ok) : NULL, &ok);
        tl__free(live);
        st = txn(s, compare, ops, NULL, ok, TL_ETCD_WRITE, &ans);
        bool succeeded = st == TL_OK && txn_succeeded(ans);
        json_decref(ans);
        if (succeeded)
            return TL_OK;
        if (st == TL_OK)
            return note_lost(s, held);
        if (lease_gone(es))
            forget_lease(es, lease);
        else if (!unsure(es))
            return st;
        /* Unsure: putting it again is harmless. */
    }
    return tl__store_fail(s, TL_ESTORE, "etcd: could not attach %s to a lease", held->info.key);
}

static tl_status renew(struct tl_store *s, const struct tl_record *held, uint32_t timeout,
                       int64_t *heartbeat_at_ms)
{
    struct etcd_store *es = es_of(s);
    struct names k;
    struct key_state ks;
    tl_status st = names_for(s, held->info.key, NULL, &k);
    int64_t sent = 0;

    if (st != TL_OK)
        return st;
    if ((st = read_state(s, &k, &ks)) != TL_OK)
        goto out;
    if (!still_ours(s, &ks, held)) {
        st = note_lost(s, held);
        goto out;
    }
    bool alive = false;
    if (ks.live && timeout == 0) {
        struct lease *l = NULL;
        for (size_t i = 0; i < es->nleases; i++)
            if (es->leases[i].id == ks.h.lease)
                l = &es->leases[i];
        uint32_t t = held->info.lock_timeout_ms;
        int64_t m = mono(s);
        if (l != NULL && m - l->beat_mono < (int64_t)(t / 6)) {
            /* Kept alive a moment ago, for another lock on the same lease. */
            alive = true;
            sent = l->beat_mono;
        } else if ((st = keepalive(s, ks.h.lease, &alive)) != TL_OK) {
            goto out;
        } else if (alive) {
            if (l != NULL) {
                l->beat_mono = m;
            } else if (es->nleases < MAX_LEASES) {
                es->leases[es->nleases++] =
                    (struct lease){.id = ks.h.lease, .ttl_s = 0, .beat_mono = m};
            }
        }
    }
    if (!alive) {
        /* Stale (nobody took it), or an extension: a lease of the timeout it is to have. */
        st = attach(s, &k, held, timeout ? timeout : held->info.lock_timeout_ms, &sent);
        if (st != TL_OK)
            goto out;
    }
    if (sent != 0 && sent < mono(s))
        s->beat_sent_mono_ms = sent;
    *heartbeat_at_ms = now_ms(s);
out:
    state_clear(&ks);
    names_clear(&k);
    return st;
}

static tl_status etcd_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                            int64_t *heartbeat_at_ms)
{
    (void)seq;
    es_of(s)->stats.renews++;
    return renew(s, held, 0, heartbeat_at_ms);
}

static tl_status etcd_extend(struct tl_store *s, const struct tl_record *held,
                             uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    if (lock_timeout_ms == 0)
        return tl__store_fail(s, TL_EINVAL, "etcd: a lock timeout must be more than zero");
    return renew(s, held, lock_timeout_ms, heartbeat_at_ms);
}

/* Events of `key` written after revision `after`, oldest first (at most `limit`). */
static tl_status events_after(struct tl_store *s, const char *key, int64_t after,
                              struct kv **out, size_t *n)
{
    bool ok = true;
    char *pre = path(es_of(s), "e/", key, SEP, NULL), *end = path(es_of(s), "e/", key, SEP_NEXT,
                                                                  NULL);
    json_t *req = pre && end ? range_req(pre, end, &ok) : NULL, *ans = NULL;
    tl_status st;

    tl__free(pre);
    tl__free(end);
    if (req == NULL) {
        *out = NULL;
        *n = 0;
        return oom(s);
    }
    set(req, "min_create_revision", i64s(after + 1), &ok);
    set(req, "limit", json_integer(50), &ok);
    set(req, "sort_target", json_string("CREATE"), &ok);
    set(req, "sort_order", json_string("ASCEND"), &ok);
    st = ok ? post(s, "/v3/kv/range", req, TL_ETCD_READ, &ans) : oom(s);
    json_decref(req);
    if (st == TL_OK)
        st = kvs_parse(s, ans, out, n);
    json_decref(ans);
    return st;
}

/* Whether an event value is a grant (acquired, stolen, forced). */
static bool is_grant(const struct kv *e)
{
    json_t *v = json_loadb(e->value, e->value_len, 0, NULL);
    const char *k = json_string_value(json_object_get(v, "kind"));
    bool grant = k != NULL && (strcmp(k, "acquired") == 0 || strcmp(k, "stolen") == 0 ||
                               strcmp(k, "forced") == 0);

    json_decref(v);
    return grant;
}

/* Trims the audit trail of `key` to history_max events once it has half as many again. */
static void trim_history(struct tl_store *s, const char *key, int64_t count)
{
    struct etcd_store *es = es_of(s);

    if (es->history_max == 0 || count <= (int64_t)es->history_max + es->history_max / 2 + 1)
        return;
    bool ok = true;
    char *pre = path(es, "e/", key, SEP, NULL), *end = path(es, "e/", key, SEP_NEXT, NULL);
    json_t *req = pre && end ? range_req(pre, end, &ok) : NULL, *ans = NULL;
    int64_t excess = count - es->history_max;
    struct kv *kvs = NULL;
    size_t n = 0;

    if (req != NULL) {
        set(req, "keys_only", json_true(), &ok);
        set(req, "sort_target", json_string("CREATE"), &ok);
        set(req, "sort_order", json_string("ASCEND"), &ok);
        set(req, "limit", i64s(excess), &ok);
        if (ok && post(s, "/v3/kv/range", req, TL_ETCD_READ, &ans) == TL_OK &&
            kvs_parse(s, ans, &kvs, &n) == TL_OK) {
            for (size_t i = 0; i < n; i += TXN_MAX_OPS) {
                json_t *ops = json_array(), *res = NULL;
                bool ok2 = true;
                for (size_t j = i; j < n && j < i + TXN_MAX_OPS; j++)
                    push(ops, op_delete(kvs[j].key, NULL, &ok2), &ok2);
                (void)txn(s, NULL, ops, NULL, ok2, TL_ETCD_WRITE, &res);
                json_decref(res);
            }
        }
    }
    kvs_free(kvs, n);
    json_decref(req);
    json_decref(ans);
    tl__free(pre);
    tl__free(end);
}

static tl_status etcd_release(struct tl_store *s, const struct tl_record *held,
                              const char *summary)
{
    struct etcd_store *es = es_of(s);
    struct names k;
    tl_status st = names_for(s, held->info.key, NULL, &k);
    char *epre = NULL, *eend = NULL;

    if (st != TL_OK)
        return st;
    epre = path(es, "e/", held->info.key, SEP, NULL);
    eend = path(es, "e/", held->info.key, SEP_NEXT, NULL);
    if (epre == NULL || eend == NULL) {
        st = oom(s);
        goto out;
    }
    for (int attempt = 0; attempt < 20; attempt++) {
        bool ok = true;
        json_t *compare = json_array(), *ops = json_array(), *fail = json_array(), *ans = NULL;
        push(compare, cmp(k.l, NULL, "MOD", "EQUAL", (int64_t)held->info.token, &ok), &ok);
        push(compare, cmp_value(k.o, held->info.worker_id, &ok), &ok);
        push(ops, op_delete(k.l, NULL, &ok), &ok);
        push(ops, op_delete(k.o, NULL, &ok), &ok);
        push(ops, op_delete(k.h, NULL, &ok), &ok);
        push(ops,
             op_event(es, held->info.key, TL_EVENT_RELEASED, held->info.worker_id,
                      held->info.node_id, held->info.token, now_ms(s), summary, 0, &ok),
             &ok);
        json_t *count = range_req(epre, eend, &ok);
        set(count, "count_only", json_true(), &ok);
        push(ops, op_range(count, &ok), &ok);
        push(fail, op_range(range_req(k.l, NULL, &ok), &ok), &ok);
        st = txn(s, compare, ops, fail, ok, TL_ETCD_WRITE, &ans);
        if (st == TL_OK && txn_succeeded(ans)) {
            int64_t n = 0;
            (void)tl__etcd_i64(txn_response(ans, 4, "response_range"), "count", &n);
            json_decref(ans);
            trim_history(s, held->info.key, n);
            goto out;
        }
        if (st != TL_OK) {
            json_decref(ans);
            if (unsure(es))
                continue;
            goto out;
        }
        struct kv *kvs = NULL;
        size_t n = 0;
        st = kvs_parse(s, txn_response(ans, 0, "response_range"), &kvs, &n);
        json_decref(ans);
        if (st != TL_OK)
            goto out;
        if (n > 0) {
            kvs_free(kvs, n);
            st = tl__store_fail(s, TL_ENOTOWNER, "%s is not held by %s with token %llu",
                                held->info.key, held->info.worker_id,
                                (unsigned long long)held->info.token);
            goto out;
        }
        /* Free: released already (a retry), unless someone claimed it since our token. */
        if ((st = events_after(s, held->info.key, (int64_t)held->info.token, &kvs, &n)) !=
            TL_OK)
            goto out;
        bool claimed_since = false;
        for (size_t i = 0; i < n; i++)
            claimed_since = claimed_since || is_grant(&kvs[i]);
        kvs_free(kvs, n);
        if (claimed_since)
            st = tl__store_fail(s, TL_ENOTOWNER, "%s was claimed by someone else after token %llu",
                                held->info.key, (unsigned long long)held->info.token);
        goto out;
    }
    st = tl__store_fail(s, TL_ESTORE, "etcd: release of %s: no clear answer after 20 attempts",
                        held->info.key);
out:
    tl__free(epre);
    tl__free(eend);
    names_clear(&k);
    return st;
}

static tl_status etcd_force_release(struct tl_store *s, const struct tl_force_release *req,
                                    struct tl_record *former, bool *found)
{
    struct etcd_store *es = es_of(s);
    struct names k;
    struct key_state ks = {0};
    tl_status st = names_for(s, req->key, NULL, &k);

    *found = false;
    if (st != TL_OK)
        return st;
    for (int attempt = 0; attempt < 20; attempt++) {
        state_clear(&ks);
        tl__record_clear(former);
        *found = false;
        if ((st = read_state(s, &k, &ks)) != TL_OK)
            goto out;
        if (!ks.held)
            goto out;
        if ((st = record_from(s, req->key, &ks.l, ks.live ? &ks.h : NULL, former, NULL)) !=
                TL_OK ||
            (st = judge(s, former, ks.live ? &ks.h : NULL)) != TL_OK)
            goto out;
        *found = true;
        if (req->token != 0 && (uint64_t)ks.l.mod != req->token) {
            st = tl__store_fail(s, TL_ENOTOWNER, "%s is held by %s with token %llu", req->key,
                                former->info.worker_id, (unsigned long long)ks.l.mod);
            goto out;
        }
        char detail[200];
        (void)snprintf(detail, sizeof(detail), "from %s (token %llu)", former->info.worker_id,
                       (unsigned long long)ks.l.mod);
        bool ok = true;
        int64_t at = now_ms(s);
        json_t *compare = json_array(), *ops = json_array(), *ans = NULL;
        push(compare, cmp(k.l, NULL, "MOD", "EQUAL", ks.l.mod, &ok), &ok);
        push(ops, op_delete(k.l, NULL, &ok), &ok);
        push(ops, op_delete(k.o, NULL, &ok), &ok);
        push(ops, op_delete(k.h, NULL, &ok), &ok);
        push(ops,
             op_event(es, req->key, TL_EVENT_FORCED, req->worker_id, req->node_id, 0, at, detail,
                      0, &ok),
             &ok);
        push(ops,
             op_event(es, req->key, TL_EVENT_RELEASED, req->worker_id, req->node_id, 0, at,
                      req->summary, 1, &ok),
             &ok);
        st = txn(s, compare, ops, NULL, ok, TL_ETCD_WRITE, &ans);
        bool succeeded = st == TL_OK && txn_succeeded(ans);
        json_decref(ans);
        if (succeeded)
            goto out;
        if (st != TL_OK && !unsure(es))
            goto out;
    }
    st = tl__store_fail(s, TL_ESTORE, "etcd: force release of %s: no clear answer", req->key);
out:
    if (st != TL_OK && st != TL_ENOTOWNER) {
        tl__record_clear(former);
        *found = false;
    }
    state_clear(&ks);
    names_clear(&k);
    return st;
}

/* ---- reading ---- */

static tl_status etcd_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                              bool *found)
{
    struct names k;
    struct key_state ks = {0};
    tl_status st = names_for(s, key, NULL, &k);

    *found = false;
    if (st != TL_OK)
        return st;
    if ((st = read_state(s, &k, &ks)) != TL_OK || !ks.held)
        goto out;
    if ((st = record_from(s, key, &ks.l, ks.live ? &ks.h : NULL, out, NULL)) != TL_OK)
        goto out;
    if ((st = judge(s, out, ks.live ? &ks.h : NULL)) != TL_OK) {
        tl__record_clear(out);
        goto out;
    }
    out->info.waiting = (uint32_t)ks.nline;
    *found = true;
out:
    state_clear(&ks);
    names_clear(&k);
    return st;
}

/* A range over everything under PREFIX part, as a txn op. */
static json_t *op_prefix(const struct etcd_store *es, const char *part, bool keys_only, bool *ok)
{
    char *pre = path(es, part, NULL, NULL, NULL), *end = pre ? prefix_end(pre) : NULL;
    json_t *req = pre && end ? range_req(pre, end, ok) : NULL;

    if (req != NULL && keys_only)
        set(req, "keys_only", json_true(), ok);
    tl__free(pre);
    tl__free(end);
    if (req == NULL)
        *ok = false;
    return req ? op_range(req, ok) : NULL;
}

static int cmp_record_key(const void *a, const void *b)
{
    const struct tl_record *x = *(const struct tl_record *const *)a;
    const struct tl_record *y = *(const struct tl_record *const *)b;

    return strcmp(x->info.key, y->info.key);
}

static tl_status etcd_list(struct tl_store *s, struct tl_record ***out, size_t *count)
{
    struct etcd_store *es = es_of(s);
    bool ok = true;
    json_t *ops = json_array(), *ans = NULL;
    struct kv *ls = NULL, *hs = NULL, *ws = NULL;
    size_t nl = 0, nh = 0, nw = 0, n = 0, cap = 0;
    struct tl_record **arr = NULL;
    size_t lp = strlen(es->prefix) + 2;
    tl_status st;

    *out = NULL;
    *count = 0;
    push(ops, op_prefix(es, "l/", false, &ok), &ok);
    push(ops, op_prefix(es, "h/", false, &ok), &ok);
    push(ops, op_prefix(es, "w/", true, &ok), &ok);
    if ((st = txn(s, NULL, ops, NULL, ok, TL_ETCD_READ, &ans)) != TL_OK)
        goto out;
    if ((st = kvs_parse(s, txn_response(ans, 0, "response_range"), &ls, &nl)) != TL_OK ||
        (st = kvs_parse(s, txn_response(ans, 1, "response_range"), &hs, &nh)) != TL_OK ||
        (st = kvs_parse(s, txn_response(ans, 2, "response_range"), &ws, &nw)) != TL_OK)
        goto out;
    for (size_t i = 0; i < nl; i++) {
        const char *key = ls[i].key + (strlen(ls[i].key) >= lp ? lp : 0);
        const struct kv *h = NULL;
        for (size_t j = 0; j < nh && h == NULL; j++)
            if (strcmp(hs[j].key + (strlen(hs[j].key) >= lp ? lp : 0), key) == 0)
                h = &hs[j];
        struct tl_record *r = tl__record_new();
        if (r == NULL) {
            st = oom(s);
            goto out;
        }
        if ((st = record_from(s, key, &ls[i], h, r, NULL)) != TL_OK ||
            (st = judge(s, r, h)) != TL_OK) {
            tl__record_free(r);
            if (st == TL_ENOMEM)
                goto out;
            continue; /* a malformed record: list the others */
        }
        size_t klen = strlen(key);
        for (size_t j = 0; j < nw; j++) {
            const char *wk = ws[j].key + (strlen(ws[j].key) >= lp ? lp : 0);
            if (strncmp(wk, key, klen) == 0 && wk[klen] == SEP[0])
                r->info.waiting++;
        }
        if (tl__record_array_push(&arr, &n, &cap, r) != TL_OK) {
            tl__record_free(r);
            st = oom(s);
            goto out;
        }
    }
    qsort(arr, n, sizeof(*arr), cmp_record_key);
    *out = arr;
    *count = n;
    arr = NULL;
    n = 0;
out:
    for (size_t i = 0; i < n; i++)
        tl__record_free(arr[i]);
    tl__free(arr);
    kvs_free(ls, nl);
    kvs_free(hs, nh);
    kvs_free(ws, nw);
    json_decref(ans);
    return st;
}

struct ev_sort {
    struct tl_event *ev;
    int64_t rev;
    int order;
};

static int cmp_ev(const void *a, const void *b)
{
    const struct ev_sort *x = a, *y = b;

    if (x->rev != y->rev)
        return x->rev < y->rev ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* An event from its kv; NULL (skipped) when malformed. */
static struct tl_event *event_from(const struct etcd_store *es, const struct kv *e, int *order)
{
    json_t *v = json_loadb(e->value, e->value_len, 0, NULL);
    const char *kind = json_string_value(json_object_get(v, "kind"));
    const char *w = json_string_value(json_object_get(v, "worker"));
    const char *n = json_string_value(json_object_get(v, "node"));
    json_t *at = json_object_get(v, "at"), *o = json_object_get(v, "order");
    json_t *d = json_object_get(v, "detail");
    struct tl_event *ev = NULL;
    int64_t token = 0;
    size_t lp = strlen(es->prefix) + 2;
    const char *sep = strlen(e->key) > lp ? strchr(e->key + lp, SEP[0]) : NULL;
    tl_event_kind k;

    if (kind == NULL || w == NULL || n == NULL || !json_is_integer(at) || sep == NULL ||
        !tl__event_kind_from_name(kind, &k) || !tl__etcd_i64(v, "token", &token))
        goto out;
    if ((ev = tl__event_new()) == NULL)
        goto out;
    ev->kind = k;
    ev->at_ms = json_integer_value(at);
    ev->token = token != 0 ? (uint64_t)token : (uint64_t)e->create;
    ev->key = tl__strndup(e->key + lp, (size_t)(sep - (e->key + lp)));
    ev->worker_id = tl__strdup(w);
    ev->node_id = tl__strdup(n);
    ev->detail = json_is_string(d) ? tl__strdup(json_string_value(d)) : NULL;
    *order = json_is_integer(o) ? (int)json_integer_value(o) : 0;
    if (!ev->key || !ev->worker_id || !ev->node_id || (json_is_string(d) && !ev->detail)) {
        tl__event_free(ev);
        ev = NULL;
    }
out:
    json_decref(v);
    return ev;
}

static tl_status etcd_history(struct tl_store *s, const char *key, size_t limit,
                              struct tl_event ***out, size_t *count)
{
    struct etcd_store *es = es_of(s);
    bool ok = true;
    char *pre = key ? path(es, "e/", key, SEP, NULL) : path(es, "e/", NULL, NULL, NULL);
    char *end = key ? path(es, "e/", key, SEP_NEXT, NULL) : (pre ? prefix_end(pre) : NULL);
    json_t *req = pre && end ? range_req(pre, end, &ok) : NULL, *ans = NULL;
    struct kv *kvs = NULL;
    size_t n = 0;
    struct ev_sort *tmp = NULL;
    tl_status st;

    *out = NULL;
    *count = 0;
    if (req == NULL) {
        st = oom(s);
        goto out;
    }
    set(req, "sort_target", json_string("CREATE"), &ok);
    set(req, "sort_order", json_string("DESCEND"), &ok);
    if (limit > 0)
        set(req, "limit", i64s((int64_t)limit), &ok);
    if (!ok) {
        st = oom(s);
        goto out;
    }
    if ((st = post(s, "/v3/kv/range", req, TL_ETCD_READ, &ans)) != TL_OK ||
        (st = kvs_parse(s, ans, &kvs, &n)) != TL_OK)
        goto out;
    tmp = tl__calloc(n ? n : 1, sizeof(*tmp));
    if (tmp == NULL) {
        st = oom(s);
        goto out;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int order = 0;
        struct tl_event *ev = event_from(es, &kvs[i], &order);
        if (ev != NULL)
            tmp[m++] = (struct ev_sort){.ev = ev, .rev = kvs[i].create, .order = order};
    }
    qsort(tmp, m, sizeof(*tmp), cmp_ev);
    struct tl_event **arr = NULL;
    size_t an = 0, cap = 0;
    for (size_t i = 0; i < m; i++) {
        if (tl__event_array_push(&arr, &an, &cap, tmp[i].ev) != TL_OK) {
            for (size_t j = i; j < m; j++)
                tl__event_free(tmp[j].ev);
            tl_event_array_free(arr, an);
            st = oom(s);
            goto out;
        }
    }
    *out = arr;
    *count = an;
out:
    tl__free(tmp);
    kvs_free(kvs, n);
    json_decref(req);
    json_decref(ans);
    tl__free(pre);
    tl__free(end);
    return st;
}

/* ---- waiting ---- */

struct watch_seen {
    bool event;
};

static bool on_watch(void *ud, json_t *result)
{
    struct watch_seen *w = ud;
    json_t *events = json_object_get(result, "events");

    /* "created" answers carry no events; a canceled watch (compacted revision) ends it too. */
    if ((json_is_array(events) && json_array_size(events) > 0) ||
        json_is_true(json_object_get(result, "canceled")))
        w->event = true;
    return w->event;
}

/* Watches the deletion of `keys` (n of them) from revision `from` until one is deleted or
 * `until` (store mono) passes. */
static tl_status watch_deletes(struct tl_store *s, const char *const *keys, size_t n, int64_t from,
                               int64_t until)
{
    json_t *creates[4] = {0};
    bool ok = true, stopped = false;
    struct watch_seen seen = {0};
    char err[TL_ERRMSG_SIZE];
    tl_status st = TL_OK;

    for (size_t i = 0; i < n && i < 4; i++) {
        creates[i] = range_req(keys[i], NULL, &ok);
        set(creates[i], "start_revision", i64s(from), &ok);
        json_t *f = json_array();
        push(f, json_string("NOPUT"), &ok);
        set(creates[i], "filters", f, &ok);
    }
    if (!ok) {
        st = oom(s);
        goto out;
    }
    int64_t real_until = tl__real_mono_ms() + (until - mono(s));
    es_of(s)->stats.watches++;
    st = tl__etcd_watch(es_of(s)->cli, creates, n, real_until, on_watch, &seen, &stopped, err);
    if (st != TL_OK)
        (void)tl__store_fail(s, st, "%s", err);
out:
    for (size_t i = 0; i < 4; i++)
        json_decref(creates[i]);
    return st;
}

static tl_status etcd_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                                uint32_t timeout_ms, bool *woken)
{
    struct etcd_store *es = es_of(s);
    struct names k;
    struct key_state ks = {0};
    int64_t until = mono(s) + timeout_ms;
    tl_status st = names_for(s, key, waiter_id, &k);
    bool may_steal = es->wait_key != NULL && strcmp(es->wait_key, key) == 0 &&
                     strcmp(es->wait_id, waiter_id) == 0 && es->wait_mode == TL_CLAIM_STEAL;

    *woken = false;
    if (st != TL_OK)
        return st;
    if (s->deadline_mono_ms != 0 && s->deadline_mono_ms < until)
        until = s->deadline_mono_ms;
    while (mono(s) < until) {
        state_clear(&ks);
        if ((st = read_state(s, &k, &ks)) != TL_OK)
            goto out;
        long mine = line_index(&ks, waiter_id);
        if (mine < 0 || (mine == 0 && (!ks.held || (may_steal && !ks.live)))) {
            /* Not in line (its claim puts it back), or the head of a free key. */
            *woken = true;
            goto out;
        }
        const char *keys[3];
        size_t n = 0;
        keys[n++] = k.waiter; /* our own place going away (its lease expired) */
        if (mine == 0) {
            keys[n++] = k.l;
            if (may_steal)
                keys[n++] = k.h;
        } else {
            keys[n++] = ks.line[mine - 1].kv.key;
        }
        if ((st = watch_deletes(s, keys, n, ks.rev + 1, until)) != TL_OK)
            goto out;
    }
out:
    state_clear(&ks);
    names_clear(&k);
    return st;
}

static tl_status etcd_wait(struct tl_store *s, const char *key, uint32_t timeout_ms)
{
    struct names k;
    struct key_state ks = {0};
    tl_status st = names_for(s, key, NULL, &k);

    if (st != TL_OK)
        return st;
    if ((st = read_state(s, &k, &ks)) == TL_OK && ks.held && ks.live) {
        const char *keys[2] = {k.l, k.h};
        int64_t until = mono(s) + timeout_ms;
        if (s->deadline_mono_ms != 0 && s->deadline_mono_ms < until)
            until = s->deadline_mono_ms;
        st = watch_deletes(s, keys, 2, ks.rev + 1, until);
    }
    state_clear(&ks);
    names_clear(&k);
    return st;
}

static tl_status etcd_leave(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct etcd_store *es = es_of(s);
    struct names k;
    tl_status st = names_for(s, key, waiter_id, &k);

    if (st != TL_OK)
        return st;
    for (int attempt = 0; attempt < 5; attempt++) {
        bool ok = true;
        json_t *body = range_req(k.waiter, NULL, &ok), *ans = NULL;
        st = ok ? post(s, "/v3/kv/deleterange", body, TL_ETCD_WRITE, &ans) : oom(s);
        json_decref(body);
        json_decref(ans);
        if (st == TL_OK || !unsure(es))
            break;
    }
    if (es->wait_key != NULL && strcmp(es->wait_id, waiter_id) == 0) {
        tl__free(es->wait_key);
        es->wait_key = NULL;
    }
    names_clear(&k);
    return st;
}

static tl_status etcd_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                              size_t *count)
{
    struct names k;
    struct key_state ks = {0};
    struct tl_waiter **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status st = names_for(s, key, NULL, &k);

    *out = NULL;
    *count = 0;
    if (st != TL_OK)
        return st;
    if ((st = read_state(s, &k, &ks)) != TL_OK)
        goto out;
    for (size_t i = 0; i < ks.nline; i++) {
        const struct kv *w = &ks.line[i].kv;
        json_t *v = json_loadb(w->value, w->value_len, 0, NULL);
        const char *wk = json_string_value(json_object_get(v, "worker"));
        const char *nd = json_string_value(json_object_get(v, "node"));
        json_t *since = json_object_get(v, "since"), *to = json_object_get(v, "timeout");
        struct tl_waiter *x = wk && nd ? tl__waiter_new() : NULL;
        if (x != NULL) {
            x->key = tl__strdup(key);
            x->waiter_id = tl__strdup(ks.line[i].id);
            x->worker_id = tl__strdup(wk);
            x->node_id = tl__strdup(nd);
            x->priority = ks.line[i].priority;
            x->seq = (uint64_t)w->create;
            x->since_ms = json_is_integer(since) ? json_integer_value(since) : 0;
            x->timeout_ms = json_is_integer(to) && json_integer_value(to) > 0 &&
                                    json_integer_value(to) <= TL_DURATION_MAX_MS
                                ? (uint32_t)json_integer_value(to)
                                : 0;
            int64_t beat = 0;
            bool alive = true;
            /* Present means alive: etcd deletes a waiter whose lease expired. */
            if (lease_beat(s, w->lease, &beat, &alive) != TL_OK)
                beat = now_ms(s);
            x->heartbeat_at_ms = beat > x->since_ms ? beat : x->since_ms;
        }
        json_decref(v);
        if (wk == NULL || nd == NULL)
            continue; /* malformed: not a waiter we can show */
        if (x == NULL || !x->key || !x->waiter_id || !x->worker_id || !x->node_id ||
            tl__waiter_array_push(&arr, &n, &cap, x) != TL_OK) {
            tl__waiter_free(x);
            tl_waiter_array_free(arr, n);
            arr = NULL;
            n = 0;
            st = oom(s);
            goto out;
        }
    }
    *out = arr;
    *count = n;
out:
    state_clear(&ks);
    names_clear(&k);
    return st;
}

bool tl__etcd_stats(const struct tl_store *s, struct tl_etcd_stats *out)
{
    if (s == NULL || s->ops != &tl__store_etcd) {
        memset(out, 0, sizeof(*out));
        return false;
    }
    *out = ((const struct etcd_store *)s)->stats;
    return true;
}

const struct tl_store_ops tl__store_etcd = {
    .version = TL_STORE_OPS_VERSION,
    .scheme = "etcd",
    .size = sizeof(struct etcd_store),
    .open = etcd_open,
    .close = etcd_close,
    .claim = etcd_claim,
    .renew = etcd_renew,
    .release = etcd_release,
    .inspect = etcd_inspect,
    .list = etcd_list,
    .history = etcd_history,
    .wait = etcd_wait,
    .force_release = etcd_force_release,
    .leave = etcd_leave,
    .wait_turn = etcd_wait_turn,
    .waiters = etcd_waiters,
    .extend = etcd_extend,
};
