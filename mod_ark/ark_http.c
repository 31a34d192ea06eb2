/* Upstream HTTP client: libcurl wrapped once. See ark_http.h.
 *
 * Data flow of one transfer: ark_http_perform takes an idle easy handle
 * (or makes one attached to the share), sets the request, and runs
 * curl_easy_perform. curl calls write_cb with body bytes; the first call
 * reads the final status and content type from the handle and every call
 * forwards to the caller's on_data. Afterwards the handle is pushed back
 * onto the idle stack still configured (handle_make sets the options all
 * transfers share once, transfer_setup every per-transfer option each
 * time, so no curl_easy_reset and ~10 fewer setopt calls per request);
 * its connection stays in the shared cache for the next request of any
 * thread.
 *
 * Plain http:// transfers of ark_http_perform go to the native client
 * (ark_http_native.c) unless ark_http_set_native turned it off; https://
 * ones, and races, always run through libcurl.
 */
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>

#include "ark_http.h"
#include "ark_http_native.h"

struct ark_http_t {
    CURLSH *share;
    apr_thread_mutex_t *locks[CURL_LOCK_DATA_LAST];
    apr_thread_mutex_t *idle_lock;
    CURL **idle;
    int n_idle;
    int max_idle;
    const char *ca_file;        /* ArkCACertificateFile, or NULL */
    ark_native_t *native;        /* http:// transfers, when use_native */
    int use_native;
};

typedef struct {
    const ark_http_req_t *req;
    CURL *curl;
    int status;
    const char *content_type;
    int started;
    apr_time_t t0;
    apr_time_t t_first;
    apr_status_t cb_status;
} transfer_t;

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud);

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access a,
                       void *userptr)
{
    ark_http_t *h = userptr;

    (void)c;
    (void)a;
    if (data < CURL_LOCK_DATA_LAST && h->locks[data]) {
        apr_thread_mutex_lock(h->locks[data]);
    }
}

static void share_unlock(CURL *c, curl_lock_data data, void *userptr)
{
    ark_http_t *h = userptr;

    (void)c;
    if (data < CURL_LOCK_DATA_LAST && h->locks[data]) {
        apr_thread_mutex_unlock(h->locks[data]);
    }
}

static apr_status_t http_cleanup(void *d)
{
    ark_http_t *h = d;
    int i;

    for (i = 0; i < h->n_idle; i++) {
        curl_easy_cleanup(h->idle[i]);
    }
    h->n_idle = 0;
    if (h->share) {
        curl_share_cleanup(h->share);
        h->share = NULL;
    }
    curl_global_cleanup();
    return APR_SUCCESS;
}

apr_status_t ark_http_create(ark_http_t **ph, int max_idle, apr_pool_t *p)
{
    ark_http_t *h;
    int i;

    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        return APR_EGENERAL;
    }
    h = apr_pcalloc(p, sizeof(*h));
    h->max_idle = max_idle > 0 ? max_idle : 64;
    h->idle = apr_pcalloc(p, sizeof(CURL *) * (apr_size_t)h->max_idle);
    apr_thread_mutex_create(&h->idle_lock, APR_THREAD_MUTEX_DEFAULT, p);
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        apr_thread_mutex_create(&h->locks[i], APR_THREAD_MUTEX_DEFAULT, p);
    }
    h->share = curl_share_init();
    if (!h->share) {
        curl_global_cleanup();
        return APR_EGENERAL;
    }
    curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    apr_pool_cleanup_register(p, h, http_cleanup, apr_pool_cleanup_null);
    if (ark_native_create(&h->native, h->max_idle, p) != APR_SUCCESS) {
        h->native = NULL;            /* libcurl does every transfer */
    }
    h->use_native = h->native != NULL;
    *ph = h;
    return APR_SUCCESS;
}

/* A new easy handle with the options every transfer shares; the
 * per-transfer ones are set by transfer_setup. */
static CURL *handle_make(ark_http_t *h)
{
    CURL *c = curl_easy_init();

    if (!c) {
        return NULL;
    }
    curl_easy_setopt(c, CURLOPT_SHARE, h->share);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_MAXCONNECTS, (long)h->max_idle);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    if (h->ca_file) {
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    }
    return c;
}

void ark_http_set_ca_file(ark_http_t *h, const char *ca_file)
{
    h->ca_file = ca_file;
}

static CURL *handle_get(ark_http_t *h)
{
    CURL *c = NULL;

    apr_thread_mutex_lock(h->idle_lock);
    if (h->n_idle > 0) {
        c = h->idle[--h->n_idle];
    }
    apr_thread_mutex_unlock(h->idle_lock);
    return c ? c : handle_make(h);
}

/* Returns c to the idle stack, still configured with the shared options
 * (no curl_easy_reset: every per-transfer option is set again by the
 * next transfer_setup). The pointers into the ended transfer (headers,
 * error buffer, callback data, body) are cleared so that no idle handle
 * refers to freed memory. */
static void handle_put(ark_http_t *h, CURL *c)
{
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(c, CURLOPT_PRIVATE, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    apr_thread_mutex_lock(h->idle_lock);
    if (h->n_idle < h->max_idle) {
        h->idle[h->n_idle++] = c;
        c = NULL;
    }
    apr_thread_mutex_unlock(h->idle_lock);
    if (c) {
        curl_easy_cleanup(c);
    }
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    transfer_t *t = ud;
    size_t n = size * nmemb;

    if (!t->started) {
        long code = 0;
        char *ct = NULL;

        t->started = 1;
        t->t_first = apr_time_now();
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(t->curl, CURLINFO_CONTENT_TYPE, &ct);
        t->status = (int)code;
        t->content_type = ct;
    }
    if (n == 0) {
        return 0;
    }
    t->cb_status = t->req->on_data(t->req->ctx, t->status, t->content_type,
                                   ptr, n);
    return t->cb_status == APR_SUCCESS ? n : 0;
}

static ark_http_fail_t fail_from_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_OK:
        return ARK_HTTP_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return ARK_HTTP_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return ARK_HTTP_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
        return ARK_HTTP_TLS;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return ARK_HTTP_IO;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return ARK_HTTP_ABORTED;
    default:
        return ARK_HTTP_OTHER;
    }
}

const char *ark_http_fail_name(ark_http_fail_t f)
{
    switch (f) {
    case ARK_HTTP_OK:      return "ok";
    case ARK_HTTP_CONNECT: return "connect";
    case ARK_HTTP_TLS:     return "tls";
    case ARK_HTTP_TIMEOUT: return "timeout";
    case ARK_HTTP_IO:      return "io";
    case ARK_HTTP_ABORTED: return "aborted";
    default:               return "other";
    }
}

void ark_http_set_native(ark_http_t *h, int on)
{
    h->use_native = on && h->native;
}

const char *ark_http_version(void)
{
    return curl_version();
}

/* Prepares handle c for req: headers (into *phdrs, freed by the
 * caller), timeouts, body and the write callback feeding t. */
static void transfer_setup(ark_http_t *h, CURL *c, const ark_http_req_t *req,
                           transfer_t *t, struct curl_slist **phdrs,
                           char *errbuf)
{
    struct curl_slist *hdrs = NULL;
    int i;

    memset(t, 0, sizeof(*t));
    t->req = req;
    t->curl = c;
    t->t0 = apr_time_now();
    errbuf[0] = '\0';
    for (i = 0; req->headers && i < req->headers->nelts; i++) {
        hdrs = curl_slist_append(hdrs,
                                 APR_ARRAY_IDX(req->headers, i, const char *));
    }
    /* no "Expect: 100-continue" round trip before the body */
    hdrs = curl_slist_append(hdrs, "Expect:");
    *phdrs = hdrs;

    /* the shared options were set once by handle_make; every option a
     * transfer may change is set here, each time (0: libcurl's default) */
    (void)h;
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(c, CURLOPT_PRIVATE, t);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout > 0
                     ? (long)apr_time_as_msec(req->connect_timeout) : 0L);
    if (req->timeout > 0) {
        long ms = (long)apr_time_as_msec(req->timeout);

        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    }
    else {
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 0L);
    }
    /* idle: less than 1 byte/s for that many seconds (libcurl averages
     * the speed over the last few seconds) ends as OPERATION_TIMEDOUT */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT,
                     req->idle_timeout > 0 ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req->idle_timeout > 0
                     ? (long)((req->idle_timeout + APR_USEC_PER_SEC - 1)
                              / APR_USEC_PER_SEC) : 0L);
    if (req->body) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)req->body_len);
    }
    else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
}

/* Fills *res once the transfer on c ended with cc. */
static void transfer_result(CURL *c, CURLcode cc, transfer_t *t,
                            const char *errbuf, ark_http_result_t *res,
                            apr_pool_t *p)
{
    long status = 0, nconn = 0;
    curl_off_t ra = 0;

    memset(res, 0, sizeof(*res));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nconn);
    if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK
        && ra > 0) {
        res->retry_after = apr_time_from_sec((apr_time_t)ra);
    }
    res->status = (int)status;
    res->new_connections = nconn;
    res->fail = fail_from_curl(cc);
    if (cc == CURLE_WRITE_ERROR && t->cb_status == APR_SUCCESS) {
        res->fail = ARK_HTTP_OTHER;   /* curl's own write failure */
    }
    if (cc != CURLE_OK) {
        res->detail = apr_pstrdup(p, errbuf[0] ? errbuf
                                               : curl_easy_strerror(cc));
    }
    res->total = apr_time_now() - t->t0;
    res->ttfb = t->started ? t->t_first - t->t0 : res->total;
    if (cc == CURLE_OK && !t->started) {
        /* a response without a body: tell the caller its status */
        t->cb_status = t->req->on_data(t->req->ctx, res->status, NULL, "", 0);
        if (t->cb_status != APR_SUCCESS) {
            res->fail = ARK_HTTP_ABORTED;
        }
    }
}

apr_status_t ark_http_perform(ark_http_t *h, const ark_http_req_t *req,
                              ark_http_result_t *res, apr_pool_t *p)
{
    transfer_t t;
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode cc;
    CURL *c;

    if (h->use_native) {
        apr_status_t rv = ark_native_perform(h->native, req, res, p);

        if (rv != APR_ENOTIMPL) {
            return rv;
        }
    }
    memset(res, 0, sizeof(*res));
    c = handle_get(h);
    if (!c) {
        res->fail = ARK_HTTP_OTHER;
        res->detail = "curl_easy_init failed";
        return APR_ENOMEM;
    }
    transfer_setup(h, c, req, &t, &hdrs, errbuf);
    cc = curl_easy_perform(c);
    transfer_result(c, cc, &t, errbuf, res, p);
    handle_put(h, c);
    curl_slist_free_all(hdrs);
    return res->fail == ARK_HTTP_OK ? APR_SUCCESS : APR_EGENERAL;
}

/* One transfer of a race. */
typedef struct {
    CURL *curl;
    transfer_t t;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    ark_http_result_t *res;
    int active;
} racer_t;

static apr_status_t racer_start(ark_http_t *h, CURLM *multi, racer_t *rc,
                                const ark_http_req_t *req,
                                ark_http_result_t *res)
{
    rc->res = res;
    memset(res, 0, sizeof(*res));
    rc->curl = handle_get(h);
    if (!rc->curl) {
        res->fail = ARK_HTTP_OTHER;
        res->detail = "curl_easy_init failed";
        return APR_ENOMEM;
    }
    transfer_setup(h, rc->curl, req, &rc->t, &rc->hdrs, rc->errbuf);
    if (curl_multi_add_handle(multi, rc->curl) != CURLM_OK) {
        res->fail = ARK_HTTP_OTHER;
        res->detail = "curl_multi_add_handle failed";
        handle_put(h, rc->curl);
        curl_slist_free_all(rc->hdrs);
        rc->curl = NULL;
        return APR_EGENERAL;
    }
    rc->active = 1;
    return APR_SUCCESS;
}

/* Ends a racer: collects its result and returns its handle. */
static void racer_end(ark_http_t *h, CURLM *multi, racer_t *rc, CURLcode cc,
                      apr_pool_t *p)
{
    curl_multi_remove_handle(multi, rc->curl);
    transfer_result(rc->curl, cc, &rc->t, rc->errbuf, rc->res, p);
    handle_put(h, rc->curl);
    curl_slist_free_all(rc->hdrs);
    rc->curl = NULL;
    rc->active = 0;
}

apr_status_t ark_http_race(ark_http_t *h, const ark_http_req_t *first,
                           ark_http_result_t *res1,
                           apr_interval_time_t hedge_after,
                           ark_http_hedge_fn *hedge, void *ctx,
                           int *hedged, apr_pool_t *p)
{
    ark_http_result_t *res2 = NULL;
    racer_t rc[2];
    apr_time_t hedge_at = apr_time_now() + hedge_after;
    int hedge_done = 0, i;
    CURLM *multi;

    *hedged = 0;
    memset(rc, 0, sizeof(rc));
    multi = curl_multi_init();
    if (!multi) {
        return ark_http_perform(h, first, res1, p);
    }
    if (racer_start(h, multi, &rc[0], first, res1) != APR_SUCCESS) {
        curl_multi_cleanup(multi);
        return APR_EGENERAL;
    }
    while (rc[0].active || rc[1].active) {
        CURLMsg *msg;
        int still, left, timeout_ms = 100;
        apr_time_t now = apr_time_now();

        if (!hedge_done && rc[0].active && !rc[0].t.started
            && now >= hedge_at) {
            const ark_http_req_t *second = hedge(ctx, &res2);

            hedge_done = 1;
            if (second && res2
                && racer_start(h, multi, &rc[1], second, res2)
                   == APR_SUCCESS) {
                *hedged = 1;
            }
        }
        curl_multi_perform(multi, &still);
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            for (i = 0; i < 2; i++) {
                if (rc[i].active && rc[i].curl == msg->easy_handle) {
                    racer_end(h, multi, &rc[i], msg->data.result, p);
                }
            }
        }
        for (i = 0; i < 2; i++) {
            if (rc[i].active && rc[i].t.req->cancel
                && *rc[i].t.req->cancel) {
                racer_end(h, multi, &rc[i], CURLE_ABORTED_BY_CALLBACK, p);
                rc[i].res->fail = ARK_HTTP_ABORTED;
            }
        }
        if (!rc[0].active && !rc[1].active) {
            break;
        }
        if (!hedge_done && rc[0].active) {
            apr_interval_time_t wait = hedge_at - apr_time_now();

            if (wait < apr_time_from_msec(timeout_ms)) {
                timeout_ms = wait > 0 ? (int)apr_time_as_msec(wait) + 1 : 0;
            }
        }
        curl_multi_poll(multi, NULL, 0, timeout_ms, NULL);
    }
    curl_multi_cleanup(multi);
    return res1->fail == ARK_HTTP_OK
           || (*hedged && res2->fail == ARK_HTTP_OK) ? APR_SUCCESS
                                                     : APR_EGENERAL;
}
