/*
 * test_postgres_next.c -- claim-next and done markers of the PostgreSQL store beyond the
 * conformance suite, at the store's own interface on the server that tests/harness/
 * start-postgres started (TL_TEST_POSTGRES_URI; skipped when unset): one statement per
 * claim-next and per release-and-claim-next (counted on the wire with PQtrace), wait_any woken
 * by a release and by a reopen, releases nobody waits for send no NOTIFY, a pooled wait_any
 * polls, and a schema made before done markers is completed.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "stores/postgres.h"
#include "tasklock.h"
#include "tl_test.h"

#define LONG_MS  30000
#define LIMIT_MS 20000

static const char *base_url;
static char run_id[40];
static unsigned counter;

static struct tl_store *open_url(const char *url)
{
    struct tl_store *s = NULL;
    char err[TL_ERRMSG_SIZE] = "";

    if (tl__store_open(url, NULL, &tl__real_clock, NULL, &s, err) != TL_OK)
        fail_msg("open %s: %s", url, err);
    return s;
}

static void url_with(char *buf, size_t size, const char *param)
{
    (void)snprintf(buf, size, "%s%s%s", base_url, strchr(base_url, '?') ? "&" : "?", param);
}

/* `n` new keys in `buf`, pointed at by `keys`. */
struct keys {
    char buf[4][96];
    const char *k[4];
    struct tl_candidates c;
};

static void new_keys(struct keys *ks, size_t n, const char *what)
{
    memset(ks, 0, sizeof(*ks));
    for (size_t i = 0; i < n; i++) {
        (void)snprintf(ks->buf[i], sizeof(ks->buf[i]), "next-%s-%s-%u", run_id, what, ++counter);
        ks->k[i] = ks->buf[i];
    }
    ks->c = (struct tl_candidates){.keys = ks->k, .nkeys = n};
}

static const struct tl_claim req = {
    .worker_id = "next-w",
    .node_id = "next-n",
    .task_info = "{}",
    .lock_timeout_ms = LONG_MS,
};

static tl_status claim_next(struct tl_store *s, const struct keys *ks, struct tl_claim_result *out,
                            size_t *won)
{
    struct tl_next_tally t;

    memset(out, 0, sizeof(*out));
    s->errmsg[0] = '\0';
    return s->ops->claim_next(s, &req, &ks->c, out, won, &t);
}

static void hold(struct tl_store *s, const char *key, struct tl_record *held)
{
    struct tl_claim_result res;
    struct tl_claim one = req;

    one.key = key;
    memset(&res, 0, sizeof(res));
    if (s->ops->claim(s, &one, &res) != TL_OK)
        fail_msg("hold %s: %s", key, s->errmsg);
    *held = res.rec;
}

static void finish(struct tl_store *s, struct tl_record *held, bool done)
{
    const struct tl_finish f = {.held = held, .summary = "", .done = done};
    struct tl_finish_result fr;

    memset(&fr, 0, sizeof(fr));
    if (s->ops->finish(s, &f, &fr) != TL_OK)
        fail_msg("finish %s: %s", held->info.key, s->errmsg);
    tl__record_clear(held);
}

/* Counts the messages of `kind` ("Parse", "Sync", ...) that the client sent in a trace. */
static int sent(const char *trace, const char *kind)
{
    int n = 0;
    char pat[32];

    (void)snprintf(pat, sizeof(pat), "\tF\t");
    for (const char *p = trace; (p = strstr(p, pat)) != NULL; p++) {
        const char *eol = strchr(p, '\n');
        const char *k = strstr(p, kind);
        if (k != NULL && (eol == NULL || k < eol))
            n++;
    }
    return n;
}

static void one_statement_per_call(void **state)
{
    struct tl_store *s = open_url(base_url);
    struct keys ks;
    struct tl_claim_result res;
    size_t won = 0;

    (void)state;
    new_keys(&ks, 3, "trip");
    /* Open the session first, so that the trace holds the calls alone. */
    assert_int_equal(claim_next(s, &ks, &res, &won), TL_OK);
    assert_int_equal(won, 0);

    char *trace = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&trace, &len);
    PGconn *c = tl__postgres_session(s);
    assert_non_null(c);
    PQtrace(c, f);
    const struct tl_finish fin = {
        .held = &res.rec, .summary = "ok", .done = true, .next = &req, .candidates = &ks.c};
    struct tl_finish_result fr;
    memset(&fr, 0, sizeof(fr));
    assert_int_equal(s->ops->finish(s, &fin, &fr), TL_OK);
    PQuntrace(c);
    (void)fclose(f);
    assert_true(fr.next_tried);
    assert_int_equal(fr.next_status, TL_OK);
    assert_int_equal(fr.won, 1);
    assert_true(fr.next.rec.info.token > res.rec.info.token);
    assert_int_equal(sent(trace, "Parse"), 1);
    assert_int_equal(sent(trace, "Sync"), 1);
    free(trace);

    /* The done key is skipped, the held one too: a plain claim-next, one statement again. */
    f = open_memstream(&trace, &len);
    PQtrace(c, f);
    struct tl_claim_result r2;
    assert_int_equal(claim_next(s, &ks, &r2, &won), TL_OK);
    PQuntrace(c);
    (void)fclose(f);
    assert_int_equal(won, 2);
    assert_int_equal(sent(trace, "Parse"), 1);
    free(trace);

    tl__record_clear(&res.rec);
    finish(s, &fr.next.rec, false);
    finish(s, &r2.rec, false);
    bool was = false;
    assert_int_equal(s->ops->reopen(s, ks.k[0], "next-w", "next-n", &was), TL_OK);
    assert_true(was);
    tl__store_close(s);
}

struct any_wait {
    pthread_t thread;
    struct tl_store *s;
    const struct tl_candidates *c;
    atomic_int done;
    tl_status st;
    int64_t took;
};

static void *any_main(void *arg)
{
    struct any_wait *w = arg;
    int64_t start = tl__real_mono_ms();

    w->st = w->s->ops->wait_any(w->s, w->c, LIMIT_MS);
    w->took = tl__real_mono_ms() - start;
    atomic_store(&w->done, 1);
    return NULL;
}

/* Whether every row of the candidates that exists is flagged (wake): wait_any is listening. */
struct flag_probe {
    PGconn *c;
    const char *key;
};

static bool flagged(void *arg)
{
    struct flag_probe *p = arg;
    const char *const v[] = {p->key};
    PGresult *r = PQexecParams(p->c, "SELECT wake FROM tasklock_locks WHERE key = $1", 1, NULL, v,
                               NULL, NULL, 0);
    bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
               strcmp(PQgetvalue(r, 0, 0), "t") == 0;

    PQclear(r);
    return yes;
}

static PGconn *admin(void)
{
    PGconn *c = PQconnectdb(base_url);

    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void wait_any_is_woken_by_a_release_and_a_reopen(void **state)
{
    struct tl_store *s = open_url(base_url), *w = open_url(base_url);
    PGconn *c = admin();
    struct keys ks;
    struct tl_record held;

    (void)state;
    new_keys(&ks, 2, "wake");
    hold(s, ks.k[0], &held);
    struct tl_record second;
    hold(s, ks.k[1], &second);
    finish(s, &second, true); /* done: only a reopen frees it */

    /* Free already: at once. Nothing free: flags, then a release of the flagged key wakes. */
    struct keys free_one;
    new_keys(&free_one, 1, "free");
    int64_t start = tl__real_mono_ms();
    assert_int_equal(w->ops->wait_any(w, &free_one.c, LIMIT_MS), TL_OK);
    assert_true(tl__real_mono_ms() - start < LIMIT_MS / 2);

    struct any_wait aw = {.s = w, .c = &ks.c};
    assert_int_equal(pthread_create(&aw.thread, NULL, any_main, &aw), 0);
    struct flag_probe p = {.c = c, .key = ks.k[0]};
    assert_true(tl_test_poll(flagged, &p, 5, LIMIT_MS));
    finish(s, &held, false);
    pthread_join(aw.thread, NULL);
    assert_int_equal(aw.st, TL_OK);
    assert_true(aw.took < LIMIT_MS / 2);

    /* Hold the first again; the done one is flagged too, and its reopen wakes. */
    hold(s, ks.k[0], &held);
    struct any_wait ar = {.s = w, .c = &ks.c};
    assert_int_equal(pthread_create(&ar.thread, NULL, any_main, &ar), 0);
    assert_true(tl_test_poll(flagged, &p, 5, LIMIT_MS));
    struct flag_probe p2 = {.c = c, .key = ks.k[1]};
    assert_true(tl_test_poll(flagged, &p2, 5, LIMIT_MS));
    bool was = false;
    assert_int_equal(s->ops->reopen(s, ks.k[1], "next-w", "next-n", &was), TL_OK);
    assert_true(was);
    pthread_join(ar.thread, NULL);
    assert_int_equal(ar.st, TL_OK);
    assert_true(ar.took < LIMIT_MS / 2);

    finish(s, &held, false);
    PQfinish(c);
    tl__store_close(w);
    tl__store_close(s);
}

/* A release of a row that no wait flagged sends no NOTIFY (no notification lock): a listener
 * on the release channel receives only the flagged key's, which comes after it. */
static void unwaited_releases_do_not_notify(void **state)
{
    struct tl_store *s = open_url(base_url), *w = open_url(base_url);
    PGconn *c = admin();
    struct keys quiet_keys, loud;
    struct tl_record q1, q2, l1;

    (void)state;
    PQclear(PQexec(c, "LISTEN \"tasklock_released:public\""));
    new_keys(&quiet_keys, 2, "quiet");
    new_keys(&loud, 1, "loud");
    hold(s, quiet_keys.k[0], &q1);
    hold(s, quiet_keys.k[1], &q2);
    hold(s, loud.k[0], &l1);

    struct any_wait aw = {.s = w, .c = &loud.c};
    assert_int_equal(pthread_create(&aw.thread, NULL, any_main, &aw), 0);
    struct flag_probe p = {.c = c, .key = loud.k[0]};
    assert_true(tl_test_poll(flagged, &p, 5, LIMIT_MS));
    finish(s, &q1, true);  /* done */
    finish(s, &q2, false); /* plain, through finish */
    finish(s, &l1, false);
    pthread_join(aw.thread, NULL);
    assert_int_equal(aw.st, TL_OK);

    /* The first notification is the flagged key's. */
    PGnotify *nt = NULL;
    int64_t end = tl__real_mono_ms() + LIMIT_MS;
    while (nt == NULL && tl__real_mono_ms() < end) {
        assert_int_equal(PQconsumeInput(c), 1);
        nt = PQnotifies(c);
        if (nt == NULL)
            tl__real_sleep_ms(5);
    }
    assert_non_null(nt);
    assert_string_equal(nt->extra, loud.k[0]);
    PQfreemem(nt);
    PQfinish(c);
    tl__store_close(w);
    tl__store_close(s);
}

static void pooled_wait_any_polls(void **state)
{
    char url[700];
    struct keys ks;
    struct tl_record held;

    (void)state;
    url_with(url, sizeof(url), "pooled=true");
    struct tl_store *s = open_url(url), *w = open_url(url);
    new_keys(&ks, 1, "pooled");
    hold(s, ks.k[0], &held);
    struct any_wait aw = {.s = w, .c = &ks.c};
    assert_int_equal(pthread_create(&aw.thread, NULL, any_main, &aw), 0);
    finish(s, &held, false);
    pthread_join(aw.thread, NULL);
    assert_int_equal(aw.st, TL_OK);
    assert_true(aw.took < LIMIT_MS / 2);
    tl__store_close(w);
    tl__store_close(s);
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* A schema made before done markers (no tasklock_done, no v4 functions, the history CHECK of
 * five events): opening completes it, and its history keeps working with the new events. */
static void a_schema_from_before_done_markers_is_completed(void **state)
{
    char url[700], schema[64], param[96], sql[1024];
    struct keys ks;
    struct tl_claim_result res;
    size_t won;

    (void)state;
    (void)snprintf(schema, sizeof(schema), "tl_next_%s", run_id);
    (void)snprintf(param, sizeof(param), "schema=%s", schema);
    url_with(url, sizeof(url), param);
    tl__store_close(open_url(url));

    PGconn *c = admin();
    (void)PQsetNoticeProcessor(c, quiet, NULL);
    (void)snprintf(sql, sizeof(sql),
                   "DROP TABLE \"%s\".tasklock_done; DROP FUNCTION \"%s\".tasklock_next_v4, "
                   "\"%s\".tasklock_finish_v4, \"%s\".tasklock_reopen_v4; ALTER TABLE "
                   "\"%s\".tasklock_history DROP CONSTRAINT tasklock_history_event_check; ALTER "
                   "TABLE \"%s\".tasklock_history ADD CONSTRAINT tasklock_history_event_check "
                   "CHECK (event IN ('acquired','released','stolen','forced','lost'))",
                   schema, schema, schema, schema, schema, schema);
    exec_ok(c, sql);

    struct tl_store *s = open_url(url);
    new_keys(&ks, 2, "old");
    assert_int_equal(claim_next(s, &ks, &res, &won), TL_OK);
    finish(s, &res.rec, true);
    bool was = false;
    assert_int_equal(s->ops->reopen(s, ks.k[0], "next-w", "next-n", &was), TL_OK);
    assert_true(was);
    struct tl_event **ev = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->history(s, ks.k[0], 10, &ev, &n), TL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ev[0]->kind, TL_EVENT_ACQUIRED);
    assert_int_equal(ev[1]->kind, TL_EVENT_DONE);
    assert_int_equal(ev[2]->kind, TL_EVENT_REOPENED);
    tl_event_array_free(ev, n);
    tl__store_close(s);

    /* Opened again: nothing left to do (no DDL: the check passes). */
    tl__store_close(open_url(url));
    (void)snprintf(sql, sizeof(sql), "DROP SCHEMA \"%s\" CASCADE", schema);
    exec_ok(c, sql);
    PQfinish(c);
}

/* The v4 functions, which libraries built before v5 call, still answer as they did (7 columns
 * of a claim-next, 8 of a finish) beside the v5 ones, and the v5 reply marks what is done. */
static void v4_functions_answer_beside_v5(void **state)
{
    (void)state;
    struct tl_store *s = open_url(base_url);
    struct keys ks;
    new_keys(&ks, 3, "v4");
    PGconn *c = admin();

    const char *nv[] = {NULL, "old-w", "old-n", "{}", "60000", "0", "old-claim-1"};
    char arr[400];
    (void)snprintf(arr, sizeof(arr), "{%s,%s,%s}", ks.k[0], ks.k[1], ks.k[2]);
    nv[0] = arr;
    PGresult *r = PQexecParams(c,
                               "SELECT * FROM tasklock_next_v4($1::text[], $2, $3, $4, $5::int4, "
                               "$6::int4, $7)",
                               7, NULL, nv, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQnfields(r), 7);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    char token[32];
    (void)snprintf(token, sizeof(token), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);

    const char *fv[] = {ks.k[0], "old-w", token,   "old-n", "done by v4", "unused", "true",
                        arr,     "old-w", "old-n", "{}",    "60000",      "0",      "old-claim-2"};
    r = PQexecParams(c,
                     "SELECT * FROM tasklock_finish_v4($1, $2, $3::int8, $4, $5, $6, $7::bool, "
                     "$8::text[], $9, $10, $11, $12::int4, $13::int4, $14)",
                     14, NULL, fv, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQnfields(r), 8);
    assert_string_equal(PQgetvalue(r, 0, 0), "1"); /* released */
    assert_string_equal(PQgetvalue(r, 0, 1), "1"); /* and the second claimed */
    PQclear(r);

    /* v5 through the store: the first is done (marked), the second held, the third won. */
    uint8_t seen[3] = {0};
    ks.c.done_seen = seen;
    struct tl_claim_result res;
    size_t won = SIZE_MAX;
    assert_int_equal(claim_next(s, &ks, &res, &won), TL_OK);
    assert_int_equal(won, 2);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 0);
    tl__record_clear(&res.rec);
    PQfinish(c);
    tl__store_close(s);
}

int main(void)
{
    base_url = tl_test_env("TL_TEST_POSTGRES_URI");
    if (base_url == NULL)
        return 77;
    (void)snprintf(run_id, sizeof(run_id), "%lx_%lx", (unsigned long)time(NULL),
                   (unsigned long)getpid());

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_statement_per_call),
        cmocka_unit_test(wait_any_is_woken_by_a_release_and_a_reopen),
        cmocka_unit_test(unwaited_releases_do_not_notify),
        cmocka_unit_test(pooled_wait_any_polls),
        cmocka_unit_test(a_schema_from_before_done_markers_is_completed),
        cmocka_unit_test(v4_functions_answer_beside_v5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
