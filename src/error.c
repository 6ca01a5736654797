/*
 * error.c -- status texts and the per-handle message slots.
 */
#include <stdio.h>

#include "manager.h"
#include "store.h"
#include "tl.h"

const char *tl_strerror(tl_status st)
{
    switch (st) {
    case TL_OK: return "success";
    case TL_EINVAL: return "invalid argument";
    case TL_ENOMEM: return "out of memory";
    case TL_EBUSY: return "held by another owner";
    case TL_ENOTOWNER: return "not the owner";
    case TL_ELOST: return "lock lost";
    case TL_ETIMEDOUT: return "store timed out";
    case TL_ESTORE: return "store error";
    case TL_ENOTSUP: return "not supported";
    case TL_ERATELIMIT: return "rate limited";
    case TL_ECANCELED: return "cancelled";
    case TL_ENOTASK: return "no task left to claim";
    case TL_EDEADLK: return "deadlock: the wait would close a cycle of waits";
    }
    return "unknown status";
}

void tl__vformat(char *buf, const char *fmt, va_list ap)
{
    (void)vsnprintf(buf, TL_ERRMSG_SIZE, fmt, ap);
}

tl_status tl__fail(tl_manager *m, tl_status st, const char *fmt, ...)
{
    va_list ap;

    if (m == NULL)
        return st;
    va_start(ap, fmt);
    (void)vsnprintf(m->errmsg, sizeof(m->errmsg), fmt, ap);
    va_end(ap);
    return st;
}

tl_status tl__store_fail(struct tl_store *s, tl_status st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
    return st;
}
