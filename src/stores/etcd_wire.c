/*
 * etcd_wire.c -- the etcd store's key layout and values, the gateway calls it makes, and its
 * leases (see etcd.c for the protocol, etcd_client.c for HTTP and failover).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "etcd_int.h"

/* ---- small helpers ---- */

/* The call's deadline on the real monotonic clock (the client's), from the store's. */
static int64_t real_deadline(struct tl_store *s)
{
    int64_t real = tl__real_mono_ms();

    if (s->deadline_mono_ms == 0)
        return real + (int64_t)ETCD_OP_BUDGET_REQUESTS * es_of(s)->request_ms;
    int64_t left = s->deadline_mono_ms - mono(s);
    return real + (left > 0 ? left : 0);
}

tl_status tl__etcd_oom(struct tl_store *s)
{
    return tl__store_fail(s, TL_ENOMEM, "etcd: out of memory");
}

void tl__etcd_random_hex(char *out, size_t bytes)
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

/* PREFIX + part + key [+ ETCD_SEP [+ id]]. */
char *tl__etcd_path(const struct etcd_store *es, const char *part, const char *key, const char *sep,
                    const char *id)
{
    return tl__asprintf("%s%s%s%s%s", es->prefix, part, key ? key : "", sep ? sep : "",
                        id ? id : "");
}

/* The first key after every key that starts with `prefix` (whose last byte is not 0xff). */
char *tl__etcd_prefix_end(const char *prefix)
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

json_t *tl__etcd_i64s(int64_t v)
{
    char buf[32];

    (void)snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return json_string(buf);
}

/* json_object_set_new that tolerates NULL values (and then marks the object bad). */
void tl__etcd_set(json_t *obj, const char *field, json_t *v, bool *ok)
{
    if (v == NULL || obj == NULL || json_object_set_new(obj, field, v) != 0)
        *ok = false;
}

json_t *tl__etcd_op_put(const char *key, const char *value, int64_t lease, bool *ok)
{
    json_t *put = json_object();

    tl__etcd_set(put, "key", b64s(key), ok);
    tl__etcd_set(put, "value", b64s(value), ok);
    if (lease != 0)
        tl__etcd_set(put, "lease", tl__etcd_i64s(lease), ok);
    json_t *op = json_object();
    tl__etcd_set(op, "request_put", put, ok);
    return op;
}

json_t *tl__etcd_op_delete(const char *key, const char *end, bool *ok)
{
    json_t *op = json_object();

    /* A delete names its keys as a range does. */
    tl__etcd_set(op, "request_delete_range", tl__etcd_range_req(key, end, ok), ok);
    return op;
}

/* A range request body (also the inside of a request_range op). */
json_t *tl__etcd_range_req(const char *key, const char *end, bool *ok)
{
    json_t *r = json_object();

    tl__etcd_set(r, "key", b64s(key), ok);
    if (end != NULL)
        tl__etcd_set(r, "range_end", b64s(end), ok);
    return r;
}

json_t *tl__etcd_op_range(json_t *req, bool *ok)
{
    json_t *op = json_object();

    tl__etcd_set(op, "request_range", req, ok);
    return op;
}

/* A compare of `target` ("CREATE", "MOD") on key (or [key, end)) by `result` with `v`. */
json_t *tl__etcd_cmp(const char *key, const char *end, const char *target, const char *result,
                     int64_t v, bool *ok)
{
    json_t *c = json_object();

    tl__etcd_set(c, "key", b64s(key), ok);
    if (end != NULL)
        tl__etcd_set(c, "range_end", b64s(end), ok);
    tl__etcd_set(c, "target", json_string(target), ok);
    tl__etcd_set(c, "result", json_string(result), ok);
    tl__etcd_set(c, strcmp(target, "CREATE") == 0 ? "create_revision" : "mod_revision",
                 tl__etcd_i64s(v), ok);
    return c;
}

void tl__etcd_push(json_t *arr, json_t *v, bool *ok)
{
    if (v == NULL || arr == NULL || json_array_append_new(arr, v) != 0)
        *ok = false;
}

/* A compare of the value of `key` with `value`, exactly. */
json_t *tl__etcd_cmp_value(const char *key, const char *value, bool *ok)
{
    json_t *c = json_object();

    tl__etcd_set(c, "key", b64s(key), ok);
    tl__etcd_set(c, "target", json_string("VALUE"), ok);
    tl__etcd_set(c, "result", json_string("EQUAL"), ok);
    tl__etcd_set(c, "value", b64s(value), ok);
    return c;
}

/* ---- answers ---- */

static void kv_clear(struct etcd_kv *k)
{
    tl__free(k->key);
    tl__free(k->value);
    memset(k, 0, sizeof(*k));
}

void tl__etcd_kvs_free(struct etcd_kv *arr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kv_clear(&arr[i]);
    tl__free(arr);
}

/* Decodes one kv object; false (with a message) when it is not one. */
static tl_status kv_parse(struct tl_store *s, json_t *o, struct etcd_kv *out)
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
tl_status tl__etcd_kvs_parse(struct tl_store *s, json_t *range, struct etcd_kv **out, size_t *n)
{
    json_t *arr = json_object_get(range, "kvs");
    size_t count = json_is_array(arr) ? json_array_size(arr) : 0;

    *out = NULL;
    *n = 0;
    if (arr != NULL && !json_is_array(arr))
        return tl__store_fail(s, TL_ESTORE, "etcd: \"kvs\" is not an array");
    if (count == 0)
        return TL_OK;
    struct etcd_kv *kvs = tl__calloc(count, sizeof(*kvs));
    if (kvs == NULL)
        return tl__etcd_oom(s);
    for (size_t i = 0; i < count; i++) {
        tl_status st = kv_parse(s, json_array_get(arr, i), &kvs[i]);
        if (st != TL_OK) {
            tl__etcd_kvs_free(kvs, i);
            return st;
        }
    }
    *out = kvs;
    *n = count;
    return TL_OK;
}

/* response i of a txn answer, of kind `kind` ("response_range"). */
json_t *tl__etcd_txn_response(json_t *ans, size_t i, const char *kind)
{
    return json_object_get(json_array_get(json_object_get(ans, "responses"), i), kind);
}

bool tl__etcd_txn_succeeded(json_t *ans)
{
    return json_is_true(json_object_get(ans, "succeeded"));
}

int64_t tl__etcd_header_revision(json_t *ans)
{
    int64_t rev = 0;

    (void)tl__etcd_i64(json_object_get(ans, "header"), "revision", &rev);
    return rev;
}

/* POSTs and copies the client's message on failure. */
tl_status tl__etcd_call(struct tl_store *s, const char *p, json_t *body, enum tl_etcd_call kind,
                        json_t **out)
{
    char err[TL_ERRMSG_SIZE];
    struct etcd_store *es = es_of(s);

    if (body == NULL) {
        *out = NULL;
        return tl__etcd_oom(s);
    }
    es->stats.requests++;
    tl_status st = tl__etcd_post(es->cli, p, body, kind, real_deadline(s), out, err);
    if (st != TL_OK)
        (void)tl__store_fail(s, st, "%s", err);
    return st;
}

/* A transaction; `compare`, `success`, `failure` are stolen (NULL: empty). */
tl_status tl__etcd_txn(struct tl_store *s, json_t *compare, json_t *success, json_t *failure,
                       bool ok, enum tl_etcd_call kind, json_t **out)
{
    json_t *body = json_object();

    tl__etcd_set(body, "compare", compare ? compare : json_array(), &ok);
    tl__etcd_set(body, "success", success ? success : json_array(), &ok);
    tl__etcd_set(body, "failure", failure ? failure : json_array(), &ok);
    if (!ok) {
        json_decref(body);
        *out = NULL;
        return tl__etcd_oom(s);
    }
    tl_status st = tl__etcd_call(s, "/v3/kv/txn", body, kind, out);
    json_decref(body);
    return st;
}

/* Whether the last failure was a write that may have been applied. */
bool tl__etcd_unsure(const struct etcd_store *es)
{
    return tl__etcd_last_error(es->cli)->unsure;
}

/* Whether the last failure was etcd saying that a lease does not exist (it expired). */
bool tl__etcd_lease_gone(const struct etcd_store *es)
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
tl_status tl__etcd_keepalive(struct tl_store *s, int64_t id, bool *alive)
{
    json_t *body = json_pack("{s:o}", "ID", tl__etcd_i64s(id)), *ans = NULL;
    tl_status st = tl__etcd_call(s, "/v3/lease/keepalive", body, TL_ETCD_READ, &ans);
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

static struct etcd_lease *find_lease(struct etcd_store *es, uint32_t ttl_s)
{
    for (size_t i = 0; i < es->nleases; i++)
        if (es->leases[i].ttl_s == ttl_s)
            return &es->leases[i];
    return NULL;
}

void tl__etcd_forget_lease(struct etcd_store *es, int64_t id)
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
tl_status tl__etcd_lease_for(struct tl_store *s, uint32_t timeout_ms, int64_t *id, int64_t *sent)
{
    struct etcd_store *es = es_of(s);
    uint32_t ttl = ttl_of(timeout_ms);
    struct etcd_lease *l = find_lease(es, ttl);
    int64_t t = mono(s);
    tl_status st;

    if (l != NULL && t - l->beat_mono < (int64_t)(timeout_ms / 6)) {
        *id = l->id;
        *sent = l->beat_mono;
        return TL_OK;
    }
    if (l != NULL) {
        bool alive = false;
        if ((st = tl__etcd_keepalive(s, l->id, &alive)) != TL_OK)
            return st;
        if (alive) {
            l->beat_mono = t;
            *id = l->id;
            *sent = t;
            return TL_OK;
        }
        tl__etcd_forget_lease(es, l->id);
    }

    json_t *body = json_pack("{s:I}", "TTL", (json_int_t)ttl), *ans = NULL;
    st = tl__etcd_call(s, "/v3/lease/grant", body, TL_ETCD_READ, &ans);
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
    if (es->nleases == ETCD_MAX_LEASES)
        es->leases[0] = es->leases[--es->nleases]; /* forget one: it expires on its own */
    es->leases[es->nleases++] = (struct etcd_lease){.id = got, .ttl_s = ttl, .beat_mono = t};
    *id = got;
    *sent = t;
    return TL_OK;
}

/* When the holder of lease `id` last heartbeated (our clock, estimated from the remaining TTL),
 * or *alive false when the lease is gone. */
tl_status tl__etcd_lease_beat(struct tl_store *s, int64_t id, int64_t *beat_ms, bool *alive)
{
    json_t *body = json_pack("{s:o}", "ID", tl__etcd_i64s(id)), *ans = NULL;
    tl_status st = tl__etcd_call(s, "/v3/lease/timetolive", body, TL_ETCD_READ, &ans);
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
char *tl__etcd_record_value(const struct tl_claim *req, const char *nonce, int64_t at)
{
    json_t *task = json_loads(req->task_info, 0, NULL);
    json_t *v =
        json_pack("{s:s, s:s, s:I, s:I, s:o, s:s}", "worker", req->worker_id, "node", req->node_id,
                  "claimed_at", (json_int_t)at, "timeout", (json_int_t)req->lock_timeout_ms, "task",
                  json_is_object(task) ? task : json_object(), "nonce", nonce);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    char *out = text ? tl__strdup(text) : NULL;

    if (!json_is_object(task))
        json_decref(task);
    json_decref(v);
    free(text);
    return out;
}

char *tl__etcd_live_value(uint32_t timeout_ms)
{
    return tl__asprintf("{\"timeout\":%u}", timeout_ms);
}

/* The lock timeout a liveness value records, or 0. */
uint32_t tl__etcd_live_timeout(const struct etcd_kv *h)
{
    json_t *v = json_loadb(h->value, h->value_len, 0, NULL);
    json_t *t = json_object_get(v, "timeout");
    json_int_t x = json_is_integer(t) ? json_integer_value(t) : 0;

    json_decref(v);
    return x > 0 && x <= TL_DURATION_MAX_MS ? (uint32_t)x : 0;
}

/* A record from the lock record `l` (token = its mod revision) and liveness `h` (may be NULL;
 * its lock timeout and lease), not judged yet; with `nonce_copy`, the claim's nonce too. */
tl_status tl__etcd_record_from(struct tl_store *s, const char *key, const struct etcd_kv *l,
                               const struct etcd_kv *h, struct tl_record *out, char **nonce_copy)
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
        uint32_t ht = tl__etcd_live_timeout(h);
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
        st = tl__etcd_oom(s);
    }
out:
    json_decref(v);
    return st;
}

/* Fills heartbeat, staleness and observation time of a record whose liveness key is `h`: stale
 * exactly when etcd has deleted it (the claim's steal compares that), the heartbeat estimated
 * from the lease's remaining whole seconds. */
tl_status tl__etcd_judge(struct tl_store *s, struct tl_record *r, const struct etcd_kv *h)
{
    int64_t beat = 0;
    bool alive = true;

    if (h != NULL) {
        tl_status st = tl__etcd_lease_beat(s, h->lease, &beat, &alive);
        if (st != TL_OK)
            return st;
    }
    tl__etcd_judge_at(s, r, h != NULL, beat);
    return TL_OK;
}

void tl__etcd_judge_at(struct tl_store *s, struct tl_record *r, bool live, int64_t beat)
{
    int64_t now = now_ms(s);
    int64_t timeout = r->info.lock_timeout_ms;

    r->info.observed_at_ms = now;
    if (!live) {
        r->info.heartbeat_at_ms = now - timeout - 1;
        r->info.stale = true;
        return;
    }
    /* Never older than the claim, and never judged stale while etcd keeps the key. */
    if (beat < r->info.claimed_at_ms)
        beat = r->info.claimed_at_ms;
    if (beat <= now - timeout)
        beat = now - timeout + 1;
    r->info.heartbeat_at_ms = beat < now ? beat : now;
    r->info.stale = false;
}

/* ---- events ---- */

/* An event value; token 0 means "this transaction's revision" (a grant). */
static char *event_value(tl_event_kind kind, const char *worker, const char *node, uint64_t token,
                         int64_t at, const char *detail, int order)
{
    json_t *v = json_pack("{s:s, s:s, s:s, s:I, s:i}", "kind", tl_event_kind_name(kind), "worker",
                          worker, "node", node, "at", (json_int_t)at, "order", order);
    bool ok = v != NULL;

    if (token != 0)
        tl__etcd_set(v, "token", tl__etcd_i64s((int64_t)token), &ok);
    if (detail != NULL)
        tl__etcd_set(v, "detail", json_string(detail), &ok);
    char *text = ok ? json_dumps(v, JSON_COMPACT) : NULL;
    char *out = text ? tl__strdup(text) : NULL;
    json_decref(v);
    free(text);
    return out;
}

/* A put op of an event of `key`. */
json_t *tl__etcd_op_event(const struct etcd_store *es, const char *key, tl_event_kind kind,
                          const char *worker, const char *node, uint64_t token, int64_t at,
                          const char *detail, int order, bool *ok)
{
    char id[64], rnd[17];

    tl__etcd_random_hex(rnd, 8);
    (void)snprintf(id, sizeof(id), "%013llx-%s-%d", (unsigned long long)(at > 0 ? at : 0), rnd,
                   order);
    char *k = tl__etcd_path(es, "e/", key, ETCD_SEP, id);
    char *v = event_value(kind, worker, node, token, at, detail, order);
    json_t *op = k && v ? tl__etcd_op_put(k, v, 0, ok) : NULL;

    if (op == NULL)
        *ok = false;
    tl__free(k);
    tl__free(v);
    return op;
}

/* ---- the state of a key ---- */

void tl__etcd_state_clear(struct etcd_key_state *ks)
{
    kv_clear(&ks->l);
    kv_clear(&ks->h);
    tl__etcd_kvs_free(ks->sh, ks->nsh);
    for (size_t i = 0; i < ks->nline; i++)
        kv_clear(&ks->line[i].kv);
    tl__free(ks->line);
    memset(ks, 0, sizeof(*ks));
}

static int cmp_waiter(const void *a, const void *b)
{
    const struct etcd_waiter *x = a, *y = b;

    if (tl__waiter_before(x->priority, (uint64_t)x->kv.create, y->priority, (uint64_t)y->kv.create))
        return -1;
    if (tl__waiter_before(y->priority, (uint64_t)y->kv.create, x->priority, (uint64_t)x->kv.create))
        return 1;
    return 0;
}

int32_t tl__etcd_waiter_priority(const struct etcd_kv *k)
{
    json_t *v = json_loadb(k->value, k->value_len, 0, NULL);
    json_t *p = json_object_get(v, "priority");
    json_int_t x = json_is_integer(p) ? json_integer_value(p) : 0;

    json_decref(v);
    /* An upgrader's waiter has TL_PRIORITY_UPGRADE, above every other (etcd_convert.c). */
    return x < TL_PRIORITY_MIN       ? TL_PRIORITY_MIN
           : x > TL_PRIORITY_UPGRADE ? TL_PRIORITY_UPGRADE
                                     : (int32_t)x;
}

/* Whether a lock record's value is a set of shared holders. */
bool tl__etcd_value_is_shared(const struct etcd_kv *l)
{
    json_t *v = json_loadb(l->value, l->value_len, 0, NULL);
    const char *mode = json_string_value(json_object_get(v, "mode"));
    bool shared = mode != NULL && strcmp(mode, "shared") == 0;

    json_decref(v);
    return shared;
}

/* Fills `ks` from the four range answers (lock record, liveness, line, shared holders'
 * liveness) at revision `rev`. */
static tl_status state_parse(struct tl_store *s, json_t *rl, json_t *rh, json_t *rw, json_t *rs,
                             int64_t rev, size_t line_prefix_len, struct etcd_key_state *ks)
{
    struct etcd_kv *arr = NULL;
    size_t n = 0;
    tl_status st;

    memset(ks, 0, sizeof(*ks));
    ks->rev = rev;
    if (rl == NULL || rh == NULL || rw == NULL || rs == NULL || rev <= 0)
        return tl__store_fail(s, TL_ESTORE, "etcd: a transaction answer lacks its ranges");
    if ((st = tl__etcd_kvs_parse(s, rl, &arr, &n)) != TL_OK)
        return st;
    if (n > 0) {
        ks->held = true;
        ks->l = arr[0];
        memset(&arr[0], 0, sizeof(arr[0]));
        ks->shared = tl__etcd_value_is_shared(&ks->l);
    }
    tl__etcd_kvs_free(arr, n);
    if ((st = tl__etcd_kvs_parse(s, rs, &ks->sh, &ks->nsh)) != TL_OK)
        goto err;
    if ((st = tl__etcd_kvs_parse(s, rh, &arr, &n)) != TL_OK)
        goto err;
    if (n > 0) {
        ks->live = true;
        ks->h = arr[0];
        memset(&arr[0], 0, sizeof(arr[0]));
    }
    tl__etcd_kvs_free(arr, n);
    if ((st = tl__etcd_kvs_parse(s, rw, &arr, &n)) != TL_OK)
        goto err;
    if (n > 0) {
        ks->line = tl__calloc(n, sizeof(*ks->line));
        if (ks->line == NULL) {
            tl__etcd_kvs_free(arr, n);
            st = tl__etcd_oom(s);
            goto err;
        }
        for (size_t i = 0; i < n; i++) {
            ks->line[i].kv = arr[i];
            ks->line[i].id =
                arr[i].key + (strlen(arr[i].key) >= line_prefix_len ? line_prefix_len : 0);
            ks->line[i].priority = tl__etcd_waiter_priority(&arr[i]);
        }
        ks->nline = n;
        tl__free(arr);
        qsort(ks->line, n, sizeof(*ks->line), cmp_waiter);
    }
    return TL_OK;
err:
    tl__etcd_state_clear(ks);
    return st;
}

void tl__etcd_names_clear(struct etcd_names *k)
{
    tl__free(k->l);
    tl__free(k->o);
    tl__free(k->h);
    tl__free(k->line);
    tl__free(k->line_end);
    tl__free(k->waiter);
    tl__free(k->s);
    tl__free(k->s_end);
    memset(k, 0, sizeof(*k));
}

tl_status tl__etcd_names_for(struct tl_store *s, const char *key, const char *waiter_id,
                             struct etcd_names *k)
{
    const struct etcd_store *es = es_of(s);

    memset(k, 0, sizeof(*k));
    k->l = tl__etcd_path(es, "l/", key, NULL, NULL);
    k->o = tl__etcd_path(es, "o/", key, NULL, NULL);
    k->h = tl__etcd_path(es, "h/", key, NULL, NULL);
    k->line = tl__etcd_path(es, "w/", key, ETCD_SEP, NULL);
    k->line_end = tl__etcd_path(es, "w/", key, ETCD_SEP_NEXT, NULL);
    k->waiter = waiter_id ? tl__etcd_path(es, "w/", key, ETCD_SEP, waiter_id) : NULL;
    k->s = tl__etcd_path(es, "s/", key, ETCD_SEP, NULL);
    k->s_end = tl__etcd_path(es, "s/", key, ETCD_SEP_NEXT, NULL);
    if (!k->l || !k->o || !k->h || !k->line || !k->line_end || (waiter_id && !k->waiter) || !k->s ||
        !k->s_end) {
        tl__etcd_names_clear(k);
        return tl__etcd_oom(s);
    }
    k->line_len = strlen(k->line);
    return TL_OK;
}

/* The four ranges of a key's state, as ops (appended to `ops`). */
void tl__etcd_state_ops(json_t *ops, const struct etcd_names *k, bool *ok)
{
    tl__etcd_push(ops, tl__etcd_op_range(tl__etcd_range_req(k->l, NULL, ok), ok), ok);
    tl__etcd_push(ops, tl__etcd_op_range(tl__etcd_range_req(k->h, NULL, ok), ok), ok);
    tl__etcd_push(ops, tl__etcd_op_range(tl__etcd_range_req(k->line, k->line_end, ok), ok), ok);
    tl__etcd_push(ops, tl__etcd_op_range(tl__etcd_range_req(k->s, k->s_end, ok), ok), ok);
}

/* Parses the state from responses first..first+3 of a txn answer. */
tl_status tl__etcd_state_from(struct tl_store *s, json_t *ans, size_t first,
                              const struct etcd_names *k, struct etcd_key_state *ks)
{
    return state_parse(s, tl__etcd_txn_response(ans, first, "response_range"),
                       tl__etcd_txn_response(ans, first + 1, "response_range"),
                       tl__etcd_txn_response(ans, first + 2, "response_range"),
                       tl__etcd_txn_response(ans, first + 3, "response_range"),
                       tl__etcd_header_revision(ans), k->line_len, ks);
}

tl_status tl__etcd_read_state(struct tl_store *s, const struct etcd_names *k,
                              struct etcd_key_state *ks)
{
    bool ok = true;
    json_t *ops = json_array(), *ans = NULL;

    tl__etcd_state_ops(ops, k, &ok);
    tl_status st = tl__etcd_txn(s, NULL, ops, NULL, ok, TL_ETCD_READ, &ans);
    if (st == TL_OK)
        st = tl__etcd_state_from(s, ans, 0, k, ks);
    json_decref(ans);
    return st;
}

/* Our place in the line: index of waiter `id`, or -1. */
long tl__etcd_line_index(const struct etcd_key_state *ks, const char *id)
{
    for (size_t i = 0; id != NULL && i < ks->nline; i++)
        if (strcmp(ks->line[i].id, id) == 0)
            return (long)i;
    return -1;
}
