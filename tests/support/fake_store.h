/*
 * fake_store.h -- the memory store with faults on demand, for unit tests of the manager and the
 * heartbeat. Give it to a manager with tl__manager_set_store_ops(m, tl_fake_store()) and a
 * "memory:NAME" URL; every call then goes through the faults below before reaching the memory
 * store. Faults are counted down ("the next N calls"); counters record calls. Thread-safe.
 */
#ifndef TL_FAKE_STORE_H
#define TL_FAKE_STORE_H

#include <pthread.h>

#include "store.h"

struct tl_fake_faults {
    int claim_errors;   /* the next N claims fail with TL_ESTORE */
    int renew_errors;   /* the next N renews fail with TL_ESTORE */
    int renew_lost;     /* the next N renews answer TL_ELOST without asking the store */
    int release_errors; /* the next N releases fail with TL_ESTORE */
    int open_errors;    /* the next N opens fail with TL_ESTORE */
    unsigned claims, renews, releases, opens; /* calls seen */
    /* Called at the start of every renew, outside the fault mutex. */
    void (*before_renew)(void *arg);
    void *before_renew_arg;
    /* Called at the start of every claim, outside the fault mutex. */
    void (*before_claim)(void *arg);
    void *before_claim_arg;
    /* The deadline (struct tl_store.deadline_mono_ms) the last renew was given. */
    int64_t renew_deadline;
    /* Not 0: every successful renew says it relied on a write sent then (the clock's mono_ms:
     * struct tl_store.beat_sent_mono_ms), as a store whose locks hang on a lease or a session
     * does when that was written lately. */
    int64_t renew_relies_on;
};

const struct tl_store_ops *tl_fake_store(void);

/* Resets every fault and counter. */
void tl_fake_reset(void);
/* Runs `fn` with the faults locked, to set or read them. */
void tl_fake_with(void (*fn)(struct tl_fake_faults *f, void *arg), void *arg);
/* Shortcuts. */
void tl_fake_set_renew_errors(int n);
void tl_fake_set_renew_lost(int n);
unsigned tl_fake_renews(void);

#endif /* TL_FAKE_STORE_H */
