/*
 * test_github.c -- the store conformance suite against the GitHub Issues store, on a private
 * tl-github-server (issues 1..200 of acme/widgets; the suite uses 1..100).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "conformance.h"
#include "tl_test.h"

#ifndef TL_WITH_GITHUB
int main(void)
{
    fprintf(stderr, "conformance github: this build has no GitHub store; skipped\n");
    return 77;
}
#else
#include "spawn.h"

int main(void)
{
    const char *const args[] = {"--repo", "acme/widgets", "--issues",
                                "200",    "--token",      "tasklock-bot=conformance-token",
                                NULL};
    struct tl_ghs srv;
    char url[256];

    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", "conformance-token", 1);
    /* The suite writes far faster than GitHub's content limits allow one account: the write
     * budget has its own test. GitHub timestamps have 1 s precision, so the short lock timeout
     * is 2 s. */
    (void)snprintf(url, sizeof(url),
                   "github://acme/widgets?api_url=%s&write_budget=off&reread_delay=50ms", srv.url);
    const struct tl_conformance c = {
        .name = "github",
        .url = url,
        .multi_process = true,
        .short_timeout_ms = 2000,
        .key_format = "%d",
        .key_base = 1,
        .skip_lost_event = true,
    };
    int rc = tl_conformance_run(&c);

    tl_ghs_stop(&srv);
    return rc;
}
#endif
