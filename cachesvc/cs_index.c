/* ark-cached: the vector index of one namespace (see cs_index.h).
 *
 * Data: a FAISS index (exact "IDMap2,Flat" or approximate
 * "IDMap2,HNSW<M>,Flat", inner product, reached only through the FAISS C
 * API), which holds the only copy of the vectors, plus the live ids: an
 * array ids[] indexed by slot and an open-addressing hash table id ->
 * slot. An id is live exactly when the hash table holds it; FAISS may
 * hold more (tombstones), so every FAISS answer is filtered through the
 * table and re-scored against the live vector, reconstructed by id.
 *
 * Slots are kept dense (removal moves the last slot into the hole) except
 * while a rebuild copies them: then removal only marks the slot dead, adds
 * append, and nothing moves, so the builder can copy [0, rb_done) in
 * batches under the read lock without anything shifting underneath it.
 * The holes are compacted at the swap.
 *
 * Locking: idx->lock (writer-preferring rwlock) guards everything below
 * it in struct cs_index. rb_done and the index being built belong to the
 * one thread running a rebuild; rebuilding is set and cleared by it under
 * the write lock and read by removals under the write lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The FAISS C API headers declare faiss_get_last_error() without a
 * prototype; they are system headers on Debian, but need not be. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#pragma GCC diagnostic pop

#include "cs_faiss_shim.h"
#include "cs_index.h"

/* ids[] value of a slot removed while a rebuild runs. */
#define CS_INDEX_DEAD (-1)
/* Hash table entry meaning "empty" (entries are slot + 1). */
#define CS_INDEX_EMPTY 0u
/* lookup result for "not live". */
#define CS_INDEX_NO_SLOT UINT32_MAX
/* First allocation of the slot arrays, in vectors. */
#define CS_INDEX_MIN_CAP 64
/* First hash table size (a power of two); it stays at least twice the
 * live count, so a probe sequence is short. */
#define CS_INDEX_MIN_TABLE 128
/* Vectors a rebuild copies per read-lock hold: 16384 * 384 floats is
 * 24 MB, a few milliseconds of memcpy during which adds wait. */
#define CS_INDEX_REBUILD_BATCH 16384
/* A rebuild stops catching up with concurrent adds without the lock once
 * at most this many remain; those are added to HNSW under the write
 * lock (about 1 ms each on Debian's FAISS). */
#define CS_INDEX_REBUILD_TAIL 32
/* Adds accepted during a rebuild to HNSW beyond the slots it started
 * with. Past it, and once the builder has copied everything it started
 * with, cs_index_add waits for the rebuild to finish: otherwise adds into
 * the old (exact) index, which are cheap, can outpace the HNSW build
 * forever (measured: a fill at 350 stores/s on a busy host kept a
 * namespace exact up to 660k vectors). The wait is bounded by building
 * at most this many vectors (~1 ms each). */
#define CS_INDEX_REBUILD_BACKLOG 4096
/* stdio buffer for snapshot files. */
#define CS_INDEX_IO_BUF (1u << 20)

#define CS_INDEX_FACTORY_EXACT "IDMap2,Flat"
#define CS_INDEX_SNAP_MAGIC "ARKVIX01"
#define CS_INDEX_SNAP_END "ARKVEND1"
/* 2: the caller's tag follows the header. 3: no vectors of our own after
 * the FAISS part (FAISS's storage is the only copy). */
#define CS_INDEX_SNAP_VERSION 3u
/* Vectors reconstructed from FAISS per batch when copying slots into
 * another FAISS index (1024 * 384 floats = 1.5 MB). */
#define CS_INDEX_COPY_BATCH 1024
/* Estimated bytes per id of IndexIDMap2's reverse map (a
 * std::unordered_map node of 24 bytes rounded up by malloc, plus its
 * bucket pointer). */
#define CS_INDEX_REVMAP_BYTES 40
/* cs_index_defer: the deferred list is full. */
#define CS_INDEX_AGAIN (-2)
/* Adds and removes kept aside while a snapshot is written, at most. */
#define CS_INDEX_MAX_DEFERRED 65536

/* An add or remove that came while a snapshot was being written: a save
 * holds the read lock for seconds at a million vectors, and a writer
 * waiting for it would hold up every search queued behind it (the lock
 * prefers writers). Applied, in order, when the save is over. */
typedef struct cs_index_deferred {
    int64_t id;
    float *vec;             /* cs_malloc'd; NULL: a remove */
} cs_index_deferred_t;

/* Test hook, called by a save while it holds the read lock. */
void (*cs_index_save_hook)(cs_index_t *idx);

struct cs_index {
    cs_index_conf_t conf;   /* defaults filled in; read-only */
    pthread_rwlock_t lock;

    FaissIndex *fx;         /* current FAISS index */
    int approx;             /* fx is HNSW */
    int fx_m;               /* M of fx when approx (memory estimate) */
    int ef;                 /* efSearch set on fx when approx */

    int64_t *ids;           /* [cap]: id of each slot, or CS_INDEX_DEAD */
    uint32_t nslots;        /* slots in use (live + dead) */
    uint32_t cap;
    uint32_t ndead;         /* dead slots (only while rebuilding) */

    uint32_t *table;        /* [tcap]: slot + 1, or CS_INDEX_EMPTY */
    size_t tcap;            /* power of two */
    size_t live;
    uint64_t changes;       /* adds + removes since creation or load */

    int rebuilding;         /* a rebuild to HNSW runs */
    uint32_t rb_done;       /* slots below have been copied by it */
    uint32_t rb_start;      /* nslots when it started */
    int rb_final;           /* it has copied past rb_start: adds wait */

    pthread_mutex_t dmu;    /* saving and the deferred list; taken before
                             * the rwlock, never while holding it */
    int saving;             /* saves running: adds and removes defer */
    cs_index_deferred_t *def;
    size_t ndef, defcap;
    uint64_t deferred;      /* adds and removes ever deferred */
    uint64_t def_failed;    /* deferred ones that failed when applied */
};

/* On-disk snapshot header (native byte order). */
typedef struct cs_index_snap_hdr {
    char magic[8];
    uint32_t version;
    uint32_t dim;
    uint32_t approx;
    uint32_t hnsw_m;
    uint64_t live;
    uint64_t ntotal;
    uint32_t tag_len;       /* bytes of the caller's tag after the header */
    uint32_t reserved;
} cs_index_snap_hdr_t;

static void cs_index_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cs_index_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The one translator of FAISS errors into our messages. */
static void cs_index_faiss_err(char *err, size_t errlen, const char *what,
                               int rc)
{
    const char *msg = faiss_get_last_error();

    cs_index_seterr(err, errlen, "%s: FAISS error %d: %s", what, rc,
                    msg != NULL ? msg : "(no message)");
}

/* Inner product with eight independent sums, so the compiler can keep
 * several multiply-adds in flight (FAISS's generic build uses one). */
static float cs_index_dot(const float *a, const float *b, int d)
{
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    int j;

    for (; i + 8 <= d; i += 8) {
        for (j = 0; j < 8; j++) {
            s[j] += a[i + j] * b[i + j];
        }
    }
    for (; i < d; i++) {
        s[0] += a[i] * b[i];
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* ---- id -> slot hash table (linear probing, backward-shift deletion) */

static size_t cs_index_hash(int64_t id, size_t mask)
{
    uint64_t x = (uint64_t)id + 0x9e3779b97f4a7c15ull;

    /* splitmix64 finaliser: ids are often sequential. */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x & mask;
}

/* Table position holding id, or SIZE_MAX. */
static size_t cs_index_tpos(const cs_index_t *idx, int64_t id)
{
    size_t mask = idx->tcap - 1;
    size_t i = cs_index_hash(id, mask);
    uint32_t e;

    while ((e = idx->table[i]) != CS_INDEX_EMPTY) {
        if (idx->ids[e - 1] == id) {
            return i;
        }
        i = (i + 1) & mask;
    }
    return SIZE_MAX;
}

static uint32_t cs_index_lookup(const cs_index_t *idx, int64_t id)
{
    size_t i = cs_index_tpos(idx, id);

    return i == SIZE_MAX ? CS_INDEX_NO_SLOT : idx->table[i] - 1;
}

/* Puts slot (whose id is ids[slot], not yet in the table) in table t. */
static void cs_index_tput(uint32_t *t, size_t tcap, const int64_t *ids,
                          uint32_t slot)
{
    size_t mask = tcap - 1;
    size_t i = cs_index_hash(ids[slot], mask);

    while (t[i] != CS_INDEX_EMPTY) {
        i = (i + 1) & mask;
    }
    t[i] = slot + 1;
}

/* Makes room for one more live id, doubling the table when it would be
 * more than half full. */
static void cs_index_treserve(cs_index_t *idx)
{
    size_t ncap;
    uint32_t *nt;
    size_t i;

    if ((idx->live + 1) * 2 <= idx->tcap) {
        return;
    }
    ncap = idx->tcap * 2;
    nt = cs_calloc(ncap, sizeof(*nt));
    for (i = 0; i < idx->tcap; i++) {
        if (idx->table[i] != CS_INDEX_EMPTY) {
            cs_index_tput(nt, ncap, idx->ids, idx->table[i] - 1);
        }
    }
    cs_free(idx->table);
    idx->table = nt;
    idx->tcap = ncap;
}

/* Empties position i, shifting later members of its probe run back so
 * every lookup still finds its id without tombstones. */
static void cs_index_tdel(cs_index_t *idx, size_t i)
{
    size_t mask = idx->tcap - 1;
    size_t j = i;
    size_t home;

    for (;;) {
        j = (j + 1) & mask;
        if (idx->table[j] == CS_INDEX_EMPTY) {
            break;
        }
        home = cs_index_hash(idx->ids[idx->table[j] - 1], mask);
        /* The entry at j may move to i unless its home lies cyclically
         * in (i, j]. */
        if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) {
            idx->table[i] = idx->table[j];
            i = j;
        }
    }
    idx->table[i] = CS_INDEX_EMPTY;
}

/* ---- slot store */

static void cs_index_reserve_slot(cs_index_t *idx)
{
    size_t ncap;

    if (idx->nslots < idx->cap) {
        return;
    }
    ncap = idx->cap + idx->cap / 2;
    if (ncap < CS_INDEX_MIN_CAP) {
        ncap = CS_INDEX_MIN_CAP;
    }
    if (ncap > (size_t)CS_INDEX_MAX_ENTRIES + CS_INDEX_REBUILD_BATCH) {
        ncap = (size_t)CS_INDEX_MAX_ENTRIES + CS_INDEX_REBUILD_BATCH;
    }
    idx->ids = cs_realloc(idx->ids, ncap * sizeof(*idx->ids));
    idx->cap = (uint32_t)ncap;
}

/* Moves slot from to slot to (to is free), keeping the table right. */
static void cs_index_move_slot(cs_index_t *idx, uint32_t from, uint32_t to)
{
    size_t pos = cs_index_tpos(idx, idx->ids[from]);

    idx->ids[to] = idx->ids[from];
    idx->table[pos] = to + 1;
}

/* Fills the dead slots left by removals during a rebuild with the last
 * live ones. Write lock held. */
static void cs_index_compact(cs_index_t *idx)
{
    uint32_t s;

    for (s = 0; s < idx->nslots && idx->ndead > 0; s++) {
        if (idx->ids[s] != CS_INDEX_DEAD) {
            continue;
        }
        while (idx->nslots > s + 1
               && idx->ids[idx->nslots - 1] == CS_INDEX_DEAD) {
            idx->nslots--;
            idx->ndead--;
        }
        if (idx->nslots > s + 1) {
            cs_index_move_slot(idx, idx->nslots - 1, s);
        }
        idx->nslots--;
        idx->ndead--;
    }
}

/* ---- FAISS indexes */

static int cs_index_set_param(FaissIndex *fx, const char *name, double v,
                              char *err, size_t errlen)
{
    FaissParameterSpace *ps = NULL;
    int rc;

    rc = faiss_ParameterSpace_new(&ps);
    if (rc == 0) {
        rc = faiss_ParameterSpace_set_index_parameter(ps, fx, name, v);
    }
    if (ps != NULL) {
        faiss_ParameterSpace_free(ps);
    }
    if (rc != 0) {
        cs_index_faiss_err(err, errlen, name, rc);
        return CS_ERR;
    }
    return CS_OK;
}

/* The efSearch of an approximate index of n vectors: the configured
 * value, or by size when it is 0 (see cs_index.h). */
static int cs_index_ef(const cs_index_conf_t *conf, uint64_t n)
{
    if (conf->ef_search > 0) {
        return conf->ef_search;
    }
    return n >= conf->large_ef_at ? CS_INDEX_LARGE_EF_SEARCH
                                  : CS_INDEX_DEFAULT_EF_SEARCH;
}

/* Makes an empty FAISS index of the wanted kind (an approximate one with
 * the efSearch of an empty index: the rebuild sets the final one). */
static int cs_index_faiss_new(FaissIndex **pfx, const cs_index_conf_t *conf,
                              int approx, char *err, size_t errlen)
{
    char desc[64];
    FaissIndex *fx = NULL;
    int rc;

    if (approx) {
        snprintf(desc, sizeof(desc), "IDMap2,HNSW%d,Flat", conf->hnsw_m);
    }
    else {
        snprintf(desc, sizeof(desc), "%s", CS_INDEX_FACTORY_EXACT);
    }
    rc = faiss_index_factory(&fx, conf->dim, desc, METRIC_INNER_PRODUCT);
    if (rc != 0) {
        cs_index_faiss_err(err, errlen, desc, rc);
        return CS_ERR;
    }
    if (approx
        && (cs_index_set_param(fx, "efConstruction", conf->ef_construction,
                               err, errlen) != CS_OK
            || cs_index_set_param(fx, "efSearch", cs_index_ef(conf, 0),
                                  err, errlen) != CS_OK)) {
        faiss_Index_free(fx);
        return CS_ERR;
    }
    *pfx = fx;
    return CS_OK;
}

/* Copies the live vectors of slots [from, from + max) into bids/bvecs,
 * reconstructed from the current FAISS index (which holds the live copy
 * of every id: IndexIDMap2 maps an id to its latest vector). Lock held.
 * Returns how many were copied (dead slots are skipped) and sets *next to
 * the first slot not looked at; CS_INDEX_NO_SLOT on a FAISS failure. */
static uint32_t cs_index_copy_slots(const cs_index_t *idx, uint32_t from,
                                    uint32_t to, uint32_t max, int64_t *bids,
                                    float *bvecs, uint32_t *next, char *err,
                                    size_t errlen)
{
    size_t dim = (size_t)idx->conf.dim;
    uint32_t s, m = 0;
    int rc;

    for (s = from; s < to && m < max; s++) {
        if (idx->ids[s] == CS_INDEX_DEAD) {
            continue;
        }
        rc = faiss_Index_reconstruct(idx->fx, idx->ids[s],
                                     bvecs + (size_t)m * dim);
        if (rc != 0) {
            cs_index_faiss_err(err, errlen, "reconstruct", rc);
            return CS_INDEX_NO_SLOT;
        }
        bids[m++] = idx->ids[s];
    }
    *next = s;
    return m;
}

/* Adds the live slots of [from, to) to fx (another index than idx->fx),
 * in batches. Lock held (the slots must not move). */
static int cs_index_faiss_add_slots(cs_index_t *idx, FaissIndex *fx,
                                    uint32_t from, uint32_t to, char *err,
                                    size_t errlen)
{
    size_t dim = (size_t)idx->conf.dim;
    int64_t *bids = cs_malloc(CS_INDEX_COPY_BATCH * sizeof(*bids));
    float *bvecs = cs_malloc(CS_INDEX_COPY_BATCH * dim * sizeof(float));
    uint32_t s = from, m;
    int rc = CS_OK;
    int frc;

    while (s < to) {
        m = cs_index_copy_slots(idx, s, to, CS_INDEX_COPY_BATCH, bids, bvecs,
                                &s, err, errlen);
        if (m == CS_INDEX_NO_SLOT) {
            rc = CS_ERR;
            break;
        }
        if (m > 0 && (frc = faiss_Index_add_with_ids(fx, m, bvecs, bids))
                         != 0) {
            cs_index_faiss_err(err, errlen, "add", frc);
            rc = CS_ERR;
            break;
        }
    }
    cs_free(bids);
    cs_free(bvecs);
    return rc;
}

/* ---- create / free */

static int cs_index_conf_fill(cs_index_conf_t *out, const cs_index_conf_t *in,
                              char *err, size_t errlen)
{
    if (in == NULL || in->dim < 1 || in->dim > CS_INDEX_MAX_DIM) {
        cs_index_seterr(err, errlen, "vector dimension must be 1..%d",
                        CS_INDEX_MAX_DIM);
        return CS_ERR;
    }
    *out = *in;
    if (out->approx_threshold == 0) {
        out->approx_threshold = CS_INDEX_DEFAULT_APPROX_THRESHOLD;
    }
    if (out->hnsw_m == 0) {
        out->hnsw_m = CS_INDEX_DEFAULT_HNSW_M;
    }
    if (out->ef_construction == 0) {
        out->ef_construction = CS_INDEX_DEFAULT_EF_CONSTRUCTION;
    }
    if (out->large_ef_at == 0) {
        out->large_ef_at = CS_INDEX_LARGE_EF_AT;
    }
    if (out->hnsw_m < 4 || out->hnsw_m > 256 || out->ef_construction < 1
        || out->ef_search < 0 || out->build_threads < 0) {
        cs_index_seterr(err, errlen,
                        "HNSW M must be 4..256, efConstruction >= 1, "
                        "efSearch >= 0 (0: by size), build threads >= 0");
        return CS_ERR;
    }
    return CS_OK;
}

/* The index around fx (taken over), with room for cap slots. */
static cs_index_t *cs_index_alloc(const cs_index_conf_t *conf, FaissIndex *fx,
                                  size_t cap)
{
    cs_index_t *idx = cs_calloc(1, sizeof(*idx));
    pthread_rwlockattr_t attr;

    idx->conf = *conf;
    idx->fx = fx;
    if (cap < CS_INDEX_MIN_CAP) {
        cap = CS_INDEX_MIN_CAP;
    }
    idx->cap = (uint32_t)cap;
    idx->ids = cs_malloc(cap * sizeof(*idx->ids));
    idx->tcap = CS_INDEX_MIN_TABLE;
    while (idx->tcap < cap * 2) {
        idx->tcap *= 2;
    }
    idx->table = cs_calloc(idx->tcap, sizeof(*idx->table));

    /* Writers first: a steady stream of searches must not starve adds. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&idx->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&idx->dmu, NULL);
    return idx;
}

int cs_index_create(cs_index_t **pidx, const cs_index_conf_t *conf,
                    char *err, size_t errlen)
{
    cs_index_conf_t c;
    FaissIndex *fx;

    if (cs_index_conf_fill(&c, conf, err, errlen) != CS_OK
        || cs_index_faiss_new(&fx, &c, 0, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    *pidx = cs_index_alloc(&c, fx, CS_INDEX_MIN_CAP);
    return CS_OK;
}

void cs_index_free(cs_index_t *idx)
{
    if (idx == NULL) {
        return;
    }
    pthread_rwlock_destroy(&idx->lock);
    pthread_mutex_destroy(&idx->dmu);
    while (idx->ndef > 0) {
        cs_free(idx->def[--idx->ndef].vec);
    }
    cs_free(idx->def);
    if (idx->fx != NULL) {
        faiss_Index_free(idx->fx);
    }
    cs_free(idx->ids);
    cs_free(idx->table);
    cs_free(idx);
}

/* ---- add / remove */

/* Backlog of adds a running rebuild still has to copy beyond what it
 * started with; UINT32_MAX once it is finishing. Lock held. */
static uint32_t cs_index_backlog(const cs_index_t *idx)
{
    uint32_t from;

    if (!idx->rebuilding) {
        return 0;
    }
    if (idx->rb_final) {
        return UINT32_MAX;
    }
    from = idx->rb_done > idx->rb_start ? idx->rb_done : idx->rb_start;
    return idx->nslots > from ? idx->nslots - from : 0;
}

/* The write lock, or, while a save runs, nothing: returns 1 with the
 * write lock held, 0 with dmu held and idx->saving set (the caller defers
 * the change and unlocks dmu). A writer never waits behind a save. */
static int cs_index_wrlock_unless_saving(cs_index_t *idx)
{
    pthread_mutex_lock(&idx->dmu);
    if (idx->saving) {
        return 0;
    }
    pthread_rwlock_wrlock(&idx->lock);
    pthread_mutex_unlock(&idx->dmu);
    return 1;
}

/* The last deferred change of id: 1 an add, 0 a remove, -1 none. dmu
 * held. */
static int cs_index_def_last(const cs_index_t *idx, int64_t id)
{
    size_t i = idx->ndef;

    while (i-- > 0) {
        if (idx->def[i].id == id) {
            return idx->def[i].vec != NULL;
        }
    }
    return -1;
}

/* Whether id is in the index once the deferred changes are applied. dmu
 * held; takes the read lock, which a save shares. */
static int cs_index_will_contain(cs_index_t *idx, int64_t id)
{
    int last = cs_index_def_last(idx, id);
    int v;

    if (last >= 0) {
        return last;
    }
    pthread_rwlock_rdlock(&idx->lock);
    v = cs_index_lookup(idx, id) != CS_INDEX_NO_SLOT;
    pthread_rwlock_unlock(&idx->lock);
    return v;
}

/* Keeps an add (vec) or a remove (vec NULL) for after the save. dmu held,
 * idx->saving set. CS_OK, CS_ERR with err set (an add of an id that will
 * be there, a remove of one that will not), or CS_INDEX_AGAIN when the list is
 * full (the caller waits for the save). */
static int cs_index_defer(cs_index_t *idx, int64_t id, const float *vec,
                          char *err, size_t errlen)
{
    cs_index_deferred_t *d;

    if (cs_index_will_contain(idx, id) == (vec == NULL ? 0 : 1)) {
        if (vec != NULL) {
            cs_index_seterr(err, errlen, "id %lld is already in the index",
                            (long long)id);
        }
        return CS_ERR;
    }
    if (idx->ndef >= CS_INDEX_MAX_DEFERRED) {
        return CS_INDEX_AGAIN;
    }
    if (idx->ndef == idx->defcap) {
        idx->defcap = idx->defcap ? idx->defcap * 2 : 64;
        idx->def = cs_realloc(idx->def, idx->defcap * sizeof(*idx->def));
    }
    d = &idx->def[idx->ndef++];
    d->id = id;
    d->vec = NULL;
    if (vec != NULL) {
        d->vec = cs_malloc((size_t)idx->conf.dim * sizeof(float));
        memcpy(d->vec, vec, (size_t)idx->conf.dim * sizeof(float));
    }
    idx->deferred++;
    return CS_OK;
}

/* Adds a vector; write lock held. */
static int cs_index_add_locked(cs_index_t *idx, int64_t id, const float *vec,
                               char *err, size_t errlen)
{
    uint32_t slot;
    int rc;

    if (cs_index_lookup(idx, id) != CS_INDEX_NO_SLOT) {
        cs_index_seterr(err, errlen, "id %lld is already in the index",
                        (long long)id);
        return CS_ERR;
    }
    if (idx->live >= CS_INDEX_MAX_ENTRIES
        || idx->nslots >= (uint32_t)CS_INDEX_MAX_ENTRIES
                              + CS_INDEX_REBUILD_BATCH) {
        cs_index_seterr(err, errlen, "index full (%u vectors)",
                        CS_INDEX_MAX_ENTRIES);
        return CS_ERR;
    }
    /* FAISS first: if it fails, nothing of ours has changed. */
    rc = faiss_Index_add_with_ids(idx->fx, 1, vec, &id);
    if (rc != 0) {
        cs_index_faiss_err(err, errlen, "add", rc);
        return CS_ERR;
    }
    cs_index_reserve_slot(idx);
    cs_index_treserve(idx);
    slot = idx->nslots++;
    idx->ids[slot] = id;
    cs_index_tput(idx->table, idx->tcap, idx->ids, slot);
    idx->live++;
    idx->changes++;
    if (idx->approx && idx->conf.ef_search == 0
        && idx->live >= idx->conf.large_ef_at
        && idx->ef != CS_INDEX_LARGE_EF_SEARCH
        && cs_index_set_param(idx->fx, "efSearch", CS_INDEX_LARGE_EF_SEARCH,
                              NULL, 0) == CS_OK) {
        /* grown into the size that needs the longer list; the write lock
         * keeps searches out while it changes */
        idx->ef = CS_INDEX_LARGE_EF_SEARCH;
    }
    return CS_OK;
}

static int cs_index_add_impl(cs_index_t *idx, int64_t id, const float *vec,
                             int wait, char *err, size_t errlen)
{
    int rc;

    if (id < 0 || vec == NULL) {
        cs_index_seterr(err, errlen, "%s", id < 0 ? "id must be >= 0"
                                                  : "no vector");
        return CS_ERR;
    }
    cs_faiss_set_threads(1);
    for (;;) {
        if (!cs_index_wrlock_unless_saving(idx)) {
            rc = cs_index_defer(idx, id, vec, err, errlen);
            pthread_mutex_unlock(&idx->dmu);
            if (rc != CS_INDEX_AGAIN) {
                return rc;
            }
            usleep(2000);              /* deferred list full */
            continue;
        }
        if (!wait || cs_index_backlog(idx) <= CS_INDEX_REBUILD_BACKLOG) {
            break;
        }
        /* wait without the lock: searches go on */
        pthread_rwlock_unlock(&idx->lock);
        usleep(2000);
    }
    rc = cs_index_add_locked(idx, id, vec, err, errlen);
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

int cs_index_add(cs_index_t *idx, int64_t id, const float *vec, char *err,
                 size_t errlen)
{
    return cs_index_add_impl(idx, id, vec, 1, err, errlen);
}

int cs_index_add_now(cs_index_t *idx, int64_t id, const float *vec,
                     char *err, size_t errlen)
{
    return cs_index_add_impl(idx, id, vec, 0, err, errlen);
}

/* Removes id; write lock held. */
static int cs_index_remove_locked(cs_index_t *idx, int64_t id)
{
    FaissIDSelectorRange *sel = NULL;
    size_t pos;
    uint32_t slot;
    size_t nrem;

    pos = id < 0 ? SIZE_MAX : cs_index_tpos(idx, id);
    if (pos == SIZE_MAX) {
        return CS_ERR;
    }
    slot = idx->table[pos] - 1;
    if (!idx->approx) {
        /* A failure here only leaves a stale vector behind, which search
         * skips and the next rebuild drops: carry on. */
        if (faiss_IDSelectorRange_new(&sel, id, id + 1) == 0) {
            faiss_Index_remove_ids(idx->fx, (const FaissIDSelector *)sel,
                                   &nrem);
            faiss_IDSelector_free((FaissIDSelector *)sel);
        }
    }
    cs_index_tdel(idx, pos);
    idx->live--;
    idx->changes++;
    if (idx->rebuilding) {
        /* Nothing may move while the builder copies. */
        idx->ids[slot] = CS_INDEX_DEAD;
        idx->ndead++;
    }
    else {
        if (slot != idx->nslots - 1) {
            cs_index_move_slot(idx, idx->nslots - 1, slot);
        }
        idx->nslots--;
    }
    return CS_OK;
}

int cs_index_remove(cs_index_t *idx, int64_t id)
{
    int rc;

    if (id < 0) {
        return CS_ERR;
    }
    cs_faiss_set_threads(1);
    while (!cs_index_wrlock_unless_saving(idx)) {
        rc = cs_index_defer(idx, id, NULL, NULL, 0);
        pthread_mutex_unlock(&idx->dmu);
        if (rc != CS_INDEX_AGAIN) {
            return rc;
        }
        usleep(2000);                  /* deferred list full */
    }
    rc = cs_index_remove_locked(idx, id);
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

/* A save begins: from now on adds and removes are deferred. */
static void cs_index_save_begin(cs_index_t *idx)
{
    pthread_mutex_lock(&idx->dmu);
    idx->saving++;
    pthread_mutex_unlock(&idx->dmu);
}

/* A save is over (its read lock released): the last one applies what was
 * deferred, in order. */
static void cs_index_save_end(cs_index_t *idx)
{
    char err[256];
    size_t i;

    pthread_mutex_lock(&idx->dmu);
    if (--idx->saving == 0 && idx->ndef > 0) {
        cs_faiss_set_threads(1);
        pthread_rwlock_wrlock(&idx->lock);
        for (i = 0; i < idx->ndef; i++) {
            cs_index_deferred_t *d = &idx->def[i];
            int rc = d->vec != NULL
                         ? cs_index_add_locked(idx, d->id, d->vec, err,
                                               sizeof(err))
                         : cs_index_remove_locked(idx, d->id);

            if (rc != CS_OK) {
                idx->def_failed++;     /* FAISS could not add it */
            }
            cs_free(d->vec);
        }
        idx->ndef = 0;
        pthread_rwlock_unlock(&idx->lock);
    }
    pthread_mutex_unlock(&idx->dmu);
}

int cs_index_ef_search(const cs_index_t *idx)
{
    cs_index_t *w = (cs_index_t *)idx;
    int v;

    pthread_rwlock_rdlock(&w->lock);
    v = w->approx ? w->ef : 0;
    pthread_rwlock_unlock(&w->lock);
    return v;
}

uint64_t cs_index_deferred(const cs_index_t *idx, uint64_t *failed)
{
    cs_index_t *w = (cs_index_t *)idx;
    uint64_t v;

    pthread_mutex_lock(&w->dmu);
    v = w->deferred;
    if (failed != NULL) {
        *failed = w->def_failed;
    }
    pthread_mutex_unlock(&w->dmu);
    return v;
}

/* ---- search */

typedef struct cs_index_cand {
    int64_t id;
    float sim;
} cs_index_cand_t;

static int cs_index_cand_by_id(const void *a, const void *b)
{
    const cs_index_cand_t *x = a;
    const cs_index_cand_t *y = b;

    return (x->id > y->id) - (x->id < y->id);
}

static int cs_index_cand_by_sim(const void *a, const void *b)
{
    const cs_index_cand_t *x = a;
    const cs_index_cand_t *y = b;

    if (x->sim != y->sim) {
        return x->sim < y->sim ? 1 : -1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

/* Worked example: k = 2, an HNSW index holding ids 1..5 where 2 was
 * removed (a tombstone) and 4 removed and re-added with a new vector
 * (FAISS holds both copies). ntotal 6, live 4, stale 2, so fetch =
 * 2 * 2 + 8 = 12 > ntotal: ask FAISS for 6. It answers 2, 4 (old copy),
 * 1, 4, 3, 5. Filtering through the table drops 2; re-scoring gives both
 * copies of 4 the similarity of its live vector; de-duplication keeps
 * one; sorting by similarity and cutting at k gives the answer. Had
 * fewer than k survived while FAISS held more than fetch, the search
 * would be repeated with fetch * 4. */
int cs_index_search(cs_index_t *idx, const float *q, int k, int64_t *ids,
                    float *sims, int *n, char *err, size_t errlen)
{
    size_t dim = (size_t)idx->conf.dim;
    size_t fetch, limit, want, stale, ntotal, m, i, j;
    idx_t *labels = NULL;
    float *dists = NULL;
    cs_index_cand_t *cand = NULL;
    float *live = NULL;
    int rc = CS_OK;
    int frc;

    *n = 0;
    if (k < 1 || k > CS_INDEX_MAX_K || q == NULL) {
        cs_index_seterr(err, errlen, "k must be 1..%d", CS_INDEX_MAX_K);
        return CS_ERR;
    }
    cs_faiss_set_threads(1);
    pthread_rwlock_rdlock(&idx->lock);
    if (idx->live == 0) {
        pthread_rwlock_unlock(&idx->lock);
        return CS_OK;
    }
    ntotal = (size_t)faiss_Index_ntotal(idx->fx);
    stale = ntotal > idx->live ? ntotal - idx->live : 0;
    want = idx->live < (size_t)k ? idx->live : (size_t)k;
    limit = ntotal < CS_INDEX_MAX_FETCH ? ntotal : CS_INDEX_MAX_FETCH;
    fetch = stale > 0 ? 2 * (size_t)k + 8 : (size_t)k;
    if (fetch > limit) {
        fetch = limit;
    }
    live = cs_malloc(dim * sizeof(float));
    for (;;) {
        labels = cs_realloc(labels, fetch * sizeof(*labels));
        dists = cs_realloc(dists, fetch * sizeof(*dists));
        cand = cs_realloc(cand, fetch * sizeof(*cand));
        frc = faiss_Index_search(idx->fx, 1, q, (idx_t)fetch, dists, labels);
        if (frc != 0) {
            cs_index_faiss_err(err, errlen, "search", frc);
            rc = CS_ERR;
            goto done;
        }
        for (i = 0, m = 0; i < fetch; i++) {
            if (labels[i] < 0) {
                continue;   /* FAISS pads with -1 */
            }
            if (cs_index_lookup(idx, labels[i]) == CS_INDEX_NO_SLOT) {
                continue;
            }
            /* FAISS's distance may be that of a stale copy of a re-added
             * id: score the live vector (IndexIDMap2 reconstructs the
             * latest copy of an id). */
            if (faiss_Index_reconstruct(idx->fx, labels[i], live) != 0) {
                continue;
            }
            cand[m].id = labels[i];
            cand[m].sim = cs_index_dot(q, live, (int)dim);
            m++;
        }
        if (stale > 0 && m > 1) {
            qsort(cand, m, sizeof(*cand), cs_index_cand_by_id);
            for (i = 1, j = 1; i < m; i++) {
                if (cand[i].id != cand[j - 1].id) {
                    cand[j++] = cand[i];
                }
            }
            m = j;
        }
        if (m >= want || fetch >= limit) {
            break;
        }
        fetch = fetch * 4 < limit ? fetch * 4 : limit;
    }
    qsort(cand, m, sizeof(*cand), cs_index_cand_by_sim);
    for (i = 0; i < m && i < (size_t)k; i++) {
        ids[i] = cand[i].id;
        sims[i] = cand[i].sim;
    }
    *n = (int)i;
done:
    pthread_rwlock_unlock(&idx->lock);
    cs_free(live);
    cs_free(labels);
    cs_free(dists);
    cs_free(cand);
    return rc;
}

/* ---- sizes */

size_t cs_index_live(const cs_index_t *idx)
{
    cs_index_t *w = (cs_index_t *)idx;   /* the lock, not the contents */
    size_t v;

    pthread_rwlock_rdlock(&w->lock);
    v = idx->live;
    pthread_rwlock_unlock(&w->lock);
    return v;
}

size_t cs_index_tombstones(const cs_index_t *idx)
{
    cs_index_t *w = (cs_index_t *)idx;
    size_t ntotal;
    size_t v;

    pthread_rwlock_rdlock(&w->lock);
    ntotal = (size_t)faiss_Index_ntotal(idx->fx);
    v = ntotal > idx->live ? ntotal - idx->live : 0;
    pthread_rwlock_unlock(&w->lock);
    return v;
}

int cs_index_is_approx(const cs_index_t *idx)
{
    cs_index_t *w = (cs_index_t *)idx;
    int v;

    pthread_rwlock_rdlock(&w->lock);
    v = idx->approx;
    pthread_rwlock_unlock(&w->lock);
    return v;
}

/* FAISS's share per vector it holds: the float copy in IndexFlat (the
 * only copy), the int64 label and the reverse map of IndexIDMap2, and for
 * HNSW the neighbour lists (2M ints at level 0, M per upper level; FAISS
 * draws levels so that a node has 1/(M-1) upper levels on average, about
 * one int more), an offset (8) and a level (4). */
static size_t cs_index_faiss_bytes(const cs_index_t *idx)
{
    size_t ntotal = (size_t)faiss_Index_ntotal(idx->fx);
    size_t per = (size_t)idx->conf.dim * sizeof(float) + sizeof(int64_t)
                 + CS_INDEX_REVMAP_BYTES;

    if (idx->approx) {
        per += (2 * (size_t)idx->fx_m + 1) * sizeof(int32_t) + 12;
    }
    return ntotal * per;
}

size_t cs_index_memory(const cs_index_t *idx)
{
    cs_index_t *w = (cs_index_t *)idx;
    size_t v;

    pthread_rwlock_rdlock(&w->lock);
    v = sizeof(*idx) + (size_t)idx->cap * sizeof(int64_t)
        + idx->tcap * sizeof(*idx->table) + cs_index_faiss_bytes(idx);
    pthread_rwlock_unlock(&w->lock);
    return v;
}

/* ---- rebuild */

/* What a rebuild should produce: -1 nothing, 0 exact, 1 approximate.
 * Lock held. */
static int cs_index_rebuild_target(const cs_index_t *idx)
{
    size_t ntotal = (size_t)faiss_Index_ntotal(idx->fx);
    size_t stale = ntotal > idx->live ? ntotal - idx->live : 0;
    size_t thr = idx->conf.approx_threshold;
    int want;

    if (idx->approx) {
        want = idx->live * 100 >= thr * CS_INDEX_SHRINK_PCT;
    }
    else {
        want = idx->live > thr;
    }
    if (want != idx->approx) {
        return want;
    }
    if (idx->approx ? stale * 100 > ntotal * CS_INDEX_TOMBSTONE_PCT
                    : stale > 0) {
        return idx->approx;
    }
    return -1;
}

/* Puts nfx in place of the current index (write lock held) and returns
 * the old one for the caller to free outside the lock. */
static FaissIndex *cs_index_swap(cs_index_t *idx, FaissIndex *nfx, int approx)
{
    FaissIndex *old = idx->fx;

    idx->fx = nfx;
    idx->approx = approx;
    idx->fx_m = idx->conf.hnsw_m;
    idx->changes++;         /* a snapshot of the old kind is stale */
    return old;
}

/* Exact target: a flat index of at most threshold vectors is a memcpy,
 * so it is built entirely under the write lock. */
static int cs_index_rebuild_exact(cs_index_t *idx, char *err, size_t errlen)
{
    FaissIndex *nfx = NULL;
    FaissIndex *old;

    if (cs_index_faiss_new(&nfx, &idx->conf, 0, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    if (cs_index_faiss_add_slots(idx, nfx, 0, idx->nslots, err, errlen)
        != CS_OK) {
        faiss_Index_free(nfx);
        return CS_ERR;
    }
    old = cs_index_swap(idx, nfx, 0);
    faiss_Index_free(old);
    return CS_OK;
}

/* Approximate target: see the file comment. Called with no lock held and
 * idx->rebuilding set by the caller. */
static int cs_index_rebuild_approx(cs_index_t *idx, char *err, size_t errlen)
{
    size_t dim = (size_t)idx->conf.dim;
    FaissIndex *nfx = NULL;
    FaissIndex *old = NULL;
    int64_t *bids = NULL;
    float *bvecs = NULL;
    uint32_t s, e, m;
    int rc, ef;

    if (cs_index_faiss_new(&nfx, &idx->conf, 1, err, errlen) != CS_OK) {
        goto fail;
    }
    bids = cs_malloc(CS_INDEX_REBUILD_BATCH * sizeof(*bids));
    bvecs = cs_malloc(CS_INDEX_REBUILD_BATCH * dim * sizeof(float));
    cs_faiss_set_threads(idx->conf.build_threads);
    for (;;) {
        /* Copy the next batch of live slots under the read lock... */
        pthread_rwlock_rdlock(&idx->lock);
        s = idx->rb_done;
        if (s >= idx->rb_start) {
            /* What the rebuild started with is in the new index: the
             * rest (at most the backlog) is built while adds wait. */
            idx->rb_final = 1;
        }
        if (idx->nslots - s <= CS_INDEX_REBUILD_TAIL) {
            pthread_rwlock_unlock(&idx->lock);
            break;
        }
        m = cs_index_copy_slots(idx, s, idx->nslots, CS_INDEX_REBUILD_BATCH,
                                bids, bvecs, &e, err, errlen);
        if (m == CS_INDEX_NO_SLOT) {
            pthread_rwlock_unlock(&idx->lock);
            goto fail;
        }
        /* rb_done and rb_final are this thread's alone (see the file
         * comment; adds read them under the write lock). */
        idx->rb_done = e;
        pthread_rwlock_unlock(&idx->lock);

        /* ...and add it with no lock held. */
        if (m > 0) {
            rc = faiss_Index_add_with_ids(nfx, m, bvecs, bids);
            if (rc != 0) {
                cs_index_faiss_err(err, errlen, "rebuild add", rc);
                goto fail;
            }
        }
    }
    cs_free(bids);
    cs_free(bvecs);
    bids = NULL;
    bvecs = NULL;

    /* The last few adds and the swap, under the write lock. Slots removed
     * after being copied are in nfx as tombstones: search skips them. */
    pthread_rwlock_wrlock(&idx->lock);
    if (cs_index_faiss_add_slots(idx, nfx, idx->rb_done, idx->nslots, err,
                                 errlen) != CS_OK) {
        pthread_rwlock_unlock(&idx->lock);
        goto fail;
    }
    /* efSearch for the size it has now (adds went on during the build);
     * nfx is not searched before the swap */
    ef = cs_index_ef(&idx->conf, idx->live);
    if (cs_index_set_param(nfx, "efSearch", ef, NULL, 0) != CS_OK) {
        ef = cs_index_ef(&idx->conf, 0);    /* what faiss_new set */
    }
    old = cs_index_swap(idx, nfx, 1);
    idx->ef = ef;
    idx->rebuilding = 0;
    cs_index_compact(idx);
    pthread_rwlock_unlock(&idx->lock);
    cs_faiss_set_threads(1);
    faiss_Index_free(old);
    return CS_OK;

fail:
    cs_faiss_set_threads(1);
    cs_free(bids);
    cs_free(bvecs);
    if (nfx != NULL) {
        faiss_Index_free(nfx);
    }
    pthread_rwlock_wrlock(&idx->lock);
    idx->rebuilding = 0;
    cs_index_compact(idx);
    pthread_rwlock_unlock(&idx->lock);
    return CS_ERR;
}

int cs_index_rebuild_if_needed(cs_index_t *idx, char *err, size_t errlen)
{
    int target;
    int rc;

    pthread_rwlock_wrlock(&idx->lock);
    target = idx->rebuilding ? -1 : cs_index_rebuild_target(idx);
    if (target == 0) {
        rc = cs_index_rebuild_exact(idx, err, errlen);
        pthread_rwlock_unlock(&idx->lock);
        return rc;
    }
    if (target < 0) {
        pthread_rwlock_unlock(&idx->lock);
        return CS_OK;
    }
    idx->rebuilding = 1;
    idx->rb_done = 0;
    idx->rb_start = idx->nslots;
    idx->rb_final = 0;
    pthread_rwlock_unlock(&idx->lock);
    return cs_index_rebuild_approx(idx, err, errlen);
}

/* ---- snapshots */

/* Writes the ids of the live slots. */
static int cs_index_write_live(const cs_index_t *idx, FILE *f)
{
    uint32_t s = 0;
    uint32_t e;
    size_t n;

    while (s < idx->nslots) {
        if (idx->ids[s] == CS_INDEX_DEAD) {
            s++;
            continue;
        }
        for (e = s; e < idx->nslots && idx->ids[e] != CS_INDEX_DEAD; e++) {
        }
        n = e - s;
        if (fwrite(idx->ids + s, sizeof(int64_t), n, f) != n) {
            return CS_ERR;
        }
        s = e;
    }
    return CS_OK;
}

/* fsyncs the directory holding path, so the rename is durable. */
static void cs_index_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;

    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    }
    else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    }
    else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int cs_index_save(cs_index_t *idx, const char *path, char *err,
                  size_t errlen)
{
    return cs_index_save_tagged(idx, path, NULL, 0, err, errlen);
}

int cs_index_save_tagged(cs_index_t *idx, const char *path, const void *tag,
                         size_t tag_len, char *err, size_t errlen)
{
    cs_index_snap_hdr_t h;
    char tmp[PATH_MAX];
    uint64_t live;
    FILE *f = NULL;
    int fd = -1;
    int rc;

    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
        cs_index_seterr(err, errlen, "snapshot path too long");
        return CS_ERR;
    }
    if (tag_len > CS_INDEX_MAX_TAG || (tag_len > 0 && tag == NULL)) {
        cs_index_seterr(err, errlen, "snapshot tag longer than %d bytes",
                        CS_INDEX_MAX_TAG);
        return CS_ERR;
    }
    fd = mkstemp(tmp);
    if (fd < 0 || (f = fdopen(fd, "wb")) == NULL) {
        cs_index_seterr(err, errlen, "cannot create %s: %s", tmp,
                        strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return CS_ERR;
    }
    setvbuf(f, NULL, _IOFBF, CS_INDEX_IO_BUF);

    cs_index_save_begin(idx);
    pthread_rwlock_rdlock(&idx->lock);
    if (cs_index_save_hook != NULL) {
        cs_index_save_hook(idx);
    }
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, CS_INDEX_SNAP_MAGIC, sizeof(h.magic));
    h.version = CS_INDEX_SNAP_VERSION;
    h.dim = (uint32_t)idx->conf.dim;
    h.approx = (uint32_t)idx->approx;
    h.hnsw_m = (uint32_t)idx->fx_m;
    h.live = live = idx->live;
    h.ntotal = (uint64_t)faiss_Index_ntotal(idx->fx);
    h.tag_len = (uint32_t)tag_len;
    if (fwrite(&h, sizeof(h), 1, f) != 1
        || (tag_len > 0 && fwrite(tag, tag_len, 1, f) != 1)) {
        goto io_fail;
    }
    rc = faiss_write_index(idx->fx, f);
    if (rc != 0) {
        pthread_rwlock_unlock(&idx->lock);
        cs_index_save_end(idx);
        cs_index_faiss_err(err, errlen, "snapshot write", rc);
        goto fail;
    }
    if (fwrite(&live, sizeof(live), 1, f) != 1
        || cs_index_write_live(idx, f) != CS_OK
        || fwrite(CS_INDEX_SNAP_END, 8, 1, f) != 1) {
        goto io_fail;
    }
    pthread_rwlock_unlock(&idx->lock);
    cs_index_save_end(idx);

    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        cs_index_seterr(err, errlen, "cannot write %s: %s", tmp,
                        strerror(errno));
        goto fail;
    }
    if (fclose(f) != 0) {
        f = NULL;
        cs_index_seterr(err, errlen, "cannot write %s: %s", tmp,
                        strerror(errno));
        goto fail;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        cs_index_seterr(err, errlen, "cannot rename %s to %s: %s", tmp, path,
                        strerror(errno));
        goto fail;
    }
    cs_index_sync_dir(path);
    return CS_OK;

io_fail:
    pthread_rwlock_unlock(&idx->lock);
    cs_index_save_end(idx);
    cs_index_seterr(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
fail:
    if (f != NULL) {
        fclose(f);
    }
    unlink(tmp);
    return CS_ERR;
}

int cs_index_load(cs_index_t **pidx, const cs_index_conf_t *conf,
                  const char *path, char *err, size_t errlen)
{
    return cs_index_load_tagged(pidx, conf, path, NULL, NULL, err, errlen);
}

int cs_index_load_tagged(cs_index_t **pidx, const cs_index_conf_t *conf,
                         const char *path, char **tag, size_t *tag_len,
                         char *err, size_t errlen)
{
    char *t = NULL;
    float *probe = NULL;
    cs_index_conf_t c;
    cs_index_snap_hdr_t h;
    cs_index_t *idx = NULL;
    FaissIndex *fx = NULL;
    FILE *f;
    uint64_t live2;
    char end[8];
    struct stat st;
    long pos;
    size_t i;
    int rc;

    if (cs_index_conf_fill(&c, conf, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        cs_index_seterr(err, errlen, "cannot open %s: %s", path,
                        strerror(errno));
        return CS_ERR;
    }
    setvbuf(f, NULL, _IOFBF, CS_INDEX_IO_BUF);
    if (fread(&h, sizeof(h), 1, f) != 1
        || memcmp(h.magic, CS_INDEX_SNAP_MAGIC, sizeof(h.magic)) != 0
        || h.version != CS_INDEX_SNAP_VERSION) {
        cs_index_seterr(err, errlen, "%s: not an index snapshot", path);
        goto fail;
    }
    if (h.dim != (uint32_t)c.dim) {
        cs_index_seterr(err, errlen,
                        "%s: snapshot has dimension %u, configured %d", path,
                        h.dim, c.dim);
        goto fail;
    }
    if (h.live > CS_INDEX_MAX_ENTRIES || h.ntotal < h.live || h.approx > 1
        || (h.approx && (h.hnsw_m < 4 || h.hnsw_m > 256))
        || h.tag_len > CS_INDEX_MAX_TAG) {
        cs_index_seterr(err, errlen, "%s: inconsistent snapshot header",
                        path);
        goto fail;
    }
    t = cs_malloc((size_t)h.tag_len + 1);
    if (h.tag_len > 0 && fread(t, h.tag_len, 1, f) != 1) {
        cs_index_seterr(err, errlen, "%s: truncated or damaged snapshot",
                        path);
        goto fail;
    }
    t[h.tag_len] = '\0';
    rc = faiss_read_index(f, 0, &fx);
    if (rc != 0) {
        cs_index_faiss_err(err, errlen, path, rc);
        goto fail;
    }
    if (faiss_Index_d(fx) != c.dim
        || (uint64_t)faiss_Index_ntotal(fx) != h.ntotal) {
        cs_index_seterr(err, errlen, "%s: FAISS index does not match header",
                        path);
        goto fail;
    }
    if (h.approx
        && cs_index_set_param(fx, "efSearch", cs_index_ef(&c, h.ntotal),
                              err, errlen) != CS_OK) {
        goto fail;
    }
    /* What follows must be exactly our part: check before allocating
     * for a live count read from the file. */
    pos = ftell(f);
    if (pos < 0 || fstat(fileno(f), &st) != 0
        || (uint64_t)(st.st_size - pos)
               != sizeof(live2) + h.live * sizeof(int64_t) + sizeof(end)) {
        cs_index_seterr(err, errlen, "%s: truncated or damaged snapshot",
                        path);
        goto fail;
    }
    idx = cs_index_alloc(&c, fx, (size_t)h.live);
    fx = NULL;
    idx->approx = (int)h.approx;
    idx->ef = h.approx ? cs_index_ef(&c, h.ntotal) : 0;
    idx->fx_m = (int)h.hnsw_m;
    if (fread(&live2, sizeof(live2), 1, f) != 1 || live2 != h.live
        || fread(idx->ids, sizeof(int64_t), h.live, f) != h.live
        || fread(end, sizeof(end), 1, f) != 1
        || memcmp(end, CS_INDEX_SNAP_END, sizeof(end)) != 0
        || fgetc(f) != EOF) {
        cs_index_seterr(err, errlen, "%s: truncated or damaged snapshot",
                        path);
        goto fail;
    }
    probe = cs_malloc((size_t)c.dim * sizeof(float));
    for (i = 0; i < h.live; i++) {
        /* Every live id must be one FAISS holds (reconstructable). */
        if (idx->ids[i] < 0 || cs_index_lookup(idx, idx->ids[i])
                                   != CS_INDEX_NO_SLOT
            || faiss_Index_reconstruct(idx->fx, idx->ids[i], probe) != 0) {
            cs_index_seterr(err, errlen, "%s: bad or repeated id %lld", path,
                            (long long)idx->ids[i]);
            goto fail;
        }
        cs_index_tput(idx->table, idx->tcap, idx->ids, (uint32_t)i);
        idx->nslots++;
        idx->live++;
    }
    cs_free(probe);
    fclose(f);
    *pidx = idx;
    if (tag != NULL) {
        *tag = t;
        *tag_len = h.tag_len;
    }
    else {
        cs_free(t);
    }
    return CS_OK;

fail:
    cs_free(probe);
    cs_free(t);
    fclose(f);
    if (fx != NULL) {
        faiss_Index_free(fx);
    }
    cs_index_free(idx);
    return CS_ERR;
}

/* ---- catch-up helpers */

int cs_index_contains(const cs_index_t *idx, int64_t id)
{
    cs_index_t *w = (cs_index_t *)idx;
    int v;

    if (id < 0) {
        return 0;
    }
    pthread_mutex_lock(&w->dmu);
    v = cs_index_will_contain(w, id);
    pthread_mutex_unlock(&w->dmu);
    return v;
}

size_t cs_index_ids(const cs_index_t *idx, int64_t **out)
{
    cs_index_t *w = (cs_index_t *)idx;
    int64_t *ids;
    uint32_t s;
    size_t n = 0;

    pthread_rwlock_rdlock(&w->lock);
    ids = cs_malloc((idx->live + 1) * sizeof(*ids));
    for (s = 0; s < idx->nslots; s++) {
        if (idx->ids[s] != CS_INDEX_DEAD) {
            ids[n++] = idx->ids[s];
        }
    }
    pthread_rwlock_unlock(&w->lock);
    *out = ids;
    return n;
}

uint64_t cs_index_changes(const cs_index_t *idx)
{
    cs_index_t *w = (cs_index_t *)idx;
    uint64_t v;

    pthread_rwlock_rdlock(&w->lock);
    v = idx->changes;
    pthread_rwlock_unlock(&w->lock);
    return v;
}

int cs_index_get_vector(const cs_index_t *idx, int64_t id, float *out)
{
    cs_index_t *w = (cs_index_t *)idx;
    uint32_t slot;

    pthread_rwlock_rdlock(&w->lock);
    slot = id < 0 ? CS_INDEX_NO_SLOT : cs_index_lookup(idx, id);
    if (slot != CS_INDEX_NO_SLOT
        && faiss_Index_reconstruct(idx->fx, id, out) != 0) {
        slot = CS_INDEX_NO_SLOT;
    }
    pthread_rwlock_unlock(&w->lock);
    return slot != CS_INDEX_NO_SLOT ? CS_OK : CS_ERR;
}
