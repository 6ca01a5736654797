/*
 * fake_store.c -- see fake_store.h.
 */
#include "fake_store.h"

#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct tl_fake_faults faults;

void tl_fake_reset(void)
{
    pthread_mutex_lock(&mu);
    memset(&faults, 0, sizeof(faults));
    pthread_mutex_unlock(&mu);
}

void tl_fake_with(void (*fn)(struct tl_fake_faults *f, void *arg), void *arg)
{
    pthread_mutex_lock(&mu);
    fn(&faults, arg);
    pthread_mutex_unlock(&mu);
}

static void set_renew_errors(struct tl_fake_faults *f, void *arg)
{
    f->renew_errors = *(int *)arg;
}

static void set_renew_lost(struct tl_fake_faults *f, void *arg)
{
    f->renew_lost = *(int *)arg;
}

void tl_fake_set_renew_errors(int n)
{
    tl_fake_with(set_renew_errors, &n);
}

void tl_fake_set_renew_lost(int n)
{
    tl_fake_with(set_renew_lost, &n);
}

unsigned tl_fake_renews(void)
{
    pthread_mutex_lock(&mu);
    unsigned n = faults.renews;
    pthread_mutex_unlock(&mu);
    return n;
}

/* Counts the call and consumes one fault from `counter`; true if this call must fail. */
static bool take(int *counter, unsigned *calls)
{
    pthread_mutex_lock(&mu);
    (*calls)++;
    bool fail = *counter > 0;
    if (fail)
        (*counter)--;
    pthread_mutex_unlock(&mu);
    return fail;
}

static tl_status fake_open(struct tl_store *s, const char *url)
{
    if (take(&faults.open_errors, &faults.opens))
        return tl__store_fail(s, TL_ESTORE, "fake: open refused");
    return tl__store_memory.open(s, url);
}

static tl_status fake_claim(struct tl_store *s, const struct tl_claim *req,
                            struct tl_claim_result *out)
{
    pthread_mutex_lock(&mu);
    void (*hook)(void *) = faults.before_claim;
    void *arg = faults.before_claim_arg;
    pthread_mutex_unlock(&mu);
    if (hook != NULL)
        hook(arg);

    if (take(&faults.claim_errors, &faults.claims))
        return tl__store_fail(s, TL_ESTORE, "fake: claim failed");
    return tl__store_memory.claim(s, req, out);
}

static tl_status fake_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                            int64_t *beat)
{
    pthread_mutex_lock(&mu);
    void (*hook)(void *) = faults.before_renew;
    void *arg = faults.before_renew_arg;
    faults.renew_deadline = s->deadline_mono_ms;
    int64_t relies_on = faults.renew_relies_on;
    pthread_mutex_unlock(&mu);
    if (hook != NULL)
        hook(arg);

    unsigned ignored;
    if (take(&faults.renew_lost, &faults.renews))
        return tl__store_fail(s, TL_ELOST, "fake: lock lost");
    if (take(&faults.renew_errors, &ignored))
        return tl__store_fail(s, TL_ESTORE, "fake: renew failed");
    tl_status st = tl__store_memory.renew(s, held, seq, beat);
    if (st == TL_OK && relies_on != 0)
        s->beat_sent_mono_ms = relies_on;
    return st;
}

static tl_status fake_release(struct tl_store *s, const struct tl_record *held, const char *summary)
{
    if (take(&faults.release_errors, &faults.releases))
        return tl__store_fail(s, TL_ESTORE, "fake: release failed");
    return tl__store_memory.release(s, held, summary);
}

static void fake_close(struct tl_store *s)
{
    tl__store_memory.close(s);
}

static tl_status fake_inspect(struct tl_store *s, const char *key, struct tl_record *out,
                              bool *found)
{
    return tl__store_memory.inspect(s, key, out, found);
}

const struct tl_store_ops *tl_fake_store(void)
{
    static struct tl_store_ops ops;

    pthread_mutex_lock(&mu);
    ops = (struct tl_store_ops){
        .version = TL_STORE_OPS_VERSION,
        .scheme = "memory",
        .size = tl__store_memory.size, /* the memory store's instance, faults in front */
        .open = fake_open,
        .close = fake_close,
        .claim = fake_claim,
        .renew = fake_renew,
        .release = fake_release,
        .inspect = fake_inspect,
    };
    pthread_mutex_unlock(&mu);
    return &ops;
}
