/* Provider type "openai": OpenAI and every OpenAI-compatible endpoint
 * (DeepSeek, Qwen compatible mode, Moonshot, vLLM, Ollama, ...).
 *
 * The client already speaks this format, so translation is minimal: the
 * model alias is replaced by the upstream model name, and streamed
 * requests always ask for the usage chunk (stream_options.include_usage)
 * so that tokens are accounted for every stream. The usage chunk is
 * withheld from clients that did not ask for it themselves. Answers are
 * validated and relayed byte for byte. The azure type reuses everything
 * here but the URL and the auth header.
 */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "ark_provider.h"

const char *ark_openai_body(const ark_req_t *req, const char *upstream_model,
                            apr_size_t *plen, apr_pool_t *p)
{
    /* a shallow copy: the client's document stays as it was, so another
     * channel can be tried with it after a failure */
    json_t *root = json_copy(req->root);
    const char *body;

    if (!root) {
        return NULL;
    }
    json_object_set_new(root, "model", json_string(upstream_model));
    if (req->endpoint == ARK_ENDPOINT_CHAT && req->stream) {
        json_t *opts = json_object_get(root, "stream_options");

        opts = json_is_object(opts) ? json_copy(opts) : json_object();
        json_object_set_new(opts, "include_usage", json_true());
        json_object_set_new(root, "stream_options", opts);
    }
    body = ark_json_pdump(root, plen, p);
    json_decref(root);
    return body;
}

static apr_status_t openai_build_request(ark_upstream_req_t *out,
                                         const ark_provider_t *prov,
                                         const char *upstream_model,
                                         const ark_req_t *req,
                                         ark_err_t *err, apr_pool_t *p)
{
    int chat = req->endpoint == ARK_ENDPOINT_CHAT;

    out->body = ark_openai_body(req, upstream_model, &out->body_len, p);
    if (!out->body) {
        ark_err_set(err, 500, "internal_error", NULL,
                    "The gateway could not encode the upstream request.");
        return APR_ENOMEM;
    }
    out->url = apr_pstrcat(p, prov->base_url,
                           chat ? "/chat/completions" : "/embeddings", NULL);
    out->headers = ark_upstream_headers(chat && req->stream, "Authorization",
                                        "Bearer ", prov->secret, p);
    return APR_SUCCESS;
}

apr_status_t ark_openai_parse_response(const char **pbody, apr_size_t *plen,
                                       ark_usage_t *usage,
                                       const ark_req_t *req,
                                       const char *body, apr_size_t len,
                                       apr_pool_t *p)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *list = req && req->endpoint == ARK_ENDPOINT_EMBEDDINGS
                       ? "data" : "choices";
    apr_status_t rv = APR_EINVAL;

    (void)p;
    if (root && json_is_object(root)
        && json_is_array(json_object_get(root, list))) {
        ark_usage_from_openai(usage, json_object_get(root, "usage"));
        *pbody = body;
        *plen = len;
        rv = APR_SUCCESS;
    }
    json_decref(root);
    return rv;
}

apr_status_t ark_openai_stream_event(ark_stream_t *st,
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
    /* the usage-only chunk the gateway asked for on the client's behalf,
     * and choice-less bookkeeping chunks (Azure's prompt filter results) */
    withhold = json_is_array(choices) && json_array_size(choices) == 0
               && (json_is_object(usage) ? !st->client_wants_usage : 1);
    json_decref(chunk);
    if (withhold) {
        return APR_SUCCESS;
    }
    out = apr_pstrcat(st->pool, "data: ", ev->data, "\n\n", NULL);
    st->events++;
    return st->emit(st->emit_ctx, out, ev->data_len + 8);
}

void ark_openai_map_error(ark_err_t *err, const ark_provider_t *prov,
                          int status, const char *body, apr_size_t len,
                          apr_pool_t *p)
{
    ark_provider_map_status(err, status,
                            ark_provider_error_message(body, len,
                                                       prov->secret, p),
                            p);
}

const ark_provider_type_t ark_provider_openai = {
    "openai",
    ARK_EP_CHAT | ARK_EP_EMBEDDINGS,
    NULL,
    openai_build_request,
    ark_openai_parse_response,
    ark_openai_stream_event,
    NULL,
    ark_openai_map_error,
};
