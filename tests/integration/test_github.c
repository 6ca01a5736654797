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

/* Makes locks stale by moving the test server's clock, not by waiting. */
static void advance_server_clock(void *ud, uint32_t ms)
{
    char body[64];

    (void)snprintf(body, sizeof(body), "{\"advance_ms\":%u}", ms);
    if (tl_ghs_admin(ud, "POST", "/_admin/clock", body, NULL) != 200) {
        fprintf(stderr, "conformance github: cannot move the server clock\n");
        abort();
    }
}

int main(void)
{
    /* The suite makes far more requests than an account would in an hour (a run under a
     * sanitizer spent the test server's default 5,000 of them): the rate limit has tests of
     * its own (test_github_limits.c). */
    const char *const args[] = {"--repo",       "acme/widgets", "--issues",
                                "200",          "--token",      "tasklock-bot=conformance-token",
                                "--rate-limit", "1000000",      NULL};
    struct tl_ghs srv;
    char url[256];

    if (tl_ghs_spawn(NULL, args, &srv) != 0)
        return 1;
    setenv("GH_TOKEN", "conformance-token", 1);
    /* The suite writes far faster than GitHub's content limits allow one account: the write
     * budget has its own test. Staleness is reached by moving the server's clock; the short
     * lock timeout stays 2 s because GitHub timestamps have 1 s precision. */
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
        .advance_store_clock = advance_server_clock,
        .clock_ud = &srv,
        .fifo_only = true,
    };
    int rc = tl_conformance_run(&c);

    /* Shared holders and conversions again without sessions (sessions=off: every claim keeps
     * itself live by its own edits, as before sessions; the first pass ran with them, the
     * default). Issues 101-200. */
    char surl[300];
    (void)snprintf(surl, sizeof(surl), "%s&sessions=off", url);
    struct tl_conformance cs = c;
    cs.name = "github-per-claim";
    cs.url = surl;
    cs.key_base = 101;
    /* Both run whatever the first pass said, so that every part is seen. */
    int mrc = tl__conformance_modes_run(&cs);
    int crc = tl__conformance_convert_run(&cs);
    if (rc == 0)
        rc = mrc != 0 ? mrc : crc;

    tl_ghs_stop(&srv);
    return rc;
}
#endif
