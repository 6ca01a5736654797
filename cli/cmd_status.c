/*
 * cmd_status.c -- `tasklock status KEY`: who holds a lock, since when, and whether it is stale.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "shapes.h"

static const char help[] =
    "Shows the holder of KEY: worker, node, fencing token, when it was claimed and last\n"
    "heartbeated (with ages), its lock timeout, and whether it is stale (a stale lock may be\n"
    "taken with --strategy steal-stale). Says so when KEY is free. A key held shared\n"
    "(--shared, --slots) shows its mode and every holder, oldest first.\n"
    "Then the waiters in KEY's line, in the order they will get the lock (priority, then\n"
    "arrival): worker, node, priority, and how long each has waited; a waiter that stopped\n"
    "showing signs of life is marked DEAD (it is skipped, and removed by whoever finds it).\n"
    "With --json: {\"key\":KEY,\"held\":BOOL,\"lock\":METADATA-or-null,\"holders\":[METADATA,\n"
    "...],\"waiters\":[...]}, where METADATA is a holder's metadata object with \"stale\"\n"
    "added (and \"mode\":\"shared\", \"slots\" for a shared holder), \"lock\" the holder a\n"
    "newcomer waits for first (the exclusive one, else the oldest), and each waiter is\n"
    "{\"worker_id\",\"node_id\",\"priority\",\"seq\",\"since\",\"heartbeat_last\",\"timeout_ms\",\n"
    "\"dead\"} (\"waiters\" is absent for a store without a line).\n"
    "\n"
    "Exit status: 0 (held or free), 2 usage error, 3 store error.\n";

/* The time the store judged the record at, for ages (its clock where it has one). */
static int64_t observed(const struct tl_info *info)
{
    return info->observed_at_ms != 0 ? info->observed_at_ms : tl_cli_now_ms();
}

static void print_status(const struct tl_info *info)
{
    char claimed[40], beat[40], claimed_age[32], beat_age[32], timeout[32];
    int64_t now = observed(info);

    tl_cli_format_time(info->claimed_at_ms, false, claimed, sizeof(claimed));
    tl_cli_format_time(info->heartbeat_at_ms, false, beat, sizeof(beat));
    tl_cli_format_age(now - info->claimed_at_ms, claimed_age, sizeof(claimed_age));
    tl_cli_format_age(now - info->heartbeat_at_ms, beat_age, sizeof(beat_age));
    tl_cli_format_age(info->lock_timeout_ms, timeout, sizeof(timeout));

    (void)printf("key:            %s\n", info->key);
    if (info->stale)
        (void)printf("state:          STALE: no heartbeat for %s, over its lock timeout; "
                     "--strategy steal-stale may take it\n",
                     beat_age);
    else
        (void)printf("state:          held\n");
    (void)printf("holder:         %s\n", info->worker_id);
    (void)printf("node:           %s\n", info->node_id);
    (void)printf("token:          %llu\n", (unsigned long long)info->token);
    (void)printf("claimed:        %s (%s ago)\n", claimed, claimed_age);
    (void)printf("last heartbeat: %s (%s ago)\n", beat, beat_age);
    (void)printf("lock timeout:   %s\n", timeout);
    if (info->task_info != NULL && strcmp(info->task_info, "{}") != 0)
        (void)printf("task info:      %s\n", info->task_info);
}

/* A key held shared: its mode, then each holder, oldest first. */
static void print_shared(const char *key, struct tl_info **hs, size_t n)
{
    (void)printf("key:            %s\n", key);
    if (hs[0]->slots != 0)
        (void)printf("state:          held shared by %zu of %u slots (a semaphore)\n", n,
                     (unsigned)hs[0]->slots);
    else
        (void)printf("state:          held shared by %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        const struct tl_info *h = hs[i];
        int64_t now = observed(h);
        char claimed_age[32], beat_age[32], timeout[32];

        tl_cli_format_age(now - h->claimed_at_ms, claimed_age, sizeof(claimed_age));
        tl_cli_format_age(now - h->heartbeat_at_ms, beat_age, sizeof(beat_age));
        tl_cli_format_age(h->lock_timeout_ms, timeout, sizeof(timeout));
        (void)printf("  %zu. %s on %s, token %llu, claimed %s ago, last heartbeat %s ago, lock "
                     "timeout %s%s\n",
                     i + 1, h->worker_id, h->node_id, (unsigned long long)h->token, claimed_age,
                     beat_age, timeout,
                     h->stale ? " (STALE: --strategy steal-stale may take its place)" : "");
        if (h->task_info != NULL && strcmp(h->task_info, "{}") != 0)
            (void)printf("     task info: %s\n", h->task_info);
    }
}

static void print_waiters(struct tl_waiter **ws, size_t n, int64_t now)
{
    size_t live = 0;

    for (size_t i = 0; i < n; i++)
        live += !ws[i]->dead;
    (void)printf("waiting:        %zu\n", live);
    for (size_t i = 0; i < n; i++) {
        char age[32];

        tl_cli_format_age(now - ws[i]->since_ms, age, sizeof(age));
        (void)printf("  %zu. %s on %s, priority %d, waiting %s%s\n", i + 1, ws[i]->worker_id,
                     ws[i]->node_id, (int)ws[i]->priority, age,
                     ws[i]->dead ? " (DEAD: no sign of life; skipped)" : "");
    }
}

static int run_status(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS, {0}};
    tl_manager *m = NULL;
    struct tl_info *info = NULL;
    int rc;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        rc = tl_cli_global_opt(cli, opt, optarg, argv);
        if (rc >= 0)
            return rc;
    }
    if (argc - optind != 1)
        return tl_cli_usage_error(cli, argc == optind ? "give the KEY to show"
                                                      : "give one KEY, not more");
    const char *key = argv[optind];
    if (!tl_cli_key(cli, key))
        return TL_EXIT_USAGE;
    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        return rc;

    struct tl_waiter **ws = NULL;
    struct tl_info **hs = NULL;
    size_t nw = 0, nh = 0;
    bool has_line = false;
    tl_status st = tl_inspect(m, key, &info);
    if (st == TL_OK && info != NULL)
        st = tl_holders(m, key, &hs, &nh);
    if (st == TL_OK) {
        tl_status wst = tl_waiters(m, key, &ws, &nw);
        has_line = wst == TL_OK;
        if (wst != TL_OK && wst != TL_ENOTSUP)
            st = wst;
    }
    if (st == TL_OK)
        tl_cli_info(cli, "read the lock of %s: %s", key,
                    info == NULL  ? "free"
                    : info->stale ? "held, stale"
                                  : "held");
    if (st != TL_OK) {
        rc = tl_cli_fail(cli, m, st, NULL);
    } else if (cli->json) {
        json_t *doc = tl_cli_status_json(key, info, hs, nh, ws, nw, has_line);

        rc = tl_cli_print_json(cli, doc);
    } else if (info == NULL) {
        (void)printf("%s is free\n", key);
        if (nw > 0)
            print_waiters(ws, nw, tl_cli_now_ms());
    } else {
        if (nh > 0 && hs[0]->mode == TL_SHARED)
            print_shared(key, hs, nh);
        else
            print_status(info);
        if (has_line)
            print_waiters(ws, nw, observed(info));
    }
    tl_waiter_array_free(ws, nw);
    tl_info_array_free(hs, nh);
    tl_info_free(info);
    tl_manager_free(m);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_status = {
    .name = "status",
    .usage = "status KEY",
    .summary = "Show who holds a lock and whether it is stale",
    .help = help,
    .run = run_status,
};
