/*
 * api.c -- the GitHub endpoints of PROTOCOL.md §3: routing and handlers. Handlers run with the
 * server mutex held and fill a struct ghs_resp; the pipeline in http.c adds the common headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server.h"

static const char *const ep_names[GHS_EP_COUNT] = {
    [GHS_EP_NONE] = "other",
    [GHS_EP_ISSUE_GET] = "GET /repos/{o}/{r}/issues/{n}",
    [GHS_EP_ISSUE_PATCH] = "PATCH /repos/{o}/{r}/issues/{n}",
    [GHS_EP_ASSIGNEES_ADD] = "POST /repos/{o}/{r}/issues/{n}/assignees",
    [GHS_EP_ASSIGNEES_REMOVE] = "DELETE /repos/{o}/{r}/issues/{n}/assignees",
    [GHS_EP_ISSUE_ASSIGNEE_CHECK] = "GET /repos/{o}/{r}/issues/{n}/assignees/{assignee}",
    [GHS_EP_REPO_ASSIGNEE_CHECK] = "GET /repos/{o}/{r}/assignees/{assignee}",
    [GHS_EP_REPO_ASSIGNEES] = "GET /repos/{o}/{r}/assignees",
    [GHS_EP_COMMENTS_LIST] = "GET /repos/{o}/{r}/issues/{n}/comments",
    [GHS_EP_REPO_COMMENTS] = "GET /repos/{o}/{r}/issues/comments",
    [GHS_EP_COMMENT_CREATE] = "POST /repos/{o}/{r}/issues/{n}/comments",
    [GHS_EP_COMMENT_GET] = "GET /repos/{o}/{r}/issues/comments/{id}",
    [GHS_EP_COMMENT_PATCH] = "PATCH /repos/{o}/{r}/issues/comments/{id}",
    [GHS_EP_COMMENT_DELETE] = "DELETE /repos/{o}/{r}/issues/comments/{id}",
    [GHS_EP_USER] = "GET /user",
    [GHS_EP_RATE_LIMIT] = "GET /rate_limit",
    [GHS_EP_ISSUES_LIST] = "GET /repos/{o}/{r}/issues",
    [GHS_EP_ISSUE_CREATE] = "POST /repos/{o}/{r}/issues",
};

const char *ghs_ep_name(enum ghs_ep ep)
{
    return ep >= 0 && ep < GHS_EP_COUNT ? ep_names[ep] : ep_names[GHS_EP_NONE];
}

/* ---- routing ---- */

#define MAX_SEGS 8

static bool positive(const char *text, int64_t *out)
{
    return ghs_parse_i64(text, out) && *out > 0;
}

void ghs_route_parse(const char *method, const char *path, struct ghs_route *rt)
{
    char seg[MAX_SEGS][GHS_SEG];
    size_t nseg = 0;
    const char *p = path;

    memset(rt, 0, sizeof(*rt));
    if (*p != '/')
        return;
    while (*p == '/') {
        const char *start = ++p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - start);
        if (n == 0 || n >= GHS_SEG || nseg == MAX_SEGS)
            return; /* empty segment (trailing slash, "//"), too long, too deep: 404 */
        memcpy(seg[nseg], start, n);
        seg[nseg++][n] = '\0';
    }
    if (*p != '\0')
        return;

    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    bool patch = strcmp(method, "PATCH") == 0;
    bool del = strcmp(method, "DELETE") == 0;

    if (nseg == 1 && get && strcmp(seg[0], "user") == 0) {
        rt->ep = GHS_EP_USER;
        return;
    }
    if (nseg == 1 && get && strcmp(seg[0], "rate_limit") == 0) {
        rt->ep = GHS_EP_RATE_LIMIT;
        return;
    }
    size_t i;
    if (nseg >= 3 && strcmp(seg[0], "repos") == 0) {
        memcpy(rt->owner, seg[1], sizeof(rt->owner));
        memcpy(rt->repo, seg[2], sizeof(rt->repo));
        i = 3;
    } else if (nseg >= 2 && strcmp(seg[0], "repositories") == 0 && positive(seg[1], &rt->repo_id)) {
        rt->by_id = true;
        i = 2;
    } else {
        return;
    }
    size_t rest = nseg - i;
    enum ghs_ep ep = GHS_EP_NONE;

    if (rest == 1 && (get || post) && strcmp(seg[i], "issues") == 0) {
        ep = get ? GHS_EP_ISSUES_LIST : GHS_EP_ISSUE_CREATE;
    } else if (rest >= 1 && strcmp(seg[i], "assignees") == 0) {
        if (rest == 1 && get) {
            ep = GHS_EP_REPO_ASSIGNEES;
        } else if (rest == 2 && get) {
            ep = GHS_EP_REPO_ASSIGNEE_CHECK;
            memcpy(rt->assignee, seg[i + 1], sizeof(rt->assignee));
        }
    } else if (rest >= 2 && strcmp(seg[i], "issues") == 0 && strcmp(seg[i + 1], "comments") == 0) {
        if (rest == 2 && get)
            ep = GHS_EP_REPO_COMMENTS;
        else if (rest == 3 && positive(seg[i + 2], &rt->comment_id))
            ep = get     ? GHS_EP_COMMENT_GET
                 : patch ? GHS_EP_COMMENT_PATCH
                 : del   ? GHS_EP_COMMENT_DELETE
                         : GHS_EP_NONE;
    } else if (rest >= 2 && strcmp(seg[i], "issues") == 0 && positive(seg[i + 1], &rt->number)) {
        size_t len = 0;
        for (size_t k = i + 2; k < nseg; k++) {
            int n = snprintf(rt->tail + len, sizeof(rt->tail) - len, "/%s", seg[k]);
            if (n < 0 || (size_t)n >= sizeof(rt->tail) - len)
                return;
            len += (size_t)n;
        }
        if (rest == 2)
            ep = get ? GHS_EP_ISSUE_GET : patch ? GHS_EP_ISSUE_PATCH : GHS_EP_NONE;
        else if (rest == 3 && strcmp(seg[i + 2], "comments") == 0)
            ep = get ? GHS_EP_COMMENTS_LIST : post ? GHS_EP_COMMENT_CREATE : GHS_EP_NONE;
        else if (rest == 3 && strcmp(seg[i + 2], "assignees") == 0)
            ep = post ? GHS_EP_ASSIGNEES_ADD : del ? GHS_EP_ASSIGNEES_REMOVE : GHS_EP_NONE;
        else if (rest == 4 && get && strcmp(seg[i + 2], "assignees") == 0) {
            ep = GHS_EP_ISSUE_ASSIGNEE_CHECK;
            memcpy(rt->assignee, seg[i + 3], sizeof(rt->assignee));
        }
    }
    rt->ep = ep;
}

/* ---- helpers ---- */

static void not_found(struct ghs_resp *r)
{
    ghs_resp_error(r, 404, "Not Found");
}

/* 422 "Validation Failed" (or `top`) with one entry in "errors". */
static void invalid(struct ghs_resp *r, const char *top, const char *resource, const char *field,
                    const char *code, const char *message)
{
    json_t *e = json_pack("{s:s, s:s, s:s}", "resource", resource, "field", field, "code", code);

    if (e && message)
        (void)json_object_set_new(e, "message", json_string(message));
    ghs_resp_json(r, 422,
                  json_pack("{s:s, s:[o], s:s, s:s}", "message", top ? top : "Validation Failed",
                            "errors", e, "documentation_url", "https://docs.github.com/rest",
                            "status", "422"));
}

/* The body checks every body-taking endpoint shares. */
static bool body_ok(const struct ghs_req *rq, struct ghs_resp *r)
{
    if (rq->bad_json) {
        ghs_resp_error(r, 400, "Problems parsing JSON");
        return false;
    }
    if (rq->not_object || !rq->json) {
        ghs_resp_error(r, 400, "Body should be a JSON object");
        return false;
    }
    return true;
}

/* Reads a comment "body"; false after answering 422. */
static bool comment_text(const struct ghs_req *rq, struct ghs_resp *r, const char **out)
{
    json_t *b = json_object_get(rq->json, "body");

    if (!b || json_is_null(b)) {
        invalid(r, NULL, "IssueComment", "body", "missing_field", NULL);
        return false;
    }
    if (!json_is_string(b)) {
        ghs_resp_error(r, 422,
                       "Invalid request.\n\nFor 'properties/body', the value is not a "
                       "string.");
        return false;
    }
    const char *text = json_string_value(b);
    if (*text == '\0') {
        invalid(r, NULL, "IssueComment", "body", "missing_field", "body cannot be blank");
        return false;
    }
    if (ghs_utf8_chars(text) > GHS_MAX_COMMENT_CHARS) {
        invalid(r, NULL, "IssueComment", "body", "custom",
                "body is too long (maximum is 65536 characters)");
        return false;
    }
    *out = text;
    return true;
}

/* A JSON array of strings, or false after answering 422. */
static bool string_array(json_t *v, const char *field, struct ghs_resp *r)
{
    size_t i;
    json_t *e;
    char msg[128];

    (void)snprintf(msg, sizeof(msg),
                   "Invalid request.\n\nFor 'properties/%s', the value is not "
                   "an array of strings.",
                   field);
    if (!json_is_array(v)) {
        ghs_resp_error(r, 422, msg);
        return false;
    }
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e)) {
            ghs_resp_error(r, 422, msg);
            return false;
        }
    }
    return true;
}

static bool is_assigned(const struct ghs_issue *is, size_t user)
{
    for (size_t i = 0; i < is->nassignees; i++)
        if (is->assignees[i] == user)
            return true;
    return false;
}

static void assign(const struct ghs_server *s, struct ghs_issue *is, const char *login)
{
    size_t u = ghs_user_find(s, login);

    /* Non-assignable logins are silently ignored, as GitHub does for users without push. */
    if (u != SIZE_MAX && s->users[u].assignable && !is_assigned(is, u) &&
        is->nassignees < GHS_MAX_ASSIGNEES)
        is->assignees[is->nassignees++] = u;
}

/* Answers the admin-set status of an issue; false if it is a normal one. */
static bool issue_status(const struct ghs_server *s, const struct ghs_route *rt,
                         const struct ghs_req *rq, size_t repo, const struct ghs_issue *is,
                         struct ghs_resp *r)
{
    if (is->status == 200)
        return false;
    if (is->status == 301) {
        char loc[512];

        (void)snprintf(loc, sizeof(loc), "%s/repositories/%lld/issues/%lld%s", rq->base,
                       (long long)s->repos[repo].id, (long long)is->moved_to, rt->tail);
        ghs_resp_json(r, 301,
                      json_pack("{s:s, s:s, s:s}", "message", "Moved Permanently", "url", loc,
                                "documentation_url", "https://docs.github.com/rest"));
        ghs_resp_header(r, "Location", "%s", loc);
    } else if (is->status == 410) {
        ghs_resp_error(r, 410, "This issue was deleted");
    } else {
        not_found(r);
    }
    return true;
}

/* ---- lists ---- */

#define MAX_PAGE INT64_C(1000000000)

struct paging {
    int64_t per_page, page;
};

static struct paging paging_of(const struct ghs_req *rq)
{
    struct paging pg = {.per_page = 30, .page = 1};
    const char *pp = ghs_query(rq, "per_page");
    const char *p = ghs_query(rq, "page");
    int64_t v;

    if (pp && positive(pp, &v))
        pg.per_page = v > 100 ? 100 : v;
    if (p && positive(p, &v))
        pg.page = v > MAX_PAGE ? MAX_PAGE : v; /* far past any end, and no overflow below */
    return pg;
}

static void url_encode(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 < outlen; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}

/* Link: next, last, first, prev -- URLs in the /repositories/{id} form. `query` is what goes
 * before per_page ("" or "since=...&"). */
static void link_header(struct ghs_resp *r, const char *base, const char *path, const char *query,
                        struct paging pg, size_t total)
{
    int64_t last = total == 0 ? 1 : ((int64_t)total + pg.per_page - 1) / pg.per_page;
    char link[2048];
    size_t n = 0;
    struct {
        const char *rel;
        int64_t page;
        bool on;
    } rels[] = {
        {"next", pg.page + 1, pg.page < last},
        {"last", last, pg.page < last},
        {"first", 1, pg.page > 1},
        {"prev", pg.page - 1, pg.page > 1},
    };

    link[0] = '\0';
    for (size_t i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
        if (!rels[i].on)
            continue;
        int w = snprintf(link + n, sizeof(link) - n,
                         "%s<%s%s?%sper_page=%lld&page=%lld>; rel=\"%s\"", n ? ", " : "", base,
                         path, query, (long long)pg.per_page, (long long)rels[i].page, rels[i].rel);
        if (w < 0 || (size_t)w >= sizeof(link) - n)
            return;
        n += (size_t)w;
    }
    if (n > 0)
        ghs_resp_header(r, "Link", "%s", link);
}

/* Answers one page of `items` (comment indices, already filtered and ordered). */
static void comment_page(const struct ghs_server *s, const struct ghs_req *rq, struct ghs_resp *r,
                         const size_t *items, size_t n, const char *link_path, const char *query)
{
    struct paging pg = paging_of(rq);
    json_t *arr = json_array();

    if (arr && (uint64_t)(pg.page - 1) <= n / (uint64_t)pg.per_page) {
        size_t from = (size_t)((pg.page - 1) * pg.per_page);
        for (size_t i = from; i < n && i < from + (size_t)pg.per_page; i++)
            (void)json_array_append_new(arr, ghs_comment_json(s, rq->base, &s->comments[items[i]]));
    }
    ghs_resp_json(r, 200, arr);
    link_header(r, rq->base, link_path, query, pg, n);
}

/* `since` from the query; false after answering 422. */
static bool since_of(const struct ghs_req *rq, struct ghs_resp *r, int64_t *since, char *query,
                     size_t qlen)
{
    const char *text = ghs_query(rq, "since");
    char enc[256];

    *since = INT64_MIN;
    query[0] = '\0';
    if (!text)
        return true;
    if (!ghs_parse_iso(text, since)) {
        invalid(r, NULL, "IssueComment", "since", "invalid",
                "since must be an ISO 8601 timestamp: YYYY-MM-DDTHH:MM:SSZ");
        return false;
    }
    url_encode(text, enc, sizeof(enc));
    (void)snprintf(query, qlen, "since=%s&", enc);
    return true;
}

/* The read of a comment list: hidden comments stay out, and each one that would have been in
 * it has one read less to wait. */
static bool visible_now(struct ghs_comment *c, int64_t mono)
{
    if (!ghs_comment_hidden(c, mono))
        return true;
    if (c->hidden_reads > 0)
        c->hidden_reads--;
    return false;
}

static void list_issue_comments(struct ghs_server *s, const struct ghs_req *rq, size_t repo,
                                const struct ghs_issue *is, struct ghs_resp *r)
{
    int64_t since;
    char query[320], path[128];

    if (!since_of(rq, r, &since, query, sizeof(query)))
        return;
    size_t *items = malloc((s->ncomments ? s->ncomments : 1) * sizeof(*items));
    if (!items) {
        ghs_resp_error(r, 500, "out of memory");
        return;
    }
    size_t n = 0;
    int64_t mono = ghs_mono_ms();
    for (size_t i = 0; i < s->ncomments; i++) {
        struct ghs_comment *c = &s->comments[i];
        if (c->repo == repo && c->number == is->number && c->updated >= since &&
            visible_now(c, mono))
            items[n++] = i;
    }
    (void)snprintf(path, sizeof(path), "/repositories/%lld/issues/%lld/comments",
                   (long long)s->repos[repo].id, (long long)is->number);
    comment_page(s, rq, r, items, n, path, query);
    free(items);
}

struct sort_key {
    int64_t key, id;
    size_t index;
};

static int cmp_asc(const void *a, const void *b)
{
    const struct sort_key *x = a, *y = b;

    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_desc(const void *a, const void *b)
{
    return cmp_asc(b, a);
}

static void list_repo_comments(struct ghs_server *s, const struct ghs_req *rq, size_t repo,
                               struct ghs_resp *r)
{
    const char *sort = ghs_query(rq, "sort");
    const char *dir = ghs_query(rq, "direction");
    int64_t since;
    char query[512], sq[320], path[128];

    if (sort && strcmp(sort, "created") != 0 && strcmp(sort, "updated") != 0) {
        invalid(r, NULL, "IssueComment", "sort", "invalid", "sort must be created or updated");
        return;
    }
    if (dir && strcmp(dir, "asc") != 0 && strcmp(dir, "desc") != 0) {
        invalid(r, NULL, "IssueComment", "direction", "invalid", "direction must be asc or desc");
        return;
    }
    if (!since_of(rq, r, &since, sq, sizeof(sq)))
        return;
    (void)snprintf(query, sizeof(query), "%s%s%s%s%s%s", sq, sort ? "sort=" : "", sort ? sort : "",
                   sort ? "&" : "", dir ? "direction=" : "", dir ? dir : "");
    if (dir)
        (void)snprintf(query + strlen(query), sizeof(query) - strlen(query), "&");

    struct sort_key *keys = malloc((s->ncomments ? s->ncomments : 1) * sizeof(*keys));
    size_t *items = malloc((s->ncomments ? s->ncomments : 1) * sizeof(*items));
    if (!keys || !items) {
        free(keys);
        free(items);
        ghs_resp_error(r, 500, "out of memory");
        return;
    }
    bool by_updated = sort && strcmp(sort, "updated") == 0;
    size_t n = 0;
    int64_t mono = ghs_mono_ms();
    for (size_t i = 0; i < s->ncomments; i++) {
        struct ghs_comment *c = &s->comments[i];
        if (c->repo == repo && c->updated >= since && visible_now(c, mono))
            keys[n++] =
                (struct sort_key){.key = by_updated ? c->updated : c->id, .id = c->id, .index = i};
    }
    qsort(keys, n, sizeof(*keys), dir && strcmp(dir, "desc") == 0 ? cmp_desc : cmp_asc);
    for (size_t i = 0; i < n; i++)
        items[i] = keys[i].index;
    (void)snprintf(path, sizeof(path), "/repositories/%lld/issues/comments",
                   (long long)s->repos[repo].id);
    comment_page(s, rq, r, items, n, path, query);
    free(keys);
    free(items);
}

static void list_assignees(struct ghs_server *s, const struct ghs_req *rq, size_t repo,
                           struct ghs_resp *r)
{
    struct paging pg = paging_of(rq);
    json_t *arr = json_array();
    size_t n = 0;
    char path[96];

    for (size_t i = 0; i < s->nusers && arr; i++) {
        if (!s->users[i].assignable)
            continue;
        if ((int64_t)n >= (pg.page - 1) * pg.per_page && (int64_t)n < pg.page * pg.per_page)
            (void)json_array_append_new(arr, ghs_user_json(s, rq->base, i));
        n++;
    }
    ghs_resp_json(r, 200, arr);
    (void)snprintf(path, sizeof(path), "/repositories/%lld/assignees",
                   (long long)s->repos[repo].id);
    link_header(r, rq->base, path, "", pg, n);
}

/* Whether issue `is` carries every label of the comma-separated `want` (case-insensitive). */
static bool has_labels(const struct ghs_issue *is, const char *want)
{
    for (const char *p = want; p && *p;) {
        size_t n = strcspn(p, ",");
        bool found = false;
        size_t i;
        json_t *l;
        json_array_foreach(is->labels, i, l)
        {
            const char *name = json_string_value(json_object_get(l, "name"));
            if (name && strlen(name) == n && strncasecmp(name, p, n) == 0)
                found = true;
        }
        if (n > 0 && !found)
            return false;
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

/* GET /repos/{o}/{r}/issues: state (open, closed, all; default open), labels (all of them),
 * sort (created, updated; default created), direction (asc, desc; default desc), paginated. */
static void list_issues(struct ghs_server *s, const struct ghs_req *rq, size_t repo,
                        struct ghs_resp *r)
{
    const char *state = ghs_query(rq, "state");
    const char *labels = ghs_query(rq, "labels");
    const char *sort = ghs_query(rq, "sort");
    const char *dir = ghs_query(rq, "direction");
    struct ghs_repo *rp = &s->repos[repo];
    char query[512], enc[256], path[96];

    if (!state)
        state = "open";
    if (strcmp(state, "open") != 0 && strcmp(state, "closed") != 0 && strcmp(state, "all") != 0) {
        invalid(r, NULL, "Issue", "state", "invalid", "state must be open, closed or all");
        return;
    }
    if (sort && strcmp(sort, "created") != 0 && strcmp(sort, "updated") != 0) {
        invalid(r, NULL, "Issue", "sort", "invalid", "sort must be created or updated");
        return;
    }
    if (dir && strcmp(dir, "asc") != 0 && strcmp(dir, "desc") != 0) {
        invalid(r, NULL, "Issue", "direction", "invalid", "direction must be asc or desc");
        return;
    }
    struct sort_key *keys = malloc((rp->nissues ? rp->nissues : 1) * sizeof(*keys));
    if (!keys) {
        ghs_resp_error(r, 500, "out of memory");
        return;
    }
    bool by_updated = sort && strcmp(sort, "updated") == 0;
    size_t n = 0;
    for (size_t i = 0; i < rp->nissues; i++) {
        const struct ghs_issue *is = &rp->issues[i];
        if (is->status != 200 || (strcmp(state, "open") == 0 && is->closed) ||
            (strcmp(state, "closed") == 0 && !is->closed) || (labels && !has_labels(is, labels)))
            continue;
        keys[n++] = (struct sort_key){
            .key = by_updated ? is->updated : is->created, .id = is->number, .index = i};
    }
    qsort(keys, n, sizeof(*keys), dir && strcmp(dir, "asc") == 0 ? cmp_asc : cmp_desc);
    struct paging pg = paging_of(rq);
    json_t *arr = json_array();
    if (arr && (uint64_t)(pg.page - 1) <= n / (uint64_t)pg.per_page) {
        size_t from = (size_t)((pg.page - 1) * pg.per_page);
        for (size_t i = from; i < n && i < from + (size_t)pg.per_page; i++)
            (void)json_array_append_new(
                arr, ghs_issue_json(s, rq->base, repo, &rp->issues[keys[i].index]));
    }
    free(keys);
    ghs_resp_json(r, 200, arr);
    url_encode(labels ? labels : "", enc, sizeof(enc));
    (void)snprintf(query, sizeof(query), "state=%s&%s%s%ssort=%s&direction=%s&", state,
                   labels ? "labels=" : "", labels ? enc : "", labels ? "&" : "",
                   sort ? sort : "created", dir ? dir : "desc");
    (void)snprintf(path, sizeof(path), "/repositories/%lld/issues", (long long)rp->id);
    link_header(r, rq->base, path, query, pg, n);
}

/* ---- issue handlers ---- */

static void patch_issue(struct ghs_server *s, const struct ghs_req *rq, size_t repo,
                        struct ghs_issue *is, struct ghs_resp *r)
{
    json_t *j = rq->json;
    json_t *title = json_object_get(j, "title");
    json_t *body = json_object_get(j, "body");
    json_t *state = json_object_get(j, "state");
    json_t *reason = json_object_get(j, "state_reason");
    json_t *labels = json_object_get(j, "labels");
    json_t *assignees = json_object_get(j, "assignees");
    json_t *assignee = json_object_get(j, "assignee");

    if (title && !json_is_string(title)) {
        invalid(r, NULL, "Issue", "title", "invalid", NULL);
        return;
    }
    if (body && !json_is_string(body) && !json_is_null(body)) {
        invalid(r, NULL, "Issue", "body", "invalid", NULL);
        return;
    }
    if (state && (!json_is_string(state) || (strcmp(json_string_value(state), "open") != 0 &&
                                             strcmp(json_string_value(state), "closed") != 0))) {
        invalid(r, NULL, "Issue", "state", "invalid", NULL);
        return;
    }
    if (reason && !json_is_null(reason) &&
        (!json_is_string(reason) || (strcmp(json_string_value(reason), "completed") != 0 &&
                                     strcmp(json_string_value(reason), "not_planned") != 0 &&
                                     strcmp(json_string_value(reason), "reopened") != 0))) {
        invalid(r, NULL, "Issue", "state_reason", "invalid", NULL);
        return;
    }
    if (labels) {
        size_t i;
        json_t *e;
        bool ok = json_is_array(labels);
        json_array_foreach(labels, i, e)
        {
            ok = ok && (json_is_string(e) ||
                        (json_is_object(e) && json_is_string(json_object_get(e, "name"))));
        }
        if (!ok) {
            invalid(r, NULL, "Issue", "labels", "invalid", NULL);
            return;
        }
    }
    if (assignees && !string_array(assignees, "assignees", r))
        return;
    if (assignee && !json_is_string(assignee) && !json_is_null(assignee)) {
        invalid(r, NULL, "Issue", "assignee", "invalid", NULL);
        return;
    }

    /* Everything checked: apply. */
    int64_t now = ghs_now_ms_locked(s) / 1000;
    if (title) {
        char *t = strdup(json_string_value(title));
        if (t) {
            free(is->title);
            is->title = t;
        }
    }
    if (body) {
        free(is->body);
        is->body = json_is_string(body) ? strdup(json_string_value(body)) : NULL;
    }
    const char *new_reason = NULL;
    bool set_reason = false;
    if (state) {
        bool closed = strcmp(json_string_value(state), "closed") == 0;
        if (closed != is->closed) {
            is->closed = closed;
            is->closed_at = closed ? now : 0;
            new_reason = closed ? "completed" : "reopened";
            set_reason = true;
        }
    }
    if (reason) {
        new_reason = json_is_string(reason) ? json_string_value(reason) : NULL;
        set_reason = true;
    }
    if (set_reason) {
        free(is->state_reason);
        is->state_reason = new_reason ? strdup(new_reason) : NULL;
    }
    if (labels) {
        json_t *arr = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(labels, i, e)
        {
            const char *name = json_is_string(e) ? json_string_value(e)
                                                 : json_string_value(json_object_get(e, "name"));
            (void)json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:b}", "id",
                                                       (json_int_t)i + 1000, "name", name, "color",
                                                       "ededed", "default", 0));
        }
        if (arr) {
            json_decref(is->labels);
            is->labels = arr;
        }
    }
    if (assignees || assignee) {
        is->nassignees = 0; /* PATCH replaces the whole set */
        if (assignees) {
            size_t i;
            json_t *e;
            json_array_foreach(assignees, i, e)
            {
                assign(s, is, json_string_value(e));
            }
        } else if (json_is_string(assignee)) {
            assign(s, is, json_string_value(assignee));
        }
    }
    is->updated = now;
    ghs_resp_json(r, 200, ghs_issue_json(s, rq->base, repo, is));
}

/* POST /repos/{o}/{r}/issues: a new open issue, numbered after the highest; `title` required,
 * `body`, `labels`, `assignees` as PATCH takes them. 201 with the issue. */
static void create_issue(struct ghs_server *s, const struct ghs_req *rq, size_t repo,
                         struct ghs_resp *r)
{
    json_t *title = json_object_get(rq->json, "title");

    if (title == NULL) {
        invalid(r, NULL, "Issue", "title", "missing_field", NULL);
        return;
    }
    if (!json_is_string(title) || json_string_length(title) == 0) {
        invalid(r, NULL, "Issue", "title", "invalid", NULL);
        return;
    }
    struct ghs_issue *is = ghs_issue_add(s, repo, ghs_issue_next_number(s, repo));
    if (is == NULL) {
        r->oom = true;
        return;
    }
    patch_issue(s, rq, repo, is, r);
    if (r->status == 200) {
        r->status = 201;
    } else { /* refused: no issue after all */
        struct ghs_repo *rp = &s->repos[repo];
        free(is->title);
        free(is->body);
        free(is->state_reason);
        json_decref(is->labels);
        rp->nissues--;
    }
}

static void change_assignees(struct ghs_server *s, const struct ghs_req *rq, const char *ep,
                             size_t repo, struct ghs_issue *is, bool add, struct ghs_resp *r)
{
    json_t *list = json_object_get(rq->json, "assignees");
    size_t i;
    json_t *e;

    if (list && !string_array(list, "assignees", r))
        return;
    if (add && ghs_fault_take(&s->faults.assignee_422, rq->method, ep)) {
        invalid(r, "Validation failed: Assignee has already been taken", "Issue", "assignees",
                "custom", "Assignee has already been taken");
        return;
    }
    json_array_foreach(list, i, e)
    {
        const char *login = json_string_value(e);
        if (add) {
            assign(s, is, login);
        } else {
            size_t u = ghs_user_find(s, login);
            for (size_t k = 0; u != SIZE_MAX && k < is->nassignees; k++) {
                if (is->assignees[k] == u) {
                    memmove(&is->assignees[k], &is->assignees[k + 1],
                            (is->nassignees - k - 1) * sizeof(is->assignees[0]));
                    is->nassignees--;
                    break;
                }
            }
        }
    }
    is->updated = ghs_now_ms_locked(s) / 1000;
    ghs_resp_json(r, add ? 201 : 200, ghs_issue_json(s, rq->base, repo, is));
}

static void create_comment(struct ghs_server *s, const struct ghs_req *rq, const char *ep,
                           size_t repo, struct ghs_issue *is, struct ghs_resp *r)
{
    const char *text;
    struct ghs_faults *f = &s->faults;

    if (!comment_text(rq, r, &text))
        return;
    struct ghs_comment *c = ghs_comment_add(s, repo, is, rq->user, text);
    if (!c) {
        ghs_resp_error(r, 500, "out of memory");
        return;
    }
    c->hidden_reads = f->visibility_lag_reads;
    c->hidden_until_ms = f->visibility_lag_ms > 0 ? ghs_mono_ms() + f->visibility_lag_ms : 0;
    /* Committed. What the client hears about it is another matter. */
    if (ghs_fault_take(&f->post_commit_then_5xx, rq->method, ep)) {
        ghs_resp_error(r, 502, "Server Error");
    } else {
        ghs_resp_json(r, 201, ghs_comment_json(s, rq->base, c));
        ghs_resp_header(r, "Location", "%s/repos/%s/%s/issues/comments/%lld", rq->base,
                        s->repos[repo].owner, s->repos[repo].name, (long long)c->id);
    }
    if (f->post_hang_count > 0 && f->post_hang_ms > 0) {
        f->post_hang_count--;
        r->delay_ms = f->post_hang_ms;
    }
}

/* ---- comment-by-id handlers ---- */

static void comment_by_id(struct ghs_server *s, const struct ghs_route *rt,
                          const struct ghs_req *rq, size_t repo, struct ghs_resp *r)
{
    size_t i = ghs_comment_find(s, rt->comment_id);

    if (i == SIZE_MAX || s->comments[i].repo != repo) {
        not_found(r);
        return;
    }
    struct ghs_comment *c = &s->comments[i];
    if (rt->ep == GHS_EP_COMMENT_GET) {
        ghs_resp_json(r, 200, ghs_comment_json(s, rq->base, c));
    } else if (rt->ep == GHS_EP_COMMENT_PATCH) {
        const char *text;
        if (!body_ok(rq, r))
            return;
        if (c->user != rq->user) {
            ghs_resp_error(r, 403, "Only the author of a comment can edit it.");
            return;
        }
        if (!comment_text(rq, r, &text))
            return;
        char *copy = strdup(text);
        if (!copy) {
            ghs_resp_error(r, 500, "out of memory");
            return;
        }
        free(c->body);
        c->body = copy;
        c->updated = ghs_now_ms_locked(s) / 1000;
        ghs_resp_json(r, 200, ghs_comment_json(s, rq->base, c));
    } else {
        if (c->user != rq->user && !s->users[rq->user].assignable) {
            ghs_resp_error(r, 403, "Must have push access to delete another user's comment.");
            return;
        }
        ghs_comment_remove(s, i);
        ghs_resp_empty(r, 204);
    }
}

/* ---- entry ---- */

static json_t *core_json(const struct ghs_server *s, const struct ghs_user *u)
{
    int64_t remaining = s->rate_limit > u->used ? s->rate_limit - u->used : 0;

    return json_pack("{s:I, s:I, s:I, s:I, s:s}", "limit", (json_int_t)s->rate_limit, "used",
                     (json_int_t)u->used, "remaining", (json_int_t)remaining, "reset",
                     (json_int_t)u->reset, "resource", "core");
}

void ghs_api_handle_locked(struct ghs_server *s, const struct ghs_route *rt,
                           const struct ghs_req *rq, struct ghs_resp *r)
{
    const char *ep = ghs_ep_name(rt->ep);
    size_t repo;

    switch (rt->ep) {
    case GHS_EP_NONE: not_found(r); return;
    case GHS_EP_USER: ghs_resp_json(r, 200, ghs_user_json(s, rq->base, rq->user)); return;
    case GHS_EP_RATE_LIMIT: {
        const struct ghs_user *u = &s->users[rq->user];
        int64_t reset = u->reset;
        ghs_resp_json(
            r, 200,
            json_pack("{s:{s:o, s:{s:i, s:i, s:i, s:I, s:s}, s:{s:i, s:i, s:i, s:I, s:s}}, s:o}",
                      "resources", "core", core_json(s, u), "search", "limit", 30, "used", 0,
                      "remaining", 30, "reset", (json_int_t)(reset), "resource", "search",
                      "graphql", "limit", 5000, "used", 0, "remaining", 5000, "reset",
                      (json_int_t)reset, "resource", "graphql", "rate", core_json(s, u)));
        return;
    }
    default: break;
    }

    repo = rt->by_id ? ghs_repo_find_id(s, rt->repo_id) : ghs_repo_find(s, rt->owner, rt->repo);
    if (repo == SIZE_MAX) {
        not_found(r);
        return;
    }
    switch (rt->ep) {
    case GHS_EP_REPO_ASSIGNEES: list_assignees(s, rq, repo, r); return;
    case GHS_EP_REPO_ASSIGNEE_CHECK: {
        size_t u = ghs_user_find(s, rt->assignee);
        if (u != SIZE_MAX && s->users[u].assignable)
            ghs_resp_empty(r, 204);
        else
            not_found(r);
        return;
    }
    case GHS_EP_REPO_COMMENTS: list_repo_comments(s, rq, repo, r); return;
    case GHS_EP_ISSUES_LIST: list_issues(s, rq, repo, r); return;
    case GHS_EP_ISSUE_CREATE:
        if (body_ok(rq, r))
            create_issue(s, rq, repo, r);
        return;
    case GHS_EP_COMMENT_GET:
    case GHS_EP_COMMENT_PATCH:
    case GHS_EP_COMMENT_DELETE: comment_by_id(s, rt, rq, repo, r); return;
    default: break;
    }

    struct ghs_issue *is = ghs_issue_find(s, repo, rt->number);
    if (!is) {
        not_found(r);
        return;
    }
    if (issue_status(s, rt, rq, repo, is, r))
        return;
    switch (rt->ep) {
    case GHS_EP_ISSUE_GET: ghs_resp_json(r, 200, ghs_issue_json(s, rq->base, repo, is)); break;
    case GHS_EP_ISSUE_PATCH:
        if (body_ok(rq, r))
            patch_issue(s, rq, repo, is, r);
        break;
    case GHS_EP_ASSIGNEES_ADD:
    case GHS_EP_ASSIGNEES_REMOVE:
        if (body_ok(rq, r))
            change_assignees(s, rq, ep, repo, is, rt->ep == GHS_EP_ASSIGNEES_ADD, r);
        break;
    case GHS_EP_ISSUE_ASSIGNEE_CHECK: {
        size_t u = ghs_user_find(s, rt->assignee);
        if (u != SIZE_MAX && s->users[u].assignable)
            ghs_resp_empty(r, 204);
        else
            not_found(r);
        break;
    }
    case GHS_EP_COMMENTS_LIST: list_issue_comments(s, rq, repo, is, r); break;
    case GHS_EP_COMMENT_CREATE:
        if (body_ok(rq, r))
            create_comment(s, rq, ep, repo, is, r);
        break;
    default: not_found(r); break;
    }
}
