/*
 * cmd_release.c -- `tasklock release KEY`: give a lock back, by this worker's token.
 *
 * The CLI runs each command in its own process, so it has no lock handle: it releases by
 * (key, token), with the token from --token or, without it, from the store when this worker
 * id holds the key (so that `tasklock acquire k; ...; tasklock release k` works in a script).
 * --force breaks a lock whoever holds it (tl_release_force).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_TOKEN = TL_OPT_COMMAND, OPT_SUMMARY, OPT_FORCE, OPT_DONE };

static const char help[] =
    "Releases the lock of KEY held by this worker (--worker, $TASKLOCK_WORKER, else\n"
    "USER@HOST). Without --token it releases the token this worker holds KEY with.\n"
    "Releasing again is not an error: with --token, while no one has acquired KEY since;\n"
    "without it, when KEY is free and its audit trail's last event is this worker's release.\n"
    "\n"
    "Options:\n"
    "  --token N        release only if the lock still has fencing token N\n"
    "  --summary TEXT   a note for the audit trail ('tasklock log')\n"
    "  --done           the task is finished: KEY keeps a done marker (this worker, the\n"
    "                   time, the token, the summary) that 'tasklock claim-next' skips\n"
    "                   until 'tasklock reopen KEY'; on GitHub the issue is closed\n"
    "  --force          break the lock whoever holds it (with --token N: only if it still\n"
    "                   has token N), for an administrator clearing a hung or dead\n"
    "                   worker's lock; recorded as forced, then released, by this worker.\n"
    "                   The holder finds its lock lost at its next heartbeat. A free KEY is\n"
    "                   nothing to do (exit 0).\n"
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

/* Prints the success of a release: a note with -v, the document with --json. */
static int released(const struct tl_cli *cli, const char *key, uint64_t token, bool already)
{
    tl_cli_info(cli, "%s %s (token %llu)", already ? "had released" : "released", key,
                (unsigned long long)token);
    if (!cli->json)
        return TL_EXIT_OK;
    json_t *doc =
        json_pack("{s:s, s:I, s:b}", "key", key, "token", (json_int_t)token, "released", 1);
    if (doc != NULL && already && json_object_set_new(doc, "already", json_true()) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    return tl_cli_print_json(cli, doc);
}

/*
 * KEY is free and no --token was given: a retry of this worker's own release (its answer was
 * lost, or a script releases twice) is fine, as it is with --token. The audit trail tells: its
 * last event must be this worker's release, and the store confirms that no one has acquired
 * the key since that token. Anything else is "nothing to release".
 */
static int release_free(const struct tl_cli *cli, tl_manager *m, const char *key,
                        const char *summary)
{
    struct tl_event **ev = NULL;
    size_t n = 0;
    char last[256] = "";
    int rc = TL_EXIT_NOTOWNER;

    if (tl_history(m, key, 1, &ev, &n) == TL_OK && n == 1) {
        const struct tl_event *e = ev[0];
        char at[48];

        tl_cli_format_time(e->at_ms, false, at, sizeof(at));
        (void)snprintf(last, sizeof(last), " (its last event: %s by %s at %s, token %llu)",
                       tl_event_kind_name(e->kind), e->worker_id, at, (unsigned long long)e->token);
        if ((e->kind == TL_EVENT_RELEASED || e->kind == TL_EVENT_DONE) &&
            strcmp(e->worker_id, tl_manager_worker_id(m)) == 0 &&
            tl_release_token(m, key, e->token, summary) == TL_OK) {
            tl_cli_note(cli, "%s was released by this worker already (token %llu)", key,
                        (unsigned long long)e->token);
            rc = released(cli, key, e->token, true);
        }
    }
    tl_event_array_free(ev, n);
    if (rc == TL_EXIT_NOTOWNER)
        tl_cli_error(cli, "%s is not locked: there is nothing to release%s", key, last);
    return rc;
}

/* --force: break the lock, whoever holds it (or only token `token`, if not 0). */
static int release_force(const struct tl_cli *cli, tl_manager *m, const char *key, uint64_t token,
                         const char *summary)
{
    struct tl_info *former = NULL;
    tl_status st = tl_release_force(m, key, token, summary, &former);
    int rc = TL_EXIT_OK;

    if (st != TL_OK) {
        char hint[400];

        (void)snprintf(hint, sizeof(hint),
                       "see 'tasklock status %s'; give its token with --token, or leave --token "
                       "out to break it whoever holds it",
                       key);
        return tl_cli_fail(cli, m, st, st == TL_ENOTOWNER ? hint : NULL);
    }
    if (former == NULL)
        tl_cli_note(cli, "%s is not locked: there was nothing to break", key);
    else
        tl_cli_note(cli,
                    "broke the lock of %s: it was held by %s on %s (token %llu%s); that worker "
                    "finds it lost at its next heartbeat",
                    key, former->worker_id, former->node_id, (unsigned long long)former->token,
                    former->stale ? ", stale" : "");
    if (cli->json) {
        char *meta = former != NULL ? tl_info_to_json(former) : NULL;
        json_t *holder =
            former != NULL ? tl_cli_lock_json(key, meta, true, former->stale) : json_null();
        json_t *lock = json_object_get(holder, "lock");

        tl_free(meta);
        rc = tl_cli_print_json(cli, json_pack("{s:s, s:b, s:b, s:O?}", "key", key, "released",
                                              former != NULL, "forced", 1, "holder", lock));
        json_decref(holder);
    }
    tl_info_free(former);
    return rc;
}

static int run_release(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS,
                                             {"token", 1, NULL, OPT_TOKEN},
                                             {"summary", 1, NULL, OPT_SUMMARY},
                                             {"force", 0, NULL, OPT_FORCE},
                                             {"done", 0, NULL, OPT_DONE},
                                             {0}};
    const char *summary = NULL;
    bool have_token = false, force = false, is_free = false, done = false;
    uint64_t token = 0;
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
        } else if (opt == OPT_SUMMARY) {
            if (!tl_cli_text_ok(cli, "--summary", optarg, 4096))
                return TL_EXIT_USAGE;
            summary = optarg;
        } else if (opt == OPT_FORCE) {
            force = true;
        } else if (opt == OPT_DONE) {
            done = true;
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

    if (force && done)
        return tl_cli_usage_error(cli, "--force breaks a lock, --done finishes a task: not both");
    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        return rc;
    if (force) {
        rc = release_force(cli, m, key, have_token ? token : 0, summary);
        goto out;
    }
    if (!have_token && (rc = tl_cli_own_token(cli, m, key, &token, &is_free)) != TL_EXIT_OK) {
        if (is_free)
            rc = release_free(cli, m, key, summary);
        goto out;
    }

    tl_status st = tl_release_token_with(
        m, key, token, &(struct tl_release_opts){.summary = summary, .done = done});
    if (st != TL_OK) {
        char hint[400];

        (void)snprintf(hint, sizeof(hint), "see 'tasklock status %s' for who holds it", key);
        rc = tl_cli_fail(cli, m, st, st == TL_ENOTOWNER ? hint : NULL);
        goto out;
    }
    rc = released(cli, key, token, false);

out:
    tl_manager_free(m);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_release = {
    .name = "release",
    .usage = "release KEY [--token N] [--summary TEXT] [--done | --force]",
    .summary = "Release a lock this worker holds",
    .help = help,
    .run = run_release,
};
