/*
 * etcd_modes.c -- the etcd store's shared holders and semaphores (store.h, version 5).
 *
 * A key held exclusively keeps the layout of earlier versions: l/KEY is its record (its
 * mod_revision the token), o/KEY the worker, h/KEY the liveness on the holder's lease.
 *
 * A key held shared has one lock record too, l/KEY, whose value is the whole set of holders:
 *
 *   {"worker":..,"node":..,"claimed_at":..,"timeout":..,"task":{..},   the oldest holder, so
 *    "mode":"shared","slots":N,                                         that an older tasklock
 *    "holders":[{"token":"R","worker":..,"node":..,"claimed_at":..,     reads a valid record
 *                "timeout":..,"task":{..},"nonce":".."}, ...]}
 *
 * and each holder has a liveness key of its own, PREFIX s/KEY ETCD_SEP NONCE, on its manager's
 * lease (present = live, as h/KEY for an exclusive holder). Every grant, release, steal and
 * force rewrites l/KEY in a transaction that compares its mod_revision with the one read, so
 * the set changes one step at a time and a claim's admission (no exclusive holder, fewer than
 * N holders) is decided on exactly the set it replaces. A holder's token is the revision of the
 * transaction that added it; since a value cannot hold its own revision, the last holder added
 * has "token":0, meaning l/KEY's mod_revision, and the next write of the set writes it out.
 *
 * h/KEY is kept while the key is shared, on no lease: a tasklock that predates shared holders
 * sees the key held and live (its claim compares l/KEY's absence, its steal h/KEY's absence),
 * so it never takes a key that readers hold; o/KEY is absent, so none of its writes on a
 * holder's behalf can match.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_int.h"

/* ---- the set of holders ---- */

void tl__etcd_group_clear(struct etcd_group *g)
{
    for (size_t i = 0; i < g->n; i++)
        tl__record_clear(&g->h[i].rec);
    tl__free(g->h);
    memset(g, 0, sizeof(*g));
}

char *tl__etcd_shared_live_key(const struct etcd_store *es, const char *key, const char *nonce)
{
    return tl__etcd_path(es, "s/", key, ETCD_SEP, nonce);
}

static int cmp_holder(const void *a, const void *b)
{
    const struct etcd_holder *x = a, *y = b;

    return (x->rec.info.token > y->rec.info.token) - (x->rec.info.token < y->rec.info.token);
}

static bool nonce_ok(const char *n)
{
    size_t len = strlen(n);

    if (len == 0 || len > 32)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
            return false;
    return true;
}

/* One holder of a shared set from its JSON entry; false when malformed. */
static bool entry_parse(const char *key, json_t *e, int64_t l_mod, uint32_t slots,
                        struct etcd_holder *out, bool *oom)
{
    json_t *w = json_object_get(e, "worker"), *n = json_object_get(e, "node");
    json_t *c = json_object_get(e, "claimed_at"), *t = json_object_get(e, "timeout");
    json_t *task = json_object_get(e, "task"), *nonce = json_object_get(e, "nonce");
    int64_t token = 0;

    if (!json_is_object(e) || !json_is_string(w) || !json_is_string(n) || !json_is_integer(c) ||
        !json_is_integer(t) || !json_is_object(task) || !json_is_string(nonce) ||
        json_object_get(e, "token") == NULL || !tl__etcd_i64(e, "token", &token) || token < 0 ||
        token > l_mod || tl__check_id(json_string_value(w), TL_ID_MAX) != NULL ||
        tl__check_id(json_string_value(n), TL_ID_MAX) != NULL || json_integer_value(t) <= 0 ||
        json_integer_value(t) > TL_DURATION_MAX_MS || !nonce_ok(json_string_value(nonce)))
        return false;
    char *task_text = json_dumps(task, JSON_COMPACT);
    struct tl_info *i = &out->rec.info;
    i->key = tl__strdup(key);
    i->worker_id = tl__strdup(json_string_value(w));
    i->node_id = tl__strdup(json_string_value(n));
    i->task_info = task_text ? tl__strdup(task_text) : NULL;
    free(task_text);
    i->token = (uint64_t)(token != 0 ? token : l_mod);
    i->claimed_at_ms = json_integer_value(c);
    i->lock_timeout_ms = (uint32_t)json_integer_value(t);
    i->mode = TL_SHARED;
    i->slots = slots;
    (void)snprintf(out->nonce, sizeof(out->nonce), "%s", json_string_value(nonce));
    if (!i->key || !i->worker_id || !i->node_id || !i->task_info)
        *oom = true;
    return true;
}

tl_status tl__etcd_group_from(struct tl_store *s, const char *key, const struct etcd_kv *l,
                              const struct etcd_kv *h, const struct etcd_kv *sh, size_t nsh,
                              struct etcd_group *g)
{
    const struct etcd_store *es = es_of(s);
    tl_status st = TL_OK;

    memset(g, 0, sizeof(*g));
    if (l == NULL)
        return TL_OK;
    if (!tl__etcd_value_is_shared(l)) {
        char *nonce = NULL;
        if ((g->h = tl__calloc(1, sizeof(*g->h))) == NULL)
            return tl__etcd_oom(s);
        if ((st = tl__etcd_record_from(s, key, l, h, &g->h[0].rec, &nonce)) != TL_OK) {
            tl__free(g->h);
            g->h = NULL;
            return st;
        }
        g->n = 1;
        g->exclusive = true;
        g->h[0].rec.info.mode = TL_EXCLUSIVE;
        g->h[0].live = h;
        (void)snprintf(g->h[0].nonce, sizeof(g->h[0].nonce), "%s", nonce ? nonce : "");
        tl__free(nonce);
        return TL_OK;
    }

    json_t *v = json_loadb(l->value, l->value_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *hs = json_object_get(v, "holders"), *sl = json_object_get(v, "slots");
    size_t n = json_array_size(hs);
    bool oom = false;
    if (!json_is_array(hs) || n == 0 || n > 100000 ||
        (sl != NULL && (!json_is_integer(sl) || json_integer_value(sl) < 0 ||
                        json_integer_value(sl) > (json_int_t)UINT32_MAX))) {
        st = tl__store_fail(s, TL_ESTORE, "etcd: the shared holders of %s are malformed", key);
        goto out;
    }
    g->slots = sl ? (uint32_t)json_integer_value(sl) : 0;
    if ((g->h = tl__calloc(n, sizeof(*g->h))) == NULL) {
        st = tl__etcd_oom(s);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        bool fine = entry_parse(key, json_array_get(hs, i), l->mod, g->slots, &g->h[i], &oom);
        g->n = i + 1;
        if (oom) {
            st = tl__etcd_oom(s);
            goto out;
        }
        if (!fine) {
            st = tl__store_fail(s, TL_ESTORE, "etcd: shared holder %zu of %s is malformed", i + 1,
                                key);
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(g->h[j].nonce, g->h[i].nonce) == 0 ||
                g->h[j].rec.info.token == g->h[i].rec.info.token) {
                st = tl__store_fail(s, TL_ESTORE, "etcd: the shared holders of %s repeat one", key);
                goto out;
            }
        }
        char *lk = tl__etcd_shared_live_key(es, key, g->h[i].nonce);
        if (lk == NULL) {
            st = tl__etcd_oom(s);
            goto out;
        }
        for (size_t j = 0; j < nsh && g->h[i].live == NULL; j++)
            if (strcmp(sh[j].key, lk) == 0)
                g->h[i].live = &sh[j];
        tl__free(lk);
        if (g->h[i].live != NULL) {
            uint32_t t = tl__etcd_live_timeout(g->h[i].live);
            if (t != 0)
                g->h[i].rec.info.lock_timeout_ms = t;
            g->h[i].rec.opaque = tl__asprintf("%llx", (unsigned long long)g->h[i].live->lease);
            if (g->h[i].rec.opaque == NULL) {
                st = tl__etcd_oom(s);
                goto out;
            }
        }
    }
    qsort(g->h, g->n, sizeof(*g->h), cmp_holder);
out:
    json_decref(v);
    if (st != TL_OK)
        tl__etcd_group_clear(g);
    return st;
}

tl_status tl__etcd_group_of(struct tl_store *s, const char *key, const struct etcd_key_state *ks,
                            struct etcd_group *g)
{
    return tl__etcd_group_from(s, key, ks->held ? &ks->l : NULL, ks->live ? &ks->h : NULL, ks->sh,
                               ks->nsh, g);
}

const struct etcd_holder *tl__etcd_group_blocker(const struct etcd_group *g)
{
    return g->n > 0 ? &g->h[0] : NULL; /* an exclusive holder is alone */
}

long tl__etcd_group_find(const struct etcd_group *g, uint64_t token, const char *worker)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->h[i].rec.info.token == token &&
            (worker == NULL || strcmp(g->h[i].rec.info.worker_id, worker) == 0))
            return (long)i;
    return -1;
}

tl_status tl__etcd_holder_judged(struct tl_store *s, const struct etcd_group *g, size_t i,
                                 struct tl_record *out)
{
    tl_status st = tl__record_copy(out, &g->h[i].rec);

    if (st != TL_OK)
        return tl__etcd_oom(s);
    if ((st = tl__etcd_judge(s, out, g->h[i].live)) != TL_OK)
        tl__record_clear(out);
    return st;
}

/* A holder's entry; token 0: the revision of the write that adds it. */
static json_t *entry_json(const char *worker, const char *node, int64_t claimed_at,
                          uint32_t timeout, const char *task_info, const char *nonce, int64_t token)
{
    json_t *task = json_loads(task_info, 0, NULL);

    if (!json_is_object(task)) {
        json_decref(task);
        task = json_object();
    }
    return json_pack("{s:o, s:s, s:s, s:I, s:I, s:o, s:s}", "token",
                     token != 0 ? tl__etcd_i64s(token) : json_integer(0), "worker", worker, "node",
                     node, "claimed_at", (json_int_t)claimed_at, "timeout", (json_int_t)timeout,
                     "task", task, "nonce", nonce);
}

char *tl__etcd_group_value(const struct etcd_group *g, const bool *keep, const struct tl_claim *add,
                           const char *nonce, int64_t at, uint32_t slots, bool *ok)
{
    json_t *hs = json_array();
    char *out = NULL;

    for (size_t i = 0; g != NULL && !g->exclusive && i < g->n; i++) {
        if (keep != NULL && !keep[i])
            continue;
        const struct tl_info *x = &g->h[i].rec.info;
        /* Written out: the last one added had "token":0, read as the record's revision. */
        tl__etcd_push(hs,
                      entry_json(x->worker_id, x->node_id, x->claimed_at_ms, x->lock_timeout_ms,
                                 x->task_info, g->h[i].nonce, (int64_t)x->token),
                      ok);
    }
    if (add != NULL)
        tl__etcd_push(hs,
                      entry_json(add->worker_id, add->node_id, at, add->lock_timeout_ms,
                                 add->task_info, nonce, 0),
                      ok);
    json_t *first = json_array_get(hs, 0);
    if (first == NULL) {
        json_decref(hs);
        return NULL;
    }
    /* The oldest holder's fields at the top: what an older tasklock reads as the holder. */
    json_t *v = json_pack("{s:O, s:O, s:O, s:O, s:O, s:s, s:I, s:o}", "worker",
                          json_object_get(first, "worker"), "node", json_object_get(first, "node"),
                          "claimed_at", json_object_get(first, "claimed_at"), "timeout",
                          json_object_get(first, "timeout"), "task", json_object_get(first, "task"),
                          "mode", "shared", "slots", (json_int_t)slots, "holders", hs);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL; /* hs is v's (or gone) */
    out = text ? tl__strdup(text) : NULL;
    free(text);
    json_decref(v);
    if (out == NULL)
        *ok = false;
    return out;
}

void tl__etcd_group_detail(const struct etcd_group *g, const bool *pick, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < g->n && len < size; i++) {
        if (pick != NULL && !pick[i])
            continue;
        int k = snprintf(buf + len, size - len, "%s%s (token %llu)", len ? ", " : "from ",
                         g->h[i].rec.info.worker_id, (unsigned long long)g->h[i].rec.info.token);
        if (k < 0)
            break;
        len += (size_t)k;
    }
}

/* ---- the holders op ---- */

tl_status tl__etcd_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                           size_t *count)
{
    struct etcd_names k;
    struct etcd_key_state ks = {0};
    struct etcd_group g = {0};
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status st = tl__etcd_names_for(s, key, NULL, &k);

    *out = NULL;
    *count = 0;
    if (st != TL_OK)
        return st;
    if ((st = tl__etcd_read_state(s, &k, &ks)) != TL_OK ||
        (st = tl__etcd_group_of(s, key, &ks, &g)) != TL_OK)
        goto out;
    /* One time-to-live per distinct lease: a manager's holders share one. */
    for (size_t i = 0; i < g.n; i++) {
        struct tl_record *r = tl__record_new();
        if (r == NULL) {
            st = tl__etcd_oom(s);
            goto out;
        }
        const struct etcd_kv *lv = g.h[i].live;
        size_t same = i;
        for (size_t j = 0; lv != NULL && j < i; j++)
            if (g.h[j].live != NULL && g.h[j].live->lease == lv->lease)
                same = j;
        if (same < i) {
            st = tl__record_copy(r, &g.h[i].rec);
            if (st == TL_OK) {
                tl__etcd_judge_at(s, r, true, arr[same]->info.heartbeat_at_ms);
            } else {
                st = tl__etcd_oom(s);
            }
        } else {
            st = tl__etcd_holder_judged(s, &g, i, r);
        }
        if (st != TL_OK) {
            tl__record_free(r);
            goto out;
        }
        r->info.waiting = (uint32_t)ks.nline;
        r->info.holders = (uint32_t)g.n;
        if (tl__record_array_push(&arr, &n, &cap, r) != TL_OK) {
            tl__record_free(r);
            st = tl__etcd_oom(s);
            goto out;
        }
    }
    *out = arr;
    *count = n;
    arr = NULL;
    n = 0;
out:
    tl_info_array_free((struct tl_info **)arr, n);
    tl__etcd_group_clear(&g);
    tl__etcd_state_clear(&ks);
    tl__etcd_names_clear(&k);
    return st;
}

/* ---- the release of a shared holder ---- */

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

/* Not a holder any more: TL_OK if no one holds the token and no one claimed the key since it
 * (or, after a lost answer, our release is in the trail), else TL_ENOTOWNER. */
static tl_status already_released(struct tl_store *s, const struct tl_record *held,
                                  const struct etcd_group *g, bool lost_answer)
{
    struct etcd_kv *kvs = NULL;
    size_t n = 0;
    tl_status st = tl__etcd_events_after(s, held->info.key, (int64_t)held->info.token, &kvs, &n);

    if (st != TL_OK)
        return st;
    bool ours = false, claimed_since = false;
    for (size_t i = 0; i < n; i++) {
        ours = ours || (lost_answer && tl__etcd_event_is_release_of(&kvs[i], held));
        claimed_since = claimed_since || tl__etcd_event_is_grant(&kvs[i]);
    }
    tl__etcd_kvs_free(kvs, n);
    if (ours)
        return TL_OK;
    if (tl__etcd_group_find(g, held->info.token, NULL) >= 0)
        return tl__store_fail(s, TL_ENOTOWNER, "%s is not held by %s with token %llu",
                              held->info.key, held->info.worker_id,
                              (unsigned long long)held->info.token);
    if (claimed_since)
        return tl__store_fail(s, TL_ENOTOWNER, "%s was claimed by someone else after token %llu",
                              held->info.key, (unsigned long long)held->info.token);
    return TL_OK;
}

tl_status tl__etcd_finish_shared(struct tl_store *s, const struct tl_finish *f,
                                 struct tl_finish_result *out)
{
    struct etcd_store *es = es_of(s);
    const struct tl_record *held = f->held;
    struct etcd_names k;
    struct etcd_key_state ks = {0};
    struct etcd_group g = {0};
    bool *keep = NULL, lost_answer = false;
    /* One release in ETCD_TRAIL_CHECK_EVERY counts the trail, to trim it (as etcd_next.c). */
    bool check_trail = ++es->releases % ETCD_TRAIL_CHECK_EVERY == 0;
    int64_t at = now_ms(s), trail = 0;
    char *epre = tl__etcd_path(es, "e/", held->info.key, ETCD_SEP, NULL);
    char *eend = tl__etcd_path(es, "e/", held->info.key, ETCD_SEP_NEXT, NULL);
    char *d = tl__etcd_path(es, "d/", held->info.key, NULL, NULL);
    char *marker = f->done ? marker_value(held, f->summary, at) : NULL;
    tl_status st = tl__etcd_names_for(s, held->info.key, NULL, &k);

    out->next_tried = false; /* the core claims next: a shared holder's set is rewritten */
    if (st != TL_OK)
        goto out;
    if (d == NULL || (f->done && marker == NULL) || epre == NULL || eend == NULL) {
        st = tl__etcd_oom(s);
        goto out;
    }
    for (int attempt = 0; attempt < 50; attempt++) {
        tl__etcd_group_clear(&g);
        tl__etcd_state_clear(&ks);
        tl__free(keep);
        keep = NULL;
        if (attempt > 0) {
            if (s->deadline_mono_ms != 0 && mono(s) >= s->deadline_mono_ms) {
                st = tl__store_fail(s, TL_ETIMEDOUT, "etcd: release of %s: out of time",
                                    held->info.key);
                goto out;
            }
            tl__etcd_contention_pause(s, attempt);
        }
        if ((st = tl__etcd_read_state(s, &k, &ks)) != TL_OK ||
            (st = tl__etcd_group_of(s, held->info.key, &ks, &g)) != TL_OK)
            goto out;
        long i = tl__etcd_group_find(&g, held->info.token, held->info.worker_id);
        if (i < 0 || g.exclusive) {
            st = already_released(s, held, &g, lost_answer);
            goto out;
        }
        if ((keep = tl__calloc(g.n, sizeof(bool))) == NULL) {
            st = tl__etcd_oom(s);
            goto out;
        }
        for (size_t j = 0; j < g.n; j++)
            keep[j] = j != (size_t)i;
        bool ok = true;
        char *lk = tl__etcd_shared_live_key(es, held->info.key, g.h[i].nonce);
        char *value = g.n > 1 ? tl__etcd_group_value(&g, keep, NULL, NULL, 0, g.slots, &ok) : NULL;
        json_t *compare = json_array(), *ops = json_array(), *ans = NULL;
        tl__etcd_push(compare, tl__etcd_cmp(k.l, NULL, "MOD", "EQUAL", ks.l.mod, &ok), &ok);
        tl__etcd_push(ops,
                      tl__etcd_op_event(es, held->info.key,
                                        f->done ? TL_EVENT_DONE : TL_EVENT_RELEASED,
                                        held->info.worker_id, held->info.node_id, held->info.token,
                                        at, f->summary, 0, &ok),
                      &ok);
        if (f->done)
            tl__etcd_push(ops, tl__etcd_op_put(d, marker, 0, &ok), &ok);
        if (g.n > 1) {
            tl__etcd_push(ops, value ? tl__etcd_op_put(k.l, value, 0, &ok) : NULL, &ok);
            tl__etcd_push(ops, lk ? tl__etcd_op_delete(lk, NULL, &ok) : NULL, &ok);
        } else {
            tl__etcd_push(ops, tl__etcd_op_delete(k.l, NULL, &ok), &ok);
            tl__etcd_push(ops, tl__etcd_op_delete(k.o, NULL, &ok), &ok);
            tl__etcd_push(ops, tl__etcd_op_delete(k.h, NULL, &ok), &ok);
            tl__etcd_push(ops, tl__etcd_op_delete(k.s, k.s_end, &ok), &ok);
        }
        size_t count_at = json_array_size(ops);
        if (check_trail) {
            json_t *r = tl__etcd_range_req(epre, eend, &ok);
            tl__etcd_set(r, "count_only", json_true(), &ok);
            tl__etcd_push(ops, tl__etcd_op_range(r, &ok), &ok);
        }
        tl__free(lk);
        tl__free(value);
        st = tl__etcd_txn(s, compare, ops, NULL, ok, TL_ETCD_WRITE, &ans);
        bool succeeded = st == TL_OK && tl__etcd_txn_succeeded(ans);
        if (succeeded && check_trail)
            (void)tl__etcd_i64(tl__etcd_txn_response(ans, count_at, "response_range"), "count",
                               &trail);
        json_decref(ans);
        if (succeeded) {
            if (trail > 0)
                tl__etcd_trim_history(s, held->info.key, trail);
            goto out;
        }
        if (st != TL_OK && !tl__etcd_unsure(es))
            goto out;
        lost_answer = lost_answer || st != TL_OK;
        /* The set changed under us (another holder came or went), or the answer was lost. */
    }
    st = tl__store_fail(s, TL_ESTORE, "etcd: release of %s: no clear answer after 50 attempts",
                        held->info.key);
out:
    tl__free(keep);
    tl__free(epre);
    tl__free(eend);
    tl__free(d);
    tl__free(marker);
    tl__etcd_group_clear(&g);
    tl__etcd_state_clear(&ks);
    tl__etcd_names_clear(&k);
    return st;
}

void tl__etcd_contention_pause(struct tl_store *s, int attempt)
{
    char hex[8];
    uint32_t cap = attempt >= 6 ? 64u : 1u << attempt;

    tl__etcd_random_hex(hex, 2);
    uint32_t ms = 1 + (uint32_t)strtoul(hex, NULL, 16) % cap;
    if (s->deadline_mono_ms != 0) {
        int64_t left = s->deadline_mono_ms - mono(s);
        if (left <= 0)
            return;
        if ((int64_t)ms > left)
            ms = (uint32_t)left;
    }
    tl__real_sleep_ms(ms);
}
