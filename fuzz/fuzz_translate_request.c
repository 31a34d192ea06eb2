/* Fuzz target: the request translators, build_request of every provider
 * type (mod_ark/ark_provider_*.c).
 *
 * The input is a client's body for POST /v1/chat/completions or, when
 * the chat validator refuses it, /v1/embeddings. A body the validator
 * accepts is handed to build_request of each provider in the table (of
 * the types serving that endpoint), as the gateway would after routing,
 * with a fixed upstream model or, for the providers with options, the
 * client's own alias (so that model names reach the URL escaping and the
 * JSON splicing too). Checked: the client's document is left unchanged;
 * an upstream request has a URL under the base URL, header lines without
 * line breaks and a JSON object body; for the OpenAI-shaped types (whose
 * body is spliced from the client's bytes) that body is the client's
 * document with only "model" and stream_options.include_usage changed;
 * a refusal is a client-safe 400 or 500.
 */
#include <string.h>

#include <jansson.h>

#include "ark_provider.h"
#include "ark_request.h"
#include "fuzz_common.h"
#include "fuzz_provider.h"

#define UPSTREAM_MODEL "gpt-4o-2024-08-06"

/* The document an OpenAI-shaped upstream must receive (see
 * ark_openai_body in ark_provider.h). New reference. */
static json_t *expected_openai_body(const ark_req_t *req, const char *model)
{
    json_t *want = json_deep_copy(req->root);

    json_object_set_new(want, "model", json_string(model));
    if (req->endpoint == ARK_ENDPOINT_CHAT && req->stream) {
        json_t *opts = json_object_get(want, "stream_options");

        if (!json_is_object(opts)) {
            opts = json_object();
            json_object_set_new(want, "stream_options", opts);
        }
        json_object_set_new(opts, "include_usage", json_true());
    }
    return want;
}

static void build_all(const ark_req_t *req, apr_pool_t *p)
{
    json_t *before = json_deep_copy(req->root);
    unsigned int ep = req->endpoint == ARK_ENDPOINT_CHAT ? ARK_EP_CHAT
                                                         : ARK_EP_EMBEDDINGS;
    int i;

    FUZZ_CHECK(before != NULL);
    for (i = 0; i < FUZZ_NPROVIDERS; i++) {
        const ark_provider_t *prov = fuzz_provider(i);
        const char *model = (i % 2) ? req->model : UPSTREAM_MODEL;
        ark_upstream_req_t up;
        ark_err_t err;
        apr_status_t rv;

        if (!(prov->type->endpoints & ep)) {
            continue;
        }
        memset(&up, 0, sizeof(up));
        memset(&err, 0, sizeof(err));
        rv = prov->type->build_request(&up, prov, model, req, &err, p);
        FUZZ_CHECK(json_equal(before, req->root));
        if (rv != APR_SUCCESS) {
            FUZZ_CHECK(err.status == 400 || err.status == 500);
            fuzz_check_err(&err, 0, p);
            continue;
        }
        fuzz_check_upstream(&up, prov);
        if (prov->type->parse_response == ark_openai_parse_response) {
            json_t *got = json_loadb(up.body, up.body_len,
                                     JSON_ALLOW_NUL, NULL);
            json_t *want = expected_openai_body(req, model);

            FUZZ_CHECK(json_equal(got, want));
            json_decref(got);
            json_decref(want);
        }
    }
    json_decref(before);
}

void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p)
{
    /* exactly the bytes read, not NUL-terminated, as the handler's */
    const char *body = (const char *)data;
    ark_req_t req;
    ark_err_t err;

    if (ark_chat_req_parse(&req, body, size, &err, p) == APR_SUCCESS
        || ark_embed_req_parse(&req, body, size, &err, p) == APR_SUCCESS) {
        build_all(&req, p);
    }
}
