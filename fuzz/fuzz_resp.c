/* Fuzz target: the RESP reader of ark-cached (cachesvc/cs_resp.h).
 *
 * The input is what a client sends on one connection. It is fed the way
 * the server feeds it: bytes arrive in pieces, each piece is appended to
 * what is left of the previous ones, complete commands are taken off the
 * front, and a protocol error ends the connection. It is fed whole, byte
 * by byte, and in pieces whose sizes come from the input itself; the
 * three must see the same commands (every argument, binary safe), then
 * end the same way (the same error sentence, or waiting for more). The
 * pending bytes are always kept in a heap block of exactly their size,
 * so that ASan catches any read past them. Checked for every command:
 * argc within 1..CS_RESP_MAX_ARGS, consumed within the buffer, array
 * arguments pointing into the consumed bytes and inline ones into the
 * command's scratch buffer; after an error, the reader stays failed. A
 * second whole run uses a tiny max_bulk_len, so the limit is hit too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_common.h"
#include "cs_resp.h"
#include "fuzz_common.h"

/* One connection. */
typedef struct {
    cs_resp_reader_t reader;
    cs_resp_cmd_t cmd;
    char *pending;           /* exactly pending_len bytes (malloc) */
    size_t pending_len;
    cs_buf_t transcript;     /* "argc{len:bytes}...\n" per command */
    int failed;
} conn_t;

static void conn_init(conn_t *c, size_t max_bulk)
{
    memset(c, 0, sizeof(*c));
    cs_resp_reader_init(&c->reader, max_bulk);
    cs_resp_cmd_init(&c->cmd);
    cs_buf_init(&c->transcript);
}

static void conn_free(conn_t *c)
{
    cs_resp_cmd_free(&c->cmd);
    cs_buf_free(&c->transcript);
    free(c->pending);
}

static void check_command(const conn_t *c, const char *buf, size_t used)
{
    const cs_resp_cmd_t *cmd = &c->cmd;
    int i;

    FUZZ_CHECK(cmd->argc >= 1 && cmd->argc <= CS_RESP_MAX_ARGS);
    FUZZ_CHECK(used > 0);
    for (i = 0; i < cmd->argc; i++) {
        const cs_resp_arg_t *a = &cmd->argv[i];

        if (cmd->is_inline) {
            FUZZ_CHECK(a->ptr >= cmd->scratch.data
                       && a->ptr + a->len
                          <= cmd->scratch.data + cmd->scratch.len);
        }
        else {
            FUZZ_CHECK(a->len <= c->reader.max_bulk_len);
            FUZZ_CHECK(a->ptr >= buf && a->ptr + a->len <= buf + used);
        }
    }
}

static void transcribe(conn_t *c)
{
    int i;

    cs_buf_printf(&c->transcript, "%d", c->cmd.argc);
    for (i = 0; i < c->cmd.argc; i++) {
        cs_buf_printf(&c->transcript, "{%zu:", c->cmd.argv[i].len);
        cs_buf_append(&c->transcript, c->cmd.argv[i].ptr,
                      c->cmd.argv[i].len);
        cs_buf_append(&c->transcript, "}", 1);
    }
    cs_buf_append(&c->transcript, "\n", 1);
}

/* One read of n bytes: appended, then every complete command taken. */
static void conn_read(conn_t *c, const char *data, size_t n)
{
    size_t pos = 0, used;
    cs_resp_status_t st;
    char *grown;

    if (c->failed) {
        return;              /* the server closed the connection */
    }
    grown = malloc(c->pending_len + n ? c->pending_len + n : 1);
    FUZZ_CHECK(grown != NULL);
    if (c->pending_len) {
        memcpy(grown, c->pending, c->pending_len);
    }
    if (n) {
        memcpy(grown + c->pending_len, data, n);
    }
    free(c->pending);
    c->pending = grown;
    c->pending_len += n;
    for (;;) {
        used = (size_t)-1;
        st = cs_resp_parse(&c->reader, c->pending + pos,
                           c->pending_len - pos, &c->cmd, &used);
        FUZZ_CHECK(used <= c->pending_len - pos);
        if (st == CS_RESP_COMMAND) {
            check_command(c, c->pending + pos, used);
            transcribe(c);
            pos += used;
            continue;
        }
        pos += used;
        if (st == CS_RESP_PROTOCOL_ERROR) {
            FUZZ_CHECK(c->reader.failed && c->reader.errstr[0]);
            FUZZ_CHECK(cs_resp_parse(&c->reader, "PING\r\n", 6, &c->cmd,
                                     &used) == CS_RESP_PROTOCOL_ERROR);
            c->failed = 1;
            cs_buf_printf(&c->transcript, "error: %s\n", c->reader.errstr);
            return;
        }
        FUZZ_CHECK(st == CS_RESP_NEED_MORE);
        break;
    }
    /* drop what was taken: the rest moves to an exact-size block */
    if (pos) {
        size_t rest = c->pending_len - pos;

        grown = malloc(rest ? rest : 1);
        FUZZ_CHECK(grown != NULL);
        if (rest) {
            memcpy(grown, c->pending + pos, rest);
        }
        free(c->pending);
        c->pending = grown;
        c->pending_len = rest;
    }
}

/* Feeds data[0, size) in pieces of sizes[k % nsizes] % 23 bytes, or
 * whole when nsizes is 0. */
static void conn_feed(conn_t *c, const uint8_t *data, size_t size,
                      const uint8_t *sizes, size_t nsizes)
{
    size_t at = 0, k = 0;

    if (!nsizes) {
        conn_read(c, (const char *)data, size);
        return;
    }
    while (at < size && !c->failed) {
        size_t n = sizes[k++ % nsizes] % 23;

        if (n > size - at || k > 4 * size) {
            n = size - at;
        }
        conn_read(c, (const char *)data + at, n);
        at += n;
    }
}

static void same(const conn_t *a, const conn_t *b)
{
    FUZZ_CHECK(a->failed == b->failed);
    FUZZ_CHECK(a->transcript.len == b->transcript.len);
    FUZZ_CHECK(!memcmp(a->transcript.data, b->transcript.data,
                       a->transcript.len));
    FUZZ_CHECK(a->failed || a->pending_len == b->pending_len);
}

void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p)
{
    static const uint8_t one = 1;
    conn_t whole, bytes, pieces, tiny;

    conn_init(&whole, CS_RESP_BULK_LEN_DEFAULT);
    conn_init(&bytes, CS_RESP_BULK_LEN_DEFAULT);
    conn_init(&pieces, CS_RESP_BULK_LEN_DEFAULT);
    conn_init(&tiny, 16);
    conn_feed(&whole, data, size, NULL, 0);
    conn_feed(&bytes, data, size, &one, 1);
    conn_feed(&pieces, data, size, data, size);
    conn_feed(&tiny, data, size, NULL, 0);
    same(&whole, &bytes);
    same(&whole, &pieces);
    conn_free(&whole);
    conn_free(&bytes);
    conn_free(&pieces);
    conn_free(&tiny);
}
