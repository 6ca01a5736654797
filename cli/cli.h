/*
 * cli.h -- what the commands of the `tasklock` tool share: the command table entry, the global
 * options, exit codes and a few helpers (common.c). The tool uses the public API only.
 */
#ifndef TL_CLI_H
#define TL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

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
    TL_EXIT_LOST = 5      /* run: the lock was lost while the command ran */
};

/* The global options, after the environment and defaults were applied. */
struct tl_cli {
    const char *cmd;    /* the command's name, for messages */
    const char *store;  /* NULL: $TASKLOCK_STORE, else the embedded default (the library's) */
    const char *worker; /* NULL: "USER@HOST" (the library's default) */
    const char *node;   /* NULL: the host name */
    bool json;
    bool quiet;
    int verbose; /* 0: no library log; 1: info; 2 and up: debug */
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
extern const struct tl_cli_cmd tl_cli_cmd_run;
extern const struct tl_cli_cmd tl_cli_cmd_status;
extern const struct tl_cli_cmd tl_cli_cmd_list;
extern const struct tl_cli_cmd tl_cli_cmd_log;
extern const struct tl_cli_cmd tl_cli_cmd_demo;
extern const struct tl_cli_cmd tl_cli_cmd_help;

/* main.c: the command named `name` (exact match), or NULL. */
const struct tl_cli_cmd *tl_cli_find(const char *name);
/* main.c: the commands in the order `tasklock help` lists them, NULL-terminated. */
extern const struct tl_cli_cmd *const tl_cli_commands[];

/*
 * Global options accepted before the command and by every command after it. Commands append
 * their own long options to TL_CLI_GLOBAL_LONGOPTS and their short letters to
 * TL_CLI_GLOBAL_SHORTOPTS, and pass every option they do not know to tl_cli_global_opt().
 */
enum { TL_OPT_JSON = 1000, TL_OPT_HELP, TL_OPT_VERSION, TL_OPT_FIRST_COMMAND = 1100 };
#define TL_CLI_GLOBAL_SHORTOPTS "s:w:n:qvh"
#define TL_CLI_GLOBAL_LONGOPTS                                                                     \
    {"store", 1, NULL, 's'}, {"worker", 1, NULL, 'w'}, {"node", 1, NULL, 'n'},                     \
        {"json", 0, NULL, TL_OPT_JSON}, {"quiet", 0, NULL, 'q'}, {"verbose", 0, NULL, 'v'},        \
        {"help", 0, NULL, 'h'}

/*
 * Handles option `opt` (getopt_long's answer) if it is a global one, or reports a usage error.
 * Returns -1 when handled, TL_EXIT_OK after printing the command's help (-h), else the usage
 * exit code after printing a message.
 */
int tl_cli_global_opt(struct tl_cli *cli, int opt, const char *arg, char **argv);

/* Prints "tasklock: CMD: message" to stderr. */
void tl_cli_error(const struct tl_cli *cli, const char *fmt, ...) TL_CLI_PRINTF(2, 3);
/* Prints a usage error with a hint to `tasklock help CMD` and returns TL_EXIT_USAGE. */
int tl_cli_usage_error(const struct tl_cli *cli, const char *fmt, ...) TL_CLI_PRINTF(2, 3);
/* Prints an informational line to stderr unless -q. */
void tl_cli_note(const struct tl_cli *cli, const char *fmt, ...) TL_CLI_PRINTF(2, 3);

/* The exit code for a library status (TL_ELOST counts as "not the owner"). */
int tl_cli_exit_code(tl_status st);
/* Prints the manager's message for a failed call (and `hint`, if not NULL, saying how to mend
 * it); returns the exit code of tl_cli_exit_code(). `m` may be NULL. */
int tl_cli_fail(const struct tl_cli *cli, tl_manager *m, tl_status st, const char *hint);

/* Parses option values; on failure print a usage error naming `opt` and return false. */
bool tl_cli_duration(const struct tl_cli *cli, const char *opt, const char *text,
                     uint32_t *out_ms);
bool tl_cli_uint(const struct tl_cli *cli, const char *opt, const char *text, uint64_t max,
                 uint64_t *out);
bool tl_cli_key(const struct tl_cli *cli, const char *key);

/*
 * Creates a manager for the global options with `opts` as the base (NULL: defaults) and connects
 * it. On failure prints the message and returns the exit code; *out is then NULL.
 */
int tl_cli_connect(const struct tl_cli *cli, const struct tl_options *opts, tl_manager **out);

/* The store URL the tool uses: --store, else $TASKLOCK_STORE, else "sqlite:" (the default). */
const char *tl_cli_store_url(const struct tl_cli *cli);

/* "3m12s", "850ms", "2h05m" for a duration in ms (negative shown as 0). */
void tl_cli_format_age(int64_t ms, char *buf, size_t size);
/* "2026-11-26 23:28:01Z" (UTC, seconds) for ms since the epoch. */
void tl_cli_format_time(int64_t ms, char *buf, size_t size);
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
