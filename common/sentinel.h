/* Redis Sentinel: the master-resolution logic shared by mod_ark (the
 * governance Redis, mod_ark/ark_cache_client.c) and ark-cached (the Redis
 * tier, cachesvc/cs_redis.c). Plain C11 + hiredis + libc: no APR, no
 * daemon helpers, so both builds compile this one file.
 *
 * Data flow. A client configured with Sentinels instead of a Redis
 * address keeps one sentinel_state_t (per process for mod_ark, per tier
 * for ark-cached) under its own lock. Before connecting it calls
 * sentinel_begin:
 *
 *   SENTINEL_USE      the master is known: connect to *master;
 *   SENTINEL_RESOLVE  this caller must ask the Sentinels (no lock held):
 *                     sentinel_query_all, then sentinel_resolved;
 *   SENTINEL_WAIT     another caller is resolving, or the back-off after a
 *                     failure runs: fail at once, without I/O.
 *
 * After connecting to the master it checks ROLE (sentinel_check_role): a
 * demoted old master answers "slave". Any sign that the address is no
 * longer the master (connection refused or reset, a READONLY error, a
 * ROLE mismatch) goes to sentinel_forget, which drops the address and
 * bumps the generation: connections made under an older generation are
 * discarded by their owner. A master confirmed by ROLE resets the
 * back-off (sentinel_confirmed).
 *
 * Back-off, worked example (SENTINEL_BACKOFF_MIN_MS 50, MAX_MS 1000): the
 * master dies; the first failure forgets it and the next call resolves at
 * once (the failover may be old news). The Sentinels still name the dead
 * master (it is not yet "objectively down"): connect fails, forget again:
 * next resolution in 50 ms, then 100, 200, 400, 800, 1000, 1000 ... ms
 * until the Sentinels name the promoted replica, whose ROLE says master:
 * back-off reset. So a client notices a completed failover within about a
 * second, and asks the Sentinels at most a few times a second meanwhile.
 *
 * Locking: sentinel_begin/resolved/forget/confirmed change the state and
 * must run under the caller's lock; they never block. sentinel_query_all
 * and sentinel_check_role do I/O and must run without it; they only read
 * the configuration part of the state, which never changes after
 * sentinel_state_init.
 */
#ifndef ARK_COMMON_SENTINEL_H
#define ARK_COMMON_SENTINEL_H

#include <stddef.h>
#include <stdint.h>

struct redisReply;
struct redisContext;

/* Sentinels per client: three or five is the usual deployment. */
#define SENTINEL_MAX 8
/* Longest host name or address accepted (from config or a Sentinel). */
#define SENTINEL_HOST_LEN 256
/* Longest master name (Sentinel's own names are short words). */
#define SENTINEL_NAME_LEN 128
/* Back-off between resolutions after a failure (see the example). */
#define SENTINEL_BACKOFF_MIN_MS 50
#define SENTINEL_BACKOFF_MAX_MS 1000

typedef struct sentinel_addr_t {
    char host[SENTINEL_HOST_LEN];
    int port;
} sentinel_addr_t;

typedef enum {
    SENTINEL_USE,
    SENTINEL_RESOLVE,
    SENTINEL_WAIT
} sentinel_step_t;

typedef enum {
    SENTINEL_ROLE_ERROR = -1,   /* no answer, or not a ROLE reply */
    SENTINEL_ROLE_MASTER = 1,
    SENTINEL_ROLE_REPLICA = 2,
    SENTINEL_ROLE_SENTINEL = 3
} sentinel_role_t;

typedef struct sentinel_state_t {
    /* configuration, constant after sentinel_state_init */
    char master_name[SENTINEL_NAME_LEN];
    sentinel_addr_t sentinels[SENTINEL_MAX];
    int n;
    /* state, under the caller's lock */
    int first;              /* Sentinel asked first: the last that answered */
    int known;              /* master holds the current master */
    sentinel_addr_t master;
    int resolving;          /* a caller is asking the Sentinels */
    uint64_t generation;    /* bumped whenever the master changes or is
                               forgotten */
    int self_paced;         /* set by a caller that paces its attempts
                               itself (ark-cached's tier: one probe at a
                               time, with its own back-off): no back-off
                               here, only one resolver at a time */
    int64_t retry_at_us;    /* monotonic: no resolution before */
    int backoff_ms;         /* next back-off step (0: none yet) */
    /* counters (under the lock) */
    uint64_t resolutions;   /* Sentinel rounds that named a master */
    uint64_t failures;      /* rounds in which no Sentinel named one */
    uint64_t changes;       /* a different master than the one before */
    uint64_t forgets;       /* masters dropped (dead, READONLY, demoted) */
} sentinel_state_t;

/* Parses "host:port" (len bytes; the last colon separates the port, so
 * "[::1]:26379" and "::1:26379" both work). 0 on success, -1 if
 * malformed (no port, port not 1-65535, host empty or too long). */
int sentinel_addr_parse(sentinel_addr_t *a, const char *s, size_t len);

/* Fills s from the master name and n "host:port" strings. 0, or -1 with a
 * sentence in err naming what is wrong. */
int sentinel_state_init(sentinel_state_t *s, const char *master_name,
                        const char *const *addrs, int n, char *err,
                        size_t errlen);

/* The same with a list separated by commas and/or blanks
 * ("127.0.0.1:26379,127.0.0.1:26380"). */
int sentinel_state_init_list(sentinel_state_t *s, const char *master_name,
                             const char *list, char *err, size_t errlen);

/* What to do now (see above). *master (USE) and *gen (USE and RESOLVE:
 * the generation to pass to sentinel_forget) are set; *first is the
 * Sentinel to ask first (RESOLVE). RESOLVE marks the state resolving:
 * the caller must call sentinel_resolved. */
sentinel_step_t sentinel_begin(sentinel_state_t *s, int64_t now_us,
                               sentinel_addr_t *master, uint64_t *gen,
                               int *first);

/* Ends a resolution: found is the master a Sentinel named (NULL: none
 * did), answered the index of that Sentinel. Returns 1 when the master
 * differs from the one known before (a failover happened), else 0.
 * *gen receives the generation of the new master. */
int sentinel_resolved(sentinel_state_t *s, int64_t now_us,
                      const sentinel_addr_t *found, int answered,
                      uint64_t *gen);

/* The master of generation gen failed as a master: forget it (unless it
 * was forgotten or replaced meanwhile) and schedule the next resolution.
 * Returns 1 when it was forgotten by this call. */
int sentinel_forget(sentinel_state_t *s, int64_t now_us, uint64_t gen);

/* ROLE confirmed the master of generation gen: reset the back-off. */
void sentinel_confirmed(sentinel_state_t *s, uint64_t gen);

/* Reply parsers. sentinel_parse_master reads the reply to SENTINEL
 * get-master-addr-by-name: 1 with *out set for [host, port], 0 for nil
 * (the Sentinel does not know that master), -1 for anything else. */
int sentinel_parse_master(const struct redisReply *r, sentinel_addr_t *out);
/* The role in a ROLE reply ("master", "slave", "sentinel"). */
sentinel_role_t sentinel_parse_role(const struct redisReply *r);

/* Asks the Sentinels in turn, starting at first, until one names the
 * master: each gets a connection of at most connect_ms and calls of at
 * most io_ms, AUTH with password (NULL: none), and no attempt starts
 * after total_ms have passed. Returns 0 with *out and *answered set, or
 * -1 with err saying what each failure was (never the password). No lock
 * may be held: it blocks. */
int sentinel_query_all(const sentinel_state_t *s, int first,
                       const char *password, int connect_ms, int io_ms,
                       int total_ms, sentinel_addr_t *out, int *answered,
                       char *err, size_t errlen);

/* Sends ROLE on c (connected to the supposed master, AUTHed). Returns the
 * role; SENTINEL_ROLE_ERROR with err set when c failed or the reply is
 * not understood (c->err then tells whether the connection broke). */
sentinel_role_t sentinel_check_role(struct redisContext *c, char *err,
                                    size_t errlen);

/* Monotonic clock in microseconds (for the now_us arguments). */
int64_t sentinel_now_us(void);

#endif /* ARK_COMMON_SENTINEL_H */
