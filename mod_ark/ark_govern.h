/* Ark governance: rate limits, token limits, concurrency caps, budgets
 * and exact spend, shared by every gateway node through Redis.
 *
 * Admission (ark_govern_admit) runs after authentication and before the
 * cache and the upstream: one atomic Lua script in Redis checks every
 * limit of the key and its tenant and, only if all pass, takes them all
 * (a GCRA bucket per rate, a lease in a sorted set per concurrency cap;
 * budgets are compared with the spend recorded so far). Token limits are
 * taken as a reservation (an estimate), settled by ark_govern_settle when
 * the request has ended, with the usage the upstream reported; the same
 * call adds the usage and spend to per-day and per-month hashes of the
 * key and the tenant and releases the lease. Because the check and the
 * take are one script, N nodes cannot admit more than the limit between
 * them; a limit can only be exceeded by what requests already admitted
 * turn out to use above their reservation.
 *
 * Redis unreachable (or no Redis configured): the same maths runs on
 * node-local counters in shared memory with each limit divided by the
 * configured node count; usage and spend that could not be written are
 * buffered in that memory and written by a later call once Redis answers
 * again. Budgets then fail open or closed as configured.
 *
 * The shared memory is a fixed table of slots, lock-free (C11 atomics):
 * a slot is claimed once for an id ("k:alice:rpm", "t:acme:u:20261127")
 * and never freed. No httpd headers: mod_ark.c creates the memory and
 * the per-process client.
 */
#ifndef ARK_GOVERN_H
#define ARK_GOVERN_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "ark_cache_client.h"
#include "ark_journal.h"
#include "ark_keys.h"
#include "ark_limit.h"

#define ARK_GOVERN_DEFAULT_PREFIX   "ark:"
#define ARK_GOVERN_DEFAULT_TIMEOUT  apr_time_from_msec(250)
#define ARK_GOVERN_DEFAULT_ESTIMATE 256
#define ARK_GOVERN_DEFAULT_LEASE    apr_time_from_sec(600)
#define ARK_GOVERN_DEFAULT_SLOTS    16384
/* How long a settlement's done-key lives in Redis (one key per request):
 * a replay later than this could count a settlement twice. */
#define ARK_GOVERN_DEFAULT_DONE_TTL apr_time_from_sec(86400)
#define ARK_GOVERN_PERIOD           apr_time_from_sec(60)
/* One warning per this interval while Redis is unreachable. */
#define ARK_GOVERN_LOG_INTERVAL     apr_time_from_sec(60)

typedef struct ark_govern_conf_t {
    ark_cache_client_conf_t redis;    /* servers empty: node-local only */
    const char *prefix;               /* of every Redis key */
    int nodes;                        /* divisor of limits in fallback */
    int budget_fail_closed;           /* refuse budgeted keys when Redis
                                       * is down */
    long token_estimate;              /* output tokens reserved when the
                                       * request sets no max_tokens */
    ark_limits_t defaults;            /* ArkLimitDefault, for keys */
    apr_interval_time_t lease;        /* concurrency lease lifetime */
    int slots;                        /* shared memory table size */
    apr_interval_time_t done_ttl;     /* done-key lifetime */
} ark_govern_conf_t;

/* Sets the defaults. */
void ark_govern_conf_init(ark_govern_conf_t *c);

/* Bytes of shared memory for a table of `slots` slots, and its set-up
 * (the memory must be zeroed or fresh from apr_shm_create). */
apr_size_t ark_govern_shm_size(int slots);
void ark_govern_shm_init(void *base, int slots);

typedef struct ark_govern_t ark_govern_t;

/* The per-process client over the shared table at shm. */
apr_status_t ark_govern_create(ark_govern_t **pg,
                               const ark_govern_conf_t *conf, void *shm,
                               apr_pool_t *p);

/* Who asks: a key, its tenant, and their limits. */
typedef struct ark_gov_subject_t {
    const char *key;
    ark_limits_t key_limits;          /* the key's, defaults filled in */
    const char *tenant;
    ark_limits_t tenant_limits;       /* zero when no tenant line */
    const apr_array_header_t *provider_limits; /* ark_provider_limit_t */
} ark_gov_subject_t;

/* Fills *s for a key: its limits, with the configured default for each
 * limit the key does not set, and its tenant's line from ring. */
void ark_govern_subject(ark_gov_subject_t *s, const ark_govern_conf_t *c,
                        const ark_keyring_t *ring, const ark_key_t *key);

/* Whether the subject has any limit (else admission needs no call). */
int ark_govern_subject_limited(const ark_gov_subject_t *s);

typedef enum {
    ARK_GOV_OK = 0,
    ARK_GOV_REQUESTS,       /* rpm */
    ARK_GOV_TOKENS,         /* tpm */
    ARK_GOV_TOO_LARGE,      /* the reservation alone exceeds tpm */
    ARK_GOV_CONCURRENCY,
    ARK_GOV_BUDGET,
    ARK_GOV_UNAVAILABLE     /* budgets fail closed and Redis is down */
} ark_gov_verdict_t;

/* One request's passage through governance. */
typedef struct ark_gov_ticket_t {
    ark_gov_verdict_t verdict;
    char scope;                       /* of a refusal: ARK_SCOPE_* */
    ark_period_t period;              /* of a budget refusal */
    apr_interval_time_t retry_after;  /* of a refusal; -1: never */
    /* the tightest rate buckets, for x-ratelimit-* (limit 0: none) */
    apr_int64_t req_limit, req_remaining, tok_limit, tok_remaining;
    apr_interval_time_t req_reset, tok_reset;
    double budget_ratio;              /* highest spend / budget, 0 none */
    apr_array_header_t *exhausted;    /* const char *: providers whose
                                       * per-key limit is used up */
    /* settlement state */
    ark_gov_subject_t subject;
    apr_int64_t reserved;             /* tokens taken at admission */
    const char *lease;                /* concurrency lease member */
    int local;                        /* admitted by the local fallback */
    int admitted;
    int settled;
} ark_gov_ticket_t;

/* Admits or refuses a request reserving `estimate` tokens. Returns the
 * verdict (also in t->verdict). Never fails: Redis trouble means the
 * local fallback. */
ark_gov_verdict_t ark_govern_admit(ark_govern_t *g,
                                   const ark_gov_subject_t *s,
                                   apr_int64_t estimate,
                                   ark_gov_ticket_t *t, apr_pool_t *p);

/* What an ended request used. */
typedef struct ark_gov_usage_t {
    long prompt_tokens, completion_tokens, cached_tokens;
    apr_int64_t spend_nano;           /* at the answering channel's price */
    apr_int64_t saved_nano;           /* a cache hit: what it would cost */
    int cache_hit;
    const char *provider;             /* that answered, or NULL */
    const char *trace_id;             /* the request's (32 hex digits), or
                                       * NULL: put into the settlement's
                                       * done-key, so that whether a
                                       * request was billed can be looked
                                       * up by its trace id */
    const char *done_id;              /* a done-key id made beforehand by
                                       * ark_govern_done_id (the one in
                                       * the request's journal slot), or
                                       * NULL: a new one */
} ark_gov_usage_t;

/* Records the usage of a request (admitted or not yet asked: t may be a
 * ticket that was never admitted, then only usage and spend are
 * recorded), releases its lease and settles its token reservation.
 * Idempotent: a second call does nothing. */
void ark_govern_settle(ark_govern_t *g, ark_gov_ticket_t *t,
                       const ark_gov_subject_t *s, const ark_gov_usage_t *u,
                       apr_pool_t *p);

/* A fresh done-key id (without the prefix) for a settlement, with the
 * trace id in it when trace is one (32 hex digits); at most
 * ARK_JOURNAL_DONE_MAX - 1 characters. */
const char *ark_govern_done_id(ark_govern_t *g, const char *trace,
                               apr_pool_t *p);

/* The usage hash fields (ARK_JOURNAL_FIELDS) ark_govern_settle writes
 * for u. */
void ark_govern_usage_values(const ark_gov_usage_t *u, apr_int64_t *v);

/* Whether a governance Redis is configured. */
int ark_govern_has_redis(const ark_govern_t *g);

/* Settles an orphaned journal entry: adds its usage to the key's and the
 * tenant's day and month usage hashes (of the entry's time) under its
 * done-key, so that it counts once even if its owner's settlement was
 * applied; an ESTIMATE entry also adds 1 to estimated_requests and its
 * tokens to estimated_tokens. Token reservations and concurrency leases
 * are left alone (a lease expires by itself; the reservation stays
 * taken, which errs on the safe side). Returns 1 when Redis has it, 0
 * when Redis could not be reached (keep the entry, try later). */
int ark_govern_replay_entry(ark_govern_t *g, const ark_journal_entry_t *e,
                            apr_pool_t *p);

typedef struct ark_gov_stats_t {
    int redis_configured;
    int redis_up;                     /* last call succeeded */
    apr_int64_t buffered_nano;        /* spend waiting for Redis */
    apr_int64_t buffered_tokens;
    apr_uint64_t fallbacks;           /* admissions decided locally */
    apr_uint64_t flushes;             /* buffered batches written */
    apr_uint64_t table_full;          /* counters that found no slot */
    apr_uint64_t pending;             /* settlements waiting for replay */
    apr_uint64_t uncertain;           /* maybe-applied settlements merged
                                       * for want of room (could count
                                       * twice) */
    apr_uint64_t wait_short;          /* settlements fewer replicas than
                                       * wait-replicas confirmed (kept for
                                       * replay) */
    apr_uint64_t refused[ARK_GOV_UNAVAILABLE + 1];
} ark_gov_stats_t;

/* Node-wide statistics (shared memory). */
void ark_govern_stats(ark_govern_t *g, ark_gov_stats_t *out);

/* A Redis failure happened: returns 1 when it should be logged now (at
 * most once per ARK_GOVERN_LOG_INTERVAL per node). */
int ark_govern_should_log(ark_govern_t *g);

/* The detail of the last Redis failure of this process, for that log. */
const char *ark_govern_last_error(ark_govern_t *g);

/* Node-wide statistics kept in the same shared table, for metrics and
 * the status page (they never go to Redis). An id names a set of
 * ARK_STAT_FIELDS counters, created on first use, e.g. "m:k:alice". */
#define ARK_STAT_FIELDS 8

void ark_govern_stat_add(ark_govern_t *g, const char *id, int field,
                         apr_int64_t n);

/* As ark_govern_stat_add for counters of the current UTC day: the last
 * field holds the day number and the others restart at 0 when it
 * changes. field < ARK_STAT_FIELDS - 1. */
void ark_govern_stat_add_daily(ark_govern_t *g, const char *id, int field,
                               apr_int64_t n, apr_time_t now);

/* Calls fn for every id starting with prefix (given without the prefix)
 * with a snapshot of its counters. */
typedef void ark_govern_stat_fn(void *ctx, const char *id,
                                const apr_int64_t *v);
void ark_govern_stat_each(ark_govern_t *g, const char *prefix,
                          ark_govern_stat_fn *fn, void *ctx);

/* Name of a verdict, for logs and metrics ("requests", "budget", ...). */
const char *ark_gov_verdict_name(ark_gov_verdict_t v);

#endif /* ARK_GOVERN_H */
