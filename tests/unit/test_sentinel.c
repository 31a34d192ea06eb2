/* Unit tests for the Redis Sentinel resolver (common/sentinel.c), shared
 * by mod_ark's governance client and ark-cached's Redis tier.
 *
 * Replies are built the way they arrive: RESP bytes through hiredis's
 * own reader (also fed one byte at a time), so the parsers see exactly
 * the redisReply shapes hiredis produces. The resolution state machine is
 * driven with an explicit clock through the failover of the worked
 * example in sentinel.h. The I/O part is checked against closed ports
 * (bounded time, an error naming the master); the integration test
 * test_72_sentinel.py runs it against real Sentinels.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "../../common/sentinel.h"

/* ---- helpers ---------------------------------------------------- */

/* The reply hiredis makes of resp (whole, then byte by byte: the same
 * type must come out); the caller frees it. */
static redisReply *reply_of(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL, *r2 = NULL;
    size_t i, n = strlen(resp);

    assert_int_equal(redisReaderFeed(rd, resp, n), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);

    rd = redisReaderCreate();
    for (i = 0; i < n; i++) {
        assert_int_equal(redisReaderFeed(rd, resp + i, 1), REDIS_OK);
        assert_int_equal(redisReaderGetReply(rd, &r2), REDIS_OK);
        if (i + 1 < n) {
            assert_null(r2);
        }
    }
    assert_non_null(r2);
    assert_int_equal(((redisReply *)r2)->type, ((redisReply *)r)->type);
    freeReplyObject(r2);
    redisReaderFree(rd);
    return r;
}

static int parse_master(const char *resp, sentinel_addr_t *a)
{
    redisReply *r = reply_of(resp);
    int rv = sentinel_parse_master(r, a);

    freeReplyObject(r);
    return rv;
}

static sentinel_role_t parse_role(const char *resp)
{
    redisReply *r = reply_of(resp);
    sentinel_role_t role = sentinel_parse_role(r);

    freeReplyObject(r);
    return role;
}

/* A loopback port nobody listens on (bound, then closed). */
static int closed_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

#define MS 1000                        /* microseconds */

/* ---- addresses and configuration ---------------------------------- */

static void test_addr_parse(void **state)
{
    sentinel_addr_t a;
    static const char *const bad[] = {
        "", "host", "host:", ":26379", "host:0", "host:65536",
        "host:26379x", "host:-1", "host:123456", "ho st:1", "a,b:1", "[]:1"
    };
    size_t i;

    (void)state;
    assert_int_equal(sentinel_addr_parse(&a, "127.0.0.1:26379", 15), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 26379);
    assert_int_equal(sentinel_addr_parse(&a, "[::1]:26380", 11), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 26380);
    assert_int_equal(sentinel_addr_parse(&a, "::1:1", 5), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 1);
    /* only len bytes count */
    assert_int_equal(sentinel_addr_parse(&a, "redis-a:6379,junk", 12), 0);
    assert_string_equal(a.host, "redis-a");
    assert_int_equal(a.port, 6379);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sentinel_addr_parse(&a, bad[i], strlen(bad[i])),
                         -1);
    }
}

static void test_state_init(void **state)
{
    sentinel_state_t s;
    char err[256];
    const char *three[] = {"10.0.0.1:26379", "10.0.0.2:26379",
                           "10.0.0.3:26380"};

    (void)state;
    assert_int_equal(sentinel_state_init(&s, "mymaster", three, 3, err,
                                         sizeof(err)), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.sentinels[2].host, "10.0.0.3");
    assert_int_equal(s.sentinels[2].port, 26380);
    assert_int_equal(s.known, 0);

    assert_int_equal(sentinel_state_init_list(&s, "m",
        " 127.0.0.1:1,127.0.0.1:2 ,\t127.0.0.1:3 ", err, sizeof(err)), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.sentinels[0].port, 1);
    assert_int_equal(s.sentinels[2].port, 3);

    assert_int_equal(sentinel_state_init_list(&s, "m", "", err,
                                              sizeof(err)), -1);
    assert_non_null(strstr(err, "1 to 8"));
    assert_int_equal(sentinel_state_init_list(&s, "m",
        "h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "1 to 8"));
    assert_int_equal(sentinel_state_init_list(&s, "m", "h:1,nope", err,
                                              sizeof(err)), -1);
    assert_non_null(strstr(err, "'nope'"));
    assert_int_equal(sentinel_state_init(&s, "", three, 3, err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "master name"));
    assert_int_equal(sentinel_state_init(&s, "my master", three, 3, err,
                                         sizeof(err)), -1);
}

/* ---- reply parsers -------------------------------------------------- */

static void test_parse_master(void **state)
{
    sentinel_addr_t a;

    (void)state;
    assert_int_equal(parse_master("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n",
                                  &a), 1);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 6380);
    /* IPv6: the host stays bare */
    assert_int_equal(parse_master("*2\r\n$3\r\n::1\r\n$4\r\n6381\r\n", &a),
                     1);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 6381);
    /* unknown master: nil (RESP2 null array, or null bulk) */
    assert_int_equal(parse_master("*-1\r\n", &a), 0);
    assert_int_equal(parse_master("$-1\r\n", &a), 0);
    /* anything else is malformed */
    assert_int_equal(parse_master("-ERR Unknown sentinel subcommand\r\n",
                                  &a), -1);
    assert_int_equal(parse_master("*1\r\n$9\r\n127.0.0.1\r\n", &a), -1);
    assert_int_equal(parse_master("*3\r\n$1\r\nh\r\n$1\r\n1\r\n$1\r\n2\r\n",
                                  &a), -1);
    assert_int_equal(parse_master("*2\r\n$1\r\nh\r\n:6379\r\n", &a), -1);
    assert_int_equal(parse_master("*2\r\n$1\r\nh\r\n$3\r\nabc\r\n", &a), -1);
    assert_int_equal(parse_master("*2\r\n$1\r\nh\r\n$1\r\n0\r\n", &a), -1);
    assert_int_equal(parse_master("*2\r\n$1\r\nh\r\n$5\r\n70000\r\n", &a),
                     -1);
    assert_int_equal(parse_master("*2\r\n$0\r\n\r\n$4\r\n6379\r\n", &a), -1);
    assert_int_equal(parse_master("+OK\r\n", &a), -1);
    assert_int_equal(sentinel_parse_master(NULL, &a), -1);
}

static void test_parse_role(void **state)
{
    (void)state;
    assert_int_equal(parse_role("*3\r\n$6\r\nmaster\r\n:3129659\r\n"
                                "*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n"
                                "$7\r\n3129242\r\n"),
                     SENTINEL_ROLE_MASTER);
    assert_int_equal(parse_role("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n"
                                ":9000\r\n$9\r\nconnected\r\n:3167038\r\n"),
                     SENTINEL_ROLE_REPLICA);
    assert_int_equal(parse_role("*2\r\n$8\r\nsentinel\r\n*1\r\n"
                                "$8\r\nmymaster\r\n"),
                     SENTINEL_ROLE_SENTINEL);
    assert_int_equal(parse_role("-NOAUTH Authentication required.\r\n"),
                     SENTINEL_ROLE_ERROR);
    assert_int_equal(parse_role("*0\r\n"), SENTINEL_ROLE_ERROR);
    assert_int_equal(parse_role("*1\r\n$7\r\nmasters\r\n"),
                     SENTINEL_ROLE_ERROR);
    assert_int_equal(parse_role("*1\r\n:1\r\n"), SENTINEL_ROLE_ERROR);
    assert_int_equal(parse_role("$6\r\nmaster\r\n"), SENTINEL_ROLE_ERROR);
    assert_int_equal(sentinel_parse_role(NULL), SENTINEL_ROLE_ERROR);
}

/* ---- the state machine ---------------------------------------------- */

static sentinel_addr_t addr(const char *host, int port)
{
    sentinel_addr_t a;

    memset(&a, 0, sizeof(a));
    snprintf(a.host, sizeof(a.host), "%s", host);
    a.port = port;
    return a;
}

static void init3(sentinel_state_t *s)
{
    char err[128];

    assert_int_equal(sentinel_state_init_list(s, "mymaster",
        "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", err, sizeof(err)), 0);
}

static void test_first_resolution(void **state)
{
    sentinel_state_t s;
    sentinel_addr_t m, a = addr("10.0.0.5", 6379);
    uint64_t g, g2;
    int first;

    (void)state;
    init3(&s);
    assert_int_equal(sentinel_begin(&s, 0, &m, &g, &first),
                     SENTINEL_RESOLVE);
    assert_int_equal(first, 0);
    /* a second caller meanwhile does not ask too: it fails fast */
    assert_int_equal(sentinel_begin(&s, 1 * MS, &m, &g2, &first),
                     SENTINEL_WAIT);
    /* the third Sentinel answered (the first two were down) */
    assert_int_equal(sentinel_resolved(&s, 2 * MS, &a, 2, &g), 0);
    assert_int_equal(s.resolutions, 1);
    assert_int_equal(s.changes, 0);        /* no master before: no change */
    assert_int_equal(sentinel_begin(&s, 3 * MS, &m, &g2, &first),
                     SENTINEL_USE);
    assert_string_equal(m.host, "10.0.0.5");
    assert_int_equal(m.port, 6379);
    assert_true(g2 == g);
    assert_int_equal(first, 2);            /* ask it first next time */
}

/* The worked example of sentinel.h: the master dies, the Sentinels keep
 * naming it for a while, then name the promoted replica. */
static void test_failover_backoff(void **state)
{
    static const int steps_ms[] = {0, 50, 100, 200, 400, 800, 1000, 1000};
    sentinel_state_t s;
    sentinel_addr_t m, a = addr("127.0.0.1", 7000),
                       b = addr("127.0.0.1", 7001);
    int64_t now = 0;
    uint64_t g;
    int first;
    size_t i;

    (void)state;
    init3(&s);
    assert_int_equal(sentinel_begin(&s, now, &m, &g, &first),
                     SENTINEL_RESOLVE);
    sentinel_resolved(&s, now, &a, 0, &g);
    sentinel_confirmed(&s, g);                 /* ROLE said master */

    for (i = 0; i < sizeof(steps_ms) / sizeof(steps_ms[0]); i++) {
        /* the connection to a fails: forget it */
        assert_int_equal(sentinel_forget(&s, now, g), 1);
        assert_int_equal(s.known, 0);
        if (steps_ms[i] > 0) {
            assert_int_equal(sentinel_begin(&s, now + steps_ms[i] * MS - 1,
                                            &m, &g, &first),
                             SENTINEL_WAIT);
        }
        now += steps_ms[i] * MS;
        assert_int_equal(sentinel_begin(&s, now, &m, &g, &first),
                         SENTINEL_RESOLVE);
        /* the Sentinels still name a: no change */
        assert_int_equal(sentinel_resolved(&s, now, &a, 1, &g), 0);
    }
    assert_int_equal(s.forgets, 8);
    /* now they name b, whose ROLE says master: a change, back-off reset */
    assert_int_equal(sentinel_forget(&s, now, g), 1);
    now += 1000 * MS;
    assert_int_equal(sentinel_begin(&s, now, &m, &g, &first),
                     SENTINEL_RESOLVE);
    assert_int_equal(sentinel_resolved(&s, now, &b, 1, &g), 1);
    assert_int_equal(s.changes, 1);
    sentinel_confirmed(&s, g);
    assert_int_equal(sentinel_begin(&s, now, &m, &g, &first), SENTINEL_USE);
    assert_int_equal(m.port, 7001);
    /* after a confirmed master, the next loss is resolved at once */
    assert_int_equal(sentinel_forget(&s, now, g), 1);
    assert_int_equal(sentinel_begin(&s, now, &m, &g, &first),
                     SENTINEL_RESOLVE);
}

static void test_no_sentinel_answers(void **state)
{
    sentinel_state_t s;
    sentinel_addr_t m;
    uint64_t g;
    int first;

    (void)state;
    init3(&s);
    assert_int_equal(sentinel_begin(&s, 0, &m, &g, &first),
                     SENTINEL_RESOLVE);
    assert_int_equal(sentinel_resolved(&s, 0, NULL, -1, &g), 0);
    assert_int_equal(s.failures, 1);
    assert_int_equal(s.resolving, 0);
    assert_int_equal(sentinel_begin(&s, 0, &m, &g, &first),
                     SENTINEL_RESOLVE);  /* first failure: no wait */
    sentinel_resolved(&s, 0, NULL, -1, &g);
    assert_int_equal(sentinel_begin(&s, 49 * MS, &m, &g, &first),
                     SENTINEL_WAIT);
    assert_int_equal(sentinel_begin(&s, 50 * MS, &m, &g, &first),
                     SENTINEL_RESOLVE);
    sentinel_resolved(&s, 50 * MS, NULL, -1, &g);
    assert_int_equal(sentinel_begin(&s, 149 * MS, &m, &g, &first),
                     SENTINEL_WAIT);
    assert_int_equal(s.known, 0);
}

static void test_stale_failure_is_ignored(void **state)
{
    sentinel_state_t s;
    sentinel_addr_t m, a = addr("h", 1), b = addr("h", 2);
    uint64_t ga, gb;
    int first;

    (void)state;
    init3(&s);
    sentinel_begin(&s, 0, &m, &ga, &first);
    sentinel_resolved(&s, 0, &a, 0, &ga);
    /* two connections to a fail; only the first forgets */
    assert_int_equal(sentinel_forget(&s, 0, ga), 1);
    assert_int_equal(sentinel_forget(&s, 0, ga), 0);
    sentinel_begin(&s, 0, &m, &gb, &first);
    assert_int_equal(sentinel_resolved(&s, 0, &b, 0, &gb), 1);
    /* a late failure of an old connection to a does not drop b */
    assert_int_equal(sentinel_forget(&s, 0, ga), 0);
    assert_int_equal(sentinel_begin(&s, 0, &m, &gb, &first), SENTINEL_USE);
    assert_int_equal(m.port, 2);
    /* nor does confirming an old generation reset anything */
    s.backoff_ms = 400;
    sentinel_confirmed(&s, ga);
    assert_int_equal(s.backoff_ms, 400);
    sentinel_confirmed(&s, gb);
    assert_int_equal(s.backoff_ms, 0);
    assert_true(gb > ga);
}

/* ark-cached paces its own probes: no back-off here, but still one
 * resolver at a time. */
static void test_self_paced(void **state)
{
    sentinel_state_t s;
    sentinel_addr_t m, a = addr("h", 1);
    uint64_t g, g2;
    int first, i;

    (void)state;
    init3(&s);
    s.self_paced = 1;
    for (i = 0; i < 5; i++) {
        assert_int_equal(sentinel_begin(&s, 0, &m, &g, &first),
                         SENTINEL_RESOLVE);
        assert_int_equal(sentinel_begin(&s, 0, &m, &g2, &first),
                         SENTINEL_WAIT);
        sentinel_resolved(&s, 0, i % 2 ? &a : NULL, 0, &g);
        if (i % 2) {
            assert_int_equal(sentinel_forget(&s, 0, g), 1);
        }
    }
    assert_int_equal(s.failures, 3);
    assert_int_equal(s.forgets, 2);
}

/* ---- I/O against nothing ------------------------------------------ */

static void test_query_all_dead_sentinels(void **state)
{
    sentinel_state_t s;
    sentinel_addr_t m;
    char list[128], err[512];
    int answered = -1;
    int64_t t0;

    (void)state;
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
             closed_port(), closed_port(), closed_port());
    assert_int_equal(sentinel_state_init_list(&s, "mymaster", list, err,
                                              sizeof(err)), 0);
    t0 = sentinel_now_us();
    assert_int_equal(sentinel_query_all(&s, 1, "secret-password", 50, 50,
                                        200, &m, &answered, err,
                                        sizeof(err)), -1);
    assert_true(sentinel_now_us() - t0 < 1000 * MS);
    assert_int_equal(answered, -1);
    assert_non_null(strstr(err, "mymaster"));
    assert_non_null(strstr(err, "Sentinel 127.0.0.1:"));
    assert_null(strstr(err, "secret-password"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_state_init),
        cmocka_unit_test(test_parse_master),
        cmocka_unit_test(test_parse_role),
        cmocka_unit_test(test_first_resolution),
        cmocka_unit_test(test_failover_backoff),
        cmocka_unit_test(test_no_sentinel_answers),
        cmocka_unit_test(test_stale_failure_is_ignored),
        cmocka_unit_test(test_self_paced),
        cmocka_unit_test(test_query_all_dead_sentinels),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
