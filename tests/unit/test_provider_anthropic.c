/* Unit tests for the "anthropic" provider type (ark_provider_anthropic.c).
 *
 * Driven through the ark_provider_anthropic table, as the handler uses it.
 * Golden files under tests/cases/translate/anthropic-<case>/ hold most of
 * the expectations, so a reader can see each translation whole:
 *   anthropic-response-<x>/  input.json (an Anthropic message) and
 *                            expected.json (the OpenAI chat.completion,
 *                            without the clock-dependent "created")
 *   anthropic-stream-<x>/    upstream.sse (an Anthropic event stream) and
 *                            expected.sse (what the client receives when it
 *                            asked for usage; without the usage chunk
 *                            otherwise)
 *   anthropic-<x>/           input.json (the client's request),
 *                            expected.json (the Anthropic body, or
 *                            {"ark_error": {status, code, param, message}})
 *                            and optionally channel.json ({"options": {}})
 * Every directory found is run, so adding a case needs no code. Streams
 * go through the real SSE parser whole, byte by byte and in random splits
 * (fixed seed). The rest (headers, options, malformed answers and events,
 * error mapping) is checked inline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "ark_provider.h"
#include "ark_request.h"
#include "ark_sse.h"

#ifndef ARK_CASES_DIR
#define ARK_CASES_DIR "tests/cases"
#endif
#define TRANSLATE_DIR ARK_CASES_DIR "/translate"

#define SECRET "sk-ant-api03-T3stS3cr3tV4lu3-0123456789abcdef"
#define MODEL  "claude-sonnet-4-5-20250929"

/* the values the gateway gives every stream in these tests (they are in
 * the expected.sse files) */
#define STREAM_ID      "chatcmpl-ark-test"
#define STREAM_CREATED 1730000000

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

/* ------------------------------------------------------------ helpers */

static ark_provider_t *provider_make(apr_pool_t *p, const char *secret)
{
    ark_provider_t *prov = apr_pcalloc(p, sizeof(*prov));

    prov->name = "claude";
    prov->type = &ark_provider_anthropic;
    prov->base_url = "https://api.anthropic.com/v1";
    prov->secret_source = secret ? "env:ANTHROPIC_API_KEY" : NULL;
    prov->secret = secret;
    return prov;
}

static void provider_option(ark_provider_t *prov, const char *name,
                            const char *value, apr_pool_t *p)
{
    const char *why = ark_provider_anthropic.check_option(name, value, p);

    if (why) {
        fail_msg("option %s=%s refused: %s", name, value, why);
    }
    if (!prov->options) {
        prov->options = apr_table_make(p, 2);
    }
    apr_table_set(prov->options, name, value);
}

static const char *read_file(const char *path, apr_size_t *plen,
                             apr_pool_t *p)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t n;
    char *buf;

    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        fail_msg("cannot open %s", path);
    }
    assert_int_equal(apr_file_info_get(&fi, APR_FINFO_SIZE, f), APR_SUCCESS);
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n + 1);
    assert_int_equal(apr_file_read_full(f, buf, n, &n), APR_SUCCESS);
    apr_file_close(f);
    buf[n] = '\0';
    if (plen) {
        *plen = n;
    }
    return buf;
}

static int file_exists(const char *path, apr_pool_t *p)
{
    apr_finfo_t fi;

    return apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS;
}

static json_t *load_json(const char *text, apr_size_t len, const char *what)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (!j) {
        fail_msg("%s is not JSON (%s): %.*s", what, jerr.text, (int)len,
                 text);
    }
    return j;
}

static json_t *load_json_file(const char *path, apr_pool_t *p)
{
    apr_size_t len;
    const char *text = read_file(path, &len, p);

    return load_json(text, len, path);
}

static const char *pretty(const json_t *j, apr_pool_t *p)
{
    char *s = json_dumps(j, JSON_INDENT(2));
    const char *out = apr_pstrdup(p, s ? s : "(null)");

    free(s);
    return out;
}

static void assert_json_equal(json_t *got, json_t *want, const char *what,
                              apr_pool_t *p)
{
    if (!json_equal(got, want)) {
        fail_msg("%s:\n--- got\n%s\n--- expected\n%s", what, pretty(got, p),
                 pretty(want, p));
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted names of the translate case directories starting with
 * prefix (and without any of the excluded prefixes). */
static apr_array_header_t *case_dirs(const char *prefix,
                                     const char *const *exclude,
                                     apr_pool_t *p)
{
    apr_array_header_t *names = apr_array_make(p, 16, sizeof(const char *));
    apr_dir_t *dir;
    apr_finfo_t fi;
    apr_status_t rv;

    if (apr_dir_open(&dir, TRANSLATE_DIR, p) != APR_SUCCESS) {
        fail_msg("cannot open %s", TRANSLATE_DIR);
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, dir))
           == APR_SUCCESS || rv == APR_INCOMPLETE) {
        int i, skip = 0;

        if (!fi.name || strncmp(fi.name, prefix, strlen(prefix))) {
            continue;
        }
        for (i = 0; exclude && exclude[i]; i++) {
            if (!strncmp(fi.name, exclude[i], strlen(exclude[i]))) {
                skip = 1;
            }
        }
        if (!skip) {
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, fi.name);
        }
    }
    apr_dir_close(dir);
    qsort(names->elts, (size_t)names->nelts, sizeof(const char *),
          cmp_names);
    return names;
}

static void parse_req(ark_req_t *req, const char *body, apr_size_t len,
                      apr_pool_t *p)
{
    ark_err_t err;

    if (ark_chat_req_parse(req, body, len, &err, p) != APR_SUCCESS) {
        fail_msg("test request refused: %s", err.message);
    }
}

static const char *header_at(const ark_upstream_req_t *u, int i)
{
    return APR_ARRAY_IDX(u->headers, i, const char *);
}

/* ---------------------------------------------------------- type table */

static void type_table(void **state)
{
    (void)state;
    assert_ptr_equal(ark_provider_type_find("anthropic"),
                     &ark_provider_anthropic);
    assert_string_equal(ark_provider_anthropic.name, "anthropic");
    assert_int_equal(ark_provider_anthropic.endpoints, ARK_EP_CHAT);
    assert_non_null(ark_provider_anthropic.check_option);
    assert_non_null(ark_provider_anthropic.build_request);
    assert_non_null(ark_provider_anthropic.parse_response);
    assert_non_null(ark_provider_anthropic.stream_event);
    assert_null(ark_provider_anthropic.stream_end);
    assert_non_null(ark_provider_anthropic.map_error);
}

/* ------------------------------------------------------- check_option */

static void check_option_values(void **state)
{
    static const struct {
        const char *name, *value, *want;    /* want NULL: accepted */
    } cases[] = {
        { "anthropic-version", "2023-06-01", NULL },
        { "anthropic-version", "2024-12-31", NULL },
        { "anthropic-version", "2023-6-01",
          "anthropic-version='2023-6-01' is not an Anthropic API version "
          "date such as 2023-06-01 (YYYY-MM-DD)" },
        { "anthropic-version", "2023-13-01",
          "anthropic-version='2023-13-01' is not an Anthropic API version "
          "date such as 2023-06-01 (YYYY-MM-DD)" },
        { "anthropic-version", "2023-06-00",
          "anthropic-version='2023-06-00' is not an Anthropic API version "
          "date such as 2023-06-01 (YYYY-MM-DD)" },
        { "anthropic-version", "2023-06-01x",
          "anthropic-version='2023-06-01x' is not an Anthropic API version "
          "date such as 2023-06-01 (YYYY-MM-DD)" },
        { "anthropic-version", "",
          "anthropic-version='' is not an Anthropic API version date such "
          "as 2023-06-01 (YYYY-MM-DD)" },
        { "max-tokens", "1", NULL },
        { "max-tokens", "8192", NULL },
        { "max-tokens", "1000000", NULL },
        { "max-tokens", "0",
          "max-tokens='0' must be a whole number from 1 to 1000000" },
        { "max-tokens", "1000001",
          "max-tokens='1000001' must be a whole number from 1 to 1000000" },
        { "max-tokens", "-5",
          "max-tokens='-5' must be a whole number from 1 to 1000000" },
        { "max-tokens", "4k",
          "max-tokens='4k' must be a whole number from 1 to 1000000" },
        { "max-tokens", "99999999999999999999",
          "max-tokens='99999999999999999999' must be a whole number from 1 "
          "to 1000000" },
        { "max-tokens", "",
          "max-tokens='' must be a whole number from 1 to 1000000" },
        { "api-version", "2023-06-01",
          "unknown option 'api-version' for type anthropic (expected "
          "anthropic-version= or max-tokens=)" },
        { "beta", "x",
          "unknown option 'beta' for type anthropic (expected "
          "anthropic-version= or max-tokens=)" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = ark_provider_anthropic.check_option(
            cases[i].name, cases[i].value, p);

        if (!cases[i].want) {
            if (got) {
                fail_msg("%s=%s refused: %s", cases[i].name, cases[i].value,
                         got);
            }
        }
        else if (!got || strcmp(got, cases[i].want)) {
            fail_msg("%s=%s: got '%s'", cases[i].name, cases[i].value,
                     got ? got : "(accepted)");
        }
    }
}

/* ---------------------------------------------- build_request (golden) */

static void run_build_case(const char *name, apr_pool_t *p)
{
    const char *dir = apr_pstrcat(p, TRANSLATE_DIR "/", name, NULL);
    const char *channel = apr_pstrcat(p, dir, "/channel.json", NULL);
    ark_provider_t *prov = provider_make(p, SECRET);
    json_t *want = load_json_file(apr_pstrcat(p, dir, "/expected.json",
                                              NULL), p);
    json_t *want_err = json_object_get(want, "ark_error");
    const char *input;
    char *before;
    apr_size_t input_len;
    ark_req_t req;
    ark_upstream_req_t up;
    ark_err_t err;
    apr_status_t rv;

    if (file_exists(channel, p)) {
        json_t *ch = load_json_file(channel, p);
        const char *k;
        json_t *v;

        json_object_foreach(json_object_get(ch, "options"), k, v) {
            provider_option(prov, k, json_string_value(v), p);
        }
        json_decref(ch);
    }
    input = read_file(apr_pstrcat(p, dir, "/input.json", NULL), &input_len,
                      p);
    parse_req(&req, input, input_len, p);
    before = json_dumps(req.root, JSON_COMPACT | JSON_SORT_KEYS);

    memset(&up, 0, sizeof(up));
    memset(&err, 0, sizeof(err));
    rv = ark_provider_anthropic.build_request(&up, prov, MODEL, &req, &err,
                                              p);
    if (want_err) {
        const char *msg = json_string_value(json_object_get(want_err,
                                                            "message"));

        if (rv == APR_SUCCESS) {
            fail_msg("%s: accepted, expected a %d", name,
                     (int)json_integer_value(json_object_get(want_err,
                                                             "status")));
        }
        assert_int_equal(err.status, json_integer_value(
                                         json_object_get(want_err,
                                                         "status")));
        assert_string_equal(err.type, "invalid_request_error");
        assert_string_equal(err.code, json_string_value(
                                          json_object_get(want_err,
                                                          "code")));
        assert_string_equal(err.param, json_string_value(
                                           json_object_get(want_err,
                                                           "param")));
        assert_non_null(err.message);
        if (msg) {
            assert_string_equal(err.message, msg);
        }
        else {
            /* the parser's words: only the start is ours */
            assert_non_null(strstr(err.message, "expected a JSON object ("));
        }
    }
    else {
        json_t *sent;

        if (rv != APR_SUCCESS) {
            fail_msg("%s: refused: %d %s (%s)", name, err.status,
                     err.message, err.param ? err.param : "-");
        }
        assert_non_null(up.body);
        assert_int_equal(up.body_len, strlen(up.body));
        sent = load_json(up.body, up.body_len, "upstream body");
        assert_json_equal(sent, want, name, p);
        json_decref(sent);
        assert_null(strstr(up.body, SECRET));
    }

    /* the client's document is exactly as it was */
    {
        char *after = json_dumps(req.root, JSON_COMPACT | JSON_SORT_KEYS);

        assert_string_equal(after, before);
        free(after);
    }
    free(before);
    json_decref(want);
}

static void build_golden(void **state)
{
    static const char *const exclude[] = { "anthropic-response-",
                                           "anthropic-stream-", NULL };
    apr_pool_t *p = *state;
    apr_array_header_t *names = case_dirs("anthropic-", exclude, p);
    int i;

    /* a wrong ARK_CASES_DIR must not pass by running nothing */
    assert_true(names->nelts >= 20);
    for (i = 0; i < names->nelts; i++) {
        apr_pool_t *sub;

        apr_pool_create(&sub, p);
        run_build_case(APR_ARRAY_IDX(names, i, const char *), sub);
        apr_pool_destroy(sub);
    }
}

/* -------------------------------------------- build_request (inline) */

static const char plain_body[] =
    "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\","
    "\"content\":\"Hello, Claude\"}]}";

static void build_url_and_headers(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, SECRET);
    ark_req_t req;
    ark_upstream_req_t up;
    ark_err_t err;

    parse_req(&req, plain_body, strlen(plain_body), p);
    assert_int_equal(ark_provider_anthropic.build_request(&up, prov, MODEL,
                                                          &req, &err, p),
                     APR_SUCCESS);
    assert_string_equal(up.url, "https://api.anthropic.com/v1/messages");
    assert_int_equal(up.headers->nelts, 4);
    assert_string_equal(header_at(&up, 0), "Content-Type: application/json");
    assert_string_equal(header_at(&up, 1), "Accept: application/json");
    assert_string_equal(header_at(&up, 2), "x-api-key: " SECRET);
    assert_string_equal(header_at(&up, 3), "anthropic-version: 2023-06-01");
    assert_null(strstr(up.body, "\"stream\""));
    assert_null(strstr(up.body, SECRET));
    assert_null(strstr(up.url, SECRET));
}

static void build_stream_headers_and_version(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, NULL);
    static const char body[] =
        "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"Hi\"}],\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true}}";
    ark_req_t req;
    ark_upstream_req_t up;
    ark_err_t err;
    json_t *sent;
    int i;

    provider_option(prov, "anthropic-version", "2024-10-22", p);
    prov->base_url = "http://127.0.0.1:8089/anthropic/v1";
    parse_req(&req, body, strlen(body), p);
    assert_int_equal(ark_provider_anthropic.build_request(&up, prov, MODEL,
                                                          &req, &err, p),
                     APR_SUCCESS);
    assert_string_equal(up.url, "http://127.0.0.1:8089/anthropic/v1/messages");
    /* keyless: no x-api-key header at all */
    assert_int_equal(up.headers->nelts, 3);
    assert_string_equal(header_at(&up, 0), "Content-Type: application/json");
    assert_string_equal(header_at(&up, 1), "Accept: text/event-stream");
    assert_string_equal(header_at(&up, 2), "anthropic-version: 2024-10-22");
    for (i = 0; i < up.headers->nelts; i++) {
        assert_null(strstr(header_at(&up, i), "x-api-key"));
    }
    sent = load_json(up.body, up.body_len, "upstream body");
    assert_true(json_is_true(json_object_get(sent, "stream")));
    assert_null(json_object_get(sent, "stream_options"));
    assert_int_equal(json_integer_value(json_object_get(sent, "max_tokens")),
                     4096);
    json_decref(sent);
    assert_int_equal(req.include_usage, 1);
}

static void build_refusals(void **state)
{
    /* requests the Messages API cannot express: a 400 naming the field */
    static const struct {
        const char *body, *code, *param;
    } cases[] = {
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"n\":3}", "unsupported_value", "n" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"max_tokens\":0}", "invalid_value", "max_tokens" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"max_completion_tokens\":\"many\"}", "invalid_value",
          "max_completion_tokens" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"stop\":[\"a\",1]}", "invalid_type", "stop" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"stop\":5}", "invalid_type", "stop" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"tools\":{}}", "invalid_type", "tools" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"tools\":[{\"type\":\"custom\",\"custom\":"
          "{\"name\":\"x\"}}]}", "unsupported_value", "tools[0].type" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{}}]}",
          "invalid_value", "tools[0].function.name" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":"
          "{\"name\":\"f\"}}],\"tool_choice\":\"sometimes\"}",
          "invalid_value", "tool_choice" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":"
          "{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"allowed_tools\","
          "\"function\":{\"name\":\"f\"}}}", "unsupported_value",
          "tool_choice.type" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "[{\"type\":\"image_url\",\"image_url\":{\"url\":"
          "\"ftp://example.com/a.png\"}}]}]}", "invalid_value",
          "messages[0].content[0].image_url.url" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "[{\"type\":\"image_url\",\"image_url\":{}}]}]}", "invalid_type",
          "messages[0].content[0]" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "[{\"text\":\"no type\"}]}]}", "invalid_type",
          "messages[0].content[0]" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "[{\"type\":\"text\",\"text\":7}]}]}", "invalid_type",
          "messages[0].content[0]" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"},{\"role\":\"assistant\",\"content\":[{\"type\":"
          "\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}",
          "unsupported_value", "messages[1].content[0]" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"system\",\"content\":"
          "[{\"type\":\"image_url\",\"image_url\":{\"url\":"
          "\"https://x/y.png\"}}]},{\"role\":\"user\",\"content\":\"x\"}]}",
          "unsupported_value", "messages[0].content[0]" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"type\":"
          "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}"
          "]}]}", "invalid_value", "messages[1].tool_calls[0].id" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\","
          "\"type\":\"function\",\"function\":{\"arguments\":\"{}\"}}]}]}",
          "invalid_value", "messages[1].tool_calls[0].function.name" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\","
          "\"type\":\"function\",\"function\":{\"name\":\"f\","
          "\"arguments\":{\"a\":1}}}]}]}", "invalid_type",
          "messages[1].tool_calls[0].function.arguments" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"},{\"role\":\"assistant\",\"tool_calls\":{}}]}",
          "invalid_type", "messages[1].tool_calls" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"x\"},{\"role\":\"tool\",\"content\":\"42\"}]}",
          "invalid_value", "messages[1].tool_call_id" },
        { "{\"model\":\"c\",\"messages\":[{\"role\":\"developer\","
          "\"content\":\"\"}]}", "invalid_value", "messages" },
    };
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, SECRET);
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_req_t req;
        ark_upstream_req_t up;
        ark_err_t err;

        memset(&up, 0, sizeof(up));
        memset(&err, 0, sizeof(err));
        parse_req(&req, cases[i].body, strlen(cases[i].body), p);
        if (ark_provider_anthropic.build_request(&up, prov, MODEL, &req,
                                                 &err, p) != APR_EINVAL) {
            fail_msg("case %u accepted: %s", (unsigned)i, cases[i].body);
        }
        if (err.status != 400 || strcmp(err.code, cases[i].code)
            || !err.param || strcmp(err.param, cases[i].param)) {
            fail_msg("case %u: %d %s %s (%s)", (unsigned)i, err.status,
                     err.code, err.param ? err.param : "-", err.message);
        }
        assert_string_equal(err.type, "invalid_request_error");
        assert_non_null(err.message);
        assert_null(up.body);
    }
}

static void build_embeddings_refused(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, SECRET);
    static const char body[] = "{\"model\":\"e\",\"input\":\"hello\"}";
    ark_req_t req;
    ark_upstream_req_t up;
    ark_err_t err;

    assert_int_equal(ark_embed_req_parse(&req, body, strlen(body), &err, p),
                     APR_SUCCESS);
    memset(&up, 0, sizeof(up));
    assert_int_equal(ark_provider_anthropic.build_request(&up, prov, MODEL,
                                                          &req, &err, p),
                     APR_EINVAL);
    assert_int_equal(err.status, 400);
    assert_null(up.body);
}

/* -------------------------------------------- parse_response (golden) */

static void run_response_case(const char *name, apr_pool_t *p)
{
    const char *dir = apr_pstrcat(p, TRANSLATE_DIR "/", name, NULL);
    json_t *want = load_json_file(apr_pstrcat(p, dir, "/expected.json",
                                              NULL), p);
    const char *input, *out = NULL;
    apr_size_t input_len, out_len = 0;
    ark_usage_t u, want_u;
    json_t *got, *created;
    json_int_t now = (json_int_t)apr_time_sec(apr_time_now());

    input = read_file(apr_pstrcat(p, dir, "/input.json", NULL), &input_len,
                      p);
    ark_usage_clear(&u);
    if (ark_provider_anthropic.parse_response(&out, &out_len, &u, NULL,
                                              input, input_len, p)
        != APR_SUCCESS) {
        fail_msg("%s: answer refused", name);
    }
    assert_int_equal(out_len, strlen(out));
    got = load_json(out, out_len, "translated answer");
    created = json_object_get(got, "created");
    assert_true(json_is_integer(created));
    assert_in_range(json_integer_value(created), now - 5, now + 5);
    json_object_del(got, "created");
    assert_json_equal(got, want, name, p);

    /* what the access log records is what the client was told */
    ark_usage_clear(&want_u);
    assert_true(ark_usage_from_openai(&want_u,
                                      json_object_get(want, "usage")));
    assert_int_equal(u.prompt_tokens, want_u.prompt_tokens);
    assert_int_equal(u.completion_tokens, want_u.completion_tokens);
    assert_int_equal(u.total_tokens, want_u.total_tokens);
    assert_int_equal(u.cached_tokens, want_u.cached_tokens);
    json_decref(got);
    json_decref(want);
}

static void parse_golden(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *names = case_dirs("anthropic-response-", NULL, p);
    int i;

    assert_true(names->nelts >= 5);
    for (i = 0; i < names->nelts; i++) {
        run_response_case(APR_ARRAY_IDX(names, i, const char *), p);
    }
}

/* -------------------------------------------- parse_response (inline) */

static const char *message_with(apr_pool_t *p, const char *id,
                                const char *stop, const char *usage)
{
    return apr_psprintf(p, "{\"id\":%s,\"type\":\"message\",\"role\":"
                        "\"assistant\",\"model\":\"" MODEL "\",\"content\":"
                        "[{\"type\":\"text\",\"text\":\"ok\"}],"
                        "\"stop_reason\":%s,\"stop_sequence\":null%s%s}",
                        id, stop, usage ? ",\"usage\":" : "",
                        usage ? usage : "");
}

static json_t *parse_ok(const char *body, ark_usage_t *u, apr_pool_t *p)
{
    const char *out = NULL;
    apr_size_t out_len = 0;

    ark_usage_clear(u);
    if (ark_provider_anthropic.parse_response(&out, &out_len, u, NULL, body,
                                              strlen(body), p)
        != APR_SUCCESS) {
        fail_msg("refused: %s", body);
    }
    return load_json(out, out_len, "translated answer");
}

static void parse_finish_reasons(void **state)
{
    static const char *const map[][2] = {
        { "\"end_turn\"", "stop" },
        { "\"stop_sequence\"", "stop" },
        { "\"max_tokens\"", "length" },
        { "\"tool_use\"", "tool_calls" },
        { "\"refusal\"", "content_filter" },
        { "\"pause_turn\"", "stop" },
        { "\"model_context_window_exceeded\"", "length" },
        { "\"something_new\"", "stop" },
        { "null", "stop" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        ark_usage_t u;
        json_t *got = parse_ok(message_with(p, "\"msg_01\"", map[i][0],
                                            NULL), &u, p);
        json_t *choice = json_array_get(json_object_get(got, "choices"), 0);

        assert_string_equal(json_string_value(json_object_get(
                                choice, "finish_reason")), map[i][1]);
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(choice, "message"),
                                "content")), "ok");
        json_decref(got);
    }
}

static void parse_ids_and_missing_usage(void **state)
{
    static const char *const odd_ids[] = {
        "null", "\"\"", "42", "\"msg 01\"", "\"msg/../01\"", NULL,
    };
    apr_size_t n = sizeof(odd_ids) / sizeof(odd_ids[0]), i;
    apr_pool_t *p = *state;
    char long_id[200];
    ark_usage_t u;
    json_t *got;

    /* the last case, "msg_aaa...": longer than any id worth keeping */
    memset(long_id, 'a', sizeof(long_id));
    memcpy(long_id, "\"msg_", 5);
    long_id[sizeof(long_id) - 2] = '"';
    long_id[sizeof(long_id) - 1] = '\0';
    for (i = 0; i < n; i++) {
        const char *id;

        got = parse_ok(message_with(p, odd_ids[i] ? odd_ids[i] : long_id,
                                    "\"end_turn\"",
                                    "{\"input_tokens\":3,"
                                    "\"output_tokens\":1}"), &u, p);
        id = json_string_value(json_object_get(got, "id"));
        /* a fresh id instead */
        assert_non_null(id);
        assert_int_equal(strlen(id), 9 + 24);
        assert_memory_equal(id, "chatcmpl-", 9);
        assert_int_equal(u.prompt_tokens, 3);
        assert_int_equal(u.completion_tokens, 1);
        assert_int_equal(u.total_tokens, 4);
        assert_int_equal(u.cached_tokens, 0);
        json_decref(got);
    }

    /* no usage reported: unknown, and no invented usage for the client */
    got = parse_ok(message_with(p, "\"msg_02\"", "\"end_turn\"", NULL), &u,
                   p);
    assert_string_equal(json_string_value(json_object_get(got, "id")),
                        "chatcmpl-msg_02");
    assert_null(json_object_get(got, "usage"));
    assert_int_equal(u.prompt_tokens, -1);
    assert_int_equal(u.completion_tokens, -1);
    assert_int_equal(u.total_tokens, -1);
    assert_int_equal(u.cached_tokens, -1);
    json_decref(got);
}

static void parse_rejects_malformed(void **state)
{
    static const char *const bodies[] = {
        "",
        "not json",
        "<html><head><title>502 Bad Gateway</title></head></html>",
        "[]",
        "null",
        "{}",
        /* an OpenAI answer is not an Anthropic one */
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\","
        "\"choices\":[]}",
        "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
        "\"message\":\"Internal server error\"}}",
        "{\"type\":\"message\",\"content\":null}",
        "{\"type\":\"message\",\"content\":{}}",
        "{\"type\":\"message\"}",
        "{\"type\":\"messages\",\"content\":[]}",
        "{\"type\":\"message\",\"content\":[42]}",
        "{\"type\":\"message\",\"content\":[{\"text\":\"no type\"}]}",
        "{\"type\":\"message\",\"content\":[{\"type\":\"text\"}]}",
        "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":1}]}",
        "{\"type\":\"message\",\"content\":[{\"type\":\"tool_use\","
        "\"name\":\"f\",\"input\":{}}]}",
        "{\"type\":\"message\",\"content\":[{\"type\":\"tool_use\","
        "\"id\":\"t\",\"input\":{}}]}",
        "{\"type\":\"message\",\"content\":[{\"type\":\"tool_use\","
        "\"id\":\"t\",\"name\":\"f\",\"input\":[1]}]}",
        "{\"type\":\"message\",\"content\":[]",
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        const char *out = NULL;
        apr_size_t out_len = 0;
        ark_usage_t u;

        ark_usage_clear(&u);
        if (ark_provider_anthropic.parse_response(&out, &out_len, &u, NULL,
                                                  bodies[i],
                                                  strlen(bodies[i]), p)
            != APR_EINVAL) {
            fail_msg("accepted: %s", bodies[i]);
        }
        assert_int_equal(u.prompt_tokens, -1);
    }
}

static void parse_uses_len_not_nul(void **state)
{
    apr_pool_t *p = *state;
    const char *msg = message_with(p, "\"msg_03\"", "\"end_turn\"",
                                   "{\"input_tokens\":3,\"output_tokens\":1}");
    char *buf = apr_pstrcat(p, msg, "TRAILING", NULL);
    const char *out = NULL;
    apr_size_t out_len = 0;
    ark_usage_t u;

    ark_usage_clear(&u);
    assert_int_equal(ark_provider_anthropic.parse_response(
                         &out, &out_len, &u, NULL, buf, strlen(msg), p),
                     APR_SUCCESS);
    assert_int_equal(u.total_tokens, 4);
}

/* ------------------------------------------------------- stream_event */

typedef struct {
    apr_pool_t *pool;
    apr_array_header_t *out;    /* const char *, one per emit call */
    const char *all;            /* everything emitted, concatenated */
    apr_status_t fail_with;     /* non-zero: the client is gone */
} client_t;

static apr_status_t record_emit(void *ctx, const char *buf, apr_size_t len)
{
    client_t *c = ctx;
    const char *copy;

    if (c->fail_with) {
        return c->fail_with;
    }
    copy = apr_pstrmemdup(c->pool, buf, len);
    /* one complete event per call: the buffer length is exact */
    assert_int_equal(strlen(copy), len);
    assert_true(len > 8 && !strncmp(copy, "data: ", 6)
                && !strcmp(copy + len - 2, "\n\n"));
    APR_ARRAY_PUSH(c->out, const char *) = copy;
    c->all = apr_pstrcat(c->pool, c->all, copy, NULL);
    return APR_SUCCESS;
}

static void stream_init(ark_stream_t *st, client_t *c, int wants_usage,
                        apr_pool_t *p)
{
    memset(c, 0, sizeof(*c));
    c->pool = p;
    c->out = apr_array_make(p, 8, sizeof(const char *));
    c->all = "";
    memset(st, 0, sizeof(*st));
    st->upstream_model = MODEL;
    st->id = STREAM_ID;
    st->created = apr_time_from_sec(STREAM_CREATED);
    st->client_wants_usage = wants_usage;
    ark_usage_clear(&st->usage);
    st->emit = record_emit;
    st->emit_ctx = c;
    apr_pool_create(&st->rpool, p);
    apr_pool_create(&st->pool, st->rpool);
}

static apr_status_t pipe_event(void *ctx, const ark_sse_event_t *ev)
{
    ark_stream_t *st = ctx;
    apr_status_t rv = ark_provider_anthropic.stream_event(st, ev);

    apr_pool_clear(st->pool);
    return rv;
}

/* Feeds text through a fresh SSE parser in one piece. */
static apr_status_t feed(ark_stream_t *st, const char *text)
{
    ark_sse_parser_t *sp = ark_sse_parser_make(st->rpool, 0);

    return ark_sse_feed(sp, text, strlen(text), pipe_event, st);
}

/* expected.sse without the usage chunk (the one with "choices":[]). */
static const char *without_usage_chunk(const char *sse, apr_pool_t *p)
{
    const char *out = "";
    const char *at = sse;

    while (*at) {
        const char *end = strstr(at, "\n\n");
        const char *ev;

        assert_non_null(end);
        ev = apr_pstrmemdup(p, at, (apr_size_t)(end - at) + 2);
        if (!strstr(ev, "\"choices\":[],")) {
            out = apr_pstrcat(p, out, ev, NULL);
        }
        at = end + 2;
    }
    return out;
}

/* A small fixed-seed generator: the same splits on every run. */
static unsigned int next_rand(unsigned int *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

typedef struct {
    const char *name;
    long prompt, completion, cached;
} stream_case_t;

static void run_stream_case(const stream_case_t *sc, apr_pool_t *p)
{
    const char *dir = apr_pstrcat(p, TRANSLATE_DIR "/anthropic-stream-",
                                  sc->name, NULL);
    apr_size_t len;
    const char *upstream = read_file(apr_pstrcat(p, dir, "/upstream.sse",
                                                 NULL), &len, p);
    const char *with_usage = read_file(apr_pstrcat(p, dir, "/expected.sse",
                                                   NULL), NULL, p);
    unsigned int seed = 20241127;
    int wants, mode;

    assert_non_null(strstr(with_usage, "\"choices\":[],\"usage\":"));
    for (wants = 0; wants < 2; wants++) {
        const char *want = wants ? with_usage
                                 : without_usage_chunk(with_usage, p);

        /* mode 0: whole; 1: byte by byte; 2..101: random splits */
        for (mode = 0; mode < 102; mode++) {
            apr_pool_t *sub;
            ark_sse_parser_t *sp;
            ark_stream_t st;
            client_t c;
            apr_size_t at = 0;

            apr_pool_create(&sub, p);
            stream_init(&st, &c, wants, sub);
            sp = ark_sse_parser_make(sub, 0);
            while (at < len) {
                apr_size_t n = mode == 0 ? len
                               : mode == 1 ? 1
                               : 1 + next_rand(&seed) % 97;

                if (n > len - at) {
                    n = len - at;
                }
                if (ark_sse_feed(sp, upstream + at, n, pipe_event, &st)
                    != APR_SUCCESS) {
                    fail_msg("%s: mode %d: feed failed at %lu", sc->name,
                             mode, (unsigned long)at);
                }
                at += n;
            }
            assert_false(ark_sse_pending(sp));
            assert_int_equal(st.done, 1);
            if (strcmp(c.all, want)) {
                fail_msg("%s (mode %d, usage %d):\n--- got\n%s--- "
                         "expected\n%s", sc->name, mode, wants, c.all, want);
            }
            assert_int_equal(st.events, (apr_size_t)c.out->nelts);
            assert_int_equal(st.usage.prompt_tokens, sc->prompt);
            assert_int_equal(st.usage.completion_tokens, sc->completion);
            assert_int_equal(st.usage.total_tokens,
                             sc->prompt + sc->completion);
            assert_int_equal(st.usage.cached_tokens, sc->cached);
            assert_non_null(st.state);
            apr_pool_destroy(sub);
        }
    }
}

static void stream_golden_in_any_split(void **state)
{
    static const stream_case_t cases[] = {
        { "text", 472 + 2048, 15, 2048 },
        { "tool", 472, 89, 0 },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_stream_case(&cases[i], p);
    }
}

#define EV_START \
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":" \
    "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\"," \
    "\"content\":[],\"model\":\"" MODEL "\",\"stop_reason\":null," \
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":25," \
    "\"output_tokens\":1}}}\n\n"
#define EV_TEXT_START \
    "event: content_block_start\ndata: {\"type\":\"content_block_start\"," \
    "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
#define EV_TEXT(s) \
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"," \
    "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" s "\"}}\n\n"
#define EV_STOP \
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

static void stream_error_event(void **state)
{
    /* Anthropic fails mid-stream with an error event (HTTP 200 already
     * sent): the gateway must hear APR_EGENERAL, and nothing more is
     * emitted */
    static const char *const errors[] = {
        "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": "
        "\"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        /* without an event name, by its type */
        "data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\","
        "\"message\":\"Internal server error\"}}\n\n",
        /* an error event is an error whatever its data */
        "event: error\ndata: Overloaded\n\n",
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        ark_stream_t st;
        client_t c;

        stream_init(&st, &c, 1, p);
        assert_int_equal(feed(&st, EV_START EV_TEXT_START EV_TEXT("Hi")),
                         APR_SUCCESS);
        assert_int_equal(c.out->nelts, 2);
        assert_int_equal(feed(&st, errors[i]), APR_EGENERAL);
        assert_int_equal(c.out->nelts, 2);
        assert_int_equal(st.events, 2);
        assert_int_equal(st.done, 0);
        /* the input tokens were still recorded */
        assert_int_equal(st.usage.prompt_tokens, 25);
    }
}

static void stream_malformed_events(void **state)
{
    static const char *const events[] = {
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\""
        ",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\n\n",
        "event: content_block_delta\ndata: not json\n\n",
        "event: ping\ndata: [1,2,3]\n\n",
        "event: something_new\ndata: {oops}\n\n",
        "data: {\"no\":\"type\"}\n\n",
        "data: \"message_stop\"\n\n",
        "event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":1,\"content_block\":{\"type\":\"tool_use\","
        "\"name\":\"f\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\""
        ",\"index\":0,\"delta\":{\"type\":\"text_delta\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\""
        ",\"index\":-1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}"
        "\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\""
        ",\"index\":0,\"delta\":{\"text\":\"x\"}}\n\n",
        /* arguments for a block that is not a tool_use */
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\""
        ",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{}\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\","
        "\"delta\":\"end_turn\"}\n\n",
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        ark_stream_t st;
        client_t c;

        stream_init(&st, &c, 1, p);
        assert_int_equal(feed(&st, EV_START EV_TEXT_START), APR_SUCCESS);
        assert_int_equal(c.out->nelts, 1);
        if (feed(&st, events[i]) != APR_EINVAL) {
            fail_msg("accepted: %s", events[i]);
        }
        assert_int_equal(c.out->nelts, 1);
        assert_int_equal(st.done, 0);
    }
}

static void stream_quiet_events(void **state)
{
    /* ping, block stops, thinking and event types added later say
     * nothing to the client */
    apr_pool_t *p = *state;
    ark_stream_t st;
    client_t c;

    stream_init(&st, &c, 0, p);
    assert_int_equal(feed(&st,
        "event: ping\ndata: {\"type\": \"ping\"}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":0,\"content_block\":{\"type\":\"redacted_thinking\","
        "\"data\":\"EmwKAhgBEgy3va3pzix/LafPsn4a\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
        "\"index\":0}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\""
        ",\"index\":1,\"delta\":{\"type\":\"citations_delta\",\"citation\":"
        "{\"type\":\"char_location\",\"cited_text\":\"x\"}}}\n\n"
        "event: something_new\ndata: {\"type\":\"something_new\"}\n\n"
        ": comment\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
        "{\"stop_reason\":null},\"usage\":{\"output_tokens\":3}}\n\n"),
        APR_SUCCESS);
    assert_int_equal(c.out->nelts, 0);
    assert_int_equal(st.events, 0);
    assert_int_equal(st.done, 0);
    /* usage without message_start: outputs known, inputs not */
    assert_int_equal(st.usage.completion_tokens, 3);
    assert_int_equal(st.usage.prompt_tokens, -1);
    assert_int_equal(st.usage.total_tokens, -1);
}

static void stream_cumulative_usage_in_message_delta(void **state)
{
    /* newer API versions repeat the input counts in message_delta */
    apr_pool_t *p = *state;
    ark_stream_t st;
    client_t c;

    stream_init(&st, &c, 1, p);
    assert_int_equal(feed(&st, EV_START EV_TEXT_START EV_TEXT("Hi")
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
        "{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":"
        "{\"input_tokens\":30,\"cache_creation_input_tokens\":5,"
        "\"cache_read_input_tokens\":100,\"output_tokens\":7}}\n\n"
        EV_STOP), APR_SUCCESS);
    assert_int_equal(st.done, 1);
    assert_int_equal(c.out->nelts, 5);
    assert_non_null(strstr(APR_ARRAY_IDX(c.out, 2, const char *),
                           "\"delta\":{},\"finish_reason\":\"length\"}"));
    assert_int_equal(st.usage.prompt_tokens, 135);
    assert_int_equal(st.usage.completion_tokens, 7);
    assert_int_equal(st.usage.total_tokens, 142);
    assert_int_equal(st.usage.cached_tokens, 100);
    assert_non_null(strstr(APR_ARRAY_IDX(c.out, 3, const char *),
                           "\"usage\":{\"prompt_tokens\":135,"
                           "\"completion_tokens\":7,\"total_tokens\":142,"
                           "\"prompt_tokens_details\":{\"cached_tokens\":"
                           "100}}"));
    assert_string_equal(APR_ARRAY_IDX(c.out, 4, const char *),
                        "data: [DONE]\n\n");
}

static void stream_nothing_after_stop(void **state)
{
    apr_pool_t *p = *state;
    ark_stream_t st;
    client_t c;

    stream_init(&st, &c, 0, p);
    assert_int_equal(feed(&st, EV_START EV_STOP), APR_SUCCESS);
    assert_int_equal(st.done, 1);
    assert_int_equal(c.out->nelts, 2);
    assert_int_equal(feed(&st, EV_TEXT("late") EV_STOP
                               "event: error\ndata: {}\n\n"),
                     APR_SUCCESS);
    assert_int_equal(c.out->nelts, 2);
    assert_string_equal(c.all,
        "data: {\"id\":\"" STREAM_ID "\",\"object\":\"chat.completion.chunk\","
        "\"created\":1730000000,\"model\":\"" MODEL "\",\"choices\":"
        "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
        "\"finish_reason\":null}]}\n\ndata: [DONE]\n\n");
}

static void stream_streams_are_independent(void **state)
{
    /* the tool mapping lives in each stream's own state */
    apr_pool_t *p = *state;
    static const char tool0[] =
        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
        "\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":"
        "\"toolu_1\",\"name\":\"f\",\"input\":{}}}\n\n";
    static const char args3[] =
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\""
        ",\"index\":3,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{}\"}}\n\n";
    ark_stream_t a, b;
    client_t ca, cb;

    stream_init(&a, &ca, 0, p);
    stream_init(&b, &cb, 0, p);
    assert_int_equal(feed(&a, EV_START), APR_SUCCESS);
    assert_int_equal(feed(&a, tool0), APR_SUCCESS);
    assert_non_null(a.state);
    assert_null(b.state);
    assert_int_equal(feed(&a, args3), APR_SUCCESS);
    assert_non_null(strstr(ca.all, "\"tool_calls\":[{\"index\":0,"
                                   "\"function\":{\"arguments\":\"{}\"}}]"));
    /* block 3 is no tool in stream b */
    assert_int_equal(feed(&b, args3), APR_EINVAL);
    /* a second start for the same block is malformed */
    assert_int_equal(feed(&a, tool0), APR_EINVAL);
}

static void stream_emitter_failure(void **state)
{
    apr_pool_t *p = *state;
    ark_stream_t st;
    client_t c;

    stream_init(&st, &c, 1, p);
    c.fail_with = APR_ECONNABORTED;
    assert_int_equal(feed(&st, EV_START), APR_ECONNABORTED);
    /* the usage was still recorded for the access log */
    assert_int_equal(st.usage.prompt_tokens, 25);
    assert_int_equal(feed(&st, EV_TEXT("x")), APR_ECONNABORTED);
    assert_int_equal(feed(&st, EV_STOP), APR_ECONNABORTED);
    assert_int_equal(c.out->nelts, 0);
}

/* ---------------------------------------------------------- map_error */

/* Anthropic error bodies, as the API returns them. */
static const char body_leak[] =
    "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
    "\"message\":\"x-api-key " SECRET " is malformed\"}}";

typedef struct {
    int upstream;
    const char *body;
    int status;
    const char *type;
    const char *code;
    const char *message;
} map_case_t;

static const map_case_t map_cases[] = {
    { 400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
           "\"message\":\"messages: text content blocks must be non-empty\"},"
           "\"request_id\":\"req_011CSHoEeqs5C35K2UUqR7Fy\"}",
      400, "invalid_request_error", "upstream_rejected_request",
      "messages: text content blocks must be non-empty" },
    { 400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
           "\"message\":\"prompt is too long: 210000 tokens > 200000 "
           "maximum\"}}",
      400, "invalid_request_error", "upstream_rejected_request",
      "prompt is too long: 210000 tokens > 200000 maximum" },
    { 400, body_leak, 400, "invalid_request_error",
      "upstream_rejected_request",
      "The upstream provider rejected the request as invalid." },
    { 400, NULL, 400, "invalid_request_error", "upstream_rejected_request",
      "The upstream provider rejected the request as invalid." },
    { 401, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
           "\"message\":\"invalid x-api-key\"}}",
      502, "upstream_error", "upstream_auth_failed",
      "The upstream provider rejected the gateway's credentials." },
    { 403, "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\","
           "\"message\":\"Your API key does not have permission to use the "
           "specified resource.\"}}",
      502, "upstream_error", "upstream_auth_failed",
      "The upstream provider rejected the gateway's credentials." },
    { 404, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\","
           "\"message\":\"model: claude-9\"}}",
      502, "upstream_error", "upstream_not_found",
      "The upstream provider does not know the configured model or "
      "endpoint." },
    { 413, "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\","
           "\"message\":\"Request exceeds the maximum allowed number of "
           "bytes.\"}}",
      413, "invalid_request_error", "request_too_large",
      "Request exceeds the maximum allowed number of bytes." },
    { 429, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
           "\"message\":\"Number of request tokens has exceeded your "
           "per-minute rate limit.\"}}",
      429, "rate_limit_error", "upstream_rate_limited",
      "The upstream provider is rate limiting requests; retry later." },
    { 500, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
           "\"message\":\"Internal server error\"}}",
      502, "upstream_error", "upstream_error",
      "The upstream provider failed (HTTP 500)." },
    { 503, "<html>503 Service Unavailable</html>", 502, "upstream_error",
      "upstream_error", "The upstream provider failed (HTTP 503)." },
    { 529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
           "\"message\":\"Overloaded\"}}",
      502, "upstream_error", "upstream_error",
      "The upstream provider is overloaded (HTTP 529); retry later." },
    { 529, "", 502, "upstream_error", "upstream_error",
      "The upstream provider is overloaded (HTTP 529); retry later." },
};

static void map_error_statuses(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, SECRET);
    apr_size_t i;

    for (i = 0; i < sizeof(map_cases) / sizeof(map_cases[0]); i++) {
        const map_case_t *mc = &map_cases[i];
        ark_err_t err;
        const char *json;

        memset(&err, 0x5a, sizeof(err));
        ark_provider_anthropic.map_error(&err, prov, mc->upstream, mc->body,
                                         mc->body ? strlen(mc->body) : 0, p);
        if (err.status != mc->status || strcmp(err.code, mc->code)
            || strcmp(err.message, mc->message)) {
            fail_msg("case %u (HTTP %d): %d %s '%s'", (unsigned)i,
                     mc->upstream, err.status, err.code, err.message);
        }
        assert_string_equal(err.type, mc->type);
        assert_null(err.param);
        assert_int_equal(err.retry_after, 0);
        json = ark_err_json(&err, p);
        assert_null(strstr(json, SECRET));
        assert_null(strstr(json, "sk-ant"));
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(type_table),
        T(check_option_values),
        T(build_golden),
        T(build_url_and_headers),
        T(build_stream_headers_and_version),
        T(build_refusals),
        T(build_embeddings_refused),
        T(parse_golden),
        T(parse_finish_reasons),
        T(parse_ids_and_missing_usage),
        T(parse_rejects_malformed),
        T(parse_uses_len_not_nul),
        T(stream_golden_in_any_split),
        T(stream_error_event),
        T(stream_malformed_events),
        T(stream_quiet_events),
        T(stream_cumulative_usage_in_message_delta),
        T(stream_nothing_after_stop),
        T(stream_streams_are_independent),
        T(stream_emitter_failure),
        T(map_error_statuses),
    };
#undef T
    int rc;

    apr_initialize();
    apr_pool_create(&root_pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(root_pool);
    apr_terminate();
    return rc;
}
