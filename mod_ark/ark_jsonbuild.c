/* jansson trees built from texts ark_json_scan accepted. See
 * ark_jsonscan.h (ark_json_build).
 *
 * json_loadb reads its input through a stream with one function call and
 * one buffer append per byte (about 170 instructions a byte); the
 * client's body of every gateway request went through it. Once
 * ark_json_scan has validated a text (the same acceptance as json_loadb),
 * the tree can be built by a plain recursive descent that trusts the
 * grammar: strings without escapes are handed to jansson straight from
 * the input, numbers are converted as jansson converts them (strtoll,
 * strtod), objects keep the order of their keys, and a later duplicate
 * key replaces the earlier value in its place, as jansson does.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ark_jsonscan.h"

typedef struct {
    const unsigned char *s;
    apr_size_t len;
    apr_size_t i;
    int reject_duplicates;
} bld_t;

static json_t *build_value(bld_t *b);

static void skip_ws(bld_t *b)
{
    while (b->i < b->len && (b->s[b->i] == ' ' || b->s[b->i] == '\t'
                             || b->s[b->i] == '\n' || b->s[b->i] == '\r')) {
        b->i++;
    }
}

static unsigned int hex4(const unsigned char *h)
{
    unsigned int v = 0;
    int k;

    for (k = 0; k < 4; k++) {
        unsigned char c = h[k];

        v <<= 4;
        v |= c <= '9' ? (unsigned int)(c - '0')
                      : (unsigned int)((c | 0x20) - 'a' + 10);
    }
    return v;
}

static char *put_utf8(char *o, unsigned int cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    }
    else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* The string starting at the '"' at b->i: *pstr, *plen, either into the
 * input or (escapes decoded) into *pfree, which the caller frees.
 * Returns -1 when out of memory. */
static int read_string(bld_t *b, const char **pstr, apr_size_t *plen,
                       char **pfree)
{
    const unsigned char *s = b->s;
    apr_size_t start = ++b->i, j = start, k;
    int esc = 0;
    char *out, *o;

    while (s[j] != '"') {
        if (s[j] == '\\') {
            esc = 1;
            j += 2;
        }
        else {
            j++;
        }
    }
    b->i = j + 1;
    *pfree = NULL;
    if (!esc) {
        *pstr = (const char *)s + start;
        *plen = j - start;
        return 0;
    }
    /* decoding never grows a string: \uXXXX (6 bytes) is at most 3 bytes
     * of UTF-8, a surrogate pair (12) 4 */
    o = out = malloc(j - start + 1);
    if (!out) {
        return -1;
    }
    for (k = start; k < j; k++) {
        unsigned int cp;

        if (s[k] != '\\') {
            *o++ = (char)s[k];
            continue;
        }
        k++;
        switch (s[k]) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            cp = hex4(s + k + 1);
            k += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* the scanner checked that "\uDC00-\uDFFF" follows */
                unsigned int lo = hex4(s + k + 3);

                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                k += 6;
            }
            o = put_utf8(o, cp);
            break;
        default:                      /* '"', '\\', '/' */
            *o++ = (char)s[k];
            break;
        }
    }
    *pstr = out;
    *plen = (apr_size_t)(o - out);
    *pfree = out;
    return 0;
}

static json_t *build_number(bld_t *b)
{
    apr_size_t start = b->i;
    int real = 0;
    char tmp[64], *text = tmp;
    json_t *v;

    while (b->i < b->len) {
        unsigned char c = b->s[b->i];

        if (c == '.' || c == 'e' || c == 'E') {
            real = 1;
        }
        else if (!(c >= '0' && c <= '9') && c != '-' && c != '+') {
            break;
        }
        b->i++;
    }
    if (b->i - start >= sizeof(tmp)) {
        text = malloc(b->i - start + 1);
        if (!text) {
            return NULL;
        }
    }
    memcpy(text, b->s + start, b->i - start);
    text[b->i - start] = '\0';
    /* the scanner checked the range: no overflow here */
    v = real ? json_real(strtod(text, NULL))
             : json_integer((json_int_t)strtoll(text, NULL, 10));
    if (text != tmp) {
        free(text);
    }
    return v;
}

static json_t *build_object(bld_t *b)
{
    json_t *obj = json_object();

    if (!obj) {
        return NULL;
    }
    b->i++;                           /* '{' */
    skip_ws(b);
    if (b->s[b->i] == '}') {
        b->i++;
        return obj;
    }
    for (;;) {
        const char *key;
        apr_size_t klen;
        char *kfree;
        json_t *v;

        skip_ws(b);
        if (read_string(b, &key, &klen, &kfree) != 0) {
            json_decref(obj);
            return NULL;
        }
        skip_ws(b);
        b->i++;                       /* ':' */
        skip_ws(b);
        v = build_value(b);
        if (v && b->reject_duplicates && json_object_getn(obj, key, klen)) {
            json_decref(v);
            v = NULL;
        }
        /* setn_new_nocheck releases v itself when it fails */
        if (!v || json_object_setn_new_nocheck(obj, key, klen, v) != 0) {
            free(kfree);
            json_decref(obj);
            return NULL;
        }
        free(kfree);
        skip_ws(b);
        if (b->s[b->i] == ',') {
            b->i++;
            continue;
        }
        b->i++;                       /* '}' */
        return obj;
    }
}

static json_t *build_array(bld_t *b)
{
    json_t *arr = json_array();

    if (!arr) {
        return NULL;
    }
    b->i++;                           /* '[' */
    skip_ws(b);
    if (b->s[b->i] == ']') {
        b->i++;
        return arr;
    }
    for (;;) {
        json_t *v;

        skip_ws(b);
        v = build_value(b);
        if (!v || json_array_append_new(arr, v) != 0) {
            json_decref(arr);
            return NULL;
        }
        skip_ws(b);
        if (b->s[b->i] == ',') {
            b->i++;
            continue;
        }
        b->i++;                       /* ']' */
        return arr;
    }
}

static json_t *build_value(bld_t *b)
{
    switch (b->s[b->i]) {
    case '{':
        return build_object(b);
    case '[':
        return build_array(b);
    case '"': {
        const char *str;
        apr_size_t slen;
        char *sfree;
        json_t *v;

        if (read_string(b, &str, &slen, &sfree) != 0) {
            return NULL;
        }
        v = json_stringn_nocheck(str, slen);
        free(sfree);
        return v;
    }
    case 't':
        b->i += 4;
        return json_true();
    case 'f':
        b->i += 5;
        return json_false();
    case 'n':
        b->i += 4;
        return json_null();
    default:
        return build_number(b);
    }
}

json_t *ark_json_build(const char *buf, apr_size_t len,
                       int reject_duplicates)
{
    bld_t b;

    b.s = (const unsigned char *)buf;
    b.len = len;
    b.i = 0;
    b.reject_duplicates = reject_duplicates;
    skip_ws(&b);
    if (b.i >= len) {
        return NULL;
    }
    return build_value(&b);
}
