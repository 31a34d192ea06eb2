/* OTLP/HTTP JSON span exporter. See ark_trace_export.h.
 *
 * Data flow: submit() puts a span string into the ring (head + count,
 * guarded by lock) and wakes the thread when a batch is full; the thread
 * sleeps on cond until the batch is full, the interval has passed or it
 * is told to stop, moves up to `batch` pointers out under the lock, and
 * POSTs them without it. The easy handle belongs to the thread alone.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <curl/curl.h>

#include "ark_config.h"
#include "ark_trace_export.h"

struct ark_trace_exporter_t {
    ark_trace_export_conf_t conf;
    char *service, *version, *host;
    ark_trace_log_fn *log;
    void *baton;
    CURL *curl;
    struct curl_slist *headers;
    apr_thread_t *thread;
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *cond;
    char **ring;                     /* queue slots, conf.queue of them */
    int head, count;                 /* under lock */
    int stopping;                    /* under lock */
    apr_time_t last_log;             /* exporter thread only */
    apr_uint64_t dropped_logged;     /* exporter thread only */
    _Atomic apr_uint64_t exported, dropped, failed;
};

void ark_trace_export_conf_init(ark_trace_export_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->timeout = ARK_TRACE_EXPORT_TIMEOUT;
    c->batch = ARK_TRACE_EXPORT_BATCH;
    c->interval = ARK_TRACE_EXPORT_INTERVAL;
    c->queue = 8 * c->batch;
}

const char *ark_trace_export_conf_parse(ark_trace_export_conf_t *c,
                                        int argc, char *const argv[],
                                        apr_pool_t *p)
{
    static const char usage[] = "ArkTraceExport takes <http://host:port"
                                "/v1/traces> [timeout=DUR] [batch=N], or off";
    ark_trace_export_conf_t n;
    const char *url, *host;
    int i;

    ark_trace_export_conf_init(&n);
    if (argc < 1) {
        return usage;
    }
    if (argc == 1 && !strcasecmp(argv[0], "off")) {
        *c = n;
        return NULL;
    }
    url = argv[0];
    if (!strncmp(url, "http://", 7)) {
        host = url + 7;
    }
    else if (!strncmp(url, "https://", 8)) {
        host = url + 8;
    }
    else {
        return apr_psprintf(p, "ArkTraceExport: '%s' is not an http:// or "
                            "https:// URL (e.g. http://127.0.0.1:4318/v1/"
                            "traces)", url);
    }
    if (!*host || *host == '/' || *host == ':' || strchr(url, ' ')
        || strchr(url, '@')) {
        return apr_psprintf(p, "ArkTraceExport: '%s' names no host (or "
                            "carries credentials, which are not accepted)",
                            url);
    }
    n.url = apr_pstrdup(p, url);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!strncmp(a, "timeout=", 8)) {
            if (ark_parse_duration(&n.timeout, a + 8) != APR_SUCCESS
                || n.timeout < apr_time_from_msec(1)
                || n.timeout > ARK_TRACE_EXPORT_TIMEOUT_MAX) {
                return apr_psprintf(p, "ArkTraceExport: timeout='%s' is not "
                                    "a duration between 1ms and 60s "
                                    "(e.g. 500ms, 2s)", a + 8);
            }
        }
        else if (!strncmp(a, "batch=", 6)) {
            char *end;
            apr_int64_t b = apr_strtoi64(a + 6, &end, 10);

            if (end == a + 6 || *end || b < 1
                || b > ARK_TRACE_EXPORT_BATCH_MAX) {
                return apr_psprintf(p, "ArkTraceExport: batch='%s' is not a "
                                    "number of spans between 1 and %d",
                                    a + 6, ARK_TRACE_EXPORT_BATCH_MAX);
            }
            n.batch = (int)b;
        }
        else {
            return apr_psprintf(p, "ArkTraceExport: unknown option '%s' "
                                "(%s)", a, usage);
        }
    }
    n.queue = 8 * n.batch;
    if (n.queue < ARK_TRACE_EXPORT_QUEUE_MIN) {
        n.queue = ARK_TRACE_EXPORT_QUEUE_MIN;
    }
    if (n.queue > ARK_TRACE_EXPORT_QUEUE_MAX) {
        n.queue = ARK_TRACE_EXPORT_QUEUE_MAX;
    }
    *c = n;
    return NULL;
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

/* Reports through the log callback, at most once per interval. */
static void report(ark_trace_exporter_t *e, const char *fmt, ...)
{
    apr_time_t now = apr_time_now();
    char msg[512];
    va_list ap;

    if (!e->log || (e->last_log
                    && now - e->last_log < ARK_TRACE_EXPORT_LOG_INTERVAL)) {
        return;
    }
    e->last_log = now;
    va_start(ap, fmt);
    apr_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    e->log(e->baton, msg);
}

/* POSTs n spans as one OTLP request; frees them. */
static void post_batch(ark_trace_exporter_t *e, char **spans, int n)
{
    apr_size_t len = 0;
    char *body = ark_otlp_envelope((const char *const *)spans,
                                   (apr_size_t)n, e->service, e->version,
                                   e->host, &len);
    CURLcode cc = CURLE_OUT_OF_MEMORY;
    long status = 0;
    int i;

    for (i = 0; i < n; i++) {
        free(spans[i]);
    }
    if (body) {
        curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)len);
        cc = curl_easy_perform(e->curl);
        if (cc == CURLE_OK) {
            curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
        }
        free(body);
    }
    if (cc == CURLE_OK && status >= 200 && status < 300) {
        atomic_fetch_add(&e->exported, (apr_uint64_t)n);
        return;
    }
    atomic_fetch_add(&e->failed, (apr_uint64_t)n);
    if (cc != CURLE_OK) {
        report(e, "trace export to %s failed: %s; %d spans dropped "
               "(logged once a minute)", e->conf.url, curl_easy_strerror(cc),
               n);
    }
    else {
        report(e, "trace export to %s failed: HTTP %ld; %d spans dropped "
               "(logged once a minute)", e->conf.url, status, n);
    }
}

static void *APR_THREAD_FUNC export_main(apr_thread_t *th, void *data)
{
    ark_trace_exporter_t *e = data;
    char **batch = malloc(sizeof(char *) * (apr_size_t)e->conf.batch);
    apr_time_t next = apr_time_now() + e->conf.interval;
    int failed_stop = 0;

    apr_thread_mutex_lock(e->lock);
    for (;;) {
        apr_time_t now = apr_time_now();
        apr_uint64_t dropped;
        int n = 0, stopping;

        if (!e->stopping && e->count < e->conf.batch && now < next) {
            apr_thread_cond_timedwait(e->cond, e->lock, next - now);
            continue;
        }
        while (batch && n < e->conf.batch && e->count > 0) {
            batch[n++] = e->ring[e->head];
            e->ring[e->head] = NULL;
            e->head = (e->head + 1) % e->conf.queue;
            e->count--;
        }
        if (e->count < e->conf.batch) {
            next = now + e->conf.interval;
        }
        stopping = e->stopping;
        if (n == 0 && stopping) {
            break;
        }
        apr_thread_mutex_unlock(e->lock);
        if (n > 0) {
            if (failed_stop) {            /* the collector is gone: drop */
                int i;

                for (i = 0; i < n; i++) {
                    free(batch[i]);
                }
                atomic_fetch_add(&e->failed, (apr_uint64_t)n);
            }
            else {
                apr_uint64_t before = atomic_load(&e->failed);

                post_batch(e, batch, n);
                failed_stop = stopping && atomic_load(&e->failed) != before;
            }
        }
        dropped = atomic_load(&e->dropped);
        if (dropped != e->dropped_logged) {
            report(e, "trace export queue full (%d spans): %" APR_UINT64_T_FMT
                   " spans dropped so far (logged once a minute)",
                   e->conf.queue, dropped);
            e->dropped_logged = dropped;
        }
        apr_thread_mutex_lock(e->lock);
    }
    apr_thread_mutex_unlock(e->lock);
    free(batch);
    /* a plain return, not apr_thread_exit(): pthread_exit trips a false
     * report of GCC 12's AddressSanitizer; the thread's pool goes with
     * its parent */
    (void)th;
    return NULL;
}

/* Pre-cleanup of the pool: stop the thread (it flushes what is queued)
 * and release what is not pool memory. */
static apr_status_t exporter_stop(void *d)
{
    ark_trace_exporter_t *e = d;
    apr_status_t trv;
    int i;

    if (e->thread) {
        apr_thread_mutex_lock(e->lock);
        e->stopping = 1;
        apr_thread_cond_signal(e->cond);
        apr_thread_mutex_unlock(e->lock);
        apr_thread_join(&trv, e->thread);
        e->thread = NULL;
    }
    for (i = 0; i < e->count; i++) {
        free(e->ring[(e->head + i) % e->conf.queue]);
    }
    e->count = 0;
    if (e->curl) {
        curl_easy_cleanup(e->curl);
        e->curl = NULL;
    }
    if (e->headers) {
        curl_slist_free_all(e->headers);
        e->headers = NULL;
    }
    free(e->service);
    free(e->version);
    free(e->host);
    e->service = e->version = e->host = NULL;
    return APR_SUCCESS;
}

apr_status_t ark_trace_exporter_create(ark_trace_exporter_t **pe,
                                       const ark_trace_export_conf_t *conf,
                                       const char *service,
                                       const char *version, const char *host,
                                       ark_trace_log_fn *log, void *baton,
                                       apr_pool_t *p)
{
    ark_trace_exporter_t *e = apr_pcalloc(p, sizeof(*e));
    apr_threadattr_t *attr;
    long ms;
    apr_status_t rv;

    *pe = NULL;
    if (!conf->url || conf->batch < 1 || conf->queue < conf->batch) {
        return APR_EINVAL;
    }
    e->conf = *conf;
    if (e->conf.interval <= 0) {
        e->conf.interval = ARK_TRACE_EXPORT_INTERVAL;
    }
    e->log = log;
    e->baton = baton;
    e->service = strdup(service ? service : "ark");
    e->version = version ? strdup(version) : NULL;
    e->host = host ? strdup(host) : NULL;
    e->ring = apr_pcalloc(p, sizeof(char *) * (apr_size_t)e->conf.queue);
    apr_pool_pre_cleanup_register(p, e, exporter_stop);
    e->curl = curl_easy_init();
    e->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (e->headers) {
        /* no "Expect: 100-continue" round trip for large batches */
        struct curl_slist *h = curl_slist_append(e->headers, "Expect:");

        e->headers = h ? h : e->headers;
    }
    if (!e->curl || !e->headers || !e->service) {
        return APR_ENOMEM;
    }
    ms = (long)apr_time_as_msec(e->conf.timeout);
    curl_easy_setopt(e->curl, CURLOPT_URL, e->conf.url);
    curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, e->headers);
    curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, discard_body);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e->curl, CURLOPT_PROTOCOLS,
                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e->curl, CURLOPT_USERAGENT, "mod_ark-otlp");
    if ((rv = apr_thread_mutex_create(&e->lock, APR_THREAD_MUTEX_DEFAULT, p))
            != APR_SUCCESS
        || (rv = apr_thread_cond_create(&e->cond, p)) != APR_SUCCESS
        || (rv = apr_threadattr_create(&attr, p)) != APR_SUCCESS
        || (rv = apr_thread_create(&e->thread, attr, export_main, e, p))
               != APR_SUCCESS) {
        e->thread = NULL;
        return rv;
    }
    *pe = e;
    return APR_SUCCESS;
}

apr_status_t ark_trace_exporter_submit(ark_trace_exporter_t *e, char *span)
{
    int wake = 0;

    if (!span) {
        atomic_fetch_add(&e->dropped, 1);
        return APR_ENOSPC;
    }
    apr_thread_mutex_lock(e->lock);
    if (e->stopping || e->count >= e->conf.queue) {
        apr_thread_mutex_unlock(e->lock);
        free(span);
        atomic_fetch_add(&e->dropped, 1);
        return APR_ENOSPC;
    }
    e->ring[(e->head + e->count) % e->conf.queue] = span;
    e->count++;
    wake = e->count == e->conf.batch;
    if (wake) {
        apr_thread_cond_signal(e->cond);
    }
    apr_thread_mutex_unlock(e->lock);
    return APR_SUCCESS;
}

void ark_trace_exporter_counters(ark_trace_exporter_t *e,
                                 ark_trace_counters_t *out)
{
    out->exported = atomic_load(&e->exported);
    out->dropped = atomic_load(&e->dropped);
    out->failed = atomic_load(&e->failed);
    apr_thread_mutex_lock(e->lock);
    out->queued = (apr_uint64_t)e->count;
    apr_thread_mutex_unlock(e->lock);
}
