/* The /ark/status page: renders an ark_status_t snapshot as one
 * self-contained HTML page or as one JSON object. See ark_status.h.
 *
 * The HTML page is built into a growing buffer from the request pool: a
 * header (node, version, uptime, generated time), summary cards
 * (circuits, cache hit ratio, spend today, governance), the channel
 * table, per channel three server-side SVG charts over its points
 * (requests and errors per interval, error ratio, P95 latency), and the
 * spend tables by tenant and by provider. Styles are inline, charts are
 * inline SVG, there is no script and no URL outside the page, so the page
 * reads the same with JavaScript off and never fetches anything; a
 * Content-Security-Policy meta tag says so to the browser. Every string
 * of the snapshot passes through html_esc; the elements carry the ids,
 * classes and data attributes docs/status.md lists, for scripts and
 * tests. The JSON object holds the same data, built with jansson.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>
#include <jansson.h>

#include "ark_limit.h"
#include "ark_status.h"

/* What the page shows where a value is unknown: an en dash. */
#define DASH "\xe2\x80\x93"
/* A middle dot between items of a line. */
#define MIDDOT "\xc2\xb7"

/* Size of each chart: the SVG viewBox, and the plot area inside it (the
 * left margin holds the y labels, the bottom one the x labels). */
#define CH_W 260
#define CH_H 84
#define PL_X0 38.0
#define PL_X1 254.0
#define PL_Y0 8.0
#define PL_Y1 64.0

/* ------------------------------------------------------------ buffer */

/* A NUL-terminated string growing in p (doubling; the old blocks stay in
 * the pool until it is cleared, at most as much again as the page). */
typedef struct {
    apr_pool_t *p;
    char *buf;
    apr_size_t len, cap;
} sbuf_t;

static void sb_init(sbuf_t *b, apr_pool_t *p)
{
    b->p = p;
    b->cap = 16384;
    b->buf = apr_palloc(p, b->cap);
    b->len = 0;
    b->buf[0] = '\0';
}

static void sb_addn(sbuf_t *b, const char *s, apr_size_t n)
{
    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = b->cap * 2;
        char *nb;

        while (b->len + n + 1 > cap) {
            cap *= 2;
        }
        nb = apr_palloc(b->p, cap);
        memcpy(nb, b->buf, b->len);
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_add(sbuf_t *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

static void sb_printf(sbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = apr_vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n >= 0 && (apr_size_t)n < sizeof(small) - 1) {
        sb_addn(b, small, (apr_size_t)n);
        return;
    }
    va_start(ap, fmt);
    sb_add(b, apr_pvsprintf(b->p, fmt, ap));
    va_end(ap);
}

/* s escaped for HTML text and for attribute values in double or single
 * quotes; NULL is written as nothing. */
static void sb_esc(sbuf_t *b, const char *s)
{
    const char *run = s;

    if (!s) {
        return;
    }
    for (; *s; s++) {
        const char *rep;

        switch (*s) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        sb_addn(b, run, (apr_size_t)(s - run));
        sb_add(b, rep);
        run = s + 1;
    }
    sb_addn(b, run, (apr_size_t)(s - run));
}

/* ---------------------------------------------------------- formats */

static const char *circuit_name(int circuit)
{
    switch (circuit) {
    case 0:
        return "closed";
    case 1:
        return "open";
    case 2:
        return "half-open";
    default:
        return "unknown";
    }
}

static int known(double v)
{
    return isfinite(v) && v >= 0;
}

/* "2026-11-27T12:00:00Z" */
static const char *iso_time(apr_time_t t, apr_pool_t *p)
{
    apr_time_exp_t x;

    if (apr_time_exp_gmt(&x, t) != APR_SUCCESS) {
        return "";
    }
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                        x.tm_year + 1900, x.tm_mon + 1, x.tm_mday,
                        x.tm_hour, x.tm_min, x.tm_sec);
}

/* "12:03" or, with seconds, "12:03:10" (UTC) */
static const char *clock_time(apr_time_t t, int seconds, apr_pool_t *p)
{
    apr_time_exp_t x;

    if (apr_time_exp_gmt(&x, t) != APR_SUCCESS) {
        return "";
    }
    if (seconds) {
        return apr_psprintf(p, "%02d:%02d:%02d", x.tm_hour, x.tm_min,
                            x.tm_sec);
    }
    return apr_psprintf(p, "%02d:%02d", x.tm_hour, x.tm_min);
}

/* "42s", "5m 03s", "2h 05m", "3d 04h" */
static const char *duration_text(apr_int64_t s, apr_pool_t *p)
{
    if (s < 0) {
        s = 0;
    }
    if (s < 60) {
        return apr_psprintf(p, "%ds", (int)s);
    }
    if (s < 3600) {
        return apr_psprintf(p, "%dm %02ds", (int)(s / 60), (int)(s % 60));
    }
    if (s < 86400) {
        return apr_psprintf(p, "%dh %02dm", (int)(s / 3600),
                            (int)(s % 3600 / 60));
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT "d %02dh", s / 86400,
                        (int)(s % 86400 / 3600));
}

/* A number in its shortest form ("0.5", "12", "1e+06"), from p; C's %g,
 * as apr_snprintf's drops the leading zero ("0.5" -> ".5"). */
static const char *num_text(double v, apr_pool_t *p)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%.6g", v);
    return apr_pstrdup(p, buf);
}

/* A latency for people: "0.4 ms", "123 ms", "12.3 s"; a dash if unknown. */
static const char *ms_text(double ms, apr_pool_t *p)
{
    if (!known(ms)) {
        return DASH;
    }
    if (ms < 10) {
        return apr_psprintf(p, "%.1f ms", ms);
    }
    if (ms < 10000) {
        return apr_psprintf(p, "%.0f ms", ms);
    }
    return apr_psprintf(p, "%.1f s", ms / 1000.0);
}

/* A ratio 0..1 as a percentage: "12.5%"; a dash if unknown. */
static const char *pct_text(double r, apr_pool_t *p)
{
    if (!known(r)) {
        return DASH;
    }
    return apr_psprintf(p, "%.1f%%", r * 100.0);
}

/* The smallest of 1, 2, 5 times a power of ten that is >= v (v > 0):
 * axis maxima that read well (e.g. 7 -> 10, 130 -> 200, 0.03 -> 0.05). */
static double nice_ceil(double v)
{
    double m = pow(10.0, floor(log10(v)));

    if (v <= m * 1.0000001) {
        return m;
    }
    if (v <= 2 * m) {
        return 2 * m;
    }
    if (v <= 5 * m) {
        return 5 * m;
    }
    return 10 * m;
}

/* An interval length for a caption: "10 s", "1 min", "500 ms". */
static const char *interval_text(apr_interval_time_t len, apr_pool_t *p)
{
    if (len <= 0) {
        return "interval";
    }
    if (len % apr_time_from_sec(60) == 0) {
        return apr_psprintf(p, "%d min", (int)(len / apr_time_from_sec(60)));
    }
    if (len % APR_USEC_PER_SEC == 0) {
        return apr_psprintf(p, "%d s", (int)apr_time_sec(len));
    }
    return apr_psprintf(p, "%d ms", (int)(len / 1000));
}

/* Error ratio of a channel's sliding window, or -1 without data. */
static double error_ratio(const ark_status_channel_t *c)
{
    if (!known(c->success_ratio)) {
        return -1;
    }
    return c->success_ratio >= 1 ? 0 : 1 - c->success_ratio;
}

/* Error ratio of a point, or -1 when nothing ended in it. */
static double point_error_ratio(const ark_status_point_t *pt)
{
    if (pt->requests == 0) {
        return -1;
    }
    return pt->errors >= pt->requests ? 1.0
                                      : (double)pt->errors / pt->requests;
}

static apr_int64_t spend_total(const ark_status_t *st)
{
    apr_int64_t sum = 0;
    int i;

    for (i = 0; i < st->nchannels; i++) {
        sum += st->channels[i].spend_today_nano;
    }
    return sum;
}

static double cache_hit_ratio(const ark_status_t *st)
{
    if (!st->cache_configured || st->cache_lookups == 0) {
        return -1;
    }
    return (double)st->cache_hits / (double)st->cache_lookups;
}

static const char *redis_state(const ark_status_t *st)
{
    if (!st->redis_configured) {
        return "off";
    }
    return st->redis_up ? "up" : "down";
}

/* ------------------------------------------------------------ charts */

/* Where a channel's points go on the x axis: the window [start, end) of
 * ARK_STATUS_POINTS intervals ending with the last point (wider if the
 * points span more), each point a slot of point_len. Without a usable
 * point_len, points are spaced evenly by index. */
typedef struct {
    const ark_status_channel_t *c;
    int n;                        /* points used */
    int by_index;
    apr_time_t start, end;
} xaxis_t;

static void xaxis_init(xaxis_t *ax, const ark_status_channel_t *c)
{
    ax->c = c;
    ax->n = c->npoints < 0 ? 0
          : c->npoints > ARK_STATUS_POINTS ? ARK_STATUS_POINTS : c->npoints;
    ax->by_index = c->point_len <= 0 || ax->n == 0;
    ax->start = ax->end = 0;
    if (!ax->by_index) {
        ax->end = c->points[ax->n - 1].t + c->point_len;
        ax->start = ax->end - ARK_STATUS_POINTS * c->point_len;
        if (c->points[0].t < ax->start) {
            ax->start = c->points[0].t;
        }
    }
}

/* Left edge and width of point i's slot in plot coordinates. */
static void xaxis_slot(const xaxis_t *ax, int i, double *x, double *w)
{
    double span = PL_X1 - PL_X0;

    if (ax->by_index) {
        *w = span / ARK_STATUS_POINTS;
        *x = PL_X1 - (ax->n - i) * *w;
        return;
    }
    *w = span * (double)ax->c->point_len / (double)(ax->end - ax->start);
    *x = PL_X0 + span * (double)(ax->c->points[i].t - ax->start)
                      / (double)(ax->end - ax->start);
}

static double yof(double v, double ymax)
{
    if (v > ymax) {
        v = ymax;
    }
    return PL_Y1 - (PL_Y1 - PL_Y0) * v / ymax;
}

/* Opens a chart: the figure, the svg, the frame and the axis labels. */
static void chart_open(sbuf_t *b, const xaxis_t *ax, const char *metric,
                       const char *channel, const char *title,
                       const char *ymax_label, const char *data_min,
                       const char *data_max)
{
    apr_pool_t *p = b->p;

    sb_printf(b, "<figure class=\"chart\" data-metric=\"%s\" "
                 "data-channel=\"", metric);
    sb_esc(b, channel);
    sb_printf(b, "\"><figcaption>%s</figcaption>\n"
                 "<svg class=\"spark\" "
                 "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
                 "role=\"img\" data-points=\"%d\" data-min=\"%s\" "
                 "data-max=\"%s\"><title>", title, CH_W, CH_H, CH_W, CH_H,
              ax->n, data_min, data_max);
    sb_add(b, title);
    sb_add(b, ": ");
    sb_esc(b, channel);
    sb_printf(b, "</title>\n<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" "
                 "width=\"%.1f\" height=\"%.1f\"/>\n",
              PL_X0, PL_Y0, PL_X1 - PL_X0, PL_Y1 - PL_Y0);
    sb_printf(b, "<text class=\"ylabel ymax\" x=\"%.1f\" y=\"%.1f\">%s"
                 "</text><text class=\"ylabel ymin\" x=\"%.1f\" y=\"%.1f\">0"
                 "</text>\n", PL_X0 - 3, PL_Y0 + 7, ymax_label, PL_X0 - 3,
              PL_Y1);
    if (ax->n > 0 && !ax->by_index) {
        sb_printf(b, "<text class=\"xlabel xmin\" x=\"%.1f\" y=\"%d\">%s"
                     "</text><text class=\"xlabel xmax\" x=\"%.1f\" "
                     "y=\"%d\">%s UTC</text>\n",
                  PL_X0, CH_H - 6, clock_time(ax->start, 0, p), PL_X1,
                  CH_H - 6, clock_time(ax->end, 0, p));
    }
    if (ax->n == 0) {
        sb_printf(b, "<text class=\"nodata\" x=\"%.1f\" y=\"%.1f\">"
                     "no data yet</text>\n",
                  (PL_X0 + PL_X1) / 2, (PL_Y0 + PL_Y1) / 2 + 4);
    }
}

static void chart_close(sbuf_t *b, const char *summary)
{
    sb_printf(b, "</svg>\n<p class=\"range\">%s</p></figure>\n", summary);
}

/* Requests per interval as bars, the errors among them in red on top. */
static void chart_requests(sbuf_t *b, const xaxis_t *ax)
{
    const ark_status_channel_t *c = ax->c;
    apr_pool_t *p = b->p;
    uint32_t lo = 0, hi = 0;
    double ymax;
    int i;

    for (i = 0; i < ax->n; i++) {
        uint32_t v = c->points[i].requests;

        lo = i == 0 || v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    ymax = nice_ceil(hi > 0 ? hi : 1);
    chart_open(b, ax, "requests", c->name,
               apr_psprintf(p, "Requests per %s",
                            interval_text(c->point_len, p)),
               apr_psprintf(p, "%.0f", ymax),
               apr_psprintf(p, "%u", lo), apr_psprintf(p, "%u", hi));
    for (i = 0; i < ax->n; i++) {
        const ark_status_point_t *pt = &c->points[i];
        double x, w, y;

        if (pt->requests == 0) {
            continue;
        }
        xaxis_slot(ax, i, &x, &w);
        w = w > 1.5 ? w - 1 : w;
        y = yof(pt->requests, ymax);
        sb_printf(b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" "
                     "width=\"%.1f\" height=\"%.1f\"><title>%s: %u requests,"
                     " %u errors</title></rect>",
                  x, y, w, PL_Y1 - y, clock_time(pt->t, 1, p), pt->requests,
                  pt->errors);
        if (pt->errors > 0) {
            double ye = yof(pt->errors, ymax);

            sb_printf(b, "<rect class=\"bar err\" x=\"%.1f\" y=\"%.1f\" "
                         "width=\"%.1f\" height=\"%.1f\"/>",
                      x, ye, w, PL_Y1 - ye);
        }
        sb_add(b, "\n");
    }
    chart_close(b, ax->n ? apr_psprintf(p, "min %u " MIDDOT " max %u", lo,
                                        hi)
                         : "no points");
}

/* A series as a line with a dot per point; a point whose value is
 * unknown (< 0) breaks the line; values are ratios 0..1 (shown as
 * percentages) with ratio set, else milliseconds. */
static void chart_line(sbuf_t *b, const xaxis_t *ax, const char *metric,
                       const char *title, const double *v, int ratio)
{
    const ark_status_channel_t *c = ax->c;
    apr_pool_t *p = b->p;
    double lo = -1, hi = -1, ymax;
    sbuf_t path;
    int i, pen = 0;

    for (i = 0; i < ax->n; i++) {
        if (!known(v[i])) {
            continue;
        }
        lo = lo < 0 || v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    ymax = hi > 0 ? nice_ceil(hi) : 1;
    if (ratio && ymax > 1) {
        ymax = 1;
    }
    chart_open(b, ax, metric, c->name, title,
               apr_pstrcat(p, num_text(ratio ? ymax * 100 : ymax, p),
                           ratio ? "%" : " ms", NULL),
               lo < 0 ? "" : num_text(lo, p),
               hi < 0 ? "" : num_text(hi, p));
    sb_init(&path, p);
    for (i = 0; i < ax->n; i++) {
        double x, w;

        if (!known(v[i])) {
            pen = 0;
            continue;
        }
        xaxis_slot(ax, i, &x, &w);
        sb_printf(&path, "%s%.1f %.1f", pen ? " L" : (path.len ? " M" : "M"),
                  x + w / 2, yof(v[i], ymax));
        pen = 1;
    }
    if (path.len) {
        sb_printf(b, "<path class=\"line\" d=\"%s\"/>\n", path.buf);
    }
    for (i = 0; i < ax->n; i++) {
        double x, w;

        if (!known(v[i])) {
            continue;
        }
        xaxis_slot(ax, i, &x, &w);
        sb_printf(b, "<circle class=\"dot\" cx=\"%.1f\" cy=\"%.1f\" r=\"1.6\">"
                     "<title>%s: %s</title></circle>",
                  x + w / 2, yof(v[i], ymax), clock_time(c->points[i].t, 1, p),
                  ratio ? pct_text(v[i], p) : ms_text(v[i], p));
    }
    sb_add(b, "\n");
    if (lo < 0) {
        chart_close(b, ax->n ? "no values" : "no points");
    }
    else if (ratio) {
        chart_close(b, apr_psprintf(p, "min %s " MIDDOT " max %s",
                                    pct_text(lo, p), pct_text(hi, p)));
    }
    else {
        chart_close(b, apr_psprintf(p, "min %s " MIDDOT " max %s",
                                    ms_text(lo, p), ms_text(hi, p)));
    }
}

static void channel_charts(sbuf_t *b, const ark_status_channel_t *c)
{
    double er[ARK_STATUS_POINTS], p95[ARK_STATUS_POINTS];
    xaxis_t ax;
    int i;

    xaxis_init(&ax, c);
    for (i = 0; i < ax.n; i++) {
        er[i] = point_error_ratio(&c->points[i]);
        p95[i] = c->points[i].p95_ms;
    }
    sb_add(b, "<div class=\"channel-charts\" data-channel=\"");
    sb_esc(b, c->name);
    sb_add(b, "\">\n<h3>");
    sb_esc(b, c->name);
    sb_add(b, " <small>");
    sb_esc(b, c->model);
    sb_printf(b, "</small> <span class=\"badge %s\">%s</span></h3>\n",
              circuit_name(c->circuit), circuit_name(c->circuit));
    chart_requests(b, &ax);
    chart_line(b, &ax, "error-ratio", "Error ratio", er, 1);
    chart_line(b, &ax, "p95", "P95 latency", p95, 0);
    sb_add(b, "</div>\n");
}

/* -------------------------------------------------------------- page */

static const char *const STYLE =
    ":root{--fg:#1d2433;--mut:#5b6475;--bd:#d8dde6;--bg:#f6f7f9;"
    "--ok:#1a7f37;--warn:#b26b00;--bad:#c62828;--acc:#2f6fdd}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;font:14px/1.4 system-ui,-apple-system,'Segoe UI',"
    "Roboto,sans-serif;color:var(--fg);background:var(--bg)}\n"
    "header{background:#1d2433;color:#fff;padding:12px 20px}\n"
    "header h1{margin:0 0 4px;font-size:20px}\n"
    "header dl{margin:0;display:flex;flex-wrap:wrap;gap:4px 18px}\n"
    "header dt{color:#aab3c5}header dd{margin:0 0 0 4px}\n"
    "header dt,header dd{display:inline}\n"
    "main{padding:16px 20px}\n"
    "h2{font-size:16px;margin:22px 0 8px}\n"
    "#summary{display:flex;flex-wrap:wrap;gap:12px}\n"
    ".card{background:#fff;border:1px solid var(--bd);border-radius:6px;"
    "padding:10px 14px;min-width:220px;flex:1}\n"
    ".card h2{margin:0;font-size:13px;color:var(--mut);font-weight:600}\n"
    ".card .big{font-size:22px;margin:4px 0;font-weight:600}\n"
    ".card .state{white-space:nowrap}\n"
    ".card .sub{margin:0;color:var(--mut);font-size:12px}\n"
    "table{border-collapse:collapse;background:#fff;border:1px solid "
    "var(--bd);min-width:50%}\n"
    "th,td{padding:5px 10px;border-bottom:1px solid var(--bd);"
    "text-align:left;white-space:nowrap}\n"
    "th{background:#eef1f5;font-size:12px;color:var(--mut)}\n"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    ".type{color:var(--mut);font-size:12px}\n"
    ".badge{display:inline-block;padding:1px 8px;border-radius:10px;"
    "font-size:12px;font-weight:600;color:#fff;background:var(--mut)}\n"
    ".badge.closed{background:var(--ok)}.badge.open{background:var(--bad)}"
    "\n.badge.half-open{background:var(--warn)}\n"
    ".count.open{color:var(--bad)}.count.half-open{color:var(--warn)}"
    ".count.closed{color:var(--ok)}\n"
    ".redis-down{color:var(--bad)}.redis-up{color:var(--ok)}\n"
    ".share{display:inline-block;height:8px;background:var(--acc);"
    "border-radius:2px;vertical-align:middle}\n"
    "td.sharecell{width:120px}\n"
    ".empty td{color:var(--mut);font-style:italic}\n"
    "#charts{display:flex;flex-direction:column;gap:10px}\n"
    ".channel-charts{background:#fff;border:1px solid var(--bd);"
    "border-radius:6px;padding:6px 12px}\n"
    ".channel-charts h3{margin:2px 0 4px;font-size:14px}\n"
    ".channel-charts h3 small{color:var(--mut);font-weight:400}\n"
    "figure.chart{display:inline-block;margin:0 14px 4px 0;"
    "vertical-align:top}\n"
    "figcaption{font-size:12px;color:var(--mut)}\n"
    ".range{margin:0;font-size:11px;color:var(--mut)}\n"
    "svg.spark{display:block}\n"
    "svg .frame{fill:#fafbfc;stroke:var(--bd)}\n"
    "svg text{font-size:9px;fill:var(--mut)}\n"
    "svg .ylabel{text-anchor:end}svg .xmax{text-anchor:end}\n"
    "svg .nodata{text-anchor:middle;font-style:italic}\n"
    "svg .bar{fill:var(--acc)}svg .bar.err{fill:var(--bad)}\n"
    "svg .line{fill:none;stroke:var(--acc);stroke-width:1.5}\n"
    "svg .dot{fill:var(--acc)}\n"
    "figure[data-metric=error-ratio] .line{stroke:var(--bad)}\n"
    "figure[data-metric=error-ratio] .dot{fill:var(--bad)}\n"
    "footer{padding:8px 20px 20px;color:var(--mut);font-size:12px}\n";

static void page_head(sbuf_t *b, const ark_status_t *st)
{
    sb_add(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
              "<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, "
              "initial-scale=1\">\n"
              "<meta http-equiv=\"Content-Security-Policy\" "
              "content=\"default-src 'none'; style-src 'unsafe-inline'; "
              "img-src data:\">\n"
              "<meta name=\"robots\" content=\"noindex\">\n");
    if (st->refresh_s > 0) {
        sb_printf(b, "<meta http-equiv=\"refresh\" content=\"%d\">\n",
                  st->refresh_s);
    }
    sb_add(b, "<link rel=\"icon\" href=\"data:,\">\n<title>Ark status: ");
    sb_esc(b, st->node);
    sb_add(b, "</title>\n<style>\n");
    sb_add(b, STYLE);
    sb_add(b, "</style>\n</head>\n<body>\n");
}

static void page_header(sbuf_t *b, const ark_status_t *st)
{
    apr_pool_t *p = b->p;
    apr_int64_t up = apr_time_sec(st->now - st->config_time);

    sb_add(b, "<header id=\"header\">\n<h1>Ark status</h1>\n<dl>\n"
              "<dt>Node</dt><dd id=\"node\">");
    sb_esc(b, st->node);
    sb_add(b, "</dd>\n<dt>Version</dt><dd id=\"version\">");
    sb_esc(b, st->version);
    sb_printf(b, "</dd>\n<dt>Up</dt><dd id=\"uptime\" data-seconds=\"%"
                 APR_INT64_T_FMT "\">%s</dd>\n",
              up < 0 ? 0 : up, duration_text(up, p));
    sb_printf(b, "<dt>Generated</dt><dd id=\"generated\" data-time=\"%s\">"
                 "%s UTC</dd>\n",
              iso_time(st->now, p), clock_time(st->now, 1, p));
    if (st->refresh_s > 0) {
        sb_printf(b, "<dt>Refresh</dt><dd id=\"refresh\" data-seconds=\"%d\">"
                     "every %d s</dd>\n", st->refresh_s, st->refresh_s);
    }
    sb_add(b, "</dl>\n</header>\n");
}

static void page_cards(sbuf_t *b, const ark_status_t *st)
{
    apr_pool_t *p = b->p;
    int n[3] = {0, 0, 0}, i;
    apr_int64_t total = spend_total(st);
    double hr = cache_hit_ratio(st);
    const char *rs = redis_state(st);

    for (i = 0; i < st->nchannels; i++) {
        int c = st->channels[i].circuit;

        if (c >= 0 && c <= 2) {
            n[c]++;
        }
    }
    sb_add(b, "<section id=\"summary\">\n");
    sb_printf(b, "<div class=\"card\" id=\"card-circuits\"><h2>Circuits"
                 "</h2><p class=\"big\"><span class=\"state\"><span "
                 "class=\"count closed\" data-state=\"closed\">%d</span> "
                 "closed</span> " MIDDOT " <span class=\"state\"><span "
                 "class=\"count half-open\" data-state=\"half-open\">%d"
                 "</span> half-open</span> " MIDDOT " <span class=\"state\">"
                 "<span class=\"count open\" data-state=\"open\">%d</span> "
                 "open</span></p>"
                 "<p class=\"sub\">%d channel%s</p></div>\n",
              n[0], n[2], n[1], st->nchannels,
              st->nchannels == 1 ? "" : "s");
    if (st->cache_configured) {
        sb_printf(b, "<div class=\"card\" id=\"card-cache\" "
                     "data-configured=\"yes\"><h2>Cache hit ratio</h2>"
                     "<p class=\"big\" id=\"cache-hit-ratio\" "
                     "data-value=\"%s\">%s</p><p class=\"sub\">"
                     "<span id=\"cache-hits\">%" APR_UINT64_T_FMT
                     "</span> hits / <span id=\"cache-lookups\">%"
                     APR_UINT64_T_FMT "</span> lookups " MIDDOT " %"
                     APR_UINT64_T_FMT " misses " MIDDOT " %" APR_UINT64_T_FMT
                     " errors " MIDDOT " %" APR_UINT64_T_FMT
                     " skipped</p></div>\n",
                  hr < 0 ? "" : apr_psprintf(p, "%.4f", hr), pct_text(hr, p),
                  (apr_uint64_t)st->cache_hits,
                  (apr_uint64_t)st->cache_lookups,
                  (apr_uint64_t)st->cache_misses,
                  (apr_uint64_t)st->cache_errors,
                  (apr_uint64_t)st->cache_skipped);
    }
    else {
        sb_add(b, "<div class=\"card\" id=\"card-cache\" "
                  "data-configured=\"no\"><h2>Cache hit ratio</h2>"
                  "<p class=\"big\" id=\"cache-hit-ratio\" data-value=\"\">"
                  DASH "</p><p class=\"sub\">no cache configured</p>"
                  "</div>\n");
    }
    sb_printf(b, "<div class=\"card\" id=\"card-spend\"><h2>Spend today"
                 "</h2><p class=\"big\" id=\"spend-total\" data-nano=\"%"
                 APR_INT64_T_FMT "\">%s</p><p class=\"sub\">this node, "
                 "UTC day, all channels</p></div>\n",
              total, ark_money_format(total, p));
    sb_printf(b, "<div class=\"card\" id=\"card-governance\" "
                 "data-redis=\"%s\"><h2>Governance</h2><p class=\"big "
                 "redis-%s\" id=\"redis-state\">Redis %s</p>"
                 "<p class=\"sub\">buffered spend <span id=\"buffered-spend\""
                 " data-nano=\"%" APR_INT64_T_FMT "\">%s</span> " MIDDOT " "
                 "<span id=\"refusals\" data-value=\"%" APR_UINT64_T_FMT
                 "\">%" APR_UINT64_T_FMT "</span> refusals</p></div>\n",
              rs, rs, !strcmp(rs, "off") ? "not configured" : rs,
              st->buffered_nano, ark_money_format(st->buffered_nano, p),
              (apr_uint64_t)st->refusals, (apr_uint64_t)st->refusals);
    sb_add(b, "</section>\n");
}

static void page_channels(sbuf_t *b, const ark_status_t *st)
{
    apr_pool_t *p = b->p;
    int i;

    sb_add(b, "<h2 id=\"channels-title\">Channels</h2>\n"
              "<table id=\"channels\">\n<thead><tr><th>Model</th>"
              "<th>Channel</th><th>Provider</th><th>Circuit</th>"
              "<th class=\"num\">In flight</th><th class=\"num\">Requests"
              "</th><th class=\"num\">Failures</th><th class=\"num\">Error "
              "ratio</th><th class=\"num\">P95 TTFB</th><th class=\"num\">"
              "P95 total</th><th class=\"num\">Spend today</th></tr>"
              "</thead>\n<tbody>\n");
    if (st->nchannels == 0) {
        sb_add(b, "<tr class=\"empty\"><td colspan=\"11\">no channels "
                  "configured</td></tr>\n");
    }
    for (i = 0; i < st->nchannels; i++) {
        const ark_status_channel_t *c = &st->channels[i];
        const char *cs = circuit_name(c->circuit);
        double er = error_ratio(c);

        sb_add(b, "<tr data-channel=\"");
        sb_esc(b, c->name);
        sb_add(b, "\" data-model=\"");
        sb_esc(b, c->model);
        sb_add(b, "\" data-provider=\"");
        sb_esc(b, c->provider);
        sb_printf(b, "\" data-hedges=\"%" APR_UINT64_T_FMT "\" "
                     "data-opens=\"%" APR_UINT64_T_FMT "\">",
                  (apr_uint64_t)c->hedges, (apr_uint64_t)c->opens);
        sb_add(b, "<td class=\"model\">");
        sb_esc(b, c->model);
        sb_add(b, "</td><td class=\"channel\">");
        sb_esc(b, c->name);
        if (c->upstream_model) {
            sb_add(b, " <span class=\"type upstream-model\">");
            sb_esc(b, c->upstream_model);
            sb_add(b, "</span>");
        }
        sb_add(b, "</td><td class=\"provider\">");
        sb_esc(b, c->provider);
        sb_add(b, " <span class=\"type\">");
        sb_esc(b, c->type);
        sb_printf(b, "</span></td><td class=\"circuit\" data-state=\"%s\">"
                     "<span class=\"badge %s\">%s</span></td>", cs, cs, cs);
        sb_printf(b, "<td class=\"inflight num\" data-value=\"%u\">%u</td>",
                  c->inflight, c->inflight);
        sb_printf(b, "<td class=\"requests num\" data-value=\"%"
                     APR_UINT64_T_FMT "\">%" APR_UINT64_T_FMT "</td>",
                  (apr_uint64_t)c->requests, (apr_uint64_t)c->requests);
        sb_printf(b, "<td class=\"failures num\" data-value=\"%"
                     APR_UINT64_T_FMT "\">%" APR_UINT64_T_FMT "</td>",
                  (apr_uint64_t)c->failures, (apr_uint64_t)c->failures);
        sb_printf(b, "<td class=\"error-ratio num\" data-value=\"%s\">%s"
                     "</td>", er < 0 ? "" : apr_psprintf(p, "%.4f", er),
                  pct_text(er, p));
        sb_printf(b, "<td class=\"p95-ttfb num\" data-value=\"%s\">%s</td>",
                  known(c->p95_ttfb_ms)
                      ? apr_psprintf(p, "%.1f", c->p95_ttfb_ms) : "",
                  ms_text(c->p95_ttfb_ms, p));
        sb_printf(b, "<td class=\"p95-total num\" data-value=\"%s\">%s</td>",
                  known(c->p95_total_ms)
                      ? apr_psprintf(p, "%.1f", c->p95_total_ms) : "",
                  ms_text(c->p95_total_ms, p));
        sb_printf(b, "<td class=\"spend num\" data-nano=\"%" APR_INT64_T_FMT
                     "\">%s</td></tr>\n", c->spend_today_nano,
                  ark_money_format(c->spend_today_nano, p));
    }
    sb_add(b, "</tbody>\n</table>\n");
}

static void page_charts(sbuf_t *b, const ark_status_t *st)
{
    apr_interval_time_t len = 0;
    int i;

    for (i = 0; i < st->nchannels && len <= 0; i++) {
        len = st->channels[i].point_len;
    }
    if (len > 0) {
        sb_printf(b, "<h2 id=\"charts-title\">Last %s</h2>\n",
                  interval_text(len * ARK_STATUS_POINTS, b->p));
    }
    else {
        sb_add(b, "<h2 id=\"charts-title\">Recent history</h2>\n");
    }
    sb_add(b, "<section id=\"charts\">\n");
    for (i = 0; i < st->nchannels; i++) {
        channel_charts(b, &st->channels[i]);
    }
    sb_add(b, "</section>\n");
}

/* A spend table; kind is "tenant" or "provider" (its id, its rows'
 * data attribute). */
static void page_spend(sbuf_t *b, const apr_array_header_t *arr,
                       const char *kind, const char *title)
{
    apr_pool_t *p = b->p;
    apr_int64_t top = 0;
    int i, n = arr ? arr->nelts : 0;

    for (i = 0; i < n; i++) {
        const ark_status_amount_t *a =
            &APR_ARRAY_IDX(arr, i, ark_status_amount_t);

        top = a->nano > top ? a->nano : top;
    }
    sb_printf(b, "<h2 id=\"spend-%ss-title\">%s</h2>\n"
                 "<table id=\"spend-%ss\" class=\"spend-table\">\n<thead><tr>"
                 "<th>%s</th><th class=\"num\">Requests</th><th class=\"num\">"
                 "Spend today</th><th></th></tr></thead>\n<tbody>\n",
              kind, title, kind, !strcmp(kind, "tenant") ? "Tenant"
                                                         : "Provider");
    if (n == 0) {
        sb_add(b, "<tr class=\"empty\"><td colspan=\"4\">no spend today"
                  "</td></tr>\n");
    }
    for (i = 0; i < n; i++) {
        const ark_status_amount_t *a =
            &APR_ARRAY_IDX(arr, i, ark_status_amount_t);
        double share = top > 0 && a->nano > 0
                           ? 100.0 * (double)a->nano / (double)top : 0;

        sb_printf(b, "<tr data-%s=\"", kind);
        sb_esc(b, a->name);
        sb_add(b, "\"><td class=\"name\">");
        sb_esc(b, a->name);
        sb_printf(b, "</td><td class=\"requests num\" data-value=\"%"
                     APR_INT64_T_FMT "\">%" APR_INT64_T_FMT "</td>"
                     "<td class=\"spend num\" data-nano=\"%" APR_INT64_T_FMT
                     "\">%s</td><td class=\"sharecell\"><span class=\"share\" "
                     "style=\"width:%.0f%%\"></span></td></tr>\n",
                  a->requests, a->requests, a->nano,
                  ark_money_format(a->nano, p), share);
    }
    sb_add(b, "</tbody>\n</table>\n");
}

const char *ark_status_html(const ark_status_t *st, apr_pool_t *p)
{
    sbuf_t b;

    sb_init(&b, p);
    page_head(&b, st);
    page_header(&b, st);
    sb_add(&b, "<main>\n");
    page_cards(&b, st);
    page_channels(&b, st);
    page_charts(&b, st);
    page_spend(&b, st->spend_by_tenant, "tenant", "Spend today by tenant");
    page_spend(&b, st->spend_by_provider, "provider",
               "Spend today by provider");
    sb_add(&b, "</main>\n<footer>Amounts in the configured currency unit "
               "(UTC day, this node). Latencies are P95 over the sliding "
               "window. <a href=\"?format=json\">JSON</a></footer>\n"
               "</body>\n</html>\n");
    return b.buf;
}

/* -------------------------------------------------------------- JSON */

/* A string value; bytes that are not UTF-8 are replaced by '?' rather
 * than the value vanishing; NULL is null. */
static json_t *jstr(const char *s, apr_pool_t *p)
{
    json_t *j;
    char *copy, *c;

    if (!s) {
        return json_null();
    }
    j = json_string(s);
    if (j) {
        return j;
    }
    copy = apr_pstrdup(p, s);
    for (c = copy; *c; c++) {
        if ((unsigned char)*c >= 0x80) {
            *c = '?';
        }
    }
    return json_string(copy);
}

static json_t *juint(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* A value >= 0, or null when unknown. */
static json_t *jknown(double v)
{
    return known(v) ? json_real(v) : json_null();
}

static json_t *jmoney(apr_int64_t nano, apr_pool_t *p)
{
    return json_string(ark_money_format(nano, p));
}

static json_t *json_amounts(const apr_array_header_t *arr, apr_pool_t *p)
{
    json_t *a = json_array();
    int i;

    for (i = 0; arr && i < arr->nelts; i++) {
        const ark_status_amount_t *x =
            &APR_ARRAY_IDX(arr, i, ark_status_amount_t);

        json_array_append_new(a, json_pack("{s:o, s:I, s:o, s:I}",
                                           "name", jstr(x->name, p),
                                           "requests",
                                           (json_int_t)x->requests,
                                           "spend", jmoney(x->nano, p),
                                           "spend_nano",
                                           (json_int_t)x->nano));
    }
    return a;
}

static json_t *json_channel(const ark_status_channel_t *c, apr_pool_t *p)
{
    json_t *o = json_object(), *pts = json_array();
    int i, n = c->npoints < 0 ? 0
             : c->npoints > ARK_STATUS_POINTS ? ARK_STATUS_POINTS
                                              : c->npoints;

    json_object_set_new(o, "name", jstr(c->name, p));
    json_object_set_new(o, "model", jstr(c->model, p));
    json_object_set_new(o, "upstream_model", jstr(c->upstream_model, p));
    json_object_set_new(o, "provider", jstr(c->provider, p));
    json_object_set_new(o, "type", jstr(c->type, p));
    json_object_set_new(o, "circuit", json_string(circuit_name(c->circuit)));
    json_object_set_new(o, "inflight", json_integer(c->inflight));
    json_object_set_new(o, "requests", juint(c->requests));
    json_object_set_new(o, "failures", juint(c->failures));
    json_object_set_new(o, "hedges", juint(c->hedges));
    json_object_set_new(o, "opens", juint(c->opens));
    json_object_set_new(o, "success_ratio", jknown(c->success_ratio));
    json_object_set_new(o, "error_ratio", jknown(error_ratio(c)));
    json_object_set_new(o, "p95_ttfb_ms", jknown(c->p95_ttfb_ms));
    json_object_set_new(o, "p95_total_ms", jknown(c->p95_total_ms));
    json_object_set_new(o, "spend_today", jmoney(c->spend_today_nano, p));
    json_object_set_new(o, "spend_today_nano",
                        json_integer(c->spend_today_nano));
    json_object_set_new(o, "point_len_ms",
                        json_integer(c->point_len / 1000));
    for (i = 0; i < n; i++) {
        const ark_status_point_t *pt = &c->points[i];

        json_array_append_new(
            pts, json_pack("{s:I, s:s, s:i, s:i, s:o, s:o}",
                           "t", (json_int_t)apr_time_sec(pt->t),
                           "time", iso_time(pt->t, p),
                           "requests", (int)pt->requests,
                           "errors", (int)pt->errors,
                           "error_ratio", jknown(point_error_ratio(pt)),
                           "p95_ms", jknown(pt->p95_ms)));
    }
    json_object_set_new(o, "points", pts);
    return o;
}

const char *ark_status_json(const ark_status_t *st, apr_pool_t *p)
{
    json_t *o = json_object(), *a, *x;
    apr_int64_t total = spend_total(st);
    int n[3] = {0, 0, 0}, i;
    char *text;
    const char *out;

    json_object_set_new(o, "node", jstr(st->node, p));
    json_object_set_new(o, "version", jstr(st->version, p));
    json_object_set_new(o, "generated", json_string(iso_time(st->now, p)));
    json_object_set_new(o, "started",
                        json_string(iso_time(st->config_time, p)));
    json_object_set_new(o, "uptime_s",
                        json_integer(st->now > st->config_time
                                     ? apr_time_sec(st->now - st->config_time)
                                     : 0));
    json_object_set_new(o, "refresh_s", json_integer(st->refresh_s));

    a = json_array();
    for (i = 0; i < st->nchannels; i++) {
        int c = st->channels[i].circuit;

        if (c >= 0 && c <= 2) {
            n[c]++;
        }
        json_array_append_new(a, json_channel(&st->channels[i], p));
    }
    json_object_set_new(o, "circuits",
                        json_pack("{s:i, s:i, s:i}", "closed", n[0],
                                  "half_open", n[2], "open", n[1]));

    x = json_object();
    json_object_set_new(x, "configured",
                        json_boolean(st->cache_configured));
    json_object_set_new(x, "lookups", juint(st->cache_lookups));
    json_object_set_new(x, "hits", juint(st->cache_hits));
    json_object_set_new(x, "misses", juint(st->cache_misses));
    json_object_set_new(x, "errors", juint(st->cache_errors));
    json_object_set_new(x, "skipped", juint(st->cache_skipped));
    json_object_set_new(x, "hit_ratio", jknown(cache_hit_ratio(st)));
    json_object_set_new(o, "cache", x);

    x = json_object();
    json_object_set_new(x, "redis", json_string(redis_state(st)));
    json_object_set_new(x, "buffered_spend", jmoney(st->buffered_nano, p));
    json_object_set_new(x, "buffered_nano", json_integer(st->buffered_nano));
    json_object_set_new(x, "refusals", juint(st->refusals));
    json_object_set_new(o, "governance", x);

    json_object_set_new(o, "spend_today", jmoney(total, p));
    json_object_set_new(o, "spend_today_nano", json_integer(total));
    json_object_set_new(o, "channels", a);
    json_object_set_new(o, "spend_by_tenant",
                        json_amounts(st->spend_by_tenant, p));
    json_object_set_new(o, "spend_by_provider",
                        json_amounts(st->spend_by_provider, p));

    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) {
        return "{}";
    }
    out = apr_pstrdup(p, text);
    free(text);
    return out;
}
