/* Fuzz target: the Anthropic front's request translation,
 * ark_anthropic_request_to_openai (mod_ark/ark_front_anthropic.h),
 * followed by the rest of the gateway's path for POST /v1/messages.
 *
 * The input is a client's Messages API body. It is parsed as the glue
 * parses it (ark_json_load_object: duplicate keys refused) and
 * translated. Checked: the client's document is left unchanged; a
 * refusal is a 400 with the offending field in param and a valid
 * Anthropic error body; an accepted request is an OpenAI chat request
 * the gateway's own validator accepts (ark_chat_req_from_json), which
 * every provider type can then be asked to build.
 */
#include <string.h>

#include <jansson.h>

#include "ark_front_anthropic.h"
#include "ark_provider.h"
#include "ark_request.h"
#include "fuzz_common.h"
#include "fuzz_provider.h"

static void check_error_body(const ark_err_t *err, apr_pool_t *p)
{
    const char *body = ark_anthropic_error_json(err, p);
    json_t *doc = json_loads(body, JSON_ALLOW_NUL, NULL);

    FUZZ_CHECK(json_is_object(doc));
    json_decref(doc);
}

static void build_all(const ark_req_t *req, apr_pool_t *p)
{
    int i;

    for (i = 0; i < FUZZ_NPROVIDERS; i++) {
        const ark_provider_t *prov = fuzz_provider(i);
        ark_upstream_req_t up;
        ark_err_t err;

        memset(&up, 0, sizeof(up));
        if (prov->type->build_request(&up, prov, "gpt-4o-2024-08-06", req,
                                      &err, p) == APR_SUCCESS) {
            fuzz_check_upstream(&up, prov);
        }
        else {
            fuzz_check_err(&err, 0, p);
        }
    }
}

void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p)
{
    json_t *in, *before, *out = NULL;
    ark_err_t err;
    ark_req_t req;
    apr_status_t rv;

    if (ark_json_load_object(&in, (const char *)data, size, &err, p)
        != APR_SUCCESS) {
        check_error_body(&err, p);
        return;
    }
    ark_json_pool_own(in, p);
    before = ark_json_pool_own(json_deep_copy(in), p);

    memset(&err, 0, sizeof(err));
    rv = ark_anthropic_request_to_openai(&out, in, &err, p);
    FUZZ_CHECK(json_equal(in, before));
    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(out == NULL);
        FUZZ_CHECK(err.status == 400 || err.status == 500);
        FUZZ_CHECK(err.status != 400 || err.param != NULL);
        fuzz_check_err(&err, 0, p);
        check_error_body(&err, p);
        return;
    }
    FUZZ_CHECK(json_is_object(out));
    /* takes over out whatever the outcome */
    rv = ark_chat_req_from_json(&req, out, size, &err, p);
    FUZZ_CHECK(rv == APR_SUCCESS);
    build_all(&req, p);
}
