/* W3C Trace Context and OTLP spans: the pure part of tracing.
 *
 * A request's trace context comes from its `traceparent` header (W3C
 * Trace Context level 1) when that header is valid, else a new trace
 * begins here. Either way the gateway's request is a span of its own
 * (the SERVER span, a new span id whose parent is the client's span),
 * and every upstream attempt is a child of it (a CLIENT span, again a new
 * span id), whose `traceparent` goes to the provider. `tracestate` is
 * passed on unchanged (bounded, see ARK_TRACESTATE_MAX), and only with a
 * valid traceparent, as the specification asks.
 *
 *   client  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
 *   ours    00-4bf92f3577b34da6a3ce929d0e0e4736-<server span>-01
 *   upstream (attempt 1) 00-4bf9...4736-<attempt 1 span>-01
 *   upstream (attempt 2) 00-4bf9...4736-<attempt 2 span>-01
 *
 * Spans are turned into OTLP/HTTP JSON (the protobuf JSON mapping, with
 * trace and span ids in lower-case hex as OTLP asks): ark_span_json()
 * makes one span object, ark_otlp_envelope() wraps spans already
 * encoded into the body of one POST to /v1/traces. What a span carries
 * is the caller's choice of attributes; by convention never a key, a
 * secret or a body (see docs/tracing.md).
 *
 * No httpd headers; ids come from OpenSSL's RAND_bytes. Thread-safe:
 * no state of its own.
 */
#ifndef ARK_TRACE_H
#define ARK_TRACE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#define ARK_TRACE_ID_HEX 32          /* hex digits of a trace id */
#define ARK_SPAN_ID_HEX  16          /* hex digits of a span (parent) id */
#define ARK_TRACEPARENT_LEN 55       /* "00-" 32 "-" 16 "-" 2 */

/* Longest tracestate passed on; the specification asks vendors to pass
 * at least 512 characters. A longer one is shortened by whole list
 * members (members over 128 characters first, then from the end). */
#define ARK_TRACESTATE_MAX 512

/* Longest traceparent accepted from a future version (its extra fields
 * are ignored); anything longer is not a traceparent. */
#define ARK_TRACEPARENT_MAX 512

#define ARK_TRACE_FLAG_SAMPLED 0x01

/* The trace context of one request. */
typedef struct ark_trace_t {
    char trace_id[ARK_TRACE_ID_HEX + 1];
    char parent_id[ARK_SPAN_ID_HEX + 1];  /* the client's span, "" when
                                           * the trace began here */
    char span_id[ARK_SPAN_ID_HEX + 1];    /* the gateway's SERVER span */
    unsigned int flags;                   /* trace-flags, sampled bit only */
    const char *tracestate;               /* passed on as is, or NULL */
    int continued;                        /* 1: from a valid traceparent */
} ark_trace_t;

/* Parses a traceparent header value. Rules (W3C Trace Context level 1):
 * version two lower-case hex digits, not "ff"; version 00 exactly 55
 * characters; a later version at least 55, and if longer, a '-' after
 * the flags (what follows is ignored); trace-id 32 and parent-id 16
 * lower-case hex digits, neither all zeros; trace-flags 2 lower-case hex
 * digits. On success fills t's trace_id, parent_id and flags (the
 * sampled bit) and returns APR_SUCCESS; otherwise APR_EINVAL and t is
 * unchanged. */
apr_status_t ark_trace_parse(ark_trace_t *t, const char *traceparent);

/* Checks a tracestate value for passing on: printable ASCII only (no
 * control characters, so no header injection), shortened to
 * ARK_TRACESTATE_MAX by whole members when longer. Returns the value to
 * pass on (v itself, or a shortened copy from p), or NULL when there is
 * nothing to pass (NULL, empty, or not printable). */
const char *ark_tracestate_check(const char *v, apr_pool_t *p);

/* Starts the request's trace context: continued from traceparent when it
 * parses (tracestate then passed on, if acceptable), else a new trace
 * with the sampled flag set (tracestate dropped). Either way a new span
 * id for the gateway's span. Never fails; strings from p. */
void ark_trace_begin(ark_trace_t *t, const char *traceparent,
                     const char *tracestate, apr_pool_t *p);

/* Fills out with n random bytes, not all zero (ids must not be): a
 * per-thread xoshiro256** generator seeded from OpenSSL's RAND_bytes (or
 * APR's generator should OpenSSL fail), seeded again in a forked child.
 * For ids, never for secrets. */
void ark_trace_random(unsigned char *out, apr_size_t n);

/* Writes a new random id of hexlen lower-case hex digits (16 or 32) and
 * a terminating NUL to out (hexlen + 1 bytes), never all zeros. */
void ark_trace_new_id(char *out, apr_size_t hexlen);

/* The traceparent header value of span span_id in t's trace:
 * "00-<trace_id>-<span_id>-<flags>", from p. */
const char *ark_traceparent_format(const ark_trace_t *t, const char *span_id,
                                   apr_pool_t *p);

/* ------------------------------------------------------------- spans */

typedef enum {
    ARK_SPAN_SERVER = 2,              /* OTLP SPAN_KIND_SERVER */
    ARK_SPAN_CLIENT = 3               /* OTLP SPAN_KIND_CLIENT */
} ark_span_kind_t;

typedef enum {
    ARK_ATTR_STRING, ARK_ATTR_INT, ARK_ATTR_BOOL, ARK_ATTR_DOUBLE
} ark_attr_type_t;

typedef struct ark_span_attr_t {
    const char *key;
    ark_attr_type_t type;
    const char *s;
    apr_int64_t i;                    /* INT and BOOL */
    double d;
} ark_span_attr_t;

/* One finished span. Strings are borrowed. */
typedef struct ark_span_t {
    const char *trace_id;             /* 32 hex */
    const char *span_id;              /* 16 hex */
    const char *parent_id;            /* 16 hex, or NULL/"" for a root */
    const char *tracestate;           /* or NULL */
    const char *name;
    ark_span_kind_t kind;
    apr_time_t start, end;            /* APR times (microseconds) */
    int error;                        /* status ERROR, else unset */
    const char *status_message;       /* with error: a short reason */
    apr_array_header_t *attrs;        /* ark_span_attr_t */
} ark_span_t;

/* Initialises s with an empty attribute list from p. */
void ark_span_init(ark_span_t *s, apr_pool_t *p);

/* Add an attribute (key and s are borrowed). A NULL string, or an
 * integer < 0 for ark_span_attr_count, adds nothing. */
void ark_span_attr_str(ark_span_t *s, const char *key, const char *v);
void ark_span_attr_int(ark_span_t *s, const char *key, apr_int64_t v);
void ark_span_attr_count(ark_span_t *s, const char *key, apr_int64_t v);
void ark_span_attr_bool(ark_span_t *s, const char *key, int v);
void ark_span_attr_double(ark_span_t *s, const char *key, double v);

/* One OTLP JSON span object (compact), malloc'd: the caller owns it and
 * releases it with free(). NULL only when out of memory. Strings that are
 * not UTF-8 have their non-ASCII bytes replaced by '?'. */
char *ark_span_json(const ark_span_t *s);

/* The body of one OTLP/HTTP JSON export request:
 *   {"resourceSpans":[{"resource":{"attributes":[service.name,
 *    service.version, host.name]},"scopeSpans":[{"scope":{"name":
 *    "mod_ark"},"spans":[<spans[0]>,...]}]}]}
 * spans are n objects made by ark_span_json (borrowed). version and host
 * may be NULL (left out). Returns a malloc'd string (caller frees) and
 * its length in *plen, or NULL when out of memory. */
char *ark_otlp_envelope(const char *const *spans, apr_size_t n,
                        const char *service, const char *version,
                        const char *host, apr_size_t *plen);

#endif /* ARK_TRACE_H */
