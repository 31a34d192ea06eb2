/* Unit tests for the "openai" provider type (ark_provider_openai.c) and
 * the upstream error helper it relies on (ark_provider_error_message).
 *
 * Driven through the ark_provider_openai table, as the handler uses it:
 * the upstream request is parsed back with jansson, answers and stream
 * chunks are shaped like the OpenAI API reference, relayed events are
 * compared byte for byte, and error mappings are checked for status,
 * type, code and message, and for never carrying the provider's secret.
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

#define SECRET "sk-proj-T3stS3cr3tV4lu3-0123456789abcdef"

static ark_provider_t *provider_make(apr_pool_t *p, const char *base_url,
                                     const char *secret)
{
    return ark_test_provider_make(&ark_provider_openai, "openai", base_url,
                                  secret, p);
}

static void parse_req(ark_req_t *req, const char *body, apr_pool_t *p)
{
    ark_test_chat_parse(req, body, strlen(body), p);
}

static json_t *load_json(const char *text, apr_size_t len)
{
    return ark_test_json_parse(text, len, 0, "the body", NULL);
}

/* ------------------------------------------------------ build_request */

static const char chat_body[] =
    "{\"model\":\"chat\",\"messages\":["
    "{\"role\":\"developer\",\"content\":\"You are a helpful assistant.\"},"
    "{\"role\":\"user\",\"content\":\"Hello!\"}],"
    "\"temperature\":0.7,\"max_completion_tokens\":256,"
    "\"response_format\":{\"type\":\"json_object\"},\"seed\":42,"
    "\"user\":\"caf\\u00e9-user\"}";

static void build_plain_request(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, "https://api.openai.com/v1",
                                         SECRET);
    ark_req_t req;
    ark_upstream_req_t up;
    ark_err_t err;
    json_t *sent, *want;

    parse_req(&req, chat_body, p);
    memset(&up, 0, sizeof(up));
    assert_int_equal(ark_provider_openai.build_request(
                         &up, prov, "gpt-4o-mini-2024-07-18", &req, &err, p),
                     APR_SUCCESS);
    assert_string_equal(up.url,
                        "https://api.openai.com/v1/chat/completions");
    assert_non_null(up.headers);
    assert_int_equal(up.headers->nelts, 3);
    assert_string_equal(ark_test_header_at(&up, 0),
                        "Content-Type: application/json");
    assert_string_equal(ark_test_header_at(&up, 1),
                        "Accept: application/json");
    assert_string_equal(ark_test_header_at(&up, 2),
                        "Authorization: Bearer " SECRET);

    /* the client's request, with only the model replaced */
    assert_non_null(up.body);
    assert_int_equal(up.body_len, strlen(up.body));
    sent = load_json(up.body, up.body_len);
    want = load_json(chat_body, strlen(chat_body));
    json_object_set_new(want, "model", json_string("gpt-4o-mini-2024-07-18"));
    assert_true(json_equal(sent, want));
    assert_null(json_object_get(sent, "stream"));
    assert_null(json_object_get(sent, "stream_options"));
    json_decref(sent);
    json_decref(want);
}

static void build_stream_adds_include_usage(void **state)
{
    static const char *const bodies[] = {
        "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"Hi\"}],\"stream\":true}",
        "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"Hi\"}],\"stream\":true,\"stream_options\":null}",
        "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"Hi\"}],\"stream\":true,\"stream_options\":{}}",
        "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"Hi\"}],\"stream\":true,"
        "\"stream_options\":{\"include_usage\":false}}",
        "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"Hi\"}],\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true}}",
    };
    static const int client_wants[] = { 0, 0, 0, 0, 1 };
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, "https://api.deepseek.com",
                                         SECRET);
    apr_size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        ark_req_t req;
        ark_upstream_req_t up;
        ark_err_t err;
        json_t *sent, *opts;

        parse_req(&req, bodies[i], p);
        assert_int_equal(ark_provider_openai.build_request(
                             &up, prov, "deepseek-chat", &req, &err, p),
                         APR_SUCCESS);
        assert_string_equal(up.url,
                            "https://api.deepseek.com/chat/completions");
        assert_int_equal(up.headers->nelts, 3);
        assert_string_equal(ark_test_header_at(&up, 0),
                            "Content-Type: application/json");
        assert_string_equal(ark_test_header_at(&up, 1),
                            "Accept: text/event-stream");
        assert_string_equal(ark_test_header_at(&up, 2),
                            "Authorization: Bearer " SECRET);
        sent = load_json(up.body, up.body_len);
        assert_string_equal(json_string_value(json_object_get(sent,
                                                              "model")),
                            "deepseek-chat");
        assert_true(json_is_true(json_object_get(sent, "stream")));
        opts = json_object_get(sent, "stream_options");
        assert_true(json_is_object(opts));
        assert_int_equal(json_object_size(opts), 1);
        assert_true(json_is_true(json_object_get(opts, "include_usage")));
        assert_true(json_is_array(json_object_get(sent, "messages")));
        json_decref(sent);
        /* what the client asked for is still known */
        assert_int_equal(req.include_usage, client_wants[i]);
        assert_string_equal(req.model, "chat");
    }
}

static void build_keeps_other_stream_options(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, "https://api.openai.com/v1",
                                         SECRET);
    ark_req_t req;
    ark_upstream_req_t up;
    ark_err_t err;
    json_t *sent, *opts;

    parse_req(&req, "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\","
                    "\"content\":\"Hi\"}],\"stream\":true,\"stream_options\":"
                    "{\"include_obfuscation\":false}}", p);
    assert_int_equal(ark_provider_openai.build_request(&up, prov, "gpt-4o",
                                                       &req, &err, p),
                     APR_SUCCESS);
    sent = load_json(up.body, up.body_len);
    opts = json_object_get(sent, "stream_options");
    assert_int_equal(json_object_size(opts), 2);
    assert_true(json_is_false(json_object_get(opts, "include_obfuscation")));
    assert_true(json_is_true(json_object_get(opts, "include_usage")));
    json_decref(sent);
}

static void build_without_secret(void **state)
{
    /* a keyless local upstream: no Authorization header at all */
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, "http://127.0.0.1:11434/v1",
                                         NULL);
    ark_req_t req;
    ark_upstream_req_t up;
    ark_err_t err;
    int i;

    parse_req(&req, chat_body, p);
    assert_int_equal(ark_provider_openai.build_request(&up, prov,
                                                       "llama3.1:8b", &req,
                                                       &err, p),
                     APR_SUCCESS);
    assert_string_equal(up.url, "http://127.0.0.1:11434/v1/chat/completions");
    assert_int_equal(up.headers->nelts, 2);
    for (i = 0; i < up.headers->nelts; i++) {
        assert_null(strstr(ark_test_header_at(&up, i), "Authorization"));
    }
    assert_null(strstr(up.body, "Bearer"));
}

static void build_body_never_holds_secret(void **state)
{
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, "https://api.openai.com/v1",
                                         SECRET);
    ark_req_t req;
    ark_upstream_req_t up;
    ark_err_t err;

    parse_req(&req, chat_body, p);
    assert_int_equal(ark_provider_openai.build_request(&up, prov, "gpt-4o",
                                                       &req, &err, p),
                     APR_SUCCESS);
    assert_null(strstr(up.body, SECRET));
    assert_null(strstr(up.url, SECRET));
}

/* ----------------------------------------------------- parse_response */

/* A chat.completion as in the OpenAI API reference. */
static const char completion[] =
    "{\n"
    "  \"id\": \"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\n"
    "  \"object\": \"chat.completion\",\n"
    "  \"created\": 1741570283,\n"
    "  \"model\": \"gpt-4o-2024-08-06\",\n"
    "  \"choices\": [\n"
    "    {\n"
    "      \"index\": 0,\n"
    "      \"message\": {\n"
    "        \"role\": \"assistant\",\n"
    "        \"content\": \"The image shows a wooden boardwalk extending "
    "through a lush green marshland.\",\n"
    "        \"refusal\": null,\n"
    "        \"annotations\": []\n"
    "      },\n"
    "      \"logprobs\": null,\n"
    "      \"finish_reason\": \"stop\"\n"
    "    }\n"
    "  ],\n"
    "  \"usage\": {\n"
    "    \"prompt_tokens\": 1117,\n"
    "    \"completion_tokens\": 46,\n"
    "    \"total_tokens\": 1163,\n"
    "    \"prompt_tokens_details\": {\n"
    "      \"cached_tokens\": 1024,\n"
    "      \"audio_tokens\": 0\n"
    "    },\n"
    "    \"completion_tokens_details\": {\n"
    "      \"reasoning_tokens\": 0,\n"
    "      \"audio_tokens\": 0,\n"
    "      \"accepted_prediction_tokens\": 0,\n"
    "      \"rejected_prediction_tokens\": 0\n"
    "    }\n"
    "  },\n"
    "  \"service_tier\": \"default\",\n"
    "  \"system_fingerprint\": \"fp_fc9f1d7035\"\n"
    "}\n";

static void parse_real_completion(void **state)
{
    apr_pool_t *p = *state;
    const char *out;
    apr_size_t out_len;
    ark_usage_t u;

    ark_test_parse_ok(&ark_provider_openai, completion,
                      sizeof(completion) - 1, &out, &out_len, &u, p);
    /* relayed byte for byte */
    assert_int_equal(out_len, sizeof(completion) - 1);
    assert_memory_equal(out, completion, out_len);
    assert_int_equal(u.prompt_tokens, 1117);
    assert_int_equal(u.completion_tokens, 46);
    assert_int_equal(u.total_tokens, 1163);
    assert_int_equal(u.cached_tokens, 1024);
}

static void parse_completion_without_usage(void **state)
{
    /* some compatible servers send no usage: tokens stay unknown */
    apr_pool_t *p = *state;
    static const char body[] =
        "{\"id\":\"cmpl-1\",\"object\":\"chat.completion\",\"created\":1,"
        "\"model\":\"llama3.1:8b\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":\"Hi\"},"
        "\"finish_reason\":\"stop\"}]}";
    const char *out;
    apr_size_t out_len;
    ark_usage_t u;

    ark_test_parse_ok(&ark_provider_openai, body, sizeof(body) - 1, &out,
                      &out_len, &u, p);
    assert_int_equal(out_len, sizeof(body) - 1);
    assert_memory_equal(out, body, out_len);
    assert_int_equal(u.prompt_tokens, -1);
    assert_int_equal(u.completion_tokens, -1);
    assert_int_equal(u.total_tokens, -1);
    assert_int_equal(u.cached_tokens, -1);
}

static void parse_rejects_malformed(void **state)
{
    static const char *const bodies[] = {
        /* besides what no answer can be (see ark_test_parse_refuses) */
        "{\"object\":\"chat.completion\",\"choices\":null}",
        "{\"object\":\"chat.completion\",\"choices\":{}}",
        "{\"object\":\"chat.completion\",\"choices\":\"stop\"}",
        "{\"error\":{\"message\":\"Internal error\",\"type\":\"server_error\","
        "\"param\":null,\"code\":null}}",
        "{\"choices\":[]",
    };

    ark_test_parse_refuses(&ark_provider_openai, bodies,
                           sizeof(bodies) / sizeof(bodies[0]), 0, *state);
}

static void parse_uses_len_not_nul(void **state)
{
    /* the body is a buffer with a length, not a C string */
    apr_pool_t *p = *state;
    const char *out;
    apr_size_t out_len;
    ark_usage_t u;

    ark_test_parse_ok(&ark_provider_openai,
                      apr_pstrcat(p, completion, "TRAILING", NULL),
                      sizeof(completion) - 1, &out, &out_len, &u, p);
    assert_int_equal(out_len, sizeof(completion) - 1);
    assert_int_equal(u.total_tokens, 1163);
}

/* ------------------------------------------------------- stream_event */

/* The client sees whatever the upstream sent: no frame check. */
static const ark_test_stream_conf_t stream_conf = {
    .type = &ark_provider_openai,
    .frame = ARK_TEST_FRAME_ANY,
};

static void stream_init(ark_stream_t *st, ark_test_client_t *c,
                        int wants_usage, apr_pool_t *p)
{
    ark_test_stream_init(st, c, &stream_conf, wants_usage, p);
}

/* Chunks of a streamed chat completion, as the API reference shows
 * them (with include_usage: "usage": null until the usage chunk). The
 * spacing and escapes are kept on purpose: relaying is byte for byte. */
static const char chunk_role[] =
    "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\","
    "\"created\":1694268190,\"model\":\"gpt-4o-mini-2024-07-18\","
    "\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}";
static const char chunk_text[] =
    "{\"id\": \"chatcmpl-123\", \"object\": \"chat.completion.chunk\", "
    "\"created\": 1694268190, \"model\": \"gpt-4o-mini-2024-07-18\", "
    "\"choices\": [{\"index\": 0, \"delta\": {\"content\": "
    "\"Caf\\u00e9 \\ud83d\\ude00 \\\"quoted\\\"\\n\"}, "
    "\"logprobs\": null, \"finish_reason\": null}], \"usage\": null}";
static const char chunk_stop[] =
    "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\","
    "\"created\":1694268190,\"model\":\"gpt-4o-mini-2024-07-18\","
    "\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,"
    "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":null}";
static const char chunk_usage[] =
    "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\","
    "\"created\":1694268190,\"model\":\"gpt-4o-mini-2024-07-18\","
    "\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[],"
    "\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,"
    "\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":3,"
    "\"audio_tokens\":0},\"completion_tokens_details\":"
    "{\"reasoning_tokens\":0,\"audio_tokens\":0,"
    "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}";

static void stream_done(void **state)
{
    apr_pool_t *p = *state;
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 0, p);
    assert_int_equal(ark_test_stream_data(&st, "[DONE]"), APR_SUCCESS);
    assert_int_equal(st.done, 1);
    assert_int_equal(c.out->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(c.out, 0, const char *),
                        "data: [DONE]\n\n");
}

static void stream_chunks_relayed_byte_for_byte(void **state)
{
    static const char *const chunks[] = { chunk_role, chunk_text,
                                          chunk_stop };
    apr_pool_t *p = *state;
    ark_stream_t st;
    ark_test_client_t c;
    int i;

    stream_init(&st, &c, 0, p);
    for (i = 0; i < 3; i++) {
        assert_int_equal(ark_test_stream_data(&st, chunks[i]), APR_SUCCESS);
        assert_int_equal(c.out->nelts, i + 1);
        assert_string_equal(APR_ARRAY_IDX(c.out, i, const char *),
                            apr_pstrcat(p, "data: ", chunks[i], "\n\n",
                                        NULL));
        assert_int_equal(st.events, (apr_size_t)i + 1);
        assert_int_equal(st.done, 0);
    }
    /* "usage": null leaves the tokens unknown */
    assert_int_equal(st.usage.prompt_tokens, -1);
    assert_int_equal(st.usage.completion_tokens, -1);
    assert_int_equal(st.usage.total_tokens, -1);
    assert_int_equal(st.usage.cached_tokens, -1);
}

static void stream_usage_chunk_withheld(void **state)
{
    /* the gateway asked for usage on the client's behalf: recorded, not
     * shown */
    apr_pool_t *p = *state;
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 0, p);
    assert_int_equal(ark_test_stream_data(&st, chunk_stop), APR_SUCCESS);
    assert_int_equal(ark_test_stream_data(&st, chunk_usage), APR_SUCCESS);
    assert_int_equal(c.out->nelts, 1);
    assert_int_equal(st.events, 1);
    assert_int_equal(st.usage.prompt_tokens, 19);
    assert_int_equal(st.usage.completion_tokens, 10);
    assert_int_equal(st.usage.total_tokens, 29);
    assert_int_equal(st.usage.cached_tokens, 3);
    assert_int_equal(ark_test_stream_data(&st, "[DONE]"), APR_SUCCESS);
    assert_int_equal(c.out->nelts, 2);
    assert_string_equal(c.all, apr_pstrcat(p, "data: ", chunk_stop, "\n\n",
                                           "data: [DONE]\n\n", NULL));
    assert_null(strstr(c.all, "prompt_tokens"));
}

static void stream_usage_chunk_relayed_when_asked(void **state)
{
    apr_pool_t *p = *state;
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 1, p);
    assert_int_equal(ark_test_stream_data(&st, chunk_usage), APR_SUCCESS);
    assert_int_equal(c.out->nelts, 1);
    assert_int_equal(st.events, 1);
    assert_string_equal(APR_ARRAY_IDX(c.out, 0, const char *),
                        apr_pstrcat(p, "data: ", chunk_usage, "\n\n", NULL));
    assert_int_equal(st.usage.prompt_tokens, 19);
    assert_int_equal(st.usage.completion_tokens, 10);
    assert_int_equal(st.usage.total_tokens, 29);
    assert_int_equal(st.usage.cached_tokens, 3);
}

static void stream_usage_in_content_chunk(void **state)
{
    /* servers that put usage into the last content chunk: the content
     * must reach the client whatever it asked for */
    apr_pool_t *p = *state;
    static const char chunk[] =
        "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,"
        "\"model\":\"deepseek-chat\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"!\"},\"finish_reason\":\"stop\"}],\"usage\":"
        "{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}";
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 0, p);
    assert_int_equal(ark_test_stream_data(&st, chunk), APR_SUCCESS);
    assert_int_equal(c.out->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(c.out, 0, const char *),
                        apr_pstrcat(p, "data: ", chunk, "\n\n", NULL));
    assert_int_equal(st.usage.total_tokens, 9);
    assert_int_equal(st.usage.cached_tokens, -1);
}

static void stream_malformed_event(void **state)
{
    static const char *const events[] = {
        "",
        "{\"id\":\"chatcmpl-123\",\"choices\":[",
        "not json",
        "[1,2,3]",
        "\"text\"",
        "null",
        "[DONE] ",
    };

    ark_test_stream_refuses(&stream_conf, events,
                            sizeof(events) / sizeof(events[0]), *state);
}

static void stream_error_event(void **state)
{
    /* an upstream failing mid-stream sends an error object */
    apr_pool_t *p = *state;
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 0, p);
    assert_int_equal(ark_test_stream_data(&st, chunk_role), APR_SUCCESS);
    assert_int_equal(ark_test_stream_data(&st,
                                          "{\"error\":{\"message\":\"The "
                                          "server had an error while "
                                          "processing your request. Sorry "
                                          "about that!\",\"type\":"
                                          "\"server_error\",\"param\":null,"
                                          "\"code\":null}}"),
                     APR_EGENERAL);
    assert_int_equal(c.out->nelts, 1);
    assert_int_equal(st.events, 1);
    assert_int_equal(st.done, 0);
}

static void stream_emitter_failure(void **state)
{
    apr_pool_t *p = *state;
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 0, p);
    c.fail_with = APR_ECONNABORTED;
    assert_int_equal(ark_test_stream_data(&st, chunk_text), APR_ECONNABORTED);
    assert_int_equal(ark_test_stream_data(&st, "[DONE]"), APR_ECONNABORTED);

    stream_init(&st, &c, 1, p);
    c.fail_with = APR_EOF;
    assert_int_equal(ark_test_stream_data(&st, chunk_usage), APR_EOF);
    /* the usage was still recorded for the access log */
    assert_int_equal(st.usage.total_tokens, 29);
}

/* The whole path: upstream bytes through the SSE parser into the
 * translator, in any split. */
static void stream_whole_path_in_any_split(void **state)
{
    apr_pool_t *p = *state;
    const char *upstream = apr_pstrcat(p,
        ": OPENROUTER PROCESSING\r\n\r\n",
        "data: ", chunk_role, "\r\n\r\n",
        "data: ", chunk_text, "\r\n\r\n",
        ": keep-alive\r\n\r\n",
        "data: ", chunk_stop, "\r\n\r\n",
        "data: ", chunk_usage, "\r\n\r\n",
        "data: [DONE]\r\n\r\n", NULL);
    apr_size_t len = strlen(upstream), step;
    int wants;

    for (wants = 0; wants < 2; wants++) {
        const char *want = apr_pstrcat(p,
            "data: ", chunk_role, "\n\n",
            "data: ", chunk_text, "\n\n",
            "data: ", chunk_stop, "\n\n",
            wants ? "data: " : "", wants ? chunk_usage : "",
            wants ? "\n\n" : "",
            "data: [DONE]\n\n", NULL);

        /* steps of 1 (byte by byte) up to the whole stream at once */
        for (step = 1; step <= len; step = step < 64 ? step + 1 : len) {
            ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
            ark_test_split_t split = { .mode = ARK_TEST_SPLIT_STEP,
                                       .size = step };
            ark_stream_t st;
            ark_test_client_t c;

            stream_init(&st, &c, wants, p);
            assert_int_equal(ark_test_sse_feed(sp, upstream, len, &split,
                                               ark_test_stream_event, &st),
                             APR_SUCCESS);
            assert_false(ark_sse_pending(sp));
            assert_int_equal(st.done, 1);
            assert_string_equal(c.all, want);
            assert_int_equal(st.events, wants ? 4 : 3);
            assert_int_equal(st.usage.prompt_tokens, 19);
            assert_int_equal(st.usage.completion_tokens, 10);
            assert_int_equal(st.usage.total_tokens, 29);
            assert_int_equal(st.usage.cached_tokens, 3);
            apr_pool_destroy(st.rpool);
            if (step == len) {
                break;
            }
        }
    }
}

/* The usual single-line chunk is read by the scanner, a chunk sent as
 * several data: lines through a jansson tree: both must come to the
 * same outcome (status, events relayed or withheld, content events
 * counted, usage) on every chunk. Each chunk is fed once as one line and
 * once with a line break after its first byte (whitespace there). */
static void stream_fast_path_agrees_with_tree(void **state)
{
    static const char *const chunks[] = {
        chunk_role, chunk_text, chunk_stop, chunk_usage,
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"f\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[]}}]}",
        "{\"choices\":[{\"delta\":{}},{\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}},{\"delta\":{}}]}",
        "{\"error\":null,\"choices\":[]}",
        "{\"error\":{\"message\":\"overloaded\"}}",
        "[1,2]",
        "{\"a\":1",
        "{\"choices\" : [ \t{ \"delta\" : { \"content\" : \"hi\" } } ] }",
        "{\"choices\":[{\"delta\":{\"content\":null}}]}",
        "{\"choices\":[{\"delta\":{\"content\":5}}]}",
        "{\"choices\":{\"delta\":{\"content\":\"x\"}}}",
        "{\"choices\":[{\"delta\":\"x\"}]}",
        "{\"choices\":[],\"prompt_filter_results\":[]}",
        "{\"choices\":[5]}",
        "{\"choices\":[{\"delta\":{\"content\":\"\\u00e9\"}}]}",
        "{\"choices\":[],\"choices\":[{\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\",\"content\":\"\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":{"
        "\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}",
        "{\"choices\":[{\"delta\":{\"content\":\"\\ud800\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"a\x01\"}}]}",
        /* the single-pass scan (ark_json_scan_nested): escapes in the
         * content, an only choice whose index is not 0, delta or
         * choices repeated, content and tool_calls outside
         * choices[0].delta, nested arrays, malformed chunks */
        "{\"choices\":[{\"delta\":{\"content\":\"\\\"a\\\\b\\n\\u00e9\\\"\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"\\\"\"}}]}",
        "{\"choices\":[{\"index\":3,\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"},\"delta\":{}}]}",
        "{\"choices\":[{\"delta\":{},\"delta\":{\"tool_calls\":[1]}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"choices\":[{}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{}]}}],"
        "\"choices\":[{\"delta\":5}]}",
        "{\"content\":\"x\",\"delta\":{\"content\":\"x\"},"
        "\"choices\":[{\"delta\":{}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"},"
        "\"delta\":{\"x\":{\"content\":\"y\",\"tool_calls\":[1]}}}]}",
        "{\"choices\":[[{\"delta\":{\"content\":\"x\"}}]]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":{\"a\":1}}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{"
        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]}}]}",
        "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
        "\"completion_tokens\":20,\"total_tokens\":29,"
        "\"prompt_tokens_details\":{\"cached_tokens\":3}}}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}},]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x}}]}",
        "{\"choices\":[{\"delta\":{\"content\" \"x\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]} x",
    };
    apr_pool_t *p = *state;
    apr_size_t i;
    int wants;

    for (wants = 0; wants < 2; wants++) {
        for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
            const char *one = chunks[i];
            const char *two = apr_psprintf(p, "%c\n%s", one[0], one + 1);
            ark_stream_t s1, s2;
            ark_test_client_t c1, c2;
            apr_status_t r1, r2;

            stream_init(&s1, &c1, wants, p);
            stream_init(&s2, &c2, wants, p);
            r1 = ark_test_stream_data(&s1, one);
            r2 = ark_test_stream_data(&s2, two);
            if (r1 != r2 || s1.events != s2.events
                || s1.content_events != s2.content_events
                || c1.out->nelts != c2.out->nelts
                || s1.usage.prompt_tokens != s2.usage.prompt_tokens
                || s1.usage.completion_tokens != s2.usage.completion_tokens
                || s1.usage.total_tokens != s2.usage.total_tokens
                || s1.usage.cached_tokens != s2.usage.cached_tokens) {
                fail_msg("paths disagree on chunk %d (wants usage %d): "
                         "rv %d/%d events %d/%d content %d/%d", (int)i,
                         wants, r1, r2, (int)s1.events, (int)s2.events,
                         (int)s1.content_events, (int)s2.content_events);
            }
            if (r1 == APR_SUCCESS && s1.events) {
                /* single-line chunks are relayed byte for byte */
                assert_string_equal(
                    APR_ARRAY_IDX(c1.out, 0, const char *),
                    apr_pstrcat(p, "data: ", one, "\n\n", NULL));
            }
        }
    }
}

/* What the single scan of a chunk decides, spelled out: the status, the
 * events relayed and the content events counted (client not asking for
 * usage). */
static void stream_single_pass_outcomes(void **state)
{
    static const struct {
        const char *data;
        apr_status_t rv;
        int events, content;
    } cases[] = {
        { "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}",
          APR_SUCCESS, 1, 1 },
        { "{\"choices\":[{\"index\":2,\"delta\":{\"content\":\"Hi\"}}]}",
          APR_SUCCESS, 1, 1 },
        { "{\"choices\":[{\"delta\":{\"content\":\"\\\"}\\\\\"}}]}",
          APR_SUCCESS, 1, 1 },
        { "{\"choices\":[{\"delta\":{\"content\":\"\"}}]}",
          APR_SUCCESS, 1, 0 },
        { "{\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}",
          APR_SUCCESS, 1, 0 },
        { "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}",
          APR_SUCCESS, 1, 1 },
        { "{\"choices\":[{\"delta\":{\"tool_calls\":[]}}]}",
          APR_SUCCESS, 1, 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"x\"},\"delta\":{}}]}",
          APR_SUCCESS, 1, 0 },
        { "{\"choices\":[{\"delta\":{}}],\"choices\":[{\"delta\":{"
          "\"content\":\"x\"}}]}", APR_SUCCESS, 1, 1 },
        { "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}",
          APR_SUCCESS, 1, 0 },
        { "{\"choices\":[],\"usage\":{\"prompt_tokens\":1,"
          "\"completion_tokens\":2,\"total_tokens\":3}}", APR_SUCCESS, 0, 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]", APR_EINVAL, 0,
          0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"x\"}}],}", APR_EINVAL,
          0, 0 },
        { "{\"error\":{\"message\":\"boom\"},\"choices\":[{\"delta\":{"
          "\"content\":\"x\"}}]}", APR_EGENERAL, 0, 0 },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_stream_t st;
        ark_test_client_t c;
        apr_status_t rv;

        stream_init(&st, &c, 0, p);
        rv = ark_test_stream_data(&st, cases[i].data);
        if (rv != cases[i].rv || (int)st.events != cases[i].events
            || (int)st.content_events != cases[i].content) {
            fail_msg("case %d: rv %d events %d content %d", (int)i, rv,
                     (int)st.events, (int)st.content_events);
        }
        assert_int_equal(c.out->nelts, cases[i].events);
    }
}

/* A raw NUL in the data is refused by both paths. */
static void stream_fast_path_refuses_nul(void **state)
{
    static const char data[] = "{\"choices\":[]}\0 ";
    apr_pool_t *p = *state;
    ark_sse_event_t ev;
    ark_stream_t st;
    ark_test_client_t c;

    stream_init(&st, &c, 0, p);
    ev.event = "";
    ev.wire = NULL;
    ev.data = data;
    ev.data_len = sizeof(data) - 1;
    assert_int_equal(ark_test_stream_event(&st, &ev), APR_EINVAL);
    assert_int_equal(c.out->nelts, 0);
}

/* ---------------------------------------------------------- map_error */

/* OpenAI error bodies, as the API returns them. */
static const char body_400[] =
    "{\n  \"error\": {\n    \"message\": \"Invalid value for 'temperature': "
    "expected a number between 0 and 2.\",\n    \"type\": "
    "\"invalid_request_error\",\n    \"param\": \"temperature\",\n"
    "    \"code\": \"invalid_value\"\n  }\n}\n";
static const char body_401[] =
    "{\n  \"error\": {\n    \"message\": \"Incorrect API key provided: "
    "sk-proj-********************************cdef. You can find your API "
    "key at https://platform.openai.com/account/api-keys.\",\n"
    "    \"type\": \"invalid_request_error\",\n    \"param\": null,\n"
    "    \"code\": \"invalid_api_key\"\n  }\n}\n";
static const char body_404[] =
    "{\n  \"error\": {\n    \"message\": \"The model `gpt-5-turbo` does not "
    "exist or you do not have access to it.\",\n    \"type\": "
    "\"invalid_request_error\",\n    \"param\": null,\n"
    "    \"code\": \"model_not_found\"\n  }\n}\n";
static const char body_429[] =
    "{\n  \"error\": {\n    \"message\": \"Rate limit reached for gpt-4o in "
    "organization org-abc123 on tokens per min (TPM): Limit 30000, Used "
    "29000, Requested 2000. Please try again in 2s.\",\n    \"type\": "
    "\"tokens\",\n    \"param\": null,\n    \"code\": "
    "\"rate_limit_exceeded\"\n  }\n}\n";
static const char body_500[] =
    "{\"error\":{\"message\":\"The server had an error while processing "
    "your request. Sorry about that!\",\"type\":\"server_error\","
    "\"param\":null,\"code\":null}}";
static const char body_leak[] =
    "{\"error\":{\"message\":\"Header Authorization: Bearer " SECRET
    " is malformed\",\"type\":\"invalid_request_error\",\"param\":null,"
    "\"code\":null}}";

/* What the client is told (never with a Retry-After). */
static const ark_test_map_case_t map_cases[] = {
    { 400, body_400, 400, "invalid_request_error",
      "upstream_rejected_request",
      "Invalid value for 'temperature': expected a number between 0 and "
      "2.", 0 },
    { 400, "Bad Request", 400, "invalid_request_error",
      "upstream_rejected_request",
      "The upstream provider rejected the request as invalid.", 0 },
    { 400, body_leak, 400, "invalid_request_error",
      "upstream_rejected_request",
      "The upstream provider rejected the request as invalid.", 0 },
    { 400, NULL, 400, "invalid_request_error", "upstream_rejected_request",
      "The upstream provider rejected the request as invalid.", 0 },
    { 422, "{\"object\":\"error\",\"message\":\"bad\",\"code\":422}", 400,
      "invalid_request_error", "upstream_rejected_request",
      "The upstream provider rejected the request as invalid.", 0 },
    { 401, body_401, 502, "upstream_error", "upstream_auth_failed",
      "The upstream provider rejected the gateway's credentials.", 0 },
    { 403, "{\"error\":{\"message\":\"Project proj_abc does not have access "
           "to model gpt-4o\",\"type\":\"invalid_request_error\"}}",
      502, "upstream_error", "upstream_auth_failed",
      "The upstream provider rejected the gateway's credentials.", 0 },
    { 404, body_404, 502, "upstream_error", "upstream_not_found",
      "The upstream provider does not know the configured model or "
      "endpoint.", 0 },
    { 408, "", 504, "timeout_error", "upstream_timeout",
      "The upstream provider timed out.", 0 },
    { 413, "{\"error\":{\"message\":\"Request too large for gpt-4o: "
           "limit 30000 tokens.\",\"type\":\"invalid_request_error\"}}",
      413, "invalid_request_error", "request_too_large",
      "Request too large for gpt-4o: limit 30000 tokens.", 0 },
    { 413, "<html>413 Request Entity Too Large</html>", 413,
      "invalid_request_error", "request_too_large",
      "The upstream provider rejected the request as too large.", 0 },
    { 429, body_429, 429, "rate_limit_error", "upstream_rate_limited",
      "The upstream provider is rate limiting requests; retry later.", 0 },
    { 500, body_500, 502, "upstream_error", "upstream_error",
      "The upstream provider failed (HTTP 500).", 0 },
    { 502, "<html>502 Bad Gateway</html>", 502, "upstream_error",
      "upstream_error", "The upstream provider failed (HTTP 502).", 0 },
    { 503, "{\"error\":{\"message\":\"The engine is currently overloaded, "
           "please try again later\",\"type\":\"server_error\"}}",
      502, "upstream_error", "upstream_error",
      "The upstream provider failed (HTTP 503).", 0 },
    { 503, body_leak, 502, "upstream_error", "upstream_error",
      "The upstream provider failed (HTTP 503).", 0 },
};

static void map_error_statuses(void **state)
{
    apr_pool_t *p = *state;

    ark_test_map_errors(provider_make(p, "https://api.openai.com/v1",
                                      SECRET),
                        map_cases, sizeof(map_cases) / sizeof(map_cases[0]),
                        "sk-proj", p);
}

static void map_error_auth_never_relays_upstream_text(void **state)
{
    /* whatever a 401 says (even harmless text), the client only learns
     * that the gateway's credentials were refused */
    apr_pool_t *p = *state;
    ark_provider_t *prov = provider_make(p, "https://api.openai.com/v1",
                                         NULL);
    ark_err_t err;
    static const char body[] =
        "{\"error\":{\"message\":\"You didn't provide an API key.\","
        "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}";

    ark_provider_openai.map_error(&err, prov, 401, body, sizeof(body) - 1,
                                  p);
    assert_int_equal(err.status, 502);
    assert_string_equal(err.type, "upstream_error");
    assert_string_equal(err.code, "upstream_auth_failed");
    assert_null(strstr(err.message, "API key"));
}

/* -------------------------------------------- ark_provider_error_message */

static void error_message_extracts(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(ark_provider_error_message(body_400,
                                                   sizeof(body_400) - 1,
                                                   SECRET, p),
                        "Invalid value for 'temperature': expected a number "
                        "between 0 and 2.");
    assert_string_equal(ark_provider_error_message(body_404,
                                                   sizeof(body_404) - 1,
                                                   NULL, p),
                        "The model `gpt-5-turbo` does not exist or you do "
                        "not have access to it.");
}

static void error_message_absent(void **state)
{
    static const char *const bodies[] = {
        "", "Bad Gateway", "[]", "{}", "{\"error\":\"boom\"}",
        "{\"error\":{}}", "{\"error\":{\"message\":\"\"}}",
        "{\"error\":{\"message\":42}}", "{\"error\":{\"message\":null}}",
        "{\"message\":\"top-level message\"}",
        "{\"error\":{\"message\":\"truncated",
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        if (ark_provider_error_message(bodies[i], strlen(bodies[i]), SECRET,
                                       p)) {
            fail_msg("message found in: %s", bodies[i]);
        }
    }
    assert_null(ark_provider_error_message(NULL, 0, SECRET, p));
}

static const char *message_body(apr_pool_t *p, const char *msg)
{
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "message", msg, "type",
                          "invalid_request_error");
    const char *text = ark_json_pdump(j, NULL, p);

    json_decref(j);
    return text;
}

static const char *msg_for(apr_pool_t *p, const char *msg,
                           const char *secret)
{
    const char *body = message_body(p, msg);

    return ark_provider_error_message(body, strlen(body), secret, p);
}

static void error_message_hides_secret(void **state)
{
    apr_pool_t *p = *state;

    /* the whole secret, its first 8 characters (OpenAI's masked key),
     * any 8 characters from its middle, its last 8 */
    assert_null(msg_for(p, "Incorrect API key provided: " SECRET ".",
                        SECRET));
    assert_null(msg_for(p, "Incorrect API key provided: sk-proj-*****"
                           "****cdef.", SECRET));
    assert_null(msg_for(p, "bad token ...S3cr3tV4... here", SECRET));
    assert_null(msg_for(p, "ends 89abcdef", SECRET));
    /* 7 characters are not enough to say anything */
    assert_string_equal(msg_for(p, "key ending in 9abcdef is invalid",
                                SECRET),
                        "key ending in 9abcdef is invalid");
    assert_string_equal(msg_for(p, "sk-proj is not accepted here", SECRET),
                        "sk-proj is not accepted here");
    /* a secret shorter than 8 characters is matched whole */
    assert_null(msg_for(p, "bad key abc123!", "abc123"));
    assert_string_equal(msg_for(p, "bad key abc12", "abc123"),
                        "bad key abc12");
    /* without a secret nothing is withheld */
    assert_string_equal(msg_for(p, "Incorrect API key provided: " SECRET,
                                NULL),
                        "Incorrect API key provided: " SECRET);
}

static void error_message_truncated(void **state)
{
    apr_pool_t *p = *state;
    char *long_msg = apr_palloc(p, 2001);
    const char *m;

    memset(long_msg, 'e', 2000);
    long_msg[2000] = '\0';
    m = msg_for(p, long_msg, SECRET);
    assert_non_null(m);
    assert_int_equal(strlen(m), 512 + 3);
    assert_string_equal(m + 512, "...");
    assert_memory_equal(m, long_msg, 512);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(build_plain_request),
        ARK_TEST(build_stream_adds_include_usage),
        ARK_TEST(build_keeps_other_stream_options),
        ARK_TEST(build_without_secret),
        ARK_TEST(build_body_never_holds_secret),
        ARK_TEST(parse_real_completion),
        ARK_TEST(parse_completion_without_usage),
        ARK_TEST(parse_rejects_malformed),
        ARK_TEST(parse_uses_len_not_nul),
        ARK_TEST(stream_done),
        ARK_TEST(stream_chunks_relayed_byte_for_byte),
        ARK_TEST(stream_usage_chunk_withheld),
        ARK_TEST(stream_usage_chunk_relayed_when_asked),
        ARK_TEST(stream_usage_in_content_chunk),
        ARK_TEST(stream_malformed_event),
        ARK_TEST(stream_error_event),
        ARK_TEST(stream_emitter_failure),
        ARK_TEST(stream_whole_path_in_any_split),
        ARK_TEST(stream_fast_path_agrees_with_tree),
        ARK_TEST(stream_single_pass_outcomes),
        ARK_TEST(stream_fast_path_refuses_nul),
        ARK_TEST(map_error_statuses),
        ARK_TEST(map_error_auth_never_relays_upstream_text),
        ARK_TEST(error_message_extracts),
        ARK_TEST(error_message_absent),
        ARK_TEST(error_message_hides_secret),
        ARK_TEST(error_message_truncated),
    };

    return ARK_TEST_RUN("ark_provider_openai", tests);
}
