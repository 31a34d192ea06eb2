/* Unit tests for configuration parsing (ark_config.c) and the provider
 * helpers used at configuration time (ark_provider.c): durations, sizes,
 * ArkProvider and ArkModel arguments, the provider type table, and
 * loading secrets from the environment and from files.
 *
 * Every refusal is checked for its exact sentence: the directive
 * handlers return these strings to the administrator unchanged.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <apr_env.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include "ark_config.h"
#include "ark_provider.h"

static apr_pool_t *root_pool;

static int setup(void **state)
{
    apr_pool_t *p;

    apr_pool_create(&p, root_pool);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy(*state);
    return 0;
}

/* ---------------------------------------------------------- durations */

static void duration_valid(void **state)
{
    static const struct {
        const char *s;
        apr_interval_time_t want;
    } cases[] = {
        { "250ms", 250000 },
        { "1ms", 1000 },
        { "0ms", 0 },
        { "5s", 5000000 },
        { "5", 5000000 },
        { "0", 0 },
        { "2m", APR_INT64_C(120000000) },
        { "1h", APR_INT64_C(3600000000) },
        { "90s", APR_INT64_C(90000000) },
        { "007s", 7000000 },
        { "100000ms", APR_INT64_C(100000000) },
        /* the upper bound: 100 days, in every unit */
        { "2400h", APR_INT64_C(8640000000000) },
        { "144000m", APR_INT64_C(8640000000000) },
        { "8640000s", APR_INT64_C(8640000000000) },
        { "8640000000ms", APR_INT64_C(8640000000000) },
    };
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_interval_time_t t = -42;

        if (ark_parse_duration(&t, cases[i].s) != APR_SUCCESS) {
            fail_msg("'%s' refused", cases[i].s);
        }
        if (t != cases[i].want) {
            fail_msg("'%s' gave %" APR_INT64_T_FMT, cases[i].s, t);
        }
    }
}

static void duration_invalid(void **state)
{
    static const char *const cases[] = {
        "", " 5s", "5 s", "5s ", "-1s", "+5s", "s", "ms", "1.5s", "5S",
        "5sec", "5d", "5min", "1e3", "0x10", "5ms5", "10us", "abc",
        /* above 100 days */
        "2401h", "144001m", "8640001s", "8640000001", "8640000001ms",
        /* overflow while multiplying, or while reading the number */
        "8640000000h", "8640000000m", "9999999999h", "2562047788015216h",
        "153722867280912931m",
        "9223372036854775807s", "9223372036854775808",
        "99999999999999999999999999999999ms",
    };
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_interval_time_t t = -42;

        if (ark_parse_duration(&t, cases[i]) != APR_EINVAL) {
            fail_msg("'%s' accepted as %" APR_INT64_T_FMT, cases[i], t);
        }
    }
    assert_int_equal(ark_parse_duration(NULL, NULL), APR_EINVAL);
}

/* -------------------------------------------------------------- sizes */

static void size_valid(void **state)
{
    static const struct {
        const char *s;
        apr_off_t want;
    } cases[] = {
        { "0", 0 },
        { "512", 512 },
        { "1K", 1024 },
        { "64k", 65536 },
        { "64KB", 65536 },
        { "64kb", 65536 },
        { "8M", 8 * 1024 * 1024 },
        { "8m", 8 * 1024 * 1024 },
        { "8MB", 8 * 1024 * 1024 },
        { "1G", APR_INT64_C(1073741824) },
        { "1gb", APR_INT64_C(1073741824) },
        { "3G", APR_INT64_C(3221225472) },
        { "9223372036854775807", APR_INT64_MAX },
        { "8589934591G", APR_INT64_C(8589934591) * 1073741824 },
        { "9007199254740991K", APR_INT64_C(9007199254740991) * 1024 },
    };
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_off_t n = -42;

        if (ark_parse_size(&n, cases[i].s) != APR_SUCCESS) {
            fail_msg("'%s' refused", cases[i].s);
        }
        if (n != cases[i].want) {
            fail_msg("'%s' gave %" APR_OFF_T_FMT, cases[i].s, n);
        }
    }
}

static void size_invalid(void **state)
{
    static const char *const cases[] = {
        "", " 1K", "1 K", "1K ", "-1", "+1", "K", "1T", "1KiB", "1KBB",
        "1B", "1.5M", "0x10", "1e6", "abc", "8MX",
        /* overflow */
        "9223372036854775808", "99999999999999999999",
        "8589934592G", "9007199254740992K", "8796093022208M",
    };
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_off_t n = -42;

        if (ark_parse_size(&n, cases[i]) != APR_EINVAL) {
            fail_msg("'%s' accepted as %" APR_OFF_T_FMT, cases[i], n);
        }
    }
    assert_int_equal(ark_parse_size(NULL, NULL), APR_EINVAL);
}

/* -------------------------------------------------------------- names */

static void name_valid_rules(void **state)
{
    static const char *const good[] = {
        "openai", "gpt-4o-mini", "Qwen/Qwen2.5-72B-Instruct",
        "llama3.1:8b", "deepseek-chat", "team@example", "a_b.c",
        "x", "0",
    };
    static const char *const bad[] = {
        "", "gpt 4o", "gpt\t4o", "gpt+4o", "caf\xc3\xa9", "a\"b", "a\\b",
        "a,b", "a=b", "a\nb", "a#b",
    };
    char long_name[130];
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!ark_name_valid(good[i])) {
            fail_msg("'%s' refused", good[i]);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ark_name_valid(bad[i])) {
            fail_msg("'%s' accepted", bad[i]);
        }
    }
    assert_false(ark_name_valid(NULL));
    memset(long_name, 'a', 128);
    long_name[128] = '\0';
    assert_true(ark_name_valid(long_name));
    long_name[128] = 'a';
    long_name[129] = '\0';
    assert_false(ark_name_valid(long_name));
}

/* -------------------------------------------------------- ArkProvider */

/* Parses a NULL-terminated argument list; returns the error or NULL. */
static const char *provider_parse_v(ark_provider_t **pprov, apr_pool_t *p,
                                    ...)
{
    char *argv[16];
    int argc = 0;
    va_list ap;
    const char *a;

    va_start(ap, p);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 16) {
        argv[argc++] = apr_pstrdup(p, a);
    }
    va_end(ap);
    return ark_provider_parse(pprov, argc, argv, p);
}

static void provider_parse_full(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = NULL;

    assert_null(provider_parse_v(&prov, p, "openai", "openai",
                                 "https://api.openai.com/v1/",
                                 "key=env:OPENAI_API_KEY",
                                 "connect-timeout=2s", "timeout=120s",
                                 NULL));
    assert_non_null(prov);
    assert_string_equal(prov->name, "openai");
    assert_ptr_equal(prov->type, &ark_provider_openai);
    assert_string_equal(prov->base_url, "https://api.openai.com/v1");
    assert_string_equal(prov->secret_source, "env:OPENAI_API_KEY");
    assert_null(prov->secret);
    assert_int_equal(prov->connect_timeout, apr_time_from_sec(2));
    assert_int_equal(prov->timeout, apr_time_from_sec(120));
}

static void provider_parse_minimal(void **state)
{
    /* a keyless local upstream: no secret, default timeouts */
    apr_pool_t *p = *state;
    ark_provider_t *prov = NULL;

    assert_null(provider_parse_v(&prov, p, "local-vllm", "openai",
                                 "http://127.0.0.1:8000/v1", NULL));
    assert_non_null(prov);
    assert_string_equal(prov->name, "local-vllm");
    assert_ptr_equal(prov->type, &ark_provider_openai);
    assert_string_equal(prov->base_url, "http://127.0.0.1:8000/v1");
    assert_null(prov->secret_source);
    assert_null(prov->secret);
    assert_int_equal(prov->connect_timeout, 0);
    assert_int_equal(prov->timeout, 0);
}

static void provider_parse_options(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = NULL;

    /* options in any order; file: secret; every trailing '/' stripped */
    assert_null(provider_parse_v(&prov, p, "deepseek", "openai",
                                 "https://api.deepseek.com///",
                                 "timeout=10m", "key=file:/etc/ark/ds.key",
                                 "connect-timeout=500ms", NULL));
    assert_string_equal(prov->base_url, "https://api.deepseek.com");
    assert_string_equal(prov->secret_source, "file:/etc/ark/ds.key");
    assert_int_equal(prov->timeout, apr_time_from_sec(600));
    assert_int_equal(prov->connect_timeout, apr_time_from_msec(500));

    /* the bounds of the timeouts: 1ms and 1h */
    assert_null(provider_parse_v(&prov, p, "q", "openai",
                                 "https://dashscope.aliyuncs.com/"
                                 "compatible-mode/v1",
                                 "timeout=1h", "connect-timeout=1ms", NULL));
    assert_string_equal(prov->base_url,
                        "https://dashscope.aliyuncs.com/compatible-mode/v1");
    assert_int_equal(prov->timeout, apr_time_from_sec(3600));
    assert_int_equal(prov->connect_timeout, apr_time_from_msec(1));
}

static void provider_parse_errors(void **state)
{
    static const struct {
        const char *args[6];
        const char *want;
    } cases[] = {
        { { "openai", "openai", NULL },
          "ArkProvider takes <name> <type> <base-url> "
          "[key=env:VAR|key=file:/path] [connect-timeout=DUR] "
          "[timeout=DUR]" },
        { { "open ai", "openai", "https://api.openai.com/v1", NULL },
          "ArkProvider: invalid name 'open ai' (1-128 characters of "
          "A-Z a-z 0-9 . _ : / @ -)" },
        { { "claude", "anthropic", "https://api.anthropic.com/v1", NULL },
          "ArkProvider claude: unknown type 'anthropic' (supported: "
          "openai)" },
        { { "x", "OpenAI", "https://api.openai.com/v1", NULL },
          "ArkProvider x: unknown type 'OpenAI' (supported: openai)" },
        { { "x", "openai", "ftp://api.openai.com/v1", NULL },
          "ArkProvider x: base URL 'ftp://api.openai.com/v1' must start "
          "with http:// or https://" },
        { { "x", "openai", "api.openai.com/v1", NULL },
          "ArkProvider x: base URL 'api.openai.com/v1' must start with "
          "http:// or https://" },
        { { "x", "openai", "HTTPS//api.openai.com", NULL },
          "ArkProvider x: base URL 'HTTPS//api.openai.com' must start "
          "with http:// or https://" },
        { { "x", "openai", "https://", NULL },
          "ArkProvider x: base URL 'https://' has no host name" },
        { { "x", "openai", "http:///v1", NULL },
          "ArkProvider x: base URL 'http:///v1' has no host name" },
        { { "x", "openai", "https://api.openai.com/v1?api-version=1",
            NULL },
          "ArkProvider x: base URL must not contain a query, fragment or "
          "space" },
        { { "x", "openai", "https://api.openai.com/v1#x", NULL },
          "ArkProvider x: base URL must not contain a query, fragment or "
          "space" },
        { { "x", "openai", "https://api.openai.com/my v1", NULL },
          "ArkProvider x: base URL must not contain a query, fragment or "
          "space" },
        { { "x", "openai", "https://api.openai.com/v1", "key=env:", NULL },
          "ArkProvider x: key= must be env:VARIABLE or file:/absolute/path "
          "(secrets are never written inline)" },
        { { "x", "openai", "https://api.openai.com/v1",
            "key=file:etc/ark.key", NULL },
          "ArkProvider x: key= must be env:VARIABLE or file:/absolute/path "
          "(secrets are never written inline)" },
        { { "x", "openai", "https://api.openai.com/v1", "key=", NULL },
          "ArkProvider x: key= must be env:VARIABLE or file:/absolute/path "
          "(secrets are never written inline)" },
        { { "x", "openai", "https://api.openai.com/v1", "retries=3", NULL },
          "ArkProvider x: unknown option 'retries' (expected key=, "
          "connect-timeout=, timeout=)" },
        { { "x", "openai", "https://api.openai.com/v1", "Timeout=5s",
            NULL },
          "ArkProvider x: unknown option 'Timeout' (expected key=, "
          "connect-timeout=, timeout=)" },
        { { "x", "openai", "https://api.openai.com/v1", "verbose", NULL },
          "ArkProvider x: option 'verbose' is not name=value" },
        { { "x", "openai", "https://api.openai.com/v1", "timeout=abc",
            NULL },
          "ArkProvider: timeout='abc' is not a duration between 1ms and 1h "
          "(e.g. 500ms, 10s, 5m)" },
        { { "x", "openai", "https://api.openai.com/v1", "timeout=0s",
            NULL },
          "ArkProvider: timeout='0s' is not a duration between 1ms and 1h "
          "(e.g. 500ms, 10s, 5m)" },
        { { "x", "openai", "https://api.openai.com/v1", "timeout=61m",
            NULL },
          "ArkProvider: timeout='61m' is not a duration between 1ms and 1h "
          "(e.g. 500ms, 10s, 5m)" },
        { { "x", "openai", "https://api.openai.com/v1", "timeout=", NULL },
          "ArkProvider: timeout='' is not a duration between 1ms and 1h "
          "(e.g. 500ms, 10s, 5m)" },
        { { "x", "openai", "https://api.openai.com/v1",
            "connect-timeout=-1s", NULL },
          "ArkProvider: connect-timeout='-1s' is not a duration between "
          "1ms and 1h (e.g. 500ms, 10s, 5m)" },
        { { "x", "openai", "https://api.openai.com/v1",
            "connect-timeout=9999999999h", NULL },
          "ArkProvider: connect-timeout='9999999999h' is not a duration "
          "between 1ms and 1h (e.g. 500ms, 10s, 5m)" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[6];
        int argc = 0;
        ark_provider_t *prov = NULL;
        const char *err;

        while (cases[i].args[argc]) {
            argv[argc] = apr_pstrdup(p, cases[i].args[argc]);
            argc++;
        }
        err = ark_provider_parse(&prov, argc, argv, p);
        if (!err || strcmp(err, cases[i].want)) {
            fail_msg("case %u: got '%s'", (unsigned)i,
                     err ? err : "(null)");
        }
    }
}

static void provider_parse_never_echoes_inline_key(void **state)
{
    /* an administrator pasting the key itself gets told off, and the key
     * does not end up in the error (which httpd prints and logs) */
    apr_pool_t *p = *state;
    ark_provider_t *prov = NULL;
    const char *err;

    err = provider_parse_v(&prov, p, "openai", "openai",
                           "https://api.openai.com/v1",
                           "key=sk-proj-Zx81kQ2mN7bV4cL0pR5tY9wE", NULL);
    assert_non_null(err);
    assert_null(strstr(err, "sk-proj"));
    assert_null(strstr(err, "Zx81kQ2m"));
    assert_null(prov);
}

/* ----------------------------------------------------------- ArkModel */

static void model_add_channels(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = apr_hash_make(p);
    ark_provider_t *a = NULL, *b = NULL;
    ark_model_t *m;
    ark_channel_t *ch;
    char alias[] = "gpt-4o";

    assert_null(provider_parse_v(&a, p, "openai", "openai",
                                 "https://api.openai.com/v1", NULL));
    assert_null(provider_parse_v(&b, p, "azure", "openai",
                                 "https://example.openai.azure.com/v1",
                                 NULL));
    assert_null(ark_model_add(models, alias, a, NULL, p));
    assert_null(ark_model_add(models, "gpt-4o", b, "gpt-4o-2024-08-06", p));
    assert_null(ark_model_add(models, "chat", a, "gpt-4o-mini", p));
    /* the alias is copied */
    alias[0] = 'X';
    assert_int_equal(apr_hash_count(models), 2);

    m = apr_hash_get(models, "gpt-4o", APR_HASH_KEY_STRING);
    assert_non_null(m);
    assert_string_equal(m->alias, "gpt-4o");
    assert_int_equal(m->channels->nelts, 2);
    ch = &APR_ARRAY_IDX(m->channels, 0, ark_channel_t);
    assert_ptr_equal(ch->provider, a);
    assert_string_equal(ch->upstream_model, "gpt-4o");
    ch = &APR_ARRAY_IDX(m->channels, 1, ark_channel_t);
    assert_ptr_equal(ch->provider, b);
    assert_string_equal(ch->upstream_model, "gpt-4o-2024-08-06");

    m = apr_hash_get(models, "chat", APR_HASH_KEY_STRING);
    assert_non_null(m);
    assert_int_equal(m->channels->nelts, 1);
    ch = &APR_ARRAY_IDX(m->channels, 0, ark_channel_t);
    assert_ptr_equal(ch->provider, a);
    assert_string_equal(ch->upstream_model, "gpt-4o-mini");
}

static void model_add_same_provider_twice(void **state)
{
    /* the same line twice gives two channels (the admin weighs them) */
    apr_pool_t *p = *state;
    apr_hash_t *models = apr_hash_make(p);
    ark_provider_t *a = NULL;
    ark_model_t *m;

    assert_null(provider_parse_v(&a, p, "openai", "openai",
                                 "https://api.openai.com/v1", NULL));
    assert_null(ark_model_add(models, "gpt-4o", a, NULL, p));
    assert_null(ark_model_add(models, "gpt-4o", a, NULL, p));
    m = apr_hash_get(models, "gpt-4o", APR_HASH_KEY_STRING);
    assert_int_equal(apr_hash_count(models), 1);
    assert_int_equal(m->channels->nelts, 2);
}

static void model_add_errors(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = apr_hash_make(p);
    ark_provider_t *a = NULL;
    char long_alias[130], long_upstream[258];

    memset(long_alias, 'm', 129);
    long_alias[129] = '\0';
    memset(long_upstream, 'u', 257);
    long_upstream[257] = '\0';
    assert_null(provider_parse_v(&a, p, "openai", "openai",
                                 "https://api.openai.com/v1", NULL));

    assert_string_equal(ark_model_add(models, "gpt 4o", a, NULL, p),
                        "ArkModel: invalid alias 'gpt 4o' (1-128 characters "
                        "of A-Z a-z 0-9 . _ : / @ -)");
    assert_string_equal(ark_model_add(models, "", a, NULL, p),
                        "ArkModel: invalid alias '' (1-128 characters of "
                        "A-Z a-z 0-9 . _ : / @ -)");
    assert_non_null(ark_model_add(models, long_alias, a, NULL, p));
    assert_string_equal(ark_model_add(models, "gpt-4o", a, "", p),
                        "ArkModel gpt-4o: invalid upstream model name");
    assert_string_equal(ark_model_add(models, "gpt-4o", a, "gpt 4o", p),
                        "ArkModel gpt-4o: invalid upstream model name");
    assert_string_equal(ark_model_add(models, "gpt-4o", a, "gpt\"4o", p),
                        "ArkModel gpt-4o: invalid upstream model name");
    assert_string_equal(ark_model_add(models, "gpt-4o", a, "a\\b", p),
                        "ArkModel gpt-4o: invalid upstream model name");
    assert_string_equal(ark_model_add(models, "gpt-4o", a, long_upstream,
                                      p),
                        "ArkModel gpt-4o: invalid upstream model name");
    /* a refused line adds nothing */
    assert_int_equal(apr_hash_count(models), 0);

    /* 256 characters are allowed upstream */
    long_upstream[256] = '\0';
    assert_null(ark_model_add(models, "gpt-4o", a, long_upstream, p));
}

/* ---------------------------------------------------- provider types */

static void provider_type_table(void **state)
{
    apr_pool_t *p = *state;

    assert_ptr_equal(ark_provider_type_find("openai"), &ark_provider_openai);
    assert_string_equal(ark_provider_openai.name, "openai");
    assert_non_null(ark_provider_openai.build_request);
    assert_non_null(ark_provider_openai.parse_response);
    assert_non_null(ark_provider_openai.stream_event);
    assert_non_null(ark_provider_openai.map_error);
    assert_null(ark_provider_type_find("anthropic"));
    assert_null(ark_provider_type_find(""));
    assert_null(ark_provider_type_find("openai "));
    assert_string_equal(ark_provider_type_names(p), "openai");
}

/* ------------------------------------------------------------ secrets */

#define SECRET "sk-proj-T3stS3cr3tV4lu3-0123456789abcdef"

/* Writes content to a new temporary file (deleted with p); returns
 * its path. */
static const char *temp_file(apr_pool_t *p, const char *content,
                             apr_size_t len)
{
    const char *dir;
    char *path;
    apr_file_t *f;
    apr_size_t n = len;

    assert_int_equal(apr_temp_dir_get(&dir, p), APR_SUCCESS);
    path = apr_pstrcat(p, dir, "/ark-test-secret-XXXXXX", NULL);
    assert_int_equal(apr_file_mktemp(&f, path,
                                     APR_FOPEN_CREATE | APR_FOPEN_READ
                                     | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                                     | APR_FOPEN_DELONCLOSE, p),
                     APR_SUCCESS);
    if (len) {
        assert_int_equal(apr_file_write_full(f, content, len, &n),
                         APR_SUCCESS);
    }
    assert_int_equal(apr_file_flush(f), APR_SUCCESS);
    return path;
}

static apr_status_t load(ark_provider_t *prov, const char *source,
                         const char **perr, apr_pool_t *p)
{
    memset(prov, 0, sizeof(*prov));
    prov->name = "openai";
    prov->secret_source = source;
    return ark_provider_load_secret(prov, perr, p);
}

static void secret_none(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t prov;
    const char *err = "untouched";

    assert_int_equal(load(&prov, NULL, &err, p), APR_SUCCESS);
    assert_null(prov.secret);
    assert_null(err);
}

static void secret_from_env(void **state)
{
    static const struct {
        const char *value;
        const char *want;
    } cases[] = {
        { SECRET, SECRET },
        { SECRET "\n", SECRET },
        { SECRET "\r\n", SECRET },
        { "  " SECRET " \t\n", SECRET },
        { SECRET "\nsecond line\n", SECRET },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_provider_t prov;
        const char *err = "untouched";

        assert_int_equal(apr_env_set("ARK_TEST_OPENAI_KEY", cases[i].value,
                                     p),
                         APR_SUCCESS);
        assert_int_equal(load(&prov, "env:ARK_TEST_OPENAI_KEY", &err, p),
                         APR_SUCCESS);
        assert_null(err);
        assert_string_equal(prov.secret, cases[i].want);
    }
    apr_env_delete("ARK_TEST_OPENAI_KEY", p);
}

static void secret_env_errors(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t prov;
    const char *err = NULL;

    apr_env_delete("ARK_TEST_UNSET_KEY", p);
    assert_int_not_equal(load(&prov, "env:ARK_TEST_UNSET_KEY", &err, p),
                         APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
    assert_non_null(strstr(err, "ARK_TEST_UNSET_KEY"));

    err = NULL;
    assert_int_equal(apr_env_set("ARK_TEST_EMPTY_KEY", "", p), APR_SUCCESS);
    assert_int_not_equal(load(&prov, "env:ARK_TEST_EMPTY_KEY", &err, p),
                         APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
    assert_non_null(strstr(err, "ARK_TEST_EMPTY_KEY"));

    /* white space only is no secret either */
    err = NULL;
    assert_int_equal(apr_env_set("ARK_TEST_EMPTY_KEY", " \t\n", p),
                     APR_SUCCESS);
    assert_int_not_equal(load(&prov, "env:ARK_TEST_EMPTY_KEY", &err, p),
                         APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
    assert_non_null(strstr(err, "ARK_TEST_EMPTY_KEY"));
    apr_env_delete("ARK_TEST_EMPTY_KEY", p);
}

static void secret_from_file(void **state)
{
    static const char *const contents[] = {
        SECRET,
        SECRET "\n",
        SECRET "\r\n",
        " " SECRET "  \n\n",
        SECRET "\n# rotated 2024-06-01\nsk-old-value\n",
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(contents) / sizeof(contents[0]); i++) {
        ark_provider_t prov;
        const char *err = "untouched";
        const char *path = temp_file(p, contents[i], strlen(contents[i]));

        assert_int_equal(load(&prov, apr_pstrcat(p, "file:", path, NULL),
                              &err, p),
                         APR_SUCCESS);
        assert_null(err);
        assert_string_equal(prov.secret, SECRET);
    }
}

static void secret_file_errors(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t prov;
    const char *err, *path;
    char *big;
    apr_size_t big_len = 10000, i;

    /* missing file: the error names the path */
    err = NULL;
    assert_int_not_equal(load(&prov, "file:/nonexistent/ark/openai.key",
                              &err, p),
                         APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
    assert_non_null(strstr(err, "/nonexistent/ark/openai.key"));

    /* empty file, and a file holding only line breaks */
    path = temp_file(p, "", 0);
    err = NULL;
    assert_int_not_equal(load(&prov, apr_pstrcat(p, "file:", path, NULL),
                              &err, p),
                         APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
    assert_non_null(strstr(err, path));

    path = temp_file(p, "\n" SECRET "\n", strlen(SECRET) + 2);
    err = NULL;
    assert_int_not_equal(load(&prov, apr_pstrcat(p, "file:", path, NULL),
                              &err, p),
                         APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
    assert_null(strstr(err, SECRET));
    assert_null(strstr(err, "sk-proj"));

    /* a file far larger than any key, starting with a key */
    big = apr_palloc(p, big_len);
    memcpy(big, SECRET "\n", strlen(SECRET) + 1);
    for (i = strlen(SECRET) + 1; i < big_len; i++) {
        big[i] = 'k';
    }
    path = temp_file(p, big, big_len);
    err = NULL;
    assert_int_not_equal(load(&prov, apr_pstrcat(p, "file:", path, NULL),
                              &err, p),
                         APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, "sk-proj"));
    assert_null(strstr(err, "kkkkkkkk"));

    /* a directory is not a secret file */
    err = NULL;
    assert_int_not_equal(load(&prov, "file:/", &err, p), APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
}

static void secret_bad_source_not_echoed(void **state)
{
    /* a source that is the key itself (bypassing ArkProvider's check) is
     * refused without repeating it */
    apr_pool_t *p = *state;
    ark_provider_t prov;
    const char *err = NULL;

    assert_int_not_equal(load(&prov, SECRET, &err, p), APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
    assert_null(strstr(err, "sk-proj"));
    assert_null(strstr(err, "T3stS3cr"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(duration_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(duration_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(size_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(size_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(name_valid_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(provider_parse_full, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(provider_parse_minimal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(provider_parse_options, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(provider_parse_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            provider_parse_never_echoes_inline_key, setup, teardown),
        cmocka_unit_test_setup_teardown(model_add_channels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(model_add_same_provider_twice,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(model_add_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(provider_type_table, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(secret_none, setup, teardown),
        cmocka_unit_test_setup_teardown(secret_from_env, setup, teardown),
        cmocka_unit_test_setup_teardown(secret_env_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(secret_from_file, setup, teardown),
        cmocka_unit_test_setup_teardown(secret_file_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(secret_bad_source_not_echoed, setup,
                                        teardown),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&root_pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(root_pool);
    apr_terminate();
    return rc;
}
