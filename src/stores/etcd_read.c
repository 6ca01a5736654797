/*
 * etcd_read.c -- the etcd store's reading ops (inspect, list, history, the line's waiters) and
 * its waiting (wait_turn, wait, leave): watches from the revision a read saw (see etcd.c).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "etcd_int.h"

/* ---- reading ---- */

tl_status tl__etcd_inspect(struct tl_store *s, const char *key, struct tl_record *out, bool *found)
{
    struct etcd_names k;
    struct etcd_key_state ks = {0};
    struct etcd_group g = {0};
    tl_status st = tl__etcd_names_for(s, key, NULL, &k);

    *found = false;
    if (st != TL_OK)
        return st;
    if ((st = tl__etcd_read_state(s, &k, &ks)) != TL_OK || !ks.held)
        goto out;
    /* The holder a newcomer waits for first, with the count of them all. */
    if ((st = tl__etcd_group_of(s, key, &ks, &g)) != TL_OK ||
        (st = tl__etcd_holder_judged(s, &g, 0, out)) != TL_OK)
        goto out;
    out->info.waiting = (uint32_t)ks.nline;
    out->info.holders = (uint32_t)g.n;
    *found = true;
out:
    tl__etcd_group_clear(&g);
    tl__etcd_state_clear(&ks);
    tl__etcd_names_clear(&k);
    return st;
}

/* A range over everything under PREFIX part, as a txn op. */
static json_t *op_prefix(const struct etcd_store *es, const char *part, bool keys_only, bool *ok)
{
    char *pre = tl__etcd_path(es, part, NULL, NULL, NULL),
         *end = pre ? tl__etcd_prefix_end(pre) : NULL;
    json_t *req = pre && end ? tl__etcd_range_req(pre, end, ok) : NULL;

    if (req != NULL && keys_only)
        tl__etcd_set(req, "keys_only", json_true(), ok);
    tl__free(pre);
    tl__free(end);
    if (req == NULL)
        *ok = false;
    return req ? tl__etcd_op_range(req, ok) : NULL;
}

static int cmp_record_key(const void *a, const void *b)
{
    const struct tl_record *x = *(const struct tl_record *const *)a;
    const struct tl_record *y = *(const struct tl_record *const *)b;

    int c = strcmp(x->info.key, y->info.key);

    return c != 0 ? c : (x->info.token > y->info.token) - (x->info.token < y->info.token);
}

tl_status tl__etcd_list(struct tl_store *s, struct tl_record ***out, size_t *count)
{
    struct etcd_store *es = es_of(s);
    bool ok = true;
    json_t *ops = json_array(), *ans = NULL;
    struct etcd_kv *ls = NULL, *hs = NULL, *ws = NULL, *ss = NULL;
    size_t nl = 0, nh = 0, nw = 0, ns = 0, n = 0, cap = 0;
    struct tl_record **arr = NULL;
    size_t lp = strlen(es->prefix) + 2;
    struct {
        int64_t id, beat;
    } *leases = NULL;
    size_t nleases = 0;
    tl_status st;

    *out = NULL;
    *count = 0;
    tl__etcd_push(ops, op_prefix(es, "l/", false, &ok), &ok);
    tl__etcd_push(ops, op_prefix(es, "h/", false, &ok), &ok);
    tl__etcd_push(ops, op_prefix(es, "w/", true, &ok), &ok);
    tl__etcd_push(ops, op_prefix(es, "s/", false, &ok), &ok);
    if ((st = tl__etcd_txn(s, NULL, ops, NULL, ok, TL_ETCD_READ, &ans)) != TL_OK)
        goto out;
    if ((st = tl__etcd_kvs_parse(s, tl__etcd_txn_response(ans, 0, "response_range"), &ls, &nl)) !=
            TL_OK ||
        (st = tl__etcd_kvs_parse(s, tl__etcd_txn_response(ans, 1, "response_range"), &hs, &nh)) !=
            TL_OK ||
        (st = tl__etcd_kvs_parse(s, tl__etcd_txn_response(ans, 2, "response_range"), &ws, &nw)) !=
            TL_OK ||
        (st = tl__etcd_kvs_parse(s, tl__etcd_txn_response(ans, 3, "response_range"), &ss, &ns)) !=
            TL_OK)
        goto out;
    /* One time-to-live per distinct lease, not per lock: a manager's locks share one. */
    leases = tl__calloc(nh + ns ? nh + ns : 1, sizeof(*leases));
    if (leases == NULL) {
        st = tl__etcd_oom(s);
        goto out;
    }
    for (size_t j = 0; j < nh + ns; j++) {
        int64_t id = j < nh ? hs[j].lease : ss[j - nh].lease;
        size_t x = 0;
        while (x < nleases && leases[x].id != id)
            x++;
        if (x < nleases || id == 0)
            continue; /* known, or the no-lease h/KEY of a shared key */
        bool alive = true;
        leases[nleases].id = id;
        if ((st = tl__etcd_lease_beat(s, id, &leases[nleases].beat, &alive)) != TL_OK)
            goto out;
        nleases++;
    }
    /* The three ranges come sorted by key, and their keys sort alike (the separator sorts
     * below every character a key may have): one walk over them. */
    size_t jh = 0, jw = 0, js = 0;
    for (size_t i = 0; i < nl; i++) {
        const char *key = ls[i].key + (strlen(ls[i].key) >= lp ? lp : 0);
        size_t klen = strlen(key);
        const struct etcd_kv *h = NULL;
        while (jh < nh && strcmp(hs[jh].key + (strlen(hs[jh].key) >= lp ? lp : 0), key) < 0)
            jh++;
        if (jh < nh && strcmp(hs[jh].key + (strlen(hs[jh].key) >= lp ? lp : 0), key) == 0)
            h = &hs[jh];
        uint32_t waiting = 0;
        for (; jw < nw; jw++) {
            const char *wk = ws[jw].key + (strlen(ws[jw].key) >= lp ? lp : 0);
            size_t wl = strcspn(wk, ETCD_SEP);
            int c = strncmp(wk, key, wl < klen ? wl : klen);
            if (c == 0)
                c = wl < klen ? -1 : wl > klen ? 1 : 0;
            if (c > 0)
                break;
            waiting += c == 0;
        }
        /* The shared holders' liveness keys of this key, PREFIX s/KEY ETCD_SEP NONCE: sorted
         * alike too, so a window of them. */
        char sp[TL_KEY_MAX + 2];
        (void)snprintf(sp, sizeof(sp), "%s%s", key, ETCD_SEP);
        size_t spl = strlen(sp), ks_n = 0;
        while (js < ns && strcmp(ss[js].key + (strlen(ss[js].key) >= lp ? lp : 0), sp) < 0)
            js++;
        while (js + ks_n < ns && strlen(ss[js + ks_n].key) >= lp &&
               strncmp(ss[js + ks_n].key + lp, sp, spl) == 0)
            ks_n++;
        struct etcd_group g;
        if ((st = tl__etcd_group_from(s, key, &ls[i], h, ss + js, ks_n, &g)) != TL_OK) {
            if (st == TL_ENOMEM)
                goto out;
            st = TL_OK;
            continue; /* a malformed record: list the others */
        }
        for (size_t x = 0; x < g.n; x++) {
            struct tl_record *r = tl__record_new();
            if (r == NULL || tl__record_copy(r, &g.h[x].rec) != TL_OK) {
                tl__free(r);
                tl__etcd_group_clear(&g);
                st = tl__etcd_oom(s);
                goto out;
            }
            const struct etcd_kv *lv = g.h[x].live;
            int64_t beat = 0;
            for (size_t y = 0; lv != NULL && y < nleases; y++)
                if (leases[y].id == lv->lease)
                    beat = leases[y].beat;
            tl__etcd_judge_at(s, r, lv != NULL, beat);
            r->info.waiting = waiting;
            r->info.holders = (uint32_t)g.n;
            if (tl__record_array_push(&arr, &n, &cap, r) != TL_OK) {
                tl__record_free(r);
                tl__etcd_group_clear(&g);
                st = tl__etcd_oom(s);
                goto out;
            }
        }
        tl__etcd_group_clear(&g);
    }
    if (n > 1)
        qsort(arr, n, sizeof(struct tl_record *), cmp_record_key);
    *out = arr;
    *count = n;
    arr = NULL;
    n = 0;
out:
    tl__free(leases);
    for (size_t i = 0; i < n; i++)
        tl__record_free(arr[i]);
    tl__free(arr);
    tl__etcd_kvs_free(ls, nl);
    tl__etcd_kvs_free(hs, nh);
    tl__etcd_kvs_free(ws, nw);
    tl__etcd_kvs_free(ss, ns);
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

/* An event from its kv. A value that is not a tasklock event (a kind this version does not
 * know, a missing field) is a clear error, not a hole in the trail. */
static tl_status event_from(struct tl_store *s, const struct etcd_kv *e, struct tl_event **out,
                            int *order)
{
    const struct etcd_store *es = es_of(s);
    json_t *v = json_loadb(e->value, e->value_len, 0, NULL);
    const char *kind = json_string_value(json_object_get(v, "kind"));
    const char *w = json_string_value(json_object_get(v, "worker"));
    const char *n = json_string_value(json_object_get(v, "node"));
    json_t *at = json_object_get(v, "at"), *o = json_object_get(v, "order");
    json_t *d = json_object_get(v, "detail");
    struct tl_event *ev = NULL;
    int64_t token = 0;
    size_t lp = strlen(es->prefix) + 2;
    const char *name = strlen(e->key) > lp ? e->key + lp : e->key;
    const char *sep = strchr(name, ETCD_SEP[0]);
    tl_event_kind k;
    tl_status st = TL_OK;

    *out = NULL;
    bool known = kind != NULL && tl__event_kind_from_name(kind, &k);
    if (!known || w == NULL || n == NULL || !json_is_integer(at) || sep == NULL ||
        !tl__etcd_i64(v, "token", &token) || (d != NULL && !json_is_string(d))) {
        int klen = sep ? (int)(sep - name) : (int)strcspn(name, ETCD_SEP);
        char what[64];
        if (kind != NULL && !known)
            (void)snprintf(what, sizeof(what), "unknown kind \"%.40s\"", kind);
        else
            (void)snprintf(what, sizeof(what), "%s", kind ? "a field missing or bad" : "no kind");
        st = tl__store_fail(s, TL_ESTORE,
                            "etcd: an event of %.*s in the audit trail is not a tasklock event "
                            "(%s): %.120s",
                            klen > 200 ? 200 : klen, name, what, e->value);
        goto out;
    }
    if ((ev = tl__event_new()) == NULL) {
        st = tl__etcd_oom(s);
        goto out;
    }
    ev->kind = k;
    ev->at_ms = json_integer_value(at);
    ev->token = token != 0 ? (uint64_t)token : (uint64_t)e->create;
    ev->key = tl__strndup(name, (size_t)(sep - name));
    ev->worker_id = tl__strdup(w);
    ev->node_id = tl__strdup(n);
    ev->detail = json_is_string(d) ? tl__strdup(json_string_value(d)) : NULL;
    *order = json_is_integer(o) ? (int)json_integer_value(o) : 0;
    if (!ev->key || !ev->worker_id || !ev->node_id || (json_is_string(d) && !ev->detail)) {
        tl__event_free(ev);
        ev = NULL;
        st = tl__etcd_oom(s);
    }
out:
    *out = ev;
    json_decref(v);
    return st;
}

tl_status tl__etcd_history(struct tl_store *s, const char *key, size_t limit,
                           struct tl_event ***out, size_t *count)
{
    struct etcd_store *es = es_of(s);
    bool ok = true;
    char *pre = key ? tl__etcd_path(es, "e/", key, ETCD_SEP, NULL)
                    : tl__etcd_path(es, "e/", NULL, NULL, NULL);
    char *end = key ? tl__etcd_path(es, "e/", key, ETCD_SEP_NEXT, NULL)
                    : (pre ? tl__etcd_prefix_end(pre) : NULL);
    json_t *req = pre && end ? tl__etcd_range_req(pre, end, &ok) : NULL, *ans = NULL;
    struct etcd_kv *kvs = NULL;
    size_t n = 0;
    struct ev_sort *tmp = NULL;
    tl_status st;

    *out = NULL;
    *count = 0;
    if (req == NULL) {
        st = tl__etcd_oom(s);
        goto out;
    }
    tl__etcd_set(req, "sort_target", json_string("CREATE"), &ok);
    tl__etcd_set(req, "sort_order", json_string("DESCEND"), &ok);
    if (limit > 0)
        tl__etcd_set(req, "limit", tl__etcd_i64s((int64_t)limit), &ok);
    if (!ok) {
        st = tl__etcd_oom(s);
        goto out;
    }
    if ((st = tl__etcd_call(s, "/v3/kv/range", req, TL_ETCD_READ, &ans)) != TL_OK ||
        (st = tl__etcd_kvs_parse(s, ans, &kvs, &n)) != TL_OK)
        goto out;
    tmp = tl__calloc(n ? n : 1, sizeof(*tmp));
    if (tmp == NULL) {
        st = tl__etcd_oom(s);
        goto out;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int order = 0;
        struct tl_event *ev = NULL;
        if ((st = event_from(s, &kvs[i], &ev, &order)) != TL_OK) {
            for (size_t j = 0; j < m; j++)
                tl__event_free(tmp[j].ev);
            goto out;
        }
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
            st = tl__etcd_oom(s);
            goto out;
        }
    }
    *out = arr;
    *count = an;
out:
    tl__free(tmp);
    tl__etcd_kvs_free(kvs, n);
    json_decref(req);
    json_decref(ans);
    tl__free(pre);
    tl__free(end);
    return st;
}

/* ---- waiting ---- */

/*
 * A wait: read the key, decide whether the caller's turn has come, else watch the keys whose
 * deletion could bring it (the head: the lock record, and the liveness key when it may steal;
 * any other waiter: its predecessor; every waiter: its own place, whose lease may expire).
 *
 * The watch starts at the current revision, not at the revision of the read: etcd serves a watch
 * that starts in the past from a catch-up loop that runs every 100 ms, which would add up to
 * 100 ms to every hand-over on a busy cluster. So the key is read again once the watch is in
 * place (on_created): a deletion before that is seen by the read, one after it by the watch.
 *
 * A waiter's watch stays open between its calls of wait_turn (the core calls it in slices, as
 * short as 100 ms when it can be cancelled): a slice with the watch open and quiet costs no
 * request at all. The claim that wins, a leave, or close ends it.
 */
/* One key (or range) to watch: for deletions, or for every change (`puts`: a shared key's set
 * of holders is rewritten as holders come and go). */
struct watch_spec {
    char *key, *end;
    bool puts;
};

struct etcd_turn {
    struct tl_store *s;
    struct etcd_names k;
    char *key;
    char *waiter_id; /* NULL: a plain wait for the key's release (no line) */
    bool may_steal;
    bool shared; /* the waiter's claim: shared, of `slots` */
    uint32_t slots;
    bool woken;                   /* the caller's turn has come (or, plain: the key was released) */
    int64_t free_rev;             /* woken as the head of a free key: the revision that showed it */
    bool event;                   /* a watched key was deleted */
    struct watch_spec watched[3]; /* what the watch in place is for */
    size_t nwatched;
};

static void specs_free(struct watch_spec *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tl__free(w[i].key);
        tl__free(w[i].end);
        w[i].key = w[i].end = NULL;
    }
}

static void turn_forget(struct etcd_turn *t)
{
    specs_free(t->watched, t->nwatched);
    t->nwatched = 0;
}

static void turn_free(struct etcd_turn *t)
{
    if (t == NULL)
        return;
    turn_forget(t);
    tl__etcd_names_clear(&t->k);
    tl__free(t->key);
    tl__free(t->waiter_id);
    tl__free(t);
}

void tl__etcd_turn_end(struct tl_store *s)
{
    struct etcd_store *es = es_of(s);

    if (es->cli != NULL)
        tl__etcd_watch_close(es->cli);
    turn_free(es->turn);
    es->turn = NULL;
    tl__etcd_any_free(es->any);
    es->any = NULL;
}

static struct etcd_turn *turn_new(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct etcd_turn *t = tl__calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->s = s;
    t->key = tl__strdup(key);
    t->waiter_id = waiter_id ? tl__strdup(waiter_id) : NULL;
    if (t->key == NULL || (waiter_id != NULL && t->waiter_id == NULL) ||
        tl__etcd_names_for(s, key, waiter_id, &t->k) != TL_OK) {
        turn_free(t);
        return NULL;
    }
    return t;
}

/* Whether the holders of `ks` admit the waiter's claim (the head's turn has come). An upgrader
 * (its value names the token it converts) is admitted when no other holder counts, or when it
 * holds nothing any more (its conversion then answers TL_ELOST). */
static tl_status admitted(struct etcd_turn *t, const struct etcd_key_state *ks, bool *yes)
{
    struct etcd_group g = {0};
    struct etcd_waiter_info wi;
    size_t counted = 0;
    bool mine = false;
    tl_status st;

    *yes = !ks->held;
    if (!ks->held)
        return TL_OK;
    if (!tl__etcd_waiter_parse(&ks->line[0].kv, &wi))
        return tl__etcd_oom(t->s);
    tl__free(wi.holding);
    if ((st = tl__etcd_group_of(t->s, t->key, ks, &g)) != TL_OK)
        return st;
    for (size_t i = 0; i < g.n; i++) {
        if (wi.upgrading != 0 && !g.exclusive && g.h[i].rec.info.token == wi.upgrading) {
            mine = true;
            continue;
        }
        counted += g.h[i].live != NULL || !t->may_steal;
    }
    if (wi.upgrading != 0)
        *yes = !mine || counted == 0;
    else /* a mismatch of slots counts as admitted: the claim answers it */
        *yes = tl__admit(t->shared, t->slots, counted, g.exclusive, g.slots) != TL_ADMIT_NO;
    tl__etcd_group_clear(&g);
    return TL_OK;
}

/* Reads the key: sets t->woken, or the keys to watch in w/n (copies). */
static tl_status plan(struct etcd_turn *t, struct watch_spec w[3], size_t *n)
{
    struct etcd_key_state ks = {0};
    struct {
        const char *key, *end;
        bool puts;
    } want[3];
    size_t m = 0;
    tl_status st = tl__etcd_read_state(t->s, &t->k, &ks);

    *n = 0;
    if (st != TL_OK)
        return st;
    t->free_rev = 0;
    if (t->waiter_id == NULL) {
        /* Free, or stale: worth another attempt. Every change of the record is watched: a
         * shared key's set is rewritten as holders come and go, and a downgrade rewrites an
         * exclusive one (shared claims may then be admitted). */
        t->woken = !ks.held || (!ks.shared && !ks.live);
        want[m].key = t->k.l, want[m].end = NULL, want[m++].puts = true;
        if (!ks.shared)
            want[m].key = t->k.h, want[m].end = NULL, want[m++].puts = false;
    } else {
        long mine = tl__etcd_line_index(&ks, t->waiter_id);
        bool yes = false;
        if (mine == 0 && (st = admitted(t, &ks, &yes)) != TL_OK) {
            tl__etcd_state_clear(&ks);
            return st;
        }
        /* Not in line (its claim puts it back), or the head of a key whose holders admit its
         * claim (free; or shared holders only, with a slot left, for a shared claim; or stale
         * ones, when it may steal). */
        t->woken = mine < 0 || (mine == 0 && yes);
        t->free_rev = mine == 0 && !ks.held ? ks.rev : 0;
        want[m].key = t->k.waiter, want[m].end = NULL, want[m++].puts = false;
        if (mine == 0) {
            /* Puts too: the set of a shared key changes by rewrites, a downgrade rewrites an
             * exclusive record (and an upgrader waits for its set to shrink to itself). */
            want[m].key = t->k.l, want[m].end = NULL, want[m++].puts = true;
            if (t->may_steal && ks.shared)
                want[m].key = t->k.s, want[m].end = t->k.s_end, want[m++].puts = false;
            else if (t->may_steal)
                want[m].key = t->k.h, want[m].end = NULL, want[m++].puts = false;
        } else if (mine > 0) {
            want[m].key = ks.line[mine - 1].kv.key, want[m].end = NULL, want[m++].puts = false;
        }
    }
    for (size_t i = 0; !t->woken && i < m; i++) {
        w[i].key = tl__strdup(want[i].key);
        w[i].end = want[i].end ? tl__strdup(want[i].end) : NULL;
        w[i].puts = want[i].puts;
        *n = i + 1;
        if (w[i].key == NULL || (want[i].end != NULL && w[i].end == NULL)) {
            specs_free(w, *n);
            *n = 0;
            st = tl__etcd_oom(t->s);
            break;
        }
    }
    tl__etcd_state_clear(&ks);
    return st;
}

static bool spec_same(const struct watch_spec *a, const struct watch_spec *b)
{
    return strcmp(a->key, b->key) == 0 && a->puts == b->puts &&
           (a->end == NULL ? b->end == NULL : b->end != NULL && strcmp(a->end, b->end) == 0);
}

/* Once the watch is in place: read again; end the watch if the turn came, or if what should
 * be watched has changed meanwhile. */
static bool on_created(void *ud)
{
    struct etcd_turn *t = ud;
    struct watch_spec w[3];
    size_t n = 0;

    if (plan(t, w, &n) != TL_OK || t->woken)
        return true;
    bool same = n == t->nwatched;
    for (size_t i = 0; same && i < n; i++)
        same = spec_same(&w[i], &t->watched[i]);
    specs_free(w, n);
    return !same;
}

static bool on_watch(void *ud, json_t *result)
{
    struct etcd_turn *t = ud;
    json_t *events = json_object_get(result, "events");

    /* "created" answers carry no events; a canceled watch ends it too. */
    if ((json_is_array(events) && json_array_size(events) > 0) ||
        json_is_true(json_object_get(result, "canceled")))
        t->event = true;
    return t->event;
}

/* Waits until the turn comes (t->woken) or `until` (store mono) passes; a quiet watch is left
 * open. */
static tl_status wait_for(struct etcd_turn *t, int64_t until)
{
    struct tl_store *s = t->s;
    struct tl_etcd *cli = es_of(s)->cli;
    char err[TL_ERRMSG_SIZE];
    tl_status st = TL_OK;

    while (mono(s) < until) {
        bool stopped = false;
        int64_t real_until = tl__real_mono_ms() + (until - mono(s));
        if (tl__etcd_watch_is_open(cli, ETCD_WATCH_REUSE_MS)) {
            /* The watch of an earlier slice: quiet so far, so nothing it watches has changed. */
            if ((st = tl__etcd_watch_wait(cli, real_until, &stopped, err)) != TL_OK) {
                (void)tl__store_fail(s, st, "%s", err);
                break;
            }
            if (!stopped)
                break; /* still quiet: our time is up */
            continue;  /* something was deleted: look again */
        }
        tl__etcd_watch_close(cli);
        turn_forget(t);
        if ((st = plan(t, t->watched, &t->nwatched)) != TL_OK || t->woken)
            break;
        json_t *creates[3] = {0};
        bool ok = true;
        for (size_t i = 0; i < t->nwatched; i++) {
            creates[i] = tl__etcd_range_req(t->watched[i].key, t->watched[i].end, &ok);
            if (t->watched[i].puts)
                continue;
            json_t *f = json_array();
            tl__etcd_push(f, json_string("NOPUT"), &ok);
            tl__etcd_set(creates[i], "filters", f, &ok);
        }
        t->event = false;
        es_of(s)->stats.watches++;
        if (!ok)
            st = tl__etcd_oom(s);
        else if ((st = tl__etcd_watch_open(cli, creates, t->nwatched, real_until, on_created,
                                           on_watch, t, &stopped, err)) != TL_OK)
            (void)tl__store_fail(s, st, "%s", err);
        for (size_t i = 0; i < 3; i++)
            json_decref(creates[i]);
        if (st != TL_OK || t->woken || !stopped)
            break;
    }
    return st;
}

tl_status tl__etcd_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                             uint32_t timeout_ms, bool *woken)
{
    struct etcd_store *es = es_of(s);
    int64_t until = mono(s) + timeout_ms;

    *woken = false;
    if (s->deadline_mono_ms != 0 && s->deadline_mono_ms < until)
        until = s->deadline_mono_ms;
    struct etcd_turn *t = es->turn;
    if (t != NULL && (strcmp(t->key, key) != 0 || strcmp(t->waiter_id, waiter_id) != 0)) {
        tl__etcd_turn_end(s);
        t = NULL;
    }
    if (t == NULL) {
        tl__etcd_turn_end(s); /* a claim-next's wait may have the watch */
        if ((t = es->turn = turn_new(s, key, waiter_id)) == NULL)
            return tl__etcd_oom(s);
    }
    bool known = es->wait_key != NULL && strcmp(es->wait_key, key) == 0 &&
                 strcmp(es->wait_id, waiter_id) == 0;
    t->may_steal = known && es->wait_mode == TL_CLAIM_STEAL;
    t->shared = known && es->wait_shared;
    t->slots = known ? es->wait_slots : 0;
    t->woken = false;
    tl_status st = wait_for(t, until);
    *woken = t->woken;
    es->turn_rev = t->woken ? t->free_rev : 0;
    if (st != TL_OK || t->woken)
        tl__etcd_turn_end(s);
    return st;
}

tl_status tl__etcd_wait(struct tl_store *s, const char *key, uint32_t timeout_ms)
{
    int64_t until = mono(s) + timeout_ms;

    if (s->deadline_mono_ms != 0 && s->deadline_mono_ms < until)
        until = s->deadline_mono_ms;
    tl__etcd_turn_end(s); /* one watch per client */
    struct etcd_turn *t = turn_new(s, key, NULL);
    if (t == NULL)
        return tl__etcd_oom(s);
    tl_status st = wait_for(t, until);
    tl__etcd_watch_close(es_of(s)->cli);
    turn_free(t);
    return st;
}

tl_status tl__etcd_leave(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct etcd_store *es = es_of(s);
    struct etcd_names k;
    tl_status st = tl__etcd_names_for(s, key, waiter_id, &k);

    if (st != TL_OK)
        return st;
    for (int attempt = 0; attempt < 5; attempt++) {
        bool ok = true;
        json_t *body = tl__etcd_range_req(k.waiter, NULL, &ok), *ans = NULL;
        st = ok ? tl__etcd_call(s, "/v3/kv/deleterange", body, TL_ETCD_WRITE, &ans)
                : tl__etcd_oom(s);
        json_decref(body);
        json_decref(ans);
        if (st == TL_OK || !tl__etcd_unsure(es))
            break;
    }
    if (es->wait_key != NULL && strcmp(es->wait_id, waiter_id) == 0) {
        tl__free(es->wait_key);
        es->wait_key = NULL;
    }
    if (es->turn != NULL && strcmp(es->turn->waiter_id, waiter_id) == 0)
        tl__etcd_turn_end(s);
    tl__etcd_names_clear(&k);
    return st;
}

/* A waiter of `key` from its kv (NULL: malformed, skipped; *oom on a failed allocation). With
 * `beat_known`, its heartbeat is `beat`, else its lease's is read (one request). */
static struct tl_waiter *waiter_from(struct tl_store *s, const char *key, const char *id,
                                     int32_t priority, const struct etcd_kv *w, bool beat_known,
                                     int64_t beat, bool *oom)
{
    json_t *v = json_loadb(w->value, w->value_len, 0, NULL);
    const char *wk = json_string_value(json_object_get(v, "worker"));
    const char *nd = json_string_value(json_object_get(v, "node"));
    json_t *since = json_object_get(v, "since"), *to = json_object_get(v, "timeout");
    json_t *h = json_object_get(v, "holding");
    struct tl_waiter *x = NULL;

    if (wk == NULL || nd == NULL)
        goto out; /* malformed: not a waiter we can show */
    if ((x = tl__waiter_new()) == NULL) {
        *oom = true;
        goto out;
    }
    x->key = tl__strdup(key);
    x->waiter_id = tl__strdup(id);
    x->worker_id = tl__strdup(wk);
    x->node_id = tl__strdup(nd);
    /* Written before the wait-for graph, or holding nothing: "". */
    x->holding = tl__strdup(json_is_string(h) ? json_string_value(h) : "");
    x->priority = priority;
    x->seq = (uint64_t)w->create;
    x->since_ms = json_is_integer(since) ? json_integer_value(since) : 0;
    x->timeout_ms = json_is_integer(to) && json_integer_value(to) > 0 &&
                            json_integer_value(to) <= TL_DURATION_MAX_MS
                        ? (uint32_t)json_integer_value(to)
                        : 0;
    if (!beat_known) {
        bool alive = true;
        /* Present means alive: etcd deletes a waiter whose lease expired. */
        if (tl__etcd_lease_beat(s, w->lease, &beat, &alive) != TL_OK)
            beat = now_ms(s);
    }
    x->heartbeat_at_ms = beat > x->since_ms ? beat : x->since_ms;
    if (!x->key || !x->waiter_id || !x->worker_id || !x->node_id || !x->holding) {
        tl__waiter_free(x);
        x = NULL;
        *oom = true;
    }
out:
    json_decref(v);
    return x;
}

struct line_entry {
    struct etcd_kv *kv;
    const char *key; /* in a copy of the key's name */
    const char *id;
    int32_t priority;
};

static int cmp_line_entry(const void *a, const void *b)
{
    const struct line_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    if (c != 0)
        return c;
    if (tl__waiter_before(x->priority, (uint64_t)x->kv->create, y->priority,
                          (uint64_t)y->kv->create))
        return -1;
    return tl__waiter_before(y->priority, (uint64_t)y->kv->create, x->priority,
                             (uint64_t)x->kv->create);
}

/*
 * Every waiter of the store (the wait-for graph's read): one range over PREFIX w/, in key and
 * line order. A waiter etcd still has is live (its lease has not expired), so its lease is not
 * looked up: its heartbeat is given as the time of the read.
 */
static tl_status all_waiters(struct tl_store *s, struct tl_waiter ***out, size_t *count)
{
    struct etcd_store *es = es_of(s);
    bool ok = true, oom = false;
    char *pre = tl__etcd_path(es, "w/", NULL, NULL, NULL),
         *end = pre ? tl__etcd_prefix_end(pre) : NULL;
    json_t *req = pre && end ? tl__etcd_range_req(pre, end, &ok) : NULL, *ans = NULL;
    struct etcd_kv *kvs = NULL;
    struct line_entry *ents = NULL;
    size_t n = 0, m = 0, lp = pre ? strlen(pre) : 0;
    struct tl_waiter **arr = NULL;
    size_t an = 0, cap = 0;
    tl_status st;

    if (req == NULL || !ok) {
        st = tl__etcd_oom(s);
        goto out;
    }
    if ((st = tl__etcd_call(s, "/v3/kv/range", req, TL_ETCD_READ, &ans)) != TL_OK ||
        (st = tl__etcd_kvs_parse(s, ans, &kvs, &n)) != TL_OK)
        goto out;
    int64_t now = now_ms(s);
    if ((ents = tl__calloc(n ? n : 1, sizeof(*ents))) == NULL) {
        st = tl__etcd_oom(s);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        /* PREFIX w/ KEY ETCD_SEP ID: the key is cut at the separator, in place. */
        char *name = strlen(kvs[i].key) > lp ? kvs[i].key + lp : NULL;
        char *sep = name ? strchr(name, ETCD_SEP[0]) : NULL;
        if (sep == NULL || sep == name || sep[1] == '\0')
            continue;
        *sep = '\0';
        ents[m++] = (struct line_entry){.kv = &kvs[i],
                                        .key = name,
                                        .id = sep + 1,
                                        .priority = tl__etcd_waiter_priority(&kvs[i])};
    }
    qsort(ents, m, sizeof(*ents), cmp_line_entry);
    for (size_t i = 0; i < m && !oom; i++) {
        struct tl_waiter *x =
            waiter_from(s, ents[i].key, ents[i].id, ents[i].priority, ents[i].kv, true, now, &oom);
        if (x != NULL && tl__waiter_array_push(&arr, &an, &cap, x) != TL_OK) {
            tl__waiter_free(x);
            oom = true;
        }
    }
    if (oom) {
        st = tl__etcd_oom(s);
        goto out;
    }
    *out = arr;
    *count = an;
    arr = NULL;
    an = 0;
out:
    tl_waiter_array_free(arr, an);
    tl__free(ents);
    tl__etcd_kvs_free(kvs, n);
    json_decref(req);
    json_decref(ans);
    tl__free(pre);
    tl__free(end);
    return st;
}

tl_status tl__etcd_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                           size_t *count)
{
    struct etcd_names k;
    struct etcd_key_state ks = {0};
    struct tl_waiter **arr = NULL;
    size_t n = 0, cap = 0;
    bool oom = false;

    *out = NULL;
    *count = 0;
    if (key == NULL)
        return all_waiters(s, out, count);
    tl_status st = tl__etcd_names_for(s, key, NULL, &k);
    if (st != TL_OK)
        return st;
    if ((st = tl__etcd_read_state(s, &k, &ks)) != TL_OK)
        goto out;
    for (size_t i = 0; i < ks.nline && !oom; i++) {
        struct tl_waiter *x =
            waiter_from(s, key, ks.line[i].id, ks.line[i].priority, &ks.line[i].kv, false, 0, &oom);
        if (x != NULL && tl__waiter_array_push(&arr, &n, &cap, x) != TL_OK) {
            tl__waiter_free(x);
            oom = true;
        }
    }
    if (oom) {
        tl_waiter_array_free(arr, n);
        st = tl__etcd_oom(s);
        goto out;
    }
    *out = arr;
    *count = n;
out:
    tl__etcd_state_clear(&ks);
    tl__etcd_names_clear(&k);
    return st;
}
