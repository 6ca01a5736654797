/*
 * memory.c -- the in-process store, for tests and single-process programs.
 *
 * `memory:` or `memory:NAME` names a space shared by every instance in the process that opens
 * the same name (the manager's own two connections, and other managers of the program). The
 * table of spaces is the one piece of mutable global state in the library: a process-wide store
 * is what this store is. It is guarded by a mutex, and each space by its own.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "tl.h"

#define MEM_HISTORY_MAX 4096

struct mem_entry {
    struct mem_entry *next; /* hash chain */
    char *key;
    uint64_t last_token; /* survives release: tokens only grow */
    bool held;
    struct tl_record rec;
};

struct mem_space {
    struct mem_space *next;
    char *name;
    int refs;
    pthread_mutex_t mu;
    struct mem_entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t nentries;
    struct tl_event *history[MEM_HISTORY_MAX]; /* ring of the newest events */
    size_t hist_next;
    size_t hist_count;
};

struct memory_store {
    struct tl_store base; /* must be first */
    struct mem_space *space;
};
_Static_assert(offsetof(struct memory_store, base) == 0, "base must be first");

static pthread_mutex_t spaces_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mem_space *spaces; /* NOLINT: see the file comment */

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void space_free(struct mem_space *sp)
{
    for (size_t i = 0; i < sp->nbuckets; i++) {
        struct mem_entry *e = sp->buckets[i];
        while (e != NULL) {
            struct mem_entry *next = e->next;
            tl__free(e->key);
            tl__record_clear(&e->rec);
            tl__free(e);
            e = next;
        }
    }
    for (size_t i = 0; i < MEM_HISTORY_MAX; i++)
        tl__event_free(sp->history[i]);
    tl__free(sp->buckets);
    (void)pthread_mutex_destroy(&sp->mu);
    tl__free(sp->name);
    tl__free(sp);
}

static tl_status memory_open(struct tl_store *s, const char *url)
{
    struct memory_store *ms = (struct memory_store *)s;
    const char *name = url + strlen("memory:");

    if (strncmp(url, "memory:", 7) != 0)
        return tl__store_fail(s, TL_EINVAL, "memory store URL must be memory:[NAME]");
    if (strncmp(name, "//", 2) == 0)
        name += 2;
    if (strlen(name) > TL_KEY_MAX)
        return tl__store_fail(s, TL_EINVAL, "memory store name is too long");

    pthread_mutex_lock(&spaces_mu);
    struct mem_space *sp = spaces;
    while (sp != NULL && strcmp(sp->name, name) != 0)
        sp = sp->next;
    if (sp == NULL) {
        sp = tl__calloc(1, sizeof(*sp));
        if (sp != NULL) {
            sp->name = tl__strdup(name);
            sp->nbuckets = 64;
            sp->buckets = tl__calloc(sp->nbuckets, sizeof(struct mem_entry *));
            if (sp->name == NULL || sp->buckets == NULL || pthread_mutex_init(&sp->mu, NULL) != 0) {
                tl__free(sp->name);
                tl__free(sp->buckets);
                tl__free(sp);
                sp = NULL;
            } else {
                sp->next = spaces;
                spaces = sp;
            }
        }
    }
    if (sp != NULL)
        sp->refs++;
    pthread_mutex_unlock(&spaces_mu);

    if (sp == NULL)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    ms->space = sp;
    return TL_OK;
}

static void memory_close(struct tl_store *s)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;

    if (sp == NULL)
        return;
    pthread_mutex_lock(&spaces_mu);
    bool last = --sp->refs == 0;
    if (last) {
        struct mem_space **pp = &spaces;
        while (*pp != sp)
            pp = &(*pp)->next;
        *pp = sp->next;
    }
    pthread_mutex_unlock(&spaces_mu);
    if (last)
        space_free(sp);
}

static struct mem_entry *find(struct mem_space *sp, const char *key)
{
    struct mem_entry *e = sp->buckets[hash_key(key) & (sp->nbuckets - 1)];

    while (e != NULL && strcmp(e->key, key) != 0)
        e = e->next;
    return e;
}

static void grow(struct mem_space *sp)
{
    size_t n = sp->nbuckets * 2;
    struct mem_entry **b = tl__calloc(n, sizeof(struct mem_entry *));

    if (b == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < sp->nbuckets; i++) {
        struct mem_entry *e = sp->buckets[i];
        while (e != NULL) {
            struct mem_entry *next = e->next;
            size_t h = hash_key(e->key) & (n - 1);
            e->next = b[h];
            b[h] = e;
            e = next;
        }
    }
    tl__free(sp->buckets);
    sp->buckets = b;
    sp->nbuckets = n;
}

static struct mem_entry *find_or_add(struct mem_space *sp, const char *key)
{
    struct mem_entry *e = find(sp, key);

    if (e != NULL)
        return e;
    if (sp->nentries >= sp->nbuckets)
        grow(sp);
    e = tl__calloc(1, sizeof(*e));
    if (e == NULL || (e->key = tl__strdup(key)) == NULL) {
        tl__free(e);
        return NULL;
    }
    size_t h = hash_key(key) & (sp->nbuckets - 1);
    e->next = sp->buckets[h];
    sp->buckets[h] = e;
    sp->nentries++;
    return e;
}

/* Appends an audit event; losing one to a failed allocation loses no lock state. */
static void note(struct mem_space *sp, int64_t at, tl_event_kind kind, const struct tl_info *who,
                 const char *detail)
{
    struct tl_event *ev = tl__event_new();

    if (ev == NULL)
        return;
    ev->at_ms = at;
    ev->kind = kind;
    ev->token = who->token;
    ev->key = tl__strdup(who->key);
    ev->worker_id = tl__strdup(who->worker_id);
    ev->node_id = tl__strdup(who->node_id);
    ev->detail = detail ? tl__strdup(detail) : NULL;
    if (ev->key == NULL || ev->worker_id == NULL || ev->node_id == NULL) {
        tl__event_free(ev);
        return;
    }
    tl__event_free(sp->history[sp->hist_next]);
    sp->history[sp->hist_next] = ev;
    sp->hist_next = (sp->hist_next + 1) % MEM_HISTORY_MAX;
    if (sp->hist_count < MEM_HISTORY_MAX)
        sp->hist_count++;
}

static int64_t now_ms(struct tl_store *s)
{
    return s->clock->now_ms(s->clock->ud);
}

static tl_status memory_claim(struct tl_store *s, const struct tl_claim *req,
                              struct tl_claim_result *out)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    int64_t now = now_ms(s);
    tl_status st;
    struct tl_record mine = {0};

    mine.info.key = tl__strdup(req->key);
    mine.info.worker_id = tl__strdup(req->worker_id);
    mine.info.node_id = tl__strdup(req->node_id);
    mine.info.task_info = tl__strdup(req->task_info);
    if (!mine.info.key || !mine.info.worker_id || !mine.info.node_id || !mine.info.task_info) {
        tl__record_clear(&mine);
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    mine.info.claimed_at_ms = mine.info.heartbeat_at_ms = now;
    mine.info.lock_timeout_ms = req->lock_timeout_ms;

    pthread_mutex_lock(&sp->mu);
    struct mem_entry *e = find_or_add(sp, req->key);
    if (e == NULL) {
        st = tl__store_fail(s, TL_ENOMEM, "out of memory");
        goto out_unlock;
    }

    enum tl_verdict v = tl__claim_verdict(e->held, e->rec.info.heartbeat_at_ms,
                                          e->rec.info.lock_timeout_ms, req->mode, now);
    if (v == TL_VERDICT_BUSY) {
        st = tl__record_copy(&out->rec, &e->rec);
        if (st == TL_OK) {
            tl__record_judge(&out->rec, now);
            out->holder_known = true;
            st = TL_EBUSY;
        }
        goto out_unlock;
    }

    struct tl_record copy;
    mine.info.token = e->last_token + 1;
    if (tl__record_copy(&copy, &mine) != TL_OK) {
        st = tl__store_fail(s, TL_ENOMEM, "out of memory");
        goto out_unlock;
    }
    char detail[200] = "";
    if (v != TL_VERDICT_FREE)
        (void)snprintf(detail, sizeof(detail), "from %s (token %llu)", e->rec.info.worker_id,
                       (unsigned long long)e->rec.info.token);
    tl__record_clear(&e->rec);
    e->rec = copy;
    e->held = true;
    e->last_token = mine.info.token;
    note(sp, now,
         v == TL_VERDICT_STEAL   ? TL_EVENT_STOLEN
         : v == TL_VERDICT_FORCE ? TL_EVENT_FORCED
                                 : TL_EVENT_ACQUIRED,
         &mine.info, detail[0] ? detail : NULL);
    out->rec = mine;
    memset(&mine, 0, sizeof(mine));
    out->took_stale = v == TL_VERDICT_STEAL;
    out->took_forced = v == TL_VERDICT_FORCE;
    st = TL_OK;

out_unlock:
    pthread_mutex_unlock(&sp->mu);
    tl__record_clear(&mine);
    return st;
}

static bool is_ours(const struct mem_entry *e, const struct tl_record *held)
{
    return e != NULL && e->held && e->rec.info.token == held->info.token &&
           strcmp(e->rec.info.worker_id, held->info.worker_id) == 0;
}

static tl_status memory_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                              int64_t *heartbeat_at_ms)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    int64_t now = now_ms(s);
    tl_status st = TL_OK;

    (void)seq;
    pthread_mutex_lock(&sp->mu);
    struct mem_entry *e = find(sp, held->info.key);
    if (is_ours(e, held)) {
        e->rec.info.heartbeat_at_ms = now;
        *heartbeat_at_ms = now;
    } else {
        note(sp, now, TL_EVENT_LOST, &held->info, NULL);
        st = tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu",
                            held->info.key, held->info.worker_id,
                            (unsigned long long)held->info.token);
    }
    pthread_mutex_unlock(&sp->mu);
    return st;
}

static tl_status memory_release(struct tl_store *s, const struct tl_record *held,
                                const char *summary)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    tl_status st = TL_OK;

    pthread_mutex_lock(&sp->mu);
    struct mem_entry *e = find(sp, held->info.key);
    if (is_ours(e, held)) {
        note(sp, now_ms(s), TL_EVENT_RELEASED, &held->info, summary);
        tl__record_clear(&e->rec);
        e->held = false;
    } else if (e != NULL && !e->held && e->last_token == held->info.token) {
        /* Already released by us, and no one has claimed it since. */
    } else {
        st = tl__store_fail(s, TL_ENOTOWNER, "%s is not held by %s with token %llu", held->info.key,
                            held->info.worker_id, (unsigned long long)held->info.token);
    }
    pthread_mutex_unlock(&sp->mu);
    return st;
}

static tl_status memory_force_release(struct tl_store *s, const struct tl_force_release *req,
                                      struct tl_record *former, bool *found)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    int64_t now = now_ms(s);
    tl_status st = TL_OK;

    *found = false;
    pthread_mutex_lock(&sp->mu);
    struct mem_entry *e = find(sp, req->key);
    if (e == NULL || !e->held)
        goto out_unlock;
    if ((st = tl__record_copy(former, &e->rec)) != TL_OK) {
        st = tl__store_fail(s, st, "out of memory");
        goto out_unlock;
    }
    tl__record_judge(former, now);
    *found = true;
    if (req->token != 0 && e->rec.info.token != req->token) {
        st = tl__store_fail(s, TL_ENOTOWNER, "%s is held by %s with token %llu", req->key,
                            e->rec.info.worker_id, (unsigned long long)e->rec.info.token);
        goto out_unlock;
    }

    char detail[200];
    (void)snprintf(detail, sizeof(detail), "from %s (token %llu)", e->rec.info.worker_id,
                   (unsigned long long)e->rec.info.token);
    const struct tl_info who = {.key = (char *)req->key,
                                .worker_id = (char *)req->worker_id,
                                .node_id = (char *)req->node_id,
                                .token = e->last_token + 1};
    e->last_token = who.token; /* the holder's token is no longer the last: see store.h */
    tl__record_clear(&e->rec);
    e->held = false;
    note(sp, now, TL_EVENT_FORCED, &who, detail);
    note(sp, now, TL_EVENT_RELEASED, &who, req->summary);

out_unlock:
    pthread_mutex_unlock(&sp->mu);
    return st;
}

static tl_status memory_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                                bool *found)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    tl_status st = TL_OK;

    *found = false;
    pthread_mutex_lock(&sp->mu);
    struct mem_entry *e = find(sp, key);
    if (e != NULL && e->held) {
        st = tl__record_copy(out, &e->rec);
        if (st == TL_OK) {
            tl__record_judge(out, now_ms(s));
            *found = true;
        }
    }
    pthread_mutex_unlock(&sp->mu);
    return st == TL_OK ? TL_OK : tl__store_fail(s, st, "out of memory");
}

static int cmp_record_key(const void *a, const void *b)
{
    const struct tl_record *x = *(struct tl_record *const *)a;
    const struct tl_record *y = *(struct tl_record *const *)b;

    return strcmp(x->info.key, y->info.key);
}

static tl_status memory_list(struct tl_store *s, struct tl_record ***out, size_t *count)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status st = TL_OK;
    int64_t now = now_ms(s);

    pthread_mutex_lock(&sp->mu);
    for (size_t i = 0; i < sp->nbuckets && st == TL_OK; i++) {
        for (struct mem_entry *e = sp->buckets[i]; e != NULL && st == TL_OK; e = e->next) {
            if (!e->held)
                continue;
            struct tl_record *r = tl__record_new();
            if (r == NULL || tl__record_copy(r, &e->rec) != TL_OK) {
                tl__free(r);
                st = TL_ENOMEM;
                break;
            }
            tl__record_judge(r, now);
            if ((st = tl__record_array_push(&arr, &n, &cap, r)) != TL_OK)
                tl__record_free(r);
        }
    }
    pthread_mutex_unlock(&sp->mu);

    if (st != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return tl__store_fail(s, st, "out of memory");
    }
    if (n > 1)
        qsort(arr, n, sizeof(struct tl_record *), cmp_record_key);
    *out = arr;
    *count = n;
    return TL_OK;
}

static tl_status memory_history(struct tl_store *s, const char *key, size_t limit,
                                struct tl_event ***out, size_t *count)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    struct tl_event **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status st = TL_OK;

    pthread_mutex_lock(&sp->mu);
    /* Walk newest to oldest, keep `limit`, then reverse into oldest-first order. */
    for (size_t i = 0; i < sp->hist_count && n < limit; i++) {
        size_t idx = (sp->hist_next + MEM_HISTORY_MAX - 1 - i) % MEM_HISTORY_MAX;
        const struct tl_event *ev = sp->history[idx];
        if (key != NULL && strcmp(ev->key, key) != 0)
            continue;

        struct tl_event *c = tl__event_new();
        if (c != NULL) {
            *c = *ev;
            c->key = tl__strdup(ev->key);
            c->worker_id = tl__strdup(ev->worker_id);
            c->node_id = tl__strdup(ev->node_id);
            c->detail = ev->detail ? tl__strdup(ev->detail) : NULL;
        }
        if (c == NULL || !c->key || !c->worker_id || !c->node_id || (ev->detail && !c->detail) ||
            tl__event_array_push(&arr, &n, &cap, c) != TL_OK) {
            tl__event_free(c);
            st = TL_ENOMEM;
            break;
        }
    }
    pthread_mutex_unlock(&sp->mu);

    if (st != TL_OK) {
        tl_event_array_free(arr, n);
        return tl__store_fail(s, st, "out of memory");
    }
    tl__event_array_reverse(arr, n);
    *out = arr;
    *count = n;
    return TL_OK;
}

const struct tl_store_ops tl__store_memory = {
    .version = TL_STORE_OPS_VERSION,
    .scheme = "memory",
    .size = sizeof(struct memory_store),
    .open = memory_open,
    .close = memory_close,
    .claim = memory_claim,
    .renew = memory_renew,
    .release = memory_release,
    .inspect = memory_inspect,
    .list = memory_list,
    .history = memory_history,
    .force_release = memory_force_release,
};
