/* ark-cached: what an embedder implementation provides (private to
 * cs_embed*.c; users include cs_embed.h only).
 *
 * An implementation embeds a cs_embedder_t as the first member of its
 * own struct, fills in a static cs_embed_ops_t, and cs_embed.c dispatches
 * to it after checking the arguments every implementation would check.
 */
#ifndef CS_EMBED_IMPL_H
#define CS_EMBED_IMPL_H

#include <stdarg.h>

#include "cs_embed.h"

typedef struct cs_embed_ops {
    const char *name;
    /* n >= 1, texts/lens/out non-NULL, the dimension is known */
    int (*embed)(cs_embedder_t *e, const char *const *texts,
                 const size_t *lens, int n, float *out, char *err,
                 size_t errlen);
    /* may be NULL: the dimension is always known */
    int (*probe)(cs_embedder_t *e, char *err, size_t errlen);
    const char *(*version)(const cs_embedder_t *e);
    int (*dim)(const cs_embedder_t *e);
    void (*destroy)(cs_embedder_t *e);
} cs_embed_ops_t;

struct cs_embedder {
    const cs_embed_ops_t *ops;
};

/* Scales v (dim floats) to L2 norm 1. Returns CS_OK, or CS_ERR when the
 * norm is zero or not finite (v is then left as it was). */
int cs_embed_l2_normalize(float *v, int dim);

/* Writes "embedder <fmt...>" into err (errlen bytes, may be 0). */
void cs_embed_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* CS_EMBED_IMPL_H */
