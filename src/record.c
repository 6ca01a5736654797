/*
 * record.c -- lock records and audit events: allocation, copying, staleness, arrays.
 */
#include <string.h>

#include "store.h"
#include "tl.h"

struct tl_record *tl__record_new(void)
{
    return tl__calloc(1, sizeof(struct tl_record));
}

void tl__record_clear(struct tl_record *r)
{
    if (r == NULL)
        return;
    tl__free(r->info.key);
    tl__free(r->info.worker_id);
    tl__free(r->info.node_id);
    tl__free(r->info.task_info);
    tl__free(r->opaque);
    memset(r, 0, sizeof(*r));
}

void tl__record_free(struct tl_record *r)
{
    tl__record_clear(r);
    tl__free(r);
}

static bool dup_field(char **dst, const char *src)
{
    if (src == NULL) {
        *dst = NULL;
        return true;
    }
    *dst = tl__strdup(src);
    return *dst != NULL;
}

tl_status tl__record_copy(struct tl_record *dst, const struct tl_record *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->info = src->info;
    dst->info.key = dst->info.worker_id = dst->info.node_id = dst->info.task_info = NULL;
    if (!dup_field(&dst->info.key, src->info.key) ||
        !dup_field(&dst->info.worker_id, src->info.worker_id) ||
        !dup_field(&dst->info.node_id, src->info.node_id) ||
        !dup_field(&dst->info.task_info, src->info.task_info) ||
        !dup_field(&dst->opaque, src->opaque)) {
        tl__record_clear(dst);
        return TL_ENOMEM;
    }
    return TL_OK;
}

void tl__record_judge(struct tl_record *r, int64_t now_ms)
{
    r->info.observed_at_ms = now_ms;
    /* Not `now - beat > timeout`: a corrupt beat (INT64_MIN) would overflow the subtraction. */
    r->info.stale = r->info.heartbeat_at_ms < now_ms - (int64_t)r->info.lock_timeout_ms;
}

void tl_info_free(struct tl_info *info)
{
    /* Every tl_info handed out is the head of a tl_record (see tl.h). */
    tl__record_free((struct tl_record *)info);
}

void tl_info_array_free(struct tl_info **infos, size_t count)
{
    if (infos == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        tl_info_free(infos[i]);
    tl__free(infos);
}

struct tl_event *tl__event_new(void)
{
    return tl__calloc(1, sizeof(struct tl_event));
}

void tl__event_free(struct tl_event *e)
{
    if (e == NULL)
        return;
    tl__free(e->key);
    tl__free(e->worker_id);
    tl__free(e->node_id);
    tl__free(e->detail);
    tl__free(e);
}

void tl_event_array_free(struct tl_event **events, size_t count)
{
    if (events == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        tl__event_free(events[i]);
    tl__free(events);
}

const char *tl_event_kind_name(tl_event_kind kind)
{
    switch (kind) {
    case TL_EVENT_ACQUIRED: return "acquired";
    case TL_EVENT_RELEASED: return "released";
    case TL_EVENT_STOLEN: return "stolen";
    case TL_EVENT_FORCED: return "forced";
    case TL_EVENT_LOST: return "lost";
    case TL_EVENT_DONE: return "done";
    case TL_EVENT_REOPENED: return "reopened";
    case TL_EVENT_UPGRADED: return "upgraded";
    case TL_EVENT_DOWNGRADED: return "downgraded";
    }
    return "unknown";
}

bool tl__event_kind_from_name(const char *name, tl_event_kind *out)
{
    for (int k = TL_EVENT_ACQUIRED; k <= TL_EVENT_DOWNGRADED; k++) {
        if (name != NULL && strcmp(name, tl_event_kind_name((tl_event_kind)k)) == 0) {
            *out = (tl_event_kind)k;
            return true;
        }
    }
    return false;
}

void tl__event_array_reverse(struct tl_event **arr, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        struct tl_event *t = arr[i];
        arr[i] = arr[n - 1 - i];
        arr[n - 1 - i] = t;
    }
}

static tl_status array_push(void ***arr, size_t *count, size_t *cap, void *item)
{
    if (*count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        void **n = tl__realloc(*arr, ncap * sizeof(**arr));

        if (n == NULL)
            return TL_ENOMEM;
        *arr = n;
        *cap = ncap;
    }
    (*arr)[(*count)++] = item;
    return TL_OK;
}

tl_status tl__record_array_push(struct tl_record ***arr, size_t *count, size_t *cap,
                                struct tl_record *r)
{
    void **a = (void **)*arr;
    tl_status st = array_push(&a, count, cap, r);

    *arr = (struct tl_record **)a;
    return st;
}

tl_status tl__event_array_push(struct tl_event ***arr, size_t *count, size_t *cap,
                               struct tl_event *e)
{
    void **a = (void **)*arr;
    tl_status st = array_push(&a, count, cap, e);

    *arr = (struct tl_event **)a;
    return st;
}

enum tl_verdict tl__claim_verdict(bool held, int64_t beat_ms, uint32_t timeout_ms,
                                  enum tl_claim_mode mode, int64_t now_ms)
{
    if (!held)
        return TL_VERDICT_FREE;

    bool stale = beat_ms < now_ms - (int64_t)timeout_ms; /* no overflow, as in judge */
    if (stale && mode != TL_CLAIM_NORMAL)
        return TL_VERDICT_STEAL;
    if (mode == TL_CLAIM_FORCE)
        return TL_VERDICT_FORCE;
    return TL_VERDICT_BUSY;
}

struct tl_waiter *tl__waiter_new(void)
{
    return tl__calloc(1, sizeof(struct tl_waiter));
}

void tl__waiter_free(struct tl_waiter *w)
{
    if (w == NULL)
        return;
    tl__free(w->key);
    tl__free(w->waiter_id);
    tl__free(w->worker_id);
    tl__free(w->node_id);
    tl__free(w->holding);
    tl__free(w);
}

void tl_waiter_array_free(struct tl_waiter **waiters, size_t count)
{
    if (waiters == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        tl__waiter_free(waiters[i]);
    tl__free(waiters);
}

tl_status tl__waiter_array_push(struct tl_waiter ***arr, size_t *count, size_t *cap,
                                struct tl_waiter *w)
{
    void **a = (void **)*arr;
    tl_status st = array_push(&a, count, cap, w);

    *arr = (struct tl_waiter **)a;
    return st;
}

struct tl_done *tl__done_new(void)
{
    return tl__calloc(1, sizeof(struct tl_done));
}

void tl__done_free(struct tl_done *d)
{
    if (d == NULL)
        return;
    tl__free(d->key);
    tl__free(d->worker_id);
    tl__free(d->node_id);
    tl__free(d->summary);
    tl__free(d);
}

void tl_done_array_free(struct tl_done **done, size_t count)
{
    if (done == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        tl__done_free(done[i]);
    tl__free(done);
}

tl_status tl__done_array_push(struct tl_done ***arr, size_t *count, size_t *cap, struct tl_done *d)
{
    void **a = (void **)*arr;
    tl_status st = array_push(&a, count, cap, d);

    *arr = (struct tl_done **)a;
    return st;
}

enum tl_admit tl__admit(bool shared, uint32_t slots, size_t n, bool any_exclusive,
                        uint32_t held_slots)
{
    if (n == 0)
        return TL_ADMIT_YES;
    if (!shared || any_exclusive)
        return TL_ADMIT_NO;
    if (held_slots != slots)
        return TL_ADMIT_MISMATCH;
    return slots == 0 || n < slots ? TL_ADMIT_YES : TL_ADMIT_NO;
}

tl_status tl__slots_mismatch(struct tl_store *s, const char *key, uint32_t held_slots,
                             uint32_t asked_slots)
{
    if (held_slots == 0)
        return tl__store_fail(s, TL_EINVAL,
                              "%s is held shared without a slot limit; this acquire asked for a "
                              "semaphore of %u slots",
                              key, asked_slots);
    if (asked_slots == 0)
        return tl__store_fail(s, TL_EINVAL,
                              "%s is a semaphore of %u slots; this acquire asked for a shared "
                              "lock without a slot limit",
                              key, held_slots);
    return tl__store_fail(s, TL_EINVAL,
                          "%s is a semaphore of %u slots; this acquire asked for %u slots", key,
                          held_slots, asked_slots);
}
