/*
 * shared.c -- the shared file mapping of a torture run and the fenced resource in it.
 *
 * MAP_ANONYMOUS is not POSIX, so the mapping is a file (in the run's temporary directory) mapped
 * MAP_SHARED before the workers are forked. The fenced resource is guarded by a process-shared
 * mutex; it is also robust, so that a worker killed inside it cannot wedge the others (the
 * scenarios avoid killing there anyway: see faults in torture.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "torture.h"

#define TT_MAGIC 0x746c746f72747572ull /* "tltortur" */

int64_t tt_now_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void tt_sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;

    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static size_t align_up(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

struct tt_shared *tt_shared_create(const char *path, uint32_t nkeys, uint32_t max_sections,
                                   uint32_t max_writes, uint32_t max_attempts)
{
    size_t sec_off = align_up(sizeof(struct tt_shared));
    size_t wr_off = align_up(sec_off + (size_t)max_sections * sizeof(struct tt_section));
    size_t at_off = align_up(wr_off + (size_t)max_writes * sizeof(struct tt_write));
    size_t size = align_up(at_off + (size_t)max_attempts * sizeof(struct tt_attempt));

    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    if (ftruncate(fd, (off_t)size) != 0) {
        (void)close(fd);
        return NULL;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    (void)close(fd);
    if (p == MAP_FAILED)
        return NULL;

    struct tt_shared *sh = p; /* the file is zero-filled: every counter starts at 0 */
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0)
        goto err_unmap;
    int rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(&sh->mu, &attr);
    (void)pthread_mutexattr_destroy(&attr);
    if (rc != 0)
        goto err_unmap;

    sh->magic = TT_MAGIC;
    sh->nkeys = nkeys;
    atomic_init(&sh->nsections, 0);
    atomic_init(&sh->log_full, 0);
    atomic_init(&sh->faults_done, 0);
    atomic_init(&sh->recovered, 0);
    atomic_init(&sh->partition_armed, 0);
    sh->max_sections = max_sections;
    sh->max_writes = max_writes;
    sh->sections_off = sec_off;
    sh->writes_off = wr_off;
    sh->attempts_off = at_off;
    sh->max_attempts = max_attempts;
    atomic_init(&sh->nattempts, 0);
    sh->size = size;
    for (uint32_t i = 0; i < TT_MAX_WORKERS; i++) {
        atomic_init(&sh->workers[i].state, TT_IDLE);
        atomic_init(&sh->workers[i].section, 0);
        atomic_init(&sh->workers[i].in_resource, 0);
        atomic_init(&sh->workers[i].long_hold, 0);
        atomic_init(&sh->workers[i].cycles_done, 0);
        atomic_init(&sh->workers[i].in_line, 0);
        atomic_init(&sh->workers[i].in_claim, 0);
        atomic_init(&sh->workers[i].attempt, 0);
    }
    return sh;

err_unmap:
    (void)munmap(p, size);
    return NULL;
}

void tt_shared_destroy(struct tt_shared *sh)
{
    if (sh == NULL)
        return;
    (void)pthread_mutex_destroy(&sh->mu);
    (void)munmap(sh, sh->size);
}

struct tt_section *tt_sections(struct tt_shared *sh)
{
    return (struct tt_section *)((char *)sh + sh->sections_off);
}

struct tt_write *tt_writes(struct tt_shared *sh)
{
    return (struct tt_write *)((char *)sh + sh->writes_off);
}

struct tt_attempt *tt_attempts(struct tt_shared *sh)
{
    return (struct tt_attempt *)((char *)sh + sh->attempts_off);
}

struct tt_attempt *tt_attempt_new(struct tt_shared *sh, uint32_t *id)
{
    uint32_t n = atomic_fetch_add(&sh->nattempts, 1);

    if (n >= sh->max_attempts) {
        atomic_store(&sh->log_full, 1);
        return NULL;
    }
    *id = n;
    return &tt_attempts(sh)[n];
}

struct tt_section *tt_section_new(struct tt_shared *sh, uint32_t *id)
{
    uint32_t n = atomic_fetch_add(&sh->nsections, 1);

    if (n >= sh->max_sections) {
        atomic_store(&sh->log_full, 1);
        return NULL;
    }
    *id = n;
    return &tt_sections(sh)[n];
}

static void resource_lock(struct tt_shared *sh)
{
    int rc = pthread_mutex_lock(&sh->mu);

    /* A worker died inside: what it left half-done is at most one write record that was never
     * published (nwrites moves last), so the state is consistent again. */
    if (rc == EOWNERDEAD)
        (void)pthread_mutex_consistent(&sh->mu);
}

bool tt_resource_write(struct tt_shared *sh, struct tt_worker *slot, uint32_t section_id,
                       enum tt_phase phase)
{
    const struct tt_section *s = &tt_sections(sh)[section_id];
    struct tt_resource *r = &sh->res[s->key];
    bool accepted;

    resource_lock(sh);
    atomic_store(&slot->in_resource, 1);
    /* A reader (modes) is fenced off by writers only: readers beside it may have read with
     * larger tokens. */
    bool reader = s->mode == TL_SHARED;
    accepted = s->token >= (reader ? r->max_exclusive : r->max_token);
    if (accepted) {
        if (s->token > r->max_token)
            r->max_token = s->token;
        if (!reader)
            r->max_exclusive = s->token;
        r->accepted++;
    } else {
        r->rejected++;
    }
    if (sh->nwrites < sh->max_writes) {
        struct tt_write *w = &tt_writes(sh)[sh->nwrites];

        w->section = section_id;
        w->key = s->key;
        w->token = s->token;
        w->seq = ++sh->seq;
        w->at_ns = tt_now_ns();
        w->accepted = accepted;
        w->phase = (uint8_t)phase;
        sh->nwrites++;
    } else {
        atomic_store(&sh->log_full, 1);
    }
    atomic_store(&slot->in_resource, 0);
    (void)pthread_mutex_unlock(&sh->mu);
    return accepted;
}
