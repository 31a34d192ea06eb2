/* The logic of ark-report. See ark_report.h.
 *
 * A worked example of the savings of one request. The alias gpt-4o has
 * three channels:
 *   openai  price=2.50/10    relay  price=1.20/5    qwen  price=0.30/1.20
 * A request of 1000 prompt and 200 completion tokens answered by relay
 * with spend_nano 2200000 (1000 * 1200 + 200 * 5000) has the baseline
 * max(openai 4500000, relay 2200000, qwen 540000) = 4500000 and saved
 * 2300000 by routing. The same request answered from the cache spent 0
 * and saved 4500000 by the cache.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <jansson.h>

#include "ark_config.h"
#include "ark_limit.h"
#include "ark_report.h"
#include "ark_route.h"

#define NAME_NONE "(none)"
#define NAME_CACHE "(cache)"
#define NAME_UNKNOWN "(unknown)"
#define NAME_VARIES "(varies)"

/* ------------------------------------------------------ configuration */

typedef struct conf_dir_t {
    const char *where; /* "FILE:LINE" */
    int argc;
    char **argv;
} conf_dir_t;

/* Splits one logical line into words the way httpd does (ap_getword_conf):
 * whitespace separates, a word in double or single quotes may hold spaces
 * and escape its quote with a backslash. */
static void conf_words(apr_array_header_t *words, const char *s, apr_pool_t *p)
{
    while (*s) {
        char *w, *o;

        while (*s && isspace((unsigned char)*s)) {
            s++;
        }
        if (!*s) {
            break;
        }
        w = o = apr_palloc(p, strlen(s) + 1);
        if (*s == '"' || *s == '\'') {
            char q = *s++;

            while (*s && *s != q) {
                if (*s == '\\' && s[1] == q) {
                    s++;
                }
                *o++ = *s++;
            }
            if (*s == q) {
                s++;
            }
        }
        else {
            while (*s && !isspace((unsigned char)*s)) {
                *o++ = *s++;
            }
        }
        *o = '\0';
        APR_ARRAY_PUSH(words, char *) = w;
    }
}

/* The directives of one text, continuation lines joined, comments and
 * section markers dropped. */
static void conf_split(apr_array_header_t *dirs, const char *name,
                       const char *text, apr_pool_t *p)
{
    const char *s = text;
    int lineno = 0;

    while (*s) {
        const char *nl;
        char *logical = "";
        int first = lineno + 1;
        apr_size_t n;

        /* gather physical lines while one ends with a backslash */
        for (;;) {
            nl = strchr(s, '\n');
            n = nl ? (apr_size_t)(nl - s) : strlen(s);
            lineno++;
            while (n > 0 &&
                   (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) {
                n--;
            }
            if (n > 0 && s[n - 1] == '\\') {
                logical = apr_pstrcat(p, logical, apr_pstrmemdup(p, s, n - 1),
                                      " ", NULL);
                s = nl ? nl + 1 : s + strlen(s);
                if (!*s) {
                    break;
                }
                continue;
            }
            logical = apr_pstrcat(p, logical, apr_pstrmemdup(p, s, n), NULL);
            s = nl ? nl + 1 : s + strlen(s);
            break;
        }
        while (isspace((unsigned char)*logical)) {
            logical++;
        }
        if (*logical && *logical != '#' && *logical != '<') {
            apr_array_header_t *words = apr_array_make(p, 8, sizeof(char *));
            conf_dir_t *d;

            conf_words(words, logical, p);
            if (words->nelts > 0) {
                d = apr_array_push(dirs);
                d->where = apr_psprintf(p, "%s:%d", name, first);
                d->argc = words->nelts;
                d->argv = (char **)words->elts;
            }
        }
    }
}

static void warnf(ark_report_warn_fn *warn, void *baton, apr_pool_t *p,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void warnf(ark_report_warn_fn *warn, void *baton, apr_pool_t *p,
                  const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    if (!warn) {
        return;
    }
    va_start(ap, fmt);
    msg = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    warn(baton, msg);
}

apr_hash_t *ark_report_config_parse(const char *const *names,
                                    const char *const *texts, int n,
                                    ark_report_warn_fn *warn, void *baton,
                                    apr_pool_t *p)
{
    apr_hash_t *models = apr_hash_make(p), *provs = apr_hash_make(p);
    apr_array_header_t *dirs = apr_array_make(p, 64, sizeof(conf_dir_t));
    int i;

    for (i = 0; i < n; i++) {
        conf_split(dirs, names[i], texts[i], p);
    }
    /* providers first, from every text */
    for (i = 0; i < dirs->nelts; i++) {
        const conf_dir_t *d = &APR_ARRAY_IDX(dirs, i, conf_dir_t);
        ark_provider_t *prov;
        const char *err;

        if (!strcasecmp(d->argv[0], "Include") ||
            !strcasecmp(d->argv[0], "IncludeOptional")) {
            warnf(warn, baton, p,
                  "%s: %s not followed (give the included "
                  "file as another --config)",
                  d->where, d->argv[0]);
        }
        if (strcasecmp(d->argv[0], "ArkProvider")) {
            continue;
        }
        err = ark_provider_parse(&prov, d->argc - 1, d->argv + 1, p);
        if (err) {
            warnf(warn, baton, p, "%s: %s (line ignored)", d->where, err);
        }
        else if (!apr_hash_get(provs, prov->name, APR_HASH_KEY_STRING)) {
            apr_hash_set(provs, prov->name, APR_HASH_KEY_STRING, prov);
        }
    }
    for (i = 0; i < dirs->nelts; i++) {
        const conf_dir_t *d = &APR_ARRAY_IDX(dirs, i, conf_dir_t);
        const ark_provider_t *prov;
        const char *err;

        if (strcasecmp(d->argv[0], "ArkModel")) {
            continue;
        }
        if (d->argc < 3) {
            warnf(warn, baton, p,
                  "%s: ArkModel takes <alias> <provider> "
                  "... (line ignored)",
                  d->where);
            continue;
        }
        prov = apr_hash_get(provs, d->argv[2], APR_HASH_KEY_STRING);
        if (!prov) {
            warnf(warn, baton, p,
                  "%s: ArkModel %s: unknown provider '%s' "
                  "(line ignored)",
                  d->where, d->argv[1], d->argv[2]);
            continue;
        }
        err = ark_model_add(models, prov, d->argc - 1, d->argv + 1, p);
        if (err) {
            warnf(warn, baton, p, "%s: %s (line ignored)", d->where, err);
        }
    }
    return models;
}

/* ----------------------------------------------------------- records */

/* A channel with a price: ark_cost_nano prices it; others cost 0. */
static int chan_priced(const ark_channel_t *ch)
{
    return ch->price_in >= 0 || ch->price_out >= 0;
}

static apr_int64_t chan_cost(const ark_channel_t *ch, long prompt, long cached,
                             long completion)
{
    return ark_cost_nano(prompt, cached, completion, ch->price_in,
                         ch->price_out, ch->price_cached);
}

static int is_day(const char *s)
{
    static const char pat[] = "dddd-dd-dd";
    int i;

    for (i = 0; i < 10; i++) {
        if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != '-') {
            return 0;
        }
    }
    return 1;
}

/* A string field: absent or null is NULL. */
static const char *get_str(const char **out, json_t *o, const char *k,
                           apr_pool_t *p)
{
    json_t *v = json_object_get(o, k);

    *out = NULL;
    if (!v || json_is_null(v)) {
        return NULL;
    }
    if (!json_is_string(v)) {
        return apr_psprintf(p, "field '%s' is not a string", k);
    }
    *out = apr_pstrmemdup(p, json_string_value(v), json_string_length(v));
    return NULL;
}

/* A count: absent, null or negative is -1; a real must be integral. */
static const char *get_count(apr_int64_t *out, json_t *o, const char *k,
                             apr_pool_t *p)
{
    json_t *v = json_object_get(o, k);

    *out = -1;
    if (!v || json_is_null(v)) {
        return NULL;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
    }
    else if (json_is_real(v) &&
             json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9e15) {
        *out = (apr_int64_t)json_real_value(v);
    }
    else {
        return apr_psprintf(p, "field '%s' is not an integer", k);
    }
    if (*out < 0) {
        *out = -1;
    }
    return NULL;
}

static const char *get_ms(double *out, json_t *o, const char *k, apr_pool_t *p)
{
    json_t *v = json_object_get(o, k);

    *out = -1;
    if (!v || json_is_null(v)) {
        return NULL;
    }
    if (!json_is_number(v)) {
        return apr_psprintf(p, "field '%s' is not a number", k);
    }
    *out = json_number_value(v);
    if (!(*out >= 0)) {
        *out = -1;
    }
    return NULL;
}

static long to_long(apr_int64_t v)
{
    return v > (apr_int64_t)LONG_MAX ? LONG_MAX : (long)v;
}

apr_status_t ark_report_parse_line(ark_report_rec_t *rec, const char *line,
                                   apr_size_t len, const char **err,
                                   apr_pool_t *p)
{
    json_error_t jerr;
    json_t *o;
    const char *e = NULL, *time, *cache;
    apr_int64_t n;

    memset(rec, 0, sizeof(*rec));
    o = json_loadb(line, len, 0, &jerr);
    if (!o) {
        *err =
            apr_psprintf(p, "not JSON: %s (column %d)", jerr.text, jerr.column);
        return APR_EINVAL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        *err = "not a JSON object";
        return APR_EINVAL;
    }
    if ((e = get_str(&time, o, "time", p))) {
        goto fail;
    }
    if (!time || strlen(time) < 10 || !is_day(time)) {
        e = "no \"time\" with a date (YYYY-MM-DD...)";
        goto fail;
    }
    memcpy(rec->day, time, 10);
    rec->day[10] = '\0';
    if ((e = get_str(&rec->key, o, "key", p)) ||
        (e = get_str(&rec->tenant, o, "tenant", p)) ||
        (e = get_str(&rec->model, o, "model", p)) ||
        (e = get_str(&rec->provider, o, "provider", p)) ||
        (e = get_str(&rec->upstream_model, o, "upstream_model", p)) ||
        (e = get_str(&rec->channel, o, "channel", p)) ||
        (e = get_str(&cache, o, "cache", p)) ||
        (e = get_ms(&rec->latency_ms, o, "latency_ms", p)) ||
        (e = get_ms(&rec->ttfb_ms, o, "ttfb_ms", p))) {
        goto fail;
    }
    rec->cache_hit = cache && !strcmp(cache, "hit");
    if ((e = get_count(&n, o, "status", p))) {
        goto fail;
    }
    rec->status = n > 0 && n < 1000 ? (int)n : 0;
    if ((e = get_count(&n, o, "prompt_tokens", p))) {
        goto fail;
    }
    rec->prompt_tokens = to_long(n);
    if ((e = get_count(&n, o, "completion_tokens", p))) {
        goto fail;
    }
    rec->completion_tokens = to_long(n);
    if ((e = get_count(&n, o, "cached_tokens", p))) {
        goto fail;
    }
    rec->cached_tokens = to_long(n);
    if ((e = get_count(&rec->spend_nano, o, "spend_nano", p))) {
        goto fail;
    }
    json_decref(o);
    return APR_SUCCESS;

fail:
    json_decref(o);
    *err = e;
    return APR_EINVAL;
}

/* --------------------------------------------------------- aggregation */

struct ark_report_t {
    apr_pool_t *p;
    apr_pool_t *scratch; /* one line's parse, cleared per line */
    const apr_hash_t *models;
    char from[11], to[11]; /* "" open */
    apr_int64_t lines, malformed, filtered;
    ark_report_group_t total;
    apr_hash_t *groups[ARK_DIM_COUNT];
};

static const char *const dim_names[ARK_DIM_COUNT] = {
    "provider", "channel", "model", "key", "tenant", "day"};

const char *ark_report_dim_name(ark_report_dim_t d)
{
    return (unsigned)d < ARK_DIM_COUNT ? dim_names[d] : "?";
}

int ark_report_dim_parse(const char *name)
{
    int i;

    for (i = 0; i < ARK_DIM_COUNT; i++) {
        if (!strcmp(dim_names[i], name)) {
            return i;
        }
    }
    return -1;
}

ark_report_t *ark_report_make(const apr_hash_t *models, apr_pool_t *p)
{
    ark_report_t *rep = apr_pcalloc(p, sizeof(*rep));
    int i;

    rep->p = p;
    apr_pool_create(&rep->scratch, p);
    rep->models = models;
    rep->total.name = "all";
    rep->total.latency_ms = apr_array_make(p, 1024, sizeof(double));
    rep->total.ttfb_ms = apr_array_make(p, 1024, sizeof(double));
    for (i = 0; i < ARK_DIM_COUNT; i++) {
        rep->groups[i] = apr_hash_make(p);
    }
    return rep;
}

static void set_day(char *dst, const char *s)
{
    dst[0] = '\0';
    if (s && strlen(s) == 10 && is_day(s)) {
        memcpy(dst, s, 11);
    }
}

void ark_report_set_range(ark_report_t *rep, const char *from, const char *to)
{
    set_day(rep->from, from);
    set_day(rep->to, to);
}

/* Whether day is outside from..to; an unknown day is when either is set. */
static int out_of_range(const char *day, const char *from, const char *to)
{
    if (!*from && !*to) {
        return 0;
    }
    if (!*day) {
        return 1;
    }
    return (*from && strcmp(day, from) < 0) || (*to && strcmp(day, to) > 0);
}

static ark_report_group_t *group_get(ark_report_t *rep, ark_report_dim_t d,
                                     const char *name)
{
    ark_report_group_t *g =
        apr_hash_get(rep->groups[d], name, APR_HASH_KEY_STRING);

    if (!g) {
        g = apr_pcalloc(rep->p, sizeof(*g));
        g->name = apr_pstrdup(rep->p, name);
        if (d == ARK_DIM_CHANNEL) {
            g->latency_ms = apr_array_make(rep->p, 64, sizeof(double));
            g->ttfb_ms = apr_array_make(rep->p, 64, sizeof(double));
        }
        apr_hash_set(rep->groups[d], g->name, APR_HASH_KEY_STRING, g);
    }
    return g;
}

/* What one request adds to every group it belongs to. */
typedef struct rec_sums_t {
    apr_int64_t spend, baseline, saved_cache, saved_routing;
    int estimated, unpriced;
} rec_sums_t;

static void group_add(ark_report_group_t *g, const ark_report_rec_t *rec,
                      const rec_sums_t *s)
{
    g->requests++;
    g->errors += rec->status >= 400;
    g->cache_hits += rec->cache_hit;
    g->prompt_tokens += rec->prompt_tokens > 0 ? rec->prompt_tokens : 0;
    g->completion_tokens +=
        rec->completion_tokens > 0 ? rec->completion_tokens : 0;
    g->cached_tokens += rec->cached_tokens > 0 ? rec->cached_tokens : 0;
    g->spend_nano += s->spend;
    g->baseline_nano += s->baseline;
    g->saved_cache_nano += s->saved_cache;
    g->saved_routing_nano += s->saved_routing;
    g->spend_estimated += s->estimated;
    g->unpriced += s->unpriced;
    if (g->latency_ms && rec->latency_ms >= 0) {
        APR_ARRAY_PUSH(g->latency_ms, double) = rec->latency_ms;
    }
    if (g->ttfb_ms && rec->ttfb_ms >= 0) {
        APR_ARRAY_PUSH(g->ttfb_ms, double) = rec->ttfb_ms;
    }
}

/* The channel of the alias that answered: by the logged channel name,
 * else by provider and upstream model. */
static const ark_channel_t *find_channel(const ark_model_t *m,
                                         const ark_report_rec_t *rec)
{
    int i;

    if (!m) {
        return NULL;
    }
    for (i = 0; i < m->channels->nelts; i++) {
        const ark_channel_t *ch = &APR_ARRAY_IDX(m->channels, i, ark_channel_t);

        if (rec->channel) {
            if (!strcmp(ch->name, rec->channel)) {
                return ch;
            }
        }
        else if (rec->provider && !strcmp(ch->provider->name, rec->provider) &&
                 (!rec->upstream_model ||
                  !strcmp(ch->upstream_model, rec->upstream_model))) {
            return ch;
        }
    }
    return NULL;
}

int ark_report_add(ark_report_t *rep, const ark_report_rec_t *rec)
{
    const ark_model_t *m = NULL;
    const ark_channel_t *ch;
    const char *names[ARK_DIM_COUNT];
    char chan_buf[1024];
    long pt = rec->prompt_tokens > 0 ? rec->prompt_tokens : 0;
    long ct = rec->completion_tokens > 0 ? rec->completion_tokens : 0;
    long cached = rec->cached_tokens > 0 ? rec->cached_tokens : 0;
    int i, have_base = 0;
    rec_sums_t s;

    if (out_of_range(rec->day, rep->from, rep->to)) {
        rep->filtered++;
        return 0;
    }
    if (rep->models && rec->model) {
        m = apr_hash_get((apr_hash_t *)rep->models, rec->model,
                         APR_HASH_KEY_STRING);
    }
    ch = find_channel(m, rec);

    memset(&s, 0, sizeof(s));
    if (rec->spend_nano >= 0) {
        s.spend = rec->spend_nano;
    }
    else if (rec->cache_hit) {
        s.spend = 0;
    }
    else if (ch && chan_priced(ch)) {
        s.spend = chan_cost(ch, pt, cached, ct);
        s.estimated = pt + ct > 0;
    }
    else {
        s.unpriced = pt + ct > 0;
    }
    if (m) {
        for (i = 0; i < m->channels->nelts; i++) {
            const ark_channel_t *c =
                &APR_ARRAY_IDX(m->channels, i, ark_channel_t);
            apr_int64_t cost;

            if (!chan_priced(c)) {
                continue;
            }
            cost = chan_cost(c, pt, cached, ct);
            if (!have_base || cost > s.baseline) {
                s.baseline = cost;
            }
            have_base = 1;
        }
    }
    if (!have_base) {
        s.baseline = s.spend;
    }
    if (rec->cache_hit) {
        s.saved_cache = s.baseline - s.spend;
    }
    else {
        s.saved_routing = s.baseline - s.spend;
    }

    names[ARK_DIM_PROVIDER] = rec->provider    ? rec->provider
                              : rec->cache_hit ? NAME_CACHE
                                               : NAME_NONE;
    if (rec->channel) {
        names[ARK_DIM_CHANNEL] = rec->channel;
    }
    else if (ch) {
        names[ARK_DIM_CHANNEL] = ch->name;
    }
    else if (rec->provider) {
        /* the default channel name; absurdly long names are cut */
        apr_snprintf(chan_buf, sizeof(chan_buf), "%s%s%s", rec->provider,
                     rec->upstream_model ? "/" : "",
                     rec->upstream_model ? rec->upstream_model : "");
        names[ARK_DIM_CHANNEL] = chan_buf;
    }
    else {
        names[ARK_DIM_CHANNEL] = rec->cache_hit ? NAME_CACHE : NAME_NONE;
    }
    names[ARK_DIM_MODEL] = rec->model ? rec->model : NAME_NONE;
    names[ARK_DIM_KEY] = rec->key ? rec->key : NAME_NONE;
    names[ARK_DIM_TENANT] = rec->tenant ? rec->tenant : NAME_NONE;
    names[ARK_DIM_DAY] = *rec->day ? rec->day : NAME_UNKNOWN;

    group_add(&rep->total, rec, &s);
    for (i = 0; i < ARK_DIM_COUNT; i++) {
        group_add(group_get(rep, (ark_report_dim_t)i, names[i]), rec, &s);
    }
    return 1;
}

apr_status_t ark_report_add_line(ark_report_t *rep, const char *line,
                                 apr_size_t len, const char **err)
{
    ark_report_rec_t rec;
    apr_size_t i;

    while (len > 0 && isspace((unsigned char)line[len - 1])) {
        len--;
    }
    for (i = 0; i < len && isspace((unsigned char)line[i]); i++) {
    }
    if (i == len) {
        return APR_SUCCESS;
    }
    rep->lines++;
    apr_pool_clear(rep->scratch);
    if (ark_report_parse_line(&rec, line + i, len - i, err, rep->scratch) !=
        APR_SUCCESS) {
        rep->malformed++;
        return APR_EINVAL;
    }
    ark_report_add(rep, &rec);
    return APR_SUCCESS;
}

void ark_report_count_malformed(ark_report_t *rep)
{
    rep->lines++;
    rep->malformed++;
}

void ark_report_counts(const ark_report_t *rep, apr_int64_t *lines,
                       apr_int64_t *malformed, apr_int64_t *filtered)
{
    *lines = rep->lines;
    *malformed = rep->malformed;
    *filtered = rep->filtered;
}

const ark_report_group_t *ark_report_total(const ark_report_t *rep)
{
    return &rep->total;
}

static int cmp_by_name(const void *a, const void *b)
{
    const ark_report_group_t *x = *(const ark_report_group_t *const *)a;
    const ark_report_group_t *y = *(const ark_report_group_t *const *)b;

    return strcmp(x->name, y->name);
}

static int cmp_by_spend(const void *a, const void *b)
{
    const ark_report_group_t *x = *(const ark_report_group_t *const *)a;
    const ark_report_group_t *y = *(const ark_report_group_t *const *)b;

    if (x->spend_nano != y->spend_nano) {
        return x->spend_nano > y->spend_nano ? -1 : 1;
    }
    if (x->requests != y->requests) {
        return x->requests > y->requests ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

apr_array_header_t *ark_report_groups(const ark_report_t *rep,
                                      ark_report_dim_t dim, apr_pool_t *p)
{
    apr_hash_t *h = rep->groups[dim];
    apr_array_header_t *out = apr_array_make(p, (int)apr_hash_count(h) + 1,
                                             sizeof(ark_report_group_t *));
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, h); hi; hi = apr_hash_next(hi)) {
        void *v;

        apr_hash_this(hi, NULL, NULL, &v);
        APR_ARRAY_PUSH(out, const ark_report_group_t *) = v;
    }
    qsort(out->elts, (size_t)out->nelts, sizeof(ark_report_group_t *),
          dim == ARK_DIM_DAY ? cmp_by_name : cmp_by_spend);
    return out;
}

/* --------------------------------------------------------- percentiles */

double ark_report_percentile(const double *sorted, apr_size_t n, double pct)
{
    double r;
    apr_size_t rank;

    if (n == 0) {
        return -1;
    }
    r = ceil(pct * (double)n / 100.0);
    rank = r < 1 ? 1 : r > (double)n ? n : (apr_size_t)r;
    return sorted[rank - 1];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y ? 1 : 0;
}

void ark_report_pct(ark_report_pct_t *out, apr_array_header_t *values)
{
    apr_size_t n = values ? (apr_size_t)values->nelts : 0;

    out->n = n;
    if (n) {
        qsort(values->elts, n, sizeof(double), cmp_double);
    }
    out->p50 = ark_report_percentile(n ? (double *)values->elts : NULL, n, 50);
    out->p95 = ark_report_percentile(n ? (double *)values->elts : NULL, n, 95);
    out->p99 = ark_report_percentile(n ? (double *)values->elts : NULL, n, 99);
}

/* -------------------------------------------------------------- CSV */

/* Moves *pos past the next line break (or to end). */
static void csv_skip_line(const char **pos, const char *end)
{
    const char *nl = memchr(*pos, '\n', (size_t)(end - *pos));

    *pos = nl ? nl + 1 : end;
}

apr_status_t ark_csv_next(apr_array_header_t **pfields, const char **pos,
                          const char *end, apr_pool_t *p)
{
    const char *s = *pos;
    apr_array_header_t *fields;

    if (s >= end) {
        return APR_EOF;
    }
    fields = apr_array_make(p, 8, sizeof(char *));
    for (;;) {
        char *f;

        if (s < end && *s == '"') {
            const char *q = ++s;
            apr_size_t n = 0;
            char *o;

            /* find the closing quote, counting the field's length */
            while (q < end && !(*q == '"' && (q + 1 >= end || q[1] != '"'))) {
                q += *q == '"' ? 2 : 1;
                n++;
            }
            if (q >= end) {
                *pos = end;
                return APR_EINVAL;
            }
            f = o = apr_palloc(p, n + 1);
            while (s < q) {
                if (*s == '"') {
                    s++;
                }
                *o++ = *s++;
            }
            *o = '\0';
            s = q + 1;
            if (s < end && *s != ',' && *s != '\n' &&
                !(*s == '\r' && (s + 1 >= end || s[1] == '\n'))) {
                *pos = s;
                csv_skip_line(pos, end);
                return APR_EINVAL;
            }
        }
        else {
            const char *b = s;

            while (s < end && *s != ',' && *s != '\n' &&
                   !(*s == '\r' && (s + 1 >= end || s[1] == '\n'))) {
                s++;
            }
            f = apr_pstrmemdup(p, b, (apr_size_t)(s - b));
        }
        APR_ARRAY_PUSH(fields, char *) = f;
        if (s < end && *s == ',') {
            s++;
            continue;
        }
        break;
    }
    if (s < end && *s == '\r') {
        s++;
    }
    if (s < end && *s == '\n') {
        s++;
    }
    *pos = s;
    *pfields = fields;
    return APR_SUCCESS;
}

const char *ark_csv_quote(const char *s, apr_pool_t *p)
{
    apr_size_t n = strlen(s), extra = 0, i;
    char *out, *o;

    if (!strpbrk(s, ",\"\r\n") &&
        !(n > 0 && (s[0] == ' ' || s[n - 1] == ' '))) {
        return s;
    }
    for (i = 0; i < n; i++) {
        extra += s[i] == '"';
    }
    out = o = apr_palloc(p, n + extra + 3);
    *o++ = '"';
    for (i = 0; i < n; i++) {
        if (s[i] == '"') {
            *o++ = '"';
        }
        *o++ = s[i];
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* ---------------------------------------------------------- estimate */

struct ark_estimate_t {
    apr_pool_t *p;
    const apr_hash_t *models;
    const apr_array_header_t *required;
    apr_hash_t *by_upstream; /* upstream model -> alias */
    char from[11], to[11];
    ark_estimate_group_t total;
    apr_hash_t *groups; /* alias -> ark_estimate_group_t */
    apr_hash_t *warned; /* models already warned about */
    apr_int64_t unmatched, bad, filtered;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

ark_estimate_t *ark_estimate_make(const apr_hash_t *models,
                                  const apr_array_header_t *required,
                                  apr_pool_t *p)
{
    ark_estimate_t *est = apr_pcalloc(p, sizeof(*est));
    apr_array_header_t *aliases = apr_array_make(p, 16, sizeof(char *));
    apr_hash_index_t *hi;
    int i, j;

    est->p = p;
    est->models = models;
    est->required = required;
    est->by_upstream = apr_hash_make(p);
    est->groups = apr_hash_make(p);
    est->warned = apr_hash_make(p);
    est->total.name = "all";
    if (!models) {
        return est;
    }
    for (hi = apr_hash_first(p, (apr_hash_t *)models); hi;
         hi = apr_hash_next(hi)) {
        const void *k;

        apr_hash_this(hi, &k, NULL, NULL);
        APR_ARRAY_PUSH(aliases, const char *) = k;
    }
    qsort(aliases->elts, (size_t)aliases->nelts, sizeof(char *), cmp_str);
    for (i = 0; i < aliases->nelts; i++) {
        const char *alias = APR_ARRAY_IDX(aliases, i, const char *);
        const ark_model_t *m =
            apr_hash_get((apr_hash_t *)models, alias, APR_HASH_KEY_STRING);

        for (j = 0; j < m->channels->nelts; j++) {
            const char *up =
                APR_ARRAY_IDX(m->channels, j, ark_channel_t).upstream_model;

            if (!apr_hash_get(est->by_upstream, up, APR_HASH_KEY_STRING)) {
                apr_hash_set(est->by_upstream, up, APR_HASH_KEY_STRING, alias);
            }
        }
    }
    return est;
}

void ark_estimate_set_range(ark_estimate_t *est, const char *from,
                            const char *to)
{
    set_day(est->from, from);
    set_day(est->to, to);
}

static void est_channel(const char **slot, const char *name, apr_pool_t *p)
{
    if (!*slot) {
        *slot = apr_pstrdup(p, name);
    }
    else if (strcmp(*slot, name)) {
        *slot = NAME_VARIES;
    }
}

static void est_add(ark_estimate_group_t *g, long in, long out,
                    apr_int64_t official, apr_int64_t routed,
                    const ark_channel_t *och, const ark_channel_t *rch,
                    apr_pool_t *p)
{
    g->rows++;
    g->input_tokens += in;
    g->output_tokens += out;
    g->official_nano += official;
    g->routed_nano += routed;
    est_channel(&g->official_channel, och->name, p);
    est_channel(&g->routed_channel, rch->name, p);
}

apr_status_t ark_estimate_add_row(ark_estimate_t *est, const char *provider,
                                  const char *model, long input_tokens,
                                  long output_tokens, long cached_tokens,
                                  const char *date, const char **err)
{
    const ark_model_t *m = NULL;
    const ark_channel_t *och = NULL, *rch = NULL;
    apr_int64_t official = 0, routed = 0;
    ark_estimate_group_t *g;
    char day[11];
    int i;

    (void)provider;
    day[0] = '\0';
    if (date && strlen(date) >= 10 && is_day(date)) {
        memcpy(day, date, 10);
        day[10] = '\0';
    }
    if (out_of_range(day, est->from, est->to)) {
        est->filtered++;
        return APR_SUCCESS;
    }
    if (est->models && model) {
        const char *alias = model;

        m = apr_hash_get((apr_hash_t *)est->models, model, APR_HASH_KEY_STRING);
        if (!m) {
            alias = apr_hash_get(est->by_upstream, model, APR_HASH_KEY_STRING);
            m = alias ? apr_hash_get((apr_hash_t *)est->models, alias,
                                     APR_HASH_KEY_STRING)
                      : NULL;
        }
    }
    if (!m) {
        est->unmatched++;
        *err = apr_psprintf(est->p,
                            "model '%s' is neither a configured "
                            "alias nor an upstream model of one",
                            model ? model : "");
        return APR_NOTFOUND;
    }
    for (i = 0; i < m->channels->nelts; i++) {
        const ark_channel_t *ch = &APR_ARRAY_IDX(m->channels, i, ark_channel_t);
        apr_int64_t cost;

        if (!chan_priced(ch)) {
            continue;
        }
        cost = chan_cost(ch, input_tokens, cached_tokens, output_tokens);
        if (!och || cost > official) {
            och = ch;
            official = cost;
        }
        if (ark_tags_satisfy(ch->tags, est->required) &&
            (!rch || cost < routed)) {
            rch = ch;
            routed = cost;
        }
    }
    if (!rch) {
        est->unmatched++;
        *err = apr_psprintf(est->p,
                            "model '%s' (alias %s) has no %schannel "
                            "with a price",
                            model, m->alias, och ? "compliant " : "");
        return APR_NOTFOUND;
    }
    g = apr_hash_get(est->groups, m->alias, APR_HASH_KEY_STRING);
    if (!g) {
        g = apr_pcalloc(est->p, sizeof(*g));
        g->name = m->alias;
        apr_hash_set(est->groups, g->name, APR_HASH_KEY_STRING, g);
    }
    est_add(g, input_tokens, output_tokens, official, routed, och, rch, est->p);
    est_add(&est->total, input_tokens, output_tokens, official, routed, och,
            rch, est->p);
    return APR_SUCCESS;
}

/* A token count: digits (surrounding spaces allowed), empty is 0. */
static apr_status_t parse_tokens(long *out, const char *s)
{
    char *end;
    long v;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (!*s) {
        *out = 0;
        return APR_SUCCESS;
    }
    if (!isdigit((unsigned char)*s)) {
        return APR_EINVAL;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (errno || *end) {
        return APR_EINVAL;
    }
    *out = v;
    return APR_SUCCESS;
}

static const char *trimmed(const char *s, apr_pool_t *p)
{
    apr_size_t n;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    return apr_pstrmemdup(p, s, n);
}

enum {
    COL_PROVIDER,
    COL_MODEL,
    COL_IN,
    COL_OUT,
    COL_DATE,
    COL_CACHED,
    COL_COUNT
};

static const char *const col_names[COL_COUNT] = {
    "provider",      "model", "input_tokens",
    "output_tokens", "date",  "cached_tokens"};

apr_status_t ark_estimate_add_csv(ark_estimate_t *est, const char *name,
                                  const char *text, apr_size_t len,
                                  ark_report_warn_fn *warn, void *baton,
                                  const char **err)
{
    const char *pos = text, *end = text + len, *prev;
    apr_array_header_t *f;
    apr_pool_t *rp;
    int col[COL_COUNT], i, j, lineno = 1, rec_line;
    apr_status_t rv;

    /* a UTF-8 byte order mark, as spreadsheets write */
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) {
        pos += 3;
    }
    do {
        prev = pos;
        rv = ark_csv_next(&f, &pos, end, est->p);
        rec_line = lineno;
        for (; prev < pos; prev++) {
            lineno += *prev == '\n';
        }
    } while (rv == APR_SUCCESS && f->nelts == 1 &&
             !*trimmed(APR_ARRAY_IDX(f, 0, char *), est->p));
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(est->p,
                            "%s: no header line (expected "
                            "provider,model,input_tokens,output_tokens,date)",
                            name);
        return APR_EINVAL;
    }
    for (i = 0; i < COL_COUNT; i++) {
        col[i] = -1;
        for (j = 0; j < f->nelts; j++) {
            if (!strcasecmp(trimmed(APR_ARRAY_IDX(f, j, char *), est->p),
                            col_names[i])) {
                col[i] = j;
                break;
            }
        }
    }
    if (col[COL_MODEL] < 0 || col[COL_IN] < 0 || col[COL_OUT] < 0) {
        *err = apr_psprintf(est->p,
                            "%s:%d: the header must name the "
                            "columns model, input_tokens and output_tokens "
                            "(and provider, date)",
                            name, rec_line);
        return APR_EINVAL;
    }
    apr_pool_create(&rp, est->p);
    for (;;) {
        const char *v[COL_COUNT], *why = NULL;
        long in = 0, out = 0, cached = 0;

        apr_pool_clear(rp);
        prev = pos;
        rv = ark_csv_next(&f, &pos, end, rp);
        rec_line = lineno;
        for (; prev < pos; prev++) {
            lineno += *prev == '\n';
        }
        if (rv == APR_EOF) {
            break;
        }
        if (rv != APR_SUCCESS) {
            est->bad++;
            warnf(warn, baton, rp,
                  "%s:%d: malformed CSV (unbalanced "
                  "quotes); row skipped",
                  name, rec_line);
            continue;
        }
        if (f->nelts == 1 && !*trimmed(APR_ARRAY_IDX(f, 0, char *), rp)) {
            continue;
        }
        for (i = 0; i < COL_COUNT; i++) {
            v[i] = col[i] >= 0 && col[i] < f->nelts
                       ? trimmed(APR_ARRAY_IDX(f, col[i], char *), rp)
                       : NULL;
        }
        if (!v[COL_MODEL] || !*v[COL_MODEL] || !v[COL_IN] || !v[COL_OUT]) {
            why = "too few columns";
        }
        else if (parse_tokens(&in, v[COL_IN]) != APR_SUCCESS ||
                 parse_tokens(&out, v[COL_OUT]) != APR_SUCCESS ||
                 (v[COL_CACHED] &&
                  parse_tokens(&cached, v[COL_CACHED]) != APR_SUCCESS)) {
            why = "a token count is not a non-negative integer";
        }
        if (why) {
            est->bad++;
            warnf(warn, baton, rp, "%s:%d: %s; row skipped", name, rec_line,
                  why);
            continue;
        }
        if (ark_estimate_add_row(est, v[COL_PROVIDER], v[COL_MODEL], in, out,
                                 cached, v[COL_DATE], &why) != APR_SUCCESS) {
            if (!apr_hash_get(est->warned, v[COL_MODEL], APR_HASH_KEY_STRING)) {
                apr_hash_set(est->warned, apr_pstrdup(est->p, v[COL_MODEL]),
                             APR_HASH_KEY_STRING, "");
                warnf(warn, baton, rp, "%s:%d: %s; its rows are skipped", name,
                      rec_line, why);
            }
        }
    }
    apr_pool_destroy(rp);
    return APR_SUCCESS;
}

const ark_estimate_group_t *ark_estimate_total(const ark_estimate_t *est)
{
    return &est->total;
}

void ark_estimate_counts(const ark_estimate_t *est, apr_int64_t *unmatched,
                         apr_int64_t *bad, apr_int64_t *filtered)
{
    *unmatched = est->unmatched;
    *bad = est->bad;
    *filtered = est->filtered;
}

static int cmp_est(const void *a, const void *b)
{
    const ark_estimate_group_t *x = *(const ark_estimate_group_t *const *)a;
    const ark_estimate_group_t *y = *(const ark_estimate_group_t *const *)b;

    return strcmp(x->name, y->name);
}

apr_array_header_t *ark_estimate_groups(const ark_estimate_t *est,
                                        apr_pool_t *p)
{
    apr_array_header_t *out =
        apr_array_make(p, (int)apr_hash_count(est->groups) + 1,
                       sizeof(ark_estimate_group_t *));
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, est->groups); hi; hi = apr_hash_next(hi)) {
        void *v;

        apr_hash_this(hi, NULL, NULL, &v);
        APR_ARRAY_PUSH(out, const ark_estimate_group_t *) = v;
    }
    qsort(out->elts, (size_t)out->nelts, sizeof(ark_estimate_group_t *),
          cmp_est);
    return out;
}
