/* The client's request, parsed and validated.
 *
 * The handler reads the body (bounded by ArkMaxBodySize) and hands the
 * bytes to ark_chat_req_parse, which parses them with jansson (duplicate
 * object keys rejected, so the gateway and the upstream can never read
 * two different "model" fields), checks the fields the gateway relies
 * on, and reports the first problem as a 400 in ark_err_t with the
 * offending field in `param`. Fields the gateway does not interpret are
 * left for the upstream to judge.
 *
 * Ownership: the parsed document (req->root) is owned by the request; a
 * cleanup registered on the pool passed to ark_chat_req_parse releases it.
 * req->raw points into the caller's body (the handler's, from r->pool),
 * so that OpenAI-format upstream bodies can be spliced from it.
 */
#ifndef ARK_REQUEST_H
#define ARK_REQUEST_H

#include <apr_pools.h>
#include <jansson.h>

#include "ark_error.h"

/* Endpoints (also the ARK_EP_* bits of ark_provider.h). */
typedef enum {
    ARK_ENDPOINT_CHAT = 1,         /* POST /v1/chat/completions */
    ARK_ENDPOINT_EMBEDDINGS = 2    /* POST /v1/embeddings */
} ark_endpoint_t;

typedef struct ark_req_t {
    ark_endpoint_t endpoint;
    json_t *root;          /* the whole request object; owned (see above) */
    const char *model;     /* the client's model alias (pool copy) */
    int stream;            /* "stream": true */
    int include_usage;     /* "stream_options": {"include_usage": true} */
    apr_size_t n_messages; /* number of entries in "messages" (chat) */
    apr_size_t body_len;   /* size of the client's body, for estimates */
    const char *raw;       /* the bytes root was parsed from, borrowed from
                            * the caller of ark_chat_req_parse or
                            * ark_embed_req_parse (they must outlive req);
                            * NULL when root was built otherwise */
    apr_size_t raw_len;
} ark_req_t;

/* Token usage as the upstream reported it (or as counted). -1 = unknown. */
typedef struct ark_usage_t {
    long prompt_tokens;
    long completion_tokens;
    long total_tokens;
    long cached_tokens;
} ark_usage_t;

/* The request's max_completion_tokens, else max_tokens, when a positive
 * integer; else 0. */
long ark_req_max_out(const ark_req_t *req);

/* Parses and validates a chat completions request body.
 * Returns APR_SUCCESS and fills *req, or APR_EINVAL with *err set to a
 * 400 whose message says what is wrong (JSON syntax error with line and
 * column, missing or mistyped field). */
apr_status_t ark_chat_req_parse(ark_req_t *req, const char *body,
                                apr_size_t len, ark_err_t *err,
                                apr_pool_t *p);

/* Like ark_chat_req_parse, for a request already parsed (e.g. one a
 * front translated into the OpenAI format). Takes over the reference to
 * root: it is released with p whatever the outcome. body_len is the
 * client's body size, for cost estimates. */
apr_status_t ark_chat_req_from_json(ark_req_t *req, json_t *root,
                                    apr_size_t body_len, ark_err_t *err,
                                    apr_pool_t *p);

/* Parses and validates an embeddings request body: "model" (non-empty
 * string) and "input" (a non-empty string, array of strings, array of
 * token integers, or array of such arrays). Same contract as
 * ark_chat_req_parse. */
apr_status_t ark_embed_req_parse(ark_req_t *req, const char *body,
                                 apr_size_t len, ark_err_t *err,
                                 apr_pool_t *p);

/* Limits on a client's body beyond ArkMaxBodySize (ArkMaxJsonDepth,
 * ArkMaxJsonElements, ArkMaxMessages). */
typedef struct ark_req_limits_t {
    int max_depth;            /* objects/arrays nested in each other */
    apr_size_t max_elements;  /* array items + object members, in total */
    apr_size_t max_messages;  /* entries of the top-level "messages"
                               * array; 0: not checked (embeddings) */
} ark_req_limits_t;

/* Checks body[0, len) against lim in one pass of the JSON scanner,
 * before anything builds a tree of it. Returns APR_SUCCESS, also for a
 * body that is not valid JSON (the parser reports that, with line and
 * column), or APR_EINVAL with *err a 400 naming the limit and the value
 * allowed: json_too_deep, json_too_many_elements or too_many_messages
 * (param "messages"). Nothing of the body is echoed. */
apr_status_t ark_req_check_limits(const char *body, apr_size_t len,
                                  const ark_req_limits_t *lim,
                                  ark_err_t *err, apr_pool_t *p);

/* Sets every field of *u to -1 (unknown). */
void ark_usage_clear(ark_usage_t *u);

/* Reads an OpenAI "usage" object ({"prompt_tokens", "completion_tokens",
 * "total_tokens", "prompt_tokens_details": {"cached_tokens"}}) into *u.
 * Absent fields stay as they were. Returns 1 if usage was an object. */
int ark_usage_from_openai(ark_usage_t *u, const json_t *usage);

/* Like ark_usage_from_openai, for the text of the "usage" object
 * (text[0, len), e.g. located by ark_json_scan in an answer), read
 * without building a jansson tree. Returns 1 if it was a JSON object. */
int ark_usage_from_openai_text(ark_usage_t *u, const char *text,
                               apr_size_t len);

/* Parses a request body that must be a JSON object (duplicate keys
 * rejected). Returns APR_SUCCESS with *proot a new reference, or
 * APR_EINVAL with *err a 400 invalid_json saying what is wrong (empty,
 * syntax error with line and column, not an object). */
apr_status_t ark_json_load_object(json_t **proot, const char *body,
                                  apr_size_t len, ark_err_t *err,
                                  apr_pool_t *p);

/* Registers json_decref(json) as a cleanup of p; returns json. */
json_t *ark_json_pool_own(json_t *json, apr_pool_t *p);

/* json_dumps(json, JSON_COMPACT) copied into p; NULL on failure. */
const char *ark_json_pdump(const json_t *json, apr_size_t *plen,
                           apr_pool_t *p);

#endif /* ARK_REQUEST_H */
