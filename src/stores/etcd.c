/*
 * etcd.c -- the etcd store: etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][/][?PARAMS].
 *
 * The lock protocol on etcd's keys and leases; etcd_client.c speaks the v3 JSON gateway and
 * fails over between the endpoints. Keys, under a prefix (default "tasklock/"; KEY is the lock's
 * key, ETCD_SEP the byte 0x1f, which a valid key never contains):
 *
 *   PREFIX l/KEY          the lock record: holder, node, claim time, lock timeout, task info,
 *                         and the claim's nonce. No lease: it stays until released, stolen or
 *                         forced (a stale lock stays held, as the contract says).
 *   PREFIX o/KEY          the holder's worker id, written and deleted with the record: a write
 *                         on behalf of a holder compares it (and the token) exactly.
 *   PREFIX h/KEY          the holder's liveness: attached to the holder's lease, so etcd deletes
 *                         it when the lease expires. Present = live, absent = stale (judged by
 *                         etcd, not by anyone's clock). Its value holds the current lock timeout.
 *   PREFIX w/KEY ETCD_SEP ID   a waiter in KEY's line, attached to its manager's waiter lease: a
 *                         waiter that stops refreshing disappears by itself (a dead waiter is
 *                         never seen). Its create revision is its seq. Its value keeps the
 *                         holding text of the wait-for graph and, for an upgrader, the token
 *                         it converts (etcd_convert.c).
 *   PREFIX e/KEY ETCD_SEP ID   an audit-trail event; at most history_max per key.
 *   PREFIX d/KEY          a finished task's done marker (no lease; etcd_next.c).
 *   PREFIX s/KEY ETCD_SEP NONCE   a shared holder's liveness, on its manager's lease: a key held
 *                         shared keeps its whole set of holders in l/KEY (etcd_modes.c).
 *
 * Tokens are revisions: a grant (claim, steal, force) writes the lock record, and the record's
 * mod_revision, the revision of that transaction, is the holder's fencing token; nothing else
 * writes the record while it is held, so every write on behalf of a holder compares
 * mod_revision == token (Mutex.IsOwner() in etcd's own client). Revisions are strictly
 * increasing across the whole cluster, so tokens increase across release, steal and force.
 *
 * Every write is one transaction guarded by compares on what was read before it, at revision R:
 * a claim of a free key compares the record's absence and that no waiter joined the line after
 * R; a steal also compares the liveness key's absence; a force compares the record's revision.
 * When the answer to a write is lost (etcd_client.c does not repeat a write that may have been
 * applied), the store reads again and decides again: a claim recognises its own nonce.
 *
 * Leases (ETCD-API.md A.2): one per store instance and whole-second TTL (a lock timeout rounded
 * up), granted on first use and shared by every lock and waiter of that timeout. A renew keeps
 * the lease alive (one keep-alive per lease however many locks hang on it: a renew within a
 * sixth of the timeout of the last keep-alive relies on it, and says so through
 * beat_sent_mono_ms) and checks that the record is still ours; a renew of a stale lock whose
 * record is still ours (its lease expired, nobody took it) attaches the liveness key to a fresh
 * lease. A new leader refreshes every lease (A.9): a dead holder's lock can outlive its timeout
 * by an election, so fencing tokens, not TTL arithmetic, protect the work.
 *
 * The line: the head waiter watches the lock record (and the liveness key, when it may steal),
 * every other waiter watches its predecessor's waiter key only, from the revision it read, so
 * that nothing between the read and the watch is missed (A.5, A.7).
 *
 * Times: etcd has no clock we can read. Claim and event times are the writer's clock; a live
 * holder's last heartbeat is estimated from its lease's remaining TTL (whole seconds).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "etcd_int.h"

/* ---- open, close ---- */

static tl_status parse_endpoints(struct tl_store *s, const char *hosts, size_t len, char **eps,
                                 size_t *n)
{
    size_t i = 0;

    *n = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && hosts[j] != ',')
            j++;
        const char *h = hosts + i;
        size_t hl = j - i;
        if (hl == 0)
            return tl__store_fail(s, TL_EINVAL, "etcd: an empty endpoint in the URL");
        if (*n == ETCD_MAX_ENDPOINTS)
            return tl__store_fail(s, TL_EINVAL, "etcd: more than %d endpoints", ETCD_MAX_ENDPOINTS);
        /* HOST:PORT, HOST as a name, a dotted quad or [IPv6]. */
        const char *colon = NULL;
        if (h[0] == '[') {
            const char *close = memchr(h, ']', hl);
            if (close == NULL || close + 1 >= h + hl || close[1] != ':')
                return tl__store_fail(s, TL_EINVAL,
                                      "etcd: endpoint %.*s: an IPv6 address is [ADDR]:PORT",
                                      (int)(hl > 80 ? 80 : hl), h);
            colon = close + 1;
        } else {
            colon = memchr(h, ':', hl);
        }
        if (colon == NULL)
            return tl__store_fail(s, TL_EINVAL, "etcd: endpoint %.*s has no port (HOST:PORT)",
                                  (int)(hl > 80 ? 80 : hl), h);
        if (colon == h)
            return tl__store_fail(s, TL_EINVAL, "etcd: endpoint %.*s: bad host",
                                  (int)(hl > 80 ? 80 : hl), h);
        for (const char *p = h; p < colon; p++) {
            char c = *p;
            bool fine = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
                        (h[0] == '[' && (c == ':' || c == '[' || c == ']'));
            if (!fine)
                return tl__store_fail(s, TL_EINVAL, "etcd: endpoint %.*s: bad host",
                                      (int)(hl > 80 ? 80 : hl), h);
        }
        uint64_t port = 0;
        char pbuf[8];
        size_t pl = (size_t)(h + hl - colon - 1);
        if (pl == 0 || pl >= sizeof(pbuf))
            return tl__store_fail(s, TL_EINVAL, "etcd: endpoint %.*s: bad port",
                                  (int)(hl > 80 ? 80 : hl), h);
        memcpy(pbuf, colon + 1, pl);
        pbuf[pl] = '\0';
        if (!tl__parse_u64(pbuf, &port) || port == 0 || port > 65535)
            return tl__store_fail(s, TL_EINVAL, "etcd: endpoint %.*s: bad port",
                                  (int)(hl > 80 ? 80 : hl), h);
        if ((eps[*n] = tl__strndup(h, hl)) == NULL)
            return tl__etcd_oom(s);
        (*n)++;
        i = j + 1;
        if (j < len && i == len)
            return tl__store_fail(s, TL_EINVAL, "etcd: an empty endpoint in the URL");
    }
    if (*n == 0)
        return tl__store_fail(s, TL_EINVAL, "etcd: the URL names no endpoint (etcd://HOST:PORT)");
    return TL_OK;
}

/* One query parameter. */
static tl_status parse_param(struct tl_store *s, const char *name, size_t nlen, const char *val,
                             size_t vlen, struct tl_etcd_opts *o, char **cacert, bool *tls_set)
{
    struct etcd_store *es = es_of(s);
    char *v = NULL;
    tl_status st = tl__percent_decode(val, vlen, &v);

    if (st != TL_OK)
        return tl__store_fail(s, st == TL_ENOMEM ? st : TL_EINVAL,
                              "etcd: parameter %.*s: bad percent-encoding", (int)nlen, name);
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
    if (IS("prefix")) {
        if (v[0] == '\0' || tl__check_id(v, 200) != NULL) {
            st = tl__store_fail(s, TL_EINVAL,
                                "etcd: prefix must be 1-200 characters without space or controls");
        } else {
            tl__free(es->prefix);
            es->prefix = v;
            v = NULL;
        }
    } else if (IS("tls")) {
        if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
            st = tl__store_fail(s, TL_EINVAL, "etcd: tls must be 0 or 1");
        o->tls = strcmp(v, "1") == 0;
        *tls_set = true;
    } else if (IS("cacert")) {
        tl__free(*cacert);
        *cacert = v;
        v = NULL;
    } else if (IS("request_timeout") || IS("connect_timeout")) {
        uint32_t ms = 0;
        if (tl_parse_duration(v, &ms) != TL_OK || ms == 0 || ms > 600000)
            st = tl__store_fail(s, TL_EINVAL, "etcd: %.*s must be a duration of up to 10m",
                                (int)nlen, name);
        else if (IS("request_timeout"))
            o->request_ms = es->request_ms = ms;
        else
            o->connect_ms = ms;
    } else if (IS("history_max")) {
        uint64_t x = 0;
        /* Not 0: a release retried after the key was claimed again tells from the trail. */
        if (!tl__parse_u64(v, &x) || x == 0 || x > ETCD_HISTORY_MAX_LIMIT)
            st = tl__store_fail(s, TL_EINVAL, "etcd: history_max must be 1 to %u",
                                ETCD_HISTORY_MAX_LIMIT);
        es->history_max = (uint32_t)x;
    } else {
        st = tl__store_fail(s, TL_EINVAL,
                            "etcd: unknown parameter %.*s (prefix, tls, cacert, request_timeout, "
                            "connect_timeout, history_max)",
                            (int)(nlen > 40 ? 40 : nlen), name);
    }
#undef IS
    tl__free(v);
    return st;
}

static tl_status etcd_open(struct tl_store *s, const char *url)
{
    struct etcd_store *es = es_of(s);
    struct tl_etcd_opts o = {0};
    char *eps[ETCD_MAX_ENDPOINTS] = {0};
    size_t neps = 0;
    char *user = NULL, *password = NULL, *cacert = NULL;
    bool tls_set = false;
    tl_status st;

    es->history_max = ETCD_DEFAULT_HISTORY_MAX;
    es->request_ms = ETCD_DEFAULT_REQUEST_MS;
    char r[3];
    tl__etcd_random_hex(r, 1);
    es->releases = (uint32_t)tl__hex_value(r[1]) % ETCD_TRAIL_CHECK_EVERY;
    if ((es->prefix = tl__strdup(ETCD_DEFAULT_PREFIX)) == NULL)
        return tl__etcd_oom(s);
    if (strncmp(url, "etcd://", 7) != 0)
        return tl__store_fail(s, TL_EINVAL, "etcd: the URL must start with etcd://");
    const char *p = url + 7;
    size_t auth_end = strcspn(p, "/?");
    const char *at = NULL;
    for (const char *q = p; q < p + auth_end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (ulen == 0) {
            st = tl__store_fail(s, TL_EINVAL, "etcd: the URL has a password but no user name");
            goto out;
        }
        if (tl__percent_decode(p, ulen, &user) != TL_OK ||
            tl__percent_decode(colon ? colon + 1 : at, colon ? (size_t)(at - colon - 1) : 0,
                               &password) != TL_OK) {
            st = tl__store_fail(s, TL_EINVAL, "etcd: bad percent-encoding in the URL's user info");
            goto out;
        }
        p = at + 1;
    }
    size_t hosts_len = strcspn(p, "/?");
    if ((st = parse_endpoints(s, p, hosts_len, eps, &neps)) != TL_OK)
        goto out;
    p += hosts_len;
    if (*p == '/')
        p++;
    if (*p != '\0' && *p != '?') {
        st = tl__store_fail(s, TL_EINVAL, "etcd: the URL has a path; use ?prefix= for a prefix");
        goto out;
    }
    if (*p == '?')
        p++;
    while (*p != '\0') {
        size_t plen = strcspn(p, "&");
        const char *eq = memchr(p, '=', plen);
        if (eq == NULL) {
            st = tl__store_fail(s, TL_EINVAL, "etcd: parameter %.*s has no value",
                                (int)(plen > 40 ? 40 : plen), p);
            goto out;
        }
        if ((st = parse_param(s, p, (size_t)(eq - p), eq + 1, (size_t)(p + plen - eq - 1), &o,
                              &cacert, &tls_set)) != TL_OK)
            goto out;
        p += plen;
        if (*p == '&')
            p++;
    }
    if (cacert != NULL && !o.tls) {
        st = tl__store_fail(s, TL_EINVAL, "etcd: cacert needs tls=1");
        goto out;
    }
    o.endpoints = (const char *const *)eps;
    o.nendpoints = neps;
    o.cacert = cacert;
    o.user = user;
    o.password = password;
    char err[TL_ERRMSG_SIZE];
    if ((st = tl__etcd_new(&o, &es->cli, err)) != TL_OK) {
        (void)tl__store_fail(s, st, "%s", err);
        goto out;
    }
    /* One read proves the endpoints, the credentials and the prefix. */
    bool ok = true;
    char *lp = tl__etcd_path(es, "l/", NULL, NULL, NULL),
         *lend = lp ? tl__etcd_prefix_end(lp) : NULL;
    json_t *req = lp && lend ? tl__etcd_range_req(lp, lend, &ok) : NULL, *ans = NULL;
    tl__free(lp);
    tl__free(lend);
    if (req == NULL || !ok) {
        json_decref(req);
        st = tl__etcd_oom(s);
        goto out;
    }
    tl__etcd_set(req, "count_only", json_true(), &ok);
    st = tl__etcd_call(s, "/v3/kv/range", req, TL_ETCD_READ, &ans);
    json_decref(req);
    json_decref(ans);
    s->modes = true;     /* shared holders and semaphores: etcd_modes.c */
    s->deadlocks = true; /* the wait-for graph: etcd_convert.c, etcd_read.c */

out:
    for (size_t i = 0; i < neps; i++)
        tl__free(eps[i]);
    tl__free(user);
    if (password != NULL) {
        volatile char *w = password;
        while (*w)
            *w++ = '\0';
        tl__free(password);
    }
    tl__free(cacert);
    return st;
}

static void etcd_close(struct tl_store *s)
{
    struct etcd_store *es = es_of(s);

    /* Leases are left to expire: a lock taken by a process that exits at once (`tasklock
     * acquire`) must stay live until its timeout, renewed from elsewhere. */
    tl__etcd_turn_end(s);
    tl__etcd_next_free(es);
    tl__etcd_free(es->cli);
    tl__free(es->prefix);
    tl__free(es->wait_key);
}

/* ---- claim ---- */

struct claim_ctx {
    const struct tl_claim *req;
    struct etcd_names k;
    char nonce[33];
    char *value; /* the exclusive record we write */
    int64_t at;
};

/*
 * Ops that make us a holder (after the compares that guard them). `g` is the set of holders we
 * replace (NULL: the key is free), keep[i] whether its holder i stays (only beside a shared
 * claim: an exclusive one replaces every holder, the stale ones it steals or all it forces).
 */
static json_t *win_ops(struct tl_store *s, struct claim_ctx *c, int64_t lease, bool in_line,
                       tl_event_kind kind, const char *detail, const struct etcd_group *g,
                       const bool *keep, bool *ok)
{
    struct etcd_store *es = es_of(s);
    const struct tl_claim *req = c->req;
    json_t *ops = json_array();
    char *live = tl__etcd_live_value(req->lock_timeout_ms);

    if (live == NULL)
        *ok = false;
    if (!req->shared) {
        tl__etcd_push(ops, tl__etcd_op_put(c->k.l, c->value, 0, ok), ok);
        tl__etcd_push(ops, tl__etcd_op_put(c->k.o, req->worker_id, 0, ok), ok);
        tl__etcd_push(ops, live ? tl__etcd_op_put(c->k.h, live, lease, ok) : NULL, ok);
        if (g != NULL && !g->exclusive && g->n > 0)
            tl__etcd_push(ops, tl__etcd_op_delete(c->k.s, c->k.s_end, ok), ok);
    } else {
        char *value = tl__etcd_group_value(g, keep, req, c->nonce, c->at, req->slots, ok);
        char *lk = tl__etcd_shared_live_key(es, req->key, c->nonce);
        tl__etcd_push(ops, value ? tl__etcd_op_put(c->k.l, value, 0, ok) : NULL, ok);
        /* h/KEY on no lease while the key is shared: a tasklock that predates shared holders
         * sees it live and never steals it (etcd_modes.c). */
        tl__etcd_push(ops, live ? tl__etcd_op_put(c->k.h, live, 0, ok) : NULL, ok);
        tl__etcd_push(ops, live && lk ? tl__etcd_op_put(lk, live, lease, ok) : NULL, ok);
        if (g != NULL && g->exclusive)
            tl__etcd_push(ops, tl__etcd_op_delete(c->k.o, NULL, ok), ok);
        tl__free(value);
        tl__free(lk);
    }
    if (in_line)
        tl__etcd_push(ops, tl__etcd_op_delete(c->k.waiter, NULL, ok), ok);
    tl__etcd_push(ops,
                  tl__etcd_op_event(es, req->key, kind, req->worker_id, req->node_id, 0, c->at,
                                    detail, 0, ok),
                  ok);
    tl__free(live);
    return ops;
}

/* Fills out->rec as our record, won at revision `rev`. */
static tl_status won(struct tl_store *s, struct claim_ctx *c, int64_t rev, int64_t lease,
                     struct tl_claim_result *out)
{
    const struct tl_claim *req = c->req;
    struct tl_record *r = &out->rec;

    memset(r, 0, sizeof(*r));
    r->info.key = tl__strdup(req->key);
    r->info.worker_id = tl__strdup(req->worker_id);
    r->info.node_id = tl__strdup(req->node_id);
    r->info.task_info = tl__strdup(req->task_info);
    r->opaque = tl__asprintf("%llx", (unsigned long long)lease);
    if (!r->info.key || !r->info.worker_id || !r->info.node_id || !r->info.task_info ||
        !r->opaque) {
        tl__record_clear(r);
        return tl__etcd_oom(s);
    }
    r->info.token = (uint64_t)rev;
    r->info.claimed_at_ms = r->info.heartbeat_at_ms = c->at;
    r->info.lock_timeout_ms = req->lock_timeout_ms;
    r->info.observed_at_ms = c->at;
    r->info.mode = req->shared ? TL_SHARED : TL_EXCLUSIVE;
    r->info.slots = req->shared ? req->slots : 0;
    return TL_OK;
}

/* Answers busy: the holder it waits for first (judged) and the line's counts; joins or
 * refreshes the line when the claim has a waiter. */
static tl_status busy(struct tl_store *s, struct claim_ctx *c, const struct etcd_key_state *ks,
                      const struct etcd_group *g, long mine, uint32_t ahead,
                      struct tl_claim_result *out)
{
    struct etcd_store *es = es_of(s);
    const struct tl_claim *req = c->req;
    uint32_t waiting = (uint32_t)ks->nline;
    tl_status st;

    if (req->waiter_id != NULL) {
        /* Joins, or refreshes its place (and the holding text it keeps for the graph). */
        bool written = true;
        st = tl__etcd_line_put(s, &c->k, req, mine >= 0 ? &ks->line[mine].kv : NULL, 0, c->at, 0,
                               &written);
        if (st != TL_OK)
            return st;
        if (mine < 0)
            waiting++; /* joined now (a failed compare: before, by a lost answer) */
        tl__free(es->wait_key);
        es->wait_key = tl__strdup(req->key);
        (void)snprintf(es->wait_id, sizeof(es->wait_id), "%s", req->waiter_id);
        es->wait_mode = req->mode;
        es->wait_shared = req->shared;
        es->wait_slots = req->slots;
    }
    out->waiting = waiting;
    out->ahead = ahead;
    if (g->n > 0) {
        if ((st = tl__etcd_holder_judged(s, g, 0, &out->rec)) != TL_OK)
            return st;
        out->holder_known = true;
    }
    return TL_EBUSY;
}

static tl_status etcd_claim(struct tl_store *s, const struct tl_claim *req,
                            struct tl_claim_result *out)
{
    struct etcd_store *es = es_of(s);
    struct claim_ctx c = {.req = req, .at = now_ms(s)};
    struct etcd_key_state ks = {0};
    struct etcd_group g = {0};
    bool *keep = NULL;
    int64_t lease = 0, beat_sent = 0, call_start = mono(s);
    tl_status st;

    es->stats.claims++;
    tl__etcd_random_hex(c.nonce, 16);
    if ((st = tl__etcd_names_for(s, req->key, req->waiter_id, &c.k)) != TL_OK)
        return st;
    if ((c.value = tl__etcd_record_value(req, c.nonce, c.at)) == NULL) {
        st = tl__etcd_oom(s);
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        json_t *ans = NULL;
        bool ok = true;
        tl__etcd_state_clear(&ks);
        tl__etcd_group_clear(&g);
        tl__free(keep);
        keep = NULL;
        if (s->deadline_mono_ms != 0 && attempt > 0 && mono(s) >= s->deadline_mono_ms) {
            st = tl__store_fail(s, TL_ETIMEDOUT, "etcd: claim of %s: out of time", req->key);
            goto out;
        }
        if (attempt > 50) {
            st = tl__store_fail(s, TL_ESTORE,
                                "etcd: claim of %s: the key changed under every "
                                "one of 50 attempts",
                                req->key);
            goto out;
        }
        if (attempt > 0)
            tl__etcd_contention_pause(s, attempt);
        if (attempt == 0 && req->mode != TL_CLAIM_FORCE) {
            /* The common cases in one round trip: a free key with an empty line, or a free key
             * whose line this waiter heads (wait_turn saw it at turn_rev): nothing joined
             * since. */
            bool head = req->waiter_id != NULL && es->turn_rev > 0 && es->wait_key != NULL &&
                        strcmp(es->wait_key, req->key) == 0 &&
                        strcmp(es->wait_id, req->waiter_id) == 0;
            int64_t line_bound = head ? es->turn_rev + 1 : 1;
            es->turn_rev = 0;
            if ((st = tl__etcd_lease_for(s, req->lock_timeout_ms, &lease, &beat_sent)) != TL_OK)
                goto out;
            json_t *compare = json_array(), *fail = json_array();
            tl__etcd_push(compare, tl__etcd_cmp(c.k.l, NULL, "CREATE", "EQUAL", 0, &ok), &ok);
            tl__etcd_push(compare,
                          tl__etcd_cmp(c.k.line, c.k.line_end, "CREATE", "LESS", line_bound, &ok),
                          &ok);
            tl__etcd_state_ops(fail, &c.k, &ok);
            json_t *win = win_ops(s, &c, lease, head, TL_EVENT_ACQUIRED, NULL, NULL, NULL, &ok);
            st = tl__etcd_txn(s, compare, win, fail, ok, TL_ETCD_WRITE, &ans);
            if (st == TL_OK && tl__etcd_txn_succeeded(ans)) {
                st = won(s, &c, tl__etcd_header_revision(ans), lease, out);
                json_decref(ans);
                goto done;
            }
            if (st == TL_OK)
                st = tl__etcd_state_from(s, ans, 0, &c.k, &ks);
            json_decref(ans);
            if (st != TL_OK && tl__etcd_lease_gone(es)) {
                tl__etcd_forget_lease(es, lease);
                continue;
            }
            if (st != TL_OK && tl__etcd_unsure(es))
                continue; /* read again: the nonce tells */
            if (st != TL_OK)
                goto out;
        } else if ((st = tl__etcd_read_state(s, &c.k, &ks)) != TL_OK) {
            goto out;
        }
        if ((st = tl__etcd_group_of(s, req->key, &ks, &g)) != TL_OK)
            goto out;

        /* Our own earlier attempt may have won (its answer was lost). */
        for (size_t i = 0; i < g.n; i++) {
            if (strcmp(g.h[i].nonce, c.nonce) == 0) {
                st = won(s, &c, (int64_t)g.h[i].rec.info.token,
                         g.h[i].live ? g.h[i].live->lease : lease, out);
                goto done;
            }
        }

        long mine = tl__etcd_line_index(&ks, req->waiter_id);
        uint32_t ahead = 0;
        for (size_t i = 0; i < ks.nline; i++) {
            if (mine >= 0 ? (long)i < mine
                          : req->waiter_id == NULL || ks.line[i].priority >= req->priority)
                ahead++;
        }
        /* The holders that count: all, or the live ones when stealing (FORCE: none). Stale is
         * etcd's judgement: the holder's liveness key is gone. */
        if ((keep = tl__calloc(g.n ? g.n : 1, sizeof(bool))) == NULL) {
            st = tl__etcd_oom(s);
            goto out;
        }
        size_t counted = 0, stale = 0;
        for (size_t i = 0; i < g.n; i++) {
            if (req->mode == TL_CLAIM_FORCE) {
                continue;
            } else if (req->mode == TL_CLAIM_STEAL && g.h[i].live == NULL) {
                stale++;
                continue;
            }
            keep[i] = true;
            counted++;
        }
        enum tl_verdict v = TL_VERDICT_FREE;
        if (req->mode == TL_CLAIM_FORCE) {
            if (g.n > 0)
                v = TL_VERDICT_FORCE;
        } else {
            enum tl_admit a = tl__admit(req->shared, req->slots, counted, g.exclusive, g.slots);
            if (a == TL_ADMIT_MISMATCH) {
                st = tl__slots_mismatch(s, req->key, g.slots, req->slots);
                goto out;
            }
            v = a == TL_ADMIT_NO ? TL_VERDICT_BUSY : stale > 0 ? TL_VERDICT_STEAL : TL_VERDICT_FREE;
        }
        if (v == TL_VERDICT_BUSY || (ahead > 0 && req->mode != TL_CLAIM_FORCE)) {
            st = busy(s, &c, &ks, &g, mine, ahead, out);
            goto out;
        }

        if ((st = tl__etcd_lease_for(s, req->lock_timeout_ms, &lease, &beat_sent)) != TL_OK)
            goto out;
        char detail[400] = "";
        if (v != TL_VERDICT_FREE) {
            bool *gone = tl__calloc(g.n, sizeof(bool));
            for (size_t i = 0; gone != NULL && i < g.n; i++)
                gone[i] = !keep[i];
            if (gone != NULL)
                tl__etcd_group_detail(&g, gone, detail, sizeof(detail));
            tl__free(gone);
        }
        json_t *compare = json_array();
        if (ks.held)
            tl__etcd_push(compare, tl__etcd_cmp(c.k.l, NULL, "MOD", "EQUAL", ks.l.mod, &ok), &ok);
        else
            tl__etcd_push(compare, tl__etcd_cmp(c.k.l, NULL, "CREATE", "EQUAL", 0, &ok), &ok);
        /* A stolen holder's liveness must still be gone (a renewal may have brought it back). */
        for (size_t i = 0; v == TL_VERDICT_STEAL && i < g.n; i++) {
            if (keep[i])
                continue;
            char *lk = g.exclusive ? tl__strdup(c.k.h)
                                   : tl__etcd_shared_live_key(es, req->key, g.h[i].nonce);
            tl__etcd_push(compare, lk ? tl__etcd_cmp(lk, NULL, "CREATE", "EQUAL", 0, &ok) : NULL,
                          &ok);
            tl__free(lk);
        }
        if (req->mode != TL_CLAIM_FORCE)
            tl__etcd_push(compare,
                          tl__etcd_cmp(c.k.line, c.k.line_end, "CREATE", "LESS", ks.rev + 1, &ok),
                          &ok);
        tl_event_kind kind = v == TL_VERDICT_STEAL   ? TL_EVENT_STOLEN
                             : v == TL_VERDICT_FORCE ? TL_EVENT_FORCED
                                                     : TL_EVENT_ACQUIRED;
        json_t *win = win_ops(s, &c, lease, mine >= 0, kind, detail[0] ? detail : NULL,
                              ks.held ? &g : NULL, keep, &ok);
        st = tl__etcd_txn(s, compare, win, NULL, ok, TL_ETCD_WRITE, &ans);
        if (st == TL_OK && tl__etcd_txn_succeeded(ans)) {
            st = won(s, &c, tl__etcd_header_revision(ans), lease, out);
            json_decref(ans);
            if (st == TL_OK) {
                out->took_stale = v == TL_VERDICT_STEAL;
                out->took_forced = v == TL_VERDICT_FORCE;
            }
            goto done;
        }
        json_decref(ans);
        if (st != TL_OK && tl__etcd_lease_gone(es)) {
            tl__etcd_forget_lease(es, lease);
            continue;
        }
        if (st != TL_OK && !tl__etcd_unsure(es))
            goto out;
        /* The key or its line changed since we read it, or the answer was lost: again. */
    }
done:
    if (st == TL_OK) {
        if (beat_sent != 0 && beat_sent < call_start)
            out->beat_sent_mono_ms = beat_sent;
        if (es->wait_key != NULL && req->waiter_id != NULL &&
            strcmp(es->wait_id, req->waiter_id) == 0) {
            tl__free(es->wait_key);
            es->wait_key = NULL;
        }
        tl__etcd_turn_end(s); /* a watch left open for this waiter is of no more use */
    }
out:
    tl__free(keep);
    tl__etcd_group_clear(&g);
    tl__etcd_state_clear(&ks);
    tl__etcd_names_clear(&c.k);
    tl__free(c.value);
    return st;
}

/* ---- renew, extend, release ---- */

static tl_status note_lost(struct tl_store *s, const struct tl_record *held)
{
    bool ok = true;
    json_t *ops = json_array(), *ans = NULL;

    tl__etcd_push(ops,
                  tl__etcd_op_event(es_of(s), held->info.key, TL_EVENT_LOST, held->info.worker_id,
                                    held->info.node_id, held->info.token, now_ms(s), NULL, 0, &ok),
                  &ok);
    (void)tl__etcd_txn(s, NULL, ops, NULL, ok, TL_ETCD_WRITE, &ans);
    json_decref(ans);
    return tl__store_fail(s, TL_ELOST, "%s is no longer held by %s with token %llu", held->info.key,
                          held->info.worker_id, (unsigned long long)held->info.token);
}

/*
 * Attaches the liveness of `held` to a lease of ours for `timeout` (a revival, an extension):
 * an exclusive holder's h/KEY, compared on its token and worker; a shared holder's s/ key,
 * compared on the set of holders read at revision `set_rev` (re-read when it changed).
 */
static tl_status attach(struct tl_store *s, const struct etcd_names *k,
                        const struct tl_record *held, const char *nonce, int64_t set_rev,
                        uint32_t timeout, int64_t *sent)
{
    struct etcd_store *es = es_of(s);
    char *lk = nonce ? tl__etcd_shared_live_key(es, held->info.key, nonce) : NULL;
    tl_status st = TL_OK;

    if (nonce != NULL && lk == NULL)
        return tl__etcd_oom(s);
    for (int attempt = 0; attempt < 10; attempt++) {
        int64_t lease = 0;
        if ((st = tl__etcd_lease_for(s, timeout, &lease, sent)) != TL_OK)
            goto out;
        bool ok = true;
        char *live = tl__etcd_live_value(timeout);
        json_t *compare = json_array(), *ops = json_array(), *ans = NULL;
        if (lk == NULL) {
            tl__etcd_push(compare,
                          tl__etcd_cmp(k->l, NULL, "MOD", "EQUAL", (int64_t)held->info.token, &ok),
                          &ok);
            tl__etcd_push(compare, tl__etcd_cmp_value(k->o, held->info.worker_id, &ok), &ok);
        } else {
            tl__etcd_push(compare, tl__etcd_cmp(k->l, NULL, "MOD", "EQUAL", set_rev, &ok), &ok);
        }
        tl__etcd_push(ops, live ? tl__etcd_op_put(lk ? lk : k->h, live, lease, &ok) : NULL, &ok);
        tl__free(live);
        st = tl__etcd_txn(s, compare, ops, NULL, ok, TL_ETCD_WRITE, &ans);
        bool succeeded = st == TL_OK && tl__etcd_txn_succeeded(ans);
        json_decref(ans);
        if (succeeded)
            goto out;
        if (st == TL_OK && lk == NULL) {
            st = note_lost(s, held);
            goto out;
        }
        if (st == TL_OK) {
            /* The set changed: still one of it? */
            struct etcd_key_state ks = {0};
            struct etcd_group g = {0};
            if ((st = tl__etcd_read_state(s, k, &ks)) == TL_OK &&
                (st = tl__etcd_group_of(s, held->info.key, &ks, &g)) == TL_OK) {
                long i = g.exclusive
                             ? -1
                             : tl__etcd_group_find(&g, held->info.token, held->info.worker_id);
                if (i < 0)
                    st = note_lost(s, held);
                set_rev = ks.l.mod;
            }
            tl__etcd_group_clear(&g);
            tl__etcd_state_clear(&ks);
            if (st != TL_OK)
                goto out;
            continue;
        }
        if (tl__etcd_lease_gone(es))
            tl__etcd_forget_lease(es, lease);
        else if (!tl__etcd_unsure(es))
            goto out;
        /* Unsure: putting it again is harmless. */
    }
    st = tl__store_fail(s, TL_ESTORE, "etcd: could not attach %s to a lease", held->info.key);
out:
    tl__free(lk);
    return st;
}

static tl_status renew(struct tl_store *s, const struct tl_record *held, uint32_t timeout,
                       int64_t *heartbeat_at_ms)
{
    struct etcd_store *es = es_of(s);
    struct etcd_names k;
    struct etcd_key_state ks = {0};
    struct etcd_group g = {0};
    tl_status st = tl__etcd_names_for(s, held->info.key, NULL, &k);
    int64_t sent = 0;

    if (st != TL_OK)
        return st;
    if ((st = tl__etcd_read_state(s, &k, &ks)) != TL_OK)
        goto out;
    if (tl__etcd_group_of(s, held->info.key, &ks, &g) != TL_OK) {
        st = note_lost(s, held); /* a record we cannot read is not ours */
        goto out;
    }
    long i = tl__etcd_group_find(&g, held->info.token, held->info.worker_id);
    if (i < 0) {
        st = note_lost(s, held);
        goto out;
    }
    const struct etcd_kv *lv = g.h[i].live;
    bool alive = false;
    if (lv != NULL && timeout == 0) {
        struct etcd_lease *l = NULL;
        for (size_t j = 0; j < es->nleases; j++)
            if (es->leases[j].id == lv->lease)
                l = &es->leases[j];
        uint32_t t = held->info.lock_timeout_ms;
        int64_t m = mono(s);
        if (l != NULL && m - l->beat_mono < (int64_t)(t / 6)) {
            /* Kept alive a moment ago, for another lock on the same lease. */
            alive = true;
            sent = l->beat_mono;
        } else if ((st = tl__etcd_keepalive(s, lv->lease, &alive)) != TL_OK) {
            goto out;
        } else if (alive) {
            if (l != NULL) {
                l->beat_mono = m;
            } else if (es->nleases < ETCD_MAX_LEASES) {
                es->leases[es->nleases++] =
                    (struct etcd_lease){.id = lv->lease, .ttl_s = 0, .beat_mono = m};
            }
        }
    }
    if (!alive) {
        /* Stale (nobody took it), or an extension: a lease of the timeout it is to have. */
        st = attach(s, &k, held, g.exclusive ? NULL : g.h[i].nonce, ks.l.mod,
                    timeout ? timeout : held->info.lock_timeout_ms, &sent);
        if (st != TL_OK)
            goto out;
    }
    if (sent != 0 && sent < mono(s))
        s->beat_sent_mono_ms = sent;
    *heartbeat_at_ms = now_ms(s);
out:
    tl__etcd_group_clear(&g);
    tl__etcd_state_clear(&ks);
    tl__etcd_names_clear(&k);
    return st;
}

static tl_status etcd_renew(struct tl_store *s, const struct tl_record *held, uint64_t seq,
                            int64_t *heartbeat_at_ms)
{
    (void)seq;
    es_of(s)->stats.renews++;
    return renew(s, held, 0, heartbeat_at_ms);
}

static tl_status etcd_extend(struct tl_store *s, const struct tl_record *held,
                             uint32_t lock_timeout_ms, int64_t *heartbeat_at_ms)
{
    if (lock_timeout_ms == 0)
        return tl__store_fail(s, TL_EINVAL, "etcd: a lock timeout must be more than zero");
    return renew(s, held, lock_timeout_ms, heartbeat_at_ms);
}

static tl_status etcd_force_release(struct tl_store *s, const struct tl_force_release *req,
                                    struct tl_record *former, bool *found)
{
    struct etcd_store *es = es_of(s);
    struct etcd_names k;
    struct etcd_key_state ks = {0};
    struct etcd_group g = {0};
    bool *keep = NULL;
    tl_status st = tl__etcd_names_for(s, req->key, NULL, &k);

    *found = false;
    if (st != TL_OK)
        return st;
    for (int attempt = 0; attempt < 20; attempt++) {
        tl__etcd_group_clear(&g);
        tl__etcd_state_clear(&ks);
        tl__record_clear(former);
        tl__free(keep);
        keep = NULL;
        *found = false;
        if ((st = tl__etcd_read_state(s, &k, &ks)) != TL_OK)
            goto out;
        if (!ks.held)
            goto out;
        if ((st = tl__etcd_group_of(s, req->key, &ks, &g)) != TL_OK)
            goto out;
        /* The one holder to remove (a token given), else all of them. */
        long which = req->token != 0 ? tl__etcd_group_find(&g, req->token, NULL) : -1;
        if ((st = tl__etcd_holder_judged(s, &g, which >= 0 ? (size_t)which : 0, former)) != TL_OK)
            goto out;
        *found = true;
        if (req->token != 0 && which < 0) {
            st = tl__store_fail(s, TL_ENOTOWNER, "%s is held by %s with token %llu%s", req->key,
                                former->info.worker_id, (unsigned long long)former->info.token,
                                g.n > 1 ? " (and others), none with the token given" : "");
            goto out;
        }
        bool all = which < 0 || g.n == 1;
        if ((keep = tl__calloc(g.n, sizeof(bool))) == NULL) {
            st = tl__etcd_oom(s);
            goto out;
        }
        for (size_t i = 0; i < g.n; i++)
            keep[i] = !all && (long)i != which;
        char detail[400];
        if (all)
            tl__etcd_group_detail(&g, NULL, detail, sizeof(detail));
        else
            (void)snprintf(detail, sizeof(detail), "from %s (token %llu)", former->info.worker_id,
                           (unsigned long long)former->info.token);
        bool ok = true;
        int64_t at = now_ms(s);
        json_t *compare = json_array(), *ops = json_array(), *ans = NULL;
        tl__etcd_push(compare, tl__etcd_cmp(k.l, NULL, "MOD", "EQUAL", ks.l.mod, &ok), &ok);
        if (all) {
            tl__etcd_push(ops, tl__etcd_op_delete(k.l, NULL, &ok), &ok);
            tl__etcd_push(ops, tl__etcd_op_delete(k.o, NULL, &ok), &ok);
            tl__etcd_push(ops, tl__etcd_op_delete(k.h, NULL, &ok), &ok);
            if (!g.exclusive)
                tl__etcd_push(ops, tl__etcd_op_delete(k.s, k.s_end, &ok), &ok);
        } else {
            char *value = tl__etcd_group_value(&g, keep, NULL, NULL, 0, g.slots, &ok);
            char *lk = tl__etcd_shared_live_key(es, req->key, g.h[which].nonce);
            tl__etcd_push(ops, value ? tl__etcd_op_put(k.l, value, 0, &ok) : NULL, &ok);
            tl__etcd_push(ops, lk ? tl__etcd_op_delete(lk, NULL, &ok) : NULL, &ok);
            tl__free(value);
            tl__free(lk);
        }
        tl__etcd_push(ops,
                      tl__etcd_op_event(es, req->key, TL_EVENT_FORCED, req->worker_id, req->node_id,
                                        0, at, detail, 0, &ok),
                      &ok);
        tl__etcd_push(ops,
                      tl__etcd_op_event(es, req->key, TL_EVENT_RELEASED, req->worker_id,
                                        req->node_id, 0, at, req->summary, 1, &ok),
                      &ok);
        st = tl__etcd_txn(s, compare, ops, NULL, ok, TL_ETCD_WRITE, &ans);
        bool succeeded = st == TL_OK && tl__etcd_txn_succeeded(ans);
        json_decref(ans);
        if (succeeded)
            goto out;
        if (st != TL_OK && !tl__etcd_unsure(es))
            goto out;
    }
    st = tl__store_fail(s, TL_ESTORE, "etcd: force release of %s: no clear answer", req->key);
out:
    if (st != TL_OK && st != TL_ENOTOWNER) {
        tl__record_clear(former);
        *found = false;
    }
    tl__free(keep);
    tl__etcd_group_clear(&g);
    tl__etcd_state_clear(&ks);
    tl__etcd_names_clear(&k);
    return st;
}

bool tl__etcd_stats(const struct tl_store *s, struct tl_etcd_stats *out)
{
    if (s == NULL || s->ops != &tl__store_etcd) {
        memset(out, 0, sizeof(*out));
        return false;
    }
    *out = ((const struct etcd_store *)s)->stats;
    return true;
}

const struct tl_store_ops tl__store_etcd = {
    .version = TL_STORE_OPS_VERSION,
    .scheme = "etcd",
    .size = sizeof(struct etcd_store),
    .open = etcd_open,
    .close = etcd_close,
    .claim = etcd_claim,
    .renew = etcd_renew,
    .release = tl__etcd_release,
    .inspect = tl__etcd_inspect,
    .list = tl__etcd_list,
    .history = tl__etcd_history,
    .wait = tl__etcd_wait,
    .force_release = etcd_force_release,
    .leave = tl__etcd_leave,
    .wait_turn = tl__etcd_wait_turn,
    .waiters = tl__etcd_waiters,
    .extend = etcd_extend,
    .claim_next = tl__etcd_claim_next,
    .finish = tl__etcd_finish,
    .reopen = tl__etcd_reopen,
    .done_list = tl__etcd_done_list,
    .wait_any = tl__etcd_wait_any,
    .holders = tl__etcd_holders,
    .convert = tl__etcd_convert,
};
