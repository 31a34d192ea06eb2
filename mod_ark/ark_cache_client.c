/* The ark-cached client. See ark_cache_client.h.
 *
 * A call takes an idle connection (or connects to the first server that
 * accepts within connect_timeout), sends one command with redisCommandArgv
 * (binary-safe arguments), checks the reply's shape, and puts the
 * connection back; on any error the connection is dropped, never reused.
 *
 * In Sentinel mode the master's address comes from common/sentinel.c,
 * whose state lives here under c->lock. Every connection carries the
 * generation of the master it was made to (idle_gen); one of an older
 * generation (the master was forgotten since) is closed, never used.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <hiredis/hiredis.h>

#include "ark_cache_client.h"
#include "../common/sentinel.h"

struct ark_cache_client_t {
    ark_cache_client_conf_t conf;
    apr_thread_mutex_t *lock;
    redisContext **idle;
    apr_uint64_t *idle_gen;            /* generation of each idle one */
    int n_idle;
    sentinel_state_t *sen;             /* NULL: not in Sentinel mode */
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
    c->idle_gen = apr_pcalloc(p, sizeof(apr_uint64_t)
                                 * (apr_size_t)c->conf.max_idle);
    if (c->conf.sentinel_master) {
        const char **addrs;
        char err[256];
        int i, n = c->conf.servers ? c->conf.servers->nelts : 0;

        addrs = apr_pcalloc(p, sizeof(char *) * (apr_size_t)(n + 1));
        for (i = 0; i < n; i++) {
            addrs[i] = APR_ARRAY_IDX(c->conf.servers, i, const char *);
        }
        c->sen = apr_pcalloc(p, sizeof(*c->sen));
        if (sentinel_state_init(c->sen, c->conf.sentinel_master, addrs, n,
                                err, sizeof(err)) != 0) {
            return APR_EINVAL;
        }
    }
    apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p);
    apr_pool_cleanup_register(p, c, client_cleanup, apr_pool_cleanup_null);
    *pc = c;
    return APR_SUCCESS;
}

static int to_ms(apr_interval_time_t t)
{
    apr_interval_time_t ms = t / 1000;

    return ms < 1 ? 1 : ms > 600000 ? 600000 : (int)ms;
}

static void tell(ark_cache_client_t *c, int warn, const char *msg)
{
    if (c->conf.on_event) {
        c->conf.on_event(c->conf.baton, warn, msg);
    }
}

/* The master of generation gen failed as a master (connection error,
 * READONLY, ROLE): forget it, so that the Sentinels are asked again. */
static void master_failed(ark_cache_client_t *c, apr_uint64_t gen,
                          const char *why, apr_pool_t *p)
{
    sentinel_addr_t m;
    int forgot;

    if (!c->sen) {
        return;
    }
    apr_thread_mutex_lock(c->lock);
    m = c->sen->master;
    forgot = sentinel_forget(c->sen, sentinel_now_us(), gen);
    apr_thread_mutex_unlock(c->lock);
    if (forgot) {
        tell(c, 1, apr_psprintf(p, "Redis master %s:%d of '%s' lost (%s); "
                                "asking the Sentinels again", m.host,
                                m.port, c->sen->master_name, why));
    }
}

/* Sentinel mode: connects to the master the Sentinels name (asking them
 * when it is not known), AUTHs and checks ROLE. *gen receives the
 * master's generation. NULL with *detail on failure. */
static redisContext *connect_master(ark_cache_client_t *c,
                                    apr_uint64_t *gen, const char **detail,
                                    apr_pool_t *p)
{
    sentinel_addr_t m;
    sentinel_step_t step;
    sentinel_role_t role;
    redisContext *rc;
    char err[512];
    int first, answered = 0, changed, found;
    uint64_t g;

    apr_thread_mutex_lock(c->lock);
    step = sentinel_begin(c->sen, sentinel_now_us(), &m, &g, &first);
    apr_thread_mutex_unlock(c->lock);
    if (step == SENTINEL_WAIT) {
        *detail = apr_psprintf(p, "no Redis master of '%s' known yet "
                               "(the Sentinels are being asked, or will "
                               "be shortly)", c->sen->master_name);
        return NULL;
    }
    if (step == SENTINEL_RESOLVE) {
        found = sentinel_query_all(c->sen, first, c->conf.sentinel_password,
                                   to_ms(c->conf.connect_timeout),
                                   to_ms(c->conf.call_timeout),
                                   to_ms(c->conf.connect_timeout
                                         + c->conf.call_timeout),
                                   &m, &answered, err, sizeof(err)) == 0;
        apr_thread_mutex_lock(c->lock);
        changed = sentinel_resolved(c->sen, sentinel_now_us(),
                                    found ? &m : NULL, answered, &g);
        apr_thread_mutex_unlock(c->lock);
        if (!found) {
            *detail = apr_pstrdup(p, err);
            return NULL;
        }
        if (changed) {
            tell(c, 0, apr_psprintf(p, "the Sentinels name %s:%d as the "
                                    "Redis master of '%s'", m.host, m.port,
                                    c->sen->master_name));
        }
    }
    *gen = g;
    rc = redisConnectWithTimeout(m.host, m.port,
                                 to_tv(c->conf.connect_timeout));
    if (!rc || rc->err) {
        *detail = apr_psprintf(p, "cannot connect to the Redis master "
                               "%s:%d: %s", m.host, m.port,
                               rc ? rc->errstr : "out of memory");
        if (rc) {
            redisFree(rc);
        }
        master_failed(c, g, "cannot connect", p);
        return NULL;
    }
    redisSetTimeout(rc, to_tv(c->conf.call_timeout));
    if (c->conf.password) {
        redisReply *r = redisCommand(rc, "AUTH %s", c->conf.password);

        if (!r || r->type == REDIS_REPLY_ERROR) {
            *detail = apr_psprintf(p, "the Redis master %s:%d refused our "
                                   "AUTH", m.host, m.port);
            if (r) {
                freeReplyObject(r);
            }
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    role = sentinel_check_role(rc, err, sizeof(err));
    if (role != SENTINEL_ROLE_MASTER) {
        *detail = apr_psprintf(p, "%s:%d: %s", m.host, m.port, err);
        redisFree(rc);
        master_failed(c, g, role == SENTINEL_ROLE_ERROR ? "no ROLE answer"
                                                        : "not a master", p);
        return NULL;
    }
    apr_thread_mutex_lock(c->lock);
    sentinel_confirmed(c->sen, g);
    apr_thread_mutex_unlock(c->lock);
    return rc;
}

/* Connects to the first server that accepts; NULL with *detail if none. */
static redisContext *connect_any(ark_cache_client_t *c, apr_uint64_t *gen,
                                 const char **detail, apr_pool_t *p)
{
    int i;

    *gen = 0;
    if (c->sen) {
        return connect_master(c, gen, detail, p);
    }
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

/* An idle connection (*reused = 1) or a new one; *gen its master's
 * generation (Sentinel mode). */
static redisContext *conn_get(ark_cache_client_t *c, int *reused,
                              apr_uint64_t *gen, const char **detail,
                              apr_pool_t *p)
{
    redisContext *rc = NULL, *stale[8];
    int n_stale = 0, i;

    apr_thread_mutex_lock(c->lock);
    while (c->n_idle > 0) {
        rc = c->idle[--c->n_idle];
        *gen = c->idle_gen[c->n_idle];
        if (!c->sen || (c->sen->known && *gen == c->sen->generation)) {
            break;
        }
        if (n_stale < 8) {             /* made to a forgotten master */
            stale[n_stale++] = rc;
        }
        else {
            c->idle[c->n_idle++] = rc; /* closed on a later call */
            rc = NULL;
            break;
        }
        rc = NULL;
    }
    apr_thread_mutex_unlock(c->lock);
    for (i = 0; i < n_stale; i++) {
        redisFree(stale[i]);
    }
    *reused = rc != NULL;
    return rc ? rc : connect_any(c, gen, detail, p);
}

static void conn_put(ark_cache_client_t *c, redisContext *rc,
                     apr_uint64_t gen)
{
    apr_thread_mutex_lock(c->lock);
    if (c->n_idle < c->conf.max_idle) {
        c->idle_gen[c->n_idle] = gen;
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

/* Sends one command, and WAIT wait_n when wait_n > 0, pipelined. Returns
 * the command's reply (NULL: the connection failed before it came);
 * *acked the WAIT answer or -1. */
static redisReply *exec_cmd(ark_cache_client_t *c, redisContext *rc,
                            int argc, const char **argv, const size_t *lens,
                            int wait_n, long long *acked)
{
    void *r = NULL, *w = NULL;

    *acked = -1;
    if (wait_n <= 0) {
        return redisCommandArgv(rc, argc, argv, lens);
    }
    if (redisAppendCommandArgv(rc, argc, argv, lens) != REDIS_OK
        || redisAppendCommand(rc, "WAIT %d %d", wait_n,
                              to_ms(c->conf.call_timeout / 2)) != REDIS_OK
        || redisGetReply(rc, &r) != REDIS_OK) {
        return NULL;
    }
    if (redisGetReply(rc, &w) == REDIS_OK && w) {
        if (((redisReply *)w)->type == REDIS_REPLY_INTEGER) {
            *acked = ((redisReply *)w)->integer;
        }
        freeReplyObject(w);
    }
    return r;
}

/* Whether an error reply says the server is not (or no longer) the
 * master: a replica refusing writes, or one cut off from its master. */
static int not_master_reply(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR
           && (!strncmp(r->str, "READONLY", 8)
               || !strncmp(r->str, "MASTERDOWN", 10));
}

/* Runs one command; returns the reply (caller frees) or NULL with
 * *detail, having counted the failure. A kept-alive connection the
 * server closed meanwhile (ark-cached restarted) fails at once: the
 * command is then sent again, once, on a new connection. */
static redisReply *call_any(ark_cache_client_t *c, int argc,
                            const char **argv, const size_t *lens,
                            int errors_ok, int wait_n, long long *acked,
                            const char **detail, apr_pool_t *p)
{
    int reused;
    apr_uint64_t gen;
    redisContext *rc = conn_get(c, &reused, &gen, detail, p);
    redisReply *r;

    *acked = -1;
    if (!rc) {
        breaker_failure(c);
        return NULL;
    }
    r = exec_cmd(c, rc, argc, argv, lens, wait_n, acked);
    if (!r && reused && rc->err == REDIS_ERR_EOF) {
        redisFree(rc);
        rc = connect_any(c, &gen, detail, p);
        if (!rc) {
            breaker_failure(c);
            return NULL;
        }
        r = exec_cmd(c, rc, argc, argv, lens, wait_n, acked);
    }
    if (!r) {
        *detail = apr_psprintf(p, "call failed: %s",
                               rc->errstr[0] ? rc->errstr : "no reply");
        redisFree(rc);
        breaker_failure(c);
        master_failed(c, gen, "no answer", p);
        return NULL;
    }
    if (c->sen && not_master_reply(r)) {
        *detail = apr_psprintf(p, "Redis is no longer the master: %.100s",
                               r->str);
        freeReplyObject(r);
        redisFree(rc);
        breaker_failure(c);
        master_failed(c, gen, "it refused a write as a replica", p);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR && !errors_ok) {
        *detail = apr_psprintf(p, "ark-cached answered: %.200s", r->str);
        freeReplyObject(r);
        conn_put(c, rc, gen);
        breaker_failure(c);
        return NULL;
    }
    if (rc->err) {                     /* WAIT's answer did not come */
        redisFree(rc);
    }
    else {
        conn_put(c, rc, gen);
    }
    atomic_store(&c->consecutive, 0);
    return r;
}

static redisReply *call(ark_cache_client_t *c, int argc, const char **argv,
                        const size_t *lens, const char **detail,
                        apr_pool_t *p)
{
    long long acked;

    return call_any(c, argc, argv, lens, 0, 0, &acked, detail, p);
}

static redisReply *command(ark_cache_client_t *c, int argc,
                           const char **argv, const size_t *lens,
                           int wait_n, int *skipped, int *acked,
                           const char **detail, apr_pool_t *p)
{
    long long a = -1;
    redisReply *r;

    *detail = NULL;
    *skipped = 0;
    *acked = -1;
    if (breaker_open(c)) {
        *skipped = 1;
        *detail = "breaker open";
        return NULL;
    }
    r = call_any(c, argc, argv, lens, 1, wait_n, &a, detail, p);
    *acked = a < 0 ? -1 : a > 1000000 ? 1000000 : (int)a;
    return r;
}

redisReply *ark_cache_client_command(ark_cache_client_t *c, int argc,
                                     const char **argv, const size_t *lens,
                                     int *skipped, const char **detail,
                                     apr_pool_t *p)
{
    int acked;

    return command(c, argc, argv, lens, 0, skipped, &acked, detail, p);
}

redisReply *ark_cache_client_command_wait(ark_cache_client_t *c, int argc,
                                          const char **argv,
                                          const size_t *lens, int *skipped,
                                          int *acked, const char **detail,
                                          apr_pool_t *p)
{
    return command(c, argc, argv, lens, c->conf.wait_replicas, skipped,
                   acked, detail, p);
}

const char *ark_cache_client_master(ark_cache_client_t *c,
                                    apr_uint64_t *changes, apr_pool_t *p)
{
    const char *m = "";

    *changes = 0;
    if (!c->sen) {
        return m;
    }
    apr_thread_mutex_lock(c->lock);
    if (c->sen->known) {
        m = apr_psprintf(p, "%s:%d", c->sen->master.host,
                         c->sen->master.port);
    }
    *changes = c->sen->changes;
    apr_thread_mutex_unlock(c->lock);
    return m;
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
