/* Stores to ark-cached off the request path.
 *
 * One queue per httpd child process (created in child_init), beside the
 * cache client. After a miss, the request thread hands the answer to
 * ark_cache_queue_store(), which copies it into one allocation and puts
 * it at the tail of a FIFO under a mutex; a background thread sends the
 * ARK.STORE with the client (its own pooled connection) and waits for
 * the reply. So neither the request nor the next request on the same
 * kept-alive connection waits for the store (before, the store ran in
 * log_transaction, and the connection went back to reading only when it
 * was done).
 *
 * Bounded: at most max_bytes of answers (and ARK_CACHE_QUEUE_MAX_JOBS
 * stores) wait; beyond that a store is dropped and counted, as is one
 * skipped because the client's breaker is open. Failures go through the
 * client's counters and are reported through the log callback at most
 * once a minute (ark_cache_client_should_log). Fail-open like every
 * cache call: a lost store only costs a later miss.
 *
 * Stopping: a pre-cleanup on the pool given to create tells the thread
 * to stop after the store it is sending (bounded by the call timeout),
 * drops what is still queued and joins it.
 *
 * Thread-safe.
 */
#ifndef ARK_CACHE_QUEUE_H
#define ARK_CACHE_QUEUE_H

#include <apr_pools.h>

#include "ark_cache_client.h"

#define ARK_CACHE_QUEUE_MAX_BYTES (8 * 1024 * 1024)  /* per process */
#define ARK_CACHE_QUEUE_MAX_JOBS  4096

typedef struct ark_cache_queue_t ark_cache_queue_t;

/* Receives a message for the error log (from the queue's thread). */
typedef void ark_cache_queue_log_fn(void *baton, const char *msg);

typedef struct ark_cache_queue_counters_t {
    apr_uint64_t queued;        /* waiting now */
    apr_uint64_t sent;          /* stores ark-cached accepted */
    apr_uint64_t failed;        /* stores that failed or were skipped */
    apr_uint64_t dropped;       /* not queued: the queue was full */
} ark_cache_queue_counters_t;

/* Starts the queue's thread; max_bytes 0: ARK_CACHE_QUEUE_MAX_BYTES.
 * log may be NULL. Stopped and released with p. */
apr_status_t ark_cache_queue_create(ark_cache_queue_t **pq,
                                    ark_cache_client_t *client,
                                    apr_size_t max_bytes,
                                    ark_cache_queue_log_fn *log,
                                    void *baton, apr_pool_t *p);

/* Queues ARK.STORE ns text payload TTL ttl_s [TRACE traceparent] (every
 * argument copied; traceparent may be NULL) and returns at once:
 * APR_SUCCESS when queued, APR_EAGAIN when dropped because the queue is
 * full or stopping, APR_ENOMEM. */
apr_status_t ark_cache_queue_store(ark_cache_queue_t *q, const char *ns,
                                   const char *text, apr_size_t text_len,
                                   const char *payload, apr_size_t len,
                                   long ttl_s, const char *traceparent);

/* Waits up to timeout until nothing is queued or being sent; returns
 * 1 when idle (for tests and orderly shutdown). */
int ark_cache_queue_wait_idle(ark_cache_queue_t *q,
                              apr_interval_time_t timeout);

void ark_cache_queue_counters(ark_cache_queue_t *q,
                              ark_cache_queue_counters_t *out);

#endif /* ARK_CACHE_QUEUE_H */
