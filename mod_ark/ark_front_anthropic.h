/* The Anthropic front: POST /v1/messages spoken to every upstream.
 *
 * Claude-native clients (the Anthropic SDKs) send Messages API requests;
 * the gateway's pivot format is the OpenAI chat API. The glue hands the
 * client's parsed body to ark_anthropic_request_to_openai, which
 * validates it the way the Messages API does (first problem reported as
 * a 400 naming the field, "max_tokens: Field required") and builds the
 * equivalent OpenAI chat request; that request then takes the normal
 * path (routing, provider translation, limits). What comes back in
 * OpenAI form is turned into what the client expects:
 *   a complete chat.completion -> ark_anthropic_response_from_openai
 *   the OpenAI SSE events      -> ark_anthropic_stream_feed, one event a
 *                                 call, writing Anthropic events
 *   an ark_err_t               -> ark_anthropic_error_json (a reply) or
 *                                 ark_anthropic_stream_error (mid-stream)
 *
 * What has no OpenAI equivalent: top_k, thinking, service_tier,
 * container, mcp_servers and cache_control markers are accepted and
 * dropped; thinking and redacted_thinking blocks of earlier assistant
 * turns are dropped; is_error of a tool_result is not carried. Documents,
 * server tools, images inside tool results and images given as Files
 * API ids are refused with a 400 rather than silently lost.
 *
 * Pure C (APR + jansson), unit-tested directly. Not thread-safe per
 * stream; every function is reentrant otherwise.
 */
#ifndef ARK_FRONT_ANTHROPIC_H
#define ARK_FRONT_ANTHROPIC_H

#include <apr_pools.h>
#include <jansson.h>

#include "ark_error.h"
#include "ark_provider.h"      /* ark_emit_fn */

/* Validates an Anthropic Messages request and builds the equivalent
 * OpenAI chat request.
 *
 * in: the client's body (borrowed, not modified). Checked: model
 * (non-empty string), max_tokens (integer >= 1), messages (non-empty
 * array of {role "user"|"assistant", content string|blocks}), system
 * (string or text blocks), stop_sequences, stream, temperature and
 * top_p (0..1), top_k, tools, tool_choice, metadata.user_id. A JSON null
 * optional field counts as absent. Translation: system -> a first
 * "system" message; text blocks -> one content string (joined by a
 * blank line), or content parts when the message holds images (base64
 * -> data: URL, url -> URL); assistant tool_use -> tool_calls with the
 * input as compact JSON arguments; user tool_result -> "tool" messages
 * (content as a string) placed before the rest of that user turn;
 * stop_sequences -> stop; tools -> function tools (parameters =
 * input_schema); tool_choice auto/any/tool/none -> "auto"/"required"/
 * {"type":"function",...}/"none" (disable_parallel_tool_use ->
 * parallel_tool_calls false); metadata.user_id -> user; stream true ->
 * stream plus stream_options.include_usage true.
 *
 * Returns APR_SUCCESS with *pout a NEW reference the caller releases
 * (json_decref, or ark_json_pool_own); it shares no value with in. Or
 * APR_EINVAL with *pout NULL and *err a 400 whose param is the dotted
 * field path and whose message is Anthropic-style ("messages.0.role:
 * Input should be 'user' or 'assistant'"); the scalar fields are checked
 * before system and messages. Or APR_ENOMEM with *err a 500. Strings in
 * *err come from p. */
apr_status_t ark_anthropic_request_to_openai(json_t **pout, const json_t *in,
                                             ark_err_t *err, apr_pool_t *p);

/* Translates a complete OpenAI chat.completion body (openai_body, len
 * bytes, need not be NUL-terminated) into an Anthropic Message:
 * {"id":"msg_...","type":"message","role":"assistant","model":model,
 *  "content":[text block if any text, tool_use blocks from tool_calls
 *  (input parsed from arguments; {} when not a JSON object)],
 *  "stop_reason": stop -> "end_turn" ("tool_use" if tools were called),
 *  length -> "max_tokens", tool_calls -> "tool_use", content_filter ->
 *  "refusal", "stop_sequence":null, "usage":{"input_tokens",
 *  "output_tokens"[, "cache_read_input_tokens"]}}. The id is taken from
 * the chat.completion id ("chatcmpl-X" -> "msg_X"), random if absent.
 * As in the Messages API, input_tokens excludes the cached tokens
 * (prompt_tokens - cached_tokens); unknown counts are 0.
 *
 * model: the client's requested model alias (borrowed); NULL: the body's.
 * Returns APR_SUCCESS with *pbody (NUL-terminated) and *plen allocated
 * from p, APR_EINVAL when the body is not a chat.completion with at
 * least one choice, or APR_ENOMEM. */
apr_status_t ark_anthropic_response_from_openai(const char **pbody,
                                                apr_size_t *plen,
                                                const char *openai_body,
                                                apr_size_t len,
                                                const char *model,
                                                apr_pool_t *p);

/* Streaming translation state for one answer. */
typedef struct ark_anthropic_stream_t ark_anthropic_stream_t;

/* Creates the state, allocated from p (the request pool), together with
 * a scratch subpool of p cleared on every call. model: the client's
 * requested alias (copied). emit(ctx, buf, len) receives each Anthropic
 * event as one complete "event: NAME\ndata: JSON\n\n" frame, valid only
 * during the call. Never returns NULL. */
ark_anthropic_stream_t *ark_anthropic_stream_make(const char *model,
                                                  ark_emit_fn *emit,
                                                  void *ctx, apr_pool_t *p);

/* Feeds ONE complete OpenAI SSE event as the pipeline emits it
 * ("data: {chunk}\n\n" or "data: [DONE]\n\n"; comment lines and other
 * fields are ignored). Emits, in order: message_start (empty content,
 * input_tokens 0 unless already known) and ping before the first block;
 * for text and for each tool call content_block_start / _delta
 * (text_delta, input_json_delta) / _stop, blocks indexed from 0 and each
 * stopped before the next starts; message_delta (stop_reason,
 * stop_sequence null, usage with output_tokens and, when known,
 * input_tokens and cache_read_input_tokens) once the finish_reason and
 * the usage are known, or at [DONE] at the latest; message_stop at
 * [DONE]. An OpenAI error event ({"error":{...}}) ends the stream with
 * an Anthropic error event (see ark_anthropic_stream_error). Events
 * after the end are ignored. Only choice 0 is translated.
 *
 * Returns APR_SUCCESS; APR_EINVAL for a malformed event (not JSON, not
 * shaped like a chunk, a tool call resumed after another began or never
 * named, content after the finish_reason), after which the caller ends
 * the stream with ark_anthropic_stream_error (an event that is not even
 * a chunk emits nothing); APR_ENOMEM; or emit's non-zero status, which
 * is sticky: every later call returns it without emitting. */
apr_status_t ark_anthropic_stream_feed(ark_anthropic_stream_t *as,
                                       const char *event, apr_size_t len);

/* Ends the stream with Anthropic's error event for e:
 * "event: error\ndata: {"type":"error","error":{"type":...,
 * "message":...}}\n\n" (type by status as in ark_anthropic_error_json).
 * Nothing is written if the stream already ended (message_stop or an
 * earlier error). Returns APR_SUCCESS or emit's status. */
apr_status_t ark_anthropic_stream_error(ark_anthropic_stream_t *as,
                                        const ark_err_t *e);

/* The Anthropic error type for an HTTP status: 400 and other 4xx
 * invalid_request_error, 401 authentication_error, 403
 * permission_error, 404 not_found_error, 413 request_too_large, 429
 * rate_limit_error, 503 and 529 overloaded_error, anything else
 * api_error. Returns a literal. */
const char *ark_anthropic_error_type(int status);

/* The Anthropic error body for e, compact JSON without a newline:
 * {"type":"error","error":{"type":ark_anthropic_error_type(e->status),
 * "message":e->message}}. Allocated from p; never fails (a fixed generic
 * body if jansson cannot allocate). */
const char *ark_anthropic_error_json(const ark_err_t *e, apr_pool_t *p);

#endif /* ARK_FRONT_ANTHROPIC_H */
