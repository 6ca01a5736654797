/*
 * test_server.c -- tl-github-server against its PROTOCOL.md, over real HTTP with libcurl.
 * One private server for the whole group; each test starts with POST /_admin/reset.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>

#include "spawn.h"

#define TOKEN   "test-token"
#define OTHER   "other-token"
#define REPO    "/repos/acme/widgets"
#define REPO_ID "515435940"

/* ---- HTTP helper ---- */

struct res {
    long status;
    CURLcode cc;
    char *body;
    size_t len;
    char *hdrs;
    size_t hlen;
    json_t *json;
    int64_t ms; /* how long it took */
};

static size_t grow(char **buf, size_t *len, const char *data, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);

    if (!p)
        return 0;
    memcpy(p + *len, data, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
    return n;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct res *r = ud;
    return grow(&r->body, &r->len, ptr, size * nmemb);
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct res *r = ud;
    return grow(&r->hdrs, &r->hlen, ptr, size * nmemb);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum { NO_UA = 1 };

/* `path` is appended to the server URL unless it is a full URL; `token` NULL sends no
 * Authorization; `extra` is NULL or one more header line. */
static struct res call_ex(const struct tl_ghs *g, const char *method, const char *path,
                          const char *token, const char *body, const char *extra, int flags,
                          long timeout_ms)
{
    struct res r = {0};
    char url[4096], auth[256];
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();

    assert_non_null(c);
    if (strncmp(path, "http", 4) == 0)
        (void)snprintf(url, sizeof(url), "%s", path);
    else
        (void)snprintf(url, sizeof(url), "%s%s", g->url, path);
    if (token) {
        (void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    if (!(flags & NO_UA))
        h = curl_slist_append(h, "User-Agent: tl-test");
    h = curl_slist_append(h, "Accept: application/vnd.github+json");
    if (extra)
        h = curl_slist_append(h, extra);
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    (void)curl_easy_setopt(c, CURLOPT_URL, url);
    (void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    (void)curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    (void)curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (body)
        (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    int64_t t0 = mono_ms();
    r.cc = curl_easy_perform(c);
    r.ms = mono_ms() - t0;
    if (r.cc == CURLE_OK)
        (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    if (r.body)
        r.json = json_loadb(r.body, r.len, 0, NULL);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static struct res call(const struct tl_ghs *g, const char *method, const char *path,
                       const char *body)
{
    return call_ex(g, method, path, TOKEN, body, NULL, 0, 20000);
}

static void res_free(struct res *r)
{
    free(r->body);
    free(r->hdrs);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* Value of response header `name` (case-insensitive) into out; false if absent. */
static bool header(const struct res *r, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);

    for (const char *p = r->hdrs; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t vlen = len - (size_t)(v - p);
            if (vlen >= outlen)
                vlen = outlen - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return true;
        }
        p = eol ? eol + 2 : p + len;
    }
    return false;
}

static long header_num(const struct res *r, const char *name)
{
    char v[64];

    assert_true(header(r, name, v, sizeof(v)));
    return strtol(v, NULL, 10);
}

/* The URL of rel="<rel>" in the Link header, or false. */
static bool link_rel(const struct res *r, const char *rel, char *out, size_t outlen)
{
    char link[4096], want[32];

    if (!header(r, "Link", link, sizeof(link)))
        return false;
    (void)snprintf(want, sizeof(want), "rel=\"%s\"", rel);
    for (char *p = link; (p = strchr(p, '<')) != NULL;) {
        char *end = strchr(p, '>');
        if (!end)
            return false;
        char *next = strchr(end, ',');
        size_t span = next ? (size_t)(next - end) : strlen(end);
        char *hit = strstr(end, want);
        if (hit && (size_t)(hit - end) < span) {
            size_t n = (size_t)(end - p - 1);
            if (n >= outlen)
                return false;
            memcpy(out, p + 1, n);
            out[n] = '\0';
            return true;
        }
        p = end;
    }
    return false;
}

/* Admin call that must answer `want`; returns the parsed body (caller decrefs) or NULL. */
static json_t *admin(const struct tl_ghs *g, const char *method, const char *path, const char *body,
                     int want)
{
    char *resp = NULL;
    int status = tl_ghs_admin(g, method, path, body, &resp);

    if (status != want)
        (void)fprintf(stderr, "admin %s %s -> %d: %s\n", method, path, status, resp ? resp : "");
    assert_int_equal(status, want);
    json_t *j = resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    return j;
}

static void admin_ok(const struct tl_ghs *g, const char *path, const char *body)
{
    json_decref(admin(g, "POST", path, body, 200));
}

static int64_t jint(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* Creates a comment through the public API; returns its id. */
static int64_t post_comment(const struct tl_ghs *g, int issue, const char *text)
{
    char path[128], body[512];

    (void)snprintf(path, sizeof(path), REPO "/issues/%d/comments", issue);
    (void)snprintf(body, sizeof(body), "{\"body\":\"%s\"}", text);
    struct res r = call(g, "POST", path, body);
    assert_int_equal(r.status, 201);
    int64_t id = jint(r.json, "id");
    res_free(&r);
    return id;
}

static size_t list_len(const struct tl_ghs *g, int issue)
{
    char path[128];

    (void)snprintf(path, sizeof(path), REPO "/issues/%d/comments", issue);
    struct res r = call(g, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_is_array(r.json));
    size_t n = json_array_size(r.json);
    res_free(&r);
    return n;
}

static int64_t issue_comments(const struct tl_ghs *g, int issue)
{
    char path[128];

    (void)snprintf(path, sizeof(path), REPO "/issues/%d", issue);
    struct res r = call(g, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    int64_t n = jint(r.json, "comments");
    res_free(&r);
    return n;
}

/* ---- fixtures ---- */

static int group_setup(void **state)
{
    static const char *const args[] = {
        "--token",      "tasklock-bot=test-token",
        "--token",      "other-bot=other-token",
        "--repo",       "acme/widgets",
        "--repo",       "acme/gadgets",
        "--issues",     "5",
        "--assignable", "helper",
        NULL,
    };
    struct tl_ghs *g = calloc(1, sizeof(*g));

    if (!g)
        return -1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(g);
        return -1;
    }
    if (tl_ghs_spawn(NULL, args, g) != 0) {
        free(g);
        return -1;
    }
    *state = g;
    return 0;
}

static int group_teardown(void **state)
{
    struct tl_ghs *g = *state;
    int rc = tl_ghs_stop(g); /* non-zero when the server crashed or a sanitizer complained */

    free(g);
    curl_global_cleanup();
    return rc;
}

static int reset(void **state)
{
    struct tl_ghs *g = *state;

    return tl_ghs_admin(g, "POST", "/_admin/reset", "{}", NULL) == 200 ? 0 : -1;
}

/* ---- tests ---- */

static void auth_is_required(void **state)
{
    const struct tl_ghs *g = *state;
    static const char *const paths[][2] = {
        {"GET", REPO "/issues/1"},
        {"POST", REPO "/issues/1/comments"},
        {"GET", REPO "/issues/1/comments"},
        {"GET", "/user"},
        {"GET", "/rate_limit"},
        {"DELETE", REPO "/issues/comments/3000000001"},
        {"POST", REPO "/issues/1/assignees"},
        {"GET", "/repos/acme/nosuch/issues/1"},
    };

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct res r =
            call_ex(g, paths[i][0], paths[i][1], NULL, "{\"body\":\"x\"}", NULL, 0, 5000);
        assert_int_equal(r.status, 401);
        assert_string_equal(jstr(r.json, "message"), "Bad credentials");
        assert_int_equal(header_num(&r, "x-ratelimit-limit"), 60);
        res_free(&r);
        r = call_ex(g, paths[i][0], paths[i][1], "wrong-token", "{\"body\":\"x\"}", NULL, 0, 5000);
        assert_int_equal(r.status, 401);
        res_free(&r);
    }
    /* Both header forms work; /user names the token's login. */
    struct res r =
        call_ex(g, "GET", "/user", NULL, NULL, "Authorization: token other-token", 0, 5000);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "login"), "other-bot");
    res_free(&r);
    r = call(g, "GET", "/user", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "login"), "tasklock-bot");
    res_free(&r);
    assert_int_equal(tl_ghs_stat(g, "status:401"), 16);
}

static void user_agent_is_required(void **state)
{
    const struct tl_ghs *g = *state;
    struct res r = call_ex(g, "GET", REPO "/issues/1", TOKEN, NULL, NULL, NO_UA, 5000);

    assert_int_equal(r.status, 403);
    assert_non_null(strstr(jstr(r.json, "message"), "User-Agent"));
    res_free(&r);
    r = call_ex(g, "GET", REPO "/issues/1", TOKEN, NULL, "X-GitHub-Api-Version: 1999-01-01", 0,
                5000);
    assert_int_equal(r.status, 400);
    res_free(&r);
    r = call_ex(g, "GET", REPO "/issues/1", TOKEN, NULL, "X-GitHub-Api-Version: 2022-11-28", 0,
                5000);
    assert_int_equal(r.status, 200);
    res_free(&r);
}

static void every_response_has_date_and_rate_headers(void **state)
{
    const struct tl_ghs *g = *state;
    char date[64], v[64];
    static const char *const paths[] = {REPO "/issues/1", REPO "/issues/99", "/nope",
                                        REPO "/issues/1/comments"};

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct res r = call(g, "GET", paths[i], NULL);
        assert_true(header(&r, "Date", date, sizeof(date)));
        assert_non_null(strstr(date, " GMT"));
        assert_int_equal(strlen(date), 29); /* IMF-fixdate */
        assert_int_equal(header_num(&r, "x-ratelimit-limit"), 5000);
        assert_int_equal(header_num(&r, "x-ratelimit-used"), (long)i + 1);
        assert_int_equal(header_num(&r, "x-ratelimit-remaining"), 5000 - (long)i - 1);
        assert_true(header_num(&r, "x-ratelimit-reset") > 1700000000L);
        assert_true(header(&r, "x-ratelimit-resource", v, sizeof(v)));
        assert_string_equal(v, "core");
        res_free(&r);
    }
    /* /rate_limit reports without spending. */
    struct res r = call(g, "GET", "/rate_limit", NULL);
    assert_int_equal(r.status, 200);
    json_t *core = json_object_get(json_object_get(r.json, "resources"), "core");
    assert_int_equal(jint(core, "used"), 4);
    assert_int_equal(jint(core, "remaining"), 4996);
    assert_int_equal(header_num(&r, "x-ratelimit-used"), 4);
    res_free(&r);
    /* An admin response has a Date too. */
    char *body = NULL;
    assert_int_equal(tl_ghs_admin(g, "GET", "/_admin/clock", NULL, &body), 200);
    free(body);
}

static void primary_budget_runs_out(void **state)
{
    const struct tl_ghs *g = *state;

    json_decref(admin(g, "POST", "/_admin/rate_limit", "{\"limit\":3}", 200));
    for (int i = 0; i < 3; i++) {
        struct res r = call(g, "GET", REPO "/issues/1", NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(header_num(&r, "x-ratelimit-remaining"), 2 - i);
        res_free(&r);
    }
    struct res r = call(g, "GET", REPO "/issues/1", NULL);
    assert_int_equal(r.status, 403);
    assert_int_equal(header_num(&r, "x-ratelimit-remaining"), 0);
    assert_non_null(strstr(jstr(r.json, "message"), "API rate limit exceeded"));
    res_free(&r);
    /* Per login: the other account still has its budget. */
    r = call_ex(g, "GET", REPO "/issues/1", OTHER, NULL, NULL, 0, 5000);
    assert_int_equal(r.status, 200);
    res_free(&r);
    /* The window ends with the server clock. */
    json_decref(admin(g, "POST", "/_admin/clock", "{\"offset_ms\":3601000}", 200));
    r = call(g, "GET", REPO "/issues/1", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(header_num(&r, "x-ratelimit-used"), 1);
    res_free(&r);
}

static void pagination_and_link(void **state)
{
    const struct tl_ghs *g = *state;
    char next[1024], last[1024], first[1024], prev[1024];

    for (int i = 0; i < 250; i++) {
        char body[160];
        (void)snprintf(body, sizeof(body),
                       "{\"repo\":\"acme/widgets\",\"number\":1,\"login\":\"tasklock-bot\","
                       "\"body\":\"c%d\"}",
                       i);
        json_decref(admin(g, "POST", "/_admin/comments", body, 201));
    }
    /* Defaults: 30 a page. */
    struct res r = call(g, "GET", REPO "/issues/1/comments", NULL);
    assert_int_equal(json_array_size(r.json), 30);
    assert_true(link_rel(&r, "last", last, sizeof(last)));
    assert_non_null(strstr(last, "page=9"));
    res_free(&r);
    /* per_page is capped at 100. */
    r = call(g, "GET", REPO "/issues/1/comments?per_page=500", NULL);
    assert_int_equal(json_array_size(r.json), 100);
    res_free(&r);

    r = call(g, "GET", REPO "/issues/1/comments?per_page=100", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 100);
    assert_true(link_rel(&r, "next", next, sizeof(next)));
    assert_true(link_rel(&r, "last", last, sizeof(last)));
    assert_false(link_rel(&r, "prev", prev, sizeof(prev)));
    char want[256];
    (void)snprintf(want, sizeof(want),
                   "%s/repositories/" REPO_ID "/issues/1/comments?per_page=100&page=2", g->url);
    assert_string_equal(next, want);
    assert_non_null(
        strstr(last, "/repositories/" REPO_ID "/issues/1/comments?per_page=100&page=3"));

    int64_t prev_id = 0;
    size_t seen = 0;
    for (int page = 1;; page++) {
        size_t i;
        json_t *c;
        json_array_foreach(r.json, i, c)
        {
            assert_true(jint(c, "id") > prev_id);
            assert_true(jint(c, "id") > INT64_C(2147483648));
            prev_id = jint(c, "id");
            seen++;
        }
        bool more = link_rel(&r, "next", next, sizeof(next));
        if (page == 3) {
            assert_int_equal(json_array_size(r.json), 50);
            assert_false(more);
            assert_true(link_rel(&r, "first", first, sizeof(first)));
            assert_true(link_rel(&r, "prev", prev, sizeof(prev)));
            assert_non_null(strstr(prev, "page=2"));
        }
        res_free(&r);
        if (!more)
            break;
        r = call(g, "GET", next, NULL); /* followed verbatim: the /repositories/{id} form */
        assert_int_equal(r.status, 200);
    }
    assert_int_equal(seen, 250);
    assert_int_equal(issue_comments(g, 1), 250);

    /* Past the end: an empty page. Nonsense parameters: the defaults. */
    r = call(g, "GET", REPO "/issues/1/comments?per_page=100&page=4", NULL);
    assert_int_equal(json_array_size(r.json), 0);
    res_free(&r);
    r = call(g, "GET", REPO "/issues/1/comments?per_page=abc&page=-3", NULL);
    assert_int_equal(json_array_size(r.json), 30);
    res_free(&r);
    r = call(g, "GET", REPO "/issues/1/comments?page=99999999999999999999999", NULL);
    assert_int_equal(r.status, 200);
    res_free(&r);
    r = call(g, "GET", REPO "/issues/1/comments?page=999999999999999999&per_page=100", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 0);
    res_free(&r);
    r = call(g, "GET", REPO "/assignees?page=999999999999999999&per_page=100", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 0);
    res_free(&r);
    /* A single page has no Link. */
    r = call(g, "GET", REPO "/issues/2/comments", NULL);
    assert_false(header(&r, "Link", next, sizeof(next)));
    res_free(&r);
}

static void etag_and_304_is_free(void **state)
{
    const struct tl_ghs *g = *state;
    char etag[128], inm[160], etag2[128];

    post_comment(g, 1, "one");
    struct res r = call(g, "GET", REPO "/issues/1/comments", NULL);
    assert_int_equal(r.status, 200);
    assert_true(header(&r, "ETag", etag, sizeof(etag)));
    assert_true(etag[0] == '"' && etag[strlen(etag) - 1] == '"');
    long used = header_num(&r, "x-ratelimit-used");
    res_free(&r);

    (void)snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
    for (int i = 0; i < 3; i++) {
        r = call_ex(g, "GET", REPO "/issues/1/comments", TOKEN, NULL, inm, 0, 5000);
        assert_int_equal(r.status, 304);
        assert_int_equal(r.len, 0);
        assert_int_equal(header_num(&r, "x-ratelimit-used"), used);
        assert_true(header(&r, "ETag", etag2, sizeof(etag2)));
        assert_string_equal(etag2, etag);
        res_free(&r);
    }
    /* Weak form and lists are accepted too. */
    (void)snprintf(inm, sizeof(inm), "If-None-Match: \"zzz\", W/%s", etag);
    r = call_ex(g, "GET", REPO "/issues/1/comments", TOKEN, NULL, inm, 0, 5000);
    assert_int_equal(r.status, 304);
    res_free(&r);
    assert_int_equal(tl_ghs_stat(g, "not_modified"), 4);
    assert_int_equal(tl_ghs_stat(g, "status:304"), 4);

    /* A change gives a new ETag. */
    post_comment(g, 1, "two");
    (void)snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
    r = call_ex(g, "GET", REPO "/issues/1/comments", TOKEN, NULL, inm, 0, 5000);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    assert_int_equal(header_num(&r, "x-ratelimit-used"), used + 2);
    res_free(&r);
}

static void assignees(void **state)
{
    const struct tl_ghs *g = *state;

    /* A login without push access is silently ignored, with 201. */
    struct res r = call(g, "POST", REPO "/issues/1/assignees",
                        "{\"assignees\":[\"tasklock-bot\",\"stranger\"]}");
    assert_int_equal(r.status, 201);
    json_t *as = json_object_get(r.json, "assignees");
    assert_int_equal(json_array_size(as), 1);
    assert_string_equal(jstr(json_array_get(as, 0), "login"), "tasklock-bot");
    assert_string_equal(jstr(json_object_get(r.json, "assignee"), "login"), "tasklock-bot");
    res_free(&r);

    r = call(g, "GET", REPO "/issues/1/assignees/tasklock-bot", NULL);
    assert_int_equal(r.status, 204);
    res_free(&r);
    r = call(g, "GET", REPO "/issues/1/assignees/stranger", NULL);
    assert_int_equal(r.status, 404);
    res_free(&r);
    r = call(g, "GET", REPO "/assignees/helper", NULL);
    assert_int_equal(r.status, 204);
    res_free(&r);
    r = call(g, "GET", REPO "/assignees", NULL);
    assert_int_equal(json_array_size(r.json), 3);
    res_free(&r);

    /* At most 10. */
    char body[1024] = "{\"assignees\":[";
    for (int i = 0; i < 12; i++) {
        char user[160];
        (void)snprintf(user, sizeof(user), "{\"login\":\"dev%d\",\"assignable\":true}", i);
        json_decref(admin(g, "POST", "/_admin/users", user, 200));
        (void)snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s\"dev%d\"",
                       i ? "," : "", i);
    }
    (void)snprintf(body + strlen(body), sizeof(body) - strlen(body), "]}");
    r = call(g, "POST", REPO "/issues/1/assignees", body);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_array_size(json_object_get(r.json, "assignees")), 10);
    res_free(&r);

    /* DELETE with a JSON body: 200 with the issue. */
    r = call(g, "DELETE", REPO "/issues/1/assignees",
             "{\"assignees\":[\"tasklock-bot\",\"dev0\"]}");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "assignees")), 8);
    res_free(&r);

    /* PATCH replaces the whole set. */
    r = call(g, "PATCH", REPO "/issues/1", "{\"assignees\":[\"other-bot\",\"nobody\"]}");
    assert_int_equal(r.status, 200);
    as = json_object_get(r.json, "assignees");
    assert_int_equal(json_array_size(as), 1);
    assert_string_equal(jstr(json_array_get(as, 0), "login"), "other-bot");
    res_free(&r);

    /* Bad input. */
    r = call(g, "POST", REPO "/issues/1/assignees", "{\"assignees\":\"x\"}");
    assert_int_equal(r.status, 422);
    res_free(&r);
    r = call(g, "POST", REPO "/issues/1/assignees", "{\"assignees\":[");
    assert_int_equal(r.status, 400);
    res_free(&r);
}

static void comment_crud(void **state)
{
    const struct tl_ghs *g = *state;
    char path[128], loc[256], want[256];

    struct res r = call(g, "POST", REPO "/issues/2/comments", "{\"body\":\"claim <!-- x -->\"}");
    assert_int_equal(r.status, 201);
    int64_t id = jint(r.json, "id");
    assert_true(id > INT64_C(2147483648));
    assert_true(header(&r, "Location", loc, sizeof(loc)));
    (void)snprintf(want, sizeof(want), "%s" REPO "/issues/comments/%lld", g->url, (long long)id);
    assert_string_equal(loc, want);
    assert_string_equal(jstr(json_object_get(r.json, "user"), "login"), "tasklock-bot");
    assert_string_equal(jstr(r.json, "body"), "claim <!-- x -->");
    assert_non_null(strstr(jstr(r.json, "issue_url"), REPO "/issues/2"));
    const char *created = jstr(r.json, "created_at");
    assert_int_equal(strlen(created), 20);
    assert_int_equal(created[19], 'Z');
    char created_at[32];
    (void)snprintf(created_at, sizeof(created_at), "%s", created);
    res_free(&r);
    assert_int_equal(issue_comments(g, 2), 1);

    (void)snprintf(path, sizeof(path), REPO "/issues/comments/%lld", (long long)id);
    r = call(g, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(jint(r.json, "id"), id);
    res_free(&r);

    /* PATCH bumps updated_at (the clock moves so that the second changes). */
    json_decref(admin(g, "POST", "/_admin/clock", "{\"advance_ms\":5000}", 200));
    r = call(g, "PATCH", path, "{\"body\":\"heartbeat 1\"}");
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "body"), "heartbeat 1");
    assert_string_equal(jstr(r.json, "created_at"), created_at);
    assert_true(strcmp(jstr(r.json, "updated_at"), created_at) > 0);
    res_free(&r);

    /* Only the author may edit; a push user may delete. */
    r = call_ex(g, "PATCH", path, OTHER, "{\"body\":\"mine now\"}", NULL, 0, 5000);
    assert_int_equal(r.status, 403);
    res_free(&r);
    r = call(g, "PATCH", path, "{}");
    assert_int_equal(r.status, 422);
    res_free(&r);
    r = call(g, "PATCH", path, "{\"body\":1}");
    assert_int_equal(r.status, 422);
    res_free(&r);

    r = call(g, "DELETE", path, NULL);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    res_free(&r);
    r = call(g, "DELETE", path, NULL);
    assert_int_equal(r.status, 404);
    res_free(&r);
    r = call(g, "GET", path, NULL);
    assert_int_equal(r.status, 404);
    res_free(&r);
    r = call(g, "PATCH", path, "{\"body\":\"late heartbeat\"}");
    assert_int_equal(r.status, 404);
    res_free(&r);
    assert_int_equal(issue_comments(g, 2), 0);

    /* An untrusted account's comment: another push user may delete it, not edit it. */
    json_t *c = admin(g, "POST", "/_admin/comments",
                      "{\"repo\":\"acme/widgets\",\"number\":2,\"login\":\"mallory\","
                      "\"body\":\"<!-- tasklock fake -->\"}",
                      201);
    assert_string_equal(jstr(json_object_get(c, "user"), "login"), "mallory");
    (void)snprintf(path, sizeof(path), REPO "/issues/comments/%lld", (long long)jint(c, "id"));
    json_decref(c);
    r = call_ex(g, "DELETE", path, OTHER, NULL, NULL, 0, 5000);
    assert_int_equal(r.status, 204);
    res_free(&r);

    /* Comment in another repo is not found through this one. */
    id = post_comment(g, 1, "x");
    (void)snprintf(path, sizeof(path), "/repos/acme/gadgets/issues/comments/%lld", (long long)id);
    r = call(g, "GET", path, NULL);
    assert_int_equal(r.status, 404);
    res_free(&r);
}

static void bad_requests(void **state)
{
    const struct tl_ghs *g = *state;
    static const char *const not_found[] = {
        REPO "/issues/1/",
        REPO "/issues/0",
        REPO "/issues/-1",
        REPO "/issues/abc",
        REPO "/issues/99999999999999999999999",
        REPO "/issues/6",
        "/repos/acme/nosuch/issues/1",
        "/repos/acme/widgets//issues/1",
        "/repositories/1/issues/1",
        "/",
        "/user/",
        REPO "/issues/1/comments/3000000001",
        REPO "/issues/comments/notanumber",
    };
    for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
        struct res r = call(g, "GET", not_found[i], NULL);
        if (r.status != 404)
            (void)fprintf(stderr, "%s -> %ld\n", not_found[i], r.status);
        assert_int_equal(r.status, 404);
        res_free(&r);
    }
    struct res r = call(g, "PUT", REPO "/issues/1", "{}");
    assert_int_equal(r.status, 404);
    res_free(&r);
    assert_true(tl_ghs_stat(g, "other") >= 5);

    /* Bodies. */
    r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":");
    assert_int_equal(r.status, 400);
    assert_string_equal(jstr(r.json, "message"), "Problems parsing JSON");
    res_free(&r);
    r = call(g, "POST", REPO "/issues/1/comments", "[1,2]");
    assert_int_equal(r.status, 400);
    res_free(&r);
    r = call(g, "POST", REPO "/issues/1/comments", "{\"text\":\"no body\"}");
    assert_int_equal(r.status, 422);
    assert_string_equal(jstr(json_array_get(json_object_get(r.json, "errors"), 0), "code"),
                        "missing_field");
    res_free(&r);
    r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":\"\"}");
    assert_int_equal(r.status, 422);
    res_free(&r);

    /* 65536 characters (here 2-byte ones) pass, one more does not. */
    size_t n = 65536;
    char *big = malloc(2 * n + 32);
    assert_non_null(big);
    memcpy(big, "{\"body\":\"", 9);
    char *p = big + 9;
    for (size_t i = 0; i < n; i++) {
        *p++ = (char)0xC3;
        *p++ = (char)0xA9;
    }
    memcpy(p, "\"}", 3);
    r = call(g, "POST", REPO "/issues/1/comments", big);
    assert_int_equal(r.status, 201);
    res_free(&r);
    memcpy(p, "x\"}", 4);
    r = call(g, "POST", REPO "/issues/1/comments", big);
    assert_int_equal(r.status, 422);
    res_free(&r);
    free(big);

    /* More than 1 MiB: 413, and the server lives on. */
    size_t huge = (size_t)2 * 1024 * 1024;
    big = malloc(huge + 1);
    assert_non_null(big);
    memset(big, 'a', huge);
    big[huge] = '\0';
    r = call(g, "POST", REPO "/issues/1/comments", big);
    assert_int_equal(r.status, 413);
    res_free(&r);
    free(big);
    assert_int_equal(issue_comments(g, 1), 1);

    /* Garbage on the admin API. */
    json_decref(admin(g, "POST", "/_admin/faults", "{nope", 400));
    json_decref(admin(g, "POST", "/_admin/faults", "{\"no_such_knob\":1}", 400));
    json_decref(admin(g, "POST", "/_admin/faults", "{\"status_5xx\":-1}", 400));
    json_decref(admin(g, "POST", "/_admin/clock", "{\"offset_ms\":\"soon\"}", 400));
    json_decref(admin(g, "POST", "/_admin/issues", "{\"repo\":\"x/y\"}", 404));
    json_decref(admin(g, "POST", "/_admin/comments", "{\"repo\":\"acme/widgets\"}", 400));
    json_decref(admin(g, "GET", "/_admin/nothing", NULL, 404));
    r = call(g, "GET", "/user", NULL);
    assert_int_equal(r.status, 200);
    res_free(&r);
}

static void since_filters_on_updated_at(void **state)
{
    const struct tl_ghs *g = *state;
    char path[256];

    int64_t first = post_comment(g, 3, "first");
    json_decref(admin(g, "POST", "/_admin/clock", "{\"advance_ms\":10000}", 200));
    struct res r = call(g, "POST", REPO "/issues/3/comments", "{\"body\":\"second\"}");
    char second_at[32];
    (void)snprintf(second_at, sizeof(second_at), "%s", jstr(r.json, "created_at"));
    res_free(&r);

    /* Inclusive: since == created_at of the second keeps it. */
    (void)snprintf(path, sizeof(path), REPO "/issues/3/comments?since=%s", second_at);
    r = call(g, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    assert_string_equal(jstr(json_array_get(r.json, 0), "body"), "second");
    res_free(&r);

    /* A heartbeat (PATCH) brings the first back. */
    json_decref(admin(g, "POST", "/_admin/clock", "{\"advance_ms\":2000}", 200));
    char cpath[128];
    (void)snprintf(cpath, sizeof(cpath), REPO "/issues/comments/%lld", (long long)first);
    r = call(g, "PATCH", cpath, "{\"body\":\"first, beat 1\"}");
    assert_int_equal(r.status, 200);
    res_free(&r);
    r = call(g, "GET", path, NULL);
    assert_int_equal(json_array_size(r.json), 2);
    assert_int_equal(jint(json_array_get(r.json, 0), "id"), first); /* still id order */
    res_free(&r);

    /* Repo-wide list: sort/direction. */
    r = call(g, "GET", REPO "/issues/comments?sort=updated&direction=desc", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    assert_int_equal(jint(json_array_get(r.json, 0), "id"), first);
    res_free(&r);
    r = call(g, "GET", REPO "/issues/comments", NULL);
    assert_int_equal(jint(json_array_get(r.json, 0), "id"), first);
    res_free(&r);
    r = call(g, "GET", "/repositories/" REPO_ID "/issues/comments?direction=desc", NULL);
    assert_int_equal(r.status, 200);
    assert_true(jint(json_array_get(r.json, 0), "id") > first);
    res_free(&r);
    r = call(g, "GET", REPO "/issues/comments?sort=size", NULL);
    assert_int_equal(r.status, 422);
    res_free(&r);

    r = call(g, "GET", REPO "/issues/3/comments?since=yesterday", NULL);
    assert_int_equal(r.status, 422);
    res_free(&r);
    r = call(g, "GET", REPO "/issues/3/comments?since=2000-01-01T00:00:00%2B02:00", NULL);
    assert_int_equal(json_array_size(r.json), 2);
    res_free(&r);
}

static void clock_offset_moves_date_and_timestamps(void **state)
{
    const struct tl_ghs *g = *state;

    json_t *c0 = admin(g, "GET", "/_admin/clock", NULL, 200);
    int64_t before = jint(c0, "now_epoch_s");
    json_decref(c0);
    json_t *c1 = admin(g, "POST", "/_admin/clock", "{\"offset_ms\":86400000}", 200);
    assert_int_equal(jint(c1, "offset_ms"), 86400000);
    int64_t after = jint(c1, "now_epoch_s");
    assert_true(after - before >= 86399 && after - before <= 86402);
    json_decref(c1);
    /* Absolute: setting it again does not add. */
    c1 = admin(g, "POST", "/_admin/clock", "{\"offset_ms\":86400000}", 200);
    assert_true(jint(c1, "now_epoch_s") - before <= 86402);
    char now[32];
    (void)snprintf(now, sizeof(now), "%s", jstr(c1, "now"));
    json_decref(c1);

    struct res r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":\"tomorrow\"}");
    assert_int_equal(r.status, 201);
    assert_true(strncmp(jstr(r.json, "created_at"), now, 10) == 0); /* same day as "now" */
    char date[64];
    assert_true(header(&r, "Date", date, sizeof(date)));
    res_free(&r);
    /* reset brings the clock back. */
    json_decref(admin(g, "POST", "/_admin/reset", NULL, 200));
    c1 = admin(g, "GET", "/_admin/clock", NULL, 200);
    assert_int_equal(jint(c1, "offset_ms"), 0);
    assert_true(jint(c1, "now_epoch_s") - before < 5);
    json_decref(c1);
}

static void fault_latency(void **state)
{
    const struct tl_ghs *g = *state;

    admin_ok(g, "/_admin/faults", "{\"latency_ms\":300}");
    struct res r = call(g, "GET", REPO "/issues/1", NULL);
    assert_int_equal(r.status, 200);
    assert_true(r.ms >= 290);
    res_free(&r);
    admin_ok(g, "/_admin/faults", "{\"clear\":true}");
    r = call(g, "GET", REPO "/issues/1", NULL);
    assert_true(r.ms < 250);
    res_free(&r);
}

static void fault_visibility_lag(void **state)
{
    const struct tl_ghs *g = *state;

    admin_ok(g, "/_admin/faults", "{\"visibility_lag_reads\":2}");
    int64_t id = post_comment(g, 1, "lagging");
    /* Committed (the count says so) but not yet in the lists. */
    assert_int_equal(issue_comments(g, 1), 1);
    assert_int_equal(list_len(g, 1), 0);
    assert_int_equal(list_len(g, 1), 0);
    assert_int_equal(list_len(g, 1), 1);
    /* GET by id is not affected; the admin view shows everything. */
    char path[128];
    (void)snprintf(path, sizeof(path), REPO "/issues/comments/%lld", (long long)id);
    struct res r = call(g, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    res_free(&r);

    /* A lower id becomes visible after a higher one. */
    admin_ok(g, "/_admin/faults", "{\"visibility_lag_reads\":0}");
    int64_t low = post_comment(g, 2, "earlier claim");
    int64_t high = post_comment(g, 2, "later claim");
    char body[128];
    (void)snprintf(body, sizeof(body), "{\"hide_comment\":{\"id\":%lld,\"reads\":1}}",
                   (long long)low);
    admin_ok(g, "/_admin/faults", body);
    json_t *all = admin(g, "GET", "/_admin/comments?repo=acme/widgets&number=2", NULL, 200);
    assert_int_equal(json_array_size(all), 2);
    assert_true(json_is_true(json_object_get(json_array_get(all, 0), "tl_hidden")));
    json_decref(all);
    r = call(g, "GET", REPO "/issues/2/comments", NULL);
    assert_int_equal(json_array_size(r.json), 1);
    assert_int_equal(jint(json_array_get(r.json, 0), "id"), high);
    res_free(&r);
    r = call(g, "GET", REPO "/issues/2/comments", NULL);
    assert_int_equal(json_array_size(r.json), 2);
    assert_int_equal(jint(json_array_get(r.json, 0), "id"), low);
    res_free(&r);

    /* Time-based lag. */
    admin_ok(g, "/_admin/faults", "{\"visibility_lag_ms\":400}");
    post_comment(g, 3, "slow");
    assert_int_equal(list_len(g, 3), 0);
    struct timespec ts = {.tv_nsec = 500 * 1000000L};
    (void)nanosleep(&ts, NULL);
    assert_int_equal(list_len(g, 3), 1);

    json_decref(admin(g, "POST", "/_admin/faults", "{\"hide_comment\":{\"id\":1}}", 404));
}

static void fault_post_commit_then_5xx(void **state)
{
    const struct tl_ghs *g = *state;

    admin_ok(g, "/_admin/faults", "{\"post_commit_then_5xx\":1}");
    struct res r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":\"nonce-1\"}");
    assert_int_equal(r.status, 502);
    res_free(&r);
    assert_int_equal(list_len(g, 1), 1); /* it was written */
    r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":\"nonce-2\"}");
    assert_int_equal(r.status, 201);
    res_free(&r);
    assert_int_equal(list_len(g, 1), 2);
}

static void fault_post_hang(void **state)
{
    const struct tl_ghs *g = *state;

    admin_ok(g, "/_admin/faults", "{\"post_hang_ms\":2000}");
    struct res r =
        call_ex(g, "POST", REPO "/issues/1/comments", TOKEN, "{\"body\":\"hang\"}", NULL, 0, 300);
    assert_int_equal(r.cc, CURLE_OPERATION_TIMEDOUT);
    res_free(&r);
    /* The hanging request blocks nobody, and it committed. */
    r = call(g, "GET", REPO "/issues/1/comments", NULL);
    assert_int_equal(r.status, 200);
    assert_true(r.ms < 1000);
    assert_int_equal(json_array_size(r.json), 1);
    res_free(&r);
    /* Count 1 by default: the next POST is prompt. */
    r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":\"prompt\"}");
    assert_int_equal(r.status, 201);
    assert_true(r.ms < 1000);
    res_free(&r);
}

static void fault_secondary_limit(void **state)
{
    const struct tl_ghs *g = *state;
    char v[64];

    admin_ok(g, "/_admin/faults",
             "{\"secondary_limit\":{\"count\":1,\"status\":429,\"retry_after\":7}}");
    struct res r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":\"x\"}");
    assert_int_equal(r.status, 429);
    assert_non_null(strstr(jstr(r.json, "message"), "secondary rate limit"));
    assert_int_equal(header_num(&r, "retry-after"), 7);
    res_free(&r);
    assert_int_equal(list_len(g, 1), 0); /* not committed */

    admin_ok(g, "/_admin/faults", "{\"secondary_limit\":{\"count\":1,\"method\":\"POST\"}}");
    r = call(g, "GET", REPO "/issues/1", NULL); /* not matching: passes */
    assert_int_equal(r.status, 200);
    res_free(&r);
    r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":\"x\"}");
    assert_int_equal(r.status, 403);
    assert_false(header(&r, "retry-after", v, sizeof(v)));
    assert_true(header_num(&r, "x-ratelimit-remaining") > 0);
    res_free(&r);
    r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":\"x\"}");
    assert_int_equal(r.status, 201);
    res_free(&r);
}

static void fault_primary_exhausted(void **state)
{
    const struct tl_ghs *g = *state;

    json_t *c = admin(g, "GET", "/_admin/clock", NULL, 200);
    int64_t now = jint(c, "now_epoch_s");
    json_decref(c);
    admin_ok(g, "/_admin/faults", "{\"primary_exhausted\":{\"count\":2,\"reset_in_s\":120}}");
    for (int i = 0; i < 2; i++) {
        struct res r = call(g, "GET", REPO "/issues/1", NULL);
        assert_int_equal(r.status, 403);
        assert_int_equal(header_num(&r, "x-ratelimit-remaining"), 0);
        long reset = header_num(&r, "x-ratelimit-reset");
        assert_true(reset >= now + 119 && reset <= now + 125);
        assert_non_null(strstr(jstr(r.json, "message"), "API rate limit exceeded"));
        res_free(&r);
    }
    struct res r = call(g, "GET", REPO "/issues/1", NULL);
    assert_int_equal(r.status, 200);
    res_free(&r);
}

static void fault_assignee_422(void **state)
{
    const struct tl_ghs *g = *state;

    admin_ok(g, "/_admin/faults", "{\"assignee_422\":1}");
    struct res r =
        call(g, "POST", REPO "/issues/1/assignees", "{\"assignees\":[\"tasklock-bot\"]}");
    assert_int_equal(r.status, 422);
    assert_string_equal(jstr(r.json, "message"),
                        "Validation failed: Assignee has already been taken");
    res_free(&r);
    r = call(g, "POST", REPO "/issues/1/assignees", "{\"assignees\":[\"tasklock-bot\"]}");
    assert_int_equal(r.status, 201);
    res_free(&r);
}

static void fault_drop_and_5xx(void **state)
{
    const struct tl_ghs *g = *state;

    admin_ok(g, "/_admin/faults", "{\"drop_connections\":1}");
    struct res r = call(g, "GET", REPO "/issues/1", NULL);
    assert_int_equal(r.cc, CURLE_GOT_NOTHING);
    res_free(&r);
    assert_int_equal(tl_ghs_stat(g, "dropped"), 1);

    admin_ok(
        g, "/_admin/faults",
        "{\"status_5xx\":{\"count\":2,\"endpoint\":\"POST /repos/{o}/{r}/issues/{n}/comments\"}}");
    r = call(g, "GET", REPO "/issues/1", NULL);
    assert_int_equal(r.status, 200);
    res_free(&r);
    for (int i = 0; i < 2; i++) {
        r = call(g, "POST", REPO "/issues/1/comments", "{\"body\":\"x\"}");
        assert_int_equal(r.status, 500);
        res_free(&r);
    }
    assert_int_equal(issue_comments(g, 1), 0); /* nothing committed */
    json_t *f = admin(g, "GET", "/_admin/faults", NULL, 200);
    assert_int_equal(jint(json_object_get(f, "status_5xx"), "count"), 0);
    json_decref(f);
}

static void issue_status_301_410(void **state)
{
    const struct tl_ghs *g = *state;
    char loc[256], want[256];

    json_t *j = admin(g, "POST", "/_admin/issues",
                      "{\"repo\":\"acme/widgets\",\"number\":4,\"status\":301}", 200);
    int64_t to = jint(j, "moved_to");
    assert_int_equal(to, 6);
    json_decref(j);
    struct res r = call(g, "GET", REPO "/issues/4", NULL);
    assert_int_equal(r.status, 301);
    assert_true(header(&r, "Location", loc, sizeof(loc)));
    (void)snprintf(want, sizeof(want), "%s/repositories/" REPO_ID "/issues/6", g->url);
    assert_string_equal(loc, want);
    res_free(&r);
    r = call(g, "GET", loc, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(jint(r.json, "number"), 6);
    res_free(&r);

    json_decref(admin(g, "POST", "/_admin/issues",
                      "{\"repo\":\"acme/widgets\",\"number\":5,\"status\":410}", 200));
    r = call(g, "GET", REPO "/issues/5", NULL);
    assert_int_equal(r.status, 410);
    res_free(&r);
    r = call(g, "POST", REPO "/issues/5/comments", "{\"body\":\"x\"}");
    assert_int_equal(r.status, 410);
    res_free(&r);

    /* A new issue. */
    j = admin(g, "POST", "/_admin/issues", "{\"repo\":\"acme/gadgets\",\"title\":\"New\"}", 201);
    assert_int_equal(jint(json_object_get(j, "issue"), "number"), 6);
    json_decref(j);
    r = call(g, "GET", "/repos/ACME/Gadgets/issues/6", NULL); /* names are case-insensitive */
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "title"), "New");
    res_free(&r);
}

static void stats_count_requests(void **state)
{
    const struct tl_ghs *g = *state;

    post_comment(g, 1, "a");
    post_comment(g, 1, "b");
    (void)list_len(g, 1);
    (void)list_len(g, 1);
    (void)list_len(g, 1);
    struct res r = call(g, "GET", "/repositories/" REPO_ID "/issues/1/comments", NULL);
    res_free(&r);
    r = call_ex(g, "GET", "/user", NULL, NULL, NULL, 0, 5000);
    res_free(&r);

    json_t *st = admin(g, "GET", "/_admin/stats", NULL, 200);
    assert_int_equal(jint(st, "total"), 7);
    assert_int_equal(jint(st, "writes"), 2);
    json_t *by = json_object_get(st, "by_endpoint");
    assert_int_equal(jint(by, "POST /repos/{o}/{r}/issues/{n}/comments"), 2);
    assert_int_equal(jint(by, "GET /repos/{o}/{r}/issues/{n}/comments"), 4);
    assert_int_equal(jint(by, "GET /user"), 1);
    json_t *status = json_object_get(st, "by_status");
    assert_int_equal(jint(status, "201"), 2);
    assert_int_equal(jint(status, "200"), 4);
    assert_int_equal(jint(status, "401"), 1);
    assert_int_equal(jint(json_object_get(st, "by_login"), "tasklock-bot"), 6);
    json_decref(st);
    assert_int_equal(tl_ghs_stat(g, "GET /repos/{o}/{r}/issues/{n}/comments"), 4);
    assert_int_equal(tl_ghs_stat(g, "login:tasklock-bot"), 6);

    admin_ok(g, "/_admin/stats/reset", NULL);
    assert_int_equal(tl_ghs_stat(g, "total"), 0);
    assert_int_equal(tl_ghs_stat(g, "GET /user"), 0);
}

/* Many clients at once, on one issue: every POST gets its own strictly increasing id. */
struct worker {
    const struct tl_ghs *g;
    int64_t ids[20];
    int failures;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < 20; i++) {
        struct res r = call_ex(w->g, "POST", REPO "/issues/1/comments", TOKEN,
                               "{\"body\":\"race\"}", NULL, 0, 20000);
        if (r.status == 201)
            w->ids[i] = json_integer_value(json_object_get(r.json, "id"));
        else
            w->failures++;
        res_free(&r);
    }
    return NULL;
}

static void concurrent_posts(void **state)
{
    const struct tl_ghs *g = *state;
    struct worker w[8];
    pthread_t t[8];

    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){.g = g};
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
        for (int k = 1; k < 20; k++)
            assert_true(w[i].ids[k] > w[i].ids[k - 1]);
    }
    assert_int_equal(issue_comments(g, 1), 160);
    struct res r = call(g, "GET", REPO "/issues/1/comments?per_page=100&page=2", NULL);
    assert_int_equal(json_array_size(r.json), 60);
    res_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(auth_is_required, reset),
        cmocka_unit_test_setup(user_agent_is_required, reset),
        cmocka_unit_test_setup(every_response_has_date_and_rate_headers, reset),
        cmocka_unit_test_setup(primary_budget_runs_out, reset),
        cmocka_unit_test_setup(pagination_and_link, reset),
        cmocka_unit_test_setup(etag_and_304_is_free, reset),
        cmocka_unit_test_setup(assignees, reset),
        cmocka_unit_test_setup(comment_crud, reset),
        cmocka_unit_test_setup(bad_requests, reset),
        cmocka_unit_test_setup(since_filters_on_updated_at, reset),
        cmocka_unit_test_setup(clock_offset_moves_date_and_timestamps, reset),
        cmocka_unit_test_setup(fault_latency, reset),
        cmocka_unit_test_setup(fault_visibility_lag, reset),
        cmocka_unit_test_setup(fault_post_commit_then_5xx, reset),
        cmocka_unit_test_setup(fault_post_hang, reset),
        cmocka_unit_test_setup(fault_secondary_limit, reset),
        cmocka_unit_test_setup(fault_primary_exhausted, reset),
        cmocka_unit_test_setup(fault_assignee_422, reset),
        cmocka_unit_test_setup(fault_drop_and_5xx, reset),
        cmocka_unit_test_setup(issue_status_301_410, reset),
        cmocka_unit_test_setup(stats_count_requests, reset),
        cmocka_unit_test_setup(concurrent_posts, reset),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
