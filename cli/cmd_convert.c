/*
 * cmd_convert.c -- `tasklock upgrade KEY` and `tasklock downgrade KEY`: change the mode of a
 * lock taken by `tasklock acquire --shared` (or without), printing its new token.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

enum { OPT_TOKEN = TL_OPT_COMMAND };

static const char upgrade_help[] =
    "Upgrades this worker's shared lock of KEY to the exclusive one and prints its new fencing\n"
    "token on one line (larger than every earlier holder's). At once when it is KEY's only\n"
    "holder; otherwise it waits at the head of KEY's line, ahead of every other waiter, until\n"
    "the other holders have left, keeping its shared lock meanwhile (nothing heartbeats that\n"
    "lock while this command waits: renew it from elsewhere if the wait may outlast its lock\n"
    "timeout).\n"
    "\n"
    "If another holder upgrades at the same time, the two would wait for each other forever:\n"
    "the one that arrived last is told (exit 7) and keeps its shared lock; release it and\n"
    "start over. The same holds for any cycle of waits (a deadlock).\n"
    "\n"
    "Options:\n"
    "  --token N          the lock to upgrade (default: the one this worker holds KEY with)\n"
    "  --strategy S       retry (default: wait), fail-fast (one attempt) or steal-stale (other\n"
    "                     holders that are stale do not count, and are displaced)\n"
    "  --retries N, --wait DURATION\n"
    "                     how long to wait, as for 'tasklock acquire'\n"
    "With --json: {\"key\",\"token\",\"from_token\",\"mode\":\"exclusive\"}.\n"
    "\n"
    "Exit status: 0 upgraded, 1 other holders stayed (still held shared), 2 usage error\n"
    "(also: the lock is exclusive already), 3 store error, 4 no such lock of this worker,\n"
    "7 deadlock (still held shared).\n";

static const char downgrade_help[] =
    "Downgrades this worker's exclusive lock of KEY to a shared one and prints its new fencing\n"
    "token on one line. Immediate: shared waiters at the head of KEY's line may then enter\n"
    "beside it.\n"
    "\n"
    "Options:\n"
    "  --token N   the lock to downgrade (default: the one this worker holds KEY with)\n"
    "With --json: {\"key\",\"token\",\"from_token\",\"mode\":\"shared\"}.\n"
    "\n"
    "Exit status: 0 downgraded, 2 usage error (also: the lock is shared already), 3 store\n"
    "error, 4 no such lock of this worker.\n";

static int run_convert(struct tl_cli *cli, int argc, char **argv, bool up)
{
    static const struct option up_longopts[] = {TL_CLI_GLOBAL_LONGOPTS,
                                                {"token", 1, NULL, OPT_TOKEN},
                                                {"strategy", 1, NULL, TL_OPT_STRATEGY},
                                                {"retries", 1, NULL, TL_OPT_RETRIES},
                                                {"wait", 1, NULL, TL_OPT_WAIT},
                                                {0}};
    static const struct option down_longopts[] = {
        TL_CLI_GLOBAL_LONGOPTS, {"token", 1, NULL, OPT_TOKEN}, {0}};
    struct tl_cli_acquire a;
    bool have_token = false, is_free = false;
    uint64_t token = 0, new_token = 0;
    tl_manager *m = NULL;
    int rc = TL_EXIT_OK;

    tl_cli_acquire_init(&a, TL_RETRY);
    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS,
                                up ? up_longopts : down_longopts);

        if (opt == -1)
            break;
        if (opt == OPT_TOKEN) {
            if (!tl_cli_uint(cli, "--token", optarg, 1, UINT64_MAX, &token)) {
                rc = TL_EXIT_USAGE;
                goto out;
            }
            have_token = true;
            continue;
        }
        int r = up ? tl_cli_acquire_opt(cli, &a, opt, optarg) : 0;
        if (r == 0)
            r = tl_cli_global_opt(cli, opt, optarg, argv);
        if (r >= 0) { /* help printed, or a usage error */
            rc = r;
            goto out;
        }
    }
    if (argc - optind != 1) {
        rc = tl_cli_usage_error(cli, argc == optind ? "give the KEY" : "give one KEY, not more");
        goto out;
    }
    const char *key = argv[optind];
    if (!tl_cli_key(cli, key)) {
        rc = TL_EXIT_USAGE;
        goto out;
    }
    if (up && a.opts.strategy == TL_FORCE_ACQUIRE) {
        rc = tl_cli_usage_error(cli, "an upgrade waits for the other holders: --strategy force "
                                     "is refused");
        goto out;
    }
    if ((rc = tl_cli_acquire_finish(cli, &a)) != TL_EXIT_OK)
        goto out;
    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        goto out;
    if (!have_token && (rc = tl_cli_own_token(cli, m, key, &token, &is_free)) != TL_EXIT_OK) {
        if (is_free)
            tl_cli_error(cli, "%s is not locked: there is nothing to %s", key,
                         up ? "upgrade" : "downgrade");
        goto out;
    }

    tl_status st;
    int sig_rc = 0;
    if (up) {
        tl_cli_cancel_begin(&a);
        st = tl_upgrade_token(m, key, token, &a.opts, &new_token);
        sig_rc = tl_cli_cancel_end(&a);
    } else {
        st = tl_downgrade_token(m, key, token, &new_token);
    }
    if (st == TL_ECANCELED) {
        tl_cli_error(cli, "%s", tl_errmsg(m));
        rc = sig_rc ? sig_rc : TL_EXIT_BUSY;
        goto out;
    }
    if (st != TL_OK) {
        char hint[400];
        const char *h = NULL;

        if (st == TL_EDEADLK)
            h = "the lock is still held shared: release it ('tasklock release KEY') and start "
                "over";
        else if (st == TL_EBUSY)
            h = "the lock is still held shared; wait longer with --wait DURATION";
        else if (st == TL_ELOST) {
            (void)snprintf(hint, sizeof(hint), "see 'tasklock status %s'", key);
            h = hint;
        }
        rc = tl_cli_fail(cli, m, st, h);
        goto out;
    }
    tl_cli_info(cli, "%s %s: token %llu, was %llu", up ? "upgraded" : "downgraded", key,
                (unsigned long long)new_token, (unsigned long long)token);
    if (cli->json)
        rc = tl_cli_print_json(
            cli, json_pack("{s:s, s:I, s:I, s:s}", "key", key, "token", (json_int_t)new_token,
                           "from_token", (json_int_t)token, "mode", up ? "exclusive" : "shared"));
    else
        (void)printf("%llu\n", (unsigned long long)new_token);
    if (rc == TL_EXIT_OK && (fflush(stdout) != 0 || ferror(stdout))) {
        char why[128];
        tl_cli_error(cli, "the new token (%llu) could not be written: %s",
                     (unsigned long long)new_token, tl_cli_strerror(errno, why));
        rc = TL_EXIT_STORE;
    }

out:
    tl_manager_free(m);
    tl_cli_acquire_fini(&a);
    return rc;
}

static int run_upgrade(struct tl_cli *cli, int argc, char **argv)
{
    return run_convert(cli, argc, argv, true);
}

static int run_downgrade(struct tl_cli *cli, int argc, char **argv)
{
    return run_convert(cli, argc, argv, false);
}

const struct tl_cli_cmd tl_cli_cmd_upgrade = {
    .name = "upgrade",
    .usage = "upgrade KEY [--token N] [--strategy retry|fail-fast|steal-stale] [--retries N]\n"
             "    [--wait DURATION]",
    .summary = "Turn a shared lock into the exclusive one (prints the new token)",
    .help = upgrade_help,
    .run = run_upgrade,
};

const struct tl_cli_cmd tl_cli_cmd_downgrade = {
    .name = "downgrade",
    .usage = "downgrade KEY [--token N]",
    .summary = "Turn an exclusive lock into a shared one (prints the new token)",
    .help = downgrade_help,
    .run = run_downgrade,
};
