/* The logic of ark-report: access-log aggregation, savings, latency
 * percentiles, the usage-CSV estimate, CSV records and the price part of
 * an httpd configuration.
 *
 * Pure functions over APR and jansson, no httpd and no I/O: the CLI
 * (ark_report_main.c) reads files (gzip or plain), hands each line to
 * ark_report_add_line or the whole usage CSV to ark_estimate_add_csv, and
 * renders what ark_report_groups and ark_estimate_groups return.
 *
 * Money is in nano-units (ark_limit.h) throughout, so totals are exact
 * sums of exact per-request amounts. Per request:
 *   spend     the line's spend_nano when the gateway logged it; else the
 *             tokens at the answering channel's price from the
 *             configuration ("estimated"); 0 for a cache hit.
 *   baseline  the tokens at the most expensive channel of the alias for
 *             those tokens (the "official" channel): what the request
 *             would have cost without Ark. Without a configured alias the
 *             baseline is the spend (no savings claimed).
 *   saved_cache    the baseline of a cache hit (it cost nothing).
 *   saved_routing  baseline - spend of a request that was not a hit.
 * So baseline = spend + saved_cache + saved_routing for every group.
 *
 * Everything is allocated from the pool given to the _make functions;
 * strings passed in are copied, never kept.
 */
#ifndef ARK_REPORT_H
#define ARK_REPORT_H

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>

/* Longest access-log line considered; longer ones are malformed. */
#define ARK_REPORT_LINE_MAX (1024 * 1024)

/* Receives one warning sentence ("FILE:LINE: what"). */
typedef void ark_report_warn_fn(void *baton, const char *msg);

/* ------------------------------------------------------ configuration */

/* Builds alias -> ark_model_t (ark_config.h) from the ArkProvider and
 * ArkModel lines of httpd configuration texts texts[0..n-1] (names[i]
 * names text i in warnings), parsed with mod_ark's own parsers. Providers
 * are collected from all texts first, so their order does not matter;
 * sections (<VirtualHost> ...) are looked through; Include and
 * IncludeOptional are not followed (a warning says so); a line the
 * parsers refuse is warned about and skipped. Never fails: returns the
 * hash, possibly empty, from p. */
apr_hash_t *ark_report_config_parse(const char *const *names,
                                    const char *const *texts, int n,
                                    ark_report_warn_fn *warn, void *baton,
                                    apr_pool_t *p);

/* ----------------------------------------------------------- records */

/* One request, as read from one access-log line. Unknown strings are
 * NULL, unknown numbers < 0. */
typedef struct ark_report_rec_t {
    char day[11]; /* "YYYY-MM-DD" (UTC), "" unknown */
    const char *key, *tenant, *model, *provider, *upstream_model;
    const char *channel; /* the "channel" field, when logged */
    int status;          /* 0 unknown */
    int cache_hit;       /* "cache": "hit" */
    double latency_ms, ttfb_ms;
    long prompt_tokens, completion_tokens, cached_tokens;
    apr_int64_t spend_nano;
} ark_report_rec_t;

/* Parses one access-log line (a JSON object; trailing "\r\n" allowed)
 * into *rec, strings from p. Returns APR_SUCCESS, or APR_EINVAL with
 * *err (static or from p) saying why: not JSON, not an object, no "time",
 * a field of the wrong type. */
apr_status_t ark_report_parse_line(ark_report_rec_t *rec, const char *line,
                                   apr_size_t len, const char **err,
                                   apr_pool_t *p);

/* --------------------------------------------------------- aggregation */

typedef enum {
    ARK_DIM_PROVIDER = 0,
    ARK_DIM_CHANNEL,
    ARK_DIM_MODEL,
    ARK_DIM_KEY,
    ARK_DIM_TENANT,
    ARK_DIM_DAY,
    ARK_DIM_COUNT
} ark_report_dim_t;

/* "provider", "channel", ... ; and the reverse, -1 if unknown. */
const char *ark_report_dim_name(ark_report_dim_t d);
int ark_report_dim_parse(const char *name);

/* Sums over the requests of one group (one provider, one day, ...). */
typedef struct ark_report_group_t {
    const char *name;
    apr_int64_t requests, errors, cache_hits;
    apr_int64_t prompt_tokens, completion_tokens, cached_tokens;
    apr_int64_t spend_nano, baseline_nano;
    apr_int64_t saved_cache_nano, saved_routing_nano;
    apr_int64_t spend_estimated; /* requests priced from the config */
    apr_int64_t unpriced;        /* requests with tokens, no price known */
    apr_array_header_t *latency_ms, *ttfb_ms; /* double; total and
                                               * channels only, else NULL */
} ark_report_group_t;

typedef struct ark_report_t ark_report_t;

/* A new report. models (alias -> ark_model_t, may be NULL: no prices) is
 * borrowed and must outlive the report. */
ark_report_t *ark_report_make(const apr_hash_t *models, apr_pool_t *p);

/* Keeps only days from..to (inclusive, "YYYY-MM-DD", either NULL for
 * open). Requests of an unknown day are dropped when either is set. */
void ark_report_set_range(ark_report_t *rep, const char *from, const char *to);

/* Adds one request. Returns 1 if counted, 0 if outside the date range. */
int ark_report_add(ark_report_t *rep, const ark_report_rec_t *rec);

/* Parses and adds one line. A blank line is ignored (APR_SUCCESS).
 * Returns APR_EINVAL with *err for a malformed line (counted); *err is
 * valid until the next call. */
apr_status_t ark_report_add_line(ark_report_t *rep, const char *line,
                                 apr_size_t len, const char **err);

/* Counts a line rejected before parsing (e.g. too long) as malformed. */
void ark_report_count_malformed(ark_report_t *rep);

/* Lines seen (blank ones excluded), malformed, outside the range. */
void ark_report_counts(const ark_report_t *rep, apr_int64_t *lines,
                       apr_int64_t *malformed, apr_int64_t *filtered);

/* The sums over every request (name "all"); borrowed. */
const ark_report_group_t *ark_report_total(const ark_report_t *rep);

/* The groups of a dimension as an array of const ark_report_group_t *,
 * from p: days in calendar order, others by spend, then requests
 * (descending), then name. Missing values group as "(none)" (and an
 * unknown day as "(unknown)"); cache hits without a provider as
 * "(cache)". */
apr_array_header_t *ark_report_groups(const ark_report_t *rep,
                                      ark_report_dim_t dim, apr_pool_t *p);

/* --------------------------------------------------------- percentiles */

/* Nearest-rank percentile of sorted[0..n-1] (ascending): the value at
 * rank ceil(pct/100 * n), 1-based, clamped to 1..n. Example: for
 * {10, 20, 30, 40} p50 is 20 (rank 2), p95 and p99 are 40 (rank 4).
 * Returns -1 when n is 0. */
double ark_report_percentile(const double *sorted, apr_size_t n, double pct);

typedef struct ark_report_pct_t {
    apr_size_t n;
    double p50, p95, p99; /* -1 when n is 0 */
} ark_report_pct_t;

/* Sorts values (doubles, may be NULL) in place and fills *out. */
void ark_report_pct(ark_report_pct_t *out, apr_array_header_t *values);

/* -------------------------------------------------------------- CSV */

/* Reads one RFC 4180 record at *pos (before end) into *pfields (array of
 * char *, from p) and moves *pos past its line break ("\n" or "\r\n").
 * Quoted fields may hold commas, doubled quotes and line breaks. Returns
 * APR_SUCCESS, APR_EOF when *pos == end, or APR_EINVAL (unterminated
 * quote, or text after a closing quote); *pos then skips to the next
 * line. */
apr_status_t ark_csv_next(apr_array_header_t **pfields, const char **pos,
                          const char *end, apr_pool_t *p);

/* s as a CSV field: as is, or in double quotes (quotes doubled) when it
 * holds a comma, quote, CR or LF, or starts or ends with a space. */
const char *ark_csv_quote(const char *s, apr_pool_t *p);

/* ---------------------------------------------------------- estimate */

/* Sums of the estimate for one model (or all, name "all"). */
typedef struct ark_estimate_group_t {
    const char *name; /* the alias */
    apr_int64_t rows, input_tokens, output_tokens;
    apr_int64_t official_nano; /* at the most expensive channel */
    apr_int64_t routed_nano;   /* at the cheapest compliant one */
    const char *official_channel, *routed_channel; /* "(varies)" when
                                                    * rows differ */
} ark_estimate_group_t;

typedef struct ark_estimate_t ark_estimate_t;

/* A new estimate over models (borrowed); required (ark_tag_t, may be
 * NULL) are the compliance tags the routed channel must satisfy, as a
 * key's tags= would. */
ark_estimate_t *ark_estimate_make(const apr_hash_t *models,
                                  const apr_array_header_t *required,
                                  apr_pool_t *p);

/* As ark_report_set_range, for the date column. */
void ark_estimate_set_range(ark_estimate_t *est, const char *from,
                            const char *to);

/* Adds one usage row. model is an alias or, failing that, the upstream
 * model of a channel (the first alias by name that has one). Returns
 * APR_SUCCESS (counted, or outside the range), APR_NOTFOUND when no alias
 * matches or it has no priced (compliant) channel (*err says which; the
 * row is counted as unmatched). */
apr_status_t ark_estimate_add_row(ark_estimate_t *est, const char *provider,
                                  const char *model, long input_tokens,
                                  long output_tokens, long cached_tokens,
                                  const char *date, const char **err);

/* Reads a whole usage CSV: a header naming the columns provider, model,
 * input_tokens, output_tokens, date (any order, case-insensitive,
 * cached_tokens optional, others ignored), then one row per line. Bad
 * rows are warned about ("NAME:LINE: ...") and skipped. Returns
 * APR_SUCCESS, or APR_EINVAL with *err when the header lacks model,
 * input_tokens or output_tokens. */
apr_status_t ark_estimate_add_csv(ark_estimate_t *est, const char *name,
                                  const char *text, apr_size_t len,
                                  ark_report_warn_fn *warn, void *baton,
                                  const char **err);

/* Totals (name "all"; borrowed) and rows skipped: unmatched, bad. */
const ark_estimate_group_t *ark_estimate_total(const ark_estimate_t *est);
void ark_estimate_counts(const ark_estimate_t *est, apr_int64_t *unmatched,
                         apr_int64_t *bad, apr_int64_t *filtered);

/* The per-model groups (const ark_estimate_group_t *), by name, from p. */
apr_array_header_t *ark_estimate_groups(const ark_estimate_t *est,
                                        apr_pool_t *p);

#endif /* ARK_REPORT_H */
