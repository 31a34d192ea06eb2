/* Unit tests for the Redis tier (cs_redis.c) against a real redis-server.
 *
 * The group setup starts `redis-server` (Debian's, >= 7.0) on a free
 * loopback port with persistence off, in a mkdtemp directory; every test
 * uses its own key prefix, so tests do not see each other's keys. The
 * outage test starts a server of its own, stops it (SIGSTOP), kills it
 * (SIGKILL) and restarts it on the same port; the AUTH test starts one
 * with requirepass and a Unix socket. Servers die with the test process
 * (PR_SET_PDEATHSIG). A raw hiredis connection looks at and damages what
 * the tier wrote; cs_log's output (descriptor 2) is captured where a test
 * counts log lines. Timing bounds are generous
 * multiples of the configured timeouts, so a loaded machine does not make
 * the tests flaky while a hang or a retry storm still fails them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "net_testutil.h"
#include <hiredis/hiredis.h>

#include "cs_redis.h"

/* A command against a live Redis should not take longer than this; a
 * call that fails must end within the command timeout plus this. */
#define SLACK_MS 150
/* How long an event may take from one replica to another. */
#define EVENT_MS 1000

/* ------------------------------------------------------------------ */
/* redis-server processes                                               */

typedef struct srv {
    pid_t pid;
    int port;
    char dir[64];
    char sock[96];        /* also listen on this Unix socket if set */
    const char *password; /* requirepass if set */
} srv_t;

static srv_t main_srv;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static redisContext *raw_connect(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    if (c && !c->err) {
        redisSetTimeout(c, tv);
    }
    return c;
}

static int srv_ping(int port)
{
    redisContext *c = raw_connect(port);
    redisReply *x;
    int ok = 0;

    if (c && !c->err) {
        x = redisCommand(c, "PING");
        /* NOAUTH is an answer too: the server is up */
        ok = x && (x->type == REDIS_REPLY_STATUS
                   || x->type == REDIS_REPLY_ERROR);
        if (x) {
            freeReplyObject(x);
        }
    }
    if (c) {
        redisFree(c);
    }
    return ok;
}

static void srv_start(srv_t *s, int port)
{
    char portstr[16];
    int64_t t0;
    pid_t pid;

    if (!s->dir[0]) {
        snprintf(s->dir, sizeof(s->dir), "/tmp/cs-redis-test-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
    }
    s->port = port;
    snprintf(portstr, sizeof(portstr), "%d", port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        /* dies with us, even when an assertion ends the test early */
        prctl(PR_SET_PDEATHSIG, SIGKILL);

        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        const char *argv[32] = {"redis-server", "--port", portstr, "--bind",
                                "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", s->dir, "--daemonize", "no",
                                "--loglevel", "warning"};
        int n = 15;

        if (s->sock[0]) {
            argv[n++] = "--unixsocket";
            argv[n++] = s->sock;
            argv[n++] = "--unixsocketperm";
            argv[n++] = "700";
        }
        if (s->password) {
            argv[n++] = "--requirepass";
            argv[n++] = s->password;
        }
        argv[n] = NULL;
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    t0 = now_ms();
    while (!srv_ping(port)) {
        assert_true(now_ms() - t0 < 10000);
        test_sleep_ms(20);
    }
}

static void srv_kill(srv_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

static void srv_cleanup(srv_t *s)
{
    char path[128];

    srv_kill(s);
    if (s->dir[0]) {
        snprintf(path, sizeof(path), "%s/dump.rdb", s->dir);
        unlink(path);
        if (s->sock[0]) {
            unlink(s->sock);
        }
        rmdir(s->dir);
        s->dir[0] = '\0';
    }
}

/* Runs one command on a fresh raw connection; the caller frees it. */
static redisReply *raw(int port, const char *fmt, ...)
{
    redisContext *c = raw_connect(port);
    redisReply *x;
    va_list ap;

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    va_start(ap, fmt);
    x = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(x);
    return x;
}

static long long raw_int(int port, const char *fmt, const char *arg)
{
    redisReply *x = raw(port, fmt, arg);
    long long v;

    assert_int_equal(x->type, REDIS_REPLY_INTEGER);
    v = x->integer;
    freeReplyObject(x);
    return v;
}

/* ------------------------------------------------------------------ */
/* helpers                                                              */

/* Captures what cs_log writes to descriptor 2 into a temporary file. */
typedef struct logcap {
    char path[64];
    int saved_fd;
} logcap_t;

static void logcap_start(logcap_t *l)
{
    int fd;

    snprintf(l->path, sizeof(l->path), "/tmp/cs-redis-log-XXXXXX");
    fd = mkstemp(l->path);
    assert_true(fd >= 0);
    fflush(stderr);
    l->saved_fd = dup(2);
    assert_true(l->saved_fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
}

/* Lines of the captured log holding tag so far. */
static int logcap_count(logcap_t *l, const char *tag)
{
    char line[2048];
    FILE *f = fopen(l->path, "r");
    int n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        n += strstr(line, tag) != NULL;
    }
    fclose(f);
    return n;
}

static void logcap_stop(logcap_t *l)
{
    fflush(stderr);
    dup2(l->saved_fd, 2);
    close(l->saved_fd);
    unlink(l->path);
}

static cs_redis_t *make(int port, const char *prefix, const char *node,
                        const unsigned char *key)
{
    cs_redis_conf_t conf;
    cs_redis_t *r = NULL;
    char err[256];

    memset(&conf, 0, sizeof(conf));
    conf.host = "127.0.0.1";
    conf.port = port;
    conf.prefix = prefix;
    conf.node_name = node;
    conf.aes_key = key;
    assert_int_equal(cs_redis_create(&r, &conf, err, sizeof(err)), CS_OK);
    assert_non_null(r);
    return r;
}

static int64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A simple entry: payload "payload-<id>", ns as given, one-hour TTL. */
static void rec_fill(cs_entry_rec_t *e, uint64_t id, const char *ns,
                     char *payload, size_t cap)
{
    memset(e, 0, sizeof(*e));
    e->id = id;
    e->ns = ns;
    e->ns_len = strlen(ns);
    e->text = "what is the capital of France?";
    e->text_len = strlen(e->text);
    e->norm = "capital france";
    e->norm_len = strlen(e->norm);
    snprintf(payload, cap, "payload-%" PRIu64, id);
    e->payload = payload;
    e->payload_len = strlen(payload);
    e->created_us = wall_us();
    e->expires_us = e->created_us + 3600 * INT64_C(1000000);
}

static uint64_t put_simple(cs_redis_t *r, const char *ns)
{
    char payload[64], err[256];
    cs_entry_rec_t e;
    uint64_t id;

    assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
    rec_fill(&e, id, ns, payload, sizeof(payload));
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);
    return id;
}

static int found_payload(cs_redis_t *r, uint64_t id)
{
    char *p = NULL, err[256];
    size_t len;
    int found = -1;

    assert_int_equal(cs_redis_get_payload(r, id, &p, &len, &found, err,
                                          sizeof(err)),
                     CS_OK);
    cs_free(p);
    return found;
}

/* ------------------------------------------------------------------ */
/* basic operations                                                     */

static void test_create_validation(void **state)
{
    cs_redis_conf_t conf;
    cs_redis_t *r = NULL;
    char err[256];

    (void)state;
    memset(&conf, 0, sizeof(conf));
    conf.port = 70000;
    assert_int_equal(cs_redis_create(&r, &conf, err, sizeof(err)), CS_ERR);
    assert_null(r);
    assert_non_null(strstr(err, "1-65535"));
    conf.port = 6379;
    conf.prefix = "has space:";
    assert_int_equal(cs_redis_create(&r, &conf, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "prefix"));
    conf.prefix = NULL;
    conf.command_timeout_ms = -5;
    assert_int_equal(cs_redis_create(&r, &conf, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "timeouts"));
    conf.command_timeout_ms = 0;
    conf.node_name = "a-node-name-that-is-much-too-long-to-be-accepted-by-the"
                     "-redis-tier-at-all";
    assert_int_equal(cs_redis_create(&r, &conf, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "node name"));
    /* defaults: no I/O at create, counts as up */
    conf.node_name = NULL;
    assert_int_equal(cs_redis_create(&r, &conf, err, sizeof(err)), CS_OK);
    assert_int_equal(cs_redis_up(r), 1);
    cs_redis_free(r);
    cs_redis_free(NULL);
}

static void test_put_get_roundtrip(void **state)
{
    static const float vec[4] = {0.5f, -1.25f, 3.0e-7f, 42.0f};
    static const char payload[] = "{\"answer\":\"Paris\"}\0binary\xff";
    cs_redis_t *r = make(main_srv.port, "rt:", "rt-node", NULL);
    cs_entry_rec_t e, got;
    uint64_t id, id2;
    void *owned = NULL;
    char err[256], *p = NULL;
    size_t len = 0;
    int found = -1;

    (void)state;
    assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
    assert_string_equal(err, "");
    assert_false(cs_redis_id_is_local(id));
    assert_int_equal(cs_redis_next_id(r, &id2, err, sizeof(err)), CS_OK);
    assert_true(id2 == id + 1);

    memset(&e, 0, sizeof(e));
    e.id = id;
    e.ns = "tenant-a/gpt";
    e.ns_len = strlen(e.ns);
    e.text = "What is the capital of France?";
    e.text_len = strlen(e.text);
    e.norm = "what capital france";
    e.norm_len = strlen(e.norm);
    e.vec = vec;
    e.dim = 4;
    e.payload = payload;
    e.payload_len = sizeof(payload) - 1;
    e.created_us = wall_us();
    e.expires_us = e.created_us + 60 * INT64_C(1000000);
    e.embedder = "builtin-v1";
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);

    assert_int_equal(cs_redis_get_payload(r, id, &p, &len, &found, err,
                                          sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 1);
    assert_int_equal(len, sizeof(payload) - 1);
    assert_memory_equal(p, payload, len);
    assert_int_equal(p[len], '\0');
    cs_free(p);

    assert_int_equal(cs_redis_get_entry(r, id, &got, &owned, &found, err,
                                        sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 1);
    assert_non_null(owned);
    assert_true(got.id == id);
    assert_int_equal(got.ns_len, e.ns_len);
    assert_memory_equal(got.ns, e.ns, e.ns_len);
    assert_string_equal(got.text, e.text);
    assert_string_equal(got.norm, e.norm);
    assert_int_equal(got.dim, 4);
    assert_memory_equal(got.vec, vec, sizeof(vec));
    assert_int_equal(got.payload_len, e.payload_len);
    assert_memory_equal(got.payload, payload, e.payload_len);
    assert_true(got.created_us == e.created_us);
    assert_true(got.expires_us == e.expires_us);
    assert_string_equal(got.embedder, "builtin-v1");
    cs_free(owned);

    /* the vector is stored as raw little-endian floats */
    {
        redisReply *x = raw(main_srv.port, "HGET rt:e:%" PRIu64 " vec", id);

        assert_int_equal(x->type, REDIS_REPLY_STRING);
        assert_int_equal(x->len, 16);
        assert_int_equal((unsigned char)x->str[4 * 3 + 3], 0x42); /* 42.0 */
        freeReplyObject(x);
    }

    /* a replacement with no vector and no embedder leaves none behind */
    e.vec = NULL;
    e.dim = 0;
    e.embedder = NULL;
    e.payload = "second";
    e.payload_len = 6;
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);
    assert_int_equal(cs_redis_get_entry(r, id, &got, &owned, &found, err,
                                        sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 1);
    assert_null(got.vec);
    assert_int_equal(got.dim, 0);
    assert_null(got.embedder);
    assert_string_equal(got.payload, "second");
    cs_free(owned);

    /* unknown id: found 0, not an error */
    assert_int_equal(cs_redis_get_payload(r, id + 1000, &p, &len, &found,
                                          err, sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 0);
    assert_null(p);
    assert_int_equal(cs_redis_get_entry(r, id + 1000, &got, &owned, &found,
                                        err, sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 0);
    assert_null(owned);

    /* refused inputs */
    e.id = 0;
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_ERR);
    e.id = id;
    e.dim = CS_REDIS_MAX_DIM + 1;
    e.vec = vec;
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_ERR);
    cs_redis_free(r);
}

static void test_ttl_expiry(void **state)
{
    cs_redis_t *r = make(main_srv.port, "ttl:", "ttl-node", NULL);
    char payload[64], err[256], key[64];
    cs_entry_rec_t e;
    uint64_t id;
    long long pttl;
    void *owned;
    int found;

    (void)state;
    /* near future: there, then gone by itself */
    assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
    rec_fill(&e, id, "ns", payload, sizeof(payload));
    e.expires_us = wall_us() + 300000;
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);
    snprintf(key, sizeof(key), "ttl:e:%" PRIu64, id);
    pttl = raw_int(main_srv.port, "PTTL %s", key);
    assert_true(pttl > 0 && pttl <= 301);
    pttl = raw_int(main_srv.port, "PTTL %s", "ttl:n:ns");
    assert_true(pttl > 0 && pttl <= 301);
    assert_int_equal(found_payload(r, id), 1);
    test_sleep_ms(450);
    assert_int_equal(found_payload(r, id), 0);
    assert_int_equal(cs_redis_get_entry(r, id, &e, &owned, &found, err,
                                        sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 0);

    /* in the past: not written at all */
    assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
    rec_fill(&e, id, "ns", payload, sizeof(payload));
    e.expires_us = wall_us() - 1000;
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);
    snprintf(key, sizeof(key), "ttl:e:%" PRIu64, id);
    assert_int_equal(raw_int(main_srv.port, "EXISTS %s", key), 0);
    assert_int_equal(found_payload(r, id), 0);

    /* a longer-lived member extends the namespace set (GT) */
    assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
    rec_fill(&e, id, "ns2", payload, sizeof(payload));
    e.expires_us = wall_us() + 200000;
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);
    assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
    rec_fill(&e, id, "ns2", payload, sizeof(payload));
    e.expires_us = wall_us() + 60000000;
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);
    pttl = raw_int(main_srv.port, "PTTL %s", "ttl:n:ns2");
    assert_true(pttl > 50000);

    /* never expires: no TTL, kept in the np: set */
    assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
    rec_fill(&e, id, "ns3", payload, sizeof(payload));
    e.expires_us = 0;
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);
    snprintf(key, sizeof(key), "ttl:e:%" PRIu64, id);
    assert_int_equal(raw_int(main_srv.port, "PTTL %s", key), -1);
    assert_int_equal(raw_int(main_srv.port, "ZCARD %s", "ttl:np:ns3"), 1);
    assert_int_equal(raw_int(main_srv.port, "EXISTS %s", "ttl:n:ns3"), 0);
    assert_int_equal(found_payload(r, id), 1);
    cs_redis_free(r);
}

static void test_del_and_del_ns(void **state)
{
    cs_redis_t *r = make(main_srv.port, "del:", "del-node", NULL);
    uint64_t a1, a2, a3, b1, b2;
    char payload[64], err[256];
    cs_entry_rec_t e;
    redisReply *x;
    long removed = -1;
    size_t i;
    int n_put = 0, n_del = 0, n_delns = 0;

    (void)state;
    a1 = put_simple(r, "A");
    a2 = put_simple(r, "A");
    assert_int_equal(cs_redis_next_id(r, &a3, err, sizeof(err)), CS_OK);
    rec_fill(&e, a3, "A", payload, sizeof(payload));
    e.expires_us = 0; /* one that never expires goes too */
    assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);
    b1 = put_simple(r, "B");
    b2 = put_simple(r, "B");

    assert_int_equal(cs_redis_del(r, "A", 1, a1, err, sizeof(err)), CS_OK);
    assert_int_equal(found_payload(r, a1), 0);
    assert_int_equal(found_payload(r, a2), 1);
    /* deleting a missing entry is fine */
    assert_int_equal(cs_redis_del(r, "A", 1, a1, err, sizeof(err)), CS_OK);

    assert_int_equal(cs_redis_del_ns(r, "A", 1, &removed, err, sizeof(err)),
                     CS_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(found_payload(r, a2), 0);
    assert_int_equal(found_payload(r, a3), 0);
    assert_int_equal(found_payload(r, b1), 1);
    assert_int_equal(found_payload(r, b2), 1);
    assert_int_equal(raw_int(main_srv.port, "EXISTS %s", "del:n:A"), 0);
    assert_int_equal(raw_int(main_srv.port, "EXISTS %s", "del:np:A"), 0);
    x = raw(main_srv.port, "KEYS del:gone:*");
    assert_int_equal(x->type, REDIS_REPLY_ARRAY);
    assert_int_equal(x->elements, 0);
    freeReplyObject(x);
    assert_int_equal(cs_redis_del_ns(r, "A", 1, &removed, err, sizeof(err)),
                     CS_OK);
    assert_int_equal(removed, 0);

    /* the stream tells the story: 5 puts, 2 dels, 2 delns, all ours */
    x = raw(main_srv.port, "XRANGE del:events - +");
    assert_int_equal(x->type, REDIS_REPLY_ARRAY);
    for (i = 0; i < x->elements; i++) {
        redisReply *f = x->element[i]->element[1];
        const char *op = f->element[1]->str;
        size_t k;
        int node_ok = 0;

        assert_string_equal(f->element[0]->str, "op");
        for (k = 0; k + 1 < f->elements; k += 2) {
            if (strcmp(f->element[k]->str, "node") == 0) {
                node_ok = strcmp(f->element[k + 1]->str, "del-node") == 0;
            }
        }
        assert_true(node_ok);
        n_put += strcmp(op, "put") == 0;
        n_del += strcmp(op, "del") == 0;
        n_delns += strcmp(op, "delns") == 0;
    }
    freeReplyObject(x);
    assert_int_equal(n_put, 5);
    assert_int_equal(n_del, 2);
    assert_int_equal(n_delns, 2);
    cs_redis_free(r);
}

/* ------------------------------------------------------------------ */
/* scan                                                                 */

#define SCAN_N 1000
#define SCAN_DIM 8

typedef struct scan_seen {
    uint64_t first;
    unsigned char seen[SCAN_N];
    int calls, bad, stop_after;
} scan_seen_t;

static int scan_cb(void *ctx, const cs_entry_rec_t *e)
{
    scan_seen_t *s = ctx;
    uint64_t k = e->id - s->first;
    int j;

    s->calls++;
    if (e->id < s->first || k >= SCAN_N || e->payload || e->payload_len
        || e->dim != SCAN_DIM || !e->vec || e->ns_len != 3
        || memcmp(e->ns, "ns", 2) != 0 || e->expires_us <= 0
        || !e->embedder || strcmp(e->embedder, "emb-1") != 0) {
        s->bad++;
        return CS_OK;
    }
    for (j = 0; j < SCAN_DIM; j++) {
        if (e->vec[j] != (float)k + (float)j / 10.0f) {
            s->bad++;
        }
    }
    s->seen[k] = 1;
    if (s->stop_after && s->calls >= s->stop_after) {
        return CS_ERR;
    }
    return CS_OK;
}

static void test_scan_finds_all(void **state)
{
    /* glob characters in the prefix must be matched literally */
    cs_redis_t *r = make(main_srv.port, "sc[1]*:", "scan-node", NULL);
    static scan_seen_t seen;
    char payload[64], err[256], pos[CS_REDIS_POS_LEN], ns[4];
    float vec[SCAN_DIM];
    cs_entry_rec_t e;
    redisReply *x;
    uint64_t id;
    int i, j, n = 0;

    (void)state;
    memset(&seen, 0, sizeof(seen));
    /* noise: a lookalike under another prefix, a malformed entry key */
    x = raw(main_srv.port, "HSET sc[1]:e:5 ns xxx");
    freeReplyObject(x);
    x = raw(main_srv.port, "HSET sc[1]*:e:notanumber ns xxx");
    freeReplyObject(x);
    for (i = 0; i < SCAN_N; i++) {
        assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
        if (i == 0) {
            seen.first = id;
        }
        assert_true(id == seen.first + (uint64_t)i);
        snprintf(ns, sizeof(ns), "ns%d", i % 3);
        rec_fill(&e, id, ns, payload, sizeof(payload));
        for (j = 0; j < SCAN_DIM; j++) {
            vec[j] = (float)i + (float)j / 10.0f;
        }
        e.vec = vec;
        e.dim = SCAN_DIM;
        e.embedder = "emb-1";
        assert_int_equal(cs_redis_put(r, &e, err, sizeof(err)), CS_OK);
    }
    assert_int_equal(cs_redis_scan(r, scan_cb, &seen, pos, sizeof(pos), err,
                                   sizeof(err)),
                     CS_OK);
    assert_int_equal(seen.bad, 0);
    for (i = 0; i < SCAN_N; i++) {
        n += seen.seen[i];
    }
    assert_int_equal(n, SCAN_N);
    assert_true(seen.calls >= SCAN_N); /* SCAN may repeat, never miss */

    /* the position is the stream's last event */
    x = raw(main_srv.port, "XREVRANGE sc[1]*:events + - COUNT 1");
    assert_int_equal(x->elements, 1);
    assert_string_equal(pos, x->element[0]->element[0]->str);
    freeReplyObject(x);

    /* a callback can stop the scan */
    memset(&seen.seen, 0, sizeof(seen.seen));
    seen.calls = 0;
    seen.stop_after = 10;
    assert_int_equal(cs_redis_scan(r, scan_cb, &seen, pos, sizeof(pos), err,
                                   sizeof(err)),
                     CS_ERR);
    assert_int_equal(seen.calls, 10);
    assert_non_null(strstr(err, "stopped"));
    cs_redis_free(r);

    /* an empty Redis prefix: position 0-0, no calls */
    r = make(main_srv.port, "empty:", "scan-node", NULL);
    seen.calls = 0;
    assert_int_equal(cs_redis_scan(r, scan_cb, &seen, pos, sizeof(pos), err,
                                   sizeof(err)),
                     CS_OK);
    assert_string_equal(pos, "0-0");
    assert_int_equal(seen.calls, 0);
    cs_redis_free(r);
}

/* ------------------------------------------------------------------ */
/* follower                                                             */

#define EV_MAX 256

typedef struct events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t puts[EV_MAX];
    int64_t put_ms[EV_MAX];
    int nput;
    uint64_t dels[EV_MAX];
    char del_ns[EV_MAX][16];
    int ndel;
    char delns[EV_MAX][16];
    int ndelns;
    int resyncs;
} events_t;

static void ev_init(events_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
}

static void ev_destroy(events_t *ev)
{
    pthread_mutex_destroy(&ev->mu);
    pthread_cond_destroy(&ev->cv);
}

static void on_put(void *ctx, uint64_t id)
{
    events_t *ev = ctx;

    pthread_mutex_lock(&ev->mu);
    if (ev->nput < EV_MAX) {
        ev->put_ms[ev->nput] = now_ms();
        ev->puts[ev->nput++] = id;
    }
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

static void on_del(void *ctx, const char *ns, size_t ns_len, uint64_t id)
{
    events_t *ev = ctx;

    pthread_mutex_lock(&ev->mu);
    if (ev->ndel < EV_MAX) {
        snprintf(ev->del_ns[ev->ndel], 16, "%.*s", (int)ns_len, ns);
        ev->dels[ev->ndel++] = id;
    }
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

static void on_delns(void *ctx, const char *ns, size_t ns_len)
{
    events_t *ev = ctx;

    pthread_mutex_lock(&ev->mu);
    if (ev->ndelns < EV_MAX) {
        snprintf(ev->delns[ev->ndelns++], 16, "%.*s", (int)ns_len, ns);
    }
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

static void on_resync(void *ctx)
{
    events_t *ev = ctx;

    pthread_mutex_lock(&ev->mu);
    ev->resyncs++;
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

static int ev_has_put(events_t *ev, uint64_t id, int64_t *at)
{
    int i, has = 0;

    pthread_mutex_lock(&ev->mu);
    for (i = 0; i < ev->nput; i++) {
        if (ev->puts[i] == id) {
            has = 1;
            if (at) {
                *at = ev->put_ms[i];
            }
        }
    }
    pthread_mutex_unlock(&ev->mu);
    return has;
}

/* Waits up to ms for the put of id; returns the delay, or -1. */
static int64_t ev_wait_put(events_t *ev, uint64_t id, int64_t since,
                           int ms)
{
    int64_t at = 0;

    while (!ev_has_put(ev, id, &at)) {
        if (now_ms() - since > ms) {
            return -1;
        }
        test_sleep_ms(5);
    }
    return at - since;
}

static int count_cb(void *ctx, const cs_entry_rec_t *e)
{
    (void)e;
    (*(int *)ctx)++;
    return CS_OK;
}

/* Starts r's follower the way the engine does: scan, then follow. */
static void follow(cs_redis_t *r, events_t *ev)
{
    cs_redis_follow_cbs_t cbs = {on_put, on_del, on_delns, on_resync, ev};
    char pos[CS_REDIS_POS_LEN], err[256];
    int calls = 0;

    assert_int_equal(cs_redis_scan(r, count_cb, &calls, pos, sizeof(pos),
                                   err, sizeof(err)),
                     CS_OK);
    assert_int_equal(cs_redis_follow_start(r, pos, &cbs, err, sizeof(err)),
                     CS_OK);
}

static void test_follow_between_replicas(void **state)
{
    cs_redis_t *a = make(main_srv.port, "fol:", "node-a", NULL);
    cs_redis_t *b = make(main_srv.port, "fol:", "node-b", NULL);
    uint64_t ids_a[5], ids_b[3], gone;
    cs_redis_counters_t k;
    events_t eva, evb;
    char err[256];
    int64_t t0, d;
    int i, waited;

    (void)state;
    ev_init(&eva);
    ev_init(&evb);
    follow(a, &eva);
    follow(b, &evb);
    assert_int_equal(cs_redis_follow_start(b, "0-0", NULL, err, sizeof(err)),
                     CS_ERR); /* already running */
    test_sleep_ms(100); /* let both block in XREAD */

    for (i = 0; i < 5; i++) {
        t0 = now_ms();
        ids_a[i] = put_simple(a, "shared");
        d = ev_wait_put(&evb, ids_a[i], t0, EVENT_MS);
        assert_true(d >= 0 && d < EVENT_MS);
        if (i == 0) {
            print_message("follow: A's put reached B in %" PRId64 " ms\n",
                          d);
        }
    }
    for (i = 0; i < 3; i++) {
        t0 = now_ms();
        ids_b[i] = put_simple(b, "shared");
        assert_true(ev_wait_put(&eva, ids_b[i], t0, EVENT_MS) >= 0);
    }
    /* A has seen B's puts, so B's own events have passed B too */
    for (i = 0; i < 3; i++) {
        assert_false(ev_has_put(&evb, ids_b[i], NULL));
    }
    for (i = 0; i < 5; i++) {
        assert_false(ev_has_put(&eva, ids_a[i], NULL));
    }

    /* del and delns reach the other side with their namespace */
    gone = ids_a[0];
    assert_int_equal(cs_redis_del(a, "shared", 6, gone, err, sizeof(err)),
                     CS_OK);
    assert_int_equal(cs_redis_del_ns(a, "other", 5, NULL, err, sizeof(err)),
                     CS_OK);
    t0 = now_ms();
    for (waited = 0;; waited++) {
        pthread_mutex_lock(&evb.mu);
        i = evb.ndel == 1 && evb.ndelns == 1;
        pthread_mutex_unlock(&evb.mu);
        if (i || now_ms() - t0 > EVENT_MS) {
            break;
        }
        test_sleep_ms(5);
    }
    assert_int_equal(evb.ndel, 1);
    assert_true(evb.dels[0] == gone);
    assert_string_equal(evb.del_ns[0], "shared");
    assert_int_equal(evb.ndelns, 1);
    assert_string_equal(evb.delns[0], "other");
    assert_int_equal(eva.ndel, 0);
    assert_int_equal(eva.resyncs, 0);
    assert_int_equal(evb.resyncs, 0);

    cs_redis_get_counters(b, &k);
    assert_int_equal(k.follow_running, 1);
    assert_int_equal(k.follow_connected, 1);
    assert_true(k.follow_events == 5 + 2);

    /* stop is prompt even while blocked in XREAD */
    t0 = now_ms();
    cs_redis_follow_stop(b);
    assert_true(now_ms() - t0 < 500);
    cs_redis_follow_stop(b); /* no-op */
    cs_redis_get_counters(b, &k);
    assert_int_equal(k.follow_running, 0);
    cs_redis_free(a); /* stops a's follower */
    cs_redis_free(b);
    ev_destroy(&eva);
    ev_destroy(&evb);
}

static void test_follow_trimmed_stream_resyncs(void **state)
{
    cs_redis_t *a = make(main_srv.port, "trim:", "node-a", NULL);
    cs_redis_t *b = make(main_srv.port, "trim:", "node-b", NULL);
    cs_redis_follow_cbs_t cbs = {on_put, on_del, on_delns, on_resync, NULL};
    char err[256], pos[CS_REDIS_POS_LEN];
    redisReply *x;
    logcap_t logs;
    events_t evb;
    uint64_t id;
    int64_t t0;

    (void)state;
    ev_init(&evb);
    cbs.ctx = &evb;
    logcap_start(&logs);
    put_simple(a, "ns");
    put_simple(a, "ns");
    x = raw(main_srv.port, "XREVRANGE trim:events + - COUNT 1");
    snprintf(pos, sizeof(pos), "%s", x->element[0]->element[0]->str);
    freeReplyObject(x);
    /* events after pos are then trimmed away before b follows */
    put_simple(a, "ns");
    put_simple(a, "ns");
    x = raw(main_srv.port, "XTRIM trim:events MAXLEN 1");
    freeReplyObject(x);
    assert_int_equal(cs_redis_follow_start(b, pos, &cbs, err, sizeof(err)),
                     CS_OK);
    t0 = now_ms();
    while (now_ms() - t0 < EVENT_MS) {
        pthread_mutex_lock(&evb.mu);
        if (evb.resyncs) {
            pthread_mutex_unlock(&evb.mu);
            break;
        }
        pthread_mutex_unlock(&evb.mu);
        test_sleep_ms(5);
    }
    assert_int_equal(evb.resyncs, 1);
    /* it follows on from the stream's end */
    t0 = now_ms();
    id = put_simple(a, "ns");
    assert_true(ev_wait_put(&evb, id, t0, EVENT_MS) >= 0);
    pthread_mutex_lock(&evb.mu);
    assert_int_equal(evb.nput, 1);
    pthread_mutex_unlock(&evb.mu);
    assert_int_equal(logcap_count(&logs, "ACD00805"), 1);
    assert_int_equal(logcap_count(&logs, "event stream trimmed"), 1);
    logcap_stop(&logs);
    cs_redis_free(a);
    cs_redis_free(b);
    ev_destroy(&evb);
}

/* ------------------------------------------------------------------ */
/* encryption                                                           */

static void test_encryption(void **state)
{
    static const char secret[] = "SECRET-PLAINTEXT: the launch code is 0000";
    unsigned char k1[32], k2[32];
    cs_redis_t *e1, *e2, *e0;
    cs_redis_counters_t k;
    cs_entry_rec_t e, got;
    char payload[64], err[256], *p;
    uint64_t id, id2, id3, id4;
    redisReply *x;
    void *owned;
    size_t len;
    int found;

    (void)state;
    memset(k1, 0x11, sizeof(k1));
    memset(k2, 0x11, sizeof(k2));
    k2[0] = 0x12;
    e1 = make(main_srv.port, "enc:", "enc-1", k1);
    e2 = make(main_srv.port, "enc:", "enc-2", k2);
    e0 = make(main_srv.port, "enc:", "enc-0", NULL);

    assert_int_equal(cs_redis_next_id(e1, &id, err, sizeof(err)), CS_OK);
    rec_fill(&e, id, "tenant", payload, sizeof(payload));
    e.payload = secret;
    e.payload_len = strlen(secret);
    assert_int_equal(cs_redis_put(e1, &e, err, sizeof(err)), CS_OK);

    /* what Redis holds is not the plaintext */
    x = raw(main_srv.port, "HGET enc:e:%" PRIu64 " payload", id);
    assert_int_equal(x->type, REDIS_REPLY_STRING);
    assert_int_equal(x->len, strlen(secret) + 29);
    assert_int_equal((unsigned char)x->str[0], 0x01);
    assert_null(memmem(x->str, x->len, "SECRET", 6));
    assert_null(memmem(x->str, x->len, "launch", 6));
    freeReplyObject(x);

    /* the right key opens it */
    assert_int_equal(cs_redis_get_payload(e1, id, &p, &len, &found, err,
                                          sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 1);
    assert_int_equal(len, strlen(secret));
    assert_memory_equal(p, secret, len);
    cs_free(p);
    assert_int_equal(cs_redis_get_entry(e1, id, &got, &owned, &found, err,
                                        sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 1);
    assert_string_equal(got.payload, secret);
    cs_free(owned);

    /* a wrong key: not found, counted, never returned */
    assert_int_equal(cs_redis_get_payload(e2, id, &p, &len, &found, err,
                                          sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 0);
    assert_null(p);
    assert_int_equal(cs_redis_get_entry(e2, id, &got, &owned, &found, err,
                                        sizeof(err)),
                     CS_OK);
    assert_int_equal(found, 0);
    assert_null(owned);
    cs_redis_get_counters(e2, &k);
    assert_true(k.decrypt_failures == 2);
    assert_true(k.errors == 0);
    /* no key at all: not found either */
    assert_int_equal(found_payload(e0, id), 0);
    cs_redis_get_counters(e0, &k);
    assert_true(k.decrypt_failures == 1);
    /* and a clear payload is refused where a key is configured */
    id2 = put_simple(e0, "tenant");
    assert_int_equal(found_payload(e0, id2), 1);
    assert_int_equal(found_payload(e1, id2), 0);
    cs_redis_get_counters(e1, &k);
    assert_true(k.decrypt_failures == 1);

    /* tampered ciphertext: not found */
    x = raw(main_srv.port, "HGET enc:e:%" PRIu64 " payload", id);
    x->str[20] ^= 0x04;
    {
        redisReply *y = raw(main_srv.port, "HSET enc:e:%" PRIu64
                                           " payload %b",
                            id, x->str, x->len);

        freeReplyObject(y);
    }
    freeReplyObject(x);
    assert_int_equal(found_payload(e1, id), 0);
    cs_redis_get_counters(e1, &k);
    assert_true(k.decrypt_failures == 2);

    /* a valid sealed payload copied into another entry: not found */
    id3 = put_simple(e1, "tenant");
    id4 = put_simple(e1, "tenant");
    assert_int_equal(found_payload(e1, id4), 1);
    x = raw(main_srv.port, "HGET enc:e:%" PRIu64 " payload", id3);
    {
        redisReply *y = raw(main_srv.port, "HSET enc:e:%" PRIu64
                                           " payload %b",
                            id4, x->str, x->len);

        freeReplyObject(y);
    }
    freeReplyObject(x);
    assert_int_equal(found_payload(e1, id4), 0);
    /* ... or an entry moved to another namespace */
    assert_int_equal(found_payload(e1, id3), 1);
    x = raw(main_srv.port, "HSET enc:e:%" PRIu64 " ns other", id3);
    freeReplyObject(x);
    assert_int_equal(found_payload(e1, id3), 0);
    cs_redis_get_counters(e1, &k);
    assert_true(k.decrypt_failures == 4);
    assert_int_equal(k.up, 1);

    cs_redis_free(e1);
    cs_redis_free(e2);
    cs_redis_free(e0);
}

/* ------------------------------------------------------------------ */
/* ids                                                                  */

static void test_local_ids(void **state)
{
    cs_redis_t *r;
    uint64_t id, prev = 0, tag = 0;
    cs_redis_counters_t k;
    char err[256];
    int i, port = test_free_port(); /* nothing listens there */
    int64_t t0;

    (void)state;
    r = make(port, "loc:", "loc-node", NULL);
    for (i = 0; i < 10000; i++) {
        cs_redis_local_id(r, &id);
        assert_true(cs_redis_id_is_local(id));
        assert_true((id >> 63) == 0);
        if (i == 0) {
            tag = (id >> 48) & 0x3fff;
        }
        assert_true(((id >> 48) & 0x3fff) == tag);
        assert_true(id > prev);
        prev = id;
    }
    /* Redis unreachable: next_id still answers, at once, with a local id */
    t0 = now_ms();
    assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
    assert_true(now_ms() - t0 < 100 + SLACK_MS);
    assert_true(cs_redis_id_is_local(id));
    assert_true(id > prev);
    assert_non_null(strstr(err, "Redis"));
    assert_int_equal(cs_redis_up(r), 0);
    assert_int_equal(cs_redis_next_id(r, &id, err, sizeof(err)), CS_OK);
    assert_true(cs_redis_id_is_local(id));
    assert_non_null(strstr(err, "unavailable"));
    cs_redis_get_counters(r, &k);
    assert_true(k.local_ids == 10002);
    assert_true(k.connect_attempts == 1);
    assert_true(k.fast_failures == 1);
    cs_redis_free(r);
}

/* ------------------------------------------------------------------ */
/* outage                                                               */

typedef struct hammer {
    cs_redis_t *r;
    uint64_t id;
    int64_t max_ms;
    long calls, ok;
} hammer_t;

static void *hammer_main(void *arg)
{
    hammer_t *h = arg;
    int64_t t_end = now_ms() + 2000, t0, d;
    char *p, err[256];
    size_t len;
    int found;

    while ((t0 = now_ms()) < t_end) {
        if (cs_redis_get_payload(h->r, h->id, &p, &len, &found, err,
                                 sizeof(err))
            == CS_OK) {
            h->ok++;
            cs_free(p);
        }
        d = now_ms() - t0;
        if (d > h->max_ms) {
            h->max_ms = d;
        }
        h->calls++;
        test_sleep_ms(1);
    }
    return NULL;
}

static void test_outage_and_recovery(void **state)
{
    srv_t s;
    cs_redis_t *a, *b;
    cs_redis_counters_t k0, k1, kb;
    hammer_t h[4];
    pthread_t th[4];
    events_t evb;
    logcap_t logs;
    uint64_t id, id_before;
    char err[256];
    int64_t t0, d;
    int i, rv;
    cs_buf_t info;

    (void)state;
    memset(&s, 0, sizeof(s));
    srv_start(&s, test_free_port());
    logcap_start(&logs);
    a = make(s.port, "out:", "node-a", NULL);
    b = make(s.port, "out:", "node-b", NULL);
    ev_init(&evb);
    follow(b, &evb);
    test_sleep_ms(100);
    t0 = now_ms();
    id_before = put_simple(a, "ns");
    assert_true(ev_wait_put(&evb, id_before, t0, EVENT_MS) >= 0);

    /* 1. hung Redis: a call gives up after the command timeout (a's
     * connection is live, so this is a read timeout, never retried) */
    kill(s.pid, SIGSTOP);
    {
        char *p = NULL;
        size_t len;
        int found;

        t0 = now_ms();
        rv = cs_redis_get_payload(a, id_before, &p, &len, &found, err,
                                  sizeof(err));
        d = now_ms() - t0;
        assert_int_equal(rv, CS_ERR);
        assert_true(d >= 90 && d <= 100 + SLACK_MS);
        assert_non_null(strstr(err, "no answer within 100 ms"));
        assert_int_equal(cs_redis_up(a), 0);
        /* while down: refused at once */
        t0 = now_ms();
        rv = cs_redis_get_payload(a, id_before, &p, &len, &found, err,
                                  sizeof(err));
        assert_int_equal(rv, CS_ERR);
        assert_true(now_ms() - t0 < 20);
        assert_non_null(strstr(err, "unavailable"));
    }
    kill(s.pid, SIGCONT);
    /* back within the first back-off step */
    t0 = now_ms();
    while (cs_redis_up(a) == 0 || found_payload(a, id_before) != 1) {
        char *p = NULL;
        size_t len;
        int found;

        assert_true(now_ms() - t0 < 2000);
        test_sleep_ms(20);
        if (cs_redis_get_payload(a, id_before, &p, &len, &found, err,
                                 sizeof(err))
            == CS_OK) {
            cs_free(p);
        }
    }
    assert_int_equal(logcap_count(&logs, "ACD00800"), 1);
    assert_int_equal(logcap_count(&logs, "ACD00801"), 1);

    /* 2. Redis killed: fail fast, go down, do not hammer */
    srv_kill(&s);
    t0 = now_ms();
    assert_int_equal(cs_redis_next_id(a, &id, err, sizeof(err)), CS_OK);
    assert_true(cs_redis_id_is_local(id));
    assert_true(now_ms() - t0 <= 100 + SLACK_MS);
    assert_int_equal(cs_redis_up(a), 0);
    {
        char payload[64];
        cs_entry_rec_t e;

        rec_fill(&e, id, "ns", payload, sizeof(payload));
        t0 = now_ms();
        assert_int_equal(cs_redis_put(a, &e, err, sizeof(err)), CS_ERR);
        assert_true(now_ms() - t0 <= 100 + SLACK_MS);
    }
    cs_redis_get_counters(a, &k0);
    for (i = 0; i < 4; i++) {
        memset(&h[i], 0, sizeof(h[i]));
        h[i].r = a;
        h[i].id = id_before;
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]),
                         0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(h[i].calls > 100);
        assert_int_equal(h[i].ok, 0);
        assert_true(h[i].max_ms <= 100 + SLACK_MS);
    }
    cs_redis_get_counters(a, &k1);
    /* back-off 100, 200, 400, 800, 1600 ms (jittered down to half): at
     * most about 6 probes in 2 s, whatever the number of callers */
    print_message("outage: %" PRIu64 " connect attempts and %" PRIu64
                  " fast failures in 2 s of 4 busy callers; slowest call "
                  "%" PRId64 " ms\n",
                  k1.connect_attempts - k0.connect_attempts,
                  k1.fast_failures - k0.fast_failures,
                  h[0].max_ms > h[1].max_ms ? h[0].max_ms : h[1].max_ms);
    assert_true(k1.connect_attempts - k0.connect_attempts <= 8);
    assert_true(k1.connect_attempts - k0.connect_attempts >= 2);
    assert_true(k1.fast_failures - k0.fast_failures > 300);
    assert_int_equal(k1.up, 0);
    assert_int_equal(logcap_count(&logs, "ACD00800"), 2);
    cs_buf_init(&info);
    cs_redis_stats(a, &info);
    assert_non_null(strstr(info.data, "# Redis\r\nredis_up:0\r\n"));
    assert_non_null(strstr(info.data, "last_error:Redis "));
    assert_null(strstr(info.data, "last_error:\r\n"));
    cs_buf_free(&info);

    /* 3. Redis back on the same port (empty: no persistence) */
    srv_start(&s, s.port);
    t0 = now_ms();
    for (;;) {
        char payload[64];
        cs_entry_rec_t e;

        assert_true(now_ms() - t0 < CS_REDIS_BACKOFF_MAX_MS + 3000);
        assert_int_equal(cs_redis_next_id(a, &id, err, sizeof(err)), CS_OK);
        if (!cs_redis_id_is_local(id)) {
            rec_fill(&e, id, "ns", payload, sizeof(payload));
            if (cs_redis_put(a, &e, err, sizeof(err)) == CS_OK) {
                break;
            }
        }
        test_sleep_ms(50);
    }
    print_message("outage: callers back %" PRId64 " ms after restart\n",
                  now_ms() - t0);
    assert_int_equal(cs_redis_up(a), 1);
    assert_int_equal(found_payload(a, id), 1);
    assert_int_equal(logcap_count(&logs, "ACD00801"), 2);
    cs_redis_get_counters(a, &k1);
    assert_true(k1.reconnects == 2);

    /* the follower reconnects, sees the restart (resync) and resumes */
    t0 = now_ms();
    for (;;) {
        cs_redis_get_counters(b, &kb);
        if (kb.follow_connected && kb.follow_resyncs >= 1) {
            break;
        }
        assert_true(now_ms() - t0 < CS_REDIS_BACKOFF_MAX_MS + 3000);
        test_sleep_ms(20);
    }
    print_message("outage: follower back %" PRId64 " ms later\n",
                  now_ms() - t0);
    assert_true(kb.follow_reconnects >= 2);
    t0 = now_ms();
    id = put_simple(a, "ns");
    d = ev_wait_put(&evb, id, t0, EVENT_MS);
    assert_true(d >= 0 && d < EVENT_MS);
    pthread_mutex_lock(&evb.mu);
    assert_int_equal(evb.resyncs, 1);
    pthread_mutex_unlock(&evb.mu);

    cs_redis_free(a);
    cs_redis_free(b);
    /* the follower told of its outage once and of its return once */
    assert_int_equal(logcap_count(&logs, "ACD00803"), 1);
    assert_int_equal(logcap_count(&logs, "ACD00804"), 1);
    assert_int_equal(logcap_count(&logs, "ACD00805"), 1);
    /* never a secret or a payload */
    assert_int_equal(logcap_count(&logs, "payload-"), 0);
    logcap_stop(&logs);
    ev_destroy(&evb);
    srv_cleanup(&s);
}

static void test_auth_db_unix(void **state)
{
    cs_redis_conf_t conf;
    cs_redis_counters_t k;
    cs_redis_t *r = NULL;
    redisContext *c;
    redisReply *x;
    char err[256];
    uint64_t id;
    srv_t s;
    int i;

    (void)state;
    memset(&s, 0, sizeof(s));
    snprintf(s.dir, sizeof(s.dir), "/tmp/cs-redis-test-XXXXXX");
    assert_non_null(mkdtemp(s.dir));
    snprintf(s.sock, sizeof(s.sock), "%s/redis.sock", s.dir);
    s.password = "s3cret pass";
    srv_start(&s, test_free_port());

    /* over the Unix socket, with AUTH and SELECT 3 */
    memset(&conf, 0, sizeof(conf));
    conf.unix_path = s.sock;
    conf.password = s.password;
    conf.db = 3;
    conf.prefix = "au:";
    conf.node_name = "au-node";
    assert_int_equal(cs_redis_create(&r, &conf, err, sizeof(err)), CS_OK);
    id = put_simple(r, "ns");
    assert_int_equal(found_payload(r, id), 1);
    cs_redis_free(r);
    c = raw_connect(s.port);
    x = redisCommand(c, "AUTH %s", s.password);
    freeReplyObject(x);
    x = redisCommand(c, "SELECT 3");
    freeReplyObject(x);
    x = redisCommand(c, "EXISTS au:e:%" PRIu64, id);
    assert_int_equal(x->integer, 1);
    freeReplyObject(x);
    redisFree(c);

    /* a wrong password: an error naming the cause, the tier down, and
     * no retry storm */
    conf.unix_path = NULL;
    conf.host = "127.0.0.1";
    conf.port = s.port;
    conf.password = "wrong";
    assert_int_equal(cs_redis_create(&r, &conf, err, sizeof(err)), CS_OK);
    {
        char *p;
        size_t len;
        int found;

        assert_int_equal(cs_redis_get_payload(r, id, &p, &len, &found, err,
                                              sizeof(err)),
                         CS_ERR);
        assert_non_null(strstr(err, "WRONGPASS"));
        assert_null(strstr(err, "wrong")); /* the password never shows */
        for (i = 0; i < 200; i++) {
            cs_redis_get_payload(r, id, &p, &len, &found, err, sizeof(err));
            test_sleep_ms(1);
        }
    }
    cs_redis_get_counters(r, &k);
    assert_int_equal(k.up, 0);
    assert_true(k.connect_attempts <= 4);
    cs_redis_free(r);
    srv_cleanup(&s);
}

static void test_stats(void **state)
{
    cs_redis_t *r = make(main_srv.port, "st:", "st-node", NULL);
    cs_buf_t info;

    (void)state;
    put_simple(r, "ns");
    cs_buf_init(&info);
    cs_redis_stats(r, &info);
    assert_non_null(strstr(info.data, "# Redis\r\nredis_up:1\r\n"));
    assert_non_null(strstr(info.data, "\r\nreconnects:0\r\n"));
    assert_non_null(strstr(info.data, "\r\nerrors:0\r\n"));
    assert_non_null(strstr(info.data, "\r\ndecrypt_failures:0\r\n"));
    assert_non_null(strstr(info.data, "\r\nlast_error:\r\n"));
    assert_non_null(strstr(info.data, "\r\nfollow_pos:0-0\r\n"));
    cs_buf_free(&info);
    cs_redis_free(r);
}

/* ------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    memset(&main_srv, 0, sizeof(main_srv));
    srv_start(&main_srv, test_free_port());
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    srv_cleanup(&main_srv);
    return 0;
}

/* Every test must give back all it took through cs_malloc. */
static size_t mem_before;

static int mem_setup(void **state)
{
    (void)state;
    mem_before = cs_mem_used();
    return 0;
}

static int mem_teardown(void **state)
{
    (void)state;
    assert_int_equal(cs_mem_used(), mem_before);
    return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, mem_setup, mem_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_create_validation),
        T(test_put_get_roundtrip),
        T(test_ttl_expiry),
        T(test_del_and_del_ns),
        T(test_scan_finds_all),
        T(test_follow_between_replicas),
        T(test_follow_trimmed_stream_resyncs),
        T(test_encryption),
        T(test_local_ids),
        T(test_outage_and_recovery),
        T(test_auth_db_unix),
        T(test_stats),
    };

    /* hiredis 0.14 writes with write(2): a dead peer must not kill us */
    signal(SIGPIPE, SIG_IGN);
    if (access("/usr/bin/redis-server", X_OK) != 0) {
        fprintf(stderr, "redis-server not installed: skipping\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
