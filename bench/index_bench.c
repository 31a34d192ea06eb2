/* Vector index benchmark: what cs_index (and the FAISS underneath it)
 * costs at a given size, to choose the index kind and its parameters.
 *
 * Data: ENTRIES unit vectors of DIM floats drawn around --clusters random
 * unit centres (Gaussian noise of norm --spread, then normalised: with
 * the defaults a point has cosine ~0.78 with its centre and ~0.6 with a
 * neighbour), standing in for embeddings whose real distribution we do
 * not know. Two query sets of QUERIES each:
 *   near   a stored vector moved by noise of norm 0.25 (cosine ~0.97):
 *          a would-be cache hit, a near-duplicate of a stored prompt;
 *   fresh  a new draw from the distribution: a would-be miss.
 * Ground truth (the exact best id per query) comes from a brute-force
 * scan in plain C over all threads; one thread's time per query for that
 * scan is reported too ("C scan"), as a yardstick for FAISS's flat.
 *
 * Modes:
 *   cs    (default) through cs_index: the exact index (adds, queries,
 *         memory, snapshot save/load), then the approximate one: adds to
 *         the exact index, cs_index_rebuild_if_needed to HNSW (the
 *         "rebuild from raw vectors" time), memory, queries at each
 *         --ef value (set by reloading the snapshot with that ef_search),
 *         single adds into HNSW, removals.
 *   raw   through the FAISS C API with --factory (e.g. "IDMap,HNSW32,Flat",
 *         "IDMap,IVF256,Flat"; IVF is trained on --train vectors first),
 *         built incrementally up to each --checkpoints size, measuring
 *         queries at each --ef (HNSW efSearch) or --nprobe (IVF) value at
 *         every checkpoint: one build gives the whole growth curve.
 * Every query is timed alone, single-threaded, as ark-cached's workers
 * do, --reps times: wall time of the first pass (what a client sees,
 * inflated when the host is busy) and, per query, the least thread CPU
 * time over the passes (the work itself). The load average is printed at
 * start and end: other processes on a shared host show up there.
 *
 * Usage: index_bench ENTRIES DIM QUERIES [options]   (--help lists them)
 */
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#pragma GCC diagnostic pop

#include "cs_faiss_shim.h"
#include "cs_index.h"

#define ERRLEN 512
/* Results asked of every search (the cache asks for a handful). */
#define BENCH_K 10
/* Most values in one --ef / --nprobe / --checkpoints list. */
#define MAX_LIST 16
/* Vectors per faiss_Index_add_with_ids call in raw mode. */
#define RAW_BATCH 65536
/* Worker threads for data generation and ground truth. */
#define MAX_THREADS 64
/* Norm of the noise that turns a stored vector into a "near" query. */
#define NEAR_NOISE 0.25

typedef struct opts {
    long n;
    int dim;
    int q;
    const char *mode;
    const char *factory;
    int clusters;
    double spread;
    int ef[MAX_LIST], nef;
    int nprobe[MAX_LIST], nnprobe;
    long cps[MAX_LIST];
    int ncps;
    long train;
    size_t threshold;
    int m, efc, build_threads;
    int exact_queries;
    int no_exact, no_approx;
    const char *snapshot;
    unsigned long long seed;
    int threads;
    int reps;
} opts_t;

/* ---- clocks, memory, host */

static double wall_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double thread_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double proc_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static void print_load(const char *when)
{
    char buf[128] = "?";
    FILE *f = fopen("/proc/loadavg", "r");

    if (f != NULL) {
        if (fgets(buf, sizeof(buf), f) == NULL) {
            snprintf(buf, sizeof(buf), "?\n");
        }
        fclose(f);
    }
    printf("# load average at %s: %s", when, buf);
}

/* ---- data */

typedef struct rng {
    unsigned long long s;
} rng_t;

static double rng_unit(rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (double)((r->s * 2685821657736338717ull) >> 11)
           / 9007199254740992.0;
}

/* Fills v[0..n) with standard normal draws (Box-Muller, both halves). */
static void rng_gauss(rng_t *r, float *v, int n)
{
    int i;

    for (i = 0; i < n; i += 2) {
        double u = rng_unit(r) + 1e-300;
        double w = rng_unit(r);
        double m = sqrt(-2 * log(u));

        v[i] = (float)(m * cos(6.283185307179586 * w));
        if (i + 1 < n) {
            v[i + 1] = (float)(m * sin(6.283185307179586 * w));
        }
    }
}

static void normalise(float *v, int d)
{
    double s = 0;
    int i;

    for (i = 0; i < d; i++) {
        s += (double)v[i] * v[i];
    }
    s = s > 0 ? 1 / sqrt(s) : 0;
    for (i = 0; i < d; i++) {
        v[i] = (float)(v[i] * s);
    }
}

/* Eight independent sums so the compiler can vectorise: what a C scan
 * of our own array would cost. */
static float dot(const float *a, const float *b, int d)
{
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0, j;

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

typedef struct gen_job {
    const opts_t *o;
    const float *centres;
    float *out;
    long from, to;
    unsigned long long seed;
    /* near queries: move stored vector src[i] (NULL: draw fresh) */
    const float *src;
    const long *src_idx;
    double noise;
} gen_job_t;

static void *gen_worker(void *arg)
{
    gen_job_t *j = arg;
    int d = j->o->dim;
    rng_t r = {j->seed * 0x9e3779b97f4a7c15ull + 12345};
    double sigma;
    const float *base;
    long i;
    int c, k;

    for (i = j->from; i < j->to; i++) {
        float *v = j->out + (size_t)i * d;

        if (j->src != NULL) {
            base = j->src + (size_t)j->src_idx[i] * d;
            sigma = j->noise / sqrt(d);
        }
        else {
            c = (int)(rng_unit(&r) * j->o->clusters);
            base = j->centres + (size_t)c * d;
            sigma = j->o->spread / sqrt(d);
        }
        rng_gauss(&r, v, d);
        for (k = 0; k < d; k++) {
            v[k] = base[k] + (float)sigma * v[k];
        }
        normalise(v, d);
    }
    return NULL;
}

/* n vectors (fresh draws, or src_idx-selected stored vectors moved by
 * noise), made by o->threads threads. */
static float *gen(const opts_t *o, const float *centres, long n,
                  unsigned long long seed, const float *src,
                  const long *src_idx, double noise)
{
    float *out = malloc(sizeof(float) * (size_t)n * o->dim);
    pthread_t th[MAX_THREADS];
    gen_job_t jobs[MAX_THREADS];
    int t;

    if (out == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (t = 0; t < o->threads; t++) {
        jobs[t].o = o;
        jobs[t].centres = centres;
        jobs[t].out = out;
        jobs[t].from = n * t / o->threads;
        jobs[t].to = n * (t + 1) / o->threads;
        jobs[t].seed = seed * 1000 + (unsigned long long)t;
        jobs[t].src = src;
        jobs[t].src_idx = src_idx;
        jobs[t].noise = noise;
        pthread_create(&th[t], NULL, gen_worker, &jobs[t]);
    }
    for (t = 0; t < o->threads; t++) {
        pthread_join(th[t], NULL);
    }
    return out;
}

/* ---- ground truth */

typedef struct gt_job {
    const float *x, *q;
    long n;
    int dim;
    int from, to;
    long *best;
} gt_job_t;

static void *gt_worker(void *arg)
{
    gt_job_t *j = arg;
    int i;
    long k, bk;
    float s, bs;

    for (i = j->from; i < j->to; i++) {
        const float *q = j->q + (size_t)i * j->dim;

        bs = -2;
        bk = -1;
        for (k = 0; k < j->n; k++) {
            s = dot(q, j->x + (size_t)k * j->dim, j->dim);
            if (s > bs) {
                bs = s;
                bk = k;
            }
        }
        j->best[i] = bk;
    }
    return NULL;
}

/* best[i] = exact top-1 (index into x[0..n)) of query i. */
static void ground_truth(const opts_t *o, const float *x, long n,
                         const float *q, int nq, long *best)
{
    pthread_t th[MAX_THREADS];
    gt_job_t jobs[MAX_THREADS];
    int t;

    for (t = 0; t < o->threads; t++) {
        jobs[t].x = x;
        jobs[t].q = q;
        jobs[t].n = n;
        jobs[t].dim = o->dim;
        jobs[t].from = nq * t / o->threads;
        jobs[t].to = nq * (t + 1) / o->threads;
        jobs[t].best = best;
        pthread_create(&th[t], NULL, gt_worker, &jobs[t]);
    }
    for (t = 0; t < o->threads; t++) {
        pthread_join(th[t], NULL);
    }
}

/* One thread's time per query for the brute-force C scan of n vectors. */
static double c_scan_ms(const opts_t *o, const float *x, long n,
                        const float *q, int nq)
{
    long best[8];
    gt_job_t j;
    double c0;

    if (nq > 8) {
        nq = 8;
    }
    j.x = x;
    j.q = q;
    j.n = n;
    j.dim = o->dim;
    j.from = 0;
    j.to = nq;
    j.best = best;
    c0 = thread_cpu_s();
    gt_worker(&j);
    return (thread_cpu_s() - c0) * 1e3 / nq;
}

/* ---- statistics */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    int i;

    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    i = (int)ceil(p / 100.0 * n) - 1;
    return v[i < 0 ? 0 : (i >= n ? n - 1 : i)];
}

/* One search of query q; *top1 receives the best id (or -1). */
typedef int (*search_fn_t)(void *ctx, const float *q, int64_t *top1);

typedef struct qres {
    double wall50, wall99, cpu50, cpu99;
    double recall;
} qres_t;

static void print_qres(const char *label, const char *set, const qres_t *r)
{
    printf("%-34s %-5s wall p50 %8.1f p99 %8.1f us | cpu p50 %7.1f p99 %7.1f"
           " us | recall@1 %.4f\n",
           label, set, r->wall50, r->wall99, r->cpu50, r->cpu99, r->recall);
}

/* Runs the nq queries reps times, each query timed alone. Wall times
 * are those of the first pass (what a client would have seen on this
 * host right now); CPU times are, per query, the least over the passes:
 * the work itself, with most of what other processes on a busy host
 * cost us (preemption, cold caches) filtered out. */
static void run_queries(const opts_t *o, search_fn_t fn, void *ctx,
                        const float *qs, int nq, const long *gt, qres_t *r)
{
    double *wall = malloc(sizeof(double) * (size_t)nq);
    double *cpu = malloc(sizeof(double) * (size_t)nq);
    double w0, c0, c;
    int64_t top1;
    int i, rep, hits = 0;

    for (rep = 0; rep < o->reps; rep++) {
        for (i = 0; i < nq; i++) {
            w0 = wall_s();
            c0 = thread_cpu_s();
            fn(ctx, qs + (size_t)i * o->dim, &top1);
            c = (thread_cpu_s() - c0) * 1e6;
            if (rep == 0) {
                wall[i] = (wall_s() - w0) * 1e6;
                cpu[i] = c;
                hits += top1 == gt[i];
            }
            else if (c < cpu[i]) {
                cpu[i] = c;
            }
        }
    }
    r->recall = (double)hits / nq;
    r->wall50 = pct(wall, nq, 50);
    r->wall99 = pct(wall, nq, 99);
    r->cpu50 = pct(cpu, nq, 50);
    r->cpu99 = pct(cpu, nq, 99);
    free(wall);
    free(cpu);
}

/* ---- raw FAISS mode */

static void faiss_die(const char *what, int rc)
{
    const char *m = faiss_get_last_error();

    fprintf(stderr, "%s: FAISS error %d: %s\n", what, rc, m ? m : "?");
    exit(1);
}

static int raw_search(void *ctx, const float *q, int64_t *top1)
{
    float dist[BENCH_K];
    idx_t lab[BENCH_K];
    int rc = faiss_Index_search(ctx, 1, q, BENCH_K, dist, lab);

    if (rc != 0) {
        faiss_die("search", rc);
    }
    *top1 = lab[0];
    return 0;
}

static void set_param(FaissIndex *fx, const char *name, double v)
{
    FaissParameterSpace *ps;
    int rc;

    if ((rc = faiss_ParameterSpace_new(&ps)) != 0) {
        faiss_die("ParameterSpace", rc);
    }
    rc = faiss_ParameterSpace_set_index_parameter(ps, fx, name, v);
    faiss_ParameterSpace_free(ps);
    if (rc != 0) {
        faiss_die(name, rc);
    }
}

static int run_raw(const opts_t *o, const float *x, const float *qn,
                   const float *qf)
{
    int is_ivf = strstr(o->factory, "IVF") != NULL;
    const int *vals = is_ivf ? o->nprobe : o->ef;
    int nvals = is_ivf ? o->nnprobe : o->nef;
    const char *pname = is_ivf ? "nprobe" : "efSearch";
    long *gtn = malloc(sizeof(long) * (size_t)o->q);
    long *gtf = malloc(sizeof(long) * (size_t)o->q);
    idx_t *ids = malloc(sizeof(idx_t) * RAW_BATCH);
    FaissIndex *fx;
    double build_wall = 0, build_cpu = 0, w0, c0, train = 0;
    long done = 0, rss0, b, e;
    char label[96];
    qres_t r;
    int c, i, rc;

    rss0 = rss_bytes();
    if ((rc = faiss_index_factory(&fx, o->dim, o->factory,
                                  METRIC_INNER_PRODUCT)) != 0) {
        faiss_die(o->factory, rc);
    }
    if (!is_ivf && o->efc > 0) {
        set_param(fx, "efConstruction", o->efc);
    }
    cs_faiss_set_threads(o->build_threads);
    if (is_ivf) {
        w0 = wall_s();
        rc = faiss_Index_train(fx, o->train < o->n ? o->train : o->n, x);
        if (rc != 0) {
            faiss_die("train", rc);
        }
        train = wall_s() - w0;
        printf("raw %s: trained on %ld vectors in %.1f s\n", o->factory,
               o->train < o->n ? o->train : o->n, train);
    }
    for (c = 0; c < o->ncps; c++) {
        cs_faiss_set_threads(o->build_threads);
        w0 = wall_s();
        c0 = proc_cpu_s();
        for (b = done; b < o->cps[c]; b = e) {
            e = b + RAW_BATCH < o->cps[c] ? b + RAW_BATCH : o->cps[c];
            for (i = 0; i < e - b; i++) {
                ids[i] = b + i;
            }
            rc = faiss_Index_add_with_ids(fx, e - b, x + (size_t)b * o->dim,
                                          ids);
            if (rc != 0) {
                faiss_die("add", rc);
            }
        }
        build_wall += wall_s() - w0;
        build_cpu += proc_cpu_s() - c0;
        printf("raw %s: %ld vectors, added in %.1f s wall, %.1f s cpu "
               "(%.0f/s; last %ld: %.0f/s wall), rss +%.0f B/vector\n",
               o->factory, o->cps[c], build_wall, build_cpu,
               o->cps[c] / build_wall, o->cps[c] - done,
               (o->cps[c] - done) / (wall_s() - w0),
               (double)(rss_bytes() - rss0) / o->cps[c]);
        done = o->cps[c];
        ground_truth(o, x, done, qn, o->q, gtn);
        ground_truth(o, x, done, qf, o->q, gtf);
        cs_faiss_set_threads(1);
        for (i = 0; i < nvals; i++) {
            set_param(fx, pname, vals[i]);
            snprintf(label, sizeof(label), "raw n=%ld %s=%d", done, pname,
                     vals[i]);
            run_queries(o, raw_search, fx, qn, o->q, gtn, &r);
            print_qres(label, "near", &r);
            run_queries(o, raw_search, fx, qf, o->q, gtf, &r);
            print_qres(label, "fresh", &r);
        }
        /* Does an OpenMP team help one query? */
        cs_faiss_set_threads(2);
        snprintf(label, sizeof(label), "raw n=%ld %s=%d omp=2", done, pname,
                 vals[nvals - 1]);
        run_queries(o, raw_search, fx, qf, o->q < 200 ? o->q : 200, gtf, &r);
        print_qres(label, "fresh", &r);
        cs_faiss_set_threads(1);
        printf("C scan of %ld vectors: %.2f ms per query (one thread)\n",
               done, c_scan_ms(o, x, done, qf, o->q));
        fflush(stdout);
    }
    faiss_Index_free(fx);
    free(ids);
    free(gtn);
    free(gtf);
    return 0;
}

/* ---- cs_index mode */

static void die(const char *what, const char *err)
{
    fprintf(stderr, "%s: %s\n", what, err);
    exit(1);
}

static int cs_search(void *ctx, const float *q, int64_t *top1)
{
    char err[ERRLEN];
    int64_t ids[BENCH_K];
    float sims[BENCH_K];
    int n;

    if (cs_index_search(ctx, q, BENCH_K, ids, sims, &n, err, sizeof(err))
        != CS_OK) {
        die("search", err);
    }
    *top1 = n > 0 ? ids[0] : -1;
    return 0;
}

static void cs_conf(const opts_t *o, cs_index_conf_t *c, size_t threshold,
                    int ef)
{
    memset(c, 0, sizeof(*c));
    c->dim = o->dim;
    c->approx_threshold = threshold;
    c->hnsw_m = o->m;
    c->ef_construction = o->efc;
    c->ef_search = ef;
    c->build_threads = o->build_threads;
}

/* Adds x[0..n) one by one; returns the wall seconds. */
static double cs_add_all(cs_index_t *idx, const opts_t *o, const float *x,
                         long from, long to, double *p50, double *p99)
{
    double *lat = malloc(sizeof(double) * (size_t)(to - from));
    char err[ERRLEN];
    double t0 = wall_s(), w0;
    long i;

    for (i = from; i < to; i++) {
        w0 = wall_s();
        if (cs_index_add(idx, i, x + (size_t)i * o->dim, err, sizeof(err))
            != CS_OK) {
            die("add", err);
        }
        lat[i - from] = (wall_s() - w0) * 1e6;
    }
    t0 = wall_s() - t0;
    *p50 = pct(lat, (int)(to - from), 50);
    *p99 = pct(lat, (int)(to - from), 99);
    free(lat);
    return t0;
}

static double file_mb(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (double)st.st_size / 1e6 : -1;
}

/* Saves idx, reloads it with ef_search = ef; prints the timings. */
static cs_index_t *cs_roundtrip(const opts_t *o, cs_index_t *idx,
                                size_t threshold, int ef, int save)
{
    cs_index_conf_t c;
    cs_index_t *back;
    char err[ERRLEN];
    double t0;

    if (save) {
        t0 = wall_s();
        if (cs_index_save(idx, o->snapshot, err, sizeof(err)) != CS_OK) {
            die("save", err);
        }
        printf("snapshot save: %.2f s, %.0f MB\n", wall_s() - t0,
               file_mb(o->snapshot));
    }
    cs_conf(o, &c, threshold, ef);
    t0 = wall_s();
    if (cs_index_load(&back, &c, o->snapshot, err, sizeof(err)) != CS_OK) {
        die("load", err);
    }
    printf("snapshot load (ef_search %d): %.2f s\n", ef, wall_s() - t0);
    return back;
}

static void cs_phase_exact(const opts_t *o, const float *x, const float *qn,
                           const float *qf, const long *gtn, const long *gtf)
{
    cs_index_conf_t c;
    cs_index_t *idx, *back;
    char err[ERRLEN];
    double t, p50, p99;
    long rss0;
    int nq = o->q < o->exact_queries ? o->q : o->exact_queries;
    qres_t r;

    rss0 = rss_bytes();
    cs_conf(o, &c, (size_t)o->n, 0);
    if (cs_index_create(&idx, &c, err, sizeof(err)) != CS_OK) {
        die("create", err);
    }
    t = cs_add_all(idx, o, x, 0, o->n, &p50, &p99);
    printf("exact: %ld adds in %.2f s (%.0f/s; p50 %.1f us, p99 %.1f us)\n",
           o->n, t, o->n / t, p50, p99);
    printf("exact: memory %.0f B/vector (rss delta), %.0f B/vector "
           "(cs_index_memory)\n",
           (double)(rss_bytes() - rss0) / o->n,
           (double)cs_index_memory(idx) / o->n);
    cs_faiss_set_threads(1);
    run_queries(o, cs_search, idx, qn, nq, gtn, &r);
    print_qres("cs exact", "near", &r);
    run_queries(o, cs_search, idx, qf, nq, gtf, &r);
    print_qres("cs exact", "fresh", &r);
    if (o->snapshot != NULL) {
        back = cs_roundtrip(o, idx, (size_t)o->n, 0, 1);
        cs_index_free(back);
    }
    cs_index_free(idx);
}

static void cs_phase_approx(const opts_t *o, const float *x, const float *qn,
                            const float *qf, const long *gtn,
                            const long *gtf)
{
    cs_index_conf_t c;
    cs_index_t *idx, *back;
    char err[ERRLEN];
    double t, c0, p50, p99;
    long rss0, extra, i;
    char label[64];
    qres_t r;
    int e;

    /* Keep 1% (at most 1000) of the vectors back for timing single adds
     * into the built graph. */
    extra = o->n / 100 < 1000 ? o->n / 100 : 1000;
    rss0 = rss_bytes();
    cs_conf(o, &c, o->threshold, o->ef[0]);
    if (cs_index_create(&idx, &c, err, sizeof(err)) != CS_OK) {
        die("create", err);
    }
    t = cs_add_all(idx, o, x, 0, o->n - extra, &p50, &p99);
    printf("approx: %ld adds to the exact index in %.2f s\n", o->n - extra,
           t);
    t = wall_s();
    c0 = proc_cpu_s();
    if (cs_index_rebuild_if_needed(idx, err, sizeof(err)) != CS_OK) {
        die("rebuild", err);
    }
    printf("approx: rebuild to HNSW%d (efConstruction %d, %d threads) of "
           "%ld vectors: %.1f s wall, %.1f s cpu (%.0f vectors/s)\n",
           o->m, o->efc, o->build_threads, o->n - extra, wall_s() - t,
           proc_cpu_s() - c0, (o->n - extra) / (wall_s() - t));
    if (!cs_index_is_approx(idx)) {
        die("rebuild", "did not switch to HNSW: is ENTRIES > --threshold?");
    }
    t = cs_add_all(idx, o, x, o->n - extra, o->n, &p50, &p99);
    printf("approx: %ld single adds into HNSW: %.0f/s, p50 %.0f us, "
           "p99 %.0f us (write lock held)\n",
           extra, extra / t, p50, p99);
    printf("approx: memory %.0f B/vector (rss delta), %.0f B/vector "
           "(cs_index_memory)\n",
           (double)(rss_bytes() - rss0) / o->n,
           (double)cs_index_memory(idx) / o->n);
    cs_faiss_set_threads(1);
    run_queries(o, cs_search, idx, qn, o->q, gtn, &r);
    print_qres("cs hnsw (as built)", "near", &r);

    if (o->snapshot != NULL) {
        for (e = 0; e < o->nef; e++) {
            back = cs_roundtrip(o, idx, o->threshold, o->ef[e], e == 0);
            snprintf(label, sizeof(label), "cs hnsw ef_search=%d", o->ef[e]);
            run_queries(o, cs_search, back, qn, o->q, gtn, &r);
            print_qres(label, "near", &r);
            run_queries(o, cs_search, back, qf, o->q, gtf, &r);
            print_qres(label, "fresh", &r);
            cs_index_free(back);
        }
    }

    /* Tombstones: remove 10%, search, then let a rebuild decide. */
    t = wall_s();
    for (i = 0; i < o->n; i += 10) {
        cs_index_remove(idx, i);
    }
    printf("approx: %ld removals in %.3f s; tombstones %zu\n", o->n / 10,
           wall_s() - t, cs_index_tombstones(idx));
    run_queries(o, cs_search, idx, qf, o->q, gtf, &r);
    r.recall = -1;   /* the ground truth includes removed ids */
    snprintf(label, sizeof(label), "cs hnsw ef_search=%d 10%% dead",
             o->ef[0]);
    print_qres(label, "fresh", &r);
    cs_index_free(idx);
}

static int run_cs(const opts_t *o, const float *x, const float *qn,
                  const float *qf)
{
    long *gtn = malloc(sizeof(long) * (size_t)o->q);
    long *gtf = malloc(sizeof(long) * (size_t)o->q);
    double t = wall_s();

    ground_truth(o, x, o->n, qn, o->q, gtn);
    ground_truth(o, x, o->n, qf, o->q, gtf);
    printf("ground truth: %.1f s; C scan of %ld vectors: %.2f ms per query "
           "(one thread)\n",
           wall_s() - t, o->n, c_scan_ms(o, x, o->n, qf, o->q));
    if (!o->no_exact) {
        cs_phase_exact(o, x, qn, qf, gtn, gtf);
    }
    if (!o->no_approx) {
        cs_phase_approx(o, x, qn, qf, gtn, gtf);
    }
    free(gtn);
    free(gtf);
    return 0;
}

/* ---- options */

static int parse_list(const char *s, long *out, int max)
{
    int n = 0;
    char *end;

    while (*s != '\0' && n < max) {
        out[n++] = strtol(s, &end, 10);
        if (end == s) {
            return -1;
        }
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr,
        "usage: index_bench ENTRIES DIM QUERIES [options]\n"
        "  --mode cs|raw           cs_index (default) or FAISS C API\n"
        "  --factory STR           raw: index_factory string "
        "(default IDMap,HNSW32,Flat)\n"
        "  --checkpoints N,N,...   raw: measure at these sizes "
        "(default ENTRIES)\n"
        "  --train N               raw IVF: training vectors (default 50000)\n"
        "  --ef N,N,...            efSearch values (default 16,32,64,128)\n"
        "  --nprobe N,N,...        raw IVF: nprobe values (default 4,8,16,32)\n"
        "  --threshold N           cs: approx_threshold (default %d)\n"
        "  --m N --efc N           HNSW M, efConstruction (default %d, %d)\n"
        "  --build-threads N       OpenMP threads for builds (0 = all)\n"
        "  --exact-queries N       cs: queries against the exact index "
        "(default 200)\n"
        "  --no-exact --no-approx  cs: skip a phase\n"
        "  --snapshot PATH         cs: snapshot file (save/load timings)\n"
        "  --clusters N --spread F data shape (default 1000, 0.8)\n"
        "  --reps N                passes over the queries (default 3)\n"
        "  --seed N --threads N\n",
        CS_INDEX_DEFAULT_APPROX_THRESHOLD, CS_INDEX_DEFAULT_HNSW_M,
        CS_INDEX_DEFAULT_EF_CONSTRUCTION);
    exit(2);
}

static void parse(int argc, char **argv, opts_t *o)
{
    static const struct option lo[] = {
        {"mode", 1, 0, 'M'},       {"factory", 1, 0, 'F'},
        {"checkpoints", 1, 0, 'C'}, {"train", 1, 0, 'T'},
        {"ef", 1, 0, 'e'},         {"nprobe", 1, 0, 'p'},
        {"threshold", 1, 0, 't'},  {"m", 1, 0, 'm'},
        {"efc", 1, 0, 'c'},        {"build-threads", 1, 0, 'b'},
        {"exact-queries", 1, 0, 'x'}, {"no-exact", 0, 0, 'X'},
        {"no-approx", 0, 0, 'A'},  {"snapshot", 1, 0, 's'},
        {"clusters", 1, 0, 'k'},   {"spread", 1, 0, 'S'},
        {"seed", 1, 0, 'r'},       {"threads", 1, 0, 'j'},
        {"reps", 1, 0, 'R'},       {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    long tmp[MAX_LIST];
    int ch, i;

    memset(o, 0, sizeof(*o));
    o->mode = "cs";
    o->factory = "IDMap,HNSW32,Flat";
    o->clusters = 1000;
    o->spread = 0.8;
    o->train = 50000;
    o->threshold = CS_INDEX_DEFAULT_APPROX_THRESHOLD;
    o->m = CS_INDEX_DEFAULT_HNSW_M;
    o->efc = CS_INDEX_DEFAULT_EF_CONSTRUCTION;
    o->exact_queries = 200;
    o->seed = 1;
    o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    o->reps = 3;
    o->nef = 4;
    o->ef[0] = 16, o->ef[1] = 32, o->ef[2] = 64, o->ef[3] = 128;
    o->nnprobe = 4;
    o->nprobe[0] = 4, o->nprobe[1] = 8, o->nprobe[2] = 16, o->nprobe[3] = 32;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'M': o->mode = optarg; break;
        case 'F': o->factory = optarg; break;
        case 'C':
            o->ncps = parse_list(optarg, o->cps, MAX_LIST);
            break;
        case 'T': o->train = atol(optarg); break;
        case 'e':
        case 'p': {
            int *dst = ch == 'e' ? o->ef : o->nprobe;
            int n = parse_list(optarg, tmp, MAX_LIST);

            if (n <= 0) {
                usage();
            }
            for (i = 0; i < n; i++) {
                dst[i] = (int)tmp[i];
            }
            *(ch == 'e' ? &o->nef : &o->nnprobe) = n;
            break;
        }
        case 't': o->threshold = (size_t)atol(optarg); break;
        case 'm': o->m = atoi(optarg); break;
        case 'c': o->efc = atoi(optarg); break;
        case 'b': o->build_threads = atoi(optarg); break;
        case 'x': o->exact_queries = atoi(optarg); break;
        case 'X': o->no_exact = 1; break;
        case 'A': o->no_approx = 1; break;
        case 's': o->snapshot = optarg; break;
        case 'k': o->clusters = atoi(optarg); break;
        case 'S': o->spread = atof(optarg); break;
        case 'r': o->seed = strtoull(optarg, NULL, 10); break;
        case 'j': o->threads = atoi(optarg); break;
        case 'R': o->reps = atoi(optarg); break;
        default: usage();
        }
    }
    if (argc - optind != 3) {
        usage();
    }
    o->n = atol(argv[optind]);
    o->dim = atoi(argv[optind + 1]);
    o->q = atoi(argv[optind + 2]);
    if (o->threads < 1 || o->threads > MAX_THREADS) {
        o->threads = 1;
    }
    if (o->n < 100 || o->reps < 1 || o->dim < 1 || o->dim > CS_INDEX_MAX_DIM
        || o->q < 1 || o->clusters < 1 || o->ncps < 0) {
        usage();
    }
    if (o->ncps == 0) {
        o->ncps = 1;
        o->cps[0] = o->n;
    }
    for (i = 0; i < o->ncps; i++) {
        if (o->cps[i] < 1 || o->cps[i] > o->n
            || (i > 0 && o->cps[i] <= o->cps[i - 1])) {
            usage();
        }
    }
}

int main(int argc, char **argv)
{
    opts_t o;
    float *centres, *x, *qn, *qf;
    long *src;
    long pool;
    double t;
    rng_t r;
    int i, rc;

    parse(argc, argv, &o);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("# index_bench %ld entries, dim %d, %d queries per set, mode %s, "
           "%d clusters, spread %.2f, seed %llu\n",
           o.n, o.dim, o.q, o.mode, o.clusters, o.spread, o.seed);
    print_load("start");

    t = wall_s();
    r.s = o.seed * 7919 + 17;
    centres = malloc(sizeof(float) * (size_t)o.clusters * o.dim);
    for (i = 0; i < o.clusters; i++) {
        rng_gauss(&r, centres + (size_t)i * o.dim, o.dim);
        normalise(centres + (size_t)i * o.dim, o.dim);
    }
    x = gen(&o, centres, o.n, o.seed, NULL, NULL, 0);
    /* Near queries come from the smallest checkpoint, so they are near
     * stored vectors at every size measured. */
    pool = o.cps[0];
    src = malloc(sizeof(long) * (size_t)o.q);
    for (i = 0; i < o.q; i++) {
        src[i] = (long)(rng_unit(&r) * pool);
    }
    qn = gen(&o, centres, o.q, o.seed + 1, x, src, NEAR_NOISE);
    qf = gen(&o, centres, o.q, o.seed + 2, NULL, NULL, 0);
    printf("data: %.1f s\n", wall_s() - t);

    if (strcmp(o.mode, "raw") == 0) {
        rc = run_raw(&o, x, qn, qf);
    }
    else {
        rc = run_cs(&o, x, qn, qf);
    }
    print_load("end");
    free(centres);
    free(x);
    free(qn);
    free(qf);
    free(src);
    return rc;
}
