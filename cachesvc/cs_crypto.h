/* ark-cached: encryption of cache payloads at rest (AES-256-GCM).
 *
 * The Redis tier seals a payload before it leaves the process and opens it
 * when it comes back, so whoever can read Redis (or its RDB/AOF files and
 * backups) sees neither the cached answers nor can alter one unnoticed.
 * A sealed payload is self-describing:
 *
 *   +---------+--------------+----------------------+------------+
 *   | version | nonce        | ciphertext           | tag        |
 *   | 1 byte  | 12 bytes     | as long as the input | 16 bytes   |
 *   +---------+--------------+----------------------+------------+
 *
 * version is CS_CRYPTO_VERSION (AES-256-GCM, 96-bit nonce, 128-bit tag);
 * the nonce is fresh from RAND_bytes for every seal. The caller passes
 * additional authenticated data (AAD) that binds the payload to its place
 * (the Redis tier uses the entry id and namespace), so a sealed payload
 * copied into another entry fails to open just as a tampered one does.
 * With random 96-bit nonces one key should seal fewer than 2^32 payloads
 * (NIST SP 800-38D, 8.3); rotate the key well before that.
 *
 * The key is 32 bytes, read once at startup by cs_crypto_load_key from a
 * file only its owner may read. OpenSSL 3 EVP does the work; every
 * function here is thread-safe and keeps no state.
 */
#ifndef CS_CRYPTO_H
#define CS_CRYPTO_H

#include <stddef.h>

#include "cs_common.h"

#define CS_CRYPTO_KEY_LEN   32   /* AES-256 */
#define CS_CRYPTO_NONCE_LEN 12   /* the GCM nonce size NIST recommends */
#define CS_CRYPTO_TAG_LEN   16   /* full-length tag: no truncation */
#define CS_CRYPTO_VERSION   0x01 /* first byte of every sealed payload */
/* Bytes a sealed payload has beyond its plaintext. */
#define CS_CRYPTO_OVERHEAD (1 + CS_CRYPTO_NONCE_LEN + CS_CRYPTO_TAG_LEN)
/* Largest plaintext or AAD accepted: EVP takes int lengths, and a cache
 * payload is far smaller anyway. */
#define CS_CRYPTO_MAX_INPUT ((size_t)1 << 30)
/* Largest key file read: 64 hex digits plus generous trailing space. */
#define CS_CRYPTO_KEY_FILE_MAX 256

/* Reads a 32-byte key from path. The file holds either exactly 32 raw
 * bytes, or 64 hex digits (either case) optionally followed by white
 * space (a trailing newline). The file must be a regular file readable
 * by its owner only: a file with any group or other permission bit set
 * is refused (symbolic links are followed and the target is checked).
 * key receives the key. Returns CS_OK, or CS_ERR with a sentence naming
 * the file and the problem in err (errlen bytes; never the key itself).
 * Intermediate copies of the key are wiped. */
int cs_crypto_load_key(const char *path, unsigned char key[CS_CRYPTO_KEY_LEN],
                       char *err, size_t errlen);

/* Seals inlen bytes of in under key, authenticating aadlen bytes of aad
 * too (aad may be NULL when aadlen is 0), and appends the sealed form
 * (inlen + CS_CRYPTO_OVERHEAD bytes) to out. Returns CS_OK, or CS_ERR
 * (input too large, no randomness, OpenSSL failure) with out unchanged.
 * The caller owns out. */
int cs_crypto_seal(const unsigned char key[CS_CRYPTO_KEY_LEN],
                   const void *aad, size_t aadlen, const char *in,
                   size_t inlen, cs_buf_t *out);

/* Opens inlen bytes of a payload sealed by cs_crypto_seal with the same
 * key and aad, appending the plaintext to out. Returns CS_OK, or CS_ERR
 * when the input is truncated, has an unknown version, was altered, or
 * the key or aad differ; out is then unchanged (no partial plaintext is
 * ever left in it). The caller owns out. */
int cs_crypto_open(const unsigned char key[CS_CRYPTO_KEY_LEN],
                   const void *aad, size_t aadlen, const char *in,
                   size_t inlen, cs_buf_t *out);

#endif /* CS_CRYPTO_H */
