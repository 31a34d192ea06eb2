/* Redis Sentinel master resolution. See sentinel.h.
 *
 * The state functions are pure (the caller passes the time and holds the
 * lock); the two I/O functions use hiredis's blocking API with a timeout
 * on every connect, read and write.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "sentinel.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int64_t sentinel_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int sentinel_addr_parse(sentinel_addr_t *a, const char *s, size_t len)
{
    const char *colon = NULL, *host = s;
    size_t i, hlen;
    long port = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == ':') {
            colon = s + i;
        }
    }
    if (!colon || colon == s || colon + 1 == s + len
        || (size_t)(s + len - colon - 1) > 5) {
        return -1;
    }
    for (i = (size_t)(colon + 1 - s); i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        port = port * 10 + (s[i] - '0');
    }
    hlen = (size_t)(colon - s);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (port < 1 || port > 65535 || hlen == 0 || hlen >= SENTINEL_HOST_LEN) {
        return -1;
    }
    for (i = 0; i < hlen; i++) {
        if ((unsigned char)host[i] <= ' ' || host[i] == ',') {
            return -1;
        }
    }
    memcpy(a->host, host, hlen);
    a->host[hlen] = '\0';
    a->port = (int)port;
    return 0;
}

int sentinel_state_init(sentinel_state_t *s, const char *master_name,
                        const char *const *addrs, int n, char *err,
                        size_t errlen)
{
    int i;

    memset(s, 0, sizeof(*s));
    if (!master_name || !*master_name
        || strlen(master_name) >= SENTINEL_NAME_LEN
        || strpbrk(master_name, " \t\r\n")) {
        set_err(err, errlen, "the Sentinel master name must be 1-%d "
                "characters without blanks", SENTINEL_NAME_LEN - 1);
        return -1;
    }
    if (n < 1 || n > SENTINEL_MAX) {
        set_err(err, errlen, "give 1 to %d Sentinel addresses (got %d)",
                SENTINEL_MAX, n);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (sentinel_addr_parse(&s->sentinels[i], addrs[i],
                                strlen(addrs[i])) != 0) {
            set_err(err, errlen, "Sentinel address '%.80s' is not "
                    "host:port", addrs[i]);
            return -1;
        }
    }
    snprintf(s->master_name, sizeof(s->master_name), "%s", master_name);
    s->n = n;
    return 0;
}

int sentinel_state_init_list(sentinel_state_t *s, const char *master_name,
                             const char *list, char *err, size_t errlen)
{
    char buf[SENTINEL_MAX + 1][SENTINEL_HOST_LEN + 8];
    const char *ptrs[SENTINEL_MAX + 1], *p = list ? list : "";
    int n = 0;
    size_t len;

    while (*p) {
        p += strspn(p, ", \t");
        len = strcspn(p, ", \t");
        if (len == 0) {
            break;
        }
        if (n > SENTINEL_MAX) {
            n++;
            break;
        }
        if (len >= sizeof(buf[0])) {
            set_err(err, errlen, "Sentinel address '%.40s...' is too long",
                    p);
            memset(s, 0, sizeof(*s));
            return -1;
        }
        memcpy(buf[n], p, len);
        buf[n][len] = '\0';
        ptrs[n] = buf[n];
        n++;
        p += len;
    }
    return sentinel_state_init(s, master_name, ptrs, n, err, errlen);
}

static int addr_eq(const sentinel_addr_t *a, const sentinel_addr_t *b)
{
    return a->port == b->port && !strcmp(a->host, b->host);
}

static void schedule_retry(sentinel_state_t *s, int64_t now_us)
{
    if (s->self_paced) {
        s->retry_at_us = now_us;
        return;
    }
    s->retry_at_us = now_us + (int64_t)s->backoff_ms * 1000;
    s->backoff_ms = s->backoff_ms == 0 ? SENTINEL_BACKOFF_MIN_MS
                    : s->backoff_ms * 2 > SENTINEL_BACKOFF_MAX_MS
                        ? SENTINEL_BACKOFF_MAX_MS
                        : s->backoff_ms * 2;
}

sentinel_step_t sentinel_begin(sentinel_state_t *s, int64_t now_us,
                               sentinel_addr_t *master, uint64_t *gen,
                               int *first)
{
    *gen = s->generation;
    *first = s->first;
    if (s->known) {
        *master = s->master;
        return SENTINEL_USE;
    }
    if (s->resolving || now_us < s->retry_at_us) {
        return SENTINEL_WAIT;
    }
    s->resolving = 1;
    return SENTINEL_RESOLVE;
}

int sentinel_resolved(sentinel_state_t *s, int64_t now_us,
                      const sentinel_addr_t *found, int answered,
                      uint64_t *gen)
{
    int changed = 0;

    s->resolving = 0;
    if (!found) {
        s->failures++;
        schedule_retry(s, now_us);
        *gen = s->generation;
        return 0;
    }
    s->resolutions++;
    if (answered >= 0 && answered < s->n) {
        s->first = answered;
    }
    if (s->master.port && !addr_eq(&s->master, found)) {
        s->changes++;
        changed = 1;
    }
    s->master = *found;
    s->known = 1;
    s->generation++;
    *gen = s->generation;
    return changed;
}

int sentinel_forget(sentinel_state_t *s, int64_t now_us, uint64_t gen)
{
    if (gen != s->generation || !s->known) {
        return 0;
    }
    s->known = 0;
    s->generation++;
    s->forgets++;
    schedule_retry(s, now_us);
    return 1;
}

void sentinel_confirmed(sentinel_state_t *s, uint64_t gen)
{
    if (gen == s->generation && s->known) {
        s->backoff_ms = 0;
    }
}

int sentinel_parse_master(const redisReply *r, sentinel_addr_t *out)
{
    char buf[SENTINEL_HOST_LEN + 8];
    const redisReply *h, *p;
    int n;

    if (!r) {
        return -1;
    }
    if (r->type == REDIS_REPLY_NIL) {
        return 0;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        return -1;
    }
    h = r->element[0];
    p = r->element[1];
    if (!h || !p || h->type != REDIS_REPLY_STRING
        || p->type != REDIS_REPLY_STRING || h->len >= SENTINEL_HOST_LEN
        || p->len > 5) {
        return -1;
    }
    if (memchr(h->str, ':', h->len)) {
        n = snprintf(buf, sizeof(buf), "[%.*s]:%.*s", (int)h->len, h->str,
                     (int)p->len, p->str);
    }
    else {
        n = snprintf(buf, sizeof(buf), "%.*s:%.*s", (int)h->len, h->str,
                     (int)p->len, p->str);
    }
    if (n < 0 || (size_t)n >= sizeof(buf)
        || sentinel_addr_parse(out, buf, (size_t)n) != 0) {
        return -1;
    }
    return 1;
}

sentinel_role_t sentinel_parse_role(const redisReply *r)
{
    const redisReply *e;

    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        return SENTINEL_ROLE_ERROR;
    }
    e = r->element[0];
    if (!e || (e->type != REDIS_REPLY_STRING
               && e->type != REDIS_REPLY_STATUS)) {
        return SENTINEL_ROLE_ERROR;
    }
    if (e->len == 6 && !memcmp(e->str, "master", 6)) {
        return SENTINEL_ROLE_MASTER;
    }
    if ((e->len == 5 && !memcmp(e->str, "slave", 5))
        || (e->len == 7 && !memcmp(e->str, "replica", 7))) {
        return SENTINEL_ROLE_REPLICA;
    }
    if (e->len == 8 && !memcmp(e->str, "sentinel", 8)) {
        return SENTINEL_ROLE_SENTINEL;
    }
    return SENTINEL_ROLE_ERROR;
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv;

    if (ms < 1) {
        ms = 1;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

/* Asks one Sentinel. 1 named, 0 does not know the master, -1 failed;
 * why in err. */
static int ask_one(const sentinel_state_t *s, int i, const char *password,
                   int connect_ms, int io_ms, sentinel_addr_t *out,
                   char *err, size_t errlen)
{
    const sentinel_addr_t *a = &s->sentinels[i];
    redisContext *c;
    redisReply *r;
    int rv = -1;

    c = redisConnectWithTimeout(a->host, a->port, ms_tv(connect_ms));
    if (!c || c->err) {
        set_err(err, errlen, "Sentinel %s:%d: %s", a->host, a->port,
                c ? c->errstr : "out of memory");
        goto done;
    }
    if (redisSetTimeout(c, ms_tv(io_ms)) != REDIS_OK) {
        set_err(err, errlen, "Sentinel %s:%d: cannot set a timeout",
                a->host, a->port);
        goto done;
    }
    if (password) {
        r = redisCommand(c, "AUTH %s", password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            set_err(err, errlen, "Sentinel %s:%d refused our AUTH",
                    a->host, a->port);
            if (r) {
                freeReplyObject(r);
            }
            goto done;
        }
        freeReplyObject(r);
    }
    r = redisCommand(c, "SENTINEL get-master-addr-by-name %s",
                     s->master_name);
    if (!r) {
        set_err(err, errlen, "Sentinel %s:%d: %s", a->host, a->port,
                c->errstr[0] ? c->errstr : "no reply");
        goto done;
    }
    rv = sentinel_parse_master(r, out);
    if (rv == 0) {
        set_err(err, errlen, "Sentinel %s:%d does not know master '%s'",
                a->host, a->port, s->master_name);
    }
    else if (rv < 0) {
        set_err(err, errlen, "Sentinel %s:%d: unexpected answer%s%.100s",
                a->host, a->port, r->type == REDIS_REPLY_ERROR ? ": " : "",
                r->type == REDIS_REPLY_ERROR ? r->str : "");
    }
    freeReplyObject(r);
done:
    if (c) {
        redisFree(c);
    }
    return rv;
}

int sentinel_query_all(const sentinel_state_t *s, int first,
                       const char *password, int connect_ms, int io_ms,
                       int total_ms, sentinel_addr_t *out, int *answered,
                       char *err, size_t errlen)
{
    int64_t start = sentinel_now_us(), left_ms;
    char why[SENTINEL_HOST_LEN + 128];
    int k, i;

    set_err(err, errlen, "no Sentinel configured");
    why[0] = '\0';
    for (k = 0; k < s->n; k++) {
        i = (first + k) % s->n;
        if (i < 0) {
            i = 0;
        }
        left_ms = total_ms - (sentinel_now_us() - start) / 1000;
        if (left_ms <= 0) {
            set_err(err, errlen, "no Sentinel named master '%s' within "
                    "%d ms (%s)", s->master_name, total_ms,
                    why[0] ? why : "no answer");
            return -1;
        }
        if (ask_one(s, i, password,
                    connect_ms < left_ms ? connect_ms : (int)left_ms,
                    io_ms < left_ms ? io_ms : (int)left_ms, out, why,
                    sizeof(why)) == 1) {
            *answered = i;
            return 0;
        }
    }
    set_err(err, errlen, "no Sentinel named master '%s' (last: %s)",
            s->master_name, why);
    return -1;
}

sentinel_role_t sentinel_check_role(redisContext *c, char *err,
                                    size_t errlen)
{
    redisReply *r = redisCommand(c, "ROLE");
    sentinel_role_t role;

    if (!r) {
        set_err(err, errlen, "ROLE failed: %s",
                c->errstr[0] ? c->errstr : "no reply");
        return SENTINEL_ROLE_ERROR;
    }
    role = sentinel_parse_role(r);
    if (role == SENTINEL_ROLE_ERROR) {
        set_err(err, errlen, "ROLE: unexpected answer%s%.100s",
                r->type == REDIS_REPLY_ERROR ? ": " : "",
                r->type == REDIS_REPLY_ERROR ? r->str : "");
    }
    else if (role != SENTINEL_ROLE_MASTER) {
        set_err(err, errlen, "the address the Sentinels named is a %s, "
                "not a master", role == SENTINEL_ROLE_REPLICA ? "replica"
                                                               : "Sentinel");
    }
    freeReplyObject(r);
    return role;
}
