/* ark-report: cost and usage report from Ark's JSON access logs.
 *
 * Reads access-log files (or stdin), plain or gzip (zlib's gzread tells
 * them apart by the magic bytes, and reads concatenated members), hands
 * each line to ark_report.c, and prints a summary, breakdowns by
 * provider, channel, model, key, tenant and day, and latency percentiles
 * per channel, as an aligned text table, CSV (RFC 4180) or one
 * self-contained HTML page with inline SVG bar charts. With --estimate it
 * reads a CSV of past direct provider usage instead and prices it with
 * the routing of the --config files. What each number means is in
 * docs/report.md; how it is computed in ark_report.h.
 *
 * Malformed lines are counted and skipped with a warning (file and line)
 * on stderr, never fatal. Exit codes: 0 success, 1 an input could not be
 * read (the report covers the others), 2 usage error.
 */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <zlib.h>

#include "ark_config.h"
#include "ark_limit.h"
#include "ark_cli.h"
#include "ark_report.h"
#include "ark_route.h"

#define CLI_PROG "ark-report"

#define CLI_EXIT_OK ARK_CLI_EXIT_OK
#define CLI_EXIT_FAIL ARK_CLI_EXIT_FAIL
#define CLI_EXIT_USAGE ARK_CLI_EXIT_USAGE

/* Malformed-line warnings shown before only counting the rest. */
#define CLI_MAX_LINE_WARNINGS 20
/* Largest --config or --estimate file read whole. */
#define CLI_MAX_FILE (1024L * 1024 * 1024)
/* zlib's read buffer. */
#define CLI_GZ_BUFFER (256 * 1024)

static const char cli_usage[] =
    "Usage: ark-report [OPTIONS] [LOG-FILE...]\n"
    "       ark-report --estimate USAGE.csv --config FILE [OPTIONS]\n"
    "\n"
    "Cost and usage report from Ark's JSON access logs (ArkAccessLog).\n"
    "Reads the files given, or stdin when none or '-'; gzip'd files are\n"
    "recognised by their content. See docs/report.md.\n"
    "\n"
    "Options:\n"
    "  --by DIM          breakdown: provider, channel, model, key, tenant,\n"
    "                    day (repeatable or comma-separated; default all;\n"
    "                    channel includes latency percentiles)\n"
    "  --format FMT      text (default), csv or html\n"
    "  --from DATE       first day counted, YYYY-MM-DD (UTC)\n"
    "  --to DATE         last day counted, YYYY-MM-DD (UTC)\n"
    "  --config FILE     httpd configuration with the ArkProvider and\n"
    "                    ArkModel lines: the channel prices for savings\n"
    "                    (repeatable; Include is not followed)\n"
    "  --estimate CSV    price past direct usage (columns provider, model,\n"
    "                    input_tokens, output_tokens, date) with the\n"
    "                    configured routing instead of reading logs\n"
    "  --require TAGS    with --estimate: tags the routed channel must\n"
    "                    have, as a key's tags= (e.g. region=eu)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 success, 1 an input could not be read, 2 usage "
    "error.\n";

typedef enum { FMT_TEXT, FMT_CSV, FMT_HTML } cli_format_t;

typedef struct cli_args_t {
    int dims[ARK_DIM_COUNT]; /* selected breakdowns */
    int any_dim;
    cli_format_t format;
    const char *from, *to;
    apr_array_header_t *configs; /* const char * */
    const char *estimate;
    const char *require;
    apr_array_header_t *inputs; /* const char * */
} cli_args_t;

static void cli_warn(void *baton, const char *msg)
{
    (void)baton;
    fprintf(stderr, CLI_PROG ": warning: %s\n", msg);
}

/* ------------------------------------------------------------ arguments */

static int valid_date(const char *s)
{
    int y, m, d;
    char tail;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
        sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3) {
        return 0;
    }
    return isdigit((unsigned char)s[0]) && m >= 1 && m <= 12 && d >= 1 &&
           d <= 31;
}

static int cli_parse(cli_args_t *a, int argc, const char *const *argv,
                     apr_pool_t *p)
{
    int i, only_inputs = 0;

    memset(a, 0, sizeof(*a));
    a->configs = apr_array_make(p, 2, sizeof(const char *));
    a->inputs = apr_array_make(p, 4, sizeof(const char *));
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *name, *val = NULL, *eq;

        if (only_inputs || arg[0] != '-' || !strcmp(arg, "-")) {
            APR_ARRAY_PUSH(a->inputs, const char *) = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_inputs = 1;
            continue;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            fputs(cli_usage, stdout);
            exit(fflush(stdout) ? CLI_EXIT_FAIL : CLI_EXIT_OK);
        }
        if (strncmp(arg, "--", 2)) {
            return ark_cli_usage_error("unknown option '%s'", arg);
        }
        name = arg + 2;
        if ((eq = strchr(name, '='))) {
            val = eq + 1;
            name = apr_pstrmemdup(p, name, (apr_size_t)(eq - name));
        }
        if (strcmp(name, "by") && strcmp(name, "format") &&
            strcmp(name, "from") && strcmp(name, "to") &&
            strcmp(name, "config") && strcmp(name, "estimate") &&
            strcmp(name, "require")) {
            return ark_cli_usage_error("unknown option '--%s'", name);
        }
        if (!val) {
            if (i + 1 >= argc) {
                return ark_cli_usage_error("option '--%s' needs a value", name);
            }
            val = argv[++i];
        }
        if (!strcmp(name, "by")) {
            char *list = apr_pstrdup(p, val), *last, *tok;

            for (tok = apr_strtok(list, ",", &last); tok;
                 tok = apr_strtok(NULL, ",", &last)) {
                int d = ark_report_dim_parse(tok);

                if (d < 0) {
                    return ark_cli_usage_error("--by: unknown breakdown '%s' "
                                           "(provider, channel, model, key, "
                                           "tenant or day)",
                                           tok);
                }
                a->dims[d] = 1;
                a->any_dim = 1;
            }
        }
        else if (!strcmp(name, "format")) {
            if (!strcmp(val, "text")) {
                a->format = FMT_TEXT;
            }
            else if (!strcmp(val, "csv")) {
                a->format = FMT_CSV;
            }
            else if (!strcmp(val, "html")) {
                a->format = FMT_HTML;
            }
            else {
                return ark_cli_usage_error("--format: '%s' is not text, csv or "
                                       "html",
                                       val);
            }
        }
        else if (!strcmp(name, "from") || !strcmp(name, "to")) {
            if (!valid_date(val)) {
                return ark_cli_usage_error("--%s: '%s' is not a date "
                                       "YYYY-MM-DD",
                                       name, val);
            }
            *(name[0] == 'f' ? &a->from : &a->to) = val;
        }
        else if (!strcmp(name, "config")) {
            APR_ARRAY_PUSH(a->configs, const char *) = val;
        }
        else if (!strcmp(name, "estimate")) {
            if (a->estimate) {
                return ark_cli_usage_error("--estimate given twice");
            }
            a->estimate = val;
        }
        else {
            a->require = val;
        }
    }
    if (!a->any_dim) {
        for (i = 0; i < ARK_DIM_COUNT; i++) {
            a->dims[i] = 1;
        }
    }
    if (a->from && a->to && strcmp(a->from, a->to) > 0) {
        return ark_cli_usage_error("--from %s is after --to %s", a->from, a->to);
    }
    if (a->estimate && a->configs->nelts == 0) {
        return ark_cli_usage_error("--estimate needs --config (the prices of "
                               "the channels)");
    }
    if (a->estimate && a->inputs->nelts > 0) {
        return ark_cli_usage_error("--estimate reads no access logs; drop the "
                               "file arguments");
    }
    if (a->require && !a->estimate) {
        return ark_cli_usage_error("--require is for --estimate");
    }
    return CLI_EXIT_OK;
}

/* --------------------------------------------------------------- input */

static gzFile cli_open(const char *path)
{
    gzFile gz;

    if (!strcmp(path, "-")) {
        int fd = dup(STDIN_FILENO);

        if (fd < 0) {
            return NULL;
        }
        gz = gzdopen(fd, "rb");
        if (!gz) {
            close(fd);
        }
    }
    else {
        gz = gzopen(path, "rb");
    }
    if (gz) {
        gzbuffer(gz, CLI_GZ_BUFFER);
    }
    return gz;
}

static const char *cli_name(const char *path)
{
    return strcmp(path, "-") ? path : "(stdin)";
}

/* After the last read: 0, or 1 with an error printed. A gzip stream cut
 * short (a log being written) keeps what was read. */
static int cli_gz_close(gzFile gz, const char *path)
{
    int zerr, rc = 0;
    const char *msg = gzerror(gz, &zerr);

    if (zerr != Z_OK && zerr != Z_BUF_ERROR) {
        ark_cli_error("%s: %s", cli_name(path),
                  zerr == Z_ERRNO ? strerror(errno) : msg);
        rc = 1;
    }
    else if (zerr == Z_BUF_ERROR) {
        fprintf(stderr,
                CLI_PROG ": warning: %s: gzip data ends early; "
                         "read what was there\n",
                cli_name(path));
    }
    gzclose(gz);
    return rc;
}

/* Feeds the lines of one input to the report. */
static int cli_read_log(ark_report_t *rep, const char *path, apr_int64_t *shown,
                        apr_pool_t *p)
{
    apr_size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    long lineno = 0;
    int too_long = 0, rc;
    gzFile gz;

    if (!buf) {
        ark_cli_error("out of memory");
        return 1;
    }
    gz = cli_open(path);
    if (!gz) {
        ark_cli_error("cannot open %s: %s", cli_name(path), strerror(errno));
        free(buf);
        return 1;
    }
    for (;;) {
        int eof = !gzgets(gz, buf + len, (int)(cap - len));
        apr_size_t n = eof ? len : len + strlen(buf + len);
        const char *err;

        if (!eof && (n == 0 || buf[n - 1] != '\n')) {
            /* a partial line: grow, or give up on it past the limit */
            len = n;
            if (len + 1 >= cap) {
                if (cap >= ARK_REPORT_LINE_MAX) {
                    too_long = 1;
                    len = 0;
                }
                else {
                    char *bigger = realloc(buf, cap * 2);

                    if (!bigger) {
                        ark_cli_error("out of memory");
                        break;
                    }
                    buf = bigger;
                    cap *= 2;
                }
            }
            continue;
        }
        if (eof && n == 0 && !too_long) {
            break;
        }
        lineno++;
        if (too_long) {
            ark_report_count_malformed(rep);
            err = apr_psprintf(p, "longer than %d bytes", ARK_REPORT_LINE_MAX);
        }
        else if (ark_report_add_line(rep, buf, n, &err) == APR_SUCCESS) {
            err = NULL;
        }
        if (err && ++*shown <= CLI_MAX_LINE_WARNINGS) {
            fprintf(stderr,
                    CLI_PROG ": warning: %s:%ld: malformed line "
                             "skipped: %s\n",
                    cli_name(path), lineno, err);
        }
        too_long = 0;
        len = 0;
        if (eof) {
            break;
        }
    }
    free(buf);
    rc = cli_gz_close(gz, path);
    return rc;
}

/* Reads a whole (plain or gzip'd) file into *ptext, NUL-terminated. */
static int cli_read_all(char **ptext, apr_size_t *plen, const char *path,
                        apr_pool_t *p)
{
    apr_size_t cap = 64 * 1024, len = 0;
    char *buf = apr_palloc(p, cap);
    gzFile gz = cli_open(path);
    int n;

    if (!gz) {
        ark_cli_error("cannot open %s: %s", cli_name(path), strerror(errno));
        return 1;
    }
    while ((n = gzread(gz, buf + len, (unsigned)(cap - len - 1))) > 0) {
        len += (apr_size_t)n;
        if (len + 1 == cap) {
            char *bigger;

            if (cap >= (apr_size_t)CLI_MAX_FILE) {
                ark_cli_error("%s is larger than %ld bytes", cli_name(path),
                          CLI_MAX_FILE);
                gzclose(gz);
                return 1;
            }
            bigger = apr_palloc(p, cap * 2);
            memcpy(bigger, buf, len);
            buf = bigger;
            cap *= 2;
        }
    }
    buf[len] = '\0';
    if (cli_gz_close(gz, path)) {
        return 1;
    }
    *ptext = buf;
    *plen = len;
    return 0;
}

/* -------------------------------------------------------------- tables */

/* One table, rendered in any format. Column kinds: 'l' text, 'r' number,
 * 'm' money (text aligns its decimal points). */
typedef struct tbl_t {
    const char *title;
    int ncols;
    const char *const *heads;
    const char *kinds;
    apr_array_header_t *rows; /* const char ** of ncols */
} tbl_t;

static tbl_t *tbl_make(const char *title, const char *const *heads,
                       const char *kinds, apr_pool_t *p)
{
    tbl_t *t = apr_pcalloc(p, sizeof(*t));

    t->title = title;
    t->heads = heads;
    t->kinds = kinds;
    t->ncols = (int)strlen(kinds);
    t->rows = apr_array_make(p, 16, sizeof(const char **));
    return t;
}

static const char **tbl_row(tbl_t *t, apr_pool_t *p)
{
    const char **row = apr_pcalloc(p, sizeof(char *) * (apr_size_t)t->ncols);

    APR_ARRAY_PUSH(t->rows, const char **) = row;
    return row;
}

/* Display width of UTF-8 text (code points). */
static apr_size_t text_width(const char *s)
{
    apr_size_t n = 0;

    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

/* Length of the fraction (with its point) of a decimal number; 0 for
 * other text. */
static apr_size_t frac_len(const char *s)
{
    const char *dot = strchr(s, '.');

    if (!dot || strspn(s, "-0123456789.%") != strlen(s)) {
        return 0;
    }
    return strlen(dot + 1) + 1;
}

static void tbl_text(FILE *out, const tbl_t *t, apr_pool_t *p)
{
    apr_size_t *w = apr_pcalloc(p, sizeof(apr_size_t) * (apr_size_t)t->ncols);
    apr_size_t *fr = apr_pcalloc(p, sizeof(apr_size_t) * (apr_size_t)t->ncols);
    int c, r;

    for (c = 0; c < t->ncols; c++) {
        w[c] = text_width(t->heads[c]);
        for (r = 0; r < t->rows->nelts; r++) {
            const char *v = APR_ARRAY_IDX(t->rows, r, const char **)[c];

            if (v && t->kinds[c] == 'm' && frac_len(v) > fr[c]) {
                fr[c] = frac_len(v);
            }
        }
    }
    for (c = 0; c < t->ncols; c++) {
        for (r = 0; r < t->rows->nelts; r++) {
            const char *v = APR_ARRAY_IDX(t->rows, r, const char **)[c];
            apr_size_t vw = v ? text_width(v) : 1;

            if (v && t->kinds[c] == 'm') {
                vw += fr[c] - frac_len(v);
            }
            if (vw > w[c]) {
                w[c] = vw;
            }
        }
    }
    if (t->title) {
        fprintf(out, "%s\n\n", t->title);
    }
    if (*t->heads[0]) { /* a table with a header line */
        for (c = 0; c < t->ncols; c++) {
            int pad = (int)(w[c] - text_width(t->heads[c]));

            fprintf(out, "%s%*s%s%*s", c ? "  " : "",
                    t->kinds[c] == 'l' ? 0 : pad, "", t->heads[c],
                    t->kinds[c] == 'l' && c + 1 < t->ncols ? pad : 0, "");
        }
        fputc('\n', out);
        for (c = 0; c < t->ncols; c++) {
            apr_size_t i;

            fputs(c ? "  " : "", out);
            for (i = 0; i < w[c]; i++) {
                fputc('-', out);
            }
        }
        fputc('\n', out);
    }
    for (r = 0; r < t->rows->nelts; r++) {
        const char **row = APR_ARRAY_IDX(t->rows, r, const char **);

        for (c = 0; c < t->ncols; c++) {
            const char *v = row[c] ? row[c] : "-";
            apr_size_t trail =
                t->kinds[c] == 'm' && row[c] ? fr[c] - frac_len(v) : 0;
            int pad = (int)(w[c] - text_width(v) - trail);

            if (t->kinds[c] == 'l') {
                fprintf(out, "%s%s%*s", c ? "  " : "", v,
                        c + 1 < t->ncols ? pad : 0, "");
            }
            else {
                fprintf(out, "%s%*s%s%*s", c ? "  " : "", pad, "", v,
                        (int)trail, "");
            }
        }
        fputc('\n', out);
    }
    fputc('\n', out);
}

static void csv_row(FILE *out, const char *const *cells, int n, apr_pool_t *p)
{
    int c;

    for (c = 0; c < n; c++) {
        fprintf(out, "%s%s", c ? "," : "",
                cells[c] ? ark_csv_quote(cells[c], p) : "");
    }
    fputs("\r\n", out);
}

static void tbl_csv(FILE *out, const tbl_t *t, int header, apr_pool_t *p)
{
    int r;

    if (header) {
        csv_row(out, t->heads, t->ncols, p);
    }
    for (r = 0; r < t->rows->nelts; r++) {
        csv_row(out, APR_ARRAY_IDX(t->rows, r, const char **), t->ncols, p);
    }
}

static void html_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

static void tbl_html(FILE *out, const tbl_t *t)
{
    int c, r;

    if (t->title) {
        fputs("<h2>", out);
        html_text(out, t->title);
        fputs("</h2>\n", out);
    }
    fputs("<table>\n", out);
    if (*t->heads[0]) {
        fputs("<thead><tr>", out);
        for (c = 0; c < t->ncols; c++) {
            fprintf(out, "<th%s>", t->kinds[c] == 'l' ? "" : " class=\"n\"");
            html_text(out, t->heads[c]);
            fputs("</th>", out);
        }
        fputs("</tr></thead>\n", out);
    }
    fputs("<tbody>\n", out);
    for (r = 0; r < t->rows->nelts; r++) {
        const char **row = APR_ARRAY_IDX(t->rows, r, const char **);

        fputs("<tr>", out);
        for (c = 0; c < t->ncols; c++) {
            fprintf(out, "<td%s>", t->kinds[c] == 'l' ? "" : " class=\"n\"");
            html_text(out, row[c] ? row[c] : "");
            fputs("</td>", out);
        }
        fputs("</tr>\n", out);
    }
    fputs("</tbody>\n</table>\n", out);
}

static void tbl_out(FILE *out, const tbl_t *t, cli_format_t fmt, apr_pool_t *p)
{
    if (fmt == FMT_HTML) {
        tbl_html(out, t);
    }
    else {
        tbl_text(out, t, p);
    }
}

/* ---------------------------------------------------------------- html */

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, "
    "initial-scale=1\">\n<title>%s</title>\n<style>\n"
    "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,"
    "sans-serif;margin:2em;color:#1f2328;max-width:1200px}\n"
    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em}\n"
    "table{border-collapse:collapse;margin:.5em 0 1em;font-size:14px}\n"
    "th,td{padding:4px 10px;border-bottom:1px solid #d8dee4;"
    "text-align:left;white-space:nowrap}\n"
    "th{background:#f3f5f7;font-weight:600}\n"
    ".n{text-align:right;font-variant-numeric:tabular-nums}\n"
    ".note{color:#59636e;font-size:13px}\n"
    "svg{display:block;margin:.5em 0 1em;font-size:12px}\n"
    "svg text{fill:#1f2328}\n"
    "</style>\n</head>\n<body>\n";

/* One bar of a chart: value, and an optional lighter bar behind it
 * (back >= value), both nano-units. */
typedef struct bar_t {
    const char *label;
    apr_int64_t value, back;
} bar_t;

/* A horizontal bar chart, one row per bar, the value at the bar's end. */
static void svg_hbars(FILE *out, const bar_t *bars, int n, const char *legend,
                      const char *back_legend, apr_pool_t *p)
{
    const int label_w = 200, plot_w = 440, row_h = 22, top = 24;
    apr_int64_t max = 0;
    int i, h = top + n * row_h + 8;

    for (i = 0; i < n; i++) {
        max = bars[i].value > max ? bars[i].value : max;
        max = bars[i].back > max ? bars[i].back : max;
    }
    fprintf(out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" role=\"img\">\n",
            label_w + plot_w + 140, h);
    fprintf(out,
            "<rect x=\"%d\" y=\"6\" width=\"10\" height=\"10\" "
            "fill=\"#2f6fdf\"/><text x=\"%d\" y=\"15\">",
            label_w, label_w + 14);
    html_text(out, legend);
    fputs("</text>\n", out);
    if (back_legend) {
        fprintf(out,
                "<rect x=\"%d\" y=\"6\" width=\"10\" height=\"10\" "
                "fill=\"#c9d6ea\"/><text x=\"%d\" y=\"15\">",
                label_w + 200, label_w + 214);
        html_text(out, back_legend);
        fputs("</text>\n", out);
    }
    for (i = 0; i < n; i++) {
        int y = top + i * row_h;
        double wv = max > 0 ? (double)bars[i].value / (double)max * plot_w : 0;
        double wb = max > 0 ? (double)bars[i].back / (double)max * plot_w : 0;
        const char *label = bars[i].label;

        if (text_width(label) > 30) {
            label = apr_pstrcat(p, apr_pstrmemdup(p, label, 28), "...", NULL);
        }
        fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">",
                label_w - 8, y + 15);
        html_text(out, label);
        fputs("</text>\n", out);
        if (back_legend && wb > 0) {
            fprintf(out,
                    "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" "
                    "height=\"16\" fill=\"#c9d6ea\"><title>",
                    label_w, y + 3, wb);
            html_text(out, bars[i].label);
            fprintf(out, ": %s</title></rect>\n",
                    ark_money_format(bars[i].back, p));
        }
        fprintf(out,
                "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"16\" "
                "fill=\"#2f6fdf\"><title>",
                label_w, y + 3, wv);
        html_text(out, bars[i].label);
        fprintf(out, ": %s</title></rect>\n",
                ark_money_format(bars[i].value, p));
        fprintf(out, "<text x=\"%.1f\" y=\"%d\">%s</text>\n",
                label_w + (wb > wv ? wb : wv) + 6, y + 15,
                ark_money_format(bars[i].value, p));
    }
    fputs("</svg>\n", out);
}

/* A column chart over days: one column per day, the baseline behind. */
static void svg_days(FILE *out, const bar_t *bars, int n, apr_pool_t *p)
{
    const int left = 90, plot_w = 760, plot_h = 200, top = 28, bottom = 40;
    double col_w = n > 0 ? (double)plot_w / n : plot_w;
    int i, every;
    apr_int64_t max = 0;

    for (i = 0; i < n; i++) {
        max = bars[i].value > max ? bars[i].value : max;
        max = bars[i].back > max ? bars[i].back : max;
    }
    /* a date label takes about 72 px */
    every = col_w >= 72 ? 1 : (int)(72 / col_w) + 1;
    fprintf(out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" role=\"img\">\n",
            left + plot_w + 20, top + plot_h + bottom);
    fprintf(out,
            "<rect x=\"%d\" y=\"6\" width=\"10\" height=\"10\" "
            "fill=\"#2f6fdf\"/><text x=\"%d\" y=\"15\">spend</text>\n"
            "<rect x=\"%d\" y=\"6\" width=\"10\" height=\"10\" "
            "fill=\"#c9d6ea\"/><text x=\"%d\" y=\"15\">without Ark "
            "(most expensive channel)</text>\n",
            left, left + 14, left + 80, left + 94);
    fprintf(out,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
            "stroke=\"#8c959f\"/>\n",
            left, top + plot_h, left + plot_w, top + plot_h);
    fprintf(out,
            "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>\n",
            left - 6, top + 10, ark_money_format(max, p), left - 6,
            top + plot_h);
    for (i = 0; i < n; i++) {
        double x = left + i * col_w, w = col_w > 3 ? col_w - 2 : col_w;
        double hv = max > 0 ? (double)bars[i].value / (double)max * plot_h : 0;
        double hb = max > 0 ? (double)bars[i].back / (double)max * plot_h : 0;

        if (hb > 0) {
            fprintf(out,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.1f\" fill=\"#c9d6ea\"><title>%s without "
                    "Ark: %s</title></rect>\n",
                    x, top + plot_h - hb, w, hb, bars[i].label,
                    ark_money_format(bars[i].back, p));
        }
        fprintf(out,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                "height=\"%.1f\" fill=\"#2f6fdf\"><title>%s: %s</title>"
                "</rect>\n",
                x, top + plot_h - hv, w, hv, bars[i].label,
                ark_money_format(bars[i].value, p));
        if (i % every == 0) {
            fprintf(out, "<text x=\"%.1f\" y=\"%d\">%s</text>\n", x,
                    top + plot_h + 16, bars[i].label);
        }
    }
    fputs("</svg>\n", out);
}

/* ----------------------------------------------------------- the report */

static const char *i64(apr_int64_t v, apr_pool_t *p)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

static const char *money(apr_int64_t v, apr_pool_t *p)
{
    return ark_money_format(v, p);
}

static const char *percent(apr_int64_t part, apr_int64_t whole, apr_pool_t *p)
{
    if (whole <= 0) {
        return NULL;
    }
    return apr_psprintf(p, "%.1f%%", (double)part * 100.0 / (double)whole);
}

static const char *ms(double v, const char *fmt, apr_pool_t *p)
{
    return v < 0 ? NULL : apr_psprintf(p, fmt, v);
}

static const char *const group_heads[] = {NULL,
                                          "requests",
                                          "errors",
                                          "cache hits",
                                          "prompt tokens",
                                          "completion tokens",
                                          "spend",
                                          "without Ark",
                                          "saved by cache",
                                          "saved by routing",
                                          "saved"};

static tbl_t *group_table(const char *title, const char *dim_head,
                          const apr_array_header_t *groups, apr_pool_t *p)
{
    const char **heads = apr_pmemdup(p, group_heads, sizeof(group_heads));
    tbl_t *t;
    int i;

    heads[0] = dim_head;
    t = tbl_make(title, heads, "lrrrrrmmmmr", p);
    for (i = 0; i < groups->nelts; i++) {
        const ark_report_group_t *g =
            APR_ARRAY_IDX(groups, i, const ark_report_group_t *);
        const char **row = tbl_row(t, p);

        row[0] = g->name;
        row[1] = i64(g->requests, p);
        row[2] = i64(g->errors, p);
        row[3] = i64(g->cache_hits, p);
        row[4] = i64(g->prompt_tokens, p);
        row[5] = i64(g->completion_tokens, p);
        row[6] = money(g->spend_nano, p);
        row[7] = money(g->baseline_nano, p);
        row[8] = money(g->saved_cache_nano, p);
        row[9] = money(g->saved_routing_nano, p);
        row[10] = percent(g->saved_cache_nano + g->saved_routing_nano,
                          g->baseline_nano, p);
    }
    return t;
}

static const char *const latency_heads[] = {
    "channel", "requests", "latency p50", "p95",
    "p99",     "TTFB p50", "p95",         "p99"};

static tbl_t *latency_table(const apr_array_header_t *groups,
                            const ark_report_group_t *total, apr_pool_t *p)
{
    tbl_t *t =
        tbl_make("Latency by channel (ms)", latency_heads, "lrrrrrrr", p);
    int i;

    for (i = 0; i <= groups->nelts; i++) {
        const ark_report_group_t *g =
            i < groups->nelts
                ? APR_ARRAY_IDX(groups, i, const ark_report_group_t *)
                : total;
        ark_report_pct_t lat, ttfb;
        const char **row = tbl_row(t, p);

        ark_report_pct(&lat, g->latency_ms);
        ark_report_pct(&ttfb, g->ttfb_ms);
        row[0] = g->name;
        row[1] = i64(g->requests, p);
        row[2] = ms(lat.p50, "%.1f", p);
        row[3] = ms(lat.p95, "%.1f", p);
        row[4] = ms(lat.p99, "%.1f", p);
        row[5] = ms(ttfb.p50, "%.1f", p);
        row[6] = ms(ttfb.p95, "%.1f", p);
        row[7] = ms(ttfb.p99, "%.1f", p);
    }
    return t;
}

static const char *const summary_heads[] = {"", ""};

static tbl_t *summary_table(const ark_report_t *rep, apr_pool_t *p)
{
    const ark_report_group_t *g = ark_report_total(rep);
    tbl_t *t = tbl_make("Summary", summary_heads, "lm", p);
    apr_int64_t saved = g->saved_cache_nano + g->saved_routing_nano;
    const char **row;

#define SUMMARY_ROW(label, value)                                              \
    do {                                                                       \
        row = tbl_row(t, p);                                                   \
        row[0] = (label);                                                      \
        row[1] = (value);                                                      \
    } while (0)

    SUMMARY_ROW("requests", i64(g->requests, p));
    SUMMARY_ROW("errors (status >= 400)", i64(g->errors, p));
    SUMMARY_ROW("cache hits", i64(g->cache_hits, p));
    SUMMARY_ROW("prompt tokens", i64(g->prompt_tokens, p));
    SUMMARY_ROW("completion tokens", i64(g->completion_tokens, p));
    SUMMARY_ROW("spend", money(g->spend_nano, p));
    SUMMARY_ROW("without Ark (most expensive channel)",
                money(g->baseline_nano, p));
    SUMMARY_ROW("saved by the cache", money(g->saved_cache_nano, p));
    SUMMARY_ROW("saved by routing", money(g->saved_routing_nano, p));
    SUMMARY_ROW("saved in total", money(saved, p));
    SUMMARY_ROW("saved, share of cost without Ark",
                percent(saved, g->baseline_nano, p));
    if (g->spend_estimated) {
        SUMMARY_ROW("requests priced from --config (no spend_nano)",
                    i64(g->spend_estimated, p));
    }
    if (g->unpriced) {
        SUMMARY_ROW("requests with tokens but no known price",
                    i64(g->unpriced, p));
    }
#undef SUMMARY_ROW
    return t;
}

/* "2026-01-01 to 2026-01-31", or NULL without dated requests. */
static const char *period(const ark_report_t *rep, apr_pool_t *p)
{
    apr_array_header_t *days = ark_report_groups(rep, ARK_DIM_DAY, p);
    const char *first = NULL, *last = NULL;
    int i;

    for (i = 0; i < days->nelts; i++) {
        const char *d =
            APR_ARRAY_IDX(days, i, const ark_report_group_t *)->name;

        if (isdigit((unsigned char)*d)) {
            first = first ? first : d;
            last = d;
        }
    }
    return first ? apr_pstrcat(p, first, " to ", last, NULL) : NULL;
}

static const char *const csv_heads[] = {
    "dimension",       "name",          "requests",          "errors",
    "cache_hits",      "prompt_tokens", "completion_tokens", "cached_tokens",
    "spend",           "baseline",      "saved_cache",       "saved_routing",
    "spend_estimated", "unpriced",      "latency_p50_ms",    "latency_p95_ms",
    "latency_p99_ms",  "ttfb_p50_ms",   "ttfb_p95_ms",       "ttfb_p99_ms"};

static void csv_group(tbl_t *t, const char *dim, const ark_report_group_t *g,
                      apr_pool_t *p)
{
    const char **row = tbl_row(t, p);

    row[0] = dim;
    row[1] = g->name;
    row[2] = i64(g->requests, p);
    row[3] = i64(g->errors, p);
    row[4] = i64(g->cache_hits, p);
    row[5] = i64(g->prompt_tokens, p);
    row[6] = i64(g->completion_tokens, p);
    row[7] = i64(g->cached_tokens, p);
    row[8] = money(g->spend_nano, p);
    row[9] = money(g->baseline_nano, p);
    row[10] = money(g->saved_cache_nano, p);
    row[11] = money(g->saved_routing_nano, p);
    row[12] = i64(g->spend_estimated, p);
    row[13] = i64(g->unpriced, p);
    if (g->latency_ms) {
        ark_report_pct_t lat, ttfb;

        ark_report_pct(&lat, g->latency_ms);
        ark_report_pct(&ttfb, g->ttfb_ms);
        row[14] = ms(lat.p50, "%.3f", p);
        row[15] = ms(lat.p95, "%.3f", p);
        row[16] = ms(lat.p99, "%.3f", p);
        row[17] = ms(ttfb.p50, "%.3f", p);
        row[18] = ms(ttfb.p95, "%.3f", p);
        row[19] = ms(ttfb.p99, "%.3f", p);
    }
}

static bar_t *bars_of(const apr_array_header_t *groups, int with_back,
                      apr_pool_t *p)
{
    bar_t *bars =
        apr_pcalloc(p, sizeof(bar_t) * (apr_size_t)(groups->nelts + 1));
    int i;

    for (i = 0; i < groups->nelts; i++) {
        const ark_report_group_t *g =
            APR_ARRAY_IDX(groups, i, const ark_report_group_t *);

        bars[i].label = g->name;
        bars[i].value = g->spend_nano;
        bars[i].back = with_back ? g->baseline_nano : 0;
    }
    return bars;
}

static void render_report(FILE *out, const cli_args_t *a,
                          const ark_report_t *rep, apr_pool_t *p)
{
    static const char *const titles[ARK_DIM_COUNT] = {
        "By provider", "By channel", "By model",
        "By key",      "By tenant",  "By day"};
    apr_array_header_t *groups[ARK_DIM_COUNT];
    apr_int64_t lines, malformed, filtered;
    const char *when = period(rep, p), *note;
    int d;

    ark_report_counts(rep, &lines, &malformed, &filtered);
    for (d = 0; d < ARK_DIM_COUNT; d++) {
        groups[d] = ark_report_groups(rep, (ark_report_dim_t)d, p);
    }
    if (a->format == FMT_CSV) {
        tbl_t *t = tbl_make(NULL, csv_heads, "llrrrrrrmmmmrrrrrrrr", p);

        csv_group(t, "total", ark_report_total(rep), p);
        for (d = 0; d < ARK_DIM_COUNT; d++) {
            int i;

            if (!a->dims[d]) {
                continue;
            }
            for (i = 0; i < groups[d]->nelts; i++) {
                csv_group(
                    t, ark_report_dim_name((ark_report_dim_t)d),
                    APR_ARRAY_IDX(groups[d], i, const ark_report_group_t *), p);
            }
        }
        tbl_csv(out, t, 1, p);
        return;
    }

    note = apr_psprintf(
        p,
        "%s%s%" APR_INT64_T_FMT " requests from %" APR_INT64_T_FMT
        " lines; %" APR_INT64_T_FMT
        " malformed lines skipped%s. Amounts in the "
        "currency of the ArkModel prices.",
        when ? when : "", when ? ": " : "", ark_report_total(rep)->requests,
        lines, malformed,
        filtered ? apr_psprintf(p, ", %" APR_INT64_T_FMT " outside --from/--to",
                                filtered)
                 : "");
    if (a->format == FMT_HTML) {
        fprintf(out, html_head, "Ark cost report");
        fputs("<h1>Ark cost report</h1>\n<p class=\"note\">", out);
        html_text(out, note);
        fputs("</p>\n", out);
    }
    else {
        fprintf(out, "Ark cost report\n%s\n\n", note);
    }
    tbl_out(out, summary_table(rep, p), a->format, p);
    if (a->format == FMT_HTML) {
        if (groups[ARK_DIM_PROVIDER]->nelts) {
            fputs("<h2>Spend by provider</h2>\n", out);
            svg_hbars(out, bars_of(groups[ARK_DIM_PROVIDER], 0, p),
                      groups[ARK_DIM_PROVIDER]->nelts, "spend", NULL, p);
        }
        if (groups[ARK_DIM_DAY]->nelts) {
            fputs("<h2>Spend by day</h2>\n", out);
            svg_days(out, bars_of(groups[ARK_DIM_DAY], 1, p),
                     groups[ARK_DIM_DAY]->nelts, p);
        }
    }
    for (d = 0; d < ARK_DIM_COUNT; d++) {
        if (!a->dims[d]) {
            continue;
        }
        tbl_out(out,
                group_table(titles[d], ark_report_dim_name((ark_report_dim_t)d),
                            groups[d], p),
                a->format, p);
        if (d == ARK_DIM_CHANNEL) {
            tbl_out(out, latency_table(groups[d], ark_report_total(rep), p),
                    a->format, p);
        }
    }
    if (a->format == FMT_HTML) {
        fputs("<p class=\"note\">Spend: what the gateway logged "
              "(spend_nano), else the tokens at the answering channel's "
              "price. Without Ark: the same tokens at the alias's most "
              "expensive channel. Saved by cache: that amount for cache "
              "hits. Saved by routing: without Ark minus spend for the "
              "other requests. Percentiles: nearest rank. Generated by "
              "ark-report.</p>\n</body>\n</html>\n",
              out);
    }
}

/* ----------------------------------------------------------- estimate */

static const char *const est_heads[] = {"model",
                                        "rows",
                                        "input tokens",
                                        "output tokens",
                                        "official channel",
                                        "official cost",
                                        "routed channel",
                                        "routed cost",
                                        "savings",
                                        "saved"};

static const char *const est_csv_heads[] = {"dimension",     "name",
                                            "rows",          "input_tokens",
                                            "output_tokens", "official_channel",
                                            "official_cost", "routed_channel",
                                            "routed_cost",   "savings"};

static void est_row(tbl_t *t, const char *dim, const ark_estimate_group_t *g,
                    int pct, apr_pool_t *p)
{
    const char **row = tbl_row(t, p);
    int c = 0;

    if (dim) {
        row[c++] = dim;
    }
    row[c++] = g->name;
    row[c++] = i64(g->rows, p);
    row[c++] = i64(g->input_tokens, p);
    row[c++] = i64(g->output_tokens, p);
    row[c++] = g->official_channel;
    row[c++] = money(g->official_nano, p);
    row[c++] = g->routed_channel;
    row[c++] = money(g->routed_nano, p);
    row[c++] = money(g->official_nano - g->routed_nano, p);
    if (pct) {
        row[c] =
            percent(g->official_nano - g->routed_nano, g->official_nano, p);
    }
}

static void render_estimate(FILE *out, const cli_args_t *a,
                            const ark_estimate_t *est, apr_pool_t *p)
{
    apr_array_header_t *groups = ark_estimate_groups(est, p);
    const ark_estimate_group_t *total = ark_estimate_total(est);
    apr_int64_t unmatched, bad, filtered;
    const char *note;
    tbl_t *t;
    int i;

    ark_estimate_counts(est, &unmatched, &bad, &filtered);
    if (a->format == FMT_CSV) {
        t = tbl_make(NULL, est_csv_heads, "llrrrlmlmm", p);
        est_row(t, "total", total, 0, p);
        for (i = 0; i < groups->nelts; i++) {
            est_row(t, "model",
                    APR_ARRAY_IDX(groups, i, const ark_estimate_group_t *), 0,
                    p);
        }
        tbl_csv(out, t, 1, p);
        return;
    }
    note = apr_psprintf(
        p,
        "%s: %" APR_INT64_T_FMT " rows priced; skipped: %" APR_INT64_T_FMT
        " without a configured alias or "
        "price, %" APR_INT64_T_FMT " malformed%s. Official: "
        "the alias's most expensive channel for each row; "
        "routed: its cheapest %schannel.",
        a->estimate, total->rows, unmatched, bad,
        filtered ? apr_psprintf(p, ", %" APR_INT64_T_FMT " outside --from/--to",
                                filtered)
                 : "",
        a->require ? "compliant " : "");
    t = tbl_make("Estimate by model", est_heads, "lrrrlmlmmr", p);
    for (i = 0; i < groups->nelts; i++) {
        est_row(t, NULL, APR_ARRAY_IDX(groups, i, const ark_estimate_group_t *),
                1, p);
    }
    est_row(t, NULL, total, 1, p);
    if (a->format == FMT_HTML) {
        bar_t *bars =
            apr_pcalloc(p, sizeof(bar_t) * (apr_size_t)(groups->nelts + 1));

        fprintf(out, html_head, "Ark routing estimate");
        fputs("<h1>Ark routing estimate</h1>\n<p class=\"note\">", out);
        html_text(out, note);
        fputs("</p>\n", out);
        for (i = 0; i < groups->nelts; i++) {
            const ark_estimate_group_t *g =
                APR_ARRAY_IDX(groups, i, const ark_estimate_group_t *);

            bars[i].label = g->name;
            bars[i].value = g->routed_nano;
            bars[i].back = g->official_nano;
        }
        if (groups->nelts) {
            fputs("<h2>Cost by model</h2>\n", out);
            svg_hbars(out, bars, groups->nelts, "with Ark routing",
                      "official channel", p);
        }
        tbl_html(out, t);
        fputs("</body>\n</html>\n", out);
    }
    else {
        fprintf(out, "Ark routing estimate\n%s\n\n", note);
        tbl_text(out, t, p);
    }
}

/* ---------------------------------------------------------------- main */

static apr_hash_t *load_configs(const cli_args_t *a, int *rc, apr_pool_t *p)
{
    int n = a->configs->nelts, i;
    const char **texts = apr_pcalloc(p, sizeof(char *) * (apr_size_t)(n + 1));
    apr_hash_t *models;

    for (i = 0; i < n; i++) {
        char *text;
        apr_size_t len;

        if (cli_read_all(&text, &len,
                         APR_ARRAY_IDX(a->configs, i, const char *), p)) {
            *rc = CLI_EXIT_FAIL;
            text = "";
        }
        texts[i] = text;
    }
    models = ark_report_config_parse((const char *const *)a->configs->elts,
                                     texts, n, cli_warn, NULL, p);
    if (n > 0 && apr_hash_count(models) == 0) {
        cli_warn(NULL, "no ArkModel found in the --config files: no "
                       "savings can be computed");
    }
    return models;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    cli_args_t a;
    apr_hash_t *models = NULL;
    int rc = CLI_EXIT_OK, i;

    if ((i = ark_cli_start(CLI_PROG, &argc, &argv, &p)) != CLI_EXIT_OK) {
        return i;
    }
    if ((i = cli_parse(&a, argc, argv, p)) != CLI_EXIT_OK) {
        return i;
    }
    if (a.configs->nelts) {
        models = load_configs(&a, &rc, p);
    }

    if (a.estimate) {
        apr_array_header_t *req = NULL;
        ark_estimate_t *est;
        const char *err;
        char *text;
        apr_size_t len;

        if (a.require && *a.require &&
            (err = ark_tags_parse(&req, a.require, p))) {
            return ark_cli_usage_error("--require: %s", err);
        }
        est = ark_estimate_make(models, req, p);
        ark_estimate_set_range(est, a.from, a.to);
        if (cli_read_all(&text, &len, a.estimate, p)) {
            return CLI_EXIT_FAIL;
        }
        if (ark_estimate_add_csv(est, cli_name(a.estimate), text, len, cli_warn,
                                 NULL, &err) != APR_SUCCESS) {
            ark_cli_error("%s", err);
            return CLI_EXIT_FAIL;
        }
        render_estimate(stdout, &a, est, p);
    }
    else {
        ark_report_t *rep = ark_report_make(models, p);
        apr_int64_t shown = 0, lines, malformed, filtered;

        ark_report_set_range(rep, a.from, a.to);
        if (a.inputs->nelts == 0) {
            APR_ARRAY_PUSH(a.inputs, const char *) = "-";
        }
        for (i = 0; i < a.inputs->nelts; i++) {
            if (cli_read_log(rep, APR_ARRAY_IDX(a.inputs, i, const char *),
                             &shown, p)) {
                rc = CLI_EXIT_FAIL;
            }
        }
        ark_report_counts(rep, &lines, &malformed, &filtered);
        if (shown > CLI_MAX_LINE_WARNINGS) {
            fprintf(stderr,
                    CLI_PROG
                    ": warning: %" APR_INT64_T_FMT
                    " malformed lines in all (only the first %d shown)\n",
                    malformed, CLI_MAX_LINE_WARNINGS);
        }
        render_report(stdout, &a, rep, p);
    }
    if (fflush(stdout) || ferror(stdout)) {
        ark_cli_error("cannot write the report: %s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return rc;
}
