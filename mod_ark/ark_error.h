/* Errors as clients see them.
 *
 * Every refusal or failure that reaches a client goes through one
 * ark_err_t: an HTTP status plus the four fields of the OpenAI error
 * object ({"error":{"message","type","param","code"}}). Core code fills
 * an ark_err_t; the httpd glue (ark_error_reply in ark_handler.c) is the
 * only place that turns it into a response. Messages put into an
 * ark_err_t must be safe to show to the client: never a secret, never an
 * internal path or library error string.
 */
#ifndef ARK_ERROR_H
#define ARK_ERROR_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct ark_err_t {
    int status;                  /* HTTP status, e.g. 400 */
    const char *type;            /* OpenAI error type, e.g. invalid_request_error */
    const char *code;            /* machine code or NULL (JSON null) */
    const char *param;           /* offending request field or NULL */
    const char *message;         /* human sentence, client-safe */
    apr_interval_time_t retry_after; /* > 0: send Retry-After (seconds, rounded up) */
} ark_err_t;

/* Fills *e. The type is derived from the status (see ark_err_type_for).
 * All strings are borrowed: they must outlive *e (use literals or pool
 * memory). retry_after is reset to 0. */
void ark_err_set(ark_err_t *e, int status, const char *code,
                 const char *param, const char *message);

/* Like ark_err_set with a printf-style message allocated from p. */
void ark_err_setf(ark_err_t *e, apr_pool_t *p, int status, const char *code,
                  const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* The OpenAI error type used for an HTTP status: 400/404/405/413/415
 * invalid_request_error, 401 authentication_error, 403 permission_error,
 * 429 rate_limit_error, 502 upstream_error, 503 service_unavailable_error,
 * 504 timeout_error, anything else server_error. Returns a literal. */
const char *ark_err_type_for(int status);

/* Serialises e as {"error":{...}} (compact JSON, no trailing newline),
 * allocated from p. Never fails: on an allocation failure inside jansson
 * a fixed generic body is returned. */
const char *ark_err_json(const ark_err_t *e, apr_pool_t *p);

/* Copies a client-supplied string for use inside an error message:
 * at most max bytes (cut at a UTF-8 boundary, "..." appended when cut;
 * if s is not valid UTF-8, its non-ASCII bytes become '?').
 * JSON escaping happens later, in ark_err_json. */
const char *ark_err_quote(const char *s, apr_size_t max, apr_pool_t *p);

#endif /* ARK_ERROR_H */
