/*
 * log.c -- the library never prints; it hands formatted messages to the user's log callback.
 * Callers go through TL_LOG(), which checks the level before any formatting is done.
 */
#include <stdarg.h>
#include <stdio.h>

#include "tl.h"

void tl__log(const struct tl_logger *lg, int level, const char *fmt, ...)
{
    char buf[1024];

    if (lg == NULL || lg->fn == NULL || level > lg->level)
        return;

    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    lg->fn(lg->ud, level, buf);
}
