/*
 * fuzz_mcp.c -- the message handler of `tasklock mcp` (cli/mcp_server.c, cli/mcp_tools.c) on
 * arbitrary bytes: the input is split at newlines into up to 16 messages, as the server's
 * reader splits its standard input, and each goes to tl_mcp_handle() of one engine on a
 * memory store (the tools run for real: acquire, claim_next, heartbeat, release with done,
 * reopen, status, list, history).
 * Waits are off (--max-wait 0), so no message can block.
 *
 * Oracles beyond "no crash, no sanitizer report": a reply is one line of JSON, a JSON-RPC 2.0
 * response with an id and exactly one of result and error, and an error code is one of the
 * protocol's; a JSON object with a method and no id (a notification) gets no reply.
 */
#include <jansson.h>

#include "fuzz.h"
#include "mcp.h"
#include "tasklock.h"

static tl_status connect_memory(void *ud, const char *worker_id, tl_manager **out, char *err,
                                size_t errsize)
{
    tl_manager *m =
        tl_manager_new(&(struct tl_options){.store_url = "memory:fuzz", .worker_id = worker_id});

    (void)ud;
    *out = NULL;
    if (m == NULL)
        return TL_ENOMEM;
    tl_status st = tl_connect(m);
    if (st != TL_OK) {
        (void)snprintf(err, errsize, "%s", tl_errmsg(m));
        tl_manager_free(m);
        return st;
    }
    *out = m;
    return TL_OK;
}

static bool known_code(json_int_t code)
{
    static const json_int_t codes[] = {TL_MCP_PARSE_ERROR,        TL_MCP_INVALID_REQUEST,
                                       TL_MCP_METHOD_NOT_FOUND,   TL_MCP_INVALID_PARAMS,
                                       TL_MCP_INTERNAL_ERROR,     TL_MCP_RESOURCE_NOT_FOUND,
                                       TL_MCP_UNSUPPORTED_VERSION};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (codes[i] == code)
            return true;
    }
    return false;
}

static void check_reply(const char *msg, size_t len, const char *reply)
{
    json_t *in = json_loadb(msg, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    bool notification = json_is_object(in) && json_object_get(in, "id") == NULL &&
                        json_object_get(in, "method") != NULL;

    json_decref(in);
    if (reply == NULL)
        return;
    fuzz_check(!notification, "a notification gets no reply");
    fuzz_check(strchr(reply, '\n') == NULL, "a reply is one line");

    json_t *r = json_loads(reply, 0, NULL);
    fuzz_check(json_is_object(r), "a reply is a JSON object");
    fuzz_check(json_is_string(json_object_get(r, "jsonrpc")) &&
                   strcmp(json_string_value(json_object_get(r, "jsonrpc")), "2.0") == 0,
               "a reply says jsonrpc 2.0");
    json_t *id = json_object_get(r, "id");
    fuzz_check(id != NULL && (json_is_null(id) || json_is_string(id) || json_is_integer(id)),
               "a reply has an id: null, a string or an integer");
    json_t *result = json_object_get(r, "result"), *error = json_object_get(r, "error");
    fuzz_check((result != NULL) != (error != NULL), "exactly one of result and error");
    if (result != NULL)
        fuzz_check(json_is_object(result), "a result is an object");
    if (error != NULL) {
        fuzz_check(json_is_integer(json_object_get(error, "code")) &&
                       known_code(json_integer_value(json_object_get(error, "code"))),
                   "an error code of the protocol");
        fuzz_check(json_is_string(json_object_get(error, "message")), "an error has a message");
    }
    json_decref(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct tl_mcp_config cfg = {.max_wait_ms = 0, .connect = connect_memory};
    struct tl_mcp_server *s = tl_mcp_server_new(&cfg);
    const char *p = (const char *)data, *end = p + size;

    fuzz_check(s != NULL, "an engine");
    for (int n = 0; n < 16 && p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        char *reply = tl_mcp_handle(s, p, len, 0);

        check_reply(p, len, reply);
        free(reply);
        p += len + (nl != NULL);
    }
    (void)tl_mcp_release_all(s, 1000, NULL);
    tl_mcp_server_free(s);
    return 0;
}
