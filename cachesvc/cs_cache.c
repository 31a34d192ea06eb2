/* ark-cached: the cache engine (cs_cache.h, cs_engine.h).
 *
 * State: entries by id; two exact maps (hash of namespace and text, and
 * of namespace and normalised text) pointing at entries; namespaces, each
 * with its own vector index (cs_index.h). Payloads live in the in-process
 * tier L1, bounded in bytes with an LRU list; with Redis configured every
 * entry is also written there (cs_redis.h), so an entry whose payload L1
 * evicted is still served (fetched back), a restart rebuilds from Redis,
 * and other replicas learn of stores through the Redis stream.
 *
 * Lookup: exact map -> normalised map -> embed (no lock held) -> index
 * search of the namespace (read lock) -> candidates at or above the
 * threshold, best first, until one passes verification (cs_verify: the
 * salient tokens of both texts agree). A false hit is worse than a miss.
 *
 * Namespaces are partitioned by embedder: the engine's key of a
 * namespace is "<embedder version>|<client namespace>", so vectors of
 * another embedder are never compared; entries scanned from Redis that
 * another embedder made are skipped (and re-stored by the next miss).
 *
 * Locking: one rwlock over the maps, entries and LRU (lookups read,
 * stores/forgets/expiry write); a mutex orders LRU touches among readers;
 * each index has its own lock, and a namespace is reference-counted so a
 * search may run without the engine lock while FORGET drops the
 * namespace. A store inserts into the index without the engine lock,
 * then inserts the entry under it (a search meanwhile finds an id without
 * entry and skips it). Expiry: a min-heap of (expires, id) swept every
 * second by the maintenance thread, which also rebuilds indexes that
 * need it.
 *
 * Snapshots (snapshot_dir): a snapshot thread saves changed indexes,
 * cs_engine_stop saves them once more; a start loads them and reads Redis
 * in a catch-up thread while serving (docs/ark-cached.md, "Restarts").
 * An id is only ever served with an entry read from Redis: an indexed id
 * without entry is skipped, fetched on demand during a catch-up, and
 * dropped from the index when Redis no longer has it.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cs_cache.h"
#include "cs_crypto.h"
#include "cs_embed.h"
#include "cs_engine.h"
#include "cs_index.h"
#include "cs_log.h"
#include "cs_map.h"
#include "cs_normalize.h"
#include "cs_redis.h"
#include "cs_verify.h"

/* Candidates asked of the index per lookup: the best few, since each is
 * verified in turn and a verified lower one may still be right. */
#define CS_CACHE_SEARCH_K 8
/* Maintenance period: expiry sweep and index rebuilds. */
#define CS_CACHE_SWEEP_US 1000000
/* Ids checked per engine write-lock hold by the ghost sweep that ends a
 * catch-up (a map look-up each: well under a millisecond). */
#define CS_CACHE_SWEEP_CHUNK 4096
/* Snapshot file names: "ns-" + 16 hex digits of the namespace hash. */
#define CS_CACHE_SNAP_PREFIX "ns-"
#define CS_CACHE_SNAP_SUFFIX ".vix"
/* Lookup latency histogram bucket bounds, seconds (Prometheus). */
static const double lat_bounds[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1
};
#define CS_CACHE_LAT_BUCKETS (sizeof(lat_bounds) / sizeof(lat_bounds[0]))

typedef struct cs_ns {
    char *key;                 /* "<embedder version>|<client ns>" */
    size_t key_len;
    const char *client;        /* the client's ns, inside key */
    size_t client_len;
    uint64_t h;
    cs_index_t *index;
    size_t entries;
    _Atomic int refs;          /* the map's reference + searches */
    uint64_t saved_changes;    /* cs_index_changes at the last snapshot
                                  (the snapshot thread's, then stop's) */
    int has_file;              /* a snapshot file exists for it */
} cs_ns_t;

typedef struct cs_entry {
    uint64_t id;
    cs_ns_t *ns;
    char *text;
    size_t text_len;
    uint64_t exact_h, norm_h;
    char *payload;             /* L1; NULL: only in Redis */
    size_t payload_len;
    int64_t created_us, expires_us;   /* wall clock */
    struct cs_entry *lru_prev, *lru_next;
} cs_entry_t;

typedef struct heap_item {
    int64_t expires_us;
    uint64_t id;
} heap_item_t;

struct cs_cache {
    pthread_rwlock_t lock;
    pthread_mutex_t lru_lock;
    cs_map_t entries;          /* id -> cs_entry_t */
    cs_map_t exact;            /* hash(ns key, text) -> cs_entry_t */
    cs_map_t norm;             /* hash(ns key, normalised text) -> entry */
    cs_map_t nss;              /* hash(ns key) -> cs_ns_t */
    cs_entry_t *lru_head, *lru_tail;  /* most recently used first */
    size_t l1_bytes;
    heap_item_t *heap;
    size_t heap_len, heap_cap;
    _Atomic uint64_t local_seq; /* ids when there is no Redis */

    /* settings */
    double threshold;
    long default_ttl, max_ttl;
    size_t l1_max, max_payload, max_text;
    int verify;
    cs_index_conf_t index_conf;
    cs_embedder_t *embedder;
    const char *embedder_version;
    cs_redis_t *redis;
    unsigned char aes_key[32];

    pthread_t maint;
    int maint_running;
    pthread_mutex_t maint_lock;
    pthread_cond_t maint_cond;
    int stopping;
    _Atomic int shutting;      /* stopping, readable without the mutex */

    /* index snapshots (docs/ark-cached.md, "Restarts") */
    char *snap_dir;            /* NULL: off */
    long snap_interval;        /* seconds; 0: only at shutdown */
    long snap_min;             /* live vectors a namespace needs */
    pthread_t snap_thread;
    int snap_running;
    pthread_t catchup;
    int catchup_running;
    _Atomic int catching_up;   /* snapshots loaded, Redis not yet read */
    _Atomic uint64_t snap_saves, snap_failures, snap_loaded, snap_vectors;
    _Atomic uint64_t snap_last_ms, ghosts, catchup_fetches;
    _Atomic int64_t catchup_ms;

    /* counters */
    _Atomic uint64_t hits_exact, hits_norm, hits_semantic, misses;
    _Atomic uint64_t verify_rejects, stores, evictions, expirations;
    _Atomic uint64_t forgets, errors, redis_fetches, redis_misses;
    _Atomic uint64_t lat[CS_CACHE_LAT_BUCKETS + 1];
    _Atomic uint64_t lat_sum_us, lat_count;
};

/* ------------------------------------------------------------ helpers */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t text_hash(const cs_ns_t *ns, const char *t, size_t n)
{
    return cs_hash64(t, n, ns->h);
}

static void lat_record(cs_cache_t *c, int64_t us)
{
    size_t i;

    for (i = 0; i < CS_CACHE_LAT_BUCKETS; i++) {
        if ((double)us / 1e6 <= lat_bounds[i]) {
            break;
        }
    }
    atomic_fetch_add(&c->lat[i], 1);
    atomic_fetch_add(&c->lat_sum_us, (uint64_t)us);
    atomic_fetch_add(&c->lat_count, 1);
}

/* ------------------------------------------------------------- heap */

static void heap_push(cs_cache_t *c, int64_t expires, uint64_t id)
{
    size_t i;

    if (c->heap_len == c->heap_cap) {
        c->heap_cap = c->heap_cap ? c->heap_cap * 2 : 1024;
        c->heap = cs_realloc(c->heap, c->heap_cap * sizeof(heap_item_t));
    }
    i = c->heap_len++;
    while (i > 0 && c->heap[(i - 1) / 2].expires_us > expires) {
        c->heap[i] = c->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    c->heap[i].expires_us = expires;
    c->heap[i].id = id;
}

static heap_item_t heap_pop(cs_cache_t *c)
{
    heap_item_t top = c->heap[0], last = c->heap[--c->heap_len];
    size_t i = 0;

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < c->heap_len && c->heap[l].expires_us < last.expires_us) {
            m = l;
        }
        if (r < c->heap_len && c->heap[r].expires_us
                                   < (m == i ? last.expires_us
                                             : c->heap[m].expires_us)) {
            m = r;
        }
        if (m == i) {
            break;
        }
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (c->heap_len) {
        c->heap[i] = last;
    }
    return top;
}

/* -------------------------------------------------------------- LRU */

static void lru_unlink(cs_cache_t *c, cs_entry_t *e)
{
    if (e->lru_prev) {
        e->lru_prev->lru_next = e->lru_next;
    }
    else if (c->lru_head == e) {
        c->lru_head = e->lru_next;
    }
    if (e->lru_next) {
        e->lru_next->lru_prev = e->lru_prev;
    }
    else if (c->lru_tail == e) {
        c->lru_tail = e->lru_prev;
    }
    e->lru_prev = e->lru_next = NULL;
}

static void lru_front(cs_cache_t *c, cs_entry_t *e)
{
    e->lru_next = c->lru_head;
    e->lru_prev = NULL;
    if (c->lru_head) {
        c->lru_head->lru_prev = e;
    }
    c->lru_head = e;
    if (!c->lru_tail) {
        c->lru_tail = e;
    }
}

/* -------------------------------------------------------- namespaces */

static void ns_unref(cs_ns_t *ns)
{
    if (atomic_fetch_sub(&ns->refs, 1) == 1) {
        cs_index_free(ns->index);
        cs_free(ns->key);
        cs_free(ns);
    }
}

/* The namespace key for a client ns. */
static char *ns_key(cs_cache_t *c, const char *ns, size_t ns_len,
                    size_t *klen)
{
    size_t vl = strlen(c->embedder_version);
    char *k = cs_malloc(vl + 1 + ns_len + 1);

    memcpy(k, c->embedder_version, vl);
    k[vl] = '|';
    memcpy(k + vl + 1, ns, ns_len);
    k[vl + 1 + ns_len] = '\0';
    *klen = vl + 1 + ns_len;
    return k;
}

/* Makes the namespace of engine key `key` (taken over) around idx (taken
 * over) and maps it; caller holds the write lock. */
static cs_ns_t *ns_make(cs_cache_t *c, char *key, size_t klen, uint64_t h,
                        cs_index_t *idx)
{
    cs_ns_t *n = cs_calloc(1, sizeof(*n));

    n->index = idx;
    n->key = key;
    n->key_len = klen;
    n->client = key + strlen(c->embedder_version) + 1;
    n->client_len = klen - strlen(c->embedder_version) - 1;
    n->h = h;
    atomic_store(&n->refs, 1);
    cs_map_put(&c->nss, h, n);
    return n;
}

/* Finds (or, when create, makes) a namespace; caller holds the lock
 * (write lock when create). */
static cs_ns_t *ns_find(cs_cache_t *c, const char *ns, size_t ns_len,
                        int create, char *err, size_t errlen)
{
    size_t klen;
    char *key = ns_key(c, ns, ns_len, &klen);
    uint64_t h = cs_hash64(key, klen, 0);
    cs_ns_t *n = cs_map_get(&c->nss, h);

    if (n && (n->key_len != klen || memcmp(n->key, key, klen))) {
        cs_free(key);
        seterr(err, errlen, "namespace hash collision");
        return NULL;
    }
    if (n || !create) {
        cs_free(key);
        return n;
    }
    {
        cs_index_t *idx;

        if (cs_index_create(&idx, &c->index_conf, err, errlen) != CS_OK) {
            cs_free(key);
            return NULL;
        }
        return ns_make(c, key, klen, h, idx);
    }
}

/* --------------------------------------------------------- entries */

/* Drops e from every structure and frees it; caller holds the write
 * lock. */
static void entry_drop(cs_cache_t *c, cs_entry_t *e)
{
    if (cs_map_get(&c->exact, e->exact_h) == e) {
        cs_map_del(&c->exact, e->exact_h);
    }
    if (e->norm_h && cs_map_get(&c->norm, e->norm_h) == e) {
        cs_map_del(&c->norm, e->norm_h);
    }
    cs_map_del(&c->entries, e->id);
    cs_index_remove(e->ns->index, (int64_t)e->id);
    e->ns->entries--;
    if (e->payload) {
        lru_unlink(c, e);
        c->l1_bytes -= e->payload_len;
        cs_free(e->payload);
    }
    cs_free(e->text);
    cs_free(e);
}

/* Makes room in L1 for `need` more bytes: evicts payloads from the cold
 * end. With Redis the entry stays (its payload is fetched back on a hit);
 * without, the whole entry goes. Caller holds the write lock. */
static void l1_make_room(cs_cache_t *c, size_t need)
{
    while (c->lru_tail && c->l1_bytes + need > c->l1_max) {
        cs_entry_t *e = c->lru_tail;

        atomic_fetch_add(&c->evictions, 1);
        if (c->redis && cs_redis_up(c->redis)) {
            lru_unlink(c, e);
            c->l1_bytes -= e->payload_len;
            cs_free(e->payload);
            e->payload = NULL;
        }
        else {
            entry_drop(c, e);
        }
    }
}

/* 1 when the index holds exactly vec for id. */
static int index_has_vector(cs_cache_t *c, cs_ns_t *ns, int64_t id,
                            const float *vec)
{
    size_t dim = (size_t)cs_embed_dim(c->embedder);
    float *cur = cs_malloc(dim * sizeof(float));
    int same = cs_index_get_vector(ns->index, id, cur) == CS_OK
               && !memcmp(cur, vec, dim * sizeof(float));

    cs_free(cur);
    return same;
}

/* Inserts an entry (caller holds the write lock); vec may be NULL when
 * the embedder failed (then only the exact layers find it). Replaces the
 * entry with the same id or the same exact text. */
static int entry_insert(cs_cache_t *c, cs_ns_t *ns, uint64_t id,
                        const char *text, size_t text_len, uint64_t norm_h,
                        const float *vec, const char *payload,
                        size_t payload_len, int64_t created_us,
                        int64_t expires_us, char *err, size_t errlen)
{
    uint64_t exact_h = text_hash(ns, text, text_len);
    cs_entry_t *old, *e;

    if ((old = cs_map_get(&c->entries, id))) {
        entry_drop(c, old);
    }
    old = cs_map_get(&c->exact, exact_h);
    if (old && old->ns == ns && old->text_len == text_len
        && !memcmp(old->text, text, text_len)) {
        entry_drop(c, old);
    }
    e = cs_calloc(1, sizeof(*e));
    e->id = id;
    e->ns = ns;
    e->text = cs_malloc(text_len + 1);    /* binary-safe: texts may hold NUL */
    memcpy(e->text, text, text_len);
    e->text[text_len] = '\0';
    e->text_len = text_len;
    e->exact_h = exact_h;
    e->norm_h = norm_h;
    e->created_us = created_us;
    e->expires_us = expires_us;
    /* An id already in the index came from a snapshot, or from the store
     * in progress: keep its vector if it is this one; an id Redis reused
     * for another entry (its counter restarted) gets the new vector. */
    if (vec && cs_index_contains(ns->index, (int64_t)id)
        && !index_has_vector(c, ns, (int64_t)id, vec)) {
        cs_index_remove(ns->index, (int64_t)id);
    }
    if (vec && !cs_index_contains(ns->index, (int64_t)id)
        && cs_index_add_now(ns->index, (int64_t)id, vec, err, errlen)
               != CS_OK) {
        cs_free(e->text);
        cs_free(e);
        return CS_ERR;
    }
    cs_map_put(&c->entries, id, e);
    cs_map_put(&c->exact, exact_h, e);
    if (norm_h) {
        cs_map_put(&c->norm, norm_h, e);
    }
    ns->entries++;
    if (payload) {
        l1_make_room(c, payload_len);
        if (cs_map_get(&c->entries, id) == e) {   /* not evicted itself */
            e->payload = cs_malloc(payload_len + 1);
            memcpy(e->payload, payload, payload_len);
            e->payload[payload_len] = '\0';
            e->payload_len = payload_len;
            c->l1_bytes += payload_len;
            lru_front(c, e);
        }
    }
    if (expires_us > 0) {
        heap_push(c, expires_us, id);
    }
    return CS_OK;
}

/* ------------------------------------------------------------ lookup */

/* Copies a live entry's payload for a hit (caller holds the read lock).
 * Returns 1 when copied, 0 when the payload is only in Redis (*id set
 * for the fetch), -1 when the entry is not usable (expired). */
static int take_payload(cs_cache_t *c, cs_entry_t *e, cs_hit_t *hit)
{
    if (e->expires_us > 0 && e->expires_us <= cs_wall_us()) {
        return -1;
    }
    hit->id = e->id;
    if (!e->payload) {
        return 0;
    }
    hit->payload = cs_malloc(e->payload_len + 1);
    memcpy(hit->payload, e->payload, e->payload_len + 1);
    hit->payload_len = e->payload_len;
    pthread_mutex_lock(&c->lru_lock);
    lru_unlink(c, e);
    lru_front(c, e);
    pthread_mutex_unlock(&c->lru_lock);
    return 1;
}

/* Completes a hit whose payload L1 no longer holds, from Redis. Returns
 * 1 on success, 0 when the entry is gone (it is dropped here too). */
static int fetch_payload(cs_cache_t *c, cs_hit_t *hit)
{
    char err[256];
    char *payload = NULL;
    size_t len = 0;
    int found = 0;

    if (!c->redis) {
        return 0;
    }
    atomic_fetch_add(&c->redis_fetches, 1);
    if (cs_redis_get_payload(c->redis, hit->id, &payload, &len, &found, err,
                             sizeof(err)) != CS_OK || !found) {
        if (found == 0) {
            cs_entry_t *e;

            atomic_fetch_add(&c->redis_misses, 1);
            pthread_rwlock_wrlock(&c->lock);
            if ((e = cs_map_get(&c->entries, hit->id))) {
                entry_drop(c, e);
            }
            pthread_rwlock_unlock(&c->lock);
        }
        return 0;
    }
    hit->payload = payload;
    hit->payload_len = len;
    return 1;
}

static int load_rec(cs_cache_t *c, const cs_entry_rec_t *e);

/* While a catch-up runs, the index (from a snapshot) may name an entry
 * the engine has not read from Redis yet, or one that is gone: read it
 * now. Found and live: it is loaded (and so can be verified and served);
 * otherwise the id leaves the index, so it is never a ghost hit. */
static void catchup_fetch(cs_cache_t *c, cs_ns_t *n, int64_t id)
{
    cs_entry_rec_t rec;
    void *owned = NULL;
    int found = 0, loaded = 0;
    char err[256];

    atomic_fetch_add(&c->catchup_fetches, 1);
    if (cs_redis_get_entry(c->redis, (uint64_t)id, &rec, &owned, &found, err,
                           sizeof(err)) != CS_OK) {
        return;          /* Redis unreachable: a miss, decide later */
    }
    pthread_rwlock_wrlock(&c->lock);
    if (found && rec.ns_len == n->client_len
        && !memcmp(rec.ns, n->client, n->client_len)) {
        loaded = load_rec(c, &rec);
    }
    if (!loaded && !cs_map_get(&c->entries, (uint64_t)id)
        && cs_index_remove(n->index, id) == CS_OK) {
        atomic_fetch_add(&c->ghosts, 1);
    }
    pthread_rwlock_unlock(&c->lock);
    cs_free(owned);
}

/* Exact and normalised layers; caller holds the read lock. */
static int lookup_exact(cs_cache_t *c, cs_map_t *map, uint64_t h,
                        const cs_ns_t *ns, const char *t, size_t n,
                        int by_norm, cs_hit_t *hit)
{
    cs_entry_t *e = cs_map_get(map, h);

    if (!e || e->ns != ns) {
        return -1;
    }
    if (!by_norm && (e->text_len != n || memcmp(e->text, t, n))) {
        return -1;
    }
    return take_payload(c, e, hit);
}

int cs_cache_lookup(cs_cache_t *c, const char *ns, size_t ns_len,
                    const char *text, size_t text_len, double threshold,
                    cs_hit_t *hit, int *found, char *err, size_t errlen)
{
    int64_t t0 = cs_now_us();
    cs_buf_t norm;
    cs_ns_t *n;
    float *vec = NULL;
    int64_t ids[CS_CACHE_SEARCH_K];
    float sims[CS_CACHE_SEARCH_K];
    int k = 0, i, r;
    cs_hit_kind_t kind = CS_HIT_EXACT;

    memset(hit, 0, sizeof(*hit));
    *found = 0;
    if (threshold <= 0) {
        threshold = c->threshold;
    }
    if (text_len > c->max_text) {
        seterr(err, errlen, "text longer than %zu bytes", c->max_text);
        return CS_ERR;
    }
    cs_buf_init(&norm);

    pthread_rwlock_rdlock(&c->lock);
    n = ns_find(c, ns, ns_len, 0, NULL, 0);
    if (!n) {
        pthread_rwlock_unlock(&c->lock);
        goto miss;
    }
    r = lookup_exact(c, &c->exact, text_hash(n, text, text_len), n, text,
                     text_len, 0, hit);
    if (r < 0) {
        /* normalise only when the exact text is not there */
        cs_normalize(text, text_len, &norm);
    }
    if (r < 0 && norm.len) {
        kind = CS_HIT_NORMALIZED;
        r = lookup_exact(c, &c->norm, text_hash(n, norm.data, norm.len), n,
                         NULL, 0, 1, hit);
    }
    if (r >= 0) {
        pthread_rwlock_unlock(&c->lock);
        if (r == 1 || fetch_payload(c, hit)) {
            hit->kind = kind;
            hit->similarity = 1.0;
            atomic_fetch_add(kind == CS_HIT_EXACT ? &c->hits_exact
                                                  : &c->hits_norm, 1);
            *found = 1;
            goto done;
        }
        goto miss;
    }
    atomic_fetch_add(&n->refs, 1);
    pthread_rwlock_unlock(&c->lock);

    /* semantic layer: embed without any lock, search under the index's */
    vec = cs_malloc(sizeof(float) * (size_t)cs_embed_dim(c->embedder));
    if (cs_embed(c->embedder, &text, &text_len, 1, vec, err, errlen)
        != CS_OK) {
        ns_unref(n);
        atomic_fetch_add(&c->errors, 1);
        cs_free(vec);
        cs_buf_free(&norm);
        return CS_ERR;
    }
    if (cs_index_search(n->index, vec, CS_CACHE_SEARCH_K, ids, sims, &k,
                        err, errlen) != CS_OK) {
        k = 0;
    }
    for (i = 0; i < k && !*found; i++) {
        cs_entry_t *e;
        cs_verify_result_t vr;

        if (sims[i] < threshold) {
            break;
        }
        pthread_rwlock_rdlock(&c->lock);
        e = cs_map_get(&c->entries, (uint64_t)ids[i]);
        if (!e && c->redis && atomic_load(&c->catching_up)) {
            pthread_rwlock_unlock(&c->lock);
            catchup_fetch(c, n, ids[i]);
            pthread_rwlock_rdlock(&c->lock);
            e = cs_map_get(&c->entries, (uint64_t)ids[i]);
        }
        if (e && e->ns == n) {
            vr.ok = 1;
            vr.reason = "ok";
            if (c->verify) {
                cs_verify(text, text_len, e->text, e->text_len, &vr);
            }
            if (!vr.ok) {
                atomic_fetch_add(&c->verify_rejects, 1);
                cs_log(CS_LOG_DEBUG, CS_LOGNO(00220) "candidate %llu "
                       "(similarity %.4f) rejected: %s",
                       (unsigned long long)e->id, sims[i], vr.reason);
                r = -1;
            }
            else {
                r = take_payload(c, e, hit);
            }
        }
        else {
            r = -1;
        }
        pthread_rwlock_unlock(&c->lock);
        if (r == 1 || (r == 0 && fetch_payload(c, hit))) {
            hit->kind = CS_HIT_SEMANTIC;
            hit->similarity = sims[i];
            atomic_fetch_add(&c->hits_semantic, 1);
            *found = 1;
        }
    }
    ns_unref(n);
    if (*found) {
        goto done;
    }
miss:
    atomic_fetch_add(&c->misses, 1);
done:
    cs_free(vec);
    cs_buf_free(&norm);
    lat_record(c, cs_now_us() - t0);
    return CS_OK;
}

/* ------------------------------------------------------------- store */

int cs_cache_store(cs_cache_t *c, const char *ns, size_t ns_len,
                   const char *text, size_t text_len, const char *payload,
                   size_t payload_len, long ttl_s, uint64_t *id, char *err,
                   size_t errlen)
{
    cs_buf_t norm;
    float *vec;
    int64_t now = cs_wall_us(), expires;
    cs_ns_t *n;
    uint64_t norm_h = 0;
    char rerr[256];
    int rc, have_vec;

    if (text_len > c->max_text) {
        seterr(err, errlen, "text longer than %zu bytes", c->max_text);
        return CS_ERR;
    }
    if (payload_len > c->max_payload) {
        seterr(err, errlen, "payload longer than %zu bytes",
               c->max_payload);
        return CS_ERR;
    }
    if (ttl_s <= 0) {
        ttl_s = c->default_ttl;
    }
    if (ttl_s > c->max_ttl) {
        ttl_s = c->max_ttl;
    }
    expires = now + (int64_t)ttl_s * 1000000;

    cs_buf_init(&norm);
    cs_normalize(text, text_len, &norm);
    vec = cs_malloc(sizeof(float) * (size_t)cs_embed_dim(c->embedder));
    have_vec = cs_embed(c->embedder, &text, &text_len, 1, vec, rerr,
                        sizeof(rerr)) == CS_OK;
    if (!have_vec) {
        cs_log(CS_LOG_WARNING, CS_LOGNO(00221) "store without a vector "
               "(exact layers only): %s", rerr);
    }
    if (c->redis) {
        cs_redis_next_id(c->redis, id, rerr, sizeof(rerr));
    }
    else {
        *id = atomic_fetch_add(&c->local_seq, 1) + 1;
    }

    pthread_rwlock_wrlock(&c->lock);
    n = ns_find(c, ns, ns_len, 1, err, errlen);
    if (!n) {
        pthread_rwlock_unlock(&c->lock);
        cs_free(vec);
        cs_buf_free(&norm);
        return CS_ERR;
    }
    {
        /* An id can come back (a Redis emptied or restarted without
         * persistence restarts its counter): the new entry replaces. */
        cs_entry_t *old = cs_map_get(&c->entries, *id);

        if (old) {
            entry_drop(c, old);
        }
        if (have_vec) {
            cs_index_remove(n->index, (int64_t)*id);
        }
    }
    atomic_fetch_add(&n->refs, 1);
    pthread_rwlock_unlock(&c->lock);

    /* The index insert (about a millisecond into HNSW, longer while a
     * snapshot of this namespace is written) is done without the engine
     * lock, so lookups elsewhere never wait for it. Until the entry is
     * inserted below, a search may return the id and finds no entry: it
     * skips it (and if it drops the id, entry_insert adds it again). */
    if (have_vec && cs_index_add(n->index, (int64_t)*id, vec, err, errlen)
                    != CS_OK) {
        ns_unref(n);
        cs_free(vec);
        cs_buf_free(&norm);
        return CS_ERR;
    }
    pthread_rwlock_wrlock(&c->lock);
    if (cs_map_get(&c->nss, n->h) != n) {
        /* the namespace was forgotten meanwhile: store into its successor */
        ns_unref(n);
        n = ns_find(c, ns, ns_len, 1, err, errlen);
        if (!n) {
            pthread_rwlock_unlock(&c->lock);
            cs_free(vec);
            cs_buf_free(&norm);
            return CS_ERR;
        }
        atomic_fetch_add(&n->refs, 1);
    }
    if (norm.len) {
        norm_h = text_hash(n, norm.data, norm.len);
    }
    rc = entry_insert(c, n, *id, text, text_len, norm_h,
                      have_vec ? vec : NULL, payload, payload_len, now,
                      expires, err, errlen);
    pthread_rwlock_unlock(&c->lock);
    ns_unref(n);

    if (rc == CS_OK && c->redis) {
        cs_entry_rec_t rec;

        memset(&rec, 0, sizeof(rec));
        rec.id = *id;
        rec.ns = ns;
        rec.ns_len = ns_len;
        rec.text = text;
        rec.text_len = text_len;
        rec.norm = norm.data ? norm.data : "";
        rec.norm_len = norm.len;
        rec.vec = have_vec ? vec : NULL;
        rec.dim = have_vec ? cs_embed_dim(c->embedder) : 0;
        rec.payload = payload;
        rec.payload_len = payload_len;
        rec.created_us = now;
        rec.expires_us = expires;
        rec.embedder = c->embedder_version;
        if (cs_redis_put(c->redis, &rec, rerr, sizeof(rerr)) != CS_OK) {
            atomic_fetch_add(&c->errors, 1);
            cs_log(CS_LOG_DEBUG, CS_LOGNO(00222) "entry kept in L1 only: "
                   "%s", rerr);
        }
    }
    if (rc == CS_OK) {
        atomic_fetch_add(&c->stores, 1);
    }
    cs_free(vec);
    cs_buf_free(&norm);
    return rc;
}

/* ------------------------------------------------------------ forget */

/* Drops a whole namespace; caller holds the write lock. */
static long ns_drop(cs_cache_t *c, cs_ns_t *n)
{
    size_t pos = 0;
    uint64_t key;
    void *val;
    long removed = 0;
    uint64_t *ids = cs_malloc(sizeof(uint64_t) * (n->entries + 1));
    size_t count = 0, i;

    while (cs_map_next(&c->entries, &pos, &key, &val)) {
        if (((cs_entry_t *)val)->ns == n) {
            ids[count++] = key;
        }
    }
    for (i = 0; i < count; i++) {
        entry_drop(c, cs_map_get(&c->entries, ids[i]));
        removed++;
    }
    cs_free(ids);
    cs_map_del(&c->nss, n->h);
    ns_unref(n);
    return removed;
}

int cs_cache_forget(cs_cache_t *c, const char *ns, size_t ns_len,
                    const uint64_t *id, long *removed, char *err,
                    size_t errlen)
{
    cs_ns_t *n;
    char rerr[256];

    *removed = 0;
    pthread_rwlock_wrlock(&c->lock);
    n = ns_find(c, ns, ns_len, 0, err, errlen);
    if (n && id) {
        cs_entry_t *e = cs_map_get(&c->entries, *id);

        if (e && e->ns == n) {
            entry_drop(c, e);
            *removed = 1;
        }
    }
    else if (n) {
        *removed = ns_drop(c, n);
    }
    pthread_rwlock_unlock(&c->lock);
    if (c->redis) {
        long r = 0;
        int rc = id ? cs_redis_del(c->redis, ns, ns_len, *id, rerr,
                                   sizeof(rerr))
                    : cs_redis_del_ns(c->redis, ns, ns_len, &r, rerr,
                                      sizeof(rerr));

        if (rc != CS_OK) {
            seterr(err, errlen, "forgotten here, but not in Redis: %s", rerr);
            atomic_fetch_add(&c->forgets, (uint64_t)*removed);
            return CS_ERR;
        }
        if (r > *removed) {
            *removed = r;
        }
    }
    atomic_fetch_add(&c->forgets, (uint64_t)*removed);
    return CS_OK;
}

/* ------------------------------------------------ Redis: load and follow */

/* Inserts an entry read from Redis, if it is new, live and embedded by
 * our embedder. Caller holds the write lock. Returns 1 when inserted,
 * else 0. */
static int load_rec(cs_cache_t *c, const cs_entry_rec_t *e)
{
    cs_ns_t *n;
    uint64_t norm_h = 0;
    char err[256];

    if (cs_map_get(&c->entries, e->id)
        || (e->expires_us > 0 && e->expires_us <= cs_wall_us())
        || !e->embedder || strcmp(e->embedder, c->embedder_version)
        || (e->vec && e->dim != cs_embed_dim(c->embedder))) {
        return 0;
    }
    n = ns_find(c, e->ns, e->ns_len, 1, err, sizeof(err));
    if (!n) {
        return 0;
    }
    if (e->norm_len) {
        norm_h = text_hash(n, e->norm, e->norm_len);
    }
    return entry_insert(c, n, e->id, e->text, e->text_len, norm_h, e->vec,
                        e->payload, e->payload_len, e->created_us,
                        e->expires_us, err, sizeof(err)) == CS_OK;
}

static int scan_cb(void *ctx, const cs_entry_rec_t *e)
{
    cs_cache_t *c = ctx;

    if (atomic_load(&c->shutting)) {
        return CS_ERR;            /* stop a catch-up scan at shutdown */
    }
    pthread_rwlock_wrlock(&c->lock);
    load_rec(c, e);
    pthread_rwlock_unlock(&c->lock);
    return CS_OK;
}

static void on_put(void *ctx, uint64_t id)
{
    cs_cache_t *c = ctx;
    cs_entry_rec_t rec;
    void *owned = NULL;
    int found = 0;
    char err[256];

    if (cs_redis_get_entry(c->redis, id, &rec, &owned, &found, err,
                           sizeof(err)) != CS_OK || !found) {
        return;
    }
    /* replicas keep other nodes' payloads out of L1: fetched on a hit */
    rec.payload = NULL;
    rec.payload_len = 0;
    pthread_rwlock_wrlock(&c->lock);
    load_rec(c, &rec);
    pthread_rwlock_unlock(&c->lock);
    cs_free(owned);
}

static void on_del(void *ctx, const char *ns, size_t ns_len, uint64_t id)
{
    cs_cache_t *c = ctx;
    cs_entry_t *e;

    (void)ns;
    (void)ns_len;
    pthread_rwlock_wrlock(&c->lock);
    if ((e = cs_map_get(&c->entries, id))) {
        entry_drop(c, e);
    }
    pthread_rwlock_unlock(&c->lock);
}

static void on_delns(void *ctx, const char *ns, size_t ns_len)
{
    cs_cache_t *c = ctx;
    cs_ns_t *n;

    pthread_rwlock_wrlock(&c->lock);
    if ((n = ns_find(c, ns, ns_len, 0, NULL, 0))) {
        ns_drop(c, n);
    }
    pthread_rwlock_unlock(&c->lock);
}

static void on_resync(void *ctx)
{
    cs_cache_t *c = ctx;
    char pos[CS_REDIS_POS_LEN], err[256];

    cs_log(CS_LOG_NOTICE, CS_LOGNO(00223) "replication stream lost track: "
           "rescanning Redis");
    if (cs_redis_scan(c->redis, scan_cb, c, pos, sizeof(pos), err,
                      sizeof(err)) != CS_OK) {
        cs_log(CS_LOG_WARNING, CS_LOGNO(00224) "rescan failed: %s", err);
    }
}

/* ------------------------------------------------------- maintenance */

static void sweep(cs_cache_t *c)
{
    int64_t now = cs_wall_us();
    size_t pos = 0;
    uint64_t key;
    void *val;
    cs_ns_t **list;
    size_t n = 0, i;

    pthread_rwlock_wrlock(&c->lock);
    while (c->heap_len && c->heap[0].expires_us <= now) {
        heap_item_t it = heap_pop(c);
        cs_entry_t *e = cs_map_get(&c->entries, it.id);

        if (e && e->expires_us == it.expires_us) {
            entry_drop(c, e);
            atomic_fetch_add(&c->expirations, 1);
        }
    }
    list = cs_malloc(sizeof(cs_ns_t *) * (c->nss.len + 1));
    while (cs_map_next(&c->nss, &pos, &key, &val)) {
        list[n] = val;
        atomic_fetch_add(&list[n]->refs, 1);
        n++;
    }
    pthread_rwlock_unlock(&c->lock);
    for (i = 0; i < n; i++) {
        char err[256];

        if (cs_index_rebuild_if_needed(list[i]->index, err, sizeof(err))
            != CS_OK) {
            cs_log(CS_LOG_WARNING, CS_LOGNO(00225) "index rebuild failed: "
                   "%s", err);
        }
        ns_unref(list[i]);
    }
    cs_free(list);
}

static void *maint_main(void *arg)
{
    cs_cache_t *c = arg;

    pthread_mutex_lock(&c->maint_lock);
    while (!c->stopping) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&c->maint_cond, &c->maint_lock, &ts);
        if (c->stopping) {
            break;
        }
        pthread_mutex_unlock(&c->maint_lock);
        sweep(c);
        pthread_mutex_lock(&c->maint_lock);
    }
    pthread_mutex_unlock(&c->maint_lock);
    return NULL;
}

/* ---------------------------------------------------------- snapshots */

/* The file of namespace hash h. */
static void snap_path(const cs_cache_t *c, uint64_t h, char *out, size_t len)
{
    snprintf(out, len, "%s/" CS_CACHE_SNAP_PREFIX "%016llx"
             CS_CACHE_SNAP_SUFFIX, c->snap_dir, (unsigned long long)h);
}

/* Namespaces, each with a reference the caller drops (ns_unref); *count
 * receives how many. */
static cs_ns_t **ns_list(cs_cache_t *c, size_t *count)
{
    size_t pos = 0, n = 0;
    uint64_t key;
    void *val;
    cs_ns_t **list;

    pthread_rwlock_rdlock(&c->lock);
    list = cs_malloc(sizeof(cs_ns_t *) * (c->nss.len + 1));
    while (cs_map_next(&c->nss, &pos, &key, &val)) {
        list[n] = val;
        atomic_fetch_add(&list[n]->refs, 1);
        n++;
    }
    pthread_rwlock_unlock(&c->lock);
    *count = n;
    return list;
}

/* Saves every namespace whose index changed since its last snapshot and
 * holds at least snap_min vectors; removes the file of one that fell
 * below (or was emptied). Called by one thread at a time (the snapshot
 * thread, then cs_engine_stop once it has stopped). Returns the number
 * of files written. */
static size_t snap_save_all(cs_cache_t *c)
{
    size_t count, i, saved = 0;
    cs_ns_t **list = ns_list(c, &count);

    for (i = 0; i < count; i++) {
        cs_ns_t *n = list[i];
        char path[4096], err[512];
        uint64_t ch = cs_index_changes(n->index);
        size_t live = cs_index_live(n->index);
        int64_t t0;

        snap_path(c, n->h, path, sizeof(path));
        if (live < (size_t)c->snap_min) {
            if (n->has_file) {
                unlink(path);
                n->has_file = 0;
            }
            continue;
        }
        if (n->has_file && ch == n->saved_changes) {
            continue;
        }
        t0 = cs_now_us();
        if (cs_index_save_tagged(n->index, path, n->key, n->key_len, err,
                                 sizeof(err)) != CS_OK) {
            atomic_fetch_add(&c->snap_failures, 1);
            cs_log(CS_LOG_WARNING, CS_LOGNO(00230) "index snapshot not "
                   "saved: %s", err);
            continue;
        }
        n->saved_changes = ch;
        n->has_file = 1;
        saved++;
        atomic_fetch_add(&c->snap_saves, 1);
        atomic_store(&c->snap_last_ms,
                     (uint64_t)((cs_now_us() - t0) / 1000));
        cs_log(CS_LOG_INFO, CS_LOGNO(00231) "index snapshot %s saved: %zu "
               "vectors in %.1f ms", path, live,
               (double)(cs_now_us() - t0) / 1000.0);
    }
    for (i = 0; i < count; i++) {
        ns_unref(list[i]);
    }
    cs_free(list);
    return saved;
}

/* Removes snapshot files (and temporaries left by a crash during a save)
 * of namespaces the engine no longer has. */
static void snap_clean(cs_cache_t *c)
{
    DIR *d = opendir(c->snap_dir);
    struct dirent *de;
    size_t pl = strlen(CS_CACHE_SNAP_PREFIX);

    if (!d) {
        return;
    }
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        unsigned long long h;
        char rest[32], path[4096];
        cs_ns_t *n;
        int keep;

        if (strncmp(name, CS_CACHE_SNAP_PREFIX, pl)
            || sscanf(name + pl, "%16llx%31s", &h, rest) != 2) {
            continue;
        }
        pthread_rwlock_rdlock(&c->lock);
        n = cs_map_get(&c->nss, (uint64_t)h);
        keep = n && n->has_file && !strcmp(rest, CS_CACHE_SNAP_SUFFIX);
        pthread_rwlock_unlock(&c->lock);
        if (!keep) {
            snprintf(path, sizeof(path), "%s/%s", c->snap_dir, name);
            unlink(path);
        }
    }
    closedir(d);
}

static void *snap_main(void *arg)
{
    cs_cache_t *c = arg;
    int64_t next = cs_now_us() + (int64_t)c->snap_interval * 1000000;

    pthread_mutex_lock(&c->maint_lock);
    while (!c->stopping) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&c->maint_cond, &c->maint_lock, &ts);
        /* interval 0: only cs_engine_stop saves */
        if (c->stopping || c->snap_interval == 0 || cs_now_us() < next
            || atomic_load(&c->catching_up)) {
            continue;
        }
        pthread_mutex_unlock(&c->maint_lock);
        snap_save_all(c);
        snap_clean(c);
        next = cs_now_us() + (int64_t)c->snap_interval * 1000000;
        pthread_mutex_lock(&c->maint_lock);
    }
    pthread_mutex_unlock(&c->maint_lock);
    return NULL;
}

/* Loads every snapshot in snap_dir as a namespace. A file that cannot be
 * read, is damaged, or was made with another embedder or dimension is
 * logged and skipped (that namespace is rebuilt from Redis). Returns the
 * number of namespaces loaded. Start-up, single-threaded. */
static size_t snap_load_all(cs_cache_t *c)
{
    DIR *d = opendir(c->snap_dir);
    struct dirent *de;
    size_t pl = strlen(CS_CACHE_SNAP_PREFIX), vl;
    size_t loaded = 0, vectors = 0;
    int64_t t0 = cs_now_us();

    if (!d) {
        return 0;
    }
    vl = strlen(c->embedder_version);
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        unsigned long long h;
        char rest[32], path[4096], err[512];
        cs_index_t *idx = NULL;
        char *tag = NULL;
        size_t tag_len = 0;

        if (strncmp(name, CS_CACHE_SNAP_PREFIX, pl)
            || sscanf(name + pl, "%16llx%31s", &h, rest) != 2
            || strcmp(rest, CS_CACHE_SNAP_SUFFIX)) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", c->snap_dir, name);
        if (cs_index_load_tagged(&idx, &c->index_conf, path, &tag, &tag_len,
                                 err, sizeof(err)) != CS_OK) {
            cs_log(CS_LOG_WARNING, CS_LOGNO(00232) "index snapshot ignored "
                   "(the namespace is rebuilt from Redis): %s", err);
            continue;
        }
        if (tag_len <= vl || memcmp(tag, c->embedder_version, vl)
            || tag[vl] != '|' || cs_hash64(tag, tag_len, 0) != h
            || cs_map_get(&c->nss, h)) {
            cs_log(CS_LOG_WARNING, CS_LOGNO(00233) "index snapshot %s "
                   "ignored: made by another embedder (%.*s) or for another "
                   "namespace", path,
                   (int)(memchr(tag, '|', tag_len)
                             ? (const char *)memchr(tag, '|', tag_len) - tag
                             : 0), tag);
            cs_index_free(idx);
            cs_free(tag);
            continue;
        }
        vectors += cs_index_live(idx);
        pthread_rwlock_wrlock(&c->lock);
        {
            cs_ns_t *n = ns_make(c, tag, tag_len, h, idx);

            n->saved_changes = cs_index_changes(idx);
            n->has_file = 1;
        }
        pthread_rwlock_unlock(&c->lock);
        loaded++;
    }
    closedir(d);
    atomic_store(&c->snap_loaded, loaded);
    atomic_store(&c->snap_vectors, vectors);
    if (loaded) {
        cs_log(CS_LOG_NOTICE, CS_LOGNO(00234) "loaded %zu index snapshots "
               "(%zu vectors) in %.1f ms", loaded, vectors,
               (double)(cs_now_us() - t0) / 1000.0);
    }
    return loaded;
}

/* Ends a catch-up: every id an index holds (from a snapshot) whose entry
 * the scan did not find is gone from Redis (deleted or expired while this
 * daemon was down): it leaves the index. The engine write lock is held
 * per chunk, so no entry can be inserted between the check and the
 * removal. */
static void ghost_sweep(cs_cache_t *c)
{
    size_t count, i, j, k, nids, removed = 0;
    cs_ns_t **list = ns_list(c, &count);

    for (i = 0; i < count; i++) {
        int64_t *ids;

        nids = cs_index_ids(list[i]->index, &ids);
        for (j = 0; j < nids; j += CS_CACHE_SWEEP_CHUNK) {
            pthread_rwlock_wrlock(&c->lock);
            for (k = j; k < nids && k < j + CS_CACHE_SWEEP_CHUNK; k++) {
                cs_entry_t *e = cs_map_get(&c->entries, (uint64_t)ids[k]);

                if ((!e || e->ns != list[i])
                    && cs_index_remove(list[i]->index, ids[k]) == CS_OK) {
                    removed++;
                }
            }
            pthread_rwlock_unlock(&c->lock);
        }
        cs_free(ids);
        ns_unref(list[i]);
    }
    cs_free(list);
    atomic_fetch_add(&c->ghosts, removed);
    if (removed) {
        cs_log(CS_LOG_NOTICE, CS_LOGNO(00235) "%zu indexed entries from "
               "snapshots are gone from Redis: removed", removed);
    }
}

static void start_follow(cs_cache_t *c, const char *pos)
{
    cs_redis_follow_cbs_t cbs;
    char rerr[256];

    memset(&cbs, 0, sizeof(cbs));
    cbs.on_put = on_put;
    cbs.on_del = on_del;
    cbs.on_delns = on_delns;
    cbs.on_resync = on_resync;
    cbs.ctx = c;
    if (cs_redis_follow_start(c->redis, pos, &cbs, rerr, sizeof(rerr))
        != CS_OK) {
        cs_log(CS_LOG_ERROR, CS_LOGNO(00236) "cannot follow the Redis stream: "
               "%s", rerr);
    }
}

/* Catch-up after loading snapshots: read every entry from Redis (lookups
 * are served meanwhile, see catchup_fetch), drop the ghosts, then follow
 * the stream from where the scan began. If Redis is down, retries until
 * it answers or the engine stops. */
static void *catchup_main(void *arg)
{
    cs_cache_t *c = arg;
    char pos[CS_REDIS_POS_LEN], rerr[256];
    int64_t t0 = cs_now_us();
    int warned = 0;
    size_t n;

    while (cs_redis_scan(c->redis, scan_cb, c, pos, sizeof(pos), rerr,
                         sizeof(rerr)) != CS_OK) {
        if (atomic_load(&c->shutting)) {
            return NULL;
        }
        if (!warned++) {
            cs_log(CS_LOG_WARNING, CS_LOGNO(00237) "catch-up from Redis "
                   "failed (%s): serving the snapshots, retrying", rerr);
        }
        usleep(500000);
    }
    ghost_sweep(c);
    if (atomic_load(&c->shutting)) {
        return NULL;
    }
    start_follow(c, pos);
    atomic_store(&c->catchup_ms, (cs_now_us() - t0) / 1000);
    atomic_store(&c->catching_up, 0);
    pthread_rwlock_rdlock(&c->lock);
    n = c->entries.len;
    pthread_rwlock_unlock(&c->lock);
    cs_log(CS_LOG_NOTICE, CS_LOGNO(00238) "caught up with Redis: %zu "
           "entries in %.1f ms", n, (double)(cs_now_us() - t0) / 1000.0);
    return NULL;
}

/* ------------------------------------------------------------ engine */

static const char *const embedder_names[] = { "builtin", "http", NULL };

static int read_secret_file(const char *path, char **out, char *err,
                            size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    size_t n;

    if (!f) {
        seterr(err, errlen, "cannot read %s", path);
        return CS_ERR;
    }
    if (!fgets(line, sizeof(line), f)) {
        line[0] = '\0';
    }
    fclose(f);
    n = strcspn(line, "\r\n");
    line[n] = '\0';
    if (!n) {
        seterr(err, errlen, "%s is empty", path);
        return CS_ERR;
    }
    *out = cs_strndup(line, n);
    return CS_OK;
}

/* Tells the engine's background threads (maintenance, snapshots,
 * catch-up) to stop and waits for those that run. */
static void stop_threads(cs_cache_t *c)
{
    pthread_mutex_lock(&c->maint_lock);
    c->stopping = 1;
    atomic_store(&c->shutting, 1);
    pthread_cond_broadcast(&c->maint_cond);
    pthread_mutex_unlock(&c->maint_lock);
    if (c->maint_running) {
        pthread_join(c->maint, NULL);
    }
    if (c->snap_running) {
        pthread_join(c->snap_thread, NULL);
    }
    if (c->catchup_running) {
        pthread_join(c->catchup, NULL);
    }
}

int cs_engine_start(const cs_config_t *cfg, cs_cache_t **pcache, char *err,
                    size_t errlen)
{
    cs_cache_t *c = cs_calloc(1, sizeof(*c));
    const char *redis_host = NULL, *redis_unix = NULL, *pass_file = NULL;
    const char *sentinels = NULL, *sentinel_master = NULL;
    const char *sentinel_pass_file = NULL;
    char *sentinel_pass = NULL;
    long wait_replicas = 0;
    const char *key_file = NULL, *node = NULL, *prefix = NULL;
    const char *snap_dir = NULL;
    long dim, port, db, cto, mto, l;
    int emb = 0, rc_thread;
    char *redis_pass = NULL;

    pthread_rwlock_init(&c->lock, NULL);
    pthread_mutex_init(&c->lru_lock, NULL);
    pthread_mutex_init(&c->maint_lock, NULL);
    pthread_cond_init(&c->maint_cond, NULL);

#define GET(call) if ((call) != CS_OK) { goto fail; }
    GET(cs_config_get_double(cfg, "default_threshold", 0.90, 0.01, 1.0,
                             &c->threshold, err, errlen));
    GET(cs_config_get_long(cfg, "default_ttl", 3600, 1, 30L * 86400,
                           &c->default_ttl, err, errlen));
    GET(cs_config_get_long(cfg, "max_ttl", 30L * 86400, 1, 365L * 86400,
                           &c->max_ttl, err, errlen));
    GET(cs_config_get_size(cfg, "l1_max_bytes", 256u << 20, 1u << 20,
                           (size_t)1 << 40, &c->l1_max, err, errlen));
    GET(cs_config_get_size(cfg, "max_payload_bytes", 4u << 20, 1024,
                           256u << 20, &c->max_payload, err, errlen));
    GET(cs_config_get_size(cfg, "max_text_bytes", 64u << 10, 64, 16u << 20,
                           &c->max_text, err, errlen));
    GET(cs_config_get_bool(cfg, "verify", 1, &c->verify, err, errlen));
    GET(cs_config_get_long(cfg, "approx_threshold", 0, 0, 1L << 31, &l,
                           err, errlen));     /* 0: cs_index's default */
    c->index_conf.approx_threshold = (size_t)l;
    GET(cs_config_get_long(cfg, "hnsw_m", 0, 0, 256, &l, err, errlen));
    c->index_conf.hnsw_m = (int)l;
    GET(cs_config_get_long(cfg, "ef_search", 0, 0, 4096, &l, err, errlen));
    c->index_conf.ef_search = (int)l;
    GET(cs_config_get_long(cfg, "ef_construction", 0, 0, 4096, &l, err,
                           errlen));
    c->index_conf.ef_construction = (int)l;

    GET(cs_config_get_enum(cfg, "embedder", embedder_names, 0, &emb, err,
                           errlen));
    GET(cs_config_get_long(cfg, "embedder_dim", emb ? 0 : 384, 0, 8192,
                           &dim, err, errlen));
    if (emb == 0) {
        c->embedder = cs_embed_builtin_create((int)dim);
        if (!c->embedder) {
            cs_config_error(cfg, "embedder_dim", err, errlen, "expected a "
                            "multiple of 64 from 64 to 4096");
            goto fail;
        }
    }
    else {
        const char *url = NULL, *model = NULL, *kf = NULL;
        long to, batch;
        char *key = NULL;

        GET(cs_config_get_str(cfg, "embedder_url", NULL, &url, err, errlen));
        GET(cs_config_get_str(cfg, "embedder_model", "text-embedding-3-small",
                              &model, err, errlen));
        GET(cs_config_get_str(cfg, "embedder_key_file", NULL, &kf, err,
                              errlen));
        GET(cs_config_get_long(cfg, "embedder_timeout_ms", 2000, 10, 60000,
                               &to, err, errlen));
        GET(cs_config_get_long(cfg, "embedder_batch", 32, 1, 2048, &batch,
                               err, errlen));
        if (!url) {
            cs_config_error(cfg, "embedder", err, errlen, "embedder http "
                            "needs embedder_url");
            goto fail;
        }
        if (kf && read_secret_file(kf, &key, err, errlen) != CS_OK) {
            goto fail;
        }
        c->embedder = cs_embed_http_create(url, model, key, (int)dim,
                                           (int)to, (int)batch, err, errlen);
        cs_free(key);
        if (!c->embedder) {
            goto fail;
        }
        if (!dim && cs_embed_probe(c->embedder, err, errlen) != CS_OK) {
            goto fail;
        }
    }
    c->embedder_version = cs_embed_version(c->embedder);
    c->index_conf.dim = cs_embed_dim(c->embedder);

    GET(cs_config_get_str(cfg, "redis_host", NULL, &redis_host, err,
                          errlen));
    GET(cs_config_get_str(cfg, "redis_unixsocket", NULL, &redis_unix, err,
                          errlen));
    GET(cs_config_get_long(cfg, "redis_port", 6379, 1, 65535, &port, err,
                           errlen));
    GET(cs_config_get_long(cfg, "redis_db", 0, 0, 15, &db, err, errlen));
    GET(cs_config_get_str(cfg, "redis_password_file", NULL, &pass_file, err,
                          errlen));
    GET(cs_config_get_long(cfg, "redis_connect_timeout_ms", 50, 1, 10000,
                           &cto, err, errlen));
    GET(cs_config_get_long(cfg, "redis_command_timeout_ms", 100, 1, 10000,
                           &mto, err, errlen));
    GET(cs_config_get_str(cfg, "redis_prefix", NULL, &prefix, err, errlen));
    GET(cs_config_get_str(cfg, "redis_sentinels", NULL, &sentinels, err,
                          errlen));
    GET(cs_config_get_str(cfg, "redis_sentinel_master", NULL,
                          &sentinel_master, err, errlen));
    GET(cs_config_get_str(cfg, "redis_sentinel_password_file", NULL,
                          &sentinel_pass_file, err, errlen));
    GET(cs_config_get_long(cfg, "redis_wait_replicas", 0, 0, 16,
                           &wait_replicas, err, errlen));
    if (sentinels && (redis_host || redis_unix)) {
        cs_config_error(cfg, "redis_sentinels", err, errlen, "give either "
                        "redis_host/redis_unixsocket or redis_sentinels, "
                        "not both");
        goto fail;
    }
    if (!sentinels != !sentinel_master) {
        cs_config_error(cfg, sentinels ? "redis_sentinels"
                                       : "redis_sentinel_master",
                        err, errlen, "redis_sentinels and "
                        "redis_sentinel_master go together");
        goto fail;
    }
    GET(cs_config_get_str(cfg, "node_name", NULL, &node, err, errlen));
    GET(cs_config_get_str(cfg, "encryption_key_file", NULL, &key_file, err,
                          errlen));
    GET(cs_config_get_str(cfg, "snapshot_dir", NULL, &snap_dir, err,
                          errlen));
    GET(cs_config_get_long(cfg, "snapshot_interval_s", 300, 0, 86400,
                           &c->snap_interval, err, errlen));
    GET(cs_config_get_long(cfg, "snapshot_min_vectors", 1000, 1,
                           (long)CS_INDEX_MAX_ENTRIES, &c->snap_min, err,
                           errlen));
    if (snap_dir) {
        struct stat st;

        if (!redis_host && !redis_unix && !sentinels) {
            cs_config_error(cfg, "snapshot_dir", err, errlen, "index "
                            "snapshots need the Redis tier (the entries "
                            "live there): set redis_host, "
                            "redis_unixsocket or redis_sentinels");
            goto fail;
        }
        if (mkdir(snap_dir, 0700) != 0 && errno != EEXIST) {
            cs_config_error(cfg, "snapshot_dir", err, errlen, "cannot create "
                            "%s: %s", snap_dir, strerror(errno));
            goto fail;
        }
        if (stat(snap_dir, &st) != 0 || !S_ISDIR(st.st_mode)
            || access(snap_dir, R_OK | W_OK | X_OK) != 0) {
            cs_config_error(cfg, "snapshot_dir", err, errlen, "%s is not a "
                            "writable directory", snap_dir);
            goto fail;
        }
        c->snap_dir = cs_strndup(snap_dir, strlen(snap_dir));
    }
    if (redis_host || redis_unix || sentinels) {
        cs_redis_conf_t rc;
        char pos[CS_REDIS_POS_LEN], rerr[256];
        cs_redis_follow_cbs_t cbs;
        int64_t t0 = cs_now_us();

        memset(&rc, 0, sizeof(rc));
        if (pass_file && read_secret_file(pass_file, &redis_pass, err,
                                          errlen) != CS_OK) {
            goto fail;
        }
        if (key_file
            && cs_crypto_load_key(key_file, c->aes_key, err, errlen)
               != CS_OK) {
            goto fail;
        }
        if (sentinel_pass_file
            && read_secret_file(sentinel_pass_file, &sentinel_pass, err,
                                errlen) != CS_OK) {
            goto fail;
        }
        rc.host = redis_host;
        rc.port = (int)port;
        rc.unix_path = redis_unix;
        rc.password = redis_pass;
        rc.db = (int)db;
        rc.connect_timeout_ms = (int)cto;
        rc.command_timeout_ms = (int)mto;
        rc.prefix = prefix;
        rc.aes_key = key_file ? c->aes_key : NULL;
        rc.node_name = node;
        rc.sentinels = sentinels;
        rc.sentinel_master = sentinel_master;
        rc.sentinel_password = sentinel_pass;
        rc.wait_replicas = (int)wait_replicas;
        if (cs_redis_create(&c->redis, &rc, err, errlen) != CS_OK) {
            goto fail;
        }
        if (c->snap_dir && snap_load_all(c) > 0) {
            /* Serve the snapshots now; read Redis in the background. */
            atomic_store(&c->catching_up, 1);
            if (pthread_create(&c->catchup, NULL, catchup_main, c) != 0) {
                seterr(err, errlen, "cannot start the catch-up thread");
                goto fail;
            }
            c->catchup_running = 1;
        }
        else if (cs_redis_scan(c->redis, scan_cb, c, pos, sizeof(pos), rerr,
                          sizeof(rerr)) != CS_OK) {
            cs_log(CS_LOG_WARNING, CS_LOGNO(00226) "Redis not available at "
                   "start (%s): serving from L1, catching up when it "
                   "returns", rerr);
            snprintf(pos, sizeof(pos), "0-0");
        }
        if (!c->catchup_running) {
            cs_log(CS_LOG_NOTICE, CS_LOGNO(00227) "loaded %zu entries from "
                   "Redis in %.1f ms", c->entries.len,
                   (double)(cs_now_us() - t0) / 1000.0);
        }
        memset(&cbs, 0, sizeof(cbs));
        cbs.on_put = on_put;
        cbs.on_del = on_del;
        cbs.on_delns = on_delns;
        cbs.on_resync = on_resync;
        cbs.ctx = c;
        if (!c->catchup_running
            && cs_redis_follow_start(c->redis, pos, &cbs, rerr, sizeof(rerr))
               != CS_OK) {
            seterr(err, errlen, "cannot follow the Redis stream: %s", rerr);
            goto fail;
        }
    }
    else if (key_file) {
        cs_config_error(cfg, "encryption_key_file", err, errlen,
                        "payloads are only encrypted in Redis: set "
                        "redis_host, redis_unixsocket or redis_sentinels");
        goto fail;
    }
    rc_thread = pthread_create(&c->maint, NULL, maint_main, c);
    if (rc_thread != 0) {
        seterr(err, errlen, "cannot start the maintenance thread");
        goto fail;
    }
    c->maint_running = 1;
    if (c->snap_dir) {
        if (pthread_create(&c->snap_thread, NULL, snap_main, c) != 0) {
            seterr(err, errlen, "cannot start the snapshot thread");
            goto fail;
        }
        c->snap_running = 1;
    }
#undef GET
    cs_free(redis_pass);
    cs_free(sentinel_pass);
    cs_log(CS_LOG_NOTICE, CS_LOGNO(00228) "cache engine ready: embedder %s, "
           "threshold %.2f, default TTL %lds, L1 %zu bytes, Redis %s",
           c->embedder_version, c->threshold, c->default_ttl, c->l1_max,
           c->redis ? "on" : "off");
    *pcache = c;
    return CS_OK;

fail:
    cs_free(redis_pass);
    cs_free(sentinel_pass);
    stop_threads(c);
    cs_free(c->snap_dir);
    if (c->redis) {
        cs_redis_free(c->redis);
    }
    if (c->embedder) {
        cs_embed_free(c->embedder);
    }
    cs_free(c);
    return CS_ERR;
}

void cs_engine_reopen(cs_cache_t *c)
{
    (void)c;       /* the engine writes no files of its own */
}

void cs_engine_stop(cs_cache_t *c)
{
    size_t pos = 0;
    uint64_t key;
    void *val;

    if (!c) {
        return;
    }
    stop_threads(c);
    if (c->redis) {
        cs_redis_follow_stop(c->redis);
    }
    if (c->snap_dir) {
        /* Last snapshot: the next start serves from it at once. */
        int64_t t0 = cs_now_us();
        size_t saved = snap_save_all(c);

        snap_clean(c);
        cs_log(CS_LOG_NOTICE, CS_LOGNO(00239) "%zu index snapshots saved at "
               "shutdown in %.1f ms", saved,
               (double)(cs_now_us() - t0) / 1000.0);
    }
    if (c->redis) {
        cs_redis_free(c->redis);
    }
    while (cs_map_next(&c->entries, &pos, &key, &val)) {
        cs_entry_t *e = val;

        cs_free(e->payload);
        cs_free(e->text);
        cs_free(e);
    }
    pos = 0;
    while (cs_map_next(&c->nss, &pos, &key, &val)) {
        ns_unref(val);
    }
    cs_map_free(&c->entries);
    cs_map_free(&c->exact);
    cs_map_free(&c->norm);
    cs_map_free(&c->nss);
    cs_free(c->heap);
    cs_free(c->snap_dir);
    cs_embed_free(c->embedder);
    pthread_rwlock_destroy(&c->lock);
    cs_free(c);
}

/* ------------------------------------------------------------ reports */

void cs_cache_info(cs_cache_t *c, cs_buf_t *out)
{
    size_t pos = 0, live = 0, tomb = 0, mem = 0, approx = 0;
    uint64_t key, deferred = 0;
    void *val;
    size_t entries, nss, l1;

    pthread_rwlock_rdlock(&c->lock);
    entries = c->entries.len;
    nss = c->nss.len;
    l1 = c->l1_bytes;
    while (cs_map_next(&c->nss, &pos, &key, &val)) {
        cs_ns_t *n = val;

        live += cs_index_live(n->index);
        tomb += cs_index_tombstones(n->index);
        mem += cs_index_memory(n->index);
        approx += (size_t)cs_index_is_approx(n->index);
        deferred += cs_index_deferred(n->index, NULL);
    }
    pthread_rwlock_unlock(&c->lock);
    cs_buf_printf(out, "# Cache\r\nentries:%zu\r\nnamespaces:%zu\r\n"
                  "l1_bytes:%zu\r\nl1_max_bytes:%zu\r\n"
                  "default_threshold:%.4f\r\ndefault_ttl:%ld\r\n"
                  "embedder:%s\r\nverify:%s\r\n",
                  entries, nss, l1, c->l1_max, c->threshold, c->default_ttl,
                  c->embedder_version, c->verify ? "yes" : "no");
    cs_buf_printf(out, "hits_exact:%llu\r\nhits_normalized:%llu\r\n"
                  "hits_semantic:%llu\r\nmisses:%llu\r\n"
                  "verify_rejections:%llu\r\nstores:%llu\r\n"
                  "evictions:%llu\r\nexpirations:%llu\r\nforgets:%llu\r\n"
                  "errors:%llu\r\nredis_fetches:%llu\r\n",
                  (unsigned long long)atomic_load(&c->hits_exact),
                  (unsigned long long)atomic_load(&c->hits_norm),
                  (unsigned long long)atomic_load(&c->hits_semantic),
                  (unsigned long long)atomic_load(&c->misses),
                  (unsigned long long)atomic_load(&c->verify_rejects),
                  (unsigned long long)atomic_load(&c->stores),
                  (unsigned long long)atomic_load(&c->evictions),
                  (unsigned long long)atomic_load(&c->expirations),
                  (unsigned long long)atomic_load(&c->forgets),
                  (unsigned long long)atomic_load(&c->errors),
                  (unsigned long long)atomic_load(&c->redis_fetches));
    cs_buf_printf(out, "\r\n# Index\r\nvectors:%zu\r\ntombstones:%zu\r\n"
                  "index_bytes:%zu\r\napprox_namespaces:%zu\r\n",
                  live, tomb, mem, approx);
    cs_buf_printf(out, "snapshot_dir:%s\r\nsnapshots_loaded:%llu\r\n"
                  "snapshot_vectors_loaded:%llu\r\nsnapshot_saves:%llu\r\n"
                  "snapshot_failures:%llu\r\nsnapshot_last_save_ms:%llu\r\n"
                  "catching_up:%d\r\ncatchup_ms:%lld\r\n"
                  "catchup_fetches:%llu\r\nghosts_removed:%llu\r\n"
                  "snapshot_deferred_changes:%llu\r\n",
                  c->snap_dir ? c->snap_dir : "",
                  (unsigned long long)atomic_load(&c->snap_loaded),
                  (unsigned long long)atomic_load(&c->snap_vectors),
                  (unsigned long long)atomic_load(&c->snap_saves),
                  (unsigned long long)atomic_load(&c->snap_failures),
                  (unsigned long long)atomic_load(&c->snap_last_ms),
                  atomic_load(&c->catching_up),
                  (long long)atomic_load(&c->catchup_ms),
                  (unsigned long long)atomic_load(&c->catchup_fetches),
                  (unsigned long long)atomic_load(&c->ghosts),
                  (unsigned long long)deferred);
    if (c->redis) {
        cs_buf_printf(out, "\r\n");
        cs_redis_stats(c->redis, out);
    }
}

void cs_cache_stats(cs_cache_t *c, cs_stat_t *out, int max, int *n)
{
    cs_stat_t all[] = {
        { "hits_exact", (double)atomic_load(&c->hits_exact) },
        { "hits_normalized", (double)atomic_load(&c->hits_norm) },
        { "hits_semantic", (double)atomic_load(&c->hits_semantic) },
        { "misses", (double)atomic_load(&c->misses) },
        { "verify_rejections", (double)atomic_load(&c->verify_rejects) },
        { "stores", (double)atomic_load(&c->stores) },
        { "evictions", (double)atomic_load(&c->evictions) },
        { "expirations", (double)atomic_load(&c->expirations) },
        { "forgets", (double)atomic_load(&c->forgets) },
        { "errors", (double)atomic_load(&c->errors) },
        { "entries", 0 },
        { "l1_bytes", 0 },
        { "redis_up", c->redis ? (double)cs_redis_up(c->redis) : 0 },
    };
    int i, count = (int)(sizeof(all) / sizeof(all[0]));

    pthread_rwlock_rdlock(&c->lock);
    all[10].value = (double)c->entries.len;
    all[11].value = (double)c->l1_bytes;
    pthread_rwlock_unlock(&c->lock);
    for (i = 0; i < count && i < max; i++) {
        out[i] = all[i];
    }
    *n = i;
}

void cs_cache_metrics(cs_cache_t *c, cs_buf_t *out)
{
    uint64_t cum = 0;
    size_t i, entries, l1;

    pthread_rwlock_rdlock(&c->lock);
    entries = c->entries.len;
    l1 = c->l1_bytes;
    pthread_rwlock_unlock(&c->lock);
    cs_buf_printf(out,
        "# HELP ark_cached_lookups_total Lookups by result.\n"
        "# TYPE ark_cached_lookups_total counter\n"
        "ark_cached_lookups_total{result=\"hit_exact\"} %llu\n"
        "ark_cached_lookups_total{result=\"hit_normalized\"} %llu\n"
        "ark_cached_lookups_total{result=\"hit_semantic\"} %llu\n"
        "ark_cached_lookups_total{result=\"miss\"} %llu\n"
        "# TYPE ark_cached_verify_rejections_total counter\n"
        "ark_cached_verify_rejections_total %llu\n"
        "# TYPE ark_cached_stores_total counter\n"
        "ark_cached_stores_total %llu\n"
        "# TYPE ark_cached_evictions_total counter\n"
        "ark_cached_evictions_total %llu\n"
        "# TYPE ark_cached_expirations_total counter\n"
        "ark_cached_expirations_total %llu\n"
        "# TYPE ark_cached_entries gauge\nark_cached_entries %zu\n"
        "# TYPE ark_cached_l1_bytes gauge\nark_cached_l1_bytes %zu\n"
        "# TYPE ark_cached_redis_up gauge\nark_cached_redis_up %d\n",
        (unsigned long long)atomic_load(&c->hits_exact),
        (unsigned long long)atomic_load(&c->hits_norm),
        (unsigned long long)atomic_load(&c->hits_semantic),
        (unsigned long long)atomic_load(&c->misses),
        (unsigned long long)atomic_load(&c->verify_rejects),
        (unsigned long long)atomic_load(&c->stores),
        (unsigned long long)atomic_load(&c->evictions),
        (unsigned long long)atomic_load(&c->expirations), entries, l1,
        c->redis ? cs_redis_up(c->redis) : 0);
    cs_buf_printf(out, "# HELP ark_cached_lookup_seconds Lookup latency.\n"
                  "# TYPE ark_cached_lookup_seconds histogram\n");
    for (i = 0; i < CS_CACHE_LAT_BUCKETS; i++) {
        cum += atomic_load(&c->lat[i]);
        cs_buf_printf(out, "ark_cached_lookup_seconds_bucket{le=\"%g\"} "
                      "%llu\n", lat_bounds[i], (unsigned long long)cum);
    }
    cum += atomic_load(&c->lat[CS_CACHE_LAT_BUCKETS]);
    cs_buf_printf(out, "ark_cached_lookup_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "ark_cached_lookup_seconds_sum %.6f\n"
                  "ark_cached_lookup_seconds_count %llu\n",
                  (unsigned long long)cum,
                  (double)atomic_load(&c->lat_sum_us) / 1e6,
                  (unsigned long long)atomic_load(&c->lat_count));
}
