/*
 * cmd_list.c -- `tasklock list`: a table of every held lock, stale ones marked.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "shapes.h"

static const char help[] =
    "Lists every held lock in the store, ordered by key: holder, node, fencing token, age of\n"
    "the claim and of the last heartbeat, and STALE for a lock whose last heartbeat is older\n"
    "than its lock timeout, and WAITING: how many wait in the key's line ('tasklock status\n"
    "KEY' shows them). Prints 'no locks held in STORE' when there are none.\n"
    "With --json: {\"locks\":[{\"key\":KEY,\"lock\":METADATA,\"waiting\":N}, ...]},\n"
    "METADATA with \"stale\".\n"
    "\n"
    "Exit status: 0, 2 usage error, 3 store error (or a store that cannot list its locks).\n";

static int width(int w, const char *s)
{
    int n = (int)strlen(s);

    return n > w ? n : w;
}

static void print_table(struct tl_info **infos, size_t n)
{
    int wkey = 3, wworker = 6, wnode = 4, wtoken = 5;

    for (size_t i = 0; i < n; i++) {
        char token[24];

        wkey = width(wkey, infos[i]->key);
        wworker = width(wworker, infos[i]->worker_id);
        wnode = width(wnode, infos[i]->node_id);
        (void)snprintf(token, sizeof(token), "%llu", (unsigned long long)infos[i]->token);
        wtoken = width(wtoken, token); /* 16 digits on SQLite and Redis, 10 on GitHub */
    }
    (void)printf("%-*s  %-*s  %-*s  %*s  %9s  %9s  %7s  %s\n", wkey, "KEY", wworker, "HOLDER",
                 wnode, "NODE", wtoken, "TOKEN", "CLAIMED", "HEARTBEAT", "WAITING", "STATE");
    for (size_t i = 0; i < n; i++) {
        const struct tl_info *info = infos[i];
        int64_t now = info->observed_at_ms != 0 ? info->observed_at_ms : tl_cli_now_ms();
        char claimed[32], beat[32];

        tl_cli_format_age(now - info->claimed_at_ms, claimed, sizeof(claimed));
        tl_cli_format_age(now - info->heartbeat_at_ms, beat, sizeof(beat));
        (void)printf("%-*s  %-*s  %-*s  %*llu  %9s  %9s  %7u  %s\n", wkey, info->key, wworker,
                     info->worker_id, wnode, info->node_id, wtoken, (unsigned long long)info->token,
                     claimed, beat, (unsigned)info->waiting, info->stale ? "STALE" : "held");
    }
}

static int run_list(struct tl_cli *cli, int argc, char **argv)
{
    tl_manager *m = NULL;
    struct tl_info **infos = NULL;
    size_t n = 0;
    int rc;

    if ((rc = tl_cli_no_args(cli, argc, argv)) >= 0)
        return rc;
    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        return rc;

    tl_status st = tl_list(m, &infos, &n);
    char *shown = st == TL_OK ? tl_cli_store_shown(m) : NULL;
    if (st == TL_OK)
        tl_cli_info(cli, "%zu lock%s held in %s", n, n == 1 ? "" : "s", shown ? shown : "?");
    if (st != TL_OK)
        rc = tl_cli_fail(cli, m, st, NULL);
    else if (cli->json)
        rc = tl_cli_print_json(cli, tl_cli_list_json(infos, n));
    else if (n == 0)
        (void)printf("no locks held in %s\n", shown ? shown : "this store");
    else
        print_table(infos, n);
    free(shown);
    tl_info_array_free(infos, n);
    tl_manager_free(m);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_list = {
    .name = "list",
    .usage = "list",
    .summary = "List every held lock (stale ones marked)",
    .help = help,
    .run = run_list,
};
