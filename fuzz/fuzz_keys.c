/* Fuzz target: the keys file parser (mod_ark/ark_keys.h).
 *
 * The input is a keys file, handed over as ark_keys_load hands it:
 * exactly the bytes of the file, not NUL-terminated. ark_keys_parse must
 * accept it or give a one-line "line N: ..." message. An accepted file
 * must survive the round trip the ark-keys tool makes on every change:
 * ark_keys_format writes it out, the text parses again, and formatting
 * that ring gives the same text; and both rings must answer lookups of
 * a few secrets (those the seed files' hashes are made from, and the
 * input itself) with the same key.
 */
#include <string.h>

#include "ark_keys.h"
#include "fuzz_common.h"

/* Secrets whose SHA-256 the seeds hold (sha256 of "a", "b", "c", "s",
 * "s1", "abc", "") so that lookups can succeed. */
static const char *const secrets[] = {"a", "b", "c", "s", "s1", "abc", ""};

static int same_key(const ark_key_t *x, const ark_key_t *y)
{
    if (!x || !y) {
        return x == y;
    }
    return !strcmp(x->name, y->name)
           && !memcmp(x->hash, y->hash, ARK_KEY_HASH_LEN)
           && x->enabled == y->enabled;
}

void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p)
{
    const char *text = (const char *)data;
    ark_keyring_t *ring = NULL, *again = NULL;
    const char *err = NULL, *out = NULL, *out2 = NULL;
    apr_status_t rv;
    size_t i;

    rv = ark_keys_parse(&ring, text, size, &err, p);
    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(rv == APR_EINVAL);
        FUZZ_CHECK(ring == NULL && err != NULL);
        FUZZ_CHECK(strchr(err, '\n') == NULL);
        return;
    }
    FUZZ_CHECK(ring != NULL && err == NULL);
    (void)ark_keys_lookup(ring, text, size);

    FUZZ_CHECK(ark_keys_format(&out, ring, p) == APR_SUCCESS);
    FUZZ_CHECK(out != NULL);
    rv = ark_keys_parse(&again, out, strlen(out), &err, p);
    if (rv != APR_SUCCESS) {
        fuzz_fail(__FILE__, __LINE__, err ? err : "reparse");
    }
    FUZZ_CHECK(ark_keys_format(&out2, again, p) == APR_SUCCESS);
    FUZZ_CHECK(!strcmp(out, out2));
    for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        FUZZ_CHECK(same_key(ark_keys_lookup(ring, secrets[i],
                                            strlen(secrets[i])),
                            ark_keys_lookup(again, secrets[i],
                                            strlen(secrets[i]))));
    }
    FUZZ_CHECK(same_key(ark_keys_lookup(ring, text, size),
                        ark_keys_lookup(again, text, size)));
}
