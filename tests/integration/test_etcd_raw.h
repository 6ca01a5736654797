/*
 * test_etcd_raw.h -- the set-up that test_etcd_modes.c and test_etcd_convert.c share: the
 * store URL of this run (a prefix of its own on the etcd of tests/harness/start-etcd), store
 * instances on it, a claim that must win, and the raw reads beneath the store (a path of the
 * layout, one kv). Header-only (static functions), as each test is one file.
 */
#ifndef TL_TEST_ETCD_RAW_H
#define TL_TEST_ETCD_RAW_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "stores/etcd_int.h"
#include "tl.h"
#include "tl_test.h"

#define TIMEOUT_MS 60000

static const struct tl_logger quiet = {0};
static char url[512]; /* set by etcd_test_url() */

/* Sets `url` to $TL_TEST_ETCD_URL under a prefix of this run ("NAME-TIME-PID/"); false when
 * the test is to be skipped (no URL, or no etcd store in this build: then it says so). */
static inline bool etcd_test_url(const char *name)
{
    const char *base = tl_test_env("TL_TEST_ETCD_URL");

    if (base == NULL)
        return false;
    if (tl__store_find(base) == NULL) {
        (void)fprintf(stderr, "etcd %s: this build has no etcd store; skipped\n", name);
        return false;
    }
    (void)snprintf(url, sizeof(url), "%s?prefix=%s-%lx-%ld/", base, name, (unsigned long)time(NULL),
                   (long)getpid());
    return true;
}

static inline struct tl_store *open_store(void)
{
    char err[TL_ERRMSG_SIZE] = "";
    struct tl_store *s = NULL;

    if (tl__store_open(url, NULL, &tl__real_clock, &quiet, &s, err) != TL_OK)
        fail_msg("open %s: %s", url, err);
    return s;
}

static inline void must_claim(struct tl_store *s, const struct tl_claim *req, struct tl_record *out)
{
    struct tl_claim_result res;

    memset(&res, 0, sizeof(res));
    tl_status st = s->ops->claim(s, req, &res);
    if (st != TL_OK)
        fail_msg("claim %s by %s: %s: %s", req->key, req->worker_id, tl_strerror(st), s->errmsg);
    *out = res.rec;
}

/* PREFIX part key [ETCD_SEP id] of this run. */
static inline char *path(struct tl_store *s, const char *part, const char *key, const char *id)
{
    char *p = tl__etcd_path(es_of(s), part, key, id ? ETCD_SEP : NULL, id);

    assert_non_null(p);
    return p;
}

/* The key's one kv, or found false. */
static inline bool raw_get(struct tl_store *s, const char *key, struct etcd_kv *out)
{
    bool ok = true;
    json_t *req = tl__etcd_range_req(key, NULL, &ok), *ans = NULL;
    struct etcd_kv *kvs = NULL;
    size_t n = 0;

    assert_true(ok);
    assert_int_equal(tl__etcd_call(s, "/v3/kv/range", req, TL_ETCD_READ, &ans), TL_OK);
    assert_int_equal(tl__etcd_kvs_parse(s, ans, &kvs, &n), TL_OK);
    json_decref(req);
    json_decref(ans);
    memset(out, 0, sizeof(*out));
    if (n > 0) {
        *out = kvs[0];
        memset(&kvs[0], 0, sizeof(kvs[0]));
    }
    tl__etcd_kvs_free(kvs, n);
    return n > 0;
}

static inline void kv_free(struct etcd_kv *kv)
{
    tl__free(kv->key);
    tl__free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

#endif /* TL_TEST_ETCD_RAW_H */
