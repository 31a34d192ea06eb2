/* Unit tests for ark-report's logic (ark_report.c): access-log lines,
 * the price part of a configuration, aggregation and savings, nearest-
 * rank percentiles, RFC 4180 records and the usage-CSV estimate. */
#include "ark_testutil.h"

#include <string.h>

#include <apr_strings.h>

#include "ark_config.h"
#include "ark_limit.h"
#include "ark_report.h"
#include "ark_route.h"

/* The example of docs/routing.md, prices per 1M tokens:
 *   openai 2.50/10, relay 1.20/5, qwen 0.30/1.20 (upstream qwen-max). */
static const char conf_text[] =
    "# Ark\n"
    "ArkModel gpt-4o openai gpt-4o price=2.50/10\n"
    "<VirtualHost *:80>\n"
    "  ArkModel gpt-4o relay gpt-4o \\\n"
    "      price=1.20/5\n"
    "  ArkModel \"gpt-4o\" qwen qwen-max price=0.30/1.20 weight=2\n"
    "</VirtualHost>\n"
    "ArkModel mini openai gpt-4o-mini price=0.15/0.60/0.075\n"
    "ArkModel free openai some-free-model\n"
    "ArkProvider openai openai https://api.openai.com/v1 key=env:K "
    "tags=tier=official,region=us\n"
    "ArkProvider relay openai https://relay.example/v1 key=env:R "
    "tags=tier=optimized,region=us\n"
    "ArkProvider qwen openai https://qwen.example/v1 key=env:Q "
    "tags=tier=domestic,region=cn\n"
    "Include /etc/ark/more.conf\n"
    "ArkModel lost nosuch x\n"
    "ArkModel gpt-4o relay gpt-4o price=oops\n";

typedef struct warn_log_t {
    int n;
    const char *last;
    apr_pool_t *p;
} warn_log_t;

static void collect(void *baton, const char *msg)
{
    warn_log_t *w = baton;

    w->n++;
    w->last = apr_pstrdup(w->p, msg);
}

static apr_hash_t *models_make(apr_pool_t *p, warn_log_t *w)
{
    const char *names[] = {"ark.conf"};
    const char *texts[] = {conf_text};

    return ark_report_config_parse(names, texts, 1, w ? collect : NULL, w, p);
}

static const ark_channel_t *chan_at(apr_hash_t *models, const char *alias,
                                    int i)
{
    const ark_model_t *m = apr_hash_get(models, alias, APR_HASH_KEY_STRING);

    assert_non_null(m);
    assert_true(i < m->channels->nelts);
    return &APR_ARRAY_IDX(m->channels, i, ark_channel_t);
}

static void test_config(void **state)
{
    apr_pool_t *p = *state;
    warn_log_t w = {0, NULL, p};
    apr_hash_t *models = models_make(p, &w);
    const ark_channel_t *ch;

    assert_int_equal(apr_hash_count(models), 3);
    /* providers defined after the models, continuation line, quotes */
    ch = chan_at(models, "gpt-4o", 1);
    assert_string_equal(ch->name, "relay/gpt-4o");
    assert_true(ch->price_in == 1.20 && ch->price_out == 5);
    ch = chan_at(models, "gpt-4o", 2);
    assert_string_equal(ch->name, "qwen/qwen-max");
    ch = chan_at(models, "mini", 0);
    assert_true(ch->price_cached == 0.075);
    assert_true(chan_at(models, "free", 0)->price_in < 0);
    assert_int_equal(
        ((ark_model_t *)apr_hash_get(models, "gpt-4o", APR_HASH_KEY_STRING))
            ->channels->nelts,
        3);
    /* Include, unknown provider, bad price: three warnings */
    assert_int_equal(w.n, 3);
    assert_non_null(strstr(w.last, "ark.conf:15: ArkModel gpt-4o: price="));
}

static void test_parse_line(void **state)
{
    apr_pool_t *p = *state;
    ark_report_rec_t r;
    const char *err = NULL;
    const char *line =
        "{\"time\":\"2026-01-02T10:00:00.123Z\",\"method\":\"POST\","
        "\"key\":\"alice\",\"tenant\":\"acme\",\"model\":\"gpt-4o\","
        "\"provider\":\"relay\",\"upstream_model\":\"gpt-4o\","
        "\"status\":200,\"ttfb_ms\":80.5,\"latency_ms\":120.25,"
        "\"prompt_tokens\":1000,\"completion_tokens\":200,"
        "\"total_tokens\":1200,\"spend_nano\":2200000,\"cache\":\"miss\"}";

    assert_int_equal(ark_report_parse_line(&r, line, strlen(line), &err, p),
                     APR_SUCCESS);
    assert_string_equal(r.day, "2026-01-02");
    assert_string_equal(r.key, "alice");
    assert_string_equal(r.tenant, "acme");
    assert_string_equal(r.provider, "relay");
    assert_null(r.channel);
    assert_int_equal(r.status, 200);
    assert_true(r.latency_ms == 120.25 && r.ttfb_ms == 80.5);
    assert_int_equal(r.prompt_tokens, 1000);
    assert_int_equal(r.completion_tokens, 200);
    assert_int_equal(r.cached_tokens, -1);
    assert_true(r.spend_nano == 2200000);
    assert_false(r.cache_hit);

    /* nulls and absent fields are unknown */
    line = "{\"time\":\"2026-01-02T10:00:00Z\",\"key\":null,"
           "\"prompt_tokens\":null,\"ttfb_ms\":null,\"cache\":\"hit\","
           "\"channel\":\"fast\"}";
    assert_int_equal(ark_report_parse_line(&r, line, strlen(line), &err, p),
                     APR_SUCCESS);
    assert_null(r.key);
    assert_null(r.model);
    assert_int_equal(r.prompt_tokens, -1);
    assert_true(r.ttfb_ms < 0 && r.latency_ms < 0);
    assert_true(r.spend_nano < 0);
    assert_true(r.cache_hit);
    assert_string_equal(r.channel, "fast");

    /* malformed */
    line = "{\"time\":\"2026-01-02T10:00:00Z\"";
    assert_int_equal(ark_report_parse_line(&r, line, strlen(line), &err, p),
                     APR_EINVAL);
    assert_non_null(strstr(err, "not JSON"));
    line = "[1,2]";
    assert_int_equal(ark_report_parse_line(&r, line, strlen(line), &err, p),
                     APR_EINVAL);
    line = "{\"key\":\"alice\"}";
    assert_int_equal(ark_report_parse_line(&r, line, strlen(line), &err, p),
                     APR_EINVAL);
    assert_non_null(strstr(err, "time"));
    line = "{\"time\":\"yesterday\"}";
    assert_int_equal(ark_report_parse_line(&r, line, strlen(line), &err, p),
                     APR_EINVAL);
    line = "{\"time\":\"2026-01-02T10:00:00Z\",\"prompt_tokens\":\"many\"}";
    assert_int_equal(ark_report_parse_line(&r, line, strlen(line), &err, p),
                     APR_EINVAL);
    assert_non_null(strstr(err, "prompt_tokens"));
    line = "{\"time\":\"2026-01-02T10:00:00Z\",\"spend_nano\":1.5}";
    assert_int_equal(ark_report_parse_line(&r, line, strlen(line), &err, p),
                     APR_EINVAL);
}

static void add(ark_report_t *rep, const char *line)
{
    const char *err = NULL;

    if (ark_report_add_line(rep, line, strlen(line), &err) != APR_SUCCESS) {
        fail_msg("refused: %s: %s", line, err);
    }
}

static const ark_report_group_t *group(ark_report_t *rep, ark_report_dim_t dim,
                                       const char *name, apr_pool_t *p)
{
    apr_array_header_t *gs = ark_report_groups(rep, dim, p);
    int i;

    for (i = 0; i < gs->nelts; i++) {
        const ark_report_group_t *g =
            APR_ARRAY_IDX(gs, i, const ark_report_group_t *);

        if (!strcmp(g->name, name)) {
            return g;
        }
    }
    fail_msg("no group %s", name);
    return NULL;
}

/* The worked example of ark_report.c, plus a hit, an estimated spend, an
 * unknown alias and a failure. */
static void test_savings(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = models_make(p, NULL);
    ark_report_t *rep = ark_report_make(models, p);
    const ark_report_group_t *t, *g;
    apr_array_header_t *gs;
    apr_int64_t lines, bad, filtered;
    const char *err;

    add(rep, "{\"time\":\"2026-01-01T10:00:00Z\",\"key\":\"alice\","
             "\"tenant\":\"acme\",\"model\":\"gpt-4o\",\"provider\":\"relay\","
             "\"upstream_model\":\"gpt-4o\",\"status\":200,"
             "\"prompt_tokens\":1000,\"completion_tokens\":200,"
             "\"spend_nano\":2200000,\"latency_ms\":100}");
    /* a hit: spent 0, saved the baseline by the cache */
    add(rep, "{\"time\":\"2026-01-01T11:00:00Z\",\"key\":\"bob\","
             "\"model\":\"gpt-4o\",\"provider\":null,\"status\":200,"
             "\"prompt_tokens\":1000,\"completion_tokens\":200,"
             "\"cache\":\"hit\",\"spend_nano\":0,\"latency_ms\":2}");
    /* no spend_nano: priced at qwen from the configuration */
    add(rep, "{\"time\":\"2026-01-02T10:00:00Z\",\"key\":\"bob\","
             "\"model\":\"gpt-4o\",\"provider\":\"qwen\","
             "\"upstream_model\":\"qwen-max\",\"status\":200,"
             "\"prompt_tokens\":1000,\"completion_tokens\":200,"
             "\"latency_ms\":300,\"ttfb_ms\":50}");
    /* an alias not configured: baseline = spend, nothing saved */
    add(rep, "{\"time\":\"2026-01-02T10:00:00Z\",\"model\":\"other\","
             "\"provider\":\"x\",\"upstream_model\":\"y\",\"status\":200,"
             "\"prompt_tokens\":10,\"completion_tokens\":10,"
             "\"spend_nano\":777}");
    /* ... and without spend_nano: unpriced */
    add(rep, "{\"time\":\"2026-01-02T10:00:00Z\",\"model\":\"other\","
             "\"provider\":\"x\",\"status\":200,\"prompt_tokens\":10,"
             "\"completion_tokens\":10}");
    /* a failure without usage */
    add(rep, "{\"time\":\"2026-01-03T10:00:00Z\",\"model\":\"gpt-4o\","
             "\"provider\":\"openai\",\"upstream_model\":\"gpt-4o\","
             "\"status\":502,\"prompt_tokens\":null}");
    add(rep, "   \r\n");
    assert_int_equal(ark_report_add_line(rep, "oops", 4, &err), APR_EINVAL);

    t = ark_report_total(rep);
    assert_int_equal(t->requests, 6);
    assert_int_equal(t->errors, 1);
    assert_int_equal(t->cache_hits, 1);
    assert_int_equal(t->prompt_tokens, 3020);
    assert_int_equal(t->completion_tokens, 620);
    /* 2200000 + 0 + 540000 (qwen) + 777 + 0 + 0 */
    assert_true(t->spend_nano == 2740777);
    /* 3 * 4500000 (openai) + 777 */
    assert_true(t->baseline_nano == 13500777);
    assert_true(t->saved_cache_nano == 4500000);
    assert_true(t->saved_routing_nano == 2300000 + 3960000);
    assert_true(t->baseline_nano ==
                t->spend_nano + t->saved_cache_nano + t->saved_routing_nano);
    assert_int_equal(t->spend_estimated, 1);
    assert_int_equal(t->unpriced, 1);
    ark_report_counts(rep, &lines, &bad, &filtered);
    assert_int_equal(lines, 7);
    assert_int_equal(bad, 1);
    assert_int_equal(filtered, 0);

    g = group(rep, ARK_DIM_PROVIDER, "(cache)", p);
    assert_int_equal(g->cache_hits, 1);
    g = group(rep, ARK_DIM_CHANNEL, "qwen/qwen-max", p);
    assert_true(g->spend_nano == 540000 && g->spend_estimated == 1);
    assert_int_equal(g->latency_ms->nelts, 1);
    /* a channel not in the configuration keeps the default name */
    g = group(rep, ARK_DIM_CHANNEL, "x/y", p);
    assert_true(g->spend_nano == 777 && g->baseline_nano == 777);
    g = group(rep, ARK_DIM_KEY, "(none)", p);
    assert_int_equal(g->requests, 3);
    g = group(rep, ARK_DIM_TENANT, "acme", p);
    assert_int_equal(g->requests, 1);
    assert_null(g->latency_ms);

    /* days in calendar order, the others by spend */
    gs = ark_report_groups(rep, ARK_DIM_DAY, p);
    assert_int_equal(gs->nelts, 3);
    assert_string_equal(APR_ARRAY_IDX(gs, 0, const ark_report_group_t *)->name,
                        "2026-01-01");
    assert_string_equal(APR_ARRAY_IDX(gs, 2, const ark_report_group_t *)->name,
                        "2026-01-03");
    gs = ark_report_groups(rep, ARK_DIM_PROVIDER, p);
    assert_string_equal(APR_ARRAY_IDX(gs, 0, const ark_report_group_t *)->name,
                        "relay");
    assert_string_equal(APR_ARRAY_IDX(gs, 1, const ark_report_group_t *)->name,
                        "qwen");
}

static void test_channel_and_cached(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = models_make(p, NULL);
    ark_report_t *rep = ark_report_make(models, p);
    const ark_report_group_t *t;

    /* the logged channel name wins; cached tokens at the cached price:
     * 600 * 150 + 400 * 75 + 100 * 600 = 180000 */
    add(rep, "{\"time\":\"2026-02-01T00:00:00Z\",\"model\":\"mini\","
             "\"provider\":\"openai\",\"channel\":\"openai/gpt-4o-mini\","
             "\"status\":200,\"prompt_tokens\":1000,\"cached_tokens\":400,"
             "\"completion_tokens\":100}");
    t = ark_report_total(rep);
    assert_true(t->spend_nano == 180000);
    assert_true(t->baseline_nano == 180000);
    assert_int_equal(t->cached_tokens, 400);
    assert_int_equal(
        group(rep, ARK_DIM_CHANNEL, "openai/gpt-4o-mini", p)->spend_estimated,
        1);

    /* no configuration at all: logged spend only */
    rep = ark_report_make(NULL, p);
    add(rep, "{\"time\":\"2026-02-01T00:00:00Z\",\"model\":\"mini\","
             "\"provider\":\"openai\",\"prompt_tokens\":5,"
             "\"completion_tokens\":5,\"spend_nano\":42}");
    t = ark_report_total(rep);
    assert_true(t->spend_nano == 42 && t->baseline_nano == 42);
    assert_true(t->saved_routing_nano == 0);
}

static void test_range(void **state)
{
    apr_pool_t *p = *state;
    ark_report_t *rep = ark_report_make(NULL, p);
    ark_report_rec_t r;
    apr_int64_t lines, bad, filtered;

    ark_report_set_range(rep, "2026-01-02", "2026-01-03");
    memset(&r, 0, sizeof(r));
    r.latency_ms = r.ttfb_ms = -1;
    r.prompt_tokens = r.completion_tokens = r.cached_tokens = -1;
    r.spend_nano = 5;
    strcpy(r.day, "2026-01-01");
    assert_int_equal(ark_report_add(rep, &r), 0);
    strcpy(r.day, "2026-01-02");
    assert_int_equal(ark_report_add(rep, &r), 1);
    strcpy(r.day, "2026-01-03");
    assert_int_equal(ark_report_add(rep, &r), 1);
    strcpy(r.day, "2026-01-04");
    assert_int_equal(ark_report_add(rep, &r), 0);
    r.day[0] = '\0';
    assert_int_equal(ark_report_add(rep, &r), 0);
    ark_report_counts(rep, &lines, &bad, &filtered);
    assert_int_equal(filtered, 3);
    assert_true(ark_report_total(rep)->spend_nano == 10);

    assert_int_equal(ark_report_dim_parse("tenant"), ARK_DIM_TENANT);
    assert_int_equal(ark_report_dim_parse("week"), -1);
    assert_string_equal(ark_report_dim_name(ARK_DIM_DAY), "day");
}

static void test_percentiles(void **state)
{
    apr_pool_t *p = *state;
    const double four[] = {10, 20, 30, 40};
    double hundred[100];
    apr_array_header_t *a = apr_array_make(p, 8, sizeof(double));
    ark_report_pct_t pct;
    int i;

    assert_true(ark_report_percentile(four, 4, 50) == 20);
    assert_true(ark_report_percentile(four, 4, 95) == 40);
    assert_true(ark_report_percentile(four, 4, 99) == 40);
    assert_true(ark_report_percentile(four, 4, 0) == 10);
    assert_true(ark_report_percentile(four, 1, 99) == 10);
    assert_true(ark_report_percentile(NULL, 0, 50) < 0);
    for (i = 0; i < 100; i++) {
        hundred[i] = i + 1;
    }
    assert_true(ark_report_percentile(hundred, 100, 50) == 50);
    assert_true(ark_report_percentile(hundred, 100, 95) == 95);
    assert_true(ark_report_percentile(hundred, 100, 99) == 99);
    assert_true(ark_report_percentile(hundred, 20, 95) == 19);

    /* unsorted input is sorted in place */
    for (i = 5; i >= 1; i--) {
        APR_ARRAY_PUSH(a, double) = i * 1.5;
    }
    ark_report_pct(&pct, a);
    assert_int_equal(pct.n, 5);
    assert_true(pct.p50 == 4.5 && pct.p95 == 7.5 && pct.p99 == 7.5);
    assert_true(APR_ARRAY_IDX(a, 0, double) == 1.5);
    ark_report_pct(&pct, NULL);
    assert_int_equal(pct.n, 0);
    assert_true(pct.p50 < 0);
}

static void expect_record(const char **pos, const char *end, apr_pool_t *p,
                          int n, const char *const *want)
{
    apr_array_header_t *f;
    int i;

    assert_int_equal(ark_csv_next(&f, pos, end, p), APR_SUCCESS);
    assert_int_equal(f->nelts, n);
    for (i = 0; i < n; i++) {
        assert_string_equal(APR_ARRAY_IDX(f, i, char *), want[i]);
    }
}

static void test_csv(void **state)
{
    apr_pool_t *p = *state;
    const char text[] = "a,b,c\r\n"
                        "\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\n"
                        "\n"
                        ",,\n"
                        "last";
    const char *pos = text, *end = text + strlen(text);
    apr_array_header_t *f;
    const char *r1[] = {"a", "b", "c"};
    const char *r2[] = {"x, y", "say \"hi\"", "two\nlines"};
    const char *r3[] = {""};
    const char *r4[] = {"", "", ""};
    const char *r5[] = {"last"};
    const char bad[] = "\"ab\"c,d\nnext\n\"open";

    expect_record(&pos, end, p, 3, r1);
    expect_record(&pos, end, p, 3, r2);
    expect_record(&pos, end, p, 1, r3);
    expect_record(&pos, end, p, 3, r4);
    expect_record(&pos, end, p, 1, r5);
    assert_int_equal(ark_csv_next(&f, &pos, end, p), APR_EOF);

    /* text after a closing quote; then a good line; then no closing */
    pos = bad;
    end = bad + strlen(bad);
    assert_int_equal(ark_csv_next(&f, &pos, end, p), APR_EINVAL);
    assert_string_equal(pos, "next\n\"open");
    expect_record(&pos, end, p, 1, (const char *[]){"next"});
    assert_int_equal(ark_csv_next(&f, &pos, end, p), APR_EINVAL);
    assert_true(pos == end);

    assert_string_equal(ark_csv_quote("plain", p), "plain");
    assert_string_equal(ark_csv_quote("a,b", p), "\"a,b\"");
    assert_string_equal(ark_csv_quote("say \"hi\"", p), "\"say \"\"hi\"\"\"");
    assert_string_equal(ark_csv_quote("x\ny", p), "\"x\ny\"");
    assert_string_equal(ark_csv_quote(" pad", p), "\" pad\"");
    assert_string_equal(ark_csv_quote("", p), "");
}

static void test_estimate_rows(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = models_make(p, NULL);
    ark_estimate_t *est = ark_estimate_make(models, NULL, p);
    const ark_estimate_group_t *t;
    apr_array_header_t *gs, *req = NULL;
    apr_int64_t unmatched, bad, filtered;
    const char *err = NULL;

    /* 1M in, 100k out: openai 3.5, qwen 0.42 */
    assert_int_equal(ark_estimate_add_row(est, "openai", "gpt-4o", 1000000,
                                          100000, 0, "2025-12-01", &err),
                     APR_SUCCESS);
    /* by upstream model name: qwen-max is served by alias gpt-4o */
    assert_int_equal(ark_estimate_add_row(est, "qwen", "qwen-max", 1000, 1000,
                                          0, NULL, &err),
                     APR_SUCCESS);
    assert_int_equal(
        ark_estimate_add_row(est, "x", "claude", 1, 1, 0, NULL, &err),
        APR_NOTFOUND);
    assert_non_null(strstr(err, "claude"));
    /* an alias with no priced channel */
    assert_int_equal(
        ark_estimate_add_row(est, "x", "free", 1, 1, 0, NULL, &err),
        APR_NOTFOUND);
    t = ark_estimate_total(est);
    assert_int_equal(t->rows, 2);
    assert_int_equal(t->input_tokens, 1001000);
    assert_true(t->official_nano == 3512500000LL);
    assert_true(t->routed_nano == 421500000LL);
    assert_string_equal(t->official_channel, "openai/gpt-4o");
    assert_string_equal(t->routed_channel, "qwen/qwen-max");
    ark_estimate_counts(est, &unmatched, &bad, &filtered);
    assert_int_equal(unmatched, 2);
    gs = ark_estimate_groups(est, p);
    assert_int_equal(gs->nelts, 1);

    /* compliance: only region=us channels may be routed to */
    assert_null(ark_tags_parse(&req, "region=us", p));
    est = ark_estimate_make(models, req, p);
    ark_estimate_set_range(est, "2025-12-01", NULL);
    assert_int_equal(ark_estimate_add_row(est, "openai", "gpt-4o", 1000000,
                                          100000, 0, "2025-12-01", &err),
                     APR_SUCCESS);
    assert_int_equal(ark_estimate_add_row(est, "openai", "gpt-4o", 5, 5, 0,
                                          "2025-11-30", &err),
                     APR_SUCCESS);
    t = ark_estimate_total(est);
    assert_int_equal(t->rows, 1);
    assert_true(t->routed_nano == 1700000000LL);
    assert_string_equal(t->routed_channel, "relay/gpt-4o");
    ark_estimate_counts(est, &unmatched, &bad, &filtered);
    assert_int_equal(filtered, 1);

    /* several channels chosen over the rows */
    est = ark_estimate_make(models, NULL, p);
    assert_int_equal(
        ark_estimate_add_row(est, "o", "gpt-4o", 10, 10, 0, NULL, &err),
        APR_SUCCESS);
    assert_int_equal(
        ark_estimate_add_row(est, "o", "mini", 10, 10, 0, NULL, &err),
        APR_SUCCESS);
    assert_string_equal(ark_estimate_total(est)->routed_channel, "(varies)");
}

static void test_estimate_csv(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = models_make(p, NULL);
    ark_estimate_t *est = ark_estimate_make(models, NULL, p);
    warn_log_t w = {0, NULL, p};
    apr_int64_t unmatched, bad, filtered;
    const char *err = NULL;
    /* BOM, columns in another order, an extra column, quotes, a blank
     * line, a bad count, an unknown model twice (warned once) */
    const char csv[] = "\xEF\xBB\xBF"
                       "Date,Model,Provider,Output_Tokens,Input_Tokens,note\r\n"
                       "2025-12-01,gpt-4o,openai,100000,1000000,\"a, b\"\r\n"
                       "\r\n"
                       "2025-12-02,\"mini\",openai,1000,2000,\r\n"
                       "2025-12-02,mini,openai,lots,2000,\r\n"
                       "2025-12-03,claude,anthropic,1,1,\r\n"
                       "2025-12-03,claude,anthropic,1,1,\r\n";
    const ark_estimate_group_t *t;

    assert_int_equal(
        ark_estimate_add_csv(est, "u.csv", csv, strlen(csv), collect, &w, &err),
        APR_SUCCESS);
    t = ark_estimate_total(est);
    assert_int_equal(t->rows, 2);
    /* gpt-4o: 3.5 vs 0.42; mini (one channel): 2000*150 + 1000*600 */
    assert_true(t->official_nano == 3500000000LL + 900000);
    assert_true(t->routed_nano == 420000000LL + 900000);
    ark_estimate_counts(est, &unmatched, &bad, &filtered);
    assert_int_equal(unmatched, 2);
    assert_int_equal(bad, 1);
    assert_int_equal(w.n, 2);
    assert_non_null(strstr(w.last, "u.csv:6: model 'claude'"));

    /* a header without the token columns */
    est = ark_estimate_make(models, NULL, p);
    assert_int_equal(ark_estimate_add_csv(est, "u.csv", "model,date\n", 11,
                                          NULL, NULL, &err),
                     APR_EINVAL);
    assert_non_null(strstr(err, "input_tokens"));
    assert_int_equal(
        ark_estimate_add_csv(est, "u.csv", "", 0, NULL, NULL, &err),
        APR_EINVAL);
}

static void test_money_exact(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = models_make(p, NULL);
    ark_report_t *rep = ark_report_make(models, p);
    int i;

    /* a thousand amounts of 3 nano-units sum exactly */
    for (i = 0; i < 1000; i++) {
        add(rep, "{\"time\":\"2026-01-01T00:00:00Z\",\"model\":\"gpt-4o\","
                 "\"provider\":\"relay\",\"upstream_model\":\"gpt-4o\","
                 "\"prompt_tokens\":0,\"completion_tokens\":0,"
                 "\"spend_nano\":3}");
    }
    assert_string_equal(ark_money_format(ark_report_total(rep)->spend_nano, p),
                        "0.000003");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config, ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_parse_line, ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_savings, ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_channel_and_cached,
                                        ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_range, ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_percentiles, ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_csv, ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_estimate_rows, ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_estimate_csv, ark_test_pool_setup,
                                        ark_test_pool_teardown),
        cmocka_unit_test_setup_teardown(test_money_exact, ark_test_pool_setup,
                                        ark_test_pool_teardown),
    };

    return ark_test_run_group("report", tests,
                              sizeof(tests) / sizeof(tests[0]));
}
