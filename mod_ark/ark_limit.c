/* Ark governance maths. See ark_limit.h. */
#include <math.h>
#include <string.h>

#include <apr_strings.h>

#include "ark_limit.h"

/* ------------------------------------------------------------- money */

apr_status_t ark_money_parse(apr_int64_t *nano, const char *s)
{
    apr_int64_t units = 0, frac = 0;
    int digits = 0, decimals = 0;

    if (!s || !*s) {
        return APR_EINVAL;
    }
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        units = units * 10 + (*s - '0');
        if (units > ARK_MONEY_MAX / ARK_NANO_PER_UNIT) {
            return APR_EINVAL;
        }
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, decimals++) {
            if (decimals == 9) {
                return APR_EINVAL;
            }
            frac = frac * 10 + (*s - '0');
        }
        if (decimals == 0) {
            return APR_EINVAL;             /* "12." */
        }
    }
    if (*s || digits == 0) {
        return APR_EINVAL;
    }
    for (; decimals < 9; decimals++) {
        frac *= 10;
    }
    *nano = units * ARK_NANO_PER_UNIT + frac;
    return *nano > ARK_MONEY_MAX ? APR_EINVAL : APR_SUCCESS;
}

const char *ark_money_format(apr_int64_t nano, apr_pool_t *p)
{
    apr_uint64_t v = nano < 0 ? (apr_uint64_t)0 - (apr_uint64_t)nano
                              : (apr_uint64_t)nano;
    char frac[10];
    int n;

    apr_snprintf(frac, sizeof(frac), "%09" APR_UINT64_T_FMT,
                 v % (apr_uint64_t)ARK_NANO_PER_UNIT);
    for (n = 9; n > 0 && frac[n - 1] == '0'; n--) {
    }
    frac[n] = '\0';
    return apr_psprintf(p, "%s%" APR_UINT64_T_FMT "%s%s", nano < 0 ? "-" : "",
                        v / (apr_uint64_t)ARK_NANO_PER_UNIT, n ? "." : "",
                        frac);
}

static apr_int64_t part_cost(long tokens, double price)
{
    if (tokens <= 0 || !(price > 0)) {
        return 0;
    }
    /* nano per token = price per 1M tokens * 1e9 / 1e6 */
    return (apr_int64_t)llround((double)tokens * price * 1000.0);
}

apr_int64_t ark_cost_nano(long prompt_tokens, long cached_tokens,
                          long completion_tokens, double price_in,
                          double price_out, double price_cached)
{
    long cached = cached_tokens > 0 ? cached_tokens : 0;

    if (cached > prompt_tokens) {
        cached = prompt_tokens > 0 ? prompt_tokens : 0;
    }
    if (price_cached < 0) {
        price_cached = price_in;
    }
    return part_cost(prompt_tokens - cached, price_in)
           + part_cost(cached, price_cached)
           + part_cost(completion_tokens, price_out);
}

/* ---------------------------------------------------------- GCRA */

apr_int64_t ark_gcra_interval(apr_int64_t limit, apr_interval_time_t period)
{
    apr_int64_t t;

    if (limit <= 0) {
        return 1;
    }
    t = period / limit;
    return t > 0 ? t : 1;
}

/* Pulls a TAT left ahead by a clock that went back to now + period. */
static apr_int64_t clamp_tat(apr_int64_t tat, apr_time_t now,
                             apr_interval_time_t period)
{
    if (tat > now + period) {
        return now + period;
    }
    return tat;
}

void ark_gcra_take(apr_int64_t *tat, apr_time_t now, apr_int64_t limit,
                   apr_interval_time_t period, apr_int64_t cost,
                   ark_gcra_result_t *res)
{
    apr_int64_t t, base, next;

    memset(res, 0, sizeof(*res));
    if (limit <= 0) {
        res->allowed = 1;
        res->remaining = -1;
        return;
    }
    if (cost < 0) {
        cost = 0;
    }
    t = ark_gcra_interval(limit, period);
    *tat = clamp_tat(*tat, now, period);
    base = *tat > now ? *tat : now;
    if (cost > limit) {
        res->retry_after = -1;
        res->reset = base - now;
        res->remaining = (period - (base - now)) / t;
        return;
    }
    next = base + cost * t;
    if (next - now <= period) {
        *tat = next;
        res->allowed = 1;
        res->reset = next - now;
        res->remaining = (period - (next - now)) / t;
    }
    else {
        res->retry_after = next - now - period;
        res->reset = base - now;
        res->remaining = (period - (base - now)) / t;
    }
    if (res->remaining > limit) {
        res->remaining = limit;
    }
    if (res->remaining < 0) {
        res->remaining = 0;
    }
}

void ark_gcra_adjust(apr_int64_t *tat, apr_time_t now, apr_int64_t limit,
                     apr_interval_time_t period, apr_int64_t delta)
{
    apr_int64_t t;

    if (limit <= 0 || delta == 0) {
        return;
    }
    t = ark_gcra_interval(limit, period);
    *tat = clamp_tat(*tat, now, period);
    if (delta > 0) {
        *tat = (*tat > now ? *tat : now) + delta * t;
        return;
    }
    *tat += delta * t;
    if (*tat < now) {
        *tat = now;
    }
}

apr_int64_t ark_gcra_used(apr_int64_t tat, apr_time_t now, apr_int64_t limit,
                          apr_interval_time_t period)
{
    apr_int64_t t, ahead, used;

    if (limit <= 0 || tat <= now) {
        return 0;
    }
    t = ark_gcra_interval(limit, period);
    ahead = clamp_tat(tat, now, period) - now;
    used = (ahead + t - 1) / t;
    return used > limit ? limit : used;
}

/* ------------------------------------------------------------ periods */

void ark_period_id(char *buf, ark_period_t period, apr_time_t now)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, now);
    if (period == ARK_PERIOD_MONTH) {
        apr_snprintf(buf, 9, "%04d%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    }
    else {
        apr_snprintf(buf, 9, "%04d%02d%02d", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday);
    }
}

apr_interval_time_t ark_period_left(ark_period_t period, apr_time_t now)
{
    apr_time_exp_t tm;
    apr_time_t next;

    apr_time_exp_gmt(&tm, now);
    tm.tm_usec = tm.tm_sec = tm.tm_min = tm.tm_hour = 0;
    tm.tm_gmtoff = 0;
    tm.tm_isdst = 0;
    if (period == ARK_PERIOD_MONTH) {
        tm.tm_mday = 1;
        if (++tm.tm_mon == 12) {
            tm.tm_mon = 0;
            tm.tm_year++;
        }
        if (apr_time_exp_gmt_get(&next, &tm) != APR_SUCCESS) {
            return apr_time_from_sec(86400);
        }
    }
    else {
        if (apr_time_exp_gmt_get(&next, &tm) != APR_SUCCESS) {
            return apr_time_from_sec(86400);
        }
        next += apr_time_from_sec(86400);
    }
    return next - now;
}

long ark_period_keep_sec(ark_period_t period)
{
    return period == ARK_PERIOD_MONTH ? 400L * 86400 : 40L * 86400;
}

/* ------------------------------------------------------- estimates */

apr_int64_t ark_tokens_estimate(apr_size_t prompt_bytes, long max_out,
                                long default_out)
{
    apr_int64_t n = (apr_int64_t)((prompt_bytes + 3) / 4);

    return n + (max_out > 0 ? max_out : (default_out > 0 ? default_out : 0));
}

const char *ark_duration_format(apr_interval_time_t d, apr_pool_t *p)
{
    apr_int64_t ms, s;

    if (d <= 0) {
        return "0s";
    }
    ms = (d + 999) / 1000;
    if (ms < 1000) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "ms", ms);
    }
    s = (ms + 999) / 1000;
    if (s < 60) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "s", s);
    }
    if (s < 3600) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "m%" APR_INT64_T_FMT "s",
                            s / 60, s % 60);
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT "h%" APR_INT64_T_FMT "m%"
                        APR_INT64_T_FMT "s", s / 3600, (s / 60) % 60, s % 60);
}

/* ------------------------------------------------------ Redis key names */

const char *ark_rkey(apr_pool_t *p, const char *prefix, char scope,
                     const char *name, const char *what)
{
    return apr_psprintf(p, "%s%c:%s:%s", prefix ? prefix : "", scope, name,
                        what);
}

const char *ark_rkey_usage(apr_pool_t *p, const char *prefix, char scope,
                           const char *name, ark_period_t period,
                           apr_time_t now)
{
    char id[9];

    ark_period_id(id, period, now);
    return apr_psprintf(p, "%s%c:%s:u:%s", prefix ? prefix : "", scope, name,
                        id);
}
