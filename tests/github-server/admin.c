/*
 * admin.c -- the unauthenticated test-control API under /_admin/ (PROTOCOL.md §4).
 * Runs with the server mutex held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void bad(struct ghs_resp *r, const char *message)
{
    ghs_resp_json(r, 400, json_pack("{s:s}", "message", message));
}

static void missing(struct ghs_resp *r, const char *message)
{
    ghs_resp_json(r, 404, json_pack("{s:s}", "message", message));
}

static void ok(struct ghs_resp *r)
{
    ghs_resp_json(r, 200, json_pack("{s:b}", "ok", 1));
}

/* Optional integer field; false (after answering 400) when present with another type or below
 * `min`. */
static bool opt_int(json_t *obj, const char *key, int64_t min, int64_t *out, bool *given,
                    struct ghs_resp *r)
{
    json_t *v = json_object_get(obj, key);
    char msg[128];

    *given = v != NULL && !json_is_null(v);
    if (!*given)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min) {
        (void)snprintf(msg, sizeof(msg), "\"%s\" must be an integer >= %lld", key, (long long)min);
        bad(r, msg);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

static bool opt_str(json_t *obj, const char *key, const char **out, struct ghs_resp *r)
{
    json_t *v = json_object_get(obj, key);
    char msg[128];

    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        (void)snprintf(msg, sizeof(msg), "\"%s\" must be a string", key);
        bad(r, msg);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* "repo":"o/r" -> index; SIZE_MAX after answering. */
static size_t repo_of(const struct ghs_server *s, const char *full, struct ghs_resp *r)
{
    size_t repo;

    if (!full) {
        bad(r, "\"repo\" (\"owner/repo\") is required");
        return SIZE_MAX;
    }
    repo = ghs_repo_find_full(s, full);
    if (repo == SIZE_MAX)
        missing(r, "no such repo");
    return repo;
}

static void post_issue(struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r)
{
    json_t *j = rq->json;
    const char *full, *title, *state;
    int64_t number = 0, status = 200, moved_to = 0;
    bool has_number, has_status, has_moved;

    if (!opt_str(j, "repo", &full, r) || !opt_str(j, "title", &title, r) ||
        !opt_str(j, "state", &state, r) || !opt_int(j, "number", 1, &number, &has_number, r) ||
        !opt_int(j, "status", 0, &status, &has_status, r) ||
        !opt_int(j, "moved_to", 1, &moved_to, &has_moved, r))
        return;
    size_t repo = repo_of(s, full, r);
    if (repo == SIZE_MAX)
        return;
    if (state && strcmp(state, "open") != 0 && strcmp(state, "closed") != 0) {
        bad(r, "\"state\" must be open or closed");
        return;
    }
    json_t *labels = json_object_get(j, "labels");
    json_t *assignees = json_object_get(j, "assignees");
    size_t li;
    json_t *le;
    bool lok = labels == NULL || json_is_array(labels);
    json_array_foreach(labels, li, le)
    {
        lok = lok && json_is_string(le);
    }
    json_array_foreach(assignees, li, le)
    {
        lok = lok && json_is_string(le) && ghs_user_find(s, json_string_value(le)) != SIZE_MAX;
    }
    if (!lok || (assignees != NULL && !json_is_array(assignees))) {
        bad(r, "\"labels\" must be an array of strings, \"assignees\" of known logins");
        return;
    }
    if (has_status && status != 200 && status != 301 && status != 404 && status != 410) {
        bad(r, "\"status\" must be 200, 301, 404 or 410");
        return;
    }
    if (number > INT64_C(1000000000000)) {
        bad(r, "\"number\" is too large");
        return;
    }
    if (!has_number)
        number = ghs_issue_next_number(s, repo);
    struct ghs_issue *is = ghs_issue_find(s, repo, number);
    int code = is ? 200 : 201;
    if (!is)
        is = ghs_issue_add(s, repo, number);
    if (!is) {
        ghs_resp_error(r, 500, "out of memory");
        return;
    }
    if (has_status && status == 301 && !has_moved && is->moved_to == 0) {
        /* A transfer needs somewhere to land. Adding it may move `is`: find it again. */
        moved_to = ghs_issue_next_number(s, repo);
        if (!ghs_issue_add(s, repo, moved_to)) {
            ghs_resp_error(r, 500, "out of memory");
            return;
        }
        has_moved = true;
        is = ghs_issue_find(s, repo, number);
    }
    int64_t now = ghs_now_ms_locked(s) / 1000;
    if (title) {
        char *t = strdup(title);
        if (t) {
            free(is->title);
            is->title = t;
        }
    }
    if (state) {
        bool closed = strcmp(state, "closed") == 0;
        if (closed != is->closed) {
            is->closed = closed;
            is->closed_at = closed ? now : 0;
        }
    }
    if (labels) {
        json_t *arr = json_array();
        json_array_foreach(labels, li, le)
        {
            (void)json_array_append_new(arr, json_pack("{s:s}", "name", json_string_value(le)));
        }
        if (arr) {
            json_decref(is->labels);
            is->labels = arr;
            is->updated = now;
        }
    }
    if (assignees) {
        is->nassignees = 0; /* replaces the set: assignable or not, as the test says */
        json_array_foreach(assignees, li, le)
        {
            if (is->nassignees < GHS_MAX_ASSIGNEES)
                is->assignees[is->nassignees++] = ghs_user_find(s, json_string_value(le));
        }
        is->updated = now;
    }
    if (has_status)
        is->status = (int)status;
    if (has_moved)
        is->moved_to = moved_to;
    if (title || state)
        is->updated = now;
    ghs_resp_json(r, code,
                  json_pack("{s:o, s:i, s:o}", "issue", ghs_issue_json(s, rq->base, repo, is),
                            "status", is->status, "moved_to",
                            is->moved_to ? json_integer(is->moved_to) : json_null()));
}

static void post_comment(struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r)
{
    json_t *j = rq->json;
    const char *full, *login, *body;
    int64_t number = 0, reads = 0, ms = 0;
    bool has_number, has_reads, has_ms;

    if (!opt_str(j, "repo", &full, r) || !opt_str(j, "login", &login, r) ||
        !opt_str(j, "body", &body, r) || !opt_int(j, "number", 1, &number, &has_number, r) ||
        !opt_int(j, "hidden_reads", 0, &reads, &has_reads, r) ||
        !opt_int(j, "hidden_ms", 0, &ms, &has_ms, r))
        return;
    if (!has_number || !login || !*login || !body) {
        bad(r, "\"number\", \"login\" and \"body\" are required");
        return;
    }
    size_t repo = repo_of(s, full, r);
    if (repo == SIZE_MAX)
        return;
    struct ghs_issue *is = ghs_issue_find(s, repo, number);
    if (!is) {
        missing(r, "no such issue");
        return;
    }
    size_t user = ghs_user_add(s, login);
    struct ghs_comment *c = user == SIZE_MAX ? NULL : ghs_comment_add(s, repo, is, user, body);
    if (!c) {
        ghs_resp_error(r, 500, "out of memory");
        return;
    }
    c->hidden_reads = reads;
    c->hidden_until_ms = ms > 0 ? ghs_mono_ms() + ms : 0;
    ghs_resp_json(r, 201, ghs_comment_json(s, rq->base, c));
}

static void get_comments(struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r)
{
    const char *full = ghs_query(rq, "repo");
    const char *num = ghs_query(rq, "number");
    int64_t number;

    if (!num || !ghs_parse_i64(num, &number)) {
        bad(r, "query needs repo=owner/repo&number=N");
        return;
    }
    size_t repo = repo_of(s, full, r);
    if (repo == SIZE_MAX)
        return;
    if (!ghs_issue_find(s, repo, number)) {
        missing(r, "no such issue");
        return;
    }
    json_t *arr = json_array();
    int64_t mono = ghs_mono_ms();
    for (size_t i = 0; i < s->ncomments && arr; i++) {
        const struct ghs_comment *c = &s->comments[i];
        if (c->repo != repo || c->number != number)
            continue;
        json_t *cj = ghs_comment_json(s, rq->base, c);
        if (cj)
            (void)json_object_set_new(cj, "tl_hidden", json_boolean(ghs_comment_hidden(c, mono)));
        (void)json_array_append_new(arr, cj);
    }
    ghs_resp_json(r, 200, arr);
}

static void post_user(struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r)
{
    const char *login, *token;
    json_t *assignable = json_object_get(rq->json, "assignable");

    if (!opt_str(rq->json, "login", &login, r) || !opt_str(rq->json, "token", &token, r))
        return;
    if (!login || !*login) {
        bad(r, "\"login\" is required");
        return;
    }
    if (token && !*token) {
        bad(r, "\"token\" must not be empty");
        return;
    }
    if (assignable && !json_is_boolean(assignable)) {
        bad(r, "\"assignable\" must be a boolean");
        return;
    }
    size_t u = ghs_user_add(s, login);
    if (u == SIZE_MAX || (token && ghs_token_add(s, token, u) != 0)) {
        ghs_resp_error(r, 500, "out of memory");
        return;
    }
    if (assignable)
        s->users[u].assignable = json_is_true(assignable);
    ghs_resp_json(r, 200,
                  json_pack("{s:s, s:I, s:b}", "login", s->users[u].login, "id",
                            (json_int_t)s->users[u].id, "assignable", s->users[u].assignable));
}

static void clock_answer(struct ghs_server *s, struct ghs_resp *r)
{
    char now[32];
    int64_t ms = ghs_now_ms_locked(s);

    ghs_fmt_iso(ms / 1000, now);
    ghs_resp_json(r, 200,
                  json_pack("{s:I, s:s, s:I}", "offset_ms", (json_int_t)s->clock_offset_ms, "now",
                            now, "now_epoch_s", (json_int_t)(ms / 1000)));
}

static void post_clock(struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r)
{
    int64_t offset = 0, advance = 0;
    bool has_offset, has_advance;
    const int64_t limit = INT64_C(100) * 365 * 86400 * 1000; /* a century either way */

    if (!opt_int(rq->json, "offset_ms", -limit, &offset, &has_offset, r) ||
        !opt_int(rq->json, "advance_ms", -limit, &advance, &has_advance, r))
        return;
    if (offset > limit || advance > limit) {
        bad(r, "clock offsets are limited to a century");
        return;
    }
    if (has_offset)
        s->clock_offset_ms = offset;
    if (has_advance) {
        int64_t next = s->clock_offset_ms + advance;
        if (next < -limit || next > limit) {
            bad(r, "clock offsets are limited to a century");
            return;
        }
        s->clock_offset_ms = next;
    }
    clock_answer(s, r);
}

static void rate_answer(struct ghs_server *s, struct ghs_resp *r)
{
    json_t *logins = json_object();

    for (size_t i = 0; i < s->nusers && logins; i++) {
        const struct ghs_user *u = &s->users[i];
        int64_t remaining = s->rate_limit > u->used ? s->rate_limit - u->used : 0;
        (void)json_object_set_new(logins, u->login,
                                  json_pack("{s:I, s:I, s:I}", "used", (json_int_t)u->used,
                                            "remaining", (json_int_t)remaining, "reset",
                                            (json_int_t)u->reset));
    }
    ghs_resp_json(r, 200,
                  json_pack("{s:I, s:o}", "limit", (json_int_t)s->rate_limit, "logins", logins));
}

static void post_rate(struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r)
{
    const char *login;
    int64_t limit = 0, used = 0, reset_in = 0;
    bool has_limit, has_used, has_reset;

    if (!opt_str(rq->json, "login", &login, r) ||
        !opt_int(rq->json, "limit", 0, &limit, &has_limit, r) ||
        !opt_int(rq->json, "used", 0, &used, &has_used, r) ||
        !opt_int(rq->json, "reset_in_s", 0, &reset_in, &has_reset, r))
        return;
    if ((has_used || has_reset) && !login) {
        bad(r, "\"used\" and \"reset_in_s\" need \"login\"");
        return;
    }
    size_t u = login ? ghs_user_find(s, login) : SIZE_MAX;
    if (login && u == SIZE_MAX) {
        missing(r, "no such login");
        return;
    }
    if (has_limit)
        s->rate_limit = limit;
    if (u != SIZE_MAX) {
        ghs_budget_touch_locked(s, &s->users[u]);
        if (has_used)
            s->users[u].used = used;
        if (has_reset)
            s->users[u].reset = ghs_now_ms_locked(s) / 1000 + reset_in;
    }
    rate_answer(s, r);
}

static void post_faults(struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r)
{
    char err[256];
    int rc = ghs_faults_apply_locked(s, rq->json, err, sizeof(err));

    if (rc < 0)
        bad(r, err);
    else if (rc > 0)
        missing(r, err);
    else
        ghs_resp_json(r, 200, ghs_faults_json(&s->faults));
}

static void get_stats(struct ghs_server *s, struct ghs_resp *r)
{
    const struct ghs_stats *st = &s->stats;

    ghs_resp_json(r, 200,
                  json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "total", (json_int_t)st->total,
                            "writes", (json_int_t)st->writes, "not_modified",
                            (json_int_t)st->not_modified, "dropped", (json_int_t)st->dropped,
                            "by_endpoint", json_deep_copy(st->by_endpoint), "by_status",
                            json_deep_copy(st->by_status), "by_login",
                            json_deep_copy(st->by_login)));
}

void ghs_admin_handle_locked(struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r)
{
    const char *what = rq->path + strlen("/_admin/");
    bool get = strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0;
    bool post = strcmp(rq->method, "POST") == 0;

    if (post && rq->bad_json) {
        bad(r, "Problems parsing JSON");
        return;
    }
    if (post && !rq->json) {
        bad(r, "Body should be a JSON object");
        return;
    }
    if (post && strcmp(what, "reset") == 0) {
        if (ghs_state_reset_locked(s) != 0)
            ghs_resp_error(r, 500, "out of memory");
        else
            ok(r);
    } else if (post && strcmp(what, "issues") == 0) {
        post_issue(s, rq, r);
    } else if (post && strcmp(what, "comments") == 0) {
        post_comment(s, rq, r);
    } else if (get && strcmp(what, "comments") == 0) {
        get_comments(s, rq, r);
    } else if (post && strcmp(what, "users") == 0) {
        post_user(s, rq, r);
    } else if (get && strcmp(what, "clock") == 0) {
        clock_answer(s, r);
    } else if (post && strcmp(what, "clock") == 0) {
        post_clock(s, rq, r);
    } else if (get && strcmp(what, "rate_limit") == 0) {
        rate_answer(s, r);
    } else if (post && strcmp(what, "rate_limit") == 0) {
        post_rate(s, rq, r);
    } else if (get && strcmp(what, "faults") == 0) {
        ghs_resp_json(r, 200, ghs_faults_json(&s->faults));
    } else if (post && strcmp(what, "faults") == 0) {
        post_faults(s, rq, r);
    } else if (get && strcmp(what, "stats") == 0) {
        get_stats(s, r);
    } else if (post && strcmp(what, "stats/reset") == 0) {
        ghs_stats_clear(&s->stats);
        ok(r);
    } else {
        missing(r, "Not Found");
    }
}
