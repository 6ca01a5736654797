/*
 * shapes.h -- the JSON documents of the command line's --json output, built in one place so that
 * `tasklock list/status/log --json` and `tasklock serve`'s JSON API give the same shapes.
 * Every function returns a new reference (the caller's), or NULL when out of memory; the
 * records passed in are borrowed.
 */
#ifndef TL_CLI_SHAPES_H
#define TL_CLI_SHAPES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tasklock.h"

/* One held lock of `tasklock list --json`: {"key":KEY,"lock":METADATA,"waiting":N}, METADATA
 * with "stale". */
json_t *tl_cli_list_item_json(const struct tl_info *info);
/* `tasklock list --json`: {"locks":[ITEM, ...]}. */
json_t *tl_cli_list_json(struct tl_info *const *infos, size_t n);
/* A key's line: [{"worker_id","node_id","priority","seq","since","heartbeat_last",
 * "timeout_ms","dead"}, ...]. */
json_t *tl_cli_waiters_json(struct tl_waiter *const *ws, size_t n);
/* `tasklock status KEY --json`: {"key","held","lock":METADATA-or-null[,"holders":[METADATA...]]
 * [,"waiters":[...]]}; `info` NULL for a free key (no "holders"), else the holder inspect gave
 * and `hs` every holder; "waiters" only when `has_line`. */
json_t *tl_cli_status_json(const char *key, const struct tl_info *info, struct tl_info *const *hs,
                           size_t nh, struct tl_waiter *const *ws, size_t nw, bool has_line);
/* One event of `tasklock log --json`: {"at","event","key","token","worker_id","node_id",
 * "detail"}. */
json_t *tl_cli_event_json(const struct tl_event *e);
/* `tasklock log --json`: {"events":[EVENT, ...]}. */
json_t *tl_cli_log_json(struct tl_event *const *events, size_t n);

#endif /* TL_CLI_SHAPES_H */
