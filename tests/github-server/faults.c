/*
 * faults.c -- the fault knobs of POST /_admin/faults: parsing, matching, rendering.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void counted_clear(struct ghs_counted *c)
{
    free(c->method);
    free(c->endpoint);
    *c = (struct ghs_counted){0};
}

void ghs_faults_clear(struct ghs_faults *f)
{
    counted_clear(&f->post_commit_then_5xx);
    counted_clear(&f->secondary_limit);
    counted_clear(&f->primary_exhausted);
    counted_clear(&f->assignee_422);
    counted_clear(&f->drop_connections);
    counted_clear(&f->status_5xx);
    *f = (struct ghs_faults){
        .secondary_status = 403,
        .secondary_retry_after = -1,
        .primary_reset_in_s = 60,
    };
}

bool ghs_fault_take(struct ghs_counted *c, const char *method, const char *endpoint)
{
    if (c->count <= 0)
        return false;
    if (c->method && strcmp(c->method, method) != 0)
        return false;
    if (c->endpoint && strcmp(c->endpoint, endpoint) != 0)
        return false;
    c->count--;
    return true;
}

static bool get_count(json_t *v, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = json_integer_value(v);
    return true;
}

static int fail(char *err, size_t errlen, const char *key, const char *what)
{
    (void)snprintf(err, errlen, "faults: %s: %s", key, what);
    return -1;
}

/* A counted knob: N, or {"count":N, "method":M?, "endpoint":E?, ...extra keys}. `extra` lists
 * the knob's own extra keys, which the caller reads. */
static int parse_counted(json_t *v, const char *key, const char *const *extra,
                         struct ghs_counted *c, char *err, size_t errlen)
{
    int64_t n;

    if (json_is_integer(v)) {
        if (!get_count(v, &n))
            return fail(err, errlen, key, "must be a count >= 0");
        counted_clear(c);
        c->count = n;
        return 0;
    }
    if (!json_is_object(v))
        return fail(err, errlen, key, "must be a count or an object");
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        bool known =
            strcmp(k, "count") == 0 || strcmp(k, "method") == 0 || strcmp(k, "endpoint") == 0;
        for (size_t i = 0; extra && extra[i] && !known; i++)
            known = strcmp(k, extra[i]) == 0;
        if (!known)
            return fail(err, errlen, key, "unknown field in the object");
    }
    json_t *count = json_object_get(v, "count");
    json_t *method = json_object_get(v, "method");
    json_t *endpoint = json_object_get(v, "endpoint");
    if (!get_count(count, &n))
        return fail(err, errlen, key, "\"count\" must be a count >= 0");
    if ((method && !json_is_string(method) && !json_is_null(method)) ||
        (endpoint && !json_is_string(endpoint) && !json_is_null(endpoint)))
        return fail(err, errlen, key, "\"method\" and \"endpoint\" must be strings");
    counted_clear(c);
    c->count = n;
    if (json_is_string(method))
        c->method = strdup(json_string_value(method));
    if (json_is_string(endpoint))
        c->endpoint = strdup(json_string_value(endpoint));
    if ((json_is_string(method) && !c->method) || (json_is_string(endpoint) && !c->endpoint))
        return fail(err, errlen, key, "out of memory");
    return 0;
}

static int hide_one(struct ghs_server *s, json_t *v, char *err, size_t errlen)
{
    int64_t id, reads = 0, ms = 0;
    json_t *jreads = json_object_get(v, "reads");
    json_t *jms = json_object_get(v, "ms");

    if (!json_is_object(v) || !json_is_integer(json_object_get(v, "id")))
        return fail(err, errlen, "hide_comment", "needs {\"id\":ID, \"reads\":N?, \"ms\":T?}");
    id = json_integer_value(json_object_get(v, "id"));
    if ((jreads && !get_count(jreads, &reads)) || (jms && !get_count(jms, &ms)))
        return fail(err, errlen, "hide_comment", "\"reads\" and \"ms\" must be counts >= 0");
    if (!jreads && !jms)
        reads = 1;
    size_t i = ghs_comment_find(s, id);
    if (i == SIZE_MAX) {
        (void)snprintf(err, errlen, "faults: hide_comment: no comment %lld", (long long)id);
        return 1;
    }
    s->comments[i].hidden_reads = reads;
    s->comments[i].hidden_until_ms = ms > 0 ? ghs_mono_ms() + ms : 0;
    return 0;
}

int ghs_faults_apply_locked(struct ghs_server *s, json_t *body, char *err, size_t errlen)
{
    struct ghs_faults *f = &s->faults;
    json_t *clear = json_object_get(body, "clear");
    bool hang_count_given = json_object_get(body, "post_hang_count") != NULL;
    const char *key;
    json_t *v;
    int rc = 0;

    if (clear && !json_is_boolean(clear))
        return fail(err, errlen, "clear", "must be a boolean");
    if (json_is_true(clear))
        ghs_faults_clear(f);
    json_object_foreach(body, key, v)
    {
        int64_t n = 0;

        if (strcmp(key, "clear") == 0)
            continue;
        if (strcmp(key, "latency_ms") == 0 || strcmp(key, "visibility_lag_reads") == 0 ||
            strcmp(key, "visibility_lag_ms") == 0 || strcmp(key, "post_hang_ms") == 0 ||
            strcmp(key, "post_hang_count") == 0) {
            if (!get_count(v, &n))
                return fail(err, errlen, key, "must be an integer >= 0");
            if (strcmp(key, "latency_ms") == 0)
                f->latency_ms = n;
            else if (strcmp(key, "visibility_lag_reads") == 0)
                f->visibility_lag_reads = n;
            else if (strcmp(key, "visibility_lag_ms") == 0)
                f->visibility_lag_ms = n;
            else if (strcmp(key, "post_hang_count") == 0)
                f->post_hang_count = n;
            else {
                f->post_hang_ms = n;
                if (!hang_count_given)
                    f->post_hang_count = n > 0 ? 1 : 0;
            }
        } else if (strcmp(key, "post_commit_then_5xx") == 0) {
            rc = parse_counted(v, key, NULL, &f->post_commit_then_5xx, err, errlen);
        } else if (strcmp(key, "assignee_422") == 0) {
            rc = parse_counted(v, key, NULL, &f->assignee_422, err, errlen);
        } else if (strcmp(key, "drop_connections") == 0) {
            rc = parse_counted(v, key, NULL, &f->drop_connections, err, errlen);
        } else if (strcmp(key, "status_5xx") == 0) {
            rc = parse_counted(v, key, NULL, &f->status_5xx, err, errlen);
        } else if (strcmp(key, "secondary_limit") == 0) {
            static const char *const extra[] = {"status", "retry_after", NULL};
            json_t *st = json_object_get(v, "status");
            json_t *ra = json_object_get(v, "retry_after");
            int64_t status = 403, retry_after = -1;

            if (json_is_object(v)) {
                if (st && (!json_is_integer(st) ||
                           (json_integer_value(st) != 403 && json_integer_value(st) != 429)))
                    return fail(err, errlen, key, "\"status\" must be 403 or 429");
                if (st)
                    status = json_integer_value(st);
                if (ra && !json_is_null(ra) && !get_count(ra, &retry_after))
                    return fail(err, errlen, key, "\"retry_after\" must be seconds >= 0");
            }
            rc = parse_counted(v, key, extra, &f->secondary_limit, err, errlen);
            f->secondary_status = (int)status;
            f->secondary_retry_after = retry_after;
        } else if (strcmp(key, "primary_exhausted") == 0) {
            static const char *const extra[] = {"reset_in_s", NULL};
            json_t *rs = json_object_get(v, "reset_in_s");
            int64_t reset_in = 60;

            if (json_is_object(v) && rs && !get_count(rs, &reset_in))
                return fail(err, errlen, key, "\"reset_in_s\" must be seconds >= 0");
            rc = parse_counted(v, key, extra, &f->primary_exhausted, err, errlen);
            f->primary_reset_in_s = reset_in;
        } else if (strcmp(key, "hide_comment") == 0) {
            if (json_is_array(v)) {
                size_t i;
                json_t *e;
                json_array_foreach(v, i, e)
                {
                    rc = hide_one(s, e, err, errlen);
                    if (rc != 0)
                        break;
                }
            } else {
                rc = hide_one(s, v, err, errlen);
            }
        } else {
            return fail(err, errlen, key, "unknown knob");
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static json_t *counted_json(const struct ghs_counted *c)
{
    return json_pack("{s:I, s:o, s:o}", "count", (json_int_t)c->count, "method",
                     c->method ? json_string(c->method) : json_null(), "endpoint",
                     c->endpoint ? json_string(c->endpoint) : json_null());
}

json_t *ghs_faults_json(const struct ghs_faults *f)
{
    json_t *sec = counted_json(&f->secondary_limit);
    json_t *pri = counted_json(&f->primary_exhausted);

    if (sec) {
        (void)json_object_set_new(sec, "status", json_integer(f->secondary_status));
        (void)json_object_set_new(
            sec, "retry_after",
            f->secondary_retry_after < 0 ? json_null() : json_integer(f->secondary_retry_after));
    }
    if (pri)
        (void)json_object_set_new(pri, "reset_in_s", json_integer(f->primary_reset_in_s));
    return json_pack(
        "{s:I, s:I, s:I, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "latency_ms",
        (json_int_t)f->latency_ms, "visibility_lag_reads", (json_int_t)f->visibility_lag_reads,
        "visibility_lag_ms", (json_int_t)f->visibility_lag_ms, "post_commit_then_5xx",
        counted_json(&f->post_commit_then_5xx), "post_hang_ms", (json_int_t)f->post_hang_ms,
        "post_hang_count", (json_int_t)f->post_hang_count, "secondary_limit", sec,
        "primary_exhausted", pri, "assignee_422", counted_json(&f->assignee_422),
        "drop_connections", counted_json(&f->drop_connections), "status_5xx",
        counted_json(&f->status_5xx));
}
