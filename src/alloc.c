/*
 * alloc.c -- every allocation of the library goes through these functions, so that tests can
 * fail the Nth one (they wrap these symbols at link time) and check that nothing leaks or
 * crashes on the way out.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl.h"

void *tl__malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *tl__calloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size ? size : 1);
}

void *tl__realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}

void tl__free(void *p)
{
    free(p);
}

char *tl__strndup(const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    size_t len = strnlen(s, n);
    char *p = tl__malloc(len + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *tl__strdup(const char *s)
{
    return s == NULL ? NULL : tl__strndup(s, strlen(s));
}

char *tl__asprintf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;

    char *p = tl__malloc((size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    (void)vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void tl_free(void *p)
{
    tl__free(p);
}
