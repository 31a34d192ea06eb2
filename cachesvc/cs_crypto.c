/* ark-cached: AES-256-GCM sealing of payloads and loading of the key.
 *
 * See cs_crypto.h for the sealed format. Seal and open each make one EVP
 * cipher context and work in a private scratch buffer that is appended to
 * the caller's cs_buf_t only once everything succeeded (open wipes its
 * scratch either way), so a caller never sees partial or unauthenticated
 * plaintext. The key file reader checks permissions on the
 * open descriptor (fstat), so the file checked is the file read.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cs_crypto.h"

int cs_crypto_seal(const unsigned char key[CS_CRYPTO_KEY_LEN],
                   const void *aad, size_t aadlen, const char *in,
                   size_t inlen, cs_buf_t *out)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *sealed = NULL, *p;
    int n, rv = CS_ERR;

    if (inlen > CS_CRYPTO_MAX_INPUT || aadlen > CS_CRYPTO_MAX_INPUT) {
        return CS_ERR;
    }
    sealed = cs_malloc(inlen + CS_CRYPTO_OVERHEAD);
    sealed[0] = CS_CRYPTO_VERSION;
    if (RAND_bytes(sealed + 1, CS_CRYPTO_NONCE_LEN) != 1) {
        goto done;
    }
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx
        || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
                               CS_CRYPTO_NONCE_LEN, NULL) != 1
        || EVP_EncryptInit_ex(ctx, NULL, NULL, key, sealed + 1) != 1) {
        goto done;
    }
    if (aadlen > 0
        && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1) {
        goto done;
    }
    p = sealed + 1 + CS_CRYPTO_NONCE_LEN;
    n = 0;
    if (inlen > 0
        && EVP_EncryptUpdate(ctx, p, &n, (const unsigned char *)in,
                             (int)inlen) != 1) {
        goto done;
    }
    /* GCM is a stream mode: Final adds no bytes, but it completes the tag */
    if (EVP_EncryptFinal_ex(ctx, p + n, &n) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CS_CRYPTO_TAG_LEN,
                               p + inlen) != 1) {
        goto done;
    }
    cs_buf_append(out, sealed, inlen + CS_CRYPTO_OVERHEAD);
    rv = CS_OK;
done:
    EVP_CIPHER_CTX_free(ctx);
    cs_free(sealed);
    return rv;
}

int cs_crypto_open(const unsigned char key[CS_CRYPTO_KEY_LEN],
                   const void *aad, size_t aadlen, const char *in,
                   size_t inlen, cs_buf_t *out)
{
    const unsigned char *nonce, *ct, *tag;
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *plain = NULL;
    size_t ctlen;
    int n, rv = CS_ERR;

    if (inlen < CS_CRYPTO_OVERHEAD
        || (unsigned char)in[0] != CS_CRYPTO_VERSION
        || inlen - CS_CRYPTO_OVERHEAD > CS_CRYPTO_MAX_INPUT
        || aadlen > CS_CRYPTO_MAX_INPUT) {
        return CS_ERR;
    }
    nonce = (const unsigned char *)in + 1;
    ct = nonce + CS_CRYPTO_NONCE_LEN;
    ctlen = inlen - CS_CRYPTO_OVERHEAD;
    tag = ct + ctlen;
    /* +1: cs_malloc(0) need not be distinct, and Final writes at plain+n */
    plain = cs_malloc(ctlen + 1);

    ctx = EVP_CIPHER_CTX_new();
    if (!ctx
        || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
                               CS_CRYPTO_NONCE_LEN, NULL) != 1
        || EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1) {
        goto done;
    }
    if (aadlen > 0
        && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1) {
        goto done;
    }
    n = 0;
    if (ctlen > 0
        && EVP_DecryptUpdate(ctx, plain, &n, ct, (int)ctlen) != 1) {
        goto done;
    }
    /* Final checks the tag. The cast is EVP's API: the tag is only read. */
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CS_CRYPTO_TAG_LEN,
                            (void *)tag) != 1
        || EVP_DecryptFinal_ex(ctx, plain + n, &n) != 1) {
        goto done;
    }
    cs_buf_append(out, plain, ctlen);
    rv = CS_OK;
done:
    /* Unauthenticated plaintext must not linger in freed memory. */
    OPENSSL_cleanse(plain, ctlen + 1);
    EVP_CIPHER_CTX_free(ctx);
    cs_free(plain);
    return rv;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

int cs_crypto_load_key(const char *path, unsigned char key[CS_CRYPTO_KEY_LEN],
                       char *err, size_t errlen)
{
    unsigned char raw[CS_CRYPTO_KEY_FILE_MAX + 1];
    size_t len = 0, i;
    struct stat st;
    ssize_t n;
    int fd, rv = CS_ERR;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open encryption key file %s: %s",
                 path, strerror(errno));
        return CS_ERR;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat encryption key file %s: %s",
                 path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "encryption key file %s is not a regular file",
                 path);
        goto done;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen,
                 "encryption key file %s is accessible by group or others "
                 "(mode %04o); make it readable by its owner only "
                 "(chmod 600 %s)",
                 path, (unsigned)(st.st_mode & 07777), path);
        goto done;
    }
    while (len < sizeof(raw)) {
        n = read(fd, raw + len, sizeof(raw) - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "cannot read encryption key file %s: %s",
                     path, strerror(errno));
            goto done;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    if (len == CS_CRYPTO_KEY_LEN) {
        memcpy(key, raw, CS_CRYPTO_KEY_LEN);
        rv = CS_OK;
        goto done;
    }
    /* Otherwise 64 hex digits and nothing after them but white space. */
    for (i = 2 * CS_CRYPTO_KEY_LEN; i < len && isspace(raw[i]); i++) {
    }
    if (len < 2 * CS_CRYPTO_KEY_LEN || i != len) {
        snprintf(err, errlen,
                 "encryption key file %s must hold exactly 32 raw bytes or "
                 "64 hex digits (it holds %s%zu bytes)",
                 path, len > CS_CRYPTO_KEY_FILE_MAX ? "more than " : "",
                 len > CS_CRYPTO_KEY_FILE_MAX ? (size_t)CS_CRYPTO_KEY_FILE_MAX
                                              : len);
        goto done;
    }
    for (i = 0; i < CS_CRYPTO_KEY_LEN; i++) {
        int hi = hexval(raw[2 * i]), lo = hexval(raw[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            OPENSSL_cleanse(key, CS_CRYPTO_KEY_LEN);
            snprintf(err, errlen,
                     "encryption key file %s must hold exactly 32 raw bytes "
                     "or 64 hex digits (found a non-hex character at offset "
                     "%zu)",
                     path, hi < 0 ? 2 * i : 2 * i + 1);
            goto done;
        }
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    rv = CS_OK;
done:
    OPENSSL_cleanse(raw, sizeof(raw));
    close(fd);
    return rv;
}
