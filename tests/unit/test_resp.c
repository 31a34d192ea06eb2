/* Unit tests for the RESP reader and reply writers (cachesvc/cs_resp.c).
 *
 * The reader is fed the way the server feeds it: bytes arrive in chunks,
 * each chunk is appended to what is left of the previous ones, complete
 * commands are taken off the front. Every test that splits input checks
 * that the commands seen (a transcript of their binary-safe arguments)
 * are exactly those seen when the whole input arrives at once: at every
 * single split point, byte by byte, and in random chunks (fixed seed).
 * Malformed and oversized frames must give the named protocol error,
 * without reading past the buffer (run this under ASan/UBSan too), and
 * the error must be sticky.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <cmocka.h>

#include "cs_common.h"
#include "cs_resp.h"

/* A small max_bulk_len for the limit tests. */
#define TEST_MAX_BULK 16

/* ---- helpers ---------------------------------------------------- */

/* Appends "argc{len:bytes}..." for cmd to t. */
static void transcribe(cs_buf_t *t, const cs_resp_cmd_t *cmd)
{
    int i;

    cs_buf_printf(t, "%d", cmd->argc);
    for (i = 0; i < cmd->argc; i++) {
        cs_buf_printf(t, "{%zu:", cmd->argv[i].len);
        cs_buf_append(t, cmd->argv[i].ptr, cmd->argv[i].len);
        cs_buf_append(t, "}", 1);
    }
    cs_buf_append(t, "\n", 1);
}

/* A connection as the server runs it: pending bytes plus a reader. */
typedef struct feeder {
    cs_resp_reader_t reader;
    cs_resp_cmd_t cmd;
    cs_buf_t pending;
    cs_buf_t transcript;
    int commands;
    int errors;
} feeder_t;

static void feeder_init(feeder_t *f, size_t max_bulk)
{
    cs_resp_reader_init(&f->reader, max_bulk);
    cs_resp_cmd_init(&f->cmd);
    cs_buf_init(&f->pending);
    cs_buf_init(&f->transcript);
    f->commands = 0;
    f->errors = 0;
}

static void feeder_free(feeder_t *f)
{
    cs_resp_cmd_free(&f->cmd);
    cs_buf_free(&f->pending);
    cs_buf_free(&f->transcript);
}

static void feed(feeder_t *f, const char *data, size_t n)
{
    size_t pos = 0, used;
    cs_resp_status_t st;

    cs_buf_append(&f->pending, data, n);
    for (;;) {
        st = cs_resp_parse(&f->reader, f->pending.data + pos,
                           f->pending.len - pos, &f->cmd, &used);
        assert_true(used <= f->pending.len - pos);
        pos += used;
        if (st == CS_RESP_COMMAND) {
            assert_true(f->cmd.argc >= 1);
            assert_true(used > 0);
            transcribe(&f->transcript, &f->cmd);
            f->commands++;
            continue;
        }
        if (st == CS_RESP_PROTOCOL_ERROR) {
            f->errors++;
        }
        break;
    }
    cs_buf_consume(&f->pending, pos);
}

/* Parses buf in one go and expects one error containing want. */
static void expect_error(const char *buf, size_t len, size_t max_bulk,
                         const char *want)
{
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    size_t used = 99;

    cs_resp_reader_init(&r, max_bulk);
    cs_resp_cmd_init(&cmd);
    assert_int_equal(cs_resp_parse(&r, buf, len, &cmd, &used),
                     CS_RESP_PROTOCOL_ERROR);
    if (strstr(r.errstr, want) == NULL) {
        print_error("input %.*s: error '%s' lacks '%s'\n", (int)len, buf,
                    r.errstr, want);
        fail();
    }
    assert_int_equal(r.failed, 1);
    /* sticky: even a valid command now fails */
    assert_int_equal(cs_resp_parse(&r, "PING\r\n", 6, &cmd, &used),
                     CS_RESP_PROTOCOL_ERROR);
    cs_resp_cmd_free(&cmd);
}

#define EXPECT_ERROR(lit, want)                                                \
    expect_error(lit, sizeof(lit) - 1, CS_RESP_BULK_LEN_DEFAULT, want)

/* Deterministic generator (the same on every libc). */
static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) & 0xffffff;
}

/* A pipelined mix: arrays with binary data (CRLF, NUL inside bulks),
 * inline commands with quotes, empty frames, an empty argument. */
static void build_mix(cs_buf_t *b)
{
    static const char bin[] = "a\r\nb\0c*$\n";

    cs_buf_printf(b, "*1\r\n$4\r\nPING\r\n");
    cs_buf_printf(b, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", sizeof(bin) - 1);
    cs_buf_append(b, bin, sizeof(bin) - 1);
    cs_buf_append(b, "\r\n", 2);
    cs_buf_printf(b, "PING\r\n");
    cs_buf_printf(b, "\r\n*0\r\n*-1\r\n");
    cs_buf_printf(b, "ECHO \"a b\\r\\n\\x41\" 'it\\'s'\n");
    cs_buf_printf(b, "*4\r\n$9\r\nARK.STORE\r\n$2\r\nns\r\n$0\r\n\r\n"
                     "$3\r\nabc\r\n");
    cs_buf_printf(b, "   info   server  \r\n");
    cs_buf_printf(b, "*3\r\n$10\r\nARK.LOOKUP\r\n$2\r\nns\r\n$11\r\n"
                     "hello world\r\n");
}

/* ---- reader: well-formed input ---------------------------------- */

static void test_array_command(void **state)
{
    static const char in[] = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    size_t used;

    (void)state;
    cs_resp_reader_init(&r, CS_RESP_BULK_LEN_DEFAULT);
    cs_resp_cmd_init(&cmd);
    assert_int_equal(cs_resp_parse(&r, in, sizeof(in) - 1, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(used, sizeof(in) - 1);
    assert_int_equal(cmd.argc, 2);
    assert_int_equal(cmd.is_inline, 0);
    assert_int_equal(cmd.argv[0].len, 4);
    assert_memory_equal(cmd.argv[0].ptr, "ECHO", 4);
    assert_int_equal(cmd.argv[1].len, 5);
    assert_memory_equal(cmd.argv[1].ptr, "hello", 5);
    /* zero copy: arguments point into the input */
    assert_ptr_equal(cmd.argv[1].ptr, in + 18);
    cs_resp_cmd_free(&cmd);
}

static void test_inline_commands(void **state)
{
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    size_t used;

    (void)state;
    cs_resp_reader_init(&r, CS_RESP_BULK_LEN_DEFAULT);
    cs_resp_cmd_init(&cmd);

    assert_int_equal(cs_resp_parse(&r, "PING\r\n", 6, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(used, 6);
    assert_int_equal(cmd.argc, 1);
    assert_int_equal(cmd.is_inline, 1);
    assert_memory_equal(cmd.argv[0].ptr, "PING", 4);

    assert_int_equal(cs_resp_parse(&r, "PING\n", 5, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(used, 5);

    assert_int_equal(cs_resp_parse(&r, " \tECHO   hi \r\n", 14, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(cmd.argc, 2);
    assert_int_equal(cmd.argv[1].len, 2);
    assert_memory_equal(cmd.argv[1].ptr, "hi", 2);

    {
        static const char q[] =
            "SET \"a b\" 'c d' \"x\\x41\\n\\\"\" '' \"\" 'it\\'s'\r\n";

        assert_int_equal(cs_resp_parse(&r, q, sizeof(q) - 1, &cmd, &used),
                         CS_RESP_COMMAND);
        assert_int_equal(used, sizeof(q) - 1);
        assert_int_equal(cmd.argc, 7);
        assert_int_equal(cmd.argv[1].len, 3);
        assert_memory_equal(cmd.argv[1].ptr, "a b", 3);
        assert_memory_equal(cmd.argv[2].ptr, "c d", 3);
        assert_int_equal(cmd.argv[3].len, 4);
        assert_memory_equal(cmd.argv[3].ptr, "xA\n\"", 4);
        assert_int_equal(cmd.argv[4].len, 0);
        assert_int_equal(cmd.argv[5].len, 0);
        assert_int_equal(cmd.argv[6].len, 4);
        assert_memory_equal(cmd.argv[6].ptr, "it's", 4);
    }
    /* a line without its newline is not complete */
    assert_int_equal(cs_resp_parse(&r, "PING", 4, &cmd, &used),
                     CS_RESP_NEED_MORE);
    assert_int_equal(used, 0);
    cs_resp_cmd_free(&cmd);
}

static void test_empty_frames_skipped(void **state)
{
    static const char in[] = "\r\n\n*0\r\n*-1\r\n   \r\nPING\r\n";
    static const char only[] = "\r\n*0\r\n";
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    size_t used;

    (void)state;
    cs_resp_reader_init(&r, CS_RESP_BULK_LEN_DEFAULT);
    cs_resp_cmd_init(&cmd);
    assert_int_equal(cs_resp_parse(&r, in, sizeof(in) - 1, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(used, sizeof(in) - 1);
    assert_int_equal(cmd.argc, 1);
    /* empty frames alone: need more, but they may be dropped */
    assert_int_equal(cs_resp_parse(&r, only, sizeof(only) - 1, &cmd, &used),
                     CS_RESP_NEED_MORE);
    assert_int_equal(used, sizeof(only) - 1);
    assert_int_equal(cs_resp_parse(&r, NULL, 0, &cmd, &used),
                     CS_RESP_NEED_MORE);
    assert_int_equal(used, 0);
    cs_resp_cmd_free(&cmd);
}

/* Every proper prefix of a command needs more and consumes nothing. */
static void test_every_prefix_needs_more(void **state)
{
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    cs_buf_t b;
    size_t k, used;

    (void)state;
    cs_buf_init(&b);
    cs_buf_printf(&b, "*3\r\n$10\r\nARK.LOOKUP\r\n$2\r\nns\r\n$12\r\n"
                      "hello\r\nworld\r\n");
    cs_resp_reader_init(&r, CS_RESP_BULK_LEN_DEFAULT);
    cs_resp_cmd_init(&cmd);
    for (k = 0; k < b.len; k++) {
        assert_int_equal(cs_resp_parse(&r, b.data, k, &cmd, &used),
                         CS_RESP_NEED_MORE);
        assert_int_equal(used, 0);
    }
    assert_int_equal(cs_resp_parse(&r, b.data, b.len, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(used, b.len);
    assert_int_equal(cmd.argv[2].len, 12);
    assert_memory_equal(cmd.argv[2].ptr, "hello\r\nworld", 12);
    cs_resp_cmd_free(&cmd);
    cs_buf_free(&b);
}

static void whole_transcript(const cs_buf_t *in, cs_buf_t *out, int *n)
{
    feeder_t f;

    feeder_init(&f, CS_RESP_BULK_LEN_DEFAULT);
    feed(&f, in->data, in->len);
    assert_int_equal(f.errors, 0);
    assert_int_equal(f.pending.len, 0);
    cs_buf_append(out, f.transcript.data, f.transcript.len);
    *n = f.commands;
    feeder_free(&f);
}

static void test_every_split_point(void **state)
{
    cs_buf_t in, expected;
    feeder_t f;
    size_t k;
    int n;

    (void)state;
    cs_buf_init(&in);
    cs_buf_init(&expected);
    build_mix(&in);
    whole_transcript(&in, &expected, &n);
    assert_int_equal(n, 7);
    for (k = 0; k <= in.len; k++) {
        feeder_init(&f, CS_RESP_BULK_LEN_DEFAULT);
        feed(&f, in.data, k);
        feed(&f, in.data + k, in.len - k);
        assert_int_equal(f.errors, 0);
        assert_int_equal(f.commands, n);
        assert_int_equal(f.transcript.len, expected.len);
        assert_memory_equal(f.transcript.data, expected.data, expected.len);
        assert_int_equal(f.pending.len, 0);
        feeder_free(&f);
    }
    cs_buf_free(&in);
    cs_buf_free(&expected);
}

static void test_byte_by_byte(void **state)
{
    cs_buf_t in, expected;
    feeder_t f;
    size_t k;
    int n;

    (void)state;
    cs_buf_init(&in);
    cs_buf_init(&expected);
    build_mix(&in);
    whole_transcript(&in, &expected, &n);
    feeder_init(&f, CS_RESP_BULK_LEN_DEFAULT);
    for (k = 0; k < in.len; k++) {
        feed(&f, in.data + k, 1);
    }
    assert_int_equal(f.errors, 0);
    assert_int_equal(f.commands, n);
    assert_memory_equal(f.transcript.data, expected.data, expected.len);
    feeder_free(&f);
    cs_buf_free(&in);
    cs_buf_free(&expected);
}

static void test_random_splits(void **state)
{
    cs_buf_t in, expected;
    feeder_t f;
    size_t pos, chunk;
    int n, round, copies;

    (void)state;
    cs_buf_init(&in);
    cs_buf_init(&expected);
    for (copies = 0; copies < 20; copies++) {
        build_mix(&in);
    }
    whole_transcript(&in, &expected, &n);
    assert_int_equal(n, 140);
    rng_state = 12345;
    for (round = 0; round < 500; round++) {
        feeder_init(&f, CS_RESP_BULK_LEN_DEFAULT);
        for (pos = 0; pos < in.len; pos += chunk) {
            chunk = 1 + rng() % (round % 2 ? 7 : 97);
            if (chunk > in.len - pos) {
                chunk = in.len - pos;
            }
            feed(&f, in.data + pos, chunk);
        }
        assert_int_equal(f.errors, 0);
        assert_int_equal(f.commands, n);
        assert_int_equal(f.transcript.len, expected.len);
        assert_memory_equal(f.transcript.data, expected.data, expected.len);
        feeder_free(&f);
    }
    cs_buf_free(&in);
    cs_buf_free(&expected);
}

static void test_pipeline_1000(void **state)
{
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    cs_buf_t in;
    size_t pos = 0, used;
    char payload[32];
    int i, n;

    (void)state;
    cs_buf_init(&in);
    for (i = 0; i < 1000; i++) {
        n = snprintf(payload, sizeof(payload), "answer-%d", i);
        cs_buf_printf(&in,
                      "*4\r\n$9\r\nARK.STORE\r\n$3\r\nns1\r\n$6\r\n"
                      "text%02d\r\n$%d\r\n%s\r\n",
                      i % 100, n, payload);
    }
    cs_resp_reader_init(&r, CS_RESP_BULK_LEN_DEFAULT);
    cs_resp_cmd_init(&cmd);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(
            cs_resp_parse(&r, in.data + pos, in.len - pos, &cmd, &used),
            CS_RESP_COMMAND);
        pos += used;
        assert_int_equal(cmd.argc, 4);
        n = snprintf(payload, sizeof(payload), "answer-%d", i);
        assert_int_equal(cmd.argv[3].len, (size_t)n);
        assert_memory_equal(cmd.argv[3].ptr, payload, (size_t)n);
    }
    assert_int_equal(pos, in.len);
    assert_int_equal(cs_resp_parse(&r, in.data + pos, 0, &cmd, &used),
                     CS_RESP_NEED_MORE);
    cs_resp_cmd_free(&cmd);
    cs_buf_free(&in);
}

/* ---- reader: limits and malformed input ------------------------- */

static void test_bad_array_headers(void **state)
{
    (void)state;
    EXPECT_ERROR("*-5\r\n", "invalid multibulk length");
    EXPECT_ERROR("*-0x\r\n", "invalid multibulk length");
    EXPECT_ERROR("*99999999999999999999\r\n", "invalid multibulk length");
    EXPECT_ERROR("*1234567890123456789", "invalid multibulk length");
    EXPECT_ERROR("*1x\r\n", "invalid multibulk length");
    EXPECT_ERROR("*\r\n", "invalid multibulk length");
    EXPECT_ERROR("*+1\r\n", "invalid multibulk length");
    EXPECT_ERROR("* 1\r\n", "invalid multibulk length");
    EXPECT_ERROR("*1\n", "invalid multibulk length");
    EXPECT_ERROR("*1\rX", "invalid multibulk length");
    EXPECT_ERROR("*65\r\n", "too many arguments");
    EXPECT_ERROR("*1000000\r\n", "too many arguments");
}

static void test_bad_bulks(void **state)
{
    (void)state;
    EXPECT_ERROR("*1\r\nx3\r\n", "expected '$', got 'x'");
    EXPECT_ERROR("*1\r\n\r\n", "expected '$', got byte 0x0d");
    EXPECT_ERROR("*1\r\n$-3\r\n", "invalid bulk length");
    EXPECT_ERROR("*1\r\n$-1\r\n", "invalid bulk length");
    EXPECT_ERROR("*1\r\n$\r\n", "invalid bulk length");
    EXPECT_ERROR("*1\r\n$ 3\r\n", "invalid bulk length");
    EXPECT_ERROR("*1\r\n$3\n", "invalid bulk length");
    EXPECT_ERROR("*1\r\n$3x\r\n", "invalid bulk length");
    EXPECT_ERROR("*1\r\n$9223372036854775808\r\n", "invalid bulk length");
    EXPECT_ERROR("*1\r\n$999999999999999999\r\n", "above max_bulk_len");
    EXPECT_ERROR("*1\r\n$3\r\nabcX\r\n", "expected CRLF after 3 bytes");
    EXPECT_ERROR("*1\r\n$3\r\nabc\rX", "expected CRLF after 3 bytes");
    EXPECT_ERROR("*1\r\n$3\r\nabc\n\n", "expected CRLF after 3 bytes");
    EXPECT_ERROR("*2\r\n$4\r\nPING\r\n:1\r\n", "expected '$', got ':'");
}

static void test_bulk_limit(void **state)
{
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    cs_buf_t b;
    size_t used;
    char data[TEST_MAX_BULK + 1];

    (void)state;
    memset(data, 'z', sizeof(data));
    cs_buf_init(&b);
    cs_resp_cmd_init(&cmd);
    /* exactly the limit: accepted */
    cs_buf_printf(&b, "*1\r\n$%d\r\n", TEST_MAX_BULK);
    cs_buf_append(&b, data, TEST_MAX_BULK);
    cs_buf_append(&b, "\r\n", 2);
    cs_resp_reader_init(&r, TEST_MAX_BULK);
    assert_int_equal(cs_resp_parse(&r, b.data, b.len, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(cmd.argv[0].len, TEST_MAX_BULK);
    /* one above: refused from the header alone, before any data */
    cs_buf_reset(&b);
    cs_buf_printf(&b, "*1\r\n$%d\r\n", TEST_MAX_BULK + 1);
    expect_error(b.data, b.len, TEST_MAX_BULK, "above max_bulk_len 16");
    cs_resp_cmd_free(&cmd);
    cs_buf_free(&b);
}

static void test_max_args(void **state)
{
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    cs_buf_t b;
    size_t used;
    int i;

    (void)state;
    cs_buf_init(&b);
    cs_resp_cmd_init(&cmd);
    cs_resp_reader_init(&r, CS_RESP_BULK_LEN_DEFAULT);
    cs_buf_printf(&b, "*%d\r\n", CS_RESP_MAX_ARGS);
    for (i = 0; i < CS_RESP_MAX_ARGS; i++) {
        cs_buf_printf(&b, "$1\r\n%c\r\n", 'a' + i % 26);
    }
    assert_int_equal(cs_resp_parse(&r, b.data, b.len, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(cmd.argc, CS_RESP_MAX_ARGS);
    /* inline: 64 words fine, 65 too many */
    cs_buf_reset(&b);
    for (i = 0; i < CS_RESP_MAX_ARGS; i++) {
        cs_buf_printf(&b, "w%d ", i);
    }
    cs_buf_append(&b, "\r\n", 2);
    assert_int_equal(cs_resp_parse(&r, b.data, b.len, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(cmd.argc, CS_RESP_MAX_ARGS);
    cs_buf_reset(&b);
    for (i = 0; i <= CS_RESP_MAX_ARGS; i++) {
        cs_buf_printf(&b, "w%d ", i);
    }
    cs_buf_append(&b, "\r\n", 2);
    expect_error(b.data, b.len, CS_RESP_BULK_LEN_DEFAULT, "too many arguments");
    cs_resp_cmd_free(&cmd);
    cs_buf_free(&b);
}

static void test_inline_limits(void **state)
{
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    cs_buf_t b;
    size_t used;

    (void)state;
    cs_buf_init(&b);
    cs_resp_cmd_init(&cmd);
    cs_resp_reader_init(&r, CS_RESP_BULK_LEN_DEFAULT);
    /* one byte short of the limit, no newline yet: need more */
    cs_buf_append(&b, "ECHO ", 5);
    while (b.len < CS_RESP_INLINE_MAX - 1) {
        cs_buf_append(&b, "x", 1);
    }
    assert_int_equal(cs_resp_parse(&r, b.data, b.len, &cmd, &used),
                     CS_RESP_NEED_MORE);
    /* the newline as the last allowed byte: accepted */
    cs_buf_append(&b, "\n", 1);
    assert_int_equal(b.len, CS_RESP_INLINE_MAX);
    assert_int_equal(cs_resp_parse(&r, b.data, b.len, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(cmd.argv[1].len, CS_RESP_INLINE_MAX - 6);
    /* the limit reached without a newline: refused */
    b.data[b.len - 1] = 'x';
    expect_error(b.data, b.len, CS_RESP_BULK_LEN_DEFAULT,
                 "too big inline request");
    /* a newline beyond the limit: refused too */
    cs_buf_append(&b, "\r\n", 2);
    expect_error(b.data, b.len, CS_RESP_BULK_LEN_DEFAULT,
                 "too big inline request");
    cs_resp_cmd_free(&cmd);
    cs_buf_free(&b);
}

static void test_unbalanced_quotes(void **state)
{
    (void)state;
    EXPECT_ERROR("ECHO \"abc\r\n", "unbalanced quotes");
    EXPECT_ERROR("ECHO \"abc\"def\r\n", "unbalanced quotes");
    EXPECT_ERROR("ECHO 'abc\r\n", "unbalanced quotes");
    EXPECT_ERROR("ECHO 'a'b\r\n", "unbalanced quotes");
    EXPECT_ERROR("ECHO \"a\\\"\r\n", "unbalanced quotes");
}

/* An error in the middle of a pipeline: the commands before it are
 * delivered, then the error, and nothing after. */
static void test_error_after_commands(void **state)
{
    static const char in[] = "PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n"
                             "PING\r\n";
    feeder_t f;

    (void)state;
    feeder_init(&f, CS_RESP_BULK_LEN_DEFAULT);
    feed(&f, in, sizeof(in) - 1);
    assert_int_equal(f.commands, 2);
    assert_int_equal(f.errors, 1);
    feed(&f, "PING\r\n", 6);
    assert_int_equal(f.commands, 2);
    assert_int_equal(f.errors, 2);
    feeder_free(&f);
}

/* Random bytes (biased towards protocol characters) never crash the
 * reader, never report more bytes than given, and every outcome is one
 * of the three. */
static void test_random_garbage(void **state)
{
    static const char alphabet[] = "*$\r\n0123456789-+ \"'\\xaZ";
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    char buf[96];
    size_t len, used, i;
    int round, st, k;

    (void)state;
    cs_resp_cmd_init(&cmd);
    rng_state = 4242;
    for (round = 0; round < 20000; round++) {
        len = rng() % sizeof(buf);
        for (i = 0; i < len; i++) {
            buf[i] = rng() % 4 ? alphabet[rng() % (sizeof(alphabet) - 1)]
                               : (char)(rng() & 0xff);
        }
        cs_resp_reader_init(&r, 64);
        for (k = 0, i = 0; k < 100 && i <= len; k++) {
            st = cs_resp_parse(&r, buf + i, len - i, &cmd, &used);
            assert_true(st == CS_RESP_COMMAND || st == CS_RESP_NEED_MORE ||
                        st == CS_RESP_PROTOCOL_ERROR);
            assert_true(used <= len - i);
            i += used;
            if (st != CS_RESP_COMMAND) {
                break;
            }
        }
    }
    cs_resp_cmd_free(&cmd);
}

static void test_arg_is(void **state)
{
    cs_resp_arg_t a = {"ThReShOlD", 9};
    cs_resp_arg_t b = {"threshold!", 9};

    (void)state;
    assert_true(cs_resp_arg_is(&a, "threshold"));
    assert_true(cs_resp_arg_is(&a, "THRESHOLD"));
    assert_true(cs_resp_arg_is(&b, "threshold"));
    assert_false(cs_resp_arg_is(&a, "thresholds"));
    assert_false(cs_resp_arg_is(&a, "ttl"));
}

/* ---- writers ---------------------------------------------------- */

#define ASSERT_BUF(b, lit)                                                     \
    do {                                                                       \
        assert_int_equal((b).len, sizeof(lit) - 1);                            \
        assert_memory_equal((b).data, lit, sizeof(lit) - 1);                   \
        cs_buf_reset(&(b));                                                    \
    } while (0)

static void test_writers(void **state)
{
    cs_buf_t b;

    (void)state;
    cs_buf_init(&b);
    cs_resp_add_simple(&b, "OK");
    ASSERT_BUF(b, "+OK\r\n");
    cs_resp_add_simple(&b, "a\r\nb");
    ASSERT_BUF(b, "+a  b\r\n");
    cs_resp_add_error(&b, "ERR bad\nthing");
    ASSERT_BUF(b, "-ERR bad thing\r\n");
    cs_resp_add_errorf(&b, "ERR unknown command '%s'", "x");
    ASSERT_BUF(b, "-ERR unknown command 'x'\r\n");
    cs_resp_add_integer(&b, 0);
    ASSERT_BUF(b, ":0\r\n");
    cs_resp_add_integer(&b, -42);
    ASSERT_BUF(b, ":-42\r\n");
    cs_resp_add_integer(&b, LLONG_MAX);
    ASSERT_BUF(b, ":9223372036854775807\r\n");
    cs_resp_add_integer(&b, LLONG_MIN);
    ASSERT_BUF(b, ":-9223372036854775808\r\n");
    cs_resp_add_bulk(&b, "a\0\r\nb", 5);
    ASSERT_BUF(b, "$5\r\na\0\r\nb\r\n");
    cs_resp_add_bulk(&b, "", 0);
    ASSERT_BUF(b, "$0\r\n\r\n");
    cs_resp_add_bulk_str(&b, "hello");
    ASSERT_BUF(b, "$5\r\nhello\r\n");
    cs_resp_add_nil(&b);
    ASSERT_BUF(b, "$-1\r\n");
    cs_resp_add_array(&b, 3);
    ASSERT_BUF(b, "*3\r\n");
    cs_resp_add_array(&b, 0);
    ASSERT_BUF(b, "*0\r\n");
    cs_resp_add_double(&b, 0.97126, 4);
    ASSERT_BUF(b, "$6\r\n0.9713\r\n");
    cs_resp_add_double(&b, 1.0, 4);
    ASSERT_BUF(b, "$6\r\n1.0000\r\n");
    cs_resp_add_double(&b, 0.1, -1);
    ASSERT_BUF(b, "$19\r\n0.10000000000000001\r\n");
    cs_resp_add_double(&b, 1e300, 4);
    assert_true(b.len > 300);
    cs_buf_free(&b);
}

/* A reply built from writers parses back as what was written (a reply
 * array of bulk strings has the shape of a command). */
static void test_writer_roundtrip(void **state)
{
    cs_resp_reader_t r;
    cs_resp_cmd_t cmd;
    cs_buf_t b;
    size_t used;

    (void)state;
    cs_buf_init(&b);
    cs_resp_cmd_init(&cmd);
    cs_resp_reader_init(&r, CS_RESP_BULK_LEN_DEFAULT);
    cs_resp_add_array(&b, 3);
    cs_resp_add_bulk(&b, "pay\r\nload", 9);
    cs_resp_add_double(&b, 0.5, 4);
    cs_resp_add_bulk_str(&b, "");
    assert_int_equal(cs_resp_parse(&r, b.data, b.len, &cmd, &used),
                     CS_RESP_COMMAND);
    assert_int_equal(used, b.len);
    assert_int_equal(cmd.argc, 3);
    assert_memory_equal(cmd.argv[0].ptr, "pay\r\nload", 9);
    assert_memory_equal(cmd.argv[1].ptr, "0.5000", 6);
    assert_int_equal(cmd.argv[2].len, 0);
    cs_resp_cmd_free(&cmd);
    cs_buf_free(&b);
}

/* The counting allocator balances to zero after every test above. */
static void test_memory_balanced(void **state)
{
    cs_buf_t b;
    void *p;

    (void)state;
    assert_int_equal(cs_mem_used(), 0);
    cs_buf_init(&b);
    assert_non_null(b.data);
    assert_int_equal(b.data[0], '\0');
    cs_buf_append(&b, "abc", 3);
    assert_true(cs_mem_used() >= 4);
    cs_buf_consume(&b, 1);
    assert_string_equal(b.data, "bc");
    cs_buf_free(&b);
    p = cs_realloc(NULL, 10);
    p = cs_realloc(p, 1000);
    assert_int_equal(cs_mem_used(), 1000);
    cs_free(p);
    p = cs_strndup("hello", 3);
    assert_string_equal(p, "hel");
    cs_free(p);
    assert_int_equal(cs_mem_used(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_command),
        cmocka_unit_test(test_inline_commands),
        cmocka_unit_test(test_empty_frames_skipped),
        cmocka_unit_test(test_every_prefix_needs_more),
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_random_splits),
        cmocka_unit_test(test_pipeline_1000),
        cmocka_unit_test(test_bad_array_headers),
        cmocka_unit_test(test_bad_bulks),
        cmocka_unit_test(test_bulk_limit),
        cmocka_unit_test(test_max_args),
        cmocka_unit_test(test_inline_limits),
        cmocka_unit_test(test_unbalanced_quotes),
        cmocka_unit_test(test_error_after_commands),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_arg_is),
        cmocka_unit_test(test_writers),
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_memory_balanced),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
