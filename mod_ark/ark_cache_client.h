/* The ark-cached client: RESP over TCP or a Unix socket, with hiredis.
 *
 * One client per httpd child process. Connections are recycled through a
 * small mutex-protected stack (like the libcurl handles of ark_http.c),
 * each with a short connect and call timeout. The cache is optional: any
 * failure (cannot connect, timeout, an error or garbage reply) is
 * reported as a failure the caller treats as a miss (fail-open), is
 * counted, and after `breaker_failures` consecutive failures the client
 * stops asking for `breaker_cooldown` (calls return APR_EAGAIN at once).
 * Several server addresses may be given; a connection goes to the first
 * that answers.
 *
 * Sentinel mode (sentinel_master set; the governance Redis): the servers
 * are Redis Sentinels. A connection goes to the master they name
 * (common/sentinel.h), checked with ROLE; a connection error, a READONLY
 * reply or a ROLE mismatch forgets the master and drops every connection
 * made to it, and the Sentinels are asked again (with a back-off of
 * 50 ms doubling to 1 s). One connection attempt (Sentinel round, master
 * connect, AUTH, ROLE) stays within connect_timeout + call_timeout for
 * the Sentinel round plus connect_timeout and two call_timeouts.
 *
 * Thread-safe. Counters are per process.
 */
#ifndef ARK_CACHE_CLIENT_H
#define ARK_CACHE_CLIENT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

typedef struct ark_cache_client_t ark_cache_client_t;
struct redisReply;

typedef struct ark_cache_client_conf_t {
    apr_array_header_t *servers;        /* const char *: "host:port" or
                                         * "unix:/path" */
    const char *password;               /* AUTH, or NULL */
    apr_interval_time_t connect_timeout;
    apr_interval_time_t call_timeout;
    unsigned int breaker_failures;      /* consecutive failures to open */
    apr_interval_time_t breaker_cooldown;
    int max_idle;                       /* idle connections kept */
    const char *sentinel_master;        /* servers are Sentinels naming
                                         * this master; NULL: plain */
    const char *sentinel_password;      /* AUTH towards the Sentinels */
    int wait_replicas;                  /* ark_cache_client_command_wait:
                                         * WAIT for this many replicas */
    /* Told (from any thread, no lock held) when the Sentinels name a new
     * master (warn 0) or the master is lost (warn 1); msg holds no
     * secret. NULL: not told. */
    void (*on_event)(void *baton, int warn, const char *msg);
    void *baton;
} ark_cache_client_conf_t;

typedef struct ark_cache_counters_t {
    apr_uint64_t lookups, hits, misses, stores, errors, skipped;
} ark_cache_counters_t;

/* Creates the client (no connection yet); released with p. */
apr_status_t ark_cache_client_create(ark_cache_client_t **pc,
                                     const ark_cache_client_conf_t *conf,
                                     apr_pool_t *p);

/* ARK.LOOKUP ns text [THRESHOLD t] (t <= 0: the server's default).
 * APR_SUCCESS: *found says whether there was a hit; then *payload (from
 * p), *len and *similarity are set. APR_EAGAIN: skipped, the breaker is
 * open. Anything else: the cache failed (*detail, from p, says how, for
 * logs). */
apr_status_t ark_cache_client_lookup(ark_cache_client_t *c, const char *ns,
                                     const char *text, apr_size_t text_len,
                                     double threshold, int *found,
                                     const char **payload, apr_size_t *len,
                                     double *similarity,
                                     const char **detail, apr_pool_t *p);

/* ARK.STORE ns text payload TTL ttl_s. Same status convention. */
apr_status_t ark_cache_client_store(ark_cache_client_t *c, const char *ns,
                                    const char *text, apr_size_t text_len,
                                    const char *payload, apr_size_t len,
                                    long ttl_s, const char **detail,
                                    apr_pool_t *p);

/* The same two calls with the request's W3C traceparent (borrowed; NULL:
 * none), sent as a trailing "TRACE <traceparent>" option pair so that
 * ark-cached can log the trace id (docs/ark-cached.md). */
apr_status_t ark_cache_client_lookup_traced(ark_cache_client_t *c,
                                            const char *ns, const char *text,
                                            apr_size_t text_len,
                                            double threshold,
                                            const char *traceparent,
                                            int *found, const char **payload,
                                            apr_size_t *len,
                                            double *similarity,
                                            const char **detail,
                                            apr_pool_t *p);
apr_status_t ark_cache_client_store_traced(ark_cache_client_t *c,
                                           const char *ns, const char *text,
                                           apr_size_t text_len,
                                           const char *payload,
                                           apr_size_t len, long ttl_s,
                                           const char *traceparent,
                                           const char **detail,
                                           apr_pool_t *p);

/* Runs any command (the governance Redis client uses this). Returns the
 * reply, to be released with freeReplyObject, or NULL with *detail (from
 * p) after counting a failure. An error reply is returned as a reply
 * (REDIS_REPLY_ERROR, e.g. NOSCRIPT) and counts as a success of the
 * connection. APR_EAGAIN-like skipping: NULL with *detail "breaker open"
 * and *skipped = 1 while the breaker is open. */
struct redisReply *ark_cache_client_command(ark_cache_client_t *c, int argc,
                                            const char **argv,
                                            const size_t *lens,
                                            int *skipped,
                                            const char **detail,
                                            apr_pool_t *p);

/* ark_cache_client_command, and then, on the same connection and in the
 * same round trip, WAIT wait_replicas timeout (half the call timeout, at
 * least 1 ms) when conf.wait_replicas > 0. *acked receives the number of
 * replicas that confirmed the writes (conf.wait_replicas or more: all
 * good), or -1 when WAIT failed or was not sent. Use it for writes that
 * must survive a failover. */
struct redisReply *ark_cache_client_command_wait(ark_cache_client_t *c,
                                                 int argc,
                                                 const char **argv,
                                                 const size_t *lens,
                                                 int *skipped, int *acked,
                                                 const char **detail,
                                                 apr_pool_t *p);

/* Sentinel mode: "host:port" of the master in use ("" when none is
 * known), from p, and the number of master changes seen. */
const char *ark_cache_client_master(ark_cache_client_t *c,
                                    apr_uint64_t *changes, apr_pool_t *p);

/* A snapshot of the counters. */
void ark_cache_client_counters(ark_cache_client_t *c,
                               ark_cache_counters_t *out);

/* Records a failure that should be logged now (1) or was already logged
 * within interval (0): a log at most once per interval per process. */
int ark_cache_client_should_log(ark_cache_client_t *c, apr_time_t interval);

#endif /* ARK_CACHE_CLIENT_H */
