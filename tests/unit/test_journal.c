/* Unit tests for the in-flight journal (ark_journal.c) and its replay
 * (ark_govern_replay_entry): claim and release, a full journal, names
 * too long, a foreign or other-version file moved aside, and, against a
 * real redis-server (skipped when it is not installed), orphans of a
 * forked process that _exit()s without releasing its slots, billed at
 * the estimate or at the actual usage, exactly once under their
 * done-keys, and kept while Redis is unreachable.
 */
#include "ark_testutil.h"
#include "net_testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_strings.h>
#include <hiredis/hiredis.h>

#include "ark_govern.h"
#include "ark_journal.h"
#include "ark_limit.h"

typedef struct fixture {
    apr_pool_t *p;
    char dir[32];
    const char *path;
    pid_t redis;
    int port;
    void *shm;
    ark_govern_conf_t conf;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_int_equal(ark_test_pool_setup((void **)&f->p), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/ark-journal-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->path = apr_pstrcat(f->p, f->dir, "/journal", NULL);
    ark_govern_conf_init(&f->conf);
    f->conf.slots = 256;
    f->conf.redis.servers = apr_array_make(f->p, 1, sizeof(const char *));
    f->shm = calloc(1, ark_govern_shm_size(f->conf.slots));
    ark_govern_shm_init(f->shm, f->conf.slots);
    ark_journal_set_owner();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    void *p = f->p;
    char cmd[64];

    if (f->redis > 0) {
        kill(f->redis, SIGKILL);
        waitpid(f->redis, NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f->shm);
    ark_test_pool_teardown(&p);
    free(f);
    return 0;
}

static void entry(ark_journal_entry_t *e, const char *done,
                  const char *key, const char *tenant, long prompt,
                  long completion, apr_int64_t spend)
{
    memset(e, 0, sizeof(*e));
    e->time = apr_time_now();
    apr_cpystrn(e->done, done, sizeof(e->done));
    apr_cpystrn(e->key, key, sizeof(e->key));
    apr_cpystrn(e->tenant, tenant, sizeof(e->tenant));
    e->v[0] = 1;
    e->v[1] = prompt;
    e->v[2] = completion;
    e->v[4] = spend;
}

static ark_journal_t *jopen(fixture_t *f, int slots)
{
    ark_journal_t *j = NULL;
    const char *rejected = NULL;

    assert_int_equal(ark_journal_open(&j, f->path, slots, &rejected, f->p),
                     APR_SUCCESS);
    assert_null(rejected);
    return j;
}

static void test_claim_release(void **state)
{
    fixture_t *f = *state;
    ark_journal_t *j = jopen(f, 64);
    ark_journal_entry_t e;
    ark_journal_stats_t st;
    int slot[64], i, k, again;

    entry(&e, "done:x", "alice", "acme", 10, 20, 300);
    for (i = 0; i < 64; i++) {
        slot[i] = ark_journal_claim(j, &e, (unsigned)i * 7u);
        assert_true(slot[i] >= 0 && slot[i] < 64);
        for (k = 0; k < i; k++) {
            assert_int_not_equal(slot[k], slot[i]);
        }
    }
    /* full: the 65th finds no slot, counted */
    assert_int_equal(ark_journal_claim(j, &e, 3), -1);
    ark_journal_stats(j, &st);
    assert_int_equal(st.slots, 64);
    assert_int_equal(st.in_use, 64);
    assert_int_equal(st.full, 1);

    ark_journal_release(j, slot[17]);
    again = ark_journal_claim(j, &e, 0);
    assert_int_equal(again, slot[17]);
    for (i = 0; i < 64; i++) {
        ark_journal_release(j, slot[i]);
    }
    ark_journal_stats(j, &st);
    assert_int_equal(st.in_use, 0);

    /* a name too long for a slot (the caller leaves the key empty): not
     * journaled, counted */
    entry(&e, "done:x", "", "acme", 1, 1, 1);
    assert_int_equal(ark_journal_claim(j, &e, 0), -1);
    ark_journal_stats(j, &st);
    assert_int_equal(st.too_long, 1);
    assert_int_equal(st.in_use, 0);
}

/* What a slot holds is in the file: a second mapping (the next server
 * start) sees it. */
static void test_survives_reopen(void **state)
{
    fixture_t *f = *state;
    ark_journal_t *j = jopen(f, 64), *j2;
    ark_journal_entry_t e;
    ark_journal_stats_t st;

    entry(&e, "done:y", "bob", "bob", 5, 6, 7);
    assert_true(ark_journal_claim(j, &e, 9) >= 0);
    j2 = jopen(f, 128);                /* other count: the file's is kept */
    ark_journal_stats(j2, &st);
    assert_int_equal(st.slots, 64);
    assert_int_equal(st.in_use, 1);
}

/* A file that is not a journal, or one with another slot layout, is
 * moved aside, never trusted. */
static void test_foreign_file_rejected(void **state)
{
    fixture_t *f = *state;
    ark_journal_t *j = NULL;
    ark_journal_entry_t e;
    ark_journal_stats_t st;
    const char *rejected = NULL;
    struct stat sb;
    apr_uint32_t bad = 1;
    int fd;

    fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a journal at all\n", 21), 21);
    close(fd);
    assert_int_equal(ark_journal_open(&j, f->path, 64, &rejected, f->p),
                     APR_SUCCESS);
    assert_non_null(rejected);
    assert_int_equal(stat(rejected, &sb), 0);
    assert_int_equal(sb.st_size, 21);
    ark_journal_stats(j, &st);
    assert_int_equal(st.slots, 64);
    assert_int_equal(st.in_use, 0);
    entry(&e, "done:z", "carol", "carol", 1, 2, 3);
    assert_true(ark_journal_claim(j, &e, 0) >= 0);
    assert_int_equal(unlink(rejected), 0);

    /* another slot size (a journal of another build): offset 12 */
    fd = open(f->path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &bad, sizeof(bad), 12), sizeof(bad));
    close(fd);
    rejected = NULL;
    assert_int_equal(ark_journal_open(&j, f->path, 64, &rejected, f->p),
                     APR_SUCCESS);
    assert_non_null(rejected);
    ark_journal_stats(j, &st);
    assert_int_equal(st.in_use, 0);    /* its slot was not trusted */
}

/* ---- replay against a real redis-server ------------------------------ */

static int exists(int port, const char *key)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r;
    int v;

    assert_non_null(c);
    r = redisCommand(c, "EXISTS %s", key);
    assert_non_null(r);
    v = (int)r->integer;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

static ark_govern_t *redis_client(fixture_t *f)
{
    ark_govern_t *g;

    if (access("/usr/bin/redis-server", X_OK) != 0) {
        return NULL;
    }
    f->port = test_free_port();
    f->redis = test_redis_start(NULL, f->port, 0);
    APR_ARRAY_PUSH(f->conf.redis.servers, const char *) =
        apr_psprintf(f->p, "127.0.0.1:%d", f->port);
    assert_int_equal(ark_govern_create(&g, &f->conf, f->shm, f->p),
                     APR_SUCCESS);
    return g;
}

typedef struct replay_t {
    ark_govern_t *g;
    apr_pool_t *p;
    int calls;
} replay_t;

static int replay_fn(void *ctx, const ark_journal_entry_t *e)
{
    replay_t *r = ctx;

    r->calls++;
    return ark_govern_replay_entry(r->g, e, r->p);
}

static int count_fn(void *ctx, const ark_journal_entry_t *e)
{
    (void)e;
    (*(int *)ctx)++;
    return 1;
}

/* A forked process claims slots (one with its actual usage known) and
 * dies without releasing them, as a SIGKILLed httpd child would. */
static void orphan_child(ark_journal_t *j, const ark_journal_entry_t *est,
                         const ark_journal_entry_t *known)
{
    pid_t pid = fork();
    int st;

    assert_true(pid >= 0);
    if (pid == 0) {
        int i;

        ark_journal_set_owner();
        if (est && ark_journal_claim(j, est, 1) < 0) {
            _exit(1);
        }
        if (known) {
            i = ark_journal_claim(j, known, 2);
            if (i < 0) {
                _exit(1);
            }
            ark_journal_known(j, i, known->v, known->time);
        }
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_orphans_replayed(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = redis_client(f);
    ark_journal_t *j;
    ark_journal_entry_t est, known, mine;
    ark_journal_stats_t st;
    replay_t r;
    const char *kday, *kmon, *tday;
    int left = -1, n;

    if (!g) {
        skip();
    }
    j = jopen(f, 64);
    entry(&est, "done:0123456789abcdef0123456789abcdef:00000000000000aa",
          "alice", "acme", 100, 256, 5000);
    entry(&known, "done:0123456789abcdef0123456789abcdef:00000000000000bb",
          "alice", "acme", 10, 20, 300);
    orphan_child(j, &est, &known);
    /* a slot of a live owner (this process) is not an orphan */
    entry(&mine, "done:mine", "alice", "acme", 1, 1, 1);
    assert_true(ark_journal_claim(j, &mine, 5) >= 0);

    r.g = g;
    r.p = f->p;
    r.calls = 0;
    n = ark_journal_replay(j, 0, replay_fn, &r, &left);
    assert_int_equal(n, 2);
    assert_int_equal(left, 0);
    assert_int_equal(r.calls, 2);
    kday = ark_rkey_usage(f->p, f->conf.prefix, ARK_SCOPE_KEY, "alice",
                          ARK_PERIOD_DAY, est.time);
    kmon = ark_rkey_usage(f->p, f->conf.prefix, ARK_SCOPE_KEY, "alice",
                          ARK_PERIOD_MONTH, est.time);
    tday = ark_rkey_usage(f->p, f->conf.prefix, ARK_SCOPE_TENANT, "acme",
                          ARK_PERIOD_DAY, est.time);
    assert_int_equal(test_redis_hget(f->port, kday, "requests"), 2);
    assert_int_equal(test_redis_hget(f->port, kday, "prompt_tokens"), 110);
    assert_int_equal(test_redis_hget(f->port, kday, "completion_tokens"), 276);
    assert_int_equal(test_redis_hget(f->port, kday, "spend_nano"), 5300);
    assert_int_equal(test_redis_hget(f->port, kday, ARK_UF_EST_REQUESTS), 1);
    assert_int_equal(test_redis_hget(f->port, kday, ARK_UF_EST_TOKENS), 356);
    assert_int_equal(test_redis_hget(f->port, kmon, "spend_nano"), 5300);
    assert_int_equal(test_redis_hget(f->port, tday, "requests"), 2);
    assert_int_equal(test_redis_hget(f->port, tday, ARK_UF_EST_REQUESTS), 1);
    assert_int_equal(exists(f->port, apr_pstrcat(f->p, f->conf.prefix,
                                                 est.done, NULL)), 1);
    assert_int_equal(exists(f->port, apr_pstrcat(f->p, f->conf.prefix,
                                                 known.done, NULL)), 1);
    ark_journal_stats(j, &st);
    assert_int_equal(st.in_use, 1);    /* mine */
    assert_int_equal(st.replay_estimate, 1);
    assert_int_equal(st.replay_known, 1);

    /* the replayed slots are free: a second walk bills nothing */
    r.calls = 0;
    assert_int_equal(ark_journal_replay(j, 1, replay_fn, &r, &left), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(test_redis_hget(f->port, kday, "requests"), 2);
}

/* An owner that died but was not reaped yet (a zombie: kill(pid, 0)
 * still succeeds) is dead. */
static void test_zombie_owner_dead(void **state)
{
    fixture_t *f = *state;
    ark_journal_t *j = jopen(f, 64);
    ark_journal_entry_t e;
    char path[64], buf[512];
    int i, zombie = 0, calls = 0;
    pid_t pid;

    entry(&e, "done:zombie", "zed", "zed", 1, 2, 3);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ark_journal_set_owner();
        _exit(ark_journal_claim(j, &e, 0) < 0);
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    for (i = 0; i < 400 && !zombie; i++) {
        FILE *fp = fopen(path, "r");

        if (fp && fgets(buf, sizeof(buf), fp)) {
            zombie = strstr(buf, ") Z ") != NULL;
        }
        if (fp) {
            fclose(fp);
        }
        if (!zombie) {
            usleep(10000);
        }
    }
    assert_true(zombie);
    assert_int_equal(kill(pid, 0), 0);
    assert_int_equal(ark_journal_replay(j, 0, count_fn, &calls, NULL), 1);
    assert_int_equal(calls, 1);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
}

/* The owner's own settlement was applied, then it died before freeing
 * the slot: the replay under the same done-key is a no-op. */
static void test_done_key_exactly_once(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g = redis_client(f);
    ark_journal_t *j;
    ark_journal_entry_t known, est;
    ark_gov_subject_t s;
    ark_gov_ticket_t t;
    ark_gov_usage_t u;
    replay_t r;
    const char *kday;
    int left = -1;

    if (!g) {
        skip();
    }
    j = jopen(f, 64);
    memset(&s, 0, sizeof(s));
    s.key = s.tenant = "bob";
    memset(&t, 0, sizeof(t));
    memset(&u, 0, sizeof(u));
    u.prompt_tokens = 7;
    u.completion_tokens = 9;
    u.spend_nano = 70;
    u.done_id = "done:0123456789abcdef0123456789abcdef:1111111111111111";
    ark_govern_settle(g, &t, &s, &u, f->p);
    kday = ark_rkey_usage(f->p, f->conf.prefix, ARK_SCOPE_KEY, "bob",
                          ARK_PERIOD_DAY, apr_time_now());
    assert_int_equal(test_redis_hget(f->port, kday, "requests"), 1);

    /* the same settlement orphaned, with its actual usage, and (as if
     * killed before that was written) at the estimate */
    entry(&known, u.done_id, "bob", "bob", 7, 9, 70);
    entry(&est, u.done_id, "bob", "bob", 50, 256, 9999);
    orphan_child(j, &est, &known);
    r.g = g;
    r.p = f->p;
    r.calls = 0;
    assert_int_equal(ark_journal_replay(j, 0, replay_fn, &r, &left), 2);
    assert_int_equal(r.calls, 2);
    assert_int_equal(left, 0);
    assert_int_equal(test_redis_hget(f->port, kday, "requests"), 1);
    assert_int_equal(test_redis_hget(f->port, kday, "prompt_tokens"), 7);
    assert_int_equal(test_redis_hget(f->port, kday, "spend_nano"), 70);
    assert_int_equal(test_redis_hget(f->port, kday, ARK_UF_EST_REQUESTS), -1);
}

/* Redis unreachable: the orphan is kept (never dropped), and billed
 * once Redis answers. */
static void test_redis_down_kept(void **state)
{
    fixture_t *f = *state;
    ark_govern_t *g, *down;
    ark_journal_t *j;
    ark_journal_entry_t est;
    ark_journal_stats_t st;
    ark_govern_conf_t dc;
    replay_t r;
    int left = -1;

    if (access("/usr/bin/redis-server", X_OK) != 0) {
        skip();
    }
    j = jopen(f, 64);
    entry(&est, "done:0123456789abcdef0123456789abcdef:2222222222222222",
          "carol", "carol", 3, 4, 5);
    orphan_child(j, &est, NULL);
    dc = f->conf;
    dc.redis.servers = apr_array_make(f->p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(dc.redis.servers, const char *) = "127.0.0.1:1";
    dc.redis.connect_timeout = apr_time_from_msec(50);
    assert_int_equal(ark_govern_create(&down, &dc, f->shm, f->p),
                     APR_SUCCESS);
    r.g = down;
    r.p = f->p;
    r.calls = 0;
    assert_int_equal(ark_journal_replay(j, 0, replay_fn, &r, &left), 0);
    assert_int_equal(left, 1);
    ark_journal_stats(j, &st);
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.replay_estimate, 0);

    g = redis_client(f);
    r.g = g;
    assert_int_equal(ark_journal_replay(j, 0, replay_fn, &r, &left), 1);
    assert_int_equal(left, 0);
    assert_int_equal(test_redis_hget(f->port, ark_rkey_usage(f->p, f->conf.prefix,
                                                  ARK_SCOPE_KEY, "carol",
                                                  ARK_PERIOD_DAY, est.time),
                          "requests"), 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_claim_release),
        T(test_survives_reopen),
        T(test_foreign_file_rejected),
        T(test_orphans_replayed),
        T(test_zombie_owner_dead),
        T(test_done_key_exactly_once),
        T(test_redis_down_kept),
    };
#undef T

    return ark_test_run_group("journal", tests,
                              sizeof(tests) / sizeof(tests[0]));
}
