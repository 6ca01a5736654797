/*
 * registry.c -- the stores this build has, found by the scheme of a store URL. The only file
 * with #ifdef TL_WITH_*: each store's CMake fragment defines its switch.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "tl.h"

static const struct tl_store_ops *const stores[] = {
    &tl__store_memory,   &tl__store_sqlite,
#ifdef TL_WITH_GITHUB
    &tl__store_github,
#endif
#ifdef TL_WITH_REDIS
    &tl__store_redis,
#endif
#ifdef TL_WITH_POSTGRES
    &tl__store_postgres,
#endif
#ifdef TL_WITH_ETCD
    &tl__store_etcd,
#endif
};

/* Schemes people may write that name a store above by another name. */
static const struct {
    const char *alias;
    const char *scheme;
} aliases[] = {
    {"postgresql", "postgres"},
};

/* Schemes of stores we know of that this build does not have. */
static const char *const known[] = {"github", "redis", "postgres", "postgresql", "etcd"};

static size_t scheme_len(const char *url)
{
    size_t n = strcspn(url, ":");

    return url[n] == ':' ? n : 0;
}

static bool scheme_is(const char *url, size_t n, const char *scheme)
{
    return strlen(scheme) == n && strncmp(url, scheme, n) == 0;
}

const struct tl_store_ops *tl__store_find(const char *url)
{
    size_t n = url ? scheme_len(url) : 0;

    if (n == 0)
        return NULL;
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (scheme_is(url, n, aliases[i].alias)) {
            url = aliases[i].scheme;
            n = strlen(url);
        }
    }
    for (size_t i = 0; i < sizeof(stores) / sizeof(stores[0]); i++) {
        if (scheme_is(url, n, stores[i]->scheme))
            return stores[i];
    }
    return NULL;
}

bool tl__store_known_but_missing(const char *url)
{
    size_t n = url ? scheme_len(url) : 0;

    for (size_t i = 0; n > 0 && i < sizeof(known) / sizeof(known[0]); i++) {
        if (scheme_is(url, n, known[i]))
            return true;
    }
    return false;
}

tl_status tl__store_open(const char *url, const struct tl_store_ops *ops,
                         const struct tl_clock *clock, const struct tl_logger *log,
                         struct tl_store **out, char *err)
{
    tl_status st;

    if (ops == NULL)
        ops = tl__store_find(url);

    *out = NULL;
    if (ops == NULL) {
        char *shown = tl__redact_url(url);
        size_t n = url ? scheme_len(url) : 0;

        if (n == 0)
            st = TL_EINVAL;
        else
            st = tl__store_known_but_missing(url) ? TL_ENOTSUP : TL_EINVAL;
        if (n == 0)
            (void)snprintf(err, TL_ERRMSG_SIZE,
                           "store URL \"%s\" has no scheme (try sqlite:PATH, memory:, "
                           "github://OWNER/REPO, redis://HOST:PORT, postgres://...)",
                           shown ? shown : "?");
        else if (st == TL_ENOTSUP)
            (void)snprintf(err, TL_ERRMSG_SIZE, "store URL \"%s\": this build has no %.*s store",
                           shown ? shown : "?", (int)n, url);
        else
            (void)snprintf(err, TL_ERRMSG_SIZE,
                           "store URL \"%s\": unknown scheme \"%.*s\" (known: sqlite, memory, "
                           "github, redis, postgres)",
                           shown ? shown : "?", (int)n, url);
        tl__free(shown);
        return st;
    }

    struct tl_store *s = tl__calloc(1, ops->size);
    if (s == NULL) {
        (void)snprintf(err, TL_ERRMSG_SIZE, "out of memory");
        return TL_ENOMEM;
    }
    s->ops = ops;
    s->clock = clock;
    s->log = log;
    st = ops->open(s, url);
    if (st != TL_OK) {
        (void)snprintf(err, TL_ERRMSG_SIZE, "%s", s->errmsg[0] ? s->errmsg : tl_strerror(st));
        tl__store_close(s);
        return st;
    }
    *out = s;
    return TL_OK;
}

void tl__store_close(struct tl_store *s)
{
    if (s == NULL)
        return;
    s->ops->close(s);
    tl__free(s->resolved_url);
    tl__free(s);
}
