/* Unit tests for W3C Trace Context handling and OTLP spans (ark_trace.c)
 * and the span exporter (ark_trace_export.c).
 *
 * traceparent: the valid forms, then one invalid value per rule of the
 * specification (each must leave the context untouched); tracestate:
 * passed through, refused, shortened by members; ids: length, alphabet,
 * never zero, unique; child formatting round-trips through the parser;
 * span and envelope JSON parsed back and checked field by field; the
 * exporter's directive parsing, and a real POST to a one-shot collector
 * on a loopback socket (and a failed one to a closed port).
 */
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <jansson.h>

#include "ark_testutil.h"
#include "ark_trace.h"
#include "ark_trace_export.h"

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT "00f067aa0ba902b7"
#define VALID "00-" TRACE "-" PARENT "-01"

static int is_lower_hex(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (strlen(s) != n) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!strchr("0123456789abcdef", s[i])) {
            return 0;
        }
    }
    return 1;
}

static int all_zero(const char *s)
{
    return strspn(s, "0") == strlen(s);
}

/* ------------------------------------------------------- traceparent */

static void parse_valid(void **state)
{
    ark_trace_t t;

    (void)state;
    memset(&t, 0, sizeof(t));
    assert_int_equal(ark_trace_parse(&t, VALID), APR_SUCCESS);
    assert_string_equal(t.trace_id, TRACE);
    assert_string_equal(t.parent_id, PARENT);
    assert_int_equal(t.flags, ARK_TRACE_FLAG_SAMPLED);

    assert_int_equal(ark_trace_parse(&t, "00-" TRACE "-" PARENT "-00"),
                     APR_SUCCESS);
    assert_int_equal(t.flags, 0);
    /* unknown flag bits are not passed on (level 1 knows "sampled") */
    assert_int_equal(ark_trace_parse(&t, "00-" TRACE "-" PARENT "-ff"),
                     APR_SUCCESS);
    assert_int_equal(t.flags, ARK_TRACE_FLAG_SAMPLED);
    assert_int_equal(ark_trace_parse(&t, "00-" TRACE "-" PARENT "-02"),
                     APR_SUCCESS);
    assert_int_equal(t.flags, 0);
}

static void parse_future_versions(void **state)
{
    static const char *const ok[] = {
        "01-" TRACE "-" PARENT "-01",
        "01-" TRACE "-" PARENT "-01-what-the-future-will-be-like",
        "cc-" TRACE "-" PARENT "-01-",
        "fe-" TRACE "-" PARENT "-00",
    };
    static const char *const bad[] = {
        "01-" TRACE "-" PARENT "-01x",       /* no '-' after the flags */
        "01-" TRACE "-" PARENT "-01.more",
        "ff-" TRACE "-" PARENT "-01",        /* version ff is invalid */
    };
    ark_trace_t t;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        memset(&t, 0, sizeof(t));
        if (ark_trace_parse(&t, ok[i]) != APR_SUCCESS) {
            fail_msg("refused: %s", ok[i]);
        }
        assert_string_equal(t.trace_id, TRACE);
        assert_string_equal(t.parent_id, PARENT);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ark_trace_parse(&t, bad[i]) == APR_SUCCESS) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
}

static void parse_invalid_each_rule(void **state)
{
    static const char *const bad[] = {
        "",
        "00",
        "00-" TRACE "-" PARENT "-0",                   /* short */
        "00-" TRACE "-" PARENT "-01-",                  /* v00 too long */
        "00-" TRACE "-" PARENT "-01-extra",
        " 00-" TRACE "-" PARENT "-01",                 /* leading blank */
        "0A-" TRACE "-" PARENT "-01",                  /* upper-case ver */
        "0g-" TRACE "-" PARENT "-01",                  /* not hex */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PARENT "-01",  /* upper */
        "00-4bf92f3577b34da6a3ce929d0e0e473G-" PARENT "-01",  /* not hex */
        "00-00000000000000000000000000000000-" PARENT "-01",  /* zero id */
        "00-" TRACE "-00F067AA0BA902B7-01",            /* upper parent */
        "00-" TRACE "-0000000000000000-01",            /* zero parent */
        "00-" TRACE "-00f067aa0ba902bz-01",            /* not hex */
        "00-" TRACE "-" PARENT "-0A",                  /* upper flags */
        "00-" TRACE "-" PARENT "-x1",                  /* flags not hex */
        "00_" TRACE "-" PARENT "-01",                  /* delimiters */
        "00-" TRACE "_" PARENT "-01",
        "00-" TRACE "-" PARENT "_01",
        "00-4bf92f3577b34da6a3ce929d0e0e47-36" PARENT "-01", /* shifted */
        "00-" TRACE "-" PARENT "-01, 00-" TRACE "-" PARENT "-01", /* two */
    };
    ark_trace_t t, before;
    size_t i;

    (void)state;
    assert_int_equal(ark_trace_parse(&t, NULL), APR_EINVAL);
    memset(&before, 0x5a, sizeof(before));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = before;
        if (ark_trace_parse(&t, bad[i]) == APR_SUCCESS) {
            fail_msg("accepted: '%s'", bad[i]);
        }
        /* a refused value leaves the context as it was */
        assert_memory_equal(&t, &before, sizeof(t));
    }
}

static void parse_bounded_length(void **state)
{
    apr_pool_t *p = *state;
    char *v = apr_pstrcat(p, "01-" TRACE "-" PARENT "-01-", NULL);
    ark_trace_t t;

    while (strlen(v) <= ARK_TRACEPARENT_MAX) {
        v = apr_pstrcat(p, v, "x", NULL);
    }
    assert_int_equal(ark_trace_parse(&t, v), APR_EINVAL);
    v[ARK_TRACEPARENT_MAX] = '\0';
    assert_int_equal(ark_trace_parse(&t, v), APR_SUCCESS);
}

/* -------------------------------------------------------- tracestate */

static void tracestate_passed_or_refused(void **state)
{
    apr_pool_t *p = *state;
    const char *v = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

    assert_ptr_equal(ark_tracestate_check(v, p), v);
    assert_null(ark_tracestate_check(NULL, p));
    assert_null(ark_tracestate_check("", p));
    assert_null(ark_tracestate_check(" , ", p));
    assert_null(ark_tracestate_check("a=1\r\nx-evil: 1", p));
    assert_null(ark_tracestate_check("a=1\x7f", p));
    assert_null(ark_tracestate_check("a=\xc3\xa9", p));
}

static void tracestate_too_many_members(void **state)
{
    apr_pool_t *p = *state;
    char *v = "";
    int i;

    for (i = 0; i < 32; i++) {
        v = apr_psprintf(p, "%s%sk%d=v", v, i ? "," : "", i);
    }
    assert_ptr_equal(ark_tracestate_check(v, p), v);
    v = apr_pstrcat(p, v, ",k32=v", NULL);
    assert_null(ark_tracestate_check(v, p));
}

static void tracestate_shortened_by_members(void **state)
{
    apr_pool_t *p = *state;
    char *big = apr_palloc(p, 201), *v = "", *out;
    int i;

    memset(big, 'b', 200);
    big[200] = '\0';
    /* 10 members of 60 characters (610 with commas) plus one of 202 */
    for (i = 0; i < 10; i++) {
        char m[61];

        memset(m, 'a' + i, 60);
        m[0] = (char)('a' + i);
        m[1] = '=';
        m[60] = '\0';
        v = apr_pstrcat(p, v, i ? "," : "", m, NULL);
        if (i == 1) {
            v = apr_pstrcat(p, v, ",z=", big, NULL);
        }
    }
    out = (char *)ark_tracestate_check(v, p);
    assert_non_null(out);
    assert_true(strlen(out) <= ARK_TRACESTATE_MAX);
    /* the long member went first, then members from the end */
    assert_null(strstr(out, "z="));
    assert_true(!strncmp(out, "a=", 2));
    assert_non_null(strstr(out, ",b="));
    assert_non_null(strstr(out, ",h="));        /* 8 x 60 + 7 = 487 */
    assert_null(strstr(out, ",i="));
    assert_int_equal(strlen(out), 8 * 60 + 7);
}

/* ----------------------------------------------------------- ids */

static void ids_generated(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *seen = apr_hash_make(p);
    unsigned char raw[8];
    int i;

    for (i = 0; i < 2000; i++) {
        char *tid = apr_palloc(p, ARK_TRACE_ID_HEX + 1);
        char *sid = apr_palloc(p, ARK_SPAN_ID_HEX + 1);

        ark_trace_new_id(tid, ARK_TRACE_ID_HEX);
        ark_trace_new_id(sid, ARK_SPAN_ID_HEX);
        assert_true(is_lower_hex(tid, ARK_TRACE_ID_HEX));
        assert_true(is_lower_hex(sid, ARK_SPAN_ID_HEX));
        assert_false(all_zero(tid));
        assert_false(all_zero(sid));
        assert_null(apr_hash_get(seen, tid, APR_HASH_KEY_STRING));
        assert_null(apr_hash_get(seen, sid, APR_HASH_KEY_STRING));
        apr_hash_set(seen, tid, APR_HASH_KEY_STRING, tid);
        apr_hash_set(seen, sid, APR_HASH_KEY_STRING, sid);
    }
    for (i = 0; i < 100; i++) {
        int j, any = 0;

        ark_trace_random(raw, sizeof(raw));
        for (j = 0; j < (int)sizeof(raw); j++) {
            any |= raw[j];
        }
        assert_true(any);
    }
}

/* A forked child (an httpd process) never repeats its parent's ids: both
 * draw after the fork and compare; and threads draw different ids. */
static void ids_differ_after_fork(void **state)
{
    char parent[ARK_TRACE_ID_HEX + 1], child[ARK_TRACE_ID_HEX + 1];
    int fd[2], status;
    pid_t pid;

    (void)state;
    ark_trace_new_id(parent, ARK_TRACE_ID_HEX);   /* parent is seeded */
    assert_int_equal(pipe(fd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ark_trace_new_id(child, ARK_TRACE_ID_HEX);
        _exit(write(fd[1], child, ARK_TRACE_ID_HEX) == ARK_TRACE_ID_HEX
                  ? 0 : 1);
    }
    ark_trace_new_id(parent, ARK_TRACE_ID_HEX);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(read(fd[0], child, ARK_TRACE_ID_HEX), ARK_TRACE_ID_HEX);
    child[ARK_TRACE_ID_HEX] = '\0';
    close(fd[0]);
    close(fd[1]);
    assert_true(is_lower_hex(child, ARK_TRACE_ID_HEX));
    assert_string_not_equal(parent, child);
}

static void *APR_THREAD_FUNC draw_id(apr_thread_t *th, void *data)
{
    ark_trace_new_id(data, ARK_TRACE_ID_HEX);
    apr_thread_exit(th, APR_SUCCESS);
    return NULL;
}

static void ids_differ_between_threads(void **state)
{
    apr_pool_t *p = *state;
    char ids[4][ARK_TRACE_ID_HEX + 1];
    apr_thread_t *th[4];
    apr_status_t rv;
    int i, j;

    for (i = 0; i < 4; i++) {
        assert_int_equal(apr_thread_create(&th[i], NULL, draw_id, ids[i], p),
                         APR_SUCCESS);
    }
    for (i = 0; i < 4; i++) {
        apr_thread_join(&rv, th[i]);
    }
    for (i = 0; i < 4; i++) {
        assert_true(is_lower_hex(ids[i], ARK_TRACE_ID_HEX));
        for (j = 0; j < i; j++) {
            assert_string_not_equal(ids[i], ids[j]);
        }
    }
}

static void begin_continues_or_starts(void **state)
{
    apr_pool_t *p = *state;
    ark_trace_t t;
    static const char *const invalid[] = {
        NULL, "", "garbage", "00-" TRACE "-0000000000000000-01",
        "00-" TRACE "-" PARENT "-01-x",
    };
    size_t i;

    ark_trace_begin(&t, VALID, "rojo=1", p);
    assert_true(t.continued);
    assert_string_equal(t.trace_id, TRACE);
    assert_string_equal(t.parent_id, PARENT);
    assert_true(is_lower_hex(t.span_id, ARK_SPAN_ID_HEX));
    assert_string_not_equal(t.span_id, PARENT);
    assert_string_equal(t.tracestate, "rojo=1");
    assert_int_equal(t.flags, 1);

    ark_trace_begin(&t, "00-" TRACE "-" PARENT "-00", NULL, p);
    assert_int_equal(t.flags, 0);           /* the caller's decision */
    assert_null(t.tracestate);

    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        ark_trace_begin(&t, invalid[i], "rojo=1", p);
        assert_false(t.continued);
        assert_true(is_lower_hex(t.trace_id, ARK_TRACE_ID_HEX));
        assert_false(all_zero(t.trace_id));
        assert_string_not_equal(t.trace_id, TRACE);
        assert_string_equal(t.parent_id, "");
        assert_true(is_lower_hex(t.span_id, ARK_SPAN_ID_HEX));
        assert_int_equal(t.flags, ARK_TRACE_FLAG_SAMPLED);
        assert_null(t.tracestate);           /* dropped with its parent */
    }
}

static void child_formatting(void **state)
{
    apr_pool_t *p = *state;
    ark_trace_t t, back;
    char child[ARK_SPAN_ID_HEX + 1];
    const char *h;

    ark_trace_begin(&t, VALID, NULL, p);
    ark_trace_new_id(child, ARK_SPAN_ID_HEX);
    h = ark_traceparent_format(&t, child, p);
    assert_int_equal(strlen(h), ARK_TRACEPARENT_LEN);
    assert_string_equal(h, apr_pstrcat(p, "00-" TRACE "-", child, "-01",
                                       NULL));
    assert_int_equal(ark_trace_parse(&back, h), APR_SUCCESS);
    assert_string_equal(back.trace_id, TRACE);
    assert_string_equal(back.parent_id, child);
    /* never the client's own parent id */
    assert_string_not_equal(back.parent_id, PARENT);
    t.flags = 0;
    h = ark_traceparent_format(&t, t.span_id, p);
    assert_string_equal(h + 53, "00");
}

/* ------------------------------------------------------------ spans */

static json_t *attr_of(json_t *span, const char *key)
{
    json_t *attrs = json_object_get(span, "attributes"), *a;
    size_t i;

    json_array_foreach(attrs, i, a) {
        if (!strcmp(json_string_value(json_object_get(a, "key")), key)) {
            return json_object_get(a, "value");
        }
    }
    return NULL;
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &e);

    if (!o) {
        fail_msg("not JSON (%s): %s", e.text, text);
    }
    return o;
}

static void span_json_shape(void **state)
{
    apr_pool_t *p = *state;
    ark_span_t s;
    char *text;
    json_t *o, *v;

    ark_span_init(&s, p);
    s.trace_id = TRACE;
    s.span_id = "1111111111111111";
    s.parent_id = PARENT;
    s.tracestate = "rojo=1";
    s.name = "POST /v1/chat/completions";
    s.kind = ARK_SPAN_SERVER;
    s.start = APR_INT64_C(1700000000123456);
    s.end = s.start + 2500;
    ark_span_attr_str(&s, "ark.model", "m");
    ark_span_attr_str(&s, "ark.none", NULL);          /* left out */
    ark_span_attr_int(&s, "http.response.status_code", 200);
    ark_span_attr_count(&s, "gen_ai.usage.input_tokens", -1);  /* out */
    ark_span_attr_count(&s, "gen_ai.usage.output_tokens", 7);
    ark_span_attr_bool(&s, "ark.stream", 1);
    ark_span_attr_double(&s, "ark.cache.similarity", 0.5);
    ark_span_attr_str(&s, "ark.path", "/v1/\xff");
    text = ark_span_json(&s);
    assert_non_null(text);
    o = load(text);
    free(text);
    assert_string_equal(json_string_value(json_object_get(o, "traceId")),
                        TRACE);
    assert_string_equal(json_string_value(json_object_get(o, "spanId")),
                        "1111111111111111");
    assert_string_equal(json_string_value(json_object_get(o,
                                                          "parentSpanId")),
                        PARENT);
    assert_string_equal(json_string_value(json_object_get(o, "traceState")),
                        "rojo=1");
    assert_int_equal(json_integer_value(json_object_get(o, "kind")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            o, "startTimeUnixNano")),
                        "1700000000123456000");
    assert_string_equal(json_string_value(json_object_get(
                            o, "endTimeUnixNano")),
                        "1700000000125956000");
    assert_null(json_object_get(o, "status"));        /* unset: OK */
    assert_int_equal(json_array_size(json_object_get(o, "attributes")), 6);
    assert_null(attr_of(o, "ark.none"));
    assert_null(attr_of(o, "gen_ai.usage.input_tokens"));
    v = attr_of(o, "ark.model");
    assert_string_equal(json_string_value(json_object_get(v, "stringValue")),
                        "m");
    v = attr_of(o, "http.response.status_code");
    assert_string_equal(json_string_value(json_object_get(v, "intValue")),
                        "200");
    v = attr_of(o, "gen_ai.usage.output_tokens");
    assert_string_equal(json_string_value(json_object_get(v, "intValue")),
                        "7");
    v = attr_of(o, "ark.stream");
    assert_true(json_is_true(json_object_get(v, "boolValue")));
    v = attr_of(o, "ark.cache.similarity");
    assert_true(json_real_value(json_object_get(v, "doubleValue")) == 0.5);
    v = attr_of(o, "ark.path");
    assert_string_equal(json_string_value(json_object_get(v, "stringValue")),
                        "/v1/?");
    json_decref(o);

    /* a root CLIENT span that failed */
    ark_span_init(&s, p);
    s.trace_id = TRACE;
    s.span_id = "2222222222222222";
    s.parent_id = "";
    s.kind = ARK_SPAN_CLIENT;
    s.start = 10;
    s.end = 5;                              /* clock went back: clamped */
    s.error = 1;
    s.status_message = "HTTP 500";
    text = ark_span_json(&s);
    o = load(text);
    free(text);
    assert_null(json_object_get(o, "parentSpanId"));
    assert_null(json_object_get(o, "traceState"));
    assert_int_equal(json_integer_value(json_object_get(o, "kind")), 3);
    assert_string_equal(json_string_value(json_object_get(
                            o, "endTimeUnixNano")), "10000");
    v = json_object_get(o, "status");
    assert_int_equal(json_integer_value(json_object_get(v, "code")), 2);
    assert_string_equal(json_string_value(json_object_get(v, "message")),
                        "HTTP 500");
    assert_int_equal(json_array_size(json_object_get(o, "attributes")), 0);
    json_decref(o);
}

static void envelope_shape(void **state)
{
    apr_pool_t *p = *state;
    const char *spans[3];
    ark_span_t s;
    char *texts[3], *body;
    apr_size_t len = 0;
    json_t *o, *rs, *ss, *attrs, *a;
    size_t i;
    int service = 0, host = 0;

    for (i = 0; i < 3; i++) {
        ark_span_init(&s, p);
        s.trace_id = TRACE;
        s.span_id = apr_psprintf(p, "%016" APR_UINT64_T_HEX_FMT,
                                (apr_uint64_t)(i + 1));
        s.kind = i ? ARK_SPAN_CLIENT : ARK_SPAN_SERVER;
        texts[i] = ark_span_json(&s);
        spans[i] = texts[i];
    }
    body = ark_otlp_envelope(spans, 3, "ark", "1.2.3", "node-1", &len);
    assert_non_null(body);
    assert_int_equal(len, strlen(body));
    o = load(body);
    free(body);
    rs = json_object_get(o, "resourceSpans");
    assert_int_equal(json_array_size(rs), 1);
    attrs = json_object_get(json_object_get(json_array_get(rs, 0),
                                            "resource"), "attributes");
    json_array_foreach(attrs, i, a) {
        const char *k = json_string_value(json_object_get(a, "key"));
        const char *v = json_string_value(json_object_get(
            json_object_get(a, "value"), "stringValue"));

        if (!strcmp(k, "service.name")) {
            assert_string_equal(v, "ark");
            service = 1;
        }
        if (!strcmp(k, "host.name")) {
            assert_string_equal(v, "node-1");
            host = 1;
        }
    }
    assert_true(service && host);
    ss = json_object_get(json_array_get(rs, 0), "scopeSpans");
    assert_int_equal(json_array_size(ss), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                            json_array_get(ss, 0), "scope"), "name")),
                        "mod_ark");
    a = json_object_get(json_array_get(ss, 0), "spans");
    assert_int_equal(json_array_size(a), 3);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(a, 2), "spanId")),
                        "0000000000000003");
    json_decref(o);

    body = ark_otlp_envelope(NULL, 0, "ark", NULL, NULL, NULL);
    o = load(body);
    free(body);
    a = json_object_get(json_array_get(json_object_get(json_array_get(
        json_object_get(o, "resourceSpans"), 0), "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(a), 0);
    json_decref(o);
    for (i = 0; i < 3; i++) {
        free(texts[i]);
    }
}

/* --------------------------------------------------------- exporter */

static void export_conf_parse(void **state)
{
    apr_pool_t *p = *state;
    ark_trace_export_conf_t c;
    char *ok1[] = {"http://127.0.0.1:4318/v1/traces"};
    char *ok2[] = {"https://otel.example:4318/v1/traces", "timeout=500ms",
                   "batch=64"};
    char *off[] = {"off"};
    char *bad[][2] = {
        {"ftp://x/v1/traces", NULL},
        {"http://", NULL},
        {"http://user:pw@host/v1/traces", NULL},
        {"127.0.0.1:4318", NULL},
        {"http://h/v1/traces", "timeout=0"},
        {"http://h/v1/traces", "timeout=2m"},
        {"http://h/v1/traces", "batch=0"},
        {"http://h/v1/traces", "batch=100000"},
        {"http://h/v1/traces", "batch=1x"},
        {"http://h/v1/traces", "colour=blue"},
    };
    size_t i;

    ark_trace_export_conf_init(&c);
    assert_null(c.url);
    assert_null(ark_trace_export_conf_parse(&c, 1, ok1, p));
    assert_string_equal(c.url, ok1[0]);
    assert_int_equal(c.batch, ARK_TRACE_EXPORT_BATCH);
    assert_true(c.timeout == ARK_TRACE_EXPORT_TIMEOUT);
    assert_true(c.queue >= c.batch);
    assert_null(ark_trace_export_conf_parse(&c, 3, ok2, p));
    assert_int_equal(c.batch, 64);
    assert_true(c.timeout == apr_time_from_msec(500));
    assert_int_equal(c.queue, ARK_TRACE_EXPORT_QUEUE_MIN);
    assert_null(ark_trace_export_conf_parse(&c, 1, off, p));
    assert_null(c.url);
    assert_non_null(ark_trace_export_conf_parse(&c, 0, off, p));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = ark_trace_export_conf_parse(
            &c, bad[i][1] ? 2 : 1, bad[i], p);

        if (!err) {
            fail_msg("accepted: %s %s", bad[i][0],
                     bad[i][1] ? bad[i][1] : "");
        }
        assert_non_null(strstr(err, "ArkTraceExport"));
    }
}

/* A one-request collector on a loopback socket: answers 200 (or the
 * status given) and keeps the body it received. */
typedef struct collector_t {
    apr_socket_t *listen;
    apr_port_t port;
    int status;
    char body[65536];
    apr_size_t body_len;
    _Atomic int done;
} collector_t;

static void *APR_THREAD_FUNC collector_main(apr_thread_t *th, void *data)
{
    collector_t *c = data;
    apr_socket_t *s;
    apr_pool_t *p;
    char buf[65536 + 4096], reply[128];
    apr_size_t got = 0, n;
    char *hdr_end = NULL;
    long clen = -1;

    apr_pool_create(&p, NULL);
    if (apr_socket_accept(&s, c->listen, p) == APR_SUCCESS) {
        apr_socket_timeout_set(s, apr_time_from_sec(5));
        for (;;) {
            n = sizeof(buf) - 1 - got;
            if (n == 0 || apr_socket_recv(s, buf + got, &n) != APR_SUCCESS
                || n == 0) {
                break;
            }
            got += n;
            buf[got] = '\0';
            if (!hdr_end && (hdr_end = strstr(buf, "\r\n\r\n"))) {
                char *cl = strstr(buf, "Content-Length:");

                clen = cl ? atol(cl + 15) : 0;
            }
            if (hdr_end && (long)(got - (apr_size_t)(hdr_end + 4 - buf))
                               >= clen) {
                break;
            }
        }
        if (hdr_end) {
            c->body_len = got - (apr_size_t)(hdr_end + 4 - buf);
            memcpy(c->body, hdr_end + 4, c->body_len);
            c->body[c->body_len] = '\0';
        }
        n = (apr_size_t)apr_snprintf(reply, sizeof(reply),
                                     "HTTP/1.1 %d X\r\nContent-Length: 0\r\n"
                                     "Connection: close\r\n\r\n", c->status);
        apr_socket_send(s, reply, &n);
        apr_socket_close(s);
    }
    atomic_store(&c->done, 1);
    apr_pool_destroy(p);
    (void)th;                  /* no apr_thread_exit: see ark_trace_export.c */
    return NULL;
}

static void collector_start(collector_t *c, apr_thread_t **th, apr_pool_t *p)
{
    apr_sockaddr_t *sa;

    assert_int_equal(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0,
                                           p), APR_SUCCESS);
    assert_int_equal(apr_socket_create(&c->listen, APR_INET, SOCK_STREAM,
                                       APR_PROTO_TCP, p), APR_SUCCESS);
    assert_int_equal(apr_socket_bind(c->listen, sa), APR_SUCCESS);
    assert_int_equal(apr_socket_listen(c->listen, 4), APR_SUCCESS);
    assert_int_equal(apr_socket_addr_get(&sa, APR_LOCAL, c->listen),
                     APR_SUCCESS);
    c->port = sa->port;
    assert_int_equal(apr_thread_create(th, NULL, collector_main, c, p),
                     APR_SUCCESS);
}

static char *one_span(const char *span_id, apr_pool_t *p)
{
    ark_span_t s;

    ark_span_init(&s, p);
    s.trace_id = TRACE;
    s.span_id = span_id;
    s.kind = ARK_SPAN_SERVER;
    s.name = "test";
    return ark_span_json(&s);
}

/* Log callback (runs on the exporter's thread: no assertions here). */
static _Atomic int logged, logged_other;

static void count_log(void *baton, const char *msg)
{
    (void)baton;
    if (strstr(msg, "trace export to http://127.0.0.1:")) {
        atomic_fetch_add(&logged, 1);
    }
    else {
        atomic_fetch_add(&logged_other, 1);
    }
}

static void exporter_posts_a_batch(void **state)
{
    apr_pool_t *p = *state, *ep;
    collector_t *c = apr_pcalloc(p, sizeof(*c));
    apr_thread_t *th;
    apr_status_t trv;
    ark_trace_export_conf_t conf;
    ark_trace_exporter_t *e;
    ark_trace_counters_t n;
    json_t *o, *spans;
    int i;

    c->status = 200;
    collector_start(c, &th, p);
    ark_trace_export_conf_init(&conf);
    conf.url = apr_psprintf(p, "http://127.0.0.1:%d/v1/traces", c->port);
    conf.batch = 2;
    conf.queue = ARK_TRACE_EXPORT_QUEUE_MIN;
    conf.interval = apr_time_from_sec(30);   /* only a full batch sends */
    apr_pool_create(&ep, p);
    assert_int_equal(ark_trace_exporter_create(&e, &conf, "ark", "t",
                                               "host-a", count_log, NULL,
                                               ep), APR_SUCCESS);
    assert_int_equal(ark_trace_exporter_submit(e, one_span(
                         "00000000000000a1", p)), APR_SUCCESS);
    assert_int_equal(ark_trace_exporter_submit(e, one_span(
                         "00000000000000a2", p)), APR_SUCCESS);
    for (i = 0; i < 500 && !atomic_load(&c->done); i++) {
        apr_sleep(apr_time_from_msec(10));
    }
    apr_thread_join(&trv, th);
    for (i = 0; i < 500; i++) {
        ark_trace_exporter_counters(e, &n);
        if (n.exported == 2) {
            break;
        }
        apr_sleep(apr_time_from_msec(10));
    }
    assert_int_equal(n.exported, 2);
    assert_int_equal(n.failed, 0);
    assert_int_equal(n.dropped, 0);
    o = load(c->body);
    spans = json_object_get(json_array_get(json_object_get(json_array_get(
        json_object_get(o, "resourceSpans"), 0), "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(spans), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(spans, 1), "spanId")),
                        "00000000000000a2");
    json_decref(o);
    apr_pool_destroy(ep);              /* stops and joins the thread */
}

static void exporter_counts_failures(void **state)
{
    apr_pool_t *p = *state, *ep;
    collector_t *c = apr_pcalloc(p, sizeof(*c));
    apr_thread_t *th;
    apr_status_t trv;
    ark_trace_export_conf_t conf;
    ark_trace_exporter_t *e;
    ark_trace_counters_t n;
    int i;

    c->status = 503;                    /* a collector that refuses */
    collector_start(c, &th, p);
    ark_trace_export_conf_init(&conf);
    conf.url = apr_psprintf(p, "http://127.0.0.1:%d/v1/traces", c->port);
    conf.batch = 1;
    conf.queue = ARK_TRACE_EXPORT_QUEUE_MIN;
    atomic_store(&logged, 0);
    atomic_store(&logged_other, 0);
    apr_pool_create(&ep, p);
    assert_int_equal(ark_trace_exporter_create(&e, &conf, "ark", NULL, NULL,
                                               count_log, NULL, ep),
                     APR_SUCCESS);
    assert_int_equal(ark_trace_exporter_submit(e, one_span(
                         "00000000000000b1", p)), APR_SUCCESS);
    for (i = 0; i < 500; i++) {
        ark_trace_exporter_counters(e, &n);
        if (n.failed == 1) {
            break;
        }
        apr_sleep(apr_time_from_msec(10));
    }
    assert_int_equal(n.failed, 1);
    assert_int_equal(n.exported, 0);
    apr_thread_join(&trv, th);
    apr_socket_close(c->listen);
    /* the collector is gone now: the connection is refused; still one
     * log line a minute */
    assert_int_equal(ark_trace_exporter_submit(e, one_span(
                         "00000000000000b2", p)), APR_SUCCESS);
    for (i = 0; i < 500; i++) {
        ark_trace_exporter_counters(e, &n);
        if (n.failed == 2) {
            break;
        }
        apr_sleep(apr_time_from_msec(10));
    }
    assert_int_equal(n.failed, 2);
    assert_int_equal(atomic_load(&logged), 1);
    assert_int_equal(atomic_load(&logged_other), 0);
    /* NULL (an encoding that failed) counts as dropped */
    assert_int_equal(ark_trace_exporter_submit(e, NULL), APR_ENOSPC);
    ark_trace_exporter_counters(e, &n);
    assert_int_equal(n.dropped, 1);
    apr_pool_destroy(ep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(parse_valid),
        ARK_TEST(parse_future_versions),
        ARK_TEST(parse_invalid_each_rule),
        ARK_TEST(parse_bounded_length),
        ARK_TEST(tracestate_passed_or_refused),
        ARK_TEST(tracestate_too_many_members),
        ARK_TEST(tracestate_shortened_by_members),
        ARK_TEST(ids_generated),
        ARK_TEST(ids_differ_after_fork),
        ARK_TEST(ids_differ_between_threads),
        ARK_TEST(begin_continues_or_starts),
        ARK_TEST(child_formatting),
        ARK_TEST(span_json_shape),
        ARK_TEST(envelope_shape),
        ARK_TEST(export_conf_parse),
        ARK_TEST(exporter_posts_a_batch),
        ARK_TEST(exporter_counts_failures),
    };

    return ARK_TEST_RUN("trace", tests);
}
