/* Upstream HTTP client: libcurl wrapped once.
 *
 * One ark_http_t per httpd child process. It owns a CURLSH share holding
 * the connection cache, DNS cache and TLS session cache, so a connection
 * to a provider opened by one worker thread is kept alive and reused by
 * any other thread of the process. Easy handles are recycled through a
 * small mutex-protected stack instead of being created per request.
 *
 * A transfer is described by ark_http_req_t. Response bytes are handed
 * to on_data as they arrive (streaming) together with the status and
 * content type of the final response; ark_http_perform returns when the
 * transfer ends and classifies any failure in ark_http_result_t (one
 * translator for curl's error codes: ark_http_fail_from_curl).
 *
 * Plain http:// URLs are by default served by a native HTTP/1.1 client
 * with its own per-process keep-alive pool (ark_http_native.h): the same
 * callbacks, results and failure classes, at a fraction of the cost.
 *
 * Locking: ark_http_* functions are thread-safe. The callbacks run on
 * the calling thread.
 */
#ifndef ARK_HTTP_H
#define ARK_HTTP_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

typedef struct ark_http_t ark_http_t;

typedef enum {
    ARK_HTTP_OK = 0,
    ARK_HTTP_CONNECT,   /* DNS or TCP connect failed: nothing was sent */
    ARK_HTTP_TLS,       /* TLS handshake or certificate verification */
    ARK_HTTP_TIMEOUT,   /* connect, total or idle timeout */
    ARK_HTTP_IO,        /* connection reset or closed mid-transfer */
    ARK_HTTP_ABORTED,   /* our on_data callback asked to stop */
    ARK_HTTP_OTHER      /* anything else libcurl reports */
} ark_http_fail_t;

/* Called with each piece of the response body. status and content_type
 * (may be NULL) describe the final response. Return APR_SUCCESS to go
 * on; anything else aborts the transfer (ARK_HTTP_ABORTED). */
typedef apr_status_t ark_http_data_cb(void *ctx, int status,
                                      const char *content_type,
                                      const char *buf, apr_size_t len);

typedef struct ark_http_req_t {
    const char *url;
    apr_array_header_t *headers;     /* const char * "Name: value" */
    const char *body;                /* POST body, or NULL for GET */
    apr_size_t body_len;
    apr_interval_time_t connect_timeout;
    apr_interval_time_t timeout;     /* whole transfer; 0 = none */
    apr_interval_time_t idle_timeout;/* abort (ARK_HTTP_TIMEOUT) once no
                                      * byte arrived for this long, in whole
                                      * seconds, measured by libcurl over a
                                      * sliding window of up to 5 s; 0 =
                                      * none */
    ark_http_data_cb *on_data;
    void *ctx;
    const int *cancel;               /* ark_http_race (and the native
                                      * client): once non-zero, the
                                      * transfer is aborted */
} ark_http_req_t;

typedef struct ark_http_result_t {
    ark_http_fail_t fail;
    int status;                      /* HTTP status, 0 if none received */
    const char *detail;              /* curl's message: for logs only */
    apr_interval_time_t ttfb;        /* request start to first byte */
    apr_interval_time_t total;
    long new_connections;            /* 0 when a kept-alive one was used */
    apr_interval_time_t retry_after; /* from a Retry-After header, or 0 */
} ark_http_result_t;

/* Initialises libcurl for this process (call once, before threads) and
 * creates the client; everything is released when p is destroyed.
 * max_idle bounds the idle easy handles and the shared connection cache.
 * Returns APR_SUCCESS or APR_EGENERAL (libcurl could not initialise). */
apr_status_t ark_http_create(ark_http_t **ph, int max_idle, apr_pool_t *p);

/* Makes every later transfer verify TLS servers against the PEM
 * certificates of ca_file (CURLOPT_CAINFO) instead of libcurl's default
 * bundle; NULL keeps the default. Peer and host name verification are
 * never turned off. Call before the first transfer; ca_file must live as
 * long as h. */
void ark_http_set_ca_file(ark_http_t *h, const char *ca_file);

/* Runs one transfer to completion. Returns APR_SUCCESS when a complete
 * HTTP response was received (any status), APR_EGENERAL otherwise; in
 * both cases *res is filled. Scratch memory comes from p. */
apr_status_t ark_http_perform(ark_http_t *h, const ark_http_req_t *req,
                              ark_http_result_t *res, apr_pool_t *p);

/* Supplies the hedge request when it is due, and where its result goes
 * (*pres); NULL: no hedge after all. */
typedef const ark_http_req_t *ark_http_hedge_fn(void *ctx,
                                                ark_http_result_t **pres);

/* Runs `first`; if it has received no response byte after hedge_after
 * and is still running, asks hedge(ctx) for a second request and runs
 * both concurrently. Either transfer is aborted as soon as its
 * req->cancel flag is set (the caller sets it for the loser when the
 * other one's answer wins). Returns when every started transfer ended;
 * *hedged tells whether the second one was started (its result went
 * where the hedge function said). Returns APR_SUCCESS if at least one
 * transfer received a complete response, APR_EGENERAL otherwise. */
apr_status_t ark_http_race(ark_http_t *h, const ark_http_req_t *first,
                           ark_http_result_t *res1,
                           apr_interval_time_t hedge_after,
                           ark_http_hedge_fn *hedge, void *ctx,
                           int *hedged, apr_pool_t *p);

/* Whether ark_http_perform runs plain http:// transfers on the native
 * HTTP/1.1 client (ark_http_native.h; on by default) or on libcurl like
 * every other transfer. Call before threads use h. */
void ark_http_set_native(ark_http_t *h, int on);

/* The libcurl version string, for the startup log line. */
const char *ark_http_version(void);

/* Name of a failure class, e.g. "timeout", for logs. */
const char *ark_http_fail_name(ark_http_fail_t f);

#endif /* ARK_HTTP_H */
