/* ark-cached: UTF-8 decoding and the few character classes the text side
 * (normaliser, builtin embedder, verifier) agrees on.
 *
 * The decoder is strict (no overlong forms, surrogates or values above
 * U+10FFFF) and reports an invalid byte instead of guessing, so that each
 * caller can keep such a byte as it is. The classes are deliberately
 * coarse: block ranges, no Unicode database. They are static inline
 * because they sit in the per-character loops of all three users.
 */
#ifndef CS_UTF8_H
#define CS_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one well-formed UTF-8 sequence at s (n >= 1 bytes available)
 * into *cp and returns its length 1..4, or 0 when s[0] does not start
 * one. */
static inline size_t cs_utf8_decode(const unsigned char *s, size_t n,
                                    uint32_t *cp)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need, k;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0) {
            lo = 0xA0;
        }
        else if (c == 0xED) {
            hi = 0x9F;
        }
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0) {
            lo = 0x90;
        }
        else if (c == 0xF4) {
            hi = 0x8F;
        }
    }
    else {
        return 0;
    }
    if (n < need + 1) {
        return 0;
    }
    for (k = 1; k <= need; k++) {
        unsigned char b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) {
            return 0;
        }
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need + 1;
}

/* Writes cp (<= U+10FFFF) as UTF-8 to dst (4 bytes room); returns the
 * length. */
static inline size_t cs_utf8_encode(uint32_t cp, char *dst)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Unicode White_Space, plus U+FEFF (a stray byte-order mark). */
static inline int cs_uc_is_space(uint32_t cp)
{
    if (cp < 0x80) {
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    }
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680
           || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028
           || cp == 0x2029 || cp == 0x202F || cp == 0x205F
           || cp == 0x3000 || cp == 0xFEFF;
}

/* Characters that end a line. */
static inline int cs_uc_is_newline(uint32_t cp)
{
    return cp == '\n' || cp == '\r' || cp == 0x85 || cp == 0x2028
           || cp == 0x2029;
}

/* Han ideographs and kana: scripts written without spaces between
 * words. */
static inline int cs_uc_is_cjk(uint32_t cp)
{
    return (cp >= 0x3040 && cp <= 0x30FF)       /* kana */
           || (cp >= 0x3400 && cp <= 0x4DBF)    /* Han extension A */
           || (cp >= 0x4E00 && cp <= 0x9FFF)    /* Han */
           || (cp >= 0xF900 && cp <= 0xFAFF)    /* Han compatibility */
           || (cp >= 0x20000 && cp <= 0x2FA1F); /* Han extensions */
}

/* Letters, digits and combining marks of any script ("_" is not one):
 * everything that is neither white space nor punctuation, symbol or
 * emoji by block. */
static inline int cs_uc_is_word(uint32_t cp)
{
    if (cp < 0x80) {
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z')
               || (cp >= 'A' && cp <= 'Z');
    }
    if (cp <= 0xBF) {
        return cp == 0xAA || cp == 0xB5 || cp == 0xBA;
    }
    if (cp == 0xD7 || cp == 0xF7 || cs_uc_is_space(cp)) {
        return 0;
    }
    if ((cp >= 0x2000 && cp <= 0x2BFF)         /* punctuation, symbols */
        || (cp >= 0x3000 && cp <= 0x303F)      /* CJK punctuation */
        || (cp >= 0xFE10 && cp <= 0xFE6F)      /* vertical, small forms */
        || (cp >= 0xFF00 && cp <= 0xFF65)      /* full-width punctuation */
        || (cp >= 0x1F000 && cp <= 0x1FAFF)) { /* emoji, pictographs */
        return 0;
    }
    return 1;
}

#endif /* CS_UTF8_H */
