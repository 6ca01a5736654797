/*
 * clock.c -- real clocks and the time formats of the metadata (ISO-8601) and of HTTP (the
 * `Date` header that the GitHub store uses as the server's clock).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tl.h"

int64_t tl__real_now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tl__real_mono_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tl__real_sleep_ms(uint32_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t real_now(void *ud)
{
    (void)ud;
    return tl__real_now_ms();
}

static int64_t real_mono(void *ud)
{
    (void)ud;
    return tl__real_mono_ms();
}

static void real_sleep(void *ud, uint32_t ms)
{
    (void)ud;
    tl__real_sleep_ms(ms);
}

const struct tl_clock tl__real_clock = {
    .now_ms = real_now,
    .mono_ms = real_mono,
    .sleep_ms = real_sleep,
    .random = NULL, /* each manager seeds its own generator */
    .ud = NULL,
};

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void tl__format_iso(int64_t ms, char buf[TL_ISO_SIZE])
{
    /* Floor division by remainders, which cannot overflow even at INT64_MIN. */
    int64_t secs = ms / 1000 - (ms % 1000 < 0);
    int frac = (int)(ms % 1000 + (ms % 1000 < 0 ? 1000 : 0));
    int64_t days = secs / 86400 - (secs % 86400 < 0);
    int64_t rem = secs % 86400 + (secs % 86400 < 0 ? 86400 : 0);
    int64_t y;
    int mo, d;

    civil_from_days(days, &y, &mo, &d);
    (void)snprintf(buf, TL_ISO_SIZE, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, mo, d,
                   (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), frac);
}

/* 9999-12-31T23:59:59.999Z: the last time tl__format_iso() writes with a four-digit year. A
 * leap second on that day would read past it, into a text that could not be read back. */
#define TIME_MAX_MS INT64_C(253402300799999)

static bool digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool valid_date(int y, int mo, int d, int h, int mi, int s)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
        return false;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return false;
    return h <= 23 && mi <= 59 && s <= 60;
}

bool tl__parse_iso(const char *s, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, ms = 0;

    if (s == NULL || strlen(s) < 20)
        return false;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return false;
    if (!valid_date(y, mo, d, h, mi, sec))
        return false;

    const char *p = s + 19;
    if (*p == '.') {
        int n = 0, scale = 100;

        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                ms += (*p - '0') * scale;
            scale /= 10;
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return false;
    }
    if (!((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') && strcmp(p, "+00:00") != 0)
        return false;

    int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec;
    int64_t t = secs * 1000 + ms;
    if (t > TIME_MAX_MS)
        return false;
    *out_ms = t;
    return true;
}

bool tl__parse_http_date(const char *s, int64_t *out_ms)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int d, y, h, mi, sec;

    /* "Sun, 06 Nov 1994 08:49:37 GMT": fixed layout, 29 characters. */
    if (s == NULL || strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || strcmp(s + 25, " GMT") != 0)
        return false;
    if (!digits(s + 5, 2, &d) || !digits(s + 12, 4, &y) || !digits(s + 17, 2, &h) ||
        !digits(s + 20, 2, &mi) || !digits(s + 23, 2, &sec))
        return false;

    int mo = 0;
    for (size_t i = 0; i < 12; i++) {
        if (strncmp(s + 8, months + 3 * i, 3) == 0)
            mo = (int)i + 1;
    }
    if (mo == 0 || !valid_date(y, mo, d, h, mi, sec))
        return false;

    int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec;
    int64_t t = secs * 1000;
    if (t > TIME_MAX_MS)
        return false;
    *out_ms = t;
    return true;
}
