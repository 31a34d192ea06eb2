/* OTLP/HTTP JSON export of spans, off the request path.
 *
 * One exporter per httpd child process (created in child_init). Request
 * threads hand finished spans (strings made by ark_span_json) to
 * ark_trace_exporter_submit(), which only takes a mutex to put a pointer
 * into a bounded ring: when the ring is full the span is dropped and
 * counted, so exporting can never slow a request down. A background
 * thread takes up to `batch` spans every `interval` (1 s), or as soon as
 * a batch is full, wraps them with ark_otlp_envelope() and POSTs them
 * with its own libcurl easy handle (Content-Type: application/json).
 * A failed POST drops its spans (counted); failures and drops are
 * reported through the log callback at most once a minute.
 *
 * Stopping: a pre-cleanup on the pool given to create tells the thread
 * to stop, lets it make one last attempt at what is queued (bounded by
 * the POST timeout), and joins it.
 *
 * Thread-safe: submit and counters may be called from any thread.
 */
#ifndef ARK_TRACE_EXPORT_H
#define ARK_TRACE_EXPORT_H

#include <apr_pools.h>
#include <apr_time.h>

#include "ark_trace.h"

#define ARK_TRACE_EXPORT_TIMEOUT    apr_time_from_sec(2)  /* one POST */
#define ARK_TRACE_EXPORT_TIMEOUT_MAX apr_time_from_sec(60)
#define ARK_TRACE_EXPORT_BATCH      512     /* spans per POST */
#define ARK_TRACE_EXPORT_BATCH_MAX  8192
#define ARK_TRACE_EXPORT_INTERVAL   apr_time_from_sec(1)
/* spans held per process: 8 batches, within these bounds */
#define ARK_TRACE_EXPORT_QUEUE_MIN  1024
#define ARK_TRACE_EXPORT_QUEUE_MAX  65536
#define ARK_TRACE_EXPORT_LOG_INTERVAL apr_time_from_sec(60)

typedef struct ark_trace_export_conf_t {
    const char *url;                 /* http(s)://host:port/v1/traces;
                                      * NULL: export off */
    apr_interval_time_t timeout;     /* one POST, connect included */
    int batch;                       /* most spans per POST */
    int queue;                       /* most spans waiting per process */
    apr_interval_time_t interval;    /* flush period */
} ark_trace_export_conf_t;

typedef struct ark_trace_counters_t {
    apr_uint64_t exported;           /* spans a collector accepted (2xx) */
    apr_uint64_t dropped;            /* spans dropped: the queue was full */
    apr_uint64_t failed;             /* spans of POSTs that failed */
    apr_uint64_t queued;             /* spans waiting now */
} ark_trace_counters_t;

typedef struct ark_trace_exporter_t ark_trace_exporter_t;

/* Receives a message for the error log (from the exporter's thread). */
typedef void ark_trace_log_fn(void *baton, const char *msg);

/* Defaults: off, 2 s timeout, batches of 512, 1 s interval. */
void ark_trace_export_conf_init(ark_trace_export_conf_t *c);

/* Parses the arguments of ArkTraceExport: <url> [timeout=DUR]
 * [batch=N], or "off". Returns NULL, or a sentence naming the directive
 * and what it accepts (from p). */
const char *ark_trace_export_conf_parse(ark_trace_export_conf_t *c,
                                        int argc, char *const argv[],
                                        apr_pool_t *p);

/* Creates the exporter and starts its thread; stopped and released with
 * p (a pre-cleanup). service, version and host describe the resource
 * (copied). log (may be NULL) receives failure reports. Returns
 * APR_SUCCESS, or an error (libcurl or the thread could not start;
 * *pe is then NULL). */
apr_status_t ark_trace_exporter_create(ark_trace_exporter_t **pe,
                                       const ark_trace_export_conf_t *conf,
                                       const char *service,
                                       const char *version, const char *host,
                                       ark_trace_log_fn *log, void *baton,
                                       apr_pool_t *p);

/* Queues one span (a malloc'd string from ark_span_json; the exporter
 * takes it and frees it in every case). APR_SUCCESS, or APR_ENOSPC when
 * it was dropped (queue full, or stopping). Never blocks on the
 * network. */
apr_status_t ark_trace_exporter_submit(ark_trace_exporter_t *e, char *span);

/* A snapshot of the exporter's counters (this process). */
void ark_trace_exporter_counters(ark_trace_exporter_t *e,
                                 ark_trace_counters_t *out);

#endif /* ARK_TRACE_EXPORT_H */
