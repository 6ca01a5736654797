/*
 * tl_etcd_private.c -- see tl_etcd_private.h.
 */
#include "tl_etcd_private.h"

#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tl_test.h"

bool tl_test_etcd_installed(void)
{
    return system("command -v etcd >/dev/null 2>&1") == 0;
}

bool tl_test_etcd_start(struct tl_test_etcd *e, const char *dir, const char *env)
{
    char src[4096], cmd[8192], line[512];

    memset(e, 0, sizeof(*e));
    (void)snprintf(src, sizeof(src), "%s", __FILE__);
    char *root = dirname(dirname(dirname(src))); /* tests/support/x.c -> the source root */
    e->dir = dir != NULL ? strdup(dir) : tl_test_mkdtemp();
    if (e->dir == NULL)
        return false;
    (void)snprintf(cmd, sizeof(cmd), "%s %s/tests/harness/start-etcd %s", env ? env : "", root,
                   e->dir);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return false;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strncmp(line, "TL_TEST_ETCD_URL=", 17) == 0)
            (void)snprintf(e->url, sizeof(e->url), "%.*s", (int)strcspn(line + 17, "\n"),
                           line + 17);
    }
    if (pclose(p) != 0 || strncmp(e->url, "etcd://", 7) != 0) {
        (void)fprintf(stderr, "start-etcd failed (see %s/log)\n", e->dir);
        return false;
    }
    (void)snprintf(e->endpoint, sizeof(e->endpoint), "%.*s", (int)strcspn(e->url + 7, "?"),
                   e->url + 7);
    (void)snprintf(cmd, sizeof(cmd), "%s/pid", e->dir);
    FILE *f = fopen(cmd, "r");
    bool ok = f != NULL && fscanf(f, "%d", &e->pid) == 1;
    if (f != NULL)
        fclose(f);
    return ok;
}

void tl_test_etcd_stop(struct tl_test_etcd *e)
{
    if (e->pid > 0) {
        (void)kill(e->pid, SIGKILL);
        /* Not our child (start-etcd's): poll until it is gone, bounded. */
        for (int i = 0; i < 400 && kill(e->pid, 0) == 0; i++) {
            struct timespec ts = {0, 25 * 1000 * 1000};
            (void)nanosleep(&ts, NULL);
        }
        e->pid = 0;
    }
    if (e->dir != NULL)
        tl_test_rmtree(e->dir);
    free(e->dir);
    e->dir = NULL;
}
