/* Unit tests for ark_cache_queue.c: stores sent by the background thread
 * to a RESP listener on a loopback socket (it records each command and
 * answers +OK, optionally after a delay), the queue's bound, and failures
 * counted and logged when nothing listens. */
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_network_io.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "ark_cache_queue.h"
#include "ark_testutil.h"

/* A one-connection RESP server: reads commands (arrays of bulk strings),
 * keeps them, answers +OK to each after delay. */
typedef struct listener_t {
    apr_socket_t *listen;
    apr_port_t port;
    apr_interval_time_t delay;
    char cmds[8][256];          /* "ARG0 ARG1 ..." (arguments cut) */
    _Atomic int ncmds;
    _Atomic int stop;
} listener_t;

static int read_line(apr_socket_t *s, char *buf, apr_size_t max)
{
    apr_size_t i = 0, n;

    while (i + 1 < max) {
        n = 1;
        if (apr_socket_recv(s, buf + i, &n) != APR_SUCCESS || n != 1) {
            return -1;
        }
        if (buf[i] == '\n') {
            buf[i] = '\0';
            return (int)i;
        }
        i++;
    }
    return -1;
}

static void *APR_THREAD_FUNC listener_main(apr_thread_t *th, void *data)
{
    listener_t *l = data;
    apr_socket_t *s;
    apr_pool_t *p;
    char line[128];

    apr_pool_create(&p, NULL);
    if (apr_socket_accept(&s, l->listen, p) == APR_SUCCESS) {
        apr_socket_timeout_set(s, apr_time_from_msec(200));
        while (!atomic_load(&l->stop)) {
            int argc, i, k = atomic_load(&l->ncmds);
            char *cmd = l->cmds[k < 8 ? k : 7];
            apr_size_t n;

            if (read_line(s, line, sizeof(line)) < 0) {
                continue;      /* timeout: look at stop again */
            }
            argc = atoi(line + 1);
            cmd[0] = '\0';
            for (i = 0; i < argc; i++) {
                long len;
                char *arg;

                read_line(s, line, sizeof(line));
                len = atol(line + 1);
                arg = malloc((apr_size_t)len + 2);
                n = (apr_size_t)len + 2;
                apr_socket_recv(s, arg, &n);   /* small: one read */
                arg[len] = '\0';
                apr_cpystrn(cmd + strlen(cmd), arg,
                            256 - strlen(cmd) - 1);
                if (strlen(cmd) < 254 && i + 1 < argc) {
                    strcat(cmd, " ");
                }
                free(arg);
            }
            if (l->delay) {
                apr_sleep(l->delay);
            }
            /* counted before the reply: once the client has its answer,
             * the command must be visible to the test */
            atomic_fetch_add(&l->ncmds, 1);
            n = 5;
            apr_socket_send(s, "+OK\r\n", &n);
        }
        apr_socket_close(s);
    }
    apr_pool_destroy(p);
    (void)th;
    return NULL;
}

static void listener_start(listener_t *l, apr_thread_t **th, apr_pool_t *p)
{
    apr_sockaddr_t *sa;

    assert_int_equal(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0,
                                           p), APR_SUCCESS);
    assert_int_equal(apr_socket_create(&l->listen, APR_INET, SOCK_STREAM,
                                       APR_PROTO_TCP, p), APR_SUCCESS);
    assert_int_equal(apr_socket_bind(l->listen, sa), APR_SUCCESS);
    assert_int_equal(apr_socket_listen(l->listen, 4), APR_SUCCESS);
    assert_int_equal(apr_socket_addr_get(&sa, APR_LOCAL, l->listen),
                     APR_SUCCESS);
    l->port = sa->port;
    assert_int_equal(apr_thread_create(th, NULL, listener_main, l, p),
                     APR_SUCCESS);
}

static ark_cache_client_t *client_for(apr_port_t port, apr_pool_t *p)
{
    ark_cache_client_conf_t conf;
    ark_cache_client_t *c;

    memset(&conf, 0, sizeof(conf));
    conf.servers = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(conf.servers, const char *) =
        apr_psprintf(p, "127.0.0.1:%d", port);
    conf.connect_timeout = apr_time_from_msec(500);
    conf.call_timeout = apr_time_from_sec(2);
    conf.breaker_failures = 100;
    conf.breaker_cooldown = apr_time_from_sec(1);
    assert_int_equal(ark_cache_client_create(&c, &conf, p), APR_SUCCESS);
    return c;
}

static _Atomic int logged;

static void count_log(void *baton, const char *msg)
{
    (void)baton;
    if (strstr(msg, "cache store failed")) {
        atomic_fetch_add(&logged, 1);
    }
}

/* Returns at once although the server takes 300 ms per store; the stores
 * arrive in order, with every argument. */
static void stores_in_background_in_order(void **state)
{
    apr_pool_t *p = *state, *qp;
    listener_t *l = apr_pcalloc(p, sizeof(*l));
    apr_thread_t *th;
    apr_status_t trv;
    ark_cache_queue_t *q;
    ark_cache_queue_counters_t n;
    apr_time_t t0;

    l->delay = apr_time_from_msec(300);
    listener_start(l, &th, p);
    apr_pool_create(&qp, p);
    assert_int_equal(ark_cache_queue_create(&q, client_for(l->port, qp), 0,
                                            count_log, NULL, qp),
                     APR_SUCCESS);
    t0 = apr_time_now();
    assert_int_equal(ark_cache_queue_store(q, "ns1", "hello", 5, "{\"a\":1}",
                                           7, 60, NULL), APR_SUCCESS);
    assert_int_equal(ark_cache_queue_store(q, "ns2", "world", 5, "{}", 2,
                                           30, "00-tp"), APR_SUCCESS);
    assert_true(apr_time_now() - t0 < apr_time_from_msec(250));
    assert_true(ark_cache_queue_wait_idle(q, apr_time_from_sec(10)));
    assert_int_equal(atomic_load(&l->ncmds), 2);
    assert_string_equal(l->cmds[0], "ARK.STORE ns1 hello {\"a\":1} TTL 60");
    assert_string_equal(l->cmds[1],
                        "ARK.STORE ns2 world {} TTL 30 TRACE 00-tp");
    ark_cache_queue_counters(q, &n);
    assert_int_equal(n.sent, 2);
    assert_int_equal(n.failed, 0);
    assert_int_equal(n.dropped, 0);
    assert_int_equal(n.queued, 0);
    atomic_store(&l->stop, 1);
    apr_pool_destroy(qp);              /* stops and joins the thread */
    apr_thread_join(&trv, th);
}

/* Bounded: beyond max_bytes a store is dropped and counted. */
static void full_queue_drops(void **state)
{
    apr_pool_t *p = *state, *qp;
    listener_t *l = apr_pcalloc(p, sizeof(*l));
    apr_thread_t *th;
    apr_status_t trv;
    ark_cache_queue_t *q;
    ark_cache_queue_counters_t n;
    char payload[1000];
    int i, queued = 0, dropped = 0;

    memset(payload, 'x', sizeof(payload));
    l->delay = apr_time_from_msec(200);
    listener_start(l, &th, p);
    apr_pool_create(&qp, p);
    assert_int_equal(ark_cache_queue_create(&q, client_for(l->port, qp),
                                            4096, count_log, NULL, qp),
                     APR_SUCCESS);
    for (i = 0; i < 10; i++) {
        apr_status_t rv = ark_cache_queue_store(q, "ns", "t", 1, payload,
                                                sizeof(payload), 60, NULL);

        queued += rv == APR_SUCCESS;
        dropped += rv == APR_EAGAIN;
    }
    /* about 1.1 KB each: 3 fit in 4 KB (one may already be taken) */
    assert_true(queued >= 3 && queued <= 4);
    assert_int_equal(queued + dropped, 10);
    ark_cache_queue_counters(q, &n);
    assert_int_equal(n.dropped, (apr_uint64_t)dropped);
    assert_true(ark_cache_queue_wait_idle(q, apr_time_from_sec(10)));
    ark_cache_queue_counters(q, &n);
    assert_int_equal(n.sent, (apr_uint64_t)queued);
    atomic_store(&l->stop, 1);
    apr_pool_destroy(qp);
    apr_thread_join(&trv, th);
}

/* Nothing listens: each store fails, is counted, logged once. */
static void failures_counted_and_logged_once(void **state)
{
    apr_pool_t *p = *state, *qp;
    ark_cache_queue_t *q;
    ark_cache_queue_counters_t n;
    apr_socket_t *s;
    apr_sockaddr_t *sa;
    apr_port_t port;

    /* a port that was free a moment ago */
    assert_int_equal(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0,
                                           p), APR_SUCCESS);
    assert_int_equal(apr_socket_create(&s, APR_INET, SOCK_STREAM,
                                       APR_PROTO_TCP, p), APR_SUCCESS);
    assert_int_equal(apr_socket_bind(s, sa), APR_SUCCESS);
    assert_int_equal(apr_socket_addr_get(&sa, APR_LOCAL, s), APR_SUCCESS);
    port = sa->port;
    apr_socket_close(s);

    atomic_store(&logged, 0);
    apr_pool_create(&qp, p);
    assert_int_equal(ark_cache_queue_create(&q, client_for(port, qp), 0,
                                            count_log, NULL, qp),
                     APR_SUCCESS);
    assert_int_equal(ark_cache_queue_store(q, "ns", "a", 1, "{}", 2, 60,
                                           NULL), APR_SUCCESS);
    assert_int_equal(ark_cache_queue_store(q, "ns", "b", 1, "{}", 2, 60,
                                           NULL), APR_SUCCESS);
    assert_true(ark_cache_queue_wait_idle(q, apr_time_from_sec(10)));
    ark_cache_queue_counters(q, &n);
    assert_int_equal(n.sent, 0);
    assert_int_equal(n.failed, 2);
    assert_int_equal(atomic_load(&logged), 1);
    apr_pool_destroy(qp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(stores_in_background_in_order),
        ARK_TEST(full_queue_drops),
        ARK_TEST(failures_counted_and_logged_once),
    };

    return ARK_TEST_RUN("cache_queue", tests);
}
