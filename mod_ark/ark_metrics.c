/* The ark-metrics handler: live channel signals in the Prometheus text
 * exposition format, read straight from the node's shared memory, so a
 * scrape sees the aggregate of every httpd process and costs no I/O.
 * Access control is httpd's own (Require in the <Location>).
 *
 *   <Location /ark/metrics>
 *       SetHandler ark-metrics
 *       Require ip 10.0.0.0/8
 *   </Location>
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <http_protocol.h>

#include "ark_status.h"
#include "mod_ark.h"

APLOG_USE_MODULE(ark);

typedef struct {
    const char *name;
    const char *type;
    const char *help;
} metric_t;

static const metric_t metrics[] = {
    { "ark_channel_requests_total", "counter",
      "Upstream attempts admitted to the channel." },
    { "ark_channel_failures_total", "counter",
      "Attempts that failed (transport, 5xx, 429, malformed, auth)." },
    { "ark_channel_hedges_total", "counter",
      "Hedged attempts started on the channel." },
    { "ark_channel_circuit_opens_total", "counter",
      "Times the channel's circuit breaker opened." },
    { "ark_channel_circuit_state", "gauge",
      "Circuit breaker state: 0 closed, 1 open, 2 half-open." },
    { "ark_channel_inflight", "gauge", "Attempts in flight." },
    { "ark_channel_success_ratio", "gauge",
      "Success ratio over the breaker window (-1: no request)." },
    { "ark_channel_latency_p95_seconds", "gauge",
      "P95 latency over the last one to two minutes (-1: no sample)." },
    { "ark_channel_latency_ewma_seconds", "gauge",
      "Exponentially weighted moving average latency." },
    { "ark_channel_failovers_total", "counter",
      "Failed attempts after which another channel was tried." },
    { "ark_channel_responses_total", "counter",
      "Attempts by upstream status class (none: no HTTP answer)." },
    { "ark_channel_tokens_total", "counter",
      "Tokens of the answers the channel gave, by direction." },
    { "ark_channel_spend_nano_total", "counter",
      "Spend at the channel's prices, nano-units of the currency." },
    { "ark_channel_ttfb_seconds", "histogram",
      "Time to first byte of successful attempts." },
    { "ark_channel_duration_seconds", "histogram",
      "Total duration of successful attempts." },
};

/* Histogram bounds (seconds); counts come from the signals' log buckets,
 * each counted at its middle. */
static const double le_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
};
static const char *const le_names[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "30", "60"
};

static void put_histogram(request_rec *r, const char *name,
                          const char *labels, _Atomic uint64_t *h)
{
    uint64_t counts[ARK_SIG_LAT_BUCKETS], total = 0, cum;
    double sum = 0;
    unsigned int b;
    int i;

    for (i = 0; i < ARK_SIG_LAT_BUCKETS; i++) {
        counts[i] = atomic_load(&h[i]);
        total += counts[i];
        sum += (double)counts[i] * ark_sig_bucket_value_us(i) / 1e6;
    }
    for (b = 0; b < sizeof(le_bounds) / sizeof(le_bounds[0]); b++) {
        for (cum = 0, i = 0; i < ARK_SIG_LAT_BUCKETS; i++) {
            if (ark_sig_bucket_value_us(i) / 1e6 <= le_bounds[b]) {
                cum += counts[i];
            }
        }
        ap_rprintf(r, "%s_bucket{%s,le=\"%s\"} %" APR_UINT64_T_FMT "\n",
                   name, labels, le_names[b], cum);
    }
    ap_rprintf(r, "%s_bucket{%s,le=\"+Inf\"} %" APR_UINT64_T_FMT "\n"
               "%s_sum{%s} %.6f\n%s_count{%s} %" APR_UINT64_T_FMT "\n",
               name, labels, total, name, labels, sum, name, labels, total);
}

static void put_header(request_rec *r, const metric_t *m)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help,
               m->name, m->type);
}

typedef struct {
    request_rec *r;
    const char *name;                  /* metric name */
    const char *labels;                /* extra labels and ",", or "" */
    const char *scope;                 /* "key" or "tenant" */
    int field;
} stat_line_t;

static void put_stat_line(void *ctx, const char *id, const apr_int64_t *v)
{
    stat_line_t *c = ctx;

    ap_rprintf(c->r, "%s{%s%s=\"%s\"} %" APR_INT64_T_FMT "\n", c->name,
               c->labels, c->scope, id, v[c->field]);
}

/* Per key and per tenant: requests, tokens, spend, refusals (this node).
 * Names are safe in label values: [A-Za-z0-9._@-]. */
static void identity_metrics(request_rec *r, ark_govern_t *g)
{
    static const struct {
        const char *name, *help, *labels;
        int field;
    } m[] = {
        { "ark_requests_total", "Requests served (cache hits included).",
          "", ARK_SF_REQUESTS },
        { "ark_tokens_total", "Tokens served by upstreams.",
          "direction=\"in\",", ARK_SF_PROMPT },
        { "ark_tokens_total", NULL, "direction=\"out\",",
          ARK_SF_COMPLETION },
        { "ark_spend_nano_total", "Spend, nano-units of the currency.", "",
          ARK_SF_SPEND },
        { "ark_cache_hits_served_total", "Requests answered from the cache.",
          "", ARK_SF_CACHE_HITS },
        { "ark_refusals_total", "Requests refused by limits and budgets.",
          "reason=\"rate\",", ARK_SF_REF_RATE },
        { "ark_refusals_total", NULL, "reason=\"concurrency\",",
          ARK_SF_REF_CONC },
        { "ark_refusals_total", NULL, "reason=\"budget\",",
          ARK_SF_REF_BUDGET },
    };
    static const char *const scopes[][2] = {
        { ARK_STAT_KEY, "key" }, { ARK_STAT_TENANT, "tenant" }
    };
    unsigned int i, sc;

    for (sc = 0; sc < 2; sc++) {
        for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
            stat_line_t c;

            c.r = r;
            c.name = apr_pstrcat(r->pool, m[i].name, "_by_", scopes[sc][1],
                                 NULL);
            c.labels = m[i].labels;
            c.scope = scopes[sc][1];
            c.field = m[i].field;
            if (m[i].help) {
                ap_rprintf(r, "# HELP %s %s\n# TYPE %s counter\n", c.name,
                           m[i].help, c.name);
            }
            ark_govern_stat_each(g, scopes[sc][0], put_stat_line, &c);
        }
    }
}

typedef struct {
    apr_int64_t v[ARK_STAT_FIELDS];
    int found;
} cache_stat_t;

static void get_cache_stat(void *ctx, const char *id, const apr_int64_t *v)
{
    cache_stat_t *c = ctx;

    if (!*id) {
        memcpy(c->v, v, sizeof(c->v));
        c->found = 1;
    }
}

/* Cache results of gateway requests on this node, all processes. */
static void cache_metrics(request_rec *r, ark_govern_t *g)
{
    static const char *const results[] = {
        NULL, "hit", "miss", "bypass", "error", "skip"
    };
    cache_stat_t c;
    int i;

    memset(&c, 0, sizeof(c));
    ark_govern_stat_each(g, ARK_STAT_CACHE, get_cache_stat, &c);
    ap_rputs("# HELP ark_cache_requests_total Gateway requests by cache "
             "result.\n# TYPE ark_cache_requests_total counter\n", r);
    for (i = 1; i <= 5; i++) {
        ap_rprintf(r, "ark_cache_requests_total{result=\"%s\"} %"
                   APR_INT64_T_FMT "\n", results[i], c.v[i]);
    }
    ap_rprintf(r, "# HELP ark_cache_lookup_seconds Time spent asking "
               "ark-cached.\n# TYPE ark_cache_lookup_seconds summary\n"
               "ark_cache_lookup_seconds_sum %.6f\n"
               "ark_cache_lookup_seconds_count %" APR_INT64_T_FMT "\n",
               (double)c.v[6] / 1e6, c.v[0]);
}

/* The in-flight journal (ArkGovernJournal). */
static void journal_metrics(request_rec *r)
{
    ark_journal_t *j = ark_journal_get();
    ark_journal_stats_t js;

    if (!j) {
        return;
    }
    ark_journal_stats(j, &js);
    ap_rprintf(r,
        "# HELP ark_journal_slots_in_use Requests in flight recorded in "
        "the crash-safe journal.\n"
        "# TYPE ark_journal_slots_in_use gauge\n"
        "ark_journal_slots_in_use %d\n"
        "# HELP ark_journal_slots Size of the in-flight journal.\n"
        "# TYPE ark_journal_slots gauge\n"
        "ark_journal_slots %d\n"
        "# HELP ark_journal_replays_total Requests of dead gateway "
        "processes billed from the journal, at the estimate or at their "
        "actual usage.\n"
        "# TYPE ark_journal_replays_total counter\n"
        "ark_journal_replays_total{kind=\"estimate\"} %" APR_UINT64_T_FMT
        "\n"
        "ark_journal_replays_total{kind=\"known\"} %" APR_UINT64_T_FMT "\n"
        "# HELP ark_journal_full_total Requests that went upstream "
        "unjournaled: no free slot (raise ArkGovernJournal slots=).\n"
        "# TYPE ark_journal_full_total counter\n"
        "ark_journal_full_total %" APR_UINT64_T_FMT "\n"
        "# HELP ark_journal_too_long_total Requests unjournaled because a "
        "name did not fit a slot.\n"
        "# TYPE ark_journal_too_long_total counter\n"
        "ark_journal_too_long_total %" APR_UINT64_T_FMT "\n",
        js.in_use, js.slots, js.replay_estimate, js.replay_known, js.full,
        js.too_long);
}

/* Node-wide governance health and refusals. */
static void governance_metrics(request_rec *r)
{
    ark_govern_t *g = ark_govern_client();
    ark_gov_stats_t st;
    int v;

    if (!g) {
        return;
    }
    ark_govern_stats(g, &st);
    identity_metrics(r, g);
    cache_metrics(r, g);
    ap_rprintf(r,
        "# HELP ark_governance_redis_up Whether the last call to the "
        "governance Redis succeeded (1), failed (0); -1 when none is "
        "configured.\n"
        "# TYPE ark_governance_redis_up gauge\n"
        "ark_governance_redis_up %d\n"
        "# HELP ark_governance_spend_buffered_nano Spend (nano-units) "
        "waiting in shared memory for Redis.\n"
        "# TYPE ark_governance_spend_buffered_nano gauge\n"
        "ark_governance_spend_buffered_nano %" APR_INT64_T_FMT "\n"
        "# HELP ark_governance_tokens_buffered Tokens waiting in shared "
        "memory for Redis.\n"
        "# TYPE ark_governance_tokens_buffered gauge\n"
        "ark_governance_tokens_buffered %" APR_INT64_T_FMT "\n"
        "# HELP ark_governance_local_decisions_total Admissions decided by "
        "node-local counters (Redis unreachable or not configured).\n"
        "# TYPE ark_governance_local_decisions_total counter\n"
        "ark_governance_local_decisions_total %" APR_UINT64_T_FMT "\n"
        "# HELP ark_governance_flushes_total Buffered usage batches written "
        "to Redis.\n"
        "# TYPE ark_governance_flushes_total counter\n"
        "ark_governance_flushes_total %" APR_UINT64_T_FMT "\n"
        "# HELP ark_governance_pending_settlements Settlements sent "
        "without an answer, waiting to be replayed (exactly once).\n"
        "# TYPE ark_governance_pending_settlements gauge\n"
        "ark_governance_pending_settlements %" APR_UINT64_T_FMT "\n"
        "# HELP ark_governance_uncertain_total Unanswered settlements "
        "merged for want of replay room (may count twice).\n"
        "# TYPE ark_governance_uncertain_total counter\n"
        "ark_governance_uncertain_total %" APR_UINT64_T_FMT "\n"
        "# HELP ark_governance_wait_short_total Settlements confirmed by "
        "fewer replicas than wait-replicas (kept for replay).\n"
        "# TYPE ark_governance_wait_short_total counter\n"
        "ark_governance_wait_short_total %" APR_UINT64_T_FMT "\n"
        "# HELP ark_governance_table_full_total Counters that found no "
        "free slot in the node-local table (raise ArkGovernSlots).\n"
        "# TYPE ark_governance_table_full_total counter\n"
        "ark_governance_table_full_total %" APR_UINT64_T_FMT "\n"
        "# HELP ark_governance_refusals_total Requests refused by limits "
        "and budgets, by reason.\n"
        "# TYPE ark_governance_refusals_total counter\n",
        st.redis_configured ? st.redis_up : -1, st.buffered_nano,
        st.buffered_tokens, st.fallbacks, st.flushes, st.pending,
        st.uncertain, st.wait_short, st.table_full);
    for (v = ARK_GOV_REQUESTS; v <= ARK_GOV_UNAVAILABLE; v++) {
        ap_rprintf(r, "ark_governance_refusals_total{reason=\"%s\"} %"
                   APR_UINT64_T_FMT "\n",
                   ark_gov_verdict_name((ark_gov_verdict_t)v),
                   st.refused[v]);
    }
    journal_metrics(r);
}

int ark_metrics_handler(request_rec *r)
{
    ark_server_conf_t *sc = ap_get_module_config(r->server->module_config,
                                                 &ark_module);
    apr_time_t now = apr_time_now();
    unsigned int k;
    int i, j;

    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    for (k = 0; k < sizeof(metrics) / sizeof(metrics[0]); k++) {
        put_header(r, &metrics[k]);
        for (i = 0; i < sc->model_order->nelts; i++) {
            const char *alias = APR_ARRAY_IDX(sc->model_order, i,
                                              const char *);
            const ark_model_t *m = apr_hash_get(sc->models, alias,
                                                APR_HASH_KEY_STRING);

            for (j = 0; j < m->channels->nelts; j++) {
                const ark_channel_t *ch = &APR_ARRAY_IDX(m->channels, j,
                                                         ark_channel_t);
                ark_chan_slot_t *slot = &sc->slots[ch->slot];
                const char *labels = apr_psprintf(
                    r->pool, "model=\"%s\",channel=\"%s\",provider=\"%s\"",
                    m->alias, ch->name, ch->provider->name);
                ark_chan_view_t v;

                ark_sig_view(slot, &sc->breaker, now, &v);
                switch (k) {
                case 0:
                    ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n", metrics[k].name, labels,
                               (apr_uint64_t)atomic_load(
                                   &slot->requests));
                    break;
                case 1:
                    ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n", metrics[k].name, labels,
                               (apr_uint64_t)atomic_load(
                                   &slot->failures));
                    break;
                case 2:
                    ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n", metrics[k].name, labels,
                               (apr_uint64_t)atomic_load(
                                   &slot->hedges));
                    break;
                case 3:
                    ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n", metrics[k].name, labels,
                               (apr_uint64_t)atomic_load(
                                   &slot->opens));
                    break;
                case 4:
                    ap_rprintf(r, "%s{%s} %d\n", metrics[k].name, labels,
                               (int)v.circuit);
                    break;
                case 5:
                    ap_rprintf(r, "%s{%s} %u\n", metrics[k].name, labels,
                               v.inflight);
                    break;
                case 6:
                    ap_rprintf(r, "%s{%s} %.4f\n", metrics[k].name, labels,
                               v.success_ratio);
                    break;
                case 7:
                    ap_rprintf(r, "%s{%s,kind=\"ttfb\"} %.6f\n"
                               "%s{%s,kind=\"total\"} %.6f\n",
                               metrics[k].name, labels,
                               v.p95_ttfb_ms < 0 ? -1 : v.p95_ttfb_ms / 1e3,
                               metrics[k].name, labels,
                               v.p95_total_ms < 0 ? -1
                                                  : v.p95_total_ms / 1e3);
                    break;
                case 8:
                    ap_rprintf(r, "%s{%s,kind=\"ttfb\"} %.6f\n"
                               "%s{%s,kind=\"total\"} %.6f\n",
                               metrics[k].name, labels,
                               v.ewma_ttfb_ms / 1e3, metrics[k].name, labels,
                               v.ewma_total_ms / 1e3);
                    break;
                case 9:
                    ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n",
                               metrics[k].name, labels,
                               (apr_uint64_t)atomic_load(&slot->failovers));
                    break;
                case 10: {
                    static const char *const cls[] = {
                        "2xx", "4xx", "5xx", "other", "none"
                    };
                    int c;

                    for (c = 0; c < 5; c++) {
                        ap_rprintf(r, "%s{%s,class=\"%s\"} %"
                                   APR_UINT64_T_FMT "\n", metrics[k].name,
                                   labels, cls[c],
                                   (apr_uint64_t)atomic_load(
                                       &slot->status[c]));
                    }
                    break;
                }
                case 11:
                    ap_rprintf(r, "%s{%s,direction=\"in\"} %" APR_UINT64_T_FMT
                               "\n%s{%s,direction=\"out\"} %"
                               APR_UINT64_T_FMT "\n", metrics[k].name,
                               labels,
                               (apr_uint64_t)atomic_load(&slot->tokens_in),
                               metrics[k].name, labels,
                               (apr_uint64_t)atomic_load(&slot->tokens_out));
                    break;
                case 12:
                    ap_rprintf(r, "%s{%s} %" APR_INT64_T_FMT "\n",
                               metrics[k].name, labels,
                               (apr_int64_t)atomic_load(&slot->spend_nano));
                    break;
                case 13:
                    put_histogram(r, metrics[k].name, labels,
                                  slot->ttfb_hist);
                    break;
                default:
                    put_histogram(r, metrics[k].name, labels,
                                  slot->total_hist);
                    break;
                }
            }
        }
    }
    governance_metrics(r);
    return OK;
}

/* ------------------------------------------------------------ status */

typedef struct {
    apr_array_header_t *arr;
    apr_pool_t *p;
    apr_time_t now;
} amounts_ctx_t;

static void collect_amount(void *ctx, const char *id, const apr_int64_t *v)
{
    amounts_ctx_t *c = ctx;
    ark_status_amount_t *a;

    if (v[ARK_STAT_FIELDS - 1] != c->now / apr_time_from_sec(86400)) {
        return;                        /* not today's */
    }
    a = apr_array_push(c->arr);
    a->name = apr_pstrdup(c->p, id);
    a->nano = v[0];
    a->requests = v[1];
}

static int by_amount(const void *x, const void *y)
{
    const ark_status_amount_t *a = x, *b = y;

    return a->nano < b->nano ? 1 : a->nano > b->nano ? -1
                                                     : strcmp(a->name,
                                                              b->name);
}

static apr_array_header_t *amounts(ark_govern_t *g, const char *prefix,
                                   apr_time_t now, apr_pool_t *p)
{
    amounts_ctx_t c;

    c.arr = apr_array_make(p, 8, sizeof(ark_status_amount_t));
    c.p = p;
    c.now = now;
    if (g) {
        ark_govern_stat_each(g, prefix, collect_amount, &c);
    }
    qsort(c.arr->elts, (size_t)c.arr->nelts, sizeof(ark_status_amount_t),
          by_amount);
    return c.arr;
}

/* Fills a snapshot of this node from shared memory. */
static void status_snapshot(request_rec *r, ark_status_t *st)
{
    ark_server_conf_t *sc = ap_get_module_config(r->server->module_config,
                                                 &ark_module);
    ark_govern_t *g = ark_govern_client();
    apr_time_t now = apr_time_now();
    int i, j, n = 0;

    memset(st, 0, sizeof(*st));
    st->node = r->server->server_hostname;
    st->version = "mod_ark " ARK_VERSION;
    st->now = now;
    st->config_time = sc->config_time;
    st->refresh_s = 10;
    st->channels = apr_pcalloc(r->pool, sizeof(ark_status_channel_t)
                                        * (apr_size_t)(sc->nslots + 1));
    for (i = 0; i < sc->model_order->nelts; i++) {
        const char *alias = APR_ARRAY_IDX(sc->model_order, i, const char *);
        const ark_model_t *m = apr_hash_get(sc->models, alias,
                                            APR_HASH_KEY_STRING);

        for (j = 0; m && j < m->channels->nelts && n < sc->nslots; j++) {
            const ark_channel_t *ch = &APR_ARRAY_IDX(m->channels, j,
                                                     ark_channel_t);
            ark_chan_slot_t *slot = &sc->slots[ch->slot];
            ark_status_channel_t *c = &st->channels[n++];
            apr_time_t t[ARK_SIG_SERIES];
            uint32_t req[ARK_SIG_SERIES], err[ARK_SIG_SERIES];
            double p95[ARK_SIG_SERIES];
            ark_chan_view_t v;
            int k;

            ark_sig_view(slot, &sc->breaker, now, &v);
            c->name = ch->name;
            c->provider = ch->provider->name;
            c->type = ch->provider->type->name;
            c->model = alias;
            c->upstream_model = ch->upstream_model;
            c->circuit = (int)v.circuit;
            c->inflight = v.inflight;
            c->requests = atomic_load(&slot->requests);
            c->failures = atomic_load(&slot->failures);
            c->hedges = atomic_load(&slot->hedges);
            c->opens = atomic_load(&slot->opens);
            c->success_ratio = v.success_ratio;
            c->p95_ttfb_ms = v.p95_ttfb_ms;
            c->p95_total_ms = v.p95_total_ms;
            c->spend_today_nano = ark_sig_spend_today(slot, now);
            c->point_len = ARK_SIG_SERIES_LEN;
            c->npoints = ark_sig_series(slot, now, t, req, err, p95);
            if (c->npoints > ARK_STATUS_POINTS) {
                c->npoints = ARK_STATUS_POINTS;
            }
            for (k = 0; k < c->npoints; k++) {
                c->points[k].t = t[k];
                c->points[k].requests = req[k];
                c->points[k].errors = err[k];
                c->points[k].p95_ms = p95[k];
            }
        }
    }
    st->nchannels = n;
    if (g) {
        ark_gov_stats_t gs;
        cache_stat_t cs;
        int v;

        ark_govern_stats(g, &gs);
        st->redis_configured = gs.redis_configured;
        st->redis_up = gs.redis_up;
        st->buffered_nano = gs.buffered_nano;
        for (v = ARK_GOV_REQUESTS; v <= ARK_GOV_UNAVAILABLE; v++) {
            st->refusals += gs.refused[v];
        }
        memset(&cs, 0, sizeof(cs));
        ark_govern_stat_each(g, ARK_STAT_CACHE, get_cache_stat, &cs);
        st->cache_configured = sc->cache.servers->nelts > 0;
        st->cache_lookups = (uint64_t)cs.v[0];
        st->cache_hits = (uint64_t)cs.v[1];
        st->cache_misses = (uint64_t)cs.v[2];
        st->cache_errors = (uint64_t)cs.v[4];
        st->cache_skipped = (uint64_t)(cs.v[3] + cs.v[5]);
    }
    st->spend_by_tenant = amounts(g, ARK_STAT_DAY_TENANT, now, r->pool);
    st->spend_by_provider = amounts(g, ARK_STAT_DAY_PROVIDER, now, r->pool);
}

int ark_status_handler(request_rec *r)
{
    ark_status_t st;
    const char *body, *fmt = r->args ? strstr(r->args, "format=json") : NULL;

    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    status_snapshot(r, &st);
    if (fmt) {
        body = ark_status_json(&st, r->pool);
        ap_set_content_type(r, "application/json");
    }
    else {
        body = ark_status_html(&st, r->pool);
        ap_set_content_type(r, "text/html; charset=utf-8");
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}
