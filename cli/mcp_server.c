/*
 * mcp_server.c -- the protocol half of `tasklock mcp`: one JSON-RPC 2.0 message in, at most one
 * reply out (mcp.h). Both eras of MCP are spoken: the `initialize` handshake of 2025-11-25,
 * 2025-06-18 and 2025-03-26, and the stateless 2026-07-28 form (server/discover, the version in
 * each request's _meta). The tools are in mcp_tools.c; the lock state is also offered as
 * resources, tasklock://locks and tasklock://locks/{key}, read from the store itself.
 *
 * Input is anything anyone may have written: every path ends in a reply or, for notifications
 * and responses, in silence; nothing here exits, aborts or waits but a lock_acquire's wait.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "mcp.h"

static const char *const legacy_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

static const char instructions[] =
    "Task locks shared with other agents. Call lock_acquire on a task's key before working on "
    "it, and lock_release with the returned token when done. While you stay connected the "
    "server heartbeats the locks it granted you; when you disconnect it releases them. A "
    "conflict is an error result naming the holder, since when it holds the lock and how fresh "
    "its heartbeat is. To share a list of tasks, claim_next takes the first free one of them; "
    "release it with done: true when finished, so that it is not offered again. lock_status "
    "and lock_list show who holds what.";

/* ---- small helpers ---- */

void tl_mcp_iso(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char sec[32];

    if (ms <= 0 || gmtime_r(&t, &tm) == NULL ||
        strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        if (size > 0)
            buf[0] = '\0';
        return;
    }
    (void)snprintf(buf, size, "%s.%03dZ", sec, (int)(ms % 1000));
}

int64_t tl_mcp_now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tl_mcp_mono_ms(const struct tl_mcp_server *s)
{
    struct timespec ts;

    if (s != NULL && s->cfg.mono_ms != NULL)
        return s->cfg.mono_ms(s->cfg.ud);
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A JSON string of `text`, cut back to whole UTF-8 characters if a buffer cut one in two (our
 * messages quote what clients sent). A new reference, or NULL when out of memory. */
static json_t *text_json(const char *text)
{
    size_t n = strlen(text);

    for (size_t cut = 0; cut < 4 && cut <= n; cut++) {
        json_t *j = json_stringn(text, n - cut);
        if (j != NULL)
            return j;
    }
    return json_string("(text that is not UTF-8)");
}

/* The result of a request as one line: {"jsonrpc","id","result"}; steals `result`. */
static char *result_line(const json_t *id, json_t *result, bool modern)
{
    char *line = NULL;

    if (result == NULL)
        return tl_mcp_error_line(id, TL_MCP_INTERNAL_ERROR, "Internal error: out of memory");
    if (modern && json_object_get(result, "resultType") == NULL)
        (void)json_object_set_new(result, "resultType", json_string("complete"));
    json_t *doc =
        json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", (json_t *)id, "result", result);
    if (doc != NULL)
        line = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(doc);
    return line;
}

/* An error reply with `data` (stolen; may be NULL). */
static char *error_data_line(const json_t *id, int code, const char *message, json_t *data)
{
    json_t *err = json_pack("{s:i, s:o}", "code", code, "message", text_json(message));
    json_t *doc = NULL;
    char *line = NULL;

    if (err != NULL && data != NULL && json_object_set(err, "data", data) != 0) {
        json_decref(err);
        err = NULL;
    }
    if (err != NULL)
        doc = json_pack("{s:s, s:O?, s:o}", "jsonrpc", "2.0", "id", (json_t *)id, "error", err);
    if (doc != NULL)
        line = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(doc);
    json_decref(data);
    return line;
}

char *tl_mcp_error_line(const json_t *id, int code, const char *message)
{
    return error_data_line(id, code, message, NULL);
}

/* ---- the lifecycle and discovery ---- */

static json_t *capabilities(void)
{
    return json_pack("{s:{s:b}, s:{s:b, s:b}}", "tools", "listChanged", 0, "resources", "subscribe",
                     0, "listChanged", 0);
}

static json_t *server_info(void)
{
    return json_pack("{s:s, s:s, s:s}", "name", "tasklock", "title", "tasklock", "version",
                     TL_VERSION_STRING);
}

/* clientInfo.name as the first part of a worker id: letters, digits, '.', '_', '-' only, at
 * most 64 bytes; anything else becomes '-'. */
static void set_client_name(struct tl_mcp_server *s, const char *name)
{
    size_t n = 0;

    for (const char *p = name; *p != '\0' && n < 64; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';

        if (!ok && (n == 0 || s->client_name[n - 1] == '-'))
            continue;
        if (ok)
            s->client_name[n++] = ch;
        else
            s->client_name[n++] = '-';
    }
    while (n > 0 && s->client_name[n - 1] == '-')
        n--;
    s->client_name[n] = '\0';
}

static char *do_initialize(struct tl_mcp_server *s, const json_t *id, json_t *params, bool modern)
{
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    json_t *info = json_object_get(params, "clientInfo");
    const char *version = TL_MCP_LATEST_LEGACY;

    if (asked == NULL)
        return tl_mcp_error_line(id, TL_MCP_INVALID_PARAMS,
                                 "Invalid params: initialize needs protocolVersion (a string)");
    if (info != NULL && !json_is_object(info))
        return tl_mcp_error_line(id, TL_MCP_INVALID_PARAMS,
                                 "Invalid params: clientInfo must be an object");
    for (size_t i = 0; legacy_versions[i] != NULL; i++) {
        if (strcmp(asked, legacy_versions[i]) == 0)
            version = legacy_versions[i];
    }
    (void)snprintf(s->version, sizeof(s->version), "%s", version);
    const char *name = json_string_value(json_object_get(info, "name"));
    if (name != NULL && s->m == NULL) /* the worker id is fixed once the store is open */
        set_client_name(s, name);
    s->initialized = true;
    return result_line(id,
                       json_pack("{s:s, s:o, s:o, s:s}", "protocolVersion", version, "capabilities",
                                 capabilities(), "serverInfo", server_info(), "instructions",
                                 instructions),
                       modern);
}

static char *do_discover(const json_t *id)
{
    json_t *r = json_pack("{s:s, s:[s], s:o, s:{s:o}, s:s, s:i, s:s}", "resultType", "complete",
                          "supportedVersions", TL_MCP_MODERN, "capabilities", capabilities(),
                          "_meta", "io.modelcontextprotocol/serverInfo", server_info(),
                          "instructions", instructions, "ttlMs", 3600000, "cacheScope", "public");

    return result_line(id, r, true);
}

static char *do_tools_list(struct tl_mcp_server *s, const json_t *id, json_t *params, bool modern)
{
    json_t *cursor = json_object_get(params, "cursor");

    if (cursor != NULL && !json_is_null(cursor))
        return tl_mcp_error_line(id, TL_MCP_INVALID_PARAMS,
                                 "Invalid params: unknown cursor (the list has one page)");
    json_t *r = json_pack("{s:O}", "tools", s->tools);
    if (r != NULL && modern &&
        (json_object_set_new(r, "ttlMs", json_integer(3600000)) != 0 ||
         json_object_set_new(r, "cacheScope", json_string("public")) != 0)) {
        json_decref(r);
        r = NULL;
    }
    return result_line(id, r, modern);
}

static char *do_tools_call(struct tl_mcp_call *c, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    char msg[512];
    int code = 0;

    if (name == NULL)
        return tl_mcp_error_line(c->id, TL_MCP_INVALID_PARAMS,
                                 "Invalid params: tools/call needs name (a string)");
    if (args != NULL && json_is_null(args))
        args = NULL;
    if (args != NULL && !json_is_object(args))
        return tl_mcp_error_line(c->id, TL_MCP_INVALID_PARAMS,
                                 "Invalid params: arguments must be an object");

    json_t *empty = args == NULL ? json_object() : NULL;
    json_t *r = tl_mcp_tool_call(c, name, args != NULL ? args : empty, &code, msg, sizeof(msg));
    json_decref(empty);
    if (c->no_reply) {
        json_decref(r);
        return NULL;
    }
    if (r == NULL)
        return tl_mcp_error_line(c->id, code != 0 ? code : TL_MCP_INTERNAL_ERROR,
                                 code != 0 ? msg : "Internal error: out of memory");
    return result_line(c->id, r, c->modern);
}

/* ---- resources: tasklock://locks and tasklock://locks/{key} ---- */

#define LOCKS_URI "tasklock://locks"

/* KEY percent-encoded for a URI: unreserved characters as they are, every other byte %XX. */
static char *uri_of(const char *key)
{
    size_t n = strlen(key);
    char *out = malloc(sizeof(LOCKS_URI "/") + 3 * n);
    char *p;

    if (out == NULL)
        return NULL;
    p = out + (sizeof(LOCKS_URI "/") - 1);
    memcpy(out, LOCKS_URI "/", sizeof(LOCKS_URI "/") - 1);
    for (const unsigned char *k = (const unsigned char *)key; *k != '\0'; k++) {
        bool plain = (*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
                     (*k >= '0' && *k <= '9') || *k == '-' || *k == '.' || *k == '_' || *k == '~';

        if (plain) {
            *p++ = (char)*k;
        } else {
            (void)snprintf(p, 4, "%%%02X", *k);
            p += 3;
        }
    }
    *p = '\0';
    return out;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The key of a lock URI's tail, percent-decoded into `out`; false when malformed or too long. */
static bool key_of(const char *tail, char *out, size_t size)
{
    size_t n = 0;

    for (const char *p = tail; *p != '\0'; p++) {
        int ch = (unsigned char)*p;

        if (ch == '%') {
            int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
            if (lo < 0)
                return false;
            ch = hi * 16 + lo;
            p += 2;
        }
        if (ch == 0 || n + 1 >= size)
            return false;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return n > 0;
}

static char *store_error_line(const json_t *id, const char *what, const char *err)
{
    char msg[700];

    (void)snprintf(msg, sizeof(msg), "Internal error: %s: %s", what, err);
    return tl_mcp_error_line(id, TL_MCP_INTERNAL_ERROR, msg);
}

static char *do_resources_list(struct tl_mcp_call *c)
{
    struct tl_mcp_server *s = c->s;
    char err[512];
    struct tl_info **infos = NULL;
    size_t n = 0;

    if (tl_mcp_manager(s, err, sizeof(err)) != TL_OK)
        return store_error_line(c->id, "cannot open the store", err);
    if (tl_list(s->m, &infos, &n) != TL_OK)
        return store_error_line(c->id, "listing the locks", tl_errmsg(s->m));

    json_t *list = json_pack("[{s:s, s:s, s:s, s:s, s:s}]", "uri", LOCKS_URI, "name", "locks",
                             "title", "Every held lock", "description",
                             "The locks held in the store, with holder, token, times and "
                             "staleness",
                             "mimeType", "application/json");
    for (size_t i = 0; list != NULL && i < n; i++) {
        char *uri = uri_of(infos[i]->key);
        json_t *one = uri != NULL ? json_pack("{s:s, s:s, s:s}", "uri", uri, "name", infos[i]->key,
                                              "mimeType", "application/json")
                                  : NULL;

        free(uri);
        if (json_array_append_new(list, one) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    tl_info_array_free(infos, n);
    return result_line(c->id, list != NULL ? json_pack("{s:o}", "resources", list) : NULL,
                       c->modern);
}

static char *do_templates_list(const struct tl_mcp_call *c)
{
    json_t *r = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s}]}", "resourceTemplates", "uriTemplate",
                          LOCKS_URI "/{key}", "name", "lock", "title", "One lock", "description",
                          "The lock of one key (percent-encoded) as the seed's metadata JSON: "
                          "{\"lock\":{worker_id, node_id, claimed_at, heartbeat_last, task_info, "
                          "token, lock_timeout_ms}}",
                          "mimeType", "application/json");

    return result_line(c->id, r, c->modern);
}

/* {"lock":{...seed metadata..., "stale"}} of a record, a new reference. */
static json_t *seed_json(const struct tl_info *info, bool with_stale)
{
    char *meta = tl_info_to_json(info);
    json_t *doc = meta != NULL ? json_loads(meta, 0, NULL) : NULL;
    json_t *lock = json_object_get(doc, "lock");

    tl_free(meta);
    if (with_stale && lock != NULL &&
        json_object_set_new(lock, "stale", json_boolean(info->stale)) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

static char *resource_text(const struct tl_mcp_call *c, const char *uri, json_t *doc)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_t *r = text != NULL ? json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri,
                                         "mimeType", "application/json", "text", text)
                             : NULL;

    free(text);
    json_decref(doc);
    return result_line(c->id, r, c->modern);
}

static char *not_found(const struct tl_mcp_call *c, const char *uri, const char *why)
{
    char msg[600];

    (void)snprintf(msg, sizeof(msg), "Resource not found: %s", why);
    return error_data_line(c->id, c->modern ? TL_MCP_INVALID_PARAMS : TL_MCP_RESOURCE_NOT_FOUND,
                           msg, json_pack("{s:s}", "uri", uri));
}

static char *do_resources_read(struct tl_mcp_call *c, json_t *params)
{
    struct tl_mcp_server *s = c->s;
    const char *uri = json_string_value(json_object_get(params, "uri"));
    char err[512], key[256];

    if (uri == NULL)
        return tl_mcp_error_line(c->id, TL_MCP_INVALID_PARAMS,
                                 "Invalid params: resources/read needs uri (a string)");
    bool all = strcmp(uri, LOCKS_URI) == 0 || strcmp(uri, LOCKS_URI "/") == 0;
    if (!all && strncmp(uri, LOCKS_URI "/", sizeof(LOCKS_URI)) != 0)
        return not_found(c, uri, "tasklock serves tasklock://locks and tasklock://locks/{key}");
    if (!all && (!key_of(uri + sizeof(LOCKS_URI), key, sizeof(key)) || !tl_key_is_valid(key)))
        return not_found(c, uri, "not a valid key (1 to 255 bytes, percent-encoded)");
    if (tl_mcp_manager(s, err, sizeof(err)) != TL_OK)
        return store_error_line(c->id, "cannot open the store", err);

    if (!all) {
        struct tl_info *info = NULL;

        if (tl_inspect(s->m, key, &info) != TL_OK)
            return store_error_line(c->id, "reading the lock", tl_errmsg(s->m));
        if (info == NULL)
            return not_found(c, uri, "the key is not locked");
        json_t *doc = seed_json(info, false); /* exactly the seed's shape */
        tl_info_free(info);
        return resource_text(c, uri, doc);
    }

    struct tl_info **infos = NULL;
    size_t n = 0;
    if (tl_list(s->m, &infos, &n) != TL_OK)
        return store_error_line(c->id, "listing the locks", tl_errmsg(s->m));
    json_t *locks = json_array();
    for (size_t i = 0; locks != NULL && i < n; i++) {
        json_t *doc = seed_json(infos[i], true);
        json_t *one = doc != NULL ? json_pack("{s:s, s:O, s:I}", "key", infos[i]->key, "lock",
                                              json_object_get(doc, "lock"), "waiting",
                                              (json_int_t)infos[i]->waiting)
                                  : NULL;

        json_decref(doc);
        if (json_array_append_new(locks, one) != 0) {
            json_decref(locks);
            locks = NULL;
        }
    }
    tl_info_array_free(infos, n);
    return resource_text(c, uri, locks != NULL ? json_pack("{s:o}", "locks", locks) : NULL);
}

/* ---- dispatch ---- */

/* Whether the request names its version in _meta (2026-07-28); -1 for a version we do not
 * speak, with *asked set. */
static int era_of(json_t *params, const char **asked)
{
    json_t *meta = json_object_get(params, "_meta");
    json_t *v = json_is_object(meta) ? json_object_get(meta, TL_MCP_META_VERSION) : NULL;

    *asked = NULL;
    if (v == NULL)
        return 0;
    *asked = json_is_string(v) ? json_string_value(v) : "(not a string)";
    return json_is_string(v) && strcmp(json_string_value(v), TL_MCP_MODERN) == 0 ? 1 : -1;
}

static char *dispatch(struct tl_mcp_server *s, json_t *req, int64_t arrived_ms)
{
    const json_t *id = json_object_get(req, "id");
    json_t *method = json_object_get(req, "method");
    json_t *params = json_object_get(req, "params");
    bool has_id = id != NULL;

    if (has_id && !json_is_string(id) && !json_is_integer(id))
        return tl_mcp_error_line(NULL, TL_MCP_INVALID_REQUEST,
                                 "Invalid Request: id must be a string or an integer");
    if (!json_is_string(json_object_get(req, "jsonrpc")) ||
        strcmp(json_string_value(json_object_get(req, "jsonrpc")), "2.0") != 0)
        return has_id ? tl_mcp_error_line(id, TL_MCP_INVALID_REQUEST,
                                          "Invalid Request: jsonrpc must be \"2.0\"")
                      : NULL; /* a notification gets no reply, whatever is wrong with it */
    if (method == NULL) {
        /* A response to a request of ours (we send none) or junk: only junk with an id gets an
         * answer. */
        if (json_object_get(req, "result") != NULL || json_object_get(req, "error") != NULL)
            return NULL;
        return tl_mcp_error_line(id, TL_MCP_INVALID_REQUEST, "Invalid Request: no method");
    }
    if (!json_is_string(method))
        return has_id ? tl_mcp_error_line(id, TL_MCP_INVALID_REQUEST,
                                          "Invalid Request: method must be a string")
                      : NULL;
    if (!has_id)
        return NULL; /* notifications (initialized, cancelled, ...): nothing to answer */
    if (params != NULL && !json_is_object(params))
        return tl_mcp_error_line(id, TL_MCP_INVALID_PARAMS,
                                 "Invalid params: params must be an object");

    const char *asked;
    int era = era_of(params, &asked);
    if (era < 0) {
        char msg[200];

        (void)snprintf(msg, sizeof(msg), "Unsupported protocol version: %.64s", asked);
        return error_data_line(
            id, TL_MCP_UNSUPPORTED_VERSION, msg,
            json_pack("{s:[s], s:s}", "supported", TL_MCP_MODERN, "requested", asked));
    }

    struct tl_mcp_call c = {.s = s, .id = id, .modern = era > 0, .arrived_ms = arrived_ms};
    const char *name = json_string_value(method);
    if (strcmp(name, "initialize") == 0)
        return do_initialize(s, id, params, c.modern);
    if (strcmp(name, "ping") == 0)
        return result_line(id, json_object(), c.modern);
    if (strcmp(name, "server/discover") == 0)
        return do_discover(id);
    if (strcmp(name, "tools/list") == 0)
        return do_tools_list(s, id, params, c.modern);
    if (strcmp(name, "tools/call") == 0)
        return do_tools_call(&c, params);
    if (strcmp(name, "resources/list") == 0)
        return do_resources_list(&c);
    if (strcmp(name, "resources/templates/list") == 0)
        return do_templates_list(&c);
    if (strcmp(name, "resources/read") == 0)
        return do_resources_read(&c, params);

    char msg[200];
    (void)snprintf(msg, sizeof(msg), "Method not found: %.128s", name);
    return tl_mcp_error_line(id, TL_MCP_METHOD_NOT_FOUND, msg);
}

char *tl_mcp_handle(struct tl_mcp_server *s, const char *msg, size_t len, int64_t arrived_ms)
{
    json_error_t jerr;
    json_t *req = json_loadb(msg, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    char *reply;

    if (req == NULL) {
        char text[300];

        (void)snprintf(text, sizeof(text), "Parse error: %s (at byte %d)", jerr.text,
                       jerr.position);
        return tl_mcp_error_line(NULL, TL_MCP_PARSE_ERROR, text);
    }
    if (json_is_array(req))
        reply = tl_mcp_error_line(NULL, TL_MCP_INVALID_REQUEST,
                                  "Invalid Request: batches are not supported (send one message "
                                  "per line)");
    else if (!json_is_object(req))
        reply = tl_mcp_error_line(NULL, TL_MCP_INVALID_REQUEST,
                                  "Invalid Request: a message is a JSON object");
    else
        reply = dispatch(s, req, arrived_ms);
    json_decref(req);
    return reply;
}

/* ---- the engine ---- */

struct tl_mcp_server *tl_mcp_server_new(const struct tl_mcp_config *cfg)
{
    struct tl_mcp_server *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cfg = *cfg;
    s->tools = tl_mcp_tools_new(cfg->allow_force);
    if (s->tools == NULL) {
        free(s);
        return NULL;
    }
    if (getrandom(&s->rng, sizeof(s->rng), GRND_NONBLOCK) != (ssize_t)sizeof(s->rng))
        s->rng = (uint64_t)tl_mcp_now_ms() ^ ((uint64_t)getpid() << 32);
    return s;
}

void tl_mcp_server_free(struct tl_mcp_server *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nheld; i++) {
        tl_lock_free(s->held[i].lock);
        free(s->held[i].key);
    }
    free(s->held);
    tl_manager_free(s->m);
    json_decref(s->tools);
    free(s);
}

size_t tl_mcp_release_all(struct tl_mcp_server *s, uint32_t deadline_ms, size_t *failed)
{
    size_t released = 0, bad = 0;

    for (size_t i = 0; i < s->nheld; i++) {
        const struct tl_release_opts ro = {.summary = "released by tasklock mcp: its client "
                                                      "disconnected",
                                           .deadline_ms = deadline_ms};
        tl_status st = tl_release_with(s->held[i].lock, &ro);

        if (st == TL_OK) {
            released++;
        } else if (st == TL_ENOTOWNER) { /* lost before: someone else's now, nothing to do */
            (void)fprintf(stderr, "tasklock: mcp: %s (token %llu) was lost before the end\n",
                          s->held[i].key, (unsigned long long)s->held[i].token);
        } else {
            bad++;
            (void)fprintf(stderr, "tasklock: mcp: could not release %s (token %llu): %s\n",
                          s->held[i].key, (unsigned long long)s->held[i].token, tl_errmsg(s->m));
        }
        tl_lock_free(s->held[i].lock);
        free(s->held[i].key);
    }
    s->nheld = 0;
    if (failed != NULL)
        *failed = bad;
    return released;
}

size_t tl_mcp_held_count(const struct tl_mcp_server *s)
{
    return s->nheld;
}

const char *tl_mcp_worker_id(const struct tl_mcp_server *s)
{
    return s->m != NULL ? s->worker_id : NULL;
}
