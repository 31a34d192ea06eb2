/* Unit tests for the JSON validator and key locator (ark_jsonscan.c).
 *
 * jansson is the reference: ark_json_scan must accept exactly the texts
 * json_loadb(buf, len, 0) accepts. Checked on a hand-written corpus
 * (numbers at the int64 and double limits, escapes, surrogate pairs,
 * UTF-8 edge cases, nesting at the depth limit), on every prefix and
 * every one-byte change of a real chat.completion answer, and on
 * thousands of random documents and random mutations of them; for the
 * accepted ones, each located value, parsed alone, must equal what
 * json_object_get returns, and the tree ark_json_build makes must be
 * jansson's (same values, key order and numbers; duplicates refused
 * exactly when jansson refuses them with JSON_REJECT_DUPLICATES).
 *
 * Its two users on the hot path are checked against the jansson code
 * they replace: the upstream body spliced from the client's bytes
 * (ark_openai_body) must equal, parsed, the re-serialized copy with the
 * model replaced, and ark_usage_from_openai_text must read what
 * ark_usage_from_openai reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>

#include "ark_jsonscan.h"
#include "ark_provider.h"
#include "ark_request.h"
#include "ark_testutil.h"

static const char answer[] =
    "{\n  \"id\": \"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\n"
    "  \"object\": \"chat.completion\",\n  \"created\": 1741570283,\n"
    "  \"model\": \"gpt-4o-2024-08-06\",\n  \"choices\": [\n    {\n"
    "      \"index\": 0,\n      \"message\": {\n"
    "        \"role\": \"assistant\",\n"
    "        \"content\": \"Caf\\u00e9 \\\"ok\\\" \\ud83d\\ude00 \xc3\xa9\\n\",\n"
    "        \"refusal\": null,\n        \"annotations\": []\n      },\n"
    "      \"logprobs\": null,\n      \"finish_reason\": \"stop\"\n"
    "    }\n  ],\n  \"usage\": {\n    \"prompt_tokens\": 1117,\n"
    "    \"completion_tokens\": 46,\n    \"total_tokens\": 1163,\n"
    "    \"prompt_tokens_details\": {\n      \"cached_tokens\": 0,\n"
    "      \"audio_tokens\": 0\n    },\n"
    "    \"completion_tokens_details\": {\"reasoning_tokens\": 0}\n"
    "  },\n  \"service_tier\": \"default\",\n"
    "  \"system_fingerprint\": \"fp_fc9f1d7035\", \"x\": -1.5e-3\n}\n";

/* ark_json_build gives, for a text the scanner accepted, the tree
 * json_loadb gives with the same duplicate-key flag: equal values
 * (json_equal), and the same key order and exact numbers (identical
 * compact serialization with 17 significant digits). */
static void build_agrees(const char *buf, apr_size_t len, int reject)
{
    json_t *want = json_loadb(buf, len, reject ? JSON_REJECT_DUPLICATES : 0,
                              NULL);
    json_t *got = ark_json_build(buf, len, reject);
    char *ws = NULL, *gs = NULL;

    if ((want != NULL) != (got != NULL)) {
        fail_msg("build %s where jansson %s (reject duplicates %d): %.*s",
                 got ? "accepts" : "refuses",
                 want ? "accepts" : "refuses", reject,
                 (int)(len > 300 ? 300 : len), buf);
    }
    if (want) {
        size_t fl = JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY;

        ws = json_dumps(want, fl);
        gs = json_dumps(got, fl);
        if (!json_equal(want, got) || !ws || !gs || strcmp(ws, gs)) {
            fail_msg("built tree differs on %.*s:\n  jansson %s\n  built   %s",
                     (int)(len > 300 ? 300 : len), buf, ws ? ws : "?",
                     gs ? gs : "?");
        }
    }
    free(ws);
    free(gs);
    json_decref(want);
    json_decref(got);
}

/* ark_json_scan and jansson agree on buf; returns 1 if accepted. When
 * accepted, ark_json_build must agree with jansson too. */
static int agrees(const char *buf, apr_size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, 0, &jerr);
    apr_status_t rv = ark_json_scan(buf, len, NULL, 0, NULL, NULL);

    /* jansson's one leniency: a raw NUL byte right after a number or a
     * literal is dropped (its stream_unget makes the next read skip it);
     * the scanner refuses it, as RFC 8259 does */
    if (j && rv != APR_SUCCESS && memchr(buf, '\0', len)) {
        json_decref(j);
        return 0;
    }
    if ((j != NULL) != (rv == APR_SUCCESS)) {
        fail_msg("disagreement on %.*s: jansson %s (%s), scan %s",
                 (int)(len > 300 ? 300 : len), buf, j ? "accepts" : "refuses",
                 j ? "" : jerr.text, rv == APR_SUCCESS ? "accepts"
                                                       : "refuses");
    }
    json_decref(j);
    if (rv == APR_SUCCESS) {
        build_agrees(buf, len, 0);
        build_agrees(buf, len, 1);
    }
    return rv == APR_SUCCESS;
}

static int agrees_str(const char *s)
{
    return agrees(s, strlen(s));
}

/* Every located field must equal json_object_get of jansson's tree. */
static void check_fields(const char *buf, apr_size_t len,
                         const char *const *keys, int nkeys)
{
    ark_json_field_t f[8];
    json_t *root = json_loadb(buf, len, 0, NULL);
    int i;

    assert_non_null(root);
    for (i = 0; i < nkeys; i++) {
        f[i].key = keys[i];
    }
    assert_int_equal(ark_json_scan(buf, len, f, nkeys, NULL, NULL),
                     APR_SUCCESS);
    for (i = 0; i < nkeys; i++) {
        json_t *want = json_is_object(root)
                       ? json_object_get(root, keys[i]) : NULL;
        json_t *got;

        if (!want) {
            assert_int_equal(f[i].type, ARK_JSON_NONE);
            continue;
        }
        assert_int_not_equal(f[i].type, ARK_JSON_NONE);
        assert_true(f[i].start < f[i].end && f[i].end <= len);
        assert_int_equal(buf[f[i].key_start], '"');
        got = json_loadb(buf + f[i].start, f[i].end - f[i].start,
                         JSON_DECODE_ANY, NULL);
        if (!got || !json_equal(got, want)) {
            fail_msg("key %s: span '%.*s' differs", keys[i],
                     (int)(f[i].end - f[i].start), buf + f[i].start);
        }
        switch (json_typeof(want)) {
        case JSON_OBJECT: assert_int_equal(f[i].type, ARK_JSON_OBJECT); break;
        case JSON_ARRAY: assert_int_equal(f[i].type, ARK_JSON_ARRAY); break;
        case JSON_STRING: assert_int_equal(f[i].type, ARK_JSON_STRING); break;
        case JSON_INTEGER:
            {
                apr_int64_t v;

                assert_int_equal(f[i].type, ARK_JSON_INTEGER);
                assert_true(ark_json_field_integer(buf, &f[i], &v));
                assert_true(v == (apr_int64_t)json_integer_value(want));
            }
            break;
        case JSON_REAL: assert_int_equal(f[i].type, ARK_JSON_REAL); break;
        case JSON_TRUE: assert_int_equal(f[i].type, ARK_JSON_TRUE); break;
        case JSON_FALSE: assert_int_equal(f[i].type, ARK_JSON_FALSE); break;
        case JSON_NULL: assert_int_equal(f[i].type, ARK_JSON_NULL); break;
        }
        json_decref(got);
    }
    json_decref(root);
}

/* ------------------------------------------------------------ corpus */

static void scan_valid_corpus(void **state)
{
    static const char *const ok[] = {
        "{}", "[]", " \t\r\n{ } \n", "[1]", "[-0]", "[0.5]", "[-0.0e+0]",
        "[1E5]", "[1e-5]", "[123456789.123456789e-10]",
        "[9223372036854775807]", "[-9223372036854775808]",
        "[1.7976931348623157e308]", "[17976931348623157e292]",
        "[0.17976931348623157e309]", "[1e308]", "[9.99e307]",
        "[0e999999999999]", "[1e-99999]", "[0.000000000000000000001e320]",
        "{\"a\":true,\"b\":false,\"c\":null}", "[\"\"]",
        "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", "[\"\\u0041\\u00e9\\u20AC\"]",
        "[\"\\ud83d\\ude00\"]", "[\"\\uD834\\uDD1E\"]", "[\"\\uffff\"]",
        "[\"\xc2\x80\xdf\xbf\"]", "[\"\xe0\xa0\x80\xef\xbf\xbf\"]",
        "[\"\xed\x9f\xbf\xee\x80\x80\"]", "[\"\xf0\x90\x80\x80\"]",
        "[\"\xf4\x8f\xbf\xbf\"]", "{\"\":1}", "{\"a\":1,\"a\":2}",
        "[[[[[]]]],{\"x\":[{}]}]", "[ 1 , 2 ]", "{ \"k\" : [ ] }",
        "[\"\x7f\"]",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!agrees_str(ok[i])) {
            fail_msg("refused: %s", ok[i]);
        }
    }
}

static void scan_invalid_corpus(void **state)
{
    static const char *const bad[] = {
        "", " ", "1", "\"s\"", "true", "null", "{", "[", "]", "}",
        "{]", "[}", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\" 1}",
        "{\"a\":1,}", "{,}", "{1:2}", "{a:1}", "['a']", "[01]", "[-]",
        "[-01]", "[1.]", "[.5]", "[1.e3]", "[1e]", "[1e+]", "[+1]",
        "[0x10]", "[NaN]", "[Infinity]", "[-Infinity]", "[tru]",
        "[truex]", "[true1]", "[nul]", "[True]", "[1 2]", "[1]x",
        "[1] [2]", "{}{}", "[\"a\nb\"]", "[\"a\tb\"]", "[\"\\x\"]",
        "[\"\\u12\"]", "[\"\\u12g4\"]", "[\"\\U0041\"]", "[\"\\'\"]",
        "[\"\\u0000\"]", "{\"a\\u0000\":1}", "[\"\\ud83d\"]",
        "[\"\\ud83dx\"]", "[\"\\ud83d\\u0041\"]", "[\"\\ude00\"]",
        "[\"\\ude00\\ud83d\"]", "[\"\\ud83d\\ud83d\"]",
        "[\"\x80\"]", "[\"\xbf\"]", "[\"\xc0\x80\"]", "[\"\xc1\xbf\"]",
        "[\"\xc2\"]", "[\"\xc2\x41\"]", "[\"\xe0\x80\x80\"]",
        "[\"\xe0\x9f\xbf\"]", "[\"\xed\xa0\x80\"]", "[\"\xed\xbf\xbf\"]",
        "[\"\xf0\x80\x80\x80\"]", "[\"\xf0\x8f\xbf\xbf\"]",
        "[\"\xf4\x90\x80\x80\"]", "[\"\xf5\x80\x80\x80\"]", "[\"\xff\"]",
        "[\"\xe2\x82\"]", "[\"abc", "[\"abc\\", "[\"abc\\\"]",
        "\xef\xbb\xbf{}", "[\xc3\xa9]", "[1]\x0b", "\f[]",
        "[9223372036854775808]", "[-9223372036854775809]",
        "[99999999999999999999]", "[1e309]", "[-1e309]",
        "[1.7976931348623159e308]", "[179769313486231581e291]",
        "[0.2e310]", "[1e999999999999999999999]",
        "[100000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000.0]",
        "{\"a\":1 \"b\":2}", "[1,,2]", "[\"a\"\"b\"]",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (agrees_str(bad[i])) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
    /* raw NUL bytes: jansson refuses them anywhere */
    assert_false(agrees("[\"a\0b\"]", 7));
    assert_false(agrees("[1]\0", 4));
    assert_false(agrees("[\0]", 3));
}

/* jansson counts every value, scalars included, against the limit. */
static void scan_depth_limit(void **state)
{
    apr_pool_t *p = *state;
    int d;

    for (d = ARK_JSON_MAX_DEPTH - 2; d <= ARK_JSON_MAX_DEPTH + 2; d++) {
        char *empty = apr_palloc(p, 2 * (apr_size_t)d + 1);
        char *scalar = apr_palloc(p, 2 * (apr_size_t)d + 2);
        char *obj = apr_palloc(p, 8 * (apr_size_t)d + 3);
        apr_size_t o = 0;
        int i;

        memset(empty, '[', (apr_size_t)d);
        memset(empty + d, ']', (apr_size_t)d);
        memcpy(scalar, empty, (apr_size_t)d);
        scalar[d] = '1';
        memset(scalar + d + 1, ']', (apr_size_t)d);
        for (i = 0; i < d; i++) {
            memcpy(obj + o, "{\"k\":", 5);
            o += 5;
        }
        obj[o++] = '0';
        memset(obj + o, '}', (apr_size_t)d);
        o += (apr_size_t)d;
        assert_int_equal(agrees(empty, 2 * (apr_size_t)d),
                         d <= ARK_JSON_MAX_DEPTH);
        assert_int_equal(agrees(scalar, 2 * (apr_size_t)d + 1),
                         d < ARK_JSON_MAX_DEPTH);
        assert_int_equal(agrees(obj, o), d < ARK_JSON_MAX_DEPTH);
    }
}

/* ---------------------------------------------- a real answer, mangled */

static void scan_answer_fields(void **state)
{
    static const char *const keys[] = {
        "choices", "usage", "model", "x", "missing", "id"
    };
    ark_json_field_t f[2];
    apr_size_t len = sizeof(answer) - 1;
    ark_json_type_t top = ARK_JSON_NONE;

    (void)state;
    memset(f, 0, sizeof(f));
    f[0].key = "choices";
    f[1].key = "usage";
    check_fields(answer, len, keys, 6);
    assert_int_equal(ark_json_scan(answer, len, f, 2, &top, NULL),
                     APR_SUCCESS);
    assert_int_equal(top, ARK_JSON_OBJECT);
    assert_int_equal(f[0].type, ARK_JSON_ARRAY);
    assert_int_equal(f[1].type, ARK_JSON_OBJECT);
    assert_int_equal(answer[f[1].start], '{');
    assert_int_equal(answer[f[1].end - 1], '}');
}

static void scan_answer_truncated_everywhere(void **state)
{
    apr_size_t len = sizeof(answer) - 1, cut, last;

    (void)state;
    /* the answer ends with "}\n": every shorter prefix but the one
     * without the final newline is incomplete */
    last = len - 1;
    for (cut = 0; cut < len; cut++) {
        int ok = agrees(answer, cut);

        assert_int_equal(ok, cut == last);
    }
    assert_true(agrees(answer, len));
}

static void scan_answer_every_byte_changed(void **state)
{
    static const unsigned char repl[] = {
        0x00, '\t', '\n', ' ', '"', ',', '-', '.', '0', '1', ':', 'E',
        '[', '\\', ']', 'e', 'u', '{', '}', 0x7f, 0x80, 0xc3, 0xe2, 0xf0,
        0xff
    };
    char buf[sizeof(answer)];
    apr_size_t len = sizeof(answer) - 1, i, k;

    (void)state;
    for (i = 0; i < len; i++) {
        for (k = 0; k < sizeof(repl); k++) {
            memcpy(buf, answer, len);
            buf[i] = (char)repl[k];
            agrees(buf, len);
        }
        /* deleted */
        memcpy(buf, answer, i);
        memcpy(buf + i, answer + i + 1, len - i - 1);
        agrees(buf, len - 1);
    }
}

/* ----------------------------------------------------- random documents */

typedef struct {
    char *buf;
    apr_size_t len, cap;
    unsigned int seed;
} gen_t;

static unsigned int rnd(gen_t *g, unsigned int n)
{
    g->seed = g->seed * 1103515245u + 12345u;
    return (g->seed >> 8) % n;
}

static void put(gen_t *g, const char *s, apr_size_t n)
{
    if (g->len + n < g->cap) {
        memcpy(g->buf + g->len, s, n);
        g->len += n;
    }
}

static void puts_(gen_t *g, const char *s)
{
    put(g, s, strlen(s));
}

static void ws(gen_t *g)
{
    static const char *const w[] = { "", "", "", " ", "\n  ", "\t", "\r\n" };

    puts_(g, w[rnd(g, 7)]);
}

/* When set, the keys gen_string draws from (NULL-terminated). */
static const char *const *gen_key_set;

static void gen_string(gen_t *g, int key)
{
    static const char *const keys[] = {
        "model", "usage", "choices", "data", "mod\\u0065l", "us\\u0061ge",
        "id", "\\u00e9t\\u00e9", "\xc3\xa9t\xc3\xa9", "a\\/b", ""
    };
    static const char *const pieces[] = {
        "a", "hello", " ", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n",
        "\\r", "\\t", "\\u0041", "\\u00e9", "\\u20ac", "\\uFFFD",
        "\\ud83d\\ude00", "\\uDBFF\\uDFFF", "\xc3\xa9", "\xe2\x82\xac",
        "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "{", "]",
        ":", ","
    };
    unsigned int n, i;

    puts_(g, "\"");
    if (key && gen_key_set) {
        for (n = 0; gen_key_set[n]; n++) {
        }
        puts_(g, gen_key_set[rnd(g, n)]);
    }
    else if (key) {
        puts_(g, keys[rnd(g, sizeof(keys) / sizeof(keys[0]))]);
    }
    else {
        n = rnd(g, 6);
        for (i = 0; i < n; i++) {
            puts_(g, pieces[rnd(g, sizeof(pieces) / sizeof(pieces[0]))]);
        }
    }
    puts_(g, "\"");
}

static void gen_number(gen_t *g)
{
    static const char *const nums[] = {
        "0", "-0", "1", "-1", "42", "1117", "9223372036854775807",
        "-9223372036854775808", "0.5", "-2.25e-3", "1E10", "6.02e+23",
        "1.7976931348623157e308", "4.9e-324", "1e-400", "0.0", "12.5E2"
    };
    char tmp[32];

    if (rnd(g, 3)) {
        puts_(g, nums[rnd(g, sizeof(nums) / sizeof(nums[0]))]);
    }
    else {
        snprintf(tmp, sizeof(tmp), "%d", (int)rnd(g, 2000000) - 1000000);
        puts_(g, tmp);
    }
}

static void gen_value(gen_t *g, int depth)
{
    unsigned int k = rnd(g, depth > 5 ? 6 : 9), n, i;

    switch (k) {
    case 0: gen_string(g, 0); break;
    case 1: case 2: gen_number(g); break;
    case 3: puts_(g, "true"); break;
    case 4: puts_(g, "false"); break;
    case 5: puts_(g, "null"); break;
    case 6: case 7:
        puts_(g, "{");
        ws(g);
        n = rnd(g, 5);
        for (i = 0; i < n; i++) {
            if (i) {
                puts_(g, ",");
                ws(g);
            }
            gen_string(g, 1);
            ws(g);
            puts_(g, ":");
            ws(g);
            gen_value(g, depth + 1);
            ws(g);
        }
        puts_(g, "}");
        break;
    default:
        puts_(g, "[");
        ws(g);
        n = rnd(g, 5);
        for (i = 0; i < n; i++) {
            if (i) {
                puts_(g, ",");
                ws(g);
            }
            gen_value(g, depth + 1);
            ws(g);
        }
        puts_(g, "]");
        break;
    }
}

static void scan_random_documents(void **state)
{
    static const char *const keys[] = {
        "model", "usage", "choices", "data", "id", "\xc3\xa9t\xc3\xa9",
        "a/b", ""
    };
    apr_pool_t *p = *state;
    gen_t g;
    int n, m, accepted = 0;

    g.cap = 1 << 16;
    g.buf = apr_palloc(p, g.cap);
    g.seed = 20261127u;
    for (n = 0; n < 4000; n++) {
        g.len = 0;
        ws(&g);
        if (rnd(&g, 4)) {
            /* an object, so that keys are located */
            unsigned int i, k = 1 + rnd(&g, 7);

            puts_(&g, "{");
            for (i = 0; i < k; i++) {
                if (i) {
                    puts_(&g, ",");
                }
                ws(&g);
                gen_string(&g, 1);
                puts_(&g, ":");
                ws(&g);
                gen_value(&g, 1);
                ws(&g);
            }
            puts_(&g, "}");
        }
        else {
            gen_value(&g, 0);
        }
        ws(&g);
        if (agrees(g.buf, g.len)) {
            accepted++;
            check_fields(g.buf, g.len, keys, 8);
        }
        /* random mutations must be judged as jansson judges them */
        for (m = 0; m < 8 && g.len > 0; m++) {
            char save;
            apr_size_t at = rnd(&g, (unsigned int)g.len);

            save = g.buf[at];
            g.buf[at] = (char)rnd(&g, 256);
            agrees(g.buf, g.len);
            agrees(g.buf, at);
            g.buf[at] = save;
        }
    }
    /* most generated documents are valid (top-level scalars are not) */
    assert_true(accepted > 2500);
}

/* ------------------------------------------------------ nested fields */

/* jansson's answer for nested field i: the member fields[i].key of the
 * value of its parent (the root for -1), or of the first item of that
 * value when it is an array. */
static json_t *nested_want(json_t *root, const ark_json_field_t *f,
                           const int *parent, int i, json_t **vals)
{
    json_t *c = parent[i] < 0 ? root : vals[parent[i]];

    if (json_is_array(c)) {
        c = json_array_get(c, 0);
    }
    return json_is_object(c) ? json_object_get(c, f[i].key) : NULL;
}

/* ark_json_scan_nested agrees with ark_json_scan on validity and error
 * offset, and every field it locates is jansson's value at that path
 * (type, bytes, item count). Returns 1 if accepted. */
static int nested_agrees(const char *buf, apr_size_t len,
                         const char *const *keys, const int *parent,
                         int n)
{
    ark_json_field_t f[8], g[8];
    json_t *vals[8];
    json_t *root;
    ark_json_type_t t1 = ARK_JSON_NONE, t2 = ARK_JSON_NONE;
    apr_size_t e1 = 0, e2 = 0;
    apr_status_t r1, r2;
    int i, top = 0, gi[8];

    for (i = 0; i < n; i++) {
        f[i].key = keys[i];
        if (parent[i] < 0) {
            gi[i] = top;
            g[top++].key = keys[i];
        }
    }
    r1 = ark_json_scan_nested(buf, len, f, parent, n, &t1, &e1);
    r2 = ark_json_scan(buf, len, g, top, &t2, &e2);
    if (r1 != r2 || (r1 != APR_SUCCESS && e1 != e2)
        || (r1 == APR_SUCCESS && t1 != t2)) {
        fail_msg("nested scan %d at %d, plain scan %d at %d on %.*s", r1,
                 (int)e1, r2, (int)e2, (int)(len > 300 ? 300 : len), buf);
    }
    if (r1 != APR_SUCCESS) {
        return 0;
    }
    root = json_loadb(buf, len, 0, NULL);
    assert_non_null(root);
    for (i = 0; i < n; i++) {
        json_t *want = t1 == ARK_JSON_OBJECT
                       ? nested_want(root, f, parent, i, vals) : NULL;
        json_t *got;

        vals[i] = want;
        if (parent[i] < 0 && t1 == ARK_JSON_OBJECT) {
            /* a top-level field: as ark_json_scan finds it */
            assert_int_equal(f[i].type, g[gi[i]].type);
        }
        if (!want) {
            if (f[i].type != ARK_JSON_NONE) {
                fail_msg("field %d (%s) found at %d in %.*s", i, keys[i],
                         (int)f[i].start, (int)(len > 300 ? 300 : len), buf);
            }
            continue;
        }
        assert_true(f[i].key_start < f[i].start && f[i].start < f[i].end
                    && f[i].end <= len);
        assert_int_equal(buf[f[i].key_start], '"');
        got = json_loadb(buf + f[i].start, f[i].end - f[i].start,
                         JSON_DECODE_ANY, NULL);
        if (!got || !json_equal(got, want)) {
            fail_msg("field %d (%s): span '%.*s' differs in %.*s", i,
                     keys[i], (int)(f[i].end - f[i].start), buf + f[i].start,
                     (int)(len > 300 ? 300 : len), buf);
        }
        json_decref(got);
        if (json_is_array(want)) {
            assert_int_equal(f[i].count, json_array_size(want));
        }
        else if (json_is_object(want)) {
            assert_true(f[i].count >= json_object_size(want));
        }
        else {
            assert_int_equal(f[i].count, 0);
        }
    }
    json_decref(root);
    return 1;
}

/* The fields of a streamed chunk, as ark_openai_stream_event asks. */
static const char *const chunk_keys[] = {
    "error", "usage", "choices", "delta", "content", "tool_calls"
};
static const int chunk_parent[] = { -1, -1, -1, 2, 3, 3 };

static void nested_chunk_cases(void **state)
{
    static const char *const ok[] = {
        /* a real chunk */
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
        "\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"content\":\"Paris\"},\"logprobs\":null,"
        "\"finish_reason\":null}],\"usage\":null}",
        /* escapes in the content, in keys ("d\u0065lta" is "delta") */
        "{\"choices\":[{\"d\\u0065lta\":{\"content\":\"\\\"}]\\n\\ud83d\\ude00\"}}]}",
        "{\"choices\":[{\"delta\":{\"cont\\u0065nt\":\"{\\\"a\\\":1}\"}}]}",
        /* usage-only final chunk */
        "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
        "\"completion_tokens\":20,\"total_tokens\":29}}",
        /* an only choice whose index is not 0, several choices */
        "{\"choices\":[{\"index\":5,\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"index\":1,\"delta\":{}},{\"index\":0,"
        "\"delta\":{\"content\":\"x\"}}]}",
        /* tool_calls deltas */
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
        "\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{"
        "\"arguments\":\"{\\\"city\\\"\"}},{\"index\":1}]}}]}",
        /* repeated keys: the last value is the one found */
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"choices\":[]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"},\"delta\":{"
        "\"tool_calls\":[]}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\",\"content\":null}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"choices\":"
        "[{\"delta\":{\"tool_calls\":[1,2]}}]}",
        /* the keys elsewhere: not found */
        "{\"content\":\"x\",\"delta\":{\"content\":\"y\"},"
        "\"choices\":[5,{\"delta\":{\"content\":\"z\"}}]}",
        "{\"choices\":[[{\"delta\":{\"content\":\"x\"}}]]}",
        "{\"choices\":{\"delta\":{\"content\":\"x\"}}}",
        "{\"choices\":[{\"x\":{\"delta\":{\"content\":\"x\"}}}]}",
        "{\"choices\":[{\"delta\":[{\"content\":\"x\"}]}]}",
        "{\"choices\":[{\"delta\":{\"x\":[{\"content\":\"x\"}]}}]}",
        /* whitespace everywhere */
        " {\n \"choices\" : [ { \"delta\" : { \"content\" : \"x\" } } ] } ",
        "[{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}]",
        "{}",
        "{\"error\":null,\"choices\":[]}",
    };
    static const char *const bad[] = {
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}},]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"\\x\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"\\u0000\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"\xc3\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\" \"x\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":01}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]} x",
        "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}}",
        "",
    };
    ark_json_field_t f[6];
    int parent[6];
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!nested_agrees(ok[i], strlen(ok[i]), chunk_keys, chunk_parent,
                           6)) {
            fail_msg("refused: %s", ok[i]);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (nested_agrees(bad[i], strlen(bad[i]), chunk_keys, chunk_parent,
                          6)) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
    /* the first case, spelled out */
    for (i = 0; i < 6; i++) {
        f[i].key = chunk_keys[i];
    }
    assert_int_equal(ark_json_scan_nested(ok[0], strlen(ok[0]), f,
                                          chunk_parent, 6, NULL, NULL),
                     APR_SUCCESS);
    assert_int_equal(f[0].type, ARK_JSON_NONE);
    assert_int_equal(f[1].type, ARK_JSON_NULL);
    assert_int_equal(f[2].type, ARK_JSON_ARRAY);
    assert_int_equal(f[2].count, 1);
    assert_int_equal(f[3].type, ARK_JSON_OBJECT);
    assert_int_equal(f[3].count, 1);
    assert_int_equal(f[4].type, ARK_JSON_STRING);
    assert_int_equal(f[4].end - f[4].start, 7);
    assert_memory_equal(ok[0] + f[4].start, "\"Paris\"", 7);
    assert_int_equal(f[5].type, ARK_JSON_NONE);
    /* a parent must come before its child (a caller's bug otherwise) */
    memcpy(parent, chunk_parent, sizeof(parent));
    parent[3] = 3;
    assert_int_equal(ark_json_scan_nested("{}", 2, f, parent, 6, NULL, NULL),
                     APR_EINVAL);
    parent[3] = -2;
    assert_int_equal(ark_json_scan_nested("{}", 2, f, parent, 6, NULL, NULL),
                     APR_EINVAL);
}

/* Keys are matched down to ARK_JSON_NEST_DEPTH - 1 levels. */
static void nested_depth_bound(void **state)
{
    static const char *const keys[] = {
        "a", "a", "a", "a", "a", "a", "a", "a"
    };
    static const int parent[] = { -1, 0, 1, 2, 3, 4, 5, 6 };
    ark_json_field_t f[8];
    const char *doc = "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{"
                      "\"a\":1}}}}}}}}";
    int i;

    (void)state;
    for (i = 0; i < 8; i++) {
        f[i].key = keys[i];
    }
    assert_int_equal(ark_json_scan_nested(doc, strlen(doc), f, parent, 8,
                                          NULL, NULL), APR_SUCCESS);
    for (i = 0; i < ARK_JSON_NEST_DEPTH - 1; i++) {
        assert_int_equal(f[i].type, ARK_JSON_OBJECT);
        assert_int_equal(f[i].count, 1);
    }
    /* the eighth "a" is 8 containers deep: not looked for */
    assert_int_equal(f[7].type, ARK_JSON_NONE);
}

/* Random documents with keys from the generator's set, located through
 * several levels, and their mutations: the same as jansson's paths. */
static void nested_random_documents(void **state)
{
    static const char *const keys[] = {
        "choices", "data", "model", "usage", "usage", "id", "", "choices"
    };
    static const int parent[] = { -1, 0, 1, -1, 0, 1, 2, 3 };
    static const char *const doc_keys[] = {
        "choices", "data", "model", "usage", "mod\\u0065l", "id", "", NULL
    };
    apr_pool_t *p = *state;
    gen_t g;
    int n, m, accepted = 0, found = 0;

    g.cap = 1 << 16;
    g.buf = apr_palloc(p, g.cap);
    g.seed = 20261128u;
    gen_key_set = doc_keys;
    for (n = 0; n < 6000; n++) {
        unsigned int i, k = 1 + rnd(&g, 7);

        /* mostly objects, whose members are looked for */
        g.len = 0;
        if (rnd(&g, 8)) {
            puts_(&g, "{");
            for (i = 0; i < k; i++) {
                puts_(&g, i ? "," : "");
                gen_string(&g, 1);
                puts_(&g, ":");
                gen_value(&g, 1);
            }
            puts_(&g, "}");
        }
        else {
            gen_value(&g, 0);
        }
        if (nested_agrees(g.buf, g.len, keys, parent, 8)) {
            ark_json_field_t f[8];

            accepted++;
            for (i = 0; i < 8; i++) {
                f[i].key = keys[i];
            }
            ark_json_scan_nested(g.buf, g.len, f, parent, 8, NULL, NULL);
            for (i = 0; i < 8; i++) {
                found += parent[i] >= 0 && f[i].type != ARK_JSON_NONE;
            }
        }
        for (m = 0; m < 6 && g.len > 0; m++) {
            char save;
            apr_size_t at = rnd(&g, (unsigned int)g.len);

            save = g.buf[at];
            g.buf[at] = (char)rnd(&g, 256);
            nested_agrees(g.buf, g.len, keys, parent, 8);
            nested_agrees(g.buf, at, keys, parent, 8);
            g.buf[at] = save;
        }
    }
    gen_key_set = NULL;
    assert_true(accepted > 1000);
    /* nested fields were really found, not only absent (418 with this
     * seed) */
    assert_true(found > 300);
}

/* ------------------------------------------------------------ limits */

/* The container depth ([] is 1) and the number of elements (array items
 * plus object members) of a jansson document: what the limits count. */
static void measure(const json_t *v, int level, int *pdepth, apr_size_t *pn)
{
    const char *k;
    json_t *c;
    size_t i;

    if (!json_is_object(v) && !json_is_array(v)) {
        return;
    }
    if (level > *pdepth) {
        *pdepth = level;
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, c) {
            (*pn)++;
            measure(c, level + 1, pdepth, pn);
        }
    }
    else {
        json_array_foreach(v, i, c) {
            (*pn)++;
            measure(c, level + 1, pdepth, pn);
        }
    }
}

static apr_status_t limited(const char *buf, apr_size_t len, int depth,
                            apr_size_t elements, ark_json_limit_t *phit)
{
    ark_json_limits_t lim;

    lim.max_depth = depth;
    lim.max_elements = elements;
    return ark_json_scan_limited(buf, len, NULL, 0, &lim, phit, NULL);
}

/* Hand-made cases: what counts, and where the scan stops. */
static void scan_limits_cases(void **state)
{
    apr_pool_t *p = *state;
    ark_json_limit_t hit;
    ark_json_field_t f[2];
    ark_json_limits_t lim;
    apr_size_t at;
    char *deep;
    int i;

    /* depth counts containers only: {"a":[1]} is 2 deep, 2 elements */
    assert_int_equal(limited("{\"a\":[1]}", 9, 2, 2, &hit), APR_SUCCESS);
    assert_int_equal(hit, ARK_JSON_LIMIT_NONE);
    assert_int_equal(limited("{\"a\":[1]}", 9, 1, 0, &hit), APR_ENOSPC);
    assert_int_equal(hit, ARK_JSON_LIMIT_DEPTH);
    assert_int_equal(limited("{\"a\":[1]}", 9, 0, 1, &hit), APR_ENOSPC);
    assert_int_equal(hit, ARK_JSON_LIMIT_ELEMENTS);
    /* empty containers hold no elements; 0 means no limit */
    assert_int_equal(limited("[[],{},[[]]]", 12, 3, 4, &hit), APR_SUCCESS);
    assert_int_equal(limited("[[],{},[[]]]", 12, 0, 0, &hit), APR_SUCCESS);
    assert_int_equal(limited("[[],{},[[]]]", 12, 2, 0, &hit), APR_ENOSPC);

    /* a syntax error before the limit is a syntax error ... */
    assert_int_equal(limited("[1,,[[[[]]]]]", 13, 2, 0, &hit), APR_EINVAL);
    assert_int_equal(hit, ARK_JSON_LIMIT_NONE);
    /* ... and the limit is found before a later one, where it is passed */
    lim.max_depth = 3;
    lim.max_elements = 0;
    assert_int_equal(ark_json_scan_limited("[[[[x", 5, NULL, 0, &lim, &hit,
                                           &at), APR_ENOSPC);
    assert_int_equal(hit, ARK_JSON_LIMIT_DEPTH);
    assert_int_equal(at, 3);

    /* 100000 levels: refused at the limit, without reading further */
    deep = apr_palloc(p, 100000);
    memset(deep, '[', 100000);
    assert_int_equal(ark_json_scan_limited(deep, 100000, NULL, 0, &lim, &hit,
                                           &at), APR_ENOSPC);
    assert_int_equal(at, 3);
    /* and the jansson limit still holds with no depth limit given */
    lim.max_depth = 0;
    assert_int_equal(ark_json_scan_limited(deep, 100000, NULL, 0, &lim, &hit,
                                           NULL), APR_EINVAL);

    /* a field's count: the items of its array, the members of its object,
     * of its last occurrence */
    f[0].key = "messages";
    f[1].key = "m";
    lim.max_depth = 0;
    lim.max_elements = 0;
    assert_int_equal(ark_json_scan_limited(
        "{\"messages\":[{\"a\":[1,2,3]},[],3],\"m\":{\"x\":1,\"y\":[2]}}",
        53, f, 2, &lim, &hit, NULL), APR_SUCCESS);
    assert_int_equal(f[0].type, ARK_JSON_ARRAY);
    assert_int_equal(f[0].count, 3);
    assert_int_equal(f[1].type, ARK_JSON_OBJECT);
    assert_int_equal(f[1].count, 2);
    assert_int_equal(ark_json_scan(
        "{\"m\":[1,2,3],\"messages\":\"x\",\"m\":[[1,2]]}", 40, f, 2,
        NULL, NULL), APR_SUCCESS);
    assert_int_equal(f[0].type, ARK_JSON_STRING);
    assert_int_equal(f[0].count, 0);
    assert_int_equal(f[1].count, 1);

    /* many elements: refused at exactly one more than allowed */
    deep = apr_palloc(p, 2 * 1000 + 1);
    deep[0] = '[';
    for (i = 0; i < 1000; i++) {
        deep[1 + 2 * i] = '0';
        deep[2 + 2 * i] = i == 999 ? ']' : ',';
    }
    assert_int_equal(limited(deep, 2001, 1, 1000, &hit), APR_SUCCESS);
    assert_int_equal(limited(deep, 2001, 1, 999, &hit), APR_ENOSPC);
    assert_int_equal(hit, ARK_JSON_LIMIT_ELEMENTS);
}

/* On random documents, the limits agree with jansson's tree: a document
 * passes at exactly its own depth and element count and is refused, for
 * the right limit, one below either. */
static void scan_limits_random(void **state)
{
    apr_pool_t *p = *state;
    gen_t g;
    int n, checked = 0;

    g.cap = 1 << 16;
    g.buf = apr_palloc(p, g.cap);
    g.seed = 20270105u;
    for (n = 0; n < 3000; n++) {
        ark_json_limit_t hit;
        apr_size_t count = 0;
        int depth = 0;
        json_t *j;

        g.len = 0;
        puts_(&g, rnd(&g, 2) ? "[" : "{\"k\":");
        gen_value(&g, 0);
        puts_(&g, g.buf[0] == '[' ? "]" : "}");
        j = json_loadb(g.buf, g.len, JSON_REJECT_DUPLICATES, NULL);
        if (!j) {
            continue;    /* duplicate keys: the tree drops some */
        }
        measure(j, 1, &depth, &count);
        json_decref(j);
        checked++;
        assert_int_equal(limited(g.buf, g.len, depth, count, &hit),
                         APR_SUCCESS);
        if (depth > 1) {
            assert_int_equal(limited(g.buf, g.len, depth - 1, 0, &hit),
                             APR_ENOSPC);
            assert_int_equal(hit, ARK_JSON_LIMIT_DEPTH);
        }
        if (count > 1) {
            assert_int_equal(limited(g.buf, g.len, 0, count - 1, &hit),
                             APR_ENOSPC);
            assert_int_equal(hit, ARK_JSON_LIMIT_ELEMENTS);
        }
    }
    assert_true(checked > 2000);
}

/* ------------------------------------------------------------- quote */

static void quote_round_trips(void **state)
{
    static const char *const names[] = {
        "gpt-4o-mini-2024-07-18", "a\"b\\c", "tab\there\n", "\x01\x1f",
        "caf\xc3\xa9 \xf0\x9f\x98\x80", "models/gemini-1.5-pro", ""
    };
    char out[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        apr_size_t n = ark_json_quote(out, names[i], strlen(names[i]));
        json_t *j;

        assert_true(n >= 2);
        j = json_loadb(out, n, JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(j), names[i]);
        json_decref(j);
    }
    assert_int_equal(ark_json_quote(out, "bad\xc3", 4), 0);
    assert_int_equal(ark_json_quote(out, "\xed\xa0\x80", 3), 0);
    assert_int_equal(ark_json_quote(out, "a\0b", 3), 0);
}

static void scan_reports_error_offset(void **state)
{
    apr_size_t at = 0;

    (void)state;
    assert_int_equal(ark_json_scan("{\"a\":tru}", 9, NULL, 0, NULL, &at),
                     APR_EINVAL);
    assert_int_equal(at, 5);
    assert_int_equal(ark_json_scan("[1,2", 4, NULL, 0, NULL, &at),
                     APR_EINVAL);
    assert_int_equal(at, 4);
}

/* ----------------------------------------- the scanner's hot-path users */

/* What ark_openai_body produced with json_copy + json_dumps. */
static json_t *expected_body(const ark_req_t *req, const char *model)
{
    json_t *root = json_deep_copy(req->root);

    json_object_set_new(root, "model", json_string(model));
    if (req->endpoint == ARK_ENDPOINT_CHAT && req->stream) {
        json_t *opts = json_object_get(root, "stream_options");

        opts = json_is_object(opts) ? json_deep_copy(opts) : json_object();
        json_object_set_new(opts, "include_usage", json_true());
        json_object_set_new(root, "stream_options", opts);
    }
    return root;
}

static void check_body(const ark_req_t *req, const char *model,
                       apr_pool_t *p)
{
    apr_size_t len = 0;
    const char *body = ark_openai_body(req, model, &len, p);
    json_error_t jerr;
    json_t *got, *want = expected_body(req, model);

    assert_non_null(body);
    assert_int_equal(strlen(body), len);
    /* no key may appear twice in what is sent */
    got = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!got) {
        fail_msg("spliced body invalid (%s): %s\nfrom: %.*s", jerr.text,
                 body, (int)req->raw_len, req->raw);
    }
    if (!json_equal(got, want)) {
        fail_msg("spliced body differs: %s\nfrom: %.*s", body,
                 (int)req->raw_len, req->raw);
    }
    json_decref(got);
    json_decref(want);
}

static void splice_body_equals_reserialized(void **state)
{
    static const char *const models[] = {
        "gpt-4o-mini-2024-07-18", "a\"b\\c", "caf\xc3\xa9-\xf0\x9f\x98\x80",
        "org/model:v1", "tab\tnl\n"
    };
    static const char *const model_keys[] = {
        "\"model\"", "\"mod\\u0065l\"", "\"\\u006d\\u006f\\u0064el\""
    };
    static const char *const opts[] = {
        "", "null", "{}", "{ }", "{\"include_usage\":false}",
        "{ \"x\" : 1 , \"include_usage\" : false }",
        "{\"x\":{\"include_usage\":false}}", "{\"incl\\u0075de_usage\":null}",
        "{\"include_usage\":true,\"y\":[1,{\"z\":\"}\"}]}"
    };
    static const char *const extras[] = {
        "\"temperature\":0.7", "\"max_tokens\":256", "\"n\":1e0",
        "\"user\":\"caf\\u00e9 \\\"q\\\" \\ud83d\\ude00 \xe2\x82\xac\"",
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"parameters\":{\"model\":\"inner\",\"stream_options\":{}}}}]",
        "\"metadata\":{\"model\":\"not-this-one\"}", "\"seed\":-0",
        "\"logit_bias\":{\"50256\":-100}", "\"stop\":[\"}\",\"\\\"model\\\"\"]"
    };
    apr_pool_t *p = *state;
    gen_t g;
    int n, checked = 0;

    g.cap = 1 << 14;
    g.buf = apr_palloc(p, g.cap);
    g.seed = 8259u;
    for (n = 0; n < 3000; n++) {
        apr_pool_t *sub;
        ark_req_t req;
        ark_err_t err;
        unsigned int i, nparts, order[8], stream = rnd(&g, 4);
        const char *parts[8];
        char *body;

        apr_pool_create(&sub, p);
        nparts = 0;
        parts[nparts++] = apr_pstrcat(sub, model_keys[rnd(&g, 3)],
                                      rnd(&g, 2) ? ": " : ":",
                                      "\"alias-\\u00e9\"", NULL);
        parts[nparts++] = "\"messages\":[{\"role\":\"system\",\"content\":"
                          "\"Be brief.\"},{\"role\":\"user\",\"content\":"
                          "\"Hello \\n \xc3\xa9 \\u2603\"}]";
        if (stream == 1) {
            parts[nparts++] = "\"stream\":false";
        }
        else if (stream >= 2) {
            const char *o = opts[rnd(&g, sizeof(opts) / sizeof(opts[0]))];

            parts[nparts++] = "\"stream\" : true";
            if (*o) {
                parts[nparts++] = apr_pstrcat(sub, "\"stream_options\":", o,
                                              NULL);
            }
        }
        for (i = rnd(&g, 4); i > 0; i--) {
            parts[nparts++] = extras[rnd(&g, sizeof(extras)
                                           / sizeof(extras[0]))];
        }
        /* shuffle, then join with random whitespace */
        for (i = 0; i < nparts; i++) {
            order[i] = i;
        }
        for (i = nparts - 1; i > 0; i--) {
            unsigned int j = rnd(&g, i + 1), t = order[i];

            order[i] = order[j];
            order[j] = t;
        }
        g.len = 0;
        ws(&g);
        puts_(&g, "{");
        for (i = 0; i < nparts; i++) {
            if (i) {
                puts_(&g, ",");
            }
            ws(&g);
            puts_(&g, parts[order[i]]);
            ws(&g);
        }
        puts_(&g, "}");
        ws(&g);
        body = apr_pstrmemdup(sub, g.buf, g.len);
        if (ark_chat_req_parse(&req, body, g.len, &err, sub)
            == APR_SUCCESS) {
            assert_non_null(req.raw);
            check_body(&req, models[rnd(&g, sizeof(models)
                                         / sizeof(models[0]))], sub);
            checked++;
        }
        apr_pool_destroy(sub);
    }
    /* duplicate extras are refused; most requests are not */
    assert_true(checked > 1500);
}

static void splice_body_embeddings_and_fallback(void **state)
{
    static const char body[] =
        "{\"input\":[\"a\",\"\\u00e9\"],\"model\":\"emb\","
        "\"encoding_format\":\"float\"}";
    apr_pool_t *p = *state;
    ark_req_t req;
    ark_err_t err;

    assert_int_equal(ark_embed_req_parse(&req, body, sizeof(body) - 1, &err,
                                         p), APR_SUCCESS);
    check_body(&req, "text-embedding-3-small", p);
    /* a model name jansson cannot encode: the old path decides */
    check_body(&req, "bad\xc3", p);
    /* a request without raw bytes (translated by a front) */
    assert_int_equal(ark_chat_req_from_json(&req, json_pack(
        "{s:s, s:[{s:s, s:s}], s:b}", "model", "m", "messages", "role",
        "user", "content", "hi", "stream", 1), 10, &err, p), APR_SUCCESS);
    assert_null(req.raw);
    check_body(&req, "up", p);
}

static void usage_text_equals_tree(void **state)
{
    static const char *const vals[] = {
        "0", "7", "-3", "1.5", "1e2", "\"12\"", "null", "true", "[]", "{}",
        "9223372036854775807", "2147483648"
    };
    static const char *const names[] = {
        "prompt_tokens", "completion_tokens", "total_tokens",
        "prompt_tokens_details", "cached_tokens", "total_\\u0074okens"
    };
    apr_pool_t *p = *state;
    gen_t g;
    int n;

    g.cap = 4096;
    g.buf = apr_palloc(p, g.cap);
    g.seed = 4242u;
    for (n = 0; n < 3000; n++) {
        ark_usage_t a, b;
        json_t *j;
        unsigned int i, k = rnd(&g, 7);
        int ra, rb;

        g.len = 0;
        puts_(&g, "{");
        for (i = 0; i < k; i++) {
            unsigned int name = rnd(&g, 6);

            if (i) {
                puts_(&g, ",");
            }
            ws(&g);
            puts_(&g, "\"");
            puts_(&g, names[name]);
            puts_(&g, "\":");
            if (name == 3 && rnd(&g, 4)) {
                puts_(&g, "{\"cached_tokens\":");
                puts_(&g, vals[rnd(&g, 12)]);
                puts_(&g, rnd(&g, 2) ? ",\"audio_tokens\":0}" : "}");
            }
            else {
                puts_(&g, vals[rnd(&g, 12)]);
            }
        }
        puts_(&g, "}");
        j = json_loadb(g.buf, g.len, 0, NULL);
        assert_non_null(j);
        ark_usage_clear(&a);
        ark_usage_clear(&b);
        ra = ark_usage_from_openai(&a, j);
        rb = ark_usage_from_openai_text(&b, g.buf, g.len);
        assert_int_equal(ra, rb);
        if (memcmp(&a, &b, sizeof(a))) {
            fail_msg("usage differs on %.*s", (int)g.len, g.buf);
        }
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(scan_valid_corpus),
        ARK_TEST(scan_invalid_corpus),
        ARK_TEST(scan_depth_limit),
        ARK_TEST(scan_answer_fields),
        ARK_TEST(scan_answer_truncated_everywhere),
        ARK_TEST(scan_answer_every_byte_changed),
        ARK_TEST(scan_random_documents),
        ARK_TEST(nested_chunk_cases),
        ARK_TEST(nested_depth_bound),
        ARK_TEST(nested_random_documents),
        ARK_TEST(scan_limits_cases),
        ARK_TEST(scan_limits_random),
        ARK_TEST(quote_round_trips),
        ARK_TEST(scan_reports_error_offset),
        ARK_TEST(splice_body_equals_reserialized),
        ARK_TEST(splice_body_embeddings_and_fallback),
        ARK_TEST(usage_text_equals_tree),
    };

    return ARK_TEST_RUN("ark_jsonscan", tests);
}
