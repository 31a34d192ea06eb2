/* ark-cached: the HTTP embedder (any OpenAI-compatible /v1/embeddings).
 *
 * cs_embed splits its texts into batches of at most batch_max; each batch
 * is one POST {url} with {"model": model, "input": [text, ...]} (invalid
 * UTF-8 bytes become U+FFFD, JSON cannot carry them) and, when a key was
 * given, "Authorization: Bearer <key>". The answer must be a JSON object
 * whose "data" array holds one {"embedding": [numbers], "index": i} per
 * input, all of one dimension (the configured one, or the one learnt from
 * the first answer); items may come in any order, "index" places them
 * (without "index", position does). Each vector is L2-normalised here,
 * since not every server does it.
 *
 * Connections: libcurl easy handles sit in a small mutex-protected pool;
 * each keeps its connection alive, so back-to-back calls reuse it. libcurl
 * errors are translated in one place (fail_from_curl) into the messages
 * promised by cs_embed.h. An error answer's body is never quoted: some
 * servers echo part of the API key in it.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cs_embed_impl.h"
#include "cs_utf8.h"

/* Idle libcurl handles kept (each with its kept-alive connection): the
 * daemon's embedding worker pool is about this size. */
#define HTTP_POOL_MAX 8

/* Connect timeout when the request timeout is larger: a local or LAN
 * embedding server answers a SYN in far less. */
#define HTTP_CONNECT_TIMEOUT_MAX_MS 2000

/* Bound on an answer: generous bytes of JSON per float ("-0.0123456789,"
 * is 14, pretty-printed servers add indentation) times the floats
 * expected, plus room for the envelope. */
#define HTTP_JSON_BYTES_PER_FLOAT 32
#define HTTP_ANSWER_SLACK (1024 * 1024)

/* The text cs_embed_probe embeds to learn the dimension. */
#define HTTP_PROBE_TEXT "ark-cached dimension probe"

/* Version of this client's handling of vectors (bump if it changes
 * them, e.g. a different normalisation). */
#define HTTP_SCHEME 1

typedef struct {
    cs_embedder_t base;
    char *url;                  /* as configured, for libcurl */
    char *url_shown;            /* without user info, query or fragment */
    char *model;
    struct curl_slist *headers; /* read-only once built: shared by handles */
    int timeout_ms;
    int batch_max;
    atomic_int dim;             /* 0 until known */
    char *version_unknown;      /* "...dim=?" */
    char *version;              /* final, set before dim is published */
    pthread_mutex_t lock;       /* protects idle, nidle and learning */
    CURL *idle[HTTP_POOL_MAX];
    int nidle;
} http_t;

/* Collects an answer body, refusing more than max bytes. */
typedef struct {
    cs_buf_t body;
    size_t max;
    int too_big;
} answer_t;

/* ---- small helpers ---------------------------------------------------- */

static char *str_dup(const char *s)
{
    return cs_strndup(s, strlen(s));
}

/* scheme://[user:pass@]host[:port][/path][?query][#frag] ->
 * scheme://host[:port][/path]; NULL when there is no host. */
static char *url_for_messages(const char *url)
{
    const char *p = strstr(url, "://"), *auth, *end, *at, *q, *path_end;
    cs_buf_t b;
    char *r;

    if (p == NULL) {
        return NULL;
    }
    auth = p + 3;
    end = auth + strcspn(auth, "/?#");
    at = NULL;
    for (q = auth; q < end; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    if (at != NULL) {
        auth = at + 1;
    }
    if (auth == end) {
        return NULL;
    }
    path_end = end + strcspn(end, "?#");
    cs_buf_init(&b);
    cs_buf_append(&b, url, (size_t)(p + 3 - url));
    cs_buf_append(&b, auth, (size_t)(path_end - auth));
    r = cs_strndup(b.data, b.len);
    cs_buf_free(&b);
    return r;
}

/* Copies len bytes of s into b, each invalid UTF-8 byte as U+FFFD. */
static void utf8_sanitize(cs_buf_t *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, start = 0;

    cs_buf_reset(b);
    while (i < len) {
        uint32_t cp;
        size_t k = cs_utf8_decode(u + i, len - i, &cp);
        if (k == 0) {
            cs_buf_append(b, s + start, i - start);
            cs_buf_append(b, "\xEF\xBF\xBD", 3);
            i++;
            start = i;
        }
        else {
            i += k;
        }
    }
    cs_buf_append(b, s + start, i - start);
}

/* ---- the handle pool -------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    answer_t *a = ctx;
    size_t n = size * nmemb;

    if (a->body.len + n > a->max) {
        a->too_big = 1;
        return 0;                       /* makes libcurl fail the transfer */
    }
    cs_buf_append(&a->body, data, n);
    return n;
}

static CURL *handle_get(http_t *h)
{
    CURL *c = NULL;
    long connect_ms = h->timeout_ms < HTTP_CONNECT_TIMEOUT_MAX_MS
                      ? h->timeout_ms : HTTP_CONNECT_TIMEOUT_MAX_MS;

    pthread_mutex_lock(&h->lock);
    if (h->nidle > 0) {
        c = h->idle[--h->nidle];
    }
    pthread_mutex_unlock(&h->lock);
    if (c != NULL) {
        return c;
    }
    c = curl_easy_init();
    if (c == NULL) {
        return NULL;
    }
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS,
                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return c;
}

/* Returns c to the pool; a handle whose transfer failed (no complete
 * answer) is dropped with its connection, which may be in any state. */
static void handle_put(http_t *h, CURL *c, int ok)
{
    if (ok) {
        pthread_mutex_lock(&h->lock);
        if (h->nidle < HTTP_POOL_MAX) {
            h->idle[h->nidle++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&h->lock);
    }
    if (c != NULL) {
        curl_easy_cleanup(c);
    }
}

/* ---- one request ------------------------------------------------------ */

/* The one translator of libcurl failures into our messages. */
static void fail_from_curl(const http_t *h, CURL *c, CURLcode cc,
                           const answer_t *a, char *err, size_t errlen)
{
    long oserr = 0;

    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
        if (oserr == 0 || oserr == ECONNREFUSED) {
            cs_embed_errf(err, errlen, "%s: connection refused",
                          h->url_shown);
        }
        else {
            cs_embed_errf(err, errlen, "%s: cannot connect (%s)",
                          h->url_shown, strerror((int)oserr));
        }
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        cs_embed_errf(err, errlen, "%s: cannot resolve host", h->url_shown);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        cs_embed_errf(err, errlen, "%s: timeout after %d ms", h->url_shown,
                      h->timeout_ms);
        break;
    case CURLE_WRITE_ERROR:
        if (a->too_big) {
            cs_embed_errf(err, errlen, "%s: malformed answer (larger than "
                          "%zu bytes)", h->url_shown, a->max);
            break;
        }
        /* fall through */
    default:
        cs_embed_errf(err, errlen, "%s: transfer failed (%s)", h->url_shown,
                      curl_easy_strerror(cc));
        break;
    }
}

/* POSTs one batch; on CS_OK, a->body holds a 2xx answer's body. */
static int post_batch(http_t *h, const char *const *texts,
                      const size_t *lens, int n, answer_t *a, char *err,
                      size_t errlen)
{
    json_t *req = json_object(), *input = json_array();
    cs_buf_t clean;
    char *body = NULL;
    CURL *c = NULL;
    CURLcode cc = CURLE_FAILED_INIT;
    long status = 0;
    int i, rv = CS_ERR, dim = atomic_load(&h->dim);

    cs_buf_init(&clean);
    for (i = 0; i < n; i++) {
        utf8_sanitize(&clean, texts[i], lens[i]);
        json_array_append_new(input, json_stringn(clean.len ? clean.data
                                                  : "", clean.len));
    }
    json_object_set_new(req, "model", json_string(h->model));
    json_object_set_new(req, "input", input);
    body = json_dumps(req, JSON_COMPACT);
    if (body == NULL) {
        cs_embed_errf(err, errlen, "%s: cannot build the request",
                      h->url_shown);
        goto done;
    }
    c = handle_get(h);
    if (c == NULL) {
        cs_embed_errf(err, errlen, "%s: libcurl cannot create a handle",
                      h->url_shown);
        goto done;
    }
    a->max = (size_t)HTTP_JSON_BYTES_PER_FLOAT * (size_t)n
             * (size_t)(dim > 0 ? dim : CS_EMBED_HTTP_DIM_MAX)
             + HTTP_ANSWER_SLACK;
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    cc = curl_easy_perform(c);
    /* the body is freed below: libcurl must not keep a pointer to it */
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    if (cc != CURLE_OK) {
        fail_from_curl(h, c, cc, a, err, errlen);
        goto done;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        cs_embed_errf(err, errlen, "%s: HTTP %ld", h->url_shown, status);
        goto done;
    }
    rv = CS_OK;

done:
    if (c != NULL) {
        handle_put(h, c, cc == CURLE_OK);   /* an HTTP 500 leaves a good
                                             * connection */
    }
    free(body);
    json_decref(req);
    cs_buf_free(&clean);
    return rv;
}

/* ---- the answer ------------------------------------------------------- */

/* Publishes a learnt dimension (first answer wins; a later different one
 * is an error). Returns CS_OK when dim is the embedder's dimension. */
static int learn_dim(http_t *h, int dim)
{
    int rv = CS_OK;
    size_t n;

    pthread_mutex_lock(&h->lock);
    if (atomic_load(&h->dim) == 0) {
        n = strlen(h->model) + 64;
        h->version = cs_malloc(n);
        snprintf(h->version, n, "http-%d:model=%s:dim=%d", HTTP_SCHEME,
                 h->model, dim);
        atomic_store(&h->dim, dim);
    }
    else if (atomic_load(&h->dim) != dim) {
        rv = CS_ERR;
    }
    pthread_mutex_unlock(&h->lock);
    return rv;
}

/* Checks the answer of n inputs and writes the normalised vectors to out
 * (n * dim floats), or only learns the dimension when out is NULL. */
static int parse_answer(http_t *h, const cs_buf_t *body, int n, float *out,
                        char *err, size_t errlen)
{
    json_t *root, *data;
    json_error_t jerr;
    unsigned char *seen = NULL;
    int dim = atomic_load(&h->dim), rv = CS_ERR, i;
    char why[128];

    root = json_loadb(body->len ? body->data : "", body->len, 0, &jerr);
    data = json_is_object(root) ? json_object_get(root, "data") : NULL;
    if (!json_is_array(data)) {
        snprintf(why, sizeof(why), "%s", root == NULL ? "not JSON"
                 : "no \"data\" array");
        goto bad;
    }
    if ((int)json_array_size(data) != n) {
        snprintf(why, sizeof(why), "%zu embeddings for %d inputs",
                 json_array_size(data), n);
        goto bad;
    }
    seen = cs_calloc((size_t)n, 1);
    for (i = 0; i < n; i++) {
        json_t *item = json_array_get(data, (size_t)i);
        json_t *emb = json_object_get(item, "embedding");
        json_t *jidx = json_object_get(item, "index");
        json_int_t idx = i;
        size_t d, j;

        if (!json_is_array(emb)) {
            snprintf(why, sizeof(why), "data[%d] has no \"embedding\" "
                     "array", i);
            goto bad;
        }
        if (jidx != NULL) {
            if (!json_is_integer(jidx) || json_integer_value(jidx) < 0
                || json_integer_value(jidx) >= n
                || seen[json_integer_value(jidx)]) {
                snprintf(why, sizeof(why), "data[%d].index is not a new "
                         "index below %d", i, n);
                goto bad;
            }
            idx = json_integer_value(jidx);
        }
        seen[idx] = 1;
        d = json_array_size(emb);
        if (dim == 0) {
            if (d == 0 || d > CS_EMBED_HTTP_DIM_MAX) {
                snprintf(why, sizeof(why), "dimension %zu, not 1..%d", d,
                         CS_EMBED_HTTP_DIM_MAX);
                goto bad;
            }
            dim = (int)d;
        }
        if (d != (size_t)dim) {
            snprintf(why, sizeof(why), "data[%d].embedding has %zu numbers, "
                     "expected %d", i, d, dim);
            goto bad;
        }
        for (j = 0; j < d; j++) {
            json_t *x = json_array_get(emb, j);
            double v = json_number_value(x);
            if (!json_is_number(x) || !isfinite(v)) {
                snprintf(why, sizeof(why), "data[%d].embedding[%zu] is not "
                         "a finite number", i, j);
                goto bad;
            }
            if (out != NULL) {
                out[(size_t)idx * d + j] = (float)v;
            }
        }
        if (out != NULL
            && cs_embed_l2_normalize(out + (size_t)idx * d, dim) != CS_OK) {
            snprintf(why, sizeof(why), "data[%d].embedding has norm 0", i);
            goto bad;
        }
    }
    if (learn_dim(h, dim) != CS_OK) {
        snprintf(why, sizeof(why), "dimension %d, expected %d", dim,
                 atomic_load(&h->dim));
        goto bad;
    }
    rv = CS_OK;
    goto done;

bad:
    cs_embed_errf(err, errlen, "%s: malformed answer (%s)", h->url_shown,
                  why);
done:
    cs_free(seen);
    json_decref(root);
    return rv;
}

/* ---- the ops ---------------------------------------------------------- */

static int http_run(http_t *h, const char *const *texts, const size_t *lens,
                    int n, float *out, char *err, size_t errlen)
{
    answer_t a;
    int i, rv = CS_OK;

    cs_buf_init(&a.body);
    for (i = 0; i < n && rv == CS_OK; i += h->batch_max) {
        int m = n - i < h->batch_max ? n - i : h->batch_max;
        int dim = atomic_load(&h->dim);

        cs_buf_reset(&a.body);
        a.too_big = 0;
        rv = post_batch(h, texts + i, lens + i, m, &a, err, errlen);
        if (rv == CS_OK) {
            rv = parse_answer(h, &a.body, m,
                              out ? out + (size_t)i * (size_t)dim : NULL,
                              err, errlen);
        }
    }
    cs_buf_free(&a.body);
    return rv;
}

static int http_embed(cs_embedder_t *e, const char *const *texts,
                      const size_t *lens, int n, float *out, char *err,
                      size_t errlen)
{
    return http_run((http_t *)e, texts, lens, n, out, err, errlen);
}

static int http_probe(cs_embedder_t *e, char *err, size_t errlen)
{
    const char *text = HTTP_PROBE_TEXT;
    size_t len = strlen(text);

    return http_run((http_t *)e, &text, &len, 1, NULL, err, errlen);
}

static const char *http_version(const cs_embedder_t *e)
{
    const http_t *h = (const http_t *)e;

    /* dim is published after version is written (seq_cst atomics) */
    return atomic_load(&((http_t *)h)->dim) > 0 ? h->version
                                                : h->version_unknown;
}

static int http_dim(const cs_embedder_t *e)
{
    return atomic_load(&((http_t *)e)->dim);
}

static void http_destroy(cs_embedder_t *e)
{
    http_t *h = (http_t *)e;
    int i;

    for (i = 0; i < h->nidle; i++) {
        curl_easy_cleanup(h->idle[i]);
    }
    curl_slist_free_all(h->headers);
    pthread_mutex_destroy(&h->lock);
    cs_free(h->url);
    cs_free(h->url_shown);
    cs_free(h->model);
    cs_free(h->version);
    cs_free(h->version_unknown);
    cs_free(h);
    curl_global_cleanup();
}

/* Appends one header line to h->headers (libcurl copies it). */
static int headers_add(http_t *h, const char *line)
{
    struct curl_slist *l = curl_slist_append(h->headers, line);

    if (l == NULL) {
        return CS_ERR;
    }
    h->headers = l;
    return CS_OK;
}

static const cs_embed_ops_t http_ops = {
    "http", http_embed, http_probe, http_version, http_dim, http_destroy
};

cs_embedder_t *cs_embed_http_create(const char *url, const char *model,
                                    const char *api_key, int dim,
                                    int timeout_ms, int batch_max,
                                    char *err, size_t errlen)
{
    http_t *h;
    char *shown;
    cs_buf_t b;
    size_t n;

    if (errlen > 0) {
        err[0] = '\0';
    }
    if (url == NULL || (strncmp(url, "http://", 7) != 0
                        && strncmp(url, "https://", 8) != 0)
        || (shown = url_for_messages(url)) == NULL) {
        cs_embed_errf(err, errlen, "http: the URL must be http://host/... "
                      "or https://host/...");
        return NULL;
    }
    if (model == NULL || model[0] == '\0') {
        cs_embed_errf(err, errlen, "%s: a model name is required", shown);
        cs_free(shown);
        return NULL;
    }
    if (dim < 0 || dim > CS_EMBED_HTTP_DIM_MAX
        || batch_max > CS_EMBED_HTTP_BATCH_MAX) {
        cs_embed_errf(err, errlen, "%s: dim must be 0..%d and batch_max "
                      "at most %d", shown, CS_EMBED_HTTP_DIM_MAX,
                      CS_EMBED_HTTP_BATCH_MAX);
        cs_free(shown);
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cs_embed_errf(err, errlen, "%s: libcurl cannot initialise", shown);
        cs_free(shown);
        return NULL;
    }
    h = cs_calloc(1, sizeof(*h));
    h->base.ops = &http_ops;
    h->url = str_dup(url);
    h->url_shown = shown;
    h->model = str_dup(model);
    h->timeout_ms = timeout_ms > 0 ? timeout_ms
                                   : CS_EMBED_HTTP_TIMEOUT_DEFAULT_MS;
    h->batch_max = batch_max > 0 ? batch_max : CS_EMBED_HTTP_BATCH_DEFAULT;
    pthread_mutex_init(&h->lock, NULL);
    cs_buf_init(&b);
    if (api_key != NULL && api_key[0] != '\0') {
        cs_buf_printf(&b, "Authorization: Bearer %s", api_key);
    }
    if (headers_add(h, "Content-Type: application/json") != CS_OK
        || headers_add(h, "Accept: application/json") != CS_OK
        || headers_add(h, "Expect:") != CS_OK
        || (b.len > 0 && headers_add(h, b.data) != CS_OK)) {
        cs_embed_errf(err, errlen, "%s: out of memory for headers", shown);
        memset(b.data, 0, b.len);
        cs_buf_free(&b);
        http_destroy(&h->base);
        return NULL;
    }
    if (b.len > 0) {
        memset(b.data, 0, b.len);       /* libcurl holds its own copy */
    }
    cs_buf_free(&b);
    n = strlen(model) + 64;
    h->version_unknown = cs_malloc(n);
    snprintf(h->version_unknown, n, "http-%d:model=%s:dim=?", HTTP_SCHEME,
             model);
    if (dim > 0) {
        learn_dim(h, dim);
    }
    return &h->base;
}
