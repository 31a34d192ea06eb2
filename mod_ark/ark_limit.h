/* Ark governance maths: money, rate limiter, periods, Redis key names.
 *
 * Pure functions with no httpd and no Redis dependency, shared by mod_ark
 * (ark_govern.c), the ark-keys CLI and the unit tests.
 *
 * Money is an integer count of nano-units (1e-9 of the configured
 * currency unit), so spend adds up exactly: a price of 2.50 per 1M tokens
 * is 2500 nano-units per token.
 *
 * Rate limits are GCRA (the generic cell rate algorithm, a token bucket
 * kept as one number): a limit of L per period P has an emission interval
 * T = floor(P / L) microseconds; the state is the theoretical arrival time
 * TAT. Taking cost c at time now succeeds when
 *     max(TAT, now) + c*T - now <= P
 * and then sets TAT to that value. A full bucket therefore admits a burst
 * of exactly L, then one every T. The same maths runs inside Redis (the
 * Lua scripts of ark_govern.c) and in the node-local fallback.
 */
#ifndef ARK_LIMIT_H
#define ARK_LIMIT_H

#include <apr_pools.h>
#include <apr_time.h>

/* ------------------------------------------------------------- money */

#define ARK_NANO_PER_UNIT 1000000000LL
/* Largest amount ark_money_parse accepts: 1e9 currency units. */
#define ARK_MONEY_MAX (1000000000LL * ARK_NANO_PER_UNIT)

/* Parses a decimal amount of currency units ("25", "0.5", "12.000000001")
 * into nano-units. At most 9 decimals, no sign, no exponent, at most
 * ARK_MONEY_MAX. Returns APR_SUCCESS or APR_EINVAL. */
apr_status_t ark_money_parse(apr_int64_t *nano, const char *s);

/* Formats nano-units as a decimal without trailing zeros ("12.5", "0",
 * "-0.000001"), allocated from p. */
const char *ark_money_format(apr_int64_t nano, apr_pool_t *p);

/* Cost in nano-units of usage at prices per 1M tokens: cached prompt
 * tokens at price_cached (price_in when price_cached < 0), the other
 * prompt tokens at price_in, completion tokens at price_out. A price < 0
 * (not set) counts as 0. Each part is rounded to the nearest nano-unit. */
apr_int64_t ark_cost_nano(long prompt_tokens, long cached_tokens,
                          long completion_tokens, double price_in,
                          double price_out, double price_cached);

/* ---------------------------------------------------------- GCRA */

typedef struct ark_gcra_result_t {
    int allowed;                     /* 1 taken, 0 refused */
    apr_int64_t remaining;           /* units still available at once */
    apr_interval_time_t reset;       /* until the bucket is full again */
    apr_interval_time_t retry_after; /* refused: until cost would fit;
                                      * -1 when cost > limit (never) */
} ark_gcra_result_t;

/* Emission interval of limit per period, microseconds, at least 1. */
apr_int64_t ark_gcra_interval(apr_int64_t limit, apr_interval_time_t period);

/* Takes cost units from the bucket *tat (0 = never used) at time now.
 * A TAT more than one period ahead of now (the clock went back) is first
 * pulled in to now + period, so a clock step never locks a key out for
 * longer than one period. On refusal *tat is only so clamped. limit <= 0
 * means no limit: always allowed, *tat untouched. */
void ark_gcra_take(apr_int64_t *tat, apr_time_t now, apr_int64_t limit,
                   apr_interval_time_t period, apr_int64_t cost,
                   ark_gcra_result_t *res);

/* Settles a reservation: moves *tat by delta units (positive: more were
 * used than reserved; negative: a refund). A refund never moves TAT
 * below now (unused capacity is not banked). */
void ark_gcra_adjust(apr_int64_t *tat, apr_time_t now, apr_int64_t limit,
                     apr_interval_time_t period, apr_int64_t delta);

/* Units of the bucket in use at now (0 .. limit). */
apr_int64_t ark_gcra_used(apr_int64_t tat, apr_time_t now, apr_int64_t limit,
                          apr_interval_time_t period);

/* ------------------------------------------------------------ periods */

typedef enum {
    ARK_PERIOD_DAY = 0,               /* UTC calendar day */
    ARK_PERIOD_MONTH                  /* UTC calendar month */
} ark_period_t;

/* The period containing now as "YYYYMMDD" (day) or "YYYYMM" (month),
 * into buf (at least 9 bytes). */
void ark_period_id(char *buf, ark_period_t period, apr_time_t now);

/* Time from now to the start of the next period. */
apr_interval_time_t ark_period_left(ark_period_t period, apr_time_t now);

/* Seconds a period's counters are kept in Redis: 40 days for days, 400
 * for months (long enough for monthly reports). */
long ark_period_keep_sec(ark_period_t period);

/* ------------------------------------------------------- token estimate */

/* Tokens to reserve for a request before its usage is known: prompt
 * bytes / 4 (rounded up) plus max_out (the request's max_tokens or
 * max_completion_tokens), or default_out when the request sets none. */
apr_int64_t ark_tokens_estimate(apr_size_t prompt_bytes, long max_out,
                                long default_out);

/* Formats a duration the way OpenAI's x-ratelimit-reset-* headers do:
 * "0s", "250ms", "6s", "1m30s", "2h0m0s"; allocated from p. */
const char *ark_duration_format(apr_interval_time_t d, apr_pool_t *p);

/* ------------------------------------------------------ Redis key names */

/* Scope of a counter. */
#define ARK_SCOPE_KEY    'k'
#define ARK_SCOPE_TENANT 't'

/* "<prefix><scope>:<name>:<what>", e.g. "ark:k:alice:rpm"; what may be
 * "rpm", "tpm", "inflight", "p:<provider>:rpm", "p:<provider>:tpm". */
const char *ark_rkey(apr_pool_t *p, const char *prefix, char scope,
                     const char *name, const char *what);

/* The usage hash of a scope and period: "<prefix><scope>:<name>:u:<id>"
 * with id from ark_period_id, e.g. "ark:t:acme:u:20261127". Its fields
 * are the ARK_UF_* names below. */
const char *ark_rkey_usage(apr_pool_t *p, const char *prefix, char scope,
                           const char *name, ark_period_t period,
                           apr_time_t now);

#define ARK_UF_REQUESTS   "requests"
#define ARK_UF_PROMPT     "prompt_tokens"
#define ARK_UF_COMPLETION "completion_tokens"
#define ARK_UF_CACHED     "cached_tokens"
#define ARK_UF_SPEND      "spend_nano"
#define ARK_UF_CACHE_HITS "cache_hits"
#define ARK_UF_SAVED      "saved_nano"
/* counted only by the replay of a request a node died serving, billed
 * at its estimate (see ark_journal.h) */
#define ARK_UF_EST_REQUESTS "estimated_requests"
#define ARK_UF_EST_TOKENS   "estimated_tokens"

#endif /* ARK_LIMIT_H */
