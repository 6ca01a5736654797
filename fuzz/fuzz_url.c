/*
 * fuzz_url.c -- tl__redact_url on arbitrary text. The oracle: wherever "://user:PASSWORD@"
 * occurs, PASSWORD (whatever follows "://user:" up to the next '@') never appears in the output,
 * unless "user:DIGITS" is a host and port and the '@' lies in the path after it.
 */
#include "fuzz.h"
#include "tasklock.h"
#include "tl.h"

/* Occurrences of `needle` (not empty) in `hay`, overlapping ones included. */
static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/*
 * The password of the "://user:" at `sep` per the oracle above, as a new string, or NULL when
 * there is none or it cannot be told from the rest (it occurs elsewhere in the URL, or holds the
 * mask's '*').
 */
static char *password_at(const char *url, const char *sep)
{
    const char *pw = sep + strlen("://user:");
    const char *at = strchr(pw, '@');

    if (at == NULL || at == pw)
        return NULL;

    /* "user:6379/x@y": a host "user" with port 6379; the '@' is in the path. */
    size_t port = strspn(pw, "0123456789");
    if (port > 0 && pw + port < at && strchr("/?#", pw[port]) != NULL)
        return NULL;

    char *p = malloc((size_t)(at - pw) + 1);
    fuzz_check(p != NULL, "out of memory");
    memcpy(p, pw, (size_t)(at - pw));
    p[at - pw] = '\0';
    if (strchr(p, '*') != NULL || count(url, p) != 1) {
        free(p);
        return NULL;
    }
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = fuzz_cstr(data, size);
    char *out = tl__redact_url(url);

    fuzz_check(out != NULL, "redaction returns text");

    for (const char *sep = strstr(url, "://user:"); sep != NULL;
         sep = strstr(sep + 1, "://user:")) {
        char *pw = password_at(url, sep);

        if (pw != NULL && strstr(out, pw) != NULL) {
            (void)fprintf(stderr, "password \"%s\" shown in \"%s\"\n", pw, out);
            fuzz_check(false, "the password after \"://user:\" is not shown");
        }
        free(pw);
    }

    /* Nothing to hide, nothing changed: no userinfo, and no parameter at all (a password
     * parameter's name may be percent-encoded or in any case). */
    if (strchr(url, '@') == NULL && strchr(url, '=') == NULL)
        fuzz_check(strcmp(out, url) == 0, "a URL without userinfo or password is unchanged");

    tl__free(out);
    free(url);
    return 0;
}
