/* ark-cached: the RESP reader and reply writers (see cs_resp.h).
 *
 * The reader never keeps partial state between calls: given the bytes
 * received so far, it parses from the first byte each time and either
 * finds a whole command, finds that bytes are missing, or finds an error.
 * Re-parsing is cheap because an array command is walked by its lengths
 * (a few header lines, never a scan of the data) and an inline line is at
 * most CS_RESP_INLINE_MAX bytes. Errors are detected as early as the
 * bytes allow: "*99999\r\n" fails at once, not when 99999 arguments have
 * arrived.
 *
 * Worked example, two pipelined commands arriving in three reads:
 *
 *   read 1: "*1\r\n$4\r\nPI"     -> NEED_MORE (bulk of 4 has 2 bytes)
 *   read 2: "NG\r\nPI"           buffer "*1\r\n$4\r\nPING\r\nPI"
 *                                -> COMMAND PING, consumed 14
 *                                the caller drops 14 bytes: "PI"
 *                                -> NEED_MORE (no newline yet)
 *   read 3: "NG\r\n"             buffer "PING\r\n" -> COMMAND (inline)
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cs_resp.h"

/* Outcome of reading one "<digits>\r\n" length line. */
typedef enum { LEN_OK, LEN_MORE, LEN_BAD } len_status_t;

void cs_resp_reader_init(cs_resp_reader_t *r, size_t max_bulk_len)
{
    r->max_bulk_len = max_bulk_len;
    r->failed = 0;
    r->errstr[0] = '\0';
}

void cs_resp_cmd_init(cs_resp_cmd_t *cmd)
{
    cmd->argc = 0;
    cmd->is_inline = 0;
    cs_buf_init(&cmd->scratch);
}

void cs_resp_cmd_free(cs_resp_cmd_t *cmd)
{
    cs_buf_free(&cmd->scratch);
    cmd->argc = 0;
}

static cs_resp_status_t fail(cs_resp_reader_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static cs_resp_status_t fail(cs_resp_reader_t *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->errstr, sizeof(r->errstr), fmt, ap);
    va_end(ap);
    r->failed = 1;
    return CS_RESP_PROTOCOL_ERROR;
}

/* Reads an optional '-' and 1..CS_RESP_LEN_DIGITS_MAX digits followed
 * by CRLF, starting at buf[*pos]; on LEN_OK *pos is past the LF. */
static len_status_t read_len(const char *buf, size_t len, size_t *pos,
                             long long *out)
{
    size_t i = *pos;
    int neg = 0, digits = 0;
    long long v = 0;

    if (i < len && buf[i] == '-') {
        neg = 1;
        i++;
    }
    for (;; i++) {
        if (i >= len) {
            return LEN_MORE;
        }
        if (buf[i] >= '0' && buf[i] <= '9') {
            if (++digits > CS_RESP_LEN_DIGITS_MAX) {
                return LEN_BAD;
            }
            v = v * 10 + (buf[i] - '0');
            continue;
        }
        if (buf[i] != '\r' || digits == 0) {
            return LEN_BAD;
        }
        if (i + 1 >= len) {
            return LEN_MORE;
        }
        if (buf[i + 1] != '\n') {
            return LEN_BAD;
        }
        *pos = i + 2;
        *out = neg ? -v : v;
        return LEN_OK;
    }
}

/* Shows an unexpected byte readably in an error sentence. */
static const char *show_byte(char c, char *tmp, size_t tmplen)
{
    unsigned char u = (unsigned char)c;

    if (u >= 0x21 && u < 0x7f) {
        snprintf(tmp, tmplen, "'%c'", c);
    }
    else {
        snprintf(tmp, tmplen, "byte 0x%02x", u);
    }
    return tmp;
}

/* buf starts with '*'. On CS_RESP_COMMAND cmd->argc may be 0 (an empty
 * array, to be skipped). */
static cs_resp_status_t parse_array(cs_resp_reader_t *r, const char *buf,
                                    size_t len, cs_resp_cmd_t *cmd,
                                    size_t *used)
{
    size_t pos = 1;
    long long count, blen;
    char tmp[16];
    int i;

    switch (read_len(buf, len, &pos, &count)) {
    case LEN_MORE:
        return CS_RESP_NEED_MORE;
    case LEN_BAD:
        return fail(r, "invalid multibulk length");
    case LEN_OK:
        break;
    }
    if (count == 0 || count == -1) {
        cmd->argc = 0;
        *used = pos;
        return CS_RESP_COMMAND;
    }
    if (count < 0) {
        return fail(r, "invalid multibulk length");
    }
    if (count > CS_RESP_MAX_ARGS) {
        return fail(r, "too many arguments (%lld, at most %d)", count,
                    CS_RESP_MAX_ARGS);
    }
    for (i = 0; i < count; i++) {
        if (pos >= len) {
            return CS_RESP_NEED_MORE;
        }
        if (buf[pos] != '$') {
            return fail(r, "expected '$', got %s",
                        show_byte(buf[pos], tmp, sizeof(tmp)));
        }
        pos++;
        switch (read_len(buf, len, &pos, &blen)) {
        case LEN_MORE:
            return CS_RESP_NEED_MORE;
        case LEN_BAD:
            return fail(r, "invalid bulk length");
        case LEN_OK:
            break;
        }
        if (blen < 0) {
            return fail(r, "invalid bulk length");
        }
        if ((unsigned long long)blen > r->max_bulk_len) {
            return fail(r, "bulk length %lld above max_bulk_len %zu", blen,
                        r->max_bulk_len);
        }
        if (len - pos < (size_t)blen + 2) {
            return CS_RESP_NEED_MORE;
        }
        if (buf[pos + blen] != '\r' || buf[pos + blen + 1] != '\n') {
            return fail(r, "expected CRLF after %lld bytes of bulk data", blen);
        }
        cmd->argv[i].ptr = buf + pos;
        cmd->argv[i].len = (size_t)blen;
        pos += (size_t)blen + 2;
    }
    cmd->argc = (int)count;
    *used = pos;
    return CS_RESP_COMMAND;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Reads one double-quoted word starting after the opening quote; *p
 * ends past the closing quote. Returns 0, or -1 when unbalanced. */
static int read_double_quoted(const char **p, const char *end, cs_buf_t *out)
{
    const char *s = *p;
    char c;

    while (s < end) {
        c = *s;
        if (c == '"') {
            if (s + 1 < end && !is_blank(s[1])) {
                return -1;
            }
            *p = s + 1;
            return 0;
        }
        if (c == '\\' && s + 1 < end) {
            s++;
            switch (*s) {
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'b':
                c = '\b';
                break;
            case 'a':
                c = '\a';
                break;
            case 'x':
                if (s + 2 < end && hex_value(s[1]) >= 0 &&
                    hex_value(s[2]) >= 0) {
                    c = (char)(hex_value(s[1]) * 16 + hex_value(s[2]));
                    s += 2;
                }
                else {
                    c = 'x';
                }
                break;
            default:
                c = *s;
                break;
            }
        }
        cs_buf_append(out, &c, 1);
        s++;
    }
    return -1;
}

/* Same for single quotes, where only \' is an escape. */
static int read_single_quoted(const char **p, const char *end, cs_buf_t *out)
{
    const char *s = *p;

    while (s < end) {
        if (*s == '\'') {
            if (s + 1 < end && !is_blank(s[1])) {
                return -1;
            }
            *p = s + 1;
            return 0;
        }
        if (*s == '\\' && s + 1 < end && s[1] == '\'') {
            s++;
        }
        cs_buf_append(out, s, 1);
        s++;
    }
    return -1;
}

/* Splits an inline line (terminator removed) into cmd->argv. */
static cs_resp_status_t split_inline(cs_resp_reader_t *r, const char *line,
                                     size_t n, cs_resp_cmd_t *cmd)
{
    const char *p = line, *end = line + n;
    size_t starts[CS_RESP_MAX_ARGS];
    int argc = 0, i, rc;

    cs_buf_reset(&cmd->scratch);
    for (;;) {
        while (p < end && is_blank(*p)) {
            p++;
        }
        if (p == end) {
            break;
        }
        if (argc == CS_RESP_MAX_ARGS) {
            return fail(r, "too many arguments (at most %d)", CS_RESP_MAX_ARGS);
        }
        starts[argc] = cmd->scratch.len;
        if (*p == '"' || *p == '\'') {
            p++;
            rc = p[-1] == '"' ? read_double_quoted(&p, end, &cmd->scratch)
                              : read_single_quoted(&p, end, &cmd->scratch);
            if (rc < 0) {
                return fail(r, "unbalanced quotes in request");
            }
        }
        else {
            const char *w = p;

            while (p < end && !is_blank(*p)) {
                p++;
            }
            cs_buf_append(&cmd->scratch, w, (size_t)(p - w));
        }
        cmd->argv[argc].len = cmd->scratch.len - starts[argc];
        argc++;
    }
    /* The scratch buffer may have moved while growing: point last. */
    for (i = 0; i < argc; i++) {
        cmd->argv[i].ptr = cmd->scratch.data + starts[i];
    }
    cmd->argc = argc;
    return CS_RESP_COMMAND;
}

static cs_resp_status_t parse_inline(cs_resp_reader_t *r, const char *buf,
                                     size_t len, cs_resp_cmd_t *cmd,
                                     size_t *used)
{
    size_t window = len < CS_RESP_INLINE_MAX ? len : CS_RESP_INLINE_MAX;
    const char *nl = memchr(buf, '\n', window);
    size_t n;

    if (nl == NULL) {
        if (len >= CS_RESP_INLINE_MAX) {
            return fail(r, "too big inline request (more than %d bytes)",
                        CS_RESP_INLINE_MAX);
        }
        return CS_RESP_NEED_MORE;
    }
    n = (size_t)(nl - buf);
    *used = n + 1;
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    return split_inline(r, buf, n, cmd);
}

cs_resp_status_t cs_resp_parse(cs_resp_reader_t *r, const char *buf, size_t len,
                               cs_resp_cmd_t *cmd, size_t *consumed)
{
    size_t pos = 0, used;
    cs_resp_status_t st;

    *consumed = 0;
    cmd->argc = 0;
    if (r->failed) {
        return CS_RESP_PROTOCOL_ERROR;
    }
    while (pos < len) {
        used = 0;
        cmd->is_inline = buf[pos] != '*';
        st = cmd->is_inline ? parse_inline(r, buf + pos, len - pos, cmd, &used)
                            : parse_array(r, buf + pos, len - pos, cmd, &used);
        if (st != CS_RESP_COMMAND) {
            *consumed = st == CS_RESP_NEED_MORE ? pos : 0;
            return st;
        }
        pos += used;
        if (cmd->argc > 0) {
            *consumed = pos;
            return CS_RESP_COMMAND;
        }
    }
    *consumed = pos;
    return CS_RESP_NEED_MORE;
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int cs_resp_arg_is(const cs_resp_arg_t *a, const char *word)
{
    size_t i, n = strlen(word);

    if (a->len != n) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (ascii_lower(a->ptr[i]) != ascii_lower(word[i])) {
            return 0;
        }
    }
    return 1;
}

/* Writes v in decimal into dst (room for 21 bytes); returns length. */
static size_t ll_to_str(char *dst, long long v)
{
    char tmp[24];
    unsigned long long u;
    size_t n = 0, i;

    u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    i = 0;
    if (v < 0) {
        dst[i++] = '-';
    }
    while (n > 0) {
        dst[i++] = tmp[--n];
    }
    return i;
}

/* Appends "<type><v>\r\n". */
static void add_header(cs_buf_t *out, char type, long long v)
{
    char line[32];
    size_t n;

    line[0] = type;
    n = 1 + ll_to_str(line + 1, v);
    line[n++] = '\r';
    line[n++] = '\n';
    cs_buf_append(out, line, n);
}

/* Appends one line, with CR and LF replaced by spaces. */
static void add_line(cs_buf_t *out, char type, const char *s)
{
    size_t start, i;

    cs_buf_append(out, &type, 1);
    start = out->len;
    cs_buf_append(out, s, strlen(s));
    for (i = start; i < out->len; i++) {
        if (out->data[i] == '\r' || out->data[i] == '\n') {
            out->data[i] = ' ';
        }
    }
    cs_buf_append(out, "\r\n", 2);
}

void cs_resp_add_simple(cs_buf_t *out, const char *s)
{
    add_line(out, '+', s);
}

void cs_resp_add_error(cs_buf_t *out, const char *msg)
{
    add_line(out, '-', msg);
}

void cs_resp_add_errorf(cs_buf_t *out, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    add_line(out, '-', msg);
}

void cs_resp_add_integer(cs_buf_t *out, long long v)
{
    add_header(out, ':', v);
}

void cs_resp_add_bulk(cs_buf_t *out, const void *p, size_t n)
{
    add_header(out, '$', (long long)n);
    cs_buf_append(out, p, n);
    cs_buf_append(out, "\r\n", 2);
}

void cs_resp_add_bulk_str(cs_buf_t *out, const char *s)
{
    cs_resp_add_bulk(out, s, strlen(s));
}

void cs_resp_add_nil(cs_buf_t *out)
{
    cs_buf_append(out, "$-1\r\n", 5);
}

void cs_resp_add_array(cs_buf_t *out, size_t n)
{
    add_header(out, '*', (long long)n);
}

void cs_resp_add_double(cs_buf_t *out, double v, int decimals)
{
    char num[400]; /* "%.17f" of DBL_MAX is 327 bytes */
    int n;

    if (decimals >= 0) {
        n = snprintf(num, sizeof(num), "%.*f", decimals > 17 ? 17 : decimals,
                     v);
    }
    else {
        n = snprintf(num, sizeof(num), "%.17g", v);
    }
    if (n < 0) {
        n = 0;
    }
    if ((size_t)n >= sizeof(num)) {
        n = (int)sizeof(num) - 1;
    }
    cs_resp_add_bulk(out, num, (size_t)n);
}
