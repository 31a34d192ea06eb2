/* ark-cached: Redis Sentinel for the Redis tier. See cs_sentinel.h. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "../common/sentinel.h"
#include "cs_log.h"
#include "cs_sentinel.h"

struct cs_sentinel {
    pthread_mutex_t lock;
    sentinel_state_t st;
    char *password;
    int connect_ms, io_ms;
};

int cs_sentinel_create(cs_sentinel_t **ps, const char *master,
                       const char *list, const char *password,
                       int connect_ms, int io_ms, char *err, size_t errlen)
{
    cs_sentinel_t *s = cs_calloc(1, sizeof(*s));
    char why[256];

    *ps = NULL;
    if (sentinel_state_init_list(&s->st, master, list, why, sizeof(why))
        != 0) {
        snprintf(err, errlen, "Redis Sentinel: %s", why);
        cs_free(s);
        return CS_ERR;
    }
    s->st.self_paced = 1;  /* cs_redis.c paces probes (one at a time) */
    s->password = password ? cs_strndup(password, strlen(password)) : NULL;
    s->connect_ms = connect_ms > 0 ? connect_ms : 50;
    s->io_ms = io_ms > 0 ? io_ms : 100;
    pthread_mutex_init(&s->lock, NULL);
    *ps = s;
    return CS_OK;
}

void cs_sentinel_free(cs_sentinel_t *s)
{
    if (!s) {
        return;
    }
    if (s->password) {
        memset(s->password, 0, strlen(s->password));
        cs_free(s->password);
    }
    pthread_mutex_destroy(&s->lock);
    cs_free(s);
}

int cs_sentinel_master(cs_sentinel_t *s, char *host, size_t hostlen,
                       int *port, uint64_t *gen, char *err, size_t errlen)
{
    sentinel_addr_t m;
    sentinel_step_t step;
    char why[512];
    int first, answered = 0, found, changed;

    pthread_mutex_lock(&s->lock);
    step = sentinel_begin(&s->st, sentinel_now_us(), &m, gen, &first);
    pthread_mutex_unlock(&s->lock);
    if (step == SENTINEL_WAIT) {
        snprintf(err, errlen, "no master of '%s' known yet (the Sentinels "
                 "are being asked, or will be shortly)", s->st.master_name);
        return CS_ERR;
    }
    if (step == SENTINEL_RESOLVE) {
        found = sentinel_query_all(&s->st, first, s->password, s->connect_ms,
                                   s->io_ms, s->connect_ms + s->io_ms, &m,
                                   &answered, why, sizeof(why)) == 0;
        pthread_mutex_lock(&s->lock);
        changed = sentinel_resolved(&s->st, sentinel_now_us(),
                                    found ? &m : NULL, answered, gen);
        pthread_mutex_unlock(&s->lock);
        if (!found) {
            snprintf(err, errlen, "%s", why);
            return CS_ERR;
        }
        if (changed) {
            cs_log(CS_LOG_NOTICE, CS_LOGNO(00807) "the Sentinels name "
                   "%s:%d as the Redis master of '%s'", m.host, m.port,
                   s->st.master_name);
        }
    }
    snprintf(host, hostlen, "%s", m.host);
    *port = m.port;
    return CS_OK;
}

int cs_sentinel_check(cs_sentinel_t *s, redisContext *c, uint64_t gen,
                      char *err, size_t errlen)
{
    sentinel_role_t role = sentinel_check_role(c, err, errlen);

    if (role == SENTINEL_ROLE_MASTER) {
        pthread_mutex_lock(&s->lock);
        sentinel_confirmed(&s->st, gen);
        pthread_mutex_unlock(&s->lock);
        return CS_OK;
    }
    if (!c->err) {
        cs_sentinel_failed(s, gen, role == SENTINEL_ROLE_ERROR
                                       ? "no ROLE answer" : "not a master");
    }
    return CS_ERR;
}

void cs_sentinel_failed(cs_sentinel_t *s, uint64_t gen, const char *why)
{
    sentinel_addr_t m;
    int forgot;

    pthread_mutex_lock(&s->lock);
    m = s->st.master;
    forgot = sentinel_forget(&s->st, sentinel_now_us(), gen);
    pthread_mutex_unlock(&s->lock);
    if (forgot) {
        cs_log(CS_LOG_WARNING, CS_LOGNO(00808) "Redis master %s:%d of '%s' "
               "lost (%s); asking the Sentinels again", m.host, m.port,
               s->st.master_name, why);
    }
}

uint64_t cs_sentinel_generation(cs_sentinel_t *s)
{
    uint64_t g;

    pthread_mutex_lock(&s->lock);
    g = s->st.generation;
    pthread_mutex_unlock(&s->lock);
    return g;
}

void cs_sentinel_endpoint(cs_sentinel_t *s, char *buf, size_t n)
{
    pthread_mutex_lock(&s->lock);
    if (s->st.known) {
        snprintf(buf, n, "%s:%d", s->st.master.host, s->st.master.port);
    }
    else {
        snprintf(buf, n, "sentinel master %s", s->st.master_name);
    }
    pthread_mutex_unlock(&s->lock);
}

void cs_sentinel_stats(cs_sentinel_t *s, cs_buf_t *info)
{
    char ep[SENTINEL_HOST_LEN + 32];

    cs_sentinel_endpoint(s, ep, sizeof(ep));
    pthread_mutex_lock(&s->lock);
    cs_buf_printf(info,
                  "sentinel_master_name:%s\r\n"
                  "sentinel_master:%s\r\n"
                  "sentinel_resolutions:%" PRIu64 "\r\n"
                  "sentinel_failures:%" PRIu64 "\r\n"
                  "sentinel_master_changes:%" PRIu64 "\r\n"
                  "sentinel_masters_lost:%" PRIu64 "\r\n",
                  s->st.master_name, s->st.known ? ep : "",
                  s->st.resolutions, s->st.failures, s->st.changes,
                  s->st.forgets);
    pthread_mutex_unlock(&s->lock);
}
