/* Unit tests for the native HTTP/1.1 client (ark_http_native.c).
 *
 * The response parser must be a pure function of the bytes: each
 * response below is parsed whole, cut at every single byte boundary
 * into two pieces, fed byte by byte and in random pieces (fixed seed),
 * and every way must give the same outcome (status, content type, body,
 * reusability, leftover bytes, error class). Each piece is fed from a
 * fresh heap copy that is freed right after, so a body piece that
 * pointed into an old buffer would be caught by ASan.
 *
 * The client itself is tested against a scripted HTTP server on a
 * loopback socket in a thread: connection reuse, the one retry of a
 * kept-alive connection the server closed, no retry once a response byte
 * arrived, timeouts, refused connections, aborts by the receiver.
 */
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <apr_strings.h>

#include "ark_http_native.h"
#include "ark_testutil.h"

/* ============================================================ parser */

typedef struct {
    int heads;                   /* ARK_HRESP_HEAD events */
    int done;
    int error;
    int error_io;
    int status;
    const char *content_type;
    char *body;
    apr_size_t body_len;
    int keep_alive;
    ark_hresp_body_t kind;
    apr_interval_time_t retry_after;
    apr_size_t leftover;         /* bytes after the response */
} outcome_t;

#define T_NOW apr_time_from_sec(1700000000)   /* 2023-11-14 22:13:20 GMT */

/* Parses s cut at the offsets cuts[0..ncuts) (ascending), then reports
 * the end of the connection if eof. */
static void parse_cut(const char *s, apr_size_t len, const apr_size_t *cuts,
                      int ncuts, int eof, int head_request, outcome_t *o,
                      apr_pool_t *p)
{
    ark_hresp_t rp;
    apr_size_t from = 0;
    int k, stop = 0;

    memset(o, 0, sizeof(*o));
    o->body = apr_palloc(p, len + 1);
    ark_hresp_init(&rp, head_request, T_NOW, p);
    for (k = 0; k <= ncuts && !stop; k++) {
        apr_size_t to = k < ncuts ? cuts[k] : len;
        apr_size_t n = to - from, off = 0;
        char *copy = malloc(n ? n : 1);

        memcpy(copy, s + from, n);
        for (;;) {
            const char *piece;
            apr_size_t used, plen;
            ark_hresp_ev_t ev = ark_hresp_parse(&rp, copy + off, n - off,
                                                &used, &piece, &plen);

            assert_true(used <= n - off);
            off += used;
            if (ev == ARK_HRESP_MORE) {
                assert_int_equal(off, n);
                break;
            }
            if (ev == ARK_HRESP_HEAD) {
                o->heads++;
                continue;
            }
            if (ev == ARK_HRESP_BODY) {
                assert_true(piece >= copy && piece + plen <= copy + n);
                memcpy(o->body + o->body_len, piece, plen);
                o->body_len += plen;
                continue;
            }
            if (ev == ARK_HRESP_DONE) {
                o->done = 1;
                o->leftover = (n - off) + (len - to);
            }
            else {
                o->error = 1;
            }
            stop = 1;
            break;
        }
        free(copy);
        from = to;
    }
    if (!stop && eof) {
        ark_hresp_ev_t ev = ark_hresp_eof(&rp);

        o->done = ev == ARK_HRESP_DONE;
        o->error = ev == ARK_HRESP_ERROR;
    }
    if (o->error) {
        assert_non_null(rp.error);
        o->error_io = rp.error_io;
        /* sticky */
        {
            const char *piece;
            apr_size_t used, plen;

            assert_int_equal(ark_hresp_parse(&rp, "x", 1, &used, &piece,
                                             &plen), ARK_HRESP_ERROR);
        }
    }
    o->body[o->body_len] = '\0';
    o->status = rp.status;
    o->content_type = rp.content_type ? apr_pstrdup(p, rp.content_type)
                                      : NULL;
    o->keep_alive = rp.keep_alive;
    o->kind = rp.body;
    o->retry_after = rp.retry_after;
}

static void assert_same(const outcome_t *a, const outcome_t *b,
                        const char *how)
{
    if (a->done != b->done || a->error != b->error
        || a->error_io != b->error_io || a->body_len != b->body_len
        || memcmp(a->body, b->body, a->body_len) || a->leftover != b->leftover
        || (!a->error && (a->status != b->status
                          || a->keep_alive != b->keep_alive
                          || a->heads != b->heads))) {
        fail_msg("%s: outcome differs (done %d/%d error %d/%d body %d/%d "
                 "status %d/%d)", how, a->done, b->done, a->error, b->error,
                 (int)a->body_len, (int)b->body_len, a->status, b->status);
    }
    if (!a->error && (a->content_type == NULL) != (b->content_type == NULL)) {
        fail_msg("%s: content type differs", how);
    }
    if (!a->error && a->content_type
        && strcmp(a->content_type, b->content_type)) {
        fail_msg("%s: content type %s / %s", how, a->content_type,
                 b->content_type);
    }
}

/* Parses s whole, then checks every 2-piece cut, byte by byte and 200
 * random splits give the same outcome; *o is the whole parse. */
static void parse_all_ways(const char *s, int eof, int head_request,
                           outcome_t *o, apr_pool_t *p)
{
    apr_size_t len = strlen(s), i;
    apr_size_t *cuts = apr_palloc(p, sizeof(apr_size_t) * (len + 1));
    outcome_t other;
    unsigned int seed = 12345;
    int r;

    parse_cut(s, len, NULL, 0, eof, head_request, o, p);
    for (i = 0; i <= len; i++) {
        cuts[0] = i;
        parse_cut(s, len, cuts, 1, eof, head_request, &other, p);
        assert_same(o, &other, apr_psprintf(p, "cut at %d", (int)i));
    }
    for (i = 0; i < len; i++) {
        cuts[i] = i + 1;
    }
    parse_cut(s, len, cuts, len ? (int)len - 1 : 0, eof, head_request,
              &other, p);
    assert_same(o, &other, "byte by byte");
    for (r = 0; r < 200; r++) {
        int n = 0;
        apr_size_t at = 0;

        for (;;) {
            seed = seed * 1103515245u + 12345u;
            at += 1 + (seed >> 16) % 17;
            if (at >= len) {
                break;
            }
            cuts[n++] = at;
        }
        parse_cut(s, len, cuts, n, eof, head_request, &other, p);
        assert_same(o, &other, apr_psprintf(p, "random split %d", r));
    }
}

static void parser_content_length(void **state)
{
    apr_pool_t *p = *state;
    outcome_t o;

    parse_all_ways("HTTP/1.1 200 OK\r\n"
                   "Content-Type: application/json\r\n"
                   "content-length:  13 \r\n"
                   "X-Other: a:b\r\n"
                   "\r\n"
                   "{\"a\":\"hello\"}", 0, 0, &o, p);
    assert_true(o.done);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.content_type, "application/json");
    assert_string_equal(o.body, "{\"a\":\"hello\"}");
    assert_int_equal(o.kind, ARK_HRESP_BODY_LENGTH);
    assert_true(o.keep_alive);
    assert_int_equal(o.leftover, 0);

    /* bytes after the body are not part of the response */
    parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 0,
                   0, &o, p);
    assert_true(o.done);
    assert_string_equal(o.body, "ok");
    assert_int_equal(o.leftover, 5);

    /* Content-Length: 0 is complete at the end of the head */
    parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 0, &o,
                   p);
    assert_true(o.done);
    assert_int_equal(o.body_len, 0);

    /* LF-only line endings, a reason phrase left out, no Content-Type */
    parse_all_ways("HTTP/1.1 503\nContent-Length: 3\n\nbad", 0, 0, &o, p);
    assert_true(o.done);
    assert_int_equal(o.status, 503);
    assert_null(o.content_type);
    assert_string_equal(o.body, "bad");

    /* identical duplicates are accepted */
    parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                   "Content-Length: 2\r\n\r\nok", 0, 0, &o, p);
    assert_true(o.done);

    /* truncated: the connection ends early */
    parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1, 0,
                   &o, p);
    assert_true(o.error);
    assert_true(o.error_io);
    assert_int_equal(o.status, 200);
}

static void parser_chunked(void **state)
{
    apr_pool_t *p = *state;
    outcome_t o;

    parse_all_ways("HTTP/1.1 200 OK\r\n"
                   "Content-Type: text/event-stream\r\n"
                   "Transfer-Encoding: chunked\r\n"
                   "\r\n"
                   "5\r\nhello\r\n"
                   "1;name=value;x=\"q\"\r\n \r\n"
                   "0B\r\nworld data!\r\n"
                   "a  \r\n0123456789\r\n"
                   "0\r\n"
                   "X-Trailer: 1\r\n"
                   "\r\n", 0, 0, &o, p);
    assert_true(o.done);
    assert_int_equal(o.kind, ARK_HRESP_BODY_CHUNKED);
    assert_string_equal(o.content_type, "text/event-stream");
    assert_string_equal(o.body, "hello world data!0123456789");
    assert_true(o.keep_alive);
    assert_int_equal(o.leftover, 0);

    /* LF-only framing, no trailer, then the next response's bytes */
    parse_all_ways("HTTP/1.1 200 OK\nTransfer-Encoding: gzip, chunked\n\n"
                   "3\nabc\n0\n\nHTTP/1.1", 0, 0, &o, p);
    assert_true(o.done);
    assert_string_equal(o.body, "abc");
    assert_int_equal(o.leftover, 8);

    /* chunked wins over Content-Length, but the connection is not kept */
    parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                   0, 0, &o, p);
    assert_true(o.done);
    assert_string_equal(o.body, "ok");
    assert_false(o.keep_alive);

    /* the connection closing within the chunks is a truncation */
    parse_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhel", 1, 0, &o, p);
    assert_true(o.error);
    assert_true(o.error_io);
    assert_string_equal(o.body, "hel");
}

/* Body pieces are handed out as they arrive, not at the end. */
static void parser_streams_pieces(void **state)
{
    apr_pool_t *p = *state;
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       "\r\n6\r\ndata: ";
    ark_hresp_t rp;
    const char *piece;
    apr_size_t used, plen;

    ark_hresp_init(&rp, 0, T_NOW, p);
    assert_int_equal(ark_hresp_parse(&rp, head, strlen(head), &used, &piece,
                                     &plen), ARK_HRESP_HEAD);
    head += used;
    assert_int_equal(ark_hresp_parse(&rp, head, strlen(head), &used, &piece,
                                     &plen), ARK_HRESP_BODY);
    assert_int_equal(plen, 6);
    assert_memory_equal(piece, "data: ", 6);
    assert_int_equal(ark_hresp_parse(&rp, "", 0, &used, &piece, &plen),
                     ARK_HRESP_MORE);
    /* half of the next chunk comes out at once */
    assert_int_equal(ark_hresp_parse(&rp, "\r\n8\r\nabcd", 9, &used, &piece,
                                     &plen), ARK_HRESP_BODY);
    assert_int_equal(plen, 4);
    assert_memory_equal(piece, "abcd", 4);
}

static void parser_close_delimited(void **state)
{
    apr_pool_t *p = *state;
    outcome_t o;

    parse_all_ways("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                   "all of this until the end", 1, 0, &o, p);
    assert_true(o.done);
    assert_int_equal(o.kind, ARK_HRESP_BODY_CLOSE);
    assert_string_equal(o.body, "all of this until the end");
    assert_false(o.keep_alive);

    /* without the close, it is not finished */
    parse_all_ways("HTTP/1.1 200 OK\r\n\r\nabc", 0, 0, &o, p);
    assert_false(o.done);
    assert_false(o.error);
    assert_string_equal(o.body, "abc");

    /* a transfer coding that is not chunked: until the close */
    parse_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", 1,
                   0, &o, p);
    assert_true(o.done);
    assert_string_equal(o.body, "zz");
}

static void parser_no_body_and_interim(void **state)
{
    apr_pool_t *p = *state;
    outcome_t o;

    parse_all_ways("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0,
                   0, &o, p);
    assert_true(o.done);
    assert_int_equal(o.status, 204);
    assert_int_equal(o.kind, ARK_HRESP_BODY_NONE);
    assert_true(o.keep_alive);

    parse_all_ways("HTTP/1.1 304 Not Modified\r\n\r\n", 0, 0, &o, p);
    assert_true(o.done);

    /* the answer to HEAD has no body, whatever it announces */
    parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", 0, 1, &o,
                   p);
    assert_true(o.done);
    assert_int_equal(o.body_len, 0);

    /* 1xx answers are skipped; blank lines before a head too */
    parse_all_ways("HTTP/1.1 100 Continue\r\n\r\n"
                   "\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                   "HTTP/1.1 201 Created\r\nContent-Type: a/b\r\n"
                   "Content-Length: 2\r\n\r\nok", 0, 0, &o, p);
    assert_true(o.done);
    assert_int_equal(o.heads, 1);
    assert_int_equal(o.status, 201);
    assert_string_equal(o.content_type, "a/b");
    assert_string_equal(o.body, "ok");
}

static void parser_connection_reuse(void **state)
{
    apr_pool_t *p = *state;
    outcome_t o;

    parse_all_ways("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n"
                   "Content-Length: 1\r\n\r\nx", 0, 0, &o, p);
    assert_true(o.done);
    assert_false(o.keep_alive);

    parse_all_ways("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 0, 0, &o,
                   p);
    assert_true(o.done);
    assert_false(o.keep_alive);

    parse_all_ways("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                   "Content-Length: 1\r\n\r\nx", 0, 0, &o, p);
    assert_true(o.done);
    assert_true(o.keep_alive);

    /* a Connection header naming another token */
    parse_all_ways("HTTP/1.1 200 OK\r\nConnection: closed-ish\r\n"
                   "Content-Length: 1\r\n\r\nx", 0, 0, &o, p);
    assert_true(o.keep_alive);
}

typedef struct {
    const char *name;
    const char *text;
    int eof;
    int io;                      /* expected class: framing (1) or head */
} bad_t;

static void parser_malformed(void **state)
{
    apr_pool_t *p = *state;
    static const bad_t bad[] = {
        { "HTTP/0.9 body", "hello world\r\n\r\n", 0, 0 },
        { "no status code", "HTTP/1.1 OK\r\n\r\n", 0, 0 },
        { "short status", "HTTP/1.1 20 OK\r\n\r\n", 0, 0 },
        { "long status", "HTTP/1.1 2000 OK\r\n\r\n", 0, 0 },
        { "status 099", "HTTP/1.1 099 x\r\n\r\n", 0, 0 },
        { "HTTP/2 line", "HTTP/2 200\r\n\r\n", 0, 0 },
        { "lower case", "http/1.1 200 OK\r\n\r\n", 0, 0 },
        { "101", "HTTP/1.1 101 Switching Protocols\r\n\r\n", 0, 0 },
        { "CL letters", "HTTP/1.1 200 OK\r\nContent-Length: 1a\r\n\r\n",
          0, 0 },
        { "CL empty", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", 0, 0 },
        { "CL negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
          0, 0 },
        { "CL huge", "HTTP/1.1 200 OK\r\nContent-Length: "
          "99999999999999999999\r\n\r\n", 0, 0 },
        { "CL conflict", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
          "Content-Length: 2\r\n\r\nab", 0, 0 },
        { "chunk size not hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
          "chunked\r\n\r\nzz\r\n", 0, 1 },
        { "chunk size missing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
          "chunked\r\n\r\n\r\n", 0, 1 },
        { "chunk size overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
          "chunked\r\n\r\n10000000000000000\r\n", 0, 1 },
        { "chunk CR without LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
          "chunked\r\n\r\n2\rxok\r\n", 0, 1 },
        { "no CRLF after data", "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
          "chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n", 0, 1 },
        { "truncated head", "HTTP/1.1 200 OK\r\nContent-Le", 1, 1 },
        { "empty reply", "", 1, 1 },
        { "truncated trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
          "chunked\r\n\r\n0\r\nX: 1\r\n", 1, 1 },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        outcome_t o;

        parse_all_ways(bad[i].text, bad[i].eof, 0, &o, p);
        if (!o.error) {
            fail_msg("%s: accepted", bad[i].name);
        }
        if (o.error_io != bad[i].io) {
            fail_msg("%s: error class %d", bad[i].name, o.error_io);
        }
    }
}

static void parser_limits(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t n = ARK_HRESP_MAX_HEAD + 100, i;
    char *big = apr_palloc(p, n + 64);
    outcome_t o;

    /* a head beyond the limit */
    strcpy(big, "HTTP/1.1 200 OK\r\nX-Big: ");
    for (i = strlen(big); i < n; i++) {
        big[i] = 'a';
    }
    strcpy(big + n, "\r\n\r\n");
    parse_cut(big, strlen(big), NULL, 0, 0, 0, &o, p);
    assert_true(o.error);
    assert_false(o.error_io);

    /* just under it is fine */
    n = ARK_HRESP_MAX_HEAD - 100;
    strcpy(big, "HTTP/1.1 200 OK\r\nX-Big: ");
    for (i = strlen(big); i < n; i++) {
        big[i] = 'a';
    }
    strcpy(big + n, "\r\nContent-Length: 0\r\n\r\n");
    parse_cut(big, strlen(big), NULL, 0, 0, 0, &o, p);
    assert_true(o.done);

    /* chunk extensions beyond their limit */
    n = ARK_HRESP_MAX_CHUNK_EXT + 10;
    strcpy(big, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    for (i = strlen(big); i < n + 60; i++) {
        big[i] = 'e';
    }
    strcpy(big + i, "\r\nx\r\n0\r\n\r\n");
    parse_cut(big, strlen(big), NULL, 0, 0, 0, &o, p);
    assert_true(o.error);
    assert_true(o.error_io);

    /* endless interim answers */
    big[0] = '\0';
    for (i = 0; i <= ARK_HRESP_MAX_INTERIM; i++) {
        strcat(big, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    parse_cut(big, strlen(big), NULL, 0, 0, 0, &o, p);
    assert_true(o.error);
}

static void parser_retry_after(void **state)
{
    apr_pool_t *p = *state;
    outcome_t o;

    /* T_NOW is Tue, 14 Nov 2023 22:13:20 GMT */
    assert_int_equal(ark_http_retry_after_parse("120", T_NOW),
                     apr_time_from_sec(120));
    assert_int_equal(ark_http_retry_after_parse("  7 ", T_NOW),
                     apr_time_from_sec(7));
    assert_int_equal(ark_http_retry_after_parse("0", T_NOW), 0);
    assert_int_equal(ark_http_retry_after_parse(
                         "Tue, 14 Nov 2023 22:14:20 GMT", T_NOW),
                     apr_time_from_sec(60));
    assert_int_equal(ark_http_retry_after_parse(
                         "Tuesday, 14-Nov-23 22:13:50 GMT", T_NOW),
                     apr_time_from_sec(30));
    assert_int_equal(ark_http_retry_after_parse(
                         "Tue Nov 14 23:13:20 2023", T_NOW),
                     apr_time_from_sec(3600));
    assert_int_equal(ark_http_retry_after_parse(
                         "Wed Nov  1 00:00:00 2023", T_NOW), 0);  /* past */
    assert_int_equal(ark_http_retry_after_parse(
                         "Mon, 13 Nov 2023 00:00:00 GMT", T_NOW), 0);
    assert_int_equal(ark_http_retry_after_parse("soon", T_NOW), 0);
    assert_int_equal(ark_http_retry_after_parse("12s", T_NOW), 0);
    assert_int_equal(ark_http_retry_after_parse("", T_NOW), 0);
    assert_int_equal(ark_http_retry_after_parse(
                         "Tue, 14 Foo 2023 22:14:20 GMT", T_NOW), 0);
    assert_int_equal(ark_http_retry_after_parse(
                         "Tue, 14 Nov 2023 25:14:20 GMT", T_NOW), 0);
    assert_int_equal(ark_http_retry_after_parse(
                         "Tue, 14 Nov 2023 22:14:20 GMT junk", T_NOW), 0);

    parse_all_ways("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n"
                   "Content-Length: 0\r\n\r\n", 0, 0, &o, p);
    assert_int_equal(o.status, 429);
    assert_int_equal(o.retry_after, apr_time_from_sec(3));
    parse_all_ways("HTTP/1.1 503 Busy\r\n"
                   "Retry-After: Tue, 14 Nov 2023 22:13:25 GMT\r\n"
                   "Content-Length: 0\r\n\r\n", 0, 0, &o, p);
    assert_int_equal(o.retry_after, apr_time_from_sec(5));
}

/* ============================================= client against a server */

/* What the scripted server does with the i-th request it reads. */
typedef enum {
    ANSWER,                      /* send the response, keep the connection */
    ANSWER_CLOSE,                /* send the response, then close */
    DROP,                        /* close without answering */
    SILENT                       /* never answer (until the test ends) */
} action_t;

typedef struct {
    action_t action;
    const char *response;
} step_t;

typedef struct {
    int lfd;
    int port;
    const step_t *steps;
    int nsteps;
    int connections;             /* accepted */
    int requests;                /* read */
    char last_request[4096];
    pthread_t thread;
} server_t;

/* Reads one request (head + Content-Length body); 0 at EOF. */
static int read_request(int fd, char *buf, apr_size_t cap)
{
    apr_size_t len = 0;
    char *end = NULL;
    long cl = 0;

    for (;;) {
        ssize_t r;

        if (!end && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            const char *c = strstr(buf, "Content-Length: ");

            cl = c && c < end ? strtol(c + 16, NULL, 10) : 0;
        }
        if (end && (apr_size_t)(end + 4 - buf) + (apr_size_t)cl <= len) {
            return 1;
        }
        r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0) {
            return 0;
        }
        len += (apr_size_t)r;
        buf[len] = '\0';
    }
}

static void *server_main(void *arg)
{
    server_t *s = arg;
    int fd = -1, i = 0;

    while (i < s->nsteps) {
        char buf[4096];
        const step_t *st;

        if (fd < 0) {
            struct pollfd pfd = { s->lfd, POLLIN, 0 };

            if (poll(&pfd, 1, 5000) <= 0) {
                break;
            }
            fd = accept(s->lfd, NULL, NULL);
            if (fd < 0) {
                break;
            }
            s->connections++;
        }
        buf[0] = '\0';
        if (!read_request(fd, buf, sizeof(buf))) {
            close(fd);               /* the client closed it */
            fd = -1;
            continue;
        }
        s->requests++;
        strcpy(s->last_request, buf);
        st = &s->steps[i++];
        if (st->action == SILENT) {
            struct pollfd pfd = { fd, POLLIN, 0 };

            poll(&pfd, 1, 5000);     /* until the client gives up */
        }
        else if (st->action != DROP) {
            send(fd, st->response, strlen(st->response), MSG_NOSIGNAL);
        }
        if (st->action != ANSWER) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static void server_start(server_t *s, const step_t *steps, int nsteps)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int one = 1;

    memset(s, 0, sizeof(*s));
    s->steps = steps;
    s->nsteps = nsteps;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(server_t *s)
{
    pthread_join(s->thread, NULL);
    close(s->lfd);
}

typedef struct {
    int calls;
    int status;
    char body[4096];
    apr_size_t len;
    int abort_at;                /* 1-based call that refuses, 0 never */
} sink_t;

static apr_status_t sink(void *ctx, int status, const char *ct,
                         const char *buf, apr_size_t len)
{
    sink_t *k = ctx;

    (void)ct;
    k->calls++;
    k->status = status;
    if (k->abort_at && k->calls >= k->abort_at) {
        return APR_ECONNABORTED;
    }
    memcpy(k->body + k->len, buf, len);
    k->len += len;
    k->body[k->len] = '\0';
    return APR_SUCCESS;
}

static void req_init(ark_http_req_t *req, const server_t *s, sink_t *k,
                     apr_pool_t *p)
{
    apr_array_header_t *h = apr_array_make(p, 2, sizeof(const char *));

    APR_ARRAY_PUSH(h, const char *) = "Content-Type: application/json";
    APR_ARRAY_PUSH(h, const char *) = "Authorization: Bearer sk-secret";
    memset(req, 0, sizeof(*req));
    memset(k, 0, sizeof(*k));
    req->url = apr_psprintf(p, "http://127.0.0.1:%d/v1/chat", s->port);
    req->headers = h;
    req->body = "{\"x\":1}";
    req->body_len = 7;
    req->connect_timeout = apr_time_from_sec(2);
    req->timeout = apr_time_from_sec(5);
    req->on_data = sink;
    req->ctx = k;
}

#define OK_RESP "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" \
                "Content-Length: 2\r\n\r\n{}"

static void client_reuses_connections(void **state)
{
    apr_pool_t *p = *state;
    static const step_t steps[] = {
        { ANSWER, OK_RESP },
        { ANSWER, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabc\r\n0\r\n\r\n" },
        { ANSWER_CLOSE, "HTTP/1.1 429 Slow down\r\nRetry-After: 2\r\n"
                        "Content-Length: 0\r\n\r\n" },
    };
    server_t s;
    ark_native_t *n;
    ark_http_req_t req;
    ark_http_result_t res;
    sink_t k;

    server_start(&s, steps, 3);
    assert_int_equal(ark_native_create(&n, 4, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    assert_true(ark_native_handles(&req));
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    assert_int_equal(res.fail, ARK_HTTP_OK);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.new_connections, 1);
    assert_string_equal(k.body, "{}");
    assert_non_null(strstr(s.last_request, "POST /v1/chat HTTP/1.1\r\n"));
    assert_non_null(strstr(s.last_request, "\r\nContent-Length: 7\r\n"));
    assert_non_null(strstr(s.last_request, "\r\n\r\n{\"x\":1}"));

    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    assert_int_equal(res.new_connections, 0);
    assert_string_equal(k.body, "abc");

    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    assert_int_equal(res.new_connections, 0);
    assert_int_equal(res.status, 429);
    assert_int_equal(res.retry_after, apr_time_from_sec(2));
    assert_int_equal(k.calls, 1);            /* told the status, no body */
    assert_int_equal(k.status, 429);
    server_stop(&s);
    assert_int_equal(s.connections, 1);
}

/* The server closes a kept-alive connection as the request arrives: it
 * is sent once more on a new connection. */
static void client_retries_stale_connection(void **state)
{
    apr_pool_t *p = *state;
    static const step_t steps[] = {
        { ANSWER, OK_RESP },
        { DROP, NULL },
        { ANSWER, OK_RESP },
    };
    server_t s;
    ark_native_t *n;
    ark_http_req_t req;
    ark_http_result_t res;
    sink_t k;

    server_start(&s, steps, 3);
    assert_int_equal(ark_native_create(&n, 4, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    assert_int_equal(res.fail, ARK_HTTP_OK);
    assert_int_equal(res.new_connections, 1);
    assert_string_equal(k.body, "{}");
    server_stop(&s);
    assert_int_equal(s.requests, 3);
    assert_int_equal(s.connections, 2);
}

/* The server closes kept-alive connections right after answering (it
 * says nothing about it): a connection idle for a while is found closed
 * before use, a freshly idle one by the retry; either way the request is
 * answered on a new connection. */
static void client_server_closed_idle_connection(void **state)
{
    apr_pool_t *p = *state;
    static const step_t steps[] = {
        { ANSWER_CLOSE, OK_RESP },
        { ANSWER_CLOSE, OK_RESP },
        { ANSWER_CLOSE, OK_RESP },
    };
    server_t s;
    ark_native_t *n;
    ark_http_req_t req;
    ark_http_result_t res;
    sink_t k;

    server_start(&s, steps, 3);
    assert_int_equal(ark_native_create(&n, 4, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    usleep(1100 * 1000);                   /* checked before reuse */
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    assert_int_equal(res.new_connections, 1);
    req_init(&req, &s, &k, p);             /* at once: by the retry */
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    assert_int_equal(res.new_connections, 1);
    assert_string_equal(k.body, "{}");
    server_stop(&s);
    assert_int_equal(s.requests, 3);
    assert_int_equal(s.connections, 3);
}

/* Once a response byte arrived, a failure is final. */
static void client_no_retry_after_response_bytes(void **state)
{
    apr_pool_t *p = *state;
    static const step_t steps[] = {
        { ANSWER, OK_RESP },
        { ANSWER_CLOSE, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" },
    };
    server_t s;
    ark_native_t *n;
    ark_http_req_t req;
    ark_http_result_t res;
    sink_t k;

    server_start(&s, steps, 2);
    assert_int_equal(ark_native_create(&n, 4, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_EGENERAL);
    assert_int_equal(res.fail, ARK_HTTP_IO);
    assert_int_equal(res.status, 200);
    assert_string_equal(k.body, "abc");
    assert_non_null(res.detail);
    assert_null(strstr(res.detail, "sk-secret"));
    server_stop(&s);
    assert_int_equal(s.requests, 2);
}

/* A new connection closed without an answer is not retried. */
static void client_new_connection_dropped(void **state)
{
    apr_pool_t *p = *state;
    static const step_t steps[] = { { DROP, NULL } };
    server_t s;
    ark_native_t *n;
    ark_http_req_t req;
    ark_http_result_t res;
    sink_t k;

    server_start(&s, steps, 1);
    assert_int_equal(ark_native_create(&n, 4, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_EGENERAL);
    assert_int_equal(res.fail, ARK_HTTP_IO);
    assert_int_equal(res.status, 0);
    assert_int_equal(k.calls, 0);
    server_stop(&s);
    assert_int_equal(s.requests, 1);
}

static void client_malformed_and_abort(void **state)
{
    apr_pool_t *p = *state;
    static const step_t steps[] = {
        { ANSWER, "HTTP/1.1 2x0 OK\r\n\r\n" },
        { ANSWER, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n" },
        { ANSWER, OK_RESP },
    };
    server_t s;
    ark_native_t *n;
    ark_http_req_t req;
    ark_http_result_t res;
    sink_t k;

    server_start(&s, steps, 3);
    assert_int_equal(ark_native_create(&n, 4, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_EGENERAL);
    assert_int_equal(res.fail, ARK_HTTP_OTHER);
    /* not kept: the next request needs a new connection */
    req_init(&req, &s, &k, p);
    k.abort_at = 1;
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_EGENERAL);
    assert_int_equal(res.fail, ARK_HTTP_ABORTED);
    assert_int_equal(res.new_connections, 1);
    assert_int_equal(res.status, 200);
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_SUCCESS);
    assert_int_equal(res.new_connections, 1);
    server_stop(&s);
    assert_int_equal(s.connections, 3);
}

static void client_timeout_and_cancel(void **state)
{
    apr_pool_t *p = *state;
    static const step_t steps[] = { { SILENT, NULL } };
    server_t s;
    ark_native_t *n;
    ark_http_req_t req;
    ark_http_result_t res;
    sink_t k;
    int cancel = 1;

    server_start(&s, steps, 1);
    assert_int_equal(ark_native_create(&n, 4, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    req.timeout = apr_time_from_msec(200);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_EGENERAL);
    assert_int_equal(res.fail, ARK_HTTP_TIMEOUT);
    assert_true(res.total >= apr_time_from_msec(200));
    assert_true(res.total < apr_time_from_sec(2));

    pthread_join(s.thread, NULL);
    /* nobody answers; the listening socket still takes connections */
    req_init(&req, &s, &k, p);
    req.cancel = &cancel;
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_EGENERAL);
    assert_int_equal(res.fail, ARK_HTTP_ABORTED);
    close(s.lfd);
}

static void client_connect_refused_and_urls(void **state)
{
    apr_pool_t *p = *state;
    server_t s;
    ark_native_t *n;
    ark_http_req_t req;
    ark_http_result_t res;
    sink_t k;
    static const step_t none[] = { { ANSWER, OK_RESP } };

    server_start(&s, none, 0);        /* the thread ends at once */
    server_stop(&s);                  /* and the port is closed */
    assert_int_equal(ark_native_create(&n, 4, p), APR_SUCCESS);
    req_init(&req, &s, &k, p);
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_EGENERAL);
    assert_int_equal(res.fail, ARK_HTTP_CONNECT);
    assert_non_null(strstr(res.detail, "127.0.0.1"));

    req.url = "http://no-such-host.invalid/v1";
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_EGENERAL);
    assert_int_equal(res.fail, ARK_HTTP_CONNECT);

    req.url = "https://example.com/v1";
    assert_false(ark_native_handles(&req));
    res.status = 999;                 /* left alone: libcurl's transfer */
    assert_int_equal(ark_native_perform(n, &req, &res, p), APR_ENOTIMPL);
    assert_int_equal(res.status, 999);
    req.url = "http://user:pw@example.com/v1";
    assert_false(ark_native_handles(&req));
    req.url = "http://example.com:99999/v1";
    assert_false(ark_native_handles(&req));
    req.url = "http://example.com/v1#frag";
    assert_false(ark_native_handles(&req));
    req.url = "http://[::1]:8080/v1?alt=sse";
    assert_true(ark_native_handles(&req));
    req.url = "HTTP://example.com";
    assert_true(ark_native_handles(&req));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(parser_content_length),
        ARK_TEST(parser_chunked),
        ARK_TEST(parser_streams_pieces),
        ARK_TEST(parser_close_delimited),
        ARK_TEST(parser_no_body_and_interim),
        ARK_TEST(parser_connection_reuse),
        ARK_TEST(parser_malformed),
        ARK_TEST(parser_limits),
        ARK_TEST(parser_retry_after),
        ARK_TEST(client_reuses_connections),
        ARK_TEST(client_retries_stale_connection),
        ARK_TEST(client_server_closed_idle_connection),
        ARK_TEST(client_no_retry_after_response_bytes),
        ARK_TEST(client_new_connection_dropped),
        ARK_TEST(client_malformed_and_abort),
        ARK_TEST(client_timeout_and_cancel),
        ARK_TEST(client_connect_refused_and_urls),
    };

    return ARK_TEST_RUN("ark_http_native", tests);
}
