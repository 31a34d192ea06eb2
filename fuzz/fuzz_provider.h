/* What the translator harnesses share: providers of every type, fixed
 * client requests, and the checks made on what a translator emits.
 *
 * The provider table holds each type twice, once without options and
 * once with every option it takes set (api-version, anthropic-version,
 * max-tokens), all with a secret so that the harnesses can check that it
 * never reaches a client. Everything lives in a pool created on first
 * use and kept for the whole run.
 *
 * "JSON" in the checks is RFC 8259 JSON, "\u0000" included (jansson's
 * JSON_ALLOW_NUL): the gemini type passes it on from the upstream, and
 * clients' JSON parsers accept it.
 */
#ifndef FUZZ_PROVIDER_H
#define FUZZ_PROVIDER_H

#include <apr_pools.h>

#include "ark_error.h"
#include "ark_provider.h"
#include "ark_request.h"

/* The secret every fuzz provider holds (never a real key). */
#define FUZZ_SECRET "sk-fuzz-0123456789abcdefSECRET"

/* Number of providers in the table. */
#define FUZZ_NPROVIDERS 8

/* Provider i of the table, 0 <= i < FUZZ_NPROVIDERS. */
const ark_provider_t *fuzz_provider(int i);

/* A valid chat request (stream as asked, include_usage set) and a
 * valid embeddings request, parsed once; borrowed. */
const ark_req_t *fuzz_chat_req(int stream);
const ark_req_t *fuzz_embed_req(void);

/* Checks an upstream request built by build_request: a URL under the
 * provider's base URL, headers, a body that is a JSON object. */
void fuzz_check_upstream(const ark_upstream_req_t *up,
                         const ark_provider_t *prov);

/* Checks an ark_err_t filled for the client: a 4xx or 5xx status, type
 * and message set, its JSON body valid and, with no_secret, free of
 * FUZZ_SECRET (for errors built from upstream answers; an error about
 * the client's request may quote what the client sent). */
void fuzz_check_err(const ark_err_t *err, int no_secret, apr_pool_t *p);

/* Checks that buf[0, len) is one OpenAI SSE event as the gateway writes
 * it: "data: [DONE]\n\n" or "data: <JSON object>\n\n", no NUL inside.
 * Returns 1 for [DONE]. */
int fuzz_check_openai_frame(const char *buf, apr_size_t len);

/* Checks that buf[0, len) is one Anthropic event frame,
 * "event: NAME\ndata: <JSON object whose type is NAME>\n\n". */
void fuzz_check_anthropic_frame(const char *buf, apr_size_t len);

#endif /* FUZZ_PROVIDER_H */
