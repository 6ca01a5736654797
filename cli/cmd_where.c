/*
 * cmd_where.c -- `tasklock where`: which store this invocation uses, and as whom.
 *
 * Workers that do not see each other's locks almost always use different stores (another
 * HOME, another $TASKLOCK_STORE): this names the store as the library resolved it, the default
 * SQLite file written out, so that two workers' answers can be compared.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static const char help[] =
    "Shows the store this invocation uses, resolved (the default SQLite file written out;\n"
    "passwords shown as ***), where that came from (--store, $TASKLOCK_STORE or the\n"
    "default), and the worker and node ids. Opens the store, so an unreachable or\n"
    "unwritable store is reported as by any other command.\n"
    "With --json: {\"store\",\"from\",\"worker_id\",\"node_id\"}.\n"
    "\n"
    "Exit status: 0, 2 usage error, 3 store error.\n";

static const char *source(const struct tl_cli *cli)
{
    const char *env = getenv("TASKLOCK_STORE"); /* NOLINT(concurrency-mt-unsafe): no threads */

    if (cli->store != NULL)
        return "--store";
    if (env != NULL && env[0] != '\0')
        return "$TASKLOCK_STORE";
    return "default";
}

static int run_where(struct tl_cli *cli, int argc, char **argv)
{
    tl_manager *m = NULL;
    int rc;

    if ((rc = tl_cli_no_args(cli, argc, argv)) >= 0)
        return rc;
    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        return rc;

    char *shown = tl_cli_store_shown(m);
    if (shown == NULL) {
        tl_cli_error(cli, "out of memory");
        rc = TL_EXIT_STORE;
    } else if (cli->json) {
        rc = tl_cli_print_json(cli, json_pack("{s:s, s:s, s:s, s:s}", "store", shown, "from",
                                              source(cli), "worker_id", tl_manager_worker_id(m),
                                              "node_id", tl_manager_node_id(m)));
    } else {
        (void)printf("store:  %s (%s)\nworker: %s\nnode:   %s\n", shown, source(cli),
                     tl_manager_worker_id(m), tl_manager_node_id(m));
    }
    free(shown);
    tl_manager_free(m);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_where = {
    .name = "where",
    .usage = "where",
    .summary = "Show which store (resolved) and which worker id this invocation uses",
    .help = help,
    .run = run_where,
};
