/*
 * test_github_cli.c -- the `tasklock` binary on the GitHub Issues store, against a private
 * GitHub test server: acquire, status, a second worker held off, release, and the API URL given
 * by --github-api-url rather than in the store URL; `renew` from separate processes edits the
 * claim each time; `log` tells the issue's story; `release --force`; what is refused up front
 * (the demo, a missing token, bad parameter values).
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawn.h"
#include "tl_test.h"

static struct tl_ghs srv;
static char binary[600];

struct result {
    int code;
    char out[8192];
};

/* Runs `tasklock ARGS...` (NULL-terminated) and collects its exit status and stdout. */
static struct result run(const char *first, ...)
{
    const char *argv[32] = {binary, first};
    int n = 2, fd[2];
    struct result r = {.code = -1};
    va_list ap;

    va_start(ap, first);
    while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;

    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(binary, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd[0], r.out + len, sizeof(r.out) - 1 - len)) > 0)
        len += (size_t)got;
    r.out[len] = '\0';
    close(fd[0]);

    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

static void the_cli_locks_an_issue(void **state)
{
    (void)state;
    /* The API comes from --github-api-url, not from the store URL. */
    struct result r = run("--store", "github://acme/widgets?write_budget=off", "--github-api-url",
                          srv.url, "--worker", "ci-1", "acquire", "#7", NULL);
    assert_int_equal(r.code, 0);
    unsigned long long token = strtoull(r.out, NULL, 10);
    assert_true(token > (1ull << 31)); /* a comment id */

    r = run("--store", "github://acme/widgets?write_budget=off", "--github-api-url", srv.url,
            "--json", "status", "7", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"worker_id\":\"ci-1\""));

    /* Another worker is held off with exit 1. */
    r = run("--store", "github://acme/widgets?write_budget=off", "--github-api-url", srv.url,
            "--worker", "ci-2", "acquire", "--strategy", "fail-fast", "7", NULL);
    assert_int_equal(r.code, 1);

    r = run("--store", "github://acme/widgets?write_budget=off", "--github-api-url", srv.url,
            "--worker", "ci-1", "release", "7", NULL);
    assert_int_equal(r.code, 0);
    r = run("--store", "github://acme/widgets?write_budget=off", "--github-api-url", srv.url,
            "--json", "status", "7", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"held\":false"));

    /* Not an issue number: a usage error. */
    r = run("--store", "github://acme/widgets", "--github-api-url", srv.url, "acquire", "build",
            NULL);
    assert_int_equal(r.code, 2);
}

/* The body and updated_at of the one live claim comment of issue `n` (admin view). */
static void claim_comment(int n, char **body, char updated[32])
{
    char path[128], *resp = NULL;
    json_t *c;
    size_t i;
    int claims = 0;

    (void)snprintf(path, sizeof(path), "/_admin/comments?repo=acme/widgets&number=%d", n);
    assert_int_equal(tl_ghs_admin(&srv, "GET", path, NULL, &resp), 200);
    json_t *arr = json_loads(resp, 0, NULL);
    free(resp);
    assert_true(json_is_array(arr));
    json_array_foreach(arr, i, c)
    {
        const char *b = json_string_value(json_object_get(c, "body"));
        if (b == NULL || strstr(b, "<!-- tasklock {") == NULL)
            continue;
        claims++;
        *body = strdup(b);
        (void)snprintf(updated, 32, "%s", json_string_value(json_object_get(c, "updated_at")));
    }
    json_decref(arr);
    assert_int_equal(claims, 1);
}

/*
 * `tasklock renew` runs in a process of its own each time (the manager passes heartbeat count 1
 * every time): each renew still edits the claim, with a new counter and, once the server's
 * clock has moved, a new heartbeat time and updated_at.
 */
static void the_cli_renews_an_issue_each_time(void **state)
{
    const char *store = "github://acme/widgets?write_budget=off";
    char *b0, *b1, *b2, *b3, u0[32], u1[32], u2[32], u3[32];

    (void)state;
    struct result r = run("--store", store, "--github-api-url", srv.url, "--worker", "ci-3",
                          "acquire", "8", NULL);
    assert_int_equal(r.code, 0);
    claim_comment(8, &b0, u0);

    r = run("--store", store, "--github-api-url", srv.url, "--worker", "ci-3", "renew", "8", NULL);
    assert_int_equal(r.code, 0);
    claim_comment(8, &b1, u1);
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "ci-3", "renew", "8", NULL);
    assert_int_equal(r.code, 0);
    claim_comment(8, &b2, u2);
    assert_string_not_equal(b0, b1);
    assert_string_not_equal(b1, b2); /* within the same second too: the counter moved */
    assert_non_null(strstr(b1, ", #1)."));
    assert_non_null(strstr(b2, ", #2)."));

    assert_int_equal(tl_ghs_admin(&srv, "POST", "/_admin/clock", "{\"advance_ms\":3000}", NULL),
                     200);
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "ci-3", "--json", "renew",
            "8", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"renewed\":true"));
    claim_comment(8, &b3, u3);
    assert_string_not_equal(b2, b3);
    assert_true(strcmp(u3, u2) > 0); /* ISO-8601 UTC: text order is time order */
    assert_true(strcmp(u2, u0) >= 0);
    print_message("updated_at %s -> %s -> %s -> %s\n", u0, u1, u2, u3);

    /* Another worker cannot renew it. */
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "ci-4", "renew", "8", NULL);
    assert_int_equal(r.code, 4);

    r = run("--store", store, "--github-api-url", srv.url, "--worker", "ci-3", "release", "8",
            "--summary", "renewed thrice", NULL);
    assert_int_equal(r.code, 0);
    free(b0);
    free(b1);
    free(b2);
    free(b3);

    /* The issue's story: acquired, then released with the summary. */
    r = run("--store", store, "--github-api-url", srv.url, "--json", "log", "8", NULL);
    assert_int_equal(r.code, 0);
    json_t *o = json_loads(r.out, 0, NULL);
    json_t *ev = json_object_get(o, "events");
    assert_int_equal(json_array_size(ev), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "event")),
                        "acquired");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 1), "event")),
                        "released");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 1), "worker_id")),
                        "ci-3");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 1), "detail")),
                        "renewed thrice");
    json_decref(o);
}

/* The demo's tasks are names; the GitHub store locks issue numbers: refused up front, before
 * any request, rather than after every task failed. */
static void the_demo_refuses_github(void **state)
{
    (void)state;
    long before = tl_ghs_stat(&srv, "GET /user");
    struct result r = run("--store", "github://acme/widgets", "--github-api-url", srv.url, "demo",
                          "--tasks", "3", NULL);
    assert_int_equal(r.code, 2);
    assert_int_equal(tl_ghs_stat(&srv, "GET /user"), before);
    r = run("--store", "github://acme/widgets", "--github-api-url", srv.url, "--json", "demo",
            NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.out, "issue numbers"));
    assert_non_null(strstr(r.out, "\"exit\":2"));
}

/* No token at all: authentication, a store error (exit 3), naming the variables to set. */
static void a_missing_token_is_a_store_error(void **state)
{
    char *path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");

    (void)state;
    unsetenv("GH_TOKEN");
    setenv("PATH", "/nonexistent-dir", 1); /* no `gh` to ask */
    struct result r = run("--store", "github://acme/widgets", "--github-api-url", srv.url, "--json",
                          "status", "3", NULL);
    setenv("GH_TOKEN", "cli-token", 1);
    setenv("PATH", path, 1);
    free(path);
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.out, "GH_TOKEN"));
    assert_non_null(strstr(r.out, "\"exit\":3"));
}

/* release --force on GitHub: the holder's claim deleted, a completion comment naming who broke
 * it; the holder's release refused; `log` tells forced and released by the administrator. */
static void the_cli_breaks_a_lock_on_an_issue(void **state)
{
    const char *store = "github://acme/widgets?write_budget=off";

    (void)state;
    struct result r = run("--store", store, "--github-api-url", srv.url, "--worker", "hung",
                          "acquire", "9", NULL);
    assert_int_equal(r.code, 0);
    unsigned long long token = strtoull(r.out, NULL, 10);
    char tok[32];
    (void)snprintf(tok, sizeof(tok), "%llu", token);

    long writes = tl_ghs_stat(&srv, "writes");
    long deletes = tl_ghs_stat(&srv, "DELETE /repos/{o}/{r}/issues/comments/{id}");
    long posts = tl_ghs_stat(&srv, "POST /repos/{o}/{r}/issues/{n}/comments");
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "admin", "--json", "release",
            "9", "--force", "--summary", "cleared by hand", NULL);
    assert_int_equal(r.code, 0);
    /* Three writes (docs/github.md): the claim deleted, the assignee removed, the completion. */
    assert_int_equal(tl_ghs_stat(&srv, "writes") - writes, 3);
    assert_int_equal(tl_ghs_stat(&srv, "DELETE /repos/{o}/{r}/issues/comments/{id}") - deletes, 1);
    assert_int_equal(tl_ghs_stat(&srv, "POST /repos/{o}/{r}/issues/{n}/comments") - posts, 1);
    assert_non_null(strstr(r.out, "\"forced\":true"));
    assert_non_null(strstr(r.out, "\"worker_id\":\"hung\""));
    r = run("--store", store, "--github-api-url", srv.url, "--json", "status", "9", NULL);
    assert_non_null(strstr(r.out, "\"held\":false"));

    /* The holder: lost, and its release (by token, or retried without) is refused. */
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "hung", "renew", "9",
            "--token", tok, NULL);
    assert_int_equal(r.code, 4);
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "hung", "release", "9",
            "--token", tok, NULL);
    assert_int_equal(r.code, 4);
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "hung", "release", "9",
            NULL);
    assert_int_equal(r.code, 4);

    r = run("--store", store, "--github-api-url", srv.url, "--json", "log", "9", NULL);
    assert_int_equal(r.code, 0);
    json_t *o = json_loads(r.out, 0, NULL);
    json_t *ev = json_object_get(o, "events");
    size_t n = json_array_size(ev);
    assert_int_equal(n, 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "event")),
                        "acquired");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 1), "event")),
                        "forced");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 1), "worker_id")),
                        "admin");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 2), "event")),
                        "released");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 2), "detail")),
                        "cleared by hand");
    assert_true((unsigned long long)json_integer_value(
                    json_object_get(json_array_get(ev, 2), "token")) > token);
    json_decref(o);

    /* The retried release of one's own lock is fine here too. */
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "ci-5", "acquire", "10",
            NULL);
    assert_int_equal(r.code, 0);
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "ci-5", "release", "10",
            NULL);
    assert_int_equal(r.code, 0);
    r = run("--store", store, "--github-api-url", srv.url, "--worker", "ci-5", "--json", "release",
            "10", NULL);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"already\":true"));
}

/* Parameter values out of range say the range. */
static void bad_parameter_values_say_the_range(void **state)
{
    (void)state;
    struct result r = run("--store", "github://acme/widgets?per_page=500", "--github-api-url",
                          srv.url, "--json", "status", "1", NULL);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.out, "per_page=\\\"500\\\" is not allowed (a whole number from 1 to "
                                  "100)"));
}

int main(void)
{
    /* The rate limit is not what these tests are about (test_github_limits.c). */
    const char *const args[] = {"--repo",       "acme/widgets", "--issues",
                                "10",           "--token",      "tasklock-bot=cli-token",
                                "--rate-limit", "1000000",      NULL};
    const char *bin_dir = tl_test_env("TL_TEST_BINARY_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_cli_locks_an_issue),
        cmocka_unit_test(the_cli_renews_an_issue_each_time),
        cmocka_unit_test(the_demo_refuses_github),
        cmocka_unit_test(a_missing_token_is_a_store_error),
        cmocka_unit_test(the_cli_breaks_a_lock_on_an_issue),
        cmocka_unit_test(bad_parameter_values_say_the_range),
    };

    (void)snprintf(binary, sizeof(binary), "%s/tasklock", bin_dir ? bin_dir : ".");
    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", "cli-token", 1);
    unsetenv("GITHUB_API_URL");
    int rc = cmocka_run_group_tests_name("github_cli", tests, NULL, NULL);
    tl_ghs_stop(&srv);
    return rc;
}
