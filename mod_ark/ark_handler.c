/* The ark-gateway handler: OpenAI-compatible endpoints served by httpd.
 *
 * Data flow of POST .../chat/completions (and .../embeddings):
 *   identify   the virtual key (Authorization: Bearer, x-api-key or
 *              api-key header) -> key record, or 401
 *   read       the body, bounded by ArkMaxBodySize (413)
 *   parse      and validate (400), resolve the model alias (404) and
 *              check the key may use it (403)
 *   route      order the alias's channels (ark_route.c) from their live
 *              signals in shared memory, the key's priority class and
 *              compliance tags, and the routing policy
 *   call       try channels in that order: translate the request for the
 *              channel's provider type, run it through the process's
 *              libcurl client (optionally hedged on the next channel),
 *              and fail over on a retryable failure, within the policy's
 *              attempts and deadline
 *   answer     streamed requests relay SSE event by event with a flush
 *              after each; other answers are validated and sent whole
 *   log        one JSON access log line (log_transaction hook)
 *
 * Nothing is sent to the client before an upstream answered with a
 * success status, so every failure up to that point can fail over, and
 * becomes a plain error if no channel succeeds. Once a stream has begun,
 * a failure can only end it: with an SSE error event and "data: [DONE]".
 * A client that goes away makes the next write fail, which aborts the
 * upstream transfer.
 */
#include <stdatomic.h>
#include <string.h>

#include <apr_buckets.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#include "ark_accesslog.h"
#include "ark_front_anthropic.h"
#include "ark_jsonscan.h"
#include "ark_redact.h"
#include "ark_request.h"
#include "ark_sse.h"
#include "mod_ark.h"

APLOG_USE_MODULE(ark);

/* The API dialect the client speaks. */
typedef enum {
    ARK_FRONT_OPENAI = 0,      /* /v1/chat/completions, /v1/embeddings */
    ARK_FRONT_ANTHROPIC        /* /v1/messages */
} ark_front_t;

/* Per-request state, reachable from the log_transaction hook. */
typedef struct ark_rctx_t {
    ark_access_t log;
    ark_front_t front;
    /* a complete answer to hand to ark-cached once the client has it */
    const ark_cache_key_t *store_key;
    const char *store_body;
    apr_size_t store_len;
    long store_ttl;
    apr_interval_time_t cache_lookup_us;  /* -1: no lookup made */
    const char *req_body, *resp_body;     /* for ArkLogBodies */
    apr_size_t req_len, resp_len;
    /* governance: set once the request was admitted */
    int governed;
    ark_gov_subject_t subject;
    ark_gov_ticket_t ticket;
    int jslot;                        /* its in-flight journal slot, or -1 */
    const char *jdone;                /* the done-key id written there */
    const ark_channel_t *answered;    /* channel whose answer was sent */
    const ark_model_t *model;
    /* tracing: the request's context, the traceparent of the gateway's
     * span, the upstream attempts (struct ark_attempt_t *) in order */
    ark_trace_t trace;
    const char *traceparent;
    apr_array_header_t *attempts;
} ark_rctx_t;

typedef struct ark_gw_t ark_gw_t;

/* One upstream attempt on one channel. */
typedef struct ark_attempt_t {
    ark_gw_t *gw;
    const ark_channel_t *ch;
    ark_chan_slot_t *slot;
    int probe;                /* a half-open probe of its circuit */
    int hedge;                /* started as a hedge */
    apr_time_t started;       /* when the attempt was made */
    int cancel;               /* set when the other attempt won */
    ark_upstream_req_t up;
    ark_http_req_t hreq;
    ark_http_result_t res;
    int decided;              /* first upstream bytes seen */
    int streaming;            /* relaying SSE to the client */
    char *buf;                /* non-streamed body (answer or error) */
    apr_size_t len, cap;
    int too_large;
    ark_sse_parser_t *sse;
    ark_stream_t st;
    apr_status_t stream_rv;   /* translator failure, if any */
    char span_id[ARK_SPAN_ID_HEX + 1];  /* its CLIENT span */
    int released;             /* outcome and ended are set */
    ark_outcome_t outcome;
    apr_time_t ended;
} ark_attempt_t;

/* The request being routed. */
struct ark_gw_t {
    request_rec *r;
    ark_rctx_t *rc;
    ark_server_conf_t *sc;
    const ark_req_t *req;
    const ark_model_t *model;
    const ark_key_t *key;
    ark_route_policy_t policy;
    ark_priority_t priority;
    int *order;               /* channel indices, best first */
    int norder, next;         /* next: first not yet tried */
    ark_attempt_t *winner;    /* the attempt whose 2xx answer won */
    ark_attempt_t *race[2];   /* attempts of the current race */
    int attempts;
    int noncompliant;         /* channels the key may not use */
    int client_gone;
    apr_time_t deadline;
    apr_bucket_brigade *bb;
    ark_anthropic_stream_t *astream;  /* Anthropic front, streaming */
    ark_cache_policy_t cache;         /* effective cache settings */
    const ark_cache_key_t *cache_key; /* set when the answer may be stored */
    ark_cache_collect_t *collect;     /* collects a streamed answer */
    const ark_weights_t *weights;     /* score weights for this request */
};

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
    const char *body = rc && rc->front == ARK_FRONT_ANTHROPIC
                       ? ark_anthropic_error_json(e, r->pool)
                       : ark_err_json(e, r->pool);

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
        rc->resp_body = body;          /* for ArkLogBodies */
        rc->resp_len = len;
    }
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(body, (int)len, r);
    }
    return OK;
}

/* x-ark-* headers saying how the request was routed: the channel that
 * answered (a, or NULL when none did), the number of upstream attempts
 * (hedges included), and x-ark-route-ms, the time from the request's
 * arrival to the start of the answering attempt: what routing, failed
 * attempts and failover cost this request. */
static void set_route_headers(ark_gw_t *gw, const ark_attempt_t *a)
{
    request_rec *r = gw->r;

    if (a) {
        apr_table_setn(r->headers_out, "x-ark-provider",
                       a->ch->provider->name);
        apr_table_setn(r->headers_out, "x-ark-channel", a->ch->name);
        apr_table_setn(r->headers_out, "x-ark-route-ms",
                       apr_psprintf(r->pool, "%.3f",
                                    (double)(a->started - r->request_time)
                                    / 1000.0));
        gw->rc->log.provider = a->ch->provider->name;
        gw->rc->log.upstream_model = a->ch->upstream_model;
        gw->rc->log.channel = a->ch->name;
        gw->rc->answered = a->ch;
    }
    gw->rc->log.attempts = gw->attempts;
    apr_table_setn(r->headers_out, "x-ark-attempts",
                   apr_itoa(r->pool, gw->attempts));
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

/* The key is known: refuse it if revoked, else remember it. */
static int accept_key(request_rec *r, ark_rctx_t *rc, const ark_key_t *key,
                      const ark_key_t **pkey)
{
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

static int authenticate(request_rec *r, const ark_key_t **pkey)
{
    ark_server_conf_t *sc = srv_conf(r);
    ark_rctx_t *rc = rctx_get(r);
    const ark_key_t *key;
    const char *secret;
    int bad_scheme, previous = 0;

    secret = presented_key(r, &bad_scheme);
    if (!secret && r->user && sc->keys) {
        ark_dir_conf_t *dc = ap_get_module_config(r->per_dir_config,
                                                  &ark_module);

        if (dc && dc->remote_user > 0) {
            /* the identity another auth module established (httpd ran
             * its check_user and auth_checker hooks before us) */
            key = ark_keys_find_name(sc->keys, r->user);
            if (!key) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ARKLOGNO(00058)
                              "authenticated user has no Ark key of that "
                              "name: refused");
                return reply_error(r, 403, "no_key_for_user", NULL,
                                   "You are authenticated, but no Ark key "
                                   "is configured for your user name.");
            }
            return accept_key(r, rc, key, pkey);
        }
    }
    if (!secret) {
        return reply_error(r, 401, "missing_api_key", NULL, bad_scheme
            ? "Unsupported authorization scheme: send your API key as "
              "'Authorization: Bearer <key>'."
            : "You didn't provide an API key. Send it as "
              "'Authorization: Bearer <key>'.");
    }
    if (strlen(secret) > ARK_MAX_API_KEY_LEN) {
        /* no key is that long: refused without hashing it */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00081)
                      "API key longer than %d bytes presented",
                      ARK_MAX_API_KEY_LEN);
        return reply_error(r, 401, "invalid_api_key", NULL,
                           apr_psprintf(r->pool, "Incorrect API key "
                                        "provided: API keys are at most %d "
                                        "bytes long.", ARK_MAX_API_KEY_LEN));
    }
    if (!sc->keys) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ARKLOGNO(00010)
                      "no ArkKeysFile configured: refusing request");
        return reply_error(r, 401, "invalid_api_key", NULL,
                           "Incorrect API key provided.");
    }
    key = ark_keys_lookup_ex(sc->keys, secret, strlen(secret), &previous);
    if (key && previous && apr_time_now() >= key->previous_until) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ARKLOGNO(00054)
                      "rotated-out secret of key '%s' presented after its "
                      "grace period", key->name);
        return reply_error(r, 401, "invalid_api_key", NULL,
                           "This API key was replaced by a new one and its "
                           "grace period has ended.");
    }
    if (!key) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00011)
                      "unknown API key presented");
        return reply_error(r, 401, "invalid_api_key", NULL,
                           "Incorrect API key provided.");
    }
    return accept_key(r, rc, key, pkey);
}

/* ------------------------------------------------------------- body */

static int too_large(request_rec *r, apr_size_t limit)
{
    return reply_error(r, 413, "request_too_large", NULL,
                       apr_psprintf(r->pool, "The request body is larger "
                                    "than the %" APR_SIZE_T_FMT " bytes "
                                    "this endpoint accepts.", limit));
}

/* ArkMaxJsonDepth, ArkMaxJsonElements, ArkMaxMessages, before the body
 * is parsed into a tree; DECLINED to go on. */
static int check_limits(request_rec *r, const char *body, apr_size_t len,
                        ark_endpoint_t endpoint)
{
    ark_dir_conf_t *dc = ap_get_module_config(r->per_dir_config,
                                              &ark_module);
    ark_req_limits_t lim;
    ark_err_t e;

    lim.max_depth = dc->max_json_depth ? dc->max_json_depth
                                       : ARK_DEFAULT_MAX_JSON_DEPTH;
    lim.max_elements = dc->max_json_elements ? dc->max_json_elements
                                             : ARK_DEFAULT_MAX_JSON_ELEMENTS;
    lim.max_messages = endpoint != ARK_ENDPOINT_CHAT ? 0
                       : dc->max_messages ? dc->max_messages
                       : ARK_DEFAULT_MAX_MESSAGES;
    if (ark_req_check_limits(body, len, &lim, &e, r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00080)
                      "request refused by an input limit: %s", e.code);
        return ark_error_reply(r, &e);
    }
    return DECLINED;
}

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
        return too_large(r, limit);
    }
    cap = r->remaining > 0 ? (apr_size_t)r->remaining + 1 : 16384;
    buf = apr_palloc(r->pool, cap);
    if (ap_should_client_block(r)) {
        long n;

        for (;;) {
            if (len + 1 >= cap) {
                char *nb;

                if (len >= limit) {
                    return too_large(r, limit);
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
                return too_large(r, limit);
            }
        }
    }
    buf[len] = '\0';
    *pbody = buf;
    *plen = len;
    return DECLINED;   /* read: go on */
}

/* ------------------------------------------------------- relaying */

/* Stream output is collected in gw->bb and sent with one flush per piece
 * of upstream bytes (emit_flush, called when the piece has been parsed),
 * not per event: an upstream read that carried 27 events becomes one
 * write to the client instead of 27, and no event waits for a later
 * upstream read. The bytes are copied (the event text lives in a pool
 * cleared after each event). */
static apr_status_t emit_to_client(void *ctx, const char *buf, apr_size_t len)
{
    ark_attempt_t *a = ctx;
    ark_gw_t *gw = a->gw;
    conn_rec *conn = gw->r->connection;

    if (gw->client_gone) {
        return APR_ECONNABORTED;
    }
    if (len < APR_BUCKET_BUFF_SIZE) {
        /* appended to the brigade's last heap bucket while it has room */
        apr_brigade_write(gw->bb, NULL, NULL, buf, len);
    }
    else {
        APR_BRIGADE_INSERT_TAIL(gw->bb, apr_bucket_heap_create(
                                    buf, len, NULL, conn->bucket_alloc));
    }
    return APR_SUCCESS;
}

/* Sends what emit_to_client collected, with a flush. Returns
 * APR_ECONNABORTED once the client is gone. */
static apr_status_t emit_flush(ark_gw_t *gw)
{
    conn_rec *conn = gw->r->connection;
    apr_status_t rv;

    if (gw->client_gone) {
        apr_brigade_cleanup(gw->bb);
        return APR_ECONNABORTED;
    }
    if (APR_BRIGADE_EMPTY(gw->bb)) {
        return APR_SUCCESS;
    }
    APR_BRIGADE_INSERT_TAIL(gw->bb, apr_bucket_flush_create(
                                conn->bucket_alloc));
    rv = ap_pass_brigade(gw->r->output_filters, gw->bb);
    apr_brigade_cleanup(gw->bb);
    if (rv != APR_SUCCESS || conn->aborted) {
        gw->client_gone = 1;
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, rv, gw->r, "client went "
                      "away mid-stream: aborting the upstream transfer");
        return APR_ECONNABORTED;
    }
    return APR_SUCCESS;
}

static apr_status_t on_sse_event(void *ctx, const ark_sse_event_t *ev)
{
    ark_attempt_t *a = ctx;
    apr_status_t rv = a->ch->provider->type->stream_event(&a->st, ev);

    apr_pool_clear(a->st.pool);
    if (rv != APR_SUCCESS && !a->gw->client_gone) {
        a->stream_rv = rv;
    }
    return rv;
}

static void start_stream(ark_attempt_t *a)
{
    ark_gw_t *gw = a->gw;
    request_rec *r = gw->r;

    a->streaming = 1;
    r->status = HTTP_OK;
    gw->rc->log.status = HTTP_OK;
    set_route_headers(gw, a);
    ap_set_content_type(r, "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    if (gw->rc->front == ARK_FRONT_ANTHROPIC) {
        gw->astream = ark_anthropic_stream_make(gw->req->model,
                                                emit_to_client, a, r->pool);
    }
}

/* Where the pipeline's OpenAI events go: into the cache collector when
 * the answer may be stored, then to the Anthropic front (each OpenAI
 * event becomes zero or more Anthropic events) or the client. */
static apr_status_t emit_openai(void *ctx, const char *buf, apr_size_t len)
{
    ark_attempt_t *a = ctx;
    ark_gw_t *gw = a->gw;

    if (gw->collect) {
        ark_cache_collect_feed(gw->collect, buf, len);
    }
    if (gw->astream) {
        return ark_anthropic_stream_feed(gw->astream, buf, len);
    }
    return emit_to_client(a, buf, len);
}

/* Sets up the stream translation state of an attempt. */
static void stream_init(ark_attempt_t *a)
{
    request_rec *r = a->gw->r;

    a->sse = ark_sse_parser_make(r->pool, 0);
    apr_pool_create(&a->st.pool, r->pool);
    apr_pool_tag(a->st.pool, "ark_stream_event");
    a->st.req = a->gw->req;
    a->st.upstream_model = a->ch->upstream_model;
    a->st.id = ark_completion_id_make(r->pool);
    a->st.created = apr_time_now();
    a->st.client_wants_usage = a->gw->req->include_usage;
    a->st.emit = emit_openai;
    if (a->gw->rc->front == ARK_FRONT_ANTHROPIC) {
        /* the front needs the usage chunk for its message_delta */
        a->st.client_wants_usage = 1;
    }
    a->st.emit_ctx = a;
    a->st.rpool = r->pool;
    ark_usage_clear(&a->st.usage);
}

static apr_status_t on_upstream_data(void *ctx, int status,
                                     const char *content_type,
                                     const char *buf, apr_size_t len)
{
    ark_attempt_t *a = ctx;
    ark_gw_t *gw = a->gw;

    if (!a->decided) {
        a->decided = 1;
        if (status >= 200 && status < 300) {
            int i;

            if (gw->winner && gw->winner != a) {
                return APR_ECONNABORTED;      /* lost the race */
            }
            gw->winner = a;
            for (i = 0; i < 2; i++) {
                if (gw->race[i] && gw->race[i] != a) {
                    gw->race[i]->cancel = 1;
                }
            }
            if (gw->req->stream && content_type
                && ap_strcasestr(content_type, "text/event-stream")) {
                start_stream(a);
            }
        }
    }
    if (a->streaming) {
        apr_status_t rv = ark_sse_feed(a->sse, buf, len, on_sse_event, a);
        apr_status_t frv = emit_flush(gw);

        return rv != APR_SUCCESS ? rv : frv;
    }
    if (a->len + len > ARK_MAX_UPSTREAM_RESPONSE) {
        a->too_large = 1;
        return APR_ENOSPC;
    }
    if (a->len + len + 1 > a->cap) {
        apr_size_t cap = a->cap ? a->cap * 2 : 16384;
        char *nb;

        while (cap < a->len + len + 1) {
            cap *= 2;
        }
        nb = apr_palloc(gw->r->pool, cap);
        if (a->len) {
            memcpy(nb, a->buf, a->len);
        }
        a->buf = nb;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, buf, len);
    a->len += len;
    a->buf[a->len] = '\0';
    return APR_SUCCESS;
}

/* Ends a stream that already reached the client after a failure: an
 * error event the OpenAI SDKs raise, then the terminator. */
static void stream_fail(ark_attempt_t *a, const char *code, const char *msg)
{
    ark_gw_t *gw = a->gw;
    ark_err_t e;
    const char *ev;

    gw->rc->log.error_code = code;
    if (gw->client_gone) {
        return;
    }
    ark_err_set(&e, 502, code, NULL, msg);
    if (gw->astream) {
        ark_anthropic_stream_error(gw->astream, &e);
        return;
    }
    ev = apr_pstrcat(gw->r->pool, "data: ", ark_err_json(&e, gw->r->pool),
                     "\n\n", NULL);
    if (emit_to_client(a, ev, strlen(ev)) == APR_SUCCESS) {
        emit_to_client(a, "data: [DONE]\n\n", 14);
    }
}

/* Finishes a stream that reached the client; returns the outcome for the
 * channel's signals. */
static ark_outcome_t finish_stream(ark_attempt_t *a)
{
    ark_gw_t *gw = a->gw;
    request_rec *r = gw->r;
    const ark_provider_t *prov = a->ch->provider;
    const ark_http_result_t *res = &a->res;

    if (!gw->client_gone && res->fail == ARK_HTTP_OK && !a->stream_rv
        && !a->st.done && prov->type->stream_end) {
        a->stream_rv = prov->type->stream_end(&a->st);
    }
    gw->rc->log.usage = a->st.usage;
    if (gw->rc->log.usage.completion_tokens <= 0 && a->st.content_events) {
        /* no usage reported (the client left, or the upstream does not
         * count streams): bill what was relayed, one token per event */
        gw->rc->log.usage.completion_tokens = (long)a->st.content_events;
        if (gw->rc->log.usage.prompt_tokens <= 0) {
            gw->rc->log.usage.prompt_tokens =
                (long)((gw->req->body_len + 3) / 4);
        }
    }
    if (gw->client_gone) {
        gw->rc->log.client_aborted = 1;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00020)
                      "client closed the stream; upstream %s aborted after "
                      "%" APR_SIZE_T_FMT " events", a->ch->name,
                      a->st.events);
        return ARK_OUTCOME_NEUTRAL;
    }
    if (a->stream_rv == APR_EGENERAL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00021)
                      "channel %s sent an error event mid-stream",
                      a->ch->name);
        stream_fail(a, "upstream_error", "The upstream provider failed "
                    "while streaming the answer.");
        return ARK_OUTCOME_FAILURE;
    }
    if (a->stream_rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, a->stream_rv, r,
                      ARKLOGNO(00022) "channel %s sent a malformed stream "
                      "event", a->ch->name);
        stream_fail(a, "upstream_malformed", "The upstream provider sent a "
                    "malformed stream.");
        return ARK_OUTCOME_FAILURE;
    }
    if (res->fail != ARK_HTTP_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00023)
                      "channel %s: stream interrupted (%s: %s)", a->ch->name,
                      ark_http_fail_name(res->fail),
                      res->detail ? res->detail : "");
        gw->rc->log.upstream_fail = ark_http_fail_name(res->fail);
        stream_fail(a, res->fail == ARK_HTTP_TIMEOUT ? "upstream_timeout"
                                                     : "stream_interrupted",
                    "The upstream provider stopped before the answer was "
                    "complete.");
        return ARK_OUTCOME_FAILURE;
    }
    if (!a->st.done) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00024)
                      "channel %s ended the stream without finishing it",
                      a->ch->name);
        stream_fail(a, "stream_interrupted", "The upstream provider "
                    "stopped before the answer was complete.");
        return ARK_OUTCOME_FAILURE;
    }
    if (gw->collect && gw->cache_key
        && ark_cache_collect_result(gw->collect, gw->cache.tool_calls > 0,
                                    &a->st.usage, &gw->rc->store_body,
                                    &gw->rc->store_len, r->pool)
           == APR_SUCCESS) {
        gw->rc->store_key = gw->cache_key;
        gw->rc->store_ttl = gw->cache.ttl;
    }
    return ARK_OUTCOME_SUCCESS;
}

/* ------------------------------------------------------- attempts */

/* What an attempt that did not stream came to. */
typedef enum {
    ATTEMPT_OK,            /* *body is the client's answer */
    ATTEMPT_RETRY,         /* failed: try the next channel */
    ATTEMPT_FINAL          /* failed because of the request: answer *err */
} attempt_verdict_t;

static attempt_verdict_t judge_attempt(ark_attempt_t *a, const char **pbody,
                                       apr_size_t *plen, ark_err_t *err,
                                       ark_outcome_t *outcome)
{
    request_rec *r = a->gw->r;
    const ark_provider_t *prov = a->ch->provider;
    const ark_http_result_t *res = &a->res;
    int st = res->status;

    *outcome = ARK_OUTCOME_FAILURE;
    if (a->too_large) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00030)
                      "channel %s: answer larger than %d bytes", a->ch->name,
                      ARK_MAX_UPSTREAM_RESPONSE);
        ark_err_set(err, 502, "upstream_malformed", NULL,
                    "The upstream provider's answer was too large.");
        return ATTEMPT_RETRY;
    }
    if (res->fail == ARK_HTTP_ABORTED && (a->cancel || a->gw->client_gone)) {
        *outcome = ARK_OUTCOME_NEUTRAL;   /* lost the race, or no client */
        ark_err_set(err, 502, "upstream_cancelled", NULL,
                    "The upstream request was cancelled.");
        return ATTEMPT_RETRY;
    }
    if (res->fail != ARK_HTTP_OK) {
        a->gw->rc->log.upstream_fail = ark_http_fail_name(res->fail);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00031)
                      "channel %s: %s failure: %s", a->ch->name,
                      ark_http_fail_name(res->fail),
                      res->detail ? res->detail : "");
        if (res->fail == ARK_HTTP_TIMEOUT) {
            ark_err_set(err, 504, "upstream_timeout", NULL,
                        "The upstream provider did not answer in time.");
        }
        else if (res->fail == ARK_HTTP_TLS) {
            ark_err_set(err, 502, "upstream_unreachable", NULL,
                        "The upstream provider could not be reached: the "
                        "TLS connection or its certificate was refused.");
        }
        else if (res->fail == ARK_HTTP_CONNECT) {
            ark_err_set(err, 502, "upstream_unreachable", NULL,
                        "The upstream provider could not be reached.");
        }
        else {
            ark_err_set(err, 502, "upstream_connection_error", NULL,
                        "The connection to the upstream provider failed "
                        "before the answer was complete.");
        }
        return ATTEMPT_RETRY;
    }
    if (st >= 200 && st < 300) {
        if (a->gw->req->stream) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00032)
                          "channel %s answered a stream request without "
                          "an event stream", a->ch->name);
            ark_err_set(err, 502, "upstream_malformed", NULL,
                        "The upstream provider sent a malformed answer.");
            return ATTEMPT_RETRY;
        }
        if (prov->type->parse_response(pbody, plen, &a->gw->rc->log.usage,
                                       a->gw->req, a->buf ? a->buf : "",
                                       a->len, r->pool) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00033)
                          "channel %s sent a malformed answer (%"
                          APR_SIZE_T_FMT " bytes, HTTP %d)", a->ch->name,
                          a->len, st);
            ark_err_set(err, 502, "upstream_malformed", NULL,
                        "The upstream provider sent a malformed answer.");
            return ATTEMPT_RETRY;
        }
        *outcome = ARK_OUTCOME_SUCCESS;
        return ATTEMPT_OK;
    }

    prov->type->map_error(err, prov, st, a->buf, a->len, r->pool);
    if (st == 401 || st == 403) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ARKLOGNO(00034)
                      "channel %s: provider %s rejected the gateway's "
                      "credentials (HTTP %d): check its key= source (%s)",
                      a->ch->name, prov->name, st, prov->defined_at);
        return ATTEMPT_RETRY;
    }
    if (st == 404) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ARKLOGNO(00035)
                      "channel %s: provider %s does not know upstream model "
                      "'%s' or its endpoint (HTTP 404): check %s",
                      a->ch->name, prov->name, a->ch->upstream_model,
                      a->ch->defined_at ? a->ch->defined_at : "ArkModel");
        return ATTEMPT_RETRY;
    }
    if (st == 429 || st == 408 || st >= 500) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00036)
                      "channel %s answered HTTP %d", a->ch->name, st);
        if (st == 429) {
            /* cooling down is how the channel pays for a 429, not with
             * its breaker: the provider is healthy, just busy */
            *outcome = ARK_OUTCOME_NEUTRAL;
            err->retry_after = res->retry_after;
        }
        return ATTEMPT_RETRY;
    }
    /* 400, 413, 422, ...: the request itself; another channel would
     * refuse it too */
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00037)
                  "channel %s refused the request (HTTP %d)", a->ch->name,
                  st);
    *outcome = ARK_OUTCOME_NEUTRAL;
    return ATTEMPT_FINAL;
}

/* Releases the attempt's admission with its outcome. */
static void attempt_release(ark_attempt_t *a, ark_outcome_t outcome)
{
    ark_gw_t *gw = a->gw;
    apr_interval_time_t retry = 0;

    a->released = 1;
    a->outcome = outcome;
    a->ended = apr_time_now();
    if (a->res.status == 429) {
        retry = a->res.retry_after > 0 ? a->res.retry_after
                                       : apr_time_from_sec(1);
    }
    if (!a->cancel) {
        ark_sig_count_status(a->slot, a->res.status);
    }
    ark_sig_release(a->slot, &gw->sc->breaker, apr_time_now(), a->probe,
                    outcome,
                    outcome == ARK_OUTCOME_SUCCESS ? a->res.ttfb : -1,
                    outcome == ARK_OUTCOME_SUCCESS ? a->res.total : -1,
                    retry);
}

/* Gives an attempt its CLIENT span: a new span id, sent upstream as the
 * parent in a child traceparent (with the client's tracestate). The
 * client's own traceparent is never forwarded as it came. */
static void trace_attempt(ark_gw_t *gw, ark_attempt_t *a)
{
    ark_rctx_t *rc = gw->rc;
    apr_pool_t *p = gw->r->pool;

    ark_trace_new_id(a->span_id, ARK_SPAN_ID_HEX);
    APR_ARRAY_PUSH(a->up.headers, const char *) = apr_pstrcat(
        p, "traceparent: ", ark_traceparent_format(&rc->trace, a->span_id, p),
        NULL);
    if (rc->trace.tracestate) {
        APR_ARRAY_PUSH(a->up.headers, const char *) = apr_pstrcat(
            p, "tracestate: ", rc->trace.tracestate, NULL);
    }
    APR_ARRAY_PUSH(rc->attempts, ark_attempt_t *) = a;
}

/* Makes an attempt on the next channel of the order that admits one, with
 * its upstream request built; NULL when none is left. A channel whose
 * provider type cannot express the request is skipped with *skip_err. */
static ark_attempt_t *attempt_next(ark_gw_t *gw, ark_err_t *skip_err,
                                   int *have_skip_err)
{
    request_rec *r = gw->r;

    while (gw->next < gw->norder) {
        const ark_channel_t *ch = &APR_ARRAY_IDX(gw->model->channels,
                                                 gw->order[gw->next++],
                                                 ark_channel_t);
        ark_attempt_t *a;
        apr_interval_time_t left;
        ark_err_t e;

        a = apr_pcalloc(r->pool, sizeof(*a));
        a->gw = gw;
        a->ch = ch;
        a->slot = &gw->sc->slots[ch->slot];
        if (ch->provider->type->build_request(&a->up, ch->provider,
                                              ch->upstream_model, gw->req,
                                              &e, r->pool) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00041)
                          "channel %s cannot take this request: %s",
                          ch->name, e.message);
            if (!*have_skip_err) {
                *skip_err = e;
                *have_skip_err = 1;
            }
            continue;
        }
        if (!ark_sig_acquire(a->slot, &gw->sc->breaker, apr_time_now(),
                             &a->probe)) {
            continue;      /* its circuit opened since the order was made */
        }
        APR_ARRAY_PUSH(a->up.headers, const char *) = "User-Agent: mod_ark/"
                                                      ARK_VERSION;
        trace_attempt(gw, a);
        a->hreq.url = a->up.url;
        a->hreq.headers = a->up.headers;
        a->hreq.body = a->up.body;
        a->hreq.body_len = a->up.body_len;
        a->hreq.connect_timeout = ch->provider->connect_timeout
                                  ? ch->provider->connect_timeout
                                  : gw->sc->connect_timeout;
        a->hreq.timeout = ch->provider->timeout ? ch->provider->timeout
                                                : gw->sc->timeout;
        left = gw->deadline - apr_time_now();
        if (left < a->hreq.timeout) {
            a->hreq.timeout = left > 0 ? left : 1;
        }
        a->hreq.idle_timeout = gw->req->stream ? gw->sc->stream_idle : 0;
        a->hreq.on_data = on_upstream_data;
        a->hreq.ctx = a;
        a->hreq.cancel = &a->cancel;
        if (gw->req->stream) {
            stream_init(a);
        }
        gw->attempts++;
        a->started = apr_time_now();
        return a;
    }
    return NULL;
}

/* Called by the race when the hedge delay passed without an answer. */
static const ark_http_req_t *start_hedge(void *ctx,
                                         ark_http_result_t **pres)
{
    ark_gw_t *gw = ctx;
    ark_err_t e;
    int have = 0;
    ark_attempt_t *a = attempt_next(gw, &e, &have);

    if (!a) {
        return NULL;
    }
    a->hedge = 1;
    gw->race[1] = a;
    *pres = &a->res;
    atomic_fetch_add(&a->slot->hedges, 1);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, gw->r, ARKLOGNO(00042)
                  "no answer from %s yet: hedging on %s",
                  gw->race[0]->ch->name, a->ch->name);
    return &a->hreq;
}

static apr_interval_time_t hedge_delay(ark_gw_t *gw, const ark_attempt_t *a)
{
    ark_chan_view_t v;

    if (gw->policy.hedge_delay > 0) {
        return gw->policy.hedge_delay;
    }
    ark_sig_view(a->slot, &gw->sc->breaker, apr_time_now(), &v);
    return v.p95_ttfb_ms > 0 ? (apr_interval_time_t)(v.p95_ttfb_ms * 1000)
                             : ARK_DEFAULT_HEDGE_DELAY;
}

/* ------------------------------------------------------------ routing */

static ark_route_policy_t effective_policy(request_rec *r,
                                           ark_server_conf_t *sc,
                                           const ark_model_t *m)
{
    ark_dir_conf_t *dc = ap_get_module_config(r->per_dir_config,
                                              &ark_module);
    ark_route_policy_t pol;
    const ark_route_policy_t *alias_pol;

    pol.strategy = ARK_STRATEGY_SCORE;
    pol.hedge = 0;
    pol.hedge_delay = 0;
    pol.max_attempts = ARK_DEFAULT_MAX_ATTEMPTS;
    pol.deadline = sc->timeout;
    ark_route_policy_merge(&pol, &pol, &sc->policy);
    ark_route_policy_merge(&pol, &pol, &dc->policy);
    ark_route_policy_merge(&pol, &pol, &m->policy);
    alias_pol = dc->alias_policies
        ? apr_hash_get(dc->alias_policies, m->alias, APR_HASH_KEY_STRING)
        : NULL;
    if (alias_pol) {
        ark_route_policy_merge(&pol, &pol, alias_pol);
    }
    return pol;
}

/* The request's priority: the key's class, lowered (never raised) by an
 * x-ark-priority header. */
static int request_priority(request_rec *r, const ark_key_t *key,
                            ark_priority_t *prio)
{
    const char *h = apr_table_get(r->headers_in, "x-ark-priority");
    int asked;

    *prio = (ark_priority_t)key->priority;
    if (!h) {
        return DECLINED;
    }
    asked = ark_priority_parse(h);
    if (asked < 0) {
        return reply_error(r, 400, "invalid_priority", NULL,
                           "Invalid x-ark-priority header: expected high, "
                           "normal or low.");
    }
    if (asked > (int)*prio) {       /* larger is lower priority */
        *prio = (ark_priority_t)asked;
    }
    return DECLINED;
}

/* Whether governance found the key's limit towards a provider used up. */
static int provider_exhausted(ark_gw_t *gw, const char *provider)
{
    const apr_array_header_t *ex = gw->rc->ticket.exhausted;
    int i;

    for (i = 0; gw->rc->governed && ex && i < ex->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(ex, i, const char *), provider)) {
            return 1;
        }
    }
    return 0;
}

/* Orders the model's channels for this request into gw->order; returns
 * DECLINED, or replies 503 when no channel may serve it. */
static int route(ark_gw_t *gw)
{
    request_rec *r = gw->r;
    const ark_model_t *m = gw->model;
    int n = m->channels->nelts, i, j, ncand = 0, noncompliant = 0;
    int limited = 0;
    ark_route_chan_t *chans = apr_pcalloc(r->pool, sizeof(*chans) * n);
    ark_route_skip_t *skip = apr_pcalloc(r->pool, sizeof(*skip) * n);
    int *map = apr_pcalloc(r->pool, sizeof(int) * n);
    int *order = apr_pcalloc(r->pool, sizeof(int) * n);
    apr_time_t now = apr_time_now(), retry_at = 0;
    unsigned int ep = gw->req->endpoint == ARK_ENDPOINT_EMBEDDINGS
                      ? ARK_EP_EMBEDDINGS : ARK_EP_CHAT;

    for (i = 0; i < n; i++) {
        const ark_channel_t *ch = &APR_ARRAY_IDX(m->channels, i,
                                                 ark_channel_t);
        ark_route_chan_t *c = &chans[ncand];

        if (!(ch->provider->type->endpoints & ep)) {
            continue;
        }
        c->cost = ark_channel_cost(ch, gw->req);
        c->weight = ch->weight;
        c->tags = ch->tags;
        c->max_conns = ch->max_conns;
        ark_sig_view(&gw->sc->slots[ch->slot], &gw->sc->breaker, now,
                     &c->view);
        map[ncand++] = i;
    }
    ark_route_order(order, &gw->norder, skip, chans, ncand,
                    (ark_strategy_t)gw->policy.strategy,
                    gw->weights, gw->key->tags,
                    gw->req->stream,
                    (uint64_t)now ^ ((uint64_t)(apr_uintptr_t)r << 16));
    gw->order = apr_pcalloc(r->pool, sizeof(int) * (gw->norder + 1));
    for (i = 0, j = 0; i < gw->norder; i++) {
        const ark_channel_t *ch = &APR_ARRAY_IDX(m->channels, map[order[i]],
                                                 ark_channel_t);

        if (provider_exhausted(gw, ch->provider->name)) {
            limited++;
            continue;
        }
        gw->order[j++] = map[order[i]];
    }
    gw->norder = j;
    for (i = 0; i < ncand; i++) {
        if (skip[i] == ARK_ROUTE_NONCOMPLIANT) {
            noncompliant++;
            gw->noncompliant++;
        }
        else if (skip[i] == ARK_ROUTE_UNAVAILABLE && chans[i].view.retry_at
                 && (!retry_at || chans[i].view.retry_at < retry_at)) {
            retry_at = chans[i].view.retry_at;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00040)
                  "key '%s' (%s): model %s, %s: %d of %d channels usable "
                  "(%d not compliant)%s", gw->key->name,
                  ark_priority_name(gw->priority), m->alias,
                  ark_strategy_name((ark_strategy_t)gw->policy.strategy),
                  gw->norder, n, noncompliant,
                  gw->req->stream ? ", streaming" : "");
    if (gw->norder == 0) {
        ark_err_t e;

        if (ncand == 0) {
            ark_err_setf(&e, r->pool, 400, "unsupported_endpoint", "model",
                         "The model '%s' is not available on this "
                         "endpoint.", m->alias);
            return ark_error_reply(r, &e);
        }
        if (limited > 0) {
            ark_err_setf(&e, r->pool, 429, "rate_limit_exceeded", NULL,
                         "This API key's limits towards the providers of "
                         "the model '%s' are used up; retry later.",
                         m->alias);
            e.type = "tokens";
            e.retry_after = apr_time_from_sec(1);
        }
        else if (noncompliant == ncand) {
            ark_err_setf(&e, r->pool, 503, "no_compliant_channel", "model",
                         "No channel of the model '%s' satisfies this API "
                         "key's compliance requirements.", m->alias);
        }
        else {
            ark_err_setf(&e, r->pool, 503, "no_channel_available", "model",
                         "No channel of the model '%s' is available right "
                         "now; retry later.", m->alias);
            if (retry_at > now) {
                e.retry_after = retry_at - now;
            }
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00043)
                      "model %s: no usable channel for key '%s' (%d not "
                      "compliant, %d unavailable)", m->alias, gw->key->name,
                      noncompliant, ncand - noncompliant);
        return ark_error_reply(r, &e);
    }
    return DECLINED;
}

/* Tries the ordered channels until one answers; replies to the client. */
static int call_upstreams(ark_gw_t *gw)
{
    request_rec *r = gw->r;
    ark_err_t last, skip_err;
    int have_last = 0, have_skip = 0;

    if (!ark_http_client()) {
        return reply_error(r, 500, "internal_error", NULL,
                           "The gateway's HTTP client is not available.");
    }
    gw->deadline = r->request_time + gw->policy.deadline;
    while (gw->attempts < gw->policy.max_attempts) {
        ark_attempt_t *a, *tried[2];
        int hedged = 0, i;
        const char *body = NULL;
        apr_size_t blen = 0;

        if (apr_time_now() >= gw->deadline) {
            ark_err_set(&last, 504, "deadline_exceeded", NULL,
                        "No upstream provider answered within the "
                        "request's deadline.");
            have_last = 1;
            break;
        }
        a = attempt_next(gw, &skip_err, &have_skip);
        if (!a) {
            break;
        }
        gw->race[0] = a;
        gw->race[1] = NULL;
        gw->winner = NULL;
        if (gw->policy.hedge > 0 && gw->next < gw->norder
            && gw->attempts < gw->policy.max_attempts) {
            ark_http_race(ark_http_client(), &a->hreq, &a->res,
                          hedge_delay(gw, a), start_hedge, gw, &hedged,
                          r->pool);
        }
        else {
            ark_http_perform(ark_http_client(), &a->hreq, &a->res, r->pool);
        }
        /* the winner of a race first, then the other */
        tried[0] = gw->winner ? gw->winner : gw->race[0];
        tried[1] = !gw->race[1] ? NULL
                   : tried[0] == gw->race[0] ? gw->race[1] : gw->race[0];

        for (i = 0; i < 2; i++) {
            ark_attempt_t *t = tried[i];
            ark_outcome_t outcome;
            attempt_verdict_t v;
            ark_err_t e;

            if (!t) {
                continue;
            }
            gw->rc->log.upstream_status = t->res.status;
            gw->rc->log.upstream_new_conns = t->res.new_connections;
            gw->rc->log.ttfb = t->res.ttfb;
            if (t->streaming) {
                ark_outcome_t so = finish_stream(t);

                emit_flush(gw);    /* the last events, before the end */
                attempt_release(t, so);
                if (tried[1 - i]) {
                    attempt_release(tried[1 - i], ARK_OUTCOME_NEUTRAL);
                }
                return OK;
            }
            v = judge_attempt(t, &body, &blen, &e, &outcome);
            attempt_release(t, outcome);
            if (v == ATTEMPT_OK) {
                if (i == 0 && tried[1]) {
                    attempt_release(tried[1], ARK_OUTCOME_NEUTRAL);
                }
                set_route_headers(gw, t);
                if (gw->cache_key
                    && ark_cache_storable(body, blen,
                                          gw->cache.tool_calls > 0)) {
                    gw->rc->store_key = gw->cache_key;
                    gw->rc->store_body = body;
                    gw->rc->store_len = blen;
                    gw->rc->store_ttl = gw->cache.ttl;
                }
                if (gw->rc->front == ARK_FRONT_ANTHROPIC
                    && ark_anthropic_response_from_openai(
                           &body, &blen, body, blen, gw->req->model,
                           r->pool) != APR_SUCCESS) {
                    return reply_error(r, 502, "upstream_malformed", NULL,
                                       "The upstream provider sent a "
                                       "malformed answer.");
                }
                return reply_json(r, body, blen);
            }
            if (gw->client_gone) {
                return OK;
            }
            if (v == ATTEMPT_FINAL) {
                if (i == 0 && tried[1]) {
                    attempt_release(tried[1], ARK_OUTCOME_NEUTRAL);
                }
                set_route_headers(gw, t);
                return ark_error_reply(r, &e);
            }
            if (strcmp(e.code, "upstream_cancelled") || !have_last) {
                last = e;
                have_last = 1;
            }
            if (gw->next < gw->norder) {
                atomic_fetch_add(&t->slot->failovers, 1);
            }
            gw->rc->log.provider = t->ch->provider->name;
            gw->rc->log.upstream_model = t->ch->upstream_model;
            gw->rc->log.channel = t->ch->name;
            apr_table_setn(r->headers_out, "x-ark-channel", t->ch->name);
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00044)
                      "model %s: attempt %d failed (%s), %s",
                      gw->model->alias, gw->attempts,
                      have_last ? last.code : "?",
                      gw->next < gw->norder ? "failing over"
                                            : "no channel left");
    }
    set_route_headers(gw, NULL);
    if (have_last && gw->noncompliant > 0) {
        /* say why the channels that might have answered were not used */
        ark_err_t e;

        ark_err_setf(&e, r->pool, 503, "no_compliant_channel_available",
                     "model", "Every channel of the model '%s' that "
                     "satisfies this API key's compliance requirements "
                     "failed (last: %s); the model's other channels are "
                     "not allowed for this key.", gw->model->alias,
                     last.message);
        e.retry_after = last.retry_after;
        return ark_error_reply(r, &e);
    }
    if (have_last) {
        return ark_error_reply(r, &last);
    }
    if (have_skip) {
        return ark_error_reply(r, &skip_err);
    }
    return reply_error(r, 503, "no_channel_available", "model",
                       "No channel of this model is available right now; "
                       "retry later.");
}

/* -------------------------------------------------------- endpoints */

/* ------------------------------------------------------------- cache */

static int header_has_token(request_rec *r, const char *name,
                            const char *token)
{
    const char *v = apr_table_get(r->headers_in, name);

    return v && ap_find_token(r->pool, v, token);
}

/* Replays a cached answer to the client (as it would have come from an
 * upstream: JSON, an OpenAI stream or, on the Anthropic front, its
 * dialect). */
static int reply_from_cache(ark_gw_t *gw, const char *body, apr_size_t len,
                            double similarity)
{
    request_rec *r = gw->r;
    ark_attempt_t *a;
    ark_json_field_t f[1] = {{.key = "usage"}};
    ark_json_type_t top;

    /* one allocation-free pass: the payload must be a JSON object (a
     * stored chat.completion), and its usage is read from the text */
    if (ark_json_scan(body, len, f, 1, &top, NULL) != APR_SUCCESS
        || top != ARK_JSON_OBJECT) {
        return DECLINED;
    }
    apr_table_setn(r->headers_out, "x-ark-cache", "hit");
    apr_table_setn(r->headers_out, "x-ark-cache-similarity",
                   apr_psprintf(r->pool, "%.4f", similarity));
    apr_table_setn(r->headers_out, "x-ark-attempts", "0");
    gw->rc->log.cache = "hit";
    gw->rc->log.cache_similarity = similarity;
    if (f[0].type == ARK_JSON_OBJECT) {
        ark_usage_from_openai_text(&gw->rc->log.usage, body + f[0].start,
                                   f[0].end - f[0].start);
    }
    if (!gw->req->stream) {
        if (gw->rc->front == ARK_FRONT_ANTHROPIC
            && ark_anthropic_response_from_openai(&body, &len, body, len,
                                                  gw->req->model, r->pool)
               != APR_SUCCESS) {
            return DECLINED;
        }
        return reply_json(r, body, len);
    }
    /* a stand-in attempt carries the emit chain */
    a = apr_pcalloc(r->pool, sizeof(*a));
    a->gw = gw;
    r->status = HTTP_OK;
    gw->rc->log.status = HTTP_OK;
    ap_set_content_type(r, "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    if (gw->rc->front == ARK_FRONT_ANTHROPIC) {
        gw->astream = ark_anthropic_stream_make(gw->req->model,
                                                emit_to_client, a, r->pool);
    }
    ark_cache_replay(body, len, gw->req->include_usage
                                || gw->rc->front == ARK_FRONT_ANTHROPIC,
                     64, emit_openai, a, r->pool);
    emit_flush(gw);
    if (gw->client_gone) {
        gw->rc->log.client_aborted = 1;
    }
    return OK;
}

/* Looks the request up in ark-cached when the cache is on for it:
 * returns OK when answered from the cache, DECLINED to go on (a miss, a
 * bypass, or a cache failure: fail-open), or an error reply. */
static int cache_lookup(ark_gw_t *gw)
{
    request_rec *r = gw->r;
    ark_dir_conf_t *dc = ap_get_module_config(r->per_dir_config,
                                              &ark_module);
    const ark_cache_policy_t *alias_cp = apr_hash_get(
        gw->sc->cache_models, gw->model->alias, APR_HASH_KEY_STRING);
    ark_cache_client_t *client = ark_cache_client();
    ark_cache_key_t *key;
    const char *why, *payload = NULL, *detail = NULL, *h;
    double threshold, similarity = 0;
    apr_time_t t0;
    apr_size_t plen = 0;
    int found = 0, no_store;
    apr_status_t rv;

    ark_cache_policy_unset(&gw->cache);
    ark_cache_policy_merge(&gw->cache, &gw->cache, &dc->cache);
    if (alias_cp) {
        ark_cache_policy_merge(&gw->cache, &gw->cache, alias_cp);
    }
    if (gw->cache.on <= 0 || !client) {
        return DECLINED;
    }
    threshold = gw->cache.threshold > 0 ? gw->cache.threshold
                                        : ARK_CACHE_DEFAULT_THRESHOLD;
    if (gw->cache.ttl <= 0) {
        gw->cache.ttl = ARK_CACHE_DEFAULT_TTL;
    }
    if ((h = apr_table_get(r->headers_in, "x-ark-cache-threshold"))) {
        char *end;
        double t = strtod(h, &end);
        double lo = gw->cache.threshold_min >= 0 ? gw->cache.threshold_min
                                                 : threshold;
        double hi = gw->cache.threshold_max >= 0 ? gw->cache.threshold_max
                                                 : 1.0;

        if (end == h || *end || !(t >= lo && t <= hi)) {
            ark_err_t e;

            ark_err_setf(&e, r->pool, 400, "invalid_cache_threshold", NULL,
                         "Invalid x-ark-cache-threshold: expected a number "
                         "between %.2f and %.2f.", lo, hi);
            return ark_error_reply(r, &e);
        }
        threshold = t;
    }
    no_store = header_has_token(r, "Cache-Control", "no-store");
    if (header_has_token(r, "Cache-Control", "no-cache")) {
        gw->rc->log.cache = "bypass";
        apr_table_setn(r->headers_out, "x-ark-cache", "bypass");
        if (no_store) {
            return DECLINED;
        }
    }
    key = apr_pcalloc(r->pool, sizeof(*key));
    if (ark_cache_key_make(key, &why, gw->req, gw->key->tenant,
                           "chat.completions", gw->model->alias,
                           gw->cache.text_mode >= 0
                               ? (ark_cache_text_t)gw->cache.text_mode
                               : ARK_CACHE_TEXT_LAST_USER,
                           gw->cache.max_temp >= 0 ? gw->cache.max_temp : 0.0,
                           r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00050)
                      "not cacheable: %s", why);
        gw->rc->log.cache = "skip";
        apr_table_setn(r->headers_out, "x-ark-cache", "skip");
        return DECLINED;
    }
    if (!no_store) {
        gw->cache_key = key;
        if (gw->req->stream) {
            gw->collect = ark_cache_collect_make(r->pool);
        }
    }
    if (gw->rc->log.cache) {           /* no-cache: no lookup */
        return DECLINED;
    }
    t0 = apr_time_now();
    rv = ark_cache_client_lookup_traced(client, key->ns, key->text,
                                        key->text_len, threshold,
                                        gw->rc->traceparent, &found,
                                        &payload, &plen, &similarity,
                                        &detail, r->pool);
    gw->rc->cache_lookup_us = apr_time_now() - t0;
    if (rv == APR_SUCCESS && found) {
        int out = reply_from_cache(gw, payload, plen, similarity);

        if (out != DECLINED) {
            gw->cache_key = NULL;      /* nothing new to store */
            return out;
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00051)
                      "ark-cached returned an unusable payload: ignored");
    }
    if (rv != APR_SUCCESS && rv != APR_EAGAIN
        && ark_cache_client_should_log(client, ARK_CACHE_LOG_INTERVAL)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00052)
                      "cache lookup failed, answering from upstream "
                      "(logged once a minute): %s", detail ? detail : "");
    }
    gw->rc->log.cache = rv == APR_SUCCESS ? "miss"
                        : rv == APR_EAGAIN ? "skip" : "error";
    apr_table_setn(r->headers_out, "x-ark-cache", gw->rc->log.cache);
    return DECLINED;
}

/* An Anthropic Messages request, translated into the OpenAI request the
 * rest of the pipeline works with. */
static apr_status_t parse_anthropic(ark_req_t *req, const char *body,
                                    apr_size_t len, ark_err_t *err,
                                    apr_pool_t *p)
{
    json_t *in = NULL, *oai = NULL;
    apr_status_t rv;

    memset(req, 0, sizeof(*req));
    if (ark_json_load_object(&in, body, len, err, p) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    rv = ark_anthropic_request_to_openai(&oai, in, err, p);
    json_decref(in);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return ark_chat_req_from_json(req, oai, len, err, p);
}

/* ---------------------------------------------------------- governing */

/* Adds n to a per-key and per-tenant node statistic. */
static void node_stat(const char *key, const char *tenant, int field,
                      apr_int64_t n)
{
    ark_govern_t *g = ark_govern_client();
    char id[ARK_KEY_NAME_MAX + 8];

    if (!g || !key) {
        return;
    }
    apr_snprintf(id, sizeof(id), ARK_STAT_KEY "%s", key);
    ark_govern_stat_add(g, id, field, n);
    apr_snprintf(id, sizeof(id), ARK_STAT_TENANT "%s", tenant ? tenant
                                                              : key);
    ark_govern_stat_add(g, id, field, n);
}

/* x-ratelimit-* headers, as OpenAI sends them. */
static void set_ratelimit_headers(request_rec *r, const ark_gov_ticket_t *t)
{
    if (t->req_limit > 0) {
        apr_table_setn(r->headers_out, "x-ratelimit-limit-requests",
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                    t->req_limit));
        apr_table_setn(r->headers_out, "x-ratelimit-remaining-requests",
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                    t->req_remaining));
        apr_table_setn(r->headers_out, "x-ratelimit-reset-requests",
                       ark_duration_format(t->req_reset, r->pool));
    }
    if (t->tok_limit > 0) {
        apr_table_setn(r->headers_out, "x-ratelimit-limit-tokens",
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                    t->tok_limit));
        apr_table_setn(r->headers_out, "x-ratelimit-remaining-tokens",
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                    t->tok_remaining));
        apr_table_setn(r->headers_out, "x-ratelimit-reset-tokens",
                       ark_duration_format(t->tok_reset, r->pool));
    }
}

/* The 429 (or 503) of a refused request. */
static int govern_refuse(ark_gw_t *gw, const ark_gov_ticket_t *t)
{
    request_rec *r = gw->r;
    const char *who = t->scope == ARK_SCOPE_TENANT ? "your organisation "
                                                     "(tenant)"
                                                   : "this API key";
    const char *what = t->verdict == ARK_GOV_REQUESTS ? "requests"
                                                      : "tokens";
    ark_err_t e;

    switch (t->verdict) {
    case ARK_GOV_REQUESTS:
    case ARK_GOV_TOKENS:
        ark_err_setf(&e, r->pool, 429, "rate_limit_exceeded", NULL,
                     "Rate limit reached for %s per minute of %s. "
                     "Please try again in %s.", what, who,
                     ark_duration_format(t->retry_after, r->pool));
        e.type = what;
        break;
    case ARK_GOV_TOO_LARGE:
        ark_err_setf(&e, r->pool, 429, "rate_limit_exceeded", NULL,
                     "Request too large for the tokens per minute limit of "
                     "%s: the prompt plus max_tokens (%" APR_INT64_T_FMT
                     " tokens reserved) exceed it. Lower max_tokens or "
                     "shorten the prompt.", who, t->reserved);
        e.type = "tokens";
        break;
    case ARK_GOV_CONCURRENCY:
        ark_err_setf(&e, r->pool, 429, "rate_limit_exceeded", NULL,
                     "Too many concurrent requests for %s. Please retry "
                     "when one of them has finished.", who);
        e.type = "concurrency";
        break;
    case ARK_GOV_BUDGET:
        ark_err_setf(&e, r->pool, 429, "budget_exceeded", NULL,
                     "The %s budget of %s is exhausted; it renews at the "
                     "start of the next %s (UTC).",
                     t->period == ARK_PERIOD_MONTH ? "monthly" : "daily",
                     who, t->period == ARK_PERIOD_MONTH ? "month" : "day");
        e.type = "insufficient_quota";
        break;
    default:
        ark_err_set(&e, 503, "budget_unavailable", NULL,
                    "Spend cannot be checked right now, and budgeted keys "
                    "are refused until it can. Please retry shortly.");
        break;
    }
    if (t->retry_after > 0) {
        e.retry_after = t->retry_after;
    }
    node_stat(gw->key->name, gw->key->tenant,
              t->verdict == ARK_GOV_CONCURRENCY ? ARK_SF_REF_CONC
              : t->verdict >= ARK_GOV_BUDGET    ? ARK_SF_REF_BUDGET
                                                : ARK_SF_REF_RATE, 1);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ARKLOGNO(00055)
                  "key '%s': refused by governance (%s, %s)",
                  gw->key->name, ark_gov_verdict_name(t->verdict),
                  t->scope == ARK_SCOPE_TENANT ? "tenant" : "key");
    return ark_error_reply(r, &e);
}

/* Admits the request under the key's and tenant's limits and budgets, or
 * refuses it; DECLINED to go on. */
static int govern_admit(ark_gw_t *gw)
{
    request_rec *r = gw->r;
    ark_rctx_t *rc = gw->rc;
    ark_govern_t *g = ark_govern_client();
    ark_gov_ticket_t *t = &rc->ticket;
    apr_int64_t estimate;

    if (!g) {
        return DECLINED;
    }
    ark_govern_subject(&rc->subject, &gw->sc->govern, gw->sc->keys, gw->key);
    estimate = ark_tokens_estimate(gw->req->body_len,
                                   ark_req_max_out(gw->req),
                                   gw->sc->govern.token_estimate);
    ark_govern_admit(g, &rc->subject, estimate, t, r->pool);
    if (t->local && gw->sc->govern.redis.servers->nelts > 0
        && ark_govern_should_log(g)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00056)
                      "governance Redis unreachable (%s): limits enforced "
                      "per node (limit / %d), spend buffered in shared "
                      "memory (logged once a minute)",
                      ark_govern_last_error(g), gw->sc->govern.nodes);
    }
    set_ratelimit_headers(r, t);
    if (t->verdict != ARK_GOV_OK) {
        return govern_refuse(gw, t);
    }
    rc->governed = 1;
    if (gw->sc->shift_ratio > 0 && t->budget_ratio >= gw->sc->shift_ratio) {
        gw->weights = &gw->sc->shift_weights;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ARKLOGNO(00057)
                      "key '%s' at %.0f%% of a budget: budget-shift "
                      "weights", gw->key->name, t->budget_ratio * 100.0);
    }
    return DECLINED;
}

/* Journals the request before it goes upstream (see ark_journal.h):
 * what it can cost at most (the prompt as estimated at admission, the
 * completion tokens reserved, the highest price among the model's
 * channels) under the done-key its settlement will use, so that the
 * node's death while the provider answers does not lose its spend. */
static void journal_claim(ark_gw_t *gw)
{
    static apr_time_t last_full;
    ark_rctx_t *rc = gw->rc;
    ark_journal_t *j = ark_journal_get();
    ark_govern_t *g = ark_govern_client();
    ark_journal_entry_t e;
    apr_int64_t best = 0;
    apr_time_t now;
    long prompt, out;
    int i;

    if (!j || !g || !rc->governed || !ark_govern_has_redis(g)) {
        return;
    }
    now = apr_time_now();
    prompt = (long)((gw->req->body_len + 3) / 4);
    out = ark_req_max_out(gw->req);
    if (out <= 0) {
        out = gw->sc->govern.token_estimate;
    }
    memset(&e, 0, sizeof(e));
    e.time = now;
    rc->jdone = ark_govern_done_id(g, rc->trace.trace_id, gw->r->pool);
    apr_cpystrn(e.done, rc->jdone, sizeof(e.done));
    if (strlen(rc->jdone) >= sizeof(e.done)
        || strlen(rc->subject.key) >= sizeof(e.key)
        || strlen(rc->subject.tenant) >= sizeof(e.tenant)) {
        e.key[0] = '\0';              /* counted as too long */
    }
    else {
        apr_cpystrn(e.key, rc->subject.key, sizeof(e.key));
        apr_cpystrn(e.tenant, rc->subject.tenant, sizeof(e.tenant));
    }
    for (i = 0; i < gw->model->channels->nelts; i++) {
        const ark_channel_t *ch = &APR_ARRAY_IDX(gw->model->channels, i,
                                                 ark_channel_t);
        apr_int64_t c = ark_cost_nano(prompt, 0, out, ch->price_in,
                                      ch->price_out, ch->price_cached);

        best = c > best ? c : best;
    }
    e.v[0] = 1;
    e.v[1] = prompt;
    e.v[2] = out;
    e.v[4] = best;
    rc->jslot = ark_journal_claim(j, &e, (unsigned)gw->r->connection->id
                                         * 2654435761u
                                         ^ (unsigned)apr_time_usec(now));
    if (rc->jslot < 0) {
        rc->jdone = NULL;
        if (now - last_full >= ARK_GOVERN_LOG_INTERVAL && e.key[0]) {
            last_full = now;
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, gw->r,
                          ARKLOGNO(00106) "in-flight journal %s is full: "
                          "requests go upstream unjournaled, their spend is "
                          "lost if this process dies before they end "
                          "(raise ArkGovernJournal slots=; logged once a "
                          "minute per process)", ark_journal_path(j));
        }
    }
}

/* Price of a channel for usage, in nano-units. */
static apr_int64_t usage_cost(const ark_channel_t *ch, const ark_usage_t *u)
{
    if (!ch) {
        return 0;
    }
    return ark_cost_nano(u->prompt_tokens, u->cached_tokens,
                         u->completion_tokens, ch->price_in, ch->price_out,
                         ch->price_cached);
}

/* Records what the request used (governance, node statistics, the
 * answering channel's counters) and releases what it held. */
static void account(request_rec *r, ark_rctx_t *rc)
{
    ark_govern_t *g = ark_govern_client();
    ark_server_conf_t *sc = srv_conf(r);
    apr_time_t now = apr_time_now();
    ark_gov_usage_t u;
    char id[300];

    if (!g || !rc->log.key_name) {
        return;
    }
    if (rc->cache_lookup_us >= 0 || rc->log.cache) {
        const char *c = rc->log.cache ? rc->log.cache : "";
        int f = !strcmp(c, "hit")      ? 1
                : !strcmp(c, "miss")   ? 2
                : !strcmp(c, "bypass") ? 3
                : !strcmp(c, "error")  ? 4
                                       : 5;

        ark_govern_stat_add(g, ARK_STAT_CACHE, f, 1);
        if (rc->cache_lookup_us >= 0) {
            ark_govern_stat_add(g, ARK_STAT_CACHE, 0, 1);
            ark_govern_stat_add(g, ARK_STAT_CACHE, 6, rc->cache_lookup_us);
        }
    }
    if (!rc->model) {
        return;                        /* refused before routing */
    }
    memset(&u, 0, sizeof(u));
    u.prompt_tokens = rc->log.usage.prompt_tokens;
    u.completion_tokens = rc->log.usage.completion_tokens;
    u.cached_tokens = rc->log.usage.cached_tokens;
    if (rc->log.cache && !strcmp(rc->log.cache, "hit")) {
        u.cache_hit = 1;
        if (rc->model && rc->model->channels->nelts > 0) {
            u.saved_nano = usage_cost(&APR_ARRAY_IDX(rc->model->channels, 0,
                                                     ark_channel_t),
                                      &rc->log.usage);
        }
        u.prompt_tokens = u.completion_tokens = u.cached_tokens = 0;
    }
    else {
        u.spend_nano = usage_cost(rc->answered, &rc->log.usage);
        u.provider = rc->answered ? rc->answered->provider->name : NULL;
    }
    rc->log.spend_nano = u.spend_nano;
    u.trace_id = rc->trace.trace_id;
    if (rc->governed && rc->jslot >= 0) {
        /* the actual usage first: dying during the settlement call
         * replays it, under the same done-key */
        apr_int64_t v[ARK_JOURNAL_FIELDS];

        ark_govern_usage_values(&u, v);
        ark_journal_known(ark_journal_get(), rc->jslot, v, now);
        u.done_id = rc->jdone;
    }
    if (rc->governed) {
        ark_govern_settle(g, &rc->ticket, &rc->subject, &u, r->pool);
    }
    if (rc->jslot >= 0) {
        ark_journal_release(ark_journal_get(), rc->jslot);
        rc->jslot = -1;
    }
    if (rc->ticket.verdict != ARK_GOV_OK) {
        return;                        /* refused: counted as such */
    }
    node_stat(rc->log.key_name, rc->log.tenant, ARK_SF_REQUESTS, 1);
    node_stat(rc->log.key_name, rc->log.tenant, ARK_SF_PROMPT,
              u.prompt_tokens);
    node_stat(rc->log.key_name, rc->log.tenant, ARK_SF_COMPLETION,
              u.completion_tokens);
    node_stat(rc->log.key_name, rc->log.tenant, ARK_SF_SPEND, u.spend_nano);
    node_stat(rc->log.key_name, rc->log.tenant, ARK_SF_CACHE_HITS,
              u.cache_hit);
    apr_snprintf(id, sizeof(id), ARK_STAT_DAY_TENANT "%s",
                 rc->log.tenant ? rc->log.tenant : rc->log.key_name);
    ark_govern_stat_add_daily(g, id, 0, u.spend_nano, now);
    ark_govern_stat_add_daily(g, id, 1, 1, now);
    if (rc->answered) {
        apr_snprintf(id, sizeof(id), ARK_STAT_DAY_PROVIDER "%s",
                     rc->answered->provider->name);
        ark_govern_stat_add_daily(g, id, 0, u.spend_nano, now);
        ark_govern_stat_add_daily(g, id, 1, 1, now);
        if (rc->answered->slot < sc->nslots && !u.cache_hit) {
            ark_sig_count_usage(&sc->slots[rc->answered->slot], now,
                                u.prompt_tokens, u.completion_tokens,
                                u.spend_nano);
        }
    }
}

static int handle_completion(request_rec *r, ark_rctx_t *rc,
                             ark_endpoint_t endpoint)
{
    ark_server_conf_t *sc = srv_conf(r);
    const ark_key_t *key = NULL;
    ark_req_t *req = apr_pcalloc(r->pool, sizeof(*req));
    ark_gw_t *gw;
    const char *body = NULL;
    apr_size_t blen = 0;
    ark_err_t e;
    apr_status_t st;
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
    rc->req_body = body;
    rc->req_len = blen;
    if ((rv = check_limits(r, body, blen, endpoint)) != DECLINED) {
        return rv;
    }
    if (rc->front == ARK_FRONT_ANTHROPIC) {
        st = parse_anthropic(req, body, blen, &e, r->pool);
    }
    else if (endpoint == ARK_ENDPOINT_CHAT) {
        st = ark_chat_req_parse(req, body, blen, &e, r->pool);
    }
    else {
        st = ark_embed_req_parse(req, body, blen, &e, r->pool);
    }
    if (st != APR_SUCCESS) {
        return ark_error_reply(r, &e);
    }
    rc->log.model = req->model;
    rc->log.stream = req->stream;

    gw = apr_pcalloc(r->pool, sizeof(*gw));
    gw->r = r;
    gw->rc = rc;
    gw->sc = sc;
    gw->req = req;
    gw->key = key;
    gw->bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    gw->model = apr_hash_get(sc->models, req->model, APR_HASH_KEY_STRING);
    if (!gw->model) {
        ark_err_setf(&e, r->pool, 404, "model_not_found", "model",
                     "The model '%s' does not exist or you do not have "
                     "access to it.", ark_err_quote(req->model, 128, r->pool));
        return ark_error_reply(r, &e);
    }
    if (!ark_key_allows_model(key, gw->model->alias)) {
        ark_err_setf(&e, r->pool, 403, "model_not_allowed", "model",
                     "This API key is not allowed to use the model '%s'.",
                     gw->model->alias);
        return ark_error_reply(r, &e);
    }
    if ((rv = request_priority(r, key, &gw->priority)) != DECLINED) {
        return rv;
    }
    gw->policy = effective_policy(r, sc, gw->model);
    gw->weights = &sc->weights[gw->priority];
    rc->model = gw->model;
    if ((rv = govern_admit(gw)) != DECLINED) {
        return rv;
    }
    if (endpoint == ARK_ENDPOINT_CHAT
        && (rv = cache_lookup(gw)) != DECLINED) {
        return rv;
    }
    if ((rv = route(gw)) != DECLINED) {
        return rv;
    }
    journal_claim(gw);
    return call_upstreams(gw);
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

/* Starts the request's trace (continued from the client's traceparent,
 * or a new one) and names it on every response, errors included:
 * err_headers_out go out with any status. */
static void trace_begin(request_rec *r, ark_rctx_t *rc)
{
    ark_trace_begin(&rc->trace, apr_table_get(r->headers_in, "traceparent"),
                    apr_table_get(r->headers_in, "tracestate"), r->pool);
    rc->traceparent = ark_traceparent_format(&rc->trace, rc->trace.span_id,
                                             r->pool);
    rc->attempts = apr_array_make(r->pool, 4, sizeof(ark_attempt_t *));
    rc->log.trace_id = rc->trace.trace_id;
    apr_table_setn(r->err_headers_out, "x-ark-trace-id", rc->trace.trace_id);
    apr_table_setn(r->err_headers_out, "traceparent", rc->traceparent);
}

int ark_gateway_handler(request_rec *r)
{
    ark_rctx_t *rc = apr_pcalloc(r->pool, sizeof(*rc));
    const char *uri = r->uri, *slash;

    ark_access_init(&rc->log, r->request_time);
    rc->cache_lookup_us = -1;
    rc->jslot = -1;
    rc->log.method = r->method;
    rc->log.path = r->uri;
    ap_set_module_config(r->request_config, &ark_module, rc);
    trace_begin(r, rc);

    if (ends_with(uri, "/chat/completions")) {
        return handle_completion(r, rc, ARK_ENDPOINT_CHAT);
    }
    if (ends_with(uri, "/embeddings")) {
        return handle_completion(r, rc, ARK_ENDPOINT_EMBEDDINGS);
    }
    if (ends_with(uri, "/messages")) {
        rc->front = ARK_FRONT_ANTHROPIC;
        return handle_completion(r, rc, ARK_ENDPOINT_CHAT);
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

/* Hands a complete answer to ark-cached, after the client has it:
 * queued for the child's store thread, so that neither this request nor
 * the connection's next one waits for it (inline only when the thread
 * could not start). */
static void cache_store(request_rec *r, ark_rctx_t *rc)
{
    ark_cache_client_t *client = ark_cache_client();
    ark_cache_queue_t *q = ark_cache_queue();
    const char *detail = NULL;
    apr_status_t rv;

    if (!rc->store_key || !client || rc->log.client_aborted) {
        return;
    }
    if (q) {
        if (ark_cache_queue_store(q, rc->store_key->ns, rc->store_key->text,
                                  rc->store_key->text_len, rc->store_body,
                                  rc->store_len, rc->store_ttl,
                                  rc->traceparent) != APR_SUCCESS
            && ark_cache_client_should_log(client, ARK_CACHE_LOG_INTERVAL)) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00101)
                          "cache store dropped: the store queue is full "
                          "(logged once a minute)");
        }
        return;
    }
    rv = ark_cache_client_store_traced(client, rc->store_key->ns,
                                       rc->store_key->text,
                                       rc->store_key->text_len,
                                       rc->store_body, rc->store_len,
                                       rc->store_ttl, rc->traceparent,
                                       &detail, r->pool);
    if (rv != APR_SUCCESS && rv != APR_EAGAIN
        && ark_cache_client_should_log(client, ARK_CACHE_LOG_INTERVAL)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ARKLOGNO(00053)
                      "cache store failed (logged once a minute): %s",
                      detail ? detail : "");
    }
}

/* A body for the access log: redacted first, then cut at max bytes on
 * a UTF-8 character boundary (cutting first could leave half a secret
 * that redaction no longer recognises). */
static const char *log_body(ark_rctx_t *rc, ark_redact_t *red,
                            const char *body, apr_size_t len,
                            apr_size_t max, apr_pool_t *p)
{
    apr_size_t out_len = 0;
    const char *text = ark_redact(red, body, len, &out_len, NULL);

    if (out_len > max) {
        while (max > 0 && ((unsigned char)text[max] & 0xC0) == 0x80) {
            max--;                     /* not inside a character */
        }
        text = apr_pstrmemdup(p, text, max);
        rc->log.bodies_truncated = 1;
    }
    return text;
}

/* ArkLogBodies: the redacted bodies, one redactor for the line so that a
 * value in both bodies gets the same token. */
static void log_bodies(request_rec *r, ark_rctx_t *rc)
{
    ark_dir_conf_t *dc = ap_get_module_config(r->per_dir_config,
                                              &ark_module);
    apr_size_t max;
    ark_redact_t *red;

    if (!dc || dc->log_bodies <= 0) {
        return;
    }
    max = dc->log_body_max ? dc->log_body_max : ARK_LOG_BODY_DEFAULT_MAX;
    red = ark_redact_make(r->pool);
    if ((dc->log_bodies & ARK_LOG_BODY_REQUEST) && rc->req_body) {
        rc->log.request_body = log_body(rc, red, rc->req_body, rc->req_len,
                                        max, r->pool);
    }
    if ((dc->log_bodies & ARK_LOG_BODY_RESPONSE) && rc->resp_body) {
        rc->log.response_body = log_body(rc, red, rc->resp_body,
                                         rc->resp_len, max, r->pool);
    }
}

static const char *outcome_name(const ark_attempt_t *a)
{
    if (!a->released) {
        return "unknown";
    }
    if (a->cancel) {
        return "cancelled";
    }
    return a->outcome == ARK_OUTCOME_SUCCESS ? "success"
           : a->outcome == ARK_OUTCOME_FAILURE ? "failure" : "neutral";
}

/* The CLIENT span of one upstream attempt (a string for the exporter). */
static char *attempt_span(request_rec *r, ark_rctx_t *rc,
                          const ark_attempt_t *a, int number, apr_time_t now)
{
    const ark_http_result_t *res = &a->res;
    ark_span_t s;

    ark_span_init(&s, r->pool);
    s.trace_id = rc->trace.trace_id;
    s.span_id = a->span_id;
    s.parent_id = rc->trace.span_id;
    s.tracestate = rc->trace.tracestate;
    s.kind = ARK_SPAN_CLIENT;
    s.name = apr_pstrcat(r->pool,
                         a->gw->req->endpoint == ARK_ENDPOINT_EMBEDDINGS
                             ? "embeddings " : "chat ",
                         a->ch->upstream_model, NULL);
    s.start = a->started;
    s.end = a->released ? a->ended : now;
    ark_span_attr_int(&s, "ark.attempt", number);
    ark_span_attr_str(&s, "ark.channel", a->ch->name);
    ark_span_attr_str(&s, "ark.provider", a->ch->provider->name);
    ark_span_attr_str(&s, "ark.provider.type", a->ch->provider->type->name);
    ark_span_attr_str(&s, "gen_ai.request.model", a->ch->upstream_model);
    ark_span_attr_str(&s, "ark.outcome", outcome_name(a));
    if (a->hedge) {
        ark_span_attr_bool(&s, "ark.hedge", 1);
    }
    if (res->status) {
        ark_span_attr_int(&s, "http.response.status_code", res->status);
        ark_span_attr_double(&s, "ark.ttfb_ms", (double)res->ttfb / 1000.0);
    }
    if (res->fail != ARK_HTTP_OK) {
        ark_span_attr_str(&s, "error.type", ark_http_fail_name(res->fail));
    }
    if (a->released && a->outcome == ARK_OUTCOME_SUCCESS
        && rc->answered == a->ch) {
        ark_span_attr_count(&s, "gen_ai.usage.input_tokens",
                            rc->log.usage.prompt_tokens);
        ark_span_attr_count(&s, "gen_ai.usage.output_tokens",
                            rc->log.usage.completion_tokens);
    }
    if (!a->cancel && (a->outcome == ARK_OUTCOME_FAILURE
                       || (res->fail != ARK_HTTP_OK
                           && res->fail != ARK_HTTP_ABORTED)
                       || res->status >= 400)) {
        s.error = 1;
        s.status_message = res->fail != ARK_HTTP_OK
                           ? ark_http_fail_name(res->fail)
                           : apr_psprintf(r->pool, "HTTP %d", res->status);
    }
    return ark_span_json(&s);
}

/* Hands the request's spans to the exporter when ArkTraceExport is on
 * and the trace is sampled: the gateway's SERVER span and one CLIENT
 * span per upstream attempt. Attributes say what was done, never a key,
 * a secret or a body. */
static void trace_export(request_rec *r, ark_rctx_t *rc)
{
    ark_trace_exporter_t *ex = ark_trace_exporter();
    apr_time_t now = apr_time_now();
    int status = rc->log.status ? rc->log.status : r->status, i;
    ark_span_t s;

    if (!ex || !rc->attempts
        || !(rc->trace.flags & ARK_TRACE_FLAG_SAMPLED)) {
        return;
    }
    ark_span_init(&s, r->pool);
    s.trace_id = rc->trace.trace_id;
    s.span_id = rc->trace.span_id;
    s.parent_id = rc->trace.parent_id;
    s.tracestate = rc->trace.tracestate;
    s.kind = ARK_SPAN_SERVER;
    s.name = apr_pstrcat(r->pool, r->method, " ", r->uri, NULL);
    s.start = r->request_time;
    s.end = now;
    ark_span_attr_str(&s, "http.request.method", r->method);
    ark_span_attr_str(&s, "url.path", r->uri);
    ark_span_attr_int(&s, "http.response.status_code", status);
    ark_span_attr_str(&s, "ark.tenant", rc->log.tenant);
    ark_span_attr_str(&s, "ark.model", rc->log.model);
    if (rc->log.model) {
        ark_span_attr_bool(&s, "ark.stream", rc->log.stream);
    }
    ark_span_attr_str(&s, "ark.provider", rc->log.provider);
    ark_span_attr_str(&s, "ark.channel",
                      rc->answered ? rc->answered->name : NULL);
    ark_span_attr_str(&s, "gen_ai.response.model", rc->log.upstream_model);
    ark_span_attr_int(&s, "ark.attempts", rc->attempts->nelts);
    ark_span_attr_str(&s, "ark.cache", rc->log.cache);
    if (rc->log.cache_similarity >= 0) {
        ark_span_attr_double(&s, "ark.cache.similarity",
                             rc->log.cache_similarity);
    }
    ark_span_attr_count(&s, "gen_ai.usage.input_tokens",
                        rc->log.usage.prompt_tokens);
    ark_span_attr_count(&s, "gen_ai.usage.output_tokens",
                        rc->log.usage.completion_tokens);
    ark_span_attr_str(&s, "ark.error", rc->log.error_code);
    if (rc->log.client_aborted) {
        ark_span_attr_bool(&s, "ark.client_aborted", 1);
    }
    if (status >= 500) {
        s.error = 1;
        s.status_message = rc->log.error_code;
    }
    ark_trace_exporter_submit(ex, ark_span_json(&s));
    for (i = 0; i < rc->attempts->nelts; i++) {
        ark_trace_exporter_submit(ex, attempt_span(
            r, rc, APR_ARRAY_IDX(rc->attempts, i, ark_attempt_t *), i + 1,
            now));
    }
}

int ark_log_transaction(request_rec *r)
{
    ark_server_conf_t *sc = srv_conf(r);
    ark_rctx_t *rc = rctx_get(r);
    const char *line;
    apr_size_t len;

    if (!rc) {
        return DECLINED;
    }
    /* the answer has reached the client: now it may go to the cache */
    cache_store(r, rc);
    trace_export(r, rc);
    account(r, rc);
    if (!sc->access_fd) {
        return DECLINED;
    }
    if (!rc->log.status) {
        rc->log.status = r->status;
    }
    rc->log.latency = apr_time_now() - r->request_time;
    log_bodies(r, rc);
    line = ark_access_line(&rc->log, &len, r->pool);
    /* one write per line: O_APPEND files and pipes keep lines whole */
    apr_file_write_full(sc->access_fd, line, len, NULL);
    return OK;
}
