/* Unit tests for the "gemini" provider type (ark_provider_gemini.c).
 *
 * Driven through the ark_provider_gemini table, as the handler uses it,
 * and mostly by golden files under tests/cases/translate/gemini-*:
 *   request cases   input.json (the client's OpenAI request), optional
 *                   channel.json ({"options": {...}}), expected.json (the
 *                   Gemini body, or {"ark_error": {...}} for a refusal)
 *   response cases  gemini-response-*: input.json (a GenerateContent-
 *                   Response), expected.json (the chat.completion, with
 *                   "<id>", "<created>" and "<call-N>" standing for the
 *                   generated values, which are checked for their shape)
 *   stream cases    gemini-stream-*: upstream.sse as Google sends it
 *                   (events separated by CRLF CRLF), expected.sse and
 *                   expected-usage.sse (the client asked for usage), the
 *                   exact bytes the client must receive; fed through the
 *                   SSE parser whole, byte by byte and in random splits.
 * Error mapping is checked for status, type, code and message, and for
 * never carrying the provider's secret.
 */
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

#define SECRET "AIzaSyT3stS3cr3tV4lu3-0123456789abcdefg"
#define BASE_URL "https://generativelanguage.googleapis.com/v1beta"
#define MODEL "gemini-2.5-flash"

#define STREAM_ID "chatcmpl-ArkGeminiStreamTest0001"
#define STREAM_CREATED 1750000000

/* ------------------------------------------------------------ helpers */

/* The fixture file of the translate case name, which must exist. */
static char *read_case(apr_pool_t *p, const char *name, const char *file,
                       apr_size_t *plen)
{
    return ark_test_fixture_read(apr_pstrcat(p, TRANSLATE_DIR "/", name,
                                             NULL), file, plen, p);
}

/* Parsed JSON owned by p. */
static json_t *load_json(apr_pool_t *p, const char *text, apr_size_t len)
{
    return ark_test_json_parse(text, len, 0, "the text", p);
}

static ark_provider_t *provider_make(apr_pool_t *p, const char *secret)
{
    return ark_test_provider_make(&ark_provider_gemini, "google", BASE_URL,
                                  secret, p);
}

static void parse_req(ark_req_t *req, const char *body, apr_pool_t *p)
{
    ark_test_chat_parse(req, body, strlen(body), p);
}

/* Builds the upstream request for body; returns the status. */
static apr_status_t build(ark_upstream_req_t *up, ark_err_t *err,
                          const ark_provider_t *prov, const char *model,
                          const char *body, apr_pool_t *p)
{
    ark_req_t req;

    parse_req(&req, body, p);
    memset(up, 0, sizeof(*up));
    memset(err, 0, sizeof(*err));
    return ark_provider_gemini.build_request(up, prov, model, &req, err, p);
}

/* The Gemini body sent for an OpenAI request body (which must be
 * accepted). */
static json_t *sent_for(apr_pool_t *p, const char *body)
{
    ark_upstream_req_t up;
    ark_err_t err;

    if (build(&up, &err, provider_make(p, SECRET), MODEL, body, p)
        != APR_SUCCESS) {
        fail_msg("refused (%s): %s", err.param ? err.param : "-",
                 err.message);
    }
    return load_json(p, up.body, up.body_len);
}

/* ------------------------------------------------- the type itself */

static void type_registered(void **state)
{
    apr_pool_t *p = *state;

    assert_ptr_equal(ark_provider_type_find("gemini"), &ark_provider_gemini);
    assert_string_equal(ark_provider_gemini.name, "gemini");
    assert_int_equal(ark_provider_gemini.endpoints, ARK_EP_CHAT);
    assert_non_null(ark_provider_gemini.stream_end);
    assert_non_null(strstr(ark_provider_type_names(p), "gemini"));
}

static void check_options(void **state)
{
    static const char *const good[] = { "1", "1024", "65536", "1000000" };
    static const char *const bad[] = { "", "0", "-1", "1000001", "12k",
                                       " 5", "5 ", "0x10", "99999999999" };
    apr_pool_t *p = *state;
    const char *msg;
    apr_size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        msg = ark_provider_gemini.check_option("max-tokens", good[i], p);
        if (msg) {
            fail_msg("max-tokens=%s refused: %s", good[i], msg);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg = ark_provider_gemini.check_option("max-tokens", bad[i], p);
        if (!msg) {
            fail_msg("max-tokens='%s' accepted", bad[i]);
        }
        assert_non_null(strstr(msg, "max-tokens="));
        assert_non_null(strstr(msg, "between 1 and 1000000"));
    }
    msg = ark_provider_gemini.check_option("api-version", "v1beta", p);
    assert_non_null(msg);
    assert_string_equal(msg, "unknown option 'api-version' for type gemini "
                             "(expected max-tokens=)");
}

/* ------------------------------------------------ request golden files */

typedef struct {
    const char *name;
    int stream;                /* the input asks for a stream */
} req_case_t;

static const req_case_t req_cases[] = {
    { "gemini-system-user", 0 },
    { "gemini-multi-turn", 0 },
    { "gemini-tools", 0 },
    { "gemini-tool-choice-function", 0 },
    { "gemini-tool-round-trip", 0 },
    { "gemini-images", 0 },
    { "gemini-generation-config", 0 },
    { "gemini-dropped-params", 1 },
    { "gemini-max-tokens-option", 0 },
    { "gemini-max-tokens-client", 0 },
    { "gemini-legacy-functions", 0 },
    { "gemini-n-too-many", 0 },
    { "gemini-unknown-tool-call-id", 0 },
    { "gemini-bad-tool-arguments", 0 },
    { "gemini-only-system", 0 },
    { "gemini-image-bad-url", 0 },
};

/* A provider for the case: channel.json may give ArkProvider options,
 * each checked with check_option as the configuration would. */
static ark_provider_t *case_provider(apr_pool_t *p, const char *name)
{
    ark_provider_t *prov = provider_make(p, SECRET);

    ark_test_provider_options_file(prov, apr_pstrcat(p, TRANSLATE_DIR "/",
                                                     name, "/channel.json",
                                                     NULL), p);
    return prov;
}

static void check_refusal(apr_pool_t *p, const char *name,
                          const json_t *want, apr_status_t rv,
                          const ark_err_t *err)
{
    const json_t *param = json_object_get(want, "param");

    if (rv == APR_SUCCESS) {
        fail_msg("%s: accepted, expected a refusal", name);
    }
    assert_int_equal(err->status,
                     json_integer_value(json_object_get(want, "status")));
    assert_string_equal(err->type, "invalid_request_error");
    assert_string_equal(err->code,
                        json_string_value(json_object_get(want, "code")));
    if (json_is_string(param)) {
        assert_non_null(err->param);
        assert_string_equal(err->param, json_string_value(param));
    }
    else {
        assert_null(err->param);
    }
    assert_string_equal(err->message,
                        json_string_value(json_object_get(want,
                                                          "message")));
    assert_null(strstr(ark_err_json(err, p), SECRET));
}

static void check_request_case(apr_pool_t *p, const req_case_t *rc)
{
    apr_size_t ilen, elen;
    char *input = read_case(p, rc->name, "input.json", &ilen);
    char *expected = read_case(p, rc->name, "expected.json", &elen);
    json_t *want = load_json(p, expected, elen);
    ark_provider_t *prov = case_provider(p, rc->name);
    const char *before;
    ark_upstream_req_t up;
    ark_err_t err;
    ark_req_t req;
    apr_status_t rv;
    json_t *sent;
    int i;

    parse_req(&req, input, p);
    assert_int_equal(req.stream, rc->stream);
    before = ark_json_pdump(req.root, NULL, p);
    memset(&up, 0, sizeof(up));
    memset(&err, 0, sizeof(err));
    rv = ark_provider_gemini.build_request(&up, prov, MODEL, &req, &err, p);
    /* the client's document is left as it was, failure or not */
    assert_string_equal(ark_json_pdump(req.root, NULL, p), before);

    if (json_object_get(want, "ark_error")) {
        check_refusal(p, rc->name, json_object_get(want, "ark_error"), rv,
                      &err);
        return;
    }
    if (rv != APR_SUCCESS) {
        fail_msg("%s: refused (%s): %s", rc->name,
                 err.param ? err.param : "-", err.message);
    }
    assert_string_equal(up.url,
                        rc->stream
                        ? BASE_URL "/models/" MODEL
                          ":streamGenerateContent?alt=sse"
                        : BASE_URL "/models/" MODEL ":generateContent");
    assert_int_equal(up.headers->nelts, 3);
    assert_string_equal(ark_test_header_at(&up, 0),
                        "Content-Type: application/json");
    assert_string_equal(ark_test_header_at(&up, 1),
                        rc->stream ? "Accept: text/event-stream"
                                   : "Accept: application/json");
    assert_string_equal(ark_test_header_at(&up, 2), "x-goog-api-key: " SECRET);
    assert_int_equal(up.body_len, strlen(up.body));
    sent = load_json(p, up.body, up.body_len);
    ark_test_assert_json_equal(sent, want, rc->name, p);
    /* the key travels in its header only */
    assert_null(strstr(up.url, SECRET));
    assert_null(strstr(up.url, "key="));
    assert_null(strstr(up.body, SECRET));
    for (i = 0; i < 2; i++) {
        assert_null(strstr(ark_test_header_at(&up, i), SECRET));
    }
}

static void request_golden_files(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
        apr_pool_t *cp;

        apr_pool_create(&cp, p);
        check_request_case(cp, &req_cases[i]);
        apr_pool_destroy(cp);
    }
}

/* --------------------------------------------- more request behaviour */

static void build_key_never_in_url(void **state)
{
    apr_pool_t *p = *state;
    ark_upstream_req_t up;
    ark_err_t err;
    int i;

    assert_int_equal(build(&up, &err, provider_make(p, SECRET), MODEL,
                           "{\"model\":\"chat\",\"stream\":true,"
                           "\"messages\":[{\"role\":\"user\","
                           "\"content\":\"Hi\"}]}", p),
                     APR_SUCCESS);
    assert_string_equal(up.url, BASE_URL "/models/" MODEL
                                ":streamGenerateContent?alt=sse");
    assert_null(strstr(up.url, SECRET));
    assert_null(strstr(up.url, "key"));
    assert_null(strstr(up.body, SECRET));
    for (i = 0; i < up.headers->nelts; i++) {
        if (strstr(ark_test_header_at(&up, i), SECRET)) {
            assert_string_equal(ark_test_header_at(&up, i),
                                "x-goog-api-key: " SECRET);
        }
    }
    assert_string_equal(ark_test_header_at(&up, up.headers->nelts - 1),
                        "x-goog-api-key: " SECRET);

    /* a keyless upstream (a local emulator): no key header at all */
    assert_int_equal(build(&up, &err, provider_make(p, NULL), MODEL,
                           "{\"model\":\"chat\",\"messages\":[{\"role\":"
                           "\"user\",\"content\":\"Hi\"}]}", p),
                     APR_SUCCESS);
    assert_int_equal(up.headers->nelts, 2);
    for (i = 0; i < up.headers->nelts; i++) {
        assert_null(strstr(ark_test_header_at(&up, i), "goog"));
    }
}

static void build_model_in_url(void **state)
{
    static const char *const models[][2] = {
        { "gemini-2.0-flash-001", "gemini-2.0-flash-001" },
        { "models/gemini-2.5-pro", "gemini-2.5-pro" },
        { "gemini 2.5/pro?x=1", "gemini%202.5%2Fpro%3Fx%3D1" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        ark_upstream_req_t up;
        ark_err_t err;

        assert_int_equal(build(&up, &err, provider_make(p, SECRET),
                               models[i][0],
                               "{\"model\":\"chat\",\"messages\":[{\"role\":"
                               "\"user\",\"content\":\"Hi\"}]}", p),
                         APR_SUCCESS);
        assert_string_equal(up.url, apr_pstrcat(p, BASE_URL "/models/",
                                                models[i][1],
                                                ":generateContent", NULL));
    }
}

static void build_tool_choice_modes(void **state)
{
    static const char *const choices[][2] = {
        { "\"auto\"", "{\"mode\":\"AUTO\"}" },
        { "\"none\"", "{\"mode\":\"NONE\"}" },
        { "\"required\"", "{\"mode\":\"ANY\"}" },
        { "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}",
          "{\"mode\":\"ANY\",\"allowedFunctionNames\":[\"f\"]}" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(choices) / sizeof(choices[0]); i++) {
        json_t *sent = sent_for(p, apr_pstrcat(p,
            "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\","
            "\"content\":\"Hi\"}],\"tools\":[{\"type\":\"function\","
            "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":"
            "\"object\",\"properties\":{}}}}],\"tool_choice\":",
            choices[i][0], "}", NULL));
        const json_t *config = json_object_get(json_object_get(sent,
                                                               "toolConfig"),
                                               "functionCallingConfig");
        const char *want = choices[i][1];

        ark_test_assert_json_equal(config, load_json(p, want, strlen(want)),
                                   choices[i][0], p);
    }

    /* no tools: nothing to configure, whatever the choice */
    assert_null(json_object_get(sent_for(p,
        "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"Hi\"}],\"tool_choice\":\"required\","
        "\"tools\":[]}"), "toolConfig"));
}

typedef struct {
    const char *body;
    const char *code;
    const char *param;
} refusal_t;

static const refusal_t refusals[] = {
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"tools\":[{\"type\":\"web_search\"}]}",
      "unsupported_value", "tools[0].type" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
      "\"tool_choice\":\"sometimes\"}",
      "invalid_value", "tool_choice" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"tools\":[{\"type\":\"function\",\"function\":{}}]}",
      "invalid_type", "tools[0].function.name" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"n\":0}", "invalid_value", "n" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"n\":1.5}", "invalid_value", "n" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"stop\":[\"a\",3]}", "invalid_type", "stop" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"temperature\":\"hot\"}", "invalid_type", "temperature" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"seed\":1.5}", "invalid_type", "seed" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"max_tokens\":0}", "invalid_value", "max_tokens" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"max_completion_tokens\":\"10\"}",
      "invalid_value", "max_completion_tokens" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      "],\"response_format\":{\"type\":\"yaml\"}}",
      "invalid_value", "response_format.type" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{"
      "\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png,"
      "abc\"}}]}]}", "invalid_value", "messages[0].content[0].image_url" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{"
      "\"type\":\"image_url\",\"image_url\":{\"url\":\"data:;base64,"
      "abc\"}}]}]}", "invalid_value", "messages[0].content[0].image_url" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{"
      "\"type\":\"image_url\",\"image_url\":{}}]}]}",
      "invalid_type", "messages[0].content[0].image_url" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{"
      "\"type\":\"file\",\"file\":{\"file_id\":\"file-abc\"}}]}]}",
      "unsupported_value", "messages[0].content[0].file" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{"
      "\"type\":\"video\",\"video\":{}}]}]}",
      "unsupported_value", "messages[0].content[0].type" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{"
      "\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/a.png\"}}"
      "]},{\"role\":\"user\",\"content\":\"Hi\"}]}",
      "unsupported_value", "messages[0].content[0].type" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{"
      "\"type\":\"text\",\"text\":5}]}]}",
      "invalid_type", "messages[0].content[0].text" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
      "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}"
      "]}", "invalid_value", "messages[1].tool_calls[0].function.arguments" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
      "\"function\",\"function\":{\"arguments\":\"{}\"}}]}]}",
      "invalid_type", "messages[1].tool_calls[0].function.name" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      ",{\"role\":\"tool\",\"content\":\"x\"}]}",
      "invalid_type", "messages[1].tool_call_id" },
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}"
      ",{\"role\":\"function\",\"content\":\"x\"}]}",
      "invalid_type", "messages[1].name" },
    /* a tool answer names a call made later, not earlier */
    { "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"tool_call_id\":"
      "\"c\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{"
      "\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
      "\"arguments\":\"{}\"}}]}]}",
      "invalid_value", "messages[0].tool_call_id" },
};

static void build_refusals(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        ark_upstream_req_t up;
        ark_err_t err;
        apr_status_t rv;

        rv = build(&up, &err, provider_make(p, SECRET), MODEL,
                   refusals[i].body, p);
        if (rv == APR_SUCCESS) {
            fail_msg("accepted: %s\nsent: %s", refusals[i].body, up.body);
        }
        if (err.status != 400 || strcmp(err.code, refusals[i].code)
            || !err.param || strcmp(err.param, refusals[i].param)) {
            fail_msg("case %u: %d %s %s '%s'", (unsigned)i, err.status,
                     err.code, err.param ? err.param : "-", err.message);
        }
        assert_string_equal(err.type, "invalid_request_error");
        assert_non_null(err.message);
        assert_null(up.body);
        assert_null(up.url);
    }
}

static void build_embeddings_refused(void **state)
{
    apr_pool_t *p = *state;
    static const char body[] = "{\"model\":\"embed\",\"input\":\"hello\"}";
    ark_upstream_req_t up;
    ark_err_t err;
    ark_req_t req;

    assert_int_equal(ark_embed_req_parse(&req, body, sizeof(body) - 1, &err,
                                         p), APR_SUCCESS);
    memset(&up, 0, sizeof(up));
    assert_int_not_equal(ark_provider_gemini.build_request(
                             &up, provider_make(p, SECRET), "text-embedding",
                             &req, &err, p),
                         APR_SUCCESS);
    assert_int_equal(err.status, 400);
    assert_null(up.body);
}

/* ----------------------------------------------- response golden files */

static const char *const resp_cases[] = {
    "gemini-response-text",
    "gemini-response-function-call",
    "gemini-response-max-tokens",
    "gemini-response-safety-block",
    "gemini-response-candidate-safety",
    "gemini-response-cached-tokens",
};

static void check_response_case(apr_pool_t *p, const char *name)
{
    apr_size_t ilen, elen, out_len = 0, k;
    char *input = read_case(p, name, "input.json", &ilen);
    char *expected = read_case(p, name, "expected.json", &elen);
    json_t *want = load_json(p, expected, elen), *got, *calls, *call;
    const char *out = NULL, *id;
    apr_time_t now = apr_time_sec(apr_time_now());
    json_int_t created;
    ark_usage_t u, wu;

    ark_usage_clear(&u);
    if (ark_provider_gemini.parse_response(&out, &out_len, &u, NULL, input,
                                           ilen, p) != APR_SUCCESS) {
        fail_msg("%s: answer refused", name);
    }
    assert_int_equal(out_len, strlen(out));
    got = load_json(p, out, out_len);

    /* the generated values: their shape, then as expected */
    id = json_string_value(json_object_get(got, "id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 9 + 24);
    assert_memory_equal(id, "chatcmpl-", 9);
    created = json_integer_value(json_object_get(got, "created"));
    assert_true(created >= now - 5 && created <= now + 5);
    assert_string_equal(json_string_value(json_object_get(want, "id")),
                        "<id>");
    json_object_set_new(want, "id", json_string(id));
    json_object_set_new(want, "created", json_integer(created));
    calls = json_object_get(json_object_get(json_array_get(
        json_object_get(want, "choices"), 0), "message"), "tool_calls");
    json_array_foreach(calls, k, call) {
        assert_string_equal(json_string_value(json_object_get(call, "id")),
                            apr_psprintf(p, "<call-%u>", (unsigned)k));
        json_object_set_new(call, "id",
                            json_string(apr_psprintf(p, "call_%s_%u",
                                                     id + 9, (unsigned)k)));
    }
    ark_test_assert_json_equal(got, want, name, p);

    /* the usage handed to the gateway matches the usage shown */
    ark_usage_clear(&wu);
    assert_true(ark_usage_from_openai(&wu, json_object_get(want, "usage")));
    if (json_integer_value(json_object_get(json_object_get(want, "usage"),
                                           "completion_tokens")) == 0) {
        wu.completion_tokens = -1;     /* Gemini said nothing: unknown */
    }
    assert_int_equal(u.prompt_tokens, wu.prompt_tokens);
    assert_int_equal(u.completion_tokens, wu.completion_tokens);
    assert_int_equal(u.total_tokens, wu.total_tokens);
    assert_int_equal(u.cached_tokens, wu.cached_tokens);
}

static void response_golden_files(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
        apr_pool_t *cp;

        apr_pool_create(&cp, p);
        check_response_case(cp, resp_cases[i]);
        apr_pool_destroy(cp);
    }
}

static void parse_ids_unique(void **state)
{
    /* two answers: two completion ids, and tool call ids that differ */
    apr_pool_t *p = *state;
    apr_size_t len;
    char *input = read_case(p, "gemini-response-function-call", "input.json",
                            &len);
    const char *a, *b;
    apr_size_t alen, blen;
    ark_usage_t u;
    json_t *ja, *jb;

    ark_test_parse_ok(&ark_provider_gemini, input, len, &a, &alen, &u, p);
    ark_test_parse_ok(&ark_provider_gemini, input, len, &b, &blen, &u, p);
    ja = load_json(p, a, alen);
    jb = load_json(p, b, blen);
    assert_string_not_equal(json_string_value(json_object_get(ja, "id")),
                            json_string_value(json_object_get(jb, "id")));
    assert_false(json_equal(
        json_object_get(json_object_get(json_array_get(
            json_object_get(ja, "choices"), 0), "message"), "tool_calls"),
        json_object_get(json_object_get(json_array_get(
            json_object_get(jb, "choices"), 0), "message"), "tool_calls")));
}

static void parse_rejects_malformed(void **state)
{
    static const char *const bodies[] = {
        /* besides what no answer can be (see ark_test_parse_refuses) */
        "{\"usageMetadata\":{\"promptTokenCount\":3}}",
        "{\"candidates\":{}}",
        "{\"candidates\":\"STOP\"}",
        "{\"candidates\":[\"text\"]}",
        "{\"candidates\":[{\"content\":{\"parts\":{\"text\":\"x\"}}}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":"
        "{\"args\":{}}}]}}]}",
        "{\"promptFeedback\":\"SAFETY\"}",
        "[{\"error\":{\"code\":500,\"message\":\"Internal error\","
        "\"status\":\"INTERNAL\"}}]",
        "{\"error\":{\"code\":500,\"message\":\"Internal error\","
        "\"status\":\"INTERNAL\"}}",
        "{\"candidates\":[]",
    };

    ark_test_parse_refuses(&ark_provider_gemini, bodies,
                           sizeof(bodies) / sizeof(bodies[0]), 0, *state);
}

static void parse_uses_len_not_nul(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t len;
    char *input = read_case(p, "gemini-response-max-tokens", "input.json",
                            &len);
    const char *out;
    apr_size_t out_len;
    ark_usage_t u;

    ark_test_parse_ok(&ark_provider_gemini,
                      apr_pstrcat(p, input, "TRAILING", NULL), len, &out,
                      &out_len, &u, p);
    assert_int_equal(u.total_tokens, 15);
}

static void parse_text_keeps_nul(void **state)
{
    /* answer strings are handled with their length, not as C strings */
    apr_pool_t *p = *state;
    static const char body[] =
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\\u0000\"},"
        "{\"text\":\"b\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}]}";
    const char *out;
    apr_size_t out_len;
    ark_usage_t u;
    json_t *got, *content;

    ark_test_parse_ok(&ark_provider_gemini, body, sizeof(body) - 1, &out,
                      &out_len, &u, p);
    assert_int_equal(out_len, strlen(out));
    got = ark_json_pool_own(json_loadb(out, out_len, JSON_ALLOW_NUL, NULL),
                            p);
    content = json_object_get(json_object_get(json_array_get(
        json_object_get(got, "choices"), 0), "message"), "content");
    assert_int_equal(json_string_length(content), 3);
    assert_memory_equal(json_string_value(content), "a\0b", 3);
}

static void parse_empty_candidates(void **state)
{
    /* no candidate and no block reason: an empty answer, not an error */
    apr_pool_t *p = *state;
    static const char body[] =
        "{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":4,"
        "\"totalTokenCount\":4}}";
    const char *out;
    apr_size_t out_len;
    ark_usage_t u;
    json_t *got, *choice;

    ark_test_parse_ok(&ark_provider_gemini, body, sizeof(body) - 1, &out,
                      &out_len, &u, p);
    got = load_json(p, out, out_len);
    choice = json_array_get(json_object_get(got, "choices"), 0);
    assert_true(json_is_null(json_object_get(json_object_get(choice,
                                                             "message"),
                                             "content")));
    assert_string_equal(json_string_value(json_object_get(choice,
                                                          "finish_reason")),
                        "stop");
    assert_int_equal(u.prompt_tokens, 4);
    assert_int_equal(u.completion_tokens, -1);
    assert_int_equal(u.cached_tokens, -1);
}

/* ------------------------------------------------------------ streams */

/* Every emit must be one "data: ...\n\n" event. */
static const ark_test_stream_conf_t stream_conf = {
    .type = &ark_provider_gemini,
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

/* Feeds upstream to a fresh stream cut as mode says (whole, byte by byte
 * or in random pieces of up to 300 bytes), then ends it as the gateway
 * does when the upstream closes. */
static void run_stream(ark_stream_t *st, ark_test_client_t *c, apr_pool_t *p,
                       const char *upstream, apr_size_t len,
                       ark_test_split_mode_t mode, apr_uint32_t *seed,
                       int wants_usage)
{
    ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
    ark_test_split_t split = { .mode = mode, .size = 300, .seed = seed };

    stream_init(st, c, wants_usage, p);
    assert_int_equal(ark_test_sse_feed(sp, upstream, len, &split,
                                       ark_test_stream_event, st),
                     APR_SUCCESS);
    assert_false(ark_sse_pending(sp));
    assert_int_equal(ark_provider_gemini.stream_end(st), APR_SUCCESS);
}

typedef struct {
    const char *name;
    long prompt, completion, total;
    int events;                 /* chunks before the usage chunk and DONE */
} stream_case_t;

static const stream_case_t stream_cases[] = {
    { "gemini-stream-text", 9, 43, 52, 5 },
    { "gemini-stream-function-call", 71, 98, 169, 5 },
};

static void stream_golden_files(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(stream_cases) / sizeof(stream_cases[0]); i++) {
        const stream_case_t *sc = &stream_cases[i];
        apr_size_t len;
        const char *upstream = read_case(p, sc->name, "upstream.sse", &len);
        int wants, mode, round;
        apr_uint32_t seed = 0x9e3779b9u;

        assert_non_null(strstr(upstream, "\r\n\r\n"));
        for (wants = 0; wants < 2; wants++) {
            const char *want = read_case(p, sc->name,
                                         wants ? "expected-usage.sse"
                                               : "expected.sse", NULL);

            for (mode = ARK_TEST_SPLIT_WHOLE; mode <= ARK_TEST_SPLIT_RANDOM;
                 mode++) {
                for (round = 0;
                     round < (mode == ARK_TEST_SPLIT_RANDOM ? 50 : 1);
                     round++) {
                    apr_pool_t *cp;
                    ark_stream_t st;
                    ark_test_client_t c;

                    apr_pool_create(&cp, p);
                    run_stream(&st, &c, cp, upstream, len, mode, &seed,
                               wants);
                    if (strcmp(c.all, want)) {
                        fail_msg("%s (mode %d, usage %d) sent:\n%s\n"
                                 "expected:\n%s", sc->name, mode, wants,
                                 c.all, want);
                    }
                    assert_int_equal(st.done, 1);
                    assert_int_equal(st.events,
                                     (apr_size_t)(sc->events + wants + 1));
                    assert_int_equal(c.out->nelts, sc->events + wants + 1);
                    assert_int_equal(st.usage.prompt_tokens, sc->prompt);
                    assert_int_equal(st.usage.completion_tokens,
                                     sc->completion);
                    assert_int_equal(st.usage.total_tokens, sc->total);
                    assert_int_equal(st.usage.cached_tokens, -1);
                    /* a second end changes nothing */
                    assert_int_equal(ark_provider_gemini.stream_end(&st),
                                     APR_SUCCESS);
                    assert_int_equal(c.out->nelts, sc->events + wants + 1);
                    apr_pool_destroy(cp);
                }
            }
        }
    }
}

static void stream_cut_before_finish(void **state)
{
    /* the connection closed after some text, before any finishReason:
     * what came is relayed, the stream is not done, no [DONE] */
    apr_pool_t *p = *state;
    apr_size_t len, cut;
    const char *upstream = read_case(p, "gemini-stream-text", "upstream.sse",
                                     &len);
    const char *want = read_case(p, "gemini-stream-text", "expected.sse",
                                 NULL);
    const char *last = strstr(upstream, "\"finishReason\"");
    apr_uint32_t seed = 1;
    ark_stream_t st;
    ark_test_client_t c;
    int mode;

    assert_non_null(last);
    /* back to the start of the event holding the finishReason */
    while (last > upstream && strncmp(last, "\r\n\r\ndata: ", 10)) {
        last--;
    }
    cut = (apr_size_t)(last - upstream) + 4;
    for (mode = ARK_TEST_SPLIT_WHOLE; mode <= ARK_TEST_SPLIT_RANDOM;
         mode++) {
        run_stream(&st, &c, p, upstream, cut, mode, &seed, 1);
        assert_int_equal(st.done, 0);
        assert_int_equal(c.out->nelts, 4);      /* role and three texts */
        assert_null(strstr(c.all, "[DONE]"));
        assert_null(strstr(c.all, "finish_reason\":\"stop"));
        assert_null(strstr(c.all, "\"usage\""));
        assert_memory_equal(c.all, want, strlen(c.all));
    }

    /* nothing at all */
    stream_init(&st, &c, 1, p);
    assert_int_equal(ark_provider_gemini.stream_end(&st), APR_SUCCESS);
    assert_int_equal(st.done, 0);
    assert_int_equal(c.out->nelts, 0);
}

static void stream_prompt_blocked(void **state)
{
    apr_pool_t *p = *state;
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 1, p);
    assert_int_equal(ark_test_stream_data(&st,
                                          "{\"promptFeedback\": "
                                          "{\"blockReason\": "
                                          "\"PROHIBITED_CONTENT\"},"
                                          "\"usageMetadata\": "
                                          "{\"promptTokenCount\": 12,"
                                          "\"totalTokenCount\": 12},"
                                          "\"modelVersion\": "
                                          "\"gemini-2.5-flash\"}"),
                     APR_SUCCESS);
    assert_int_equal(ark_provider_gemini.stream_end(&st), APR_SUCCESS);
    assert_int_equal(st.done, 1);
    assert_string_equal(c.all,
        "data: {\"id\":\"" STREAM_ID "\",\"object\":\"chat.completion.chunk\","
        "\"created\":1750000000,\"model\":\"" MODEL "\",\"choices\":[{"
        "\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
        "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"" STREAM_ID "\",\"object\":\"chat.completion.chunk\","
        "\"created\":1750000000,\"model\":\"" MODEL "\",\"choices\":[{"
        "\"index\":0,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"content_filter\"}]}\n\n"
        "data: {\"id\":\"" STREAM_ID "\",\"object\":\"chat.completion.chunk\","
        "\"created\":1750000000,\"model\":\"" MODEL "\",\"choices\":[],"
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":0,"
        "\"total_tokens\":12}}\n\n"
        "data: [DONE]\n\n");
}

static void stream_finish_reasons(void **state)
{
    static const char *const reasons[][2] = {
        { "STOP", "stop" }, { "MAX_TOKENS", "length" },
        { "SAFETY", "content_filter" }, { "RECITATION", "content_filter" },
        { "BLOCKLIST", "content_filter" },
        { "PROHIBITED_CONTENT", "content_filter" },
        { "SPII", "content_filter" }, { "OTHER", "stop" },
        { "MALFORMED_FUNCTION_CALL", "stop" },
        { "FINISH_REASON_UNSPECIFIED", "stop" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        ark_stream_t st;
        ark_test_client_t c;
        const char *last;

        stream_init(&st, &c, 0, p);
        assert_int_equal(ark_test_stream_data(&st, apr_pstrcat(p,
            "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"x\"}],"
            "\"role\": \"model\"},\"finishReason\": \"", reasons[i][0],
            "\",\"index\": 0}]}", NULL)), APR_SUCCESS);
        assert_int_equal(c.out->nelts, 3);
        last = APR_ARRAY_IDX(c.out, 2, const char *);
        assert_non_null(strstr(last, apr_pstrcat(p, "\"finish_reason\":\"",
                                                 reasons[i][1], "\"",
                                                 NULL)));
        /* later events add no second finish */
        assert_int_equal(ark_test_stream_data(&st,
                                              "{\"candidates\": "
                                              "[{\"finishReason\": \"STOP\","
                                              "\"index\": 0}]}"),
                         APR_SUCCESS);
        assert_int_equal(c.out->nelts, 3);
        assert_int_equal(ark_provider_gemini.stream_end(&st), APR_SUCCESS);
        assert_int_equal(st.done, 1);
    }
}

static void stream_error_event(void **state)
{
    static const char *const errors[] = {
        "{\"error\": {\"code\": 503,\"message\": \"The model is overloaded. "
        "Please try again later.\",\"status\": \"UNAVAILABLE\"}}",
        "[{\"error\": {\"code\": 500,\"message\": \"An internal error has "
        "occurred.\",\"status\": \"INTERNAL\"}}]",
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        ark_stream_t st;
        ark_test_client_t c;

        stream_init(&st, &c, 1, p);
        assert_int_equal(ark_test_stream_data(&st,
                                              "{\"candidates\": "
                                              "[{\"content\": {\"parts\": "
                                              "[{\"text\": \"Hel\"}],"
                                              "\"role\": \"model\"},"
                                              "\"index\": 0}]}"),
                         APR_SUCCESS);
        assert_int_equal(c.out->nelts, 2);
        assert_int_equal(ark_test_stream_data(&st, errors[i]), APR_EGENERAL);
        assert_int_equal(c.out->nelts, 2);
        assert_int_equal(ark_provider_gemini.stream_end(&st), APR_SUCCESS);
        assert_int_equal(st.done, 0);
        assert_null(strstr(c.all, "[DONE]"));
        assert_null(strstr(c.all, "overloaded"));
    }
}

static void stream_malformed_event(void **state)
{
    static const char *const events[] = {
        "",
        "{\"candidates\": [",
        "not json",
        "[1,2,3]",
        "\"text\"",
        "null",
        "[DONE]",
        "{}",
        "{\"modelVersion\": \"gemini-2.5-flash\"}",
        "{\"candidates\": {}}",
        "{\"candidates\": [\"x\"]}",
        "{\"candidates\": [{\"content\": {\"parts\": \"x\"}}]}",
    };

    ark_test_stream_refuses(&stream_conf, events,
                            sizeof(events) / sizeof(events[0]), *state);
}

static void stream_usage_only_event(void **state)
{
    /* an event with usage and no candidate is fine (and the last usage
     * wins, count by count) */
    apr_pool_t *p = *state;
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 0, p);
    assert_int_equal(ark_test_stream_data(&st,
                                          "{\"candidates\": [{\"content\": "
                                          "{\"parts\": [{\"text\": \"Hi\"}],"
                                          "\"role\": \"model\"},"
                                          "\"finishReason\": \"STOP\","
                                          "\"index\": 0}],\"usageMetadata\": "
                                          "{\"promptTokenCount\": 3,"
                                          "\"totalTokenCount\": 3}}"),
                     APR_SUCCESS);
    assert_int_equal(ark_test_stream_data(&st,
                                          "{\"usageMetadata\": "
                                          "{\"promptTokenCount\": 3,"
                                          "\"candidatesTokenCount\": 1,"
                                          "\"totalTokenCount\": 4,"
                                          "\"cachedContentTokenCount\": 2}}"),
                     APR_SUCCESS);
    assert_int_equal(c.out->nelts, 3);
    assert_int_equal(st.usage.prompt_tokens, 3);
    assert_int_equal(st.usage.completion_tokens, 1);
    assert_int_equal(st.usage.total_tokens, 4);
    assert_int_equal(st.usage.cached_tokens, 2);
    assert_int_equal(ark_provider_gemini.stream_end(&st), APR_SUCCESS);
    assert_int_equal(st.done, 1);
    assert_string_equal(APR_ARRAY_IDX(c.out, 3, const char *),
                        "data: [DONE]\n\n");
}

static void stream_emitter_failure(void **state)
{
    apr_pool_t *p = *state;
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 1, p);
    c.fail_with = APR_ECONNABORTED;
    assert_int_equal(ark_test_stream_data(&st,
                                          "{\"candidates\": [{\"content\": "
                                          "{\"parts\": [{\"text\": \"Hi\"}],"
                                          "\"role\": \"model\"},"
                                          "\"finishReason\": \"STOP\","
                                          "\"index\": 0}],\"usageMetadata\": "
                                          "{\"promptTokenCount\": 3,"
                                          "\"candidatesTokenCount\": 1,"
                                          "\"totalTokenCount\": 4}}"),
                     APR_ECONNABORTED);
    /* the usage was still recorded for the access log */
    assert_int_equal(st.usage.total_tokens, 4);
    c.fail_with = APR_EOF;
    assert_int_equal(ark_test_stream_data(&st,
                                          "{\"candidates\": [{\"content\": "
                                          "{\"parts\": [{\"text\": \"more\"}],"
                                          "\"role\": \"model\"},\"index\": "
                                          "0}]}"),
                     APR_EOF);
    assert_int_equal(c.out->nelts, 0);
    assert_int_equal(st.done, 0);
}

/* ---------------------------------------------------------- map_error */

/* Error bodies as Google sends them. */
static const char body_key_invalid[] =
    "{\n  \"error\": {\n    \"code\": 400,\n    \"message\": \"API key not "
    "valid. Please pass a valid API key.\",\n    \"status\": "
    "\"INVALID_ARGUMENT\",\n    \"details\": [\n      {\n        \"@type\": "
    "\"type.googleapis.com/google.rpc.ErrorInfo\",\n        \"reason\": "
    "\"API_KEY_INVALID\",\n        \"domain\": \"googleapis.com\",\n"
    "        \"metadata\": {\n          \"service\": "
    "\"generativelanguage.googleapis.com\"\n        }\n      },\n      {\n"
    "        \"@type\": \"type.googleapis.com/google.rpc.LocalizedMessage\","
    "\n        \"locale\": \"en-US\",\n        \"message\": \"API key not "
    "valid. Please pass a valid API key.\"\n      }\n    ]\n  }\n}\n";
static const char body_invalid_arg[] =
    "{\n  \"error\": {\n    \"code\": 400,\n    \"message\": \"* "
    "GenerateContentRequest.contents: contents is not specified\\n\",\n"
    "    \"status\": \"INVALID_ARGUMENT\"\n  }\n}\n";
static const char body_429[] =
    "{\n  \"error\": {\n    \"code\": 429,\n    \"message\": \"You exceeded "
    "your current quota, please check your plan and billing details.\",\n"
    "    \"status\": \"RESOURCE_EXHAUSTED\",\n    \"details\": [\n      {\n"
    "        \"@type\": \"type.googleapis.com/google.rpc.QuotaFailure\",\n"
    "        \"violations\": [{\"quotaMetric\": \"generativelanguage."
    "googleapis.com/generate_content_free_tier_requests\"}]\n      },\n"
    "      {\n        \"@type\": \"type.googleapis.com/google.rpc."
    "RetryInfo\",\n        \"retryDelay\": \"27s\"\n      }\n    ]\n  }\n}\n";
static const char body_503[] =
    "{\n  \"error\": {\n    \"code\": 503,\n    \"message\": \"The model is "
    "overloaded. Please try again later.\",\n    \"status\": "
    "\"UNAVAILABLE\"\n  }\n}\n";
static const char body_404[] =
    "{\n  \"error\": {\n    \"code\": 404,\n    \"message\": \"models/"
    "gemini-9-ultra is not found for API version v1beta, or is not "
    "supported for generateContent.\",\n    \"status\": \"NOT_FOUND\"\n"
    "  }\n}\n";
static const char body_403[] =
    "{\n  \"error\": {\n    \"code\": 403,\n    \"message\": \"Method doesn't"
    " allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call "
    "this API.\",\n    \"status\": \"PERMISSION_DENIED\"\n  }\n}\n";
static const char body_location[] =
    "{\n  \"error\": {\n    \"code\": 400,\n    \"message\": \"User location "
    "is not supported for the API use.\",\n    \"status\": "
    "\"FAILED_PRECONDITION\"\n  }\n}\n";
static const char body_500[] =
    "{\n  \"error\": {\n    \"code\": 500,\n    \"message\": \"An internal "
    "error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting\",\n"
    "    \"status\": \"INTERNAL\"\n  }\n}\n";
static const char body_504[] =
    "{\n  \"error\": {\n    \"code\": 504,\n    \"message\": \"The request "
    "timed out. Please try again.\",\n    \"status\": "
    "\"DEADLINE_EXCEEDED\"\n  }\n}\n";
static const char body_leak[] =
    "{\"error\":{\"code\":400,\"message\":\"Invalid header x-goog-api-key: "
    SECRET "\",\"status\":\"INVALID_ARGUMENT\"}}";

static const ark_test_map_case_t map_cases[] = {
    { 400, body_key_invalid, 502, "upstream_error", "upstream_auth_failed",
      "The upstream provider rejected the gateway's credentials.", 0 },
    { 400, body_invalid_arg, 400, "invalid_request_error",
      "upstream_rejected_request",
      "* GenerateContentRequest.contents: contents is not specified\n", 0 },
    { 400, body_leak, 400, "invalid_request_error",
      "upstream_rejected_request",
      "The upstream provider rejected the request as invalid.", 0 },
    { 400, "Bad Request", 400, "invalid_request_error",
      "upstream_rejected_request",
      "The upstream provider rejected the request as invalid.", 0 },
    { 400, NULL, 400, "invalid_request_error", "upstream_rejected_request",
      "The upstream provider rejected the request as invalid.", 0 },
    { 400, body_location, 502, "upstream_error", "upstream_error",
      "The upstream provider refused to serve the gateway's account.", 0 },
    { 403, body_403, 502, "upstream_error", "upstream_auth_failed",
      "The upstream provider rejected the gateway's credentials.", 0 },
    { 404, body_404, 502, "upstream_error", "upstream_not_found",
      "The upstream provider does not know the configured model or "
      "endpoint.", 0 },
    { 429, body_429, 429, "rate_limit_error", "upstream_rate_limited",
      "The upstream provider is rate limiting requests; retry later.",
      27 * APR_USEC_PER_SEC },
    { 429, "", 429, "rate_limit_error", "upstream_rate_limited",
      "The upstream provider is rate limiting requests; retry later.", 0 },
    { 500, body_500, 502, "upstream_error", "upstream_error",
      "The upstream provider failed (HTTP 500).", 0 },
    { 503, body_503, 502, "upstream_error", "upstream_error",
      "The upstream provider failed (HTTP 503).", 0 },
    { 504, body_504, 504, "timeout_error", "upstream_timeout",
      "The upstream provider timed out.", 0 },
    { 502, "<html>502 Bad Gateway</html>", 502, "upstream_error",
      "upstream_error", "The upstream provider failed (HTTP 502).", 0 },
};

static void map_error_statuses(void **state)
{
    apr_pool_t *p = *state;

    ark_test_map_errors(provider_make(p, SECRET), map_cases,
                        sizeof(map_cases) / sizeof(map_cases[0]), "AIza", p);
}

static void map_error_key_invalid_streamed(void **state)
{
    /* the same refusal as a stream request gets it: a JSON array */
    apr_pool_t *p = *state;
    const char *body = apr_pstrcat(p, "[", body_key_invalid, "]", NULL);
    ark_err_t err;

    ark_provider_gemini.map_error(&err, provider_make(p, SECRET), 400, body,
                                  strlen(body), p);
    assert_int_equal(err.status, 502);
    assert_string_equal(err.code, "upstream_auth_failed");
    assert_null(strstr(err.message, "API key"));

    /* other API_KEY_* reasons are the gateway's credentials too */
    body = "[{\"error\":{\"code\":400,\"message\":\"API key expired. Please "
           "renew the API key.\",\"status\":\"INVALID_ARGUMENT\",\"details\":"
           "[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
           "\"reason\":\"API_KEY_EXPIRED\"}]}}]";
    ark_provider_gemini.map_error(&err, provider_make(p, SECRET), 400, body,
                                  strlen(body), p);
    assert_int_equal(err.status, 502);
    assert_string_equal(err.code, "upstream_auth_failed");

    /* and a streamed 400 about the request passes its message on */
    body = "[{\"error\":{\"code\":400,\"message\":\"Please use a valid role: "
           "user, model.\",\"status\":\"INVALID_ARGUMENT\"}}]";
    ark_provider_gemini.map_error(&err, provider_make(p, SECRET), 400, body,
                                  strlen(body), p);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.message,
                        "Please use a valid role: user, model.");
}

static void map_error_retry_delays(void **state)
{
    static const struct {
        const char *delay;
        apr_interval_time_t want;
    } delays[] = {
        { "27s", 27 * APR_USEC_PER_SEC },
        { "1.5s", 1500000 },
        { "0.000001s", 1 },
        { "86400s", 3600 * APR_USEC_PER_SEC },
        { "99999999999999999999s", 3600 * APR_USEC_PER_SEC },
        { "27", 0 },
        { "s", 0 },
        { "-3s", 0 },
        { "3ms", 0 },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        const char *body = apr_pstrcat(p,
            "{\"error\":{\"code\":429,\"message\":\"Quota\",\"status\":"
            "\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type."
            "googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"",
            delays[i].delay, "\"}]}}", NULL);
        ark_err_t err;

        ark_provider_gemini.map_error(&err, provider_make(p, SECRET), 429,
                                      body, strlen(body), p);
        assert_int_equal(err.status, 429);
        if (err.retry_after != delays[i].want) {
            fail_msg("retryDelay %s: %" APR_TIME_T_FMT, delays[i].delay,
                     err.retry_after);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(type_registered),
        ARK_TEST(check_options),
        ARK_TEST(request_golden_files),
        ARK_TEST(build_key_never_in_url),
        ARK_TEST(build_model_in_url),
        ARK_TEST(build_tool_choice_modes),
        ARK_TEST(build_refusals),
        ARK_TEST(build_embeddings_refused),
        ARK_TEST(response_golden_files),
        ARK_TEST(parse_ids_unique),
        ARK_TEST(parse_rejects_malformed),
        ARK_TEST(parse_uses_len_not_nul),
        ARK_TEST(parse_text_keeps_nul),
        ARK_TEST(parse_empty_candidates),
        ARK_TEST(stream_golden_files),
        ARK_TEST(stream_cut_before_finish),
        ARK_TEST(stream_prompt_blocked),
        ARK_TEST(stream_finish_reasons),
        ARK_TEST(stream_error_event),
        ARK_TEST(stream_malformed_event),
        ARK_TEST(stream_usage_only_event),
        ARK_TEST(stream_emitter_failure),
        ARK_TEST(map_error_statuses),
        ARK_TEST(map_error_key_invalid_streamed),
        ARK_TEST(map_error_retry_delays),
    };

    return ARK_TEST_RUN("ark_provider_gemini", tests);
}
