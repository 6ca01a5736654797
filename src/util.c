/*
 * util.c -- validation of keys and ids, duration parsing, URL redaction.
 */
#include <stdio.h>
#include <string.h>

#include "tl.h"

/*
 * Decodes the UTF-8 sequence at `s` (at most `n` bytes) into `*cp`. Returns its length, or 0 if
 * it is not valid UTF-8: overlong, a surrogate, beyond U+10FFFF or cut short.
 */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
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

    unsigned v = c & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/*
 * The white space of Unicode beyond ASCII (its White_Space property), and the byte order mark:
 * invisible in an id, so two ids that look the same could differ.
 */
static bool is_unicode_space(unsigned cp)
{
    return cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
}

/*
 * Invisible formatting characters: zero-width ones (U+200B-U+200F, U+2060-U+2064) and the
 * bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which can make
 * an id display as another one.
 */
static bool is_invisible_format(unsigned cp)
{
    return (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x2069);
}

const char *tl__check_id(const char *s, size_t max)
{
    if (s == NULL || s[0] == '\0')
        return "must not be empty";

    size_t n = strlen(s);
    if (n > max)
        return "is too long";
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t len = utf8_decode((const unsigned char *)s + i, n - i, &cp);

        if (len == 0)
            return "is not valid UTF-8 text";
        /* C1 controls (U+0080..U+009F) are rejected like the ASCII ones. */
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
            return "contains a control character";
        if (cp == ' ' || is_unicode_space(cp))
            return "contains white space";
        if (is_invisible_format(cp))
            return "contains an invisible formatting character";
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
        unit = (uint64_t)60 * 1000;
    else if (strcmp(p, "h") == 0)
        unit = (uint64_t)3600 * 1000;
    else
        return TL_EINVAL;

    uint64_t ms = whole * unit + frac * unit / frac_scale;
    if (ms == 0 || ms > TL_DURATION_MAX_MS) /* "0.1ms" is zero too */
        return TL_EINVAL;
    *out_ms = (uint32_t)ms;
    return TL_OK;
}

int tl__hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

tl_status tl__percent_decode(const char *s, size_t n, char **out)
{
    char *d = tl__malloc(n + 1);
    size_t j = 0;

    *out = NULL;
    if (d == NULL)
        return TL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[j++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? tl__hex_value(s[i + 1]) : -1;
        int lo = i + 2 < n ? tl__hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            /* volatile: the wipe must not be optimised away before free() */
            for (volatile char *p = d; p < d + j; p++)
                *p = '\0';
            tl__free(d);
            return TL_EINVAL;
        }
        d[j++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[j] = '\0';
    *out = d;
    return TL_OK;
}

/* Whether the parameter name of `n` bytes at `name`, percent-decoded and case-folded (libpq
 * decodes names too, so "pass%77ord" is a password), is "password" or "sslpassword". */
static bool is_secret_name(const char *name, size_t n)
{
    char dec[16];
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '%' && i + 2 < n && tl__hex_value(name[i + 1]) >= 0 &&
            tl__hex_value(name[i + 2]) >= 0) {
            c = (char)(tl__hex_value(name[i + 1]) * 16 + tl__hex_value(name[i + 2]));
            i += 2;
        }
        if (len == sizeof(dec) - 1)
            return false;
        dec[len++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    dec[len] = '\0';
    return strcmp(dec, "password") == 0 || strcmp(dec, "sslpassword") == 0;
}

/*
 * Replaces the value of every "password" query parameter (libpq URIs allow one), and of libpq's
 * "sslpassword" (the client key's passphrase), by "***" — whatever the case or percent-encoding
 * of the name.
 */
static char *redact_query_password(char *url)
{
    if (url == NULL)
        return NULL;

    char *q = strchr(url, '?');

    while (q != NULL && *q != '\0' && *q != '#') {
        char *name = q + 1;
        size_t plen = strcspn(name, "&#");
        char *eq = memchr(name, '=', plen);

        if (eq == NULL || !is_secret_name(name, (size_t)(eq - name))) {
            q = name + plen;
            continue;
        }
        char *v = eq + 1;
        size_t vlen = (size_t)(name + plen - v);
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

/* Whether the `n` bytes at `a` are a host with an optional port: "h", "h:6379", "[::1]:6379". */
static bool is_host_port(const char *a, size_t n)
{
    size_t host = n;

    for (size_t i = n; i-- > 0;) {
        if (a[i] == ']')
            break;
        if (a[i] == ':') {
            host = i;
            break;
        }
    }
    if (host < n && (host + 1 == n || strspn(a + host + 1, "0123456789") < n - host - 1))
        return false;
    if (host > 0 && a[0] == '[')
        return a[host - 1] == ']';
    return memchr(a, ':', host) == NULL;
}

char *tl__redact_url(const char *url)
{
    if (url == NULL)
        return tl__strdup("(null)");

    /* Every "://" gets its userinfo password hidden, not only the first: a URL can hold another
     * (in a query or fragment), and a message must show neither password. */
    char *out = tl__strdup(url);
    size_t from = 0;
    while (out != NULL) {
        const char *sep = strstr(out + from, "://");
        if (sep == NULL)
            break;

        const char *auth = sep + 3;
        size_t authlen = strcspn(auth, "/?#");
        const char *at = NULL;
        for (size_t i = 0; i < authlen; i++) {
            if (auth[i] == '@')
                at = auth + i; /* the last '@' of the authority ends the userinfo */
        }
        /*
         * "redis://:ab/cd@h": by RFC 3986 the authority is ":ab", but that is no host and port:
         * it is a password with a raw '/' (base64 has them), which must not be shown either.
         * The userinfo then ends at the last '@', which may hide more than the password but
         * never less.
         */
        if (at == NULL && !is_host_port(auth, authlen))
            at = strrchr(auth, '@');
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon == NULL) {
            from = (size_t)(auth - out);
            continue;
        }

        size_t keep = (size_t)(colon + 1 - out);
        char *next = tl__asprintf("%.*s***%s", (int)keep, out, at);
        tl__free(out);
        out = next;
        from = keep + 3;
    }
    return redact_query_password(out);
}
