/*
 * tl.h -- internal helpers shared by the manager and the stores. Not installed.
 */
#ifndef TL_INTERNAL_H
#define TL_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tasklock.h"

#if defined(__GNUC__)
#define TL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TL_PRINTF(fmt, args)
#endif

#define TL_ERRMSG_SIZE 256

/* Limits of the input we accept; docs/api.md documents them. */
#define TL_KEY_MAX         255
#define TL_ID_MAX          128
#define TL_META_MAX        ((size_t)64 * 1024)
#define TL_DURATION_MAX_MS 2073600000u /* 24 days in ms: fits int32 arithmetic */

/* Defaults of struct tl_options (the seed's). */
#define TL_DEFAULT_RETRIES            5
#define TL_DEFAULT_BACKOFF_INITIAL_MS 1000
#define TL_DEFAULT_BACKOFF_MAX_MS     16000
#define TL_DEFAULT_HEARTBEAT_MS       30000
#define TL_DEFAULT_LOCK_TIMEOUT_MS    300000
/* A waiter's timeout in line (at most the lock timeout; docs/guide.md, "Waiting in line"). */
#define TL_WAITER_TIMEOUT_MS 10000
/* How long a waiter that gives up at its acquire's deadline may take to leave the line, past
 * that deadline (docs/api.md, deadline_ms). */
#define TL_LEAVE_BUDGET_MS 250

/* ---- allocation (alloc.c): every allocation goes through these, so tests can fail them ---- */
void *tl__malloc(size_t n);
void *tl__calloc(size_t n, size_t size);
void *tl__realloc(void *p, size_t n);
void tl__free(void *p);
char *tl__strdup(const char *s); /* NULL in, NULL out */
char *tl__strndup(const char *s, size_t n);
char *tl__asprintf(const char *fmt, ...) TL_PRINTF(1, 2);

/* ---- clocks (clock.c) ---- */

/* Time sources of a manager. Tests replace them; production uses the real clocks. */
struct tl_clock {
    int64_t (*now_ms)(void *ud);  /* wall clock: ms since the Unix epoch */
    int64_t (*mono_ms)(void *ud); /* monotonic ms, for deadlines and intervals */
    void (*sleep_ms)(void *ud, uint32_t ms);
    uint32_t (*random)(void *ud); /* jitter source; NULL: the manager's own */
    void *ud;
};
extern const struct tl_clock tl__real_clock;
int64_t tl__real_now_ms(void);
int64_t tl__real_mono_ms(void);
void tl__real_sleep_ms(uint32_t ms);

/* "2026-11-26T23:28:01.123Z". `buf` has room for TL_ISO_SIZE bytes. */
#define TL_ISO_SIZE 64
void tl__format_iso(int64_t ms, char buf[TL_ISO_SIZE]);
/* Parses ISO-8601 UTC ("YYYY-MM-DDTHH:MM:SS[.fff]Z" or "+00:00"). false on anything else. */
bool tl__parse_iso(const char *s, int64_t *out_ms);
/* Parses an HTTP IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). */
bool tl__parse_http_date(const char *s, int64_t *out_ms);

/* ---- validation (util.c) ---- */

/* Returns NULL if `s` is a valid id of at most `max` bytes, else static text saying why. */
const char *tl__check_id(const char *s, size_t max);
/* Copies `url` with any userinfo password replaced by "***", for messages. Caller frees. */
char *tl__redact_url(const char *url);
/* Parses a decimal uint64 (no sign, no junk). */
bool tl__parse_u64(const char *s, uint64_t *out);
/* The value of a hex digit, or -1. */
int tl__hex_value(char c);
/*
 * Percent-decodes the `n` bytes at `s` into a new string (*out; the caller frees it). TL_EINVAL
 * for a bad escape or an encoded NUL, TL_ENOMEM; *out is NULL then, and whatever was decoded has
 * been wiped (the text may be a password).
 */
tl_status tl__percent_decode(const char *s, size_t n, char **out);

/* ---- records (record.c, json.c) ---- */

/*
 * A lock record inside the library: the public view plus what a store carries along with a held
 * lock. The public tl_info is first so that a `struct tl_info *` handed out can be freed as a
 * record.
 */
struct tl_record {
    struct tl_info info;
    char *opaque; /* store-private text (the GitHub claim nonce); NULL if none */
};
_Static_assert(offsetof(struct tl_record, info) == 0, "info must be first");

struct tl_record *tl__record_new(void);
void tl__record_clear(struct tl_record *r); /* frees the strings, zeroes */
void tl__record_free(struct tl_record *r);
/* Deep copy into a zeroed or cleared `dst`. TL_ENOMEM on failure (dst left cleared). */
tl_status tl__record_copy(struct tl_record *dst, const struct tl_record *src);
/* Marks `r` stale or not as judged at `now_ms` (store clock); sets observed_at_ms. */
void tl__record_judge(struct tl_record *r, int64_t now_ms);

struct tl_event *tl__event_new(void);
void tl__event_free(struct tl_event *e);
/* The kind named `name` ("acquired", ...), as tl_event_kind_name() spells it. */
bool tl__event_kind_from_name(const char *name, tl_event_kind *out);
/* Reverses an array of events in place (stores read newest first; history is oldest first). */
void tl__event_array_reverse(struct tl_event **arr, size_t n);

/*
 * Metadata JSON (json.c). Encode returns a new string (caller frees) or NULL when out of memory.
 * Decode fills a cleared `out` from `text` of `len` bytes; on error returns TL_EINVAL and writes
 * a message naming the bad field into `err` (TL_ERRMSG_SIZE bytes); `out` is then cleared.
 * `key` (may be NULL) is copied into the record, since the metadata does not carry it.
 */
char *tl__meta_encode(const struct tl_info *info);
tl_status tl__meta_decode(const char *text, size_t len, const char *key, struct tl_record *out,
                          char *err);
/*
 * Checks and normalises user task_info: NULL or "" gives "{}"; else it must be a JSON object of
 * at most TL_META_MAX bytes. On success `*out` is the compact text (caller frees).
 */
tl_status tl__task_info_normalize(const char *text, char **out, char *err);

/* ---- logging (log.c) ---- */
struct tl_logger {
    tl_log_fn *fn;
    void *ud;
    int level;
};
void tl__log(const struct tl_logger *lg, int level, const char *fmt, ...) TL_PRINTF(3, 4);
/* Checks the level before formatting (no work when the message would be dropped). */
#define TL_LOG(lg, lvl, ...)                                          \
    do {                                                              \
        if ((lg) != NULL && (lg)->fn != NULL && (lvl) <= (lg)->level) \
            tl__log((lg), (lvl), __VA_ARGS__);                        \
    } while (0)

/* ---- errors (error.c) ---- */
/* Formats into a TL_ERRMSG_SIZE buffer. */
void tl__vformat(char *buf, const char *fmt, va_list ap) TL_PRINTF(2, 0);

/* Writes the manager's message slot and returns `st`. Main thread only. */
tl_status tl__fail(tl_manager *m, tl_status st, const char *fmt, ...) TL_PRINTF(3, 4);

#endif /* TL_INTERNAL_H */
