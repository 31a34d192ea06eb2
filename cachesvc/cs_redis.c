/* ark-cached: the Redis tier (see cs_redis.h for the model and key layout,
 * docs/redis-tier.md for the operator's view).
 *
 * Data flow of one call: op_begin() asks the shared up/down state whether
 * Redis may be tried (fast failure while a back-off runs, or this call
 * becomes the one probe), takes the calling thread's connection (made
 * lazily, replaced when it predates the last outage), then the call
 * builds its commands as argv vectors (cmd_t) and sends them as one
 * pipeline (run()), checks every reply, and ends in op_ok() or in
 * cs_redis_fail(), the one translator of hiredis failures: it writes the
 * message, counts, drops a broken connection, and moves the up/down
 * state and its back-off. The follower thread reads the event stream on a
 * connection of its own, with a back-off of its own; its failures are
 * translated by the same function but do not move the shared state.
 *
 * Locks: r->lock guards the connection list, the up/down state machine,
 * last_error and the jitter generator; r->flock guards the follower's
 * connection pointer, position and run id. Neither is held during I/O or
 * a callback. Counters are C11 atomics.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cs_crypto.h"
#include "cs_log.h"
#include "cs_redis.h"
#include "cs_sentinel.h"

/* Extra read time the follower allows beyond XREAD's BLOCK before it
 * calls the connection dead. */
#define CS_REDIS_FOLLOW_SLACK_MS 1000
/* Local ids count milliseconds from 2024-01-01T00:00:00Z. */
#define CS_REDIS_LOCAL_EPOCH_MS INT64_C(1704067200000)
#define CS_REDIS_LOCAL_SEQ_BITS 6
#define CS_REDIS_LOCAL_TAG_BITS 14
#define CS_REDIS_LOCAL_CTR_BITS 48
/* Largest textual run id we keep (Redis uses 40 hex digits). */
#define CS_REDIS_RUNID_LEN 48
/* Bytes of the AAD prefix: the entry id, big-endian. */
#define CS_REDIS_AAD_ID_LEN 8

typedef struct cs_conn cs_conn_t;

/* One calling thread's connection (the value of r->tls). */
struct cs_conn {
    cs_redis_t *r;
    redisContext *c;  /* NULL until connected, or after a failure */
    uint64_t epoch;   /* r->epoch when c was connected */
    uint64_t sgen;    /* Sentinel mode: the master's generation */
    cs_conn_t *prev, *next;
};

/* The state of one call. */
typedef struct cs_op {
    cs_conn_t *conn;
    int probe;      /* this call is the one allowed to try a down Redis */
    int fresh;      /* conn->c was connected during this call */
    int connecting; /* any failure now means Redis is unusable */
} cs_op_t;

/* A command being built: argv pointers either borrowed from the caller or
 * owned (own[i] non-NULL, freed by cmd_free). */
typedef struct cmd {
    int argc, cap;
    const char **argv;
    size_t *len;
    char **own;
} cmd_t;

struct cs_redis {
    /* configuration (copied) */
    char *host, *unix_path, *password, *prefix, *node_name;
    size_t prefix_len, node_len;
    int port, db, connect_ms, command_ms;
    unsigned char key[CS_CRYPTO_KEY_LEN];
    int has_key;
    uint64_t node_tag;
    cs_sentinel_t *sen;         /* NULL: fixed address */
    int wait_replicas;          /* WAIT after each store (0: none) */

    /* callers' connections and the shared up/down state (r->lock) */
    pthread_key_t tls;
    pthread_mutex_t lock;
    cs_conn_t *conns;
    atomic_int up;
    _Atomic uint64_t epoch;     /* bumped on every up -> down */
    int probing;                /* a probe is in flight */
    int64_t retry_at_us;        /* monotonic: next probe allowed then */
    int backoff_ms;             /* current back-off step */
    int64_t down_since_us;
    uint64_t rng;               /* xorshift64 state for jitter */
    char last_error[CS_REDIS_ERR_LEN];
    int64_t decrypt_logged_us;
    int64_t refused_logged_us;
    char scan_runid[CS_REDIS_RUNID_LEN]; /* run id seen by the last scan */

    _Atomic uint64_t reconnects, connect_attempts, errors, fast_failures,
        decrypt_failures, local_ids;
    _Atomic uint64_t local_last; /* last local counter issued */
    _Atomic uint64_t wait_short; /* stores fewer replicas confirmed */
    int64_t wait_logged_us;

    /* follower (r->flock) */
    pthread_mutex_t flock;
    pthread_cond_t fcond;
    pthread_t fthread;
    int frunning, fstop;
    redisContext *fctx;
    uint64_t fsgen;             /* Sentinel generation of fctx */
    char fpos[CS_REDIS_POS_LEN];
    char frunid[CS_REDIS_RUNID_LEN];
    cs_redis_follow_cbs_t fcbs;
    atomic_int fconnected;
    _Atomic uint64_t fevents, fresyncs, freconnects;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

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

static struct timeval ms_tv(int ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = UINT64_C(1469598103934665603);
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* A delay in [ms/2, ms] (call with r->lock held). */
static int jitter_locked(cs_redis_t *r, int ms)
{
    uint64_t x = r->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->rng = x;
    return ms / 2 + (int)(x % (uint64_t)(ms / 2 + 1));
}

/* The next back-off step. With Sentinels it stops at
 * CS_REDIS_SENTINEL_BACKOFF_MAX_MS: a failover is worth noticing within
 * a second, and asking Sentinels costs little. */
static int next_backoff(const cs_redis_t *r, int ms)
{
    int max = r->sen ? CS_REDIS_SENTINEL_BACKOFF_MAX_MS
                     : CS_REDIS_BACKOFF_MAX_MS;

    if (ms <= 0) {
        return CS_REDIS_BACKOFF_MIN_MS;
    }
    return ms >= max / 2 ? max : ms * 2;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (n == 0 || n > 20) {
        return CS_ERR;
    }
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return CS_ERR;
        }
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10) {
            return CS_ERR;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return CS_OK;
}

static int64_t parse_i64(const char *s, size_t n)
{
    uint64_t v;

    if (n > 0 && s[0] == '-') {
        return parse_u64(s + 1, n - 1, &v) == CS_OK && v <= INT64_MAX
                   ? -(int64_t)v
                   : 0;
    }
    return parse_u64(s, n, &v) == CS_OK && v <= INT64_MAX ? (int64_t)v : 0;
}

/* Stream ids "<ms>-<seq>": parse and compare. */
typedef struct sid {
    uint64_t ms, seq;
} sid_t;

static int sid_parse(const char *s, size_t n, sid_t *out)
{
    const char *dash = memchr(s, '-', n);

    if (!dash) {
        return CS_ERR;
    }
    if (parse_u64(s, (size_t)(dash - s), &out->ms) != CS_OK
        || parse_u64(dash + 1, n - (size_t)(dash - s) - 1, &out->seq)
               != CS_OK) {
        return CS_ERR;
    }
    return CS_OK;
}

static int sid_cmp(const sid_t *a, const sid_t *b)
{
    if (a->ms != b->ms) {
        return a->ms < b->ms ? -1 : 1;
    }
    if (a->seq != b->seq) {
        return a->seq < b->seq ? -1 : 1;
    }
    return 0;
}

static int host_is_le(void)
{
    const uint16_t one = 1;

    return *(const unsigned char *)&one == 1;
}

/* Copies n floats stored little-endian at src to dst (host order). */
static void floats_from_le(float *dst, const char *src, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
    if (!host_is_le()) {
        unsigned char *b = (unsigned char *)dst;
        size_t i;

        for (i = 0; i < n * sizeof(float); i += 4) {
            unsigned char t = b[i];

            b[i] = b[i + 3];
            b[i + 3] = t;
            t = b[i + 1];
            b[i + 1] = b[i + 2];
            b[i + 2] = t;
        }
    }
}

/* ------------------------------------------------------------------ */
/* command building                                                     */

static void cmd_init(cmd_t *c)
{
    memset(c, 0, sizeof(*c));
}

static void cmd_push(cmd_t *c, const char *p, size_t n, char *own)
{
    if (c->argc == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->argv = cs_realloc(c->argv, (size_t)c->cap * sizeof(*c->argv));
        c->len = cs_realloc(c->len, (size_t)c->cap * sizeof(*c->len));
        c->own = cs_realloc(c->own, (size_t)c->cap * sizeof(*c->own));
    }
    c->argv[c->argc] = p;
    c->len[c->argc] = n;
    c->own[c->argc] = own;
    c->argc++;
}

/* Borrowed argument: must outlive the command. */
static void cmd_add(cmd_t *c, const char *p, size_t n)
{
    cmd_push(c, p ? p : "", p ? n : 0, NULL);
}

static void cmd_adds(cmd_t *c, const char *s)
{
    cmd_add(c, s, strlen(s));
}

static void cmd_addf(cmd_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cmd_addf(cmd_t *c, const char *fmt, ...)
{
    char buf[64], *own;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    own = cs_strndup(buf, (size_t)n < sizeof(buf) ? (size_t)n
                                                  : sizeof(buf) - 1);
    cmd_push(c, own, strlen(own), own);
}

/* Adds the key <prefix><kind><suffix>. */
static void cmd_addkey(cmd_t *c, const cs_redis_t *r, const char *kind,
                       const char *suffix, size_t suffix_len)
{
    size_t klen = strlen(kind), n = r->prefix_len + klen + suffix_len;
    char *own = cs_malloc(n + 1);

    memcpy(own, r->prefix, r->prefix_len);
    memcpy(own + r->prefix_len, kind, klen);
    if (suffix_len) {
        memcpy(own + r->prefix_len + klen, suffix, suffix_len);
    }
    own[n] = '\0';
    cmd_push(c, own, n, own);
}

static void cmd_addkey_id(cmd_t *c, const cs_redis_t *r, const char *kind,
                          uint64_t id)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, id);

    cmd_addkey(c, r, kind, num, (size_t)n);
}

static void cmd_free(cmd_t *c)
{
    int i;

    for (i = 0; i < c->argc; i++) {
        cs_free(c->own[i]);
    }
    cs_free(c->argv);
    cs_free(c->len);
    cs_free(c->own);
    cmd_init(c);
}

static void cmds_free(cmd_t *cmds, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        cmd_free(&cmds[i]);
    }
}

static void replies_free(redisReply **rep, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (rep[i]) {
            freeReplyObject(rep[i]);
            rep[i] = NULL;
        }
    }
}

/* ------------------------------------------------------------------ */
/* the translator and the up/down state                                 */

static void endpoint(const cs_redis_t *r, char *buf, size_t n)
{
    if (r->sen) {
        cs_sentinel_endpoint(r->sen, buf, n);
    }
    else if (r->unix_path) {
        snprintf(buf, n, "%s", r->unix_path);
    }
    else {
        snprintf(buf, n, "%s:%d", r->host, r->port);
    }
}

/* Whether an error reply means "this server cannot serve us now" rather
 * than "this command was wrong". */
static int reply_means_down(const redisReply *reply)
{
    static const char *const codes[] = {"LOADING", "BUSY", "MASTERDOWN",
                                        "NOAUTH", "WRONGPASS", "READONLY",
                                        "NOPERM"};
    size_t i, n;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        n = strlen(codes[i]);
        if (reply->len >= n && memcmp(reply->str, codes[i], n) == 0
            && (reply->len == n || reply->str[n] == ' ')) {
            return 1;
        }
    }
    return 0;
}

/* hiredis 0.14 reports a read or write timeout (SO_RCVTIMEO) as an I/O
 * error with strerror(EAGAIN) as its text; the daemon runs in the C
 * locale. */
static int is_timeout(const redisContext *c)
{
    return c->err == REDIS_ERR_IO
           && strstr(c->errstr, "temporarily unavailable") != NULL;
}

/* Moves the shared state after a failure (conn_level: the connection or
 * the server is unusable). Returns 1 if this made the tier go down, 2 if
 * a probe found Redis reachable (only its command failed), else 0;
 * *delay_ms receives the time to the next probe, *down_ms how long the
 * tier was down. */
static int state_failed(cs_redis_t *r, cs_op_t *op, int conn_level,
                        const char *msg, int *delay_ms, int64_t *down_ms)
{
    int64_t now = cs_now_us();
    int went_down = 0;

    pthread_mutex_lock(&r->lock);
    snprintf(r->last_error, sizeof(r->last_error), "%s", msg);
    if (conn_level) {
        if (atomic_load(&r->up)) {
            atomic_store(&r->up, 0);
            atomic_fetch_add(&r->epoch, 1);
            r->backoff_ms = CS_REDIS_BACKOFF_MIN_MS;
            r->down_since_us = now;
            r->retry_at_us = now + 1000 * jitter_locked(r, r->backoff_ms);
            went_down = 1;
        }
        else if (op && op->probe) {
            r->backoff_ms = next_backoff(r, r->backoff_ms);
            r->retry_at_us = now + 1000 * jitter_locked(r, r->backoff_ms);
        }
    }
    else if (op && op->probe && !atomic_load(&r->up)) {
        /* The server answered: it is reachable, only this command failed. */
        atomic_store(&r->up, 1);
        r->backoff_ms = 0;
        atomic_fetch_add(&r->reconnects, 1);
        *down_ms = (now - r->down_since_us) / 1000;
        went_down = 2;
    }
    if (op && op->probe) {
        r->probing = 0;
        op->probe = 0;
    }
    *delay_ms = (int)((r->retry_at_us - now) / 1000);
    pthread_mutex_unlock(&r->lock);
    return went_down;
}

/* THE translator of hiredis failures. c is the context the failure came
 * from (NULL: hiredis could not allocate one), reply the offending reply
 * if the transport worked. op is the caller's call, or NULL for the
 * follower (which does not move the shared state and drops its own
 * connection). Writes "Redis <what> failed: <detail>" to err, counts the
 * error, records last_error, drops op's connection when c is it and it is
 * no longer usable, logs a transition. Always returns CS_ERR. */
static int fail_tail(cs_redis_t *r, cs_op_t *op, const redisContext *c,
                     int conn_level, int drop, const char *detail,
                     const char *what, char *err, size_t errlen);

static int cs_redis_fail(cs_redis_t *r, cs_op_t *op, const redisContext *c,
                         const redisReply *reply, const char *what,
                         char *err, size_t errlen)
{
    char detail[CS_REDIS_ERR_LEN];
    int conn_level, drop, n;

    if (!c) {
        snprintf(detail, sizeof(detail), "out of memory in hiredis");
        conn_level = drop = 1;
    }
    else if (c->err) {
        if (is_timeout(c)) {
            snprintf(detail, sizeof(detail), "no answer within %d ms",
                     op ? r->command_ms
                        : CS_REDIS_FOLLOW_BLOCK_MS + CS_REDIS_FOLLOW_SLACK_MS
                              + r->command_ms);
        }
        else if (c->err == REDIS_ERR_EOF) {
            snprintf(detail, sizeof(detail), "connection closed by server");
        }
        else {
            snprintf(detail, sizeof(detail), "%s", c->errstr);
        }
        conn_level = drop = 1;
    }
    else if (!reply) {
        snprintf(detail, sizeof(detail), "no reply");
        conn_level = drop = 1;
    }
    else if (reply->type == REDIS_REPLY_ERROR) {
        n = (int)(reply->len < 160 ? reply->len : 160);
        snprintf(detail, sizeof(detail), "server replied %.*s", n,
                 reply->str);
        conn_level = reply_means_down(reply);
        drop = conn_level;
    }
    else {
        snprintf(detail, sizeof(detail), "unexpected reply (type %d)",
                 reply->type);
        /* The pipeline may be out of step: start afresh. */
        conn_level = 0;
        drop = 1;
    }
    if (op && op->connecting) {
        conn_level = drop = 1; /* e.g. a bad password or db index */
    }
    return fail_tail(r, op, c, conn_level, drop, detail, what, err, errlen);
}

/* The translator's second half, also used directly for failures that
 * come with no hiredis context (no master known in Sentinel mode). */
static int fail_tail(cs_redis_t *r, cs_op_t *op, const redisContext *c,
                     int conn_level, int drop, const char *detail,
                     const char *what, char *err, size_t errlen)
{
    char ep[CS_REDIS_ERR_LEN], msg[CS_REDIS_ERR_LEN];
    int delay_ms, n, moved;
    int64_t now, down_ms = 0;

    endpoint(r, ep, sizeof(ep));
    if (r->sen && conn_level) {
        /* this master may be gone or demoted: ask the Sentinels again */
        cs_sentinel_failed(r->sen, op ? (op->conn ? op->conn->sgen : 0)
                                      : r->fsgen, detail);
    }
    snprintf(msg, sizeof(msg), "Redis %.16s failed: %.160s (%.60s)", what,
             detail, ep);
    for (n = 0; msg[n]; n++) {
        if (msg[n] == '\r' || msg[n] == '\n') {
            msg[n] = ' ';
        }
    }
    set_err(err, errlen, "%s", msg);
    atomic_fetch_add(&r->errors, 1);

    if (op && op->conn && op->conn->c == c && drop) {
        redisFree(op->conn->c);
        op->conn->c = NULL;
    }
    if (!op) {
        pthread_mutex_lock(&r->lock);
        snprintf(r->last_error, sizeof(r->last_error), "%s", msg);
        pthread_mutex_unlock(&r->lock);
        return CS_ERR;
    }
    moved = state_failed(r, op, conn_level, msg, &delay_ms, &down_ms);
    if (moved == 1) {
        cs_log(CS_LOG_WARNING,
               CS_LOGNO(00800) "Redis tier unavailable, caching locally "
                               "only; next attempt in %d ms: %s",
               delay_ms, msg);
    }
    else if (moved == 2) {
        cs_log(CS_LOG_NOTICE,
               CS_LOGNO(00801) "Redis tier available again after %" PRId64
                               " ms",
               down_ms);
    }
    if (!conn_level) {
        now = cs_now_us();
        pthread_mutex_lock(&r->lock);
        if (now - r->refused_logged_us >= CS_REDIS_LOG_INTERVAL_US
            || r->refused_logged_us == 0) {
            r->refused_logged_us = now;
            n = 1;
        }
        else {
            n = 0;
        }
        pthread_mutex_unlock(&r->lock);
        if (n) {
            cs_log(CS_LOG_ERROR, CS_LOGNO(00806) "%s", msg);
        }
    }
    return CS_ERR;
}

/* After a call that reached Redis and succeeded. */
static void op_ok(cs_redis_t *r, cs_op_t *op)
{
    int64_t down_ms = 0;
    int came_up = 0;

    if (!op->probe && atomic_load(&r->up)) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    if (!atomic_load(&r->up)) {
        atomic_store(&r->up, 1);
        r->backoff_ms = 0;
        down_ms = (cs_now_us() - r->down_since_us) / 1000;
        came_up = 1;
        atomic_fetch_add(&r->reconnects, 1);
    }
    if (op->probe) {
        r->probing = 0;
        op->probe = 0;
    }
    pthread_mutex_unlock(&r->lock);
    if (came_up) {
        cs_log(CS_LOG_NOTICE,
               CS_LOGNO(00801) "Redis tier available again after %" PRId64
                               " ms",
               down_ms);
    }
}

/* ------------------------------------------------------------------ */
/* connections                                                          */

/* Connects, sets the read/write timeout, AUTH and SELECT. On failure
 * returns the context (or NULL) and *bad (an error reply, or NULL) for
 * the translator; the caller frees both. */
static redisContext *conn_open(cs_redis_t *r, int io_timeout_ms,
                               redisReply **bad, uint64_t *sgen, char *why,
                               size_t whylen)
{
    struct timeval ct = ms_tv(r->connect_ms);
    char host[256];
    redisReply *reply;
    redisContext *c;
    int port = r->port;

    *bad = NULL;
    *sgen = 0;
    why[0] = '\0';
    if (r->sen && cs_sentinel_master(r->sen, host, sizeof(host), &port,
                                     sgen, why, whylen) != CS_OK) {
        return NULL;                   /* why says it */
    }
    c = r->sen ? redisConnectWithTimeout(host, port, ct)
        : r->unix_path ? redisConnectUnixWithTimeout(r->unix_path, ct)
                       : redisConnectWithTimeout(r->host, r->port, ct);
    if (!c || c->err) {
        return c;
    }
    if (redisSetTimeout(c, ms_tv(io_timeout_ms)) != REDIS_OK) {
        return c;
    }
    if (r->password) {
        reply = redisCommand(c, "AUTH %s", r->password);
        if (!reply) {
            return c;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            *bad = reply;
            return c;
        }
        freeReplyObject(reply);
    }
    if (r->db) {
        reply = redisCommand(c, "SELECT %d", r->db);
        if (!reply) {
            return c;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            *bad = reply;
            return c;
        }
        freeReplyObject(reply);
    }
    if (r->sen && cs_sentinel_check(r->sen, c, *sgen, why, whylen)
                      != CS_OK && !c->err) {
        redisFree(c);                  /* a replica: forgotten already */
        return NULL;
    }
    return c;
}

static int conn_connect(cs_redis_t *r, cs_op_t *op, char *err,
                        size_t errlen)
{
    char why[CS_REDIS_ERR_LEN];
    redisReply *bad;
    redisContext *c;
    int rv;

    atomic_fetch_add(&r->connect_attempts, 1);
    c = conn_open(r, r->command_ms, &bad, &op->conn->sgen, why,
                  sizeof(why));
    op->conn->c = c;
    op->conn->epoch = atomic_load(&r->epoch);
    if (c && !c->err && !bad) {
        op->fresh = 1;
        return CS_OK;
    }
    op->connecting = 1;
    rv = !c && why[0] ? fail_tail(r, op, NULL, 1, 1, why, "connect", err,
                                  errlen)
                      : cs_redis_fail(r, op, c, bad, "connect", err, errlen);
    op->connecting = 0;
    if (bad) {
        freeReplyObject(bad);
    }
    if (op->conn->c) {
        redisFree(op->conn->c);
        op->conn->c = NULL;
    }
    return rv;
}

static void conn_destroy(void *p)
{
    cs_conn_t *conn = p;
    cs_redis_t *r = conn->r;

    pthread_mutex_lock(&r->lock);
    if (conn->prev) {
        conn->prev->next = conn->next;
    }
    else {
        r->conns = conn->next;
    }
    if (conn->next) {
        conn->next->prev = conn->prev;
    }
    pthread_mutex_unlock(&r->lock);
    if (conn->c) {
        redisFree(conn->c);
    }
    cs_free(conn);
}

static cs_conn_t *conn_get(cs_redis_t *r)
{
    cs_conn_t *conn = pthread_getspecific(r->tls);

    if (conn) {
        return conn;
    }
    conn = cs_calloc(1, sizeof(*conn));
    conn->r = r;
    pthread_mutex_lock(&r->lock);
    conn->next = r->conns;
    if (r->conns) {
        r->conns->prev = conn;
    }
    r->conns = conn;
    pthread_mutex_unlock(&r->lock);
    pthread_setspecific(r->tls, conn);
    return conn;
}

/* Starts a call: refuses at once while a back-off runs, otherwise makes
 * sure the thread has a connection. */
static int op_begin(cs_redis_t *r, cs_op_t *op, const char *what,
                    char *err, size_t errlen)
{
    char last[CS_REDIS_ERR_LEN];
    int64_t now;
    int wait_ms;

    memset(op, 0, sizeof(*op));
    if (!atomic_load(&r->up)) {
        pthread_mutex_lock(&r->lock);
        now = cs_now_us();
        if (!atomic_load(&r->up) && (r->probing || now < r->retry_at_us)) {
            wait_ms = r->probing ? 0 : (int)((r->retry_at_us - now) / 1000);
            snprintf(last, sizeof(last), "%s", r->last_error);
            pthread_mutex_unlock(&r->lock);
            atomic_fetch_add(&r->fast_failures, 1);
            atomic_fetch_add(&r->errors, 1);
            set_err(err, errlen,
                    "Redis %s skipped: Redis unavailable, next attempt in "
                    "%d ms (last error: %s)",
                    what, wait_ms, last);
            return CS_ERR;
        }
        if (!atomic_load(&r->up)) {
            r->probing = 1;
            op->probe = 1;
        }
        pthread_mutex_unlock(&r->lock);
    }
    op->conn = conn_get(r);
    if (op->conn->c && (op->conn->epoch != atomic_load(&r->epoch)
                        || (r->sen && op->conn->sgen
                                          != cs_sentinel_generation(r->sen)))) {
        /* connected before the last outage: surely dead */
        redisFree(op->conn->c);
        op->conn->c = NULL;
    }
    if (!op->conn->c) {
        return conn_connect(r, op, err, errlen);
    }
    return CS_OK;
}

/* Sends n commands as one pipeline and reads their n replies into rep
 * (the caller frees them with replies_free). A reused connection that
 * turns out closed or reset (Redis restarted, idle timeout) is replaced
 * and the pipeline sent once more; a timeout is never retried. */
static int run(cs_redis_t *r, cs_op_t *op, cmd_t *cmds, int n,
               redisReply **rep, const char *what, char *err, size_t errlen)
{
    redisContext *c;
    int i, got, attempt, saved;

    for (i = 0; i < n; i++) {
        rep[i] = NULL;
    }
    for (attempt = 0;; attempt++) {
        c = op->conn->c;
        got = 0;
        saved = 0;
        for (i = 0; i < n; i++) {
            if (redisAppendCommandArgv(c, cmds[i].argc, cmds[i].argv,
                                       cmds[i].len) != REDIS_OK) {
                saved = errno;
                goto failed;
            }
        }
        for (got = 0; got < n; got++) {
            void *p = NULL;

            if (redisGetReply(c, &p) != REDIS_OK) {
                saved = errno;
                goto failed;
            }
            rep[got] = p;
        }
        /* Redis answered: a probe ends here, not when a long call (a
         * scan) finishes, so other callers need not wait for it. */
        op_ok(r, op);
        return CS_OK;
    failed:
        replies_free(rep, got);
        if (attempt == 0 && !op->fresh && atomic_load(&r->up)
            && (c->err == REDIS_ERR_EOF
                || (c->err == REDIS_ERR_IO
                    && (saved == ECONNRESET || saved == EPIPE)))) {
            redisFree(c);
            op->conn->c = NULL;
            if (conn_connect(r, op, err, errlen) != CS_OK) {
                return CS_ERR;
            }
            continue;
        }
        return cs_redis_fail(r, op, c, NULL, what, err, errlen);
    }
}

/* Checks a MULTI ... EXEC pipeline of n replies; returns the offending
 * reply (or NULL). */
static const redisReply *multi_bad(redisReply **rep, int n)
{
    const redisReply *x;
    size_t i;
    int k;

    for (k = 0; k < n - 1; k++) {
        if (rep[k]->type != REDIS_REPLY_STATUS) {
            return rep[k];
        }
    }
    x = rep[n - 1];
    if (x->type != REDIS_REPLY_ARRAY || x->elements != (size_t)(n - 2)) {
        return x;
    }
    for (i = 0; i < x->elements; i++) {
        if (x->element[i]->type == REDIS_REPLY_ERROR) {
            return x->element[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* create / free / state                                                */

static int name_ok(const char *s, size_t max)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > max) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

static char *dup_opt(const char *s)
{
    return s ? cs_strndup(s, strlen(s)) : NULL;
}

int cs_redis_create(cs_redis_t **pr, const cs_redis_conf_t *conf, char *err,
                    size_t errlen)
{
    char node[CS_REDIS_MAX_NODE_NAME + 1], hostname[CS_REDIS_MAX_NODE_NAME];
    cs_redis_t *r;

    *pr = NULL;
    if (!conf) {
        set_err(err, errlen, "Redis tier: no configuration");
        return CS_ERR;
    }
    if (conf->port < 0 || conf->port > 65535) {
        set_err(err, errlen, "Redis port must be 1-65535 (got %d)",
                conf->port);
        return CS_ERR;
    }
    if (conf->db < 0) {
        set_err(err, errlen, "Redis db must be 0 or more (got %d)",
                conf->db);
        return CS_ERR;
    }
    if (conf->connect_timeout_ms < 0 || conf->connect_timeout_ms > 60000
        || conf->command_timeout_ms < 0
        || conf->command_timeout_ms > 60000) {
        set_err(err, errlen,
                "Redis connect and command timeouts must be 1-60000 ms, or "
                "0 for the defaults (%d and %d ms)",
                CS_REDIS_DEFAULT_CONNECT_TIMEOUT_MS,
                CS_REDIS_DEFAULT_COMMAND_TIMEOUT_MS);
        return CS_ERR;
    }
    if (conf->prefix && !name_ok(conf->prefix, CS_REDIS_MAX_PREFIX)) {
        set_err(err, errlen,
                "Redis key prefix must be 1-%d printable characters "
                "without spaces",
                CS_REDIS_MAX_PREFIX);
        return CS_ERR;
    }
    if (conf->node_name
        && !name_ok(conf->node_name, CS_REDIS_MAX_NODE_NAME)) {
        set_err(err, errlen,
                "node name must be 1-%d printable characters without "
                "spaces",
                CS_REDIS_MAX_NODE_NAME);
        return CS_ERR;
    }
    if (conf->unix_path && !conf->unix_path[0]) {
        set_err(err, errlen, "Redis unix socket path is empty");
        return CS_ERR;
    }
    if (conf->host && !conf->host[0]) {
        set_err(err, errlen, "Redis host is empty");
        return CS_ERR;
    }
    if (!conf->sentinels != !conf->sentinel_master) {
        set_err(err, errlen, "Redis Sentinel needs both the Sentinel "
                "addresses and the master name");
        return CS_ERR;
    }
    if (conf->sentinels && (conf->unix_path || conf->host)) {
        set_err(err, errlen, "Redis: give either a host or socket, or "
                "Sentinels, not both");
        return CS_ERR;
    }
    if (conf->wait_replicas < 0 || conf->wait_replicas > 16) {
        set_err(err, errlen, "Redis wait replicas must be 0-16 (got %d)",
                conf->wait_replicas);
        return CS_ERR;
    }
    if (conf->node_name) {
        snprintf(node, sizeof(node), "%s", conf->node_name);
    }
    else {
        if (gethostname(hostname, sizeof(hostname)) != 0) {
            snprintf(hostname, sizeof(hostname), "localhost");
        }
        hostname[sizeof(hostname) - 1] = '\0';
        /* keep room for ":<pid>" */
        snprintf(node, sizeof(node), "%.40s:%ld", hostname,
                 (long)getpid());
    }

    r = cs_calloc(1, sizeof(*r));
    if (conf->sentinels
        && cs_sentinel_create(&r->sen, conf->sentinel_master,
                              conf->sentinels, conf->sentinel_password,
                              conf->connect_timeout_ms
                                  ? conf->connect_timeout_ms
                                  : CS_REDIS_DEFAULT_CONNECT_TIMEOUT_MS,
                              conf->command_timeout_ms
                                  ? conf->command_timeout_ms
                                  : CS_REDIS_DEFAULT_COMMAND_TIMEOUT_MS,
                              err, errlen) != CS_OK) {
        cs_free(r);
        return CS_ERR;
    }
    r->wait_replicas = conf->wait_replicas;
    r->host = dup_opt(conf->host ? conf->host : "127.0.0.1");
    r->unix_path = dup_opt(conf->unix_path);
    r->password = dup_opt(conf->password);
    r->prefix = dup_opt(conf->prefix ? conf->prefix
                                     : CS_REDIS_DEFAULT_PREFIX);
    r->prefix_len = strlen(r->prefix);
    r->node_name = dup_opt(node);
    r->node_len = strlen(r->node_name);
    r->port = conf->port ? conf->port : 6379;
    r->db = conf->db;
    r->connect_ms = conf->connect_timeout_ms
                        ? conf->connect_timeout_ms
                        : CS_REDIS_DEFAULT_CONNECT_TIMEOUT_MS;
    r->command_ms = conf->command_timeout_ms
                        ? conf->command_timeout_ms
                        : CS_REDIS_DEFAULT_COMMAND_TIMEOUT_MS;
    if (conf->aes_key) {
        memcpy(r->key, conf->aes_key, CS_CRYPTO_KEY_LEN);
        r->has_key = 1;
    }
    r->node_tag = fnv1a(r->node_name, r->node_len)
                  & ((UINT64_C(1) << CS_REDIS_LOCAL_TAG_BITS) - 1);
    r->rng = (uint64_t)cs_wall_us() ^ ((uint64_t)getpid() << 32)
             ^ (uint64_t)(uintptr_t)r;
    if (r->rng == 0) {
        r->rng = 1;
    }
    atomic_init(&r->up, 1);
    atomic_init(&r->fconnected, 0);
    snprintf(r->fpos, sizeof(r->fpos), "0-0");
    if (pthread_key_create(&r->tls, conn_destroy) != 0) {
        set_err(err, errlen, "Redis tier: no thread-specific key left");
        cs_free(r->host);
        cs_free(r->unix_path);
        cs_free(r->password);
        cs_free(r->prefix);
        cs_free(r->node_name);
        cs_sentinel_free(r->sen);
        cs_free(r);
        return CS_ERR;
    }
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->flock, NULL);
    pthread_cond_init(&r->fcond, NULL);
    *pr = r;
    return CS_OK;
}

void cs_redis_free(cs_redis_t *r)
{
    cs_conn_t *conn, *next;

    if (!r) {
        return;
    }
    cs_redis_follow_stop(r);
    pthread_key_delete(r->tls);
    for (conn = r->conns; conn; conn = next) {
        next = conn->next;
        if (conn->c) {
            redisFree(conn->c);
        }
        cs_free(conn);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->flock);
    pthread_cond_destroy(&r->fcond);
    memset(r->key, 0, sizeof(r->key));
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
    }
    cs_free(r->host);
    cs_free(r->unix_path);
    cs_free(r->password);
    cs_free(r->prefix);
    cs_free(r->node_name);
    cs_sentinel_free(r->sen);
    cs_free(r);
}

int cs_redis_up(cs_redis_t *r)
{
    return atomic_load(&r->up);
}

/* ------------------------------------------------------------------ */
/* ids                                                                  */

/* Worked example: a node whose tag is 0x1a2b, at 2025-06-01T00:00:00Z,
 * 44,668,800,000 ms after the local epoch. Its first id in that
 * millisecond has counter 44668800000 * 64 = 2858803200000, so the id is
 * 2^62 | 0x1a2b << 48 | 2858803200000 = 0x5a2b02999df30000. Ids 2 to 64
 * of that millisecond add 1 to 63; a 65th takes the first counter of the
 * next millisecond, and that millisecond's own ids follow it. */
void cs_redis_local_id(cs_redis_t *r, uint64_t *id)
{
    uint64_t now_ctr, last, next;
    int64_t ms = cs_wall_us() / 1000 - CS_REDIS_LOCAL_EPOCH_MS;

    now_ctr = (uint64_t)(ms > 0 ? ms : 0) << CS_REDIS_LOCAL_SEQ_BITS;
    last = atomic_load(&r->local_last);
    do {
        next = now_ctr > last ? now_ctr : last + 1;
    } while (!atomic_compare_exchange_weak(&r->local_last, &last, next));
    atomic_fetch_add(&r->local_ids, 1);
    *id = CS_REDIS_ID_LOCAL_BIT | r->node_tag << CS_REDIS_LOCAL_CTR_BITS
          | (next & ((UINT64_C(1) << CS_REDIS_LOCAL_CTR_BITS) - 1));
}

int cs_redis_next_id(cs_redis_t *r, uint64_t *id, char *err, size_t errlen)
{
    redisReply *rep = NULL;
    cmd_t cmd;
    cs_op_t op;
    int rv = CS_ERR;

    set_err(err, errlen, "%s", "");
    cmd_init(&cmd);
    if (op_begin(r, &op, "INCR", err, errlen) != CS_OK) {
        goto done;
    }
    cmd_adds(&cmd, "INCR");
    cmd_addkey(&cmd, r, "seq", NULL, 0);
    if (run(r, &op, &cmd, 1, &rep, "INCR", err, errlen) != CS_OK) {
        goto done;
    }
    if (rep->type != REDIS_REPLY_INTEGER || rep->integer <= 0
        || (uint64_t)rep->integer >= CS_REDIS_ID_LOCAL_BIT) {
        cs_redis_fail(r, &op, op.conn->c, rep, "INCR", err, errlen);
        goto done;
    }
    *id = (uint64_t)rep->integer;
    op_ok(r, &op);
    rv = CS_OK;
done:
    if (rep) {
        freeReplyObject(rep);
    }
    cmd_free(&cmd);
    if (rv != CS_OK) {
        cs_redis_local_id(r, id);
    }
    return CS_OK;
}

/* ------------------------------------------------------------------ */
/* payload sealing                                                      */

/* AAD = id (8 bytes, big-endian) | ns. */
static void make_aad(cs_buf_t *aad, uint64_t id, const char *ns,
                     size_t ns_len)
{
    unsigned char b[CS_REDIS_AAD_ID_LEN];
    int i;

    for (i = 0; i < CS_REDIS_AAD_ID_LEN; i++) {
        b[i] = (unsigned char)(id >> (56 - 8 * i));
    }
    cs_buf_append(aad, b, sizeof(b));
    cs_buf_append(aad, ns, ns_len);
}

static void decrypt_failed(cs_redis_t *r, uint64_t id, const char *why)
{
    int64_t now = cs_now_us();
    int log_it = 0;

    atomic_fetch_add(&r->decrypt_failures, 1);
    pthread_mutex_lock(&r->lock);
    if (r->decrypt_logged_us == 0
        || now - r->decrypt_logged_us >= CS_REDIS_LOG_INTERVAL_US) {
        r->decrypt_logged_us = now;
        log_it = 1;
    }
    pthread_mutex_unlock(&r->lock);
    if (log_it) {
        cs_log(CS_LOG_WARNING,
               CS_LOGNO(00802) "payload of entry %" PRIu64 " %s; served as "
                               "a miss (%" PRIu64 " such payloads so far)",
               id, why, (uint64_t)atomic_load(&r->decrypt_failures));
    }
}

/* Turns the stored payload into plaintext in out. penc: the entry's
 * "penc" field (NULL if absent). Returns CS_OK, or CS_ERR after counting
 * a decrypt failure. */
static int payload_open(cs_redis_t *r, uint64_t id, const redisReply *ns,
                        const redisReply *payload, const redisReply *penc,
                        cs_buf_t *out)
{
    int sealed = penc && penc->type == REDIS_REPLY_STRING && penc->len == 1
                 && penc->str[0] == '1';
    cs_buf_t aad;
    int rv;

    if (!sealed && !r->has_key) {
        cs_buf_append(out, payload->str, payload->len);
        return CS_OK;
    }
    if (!sealed) {
        decrypt_failed(r, id, "is stored in clear but a key is configured");
        return CS_ERR;
    }
    if (!r->has_key) {
        decrypt_failed(r, id, "is encrypted but no key is configured");
        return CS_ERR;
    }
    cs_buf_init(&aad);
    make_aad(&aad, id, ns->str, ns->len);
    rv = cs_crypto_open(r->key, aad.data, aad.len, payload->str,
                        payload->len, out);
    cs_buf_free(&aad);
    if (rv != CS_OK) {
        decrypt_failed(r, id,
                       "failed authentication (wrong key, tampered or "
                       "moved)");
    }
    return rv;
}

/* ------------------------------------------------------------------ */
/* put / get / del                                                      */

static void add_xadd(cmd_t *c, const cs_redis_t *r, const char *op,
                     const uint64_t *id, const char *ns, size_t ns_len)
{
    cmd_adds(c, "XADD");
    cmd_addkey(c, r, "events", NULL, 0);
    cmd_adds(c, "MAXLEN");
    cmd_adds(c, "~");
    cmd_addf(c, "%d", CS_REDIS_STREAM_MAXLEN);
    cmd_adds(c, "*");
    cmd_adds(c, "op");
    cmd_adds(c, op);
    if (id) {
        cmd_adds(c, "id");
        cmd_addf(c, "%" PRIu64, *id);
    }
    cmd_adds(c, "ns");
    cmd_add(c, ns, ns_len);
    cmd_adds(c, "node");
    cmd_add(c, r->node_name, r->node_len);
}

/* Runs a MULTI/EXEC pipeline: cmds[0] must be MULTI and cmds[n-1] EXEC. */
/* Counts (and logs, at most once a minute) a store fewer replicas than
 * redis_wait_replicas confirmed: applied on the master, but a failover
 * before the replicas catch up would lose it from Redis (not from this
 * replica's L1). */
static void wait_check(cs_redis_t *r, const redisReply *w, uint64_t id)
{
    int64_t now;
    int log = 0;

    if (w && w->type == REDIS_REPLY_INTEGER
        && w->integer >= r->wait_replicas) {
        return;
    }
    atomic_fetch_add(&r->wait_short, 1);
    now = cs_now_us();
    pthread_mutex_lock(&r->lock);
    if (r->wait_logged_us == 0
        || now - r->wait_logged_us >= CS_REDIS_LOG_INTERVAL_US) {
        r->wait_logged_us = now;
        log = 1;
    }
    pthread_mutex_unlock(&r->lock);
    if (log) {
        cs_log(CS_LOG_WARNING, CS_LOGNO(00809) "entry %" PRIu64 " stored "
               "but confirmed by %lld of %d replicas within %d ms (%" PRIu64
               " such stores so far): a failover now could lose it from "
               "Redis", id,
               w && w->type == REDIS_REPLY_INTEGER ? w->integer : -1LL,
               r->wait_replicas, r->command_ms / 2,
               atomic_load(&r->wait_short));
    }
}

static int run_multi(cs_redis_t *r, cs_op_t *op, cmd_t *cmds, int n,
                     redisReply **rep, const char *what, char *err,
                     size_t errlen)
{
    const redisReply *bad;
    int nm = n;

    if (run(r, op, cmds, n, rep, what, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    if (n > 0 && cmds[n - 1].argc > 0 && cmds[n - 1].len[0] == 4
        && !memcmp(cmds[n - 1].argv[0], "WAIT", 4)) {
        nm = n - 1;                    /* a trailing WAIT is not in MULTI */
    }
    bad = multi_bad(rep, nm);
    if (bad) {
        return cs_redis_fail(r, op, op->conn->c, bad, what, err, errlen);
    }
    return CS_OK;
}

#define PUT_MAX_CMDS 12 /* 11 + WAIT */

int cs_redis_put(cs_redis_t *r, const cs_entry_rec_t *e, char *err,
                 size_t errlen)
{
    redisReply *rep[PUT_MAX_CMDS];
    cmd_t cmds[PUT_MAX_CMDS], *c;
    cs_buf_t sealed, aad;
    char *vec_le = NULL;
    const char *ns = e->ns ? e->ns : "";
    size_t vec_bytes = 0;
    int64_t now = cs_wall_us(), exp_ms;
    int n = 0, i, rv = CS_ERR;
    cs_op_t op;

    memset(rep, 0, sizeof(rep));
    for (i = 0; i < PUT_MAX_CMDS; i++) {
        cmd_init(&cmds[i]);
    }
    cs_buf_init(&sealed);
    cs_buf_init(&aad);
    if (e->id == 0) {
        set_err(err, errlen, "Redis put refused: entry id 0");
        return CS_ERR;
    }
    if (e->dim < 0 || e->dim > CS_REDIS_MAX_DIM || (e->dim > 0 && !e->vec)) {
        set_err(err, errlen,
                "Redis put refused: vector dimension %d not in 0-%d",
                e->dim, CS_REDIS_MAX_DIM);
        return CS_ERR;
    }
    if ((!e->ns && e->ns_len) || (!e->text && e->text_len)
        || (!e->norm && e->norm_len) || (!e->payload && e->payload_len)) {
        set_err(err, errlen, "Redis put refused: NULL field with a length");
        return CS_ERR;
    }
    if (e->expires_us > 0 && e->expires_us <= now) {
        return CS_OK; /* already expired: nothing to keep */
    }
    if (e->vec && e->dim > 0) {
        vec_bytes = (size_t)e->dim * sizeof(float);
        vec_le = cs_malloc(vec_bytes);
        /* floats_from_le swaps on big-endian hosts: the same both ways */
        floats_from_le((float *)(void *)vec_le, (const char *)e->vec,
                       (size_t)e->dim);
    }
    if (r->has_key) {
        make_aad(&aad, e->id, ns, e->ns_len);
        if (cs_crypto_seal(r->key, aad.data, aad.len,
                           e->payload ? e->payload : "", e->payload_len,
                           &sealed) != CS_OK) {
            set_err(err, errlen, "Redis put refused: cannot seal payload");
            goto done;
        }
    }
    exp_ms = e->expires_us > 0 ? (e->expires_us + 999) / 1000 : 0;

    c = &cmds[n++];
    cmd_adds(c, "MULTI");
    c = &cmds[n++];
    cmd_adds(c, "DEL");
    cmd_addkey_id(c, r, "e:", e->id);
    c = &cmds[n++];
    cmd_adds(c, "HSET");
    cmd_addkey_id(c, r, "e:", e->id);
    cmd_adds(c, "ns");
    cmd_add(c, ns, e->ns_len);
    cmd_adds(c, "text");
    cmd_add(c, e->text, e->text_len);
    cmd_adds(c, "norm");
    cmd_add(c, e->norm, e->norm_len);
    if (vec_le) {
        cmd_adds(c, "vec");
        cmd_add(c, vec_le, vec_bytes);
    }
    cmd_adds(c, "payload");
    if (r->has_key) {
        cmd_add(c, sealed.data, sealed.len);
        cmd_adds(c, "penc");
        cmd_adds(c, "1");
    }
    else {
        cmd_add(c, e->payload, e->payload_len);
    }
    cmd_adds(c, "created");
    cmd_addf(c, "%" PRId64, e->created_us);
    cmd_adds(c, "expires");
    cmd_addf(c, "%" PRId64, e->expires_us > 0 ? e->expires_us : 0);
    if (e->embedder) {
        cmd_adds(c, "embedder");
        cmd_adds(c, e->embedder);
    }
    cmd_adds(c, "node");
    cmd_add(c, r->node_name, r->node_len);
    if (exp_ms) {
        c = &cmds[n++];
        cmd_adds(c, "PEXPIREAT");
        cmd_addkey_id(c, r, "e:", e->id);
        cmd_addf(c, "%" PRId64, exp_ms);
        c = &cmds[n++];
        cmd_adds(c, "ZADD");
        cmd_addkey(c, r, "n:", ns, e->ns_len);
        cmd_addf(c, "%" PRId64, e->expires_us);
        cmd_addf(c, "%" PRIu64, e->id);
        /* drop ids of entries Redis has expired meanwhile */
        c = &cmds[n++];
        cmd_adds(c, "ZREMRANGEBYSCORE");
        cmd_addkey(c, r, "n:", ns, e->ns_len);
        cmd_adds(c, "-inf");
        cmd_addf(c, "(%" PRId64, now);
        /* the set lives as long as its longest-lived member: NX gives a
         * new set an expiry, GT extends it */
        c = &cmds[n++];
        cmd_adds(c, "PEXPIREAT");
        cmd_addkey(c, r, "n:", ns, e->ns_len);
        cmd_addf(c, "%" PRId64, exp_ms);
        cmd_adds(c, "NX");
        c = &cmds[n++];
        cmd_adds(c, "PEXPIREAT");
        cmd_addkey(c, r, "n:", ns, e->ns_len);
        cmd_addf(c, "%" PRId64, exp_ms);
        cmd_adds(c, "GT");
        c = &cmds[n++];
        cmd_adds(c, "ZREM");
        cmd_addkey(c, r, "np:", ns, e->ns_len);
        cmd_addf(c, "%" PRIu64, e->id);
    }
    else {
        c = &cmds[n++];
        cmd_adds(c, "ZADD");
        cmd_addkey(c, r, "np:", ns, e->ns_len);
        cmd_adds(c, "0");
        cmd_addf(c, "%" PRIu64, e->id);
        c = &cmds[n++];
        cmd_adds(c, "ZREM");
        cmd_addkey(c, r, "n:", ns, e->ns_len);
        cmd_addf(c, "%" PRIu64, e->id);
    }
    c = &cmds[n++];
    add_xadd(c, r, "put", &e->id, ns, e->ns_len);
    c = &cmds[n++];
    cmd_adds(c, "EXEC");
    if (r->wait_replicas > 0) {
        /* in the same round trip: wait until the replicas have it */
        c = &cmds[n++];
        cmd_adds(c, "WAIT");
        cmd_addf(c, "%d", r->wait_replicas);
        cmd_addf(c, "%d", r->command_ms / 2 > 0 ? r->command_ms / 2 : 1);
    }

    if (op_begin(r, &op, "put", err, errlen) != CS_OK
        || run_multi(r, &op, cmds, n, rep, "put", err, errlen) != CS_OK) {
        goto done;
    }
    op_ok(r, &op);
    if (r->wait_replicas > 0) {
        wait_check(r, rep[n - 1], e->id);
    }
    rv = CS_OK;
done:
    replies_free(rep, n);
    cmds_free(cmds, PUT_MAX_CMDS);
    cs_free(vec_le);
    cs_buf_free(&sealed);
    cs_buf_free(&aad);
    return rv;
}

/* Fields fetched by HMGET, in this order, by get_entry and scan. */
enum {
    F_NS,
    F_TEXT,
    F_NORM,
    F_VEC,
    F_CREATED,
    F_EXPIRES,
    F_EMBEDDER,
    F_PAYLOAD,
    F_PENC,
    F_COUNT
};
static const char *const fields[F_COUNT] = {
    "ns", "text", "norm", "vec", "created", "expires", "embedder",
    "payload", "penc"};

static void add_hmget(cmd_t *c, const cs_redis_t *r, const char *key,
                      size_t key_len, uint64_t id, int nfields)
{
    int i;

    cmd_adds(c, "HMGET");
    if (key) {
        cmd_add(c, key, key_len);
    }
    else {
        cmd_addkey_id(c, r, "e:", id);
    }
    for (i = 0; i < nfields; i++) {
        cmd_adds(c, fields[i]);
    }
}

static int is_str(const redisReply *x)
{
    return x->type == REDIS_REPLY_STRING;
}

/* Checks an HMGET reply for nfields fields; returns 1 if well-formed. */
static int hmget_ok(const redisReply *x, int nfields)
{
    size_t i;

    if (x->type != REDIS_REPLY_ARRAY || x->elements != (size_t)nfields) {
        return 0;
    }
    for (i = 0; i < x->elements; i++) {
        if (x->element[i]->type != REDIS_REPLY_STRING
            && x->element[i]->type != REDIS_REPLY_NIL) {
            return 0;
        }
    }
    return 1;
}

int cs_redis_get_payload(cs_redis_t *r, uint64_t id, char **payload,
                         size_t *len, int *found, char *err, size_t errlen)
{
    redisReply *rep = NULL, **el;
    cs_buf_t out;
    cmd_t cmd;
    cs_op_t op;
    int rv = CS_ERR;

    *found = 0;
    *payload = NULL;
    *len = 0;
    cmd_init(&cmd);
    cs_buf_init(&out);
    /* HMGET ns payload penc, reusing the field table's names */
    cmd_adds(&cmd, "HMGET");
    cmd_addkey_id(&cmd, r, "e:", id);
    cmd_adds(&cmd, fields[F_NS]);
    cmd_adds(&cmd, fields[F_PAYLOAD]);
    cmd_adds(&cmd, fields[F_PENC]);
    if (op_begin(r, &op, "get", err, errlen) != CS_OK
        || run(r, &op, &cmd, 1, &rep, "get", err, errlen) != CS_OK) {
        goto done;
    }
    if (!hmget_ok(rep, 3)) {
        cs_redis_fail(r, &op, op.conn->c, rep, "get", err, errlen);
        goto done;
    }
    op_ok(r, &op);
    rv = CS_OK;
    el = rep->element;
    if (!is_str(el[0]) || !is_str(el[1])) {
        goto done;
    }
    if (payload_open(r, id, el[0], el[1], el[2], &out) != CS_OK) {
        goto done;
    }
    *payload = cs_malloc(out.len + 1);
    if (out.len) {
        memcpy(*payload, out.data, out.len);
    }
    (*payload)[out.len] = '\0';
    *len = out.len;
    *found = 1;
done:
    if (rep) {
        freeReplyObject(rep);
    }
    cmd_free(&cmd);
    cs_buf_free(&out);
    return rv;
}

/* Copies string reply x (or "" if nil) to blk + off, NUL-terminated;
 * returns the offset after it. */
static size_t copy_str(char *blk, size_t off, const redisReply *x,
                       const char **dst, size_t *dstlen)
{
    size_t n = is_str(x) ? x->len : 0;

    if (n) {
        memcpy(blk + off, x->str, n);
    }
    blk[off + n] = '\0';
    *dst = blk + off;
    *dstlen = n;
    return off + n + 1;
}

/* Fills out from an HMGET reply (F_COUNT or F_PAYLOAD fields). Strings
 * and the vector are copied into one block *owned; payload (may be NULL)
 * is the plaintext to copy. Returns CS_OK, or CS_ERR if the entry is
 * absent (no ns field). */
static int rec_build(const redisReply *x, uint64_t id, const cs_buf_t *payload,
                     cs_entry_rec_t *out, void **owned)
{
    redisReply *const *el = x->element;
    size_t total, vec_n = 0, off;
    const redisReply *v = el[F_VEC];
    char *blk;
    int i;

    if (!is_str(el[F_NS])) {
        return CS_ERR;
    }
    if (is_str(v) && v->len > 0 && v->len % sizeof(float) == 0
        && v->len / sizeof(float) <= CS_REDIS_MAX_DIM) {
        vec_n = v->len / sizeof(float);
    }
    total = vec_n * sizeof(float);
    for (i = F_NS; i <= F_EMBEDDER; i++) {
        if (i != F_VEC && i != F_CREATED && i != F_EXPIRES) {
            total += (is_str(el[i]) ? el[i]->len : 0) + 1;
        }
    }
    total += (payload ? payload->len : 0) + 1;
    /* the block starts with the floats, so they are aligned */
    blk = cs_malloc(total);
    memset(out, 0, sizeof(*out));
    out->id = id;
    off = 0;
    if (vec_n) {
        floats_from_le((float *)(void *)blk, v->str, vec_n);
        out->vec = (const float *)(void *)blk;
        out->dim = (int)vec_n;
        off = vec_n * sizeof(float);
    }
    off = copy_str(blk, off, el[F_NS], &out->ns, &out->ns_len);
    off = copy_str(blk, off, el[F_TEXT], &out->text, &out->text_len);
    off = copy_str(blk, off, el[F_NORM], &out->norm, &out->norm_len);
    if (is_str(el[F_EMBEDDER])) {
        size_t unused;

        off = copy_str(blk, off, el[F_EMBEDDER], &out->embedder, &unused);
    }
    if (payload) {
        if (payload->len) {
            memcpy(blk + off, payload->data, payload->len);
        }
        blk[off + payload->len] = '\0';
        out->payload = blk + off;
        out->payload_len = payload->len;
    }
    out->created_us = is_str(el[F_CREATED])
                          ? parse_i64(el[F_CREATED]->str, el[F_CREATED]->len)
                          : 0;
    out->expires_us = is_str(el[F_EXPIRES])
                          ? parse_i64(el[F_EXPIRES]->str, el[F_EXPIRES]->len)
                          : 0;
    *owned = blk;
    return CS_OK;
}

int cs_redis_get_entry(cs_redis_t *r, uint64_t id, cs_entry_rec_t *out,
                       void **owned, int *found, char *err, size_t errlen)
{
    redisReply *rep = NULL, **el;
    cs_buf_t plain;
    cmd_t cmd;
    cs_op_t op;
    int rv = CS_ERR;

    *found = 0;
    *owned = NULL;
    memset(out, 0, sizeof(*out));
    cmd_init(&cmd);
    cs_buf_init(&plain);
    add_hmget(&cmd, r, NULL, 0, id, F_COUNT);
    if (op_begin(r, &op, "get", err, errlen) != CS_OK
        || run(r, &op, &cmd, 1, &rep, "get", err, errlen) != CS_OK) {
        goto done;
    }
    if (!hmget_ok(rep, F_COUNT)) {
        cs_redis_fail(r, &op, op.conn->c, rep, "get", err, errlen);
        goto done;
    }
    op_ok(r, &op);
    rv = CS_OK;
    el = rep->element;
    if (!is_str(el[F_NS])) {
        goto done;
    }
    if (is_str(el[F_PAYLOAD])
        && payload_open(r, id, el[F_NS], el[F_PAYLOAD], el[F_PENC], &plain)
               != CS_OK) {
        goto done;
    }
    if (rec_build(rep, id, &plain, out, owned) == CS_OK) {
        *found = 1;
    }
done:
    if (rep) {
        freeReplyObject(rep);
    }
    cmd_free(&cmd);
    cs_buf_free(&plain);
    return rv;
}

int cs_redis_del(cs_redis_t *r, const char *ns, size_t ns_len, uint64_t id,
                 char *err, size_t errlen)
{
    redisReply *rep[6];
    cmd_t cmds[6];
    cs_op_t op;
    int i, rv = CS_ERR;

    if (!ns) {
        ns = "";
    }
    for (i = 0; i < 6; i++) {
        cmd_init(&cmds[i]);
        rep[i] = NULL;
    }
    cmd_adds(&cmds[0], "MULTI");
    cmd_adds(&cmds[1], "DEL");
    cmd_addkey_id(&cmds[1], r, "e:", id);
    cmd_adds(&cmds[2], "ZREM");
    cmd_addkey(&cmds[2], r, "n:", ns, ns_len);
    cmd_addf(&cmds[2], "%" PRIu64, id);
    cmd_adds(&cmds[3], "ZREM");
    cmd_addkey(&cmds[3], r, "np:", ns, ns_len);
    cmd_addf(&cmds[3], "%" PRIu64, id);
    add_xadd(&cmds[4], r, "del", &id, ns, ns_len);
    cmd_adds(&cmds[5], "EXEC");
    if (op_begin(r, &op, "del", err, errlen) != CS_OK
        || run_multi(r, &op, cmds, 6, rep, "del", err, errlen) != CS_OK) {
        goto done;
    }
    op_ok(r, &op);
    rv = CS_OK;
done:
    replies_free(rep, 6);
    cmds_free(cmds, 6);
    return rv;
}

/* Worked example: FORGET of ns "t1" holding ids 7 and 9 (7 expiring, 9
 * not) while another replica stores id 12 in "t1":
 *   1. MULTI; ZUNIONSTORE gone:<x> 2 n:t1 np:t1; DEL n:t1 np:t1;
 *      PEXPIRE gone:<x> 1h; EXEC    -> gone:<x> = {7, 9}
 *   2. ZPOPMIN gone:<x> 1000 -> 7, 9; DEL e:7 e:9 -> removed = 2
 *   3. ZPOPMIN -> empty; XADD {op delns, ns t1}
 * id 12's MULTI ran either before step 1 (then it is in gone:<x> and
 * deleted) or after (then it lives in a fresh n:t1, whole). */
int cs_redis_del_ns(cs_redis_t *r, const char *ns, size_t ns_len,
                    long *removed, char *err, size_t errlen)
{
    redisReply *rep[5] = {NULL, NULL, NULL, NULL, NULL};
    cmd_t cmds[5], one;
    uint64_t tmp, id;
    char tmpname[24];
    long count = 0;
    size_t i;
    int k, rv = CS_ERR, ntmp;
    cs_op_t op;

    if (removed) {
        *removed = 0;
    }
    if (!ns) {
        ns = "";
    }
    for (k = 0; k < 5; k++) {
        cmd_init(&cmds[k]);
    }
    cmd_init(&one);
    cs_redis_local_id(r, &tmp);
    ntmp = snprintf(tmpname, sizeof(tmpname), "%" PRIu64, tmp);

    cmd_adds(&cmds[0], "MULTI");
    cmd_adds(&cmds[1], "ZUNIONSTORE");
    cmd_addkey(&cmds[1], r, "gone:", tmpname, (size_t)ntmp);
    cmd_adds(&cmds[1], "2");
    cmd_addkey(&cmds[1], r, "n:", ns, ns_len);
    cmd_addkey(&cmds[1], r, "np:", ns, ns_len);
    cmd_adds(&cmds[2], "DEL");
    cmd_addkey(&cmds[2], r, "n:", ns, ns_len);
    cmd_addkey(&cmds[2], r, "np:", ns, ns_len);
    /* should this process die half-way, the list goes by itself */
    cmd_adds(&cmds[3], "PEXPIRE");
    cmd_addkey(&cmds[3], r, "gone:", tmpname, (size_t)ntmp);
    cmd_adds(&cmds[3], "3600000");
    cmd_adds(&cmds[4], "EXEC");
    if (op_begin(r, &op, "forget", err, errlen) != CS_OK
        || run_multi(r, &op, cmds, 5, rep, "forget", err, errlen)
               != CS_OK) {
        goto done;
    }
    replies_free(rep, 5);

    for (;;) {
        cmd_free(&one);
        cmd_adds(&one, "ZPOPMIN");
        cmd_addkey(&one, r, "gone:", tmpname, (size_t)ntmp);
        cmd_addf(&one, "%d", CS_REDIS_DELNS_BATCH);
        if (run(r, &op, &one, 1, rep, "forget", err, errlen) != CS_OK) {
            goto done;
        }
        if (rep[0]->type != REDIS_REPLY_ARRAY) {
            cs_redis_fail(r, &op, op.conn->c, rep[0], "forget", err, errlen);
            goto done;
        }
        if (rep[0]->elements == 0) {
            replies_free(rep, 1);
            break;
        }
        cmd_free(&one);
        cmd_adds(&one, "DEL");
        for (i = 0; i + 1 < rep[0]->elements; i += 2) {
            const redisReply *m = rep[0]->element[i];

            if (is_str(m) && parse_u64(m->str, m->len, &id) == CS_OK) {
                cmd_addkey_id(&one, r, "e:", id);
            }
        }
        replies_free(rep, 1);
        if (one.argc == 1) {
            continue;
        }
        if (run(r, &op, &one, 1, rep, "forget", err, errlen) != CS_OK) {
            goto done;
        }
        if (rep[0]->type != REDIS_REPLY_INTEGER) {
            cs_redis_fail(r, &op, op.conn->c, rep[0], "forget", err, errlen);
            goto done;
        }
        count += (long)rep[0]->integer;
        replies_free(rep, 1);
    }

    cmd_free(&one);
    add_xadd(&one, r, "delns", NULL, ns, ns_len);
    if (run(r, &op, &one, 1, rep, "forget", err, errlen) != CS_OK) {
        goto done;
    }
    if (rep[0]->type != REDIS_REPLY_STRING) {
        cs_redis_fail(r, &op, op.conn->c, rep[0], "forget", err, errlen);
        goto done;
    }
    op_ok(r, &op);
    if (removed) {
        *removed = count;
    }
    rv = CS_OK;
done:
    replies_free(rep, 5);
    cmds_free(cmds, 5);
    cmd_free(&one);
    return rv;
}

/* ------------------------------------------------------------------ */
/* scan                                                                 */

/* Appends s to b with the glob characters of SCAN MATCH escaped. */
static void glob_escape(cs_buf_t *b, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strchr("*?[]\\", s[i])) {
            cs_buf_append(b, "\\", 1);
        }
        cs_buf_append(b, &s[i], 1);
    }
}

/* Copies the run_id out of an INFO server reply into id (idlen). */
static void info_run_id(const redisReply *x, char *id, size_t idlen)
{
    const char *p, *end;

    id[0] = '\0';
    if (!x || x->type != REDIS_REPLY_STRING) {
        return;
    }
    p = strstr(x->str, "run_id:");
    if (!p) {
        return;
    }
    p += 7;
    end = p + strcspn(p, "\r\n");
    snprintf(id, idlen, "%.*s", (int)(end - p), p);
}

int cs_redis_scan(cs_redis_t *r, cs_redis_entry_cb *cb, void *ctx,
                  char *stream_pos, size_t poslen, char *err, size_t errlen)
{
    redisReply *head[2] = {NULL, NULL}, *sc = NULL, **rep = NULL;
    cmd_t hcmds[2], scmd, *gets = NULL;
    char cursor[32], runid[CS_REDIS_RUNID_LEN];
    float *vec = NULL;
    cs_buf_t match;
    size_t i, nkeys = 0, klen = r->prefix_len + 2;
    int64_t now;
    cs_op_t op;
    uint64_t id;
    int rv = CS_ERR;

    cmd_init(&hcmds[0]);
    cmd_init(&hcmds[1]);
    cmd_init(&scmd);
    cs_buf_init(&match);
    if (!stream_pos || poslen < CS_REDIS_POS_LEN) {
        set_err(err, errlen, "Redis scan: stream position buffer too small");
        return CS_ERR;
    }
    snprintf(stream_pos, poslen, "0-0");
    if (op_begin(r, &op, "scan", err, errlen) != CS_OK) {
        goto done;
    }
    /* 1. where the stream ends now, and which Redis this is */
    cmd_adds(&hcmds[0], "XREVRANGE");
    cmd_addkey(&hcmds[0], r, "events", NULL, 0);
    cmd_adds(&hcmds[0], "+");
    cmd_adds(&hcmds[0], "-");
    cmd_adds(&hcmds[0], "COUNT");
    cmd_adds(&hcmds[0], "1");
    cmd_adds(&hcmds[1], "INFO");
    cmd_adds(&hcmds[1], "server");
    if (run(r, &op, hcmds, 2, head, "scan", err, errlen) != CS_OK) {
        goto done;
    }
    if (head[0]->type != REDIS_REPLY_ARRAY
        || head[1]->type != REDIS_REPLY_STRING) {
        cs_redis_fail(r, &op, op.conn->c,
                      head[0]->type != REDIS_REPLY_ARRAY ? head[0] : head[1],
                      "scan", err, errlen);
        goto done;
    }
    if (head[0]->elements == 1) {
        const redisReply *ent = head[0]->element[0];
        sid_t s;

        if (ent->type == REDIS_REPLY_ARRAY && ent->elements == 2
            && is_str(ent->element[0])
            && sid_parse(ent->element[0]->str, ent->element[0]->len, &s)
                   == CS_OK) {
            snprintf(stream_pos, poslen, "%" PRIu64 "-%" PRIu64, s.ms,
                     s.seq);
        }
    }
    info_run_id(head[1], runid, sizeof(runid));
    pthread_mutex_lock(&r->lock);
    snprintf(r->scan_runid, sizeof(r->scan_runid), "%s", runid);
    pthread_mutex_unlock(&r->lock);

    /* 2. every entry key */
    cs_buf_append(&match, "", 0);
    glob_escape(&match, r->prefix, r->prefix_len);
    cs_buf_append(&match, "e:*", 3);
    snprintf(cursor, sizeof(cursor), "0");
    vec = cs_malloc(CS_REDIS_MAX_DIM * sizeof(float));
    do {
        cmd_free(&scmd);
        cmd_adds(&scmd, "SCAN");
        cmd_adds(&scmd, cursor);
        cmd_adds(&scmd, "MATCH");
        cmd_add(&scmd, match.data, match.len);
        cmd_adds(&scmd, "COUNT");
        cmd_addf(&scmd, "%d", CS_REDIS_SCAN_COUNT);
        if (run(r, &op, &scmd, 1, &sc, "scan", err, errlen) != CS_OK) {
            goto done;
        }
        if (sc->type != REDIS_REPLY_ARRAY || sc->elements != 2
            || !is_str(sc->element[0]) || sc->element[0]->len >= 32
            || sc->element[1]->type != REDIS_REPLY_ARRAY) {
            cs_redis_fail(r, &op, op.conn->c, sc, "scan", err, errlen);
            goto done;
        }
        snprintf(cursor, sizeof(cursor), "%.*s", (int)sc->element[0]->len,
                 sc->element[0]->str);
        nkeys = sc->element[1]->elements;
        if (nkeys > 0) {
            const redisReply *keys = sc->element[1];

            gets = cs_calloc(nkeys, sizeof(*gets));
            rep = cs_calloc(nkeys, sizeof(*rep));
            for (i = 0; i < nkeys; i++) {
                if (!is_str(keys->element[i])) {
                    cs_redis_fail(r, &op, op.conn->c, keys->element[i],
                                  "scan", err, errlen);
                    goto done;
                }
                add_hmget(&gets[i], r, keys->element[i]->str,
                          keys->element[i]->len, 0, F_PAYLOAD);
            }
            if (run(r, &op, gets, (int)nkeys, rep, "scan", err, errlen)
                != CS_OK) {
                goto done;
            }
            now = cs_wall_us();
            for (i = 0; i < nkeys; i++) {
                const redisReply *k = keys->element[i], *x = rep[i];
                redisReply *const *el;
                cs_entry_rec_t e;

                if (!hmget_ok(x, F_PAYLOAD)) {
                    cs_redis_fail(r, &op, op.conn->c, x, "scan", err,
                                  errlen);
                    goto done;
                }
                el = x->element;
                if (k->len <= klen
                    || parse_u64(k->str + klen, k->len - klen, &id) != CS_OK
                    || id == 0 || !is_str(el[F_NS])) {
                    continue; /* not one of ours, or expired meanwhile */
                }
                memset(&e, 0, sizeof(e));
                e.id = id;
                e.ns = el[F_NS]->str;
                e.ns_len = el[F_NS]->len;
                if (is_str(el[F_TEXT])) {
                    e.text = el[F_TEXT]->str;
                    e.text_len = el[F_TEXT]->len;
                }
                if (is_str(el[F_NORM])) {
                    e.norm = el[F_NORM]->str;
                    e.norm_len = el[F_NORM]->len;
                }
                if (is_str(el[F_VEC]) && el[F_VEC]->len > 0
                    && el[F_VEC]->len % sizeof(float) == 0
                    && el[F_VEC]->len / sizeof(float) <= CS_REDIS_MAX_DIM) {
                    e.dim = (int)(el[F_VEC]->len / sizeof(float));
                    floats_from_le(vec, el[F_VEC]->str, (size_t)e.dim);
                    e.vec = vec;
                }
                if (is_str(el[F_CREATED])) {
                    e.created_us =
                        parse_i64(el[F_CREATED]->str, el[F_CREATED]->len);
                }
                if (is_str(el[F_EXPIRES])) {
                    e.expires_us =
                        parse_i64(el[F_EXPIRES]->str, el[F_EXPIRES]->len);
                }
                if (e.expires_us > 0 && e.expires_us <= now) {
                    continue;
                }
                if (is_str(el[F_EMBEDDER])) {
                    e.embedder = el[F_EMBEDDER]->str;
                }
                if (cb(ctx, &e) != CS_OK) {
                    op_ok(r, &op);
                    set_err(err, errlen, "Redis scan stopped by its caller");
                    goto done;
                }
            }
            replies_free(rep, (int)nkeys);
            cmds_free(gets, (int)nkeys);
            cs_free(rep);
            cs_free(gets);
            rep = NULL;
            gets = NULL;
        }
        freeReplyObject(sc);
        sc = NULL;
    } while (strcmp(cursor, "0") != 0);
    op_ok(r, &op);
    rv = CS_OK;
done:
    replies_free(head, 2);
    if (sc) {
        freeReplyObject(sc);
    }
    if (rep) {
        replies_free(rep, (int)nkeys);
        cs_free(rep);
    }
    if (gets) {
        cmds_free(gets, (int)nkeys);
        cs_free(gets);
    }
    cmd_free(&hcmds[0]);
    cmd_free(&hcmds[1]);
    cmd_free(&scmd);
    cs_buf_free(&match);
    cs_free(vec);
    return rv;
}

/* ------------------------------------------------------------------ */
/* follower                                                             */

static int follow_stopping(cs_redis_t *r)
{
    int stop;

    pthread_mutex_lock(&r->flock);
    stop = r->fstop;
    pthread_mutex_unlock(&r->flock);
    return stop;
}

/* Sleeps up to ms unless stopped; returns 1 if stopping. */
static int follow_sleep(cs_redis_t *r, int ms)
{
    struct timespec until;
    int stop;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->flock);
    while (!r->fstop) {
        if (pthread_cond_timedwait(&r->fcond, &r->flock, &until) != 0) {
            break;
        }
    }
    stop = r->fstop;
    pthread_mutex_unlock(&r->flock);
    return stop;
}

static void follow_drop(cs_redis_t *r)
{
    pthread_mutex_lock(&r->flock);
    if (r->fctx) {
        redisFree(r->fctx);
        r->fctx = NULL;
    }
    pthread_mutex_unlock(&r->flock);
    atomic_store(&r->fconnected, 0);
}

/* Looks up field name in a flat [name, value, ...] array. */
static const redisReply *kv_get(const redisReply *x, const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; i + 1 < x->elements; i += 2) {
        const redisReply *k = x->element[i];

        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS)
            && k->len == n && memcmp(k->str, name, n) == 0) {
            return x->element[i + 1];
        }
    }
    return NULL;
}

/* On (re)connection: decides whether events after our position may have
 * been lost, and if so moves to the stream's end and calls on_resync.
 * Lost when Redis restarted (run id changed: the data may differ from
 * what we saw), the stream vanished or was recreated, or its oldest
 * entry is newer than our position (a MAXLEN trim passed us; for
 * position 0-0: entries-added exceeds the length). Returns CS_OK, or
 * CS_ERR after the translator when Redis failed. */
static int follow_check(cs_redis_t *r, redisContext *c)
{
    char runid[CS_REDIS_RUNID_LEN], why[64], newpos[CS_REDIS_POS_LEN];
    redisReply *info = NULL, *xi = NULL;
    const redisReply *v;
    sid_t pos, last, first;
    int lost = 0, rv = CS_ERR, have_last = 0;
    cmd_t cmd;

    cmd_init(&cmd);
    why[0] = '\0';
    info = redisCommand(c, "INFO server");
    if (!info || info->type != REDIS_REPLY_STRING) {
        if (!follow_stopping(r)) {
            cs_redis_fail(r, NULL, c, info, "follow", NULL, 0);
        }
        goto done;
    }
    info_run_id(info, runid, sizeof(runid));
    cmd_adds(&cmd, "XINFO");
    cmd_adds(&cmd, "STREAM");
    cmd_addkey(&cmd, r, "events", NULL, 0);
    xi = redisCommandArgv(c, cmd.argc, cmd.argv, cmd.len);
    if (!xi || (xi->type != REDIS_REPLY_ARRAY
                && !(xi->type == REDIS_REPLY_ERROR
                     && strstr(xi->str, "no such key")))) {
        if (!follow_stopping(r)) {
            cs_redis_fail(r, NULL, c, xi, "follow", NULL, 0);
        }
        goto done;
    }

    pthread_mutex_lock(&r->flock);
    sid_parse(r->fpos, strlen(r->fpos), &pos);
    if (r->frunid[0] && runid[0] && strcmp(r->frunid, runid) != 0) {
        lost = 1;
        snprintf(why, sizeof(why), "Redis restarted");
    }
    snprintf(r->frunid, sizeof(r->frunid), "%s", runid);
    pthread_mutex_unlock(&r->flock);

    snprintf(newpos, sizeof(newpos), "0-0");
    if (xi->type == REDIS_REPLY_ERROR) {
        if (!lost && (pos.ms || pos.seq)) {
            lost = 1;
            snprintf(why, sizeof(why), "event stream vanished");
        }
    }
    else {
        v = kv_get(xi, "last-generated-id");
        if (v && is_str(v) && sid_parse(v->str, v->len, &last) == CS_OK) {
            have_last = 1;
            snprintf(newpos, sizeof(newpos), "%.*s", (int)v->len, v->str);
        }
        if (!lost && have_last && sid_cmp(&last, &pos) < 0) {
            lost = 1;
            snprintf(why, sizeof(why), "event stream recreated");
        }
        if (!lost && !pos.ms && !pos.seq) {
            const redisReply *added = kv_get(xi, "entries-added"),
                             *len = kv_get(xi, "length");

            if (added && len && added->type == REDIS_REPLY_INTEGER
                && len->type == REDIS_REPLY_INTEGER
                && added->integer > len->integer) {
                lost = 1;
                snprintf(why, sizeof(why), "event stream trimmed");
            }
        }
        else if (!lost) {
            v = kv_get(xi, "first-entry");
            if (v && v->type == REDIS_REPLY_ARRAY && v->elements == 2
                && is_str(v->element[0])
                && sid_parse(v->element[0]->str, v->element[0]->len, &first)
                       == CS_OK
                && sid_cmp(&first, &pos) > 0) {
                lost = 1;
                snprintf(why, sizeof(why), "event stream trimmed");
            }
            else if (v && v->type == REDIS_REPLY_NIL && have_last
                     && sid_cmp(&last, &pos) > 0) {
                lost = 1;
                snprintf(why, sizeof(why), "event stream emptied");
            }
        }
    }
    if (lost) {
        pthread_mutex_lock(&r->flock);
        snprintf(r->fpos, sizeof(r->fpos), "%s", newpos);
        pthread_mutex_unlock(&r->flock);
        atomic_fetch_add(&r->fresyncs, 1);
        cs_log(CS_LOG_WARNING,
               CS_LOGNO(00805) "replication events may have been lost "
                               "(%s); rescanning, following from %s",
               why, newpos);
        if (r->fcbs.on_resync) {
            r->fcbs.on_resync(r->fcbs.ctx);
        }
    }
    rv = CS_OK;
done:
    if (info) {
        freeReplyObject(info);
    }
    if (xi) {
        freeReplyObject(xi);
    }
    cmd_free(&cmd);
    return rv;
}

/* Handles one stream entry [id, [field, value, ...]]. */
static void follow_event(cs_redis_t *r, const redisReply *ent)
{
    const redisReply *f, *op, *idv, *ns, *node;
    uint64_t id = 0;
    sid_t s;

    if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2
        || !is_str(ent->element[0])
        || sid_parse(ent->element[0]->str, ent->element[0]->len, &s)
               != CS_OK) {
        return;
    }
    pthread_mutex_lock(&r->flock);
    snprintf(r->fpos, sizeof(r->fpos), "%" PRIu64 "-%" PRIu64, s.ms, s.seq);
    pthread_mutex_unlock(&r->flock);
    f = ent->element[1];
    if (f->type != REDIS_REPLY_ARRAY) {
        return;
    }
    op = kv_get(f, "op");
    idv = kv_get(f, "id");
    ns = kv_get(f, "ns");
    node = kv_get(f, "node");
    if (!op || !is_str(op) || !ns || !is_str(ns)) {
        return;
    }
    if (node && is_str(node) && node->len == r->node_len
        && memcmp(node->str, r->node_name, r->node_len) == 0) {
        return; /* our own */
    }
    if (idv && is_str(idv) && parse_u64(idv->str, idv->len, &id) != CS_OK) {
        return;
    }
    if (op->len == 3 && memcmp(op->str, "put", 3) == 0 && id) {
        atomic_fetch_add(&r->fevents, 1);
        if (r->fcbs.on_put) {
            r->fcbs.on_put(r->fcbs.ctx, id);
        }
    }
    else if (op->len == 3 && memcmp(op->str, "del", 3) == 0 && id) {
        atomic_fetch_add(&r->fevents, 1);
        if (r->fcbs.on_del) {
            r->fcbs.on_del(r->fcbs.ctx, ns->str, ns->len, id);
        }
    }
    else if (op->len == 5 && memcmp(op->str, "delns", 5) == 0) {
        atomic_fetch_add(&r->fevents, 1);
        if (r->fcbs.on_delns) {
            r->fcbs.on_delns(r->fcbs.ctx, ns->str, ns->len);
        }
    }
}

static void *follow_main(void *arg)
{
    cs_redis_t *r = arg;
    char pos[CS_REDIS_POS_LEN], msg[CS_REDIS_ERR_LEN], why[CS_REDIS_ERR_LEN];
    redisReply *bad, *x;
    uint64_t sgen;
    int backoff = 0, delay, was_lost = 0;
    redisContext *c;
    cmd_t cmd;
    size_t i;

    cmd_init(&cmd);
    for (;;) {
        pthread_mutex_lock(&r->flock);
        c = r->fctx;
        pthread_mutex_unlock(&r->flock);
        if (follow_stopping(r)) {
            break;
        }
        if (c && r->sen && r->fsgen != cs_sentinel_generation(r->sen)) {
            follow_drop(r);            /* made to a forgotten master */
            c = NULL;
        }
        if (!c) {
            if (backoff) {
                pthread_mutex_lock(&r->lock);
                delay = jitter_locked(r, backoff);
                pthread_mutex_unlock(&r->lock);
                if (follow_sleep(r, delay)) {
                    break;
                }
            }
            c = conn_open(r,
                          CS_REDIS_FOLLOW_BLOCK_MS + CS_REDIS_FOLLOW_SLACK_MS
                              + r->command_ms,
                          &bad, &sgen, why, sizeof(why));
            r->fsgen = sgen;
            if (!c || c->err || bad) {
                if (!follow_stopping(r)) {
                    if (!c && why[0]) {
                        fail_tail(r, NULL, NULL, 1, 1, why, "follow connect",
                                  NULL, 0);
                    }
                    else {
                        cs_redis_fail(r, NULL, c, bad, "follow connect",
                                      NULL, 0);
                    }
                }
                if (bad) {
                    freeReplyObject(bad);
                }
                if (c) {
                    redisFree(c);
                }
                backoff = next_backoff(r, backoff);
                continue;
            }
            pthread_mutex_lock(&r->flock);
            if (r->fstop) {
                pthread_mutex_unlock(&r->flock);
                redisFree(c);
                break;
            }
            r->fctx = c;
            pthread_mutex_unlock(&r->flock);
            atomic_fetch_add(&r->freconnects, 1);
            if (follow_check(r, c) != CS_OK) {
                follow_drop(r);
                backoff = next_backoff(r, backoff);
                continue;
            }
            atomic_store(&r->fconnected, 1);
            pthread_mutex_lock(&r->flock);
            snprintf(pos, sizeof(pos), "%s", r->fpos);
            pthread_mutex_unlock(&r->flock);
            if (was_lost) {
                cs_log(CS_LOG_NOTICE,
                       CS_LOGNO(00804) "replication follower reconnected, "
                                       "resuming after event %s",
                       pos);
                was_lost = 0;
            }
        }
        pthread_mutex_lock(&r->flock);
        snprintf(pos, sizeof(pos), "%s", r->fpos);
        pthread_mutex_unlock(&r->flock);
        cmd_free(&cmd);
        cmd_adds(&cmd, "XREAD");
        cmd_adds(&cmd, "COUNT");
        cmd_addf(&cmd, "%d", CS_REDIS_FOLLOW_BATCH);
        cmd_adds(&cmd, "BLOCK");
        cmd_addf(&cmd, "%d", CS_REDIS_FOLLOW_BLOCK_MS);
        cmd_adds(&cmd, "STREAMS");
        cmd_addkey(&cmd, r, "events", NULL, 0);
        cmd_adds(&cmd, pos);
        x = redisCommandArgv(c, cmd.argc, cmd.argv, cmd.len);
        if (!x || (x->type != REDIS_REPLY_ARRAY
                   && x->type != REDIS_REPLY_NIL)) {
            if (follow_stopping(r)) {
                if (x) {
                    freeReplyObject(x);
                }
                break;
            }
            cs_redis_fail(r, NULL, c, x, "follow", msg, sizeof(msg));
            if (!was_lost) {
                cs_log(CS_LOG_WARNING,
                       CS_LOGNO(00803) "replication follower lost Redis: %s",
                       msg);
                was_lost = 1;
            }
            if (x) {
                freeReplyObject(x);
            }
            follow_drop(r);
            backoff = next_backoff(r, backoff);
            continue;
        }
        backoff = 0;
        if (x->type == REDIS_REPLY_ARRAY && x->elements == 1
            && x->element[0]->type == REDIS_REPLY_ARRAY
            && x->element[0]->elements == 2
            && x->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
            const redisReply *ents = x->element[0]->element[1];

            for (i = 0; i < ents->elements; i++) {
                follow_event(r, ents->element[i]);
            }
        }
        freeReplyObject(x);
    }
    follow_drop(r);
    cmd_free(&cmd);
    return NULL;
}

int cs_redis_follow_start(cs_redis_t *r, const char *stream_pos,
                          const cs_redis_follow_cbs_t *cbs, char *err,
                          size_t errlen)
{
    sid_t s;

    if (!stream_pos || !stream_pos[0]) {
        stream_pos = "0-0";
    }
    if (sid_parse(stream_pos, strlen(stream_pos), &s) != CS_OK) {
        set_err(err, errlen,
                "Redis follower: stream position '%.60s' is not "
                "<ms>-<seq>",
                stream_pos);
        return CS_ERR;
    }
    pthread_mutex_lock(&r->flock);
    if (r->frunning) {
        pthread_mutex_unlock(&r->flock);
        set_err(err, errlen, "Redis follower already running");
        return CS_ERR;
    }
    snprintf(r->fpos, sizeof(r->fpos), "%" PRIu64 "-%" PRIu64, s.ms, s.seq);
    pthread_mutex_lock(&r->lock);
    snprintf(r->frunid, sizeof(r->frunid), "%s", r->scan_runid);
    pthread_mutex_unlock(&r->lock);
    if (cbs) {
        r->fcbs = *cbs;
    }
    else {
        memset(&r->fcbs, 0, sizeof(r->fcbs));
    }
    r->fstop = 0;
    if (pthread_create(&r->fthread, NULL, follow_main, r) != 0) {
        pthread_mutex_unlock(&r->flock);
        set_err(err, errlen, "Redis follower: cannot start a thread");
        return CS_ERR;
    }
    r->frunning = 1;
    pthread_mutex_unlock(&r->flock);
    return CS_OK;
}

void cs_redis_follow_stop(cs_redis_t *r)
{
    pthread_mutex_lock(&r->flock);
    if (!r->frunning) {
        pthread_mutex_unlock(&r->flock);
        return;
    }
    r->fstop = 1;
    if (r->fctx) {
        /* wakes a blocked XREAD at once */
        shutdown(r->fctx->fd, SHUT_RDWR);
    }
    pthread_cond_broadcast(&r->fcond);
    pthread_mutex_unlock(&r->flock);
    pthread_join(r->fthread, NULL);
    pthread_mutex_lock(&r->flock);
    r->frunning = 0;
    r->fstop = 0;
    pthread_mutex_unlock(&r->flock);
}

/* ------------------------------------------------------------------ */
/* stats                                                                */

void cs_redis_get_counters(cs_redis_t *r, cs_redis_counters_t *out)
{
    memset(out, 0, sizeof(*out));
    out->up = atomic_load(&r->up);
    out->reconnects = atomic_load(&r->reconnects);
    out->connect_attempts = atomic_load(&r->connect_attempts);
    out->errors = atomic_load(&r->errors);
    out->fast_failures = atomic_load(&r->fast_failures);
    out->decrypt_failures = atomic_load(&r->decrypt_failures);
    out->local_ids = atomic_load(&r->local_ids);
    pthread_mutex_lock(&r->flock);
    out->follow_running = r->frunning;
    pthread_mutex_unlock(&r->flock);
    out->follow_connected = atomic_load(&r->fconnected);
    out->follow_events = atomic_load(&r->fevents);
    out->follow_resyncs = atomic_load(&r->fresyncs);
    out->follow_reconnects = atomic_load(&r->freconnects);
}

void cs_redis_stats(cs_redis_t *r, cs_buf_t *info)
{
    char last[CS_REDIS_ERR_LEN], pos[CS_REDIS_POS_LEN];
    cs_redis_counters_t k;

    cs_redis_get_counters(r, &k);
    pthread_mutex_lock(&r->lock);
    snprintf(last, sizeof(last), "%s", r->last_error);
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_lock(&r->flock);
    snprintf(pos, sizeof(pos), "%s", r->fpos);
    pthread_mutex_unlock(&r->flock);
    cs_buf_printf(info,
                  "# Redis\r\n"
                  "redis_up:%d\r\n"
                  "reconnects:%" PRIu64 "\r\n"
                  "errors:%" PRIu64 "\r\n"
                  "decrypt_failures:%" PRIu64 "\r\n"
                  "last_error:%s\r\n"
                  "connect_attempts:%" PRIu64 "\r\n"
                  "fast_failures:%" PRIu64 "\r\n"
                  "local_ids:%" PRIu64 "\r\n"
                  "follow_running:%d\r\n"
                  "follow_connected:%d\r\n"
                  "follow_events:%" PRIu64 "\r\n"
                  "follow_resyncs:%" PRIu64 "\r\n"
                  "follow_reconnects:%" PRIu64 "\r\n"
                  "follow_pos:%s\r\n",
                  k.up, k.reconnects, k.errors, k.decrypt_failures, last,
                  k.connect_attempts, k.fast_failures, k.local_ids,
                  k.follow_running, k.follow_connected, k.follow_events,
                  k.follow_resyncs, k.follow_reconnects, pos);
    cs_buf_printf(info, "wait_replicas:%d\r\nwait_short:%" PRIu64 "\r\n",
                  r->wait_replicas, (uint64_t)atomic_load(&r->wait_short));
    if (r->sen) {
        cs_sentinel_stats(r->sen, info);
    }
}
