/*
 * mcp_tools.c -- the tools of `tasklock mcp` (mcp.h): lock_acquire, claim_next, lock_heartbeat,
 * lock_release, lock_reopen, lock_status, lock_list and lock_history, each a thin face over
 * tasklock.h.
 *
 * Two error channels, as MCP has them: a call that cannot be made at all (an unknown tool) is a
 * JSON-RPC error; everything the model can act on -- a lock held by another agent, an argument
 * it got wrong, a lock it lost, a store that failed -- is a tool result with isError true and a
 * message that says what happened and what to do. claim_next's "nothing left" (TL_ENOTASK) is
 * neither: a plain result with outcome none_left, since the work list is finished and there is
 * nothing to mend or retry.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "mcp.h"

/* ---- the tools as tools/list shows them ---- */

#define KEY_SCHEMA                                                                             \
    "\"key\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":255,\"description\":\"the "    \
    "task's name, e.g. \\\"issue-42\\\" or \\\"deploy/prod\\\" (no white space); on a GitHub " \
    "store, an issue number\"}"
#define TOKEN_SCHEMA                                                                     \
    "\"token\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"the fencing token " \
    "lock_acquire returned\"}"
#define TIME_SCHEMA(what) "{\"type\":\"string\",\"description\":\"" what ", ISO-8601 UTC\"}"
#define LOCK_OBJECT_SCHEMA                                                                                                                                             \
    "{\"type\":\"object\",\"properties\":{\"worker_id\":{\"type\":\"string\"},\"node_id\":{"                                                                           \
    "\"type\":\"string\"},\"token\":{\"type\":\"integer\"},\"claimed_at\":" TIME_SCHEMA(                                                                               \
        "when the holder acquired it") ",\"heartbeat_last\":" TIME_SCHEMA("its last heartbeat") ",\"lock_timeout_seconds\":{\"type\":\"number\"},\"stale\":{"          \
                                                                                                "\"type\":\"boolean\",\"description\":\"no heartbeat for longer "      \
                                                                                                "than its lock timeout: strategy steal-stale takes it over\"},"        \
                                                                                                "\"claimed_seconds_ago\":{\"type\":\"number\"},"                       \
                                                                                                "\"heartbeat_seconds_ago\":{\"type\":\"number\"},\"task_info\":{"      \
                                                                                                "\"type\":\"object\"},\"mine\":{\"type\":\"boolean\",\"description\":" \
                                                                                                "\"held by this agent (this connection's worker id)\"}},"              \
                                                                                                "\"required\":[\"worker_id\",\"token\",\"claimed_at\","                \
                                                                                                "\"heartbeat_last\",\"stale\"]}"

#define DONE_OBJECT_SCHEMA                                                                     \
    "{\"type\":\"object\",\"properties\":{\"worker_id\":{\"type\":\"string\",\"description\":" \
    "\"who finished it\"},\"node_id\":{\"type\":\"string\"},\"token\":{\"type\":\"integer\"}," \
    "\"done_at\":" TIME_SCHEMA(                                                                \
        "when it was finished") ",\"summary\":{\"type\":\"string\"}},"                         \
                                "\"required\":[\"worker_id\",\"token\",\"done_at\"]}"

/* One JSON object per tool (C11 promises string literals of 4095 bytes only). */
static const char *const tools_json[] = {
    /* lock_acquire */
    "{\"name\":\"lock_acquire\",\"title\":\"Acquire a task lock\",\"description\":\"Takes the "
    "lock of a task's key for this agent, so that no other agent works on the same task at once. "
    "While this connection lasts the server heartbeats the lock for you (no need to call "
    "lock_heartbeat); when it ends the lock is released. Keep the returned token: lock_release "
    "needs it, and what you write on the lock's behalf can carry it (a fencing token). If "
    "another agent holds the key, the result is an error naming the holder, since when it holds "
    "the lock and how fresh its heartbeat is. With wait_seconds the call waits in the key's line "
    "(first come, first served; higher priority first) for up to that long.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{" KEY_SCHEMA ","
    "\"strategy\":{\"type\":\"string\",\"enum\":[\"steal-stale\",\"retry\",\"fail-fast\","
    "\"force\"],\"description\":\"when the key is held: steal-stale (default) waits and takes "
    "the lock over if its holder stopped heartbeating (stale); retry waits, never taking a "
    "stale lock; fail-fast makes one attempt; force takes it from a live holder (when the "
    "server allows it)\"},"
    "\"wait_seconds\":{\"type\":\"number\",\"minimum\":0,\"description\":\"how long to wait "
    "in line while the key is held (default 0: answer at once); the server caps it below the "
    "usual 60 s request timeout (--max-wait, 50 s by default)\"},"
    "\"lock_timeout_seconds\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":2073600,"
    "\"description\":\"the lock goes stale this long after its last heartbeat (default 300)\"},"
    "\"priority\":{\"type\":\"integer\",\"minimum\":-1000,\"maximum\":1000,\"description\":"
    "\"place in the key's line while waiting: higher first, then arrival (default 0; GitHub "
    "store: 0 only)\"},"
    "\"shared\":{\"type\":\"boolean\",\"description\":\"hold the key beside other shared "
    "holders (readers), never beside an exclusive one (default false: exclusive)\"},"
    "\"slots\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000,\"description\":"
    "\"the key is a semaphore of this many slots: shared, at most that many holders at once; "
    "every holder must give the same number\"},"
    "\"task_info\":{\"type\":\"object\",\"description\":\"a JSON object recorded with the "
    "lock and shown to other agents, e.g. {\\\"doing\\\":\\\"fix the flaky test\\\"}\"}},"
    "\"required\":[\"key\"],\"additionalProperties\":false},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"},"
    "\"token\":{\"type\":\"integer\",\"description\":\"the fencing token: larger for every new "
    "holder of the key\"},\"worker_id\":{\"type\":\"string\"},\"node_id\":{\"type\":\"string\"},"
    "\"claimed_at\":" TIME_SCHEMA("when it was acquired") ",\"expires_at\":" TIME_SCHEMA(
        "when it would go stale without another heartbeat (the server heartbeats it while "
        "connected)") ",\"lock_timeout_seconds\":{\"type\":\"number\"}},"
                      "\"required\":[\"key\",\"token\",\"worker_id\",\"claimed_at\","
                      "\"expires_at\"]},"
                      "\"annotations\":{\"title\":\"Acquire a task lock\",\"readOnlyHint\":false,"
                      "\"destructiveHint\":false,\"idempotentHint\":false,"
                      "\"openWorldHint\":false}}",
    /* claim_next */
    "{\"name\":\"claim_next\",\"title\":\"Claim the next free task\",\"description\":\"Of a "
    "list of tasks (keys, in order of priority) or, on a GitHub store, the open issues with a "
    "label, atomically takes the lock of the first one that is free -- not held, nobody "
    "waiting for it, not done -- so that each task goes to one agent only. The answer says "
    "which key you got and its token, as lock_acquire's does, and the server heartbeats the "
    "lock while this connection lasts. Release it with lock_release, done: true when the task "
    "is finished, so that it is not offered again. When every candidate not done is held, the "
    "result is an error counting them (wait with wait_seconds, or try later); when every "
    "candidate is done, outcome is none_left: nothing is left to do.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
    "\"keys\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1,"
    "\"maxLength\":255},\"minItems\":1,\"maxItems\":10000,\"uniqueItems\":true,"
    "\"description\":\"the candidate tasks' keys, most important first (no white space; on "
    "a GitHub store, issue numbers); give keys or label\"},"
    "\"label\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":255,\"description\":\"GitHub "
    "store only: the candidates are the open issues with this label, ranked by priority label, "
    "then oldest first; give keys or label\"},"
    "\"strategy\":{\"type\":\"string\",\"enum\":[\"steal-stale\",\"retry\",\"fail-fast\"],"
    "\"description\":\"steal-stale (default) also takes a task whose holder stopped "
    "heartbeating (stale) and, with wait_seconds, waits; retry waits but never takes a stale "
    "task; fail-fast makes one attempt\"},"
    "\"wait_seconds\":{\"type\":\"number\",\"minimum\":0,\"description\":\"how long to wait "
    "for a candidate to come free while all are held (default 0: answer at once); capped by "
    "the server (--max-wait, 50 s by default)\"},"
    "\"lock_timeout_seconds\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":2073600,"
    "\"description\":\"the lock goes stale this long after its last heartbeat (default 300)\"},"
    "\"task_info\":{\"type\":\"object\",\"description\":\"a JSON object recorded with the "
    "lock and shown to other agents\"}},\"additionalProperties\":false},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"outcome\":{\"type\":\"string\","
    "\"enum\":[\"claimed\",\"none_left\"],\"description\":\"claimed: key and token are yours; "
    "none_left: every candidate is done (or no issue has the label): nothing to claim\"},"
    "\"key\":{\"type\":\"string\",\"description\":\"the task you got\"},"
    "\"token\":{\"type\":\"integer\",\"description\":\"the fencing token; lock_release needs "
    "it\"},\"worker_id\":{\"type\":\"string\"},\"node_id\":{\"type\":\"string\"},"
    "\"claimed_at\":" TIME_SCHEMA("when it was claimed") ",\"expires_at\":" TIME_SCHEMA(
        "when it would go stale without another heartbeat (the server heartbeats it while "
        "connected)") ",\"lock_timeout_seconds\":{\"type\":\"number\"},"
                      "\"message\":{\"type\":\"string\"}},\"required\":[\"outcome\"]},"
                      "\"annotations\":{\"title\":\"Claim the next free task\","
                      "\"readOnlyHint\":false,\"destructiveHint\":false,"
                      "\"idempotentHint\":false,\"openWorldHint\":false}}",
    /* lock_heartbeat */
    "{\"name\":\"lock_heartbeat\",\"title\":\"Heartbeat a lock\",\"description\":\"Records a "
    "heartbeat of a lock this agent holds, now. The server already heartbeats the locks it "
    "granted on this connection, so this is for a lock taken elsewhere by the same worker id "
    "(the tasklock command), or to check that a lock is still yours: the result is an error "
    "when it was lost (taken over after going stale, forced, or released).\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{" KEY_SCHEMA "," TOKEN_SCHEMA "},"
    "\"required\":[\"key\",\"token\"],\"additionalProperties\":false},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"},"
    "\"token\":{\"type\":\"integer\"},\"heartbeat_at\":" TIME_SCHEMA(
        "this heartbeat") ",\"expires_at\":" TIME_SCHEMA("when it would go stale without another "
                                                         "heartbeat") "},"
                                                                      "\"required\":[\"key\","
                                                                      "\"token\",\"heartbeat_"
                                                                      "at\"]},"
                                                                      "\"annotations\":{\"title\":"
                                                                      "\"Heartbeat a "
                                                                      "lock\",\"readOnlyHint\":"
                                                                      "false,"
                                                                      "\"destructiveHint\":false,"
                                                                      "\"idempotentHint\":true,"
                                                                      "\"openWorldHint\":false}}",
    /* lock_release */
    "{\"name\":\"lock_release\",\"title\":\"Release a task lock\",\"description\":\"Gives back "
    "a lock this agent holds, by its token, so that the next agent in line gets it. outcome is "
    "released (done; also when this token was released already), not_held (the key is free: "
    "nothing to release) or not_yours (another agent or token holds it now: your lock was lost, "
    "and what you did after that was unprotected; an error result). summary goes into the "
    "audit trail (lock_history). done: true marks the task finished, so that claim_next skips "
    "it (until lock_reopen).\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{" KEY_SCHEMA "," TOKEN_SCHEMA ","
    "\"summary\":{\"type\":\"string\",\"maxLength\":4096,\"description\":\"what was done, for "
    "the audit trail\"},\"done\":{\"type\":\"boolean\",\"description\":\"true: the task is "
    "finished; the key keeps a done marker and claim_next no longer offers it (default false: "
    "released, to be claimed again)\"}},\"required\":[\"key\",\"token\"],"
    "\"additionalProperties\":false},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"},"
    "\"token\":{\"type\":\"integer\"},\"outcome\":{\"type\":\"string\",\"enum\":[\"released\","
    "\"not_yours\",\"not_held\"]},\"done\":{\"type\":\"boolean\",\"description\":\"released "
    "as finished (a done marker)\"},\"holder\":{\"type\":\"object\",\"description\":\"who "
    "holds it now (not_yours)\"}},\"required\":[\"key\",\"token\",\"outcome\"]},"
    "\"annotations\":{\"title\":\"Release a task lock\",\"readOnlyHint\":false,"
    "\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}}",
    /* lock_reopen */
    "{\"name\":\"lock_reopen\",\"title\":\"Reopen a finished task\",\"description\":\"Clears "
    "the done marker of a task released with done: true, so that claim_next offers it again "
    "(GitHub: reopens the issue). was_done says whether it was done; reopening a task that is "
    "not done changes nothing. It does not touch the task's lock.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{" KEY_SCHEMA "},"
    "\"required\":[\"key\"],\"additionalProperties\":false},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"},"
    "\"was_done\":{\"type\":\"boolean\"}},\"required\":[\"key\",\"was_done\"]},"
    "\"annotations\":{\"title\":\"Reopen a finished task\",\"readOnlyHint\":false,"
    "\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}}",
    /* lock_status */
    "{\"name\":\"lock_status\",\"title\":\"Who holds a lock\",\"description\":\"The lock of a "
    "key: whether it is held, by whom (mine: by you), since when, how fresh its heartbeat is and "
    "whether it is stale, who waits in its line, and whether the task is done.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{" KEY_SCHEMA "},"
    "\"required\":[\"key\"],\"additionalProperties\":false},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"},"
    "\"held\":{\"type\":\"boolean\"},\"lock\":{\"anyOf\":[" LOCK_OBJECT_SCHEMA ","
    "{\"type\":\"null\"}]},\"waiting\":{\"type\":\"integer\",\"description\":\"live waiters in "
    "line\"},\"waiters\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"worker_id\":{\"type\":\"string\"},\"node_id\":{\"type\":\"string\"},\"priority\":{"
    "\"type\":\"integer\"},\"waiting_seconds\":{\"type\":\"number\"},\"dead\":{\"type\":"
    "\"boolean\"}}}},\"done\":{\"anyOf\":[" DONE_OBJECT_SCHEMA ",{\"type\":\"null\"}],"
    "\"description\":\"the task's done marker (claim_next skips it), null when not done\"}},"
    "\"required\":[\"key\",\"held\",\"lock\",\"waiting\"]},"
    "\"annotations\":{\"title\":\"Who holds a lock\",\"readOnlyHint\":true,"
    "\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}}",
    /* lock_list */
    "{\"name\":\"lock_list\",\"title\":\"List held locks\",\"description\":\"Every held lock "
    "in the store (or those whose key starts with prefix), ordered by key: holder, token, "
    "times, staleness, how many wait, and whether it is yours. With include_done, also the "
    "finished tasks (done markers), which claim_next skips.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"prefix\":{\"type\":\"string\","
    "\"maxLength\":255,\"description\":\"only keys that start with this\"},"
    "\"include_done\":{\"type\":\"boolean\",\"description\":\"also list the done markers "
    "of finished tasks (default false)\"}},\"additionalProperties\":false},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"locks\":{\"type\":\"array\","
    "\"items\":{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"},"
    "\"lock\":" LOCK_OBJECT_SCHEMA
    ",\"waiting\":{\"type\":\"integer\"}},\"required\":[\"key\",\"lock\"]}},"
    "\"count\":{\"type\":\"integer\"},\"done\":{\"type\":\"array\",\"description\":\"with "
    "include_done: the finished tasks, ordered by key\",\"items\":{\"allOf\":[" DONE_OBJECT_SCHEMA
    ",{\"type\":\"object\",\"properties\":{\"key\":{\"type\":"
    "\"string\"}},\"required\":[\"key\"]}]}}},\"required\":[\"locks\",\"count\"]},"
    "\"annotations\":{\"title\":\"List held locks\",\"readOnlyHint\":true,"
    "\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}}",
    /* lock_history */
    "{\"name\":\"lock_history\",\"title\":\"Lock audit trail\",\"description\":\"The audit "
    "trail, oldest first: who acquired, released, finished (done), reopened, stole (took a "
    "stale lock), forced or lost which lock, when, with which token, and release summaries. For "
    "one key, or every key.\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{" KEY_SCHEMA ","
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"description\":\"the last "
    "N events (default 20)\"}},\"additionalProperties\":false},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"events\":{\"type\":\"array\","
    "\"items\":{\"type\":\"object\",\"properties\":{\"at\":{\"type\":\"string\"},\"event\":{"
    "\"type\":\"string\",\"enum\":[\"acquired\",\"released\",\"stolen\",\"forced\",\"lost\","
    "\"done\",\"reopened\",\"unknown\"]},\"key\":{\"type\":\"string\"},\"token\":{\"type\":"
    "\"integer\"},"
    "\"worker_id\":{\"type\":\"string\"},\"node_id\":{\"type\":\"string\"},\"detail\":{"
    "\"type\":[\"string\",\"null\"]}},\"required\":[\"at\",\"event\",\"key\",\"token\","
    "\"worker_id\"]}}},\"required\":[\"events\"]},"
    "\"annotations\":{\"title\":\"Lock audit trail\",\"readOnlyHint\":true,"
    "\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}}",
};

json_t *tl_mcp_tools_new(bool allow_force)
{
    json_t *tools = json_array();

    for (size_t i = 0; tools != NULL && i < sizeof(tools_json) / sizeof(tools_json[0]); i++) {
        json_error_t jerr;

        if (json_array_append_new(tools, json_loads(tools_json[i], 0, &jerr)) != 0) {
            json_decref(tools);
            tools = NULL;
        }
    }
    if (tools == NULL || allow_force)
        return tools;
    /* Without --allow-force the strategy "force" is not offered. */
    json_t *props =
        json_object_get(json_object_get(json_array_get(tools, 0), "inputSchema"), "properties");
    json_t *choices = json_object_get(json_object_get(props, "strategy"), "enum");
    size_t i;
    json_t *v;
    json_array_foreach(choices, i, v)
    {
        if (strcmp(json_string_value(v), "force") == 0) {
            (void)json_array_remove(choices, i);
            break;
        }
    }
    return tools;
}

/* ---- results ---- */

/* A successful result: `doc` (stolen) as structuredContent and as text. */
static json_t *ok_result(json_t *doc)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_t *r = NULL;

    if (text != NULL)
        r = json_pack("{s:[{s:s, s:s}], s:O, s:b}", "content", "type", "text", "text", text,
                      "structuredContent", doc, "isError", 0);
    free(text);
    json_decref(doc);
    return r;
}

/* An error result the model can act on: isError, with the message as text, and `doc` (stolen;
 * may be NULL) as structuredContent. NULL only when out of memory. */
static json_t *verror_result(json_t *doc, const char *fmt, va_list ap)
{
    char msg[2048];

    (void)vsnprintf(msg, sizeof(msg), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    /* A cut may split a UTF-8 character of a key or a holder's id: cut back to whole ones. */
    json_t *text = NULL;
    for (size_t n = strlen(msg), cut = 0; text == NULL && cut < 4 && cut <= n; cut++)
        text = json_stringn(msg, n - cut);
    if (text == NULL)
        text = json_string("error (a message that is not UTF-8)");
    json_t *r =
        json_pack("{s:[{s:s, s:o}], s:b}", "content", "type", "text", "text", text, "isError", 1);
    if (r != NULL && doc != NULL && json_object_set(r, "structuredContent", doc) != 0) {
        json_decref(r);
        r = NULL;
    }
    json_decref(doc);
    return r;
}

static json_t *error_result_doc(json_t *doc, const char *fmt, ...) TL_MCP_PRINTF(2, 3);
static json_t *error_result_doc(json_t *doc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    json_t *r = verror_result(doc, fmt, ap);
    va_end(ap);
    return r;
}

static json_t *error_result(const char *fmt, ...) TL_MCP_PRINTF(1, 2);
static json_t *error_result(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    json_t *r = verror_result(NULL, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- arguments ---- */

/* Checks that `args` has only the names in `known` (NULL-terminated); else an error result. */
static json_t *unknown_arguments(const char *tool, json_t *args, const char *const known[])
{
    const char *name;
    json_t *v;

    json_object_foreach(args, name, v)
    {
        bool ok = false;
        char list[256] = "";

        for (size_t i = 0; known[i] != NULL; i++) {
            ok = ok || strcmp(name, known[i]) == 0;
            (void)snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                           i > 0 ? ", " : "", known[i]);
        }
        if (ok)
            continue;
        return error_result("%s: unknown argument \"%.64s\" (it takes %s)", tool, name, list);
    }
    return NULL;
}

/* The key argument: a valid key in *key, else an error result. */
static json_t *key_argument(const char *tool, json_t *args, bool required, const char **key)
{
    json_t *v = json_object_get(args, "key");

    *key = NULL;
    if (v == NULL && !required)
        return NULL;
    if (v == NULL)
        return error_result("%s: the argument \"key\" is required (the task's name)", tool);
    if (!json_is_string(v))
        return error_result("%s: \"key\" must be a string", tool);
    if (!tl_key_is_valid(json_string_value(v)))
        return error_result("%s: key \"%.255s\" is not valid: 1 to 255 bytes, no white space, "
                            "control or invisible characters",
                            tool, json_string_value(v));
    *key = json_string_value(v);
    return NULL;
}

/* The token argument: an integer of at least 1 (or a string of digits, as some clients send
 * large integers). */
static json_t *token_argument(const char *tool, json_t *args, uint64_t *token)
{
    json_t *v = json_object_get(args, "token");
    const char *text = json_string_value(v);

    *token = 0;
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        *token = (uint64_t)json_integer_value(v);
        return NULL;
    }
    if (json_is_real(v) && json_real_value(v) >= 1 && json_real_value(v) < 9007199254740992.0 &&
        floor(json_real_value(v)) == json_real_value(v)) {
        *token = (uint64_t)json_real_value(v);
        return NULL;
    }
    if (text != NULL && text[0] != '\0' && strlen(text) <= 19 &&
        strspn(text, "0123456789") == strlen(text)) {
        *token = strtoull(text, NULL, 10);
        if (*token > 0)
            return NULL;
    }
    if (v == NULL)
        return error_result("%s: the argument \"token\" is required (the token lock_acquire "
                            "returned)",
                            tool);
    return error_result("%s: \"token\" must be a whole number of at least 1 (the token "
                        "lock_acquire returned)",
                        tool);
}

/* An optional number of seconds in [min, max] as ms; `*ms` keeps its default when absent. */
static json_t *seconds_argument(const char *tool, json_t *args, const char *name, double max,
                                bool zero_ok, uint32_t *ms)
{
    json_t *v = json_object_get(args, name);

    if (v == NULL || json_is_null(v))
        return NULL;
    double x = json_number_value(v);
    if (!json_is_number(v) || isnan(x) || x < 0 || (x == 0 && !zero_ok) || x > max)
        return error_result("%s: \"%s\" must be a number of seconds from %s to %.0f", tool, name,
                            zero_ok ? "0" : "more than 0", max);
    double t = x * 1000.0;
    *ms = (uint32_t)(t < 1 && !zero_ok ? 1 : t);
    return NULL;
}

/* ---- the manager ---- */

tl_status tl_mcp_manager(struct tl_mcp_server *s, char *err, size_t errsize)
{
    if (s->m != NULL)
        return TL_OK;
    if (s->cfg.worker_id != NULL) {
        (void)snprintf(s->worker_id, sizeof(s->worker_id), "%s", s->cfg.worker_id);
    } else {
        /* clientInfo.name and a suffix of its own per connection: two agents of the same
         * client never share a worker id by accident. */
        s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
        (void)snprintf(s->worker_id, sizeof(s->worker_id), "%s-%06llx",
                       s->client_name[0] ? s->client_name : "mcp-client",
                       (unsigned long long)(s->rng >> 40));
    }
    if (s->cfg.connect == NULL) {
        (void)snprintf(err, errsize, "no store");
        return TL_ESTORE;
    }
    err[0] = '\0';
    tl_status st = s->cfg.connect(s->cfg.ud, s->worker_id, &s->m, err, errsize);
    if (st != TL_OK) {
        s->m = NULL;
        if (err[0] == '\0')
            (void)snprintf(err, errsize, "%s", tl_strerror(st));
    }
    return st;
}

/* The store, or an error result saying why it cannot be opened. */
static json_t *need_store(struct tl_mcp_server *s)
{
    char err[512];
    tl_status st = tl_mcp_manager(s, err, sizeof(err));

    if (st == TL_OK)
        return NULL;
    return error_result("cannot open the store: %s (%s)", err, tl_strerror(st));
}

static struct tl_mcp_held *find_held(struct tl_mcp_server *s, const char *key, uint64_t token)
{
    for (size_t i = 0; i < s->nheld; i++) {
        if (strcmp(s->held[i].key, key) == 0 && (token == 0 || s->held[i].token == token))
            return &s->held[i];
    }
    return NULL;
}

static void drop_held(struct tl_mcp_server *s, struct tl_mcp_held *h)
{
    tl_lock_free(h->lock);
    free(h->key);
    *h = s->held[--s->nheld];
}

static bool add_held(struct tl_mcp_server *s, tl_lock *lock, const char *key)
{
    if (s->nheld == s->capheld) {
        size_t cap = s->capheld ? 2 * s->capheld : 8;
        struct tl_mcp_held *p = realloc(s->held, cap * sizeof(*p));

        if (p == NULL)
            return false;
        s->held = p;
        s->capheld = cap;
    }
    char *k = strdup(key);
    if (k == NULL)
        return false;
    s->held[s->nheld++] =
        (struct tl_mcp_held){.lock = lock, .key = k, .token = tl_lock_token(lock)};
    return true;
}

/* A store failure as an error result. */
static json_t *store_failure(struct tl_mcp_server *s, const char *what, tl_status st)
{
    const char *msg = tl_errmsg(s->m);

    return error_result("%s: %s (%s); the store may be unreachable: try again", what,
                        msg[0] ? msg : tl_strerror(st), tl_strerror(st));
}

/* ---- lock records as JSON ---- */

/* The lock object of lock_status and lock_list; a new reference or NULL. */
static json_t *lock_object(const struct tl_mcp_server *s, const struct tl_info *info)
{
    char claimed[40], beat[40];
    int64_t now = info->observed_at_ms != 0 ? info->observed_at_ms : tl_mcp_now_ms();
    json_t *task = json_loads(info->task_info != NULL ? info->task_info : "{}", 0, NULL);

    if (!json_is_object(task)) {
        json_decref(task);
        task = json_object();
    }
    tl_mcp_iso(info->claimed_at_ms, claimed, sizeof(claimed));
    tl_mcp_iso(info->heartbeat_at_ms, beat, sizeof(beat));
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:f, s:b, s:f, s:f, s:o, s:b}", "worker_id",
                     info->worker_id, "node_id", info->node_id, "token", (json_int_t)info->token,
                     "claimed_at", claimed, "heartbeat_last", beat, "lock_timeout_seconds",
                     info->lock_timeout_ms / 1000.0, "stale", info->stale, "claimed_seconds_ago",
                     (double)(now - info->claimed_at_ms) / 1000.0, "heartbeat_seconds_ago",
                     (double)(now - info->heartbeat_at_ms) / 1000.0, "task_info", task, "mine",
                     s->m != NULL && strcmp(info->worker_id, tl_manager_worker_id(s->m)) == 0);
}

/* "held by W (node N, token T) since ... (3m12s ago); last heartbeat 12.0s ago: fresh ...". */
static void describe_holder(const struct tl_info *h, char *buf, size_t size)
{
    char since[40], claimed_age[32], beat_age[32], timeout[32];
    int64_t now = h->observed_at_ms != 0 ? h->observed_at_ms : tl_mcp_now_ms();

    tl_mcp_iso(h->claimed_at_ms, since, sizeof(since));
    tl_cli_format_age(now - h->claimed_at_ms, claimed_age, sizeof(claimed_age));
    tl_cli_format_age(now - h->heartbeat_at_ms, beat_age, sizeof(beat_age));
    tl_cli_format_age(h->lock_timeout_ms, timeout, sizeof(timeout));
    (void)snprintf(
        buf, size,
        "held by %s (node %s, token %llu) since %s (%s ago); last heartbeat %s ago: "
        "%s (lock timeout %s)",
        h->worker_id, h->node_id, (unsigned long long)h->token, since, claimed_age, beat_age,
        h->stale ? "STALE, its holder seems gone" : "fresh, its holder is alive", timeout);
}

/* ---- waiting for a lock: lock_acquire and claim_next ---- */

/* One attempt-or-wait of the library (tl_acquire, tl_claim_next) under `o`. */
typedef tl_status (*take_fn)(void *ctx, const struct tl_acquire_opts *o, tl_lock **out);

struct acquire_ctx {
    tl_manager *m;
    const char *key;
};

static tl_status take_acquire(void *ctx, const struct tl_acquire_opts *o, tl_lock **out)
{
    const struct acquire_ctx *a = ctx;

    return tl_acquire(a->m, a->key, o, out);
}

/*
 * Runs `take` for request `c`, waiting up to `wait_ms` but within the server's --max-wait
 * counted from the request's arrival (so that requests queued behind a waiting one still answer
 * within the client's request timeout), and stopping when the client cancels the request
 * (notifications/cancelled) or goes away: then c->no_reply is set, and a lock granted at that
 * very moment is released again, since the client will never see its token.
 */
static tl_status waiting_call(struct tl_mcp_call *c, uint32_t wait_ms, struct tl_acquire_opts *o,
                              take_fn take, void *ctx, tl_lock **lock)
{
    struct tl_mcp_server *s = c->s;
    char *id_text = json_dumps(c->id, JSON_ENCODE_ANY | JSON_COMPACT);
    tl_status st;

    *lock = NULL;
    for (;;) {
        int64_t left = (int64_t)s->cfg.max_wait_ms - (tl_mcp_mono_ms(s) - c->arrived_ms);
        int64_t w = wait_ms < left ? wait_ms : left;
        bool waits = w > 0 && o->strategy != TL_FAIL_FAST && o->strategy != TL_FORCE_ACQUIRE;

        o->deadline_ms = waits ? (uint32_t)w : 0;
        o->retries = waits ? 0 : TL_NO_RETRIES;
        o->cancel = waits ? s->cfg.cancel : NULL;
        if (s->cfg.begin_wait != NULL)
            s->cfg.begin_wait(s->cfg.ud, id_text != NULL ? id_text : "");
        st = take(ctx, o, lock);
        enum tl_mcp_wait_end end =
            s->cfg.end_wait != NULL ? s->cfg.end_wait(s->cfg.ud) : TL_MCP_WAIT_ON;
        if (st == TL_OK && end == TL_MCP_WAIT_CANCELLED) {
            /* Granted as the client gave up: it will never see the token. */
            (void)tl_release(*lock, "tasklock mcp: the request was cancelled");
            tl_lock_free(*lock);
            *lock = NULL;
            c->no_reply = true;
            break;
        }
        if (st != TL_ECANCELED)
            break;
        if (end != TL_MCP_WAIT_ON) { /* the client cancelled it, or left: no answer */
            c->no_reply = true;
            break;
        }
        /* A cancel flag meant for an earlier request: wait on for what is left. */
    }
    free(id_text);
    return st;
}

/* ---- the tools ---- */

static const char *const strategy_names[] = {"retry", "fail-fast", "steal-stale", "force"};

static json_t *busy_result(struct tl_mcp_server *s, const char *key,
                           const struct tl_acquire_opts *o, int64_t waited_ms)
{
    const struct tl_info *h = tl_last_holder(s->m);
    char holder[700], waited[32];

    tl_cli_format_age(waited_ms, waited, sizeof(waited));
    if (h == NULL)
        return error_result("%s is busy: %s (waited %s). Try again later, or wait in line with "
                            "wait_seconds.",
                            key, tl_errmsg(s->m), waited);
    /* Text only: the SDKs check a structuredContent against the output schema, errors too. */
    describe_holder(h, holder, sizeof(holder));
    if (strcmp(h->worker_id, tl_manager_worker_id(s->m)) == 0)
        return error_result("%s is %s: that is your worker id, from before this connection (a "
                            "tasklock command, or an earlier server), and this server does not "
                            "heartbeat it. Locks are not re-entrant: lock_release it (token "
                            "%llu) and acquire it again, or lock_heartbeat it yourself.",
                            key, holder, (unsigned long long)h->token);
    const char *hint;
    if (h->stale && o->strategy != TL_STEAL_STALE && o->strategy != TL_FORCE_ACQUIRE)
        hint = "It is stale: strategy steal-stale takes it over.";
    else if (h->stale)
        hint = "It is stale, but others wait ahead of you in its line; try again shortly.";
    else if (o->deadline_ms == 0)
        hint = "Work on something else, try again later, or wait in line with wait_seconds.";
    else
        hint = "It was still held when the wait ended: work on something else, or try again.";
    return error_result("%s is %s; %u waiting in line; waited %s. %s", key, holder,
                        (unsigned)h->waiting, waited, hint);
}

/* The lock_acquire document of a granted lock (a new reference, or NULL). */
static json_t *granted_doc(const struct tl_mcp_server *s, tl_lock *lock, const char *key,
                           uint32_t lock_timeout_ms)
{
    char *meta = tl_lock_metadata(lock);
    json_t *doc = meta != NULL ? json_loads(meta, 0, NULL) : NULL;
    json_t *l = json_object_get(doc, "lock");
    char expires[40];

    tl_free(meta);
    tl_mcp_iso(tl_mcp_now_ms() + tl_lock_expires_in_ms(lock), expires, sizeof(expires));
    json_t *timeout = json_object_get(l, "lock_timeout_ms");
    double t = json_is_integer(timeout) ? (double)json_integer_value(timeout) : lock_timeout_ms;
    json_t *r =
        json_pack("{s:s, s:I, s:s, s:O?, s:O?, s:s, s:f}", "key", key, "token",
                  (json_int_t)tl_lock_token(lock), "worker_id", s->worker_id, "node_id",
                  json_object_get(l, "node_id"), "claimed_at", json_object_get(l, "claimed_at"),
                  "expires_at", expires, "lock_timeout_seconds", t / 1000.0);
    json_decref(doc);
    return r;
}

/* The lock_acquire result of a granted lock. */
static json_t *granted_result(const struct tl_mcp_server *s, tl_lock *lock, const char *key,
                              uint32_t lock_timeout_ms)
{
    return ok_result(granted_doc(s, lock, key, lock_timeout_ms));
}

static json_t *tool_acquire(struct tl_mcp_call *c, json_t *args)
{
    static const char *const known[] = {
        "key",      "strategy", "wait_seconds", "lock_timeout_seconds",
        "priority", "shared",   "slots",        "task_info",
        NULL};
    struct tl_mcp_server *s = c->s;
    struct tl_acquire_opts o = {.strategy = TL_STEAL_STALE};
    uint32_t wait_ms = 0;
    const char *key;
    json_t *r;

    if ((r = unknown_arguments("lock_acquire", args, known)) != NULL ||
        (r = key_argument("lock_acquire", args, true, &key)) != NULL || key == NULL ||
        (r = seconds_argument("lock_acquire", args, "wait_seconds", 86400, true, &wait_ms)) !=
            NULL ||
        (r = seconds_argument("lock_acquire", args, "lock_timeout_seconds", 2073600, false,
                              &o.lock_timeout_ms)) != NULL)
        return r;

    json_t *v = json_object_get(args, "strategy");
    if (v != NULL && !json_is_null(v)) {
        const char *name = json_string_value(v);
        size_t i = 0;

        while (name != NULL && i < 4 && strcmp(name, strategy_names[i]) != 0)
            i++;
        if (name == NULL || i == 4)
            return error_result("lock_acquire: \"strategy\" must be one of steal-stale, retry, "
                                "fail-fast%s",
                                s->cfg.allow_force ? ", force" : "");
        o.strategy = (tl_strategy)i;
        if (o.strategy == TL_FORCE_ACQUIRE && !s->cfg.allow_force)
            return error_result("lock_acquire: strategy \"force\" is turned off on this server "
                                "(it takes a lock from a live holder; the server's operator "
                                "can allow it with --allow-force)");
    }
    v = json_object_get(args, "priority");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < TL_PRIORITY_MIN ||
            json_integer_value(v) > TL_PRIORITY_MAX)
            return error_result("lock_acquire: \"priority\" must be a whole number from %d to %d",
                                TL_PRIORITY_MIN, TL_PRIORITY_MAX);
        o.priority = (int32_t)json_integer_value(v);
    }
    v = json_object_get(args, "shared");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return error_result("lock_acquire: \"shared\" must be true or false");
        o.mode = json_is_true(v) ? TL_SHARED : TL_EXCLUSIVE;
    }
    v = json_object_get(args, "slots");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > TL_SLOTS_MAX)
            return error_result("lock_acquire: \"slots\" must be a whole number from 1 to %d",
                                TL_SLOTS_MAX);
        o.slots = (uint32_t)json_integer_value(v);
    }
    char *task_text = NULL;
    v = json_object_get(args, "task_info");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v))
            return error_result("lock_acquire: \"task_info\" must be a JSON object");
        task_text = json_dumps(v, JSON_COMPACT);
        if (task_text == NULL)
            return error_result("lock_acquire: \"task_info\" cannot be written (out of memory)");
        o.task_info = task_text;
    }
    if ((r = need_store(s)) != NULL || s->m == NULL)
        goto out;
    struct tl_mcp_held *mine = find_held(s, key, 0);
    if (mine != NULL && !tl_lock_is_lost(mine->lock)) {
        r = error_result("%s: you hold it already (token %llu), and the server heartbeats it. "
                         "Locks are not re-entrant: keep working under it, or release it first.",
                         key, (unsigned long long)mine->token);
        goto out;
    }

    struct acquire_ctx ctx = {.m = s->m, .key = key};
    tl_lock *lock = NULL;
    int64_t start = tl_mcp_mono_ms(s);
    tl_status st = waiting_call(c, wait_ms, &o, take_acquire, &ctx, &lock);

    if (c->no_reply) {
        r = NULL;
    } else if (st == TL_OK) {
        if (mine != NULL) /* a lost lock of ours on this key: replaced */
            drop_held(s, mine);
        if (!add_held(s, lock, key)) {
            (void)tl_release(lock, "tasklock mcp: out of memory");
            tl_lock_free(lock);
            r = error_result("%s: out of memory; the lock was released again", key);
        } else {
            r = granted_result(s, lock, key, o.lock_timeout_ms ? o.lock_timeout_ms : 300000);
        }
    } else if (st == TL_EBUSY) {
        r = busy_result(s, key, &o, tl_mcp_mono_ms(s) - start);
    } else if (st == TL_EINVAL) {
        r = error_result("lock_acquire: %s", tl_errmsg(s->m));
    } else {
        r = store_failure(s, "lock_acquire", st);
    }
out:
    free(task_text);
    return r;
}

struct claim_ctx {
    tl_manager *m;
    const char *const *keys; /* NULL: label */
    size_t nkeys;
    const char *label;
};

static tl_status take_next(void *ctx, const struct tl_acquire_opts *o, tl_lock **out)
{
    const struct claim_ctx *a = ctx;

    if (a->keys == NULL)
        return tl_claim_next_label(a->m, a->label, o, out);
    return tl_claim_next(a->m, a->keys, a->nkeys, o, out);
}

/* The candidates of claim_next: `keys` (into *keys, which the caller frees) or `label`. */
static json_t *candidates_argument(json_t *args, const char ***keys, size_t *nkeys,
                                   const char **label)
{
    json_t *k = json_object_get(args, "keys");
    json_t *l = json_object_get(args, "label");

    *keys = NULL;
    *nkeys = 0;
    *label = NULL;
    if (json_is_null(k))
        k = NULL;
    if (json_is_null(l))
        l = NULL;
    if ((k == NULL) == (l == NULL))
        return error_result("claim_next: give either \"keys\" (the candidate tasks, most "
                            "important first) or \"label\" (GitHub: the open issues with it)");
    if (l != NULL) {
        *label = json_string_value(l);
        if (*label == NULL || (*label)[0] == '\0' || strlen(*label) > 255)
            return error_result("claim_next: \"label\" must be text of 1 to 255 bytes");
        return NULL;
    }
    size_t n = json_array_size(k);
    if (!json_is_array(k) || n == 0 || n > 10000)
        return error_result("claim_next: \"keys\" must be a list of 1 to 10000 keys");
    *keys = calloc(n, sizeof(**keys));
    if (*keys == NULL)
        return error_result("claim_next: out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *key = json_string_value(json_array_get(k, i));

        if (key == NULL || !tl_key_is_valid(key)) {
            free(*keys);
            *keys = NULL;
            return error_result("claim_next: keys[%zu] is not a valid key: text of 1 to 255 "
                                "bytes, no white space, control or invisible characters",
                                i);
        }
        (*keys)[i] = key;
    }
    *nkeys = n;
    return NULL;
}

static json_t *tool_claim_next(struct tl_mcp_call *c, json_t *args)
{
    static const char *const known[] = {
        "keys", "label", "strategy", "wait_seconds", "lock_timeout_seconds", "task_info", NULL};
    struct tl_mcp_server *s = c->s;
    struct tl_acquire_opts o = {.strategy = TL_STEAL_STALE};
    struct claim_ctx ctx = {0};
    uint32_t wait_ms = 0;
    char *task_text = NULL;
    json_t *r;

    if ((r = unknown_arguments("claim_next", args, known)) != NULL ||
        (r = seconds_argument("claim_next", args, "wait_seconds", 86400, true, &wait_ms)) != NULL ||
        (r = seconds_argument("claim_next", args, "lock_timeout_seconds", 2073600, false,
                              &o.lock_timeout_ms)) != NULL)
        return r;
    json_t *v = json_object_get(args, "strategy");
    if (v != NULL && !json_is_null(v)) {
        const char *name = json_string_value(v);
        size_t i = 0;

        while (name != NULL && i < 3 && strcmp(name, strategy_names[i]) != 0)
            i++;
        if (name == NULL || i == 3)
            return error_result("claim_next: \"strategy\" must be one of steal-stale, retry, "
                                "fail-fast");
        o.strategy = (tl_strategy)i;
    }
    v = json_object_get(args, "task_info");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v))
            return error_result("claim_next: \"task_info\" must be a JSON object");
        task_text = json_dumps(v, JSON_COMPACT);
        if (task_text == NULL)
            return error_result("claim_next: \"task_info\" cannot be written (out of memory)");
        o.task_info = task_text;
    }
    const char **keys = NULL;
    if ((r = candidates_argument(args, &keys, &ctx.nkeys, &ctx.label)) != NULL ||
        (r = need_store(s)) != NULL || s->m == NULL)
        goto out;
    ctx.m = s->m;
    ctx.keys = keys;

    tl_lock *lock = NULL;
    int64_t start = tl_mcp_mono_ms(s);
    tl_status st = waiting_call(c, wait_ms, &o, take_next, &ctx, &lock);
    char waited[32];
    tl_cli_format_age(tl_mcp_mono_ms(s) - start, waited, sizeof(waited));

    if (c->no_reply) {
        r = NULL;
    } else if (st == TL_OK) {
        const char *key = tl_lock_key(lock);
        struct tl_mcp_held *old = find_held(s, key, 0);

        if (old != NULL) /* a lost lock of ours on this key: replaced */
            drop_held(s, old);
        if (!add_held(s, lock, key)) {
            r = error_result("%s: out of memory; the lock was released again", key);
            (void)tl_release(lock, "tasklock mcp: out of memory");
            tl_lock_free(lock);
        } else {
            json_t *doc = granted_doc(s, lock, key, o.lock_timeout_ms ? o.lock_timeout_ms : 300000);

            if (doc != NULL && json_object_set_new(doc, "outcome", json_string("claimed")) != 0) {
                json_decref(doc);
                doc = NULL;
            }
            r = ok_result(doc);
        }
    } else if (st == TL_ENOTASK) {
        /* Not an error: the work is finished. isError would invite the model to mend or retry
         * the call, and there is nothing to mend. */
        char msg[600];

        (void)snprintf(msg, sizeof(msg),
                       "Nothing left to claim (TL_ENOTASK): %s. The work is finished: every "
                       "candidate was released with done: true (or there was none); "
                       "lock_reopen offers a done one again.",
                       tl_errmsg(s->m));
        r = ok_result(json_pack("{s:s, s:s}", "outcome", "none_left", "message", msg));
    } else if (st == TL_EBUSY) {
        r = error_result("claim_next: %s; waited %s. Every candidate that is not done is held "
                         "by another agent or has agents waiting for it: try again later, wait "
                         "with wait_seconds%s, or work on something else.",
                         tl_errmsg(s->m), waited,
                         o.strategy == TL_STEAL_STALE ? ""
                                                      : ", or use strategy steal-stale to take "
                                                        "over tasks whose holder is gone");
    } else if (st == TL_ENOTSUP || st == TL_EINVAL) { /* no claim-next or no labels; bad keys */
        r = error_result("claim_next: %s", tl_errmsg(s->m));
    } else {
        r = store_failure(s, "claim_next", st);
    }
out:
    free(keys);
    free(task_text);
    return r;
}

static json_t *tool_heartbeat(struct tl_mcp_call *c, json_t *args)
{
    static const char *const known[] = {"key", "token", NULL};
    struct tl_mcp_server *s = c->s;
    const char *key;
    uint64_t token;
    json_t *r;
    tl_status st;

    if ((r = unknown_arguments("lock_heartbeat", args, known)) != NULL ||
        (r = key_argument("lock_heartbeat", args, true, &key)) != NULL || key == NULL ||
        (r = token_argument("lock_heartbeat", args, &token)) != NULL || token == 0 ||
        (r = need_store(s)) != NULL || s->m == NULL)
        return r;

    struct tl_mcp_held *h = find_held(s, key, token);
    int64_t expires = 0;
    if (h != NULL) {
        st = tl_renew(h->lock);
        expires = st == TL_OK ? tl_mcp_now_ms() + tl_lock_expires_in_ms(h->lock) : 0;
        if (st == TL_ELOST || st == TL_ENOTOWNER)
            drop_held(s, h);
    } else {
        st = tl_renew_token(s->m, key, token);
        if (st == TL_OK) {
            struct tl_info *info = NULL;

            if (tl_inspect(s->m, key, &info) == TL_OK && info != NULL && info->token == token)
                expires = info->heartbeat_at_ms + info->lock_timeout_ms;
            tl_info_free(info);
        }
    }
    if (st == TL_ELOST || st == TL_ENOTOWNER)
        return error_result("%s: the lock with token %llu is no longer yours (%s): it was taken "
                            "over after going stale, forced, or released. Stop work that relies "
                            "on it; lock_status shows who holds it now.",
                            key, (unsigned long long)token, tl_errmsg(s->m));
    if (st == TL_EINVAL)
        return error_result("lock_heartbeat: %s", tl_errmsg(s->m));
    if (st != TL_OK)
        return store_failure(s, "lock_heartbeat", st);

    char now[40], exp[40];
    tl_mcp_iso(tl_mcp_now_ms(), now, sizeof(now));
    tl_mcp_iso(expires, exp, sizeof(exp));
    json_t *doc =
        json_pack("{s:s, s:I, s:s}", "key", key, "token", (json_int_t)token, "heartbeat_at", now);
    if (doc != NULL && expires > 0 &&
        json_object_set_new(doc, "expires_at", json_string(exp)) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    return ok_result(doc);
}

/* Who holds `key` now, for a release that found it is not ours: not_yours or not_held. */
static json_t *release_refused(struct tl_mcp_server *s, const char *key, uint64_t token)
{
    struct tl_info *info = NULL;
    tl_status st = tl_inspect(s->m, key, &info);

    if (st != TL_OK)
        return store_failure(s, "lock_release", st);
    if (info == NULL)
        return ok_result(json_pack("{s:s, s:I, s:s}", "key", key, "token", (json_int_t)token,
                                   "outcome", "not_held"));
    char holder[700];
    describe_holder(info, holder, sizeof(holder));
    json_t *doc = json_pack("{s:s, s:I, s:s, s:o}", "key", key, "token", (json_int_t)token,
                            "outcome", "not_yours", "holder", lock_object(s, info));
    json_t *res = error_result_doc(doc,
                                   "%s: not_yours: your lock (token %llu) is gone; the key is %s. "
                                   "What you did after losing it was not protected by the lock.",
                                   key, (unsigned long long)token, holder);
    tl_info_free(info);
    return res;
}

static json_t *tool_release(struct tl_mcp_call *c, json_t *args)
{
    static const char *const known[] = {"key", "token", "summary", "done", NULL};
    struct tl_mcp_server *s = c->s;
    const char *key, *summary = NULL;
    bool done = false;
    uint64_t token;
    json_t *r;
    tl_status st;

    if ((r = unknown_arguments("lock_release", args, known)) != NULL ||
        (r = key_argument("lock_release", args, true, &key)) != NULL || key == NULL ||
        (r = token_argument("lock_release", args, &token)) != NULL || token == 0)
        return r;
    json_t *v = json_object_get(args, "summary");
    if (v != NULL && !json_is_null(v)) {
        summary = json_string_value(v);
        if (summary == NULL || strlen(summary) > 4096)
            return error_result("lock_release: \"summary\" must be text of at most 4096 bytes");
    }
    v = json_object_get(args, "done");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return error_result("lock_release: \"done\" must be true or false");
        done = json_is_true(v);
    }
    if ((r = need_store(s)) != NULL || s->m == NULL)
        return r;

    const struct tl_release_opts ro = {.summary = summary, .done = done};
    struct tl_mcp_held *h = find_held(s, key, token);
    if (h != NULL) {
        st = tl_release_with(h->lock, &ro);
        if (st == TL_OK || st == TL_ENOTOWNER)
            drop_held(s, h);
    } else {
        st = tl_release_token_with(s->m, key, token, &ro);
    }
    if (st == TL_OK)
        return ok_result(json_pack("{s:s, s:I, s:s, s:b}", "key", key, "token", (json_int_t)token,
                                   "outcome", "released", "done", done));
    if (st == TL_ENOTSUP)
        return error_result("lock_release: %s", tl_errmsg(s->m));
    if (st == TL_ENOTOWNER)
        return release_refused(s, key, token);
    if (st == TL_EINVAL)
        return error_result("lock_release: %s", tl_errmsg(s->m));
    return store_failure(s, "lock_release", st);
}

static json_t *tool_reopen(struct tl_mcp_call *c, json_t *args)
{
    static const char *const known[] = {"key", NULL};
    struct tl_mcp_server *s = c->s;
    const char *key;
    bool was_done = false;
    json_t *r;

    if ((r = unknown_arguments("lock_reopen", args, known)) != NULL ||
        (r = key_argument("lock_reopen", args, true, &key)) != NULL || key == NULL ||
        (r = need_store(s)) != NULL || s->m == NULL)
        return r;
    tl_status st = tl_reopen(s->m, key, &was_done);
    if (st == TL_EINVAL || st == TL_ENOTSUP)
        return error_result("lock_reopen: %s", tl_errmsg(s->m));
    if (st != TL_OK)
        return store_failure(s, "lock_reopen", st);
    return ok_result(json_pack("{s:s, s:b}", "key", key, "was_done", was_done));
}

/* A done marker as JSON (with its key if `with_key`): a new reference, or NULL. */
static json_t *done_object(const struct tl_done *d, bool with_key)
{
    char at[40];
    json_t *summary = json_string(d->summary != NULL ? d->summary : "");

    tl_mcp_iso(d->done_at_ms, at, sizeof(at));
    json_t *r = json_pack("{s:s, s:s, s:I, s:s, s:o}", "worker_id", d->worker_id, "node_id",
                          d->node_id, "token", (json_int_t)d->token, "done_at", at, "summary",
                          summary != NULL ? summary : json_string("(not UTF-8)"));
    if (r != NULL && with_key && json_object_set_new(r, "key", json_string(d->key)) != 0) {
        json_decref(r);
        r = NULL;
    }
    return r;
}

/* The done marker of `key` for lock_status: an object, JSON null when not done, or NULL with
 * *st set (TL_ENOTSUP: the store keeps no markers; the caller leaves "done" out). */
static json_t *done_marker(struct tl_mcp_server *s, const char *key, tl_status *st)
{
    struct tl_done **d = NULL;
    size_t n = 0;
    json_t *r = NULL;

    *st = tl_list_done(s->m, key, &d, &n);
    if (*st != TL_OK)
        return NULL;
    for (size_t i = 0; r == NULL && i < n; i++) {
        if (strcmp(d[i]->key, key) != 0)
            continue;
        r = done_object(d[i], false);
        if (r == NULL)
            *st = TL_ENOMEM;
    }
    tl_done_array_free(d, n);
    return r != NULL || *st != TL_OK ? r : json_null();
}

static json_t *tool_status(struct tl_mcp_call *c, json_t *args)
{
    static const char *const known[] = {"key", NULL};
    struct tl_mcp_server *s = c->s;
    struct tl_info *info = NULL;
    struct tl_waiter **ws = NULL;
    size_t nw = 0;
    const char *key;
    json_t *r;

    if ((r = unknown_arguments("lock_status", args, known)) != NULL ||
        (r = key_argument("lock_status", args, true, &key)) != NULL || key == NULL ||
        (r = need_store(s)) != NULL || s->m == NULL)
        return r;
    tl_status st = tl_inspect(s->m, key, &info);
    if (st == TL_OK) {
        st = tl_waiters(s->m, key, &ws, &nw);
        if (st == TL_ENOTSUP)
            st = TL_OK;
    }
    if (st != TL_OK) {
        tl_info_free(info);
        return st == TL_EINVAL ? error_result("lock_status: %s", tl_errmsg(s->m))
                               : store_failure(s, "lock_status", st);
    }

    int64_t now =
        info != NULL && info->observed_at_ms != 0 ? info->observed_at_ms : tl_mcp_now_ms();
    json_t *waiters = json_array();
    size_t live = 0;
    for (size_t i = 0; waiters != NULL && i < nw; i++) {
        live += !ws[i]->dead;
        if (json_array_append_new(
                waiters,
                json_pack("{s:s, s:s, s:i, s:f, s:b}", "worker_id", ws[i]->worker_id, "node_id",
                          ws[i]->node_id, "priority", (int)ws[i]->priority, "waiting_seconds",
                          (double)(now - ws[i]->since_ms) / 1000.0, "dead", ws[i]->dead)) != 0) {
            json_decref(waiters);
            waiters = NULL;
        }
    }
    json_t *lock = info != NULL ? lock_object(s, info) : json_null();
    json_t *doc = waiters != NULL && lock != NULL
                      ? json_pack("{s:s, s:b, s:O, s:I, s:O}", "key", key, "held", info != NULL,
                                  "lock", lock, "waiting", (json_int_t)live, "waiters", waiters)
                      : NULL;
    json_decref(lock);
    /* Whether the task is done: one more read; a store without markers leaves it out. */
    tl_status dst = TL_OK;
    json_t *done = doc != NULL ? done_marker(s, key, &dst) : NULL;
    if (done != NULL) {
        if (json_object_set_new(doc, "done", done) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    } else if (dst != TL_OK && dst != TL_ENOTSUP) {
        json_decref(doc);
        json_decref(waiters);
        tl_waiter_array_free(ws, nw);
        tl_info_free(info);
        return store_failure(s, "lock_status", dst);
    }
    json_decref(waiters);
    tl_waiter_array_free(ws, nw);
    tl_info_free(info);
    return ok_result(doc);
}

static json_t *tool_list(struct tl_mcp_call *c, json_t *args)
{
    static const char *const known[] = {"prefix", "include_done", NULL};
    struct tl_mcp_server *s = c->s;
    struct tl_info **infos = NULL;
    size_t n = 0;
    json_t *r;

    if ((r = unknown_arguments("lock_list", args, known)) != NULL)
        return r;
    json_t *v = json_object_get(args, "prefix");
    const char *prefix = json_string_value(v);
    if (v != NULL && !json_is_null(v) && prefix == NULL)
        return error_result("lock_list: \"prefix\" must be a string");
    json_t *inc = json_object_get(args, "include_done");
    if (inc != NULL && !json_is_null(inc) && !json_is_boolean(inc))
        return error_result("lock_list: \"include_done\" must be true or false");
    if ((r = need_store(s)) != NULL || s->m == NULL)
        return r;
    json_t *done = NULL;
    if (json_is_true(inc)) {
        struct tl_done **d = NULL;
        size_t nd = 0;
        tl_status dst = tl_list_done(s->m, NULL, &d, &nd);

        if (dst == TL_ENOTSUP)
            return error_result("lock_list: %s", tl_errmsg(s->m));
        if (dst != TL_OK)
            return store_failure(s, "lock_list", dst);
        done = json_array();
        for (size_t i = 0; done != NULL && i < nd; i++) {
            if (prefix != NULL && strncmp(d[i]->key, prefix, strlen(prefix)) != 0)
                continue;
            if (json_array_append_new(done, done_object(d[i], true)) != 0) {
                json_decref(done);
                done = NULL;
            }
        }
        tl_done_array_free(d, nd);
        if (done == NULL)
            return error_result("lock_list: out of memory");
    }
    tl_status st = tl_list(s->m, &infos, &n);
    if (st != TL_OK) {
        json_decref(done);
        return store_failure(s, "lock_list", st);
    }

    json_t *locks = json_array();
    size_t count = 0;
    for (size_t i = 0; locks != NULL && i < n; i++) {
        if (prefix != NULL && strncmp(infos[i]->key, prefix, strlen(prefix)) != 0)
            continue;
        json_t *one = json_pack("{s:s, s:o, s:I}", "key", infos[i]->key, "lock",
                                lock_object(s, infos[i]), "waiting", (json_int_t)infos[i]->waiting);
        if (json_array_append_new(locks, one) != 0) {
            json_decref(locks);
            locks = NULL;
        }
        count++;
    }
    tl_info_array_free(infos, n);
    json_t *doc =
        locks != NULL ? json_pack("{s:o, s:I}", "locks", locks, "count", (json_int_t)count) : NULL;
    if (doc != NULL && done != NULL && json_object_set(doc, "done", done) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    json_decref(done);
    return ok_result(doc);
}

static json_t *tool_history(struct tl_mcp_call *c, json_t *args)
{
    static const char *const known[] = {"key", "limit", NULL};
    struct tl_mcp_server *s = c->s;
    struct tl_event **ev = NULL;
    size_t n = 0, limit = 20;
    const char *key;
    json_t *r;

    if ((r = unknown_arguments("lock_history", args, known)) != NULL ||
        (r = key_argument("lock_history", args, false, &key)) != NULL)
        return r;
    json_t *v = json_object_get(args, "limit");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)
            return error_result("lock_history: \"limit\" must be a whole number from 1 to 1000");
        limit = (size_t)json_integer_value(v);
    }
    if ((r = need_store(s)) != NULL || s->m == NULL)
        return r;
    tl_status st = tl_history(s->m, key, limit, &ev, &n);
    if (st == TL_ENOTSUP)
        return error_result("lock_history: this store keeps no audit trail");
    if (st != TL_OK)
        return store_failure(s, "lock_history", st);

    json_t *events = json_array();
    for (size_t i = 0; events != NULL && i < n; i++) {
        char at[40];
        json_t *detail = ev[i]->detail != NULL ? json_string(ev[i]->detail) : json_null();

        tl_mcp_iso(ev[i]->at_ms, at, sizeof(at));
        json_t *one = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:o}", "at", at, "event",
                                tl_event_kind_name(ev[i]->kind), "key", ev[i]->key, "token",
                                (json_int_t)ev[i]->token, "worker_id", ev[i]->worker_id, "node_id",
                                ev[i]->node_id, "detail",
                                detail != NULL ? detail : json_string("(not UTF-8)"));
        if (json_array_append_new(events, one) != 0) {
            json_decref(events);
            events = NULL;
        }
    }
    tl_event_array_free(ev, n);
    return ok_result(events != NULL ? json_pack("{s:o}", "events", events) : NULL);
}

json_t *tl_mcp_tool_call(struct tl_mcp_call *c, const char *name, json_t *args, int *code,
                         char *msg, size_t msgsize)
{
    static const struct {
        const char *name;
        json_t *(*run)(struct tl_mcp_call *c, json_t *args);
    } tools[] = {
        {"lock_acquire", tool_acquire},     {"claim_next", tool_claim_next},
        {"lock_heartbeat", tool_heartbeat}, {"lock_release", tool_release},
        {"lock_reopen", tool_reopen},       {"lock_status", tool_status},
        {"lock_list", tool_list},           {"lock_history", tool_history},
    };

    *code = 0;
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
        if (strcmp(name, tools[i].name) == 0)
            return tools[i].run(c, args);
    }
    *code = TL_MCP_INVALID_PARAMS;
    (void)snprintf(msg, msgsize, "Unknown tool: %.128s", name);
    return NULL;
}
