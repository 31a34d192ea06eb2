/* The ark-gateway handler: OpenAI-compatible endpoints served by httpd.
 *
 * Data flow of POST .../chat/completions:
 *   identify   the virtual key (Authorization: Bearer, x-api-key or
 *              api-key header) -> key record, or 401
 *   read       the body, bounded by ArkMaxBodySize (413)
 *   parse      and validate (400), resolve the model alias (404) and
 *              check the key may use it (403)
 *   call       build the provider's request and run it through the
 *              process's libcurl client; bytes are handed back as they
 *              arrive
 *   answer     streamed requests relay SSE event by event with a flush
 *              after each; other answers are validated, then sent whole
 *   log        one JSON access log line (log_transaction hook)
 *
 * Nothing is sent to the client before the upstream has answered with a
 * success status, so every failure before that point becomes a plain
 * OpenAI-format error. Once bytes have reached the client, a failure can
 * only end the stream: with an SSE error event and "data: [DONE]".
 * A client that goes away makes the next write fail, which aborts the
 * upstream transfer.
 */
#include <string.h>

#include <apr_buckets.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#include "ark_accesslog.h"
#include "ark_request.h"
#include "ark_sse.h"
#include "mod_ark.h"

APLOG_USE_MODULE(ark);

/* Per-request state, reachable from the log_transaction hook. */
typedef struct ark_rctx_t {
    ark_access_t log;
} ark_rctx_t;

/* One upstream call relaying to one client. */
typedef struct ark_call_t {
    request_rec *r;
    ark_rctx_t *rc;
    const ark_chat_req_t *req;
    const ark_provider_t *prov;
    int decided;              /* first upstream bytes seen */
    int streaming;            /* relaying SSE to the client */
    int client_gone;
    char *buf;                /* non-streamed body (answer or error) */
    apr_size_t len, cap;
    int too_large;
    ark_sse_parser_t *sse;
    ark_stream_t st;
    apr_status_t stream_rv;   /* translator failure, if any */
    apr_bucket_brigade *bb;
} ark_call_t;

/* ---------------------------------------------------------- replying */

static ark_server_conf_t *srv_conf(request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &ark_module);
}

static ark_rctx_t *rctx_get(request_rec *r)
{
    return ap_get_module_config(r->request_config, &ark_module);
}

/* The one function that sends an error to a client. */
static int ark_error_reply(request_rec *r, const ark_err_t *e)
{
    ark_rctx_t *rc = rctx_get(r);
    const char *body = ark_err_json(e, r->pool);

    r->status = e->status;
    if (e->retry_after > 0) {
        apr_table_setn(r->headers_out, "Retry-After",
                       apr_psprintf(r->pool, "%" APR_TIME_T_FMT,
                                    (e->retry_after + APR_USEC_PER_SEC - 1)
                                    / APR_USEC_PER_SEC));
    }
    if (rc) {
        rc->log.status = e->status;
        rc->log.error_code = e->code;
    }
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

static int reply_error(request_rec *r, int status, const char *code,
                       const char *param, const char *message)
{
    ark_err_t e;

    ark_err_set(&e, status, code, param, message);
    return ark_error_reply(r, &e);
}

static int reply_json(request_rec *r, const char *body, apr_size_t len)
{
    ark_rctx_t *rc = rctx_get(r);

    r->status = HTTP_OK;
    if (rc) {
        rc->log.status = HTTP_OK;
    }
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(body, (int)len, r);
    }
    return OK;
}

/* ------------------------------------------------------ authenticating */

/* The secret the client presented, or NULL. */
static const char *presented_key(request_rec *r, int *bad_scheme)
{
    const char *v = apr_table_get(r->headers_in, "Authorization");

    *bad_scheme = 0;
    if (v) {
        if (ap_cstr_casecmpn(v, "Bearer ", 7)) {
            *bad_scheme = 1;
            return NULL;
        }
        v += 7;
        while (*v == ' ') {
            v++;
        }
        return *v ? v : NULL;
    }
    v = apr_table_get(r->headers_in, "x-api-key");
    if (!v) {
        v = apr_table_get(r->headers_in, "api-key");
    }
    return v && *v ? v : NULL;
}

static int authenticate(request_rec *r, const ark_key_t **pkey)
{
    ark_server_conf_t *sc = srv_conf(r);
    ark_rctx_t *rc = rctx_get(r);
    const ark_key_t *key;
    const char *secret;
    int bad_scheme;

    secret = presented_key(r, &bad_scheme);
    if (!secret) {
        return reply_error(r, 401, "missing_api_key", NULL, bad_scheme
            ? "Unsupported authorization scheme: send your API key as "
              "'Authorization: Bearer <key>'."
            : "You didn't provide an API key. Send it as "
              "'Authorization: Bearer <key>'.");
    }
    if (!sc->keys) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ARKLOGNO(00010)
                      "no ArkKeysFile configured: refusing request");
        return reply_error(r, 401, "invalid_api_key", NULL,
                           "Incorrect API key provided.");
    }
    key = ark_keys_lookup(sc->keys, secret, strlen(secret));
    if (!key) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00011)
                      "unknown API key presented");
        return reply_error(r, 401, "invalid_api_key", NULL,
                           "Incorrect API key provided.");
    }
    rc->log.key_name = key->name;
    rc->log.tenant = key->tenant;
    if (!key->enabled) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00012)
                      "revoked API key '%s' presented", key->name);
        return reply_error(r, 401, "revoked_api_key", NULL,
                           "This API key has been revoked.");
    }
    *pkey = key;
    return DECLINED;   /* authenticated: go on */
}

/* ------------------------------------------------------------- body */

static int read_body(request_rec *r, const char **pbody, apr_size_t *plen)
{
    ark_dir_conf_t *dc = ap_get_module_config(r->per_dir_config,
                                              &ark_module);
    apr_size_t limit = (apr_size_t)dc->max_body, len = 0, cap;
    char *buf;
    int rv;

    rv = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (rv != OK) {
        return reply_error(r, rv == HTTP_REQUEST_ENTITY_TOO_LARGE ? 413 : 400,
                           "invalid_body", NULL,
                           "The request body could not be read.");
    }
    if (r->remaining > (apr_off_t)limit) {
        return reply_error(r, 413, "request_too_large", NULL,
            apr_psprintf(r->pool, "The request body is larger than the "
                         "%" APR_SIZE_T_FMT " bytes this endpoint accepts.",
                         limit));
    }
    cap = r->remaining > 0 ? (apr_size_t)r->remaining + 1 : 16384;
    buf = apr_palloc(r->pool, cap);
    if (ap_should_client_block(r)) {
        long n;

        for (;;) {
            if (len + 1 >= cap) {
                char *nb;

                if (len >= limit) {
                    return reply_error(r, 413, "request_too_large", NULL,
                        apr_psprintf(r->pool, "The request body is larger "
                                     "than the %" APR_SIZE_T_FMT " bytes "
                                     "this endpoint accepts.", limit));
                }
                cap = cap * 2 > limit + 2 ? limit + 2 : cap * 2;
                nb = apr_palloc(r->pool, cap);
                memcpy(nb, buf, len);
                buf = nb;
            }
            n = ap_get_client_block(r, buf + len, cap - len - 1);
            if (n == 0) {
                break;
            }
            if (n < 0) {
                r->connection->keepalive = AP_CONN_CLOSE;
                return reply_error(r, 400, "invalid_body", NULL,
                                   "The request body could not be read.");
            }
            len += (apr_size_t)n;
            if (len > limit) {
                return reply_error(r, 413, "request_too_large", NULL,
                    apr_psprintf(r->pool, "The request body is larger than "
                                 "the %" APR_SIZE_T_FMT " bytes this "
                                 "endpoint accepts.", limit));
            }
        }
    }
    buf[len] = '\0';
    *pbody = buf;
    *plen = len;
    return DECLINED;   /* read: go on */
}

/* ------------------------------------------------------- relaying */

static apr_status_t emit_to_client(void *ctx, const char *buf, apr_size_t len)
{
    ark_call_t *c = ctx;
    conn_rec *conn = c->r->connection;
    apr_status_t rv;

    if (c->client_gone) {
        return APR_ECONNABORTED;
    }
    APR_BRIGADE_INSERT_TAIL(c->bb, apr_bucket_transient_create(
                                buf, len, conn->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(c->bb, apr_bucket_flush_create(
                                conn->bucket_alloc));
    rv = ap_pass_brigade(c->r->output_filters, c->bb);
    apr_brigade_cleanup(c->bb);
    if (rv != APR_SUCCESS || conn->aborted) {
        c->client_gone = 1;
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, rv, c->r, "client went "
                      "away mid-stream: aborting the upstream transfer");
        return APR_ECONNABORTED;
    }
    return APR_SUCCESS;
}

static apr_status_t on_sse_event(void *ctx, const ark_sse_event_t *ev)
{
    ark_call_t *c = ctx;
    apr_status_t rv = c->prov->type->stream_event(&c->st, ev);

    apr_pool_clear(c->st.pool);
    if (rv != APR_SUCCESS && !c->client_gone) {
        c->stream_rv = rv;
    }
    return rv;
}

static void start_stream(ark_call_t *c)
{
    request_rec *r = c->r;

    c->streaming = 1;
    r->status = HTTP_OK;
    c->rc->log.status = HTTP_OK;
    ap_set_content_type(r, "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    c->sse = ark_sse_parser_make(r->pool, 0);
    apr_pool_create(&c->st.pool, r->pool);
    apr_pool_tag(c->st.pool, "ark_stream_event");
    c->st.client_wants_usage = c->req->include_usage;
    c->st.emit = emit_to_client;
    c->st.emit_ctx = c;
    ark_usage_clear(&c->st.usage);
}

static apr_status_t on_upstream_data(void *ctx, int status,
                                     const char *content_type,
                                     const char *buf, apr_size_t len)
{
    ark_call_t *c = ctx;

    if (!c->decided) {
        c->decided = 1;
        if (c->req->stream && status >= 200 && status < 300
            && content_type && ap_strcasestr(content_type,
                                             "text/event-stream")) {
            start_stream(c);
        }
    }
    if (c->streaming) {
        return ark_sse_feed(c->sse, buf, len, on_sse_event, c);
    }
    if (c->len + len > ARK_MAX_UPSTREAM_RESPONSE) {
        c->too_large = 1;
        return APR_ENOSPC;
    }
    if (c->len + len + 1 > c->cap) {
        apr_size_t cap = c->cap ? c->cap * 2 : 16384;
        char *nb;

        while (cap < c->len + len + 1) {
            cap *= 2;
        }
        nb = apr_palloc(c->r->pool, cap);
        if (c->len) {
            memcpy(nb, c->buf, c->len);
        }
        c->buf = nb;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, buf, len);
    c->len += len;
    c->buf[c->len] = '\0';
    return APR_SUCCESS;
}

/* Ends a stream that already reached the client after a failure: an
 * error event the OpenAI SDKs raise, then the terminator. */
static void stream_fail(ark_call_t *c, const char *code, const char *msg)
{
    ark_err_t e;
    const char *ev;

    c->rc->log.error_code = code;
    if (c->client_gone) {
        return;
    }
    ark_err_set(&e, 502, code, NULL, msg);
    ev = apr_pstrcat(c->r->pool, "data: ", ark_err_json(&e, c->r->pool),
                     "\n\n", NULL);
    if (emit_to_client(c, ev, strlen(ev)) == APR_SUCCESS) {
        emit_to_client(c, "data: [DONE]\n\n", 14);
    }
}

static void finish_stream(ark_call_t *c, const ark_http_result_t *res)
{
    request_rec *r = c->r;

    c->rc->log.usage = c->st.usage;
    if (c->client_gone) {
        c->rc->log.client_aborted = 1;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00020)
                      "client closed the stream; upstream %s aborted after "
                      "%" APR_SIZE_T_FMT " events", c->prov->name,
                      c->st.events);
        return;
    }
    if (c->stream_rv == APR_EGENERAL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00021)
                      "provider %s sent an error event mid-stream",
                      c->prov->name);
        stream_fail(c, "upstream_error", "The upstream provider failed "
                    "while streaming the answer.");
    }
    else if (c->stream_rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, c->stream_rv, r,
                      ARKLOGNO(00022) "provider %s sent a malformed stream "
                      "event", c->prov->name);
        stream_fail(c, "upstream_malformed", "The upstream provider sent a "
                    "malformed stream.");
    }
    else if (res->fail != ARK_HTTP_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00023)
                      "provider %s: stream interrupted (%s: %s)",
                      c->prov->name, ark_http_fail_name(res->fail),
                      res->detail ? res->detail : "");
        c->rc->log.upstream_fail = ark_http_fail_name(res->fail);
        stream_fail(c, res->fail == ARK_HTTP_TIMEOUT ? "upstream_timeout"
                                                     : "stream_interrupted",
                    "The upstream provider stopped before the answer was "
                    "complete.");
    }
    else if (!c->st.done) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00024)
                      "provider %s ended the stream without finishing it",
                      c->prov->name);
        stream_fail(c, "stream_interrupted", "The upstream provider "
                    "stopped before the answer was complete.");
    }
}

/* Turns a finished non-streamed call into the client's answer. */
static int finish_plain(ark_call_t *c, const ark_http_result_t *res)
{
    request_rec *r = c->r;
    const ark_provider_t *prov = c->prov;
    const char *body;
    apr_size_t blen;
    ark_err_t e;

    if (c->too_large) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00030)
                      "provider %s: answer larger than %d bytes",
                      prov->name, ARK_MAX_UPSTREAM_RESPONSE);
        return reply_error(r, 502, "upstream_malformed", NULL,
                           "The upstream provider's answer was too large.");
    }
    if (res->fail != ARK_HTTP_OK) {
        c->rc->log.upstream_fail = ark_http_fail_name(res->fail);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00031)
                      "provider %s: %s failure: %s", prov->name,
                      ark_http_fail_name(res->fail),
                      res->detail ? res->detail : "");
        if (res->fail == ARK_HTTP_TIMEOUT) {
            return reply_error(r, 504, "upstream_timeout", NULL,
                               "The upstream provider did not answer in "
                               "time.");
        }
        if (res->fail == ARK_HTTP_CONNECT || res->fail == ARK_HTTP_TLS) {
            return reply_error(r, 502, "upstream_unreachable", NULL,
                               "The upstream provider could not be "
                               "reached.");
        }
        return reply_error(r, 502, "upstream_connection_error", NULL,
                           "The connection to the upstream provider failed "
                           "before the answer was complete.");
    }
    if (res->status >= 200 && res->status < 300) {
        if (c->req->stream) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00032)
                          "provider %s answered a stream request without "
                          "an event stream", prov->name);
            return reply_error(r, 502, "upstream_malformed", NULL,
                               "The upstream provider sent a malformed "
                               "answer.");
        }
        if (prov->type->parse_response(&body, &blen, &c->rc->log.usage,
                                       c->buf ? c->buf : "", c->len,
                                       r->pool) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00033)
                          "provider %s sent a malformed answer (%"
                          APR_SIZE_T_FMT " bytes, HTTP %d)", prov->name,
                          c->len, res->status);
            return reply_error(r, 502, "upstream_malformed", NULL,
                               "The upstream provider sent a malformed "
                               "answer.");
        }
        return reply_json(r, body, blen);
    }

    prov->type->map_error(&e, prov, res->status, c->buf, c->len, r->pool);
    if (res->status == 401 || res->status == 403) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ARKLOGNO(00034)
                      "provider %s rejected the gateway's credentials "
                      "(HTTP %d): check its key= source (%s)", prov->name,
                      res->status, prov->defined_at);
    }
    else if (res->status == 404) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ARKLOGNO(00035)
                      "provider %s does not know upstream model or endpoint "
                      "(HTTP 404): check ArkModel %s", prov->name,
                      c->rc->log.model);
    }
    else {
        ap_log_rerror(APLOG_MARK, res->status >= 500 || res->status == 429
                      ? APLOG_WARNING : APLOG_DEBUG, 0, r, ARKLOGNO(00036)
                      "provider %s answered HTTP %d", prov->name,
                      res->status);
    }
    if (res->status == 429 && res->retry_after > 0) {
        e.retry_after = res->retry_after;
    }
    return ark_error_reply(r, &e);
}

/* -------------------------------------------------------- endpoints */

static int handle_chat(request_rec *r, ark_rctx_t *rc)
{
    ark_server_conf_t *sc = srv_conf(r);
    const ark_key_t *key = NULL;
    const ark_model_t *model;
    const ark_channel_t *ch;
    ark_chat_req_t req;
    ark_upstream_req_t up;
    ark_http_req_t hreq;
    ark_http_result_t res;
    ark_call_t call;
    const char *body = NULL;
    apr_size_t blen = 0;
    ark_err_t e;
    int rv;

    if (r->method_number != M_POST) {
        apr_table_setn(r->headers_out, "Allow", "POST");
        return reply_error(r, 405, "method_not_allowed", NULL,
                           "Only POST is allowed on this endpoint.");
    }
    if ((rv = authenticate(r, &key)) != DECLINED) {
        return rv;
    }
    if ((rv = read_body(r, &body, &blen)) != DECLINED) {
        return rv;
    }
    if (ark_chat_req_parse(&req, body, blen, &e, r->pool) != APR_SUCCESS) {
        return ark_error_reply(r, &e);
    }
    rc->log.model = req.model;
    rc->log.stream = req.stream;

    model = apr_hash_get(sc->models, req.model, APR_HASH_KEY_STRING);
    if (!model) {
        ark_err_setf(&e, r->pool, 404, "model_not_found", "model",
                     "The model '%s' does not exist or you do not have "
                     "access to it.", ark_err_quote(req.model, 128, r->pool));
        return ark_error_reply(r, &e);
    }
    if (!ark_key_allows_model(key, model->alias)) {
        ark_err_setf(&e, r->pool, 403, "model_not_allowed", "model",
                     "This API key is not allowed to use the model '%s'.",
                     model->alias);
        return ark_error_reply(r, &e);
    }
    if (!ark_http_client()) {
        return reply_error(r, 500, "internal_error", NULL,
                           "The gateway's HTTP client is not available.");
    }

    ch = &APR_ARRAY_IDX(model->channels, 0, ark_channel_t);
    rc->log.provider = ch->provider->name;
    rc->log.upstream_model = ch->upstream_model;
    memset(&up, 0, sizeof(up));
    if (ch->provider->type->build_request(&up, ch->provider,
                                          ch->upstream_model, &req, &e,
                                          r->pool) != APR_SUCCESS) {
        return ark_error_reply(r, &e);
    }
    APR_ARRAY_PUSH(up.headers, const char *) = "User-Agent: mod_ark/"
                                               PACKAGE_VERSION;

    memset(&call, 0, sizeof(call));
    call.r = r;
    call.rc = rc;
    call.req = &req;
    call.prov = ch->provider;
    call.bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_table_setn(r->headers_out, "x-ark-provider", ch->provider->name);

    memset(&hreq, 0, sizeof(hreq));
    hreq.url = up.url;
    hreq.headers = up.headers;
    hreq.body = up.body;
    hreq.body_len = up.body_len;
    hreq.connect_timeout = ch->provider->connect_timeout
                           ? ch->provider->connect_timeout
                           : sc->connect_timeout;
    hreq.timeout = ch->provider->timeout ? ch->provider->timeout
                                         : sc->timeout;
    hreq.on_data = on_upstream_data;
    hreq.ctx = &call;

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00040)
                  "key '%s': model %s -> provider %s (%s)%s", key->name,
                  model->alias, ch->provider->name, ch->upstream_model,
                  req.stream ? ", streaming" : "");
    ark_http_perform(ark_http_client(), &hreq, &res, r->pool);
    rc->log.upstream_status = res.status;
    rc->log.upstream_new_conns = res.new_connections;
    rc->log.ttfb = res.ttfb;

    if (call.streaming) {
        finish_stream(&call, &res);
        return OK;
    }
    return finish_plain(&call, &res);
}

static json_t *model_object(const char *alias, apr_time_t created)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "id", alias, "object", "model",
                     "created", (json_int_t)apr_time_sec(created),
                     "owned_by", "ark");
}

static int handle_models(request_rec *r, const char *id)
{
    ark_server_conf_t *sc = srv_conf(r);
    const ark_key_t *key = NULL;
    json_t *list;
    const char *body;
    apr_size_t len;
    int i, rv;

    if (r->method_number != M_GET) {
        apr_table_setn(r->headers_out, "Allow", "GET, HEAD");
        return reply_error(r, 405, "method_not_allowed", NULL,
                           "Only GET is allowed on this endpoint.");
    }
    if ((rv = authenticate(r, &key)) != DECLINED) {
        return rv;
    }
    if (id) {
        ark_err_t e;

        if (!apr_hash_get(sc->models, id, APR_HASH_KEY_STRING)
            || !ark_key_allows_model(key, id)) {
            ark_err_setf(&e, r->pool, 404, "model_not_found", "model",
                         "The model '%s' does not exist or you do not have "
                         "access to it.", ark_err_quote(id, 128, r->pool));
            return ark_error_reply(r, &e);
        }
        list = ark_json_pool_own(model_object(id, sc->config_time), r->pool);
    }
    else {
        json_t *data = json_array();

        list = ark_json_pool_own(json_pack("{s:s,s:o}", "object", "list",
                                           "data", data), r->pool);
        for (i = 0; i < sc->model_order->nelts; i++) {
            const char *alias = APR_ARRAY_IDX(sc->model_order, i,
                                              const char *);

            if (ark_key_allows_model(key, alias)) {
                json_array_append_new(data, model_object(alias,
                                                         sc->config_time));
            }
        }
    }
    body = ark_json_pdump(list, &len, r->pool);
    if (!body) {
        return reply_error(r, 500, "internal_error", NULL,
                           "The gateway could not encode the answer.");
    }
    return reply_json(r, body, len);
}

static int ends_with(const char *s, const char *suffix)
{
    apr_size_t n = strlen(s), m = strlen(suffix);

    return n >= m && !strcmp(s + n - m, suffix);
}

int ark_gateway_handler(request_rec *r)
{
    ark_rctx_t *rc = apr_pcalloc(r->pool, sizeof(*rc));
    const char *uri = r->uri, *slash;

    ark_access_init(&rc->log, r->request_time);
    rc->log.method = r->method;
    rc->log.path = r->uri;
    ap_set_module_config(r->request_config, &ark_module, rc);

    if (ends_with(uri, "/chat/completions")) {
        return handle_chat(r, rc);
    }
    if (ends_with(uri, "/models")) {
        return handle_models(r, NULL);
    }
    slash = strrchr(uri, '/');
    if (slash && slash - uri >= 7 && !strncmp(slash - 7, "/models", 7)
        && slash[1]) {
        return handle_models(r, slash + 1);
    }
    return reply_error(r, 404, "unknown_url", NULL,
                       apr_psprintf(r->pool, "Unknown request URL: %s %s.",
                                    r->method,
                                    ark_err_quote(uri, 200, r->pool)));
}

int ark_log_transaction(request_rec *r)
{
    ark_server_conf_t *sc = srv_conf(r);
    ark_rctx_t *rc = rctx_get(r);
    const char *line;
    apr_size_t len;

    if (!rc || !sc->access_fd) {
        return DECLINED;
    }
    if (!rc->log.status) {
        rc->log.status = r->status;
    }
    rc->log.latency = apr_time_now() - r->request_time;
    line = ark_access_line(&rc->log, &len, r->pool);
    /* one write per line: O_APPEND files and pipes keep lines whole */
    apr_file_write_full(sc->access_fd, line, len, NULL);
    return OK;
}
