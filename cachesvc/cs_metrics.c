/* ark-cached: the Prometheus endpoint (see cs_metrics.h).
 *
 * Data flow: the server feeds the bytes of a metrics connection to
 * cs_metrics_route() until it answers something other than NEED_MORE,
 * then cs_metrics_respond() renders the body (server counters from
 * cs_server_get_stats, then cs_cache_metrics) and the HTTP head around
 * it into the connection's output buffer.
 */
#include <stdio.h>
#include <string.h>

#include "cs_metrics.h"

typedef struct metric {
    const char *name;
    const char *type;
    const char *help;
} metric_t;

static void put(cs_buf_t *out, const metric_t *m, unsigned long long v)
{
    cs_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", m->name,
                  m->help, m->name, m->type, m->name, v);
}

static void render(const cs_server_t *s, cs_buf_t *out)
{
    static const metric_t m[] = {
        {"ark_cached_connected_clients", "gauge",
         "RESP client connections open."},
        {"ark_cached_connections_received_total", "counter",
         "RESP client connections accepted."},
        {"ark_cached_rejected_connections_total", "counter",
         "Connections refused because maxclients was reached."},
        {"ark_cached_commands_processed_total", "counter",
         "Commands executed."},
        {"ark_cached_protocol_errors_total", "counter",
         "Connections closed for a malformed or oversized request."},
        {"ark_cached_buffer_limit_disconnections_total", "counter",
         "Connections closed at max_query_buffer or max_output_buffer."},
        {"ark_cached_timedout_connections_total", "counter",
         "Connections closed after the idle timeout."},
        {"ark_cached_used_memory_bytes", "gauge",
         "Heap bytes allocated by the daemon."},
        {"ark_cached_uptime_seconds", "gauge",
         "Seconds since the daemon started."},
        {"ark_cached_io_threads", "gauge", "I/O threads."},
    };
    cs_server_stats_t st;

    cs_server_get_stats(s, &st);
    put(out, &m[0], st.connected_clients);
    put(out, &m[1], st.total_connections_received);
    put(out, &m[2], st.rejected_connections);
    put(out, &m[3], st.total_commands_processed);
    put(out, &m[4], st.protocol_errors);
    put(out, &m[5],
        st.query_buffer_disconnections + st.output_buffer_disconnections);
    put(out, &m[6], st.timedout_connections);
    put(out, &m[7], cs_mem_used());
    put(out, &m[8], (unsigned long long)st.uptime_s);
    put(out, &m[9], (unsigned long long)st.threads);
    if (cs_server_cache(s) != NULL) {
        cs_cache_metrics(cs_server_cache(s), out);
    }
}

cs_http_route_t cs_metrics_route(const char *buf, size_t len)
{
    const char *end = NULL, *sp1, *sp2, *eol, *path;
    size_t i, plen;

    for (i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' &&
            (buf[i + 1] == '\n' ||
             (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
            end = buf + i;
            break;
        }
    }
    if (end == NULL) {
        return len >= CS_HTTP_REQUEST_MAX ? CS_HTTP_BAD_REQUEST
                                          : CS_HTTP_NEED_MORE;
    }
    if (end - buf >= CS_HTTP_REQUEST_MAX) {
        return CS_HTTP_BAD_REQUEST;
    }
    /* Request line: METHOD SP target SP HTTP/1.x */
    eol = memchr(buf, '\n', (size_t)(end - buf) + 1);
    sp1 = memchr(buf, ' ', (size_t)(eol - buf));
    if (sp1 == NULL) {
        return CS_HTTP_BAD_REQUEST;
    }
    sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (sp2 == NULL || eol - sp2 < 9 || strncmp(sp2 + 1, "HTTP/1.", 7)) {
        return CS_HTTP_BAD_REQUEST;
    }
    path = sp1 + 1;
    plen = (size_t)(sp2 - path);
    if (sp1 - buf != 3 || memcmp(buf, "GET", 3) != 0) {
        return CS_HTTP_NOT_FOUND;
    }
    if ((plen == 8 || (plen > 8 && path[8] == '?')) &&
        memcmp(path, "/metrics", 8) == 0) {
        return CS_HTTP_METRICS;
    }
    return CS_HTTP_NOT_FOUND;
}

void cs_metrics_respond(const cs_server_t *s, cs_http_route_t route,
                        cs_buf_t *out)
{
    const char *status = "400 Bad Request", *text = "bad request\n";
    cs_buf_t body;

    if (route == CS_HTTP_METRICS) {
        cs_buf_init(&body);
        render(s, &body);
        cs_buf_printf(out,
                      "HTTP/1.0 200 OK\r\n"
                      "Content-Type: text/plain; version=0.0.4; "
                      "charset=utf-8\r\n"
                      "Content-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      body.len);
        cs_buf_append(out, body.data, body.len);
        cs_buf_free(&body);
        return;
    }
    if (route == CS_HTTP_NOT_FOUND) {
        status = "404 Not Found";
        text = "not found; try GET /metrics\n";
    }
    cs_buf_printf(out,
                  "HTTP/1.0 %s\r\nContent-Type: text/plain\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                  status, strlen(text), text);
}
