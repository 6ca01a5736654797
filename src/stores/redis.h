/*
 * redis.h -- internals of the Redis store that its tests look at. Not installed; nothing but the
 * tests uses it. Built only when the Redis store is (TL_WITH_REDIS).
 */
#ifndef TL_STORES_REDIS_H
#define TL_STORES_REDIS_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* Counters of one store instance (one connection pair), since it was opened. */
struct tl_redis_stats {
    uint64_t waits;           /* calls of the wait op */
    uint64_t woke_by_message; /* a release of the key was published while we listened */
    uint64_t woke_by_recheck; /* the key was already free once we had subscribed */
    uint64_t woke_by_timeout; /* no release came: the whole backoff was waited out */
    uint64_t wait_failures;   /* the wait returned an error (the manager then slept) */
    uint64_t reconnects;      /* connections made after the first one of this instance */
    uint64_t script_reloads;  /* scripts loaded again after the server answered NOSCRIPT */
    /* wait_any (a waiting claim-next), counted like the wait op's above */
    uint64_t any_waits;
    uint64_t any_woke_by_message; /* a candidate's release (leave, reopen) was published */
    uint64_t any_woke_by_recheck; /* a candidate was free (or none left) once we listened */
    uint64_t any_woke_by_timeout;
    uint64_t any_wait_failures;
    uint64_t claim_next_replays; /* claim-nexts sent again after the connection died */
    uint64_t round_trips;        /* commands sent and answered on the command connection */
};

/*
 * Copies the counters of `s` into `*out` and returns true, or returns false (and zeroes `*out`)
 * when `s` is not a Redis store instance. One thread per instance, like every store call.
 */
bool tl__redis_stats(const struct tl_store *s, struct tl_redis_stats *out);

#endif /* TL_STORES_REDIS_H */
