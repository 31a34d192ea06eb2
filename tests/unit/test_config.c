/* Unit tests for configuration parsing (ark_config.c) and the provider
 * helpers used at configuration time (ark_provider.c): durations, sizes,
 * ArkProvider arguments (with tags, connection caps and type-specific
 * options), ArkModel channels (options, naming, duplicates, tag merging),
 * ArkRoute policies and their merging, ArkScoreWeights, ArkCircuit,
 * per-request channel cost estimates, the provider type table, and
 * loading secrets from the environment and from files.
 *
 * Every refusal is checked for its exact sentence: the directive
 * handlers return these strings to the administrator unchanged.
 */
#include <stdarg.h>
#include <string.h>
#include <math.h>

#include <apr_env.h>
#include <apr_general.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include "ark_config.h"
#include "ark_provider.h"
#include "ark_testutil.h"

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

/* ------------------------------------------------ directive arguments */

#define MAX_ARGS 16

/* Copies a NULL-terminated list of directive arguments (at most MAX_ARGS)
 * into argv, each as a writable copy from p, as httpd hands them to a
 * directive; returns how many there were. */
static int collect_args(char **argv, va_list ap, apr_pool_t *p)
{
    const char *a;
    int argc = 0;

    while ((a = va_arg(ap, const char *)) != NULL && argc < MAX_ARGS) {
        argv[argc++] = apr_pstrdup(p, a);
    }
    return argc;
}

/* -------------------------------------------------------- ArkProvider */

/* Parses a NULL-terminated argument list; returns the error or NULL. */
static const char *provider_parse_v(ark_provider_t **pprov, apr_pool_t *p,
                                    ...)
{
    char *argv[MAX_ARGS];
    va_list ap;
    int argc;

    va_start(ap, p);
    argc = collect_args(argv, ap, p);
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
        { { NULL },
          "ArkProvider takes <name> <type> <base-url> "
          "[key=env:VAR|key=file:/path] [connect-timeout=DUR] "
          "[timeout=DUR]" },
        { { "open ai", "openai", "https://api.openai.com/v1", NULL },
          "ArkProvider: invalid name 'open ai' (1-128 characters of "
          "A-Z a-z 0-9 . _ : / @ -)" },
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
          "connect-timeout=, timeout=, tags=, max-conns=, plaintext=)" },
        { { "x", "openai", "https://api.openai.com/v1", "Timeout=5s",
            NULL },
          "ArkProvider x: unknown option 'Timeout' (expected key=, "
          "connect-timeout=, timeout=, tags=, max-conns=, plaintext=)" },
        /* api-version= is the azure type's, not openai's */
        { { "x", "openai", "https://api.openai.com/v1",
            "api-version=2024-10-21", NULL },
          "ArkProvider x: unknown option 'api-version' (expected key=, "
          "connect-timeout=, timeout=, tags=, max-conns=, plaintext=)" },
        { { "x", "openai", "https://api.openai.com/v1", "max_conns=5",
            NULL },
          "ArkProvider x: unknown option 'max_conns' (expected key=, "
          "connect-timeout=, timeout=, tags=, max-conns=, plaintext=)" },
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
        { { "x", "openai", "https://api.openai.com/v1", "max-conns=0",
            NULL },
          "ArkProvider x: max-conns='0' is not a number between 1 and "
          "100000" },
        { { "x", "openai", "https://api.openai.com/v1",
            "max-conns=100001", NULL },
          "ArkProvider x: max-conns='100001' is not a number between 1 and "
          "100000" },
        { { "x", "openai", "https://api.openai.com/v1", "max-conns=", NULL },
          "ArkProvider x: max-conns='' is not a number between 1 and "
          "100000" },
        { { "x", "openai", "https://api.openai.com/v1", "max-conns=-1",
            NULL },
          "ArkProvider x: max-conns='-1' is not a number between 1 and "
          "100000" },
        { { "x", "openai", "https://api.openai.com/v1", "max-conns=1.5",
            NULL },
          "ArkProvider x: max-conns='1.5' is not a number between 1 and "
          "100000" },
        { { "x", "openai", "https://api.openai.com/v1", "max-conns=ten",
            NULL },
          "ArkProvider x: max-conns='ten' is not a number between 1 and "
          "100000" },
        { { "x", "openai", "https://api.openai.com/v1",
            "max-conns=99999999999999999999", NULL },
          "ArkProvider x: max-conns='99999999999999999999' is not a number "
          "between 1 and 100000" },
        /* the azure type's own options */
        { { "az", "azure", "https://acme.openai.azure.com",
            "deployment=gpt-4o", NULL },
          "ArkProvider az: unknown option 'deployment' for type azure "
          "(expected api-version=)" },
        { { "az", "azure", "https://acme.openai.azure.com",
            "api-version=2024", NULL },
          "ArkProvider az: api-version='2024' is not an Azure OpenAI API "
          "version such as 2024-10-21" },
        { { "az", "azure", "https://acme.openai.azure.com",
            "api-version=preview-2024", NULL },
          "ArkProvider az: api-version='preview-2024' is not an Azure "
          "OpenAI API version such as 2024-10-21" },
        { { "az", "azure", "https://acme.openai.azure.com",
            "api-version=2024-10-21&x=1", NULL },
          "ArkProvider az: api-version='2024-10-21&x=1' is not an Azure "
          "OpenAI API version such as 2024-10-21" },
        { { "az", "azure", "https://acme.openai.azure.com",
            "api-version=", NULL },
          "ArkProvider az: api-version='' is not an Azure OpenAI API "
          "version such as 2024-10-21" },
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
        assert_null(prov);
    }
}

static void provider_parse_unknown_type(void **state)
{
    /* the sentence lists every type the build knows */
    static const char *const types[] = {
        "bedrock", "OpenAI", "openai ", "", "open-ai",
    };
    apr_pool_t *p = *state;
    const char *names = ark_provider_type_names(p);
    apr_size_t i;

    assert_non_null(strstr(names, "openai"));
    assert_non_null(strstr(names, "azure"));
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        ark_provider_t *prov = NULL;

        assert_string_equal(
            provider_parse_v(&prov, p, "x", types[i],
                             "https://api.example.com/v1", NULL),
            apr_psprintf(p, "ArkProvider x: unknown type '%s' (supported: "
                         "%s)", types[i], names));
        assert_null(prov);
    }
}

static void provider_parse_tags_and_caps(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = NULL;
    const char *err, *want;
    apr_array_header_t *t = NULL;

    /* neither: no tags, no cap, no type options */
    assert_null(provider_parse_v(&prov, p, "openai", "openai",
                                 "https://api.openai.com/v1", NULL));
    assert_null(prov->tags);
    assert_int_equal(prov->max_conns, 0);
    assert_null(prov->options);

    assert_null(provider_parse_v(&prov, p, "eu", "openai",
                                 "https://eu.api.example.com/v1",
                                 "tags=region=eu,tier=official",
                                 "max-conns=16", "key=env:EU_KEY", NULL));
    assert_non_null(prov->tags);
    assert_int_equal(prov->tags->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(prov->tags, 0, ark_tag_t).key,
                        "region");
    assert_string_equal(APR_ARRAY_IDX(prov->tags, 0, ark_tag_t).value, "eu");
    assert_string_equal(APR_ARRAY_IDX(prov->tags, 1, ark_tag_t).key, "tier");
    assert_string_equal(APR_ARRAY_IDX(prov->tags, 1, ark_tag_t).value,
                        "official");
    assert_int_equal(prov->max_conns, 16);
    assert_string_equal(prov->secret_source, "env:EU_KEY");
    assert_null(prov->options);

    /* the bounds of max-conns */
    assert_null(provider_parse_v(&prov, p, "a", "openai", "https://h",
                                 "max-conns=1", NULL));
    assert_int_equal(prov->max_conns, 1);
    assert_null(provider_parse_v(&prov, p, "a", "openai", "https://h",
                                 "max-conns=100000", NULL));
    assert_int_equal(prov->max_conns, 100000);

    /* a bad tags= is refused with the tag parser's sentence */
    prov = NULL;
    want = ark_tags_parse(&t, "region", p);
    assert_non_null(want);
    want = apr_pstrcat(p, "ArkProvider x: tags=: ", want, NULL);
    err = provider_parse_v(&prov, p, "x", "openai", "http://h",
                           "tags=region", NULL);
    assert_non_null(err);
    assert_string_equal(err, want);
    want = apr_pstrcat(p, "ArkProvider x: tags=: ",
                       ark_tags_parse(&t, "region=eu,zone=a b", p), NULL);
    assert_string_equal(provider_parse_v(&prov, p, "x", "openai", "http://h",
                                         "tags=region=eu,zone=a b", NULL),
                        want);
    assert_null(prov);
}

/* Plain http:// only to loopback addresses, or with plaintext=on. */
static void provider_parse_plaintext(void **state)
{
    static const char *const loopback[] = {
        "http://127.0.0.1:8000/v1", "http://127.1.2.3/v1",
        "http://localhost:11434/v1", "http://LOCALHOST/v1",
        "http://[::1]:8000/v1", "http://[0:0:0:0:0:0:0:1]/v1",
        "http://user@127.0.0.1:1/v1", "http://127.0.0.1",
    };
    static const char *const remote[] = {
        "http://10.0.0.5:8000/v1", "http://vllm.internal/v1",
        "http://128.0.0.1/v1", "http://127.0.0.1.nip.io/v1",
        "http://localhost.example.com/v1", "http://[::2]/v1",
        "http://127.0.0.1@evil.example/v1", "http://[::ffff:10.0.0.1]/v1",
        "http://0x7f000001/v1", "http://127.0.0.1x/v1",
    };
    apr_pool_t *p = *state;
    ark_provider_t *prov;
    apr_size_t i;

    for (i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
        assert_true(ark_url_host_is_loopback(loopback[i]));
        prov = NULL;
        assert_null(provider_parse_v(&prov, p, "x", "openai", loopback[i],
                                     NULL));
        assert_non_null(prov);
    }
    for (i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        const char *want = apr_psprintf(
            p, "ArkProvider x: base URL '%s' is plain http:// to a host that "
            "is not loopback: use https://, or add plaintext=on to send "
            "requests and the provider key unencrypted", remote[i]);

        assert_false(ark_url_host_is_loopback(remote[i]));
        prov = NULL;
        assert_string_equal(provider_parse_v(&prov, p, "x", "openai",
                                             remote[i], NULL), want);
        assert_null(prov);
        assert_string_equal(provider_parse_v(&prov, p, "x", "openai",
                                             remote[i], "plaintext=off",
                                             NULL), want);
        assert_null(provider_parse_v(&prov, p, "x", "openai", remote[i],
                                     "plaintext=on", NULL));
        assert_non_null(prov);
    }
    /* https:// needs nothing; plaintext= is on or off */
    assert_null(provider_parse_v(&prov, p, "x", "openai", "https://h/v1",
                                 "plaintext=off", NULL));
    assert_string_equal(provider_parse_v(&prov, p, "x", "openai",
                                         "https://h/v1", "plaintext=yes",
                                         NULL),
                        "ArkProvider x: plaintext='yes' is not on or off");
    assert_false(ark_url_host_is_loopback("127.0.0.1"));
}

/* ArkCACertificateFile: a readable file with a PEM certificate. */
static void ca_file_checks(void **state)
{
    static const char pem[] =
        "# test CA\n-----BEGIN CERTIFICATE-----\nMIIB\n"
        "-----END CERTIFICATE-----\n";
    apr_pool_t *p = *state;
    const char *path;

    path = ark_test_temp_file(pem, strlen(pem), p);
    assert_null(ark_ca_file_check(path, p));
    path = ark_test_temp_file("-----BEGIN PRIVATE KEY-----\n", 28, p);
    assert_string_equal(ark_ca_file_check(path, p),
                        apr_psprintf(p, "ArkCACertificateFile: '%s' holds no "
                                     "PEM certificate (-----BEGIN "
                                     "CERTIFICATE-----)", path));
    path = ark_test_temp_file("", 0, p);
    assert_string_equal(ark_ca_file_check(path, p),
                        apr_psprintf(p, "ArkCACertificateFile: '%s' is not a "
                                     "regular file of 1 byte to 16 MiB",
                                     path));
    assert_string_equal(ark_ca_file_check("/nonexistent/ca.pem", p),
                        "ArkCACertificateFile: cannot read "
                        "'/nonexistent/ca.pem': No such file or directory");
    assert_string_equal(ark_ca_file_check("/", p),
                        "ArkCACertificateFile: '/' is not a regular file of "
                        "1 byte to 16 MiB");
}

static void provider_parse_azure_options(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = NULL;

    assert_ptr_equal(ark_provider_type_find("azure"), &ark_provider_azure);
    assert_non_null(ark_provider_azure.check_option);
    assert_null(ark_provider_openai.check_option);

    /* no api-version: the type's default applies later */
    assert_null(provider_parse_v(&prov, p, "az", "azure",
                                 "https://acme.openai.azure.com/", NULL));
    assert_ptr_equal(prov->type, &ark_provider_azure);
    assert_string_equal(prov->base_url, "https://acme.openai.azure.com");
    assert_null(prov->options);

    /* api-version= is kept for the type, beside the common options */
    assert_null(provider_parse_v(&prov, p, "az", "azure",
                                 "https://acme.openai.azure.com",
                                 "key=env:AZ_KEY", "api-version=2024-10-21",
                                 "timeout=30s", "tags=region=eu",
                                 "max-conns=4", NULL));
    assert_non_null(prov->options);
    assert_string_equal(apr_table_get(prov->options, "api-version"),
                        "2024-10-21");
    assert_int_equal(apr_table_elts(prov->options)->nelts, 1);
    assert_string_equal(prov->secret_source, "env:AZ_KEY");
    assert_int_equal(prov->timeout, apr_time_from_sec(30));
    assert_int_equal(prov->tags->nelts, 1);
    assert_int_equal(prov->max_conns, 4);

    /* a preview version; given twice, the last one counts */
    assert_null(provider_parse_v(&prov, p, "az", "azure",
                                 "https://acme.openai.azure.com",
                                 "api-version=2024-10-21",
                                 "api-version=2025-01-01-preview", NULL));
    assert_string_equal(apr_table_get(prov->options, "api-version"),
                        "2025-01-01-preview");
    assert_int_equal(apr_table_elts(prov->options)->nelts, 1);
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

/* ArkModel with a NULL-terminated argument list (alias, provider name,
 * then the rest); prov is the provider the name resolves to. */
static const char *model_add_v(apr_hash_t *models, const ark_provider_t *prov,
                               apr_pool_t *p, ...)
{
    char *argv[MAX_ARGS];
    va_list ap;
    int argc;

    va_start(ap, p);
    argc = collect_args(argv, ap, p);
    va_end(ap);
    return ark_model_add(models, prov, argc, argv, p);
}

static ark_channel_t *channel_get(apr_hash_t *models, const char *alias,
                                  int i)
{
    ark_model_t *m = apr_hash_get(models, alias, APR_HASH_KEY_STRING);

    assert_non_null(m);
    assert_in_range(i, 0, m->channels->nelts - 1);
    return &APR_ARRAY_IDX(m->channels, i, ark_channel_t);
}

static int channel_count(apr_hash_t *models, const char *alias)
{
    ark_model_t *m = apr_hash_get(models, alias, APR_HASH_KEY_STRING);

    return m ? m->channels->nelts : 0;
}

static ark_provider_t *provider_make(apr_pool_t *p, const char *name,
                                     const char *opt1, const char *opt2)
{
    ark_provider_t *prov = NULL;

    assert_null(provider_parse_v(&prov, p, name, "openai",
                                 "https://api.example.com/v1", opt1, opt2,
                                 NULL));
    return prov;
}

static void model_add_channels(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = apr_hash_make(p);
    ark_provider_t *a = provider_make(p, "openai", NULL, NULL);
    ark_provider_t *b = provider_make(p, "azure", NULL, NULL);
    ark_model_t *m;
    ark_channel_t *ch;
    char alias[] = "gpt-4o", pname[] = "openai";
    char *argv[2];

    argv[0] = alias;
    argv[1] = pname;
    assert_null(ark_model_add(models, a, 2, argv, p));
    assert_null(model_add_v(models, b, p, "gpt-4o", "azure",
                            "gpt-4o-2024-08-06", NULL));
    assert_null(model_add_v(models, a, p, "chat", "openai", "gpt-4o-mini",
                            NULL));
    /* the alias is copied */
    alias[0] = 'X';
    assert_int_equal(apr_hash_count(models), 2);
    assert_null(apr_hash_get(models, "Xpt-4o", APR_HASH_KEY_STRING));

    m = apr_hash_get(models, "gpt-4o", APR_HASH_KEY_STRING);
    assert_non_null(m);
    assert_string_equal(m->alias, "gpt-4o");
    assert_int_equal(m->channels->nelts, 2);
    /* a new alias has no routing policy of its own */
    assert_int_equal(m->policy.strategy, -1);
    assert_int_equal(m->policy.hedge, -1);
    assert_int_equal(m->policy.hedge_delay, 0);
    assert_int_equal(m->policy.max_attempts, 0);
    assert_int_equal(m->policy.deadline, 0);

    /* the defaults: upstream model = alias, named provider/upstream, no
     * price, cost coefficient 1, weight 1, no tags, no cap */
    ch = &APR_ARRAY_IDX(m->channels, 0, ark_channel_t);
    assert_ptr_equal(ch->provider, a);
    assert_string_equal(ch->upstream_model, "gpt-4o");
    assert_string_equal(ch->name, "openai/gpt-4o");
    assert_true(ch->price_in < 0);
    assert_true(ch->price_out < 0);
    assert_true(ch->cost_coef == 1.0);
    assert_int_equal(ch->weight, 1);
    assert_non_null(ch->tags);
    assert_int_equal(ch->tags->nelts, 0);
    assert_int_equal(ch->max_conns, 0);

    ch = &APR_ARRAY_IDX(m->channels, 1, ark_channel_t);
    assert_ptr_equal(ch->provider, b);
    assert_string_equal(ch->upstream_model, "gpt-4o-2024-08-06");
    assert_string_equal(ch->name, "azure/gpt-4o-2024-08-06");

    m = apr_hash_get(models, "chat", APR_HASH_KEY_STRING);
    assert_non_null(m);
    assert_int_equal(m->channels->nelts, 1);
    ch = &APR_ARRAY_IDX(m->channels, 0, ark_channel_t);
    assert_ptr_equal(ch->provider, a);
    assert_string_equal(ch->upstream_model, "gpt-4o-mini");
    assert_string_equal(ch->name, "openai/gpt-4o-mini");
}

static void model_add_options(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = apr_hash_make(p);
    ark_provider_t *a = provider_make(p, "openai", NULL, NULL);
    ark_channel_t *ch;

    assert_null(model_add_v(models, a, p, "gpt-4o", "openai",
                            "gpt-4o-2024-08-06", "price=2.50/10",
                            "cost=0.3", "weight=7",
                            "tags=tier=official,zdr=yes", "name=primary",
                            NULL));
    ch = channel_get(models, "gpt-4o", 0);
    assert_string_equal(ch->upstream_model, "gpt-4o-2024-08-06");
    assert_true(ch->price_in == 2.5);
    assert_true(ch->price_out == 10.0);
    assert_true(ch->cost_coef == 0.3);
    assert_int_equal(ch->weight, 7);
    assert_int_equal(ch->tags->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(ch->tags, 0, ark_tag_t).key, "tier");
    assert_string_equal(APR_ARRAY_IDX(ch->tags, 0, ark_tag_t).value,
                        "official");
    assert_string_equal(APR_ARRAY_IDX(ch->tags, 1, ark_tag_t).key, "zdr");
    assert_string_equal(ch->name, "primary");

    /* options without an upstream model, in any order; the last of a
     * repeated option counts */
    assert_null(model_add_v(models, a, p, "chat", "openai", "weight=2",
                            "name=b", "price=0/0", "weight=3", "cost=0",
                            NULL));
    ch = channel_get(models, "chat", 0);
    assert_string_equal(ch->upstream_model, "chat");
    assert_string_equal(ch->name, "b");
    assert_int_equal(ch->weight, 3);
    assert_true(ch->price_in == 0.0);
    assert_true(ch->price_out == 0.0);
    assert_true(ch->cost_coef == 0.0);

    /* the bounds, and the number forms strtod knows */
    assert_null(model_add_v(models, a, p, "edge", "openai", "m1",
                            "weight=1", "price=1000000/.5", "cost=1e6",
                            NULL));
    ch = channel_get(models, "edge", 0);
    assert_int_equal(ch->weight, 1);
    assert_true(ch->price_in == 1e6);
    assert_true(ch->price_out == 0.5);
    assert_true(ch->cost_coef == 1e6);
    assert_null(model_add_v(models, a, p, "edge", "openai", "m2",
                            "weight=10000", "price=1.5e-1/2E1", NULL));
    ch = channel_get(models, "edge", 1);
    assert_int_equal(ch->weight, 10000);
    assert_true(fabs(ch->price_in - 0.15) < 1e-15);
    assert_true(ch->price_out == 20.0);
    assert_true(ch->price_cached < 0);     /* not set: the input price */

    /* a third price: cached input tokens */
    assert_null(model_add_v(models, a, p, "edge", "openai", "m3",
                            "price=2.50/10/1.25", NULL));
    ch = channel_get(models, "edge", 2);
    assert_true(ch->price_in == 2.5);
    assert_true(ch->price_out == 10.0);
    assert_true(ch->price_cached == 1.25);
}

static void model_add_naming_and_duplicates(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = apr_hash_make(p);
    ark_provider_t *a = provider_make(p, "openai", NULL, NULL);
    ark_provider_t *b = provider_make(p, "backup", NULL, NULL);

    assert_null(model_add_v(models, a, p, "gpt-4o", "openai", NULL));
    /* the same line again: two channels of one name */
    assert_string_equal(model_add_v(models, a, p, "gpt-4o", "openai", NULL),
                        "ArkModel gpt-4o: channel 'openai/gpt-4o' is "
                        "defined twice (give one a name=)");
    /* naming the upstream model the alias names is the same channel */
    assert_string_equal(model_add_v(models, a, p, "gpt-4o", "openai",
                                    "gpt-4o", "weight=3", NULL),
                        "ArkModel gpt-4o: channel 'openai/gpt-4o' is "
                        "defined twice (give one a name=)");
    assert_int_equal(channel_count(models, "gpt-4o"), 1);
    assert_int_equal(channel_get(models, "gpt-4o", 0)->weight, 1);

    /* with a name= it is a second channel (e.g. another price) */
    assert_null(model_add_v(models, a, p, "gpt-4o", "openai",
                            "name=openai-batch", "price=1.25/5", NULL));
    assert_string_equal(model_add_v(models, a, p, "gpt-4o", "openai",
                                    "name=openai-batch", NULL),
                        "ArkModel gpt-4o: channel 'openai-batch' is "
                        "defined twice (give one a name=)");
    /* another provider, another upstream model: other names */
    assert_null(model_add_v(models, b, p, "gpt-4o", "backup", NULL));
    assert_null(model_add_v(models, a, p, "gpt-4o", "openai",
                            "gpt-4o-2024-08-06", NULL));
    /* a name= taking a default name collides with it */
    assert_string_equal(model_add_v(models, b, p, "gpt-4o", "backup",
                                    "other", "name=openai/gpt-4o", NULL),
                        "ArkModel gpt-4o: channel 'openai/gpt-4o' is "
                        "defined twice (give one a name=)");
    assert_int_equal(channel_count(models, "gpt-4o"), 4);
    assert_string_equal(channel_get(models, "gpt-4o", 0)->name,
                        "openai/gpt-4o");
    assert_string_equal(channel_get(models, "gpt-4o", 1)->name,
                        "openai-batch");
    assert_string_equal(channel_get(models, "gpt-4o", 1)->upstream_model,
                        "gpt-4o");
    assert_string_equal(channel_get(models, "gpt-4o", 2)->name,
                        "backup/gpt-4o");
    assert_string_equal(channel_get(models, "gpt-4o", 3)->name,
                        "openai/gpt-4o-2024-08-06");

    /* names are per alias: the same channel serves another alias */
    assert_null(model_add_v(models, a, p, "default", "openai", "gpt-4o",
                            NULL));
    assert_null(model_add_v(models, a, p, "default", "openai",
                            "name=openai-batch", NULL));
    assert_string_equal(channel_get(models, "default", 0)->name,
                        "openai/gpt-4o");
    assert_int_equal(apr_hash_count(models), 2);
}

static void model_add_tags_and_caps(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = apr_hash_make(p);
    ark_provider_t *eu = provider_make(p, "eu", "tags=region=eu,tier=official",
                                       "max-conns=8");
    ark_provider_t *plain = provider_make(p, "plain", NULL, NULL);
    apr_array_header_t *req = NULL;
    ark_channel_t *ch;

    /* the provider's tags first, then the channel's own */
    assert_null(model_add_v(models, eu, p, "m", "eu", "tags=zdr=yes,gpu=h100",
                            NULL));
    ch = channel_get(models, "m", 0);
    assert_int_equal(ch->tags->nelts, 4);
    assert_string_equal(APR_ARRAY_IDX(ch->tags, 0, ark_tag_t).key, "region");
    assert_string_equal(APR_ARRAY_IDX(ch->tags, 1, ark_tag_t).key, "tier");
    assert_string_equal(APR_ARRAY_IDX(ch->tags, 2, ark_tag_t).key, "zdr");
    assert_string_equal(APR_ARRAY_IDX(ch->tags, 3, ark_tag_t).value, "h100");
    assert_int_equal(ch->max_conns, 8);
    assert_null(ark_tags_parse(&req, "region=eu,zdr=yes", p));
    assert_true(ark_tags_satisfy(ch->tags, req));

    /* the channel's array is its own: the provider's is unchanged */
    *(ark_tag_t *)apr_array_push(ch->tags) = (ark_tag_t){ "x", "y" };
    assert_int_equal(eu->tags->nelts, 2);

    /* no tags of its own: the provider's */
    assert_null(model_add_v(models, eu, p, "m", "eu", "other", NULL));
    ch = channel_get(models, "m", 1);
    assert_int_equal(ch->tags->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(ch->tags, 1, ark_tag_t).value,
                        "official");
    assert_int_equal(ch->max_conns, 8);
    assert_false(ark_tags_satisfy(ch->tags, req));

    /* a provider without tags: the channel's only */
    assert_null(model_add_v(models, plain, p, "m", "plain",
                            "tags=region=eu,zdr=yes", NULL));
    ch = channel_get(models, "m", 2);
    assert_int_equal(ch->tags->nelts, 2);
    assert_int_equal(ch->max_conns, 0);
    assert_true(ark_tags_satisfy(ch->tags, req));
}

static void model_add_errors(void **state)
{
    static const struct {
        const char *args[6];
        const char *want;
    } cases[] = {
        { { "gpt 4o", "openai", NULL },
          "ArkModel: invalid alias 'gpt 4o' (1-128 characters of A-Z a-z "
          "0-9 . _ : / @ -)" },
        { { "", "openai", NULL },
          "ArkModel: invalid alias '' (1-128 characters of A-Z a-z 0-9 . _ "
          ": / @ -)" },
        { { "gpt-4o", "openai", "", NULL },
          "ArkModel gpt-4o: invalid upstream model name" },
        { { "gpt-4o", "openai", "gpt 4o", NULL },
          "ArkModel gpt-4o: invalid upstream model name" },
        { { "gpt-4o", "openai", "gpt\t4o", NULL },
          "ArkModel gpt-4o: invalid upstream model name" },
        { { "gpt-4o", "openai", "gpt\"4o", NULL },
          "ArkModel gpt-4o: invalid upstream model name" },
        { { "gpt-4o", "openai", "a\\b", NULL },
          "ArkModel gpt-4o: invalid upstream model name" },
        { { "gpt-4o", "openai", "up", "verbose", NULL },
          "ArkModel gpt-4o: option 'verbose' is not name=value" },
        { { "gpt-4o", "openai", "weight=2", "up", NULL },
          "ArkModel gpt-4o: option 'up' is not name=value" },
        /* an upstream model name with '=' reads as an option */
        { { "gpt-4o", "openai", "a=b", NULL },
          "ArkModel gpt-4o: unknown option 'a' (expected price=, cost=, "
          "weight=, tags=, name=)" },
        { { "gpt-4o", "openai", "Price=1/2", NULL },
          "ArkModel gpt-4o: unknown option 'Price' (expected price=, cost=, "
          "weight=, tags=, name=)" },
        { { "gpt-4o", "openai", "up", "max-conns=3", NULL },
          "ArkModel gpt-4o: unknown option 'max-conns' (expected price=, "
          "cost=, weight=, tags=, name=)" },
        { { "gpt-4o", "openai", "name=a b", NULL },
          "ArkModel gpt-4o: invalid channel name 'a b'" },
        { { "gpt-4o", "openai", "name=", NULL },
          "ArkModel gpt-4o: invalid channel name ''" },
        { { "gpt-4o", "openai", "name=a,b", NULL },
          "ArkModel gpt-4o: invalid channel name 'a,b'" },
    };
    static const char *const bad_prices[] = {
        "2.5", "", "/10", "2.5/", "/", "a/b", "-1/2", "2/-1", "1/2/3/4", "1/2/-1", "1/2/",
        "1e7/1", "1/1000001", "nan/1", "1/inf", "2.5 /10", "0x/1", "1,5/2",
    };
    static const char *const bad_costs[] = {
        "-1", "abc", "", "1e7", "nan", "inf", "0.5x", "-0.5",
    };
    static const char *const bad_weights[] = {
        "0", "10001", "abc", "", "1.5", "-1", "+3", "5x", " 5",
        "99999999999999999999",
    };
    static const char *const bad_tags[] = {
        "region", "region=eu,", "=eu", "region=e u", "a=b,c*=d",
    };
    apr_pool_t *p = *state;
    apr_hash_t *models = apr_hash_make(p);
    ark_provider_t *a = provider_make(p, "openai", NULL, NULL);
    char long_alias[130], long_upstream[258];
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[6];
        int argc = 0;
        const char *err;

        while (cases[i].args[argc]) {
            argv[argc] = apr_pstrdup(p, cases[i].args[argc]);
            argc++;
        }
        err = ark_model_add(models, a, argc, argv, p);
        if (!err || strcmp(err, cases[i].want)) {
            fail_msg("case %u: got '%s'", (unsigned)i,
                     err ? err : "(null)");
        }
    }
    for (i = 0; i < sizeof(bad_prices) / sizeof(bad_prices[0]); i++) {
        assert_string_equal(
            model_add_v(models, a, p, "gpt-4o", "openai",
                        apr_pstrcat(p, "price=", bad_prices[i], NULL), NULL),
            apr_psprintf(p, "ArkModel gpt-4o: price='%s' is not "
                         "INPUT/OUTPUT[/CACHED-INPUT] prices per 1M tokens, "
                         "e.g. price=2.50/10 or price=2.50/10/1.25",
                         bad_prices[i]));
    }
    for (i = 0; i < sizeof(bad_costs) / sizeof(bad_costs[0]); i++) {
        assert_string_equal(
            model_add_v(models, a, p, "gpt-4o", "openai", "up",
                        apr_pstrcat(p, "cost=", bad_costs[i], NULL), NULL),
            apr_psprintf(p, "ArkModel gpt-4o: cost='%s' is not a "
                         "non-negative number", bad_costs[i]));
    }
    for (i = 0; i < sizeof(bad_weights) / sizeof(bad_weights[0]); i++) {
        assert_string_equal(
            model_add_v(models, a, p, "gpt-4o", "openai",
                        apr_pstrcat(p, "weight=", bad_weights[i], NULL),
                        NULL),
            apr_psprintf(p, "ArkModel gpt-4o: weight='%s' is not a number "
                         "between 1 and 10000", bad_weights[i]));
    }
    for (i = 0; i < sizeof(bad_tags) / sizeof(bad_tags[0]); i++) {
        apr_array_header_t *t;
        const char *terr = ark_tags_parse(&t, bad_tags[i], p);

        assert_non_null(terr);
        assert_string_equal(
            model_add_v(models, a, p, "gpt-4o", "openai",
                        apr_pstrcat(p, "tags=", bad_tags[i], NULL), NULL),
            apr_pstrcat(p, "ArkModel gpt-4o: tags=: ", terr, NULL));
    }

    /* 128 characters of alias, 256 of upstream model; one more is too
     * many */
    memset(long_alias, 'm', 129);
    long_alias[129] = '\0';
    memset(long_upstream, 'u', 257);
    long_upstream[257] = '\0';
    assert_non_null(model_add_v(models, a, p, long_alias, "openai", NULL));
    assert_string_equal(model_add_v(models, a, p, "gpt-4o", "openai",
                                    long_upstream, NULL),
                        "ArkModel gpt-4o: invalid upstream model name");
    /* a refused line adds nothing, not even its alias */
    assert_int_equal(apr_hash_count(models), 0);

    long_alias[128] = '\0';
    long_upstream[256] = '\0';
    assert_null(model_add_v(models, a, p, long_alias, "openai", NULL));
    assert_null(model_add_v(models, a, p, "gpt-4o", "openai", long_upstream,
                            NULL));
    /* ... nor a channel to an existing alias */
    assert_non_null(model_add_v(models, a, p, "gpt-4o", "openai", "x",
                                "weight=0", NULL));
    assert_int_equal(channel_count(models, "gpt-4o"), 1);
    assert_int_equal(apr_hash_count(models), 2);
}

/* ----------------------------------------------------------- ArkRoute */

static const char *policy_parse_v(ark_route_policy_t *pol, apr_pool_t *p,
                                  ...)
{
    char *argv[MAX_ARGS];
    va_list ap;
    int argc;

    va_start(ap, p);
    argc = collect_args(argv, ap, p);
    va_end(ap);
    return ark_route_policy_parse(pol, argc, argv, p);
}

static void policy_unset_all(void **state)
{
    ark_route_policy_t pol;

    (void)state;
    memset(&pol, 0x5A, sizeof(pol));
    ark_route_policy_unset(&pol);
    assert_int_equal(pol.strategy, -1);
    assert_int_equal(pol.hedge, -1);
    assert_int_equal(pol.hedge_delay, 0);
    assert_int_equal(pol.max_attempts, 0);
    assert_int_equal(pol.deadline, 0);
}

static void policy_parse_options(void **state)
{
    static const char *const strategies[] = {
        "score", "fallback", "weighted", "least-latency", "cost",
    };
    apr_pool_t *p = *state;
    ark_route_policy_t pol;
    int i;

    /* nothing named: nothing changed */
    ark_route_policy_unset(&pol);
    assert_null(ark_route_policy_parse(&pol, 0, NULL, p));
    assert_int_equal(pol.strategy, -1);
    assert_int_equal(pol.hedge, -1);

    for (i = 0; i < 5; i++) {
        ark_route_policy_unset(&pol);
        assert_null(policy_parse_v(&pol, p,
                                   apr_pstrcat(p, "strategy=", strategies[i],
                                               NULL),
                                   NULL));
        assert_int_equal(pol.strategy, i);
        /* the others stay unset */
        assert_int_equal(pol.hedge, -1);
        assert_int_equal(pol.max_attempts, 0);
        assert_int_equal(pol.deadline, 0);
    }

    ark_route_policy_unset(&pol);
    assert_null(policy_parse_v(&pol, p, "strategy=cost", "hedge=800ms",
                               "attempts=4", "deadline=30s", NULL));
    assert_int_equal(pol.strategy, ARK_STRATEGY_COST);
    assert_int_equal(pol.hedge, 1);
    assert_int_equal(pol.hedge_delay, apr_time_from_msec(800));
    assert_int_equal(pol.max_attempts, 4);
    assert_int_equal(pol.deadline, apr_time_from_sec(30));

    /* hedge: off, on / p95 (the channel's P95 TTFB), or a delay */
    assert_null(policy_parse_v(&pol, p, "hedge=off", NULL));
    assert_int_equal(pol.hedge, 0);
    assert_int_equal(pol.hedge_delay, 0);
    assert_null(policy_parse_v(&pol, p, "hedge=1h", NULL));
    assert_int_equal(pol.hedge, 1);
    assert_int_equal(pol.hedge_delay, apr_time_from_sec(3600));
    assert_null(policy_parse_v(&pol, p, "hedge=on", NULL));
    assert_int_equal(pol.hedge, 1);
    assert_int_equal(pol.hedge_delay, 0);
    assert_null(policy_parse_v(&pol, p, "hedge=1ms", NULL));
    assert_int_equal(pol.hedge_delay, apr_time_from_msec(1));
    assert_null(policy_parse_v(&pol, p, "hedge=p95", NULL));
    assert_int_equal(pol.hedge, 1);
    assert_int_equal(pol.hedge_delay, 0);
    /* the last one counts, and off forgets the delay */
    assert_null(policy_parse_v(&pol, p, "hedge=2s", "hedge=off", NULL));
    assert_int_equal(pol.hedge, 0);
    assert_int_equal(pol.hedge_delay, 0);

    /* the bounds */
    assert_null(policy_parse_v(&pol, p, "attempts=1", "deadline=1ms", NULL));
    assert_int_equal(pol.max_attempts, 1);
    assert_int_equal(pol.deadline, apr_time_from_msec(1));
    assert_null(policy_parse_v(&pol, p, "attempts=10", "deadline=1h", NULL));
    assert_int_equal(pol.max_attempts, ARK_MAX_MAX_ATTEMPTS);
    assert_int_equal(pol.deadline, apr_time_from_sec(3600));
    /* fields not named are kept */
    assert_int_equal(pol.strategy, ARK_STRATEGY_COST);
    assert_int_equal(pol.hedge, 0);
}

static void policy_parse_errors(void **state)
{
    static const struct {
        const char *arg;
        const char *want;
    } cases[] = {
        { "fast", "ArkRoute: option 'fast' is not name=value" },
        { "strategy=random", "ArkRoute: unknown strategy 'random' (expected "
          "score, fallback, weighted, least-latency or cost)" },
        { "strategy=Cost", "ArkRoute: unknown strategy 'Cost' (expected "
          "score, fallback, weighted, least-latency or cost)" },
        { "strategy=", "ArkRoute: unknown strategy '' (expected score, "
          "fallback, weighted, least-latency or cost)" },
        { "hedge=0ms", "ArkRoute: hedge='0ms' must be off, p95, or a delay "
          "such as 800ms" },
        { "hedge=0", "ArkRoute: hedge='0' must be off, p95, or a delay such "
          "as 800ms" },
        { "hedge=61m", "ArkRoute: hedge='61m' must be off, p95, or a delay "
          "such as 800ms" },
        { "hedge=yes", "ArkRoute: hedge='yes' must be off, p95, or a delay "
          "such as 800ms" },
        { "hedge=", "ArkRoute: hedge='' must be off, p95, or a delay such "
          "as 800ms" },
        { "hedge=-5ms", "ArkRoute: hedge='-5ms' must be off, p95, or a "
          "delay such as 800ms" },
        { "attempts=0", "ArkRoute: attempts='0' is not a number between 1 "
          "and 10" },
        { "attempts=11", "ArkRoute: attempts='11' is not a number between 1 "
          "and 10" },
        { "attempts=abc", "ArkRoute: attempts='abc' is not a number between "
          "1 and 10" },
        { "attempts=", "ArkRoute: attempts='' is not a number between 1 and "
          "10" },
        { "attempts=-1", "ArkRoute: attempts='-1' is not a number between 1 "
          "and 10" },
        { "attempts=3x", "ArkRoute: attempts='3x' is not a number between 1 "
          "and 10" },
        { "deadline=0", "ArkRoute: deadline='0' is not a duration between "
          "1ms and 1h" },
        { "deadline=61m", "ArkRoute: deadline='61m' is not a duration "
          "between 1ms and 1h" },
        { "deadline=soon", "ArkRoute: deadline='soon' is not a duration "
          "between 1ms and 1h" },
        { "deadline=", "ArkRoute: deadline='' is not a duration between 1ms "
          "and 1h" },
        { "retries=3", "ArkRoute: unknown option 'retries' (expected "
          "strategy=, hedge=, attempts=, deadline=)" },
        { "Strategy=cost", "ArkRoute: unknown option 'Strategy' (expected "
          "strategy=, hedge=, attempts=, deadline=)" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_route_policy_t pol;
        const char *err;

        ark_route_policy_unset(&pol);
        /* a valid option before does not save a bad one */
        err = policy_parse_v(&pol, p, "attempts=2", cases[i].arg, NULL);
        if (!err || strcmp(err, cases[i].want)) {
            fail_msg("'%s': got '%s'", cases[i].arg, err ? err : "(null)");
        }
    }
}

static void assert_policy_equal(const ark_route_policy_t *a,
                                const ark_route_policy_t *b)
{
    assert_int_equal(a->strategy, b->strategy);
    assert_int_equal(a->hedge, b->hedge);
    assert_int_equal(a->hedge_delay, b->hedge_delay);
    assert_int_equal(a->max_attempts, b->max_attempts);
    assert_int_equal(a->deadline, b->deadline);
}

static void policy_merge_levels(void **state)
{
    ark_route_policy_t builtin, server, loc, alias, out;

    (void)state;
    builtin.strategy = ARK_STRATEGY_SCORE;
    builtin.hedge = 0;
    builtin.hedge_delay = 0;
    builtin.max_attempts = ARK_DEFAULT_MAX_ATTEMPTS;
    builtin.deadline = apr_time_from_sec(300);

    /* nothing set: the base */
    ark_route_policy_unset(&server);
    ark_route_policy_merge(&out, &builtin, &server);
    assert_policy_equal(&out, &builtin);

    /* each set field replaces the base's */
    server.strategy = ARK_STRATEGY_COST;
    server.hedge = 1;
    server.hedge_delay = apr_time_from_msec(500);
    ark_route_policy_merge(&out, &builtin, &server);
    assert_int_equal(out.strategy, ARK_STRATEGY_COST);
    assert_int_equal(out.hedge, 1);
    assert_int_equal(out.hedge_delay, apr_time_from_msec(500));
    assert_int_equal(out.max_attempts, ARK_DEFAULT_MAX_ATTEMPTS);
    assert_int_equal(out.deadline, apr_time_from_sec(300));

    /* a location turning hedging on with the P95 delay drops the
     * server's fixed delay: hedge and its delay go together */
    ark_route_policy_unset(&loc);
    loc.hedge = 1;
    loc.hedge_delay = 0;
    loc.max_attempts = 2;
    ark_route_policy_merge(&out, &out, &loc);    /* out may be base */
    assert_int_equal(out.strategy, ARK_STRATEGY_COST);
    assert_int_equal(out.hedge, 1);
    assert_int_equal(out.hedge_delay, 0);
    assert_int_equal(out.max_attempts, 2);
    assert_int_equal(out.deadline, apr_time_from_sec(300));

    /* an alias turning hedging off, with its own deadline and strategy */
    ark_route_policy_unset(&alias);
    alias.strategy = ARK_STRATEGY_FALLBACK;
    alias.hedge = 0;
    alias.deadline = apr_time_from_sec(20);
    ark_route_policy_merge(&alias, &out, &alias);  /* out may be over */
    assert_int_equal(alias.strategy, ARK_STRATEGY_FALLBACK);
    assert_int_equal(alias.hedge, 0);
    assert_int_equal(alias.hedge_delay, 0);
    assert_int_equal(alias.max_attempts, 2);
    assert_int_equal(alias.deadline, apr_time_from_sec(20));

    /* the base is not modified */
    assert_int_equal(builtin.strategy, ARK_STRATEGY_SCORE);
    assert_int_equal(server.max_attempts, 0);
}

/* ---------------------------------------------------- ArkScoreWeights */

static const char *weights_parse_v(ark_weights_t *w, apr_pool_t *p, ...)
{
    char *argv[MAX_ARGS];
    va_list ap;
    int argc;

    va_start(ap, p);
    argc = collect_args(argv, ap, p);
    va_end(ap);
    return ark_weights_parse(w, argc, argv, p);
}

static void weights_parse_valid(void **state)
{
    static const ark_weights_t defaults[] = {
        ARK_WEIGHTS_HIGH, ARK_WEIGHTS_NORMAL, ARK_WEIGHTS_LOW,
    };
    apr_pool_t *p = *state;
    ark_weights_t w;
    int i;

    assert_null(weights_parse_v(&w, p, "cost=0.8", "latency=0.05",
                                "reliability=0.15", NULL));
    assert_true(w.cost == 0.8);
    assert_true(w.latency == 0.05);
    assert_true(w.reliability == 0.15);

    /* a weight not named is 0, not the previous value */
    assert_null(weights_parse_v(&w, p, "latency=1", NULL));
    assert_true(w.cost == 0.0);
    assert_true(w.latency == 1.0);
    assert_true(w.reliability == 0.0);

    assert_null(weights_parse_v(&w, p, "reliability=0.5", "cost=0",
                                "cost=1.0", "latency=0.0", NULL));
    assert_true(w.cost == 1.0);
    assert_true(w.latency == 0.0);
    assert_true(w.reliability == 0.5);

    /* the built-in weights of each class add up to 1 */
    for (i = 0; i < 3; i++) {
        assert_true(fabs(defaults[i].cost + defaults[i].latency
                         + defaults[i].reliability - 1.0) < 1e-12);
    }
}

static void weights_parse_errors(void **state)
{
    static const char *const bad[] = {
        "cost=1.5", "cost=-0.1", "cost=", "cost", "speed=1", "cost=abc",
        "Cost=1", "cost=0.5x", "cost=nan", "latency=2", "reliability=-1",
        "costs=0.5", "=0.5", "latency", "cost=1e1",
    };
    apr_pool_t *p = *state;
    ark_weights_t w = { 0.25, 0.5, 0.25 };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_string_equal(
            weights_parse_v(&w, p, "reliability=0.3", bad[i], NULL),
            apr_psprintf(p, "ArkScoreWeights: '%s' is not cost=, latency= "
                         "or reliability= with a value between 0 and 1",
                         bad[i]));
    }
    assert_string_equal(weights_parse_v(&w, p, NULL),
                        "ArkScoreWeights: at least one weight must be above "
                        "0");
    assert_string_equal(weights_parse_v(&w, p, "cost=0", "latency=0",
                                        "reliability=0", NULL),
                        "ArkScoreWeights: at least one weight must be above "
                        "0");
    /* a refused line leaves the weights as they were */
    assert_true(w.cost == 0.25);
    assert_true(w.latency == 0.5);
    assert_true(w.reliability == 0.25);
}

/* --------------------------------------------------------- ArkCircuit */

static const char *breaker_parse_v(ark_breaker_conf_t *bc, apr_pool_t *p,
                                   ...)
{
    char *argv[MAX_ARGS];
    va_list ap;
    int argc;

    va_start(ap, p);
    argc = collect_args(argv, ap, p);
    va_end(ap);
    return ark_breaker_parse(bc, argc, argv, p);
}

static void breaker_parse_valid(void **state)
{
    apr_pool_t *p = *state;
    const ark_breaker_conf_t defaults = ARK_BREAKER_DEFAULTS;
    ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;

    assert_int_equal(defaults.failures, 5);
    assert_true(defaults.error_ratio == 0.5);
    assert_int_equal(defaults.min_requests, 10);
    assert_int_equal(defaults.window, apr_time_from_sec(60));
    assert_int_equal(defaults.cooldown, apr_time_from_sec(30));
    assert_int_equal(defaults.probes, 1);

    /* nothing named: the defaults stay */
    assert_null(ark_breaker_parse(&bc, 0, NULL, p));
    assert_int_equal(bc.failures, defaults.failures);
    assert_true(bc.error_ratio == defaults.error_ratio);
    assert_int_equal(bc.min_requests, defaults.min_requests);
    assert_int_equal(bc.window, defaults.window);
    assert_int_equal(bc.cooldown, defaults.cooldown);
    assert_int_equal(bc.probes, defaults.probes);

    assert_null(breaker_parse_v(&bc, p, "failures=3", "error-ratio=0.25",
                                "min-requests=20", "window=2m",
                                "cooldown=10s", "probes=2", NULL));
    assert_int_equal(bc.failures, 3);
    assert_true(bc.error_ratio == 0.25);
    assert_int_equal(bc.min_requests, 20);
    assert_int_equal(bc.window, apr_time_from_sec(120));
    assert_int_equal(bc.cooldown, apr_time_from_sec(10));
    assert_int_equal(bc.probes, 2);

    /* fields not named are kept */
    assert_null(breaker_parse_v(&bc, p, "cooldown=500ms", NULL));
    assert_int_equal(bc.cooldown, apr_time_from_msec(500));
    assert_int_equal(bc.failures, 3);
    assert_int_equal(bc.window, apr_time_from_sec(120));

    /* the bounds */
    assert_null(breaker_parse_v(&bc, p, "failures=1", "min-requests=1",
                                "probes=1", "error-ratio=1", "window=100ms",
                                "cooldown=100ms", NULL));
    assert_int_equal(bc.failures, 1);
    assert_int_equal(bc.min_requests, 1);
    assert_int_equal(bc.probes, 1);
    assert_true(bc.error_ratio == 1.0);
    assert_int_equal(bc.window, apr_time_from_msec(100));
    assert_int_equal(bc.cooldown, apr_time_from_msec(100));
    assert_null(breaker_parse_v(&bc, p, "failures=100000",
                                "min-requests=100000", "probes=100000",
                                "error-ratio=0.001", "window=1h",
                                "cooldown=1h", NULL));
    assert_int_equal(bc.failures, 100000);
    assert_int_equal(bc.min_requests, 100000);
    assert_int_equal(bc.probes, 100000);
    assert_true(bc.error_ratio == 0.001);
    assert_int_equal(bc.window, apr_time_from_sec(3600));
    assert_int_equal(bc.cooldown, apr_time_from_sec(3600));
}

static void breaker_parse_errors(void **state)
{
    static const struct {
        const char *arg;
        const char *want;
    } cases[] = {
        { "sensitive", "ArkCircuit: option 'sensitive' is not name=value" },
        { "failures=0", "ArkCircuit: failures='0' is not a number between 1 "
          "and 100000" },
        { "failures=100001", "ArkCircuit: failures='100001' is not a number "
          "between 1 and 100000" },
        { "failures=abc", "ArkCircuit: failures='abc' is not a number "
          "between 1 and 100000" },
        { "failures=", "ArkCircuit: failures='' is not a number between 1 "
          "and 100000" },
        { "failures=-3", "ArkCircuit: failures='-3' is not a number between "
          "1 and 100000" },
        { "min-requests=0", "ArkCircuit: min-requests='0' is not a number "
          "between 1 and 100000" },
        { "min-requests=2.5", "ArkCircuit: min-requests='2.5' is not a "
          "number between 1 and 100000" },
        { "probes=0", "ArkCircuit: probes='0' is not a number between 1 and "
          "100000" },
        { "probes=1000000", "ArkCircuit: probes='1000000' is not a number "
          "between 1 and 100000" },
        { "error-ratio=0", "ArkCircuit: error-ratio='0' is not a number in "
          "(0, 1] (1 disables the ratio rule)" },
        { "error-ratio=1.5", "ArkCircuit: error-ratio='1.5' is not a number "
          "in (0, 1] (1 disables the ratio rule)" },
        { "error-ratio=-0.5", "ArkCircuit: error-ratio='-0.5' is not a "
          "number in (0, 1] (1 disables the ratio rule)" },
        { "error-ratio=half", "ArkCircuit: error-ratio='half' is not a "
          "number in (0, 1] (1 disables the ratio rule)" },
        { "error-ratio=", "ArkCircuit: error-ratio='' is not a number in "
          "(0, 1] (1 disables the ratio rule)" },
        { "error-ratio=50%", "ArkCircuit: error-ratio='50%' is not a number "
          "in (0, 1] (1 disables the ratio rule)" },
        { "window=99ms", "ArkCircuit: window='99ms' is not a duration "
          "between 100ms and 1h" },
        { "window=61m", "ArkCircuit: window='61m' is not a duration between "
          "100ms and 1h" },
        { "window=0", "ArkCircuit: window='0' is not a duration between "
          "100ms and 1h" },
        { "window=abc", "ArkCircuit: window='abc' is not a duration between "
          "100ms and 1h" },
        { "cooldown=50ms", "ArkCircuit: cooldown='50ms' is not a duration "
          "between 100ms and 1h" },
        { "cooldown=2h", "ArkCircuit: cooldown='2h' is not a duration "
          "between 100ms and 1h" },
        { "cooldown=", "ArkCircuit: cooldown='' is not a duration between "
          "100ms and 1h" },
        { "retries=3", "ArkCircuit: unknown option 'retries' (expected "
          "failures=, error-ratio=, min-requests=, window=, cooldown=, "
          "probes=)" },
        { "failure=3", "ArkCircuit: unknown option 'failure' (expected "
          "failures=, error-ratio=, min-requests=, window=, cooldown=, "
          "probes=)" },
        { "min_requests=3", "ArkCircuit: unknown option 'min_requests' "
          "(expected failures=, error-ratio=, min-requests=, window=, "
          "cooldown=, probes=)" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
        const char *err = breaker_parse_v(&bc, p, "probes=2", cases[i].arg,
                                          NULL);

        if (!err || strcmp(err, cases[i].want)) {
            fail_msg("'%s': got '%s'", cases[i].arg, err ? err : "(null)");
        }
    }
}

/* ------------------------------------------------------ channel costs */

static apr_status_t json_cleanup(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

/* A request of body_len bytes whose JSON is `json` (NULL: no document).
 * The document is released with the pool. */
static ark_req_t *cost_req(apr_pool_t *p, apr_size_t body_len,
                           const char *json)
{
    ark_req_t *req = apr_pcalloc(p, sizeof(*req));

    req->endpoint = ARK_ENDPOINT_CHAT;
    req->body_len = body_len;
    if (json) {
        json_error_t jerr;

        req->root = json_loads(json, 0, &jerr);
        assert_non_null(req->root);
        apr_pool_cleanup_register(p, req->root, json_cleanup,
                                  apr_pool_cleanup_null);
    }
    return req;
}

static void assert_cost(double got, double want)
{
    if (fabs(got - want) > 1e-12 * (fabs(want) > 1 ? fabs(want) : 1)) {
        fail_msg("cost %.12g, want %.12g", got, want);
    }
}

static void channel_cost_estimates(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *models = apr_hash_make(p);
    ark_provider_t *a = provider_make(p, "openai", NULL, NULL);
    const ark_channel_t *priced, *coef, *dflt, *free_ch;

    assert_null(model_add_v(models, a, p, "m", "openai", "priced",
                            "price=2.50/10", "cost=7", NULL));
    assert_null(model_add_v(models, a, p, "m", "openai", "coef", "cost=0.5",
                            NULL));
    assert_null(model_add_v(models, a, p, "m", "openai", "dflt", NULL));
    assert_null(model_add_v(models, a, p, "m", "openai", "free",
                            "price=0/0", NULL));
    priced = channel_get(models, "m", 0);
    coef = channel_get(models, "m", 1);
    dflt = channel_get(models, "m", 2);
    free_ch = channel_get(models, "m", 3);

    /* 4000 bytes: about 1000 input tokens; max_tokens 500 output ones.
     * A price is per 1M tokens and wins over cost= */
    assert_cost(ark_channel_cost(priced,
                                 cost_req(p, 4000, "{\"max_tokens\":500}")),
                (2.5 * 1000 + 10 * 500) / 1e6);
    /* without a price, the coefficient times all tokens */
    assert_cost(ark_channel_cost(coef,
                                 cost_req(p, 4000, "{\"max_tokens\":500}")),
                0.5 * 1500 / 1e6);
    assert_cost(ark_channel_cost(dflt,
                                 cost_req(p, 4000, "{\"max_tokens\":500}")),
                1500 / 1e6);
    assert_cost(ark_channel_cost(free_ch,
                                 cost_req(p, 4000, "{\"max_tokens\":500}")),
                0.0);

    /* max_completion_tokens (the newer name) wins over max_tokens */
    assert_cost(ark_channel_cost(priced,
                                 cost_req(p, 4000,
                                          "{\"max_tokens\":500,"
                                          "\"max_completion_tokens\":100}")),
                (2.5 * 1000 + 10 * 100) / 1e6);
    assert_cost(ark_channel_cost(priced,
                                 cost_req(p, 4000,
                                          "{\"max_completion_tokens\":"
                                          "20000}")),
                (2.5 * 1000 + 10 * 20000) / 1e6);
    /* ... unless it is not an integer */
    assert_cost(ark_channel_cost(priced,
                                 cost_req(p, 4000,
                                          "{\"max_tokens\":500,"
                                          "\"max_completion_tokens\":\"x\"}")),
                (2.5 * 1000 + 10 * 500) / 1e6);

    /* no usable limit: 256 output tokens */
    {
        static const char *const no_limit[] = {
            "{}", "{\"max_tokens\":0}", "{\"max_tokens\":-5}",
            "{\"max_tokens\":1.5}", "{\"max_tokens\":\"500\"}",
            "{\"max_tokens\":null}", "{\"max_completion_tokens\":0}",
        };
        apr_size_t i;

        for (i = 0; i < sizeof(no_limit) / sizeof(no_limit[0]); i++) {
            assert_cost(ark_channel_cost(priced,
                                         cost_req(p, 4000, no_limit[i])),
                        (2.5 * 1000 + 10 * 256) / 1e6);
        }
    }
    /* no document: the body size only */
    assert_cost(ark_channel_cost(priced, cost_req(p, 400, NULL)),
                (2.5 * 100 + 10 * 256) / 1e6);
    assert_cost(ark_channel_cost(coef, cost_req(p, 0, NULL)),
                0.5 * 256 / 1e6);
    /* no request at all: 256 tokens each way */
    assert_cost(ark_channel_cost(priced, NULL), (2.5 + 10) * 256 / 1e6);
    assert_cost(ark_channel_cost(dflt, NULL), 512 / 1e6);

    /* a longer body costs more, on every channel */
    assert_true(ark_channel_cost(priced, cost_req(p, 40000, "{}"))
                > ark_channel_cost(priced, cost_req(p, 4000, "{}")));
    assert_true(ark_channel_cost(coef, cost_req(p, 40000, "{}"))
                > ark_channel_cost(coef, cost_req(p, 4000, "{}")));
    /* odd sizes are not rounded away */
    assert_cost(ark_channel_cost(dflt, cost_req(p, 6, "{}")),
                (1.5 + 256) / 1e6);
}

/* ---------------------------------------------------- provider types */

static void provider_type_table(void **state)
{
    apr_pool_t *p = *state;
    char *names = apr_pstrdup(p, ark_provider_type_names(p)), *name, *last;
    unsigned int both = ARK_EP_CHAT | ARK_EP_EMBEDDINGS;
    int n = 0;

    assert_ptr_equal(ark_provider_type_find("openai"), &ark_provider_openai);
    assert_ptr_equal(ark_provider_type_find("azure"), &ark_provider_azure);
    assert_string_equal(ark_provider_openai.name, "openai");
    assert_string_equal(ark_provider_azure.name, "azure");
    assert_int_equal(ark_provider_openai.endpoints & both, both);
    assert_int_equal(ark_provider_azure.endpoints & both, both);

    /* every listed type is found under its name, and is complete */
    assert_int_equal(strncmp(names, "openai, azure", 13), 0);
    for (name = apr_strtok(names, ", ", &last); name;
         name = apr_strtok(NULL, ", ", &last)) {
        const ark_provider_type_t *t = ark_provider_type_find(name);

        if (!t) {
            fail_msg("listed type '%s' not found", name);
        }
        assert_string_equal(t->name, name);
        assert_non_null(t->build_request);
        assert_non_null(t->parse_response);
        assert_non_null(t->stream_event);
        assert_non_null(t->map_error);
        assert_true(t->endpoints & ARK_EP_CHAT);
        n++;
    }
    assert_true(n >= 2);
    assert_null(ark_provider_type_find(""));
    assert_null(ark_provider_type_find("openai "));
    assert_null(ark_provider_type_find("OpenAI"));
    assert_null(ark_provider_type_find("bedrock"));
}

/* ------------------------------------------------------------ secrets */

#define SECRET "sk-proj-T3stS3cr3tV4lu3-0123456789abcdef"

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
        const char *path = ark_test_temp_file(contents[i],
                                              strlen(contents[i]), p);

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
    path = ark_test_temp_file("", 0, p);
    err = NULL;
    assert_int_not_equal(load(&prov, apr_pstrcat(p, "file:", path, NULL),
                              &err, p),
                         APR_SUCCESS);
    assert_null(prov.secret);
    assert_non_null(err);
    assert_non_null(strstr(err, path));

    path = ark_test_temp_file("\n" SECRET "\n", strlen(SECRET) + 2, p);
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
    path = ark_test_temp_file(big, big_len, p);
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
        ARK_TEST(duration_valid),
        ARK_TEST(duration_invalid),
        ARK_TEST(size_valid),
        ARK_TEST(size_invalid),
        ARK_TEST(name_valid_rules),
        ARK_TEST(provider_parse_full),
        ARK_TEST(provider_parse_minimal),
        ARK_TEST(provider_parse_options),
        ARK_TEST(provider_parse_errors),
        ARK_TEST(provider_parse_unknown_type),
        ARK_TEST(provider_parse_tags_and_caps),
        ARK_TEST(provider_parse_azure_options),
        ARK_TEST(provider_parse_plaintext),
        ARK_TEST(ca_file_checks),
        ARK_TEST(provider_parse_never_echoes_inline_key),
        ARK_TEST(model_add_channels),
        ARK_TEST(model_add_options),
        ARK_TEST(model_add_naming_and_duplicates),
        ARK_TEST(model_add_tags_and_caps),
        ARK_TEST(model_add_errors),
        ARK_TEST(policy_unset_all),
        ARK_TEST(policy_parse_options),
        ARK_TEST(policy_parse_errors),
        ARK_TEST(policy_merge_levels),
        ARK_TEST(weights_parse_valid),
        ARK_TEST(weights_parse_errors),
        ARK_TEST(breaker_parse_valid),
        ARK_TEST(breaker_parse_errors),
        ARK_TEST(channel_cost_estimates),
        ARK_TEST(provider_type_table),
        ARK_TEST(secret_none),
        ARK_TEST(secret_from_env),
        ARK_TEST(secret_env_errors),
        ARK_TEST(secret_from_file),
        ARK_TEST(secret_file_errors),
        ARK_TEST(secret_bad_source_not_echoed),
    };

    return ARK_TEST_RUN("ark_config", tests);
}
