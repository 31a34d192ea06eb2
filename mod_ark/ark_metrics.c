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

#include <apr_strings.h>
#include <http_protocol.h>

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
};

static void put_header(request_rec *r, const metric_t *m)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help,
               m->name, m->type);
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
        "# HELP ark_governance_table_full_total Counters that found no "
        "free slot in the node-local table (raise ArkGovernSlots).\n"
        "# TYPE ark_governance_table_full_total counter\n"
        "ark_governance_table_full_total %" APR_UINT64_T_FMT "\n"
        "# HELP ark_governance_refusals_total Requests refused by limits "
        "and budgets, by reason.\n"
        "# TYPE ark_governance_refusals_total counter\n",
        st.redis_configured ? st.redis_up : -1, st.buffered_nano,
        st.buffered_tokens, st.fallbacks, st.flushes, st.table_full);
    for (v = ARK_GOV_REQUESTS; v <= ARK_GOV_UNAVAILABLE; v++) {
        ap_rprintf(r, "ark_governance_refusals_total{reason=\"%s\"} %"
                   APR_UINT64_T_FMT "\n",
                   ark_gov_verdict_name((ark_gov_verdict_t)v),
                   st.refused[v]);
    }
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
                default:
                    ap_rprintf(r, "%s{%s,kind=\"ttfb\"} %.6f\n"
                               "%s{%s,kind=\"total\"} %.6f\n",
                               metrics[k].name, labels,
                               v.ewma_ttfb_ms / 1e3, metrics[k].name, labels,
                               v.ewma_total_ms / 1e3);
                    break;
                }
            }
        }
    }
    governance_metrics(r);
    return OK;
}
