/* Unit tests for the JSON access log line (ark_accesslog.c).
 *
 * Each line is parsed back with jansson: one compact object followed by
 * exactly one '\n', the documented fields (docs/errors-and-logs.md) and
 * no others, JSON null for whatever is unknown, the start time as ISO
 * 8601 UTC with milliseconds, and nothing in any field that the caller
 * did not give.
 */
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>

#include "ark_accesslog.h"
#include "ark_testutil.h"

/* Every field of a line, in no particular order. */
static const char *const all_fields[] = {
    "time", "method", "path", "key", "tenant", "model", "provider",
    "upstream_model", "channel", "attempts", "status", "stream", "error",
    "upstream_fail",
    "upstream_status", "upstream_conn_reused", "ttfb_ms", "latency_ms",
    "prompt_tokens", "completion_tokens", "total_tokens",
};
#define N_FIELDS ((int)(sizeof(all_fields) / sizeof(all_fields[0])))

/* Builds the line for a, checks its framing and key set, and returns the
 * parsed object (caller decrefs). */
static json_t *line_of(const ark_access_t *a, apr_pool_t *p)
{
    apr_size_t len = 0;
    const char *line = ark_access_line(a, &len, p);
    json_error_t jerr;
    json_t *o;
    const char *key;
    json_t *v;
    int i;

    assert_non_null(line);
    assert_int_equal(len, strlen(line));
    assert_true(len > 2);
    /* one line: a single '\n', at the end */
    assert_true(line[len - 1] == '\n');
    assert_ptr_equal(strchr(line, '\n'), line + len - 1);
    assert_null(strchr(line, '\r'));
    assert_true(line[0] == '{');
    assert_true(line[len - 2] == '}');
    /* exactly one JSON object, no duplicate keys */
    o = json_loadb(line, len - 1, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        fail_msg("not JSON (%s): %s", jerr.text, line);
    }
    assert_true(json_is_object(o));
    for (i = 0; i < N_FIELDS; i++) {
        if (!json_object_get(o, all_fields[i])) {
            fail_msg("field '%s' missing: %s", all_fields[i], line);
        }
    }
    /* no field beyond the documented ones */
    json_object_foreach(o, key, v) {
        for (i = 0; i < N_FIELDS && strcmp(key, all_fields[i]); i++) {
        }
        if (i == N_FIELDS && strcmp(key, "client_aborted")
            && strcmp(key, "trace_id")) {
            fail_msg("unexpected field '%s': %s", key, line);
        }
    }
    return o;
}

static void assert_str_field(const json_t *o, const char *k,
                             const char *want)
{
    const json_t *v = json_object_get(o, k);

    if (!want) {
        if (!json_is_null(v)) {
            fail_msg("field '%s' is not null", k);
        }
        return;
    }
    if (!json_is_string(v)) {
        fail_msg("field '%s' is not a string", k);
    }
    assert_string_equal(json_string_value(v), want);
}

static void assert_int_field(const json_t *o, const char *k, long want)
{
    const json_t *v = json_object_get(o, k);

    if (!json_is_integer(v)) {
        fail_msg("field '%s' is not an integer", k);
    }
    assert_int_equal(json_integer_value(v), want);
}

static void assert_null_field(const json_t *o, const char *k)
{
    if (!json_is_null(json_object_get(o, k))) {
        fail_msg("field '%s' is not null", k);
    }
}

static void assert_ms_field(const json_t *o, const char *k, double want)
{
    const json_t *v = json_object_get(o, k);
    double d;

    if (!json_is_number(v)) {
        fail_msg("field '%s' is not a number", k);
    }
    d = json_number_value(v);
    if (d < want - 0.0005 || d > want + 0.0005) {
        fail_msg("field '%s' is %f, not %f", k, d, want);
    }
}

/* -------------------------------------------------------------- tests */

static void access_defaults_are_unknown(void **state)
{
    /* nothing known but the start time: every other field null (or the
     * neutral value of a non-nullable one) */
    apr_pool_t *p = *state;
    ark_access_t a;
    json_t *o;

    ark_access_init(&a, APR_INT64_C(1718022896789123));
    assert_int_equal(a.upstream_new_conns, -1);
    assert_int_equal(a.ttfb, -1);
    assert_int_equal(a.usage.prompt_tokens, -1);
    assert_int_equal(a.usage.completion_tokens, -1);
    assert_int_equal(a.usage.total_tokens, -1);
    assert_int_equal(a.usage.cached_tokens, -1);

    o = line_of(&a, p);
    assert_int_equal(json_object_size(o), N_FIELDS);
    assert_str_field(o, "time", "2024-06-10T12:34:56.789Z");
    assert_str_field(o, "method", NULL);
    assert_str_field(o, "path", NULL);
    assert_str_field(o, "key", NULL);
    assert_str_field(o, "tenant", NULL);
    assert_str_field(o, "model", NULL);
    assert_str_field(o, "provider", NULL);
    assert_str_field(o, "upstream_model", NULL);
    assert_str_field(o, "error", NULL);
    assert_str_field(o, "upstream_fail", NULL);
    assert_int_field(o, "status", 0);
    assert_true(json_is_false(json_object_get(o, "stream")));
    assert_null_field(o, "upstream_status");
    assert_null_field(o, "upstream_conn_reused");
    assert_null_field(o, "ttfb_ms");
    assert_ms_field(o, "latency_ms", 0.0);
    assert_null_field(o, "prompt_tokens");
    assert_null_field(o, "completion_tokens");
    assert_null_field(o, "total_tokens");
    assert_null(json_object_get(o, "client_aborted"));
    json_decref(o);
}

static void access_streamed_success(void **state)
{
    apr_pool_t *p = *state;
    ark_access_t a;
    json_t *o;

    ark_access_init(&a, APR_INT64_C(1718022896789123));
    a.method = "POST";
    a.path = "/v1/chat/completions";
    a.key_name = "team-a-prod";
    a.tenant = "team-a";
    a.model = "chat";
    a.provider = "openai";
    a.upstream_model = "gpt-4o-mini-2024-07-18";
    a.status = 200;
    a.stream = 1;
    a.upstream_status = 200;
    a.upstream_new_conns = 0;
    a.ttfb = 412345;
    a.latency = 1234567;
    a.usage.prompt_tokens = 19;
    a.usage.completion_tokens = 10;
    a.usage.total_tokens = 29;
    a.usage.cached_tokens = 3;

    o = line_of(&a, p);
    assert_int_equal(json_object_size(o), N_FIELDS);
    assert_str_field(o, "time", "2024-06-10T12:34:56.789Z");
    assert_str_field(o, "method", "POST");
    assert_str_field(o, "path", "/v1/chat/completions");
    assert_str_field(o, "key", "team-a-prod");
    assert_str_field(o, "tenant", "team-a");
    assert_str_field(o, "model", "chat");
    assert_str_field(o, "provider", "openai");
    assert_str_field(o, "upstream_model", "gpt-4o-mini-2024-07-18");
    assert_int_field(o, "status", 200);
    assert_true(json_is_true(json_object_get(o, "stream")));
    assert_str_field(o, "error", NULL);
    assert_str_field(o, "upstream_fail", NULL);
    assert_int_field(o, "upstream_status", 200);
    assert_true(json_is_true(json_object_get(o, "upstream_conn_reused")));
    assert_ms_field(o, "ttfb_ms", 412.345);
    assert_ms_field(o, "latency_ms", 1234.567);
    assert_int_field(o, "prompt_tokens", 19);
    assert_int_field(o, "completion_tokens", 10);
    assert_int_field(o, "total_tokens", 29);
    assert_null(json_object_get(o, "client_aborted"));
    json_decref(o);
}

static void access_upstream_failure(void **state)
{
    apr_pool_t *p = *state;
    ark_access_t a;
    json_t *o;

    ark_access_init(&a, APR_INT64_C(946684799000500));
    a.method = "POST";
    a.path = "/v1/chat/completions";
    a.key_name = "ci-bot";
    a.tenant = "platform";
    a.model = "gpt-4o";
    a.provider = "azure-east";
    a.upstream_model = "gpt-4o";
    a.status = 504;
    a.error_code = "upstream_timeout";
    a.upstream_fail = "timeout";
    a.upstream_new_conns = 1;
    a.latency = 300000000;

    o = line_of(&a, p);
    assert_str_field(o, "time", "1999-12-31T23:59:59.000Z");
    assert_int_field(o, "status", 504);
    assert_true(json_is_false(json_object_get(o, "stream")));
    assert_str_field(o, "error", "upstream_timeout");
    assert_str_field(o, "upstream_fail", "timeout");
    /* no answer from the upstream: no status, no first byte */
    assert_null_field(o, "upstream_status");
    assert_null_field(o, "ttfb_ms");
    /* a fresh connection was opened */
    assert_true(json_is_false(json_object_get(o, "upstream_conn_reused")));
    assert_ms_field(o, "latency_ms", 300000.0);
    assert_null_field(o, "prompt_tokens");
    assert_null_field(o, "completion_tokens");
    assert_null_field(o, "total_tokens");
    json_decref(o);
}

static void access_refused_before_upstream(void **state)
{
    /* a 401 for a missing key: no identity, no model, no upstream call */
    apr_pool_t *p = *state;
    ark_access_t a;
    json_t *o;

    ark_access_init(&a, APR_INT64_C(1709251199999999));
    a.method = "POST";
    a.path = "/v1/chat/completions";
    a.status = 401;
    a.error_code = "invalid_api_key";
    a.latency = 150;

    o = line_of(&a, p);
    assert_str_field(o, "time", "2024-02-29T23:59:59.999Z");
    assert_str_field(o, "key", NULL);
    assert_str_field(o, "tenant", NULL);
    assert_str_field(o, "model", NULL);
    assert_str_field(o, "provider", NULL);
    assert_str_field(o, "upstream_model", NULL);
    assert_int_field(o, "status", 401);
    assert_str_field(o, "error", "invalid_api_key");
    assert_null_field(o, "upstream_status");
    assert_null_field(o, "upstream_conn_reused");
    assert_null_field(o, "ttfb_ms");
    assert_ms_field(o, "latency_ms", 0.15);
    json_decref(o);
}

static void access_client_aborted(void **state)
{
    apr_pool_t *p = *state;
    ark_access_t a;
    json_t *o;

    ark_access_init(&a, APR_INT64_C(2147483648001000));
    a.method = "POST";
    a.path = "/v1/chat/completions";
    a.status = 200;
    a.stream = 1;
    a.client_aborted = 1;
    a.upstream_status = 200;
    a.upstream_new_conns = 2;
    a.ttfb = 0;
    a.usage.prompt_tokens = 0;
    a.usage.completion_tokens = 0;
    a.usage.total_tokens = 0;

    o = line_of(&a, p);
    assert_int_equal(json_object_size(o), N_FIELDS + 1);
    assert_true(json_is_true(json_object_get(o, "client_aborted")));
    assert_str_field(o, "time", "2038-01-19T03:14:08.001Z");
    assert_true(json_is_false(json_object_get(o, "upstream_conn_reused")));
    /* zero is a known value, not null */
    assert_ms_field(o, "ttfb_ms", 0.0);
    assert_int_field(o, "prompt_tokens", 0);
    assert_int_field(o, "completion_tokens", 0);
    assert_int_field(o, "total_tokens", 0);
    json_decref(o);
}

static void access_time_format(void **state)
{
    static const struct {
        apr_time_t t;
        const char *want;
    } cases[] = {
        { 0, "1970-01-01T00:00:00.000Z" },
        { 999, "1970-01-01T00:00:00.000Z" },
        { 1000, "1970-01-01T00:00:00.001Z" },
        /* milliseconds are cut, never rounded up into the next second */
        { APR_INT64_C(1709251199999999), "2024-02-29T23:59:59.999Z" },
        { APR_INT64_C(1709251200000000), "2024-03-01T00:00:00.000Z" },
        { APR_INT64_C(1718022896789123), "2024-06-10T12:34:56.789Z" },
        { APR_INT64_C(946684799000500), "1999-12-31T23:59:59.000Z" },
        { APR_INT64_C(2147483648001000), "2038-01-19T03:14:08.001Z" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_access_t a;
        json_t *o;

        ark_access_init(&a, cases[i].t);
        o = line_of(&a, p);
        assert_str_field(o, "time", cases[i].want);
        json_decref(o);
    }
}

static void access_escaping_keeps_one_line(void **state)
{
    /* client-controlled strings cannot break the line or the object */
    apr_pool_t *p = *state;
    ark_access_t a;
    json_t *o;
    static const char path[] = "/v1/chat/completions\n{\"forged\":true}\r";
    static const char model[] = "gpt-4o\", \"status\": 200, \"x\": \"\t\x01";
    static const char key[] = "caf\xc3\xa9 \xe6\xa8\xa1\xe5\x9e\x8b \\";

    ark_access_init(&a, 0);
    a.method = "POST";
    a.path = path;
    a.model = model;
    a.key_name = key;
    a.status = 404;
    o = line_of(&a, p);
    assert_str_field(o, "path", path);
    assert_str_field(o, "model", model);
    assert_str_field(o, "key", key);
    assert_int_field(o, "status", 404);
    assert_null(json_object_get(o, "forged"));
    assert_null(json_object_get(o, "x"));
    json_decref(o);
}

static void access_path_not_utf8(void **state)
{
    /* httpd decodes %FF in the URI to a raw byte: the path is still
     * logged (a JSON string must be UTF-8), and no field disappears */
    apr_pool_t *p = *state;
    ark_access_t a;
    json_t *o;

    ark_access_init(&a, 0);
    a.method = "GET";
    a.path = "/v1/models/gpt\xff\xfe";
    a.model = "caf\xc3";
    a.status = 404;
    o = line_of(&a, p);
    assert_str_field(o, "path", "/v1/models/gpt??");
    assert_str_field(o, "model", "caf?");
    assert_str_field(o, "method", "GET");
    assert_int_field(o, "status", 404);
    json_decref(o);
}

static void access_nothing_not_given(void **state)
{
    /* every string in the line is one the caller gave (or the time) */
    apr_pool_t *p = *state;
    static const char *const given[] = {
        "GET", "/v1/models", "reader", "team-b",
    };
    ark_access_t a;
    json_t *o, *v;
    const char *key;
    apr_size_t i;

    ark_access_init(&a, APR_INT64_C(1718022896789123));
    a.method = given[0];
    a.path = given[1];
    a.key_name = given[2];
    a.tenant = given[3];
    a.status = 200;
    a.latency = 2000;
    o = line_of(&a, p);
    json_object_foreach(o, key, v) {
        if (!strcmp(key, "time")) {
            continue;
        }
        if (json_is_string(v)) {
            for (i = 0; i < sizeof(given) / sizeof(given[0]); i++) {
                if (!strcmp(json_string_value(v), given[i])) {
                    break;
                }
            }
            if (i == sizeof(given) / sizeof(given[0])) {
                fail_msg("field '%s' holds '%s', which was not given", key,
                         json_string_value(v));
            }
        }
        else if (json_is_integer(v)) {
            if (strcmp(key, "status")
                && (strcmp(key, "attempts") || json_integer_value(v))) {
                fail_msg("field '%s' is a number, but was not given", key);
            }
        }
        else if (json_is_true(v)) {
            fail_msg("field '%s' is true, but was not given", key);
        }
    }
    assert_str_field(o, "provider", NULL);
    assert_str_field(o, "upstream_model", NULL);
    assert_ms_field(o, "latency_ms", 2.0);
    json_decref(o);
}

static void access_cached_tokens_kept_out(void **state)
{
    /* the documented token fields only; cached tokens are not a field */
    apr_pool_t *p = *state;
    ark_access_t a;
    json_t *o;

    ark_access_init(&a, 0);
    a.usage.cached_tokens = 1024;
    o = line_of(&a, p);
    assert_int_equal(json_object_size(o), N_FIELDS);
    assert_null_field(o, "prompt_tokens");
    json_decref(o);
}

static void access_trace_id(void **state)
{
    apr_pool_t *p = *state;
    ark_access_t a;
    json_t *o;

    ark_access_init(&a, 0);
    o = line_of(&a, p);
    assert_null(json_object_get(o, "trace_id"));   /* unset: left out */
    json_decref(o);
    a.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    o = line_of(&a, p);
    assert_int_equal(json_object_size(o), N_FIELDS + 1);
    assert_str_field(o, "trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(access_defaults_are_unknown),
        ARK_TEST(access_streamed_success),
        ARK_TEST(access_upstream_failure),
        ARK_TEST(access_refused_before_upstream),
        ARK_TEST(access_client_aborted),
        ARK_TEST(access_time_format),
        ARK_TEST(access_escaping_keeps_one_line),
        ARK_TEST(access_path_not_utf8),
        ARK_TEST(access_nothing_not_given),
        ARK_TEST(access_cached_tokens_kept_out),
        ARK_TEST(access_trace_id),
    };

    return ARK_TEST_RUN("ark_accesslog", tests);
}
