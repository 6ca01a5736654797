/*
 * mcp.h -- the Model Context Protocol engine of `tasklock mcp`: one JSON-RPC message in, at most
 * one reply out. It knows nothing of stdio or threads (cmd_mcp.c has those), so that a fuzzer
 * can drive it (fuzz/fuzz_mcp.c). It uses the public API of tasklock.h only.
 *
 * mcp_server.c: framing checks, both eras of the protocol, the methods and resources.
 * mcp_tools.c:  the tools (lock_acquire, ...), their schemas and their results.
 */
#ifndef TL_MCP_H
#define TL_MCP_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tasklock.h"

#if defined(__GNUC__)
#define TL_MCP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TL_MCP_PRINTF(fmt, args)
#endif

/* JSON-RPC 2.0 and MCP error codes. */
enum {
    TL_MCP_PARSE_ERROR = -32700,
    TL_MCP_INVALID_REQUEST = -32600,
    TL_MCP_METHOD_NOT_FOUND = -32601,
    TL_MCP_INVALID_PARAMS = -32602,
    TL_MCP_INTERNAL_ERROR = -32603,
    TL_MCP_RESOURCE_NOT_FOUND = -32002, /* up to 2025-11-25; 2026-07-28 uses -32602 */
    TL_MCP_UNSUPPORTED_VERSION = -32022 /* 2026-07-28 */
};

/* Protocol versions. */
#define TL_MCP_LATEST_LEGACY "2025-11-25"
#define TL_MCP_MODERN        "2026-07-28"
#define TL_MCP_META_VERSION  "io.modelcontextprotocol/protocolVersion"

/* The longest message taken (a line beyond it is refused with -32600 by cmd_mcp.c). */
#define TL_MCP_LINE_MAX ((size_t)4 * 1024 * 1024)

/* What a waiting acquire learned when it ended (struct tl_mcp_config.end_wait). */
enum tl_mcp_wait_end {
    TL_MCP_WAIT_ON = 0,    /* not cancelled: a cancel flag seen was meant for another request */
    TL_MCP_WAIT_CANCELLED, /* notifications/cancelled named this request: no reply */
    TL_MCP_WAIT_SHUTDOWN   /* the client went away (EOF, SIGTERM): no reply */
};

/* How the engine is set up. Strings are borrowed for the engine's life. */
struct tl_mcp_config {
    const char *worker_id; /* -w: NULL for clientInfo.name plus a random suffix */
    uint32_t max_wait_ms;  /* the longest a lock_acquire waits, counted from its arrival */
    bool allow_force;      /* whether strategy "force" is offered */
    /*
     * Creates and connects the manager for `worker_id` (on the first call that needs the store).
     * Returns TL_OK with *out set, or a status with a message in `err`.
     */
    tl_status (*connect)(void *ud, const char *worker_id, tl_manager **out, char *err,
                         size_t errsize);
    void *ud; /* for the callbacks */
    /* The flag a waiting acquire watches (struct tl_acquire_opts.cancel); may be NULL. */
    const volatile sig_atomic_t *cancel;
    /* Around each acquire: begin_wait(ud, id) with the request id as compact JSON text, then
     * end_wait(ud), which says whether it was cancelled (a lock granted to a cancelled request
     * is released again). Both may be NULL. */
    void (*begin_wait)(void *ud, const char *id);
    enum tl_mcp_wait_end (*end_wait)(void *ud);
    /* Monotonic clock in ms; NULL for CLOCK_MONOTONIC. */
    int64_t (*mono_ms)(void *ud);
};

struct tl_mcp_server;

/* A new engine; NULL when out of memory. Does no I/O. */
struct tl_mcp_server *tl_mcp_server_new(const struct tl_mcp_config *cfg);

/*
 * Frees the engine and its manager. Locks still granted are not released here (see
 * tl_mcp_release_all): the manager stops heartbeating them and they go stale. NULL is a no-op.
 */
void tl_mcp_server_free(struct tl_mcp_server *s);

/*
 * Handles one message: `len` bytes (no newline; need not be NUL-terminated) that arrived at
 * `arrived_ms` on the monotonic clock (the start of a lock_acquire's wait budget). Returns the
 * reply as one line of compact JSON without its newline, which the caller frees with free(), or
 * NULL when there is none (a notification, a response, a cancelled request).
 */
char *tl_mcp_handle(struct tl_mcp_server *s, const char *msg, size_t len, int64_t arrived_ms);

/*
 * Releases every lock the engine granted and still holds, each within `deadline_ms`. Returns
 * how many were released; `failed` (may be NULL) gets how many could not be for a store error
 * (a lock lost before is not a failure: it is someone else's). Messages go to stderr.
 */
size_t tl_mcp_release_all(struct tl_mcp_server *s, uint32_t deadline_ms, size_t *failed);

/* How many locks the engine holds for its client now. */
size_t tl_mcp_held_count(const struct tl_mcp_server *s);

/* The worker id in use (after the first tool call), else NULL. Owned by the engine. */
const char *tl_mcp_worker_id(const struct tl_mcp_server *s);

/*
 * A JSON-RPC error reply with `id` (borrowed; NULL for null), as one compact line (free()), or
 * NULL when out of memory. For the framing errors cmd_mcp.c answers itself.
 */
char *tl_mcp_error_line(const json_t *id, int code, const char *message);

/* ---- between mcp_server.c and mcp_tools.c ---- */

/* A lock this engine granted and heartbeats. */
struct tl_mcp_held {
    tl_lock *lock;
    char *key;
    uint64_t token;
};

struct tl_mcp_server {
    struct tl_mcp_config cfg;
    tl_manager *m; /* NULL until the first call that needs the store */
    char worker_id[160];
    char client_name[129]; /* clientInfo.name of initialize, sanitised; "" when none */
    bool initialized;
    char version[16]; /* the negotiated legacy version; "" before initialize */
    json_t *tools;    /* the tools/list array, built once */
    struct tl_mcp_held *held;
    size_t nheld, capheld;
    uint64_t rng; /* the random suffix of the worker id */
};

/* The context of one request, for the tools and the results they build. */
struct tl_mcp_call {
    struct tl_mcp_server *s;
    const json_t *id; /* borrowed */
    bool modern;      /* 2026-07-28 (the version came in _meta) */
    int64_t arrived_ms;
    bool no_reply; /* set by a tool whose request was cancelled */
};

/* mcp_tools.c: the tools/list array (a new reference), or NULL when out of memory. */
json_t *tl_mcp_tools_new(bool allow_force);
/*
 * mcp_tools.c: runs tool `name` with `args` (an object; borrowed). Returns the CallToolResult (a
 * new reference); NULL with *code and `msg` set for a JSON-RPC error (unknown tool: -32602).
 */
json_t *tl_mcp_tool_call(struct tl_mcp_call *c, const char *name, json_t *args, int *code,
                         char *msg, size_t msgsize);
/* mcp_tools.c: connects the manager on first use. TL_OK, or a status with `err` set. */
tl_status tl_mcp_manager(struct tl_mcp_server *s, char *err, size_t errsize);

/* "2026-11-26T23:28:01.123Z" for ms since the epoch; "" for 0 or less. */
void tl_mcp_iso(int64_t ms, char *buf, size_t size);
/* Wall clock and monotonic clock in ms. */
int64_t tl_mcp_now_ms(void);
int64_t tl_mcp_mono_ms(const struct tl_mcp_server *s);

#endif /* TL_MCP_H */
