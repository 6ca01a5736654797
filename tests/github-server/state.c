/*
 * state.c -- the server's model: users and tokens, repos, issues, comments, the server clock,
 * primary budgets, request counters, and how they render as GitHub JSON.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server.h"

static char *dup_str(const char *text)
{
    size_t n = strlen(text) + 1;
    char *p = malloc(n);

    if (p)
        memcpy(p, text, n);
    return p;
}

/* ---- time ---- */

int64_t ghs_now_ms_locked(const struct ghs_server *s)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + s->clock_offset_ms;
}

int64_t ghs_mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms);
 * gmtime/timegm are avoided because timegm is not POSIX. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

struct civil {
    int64_t y, m, d, hh, mm, ss, wday;
};

static struct civil civil_from_epoch(int64_t t)
{
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t secs = t - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    struct civil c = {
        .d = doy - (153 * mp + 2) / 5 + 1,
        .m = mp < 10 ? mp + 3 : mp - 9,
        .hh = secs / 3600,
        .mm = secs / 60 % 60,
        .ss = secs % 60,
        .wday = ((days % 7) + 11) % 7, /* 1970-01-01 was a Thursday (4) */
    };

    c.y = yoe + era * 400 + (c.m <= 2);
    return c;
}

void ghs_fmt_iso(int64_t epoch_s, char out[32])
{
    struct civil c = civil_from_epoch(epoch_s);

    (void)snprintf(out, 32, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", (long long)c.y,
                   (long long)c.m, (long long)c.d, (long long)c.hh, (long long)c.mm,
                   (long long)c.ss);
}

void ghs_fmt_imf(int64_t epoch_s, char out[40])
{
    static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct civil c = civil_from_epoch(epoch_s);

    (void)snprintf(out, 40, "%s, %02lld %s %04lld %02lld:%02lld:%02lld GMT", wdays[c.wday],
                   (long long)c.d, months[c.m - 1], (long long)c.y, (long long)c.hh,
                   (long long)c.mm, (long long)c.ss);
}

static bool digits(const char *p, int n, int64_t *out)
{
    int64_t v = 0;

    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

bool ghs_parse_iso(const char *text, int64_t *epoch_s)
{
    int64_t y, mo, d, h, mi, sec, oh = 0, om = 0;
    const char *p = text;

    if (strlen(text) < 19 || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) ||
        p[7] != '-' || !digits(p + 8, 2, &d) || (p[10] != 'T' && p[10] != 't') ||
        !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &mi) || p[16] != ':' ||
        !digits(p + 17, 2, &sec))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    p += 19;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++)
            n++;
        if (n == 0 || n > 9)
            return false;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        /* UTC */
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && digits(p + 1, 2, &oh) && p[3] == ':' &&
               digits(p + 4, 2, &om)) {
        if (oh > 23 || om > 59)
            return false;
        if (*p == '-') {
            oh = -oh;
            om = -om;
        }
    } else {
        return false;
    }
    *epoch_s = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - oh * 3600 - om * 60;
    return true;
}

bool ghs_parse_i64(const char *text, int64_t *out)
{
    size_t n = strlen(text);

    if (n == 0 || n > 18)
        return false;
    return digits(text, (int)n, out);
}

size_t ghs_utf8_chars(const char *text)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        n += (*p & 0xC0) != 0x80;
    return n;
}

/* ---- users, tokens, repos, issues, comments ---- */

size_t ghs_user_find(const struct ghs_server *s, const char *login)
{
    for (size_t i = 0; i < s->nusers; i++)
        if (strcasecmp(s->users[i].login, login) == 0)
            return i;
    return SIZE_MAX;
}

size_t ghs_user_add(struct ghs_server *s, const char *login)
{
    size_t i = ghs_user_find(s, login);

    if (i != SIZE_MAX)
        return i;
    struct ghs_user *users = realloc(s->users, (s->nusers + 1) * sizeof(*users));
    if (!users)
        return SIZE_MAX;
    s->users = users;
    char *copy = dup_str(login);
    if (!copy)
        return SIZE_MAX;
    users[s->nusers] = (struct ghs_user){
        .login = copy,
        .id = GHS_USER_ID_BASE + (int64_t)s->nusers + 1,
    };
    return s->nusers++;
}

size_t ghs_token_user(const struct ghs_server *s, const char *token)
{
    for (size_t i = 0; i < s->ntokens; i++)
        if (strcmp(s->tokens[i].token, token) == 0)
            return s->tokens[i].user;
    return SIZE_MAX;
}

int ghs_token_add(struct ghs_server *s, const char *token, size_t user)
{
    for (size_t i = 0; i < s->ntokens; i++) {
        if (strcmp(s->tokens[i].token, token) == 0) {
            s->tokens[i].user = user; /* a token names one login: the last word wins */
            return 0;
        }
    }
    struct ghs_token *tokens = realloc(s->tokens, (s->ntokens + 1) * sizeof(*tokens));
    if (!tokens)
        return -1;
    s->tokens = tokens;
    char *copy = dup_str(token);
    if (!copy)
        return -1;
    tokens[s->ntokens++] = (struct ghs_token){.token = copy, .user = user};
    return 0;
}

size_t ghs_repo_find(const struct ghs_server *s, const char *owner, const char *name)
{
    for (size_t i = 0; i < s->nrepos; i++)
        if (strcasecmp(s->repos[i].owner, owner) == 0 && strcasecmp(s->repos[i].name, name) == 0)
            return i;
    return SIZE_MAX;
}

size_t ghs_repo_find_id(const struct ghs_server *s, int64_t id)
{
    for (size_t i = 0; i < s->nrepos; i++)
        if (s->repos[i].id == id)
            return i;
    return SIZE_MAX;
}

size_t ghs_repo_find_full(const struct ghs_server *s, const char *full)
{
    const char *slash = strchr(full, '/');
    char owner[GHS_SEG];

    if (!slash || (size_t)(slash - full) >= sizeof(owner))
        return SIZE_MAX;
    memcpy(owner, full, (size_t)(slash - full));
    owner[slash - full] = '\0';
    return ghs_repo_find(s, owner, slash + 1);
}

struct ghs_issue *ghs_issue_find(struct ghs_server *s, size_t repo, int64_t number)
{
    struct ghs_repo *r = &s->repos[repo];

    for (size_t i = 0; i < r->nissues; i++)
        if (r->issues[i].number == number)
            return &r->issues[i];
    return NULL;
}

int64_t ghs_issue_next_number(const struct ghs_server *s, size_t repo)
{
    const struct ghs_repo *r = &s->repos[repo];
    int64_t max = 0;

    for (size_t i = 0; i < r->nissues; i++)
        if (r->issues[i].number > max)
            max = r->issues[i].number;
    return max + 1;
}

struct ghs_issue *ghs_issue_add(struct ghs_server *s, size_t repo, int64_t number)
{
    struct ghs_repo *r = &s->repos[repo];
    char title[64];

    if (r->nissues == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct ghs_issue *issues = realloc(r->issues, cap * sizeof(*issues));
        if (!issues)
            return NULL;
        r->issues = issues;
        r->cap = cap;
    }
    (void)snprintf(title, sizeof(title), "Task %lld", (long long)number);
    int64_t now = ghs_now_ms_locked(s) / 1000;
    struct ghs_issue *is = &r->issues[r->nissues];
    *is = (struct ghs_issue){
        .id = GHS_ISSUE_ID_BASE + ++s->next_issue_id,
        .number = number,
        .title = dup_str(title),
        .labels = json_array(),
        .created = now,
        .updated = now,
        .status = 200,
    };
    if (!is->title || !is->labels) {
        free(is->title);
        json_decref(is->labels);
        return NULL;
    }
    r->nissues++;
    return is;
}

size_t ghs_comment_find(const struct ghs_server *s, int64_t id)
{
    size_t lo = 0, hi = s->ncomments;

    while (lo < hi) { /* ascending ids: binary search */
        size_t mid = lo + (hi - lo) / 2;
        if (s->comments[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->ncomments && s->comments[lo].id == id ? lo : SIZE_MAX;
}

struct ghs_comment *ghs_comment_add(struct ghs_server *s, size_t repo, struct ghs_issue *is,
                                    size_t user, const char *body)
{
    if (s->ncomments == s->ccap) {
        size_t cap = s->ccap ? s->ccap * 2 : 64;
        struct ghs_comment *cs = realloc(s->comments, cap * sizeof(*cs));
        if (!cs)
            return NULL;
        s->comments = cs;
        s->ccap = cap;
    }
    char *copy = dup_str(body);
    if (!copy)
        return NULL;
    int64_t now = ghs_now_ms_locked(s) / 1000;
    struct ghs_comment *c = &s->comments[s->ncomments++];
    /* Real ids are global across GitHub, so ours leave gaps: a client must not expect +1. */
    s->comment_seq++;
    *c = (struct ghs_comment){
        .id = s->next_comment_id,
        .repo = repo,
        .number = is->number,
        .user = user,
        .body = copy,
        .created = now,
        .updated = now,
    };
    s->next_comment_id += 1 + s->comment_seq % 4;
    is->ncomments++;
    is->updated = now;
    return c;
}

void ghs_comment_remove(struct ghs_server *s, size_t index)
{
    struct ghs_comment *c = &s->comments[index];
    struct ghs_issue *is = ghs_issue_find(s, c->repo, c->number);

    if (is) {
        is->ncomments--;
        is->updated = ghs_now_ms_locked(s) / 1000;
    }
    free(c->body);
    memmove(c, c + 1, (s->ncomments - index - 1) * sizeof(*c));
    s->ncomments--;
}

bool ghs_comment_hidden(const struct ghs_comment *c, int64_t mono_ms)
{
    return c->hidden_reads > 0 || mono_ms < c->hidden_until_ms;
}

void ghs_budget_touch_locked(struct ghs_server *s, struct ghs_user *u)
{
    int64_t now = ghs_now_ms_locked(s) / 1000;

    if (u->reset == 0 || now >= u->reset) {
        u->used = 0;
        u->reset = now + GHS_WINDOW_S;
    }
}

/* ---- stats ---- */

void ghs_stats_bump(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    if (v)
        (void)json_integer_set(v, json_integer_value(v) + 1);
    else
        (void)json_object_set_new(obj, key, json_integer(1));
}

void ghs_stats_clear(struct ghs_stats *st)
{
    st->total = st->writes = st->not_modified = st->dropped = 0;
    json_object_clear(st->by_endpoint);
    json_object_clear(st->by_status);
    json_object_clear(st->by_login);
}

/* ---- build and tear down ---- */

static void model_free(struct ghs_server *s)
{
    for (size_t i = 0; i < s->nusers; i++)
        free(s->users[i].login);
    free(s->users);
    for (size_t i = 0; i < s->ntokens; i++)
        free(s->tokens[i].token);
    free(s->tokens);
    for (size_t i = 0; i < s->nrepos; i++) {
        struct ghs_repo *r = &s->repos[i];
        for (size_t j = 0; j < r->nissues; j++) {
            free(r->issues[j].title);
            free(r->issues[j].body);
            free(r->issues[j].state_reason);
            json_decref(r->issues[j].labels);
        }
        free(r->issues);
        free(r->owner);
        free(r->name);
    }
    free(s->repos);
    for (size_t i = 0; i < s->ncomments; i++)
        free(s->comments[i].body);
    free(s->comments);
    s->users = NULL;
    s->tokens = NULL;
    s->repos = NULL;
    s->comments = NULL;
    s->nusers = s->ntokens = s->nrepos = s->ncomments = s->ccap = 0;
}

static int model_build(struct ghs_server *s)
{
    const struct ghs_config *cfg = s->cfg;

    s->next_comment_id = GHS_FIRST_COMMENT_ID;
    s->comment_seq = 0;
    s->next_issue_id = 0;
    s->rate_limit = cfg->rate_limit;
    for (size_t i = 0; i < cfg->ntokens; i++) {
        size_t u = ghs_user_add(s, cfg->tokens[i].login);
        if (u == SIZE_MAX || ghs_token_add(s, cfg->tokens[i].token, u) != 0)
            return -1;
        s->users[u].assignable = true;
    }
    for (size_t i = 0; i < cfg->nassignables; i++) {
        size_t u = ghs_user_add(s, cfg->assignables[i]);
        if (u == SIZE_MAX)
            return -1;
        s->users[u].assignable = true;
    }
    s->repos = calloc(cfg->nrepos ? cfg->nrepos : 1, sizeof(*s->repos));
    if (!s->repos)
        return -1;
    for (size_t i = 0; i < cfg->nrepos; i++) {
        const char *full = cfg->repos[i];
        const char *slash = strchr(full, '/');
        struct ghs_repo *r = &s->repos[s->nrepos++];

        r->id = GHS_REPO_ID_BASE + (int64_t)i;
        r->owner = strndup(full, (size_t)(slash - full));
        r->name = dup_str(slash + 1);
        if (!r->owner || !r->name)
            return -1;
        for (int64_t n = 1; n <= cfg->issues; n++)
            if (!ghs_issue_add(s, i, n))
                return -1;
    }
    return 0;
}

int ghs_state_init(struct ghs_server *s, const struct ghs_config *cfg)
{
    pthread_condattr_t attr;

    s->cfg = cfg;
    (void)pthread_mutex_init(&s->mu, NULL);
    (void)pthread_condattr_init(&attr);
    (void)pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    (void)pthread_cond_init(&s->wake, &attr);
    (void)pthread_condattr_destroy(&attr);
    s->stats.by_endpoint = json_object();
    s->stats.by_status = json_object();
    s->stats.by_login = json_object();
    ghs_faults_clear(&s->faults);
    if (!s->stats.by_endpoint || !s->stats.by_status || !s->stats.by_login)
        return -1;
    return model_build(s);
}

void ghs_state_fini(struct ghs_server *s)
{
    model_free(s);
    ghs_faults_clear(&s->faults);
    json_decref(s->stats.by_endpoint);
    json_decref(s->stats.by_status);
    json_decref(s->stats.by_login);
    (void)pthread_cond_destroy(&s->wake);
    (void)pthread_mutex_destroy(&s->mu);
}

int ghs_state_reset_locked(struct ghs_server *s)
{
    model_free(s);
    s->clock_offset_ms = 0;
    ghs_faults_clear(&s->faults);
    ghs_stats_clear(&s->stats);
    return model_build(s);
}

/* ---- JSON renderings ---- */

json_t *ghs_user_json(const struct ghs_server *s, const char *base, size_t user)
{
    const struct ghs_user *u = &s->users[user];

    return json_pack("{s:s, s:I, s:o, s:o, s:o, s:s, s:b}", "login", u->login, "id",
                     (json_int_t)u->id, "node_id", json_sprintf("U_tl%lld", (long long)u->id),
                     "url", json_sprintf("%s/users/%s", base, u->login), "html_url",
                     json_sprintf("%s/%s", base, u->login), "type", "User", "site_admin", 0);
}

static json_t *time_json(int64_t epoch_s)
{
    char buf[32];

    if (epoch_s == 0)
        return json_null();
    ghs_fmt_iso(epoch_s, buf);
    return json_string(buf);
}

static json_t *str_or_null(const char *text)
{
    return text ? json_string(text) : json_null();
}

json_t *ghs_issue_json(const struct ghs_server *s, const char *base, size_t repo,
                       const struct ghs_issue *is)
{
    const struct ghs_repo *r = &s->repos[repo];
    json_t *assignees = json_array();
    size_t author = s->nusers > 0 ? 0 : SIZE_MAX;

    if (!assignees)
        return NULL;
    for (size_t i = 0; i < is->nassignees; i++)
        (void)json_array_append_new(assignees, ghs_user_json(s, base, is->assignees[i]));
    json_t *assignee =
        is->nassignees > 0 ? json_deep_copy(json_array_get(assignees, 0)) : json_null();
    json_t *j = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:I, s:s, s:o, s:o, s:s, s:b, s:o, s:o, s:n, s:I, "
        "s:o, s:o, s:o, s:s, s:n, s:o}",
        "url",
        json_sprintf("%s/repos/%s/%s/issues/%lld", base, r->owner, r->name, (long long)is->number),
        "repository_url", json_sprintf("%s/repos/%s/%s", base, r->owner, r->name), "comments_url",
        json_sprintf("%s/repos/%s/%s/issues/%lld/comments", base, r->owner, r->name,
                     (long long)is->number),
        "html_url",
        json_sprintf("%s/%s/%s/issues/%lld", base, r->owner, r->name, (long long)is->number),
        "node_id", json_sprintf("I_tl%lld", (long long)is->id), "id", (json_int_t)is->id, "user",
        author != SIZE_MAX ? ghs_user_json(s, base, author) : json_null(), "number",
        (json_int_t)is->number, "title", is->title, "body", str_or_null(is->body), "labels",
        json_deep_copy(is->labels), "state", is->closed ? "closed" : "open", "locked", 0,
        "assignee", assignee, "assignees", assignees, "milestone", "comments",
        (json_int_t)is->ncomments, "created_at", time_json(is->created), "updated_at",
        time_json(is->updated), "closed_at", time_json(is->closed_at), "author_association",
        "OWNER", "active_lock_reason", "state_reason", str_or_null(is->state_reason));
    return j;
}

json_t *ghs_comment_json(const struct ghs_server *s, const char *base, const struct ghs_comment *c)
{
    const struct ghs_repo *r = &s->repos[c->repo];

    return json_pack(
        "{s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:s, s:s, s:n}", "url",
        json_sprintf("%s/repos/%s/%s/issues/comments/%lld", base, r->owner, r->name,
                     (long long)c->id),
        "html_url",
        json_sprintf("%s/%s/%s/issues/%lld#issuecomment-%lld", base, r->owner, r->name,
                     (long long)c->number, (long long)c->id),
        "issue_url",
        json_sprintf("%s/repos/%s/%s/issues/%lld", base, r->owner, r->name, (long long)c->number),
        "id", (json_int_t)c->id, "node_id", json_sprintf("IC_tl%lld", (long long)c->id), "user",
        ghs_user_json(s, base, c->user), "created_at", time_json(c->created), "updated_at",
        time_json(c->updated), "author_association",
        s->users[c->user].assignable ? "COLLABORATOR" : "NONE", "body", c->body,
        "performed_via_github_app");
}
