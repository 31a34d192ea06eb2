/* Unit tests for the embedders (cachesvc/cs_embed*.c).
 *
 * Builtin: argument bounds, version, determinism, unit norm, batches equal
 * single calls, threads agree, and similarity ordering: near-duplicates
 * (case, punctuation, politeness, small typos) score above related texts,
 * which score above unrelated ones, in English and Chinese. Its speed on a
 * 2 KB prompt is printed, not asserted.
 *
 * HTTP: a small OpenAI-compatible embeddings server runs inside this test
 * on a free loopback port (one thread per connection, keep-alive). Its
 * vectors are a known function of each input text, so the test checks
 * exactly what the client returns; switches make it answer 500, garbage,
 * wrong dimensions, shuffled items, or slowly. The test checks batching,
 * keep-alive, the Authorization header, dimension learning, and each
 * error message of cs_embed.h, including "connection refused" on a port
 * nobody listens to.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cs_embed.h"

/* Size of a test server's request buffer (headers and body). */
#define SRV_REQ_MAX (1024 * 1024)

/* Threads of the concurrency tests. */
#define TEST_THREADS 4

/* Embeds per timing sample of the printed speed figure. */
#define SPEED_ROUNDS 2000

/* ---- helpers ---------------------------------------------------------- */

static double dot(const float *a, const float *b, int dim)
{
    double s = 0;
    int i;

    for (i = 0; i < dim; i++) {
        s += (double)a[i] * b[i];
    }
    return s;
}

static void embed1(cs_embedder_t *e, const char *text, float *out)
{
    size_t len = strlen(text);
    char err[256];

    assert_int_equal(cs_embed(e, &text, &len, 1, out, err, sizeof(err)),
                     CS_OK);
}

static double sim(cs_embedder_t *e, const char *a, const char *b)
{
    int dim = cs_embed_dim(e);
    float *va = malloc(sizeof(float) * dim), *vb = malloc(sizeof(float) * dim);
    double s;

    embed1(e, a, va);
    embed1(e, b, vb);
    s = dot(va, vb, dim);
    free(va);
    free(vb);
    return s;
}

/* A 2 KB English prompt for the speed figure. */
static char *make_prompt(size_t want)
{
    static const char *const words[] = {
        "the", "model", "should", "explain", "how", "caching", "works",
        "in", "a", "gateway", "for", "large", "language", "models", "with",
        "semantic", "lookup", "and", "verification", "of", "numbers",
        "entities", "negations", "code", "identifiers", "like", "`cs_embed`",
        "please", "answer", "briefly", "Paris", "France", "2024", "tokens,"
    };
    char *s = malloc(want + 32);
    size_t len = 0, k = 0;

    while (len < want) {
        const char *w = words[(k * 7 + k / 5) % (sizeof(words)
                                                 / sizeof(words[0]))];
        len += (size_t)sprintf(s + len, "%s ", w);
        k++;
    }
    s[len] = '\0';
    return s;
}

/* ---- builtin ---------------------------------------------------------- */

static void test_builtin_create(void **state)
{
    cs_embedder_t *e;

    (void)state;
    e = cs_embed_builtin_create(0);
    assert_non_null(e);
    assert_string_equal(cs_embed_name(e), "builtin");
    assert_int_equal(cs_embed_dim(e), 384);
    assert_string_equal(cs_embed_version(e), "builtin-1:dim=384");
    assert_int_equal(cs_embed_probe(e, NULL, 0), CS_OK);
    cs_embed_free(e);
    e = cs_embed_builtin_create(64);
    assert_non_null(e);
    assert_string_equal(cs_embed_version(e), "builtin-1:dim=64");
    cs_embed_free(e);
    e = cs_embed_builtin_create(4096);
    assert_non_null(e);
    cs_embed_free(e);
    assert_null(cs_embed_builtin_create(32));
    assert_null(cs_embed_builtin_create(100));
    assert_null(cs_embed_builtin_create(8192));
    assert_null(cs_embed_builtin_create(-384));
    cs_embed_free(NULL);
}

static void test_builtin_norm_and_determinism(void **state)
{
    static const char *const texts[] = {
        "What is the capital of France?", "法国的首都是哪里？", "",
        "   ", "x", "```\nint main(void) { return 0; }\n```", "\xff\xfe",
        "a", "????", "ｆｕｌｌ　ｗｉｄｔｈ"
    };
    cs_embedder_t *a = cs_embed_builtin_create(0);
    cs_embedder_t *b = cs_embed_builtin_create(0);
    float va[384], vb[384];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        embed1(a, texts[i], va);
        embed1(b, texts[i], vb);
        assert_memory_equal(va, vb, sizeof(va));
        assert_true(fabs(dot(va, va, 384) - 1.0) < 1e-5);
        embed1(a, texts[i], vb);
        assert_memory_equal(va, vb, sizeof(va));
    }
    /* nothing to hash: the unit vector e0 */
    embed1(a, "", va);
    assert_true(va[0] == 1.0f);
    /* punctuation alone is a feature: "???" is not "!!!" */
    assert_true(sim(a, "???", "!!!") < 0.5);
    cs_embed_free(a);
    cs_embed_free(b);
}

static void test_builtin_batch(void **state)
{
    const char *texts[] = {"one text", "another text", "第三个", ""};
    size_t lens[4];
    float batch[4 * 384], single[384];
    char err[128];
    cs_embedder_t *e = cs_embed_builtin_create(0);
    int i;

    (void)state;
    for (i = 0; i < 4; i++) {
        lens[i] = strlen(texts[i]);
    }
    assert_int_equal(cs_embed(e, texts, lens, 4, batch, err, sizeof(err)),
                     CS_OK);
    for (i = 0; i < 4; i++) {
        embed1(e, texts[i], single);
        assert_memory_equal(batch + i * 384, single, sizeof(single));
    }
    assert_int_equal(cs_embed(e, texts, lens, 0, NULL, err, sizeof(err)),
                     CS_OK);
    assert_int_equal(cs_embed(e, texts, lens, -1, batch, err, sizeof(err)),
                     CS_ERR);
    assert_non_null(strstr(err, "embedder builtin: bad arguments"));
    cs_embed_free(e);
}

/* Near-duplicate > related > unrelated, for several anchors. */
static void test_builtin_similarity(void **state)
{
    static const struct {
        const char *anchor, *near, *related, *unrelated;
    } t[] = {
        {"What is the capital of France?",
         "what's the capital of france",
         "What is the capital of Spain?",
         "How do I bake sourdough bread at home?"},
        {"Can you please explain how a hash table works?",
         "Explain how a hash table works.",
         "Explain how a binary search tree works.",
         "What's the weather like in Tokyo tomorrow?"},
        {"Write a Python function to reverse a linked list",
         "write a python function that reverses a linked list",
         "Write a Java function to reverse a linked list",
         "Give me a recipe for chocolate chip cookies"},
        {"Convert 100 degrees Celsius to Fahrenheit",
         "convert 100 degrees celsius into fahrenheit please",
         "Convert 100 degrees Fahrenheit to Celsius",
         "Who painted the Mona Lisa?"},
        {"How do I center a div in CSS?",
         "how can i center a div with css",
         "How do I center text in CSS?",
         "Summarize the plot of Hamlet"},
        {"法国的首都是哪里？",
         "请问法国的首都是哪里",
         "西班牙的首都是哪里？",
         "如何在家里烤面包？"},
        {"帮我用Python写一个快速排序",
         "用Python写一个快速排序",
         "用Java写一个快速排序",
         "今天北京的天气怎么样"},
        {"解释一下什么是机器学习",
         "请解释什么是机器学习？",
         "解释一下什么是深度学习",
         "推荐几本好看的小说"},
    };
    cs_embedder_t *e = cs_embed_builtin_create(0);
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        double n = sim(e, t[i].anchor, t[i].near);
        double r = sim(e, t[i].anchor, t[i].related);
        double u = sim(e, t[i].anchor, t[i].unrelated);
        printf("    sim[%zu] near %.3f related %.3f unrelated %.3f\n", i, n,
               r, u);
        assert_true(n > r);
        assert_true(r > u);
        assert_true(n > 0.6);
        assert_true(u < 0.3);
    }
    /* same words, different case/width/markdown: identical vectors */
    assert_true(sim(e, "**Hello** World", "hello   world") > 0.9999);
    assert_true(sim(e, "ＨＥＬＬＯ，ｗｏｒｌｄ", "hello,world") > 0.9999);
    cs_embed_free(e);
}

typedef struct {
    cs_embedder_t *e;
    const char *text;
    float v[384];
} thread_job_t;

static void *thread_embed(void *arg)
{
    thread_job_t *j = arg;
    size_t len = strlen(j->text);
    char err[128];
    int k;

    for (k = 0; k < 200; k++) {
        if (cs_embed(j->e, &j->text, &len, 1, j->v, err, sizeof(err))
            != CS_OK) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_builtin_threads(void **state)
{
    cs_embedder_t *e = cs_embed_builtin_create(0);
    thread_job_t jobs[TEST_THREADS];
    pthread_t th[TEST_THREADS];
    float want[384];
    char *prompt = make_prompt(2048);
    int i;

    (void)state;
    embed1(e, prompt, want);
    for (i = 0; i < TEST_THREADS; i++) {
        jobs[i].e = e;
        jobs[i].text = prompt;
        pthread_create(&th[i], NULL, thread_embed, &jobs[i]);
    }
    for (i = 0; i < TEST_THREADS; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        assert_null(rv);
        assert_memory_equal(jobs[i].v, want, sizeof(want));
    }
    free(prompt);
    cs_embed_free(e);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void test_builtin_speed(void **state)
{
    cs_embedder_t *e = cs_embed_builtin_create(0);
    char *prompt = make_prompt(2048);
    size_t len = strlen(prompt);
    const char *t = prompt;
    double us[5];
    float v[384];
    char err[64];
    int s, k;

    (void)state;
    for (s = 0; s < 5; s++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (k = 0; k < SPEED_ROUNDS / 5; k++) {
            cs_embed(e, &t, &len, 1, v, err, sizeof(err));
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        us[s] = ((b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3)
                / (SPEED_ROUNDS / 5);
    }
    qsort(us, 5, sizeof(us[0]), cmp_double);
    printf("    builtin embed of a %zu-byte prompt: %.1f us (median of 5 "
           "batches; not asserted)\n", len, us[2]);
    free(prompt);
    cs_embed_free(e);
}

/* ---- the test embeddings server --------------------------------------- */

typedef enum {
    SRV_OK,
    SRV_500,
    SRV_GARBAGE,
    SRV_WRONG_DIM,      /* the last item is one number short */
    SRV_SHUFFLED,       /* items reversed, "index" tells where they go */
    SRV_NO_INDEX,       /* items in order, without "index" */
    SRV_DUP_INDEX,
    SRV_TOO_FEW,
    SRV_ZERO,           /* all-zero vectors */
    SRV_SLOW            /* answers after slow_ms */
} srv_mode_t;

typedef struct {
    int lfd;
    int port;
    pthread_t accept_thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stopping;
    int conns_open;
    int conns_total;
    int requests;
    int max_inputs;
    srv_mode_t mode;
    int dim;
    int slow_ms;
    char auth[256];     /* last Authorization header, "" if none */
    char model[128];
} srv_t;

typedef struct {
    srv_t *srv;
    int fd;
} conn_t;

static srv_t srv;

/* The server's vector for a text: component j of dim, not normalised. */
static double srv_component(const char *text, size_t len, int j)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char)text[i]) * 16777619u;
    }
    return (double)(((h >> (j % 24)) + (uint32_t)j * 7u) % 13u) - 6.0;
}

static void expected_vector(const char *text, int dim, float *out)
{
    double n = 0;
    int j;

    for (j = 0; j < dim; j++) {
        double c = srv_component(text, strlen(text), j);
        out[j] = (float)c;
        n += c * c;
    }
    for (j = 0; j < dim; j++) {
        out[j] = (float)(out[j] / sqrt(n));
    }
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) {
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void respond(int fd, int status, const char *body)
{
    char head[256];

    snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\nConnection: "
             "keep-alive\r\n\r\n", status, strlen(body));
    if (send_all(fd, head, strlen(head)) == 0) {
        send_all(fd, body, strlen(body));
    }
}

static char *answer_for(srv_mode_t mode, int dim, json_t *input,
                        json_t *model)
{
    json_t *root = json_object(), *data = json_array();
    size_t n = json_array_size(input), i, out_n = n;
    char *body;

    if (mode == SRV_TOO_FEW && n > 0) {
        out_n = n - 1;
    }
    for (i = 0; i < out_n; i++) {
        size_t k = mode == SRV_SHUFFLED ? n - 1 - i : i;
        json_t *str = json_array_get(input, k);
        json_t *item = json_object(), *emb = json_array();
        int d = dim - (mode == SRV_WRONG_DIM && i == n - 1), j;

        for (j = 0; j < d; j++) {
            double c = mode == SRV_ZERO ? 0.0
                       : srv_component(json_string_value(str),
                                       json_string_length(str), j);
            json_array_append_new(emb, json_real(c));
        }
        json_object_set_new(item, "object", json_string("embedding"));
        json_object_set_new(item, "embedding", emb);
        if (mode != SRV_NO_INDEX) {
            json_object_set_new(item, "index",
                                json_integer(mode == SRV_DUP_INDEX ? 0
                                             : (json_int_t)k));
        }
        json_array_append_new(data, item);
    }
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    json_object_set(root, "model", model);
    body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return body;
}

/* Serves requests on one connection until the client closes it. */
static void *conn_main(void *arg)
{
    conn_t *c = arg;
    srv_t *s = c->srv;
    char *buf = malloc(SRV_REQ_MAX + 1);
    size_t have = 0;

    for (;;) {
        char *end, *cl, *auth;
        size_t head_len, body_len = 0;
        json_t *req;
        srv_mode_t mode;
        int slow_ms, dim;

        buf[have] = '\0';
        while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
            ssize_t k = recv(c->fd, buf + have, SRV_REQ_MAX - have, 0);
            if (k <= 0) {
                goto out;
            }
            have += (size_t)k;
            buf[have] = '\0';
        }
        head_len = (size_t)(end + 4 - buf);
        cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl != NULL && cl < end) {
            body_len = strtoul(cl + 17, NULL, 10);
        }
        while (have < head_len + body_len) {
            ssize_t k = recv(c->fd, buf + have, SRV_REQ_MAX - have, 0);
            if (k <= 0) {
                goto out;
            }
            have += (size_t)k;
        }
        pthread_mutex_lock(&s->lock);
        s->requests++;
        s->auth[0] = '\0';
        auth = strcasestr(buf, "\r\nAuthorization: ");
        if (auth != NULL && auth < end) {
            size_t n = strcspn(auth + 17, "\r");
            snprintf(s->auth, sizeof(s->auth), "%.*s", (int)n, auth + 17);
        }
        mode = s->mode;
        slow_ms = s->slow_ms;
        dim = s->dim;
        pthread_mutex_unlock(&s->lock);

        req = json_loadb(buf + head_len, body_len, 0, NULL);
        if (mode == SRV_SLOW) {
            usleep((useconds_t)slow_ms * 1000);
        }
        if (req == NULL || !json_is_array(json_object_get(req, "input"))) {
            respond(c->fd, 400, "{\"error\":\"bad request\"}");
        }
        else if (mode == SRV_500) {
            respond(c->fd, 500, "{\"error\":{\"message\":\"key sk-secret\"}}");
        }
        else if (mode == SRV_GARBAGE) {
            respond(c->fd, 200, "this is not json");
        }
        else {
            json_t *input = json_object_get(req, "input");
            char *body = answer_for(mode, dim, input,
                                    json_object_get(req, "model"));
            pthread_mutex_lock(&s->lock);
            if ((int)json_array_size(input) > s->max_inputs) {
                s->max_inputs = (int)json_array_size(input);
            }
            snprintf(s->model, sizeof(s->model), "%s",
                     json_string_value(json_object_get(req, "model")));
            pthread_mutex_unlock(&s->lock);
            respond(c->fd, 200, body);
            free(body);
        }
        json_decref(req);
        memmove(buf, buf + head_len + body_len, have - head_len - body_len);
        have -= head_len + body_len;
    }
out:
    close(c->fd);
    free(buf);
    pthread_mutex_lock(&s->lock);
    s->conns_open--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    srv_t *s = arg;

    for (;;) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        pthread_t t;
        conn_t *c;
        int fd;

        if (poll(&p, 1, 50) <= 0) {
            pthread_mutex_lock(&s->lock);
            if (s->stopping) {
                pthread_mutex_unlock(&s->lock);
                return NULL;
            }
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        c = malloc(sizeof(*c));
        c->srv = s;
        c->fd = fd;
        pthread_mutex_lock(&s->lock);
        s->conns_open++;
        s->conns_total++;
        pthread_mutex_unlock(&s->lock);
        pthread_create(&t, NULL, conn_main, c);
        pthread_detach(t);
    }
}

static int srv_start(void **state)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int one = 1;

    (void)state;
    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.lock, NULL);
    pthread_cond_init(&srv.cond, NULL);
    srv.dim = 8;
    srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) != 0
        || listen(srv.lfd, 16) != 0
        || getsockname(srv.lfd, (struct sockaddr *)&a, &al) != 0) {
        return -1;
    }
    srv.port = ntohs(a.sin_port);
    return pthread_create(&srv.accept_thread, NULL, accept_main, &srv);
}

/* Called after every embedder is freed, so connections are closing. */
static int srv_stop(void **state)
{
    (void)state;
    pthread_mutex_lock(&srv.lock);
    srv.stopping = 1;
    pthread_mutex_unlock(&srv.lock);
    pthread_join(srv.accept_thread, NULL);
    close(srv.lfd);
    pthread_mutex_lock(&srv.lock);
    while (srv.conns_open > 0) {
        pthread_cond_wait(&srv.cond, &srv.lock);
    }
    pthread_mutex_unlock(&srv.lock);
    return 0;
}

static void srv_set(srv_mode_t mode, int dim)
{
    pthread_mutex_lock(&srv.lock);
    srv.mode = mode;
    srv.dim = dim;
    srv.requests = 0;
    srv.max_inputs = 0;
    srv.conns_total = 0;
    pthread_mutex_unlock(&srv.lock);
}

static void srv_url(char *buf, size_t n)
{
    snprintf(buf, n, "http://127.0.0.1:%d/v1/embeddings", srv.port);
}

/* ---- HTTP embedder ---------------------------------------------------- */

static void test_http_create_errors(void **state)
{
    char err[256];

    (void)state;
    assert_null(cs_embed_http_create("ftp://x/v1/embeddings", "m", NULL, 0,
                                     0, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "embedder http: the URL must be"));
    assert_null(cs_embed_http_create("http:///v1", "m", NULL, 0, 0, 0, err,
                                     sizeof(err)));
    assert_null(cs_embed_http_create("http://h/v1", "", NULL, 0, 0, 0, err,
                                     sizeof(err)));
    assert_string_equal(err, "embedder http://h/v1: a model name is "
                        "required");
    assert_null(cs_embed_http_create("http://h/v1", "m", NULL, 9000, 0, 0,
                                     err, sizeof(err)));
    assert_null(cs_embed_http_create("http://h/v1", "m", NULL, 8, 0, 5000,
                                     err, sizeof(err)));
    assert_non_null(strstr(err, "batch_max at most 2048"));
}

static void test_http_embed(void **state)
{
    const char *texts[10] = {
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta",
        "theta", "iota", "\xff invalid utf-8 \xfe"
    };
    size_t lens[10];
    float out[10 * 8], want[8];
    char url[128], err[256];
    cs_embedder_t *e;
    int i, j;

    (void)state;
    srv_set(SRV_OK, 8);
    srv_url(url, sizeof(url));
    e = cs_embed_http_create(url, "test-model", "sk-test-key", 8, 2000, 4,
                             err, sizeof(err));
    assert_non_null(e);
    assert_string_equal(cs_embed_name(e), "http");
    assert_int_equal(cs_embed_dim(e), 8);
    assert_string_equal(cs_embed_version(e), "http-1:model=test-model:dim=8");
    for (i = 0; i < 10; i++) {
        lens[i] = strlen(texts[i]);
    }
    assert_int_equal(cs_embed(e, texts, lens, 10, out, err, sizeof(err)),
                     CS_OK);
    for (i = 0; i < 9; i++) {
        expected_vector(texts[i], 8, want);
        for (j = 0; j < 8; j++) {
            assert_true(fabsf(out[i * 8 + j] - want[j]) < 1e-6f);
        }
    }
    /* the invalid bytes went out as U+FFFD */
    expected_vector("\xef\xbf\xbd invalid utf-8 \xef\xbf\xbd", 8, want);
    for (j = 0; j < 8; j++) {
        assert_true(fabsf(out[9 * 8 + j] - want[j]) < 1e-6f);
    }
    /* 10 inputs, 4 per request: 3 requests over one kept-alive connection */
    pthread_mutex_lock(&srv.lock);
    assert_int_equal(srv.requests, 3);
    assert_int_equal(srv.max_inputs, 4);
    assert_int_equal(srv.conns_total, 1);
    assert_string_equal(srv.auth, "Bearer sk-test-key");
    assert_string_equal(srv.model, "test-model");
    pthread_mutex_unlock(&srv.lock);
    /* again: still the same connection */
    assert_int_equal(cs_embed(e, texts, lens, 2, out, err, sizeof(err)),
                     CS_OK);
    pthread_mutex_lock(&srv.lock);
    assert_int_equal(srv.conns_total, 1);
    pthread_mutex_unlock(&srv.lock);
    cs_embed_free(e);
}

static void test_http_learn_dim_and_order(void **state)
{
    const char *texts[3] = {"one", "two", "three"};
    size_t lens[3] = {3, 3, 5};
    float out[3 * 16], want[16];
    char url[128], err[256];
    cs_embedder_t *e;
    int i, j;

    (void)state;
    srv_set(SRV_SHUFFLED, 16);
    srv_url(url, sizeof(url));
    e = cs_embed_http_create(url, "m", NULL, 0, 2000, 0, err, sizeof(err));
    assert_non_null(e);
    assert_int_equal(cs_embed_dim(e), 0);
    assert_string_equal(cs_embed_version(e), "http-1:model=m:dim=?");
    /* no dimension yet: cs_embed refuses, the probe learns it */
    assert_int_equal(cs_embed(e, texts, lens, 3, out, err, sizeof(err)),
                     CS_ERR);
    assert_non_null(strstr(err, "dimension not known yet"));
    assert_int_equal(cs_embed_probe(e, err, sizeof(err)), CS_OK);
    assert_int_equal(cs_embed_dim(e), 16);
    assert_string_equal(cs_embed_version(e), "http-1:model=m:dim=16");
    pthread_mutex_lock(&srv.lock);
    assert_string_equal(srv.auth, "");
    pthread_mutex_unlock(&srv.lock);
    /* reversed items are put back in input order by their "index" */
    assert_int_equal(cs_embed(e, texts, lens, 3, out, err, sizeof(err)),
                     CS_OK);
    for (i = 0; i < 3; i++) {
        expected_vector(texts[i], 16, want);
        for (j = 0; j < 16; j++) {
            assert_true(fabsf(out[i * 16 + j] - want[j]) < 1e-6f);
        }
        assert_true(fabs(dot(out + i * 16, out + i * 16, 16) - 1.0) < 1e-5);
    }
    /* without "index", position decides */
    srv_set(SRV_NO_INDEX, 16);
    assert_int_equal(cs_embed(e, texts, lens, 3, out, err, sizeof(err)),
                     CS_OK);
    expected_vector("three", 16, want);
    assert_true(fabsf(out[2 * 16] - want[0]) < 1e-6f);
    /* a server that changes its dimension later is refused */
    srv_set(SRV_OK, 12);
    assert_int_equal(cs_embed(e, texts, lens, 3, out, err, sizeof(err)),
                     CS_ERR);
    assert_non_null(strstr(err, ": malformed answer (data[0].embedding has "
                            "12 numbers, expected 16)"));
    cs_embed_free(e);
}

static void test_http_errors(void **state)
{
    static const struct {
        srv_mode_t mode;
        const char *want;
    } t[] = {
        {SRV_500, ": HTTP 500"},
        {SRV_GARBAGE, ": malformed answer (not JSON)"},
        {SRV_WRONG_DIM, ": malformed answer (data[1].embedding has 7 "
                        "numbers, expected 8)"},
        {SRV_DUP_INDEX, ": malformed answer (data[1].index is not a new "
                        "index below 2)"},
        {SRV_TOO_FEW, ": malformed answer (1 embeddings for 2 inputs)"},
        {SRV_ZERO, ": malformed answer (data[0].embedding has norm 0)"},
    };
    const char *texts[2] = {"a", "b"};
    size_t lens[2] = {1, 1};
    float out[2 * 8];
    char url[128], err[256], prefix[160];
    cs_embedder_t *e;
    size_t i;

    (void)state;
    srv_url(url, sizeof(url));
    snprintf(prefix, sizeof(prefix), "embedder %s", url);
    e = cs_embed_http_create(url, "m", "sk-secret", 8, 2000, 8, err,
                             sizeof(err));
    assert_non_null(e);
    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        srv_set(t[i].mode, 8);
        assert_int_equal(cs_embed(e, texts, lens, 2, out, err, sizeof(err)),
                         CS_ERR);
        printf("    %s\n", err);
        assert_true(strncmp(err, prefix, strlen(prefix)) == 0);
        assert_string_equal(err + strlen(prefix), t[i].want);
        /* never the key, even when the server's body holds it */
        assert_null(strstr(err, "sk-secret"));
    }
    /* it recovers when the server does */
    srv_set(SRV_OK, 8);
    assert_int_equal(cs_embed(e, texts, lens, 2, out, err, sizeof(err)),
                     CS_OK);
    /* a short error buffer is still terminated */
    srv_set(SRV_500, 8);
    assert_int_equal(cs_embed(e, texts, lens, 2, out, err, 12), CS_ERR);
    assert_string_equal(err, "embedder ht");
    cs_embed_free(e);
}

static void test_http_timeout(void **state)
{
    const char *text = "slow";
    size_t len = 4;
    float out[8];
    char url[128], err[256], want[200];
    cs_embedder_t *e;

    (void)state;
    srv_set(SRV_SLOW, 8);
    pthread_mutex_lock(&srv.lock);
    srv.slow_ms = 600;
    pthread_mutex_unlock(&srv.lock);
    srv_url(url, sizeof(url));
    e = cs_embed_http_create(url, "m", NULL, 8, 200, 0, err, sizeof(err));
    assert_non_null(e);
    assert_int_equal(cs_embed(e, &text, &len, 1, out, err, sizeof(err)),
                     CS_ERR);
    printf("    %s\n", err);
    snprintf(want, sizeof(want), "embedder %s: timeout after 200 ms", url);
    assert_string_equal(err, want);
    srv_set(SRV_OK, 8);
    assert_int_equal(cs_embed(e, &text, &len, 1, out, err, sizeof(err)),
                     CS_OK);
    cs_embed_free(e);
}

static void test_http_refused(void **state)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    const char *text = "x";
    size_t len = 1;
    float out[8];
    char url[160], err[256], want[220];
    cs_embedder_t *e;

    (void)state;
    /* a port that was free a moment ago and has no listener */
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    close(fd);
    /* user info and query string stay out of messages */
    snprintf(url, sizeof(url), "http://user:pw@127.0.0.1:%d/v1/embeddings"
             "?key=abc", port);
    e = cs_embed_http_create(url, "m", NULL, 8, 1000, 0, err, sizeof(err));
    assert_non_null(e);
    assert_int_equal(cs_embed(e, &text, &len, 1, out, err, sizeof(err)),
                     CS_ERR);
    printf("    %s\n", err);
    snprintf(want, sizeof(want), "embedder http://127.0.0.1:%d/v1/"
             "embeddings: connection refused", port);
    assert_string_equal(err, want);
    assert_int_equal(cs_embed_probe(e, err, sizeof(err)), CS_OK);
    cs_embed_free(e);
}

typedef struct {
    cs_embedder_t *e;
    int failures;
} http_job_t;

static void *thread_http(void *arg)
{
    http_job_t *j = arg;
    const char *texts[3] = {"concurrent", "requests", "here"};
    size_t lens[3] = {10, 8, 4};
    float out[3 * 8], want[8];
    char err[256];
    int k, i;

    for (k = 0; k < 25; k++) {
        if (cs_embed(j->e, texts, lens, 3, out, err, sizeof(err)) != CS_OK) {
            j->failures++;
            continue;
        }
        for (i = 0; i < 3; i++) {
            expected_vector(texts[i], 8, want);
            if (fabsf(out[i * 8] - want[0]) > 1e-6f) {
                j->failures++;
            }
        }
    }
    return NULL;
}

static void test_http_threads(void **state)
{
    http_job_t jobs[TEST_THREADS];
    pthread_t th[TEST_THREADS];
    char url[128], err[256];
    cs_embedder_t *e;
    int i;

    (void)state;
    srv_set(SRV_OK, 8);
    srv_url(url, sizeof(url));
    e = cs_embed_http_create(url, "m", NULL, 8, 2000, 0, err, sizeof(err));
    assert_non_null(e);
    for (i = 0; i < TEST_THREADS; i++) {
        jobs[i].e = e;
        jobs[i].failures = 0;
        pthread_create(&th[i], NULL, thread_http, &jobs[i]);
    }
    for (i = 0; i < TEST_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].failures, 0);
    }
    /* connections were reused: at most one per thread */
    pthread_mutex_lock(&srv.lock);
    assert_int_equal(srv.requests, TEST_THREADS * 25);
    assert_true(srv.conns_total <= TEST_THREADS);
    pthread_mutex_unlock(&srv.lock);
    cs_embed_free(e);
}

int main(void)
{
    const struct CMUnitTest builtin[] = {
        cmocka_unit_test(test_builtin_create),
        cmocka_unit_test(test_builtin_norm_and_determinism),
        cmocka_unit_test(test_builtin_batch),
        cmocka_unit_test(test_builtin_similarity),
        cmocka_unit_test(test_builtin_threads),
        cmocka_unit_test(test_builtin_speed),
    };
    const struct CMUnitTest http[] = {
        cmocka_unit_test(test_http_create_errors),
        cmocka_unit_test(test_http_embed),
        cmocka_unit_test(test_http_learn_dim_and_order),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_http_timeout),
        cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_threads),
    };
    int failed;

    failed = cmocka_run_group_tests_name("builtin", builtin, NULL, NULL);
    failed += cmocka_run_group_tests_name("http", http, srv_start, srv_stop);
    return failed;
}
