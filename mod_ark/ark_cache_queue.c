/* Stores to ark-cached off the request path. See ark_cache_queue.h. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "ark_cache_queue.h"

#define QUEUE_LOG_INTERVAL apr_time_from_sec(60)

/* One store, in one allocation: the strings follow the struct. */
typedef struct job_t {
    struct job_t *next;
    const char *ns, *text, *payload, *traceparent;
    apr_size_t text_len, len, size;
    long ttl_s;
} job_t;

struct ark_cache_queue_t {
    ark_cache_client_t *client;
    ark_cache_queue_log_fn *log;
    void *baton;
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *cond;       /* work queued, or stop */
    apr_thread_cond_t *idle_cond;  /* the queue went idle */
    apr_thread_t *thread;
    job_t *head, *tail;
    apr_size_t bytes, max_bytes;
    int jobs;
    int busy;                      /* the thread is sending one */
    int stop;
    apr_uint64_t sent, failed, dropped;
};

static void *APR_THREAD_FUNC queue_main(apr_thread_t *t, void *d)
{
    ark_cache_queue_t *q = d;
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    apr_thread_mutex_lock(q->lock);
    for (;;) {
        job_t *j;
        const char *detail = NULL;
        apr_status_t rv;

        while (!q->stop && !q->head) {
            apr_thread_cond_wait(q->cond, q->lock);
        }
        if (q->stop) {
            break;
        }
        j = q->head;
        q->head = j->next;
        if (!q->head) {
            q->tail = NULL;
        }
        q->bytes -= j->size;
        q->jobs--;
        q->busy = 1;
        apr_thread_mutex_unlock(q->lock);

        rv = ark_cache_client_store_traced(q->client, j->ns, j->text,
                                           j->text_len, j->payload, j->len,
                                           j->ttl_s, j->traceparent,
                                           &detail, p);
        if (rv != APR_SUCCESS && rv != APR_EAGAIN && q->log
            && ark_cache_client_should_log(q->client, QUEUE_LOG_INTERVAL)) {
            q->log(q->baton, apr_psprintf(p, "cache store failed (logged "
                                             "once a minute): %s",
                                          detail ? detail : ""));
        }
        free(j);
        apr_pool_clear(p);

        apr_thread_mutex_lock(q->lock);
        q->busy = 0;
        if (rv == APR_SUCCESS) {
            q->sent++;
        }
        else {
            q->failed++;
        }
        if (!q->head) {
            apr_thread_cond_broadcast(q->idle_cond);
        }
    }
    apr_thread_mutex_unlock(q->lock);
    apr_pool_destroy(p);
    /* a plain return, not apr_thread_exit() (see ark_trace_export.c) */
    (void)t;
    return NULL;
}

/* Pre-cleanup of the pool: stop and join the thread, drop what waits. */
static apr_status_t queue_stop(void *d)
{
    ark_cache_queue_t *q = d;
    apr_status_t trv;
    job_t *j;

    if (!q->thread) {
        return APR_SUCCESS;
    }
    apr_thread_mutex_lock(q->lock);
    q->stop = 1;
    apr_thread_cond_signal(q->cond);
    apr_thread_mutex_unlock(q->lock);
    apr_thread_join(&trv, q->thread);
    q->thread = NULL;
    while ((j = q->head)) {
        q->head = j->next;
        free(j);
    }
    q->tail = NULL;
    q->bytes = 0;
    q->jobs = 0;
    return APR_SUCCESS;
}

apr_status_t ark_cache_queue_create(ark_cache_queue_t **pq,
                                    ark_cache_client_t *client,
                                    apr_size_t max_bytes,
                                    ark_cache_queue_log_fn *log,
                                    void *baton, apr_pool_t *p)
{
    ark_cache_queue_t *q = apr_pcalloc(p, sizeof(*q));
    apr_threadattr_t *attr;
    apr_status_t rv;

    q->client = client;
    q->max_bytes = max_bytes ? max_bytes : ARK_CACHE_QUEUE_MAX_BYTES;
    q->log = log;
    q->baton = baton;
    if ((rv = apr_thread_mutex_create(&q->lock, APR_THREAD_MUTEX_DEFAULT,
                                      p)) != APR_SUCCESS
        || (rv = apr_thread_cond_create(&q->cond, p)) != APR_SUCCESS
        || (rv = apr_thread_cond_create(&q->idle_cond, p)) != APR_SUCCESS
        || (rv = apr_threadattr_create(&attr, p)) != APR_SUCCESS
        || (rv = apr_thread_create(&q->thread, attr, queue_main, q, p))
           != APR_SUCCESS) {
        return rv;
    }
    apr_pool_pre_cleanup_register(p, q, queue_stop);
    *pq = q;
    return APR_SUCCESS;
}

static const char *put(char **at, const char *s, apr_size_t n)
{
    char *out = *at;

    memcpy(out, s, n);
    out[n] = '\0';
    *at += n + 1;
    return out;
}

apr_status_t ark_cache_queue_store(ark_cache_queue_t *q, const char *ns,
                                   const char *text, apr_size_t text_len,
                                   const char *payload, apr_size_t len,
                                   long ttl_s, const char *traceparent)
{
    apr_size_t ns_len = strlen(ns);
    apr_size_t tp_len = traceparent ? strlen(traceparent) : 0;
    apr_size_t size = sizeof(job_t) + ns_len + text_len + len + tp_len + 4;
    job_t *j;
    char *at;

    apr_thread_mutex_lock(q->lock);
    if (q->stop || q->bytes + size > q->max_bytes
        || q->jobs >= ARK_CACHE_QUEUE_MAX_JOBS) {
        q->dropped++;
        apr_thread_mutex_unlock(q->lock);
        return APR_EAGAIN;
    }
    q->bytes += size;              /* reserved before the copy */
    q->jobs++;
    apr_thread_mutex_unlock(q->lock);

    j = malloc(size);
    if (!j) {
        apr_thread_mutex_lock(q->lock);
        q->bytes -= size;
        q->jobs--;
        q->dropped++;
        apr_thread_mutex_unlock(q->lock);
        return APR_ENOMEM;
    }
    at = (char *)(j + 1);
    j->next = NULL;
    j->size = size;
    j->ttl_s = ttl_s;
    j->ns = put(&at, ns, ns_len);
    j->text = put(&at, text, text_len);
    j->text_len = text_len;
    j->payload = put(&at, payload, len);
    j->len = len;
    j->traceparent = traceparent ? put(&at, traceparent, tp_len) : NULL;

    apr_thread_mutex_lock(q->lock);
    if (q->tail) {
        q->tail->next = j;
    }
    else {
        q->head = j;
    }
    q->tail = j;
    apr_thread_cond_signal(q->cond);
    apr_thread_mutex_unlock(q->lock);
    return APR_SUCCESS;
}

int ark_cache_queue_wait_idle(ark_cache_queue_t *q,
                              apr_interval_time_t timeout)
{
    apr_time_t until = apr_time_now() + timeout;
    int idle;

    apr_thread_mutex_lock(q->lock);
    while (!(idle = !q->head && !q->busy) && apr_time_now() < until) {
        apr_thread_cond_timedwait(q->idle_cond, q->lock,
                                  until - apr_time_now());
    }
    apr_thread_mutex_unlock(q->lock);
    return idle;
}

void ark_cache_queue_counters(ark_cache_queue_t *q,
                              ark_cache_queue_counters_t *out)
{
    apr_thread_mutex_lock(q->lock);
    out->queued = (apr_uint64_t)q->jobs;
    out->sent = q->sent;
    out->failed = q->failed;
    out->dropped = q->dropped;
    apr_thread_mutex_unlock(q->lock);
}
