/*
 * test_redis_convert_replay.c -- the conversion script itself, run with EVAL on a plain
 * connection: sent twice with the same nonce (what the store does when the connection died
 * after the first sending, its reply lost), the second sending answers with the first one's
 * grant instead of TL_ELOST; sent with another nonce, it is lost. Against the server of
 * tests/harness/start-redis ($TL_TEST_REDIS_URI; skipped when unset), under a prefix of its
 * own. A file of its own: the scripts' names clash with the frozen older scripts of the other
 * tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager.h"
#include "store.h"
#include "tasklock.h"
#include "tl_test.h"

#ifndef TL_WITH_REDIS
int main(void)
{
    (void)fprintf(stderr, "redis convert replay: this build has no Redis store; skipped\n");
    return 77;
}
#else

#include <hiredis/hiredis.h>

#include "stores/redis_convert_scripts.h"
#include "stores/redis_holders_scripts.h"
#include "stores/redis_scripts.h"

#define LONG_TIMEOUT_MS 60000

static char url[512];
static char prefix[64];
static redisContext *raw;

/* The convert script as redis.c loads it (parts joined; comments and indentation stay). */
static char *convert_text(void)
{
    const char *const parts[] = {lua_prelude, lua_line,       lua_holders,        lua_holders2,
                                 lua_graph,   script_convert, script_convert_win, NULL};
    size_t len = 0;

    for (size_t i = 0; parts[i] != NULL; i++)
        len += strlen(parts[i]);
    char *text = calloc(1, len + 1);
    assert_non_null(text);
    for (size_t i = 0, at = 0; parts[i] != NULL; i++) {
        memcpy(text + at, parts[i], strlen(parts[i]));
        at += strlen(parts[i]);
    }
    return text;
}

/* Runs the convert script on `k`'s holder (worker, token) with `nonce`, upgrading. */
static redisReply *convert(const char *k, const char *worker, uint64_t token, const char *nonce)
{
    char rk[256], ck[256], hk[256], lk[256], wk[256], sk[256], gk[256], wp[256], chan[256];
    char tb[32];

    (void)snprintf(rk, sizeof(rk), "%slock:%s", prefix, k);
    (void)snprintf(ck, sizeof(ck), "%stoken:%s", prefix, k);
    (void)snprintf(hk, sizeof(hk), "%shistory", prefix);
    (void)snprintf(lk, sizeof(lk), "%sline:%s", prefix, k);
    (void)snprintf(wk, sizeof(wk), "%swaiters:%s", prefix, k);
    (void)snprintf(sk, sizeof(sk), "%slineseq:%s", prefix, k);
    (void)snprintf(gk, sizeof(gk), "%slines", prefix);
    (void)snprintf(wp, sizeof(wp), "%swake:%s:", prefix, k);
    (void)snprintf(chan, sizeof(chan), "%sreleased:%s", prefix, k);
    (void)snprintf(tb, sizeof(tb), "%llu", (unsigned long long)token);
    char *text = convert_text();
    const char *argv[] = {"EVAL", text,   "7",    rk,  ck,       hk,  lk,    wk,      sk,
                          gk,     worker, "node", tb,  "normal", "0", "0",   "60000", "1000",
                          k,      "",     "0",    "0", wp,       "",  nonce, chan};
    redisReply *r = redisCommandArgv(raw, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    free(text);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("EVAL: %s", r->str);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    return r;
}

static bool reply_is(const redisReply *r, size_t i, const char *text)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_STRING &&
           strcmp(r->element[i]->str, text) == 0;
}

static void a_resent_conversion_answers_with_its_first_grant(void **state)
{
    const char *k = "replayed";
    const struct tl_options o = {
        .store_url = url, .worker_id = "replay-w", .lock_timeout_ms = LONG_TIMEOUT_MS};
    tl_manager *m = tl_manager_new(&o);
    const struct tl_acquire_opts shared = {
        .strategy = TL_FAIL_FAST, .retries = TL_NO_RETRIES, .mode = TL_SHARED};
    tl_lock *l = NULL;

    (void)state;
    assert_non_null(m);
    assert_int_equal(tl_acquire(m, k, &shared, &l), TL_OK);
    uint64_t token = tl_lock_token(l);

    redisReply *first = convert(k, "replay-w", token, "nonce-1");
    assert_true(reply_is(first, 0, "won"));
    assert_true(reply_is(first, 2, "upgraded"));
    redisReply *again = convert(k, "replay-w", token, "nonce-1");
    assert_true(reply_is(again, 0, "won"));
    assert_true(reply_is(again, 2, "replayed"));
    assert_int_equal(again->element[5]->integer, first->element[5]->integer); /* its token */
    assert_int_equal(again->element[10]->integer, 0);                         /* exclusive */
    redisReply *other = convert(k, "replay-w", token, "nonce-2");
    assert_true(reply_is(other, 0, "lost"));
    freeReplyObject(first);
    freeReplyObject(again);
    freeReplyObject(other);

    struct tl_info **hs = NULL;
    size_t n = 0;
    assert_int_equal(tl_holders(m, k, &hs, &n), TL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hs[0]->mode, TL_EXCLUSIVE);
    tl_info_array_free(hs, n);
    struct tl_info *former = NULL;
    assert_int_equal(tl_release_force(m, k, 0, "done", &former), TL_OK);
    tl_info_free(former);
    tl_lock_free(l);
    tl_manager_free(m);
}

int main(void)
{
    const char *env = tl_test_env("TL_TEST_REDIS_URI");
    char host[256];

    if (env == NULL) {
        (void)fprintf(stderr, "redis convert replay: TL_TEST_REDIS_URI is not set; skipped\n");
        return 77;
    }
    const char *h = strncmp(env, "redis://", 8) == 0 ? env + 8 : NULL;
    const char *colon = h ? strchr(h, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (colon == NULL || (size_t)(colon - h) >= sizeof(host) || end == colon + 1 || port <= 0 ||
        port > 65535) {
        (void)fprintf(stderr, "redis convert replay: cannot read host and port of %s\n", env);
        return 77;
    }
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = '\0';
    (void)snprintf(prefix, sizeof(prefix), "tlreplay-%lx-%ld:", (unsigned long)time(NULL),
                   (long)getpid());
    (void)snprintf(url, sizeof(url), "%s%sprefix=%s", env, strchr(env, '?') ? "&" : "?", prefix);
    raw = redisConnect(host, (int)port);
    if (raw == NULL || raw->err) {
        (void)fprintf(stderr, "redis convert replay: cannot connect to %s:%ld\n", host, port);
        return 1;
    }
    /* The other scripts of the headers are not run here. */
    const char *const unused[] = {script_leave,         script_claim,   script_claim_busy,
                                  script_claim_win,     script_renew,   script_release,
                                  script_force_release, script_inspect, script_holders,
                                  script_read_many,     script_waiters, script_waiters_all};
    (void)unused;

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_resent_conversion_answers_with_its_first_grant),
    };
    int rc = cmocka_run_group_tests_name("redis/convert-replay", tests, NULL, NULL);
    redisFree(raw);
    return rc;
}

#endif /* TL_WITH_REDIS */
