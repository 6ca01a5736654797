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
    "KEY' shows them). A key held shared has a line per holder, its state saying \"shared\"\n"
    "(and the slots of a semaphore). Prints 'no locks held in STORE' when there are none.\n"
    "With --json: {\"locks\":[{\"key\":KEY,\"lock\":METADATA,\"waiting\":N}, ...]},\n"
    "METADATA with \"stale\".\n"
    "\n"
    "With --done: the finished tasks instead (their done markers: key, who finished it, when,\n"
    "its token and summary); --json: {\"done\":[{\"key\",\"worker_id\",\"node_id\",\n"
    "\"done_at\",\"token\",\"summary\"}, ...]}.\n"
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
        char claimed[32], beat[32], state[48];

        if (info->mode != TL_SHARED)
            (void)snprintf(state, sizeof(state), "%s", info->stale ? "STALE" : "held");
        else if (info->slots != 0)
            (void)snprintf(state, sizeof(state), "%s (shared, %u slots)",
                           info->stale ? "STALE" : "held", (unsigned)info->slots);
        else
            (void)snprintf(state, sizeof(state), "%s (shared)", info->stale ? "STALE" : "held");
        tl_cli_format_age(now - info->claimed_at_ms, claimed, sizeof(claimed));
        tl_cli_format_age(now - info->heartbeat_at_ms, beat, sizeof(beat));
        (void)printf("%-*s  %-*s  %-*s  %*llu  %9s  %9s  %7u  %s\n", wkey, info->key, wworker,
                     info->worker_id, wnode, info->node_id, wtoken, (unsigned long long)info->token,
                     claimed, beat, (unsigned)info->waiting, state);
    }
}

/* `list --done`: the done markers. */
static int list_done(struct tl_cli *cli, tl_manager *m)
{
    struct tl_done **d = NULL;
    size_t n = 0;
    int rc = TL_EXIT_OK;
    char at[48];

    tl_status st = tl_list_done(m, NULL, &d, &n);
    if (st != TL_OK)
        return tl_cli_fail(cli, m, st, NULL);
    if (cli->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < n; i++) {
            tl_cli_format_time(d[i]->done_at_ms, false, at, sizeof(at));
            if (json_array_append_new(
                    arr, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "key", d[i]->key, "worker_id",
                                   d[i]->worker_id, "node_id", d[i]->node_id, "done_at", at,
                                   "token", (json_int_t)d[i]->token, "summary", d[i]->summary)) !=
                0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        rc = tl_cli_print_json(cli, arr != NULL ? json_pack("{s:o}", "done", arr) : NULL);
    } else if (n == 0) {
        (void)printf("no task is done\n");
    } else {
        int wkey = 3, wworker = 6;
        for (size_t i = 0; i < n; i++) {
            wkey = width(wkey, d[i]->key);
            wworker = width(wworker, d[i]->worker_id);
        }
        (void)printf("%-*s  %-*s  %-20s  %7s  %s\n", wkey, "KEY", wworker, "DONE BY", "DONE AT",
                     "TOKEN", "SUMMARY");
        for (size_t i = 0; i < n; i++) {
            tl_cli_format_time(d[i]->done_at_ms, false, at, sizeof(at));
            (void)printf("%-*s  %-*s  %-20s  %7llu  %s\n", wkey, d[i]->key, wworker,
                         d[i]->worker_id, at, (unsigned long long)d[i]->token, d[i]->summary);
        }
    }
    tl_done_array_free(d, n);
    return rc;
}

enum { OPT_DONE = TL_OPT_COMMAND };

static int run_list(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        TL_CLI_GLOBAL_LONGOPTS, {"done", 0, NULL, OPT_DONE}, {0}};
    tl_manager *m = NULL;
    struct tl_info **infos = NULL;
    size_t n = 0;
    bool done = false;
    int rc;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        if (opt == OPT_DONE) {
            done = true;
            continue;
        }
        if ((rc = tl_cli_global_opt(cli, opt, optarg, argv)) >= 0)
            return rc;
    }
    if (optind != argc)
        return tl_cli_usage_error(cli, "takes no arguments (\"%s\")", argv[optind]);
    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        return rc;
    if (done) {
        rc = list_done(cli, m);
        tl_manager_free(m);
        return rc;
    }

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
    .usage = "list [--done]",
    .summary = "List every held lock (stale ones marked)",
    .help = help,
    .run = run_list,
};
