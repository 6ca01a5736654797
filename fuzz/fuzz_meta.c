/*
 * fuzz_meta.c -- tl__meta_decode on arbitrary bytes (exactly `size` of them: no terminator, so
 * that AddressSanitizer sees any read past the end). On success the record is encoded and
 * decoded again, and must come back the same, with the same text on a second encoding. The same
 * bytes also go through tl__task_info_normalize, which must be idempotent.
 */
#include "fuzz.h"
#include "tasklock.h"
#include "tl.h"

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_record(const struct tl_record *a, const struct tl_record *b)
{
    return same_str(a->info.key, b->info.key) && same_str(a->info.worker_id, b->info.worker_id) &&
           same_str(a->info.node_id, b->info.node_id) &&
           same_str(a->info.task_info, b->info.task_info) && a->info.token == b->info.token &&
           a->info.claimed_at_ms == b->info.claimed_at_ms &&
           a->info.heartbeat_at_ms == b->info.heartbeat_at_ms &&
           a->info.lock_timeout_ms == b->info.lock_timeout_ms && same_str(a->opaque, b->opaque);
}

static bool is_clear(const struct tl_record *r)
{
    const struct tl_info *i = &r->info;

    return i->key == NULL && i->worker_id == NULL && i->node_id == NULL && i->task_info == NULL &&
           i->token == 0 && i->claimed_at_ms == 0 && i->heartbeat_at_ms == 0 &&
           i->lock_timeout_ms == 0 && i->observed_at_ms == 0 && !i->stale && r->opaque == NULL;
}

static void fuzz_decode(const uint8_t *data, size_t size)
{
    struct tl_record rec, back;
    char err[TL_ERRMSG_SIZE] = "";

    tl_status st = tl__meta_decode((const char *)data, size, "k", &rec, err);
    if (st != TL_OK) {
        fuzz_check(st == TL_EINVAL, "a decoding failure is TL_EINVAL");
        fuzz_check(strncmp(err, "metadata: ", 10) == 0, "the message says metadata");
        fuzz_check(is_clear(&rec), "the record is cleared");
        return;
    }

    /* What decoding lets through is what the rest of the library relies on. */
    fuzz_check(tl__check_id(rec.info.worker_id, TL_ID_MAX) == NULL, "worker_id is a valid id");
    fuzz_check(tl__check_id(rec.info.node_id, TL_ID_MAX) == NULL, "node_id is a valid id");
    fuzz_check(rec.info.task_info != NULL && rec.info.task_info[0] == '{', "task_info is object");
    fuzz_check(rec.info.token <= (uint64_t)INT64_MAX, "token fits int64");
    fuzz_check(rec.info.lock_timeout_ms <= TL_DURATION_MAX_MS, "timeout is at most 24 days");
    fuzz_check(rec.info.claimed_at_ms >= 0 && rec.info.heartbeat_at_ms >= 0, "times after 1970");

    char *text = tl__meta_encode(&rec.info);
    fuzz_check(text != NULL, "a decoded record encodes");
    st = tl__meta_decode(text, strlen(text), "k", &back, err);
    if (st != TL_OK) {
        (void)fprintf(stderr, "re-decoding failed: %s\n%s\n", err, text);
        fuzz_check(false, "an encoded record decodes");
    }
    fuzz_check(same_record(&rec, &back), "decode -> encode -> decode gives the same record");

    char *text2 = tl__meta_encode(&back.info);
    fuzz_check(text2 != NULL && strcmp(text, text2) == 0, "encoding is stable");

    tl__free(text2);
    tl__free(text);
    tl__record_clear(&back);
    tl__record_clear(&rec);
}

static void fuzz_task_info(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char *out = (char *)s; /* must be overwritten */
    char *again = NULL;
    char err[TL_ERRMSG_SIZE] = "";

    tl_status st = tl__task_info_normalize(s, &out, err);
    if (st != TL_OK) {
        fuzz_check(st == TL_EINVAL, "a task info failure is TL_EINVAL");
        fuzz_check(out == NULL, "*out is NULL on failure");
        free(s);
        return;
    }
    fuzz_check(out != NULL && out[0] == '{', "a task info is an object");
    fuzz_check(strlen(out) <= (size_t)TL_META_MAX, "a task info is within the limit");
    fuzz_check(tl__task_info_normalize(out, &again, err) == TL_OK, "normalised text is valid");
    fuzz_check(strcmp(out, again) == 0, "normalising is idempotent");
    tl__free(again);
    tl__free(out);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decode(data, size);
    fuzz_task_info(data, size);
    return 0;
}
