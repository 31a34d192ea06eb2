/* Routing: filters and strategies. See ark_route.h for the model and a
 * worked example of the score. */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "ark_route.h"

static int tag_char_ok(char c)
{
    return apr_isalnum(c) || c == '.' || c == '_' || c == '-' || c == ':'
           || c == '/';
}

const char *ark_tags_parse(apr_array_header_t **ptags, const char *spec,
                           apr_pool_t *p)
{
    apr_array_header_t *tags = apr_array_make(p, 4, sizeof(ark_tag_t));
    char *copy = apr_pstrdup(p, spec), *item = copy;
    int n = 0;

    for (;;) {
        char *comma = strchr(item, ','), *eq, *c;
        ark_tag_t *t;

        n++;
        if (comma) {
            *comma = '\0';
        }
        eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1]) {
            return apr_psprintf(p, "tag %d is not key=value", n);
        }
        *eq = '\0';
        for (c = item; *c; c++) {
            if (!tag_char_ok(*c)) {
                return apr_psprintf(p, "tag %d: its key has a character "
                                    "other than A-Z a-z 0-9 . _ - : /", n);
            }
        }
        for (c = eq + 1; *c; c++) {
            if (!tag_char_ok(*c)) {
                return apr_psprintf(p, "tag %d: its value has a character "
                                    "other than A-Z a-z 0-9 . _ - : /", n);
            }
        }
        t = apr_array_push(tags);
        t->key = item;
        t->value = eq + 1;
        if (!comma) {
            break;
        }
        item = comma + 1;
    }
    *ptags = tags;
    return NULL;
}

static int chan_has(const apr_array_header_t *tags, const char *key,
                    const char *value)
{
    int i;

    for (i = 0; tags && i < tags->nelts; i++) {
        const ark_tag_t *t = &APR_ARRAY_IDX(tags, i, ark_tag_t);

        if (!strcmp(t->key, key) && !strcmp(t->value, value)) {
            return 1;
        }
    }
    return 0;
}

int ark_tags_satisfy(const apr_array_header_t *chan_tags,
                     const apr_array_header_t *required)
{
    int i, j;

    for (i = 0; required && i < required->nelts; i++) {
        const ark_tag_t *r = &APR_ARRAY_IDX(required, i, ark_tag_t);
        int ok = 0;

        /* any value required for this key will do */
        for (j = 0; j < required->nelts && !ok; j++) {
            const ark_tag_t *alt = &APR_ARRAY_IDX(required, j, ark_tag_t);

            ok = !strcmp(alt->key, r->key)
                 && chan_has(chan_tags, alt->key, alt->value);
        }
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static const char *const strategy_names[] = {
    "score", "fallback", "weighted", "least-latency", "cost", NULL
};
static const char *const priority_names[] = {
    "high", "normal", "low", NULL
};

static int name_index(const char *const *names, const char *s)
{
    int i;

    for (i = 0; s && names[i]; i++) {
        if (!strcmp(names[i], s)) {
            return i;
        }
    }
    return -1;
}

int ark_strategy_parse(const char *name)
{
    return name_index(strategy_names, name);
}

int ark_priority_parse(const char *name)
{
    return name_index(priority_names, name);
}

const char *ark_strategy_name(ark_strategy_t s)
{
    return (unsigned)s < 5 ? strategy_names[s] : "?";
}

const char *ark_priority_name(ark_priority_t p)
{
    return (unsigned)p < ARK_PRIO_COUNT ? priority_names[p] : "?";
}

static double latency_of(const ark_route_chan_t *c, int stream)
{
    return stream ? c->view.p95_ttfb_ms : c->view.p95_total_ms;
}

double ark_route_score(const ark_route_chan_t *c,
                       const ark_route_chan_t *chans, const int *cand,
                       int ncand, const ark_weights_t *w, int stream)
{
    double cmin = -1, lmin = -1, s_cost = 1, s_lat = 1, s_rel = 1, l;
    int i;

    for (i = 0; i < ncand; i++) {
        const ark_route_chan_t *o = &chans[cand[i]];
        double ol = latency_of(o, stream);

        if (cmin < 0 || o->cost < cmin) {
            cmin = o->cost;
        }
        if (ol > 0 && (lmin < 0 || ol < lmin)) {
            lmin = ol;
        }
    }
    if (c->cost > 0) {
        s_cost = cmin > 0 ? cmin / c->cost : 0.0;
    }
    l = latency_of(c, stream);
    if (l > 0 && lmin > 0) {
        s_lat = lmin / l;
    }
    if (c->view.success_ratio >= 0) {
        s_rel = c->view.success_ratio;
    }
    return w->cost * s_cost + w->latency * s_lat + w->reliability * s_rel;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ULL;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* splitmix64's finaliser: spreads every bit of a seed over the whole
 * word, so that seeds differing only in a few bits (a clock, a counter,
 * an address shifted left) still give independent draws. A single
 * xorshift step does not: its low bits depend on a handful of the seed's
 * low bits only. */
static uint64_t seed_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Stable insertion sort of idx[0..n-1] by key, ascending. */
static void sort_by(int *idx, int n, const double *key)
{
    int i, j;

    for (i = 1; i < n; i++) {
        int v = idx[i];

        for (j = i; j > 0 && key[idx[j - 1]] > key[v]; j--) {
            idx[j] = idx[j - 1];
        }
        idx[j] = v;
    }
}

int ark_route_order(int *order, int *norder, ark_route_skip_t *skip,
                    const ark_route_chan_t *chans, int n,
                    ark_strategy_t strategy, const ark_weights_t *w,
                    const apr_array_header_t *required_tags, int stream,
                    uint64_t seed)
{
    double key[n > 0 ? n : 1];
    int cand[n > 0 ? n : 1];
    int ncand = 0, i;

    for (i = 0; i < n; i++) {
        const ark_route_chan_t *c = &chans[i];
        ark_route_skip_t why = ARK_ROUTE_OK;

        if (!ark_tags_satisfy(c->tags, required_tags)) {
            why = ARK_ROUTE_NONCOMPLIANT;
        }
        else if (!c->view.admissible
                 || (c->max_conns && c->view.inflight >= c->max_conns)) {
            why = ARK_ROUTE_UNAVAILABLE;
        }
        if (skip) {
            skip[i] = why;
        }
        if (why == ARK_ROUTE_OK) {
            cand[ncand++] = i;
        }
    }

    switch (strategy) {
    case ARK_STRATEGY_FALLBACK:
        break;
    case ARK_STRATEGY_COST:
        for (i = 0; i < n; i++) {
            key[i] = chans[i].cost;
        }
        sort_by(cand, ncand, key);
        break;
    case ARK_STRATEGY_LEAST_LATENCY:
        for (i = 0; i < n; i++) {
            key[i] = stream ? chans[i].view.ewma_ttfb_ms
                            : chans[i].view.ewma_total_ms;
        }
        sort_by(cand, ncand, key);
        break;
    case ARK_STRATEGY_WEIGHTED: {
        /* draw without replacement: each pick is random by weight among
         * the channels not picked yet */
        int k;

        seed = seed_mix(seed);
        for (k = 0; k < ncand; k++) {
            uint64_t total = 0, r;
            int j;

            for (j = k; j < ncand; j++) {
                total += chans[cand[j]].weight ? chans[cand[j]].weight : 1;
            }
            r = xorshift(&seed) % total;
            for (j = k; j < ncand; j++) {
                uint64_t wj = chans[cand[j]].weight ? chans[cand[j]].weight
                                                    : 1;
                if (r < wj) {
                    int t = cand[k];

                    cand[k] = cand[j];
                    cand[j] = t;
                    break;
                }
                r -= wj;
            }
        }
        break;
    }
    case ARK_STRATEGY_SCORE:
    default:
        for (i = 0; i < ncand; i++) {
            /* negated: sort_by is ascending, best score goes first */
            key[cand[i]] = -ark_route_score(&chans[cand[i]], chans, cand,
                                            ncand, w, stream);
        }
        sort_by(cand, ncand, key);
        break;
    }
    memcpy(order, cand, sizeof(int) * (apr_size_t)ncand);
    *norder = ncand;
    return ncand;
}
