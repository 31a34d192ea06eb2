/* Fuzz target: the response translators, parse_response and map_error
 * of every provider type, and the Anthropic front's
 * ark_anthropic_response_from_openai (mod_ark/ark_front_anthropic.h).
 *
 * The input is an upstream's answer body, not NUL-terminated. Every
 * provider parses it as a complete 2xx answer to a chat request (and the
 * OpenAI-shaped ones to an embeddings request too); what they accept
 * must be a JSON object for the client, and a chat answer is then turned
 * into an Anthropic Message as the front does, which must be a JSON
 * object of type "message" when it succeeds. The same body is then
 * mapped as an error answer with two statuses: the client's error must
 * be client-safe and must never hold the provider's secret, even when
 * the upstream quotes it.
 */
#include <string.h>

#include <jansson.h>

#include "ark_front_anthropic.h"
#include "ark_provider.h"
#include "fuzz_common.h"
#include "fuzz_provider.h"

static const int statuses[] = {
    400, 401, 403, 404, 408, 413, 422, 500, 502, 503, 529
};

static void check_message(const char *body, apr_size_t len)
{
    json_t *msg = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    const char *type = json_string_value(json_object_get(msg, "type"));

    FUZZ_CHECK(json_is_object(msg));
    FUZZ_CHECK(type != NULL && !strcmp(type, "message"));
    json_decref(msg);
}

static void to_anthropic(const char *body, apr_size_t len, const char *model,
                         apr_pool_t *p)
{
    const char *out = NULL;
    apr_size_t out_len = 0;

    if (ark_anthropic_response_from_openai(&out, &out_len, body, len, model,
                                           p) == APR_SUCCESS) {
        FUZZ_CHECK(out != NULL && strlen(out) == out_len);
        check_message(out, out_len);
    }
}

static void parse_one(const ark_provider_t *prov, const ark_req_t *req,
                      const char *body, apr_size_t len, apr_pool_t *p)
{
    const char *out = NULL;
    apr_size_t out_len = 0;
    ark_usage_t u;
    json_t *doc;

    ark_usage_clear(&u);
    if (prov->type->parse_response(&out, &out_len, &u, req, body, len, p)
        != APR_SUCCESS) {
        return;
    }
    FUZZ_CHECK(out != NULL);
    doc = json_loadb(out, out_len, JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(json_is_object(doc));
    json_decref(doc);
    FUZZ_CHECK(u.prompt_tokens >= -1 && u.completion_tokens >= -1
               && u.total_tokens >= -1 && u.cached_tokens >= -1);
    if (req->endpoint == ARK_ENDPOINT_CHAT) {
        to_anthropic(out, out_len, "claude-sonnet-4-5", p);
    }
}

static void map_one(const ark_provider_t *prov, int status, const char *body,
                    apr_size_t len, apr_pool_t *p)
{
    ark_err_t err;

    memset(&err, 0x5a, sizeof(err));
    prov->type->map_error(&err, prov, status, body, len, p);
    fuzz_check_err(&err, 1, p);
    FUZZ_CHECK(err.retry_after >= 0);
}

void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p)
{
    const char *body = (const char *)data;
    int status = statuses[size % (sizeof(statuses) / sizeof(statuses[0]))];
    int i;

    for (i = 0; i < FUZZ_NPROVIDERS; i += 2) {
        const ark_provider_t *prov = fuzz_provider(i);

        parse_one(prov, fuzz_chat_req(0), body, size, p);
        if (prov->type->endpoints & ARK_EP_EMBEDDINGS) {
            parse_one(prov, fuzz_embed_req(), body, size, p);
        }
        map_one(prov, status, body, size, p);
        map_one(prov, 429, body, size, p);
    }
    to_anthropic(body, size, NULL, p);
}
