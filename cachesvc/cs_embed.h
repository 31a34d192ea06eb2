/* ark-cached: the embedder interface.
 *
 * An embedder turns lookup texts into unit-length float vectors so that
 * the semantic layer can search by inner product. Two implementations
 * sit behind this one interface:
 *   builtin  hashed word and character n-gram features, no model weights,
 *            tens of microseconds per prompt (cs_embed_builtin.c); it
 *            targets near-duplicates;
 *   http     any OpenAI-compatible POST /v1/embeddings endpoint (a
 *            provider, vLLM, Ollama, TEI), for paraphrases
 *            (cs_embed_http.c).
 * Vectors of different embedders, or of one embedder at different
 * versions, must never be compared: the version string names everything
 * that changes the vectors, and the index keeps it next to them.
 *
 * Ownership: cs_embed_*_create return a heap object the caller releases
 * with cs_embed_free. Strings returned by cs_embed_name/cs_embed_version
 * are borrowed and live as long as the embedder.
 * Thread safety: every function except cs_embed_free may be called from
 * any number of threads at once.
 */
#ifndef CS_EMBED_H
#define CS_EMBED_H

#include <stddef.h>

#include "cs_common.h"

typedef struct cs_embedder cs_embedder_t;

/* Default and bounds of the builtin embedder's dimension: a multiple of
 * CS_EMBED_BUILTIN_DIM_STEP (so vectors stay SIMD-friendly) between MIN
 * and MAX. 384 buckets keep the chance that two words of one prompt share
 * a bucket low while an index entry stays 1.5 KiB. */
#define CS_EMBED_BUILTIN_DIM_DEFAULT 384
#define CS_EMBED_BUILTIN_DIM_MIN 64
#define CS_EMBED_BUILTIN_DIM_MAX 4096
#define CS_EMBED_BUILTIN_DIM_STEP 64

/* Largest dimension accepted from an HTTP embedder (the largest common
 * models have 3072 or 4096). */
#define CS_EMBED_HTTP_DIM_MAX 8192

/* Largest batch per HTTP request (OpenAI's own limit is 2048 inputs). */
#define CS_EMBED_HTTP_BATCH_MAX 2048

/* Defaults for cs_embed_http_create's timeout_ms and batch_max <= 0. */
#define CS_EMBED_HTTP_TIMEOUT_DEFAULT_MS 5000
#define CS_EMBED_HTTP_BATCH_DEFAULT 64

/* Name of the implementation: "builtin" or "http" (a literal). */
const char *cs_embed_name(const cs_embedder_t *e);

/* A string that changes whenever the vectors change, e.g.
 * "builtin-1:dim=384" or "http-1:model=text-embedding-3-small:dim=1536".
 * For an HTTP embedder created with dim 0 the string ends in "dim=?"
 * until the first answer taught the dimension; then it is final. */
const char *cs_embed_version(const cs_embedder_t *e);

/* Floats per vector; 0 for an HTTP embedder that has not learnt its
 * dimension yet (see cs_embed_probe). */
int cs_embed_dim(const cs_embedder_t *e);

/* Embeds n texts (texts[i] has lens[i] bytes, any bytes; it need not be
 * NUL-terminated) into out, n * cs_embed_dim(e) floats, vector i at
 * out + i * dim, each of L2 norm 1. n == 0 is a no-op.
 * Returns CS_OK, or CS_ERR with a one-line message in err (errlen bytes,
 * always NUL-terminated when errlen > 0) that starts with "embedder "
 * and names the cause: "embedder http://host:port/v1/embeddings:
 * connection refused", "...: timeout after 2000 ms", "...: HTTP 500",
 * "...: malformed answer (...)". The message holds no API key, and no
 * user name, password or query string of the URL. On CS_ERR the contents
 * of out are unspecified. Fails when the dimension is still unknown. */
int cs_embed(cs_embedder_t *e, const char *const *texts, const size_t *lens,
             int n, float *out, char *err, size_t errlen);

/* Makes sure the dimension is known: a no-op returning CS_OK for the
 * builtin embedder and for an HTTP embedder with a known dimension;
 * otherwise embeds one short text to learn it. Returns CS_OK or CS_ERR
 * with err as for cs_embed. */
int cs_embed_probe(cs_embedder_t *e, char *err, size_t errlen);

/* Releases e and everything it holds (NULL is fine). No call on e may be
 * running or start later. */
void cs_embed_free(cs_embedder_t *e);

/* Creates the builtin embedder: deterministic (same text, same vector, on
 * every machine and every run), no I/O, no model files.
 *   dim  0 for CS_EMBED_BUILTIN_DIM_DEFAULT, or a multiple of
 *        CS_EMBED_BUILTIN_DIM_STEP in [CS_EMBED_BUILTIN_DIM_MIN,
 *        CS_EMBED_BUILTIN_DIM_MAX].
 * Returns the embedder, or NULL when dim is out of bounds. */
cs_embedder_t *cs_embed_builtin_create(int dim);

/* Creates an HTTP embedder for an OpenAI-compatible embeddings endpoint.
 * Nothing is sent until the first cs_embed or cs_embed_probe.
 *   url         the full endpoint, "http://..." or "https://...", e.g.
 *               "http://127.0.0.1:11434/v1/embeddings"; copied.
 *   model       the "model" field of each request; copied.
 *   api_key     sent as "Authorization: Bearer <key>"; NULL or "" for
 *               none; copied, and never written to a message.
 *   dim         expected dimension, 1..CS_EMBED_HTTP_DIM_MAX; 0 = learn it
 *               from the first answer (then every later answer must
 *               match it).
 *   timeout_ms  limit for one request, connection included; <= 0 for
 *               CS_EMBED_HTTP_TIMEOUT_DEFAULT_MS.
 *   batch_max   most texts per request, 1..CS_EMBED_HTTP_BATCH_MAX (a
 *               larger n is split into several requests); <= 0 for
 *               CS_EMBED_HTTP_BATCH_DEFAULT.
 * Requests reuse kept-alive connections through a small pool of libcurl
 * handles; libcurl's global state is initialised here (thread-safe in
 * libcurl >= 7.84) and released by cs_embed_free.
 * Returns the embedder, or NULL with err set (bad URL, bad bounds,
 * libcurl failure). */
cs_embedder_t *cs_embed_http_create(const char *url, const char *model,
                                    const char *api_key, int dim,
                                    int timeout_ms, int batch_max,
                                    char *err, size_t errlen);

#endif /* CS_EMBED_H */
