/* Unit tests for governance admission and settlement (ark_govern.c) on
 * the node-local table: without Redis, and with a Redis address that
 * refuses connections (the fallback path: limit / nodes, buffered spend,
 * budgets failing open or closed). The Redis path itself is tested
 * against a real redis-server by tests/integration/test_65_governance.py;
 * wait-replicas here, against a real redis-server without, then with, a
 * replica (skipped when redis-server is not installed).
 */
#include "ark_testutil.h"
#include "net_testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <apr_strings.h>
#include <hiredis/hiredis.h>

#include "ark_govern.h"
#include "ark_limit.h"

typedef struct fixture {
    apr_pool_t *p;
    void *shm;
    ark_govern_conf_t conf;
    ark_govern_t *g;
    pid_t servers[2];                  /* redis-servers to kill */
    char dir[32];                      /* their directory (a replica
                                        * writes the RDB it receives) */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_int_equal(ark_test_pool_setup((void **)&f->p), 0);
    ark_govern_conf_init(&f->conf);
    f->conf.slots = 256;
    f->conf.redis.servers = apr_array_make(f->p, 1, sizeof(const char *));
    f->shm = calloc(1, ark_govern_shm_size(f->conf.slots));
    ark_govern_shm_init(f->shm, f->conf.slots);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    void *p = f->p;
    int i;

    for (i = 0; i < 2; i++) {
        if (f->servers[i] > 0) {
            kill(f->servers[i], SIGKILL);
            waitpid(f->servers[i], NULL, 0);
        }
    }
    if (f->dir[0]) {
        char cmd[64];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
    }
    free(f->shm);
    ark_test_pool_teardown(&p);
    free(f);
    return 0;
}

static ark_govern_t *client(fixture_t *f)
{
    assert_int_equal(ark_govern_create(&f->g, &f->conf, f->shm, f->p),
                     APR_SUCCESS);
    return f->g;
}

/* A Redis address nothing listens on: every call fails at once. */
static void unreachable_redis(fixture_t *f)
{
    APR_ARRAY_PUSH(f->conf.redis.servers, const char *) = "127.0.0.1:1";
    f->conf.redis.connect_timeout = apr_time_from_msec(50);
}

static void subject(ark_gov_subject_t *s, const char *key)
{
    memset(s, 0, sizeof(*s));
    s->key = key;
    s->tenant = key;
}

static void used(ark_gov_usage_t *u, long prompt, long completion,
                 apr_int64_t spend, const char *provider)
{
    memset(u, 0, sizeof(*u));
    u->prompt_tokens = prompt;
    u->completion_tokens = completion;
    u->spend_nano = spend;
    u->provider = provider;
}

static void test_no_limits_no_call(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = client(f);
    ark_gov_subject_t s;
    ark_gov_ticket_t t;

    subject(&s, "free");
    assert_false(ark_govern_subject_limited(&s));
    assert_int_equal(ark_govern_admit(g, &s, 100, &t, f->p), ARK_GOV_OK);
    assert_true(t.admitted);
    assert_true(t.req_limit == 0 && t.tok_limit == 0);
}

static void test_rpm(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = client(f);
    ark_gov_subject_t s;
    ark_gov_ticket_t t;
    ark_gov_stats_t st;
    int i;

    subject(&s, "alice");
    s.key_limits.rpm = 3;
    for (i = 0; i < 3; i++) {
        assert_int_equal(ark_govern_admit(g, &s, 10, &t, f->p), ARK_GOV_OK);
        assert_true(t.req_limit == 3);
        assert_true(t.req_remaining == 2 - i);
    }
    assert_int_equal(ark_govern_admit(g, &s, 10, &t, f->p),
                     ARK_GOV_REQUESTS);
    assert_int_equal(t.scope, ARK_SCOPE_KEY);
    assert_true(t.retry_after > 0 && t.retry_after <= apr_time_from_sec(20));
    assert_false(t.admitted);
    /* another key is not affected */
    subject(&s, "bob");
    s.key_limits.rpm = 3;
    assert_int_equal(ark_govern_admit(g, &s, 10, &t, f->p), ARK_GOV_OK);
    ark_govern_stats(g, &st);
    assert_true(st.refused[ARK_GOV_REQUESTS] == 1);
    assert_false(st.redis_configured);
}

static void test_tpm_reservation_settled(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = client(f);
    ark_gov_subject_t s;
    ark_gov_ticket_t t1, t2;
    ark_gov_usage_t u;

    subject(&s, "alice");
    s.key_limits.tpm = 1000;
    assert_int_equal(ark_govern_admit(g, &s, 600, &t1, f->p), ARK_GOV_OK);
    assert_true(t1.reserved == 600);
    assert_true(t1.tok_remaining == 400);
    assert_int_equal(ark_govern_admit(g, &s, 600, &t2, f->p),
                     ARK_GOV_TOKENS);
    /* the first used only 100: its settlement frees 500 */
    used(&u, 60, 40, 0, NULL);
    ark_govern_settle(g, &t1, &s, &u, f->p);
    assert_int_equal(ark_govern_admit(g, &s, 600, &t2, f->p), ARK_GOV_OK);
    assert_true(t2.tok_remaining == 300);
    /* settling twice changes nothing */
    ark_govern_settle(g, &t1, &s, &u, f->p);
    assert_int_equal(ark_govern_admit(g, &s, 301, &t1, f->p),
                     ARK_GOV_TOKENS);
    /* a reservation above the whole limit never fits */
    assert_int_equal(ark_govern_admit(g, &s, 1001, &t1, f->p),
                     ARK_GOV_TOO_LARGE);
    assert_true(t1.retry_after == -1);
}

static void test_refusal_takes_nothing(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = client(f);
    ark_gov_subject_t s;
    ark_gov_ticket_t t;

    subject(&s, "alice");
    s.key_limits.rpm = 100;
    s.key_limits.tpm = 1000;
    assert_int_equal(ark_govern_admit(g, &s, 900, &t, f->p), ARK_GOV_OK);
    /* refused on tokens: the request it would have counted is given back */
    assert_int_equal(ark_govern_admit(g, &s, 900, &t, f->p), ARK_GOV_TOKENS);
    assert_int_equal(ark_govern_admit(g, &s, 50, &t, f->p), ARK_GOV_OK);
    assert_true(t.req_remaining == 98);
}

static void test_concurrency(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = client(f);
    ark_gov_subject_t s;
    ark_gov_ticket_t a, b, c;
    ark_gov_usage_t u;

    subject(&s, "alice");
    s.key_limits.concurrency = 2;
    assert_int_equal(ark_govern_admit(g, &s, 1, &a, f->p), ARK_GOV_OK);
    assert_int_equal(ark_govern_admit(g, &s, 1, &b, f->p), ARK_GOV_OK);
    assert_int_equal(ark_govern_admit(g, &s, 1, &c, f->p),
                     ARK_GOV_CONCURRENCY);
    used(&u, 1, 1, 0, NULL);
    ark_govern_settle(g, &a, &s, &u, f->p);
    assert_int_equal(ark_govern_admit(g, &s, 1, &c, f->p), ARK_GOV_OK);
    assert_int_equal(ark_govern_admit(g, &s, 1, &a, f->p),
                     ARK_GOV_CONCURRENCY);
}

static void test_tenant_shared(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = client(f);
    ark_gov_subject_t s1, s2;
    ark_gov_ticket_t t;

    subject(&s1, "alice");
    s1.tenant = "acme";
    s1.tenant_limits.rpm = 2;
    s2 = s1;
    s2.key = "bob";
    assert_int_equal(ark_govern_admit(g, &s1, 1, &t, f->p), ARK_GOV_OK);
    assert_int_equal(ark_govern_admit(g, &s2, 1, &t, f->p), ARK_GOV_OK);
    assert_int_equal(ark_govern_admit(g, &s1, 1, &t, f->p),
                     ARK_GOV_REQUESTS);
    assert_int_equal(t.scope, ARK_SCOPE_TENANT);
}

static void test_budget_local(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = client(f);
    ark_gov_subject_t s;
    ark_gov_ticket_t t;
    ark_gov_usage_t u;

    subject(&s, "alice");
    s.key_limits.budget_day = 1000;
    assert_int_equal(ark_govern_admit(g, &s, 1, &t, f->p), ARK_GOV_OK);
    used(&u, 10, 10, 600, "openai");
    ark_govern_settle(g, &t, &s, &u, f->p);
    assert_int_equal(ark_govern_admit(g, &s, 1, &t, f->p), ARK_GOV_OK);
    assert_true(t.budget_ratio > 0.59 && t.budget_ratio < 0.61);
    ark_govern_settle(g, &t, &s, &u, f->p);
    /* 1200 spent of 1000: refused until tomorrow */
    assert_int_equal(ark_govern_admit(g, &s, 1, &t, f->p), ARK_GOV_BUDGET);
    assert_int_equal(t.period, ARK_PERIOD_DAY);
    assert_true(t.retry_after > 0
                && t.retry_after <= apr_time_from_sec(86400));
}

static void test_provider_limit(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = client(f);
    ark_gov_subject_t s;
    ark_gov_ticket_t t;
    ark_gov_usage_t u;
    apr_array_header_t *pl = apr_array_make(f->p, 1,
                                            sizeof(ark_provider_limit_t));
    ark_provider_limit_t *l = apr_array_push(pl);

    memset(l, 0, sizeof(*l));
    l->provider = "official";
    l->tpm = 100;
    subject(&s, "alice");
    s.provider_limits = pl;
    assert_true(ark_govern_subject_limited(&s));
    assert_int_equal(ark_govern_admit(g, &s, 10, &t, f->p), ARK_GOV_OK);
    assert_int_equal(t.exhausted->nelts, 0);
    /* answered by another provider: official's bucket untouched */
    used(&u, 100, 100, 0, "cheap");
    ark_govern_settle(g, &t, &s, &u, f->p);
    assert_int_equal(ark_govern_admit(g, &s, 10, &t, f->p), ARK_GOV_OK);
    assert_int_equal(t.exhausted->nelts, 0);
    used(&u, 100, 50, 0, "official");
    ark_govern_settle(g, &t, &s, &u, f->p);
    /* official used up: still admitted, but that provider is excluded */
    assert_int_equal(ark_govern_admit(g, &s, 10, &t, f->p), ARK_GOV_OK);
    assert_int_equal(t.exhausted->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(t.exhausted, 0, const char *),
                        "official");
}

static void test_redis_down_fallback(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g;
    ark_gov_subject_t s;
    ark_gov_ticket_t t;
    ark_gov_usage_t u;
    ark_gov_stats_t st;
    int i, admitted = 0;

    unreachable_redis(f);
    f->conf.nodes = 2;
    g = client(f);
    subject(&s, "alice");
    s.key_limits.rpm = 10;
    s.key_limits.budget_day = 5;
    for (i = 0; i < 8; i++) {
        if (ark_govern_admit(g, &s, 1, &t, f->p) == ARK_GOV_OK) {
            admitted++;
            assert_true(t.local);
            used(&u, 3, 4, 70, "openai");
            ark_govern_settle(g, &t, &s, &u, f->p);
        }
    }
    /* 10 per minute over 2 nodes: this node admits 5; budgets fail open */
    assert_int_equal(admitted, 5);
    ark_govern_stats(g, &st);
    assert_true(st.redis_configured);
    assert_false(st.redis_up);
    assert_true(st.fallbacks == 8);
    /* every settled request's spend and tokens wait for Redis */
    assert_true(st.buffered_nano == 5 * 70);
    assert_true(st.buffered_tokens == 5 * 7);
    assert_true(ark_govern_should_log(g));
    assert_false(ark_govern_should_log(g));
    assert_non_null(strstr(ark_govern_last_error(g), "127.0.0.1:1"));
}

static void test_redis_down_fail_closed(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g;
    ark_gov_subject_t s;
    ark_gov_ticket_t t;

    unreachable_redis(f);
    f->conf.budget_fail_closed = 1;
    g = client(f);
    subject(&s, "alice");
    s.key_limits.budget_month = 5;
    assert_int_equal(ark_govern_admit(g, &s, 1, &t, f->p),
                     ARK_GOV_UNAVAILABLE);
    /* a key without budgets is still served */
    subject(&s, "bob");
    s.key_limits.rpm = 5;
    assert_int_equal(ark_govern_admit(g, &s, 1, &t, f->p), ARK_GOV_OK);
}

static void test_table_full(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = client(f);
    ark_gov_subject_t s;
    ark_gov_ticket_t t;
    ark_gov_stats_t st;
    char name[32];
    int i;

    /* 256 slots; 300 keys with an rpm each: the table fills, admission
     * then fails open and the overflow is counted */
    for (i = 0; i < 300; i++) {
        apr_snprintf(name, sizeof(name), "key%d", i);
        subject(&s, apr_pstrdup(f->p, name));
        s.key_limits.rpm = 1;
        assert_int_equal(ark_govern_admit(g, &s, 1, &t, f->p), ARK_GOV_OK);
    }
    ark_govern_stats(g, &st);
    assert_true(st.table_full >= 300 - 256);
}

/* ---- wait-replicas against a real redis-server ----------------------- */

/* Starts a redis-server for f (skips the test without one) and points
 * the governance configuration at it; returns its port. */
static int with_redis(fixture_t *f)
{
    int port;

    if (access("/usr/bin/redis-server", X_OK) != 0) {
        skip();
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/ark-govern-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    port = test_free_port();
    f->servers[0] = test_redis_start(f->dir, port, 0);
    APR_ARRAY_PUSH(f->conf.redis.servers, const char *) =
        apr_psprintf(f->p, "127.0.0.1:%d", port);
    return port;
}

/* 1 when a replica of the server on port confirms writes (WAIT 1). */
static int replica_online(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = c && !c->err ? redisCommand(c, "WAIT 1 100") : NULL;
    int ok = r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1;

    if (r) {
        freeReplyObject(r);
    }
    if (c) {
        redisFree(c);
    }
    return ok;
}

/* Settlements no replica confirms are applied by the master AND kept for
 * replay; once a replica confirms, the replays run under their
 * done-keys: each counted exactly once. */
static void test_wait_replicas_replay(void **state)
{
    fixture_t *f = *state;
    ark_gov_subject_t s;
    ark_gov_ticket_t t;
    ark_gov_usage_t u;
    ark_gov_stats_t st;
    ark_govern_t *g;
    const char *key;
    int port, rport, i;

    port = with_redis(f);
    f->conf.redis.wait_replicas = 1;
    /* WAIT gets half: 200 ms, room for a replica on a busy machine */
    f->conf.redis.call_timeout = apr_time_from_msec(400);
    g = client(f);
    subject(&s, "w");
    key = ark_rkey_usage(f->p, f->conf.prefix, ARK_SCOPE_KEY, "w",
                         ARK_PERIOD_DAY, apr_time_now());
    for (i = 0; i < 3; i++) {
        memset(&t, 0, sizeof(t));
        used(&u, 10, 20, 1000, NULL);
        ark_govern_settle(g, &t, &s, &u, f->p);
    }
    ark_govern_stats(g, &st);
    assert_int_equal(st.wait_short, 3);
    assert_int_equal(st.pending, 3);       /* kept for replay */
    assert_int_equal(st.uncertain, 0);
    assert_int_equal(test_redis_hget(port, key, "spend_nano"), 3000);

    /* a replica joins: WAIT 1 succeeds, the replays are no-ops */
    rport = test_free_port();
    f->servers[1] = test_redis_start(f->dir, rport, port);
    for (i = 0; i < 600 && !replica_online(port); i++) {
        usleep(50000);                 /* up to 30 s on a busy machine */
    }
    assert_int_equal(test_redis_hget(rport, key, "spend_nano"), 3000);
    memset(&t, 0, sizeof(t));
    used(&u, 1, 2, 500, NULL);
    ark_govern_settle(g, &t, &s, &u, f->p);
    ark_govern_stats(g, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.uncertain, 0);
    assert_int_equal(test_redis_hget(port, key, "spend_nano"), 3500);
    assert_int_equal(test_redis_hget(port, key, "requests"), 4);
    assert_int_equal(test_redis_hget(port, key, "prompt_tokens"), 31);
    assert_int_equal(st.buffered_nano, 0);
}

/* How many keys match pattern on the server on port. */
static int count_keys(int port, const char *pattern)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r;
    int n = -1;

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    r = redisCommand(c, "KEYS %s", pattern);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ARRAY) {
        n = (int)r->elements;
    }
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* A settlement's done-key carries the request's trace id, so whether a
 * request was billed can be looked up by it; a trace id reused by the
 * client for a second request still counts that request once more. */
static void test_done_key_trace(void **state)
{
    static const char trace[] = "4bf92f3577b34da6a3ce929d0e0e4736";
    fixture_t *f = *state;
    ark_gov_subject_t s;
    ark_gov_ticket_t t;
    ark_gov_usage_t u;
    ark_govern_t *g;
    const char *key;
    int port, i;

    port = with_redis(f);
    f->conf.done_ttl = apr_time_from_sec(3600);
    g = client(f);
    subject(&s, "d");
    key = ark_rkey_usage(f->p, f->conf.prefix, ARK_SCOPE_KEY, "d",
                         ARK_PERIOD_DAY, apr_time_now());
    for (i = 0; i < 2; i++) {
        memset(&t, 0, sizeof(t));
        used(&u, 10, 20, 1000, NULL);
        u.trace_id = trace;
        ark_govern_settle(g, &t, &s, &u, f->p);
    }
    /* not a trace id: the key is named without it */
    memset(&t, 0, sizeof(t));
    used(&u, 1, 2, 100, NULL);
    u.trace_id = "../../etc/passwd";
    ark_govern_settle(g, &t, &s, &u, f->p);
    memset(&t, 0, sizeof(t));
    used(&u, 1, 2, 100, NULL);
    ark_govern_settle(g, &t, &s, &u, f->p);

    assert_int_equal(count_keys(port, "ark:done:4bf92f3577b34da6a3ce929d0e0e4736:*"), 2);
    assert_int_equal(count_keys(port, "ark:done:*"), 4);
    assert_int_equal(count_keys(port, "*passwd*"), 0);
    {   /* ArkGovernRedis done-ttl= */
        redisContext *c = redisConnect("127.0.0.1", port);
        redisReply *r = redisCommand(c, "KEYS ark:done:4bf9*");
        redisReply *ttl;

        assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        ttl = redisCommand(c, "TTL %s", r->element[0]->str);
        assert_true(ttl && ttl->type == REDIS_REPLY_INTEGER);
        assert_true(ttl->integer > 3500 && ttl->integer <= 3600);
        freeReplyObject(ttl);
        freeReplyObject(r);
        redisFree(c);
    }
    assert_int_equal(test_redis_hget(port, key, "requests"), 4);
    assert_int_equal(test_redis_hget(port, key, "spend_nano"), 2200);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_no_limits_no_call),
        T(test_rpm),
        T(test_tpm_reservation_settled),
        T(test_refusal_takes_nothing),
        T(test_concurrency),
        T(test_tenant_shared),
        T(test_budget_local),
        T(test_provider_limit),
        T(test_redis_down_fallback),
        T(test_redis_down_fail_closed),
        T(test_table_full),
        T(test_wait_replicas_replay),
        T(test_done_key_trace),
    };
#undef T

    return ark_test_run_group("govern", tests,
                              sizeof(tests) / sizeof(tests[0]));
}
