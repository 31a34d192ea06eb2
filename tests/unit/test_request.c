/* Unit tests for request parsing and validation (ark_request.c).
 *
 * Valid requests are shaped like the OpenAI API reference examples;
 * every refusal is checked for its status, type, code, param and
 * message. The parsed document must belong to the pool it was parsed
 * with: the ownership tests count its references, and the whole file
 * runs under AddressSanitizer (leaks and double frees).
 */
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>

#include "ark_request.h"
#include "ark_testutil.h"

static apr_status_t parse_str(ark_req_t *req, const char *body,
                              ark_err_t *err, apr_pool_t *p)
{
    return ark_chat_req_parse(req, body, strlen(body), err, p);
}

/* ----------------------------------------------------- valid requests */

static void req_minimal(void **state)
{
    apr_pool_t *p = *state;
    ark_req_t req;
    ark_err_t err;
    static const char body[] =
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"Hello!\"}]}";

    assert_int_equal(parse_str(&req, body, &err, p), APR_SUCCESS);
    assert_string_equal(req.model, "gpt-4o-mini");
    assert_int_equal(req.stream, 0);
    assert_int_equal(req.include_usage, 0);
    assert_int_equal(req.n_messages, 1);
    assert_true(json_is_object(req.root));
    /* model is a pool copy: it outlives replacing "model" in the
     * document, as translators do */
    json_object_set_new(req.root, "model", json_string("gpt-4o-2024-08-06"));
    assert_string_equal(req.model, "gpt-4o-mini");
}

static void req_full_conversation(void **state)
{
    /* every role, content parts, a null assistant content with tool
     * calls, and fields the gateway leaves to the upstream */
    apr_pool_t *p = *state;
    ark_req_t req;
    ark_err_t err;
    static const char body[] =
        "{\n"
        "  \"model\": \"gpt-4o\",\n"
        "  \"messages\": [\n"
        "    {\"role\": \"developer\", \"content\": \"You are a helpful "
        "assistant.\"},\n"
        "    {\"role\": \"system\", \"content\": [{\"type\": \"text\", "
        "\"text\": \"Answer briefly.\"}]},\n"
        "    {\"role\": \"user\", \"content\": [\n"
        "      {\"type\": \"text\", \"text\": \"What's in this image?\"},\n"
        "      {\"type\": \"image_url\", \"image_url\": {\"url\": "
        "\"https://upload.wikimedia.org/wikipedia/commons/d/dd/"
        "Gfp-wisconsin-madison-the-nature-boardwalk.jpg\"}}\n"
        "    ]},\n"
        "    {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [\n"
        "      {\"id\": \"call_abc123\", \"type\": \"function\", "
        "\"function\": {\"name\": \"get_current_weather\", "
        "\"arguments\": \"{\\\"location\\\": \\\"Boston, MA\\\"}\"}}\n"
        "    ]},\n"
        "    {\"role\": \"tool\", \"tool_call_id\": \"call_abc123\", "
        "\"content\": \"{\\\"temperature\\\": 22}\"},\n"
        "    {\"role\": \"function\", \"name\": \"legacy\", "
        "\"content\": \"ok\"},\n"
        "    {\"role\": \"assistant\"}\n"
        "  ],\n"
        "  \"tools\": [{\"type\": \"function\", \"function\": {\"name\": "
        "\"get_current_weather\", \"parameters\": {\"type\": \"object\", "
        "\"properties\": {\"location\": {\"type\": \"string\"}}}}}],\n"
        "  \"tool_choice\": \"auto\",\n"
        "  \"temperature\": 0.2,\n"
        "  \"max_completion_tokens\": 300,\n"
        "  \"n\": 1,\n"
        "  \"user\": \"user-1234\",\n"
        "  \"stream\": false,\n"
        "  \"stream_options\": null\n"
        "}\n";

    assert_int_equal(parse_str(&req, body, &err, p), APR_SUCCESS);
    assert_string_equal(req.model, "gpt-4o");
    assert_int_equal(req.n_messages, 7);
    assert_int_equal(req.stream, 0);
    assert_int_equal(req.include_usage, 0);
    /* unknown fields stay in the document for the upstream */
    assert_string_equal(json_string_value(json_object_get(req.root,
                                                          "tool_choice")),
                        "auto");
    assert_int_equal(json_integer_value(json_object_get(
                         req.root, "max_completion_tokens")),
                     300);
}

static void req_stream_flags(void **state)
{
    static const struct {
        const char *extra;
        int stream;
        int include_usage;
    } cases[] = {
        { "", 0, 0 },
        { ",\"stream\":false", 0, 0 },
        { ",\"stream\":null", 0, 0 },
        { ",\"stream\":true", 1, 0 },
        { ",\"stream\":true,\"stream_options\":null", 1, 0 },
        { ",\"stream\":true,\"stream_options\":{}", 1, 0 },
        { ",\"stream\":true,\"stream_options\":{\"include_usage\":false}",
          1, 0 },
        { ",\"stream\":true,\"stream_options\":{\"include_usage\":true}",
          1, 1 },
        { ",\"stream_options\":{\"include_usage\":true},\"stream\":true",
          1, 1 },
        { ",\"stream\":true,\"stream_options\":{\"include_usage\":true,"
          "\"include_obfuscation\":false}", 1, 1 },
        { ",\"stream_options\":null", 0, 0 },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_req_t req;
        ark_err_t err;
        const char *body = apr_pstrcat(
            p, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"Say this is a test\"}]",
            cases[i].extra, "}", NULL);

        assert_int_equal(parse_str(&req, body, &err, p), APR_SUCCESS);
        assert_int_equal(req.stream, cases[i].stream);
        assert_int_equal(req.include_usage, cases[i].include_usage);
    }
}

static void req_parses_exactly_len_bytes(void **state)
{
    /* the body need not be NUL-terminated; bytes after len are ignored */
    apr_pool_t *p = *state;
    ark_req_t req;
    ark_err_t err;
    static const char buf[] =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
        "GARBAGE";

    assert_int_equal(ark_chat_req_parse(&req, buf, sizeof(buf) - 8, &err,
                                        p),
                     APR_SUCCESS);
    assert_string_equal(req.model, "m");
    assert_int_equal(ark_chat_req_parse(&req, buf, sizeof(buf) - 1, &err,
                                        p),
                     APR_EINVAL);
    assert_string_equal(err.code, "invalid_json");
}

/* ------------------------------------------------------------- 400s */

typedef struct {
    const char *name;
    const char *body;
    const char *code;
    const char *param;        /* NULL: JSON null */
    const char *message;      /* exact message */
} bad_case_t;

#define MSG1 "{\"role\":\"user\",\"content\":\"Hi\"}"

static const bad_case_t bad_cases[] = {
    { "non-object array",
      "[{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "]}]",
      "invalid_json", NULL, "The request body must be a JSON object." },
    { "missing model", "{\"messages\":[" MSG1 "]}",
      "missing_required_parameter", "model",
      "Missing required parameter: 'model'." },
    { "model before messages", "{\"messages\":[]}",
      "missing_required_parameter", "model",
      "Missing required parameter: 'model'." },
    { "model number", "{\"model\":4,\"messages\":[" MSG1 "]}",
      "invalid_type", "model",
      "Invalid type for 'model': expected a non-empty string." },
    { "model null", "{\"model\":null,\"messages\":[" MSG1 "]}",
      "invalid_type", "model",
      "Invalid type for 'model': expected a non-empty string." },
    { "model empty", "{\"model\":\"\",\"messages\":[" MSG1 "]}",
      "invalid_type", "model",
      "Invalid type for 'model': expected a non-empty string." },
    { "model array", "{\"model\":[\"gpt-4o\"],\"messages\":[" MSG1 "]}",
      "invalid_type", "model",
      "Invalid type for 'model': expected a non-empty string." },
    { "missing messages", "{\"model\":\"gpt-4o\"}",
      "missing_required_parameter", "messages",
      "Missing required parameter: 'messages'." },
    { "messages string", "{\"model\":\"gpt-4o\",\"messages\":\"Hi\"}",
      "invalid_type", "messages",
      "Invalid type for 'messages': expected an array of message "
      "objects." },
    { "messages object", "{\"model\":\"gpt-4o\",\"messages\":" MSG1 "}",
      "invalid_type", "messages",
      "Invalid type for 'messages': expected an array of message "
      "objects." },
    { "messages null", "{\"model\":\"gpt-4o\",\"messages\":null}",
      "invalid_type", "messages",
      "Invalid type for 'messages': expected an array of message "
      "objects." },
    { "messages empty", "{\"model\":\"gpt-4o\",\"messages\":[]}",
      "empty_array", "messages",
      "Invalid 'messages': empty array. Expected an array with at least "
      "one message." },
    { "message string", "{\"model\":\"gpt-4o\",\"messages\":[\"Hi\"]}",
      "invalid_type", "messages[0]",
      "Invalid type for 'messages[0]': expected an object." },
    { "second message array",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 ",[]]}",
      "invalid_type", "messages[1]",
      "Invalid type for 'messages[1]': expected an object." },
    { "missing role",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 ",{\"content\":\"x\"}]}",
      "missing_required_parameter", "messages[1].role",
      "Missing required parameter: 'messages[1].role' (a string)." },
    { "role number",
      "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":1,\"content\":\"x\"}]}",
      "invalid_type", "messages[0].role",
      "Invalid type for parameter: 'messages[0].role' (a string)." },
    { "role null",
      "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":null}]}",
      "invalid_type", "messages[0].role",
      "Invalid type for parameter: 'messages[0].role' (a string)." },
    { "unknown role",
      "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"robot\","
      "\"content\":\"x\"}]}",
      "invalid_value", "messages[0].role",
      "Invalid value for 'messages[0].role': 'robot'. Supported values "
      "are: 'system', 'developer', 'user', 'assistant', 'tool' and "
      "'function'." },
    { "role case-sensitive",
      "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"User\","
      "\"content\":\"x\"}]}",
      "invalid_value", "messages[0].role",
      "Invalid value for 'messages[0].role': 'User'. Supported values "
      "are: 'system', 'developer', 'user', 'assistant', 'tool' and "
      "'function'." },
    { "long unknown role quoted",
      "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":"
      "\"abcdefghijklmnopqrstuvwxyz0123456789\",\"content\":\"x\"}]}",
      "invalid_value", "messages[0].role",
      "Invalid value for 'messages[0].role': "
      "'abcdefghijklmnopqrstuvwxyz012345...'. Supported values are: "
      "'system', 'developer', 'user', 'assistant', 'tool' and "
      "'function'." },
    { "content number",
      "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
      "\"content\":42}]}",
      "invalid_type", "messages[0].content",
      "Invalid type for 'messages[0].content': expected a string or an "
      "array of content parts." },
    { "content object",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 ",{\"role\":\"user\","
      "\"content\":{\"type\":\"text\",\"text\":\"Hi\"}}]}",
      "invalid_type", "messages[1].content",
      "Invalid type for 'messages[1].content': expected a string or an "
      "array of content parts." },
    { "content boolean",
      "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
      "\"content\":true}]}",
      "invalid_type", "messages[0].content",
      "Invalid type for 'messages[0].content': expected a string or an "
      "array of content parts." },
    { "stream string",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "],\"stream\":\"true\"}",
      "invalid_type", "stream",
      "Invalid type for 'stream': expected a boolean." },
    { "stream number",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "],\"stream\":1}",
      "invalid_type", "stream",
      "Invalid type for 'stream': expected a boolean." },
    { "stream_options without stream",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "],"
      "\"stream_options\":{\"include_usage\":true}}",
      "invalid_value", "stream_options",
      "The 'stream_options' parameter is only allowed when 'stream' is "
      "enabled." },
    { "stream_options with stream false",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "],\"stream\":false,"
      "\"stream_options\":{}}",
      "invalid_value", "stream_options",
      "The 'stream_options' parameter is only allowed when 'stream' is "
      "enabled." },
    { "stream_options not object",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "],\"stream\":true,"
      "\"stream_options\":\"include_usage\"}",
      "invalid_type", "stream_options",
      "Invalid type for 'stream_options': expected an object." },
    { "include_usage string",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "],\"stream\":true,"
      "\"stream_options\":{\"include_usage\":\"true\"}}",
      "invalid_type", "stream_options.include_usage",
      "Invalid type for 'stream_options.include_usage': expected a "
      "boolean." },
    { "include_usage null",
      "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "],\"stream\":true,"
      "\"stream_options\":{\"include_usage\":null}}",
      "invalid_type", "stream_options.include_usage",
      "Invalid type for 'stream_options.include_usage': expected a "
      "boolean." },
};

static void req_bad_fields(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const bad_case_t *c = &bad_cases[i];
        ark_req_t req;
        ark_err_t err;
        apr_status_t rv;

        memset(&err, 0, sizeof(err));
        rv = parse_str(&req, c->body, &err, p);
        if (rv != APR_EINVAL) {
            fail_msg("case '%s': status %d", c->name, rv);
        }
        assert_int_equal(err.status, 400);
        assert_string_equal(err.type, "invalid_request_error");
        assert_string_equal(err.code, c->code);
        if (c->param) {
            assert_non_null(err.param);
            assert_string_equal(err.param, c->param);
        }
        else {
            assert_null(err.param);
        }
        if (strcmp(err.message, c->message)) {
            fail_msg("case '%s': message '%s'", c->name, err.message);
        }
        assert_int_equal(err.retry_after, 0);
    }
}

static void req_empty_body(void **state)
{
    apr_pool_t *p = *state;
    ark_req_t req;
    ark_err_t err;

    assert_int_equal(ark_chat_req_parse(&req, "", 0, &err, p), APR_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "invalid_request_error");
    assert_string_equal(err.code, "invalid_json");
    assert_null(err.param);
    assert_string_equal(err.message,
                        "The request body is empty; expected a JSON object.");
    assert_null(req.root);
}

/* The syntax error names the line and the (1-based) column. */
static void req_bad_json_line_column(void **state)
{
    static const struct {
        const char *body;
        const char *message;
    } cases[] = {
        { "{\n  \"model\": \"gpt-4o\",\n  \"messages\": [\n"
          "    {\"role\": \"user\", \"content\": \"Hi\"},\n  ]\n}\n",
          "We could not parse the JSON body of your request (line 5, "
          "column 3: unexpected token near ']')." },
        { "{\"model\":\"gpt-4o\"",
          "We could not parse the JSON body of your request (line 1, "
          "column 17: '}' expected near end of file)." },
        { "{\"model\":\"gpt-4o\",\"messages\":[]} x",
          "We could not parse the JSON body of your request (line 1, "
          "column 34: end of file expected near 'x')." },
        { "\"just a string\"",
          "We could not parse the JSON body of your request (line 1, "
          "column 15: '[' or '{' expected near '\"just a string\"')." },
        { "model=gpt-4o&messages=hi",
          "We could not parse the JSON body of your request (line 1, "
          "column 5: '[' or '{' expected near 'model')." },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_req_t req;
        ark_err_t err;

        assert_int_equal(parse_str(&req, cases[i].body, &err, p),
                         APR_EINVAL);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.type, "invalid_request_error");
        assert_string_equal(err.code, "invalid_json");
        assert_null(err.param);
        assert_string_equal(err.message, cases[i].message);
        assert_null(req.root);
    }
}

/* Two "model" keys could be read differently by the gateway and the
 * upstream: duplicates are refused anywhere in the document. */
static void req_duplicate_keys(void **state)
{
    static const char *const bodies[] = {
        "{\"model\":\"gpt-4o-mini\",\"messages\":[" MSG1 "],"
        "\"model\":\"gpt-4o\"}",
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
        "\"role\":\"system\",\"content\":\"x\"}]}",
        "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "],\"stream\":true,"
        "\"stream_options\":{\"include_usage\":false,"
        "\"include_usage\":true}}",
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        ark_req_t req;
        ark_err_t err;

        assert_int_equal(parse_str(&req, bodies[i], &err, p), APR_EINVAL);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.code, "invalid_json");
        assert_null(err.param);
        assert_non_null(strstr(err.message, "duplicate object key"));
        assert_non_null(strstr(err.message, "We could not parse the JSON "
                                            "body of your request (line 1, "
                                            "column "));
    }
}

static void req_nul_in_string_refused(void **state)
{
    /* "\u0000" cannot reach C strings that end at the NUL: a model
     * "gpt-4o\u0000evil" must never be taken for "gpt-4o" */
    apr_pool_t *p = *state;
    ark_req_t req;
    ark_err_t err;

    assert_int_equal(parse_str(&req, "{\"model\":\"gpt-4o\\u0000evil\","
                                     "\"messages\":[" MSG1 "]}", &err, p),
                     APR_EINVAL);
    assert_int_equal(err.status, 400);
    assert_null(req.model);
    assert_null(err.param);
    assert_string_equal(err.code, "invalid_json");
    assert_non_null(strstr(err.message, "(line 1, column "));
}

static void req_error_message_is_valid_json(void **state)
{
    /* invalid UTF-8 in the body: the error message must still be a
     * string that JSON can carry */
    apr_pool_t *p = *state;
    ark_req_t req;
    ark_err_t err;
    json_t *j;

    assert_int_equal(parse_str(&req, "{\"model\":\"\xff\xfe\"}", &err, p),
                     APR_EINVAL);
    assert_string_equal(err.code, "invalid_json");
    j = json_string(err.message);
    assert_non_null(j);
    json_decref(j);
}

/* ----------------------------------------------------------- limits */

/* A chat body with n messages, its "content" nested d arrays deep. */
static const char *limits_body(int n, int d, apr_pool_t *p)
{
    const char *msgs = "", *content;
    int i;

    content = apr_pstrcat(p, apr_pstrndup(p, "[[[[[[[[[[[[[[[[[[[[",
                                          (apr_size_t)d),
                          "\"hi\"", apr_pstrndup(p, "]]]]]]]]]]]]]]]]]]]]",
                                               (apr_size_t)d), NULL);
    for (i = 0; i < n; i++) {
        msgs = apr_pstrcat(p, msgs, i ? "," : "",
                           "{\"role\":\"user\",\"content\":", content,
                           "}", NULL);
    }
    return apr_pstrcat(p, "{\"model\":\"m\",\"messages\":[", msgs, "]}",
                       NULL);
}

static void req_check_limits(void **state)
{
    apr_pool_t *p = *state;
    ark_req_limits_t lim = { 64, 100000, 2048 };
    ark_err_t err;
    const char *b;

    /* within every limit */
    b = limits_body(3, 0, p);
    assert_int_equal(ark_req_check_limits(b, strlen(b), &lim, &err, p),
                     APR_SUCCESS);

    /* messages: exactly the limit passes, one more is refused */
    lim.max_messages = 3;
    assert_int_equal(ark_req_check_limits(b, strlen(b), &lim, &err, p),
                     APR_SUCCESS);
    lim.max_messages = 2;
    assert_int_equal(ark_req_check_limits(b, strlen(b), &lim, &err, p),
                     APR_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "invalid_request_error");
    assert_string_equal(err.code, "too_many_messages");
    assert_string_equal(err.param, "messages");
    assert_string_equal(err.message, "The request has 3 messages; at most 2 "
                        "are allowed.");
    /* 0: not checked (embeddings) */
    lim.max_messages = 0;
    assert_int_equal(ark_req_check_limits(b, strlen(b), &lim, &err, p),
                     APR_SUCCESS);

    /* depth: object > messages array > message > 4 content arrays = 7 */
    b = limits_body(1, 4, p);
    lim.max_depth = 7;
    assert_int_equal(ark_req_check_limits(b, strlen(b), &lim, &err, p),
                     APR_SUCCESS);
    lim.max_depth = 6;
    assert_int_equal(ark_req_check_limits(b, strlen(b), &lim, &err, p),
                     APR_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "json_too_deep");
    assert_null(err.param);
    assert_string_equal(err.message, "The JSON body nests objects and arrays "
                        "too deeply: at most 6 levels are allowed.");

    /* elements: model, messages, 2 x (message, role, content, 1 item) */
    b = limits_body(2, 1, p);
    lim.max_depth = 64;
    lim.max_elements = 10;
    assert_int_equal(ark_req_check_limits(b, strlen(b), &lim, &err, p),
                     APR_SUCCESS);
    lim.max_elements = 9;
    assert_int_equal(ark_req_check_limits(b, strlen(b), &lim, &err, p),
                     APR_EINVAL);
    assert_string_equal(err.code, "json_too_many_elements");
    assert_string_equal(err.message, "The JSON body has too many elements: "
                        "at most 9 array items and object members are "
                        "allowed.");

    /* syntax errors are left to the parser, which gives line and column */
    lim.max_elements = 100000;
    assert_int_equal(ark_req_check_limits("{\"model\":", 9, &lim, &err, p),
                     APR_SUCCESS);
    assert_int_equal(ark_req_check_limits("", 0, &lim, &err, p),
                     APR_SUCCESS);
    /* a "messages" that is not an array is the parser's to refuse */
    lim.max_messages = 1;
    b = "{\"messages\":{\"a\":1,\"b\":2}}";
    assert_int_equal(ark_req_check_limits(b, strlen(b), &lim, &err, p),
                     APR_SUCCESS);
}

/* ------------------------------------------------------------ usage */

static void usage_clear_sets_unknown(void **state)
{
    ark_usage_t u = { 1, 2, 3, 4 };

    (void)state;
    ark_usage_clear(&u);
    assert_int_equal(u.prompt_tokens, -1);
    assert_int_equal(u.completion_tokens, -1);
    assert_int_equal(u.total_tokens, -1);
    assert_int_equal(u.cached_tokens, -1);
}

static void usage_from_openai_full(void **state)
{
    /* the usage object of a chat.completion, as the API reference shows */
    static const char text[] =
        "{\"prompt_tokens\":1117,\"completion_tokens\":46,"
        "\"total_tokens\":1163,"
        "\"prompt_tokens_details\":{\"cached_tokens\":1024,"
        "\"audio_tokens\":0},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":0,"
        "\"audio_tokens\":0,\"accepted_prediction_tokens\":0,"
        "\"rejected_prediction_tokens\":0}}";
    json_t *usage = json_loads(text, 0, NULL);
    ark_usage_t u;

    (void)state;
    assert_non_null(usage);
    ark_usage_clear(&u);
    assert_int_equal(ark_usage_from_openai(&u, usage), 1);
    assert_int_equal(u.prompt_tokens, 1117);
    assert_int_equal(u.completion_tokens, 46);
    assert_int_equal(u.total_tokens, 1163);
    assert_int_equal(u.cached_tokens, 1024);
    json_decref(usage);
}

static void usage_from_openai_partial(void **state)
{
    /* absent or unusable fields leave the previous values alone */
    json_t *usage;
    ark_usage_t u;

    (void)state;
    ark_usage_clear(&u);
    usage = json_loads("{\"prompt_tokens\":9,\"completion_tokens\":12,"
                       "\"total_tokens\":21}", 0, NULL);
    assert_int_equal(ark_usage_from_openai(&u, usage), 1);
    json_decref(usage);
    assert_int_equal(u.prompt_tokens, 9);
    assert_int_equal(u.completion_tokens, 12);
    assert_int_equal(u.total_tokens, 21);
    assert_int_equal(u.cached_tokens, -1);

    usage = json_loads("{\"prompt_tokens\":\"10\",\"completion_tokens\":-5,"
                       "\"total_tokens\":2.5,\"prompt_tokens_details\":"
                       "null}", 0, NULL);
    assert_int_equal(ark_usage_from_openai(&u, usage), 1);
    json_decref(usage);
    assert_int_equal(u.prompt_tokens, 9);
    assert_int_equal(u.completion_tokens, 12);
    assert_int_equal(u.total_tokens, 21);
    assert_int_equal(u.cached_tokens, -1);

    usage = json_loads("{\"prompt_tokens_details\":{\"cached_tokens\":0}}",
                       0, NULL);
    assert_int_equal(ark_usage_from_openai(&u, usage), 1);
    json_decref(usage);
    assert_int_equal(u.cached_tokens, 0);
    assert_int_equal(u.prompt_tokens, 9);
}

static void usage_from_openai_not_object(void **state)
{
    json_t *v;
    ark_usage_t u = { 5, 6, 11, 0 };

    (void)state;
    assert_int_equal(ark_usage_from_openai(&u, NULL), 0);
    v = json_null();
    assert_int_equal(ark_usage_from_openai(&u, v), 0);
    json_decref(v);
    v = json_loads("[{\"prompt_tokens\":1}]", 0, NULL);
    assert_int_equal(ark_usage_from_openai(&u, v), 0);
    json_decref(v);
    assert_int_equal(u.prompt_tokens, 5);
    assert_int_equal(u.completion_tokens, 6);
    assert_int_equal(u.total_tokens, 11);
    assert_int_equal(u.cached_tokens, 0);
}

/* -------------------------------------------------------- ownership */

static void req_root_released_with_pool(void **state)
{
    apr_pool_t *sub;
    ark_req_t req;
    ark_err_t err;
    json_t *root;
    static const char body[] =
        "{\"model\":\"gpt-4o\",\"messages\":[" MSG1 "],\"stream\":true}";

    apr_pool_create(&sub, *state);
    assert_int_equal(parse_str(&req, body, &err, sub), APR_SUCCESS);
    root = req.root;
    /* one reference, held by the pool */
    assert_int_equal(root->refcount, 1);
    json_incref(root);
    apr_pool_destroy(sub);
    /* the pool cleanup dropped exactly its own reference */
    assert_int_equal(root->refcount, 1);
    assert_string_equal(json_string_value(json_object_get(root, "model")),
                        "gpt-4o");
    json_decref(root);
}

static void req_root_released_after_refusal(void **state)
{
    /* a document that parsed but failed validation is released too
     * (ASan reports a leak otherwise) */
    apr_size_t i;

    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        apr_pool_t *sub;
        ark_req_t req;
        ark_err_t err;

        apr_pool_create(&sub, *state);
        assert_int_equal(parse_str(&req, bad_cases[i].body, &err, sub),
                         APR_EINVAL);
        if (req.root) {
            assert_int_equal(req.root->refcount, 1);
        }
        apr_pool_destroy(sub);
    }
}

static void json_pool_own_and_pdump(void **state)
{
    apr_pool_t *p = *state, *sub;
    json_t *j;
    const char *text;
    apr_size_t len = 0;

    assert_null(ark_json_pool_own(NULL, p));

    apr_pool_create(&sub, p);
    j = json_pack("{s:s,s:[i,i]}", "object", "list", "data", 1, 2);
    assert_ptr_equal(ark_json_pool_own(j, sub), j);
    text = ark_json_pdump(j, &len, sub);
    assert_string_equal(text, "{\"object\":\"list\",\"data\":[1,2]}");
    assert_int_equal(len, strlen(text));
    assert_non_null(ark_json_pdump(j, NULL, sub));
    json_incref(j);
    apr_pool_destroy(sub);
    assert_int_equal(j->refcount, 1);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(req_minimal),
        ARK_TEST(req_full_conversation),
        ARK_TEST(req_stream_flags),
        ARK_TEST(req_parses_exactly_len_bytes),
        ARK_TEST(req_bad_fields),
        ARK_TEST(req_empty_body),
        ARK_TEST(req_bad_json_line_column),
        ARK_TEST(req_duplicate_keys),
        ARK_TEST(req_nul_in_string_refused),
        ARK_TEST(req_error_message_is_valid_json),
        ARK_TEST(req_check_limits),
        ARK_TEST(usage_clear_sets_unknown),
        ARK_TEST(usage_from_openai_full),
        ARK_TEST(usage_from_openai_partial),
        ARK_TEST(usage_from_openai_not_object),
        ARK_TEST(req_root_released_with_pool),
        ARK_TEST(req_root_released_after_refusal),
        ARK_TEST(json_pool_own_and_pdump),
    };

    return ARK_TEST_RUN("ark_request", tests);
}
