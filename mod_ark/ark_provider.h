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

typedef struct ark_provider_type_t ark_provider_type_t;

typedef struct ark_provider_t {
    const char *name;
    const ark_provider_type_t *type;
    const char *base_url;            /* without trailing '/' */
    const char *secret_source;       /* "env:VAR", "file:/path" or NULL */
    const char *secret;              /* loaded at startup; NEVER log */
    apr_interval_time_t connect_timeout;   /* 0: ArkConnectTimeout */
    apr_interval_time_t timeout;           /* 0: ArkTimeout */
    const char *defined_at;          /* "file:line" of the directive */
} ark_provider_t;

/* A request ready to send upstream. */
typedef struct ark_upstream_req_t {
    const char *url;
    apr_array_header_t *headers;     /* const char * "Name: value" */
    const char *body;
    apr_size_t body_len;
} ark_upstream_req_t;

/* Writes one OpenAI-format SSE event ("data: ...\n\n", complete) to the
 * client. Returns non-zero when the client is gone. */
typedef apr_status_t ark_emit_fn(void *ctx, const char *buf, apr_size_t len);

/* Per-stream translation state, owned by the request. */
typedef struct ark_stream_t {
    int client_wants_usage;          /* client set include_usage */
    int done;                        /* upstream finished the stream */
    ark_usage_t usage;               /* from the usage chunk, if any */
    apr_size_t events;               /* events relayed to the client */
    ark_emit_fn *emit;
    void *emit_ctx;
    apr_pool_t *pool;                /* scratch, cleared per event */
} ark_stream_t;

struct ark_provider_type_t {
    const char *name;

    /* Builds the upstream request for req (already validated), asking
     * for upstream_model. Returns APR_SUCCESS or sets *err. */
    apr_status_t (*build_request)(ark_upstream_req_t *out,
                                  const ark_provider_t *prov,
                                  const char *upstream_model,
                                  const ark_chat_req_t *req,
                                  ark_err_t *err, apr_pool_t *p);

    /* Translates a complete 2xx answer into an OpenAI chat.completion
     * body (*pbody, *plen; may point into body) and fills *usage.
     * Returns APR_SUCCESS, or APR_EINVAL when the answer is malformed. */
    apr_status_t (*parse_response)(const char **pbody, apr_size_t *plen,
                                   ark_usage_t *usage, const char *body,
                                   apr_size_t len, apr_pool_t *p);

    /* Translates one upstream SSE event, emitting zero or more OpenAI
     * events through st->emit. Sets st->done at the end of the stream.
     * Returns APR_SUCCESS, APR_EINVAL for a malformed event, or the
     * emitter's status when the client is gone. */
    apr_status_t (*stream_event)(ark_stream_t *st,
                                 const ark_sse_event_t *ev);

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

/* Extracts the upstream error message from an OpenAI-shaped error body
 * ({"error":{"message":...}}), or NULL. If the message contains any part
 * of secret (8 or more characters), NULL is returned instead. */
const char *ark_provider_error_message(const char *body, apr_size_t len,
                                       const char *secret, apr_pool_t *p);

/* The provider types. */
extern const ark_provider_type_t ark_provider_openai;

#endif /* ARK_PROVIDER_H */
