/*
 * cmd_help.c -- `tasklock help [COMMAND]`: the list of commands, or one command's help.
 */
#include <stdio.h>

#include "cli.h"

static void print_overview(void)
{
    (void)printf("usage: tasklock [-s|--store URL] [-w|--worker ID] [-n|--node ID] [--json] "
                 "[-q|--quiet]\n"
                 "                [-v|--verbose] COMMAND [ARGS]\n\n"
                 "Many workers agree on which worker runs which task: acquire a task's lock, "
                 "heartbeat,\nrelease. Stale locks can be stolen; every holder gets a fencing "
                 "token.\n\nCommands:\n");
    for (size_t i = 0; tl_cli_commands[i] != NULL; i++)
        (void)printf("  %-9s %s\n", tl_cli_commands[i]->name, tl_cli_commands[i]->summary);
    (void)printf(
        "\nGlobal options (before or after the command):\n"
        "  -s, --store URL   the store: sqlite:PATH, memory:, github://OWNER/REPO,\n"
        "                    redis://HOST:PORT/DB, postgres://..., etcd://HOST:PORT[,...]\n"
        "                    (default: $TASKLOCK_STORE,\n"
        "                    else the embedded SQLite file; 'tasklock where' shows which)\n"
        "  -w, --worker ID   who holds the lock (default: $TASKLOCK_WORKER, else USER@HOST)\n"
        "  -n, --node ID     the machine it runs on (default: $TASKLOCK_NODE, else the host "
        "name)\n"
        "      --json        one JSON document on stdout\n"
        "      --github-api-url URL  the GitHub API (default: $GITHUB_API_URL, else from\n"
        "                    $GH_HOST, else https://api.github.com)\n"
        "  -q, --quiet       no notes on stderr (errors still show)\n"
        "  -v, --verbose     say what is done and on which store, with the library's log\n"
        "                    (twice: debug)\n"
        "      --version     print the version\n\n"
        "Durations: 250ms, 30s, 5m, 1h (units ms, s, m, h). Exit status: 0 success, 1 held\n"
        "by another worker, 2 usage error, 3 store error (also authentication), 4 not the\n"
        "owner or no such lock, 5 lock lost during run. With --json a failure is a document\n"
        "too: {\"error\",\"exit\",\"command\"}.\n\n"
        "Start with 'tasklock demo'. 'tasklock help COMMAND' or 'man tasklock' for more.\n");
}

void tl_cli_print_help(const struct tl_cli_cmd *c)
{
    (void)printf("usage: tasklock [global options] %s\n\n%s.\n", c->usage, c->summary);
    if (c->help != NULL)
        (void)printf("\n%s", c->help);
    (void)printf(
        "\nGlobal options (before or after the command): -s, --store URL; -w, "
        "--worker ID;\n-n, --node ID; --json; -q, --quiet; -v, --verbose; --github-api-url URL. "
        "See tasklock(1).\n");
}

static int run_help(struct tl_cli *cli, int argc, char **argv)
{
    if (argc < 2) {
        print_overview();
        return TL_EXIT_OK;
    }
    if (argc > 2)
        return tl_cli_usage_error(cli, "give one command name, or none");

    const struct tl_cli_cmd *c = tl_cli_find(argv[1]);
    if (c == NULL)
        return tl_cli_usage_error(cli, "unknown command \"%s\"", argv[1]);
    tl_cli_print_help(c);
    return TL_EXIT_OK;
}

const struct tl_cli_cmd tl_cli_cmd_help = {
    .name = "help",
    .usage = "help [COMMAND]",
    .summary = "Show the commands, or the options of one",
    .run = run_help,
};
