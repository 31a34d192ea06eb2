/* Unit tests for the governance maths (ark_limit.c): money, cost, the
 * GCRA limiter (bursts, refill, reservations and settlement, clock
 * steps), calendar periods and the header duration format. */
#include "ark_testutil.h"

#include <string.h>

#include <apr_strings.h>

#include "ark_limit.h"

#define MIN apr_time_from_sec(60)
/* 2026-11-27T12:00:00Z */
#define NOON ((apr_time_t)1795780800 * APR_USEC_PER_SEC)

static void test_money_parse(void **state)
{
    apr_int64_t n;

    (void)state;
    assert_int_equal(ark_money_parse(&n, "25"), APR_SUCCESS);
    assert_true(n == 25 * ARK_NANO_PER_UNIT);
    assert_int_equal(ark_money_parse(&n, "0.5"), APR_SUCCESS);
    assert_true(n == 500000000);
    assert_int_equal(ark_money_parse(&n, "12.000000001"), APR_SUCCESS);
    assert_true(n == 12000000001LL);
    assert_int_equal(ark_money_parse(&n, "0"), APR_SUCCESS);
    assert_true(n == 0);
    assert_int_equal(ark_money_parse(&n, "1000000000"), APR_SUCCESS);
    assert_true(n == ARK_MONEY_MAX);
    /* refused */
    assert_int_equal(ark_money_parse(&n, ""), APR_EINVAL);
    assert_int_equal(ark_money_parse(&n, "-1"), APR_EINVAL);
    assert_int_equal(ark_money_parse(&n, "1e3"), APR_EINVAL);
    assert_int_equal(ark_money_parse(&n, "1.0000000001"), APR_EINVAL);
    assert_int_equal(ark_money_parse(&n, "12."), APR_EINVAL);
    assert_int_equal(ark_money_parse(&n, ".5"), APR_EINVAL);
    assert_int_equal(ark_money_parse(&n, "1000000000.1"), APR_EINVAL);
    assert_int_equal(ark_money_parse(&n, "99999999999999999999"),
                     APR_EINVAL);
    assert_int_equal(ark_money_parse(&n, "5 "), APR_EINVAL);
}

static void test_money_format(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(ark_money_format(0, p), "0");
    assert_string_equal(ark_money_format(12500000000LL, p), "12.5");
    assert_string_equal(ark_money_format(1, p), "0.000000001");
    assert_string_equal(ark_money_format(-1000, p), "-0.000001");
    assert_string_equal(ark_money_format(3 * ARK_NANO_PER_UNIT, p), "3");
}

static void test_cost(void **state)
{
    (void)state;
    /* 1000 prompt at 2.50/1M = 0.0025 = 2500000 nano; 500 completion at
     * 10/1M = 0.005 = 5000000 nano */
    assert_true(ark_cost_nano(1000, 0, 500, 2.5, 10, -1) == 7500000);
    /* 400 of the prompt cached at 1.25: 600*2500 + 400*1250 + 0 */
    assert_true(ark_cost_nano(1000, 400, 0, 2.5, 10, 1.25)
                == 600 * 2500 + 400 * 1250);
    /* no cached price: cached tokens at the input price */
    assert_true(ark_cost_nano(1000, 400, 0, 2.5, 10, -1) == 1000 * 2500);
    /* prices not set count as 0 */
    assert_true(ark_cost_nano(1000, 0, 1000, -1, -1, -1) == 0);
    /* cached above prompt is clamped */
    assert_true(ark_cost_nano(10, 50, 0, 1, 1, 0.5) == 10 * 500);
    /* a fractional nano price rounds per part: 0.0001/1M = 0.1 nano */
    assert_true(ark_cost_nano(5, 0, 0, 0.0001, 0, -1) == 1);
    /* sums of many requests equal the cost of the sum when prices are
     * whole nano-units per token */
    {
        apr_int64_t sum = 0;
        int i;

        for (i = 1; i <= 100; i++) {
            sum += ark_cost_nano(i, 0, 2 * i, 0.15, 0.6, -1);
        }
        assert_true(sum == ark_cost_nano(5050, 0, 10100, 0.15, 0.6, -1));
    }
}

static void test_gcra_burst_then_refill(void **state)
{
    apr_int64_t tat = 0;
    ark_gcra_result_t r;
    int i;

    (void)state;
    /* 7 per minute: interval floor(60e6/7) = 8571428 us */
    assert_true(ark_gcra_interval(7, MIN) == 8571428);
    for (i = 0; i < 7; i++) {
        ark_gcra_take(&tat, NOON, 7, MIN, 1, &r);
        assert_true(r.allowed);
        assert_true(r.remaining == 6 - i);
    }
    ark_gcra_take(&tat, NOON, 7, MIN, 1, &r);
    assert_false(r.allowed);
    assert_true(r.remaining == 0);
    assert_true(r.retry_after > 0 && r.retry_after <= 8571428);
    /* a refusal takes nothing: at NOON + retry_after one fits */
    ark_gcra_take(&tat, NOON + r.retry_after - 1, 7, MIN, 1, &r);
    assert_false(r.allowed);
    ark_gcra_take(&tat, NOON + 8571428, 7, MIN, 1, &r);
    assert_true(r.allowed);
    /* a minute after the burst the bucket is full again */
    assert_true(ark_gcra_used(tat, NOON + 2 * MIN, 7, MIN) == 0);
}

static void test_gcra_cost_and_too_large(void **state)
{
    apr_int64_t tat = 0;
    ark_gcra_result_t r;

    (void)state;
    ark_gcra_take(&tat, NOON, 1000, MIN, 600, &r);
    assert_true(r.allowed);
    assert_true(r.remaining == 400);
    assert_true(ark_gcra_used(tat, NOON, 1000, MIN) == 600);
    ark_gcra_take(&tat, NOON, 1000, MIN, 401, &r);
    assert_false(r.allowed);
    assert_true(r.retry_after > 0);
    ark_gcra_take(&tat, NOON, 1000, MIN, 400, &r);
    assert_true(r.allowed);
    assert_true(r.remaining == 0);
    /* more than the whole limit can never fit */
    tat = 0;
    ark_gcra_take(&tat, NOON, 1000, MIN, 1001, &r);
    assert_false(r.allowed);
    assert_true(r.retry_after == -1);
    assert_true(tat == 0);
    /* no limit: always allowed, state untouched */
    ark_gcra_take(&tat, NOON, 0, MIN, 1000000, &r);
    assert_true(r.allowed);
    assert_true(tat == 0);
}

static void test_gcra_settlement(void **state)
{
    apr_int64_t tat = 0;
    ark_gcra_result_t r;

    (void)state;
    /* reserve 500, use 120: the refund makes room */
    ark_gcra_take(&tat, NOON, 1000, MIN, 500, &r);
    assert_true(r.allowed);
    ark_gcra_adjust(&tat, NOON, 1000, MIN, 120 - 500);
    assert_true(ark_gcra_used(tat, NOON, 1000, MIN) == 120);
    /* reserve 100, use 900: over the limit afterwards, nothing fits */
    ark_gcra_take(&tat, NOON, 1000, MIN, 100, &r);
    assert_true(r.allowed);
    ark_gcra_adjust(&tat, NOON, 1000, MIN, 800);
    assert_true(ark_gcra_used(tat, NOON, 1000, MIN) == 1000);
    ark_gcra_take(&tat, NOON, 1000, MIN, 1, &r);
    assert_false(r.allowed);
    /* a refund never banks capacity below now */
    tat = 0;
    ark_gcra_adjust(&tat, NOON, 1000, MIN, -5000);
    assert_true(tat == NOON);
    ark_gcra_take(&tat, NOON, 1000, MIN, 1000, &r);
    assert_true(r.allowed);
    ark_gcra_take(&tat, NOON, 1000, MIN, 1, &r);
    assert_false(r.allowed);
}

static void test_gcra_clock_steps(void **state)
{
    apr_int64_t tat = 0;
    ark_gcra_result_t r;

    (void)state;
    ark_gcra_take(&tat, NOON, 10, MIN, 10, &r);
    assert_true(r.allowed);
    /* the clock goes back an hour: the key is not locked out for an
     * hour, only until one period has passed on the new clock */
    ark_gcra_take(&tat, NOON - apr_time_from_sec(3600), 10, MIN, 1, &r);
    assert_false(r.allowed);
    assert_true(r.retry_after <= MIN);
    assert_true(tat <= NOON - apr_time_from_sec(3600) + MIN);
    ark_gcra_take(&tat, NOON - apr_time_from_sec(3600) + MIN, 10, MIN, 10,
                  &r);
    assert_true(r.allowed);
    /* the clock jumps far ahead: the bucket is simply full */
    ark_gcra_take(&tat, NOON + apr_time_from_sec(86400 * 365), 10, MIN, 10,
                  &r);
    assert_true(r.allowed);
    /* the same instant twice, epoch zero */
    tat = 0;
    ark_gcra_take(&tat, 0, 2, MIN, 1, &r);
    assert_true(r.allowed);
    ark_gcra_take(&tat, 0, 2, MIN, 1, &r);
    assert_true(r.allowed);
    ark_gcra_take(&tat, 0, 2, MIN, 1, &r);
    assert_false(r.allowed);
    /* a limit above the microseconds in a period still admits */
    tat = 0;
    assert_true(ark_gcra_interval(100000000, MIN) == 1);
    ark_gcra_take(&tat, NOON, 100000000, MIN, 1000, &r);
    assert_true(r.allowed);
}

static void test_periods(void **state)
{
    char id[9];
    apr_time_t t;

    (void)state;
    ark_period_id(id, ARK_PERIOD_DAY, NOON);
    assert_string_equal(id, "20261127");
    ark_period_id(id, ARK_PERIOD_MONTH, NOON);
    assert_string_equal(id, "202611");
    assert_true(ark_period_left(ARK_PERIOD_DAY, NOON)
                == apr_time_from_sec(12 * 3600));
    /* 2026-11-27 12:00 to 2026-12-01 00:00: 3.5 days */
    assert_true(ark_period_left(ARK_PERIOD_MONTH, NOON)
                == apr_time_from_sec(3 * 86400 + 12 * 3600));
    /* last microsecond of 2026 */
    t = (apr_time_t)1798761600 * APR_USEC_PER_SEC - 1;
    ark_period_id(id, ARK_PERIOD_DAY, t);
    assert_string_equal(id, "20261231");
    assert_true(ark_period_left(ARK_PERIOD_DAY, t) == 1);
    assert_true(ark_period_left(ARK_PERIOD_MONTH, t) == 1);
    ark_period_id(id, ARK_PERIOD_MONTH, t + 1);
    assert_string_equal(id, "202701");
    /* leap day 2028-02-29 00:00:00 */
    t = (apr_time_t)1835395200 * APR_USEC_PER_SEC;
    ark_period_id(id, ARK_PERIOD_DAY, t);
    assert_string_equal(id, "20280229");
    assert_true(ark_period_left(ARK_PERIOD_MONTH, t)
                == apr_time_from_sec(86400));
    assert_true(ark_period_keep_sec(ARK_PERIOD_DAY) >= 31 * 86400);
    assert_true(ark_period_keep_sec(ARK_PERIOD_MONTH) >= 366 * 86400);
}

static void test_estimate_and_durations(void **state)
{
    apr_pool_t *p = *state;

    assert_true(ark_tokens_estimate(400, 0, 256) == 100 + 256);
    assert_true(ark_tokens_estimate(401, 50, 256) == 101 + 50);
    assert_true(ark_tokens_estimate(0, 0, 0) == 0);
    assert_string_equal(ark_duration_format(0, p), "0s");
    assert_string_equal(ark_duration_format(250000, p), "250ms");
    assert_string_equal(ark_duration_format(1, p), "1ms");
    assert_string_equal(ark_duration_format(apr_time_from_sec(6), p), "6s");
    assert_string_equal(ark_duration_format(5500000, p), "6s");
    assert_string_equal(ark_duration_format(apr_time_from_sec(90), p),
                        "1m30s");
    assert_string_equal(ark_duration_format(apr_time_from_sec(7200), p),
                        "2h0m0s");
}

static void test_key_names(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(ark_rkey(p, "ark:", ARK_SCOPE_KEY, "alice", "rpm"),
                        "ark:k:alice:rpm");
    assert_string_equal(ark_rkey(p, "x:", ARK_SCOPE_TENANT, "acme",
                                 "inflight"), "x:t:acme:inflight");
    assert_string_equal(ark_rkey_usage(p, "ark:", ARK_SCOPE_TENANT, "acme",
                                       ARK_PERIOD_DAY, NOON),
                        "ark:t:acme:u:20261127");
    assert_string_equal(ark_rkey_usage(p, "", ARK_SCOPE_KEY, "bob",
                                       ARK_PERIOD_MONTH, NOON),
                        "k:bob:u:202611");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_money_parse),
        cmocka_unit_test_setup_teardown(test_money_format,
                                        ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_gcra_burst_then_refill),
        cmocka_unit_test(test_gcra_cost_and_too_large),
        cmocka_unit_test(test_gcra_settlement),
        cmocka_unit_test(test_gcra_clock_steps),
        cmocka_unit_test(test_periods),
        cmocka_unit_test_setup_teardown(test_estimate_and_durations,
                                        ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_key_names, ark_test_pool_setup,
                                        ark_test_pool_teardown),
    };

    return ark_test_run_group("limit", tests,
                              sizeof(tests) / sizeof(tests[0]));
}
