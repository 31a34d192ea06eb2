/* ark-cached: the Prometheus endpoint (metrics_port).
 *
 * A minimal HTTP/1.0 responder, served by the same I/O threads as RESP
 * clients (cs_server.c owns the sockets): cs_metrics_route() looks at the
 * bytes received so far and says whether the request is complete and
 * what it asks for; cs_metrics_respond() writes the whole response,
 * after which the server closes the connection. "GET /metrics" returns
 * the server's own counters followed by the engine's (cs_cache_metrics)
 * in the text exposition format 0.0.4; every other request gets 404, a
 * malformed or oversized one 400.
 *
 * Thread safety: both functions may run on any thread at once.
 */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stddef.h>

#include "cs_common.h"
#include "cs_server.h"

/* Largest request head accepted: a scrape request is a few hundred
 * bytes. */
#define CS_HTTP_REQUEST_MAX 8192

/* Seconds a metrics connection may take to send its request. */
#define CS_HTTP_TIMEOUT_S 10

/* Most metrics connections open at once (outside maxclients): scrapers
 * are few, and this bounds descriptors spent on them. */
#define CS_HTTP_CONNS_MAX 64

typedef enum {
    CS_HTTP_NEED_MORE = 0,
    CS_HTTP_METRICS,
    CS_HTTP_NOT_FOUND,
    CS_HTTP_BAD_REQUEST
} cs_http_route_t;

/* Examines a request head in buf[0..len); pure. */
cs_http_route_t cs_metrics_route(const char *buf, size_t len);

/* Appends the full HTTP response for route (not CS_HTTP_NEED_MORE). */
void cs_metrics_respond(const cs_server_t *s, cs_http_route_t route,
                        cs_buf_t *out);

#endif /* CS_METRICS_H */
