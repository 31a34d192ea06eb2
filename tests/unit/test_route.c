/* Unit tests for routing (ark_route.c): compliance tags, strategy and
 * priority names, and ark_route_order for every strategy, with its
 * filters (compliance, open circuits, connection caps) and the score of
 * the worked example in ark_route.h.
 *
 * Channels are described directly as ark_route_chan_t: a view as
 * ark_sig_view would fill it, so no shared memory is involved.
 */
#include <string.h>
#include <math.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "ark_route.h"
#include "ark_testutil.h"

#define MAXCH 8

static const ark_weights_t weights_high = ARK_WEIGHTS_HIGH;
static const ark_weights_t weights_normal = ARK_WEIGHTS_NORMAL;
static const ark_weights_t weights_low = ARK_WEIGHTS_LOW;

/* A healthy, unmeasured, untagged, uncapped channel of the given cost. */
static ark_route_chan_t chan(double cost)
{
    ark_route_chan_t c;

    memset(&c, 0, sizeof(c));
    c.cost = cost;
    c.weight = 1;
    c.view.circuit = ARK_CIRCUIT_CLOSED;
    c.view.admissible = 1;
    c.view.p95_ttfb_ms = -1;
    c.view.p95_total_ms = -1;
    c.view.success_ratio = -1;
    return c;
}

static apr_array_header_t *tags(const char *spec, apr_pool_t *p)
{
    apr_array_header_t *t = NULL;
    const char *err = ark_tags_parse(&t, spec, p);

    if (err) {
        fail_msg("tags '%s': %s", spec, err);
    }
    return t;
}

/* Orders chans and checks the order against want[0..nwant-1]. */
static void expect_order(const ark_route_chan_t *chans, int n,
                         ark_strategy_t strategy, const ark_weights_t *w,
                         const apr_array_header_t *required, int stream,
                         const int *want, int nwant)
{
    int order[MAXCH], norder = -1, i, rc;

    memset(order, 0xff, sizeof(order));
    rc = ark_route_order(order, &norder, NULL, chans, n, strategy, w,
                         required, stream, 42);
    assert_int_equal(rc, norder);
    if (norder != nwant) {
        fail_msg("%s: %d channels ordered, want %d",
                 ark_strategy_name(strategy), norder, nwant);
    }
    for (i = 0; i < nwant; i++) {
        if (order[i] != want[i]) {
            fail_msg("%s: position %d is channel %d, want %d",
                     ark_strategy_name(strategy), i, order[i], want[i]);
        }
    }
}

/* ---------------------------------------------------------------- tags */

static void tags_parse_valid(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *t = NULL;
    char spec[] = "region=eu,tier=official";
    ark_tag_t *tag;

    assert_null(ark_tags_parse(&t, spec, p));
    assert_non_null(t);
    assert_int_equal(t->nelts, 2);
    tag = &APR_ARRAY_IDX(t, 0, ark_tag_t);
    assert_string_equal(tag->key, "region");
    assert_string_equal(tag->value, "eu");
    tag = &APR_ARRAY_IDX(t, 1, ark_tag_t);
    assert_string_equal(tag->key, "tier");
    assert_string_equal(tag->value, "official");
    /* the spec is copied, not cut up */
    assert_string_equal(spec, "region=eu,tier=official");
    spec[7] = 'X';
    assert_string_equal(APR_ARRAY_IDX(t, 0, ark_tag_t).value, "eu");

    /* every allowed character; a key may repeat; split at the first '=' */
    t = tags("a.b_c-d:e/f9=Z.y_x-w:v/u0,region=eu,region=us", p);
    assert_int_equal(t->nelts, 3);
    assert_string_equal(APR_ARRAY_IDX(t, 0, ark_tag_t).key, "a.b_c-d:e/f9");
    assert_string_equal(APR_ARRAY_IDX(t, 0, ark_tag_t).value,
                        "Z.y_x-w:v/u0");
    assert_string_equal(APR_ARRAY_IDX(t, 1, ark_tag_t).key, "region");
    assert_string_equal(APR_ARRAY_IDX(t, 1, ark_tag_t).value, "eu");
    assert_string_equal(APR_ARRAY_IDX(t, 2, ark_tag_t).key, "region");
    assert_string_equal(APR_ARRAY_IDX(t, 2, ark_tag_t).value, "us");
    t = tags("k=v", p);
    assert_int_equal(t->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(t, 0, ark_tag_t).key, "k");
    assert_string_equal(APR_ARRAY_IDX(t, 0, ark_tag_t).value, "v");
}

static void tags_parse_errors(void **state)
{
    static const struct {
        const char *spec;
        const char *want;
    } cases[] = {
        { "region", "tag 1 is not key=value" },
        { "=eu", "tag 1 is not key=value" },
        { "region=", "tag 1 is not key=value" },
        { "", "tag 1 is not key=value" },
        { ",region=eu", "tag 1 is not key=value" },
        { "region=eu,tier", "tag 2 is not key=value" },
        { "region=eu,=x", "tag 2 is not key=value" },
        { "region=eu,", "tag 2 is not key=value" },
        { "region=eu,,tier=x", "tag 2 is not key=value" },
        { "reg ion=eu", "tag 1: its key has a character other than "
                        "A-Z a-z 0-9 . _ - : /" },
        { "region=e u", "tag 1: its value has a character other than "
                        "A-Z a-z 0-9 . _ - : /" },
        { "region=eu=x", "tag 1: its value has a character other than "
                         "A-Z a-z 0-9 . _ - : /" },
        { "r\xc3\xa9gion=eu", "tag 1: its key has a character other "
                              "than A-Z a-z 0-9 . _ - : /" },
        { "region=eu;us", "tag 1: its value has a character other than "
                          "A-Z a-z 0-9 . _ - : /" },
        { "ok=1,bad*=2", "tag 2: its key has a character other than "
                         "A-Z a-z 0-9 . _ - : /" },
        /* the message never quotes the tag: a value may be anything */
        { "region=eu,note=sk-live Zx81kQ2m", "tag 2: its value has a "
          "character other than A-Z a-z 0-9 . _ - : /" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_array_header_t *sentinel = apr_array_make(p, 1, 1), *t;
        const char *err;

        t = sentinel;
        err = ark_tags_parse(&t, cases[i].spec, p);
        if (!err || strcmp(err, cases[i].want)) {
            fail_msg("'%s': got '%s'", cases[i].spec, err ? err : "(null)");
        }
        /* nothing is returned with an error */
        assert_ptr_equal(t, sentinel);
    }
}

static void tags_satisfy_rules(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *eu = tags("region=eu,tier=official", p);
    apr_array_header_t *us = tags("region=us", p);
    apr_array_header_t *none = apr_array_make(p, 1, sizeof(ark_tag_t));

    /* no requirement: anything, even no tags */
    assert_true(ark_tags_satisfy(eu, NULL));
    assert_true(ark_tags_satisfy(NULL, NULL));
    assert_true(ark_tags_satisfy(none, none));
    assert_true(ark_tags_satisfy(NULL, none));

    /* one key, one value */
    assert_true(ark_tags_satisfy(eu, tags("region=eu", p)));
    assert_false(ark_tags_satisfy(us, tags("region=eu", p)));
    /* values are compared exactly */
    assert_false(ark_tags_satisfy(eu, tags("region=EU", p)));
    assert_false(ark_tags_satisfy(eu, tags("region=e", p)));
    assert_false(ark_tags_satisfy(tags("region=eu-west", p),
                                  tags("region=eu", p)));

    /* one key, alternatives */
    assert_true(ark_tags_satisfy(eu, tags("region=eu,region=us", p)));
    assert_true(ark_tags_satisfy(us, tags("region=eu,region=us", p)));
    assert_false(ark_tags_satisfy(tags("region=cn", p),
                                  tags("region=eu,region=us", p)));

    /* two keys: both must hold */
    assert_true(ark_tags_satisfy(eu, tags("region=eu,tier=official", p)));
    assert_true(ark_tags_satisfy(eu, tags("tier=official,region=us,"
                                          "region=eu", p)));
    assert_false(ark_tags_satisfy(eu, tags("region=eu,tier=reseller", p)));
    assert_false(ark_tags_satisfy(us, tags("region=us,tier=official", p)));

    /* a channel missing the key, or without tags */
    assert_false(ark_tags_satisfy(us, tags("tier=official", p)));
    assert_false(ark_tags_satisfy(none, tags("region=eu", p)));
    assert_false(ark_tags_satisfy(NULL, tags("region=eu", p)));

    /* tags the key does not ask about do not matter */
    assert_true(ark_tags_satisfy(tags("region=eu,tier=official,gpu=h100,"
                                      "zdr=yes", p),
                                 tags("zdr=yes", p)));
    /* a channel holding two values of a key satisfies either */
    assert_true(ark_tags_satisfy(tags("region=eu,region=us", p),
                                 tags("region=us", p)));
}

/* --------------------------------------------------------------- names */

static void strategy_and_priority_names(void **state)
{
    static const char *const strategies[] = {
        "score", "fallback", "weighted", "least-latency", "cost",
    };
    static const char *const priorities[] = { "high", "normal", "low" };
    int i;

    (void)state;
    assert_int_equal(ark_strategy_parse("score"), ARK_STRATEGY_SCORE);
    assert_int_equal(ark_strategy_parse("fallback"), ARK_STRATEGY_FALLBACK);
    assert_int_equal(ark_strategy_parse("weighted"), ARK_STRATEGY_WEIGHTED);
    assert_int_equal(ark_strategy_parse("least-latency"),
                     ARK_STRATEGY_LEAST_LATENCY);
    assert_int_equal(ark_strategy_parse("cost"), ARK_STRATEGY_COST);
    for (i = 0; i < 5; i++) {
        assert_string_equal(ark_strategy_name((ark_strategy_t)i),
                            strategies[i]);
        assert_int_equal(ark_strategy_parse(strategies[i]), i);
    }
    assert_int_equal(ark_strategy_parse("Score"), -1);
    assert_int_equal(ark_strategy_parse("least_latency"), -1);
    assert_int_equal(ark_strategy_parse("random"), -1);
    assert_int_equal(ark_strategy_parse(""), -1);
    assert_int_equal(ark_strategy_parse(NULL), -1);
    assert_string_equal(ark_strategy_name((ark_strategy_t)5), "?");
    assert_string_equal(ark_strategy_name((ark_strategy_t)-1), "?");

    assert_int_equal(ark_priority_parse("high"), ARK_PRIO_HIGH);
    assert_int_equal(ark_priority_parse("normal"), ARK_PRIO_NORMAL);
    assert_int_equal(ark_priority_parse("low"), ARK_PRIO_LOW);
    for (i = 0; i < ARK_PRIO_COUNT; i++) {
        assert_string_equal(ark_priority_name((ark_priority_t)i),
                            priorities[i]);
    }
    assert_int_equal(ark_priority_parse("HIGH"), -1);
    assert_int_equal(ark_priority_parse("urgent"), -1);
    assert_int_equal(ark_priority_parse(""), -1);
    assert_int_equal(ark_priority_parse(NULL), -1);
    assert_string_equal(ark_priority_name(ARK_PRIO_COUNT), "?");
}

/* ---------------------------------------------------------- strategies */

static void order_fallback(void **state)
{
    ark_route_chan_t c[4];
    static const int all[] = { 0, 1, 2, 3 }, some[] = { 0, 2, 3 };

    (void)state;
    /* whatever their cost, latency and reliability */
    c[0] = chan(9);
    c[1] = chan(1);
    c[2] = chan(5);
    c[3] = chan(0.1);
    c[0].view.p95_total_ms = 5000;
    c[0].view.ewma_total_ms = 5000;
    c[0].view.success_ratio = 0.1;
    c[3].view.p95_total_ms = 10;
    expect_order(c, 4, ARK_STRATEGY_FALLBACK, &weights_normal, NULL, 0, all,
                 4);
    c[1].view.admissible = 0;
    expect_order(c, 4, ARK_STRATEGY_FALLBACK, &weights_normal, NULL, 1, some,
                 3);
}

static void order_cost(void **state)
{
    ark_route_chan_t c[6];
    static const int want[] = { 4, 1, 3, 5, 2, 0 };

    (void)state;
    c[0] = chan(3);
    c[1] = chan(1);
    c[2] = chan(2);
    c[3] = chan(1);
    c[4] = chan(0.5);
    c[5] = chan(1);
    /* latency does not matter */
    c[1].view.ewma_total_ms = 9000;
    c[0].view.ewma_total_ms = 1;
    /* cheapest first; 1, 3 and 5 tie and keep their configured order */
    expect_order(c, 6, ARK_STRATEGY_COST, &weights_normal, NULL, 0, want, 6);
}

static void order_least_latency(void **state)
{
    ark_route_chan_t c[5];
    static const int whole[] = { 2, 4, 1, 3, 0 };
    static const int first_byte[] = { 2, 4, 3, 0, 1 };

    (void)state;
    c[0] = chan(1);
    c[0].view.ewma_total_ms = 300;
    c[0].view.ewma_ttfb_ms = 50;
    c[1] = chan(1);
    c[1].view.ewma_total_ms = 100;
    c[1].view.ewma_ttfb_ms = 200;
    c[2] = chan(1);                   /* never measured */
    c[3] = chan(1);
    c[3].view.ewma_total_ms = 200;
    c[3].view.ewma_ttfb_ms = 10;
    c[4] = chan(1);                   /* never measured either */
    /* the P95 is not what this strategy looks at */
    c[0].view.p95_total_ms = c[0].view.p95_ttfb_ms = 1;
    c[1].view.p95_total_ms = c[1].view.p95_ttfb_ms = 9999;

    /* unmeasured first (in configured order), then by EWMA: the total
     * for whole answers, the time to first byte for streams */
    expect_order(c, 5, ARK_STRATEGY_LEAST_LATENCY, &weights_normal, NULL, 0,
                 whole, 5);
    expect_order(c, 5, ARK_STRATEGY_LEAST_LATENCY, &weights_normal, NULL, 1,
                 first_byte, 5);
}

/* Orders chans with `weighted` for seed; checks the order is a
 * permutation of the candidates. Returns the first pick. */
static int weighted_order(int *order, const ark_route_chan_t *c, int n,
                          int ncand, uint64_t seed)
{
    int norder = -1, seen[MAXCH] = { 0 }, i;

    ark_route_order(order, &norder, NULL, c, n, ARK_STRATEGY_WEIGHTED,
                    &weights_normal, NULL, 0, seed);
    assert_int_equal(norder, ncand);
    for (i = 0; i < norder; i++) {
        assert_in_range(order[i], 0, n - 1);
        assert_int_equal(seen[order[i]], 0);
        seen[order[i]] = 1;
    }
    return order[0];
}

static void order_weighted_reproducible(void **state)
{
    ark_route_chan_t c[5];
    int a[MAXCH], b[MAXCH], i, firsts[5] = { 0 };
    uint64_t seed;

    (void)state;
    for (i = 0; i < 5; i++) {
        c[i] = chan(1);
        c[i].weight = (unsigned)(i + 1);
    }
    for (seed = 0; seed < 200; seed++) {
        weighted_order(a, c, 5, 5, seed * 7919 + 1);
        weighted_order(b, c, 5, 5, seed * 7919 + 1);
        assert_memory_equal(a, b, sizeof(int) * 5);
        firsts[a[0]]++;
    }
    /* different seeds, different draws: every channel leads sometimes */
    for (i = 0; i < 5; i++) {
        assert_true(firsts[i] > 0);
    }
    /* seed 0 is allowed, and also reproducible */
    weighted_order(a, c, 5, 5, 0);
    weighted_order(b, c, 5, 5, 0);
    assert_memory_equal(a, b, sizeof(int) * 5);

    /* an unavailable channel is never drawn */
    c[4].view.admissible = 0;
    for (seed = 1; seed <= 500; seed++) {
        weighted_order(a, c, 5, 4, seed);
        for (i = 0; i < 4; i++) {
            assert_int_not_equal(a[i], 4);
        }
    }
}

/* Over 10000 seeds, the share of first picks must match the weights. */
static void check_proportions(const ark_route_chan_t *c, int n,
                              uint64_t base, uint64_t stride)
{
    int first[MAXCH] = { 0 }, second_given_0[MAXCH] = { 0 }, n0 = 0;
    unsigned int total = 0;
    int order[MAXCH], i;
    uint64_t k;

    for (i = 0; i < n; i++) {
        total += c[i].weight ? c[i].weight : 1;
    }
    for (k = 0; k < 10000; k++) {
        int f = weighted_order(order, c, n, n, base + k * stride);

        first[f]++;
        if (f == 0) {
            second_given_0[order[1]]++;
            n0++;
        }
    }
    for (i = 0; i < n; i++) {
        double want = (double)(c[i].weight ? c[i].weight : 1) / total;
        double got = first[i] / 10000.0;

        if (fabs(got - want) > 0.02) {
            fail_msg("channel %d (weight %u) first in %.3f of draws, want "
                     "%.3f (seeds %llu + k * %llu)", i, c[i].weight, got,
                     want, (unsigned long long)base,
                     (unsigned long long)stride);
        }
    }
    /* without replacement: after channel 0, the others by their weights
     * among themselves */
    for (i = 1; i < n; i++) {
        double want = (double)(c[i].weight ? c[i].weight : 1)
                      / (total - (c[0].weight ? c[0].weight : 1));
        double got = (double)second_given_0[i] / n0;

        if (fabs(got - want) > 0.05) {
            fail_msg("channel %d second after 0 in %.3f of draws, want "
                     "%.3f", i, got, want);
        }
    }
    assert_int_equal(second_given_0[0], 0);
}

static void order_weighted_proportional(void **state)
{
    ark_route_chan_t c[4];
    int i;

    (void)state;
    for (i = 0; i < 4; i++) {
        c[i] = chan(1);
        c[i].weight = (unsigned)(i + 1);   /* 10%, 20%, 30%, 40% */
    }
    /* consecutive seeds; times in microseconds; and seeds whose low 16
     * bits never change (an address shifted left, as the gateway mixes
     * into its seed), which a bare xorshift step turned into 20/20/20/40 */
    check_proportions(c, 4, 1, 1);
    check_proportions(c, 4, APR_UINT64_C(1700000000000000), 997);
    check_proportions(c, 4, APR_UINT64_C(0x7f3a12345600) << 16, 1 << 16);

    /* a weight of 0 counts as 1; uneven weights */
    c[0].weight = 0;
    c[1].weight = 1;
    c[2].weight = 8;
    c[3].weight = 90;
    check_proportions(c, 4, 12345, 1);
}

static void order_score_worked_example(void **state)
{
    /* ark_route.h: A costs 0.5 and answers in 500 ms, B costs 10 and
     * answers in 50 ms, both always succeed */
    ark_route_chan_t c[2];
    static const int cand[] = { 0, 1 };
    static const int cheap_first[] = { 0, 1 }, fast_first[] = { 1, 0 };

    (void)state;
    c[0] = chan(0.5);
    c[0].view.p95_total_ms = 500;
    c[0].view.success_ratio = 1.0;
    c[1] = chan(10);
    c[1].view.p95_total_ms = 50;
    c[1].view.success_ratio = 1.0;

    assert_true(fabs(ark_route_score(&c[0], c, cand, 2, &weights_low, 0)
                     - 0.955) < 1e-12);
    assert_true(fabs(ark_route_score(&c[1], c, cand, 2, &weights_low, 0)
                     - 0.240) < 1e-12);
    assert_true(fabs(ark_route_score(&c[0], c, cand, 2, &weights_high, 0)
                     - 0.46) < 1e-12);
    assert_true(fabs(ark_route_score(&c[1], c, cand, 2, &weights_high, 0)
                     - 0.905) < 1e-12);
    /* low priority picks the cheap slow one, high the fast dear one */
    expect_order(c, 2, ARK_STRATEGY_SCORE, &weights_low, NULL, 0,
                 cheap_first, 2);
    expect_order(c, 2, ARK_STRATEGY_SCORE, &weights_high, NULL, 0,
                 fast_first, 2);
    /* normal: A = .4 + .03 + .3 = .73, B = .02 + .3 + .3 = .62 */
    assert_true(fabs(ark_route_score(&c[0], c, cand, 2, &weights_normal, 0)
                     - 0.73) < 1e-12);
    assert_true(fabs(ark_route_score(&c[1], c, cand, 2, &weights_normal, 0)
                     - 0.62) < 1e-12);
    expect_order(c, 2, ARK_STRATEGY_SCORE, &weights_normal, NULL, 0,
                 cheap_first, 2);

    /* streams compare times to first byte: here A is the fast one, so A
     * wins at high priority too */
    c[0].view.p95_ttfb_ms = 20;
    c[1].view.p95_ttfb_ms = 40;
    assert_true(fabs(ark_route_score(&c[0], c, cand, 2, &weights_high, 1)
                     - (0.1 + 0.6 + 0.3)) < 1e-12);
    assert_true(fabs(ark_route_score(&c[1], c, cand, 2, &weights_high, 1)
                     - (0.1 * 0.05 + 0.6 * 0.5 + 0.3)) < 1e-12);
    expect_order(c, 2, ARK_STRATEGY_SCORE, &weights_high, NULL, 1,
                 cheap_first, 2);
    /* the default strategy value is score */
    assert_int_equal(ARK_STRATEGY_SCORE, 0);
}

static void score_values(void **state)
{
    ark_route_chan_t c[4];
    static const int all[] = { 0, 1, 2, 3 };
    const ark_weights_t w = { 0.5, 0.3, 0.2 };
    static const int want[] = { 1, 0, 3, 2 };

    (void)state;
    c[0] = chan(2);          /* unmeasured: latency and ratio count 1 */
    c[1] = chan(1);
    c[1].view.p95_total_ms = 100;
    c[1].view.success_ratio = 0.5;
    c[2] = chan(4);
    c[2].view.p95_total_ms = 400;
    c[2].view.success_ratio = 0.0;
    c[3] = chan(8);
    c[3].view.p95_total_ms = 200;
    c[3].view.success_ratio = 1.0;

    /* cmin 1, lmin 100 */
    assert_true(fabs(ark_route_score(&c[0], c, all, 4, &w, 0)
                     - (0.5 * 0.5 + 0.3 + 0.2)) < 1e-12);
    assert_true(fabs(ark_route_score(&c[1], c, all, 4, &w, 0)
                     - (0.5 + 0.3 + 0.2 * 0.5)) < 1e-12);
    assert_true(fabs(ark_route_score(&c[2], c, all, 4, &w, 0)
                     - (0.5 * 0.25 + 0.3 * 0.25)) < 1e-12);
    assert_true(fabs(ark_route_score(&c[3], c, all, 4, &w, 0)
                     - (0.5 * 0.125 + 0.3 * 0.5 + 0.2)) < 1e-12);
    /* scores: 0 .75, 1 .9, 2 .2, 3 .4125 */
    expect_order(c, 4, ARK_STRATEGY_SCORE, &w, NULL, 0, want, 4);

    /* the minima are over the candidates given: without channel 1,
     * channel 0 is the cheapest and 3 the fastest */
    {
        static const int others[] = { 0, 2, 3 };

        assert_true(fabs(ark_route_score(&c[0], c, others, 3, &w, 0)
                         - (0.5 + 0.3 + 0.2)) < 1e-12);
        assert_true(fabs(ark_route_score(&c[3], c, others, 3, &w, 0)
                         - (0.5 * 0.25 + 0.3 + 0.2)) < 1e-12);
    }
    /* a free channel gets the full cost score, and the others none */
    c[2].cost = 0;
    assert_true(fabs(ark_route_score(&c[2], c, all, 4, &w, 0)
                     - (0.5 + 0.3 * 0.25)) < 1e-12);
    assert_true(fabs(ark_route_score(&c[1], c, all, 4, &w, 0)
                     - (0.3 + 0.2 * 0.5)) < 1e-12);
    /* no measured latency among the candidates: all count as 1 */
    assert_true(fabs(ark_route_score(&c[1], c, all, 4, &w, 1)
                     - (0.3 + 0.2 * 0.5)) < 1e-12);
}

static void order_score_excludes_filtered_from_minima(void **state)
{
    /* a cheaper channel that is not a candidate does not lower the
     * others' cost scores */
    apr_pool_t *p = *state;
    ark_route_chan_t c[3];
    const ark_weights_t costonly = { 1, 0, 0 };
    static const int want[] = { 2, 1 };
    int order[MAXCH], norder;
    ark_route_skip_t skip[3];

    c[0] = chan(0.01);
    c[0].tags = tags("region=us", p);
    c[1] = chan(3);
    c[1].tags = tags("region=eu", p);
    c[2] = chan(2);
    c[2].tags = tags("region=eu", p);
    ark_route_order(order, &norder, skip, c, 3, ARK_STRATEGY_SCORE,
                    &costonly, tags("region=eu", p), 0, 1);
    assert_int_equal(norder, 2);
    assert_memory_equal(order, want, sizeof(want));
    assert_int_equal(skip[0], ARK_ROUTE_NONCOMPLIANT);
    assert_true(fabs(ark_route_score(&c[2], c, want, 2, &costonly, 0) - 1.0)
                < 1e-12);
}

/* ------------------------------------------------------------- filters */

static void filter_compliance_every_strategy(void **state)
{
    apr_pool_t *p = *state;
    ark_route_chan_t c[5];
    apr_array_header_t *req = tags("region=eu,region=ch,zdr=yes", p);
    int s;

    c[0] = chan(1);
    c[0].tags = tags("region=eu,zdr=yes", p);
    c[1] = chan(0.1);                     /* cheapest, but no tags */
    c[2] = chan(2);
    c[2].tags = tags("region=us,zdr=yes", p);
    c[3] = chan(3);
    c[3].tags = tags("region=ch,zdr=yes,tier=official", p);
    c[4] = chan(0.2);
    c[4].tags = tags("region=eu", p);     /* no zdr */
    c[4].view.admissible = 0;            /* and unavailable too */

    for (s = ARK_STRATEGY_SCORE; s <= ARK_STRATEGY_COST; s++) {
        int order[MAXCH], norder = -1, i;
        ark_route_skip_t skip[5];

        memset(skip, 0x7f, sizeof(skip));
        assert_int_equal(ark_route_order(order, &norder, skip, c, 5,
                                         (ark_strategy_t)s, &weights_normal,
                                         req, s % 2, (uint64_t)s),
                         2);
        assert_int_equal(norder, 2);
        for (i = 0; i < norder; i++) {
            if (order[i] != 0 && order[i] != 3) {
                fail_msg("%s ordered non-compliant channel %d",
                         ark_strategy_name((ark_strategy_t)s), order[i]);
            }
        }
        assert_int_not_equal(order[0], order[1]);
        assert_int_equal(skip[0], ARK_ROUTE_OK);
        assert_int_equal(skip[1], ARK_ROUTE_NONCOMPLIANT);
        assert_int_equal(skip[2], ARK_ROUTE_NONCOMPLIANT);
        assert_int_equal(skip[3], ARK_ROUTE_OK);
        /* non-compliance is reported before unavailability */
        assert_int_equal(skip[4], ARK_ROUTE_NONCOMPLIANT);
    }
    /* without a requirement, all the available ones */
    {
        int order[MAXCH], norder = -1;
        ark_route_skip_t skip[5];

        ark_route_order(order, &norder, skip, c, 5, ARK_STRATEGY_COST,
                        &weights_normal, NULL, 0, 0);
        assert_int_equal(norder, 4);
        assert_int_equal(order[0], 1);
        assert_int_equal(skip[4], ARK_ROUTE_UNAVAILABLE);
        assert_int_equal(skip[1], ARK_ROUTE_OK);
    }
}

static void filter_unavailable(void **state)
{
    ark_route_chan_t c[6];
    ark_route_skip_t skip[6];
    int order[MAXCH], norder = -1, s;

    (void)state;
    c[0] = chan(1);
    c[0].view.admissible = 0;             /* circuit open */
    c[0].view.circuit = ARK_CIRCUIT_OPEN;
    c[0].view.retry_at = 12345;
    c[1] = chan(1);
    c[1].max_conns = 2;
    c[1].view.inflight = 2;               /* at its cap */
    c[2] = chan(1);
    c[2].max_conns = 2;
    c[2].view.inflight = 1;               /* below it */
    c[3] = chan(1);
    c[3].view.inflight = 100000;          /* no cap */
    c[4] = chan(1);
    c[4].max_conns = 1;
    c[4].view.inflight = 7;               /* above it */
    c[5] = chan(1);
    c[5].view.circuit = ARK_CIRCUIT_HALF_OPEN;   /* a probe slot free */

    for (s = ARK_STRATEGY_SCORE; s <= ARK_STRATEGY_COST; s++) {
        int i, seen2 = 0, seen3 = 0, seen5 = 0;

        assert_int_equal(ark_route_order(order, &norder, skip, c, 6,
                                         (ark_strategy_t)s, &weights_normal,
                                         NULL, 0, 99),
                         3);
        for (i = 0; i < norder; i++) {
            seen2 += order[i] == 2;
            seen3 += order[i] == 3;
            seen5 += order[i] == 5;
        }
        assert_int_equal(seen2 + seen3 + seen5, 3);
        assert_int_equal(seen2 * seen3 * seen5, 1);
        assert_int_equal(skip[0], ARK_ROUTE_UNAVAILABLE);
        assert_int_equal(skip[1], ARK_ROUTE_UNAVAILABLE);
        assert_int_equal(skip[2], ARK_ROUTE_OK);
        assert_int_equal(skip[3], ARK_ROUTE_OK);
        assert_int_equal(skip[4], ARK_ROUTE_UNAVAILABLE);
        assert_int_equal(skip[5], ARK_ROUTE_OK);
    }
}

static void order_empty(void **state)
{
    ark_route_chan_t c[2];
    ark_route_skip_t skip[2];
    int order[MAXCH], norder = -1, s;

    (void)state;
    for (s = ARK_STRATEGY_SCORE; s <= ARK_STRATEGY_COST; s++) {
        norder = -1;
        assert_int_equal(ark_route_order(order, &norder, NULL, NULL, 0,
                                         (ark_strategy_t)s, &weights_normal,
                                         NULL, s % 2, 1),
                         0);
        assert_int_equal(norder, 0);
    }
    /* everything filtered out */
    c[0] = chan(1);
    c[0].view.admissible = 0;
    c[1] = chan(1);
    c[1].max_conns = 1;
    c[1].view.inflight = 1;
    for (s = ARK_STRATEGY_SCORE; s <= ARK_STRATEGY_COST; s++) {
        norder = -1;
        assert_int_equal(ark_route_order(order, &norder, skip, c, 2,
                                         (ark_strategy_t)s, &weights_low,
                                         NULL, 0, 1),
                         0);
        assert_int_equal(norder, 0);
        assert_int_equal(skip[0], ARK_ROUTE_UNAVAILABLE);
        assert_int_equal(skip[1], ARK_ROUTE_UNAVAILABLE);
    }
    /* a single channel, for every strategy */
    c[0].view.admissible = 1;
    for (s = ARK_STRATEGY_SCORE; s <= ARK_STRATEGY_COST; s++) {
        assert_int_equal(ark_route_order(order, &norder, skip, c, 2,
                                         (ark_strategy_t)s, &weights_low,
                                         NULL, 0, 1),
                         1);
        assert_int_equal(order[0], 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(tags_parse_valid),
        ARK_TEST(tags_parse_errors),
        ARK_TEST(tags_satisfy_rules),
        ARK_TEST(strategy_and_priority_names),
        ARK_TEST(order_fallback),
        ARK_TEST(order_cost),
        ARK_TEST(order_least_latency),
        ARK_TEST(order_weighted_reproducible),
        ARK_TEST(order_weighted_proportional),
        ARK_TEST(order_score_worked_example),
        ARK_TEST(score_values),
        ARK_TEST(order_score_excludes_filtered_from_minima),
        ARK_TEST(filter_compliance_every_strategy),
        ARK_TEST(filter_unavailable),
        ARK_TEST(order_empty),
    };

    return ARK_TEST_RUN("ark_route", tests);
}
