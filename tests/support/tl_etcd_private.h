/*
 * tl_etcd_private.h -- a private single-member etcd for a test that must change the server
 * (enable authentication, speak TLS), started by tests/harness/start-etcd in a temporary
 * directory and stopped by its PID.
 */
#ifndef TL_ETCD_PRIVATE_H
#define TL_ETCD_PRIVATE_H

#include <stdbool.h>

struct tl_test_etcd {
    char *dir;         /* the temporary directory (data, log, pid) */
    char url[256];     /* etcd://127.0.0.1:PORT[?tls=1] */
    char endpoint[64]; /* 127.0.0.1:PORT */
    int pid;
};

/* Whether the etcd server program is installed. */
bool tl_test_etcd_installed(void);

/* Starts one; `env` (may be NULL) is put before the command ("TL_ETCD_CERT=... TL_ETCD_KEY=...").
 * `dir` may be given (a directory the caller made, e.g. for certificates), else one is made.
 * false (with a message on stderr) when it did not start. */
bool tl_test_etcd_start(struct tl_test_etcd *e, const char *dir, const char *env);

/* Stops it (SIGKILL, bounded wait) and removes its directory. */
void tl_test_etcd_stop(struct tl_test_etcd *e);

#endif /* TL_ETCD_PRIVATE_H */
