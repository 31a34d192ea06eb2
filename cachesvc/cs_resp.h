/* ark-cached: the RESP protocol, both directions.
 *
 * Reading: cs_resp_parse() is a pure function of the bytes it is given
 * (plus the reader's limits and its sticky error). It looks at the start
 * of a buffer and answers with one of three outcomes:
 *
 *   CS_RESP_COMMAND         one complete command: cmd->argv holds its
 *                           arguments, *consumed its length in bytes;
 *   CS_RESP_NEED_MORE       no complete command yet: read more bytes,
 *                           append them, call again with the same start
 *                           (*consumed may be > 0 when empty frames such
 *                           as "\r\n" or "*0\r\n" were skipped: the
 *                           caller may drop those bytes);
 *   CS_RESP_PROTOCOL_ERROR  the bytes are not RESP or break a limit; the
 *                           reader remembers it (every later call fails
 *                           the same way) and the caller replies
 *                           "-ERR Protocol error: <reader errstr>" and
 *                           closes the connection.
 *
 * Two request forms are accepted, as Redis does: arrays of bulk strings
 * ("*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n", what hiredis and redis-cli send)
 * and inline lines ("PING\r\n" or "PING\n", what telnet sends; words are
 * split at blanks, "double quotes" with \n \r \t \b \a \\ \" \xHH escapes
 * and 'single quotes' with \' group words).
 *
 * Ownership: the arguments of an array command point into the caller's
 * buffer (no copy), those of an inline command into cmd->scratch; both
 * are valid until the buffer is changed or cmd is parsed into again.
 *
 * Writing: the cs_resp_add_* functions append one reply element to a
 * cs_buf_t. Simple strings and errors are one line: any CR or LF in them
 * is replaced by a space.
 *
 * Thread safety: none needed; a reader and a cmd belong to one
 * connection or thread.
 */
#ifndef CS_RESP_H
#define CS_RESP_H

#include <stddef.h>

#include "cs_common.h"

/* Most arguments in one command. Our longest command, ARK.STORE with
 * TTL, has 6; 64 leaves room for future options and bounds cmd->argv. */
#define CS_RESP_MAX_ARGS 64

/* Longest inline command line, newline included. Inline commands are
 * typed by people; anything longer is a client speaking another
 * protocol. */
#define CS_RESP_INLINE_MAX (64 * 1024)

/* Most digits in an array count or a bulk length. 18 digits always fit
 * a long long, so parsing cannot overflow; real lengths are far below
 * (see CS_RESP_MAX_ARGS and max_bulk_len). */
#define CS_RESP_LEN_DIGITS_MAX 18

/* Default for the max_bulk_len setting: the largest single argument
 * (namespace, text or payload). Cached LLM answers are kilobytes; 8 MiB
 * covers the largest plausible answer with tool calls. */
#define CS_RESP_BULK_LEN_DEFAULT ((size_t)8 * 1024 * 1024)

/* Room for the reader's error sentence. */
#define CS_RESP_ERR_MAX 128

typedef enum {
    CS_RESP_COMMAND = 0,
    CS_RESP_NEED_MORE = 1,
    CS_RESP_PROTOCOL_ERROR = 2
} cs_resp_status_t;

typedef struct cs_resp_reader {
    size_t max_bulk_len;          /* longest argument accepted */
    int failed;                   /* sticky: set by the first error */
    char errstr[CS_RESP_ERR_MAX]; /* e.g. "invalid bulk length" */
} cs_resp_reader_t;

typedef struct cs_resp_arg {
    const char *ptr; /* binary safe, not NUL-terminated */
    size_t len;
} cs_resp_arg_t;

typedef struct cs_resp_cmd {
    int argc;      /* >= 1 for CS_RESP_COMMAND */
    int is_inline; /* 1 if it came as an inline line */
    cs_resp_arg_t argv[CS_RESP_MAX_ARGS];
    cs_buf_t scratch; /* unescaped inline arguments */
} cs_resp_cmd_t;

/* Prepares a reader accepting arguments up to max_bulk_len bytes. */
void cs_resp_reader_init(cs_resp_reader_t *r, size_t max_bulk_len);

/* Prepares / releases a command (its scratch buffer). */
void cs_resp_cmd_init(cs_resp_cmd_t *cmd);
void cs_resp_cmd_free(cs_resp_cmd_t *cmd);

/* Parses one command at the start of buf[0..len). See the top of this
 * file for the three outcomes. buf may be NULL when len is 0. */
cs_resp_status_t cs_resp_parse(cs_resp_reader_t *r, const char *buf, size_t len,
                               cs_resp_cmd_t *cmd, size_t *consumed);

/* Case-insensitive comparison of an argument with a NUL-terminated
 * ASCII word; returns 1 when equal. */
int cs_resp_arg_is(const cs_resp_arg_t *a, const char *word);

/* Reply writers. */
void cs_resp_add_simple(cs_buf_t *out, const char *s);  /* +s */
void cs_resp_add_error(cs_buf_t *out, const char *msg); /* -msg */
void cs_resp_add_errorf(cs_buf_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cs_resp_add_integer(cs_buf_t *out, long long v); /* :v */
void cs_resp_add_bulk(cs_buf_t *out, const void *p, size_t n);
void cs_resp_add_bulk_str(cs_buf_t *out, const char *s);
void cs_resp_add_nil(cs_buf_t *out);             /* $-1 */
void cs_resp_add_array(cs_buf_t *out, size_t n); /* *n */
/* A double as a bulk string with the given decimals ("%.*f"), or the
 * shortest exact form ("%.17g") when decimals < 0. */
void cs_resp_add_double(cs_buf_t *out, double v, int decimals);

#endif /* CS_RESP_H */
