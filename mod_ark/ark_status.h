/* The /ark/status page: a snapshot of one node, rendered as HTML for
 * people (tables that work without JavaScript, inline SVG charts, no
 * external assets) or as JSON for scripts.
 *
 * mod_ark fills an ark_status_t from shared memory (channel signals and
 * their per-interval series, governance counters, cache counters) and
 * hands it to the renderers here, which are pure functions: no httpd
 * headers, no I/O. Every string in the snapshot is rendered escaped (HTML
 * or JSON); nothing secret is ever put into a snapshot.
 */
#ifndef ARK_STATUS_H
#define ARK_STATUS_H

#include <stdint.h>

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/* Points of a channel's recent history, oldest first. */
#define ARK_STATUS_POINTS 30

typedef struct ark_status_point_t {
    apr_time_t t;                 /* start of the interval */
    uint32_t requests;            /* attempts that ended in it */
    uint32_t errors;              /* of which failed (counted against the
                                   * channel) */
    double p95_ms;                /* P95 total latency; < 0 when none */
} ark_status_point_t;

typedef struct ark_status_channel_t {
    const char *name;             /* channel name */
    const char *provider;         /* ArkProvider name */
    const char *type;             /* provider type: openai, azure, ... */
    const char *model;            /* the alias it serves */
    const char *upstream_model;
    int circuit;                  /* 0 closed, 1 open, 2 half-open */
    unsigned int inflight;
    uint64_t requests, failures, hedges, opens;   /* lifetime */
    double success_ratio;         /* sliding window; < 0 when no data */
    double p95_ttfb_ms, p95_total_ms;             /* < 0 when no data */
    apr_int64_t spend_today_nano; /* on this node */
    apr_interval_time_t point_len;                /* interval length */
    int npoints;                  /* 0..ARK_STATUS_POINTS */
    ark_status_point_t points[ARK_STATUS_POINTS];
} ark_status_channel_t;

typedef struct ark_status_amount_t {
    const char *name;             /* tenant or provider */
    apr_int64_t nano;             /* spend today, nano-units */
    apr_int64_t requests;
} ark_status_amount_t;

typedef struct ark_status_t {
    const char *node;             /* server name */
    const char *version;          /* e.g. "mod_ark 0.5.0" */
    apr_time_t now;
    apr_time_t config_time;       /* last (re)start */
    int refresh_s;                /* page refresh hint, 0: none */
    int nchannels;
    ark_status_channel_t *channels;
    /* cache (this node, since start); cache_configured 0: no cache */
    int cache_configured;
    uint64_t cache_lookups, cache_hits, cache_misses, cache_errors,
        cache_skipped;
    /* governance */
    int redis_configured, redis_up;
    apr_int64_t buffered_nano;
    uint64_t refusals;            /* all reasons, since start */
    /* spend today (UTC) on this node: ark_status_amount_t, largest first */
    apr_array_header_t *spend_by_tenant;
    apr_array_header_t *spend_by_provider;
} ark_status_t;

/* The whole HTML page (NUL-terminated, from p). */
const char *ark_status_html(const ark_status_t *st, apr_pool_t *p);

/* The same snapshot as one JSON object (NUL-terminated, from p). */
const char *ark_status_json(const ark_status_t *st, apr_pool_t *p);

#endif /* ARK_STATUS_H */
