/* ark-cached: the cache engine, as the command layer sees it.
 *
 * The engine answers three questions for a namespace (an opaque string
 * chosen by the client: a hash of everything besides the user's words
 * that changes an answer) and a text (the user's words):
 *   lookup  exact text -> normalized text -> embedding + vector search
 *           (similarity >= threshold) -> salient-token verification;
 *   store   remember (ns, text) -> payload for ttl seconds;
 *   forget  one entry, or the whole namespace.
 * Entries live in an in-process tier (payload bytes bounded, LRU) and in
 * Redis when configured (shared by all replicas, TTL by EXPIRE).
 *
 * Thread safety: every function may be called from any thread
 * concurrently.
 */
#ifndef CS_CACHE_H
#define CS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cs_common.h"

typedef struct cs_cache cs_cache_t;

typedef enum {
    CS_HIT_EXACT = 1,        /* same text */
    CS_HIT_NORMALIZED = 2,   /* same text after normalisation */
    CS_HIT_SEMANTIC = 3      /* similar enough and verified */
} cs_hit_kind_t;

typedef struct cs_hit {
    char *payload;           /* cs_malloc'd: the caller cs_free()s it */
    size_t payload_len;
    double similarity;       /* 1.0 for exact and normalized hits */
    uint64_t id;
    cs_hit_kind_t kind;
} cs_hit_t;

/* Looks (ns, text) up. threshold < 0 means the configured default;
 * otherwise 0 < threshold <= 1. *found is 1 with *hit filled, or 0.
 * Returns CS_OK, or CS_ERR with err (errlen bytes) holding a message for
 * the client (e.g. the embedder is down). */
int cs_cache_lookup(cs_cache_t *c, const char *ns, size_t ns_len,
                    const char *text, size_t text_len, double threshold,
                    cs_hit_t *hit, int *found, char *err, size_t errlen);

/* Stores payload for (ns, text), replacing an entry with the same exact
 * text. ttl_s <= 0 means the configured default. *id receives the
 * entry's id. Returns CS_OK or CS_ERR with err set (e.g. out of memory,
 * payload too large). */
int cs_cache_store(cs_cache_t *c, const char *ns, size_t ns_len,
                   const char *text, size_t text_len, const char *payload,
                   size_t payload_len, long ttl_s, uint64_t *id, char *err,
                   size_t errlen);

/* Forgets entry id of ns, or every entry of ns when id is NULL.
 * *removed receives the count. */
int cs_cache_forget(cs_cache_t *c, const char *ns, size_t ns_len,
                    const uint64_t *id, long *removed, char *err,
                    size_t errlen);

/* One statistic for ARK.STATS (name is a literal). */
typedef struct cs_stat {
    const char *name;
    double value;
} cs_stat_t;

/* Appends the engine's INFO sections ("# Name\r\nkey:value\r\n..."). */
void cs_cache_info(cs_cache_t *c, cs_buf_t *out);

/* Fills up to max statistics (hits_exact, hits_semantic, misses, ...)
 * into out; *n receives how many. */
void cs_cache_stats(cs_cache_t *c, cs_stat_t *out, int max, int *n);

/* Appends the engine's metrics in the Prometheus text format. */
void cs_cache_metrics(cs_cache_t *c, cs_buf_t *out);

#endif /* CS_CACHE_H */
