/* Routing: which channel serves a request, and in what order the others
 * are tried when it fails.
 *
 * Pure logic over a snapshot: the caller gathers, for each channel of a
 * model alias, its static properties (cost, weight, tags, connection cap)
 * and its live view from shared memory (ark_signals.h), then asks
 * ark_route_order for the try order. Nothing here blocks or allocates
 * beyond the caller's pool.
 *
 * Filters, applied first, whatever the strategy:
 *   compliance  a channel whose tags do not satisfy every requirement of
 *               the key (see ark_tags_satisfy) is never a candidate;
 *   admission   a channel whose circuit is open, that is cooling down
 *               after a 429, or that has max_conns requests in flight is
 *               left out of this request.
 * Strategies, ordering what is left:
 *   score          highest weighted score first (below)
 *   fallback       configuration order
 *   weighted       random by weight, without replacement
 *   least-latency  lowest latency estimate (EWMA) first; unmeasured first
 *   cost           cheapest first, configuration order on ties
 *
 * The score of channel i, for the request's priority class weights
 * (wc, wl, wr), is
 *     wc * cmin / ci  +  wl * lmin / li  +  wr * ri
 * where ci is its cost for this request, li its P95 latency (time to
 * first byte for streamed requests, total otherwise), ri its success
 * ratio in the breaker window, and cmin, lmin the smallest among the
 * candidates. An unmeasured latency or ratio counts as the best (1), so
 * new channels get explored. Worked example, low priority (wc .8, wl .05,
 * wr .15): A costs 0.5 and answers in 500 ms, B costs 10 and answers in
 * 50 ms, both always succeed:
 *     A = .8 * 1      + .05 * .1 + .15 = 0.955
 *     B = .8 * .05    + .05 * 1  + .15 = 0.240    -> A, the cheap one.
 * High priority (wc .1, wl .6, wr .3):
 *     A = .1 * 1 + .6 * .1 + .3 = 0.46,  B = .1 * .05 + .6 * 1 + .3 = 0.905
 *                                                   -> B, the fast one.
 */
#ifndef ARK_ROUTE_H
#define ARK_ROUTE_H

#include <stdint.h>

#include <apr_pools.h>
#include <apr_tables.h>

#include "ark_signals.h"

typedef enum {
    ARK_PRIO_HIGH = 0,
    ARK_PRIO_NORMAL = 1,
    ARK_PRIO_LOW = 2,
    ARK_PRIO_COUNT = 3
} ark_priority_t;

typedef enum {
    ARK_STRATEGY_SCORE = 0,
    ARK_STRATEGY_FALLBACK,
    ARK_STRATEGY_WEIGHTED,
    ARK_STRATEGY_LEAST_LATENCY,
    ARK_STRATEGY_COST
} ark_strategy_t;

typedef struct ark_weights_t {
    double cost;
    double latency;
    double reliability;
} ark_weights_t;

/* Default score weights per priority class (ArkScoreWeights). */
#define ARK_WEIGHTS_HIGH   { 0.10, 0.60, 0.30 }
#define ARK_WEIGHTS_NORMAL { 0.40, 0.30, 0.30 }
#define ARK_WEIGHTS_LOW    { 0.80, 0.05, 0.15 }

/* A compliance tag, "region=eu". */
typedef struct ark_tag_t {
    const char *key;
    const char *value;
} ark_tag_t;

/* What the router knows of one channel for one request. */
typedef struct ark_route_chan_t {
    double cost;                       /* this request's estimated cost */
    unsigned int weight;               /* for `weighted`, >= 1 */
    const apr_array_header_t *tags;    /* ark_tag_t, may be NULL */
    unsigned int max_conns;            /* 0: no cap */
    ark_chan_view_t view;
} ark_route_chan_t;

/* Why a channel was not ordered (for logs and the 503 message). */
typedef enum {
    ARK_ROUTE_OK = 0,
    ARK_ROUTE_NONCOMPLIANT,
    ARK_ROUTE_UNAVAILABLE            /* circuit open, cooling, at cap */
} ark_route_skip_t;

/* Parses "region=eu,tier=official" into ark_tag_t entries. Returns NULL
 * or an error sentence (empty key or value, bad characters). */
const char *ark_tags_parse(apr_array_header_t **ptags, const char *spec,
                           apr_pool_t *p);

/* True when chan_tags satisfy required: for every tag key named in
 * required, the channel has that key with one of the values required
 * lists for it ("region=eu,region=us" means eu or us). An empty or NULL
 * required is always satisfied. */
int ark_tags_satisfy(const apr_array_header_t *chan_tags,
                     const apr_array_header_t *required);

/* Parses a strategy or priority name; -1 if unknown. */
int ark_strategy_parse(const char *name);
int ark_priority_parse(const char *name);
const char *ark_strategy_name(ark_strategy_t s);
const char *ark_priority_name(ark_priority_t p);

/* Orders the channels chans[0..n-1] for one request.
 * order receives the indices of the channels to try, best first, and
 * *norder their number; skip[i] (may be NULL) says why channel i is not
 * in order. stream selects time-to-first-byte latencies. seed feeds the
 * `weighted` draw. Returns *norder. */
int ark_route_order(int *order, int *norder, ark_route_skip_t *skip,
                    const ark_route_chan_t *chans, int n,
                    ark_strategy_t strategy, const ark_weights_t *w,
                    const apr_array_header_t *required_tags, int stream,
                    uint64_t seed);

/* The score a channel gets under `score` (exposed for tests and the
 * status page); candidates are the compliant, admissible channels the
 * minima are taken over. */
double ark_route_score(const ark_route_chan_t *c,
                       const ark_route_chan_t *chans, const int *cand,
                       int ncand, const ark_weights_t *w, int stream);

#endif /* ARK_ROUTE_H */
