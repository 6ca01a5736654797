/*
 * gh_test.h -- the helpers that the GitHub store's integration tests (test_github_*.c) share
 * around their private tl-github-server (tests/github-server/spawn.h): an admin request, the
 * server's counters reset, its clock moved, an issue's comments (the admin view), a comment
 * added as any login, the claim on an issue with the session it names; and whether a manager
 * sees a key stale. The helpers that talk to the server take it; the issues are those of
 * GH_TEST_REPO. Failures fail the cmocka test.
 *
 * Header-only (static functions), as test_etcd_raw.h: the support library (tl_testsupport,
 * every .c file of tests/support) is built in every configuration and links neither the test
 * server's client, whose spawn.h this needs (its -iquote comes with tl_ghs_client), nor,
 * without TL_WITH_GITHUB, the GitHub store, whose claim parser it uses. Include it only where
 * TL_WITH_GITHUB is defined, in a test that links tl_ghs_client (tests/extra.cmake).
 */
#ifndef TL_GH_TEST_H
#define TL_GH_TEST_H

#ifndef TL_WITH_GITHUB
#error "gh_test.h needs the GitHub store (TL_WITH_GITHUB)"
#endif

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spawn.h"
#include "stores/github.h"
#include "tasklock.h"

#define GH_TEST_REPO "acme/widgets" /* the repository whose issues the helpers read and write */

/* One admin request to `g` (the response is not kept); returns the HTTP status, -1 on a
 * transport error. */
static inline int gh_admin(const struct tl_ghs *g, const char *method, const char *path,
                           const char *body)
{
    char *resp = NULL;
    int st = tl_ghs_admin(g, method, path, body, &resp);

    free(resp);
    return st;
}

/* Sets every counter of GET /_admin/stats (tl_ghs_stat()) back to 0. */
static inline void gh_stats_reset(const struct tl_ghs *g)
{
    assert_int_equal(gh_admin(g, "POST", "/_admin/stats/reset", NULL), 200);
}

/* Moves the server clock (every timestamp it gives, and its rate limit windows) `ms` forward. */
static inline void gh_advance_clock(const struct tl_ghs *g, uint32_t ms)
{
    char body[64];

    (void)snprintf(body, sizeof(body), "{\"advance_ms\":%u}", ms);
    assert_int_equal(gh_admin(g, "POST", "/_admin/clock", body), 200);
}

/* The live comments of issue `n` (admin view, hidden ones included): a JSON array, the
 * caller's to json_decref(). */
static inline json_t *gh_comments(const struct tl_ghs *g, int n)
{
    char path[128], *resp = NULL;

    (void)snprintf(path, sizeof(path), "/_admin/comments?repo=" GH_TEST_REPO "&number=%d", n);
    assert_int_equal(tl_ghs_admin(g, "GET", path, NULL, &resp), 200);
    json_t *arr = json_loads(resp, 0, NULL);
    free(resp);
    assert_true(json_is_array(arr));
    return arr;
}

/* How many live comments of issue `n` contain `text`. */
static inline int gh_count_bodies(const struct tl_ghs *g, int n, const char *text)
{
    json_t *arr = gh_comments(g, n), *c;
    size_t i;
    int k = 0;

    json_array_foreach(arr, i, c)
    {
        const char *b = json_string_value(json_object_get(c, "body"));
        k += b != NULL && strstr(b, text) != NULL;
    }
    json_decref(arr);
    return k;
}

/* Adds comment `body` to issue `n` as `login`, through the admin API; `extra` (JSON object
 * text, or NULL) adds fields of the admin request, such as "{\"hidden_reads\":2}". Returns the
 * new comment's id. */
static inline int64_t gh_add_comment_with(const struct tl_ghs *g, int n, const char *login,
                                          const char *body, const char *extra)
{
    json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "repo", GH_TEST_REPO, "number", n, "login", login,
                          "body", body);
    if (extra != NULL) {
        json_t *x = json_loads(extra, 0, NULL);
        assert_non_null(x);
        json_object_update(o, x);
        json_decref(x);
    }
    char *text = json_dumps(o, JSON_COMPACT), *resp = NULL;
    assert_int_equal(tl_ghs_admin(g, "POST", "/_admin/comments", text, &resp), 201);
    json_t *c = json_loads(resp, 0, NULL);
    int64_t id = (int64_t)json_integer_value(json_object_get(c, "id"));
    json_decref(c);
    free(resp);
    free(text);
    json_decref(o);
    return id;
}

/* gh_add_comment_with() without extra fields. */
static inline int64_t gh_add_comment(const struct tl_ghs *g, int n, const char *login,
                                     const char *body)
{
    return gh_add_comment_with(g, n, login, body, NULL);
}

/* The first claim marker on issue `n` into `out` (the caller clears it with
 * tl__gh_claim_clear()); false if the issue has none. */
static inline bool gh_claim_on(const struct tl_ghs *g, int n, struct tl_gh_claim *out)
{
    json_t *arr = gh_comments(g, n), *c;
    size_t i;
    bool found = false;

    json_array_foreach(arr, i, c)
    {
        json_t *body = json_object_get(c, "body");
        if (!found && json_is_string(body) &&
            tl__gh_parse_claim(json_string_value(body), json_string_length(body), out, NULL) ==
                TL_GH_CLAIM)
            found = true;
    }
    json_decref(arr);
    return found;
}

/* The session comment id that the claim on issue `n` (the first one) names: 0 if it names
 * none, or there is no claim. */
static inline int64_t gh_session_of(const struct tl_ghs *g, int n)
{
    struct tl_gh_claim c;

    if (!gh_claim_on(g, n, &c))
        return 0;
    int64_t id = c.session;
    tl__gh_claim_clear(&c);
    return id;
}

/* Whether `m` sees `key` stale (tl_inspect()). */
static inline bool gh_is_stale(tl_manager *m, const char *key)
{
    struct tl_info *info = NULL;

    assert_int_equal(tl_inspect(m, key, &info), TL_OK);
    assert_non_null(info);
    bool stale = info->stale;
    tl_info_free(info);
    return stale;
}

#endif /* TL_GH_TEST_H */
