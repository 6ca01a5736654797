/*
 * json.c -- the lock metadata, in the seed's JSON shape:
 *   {"lock":{"worker_id","node_id","claimed_at","heartbeat_last","task_info":{...},
 *            "token","lock_timeout_ms"}}
 * Metadata read back from a store may have been written by anyone (a GitHub comment, a Redis
 * value), so decoding checks every field and never trusts sizes or types.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tl.h"

/*
 * The longest metadata text accepted: a task info of TL_META_MAX bytes plus the lock's own
 * fields, which take under 800 bytes (ids of TL_ID_MAX bytes, each byte escaped at most to two).
 * With TL_META_MAX alone, a lock with the largest task info could not be read back.
 */
#define META_TEXT_MAX (TL_META_MAX + 1024)

static void set_err(char *err, const char *fmt, ...) TL_PRINTF(2, 3);

static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    tl__vformat(err, fmt, ap);
    va_end(ap);
}

char *tl__meta_encode(const struct tl_info *info)
{
    char claimed[TL_ISO_SIZE], beat[TL_ISO_SIZE];
    json_t *task = NULL;

    if (info->task_info != NULL)
        task = json_loads(info->task_info, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(task)) {
        json_decref(task);
        task = json_object();
    }
    tl__format_iso(info->claimed_at_ms, claimed);
    tl__format_iso(info->heartbeat_at_ms, beat);

    /* "o" steals the reference to task; json_pack frees it on failure too. */
    json_t *root = json_pack(
        "{s:{s:s, s:s, s:s, s:s, s:o, s:I, s:I}}", "lock", "worker_id",
        info->worker_id ? info->worker_id : "", "node_id", info->node_id ? info->node_id : "",
        "claimed_at", claimed, "heartbeat_last", beat, "task_info", task, "token",
        (json_int_t)info->token, "lock_timeout_ms", (json_int_t)info->lock_timeout_ms);
    if (root == NULL)
        return NULL;
    /* Exclusive holders say nothing more: the text is as it was before shared holders. */
    if (info->mode == TL_SHARED) {
        json_t *lock = json_object_get(root, "lock");
        if (json_object_set_new(lock, "mode", json_string("shared")) != 0 ||
            (info->slots != 0 &&
             json_object_set_new(lock, "slots", json_integer((json_int_t)info->slots)) != 0)) {
            json_decref(root);
            return NULL;
        }
    }

    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        return NULL;

    /* Hand out memory from our allocator, so callers free everything the same way. */
    char *out = tl__strdup(text);
    free(text);
    return out;
}

static const char *get_id(json_t *lock, const char *field, char *err)
{
    json_t *v = json_object_get(lock, field);

    if (!json_is_string(v)) {
        set_err(err, "metadata: \"%s\" must be a string", field);
        return NULL;
    }

    const char *s = json_string_value(v);
    const char *why = tl__check_id(s, TL_ID_MAX);
    if (why != NULL) {
        set_err(err, "metadata: \"%s\" %s", field, why);
        return NULL;
    }
    return s;
}

static bool get_time(json_t *lock, const char *field, int64_t *out, char *err)
{
    json_t *v = json_object_get(lock, field);

    if (!json_is_string(v) || !tl__parse_iso(json_string_value(v), out)) {
        set_err(err, "metadata: \"%s\" must be an ISO-8601 UTC time", field);
        return false;
    }
    return true;
}

static bool get_uint(json_t *lock, const char *field, json_int_t max, json_int_t *out, char *err)
{
    json_t *v = json_object_get(lock, field);

    *out = 0;
    if (v == NULL)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        set_err(err, "metadata: \"%s\" must be an integer from 0 to %lld", field, (long long)max);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

tl_status tl__meta_decode(const char *text, size_t len, const char *key, struct tl_record *out,
                          char *err)
{
    json_error_t jerr;
    tl_status st = TL_EINVAL;

    memset(out, 0, sizeof(*out));
    if (text == NULL || len == 0) {
        set_err(err, "metadata: empty");
        return TL_EINVAL;
    }
    if (len > META_TEXT_MAX) {
        set_err(err, "metadata: %zu bytes, over the limit of %zu", len, META_TEXT_MAX);
        return TL_EINVAL;
    }

    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        set_err(err, "metadata: not JSON: %s at line %d column %d", jerr.text, jerr.line,
                jerr.column);
        return TL_EINVAL;
    }

    json_t *lock = json_object_get(root, "lock");
    if (!json_is_object(root) || !json_is_object(lock)) {
        set_err(err, "metadata: expected an object with a \"lock\" object");
        goto done;
    }

    const char *worker = get_id(lock, "worker_id", err);
    const char *node = worker ? get_id(lock, "node_id", err) : NULL;
    json_int_t token, timeout;
    if (node == NULL || !get_time(lock, "claimed_at", &out->info.claimed_at_ms, err) ||
        !get_time(lock, "heartbeat_last", &out->info.heartbeat_at_ms, err) ||
        !get_uint(lock, "token", INT64_MAX, &token, err) ||
        !get_uint(lock, "lock_timeout_ms", TL_DURATION_MAX_MS, &timeout, err))
        goto done;

    json_t *mode = json_object_get(lock, "mode");
    json_int_t slots;
    if (mode != NULL &&
        (!json_is_string(mode) || (strcmp(json_string_value(mode), "shared") != 0 &&
                                   strcmp(json_string_value(mode), "exclusive") != 0))) {
        set_err(err, "metadata: \"mode\" must be \"shared\" or \"exclusive\"");
        goto done;
    }
    if (!get_uint(lock, "slots", TL_SLOTS_MAX, &slots, err))
        goto done;
    out->info.mode =
        mode != NULL && strcmp(json_string_value(mode), "shared") == 0 ? TL_SHARED : TL_EXCLUSIVE;
    if (slots != 0 && out->info.mode != TL_SHARED) {
        set_err(err, "metadata: \"slots\" given for an exclusive lock");
        goto done;
    }
    out->info.slots = (uint32_t)slots;

    json_t *task = json_object_get(lock, "task_info");
    if (task != NULL && !json_is_object(task)) {
        set_err(err, "metadata: \"task_info\" must be an object");
        goto done;
    }

    char *task_text = task ? json_dumps(task, JSON_COMPACT) : NULL;
    out->info.task_info = tl__strdup(task_text ? task_text : "{}");
    free(task_text);
    out->info.key = key ? tl__strdup(key) : NULL;
    out->info.worker_id = tl__strdup(worker);
    out->info.node_id = tl__strdup(node);
    out->info.token = (uint64_t)token;
    out->info.lock_timeout_ms = (uint32_t)timeout;
    if (out->info.task_info == NULL || (key && out->info.key == NULL) ||
        out->info.worker_id == NULL || out->info.node_id == NULL) {
        set_err(err, "metadata: out of memory");
        st = TL_ENOMEM;
        goto done;
    }
    st = TL_OK;
done:
    json_decref(root);
    if (st != TL_OK)
        tl__record_clear(out);
    return st;
}

tl_status tl__task_info_normalize(const char *text, char **out, char *err)
{
    json_error_t jerr;

    *out = NULL;
    if (text == NULL || text[0] == '\0') {
        *out = tl__strdup("{}");
        return *out ? TL_OK : TL_ENOMEM;
    }

    size_t len = strlen(text);
    if (len > TL_META_MAX) {
        set_err(err, "task info: %zu bytes, over the limit of %zu", len, TL_META_MAX);
        return TL_EINVAL;
    }

    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL) {
        set_err(err, "task info: not JSON: %s at column %d", jerr.text, jerr.column);
        return TL_EINVAL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        set_err(err, "task info: must be a JSON object");
        return TL_EINVAL;
    }

    char *dumped = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (dumped == NULL)
        return TL_ENOMEM;
    /* The limit is on what is stored: the compact text can be longer ("1e9": 1000000000.0). */
    len = strlen(dumped);
    if (len > TL_META_MAX) {
        free(dumped);
        set_err(err, "task info: %zu bytes once normalised, over the limit of %zu", len,
                TL_META_MAX);
        return TL_EINVAL;
    }
    *out = tl__strdup(dumped);
    free(dumped);
    return *out ? TL_OK : TL_ENOMEM;
}

char *tl_info_to_json(const struct tl_info *info)
{
    return info == NULL ? NULL : tl__meta_encode(info);
}
