/* ark-cached: the AUTH password and its generations (see cs_auth.h).
 *
 * The password and generation change together under a mutex, and AUTH
 * reads both under it, so a client always gets the generation of the
 * password it was checked against. The hot path (every command) reads
 * "required" and "generation" with atomic loads and takes no lock.
 */
#include <pthread.h>
#include <string.h>

#include "cs_auth.h"
#include "cs_common.h"
#include "cs_config.h"

struct cs_auth {
    pthread_mutex_t lock;
    char password[CS_PASS_MAX + 1];
    size_t len;
    int required;        /* atomic: len > 0 */
    uint64_t generation; /* atomic: starts at 1, +1 per change */
};

int cs_auth_create(cs_auth_t **pauth, const char *password)
{
    cs_auth_t *a = cs_calloc(1, sizeof(*a));
    int changed;

    pthread_mutex_init(&a->lock, NULL);
    a->generation = 1;
    cs_auth_set(a, password, &changed);
    *pauth = a;
    return CS_OK;
}

void cs_auth_free(cs_auth_t *a)
{
    if (a == NULL) {
        return;
    }
    explicit_bzero(a->password, sizeof(a->password));
    pthread_mutex_destroy(&a->lock);
    cs_free(a);
}

int cs_auth_set(cs_auth_t *a, const char *password, int *changed)
{
    size_t n = password == NULL ? 0 : strlen(password);

    if (n > CS_PASS_MAX) {
        return CS_ERR;
    }
    pthread_mutex_lock(&a->lock);
    *changed = n != a->len || memcmp(a->password, password, n) != 0;
    if (*changed) {
        explicit_bzero(a->password, sizeof(a->password));
        if (n > 0) {
            memcpy(a->password, password, n);
        }
        a->len = n;
        __atomic_store_n(&a->required, n > 0, __ATOMIC_RELEASE);
        __atomic_add_fetch(&a->generation, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&a->lock);
    return CS_OK;
}

int cs_auth_required(const cs_auth_t *a)
{
    return __atomic_load_n(&a->required, __ATOMIC_ACQUIRE);
}

int cs_auth_ok(const cs_auth_t *a, uint64_t gen)
{
    if (!__atomic_load_n(&a->required, __ATOMIC_ACQUIRE)) {
        return 1;
    }
    return gen == __atomic_load_n(&a->generation, __ATOMIC_ACQUIRE);
}

/* Compares in time that depends only on the stored length. */
static int same_secret(const char *stored, size_t slen, const char *given,
                       size_t glen)
{
    unsigned char diff = (unsigned char)(slen != glen);
    size_t i;

    for (i = 0; i < slen; i++) {
        diff |= (unsigned char)(stored[i] ^ (i < glen ? given[i] : 0));
    }
    return diff == 0;
}

int cs_auth_check(cs_auth_t *a, const char *user, size_t ulen, const char *pass,
                  size_t plen, uint64_t *gen)
{
    int ok;

    pthread_mutex_lock(&a->lock);
    ok = a->len > 0 && same_secret(a->password, a->len, pass, plen);
    if (user != NULL && (ulen != 7 || memcmp(user, "default", 7) != 0)) {
        ok = 0;
    }
    *gen = ok ? __atomic_load_n(&a->generation, __ATOMIC_RELAXED) : 0;
    pthread_mutex_unlock(&a->lock);
    return ok ? CS_OK : CS_ERR;
}
