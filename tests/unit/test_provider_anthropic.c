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
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "ark_provider.h"
#include "ark_request.h"
#include "ark_sse.h"
#include "ark_testutil.h"

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

/* ------------------------------------------------------------ helpers */

static ark_provider_t *provider_make(apr_pool_t *p, const char *secret)
{
    return ark_test_provider_make(&ark_provider_anthropic, "claude",
                                  "https://api.anthropic.com/v1", secret, p);
}

static json_t *load_json(const char *text, apr_size_t len, const char *what)
{
    return ark_test_json_parse(text, len, 0, what, NULL);
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
    ark_provider_t *prov = provider_make(p, SECRET);
    json_t *want = ark_test_fixture_json(dir, "expected.json", 0, p);
    json_t *want_err = json_object_get(want, "ark_error");
    const char *input;
    char *before;
    apr_size_t input_len;
    ark_req_t req;
    ark_upstream_req_t up;
    ark_err_t err;
    apr_status_t rv;

    ark_test_provider_options_file(prov, apr_pstrcat(p, dir, "/channel.json",
                                                     NULL), p);
    input = ark_test_fixture_read(dir, "input.json", &input_len, p);
    ark_test_chat_parse(&req, input, input_len, p);
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
        ark_test_assert_json_equal(sent, want, name, p);
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
    apr_array_header_t *names = ark_test_case_dirs(TRANSLATE_DIR,
                                                   "anthropic-", exclude, p);
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

    ark_test_chat_parse(&req, plain_body, strlen(plain_body), p);
    assert_int_equal(ark_provider_anthropic.build_request(&up, prov, MODEL,
                                                          &req, &err, p),
                     APR_SUCCESS);
    assert_string_equal(up.url, "https://api.anthropic.com/v1/messages");
    assert_int_equal(up.headers->nelts, 4);
    assert_string_equal(ark_test_header_at(&up, 0),
                        "Content-Type: application/json");
    assert_string_equal(ark_test_header_at(&up, 1),
                        "Accept: application/json");
    assert_string_equal(ark_test_header_at(&up, 2), "x-api-key: " SECRET);
    assert_string_equal(ark_test_header_at(&up, 3),
                        "anthropic-version: 2023-06-01");
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

    ark_test_provider_option(prov, "anthropic-version", "2024-10-22", p);
    prov->base_url = "http://127.0.0.1:8089/anthropic/v1";
    ark_test_chat_parse(&req, body, strlen(body), p);
    assert_int_equal(ark_provider_anthropic.build_request(&up, prov, MODEL,
                                                          &req, &err, p),
                     APR_SUCCESS);
    assert_string_equal(up.url, "http://127.0.0.1:8089/anthropic/v1/messages");
    /* keyless: no x-api-key header at all */
    assert_int_equal(up.headers->nelts, 3);
    assert_string_equal(ark_test_header_at(&up, 0),
                        "Content-Type: application/json");
    assert_string_equal(ark_test_header_at(&up, 1),
                        "Accept: text/event-stream");
    assert_string_equal(ark_test_header_at(&up, 2),
                        "anthropic-version: 2024-10-22");
    for (i = 0; i < up.headers->nelts; i++) {
        assert_null(strstr(ark_test_header_at(&up, i), "x-api-key"));
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
        ark_test_chat_parse(&req, cases[i].body, strlen(cases[i].body), p);
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
    json_t *want = ark_test_fixture_json(dir, "expected.json", 0, p);
    const char *input, *out = NULL;
    apr_size_t input_len, out_len = 0;
    ark_usage_t u, want_u;
    json_t *got, *created;
    json_int_t now = (json_int_t)apr_time_sec(apr_time_now());

    input = ark_test_fixture_read(dir, "input.json", &input_len, p);
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
    ark_test_assert_json_equal(got, want, name, p);

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
    apr_array_header_t *names = ark_test_case_dirs(TRANSLATE_DIR,
                                                   "anthropic-response-",
                                                   NULL, p);
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
    const char *out;
    apr_size_t out_len;

    ark_test_parse_ok(&ark_provider_anthropic, body, strlen(body), &out,
                      &out_len, u, p);
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
        /* besides what no answer can be (see ark_test_parse_refuses) */
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

    /* the usage stays unknown */
    ark_test_parse_refuses(&ark_provider_anthropic, bodies,
                           sizeof(bodies) / sizeof(bodies[0]), 1, *state);
}

static void parse_uses_len_not_nul(void **state)
{
    apr_pool_t *p = *state;
    const char *msg = message_with(p, "\"msg_03\"", "\"end_turn\"",
                                   "{\"input_tokens\":3,\"output_tokens\":1}");
    const char *out;
    apr_size_t out_len;
    ark_usage_t u;

    ark_test_parse_ok(&ark_provider_anthropic,
                      apr_pstrcat(p, msg, "TRAILING", NULL), strlen(msg),
                      &out, &out_len, &u, p);
    assert_int_equal(u.total_tokens, 4);
}

/* ------------------------------------------------------- stream_event */

/* Every emit must be one "data: ...\n\n" event. */
static const ark_test_stream_conf_t stream_conf = {
    .type = &ark_provider_anthropic,
    .model = MODEL,
    .id = STREAM_ID,
    .created = apr_time_from_sec(STREAM_CREATED),
    .frame = ARK_TEST_FRAME_DATA,
};

static void stream_init(ark_stream_t *st, ark_test_client_t *c,
                        int wants_usage, apr_pool_t *p)
{
    ark_test_stream_init(st, c, &stream_conf, wants_usage, p);
}

/* Feeds text through a fresh SSE parser in one piece. */
static apr_status_t feed(ark_stream_t *st, const char *text)
{
    ark_sse_parser_t *sp = ark_sse_parser_make(st->rpool, 0);

    return ark_sse_feed(sp, text, strlen(text), ark_test_stream_event, st);
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

typedef struct {
    const char *name;
    long prompt, completion, cached;
} stream_case_t;

static void run_stream_case(const stream_case_t *sc, apr_pool_t *p)
{
    const char *dir = apr_pstrcat(p, TRANSLATE_DIR "/anthropic-stream-",
                                  sc->name, NULL);
    apr_size_t len;
    const char *upstream = ark_test_fixture_read(dir, "upstream.sse", &len,
                                                 p);
    const char *with_usage = ark_test_fixture_read(dir, "expected.sse", NULL,
                                                   p);
    apr_uint32_t seed = 20241127;
    int wants, mode;

    assert_non_null(strstr(with_usage, "\"choices\":[],\"usage\":"));
    for (wants = 0; wants < 2; wants++) {
        const char *want = wants ? with_usage
                                 : without_usage_chunk(with_usage, p);

        /* mode 0: whole; 1: byte by byte; 2..101: random splits */
        for (mode = 0; mode < 102; mode++) {
            ark_test_split_t split = { .size = 97, .seed = &seed };
            apr_pool_t *sub;
            ark_sse_parser_t *sp;
            ark_stream_t st;
            ark_test_client_t c;
            apr_status_t rv;

            split.mode = mode == 0 ? ARK_TEST_SPLIT_WHOLE
                         : mode == 1 ? ARK_TEST_SPLIT_BYTES
                         : ARK_TEST_SPLIT_RANDOM;
            apr_pool_create(&sub, p);
            stream_init(&st, &c, wants, sub);
            sp = ark_sse_parser_make(sub, 0);
            rv = ark_test_sse_feed(sp, upstream, len, &split,
                                   ark_test_stream_event, &st);
            if (rv != APR_SUCCESS) {
                fail_msg("%s: mode %d: feed failed (%d)", sc->name, mode,
                         rv);
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
        ark_test_client_t c;

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
        ark_test_client_t c;

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
    ark_test_client_t c;

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
    ark_test_client_t c;

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
    ark_test_client_t c;

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
    ark_test_client_t ca, cb;

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
    ark_test_client_t c;

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

/* What the client is told (never with a Retry-After). */
static const ark_test_map_case_t map_cases[] = {
    { 400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
           "\"message\":\"messages: text content blocks must be non-empty\"},"
           "\"request_id\":\"req_011CSHoEeqs5C35K2UUqR7Fy\"}",
      400, "invalid_request_error", "upstream_rejected_request",
      "messages: text content blocks must be non-empty", 0 },
    { 400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
           "\"message\":\"prompt is too long: 210000 tokens > 200000 "
           "maximum\"}}",
      400, "invalid_request_error", "upstream_rejected_request",
      "prompt is too long: 210000 tokens > 200000 maximum", 0 },
    { 400, body_leak, 400, "invalid_request_error",
      "upstream_rejected_request",
      "The upstream provider rejected the request as invalid.", 0 },
    { 400, NULL, 400, "invalid_request_error", "upstream_rejected_request",
      "The upstream provider rejected the request as invalid.", 0 },
    { 401, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
           "\"message\":\"invalid x-api-key\"}}",
      502, "upstream_error", "upstream_auth_failed",
      "The upstream provider rejected the gateway's credentials.", 0 },
    { 403, "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\","
           "\"message\":\"Your API key does not have permission to use the "
           "specified resource.\"}}",
      502, "upstream_error", "upstream_auth_failed",
      "The upstream provider rejected the gateway's credentials.", 0 },
    { 404, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\","
           "\"message\":\"model: claude-9\"}}",
      502, "upstream_error", "upstream_not_found",
      "The upstream provider does not know the configured model or "
      "endpoint.", 0 },
    { 413, "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\","
           "\"message\":\"Request exceeds the maximum allowed number of "
           "bytes.\"}}",
      413, "invalid_request_error", "request_too_large",
      "Request exceeds the maximum allowed number of bytes.", 0 },
    { 429, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
           "\"message\":\"Number of request tokens has exceeded your "
           "per-minute rate limit.\"}}",
      429, "rate_limit_error", "upstream_rate_limited",
      "The upstream provider is rate limiting requests; retry later.", 0 },
    { 500, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
           "\"message\":\"Internal server error\"}}",
      502, "upstream_error", "upstream_error",
      "The upstream provider failed (HTTP 500).", 0 },
    { 503, "<html>503 Service Unavailable</html>", 502, "upstream_error",
      "upstream_error", "The upstream provider failed (HTTP 503).", 0 },
    { 529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
           "\"message\":\"Overloaded\"}}",
      502, "upstream_error", "upstream_error",
      "The upstream provider is overloaded (HTTP 529); retry later.", 0 },
    { 529, "", 502, "upstream_error", "upstream_error",
      "The upstream provider is overloaded (HTTP 529); retry later.", 0 },
};

static void map_error_statuses(void **state)
{
    apr_pool_t *p = *state;

    ark_test_map_errors(provider_make(p, SECRET), map_cases,
                        sizeof(map_cases) / sizeof(map_cases[0]), "sk-ant",
                        p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(type_table),
        ARK_TEST(check_option_values),
        ARK_TEST(build_golden),
        ARK_TEST(build_url_and_headers),
        ARK_TEST(build_stream_headers_and_version),
        ARK_TEST(build_refusals),
        ARK_TEST(build_embeddings_refused),
        ARK_TEST(parse_golden),
        ARK_TEST(parse_finish_reasons),
        ARK_TEST(parse_ids_and_missing_usage),
        ARK_TEST(parse_rejects_malformed),
        ARK_TEST(parse_uses_len_not_nul),
        ARK_TEST(stream_golden_in_any_split),
        ARK_TEST(stream_error_event),
        ARK_TEST(stream_malformed_events),
        ARK_TEST(stream_quiet_events),
        ARK_TEST(stream_cumulative_usage_in_message_delta),
        ARK_TEST(stream_nothing_after_stop),
        ARK_TEST(stream_streams_are_independent),
        ARK_TEST(stream_emitter_failure),
        ARK_TEST(map_error_statuses),
    };

    return ARK_TEST_RUN("ark_provider_anthropic", tests);
}
