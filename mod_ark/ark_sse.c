/* Incremental Server-Sent Events parser. See ark_sse.h.
 *
 * Bytes go into `line` until a line ending; each complete line is then
 * interpreted (data appended to `data`, event name kept in `name`), and a
 * blank line hands the collected event to the callback. A CR at the very
 * end of a buffer sets `after_cr` so that an LF starting the next buffer
 * is not taken for a second (blank) line.
 *
 * A line complete within the fed bytes is interpreted where it lies, and
 * the first data line of an event, so found, is not copied either: the
 * event's data points into the fed bytes (`inplace`) until a second data
 * line arrives or the fed bytes end before the event does; then it is
 * copied into `data`. The usual upstream event, one "data: ..." line and
 * a blank line in the same read, is thus handed over without a copy, and
 * with `wire` set when its bytes are exactly "data: " data "\n\n".
 */
#include <stdlib.h>
#include <string.h>

#include "ark_sse.h"

#define ARK_SSE_DEFAULT_MAX (1024 * 1024)

typedef struct {
    char *buf;
    apr_size_t len, cap;
} sse_buf_t;

struct ark_sse_parser_t {
    sse_buf_t line;
    sse_buf_t data;
    sse_buf_t name;
    apr_size_t max_event;
    const char *inplace;  /* the event's only data line, in the fed bytes */
    apr_size_t inplace_len;
    int inplace_wire;     /* that line was "data: " value, ended by LF */
    int after_cr;
    int has_data;        /* at least one data line in this event */
    int in_event;        /* any field line seen since the last dispatch */
    apr_status_t error;  /* sticky */
};

static apr_status_t sse_cleanup(void *d)
{
    ark_sse_parser_t *sp = d;

    free(sp->line.buf);
    free(sp->data.buf);
    free(sp->name.buf);
    return APR_SUCCESS;
}

ark_sse_parser_t *ark_sse_parser_make(apr_pool_t *p, apr_size_t max_event)
{
    ark_sse_parser_t *sp = apr_pcalloc(p, sizeof(*sp));

    sp->max_event = max_event ? max_event : ARK_SSE_DEFAULT_MAX;
    apr_pool_cleanup_register(p, sp, sse_cleanup, apr_pool_cleanup_null);
    return sp;
}

/* Appends n bytes, keeping the buffer NUL-terminated. The limit is
 * checked on every append, not only when the buffer grows, so that the
 * outcome does not depend on how the stream was split. */
static apr_status_t buf_add(sse_buf_t *b, const char *s, apr_size_t n,
                            apr_size_t limit)
{
    if (n > limit || b->len > limit - n) {
        return APR_ENOSPC;
    }
    if (b->len + n + 1 > b->cap) {
        apr_size_t cap = b->cap ? b->cap : 256;
        char *nb;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        nb = realloc(b->buf, cap);
        if (!nb) {
            return APR_ENOMEM;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return APR_SUCCESS;
}

/* Copies data kept in place into the data buffer (with the LF that
 * follows every data line there). */
static apr_status_t inplace_copy(ark_sse_parser_t *sp)
{
    apr_status_t rv;

    if (!sp->inplace) {
        return APR_SUCCESS;
    }
    rv = buf_add(&sp->data, sp->inplace, sp->inplace_len, sp->max_event);
    if (rv == APR_SUCCESS) {
        rv = buf_add(&sp->data, "\n", 1, sp->max_event);
    }
    sp->inplace = NULL;
    return rv;
}

static void event_reset(ark_sse_parser_t *sp)
{
    sp->inplace = NULL;
    sp->data.len = 0;
    sp->name.len = 0;
    sp->has_data = 0;
    sp->in_event = 0;
}

/* Hands over the event; blank is the blank line that ends it, in place
 * (its terminator at blank[0]) or NULL. */
static apr_status_t dispatch(ark_sse_parser_t *sp, const char *blank,
                             ark_sse_cb *cb, void *ctx)
{
    ark_sse_event_t ev;
    apr_status_t rv = APR_SUCCESS;

    if (sp->has_data) {
        ev.wire = NULL;
        if (sp->inplace) {
            ev.data = sp->inplace;
            ev.data_len = sp->inplace_len;
            /* "data: " value LF, then an LF blank line right after it */
            if (sp->inplace_wire && blank
                && blank == sp->inplace + sp->inplace_len + 1
                && blank[0] == '\n') {
                ev.wire = sp->inplace - 6;
            }
        }
        else {
            /* the data buffer ends with the LF added after the last
             * line */
            if (sp->data.len > 0) {
                sp->data.len--;
            }
            ev.data = sp->data.buf;
            ((char *)ev.data)[sp->data.len] = '\0';
            ev.data_len = sp->data.len;
        }
        ev.event = sp->name.len ? sp->name.buf : "";
        rv = cb(ctx, &ev);
    }
    event_reset(sp);
    return rv;
}

/* Interprets one line; in_place: it lies in the fed bytes, with its
 * terminator (CR or LF) at line[len]. */
static apr_status_t process_line(ark_sse_parser_t *sp, const char *line,
                                 apr_size_t len, int in_place,
                                 ark_sse_cb *cb, void *ctx)
{
    apr_size_t flen, vlen;
    const char *colon, *value;
    apr_status_t rv;

    if (len == 0) {
        return dispatch(sp, in_place ? line : NULL, cb, ctx);
    }
    if (line[0] == ':') {
        return APR_SUCCESS;        /* comment, e.g. ": keep-alive" */
    }
    sp->in_event = 1;
    colon = memchr(line, ':', len);
    if (colon) {
        flen = (apr_size_t)(colon - line);
        value = colon + 1;
        vlen = len - flen - 1;
        if (vlen > 0 && *value == ' ') {
            value++;
            vlen--;
        }
    }
    else {
        flen = len;
        value = "";
        vlen = 0;
    }
    if (flen == 4 && !memcmp(line, "data", 4)) {
        if (in_place && !sp->has_data) {
            /* kept where it is; the limit as buf_add would check it
             * with the LF that follows */
            if (vlen >= sp->max_event) {
                return APR_ENOSPC;
            }
            sp->has_data = 1;
            sp->inplace = value;
            sp->inplace_len = vlen;
            sp->inplace_wire = value == line + 6 && line[5] == ' '
                               && line[len] == '\n';
            return APR_SUCCESS;
        }
        rv = inplace_copy(sp);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        sp->has_data = 1;
        rv = buf_add(&sp->data, value, vlen, sp->max_event);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        return buf_add(&sp->data, "\n", 1, sp->max_event);
    }
    if (flen == 5 && !memcmp(line, "event", 5)) {
        sp->name.len = 0;
        return buf_add(&sp->name, value, vlen, sp->max_event);
    }
    return APR_SUCCESS;            /* id, retry and unknown fields */
}

/* The end of the line starting at buf[i]: the first CR or LF in
 * buf[i, len), or len when there is none. memchr twice (SIMD in libc)
 * rather than a byte loop: lines here are a few hundred bytes. */
static apr_size_t line_end(const char *buf, apr_size_t i, apr_size_t len)
{
    const char *nl = memchr(buf + i, '\n', len - i);
    apr_size_t end = nl ? (apr_size_t)(nl - buf) : len;
    const char *cr = memchr(buf + i, '\r', end - i);

    return cr ? (apr_size_t)(cr - buf) : end;
}

apr_status_t ark_sse_feed(ark_sse_parser_t *sp, const char *buf,
                          apr_size_t len, ark_sse_cb *cb, void *ctx)
{
    apr_size_t i = 0;
    apr_status_t rv;

    if (sp->error) {
        return sp->error;
    }
    while (i < len) {
        apr_size_t start = i;

        if (sp->after_cr) {
            sp->after_cr = 0;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        i = line_end(buf, i, len);
        if (i < len && sp->line.len == 0) {
            /* the whole line is in this buffer: used in place (the
             * limit as buf_add would check it on an empty line) */
            if (i - start > sp->max_event) {
                sp->error = APR_ENOSPC;
                return APR_ENOSPC;
            }
            sp->after_cr = (buf[i] == '\r');
            i++;
            rv = process_line(sp, buf + start, i - 1 - start, 1, cb, ctx);
        }
        else {
            rv = buf_add(&sp->line, buf + start, i - start, sp->max_event);
            if (rv != APR_SUCCESS) {
                sp->error = rv;
                return rv;
            }
            if (i == len) {
                break;             /* line continues in the next buffer */
            }
            sp->after_cr = (buf[i] == '\r');
            i++;
            rv = process_line(sp, sp->line.buf ? sp->line.buf : "",
                              sp->line.len, 0, cb, ctx);
            sp->line.len = 0;
        }
        if (rv != APR_SUCCESS) {
            sp->error = rv;
            return rv;
        }
    }
    /* the fed bytes are the caller's only during this call */
    rv = inplace_copy(sp);
    if (rv != APR_SUCCESS) {
        sp->error = rv;
    }
    return rv;
}

int ark_sse_pending(const ark_sse_parser_t *sp)
{
    return sp->line.len > 0 || sp->in_event;
}
