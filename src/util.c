/*
 * util.c -- validation of keys and ids, duration parsing, URL redaction.
 */
#include <stdio.h>
#include <string.h>

#include "tl.h"

/* Length of the UTF-8 sequence at `s` (at most `n` bytes), or 0 if it is not valid UTF-8. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;

    unsigned cp = c & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    /* C1 controls and the Unicode line/paragraph separators are rejected like ASCII ones. */
    if (cp < 0xa0 || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff)
        return 0;
    return len;
}

const char *tl__check_id(const char *s, size_t max)
{
    if (s == NULL || s[0] == '\0')
        return "must not be empty";

    size_t n = strlen(s);
    if (n > max)
        return "is too long";
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f)
            return "contains a control character";
        if (c == ' ')
            return "contains white space";
        size_t len = utf8_len((const unsigned char *)s + i, n - i);
        if (len == 0)
            return "is not valid UTF-8 text";
        i += len;
    }
    return NULL;
}

bool tl_key_is_valid(const char *key)
{
    return tl__check_id(key, TL_KEY_MAX) == NULL;
}

bool tl__parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

tl_status tl_parse_duration(const char *text, uint32_t *out_ms)
{
    uint64_t whole = 0, frac = 0, frac_scale = 1;
    const char *p = text;

    if (out_ms != NULL)
        *out_ms = 0;
    if (text == NULL || out_ms == NULL || *p < '0' || *p > '9')
        return TL_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > TL_DURATION_MAX_MS)
            return TL_EINVAL;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return TL_EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (frac_scale < 1000000) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_scale *= 10;
            }
        }
    }

    uint64_t unit;
    if (*p == '\0' || strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "m") == 0)
        unit = 60 * 1000;
    else if (strcmp(p, "h") == 0)
        unit = 3600 * 1000;
    else
        return TL_EINVAL;

    uint64_t ms = whole * unit + frac * unit / frac_scale;
    if (ms > TL_DURATION_MAX_MS)
        return TL_EINVAL;
    *out_ms = (uint32_t)ms;
    return TL_OK;
}

/* Replaces the value of every "password=" query parameter (libpq URIs allow one) by "***". */
static char *redact_query_password(char *url)
{
    if (url == NULL)
        return NULL;

    char *q = strchr(url, '?');

    while (q != NULL) {
        char *v = strstr(q, "password=");
        if (v == NULL)
            break;
        if (v[-1] != '?' && v[-1] != '&') {
            q = v + 1;
            continue;
        }
        v += strlen("password=");
        size_t vlen = strcspn(v, "&#");
        char *out = tl__asprintf("%.*s***%s", (int)(v - url), url, v + vlen);
        if (out == NULL) {
            tl__free(url);
            return NULL;
        }
        q = out + (v - url) + 3;
        tl__free(url);
        url = out;
    }
    return url;
}

char *tl__redact_url(const char *url)
{
    if (url == NULL)
        return tl__strdup("(null)");

    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return redact_query_password(tl__strdup(url));

    const char *auth = sep + 3;
    size_t authlen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < authlen; i++) {
        if (auth[i] == '@')
            at = auth + i; /* the last '@' of the authority ends the userinfo */
    }
    if (at == NULL)
        return redact_query_password(tl__strdup(url));

    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    size_t userlen = (size_t)((colon ? colon : at) - auth);
    char *out = tl__asprintf("%.*s%.*s%s%s", (int)(auth - url), url, (int)userlen, auth,
                             colon ? ":***" : "", at);
    return out == NULL ? NULL : redact_query_password(out);
}
