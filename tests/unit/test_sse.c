/* Unit tests for the incremental SSE parser (ark_sse.c).
 *
 * The parser must be a pure function of the bytes: the same stream cut
 * at any place, fed in any number of pieces, yields the same events in
 * the same order. Each test feeds a stream and compares the recorded
 * events (name, data, length) with the expected list; the split tests
 * repeat that for every single cut, byte by byte, and for many random
 * cuts from a fixed seed.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "ark_sse.h"
#include "ark_testutil.h"

/* One event as the callback saw it, copied out of the parser. */
typedef struct {
    const char *event;
    const char *data;
    apr_size_t data_len;
    const char *orig;             /* ev->data itself, when keep_ptr */
} rec_t;

typedef struct {
    apr_pool_t *pool;
    apr_array_header_t *events;   /* rec_t */
    int calls;
    int wires;                    /* events handed over with their bytes */
    int keep_ptr;                 /* record ev->data's address */
    int fail_at;                  /* 1-based call that fails, 0 = never */
    apr_status_t fail_rv;
} collector_t;

static apr_status_t collect(void *ctx, const ark_sse_event_t *ev)
{
    collector_t *c = ctx;
    rec_t *r;

    c->calls++;
    /* the name is NUL-terminated; the data is data_len bytes, and the
     * event's bytes when they are given (wire) are "data: " data LF LF */
    assert_non_null(ev->event);
    assert_non_null(ev->data);
    if (ev->wire) {
        assert_memory_equal(ev->wire, "data: ", 6);
        assert_ptr_equal(ev->wire + 6, ev->data);
        assert_memory_equal(ev->wire + 6 + ev->data_len, "\n\n", 2);
        c->wires++;
    }
    if (c->fail_at && c->calls == c->fail_at) {
        return c->fail_rv;
    }
    r = apr_array_push(c->events);
    r->event = apr_pstrdup(c->pool, ev->event);
    r->data = apr_pstrmemdup(c->pool, ev->data, ev->data_len);
    r->data_len = ev->data_len;
    r->orig = c->keep_ptr ? ev->data : NULL;
    return APR_SUCCESS;
}

static collector_t *collector_make(apr_pool_t *p)
{
    collector_t *c = apr_pcalloc(p, sizeof(*c));

    c->pool = p;
    c->events = apr_array_make(p, 8, sizeof(rec_t));
    return c;
}

static void check_events(const collector_t *c, const rec_t *want,
                         int n_want)
{
    int i;

    assert_int_equal(c->events->nelts, n_want);
    for (i = 0; i < n_want; i++) {
        const rec_t *got = &APR_ARRAY_IDX(c->events, i, rec_t);

        assert_string_equal(got->event, want[i].event);
        assert_int_equal(got->data_len, want[i].data_len);
        assert_memory_equal(got->data, want[i].data, want[i].data_len);
    }
}

#define REC(name, data) { name, data, sizeof(data) - 1, NULL }
#define NREC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Feeds s in pieces cut at the offsets in cuts (ascending, inside s).
 * Returns the first non-success status, or APR_SUCCESS. */
static apr_status_t feed_cut(ark_sse_parser_t *sp, const char *s,
                             apr_size_t len, const apr_size_t *cuts,
                             int n_cuts, collector_t *c)
{
    ark_test_split_t split = { .mode = ARK_TEST_SPLIT_CUTS, .cuts = cuts,
                               .n_cuts = n_cuts };

    return ark_test_sse_feed(sp, s, len, &split, collect, c);
}

static apr_status_t feed_bytes(ark_sse_parser_t *sp, const char *s,
                               apr_size_t len, collector_t *c)
{
    static const ark_test_split_t bytes = { .mode = ARK_TEST_SPLIT_BYTES };

    return ark_test_sse_feed(sp, s, len, &bytes, collect, c);
}

/* Sorted, distinct random cut offsets in (0, len). Returns the count. */
static int random_cuts(apr_size_t *cuts, int max_cuts, apr_size_t len,
                       apr_uint32_t *state)
{
    int n = 0, i, j;

    if (len < 2) {
        return 0;
    }
    while (n < max_cuts) {
        apr_size_t c = 1 + ark_test_rand(state) % (len - 1);

        for (i = 0; i < n && cuts[i] != c; i++) {
        }
        if (i < n) {
            continue;
        }
        for (j = n; j > 0 && cuts[j - 1] > c; j--) {
            cuts[j] = cuts[j - 1];
        }
        cuts[j] = c;
        n++;
        if ((apr_size_t)n == len - 1) {
            break;
        }
    }
    return n;
}

/* Runs the stream through one fresh parser per split strategy and checks
 * that each gives want: whole, byte by byte, every single cut, every
 * pair of cuts around line endings, and 500 random multi-cuts. */
static void check_all_splits(const char *s, apr_size_t len,
                             const rec_t *want, int n_want,
                             apr_size_t max_event)
{
    apr_pool_t *p;
    collector_t *c;
    ark_sse_parser_t *sp;
    apr_size_t cut, cuts[64];
    apr_uint32_t seed = 20240513u;
    int round;

    apr_pool_create(&p, ark_test_root_pool());

    sp = ark_sse_parser_make(p, max_event);
    c = collector_make(p);
    assert_int_equal(ark_sse_feed(sp, s, len, collect, c), APR_SUCCESS);
    check_events(c, want, n_want);
    assert_false(ark_sse_pending(sp));

    sp = ark_sse_parser_make(p, max_event);
    c = collector_make(p);
    assert_int_equal(feed_bytes(sp, s, len, c), APR_SUCCESS);
    check_events(c, want, n_want);
    assert_false(ark_sse_pending(sp));

    for (cut = 0; cut <= len; cut++) {
        sp = ark_sse_parser_make(p, max_event);
        c = collector_make(p);
        assert_int_equal(feed_cut(sp, s, len, &cut, 1, c), APR_SUCCESS);
        check_events(c, want, n_want);
        assert_false(ark_sse_pending(sp));
    }

    for (round = 0; round < 500; round++) {
        int n = random_cuts(cuts, 1 + (int)(ark_test_rand(&seed) % 63), len,
                            &seed);

        sp = ark_sse_parser_make(p, max_event);
        c = collector_make(p);
        assert_int_equal(feed_cut(sp, s, len, cuts, n, c), APR_SUCCESS);
        check_events(c, want, n_want);
        assert_false(ark_sse_pending(sp));
    }
    apr_pool_destroy(p);
}

/* ------------------------------------------------------------ streams */

/* A realistic OpenAI stream with the SSE corner cases mixed in: every
 * line ending, comments, a named event, "data:" with and without the
 * space, multi-line data, fields the parser ignores, and events that
 * carry no data (not dispatched). */
static const char mixed_stream[] =
    ": OPENROUTER PROCESSING\r\n"
    "retry: 3000\n"
    "\n"
    "data: {\"id\":\"chatcmpl-9x1\",\"object\":\"chat.completion.chunk\","
    "\"created\":1718000000,\"model\":\"gpt-4o-mini-2024-07-18\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n"
    "\n"
    "event: ping\r\n"
    "data:no-space\r\n"
    "\r\n"
    "data: line one\r"
    "data:  two leading spaces\r"
    "data\r"
    "\r"
    "id: 7\n"
    "\n"
    "event: lonely\n"
    "\n"
    ": keep-alive\n"
    "data: caf\xc3\xa9 \xe2\x9c\x93 a: b\n"
    "\n"
    "data: [DONE]\r\n"
    "\r\n";

static const rec_t mixed_events[] = {
    REC("", "{\"id\":\"chatcmpl-9x1\",\"object\":\"chat.completion.chunk\","
            "\"created\":1718000000,\"model\":\"gpt-4o-mini-2024-07-18\","
            "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
            "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}"),
    REC("ping", "no-space"),
    REC("", "line one\n two leading spaces\n"),
    REC("", "caf\xc3\xa9 \xe2\x9c\x93 a: b"),
    REC("", "[DONE]"),
};

static void sse_mixed_whole_and_all_splits(void **state)
{
    (void)state;
    check_all_splits(mixed_stream, sizeof(mixed_stream) - 1, mixed_events,
                     NREC(mixed_events), 0);
}

/* The same events with each of the three line endings throughout. */
static void sse_line_endings(void **state)
{
    static const char *const eol[] = { "\r\n", "\n", "\r" };
    static const rec_t want[] = {
        REC("", "first"),
        REC("delta", "a\nb"),
        REC("", "[DONE]"),
    };
    apr_pool_t *p = *state;
    int i;

    for (i = 0; i < 3; i++) {
        const char *e = eol[i];
        const char *s = apr_pstrcat(p, "data: first", e, e,
                                    ": comment", e,
                                    "event: delta", e, "data: a", e,
                                    "data: b", e, e,
                                    "data: [DONE]", e, e, NULL);

        check_all_splits(s, strlen(s), want, NREC(want), 0);
    }
}

/* A CR at the end of one read and its LF at the start of the next are one
 * line ending, not two: the LF must not dispatch the event early. */
static void sse_crlf_split_between_feeds(void **state)
{
    apr_pool_t *p = *state;
    ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
    collector_t *c = collector_make(p);
    static const rec_t want[] = { REC("", "a\nb"), REC("", "c") };

    assert_int_equal(ark_sse_feed(sp, "data: a\r", 8, collect, c),
                     APR_SUCCESS);
    assert_int_equal(ark_sse_feed(sp, "\ndata: b\r", 9, collect, c),
                     APR_SUCCESS);
    assert_int_equal(c->events->nelts, 0);
    assert_int_equal(ark_sse_feed(sp, "\n\r", 2, collect, c), APR_SUCCESS);
    check_events(c, want, 1);
    /* the blank line's LF arrives alone: no second dispatch */
    assert_int_equal(ark_sse_feed(sp, "\n", 1, collect, c), APR_SUCCESS);
    check_events(c, want, 1);
    assert_int_equal(ark_sse_feed(sp, "data: c\r", 8, collect, c),
                     APR_SUCCESS);
    assert_int_equal(ark_sse_feed(sp, "\r", 1, collect, c), APR_SUCCESS);
    check_events(c, want, 2);
    assert_false(ark_sse_pending(sp));
}

static void sse_data_space_rules(void **state)
{
    /* only one leading space is removed; a missing colon means an empty
     * value; the value may contain colons */
    static const char s[] =
        "data:x\n\n"
        "data: x\n\n"
        "data:  x\n\n"
        "data\n\n"
        "data:\n\n"
        "data: a:b: c\n\n"
        "data: \n\n";
    static const rec_t want[] = {
        REC("", "x"), REC("", "x"), REC("", " x"), REC("", ""),
        REC("", ""), REC("", "a:b: c"), REC("", ""),
    };

    (void)state;
    check_all_splits(s, sizeof(s) - 1, want, NREC(want), 0);
}

static void sse_event_names(void **state)
{
    /* the last event: line wins; the name belongs to one event only,
     * also when that event had no data; "event" without a value is "" */
    static const char s[] =
        "event: first\nevent: second\ndata: 1\n\n"
        "data: 2\n\n"
        "event: dropped\n\n"
        "data: 3\n\n"
        "event:response.output_text.delta\ndata: 4\n\n"
        "event\ndata: 5\n\n";
    static const rec_t want[] = {
        REC("second", "1"), REC("", "2"), REC("", "3"),
        REC("response.output_text.delta", "4"), REC("", "5"),
    };

    (void)state;
    check_all_splits(s, sizeof(s) - 1, want, NREC(want), 0);
}

static void sse_comments_and_unknown_fields(void **state)
{
    /* comments (also between data lines) and other fields change
     * nothing; field names are case-sensitive */
    static const char s[] =
        ":\n"
        ": ping - 2024-06-10 12:00:00.000000+00:00\n"
        "data: a\n"
        ": inside\n"
        "data: b\n"
        "id: 42\n"
        "retry: 10\n"
        "Data: not data\n"
        "DATA: nor this\n"
        "foo: bar\n"
        "\n"
        ":data: also a comment\n\n";
    static const rec_t want[] = { REC("", "a\nb") };

    (void)state;
    check_all_splits(s, sizeof(s) - 1, want, NREC(want), 0);
}

static void sse_no_data_not_dispatched(void **state)
{
    apr_pool_t *p = *state;
    ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
    collector_t *c = collector_make(p);
    static const char s[] =
        "\n\n\r\n\r\r"
        "event: x\n\n"
        "id: 1\n\n"
        ": only a comment\n\n";

    assert_int_equal(ark_sse_feed(sp, s, sizeof(s) - 1, collect, c),
                     APR_SUCCESS);
    assert_int_equal(c->calls, 0);
    assert_false(ark_sse_pending(sp));
}

static void sse_empty_feed(void **state)
{
    apr_pool_t *p = *state;
    ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
    collector_t *c = collector_make(p);

    assert_false(ark_sse_pending(sp));
    assert_int_equal(ark_sse_feed(sp, "", 0, collect, c), APR_SUCCESS);
    assert_int_equal(ark_sse_feed(sp, "data: x", 7, collect, c),
                     APR_SUCCESS);
    assert_int_equal(ark_sse_feed(sp, "", 0, collect, c), APR_SUCCESS);
    assert_int_equal(ark_sse_feed(sp, "\n\n", 2, collect, c), APR_SUCCESS);
    assert_int_equal(c->calls, 1);
    assert_string_equal(APR_ARRAY_IDX(c->events, 0, rec_t).data, "x");
}

/* ---------------------------------------------------------- pending */

static void sse_pending_after_truncation(void **state)
{
    apr_pool_t *p = *state;
    ark_sse_parser_t *sp;
    collector_t *c = collector_make(p);

    /* stream cut in the middle of a line */
    sp = ark_sse_parser_make(p, 0);
    assert_int_equal(ark_sse_feed(sp, "data: {\"choices\"", 16, collect, c),
                     APR_SUCCESS);
    assert_true(ark_sse_pending(sp));

    /* complete line, but the blank line never came */
    sp = ark_sse_parser_make(p, 0);
    assert_int_equal(ark_sse_feed(sp, "data: x\n", 8, collect, c),
                     APR_SUCCESS);
    assert_true(ark_sse_pending(sp));

    /* a named event whose data never came */
    sp = ark_sse_parser_make(p, 0);
    assert_int_equal(ark_sse_feed(sp, "event: ping\n", 12, collect, c),
                     APR_SUCCESS);
    assert_true(ark_sse_pending(sp));

    /* complete events, then a truncated one */
    sp = ark_sse_parser_make(p, 0);
    assert_int_equal(ark_sse_feed(sp, "data: 1\n\ndata: 2\n\nda", 20,
                                  collect, c),
                     APR_SUCCESS);
    assert_true(ark_sse_pending(sp));
    assert_int_equal(c->calls, 2);
    assert_int_equal(ark_sse_feed(sp, "ta: 3\n\n", 7, collect, c),
                     APR_SUCCESS);
    assert_false(ark_sse_pending(sp));
    assert_int_equal(c->calls, 3);
    assert_string_equal(APR_ARRAY_IDX(c->events, 2, rec_t).data, "3");

    /* a finished stream, ending in a CR, has nothing pending */
    sp = ark_sse_parser_make(p, 0);
    assert_int_equal(ark_sse_feed(sp, "data: x\r\r", 9, collect, c),
                     APR_SUCCESS);
    assert_false(ark_sse_pending(sp));

    /* comments alone are not an event */
    sp = ark_sse_parser_make(p, 0);
    assert_int_equal(ark_sse_feed(sp, ": keep-alive\n\n", 14, collect, c),
                     APR_SUCCESS);
    assert_false(ark_sse_pending(sp));
}

/* ------------------------------------------------------------ limits */

/* Feeds s whole, byte by byte, at every single cut and in random cuts;
 * each time the events before the oversized one are delivered, then
 * APR_ENOSPC, which stays: a later valid event is refused too. */
static void check_enospc_all_splits(const char *s, apr_size_t len,
                                    apr_size_t max_event, const rec_t *want,
                                    int n_want)
{
    apr_pool_t *p;
    ark_sse_parser_t *sp;
    collector_t *c;
    apr_size_t cut, cuts[32];
    apr_uint32_t seed = 7u;
    int mode, round;

    apr_pool_create(&p, ark_test_root_pool());
    for (mode = 0; mode < 3; mode++) {
        sp = ark_sse_parser_make(p, max_event);
        c = collector_make(p);
        if (mode == 0) {
            assert_int_equal(ark_sse_feed(sp, s, len, collect, c),
                             APR_ENOSPC);
        }
        else if (mode == 1) {
            assert_int_equal(feed_bytes(sp, s, len, c), APR_ENOSPC);
        }
        else {
            for (round = 0; round < 200; round++) {
                int n = random_cuts(cuts, 1 + (int)(ark_test_rand(&seed) % 31),
                                    len, &seed);

                sp = ark_sse_parser_make(p, max_event);
                c = collector_make(p);
                assert_int_equal(feed_cut(sp, s, len, cuts, n, c),
                                 APR_ENOSPC);
                check_events(c, want, n_want);
            }
        }
        check_events(c, want, n_want);
        /* sticky */
        assert_int_equal(ark_sse_feed(sp, "data: ok\n\n", 10, collect, c),
                         APR_ENOSPC);
        assert_int_equal(ark_sse_feed(sp, "", 0, collect, c), APR_ENOSPC);
        check_events(c, want, n_want);
    }
    for (cut = 1; cut < len; cut++) {
        sp = ark_sse_parser_make(p, max_event);
        c = collector_make(p);
        assert_int_equal(feed_cut(sp, s, len, &cut, 1, c), APR_ENOSPC);
        check_events(c, want, n_want);
    }
    apr_pool_destroy(p);
}

static void sse_max_event_single_line(void **state)
{
    apr_pool_t *p = *state;
    static const rec_t want[] = { REC("", "small") };
    char big[201];
    const char *s;

    memset(big, 'x', 200);
    big[200] = '\0';
    s = apr_pstrcat(p, "data: small\n\ndata: ", big, "\n\n", NULL);
    check_enospc_all_splits(s, strlen(s), 64, want, NREC(want));

    /* an over-long line of any field, even one the parser ignores */
    s = apr_pstrcat(p, "data: small\n\nid: ", big, "\ndata: y\n\n", NULL);
    check_enospc_all_splits(s, strlen(s), 64, want, NREC(want));
}

static void sse_max_event_many_lines(void **state)
{
    apr_pool_t *p = *state;
    static const rec_t want[] = { REC("", "small") };
    const char *line = "data: 0123456789012345678901234567890123456789\n";
    const char *s = "data: small\n\n";
    int i;

    /* 3 data lines of 40 bytes: each line fits in 64, the event not */
    for (i = 0; i < 3; i++) {
        s = apr_pstrcat(p, s, line, NULL);
    }
    s = apr_pstrcat(p, s, "\n", NULL);
    check_enospc_all_splits(s, strlen(s), 64, want, NREC(want));
}

static void sse_max_event_within_limit(void **state)
{
    /* events just under the limit, many of them: the limit is per event,
     * not per stream */
    apr_pool_t *p = *state;
    const char *s = "";
    rec_t want[20];
    int i;

    for (i = 0; i < 20; i++) {
        s = apr_pstrcat(p, s, "data: 0123456789\ndata: 0123456789\n\n",
                        NULL);
        want[i].event = "";
        want[i].data = "0123456789\n0123456789";
        want[i].data_len = 21;
    }
    check_all_splits(s, strlen(s), want, 20, 64);
}

static void sse_max_event_default(void **state)
{
    /* max_event 0 means 1 MiB */
    apr_pool_t *p = *state;
    apr_size_t n = 512 * 1024;
    char *big = apr_palloc(p, 2 * 1024 * 1024 + 16);
    ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
    collector_t *c = collector_make(p);

    memcpy(big, "data: ", 6);
    memset(big + 6, 'a', n);
    memcpy(big + 6 + n, "\n\n", 2);
    assert_int_equal(ark_sse_feed(sp, big, n + 8, collect, c), APR_SUCCESS);
    assert_int_equal(c->calls, 1);
    assert_int_equal(APR_ARRAY_IDX(c->events, 0, rec_t).data_len, n);

    n = 2 * 1024 * 1024;
    memset(big + 6, 'b', n);
    memcpy(big + 6 + n, "\n\n", 2);
    assert_int_equal(ark_sse_feed(sp, big, n + 8, collect, c), APR_ENOSPC);
    assert_int_equal(c->calls, 1);
}

/* --------------------------------------------------- callback errors */

static void sse_callback_error_stops(void **state)
{
    apr_pool_t *p = *state;
    ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
    collector_t *c = collector_make(p);
    static const char s[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    static const rec_t want[] = { REC("", "1") };

    c->fail_at = 2;
    c->fail_rv = APR_ECONNABORTED;
    assert_int_equal(ark_sse_feed(sp, s, sizeof(s) - 1, collect, c),
                     APR_ECONNABORTED);
    /* event 3, in the same buffer, was not delivered */
    assert_int_equal(c->calls, 2);
    check_events(c, want, 1);
    /* the error is sticky; the callback is not called again */
    assert_int_equal(ark_sse_feed(sp, "data: 4\n\n", 9, collect, c),
                     APR_ECONNABORTED);
    assert_int_equal(c->calls, 2);
}

static void sse_callback_error_byte_by_byte(void **state)
{
    apr_pool_t *p = *state;
    ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
    collector_t *c = collector_make(p);
    static const char s[] = "data: 1\r\n\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n";

    c->fail_at = 1;
    c->fail_rv = APR_EINVAL;
    assert_int_equal(feed_bytes(sp, s, sizeof(s) - 1, c), APR_EINVAL);
    assert_int_equal(c->calls, 1);
    assert_int_equal(c->events->nelts, 0);
}

/* ------------------------------------------- events in the fed bytes */

/* A one-line event complete within the fed bytes is handed over where it
 * lies (data pointing into them), with its bytes (wire) when they are
 * exactly "data: " data LF LF; any other shape is not. */
static void sse_one_line_event_in_place(void **state)
{
    static const struct {
        const char *stream;
        int wire;              /* the event comes with its bytes */
        int in_place;          /* its data points into the stream */
        const char *data;
    } cases[] = {
        { "data: {\"a\":1}\n\n", 1, 1, "{\"a\":1}" },
        { "event: e\ndata: x\n\n", 1, 1, "x" },
        { ": ping\ndata: x\n\n", 1, 1, "x" },
        { "data:x\n\n", 0, 1, "x" },
        { "data:  x\n\n", 1, 1, " x" },
        { "data: x\r\n\r\n", 0, 1, "x" },
        { "data: x\n\r\n", 0, 1, "x" },
        { "data: x\r\r", 0, 1, "x" },
        { "data: x\nid: 1\n\n", 0, 1, "x" },
        { "data: x\ndata: y\n\n", 0, 0, "x\ny" },
        { "data: x\n: c\n\n", 0, 1, "x" },
        { "data\n\n", 0, 0, "" },
    };
    apr_pool_t *p = *state;
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cases[i].stream;
        apr_size_t len = strlen(s);
        ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
        collector_t *c = collector_make(p);
        const rec_t *got;

        c->keep_ptr = 1;
        assert_int_equal(ark_sse_feed(sp, s, len, collect, c), APR_SUCCESS);
        assert_int_equal(c->events->nelts, 1);
        got = &APR_ARRAY_IDX(c->events, 0, rec_t);
        assert_int_equal(got->data_len, strlen(cases[i].data));
        assert_memory_equal(got->data, cases[i].data, got->data_len);
        if (c->wires != cases[i].wire
            || (got->orig >= s && got->orig < s + len) != cases[i].in_place) {
            fail_msg("case %d: wire %d, in place %d", (int)i, c->wires,
                     got->orig >= s && got->orig < s + len);
        }
    }
}

/* The fed bytes are the caller's only during ark_sse_feed: fed from
 * buffers that are overwritten and freed after each call, in every
 * split, a stream still gives the events it gives whole (an event kept
 * in place when its read ended must have been copied). */
static void sse_fed_bytes_not_kept(void **state)
{
    static const char s[] =
        "data: {\"id\":1,\"choices\":[]}\n\n"
        "event: x\ndata: second\n\n"
        "data: a\ndata: b\n\n"
        "data: {\"last\":true}\r\n\r\n";
    static const rec_t want[] = {
        REC("", "{\"id\":1,\"choices\":[]}"),
        REC("x", "second"),
        REC("", "a\nb"),
        REC("", "{\"last\":true}"),
    };
    apr_size_t len = sizeof(s) - 1, a, b;
    apr_pool_t *p = *state;

    for (a = 0; a <= len; a++) {
        for (b = a; b <= len; b += 7) {
            apr_size_t cuts[4] = { 0, a, b, len }, k;
            ark_sse_parser_t *sp = ark_sse_parser_make(p, 0);
            collector_t *c = collector_make(p);

            for (k = 0; k < 3; k++) {
                apr_size_t n = cuts[k + 1] - cuts[k];
                char *piece = malloc(n + 1);

                assert_non_null(piece);
                memcpy(piece, s + cuts[k], n);
                assert_int_equal(ark_sse_feed(sp, piece, n, collect, c),
                                 APR_SUCCESS);
                memset(piece, 'X', n + 1);
                free(piece);
            }
            check_events(c, want, NREC(want));
            /* the two LF-framed one-line events come with their bytes
             * when not cut (fed whole: both), the CRLF one never */
            assert_true(c->wires <= 2);
            if (a == 0 && b == 0) {
                assert_int_equal(c->wires, 2);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(sse_mixed_whole_and_all_splits),
        ARK_TEST(sse_line_endings),
        ARK_TEST(sse_crlf_split_between_feeds),
        ARK_TEST(sse_data_space_rules),
        ARK_TEST(sse_event_names),
        ARK_TEST(sse_comments_and_unknown_fields),
        ARK_TEST(sse_no_data_not_dispatched),
        ARK_TEST(sse_empty_feed),
        ARK_TEST(sse_pending_after_truncation),
        ARK_TEST(sse_max_event_single_line),
        ARK_TEST(sse_max_event_many_lines),
        ARK_TEST(sse_max_event_within_limit),
        ARK_TEST(sse_max_event_default),
        ARK_TEST(sse_callback_error_stops),
        ARK_TEST(sse_callback_error_byte_by_byte),
        ARK_TEST(sse_one_line_event_in_place),
        ARK_TEST(sse_fed_bytes_not_kept),
    };

    return ARK_TEST_RUN("ark_sse", tests);
}
