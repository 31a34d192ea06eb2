/* ark-cached: the embedder interface's dispatch and shared helpers.
 *
 * Every public cs_embed_* call checks what any implementation would check
 * (arguments, a known dimension) and then goes through the ops table of
 * the embedder (cs_embed_impl.h). The helpers here are the two things
 * both implementations need: L2 normalisation and error messages that
 * all start with "embedder ".
 */
#include <math.h>
#include <stdio.h>

#include "cs_embed_impl.h"

const char *cs_embed_name(const cs_embedder_t *e)
{
    return e->ops->name;
}

const char *cs_embed_version(const cs_embedder_t *e)
{
    return e->ops->version(e);
}

int cs_embed_dim(const cs_embedder_t *e)
{
    return e->ops->dim(e);
}

int cs_embed(cs_embedder_t *e, const char *const *texts, const size_t *lens,
             int n, float *out, char *err, size_t errlen)
{
    if (errlen > 0) {
        err[0] = '\0';
    }
    if (n == 0) {
        return CS_OK;
    }
    if (n < 0 || texts == NULL || lens == NULL || out == NULL) {
        cs_embed_errf(err, errlen, "%s: bad arguments (n=%d)",
                      e->ops->name, n);
        return CS_ERR;
    }
    if (e->ops->dim(e) <= 0) {
        cs_embed_errf(err, errlen, "%s: dimension not known yet "
                      "(cs_embed_probe first)", e->ops->name);
        return CS_ERR;
    }
    return e->ops->embed(e, texts, lens, n, out, err, errlen);
}

int cs_embed_probe(cs_embedder_t *e, char *err, size_t errlen)
{
    if (errlen > 0) {
        err[0] = '\0';
    }
    if (e->ops->probe == NULL || e->ops->dim(e) > 0) {
        return CS_OK;
    }
    return e->ops->probe(e, err, errlen);
}

void cs_embed_free(cs_embedder_t *e)
{
    if (e != NULL) {
        e->ops->destroy(e);
    }
}

int cs_embed_l2_normalize(float *v, int dim)
{
    double sum = 0.0, scale;
    int i;

    for (i = 0; i < dim; i++) {
        sum += (double)v[i] * (double)v[i];
    }
    if (!(sum > 0.0) || !isfinite(sum)) {
        return CS_ERR;
    }
    scale = 1.0 / sqrt(sum);
    for (i = 0; i < dim; i++) {
        v[i] = (float)(v[i] * scale);
    }
    return CS_OK;
}

void cs_embed_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (errlen == 0) {
        return;
    }
    k = snprintf(err, errlen, "embedder ");
    if (k < 0 || (size_t)k >= errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
}
