/*
 * etcd_next.c -- the etcd store's releases and claim-next (store.h, version 4): release and
 * finish (a release that may leave a done marker and claim the next task in the same
 * transaction), claim_next, reopen, done_list and wait_any.
 *
 * A done marker is PREFIX d/KEY (no lease: it stays until reopened), holding the finisher's
 * worker and node, the token it held, the time and the summary. Stores written before markers
 * existed simply have none.
 *
 * Claim-next is one nested transaction (ETCD-API.md A.8): level i compares candidate i's
 * claimability -- no done marker, an empty line, and the record absent (the liveness key absent
 * when stealing) -- and on success writes the claim as etcd.c's claim does; on failure it reads
 * the candidate's four counts (for the tally) and goes on to level i+1. etcd evaluates every
 * compare of a transaction, nested ones included, against the state before it, and applies one
 * branch per level, so the whole chain is atomic: of concurrent claim-nexts each key is won once.
 * etcd limits a transaction to 128 ops along any path of nested levels (each level counts its
 * widest op list), so one transaction holds 24 claiming levels; more are tried batch after batch.
 * Candidates this instance has seen done take a level of one op (see done_note).
 *
 * A finish with `next` is one transaction too: the release (compared on the token and the owner
 * key) with the chain nested in its success branch. Because the chain's compares see the state
 * before the release, the released key, when it is a candidate and not done, has a level of its
 * own that compares only its line and marker and writes the new claim over the old record; the
 * release's deletes go to every branch that does not claim it (etcd refuses a transaction that
 * deletes and puts one key in the same branch).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_int.h"

/* etcd's --max-txn-ops default: the widest op list of each level, added along a path. */
#define NEXT_MAX_OPS 128
/* Claiming levels per transaction at most, whatever the budget; levels in all. */
#define NEXT_MAX_LEVELS 24
#define NEXT_MAX_DEPTH  120
/* Keys an instance remembers as done (struct etcd_store's done cache), at most. */
#define NEXT_DONE_CACHE 10000

/* ---- the audit trail of a release ---- */

/* Events of `key` written after revision `after`, oldest first (at most 50). */
tl_status tl__etcd_events_after(struct tl_store *s, const char *key, int64_t after,
                                struct etcd_kv **out, size_t *n)
{
    bool ok = true;
    char *pre = tl__etcd_path(es_of(s), "e/", key, ETCD_SEP, NULL),
         *end = tl__etcd_path(es_of(s), "e/", key, ETCD_SEP_NEXT, NULL);
    json_t *req = pre && end ? tl__etcd_range_req(pre, end, &ok) : NULL, *ans = NULL;
    tl_status st;

    tl__free(pre);
    tl__free(end);
    if (req == NULL) {
        *out = NULL;
        *n = 0;
        return tl__etcd_oom(s);
    }
    tl__etcd_set(req, "min_create_revision", tl__etcd_i64s(after + 1), &ok);
    tl__etcd_set(req, "limit", json_integer(50), &ok);
    tl__etcd_set(req, "sort_target", json_string("CREATE"), &ok);
    tl__etcd_set(req, "sort_order", json_string("ASCEND"), &ok);
    st = ok ? tl__etcd_call(s, "/v3/kv/range", req, TL_ETCD_READ, &ans) : tl__etcd_oom(s);
    json_decref(req);
    if (st == TL_OK)
        st = tl__etcd_kvs_parse(s, ans, out, n);
    json_decref(ans);
    return st;
}

/* Whether an event value is a grant (acquired, stolen, forced, upgraded, downgraded). */
bool tl__etcd_event_is_grant(const struct etcd_kv *e)
{
    json_t *v = json_loadb(e->value, e->value_len, 0, NULL);
    const char *k = json_string_value(json_object_get(v, "kind"));
    /* A conversion is a grant too: a new token (store.h, convert). */
    bool grant = k != NULL && (strcmp(k, "acquired") == 0 || strcmp(k, "stolen") == 0 ||
                               strcmp(k, "forced") == 0 || strcmp(k, "upgraded") == 0 ||
                               strcmp(k, "downgraded") == 0);

    json_decref(v);
    return grant;
}

/* Whether an event is the release (plain or done) of `held` by its holder. */
bool tl__etcd_event_is_release_of(const struct etcd_kv *e, const struct tl_record *held)
{
    json_t *v = json_loadb(e->value, e->value_len, 0, NULL);
    const char *k = json_string_value(json_object_get(v, "kind"));
    const char *w = json_string_value(json_object_get(v, "worker"));
    int64_t token = 0;
    bool ours = k != NULL && w != NULL && (strcmp(k, "released") == 0 || strcmp(k, "done") == 0) &&
                strcmp(w, held->info.worker_id) == 0 && tl__etcd_i64(v, "token", &token) &&
                (uint64_t)token == held->info.token;

    json_decref(v);
    return ours;
}

/* Trims the audit trail of `key` to history_max events once it has half as many again. */
void tl__etcd_trim_history(struct tl_store *s, const char *key, int64_t count)
{
    struct etcd_store *es = es_of(s);

    if (es->history_max == 0 || count <= (int64_t)es->history_max + es->history_max / 2 + 1)
        return;
    bool ok = true;
    char *pre = tl__etcd_path(es, "e/", key, ETCD_SEP, NULL),
         *end = tl__etcd_path(es, "e/", key, ETCD_SEP_NEXT, NULL);
    json_t *req = pre && end ? tl__etcd_range_req(pre, end, &ok) : NULL, *ans = NULL;
    int64_t excess = count - es->history_max;
    struct etcd_kv *kvs = NULL;
    size_t n = 0;

    if (req != NULL) {
        tl__etcd_set(req, "keys_only", json_true(), &ok);
        tl__etcd_set(req, "sort_target", json_string("CREATE"), &ok);
        tl__etcd_set(req, "sort_order", json_string("ASCEND"), &ok);
        tl__etcd_set(req, "limit", tl__etcd_i64s(excess), &ok);
        if (ok && tl__etcd_call(s, "/v3/kv/range", req, TL_ETCD_READ, &ans) == TL_OK &&
            tl__etcd_kvs_parse(s, ans, &kvs, &n) == TL_OK) {
            for (size_t i = 0; i < n; i += ETCD_TXN_MAX_OPS) {
                json_t *ops = json_array(), *res = NULL;
                bool ok2 = true;
                for (size_t j = i; j < n && j < i + ETCD_TXN_MAX_OPS; j++)
                    tl__etcd_push(ops, tl__etcd_op_delete(kvs[j].key, NULL, &ok2), &ok2);
                (void)tl__etcd_txn(s, NULL, ops, NULL, ok2, TL_ETCD_WRITE, &res);
                json_decref(res);
            }
        }
    }
    tl__etcd_kvs_free(kvs, n);
    json_decref(req);
    json_decref(ans);
    tl__free(pre);
    tl__free(end);
}

/* ---- the keys this instance has seen done ---- */

/*
 * A hint, never trusted alone: a candidate remembered as done gets a level of one op in the
 * chain, "its marker is still there, else stop", instead of a claiming level of five, so that a
 * worker draining a long list steps over its finished front cheaply. A marker gone (a reopen
 * elsewhere) ends the chain there; the key is forgotten and the batch is sent again.
 */
static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static size_t done_pos(const struct etcd_store *es, const char *key, bool *found)
{
    size_t lo = 0, hi = es->ndone;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(es->done_keys[mid], key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static bool done_known(const struct etcd_store *es, const char *key)
{
    bool found = false;

    (void)done_pos(es, key, &found);
    return found;
}

static void done_note(struct etcd_store *es, const char *key)
{
    bool found = false;
    size_t at = done_pos(es, key, &found);

    if (found || es->ndone >= NEXT_DONE_CACHE)
        return;
    if (es->ndone == es->done_cap) {
        size_t cap = es->done_cap ? es->done_cap * 2 : 64;
        char **grown = tl__realloc((void *)es->done_keys, cap * sizeof(char *));
        if (grown == NULL)
            return; /* a hint: go without */
        es->done_keys = grown;
        es->done_cap = cap;
    }
    char *copy = tl__strdup(key);
    if (copy == NULL)
        return;
    memmove((void *)(es->done_keys + at + 1), (const void *)(es->done_keys + at),
            (es->ndone - at) * sizeof(char *));
    es->done_keys[at] = copy;
    es->ndone++;
}

static void done_forget(struct etcd_store *es, const char *key)
{
    bool found = false;
    size_t at = done_pos(es, key, &found);

    if (!found)
        return;
    tl__free(es->done_keys[at]);
    memmove((void *)(es->done_keys + at), (const void *)(es->done_keys + at + 1),
            (es->ndone - at - 1) * sizeof(char *));
    es->ndone--;
}

void tl__etcd_next_free(struct etcd_store *es)
{
    for (size_t i = 0; i < es->ndone; i++)
        tl__free(es->done_keys[i]);
    tl__free((void *)es->done_keys);
    es->done_keys = NULL;
    es->ndone = es->done_cap = 0;
}

/* ---- the chain of claim-next ---- */

/* One claim-next: what it claims from, how, and the chain of one transaction. */
struct next_ctx {
    struct tl_store *s;
    const struct tl_claim *req;
    const struct tl_candidates *c;
    bool steal;
    char nonce[33];
    char *value; /* the record we write (the same for every candidate) */
    int64_t at;
    int64_t lease;
    /* A finish's released key: its candidate index (SIZE_MAX: not a candidate, or done and so
     * left out), and whether the chain of this transaction must delete it. */
    const struct etcd_names *rel;
    size_t rel_idx;
    /* The candidates of this transaction, by index. */
    size_t *idx;
    size_t n;
    /* By candidate index: remembered as done (a pass-through level). */
    bool *pass;
};

static size_t max3(size_t a, size_t b, size_t c)
{
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

/* The width of a level (its widest op list): compares 3 (2 for the released key); success 4
 * puts (the released key's deletes too, before its own level); failure 4 counts and the next
 * level (the released key's deletes too, at its own level). */
static size_t level_width(const struct next_ctx *x, size_t ci, bool rel_pending)
{
    bool is_rel = x->rel != NULL && ci == x->rel_idx;

    if (x->pass[ci] && !is_rel)
        return rel_pending ? 3 : 1; /* a compare; the next level, or the released key's deletes */
    return max3(is_rel ? 2 : 3, 4 + (rel_pending ? 3 : 0), 5 + (is_rel ? 3 : 0));
}

/* How many of the candidates idx[from..] fit in a transaction with `budget` ops along a path;
 * sets *with_rel when the released key is among them. */
static size_t plan_batch(const struct next_ctx *x, const size_t *idx, size_t n, size_t from,
                         size_t budget, bool *with_rel)
{
    size_t used = 1; /* a steal's event level under the last level */
    size_t k = 0, claiming = 0;
    size_t rel_at = SIZE_MAX;

    for (size_t i = from; i < n && i - from < NEXT_MAX_DEPTH; i++)
        if (x->rel != NULL && idx[i] == x->rel_idx)
            rel_at = i;
    for (size_t i = from; i < n && k < NEXT_MAX_DEPTH; i++) {
        bool pass = x->pass[idx[i]] && !(x->rel != NULL && idx[i] == x->rel_idx);
        size_t w = level_width(x, idx[i], rel_at != SIZE_MAX && i < rel_at);
        if (used + w > budget || (!pass && claiming == NEXT_MAX_LEVELS))
            break;
        used += w;
        claiming += !pass;
        k++;
    }
    if (k == 0)
        k = 1; /* cannot happen with etcd's limits; keeps the loop going */
    *with_rel = rel_at != SIZE_MAX && rel_at < from + k;
    return k;
}

static void push_count(json_t *ops, const char *key, const char *end, bool *ok)
{
    json_t *r = tl__etcd_range_req(key, end, ok);

    tl__etcd_set(r, "count_only", json_true(), ok);
    tl__etcd_push(ops, tl__etcd_op_range(r, ok), ok);
}

static void push_deletes(json_t *ops, const struct etcd_names *k, bool *ok)
{
    tl__etcd_push(ops, tl__etcd_op_delete(k->l, NULL, ok), ok);
    tl__etcd_push(ops, tl__etcd_op_delete(k->o, NULL, ok), ok);
    tl__etcd_push(ops, tl__etcd_op_delete(k->h, NULL, ok), ok);
}

static json_t *txn_obj(json_t *compare, json_t *success, json_t *failure, bool *ok)
{
    json_t *t = json_object();

    tl__etcd_set(t, "compare", compare, ok);
    tl__etcd_set(t, "success", success, ok);
    tl__etcd_set(t, "failure", failure, ok);
    return t;
}

static json_t *op_txn(json_t *txn, bool *ok)
{
    json_t *op = json_object();

    tl__etcd_set(op, "request_txn", txn, ok);
    return op;
}

/*
 * Level `i` of the chain (candidate x->idx[i]) as a txn object, with `inner` (stolen; NULL for
 * the last level) in its failure branch. `rel_pending`: the released key is claimed by a later
 * level, so this level's success deletes it.
 */
static json_t *chain_level(struct next_ctx *x, size_t i, json_t *inner, bool rel_pending, bool *ok)
{
    struct tl_store *s = x->s;
    struct etcd_store *es = es_of(s);
    const struct tl_claim *req = x->req;
    size_t ci = x->idx[i];
    const char *key = x->c->keys[ci];
    bool is_rel = x->rel != NULL && ci == x->rel_idx;
    struct etcd_names k;
    char *d = tl__etcd_path(es, "d/", key, NULL, NULL);
    char *live = tl__etcd_live_value(req->lock_timeout_ms);
    json_t *compare = json_array(), *success = json_array(), *failure = json_array();

    if (x->pass[ci] && !is_rel && d != NULL) {
        /* Remembered as done: on while the marker is there, else stop (see done_note). */
        tl__free(live);
        tl__etcd_push(compare, tl__etcd_cmp(d, NULL, "CREATE", "GREATER", 0, ok), ok);
        if (inner != NULL)
            tl__etcd_push(success, op_txn(inner, ok), ok);
        if (rel_pending)
            push_deletes(failure, x->rel, ok);
        tl__free(d);
        return txn_obj(compare, success, failure, ok);
    }
    if (tl__etcd_names_for(s, key, NULL, &k) != TL_OK || d == NULL || live == NULL) {
        *ok = false;
        tl__free(d);
        tl__free(live);
        json_decref(inner);
        json_decref(compare);
        json_decref(success);
        json_decref(failure);
        return NULL;
    }
    tl__etcd_push(compare, tl__etcd_cmp(d, NULL, "CREATE", "EQUAL", 0, ok), ok);
    tl__etcd_push(compare, tl__etcd_cmp(k.line, k.line_end, "CREATE", "LESS", 1, ok), ok);
    if (!is_rel)
        tl__etcd_push(compare, tl__etcd_cmp(x->steal ? k.h : k.l, NULL, "CREATE", "EQUAL", 0, ok),
                      ok);

    if (x->steal && !is_rel) {
        /* Free (acquired) or stale (stolen): which one, the record's absence says. */
        json_t *c2 = json_array(), *acq = json_array(), *stole = json_array();
        tl__etcd_push(c2, tl__etcd_cmp(k.l, NULL, "CREATE", "EQUAL", 0, ok), ok);
        tl__etcd_push(acq,
                      tl__etcd_op_event(es, key, TL_EVENT_ACQUIRED, req->worker_id, req->node_id, 0,
                                        x->at, NULL, 0, ok),
                      ok);
        tl__etcd_push(stole,
                      tl__etcd_op_event(es, key, TL_EVENT_STOLEN, req->worker_id, req->node_id, 0,
                                        x->at, "from a stale holder (claim-next)", 0, ok),
                      ok);
        tl__etcd_push(success, op_txn(txn_obj(c2, acq, stole, ok), ok), ok);
    }
    tl__etcd_push(success, tl__etcd_op_put(k.l, x->value, 0, ok), ok);
    tl__etcd_push(success, tl__etcd_op_put(k.o, req->worker_id, 0, ok), ok);
    tl__etcd_push(success, tl__etcd_op_put(k.h, live, x->lease, ok), ok);
    if (!x->steal || is_rel)
        tl__etcd_push(success,
                      tl__etcd_op_event(es, key, TL_EVENT_ACQUIRED, req->worker_id, req->node_id, 0,
                                        x->at, NULL, is_rel ? 1 : 0, ok),
                      ok);
    if (rel_pending)
        push_deletes(success, x->rel, ok);

    push_count(failure, d, NULL, ok);
    push_count(failure, k.l, NULL, ok);
    push_count(failure, k.h, NULL, ok);
    push_count(failure, k.line, k.line_end, ok);
    if (is_rel)
        push_deletes(failure, x->rel, ok);
    if (inner != NULL)
        tl__etcd_push(failure, op_txn(inner, ok), ok);

    tl__etcd_names_clear(&k);
    tl__free(d);
    tl__free(live);
    return txn_obj(compare, success, failure, ok);
}

/* The chain over x->idx[0..n-1], as one txn object. */
static json_t *chain_build(struct next_ctx *x, bool *ok)
{
    size_t rel_at = SIZE_MAX;
    json_t *inner = NULL;

    for (size_t i = 0; i < x->n; i++)
        if (x->rel != NULL && x->idx[i] == x->rel_idx)
            rel_at = i;
    for (size_t i = x->n; i-- > 0;)
        inner = chain_level(x, i, inner, rel_at != SIZE_MAX && i < rel_at, ok);
    return inner;
}

static int64_t range_count(json_t *resp)
{
    int64_t n = 0;

    (void)tl__etcd_i64(json_object_get(resp, "response_range"), "count", &n);
    return n;
}

static json_t *find_txn(json_t *responses)
{
    for (size_t i = 0; i < json_array_size(responses); i++) {
        json_t *t = json_object_get(json_array_get(responses, i), "response_txn");
        if (t != NULL)
            return t;
    }
    return NULL;
}

/* Tells the core that candidate `ci` is done (store.h's done_seen). */
static void seen_done(struct next_ctx *x, size_t ci)
{
    if (x->c->done_seen != NULL && ci < x->c->nkeys)
        x->c->done_seen[ci] = 1;
}

/*
 * Walks the chain's answer `lv` (level 0's txn answer): *won_at the level that won (SIZE_MAX:
 * none, and `tally` counts why, at the revision of the transaction), *stolen for a steal;
 * *stale_at the level of a key remembered as done that is no longer (the chain stopped there,
 * and it is forgotten).
 */
static tl_status chain_walk(struct next_ctx *x, json_t *lv, size_t *won_at, bool *stolen,
                            size_t *stale_at, struct tl_next_tally *tally)
{
    struct etcd_store *es = es_of(x->s);

    *won_at = SIZE_MAX;
    *stale_at = SIZE_MAX;
    *stolen = false;
    for (size_t i = 0; i < x->n; i++) {
        json_t *resp = json_object_get(lv, "responses");
        size_t ci = x->idx[i];
        bool is_rel = x->rel != NULL && ci == x->rel_idx;
        if (!json_is_object(lv))
            return tl__store_fail(x->s, TL_ESTORE, "etcd: a claim-next answer is malformed");
        if (x->pass[ci] && !is_rel) {
            if (!tl__etcd_txn_succeeded(lv)) {
                *stale_at = i;
                x->pass[ci] = false;
                done_forget(es, x->c->keys[ci]);
                return TL_OK;
            }
            tally->done++;
            seen_done(x, ci);
            if (i + 1 < x->n && (lv = find_txn(resp)) == NULL)
                return tl__store_fail(x->s, TL_ESTORE, "etcd: a claim-next answer lacks a level");
            continue;
        }
        if (tl__etcd_txn_succeeded(lv)) {
            *won_at = i;
            if (x->steal && !is_rel) {
                json_t *t = json_object_get(json_array_get(resp, 0), "response_txn");
                *stolen = t != NULL && !tl__etcd_txn_succeeded(t);
            }
            return TL_OK;
        }
        int64_t d = range_count(json_array_get(resp, 0)), l = range_count(json_array_get(resp, 1)),
                h = range_count(json_array_get(resp, 2)), w = range_count(json_array_get(resp, 3));
        /* The released key of a finish is free but for waiters in line; a key that failed
         * its compares yet looks free counts as held (worth another try). */
        bool busy_holder = !is_rel && ((l > 0 && (h > 0 || !x->steal)) || w == 0);
        if (d > 0) {
            tally->done++;
            if (!is_rel) {
                done_note(es, x->c->keys[ci]);
                seen_done(x, ci);
            }
        } else if (busy_holder)
            tally->held++;
        else
            tally->queued++;
        if (i + 1 < x->n && (lv = find_txn(resp)) == NULL)
            return tl__store_fail(x->s, TL_ESTORE, "etcd: a claim-next answer lacks a level");
    }
    return TL_OK;
}

/* Fills out->rec as our claim of candidate `ci` at revision `rev`. */
static tl_status next_won(struct next_ctx *x, size_t ci, int64_t rev, int64_t lease,
                          struct tl_claim_result *out)
{
    const struct tl_claim *req = x->req;
    struct tl_record *r = &out->rec;

    memset(r, 0, sizeof(*r));
    r->info.key = tl__strdup(x->c->keys[ci]);
    r->info.worker_id = tl__strdup(req->worker_id);
    r->info.node_id = tl__strdup(req->node_id);
    r->info.task_info = tl__strdup(req->task_info);
    r->opaque = tl__asprintf("%llx", (unsigned long long)lease);
    if (!r->info.key || !r->info.worker_id || !r->info.node_id || !r->info.task_info ||
        !r->opaque) {
        tl__record_clear(r);
        return tl__etcd_oom(x->s);
    }
    r->info.token = (uint64_t)rev;
    r->info.claimed_at_ms = r->info.heartbeat_at_ms = x->at;
    r->info.lock_timeout_ms = req->lock_timeout_ms;
    r->info.observed_at_ms = x->at;
    return TL_OK;
}

/*
 * After a lost answer: whether one of this transaction's candidates holds our record (the
 * nonce tells); *found with it filled in out.
 */
static tl_status recover(struct next_ctx *x, struct tl_claim_result *out, size_t *won, bool *found)
{
    struct tl_store *s = x->s;
    bool ok = true;
    json_t *ops = json_array(), *ans = NULL;
    tl_status st;

    *found = false;
    for (size_t i = 0; i < x->n; i++) {
        struct etcd_names k;
        if (tl__etcd_names_for(s, x->c->keys[x->idx[i]], NULL, &k) != TL_OK) {
            json_decref(ops);
            return tl__etcd_oom(s);
        }
        tl__etcd_push(ops, tl__etcd_op_range(tl__etcd_range_req(k.l, NULL, &ok), &ok), &ok);
        tl__etcd_push(ops, tl__etcd_op_range(tl__etcd_range_req(k.h, NULL, &ok), &ok), &ok);
        tl__etcd_names_clear(&k);
    }
    if ((st = tl__etcd_txn(s, NULL, ops, NULL, ok, TL_ETCD_READ, &ans)) != TL_OK)
        return st;
    for (size_t i = 0; i < x->n && !*found && st == TL_OK; i++) {
        struct etcd_kv *l = NULL, *h = NULL;
        size_t nl = 0, nh = 0;
        if ((st = tl__etcd_kvs_parse(s, tl__etcd_txn_response(ans, 2 * i, "response_range"), &l,
                                     &nl)) == TL_OK &&
            (st = tl__etcd_kvs_parse(s, tl__etcd_txn_response(ans, 2 * i + 1, "response_range"), &h,
                                     &nh)) == TL_OK &&
            nl > 0) {
            struct tl_record r;
            char *nonce = NULL;
            size_t ci = x->idx[i];
            if (tl__etcd_record_from(s, x->c->keys[ci], &l[0], NULL, &r, &nonce) == TL_OK) {
                if (nonce != NULL && strcmp(nonce, x->nonce) == 0) {
                    *found = true;
                    *won = ci;
                    st = next_won(x, ci, l[0].mod, nh > 0 ? h[0].lease : x->lease, out);
                }
                tl__record_clear(&r);
                tl__free(nonce);
            }
        }
        tl__etcd_kvs_free(l, nl);
        tl__etcd_kvs_free(h, nh);
    }
    json_decref(ans);
    return st;
}

static tl_status ctx_init(struct tl_store *s, const struct tl_claim *req,
                          const struct tl_candidates *c, struct next_ctx *x)
{
    memset(x, 0, sizeof(*x));
    x->s = s;
    x->req = req;
    x->c = c;
    x->steal = req->mode == TL_CLAIM_STEAL;
    x->at = now_ms(s);
    x->rel_idx = SIZE_MAX;
    tl__etcd_random_hex(x->nonce, 16);
    if (c->keys == NULL)
        return tl__store_fail(s, TL_ENOTSUP, "etcd: the etcd store has no labels; name the keys");
    if ((x->value = tl__etcd_record_value(req, x->nonce, x->at)) == NULL ||
        (x->pass = tl__calloc(c->nkeys ? c->nkeys : 1, sizeof(bool))) == NULL)
        return tl__etcd_oom(s);
    for (size_t i = 0; i < c->nkeys; i++)
        x->pass[i] = done_known(es_of(s), c->keys[i]);
    return TL_OK;
}

static void ctx_clear(struct next_ctx *x)
{
    tl__free(x->value);
    tl__free(x->pass);
    x->value = NULL;
    x->pass = NULL;
}

/* The lowest revision a claim-next of this call saw everything busy at (wait_any's start). */
static void note_busy_rev(struct tl_store *s, int64_t rev, bool first)
{
    struct etcd_store *es = es_of(s);

    if (rev > 0 && (first || es->next_rev == 0 || rev < es->next_rev))
        es->next_rev = rev;
}

/*
 * Claim-next over the candidates idx[from..n-1], a transaction per batch, with no release in
 * them. Adds to `tally`.
 */
static tl_status next_from(struct next_ctx *x, size_t *idx, size_t n, size_t from,
                           struct tl_claim_result *out, size_t *won, struct tl_next_tally *tally)
{
    struct tl_store *s = x->s;
    struct etcd_store *es = es_of(s);
    int64_t call_start = mono(s);
    tl_status st = TL_OK;

    x->rel = NULL;
    for (size_t i = from; i < n;) {
        bool with_rel = false;
        for (int attempt = 0;; attempt++) {
            int64_t sent = 0;
            json_t *ans = NULL;
            bool ok = true;
            x->idx = idx + i;
            x->n = plan_batch(x, idx, n, i, NEXT_MAX_OPS, &with_rel);
            if (attempt > 0 && s->deadline_mono_ms != 0 && mono(s) >= s->deadline_mono_ms)
                return tl__store_fail(s, TL_ETIMEDOUT, "etcd: claim-next: out of time");
            if (attempt > 20)
                return tl__store_fail(s, TL_ESTORE, "etcd: claim-next: no clear answer");
            if ((st = tl__etcd_lease_for(s, x->req->lock_timeout_ms, &x->lease, &sent)) != TL_OK)
                return st;
            json_t *body = chain_build(x, &ok);
            es->stats.claims++;
            st = ok ? tl__etcd_call(s, "/v3/kv/txn", body, TL_ETCD_WRITE, &ans) : tl__etcd_oom(s);
            json_decref(body);
            if (st == TL_OK) {
                size_t at = SIZE_MAX, stale = SIZE_MAX;
                bool stolen = false;
                struct tl_next_tally t = {0};
                st = chain_walk(x, ans, &at, &stolen, &stale, &t);
                if (st == TL_OK && stale != SIZE_MAX) {
                    json_decref(ans);
                    continue; /* a key reopened since we saw it done: again, as a claim */
                }
                if (st == TL_OK && at != SIZE_MAX) {
                    *won = x->idx[at];
                    st = next_won(x, *won, tl__etcd_header_revision(ans), x->lease, out);
                    out->took_stale = stolen;
                    if (st == TL_OK && sent != 0 && sent < call_start)
                        out->beat_sent_mono_ms = sent;
                } else if (st == TL_OK) {
                    tally->done += t.done;
                    tally->held += t.held;
                    tally->queued += t.queued;
                    note_busy_rev(s, tl__etcd_header_revision(ans), i == from);
                }
                json_decref(ans);
                if (st != TL_OK || at != SIZE_MAX)
                    return st;
                break;
            }
            if (tl__etcd_lease_gone(es)) {
                tl__etcd_forget_lease(es, x->lease);
                continue;
            }
            if (!tl__etcd_unsure(es))
                return st;
            bool found = false;
            if ((st = recover(x, out, won, &found)) != TL_OK)
                return st;
            if (found)
                return TL_OK;
        }
        i += x->n;
    }
    return TL_EBUSY;
}

tl_status tl__etcd_claim_next(struct tl_store *s, const struct tl_claim *req,
                              const struct tl_candidates *c, struct tl_claim_result *out,
                              size_t *won, struct tl_next_tally *tally)
{
    struct next_ctx x;
    size_t *idx = NULL;
    tl_status st;

    *won = SIZE_MAX;
    memset(tally, 0, sizeof(*tally));
    if ((st = ctx_init(s, req, c, &x)) != TL_OK)
        goto out;
    if (c->nkeys == 0) {
        st = TL_EBUSY;
        goto out;
    }
    if ((idx = tl__calloc(c->nkeys, sizeof(*idx))) == NULL) {
        st = tl__etcd_oom(s);
        goto out;
    }
    for (size_t i = 0; i < c->nkeys; i++)
        idx[i] = i;
    st = next_from(&x, idx, c->nkeys, 0, out, won, tally);
    if (st == TL_OK) {
        es_of(s)->next_rev = 0;
        tl__etcd_turn_end(s); /* a wait_any watch is of no more use */
    }
out:
    tl__free(idx);
    ctx_clear(&x);
    return st;
}

/* ---- release and finish ---- */

static char *marker_value(const struct tl_record *held, const char *summary, int64_t at)
{
    json_t *v = json_pack("{s:s, s:s, s:o, s:I, s:s}", "worker", held->info.worker_id, "node",
                          held->info.node_id, "token", tl__etcd_i64s((int64_t)held->info.token),
                          "at", (json_int_t)at, "summary", summary ? summary : "");
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    char *out = text ? tl__strdup(text) : NULL;

    json_decref(v);
    free(text);
    return out;
}

/* A finish's claim-next: the context and the candidates of its transaction. */
struct finish_next {
    struct next_ctx x;
    size_t *idx; /* every candidate but a done released key, in order */
    size_t n;
};

static tl_status finish_next_init(struct tl_store *s, const struct tl_finish *f,
                                  const struct etcd_names *rel, struct finish_next *fn,
                                  struct tl_next_tally *done_rel)
{
    const struct tl_candidates *c = f->candidates;
    tl_status st = ctx_init(s, f->next, c, &fn->x);

    if (st != TL_OK)
        return st;
    if ((fn->idx = tl__calloc(c->nkeys ? c->nkeys : 1, sizeof(*fn->idx))) == NULL)
        return tl__etcd_oom(s);
    fn->x.rel = rel;
    for (size_t i = 0; i < c->nkeys; i++) {
        if (strcmp(c->keys[i], f->held->info.key) == 0) {
            if (f->done) {
                done_rel->done++; /* done by this very release */
                if (c->done_seen != NULL)
                    c->done_seen[i] = 1; /* read by the core only if the release succeeds */
                continue;
            }
            fn->x.rel_idx = i;
        }
        fn->idx[fn->n++] = i;
    }
    return TL_OK;
}

tl_status tl__etcd_finish(struct tl_store *s, const struct tl_finish *f,
                          struct tl_finish_result *out)
{
    struct etcd_store *es = es_of(s);
    const struct tl_record *held = f->held;
    struct etcd_names k;
    struct finish_next fn;
    struct tl_next_tally tally = {0};
    char *epre = NULL, *eend = NULL, *d = NULL, *marker = NULL;
    size_t batch = 0;
    bool with_rel = false;
    int64_t at = now_ms(s), call_start = mono(s), sent = 0;
    tl_status st = tl__etcd_names_for(s, held->info.key, NULL, &k);

    memset(&fn, 0, sizeof(fn));
    fn.x.rel_idx = SIZE_MAX;
    if (st != TL_OK)
        return st;
    if (held->info.mode == TL_SHARED) {
        tl__etcd_names_clear(&k);
        return tl__etcd_finish_shared(s, f, out);
    }
    epre = tl__etcd_path(es, "e/", held->info.key, ETCD_SEP, NULL);
    eend = tl__etcd_path(es, "e/", held->info.key, ETCD_SEP_NEXT, NULL);
    d = tl__etcd_path(es, "d/", held->info.key, NULL, NULL);
    marker = f->done ? marker_value(held, f->summary, at) : NULL;
    if (epre == NULL || eend == NULL || d == NULL || (f->done && marker == NULL)) {
        st = tl__etcd_oom(s);
        goto out;
    }
    if (f->next != NULL && (st = finish_next_init(s, f, &k, &fn, &tally)) != TL_OK) {
        if (st == TL_ENOTSUP) {
            /* No labels here: the core claims after the release. */
            ctx_clear(&fn.x);
            tl__free(fn.idx);
            memset(&fn, 0, sizeof(fn));
            fn.x.rel_idx = SIZE_MAX;
        } else {
            goto out;
        }
    }
    bool next = f->next != NULL && fn.x.value != NULL;
    bool check_trail = ++es->releases % ETCD_TRAIL_CHECK_EVERY == 0;
    /* The top level: the release's compares; its success holds the event, the marker, the
     * released key's deletes (unless the chain has them), the trail's count and the chain. */
    size_t top = 1 + (f->done ? 1 : 0) + 3 + 1 + 1; /* the trail's count or not: alike */
    if (next && fn.n > 0) {
        batch = plan_batch(&fn.x, fn.idx, fn.n, 0, NEXT_MAX_OPS - top, &with_rel);
        fn.x.idx = fn.idx;
        fn.x.n = batch;
        if (!with_rel)
            fn.x.rel = NULL;
    }
    bool lost_answer = false; /* an attempt that may have been applied */
    for (int attempt = 0; attempt < 20; attempt++) {
        bool ok = true;
        json_t *compare = json_array(), *ops = json_array(), *fail = json_array(), *ans = NULL;
        size_t count_at = 0;
        tl__etcd_push(compare,
                      tl__etcd_cmp(k.l, NULL, "MOD", "EQUAL", (int64_t)held->info.token, &ok), &ok);
        tl__etcd_push(compare, tl__etcd_cmp_value(k.o, held->info.worker_id, &ok), &ok);
        tl__etcd_push(ops,
                      tl__etcd_op_event(es, held->info.key,
                                        f->done ? TL_EVENT_DONE : TL_EVENT_RELEASED,
                                        held->info.worker_id, held->info.node_id, held->info.token,
                                        at, f->summary, 0, &ok),
                      &ok);
        if (f->done)
            tl__etcd_push(ops, tl__etcd_op_put(d, marker, 0, &ok), &ok);
        if (!with_rel)
            push_deletes(ops, &k, &ok);
        /* The trail's length, to trim it: counting costs etcd a walk over the key's events,
         * so one release in ETCD_TRAIL_CHECK_EVERY does it (counted per instance from a random
         * start, so that processes that release once count too, now and then). */
        if (check_trail) {
            count_at = json_array_size(ops);
            push_count(ops, epre, eend, &ok);
        }
        if (batch > 0) {
            if ((st = tl__etcd_lease_for(s, fn.x.req->lock_timeout_ms, &fn.x.lease, &sent)) !=
                TL_OK) {
                json_decref(compare);
                json_decref(ops);
                json_decref(fail);
                goto out;
            }
            tl__etcd_push(ops, op_txn(chain_build(&fn.x, &ok), &ok), &ok);
        }
        tl__etcd_push(fail, tl__etcd_op_range(tl__etcd_range_req(k.l, NULL, &ok), &ok), &ok);
        st = tl__etcd_txn(s, compare, ops, fail, ok, TL_ETCD_WRITE, &ans);
        if (st == TL_OK && tl__etcd_txn_succeeded(ans)) {
            int64_t n = 0;
            if (check_trail)
                (void)tl__etcd_i64(tl__etcd_txn_response(ans, count_at, "response_range"), "count",
                                   &n);
            if (batch > 0) {
                size_t won_at = SIZE_MAX, stale = SIZE_MAX;
                bool stolen = false;
                out->next_tried = true;
                out->won = SIZE_MAX;
                st = chain_walk(&fn.x, find_txn(json_object_get(ans, "responses")), &won_at,
                                &stolen, &stale, &tally);
                if (st != TL_OK) {
                    out->next_tried = false; /* released all the same: the core claims */
                    st = TL_OK;
                } else if (won_at != SIZE_MAX) {
                    out->won = fn.x.idx[won_at];
                    out->next_status = next_won(&fn.x, out->won, tl__etcd_header_revision(ans),
                                                fn.x.lease, &out->next);
                    out->next.took_stale = stolen;
                    if (sent != 0 && sent < call_start)
                        out->next.beat_sent_mono_ms = sent;
                } else if (stale != SIZE_MAX) {
                    /* Released; the claim goes on from the key reopened meanwhile. */
                    out->next_status =
                        next_from(&fn.x, fn.idx, fn.n, stale, &out->next, &out->won, &tally);
                } else {
                    note_busy_rev(s, tl__etcd_header_revision(ans), true);
                    out->next_status = batch < fn.n ? next_from(&fn.x, fn.idx, fn.n, batch,
                                                                &out->next, &out->won, &tally)
                                                    : TL_EBUSY;
                }
                out->tally = tally;
            } else if (next) {
                /* Nothing to claim but a done released key (or no candidate at all). */
                out->next_tried = true;
                out->won = SIZE_MAX;
                out->next_status = TL_EBUSY;
                out->tally = tally;
            }
            json_decref(ans);
            if (f->done)
                done_note(es, held->info.key);
            tl__etcd_trim_history(s, held->info.key, n);
            goto out;
        }
        if (st != TL_OK) {
            json_decref(ans);
            if (tl__etcd_lease_gone(es) && batch > 0) {
                tl__etcd_forget_lease(es, fn.x.lease); /* not applied: a new lease, again */
                continue;
            }
            if (tl__etcd_unsure(es)) {
                lost_answer = true;
                continue;
            }
            goto out;
        }
        struct etcd_kv *kvs = NULL;
        size_t n = 0;
        st = tl__etcd_kvs_parse(s, tl__etcd_txn_response(ans, 0, "response_range"), &kvs, &n);
        json_decref(ans);
        if (st != TL_OK)
            goto out;
        bool held_by_other = n > 0;
        bool shared = n > 0 && tl__etcd_value_is_shared(&kvs[0]);
        tl__etcd_kvs_free(kvs, n);
        if (shared && !lost_answer) {
            /* A shared holder known by its token only (tl_release_token()): its set decides. */
            st = tl__etcd_finish_shared(s, f, out);
            goto out;
        }
        /* Not ours to delete. When an earlier attempt of this call had its answer lost, that
         * attempt may have released it: its event is then the first after our token, before
         * any grant (the chain's own claim of this key is at the same revision), and this call
         * succeeded. (A second call is refused once someone else claimed the key, as the
         * contract says.) */
        if ((st = tl__etcd_events_after(s, held->info.key, (int64_t)held->info.token, &kvs, &n)) !=
            TL_OK)
            goto out;
        int64_t rel_rev = 0; /* the revision of our release's event, if there is one */
        for (size_t i = 0; i < n && rel_rev == 0; i++)
            if (lost_answer && tl__etcd_event_is_release_of(&kvs[i], held))
                rel_rev = kvs[i].create;
        bool claimed_since = false;
        for (size_t i = 0; i < n && !claimed_since; i++)
            claimed_since =
                tl__etcd_event_is_grant(&kvs[i]) && (rel_rev == 0 || kvs[i].create < rel_rev);
        bool released_by_us = rel_rev != 0 && !claimed_since;
        tl__etcd_kvs_free(kvs, n);
        if (released_by_us) {
            if (batch > 0) {
                /* Whether that attempt claimed too: our record on a candidate says. */
                bool found = false;
                out->won = SIZE_MAX;
                if (recover(&fn.x, &out->next, &out->won, &found) == TL_OK && found) {
                    out->next_tried = true;
                    out->next_status = TL_OK;
                    out->tally = tally;
                } else {
                    tl__record_clear(&out->next.rec);
                    memset(&out->next, 0, sizeof(out->next));
                    out->won = SIZE_MAX;
                }
            }
            st = TL_OK;
            goto out;
        }
        if (held_by_other)
            st = tl__store_fail(s, TL_ENOTOWNER, "%s is not held by %s with token %llu",
                                held->info.key, held->info.worker_id,
                                (unsigned long long)held->info.token);
        else if (claimed_since)
            st = tl__store_fail(s, TL_ENOTOWNER, "%s was claimed by someone else after token %llu",
                                held->info.key, (unsigned long long)held->info.token);
        goto out;
    }
    st = tl__store_fail(s, TL_ESTORE, "etcd: release of %s: no clear answer after 20 attempts",
                        held->info.key);
out:
    if (out->next_tried && out->next_status == TL_OK)
        tl__etcd_turn_end(s);
    ctx_clear(&fn.x);
    tl__free(fn.idx);
    tl__free(epre);
    tl__free(eend);
    tl__free(d);
    tl__free(marker);
    tl__etcd_names_clear(&k);
    return st;
}

tl_status tl__etcd_release(struct tl_store *s, const struct tl_record *held, const char *summary)
{
    const struct tl_finish f = {.held = held, .summary = summary};
    struct tl_finish_result res;

    memset(&res, 0, sizeof(res));
    return tl__etcd_finish(s, &f, &res);
}

/* ---- reopen, done_list ---- */

tl_status tl__etcd_reopen(struct tl_store *s, const char *key, const char *worker_id,
                          const char *node_id, bool *was_done)
{
    struct etcd_store *es = es_of(s);
    char *d = tl__etcd_path(es, "d/", key, NULL, NULL);
    bool lost_answer = false;
    tl_status st = TL_OK;

    *was_done = false;
    if (d == NULL)
        return tl__etcd_oom(s);
    done_forget(es, key);
    for (int attempt = 0; attempt < 20; attempt++) {
        bool ok = true;
        json_t *req = tl__etcd_range_req(d, NULL, &ok), *ans = NULL;
        struct etcd_kv *kvs = NULL;
        size_t n = 0;
        st = ok ? tl__etcd_call(s, "/v3/kv/range", req, TL_ETCD_READ, &ans) : tl__etcd_oom(s);
        json_decref(req);
        if (st == TL_OK)
            st = tl__etcd_kvs_parse(s, ans, &kvs, &n);
        json_decref(ans);
        if (st != TL_OK)
            goto out;
        if (n == 0) {
            *was_done = lost_answer; /* gone: by our lost attempt, most likely */
            goto out;
        }
        json_t *v = json_loadb(kvs[0].value, kvs[0].value_len, 0, NULL);
        const char *by = json_string_value(json_object_get(v, "worker"));
        int64_t token = 0;
        (void)tl__etcd_i64(v, "token", &token);
        char detail[200];
        (void)snprintf(detail, sizeof(detail), "done by %s (token %lld)", by ? by : "?",
                       (long long)token);
        json_decref(v);
        json_t *compare = json_array(), *ops = json_array();
        tl__etcd_push(compare, tl__etcd_cmp(d, NULL, "MOD", "EQUAL", kvs[0].mod, &ok), &ok);
        tl__etcd_push(ops, tl__etcd_op_delete(d, NULL, &ok), &ok);
        tl__etcd_push(ops,
                      tl__etcd_op_event(es, key, TL_EVENT_REOPENED, worker_id, node_id,
                                        token > 0 ? (uint64_t)token : 0, now_ms(s), detail, 0, &ok),
                      &ok);
        tl__etcd_kvs_free(kvs, n);
        st = tl__etcd_txn(s, compare, ops, NULL, ok, TL_ETCD_WRITE, &ans);
        bool succeeded = st == TL_OK && tl__etcd_txn_succeeded(ans);
        json_decref(ans);
        if (succeeded) {
            *was_done = true;
            goto out;
        }
        if (st != TL_OK && !tl__etcd_unsure(es))
            goto out;
        /* Changed under us, or the answer was lost: look again. */
        lost_answer = lost_answer || st != TL_OK;
    }
    st = tl__store_fail(s, TL_ESTORE, "etcd: reopen of %s: no clear answer", key);
out:
    tl__free(d);
    return st;
}

/* A done marker from its kv (key PREFIX d/KEY); NULL when malformed. */
static struct tl_done *done_from(const struct etcd_store *es, const struct etcd_kv *kv)
{
    size_t lp = strlen(es->prefix) + 2;
    json_t *v = json_loadb(kv->value, kv->value_len, 0, NULL);
    const char *w = json_string_value(json_object_get(v, "worker"));
    const char *n = json_string_value(json_object_get(v, "node"));
    const char *sum = json_string_value(json_object_get(v, "summary"));
    json_t *at = json_object_get(v, "at");
    int64_t token = 0;
    struct tl_done *d = NULL;

    if (strlen(kv->key) <= lp || w == NULL || n == NULL || !json_is_integer(at) ||
        !tl__etcd_i64(v, "token", &token))
        goto out;
    if ((d = tl__done_new()) == NULL)
        goto out;
    d->key = tl__strdup(kv->key + lp);
    d->worker_id = tl__strdup(w);
    d->node_id = tl__strdup(n);
    d->summary = tl__strdup(sum ? sum : "");
    d->token = (uint64_t)token;
    d->done_at_ms = json_integer_value(at);
    if (!d->key || !d->worker_id || !d->node_id || !d->summary) {
        tl__done_free(d);
        d = NULL;
    }
out:
    json_decref(v);
    return d;
}

tl_status tl__etcd_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                             size_t *count)
{
    struct etcd_store *es = es_of(s);
    bool ok = true;
    char *pre = tl__etcd_path(es, "d/", key, NULL, NULL);
    char *end = key == NULL && pre != NULL ? tl__etcd_prefix_end(pre) : NULL;
    json_t *req = pre && (key || end) ? tl__etcd_range_req(pre, end, &ok) : NULL, *ans = NULL;
    struct etcd_kv *kvs = NULL;
    struct tl_done **arr = NULL;
    size_t n = 0, an = 0, cap = 0;
    tl_status st;

    *out = NULL;
    *count = 0;
    st = req && ok ? tl__etcd_call(s, "/v3/kv/range", req, TL_ETCD_READ, &ans) : tl__etcd_oom(s);
    if (st == TL_OK)
        st = tl__etcd_kvs_parse(s, ans, &kvs, &n);
    /* etcd answers in key order, which is the keys' order (they follow the same prefix). */
    for (size_t i = 0; i < n && st == TL_OK; i++) {
        struct tl_done *d = done_from(es, &kvs[i]);
        if (d == NULL)
            continue; /* malformed: list the others */
        if (tl__done_array_push(&arr, &an, &cap, d) != TL_OK) {
            tl__done_free(d);
            st = tl__etcd_oom(s);
        }
    }
    if (st == TL_OK) {
        *out = arr;
        *count = an;
    } else {
        tl_done_array_free(arr, an);
    }
    tl__etcd_kvs_free(kvs, n);
    json_decref(req);
    json_decref(ans);
    tl__free(pre);
    tl__free(end);
    return st;
}

/* ---- wait_any ---- */

/*
 * A wait for any candidate to come free: one watch over the prefix (deletions only), from the
 * revision after the last claim-next that found every candidate busy, so that a deletion
 * between that read and the watch is replayed, not missed (a watch that starts at the next
 * revision is in sync at once: no catch-up delay). Deletions of a candidate's record, liveness
 * key, waiter keys or done marker end it; others are skipped. The watch stays open between the
 * core's slices while the candidates are the same and nothing happened.
 */
struct etcd_any {
    struct tl_store *s;
    char **keys; /* the candidates, sorted */
    size_t n;
    bool event;
};

void tl__etcd_any_free(struct etcd_any *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++)
        tl__free(a->keys[i]);
    tl__free(a->keys);
    tl__free(a);
}

static struct etcd_any *any_new(struct tl_store *s, const struct tl_candidates *c)
{
    struct etcd_any *a = tl__calloc(1, sizeof(*a));

    if (a == NULL || (a->keys = tl__calloc(c->nkeys ? c->nkeys : 1, sizeof(char *))) == NULL) {
        tl__free(a);
        return NULL;
    }
    a->s = s;
    for (; a->n < c->nkeys; a->n++) {
        if ((a->keys[a->n] = tl__strdup(c->keys[a->n])) == NULL) {
            tl__etcd_any_free(a);
            return NULL;
        }
    }
    qsort((void *)a->keys, a->n, sizeof(char *), cmp_cstr);
    return a;
}

static bool any_same(const struct etcd_any *a, const struct tl_candidates *c)
{
    if (a == NULL || a->n != c->nkeys)
        return false;
    for (size_t i = 0; i < c->nkeys; i++) {
        const char *k = c->keys[i];
        if (bsearch(&k, (const void *)a->keys, a->n, sizeof(char *), cmp_cstr) == NULL)
            return false;
    }
    return true;
}

/* Whether a deleted key (the whole etcd key) is one a candidate's freedom depends on. */
static bool any_matters(const struct etcd_any *a, const char *ekey)
{
    const struct etcd_store *es = es_of(a->s);
    size_t pl = strlen(es->prefix);

    if (strncmp(ekey, es->prefix, pl) != 0 || strlen(ekey) < pl + 2 || ekey[pl + 1] != '/')
        return false;
    char part = ekey[pl];
    if (part != 'l' && part != 'h' && part != 'd' && part != 'w')
        return false;
    const char *k = ekey + pl + 2;
    char buf[TL_KEY_MAX + 1];
    size_t kl = strcspn(k, ETCD_SEP);
    if (kl > TL_KEY_MAX)
        return false;
    memcpy(buf, k, kl);
    buf[kl] = '\0';
    const char *p = buf;
    return bsearch(&p, (const void *)a->keys, a->n, sizeof(char *), cmp_cstr) != NULL;
}

static bool any_on_watch(void *ud, json_t *result)
{
    struct etcd_any *a = ud;
    json_t *events = json_object_get(result, "events");

    if (json_is_true(json_object_get(result, "canceled")))
        a->event = true; /* compacted: look again */
    for (size_t i = 0; !a->event && i < json_array_size(events); i++) {
        json_t *kv = json_object_get(json_array_get(events, i), "kv");
        const char *b = json_string_value(json_object_get(kv, "key"));
        size_t len = 0;
        char *key = b ? tl__b64_decode(b, &len) : NULL;
        if (key == NULL || strlen(key) != len || any_matters(a, key))
            a->event = true; /* one we cannot read counts too */
        tl__free(key);
    }
    return a->event;
}

tl_status tl__etcd_wait_any(struct tl_store *s, const struct tl_candidates *c, uint32_t timeout_ms)
{
    struct etcd_store *es = es_of(s);
    int64_t until = mono(s) + timeout_ms;
    char err[TL_ERRMSG_SIZE];
    bool stopped = false;
    tl_status st;

    if (c->keys == NULL)
        return tl__store_fail(s, TL_ENOTSUP, "etcd: the etcd store has no labels");
    if (s->deadline_mono_ms != 0 && s->deadline_mono_ms < until)
        until = s->deadline_mono_ms;
    int64_t real_until = tl__real_mono_ms() + (until > mono(s) ? until - mono(s) : 0);
    if (es->any != NULL && any_same(es->any, c) &&
        tl__etcd_watch_is_open(es->cli, ETCD_WATCH_REUSE_MS)) {
        /* The watch of an earlier slice: quiet so far. */
        if ((st = tl__etcd_watch_wait(es->cli, real_until, &stopped, err)) != TL_OK)
            (void)tl__store_fail(s, st, "%s", err);
        if (st != TL_OK || stopped)
            tl__etcd_turn_end(s);
        return st;
    }
    tl__etcd_turn_end(s); /* one watch per client: a line's or an old one */
    if ((es->any = any_new(s, c)) == NULL)
        return tl__etcd_oom(s);
    bool ok = true;
    char *pre = tl__etcd_path(es, "", NULL, NULL, NULL);
    char *end = pre ? tl__etcd_prefix_end(pre) : NULL;
    json_t *create = pre && end ? tl__etcd_range_req(pre, end, &ok) : NULL;
    json_t *f = json_array();
    tl__etcd_push(f, json_string("NOPUT"), &ok);
    tl__etcd_set(create, "filters", f, &ok);
    if (es->next_rev > 0)
        tl__etcd_set(create, "start_revision", tl__etcd_i64s(es->next_rev + 1), &ok);
    es->next_rev = 0;
    es->stats.watches++;
    if (create == NULL || !ok)
        st = tl__etcd_oom(s);
    else if ((st = tl__etcd_watch_open(es->cli, &create, 1, real_until, NULL, any_on_watch, es->any,
                                       &stopped, err)) != TL_OK)
        (void)tl__store_fail(s, st, "%s", err);
    json_decref(create);
    tl__free(pre);
    tl__free(end);
    if (st != TL_OK || stopped)
        tl__etcd_turn_end(s);
    return st;
}
