/* Fuzz target: the client request validator (mod_ark/ark_request.h).
 *
 * The input is a request body, handed over as the handler does: exactly
 * the bytes read, not NUL-terminated. It goes through the chat validator
 * (ark_chat_req_parse) and the embeddings validator
 * (ark_embed_req_parse). Checked: an accepted body yields an object
 * root, a model alias and a message count matching the document, a
 * non-negative max_out; a refused one a client-safe 400 whose JSON error
 * body is valid. Both must agree with jansson on what is JSON at all.
 * The input limits checked before parsing (ark_req_check_limits) refuse
 * with one of their three 400s, and a body they let through never has
 * more messages than the limit.
 */
#include <string.h>

#include <jansson.h>

#include "ark_request.h"
#include "fuzz_common.h"
#include "fuzz_provider.h"

static void check_refusal(const ark_err_t *err, apr_pool_t *p)
{
    FUZZ_CHECK(err->status == 400);
    fuzz_check_err(err, 0, p);
}

static void check_chat(const ark_req_t *req, const char *body, size_t size)
{
    const json_t *messages = json_object_get(req->root, "messages");

    FUZZ_CHECK(req->endpoint == ARK_ENDPOINT_CHAT);
    FUZZ_CHECK(json_is_object(req->root));
    FUZZ_CHECK(req->model && *req->model);
    FUZZ_CHECK(!strcmp(req->model, json_string_value(
                           json_object_get(req->root, "model"))));
    FUZZ_CHECK(json_is_array(messages)
               && json_array_size(messages) == req->n_messages);
    FUZZ_CHECK(req->stream == json_is_true(json_object_get(req->root,
                                                           "stream")));
    FUZZ_CHECK(!req->include_usage || req->stream);
    FUZZ_CHECK(req->raw == body && req->raw_len == size);
    FUZZ_CHECK(req->body_len == size);
    FUZZ_CHECK(ark_req_max_out(req) >= 0);
}

static void check_limits(const char *body, size_t size, apr_pool_t *p)
{
    static const ark_req_limits_t limits[] = {{64, 10000, 100}, {2, 8, 1}};
    size_t i;

    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        ark_err_t err;
        ark_req_t req;

        memset(&err, 0, sizeof(err));
        if (ark_req_check_limits(body, size, &limits[i], &err, p)
            != APR_SUCCESS) {
            check_refusal(&err, p);
            FUZZ_CHECK(err.code && (!strcmp(err.code, "json_too_deep")
                                    || !strcmp(err.code,
                                               "json_too_many_elements")
                                    || !strcmp(err.code,
                                               "too_many_messages")));
        }
        else if (ark_chat_req_parse(&req, body, size, &err, p)
                 == APR_SUCCESS) {
            FUZZ_CHECK(req.n_messages <= limits[i].max_messages);
        }
    }
}

void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p)
{
    const char *body = (const char *)data;
    ark_req_t req;
    ark_err_t err;
    json_t *root;
    int is_json;

    root = json_loadb(body, size, JSON_REJECT_DUPLICATES, NULL);
    is_json = json_is_object(root);
    json_decref(root);

    memset(&err, 0, sizeof(err));
    if (ark_chat_req_parse(&req, body, size, &err, p) == APR_SUCCESS) {
        FUZZ_CHECK(is_json);
        check_chat(&req, body, size);
    }
    else {
        check_refusal(&err, p);
    }

    memset(&err, 0, sizeof(err));
    if (ark_embed_req_parse(&req, body, size, &err, p) == APR_SUCCESS) {
        FUZZ_CHECK(is_json);
        FUZZ_CHECK(req.endpoint == ARK_ENDPOINT_EMBEDDINGS);
        FUZZ_CHECK(req.model && *req.model);
        FUZZ_CHECK(json_object_get(req.root, "input") != NULL);
    }
    else {
        check_refusal(&err, p);
    }
    check_limits(body, size, p);
}
