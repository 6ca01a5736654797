/*
 * tl_proxy.h -- for tests: start a tl-proxy (tests/proxy/proxy.c) in front of a server on
 * 127.0.0.1, freeze it (a network partition), thaw it, drop its connections, stop it.
 *
 * Plain POSIX, no test framework: tl_testsupport (the cmocka tests) and tl-torture both use it.
 * Not thread-safe on one `struct tl_proxy`.
 */
#ifndef TL_PROXY_H
#define TL_PROXY_H

#include <stddef.h>
#include <sys/types.h>

struct tl_proxy {
    pid_t pid;         /* the proxy process; 0 when not running */
    int port;          /* where it listens, on 127.0.0.1 */
    int in_fd;         /* write end of its stdin: commands */
    int out_fd;        /* read end of its stdout: answers */
    char answer[256];  /* the last answer line, without its newline */
    char pending[256]; /* bytes read past the last answer */
    size_t npending;
};

/*
 * Starts `bin TARGET_HOST TARGET_PORT` and waits up to 10 s for the port it listens on. `bin`
 * NULL means: $TL_PROXY_BIN if set, else $TL_TEST_BINARY_DIR/tl-proxy if set, else tl-proxy
 * beside this program (/proc/self/exe), else ./tl-proxy. Returns 0 and fills `out`, or -1 with
 * a message on stderr (`out` then has pid 0 and nothing is left running).
 */
int tl_proxy_start(const char *bin, const char *target_host, int target_port, struct tl_proxy *out);

/* Sends one command ("freeze", "thaw", "drop", "stats") and waits up to 10 s for its answer
 * (in p->answer). Returns 0 when the answer begins with "ok", else -1 (message on stderr). */
int tl_proxy_cmd(struct tl_proxy *p, const char *cmd);

/* A number from the last "stats" answer ("conns", "accepted", "bytes", "frozen"), or -1. */
long long tl_proxy_stat(const struct tl_proxy *p, const char *name);

/* Closes its stdin (it exits at end of file) and waits up to 5 s, then SIGKILL. Returns 0 if it
 * exited with status 0. NULL, a stopped proxy or one never started (pid 0, as in a zeroed
 * struct): 0, and nothing is closed. The fields are reset. */
int tl_proxy_stop(struct tl_proxy *p);

/* In a child forked after tl_proxy_start(): closes the child's copies of the pipes, so that the
 * proxy still sees end of file when its parent stops it or dies. A proxy never started: no-op. */
void tl_proxy_forget(struct tl_proxy *p);

/*
 * URLs. The port of the first "127.0.0.1:PORT" or "localhost:PORT" in `url` (a Redis or
 * PostgreSQL URL, or a GitHub store URL's api_url=http://127.0.0.1:PORT), or 0 when there is
 * none. tl_proxy_url_via() writes `url` with that port replaced by `port` (the same server,
 * through a proxy) and returns 0, or -1 when there is none or `out` is too small.
 */
int tl_proxy_url_port(const char *url);
int tl_proxy_url_via(const char *url, int port, char *out, size_t size);

#endif /* TL_PROXY_H */
