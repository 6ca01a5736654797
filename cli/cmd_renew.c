/*
 * cmd_renew.c -- `tasklock renew KEY`: one heartbeat for a lock taken by `tasklock acquire`.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

enum { OPT_TOKEN = TL_OPT_COMMAND };

static const char help[] =
    "Renews the lock of KEY held by this worker: records a heartbeat now, so that the lock\n"
    "stays live for another lock timeout. A lock taken with 'tasklock acquire' has no other\n"
    "heartbeat; call this well within its lock timeout (a third of it is the usual period).\n"
    "\n"
    "Options:\n"
    "  --token N   renew only if the lock still has fencing token N (default: the token this\n"
    "              worker holds KEY with)\n"
    "  --lock-timeout DURATION\n"
    "              also change the lock's recorded lock timeout to DURATION (longer or\n"
    "              shorter), atomically with the heartbeat: from now on it goes stale\n"
    "              DURATION after its last heartbeat\n"
    "\n"
    "Exit status: 0 renewed, 2 usage error, 3 store error, 4 no longer ours (stolen, forced,\n"
    "released) or no such lock.\n";

static int run_renew(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS,
                                             {"token", 1, NULL, OPT_TOKEN},
                                             {"lock-timeout", 1, NULL, TL_OPT_LOCK_TIMEOUT},
                                             {0}};
    bool have_token = false, is_free = false;
    uint64_t token = 0;
    uint32_t timeout = 0;
    tl_manager *m = NULL;
    int rc = TL_EXIT_OK;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        if (opt == OPT_TOKEN) {
            if (!tl_cli_uint(cli, "--token", optarg, 1, UINT64_MAX, &token))
                return TL_EXIT_USAGE;
            have_token = true;
        } else if (opt == TL_OPT_LOCK_TIMEOUT) {
            if (!tl_cli_duration(cli, "--lock-timeout", optarg, &timeout))
                return TL_EXIT_USAGE;
        } else {
            rc = tl_cli_global_opt(cli, opt, optarg, argv);
            if (rc >= 0)
                return rc;
        }
    }
    if (argc - optind != 1)
        return tl_cli_usage_error(cli, argc == optind ? "give the KEY to renew"
                                                      : "give one KEY, not more");
    const char *key = argv[optind];
    if (!tl_cli_key(cli, key))
        return TL_EXIT_USAGE;

    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        return rc;
    if (!have_token && (rc = tl_cli_own_token(cli, m, key, &token, &is_free)) != TL_EXIT_OK) {
        if (is_free)
            tl_cli_error(cli, "%s is not locked: there is nothing to renew (acquire it again)",
                         key);
        goto out;
    }

    tl_status st =
        timeout != 0 ? tl_extend_token(m, key, token, timeout) : tl_renew_token(m, key, token);
    if (st != TL_OK) {
        char hint[400];

        (void)snprintf(hint, sizeof(hint), "acquire it again; see 'tasklock status %s'", key);
        rc = tl_cli_fail(cli, m, st, st == TL_ELOST ? hint : NULL);
        goto out;
    }
    tl_cli_info(cli, "renewed %s (token %llu)", key, (unsigned long long)token);
    if (cli->json && timeout != 0)
        rc = tl_cli_print_json(cli, json_pack("{s:s, s:I, s:b, s:I}", "key", key, "token",
                                              (json_int_t)token, "renewed", 1, "lock_timeout_ms",
                                              (json_int_t)timeout));
    else if (cli->json)
        rc = tl_cli_print_json(cli, json_pack("{s:s, s:I, s:b}", "key", key, "token",
                                              (json_int_t)token, "renewed", 1));

out:
    tl_manager_free(m);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_renew = {
    .name = "renew",
    .usage = "renew KEY [--token N] [--lock-timeout DURATION]",
    .summary = "Heartbeat a lock taken by 'acquire' once, now",
    .help = help,
    .run = run_renew,
};
