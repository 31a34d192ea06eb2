/* Provider type "openai": OpenAI and every OpenAI-compatible endpoint
 * (DeepSeek, Qwen compatible mode, Moonshot, vLLM, Ollama, ...).
 *
 * The client already speaks this format, so translation is minimal: the
 * model alias is replaced by the upstream model name, and streamed
 * requests always ask for the usage chunk (stream_options.include_usage)
 * so that tokens are accounted for every stream. The usage chunk is
 * withheld from clients that did not ask for it themselves. Answers are
 * validated and relayed byte for byte.
 */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "ark_provider.h"

static apr_status_t openai_build_request(ark_upstream_req_t *out,
                                         const ark_provider_t *prov,
                                         const char *upstream_model,
                                         const ark_chat_req_t *req,
                                         ark_err_t *err, apr_pool_t *p)
{
    json_t *root = req->root;

    json_object_set_new(root, "model", json_string(upstream_model));
    if (req->stream) {
        json_t *opts = json_object_get(root, "stream_options");

        if (!json_is_object(opts)) {
            opts = json_object();
            json_object_set_new(root, "stream_options", opts);
        }
        json_object_set_new(opts, "include_usage", json_true());
    }
    out->body = ark_json_pdump(root, &out->body_len, p);
    if (!out->body) {
        ark_err_set(err, 500, "internal_error", NULL,
                    "The gateway could not encode the upstream request.");
        return APR_ENOMEM;
    }
    out->url = apr_pstrcat(p, prov->base_url, "/chat/completions", NULL);
    out->headers = apr_array_make(p, 5, sizeof(const char *));
    APR_ARRAY_PUSH(out->headers, const char *) =
        "Content-Type: application/json";
    APR_ARRAY_PUSH(out->headers, const char *) =
        req->stream ? "Accept: text/event-stream" : "Accept: application/json";
    if (prov->secret) {
        APR_ARRAY_PUSH(out->headers, const char *) =
            apr_pstrcat(p, "Authorization: Bearer ", prov->secret, NULL);
    }
    return APR_SUCCESS;
}

static apr_status_t openai_parse_response(const char **pbody,
                                          apr_size_t *plen,
                                          ark_usage_t *usage,
                                          const char *body, apr_size_t len,
                                          apr_pool_t *p)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    apr_status_t rv = APR_EINVAL;

    (void)p;
    if (root && json_is_object(root)
        && json_is_array(json_object_get(root, "choices"))) {
        ark_usage_from_openai(usage, json_object_get(root, "usage"));
        *pbody = body;
        *plen = len;
        rv = APR_SUCCESS;
    }
    json_decref(root);
    return rv;
}

static apr_status_t openai_stream_event(ark_stream_t *st,
                                        const ark_sse_event_t *ev)
{
    json_t *chunk, *usage, *choices;
    const char *out;
    int withhold;

    if (!strcmp(ev->data, "[DONE]")) {
        st->done = 1;
        return st->emit(st->emit_ctx, "data: [DONE]\n\n", 14);
    }
    chunk = json_loadb(ev->data, ev->data_len, 0, NULL);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return APR_EINVAL;
    }
    if (json_object_get(chunk, "error")) {
        json_decref(chunk);
        return APR_EGENERAL;       /* the upstream failed mid-stream */
    }
    usage = json_object_get(chunk, "usage");
    ark_usage_from_openai(&st->usage, usage);
    choices = json_object_get(chunk, "choices");
    /* the usage-only chunk the gateway asked for on the client's behalf */
    withhold = !st->client_wants_usage && json_is_object(usage)
               && json_is_array(choices) && json_array_size(choices) == 0;
    json_decref(chunk);
    if (withhold) {
        return APR_SUCCESS;
    }
    out = apr_pstrcat(st->pool, "data: ", ev->data, "\n\n", NULL);
    st->events++;
    return st->emit(st->emit_ctx, out, ev->data_len + 8);
}

static void openai_map_error(ark_err_t *err, const ark_provider_t *prov,
                             int status, const char *body, apr_size_t len,
                             apr_pool_t *p)
{
    const char *msg = ark_provider_error_message(body, len, prov->secret, p);

    switch (status) {
    case 400:
    case 422:
        ark_err_set(err, 400, "upstream_rejected_request", NULL,
                    msg ? msg : "The upstream provider rejected the "
                                "request as invalid.");
        break;
    case 413:
        ark_err_set(err, 413, "request_too_large", NULL,
                    msg ? msg : "The upstream provider rejected the "
                                "request as too large.");
        break;
    case 401:
    case 403:
        ark_err_set(err, 502, "upstream_auth_failed", NULL,
                    "The upstream provider rejected the gateway's "
                    "credentials.");
        break;
    case 404:
        ark_err_set(err, 502, "upstream_not_found", NULL,
                    "The upstream provider does not know the configured "
                    "model or endpoint.");
        break;
    case 408:
        ark_err_set(err, 504, "upstream_timeout", NULL,
                    "The upstream provider timed out.");
        break;
    case 429:
        ark_err_set(err, 429, "upstream_rate_limited", NULL,
                    "The upstream provider is rate limiting requests; "
                    "retry later.");
        break;
    default:
        ark_err_setf(err, p, 502, "upstream_error", NULL,
                     "The upstream provider failed (HTTP %d).", status);
        break;
    }
}

const ark_provider_type_t ark_provider_openai = {
    "openai",
    openai_build_request,
    openai_parse_response,
    openai_stream_event,
    openai_map_error,
};
