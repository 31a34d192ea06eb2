/* The semantic cache, as mod_ark uses it: what may be cached, under
 * which namespace and text, and how a cached answer is replayed.
 *
 * Pure logic (APR + jansson + OpenSSL); the network client talking to
 * ark-cached is in ark_cache_client.h, the httpd glue in ark_handler.c.
 *
 * Namespace: the SHA-256 (hex) of everything besides the user's words
 * that changes an answer: tenant, endpoint, model alias and the request
 * minus the embedded text (sampling parameters, tools, response_format,
 * system prompt and every earlier turn), as canonical JSON (sorted keys).
 * Two tenants, models, parameter sets or conversations never share a
 * namespace, so they never share an entry. ark-cached adds its
 * embedder's name and version, so a new embedder never matches old
 * vectors.
 *
 * Text: by default the last user message only (ARK_CACHE_TEXT_LAST_USER),
 * so a long shared system prompt never swamps the question.
 */
#ifndef ARK_CACHE_H
#define ARK_CACHE_H

#include <apr_pools.h>

#include "ark_provider.h"
#include "ark_request.h"

typedef enum {
    ARK_CACHE_TEXT_LAST_USER = 0,  /* the last user message */
    ARK_CACHE_TEXT_ALL_USER,       /* every user message, in order */
    ARK_CACHE_TEXT_ALL             /* every message's text, roles included */
} ark_cache_text_t;

/* Why a request is not looked up / stored (NULL: it is cacheable). */
typedef struct ark_cache_key_t {
    const char *ns;                /* 64 hex characters */
    const char *text;              /* the embedded text */
    apr_size_t text_len;
} ark_cache_key_t;

/* Decides whether req may be served from / stored in the cache and
 * computes its key. Not cacheable (returns APR_EINVAL, *why a literal
 * for logs and the x-ark-cache header): temperature above max_temp (an
 * absent temperature counts as 1, OpenAI's default), n > 1, no text to
 * embed, non-text content in the embedded message (images, audio).
 * Returns APR_SUCCESS with *key filled from p. */
apr_status_t ark_cache_key_make(ark_cache_key_t *key, const char **why,
                                const ark_req_t *req, const char *tenant,
                                const char *endpoint, const char *alias,
                                ark_cache_text_t mode, double max_temp,
                                apr_pool_t *p);

/* Replays a cached chat.completion body as an OpenAI event stream:
 * a role chunk, the content in pieces of at most piece bytes (cut at
 * UTF-8 boundaries), a finish chunk, the usage chunk when include_usage,
 * then "data: [DONE]". Each event goes through emit. Returns
 * APR_SUCCESS, APR_EINVAL if body is not a chat.completion, or emit's
 * status. */
apr_status_t ark_cache_replay(const char *body, apr_size_t len,
                              int include_usage, apr_size_t piece,
                              ark_emit_fn *emit, void *ctx, apr_pool_t *p);

/* Collects a streamed answer (the OpenAI events as sent to the client)
 * into the chat.completion a later request may be served from. */
typedef struct ark_cache_collect_t ark_cache_collect_t;

ark_cache_collect_t *ark_cache_collect_make(apr_pool_t *p);

/* Feeds one complete OpenAI SSE event ("data: ...\n\n"). Never fails:
 * anything unexpected marks the collection unusable. */
void ark_cache_collect_feed(ark_cache_collect_t *c, const char *event,
                            apr_size_t len);

/* The collected chat.completion (compact JSON from p), or APR_EINVAL
 * when the stream did not end with [DONE] after a finish_reason, carried
 * an error, or called tools and tools are not storable. The answer's
 * "usage" is the stream's own usage chunk when the client saw one, else
 * upstream (the counts the upstream reported, which the client did not
 * ask to see) when both counts are known, else absent. */
apr_status_t ark_cache_collect_result(ark_cache_collect_t *c,
                                      int store_tool_calls,
                                      const ark_usage_t *upstream,
                                      const char **pbody, apr_size_t *plen,
                                      apr_pool_t *p);

/* True when a complete chat.completion body may be stored: a choice
 * with finish_reason stop or length and, unless store_tool_calls, no
 * tool calls. */
int ark_cache_storable(const char *body, apr_size_t len,
                       int store_tool_calls);

#endif /* ARK_CACHE_H */
