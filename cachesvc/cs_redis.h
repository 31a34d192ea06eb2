/* ark-cached: the Redis tier (L2), shared by every ark-cached replica.
 *
 * The engine keeps its index and hot payloads in process; this file keeps
 * each entry in Redis too, so that a restarted replica can rebuild its
 * index (cs_redis_scan), replicas on other hosts learn of each other's
 * stores and forgets (cs_redis_follow_start), and a payload evicted from
 * L1 can still be served (cs_redis_get_payload). Key layout, with prefix
 * P (default "ark:cache:"):
 *
 *   P seq             string   INCR counter issuing entry ids
 *   P e:<id>          hash     one entry: ns text norm vec payload penc
 *                              created expires embedder node; PEXPIREAT
 *                              = expires, so Redis drops it by itself
 *   P n:<ns>          zset     ids of ns that expire, score = expires_us;
 *                              lives as long as its longest-lived member
 *   P np:<ns>         zset     ids of ns that never expire
 *   P events          stream   {op put|del|delns, id, ns, node}, trimmed
 *                              to about CS_REDIS_STREAM_MAXLEN events
 *   P gone:<id>       zset     transient, while cs_redis_del_ns works
 *
 * A store is one MULTI/EXEC (entry hash, namespace set, stream event), so
 * a peer that sees the event finds the entry. docs/redis-tier.md explains
 * the layout, the id scheme, the stream and the failure behaviour.
 *
 * Threads: every function may be called from any thread (except the
 * event loop: they block for up to the command timeout), except that
 * cs_redis_follow_start, cs_redis_follow_stop and cs_redis_free belong
 * to one controlling thread. Each calling thread lazily gets its own
 * connection (a pthread key), freed when the thread exits; the follower
 * has its own. Internal mutexes are held only briefly, never during I/O
 * or a callback; cs_redis_up and the counters are atomics.
 *
 * Failures: every hiredis failure goes through one translator that fills
 * err, counts it, records last_error and, for connection-level failures,
 * marks the tier down: calls then fail at once (no I/O) until a back-off
 * delay has passed (exponential, CS_REDIS_BACKOFF_MIN_MS doubling to
 * CS_REDIS_BACKOFF_MAX_MS, with jitter), when one call probes Redis
 * again. So a dead Redis costs the
 * caller nothing and Redis is not hammered when it comes back. State
 * changes are logged once each through cs_log (ACD00800-ACD00806).
 *
 * Expiry: the engine relies on its own expires_us (from put, get_entry,
 * scan): it must treat an entry past expires_us as gone. Redis expires
 * entries by the same absolute time; a payload fetch that finds nothing
 * (found = 0) for an id still in the index means the entry expired or was
 * forgotten elsewhere, and the engine drops it then. No expiry events are
 * published.
 *
 * Requirements: Redis >= 7.0 (PEXPIREAT NX/GT, XINFO STREAM fields), no
 * Redis Cluster (keys of one store span hash slots), and a process that
 * ignores SIGPIPE (hiredis 0.14 writes with write(2); the daemon's main
 * sets SIG_IGN). hiredis allocates replies with malloc: they are not in
 * cs_mem_used, and never held beyond one call.
 */
#ifndef CS_REDIS_H
#define CS_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "cs_common.h"

/* Defaults of cs_redis_conf_t fields left 0 / NULL. */
#define CS_REDIS_DEFAULT_CONNECT_TIMEOUT_MS 50  /* loopback/LAN connect */
#define CS_REDIS_DEFAULT_COMMAND_TIMEOUT_MS 100 /* a cache must not stall
                                                   a request for longer */
#define CS_REDIS_DEFAULT_PREFIX "ark:cache:"
/* Longest key prefix and node name accepted by cs_redis_create. */
#define CS_REDIS_MAX_PREFIX 64
#define CS_REDIS_MAX_NODE_NAME 64
/* Stream length kept (XADD MAXLEN ~). At 1000 stores a second that is
 * over a minute and a half of outage a follower can catch up on without
 * a rescan, for about 10 MB of Redis memory. */
#define CS_REDIS_STREAM_MAXLEN 100000
/* Keys asked per SCAN step, and so entries fetched per pipeline, by
 * cs_redis_scan: enough to amortise round trips, few enough that one
 * batch of replies stays small (1000 vectors of dim 1024 are 4 MB). */
#define CS_REDIS_SCAN_COUNT 1000
/* Ids popped and deleted per round by cs_redis_del_ns. */
#define CS_REDIS_DELNS_BATCH 1000
/* Largest vector dimension accepted from Redis. */
#define CS_REDIS_MAX_DIM 16384
/* Follower: XREAD BLOCK time and events per XREAD. The block time bounds
 * how long cs_redis_follow_stop can take if the wake-up fails, and how
 * often a broken connection is noticed. */
#define CS_REDIS_FOLLOW_BLOCK_MS 1000
#define CS_REDIS_FOLLOW_BATCH 512
/* Back-off between connection attempts while Redis is down. */
#define CS_REDIS_BACKOFF_MIN_MS 100
#define CS_REDIS_BACKOFF_MAX_MS 5000
/* With Sentinels: a failover should be noticed within about a second. */
#define CS_REDIS_SENTINEL_BACKOFF_MAX_MS 1000
/* A buffer this large holds any stream position ("<ms>-<seq>"). */
#define CS_REDIS_POS_LEN 48
/* Length kept of the last error message. */
#define CS_REDIS_ERR_LEN 256
/* Minimum interval between two log lines about decryption failures. */
#define CS_REDIS_LOG_INTERVAL_US (60 * INT64_C(1000000))

/* Entry ids. Ids from Redis (INCR P seq) are below 2^62. When Redis is
 * unreachable, cs_redis_next_id issues a local id instead, marked by bit
 * 62 and never colliding with a Redis id:
 *
 *   bit 63   0 (ids stay positive as RESP integers)
 *   bit 62   1 (local)
 *   61..48   node tag: 14 bits of FNV-1a(node_name)
 *   47..0    (milliseconds since 2024-01-01 UTC) * 64 + sequence,
 *            monotonic in the process (a burst above 64 ids per ms
 *            borrows from the next milliseconds); lasts until 2163.
 *
 * Unique within a node across restarts (the clock moves on), and across
 * nodes unless two nodes share a tag (1 in 16384 per pair) AND issue in
 * the same millisecond with the same sequence. */
#define CS_REDIS_ID_LOCAL_BIT (UINT64_C(1) << 62)
#define cs_redis_id_is_local(id) (((id) & CS_REDIS_ID_LOCAL_BIT) != 0)

typedef struct cs_entry_rec {
    /* Globally unique, never 0: see "Entry ids" above. */
    uint64_t id;
    const char *ns;
    size_t ns_len;
    const char *text; /* the lookup text */
    size_t text_len;
    const char *norm; /* normalised text (exact layer 2) */
    size_t norm_len;
    const float *vec; /* may be NULL until embedded */
    int dim;
    const char *payload;
    size_t payload_len;
    int64_t created_us; /* wall clock */
    int64_t expires_us; /* wall clock; <= 0: never expires */
    const char *embedder; /* embedder name+version the vector came from,
                             NUL-terminated, or NULL */
} cs_entry_rec_t;

typedef struct cs_redis cs_redis_t;

typedef struct cs_redis_conf {
    const char *host;       /* TCP host (an IP address avoids a
                               resolver call without timeout); or */
    int port;               /* 0: 6379 */
    const char *unix_path;  /* Unix socket; wins over host when set */
    const char *password;   /* AUTH when set */
    int db;                 /* SELECT when not 0 */
    int connect_timeout_ms; /* 0: CS_REDIS_DEFAULT_CONNECT_TIMEOUT_MS */
    int command_timeout_ms; /* 0: CS_REDIS_DEFAULT_COMMAND_TIMEOUT_MS */
    const char *prefix;     /* NULL: CS_REDIS_DEFAULT_PREFIX */
    const unsigned char *aes_key; /* 32 bytes (copied), or NULL: payloads
                                     are stored in clear */
    const char *node_name;  /* unique per replica; NULL: "<host>:<pid>" */
    const char *sentinels;  /* "host:port,host:port": Redis Sentinels to
                               ask for the master (cs_sentinel.h); then
                               host and unix_path must be NULL */
    const char *sentinel_master;   /* the master's name at the Sentinels */
    const char *sentinel_password; /* AUTH towards the Sentinels, or NULL */
    int wait_replicas;      /* WAIT for this many replicas after each
                               store (0: none); see docs/redis-tier.md */
} cs_redis_conf_t;

/* Makes a Redis tier from conf (all strings and the key are copied). No
 * I/O happens: an unreachable Redis is not an error here; the tier counts
 * as up until a call fails. Returns CS_OK with *pr set (free it with
 * cs_redis_free), or CS_ERR with a sentence naming the bad setting and
 * its valid values in err (errlen bytes). */
int cs_redis_create(cs_redis_t **pr, const cs_redis_conf_t *conf, char *err,
                    size_t errlen);

/* Stops the follower if running, closes every connection and frees r.
 * Call it once no other thread uses r (threads may still exist; their
 * connections are closed here). NULL is ignored. */
void cs_redis_free(cs_redis_t *r);

/* 1 unless the last call that reached for Redis failed at the connection
 * level and no call has succeeded since. No I/O, no lock. */
int cs_redis_up(cs_redis_t *r);

/* *id receives a new entry id: from INCR P seq, or, when Redis is down or
 * the INCR fails, a local id (cs_redis_id_is_local). Never fails for a
 * valid r: returns CS_OK. err is set when a local id had to be issued
 * (for the caller's debug log), else err[0] = '\0'. */
int cs_redis_next_id(cs_redis_t *r, uint64_t *id, char *err, size_t errlen);

/* *id receives a local id without any I/O. */
void cs_redis_local_id(cs_redis_t *r, uint64_t *id);

/* Stores e (all of it is only read), replacing an entry with the same id,
 * and publishes {op put} in one MULTI/EXEC. The payload is sealed when a
 * key is configured (AAD = id and ns). An entry whose expires_us has
 * already passed is not written (CS_OK). Returns CS_OK or CS_ERR with err
 * set (Redis down, e->id 0, dim out of range). */
int cs_redis_put(cs_redis_t *r, const cs_entry_rec_t *e, char *err,
                 size_t errlen);

/* Fetches the payload of entry id. *found is 1 with *payload (cs_malloc'd,
 * NUL-terminated for convenience, the caller cs_free()s it) and *len set,
 * or 0 when there is no such live entry, or when its payload cannot be
 * opened (wrong key, tampered, moved from another entry, encrypted
 * without a key here, or clear with a key here): that counts in
 * decrypt_failures and is never returned. Returns CS_OK, or CS_ERR with
 * err set when Redis could not be asked. */
int cs_redis_get_payload(cs_redis_t *r, uint64_t id, char **payload,
                         size_t *len, int *found, char *err, size_t errlen);

/* Fetches the whole entry id. *found as for cs_redis_get_payload. When
 * found, out's pointers point into one block *owned (cs_free it when done
 * with out); strings are NUL-terminated; out->vec is NULL (dim 0) if the
 * entry has no vector; out->embedder is NULL if not recorded. Returns
 * CS_OK or CS_ERR with err set. */
int cs_redis_get_entry(cs_redis_t *r, uint64_t id, cs_entry_rec_t *out,
                       void **owned, int *found, char *err, size_t errlen);

/* Deletes entry id of ns and publishes {op del}. Deleting a missing entry
 * is not an error. Returns CS_OK or CS_ERR with err set. */
int cs_redis_del(cs_redis_t *r, const char *ns, size_t ns_len, uint64_t id,
                 char *err, size_t errlen);

/* Deletes every entry of ns and publishes {op delns}; *removed (may be
 * NULL) receives how many live entries were deleted. An entry stored in
 * ns concurrently either goes too or survives whole; it never survives in
 * part. Returns CS_OK or CS_ERR with err set (then some entries may be
 * gone already, and no event was published). */
int cs_redis_del_ns(cs_redis_t *r, const char *ns, size_t ns_len,
                    long *removed, char *err, size_t errlen);

/* Called by cs_redis_scan for each live entry; e (with vector, without
 * payload: payload NULL, payload_len 0) is only valid during the call.
 * Return CS_OK to go on, CS_ERR to stop the scan. */
typedef int cs_redis_entry_cb(void *ctx, const cs_entry_rec_t *e);

/* Startup rebuild. First reads the stream position (stream_pos receives
 * the id of the last event, or "0-0"; poslen >= CS_REDIS_POS_LEN), then
 * walks every entry key with SCAN, calling cb for each live entry. Give
 * stream_pos to cs_redis_follow_start: changes made during the scan are
 * then delivered again as events, so the engine must treat callbacks and
 * events idempotently (SCAN may also report an entry twice). Returns
 * CS_OK, or CS_ERR with err set when Redis failed or cb stopped the scan.
 * Uses the calling thread's connection. */
int cs_redis_scan(cs_redis_t *r, cs_redis_entry_cb *cb, void *ctx,
                  char *stream_pos, size_t poslen, char *err, size_t errlen);

/* Replication callbacks, called from the follower thread, one at a time,
 * for events published by other nodes only (field node differs from
 * ours). ns is only valid during the call. on_put: fetch the entry with
 * cs_redis_get_entry and index it. on_resync: events may have been lost
 * (stream trimmed past our position, or Redis restarted or emptied): drop
 * what came from Redis and rescan (the follower has already moved to the
 * stream's end, so events from now on still arrive). Any may be NULL. */
typedef struct cs_redis_follow_cbs {
    void (*on_put)(void *ctx, uint64_t id);
    void (*on_del)(void *ctx, const char *ns, size_t ns_len, uint64_t id);
    void (*on_delns)(void *ctx, const char *ns, size_t ns_len);
    void (*on_resync)(void *ctx);
    void *ctx;
} cs_redis_follow_cbs_t;

/* Starts the follower thread, reading events after stream_pos (from
 * cs_redis_scan; NULL or "" for "0-0") on its own connection with XREAD
 * BLOCK CS_REDIS_FOLLOW_BLOCK_MS. Events reach it as soon as XADD
 * returns. It reconnects with its own back-off, resuming from its last
 * position, and calls on_resync when that position can no longer be
 * trusted (see above); a Redis that is down at start is not an error.
 * cbs is copied. Returns CS_OK, or CS_ERR with err set (already running,
 * bad position, no thread). */
int cs_redis_follow_start(cs_redis_t *r, const char *stream_pos,
                          const cs_redis_follow_cbs_t *cbs, char *err,
                          size_t errlen);

/* Stops and joins the follower (promptly: its socket is shut down).
 * Never call it from a follower callback. No-op when not running. */
void cs_redis_follow_stop(cs_redis_t *r);

/* Counters, for metrics and tests. */
typedef struct cs_redis_counters {
    int up;                    /* as cs_redis_up */
    uint64_t reconnects;       /* down -> up transitions */
    uint64_t connect_attempts; /* by callers (not the follower) */
    uint64_t errors;           /* failed calls (fast failures included)
                                  and follower errors */
    uint64_t fast_failures;    /* calls refused without I/O while down */
    uint64_t decrypt_failures; /* payloads that did not open */
    uint64_t local_ids;        /* ids issued locally */
    int follow_running;        /* follower thread started */
    int follow_connected;      /* follower has a working connection */
    uint64_t follow_events;    /* events delivered to callbacks */
    uint64_t follow_resyncs;   /* on_resync calls */
    uint64_t follow_reconnects; /* follower connections made */
} cs_redis_counters_t;

/* Fills *out. No I/O. */
void cs_redis_get_counters(cs_redis_t *r, cs_redis_counters_t *out);

/* Appends the INFO section "# Redis\r\n" with redis_up, reconnects,
 * errors, decrypt_failures, last_error (empty when none) and the other
 * counters above plus follow_pos, one "key:value\r\n" each. No I/O. */
void cs_redis_stats(cs_redis_t *r, cs_buf_t *info);

#endif /* CS_REDIS_H */
