/*
 * fencing.c -- why a lock alone is not enough, and how the fencing token fixes it.
 *
 *   example_fencing
 *
 * A lock can be lost without its holder knowing: the holder pauses (a GC pause, SIGSTOP, a
 * swapped-out VM), its heartbeat stops, the lock goes stale and another worker steals it. When
 * the first holder wakes up it still believes it holds the lock, and writes. The remedy is on
 * the resource's side: every write carries the writer's fencing token, and the resource
 * rejects a token lower than the highest it has seen for that key. tasklock gives every new
 * holder of a key a larger token than all before it, so the late writer is always the one
 * turned away.
 *
 * Here the resource is a toy in-memory "storage". Worker A acquires and writes; then A pauses:
 * it stops heartbeating (simulated by freeing its lock handle without releasing, which leaves
 * the record in the store to go stale). B steals the stale lock and writes with its larger
 * token. A wakes up and tries its late write with its old token: rejected.
 *
 * Runs on the in-process memory store; exits 0 when the stale write was rejected.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tasklock.h"

#define STORE "memory:fencing"
#define KEY   "customer-42"

/* ---- the resource: a key-value storage that checks fencing tokens ---- */

struct storage_entry {
    char key[64];
    uint64_t highest_token; /* the highest token seen for this key */
    char value[64];
};

struct storage {
    struct storage_entry entries[8];
    size_t count;
};

/* Writes `value` under `key` if `token` is at least the highest seen for the key; returns
 * whether it was accepted. Equal tokens are accepted: one holder writes many times. This check
 * must happen inside the resource, atomically with the write (in a database: a conditional
 * UPDATE ... WHERE token <= ?, or a compare-and-set). */
static bool storage_write(struct storage *s, const char *key, uint64_t token, const char *value)
{
    struct storage_entry *e = NULL;

    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->entries[i].key, key) == 0)
            e = &s->entries[i];
    }
    if (e == NULL) {
        if (s->count == sizeof(s->entries) / sizeof(s->entries[0]))
            return false;
        e = &s->entries[s->count++];
        (void)snprintf(e->key, sizeof(e->key), "%s", key);
    }
    if (token < e->highest_token)
        return false;
    e->highest_token = token;
    (void)snprintf(e->value, sizeof(e->value), "%s", value);
    return true;
}

static const char *storage_read(const struct storage *s, const char *key)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->entries[i].key, key) == 0)
            return s->entries[i].value;
    }
    return "(none)";
}

/* ---- the workers ---- */

static tl_manager *new_worker(const char *id)
{
    const struct tl_options opts = {
        .store_url = STORE,
        .worker_id = id,
        .lock_timeout_ms = 300, /* stale 300 ms after the last heartbeat */
        .backoff_initial_ms = 20,
        .backoff_max_ms = 80,
    };
    tl_manager *m = tl_manager_new(&opts);

    if (m == NULL || tl_connect(m) != TL_OK) {
        fprintf(stderr, "%s: %s\n", id, m ? tl_errmsg(m) : "out of memory");
        tl_manager_free(m);
        return NULL;
    }
    return m;
}

static bool write_step(struct storage *s, const char *who, uint64_t token, const char *value)
{
    bool ok = storage_write(s, KEY, token, value);

    printf("%s writes \"%s\" with token %llu: %s\n", who, value, (unsigned long long)token,
           ok ? "accepted" : "REJECTED (a newer holder has written)");
    return ok;
}

int main(void)
{
    struct storage storage = {0};
    tl_manager *a = new_worker("worker-a"), *b = new_worker("worker-b");
    tl_lock *la = NULL, *lb = NULL;
    int rc = 1;

    if (a == NULL || b == NULL)
        goto out;

    /* 1. A acquires and writes with its token. */
    if (tl_acquire(a, KEY, NULL, &la) != TL_OK) {
        fprintf(stderr, "worker-a: %s\n", tl_errmsg(a));
        goto out;
    }
    uint64_t token_a = tl_lock_token(la);
    printf("worker-a acquires %s: token %llu\n", KEY, (unsigned long long)token_a);
    bool a_first = write_step(&storage, "worker-a", token_a, "balance=100 (by A)");

    /* 2. A pauses. Its heartbeat stops (here: the handle is freed without a release; the
     * record stays in the store and goes stale after 300 ms). A keeps its token: when it
     * wakes up it will believe it still holds the lock. */
    tl_lock_free(la);
    la = NULL;
    printf("worker-a pauses; its heartbeat stops\n");

    /* 3. B wants the task; STEAL_STALE waits until A's lock is stale, then takes it. */
    const struct tl_acquire_opts steal = {.strategy = TL_STEAL_STALE, .deadline_ms = 5000};
    if (tl_acquire(b, KEY, &steal, &lb) != TL_OK) {
        fprintf(stderr, "worker-b: %s\n", tl_errmsg(b));
        goto out;
    }
    uint64_t token_b = tl_lock_token(lb);
    printf("worker-b steals the stale lock: token %llu\n", (unsigned long long)token_b);
    bool b_write = write_step(&storage, "worker-b", token_b, "balance=80 (by B)");

    /* 4. A wakes up and finishes its work: its late write carries the old token. */
    printf("worker-a wakes up, unaware\n");
    bool a_late = write_step(&storage, "worker-a", token_a, "balance=150 (by A, late)");

    /* 5. B finishes and releases. A later holder would get a larger token still. */
    if (tl_release(lb, "balance updated") != TL_OK) {
        fprintf(stderr, "worker-b: release: %s\n", tl_errmsg(b));
        goto out;
    }
    printf("worker-b releases; storage holds \"%s\"\n", storage_read(&storage, KEY));

    /* The audit trail of the key, as the store recorded it. */
    struct tl_event **ev = NULL;
    size_t n = 0;
    if (tl_history(b, KEY, 0, &ev, &n) == TL_OK) {
        printf("history of %s:\n", KEY);
        for (size_t i = 0; i < n; i++)
            printf("  %-8s %-9s token %llu%s%s\n", tl_event_kind_name(ev[i]->kind),
                   ev[i]->worker_id, (unsigned long long)ev[i]->token, ev[i]->detail ? "  " : "",
                   ev[i]->detail ? ev[i]->detail : "");
        tl_event_array_free(ev, n);
    }

    if (a_first && token_b > token_a && b_write && !a_late &&
        strcmp(storage_read(&storage, KEY), "balance=80 (by B)") == 0)
        rc = 0;

out:
    tl_lock_free(la);
    tl_lock_free(lb);
    tl_manager_free(a);
    tl_manager_free(b);
    printf("%s\n", rc == 0 ? "the stale write was fenced off" : "FAILED");
    return rc;
}
