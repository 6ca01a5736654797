/*
 * shapes.c -- the JSON shapes of --json, shared by the commands and `tasklock serve`.
 */
#include "shapes.h"

#include "cli.h"

json_t *tl_cli_list_item_json(const struct tl_info *info)
{
    char *meta = tl_info_to_json(info);
    json_t *one = tl_cli_lock_json(info->key, meta, true, info->stale);

    tl_free(meta);
    if (one != NULL &&
        json_object_set_new(one, "waiting", json_integer((json_int_t)info->waiting)) != 0) {
        json_decref(one);
        one = NULL;
    }
    return one;
}

json_t *tl_cli_list_json(struct tl_info *const *infos, size_t n)
{
    json_t *locks = json_array();

    for (size_t i = 0; locks != NULL && i < n; i++) {
        if (json_array_append_new(locks, tl_cli_list_item_json(infos[i])) != 0) {
            json_decref(locks);
            locks = NULL;
        }
    }
    return locks != NULL ? json_pack("{s:o}", "locks", locks) : NULL;
}

json_t *tl_cli_waiters_json(struct tl_waiter *const *ws, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr != NULL && i < n; i++) {
        char since[40], beat[40];

        tl_cli_format_time(ws[i]->since_ms, true, since, sizeof(since));
        tl_cli_format_time(ws[i]->heartbeat_at_ms, true, beat, sizeof(beat));
        json_t *one =
            json_pack("{s:s, s:s, s:i, s:I, s:s, s:s, s:I, s:b}", "worker_id", ws[i]->worker_id,
                      "node_id", ws[i]->node_id, "priority", (int)ws[i]->priority, "seq",
                      (json_int_t)ws[i]->seq, "since", since, "heartbeat_last", beat, "timeout_ms",
                      (json_int_t)ws[i]->timeout_ms, "dead", ws[i]->dead);
        if (json_array_append_new(arr, one) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

json_t *tl_cli_status_json(const char *key, const struct tl_info *info, struct tl_info *const *hs,
                           size_t nh, struct tl_waiter *const *ws, size_t nw, bool has_line)
{
    json_t *doc;

    if (info == NULL) {
        doc = json_pack("{s:s, s:b, s:n}", "key", key, "held", 0, "lock");
    } else {
        char *meta = tl_info_to_json(info);
        json_t *one = tl_cli_lock_json(key, meta, true, info->stale);

        tl_free(meta);
        doc = one != NULL ? json_pack("{s:s, s:b, s:O}", "key", key, "held", 1, "lock",
                                      json_object_get(one, "lock"))
                          : NULL;
        json_decref(one);
    }
    if (doc != NULL && info != NULL) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < nh; i++) {
            char *meta = tl_info_to_json(hs[i]);
            json_t *one = tl_cli_lock_json(key, meta, true, hs[i]->stale);

            tl_free(meta);
            if (one == NULL || json_array_append(arr, json_object_get(one, "lock")) != 0) {
                json_decref(arr);
                arr = NULL;
            }
            json_decref(one);
        }
        if (arr == NULL || json_object_set_new(doc, "holders", arr) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    }
    if (doc != NULL && has_line) {
        json_t *line = tl_cli_waiters_json(ws, nw);

        if (line == NULL || json_object_set_new(doc, "waiters", line) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    }
    return doc;
}

json_t *tl_cli_event_json(const struct tl_event *e)
{
    char at[48];
    json_t *detail = e->detail != NULL ? json_string(e->detail) : json_null();

    tl_cli_format_time(e->at_ms, true, at, sizeof(at));
    if (detail == NULL)
        detail = json_string("(not UTF-8)");
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:o}", "at", at, "event",
                     tl_event_kind_name(e->kind), "key", e->key, "token", (json_int_t)e->token,
                     "worker_id", e->worker_id, "node_id", e->node_id, "detail", detail);
}

json_t *tl_cli_log_json(struct tl_event *const *events, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr != NULL && i < n; i++) {
        if (json_array_append_new(arr, tl_cli_event_json(events[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr != NULL ? json_pack("{s:o}", "events", arr) : NULL;
}
