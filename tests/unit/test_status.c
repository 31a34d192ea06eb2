/* Unit tests for the /ark/status renderers (ark_status.c): the HTML page
 * of a snapshot with three channels (closed, open, half-open), its
 * cards, table rows, charts and spend tables; names with HTML special
 * characters escaped everywhere; the zero-data cases (no channels, no
 * points, unknown latencies shown as a dash); and the JSON object, parsed
 * back with jansson. */
#include "ark_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "ark_limit.h"
#include "ark_status.h"

/* 2026-11-27T12:00:00Z */
#define NOON ((apr_time_t)1795780800 * APR_USEC_PER_SEC)
#define SEC(n) apr_time_from_sec(n)
#define DASH "\xe2\x80\x93"

/* ----------------------------------------------------------- helpers */

/* How often needle occurs in hay. */
static int count(const char *hay, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);

    for (hay = strstr(hay, needle); hay; hay = strstr(hay + len, needle)) {
        n++;
    }
    return n;
}

/* The text from the first occurrence of start up to and including end
 * (from p); fails the test if either is missing. */
static const char *slice(const char *hay, const char *start,
                         const char *end, apr_pool_t *p)
{
    const char *a = strstr(hay, start), *b;

    if (!a) {
        fail_msg("not found: %s", start);
    }
    b = strstr(a, end);
    if (!b) {
        fail_msg("no %s after %s", end, start);
    }
    return apr_pstrndup(p, a, (apr_size_t)(b - a) + strlen(end));
}

/* The table row of channel name (name as it appears in the attribute). */
static const char *row(const char *html, const char *name, apr_pool_t *p)
{
    return slice(html, apr_psprintf(p, "<tr data-channel=\"%s\"", name),
                 "</tr>", p);
}

/* The content of the first <td class="cls..."> in text: the tag's
 * attributes in *pattrs (if not NULL) and what is between > and </td>. */
static const char *cell(const char *text, const char *cls,
                        const char **pattrs, apr_pool_t *p)
{
    const char *td = slice(text, apr_psprintf(p, "<td class=\"%s", cls),
                           "</td>", p);
    const char *gt = strchr(td, '>');

    if (pattrs) {
        *pattrs = apr_pstrndup(p, td, (apr_size_t)(gt - td));
    }
    return apr_pstrndup(p, gt + 1, strlen(gt + 1) - strlen("</td>"));
}

static void add_amount(apr_array_header_t *arr, const char *name,
                       apr_int64_t nano, apr_int64_t requests)
{
    ark_status_amount_t *a = apr_array_push(arr);

    a->name = name;
    a->nano = nano;
    a->requests = requests;
}

static void channel_init(ark_status_channel_t *c, const char *name,
                         const char *provider, const char *model,
                         int circuit)
{
    memset(c, 0, sizeof(*c));
    c->name = name;
    c->provider = provider;
    c->type = "openai";
    c->model = model;
    c->upstream_model = "gpt-4o-mini";
    c->circuit = circuit;
    c->success_ratio = -1;
    c->p95_ttfb_ms = -1;
    c->p95_total_ms = -1;
    c->point_len = SEC(10);
}

/* Appends a point one interval after the last one (the first at
 * NOON - 5 min). */
static void add_point(ark_status_channel_t *c, uint32_t requests,
                      uint32_t errors, double p95)
{
    ark_status_point_t *pt = &c->points[c->npoints];

    pt->t = NOON - SEC(300) + c->npoints * c->point_len;
    pt->requests = requests;
    pt->errors = errors;
    pt->p95_ms = p95;
    c->npoints++;
}

/* Three channels of model "chat": chan-a closed and busy, chan-b open
 * (all its recent attempts failed), chan-c half-open; a cache, Redis up,
 * spend by two tenants and two providers. */
static ark_status_t *snapshot(apr_pool_t *p)
{
    ark_status_t *st = apr_pcalloc(p, sizeof(*st));
    ark_status_channel_t *c;
    int i;

    st->node = "node-1.example";
    st->version = "mod_ark 0.5.0";
    st->now = NOON;
    st->config_time = NOON - SEC(2 * 3600 + 5 * 60 + 7);
    st->refresh_s = 5;
    st->nchannels = 3;
    st->channels = apr_pcalloc(p, 3 * sizeof(*st->channels));

    c = &st->channels[0];
    channel_init(c, "chan-a", "prov-a", "chat", 0);
    c->inflight = 2;
    c->requests = 1234;
    c->failures = 12;
    c->hedges = 3;
    c->success_ratio = 0.98;
    c->p95_ttfb_ms = 150.4;
    c->p95_total_ms = 812.0;
    c->spend_today_nano = 1500000000LL;           /* 1.5 */
    for (i = 0; i < ARK_STATUS_POINTS; i++) {
        add_point(c, (uint32_t)(i % 7 + 1), i == 29 ? 1 : 0,
                  100.0 + i * 10);
    }

    c = &st->channels[1];
    channel_init(c, "chan-b", "prov-b", "chat", 1);
    c->requests = 40;
    c->failures = 25;
    c->opens = 2;
    c->success_ratio = 0.0;
    c->p95_ttfb_ms = 3.24;
    c->p95_total_ms = 12500;
    c->spend_today_nano = 250000;                 /* 0.00025 */
    add_point(c, 10, 10, 40);
    add_point(c, 0, 0, -1);                       /* nothing ended */
    add_point(c, 4, 2, 55);

    c = &st->channels[2];
    channel_init(c, "chan-c", "prov-b", "chat", 2);
    c->success_ratio = 1.0;

    st->cache_configured = 1;
    st->cache_lookups = 200;
    st->cache_hits = 50;
    st->cache_misses = 140;
    st->cache_errors = 4;
    st->cache_skipped = 6;
    st->redis_configured = 1;
    st->redis_up = 1;
    st->buffered_nano = 0;
    st->refusals = 9;
    st->spend_by_tenant = apr_array_make(p, 2, sizeof(ark_status_amount_t));
    add_amount(st->spend_by_tenant, "acme", 1200000000LL, 900);
    add_amount(st->spend_by_tenant, "globex", 300250000LL, 334);
    st->spend_by_provider = apr_array_make(p, 2,
                                           sizeof(ark_status_amount_t));
    add_amount(st->spend_by_provider, "prov-a", 1500000000LL, 1234);
    add_amount(st->spend_by_provider, "prov-b", 250000, 40);
    return st;
}

/* Checks what every page must be: one document, no script, nothing
 * fetched from anywhere (no src, no http(s) URL). */
static void assert_self_contained(const char *html)
{
    assert_int_equal(strncmp(html, "<!DOCTYPE html>\n", 16), 0);
    assert_int_equal(count(html, "<html"), 1);
    assert_non_null(strstr(html, "</html>\n"));
    assert_int_equal(count(html, "<script"), 0);
    assert_int_equal(count(html, "src="), 0);
    assert_int_equal(count(html, "http://"), 0);
    assert_int_equal(count(html, "https://"), 0);
    assert_int_equal(count(html, "url("), 0);
    assert_int_equal(count(html, "@import"), 0);
    assert_non_null(strstr(html, "default-src 'none'"));
}

/* With ARK_STATUS_DUMP=path in the environment, the page of the full
 * snapshot is also written to path, to look at it in a browser. */
static void maybe_dump(const char *html)
{
    const char *path = getenv("ARK_STATUS_DUMP");
    FILE *f;

    if (!path || !*path) {
        return;
    }
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(html, f);
    fclose(f);
}

/* ------------------------------------------------------------- tests */

static void test_html_header_and_cards(void **state)
{
    apr_pool_t *p = *state;
    ark_status_t *st = snapshot(p);
    const char *html = ark_status_html(st, p);

    maybe_dump(html);
    assert_self_contained(html);
    assert_non_null(strstr(html, "<title>Ark status: node-1.example</title>"));
    assert_non_null(strstr(html, "<meta http-equiv=\"refresh\" "
                                 "content=\"5\">"));
    assert_non_null(strstr(html, "<dd id=\"node\">node-1.example</dd>"));
    assert_non_null(strstr(html, "<dd id=\"version\">mod_ark 0.5.0</dd>"));
    assert_non_null(strstr(html, "<dd id=\"uptime\" data-seconds=\"7507\">"
                                 "2h 05m</dd>"));
    assert_non_null(strstr(html, "<dd id=\"generated\" "
                                 "data-time=\"2026-11-27T12:00:00Z\">"
                                 "12:00:00 UTC</dd>"));
    /* circuits card: one of each */
    assert_non_null(strstr(html, "data-state=\"closed\">1</span>"));
    assert_non_null(strstr(html, "data-state=\"half-open\">1</span>"));
    assert_non_null(strstr(html, "data-state=\"open\">1</span>"));
    /* cache: 50 hits / 200 lookups */
    assert_non_null(strstr(html, "<p class=\"big\" id=\"cache-hit-ratio\" "
                                 "data-value=\"0.2500\">25.0%</p>"));
    assert_non_null(strstr(html, "<div class=\"card\" id=\"card-cache\" "
                                 "data-configured=\"yes\">"));
    /* spend today: the channels' sum, 1.5 + 0.00025 */
    assert_non_null(strstr(html, "id=\"spend-total\" "
                                 "data-nano=\"1500250000\">1.50025</p>"));
    /* governance */
    assert_non_null(strstr(html, "id=\"card-governance\" data-redis=\"up\""));
    assert_non_null(strstr(html, "id=\"redis-state\">Redis up</p>"));
    assert_non_null(strstr(html, "<span id=\"buffered-spend\" "
                                 "data-nano=\"0\">0</span>"));
    assert_non_null(strstr(html, "<span id=\"refusals\" data-value=\"9\">"
                                 "9</span>"));
}

static void test_html_channel_rows(void **state)
{
    apr_pool_t *p = *state;
    ark_status_t *st = snapshot(p);
    const char *html = ark_status_html(st, p);
    const char *r, *attrs;

    assert_int_equal(count(html, "<tr data-channel="), 3);
    /* in the snapshot's order */
    assert_true(strstr(html, "<tr data-channel=\"chan-a\"")
                < strstr(html, "<tr data-channel=\"chan-b\""));
    assert_true(strstr(html, "<tr data-channel=\"chan-b\"")
                < strstr(html, "<tr data-channel=\"chan-c\""));

    r = row(html, "chan-a", p);
    assert_non_null(strstr(r, "data-model=\"chat\" data-provider=\"prov-a\" "
                              "data-hedges=\"3\" data-opens=\"0\""));
    assert_string_equal(cell(r, "model", NULL, p), "chat");
    assert_string_equal(cell(r, "circuit", &attrs, p),
                        "<span class=\"badge closed\">closed</span>");
    assert_non_null(strstr(attrs, "data-state=\"closed\""));
    assert_string_equal(cell(r, "inflight", &attrs, p), "2");
    assert_string_equal(cell(r, "requests", &attrs, p), "1234");
    assert_non_null(strstr(attrs, "data-value=\"1234\""));
    assert_string_equal(cell(r, "failures", NULL, p), "12");
    assert_string_equal(cell(r, "error-ratio", &attrs, p), "2.0%");
    assert_non_null(strstr(attrs, "data-value=\"0.0200\""));
    assert_string_equal(cell(r, "p95-ttfb", &attrs, p), "150 ms");
    assert_non_null(strstr(attrs, "data-value=\"150.4\""));
    assert_string_equal(cell(r, "p95-total", NULL, p), "812 ms");
    assert_string_equal(cell(r, "spend", &attrs, p), "1.5");
    assert_non_null(strstr(attrs, "data-nano=\"1500000000\""));
    assert_non_null(strstr(cell(r, "provider", NULL, p), "prov-a"));
    assert_non_null(strstr(cell(r, "provider", NULL, p), "openai"));

    r = row(html, "chan-b", p);
    assert_string_equal(cell(r, "circuit", &attrs, p),
                        "<span class=\"badge open\">open</span>");
    assert_non_null(strstr(attrs, "data-state=\"open\""));
    assert_string_equal(cell(r, "error-ratio", NULL, p), "100.0%");
    assert_string_equal(cell(r, "p95-ttfb", NULL, p), "3.2 ms");
    assert_string_equal(cell(r, "p95-total", NULL, p), "12.5 s");
    assert_string_equal(cell(r, "spend", NULL, p), "0.00025");
    assert_non_null(strstr(r, "data-opens=\"2\""));

    r = row(html, "chan-c", p);
    assert_non_null(strstr(r, "<td class=\"circuit\" "
                              "data-state=\"half-open\">"));
    assert_string_equal(cell(r, "requests", NULL, p), "0");
    assert_string_equal(cell(r, "error-ratio", NULL, p), "0.0%");
    /* unknown latencies: a dash and an empty data-value */
    assert_string_equal(cell(r, "p95-ttfb", &attrs, p), DASH);
    assert_non_null(strstr(attrs, "data-value=\"\""));
    assert_string_equal(cell(r, "p95-total", NULL, p), DASH);
}

static void test_html_charts(void **state)
{
    apr_pool_t *p = *state;
    ark_status_t *st = snapshot(p);
    const char *html = ark_status_html(st, p);
    const char *a, *b, *fig;

    /* three charts per channel, each an inline <svg> */
    assert_int_equal(count(html, "<div class=\"channel-charts\""), 3);
    assert_int_equal(count(html, "<svg "), 9);
    assert_int_equal(count(html, "</svg>"), 9);
    assert_non_null(strstr(html, "<h2 id=\"charts-title\">Last 5 min</h2>"));

    a = slice(html, "<div class=\"channel-charts\" data-channel=\"chan-a\"",
              "</div>", p);
    assert_int_equal(count(a, "<svg "), 3);
    assert_int_equal(count(a, "data-points=\"30\""), 3);
    /* requests per 10 s: 30 bars, 1..7 requests, the axis up to 10 */
    fig = slice(a, "data-metric=\"requests\"", "</figure>", p);
    assert_non_null(strstr(fig, "<figcaption>Requests per 10 s"));
    assert_int_equal(count(fig, "<rect class=\"bar\""), 30);
    assert_int_equal(count(fig, "<rect class=\"bar err\""), 1);
    assert_non_null(strstr(fig, "data-min=\"1\" data-max=\"7\""));
    assert_non_null(strstr(fig, "ymax\" x=\"35.0\" y=\"15.0\">10</text>"));
    assert_non_null(strstr(fig, ">min 1 \xc2\xb7 max 7</p>"));
    /* the window: 11:55 to 12:00, the last point ending at noon */
    assert_non_null(strstr(fig, "class=\"xlabel xmin\" x=\"38.0\" "
                                "y=\"78\">11:55</text>"));
    assert_non_null(strstr(fig, ">12:00 UTC</text>"));
    /* the first bar at the left edge, the last ending at the right */
    assert_non_null(strstr(fig, "<rect class=\"bar\" x=\"38.0\""));
    assert_non_null(strstr(fig, "<title>11:55:00: 1 requests, 0 errors"));
    assert_non_null(strstr(fig, "<title>11:59:50: 2 requests, 1 errors"));
    /* P95 rises from 100 to 390 ms: one line, 30 dots, axis to 500 ms */
    fig = slice(a, "data-metric=\"p95\"", "</figure>", p);
    assert_int_equal(count(fig, "<path class=\"line\""), 1);
    assert_int_equal(count(fig, " M"), 0);
    assert_int_equal(count(fig, "<circle"), 30);
    assert_non_null(strstr(fig, ">500 ms</text>"));
    assert_non_null(strstr(fig, "data-min=\"100\" data-max=\"390\""));
    assert_non_null(strstr(fig, ">min 100 ms \xc2\xb7 max 390 ms</p>"));
    /* error ratio: 0 except the last point (1 of 2) */
    fig = slice(a, "data-metric=\"error-ratio\"", "</figure>", p);
    assert_non_null(strstr(fig, "data-min=\"0\" data-max=\"0.5\""));
    assert_non_null(strstr(fig, ">50%</text>"));

    /* chan-b: the empty interval breaks the lines */
    b = slice(html, "<div class=\"channel-charts\" data-channel=\"chan-b\"",
              "</div>", p);
    assert_non_null(strstr(b, "<span class=\"badge open\">open</span>"));
    fig = slice(b, "data-metric=\"error-ratio\"", "</figure>", p);
    assert_int_equal(count(fig, "<circle"), 2);
    assert_non_null(strstr(fig, "data-min=\"0.5\" data-max=\"1\""));
    assert_non_null(strstr(fig, ">100%</text>"));
    assert_non_null(strstr(fig, "<path class=\"line\" d=\"M"));
    assert_int_equal(count(fig, " M"), 1);        /* two segments */
    fig = slice(b, "data-metric=\"requests\"", "</figure>", p);
    assert_int_equal(count(fig, "<rect class=\"bar\""), 2);
    assert_int_equal(count(fig, "<rect class=\"bar err\""), 2);
    assert_non_null(strstr(fig, "data-min=\"0\" data-max=\"10\""));

    /* chan-c has no points: charts that say so */
    fig = slice(html, "<div class=\"channel-charts\" data-channel=\"chan-c\"",
                "</div>", p);
    assert_int_equal(count(fig, "<svg "), 3);
    assert_int_equal(count(fig, "data-points=\"0\""), 3);
    assert_int_equal(count(fig, "no data yet"), 3);
    assert_int_equal(count(fig, "<rect class=\"bar"), 0);
    assert_int_equal(count(fig, "<circle"), 0);
    assert_int_equal(count(fig, "<path"), 0);
}

static void test_html_spend_tables(void **state)
{
    apr_pool_t *p = *state;
    ark_status_t *st = snapshot(p);
    const char *html = ark_status_html(st, p);
    const char *t, *r, *attrs;

    t = slice(html, "<table id=\"spend-tenants\"", "</table>", p);
    assert_int_equal(count(t, "<tr data-tenant="), 2);
    assert_true(strstr(t, "data-tenant=\"acme\"")
                < strstr(t, "data-tenant=\"globex\""));
    r = slice(t, "<tr data-tenant=\"globex\"", "</tr>", p);
    assert_string_equal(cell(r, "name", NULL, p), "globex");
    assert_string_equal(cell(r, "requests", NULL, p), "334");
    assert_string_equal(cell(r, "spend", &attrs, p), "0.30025");
    assert_non_null(strstr(attrs, "data-nano=\"300250000\""));
    /* the bar of the largest is full, the others in proportion */
    assert_non_null(strstr(t, "style=\"width:100%\""));
    assert_non_null(strstr(r, "style=\"width:25%\""));

    t = slice(html, "<table id=\"spend-providers\"", "</table>", p);
    assert_int_equal(count(t, "<tr data-provider="), 2);
    r = slice(t, "<tr data-provider=\"prov-b\"", "</tr>", p);
    assert_string_equal(cell(r, "spend", NULL, p), "0.00025");
    assert_string_equal(cell(r, "requests", NULL, p), "40");
    assert_int_equal(count(html, "no spend today"), 0);
}

/* Every name the page shows may hold <>&"' and comes out escaped. */
static void test_html_escapes_names(void **state)
{
    apr_pool_t *p = *state;
    ark_status_t *st = snapshot(p);
    const char *evil = "<script>alert(\"x&y's\")</script>";
    const char *esc =
        "&lt;script&gt;alert(&quot;x&amp;y&#39;s&quot;)&lt;/script&gt;";
    const char *html, *r;
    int n;

    st->node = evil;
    st->version = evil;
    st->channels[1].name = evil;
    st->channels[1].model = evil;
    st->channels[1].upstream_model = evil;
    st->channels[1].provider = evil;
    st->channels[1].type = evil;
    APR_ARRAY_IDX(st->spend_by_tenant, 0, ark_status_amount_t).name = evil;
    APR_ARRAY_IDX(st->spend_by_provider, 1, ark_status_amount_t).name =
        "a\"b'c<d>e&f";
    html = ark_status_html(st, p);

    assert_self_contained(html);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "alert(\""));
    assert_null(strstr(html, "y's"));
    n = count(html, esc);
    /* title, node, version; row: attribute, model, channel, upstream,
     * provider, type, data-model, data-provider; charts: div, heading,
     * model, 3 figures, 3 svg titles; tenant row and name */
    assert_int_equal(n, 3 + 8 + 9 + 2);
    r = row(html, esc, p);
    assert_non_null(strstr(r, "<td class=\"circuit\" data-state=\"open\">"));
    assert_non_null(strstr(html, "<tr data-provider=\"a&quot;b&#39;c&lt;d"
                                 "&gt;e&amp;f\">"));
}

static void test_html_zero_data(void **state)
{
    apr_pool_t *p = *state;
    ark_status_t *st = apr_pcalloc(p, sizeof(*st));
    const char *html;

    /* nothing at all: no channels, no cache, no Redis, no spend arrays,
     * no names */
    st->now = NOON;
    st->config_time = NOON;
    html = ark_status_html(st, p);
    assert_self_contained(html);
    assert_null(strstr(html, "http-equiv=\"refresh\""));
    assert_non_null(strstr(html, "<title>Ark status: </title>"));
    assert_non_null(strstr(html, "data-seconds=\"0\">0s</dd>"));
    assert_non_null(strstr(html, "no channels configured"));
    assert_int_equal(count(html, "<tr data-channel="), 0);
    assert_int_equal(count(html, "<svg"), 0);
    assert_non_null(strstr(html, "data-configured=\"no\""));
    assert_non_null(strstr(html, "data-value=\"\">" DASH "</p>"));
    assert_non_null(strstr(html, "data-redis=\"off\""));
    assert_non_null(strstr(html, "Redis not configured"));
    assert_non_null(strstr(html, "data-nano=\"0\">0</p>"));
    assert_int_equal(count(html, "no spend today"), 2);
    assert_non_null(strstr(html, "<table id=\"spend-tenants\""));
    assert_non_null(strstr(html, "<table id=\"spend-providers\""));
    assert_non_null(strstr(html, "data-state=\"open\">0</span>"));

    /* a cache with no lookups yet, Redis down with spend buffered, one
     * channel without points or data, empty spend arrays */
    st->cache_configured = 1;
    st->redis_configured = 1;
    st->redis_up = 0;
    st->buffered_nano = 42000000;
    st->nchannels = 1;
    st->channels = apr_pcalloc(p, sizeof(*st->channels));
    channel_init(&st->channels[0], "lonely", "prov", "m", 7);
    st->channels[0].point_len = 0;
    st->spend_by_tenant = apr_array_make(p, 1, sizeof(ark_status_amount_t));
    st->spend_by_provider = apr_array_make(p, 1,
                                           sizeof(ark_status_amount_t));
    html = ark_status_html(st, p);
    assert_self_contained(html);
    assert_non_null(strstr(html, "id=\"cache-hit-ratio\" data-value=\"\">"
                                 DASH "</p>"));
    assert_non_null(strstr(html, "data-redis=\"down\""));
    assert_non_null(strstr(html, "Redis down"));
    assert_non_null(strstr(html, "data-nano=\"42000000\">0.042</span>"));
    assert_string_equal(cell(row(html, "lonely", p), "error-ratio", NULL, p),
                        DASH);
    assert_string_equal(cell(row(html, "lonely", p), "p95-total", NULL, p),
                        DASH);
    assert_string_equal(cell(row(html, "lonely", p), "spend", NULL, p), "0");
    /* a circuit state the page does not know */
    assert_non_null(strstr(html, "data-state=\"unknown\""));
    assert_non_null(strstr(html, "<h2 id=\"charts-title\">Recent history"));
    assert_int_equal(count(html, "<svg "), 3);
    assert_int_equal(count(html, "no data yet"), 3);
    assert_int_equal(count(html, "no spend today"), 2);

    /* points whose latencies are all unknown: the dots are missing, the
     * bars are there */
    st->channels[0].point_len = SEC(10);
    add_point(&st->channels[0], 3, 0, -1);
    add_point(&st->channels[0], 1, 0, -1);
    html = ark_status_html(st, p);
    {
        const char *fig = slice(html, "data-metric=\"p95\"", "</figure>", p);

        assert_int_equal(count(fig, "<circle"), 0);
        assert_non_null(strstr(fig, "data-min=\"\" data-max=\"\""));
        assert_non_null(strstr(fig, ">no values</p>"));
        fig = slice(html, "data-metric=\"requests\"", "</figure>", p);
        assert_int_equal(count(fig, "<rect class=\"bar\""), 2);
    }
}

static void test_json(void **state)
{
    apr_pool_t *p = *state;
    ark_status_t *st = snapshot(p);
    const char *text;
    json_t *j, *c, *pts, *a;

    st->channels[2].name = "x<y>&\"z'";
    text = ark_status_json(st, p);
    j = ark_test_json_parse(text, strlen(text), 0, "status JSON", p);

    assert_string_equal(json_string_value(json_object_get(j, "node")),
                        "node-1.example");
    assert_string_equal(json_string_value(json_object_get(j, "generated")),
                        "2026-11-27T12:00:00Z");
    assert_int_equal(json_integer_value(json_object_get(j, "uptime_s")),
                     7507);
    assert_int_equal(json_integer_value(json_object_get(j, "refresh_s")), 5);
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(j, "circuits"),
                                         "open")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "spend_today")),
                        "1.50025");
    assert_true(json_integer_value(json_object_get(j, "spend_today_nano"))
                == 1500250000LL);
    a = json_object_get(j, "cache");
    assert_true(json_is_true(json_object_get(a, "configured")));
    assert_int_equal(json_integer_value(json_object_get(a, "lookups")), 200);
    assert_true(json_real_value(json_object_get(a, "hit_ratio")) == 0.25);
    a = json_object_get(j, "governance");
    assert_string_equal(json_string_value(json_object_get(a, "redis")), "up");
    assert_int_equal(json_integer_value(json_object_get(a, "refusals")), 9);
    assert_string_equal(
        json_string_value(json_object_get(a, "buffered_spend")), "0");

    assert_int_equal(json_array_size(json_object_get(j, "channels")), 3);
    c = json_array_get(json_object_get(j, "channels"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "name")),
                        "chan-a");
    assert_string_equal(json_string_value(json_object_get(c, "circuit")),
                        "closed");
    assert_int_equal(json_integer_value(json_object_get(c, "requests")),
                     1234);
    assert_int_equal(json_integer_value(json_object_get(c, "inflight")), 2);
    assert_int_equal(json_integer_value(json_object_get(c, "hedges")), 3);
    assert_true(json_real_value(json_object_get(c, "p95_ttfb_ms")) == 150.4);
    assert_string_equal(json_string_value(json_object_get(c, "spend_today")),
                        "1.5");
    assert_int_equal(json_integer_value(json_object_get(c, "point_len_ms")),
                     10000);
    pts = json_object_get(c, "points");
    assert_int_equal(json_array_size(pts), 30);
    a = json_array_get(pts, 29);
    assert_true(json_integer_value(json_object_get(a, "t"))
                == 1795780800LL - 10);
    assert_string_equal(json_string_value(json_object_get(a, "time")),
                        "2026-11-27T11:59:50Z");
    assert_int_equal(json_integer_value(json_object_get(a, "requests")), 2);
    assert_int_equal(json_integer_value(json_object_get(a, "errors")), 1);
    assert_true(json_real_value(json_object_get(a, "error_ratio")) == 0.5);
    assert_true(json_real_value(json_object_get(a, "p95_ms")) == 390.0);

    c = json_array_get(json_object_get(j, "channels"), 1);
    assert_string_equal(json_string_value(json_object_get(c, "circuit")),
                        "open");
    assert_int_equal(json_integer_value(json_object_get(c, "opens")), 2);
    assert_true(json_real_value(json_object_get(c, "error_ratio")) == 1.0);
    a = json_array_get(json_object_get(c, "points"), 1);
    assert_true(json_is_null(json_object_get(a, "error_ratio")));
    assert_true(json_is_null(json_object_get(a, "p95_ms")));

    c = json_array_get(json_object_get(j, "channels"), 2);
    assert_string_equal(json_string_value(json_object_get(c, "name")),
                        "x<y>&\"z'");
    assert_string_equal(json_string_value(json_object_get(c, "circuit")),
                        "half-open");
    assert_true(json_is_null(json_object_get(c, "p95_ttfb_ms")));
    assert_true(json_is_null(json_object_get(c, "p95_total_ms")));
    assert_int_equal(json_array_size(json_object_get(c, "points")), 0);

    a = json_array_get(json_object_get(j, "spend_by_tenant"), 1);
    assert_string_equal(json_string_value(json_object_get(a, "name")),
                        "globex");
    assert_string_equal(json_string_value(json_object_get(a, "spend")),
                        "0.30025");
    assert_int_equal(json_integer_value(json_object_get(a, "requests")), 334);
    assert_int_equal(json_array_size(json_object_get(j,
                                                     "spend_by_provider")),
                     2);
}

static void test_json_zero_data(void **state)
{
    apr_pool_t *p = *state;
    ark_status_t *st = apr_pcalloc(p, sizeof(*st));
    const char *text;
    json_t *j;

    st->now = NOON;
    st->config_time = NOON + SEC(5);   /* a clock step: no negative uptime */
    st->node = "bad \xff byte";        /* not UTF-8 */
    text = ark_status_json(st, p);
    j = ark_test_json_parse(text, strlen(text), 0, "empty status", p);
    assert_string_equal(json_string_value(json_object_get(j, "node")),
                        "bad ? byte");
    assert_true(json_is_null(json_object_get(j, "version")));
    assert_int_equal(json_integer_value(json_object_get(j, "uptime_s")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "channels")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "spend_by_tenant")),
                     0);
    assert_true(json_is_false(json_object_get(json_object_get(j, "cache"),
                                              "configured")));
    assert_true(json_is_null(json_object_get(json_object_get(j, "cache"),
                                             "hit_ratio")));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(j, "governance"), "redis")),
                        "off");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(test_html_header_and_cards),
        ARK_TEST(test_html_channel_rows),
        ARK_TEST(test_html_charts),
        ARK_TEST(test_html_spend_tables),
        ARK_TEST(test_html_escapes_names),
        ARK_TEST(test_html_zero_data),
        ARK_TEST(test_json),
        ARK_TEST(test_json_zero_data),
    };

    return ARK_TEST_RUN("status", tests);
}
