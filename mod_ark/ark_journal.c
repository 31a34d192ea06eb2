/* Ark in-flight journal. See ark_journal.h and docs/limits.md.
 *
 * File layout: a header page (magic, version, slot size, slot count,
 * counters), then the slots, each a fixed-size record with no pointers.
 * A slot moves FREE -> CLAIMING (CAS by the claimer, who then writes its
 * pid, start time and the estimate) -> ESTIMATE (release store) ->
 * KNOWN (actual usage written first, then the state) -> FREE; or, when
 * its owner died, ESTIMATE/KNOWN -> REPLAYING (CAS by the parent) ->
 * FREE once Redis has the settlement, or back when Redis is unreachable.
 * A slot left in CLAIMING by a dead owner never went upstream (the claim
 * comes before the first upstream attempt): it is simply freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_strings.h>

#include "ark_journal.h"

#define JOURNAL_MAGIC   "ARKJRNL"      /* 8 bytes with its NUL */
#define JOURNAL_VERSION 1u
#define JOURNAL_HEADER  4096           /* the slots start on a page */

typedef struct journal_slot_t {
    _Atomic apr_uint32_t state;
    _Atomic apr_uint32_t pid;
    apr_uint32_t known;                /* v is the actual usage */
    apr_uint32_t pad;
    apr_uint64_t start;
    apr_int64_t time;
    char done[ARK_JOURNAL_DONE_MAX];
    char key[ARK_JOURNAL_NAME_MAX];
    char tenant[ARK_JOURNAL_NAME_MAX];
    apr_int64_t v[ARK_JOURNAL_FIELDS];
} journal_slot_t;

typedef struct journal_header_t {
    char magic[8];
    apr_uint32_t version;
    apr_uint32_t slot_size;
    apr_uint32_t slots;
    apr_uint32_t reserved;
    _Atomic apr_uint64_t replay_estimate, replay_known, full, too_long;
} journal_header_t;

struct ark_journal_t {
    const char *path;
    journal_header_t *hdr;
    journal_slot_t *slot;
    int n;
    apr_size_t size;
};

/* This process, as the owner of the slots it claims. */
static apr_uint32_t owner_pid;
static apr_uint64_t owner_start;

/* Field 22 (starttime) of /proc/<pid>/stat, 0 when unreadable; *state
 * (may be NULL) gets field 3 ('Z' a zombie, '?' unreadable). */
static apr_uint64_t proc_start(apr_uint32_t pid, char *state)
{
    char path[64], buf[1024], *s, *end;
    ssize_t n;
    int fd, field;

    if (state) {
        *state = '?';
    }
    snprintf(path, sizeof(path), "/proc/%u/stat", (unsigned)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    /* the command name (field 2) may hold blanks and ')': skip to the
     * last ')', then field 3 onwards are blank-separated numbers */
    if (!(s = strrchr(buf, ')'))) {
        return 0;
    }
    s++;
    if (state && s[0] == ' ' && s[1]) {
        *state = s[1];
    }
    for (field = 3; field < 22 && *s; field++) {
        while (*s == ' ') {
            s++;
        }
        while (*s && *s != ' ') {
            s++;
        }
    }
    if (field != 22) {
        return 0;
    }
    return strtoull(s, &end, 10);
}

void ark_journal_set_owner(void)
{
    owner_pid = (apr_uint32_t)getpid();
    owner_start = proc_start(owner_pid, NULL);
}

int ark_journal_owner_alive(apr_uint32_t pid, apr_uint64_t start)
{
    apr_uint64_t now;
    char state;

    if (pid == 0) {
        return 0;
    }
    if (kill((pid_t)pid, 0) != 0 && errno != EPERM) {
        return 0;
    }
    now = proc_start(pid, &state);
    if (state == 'Z' || state == 'X') {
        return 0;                      /* dead, not yet reaped */
    }
    /* /proc unreadable: believe kill() */
    return now == 0 || start == 0 || now == start;
}

static apr_size_t journal_size(int slots)
{
    return JOURNAL_HEADER + sizeof(journal_slot_t) * (apr_size_t)slots;
}

/* Whether the header h (of a file of `size` bytes) is ours; *slots its
 * slot count. */
static int header_ok(const journal_header_t *h, apr_size_t size, int *slots)
{
    if (size < JOURNAL_HEADER || memcmp(h->magic, JOURNAL_MAGIC, 8)
        || h->version != JOURNAL_VERSION
        || h->slot_size != sizeof(journal_slot_t)
        || h->slots < ARK_JOURNAL_MIN_SLOTS
        || h->slots > ARK_JOURNAL_MAX_SLOTS
        || size != journal_size((int)h->slots)) {
        return 0;
    }
    *slots = (int)h->slots;
    return 1;
}

apr_status_t ark_journal_open(ark_journal_t **pj, const char *path,
                              int slots, const char **rejected,
                              apr_pool_t *p)
{
    ark_journal_t *j = apr_pcalloc(p, sizeof(*j));
    struct stat st;
    void *m;
    int fd, have = 0, fresh = 0;

    *rejected = NULL;
    if (slots < ARK_JOURNAL_MIN_SLOTS || slots > ARK_JOURNAL_MAX_SLOTS) {
        return APR_EINVAL;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || fstat(fd, &st) != 0) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);

        if (fd >= 0) {
            close(fd);
        }
        return rv;
    }
    if (st.st_size > 0) {
        journal_header_t h;

        if (st.st_size < (off_t)sizeof(h)
            || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)
            || !header_ok(&h, (apr_size_t)st.st_size, &have)) {
            /* not ours: keep it aside for a person to look at, never
             * trust it */
            const char *aside = apr_psprintf(p, "%s.rejected-%"
                                             APR_TIME_T_FMT, path,
                                             apr_time_sec(apr_time_now()));

            close(fd);
            if (rename(path, aside) != 0) {
                return APR_FROM_OS_ERROR(errno);
            }
            *rejected = aside;
            fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) {
                return APR_FROM_OS_ERROR(errno);
            }
            have = 0;
        }
    }
    if (!have) {
        have = slots;
        fresh = 1;
        if (ftruncate(fd, (off_t)journal_size(have)) != 0) {
            apr_status_t rv = APR_FROM_OS_ERROR(errno);

            close(fd);
            return rv;
        }
    }
    j->size = journal_size(have);
    m = mmap(NULL, j->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        return APR_FROM_OS_ERROR(errno);
    }
    j->hdr = m;
    j->slot = (journal_slot_t *)(void *)((char *)m + JOURNAL_HEADER);
    j->n = have;
    j->path = apr_pstrdup(p, path);
    if (fresh) {
        /* the file is zeroes: every slot FREE; the magic goes last */
        j->hdr->version = JOURNAL_VERSION;
        j->hdr->slot_size = sizeof(journal_slot_t);
        j->hdr->slots = (apr_uint32_t)have;
        memcpy(j->hdr->magic, JOURNAL_MAGIC, 8);
    }
    /* no pool cleanup unmaps it: the mapping lives as long as the
     * process (httpd reloads mod_ark.so on a restart, and a cleanup
     * function in the old copy would be called at exit after it is
     * gone) */
    *pj = j;
    return APR_SUCCESS;
}

const char *ark_journal_path(const ark_journal_t *j)
{
    return j->path;
}

int ark_journal_claim(ark_journal_t *j, const ark_journal_entry_t *e,
                      unsigned hint)
{
    apr_size_t lk = strlen(e->key), lt = strlen(e->tenant);
    apr_size_t ld = strlen(e->done);
    int k;

    if (!lk || lk >= ARK_JOURNAL_NAME_MAX || lt >= ARK_JOURNAL_NAME_MAX
        || !ld || ld >= ARK_JOURNAL_DONE_MAX) {
        atomic_fetch_add(&j->hdr->too_long, 1);
        return -1;
    }
    for (k = 0; k < j->n; k++) {
        int i = (int)((hint + (unsigned)k) % (unsigned)j->n);
        journal_slot_t *s = &j->slot[i];
        apr_uint32_t st = ARK_JSLOT_FREE;

        if (atomic_load_explicit(&s->state, memory_order_relaxed)
                != ARK_JSLOT_FREE
            || !atomic_compare_exchange_strong(&s->state, &st,
                                               ARK_JSLOT_CLAIMING)) {
            continue;
        }
        atomic_store_explicit(&s->pid, owner_pid, memory_order_relaxed);
        s->start = owner_start;
        s->known = 0;
        s->time = e->time;
        memcpy(s->done, e->done, ld + 1);
        memcpy(s->key, e->key, lk + 1);
        memcpy(s->tenant, e->tenant, lt + 1);
        memcpy(s->v, e->v, sizeof(s->v));
        atomic_store_explicit(&s->state, ARK_JSLOT_ESTIMATE,
                              memory_order_release);
        return i;
    }
    atomic_fetch_add(&j->hdr->full, 1);
    return -1;
}

void ark_journal_known(ark_journal_t *j, int i, const apr_int64_t *v,
                       apr_time_t now)
{
    journal_slot_t *s;

    if (!j || i < 0 || i >= j->n) {
        return;
    }
    s = &j->slot[i];
    /* the owner is alive (it is us): nobody else writes this slot */
    memcpy(s->v, v, sizeof(s->v));
    s->time = now;
    s->known = 1;
    atomic_store_explicit(&s->state, ARK_JSLOT_KNOWN, memory_order_release);
}

void ark_journal_release(ark_journal_t *j, int i)
{
    if (!j || i < 0 || i >= j->n) {
        return;
    }
    atomic_store_explicit(&j->slot[i].state, ARK_JSLOT_FREE,
                          memory_order_release);
}

int ark_journal_replay(ark_journal_t *j, int all, ark_journal_replay_fn *fn,
                       void *ctx, int *left)
{
    int i, done = 0, kept = 0, stop = 0;

    for (i = 0; i < j->n; i++) {
        journal_slot_t *s = &j->slot[i];
        apr_uint32_t st = atomic_load_explicit(&s->state,
                                               memory_order_acquire);
        apr_uint32_t pid = atomic_load_explicit(&s->pid,
                                                memory_order_relaxed);
        ark_journal_entry_t e;

        if (st == ARK_JSLOT_FREE) {
            continue;
        }
        if (st == ARK_JSLOT_REPLAYING && all) {
            /* the replayer died (the parent): try it again, under the
             * same done-key */
            st = s->known ? ARK_JSLOT_KNOWN : ARK_JSLOT_ESTIMATE;
            atomic_store(&s->state, st);
        }
        if (st == ARK_JSLOT_CLAIMING) {
            /* never went upstream; pid 0: the owner died before it
             * wrote it, only certain when nothing of ours runs */
            if (all || (pid && !ark_journal_owner_alive(pid, s->start))) {
                atomic_compare_exchange_strong(&s->state, &st,
                                               ARK_JSLOT_FREE);
            }
            continue;
        }
        if (st != ARK_JSLOT_ESTIMATE && st != ARK_JSLOT_KNOWN) {
            continue;
        }
        if (stop) {
            kept++;
            continue;
        }
        if (ark_journal_owner_alive(pid, s->start)) {
            continue;
        }
        if (!atomic_compare_exchange_strong(&s->state, &st,
                                            ARK_JSLOT_REPLAYING)) {
            continue;
        }
        memset(&e, 0, sizeof(e));
        e.state = (int)st;
        e.pid = pid;
        e.start = s->start;
        e.time = s->time;
        memcpy(e.done, s->done, sizeof(e.done));
        memcpy(e.key, s->key, sizeof(e.key));
        memcpy(e.tenant, s->tenant, sizeof(e.tenant));
        e.done[sizeof(e.done) - 1] = '\0';
        e.key[sizeof(e.key) - 1] = '\0';
        e.tenant[sizeof(e.tenant) - 1] = '\0';
        memcpy(e.v, s->v, sizeof(e.v));
        if (fn(ctx, &e)) {
            atomic_fetch_add(st == ARK_JSLOT_KNOWN ? &j->hdr->replay_known
                                                   : &j->hdr->replay_estimate,
                             1);
            atomic_store(&s->state, ARK_JSLOT_FREE);
            done++;
        }
        else {
            atomic_store(&s->state, st);
            kept++;
            stop = 1;                  /* Redis is away: try later */
        }
    }
    if (left) {
        *left = kept;
    }
    return done;
}

void ark_journal_stats(ark_journal_t *j, ark_journal_stats_t *out)
{
    int i;

    memset(out, 0, sizeof(*out));
    if (!j) {
        return;
    }
    out->slots = j->n;
    for (i = 0; i < j->n; i++) {
        if (atomic_load_explicit(&j->slot[i].state, memory_order_relaxed)
            != ARK_JSLOT_FREE) {
            out->in_use++;
        }
    }
    out->replay_estimate = atomic_load(&j->hdr->replay_estimate);
    out->replay_known = atomic_load(&j->hdr->replay_known);
    out->full = atomic_load(&j->hdr->full);
    out->too_long = atomic_load(&j->hdr->too_long);
}
