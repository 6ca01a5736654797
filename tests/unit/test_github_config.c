/*
 * test_github_config.c -- how the GitHub store finds its API URL and token, and refuses bad
 * store URLs, without contacting any server (every case fails or resolves before I/O).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "stores/github.h"
#include "tasklock.h"
#include "tl.h"
#include "tl_test.h"

static const char *const vars[] = {
    "GITHUB_API_URL",         "GH_HOST", "GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN"};
static char *saved_path;
static char *tmpdir;

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (saved_path != NULL)
        setenv("PATH", saved_path, 1);
    return 0;
}

static void resolved(const char *param, const char *want)
{
    char err[TL_ERRMSG_SIZE] = "";
    char *url = NULL;

    if (tl__gh_resolve_api_url(param, &url, err) != TL_OK)
        fail_msg("%s: %s", param ? param : "(env)", err);
    assert_string_equal(url, want);
    tl__free(url);
}

static void api_url_order(void **state)
{
    char err[TL_ERRMSG_SIZE];
    char *url = NULL;

    (void)state;
    resolved(NULL, "https://api.github.com");
    setenv("GH_HOST", "github.com", 1);
    resolved(NULL, "https://api.github.com");
    setenv("GH_HOST", "acme.ghe.com", 1);
    resolved(NULL, "https://api.acme.ghe.com");
    setenv("GH_HOST", "git.example.org", 1);
    resolved(NULL, "https://git.example.org/api/v3");
    setenv("GITHUB_API_URL", "https://ghes.example.org/api/v3/", 1);
    resolved(NULL, "https://ghes.example.org/api/v3");
    resolved("http://127.0.0.1:8080", "http://127.0.0.1:8080");
    resolved("http://localhost:1/", "http://localhost:1");
    resolved("http://[::1]:9", "http://[::1]:9");

    assert_int_equal(tl__gh_resolve_api_url("http://api.example.org", &url, err), TL_EINVAL);
    assert_non_null(strstr(err, "loopback"));
    assert_int_equal(tl__gh_resolve_api_url("http://127.0.0.1.evil.org", &url, err), TL_EINVAL);
    assert_int_equal(tl__gh_resolve_api_url("https://user:pw@x.org", &url, err), TL_EINVAL);
    assert_int_equal(tl__gh_resolve_api_url("ftp://x.org", &url, err), TL_EINVAL);
    assert_int_equal(tl__gh_resolve_api_url("https://x.org/?a=b", &url, err), TL_EINVAL);
    assert_null(url);
    setenv("GITHUB_API_URL", "http://example.org", 1);
    assert_int_equal(tl__gh_resolve_api_url(NULL, &url, err), TL_EINVAL);
    assert_non_null(strstr(err, "GITHUB_API_URL"));
}

static void host_kinds(void **state)
{
    char host[256];

    (void)state;
    assert_int_equal(tl__gh_host_kind("https://api.github.com", host), TL_GH_DOTCOM);
    assert_string_equal(host, "github.com");
    assert_int_equal(tl__gh_host_kind("https://api.acme.ghe.com", host), TL_GH_TENANCY);
    assert_string_equal(host, "acme.ghe.com");
    assert_int_equal(tl__gh_host_kind("https://git.example.org/api/v3", host), TL_GH_ENTERPRISE);
    assert_string_equal(host, "git.example.org");
    assert_int_equal(tl__gh_host_kind("http://127.0.0.1:4000", host), TL_GH_LOOPBACK);
}

static void token(const char *api, tl_status want_st, const char *want_tok, const char *want_src)
{
    char err[TL_ERRMSG_SIZE] = "";
    char *tok = NULL;
    const char *src = NULL;
    tl_status st = tl__gh_resolve_token(api, 2000, &tok, &src, err);

    if (st != want_st)
        fail_msg("%s: %s (%s)", api, tl_strerror(st), err);
    if (want_tok != NULL) {
        assert_string_equal(tok, want_tok);
        assert_string_equal(src, want_src);
    } else {
        assert_null(tok);
    }
    tl__free(tok);
}

/* A directory holding a fake `gh` that runs `script`, first on PATH. */
static void fake_gh(const char *script)
{
    char path[600];

    if (tmpdir == NULL)
        tmpdir = tl_test_mkdtemp();
    assert_non_null(tmpdir);
    (void)snprintf(path, sizeof(path), "%s/gh", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", script);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
    if (saved_path == NULL)
        saved_path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    (void)snprintf(path, sizeof(path), "%s:/usr/bin:/bin", tmpdir);
    setenv("PATH", path, 1);
}

static void no_gh(void)
{
    if (saved_path == NULL)
        saved_path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", "/nonexistent-dir", 1);
}

static void token_order(void **state)
{
    (void)state;
    no_gh();
    token("https://api.github.com", TL_ESTORE, NULL, NULL);
    setenv("GITHUB_TOKEN", "gt-2", 1);
    token("https://api.github.com", TL_OK, "gt-2", "GITHUB_TOKEN");
    setenv("GH_TOKEN", "gh-1", 1);
    token("https://api.github.com", TL_OK, "gh-1", "GH_TOKEN");
    token("http://127.0.0.1:80", TL_OK, "gh-1", "GH_TOKEN");
    /* Enterprise Server hosts use their own variables */
    token("https://git.example.org/api/v3", TL_ESTORE, NULL, NULL);
    setenv("GITHUB_ENTERPRISE_TOKEN", "ge-2", 1);
    token("https://git.example.org/api/v3", TL_OK, "ge-2", "GITHUB_ENTERPRISE_TOKEN");
    setenv("GH_ENTERPRISE_TOKEN", "ge-1", 1);
    token("https://git.example.org/api/v3", TL_OK, "ge-1", "GH_ENTERPRISE_TOKEN");
    /* a token that could inject a header is refused, and not shown */
    setenv("GH_TOKEN", "abc\r\nX-Evil: 1", 1);
    char err[TL_ERRMSG_SIZE];
    char *tok = NULL;
    const char *src;
    assert_int_equal(tl__gh_resolve_token("https://api.github.com", 2000, &tok, &src, err),
                     TL_ESTORE);
    assert_null(strstr(err, "X-Evil"));
    assert_non_null(strstr(err, "GH_TOKEN"));
}

static void no_token_names_the_variables(void **state)
{
    char err[TL_ERRMSG_SIZE];
    char *tok = NULL;
    const char *src;

    (void)state;
    no_gh();
    assert_int_equal(tl__gh_resolve_token("https://api.github.com", 2000, &tok, &src, err),
                     TL_ESTORE);
    assert_non_null(strstr(err, "GH_TOKEN"));
    assert_non_null(strstr(err, "gh auth login"));
    assert_int_equal(tl__gh_resolve_token("https://git.example.org/api/v3", 2000, &tok, &src, err),
                     TL_ESTORE);
    assert_non_null(strstr(err, "GH_ENTERPRISE_TOKEN"));
}

static void token_from_gh(void **state)
{
    (void)state;
    fake_gh("[ \"$1 $2 $3 $4\" = \"auth token --hostname github.com\" ] || exit 3\n"
            "echo gho_fromgh");
    token("https://api.github.com", TL_OK, "gho_fromgh", "gh auth token");
    fake_gh("exit 1");
    token("https://api.github.com", TL_ESTORE, NULL, NULL);
    fake_gh("echo 'not a token'");
    token("https://api.github.com", TL_ESTORE, NULL, NULL);
}

static void gh_that_hangs_is_cut_short(void **state)
{
    (void)state;
    fake_gh("exec sleep 30");
    int64_t t0 = tl__real_mono_ms();
    token("https://api.github.com", TL_ESTORE, NULL, NULL);
    assert_true(tl__real_mono_ms() - t0 < 10000);
}

static tl_status connect_url(const char *url, char *msg, size_t size)
{
    const struct tl_options o = {.store_url = url, .worker_id = "w", .node_id = "n"};
    tl_manager *m = tl_manager_new(&o);
    tl_status st;

    assert_non_null(m);
    st = tl_connect(m);
    (void)snprintf(msg, size, "%s", tl_errmsg(m));
    tl_manager_free(m);
    return st;
}

static void bad_store_urls(void **state)
{
    char msg[TL_ERRMSG_SIZE];

    (void)state;
    setenv("GH_TOKEN", "secret-token-value", 1);
    assert_int_equal(connect_url("github://", msg, sizeof(msg)), TL_EINVAL);
    assert_int_equal(connect_url("github://owner", msg, sizeof(msg)), TL_EINVAL);
    assert_int_equal(connect_url("github://own er/repo", msg, sizeof(msg)), TL_EINVAL);
    assert_int_equal(connect_url("github://o/r/extra", msg, sizeof(msg)), TL_EINVAL);
    assert_int_equal(connect_url("github://o/r?nosuch=1", msg, sizeof(msg)), TL_EINVAL);
    assert_non_null(strstr(msg, "nosuch"));
    assert_int_equal(connect_url("github://o/r?write_budget=lots", msg, sizeof(msg)), TL_EINVAL);
    assert_int_equal(connect_url("github://o/r?write_budget=10,5", msg, sizeof(msg)), TL_EINVAL);
    assert_int_equal(connect_url("github://o/r?trusted=a,b%20c", msg, sizeof(msg)), TL_EINVAL);
    assert_int_equal(connect_url("github://o/r?history_pages=0", msg, sizeof(msg)), TL_EINVAL);
    assert_non_null(strstr(msg, "history_pages"));
    /* A bad value says what the parameter takes. */
    assert_int_equal(connect_url("github://o/r?per_page=500", msg, sizeof(msg)), TL_EINVAL);
    assert_non_null(strstr(msg, "per_page=\"500\""));
    assert_non_null(strstr(msg, "1 to 100"));
    assert_int_equal(connect_url("github://o/r?history_pages=101", msg, sizeof(msg)), TL_EINVAL);
    assert_int_equal(connect_url("github://o/r?api_url=http://example.org", msg, sizeof(msg)),
                     TL_EINVAL);
    assert_non_null(strstr(msg, "loopback"));
    assert_null(strstr(msg, "secret-token-value"));
    unsetenv("GH_TOKEN");
    no_gh();
    /* No token: authentication, a store error (exit 3), like a token GitHub refuses. */
    assert_int_equal(connect_url("github://o/r?api_url=http://127.0.0.1:9", msg, sizeof(msg)),
                     TL_ESTORE);
    assert_non_null(strstr(msg, "GH_TOKEN"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(api_url_order, setup),
        cmocka_unit_test_setup(host_kinds, setup),
        cmocka_unit_test_setup(token_order, setup),
        cmocka_unit_test_setup(no_token_names_the_variables, setup),
        cmocka_unit_test_setup(token_from_gh, setup),
        cmocka_unit_test_setup(gh_that_hangs_is_cut_short, setup),
        cmocka_unit_test_setup(bad_store_urls, setup),
    };
    int rc = cmocka_run_group_tests_name("github_config", tests, NULL, teardown);

    if (tmpdir != NULL) {
        tl_test_rmtree(tmpdir);
        free(tmpdir);
    }
    free(saved_path);
    return rc;
}
