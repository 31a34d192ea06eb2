/* Ark in-flight journal: a crash-safe record of the requests a node has
 * sent upstream and not yet settled, so that spend stays exact when the
 * node dies (SIGKILL, OOM, a crash) while the provider is answering.
 *
 * The journal is a fixed array of slots in a file mapped MAP_SHARED by
 * the httpd parent (post_config) and inherited by every child: writes to
 * it are in the page cache the moment they are made and survive the
 * death of every httpd process (not a crash of the machine). A request
 * claims a slot when it is about to go upstream (after admission) and
 * writes an estimate of what it can cost at most (prompt tokens as
 * estimated at admission, the reservation of completion tokens, the
 * spend at the highest price of the model's channels) under the done-key
 * its settlement will use. When its usage is known the slot gets the
 * actual usage; once the settlement is applied (or handed to the
 * governance buffer) the slot is freed. A slot whose owner process is
 * dead is an orphan: ark_govern_journal_replay settles it under its
 * done-key, so it counts exactly once whether or not the owner's own
 * settlement reached Redis.
 *
 * Claim, "known" and release are a few atomic stores (C11, lock-free):
 * no system call per request. No httpd headers.
 */
#ifndef ARK_JOURNAL_H
#define ARK_JOURNAL_H

#include <apr_pools.h>
#include <apr_time.h>

#define ARK_JOURNAL_DEFAULT_SLOTS 4096
#define ARK_JOURNAL_MIN_SLOTS     64
#define ARK_JOURNAL_MAX_SLOTS     (1 << 20)
#define ARK_JOURNAL_DONE_MAX      64   /* done-key id, without prefix */
#define ARK_JOURNAL_NAME_MAX      65   /* key or tenant name + NUL */
#define ARK_JOURNAL_FIELDS        7    /* the usage hash fields */

/* Slot states. */
#define ARK_JSLOT_FREE      0
#define ARK_JSLOT_CLAIMING  1          /* being written by its owner */
#define ARK_JSLOT_ESTIMATE  2          /* upstream, usage not known yet */
#define ARK_JSLOT_KNOWN     3          /* actual usage written */
#define ARK_JSLOT_REPLAYING 4          /* an orphan being replayed */

typedef struct ark_journal_t ark_journal_t;

/* What a slot holds (a copy: the slot itself is in the file). v are the
 * usage hash fields (requests, prompt, completion, cached, spend_nano,
 * cache_hits, saved_nano). */
typedef struct ark_journal_entry_t {
    int state;                         /* ESTIMATE or KNOWN */
    apr_uint32_t pid;                  /* owner */
    apr_uint64_t start;                /* owner's start time (clock ticks
                                        * since boot, /proc/pid/stat) */
    apr_time_t time;                   /* when claimed (or known) */
    char done[ARK_JOURNAL_DONE_MAX];
    char key[ARK_JOURNAL_NAME_MAX];
    char tenant[ARK_JOURNAL_NAME_MAX];
    apr_int64_t v[ARK_JOURNAL_FIELDS];
} ark_journal_entry_t;

typedef struct ark_journal_stats_t {
    int slots;
    int in_use;                        /* claimed slots now */
    apr_uint64_t replay_estimate;      /* orphans settled at an estimate */
    apr_uint64_t replay_known;         /* orphans settled at actual usage */
    apr_uint64_t full;                 /* requests that found no slot */
    apr_uint64_t too_long;             /* names too long for a slot */
} ark_journal_stats_t;

/* Opens (creating it if absent) the journal file at path with `slots`
 * slots and maps it. A file that is not a journal of this version and
 * slot layout is renamed to path + ".rejected-<unix time>" and a fresh
 * one created; *rejected is then that new name (else NULL). A file of
 * this version with another slot count is kept as it is (its slots may
 * hold orphans; ark_journal_stats tells the count in use). The mapping
 * lasts until the process exits; p holds the handle. APR error when the
 * file cannot be made or mapped. */
apr_status_t ark_journal_open(ark_journal_t **pj, const char *path,
                              int slots, const char **rejected,
                              apr_pool_t *p);

/* Sets this process as the owner of the slots it claims from now on
 * (pid and start time). Call once per process (child_init, or after
 * fork in a test), before any claim. */
void ark_journal_set_owner(void);

/* Whether the process pid started at `start` is still alive. */
int ark_journal_owner_alive(apr_uint32_t pid, apr_uint64_t start);

/* Claims a slot and writes e into it (e->state, pid and start are set
 * here); `hint` spreads concurrent claimers. Returns the slot index, or
 * -1 when every slot is taken (counted) or a name is too long (counted).
 * Lock-free. */
int ark_journal_claim(ark_journal_t *j, const ark_journal_entry_t *e,
                      unsigned hint);

/* Writes the actual usage v into slot i (state KNOWN), at time now. */
void ark_journal_known(ark_journal_t *j, int i, const apr_int64_t *v,
                       apr_time_t now);

/* Frees slot i (its settlement is applied or buffered). */
void ark_journal_release(ark_journal_t *j, int i);

/* Orphans: for each slot in state ESTIMATE or KNOWN whose owner is dead
 * (pid gone, or reused by a process with another start time), marks it
 * REPLAYING, calls fn with a copy; fn returns 1 when the settlement is
 * applied (the slot is freed and counted) or 0 to keep it (it goes back
 * to its state, to be tried again later; the walk then stops). Only one
 * process may call this at a time (the httpd parent). all (a fresh
 * start: no process of ours can be mid-claim or mid-replay) also frees
 * slots left half-claimed without an owner and retries those a dead
 * replayer left. Returns the number of orphans settled; *left (may be
 * NULL) those kept. */
typedef int ark_journal_replay_fn(void *ctx, const ark_journal_entry_t *e);
int ark_journal_replay(ark_journal_t *j, int all, ark_journal_replay_fn *fn,
                       void *ctx, int *left);

void ark_journal_stats(ark_journal_t *j, ark_journal_stats_t *out);

/* Path of the journal file. */
const char *ark_journal_path(const ark_journal_t *j);

#endif /* ARK_JOURNAL_H */
