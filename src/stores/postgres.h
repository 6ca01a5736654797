/*
 * postgres.h -- test hooks of the PostgreSQL store (src/stores/postgres.c). Internal: used by
 * tests/integration/test_postgres_faults.c only; nothing here is part of the library's API.
 */
#ifndef TL_STORES_POSTGRES_H
#define TL_STORES_POSTGRES_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* What the wake-up wait (the store's `wait` op) did, counted per store instance. */
struct tl_pg_wait_stats {
    uint64_t calls;     /* wait() calls */
    uint64_t notified;  /* returned early: a release notification for the key arrived */
    uint64_t free;      /* returned at once: the re-check after LISTEN found the key free */
    uint64_t timed_out; /* waited the whole time */
    uint64_t failed;    /* could not listen (error returned, the caller slept), or the
                           connection broke while waiting (this call slept out the rest) */
};

/* Copies the counters of `s` into `*out`. False (and *out zeroed) if `s` is not a PostgreSQL
 * store instance. One thread per instance, like every store call. */
bool tl__postgres_wait_stats(const struct tl_store *s, struct tl_pg_wait_stats *out);

/* Swaps the server sessions (the main connections) of two PostgreSQL store instances, as a
 * transaction-pooling pooler does between transactions. False if either is not one. */
bool tl__postgres_swap_sessions(struct tl_store *a, struct tl_store *b);

/* The main connection of `s` (a `PGconn *`, NULL when not connected or not a PostgreSQL
 * store), for tests that inspect the session's state. Borrowed; valid until the next call on
 * `s`. */
void *tl__postgres_session(struct tl_store *s);

#endif /* TL_STORES_POSTGRES_H */
