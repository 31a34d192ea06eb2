/* ark-cache-eval: how often would the cache serve a wrong answer?
 *
 * Reads a labelled set of request pairs (JSON Lines, one object a line:
 * {"a": stored request, "b": new request, "same": may b be answered with
 * a's answer, "category": ..., "lang": ...}; tests/data/cache_eval.jsonl
 * is the project's set) and decides for each pair whether the cache
 * would serve a's answer to b, by the rules and in the order of a lookup:
 *   1. exact       the bytes are equal;
 *   2. normalized  cs_normalize makes them equal;
 *   3. semantic    the cosine similarity of the builtin embedder's
 *                  vectors is >= the threshold AND cs_verify(b, a)
 *                  accepts the pair.
 * Similarities and verification verdicts do not depend on the threshold,
 * so they are computed once; each threshold of a sweep is then only a
 * comparison. For each category the tool prints how many pairs were
 * served and by which layer, how many were above the threshold but
 * vetoed by verification, precision and recall on positive pairs and the
 * false-hit rate on negative pairs; overall it prints wrong hits per 100
 * served hits and near-duplicate recall, and checks the targets below.
 * --explain lists every wrong hit and every missed near-duplicate with
 * its similarity and the verifier's reason: the material for tuning the
 * verification rules and the threshold.
 *
 * Exit status: 0 when the targets are met at --threshold, 1 when not, 2
 * on bad usage or bad input. docs/cache-evaluation.md describes the set
 * and how to read the output.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cs_cache.h"
#include "cs_common.h"
#include "cs_embed.h"
#include "cs_normalize.h"
#include "cs_verify.h"

/* The threshold evaluated when --threshold is not given: the cache's
 * default (cs_cache.c, configuration key default_threshold). */
#ifdef CS_CACHE_DEFAULT_THRESHOLD
#define EVAL_DEFAULT_THRESHOLD CS_CACHE_DEFAULT_THRESHOLD
#else
#define EVAL_DEFAULT_THRESHOLD 0.90
#endif

/* Targets (the exit status): at most this many wrong hits per 100 served
 * hits overall ... */
#define TARGET_WRONG_PER_100 1.0
/* ... at least this share of near-duplicates served ... */
#define TARGET_NEAR_DUP_RECALL 0.8
/* ... and no wrong hit at all in the categories marked critical below. */

/* A set larger than this is a mistake (the project's has under 1000). */
#define EVAL_MAX_PAIRS 1000000

/* Most thresholds in one sweep. */
#define EVAL_MAX_SWEEP 1000

/* Texts per cs_embed call. */
#define EVAL_EMBED_BATCH 64

/* --explain shows this many bytes of each text; a longer text also gets
 * a window of EVAL_DIFF_CONTEXT bytes each side of where the two differ. */
#define EVAL_SHOW_BYTES 240
#define EVAL_DIFF_CONTEXT 50

/* Bytes kept of the verifier's reason. */
#define EVAL_REASON_MAX 160

/* The categories of the project's set, in table order. A category not
 * listed here is still counted; it is shown after these. */
typedef struct {
    const char *name;
    int critical;           /* target: no wrong hit at all */
} eval_cat_info_t;

static const eval_cat_info_t known_cats[] = {
    {"near_duplicate", 0},
    {"paraphrase", 0},
    {"entity_swap", 1},
    {"number_change", 1},
    {"negation", 1},
    {"direction", 0},
    {"language_change", 0},
    {"format_change", 0},
    {"template_document", 0},
    {"unrelated", 0},
};
#define N_KNOWN_CATS (sizeof(known_cats) / sizeof(known_cats[0]))

#define CAT_NEAR_DUP 0      /* index of near_duplicate above */
#define CAT_PARAPHRASE 1    /* index of paraphrase above */

typedef enum {
    SERVE_NONE = 0,
    SERVE_EXACT,
    SERVE_NORMALIZED,
    SERVE_SEMANTIC
} eval_serve_t;

/* One labelled pair and what the cache's stages said about it. */
typedef struct {
    char *a;                /* stored request (cs_malloc'd) */
    size_t alen;
    char *b;                /* new request (cs_malloc'd) */
    size_t blen;
    int same;               /* label: b may get a's answer */
    int cat;                /* index into the name table */
    int lang;               /* index into the name table */
    long line;              /* line in the input file */
    int exact;              /* bytes equal */
    int normalized;         /* equal after cs_normalize */
    double sim;             /* cosine similarity of the embeddings */
    int verify_ok;          /* cs_verify(b, a) accepted */
    char reason[EVAL_REASON_MAX];
} eval_pair_t;

/* A small table of names (categories, languages), heap-owned. */
typedef struct {
    char **names;
    int n;
    int cap;
} eval_names_t;

/* Counts of one group of pairs at one threshold. */
typedef struct {
    long pairs;
    long pos;
    long neg;
    long served;
    long exact;
    long normalized;
    long semantic;
    long vetoed;            /* similarity >= threshold, verify refused */
    long correct;           /* served and labelled same */
    long wrong;             /* served and labelled not same */
} eval_tally_t;

/* The overall figures at one threshold. */
typedef struct {
    double threshold;
    eval_tally_t all;
    eval_tally_t near_dup;
    eval_tally_t paraphrase;
    long critical_wrong;
    int pass;
} eval_summary_t;

typedef struct {
    double threshold;
    int dim;
    int sweep;
    double sweep_lo;
    double sweep_hi;
    double sweep_step;
    int csv;
    int pairs_csv;
    int explain;
    const char *path;
} eval_opts_t;

/* ---------------------------------------------------------------------- */

static int names_index(eval_names_t *t, const char *name)
{
    int i;

    for (i = 0; i < t->n; i++) {
        if (strcmp(t->names[i], name) == 0) {
            return i;
        }
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->names = cs_realloc(t->names, (size_t)t->cap * sizeof(char *));
    }
    t->names[t->n] = cs_strndup(name, strlen(name));
    return t->n++;
}

static void names_free(eval_names_t *t)
{
    int i;

    for (i = 0; i < t->n; i++) {
        cs_free(t->names[i]);
    }
    cs_free(t->names);
    t->names = NULL;
    t->n = t->cap = 0;
}

static int cat_is_critical(const eval_names_t *cats, int cat)
{
    size_t i;

    for (i = 0; i < N_KNOWN_CATS; i++) {
        if (strcmp(cats->names[cat], known_cats[i].name) == 0) {
            return known_cats[i].critical;
        }
    }
    return 0;
}

/* A heap copy of len bytes that may contain NULs (cs_strndup stops at
 * the first one), NUL-terminated for convenience. */
static char *bytes_dup(const char *s, size_t len)
{
    char *d = cs_malloc(len + 1);

    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static void pairs_free(eval_pair_t *pairs, long n)
{
    long i;

    for (i = 0; i < n; i++) {
        cs_free(pairs[i].a);
        cs_free(pairs[i].b);
    }
    cs_free(pairs);
}

/* Reads the JSON Lines file: blank lines are skipped, every other line
 * must be an object with strings "a", "b", "category", "lang" and the
 * boolean "same". Returns CS_OK with *ppairs and *pn set, or CS_ERR after
 * printing "path:line: what is wrong" on stderr. */
static int load_pairs(const char *path, eval_names_t *cats,
                      eval_names_t *langs, eval_pair_t **ppairs, long *pn)
{
    FILE *f;
    char *line = NULL;
    size_t linecap = 0;
    ssize_t got;
    long lineno = 0;
    long n = 0;
    long cap = 0;
    eval_pair_t *pairs = NULL;
    int rv = CS_ERR;

    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "ark-cache-eval: %s: %s\n", path, strerror(errno));
        return CS_ERR;
    }
    while ((got = getline(&line, &linecap, f)) >= 0) {
        json_t *o, *ja, *jb, *js, *jc, *jl;
        json_error_t jerr;
        eval_pair_t *p;
        ssize_t k;

        lineno++;
        for (k = 0; k < got && strchr(" \t\r\n", line[k]) != NULL; k++) {
        }
        if (k == got) {
            continue;
        }
        o = json_loadb(line, (size_t)got,
                       JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (o == NULL) {
            fprintf(stderr, "ark-cache-eval: %s:%ld: %s\n", path, lineno,
                    jerr.text);
            goto done;
        }
        ja = json_object_get(o, "a");
        jb = json_object_get(o, "b");
        js = json_object_get(o, "same");
        jc = json_object_get(o, "category");
        jl = json_object_get(o, "lang");
        if (!json_is_string(ja) || !json_is_string(jb) ||
            !json_is_boolean(js) || !json_is_string(jc) ||
            !json_is_string(jl)) {
            fprintf(stderr,
                    "ark-cache-eval: %s:%ld: expected an object with "
                    "strings \"a\", \"b\", \"category\", \"lang\" and a "
                    "boolean \"same\"\n", path, lineno);
            json_decref(o);
            goto done;
        }
        if (n == EVAL_MAX_PAIRS) {
            fprintf(stderr, "ark-cache-eval: %s: more than %d pairs\n",
                    path, EVAL_MAX_PAIRS);
            json_decref(o);
            goto done;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            pairs = cs_realloc(pairs, (size_t)cap * sizeof(*pairs));
        }
        p = &pairs[n++];
        memset(p, 0, sizeof(*p));
        p->alen = json_string_length(ja);
        p->a = bytes_dup(json_string_value(ja), p->alen);
        p->blen = json_string_length(jb);
        p->b = bytes_dup(json_string_value(jb), p->blen);
        p->same = json_is_true(js);
        p->cat = names_index(cats, json_string_value(jc));
        p->lang = names_index(langs, json_string_value(jl));
        p->line = lineno;
        json_decref(o);
    }
    if (ferror(f)) {
        fprintf(stderr, "ark-cache-eval: %s: read error\n", path);
        goto done;
    }
    if (n == 0) {
        fprintf(stderr, "ark-cache-eval: %s: no pairs\n", path);
        goto done;
    }
    rv = CS_OK;

done:
    free(line);
    fclose(f);
    if (rv == CS_OK) {
        *ppairs = pairs;
        *pn = n;
    }
    else {
        pairs_free(pairs, n);
    }
    return rv;
}

/* The exact and normalised layers. */
static int stage_normalize(eval_pair_t *pairs, long n)
{
    cs_buf_t na, nb;
    long i;
    int rv = CS_OK;

    cs_buf_init(&na);
    cs_buf_init(&nb);
    for (i = 0; i < n && rv == CS_OK; i++) {
        eval_pair_t *p = &pairs[i];

        p->exact = p->alen == p->blen && memcmp(p->a, p->b, p->alen) == 0;
        if (cs_normalize(p->a, p->alen, &na) != CS_OK ||
            cs_normalize(p->b, p->blen, &nb) != CS_OK) {
            fprintf(stderr, "ark-cache-eval: line %ld: cs_normalize "
                    "failed\n", p->line);
            rv = CS_ERR;
            break;
        }
        /* As in cs_cache_lookup: an empty normalised text is not
         * looked up. */
        p->normalized = na.len > 0 && na.len == nb.len &&
                        memcmp(na.data, nb.data, na.len) == 0;
    }
    cs_buf_free(&na);
    cs_buf_free(&nb);
    return rv;
}

static double cosine(const float *x, const float *y, int dim)
{
    double dot = 0, nx = 0, ny = 0;
    int i;

    for (i = 0; i < dim; i++) {
        dot += (double)x[i] * y[i];
        nx += (double)x[i] * x[i];
        ny += (double)y[i] * y[i];
    }
    if (nx <= 0 || ny <= 0) {
        return 0;
    }
    return dot / (sqrt(nx) * sqrt(ny));
}

/* The semantic layer's similarity: both texts of a batch of pairs are
 * embedded in one call. *us receives the time spent in cs_embed. */
static int stage_embed(cs_embedder_t *e, eval_pair_t *pairs, long n,
                       int64_t *us)
{
    int dim = cs_embed_dim(e);
    const char *texts[EVAL_EMBED_BATCH];
    size_t lens[EVAL_EMBED_BATCH];
    float *vec;
    char err[256];
    long i;
    int rv = CS_OK;

    vec = cs_malloc((size_t)EVAL_EMBED_BATCH * (size_t)dim * sizeof(float));
    *us = 0;
    for (i = 0; i < n; i += EVAL_EMBED_BATCH / 2) {
        long m = n - i < EVAL_EMBED_BATCH / 2 ? n - i : EVAL_EMBED_BATCH / 2;
        int64_t t0;
        long j;

        for (j = 0; j < m; j++) {
            texts[2 * j] = pairs[i + j].a;
            lens[2 * j] = pairs[i + j].alen;
            texts[2 * j + 1] = pairs[i + j].b;
            lens[2 * j + 1] = pairs[i + j].blen;
        }
        t0 = cs_now_us();
        if (cs_embed(e, texts, lens, (int)(2 * m), vec, err, sizeof(err))
            != CS_OK) {
            fprintf(stderr, "ark-cache-eval: %s\n", err);
            rv = CS_ERR;
            break;
        }
        *us += cs_now_us() - t0;
        for (j = 0; j < m; j++) {
            pairs[i + j].sim = cosine(vec + (size_t)(2 * j) * (size_t)dim,
                                      vec + (size_t)(2 * j + 1) * (size_t)dim,
                                      dim);
        }
    }
    cs_free(vec);
    return rv;
}

/* Verification of every pair (whatever its similarity: the verdict does
 * not depend on the threshold). The new request is the query, the stored
 * one the candidate, as in a lookup. *us receives the time spent. */
static void stage_verify(eval_pair_t *pairs, long n, int64_t *us)
{
    long i;

    *us = 0;
    for (i = 0; i < n; i++) {
        eval_pair_t *p = &pairs[i];
        cs_verify_result_t res;
        int64_t t0;
        int rc;

        memset(&res, 0, sizeof(res));
        t0 = cs_now_us();
        rc = cs_verify(p->b, p->blen, p->a, p->alen, &res);
        *us += cs_now_us() - t0;
        if (rc != CS_OK) {
            p->verify_ok = 0;
            snprintf(p->reason, sizeof(p->reason), "%s",
                     res.reason ? res.reason : "cs_verify failed");
        }
        else {
            p->verify_ok = res.ok != 0;
            snprintf(p->reason, sizeof(p->reason), "%s", res.reason);
        }
    }
}

/* ---------------------------------------------------------------------- */

static eval_serve_t decide(const eval_pair_t *p, double threshold)
{
    if (p->exact) {
        return SERVE_EXACT;
    }
    if (p->normalized) {
        return SERVE_NORMALIZED;
    }
    if (p->sim >= threshold && p->verify_ok) {
        return SERVE_SEMANTIC;
    }
    return SERVE_NONE;
}

static void tally_add(eval_tally_t *t, const eval_pair_t *p,
                      double threshold)
{
    eval_serve_t s = decide(p, threshold);

    t->pairs++;
    if (p->same) {
        t->pos++;
    }
    else {
        t->neg++;
    }
    if (s == SERVE_NONE) {
        if (!p->exact && !p->normalized && p->sim >= threshold) {
            t->vetoed++;
        }
        return;
    }
    t->served++;
    if (s == SERVE_EXACT) {
        t->exact++;
    }
    else if (s == SERVE_NORMALIZED) {
        t->normalized++;
    }
    else {
        t->semantic++;
    }
    if (p->same) {
        t->correct++;
    }
    else {
        t->wrong++;
    }
}

static void summarize(const eval_pair_t *pairs, long n,
                      const eval_names_t *cats, double threshold,
                      eval_summary_t *s)
{
    long i;
    int nd = -1, para = -1, c;

    memset(s, 0, sizeof(*s));
    s->threshold = threshold;
    for (c = 0; c < cats->n; c++) {
        if (strcmp(cats->names[c], known_cats[CAT_NEAR_DUP].name) == 0) {
            nd = c;
        }
        else if (strcmp(cats->names[c],
                        known_cats[CAT_PARAPHRASE].name) == 0) {
            para = c;
        }
    }
    for (i = 0; i < n; i++) {
        const eval_pair_t *p = &pairs[i];

        tally_add(&s->all, p, threshold);
        if (p->cat == nd) {
            tally_add(&s->near_dup, p, threshold);
        }
        else if (p->cat == para) {
            tally_add(&s->paraphrase, p, threshold);
        }
        if (!p->same && decide(p, threshold) != SERVE_NONE &&
            cat_is_critical(cats, p->cat)) {
            s->critical_wrong++;
        }
    }
    s->pass = s->critical_wrong == 0 &&
              100.0 * (double)s->all.wrong <=
                  TARGET_WRONG_PER_100 * (double)s->all.served &&
              (s->near_dup.pos == 0 ||
               (double)s->near_dup.correct >=
                   TARGET_NEAR_DUP_RECALL * (double)s->near_dup.pos);
}

/* "0.873", or "-" when the ratio is undefined. */
static const char *ratio(char *buf, size_t len, long num, long den)
{
    if (den <= 0) {
        snprintf(buf, len, "-");
    }
    else {
        snprintf(buf, len, "%.3f", (double)num / (double)den);
    }
    return buf;
}

static double per_100(long wrong, long served)
{
    return served > 0 ? 100.0 * (double)wrong / (double)served : 0.0;
}

/* ---------------------------------------------------------------------- */
/* Text output. */

static void print_row(const char *label, const eval_tally_t *t)
{
    char pr[16], rc[16], fh[16];

    printf("%-24s %6ld %6ld %6ld %5ld %5ld %5ld %6ld %5ld %9s %7s %9s\n",
           label, t->pairs, t->pos, t->served, t->exact, t->normalized,
           t->semantic, t->vetoed, t->wrong,
           ratio(pr, sizeof(pr), t->correct, t->pos ? t->served : 0),
           ratio(rc, sizeof(rc), t->correct, t->pos),
           ratio(fh, sizeof(fh), t->wrong, t->neg));
}

static void print_header(void)
{
    printf("%-24s %6s %6s %6s %5s %5s %5s %6s %5s %9s %7s %9s\n",
           "category", "pairs", "pos", "served", "exact", "norm", "sem",
           "vetoed", "wrong", "precision", "recall", "false-hit");
}

/* One table: a row per category (and per category and language when
 * by_lang), then the total. */
static void print_table(const eval_pair_t *pairs, long n,
                        const eval_names_t *cats, const eval_names_t *langs,
                        double threshold, int by_lang)
{
    eval_tally_t total;
    int c, l;
    long i;

    print_header();
    memset(&total, 0, sizeof(total));
    for (c = 0; c < cats->n; c++) {
        for (l = by_lang ? 0 : -1; l < (by_lang ? langs->n : 0); l++) {
            eval_tally_t t;
            char label[64];

            memset(&t, 0, sizeof(t));
            for (i = 0; i < n; i++) {
                if (pairs[i].cat == c && (l < 0 || pairs[i].lang == l)) {
                    tally_add(&t, &pairs[i], threshold);
                }
            }
            if (t.pairs == 0) {
                continue;
            }
            if (l < 0) {
                snprintf(label, sizeof(label), "%s", cats->names[c]);
            }
            else {
                snprintf(label, sizeof(label), "%.17s/%.6s", cats->names[c],
                         langs->names[l]);
            }
            print_row(label, &t);
        }
    }
    if (by_lang) {
        for (l = 0; l < langs->n; l++) {
            eval_tally_t t;
            char label[64];

            memset(&t, 0, sizeof(t));
            for (i = 0; i < n; i++) {
                if (pairs[i].lang == l) {
                    tally_add(&t, &pairs[i], threshold);
                }
            }
            snprintf(label, sizeof(label), "all/%.16s", langs->names[l]);
            print_row(label, &t);
        }
    }
    for (i = 0; i < n; i++) {
        tally_add(&total, &pairs[i], threshold);
    }
    print_row("all", &total);
}

static void print_summary(const eval_summary_t *s)
{
    char nd[16], pa[16];
    double w100 = per_100(s->all.wrong, s->all.served);
    int nd_ok = s->near_dup.pos == 0 ||
                (double)s->near_dup.correct >=
                    TARGET_NEAR_DUP_RECALL * (double)s->near_dup.pos;

    printf("\noverall at threshold %.3f: %ld of %ld pairs served "
           "(%ld exact, %ld normalized, %ld semantic), %ld wrong\n",
           s->threshold, s->all.served, s->all.pairs, s->all.exact,
           s->all.normalized, s->all.semantic, s->all.wrong);
    printf("  wrong hits per 100 served      %7.2f   target <= %.2f   %s\n",
           w100, TARGET_WRONG_PER_100,
           w100 <= TARGET_WRONG_PER_100 ? "ok" : "FAIL");
    printf("  wrong hits in critical classes %7ld   target 0         %s\n",
           s->critical_wrong, s->critical_wrong == 0 ? "ok" : "FAIL");
    printf("  near_duplicate recall          %7s   target >= %.2f   %s\n",
           ratio(nd, sizeof(nd), s->near_dup.correct, s->near_dup.pos),
           TARGET_NEAR_DUP_RECALL, nd_ok ? "ok" : "FAIL");
    printf("  paraphrase recall              %7s   (not a target: the "
           "builtin embedder targets near-duplicates)\n",
           ratio(pa, sizeof(pa), s->paraphrase.correct, s->paraphrase.pos));
    printf("result: %s\n", s->pass ? "PASS" : "FAIL");
}

/* Which verification rules refused the pairs that were similar enough:
 * per reason, how many negatives it saved and how many positives it
 * lost. */
static void print_vetoes(const eval_pair_t *pairs, long n, double threshold)
{
    eval_names_t reasons;
    long *neg, *pos;
    long i;
    int r;

    memset(&reasons, 0, sizeof(reasons));
    for (i = 0; i < n; i++) {
        const eval_pair_t *p = &pairs[i];

        if (!p->exact && !p->normalized && p->sim >= threshold &&
            !p->verify_ok) {
            names_index(&reasons, p->reason);
        }
    }
    if (reasons.n == 0) {
        return;
    }
    neg = cs_calloc((size_t)reasons.n, sizeof(long));
    pos = cs_calloc((size_t)reasons.n, sizeof(long));
    for (i = 0; i < n; i++) {
        const eval_pair_t *p = &pairs[i];

        if (!p->exact && !p->normalized && p->sim >= threshold &&
            !p->verify_ok) {
            r = names_index(&reasons, p->reason);
            if (p->same) {
                pos[r]++;
            }
            else {
                neg[r]++;
            }
        }
    }
    printf("\nverification vetoes at threshold %.3f (similar enough, "
           "refused):\n", threshold);
    printf("  %-32s %18s %18s\n", "reason", "negatives (saved)",
           "positives (lost)");
    for (r = 0; r < reasons.n; r++) {
        printf("  %-32s %18ld %18ld\n", reasons.names[r], neg[r], pos[r]);
    }
    cs_free(neg);
    cs_free(pos);
    names_free(&reasons);
}

static void print_sweep_header(void)
{
    printf("%9s %6s %6s %6s %5s %9s %9s %8s %8s %8s  %s\n", "threshold",
           "served", "sem", "vetoed", "wrong", "wrong/100", "precision",
           "nd-rec", "para-rec", "crit-wr", "result");
}

static void print_sweep_row(const eval_summary_t *s)
{
    char pr[16], nd[16], pa[16];

    printf("%9.3f %6ld %6ld %6ld %5ld %9.2f %9s %8s %8s %8ld  %s\n",
           s->threshold, s->all.served, s->all.semantic, s->all.vetoed,
           s->all.wrong, per_100(s->all.wrong, s->all.served),
           ratio(pr, sizeof(pr), s->all.correct, s->all.served),
           ratio(nd, sizeof(nd), s->near_dup.correct, s->near_dup.pos),
           ratio(pa, sizeof(pa), s->paraphrase.correct, s->paraphrase.pos),
           s->critical_wrong, s->pass ? "pass" : "FAIL");
}

/* ---------------------------------------------------------------------- */
/* CSV output: one row per category, per category and language, per
 * language and overall ("all"), for each threshold evaluated. */

static void csv_row(double threshold, const char *cat, const char *lang,
                    const eval_tally_t *t)
{
    char pr[16], rc[16], fh[16];

    printf("%.4f,%s,%s,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld,%s,%s,%s,"
           "%.3f\n",
           threshold, cat, lang, t->pairs, t->pos, t->neg, t->served,
           t->exact, t->normalized, t->semantic, t->vetoed, t->correct,
           t->wrong,
           ratio(pr, sizeof(pr), t->correct, t->pos ? t->served : 0),
           ratio(rc, sizeof(rc), t->correct, t->pos),
           ratio(fh, sizeof(fh), t->wrong, t->neg),
           per_100(t->wrong, t->served));
}

static void csv_header(void)
{
    printf("threshold,category,lang,pairs,positives,negatives,served,exact,"
           "normalized,semantic,vetoed,correct,wrong,precision,recall,"
           "false_hit_rate,wrong_per_100_served\n");
}

static void csv_threshold(const eval_pair_t *pairs, long n,
                          const eval_names_t *cats,
                          const eval_names_t *langs, double threshold)
{
    int c, l;
    long i;

    for (c = -1; c < cats->n; c++) {
        for (l = -1; l < langs->n; l++) {
            eval_tally_t t;

            memset(&t, 0, sizeof(t));
            for (i = 0; i < n; i++) {
                if ((c < 0 || pairs[i].cat == c) &&
                    (l < 0 || pairs[i].lang == l)) {
                    tally_add(&t, &pairs[i], threshold);
                }
            }
            if (t.pairs > 0) {
                csv_row(threshold, c < 0 ? "all" : cats->names[c],
                        l < 0 ? "all" : langs->names[l], &t);
            }
        }
    }
}

/* --pairs-csv: what each stage said about each pair, for tuning
 * outside this tool (the verdict does not depend on the threshold). */
static void csv_pairs(const eval_pair_t *pairs, long n,
                      const eval_names_t *cats, const eval_names_t *langs)
{
    long i;

    printf("line,category,lang,same,exact,normalized,similarity,verify_ok,"
           "verify_reason\n");
    for (i = 0; i < n; i++) {
        const eval_pair_t *p = &pairs[i];

        printf("%ld,%s,%s,%d,%d,%d,%.6f,%d,%s\n", p->line,
               cats->names[p->cat], langs->names[p->lang], p->same,
               p->exact, p->normalized, p->sim, p->verify_ok, p->reason);
    }
}

/* ---------------------------------------------------------------------- */
/* --explain */

/* Writes s[0..len) with control characters escaped. */
static void put_escaped(FILE *out, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '\n') {
            fputs("\\n", out);
        }
        else if (ch == '\t') {
            fputs("\\t", out);
        }
        else if (ch == '\r') {
            fputs("\\r", out);
        }
        else if (ch < 0x20 || ch == 0x7f) {
            fprintf(out, "\\x%02x", ch);
        }
        else {
            fputc(ch, out);
        }
    }
}

/* The largest cut <= want that does not split a UTF-8 sequence. */
static size_t utf8_floor(const char *s, size_t len, size_t want)
{
    if (want >= len) {
        return len;
    }
    while (want > 0 && ((unsigned char)s[want] & 0xC0) == 0x80) {
        want--;
    }
    return want;
}

static size_t utf8_ceil(const char *s, size_t len, size_t want)
{
    while (want < len && ((unsigned char)s[want] & 0xC0) == 0x80) {
        want++;
    }
    return want;
}

static void put_text(FILE *out, const char *label, const char *s,
                     size_t len)
{
    size_t cut = utf8_floor(s, len, EVAL_SHOW_BYTES);

    fprintf(out, "    %s: ", label);
    put_escaped(out, s, cut);
    if (cut < len) {
        fprintf(out, "... (%zu bytes)", len);
    }
    fputc('\n', out);
}

/* For long texts: where a and b differ, with some context. */
static void put_diff(FILE *out, const eval_pair_t *p)
{
    size_t pre = 0, suf = 0, from, ta, tb;

    if (p->alen <= EVAL_SHOW_BYTES && p->blen <= EVAL_SHOW_BYTES) {
        return;
    }
    while (pre < p->alen && pre < p->blen && p->a[pre] == p->b[pre]) {
        pre++;
    }
    while (suf < p->alen - pre && suf < p->blen - pre &&
           p->a[p->alen - 1 - suf] == p->b[p->blen - 1 - suf]) {
        suf++;
    }
    from = pre > EVAL_DIFF_CONTEXT ? pre - EVAL_DIFF_CONTEXT : 0;
    from = utf8_floor(p->a, p->alen, from);
    ta = p->alen - suf + EVAL_DIFF_CONTEXT;
    ta = utf8_ceil(p->a, p->alen, ta < p->alen ? ta : p->alen);
    tb = p->blen - suf + EVAL_DIFF_CONTEXT;
    tb = utf8_ceil(p->b, p->blen, tb < p->blen ? tb : p->blen);
    fprintf(out, "    differs at byte %zu:\n      a: ...", pre);
    put_escaped(out, p->a + from, ta > from ? ta - from : 0);
    fprintf(out, "...\n      b: ...");
    put_escaped(out, p->b + from, tb > from ? tb - from : 0);
    fprintf(out, "...\n");
}

static void put_pair(FILE *out, const eval_pair_t *p,
                     const eval_names_t *cats, const eval_names_t *langs,
                     double threshold)
{
    static const char *const how[] = {"missed", "exact", "normalized",
                                      "semantic"};
    eval_serve_t s = decide(p, threshold);

    fprintf(out, "  line %ld  %s/%s  %s  sim %.4f%s  verify: %s%s\n",
            p->line, cats->names[p->cat], langs->names[p->lang], how[s],
            p->sim, p->sim >= threshold ? "" : " (below threshold)",
            p->verify_ok ? "ok" : "refused: ",
            p->verify_ok ? "" : p->reason);
    put_text(out, "a", p->a, p->alen);
    put_text(out, "b", p->b, p->blen);
    put_diff(out, p);
}

/* Order for the lists: category, then similarity, highest first. */
static int cmp_explain(const void *x, const void *y)
{
    const eval_pair_t *p = *(const eval_pair_t *const *)x;
    const eval_pair_t *q = *(const eval_pair_t *const *)y;

    if (p->cat != q->cat) {
        return p->cat < q->cat ? -1 : 1;
    }
    if (p->sim != q->sim) {
        return p->sim > q->sim ? -1 : 1;
    }
    return p->line < q->line ? -1 : (p->line > q->line);
}

/* kind 0: wrong hits; 1: missed near-duplicates; 2: other positives
 * refused by verification although similar enough. */
static int explain_wanted(const eval_pair_t *p, int kind, int nd,
                          double threshold)
{
    eval_serve_t s = decide(p, threshold);

    switch (kind) {
    case 0:
        return !p->same && s != SERVE_NONE;
    case 1:
        return p->same && s == SERVE_NONE && p->cat == nd;
    default:
        return p->same && s == SERVE_NONE && p->cat != nd &&
               p->sim >= threshold;
    }
}

static void explain(FILE *out, const eval_pair_t *pairs, long n,
                    const eval_names_t *cats, const eval_names_t *langs,
                    double threshold)
{
    static const char *const titles[] = {
        "wrong hits",
        "missed near-duplicates",
        "other positives above the threshold refused by verification",
    };
    const eval_pair_t **list;
    int kind, nd = -1, c;
    long i, m;

    for (c = 0; c < cats->n; c++) {
        if (strcmp(cats->names[c], known_cats[CAT_NEAR_DUP].name) == 0) {
            nd = c;
        }
    }
    list = cs_malloc((size_t)n * sizeof(*list));
    for (kind = 0; kind < 3; kind++) {
        m = 0;
        for (i = 0; i < n; i++) {
            if (explain_wanted(&pairs[i], kind, nd, threshold)) {
                list[m++] = &pairs[i];
            }
        }
        qsort(list, (size_t)m, sizeof(*list), cmp_explain);
        fprintf(out, "\n%s at threshold %.3f: %ld\n", titles[kind],
                threshold, m);
        for (i = 0; i < m; i++) {
            put_pair(out, list[i], cats, langs, threshold);
        }
    }
    cs_free(list);
}

/* ---------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ark-cache-eval [--threshold T] [--dim N] "
            "[--sweep LO:HI:STEP] [--csv | --pairs-csv] [--explain] FILE\n"
            "\n"
            "Replays a labelled set of request pairs (JSON Lines: "
            "{\"a\", \"b\", \"same\",\n"
            "\"category\", \"lang\"}) through the cache's decision: "
            "exact -> normalized ->\n"
            "cosine >= T and verification. Prints per-category and "
            "overall figures.\n"
            "\n"
            "  --threshold T   similarity threshold, 0 < T <= 1 "
            "(default %.2f)\n"
            "  --dim N         builtin embedder dimension (default %d)\n"
            "  --sweep A:B:S   also evaluate thresholds A, A+S, ... <= B\n"
            "  --csv           machine-readable rows instead of tables\n"
            "  --pairs-csv     one row per pair: similarity, verdicts\n"
            "  --explain       list wrong hits and missed near-duplicates\n"
            "                  (on stderr with --csv or --pairs-csv)\n"
            "\n"
            "Exit status: 0 targets met at T, 1 not met, 2 usage or "
            "input error.\n"
            "Targets: <= %.1f wrong hits per 100 served, none in "
            "entity_swap,\nnumber_change and negation, near_duplicate "
            "recall >= %.2f.\n",
            EVAL_DEFAULT_THRESHOLD, CS_EMBED_BUILTIN_DIM_DEFAULT,
            TARGET_WRONG_PER_100, TARGET_NEAR_DUP_RECALL);
}

static int parse_double(const char *s, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && end != s && *end == '\0' && isfinite(*out)
               ? CS_OK : CS_ERR;
}

static int parse_sweep(const char *s, eval_opts_t *o)
{
    char buf[128];
    char *c1, *c2;
    double count;

    if (strlen(s) >= sizeof(buf)) {
        return CS_ERR;
    }
    strcpy(buf, s);
    c1 = strchr(buf, ':');
    c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL) {
        return CS_ERR;
    }
    *c1 = *c2 = '\0';
    if (parse_double(buf, &o->sweep_lo) != CS_OK ||
        parse_double(c1 + 1, &o->sweep_hi) != CS_OK ||
        parse_double(c2 + 1, &o->sweep_step) != CS_OK) {
        return CS_ERR;
    }
    if (!(o->sweep_lo > 0 && o->sweep_lo <= o->sweep_hi &&
          o->sweep_hi <= 1 && o->sweep_step > 0)) {
        return CS_ERR;
    }
    count = floor((o->sweep_hi - o->sweep_lo) / o->sweep_step + 1e-9) + 1;
    if (count > EVAL_MAX_SWEEP) {
        return CS_ERR;
    }
    o->sweep = (int)count;
    return CS_OK;
}

static int parse_args(int argc, char **argv, eval_opts_t *o)
{
    static const struct option longopts[] = {
        {"threshold", required_argument, NULL, 't'},
        {"dim", required_argument, NULL, 'd'},
        {"sweep", required_argument, NULL, 's'},
        {"csv", no_argument, NULL, 'c'},
        {"pairs-csv", no_argument, NULL, 'p'},
        {"explain", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    double d;

    memset(o, 0, sizeof(*o));
    o->threshold = EVAL_DEFAULT_THRESHOLD;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 't':
            if (parse_double(optarg, &o->threshold) != CS_OK ||
                !(o->threshold > 0 && o->threshold <= 1)) {
                fprintf(stderr, "ark-cache-eval: --threshold: expected a "
                        "number in (0, 1], got '%s'\n", optarg);
                return CS_ERR;
            }
            break;
        case 'd':
            if (parse_double(optarg, &d) != CS_OK || d != floor(d) ||
                d < CS_EMBED_BUILTIN_DIM_MIN ||
                d > CS_EMBED_BUILTIN_DIM_MAX ||
                fmod(d, CS_EMBED_BUILTIN_DIM_STEP) != 0) {
                fprintf(stderr, "ark-cache-eval: --dim: expected a multiple "
                        "of %d from %d to %d, got '%s'\n",
                        CS_EMBED_BUILTIN_DIM_STEP, CS_EMBED_BUILTIN_DIM_MIN,
                        CS_EMBED_BUILTIN_DIM_MAX, optarg);
                return CS_ERR;
            }
            o->dim = (int)d;
            break;
        case 's':
            if (parse_sweep(optarg, o) != CS_OK) {
                fprintf(stderr, "ark-cache-eval: --sweep: expected LO:HI:STEP "
                        "with 0 < LO <= HI <= 1, STEP > 0 and at most %d "
                        "steps, got '%s'\n", EVAL_MAX_SWEEP, optarg);
                return CS_ERR;
            }
            break;
        case 'c':
            o->csv = 1;
            break;
        case 'p':
            o->pairs_csv = 1;
            break;
        case 'e':
            o->explain = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return CS_ERR;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return CS_ERR;
    }
    o->path = argv[optind];
    return CS_OK;
}

static double sweep_threshold(const eval_opts_t *o, int i)
{
    /* Rounded so that 0.70 + 5 * 0.02 is 0.80, not 0.7999999. */
    return round((o->sweep_lo + i * o->sweep_step) * 1e6) / 1e6;
}

int main(int argc, char **argv)
{
    eval_opts_t o;
    eval_names_t cats, langs;
    eval_pair_t *pairs = NULL;
    cs_embedder_t *e = NULL;
    eval_summary_t s;
    int64_t embed_us = 0, verify_us = 0;
    long n = 0;
    size_t k;
    int i, rv = 2;

    if (parse_args(argc, argv, &o) != CS_OK) {
        return 2;
    }
    memset(&cats, 0, sizeof(cats));
    memset(&langs, 0, sizeof(langs));
    /* Known categories first, so tables keep the documented order. */
    for (k = 0; k < N_KNOWN_CATS; k++) {
        names_index(&cats, known_cats[k].name);
    }
    if (load_pairs(o.path, &cats, &langs, &pairs, &n) != CS_OK) {
        goto done;
    }
    e = cs_embed_builtin_create(o.dim);
    if (e == NULL) {
        fprintf(stderr, "ark-cache-eval: cannot create the builtin "
                "embedder (dim %d)\n", o.dim);
        goto done;
    }
    if (stage_normalize(pairs, n) != CS_OK ||
        stage_embed(e, pairs, n, &embed_us) != CS_OK) {
        goto done;
    }
    stage_verify(pairs, n, &verify_us);

    summarize(pairs, n, &cats, o.threshold, &s);
    if (o.pairs_csv) {
        csv_pairs(pairs, n, &cats, &langs);
        if (o.explain) {
            explain(stderr, pairs, n, &cats, &langs, o.threshold);
        }
    }
    else if (o.csv) {
        csv_header();
        if (o.sweep) {
            for (i = 0; i < o.sweep; i++) {
                csv_threshold(pairs, n, &cats, &langs,
                              sweep_threshold(&o, i));
            }
        }
        else {
            csv_threshold(pairs, n, &cats, &langs, o.threshold);
        }
        if (o.explain) {
            explain(stderr, pairs, n, &cats, &langs, o.threshold);
        }
    }
    else {
        printf("ark-cache-eval: %s: %ld pairs; embedder %s; threshold "
               "%.3f\n", o.path, n, cs_embed_version(e), o.threshold);
        printf("time: embedding %.1f us/text, verification %.1f us/pair\n\n",
               (double)embed_us / (double)(2 * n),
               (double)verify_us / (double)n);
        print_table(pairs, n, &cats, &langs, o.threshold, 0);
        if (langs.n > 1) {
            printf("\nby language:\n");
            print_table(pairs, n, &cats, &langs, o.threshold, 1);
        }
        print_summary(&s);
        print_vetoes(pairs, n, o.threshold);
        if (o.sweep) {
            printf("\nsweep:\n");
            print_sweep_header();
            for (i = 0; i < o.sweep; i++) {
                eval_summary_t si;

                summarize(pairs, n, &cats, sweep_threshold(&o, i), &si);
                print_sweep_row(&si);
            }
        }
        if (o.explain) {
            explain(stdout, pairs, n, &cats, &langs, o.threshold);
        }
    }
    rv = s.pass ? 0 : 1;

done:
    cs_embed_free(e);
    pairs_free(pairs, n);
    names_free(&cats);
    names_free(&langs);
    return rv;
}
