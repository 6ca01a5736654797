/*
 * etcd.h -- internals of the etcd store that its tests and benchmarks look at. Not installed.
 * Built only when the etcd store is (TL_WITH_ETCD).
 */
#ifndef TL_STORES_ETCD_H
#define TL_STORES_ETCD_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* Counters of one store instance since it was opened. */
struct tl_etcd_stats {
    uint64_t requests;   /* unary gateway calls (each may have gone to several endpoints) */
    uint64_t claims;     /* claim calls */
    uint64_t renews;     /* renew calls */
    uint64_t keepalives; /* lease keep-alives sent */
    uint64_t grants;     /* leases granted */
    uint64_t watches;    /* watch streams opened */
};

/* Copies the counters of `s` and returns true, or returns false (zeroing `*out`) when `s` is not
 * an etcd store instance. */
bool tl__etcd_stats(const struct tl_store *s, struct tl_etcd_stats *out);

#endif /* TL_STORES_ETCD_H */
