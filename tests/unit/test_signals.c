/* Unit tests for the live per-channel signals (ark_signals.c): latency
 * buckets, EWMA and P95, the sliding success window, the circuit breaker
 * (consecutive failures, error ratio, cool-down, half-open probes), 429
 * cooling, the router's view of a slot, and concurrent updates.
 *
 * Every test works on its own heap-allocated slot and passes explicit
 * times, so nothing depends on the clock. T0 is aligned on a histogram
 * period and on a window slot of every window used here.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>

#include <apr_general.h>

#include "ark_signals.h"
#include "ark_testutil.h"

/* A time far from 0, on a histogram period boundary (60 s) and so on a
 * window slot boundary for windows of 10 s and 60 s. */
#define T0 (ARK_SIG_HIST_PERIOD * APR_INT64_C(400000))
#define SEC(n) apr_time_from_sec(n)
#define MS(n) apr_time_from_msec(n)

static int setup(void **state)
{
    ark_chan_slot_t *s = malloc(sizeof(*s));

    if (!s) {
        return -1;
    }
    memset(s, 0xA5, sizeof(*s));  /* ark_sig_init must clear it all */
    ark_sig_init(s);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* A breaker that only opens on consecutive failures. */
static ark_breaker_conf_t consec_conf(unsigned int failures)
{
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;

    bc.failures = failures;
    bc.error_ratio = 1.0;
    return bc;
}

/* Admits one request (which must be admitted) and ends it. */
static void request(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                    apr_time_t now, ark_outcome_t outcome,
                    apr_interval_time_t ttfb, apr_interval_time_t total)
{
    int probe = -1;

    if (!ark_sig_acquire(s, bc, now, &probe)) {
        fail_msg("request at T0%+" APR_INT64_T_FMT " us not admitted",
                 now - T0);
    }
    ark_sig_release(s, bc, now, probe, outcome, ttfb, total, 0);
}

static void ok_at(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                  apr_time_t now)
{
    request(s, bc, now, ARK_OUTCOME_SUCCESS, MS(100), MS(200));
}

static void fail_at(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                    apr_time_t now)
{
    request(s, bc, now, ARK_OUTCOME_FAILURE, -1, -1);
}

static int admits(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                  apr_time_t now, int *probe)
{
    int dummy;

    return ark_sig_acquire(s, bc, now, probe ? probe : &dummy);
}

static ark_circuit_t state_of(ark_chan_slot_t *s)
{
    return (ark_circuit_t)atomic_load(&s->state);
}

/* ------------------------------------------------------------ buckets */

static void bucket_mapping(void **state)
{
    static const struct {
        apr_interval_time_t us;
        int want;
    } cases[] = {
        { APR_INT64_C(-1000000), 0 }, { -1, 0 }, { 0, 0 }, { 1, 0 },
        { 100, 0 }, { 249, 0 }, { 250, 0 }, { 251, 1 },
        { 297, 1 }, { 298, 2 },              /* 250 * 2^(1/4) = 297.3 */
        { 500, 4 }, { 501, 5 }, { 1000, 8 }, { 2000, 12 },
        { 100000, 35 }, { 1000000, 48 },
        /* bucket 62 ends at 250 * 2^15.5 = 11.585 s; beyond is 63 */
        { APR_INT64_C(11585000), 62 }, { APR_INT64_C(11586000), 63 },
        { APR_INT64_C(60000000), 63 }, { APR_INT64_C(3600000000), 63 },
        { APR_INT64_MAX, 63 },
    };
    apr_interval_time_t us;
    apr_size_t i;
    int prev = 0;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int b = ark_sig_bucket(cases[i].us);

        if (b != cases[i].want) {
            fail_msg("%" APR_INT64_T_FMT " us -> bucket %d, want %d",
                     cases[i].us, b, cases[i].want);
        }
    }
    /* monotonic, never skipping a bucket, clamped to [0, 63] */
    for (us = 1; us < APR_INT64_C(100000000); us += us / 64 + 1) {
        int b = ark_sig_bucket(us);

        assert_in_range(b, 0, ARK_SIG_LAT_BUCKETS - 1);
        if (b < prev || b > prev + 1) {
            fail_msg("%" APR_INT64_T_FMT " us -> bucket %d after %d", us, b,
                     prev);
        }
        prev = b;
    }
    assert_int_equal(prev, ARK_SIG_LAT_BUCKETS - 1);
}

static void bucket_values(void **state)
{
    apr_interval_time_t us;
    int b;

    (void)state;
    assert_true(ark_sig_bucket_value_us(0) == ARK_SIG_LAT_BASE_US);
    for (b = 1; b < ARK_SIG_LAT_BUCKETS; b++) {
        double lo = ARK_SIG_LAT_BASE_US * pow(2.0, (b - 1) / 4.0);
        double hi = ARK_SIG_LAT_BASE_US * pow(2.0, b / 4.0);
        double v = ark_sig_bucket_value_us(b);

        /* the geometric middle of the bucket, which maps back to it */
        assert_true(v > lo && v < hi);
        assert_true(fabs(v - sqrt(lo * hi)) < 1e-9 * v);
        assert_int_equal(ark_sig_bucket((apr_interval_time_t)v), b);
        assert_true(v > ark_sig_bucket_value_us(b - 1));
    }
    /* every latency from the base to the last bounded bucket is stood
     * for within 19% (in fact within 2^(1/8), 9.1%) */
    for (us = ARK_SIG_LAT_BASE_US; us < APR_INT64_C(11585000);
         us += us / 200 + 1) {
        double v = ark_sig_bucket_value_us(ark_sig_bucket(us));
        double ratio = v / (double)us;

        if (ratio > 1.19 || ratio < 1 / 1.19) {
            fail_msg("%" APR_INT64_T_FMT " us stood for by %.1f us", us, v);
        }
        assert_true(ratio <= pow(2.0, 0.125) + 1e-9);
        assert_true(ratio >= pow(2.0, -0.125) - 1e-9);
    }
}

static void circuit_names(void **state)
{
    (void)state;
    assert_string_equal(ark_circuit_name(ARK_CIRCUIT_CLOSED), "closed");
    assert_string_equal(ark_circuit_name(ARK_CIRCUIT_OPEN), "open");
    assert_string_equal(ark_circuit_name(ARK_CIRCUIT_HALF_OPEN),
                        "half-open");
}

/* ----------------------------------------------------------- latency */

static void ewma_converges(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    ark_chan_view_t v;
    int i;

    /* the first sample is taken as it is */
    request(s, &bc, T0, ARK_OUTCOME_SUCCESS, MS(100), MS(400));
    ark_sig_view(s, &bc, T0, &v);
    assert_true(v.ewma_ttfb_ms == 100.0);
    assert_true(v.ewma_total_ms == 400.0);

    /* then each moves it an eighth of the way */
    request(s, &bc, T0, ARK_OUTCOME_SUCCESS, MS(900), MS(0) + 1);
    ark_sig_view(s, &bc, T0, &v);
    assert_true(v.ewma_ttfb_ms == 200.0);
    assert_true(fabs(v.ewma_total_ms - (400.0 - 399.999 / 8)) < 0.001);

    /* a steady latency is reached, to the microsecond's rounding */
    for (i = 0; i < 200; i++) {
        request(s, &bc, T0 + i, ARK_OUTCOME_SUCCESS, MS(50), MS(1500));
    }
    ark_sig_view(s, &bc, T0 + 200, &v);
    assert_true(fabs(v.ewma_ttfb_ms - 50.0) < 0.01);
    assert_true(fabs(v.ewma_total_ms - 1500.0) < 0.01);

    /* unmeasured (-1) and failed requests leave it alone */
    request(s, &bc, T0 + 300, ARK_OUTCOME_SUCCESS, -1, MS(1500));
    request(s, &bc, T0 + 301, ARK_OUTCOME_FAILURE, MS(9000), MS(9000));
    request(s, &bc, T0 + 302, ARK_OUTCOME_NEUTRAL, MS(9000), MS(9000));
    ark_sig_view(s, &bc, T0 + 400, &v);
    assert_true(fabs(v.ewma_ttfb_ms - 50.0) < 0.01);
    assert_true(fabs(v.ewma_total_ms - 1500.0) < 0.01);
}

static void ewma_unmeasured_is_zero(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    ark_chan_view_t v;

    /* a non-streamed request has a total but no first byte time */
    request(s, &bc, T0, ARK_OUTCOME_SUCCESS, -1, MS(30));
    ark_sig_view(s, &bc, T0, &v);
    assert_true(v.ewma_ttfb_ms == 0.0);
    assert_true(v.p95_ttfb_ms < 0);
    assert_true(v.ewma_total_ms == 30.0);
    assert_true(v.p95_total_ms > 0);
}

/* P95 estimate in microseconds, as the view reports it. */
static double p95_us(ark_chan_slot_t *s, apr_time_t now, int ttfb)
{
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    ark_chan_view_t v;

    ark_sig_view(s, &bc, now, &v);
    return (ttfb ? v.p95_ttfb_ms : v.p95_total_ms) * 1000.0;
}

static void p95_known_distribution(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    apr_interval_time_t truth = MS(950);
    double est;
    int k;

    assert_true(p95_us(s, T0, 0) < 0);
    assert_true(p95_us(s, T0, 1) < 0);

    /* totals uniform over 1..1000 ms: P95 is 950 ms; first bytes all
     * 20 ms */
    for (k = 1; k <= 1000; k++) {
        request(s, &bc, T0 + k, ARK_OUTCOME_SUCCESS, MS(20), MS(k));
    }
    est = p95_us(s, T0 + SEC(1), 0);
    if (abs(ark_sig_bucket((apr_interval_time_t)est)
            - ark_sig_bucket(truth)) > 1) {
        fail_msg("P95 %.1f ms, truth 950 ms", est / 1000);
    }
    assert_true(est / (double)truth < 1.19 && est / (double)truth > 0.84);
    est = p95_us(s, T0 + SEC(1), 1);
    assert_int_equal(ark_sig_bucket((apr_interval_time_t)est),
                     ark_sig_bucket(MS(20)));
}

static void p95_tail(void **state)
{
    /* 95 fast answers and 5 slow ones: P95 is the fast bucket; one more
     * slow one makes it the slow bucket */
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    int k;

    for (k = 0; k < 95; k++) {
        request(s, &bc, T0 + k, ARK_OUTCOME_SUCCESS, -1, MS(10));
    }
    for (k = 0; k < 5; k++) {
        request(s, &bc, T0 + 100 + k, ARK_OUTCOME_SUCCESS, -1, SEC(2));
    }
    assert_true(p95_us(s, T0 + SEC(1), 0)
                == ark_sig_bucket_value_us(ark_sig_bucket(MS(10))));
    request(s, &bc, T0 + 200, ARK_OUTCOME_SUCCESS, -1, MS(10));
    request(s, &bc, T0 + 201, ARK_OUTCOME_SUCCESS, -1, SEC(2));
    request(s, &bc, T0 + 202, ARK_OUTCOME_SUCCESS, -1, SEC(2));
    /* 96 fast, 7 slow: 96/103 < 95% */
    assert_true(p95_us(s, T0 + SEC(1), 0)
                == ark_sig_bucket_value_us(ark_sig_bucket(SEC(2))));
}

static void p95_forgets_old_periods(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    apr_interval_time_t period = ARK_SIG_HIST_PERIOD;
    double slow = ark_sig_bucket_value_us(ark_sig_bucket(SEC(1)));
    double fast = ark_sig_bucket_value_us(ark_sig_bucket(MS(10)));
    int k;

    /* period E: slow answers; period E+1: fast ones */
    for (k = 0; k < 100; k++) {
        request(s, &bc, T0 + k, ARK_OUTCOME_SUCCESS, SEC(1), SEC(1));
    }
    assert_true(p95_us(s, T0 + period - 1, 0) == slow);
    for (k = 0; k < 100; k++) {
        request(s, &bc, T0 + period + k, ARK_OUTCOME_SUCCESS, MS(10),
                MS(10));
    }
    /* in E+1 both periods count: half are slow */
    assert_true(p95_us(s, T0 + period + SEC(1), 0) == slow);
    assert_true(p95_us(s, T0 + period + SEC(1), 1) == slow);
    /* in E+2 the slow period is two periods old: forgotten */
    assert_true(p95_us(s, T0 + 2 * period, 0) == fast);
    assert_true(p95_us(s, T0 + 2 * period, 1) == fast);
    /* in E+3 nothing is left */
    assert_true(p95_us(s, T0 + 3 * period, 0) < 0);
    assert_true(p95_us(s, T0 + 3 * period, 1) < 0);

    /* recording in E+3 reuses E+1's histogram, emptied first */
    request(s, &bc, T0 + 3 * period, ARK_OUTCOME_SUCCESS, SEC(1), SEC(1));
    assert_true(p95_us(s, T0 + 3 * period, 0) == slow);
    assert_int_equal(atomic_load(&s->hist[(T0 / period + 3) % 2]
                                 .total[ark_sig_bucket(MS(10))]), 0);
}

/* ------------------------------------------------------------- window */

static void view_fields(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    ark_chan_view_t v;
    int p1, p2;

    memset(&v, 0x5A, sizeof(v));
    ark_sig_view(s, &bc, T0, &v);
    assert_int_equal(v.circuit, ARK_CIRCUIT_CLOSED);
    assert_int_equal(v.admissible, 1);
    assert_int_equal(v.retry_at, 0);
    assert_true(v.p95_ttfb_ms < 0);
    assert_true(v.p95_total_ms < 0);
    assert_true(v.ewma_ttfb_ms == 0.0);
    assert_true(v.ewma_total_ms == 0.0);
    assert_true(v.success_ratio < 0);
    assert_int_equal(v.window_requests, 0);
    assert_int_equal(v.inflight, 0);

    assert_true(ark_sig_acquire(s, &bc, T0, &p1));
    assert_true(ark_sig_acquire(s, &bc, T0, &p2));
    assert_int_equal(p1, 0);
    assert_int_equal(p2, 0);
    ark_sig_view(s, &bc, T0, &v);
    assert_int_equal(v.inflight, 2);
    assert_int_equal(v.window_requests, 0);
    ark_sig_release(s, &bc, T0 + 1, p1, ARK_OUTCOME_SUCCESS, MS(5), MS(9),
                    0);
    ark_sig_view(s, &bc, T0 + 1, &v);
    assert_int_equal(v.inflight, 1);
    assert_int_equal(v.window_requests, 1);
    assert_true(v.success_ratio == 1.0);
    ark_sig_release(s, &bc, T0 + 2, p2, ARK_OUTCOME_FAILURE, -1, -1, 0);

    ok_at(s, &bc, T0 + 3);
    ok_at(s, &bc, T0 + 4);
    ark_sig_view(s, &bc, T0 + 5, &v);
    assert_int_equal(v.inflight, 0);
    assert_int_equal(v.window_requests, 4);
    assert_true(v.success_ratio == 0.75);
    assert_int_equal(v.circuit, ARK_CIRCUIT_CLOSED);
    assert_int_equal(v.admissible, 1);
    assert_int_equal(v.retry_at, 0);
    assert_int_equal(atomic_load(&s->requests), 4);
    assert_int_equal(atomic_load(&s->failures), 1);
}

static void window_forgets_old_buckets(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(1000);
    ark_chan_view_t v;

    bc.window = SEC(10);            /* ten slots of one second */
    fail_at(s, &bc, T0);
    fail_at(s, &bc, T0 + MS(999));
    ok_at(s, &bc, T0 + SEC(5));
    ark_sig_view(s, &bc, T0 + SEC(10) - 1, &v);
    assert_int_equal(v.window_requests, 3);
    assert_true(fabs(v.success_ratio - 1.0 / 3) < 1e-12);
    /* the first second leaves the window */
    ark_sig_view(s, &bc, T0 + SEC(10), &v);
    assert_int_equal(v.window_requests, 1);
    assert_true(v.success_ratio == 1.0);
    /* and its slot is reused, emptied, for the new second */
    ok_at(s, &bc, T0 + SEC(10) + MS(500));
    ark_sig_view(s, &bc, T0 + SEC(11), &v);
    assert_int_equal(v.window_requests, 2);
    assert_true(v.success_ratio == 1.0);
    /* everything gone once a whole window has passed */
    ark_sig_view(s, &bc, T0 + SEC(21), &v);
    assert_int_equal(v.window_requests, 0);
    assert_true(v.success_ratio < 0);
    /* lifetime counters are not windowed */
    assert_int_equal(atomic_load(&s->requests), 4);
    assert_int_equal(atomic_load(&s->failures), 2);
}

/* ------------------------------------------------------------ breaker */

static void breaker_consecutive_failures(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(3);
    ark_chan_view_t v;

    fail_at(s, &bc, T0);
    fail_at(s, &bc, T0 + 1);
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    assert_int_equal(atomic_load(&s->opens), 0);
    assert_true(admits(s, &bc, T0 + 2, NULL));
    ark_sig_release(s, &bc, T0 + 2, 0, ARK_OUTCOME_FAILURE, -1, -1, 0);
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
    assert_int_equal(atomic_load(&s->opens), 1);
    assert_int_equal(atomic_load(&s->open_until), T0 + 2 + bc.cooldown);
    assert_false(admits(s, &bc, T0 + 3, NULL));
    ark_sig_view(s, &bc, T0 + 3, &v);
    assert_int_equal(v.circuit, ARK_CIRCUIT_OPEN);
    assert_int_equal(v.admissible, 0);
    assert_int_equal(v.retry_at, T0 + 2 + bc.cooldown);
    assert_int_equal(v.inflight, 0);
}

static void breaker_success_resets_consecutive(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(3);

    fail_at(s, &bc, T0);
    fail_at(s, &bc, T0 + 1);
    ok_at(s, &bc, T0 + 2);
    assert_int_equal(atomic_load(&s->consec_fail), 0);
    fail_at(s, &bc, T0 + 3);
    fail_at(s, &bc, T0 + 4);
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    fail_at(s, &bc, T0 + 5);
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
}

static void breaker_error_ratio(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(1000);
    int k;

    bc.error_ratio = 0.5;
    bc.min_requests = 10;
    /* 5 of 9 failed, above the ratio, but fewer than min_requests */
    for (k = 0; k < 5; k++) {
        fail_at(s, &bc, T0 + k);
    }
    for (k = 0; k < 4; k++) {
        ok_at(s, &bc, T0 + 10 + k);
    }
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    /* the tenth, a failure: 6 of 10 */
    fail_at(s, &bc, T0 + 20);
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
    assert_int_equal(atomic_load(&s->opens), 1);
    assert_int_equal(atomic_load(&s->open_until), T0 + 20 + bc.cooldown);
}

static void breaker_error_ratio_is_strict(void **state)
{
    /* exactly the ratio does not open; above it does */
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(1000);
    int k;

    bc.error_ratio = 0.5;
    bc.min_requests = 10;
    for (k = 0; k < 5; k++) {
        ok_at(s, &bc, T0 + k);
    }
    for (k = 0; k < 5; k++) {
        fail_at(s, &bc, T0 + 10 + k);
    }
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    fail_at(s, &bc, T0 + 20);
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
}

static void breaker_ratio_disabled_and_windowed(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(1000);
    int k;

    /* error-ratio=1 disables the rule: 20 failures of 20 stay closed */
    bc.min_requests = 1;
    for (k = 0; k < 20; k++) {
        fail_at(s, &bc, T0 + k);
    }
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);

    /* the tenth failure within the window opens it ... */
    ark_sig_init(s);
    bc.error_ratio = 0.5;
    bc.min_requests = 10;
    bc.window = SEC(10);
    for (k = 0; k < 9; k++) {
        fail_at(s, &bc, T0 + k);
    }
    fail_at(s, &bc, T0 + SEC(10) - 1);
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);

    /* ... but not once the first nine have left the window */
    ark_sig_init(s);
    for (k = 0; k < 9; k++) {
        fail_at(s, &bc, T0 + k);
    }
    fail_at(s, &bc, T0 + SEC(11));
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    assert_int_equal(atomic_load(&s->failures), 10);
}

static void breaker_cooldown_then_half_open(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(1);
    apr_time_t until = T0 + bc.cooldown;
    ark_chan_view_t v;
    int probe = -1;

    fail_at(s, &bc, T0);
    assert_false(admits(s, &bc, T0, &probe));
    assert_int_equal(probe, 0);
    assert_false(admits(s, &bc, until - 1, &probe));
    assert_int_equal(atomic_load(&s->inflight), 0);
    assert_int_equal(atomic_load(&s->requests), 1);
    ark_sig_view(s, &bc, until - 1, &v);
    assert_int_equal(v.admissible, 0);
    assert_int_equal(v.retry_at, until);

    /* the view says admissible once the cool-down is over, before
     * anyone asked */
    ark_sig_view(s, &bc, until, &v);
    assert_int_equal(v.admissible, 1);
    assert_int_equal(v.circuit, ARK_CIRCUIT_OPEN);

    assert_true(admits(s, &bc, until, &probe));
    assert_int_equal(probe, 1);
    assert_int_equal(state_of(s), ARK_CIRCUIT_HALF_OPEN);
    assert_int_equal(atomic_load(&s->inflight), 1);
}

static void breaker_half_open_probes(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(1);
    apr_time_t t = T0 + bc.cooldown;
    ark_chan_view_t v;
    int p[4], k;

    bc.probes = 3;
    fail_at(s, &bc, T0);
    for (k = 0; k < 3; k++) {
        p[k] = -1;
        assert_true(admits(s, &bc, t + k, &p[k]));
        assert_int_equal(p[k], 1);
    }
    assert_false(admits(s, &bc, t + 3, &p[3]));
    assert_int_equal(atomic_load(&s->probes), 3);
    assert_int_equal(atomic_load(&s->inflight), 3);
    ark_sig_view(s, &bc, t + 3, &v);
    assert_int_equal(v.circuit, ARK_CIRCUIT_HALF_OPEN);
    assert_int_equal(v.admissible, 0);
    assert_int_equal(v.retry_at, t + 3 + SEC(1));
    assert_int_equal(v.inflight, 3);

    /* a neutral end frees its probe slot and decides nothing */
    ark_sig_release(s, &bc, t + 4, p[0], ARK_OUTCOME_NEUTRAL, -1, -1, 0);
    assert_int_equal(state_of(s), ARK_CIRCUIT_HALF_OPEN);
    assert_true(admits(s, &bc, t + 5, &p[0]));
    assert_int_equal(p[0], 1);
    assert_false(admits(s, &bc, t + 5, &p[3]));

    /* a probe's success closes the circuit: no more probes, no limit */
    ark_sig_release(s, &bc, t + 6, p[1], ARK_OUTCOME_SUCCESS, MS(10),
                    MS(20), 0);
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    assert_int_equal(atomic_load(&s->consec_fail), 0);
    for (k = 0; k < 10; k++) {
        int q = -1;

        assert_true(admits(s, &bc, t + 7, &q));
        assert_int_equal(q, 0);
    }
    /* the other probes come back: their slots are released */
    ark_sig_release(s, &bc, t + 8, p[0], ARK_OUTCOME_SUCCESS, -1, -1, 0);
    ark_sig_release(s, &bc, t + 8, p[2], ARK_OUTCOME_SUCCESS, -1, -1, 0);
    assert_int_equal(atomic_load(&s->probes), 0);
    assert_int_equal(atomic_load(&s->inflight), 10);
    assert_int_equal(atomic_load(&s->opens), 1);
}

static void breaker_probe_failure_reopens(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(5);
    apr_time_t t1, t2;
    int k, probe = -1;

    for (k = 0; k < 5; k++) {
        fail_at(s, &bc, T0 + k);
    }
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
    assert_int_equal(atomic_load(&s->opens), 1);

    /* one failed probe is enough to re-open, for a new cool-down from
     * when it failed */
    t1 = T0 + 4 + bc.cooldown;
    assert_true(admits(s, &bc, t1, &probe));
    assert_int_equal(probe, 1);
    t2 = t1 + SEC(7);
    ark_sig_release(s, &bc, t2, probe, ARK_OUTCOME_FAILURE, -1, -1, 0);
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
    assert_int_equal(atomic_load(&s->opens), 2);
    assert_int_equal(atomic_load(&s->open_until), t2 + bc.cooldown);
    assert_int_equal(atomic_load(&s->probes), 0);
    assert_false(admits(s, &bc, t2 + bc.cooldown - 1, &probe));

    /* and then a successful probe closes it */
    assert_true(admits(s, &bc, t2 + bc.cooldown, &probe));
    assert_int_equal(probe, 1);
    ark_sig_release(s, &bc, t2 + bc.cooldown + 1, probe,
                    ARK_OUTCOME_SUCCESS, -1, MS(300), 0);
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    assert_int_equal(atomic_load(&s->opens), 2);
    assert_int_equal(atomic_load(&s->inflight), 0);
}

static void breaker_close_forgets_old_failures(void **state)
{
    /* the failures that opened the circuit are still in the window when
     * a probe closes it; they must not re-open it at the next failure */
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    static const char seq[] = "offoffofof";   /* 6 of 10 fail, never 5 in
                                                * a row */
    ark_chan_view_t v;
    apr_time_t t;
    int k, probe;

    for (k = 0; seq[k]; k++) {
        if (seq[k] == 'o') {
            ok_at(s, &bc, T0 + k);
        }
        else {
            fail_at(s, &bc, T0 + k);
        }
    }
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
    t = T0 + 9 + bc.cooldown;
    assert_true(admits(s, &bc, t, &probe));
    assert_int_equal(probe, 1);
    ark_sig_release(s, &bc, t, probe, ARK_OUTCOME_SUCCESS, -1, MS(40), 0);
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    /* the window holds the probe's success only */
    ark_sig_view(s, &bc, t, &v);
    assert_int_equal(v.window_requests, 1);
    assert_true(v.success_ratio == 1.0);

    /* one failure a second later: 1 of 2, under min_requests */
    fail_at(s, &bc, t + SEC(1));
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    assert_int_equal(atomic_load(&s->opens), 1);
    /* the lifetime counters keep everything */
    assert_int_equal(atomic_load(&s->requests), 12);
    assert_int_equal(atomic_load(&s->failures), 7);

    /* a success while closed does not empty the window */
    ok_at(s, &bc, t + SEC(2));
    ark_sig_view(s, &bc, t + SEC(2), &v);
    assert_int_equal(v.window_requests, 3);
}

static void breaker_opens_counter(void **state)
{
    /* failures of requests admitted before the circuit opened extend the
     * cool-down but are not new openings */
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(2);
    int p[4], k;

    for (k = 0; k < 4; k++) {
        assert_true(admits(s, &bc, T0, &p[k]));
    }
    ark_sig_release(s, &bc, T0 + 1, p[0], ARK_OUTCOME_FAILURE, -1, -1, 0);
    ark_sig_release(s, &bc, T0 + 2, p[1], ARK_OUTCOME_FAILURE, -1, -1, 0);
    assert_int_equal(atomic_load(&s->opens), 1);
    ark_sig_release(s, &bc, T0 + 3, p[2], ARK_OUTCOME_FAILURE, -1, -1, 0);
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
    assert_int_equal(atomic_load(&s->opens), 1);
    assert_int_equal(atomic_load(&s->open_until), T0 + 3 + bc.cooldown);
    ark_sig_release(s, &bc, T0 + 4, p[3], ARK_OUTCOME_NEUTRAL, -1, -1, 0);
    assert_int_equal(atomic_load(&s->opens), 1);
    assert_int_equal(atomic_load(&s->inflight), 0);
    assert_int_equal(atomic_load(&s->failures), 3);

    /* each later opening counts */
    for (k = 0; k < 3; k++) {
        apr_time_t t = atomic_load(&s->open_until);

        assert_true(admits(s, &bc, t, &p[0]));
        assert_int_equal(p[0], 1);
        ark_sig_release(s, &bc, t, p[0], ARK_OUTCOME_FAILURE, -1, -1, 0);
        assert_int_equal(atomic_load(&s->opens), 2 + k);
    }
}

/* ------------------------------------------------------------ cooling */

static void cooling_after_429(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    ark_chan_view_t v;
    int probe;

    /* the gateway ends a 429 as neutral with the Retry-After */
    assert_true(admits(s, &bc, T0, &probe));
    ark_sig_release(s, &bc, T0 + 5, probe, ARK_OUTCOME_NEUTRAL, -1, -1,
                    SEC(10));
    assert_false(admits(s, &bc, T0 + 5, &probe));
    assert_false(admits(s, &bc, T0 + 5 + SEC(10) - 1, &probe));
    ark_sig_view(s, &bc, T0 + SEC(5), &v);
    assert_int_equal(v.circuit, ARK_CIRCUIT_CLOSED);
    assert_int_equal(v.admissible, 0);
    assert_int_equal(v.retry_at, T0 + 5 + SEC(10));
    assert_int_equal(v.window_requests, 0);
    assert_int_equal(atomic_load(&s->opens), 0);
    assert_int_equal(atomic_load(&s->failures), 0);
    assert_int_equal(atomic_load(&s->requests), 1);

    assert_true(admits(s, &bc, T0 + 5 + SEC(10), &probe));
    assert_int_equal(probe, 0);
    ark_sig_view(s, &bc, T0 + 5 + SEC(10), &v);
    assert_int_equal(v.admissible, 1);
    assert_int_equal(v.retry_at, 0);
}

static void cooling_failure_counts_once(void **state)
{
    /* a 429 ended as a failure cools and counts one failure, no more */
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(2);
    int probe;

    assert_true(admits(s, &bc, T0, &probe));
    ark_sig_release(s, &bc, T0, probe, ARK_OUTCOME_FAILURE, -1, -1, SEC(3));
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    assert_int_equal(atomic_load(&s->consec_fail), 1);
    assert_int_equal(atomic_load(&s->cool_until), T0 + SEC(3));
    assert_false(admits(s, &bc, T0 + SEC(3) - 1, &probe));
    assert_true(admits(s, &bc, T0 + SEC(3), &probe));
}

static void cooling_and_open(void **state)
{
    /* cooling longer than the cool-down: retry_at is the later of both */
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = consec_conf(1);
    ark_chan_view_t v;
    int probe;

    assert_true(admits(s, &bc, T0, &probe));
    ark_sig_release(s, &bc, T0, probe, ARK_OUTCOME_FAILURE, -1, -1,
                    bc.cooldown + SEC(30));
    ark_sig_view(s, &bc, T0 + 1, &v);
    assert_int_equal(v.circuit, ARK_CIRCUIT_OPEN);
    assert_int_equal(v.admissible, 0);
    assert_int_equal(v.retry_at, T0 + bc.cooldown + SEC(30));
    assert_false(admits(s, &bc, T0 + bc.cooldown, &probe));
    /* refused while cooling: the circuit did not move to half-open */
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
    assert_true(admits(s, &bc, T0 + bc.cooldown + SEC(30), &probe));
    assert_int_equal(probe, 1);
}

/* ------------------------------------------------------------ neutral */

static void neutral_changes_only_inflight(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_chan_slot_t *before = malloc(sizeof(*before));
    ark_breaker_conf_t bc = consec_conf(3);
    int probe;

    assert_non_null(before);
    /* some history: a success, two failures */
    ok_at(s, &bc, T0);
    fail_at(s, &bc, T0 + 1);
    fail_at(s, &bc, T0 + 2);

    assert_true(admits(s, &bc, T0 + 3, &probe));
    memcpy(before, s, sizeof(*s));
    atomic_fetch_sub(&before->inflight, 1);
    ark_sig_release(s, &bc, T0 + SEC(1), probe, ARK_OUTCOME_NEUTRAL,
                    MS(10), MS(20), 0);
    assert_memory_equal(before, s, sizeof(*s));

    /* the same in the half-open phase: the probe slot is given back */
    fail_at(s, &bc, T0 + 4);
    assert_int_equal(state_of(s), ARK_CIRCUIT_OPEN);
    assert_true(admits(s, &bc, T0 + 4 + bc.cooldown, &probe));
    assert_int_equal(probe, 1);
    memcpy(before, s, sizeof(*s));
    atomic_fetch_sub(&before->inflight, 1);
    atomic_fetch_sub(&before->probes, 1);
    ark_sig_release(s, &bc, T0 + 5 + bc.cooldown, probe,
                    ARK_OUTCOME_NEUTRAL, MS(10), MS(20), 0);
    assert_memory_equal(before, s, sizeof(*s));
    assert_int_equal(state_of(s), ARK_CIRCUIT_HALF_OPEN);
    free(before);
}

/* -------------------------------------------------------- concurrency */

#define THREADS 4
#define PER_THREAD 100000

typedef struct {
    ark_chan_slot_t *s;
    const ark_breaker_conf_t *bc;
    int admitted;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    int i;

    for (i = 0; i < PER_THREAD; i++) {
        int probe;

        if (ark_sig_acquire(w->s, w->bc, T0 + SEC(1), &probe)) {
            w->admitted++;
            ark_sig_release(w->s, w->bc, T0 + SEC(1), probe,
                            ARK_OUTCOME_SUCCESS, 500 + i % 1000,
                            2000 + i % 5000, 0);
        }
    }
    return NULL;
}

static void concurrent_acquire_release(void **state)
{
    ark_chan_slot_t *s = *state;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    pthread_t th[THREADS];
    worker_t w[THREADS];
    ark_chan_view_t v;
    uint64_t hist = 0;
    int i;

    /* one request first, so that no bucket rotates during the race */
    ok_at(s, &bc, T0 + SEC(1));
    for (i = 0; i < THREADS; i++) {
        w[i].s = s;
        w[i].bc = &bc;
        w[i].admitted = 0;
        assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].admitted, PER_THREAD);
    }
    assert_int_equal(atomic_load(&s->inflight), 0);
    assert_int_equal(atomic_load(&s->requests), THREADS * PER_THREAD + 1);
    assert_int_equal(atomic_load(&s->failures), 0);
    assert_int_equal(atomic_load(&s->probes), 0);
    assert_int_equal(state_of(s), ARK_CIRCUIT_CLOSED);
    for (i = 0; i < ARK_SIG_LAT_BUCKETS; i++) {
        hist += atomic_load(&s->hist[(T0 / ARK_SIG_HIST_PERIOD) % 2]
                            .total[i]);
    }
    assert_int_equal(hist, THREADS * PER_THREAD + 1);
    ark_sig_view(s, &bc, T0 + SEC(1), &v);
    assert_int_equal(v.window_requests, THREADS * PER_THREAD + 1);
    assert_true(v.success_ratio == 1.0);
    assert_int_equal(v.inflight, 0);
    /* totals were 2 to 7 ms */
    assert_true(v.ewma_total_ms >= 2.0 && v.ewma_total_ms <= 7.0);
    assert_true(v.p95_total_ms >= 2.0 / 1.19 && v.p95_total_ms <= 7 * 1.19);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(bucket_mapping),
        T(bucket_values),
        T(circuit_names),
        T(ewma_converges),
        T(ewma_unmeasured_is_zero),
        T(p95_known_distribution),
        T(p95_tail),
        T(p95_forgets_old_periods),
        T(view_fields),
        T(window_forgets_old_buckets),
        T(breaker_consecutive_failures),
        T(breaker_success_resets_consecutive),
        T(breaker_error_ratio),
        T(breaker_error_ratio_is_strict),
        T(breaker_ratio_disabled_and_windowed),
        T(breaker_cooldown_then_half_open),
        T(breaker_half_open_probes),
        T(breaker_probe_failure_reopens),
        T(breaker_close_forgets_old_failures),
        T(breaker_opens_counter),
        T(cooling_after_429),
        T(cooling_failure_counts_once),
        T(cooling_and_open),
        T(neutral_changes_only_inflight),
        T(concurrent_acquire_release),
    };
#undef T

    return ARK_TEST_RUN("ark_signals", tests);
}
