/*
 * fuzz_key.c -- tl__check_id and tl_key_is_valid on arbitrary bytes (a NUL-terminated copy),
 * against a model written separately from RFC 3629's table of well-formed byte sequences, and
 * against jansson's own UTF-8 check.
 */
#include <jansson.h>

#include "fuzz.h"
#include "tasklock.h"
#include "tl.h"

/* RFC 3629 section 4: the well-formed sequences by their first byte. Returns the length of the
 * sequence at `s` and its code point, or 0. */
static size_t model_char(const unsigned char *s, uint32_t *cp)
{
    static const struct {
        unsigned char first_lo, first_hi, second_lo, second_hi;
        size_t len;
    } rows[] = {
        {0x00, 0x7f, 0, 0, 1},       {0xc2, 0xdf, 0x80, 0xbf, 2}, {0xe0, 0xe0, 0xa0, 0xbf, 3},
        {0xe1, 0xec, 0x80, 0xbf, 3}, {0xed, 0xed, 0x80, 0x9f, 3}, {0xee, 0xef, 0x80, 0xbf, 3},
        {0xf0, 0xf0, 0x90, 0xbf, 4}, {0xf1, 0xf3, 0x80, 0xbf, 4}, {0xf4, 0xf4, 0x80, 0x8f, 4},
    };

    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        if (s[0] < rows[r].first_lo || s[0] > rows[r].first_hi)
            continue;
        size_t len = rows[r].len;
        if (len > 1 && (s[1] < rows[r].second_lo || s[1] > rows[r].second_hi))
            return 0;
        for (size_t i = 2; i < len; i++) {
            if (s[i] < 0x80 || s[i] > 0xbf)
                return 0;
        }
        static const unsigned char lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
        *cp = s[0] & lead_mask[len];
        for (size_t i = 1; i < len; i++)
            *cp = (*cp << 6) | (s[i] & 0x3f);
        return len;
    }
    return 0;
}

/* Code points an id may not hold: controls (C0, DEL, C1), white space (Unicode's White_Space
 * property) with the byte order mark, and invisible formatting characters (zero-width ones and
 * the bidirectional embeddings, overrides and isolates). */
static bool model_forbidden(uint32_t cp)
{
    static const uint32_t spaces[] = {0x20,   0xa0,   0x1680, 0x2028, 0x2029,
                                      0x202f, 0x205f, 0x3000, 0xfeff};

    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x2000 && cp <= 0x200f))
        return true;
    if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) ||
        (cp >= 0x2066 && cp <= 0x2069))
        return true;
    for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++) {
        if (cp == spaces[i])
            return true;
    }
    return false;
}

static bool model_valid(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t len = model_char((const unsigned char *)s + i, &cp);

        if (len == 0 || model_forbidden(cp))
            return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    const char *why_id = tl__check_id(s, TL_ID_MAX);
    const char *why_key = tl__check_id(s, TL_KEY_MAX);

    fuzz_check((why_id == NULL) == model_valid(s, TL_ID_MAX), "an id is valid as the model says");
    fuzz_check((why_key == NULL) == model_valid(s, TL_KEY_MAX), "a key is valid as the model says");
    fuzz_check(tl_key_is_valid(s) == (why_key == NULL), "tl_key_is_valid is tl__check_id");
    fuzz_check(why_id != NULL || why_key == NULL, "a valid id is a valid key");
    if (why_key != NULL)
        fuzz_check(why_key[0] != '\0', "a reason is given");

    /* What we accept, JSON can carry (the metadata is JSON). */
    if (why_key == NULL) {
        json_t *j = json_string(s);

        fuzz_check(j != NULL, "jansson takes a valid key as UTF-8");
        json_decref(j);
    }

    /* Any prefix cut at a character boundary of a valid key is valid too (if not empty). */
    if (why_key == NULL && strlen(s) > 1) {
        size_t cut = strlen(s) / 2;

        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
            cut--;
        if (cut > 0) {
            s[cut] = '\0';
            fuzz_check(tl_key_is_valid(s), "a prefix of a valid key is valid");
        }
    }
    free(s);
    return 0;
}
