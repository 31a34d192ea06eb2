/* The ark-cached client. See ark_cache_client.h.
 *
 * A call takes an idle connection (or connects to the first server that
 * accepts within connect_timeout), sends one command with redisCommandArgv
 * (binary-safe arguments), checks the reply's shape, and puts the
 * connection back; on any error the connection is dropped, never reused.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <hiredis/hiredis.h>

#include "ark_cache_client.h"

struct ark_cache_client_t {
    ark_cache_client_conf_t conf;
    apr_thread_mutex_t *lock;
    redisContext **idle;
    int n_idle;
    _Atomic unsigned int consecutive;
    _Atomic apr_time_t open_until;
    _Atomic apr_time_t last_log;
    _Atomic apr_uint64_t lookups, hits, misses, stores, errors, skipped;
};

static struct timeval to_tv(apr_interval_time_t t)
{
    struct timeval tv;

    tv.tv_sec = (long)apr_time_sec(t);
    tv.tv_usec = (long)apr_time_usec(t);
    return tv;
}

static apr_status_t client_cleanup(void *d)
{
    ark_cache_client_t *c = d;
    int i;

    for (i = 0; i < c->n_idle; i++) {
        redisFree(c->idle[i]);
    }
    c->n_idle = 0;
    return APR_SUCCESS;
}

/* Appends the optional "TRACE <traceparent>" pair (ark-cached logs it). */
static void add_trace(const char **argv, size_t *lens, int *argc,
                      const char *traceparent)
{
    if (traceparent) {
        argv[*argc] = "TRACE";
        lens[(*argc)++] = 5;
        argv[*argc] = traceparent;
        lens[(*argc)++] = strlen(traceparent);
    }
}

apr_status_t ark_cache_client_create(ark_cache_client_t **pc,
                                     const ark_cache_client_conf_t *conf,
                                     apr_pool_t *p)
{
    ark_cache_client_t *c = apr_pcalloc(p, sizeof(*c));

    c->conf = *conf;
    if (c->conf.max_idle <= 0) {
        c->conf.max_idle = 16;
    }
    c->idle = apr_pcalloc(p, sizeof(redisContext *)
                             * (apr_size_t)c->conf.max_idle);
    apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p);
    apr_pool_cleanup_register(p, c, client_cleanup, apr_pool_cleanup_null);
    *pc = c;
    return APR_SUCCESS;
}

/* Connects to the first server that accepts; NULL with *detail if none. */
static redisContext *connect_any(ark_cache_client_t *c, const char **detail,
                                 apr_pool_t *p)
{
    int i;

    for (i = 0; c->conf.servers && i < c->conf.servers->nelts; i++) {
        const char *addr = APR_ARRAY_IDX(c->conf.servers, i, const char *);
        redisContext *rc;

        if (!strncmp(addr, "unix:", 5)) {
            rc = redisConnectUnixWithTimeout(addr + 5,
                                             to_tv(c->conf.connect_timeout));
        }
        else {
            const char *colon = strrchr(addr, ':');
            char *host = apr_pstrmemdup(p, addr, colon ? (apr_size_t)(colon
                                                          - addr)
                                                       : strlen(addr));

            rc = redisConnectWithTimeout(host, colon ? atoi(colon + 1) : 7480,
                                         to_tv(c->conf.connect_timeout));
        }
        if (!rc || rc->err) {
            *detail = apr_psprintf(p, "cannot connect to %s: %s", addr,
                                   rc ? rc->errstr : "out of memory");
            if (rc) {
                redisFree(rc);
            }
            continue;
        }
        redisSetTimeout(rc, to_tv(c->conf.call_timeout));
        if (c->conf.password) {
            redisReply *r = redisCommand(rc, "AUTH %s", c->conf.password);

            if (!r || r->type == REDIS_REPLY_ERROR) {
                *detail = apr_psprintf(p, "%s refused our AUTH", addr);
                if (r) {
                    freeReplyObject(r);
                }
                redisFree(rc);
                continue;
            }
            freeReplyObject(r);
        }
        return rc;
    }
    if (!c->conf.servers || c->conf.servers->nelts == 0) {
        *detail = "no ArkCacheServer configured";
    }
    return NULL;
}

/* An idle connection (*reused = 1) or a new one. */
static redisContext *conn_get(ark_cache_client_t *c, int *reused,
                              const char **detail, apr_pool_t *p)
{
    redisContext *rc = NULL;

    apr_thread_mutex_lock(c->lock);
    if (c->n_idle > 0) {
        rc = c->idle[--c->n_idle];
    }
    apr_thread_mutex_unlock(c->lock);
    *reused = rc != NULL;
    return rc ? rc : connect_any(c, detail, p);
}

static void conn_put(ark_cache_client_t *c, redisContext *rc)
{
    apr_thread_mutex_lock(c->lock);
    if (c->n_idle < c->conf.max_idle) {
        c->idle[c->n_idle++] = rc;
        rc = NULL;
    }
    apr_thread_mutex_unlock(c->lock);
    if (rc) {
        redisFree(rc);
    }
}

static int breaker_open(ark_cache_client_t *c)
{
    if (atomic_load(&c->open_until) > apr_time_now()) {
        atomic_fetch_add(&c->skipped, 1);
        return 1;
    }
    return 0;
}

static void breaker_failure(ark_cache_client_t *c)
{
    atomic_fetch_add(&c->errors, 1);
    if (atomic_fetch_add(&c->consecutive, 1) + 1
        >= (c->conf.breaker_failures ? c->conf.breaker_failures : 3)) {
        atomic_store(&c->open_until,
                     apr_time_now() + c->conf.breaker_cooldown);
        atomic_store(&c->consecutive, 0);
    }
}

/* Runs one command; returns the reply (caller frees) or NULL with
 * *detail, having counted the failure. A kept-alive connection the
 * server closed meanwhile (ark-cached restarted) fails at once: the
 * command is then sent again, once, on a new connection. */
static redisReply *call_any(ark_cache_client_t *c, int argc,
                            const char **argv, const size_t *lens,
                            int errors_ok, const char **detail,
                            apr_pool_t *p)
{
    int reused;
    redisContext *rc = conn_get(c, &reused, detail, p);
    redisReply *r;

    if (!rc) {
        breaker_failure(c);
        return NULL;
    }
    r = redisCommandArgv(rc, argc, argv, lens);
    if (!r && reused && rc->err == REDIS_ERR_EOF) {
        redisFree(rc);
        rc = connect_any(c, detail, p);
        if (!rc) {
            breaker_failure(c);
            return NULL;
        }
        r = redisCommandArgv(rc, argc, argv, lens);
    }
    if (!r) {
        *detail = apr_psprintf(p, "call failed: %s",
                               rc->errstr[0] ? rc->errstr : "no reply");
        redisFree(rc);
        breaker_failure(c);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR && !errors_ok) {
        *detail = apr_psprintf(p, "ark-cached answered: %.200s", r->str);
        freeReplyObject(r);
        conn_put(c, rc);
        breaker_failure(c);
        return NULL;
    }
    conn_put(c, rc);
    atomic_store(&c->consecutive, 0);
    return r;
}

static redisReply *call(ark_cache_client_t *c, int argc, const char **argv,
                        const size_t *lens, const char **detail,
                        apr_pool_t *p)
{
    return call_any(c, argc, argv, lens, 0, detail, p);
}

redisReply *ark_cache_client_command(ark_cache_client_t *c, int argc,
                                     const char **argv, const size_t *lens,
                                     int *skipped, const char **detail,
                                     apr_pool_t *p)
{
    *detail = NULL;
    *skipped = 0;
    if (breaker_open(c)) {
        *skipped = 1;
        *detail = "breaker open";
        return NULL;
    }
    return call_any(c, argc, argv, lens, 1, detail, p);
}

apr_status_t ark_cache_client_lookup(ark_cache_client_t *c, const char *ns,
                                     const char *text, apr_size_t text_len,
                                     double threshold, int *found,
                                     const char **payload, apr_size_t *len,
                                     double *similarity,
                                     const char **detail, apr_pool_t *p)
{
    return ark_cache_client_lookup_traced(c, ns, text, text_len, threshold,
                                          NULL, found, payload, len,
                                          similarity, detail, p);
}

apr_status_t ark_cache_client_lookup_traced(ark_cache_client_t *c,
                                            const char *ns, const char *text,
                                            apr_size_t text_len,
                                            double threshold,
                                            const char *traceparent,
                                            int *found, const char **payload,
                                            apr_size_t *len,
                                            double *similarity,
                                            const char **detail,
                                            apr_pool_t *p)
{
    const char *argv[7];
    size_t lens[7];
    int argc = 3;
    redisReply *r;
    char tbuf[32];

    *found = 0;
    *detail = NULL;
    if (breaker_open(c)) {
        return APR_EAGAIN;
    }
    atomic_fetch_add(&c->lookups, 1);
    argv[0] = "ARK.LOOKUP";
    lens[0] = 10;
    argv[1] = ns;
    lens[1] = strlen(ns);
    argv[2] = text;
    lens[2] = text_len;
    if (threshold > 0) {
        apr_snprintf(tbuf, sizeof(tbuf), "%.4f", threshold);
        argv[3] = "THRESHOLD";
        lens[3] = 9;
        argv[4] = tbuf;
        lens[4] = strlen(tbuf);
        argc = 5;
    }
    add_trace(argv, lens, &argc, traceparent);
    r = call(c, argc, argv, lens, detail, p);
    if (!r) {
        return APR_EGENERAL;
    }
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        atomic_fetch_add(&c->misses, 1);
        return APR_SUCCESS;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2
        || r->element[0]->type != REDIS_REPLY_STRING
        || r->element[1]->type != REDIS_REPLY_STRING) {
        *detail = "ark-cached sent a malformed LOOKUP reply";
        freeReplyObject(r);
        breaker_failure(c);
        return APR_EGENERAL;
    }
    *payload = apr_pstrmemdup(p, r->element[0]->str, r->element[0]->len);
    *len = r->element[0]->len;
    *similarity = atof(r->element[1]->str);
    *found = 1;
    freeReplyObject(r);
    atomic_fetch_add(&c->hits, 1);
    return APR_SUCCESS;
}

apr_status_t ark_cache_client_store(ark_cache_client_t *c, const char *ns,
                                    const char *text, apr_size_t text_len,
                                    const char *payload, apr_size_t len,
                                    long ttl_s, const char **detail,
                                    apr_pool_t *p)
{
    return ark_cache_client_store_traced(c, ns, text, text_len, payload, len,
                                         ttl_s, NULL, detail, p);
}

apr_status_t ark_cache_client_store_traced(ark_cache_client_t *c,
                                           const char *ns, const char *text,
                                           apr_size_t text_len,
                                           const char *payload,
                                           apr_size_t len, long ttl_s,
                                           const char *traceparent,
                                           const char **detail,
                                           apr_pool_t *p)
{
    const char *argv[8];
    size_t lens[8];
    int argc = 6;
    char ttl[24];
    redisReply *r;

    *detail = NULL;
    if (breaker_open(c)) {
        return APR_EAGAIN;
    }
    apr_snprintf(ttl, sizeof(ttl), "%ld", ttl_s > 0 ? ttl_s : 3600);
    argv[0] = "ARK.STORE";
    lens[0] = 9;
    argv[1] = ns;
    lens[1] = strlen(ns);
    argv[2] = text;
    lens[2] = text_len;
    argv[3] = payload;
    lens[3] = len;
    argv[4] = "TTL";
    lens[4] = 3;
    argv[5] = ttl;
    lens[5] = strlen(ttl);
    add_trace(argv, lens, &argc, traceparent);
    r = call(c, argc, argv, lens, detail, p);
    if (!r) {
        return APR_EGENERAL;
    }
    freeReplyObject(r);
    atomic_fetch_add(&c->stores, 1);
    return APR_SUCCESS;
}

void ark_cache_client_counters(ark_cache_client_t *c,
                               ark_cache_counters_t *out)
{
    out->lookups = atomic_load(&c->lookups);
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->stores = atomic_load(&c->stores);
    out->errors = atomic_load(&c->errors);
    out->skipped = atomic_load(&c->skipped);
}

int ark_cache_client_should_log(ark_cache_client_t *c, apr_time_t interval)
{
    apr_time_t now = apr_time_now(), last = atomic_load(&c->last_log);

    return now - last >= interval
           && atomic_compare_exchange_strong(&c->last_log, &last, now);
}
