/*
 * tl_test.c -- helpers shared by the tests.
 */
#include "tl_test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t fake_now(void *ud)
{
    return ((struct tl_fake_clock *)ud)->now_ms;
}

static int64_t fake_mono(void *ud)
{
    return ((struct tl_fake_clock *)ud)->mono_ms;
}

static void fake_sleep(void *ud, uint32_t ms)
{
    struct tl_fake_clock *fc = ud;

    if (fc->nslept < sizeof(fc->slept) / sizeof(fc->slept[0]))
        fc->slept[fc->nslept++] = ms;
    fc->slept_total += ms;
    tl_fake_clock_advance(fc, ms);
    if (fc->on_sleep != NULL)
        fc->on_sleep(fc->on_sleep_arg, fc->nslept);
}

static uint32_t fake_random(void *ud)
{
    return ((struct tl_fake_clock *)ud)->random;
}

void tl_fake_clock_init(struct tl_fake_clock *fc)
{
    memset(fc, 0, sizeof(*fc));
    fc->now_ms = 1767225600000; /* 2026-01-01T00:00:00Z */
    fc->mono_ms = 1000000;
}

void tl_fake_clock_install(tl_manager *m, struct tl_fake_clock *fc)
{
    const struct tl_clock c = {
        .now_ms = fake_now,
        .mono_ms = fake_mono,
        .sleep_ms = fake_sleep,
        .random = fake_random,
        .ud = fc,
    };
    tl__manager_set_clock(m, &c);
}

void tl_fake_clock_advance(struct tl_fake_clock *fc, int64_t ms)
{
    fc->now_ms += ms;
    fc->mono_ms += ms;
}

char *tl_test_mkdtemp(void)
{
    const char *tmp = getenv("TMPDIR");
    char buf[512];

    (void)snprintf(buf, sizeof(buf), "%s/tasklock-test.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(buf) == NULL)
        return NULL;
    return strdup(buf);
}

void tl_test_rmtree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;

    if (d == NULL) {
        (void)unlink(path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;

        char child[1024];
        struct stat st;
        (void)snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
            tl_test_rmtree(child);
        else
            (void)unlink(child);
    }
    closedir(d);
    (void)rmdir(path);
}

const char *tl_test_env(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

bool tl_test_poll(bool (*cond)(void *arg), void *arg, uint32_t step_ms, uint32_t limit_ms)
{
    int64_t end = tl__real_mono_ms() + limit_ms;

    for (;;) {
        if (cond(arg))
            return true;
        if (tl__real_mono_ms() >= end)
            return cond(arg);
        tl__real_sleep_ms(step_ms);
    }
}

void tl_test_on_lost(void *ud, tl_lock *l)
{
    struct tl_test_lost *s = ud;

    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->token = tl_lock_token(l);
    pthread_mutex_unlock(&s->mu);
}

bool tl_test_lost_fired(void *arg)
{
    struct tl_test_lost *s = arg;

    pthread_mutex_lock(&s->mu);
    bool fired = s->calls > 0;
    pthread_mutex_unlock(&s->mu);
    return fired;
}

int tl_test_server_port(void)
{
    int low = 32768, high = 60999, lo = 20000, hi;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

    if (f != NULL) {
        if (fscanf(f, "%d %d", &low, &high) != 2) {
            low = 32768;
            high = 60999;
        }
        (void)fclose(f);
    }
    hi = low - 1;
    if (hi < lo + 1000) { /* the ephemeral range starts low: go above it */
        lo = high + 1;
        hi = 65535;
        if (hi < lo + 1000) { /* it covers nearly everything: take our chances */
            lo = 20000;
            hi = 60000;
        }
    }
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    for (int attempt = 0; attempt < 200; attempt++) {
        int port = lo + (int)(rand_r(&seed) % (unsigned)(hi - lo + 1));
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (fd < 0)
            break;
        int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
        (void)close(fd);
        if (rc == 0)
            return port;
    }
    return 0;
}
