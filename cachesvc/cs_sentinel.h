/* ark-cached: Redis Sentinel for the Redis tier (cs_redis.c).
 *
 * With redis_sentinels and redis_sentinel_master set, the tier does not
 * connect to a fixed address: before each new connection (a caller's or
 * the follower's) it asks this object for the master, which it knows, or
 * learns by asking the Sentinels in turn (common/sentinel.c does the
 * asking and keeps the state; this file adds the mutex, the log lines and
 * the INFO fields). After AUTH and SELECT the tier checks ROLE through
 * cs_sentinel_check. A connection-level failure, a READONLY reply or a
 * ROLE that is not "master" goes to cs_sentinel_failed, which forgets the
 * master: the next connection asks the Sentinels again, and connections
 * made to the old master are recognised by their generation and closed.
 * The pace is the tier's own (one probe at a time while Redis is down,
 * back-off 100 ms doubling to CS_REDIS_SENTINEL_BACKOFF_MAX_MS), so the
 * resolver adds no back-off of its own (sentinel_state_t.self_paced).
 *
 * Thread-safe: a mutex guards the state, never held during I/O.
 */
#ifndef CS_SENTINEL_H
#define CS_SENTINEL_H

#include <stddef.h>
#include <stdint.h>

#include "cs_common.h"

struct redisContext;
typedef struct cs_sentinel cs_sentinel_t;

/* Makes the resolver: master is the name the Sentinels know, list the
 * Sentinels ("host:port" separated by commas or blanks), password their
 * AUTH (NULL: none; copied). connect_ms/io_ms bound each Sentinel
 * connection and call. CS_OK, or CS_ERR with a sentence in err. No I/O. */
int cs_sentinel_create(cs_sentinel_t **ps, const char *master,
                       const char *list, const char *password,
                       int connect_ms, int io_ms, char *err, size_t errlen);

void cs_sentinel_free(cs_sentinel_t *s);

/* The master to connect to: host (hostlen bytes) and *port, and *gen,
 * its generation. Asks the Sentinels when none is known (blocking, within
 * connect_ms + io_ms for the round), or fails at once while another
 * thread asks or the back-off runs. CS_OK, or CS_ERR with err set. */
int cs_sentinel_master(cs_sentinel_t *s, char *host, size_t hostlen,
                       int *port, uint64_t *gen, char *err, size_t errlen);

/* Sends ROLE on c (connected to the master of generation gen). CS_OK when
 * it is the master; else CS_ERR with err set, having forgotten the
 * master unless c itself broke (c->err: the caller's translator handles
 * that, and calls cs_sentinel_failed). */
int cs_sentinel_check(cs_sentinel_t *s, struct redisContext *c,
                      uint64_t gen, char *err, size_t errlen);

/* The master of generation gen failed as a master (why: for the log). */
void cs_sentinel_failed(cs_sentinel_t *s, uint64_t gen, const char *why);

/* The current generation (connections of another are stale). */
uint64_t cs_sentinel_generation(cs_sentinel_t *s);

/* "host:port" of the master in use, or "sentinel master <name>". */
void cs_sentinel_endpoint(cs_sentinel_t *s, char *buf, size_t n);

/* Appends the sentinel_* fields to INFO. */
void cs_sentinel_stats(cs_sentinel_t *s, cs_buf_t *info);

#endif /* CS_SENTINEL_H */
