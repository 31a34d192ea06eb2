/* Unit tests for the client-facing error object (ark_error.c).
 *
 * Every error body is parsed back with jansson and compared field by
 * field: the OpenAI shape {"error":{"message","type","param","code"}},
 * JSON null for absent param and code, the type derived from the status,
 * and strings that survive quoting and escaping byte for byte.
 */
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>

#include "ark_error.h"
#include "ark_testutil.h"

/* Parses an error body and returns the inner "error" object, checking the
 * envelope: exactly one key at the top, exactly the four OpenAI keys
 * inside. The caller decrefs *proot. */
static json_t *parse_error_body(const char *text, json_t **proot)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    json_t *inner;

    assert_non_null(root);
    assert_true(json_is_object(root));
    assert_int_equal(json_object_size(root), 1);
    inner = json_object_get(root, "error");
    assert_true(json_is_object(inner));
    assert_int_equal(json_object_size(inner), 4);
    assert_non_null(json_object_get(inner, "message"));
    assert_non_null(json_object_get(inner, "type"));
    assert_non_null(json_object_get(inner, "param"));
    assert_non_null(json_object_get(inner, "code"));
    *proot = root;
    return inner;
}

static void assert_json_str(const json_t *obj, const char *key,
                            const char *want)
{
    const json_t *v = json_object_get(obj, key);

    if (!want) {
        assert_true(json_is_null(v));
        return;
    }
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), strlen(want));
    assert_string_equal(json_string_value(v), want);
}

/* True if s is well-formed UTF-8 (jansson refuses anything else). */
static int utf8_valid(const char *s)
{
    json_t *j = json_string(s);

    json_decref(j);
    return j != NULL;
}

/* ------------------------------------------------------- ark_err_set */

static void err_set_fills_every_field(void **state)
{
    ark_err_t e;

    (void)state;
    memset(&e, 0x5a, sizeof(e));
    e.retry_after = apr_time_from_sec(30);
    ark_err_set(&e, 400, "missing_required_parameter", "messages",
                "Missing required parameter: 'messages'.");
    assert_int_equal(e.status, 400);
    assert_string_equal(e.type, "invalid_request_error");
    assert_string_equal(e.code, "missing_required_parameter");
    assert_string_equal(e.param, "messages");
    assert_string_equal(e.message, "Missing required parameter: 'messages'.");
    assert_int_equal(e.retry_after, 0);

    ark_err_set(&e, 503, NULL, NULL, "No channel is available.");
    assert_int_equal(e.status, 503);
    assert_string_equal(e.type, "service_unavailable_error");
    assert_null(e.code);
    assert_null(e.param);
}

static void err_setf_formats_from_pool(void **state)
{
    apr_pool_t *p = *state;
    ark_err_t e;

    e.retry_after = 12;
    ark_err_setf(&e, p, 404, "model_not_found", "model",
                 "The model '%s' does not exist (%d channels).", "gpt-5",
                 0);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.type, "invalid_request_error");
    assert_string_equal(e.code, "model_not_found");
    assert_string_equal(e.param, "model");
    assert_string_equal(e.message,
                        "The model 'gpt-5' does not exist (0 channels).");
    assert_int_equal(e.retry_after, 0);
}

static void err_type_for_every_status(void **state)
{
    static const struct {
        int status;
        const char *type;
    } cases[] = {
        { 400, "invalid_request_error" },
        { 404, "invalid_request_error" },
        { 405, "invalid_request_error" },
        { 413, "invalid_request_error" },
        { 415, "invalid_request_error" },
        { 401, "authentication_error" },
        { 403, "permission_error" },
        { 429, "rate_limit_error" },
        { 502, "upstream_error" },
        { 503, "service_unavailable_error" },
        { 504, "timeout_error" },
        { 500, "server_error" },
        { 501, "server_error" },
        { 507, "server_error" },
        { 0, "server_error" },
        { 200, "server_error" },
    };
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_err_t e;

        assert_string_equal(ark_err_type_for(cases[i].status),
                            cases[i].type);
        ark_err_set(&e, cases[i].status, NULL, NULL, "m");
        assert_string_equal(e.type, cases[i].type);
    }
}

/* ------------------------------------------------------ ark_err_json */

static void err_json_shape(void **state)
{
    apr_pool_t *p = *state;
    ark_err_t e;
    const char *text;
    json_t *root, *inner;

    ark_err_set(&e, 401, "invalid_api_key", NULL,
                "Incorrect API key provided.");
    text = ark_err_json(&e, p);
    inner = parse_error_body(text, &root);
    assert_json_str(inner, "message", "Incorrect API key provided.");
    assert_json_str(inner, "type", "authentication_error");
    assert_json_str(inner, "param", NULL);
    assert_json_str(inner, "code", "invalid_api_key");
    json_decref(root);

    /* compact, one line, no trailing newline */
    assert_null(strchr(text, '\n'));
    assert_true(text[strlen(text) - 1] == '}');
    assert_null(strstr(text, "\": "));
    assert_null(strstr(text, ", \""));
}

static void err_json_nulls(void **state)
{
    apr_pool_t *p = *state;
    ark_err_t e;
    json_t *root, *inner;

    ark_err_set(&e, 500, NULL, NULL, "The gateway failed.");
    inner = parse_error_body(ark_err_json(&e, p), &root);
    assert_json_str(inner, "message", "The gateway failed.");
    assert_json_str(inner, "type", "server_error");
    assert_json_str(inner, "param", NULL);
    assert_json_str(inner, "code", NULL);
    json_decref(root);

    ark_err_set(&e, 400, NULL, "messages[0].role", "Bad role.");
    inner = parse_error_body(ark_err_json(&e, p), &root);
    assert_json_str(inner, "param", "messages[0].role");
    assert_json_str(inner, "code", NULL);
    json_decref(root);

    /* a missing message is still a string: SDKs read it unconditionally */
    ark_err_set(&e, 502, "upstream_error", NULL, NULL);
    inner = parse_error_body(ark_err_json(&e, p), &root);
    assert_true(json_is_string(json_object_get(inner, "message")));
    assert_json_str(inner, "type", "upstream_error");
    json_decref(root);
}

static void err_json_type_from_struct(void **state)
{
    apr_pool_t *p = *state;
    ark_err_t e;
    json_t *root, *inner;

    /* a struct filled by hand without a type gets the status's type */
    memset(&e, 0, sizeof(e));
    e.status = 429;
    e.code = "rate_limit_exceeded";
    e.message = "Rate limit reached for requests.";
    inner = parse_error_body(ark_err_json(&e, p), &root);
    assert_json_str(inner, "type", "rate_limit_error");
    assert_json_str(inner, "code", "rate_limit_exceeded");
    json_decref(root);

    /* an explicit type is kept */
    ark_err_set(&e, 429, "insufficient_quota", NULL,
                "You exceeded your current quota.");
    e.type = "insufficient_quota";
    inner = parse_error_body(ark_err_json(&e, p), &root);
    assert_json_str(inner, "type", "insufficient_quota");
    json_decref(root);
}

static void err_json_escaping(void **state)
{
    apr_pool_t *p = *state;
    static const char msg[] =
        "Invalid value for 'model': 'gpt-4o\"}, {\"x\":1' \\ back\\slash "
        "tab\there nl\nthere cr\r bell\x07 us\x1f del\x7f "
        "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 </script>";
    static const char param[] = "messages[0].content\"\n";
    static const char code[] = "code\\with\x01" "ctl";
    ark_err_t e;
    const char *text, *c;
    json_t *root, *inner;

    ark_err_set(&e, 400, code, param, msg);
    text = ark_err_json(&e, p);
    inner = parse_error_body(text, &root);
    assert_json_str(inner, "message", msg);
    assert_json_str(inner, "param", param);
    assert_json_str(inner, "code", code);
    assert_json_str(inner, "type", "invalid_request_error");
    json_decref(root);

    /* no raw control character reaches the wire */
    for (c = text; *c; c++) {
        assert_true((unsigned char)*c >= 0x20);
    }
    assert_non_null(strstr(text, "\\\"}, {\\\"x\\\":1"));
    assert_non_null(strstr(text, "\\\\ back\\\\slash"));
    assert_non_null(strstr(text, "tab\\there nl\\nthere cr\\r"));
    assert_non_null(strstr(text, "\\u0007"));
    /* hex digits in either case */
    assert_true(strstr(text, "\\u001f") || strstr(text, "\\u001F"));
    assert_non_null(strstr(text, "\\u0001"));
}

static void err_json_never_fails(void **state)
{
    /* a message that is not UTF-8 cannot be a JSON string; the answer is
     * still a well-formed error object */
    apr_pool_t *p = *state;
    ark_err_t e;
    const char *text;
    json_t *root, *inner;

    ark_err_set(&e, 400, "invalid_value", "model", "bad \xff\xfe bytes");
    text = ark_err_json(&e, p);
    assert_non_null(text);
    inner = parse_error_body(text, &root);
    assert_true(json_is_string(json_object_get(inner, "message")));
    assert_true(json_is_string(json_object_get(inner, "type")));
    json_decref(root);
}

/* ----------------------------------------------------- ark_err_quote */

static void err_quote_short_and_null(void **state)
{
    apr_pool_t *p = *state;
    char buf[] = "gpt-4o-mini";
    const char *q;

    assert_string_equal(ark_err_quote(NULL, 10, p), "");
    assert_string_equal(ark_err_quote("", 10, p), "");
    q = ark_err_quote(buf, 64, p);
    assert_string_equal(q, "gpt-4o-mini");
    /* a copy, not the caller's buffer */
    assert_true(q != buf);
    buf[0] = 'X';
    assert_string_equal(q, "gpt-4o-mini");
    /* exactly max bytes: not cut */
    assert_string_equal(ark_err_quote("gpt-4o-mini", 11, p), "gpt-4o-mini");
}

static void err_quote_cuts_ascii(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(ark_err_quote("gpt-4o-mini", 10, p),
                        "gpt-4o-min...");
    assert_string_equal(ark_err_quote("gpt-4o-mini", 3, p), "gpt...");
    assert_string_equal(ark_err_quote("gpt-4o-mini", 0, p), "...");
}

static void err_quote_cuts_at_utf8_boundary(void **state)
{
    apr_pool_t *p = *state;
    /* h (1) e-acute (2) l l o (3) check mark (3) grinning face (4) */
    static const char s[] = "h\xc3\xa9llo\xe2\x9c\x93\xf0\x9f\x98\x80!";

    assert_string_equal(ark_err_quote(s, 1, p), "h...");
    assert_string_equal(ark_err_quote(s, 2, p), "h...");
    assert_string_equal(ark_err_quote(s, 3, p), "h\xc3\xa9...");
    assert_string_equal(ark_err_quote(s, 6, p), "h\xc3\xa9llo...");
    assert_string_equal(ark_err_quote(s, 7, p), "h\xc3\xa9llo...");
    assert_string_equal(ark_err_quote(s, 8, p), "h\xc3\xa9llo...");
    assert_string_equal(ark_err_quote(s, 9, p),
                        "h\xc3\xa9llo\xe2\x9c\x93...");
    assert_string_equal(ark_err_quote(s, 12, p),
                        "h\xc3\xa9llo\xe2\x9c\x93...");
    assert_string_equal(ark_err_quote(s, 13, p),
                        "h\xc3\xa9llo\xe2\x9c\x93\xf0\x9f\x98\x80...");
    assert_string_equal(ark_err_quote(s, 14, p), s);
}

static void err_quote_every_length(void **state)
{
    /* for every max: a valid UTF-8 prefix of at most max bytes, followed
     * by "..." exactly when something was cut */
    apr_pool_t *p = *state;
    static const char s[] =
        "\xe4\xbd\xa0\xe5\xa5\xbd, "
        "\xd0\xbc\xd0\xb8\xd1\x80 \xf0\x9f\x8c\x8d caf\xc3\xa9";
    apr_size_t len = strlen(s), max;

    for (max = 0; max <= len + 2; max++) {
        const char *q = ark_err_quote(s, max, p);
        apr_size_t qlen = strlen(q);

        assert_true(utf8_valid(q));
        if (max >= len) {
            assert_string_equal(q, s);
            continue;
        }
        assert_true(qlen >= 3);
        assert_string_equal(q + qlen - 3, "...");
        assert_true(qlen - 3 <= max);
        /* no more than one character (at most 3 bytes) dropped */
        assert_true(max - (qlen - 3) <= 3);
        assert_memory_equal(q, s, qlen - 3);
    }
}

static void err_quote_then_json(void **state)
{
    /* a client string quoted into a message comes back intact */
    apr_pool_t *p = *state;
    ark_err_t e;
    json_t *root, *inner;
    const char *model = "my \"model\"\n\xe6\xa8\xa1\xe5\x9e\x8b";

    ark_err_setf(&e, p, 404, "model_not_found", "model",
                 "The model '%s' does not exist.",
                 ark_err_quote(model, 128, p));
    inner = parse_error_body(ark_err_json(&e, p), &root);
    assert_json_str(inner, "message",
                    "The model 'my \"model\"\n\xe6\xa8\xa1\xe5\x9e\x8b' "
                    "does not exist.");
    json_decref(root);
}

static void err_quote_invalid_utf8(void **state)
{
    /* a decoded URI can hold any byte: the quoted copy is valid UTF-8, so
     * the message survives ark_err_json (instead of the generic body) */
    apr_pool_t *p = *state;
    ark_err_t e;
    json_t *root, *inner;
    const char *q;

    q = ark_err_quote("/v1/chat/completions\xff\xfe", 200, p);
    assert_string_equal(q, "/v1/chat/completions??");
    q = ark_err_quote("caf\xc3\xa9 \xc3(", 200, p);
    assert_string_equal(q, "caf?? ?(");
    q = ark_err_quote("\xff\xff\xff\xff" "abc", 5, p);
    assert_string_equal(q, "????a...");
    assert_true(utf8_valid(q));

    ark_err_setf(&e, p, 404, "unknown_url", NULL,
                 "Unknown request URL: GET %s.",
                 ark_err_quote("/v1/x\xff", 200, p));
    inner = parse_error_body(ark_err_json(&e, p), &root);
    assert_json_str(inner, "message", "Unknown request URL: GET /v1/x?.");
    assert_json_str(inner, "type", "invalid_request_error");
    assert_json_str(inner, "code", "unknown_url");
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(err_set_fills_every_field),
        ARK_TEST(err_setf_formats_from_pool),
        ARK_TEST(err_type_for_every_status),
        ARK_TEST(err_json_shape),
        ARK_TEST(err_json_nulls),
        ARK_TEST(err_json_type_from_struct),
        ARK_TEST(err_json_escaping),
        ARK_TEST(err_json_never_fails),
        ARK_TEST(err_quote_short_and_null),
        ARK_TEST(err_quote_cuts_ascii),
        ARK_TEST(err_quote_cuts_at_utf8_boundary),
        ARK_TEST(err_quote_every_length),
        ARK_TEST(err_quote_then_json),
        ARK_TEST(err_quote_invalid_utf8),
    };

    return ARK_TEST_RUN("ark_error", tests);
}
