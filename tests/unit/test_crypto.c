/* Unit tests for payload encryption (cs_crypto.c): AES-256-GCM known
 * answers from the GCM specification (McGrew and Viega, test cases 13,
 * 14 and 16, the 256-bit-key cases that NIST's CAVP vectors also cover),
 * fed to cs_crypto_open in our sealed format; seal/open round trips; every
 * kind of damage (each bit flipped, truncation, wrong key, wrong AAD,
 * unknown version) refused with the output buffer untouched; and the key
 * file reader (raw and hex forms, permissions, bad contents).
 *
 * Key files are written under a mkdtemp directory removed at the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cs_crypto.h"

static char tmpdir[64];

static size_t unhex(const char *hex, unsigned char *out)
{
    size_t n = strlen(hex) / 2, i;

    for (i = 0; i < n; i++) {
        unsigned int v;

        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
    return n;
}

/* Builds version | nonce | ciphertext | tag from a vector's parts. */
static size_t build_sealed(const char *iv, const char *ct, const char *tag,
                           unsigned char *out)
{
    size_t n = 0;

    out[n++] = CS_CRYPTO_VERSION;
    n += unhex(iv, out + n);
    n += unhex(ct, out + n);
    n += unhex(tag, out + n);
    return n;
}

typedef struct kat {
    const char *key, *iv, *pt, *aad, *ct, *tag;
} kat_t;

static const kat_t kats[] = {
    /* Test case 13: empty plaintext, zero key and nonce. */
    {"0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "",
     "530f8afbc74536b9a963b4f1c4cb738b"},
    /* Test case 14: one zero block. */
    {"0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    /* Test case 16: 60 bytes of plaintext with 20 bytes of AAD. */
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void test_known_answers(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(kats) / sizeof(kats[0]); i++) {
        unsigned char key[32], sealed[256], pt[128], aad[64];
        size_t slen, ptlen, aadlen;
        cs_buf_t out;

        unhex(kats[i].key, key);
        slen = build_sealed(kats[i].iv, kats[i].ct, kats[i].tag, sealed);
        ptlen = unhex(kats[i].pt, pt);
        aadlen = unhex(kats[i].aad, aad);
        assert_int_equal(slen, ptlen + CS_CRYPTO_OVERHEAD);

        cs_buf_init(&out);
        assert_int_equal(cs_crypto_open(key, aad, aadlen,
                                        (const char *)sealed, slen, &out),
                         CS_OK);
        assert_int_equal(out.len, ptlen);
        if (ptlen) {
            assert_memory_equal(out.data, pt, ptlen);
        }
        /* The same vector with its last tag bit flipped is refused. */
        sealed[slen - 1] ^= 0x01;
        assert_int_equal(cs_crypto_open(key, aad, aadlen,
                                        (const char *)sealed, slen, &out),
                         CS_ERR);
        assert_int_equal(out.len, ptlen);
        cs_buf_free(&out);
    }
}

static void test_round_trip(void **state)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 100000};
    unsigned char key[32];
    size_t i, j;

    (void)state;
    for (i = 0; i < sizeof(key); i++) {
        key[i] = (unsigned char)(i * 7 + 3);
    }
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        char *in = malloc(n + 1);
        cs_buf_t a, b, plain;

        for (j = 0; j < n; j++) {
            in[j] = (char)(j * 31 + i);
        }
        cs_buf_init(&a);
        cs_buf_init(&b);
        cs_buf_init(&plain);
        cs_buf_append(&a, "pre", 3);   /* seal appends */
        assert_int_equal(cs_crypto_seal(key, "aad", 3, in, n, &a), CS_OK);
        assert_int_equal(a.len, 3 + n + CS_CRYPTO_OVERHEAD);
        assert_memory_equal(a.data, "pre", 3);
        assert_int_equal((unsigned char)a.data[3], CS_CRYPTO_VERSION);
        assert_int_equal(cs_crypto_seal(key, "aad", 3, in, n, &b), CS_OK);
        /* Fresh nonce each time: the same input never seals the same. */
        assert_memory_not_equal(a.data + 4, b.data + 1, CS_CRYPTO_NONCE_LEN);

        assert_int_equal(cs_crypto_open(key, "aad", 3, a.data + 3, a.len - 3,
                                        &plain),
                         CS_OK);
        assert_int_equal(plain.len, n);
        if (n) {
            assert_memory_equal(plain.data, in, n);
        }
        cs_buf_reset(&plain);
        assert_int_equal(cs_crypto_open(key, "aad", 3, b.data, b.len, &plain),
                         CS_OK);
        assert_int_equal(plain.len, n);
        cs_buf_free(&a);
        cs_buf_free(&b);
        cs_buf_free(&plain);
        free(in);
    }
}

static void test_damage_refused(void **state)
{
    unsigned char key[32], other[32];
    const char *msg = "the capital of France is Paris";
    cs_buf_t sealed, out;
    size_t i;
    int bit;

    (void)state;
    memset(key, 0x42, sizeof(key));
    memcpy(other, key, sizeof(other));
    other[31] ^= 0x80;
    cs_buf_init(&sealed);
    cs_buf_init(&out);
    assert_int_equal(cs_crypto_seal(key, "id1", 3, msg, strlen(msg), &sealed),
                     CS_OK);
    cs_buf_append(&out, "keep", 4);

    /* Every single bit flipped anywhere (version, nonce, body, tag). */
    for (i = 0; i < sealed.len; i++) {
        for (bit = 0; bit < 8; bit++) {
            sealed.data[i] ^= (char)(1 << bit);
            assert_int_equal(cs_crypto_open(key, "id1", 3, sealed.data,
                                            sealed.len, &out),
                             CS_ERR);
            sealed.data[i] ^= (char)(1 << bit);
        }
    }
    /* Every truncation, including below the fixed overhead. */
    for (i = 0; i < sealed.len; i++) {
        assert_int_equal(cs_crypto_open(key, "id1", 3, sealed.data, i, &out),
                         CS_ERR);
    }
    /* Extra bytes at the end. */
    cs_buf_append(&sealed, "x", 1);
    assert_int_equal(cs_crypto_open(key, "id1", 3, sealed.data, sealed.len,
                                    &out),
                     CS_ERR);
    sealed.len--;
    /* Wrong key, wrong or missing AAD: a payload moved to another entry. */
    assert_int_equal(cs_crypto_open(other, "id1", 3, sealed.data, sealed.len,
                                    &out),
                     CS_ERR);
    assert_int_equal(cs_crypto_open(key, "id2", 3, sealed.data, sealed.len,
                                    &out),
                     CS_ERR);
    assert_int_equal(cs_crypto_open(key, NULL, 0, sealed.data, sealed.len,
                                    &out),
                     CS_ERR);
    /* Nothing was ever appended by a failed open. */
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "keep", 4);
    /* And the undamaged one still opens. */
    assert_int_equal(cs_crypto_open(key, "id1", 3, sealed.data, sealed.len,
                                    &out),
                     CS_OK);
    assert_int_equal(out.len, 4 + strlen(msg));
    assert_memory_equal(out.data + 4, msg, strlen(msg));
    cs_buf_free(&sealed);
    cs_buf_free(&out);
}

static void write_file(const char *path, const void *data, size_t n,
                       mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_load_key(void **state)
{
    static const char hex[] =
        "000102030405060708090a0b0c0d0e0f"
        "101112131415161718191A1B1C1D1E1F\n";
    unsigned char raw[32], key[32], expect[32];
    char path[128], link[128], err[256];
    size_t i;

    (void)state;
    for (i = 0; i < 32; i++) {
        raw[i] = (unsigned char)(0xA0 + i);
        expect[i] = (unsigned char)i;
    }
    snprintf(path, sizeof(path), "%s/key", tmpdir);
    snprintf(link, sizeof(link), "%s/key-link", tmpdir);

    /* 32 raw bytes */
    write_file(path, raw, sizeof(raw), 0600);
    assert_int_equal(cs_crypto_load_key(path, key, err, sizeof(err)), CS_OK);
    assert_memory_equal(key, raw, 32);
    /* 64 hex digits (mixed case) and a newline, read through a symlink */
    write_file(path, hex, strlen(hex), 0400);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(cs_crypto_load_key(link, key, err, sizeof(err)), CS_OK);
    assert_memory_equal(key, expect, 32);

    /* group- or world-accessible: refused, naming the file and the fix */
    write_file(path, raw, sizeof(raw), 0640);
    assert_int_equal(cs_crypto_load_key(path, key, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "group or others"));
    assert_non_null(strstr(err, "chmod 600"));
    write_file(path, raw, sizeof(raw), 0604);
    assert_int_equal(cs_crypto_load_key(path, key, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "0604"));
    /* ... also through the symlink (the target is what counts) */
    assert_int_equal(cs_crypto_load_key(link, key, err, sizeof(err)), CS_ERR);

    /* wrong sizes and contents */
    write_file(path, raw, 31, 0600);
    assert_int_equal(cs_crypto_load_key(path, key, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "32 raw bytes or 64 hex digits"));
    assert_non_null(strstr(err, "31 bytes"));
    write_file(path, raw, 32, 0600);
    write_file(path, hex, 63, 0600);
    assert_int_equal(cs_crypto_load_key(path, key, err, sizeof(err)), CS_ERR);
    write_file(path, "zz0102030405060708090a0b0c0d0e0f"
                     "101112131415161718191a1b1c1d1e1f", 64, 0600);
    assert_int_equal(cs_crypto_load_key(path, key, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "non-hex"));
    write_file(path, "000102030405060708090a0b0c0d0e0f"
                     "101112131415161718191a1b1c1d1e1f00\n", 67, 0600);
    assert_int_equal(cs_crypto_load_key(path, key, err, sizeof(err)), CS_ERR);
    {
        char big[1000];

        memset(big, 'a', sizeof(big));
        write_file(path, big, sizeof(big), 0600);
        assert_int_equal(cs_crypto_load_key(path, key, err, sizeof(err)),
                         CS_ERR);
        assert_non_null(strstr(err, "more than"));
    }
    /* missing file, directory */
    unlink(path);
    assert_int_equal(cs_crypto_load_key(path, key, err, sizeof(err)), CS_ERR);
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(cs_crypto_load_key(tmpdir, key, err, sizeof(err)),
                     CS_ERR);
    unlink(link);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/cs-crypto-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damage_refused),
        cmocka_unit_test(test_load_key),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
