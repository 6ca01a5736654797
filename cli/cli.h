/*
 * cli.h -- what the commands of the `tasklock` tool share: the command table entry, the global
 * options, exit codes and a few helpers (common.c). The tool uses the public API only.
 */
#ifndef TL_CLI_H
#define TL_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "tasklock.h"

#if defined(__GNUC__)
#define TL_CLI_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TL_CLI_PRINTF(fmt, args)
#endif

/* Exit codes, the same for every command (docs/tasklock.1, EXIT STATUS). */
enum {
    TL_EXIT_OK = 0,
    TL_EXIT_BUSY = 1,     /* held by another worker; demo: the exactly-once check failed */
    TL_EXIT_USAGE = 2,    /* usage error or invalid input */
    TL_EXIT_STORE = 3,    /* store error */
    TL_EXIT_NOTOWNER = 4, /* release/renew: not the owner, or no such lock */
    TL_EXIT_LOST = 5,     /* run: the lock was lost while the command ran */
    TL_EXIT_NOTASK = 6,   /* claim-next: every candidate is done, or there was none */
    TL_EXIT_DEADLOCK = 7  /* acquire, run, upgrade: the wait closed a cycle of waits */
};

/* What a command has said so far, for the one exit path (main.c). */
struct tl_cli_outcome {
    char error[1024];   /* the first error message, for the JSON error document */
    json_t *holder;     /* with --json, a held key's holder ({"key","lock"}) for that document */
    bool printed;       /* a JSON document went to stdout already */
    bool stdout_failed; /* a failed write to stdout was reported already */
    bool stdout_given;  /* run: stdout belongs to the command now: no document of ours */
};

/* The global options, after the environment and defaults were applied. */
struct tl_cli {
    const char *cmd;    /* the command's name, for messages */
    const char *store;  /* NULL: $TASKLOCK_STORE, else the embedded default (the library's) */
    const char *worker; /* NULL: "USER@HOST" (the library's default) */
    const char *node;   /* NULL: the host name */
    bool json;
    bool quiet;
    int verbose;                    /* 0: no library log; 1: info; 2 and up: debug */
    char **argv;                    /* main's arguments, for the hand-off to tasklock-net */
    bool handed_off;                /* this process is tasklock-net, started by `tasklock` */
    struct tl_cli_outcome *outcome; /* never NULL (main's) */
};

struct tl_cli_cmd {
    const char *name;
    const char *usage;   /* the synopsis after "tasklock " */
    const char *summary; /* one line for `tasklock help` */
    const char *help;    /* the options and notes for `tasklock help NAME`; may be NULL */
    /* Runs the command; argv[0] is its name. Returns the exit code. */
    int (*run)(struct tl_cli *cli, int argc, char **argv);
};

extern const struct tl_cli_cmd tl_cli_cmd_acquire;
extern const struct tl_cli_cmd tl_cli_cmd_release;
extern const struct tl_cli_cmd tl_cli_cmd_renew;
extern const struct tl_cli_cmd tl_cli_cmd_upgrade;
extern const struct tl_cli_cmd tl_cli_cmd_downgrade;
extern const struct tl_cli_cmd tl_cli_cmd_run;
extern const struct tl_cli_cmd tl_cli_cmd_status;
extern const struct tl_cli_cmd tl_cli_cmd_list;
extern const struct tl_cli_cmd tl_cli_cmd_log;
extern const struct tl_cli_cmd tl_cli_cmd_demo;
extern const struct tl_cli_cmd tl_cli_cmd_where;
extern const struct tl_cli_cmd tl_cli_cmd_mcp;
extern const struct tl_cli_cmd tl_cli_cmd_serve;
extern const struct tl_cli_cmd tl_cli_cmd_help;
extern const struct tl_cli_cmd tl_cli_cmd_claim_next;
extern const struct tl_cli_cmd tl_cli_cmd_reopen;
extern const struct tl_cli_cmd tl_cli_cmd_work;

/* main.c: the command named `name` (exact match), or NULL. */
const struct tl_cli_cmd *tl_cli_find(const char *name);
/* main.c: the commands in the order `tasklock help` lists them, NULL-terminated. */
extern const struct tl_cli_cmd *const tl_cli_commands[];

/*
 * Global options accepted before the command and by every command after it. Commands append
 * their own long options to TL_CLI_GLOBAL_LONGOPTS and their short letters to
 * TL_CLI_GLOBAL_SHORTOPTS, and pass every option they do not know to tl_cli_global_opt().
 */
enum {
    TL_OPT_JSON = 1000,
    TL_OPT_VERSION,
    TL_OPT_STRATEGY, /* the acquire options, shared by acquire and run */
    TL_OPT_RETRIES,
    TL_OPT_WAIT,
    TL_OPT_LOCK_TIMEOUT,
    TL_OPT_INFO,
    TL_OPT_GITHUB_API_URL,
    TL_OPT_PRIORITY,
    TL_OPT_SHARED,
    TL_OPT_SLOTS,
    TL_OPT_COMMAND = 1100 /* the first of a command's own long-only options */
};
#define TL_CLI_GLOBAL_SHORTOPTS "s:w:n:qvh"
/* clang-format off */
#define TL_CLI_GLOBAL_LONGOPTS                                                                     \
    {"store", 1, NULL, 's'}, {"worker", 1, NULL, 'w'}, {"node", 1, NULL, 'n'},                     \
    {"json", 0, NULL, TL_OPT_JSON}, {"quiet", 0, NULL, 'q'}, {"verbose", 0, NULL, 'v'},            \
    {"help", 0, NULL, 'h'}, {"github-api-url", 1, NULL, TL_OPT_GITHUB_API_URL}
/* clang-format on */

/* getopt_long(3) with opterr off. Main thread, before any other thread starts (getopt keeps
 * its state in globals). */
int tl_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/*
 * Handles option `opt` (getopt_long's answer) if it is a global one, or reports a usage error.
 * Returns -1 when handled, TL_EXIT_OK after printing the command's help (-h), else the usage
 * exit code after printing a message.
 */
int tl_cli_global_opt(struct tl_cli *cli, int opt, const char *arg, char **argv);

/* Parses the arguments of a command that takes only the global options (`list`, `where`).
 * Returns -1 to go on, else the exit code (after -h, or a usage error it printed). */
int tl_cli_no_args(struct tl_cli *cli, int argc, char **argv);

/* The acquire options (cmd_acquire.c), shared by `acquire` and `run`. */
struct tl_cli_acquire {
    struct tl_acquire_opts opts;
    bool no_wait;    /* --wait 0 */
    json_t *info;    /* --info NAME=VALUE pairs */
    char *info_text; /* opts.task_info points here */
};
/* clang-format off */
#define TL_CLI_ACQUIRE_LONGOPTS                                                                    \
    {"strategy", 1, NULL, TL_OPT_STRATEGY}, {"retries", 1, NULL, TL_OPT_RETRIES},                  \
    {"wait", 1, NULL, TL_OPT_WAIT}, {"lock-timeout", 1, NULL, TL_OPT_LOCK_TIMEOUT},                \
    {"info", 1, NULL, TL_OPT_INFO}, {"priority", 1, NULL, TL_OPT_PRIORITY},                        \
    {"shared", 0, NULL, TL_OPT_SHARED}, {"slots", 1, NULL, TL_OPT_SLOTS}
/* clang-format on */

void tl_cli_acquire_init(struct tl_cli_acquire *a, tl_strategy strategy);
void tl_cli_acquire_fini(struct tl_cli_acquire *a);
/* Handles an acquire option: -1 when handled, 0 when `opt` is not one, else the exit code
 * after a usage error. */
int tl_cli_acquire_opt(const struct tl_cli *cli, struct tl_cli_acquire *a, int opt,
                       const char *arg);
/* Completes opts after parsing (task info text, --wait 0). Returns the exit code. */
int tl_cli_acquire_finish(const struct tl_cli *cli, struct tl_cli_acquire *a);
/*
 * While a waiting acquire stands in line, SIGINT, SIGTERM and SIGHUP make it leave the line
 * (TL_ECANCELED) instead of killing the process with its place left behind: installs handlers
 * that set the flag opts.cancel points to, and remembers the signal. tl_cli_cancel_end()
 * restores the previous handlers; it returns the exit code for the signal (128 + its number)
 * if one came, else 0.
 */
void tl_cli_cancel_begin(struct tl_cli_acquire *a);
int tl_cli_cancel_end(struct tl_cli_acquire *a);
/* How to mend a TL_EBUSY from tl_acquire() of `key` with these options, in `buf`. Returns buf. */
const char *tl_cli_busy_hint(const struct tl_cli_acquire *a, tl_manager *m, const char *key,
                             char *buf, size_t size);
const char *tl_cli_strategy_name(tl_strategy s);
/* {"key":KEY,"lock":{...}} from metadata JSON text (tl_lock_metadata, tl_info_to_json), with
 * "stale" added to the lock object when `with_stale`. A new reference, or NULL (no memory or
 * `metadata` NULL). */
json_t *tl_cli_lock_json(const char *key, const char *metadata, bool with_stale, bool stale);

/* The token of `lock` could not be written to stdout: releases the lock again, says so, and
 * returns TL_EXIT_STORE (cmd_acquire.c; claim-next too). */
int tl_cli_undelivered(const struct tl_cli *cli, tl_manager *m, const char *key, tl_lock *lock,
                       const char *why);

/* The candidates of claim-next and work (cmd_claim.c): KEY arguments, --keys-from FILE (one key
 * per line; blank lines and lines starting with # skipped; "-" is standard input), or --label. */
struct tl_cli_candidates {
    char **keys;
    size_t n, cap;
    const char *label;
};
#define TL_OPT_KEYS_FROM (TL_OPT_SLOTS + 1)
#define TL_OPT_LABEL     (TL_OPT_SLOTS + 2)
/* Handles --keys-from and --label: -1 handled, 0 not one of them, else the exit code. */
int tl_cli_candidates_opt(const struct tl_cli *cli, struct tl_cli_candidates *c, int opt,
                          const char *arg);
/* Adds the KEY arguments and checks the whole: -1 to go on, else the exit code. */
int tl_cli_candidates_finish(const struct tl_cli *cli, struct tl_cli_candidates *c, int argc,
                             char **argv);
void tl_cli_candidates_fini(struct tl_cli_candidates *c);
/* tl_claim_next() or tl_claim_next_label(), as the candidates say. */
tl_status tl_cli_claim_next(tl_manager *m, const struct tl_cli_candidates *c,
                            const struct tl_acquire_opts *opts, tl_lock **out);

/* cmd_help.c: prints the usage, summary and help of `c` to stdout. */
void tl_cli_print_help(const struct tl_cli_cmd *c);

/* Prints "tasklock: CMD: message" to stderr (and keeps the first for the --json error). */
void tl_cli_error(const struct tl_cli *cli, const char *fmt, ...) TL_CLI_PRINTF(2, 3);
/* Prints a usage error with a hint to `tasklock help CMD` and returns TL_EXIT_USAGE. */
int tl_cli_usage_error(const struct tl_cli *cli, const char *fmt, ...) TL_CLI_PRINTF(2, 3);
/* Prints a line to stderr with -v only. */
void tl_cli_info(const struct tl_cli *cli, const char *fmt, ...) TL_CLI_PRINTF(2, 3);
/* Prints an informational line to stderr unless -q. */
void tl_cli_note(const struct tl_cli *cli, const char *fmt, ...) TL_CLI_PRINTF(2, 3);

/* The exit code for a library status (TL_ELOST counts as "not the owner"). */
int tl_cli_exit_code(tl_status st);
/* Prints the manager's message for a failed call (and `hint`, if not NULL, saying how to mend
 * it); returns the exit code of tl_cli_exit_code(). `m` may be NULL. With --json, a TL_EBUSY's
 * holder goes into the error document. */
int tl_cli_fail(const struct tl_cli *cli, tl_manager *m, tl_status st, const char *hint);
/* tl_cli_fail() without the message on stderr (-q): the failure is kept for --json only. */
int tl_cli_fail_silently(const struct tl_cli *cli, tl_manager *m, tl_status st);
/* With --json and a failure (`rc` not 0) that printed no document: prints the error document
 * {"error","exit","command"[,"holder"]} on stdout. main.c calls it once, at the end. */
void tl_cli_json_error(const struct tl_cli *cli, int rc);

/* Parses option values; on failure print a usage error naming `opt` and return false. */
bool tl_cli_duration(const struct tl_cli *cli, const char *opt, const char *text, uint32_t *out_ms);
/* A whole number from `min` to `max`; anything else (a sign, junk, out of range) gets the one
 * message that says so. */
bool tl_cli_uint(const struct tl_cli *cli, const char *opt, const char *text, uint64_t min,
                 uint64_t max, uint64_t *out);
bool tl_cli_key(const struct tl_cli *cli, const char *key);
/* Checks free text (--summary): valid UTF-8 of at most `max` bytes (cmd_release.c). */
bool tl_cli_text_ok(const struct tl_cli *cli, const char *opt, const char *text, size_t max);

/*
 * Creates a manager for the global options with `opts` as the base (NULL: defaults) and connects
 * it. On failure prints the message and returns the exit code; *out is then NULL.
 */
int tl_cli_connect(const struct tl_cli *cli, const struct tl_options *base, tl_manager **out);

/*
 * `tasklock` has the embedded stores only; `tasklock-net` beside it has every store of the build.
 * When `url` names a store this binary lacks, this execs tasklock-net with the same arguments
 * and does not return. Otherwise (the store is here, the scheme is unknown, or no tasklock-net
 * can be found) it returns and the caller goes on: tl_connect() then reports what is wrong.
 * Called before a command does anything else with the store.
 */
void tl_cli_handoff(const struct tl_cli *cli, const char *url);
/* Execs tasklock-net with the same arguments whatever the store (for `serve`, which only
 * tasklock-net has, so that `tasklock` does not load libmicrohttpd); returns if it cannot. */
void tl_cli_handoff_net(const struct tl_cli *cli);

/*
 * For release/renew without --token: the token of `key` if this manager's worker id holds it
 * (TL_EXIT_OK). When the key is free, *is_free is set and TL_EXIT_NOTOWNER returned, with nothing
 * printed (release may still find its own earlier release). Otherwise (held by another worker,
 * a store error) prints why and returns the exit code.
 */
int tl_cli_own_token(const struct tl_cli *cli, tl_manager *m, const char *key, uint64_t *token,
                     bool *is_free);

/* The store URL the tool uses: --store, else $TASKLOCK_STORE, else "sqlite:" (the default). */
const char *tl_cli_store_url(const struct tl_cli *cli);
/* The store a connected manager uses, resolved (the default SQLite file written out), with any
 * password replaced by "***": for messages. A new string (free()), or NULL when out of memory. */
char *tl_cli_store_shown(tl_manager *m);

/* "2026-11-26T23:28:01Z", or with `millis` "2026-11-26T23:28:01.123Z", for ms since the epoch
 * (UTC); "-" for 0. */
void tl_cli_format_time(int64_t ms, bool millis, char *buf, size_t size);
/* The text of errno value `err` in `buf` (thread-safe, unlike strerror). Returns buf. */
const char *tl_cli_strerror(int err, char buf[128]);
/* Wall clock and monotonic clock in ms. */
int64_t tl_cli_now_ms(void);
int64_t tl_cli_mono_ms(void);

/*
 * Writes `doc` as one line of JSON to stdout and drops the reference (it steals `doc`, which may
 * be NULL after a failed json_pack). Returns the exit code: TL_EXIT_OK, or TL_EXIT_STORE after
 * reporting that memory ran out.
 */
int tl_cli_print_json(const struct tl_cli *cli, json_t *doc);

#endif /* TL_CLI_H */
