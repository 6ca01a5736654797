/*
 * cmd_claim.c -- `tasklock claim-next` (claim the first free task of a list, or of a GitHub
 * label) and `tasklock reopen` (clear a task's done marker), with the candidate list that
 * claim-next and `tasklock work` share.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int add_key(const struct tl_cli *cli, struct tl_cli_candidates *c, const char *key)
{
    if (!tl_cli_key(cli, key))
        return TL_EXIT_USAGE;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **k = realloc(c->keys, cap * sizeof(*k));
        if (k == NULL) {
            tl_cli_error(cli, "out of memory");
            return TL_EXIT_STORE;
        }
        c->keys = k;
        c->cap = cap;
    }
    if ((c->keys[c->n] = strdup(key)) == NULL) {
        tl_cli_error(cli, "out of memory");
        return TL_EXIT_STORE;
    }
    c->n++;
    return -1;
}

static int add_file(const struct tl_cli *cli, struct tl_cli_candidates *c, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = -1;
    unsigned lineno = 0;
    char err[128];

    if (f == NULL) {
        tl_cli_error(cli, "--keys-from %s: %s", path, tl_cli_strerror(errno, err));
        return TL_EXIT_USAGE;
    }
    while (rc < 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                           line[len - 1] == '\t'))
            line[--len] = '\0';
        const char *k = line + strspn(line, " \t");
        if (*k == '\0' || *k == '#')
            continue;
        if (!tl_key_is_valid(k)) {
            rc = tl_cli_usage_error(cli, "--keys-from %s, line %u: not a valid key", path, lineno);
            break;
        }
        rc = add_key(cli, c, k);
    }
    if (rc < 0 && ferror(f)) {
        tl_cli_error(cli, "--keys-from %s: %s", path, tl_cli_strerror(errno, err));
        rc = TL_EXIT_USAGE;
    }
    free(line);
    if (f != stdin)
        (void)fclose(f);
    return rc;
}

int tl_cli_candidates_opt(const struct tl_cli *cli, struct tl_cli_candidates *c, int opt,
                          const char *arg)
{
    if (opt == TL_OPT_LABEL) {
        if (arg[0] == '\0')
            return tl_cli_usage_error(cli, "--label: empty label");
        c->label = arg;
        return -1;
    }
    if (opt == TL_OPT_KEYS_FROM)
        return add_file(cli, c, arg);
    return 0;
}

int tl_cli_candidates_finish(const struct tl_cli *cli, struct tl_cli_candidates *c, int argc,
                             char **argv)
{
    int rc;

    for (int i = optind; i < argc; i++) {
        if ((rc = add_key(cli, c, argv[i])) >= 0)
            return rc;
    }
    if (c->label != NULL && c->n > 0)
        return tl_cli_usage_error(cli, "give KEYs or --label, not both");
    if (c->label == NULL && c->n == 0 && optind == argc)
        return -1; /* none: the command says "no task" (exit 6) */
    /* The library refuses a repeated key; say which before anything else happens. */
    for (size_t i = 0; i < c->n; i++) {
        for (size_t j = i + 1; j < c->n && c->n <= 2000; j++) {
            if (strcmp(c->keys[i], c->keys[j]) == 0)
                return tl_cli_usage_error(cli, "key %s is given twice", c->keys[i]);
        }
    }
    return -1;
}

void tl_cli_candidates_fini(struct tl_cli_candidates *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->keys[i]);
    free((void *)c->keys);
    memset(c, 0, sizeof(*c));
}

tl_status tl_cli_claim_next(tl_manager *m, const struct tl_cli_candidates *c,
                            const struct tl_acquire_opts *opts, tl_lock **out)
{
    if (c->label != NULL)
        return tl_claim_next_label(m, c->label, opts, out);
    return tl_claim_next(m, (const char *const *)c->keys, c->n, opts, out);
}

/* ---- claim-next ---- */

static const char claim_help[] =
    "Claims the next task: of the KEYs in order (the order is the priority), the first one\n"
    "that is free -- not held, nobody waiting in its line, not done -- atomically, in one\n"
    "round trip where the store allows, so that concurrent claimers never get the same task.\n"
    "Prints the key and the fencing token on one line (\"KEY TOKEN\"; --json: both, and the\n"
    "lock's record). Like 'tasklock acquire', the lock outlives the command: renew it with\n"
    "'tasklock renew KEY', finish it with 'tasklock release KEY --done'.\n"
    "\n"
    "Candidates: KEY arguments, or --keys-from FILE (one key per line; # comments and blank\n"
    "lines skipped; - for standard input), or --label L on a GitHub store (the open issues\n"
    "labelled L, ranked by priority label, then oldest first: docs/github.md).\n"
    "\n"
    "Options: the acquire options (see 'tasklock help acquire'): --strategy retry (default:\n"
    "wait for a candidate to come free, woken by the store), fail-fast (one attempt) or\n"
    "steal-stale (also take a task whose holder is stale); --retries, --wait, --lock-timeout,\n"
    "--info. A priority, --shared, --slots and --strategy force are refused (a task is\n"
    "claimed by one worker).\n"
    "\n"
    "Exit status: 0 claimed, 1 every candidate not done is held or has waiters, 2 usage\n"
    "error, 3 store error, 6 no task left: every candidate is done, or none was given.\n";

static int run_claim_next(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS,
                                             TL_CLI_ACQUIRE_LONGOPTS,
                                             {"keys-from", 1, NULL, TL_OPT_KEYS_FROM},
                                             {"label", 1, NULL, TL_OPT_LABEL},
                                             {0}};
    struct tl_cli_acquire a;
    struct tl_cli_candidates c = {0};
    tl_manager *m = NULL;
    tl_lock *lock = NULL;
    int rc;

    tl_cli_acquire_init(&a, TL_RETRY);
    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        rc = tl_cli_candidates_opt(cli, &c, opt, optarg);
        if (rc == 0)
            rc = tl_cli_acquire_opt(cli, &a, opt, optarg);
        if (rc == 0)
            rc = tl_cli_global_opt(cli, opt, optarg, argv);
        if (rc >= 0)
            goto out;
    }
    if ((rc = tl_cli_candidates_finish(cli, &c, argc, argv)) >= 0)
        goto out;
    if (a.opts.strategy == TL_FORCE_ACQUIRE) {
        rc = tl_cli_usage_error(cli, "claim-next takes free tasks: --strategy force is refused "
                                     "(use 'tasklock acquire KEY --strategy force')");
        goto out;
    }
    if ((rc = tl_cli_acquire_finish(cli, &a)) != TL_EXIT_OK)
        goto out;

    const struct tl_options o = {.lock_timeout_ms = a.opts.lock_timeout_ms};
    if ((rc = tl_cli_connect(cli, &o, &m)) != TL_EXIT_OK)
        goto out;

    tl_cli_cancel_begin(&a);
    tl_status st = tl_cli_claim_next(m, &c, &a.opts, &lock);
    int sig_rc = tl_cli_cancel_end(&a);
    if (st == TL_ECANCELED) {
        tl_cli_error(cli, "%s", tl_errmsg(m));
        rc = sig_rc ? sig_rc : TL_EXIT_BUSY;
        goto out;
    }
    if (st != TL_OK) {
        rc = cli->quiet && (st == TL_EBUSY || st == TL_ENOTASK) ? tl_cli_fail_silently(cli, m, st)
                                                                : tl_cli_fail(cli, m, st, NULL);
        goto out;
    }

    const char *key = tl_lock_key(lock);
    tl_cli_info(cli, "claimed %s with token %llu", key, (unsigned long long)tl_lock_token(lock));
    (void)signal(SIGPIPE, SIG_IGN);
    if (cli->json) {
        char *meta = tl_lock_metadata(lock);
        json_t *doc = tl_cli_lock_json(key, meta, false, false);

        if (doc != NULL &&
            json_object_set_new(doc, "token", json_integer((json_int_t)tl_lock_token(lock))) != 0) {
            json_decref(doc);
            doc = NULL;
        }
        rc = tl_cli_print_json(cli, doc);
        tl_free(meta);
    } else {
        (void)printf("%s %llu\n", key, (unsigned long long)tl_lock_token(lock));
    }
    if (rc != TL_EXIT_OK) {
        rc = tl_cli_undelivered(cli, m, key, lock, "out of memory");
        goto out;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        char why[128];

        rc = tl_cli_undelivered(cli, m, key, lock, tl_cli_strerror(errno, why));
        goto out;
    }

out:
    tl_lock_free(lock); /* stops heartbeating it; the lock stays held in the store */
    tl_manager_free(m);
    tl_cli_candidates_fini(&c);
    tl_cli_acquire_fini(&a);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_claim_next = {
    .name = "claim-next",
    .usage = "claim-next [KEY... | --keys-from FILE | --label L] [acquire options]",
    .summary = "Claim the first free task of a list (atomically) and print its key and token",
    .help = claim_help,
    .run = run_claim_next,
};

/* ---- reopen ---- */

static const char reopen_help[] =
    "Clears the done marker that 'tasklock release KEY --done' (or 'tasklock work') left, so\n"
    "that claim-next offers KEY again; on GitHub, reopens the issue. The audit trail records\n"
    "it ('tasklock log KEY'). Reopening a task that is not done is not an error.\n"
    "\n"
    "Exit status: 0 reopened (or it was not done), 2 usage error, 3 store error.\n";

static int run_reopen(struct tl_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {TL_CLI_GLOBAL_LONGOPTS, {0}};
    tl_manager *m = NULL;
    int rc;

    for (;;) {
        int opt = tl_cli_getopt(argc, argv, ":" TL_CLI_GLOBAL_SHORTOPTS, longopts);

        if (opt == -1)
            break;
        if ((rc = tl_cli_global_opt(cli, opt, optarg, argv)) >= 0)
            return rc;
    }
    if (argc - optind != 1)
        return tl_cli_usage_error(cli, argc == optind ? "give the KEY to reopen"
                                                      : "give one KEY, not more");
    const char *key = argv[optind];
    if (!tl_cli_key(cli, key))
        return TL_EXIT_USAGE;
    if ((rc = tl_cli_connect(cli, NULL, &m)) != TL_EXIT_OK)
        return rc;

    bool was = false;
    tl_status st = tl_reopen(m, key, &was);
    if (st != TL_OK) {
        rc = tl_cli_fail(cli, m, st, NULL);
    } else if (cli->json) {
        rc = tl_cli_print_json(cli, json_pack("{s:s, s:b}", "key", key, "was_done", was));
    } else {
        tl_cli_note(cli, was ? "reopened %s" : "%s was not done; nothing to reopen", key);
        rc = TL_EXIT_OK;
    }
    tl_manager_free(m);
    return rc;
}

const struct tl_cli_cmd tl_cli_cmd_reopen = {
    .name = "reopen",
    .usage = "reopen KEY",
    .summary = "Clear a task's done marker, so that claim-next offers it again",
    .help = reopen_help,
    .run = run_reopen,
};
