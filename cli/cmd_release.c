/*
 * cmd_release.c -- `tasklock release KEY`: give a lock back, by this worker's token.
 *
 * The CLI runs each command in its own process, so it has no lock handle: it releases by
 * (key, token), with the token from --token or, without it, from the store when this worker
 * id holds the key (so that `tasklock acquire k; ...; tasklock release k` works in a script).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

enum { OPT_TOKEN = TL_OPT_COMMAND, OPT_SUMMARY };

static const char help[] =
    "Releases the lock of KEY held by this worker (--worker, $TASKLOCK_WORKER, else\n"
    "USER@HOST). Without --token it releases the token this worker holds KEY with.\n"
    "Releasing twice with the same token is not an error.\n"
    "\n"
    "Options:\n"
    "  --token N        release only if the lock still has fencing token N\n"
    "  --summary TEXT   a note for the audit trail ('tasklock log')\n"
    "\n"
    "Exit status: 0 released, 2 usage error, 3 store error, 4 not the owner (held by\n"
    "another worker or token) or no such lock.\n";

bool tl_cli_text_ok(const struct tl_cli *cli, const char *opt, const char *text, size_t max)
{
    json_t *probe = json_string(text); /* jansson checks UTF-8 for us */
    bool utf8 = probe != NULL;

    json_decref(probe);
    if (!utf8) {
        (void)tl_cli_usage_error(cli, "%s: the text is not valid UTF-8", opt);
        return false;
    }
    if (strlen(text) > max) {
        (void)tl_cli_usage_error(cli, "%s: the text is %zu bytes long; the limit is %zu", opt,
                                 strlen(text), max);
        return false;
    }
    return true;
}

static int run_release(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS,
                                             {"token", 1, NULL, OPT_TOKEN},
                                             {"summary", 1, NULL, OPT_SUMMARY},
                                             {0}};
    const char *summary = NULL;
    bool have_token = false;
    uint64_t token = 0;
    tl_manager *m = NULL;
    int rc = TL_EXIT_OK;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        if (opt == OPT_TOKEN) {
            if (!tl_cli_uint(cli, "--token", optarg, UINT64_MAX, &token))
                return TL_EXIT_USAGE;
            have_token = true;
        } else if (opt == OPT_SUMMARY) {
            if (!tl_cli_text_ok(cli, "--summary", optarg, 4096))
                return TL_EXIT_USAGE;
            summary = optarg;
        } else {
            rc = tl_cli_global_opt(cli, opt, optarg, argv);
            if (rc >= 0)
                return rc;
        }
    }
    if (argc - optind != 1)
        return tl_cli_usage_error(cli, argc == optind ? "give the KEY to release"
                                                      : "give one KEY, not more");
    const char *key = argv[optind];
    if (!tl_cli_key(cli, key))
        return TL_EXIT_USAGE;

    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        return rc;
    if (!have_token && (rc = tl_cli_own_token(cli, m, key, &token)) != TL_EXIT_OK)
        goto out;

    tl_status st = tl_release_token(m, key, token, summary);
    if (st != TL_OK) {
        rc = tl_cli_fail(cli, m, st,
                         st == TL_ENOTOWNER ? "see 'tasklock status KEY' for who holds it" : NULL);
        goto out;
    }
    if (cli->json)
        rc = tl_cli_print_json(cli, json_pack("{s:s, s:I, s:b}", "key", key, "token",
                                              (json_int_t)token, "released", 1));

out:
    tl_manager_free(m);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_release = {
    .name = "release",
    .usage = "release KEY [--token N] [--summary TEXT]",
    .summary = "Release a lock this worker holds",
    .help = help,
    .run = run_release,
};
