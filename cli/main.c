/*
 * main.c -- the `tasklock` command: global options, the command table, one exit path.
 *
 *   tasklock [-s|--store URL] [-w|--worker ID] [-n|--node ID] [--json] [-q] [-v] COMMAND [ARGS]
 *
 * Each command lives in cmd_<name>.c and parses its own options with getopt_long; the global
 * options are accepted after the command as well. stdout carries data only; messages go to
 * stderr as "tasklock: COMMAND: message". docs/tasklock.1 is the manual.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const struct tl_cli_cmd *const tl_cli_commands[] = {
    &tl_cli_cmd_acquire,    &tl_cli_cmd_release,   &tl_cli_cmd_renew,
    &tl_cli_cmd_upgrade,    &tl_cli_cmd_downgrade, &tl_cli_cmd_run,
    &tl_cli_cmd_claim_next, &tl_cli_cmd_work,      &tl_cli_cmd_reopen,
    &tl_cli_cmd_status,     &tl_cli_cmd_list,      &tl_cli_cmd_log,
    &tl_cli_cmd_where,      &tl_cli_cmd_mcp,       &tl_cli_cmd_serve,
    &tl_cli_cmd_demo,       &tl_cli_cmd_help,      NULL,
};

const struct tl_cli_cmd *tl_cli_find(const char *name)
{
    for (size_t i = 0; tl_cli_commands[i] != NULL; i++) {
        if (strcmp(tl_cli_commands[i]->name, name) == 0)
            return tl_cli_commands[i];
    }
    return NULL;
}

/* The environment's value, or NULL when unset or empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name); /* NOLINT(concurrency-mt-unsafe): no threads yet */

    return v != NULL && v[0] != '\0' ? v : NULL;
}

static int parse_globals(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        TL_CLI_GLOBAL_LONGOPTS,
        {"version", 0, NULL, TL_OPT_VERSION},
        {0},
    };

    for (;;) {
        /* "+": stop at the command; its own options follow it. */
        int opt = tl_cli_getopt(argc, argv, "+:" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        if (opt == TL_OPT_VERSION) {
            (void)printf("tasklock %s (libtasklock %s)\n", TL_VERSION_STRING, tl_version());
            return TL_EXIT_OK;
        }
        if (opt == 'h') {
            const char *help[] = {"help", NULL};
            return tl_cli_cmd_help.run(cli, 1, (char **)help);
        }
        int rc = tl_cli_global_opt(cli, opt, optarg, argv);
        if (rc >= 0)
            return rc;
    }
    return -1;
}

/* Whether --json is among the options (before a "--"), wherever it is: an error found in an
 * option before it still gets its JSON document. */
static bool wants_json(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--json") == 0)
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    struct tl_cli_outcome outcome = {.error = ""};
    struct tl_cli cli = {
        .cmd = "tasklock",
        .worker = env("TASKLOCK_WORKER"),
        .node = env("TASKLOCK_NODE"),
        .json = wants_json(argc, argv),
        .argv = argv,
        .handed_off = env("TASKLOCK_HANDED_OFF") != NULL,
        .outcome = &outcome,
    };

    /* Started by `tasklock` for a network store: the mark has done its work, and must not
     * reach the commands that `run` starts. */
    if (cli.handed_off)
        (void)unsetenv("TASKLOCK_HANDED_OFF"); /* NOLINT(concurrency-mt-unsafe): no threads */
    int rc = parse_globals(&cli, argc, argv);

    if (rc >= 0)
        goto out;
    if (optind >= argc) {
        rc = tl_cli_usage_error(&cli, "no command given (acquire, release, renew, run, status, "
                                      "list, log, where, mcp, serve, demo, help)");
        goto out;
    }

    const struct tl_cli_cmd *cmd = tl_cli_find(argv[optind]);
    if (cmd == NULL) {
        rc = tl_cli_usage_error(&cli, "unknown command \"%s\"", argv[optind]);
        goto out;
    }
    cli.cmd = cmd->name;
    int first = optind;
    optind = 0; /* glibc: start the command's getopt afresh */
    rc = cmd->run(&cli, argc - first, argv + first);

out:
    /* With --json, a failure is a document too (unless the command printed its own). */
    tl_cli_json_error(&cli, rc);
    /* stdout is data (a token, JSON): a failed write must not look like success. */
    if ((fflush(stdout) != 0 || ferror(stdout)) && !outcome.stdout_failed) {
        char err[128];

        (void)fprintf(stderr, "tasklock: %s: cannot write to standard output: %s\n", cli.cmd,
                      tl_cli_strerror(errno, err));
        if (rc == TL_EXIT_OK)
            rc = TL_EXIT_STORE;
    }
    json_decref(outcome.holder);
    return rc;
}
