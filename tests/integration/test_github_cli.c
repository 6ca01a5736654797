/*
 * test_github_cli.c -- the `tasklock` binary on the GitHub Issues store, against a private
 * GitHub test server: acquire, status, a second worker held off, release, and the API URL given
 * by --github-api-url rather than in the store URL.
 */
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

int main(void)
{
    const char *const args[] = {"--repo",  "acme/widgets",           "--issues", "10",
                                "--token", "tasklock-bot=cli-token", NULL};
    const char *bin_dir = tl_test_env("TL_TEST_BINARY_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_cli_locks_an_issue),
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
