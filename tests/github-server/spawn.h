/*
 * spawn.h -- for tests: start a private tl-github-server, talk to its admin API, stop it.
 *
 * Link the static library target `tl_ghs_client` (libcurl, jansson) and `#include "spawn.h"`.
 * A test executable usually starts its own server so that faults and counters of one test do not
 * disturb another; PROTOCOL.md describes the server. None of these functions is thread-safe on
 * the same `struct tl_ghs`; different instances may be used from different threads.
 */
#ifndef TL_GHS_SPAWN_H
#define TL_GHS_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

struct tl_ghs {
    pid_t pid;    /* the server process; 0 when not running */
    int port;     /* its TCP port on 127.0.0.1 */
    char url[64]; /* "http://127.0.0.1:PORT", no trailing slash: the GitHub API base URL */
    int stdin_fd; /* write end of the server's stdin (it runs with --die-with-stdin): if this
                   * process dies, the server goes too */
};

/*
 * Starts `bin --port 0 --die-with-stdin extra_args...` and waits up to 10 s for its
 * "listening on" line. `bin` NULL means: $TL_GITHUB_SERVER_BIN if set, else
 * $TL_TEST_BINARY_DIR/tl-github-server if set, else ./tl-github-server. `extra_args` is a
 * NULL-terminated array (borrowed) or NULL, e.g. {"--repo", "o/r", "--issues", "3", NULL}.
 * Returns 0 and fills `out`, or -1 (message on stderr; `out` zeroed, nothing left running).
 */
int tl_ghs_spawn(const char *bin, const char *const extra_args[], struct tl_ghs *out);

/* SIGTERM, then waits for the process (SIGKILL after 5 s); `g` is zeroed. Returns 0 if the
 * server exited cleanly with status 0, else -1 with a message on stderr (e.g. a sanitizer
 * report made it exit non-zero); callers may ignore it. NULL or a stopped instance: 0. */
int tl_ghs_stop(struct tl_ghs *g);

/*
 * One request to the server: `method` "GET"/"POST"/..., `path` such as "/_admin/faults"
 * (may carry a query), `json_body` NULL for none (a POST without one sends "{}"). Returns the
 * HTTP status, or -1 on a transport error. If `response` is not NULL it receives the body,
 * NUL-terminated, which the caller frees with free() (NULL on -1).
 */
int tl_ghs_admin(const struct tl_ghs *g, const char *method, const char *path,
                 const char *json_body, char **response);

/*
 * One counter of GET /_admin/stats: "total", "writes", "not_modified", "dropped",
 * "status:NNN" (by_status), "login:LOGIN" (by_login), or an endpoint name such as
 * "POST /repos/{o}/{r}/issues/{n}/comments" (by_endpoint). Absent keys are 0; -1 on error.
 */
long tl_ghs_stat(const struct tl_ghs *g, const char *name);

#endif /* TL_GHS_SPAWN_H */
