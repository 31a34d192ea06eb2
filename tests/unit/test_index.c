/* Unit tests for the vector index (cs_index.c) and, through it, the FAISS
 * C API shim (cs_faiss_shim.cpp): exact results on known vectors, removal
 * from the exact and the approximate index, re-adding a removed id, the
 * tombstone rebuild, the switch between exact and approximate at the
 * threshold, searches racing adds, removes and rebuilds, snapshot round
 * trips and damaged snapshots, and the error paths.
 *
 * Vectors are small (dim 8 or 32) so an HNSW build takes milliseconds;
 * random ones come from a fixed-seed generator, so every run is the same.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#pragma GCC diagnostic pop

#include "cs_index.h"

#define ERRLEN 256

/* FAISS 1.7.3's read_index holds what it has read in raw pointers, so a
 * snapshot truncated inside the FAISS part leaks the half-read index
 * (once per failed load; test_load_errors does this on purpose). Tell
 * LeakSanitizer, which calls this when the test is built with ASan. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:faiss::read_index\n";
}
#define RDIM 32

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 2654435761u + 1;
}

static double rng_unit(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static float rng_gauss(void)
{
    double u = rng_unit() + 1e-12;
    double v = rng_unit();

    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static void normalise(float *v, int d)
{
    double s = 0;
    int i;

    for (i = 0; i < d; i++) {
        s += (double)v[i] * v[i];
    }
    s = 1 / sqrt(s);
    for (i = 0; i < d; i++) {
        v[i] = (float)(v[i] * s);
    }
}

static void random_unit(float *v, int d)
{
    int i;

    for (i = 0; i < d; i++) {
        v[i] = rng_gauss();
    }
    normalise(v, d);
}

static float dot(const float *a, const float *b, int d)
{
    float s = 0;
    int i;

    for (i = 0; i < d; i++) {
        s += a[i] * b[i];
    }
    return s;
}

static cs_index_t *make_index(int dim, size_t threshold)
{
    cs_index_conf_t conf;
    cs_index_t *idx = NULL;
    char err[ERRLEN];

    memset(&conf, 0, sizeof(conf));
    conf.dim = dim;
    conf.approx_threshold = threshold;
    conf.hnsw_m = 16;
    conf.ef_search = 64;
    conf.build_threads = 1;
    assert_int_equal(cs_index_create(&idx, &conf, err, sizeof(err)), CS_OK);
    assert_non_null(idx);
    return idx;
}

static void add_ok(cs_index_t *idx, int64_t id, const float *v)
{
    char err[ERRLEN];

    if (cs_index_add(idx, id, v, err, sizeof(err)) != CS_OK) {
        fail_msg("add %lld: %s", (long long)id, err);
    }
}

/* k nearest of q; returns n. */
static int search_ok(cs_index_t *idx, const float *q, int k, int64_t *ids,
                     float *sims)
{
    char err[ERRLEN];
    int n = -1;

    if (cs_index_search(idx, q, k, ids, sims, &n, err, sizeof(err))
        != CS_OK) {
        fail_msg("search: %s", err);
    }
    assert_true(n >= 0 && n <= k);
    return n;
}

static void rebuild_ok(cs_index_t *idx)
{
    char err[ERRLEN];

    if (cs_index_rebuild_if_needed(idx, err, sizeof(err)) != CS_OK) {
        fail_msg("rebuild: %s", err);
    }
}

/* n random unit vectors of RDIM, ids base..base+n-1 added. */
static float *add_random(cs_index_t *idx, int n, int64_t base)
{
    float *v = malloc(sizeof(float) * RDIM * (size_t)n);
    int i;

    for (i = 0; i < n; i++) {
        random_unit(v + (size_t)i * RDIM, RDIM);
        add_ok(idx, base + i, v + (size_t)i * RDIM);
    }
    return v;
}

static void assert_never_returns(cs_index_t *idx, const float *q, int k,
                                 const char *removed, int nremoved)
{
    int64_t ids[64];
    float sims[64];
    int n = search_ok(idx, q, k, ids, sims);
    int i;

    for (i = 0; i < n; i++) {
        assert_true(ids[i] >= 0 && ids[i] < nremoved);
        assert_false(removed[ids[i]]);
    }
}

/* ---- exact index */

static void test_exact_known_vectors(void **state)
{
    cs_index_t *idx = make_index(8, 100);
    float e[8][8];
    float q[8];
    int64_t ids[16];
    float sims[16];
    int i, n;

    (void)state;
    memset(e, 0, sizeof(e));
    for (i = 0; i < 8; i++) {
        e[i][i] = 1;
        add_ok(idx, 100 + i, e[i]);
    }
    assert_int_equal(cs_index_live(idx), 8);
    assert_int_equal(cs_index_tombstones(idx), 0);
    assert_int_equal(cs_index_is_approx(idx), 0);

    n = search_ok(idx, e[3], 1, ids, sims);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 103);
    assert_float_equal(sims[0], 1.0f, 1e-6);

    /* Between e1 and e2, a little closer to e2. */
    memset(q, 0, sizeof(q));
    q[1] = 0.6f;
    q[2] = 0.8f;
    n = search_ok(idx, q, 3, ids, sims);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 102);
    assert_float_equal(sims[0], 0.8f, 1e-6);
    assert_int_equal(ids[1], 101);
    assert_float_equal(sims[1], 0.6f, 1e-6);
    assert_float_equal(sims[2], 0.0f, 1e-6);

    /* k beyond the live count gives them all, best first. */
    n = search_ok(idx, q, 16, ids, sims);
    assert_int_equal(n, 8);
    for (i = 1; i < n; i++) {
        assert_true(sims[i - 1] >= sims[i]);
    }
    assert_true(cs_index_memory(idx) >= 8 * 8 * sizeof(float) * 2);
    cs_index_free(idx);
}

static void test_exact_remove(void **state)
{
    cs_index_t *idx = make_index(RDIM, 1000);
    char removed[200];
    float *v;
    int64_t ids[8];
    float sims[8];
    int i, n;

    (void)state;
    rng_seed(1);
    v = add_random(idx, 200, 0);
    memset(removed, 0, sizeof(removed));
    for (i = 0; i < 200; i += 3) {
        assert_int_equal(cs_index_remove(idx, i), CS_OK);
        removed[i] = 1;
    }
    assert_int_equal(cs_index_remove(idx, 0), CS_ERR);     /* gone */
    assert_int_equal(cs_index_remove(idx, 5000), CS_ERR);  /* never */
    assert_int_equal(cs_index_remove(idx, -1), CS_ERR);
    assert_int_equal(cs_index_live(idx), 200 - 67);
    /* Real removal: FAISS holds no stale copy. */
    assert_int_equal(cs_index_tombstones(idx), 0);
    for (i = 0; i < 200; i++) {
        assert_never_returns(idx, v + (size_t)i * RDIM, 8, removed, 200);
        n = search_ok(idx, v + (size_t)i * RDIM, 1, ids, sims);
        assert_int_equal(n, 1);
        if (!removed[i]) {
            assert_int_equal(ids[0], i);
        }
    }
    /* A removed id may come back, with a new vector. */
    add_ok(idx, 0, v + 1 * RDIM);
    n = search_ok(idx, v + 1 * RDIM, 2, ids, sims);
    assert_int_equal(n, 2);
    assert_true((ids[0] == 0 && ids[1] == 1) || (ids[0] == 1 && ids[1] == 0));
    free(v);
    cs_index_free(idx);
}

/* ---- approximate index */

static void test_approx_remove_and_rebuild(void **state)
{
    cs_index_t *idx = make_index(RDIM, 50);
    char removed[400];
    float *v;
    int64_t ids[8];
    float sims[8];
    int i, n;

    (void)state;
    rng_seed(2);
    v = add_random(idx, 400, 0);
    rebuild_ok(idx);
    assert_int_equal(cs_index_is_approx(idx), 1);
    assert_int_equal(cs_index_live(idx), 400);
    assert_int_equal(cs_index_tombstones(idx), 0);

    memset(removed, 0, sizeof(removed));
    for (i = 0; i < 400; i += 2) {
        assert_int_equal(cs_index_remove(idx, i), CS_OK);
        removed[i] = 1;
    }
    assert_int_equal(cs_index_live(idx), 200);
    assert_int_equal(cs_index_tombstones(idx), 200);
    /* Querying with the removed vectors themselves: their stale copies
     * are the nearest in the graph, yet never come back. */
    for (i = 0; i < 400; i++) {
        assert_never_returns(idx, v + (size_t)i * RDIM, 8, removed, 400);
    }
    /* 200 of 400 dead is past CS_INDEX_TOMBSTONE_PCT: the rebuild cleans
     * them and every live vector still finds itself. */
    rebuild_ok(idx);
    assert_int_equal(cs_index_is_approx(idx), 1);
    assert_int_equal(cs_index_tombstones(idx), 0);
    assert_int_equal(cs_index_live(idx), 200);
    for (i = 1; i < 400; i += 2) {
        n = search_ok(idx, v + (size_t)i * RDIM, 1, ids, sims);
        assert_int_equal(n, 1);
        assert_int_equal(ids[0], i);
        assert_float_equal(sims[0], 1.0f, 1e-5);
    }
    /* Not needed again. */
    rebuild_ok(idx);
    assert_int_equal(cs_index_tombstones(idx), 0);
    free(v);
    cs_index_free(idx);
}

static void test_approx_readd(void **state)
{
    cs_index_t *idx = make_index(RDIM, 50);
    float *v;
    float nv[RDIM];
    int64_t ids[16];
    float sims[16];
    int i, j, n, seen;

    (void)state;
    rng_seed(3);
    v = add_random(idx, 100, 0);
    rebuild_ok(idx);
    assert_int_equal(cs_index_is_approx(idx), 1);

    /* Id 7 gets a new vector: FAISS holds both copies. */
    random_unit(nv, RDIM);
    assert_int_equal(cs_index_remove(idx, 7), CS_OK);
    add_ok(idx, 7, nv);
    assert_int_equal(cs_index_live(idx), 100);
    assert_int_equal(cs_index_tombstones(idx), 1);

    n = search_ok(idx, nv, 1, ids, sims);
    assert_int_equal(ids[0], 7);
    assert_float_equal(sims[0], 1.0f, 1e-5);

    /* With the old vector, 7 is found through its stale copy, but it is
     * reported with the similarity of its live vector, and once. */
    n = search_ok(idx, v + 7 * RDIM, 16, ids, sims);
    for (i = 0, seen = 0; i < n; i++) {
        if (ids[i] == 7) {
            seen++;
            assert_float_equal(sims[i], dot(v + 7 * RDIM, nv, RDIM), 1e-5);
        }
        for (j = 0; j < i; j++) {
            assert_true(ids[j] != ids[i]);
        }
        if (i > 0) {
            assert_true(sims[i - 1] >= sims[i]);
        }
    }
    assert_true(seen <= 1);
    free(v);
    cs_index_free(idx);
}

/* ---- the threshold */

static void test_threshold_switch(void **state)
{
    cs_index_t *idx = make_index(RDIM, 100);
    float c[4][RDIM];
    float *v = malloc(sizeof(float) * RDIM * 300);
    float q[RDIM];
    int64_t ids[4];
    float sims[4];
    size_t mem_exact;
    int i, j, n, hits;

    (void)state;
    rng_seed(4);
    /* Four clusters: realistic neighbourhoods for HNSW to find. */
    for (i = 0; i < 4; i++) {
        random_unit(c[i], RDIM);
    }
    for (i = 0; i < 300; i++) {
        for (j = 0; j < RDIM; j++) {
            v[i * RDIM + j] = c[i % 4][j] + 0.3f * rng_gauss();
        }
        normalise(v + i * RDIM, RDIM);
        add_ok(idx, i, v + i * RDIM);
        if (i == 99) {
            /* At the threshold: nothing to do. */
            rebuild_ok(idx);
            assert_int_equal(cs_index_is_approx(idx), 0);
        }
    }
    assert_int_equal(cs_index_is_approx(idx), 0);
    mem_exact = cs_index_memory(idx);
    rebuild_ok(idx);
    assert_int_equal(cs_index_is_approx(idx), 1);
    assert_int_equal(cs_index_live(idx), 300);
    /* The graph's links come on top. */
    assert_true(cs_index_memory(idx) > mem_exact);

    /* A slightly moved vector finds the one it came from. */
    for (i = 0, hits = 0; i < 300; i++) {
        for (j = 0; j < RDIM; j++) {
            q[j] = v[i * RDIM + j] + 0.02f * rng_gauss();
        }
        normalise(q, RDIM);
        n = search_ok(idx, q, 1, ids, sims);
        assert_int_equal(n, 1);
        hits += ids[0] == i;
    }
    assert_true(hits >= 295);

    /* Down to 60 (above half the threshold): stays approximate... */
    for (i = 60; i < 300; i++) {
        assert_int_equal(cs_index_remove(idx, i), CS_OK);
    }
    rebuild_ok(idx);
    assert_int_equal(cs_index_is_approx(idx), 1);
    assert_int_equal(cs_index_tombstones(idx), 0);
    /* ...down to 40: back to exact. */
    for (i = 40; i < 60; i++) {
        assert_int_equal(cs_index_remove(idx, i), CS_OK);
    }
    rebuild_ok(idx);
    assert_int_equal(cs_index_is_approx(idx), 0);
    assert_int_equal(cs_index_live(idx), 40);
    assert_int_equal(cs_index_tombstones(idx), 0);
    for (i = 0; i < 40; i++) {
        n = search_ok(idx, v + i * RDIM, 1, ids, sims);
        assert_int_equal(ids[0], i);
    }
    free(v);
    cs_index_free(idx);
}

/* ---- concurrency */

#define CONC_BASE 1500   /* added before the threads start */
#define CONC_ADDS 1500   /* added by the writer meanwhile */
#define CONC_THRESHOLD 1000

typedef struct conc {
    cs_index_t *idx;
    float *v;            /* CONC_BASE + CONC_ADDS vectors */
    volatile int stop;
    int failures;
    pthread_mutex_t mu;
} conc_t;

static void conc_fail(conc_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->failures++;
    pthread_mutex_unlock(&c->mu);
}

/* Searches with random stored vectors; odd ids below CONC_BASE are
 * removed by the writer, so they must not come back once gone, and the
 * answers must be well-formed throughout. */
static void *conc_searcher(void *arg)
{
    conc_t *c = arg;
    char err[ERRLEN];
    int64_t ids[10];
    float sims[10];
    int n, i, r;
    unsigned seed = (unsigned)(uintptr_t)&seed;

    while (!c->stop) {
        r = rand_r(&seed) % CONC_BASE;
        if (cs_index_search(c->idx, c->v + (size_t)r * RDIM, 10, ids, sims,
                            &n, err, sizeof(err)) != CS_OK || n < 1) {
            conc_fail(c);
            continue;
        }
        for (i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= CONC_BASE + CONC_ADDS
                || (i > 0 && sims[i - 1] < sims[i])) {
                conc_fail(c);
            }
        }
    }
    return NULL;
}

static void *conc_rebuilder(void *arg)
{
    conc_t *c = arg;
    char err[ERRLEN];

    while (!c->stop) {
        if (cs_index_rebuild_if_needed(c->idx, err, sizeof(err)) != CS_OK) {
            conc_fail(c);
        }
        usleep(1000);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    conc_t c;
    pthread_t s1, s2, rb;
    char err[ERRLEN];
    int64_t ids[1];
    float sims[1];
    int i, n;

    (void)state;
    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    rng_seed(5);
    c.idx = make_index(RDIM, CONC_THRESHOLD);
    c.v = malloc(sizeof(float) * RDIM * (CONC_BASE + CONC_ADDS));
    for (i = 0; i < CONC_BASE + CONC_ADDS; i++) {
        random_unit(c.v + (size_t)i * RDIM, RDIM);
    }
    for (i = 0; i < CONC_BASE; i++) {
        add_ok(c.idx, i, c.v + (size_t)i * RDIM);
    }
    /* Flat with 1500 > threshold: the rebuilder switches to HNSW while
     * the writer adds and removes, then cleans tombstones. */
    pthread_create(&s1, NULL, conc_searcher, &c);
    pthread_create(&s2, NULL, conc_searcher, &c);
    pthread_create(&rb, NULL, conc_rebuilder, &c);
    for (i = 0; i < CONC_ADDS; i++) {
        if (cs_index_add(c.idx, CONC_BASE + i,
                         c.v + (size_t)(CONC_BASE + i) * RDIM, err,
                         sizeof(err)) != CS_OK) {
            conc_fail(&c);
        }
        if (i % 2 == 1 && i < CONC_BASE
            && cs_index_remove(c.idx, i) != CS_OK) {
            conc_fail(&c);
        }
    }
    c.stop = 1;
    pthread_join(s1, NULL);
    pthread_join(s2, NULL);
    pthread_join(rb, NULL);
    assert_int_equal(c.failures, 0);

    rebuild_ok(c.idx);
    assert_int_equal(cs_index_is_approx(c.idx), 1);
    assert_int_equal(cs_index_live(c.idx), CONC_BASE + CONC_ADDS - 750);
    for (i = 0; i < CONC_BASE + CONC_ADDS; i++) {
        n = search_ok(c.idx, c.v + (size_t)i * RDIM, 1, ids, sims);
        assert_int_equal(n, 1);
        if (i < CONC_BASE && i % 2 == 1) {
            assert_true(ids[0] != i);
        }
        else {
            assert_int_equal(ids[0], i);
        }
    }
    free(c.v);
    cs_index_free(c.idx);
    pthread_mutex_destroy(&c.mu);
}

/* A rebuild to HNSW finishes while adds keep coming: adds to the old
 * exact index cost microseconds and HNSW inserts about a millisecond, so
 * without back-pressure the builder would chase the adds for as long as
 * they last. The adder stops by itself after a minute (the test then
 * fails instead of hanging). */
typedef struct chase {
    cs_index_t *idx;
    atomic_int stop;
    atomic_int adds;
    atomic_int failed;
    atomic_int finished;    /* the adder ended (stopped or timed out) */
} chase_t;

static void *chase_adder(void *arg)
{
    chase_t *c = arg;
    float v[RDIM];
    char err[ERRLEN];
    time_t t0 = time(NULL);
    int64_t id = 1000000;

    while (!atomic_load(&c->stop) && time(NULL) - t0 < 60) {
        random_unit(v, RDIM);
        if (cs_index_add(c->idx, id++, v, err, sizeof(err)) != CS_OK) {
            atomic_store(&c->failed, 1);
        }
        atomic_fetch_add(&c->adds, 1);
    }
    atomic_store(&c->finished, 1);
    return NULL;
}

static void test_rebuild_outpaced_by_adds(void **state)
{
    chase_t c;
    pthread_t th;
    float *v;
    int adds_at_end, still_adding;

    (void)state;
    memset(&c, 0, sizeof(c));
    rng_seed(21);
    c.idx = make_index(RDIM, 100);
    v = add_random(c.idx, 6000, 0);
    pthread_create(&th, NULL, chase_adder, &c);
    rebuild_ok(c.idx);                  /* returns although adds go on */
    still_adding = !atomic_load(&c.finished);
    adds_at_end = atomic_load(&c.adds);
    assert_true(cs_index_is_approx(c.idx));
    /* adds were taken during the rebuild, and go on after it */
    while (atomic_load(&c.adds) < adds_at_end + 10) {
        usleep(1000);
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    assert_true(still_adding);
    assert_false(atomic_load(&c.failed));
    assert_int_equal(cs_index_live(c.idx), 6000 + (size_t)atomic_load(&c.adds));
    free(v);
    cs_index_free(c.idx);
}

/* ---- snapshots */

static void snap_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "/tmp/test_index.%ld.%s", (long)getpid(), name);
}

static cs_index_t *load_ok(const char *path, int dim)
{
    cs_index_conf_t conf;
    cs_index_t *idx = NULL;
    char err[ERRLEN];

    memset(&conf, 0, sizeof(conf));
    conf.dim = dim;
    conf.approx_threshold = 50;
    conf.hnsw_m = 16;
    if (cs_index_load(&idx, &conf, path, err, sizeof(err)) != CS_OK) {
        fail_msg("load: %s", err);
    }
    return idx;
}

static void same_answers(cs_index_t *a, cs_index_t *b, const float *v, int nq)
{
    int64_t ia[5], ib[5];
    float sa[5], sb[5];
    int i, j, na, nb;

    for (i = 0; i < nq; i++) {
        na = search_ok(a, v + (size_t)i * RDIM, 5, ia, sa);
        nb = search_ok(b, v + (size_t)i * RDIM, 5, ib, sb);
        assert_int_equal(na, nb);
        for (j = 0; j < na; j++) {
            assert_int_equal(ia[j], ib[j]);
            assert_float_equal(sa[j], sb[j], 1e-6);
        }
    }
}

static void test_save_load(void **state)
{
    cs_index_t *idx, *back;
    char path[128];
    char err[ERRLEN];
    float *v;
    int i, approx;

    (void)state;
    snap_path(path, sizeof(path), "snap");
    for (approx = 0; approx <= 1; approx++) {
        rng_seed(6 + (uint64_t)approx);
        idx = make_index(RDIM, 50);
        v = add_random(idx, approx ? 300 : 40, 1000);
        if (approx) {
            rebuild_ok(idx);
            for (i = 0; i < 30; i++) {
                assert_int_equal(cs_index_remove(idx, 1000 + i * 3), CS_OK);
            }
        }
        assert_int_equal(cs_index_is_approx(idx), approx);
        if (cs_index_save(idx, path, err, sizeof(err)) != CS_OK) {
            fail_msg("save: %s", err);
        }
        back = load_ok(path, RDIM);
        assert_int_equal(cs_index_is_approx(back), approx);
        assert_int_equal(cs_index_live(back), cs_index_live(idx));
        assert_int_equal(cs_index_tombstones(back), cs_index_tombstones(idx));
        same_answers(idx, back, v, approx ? 300 : 40);
        /* The loaded index is fully usable. */
        assert_int_equal(cs_index_remove(back, 1001), CS_OK);
        add_ok(back, 1001, v);
        cs_index_free(back);
        cs_index_free(idx);
        free(v);
    }
    unlink(path);
}

/* What the thread started by save_hook does and finds. */
typedef struct {
    cs_index_t *idx;
    const float *vnew;        /* added as 5000 during the save */
    int add_rc, dup_rc, rm_rc, rm_again_rc;
    int found_new, contains_new, contains_removed;
} during_save_t;

static during_save_t *during;

static void *during_save(void *arg)
{
    during_save_t *d = arg;
    char err[ERRLEN];
    int64_t ids[4];
    float sims[4];
    int n, i;

    d->add_rc = cs_index_add(d->idx, 5000, d->vnew, err, sizeof(err));
    d->dup_rc = cs_index_add(d->idx, 1001, d->vnew, err, sizeof(err));
    d->rm_rc = cs_index_remove(d->idx, 1002);
    d->rm_again_rc = cs_index_remove(d->idx, 1002);
    if (cs_index_search(d->idx, d->vnew, 4, ids, sims, &n, err,
                        sizeof(err)) == CS_OK) {
        for (i = 0; i < n; i++) {
            d->found_new |= ids[i] == 5000;
        }
    }
    d->contains_new = cs_index_contains(d->idx, 5000);
    d->contains_removed = cs_index_contains(d->idx, 1002);
    return NULL;
}

/* Runs during_save in another thread while the save holds its read lock:
 * before adds and removes were deferred, the add waited for the save's
 * lock, and the save for this hook: the join timed out. */
static void save_hook(cs_index_t *idx)
{
    struct timespec until;
    pthread_t t;

    (void)idx;
    assert_int_equal(pthread_create(&t, NULL, during_save, during), 0);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    if (pthread_timedjoin_np(t, NULL, &until) != 0) {
        fail_msg("an add during a snapshot save waited for the save");
    }
}

/* Adds and removes during a save neither wait nor hold up searches; they
 * apply, in order, when it is over, and the snapshot is the index as it
 * was when the save began. */
static void test_changes_during_save(void **state)
{
    during_save_t d;
    cs_index_t *idx, *back;
    char path[128], err[ERRLEN];
    uint64_t failed = 1;
    float vnew[RDIM];
    float *v;

    (void)state;
    snap_path(path, sizeof(path), "defer");
    rng_seed(21);
    idx = make_index(RDIM, 50);
    v = add_random(idx, 300, 1000);
    rebuild_ok(idx);
    assert_int_equal(cs_index_is_approx(idx), 1);
    random_unit(vnew, RDIM);
    memset(&d, 0, sizeof(d));
    d.idx = idx;
    d.vnew = vnew;
    during = &d;
    cs_index_save_hook = save_hook;
    if (cs_index_save(idx, path, err, sizeof(err)) != CS_OK) {
        fail_msg("save: %s", err);
    }
    cs_index_save_hook = NULL;

    assert_int_equal(d.add_rc, CS_OK);
    assert_int_equal(d.dup_rc, CS_ERR);      /* 1001 is there already */
    assert_int_equal(d.rm_rc, CS_OK);
    assert_int_equal(d.rm_again_rc, CS_ERR); /* removed by the first */
    assert_false(d.found_new);               /* not searchable yet */
    assert_true(d.contains_new);             /* but known */
    assert_false(d.contains_removed);
    assert_int_equal(cs_index_deferred(idx, &failed), 2);
    assert_int_equal(failed, 0);

    /* applied once the save was over */
    assert_int_equal(cs_index_live(idx), 300);
    assert_true(cs_index_contains(idx, 5000));
    assert_false(cs_index_contains(idx, 1002));
    {
        int64_t ids[4];
        float sims[4];
        int n = search_ok(idx, vnew, 4, ids, sims);

        assert_true(n > 0);
        assert_int_equal(ids[0], 5000);
        assert_float_equal(sims[0], 1.0, 1e-4);
    }
    /* the snapshot: as at the start of the save */
    back = load_ok(path, RDIM);
    assert_int_equal(cs_index_live(back), 300);
    assert_true(cs_index_contains(back, 1002));
    assert_false(cs_index_contains(back, 5000));
    cs_index_free(back);
    cs_index_free(idx);
    free(v);
    unlink(path);
}

/* ef_search 0: efSearch by size, 64 below large_ef_at vectors and 128
 * from there: when an add reaches it, after a rebuild and after a load. */
static void test_ef_by_size(void **state)
{
    cs_index_conf_t conf;
    cs_index_t *idx = NULL, *back;
    char err[ERRLEN], path[128];
    float *v, *w;

    (void)state;
    rng_seed(33);
    memset(&conf, 0, sizeof(conf));
    conf.dim = RDIM;
    conf.approx_threshold = 50;
    conf.hnsw_m = 16;
    conf.build_threads = 1;
    conf.large_ef_at = 120;
    assert_int_equal(cs_index_create(&idx, &conf, err, sizeof(err)), CS_OK);
    v = add_random(idx, 100, 0);
    assert_int_equal(cs_index_ef_search(idx), 0);       /* exact */
    rebuild_ok(idx);
    assert_int_equal(cs_index_is_approx(idx), 1);
    assert_int_equal(cs_index_ef_search(idx), CS_INDEX_DEFAULT_EF_SEARCH);
    w = add_random(idx, 19, 100);
    assert_int_equal(cs_index_ef_search(idx), CS_INDEX_DEFAULT_EF_SEARCH);
    free(w);
    w = add_random(idx, 1, 119);                         /* 120 live */
    assert_int_equal(cs_index_ef_search(idx), CS_INDEX_LARGE_EF_SEARCH);
    free(w);
    /* a snapshot of 120 loads with 128 */
    snap_path(path, sizeof(path), "ef");
    if (cs_index_save(idx, path, err, sizeof(err)) != CS_OK) {
        fail_msg("save: %s", err);
    }
    if (cs_index_load(&back, &conf, path, err, sizeof(err)) != CS_OK) {
        fail_msg("load: %s", err);
    }
    assert_int_equal(cs_index_ef_search(back), CS_INDEX_LARGE_EF_SEARCH);
    cs_index_free(back);
    unlink(path);
    cs_index_free(idx);
    free(v);

    /* built past the size at once: the rebuild's swap sets 128 */
    idx = NULL;
    assert_int_equal(cs_index_create(&idx, &conf, err, sizeof(err)), CS_OK);
    v = add_random(idx, 130, 0);
    rebuild_ok(idx);
    assert_int_equal(cs_index_ef_search(idx), CS_INDEX_LARGE_EF_SEARCH);
    cs_index_free(idx);
    free(v);

    /* a configured efSearch is kept whatever the size */
    conf.ef_search = 40;
    idx = NULL;
    assert_int_equal(cs_index_create(&idx, &conf, err, sizeof(err)), CS_OK);
    v = add_random(idx, 130, 0);
    rebuild_ok(idx);
    assert_int_equal(cs_index_ef_search(idx), 40);
    cs_index_free(idx);
    free(v);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_load_errors(void **state)
{
    cs_index_conf_t conf;
    cs_index_t *idx, *back = NULL;
    char path[128], bad[128];
    char err[ERRLEN];
    char *buf;
    long len;
    FILE *f;
    float *v;

    (void)state;
    memset(&conf, 0, sizeof(conf));
    conf.dim = RDIM;
    snap_path(path, sizeof(path), "good");
    snap_path(bad, sizeof(bad), "bad");

    assert_int_equal(cs_index_load(&back, &conf, "/nonexistent/x", err,
                                   sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "cannot open"));

    write_file(bad, "hello, world, not a snapshot at all", 35);
    assert_int_equal(cs_index_load(&back, &conf, bad, err, sizeof(err)),
                     CS_ERR);
    assert_non_null(strstr(err, "not an index snapshot"));

    rng_seed(8);
    idx = make_index(RDIM, 50);
    v = add_random(idx, 80, 0);
    rebuild_ok(idx);
    assert_int_equal(cs_index_save(idx, path, err, sizeof(err)), CS_OK);

    /* Another dimension. */
    conf.dim = RDIM * 2;
    assert_int_equal(cs_index_load(&back, &conf, path, err, sizeof(err)),
                     CS_ERR);
    assert_non_null(strstr(err, "dimension"));
    conf.dim = RDIM;

    /* Truncated anywhere: inside the FAISS part, inside our part, and
     * just the trailer missing. */
    f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    write_file(bad, buf, (size_t)len / 3);
    assert_int_equal(cs_index_load(&back, &conf, bad, err, sizeof(err)),
                     CS_ERR);
    write_file(bad, buf, (size_t)len - 100);
    assert_int_equal(cs_index_load(&back, &conf, bad, err, sizeof(err)),
                     CS_ERR);
    assert_non_null(strstr(err, "truncated"));
    write_file(bad, buf, (size_t)len - 8);
    assert_int_equal(cs_index_load(&back, &conf, bad, err, sizeof(err)),
                     CS_ERR);
    /* Trailing garbage. */
    f = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)len, f);
    fputc('x', f);
    fclose(f);
    assert_int_equal(cs_index_load(&back, &conf, bad, err, sizeof(err)),
                     CS_ERR);
    assert_null(back);

    /* Saving where no file can be made leaves nothing behind. */
    assert_int_equal(cs_index_save(idx, "/nonexistent/dir/snap", err,
                                   sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "cannot create"));

    free(buf);
    free(v);
    cs_index_free(idx);
    unlink(path);
    unlink(bad);
}

/* ---- errors */

static void test_errors(void **state)
{
    cs_index_conf_t conf;
    cs_index_t *idx = NULL;
    char err[ERRLEN];
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    int64_t ids[2];
    float sims[2];
    int n;

    (void)state;
    memset(&conf, 0, sizeof(conf));
    assert_int_equal(cs_index_create(&idx, &conf, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "dimension"));
    conf.dim = CS_INDEX_MAX_DIM + 1;
    assert_int_equal(cs_index_create(&idx, &conf, err, sizeof(err)), CS_ERR);
    assert_int_equal(cs_index_create(&idx, NULL, err, sizeof(err)), CS_ERR);
    conf.dim = 8;
    conf.hnsw_m = 1;
    assert_int_equal(cs_index_create(&idx, &conf, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "HNSW M"));
    conf.hnsw_m = 0;
    conf.ef_search = -3;
    assert_int_equal(cs_index_create(&idx, &conf, err, sizeof(err)), CS_ERR);
    /* A NULL err buffer is allowed. */
    assert_int_equal(cs_index_create(&idx, &conf, NULL, 0), CS_ERR);
    assert_null(idx);

    idx = make_index(8, 10);
    /* Empty index: nothing, no error. */
    assert_int_equal(search_ok(idx, v, 2, ids, sims), 0);
    assert_int_equal(cs_index_add(idx, -5, v, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, ">= 0"));
    assert_int_equal(cs_index_add(idx, 1, NULL, err, sizeof(err)), CS_ERR);
    add_ok(idx, 1, v);
    assert_int_equal(cs_index_add(idx, 1, v, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "already"));
    assert_int_equal(cs_index_live(idx), 1);
    assert_int_equal(cs_index_search(idx, v, 0, ids, sims, &n, err,
                                     sizeof(err)), CS_ERR);
    assert_int_equal(cs_index_search(idx, v, CS_INDEX_MAX_K + 1, ids, sims,
                                     &n, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "k must be"));
    cs_index_free(idx);
    cs_index_free(NULL);
}

/* The shim turns a C++ exception into a code and a message. */
static void test_faiss_errors(void **state)
{
    FaissIndex *fx = NULL;
    const char *msg;
    float v[4] = {1, 0, 0, 0};
    idx_t id = 1;
    int rc;

    (void)state;
    rc = faiss_index_factory(&fx, 4, "NoSuchIndex,Flat", METRIC_INNER_PRODUCT);
    assert_true(rc < 0);
    msg = faiss_get_last_error();
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);

    /* HNSW without an IDMap cannot take ids: an exception inside FAISS,
     * a code outside. */
    assert_int_equal(faiss_index_factory(&fx, 4, "HNSW8,Flat",
                                         METRIC_INNER_PRODUCT), 0);
    rc = faiss_Index_add_with_ids(fx, 1, v, &id);
    assert_true(rc < 0);
    assert_non_null(faiss_get_last_error());
    faiss_Index_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_known_vectors),
        cmocka_unit_test(test_exact_remove),
        cmocka_unit_test(test_approx_remove_and_rebuild),
        cmocka_unit_test(test_approx_readd),
        cmocka_unit_test(test_threshold_switch),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_rebuild_outpaced_by_adds),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_changes_during_save),
        cmocka_unit_test(test_ef_by_size),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_faiss_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
