/* Small helpers of the unit tests that start servers of their own
 * (redis-server): a free loopback port, a redis-server of their own and
 * a sleep that survives signals. Header-only, because both the mod_ark tests (APR) and the
 * ark-cached tests (no APR) use it; include it after <cmocka.h>. */
#ifndef ARK_NET_TESTUTIL_H
#define ARK_NET_TESTUTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static inline int test_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Sleeps ms milliseconds, resuming after signals. */
static inline void test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Starts redis-server on 127.0.0.1:port, no persistence, files in dir
 * (NULL: the current directory), a replica of master_port unless it is
 * 0; returns its pid once it answers PING (fails the test after 5 s). */
static inline pid_t test_redis_start(const char *dir, int port,
                                     int master_port)
{
    char ps[16], ms[16];
    pid_t pid;
    int i;

    snprintf(ps, sizeof(ps), "%d", port);
    snprintf(ms, sizeof(ms), "%d", master_port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[20] = {"redis-server", "--port", ps, "--bind",
                                "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--repl-diskless-sync-delay", "0"};
        int n = 11;

        if (dir) {
            argv[n++] = "--dir";
            argv[n++] = dir;
        }
        if (master_port) {
            argv[n++] = "--replicaof";
            argv[n++] = "127.0.0.1";
            argv[n++] = ms;
        }
        argv[n] = NULL;
        if (!freopen("/dev/null", "w", stdout)) {
            _exit(127);
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (i = 0; i < 200; i++) {
        redisContext *c = redisConnect("127.0.0.1", port);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        int ok = r && r->type == REDIS_REPLY_STATUS;

        if (r) {
            freeReplyObject(r);
        }
        if (c) {
            redisFree(c);
        }
        if (ok) {
            return pid;
        }
        test_sleep_ms(25);
    }
    fail_msg("redis-server did not start on port %d", port);
    return -1;
}

/* HGET key field on the redis-server at port, as a number; -1 when
 * absent. */
static inline long long test_redis_hget(int port, const char *key,
                                        const char *field)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r;
    long long v = -1;

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    r = redisCommand(c, "HGET %s %s", key, field);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING) {
        v = atoll(r->str);
    }
    freeReplyObject(r);
    redisFree(c);
    return v;
}

#endif
