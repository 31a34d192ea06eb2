/* The JSON access log line, one per request handled by ark-gateway.
 *
 * Built from facts about the request only: identities by name (never a
 * secret), the model, the provider, status, latency and tokens. Request
 * and response bodies are never part of it.
 */
#ifndef ARK_ACCESSLOG_H
#define ARK_ACCESSLOG_H

#include <apr_pools.h>
#include <apr_time.h>

#include "ark_request.h"

typedef struct ark_access_t {
    apr_time_t time;            /* request start */
    const char *method;
    const char *path;           /* URI path, no query string */
    const char *key_name;       /* NULL when not authenticated */
    const char *tenant;
    const char *model;          /* the client's alias */
    const char *provider;       /* provider that answered, or NULL */
    const char *upstream_model;
    const char *channel;        /* channel that answered (or failed
                                 * last), or NULL */
    int attempts;               /* upstream attempts, hedges included */
    int status;
    int stream;
    const char *error_code;     /* our error code when status >= 400 */
    const char *upstream_fail;  /* transport failure class, or NULL */
    int upstream_status;        /* 0 if no upstream answer */
    long upstream_new_conns;    /* -1 when no upstream call */
    apr_interval_time_t ttfb;   /* upstream first byte, -1 if none */
    apr_interval_time_t latency;/* whole request */
    ark_usage_t usage;
    int client_aborted;
    apr_int64_t spend_nano;     /* at the answering channel's price; -1
                                 * when not governed */
    const char *request_body;   /* already redacted, or NULL: not logged */
    const char *response_body;
    int bodies_truncated;       /* a logged body was cut to the maximum */
    const char *cache;          /* hit, miss, bypass, skip, error, or NULL
                                 * when the cache is off */
    double cache_similarity;    /* of a hit, else < 0 */
    const char *trace_id;       /* W3C trace id (32 hex), or NULL: the
                                 * field is left out */
} ark_access_t;

/* Initialises *a with "unknown" values. */
void ark_access_init(ark_access_t *a, apr_time_t start);

/* The log line (compact JSON object followed by '\n'), from p. NULL
 * strings are JSON null; a string that is not UTF-8 is logged with its
 * non-ASCII bytes replaced by '?'. */
const char *ark_access_line(const ark_access_t *a, apr_size_t *plen,
                            apr_pool_t *p);

#endif /* ARK_ACCESSLOG_H */
