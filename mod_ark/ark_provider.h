/* Providers: where requests go, and how each provider type is spoken.
 *
 * A provider is configured with ArkProvider (name, type, base URL, where
 * its secret comes from, timeouts). Its type is one row of a table of
 * ark_provider_type_t: the same four operations for every wire format,
 *   build_request   OpenAI-format request -> URL, headers, body
 *   parse_response  full upstream answer  -> OpenAI-format body + usage
 *   stream_event    one upstream SSE event -> zero or more OpenAI events
 *   map_error       upstream error status/body -> client-safe ark_err_t
 * so that adding a provider type is one new file plus one table row.
 *
 * Ownership: ark_provider_t lives in the configuration pool and is
 * read-only while serving; `secret` is loaded at startup and must never
 * be logged or copied into a response.
 */
#ifndef ARK_PROVIDER_H
#define ARK_PROVIDER_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "ark_error.h"
#include "ark_request.h"
#include "ark_sse.h"
#include <jansson.h>

typedef struct ark_provider_type_t ark_provider_type_t;

/* Endpoints a provider type can serve (bit mask in `endpoints`). */
#define ARK_EP_CHAT        0x1
#define ARK_EP_EMBEDDINGS  0x2

typedef struct ark_provider_t {
    const char *name;
    const ark_provider_type_t *type;
    const char *base_url;            /* without trailing '/' */
    const char *secret_source;       /* "env:VAR", "file:/path" or NULL */
    const char *secret;              /* loaded at startup; NEVER log */
    apr_interval_time_t connect_timeout;   /* 0: ArkConnectTimeout */
    apr_interval_time_t timeout;           /* 0: ArkTimeout */
    apr_table_t *options;            /* type-specific name=value options,
                                      * validated by type->check_option */
    apr_array_header_t *tags;        /* ark_tag_t, compliance tags */
    unsigned int max_conns;          /* requests in flight per node, 0: no cap */
    const char *defined_at;          /* "file:line" of the directive */
} ark_provider_t;

/* A request ready to send upstream. */
typedef struct ark_upstream_req_t {
    const char *url;
    apr_array_header_t *headers;     /* const char * "Name: value" */
    const char *body;
    apr_size_t body_len;
} ark_upstream_req_t;

/* Writes one complete OpenAI-format SSE event ("data: ...\n\n") to the
 * client (or to the next translator). Returns non-zero when the client
 * is gone. */
typedef apr_status_t ark_emit_fn(void *ctx, const char *buf, apr_size_t len);

/* Per-stream translation state, owned by the request. The gateway fills
 * every field but `state`, `done`, `usage` and `events` before the first
 * event; a type keeps whatever it needs across events in `state`
 * (allocated from rpool on first use). */
typedef struct ark_stream_t {
    const ark_req_t *req;            /* the client's request */
    const char *upstream_model;      /* model name asked of the upstream */
    const char *id;                  /* "chatcmpl-..." for built chunks */
    apr_time_t created;              /* for built chunks */
    int client_wants_usage;          /* emit the usage chunk */
    int done;                        /* the stream ended properly */
    ark_usage_t usage;               /* as reported, streams included */
    apr_size_t events;               /* events emitted */
    apr_size_t content_events;       /* of which carried generated text or
                                      * tool arguments: the output count
                                      * when the upstream reports none */
    ark_emit_fn *emit;
    void *emit_ctx;
    void *state;                     /* the type's own state */
    apr_pool_t *rpool;               /* lives as long as the request */
    apr_pool_t *pool;                /* scratch, cleared after each event */
} ark_stream_t;

struct ark_provider_type_t {
    const char *name;
    unsigned int endpoints;          /* ARK_EP_* this type serves */

    /* Validates one type-specific ArkProvider option (e.g. api-version=).
     * Returns NULL if valid, else a sentence naming the option and its
     * valid values; NULL function: the type takes no options. */
    const char *(*check_option)(const char *name, const char *value,
                                apr_pool_t *p);

    /* Builds the upstream request for req (already validated; endpoint in
     * req->endpoint), asking for upstream_model. Must not modify
     * req->root. Returns APR_SUCCESS or sets *err (a 400 for a request the
     * upstream API cannot express, a 500 for an internal failure). */
    apr_status_t (*build_request)(ark_upstream_req_t *out,
                                  const ark_provider_t *prov,
                                  const char *upstream_model,
                                  const ark_req_t *req,
                                  ark_err_t *err, apr_pool_t *p);

    /* Translates a complete 2xx answer into the OpenAI answer for
     * req->endpoint (chat.completion or embeddings list): *pbody, *plen
     * (may point into body), and fills *usage. req may be NULL for the
     * openai type. Returns APR_SUCCESS, or APR_EINVAL when the answer is
     * malformed. */
    apr_status_t (*parse_response)(const char **pbody, apr_size_t *plen,
                                   ark_usage_t *usage, const ark_req_t *req,
                                   const char *body, apr_size_t len,
                                   apr_pool_t *p);

    /* Translates one upstream SSE event, emitting zero or more OpenAI
     * chat.completion.chunk events (and finally "data: [DONE]") through
     * st->emit; records usage in st->usage; sets st->done when the
     * upstream ended the stream properly. Returns APR_SUCCESS, APR_EINVAL
     * for a malformed event, APR_EGENERAL for an error event from the
     * upstream, or the emitter's status when the client is gone. */
    apr_status_t (*stream_event)(ark_stream_t *st,
                                 const ark_sse_event_t *ev);

    /* Called when the upstream closed the stream cleanly, for formats
     * without an end marker (Gemini): emits what is still due and sets
     * st->done if the stream was complete. NULL if not needed. */
    apr_status_t (*stream_end)(ark_stream_t *st);

    /* Fills *err for an upstream answer with a non-2xx status. Never
     * copies anything that might hold a secret into the message. */
    void (*map_error)(ark_err_t *err, const ark_provider_t *prov,
                      int status, const char *body, apr_size_t len,
                      apr_pool_t *p);
};

/* The type registered under name, or NULL. */
const ark_provider_type_t *ark_provider_type_find(const char *name);

/* Comma-separated names of all types, for directive error messages. */
const char *ark_provider_type_names(apr_pool_t *p);

/* Loads prov->secret from prov->secret_source ("env:NAME" reads the
 * environment, "file:/path" reads the file's first line). Returns
 * APR_SUCCESS, or an error with *perr naming the source (never the
 * secret). A NULL source leaves secret NULL (keyless local upstream). */
apr_status_t ark_provider_load_secret(ark_provider_t *prov,
                                      const char **perr, apr_pool_t *p);

/* Extracts the upstream error message from an error body shaped
 * {"error":{"message":...}} (OpenAI, Azure, Gemini and, one level down,
 * Anthropic's {"type":"error","error":{"message":...}}), or NULL. If the
 * message contains any part of secret (8 or more characters), NULL is
 * returned instead. */
const char *ark_provider_error_message(const char *body, apr_size_t len,
                                       const char *secret, apr_pool_t *p);

/* The mapping every type shares for upstream error statuses: 400/422 ->
 * 400 (upstream message passed on if present and safe), 413 -> 413,
 * 401/403 -> 502 upstream_auth_failed (message never passed on), 404 ->
 * 502 upstream_not_found, 408 -> 504, 429 -> 429, other -> 502. msg is
 * the upstream's message (see ark_provider_error_message) or NULL. */
void ark_provider_map_status(ark_err_t *err, int status, const char *msg,
                             apr_pool_t *p);

/* ---- helpers for translators that build OpenAI chunks ---------------- */

/* A new chat.completion.chunk object with id, object, created, model
 * (st->upstream_model) and an empty choices array. New reference. */
json_t *ark_stream_chunk_new(const ark_stream_t *st);

/* "data: <compact json of obj>\n\n" from p, *plen its length; steals
 * the reference to obj. NULL when obj is NULL or cannot be encoded. */
const char *ark_sse_data_make(json_t *obj, apr_size_t *plen, apr_pool_t *p);

/* Emits obj as "data: <compact json>\n\n" and counts the event; steals
 * the reference to obj. Returns the emitter's status. */
/* Counts an OpenAI chunk that carries generated content (delta.content
 * or delta.tool_calls of its first choice) in st->content_events. */
void ark_stream_count_content(ark_stream_t *st, const json_t *chunk);

apr_status_t ark_stream_emit_json(ark_stream_t *st, json_t *obj);

/* If the client asked for usage, emits the usage chunk (empty choices,
 * "usage" from st->usage); then emits "data: [DONE]" and sets st->done. */
apr_status_t ark_stream_finish(ark_stream_t *st);

/* The OpenAI "usage" object for u (unknown counts as 0). New reference. */
json_t *ark_usage_to_openai(const ark_usage_t *u);

/* The headers every upstream JSON request carries: Content-Type, Accept
 * (text/event-stream when stream, else application/json) and, when
 * secret is set, "<auth_header>: <auth_prefix><secret>" (e.g.
 * "Authorization", "Bearer "). A new array from p with room for more. */
apr_array_header_t *ark_upstream_headers(int stream, const char *auth_header,
                                         const char *auth_prefix,
                                         const char *secret, apr_pool_t *p);

/* s percent-encoded for use as one URL path segment (RFC 3986
 * unreserved characters kept), from p. */
const char *ark_url_escape_segment(const char *s, apr_pool_t *p);

/* A fresh "chatcmpl-<24 random characters>" id from p. */
const char *ark_completion_id_make(apr_pool_t *p);

/* The provider types. */
extern const ark_provider_type_t ark_provider_openai;
extern const ark_provider_type_t ark_provider_azure;
extern const ark_provider_type_t ark_provider_anthropic;
extern const ark_provider_type_t ark_provider_gemini;

/* The openai type's operations, shared with the OpenAI-shaped types
 * (azure). */
apr_status_t ark_openai_parse_response(const char **pbody, apr_size_t *plen,
                                       ark_usage_t *usage,
                                       const ark_req_t *req,
                                       const char *body, apr_size_t len,
                                       apr_pool_t *p);
apr_status_t ark_openai_stream_event(ark_stream_t *st,
                                     const ark_sse_event_t *ev);
void ark_openai_map_error(ark_err_t *err, const ark_provider_t *prov,
                          int status, const char *body, apr_size_t len,
                          apr_pool_t *p);
/* The OpenAI body for req asking for upstream_model: a copy of the
 * client's request with "model" replaced and, for streams,
 * stream_options.include_usage set. */
const char *ark_openai_body(const ark_req_t *req, const char *upstream_model,
                            apr_size_t *plen, apr_pool_t *p);

#endif /* ARK_PROVIDER_H */
