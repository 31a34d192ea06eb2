/* ark-cached: the vector index of one namespace.
 *
 * Maps entry ids to L2-normalised embedding vectors and answers "which
 * stored vectors have the highest inner product (cosine similarity) with
 * this query". Two FAISS indexes (through the FAISS C API only), chosen by
 * size:
 *   exact        "IDMap2,Flat", inner product, while the namespace holds at
 *                most approx_threshold live vectors; removal is real;
 *   approximate  "IDMap2,HNSW<M>,Flat" past it; HNSW cannot delete, so a
 *                removal only forgets the id here and leaves a tombstone
 *                (a stale vector in the graph that search skips).
 * FAISS's storage is the only copy of the vectors. Next to it the index
 * keeps the live ids (slot -> id; id -> slot by a hash table), and reads
 * a live vector back by id (faiss_Index_reconstruct: IDMap2 maps an id
 * to its latest copy). Search re-scores candidates against those (so
 * similarities are always those of the live vector, and ids that are
 * removed, or removed and re-added, are never reported from a stale
 * copy); a rebuild copies them (no re-embedding); a snapshot stores the
 * FAISS index and the live ids. Why these indexes and parameters:
 * docs/vector-index.md.
 *
 * Rebuild: cs_index_rebuild_if_needed switches between the two kinds when
 * the live count crosses the threshold (with hysteresis: back to exact
 * below CS_INDEX_SHRINK_PCT of it) and cleans tombstones once they exceed
 * CS_INDEX_TOMBSTONE_PCT of the FAISS index. The new FAISS index is built
 * from the array in batches, each copied under the read lock, the FAISS
 * work done with no lock held; adds and removes that arrive meanwhile go
 * to the old index (so they are visible at once) and are remembered; the
 * swap, with those changes replayed on the new index, is done under the
 * write lock.
 *
 * Thread safety: every function except cs_index_create, cs_index_load and
 * cs_index_free may be called from any thread concurrently. A pthread
 * rwlock (writer-preferring) guards the index: search, save and the
 * size getters take it shared; add and remove take it exclusive. Each
 * FAISS call made on behalf of search, add and remove runs on the calling
 * thread alone (OpenMP threads = 1: a team only slows one query down);
 * a rebuild uses conf.build_threads.
 *
 * Memory: everything is allocated with cs_malloc (counted in cs_mem_used)
 * except what FAISS allocates itself, which cs_index_memory estimates.
 */
#ifndef CS_INDEX_H
#define CS_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "cs_common.h"

/* Defaults, chosen by bench/index_bench.c (docs/vector-index.md). */

/* Live vectors past which the exact index is replaced by HNSW. Debian's
 * FAISS computes inner products with scalar code, 0.22-0.30 us per 384-d
 * vector per query, so 4096 vectors cost about 1 ms exact: what HNSW
 * with the efSearch below costs at any size measured. Below it, answers
 * are exact, removal is real and no graph is built. */
#define CS_INDEX_DEFAULT_APPROX_THRESHOLD 4096
/* HNSW links per node (level 0 has twice as many): recall vs build time
 * and 8 * M bytes per vector. M 16 measured as fast for the same recall
 * up to 100k; 32 is kept for recall at a million. */
#define CS_INDEX_DEFAULT_HNSW_M 32
/* HNSW candidate list while inserting: graph quality vs build time
 * (FAISS's default; the build is already about 1.3 ms of CPU per vector
 * on Debian's FAISS). */
#define CS_INDEX_DEFAULT_EF_CONSTRUCTION 40
/* HNSW candidate list while searching (ef_search 0 = by size): recall vs
 * query time. Below CS_INDEX_LARGE_EF_AT vectors 64 (recall@1 0.99-1.00 at
 * 100k, 0.8 ms of daemon CPU per lookup, p99 1.6 ms on a quiet host);
 * from there 128, which keeps recall@1 of near-duplicate queries about
 * 0.98 at the density of a million entries, where 64 gives 0.96. */
#define CS_INDEX_DEFAULT_EF_SEARCH 64
#define CS_INDEX_LARGE_EF_SEARCH 128
#define CS_INDEX_LARGE_EF_AT 250000

/* A rebuild cleans an approximate index once tombstones exceed this
 * percentage of the vectors FAISS holds: past it a search pays for
 * visiting mostly dead nodes and the graph wastes that much memory. */
#define CS_INDEX_TOMBSTONE_PCT 20
/* An approximate index goes back to exact below this percentage of the
 * threshold, not at the threshold itself, so a namespace hovering around
 * it is not rebuilt back and forth. */
#define CS_INDEX_SHRINK_PCT 50

/* Largest accepted dimension (the largest embedding models give 4096). */
#define CS_INDEX_MAX_DIM 4096
/* Largest k for one search: the cache asks for a handful. */
#define CS_INDEX_MAX_K 1000
/* Most candidates one search asks FAISS for while skipping tombstones:
 * with at most CS_INDEX_TOMBSTONE_PCT dead, 4 * k nearly always suffices;
 * the cap bounds the work when it does not (fewer than k come back). */
#define CS_INDEX_MAX_FETCH 4096
/* Most live vectors per namespace: slots are 32-bit. */
#define CS_INDEX_MAX_ENTRIES 200000000u

typedef struct cs_index cs_index_t;

/* Zero in any field but dim means its default. */
typedef struct cs_index_conf {
    int dim;                 /* vector dimension, 1..CS_INDEX_MAX_DIM */
    size_t approx_threshold; /* exact while live <= this, HNSW beyond */
    int hnsw_m;              /* HNSW M */
    int ef_construction;     /* HNSW efConstruction */
    int ef_search;           /* HNSW efSearch (>= k is used if larger);
                              * 0: by size (see above) */
    int build_threads;       /* OpenMP threads for a rebuild; 0 = one per
                                core (a 2-core host serving traffic may
                                prefer 1) */
    size_t large_ef_at;      /* with ef_search 0: live vectors from which
                              * CS_INDEX_LARGE_EF_SEARCH applies; 0 means
                              * CS_INDEX_LARGE_EF_AT (tests set less) */
} cs_index_conf_t;

/* Creates an empty (exact) index. conf is copied. Returns CS_OK with
 * *pidx set (free with cs_index_free), or CS_ERR with err (errlen bytes)
 * set: bad dimension or parameter, FAISS failure. */
int cs_index_create(cs_index_t **pidx, const cs_index_conf_t *conf,
                    char *err, size_t errlen);

/* Frees idx and everything it holds. NULL is allowed. No other call on
 * idx may be running or follow. */
void cs_index_free(cs_index_t *idx);

/* Adds id (>= 0: FAISS uses -1 for "no result") with vector vec (dim
 * floats, L2-normalised by the caller; copied). Write lock. Returns
 * CS_OK, or CS_ERR with err set: negative id, id already live (remove it
 * first), CS_INDEX_MAX_ENTRIES reached, FAISS failure (then nothing was
 * added). */
int cs_index_add(cs_index_t *idx, int64_t id, const float *vec, char *err,
                 size_t errlen);

/* cs_index_add, except that it never waits for a rebuild. cs_index_add
 * waits (without holding the lock) while a rebuild to HNSW has more than
 * a few thousand adds to catch up with, and while it finishes, so that
 * cheap adds to the old exact index cannot outrun the build forever; a
 * caller holding a lock that searches need (the cache engine's) uses
 * this one instead. */
int cs_index_add_now(cs_index_t *idx, int64_t id, const float *vec,
                     char *err, size_t errlen);

/* Removes id. Exact index: removed from FAISS too. Approximate index:
 * forgotten here at once (search never returns it again) and left in
 * the graph as a tombstone until a rebuild. Write lock. Returns CS_OK,
 * or CS_ERR when id is not live. */
int cs_index_remove(cs_index_t *idx, int64_t id);

/* Finds the at most k (1..CS_INDEX_MAX_K) live vectors with the highest
 * inner product with q (dim floats, normalised by the caller). ids and
 * sims (k elements each, caller-owned) receive them best first, *n how
 * many (< k when fewer are live, or, rarely, when tombstones crowd the
 * approximate candidates out). Similarities are exact, recomputed from
 * the live vectors. Read lock. Returns CS_OK, or CS_ERR with err set
 * (bad k, FAISS failure). */
int cs_index_search(cs_index_t *idx, const float *q, int k, int64_t *ids,
                    float *sims, int *n, char *err, size_t errlen);

/* Live vectors (those search can return). Read lock. */
size_t cs_index_live(const cs_index_t *idx);

/* Stale vectors FAISS still holds (removed from an approximate index, or
 * older copies of re-added ids). Read lock. */
size_t cs_index_tombstones(const cs_index_t *idx);

/* Bytes used: the array and hash table exactly, FAISS's share estimated
 * from its size and kind. Read lock. */
size_t cs_index_memory(const cs_index_t *idx);

/* 1 when the current FAISS index is the approximate one, else 0. */
int cs_index_is_approx(const cs_index_t *idx);

/* Rebuilds when the live count crossed the threshold (either way, see
 * CS_INDEX_SHRINK_PCT) or tombstones exceed CS_INDEX_TOMBSTONE_PCT;
 * otherwise returns at once. Runs in the calling thread for as long as
 * the build takes (seconds per thousand vectors for HNSW on Debian's
 * FAISS: call it from a background thread), holding the write lock only
 * for the swap; searches, adds and removes go on meanwhile. A second call
 * while one runs returns CS_OK at once. Returns CS_OK (rebuilt or not
 * needed), or CS_ERR with err set (FAISS failure: the old index stays). */
int cs_index_rebuild_if_needed(cs_index_t *idx, char *err, size_t errlen);

/* Writes a snapshot of idx to path: a temporary file in the same
 * directory, fsync'd, then renamed over path, so path always holds a
 * complete snapshot. Format: header, the FAISS index (faiss_write_index),
 * the live ids, trailer; native byte order. Read lock for the duration:
 * searches go on; adds and removes that come meanwhile are kept aside
 * (up to 65536, then they wait, without holding up searches) and applied
 * in order when the save is over, so until then a search does not find
 * them (cs_index_contains does). Returns CS_OK, or CS_ERR with err set
 * (I/O or FAISS failure; path is then unchanged). */
int cs_index_save(cs_index_t *idx, const char *path, char *err,
                  size_t errlen);

/* Reads a snapshot written by cs_index_save. conf->dim must match the
 * snapshot's; the other fields apply from now on (efSearch at once; M and
 * efConstruction at the next rebuild). Returns CS_OK with *pidx set (free
 * with cs_index_free), or CS_ERR with err set (I/O error, not a snapshot,
 * truncated, inconsistent, dimension mismatch). */
int cs_index_load(cs_index_t **pidx, const cs_index_conf_t *conf,
                  const char *path, char *err, size_t errlen);

/* Longest tag cs_index_save_tagged stores. */
#define CS_INDEX_MAX_TAG 65536

/* cs_index_save, and tag (tag_len bytes, opaque, may hold NUL) stored in
 * the header for cs_index_load_tagged to return: the cache engine keeps
 * the namespace key (embedder version and client namespace) there. */
int cs_index_save_tagged(cs_index_t *idx, const char *path, const void *tag,
                         size_t tag_len, char *err, size_t errlen);

/* cs_index_load, and *tag (cs_malloc'd, NUL-terminated, cs_free it) and
 * *tag_len set to the saved tag (tag may be NULL: not wanted). */
int cs_index_load_tagged(cs_index_t **pidx, const cs_index_conf_t *conf,
                         const char *path, char **tag, size_t *tag_len,
                         char *err, size_t errlen);

/* 1 when id is live. Read lock. */
int cs_index_contains(const cs_index_t *idx, int64_t id);

/* Copies the live ids into *out (cs_malloc'd, cs_free it); returns how
 * many. Read lock. */
size_t cs_index_ids(const cs_index_t *idx, int64_t **out);

/* Adds plus removes since creation or load: a snapshot is stale when
 * this moved since it was taken. Read lock. */
uint64_t cs_index_changes(const cs_index_t *idx);

/* Copies the live vector of id into out (dim floats). Returns CS_OK, or
 * CS_ERR when id is not live. Read lock. */
int cs_index_get_vector(const cs_index_t *idx, int64_t id, float *out);

/* The efSearch the approximate index searches with now (0: the index is
 * exact). */
int cs_index_ef_search(const cs_index_t *idx);

/* Adds and removes ever deferred because a save was running; *failed
 * (may be NULL): those that failed when applied (FAISS errors). */
uint64_t cs_index_deferred(const cs_index_t *idx, uint64_t *failed);

/* For tests: called by a save while it holds the read lock. */
extern void (*cs_index_save_hook)(cs_index_t *idx);

#endif /* CS_INDEX_H */
