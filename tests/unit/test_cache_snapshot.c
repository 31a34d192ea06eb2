/* Unit tests for the cache engine's index snapshots and catch-up
 * (cs_cache.c) against a real redis-server and the real FAISS index.
 *
 * Each test starts the engine (cs_engine_start) with snapshot_dir in a
 * mkdtemp directory, a small approx_threshold (so the namespace is an
 * HNSW graph, as at scale) and its own Redis key prefix; stops it
 * (cs_engine_stop writes the snapshot); changes Redis behind its back;
 * starts it again and checks what it serves:
 *   - snapshot loaded, entries served, including lookups made at once
 *     while the catch-up from Redis may still run;
 *   - an entry deleted and one expired while the engine was down are never
 *     served, and leave the index (ghosts_removed);
 *   - an entry stored by another replica while it was down is served;
 *   - a truncated snapshot, and one of another embedder dimension, are
 *     ignored (logged) and the namespace is rebuilt from Redis.
 * The redis-server dies with the test process (PR_SET_PDEATHSIG).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "net_testutil.h"
#include <hiredis/hiredis.h>

#include "cs_cache.h"
#include "cs_config.h"
#include "cs_engine.h"

#define NS "snap-ns"
/* Entries per test: above approx_threshold below, so HNSW. */
#define N_ENTRIES 300
#define APPROX "64"

static pid_t srv_pid;
static int srv_port;
static char srv_dir[64];
static int test_no;

static redisReply *raw(const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", srv_port, tv);
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

static int group_setup(void **state)
{
    char portstr[16];
    int i;

    (void)state;
    snprintf(srv_dir, sizeof(srv_dir), "/tmp/cs-snap-redis-XXXXXX");
    assert_non_null(mkdtemp(srv_dir));
    srv_port = test_free_port();
    snprintf(portstr, sizeof(portstr), "%d", srv_port);
    srv_pid = fork();
    assert_true(srv_pid >= 0);
    if (srv_pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("redis-server", "redis-server", "--port", portstr, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
               srv_dir, (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 500; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", srv_port, tv);
        int up = c && !c->err;

        if (c) {
            redisFree(c);
        }
        if (up) {
            return 0;
        }
        test_sleep_ms(20);
    }
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (srv_pid > 0) {
        kill(srv_pid, SIGKILL);
        waitpid(srv_pid, NULL, 0);
    }
    rmdir(srv_dir);
    return 0;
}

/* ------------------------------------------------------------ helpers */

typedef struct env {
    char dir[64];         /* snapshot_dir */
    char prefix[32];      /* Redis key prefix of this test */
} env_t;

static void env_init(env_t *e)
{
    snprintf(e->dir, sizeof(e->dir), "/tmp/cs-snap-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->prefix, sizeof(e->prefix), "snaptest%d:", ++test_no);
}

static void env_free(env_t *e)
{
    DIR *d = opendir(e->dir);
    struct dirent *de;
    char path[512];

    while (d && (de = readdir(d))) {
        if (de->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", e->dir, de->d_name);
            unlink(path);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(e->dir);
}

/* Starts the engine; with_snap 0 leaves snapshot_dir unset; dim NULL
 * keeps the default. */
static cs_cache_t *start(const env_t *e, int with_snap, const char *dim,
                         cs_config_t **pcfg)
{
    cs_config_t *cfg = NULL;
    cs_cache_t *c = NULL;
    char err[512], port[16];

    snprintf(port, sizeof(port), "%d", srv_port);
    assert_int_equal(cs_config_create(&cfg), CS_OK);
#define SET(k, v) assert_int_equal(cs_config_set_override(cfg, k, v, err, \
                                                          sizeof(err)), CS_OK)
    SET("redis_host", "127.0.0.1");
    SET("redis_port", port);
    SET("redis_prefix", e->prefix);
    SET("redis_command_timeout_ms", "2000");
    SET("approx_threshold", APPROX);
    if (with_snap) {
        SET("snapshot_dir", e->dir);
        SET("snapshot_min_vectors", "10");
        SET("snapshot_interval_s", "0");
    }
    if (dim) {
        SET("embedder_dim", dim);
    }
#undef SET
    if (cs_engine_start(cfg, &c, err, sizeof(err)) != CS_OK) {
        fail_msg("engine start: %s", err);
    }
    *pcfg = cfg;
    return c;
}

static void stop(cs_cache_t *c, cs_config_t *cfg)
{
    cs_engine_stop(c);
    cs_config_free(cfg);
}

/* The stored question of entry i, and a rephrasing served from it. */
static void question(int i, char *out, size_t len)
{
    static const char *const topics[] = {
        "rotate the TLS certificate of", "restart the worker pool of",
        "compress the backups of", "trace slow queries in",
        "shard the sessions of", "rate limit the API of"
    };

    snprintf(out, len, "How do I %s service %d in region %d?",
             topics[i % 6], 1000 + i, i % 17);
}

static void near(int i, char *out, size_t len)
{
    char q[200];

    question(i, q, sizeof(q));
    snprintf(out, len, "Quick question: %s Thanks", q);
}

static uint64_t store(cs_cache_t *c, int i, long ttl)
{
    char q[256], payload[64], err[256];
    uint64_t id = 0;

    question(i, q, sizeof(q));
    snprintf(payload, sizeof(payload), "answer %d", i);
    assert_int_equal(cs_cache_store(c, NS, strlen(NS), q, strlen(q), payload,
                                    strlen(payload), ttl, &id, err,
                                    sizeof(err)), CS_OK);
    return id;
}

/* 1 when the near-duplicate of i is served, with i's answer. */
static int served(cs_cache_t *c, int i)
{
    char q[256], want[64], err[256];
    cs_hit_t hit;
    int found = 0, right;

    near(i, q, sizeof(q));
    assert_int_equal(cs_cache_lookup(c, NS, strlen(NS), q, strlen(q), -1,
                                     &hit, &found, err, sizeof(err)), CS_OK);
    if (!found) {
        return 0;
    }
    snprintf(want, sizeof(want), "answer %d", i);
    right = hit.payload_len == strlen(want)
            && !memcmp(hit.payload, want, hit.payload_len);
    assert_true(right);      /* never another entry's answer */
    cs_free(hit.payload);
    return 1;
}

static long info_field(cs_cache_t *c, const char *name)
{
    cs_buf_t b;
    char key[64];
    const char *p;
    long v = -1;

    cs_buf_init(&b);
    cs_cache_info(c, &b);
    cs_buf_append(&b, "", 1);
    snprintf(key, sizeof(key), "\n%s:", name);
    p = strstr(b.data, key);
    if (p) {
        v = strtol(p + strlen(key), NULL, 10);
    }
    cs_buf_free(&b);
    return v;
}

static void wait_caught_up(cs_cache_t *c)
{
    int i;

    for (i = 0; i < 1000 && info_field(c, "catching_up") != 0; i++) {
        test_sleep_ms(10);
    }
    assert_int_equal(info_field(c, "catching_up"), 0);
}

static int count_files(const env_t *e)
{
    DIR *d = opendir(e->dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d))) {
        n += de->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void snapshot_file(const env_t *e, char *out, size_t len)
    __attribute__((unused));
static void snapshot_file(const env_t *e, char *out, size_t len)
{
    DIR *d = opendir(e->dir);
    struct dirent *de;

    assert_non_null(d);
    out[0] = '\0';
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.') {
            snprintf(out, len, "%s/%s", e->dir, de->d_name);
        }
    }
    closedir(d);
    assert_true(out[0] != '\0');
}

static void del_entry(const env_t *e, uint64_t id)
{
    redisReply *x = raw("DEL %se:%llu", e->prefix, (unsigned long long)id);

    assert_int_equal(x->integer, 1);
    freeReplyObject(x);
}

/* TTL of the entry that expires while the engine is down: long enough
 * to outlive the rest of the fill and the stop even under sanitizers. */
#define SHORT_TTL 4

/* Fills the namespace and stops: one snapshot file. ids[] receives the
 * entry ids; entry short_ttl_for (-1: none) is stored last, with
 * SHORT_TTL. */
static void fill_and_stop(const env_t *e, uint64_t *ids, long short_ttl_for)
{
    cs_config_t *cfg;
    cs_cache_t *c = start(e, 1, NULL, &cfg);
    int i;

    for (i = 0; i < N_ENTRIES; i++) {
        if (i != short_ttl_for) {
            ids[i] = store(c, i, 3600);
        }
    }
    if (short_ttl_for >= 0) {
        ids[short_ttl_for] = store(c, (int)short_ttl_for, SHORT_TTL);
    }
    assert_int_equal(info_field(c, "vectors"), N_ENTRIES);
    stop(c, cfg);
    assert_int_equal(count_files(e), 1);
}

/* -------------------------------------------------------------- tests */

static void test_restart_serves_snapshot_without_ghosts(void **state)
{
    env_t e;
    uint64_t ids[N_ENTRIES];
    cs_config_t *cfg;
    cs_cache_t *c;
    int i, hits = 0;

    (void)state;
    env_init(&e);
    /* entry 7 lives SHORT_TTL seconds: it expires while the engine is
     * down */
    fill_and_stop(&e, ids, 7);
    del_entry(&e, ids[3]);
    del_entry(&e, ids[150]);
    test_sleep_ms(SHORT_TTL * 1000 + 200);

    /* Another replica (no snapshots) stores one more while we are down. */
    c = start(&e, 0, NULL, &cfg);
    store(c, N_ENTRIES, 3600);
    stop(c, cfg);

    c = start(&e, 1, NULL, &cfg);
    assert_int_equal(info_field(c, "snapshots_loaded"), 1);
    assert_int_equal(info_field(c, "snapshot_vectors_loaded"), N_ENTRIES);
    /* At once, whether or not the catch-up is over: gone entries are
     * never served, live ones are. */
    assert_false(served(c, 3));
    assert_false(served(c, 150));
    assert_false(served(c, 7));
    assert_true(served(c, 10));
    wait_caught_up(c);
    assert_false(served(c, 3));
    assert_false(served(c, 150));
    assert_false(served(c, 7));
    for (i = 0; i <= N_ENTRIES; i++) {
        hits += served(c, i);
    }
    /* All but the three gone, including the one stored while down. */
    assert_int_equal(hits, N_ENTRIES + 1 - 3);
    assert_true(served(c, N_ENTRIES));
    /* The ghosts left the index (a removal during the catch-up counts
     * too), and the snapshot entries were not added twice. */
    assert_int_equal(info_field(c, "ghosts_removed"), 3);
    assert_int_equal(info_field(c, "vectors"), N_ENTRIES + 1 - 3);
    assert_int_equal(info_field(c, "entries"), N_ENTRIES + 1 - 3);
    stop(c, cfg);

    /* The snapshot written at that stop no longer holds them. */
    c = start(&e, 1, NULL, &cfg);
    assert_int_equal(info_field(c, "snapshot_vectors_loaded"),
                     N_ENTRIES + 1 - 3);
    wait_caught_up(c);
    assert_int_equal(info_field(c, "ghosts_removed"), 0);
    stop(c, cfg);
    env_free(&e);
}

static void test_damaged_snapshot_is_ignored(void **state)
{
    env_t e;
    uint64_t ids[N_ENTRIES];
    cs_config_t *cfg;
    cs_cache_t *c;
    char path[512];
    struct stat st;

    (void)state;
    env_init(&e);
    fill_and_stop(&e, ids, -1);
    snapshot_file(&e, path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 100), 0);

    c = start(&e, 1, NULL, &cfg);
    assert_int_equal(info_field(c, "snapshots_loaded"), 0);
    /* rebuilt from Redis at start instead */
    assert_int_equal(info_field(c, "catching_up"), 0);
    assert_int_equal(info_field(c, "entries"), N_ENTRIES);
    assert_true(served(c, 42));
    stop(c, cfg);
    /* and a good snapshot written at that stop */
    c = start(&e, 1, NULL, &cfg);
    assert_int_equal(info_field(c, "snapshots_loaded"), 1);
    assert_true(served(c, 42));
    stop(c, cfg);
    env_free(&e);
}

static void test_other_dimension_is_ignored(void **state)
{
    env_t e;
    uint64_t ids[N_ENTRIES];
    cs_config_t *cfg;
    cs_cache_t *c;
    char path[512];

    (void)state;
    env_init(&e);
    fill_and_stop(&e, ids, -1);
    snapshot_file(&e, path, sizeof(path));

    /* Another embedder (the builtin one at 256 dimensions): its vectors
     * would be meaningless here; the 384-d entries in Redis are skipped
     * too, so nothing is served from the old namespace. */
    c = start(&e, 1, "256", &cfg);
    assert_int_equal(info_field(c, "snapshots_loaded"), 0);
    assert_int_equal(info_field(c, "vectors"), 0);
    assert_false(served(c, 42));
    cs_engine_stop(c);
    cs_config_free(cfg);
    env_free(&e);
}

static void test_forgotten_namespace_file_removed(void **state)
{
    env_t e;
    uint64_t ids[N_ENTRIES];
    cs_config_t *cfg;
    cs_cache_t *c;
    char err[256];
    long removed = 0;

    (void)state;
    env_init(&e);
    fill_and_stop(&e, ids, -1);
    c = start(&e, 1, NULL, &cfg);
    wait_caught_up(c);
    assert_int_equal(cs_cache_forget(c, NS, strlen(NS), NULL, &removed, err,
                                     sizeof(err)), CS_OK);
    assert_int_equal(removed, N_ENTRIES);
    assert_false(served(c, 5));
    stop(c, cfg);
    assert_int_equal(count_files(&e), 0);
    env_free(&e);
}

/* Redis emptied while the daemon was down (its id counter restarts): an
 * id of the snapshot now names another entry, which must be indexed with
 * its own vector, and the old entry must never be served. */
static void test_reused_id_gets_new_vector(void **state)
{
    env_t e;
    uint64_t ids[N_ENTRIES];
    cs_config_t *cfg;
    cs_cache_t *c;
    redisReply *keys;
    size_t i;

    (void)state;
    env_init(&e);
    fill_and_stop(&e, ids, -1);
    keys = raw("KEYS %s*", e.prefix);
    for (i = 0; i < keys->elements; i++) {
        freeReplyObject(raw("DEL %s", keys->element[i]->str));
    }
    freeReplyObject(keys);
    c = start(&e, 0, NULL, &cfg);
    assert_int_equal(store(c, 1000, 3600), ids[0]);     /* the same id */
    stop(c, cfg);

    c = start(&e, 1, NULL, &cfg);
    assert_false(served(c, 0));      /* served() fails on a wrong answer */
    assert_true(served(c, 1000));
    wait_caught_up(c);
    assert_false(served(c, 0));
    assert_true(served(c, 1000));
    assert_int_equal(info_field(c, "vectors"), 1);
    stop(c, cfg);
    env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_serves_snapshot_without_ghosts),
        cmocka_unit_test(test_damaged_snapshot_is_ignored),
        cmocka_unit_test(test_other_dimension_is_ignored),
        cmocka_unit_test(test_forgotten_namespace_file_removed),
        cmocka_unit_test(test_reused_id_gets_new_vector),
    };

    signal(SIGPIPE, SIG_IGN);
    if (access("/usr/bin/redis-server", X_OK) != 0) {
        fprintf(stderr, "redis-server not installed: skipping\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
