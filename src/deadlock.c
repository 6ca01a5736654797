/*
 * deadlock.c -- deadlock detection over the store's wait-for graph (DESIGN.md section 9).
 *
 * Every waiter in a line records the locks its manager holds ("KEY TOKEN ..."; store.h, the
 * wait-for graph). Waiter X, waiting for key K, waits for waiter Y when Y's manager holds K:
 * Y's list names K with a token that is a live holder of K now. A waiter that is about to wait,
 * or still waits, looks for a cycle of such edges through itself; if there is one and it is the
 * youngest waiter of the cycle (the latest to join its line), it gives up with TL_EDEADLK. The
 * others go on: the youngest of every cycle breaks it.
 *
 * No false positives: only live waiters are nodes (a dead one is no wait), and an edge stands
 * only once the store confirms that its token is a live holder of the key now (a stale holder
 * can be stolen, and a lock released since the list was written holds nothing up). Both are
 * read after the list, so a cycle found is one that exists. The nodes are waiters, one per
 * waiting acquire call, never worker ids: two processes with one worker id are two nodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "store.h"
#include "tl.h"

#define MAX_CYCLE 64 /* longer cycles are not looked for */

struct pair {
    const char *key; /* into the waiter's holding text (a copy, split) */
    uint64_t token;
};

struct node {
    const struct tl_waiter *w;
    bool shared; /* a shared claim waits (mode "s") */
    char *text;  /* holding, split in place */
    struct pair *pairs;
    size_t npairs;
};

/* What the store says of one key's holders, read once per check. */
struct key_holders {
    const char *key;
    struct tl_info **hs;
    size_t n;
    bool read;
};

struct graph {
    tl_manager *m;
    struct node *nodes;
    size_t n;
    struct key_holders *keys; /* one per node (the key it waits for), read on demand */
    /* Edges found false (a token that no longer holds): node i may not wait for node j. */
    bool *cut; /* n * n */
};

static void parse_holding(struct node *nd)
{
    size_t cap = 0;

    nd->text = tl__strdup(nd->w->holding != NULL ? nd->w->holding : "");
    if (nd->text == NULL)
        return;
    char *save = NULL, *mode = strtok_r(nd->text, " ", &save);
    if (mode == NULL || (strcmp(mode, "s") != 0 && strcmp(mode, "x") != 0))
        return; /* not ours, or garbled: no edges */
    nd->shared = mode[0] == 's';
    for (char *k = strtok_r(NULL, " ", &save); k != NULL; k = strtok_r(NULL, " ", &save)) {
        char *t = strtok_r(NULL, " ", &save);
        uint64_t token;
        if (t == NULL || !tl__parse_u64(t, &token))
            break; /* garbled: use what came before */
        if (nd->npairs == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct pair *p = tl__realloc(nd->pairs, ncap * sizeof(*p));
            if (p == NULL)
                break;
            nd->pairs = p;
            cap = ncap;
        }
        nd->pairs[nd->npairs++] = (struct pair){.key = k, .token = token};
    }
}

/* Whether node j's manager holds the key node i waits for, by its list: the token, or 0. */
static uint64_t listed_token(const struct graph *g, size_t i, size_t j)
{
    const char *key = g->nodes[i].w->key;

    for (size_t p = 0; p < g->nodes[j].npairs; p++)
        if (strcmp(g->nodes[j].pairs[p].key, key) == 0)
            return g->nodes[j].pairs[p].token;
    return 0;
}

static bool edge(const struct graph *g, size_t i, size_t j)
{
    return i != j && !g->cut[i * g->n + j] && listed_token(g, i, j) != 0;
}

/* Depth-first search for a path back to `start`; path[0] is start. Returns its length, or 0. */
static size_t find_cycle(const struct graph *g, size_t start, size_t *path, bool *on_path,
                         size_t depth)
{
    size_t at = path[depth - 1];

    for (size_t j = 0; j < g->n; j++) {
        if (!edge(g, at, j))
            continue;
        if (j == start)
            return depth;
        if (on_path[j] || depth >= MAX_CYCLE)
            continue;
        on_path[j] = true;
        path[depth] = j;
        size_t len = find_cycle(g, start, path, on_path, depth + 1);
        if (len != 0)
            return len;
        on_path[j] = false;
    }
    return 0;
}

/* A store without `holders` has one holder at most, the one inspect finds (as for tl_holders). */
static tl_status inspect_one(struct tl_store *s, const char *key, struct tl_record ***out,
                             size_t *count)
{
    struct tl_record *r = tl__record_new();
    bool found = false;

    if (r == NULL)
        return TL_ENOMEM;
    tl_status st = s->ops->inspect(s, key, r, &found);
    if (st != TL_OK || !found) {
        tl__record_free(r);
        return st;
    }
    *out = tl__calloc(1, sizeof(struct tl_record *));
    if (*out == NULL) {
        tl__record_free(r);
        return TL_ENOMEM;
    }
    (*out)[0] = r;
    *count = 1;
    return TL_OK;
}

/* The holders of kh->key, from the store's op itself rather than tl_holders(): the check runs
 * inside the acquire call that waits, whose message slot is not the check's to reset or to
 * fill, and the key is one the store listed (checked when its waiter joined). A failed read
 * confirms no edge of that key: it is logged, and the store's message is left as it was. */
static void read_holders(tl_manager *m, struct key_holders *kh)
{
    struct tl_store *s = m->store;
    struct tl_record **recs = NULL;
    size_t n = 0;
    char keep[TL_ERRMSG_SIZE];
    tl_status st;

    memcpy(keep, s->errmsg, sizeof(keep));
    s->errmsg[0] = '\0';
    if (s->ops->version >= 5 && s->ops->holders != NULL)
        st = s->ops->holders(s, kh->key, &recs, &n);
    else
        st = inspect_one(s, kh->key, &recs, &n);
    if (st != TL_OK) {
        TL_LOG(&m->log, TL_LOG_DEBUG, "%s: its holders could not be read: %s", kh->key,
               s->errmsg[0] != '\0' ? s->errmsg : tl_strerror(st));
        recs = NULL;
        n = 0;
    }
    memcpy(s->errmsg, keep, sizeof(keep));
    kh->hs = (struct tl_info **)recs; /* each record starts with its tl_info */
    kh->n = n;
}

/* Whether `token` is a live holder of node i's key now, by the store, and node i waits for it
 * whoever else holds the key. A shared claim that waits among several shared holders may be
 * waiting for a semaphore's slot, which any one of them can free: its waits are not counted
 * (a miss is possible there; a false deadlock is not). */
static bool holds_now(struct graph *g, size_t i, uint64_t token)
{
    struct key_holders *kh = &g->keys[i];

    if (!kh->read) {
        kh->read = true;
        kh->key = g->nodes[i].w->key;
        read_holders(g->m, kh);
    }
    size_t live = 0;
    bool found = false, any_exclusive = false;
    for (size_t h = 0; h < kh->n; h++) {
        if (kh->hs[h]->stale)
            continue;
        live++;
        found = found || kh->hs[h]->token == token;
        any_exclusive = any_exclusive || kh->hs[h]->mode != TL_SHARED;
    }
    if (g->nodes[i].shared && !any_exclusive && live > 1)
        return false;
    return found;
}

/* Whether waiter a joined its line after waiter b (the younger). Every checker reads the same
 * records, so all agree on the youngest of a cycle; within one millisecond the store's arrival
 * order decides in one line, and the waiter ids (arbitrary, but the same for everyone) across
 * lines. */
static bool younger(const struct tl_waiter *a, const struct tl_waiter *b)
{
    if (a->since_ms != b->since_ms)
        return a->since_ms > b->since_ms;
    if (strcmp(a->key, b->key) == 0 && a->seq != b->seq)
        return a->seq > b->seq;
    return strcmp(a->waiter_id, b->waiter_id) > 0;
}

static void describe(tl_manager *m, const struct graph *g, const size_t *path, size_t len)
{
    char buf[TL_ERRMSG_SIZE];
    size_t used = 0;

    buf[0] = '\0';
    for (size_t c = 0; c < len && used < sizeof(buf); c++) {
        const struct tl_waiter *x = g->nodes[path[c]].w;
        const struct tl_waiter *y = g->nodes[path[(c + 1) % len]].w;
        int n = snprintf(buf + used, sizeof(buf) - used, "%s%s waits for %s held by %s",
                         c ? ", " : "", x->worker_id, x->key, y->worker_id);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    (void)tl__fail(m, TL_EDEADLK,
                   "deadlock: %s; %s, the youngest waiter of the cycle, gave up (the locks it "
                   "holds are still held: release them and start over)",
                   buf, g->nodes[path[0]].w->worker_id);
}

tl_status tl__deadlock_check(tl_manager *m, const struct tl_claim *req)
{
    const struct tl_store_ops *ops = m->store->ops;
    struct tl_waiter **ws = NULL;
    size_t nw = 0;
    tl_status st = TL_OK;

    if (!m->store->deadlocks || ops->waiters == NULL || req->waiter_id == NULL)
        return TL_OK;
    char keep[TL_ERRMSG_SIZE];
    memcpy(keep, m->store->errmsg, sizeof(keep));
    m->store->errmsg[0] = '\0';
    if (ops->waiters(m->store, NULL, &ws, &nw) != TL_OK) {
        TL_LOG(&m->log, TL_LOG_DEBUG, "%s: the wait-for graph could not be read: %s", req->key,
               m->store->errmsg);
        memcpy(m->store->errmsg, keep, sizeof(keep));
        return TL_OK;
    }
    memcpy(m->store->errmsg, keep, sizeof(keep));

    struct graph g = {.m = m};
    g.nodes = tl__calloc(nw ? nw : 1, sizeof(*g.nodes));
    size_t me = SIZE_MAX;
    for (size_t i = 0; g.nodes != NULL && i < nw; i++) {
        if (ws[i]->dead)
            continue;
        if (strcmp(ws[i]->waiter_id, req->waiter_id) == 0)
            me = g.n;
        g.nodes[g.n].w = ws[i];
        parse_holding(&g.nodes[g.n]);
        g.n++;
    }
    g.keys = tl__calloc(g.n ? g.n : 1, sizeof(*g.keys));
    g.cut = tl__calloc(g.n ? g.n * g.n : 1, sizeof(*g.cut));
    size_t *path = tl__calloc(MAX_CYCLE + 1, sizeof(*path));
    bool *on_path = tl__calloc(g.n ? g.n : 1, sizeof(*on_path));
    if (me == SIZE_MAX || g.keys == NULL || g.cut == NULL || path == NULL || on_path == NULL)
        goto out;

    /* Find a cycle by the lists, then confirm its edges with the store; an edge that does not
     * hold is cut and the search starts again. Each round cuts an edge or ends. */
    for (size_t round = 0; round <= g.n * g.n; round++) {
        memset(on_path, 0, g.n * sizeof(*on_path));
        path[0] = me;
        on_path[me] = true;
        size_t len = find_cycle(&g, me, path, on_path, 1);
        if (len == 0)
            break;
        bool confirmed = true;
        for (size_t c = 0; c < len && confirmed; c++) {
            size_t i = path[c], j = path[(c + 1) % len];
            if (!holds_now(&g, i, listed_token(&g, i, j))) {
                g.cut[i * g.n + j] = true;
                confirmed = false;
            }
        }
        if (!confirmed)
            continue;
        size_t youngest = 0;
        for (size_t c = 1; c < len; c++)
            if (younger(g.nodes[path[c]].w, g.nodes[path[youngest]].w))
                youngest = c;
        if (youngest == 0) {
            describe(m, &g, path, len);
            st = TL_EDEADLK;
        } else {
            TL_LOG(&m->log, TL_LOG_INFO,
                   "%s: in a cycle of %zu waits; its youngest waiter, %s, gives up", req->key, len,
                   g.nodes[path[youngest]].w->worker_id);
        }
        break;
    }

out:
    for (size_t i = 0; g.keys != NULL && i < g.n; i++)
        tl_info_array_free(g.keys[i].hs, g.keys[i].n);
    for (size_t i = 0; g.nodes != NULL && i < g.n; i++) {
        tl__free(g.nodes[i].text);
        tl__free(g.nodes[i].pairs);
    }
    tl__free(g.nodes);
    tl__free(g.keys);
    tl__free(g.cut);
    tl__free(path);
    tl__free(on_path);
    tl_waiter_array_free(ws, nw);
    return st;
}
