/* Native HTTP/1.1 client for plain http:// upstreams.
 *
 * libcurl's easy interface costs about 86 k instructions and 3 to 5
 * poll() calls per transfer; for an upstream reached over plain HTTP
 * (a local model server, a sidecar, a corporate egress proxy speaking
 * http://) that is more than the rest of the request. This client does
 * what mod_proxy_http does instead: one keep-alive connection pool per
 * process, keyed by host:port, shared by all threads; a request is one
 * sendmsg() of head and body; the answer is parsed by a pure function of
 * bytes (ark_hresp_parse) and streamed to the caller piece by piece.
 *
 * Two parts:
 *   ark_hresp_*   the response parser: status line, headers, bodies
 *                 delimited by Content-Length, chunked encoding or the
 *                 close of the connection; interim 1xx answers skipped.
 *                 No I/O; unit-tested on its own (tests/unit/
 *                 test_http_native.c).
 *   ark_native_*  the connection pool and the transfer: non-blocking
 *                 sockets and poll(), connect and total timeouts, the
 *                 stale keep-alive retry, results in ark_http_result_t
 *                 with the failure classes libcurl's errors map to
 *                 (ark_http.c), so failover behaves the same with either
 *                 client.
 *
 * ark_http.c decides which client runs a transfer; nothing else calls
 * ark_native_* directly.
 */
#ifndef ARK_HTTP_NATIVE_H
#define ARK_HTTP_NATIVE_H

#include <apr_pools.h>
#include <apr_time.h>

#include "ark_http.h"

/* Hard limits, each a named constant. */
#define ARK_HRESP_MAX_HEAD      (64 * 1024)  /* status line + headers of
                                              * one response; also the
                                              * bound of chunked trailers */
#define ARK_HRESP_MAX_CHUNK_EXT 4096         /* chunk extensions of one
                                              * chunk-size line */
#define ARK_HRESP_MAX_INTERIM   16           /* 1xx answers before the
                                              * final one */

/* ------------------------------------------------------------ parser */

typedef enum {
    ARK_HRESP_MORE = 0,   /* every byte consumed; need more */
    ARK_HRESP_HEAD,       /* the final response's head is complete */
    ARK_HRESP_BODY,       /* *piece, *plen: body bytes (into buf) */
    ARK_HRESP_DONE,       /* the response is complete */
    ARK_HRESP_ERROR       /* malformed; sticky (see error, error_io) */
} ark_hresp_ev_t;

typedef enum {
    ARK_HRESP_BODY_NONE = 0,   /* 204, 304, answer to HEAD */
    ARK_HRESP_BODY_LENGTH,     /* Content-Length */
    ARK_HRESP_BODY_CHUNKED,    /* Transfer-Encoding: chunked */
    ARK_HRESP_BODY_CLOSE       /* until the server closes */
} ark_hresp_body_t;

typedef struct ark_hresp_t {
    /* what the head said; valid from ARK_HRESP_HEAD on */
    int status;
    int minor;                       /* HTTP/1.<minor> */
    const char *content_type;        /* NUL-terminated, or NULL */
    apr_interval_time_t retry_after; /* Retry-After, 0 when none/past */
    ark_hresp_body_t body;
    int keep_alive;                  /* the connection may carry another
                                      * request once DONE was returned */
    /* after ARK_HRESP_ERROR */
    const char *error;               /* static text, no response bytes */
    int error_io;                    /* framing or truncation (the body
                                      * went wrong: ARK_HTTP_IO); else the
                                      * head was malformed (ARK_HTTP_OTHER) */

    /* private */
    int state;
    int head_request;
    int interim;
    char *head;                      /* head bytes, pool-allocated */
    apr_size_t head_len, head_cap;
    apr_size_t line_len;             /* current line, CR excluded */
    apr_uint64_t remain;             /* body or chunk bytes still due */
    int digits;                      /* hex digits of the chunk size */
    apr_size_t ext_len;
    apr_size_t trailer_len;
    apr_time_t now;                  /* for Retry-After dates */
    apr_pool_t *pool;
} ark_hresp_t;

/* Prepares rp for one response. head_request: the request was HEAD (no
 * body whatever the headers say). now: the clock Retry-After dates are
 * measured against. The head buffer comes from p. */
void ark_hresp_init(ark_hresp_t *rp, int head_request, apr_time_t now,
                    apr_pool_t *p);

/* Consumes bytes of buf[0..len) and stops at the first event: *used is
 * how many were consumed (all of them for ARK_HRESP_MORE). For
 * ARK_HRESP_BODY, *piece and *plen point into buf. Call again with the
 * rest (also with len 0 after ARK_HRESP_HEAD: a response without a body
 * is DONE at once). After DONE it keeps returning DONE, consuming
 * nothing: bytes left over are not part of this response. */
ark_hresp_ev_t ark_hresp_parse(ark_hresp_t *rp, const char *buf,
                               apr_size_t len, apr_size_t *used,
                               const char **piece, apr_size_t *plen);

/* The server closed the connection: ARK_HRESP_DONE if that ends the
 * response (a body delimited by the close, or a response already
 * complete), else ARK_HRESP_ERROR with error_io set (truncated). */
ark_hresp_ev_t ark_hresp_eof(ark_hresp_t *rp);

/* A Retry-After value: delay-seconds or an HTTP-date (IMF-fixdate,
 * RFC 850 or asctime form), as an interval from now; 0 when the value is
 * malformed or the date is not in the future. */
apr_interval_time_t ark_http_retry_after_parse(const char *v,
                                               apr_time_t now);

/* ------------------------------------------------------ client, pool */

typedef struct ark_native_t ark_native_t;

/* Creates the process's pool of kept-alive upstream connections; idle
 * connections (at most max_idle per host:port) are closed when p is
 * destroyed. Returns APR_SUCCESS or an APR error. Thread-safe after
 * creation. */
apr_status_t ark_native_create(ark_native_t **pn, int max_idle,
                               apr_pool_t *p);

/* True if req can be run by ark_native_perform: an http:// URL this
 * client understands (no user info in it). */
int ark_native_handles(const ark_http_req_t *req);

/* Runs one transfer, as ark_http_perform does (same callback contract,
 * same result fields and failure classes). A kept-alive connection that
 * fails before any byte of the response arrived is retried once on a new
 * connection; once a response byte arrived, never. req->cancel, if set,
 * is checked at least every 100 ms. Returns APR_SUCCESS when a complete
 * response was received, APR_EGENERAL otherwise. Scratch memory from
 * p. APR_ENOTIMPL, with nothing done and *res untouched, when
 * ark_native_handles(req) is false. */
apr_status_t ark_native_perform(ark_native_t *n, const ark_http_req_t *req,
                                ark_http_result_t *res, apr_pool_t *p);

#endif /* ARK_HTTP_NATIVE_H */
