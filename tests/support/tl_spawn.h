/*
 * tl_spawn.h -- starts a helper program of the tests (the GitHub test server, the TCP proxy)
 * with its standard input and output on pipes, for the helpers that drive them.
 */
#ifndef TL_SPAWN_H
#define TL_SPAWN_H

#include <sys/types.h>

/*
 * Starts argv[0] (a path) with `argv`, its stdin and stdout on pipes. On success returns 0 with
 * *pid, *to_child (the write end of its stdin) and *from_child (the read end of its stdout),
 * both close-on-exec here, so that other children do not inherit them and the helper ends with
 * this process. On failure prints "WHO: why" to stderr and returns -1, leaving nothing open.
 */
int tl_spawn_piped(const char *who, const char *const argv[], pid_t *pid, int *to_child,
                   int *from_child);

#endif /* TL_SPAWN_H */
