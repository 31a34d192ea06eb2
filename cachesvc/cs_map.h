/* ark-cached: a hash map from 64-bit keys to pointers.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), power-of-two capacity, grown at 70% load. Keys are mixed
 * before use, so sequential ids and hash values spread alike. Key 0 is
 * reserved (marks an empty slot). Not thread-safe: the engine holds its
 * lock around every call. Memory from cs_malloc.
 */
#ifndef CS_MAP_H
#define CS_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cs_map {
    uint64_t *keys;
    void **vals;
    size_t cap;          /* 0 or a power of two */
    size_t len;
} cs_map_t;

void cs_map_init(cs_map_t *m);
void cs_map_free(cs_map_t *m);

/* The value of key, or NULL. */
void *cs_map_get(const cs_map_t *m, uint64_t key);

/* Sets key to val (key != 0, val != NULL); returns the previous value
 * or NULL. */
void *cs_map_put(cs_map_t *m, uint64_t key, void *val);

/* Removes key; returns its value or NULL. */
void *cs_map_del(cs_map_t *m, uint64_t key);

/* Iteration: *pos starts at 0; returns 1 with *key, *val of the next
 * entry, 0 at the end. The map must not change meanwhile. */
int cs_map_next(const cs_map_t *m, size_t *pos, uint64_t *key, void **val);

/* 64-bit FNV-1a of data, never 0 (for map keys). */
uint64_t cs_hash64(const void *data, size_t len, uint64_t seed);

#endif /* CS_MAP_H */
