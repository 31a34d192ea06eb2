/* ark-cached: a hash map from 64-bit keys to pointers. See cs_map.h. */
#include <string.h>

#include "cs_common.h"
#include "cs_map.h"

#define CS_MAP_MIN_CAP 16

static uint64_t mix(uint64_t x)
{
    /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

void cs_map_init(cs_map_t *m)
{
    memset(m, 0, sizeof(*m));
}

void cs_map_free(cs_map_t *m)
{
    cs_free(m->keys);
    cs_free(m->vals);
    memset(m, 0, sizeof(*m));
}

static void grow(cs_map_t *m)
{
    cs_map_t n;
    size_t i;

    n.cap = m->cap ? m->cap * 2 : CS_MAP_MIN_CAP;
    n.len = 0;
    n.keys = cs_calloc(n.cap, sizeof(uint64_t));
    n.vals = cs_calloc(n.cap, sizeof(void *));
    for (i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            cs_map_put(&n, m->keys[i], m->vals[i]);
        }
    }
    cs_map_free(m);
    *m = n;
}

void *cs_map_get(const cs_map_t *m, uint64_t key)
{
    size_t i;

    if (!m->cap || !key) {
        return NULL;
    }
    for (i = mix(key) & (m->cap - 1); m->keys[i];
         i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            return m->vals[i];
        }
    }
    return NULL;
}

void *cs_map_put(cs_map_t *m, uint64_t key, void *val)
{
    size_t i;

    if ((m->len + 1) * 10 > m->cap * 7) {
        grow(m);
    }
    for (i = mix(key) & (m->cap - 1); m->keys[i];
         i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            void *old = m->vals[i];

            m->vals[i] = val;
            return old;
        }
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->len++;
    return NULL;
}

void *cs_map_del(cs_map_t *m, uint64_t key)
{
    size_t i, j, mask = m->cap - 1;
    void *old;

    if (!m->cap || !key) {
        return NULL;
    }
    for (i = mix(key) & mask; m->keys[i] != key; i = (i + 1) & mask) {
        if (!m->keys[i]) {
            return NULL;
        }
    }
    old = m->vals[i];
    /* backward-shift: move later members of the cluster into the hole */
    for (j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        size_t home = mix(m->keys[j]) & mask;

        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->len--;
    return old;
}

int cs_map_next(const cs_map_t *m, size_t *pos, uint64_t *key, void **val)
{
    for (; *pos < m->cap; (*pos)++) {
        if (m->keys[*pos]) {
            *key = m->keys[*pos];
            *val = m->vals[*pos];
            (*pos)++;
            return 1;
        }
    }
    return 0;
}

uint64_t cs_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = UINT64_C(1469598103934665603) ^ seed;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h ? h : 1;
}
