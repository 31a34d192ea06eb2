/* Incremental Server-Sent Events parser.
 *
 * Upstream streams arrive in arbitrary pieces (a TCP read may end in the
 * middle of a line, or between the CR and LF of a line ending). The
 * parser is a pure function of the bytes fed to it: ark_sse_feed takes
 * any split and calls back once per complete event, in order, exactly as
 * the WHATWG EventSource rules define events (lines end in CRLF, LF or
 * CR; "data" lines accumulate joined by LF; "event" names the event; a
 * line starting with ':' is a comment; a blank line dispatches; an event
 * without data is not dispatched). Outcomes: events delivered, more
 * bytes needed, or an error, which is sticky.
 *
 * Memory: buffers are heap-allocated, grow up to max_event bytes per
 * event and are released by a cleanup on the pool given at creation.
 * One parser per stream; not thread-safe.
 */
#ifndef ARK_SSE_H
#define ARK_SSE_H

#include <apr_pools.h>

typedef struct ark_sse_event_t {
    const char *event;     /* event name, "" when none was given */
    const char *data;      /* data lines joined by '\n', data_len bytes,
                            * NOT NUL-terminated (a one-line event lying
                            * in the fed bytes points into them) */
    apr_size_t data_len;
    const char *wire;      /* when not NULL: the fed bytes of the event
                            * are exactly "data: " data "\n\n" from
                            * here (data_len + 8 bytes), so the event
                            * can be relayed unchanged from them */
} ark_sse_event_t;

/* Called once per event; the strings are only valid during the call.
 * A non-zero return stops parsing and is returned by ark_sse_feed. */
typedef apr_status_t ark_sse_cb(void *ctx, const ark_sse_event_t *ev);

typedef struct ark_sse_parser_t ark_sse_parser_t;

/* Creates a parser whose buffers are freed when p is cleared. max_event
 * bounds the bytes of one event (all its lines); 0 means 1 MiB. */
ark_sse_parser_t *ark_sse_parser_make(apr_pool_t *p, apr_size_t max_event);

/* Feeds len bytes. Returns APR_SUCCESS, the callback's non-zero status,
 * or APR_ENOSPC once an event exceeded max_event (sticky: every later
 * call returns it too). */
apr_status_t ark_sse_feed(ark_sse_parser_t *sp, const char *buf,
                          apr_size_t len, ark_sse_cb *cb, void *ctx);

/* True when bytes of an unfinished event are buffered (the stream ended
 * in the middle of an event: a truncation). */
int ark_sse_pending(const ark_sse_parser_t *sp);

#endif /* ARK_SSE_H */
