/*
 * cmd_log.c -- `tasklock log [KEY]`: the audit trail, oldest first.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "shapes.h"

enum { OPT_LIMIT = TL_OPT_COMMAND };

static const char help[] =
    "Shows the audit trail of KEY, or of every key: who acquired, released, stole (took a\n"
    "stale lock), forced (took a live lock) or lost which lock, when, with which token.\n"
    "Oldest first.\n"
    "With --json: {\"events\":[{\"at\",\"event\",\"key\",\"token\",\"worker_id\",\"node_id\","
    "\"detail\"}, ...]}.\n"
    "\n"
    "Options:\n"
    "  --limit N   the last N events, 1 to 1000000 (default 100)\n"
    "\n"
    "Exit status: 0, 2 usage error, 3 store error (or a store that keeps no audit trail).\n";

static int max_width(int w, const char *s)
{
    int n = (int)strlen(s);

    return n > w ? n : w;
}

static void print_log(struct tl_event **events, size_t n)
{
    int wkey = 3, wworker = 6, wnode = 4, wtoken = 5;

    for (size_t i = 0; i < n; i++) {
        char token[24];

        wkey = max_width(wkey, events[i]->key);
        wworker = max_width(wworker, events[i]->worker_id);
        wnode = max_width(wnode, events[i]->node_id);
        (void)snprintf(token, sizeof(token), "%llu", (unsigned long long)events[i]->token);
        wtoken = max_width(wtoken, token);
    }
    (void)printf("%-24s  %-8s  %-*s  %*s  %-*s  %-*s  %s\n", "TIME", "EVENT", wkey, "KEY", wtoken,
                 "TOKEN", wworker, "WORKER", wnode, "NODE", "DETAIL");
    for (size_t i = 0; i < n; i++) {
        const struct tl_event *e = events[i];
        char at[48];

        tl_cli_format_time(e->at_ms, true, at, sizeof(at));
        (void)printf("%-24s  %-8s  %-*s  %*llu  %-*s  %-*s  %s\n", at, tl_event_kind_name(e->kind),
                     wkey, e->key, wtoken, (unsigned long long)e->token, wworker, e->worker_id,
                     wnode, e->node_id, e->detail ? e->detail : "");
    }
}

static int run_log(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        TL_CLI_GLOBAL_LONGOPTS, {"limit", 1, NULL, OPT_LIMIT}, {0}};
    tl_manager *m = NULL;
    struct tl_event **events = NULL;
    size_t n = 0;
    uint64_t limit = 100;
    int rc;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        if (opt == OPT_LIMIT) {
            if (!tl_cli_uint(cli, "--limit", optarg, 1, 1000000, &limit))
                return TL_EXIT_USAGE;
            continue;
        }
        rc = tl_cli_global_opt(cli, opt, optarg, argv);
        if (rc >= 0)
            return rc;
    }
    if (argc - optind > 1)
        return tl_cli_usage_error(cli, "give one KEY, or none for every key");
    const char *key = optind < argc ? argv[optind] : NULL;
    if (key != NULL && !tl_cli_key(cli, key))
        return TL_EXIT_USAGE;
    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        return rc;

    tl_status st = tl_history(m, key, (size_t)limit, &events, &n);
    if (st == TL_OK)
        tl_cli_info(cli, "read %zu event%s of %s", n, n == 1 ? "" : "s", key ? key : "every key");
    if (st != TL_OK)
        rc = tl_cli_fail(cli, m, st, NULL);
    else if (cli->json)
        rc = tl_cli_print_json(cli, tl_cli_log_json(events, n));
    else if (n == 0)
        (void)printf("no events%s%s\n", key ? " for " : "", key ? key : "");
    else
        print_log(events, n);
    tl_event_array_free(events, n);
    tl_manager_free(m);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_log = {
    .name = "log",
    .usage = "log [KEY] [--limit N]",
    .summary = "Show the audit trail: acquired, released, stolen, forced, lost",
    .help = help,
    .run = run_log,
};
