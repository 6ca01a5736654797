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
#include <time.h>

#include "store.h"
#include "tl.h"

#define MEM_HISTORY_MAX 4096

/* A waiter in a key's line. */
struct mem_waiter {
    struct mem_waiter *next; /* the line, in order */
    struct tl_waiter w;      /* w.dead is not kept: judged when read */
    bool signaled;           /* woken as the head of a free key; not yet seen by wait_turn */
    bool shared;             /* the waiting claim's mode and slots */
    uint32_t slots;
    uint64_t upgrading; /* an upgrade's waiter: the token of the shared hold it converts */
};

struct mem_entry {
    struct mem_entry *next; /* hash chain */
    char *key;
    uint64_t last_token;       /* survives release: tokens only grow */
    struct tl_record *holders; /* by token; several only when shared */
    size_t nholders, capholders;
    struct mem_waiter *line; /* ordered by priority, then seq */
    uint64_t last_seq;
    struct tl_done *done; /* the task's done marker, or NULL */
};

struct mem_space {
    struct mem_space *next;
    char *name;
    int refs;
    pthread_mutex_t mu;
    pthread_cond_t turn; /* a waiter was signaled, or a key freed (CLOCK_MONOTONIC) */
    uint64_t freed;      /* counts events that may have freed a candidate (wait_any) */
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

static void waiter_clear(struct tl_waiter *w)
{
    tl__free(w->key);
    tl__free(w->waiter_id);
    tl__free(w->worker_id);
    tl__free(w->node_id);
    tl__free(w->holding);
    memset(w, 0, sizeof(*w));
}

static void space_free(struct mem_space *sp)
{
    for (size_t i = 0; i < sp->nbuckets; i++) {
        struct mem_entry *e = sp->buckets[i];
        while (e != NULL) {
            struct mem_entry *next = e->next;
            tl__free(e->key);
            for (size_t j = 0; j < e->nholders; j++)
                tl__record_clear(&e->holders[j]);
            tl__free(e->holders);
            tl__done_free(e->done);
            while (e->line != NULL) {
                struct mem_waiter *w = e->line;
                e->line = w->next;
                waiter_clear(&w->w);
                tl__free(w);
            }
            tl__free(e);
            e = next;
        }
    }
    for (size_t i = 0; i < MEM_HISTORY_MAX; i++)
        tl__event_free(sp->history[i]);
    tl__free(sp->buckets);
    (void)pthread_mutex_destroy(&sp->mu);
    (void)pthread_cond_destroy(&sp->turn);
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
            pthread_condattr_t ca;
            bool cond_ok = pthread_condattr_init(&ca) == 0;
            if (cond_ok) {
                (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
                cond_ok = pthread_cond_init(&sp->turn, &ca) == 0;
                (void)pthread_condattr_destroy(&ca);
            }
            if (sp->name == NULL || sp->buckets == NULL || !cond_ok ||
                pthread_mutex_init(&sp->mu, NULL) != 0) {
                if (cond_ok)
                    (void)pthread_cond_destroy(&sp->turn);
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
    s->modes = true;
    s->deadlocks = true;
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

/* ---- the line ---- */

static bool waiter_live(const struct tl_waiter *w, int64_t now)
{
    return w->heartbeat_at_ms > now - (int64_t)w->timeout_ms;
}

static struct mem_waiter *find_waiter(struct mem_entry *e, const char *id)
{
    struct mem_waiter *w = e->line;

    while (w != NULL && strcmp(w->w.waiter_id, id) != 0)
        w = w->next;
    return w;
}

static void unlink_waiter(struct mem_entry *e, struct mem_waiter *w)
{
    struct mem_waiter **pp = &e->line;

    while (*pp != w)
        pp = &(*pp)->next;
    *pp = w->next;
    waiter_clear(&w->w);
    tl__free(w);
}

/* The holder a newcomer waits for first: the exclusive one, else the oldest. NULL: free. */
static const struct tl_record *blocker(const struct mem_entry *e)
{
    for (size_t i = 0; i < e->nholders; i++)
        if (e->holders[i].info.mode != TL_SHARED)
            return &e->holders[i];
    return e->nholders > 0 ? &e->holders[0] : NULL;
}

static bool any_exclusive(const struct mem_entry *e)
{
    return e->nholders > 0 && blocker(e)->info.mode != TL_SHARED;
}

static ptrdiff_t holder_index(const struct mem_entry *e, const struct tl_record *held)
{
    for (size_t i = 0; e != NULL && i < e->nholders; i++)
        if (e->holders[i].info.token == held->info.token &&
            strcmp(e->holders[i].info.worker_id, held->info.worker_id) == 0)
            return (ptrdiff_t)i;
    return -1;
}

static void remove_holder(struct mem_entry *e, size_t i)
{
    tl__record_clear(&e->holders[i]);
    memmove(&e->holders[i], &e->holders[i + 1], (e->nholders - i - 1) * sizeof(e->holders[0]));
    e->nholders--;
}

/* Makes room for one more holder. */
static tl_status reserve_holder(struct mem_entry *e)
{
    if (e->nholders < e->capholders)
        return TL_OK;
    size_t cap = e->capholders ? 2 * e->capholders : 1;
    struct tl_record *h = tl__realloc(e->holders, cap * sizeof(*h));
    if (h == NULL)
        return TL_ENOMEM;
    e->holders = h;
    e->capholders = cap;
    return TL_OK;
}

/* "from W (token N), ..." of the holders a steal or force displaces (all when `all`, else the
 * stale ones at `now`). */
static void displaced(const struct mem_entry *e, bool all, int64_t now, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < e->nholders && len < size; i++) {
        struct tl_record r = e->holders[i];
        tl__record_judge(&r, now);
        if (!all && !r.info.stale)
            continue;
        int k = snprintf(buf + len, size - len, "%s%s (token %llu)", len ? ", " : "from ",
                         r.info.worker_id, (unsigned long long)r.info.token);
        if (k < 0)
            break;
        len += (size_t)k;
    }
}

/* Tells wait_any that something may have come free. */
static void freed(struct mem_space *sp)
{
    sp->freed++;
    (void)pthread_cond_broadcast(&sp->turn);
}

/* Wakes the head of a key's line, and only it, when the holders admit its claim (not when
 * they do not: a writer at the head beside readers would wake itself with its own claims). */
static void wake_head(struct mem_space *sp, struct mem_entry *e)
{
    if (e->line == NULL || e->line->signaled)
        return;
    if (e->line->upgrading != 0) { /* its turn: it is the only holder, or holds nothing now */
        bool holds = false;
        for (size_t i = 0; i < e->nholders; i++)
            holds = holds || e->holders[i].info.token == e->line->upgrading;
        if (holds && e->nholders > 1)
            return;
        e->line->signaled = true;
        (void)pthread_cond_broadcast(&sp->turn);
        return;
    }
    uint32_t held_slots = e->nholders ? e->holders[0].info.slots : 0;
    if (tl__admit(e->line->shared, e->line->slots, e->nholders, any_exclusive(e), held_slots) ==
        TL_ADMIT_NO)
        return;
    e->line->signaled = true;
    (void)pthread_cond_broadcast(&sp->turn);
}

/* Deletes the dead waiters of `e` (they never held anything), and wakes a new head. */
static void prune(struct mem_space *sp, struct mem_entry *e, int64_t now)
{
    struct mem_waiter **pp = &e->line;
    bool removed = false;

    while (*pp != NULL) {
        struct mem_waiter *w = *pp;
        if (waiter_live(&w->w, now)) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        waiter_clear(&w->w);
        tl__free(w);
        removed = true;
    }
    if (removed && e->nholders == 0 && e->line == NULL)
        freed(sp);
    wake_head(sp, e);
}

/* The waiter's text of the wait-for graph, as its latest claim gave it. */
static tl_status set_holding(struct mem_waiter *w, const char *holding)
{
    char *h = tl__strdup(holding != NULL ? holding : "");

    if (h == NULL)
        return TL_ENOMEM;
    tl__free(w->w.holding);
    w->w.holding = h;
    return TL_OK;
}

static tl_status enqueue(struct mem_entry *e, const struct tl_claim *req, uint64_t upgrading,
                         int64_t now)
{
    struct mem_waiter *w = tl__calloc(1, sizeof(*w));

    if (w == NULL)
        return TL_ENOMEM;
    w->upgrading = upgrading;
    if (set_holding(w, req->holding) != TL_OK) {
        tl__free(w);
        return TL_ENOMEM;
    }
    w->w.key = tl__strdup(req->key);
    w->w.waiter_id = tl__strdup(req->waiter_id);
    w->w.worker_id = tl__strdup(req->worker_id);
    w->w.node_id = tl__strdup(req->node_id);
    if (!w->w.key || !w->w.waiter_id || !w->w.worker_id || !w->w.node_id) {
        waiter_clear(&w->w);
        tl__free(w);
        return TL_ENOMEM;
    }
    w->w.priority = req->priority;
    w->w.seq = ++e->last_seq;
    w->w.since_ms = w->w.heartbeat_at_ms = now;
    w->w.timeout_ms = req->waiter_timeout_ms;
    w->shared = req->shared;
    w->slots = req->slots;

    struct mem_waiter **pp = &e->line;
    while (*pp != NULL &&
           tl__waiter_before((*pp)->w.priority, (*pp)->w.seq, w->w.priority, w->w.seq))
        pp = &(*pp)->next;
    w->next = *pp;
    *pp = w;
    return TL_OK;
}

static uint32_t live_count(const struct mem_entry *e, int64_t now)
{
    uint32_t n = 0;

    for (const struct mem_waiter *w = e->line; w != NULL; w = w->next)
        n += waiter_live(&w->w, now);
    return n;
}

/* The claim of `req` (for `key`), under sp->mu. */
static tl_status claim_locked(struct tl_store *s, struct mem_space *sp, const struct tl_claim *req,
                              const char *key, int64_t now, struct tl_claim_result *out)
{
    tl_status st;
    struct tl_record mine = {0};

    mine.info.key = tl__strdup(key);
    mine.info.worker_id = tl__strdup(req->worker_id);
    mine.info.node_id = tl__strdup(req->node_id);
    mine.info.task_info = tl__strdup(req->task_info);
    if (!mine.info.key || !mine.info.worker_id || !mine.info.node_id || !mine.info.task_info) {
        tl__record_clear(&mine);
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    mine.info.claimed_at_ms = mine.info.heartbeat_at_ms = now;
    mine.info.lock_timeout_ms = req->lock_timeout_ms;
    mine.info.mode = req->shared ? TL_SHARED : TL_EXCLUSIVE;
    mine.info.slots = req->shared ? req->slots : 0;

    struct mem_entry *e = find_or_add(sp, key);
    if (e == NULL) {
        st = tl__store_fail(s, TL_ENOMEM, "out of memory");
        goto out;
    }

    prune(sp, e, now);
    struct mem_waiter *w = req->waiter_id ? find_waiter(e, req->waiter_id) : NULL;
    uint32_t ahead = 0, waiting = 0; /* prune left live waiters only */
    bool passed = false;             /* past our own place in line */
    for (struct mem_waiter *x = e->line; x != NULL; x = x->next) {
        waiting++;
        passed = passed || x == w;
        if (w != NULL ? !passed : req->waiter_id == NULL || x->w.priority >= req->priority)
            ahead++;
    }
    /* The holders that count: all, or the live ones when stealing (FORCE: none). */
    size_t counted = 0, stale = 0, live = 0;
    bool excl = false;
    uint32_t held_slots = 0;
    for (size_t i = 0; i < e->nholders; i++) {
        struct tl_record r = e->holders[i];
        tl__record_judge(&r, now);
        live += !r.info.stale;
        if (r.info.stale && req->mode == TL_CLAIM_STEAL) {
            stale++;
            continue;
        }
        counted++;
        excl = excl || r.info.mode != TL_SHARED;
        held_slots = r.info.slots;
    }
    enum tl_verdict v = TL_VERDICT_FREE;
    if (req->mode == TL_CLAIM_FORCE) { /* over stale holders only, it is a steal (as ever) */
        if (e->nholders > 0)
            v = live > 0 ? TL_VERDICT_FORCE : TL_VERDICT_STEAL;
    } else {
        enum tl_admit a = tl__admit(req->shared, req->slots, counted, excl, held_slots);
        if (a == TL_ADMIT_MISMATCH) {
            st = tl__slots_mismatch(s, key, held_slots, req->slots);
            goto out;
        }
        v = a == TL_ADMIT_NO ? TL_VERDICT_BUSY : stale > 0 ? TL_VERDICT_STEAL : TL_VERDICT_FREE;
    }
    if (v == TL_VERDICT_BUSY || (ahead > 0 && req->mode != TL_CLAIM_FORCE)) {
        if (req->waiter_id != NULL) {
            if (w != NULL) {
                w->w.heartbeat_at_ms = now;
                if (set_holding(w, req->holding) != TL_OK) {
                    st = tl__store_fail(s, TL_ENOMEM, "out of memory");
                    goto out;
                }
            } else if ((st = enqueue(e, req, 0, now)) != TL_OK) {
                st = tl__store_fail(s, st, "out of memory");
                goto out;
            } else {
                waiting++;
            }
        }
        out->waiting = waiting;
        out->ahead = ahead;
        st = TL_EBUSY;
        if (e->nholders > 0) {
            st = tl__record_copy(&out->rec, blocker(e));
            if (st == TL_OK) {
                tl__record_judge(&out->rec, now);
                out->holder_known = true;
                st = TL_EBUSY;
            }
        }
        goto out;
    }

    struct tl_record copy;
    mine.info.token = e->last_token + 1;
    if (tl__record_copy(&copy, &mine) != TL_OK || reserve_holder(e) != TL_OK) {
        tl__record_clear(&copy);
        st = tl__store_fail(s, TL_ENOMEM, "out of memory");
        goto out;
    }
    char detail[400] = "";
    if (v != TL_VERDICT_FREE)
        displaced(e, v == TL_VERDICT_FORCE, now, detail, sizeof(detail));
    for (size_t i = e->nholders; i-- > 0;) {
        struct tl_record r = e->holders[i];
        tl__record_judge(&r, now);
        if (v == TL_VERDICT_FORCE || (v == TL_VERDICT_STEAL && r.info.stale))
            remove_holder(e, i);
    }
    e->holders[e->nholders++] = copy; /* room was made above; the strings are its now */
    e->last_token = mine.info.token;
    if (w != NULL)
        unlink_waiter(e, w);
    wake_head(sp, e); /* a reader's win may leave another reader at the head */
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

out:
    tl__record_clear(&mine);
    return st;
}

static tl_status memory_claim(struct tl_store *s, const struct tl_claim *req,
                              struct tl_claim_result *out)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    int64_t now = now_ms(s);

    pthread_mutex_lock(&sp->mu);
    tl_status st = claim_locked(s, sp, req, req->key, now, out);
    pthread_mutex_unlock(&sp->mu);
    return st;
}

/* A conversion of holder `held` (store.h, convert), under sp->mu. */
static tl_status convert_locked(struct tl_store *s, struct mem_space *sp,
                                const struct tl_record *held, const struct tl_claim *req,
                                int64_t now, struct tl_claim_result *out)
{
    struct mem_entry *e = find(sp, held->info.key);
    ptrdiff_t i = holder_index(e, held);

    if (i < 0)
        return tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu",
                              held->info.key, held->info.worker_id,
                              (unsigned long long)held->info.token);
    prune(sp, e, now);
    struct mem_waiter *w = req->waiter_id ? find_waiter(e, req->waiter_id) : NULL;
    size_t counted = 0, stale = 0, other = SIZE_MAX;
    for (size_t j = 0; !req->shared && j < e->nholders; j++) {
        if ((ptrdiff_t)j == i)
            continue;
        struct tl_record r = e->holders[j];
        tl__record_judge(&r, now);
        if (r.info.stale && req->mode == TL_CLAIM_STEAL) {
            stale++;
            continue;
        }
        counted++;
        if (other == SIZE_MAX)
            other = j;
    }
    if (counted > 0) { /* an upgrade beside other holders: wait at the head */
        if (req->waiter_id != NULL) {
            tl_status st =
                w != NULL ? set_holding(w, req->holding) : enqueue(e, req, held->info.token, now);
            if (st != TL_OK)
                return tl__store_fail(s, st, "out of memory");
            if (w != NULL)
                w->w.heartbeat_at_ms = now;
        }
        out->waiting = live_count(e, now);
        if (tl__record_copy(&out->rec, &e->holders[other]) != TL_OK)
            return tl__store_fail(s, TL_ENOMEM, "out of memory");
        tl__record_judge(&out->rec, now);
        out->holder_known = true;
        return TL_EBUSY;
    }

    struct tl_record mine;
    if (tl__record_copy(&mine, &e->holders[i]) != TL_OK)
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    uint64_t from = mine.info.token;
    mine.info.token = e->last_token + 1;
    mine.info.mode = req->shared ? TL_SHARED : TL_EXCLUSIVE;
    mine.info.slots = req->shared ? req->slots : 0;
    mine.info.claimed_at_ms = mine.info.heartbeat_at_ms = now;
    if (tl__record_copy(&out->rec, &mine) != TL_OK) {
        tl__record_clear(&mine);
        return tl__store_fail(s, TL_ENOMEM, "out of memory");
    }
    char detail[400];
    int k = snprintf(detail, sizeof(detail), "from token %llu", (unsigned long long)from);
    if (stale > 0 && k > 0 && (size_t)k < sizeof(detail)) {
        char who[300];
        displaced(e, false, now, who, sizeof(who)); /* "from W (token M), ..." */
        (void)snprintf(detail + k, sizeof(detail) - (size_t)k, "; displaced %s",
                       strncmp(who, "from ", 5) == 0 ? who + 5 : who);
    }
    /* The holder moves to the end: the newest token. */
    for (size_t j = e->nholders; j-- > 0;) {
        struct tl_record r = e->holders[j];
        tl__record_judge(&r, now);
        if ((ptrdiff_t)j == i || (stale > 0 && r.info.stale && !req->shared))
            remove_holder(e, j);
    }
    e->holders[e->nholders++] = mine; /* a removal made room */
    e->last_token = mine.info.token;
    if (w != NULL)
        unlink_waiter(e, w);
    note(sp, now, req->shared ? TL_EVENT_DOWNGRADED : TL_EVENT_UPGRADED, &mine.info, detail);
    freed(sp);
    wake_head(sp, e);
    return TL_OK;
}

static tl_status memory_convert(struct tl_store *s, const struct tl_record *held,
                                const struct tl_claim *req, struct tl_claim_result *out)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    int64_t now = now_ms(s);

    pthread_mutex_lock(&sp->mu);
    tl_status st = convert_locked(s, sp, held, req, now, out);
    pthread_mutex_unlock(&sp->mu);
    return st;
}

/* Claim-next under sp->mu: each candidate in turn, as a claim without a waiter. */
static tl_status claim_next_locked(struct tl_store *s, struct mem_space *sp,
                                   const struct tl_claim *req, const struct tl_candidates *c,
                                   int64_t now, struct tl_claim_result *out, size_t *won,
                                   struct tl_next_tally *tally)
{
    struct tl_claim one = *req;

    one.waiter_id = NULL;
    *won = SIZE_MAX;
    memset(tally, 0, sizeof(*tally));
    if (c->keys == NULL)
        return tl__store_fail(s, TL_ENOTSUP, "the memory store has no labels; name the keys");
    for (size_t i = 0; i < c->nkeys; i++) {
        struct mem_entry *e = find(sp, c->keys[i]);
        if (e != NULL && e->done != NULL) {
            tally->done++;
            if (c->done_seen != NULL)
                c->done_seen[i] = 1;
            continue;
        }
        memset(out, 0, sizeof(*out));
        tl_status st = claim_locked(s, sp, &one, c->keys[i], now, out);
        if (st == TL_OK) {
            *won = i;
            return TL_OK;
        }
        if (st != TL_EBUSY)
            return st;
        if (out->holder_known)
            tally->held++;
        else
            tally->queued++;
        tl__record_clear(&out->rec);
    }
    memset(out, 0, sizeof(*out));
    return TL_EBUSY;
}

static tl_status memory_claim_next(struct tl_store *s, const struct tl_claim *req,
                                   const struct tl_candidates *c, struct tl_claim_result *out,
                                   size_t *won, struct tl_next_tally *tally)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    int64_t now = now_ms(s);

    pthread_mutex_lock(&sp->mu);
    tl_status st = claim_next_locked(s, sp, req, c, now, out, won, tally);
    pthread_mutex_unlock(&sp->mu);
    return st;
}

/* A renew; with `timeout` not 0, an extend to that lock timeout. */
static tl_status renew(struct tl_store *s, const struct tl_record *held, uint32_t timeout,
                       int64_t *heartbeat_at_ms)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    int64_t now = now_ms(s);
    tl_status st = TL_OK;

    pthread_mutex_lock(&sp->mu);
    struct mem_entry *e = find(sp, held->info.key);
    ptrdiff_t i = holder_index(e, held);
    if (i >= 0) {
        e->holders[i].info.heartbeat_at_ms = now;
        if (timeout != 0)
            e->holders[i].info.lock_timeout_ms = timeout;
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

static tl_status memory_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                              int64_t *heartbeat_at_ms)
{
    (void)seq;
    return renew(s, held, 0, heartbeat_at_ms);
}

static tl_status memory_extend(struct tl_store *s, const struct tl_record *held,
                               uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    if (lock_timeout_ms == 0)
        return tl__store_fail(s, TL_EINVAL, "a lock timeout must be more than zero");
    return renew(s, held, lock_timeout_ms, heartbeat_at_ms);
}

static tl_status memory_leave(struct tl_store *s, const char *key, const char *waiter_id)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;

    pthread_mutex_lock(&sp->mu);
    struct mem_entry *e = find(sp, key);
    struct mem_waiter *w = e != NULL ? find_waiter(e, waiter_id) : NULL;
    if (w != NULL) {
        unlink_waiter(e, w);
        if (e->nholders == 0 && e->line == NULL)
            freed(sp);
        prune(sp, e, now_ms(s));
    }
    pthread_mutex_unlock(&sp->mu);
    return TL_OK;
}

static tl_status memory_wait_turn(struct tl_store *s, const char *key, const char *waiter_id,
                                  uint32_t timeout_ms, bool *woken)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    struct timespec until;
    int64_t deadline = tl__real_mono_ms() + timeout_ms;

    /* The memory store waits by the real clock: the core calls this only with one. */
    if (s->deadline_mono_ms != 0 && s->deadline_mono_ms < deadline)
        deadline = s->deadline_mono_ms;
    until.tv_sec = (time_t)(deadline / 1000);
    until.tv_nsec = (long)(deadline % 1000) * 1000000L;
    *woken = false;
    pthread_mutex_lock(&sp->mu);
    for (;;) {
        struct mem_entry *e = find(sp, key);
        struct mem_waiter *w = e != NULL ? find_waiter(e, waiter_id) : NULL;
        if (w == NULL) {
            *woken = true; /* not in line (deleted as dead): the caller's claim puts it back */
            break;
        }
        if (w->signaled) {
            w->signaled = false;
            *woken = true;
            break;
        }
        if (pthread_cond_timedwait(&sp->turn, &sp->mu, &until) != 0 &&
            tl__real_mono_ms() >= deadline)
            break;
    }
    pthread_mutex_unlock(&sp->mu);
    return TL_OK;
}

/* Appends copies of the waiters of `e` (may be NULL) to the array. */
static tl_status push_line(const struct mem_entry *e, int64_t now, struct tl_waiter ***arr,
                           size_t *n, size_t *cap)
{
    for (const struct mem_waiter *w = e != NULL ? e->line : NULL; w != NULL; w = w->next) {
        struct tl_waiter *c = tl__waiter_new();
        if (c != NULL) {
            *c = w->w;
            c->key = tl__strdup(w->w.key);
            c->waiter_id = tl__strdup(w->w.waiter_id);
            c->worker_id = tl__strdup(w->w.worker_id);
            c->node_id = tl__strdup(w->w.node_id);
            c->holding = tl__strdup(w->w.holding ? w->w.holding : "");
            c->dead = !waiter_live(&w->w, now);
        }
        if (c == NULL || !c->key || !c->waiter_id || !c->worker_id || !c->node_id || !c->holding ||
            tl__waiter_array_push(arr, n, cap, c) != TL_OK) {
            tl__waiter_free(c);
            return TL_ENOMEM;
        }
    }
    return TL_OK;
}

static tl_status memory_waiters(struct tl_store *s, const char *key, struct tl_waiter ***out,
                                size_t *count)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    struct tl_waiter **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status st = TL_OK;
    int64_t now = now_ms(s);

    pthread_mutex_lock(&sp->mu);
    if (key != NULL) {
        st = push_line(find(sp, key), now, &arr, &n, &cap);
    } else { /* every waiter of the space: the wait-for graph */
        for (size_t i = 0; i < sp->nbuckets && st == TL_OK; i++)
            for (struct mem_entry *e = sp->buckets[i]; e != NULL && st == TL_OK; e = e->next)
                st = push_line(e, now, &arr, &n, &cap);
    }
    pthread_mutex_unlock(&sp->mu);
    if (st != TL_OK) {
        tl_waiter_array_free(arr, n);
        return tl__store_fail(s, st, "out of memory");
    }
    *out = arr;
    *count = n;
    return TL_OK;
}

/* A release under sp->mu; with `done`, the done marker first. */
static tl_status release_locked(struct tl_store *s, struct mem_space *sp,
                                const struct tl_record *held, const char *summary, bool done,
                                int64_t now)
{
    struct mem_entry *e = find(sp, held->info.key);
    ptrdiff_t i = holder_index(e, held);

    if (i >= 0) {
        if (done) {
            struct tl_done *d = tl__done_new();
            if (d != NULL) {
                d->key = tl__strdup(held->info.key);
                d->worker_id = tl__strdup(held->info.worker_id);
                d->node_id = tl__strdup(e->holders[i].info.node_id);
                d->summary = tl__strdup(summary ? summary : "");
                d->token = held->info.token;
                d->done_at_ms = now;
            }
            if (d == NULL || !d->key || !d->worker_id || !d->node_id || !d->summary) {
                tl__done_free(d);
                return tl__store_fail(s, TL_ENOMEM, "out of memory");
            }
            tl__done_free(e->done);
            e->done = d;
        }
        note(sp, now, done ? TL_EVENT_DONE : TL_EVENT_RELEASED, &held->info, summary);
        remove_holder(e, (size_t)i);
        freed(sp);
        prune(sp, e, now);
        return TL_OK;
    }
    bool token_held = false;
    for (size_t j = 0; e != NULL && j < e->nholders; j++)
        token_held = token_held || e->holders[j].info.token == held->info.token;
    if (e != NULL && e->last_token == held->info.token && !token_held)
        return TL_OK; /* already released by us, and no one has claimed it since */
    return tl__store_fail(s, TL_ENOTOWNER, "%s is not held by %s with token %llu", held->info.key,
                          held->info.worker_id, (unsigned long long)held->info.token);
}

static tl_status memory_release(struct tl_store *s, const struct tl_record *held,
                                const char *summary)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;

    pthread_mutex_lock(&sp->mu);
    tl_status st = release_locked(s, sp, held, summary, false, now_ms(s));
    pthread_mutex_unlock(&sp->mu);
    return st;
}

static tl_status memory_finish(struct tl_store *s, const struct tl_finish *f,
                               struct tl_finish_result *out)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    int64_t now = now_ms(s);

    pthread_mutex_lock(&sp->mu);
    tl_status st = release_locked(s, sp, f->held, f->summary, f->done, now);
    if (st == TL_OK && f->next != NULL) {
        out->next_tried = true;
        out->next_status = claim_next_locked(s, sp, f->next, f->candidates, now, &out->next,
                                             &out->won, &out->tally);
    }
    pthread_mutex_unlock(&sp->mu);
    return st;
}

static tl_status memory_reopen(struct tl_store *s, const char *key, const char *worker_id,
                               const char *node_id, bool *was_done)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;

    *was_done = false;
    pthread_mutex_lock(&sp->mu);
    struct mem_entry *e = find(sp, key);
    if (e != NULL && e->done != NULL) {
        const struct tl_info who = {.key = (char *)key,
                                    .worker_id = (char *)worker_id,
                                    .node_id = (char *)node_id,
                                    .token = e->done->token};
        char detail[200];
        (void)snprintf(detail, sizeof(detail), "done by %s (token %llu)", e->done->worker_id,
                       (unsigned long long)e->done->token);
        note(sp, now_ms(s), TL_EVENT_REOPENED, &who, detail);
        tl__done_free(e->done);
        e->done = NULL;
        *was_done = true;
        freed(sp);
    }
    pthread_mutex_unlock(&sp->mu);
    return TL_OK;
}

static int cmp_done_key(const void *a, const void *b)
{
    return strcmp((*(struct tl_done *const *)a)->key, (*(struct tl_done *const *)b)->key);
}

static tl_status memory_done_list(struct tl_store *s, const char *key, struct tl_done ***out,
                                  size_t *count)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    struct tl_done **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status st = TL_OK;

    pthread_mutex_lock(&sp->mu);
    for (size_t i = 0; i < sp->nbuckets && st == TL_OK; i++) {
        for (struct mem_entry *e = sp->buckets[i]; e != NULL && st == TL_OK; e = e->next) {
            if (e->done == NULL || (key != NULL && strcmp(e->key, key) != 0))
                continue;
            struct tl_done *d = tl__done_new();
            if (d != NULL) {
                *d = *e->done;
                d->key = tl__strdup(e->done->key);
                d->worker_id = tl__strdup(e->done->worker_id);
                d->node_id = tl__strdup(e->done->node_id);
                d->summary = tl__strdup(e->done->summary);
            }
            if (d == NULL || !d->key || !d->worker_id || !d->node_id || !d->summary ||
                tl__done_array_push(&arr, &n, &cap, d) != TL_OK) {
                tl__done_free(d);
                st = TL_ENOMEM;
            }
        }
    }
    pthread_mutex_unlock(&sp->mu);
    if (st != TL_OK) {
        tl_done_array_free(arr, n);
        return tl__store_fail(s, st, "out of memory");
    }
    if (n > 1)
        qsort(arr, n, sizeof(struct tl_done *), cmp_done_key);
    *out = arr;
    *count = n;
    return TL_OK;
}

/* Waits by the real clock (the core calls it only with one) until something may have freed a
 * candidate: any key freed, a line emptied, a task reopened. */
static tl_status memory_wait_any(struct tl_store *s, const struct tl_candidates *c,
                                 uint32_t timeout_ms)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    struct timespec until;
    int64_t deadline = tl__real_mono_ms() + timeout_ms;

    (void)c;
    if (s->deadline_mono_ms != 0 && s->deadline_mono_ms < deadline)
        deadline = s->deadline_mono_ms;
    until.tv_sec = (time_t)(deadline / 1000);
    until.tv_nsec = (long)(deadline % 1000) * 1000000L;
    pthread_mutex_lock(&sp->mu);
    uint64_t seen = sp->freed;
    while (sp->freed == seen) {
        if (pthread_cond_timedwait(&sp->turn, &sp->mu, &until) != 0 &&
            tl__real_mono_ms() >= deadline)
            break;
    }
    pthread_mutex_unlock(&sp->mu);
    return TL_OK;
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
    if (e == NULL || e->nholders == 0)
        goto out_unlock;
    ptrdiff_t which = -1; /* the one holder to remove; -1: all */
    for (size_t i = 0; req->token != 0 && i < e->nholders; i++)
        if (e->holders[i].info.token == req->token)
            which = (ptrdiff_t)i;
    st = tl__record_copy(former, which >= 0 ? &e->holders[which] : blocker(e));
    if (st != TL_OK) {
        st = tl__store_fail(s, st, "out of memory");
        goto out_unlock;
    }
    tl__record_judge(former, now);
    *found = true;
    if (req->token != 0 && which < 0) {
        st = tl__store_fail(s, TL_ENOTOWNER, "%s is held by %s with token %llu%s", req->key,
                            former->info.worker_id, (unsigned long long)former->info.token,
                            e->nholders > 1 ? " (and others), none with the token given" : "");
        goto out_unlock;
    }

    char detail[400];
    if (which >= 0)
        (void)snprintf(detail, sizeof(detail), "from %s (token %llu)", former->info.worker_id,
                       (unsigned long long)former->info.token);
    else
        displaced(e, true, now, detail, sizeof(detail));
    const struct tl_info who = {.key = (char *)req->key,
                                .worker_id = (char *)req->worker_id,
                                .node_id = (char *)req->node_id,
                                .token = e->last_token + 1};
    e->last_token = who.token; /* the holder's token is no longer the last: see store.h */
    for (size_t i = e->nholders; i-- > 0;)
        if (which < 0 || (size_t)which == i)
            remove_holder(e, i);
    note(sp, now, TL_EVENT_FORCED, &who, detail);
    note(sp, now, TL_EVENT_RELEASED, &who, req->summary);
    freed(sp);
    prune(sp, e, now);

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
    if (e != NULL && e->nholders > 0) {
        st = tl__record_copy(out, blocker(e));
        if (st == TL_OK) {
            int64_t now = now_ms(s);
            tl__record_judge(out, now);
            out->info.waiting = live_count(e, now);
            out->info.holders = (uint32_t)e->nholders;
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
    int c = strcmp(x->info.key, y->info.key);

    return c != 0 ? c : (x->info.token > y->info.token) - (x->info.token < y->info.token);
}

/* Appends a judged copy of holder j of `e` to the array. */
static tl_status push_holder(const struct mem_entry *e, size_t j, int64_t now,
                             struct tl_record ***arr, size_t *n, size_t *cap)
{
    struct tl_record *r = tl__record_new();

    if (r == NULL || tl__record_copy(r, &e->holders[j]) != TL_OK) {
        tl__free(r);
        return TL_ENOMEM;
    }
    tl__record_judge(r, now);
    r->info.waiting = live_count(e, now);
    r->info.holders = (uint32_t)e->nholders;
    tl_status st = tl__record_array_push(arr, n, cap, r);
    if (st != TL_OK)
        tl__record_free(r);
    return st;
}

static tl_status memory_holders(struct tl_store *s, const char *key, struct tl_record ***out,
                                size_t *count)
{
    struct mem_space *sp = ((struct memory_store *)s)->space;
    struct tl_record **arr = NULL;
    size_t n = 0, cap = 0;
    tl_status st = TL_OK;
    int64_t now = now_ms(s);

    pthread_mutex_lock(&sp->mu);
    struct mem_entry *e = find(sp, key);
    for (size_t j = 0; e != NULL && j < e->nholders && st == TL_OK; j++)
        st = push_holder(e, j, now, &arr, &n, &cap);
    pthread_mutex_unlock(&sp->mu);
    if (st != TL_OK) {
        tl_info_array_free((struct tl_info **)arr, n);
        return tl__store_fail(s, st, "out of memory");
    }
    *out = arr;
    *count = n;
    return TL_OK;
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
            for (size_t j = 0; j < e->nholders && st == TL_OK; j++)
                st = push_holder(e, j, now, &arr, &n, &cap);
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
    .leave = memory_leave,
    .wait_turn = memory_wait_turn,
    .waiters = memory_waiters,
    .extend = memory_extend,
    .claim_next = memory_claim_next,
    .finish = memory_finish,
    .reopen = memory_reopen,
    .done_list = memory_done_list,
    .wait_any = memory_wait_any,
    .holders = memory_holders,
    .convert = memory_convert,
};
