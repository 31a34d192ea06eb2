/* bench/cache_load: load and measure one ark-cached namespace over RESP.
 *
 *   cache_load [-h HOST] [-p PORT] [-n NS] fill N [FROM]
 *       stores entries FROM..FROM+N-1 (text_of(i), a ~1 KB answer, TTL
 *       --ttl) with ARK.STORE, --pipeline commands in flight on each of
 *       --conns connections; prints entries/s.
 *   cache_load ... lookup KIND COUNT STORED
 *       COUNT lookups, one at a time, of KIND near (a rephrased stored
 *       question: should hit) or fresh (a new question: should miss), over
 *       entries 0..STORED-1; prints hits and latency percentiles (us).
 *   cache_load ... waithit I TIMEOUT_S
 *       repeats the near lookup of entry I until it hits; prints seconds.
 *   cache_load recall SNAPSHOT COUNT STORED [DIM]
 *       loads an index snapshot written by ark-cached, embeds COUNT near
 *       and COUNT fresh queries with the builtin embedder, and compares
 *       the index's best answer with a brute-force scan of its vectors:
 *       recall@1 of the approximate index against exact search.
 *
 * Texts: text_of(i) is unique per i (its number and a word mix drawn from
 * i), about 80-120 bytes, shaped like a developer question. near(i) adds a
 * lead-in and a closing word (same numbers and names, so verification
 * accepts it); fresh(j) is text_of() of an index far beyond any stored.
 * Options: --pipeline N (64), --conns N (2), --ttl S (86400),
 * --payload BYTES (1024), --seconds S (fill: stop sending after S
 * seconds; "fill: N entries" then counts a prefix FROM..FROM+N-1 that is
 * entirely stored).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cs_common.h"
#include "cs_embed.h"
#include "cs_index.h"

#define FRESH_BASE 50000000L

static const char *host = "127.0.0.1";
static int port = 7480;
static const char *ns = "bench-ns";
static int pipeline = 64;
static int conns = 2;
static long ttl = 86400;
static size_t payload_bytes = 1024;

static const char *const verbs[] = {
    "configure", "debug", "deploy", "monitor", "migrate", "secure",
    "profile", "cache", "retry", "rotate", "serialize", "validate",
    "compress", "index", "shard", "throttle", "schedule", "encrypt",
    "mock", "benchmark", "upgrade", "rollback", "parse", "log"
};
static const char *const nouns[] = {
    "connection pool", "message queue", "service mesh", "load balancer",
    "worker thread", "database replica", "config file", "build pipeline",
    "session token", "search index", "object store", "rate limiter",
    "event stream", "cron job", "health check", "feature flag",
    "schema migration", "container image", "TLS certificate",
    "DNS record", "API gateway", "thread pool", "write-ahead log",
    "bloom filter", "hash table", "routing table", "backup job",
    "metrics exporter", "retry policy", "circuit breaker"
};
static const char *const techs[] = {
    "Kubernetes", "PostgreSQL", "Redis", "Kafka", "nginx", "Terraform",
    "Django", "Spring", "React", "Rust", "Go", "Python", "Java", "Node",
    "Elasticsearch", "MongoDB", "RabbitMQ", "Ansible", "Docker", "Envoy"
};
static const char *const adjs[] = {
    "slow", "flaky", "large", "stale", "remote", "shared", "encrypted",
    "idle", "busy", "legacy", "nested", "partitioned", "cold", "hot"
};
static const char *const tails[] = {
    "under heavy load", "after a restart", "in production",
    "on a small VM", "behind a proxy", "in a unit test",
    "during the nightly batch", "across two regions", "without downtime",
    "with minimal memory"
};

#define PICK(a, x) (a[(x) % (sizeof(a) / sizeof(a[0]))])

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The stored question of entry i. */
static int text_of(long i, char *out, size_t len)
{
    uint64_t h = mix((uint64_t)i);
    unsigned a = (unsigned)(h & 0xffff), b = (unsigned)((h >> 16) & 0xffff);
    unsigned c = (unsigned)((h >> 32) & 0xffff), d = (unsigned)(h >> 48);

    switch (h % 5) {
    case 0:
        return snprintf(out, len, "How do I %s the %s %s in %s when job %ld "
                        "fails %s?", PICK(verbs, a), PICK(adjs, b),
                        PICK(nouns, c), PICK(techs, d), i, PICK(tails, a + d));
    case 1:
        return snprintf(out, len, "What is the best way to %s a %s %s for %s "
                        "ticket %ld %s?", PICK(verbs, a), PICK(adjs, b),
                        PICK(nouns, c), PICK(techs, d), i, PICK(tails, b + c));
    case 2:
        return snprintf(out, len, "Why does my %s %s refuse to %s after %ld "
                        "requests %s?", PICK(techs, d), PICK(nouns, c),
                        PICK(verbs, a), i, PICK(tails, a + c));
    case 3:
        return snprintf(out, len, "Write a %s function that can %s the %s %s "
                        "with limit %ld %s", PICK(techs, d), PICK(verbs, a),
                        PICK(adjs, b), PICK(nouns, c), i, PICK(tails, b + d));
    default:
        return snprintf(out, len, "Explain how to %s %s %s in %s for order "
                        "%ld %s.", PICK(verbs, a), PICK(adjs, b),
                        PICK(nouns, c), PICK(techs, d), i, PICK(tails, c + d));
    }
}

/* A rephrasing of text_of(i) that should be served from it. */
static int near_of(long i, char *out, size_t len)
{
    char t[512];

    text_of(i, t, sizeof(t));
    return snprintf(out, len, "Quick question: %s Thanks", t);
}

static void payload_of(long i, char *out, size_t len)
{
    static const char words[] = "The answer depends on the workload; start "
        "with the defaults, measure, then change one setting at a time. ";
    size_t n = (size_t)snprintf(out, len, "{\"answer %ld\":\"", i);

    while (n + 3 < len) {
        size_t k = sizeof(words) - 1;

        if (k > len - 3 - n) {
            k = len - 3 - n;
        }
        memcpy(out + n, words, k);
        n += k;
    }
    memcpy(out + n, "\"}", 3);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static redisContext *connect_or_die(void)
{
    redisContext *rc = redisConnect(host, port);

    if (!rc || rc->err) {
        fprintf(stderr, "cache_load: cannot connect to %s:%d: %s\n", host,
                port, rc ? rc->errstr : "out of memory");
        exit(1);
    }
    return rc;
}

/* ---- fill */

typedef struct fill_job {
    long from, to;          /* from, from + step, ... below to */
    long step;
    long next;              /* first index not sent */
    long errors;
} fill_job_t;

static double fill_deadline;    /* 0: none; else stop sending then */

static void *fill_main(void *arg)
{
    fill_job_t *j = arg;
    redisContext *rc = connect_or_die();
    char *payload = malloc(payload_bytes + 1);
    char text[512], ttls[32];
    long i = j->from, pending = 0;
    long sent = 0;
    redisReply *r;

    snprintf(ttls, sizeof(ttls), "%ld", ttl);
    while (i < j->to || pending > 0) {
        if (fill_deadline > 0 && (sent & 255) == 0 && i < j->to
            && now_s() > fill_deadline) {
            j->to = i;          /* stop here: everything below is sent */
        }
        while (i < j->to && pending < pipeline) {
            const char *argv[6];
            size_t lens[6];

            text_of(i, text, sizeof(text));
            payload_of(i, payload, payload_bytes + 1);
            argv[0] = "ARK.STORE";
            argv[1] = ns;
            argv[2] = text;
            argv[3] = payload;
            argv[4] = "TTL";
            argv[5] = ttls;
            for (int k = 0; k < 6; k++) {
                lens[k] = strlen(argv[k]);
            }
            redisAppendCommandArgv(rc, 6, argv, lens);
            pending++;
            sent++;
            i += j->step;
        }
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            fprintf(stderr, "cache_load: %s\n", rc->errstr);
            exit(1);
        }
        if (r->type == REDIS_REPLY_ERROR) {
            if (j->errors++ < 3) {
                fprintf(stderr, "cache_load: store error: %s\n", r->str);
            }
        }
        freeReplyObject(r);
        pending--;
    }
    j->next = i;
    free(payload);
    redisFree(rc);
    return NULL;
}

static int do_fill(long n, long from)
{
    pthread_t th[64];
    fill_job_t jobs[64];
    double t0 = now_s(), dt;
    long errors = 0, done = -1;
    int k;

    if (conns < 1 || conns > 64) {
        conns = 2;
    }
    for (k = 0; k < conns; k++) {
        /* interleaved, so a fill cut short by --seconds leaves every
         * index below the smallest `next` stored */
        jobs[k].from = from + k;
        jobs[k].to = from + n;
        jobs[k].step = conns;
        jobs[k].next = jobs[k].from;
        jobs[k].errors = 0;
        pthread_create(&th[k], NULL, fill_main, &jobs[k]);
    }
    for (k = 0; k < conns; k++) {
        pthread_join(th[k], NULL);
        errors += jobs[k].errors;
        if (done < 0 || jobs[k].next - k < done) {
            done = jobs[k].next - k;      /* from + stored prefix */
        }
    }
    n = done - from < n ? done - from : n;
    dt = now_s() - t0;
    {
        char t[512];
        double tl = 0;
        long i;

        for (i = from; i < from + n; i++) {
            tl += text_of(i, t, sizeof(t));
        }
        printf("fill: %ld entries in %.1f s, %.0f entries/s, %ld errors, "
               "avg text %.0f bytes, payload %zu bytes\n", n, dt,
               (double)n / dt, errors, n ? tl / (double)n : 0.0,
               payload_bytes);
    }
    return errors ? 1 : 0;
}

/* ---- lookups */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double pct(const double *v, long n, double p)
{
    long i = (long)ceil(p / 100.0 * (double)n) - 1;

    if (i < 0) {
        i = 0;
    }
    if (i >= n) {
        i = n - 1;
    }
    return v[i];
}

/* 1 when the lookup hit. */
static int lookup_once(redisContext *rc, const char *text, double *us)
{
    double t0 = now_s();
    redisReply *r = redisCommand(rc, "ARK.LOOKUP %s %s", ns, text);
    int hit;

    *us = (now_s() - t0) * 1e6;
    if (!r) {
        fprintf(stderr, "cache_load: %s\n", rc->errstr);
        exit(1);
    }
    hit = r->type == REDIS_REPLY_ARRAY && r->elements >= 2;
    freeReplyObject(r);
    return hit;
}

static int do_lookup(const char *kind, long count, long stored)
{
    redisContext *rc = connect_or_die();
    double *lat = malloc(sizeof(double) * (size_t)count), sum = 0;
    char text[640];
    long i, hits = 0;
    int near = !strcmp(kind, "near");
    double t0 = now_s();

    if (!near && strcmp(kind, "fresh")) {
        fprintf(stderr, "cache_load: kind is near or fresh\n");
        return 2;
    }
    for (i = 0; i < count; i++) {
        long e = (long)(mix((uint64_t)i * 7919u + 17u) % (uint64_t)stored);

        if (near) {
            near_of(e, text, sizeof(text));
        }
        else {
            text_of(FRESH_BASE + i, text, sizeof(text));
        }
        hits += lookup_once(rc, text, &lat[i]);
        sum += lat[i];
    }
    qsort(lat, (size_t)count, sizeof(double), cmp_double);
    printf("lookup %s: %ld queries, %ld hits, %.0f req/s, mean %.0f us, "
           "p50 %.0f us, p95 %.0f us, p99 %.0f us, max %.0f us\n", kind,
           count, hits, (double)count / (now_s() - t0), sum / (double)count,
           pct(lat, count, 50), pct(lat, count, 95), pct(lat, count, 99),
           lat[count - 1]);
    free(lat);
    redisFree(rc);
    return 0;
}

static int do_waithit(long i, double timeout)
{
    double t0 = now_s(), us;
    char text[640];

    near_of(i, text, sizeof(text));
    while (now_s() - t0 < timeout) {
        redisContext *rc = redisConnect(host, port);

        if (rc && !rc->err) {
            redisReply *r = redisCommand(rc, "ARK.LOOKUP %s %s", ns, text);

            if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
                (void)us;
                printf("waithit: hit after %.2f s\n", now_s() - t0);
                freeReplyObject(r);
                redisFree(rc);
                return 0;
            }
            if (r) {
                freeReplyObject(r);
            }
        }
        if (rc) {
            redisFree(rc);
        }
        usleep(20000);
    }
    printf("waithit: no hit within %.0f s\n", timeout);
    return 1;
}

/* ---- recall */

static int do_recall(const char *path, long count, long stored, int dim)
{
    cs_index_conf_t conf;
    cs_index_t *idx = NULL;
    cs_embedder_t *emb = cs_embed_builtin_create(dim);
    char err[512], text[640];
    int64_t *ids = NULL;
    float *vecs, *q;
    size_t n, i;
    double t0;

    memset(&conf, 0, sizeof(conf));
    conf.dim = dim;
    t0 = now_s();
    if (!emb || cs_index_load(&idx, &conf, path, err, sizeof(err)) != CS_OK) {
        fprintf(stderr, "cache_load: %s\n", emb ? err : "bad dimension");
        return 1;
    }
    printf("recall: snapshot loaded in %.1f s (%s, %zu vectors)\n",
           now_s() - t0, cs_index_is_approx(idx) ? "HNSW" : "exact",
           cs_index_live(idx));
    n = cs_index_ids(idx, &ids);
    vecs = malloc(sizeof(float) * (size_t)dim * n);
    q = malloc(sizeof(float) * (size_t)dim);
    for (i = 0; i < n; i++) {
        cs_index_get_vector(idx, ids[i], vecs + i * (size_t)dim);
    }
    for (int kind = 0; kind < 2; kind++) {
        long agree = 0, k;

        for (k = 0; k < count; k++) {
            const char *tp = text;
            size_t tl;
            int64_t got;
            float sim, best = -2;
            int nres = 0;
            size_t bi = 0;

            if (kind == 0) {
                near_of((long)(mix((uint64_t)k * 7919u + 17u)
                               % (uint64_t)stored), text, sizeof(text));
            }
            else {
                text_of(FRESH_BASE + k, text, sizeof(text));
            }
            tl = strlen(text);
            if (cs_embed(emb, &tp, &tl, 1, q, err, sizeof(err)) != CS_OK
                || cs_index_search(idx, q, 1, &got, &sim, &nres, err,
                                   sizeof(err)) != CS_OK) {
                fprintf(stderr, "cache_load: %s\n", err);
                return 1;
            }
            for (i = 0; i < n; i++) {
                const float *v = vecs + i * (size_t)dim;
                float s = 0;

                for (int d = 0; d < dim; d++) {
                    s += v[d] * q[d];
                }
                if (s > best) {
                    best = s;
                    bi = i;
                }
            }
            /* Agreement: the same id, or a tie in similarity. */
            if (nres == 1 && (got == ids[bi] || fabsf(sim - best) < 1e-6f)) {
                agree++;
            }
        }
        printf("recall@1 %s: %.3f (%ld/%ld)\n", kind == 0 ? "near" : "fresh",
               (double)agree / (double)count, agree, count);
    }
    free(vecs);
    free(q);
    cs_free(ids);
    cs_index_free(idx);
    cs_embed_free(emb);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: cache_load [-h HOST] [-p PORT] [-n NS] "
            "[--pipeline N] [--conns N] [--ttl S] [--payload B]\n"
            "         fill N [FROM] | lookup near|fresh COUNT STORED | "
            "waithit I TIMEOUT_S | recall SNAPSHOT COUNT STORED [DIM]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int a = 1;

    while (a < argc && argv[a][0] == '-') {
        if (a + 1 >= argc) {
            usage();
        }
        if (!strcmp(argv[a], "-h")) {
            host = argv[a + 1];
        }
        else if (!strcmp(argv[a], "-p")) {
            port = atoi(argv[a + 1]);
        }
        else if (!strcmp(argv[a], "-n")) {
            ns = argv[a + 1];
        }
        else if (!strcmp(argv[a], "--pipeline")) {
            pipeline = atoi(argv[a + 1]);
        }
        else if (!strcmp(argv[a], "--conns")) {
            conns = atoi(argv[a + 1]);
        }
        else if (!strcmp(argv[a], "--ttl")) {
            ttl = atol(argv[a + 1]);
        }
        else if (!strcmp(argv[a], "--seconds")) {
            fill_deadline = now_s() + atof(argv[a + 1]);
        }
        else if (!strcmp(argv[a], "--payload")) {
            payload_bytes = (size_t)atol(argv[a + 1]);
        }
        else {
            usage();
        }
        a += 2;
    }
    if (a >= argc) {
        usage();
    }
    if (pipeline < 1) {
        pipeline = 1;
    }
    if (payload_bytes < 16) {
        payload_bytes = 16;
    }
    if (!strcmp(argv[a], "fill") && argc - a >= 2) {
        return do_fill(atol(argv[a + 1]), argc - a >= 3 ? atol(argv[a + 2])
                                                         : 0);
    }
    if (!strcmp(argv[a], "lookup") && argc - a == 4) {
        return do_lookup(argv[a + 1], atol(argv[a + 2]), atol(argv[a + 3]));
    }
    if (!strcmp(argv[a], "waithit") && argc - a == 3) {
        return do_waithit(atol(argv[a + 1]), atof(argv[a + 2]));
    }
    if (!strcmp(argv[a], "recall") && argc - a >= 4) {
        return do_recall(argv[a + 1], atol(argv[a + 2]), atol(argv[a + 3]),
                         argc - a >= 5 ? atoi(argv[a + 4]) : 384);
    }
    usage();
    return 2;
}
