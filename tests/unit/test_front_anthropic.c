/* Unit tests for the Anthropic front (ark_front_anthropic.c).
 *
 * Driven by golden files under tests/cases/front/anthropic-<case>/:
 *   req-*     input.json: an Anthropic Messages request; expected.json:
 *             the OpenAI chat request, or {"error":{"status","param",
 *             "message"}} for a refusal
 *   resp-*    input.json: {"model": alias, "body": chat.completion};
 *             expected.json: the Anthropic Message
 *   stream-*  input.json: {"model": alias, "events": [chunk | "[DONE]"]},
 *             each fed as "data: <compact json>\n\n"; expected.json: the
 *             Anthropic events as [{"event": name, "data": {...}}]
 * Every case directory found is run, so adding a case is adding files.
 * Emitted stream frames are checked for their exact framing and parsed
 * back; translated requests must also pass the gateway's own request
 * parser. Inline tests cover random ids, malformed input, the emitter
 * failing, and error bodies per status.
 */
#include <string.h>

#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "ark_front_anthropic.h"
#include "ark_request.h"
#include "ark_testutil.h"

#ifndef ARK_CASES_DIR
#error "ARK_CASES_DIR must name the tests/cases directory"
#endif
#define FRONT_DIR ARK_CASES_DIR "/front"

/* ------------------------------------------------------------ helpers */

static json_t *load_file(const char *dir, const char *name, apr_pool_t *p)
{
    return ark_test_fixture_json(dir, name, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                                 p);
}

static json_t *load_text(const char *text, apr_size_t len)
{
    return ark_test_json_parse(text, len, JSON_ALLOW_NUL, "the text", NULL);
}

#define CASE_AT(a, i) APR_ARRAY_IDX((a), (i), const char *)

/* The directories FRONT_DIR/anthropic-<prefix>*, sorted, as paths. */
static apr_array_header_t *list_cases(const char *prefix, apr_pool_t *p)
{
    apr_array_header_t *dirs = ark_test_case_dirs(
        FRONT_DIR, apr_pstrcat(p, "anthropic-", prefix, NULL), NULL, p);
    int i;

    for (i = 0; i < dirs->nelts; i++) {
        CASE_AT(dirs, i) = apr_pstrcat(p, FRONT_DIR "/", CASE_AT(dirs, i),
                                       NULL);
    }
    return dirs;
}

/* ------------------------------------------------ request translation */

/* The translated request must be one the gateway's pipeline accepts. */
static void assert_pipeline_accepts(const json_t *out, apr_pool_t *p)
{
    apr_size_t len;
    const char *body = ark_json_pdump(out, &len, p);
    ark_req_t req;
    ark_err_t err;

    assert_non_null(body);
    if (ark_chat_req_parse(&req, body, len, &err, p) != APR_SUCCESS) {
        fail_msg("pipeline refused the translation: %s\n%s", err.message,
                 body);
    }
    assert_string_equal(req.model,
                        json_string_value(json_object_get(out, "model")));
    assert_int_equal(req.include_usage, req.stream);
}

/* Every value in j is referenced once: the translation shares nothing
 * with its input (which holds references of its own), so either can be
 * changed or released without touching the other. */
static void assert_unshared(const json_t *j, const char *what)
{
    const char *key;
    const json_t *v;
    size_t i;

    if (json_is_true(j) || json_is_false(j) || json_is_null(j)) {
        return;                 /* shared singletons in jansson */
    }
    if (j->refcount != 1) {
        fail_msg("%s: a value is shared (refcount %lu)", what,
                 (unsigned long)j->refcount);
    }
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, key, v) {
            assert_unshared(v, what);
        }
    }
    else if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            assert_unshared(v, what);
        }
    }
}

static void request_golden(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *cases = list_cases("req-", p);
    int i, ok = 0, refused = 0;

    for (i = 0; i < cases->nelts; i++) {
        const char *dir = CASE_AT(cases, i);
        json_t *in = load_file(dir, "input.json", p);
        json_t *pristine = load_file(dir, "input.json", p);
        json_t *want = load_file(dir, "expected.json", p);
        const json_t *werr = json_object_get(want, "error");
        json_t *out = (json_t *)1;
        ark_err_t err;
        apr_status_t rv;

        memset(&err, 0, sizeof(err));
        rv = ark_anthropic_request_to_openai(&out, in, &err, p);
        if (werr) {
            const json_t *wparam = json_object_get(werr, "param");
            const char *wmsg =
                json_string_value(json_object_get(werr, "message"));

            if (rv != APR_EINVAL) {
                fail_msg("%s: accepted, expected '%s'", dir, wmsg);
            }
            assert_null(out);
            assert_int_equal(err.status, json_integer_value(
                                 json_object_get(werr, "status")));
            if (!err.message || strcmp(err.message, wmsg)) {
                fail_msg("%s:\n got: %s\nwant: %s", dir, err.message, wmsg);
            }
            if (json_is_null(wparam)) {
                assert_null(err.param);
            }
            else {
                assert_non_null(err.param);
                assert_string_equal(err.param, json_string_value(wparam));
            }
            assert_non_null(err.code);
            assert_string_equal(err.type, "invalid_request_error");
            refused++;
        }
        else {
            if (rv != APR_SUCCESS) {
                fail_msg("%s: refused: %s", dir, err.message);
            }
            ark_test_assert_json_equal(out, want, dir, p);
            assert_pipeline_accepts(out, p);
            assert_unshared(out, dir);
            json_decref(out);
            ok++;
        }
        ark_test_assert_json_equal(in, pristine,
                                   "the input after translation", p);
        json_decref(in);
        json_decref(pristine);
        json_decref(want);
    }
    /* the case files are really there */
    assert_true(ok >= 12);
    assert_true(refused >= 40);
}

static void request_output_owns_its_values(void **state)
{
    /* the input may be released before the output is used */
    apr_pool_t *p = *state;
    static const char body[] =
        "{\"model\":\"claude\",\"max_tokens\":5,\"system\":\"sys\","
        "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
        "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"temperature\":0.25,\"metadata\":{\"user_id\":\"u1\"}}";
    json_t *in = load_text(body, sizeof(body) - 1);
    json_t *out = NULL;
    ark_err_t err;

    assert_int_equal(ark_anthropic_request_to_openai(&out, in, &err, p),
                     APR_SUCCESS);
    assert_unshared(in, "the input");
    assert_unshared(out, "the output");
    json_decref(in);
    assert_string_equal(json_string_value(json_object_get(out, "user")),
                        "u1");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(out, "messages"),
                                           0), "content")), "sys");
    assert_true(json_real_value(json_object_get(out, "temperature"))
                == 0.25);
    json_decref(out);
}

/* ----------------------------------------------- response translation */

static void response_golden(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *cases = list_cases("resp-", p);
    int i;

    for (i = 0; i < cases->nelts; i++) {
        const char *dir = CASE_AT(cases, i);
        json_t *in = load_file(dir, "input.json", p);
        json_t *want = load_file(dir, "expected.json", p);
        apr_size_t blen, olen = 0;
        const char *body = ark_json_pdump(json_object_get(in, "body"),
                                          &blen, p);
        const char *out = NULL;
        json_t *got;

        if (ark_anthropic_response_from_openai(
                &out, &olen, body, blen,
                json_string_value(json_object_get(in, "model")), p)
            != APR_SUCCESS) {
            fail_msg("%s: refused", dir);
        }
        assert_non_null(out);
        assert_int_equal(olen, strlen(out));
        got = load_text(out, olen);
        ark_test_assert_json_equal(got, want, dir, p);
        json_decref(got);
        json_decref(in);
        json_decref(want);
    }
    assert_true(cases->nelts >= 7);
}

static int is_random_id(const char *id, const char *prefix)
{
    apr_size_t n = strlen(prefix), i;

    if (strncmp(id, prefix, n) || strlen(id) != n + 24) {
        return 0;
    }
    for (i = n; id[i]; i++) {
        if (!apr_isalnum(id[i])) {
            return 0;
        }
    }
    return 1;
}

static void response_without_ids(void **state)
{
    /* no completion id, no tool call id, no model alias given: ids are
     * made up, the body's model is used */
    apr_pool_t *p = *state;
    static const char body[] =
        "{\"object\":\"chat.completion\",\"model\":\"llama3.1:8b\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
        "\"content\":\"Hi\",\"tool_calls\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1}}}]},"
        "\"finish_reason\":null}]}";
    const char *out, *id;
    apr_size_t len;
    json_t *got, *content;

    assert_int_equal(ark_anthropic_response_from_openai(
                         &out, &len, body, sizeof(body) - 1, NULL, p),
                     APR_SUCCESS);
    got = load_text(out, len);
    id = json_string_value(json_object_get(got, "id"));
    assert_non_null(id);
    assert_true(is_random_id(id, "msg_"));
    assert_string_equal(json_string_value(json_object_get(got, "model")),
                        "llama3.1:8b");
    content = json_object_get(got, "content");
    assert_int_equal(json_array_size(content), 2);
    id = json_string_value(json_object_get(json_array_get(content, 1),
                                           "id"));
    assert_true(is_random_id(id, "toolu_"));
    /* arguments given as an object by a lax server */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(
                         json_array_get(content, 1), "input"), "x")), 1);
    assert_string_equal(json_string_value(json_object_get(got,
                                                          "stop_reason")),
                        "tool_use");
    json_decref(got);
}

static void response_rejects_malformed(void **state)
{
    static const char *const bodies[] = {
        "",
        "not json",
        "<html>502 Bad Gateway</html>",
        "[]",
        "null",
        "{}",
        "{\"object\":\"chat.completion\",\"choices\":[]}",
        "{\"object\":\"chat.completion\",\"choices\":{}}",
        "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0}]}",
        "{\"object\":\"chat.completion\",\"choices\":[{\"message\":\"x\"}]}",
        "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"message\":{\"content\":\"x\"}}]}",
        "{\"object\":\"list\",\"data\":[{\"embedding\":[0.1]}]}",
        "{\"error\":{\"message\":\"Internal error\",\"type\":"
        "\"server_error\"}}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}]",
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        const char *out = NULL;
        apr_size_t len = 0;

        if (ark_anthropic_response_from_openai(&out, &len, bodies[i],
                                               strlen(bodies[i]), "m", p)
            != APR_EINVAL) {
            fail_msg("accepted: %s", bodies[i]);
        }
    }
}

static void response_uses_len_not_nul(void **state)
{
    apr_pool_t *p = *state;
    static const char body[] =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":"
        "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"ok\"},\"finish_reason\":\"stop\"}]}TRAILING";
    const char *out;
    apr_size_t len;

    assert_int_equal(ark_anthropic_response_from_openai(
                         &out, &len, body, sizeof(body) - 1 - 8, "m", p),
                     APR_SUCCESS);
    assert_non_null(strstr(out, "\"id\":\"msg_1\""));
    assert_int_equal(ark_anthropic_response_from_openai(
                         &out, &len, body, sizeof(body) - 1, "m", p),
                     APR_EINVAL);
}

/* --------------------------------------------------------- streaming */

/* A client that checks and records every Anthropic event it is sent. */
static ark_anthropic_stream_t *stream_init(ark_test_client_t *c,
                                           const char *model, apr_pool_t *p)
{
    ark_test_client_init(c, ARK_TEST_FRAME_EVENT, p);
    return ark_anthropic_stream_make(model, ark_test_client_emit, c, p);
}

static apr_status_t feed(ark_anthropic_stream_t *as, const char *text)
{
    return ark_anthropic_stream_feed(as, text, strlen(text));
}

static apr_status_t feed_data(ark_anthropic_stream_t *as, const char *data,
                              apr_pool_t *p)
{
    return feed(as, apr_pstrcat(p, "data: ", data, "\n\n", NULL));
}

static const char *event_name(const ark_test_client_t *c, size_t i)
{
    return json_string_value(json_object_get(json_array_get(c->events, i),
                                             "event"));
}

static const json_t *event_data(const ark_test_client_t *c, size_t i)
{
    return json_object_get(json_array_get(c->events, i), "data");
}

/* The rules every Anthropic stream follows: message_start then ping
 * first; blocks indexed from 0 in order, each started before its deltas
 * and stopped before the next starts; one message_delta after the last
 * block; message_stop last (or an error event ends it). */
static void assert_well_formed(const ark_test_client_t *c)
{
    size_t i, n = json_array_size(c->events);
    long next = 0, open = -1;
    int delta = 0, stopped = 0;

    assert_true(n >= 1);
    if (strcmp(event_name(c, 0), "error")) {
        assert_true(n >= 2);
        assert_string_equal(event_name(c, 0), "message_start");
        assert_string_equal(event_name(c, 1), "ping");
    }
    for (i = 2; i < n; i++) {
        const char *e = event_name(c, i);
        long idx = (long)json_integer_value(json_object_get(event_data(c, i),
                                                            "index"));

        assert_false(stopped);
        if (!strcmp(e, "content_block_start")) {
            assert_int_equal(open, -1);
            assert_false(delta);
            assert_int_equal(idx, next);
            open = next++;
        }
        else if (!strcmp(e, "content_block_delta")) {
            assert_int_equal(idx, open);
        }
        else if (!strcmp(e, "content_block_stop")) {
            assert_int_equal(idx, open);
            open = -1;
        }
        else if (!strcmp(e, "message_delta")) {
            assert_int_equal(open, -1);
            assert_false(delta);
            delta = 1;
        }
        else if (!strcmp(e, "message_stop")) {
            assert_true(delta);
            stopped = 1;
        }
        else if (!strcmp(e, "error")) {
            stopped = 1;
        }
        else {
            fail_msg("unexpected event %s", e);
        }
    }
    assert_true(stopped);
}

static void stream_golden(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *cases = list_cases("stream-", p);
    int i;

    for (i = 0; i < cases->nelts; i++) {
        const char *dir = CASE_AT(cases, i);
        json_t *in = load_file(dir, "input.json", p);
        json_t *want = load_file(dir, "expected.json", p);
        const json_t *ev;
        ark_anthropic_stream_t *as;
        ark_test_client_t c;
        size_t j;

        as = stream_init(&c, json_string_value(json_object_get(in, "model")),
                         p);
        json_array_foreach(json_object_get(in, "events"), j, ev) {
            const char *data = json_is_string(ev) ? json_string_value(ev)
                                                  : ark_json_pdump(ev, NULL,
                                                                   p);
            apr_status_t rv = feed_data(as, data, p);

            if (rv != APR_SUCCESS) {
                fail_msg("%s: event %lu refused (%d)", dir,
                         (unsigned long)j, rv);
            }
        }
        ark_test_assert_json_equal(c.events, want, dir, p);
        assert_well_formed(&c);
        json_decref(c.events);
        json_decref(in);
        json_decref(want);
    }
    assert_true(cases->nelts >= 6);
}

static const char chunk_role[] =
    "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\","
    "\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":"
    "{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}";
static const char chunk_hi[] =
    "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\","
    "\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":"
    "{\"content\":\"Hi\"},\"finish_reason\":null}]}";
static const char chunk_stop[] =
    "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\","
    "\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"stop\"}]}";
static const char chunk_usage[] =
    "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\","
    "\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":"
    "{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}";

static void stream_exact_bytes(void **state)
{
    /* the frames, byte for byte */
    apr_pool_t *p = *state;
    ark_test_client_t c;
    ark_anthropic_stream_t *as = stream_init(&c, "claude-x", p);

    assert_int_equal(feed_data(as, chunk_role, p), APR_SUCCESS);
    assert_int_equal(feed_data(as, chunk_hi, p), APR_SUCCESS);
    assert_int_equal(feed_data(as, chunk_stop, p), APR_SUCCESS);
    assert_int_equal(feed_data(as, chunk_usage, p), APR_SUCCESS);
    assert_int_equal(feed(as, "data: [DONE]\n\n"), APR_SUCCESS);
    assert_string_equal(c.all,
        "event: message_start\ndata: {\"type\":\"message_start\","
        "\"message\":{\"id\":\"msg_9\",\"type\":\"message\",\"role\":"
        "\"assistant\",\"model\":\"claude-x\",\"content\":[],"
        "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
        "{\"input_tokens\":0,\"output_tokens\":0}}}\n\n"
        "event: ping\ndata: {\"type\":\"ping\"}\n\n"
        "event: content_block_start\ndata: {\"type\":"
        "\"content_block_start\",\"index\":0,\"content_block\":"
        "{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":"
        "\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"text_delta\",\"text\":\"Hi\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":"
        "\"content_block_stop\",\"index\":0}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\","
        "\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
        "\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    json_decref(c.events);
}

static void stream_message_delta_waits_for_usage(void **state)
{
    /* usage carried on content chunks (running counts) is not final:
     * message_delta waits for the usage chunk after the finish */
    apr_pool_t *p = *state;
    ark_test_client_t c;
    ark_anthropic_stream_t *as = stream_init(&c, "m", p);

    assert_int_equal(feed_data(as,
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"A\"}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}",
        p), APR_SUCCESS);
    assert_int_equal(feed_data(as, chunk_stop, p), APR_SUCCESS);
    /* start, ping, block start, delta, block stop: no message_delta */
    assert_int_equal(json_array_size(c.events), 5);
    assert_int_equal(feed_data(as,
        "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
        "\"completion_tokens\":3,\"total_tokens\":7}}", p), APR_SUCCESS);
    assert_int_equal(json_array_size(c.events), 6);
    assert_string_equal(event_name(&c, 5), "message_delta");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(
                         event_data(&c, 5), "usage"), "output_tokens")), 3);
    assert_int_equal(feed(as, "data: [DONE]\n\n"), APR_SUCCESS);
    assert_int_equal(json_array_size(c.events), 7);
    assert_string_equal(event_name(&c, 6), "message_stop");
    assert_well_formed(&c);
    json_decref(c.events);
}

static void stream_empty_answer(void **state)
{
    apr_pool_t *p = *state;
    ark_test_client_t c;
    ark_anthropic_stream_t *as = stream_init(&c, "m", p);
    const json_t *msg;

    assert_int_equal(feed(as, "data: [DONE]\n\n"), APR_SUCCESS);
    assert_int_equal(json_array_size(c.events), 4);
    assert_string_equal(event_name(&c, 2), "message_delta");
    assert_string_equal(event_name(&c, 3), "message_stop");
    msg = json_object_get(event_data(&c, 0), "message");
    assert_true(is_random_id(json_string_value(json_object_get(msg, "id")),
                             "msg_"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                            event_data(&c, 2), "delta"), "stop_reason")),
                        "end_turn");
    assert_well_formed(&c);
    json_decref(c.events);
}

static void stream_framing_variants(void **state)
{
    /* CRLF, "data:" without a space, comments and unknown fields */
    apr_pool_t *p = *state;
    ark_test_client_t c;
    ark_anthropic_stream_t *as = stream_init(&c, "m", p);

    assert_int_equal(feed(as, ": keep-alive\n\n"), APR_SUCCESS);
    assert_int_equal(json_array_size(c.events), 0);
    assert_int_equal(feed(as, apr_pstrcat(p, "id: 1\r\ndata:", chunk_hi,
                                          "\r\n\r\n", NULL)), APR_SUCCESS);
    assert_int_equal(feed(as, apr_pstrcat(p, "event: chunk\rdata: ",
                                          chunk_stop, "\r\r", NULL)),
                     APR_SUCCESS);
    /* a chunk split over two data lines (joined by '\n', valid JSON) */
    assert_int_equal(feed(as, "data: {\"id\":\"c\",\"choices\":[],\n"
                              "data: \"usage\":{\"completion_tokens\":2}}"
                              "\n\n"), APR_SUCCESS);
    assert_int_equal(feed(as, "data: [DONE]"), APR_SUCCESS);
    assert_int_equal(json_array_size(c.events), 7);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                            event_data(&c, 3), "delta"), "text")), "Hi");
    assert_well_formed(&c);
    json_decref(c.events);
}

static void stream_malformed_events(void **state)
{
    static const char *const events[] = {
        "data: \n\n",
        "data: not json\n\n",
        "data: [1,2]\n\n",
        "data: \"text\"\n\n",
        "data: null\n\n",
        "data: [DONE] \n\n",
        "data: {\"choices\":\"stop\"}\n\n",
        "data: {\"choices\":[\"x\"]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":\"Hi\"}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
        "{\"index\":0}}}]}\n\n",
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        ark_test_client_t c;
        ark_anthropic_stream_t *as = stream_init(&c, "m", p);

        if (feed(as, events[i]) != APR_EINVAL) {
            fail_msg("accepted: '%s'", events[i]);
        }
        assert_int_equal(c.calls, 0);
        json_decref(c.events);
    }
}

static const char *tool_chunk(apr_pool_t *p, const char *calls)
{
    return apr_pstrcat(p, "{\"id\":\"c\",\"choices\":[{\"index\":0,"
                          "\"delta\":{\"tool_calls\":[", calls, "]}}]}",
                       NULL);
}

static void stream_tool_call_order(void **state)
{
    apr_pool_t *p = *state;
    ark_test_client_t c;
    ark_anthropic_stream_t *as;

    /* a call resumed after the next one began */
    as = stream_init(&c, "m", p);
    assert_int_equal(feed_data(as, tool_chunk(p,
        "{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\"}}"), p),
        APR_SUCCESS);
    assert_int_equal(feed_data(as, tool_chunk(p,
        "{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"g\"}}"), p),
        APR_SUCCESS);
    assert_int_equal(feed_data(as, tool_chunk(p,
        "{\"index\":0,\"function\":{\"arguments\":\"{}\"}}"), p),
        APR_EINVAL);
    json_decref(c.events);

    /* a call whose block was closed by text */
    as = stream_init(&c, "m", p);
    assert_int_equal(feed_data(as, tool_chunk(p,
        "{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\"}}"), p),
        APR_SUCCESS);
    assert_int_equal(feed_data(as, chunk_hi, p), APR_SUCCESS);
    assert_int_equal(feed_data(as, tool_chunk(p,
        "{\"index\":0,\"function\":{\"arguments\":\"{}\"}}"), p),
        APR_EINVAL);
    json_decref(c.events);

    /* content after the finish_reason */
    as = stream_init(&c, "m", p);
    assert_int_equal(feed_data(as, chunk_stop, p), APR_SUCCESS);
    assert_int_equal(feed_data(as, chunk_hi, p), APR_EINVAL);
    json_decref(c.events);
}

static void stream_tool_name_late(void **state)
{
    /* a first fragment without the name: the block starts once the
     * name is known, with the arguments received so far */
    apr_pool_t *p = *state;
    ark_test_client_t c;
    ark_anthropic_stream_t *as = stream_init(&c, "m", p);
    const json_t *block;

    assert_int_equal(feed_data(as, tool_chunk(p,
        "{\"index\":0,\"id\":\"call_9\",\"function\":{\"arguments\":"
        "\"{\\\"a\\\"\"}}"), p), APR_SUCCESS);
    assert_int_equal(json_array_size(c.events), 2);   /* start, ping */
    assert_int_equal(feed_data(as, tool_chunk(p,
        "{\"index\":0,\"function\":{\"name\":\"late\",\"arguments\":"
        "\":1}\"}}"), p), APR_SUCCESS);
    assert_int_equal(json_array_size(c.events), 4);
    block = json_object_get(event_data(&c, 2), "content_block");
    assert_string_equal(json_string_value(json_object_get(block, "id")),
                        "call_9");
    assert_string_equal(json_string_value(json_object_get(block, "name")),
                        "late");
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                            event_data(&c, 3), "delta"), "partial_json")),
                        "{\"a\":1}");
    json_decref(c.events);

    /* never named: malformed */
    as = stream_init(&c, "m", p);
    assert_int_equal(feed_data(as, tool_chunk(p,
        "{\"index\":0,\"function\":{\"arguments\":\"{}\"}}"), p),
        APR_SUCCESS);
    assert_int_equal(feed_data(as, chunk_stop, p), APR_EINVAL);
    json_decref(c.events);
}

static void stream_error_call(void **state)
{
    apr_pool_t *p = *state;
    ark_test_client_t c;
    ark_anthropic_stream_t *as;
    ark_err_t e;

    /* before anything: just the error event */
    as = stream_init(&c, "m", p);
    ark_err_set(&e, 503, "overloaded", NULL, "All providers are busy.");
    assert_int_equal(ark_anthropic_stream_error(as, &e), APR_SUCCESS);
    assert_string_equal(c.all,
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
        "\"overloaded_error\",\"message\":\"All providers are busy.\"}}"
        "\n\n");
    /* the stream is over: later events and errors write nothing */
    assert_int_equal(feed_data(as, chunk_hi, p), APR_SUCCESS);
    assert_int_equal(feed(as, "data: [DONE]\n\n"), APR_SUCCESS);
    assert_int_equal(ark_anthropic_stream_error(as, &e), APR_SUCCESS);
    assert_int_equal(c.calls, 1);
    json_decref(c.events);

    /* mid-stream, typed by status */
    as = stream_init(&c, "m", p);
    assert_int_equal(feed_data(as, chunk_hi, p), APR_SUCCESS);
    ark_err_set(&e, 504, "upstream_timeout", NULL,
                "The upstream provider timed out.");
    assert_int_equal(ark_anthropic_stream_error(as, &e), APR_SUCCESS);
    assert_string_equal(event_name(&c, json_array_size(c.events) - 1),
                        "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(
        event_data(&c, json_array_size(c.events) - 1), "error"), "type")),
        "api_error");
    assert_well_formed(&c);
    json_decref(c.events);

    /* after message_stop: nothing */
    as = stream_init(&c, "m", p);
    assert_int_equal(feed(as, "data: [DONE]\n\n"), APR_SUCCESS);
    assert_int_equal(ark_anthropic_stream_error(as, &e), APR_SUCCESS);
    assert_int_equal(c.calls, 4);
    assert_string_equal(event_name(&c, 3), "message_stop");
    json_decref(c.events);
}

static void stream_error_chunk_types(void **state)
{
    static const struct {
        const char *openai_type;
        const char *type;
    } cases[] = {
        { "invalid_request_error", "invalid_request_error" },
        { "rate_limit_error", "rate_limit_error" },
        { "service_unavailable_error", "overloaded_error" },
        { "timeout_error", "api_error" },
        { "server_error", "api_error" },
        { "tokens", "api_error" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_test_client_t c;
        ark_anthropic_stream_t *as = stream_init(&c, "m", p);
        const json_t *err;

        assert_int_equal(feed_data(as, apr_psprintf(p,
            "{\"error\":{\"message\":\"boom\",\"type\":\"%s\"}}",
            cases[i].openai_type), p), APR_SUCCESS);
        assert_int_equal(json_array_size(c.events), 1);
        err = json_object_get(event_data(&c, 0), "error");
        assert_string_equal(json_string_value(json_object_get(err, "type")),
                            cases[i].type);
        assert_string_equal(json_string_value(json_object_get(err,
                                                              "message")),
                            "boom");
        json_decref(c.events);
    }
}

static void stream_emitter_failure(void **state)
{
    /* the client went away: its status is returned, and sticks */
    apr_pool_t *p = *state;
    ark_test_client_t c;
    ark_anthropic_stream_t *as = stream_init(&c, "m", p);
    ark_err_t e;

    c.fail_with = APR_ECONNABORTED;
    assert_int_equal(feed_data(as, chunk_hi, p), APR_ECONNABORTED);
    assert_int_equal(c.calls, 1);
    assert_int_equal(feed_data(as, chunk_stop, p), APR_ECONNABORTED);
    assert_int_equal(feed(as, "data: [DONE]\n\n"), APR_ECONNABORTED);
    ark_err_set(&e, 500, NULL, NULL, "x");
    assert_int_equal(ark_anthropic_stream_error(as, &e), APR_ECONNABORTED);
    assert_int_equal(c.calls, 1);
    json_decref(c.events);
}

static void stream_many_events(void **state)
{
    /* a long answer: one text block, one delta per chunk */
    apr_pool_t *p = *state;
    apr_pool_t *sp;
    ark_test_client_t c;
    ark_anthropic_stream_t *as;
    int i;

    apr_pool_create(&sp, p);
    ark_test_client_init(&c, ARK_TEST_FRAME_EVENT, p);
    as = ark_anthropic_stream_make("m", ark_test_client_emit, &c, sp);
    for (i = 0; i < 2000; i++) {
        assert_int_equal(feed_data(as, chunk_hi, p), APR_SUCCESS);
        if (i == 10) {
            json_array_clear(c.events);
        }
    }
    assert_int_equal(feed_data(as, chunk_stop, p), APR_SUCCESS);
    assert_int_equal(feed(as, "data: [DONE]\n\n"), APR_SUCCESS);
    assert_int_equal(c.calls, 2 + 1 + 2000 + 1 + 2);
    assert_int_equal(json_array_size(c.events), 2000 - 11 + 1 + 2);
    json_decref(c.events);
    apr_pool_destroy(sp);
}

/* -------------------------------------------------------- error bodies */

static void error_json_per_status(void **state)
{
    static const struct {
        int status;
        const char *type;
    } cases[] = {
        { 400, "invalid_request_error" },
        { 401, "authentication_error" },
        { 403, "permission_error" },
        { 404, "not_found_error" },
        { 405, "invalid_request_error" },
        { 413, "request_too_large" },
        { 415, "invalid_request_error" },
        { 429, "rate_limit_error" },
        { 500, "api_error" },
        { 502, "api_error" },
        { 503, "overloaded_error" },
        { 504, "api_error" },
        { 529, "overloaded_error" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ark_err_t e;
        const char *body;
        json_t *got, *want;

        ark_err_set(&e, cases[i].status, "some_code", "some_param",
                    "Caf\xc3\xa9 \"quoted\" \\ message\n");
        body = ark_anthropic_error_json(&e, p);
        assert_null(strchr(body, '\n'));
        got = load_text(body, strlen(body));
        want = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error",
                         "type", cases[i].type, "message",
                         "Caf\xc3\xa9 \"quoted\" \\ message\n");
        ark_test_assert_json_equal(got, want,
                                   apr_psprintf(p, "HTTP %d",
                                                cases[i].status), p);
        assert_string_equal(ark_anthropic_error_type(cases[i].status),
                            cases[i].type);
        json_decref(got);
        json_decref(want);
    }
}

static void error_json_without_message(void **state)
{
    apr_pool_t *p = *state;
    ark_err_t e;

    memset(&e, 0, sizeof(e));
    e.status = 401;
    assert_string_equal(ark_anthropic_error_json(&e, p),
                        "{\"type\":\"error\",\"error\":{\"type\":"
                        "\"authentication_error\",\"message\":\"\"}}");
    /* not UTF-8: the fixed generic body, still valid JSON */
    e.message = "bad \xff byte";
    json_decref(load_text(ark_anthropic_error_json(&e, p),
                          strlen(ark_anthropic_error_json(&e, p))));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(request_golden),
        ARK_TEST(request_output_owns_its_values),
        ARK_TEST(response_golden),
        ARK_TEST(response_without_ids),
        ARK_TEST(response_rejects_malformed),
        ARK_TEST(response_uses_len_not_nul),
        ARK_TEST(stream_golden),
        ARK_TEST(stream_exact_bytes),
        ARK_TEST(stream_message_delta_waits_for_usage),
        ARK_TEST(stream_empty_answer),
        ARK_TEST(stream_framing_variants),
        ARK_TEST(stream_malformed_events),
        ARK_TEST(stream_tool_call_order),
        ARK_TEST(stream_tool_name_late),
        ARK_TEST(stream_error_call),
        ARK_TEST(stream_error_chunk_types),
        ARK_TEST(stream_emitter_failure),
        ARK_TEST(stream_many_events),
        ARK_TEST(error_json_per_status),
        ARK_TEST(error_json_without_message),
    };

    return ARK_TEST_RUN("ark_front_anthropic", tests);
}
