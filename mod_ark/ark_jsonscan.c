/* A fast JSON validator and top-level key locator. See ark_jsonscan.h.
 *
 * One pass over the bytes, no allocation, no recursion: containers are
 * kept on a bit stack (1 = object, 0 = array) of ARK_JSON_MAX_DEPTH bits.
 * The scanner is a loop over three states:
 *   VALUE   a value starts here ('{', '[', string, number, literal)
 *   AFTER   a value ended: ',' or the container's closing bracket
 *   KEY     an object member starts: "key" ':'
 * Worked example, fields {"usage"} on  {"id":"x","usage":{"n":1}}
 *   '{' push object, KEY "id" (no match), VALUE "x", AFTER ','
 *   KEY "usage" matches at depth 1: record type OBJECT and start = 19,
 *   VALUE '{' push, KEY "n", VALUE 1, AFTER '}' pop back to depth 1:
 *   the member's value ends here, end = 26; AFTER '}' pop to depth 0,
 *   then only whitespace may follow.
 * Fields below the top level (ark_json_scan_nested) are matched the same
 * way in the containers that are a field's value (or the first item of
 * it), tracked per depth in own/valof/at for the first few levels only.
 * Strings are skipped with a byte-class table (plain ASCII bytes need one
 * load and compare each); UTF-8 sequences and escapes are checked where
 * they occur.
 * The limits of ark_json_scan_limited cost two compares per value: every
 * VALUE inside a container adds one element (the example above has 3),
 * and every push checks the container depth (2 at most above).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ark_jsonscan.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Byte classes inside a string. */
#define C_PLAIN 0
#define C_QUOTE 1
#define C_BSLASH 2
#define C_CTRL 3
#define C_HIGH 4

static const unsigned char str_class[256] = {
    /* 0x00-0x1f: control characters */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x22 '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,   /* 0x5c '\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x80-0xff: UTF-8 sequences */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4
};

#define IS_WS(c) ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* Length of the well-formed UTF-8 sequence (2 to 4 bytes) starting at
 * s[0] (>= 0x80), or 0 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static apr_size_t utf8_seq(const unsigned char *s, apr_size_t avail)
{
    unsigned char b = s[0], lo = 0x80, hi = 0xbf;
    apr_size_t n, i;

    if (b >= 0xc2 && b <= 0xdf) {
        n = 2;
    }
    else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        if (b == 0xe0) {
            lo = 0xa0;          /* overlong */
        }
        else if (b == 0xed) {
            hi = 0x9f;          /* U+D800..U+DFFF */
        }
    }
    else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        if (b == 0xf0) {
            lo = 0x90;          /* overlong */
        }
        else if (b == 0xf4) {
            hi = 0x8f;          /* above U+10FFFF */
        }
    }
    else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

static int hex4(const unsigned char *s, unsigned int *pv)
{
    unsigned int v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        unsigned char c = s[i];

        v <<= 4;
        if (IS_DIGIT(c)) {
            v |= (unsigned int)(c - '0');
        }
        else if (c >= 'a' && c <= 'f') {
            v |= (unsigned int)(c - 'a' + 10);
        }
        else if (c >= 'A' && c <= 'F') {
            v |= (unsigned int)(c - 'A' + 10);
        }
        else {
            return 0;
        }
    }
    *pv = v;
    return 1;
}

/* Checks the \uXXXX escape at s[*ppos] ('\\'), with its low surrogate if
 * it is a high one; advances *ppos past it and stores the code point. */
static int scan_uescape(const unsigned char *s, apr_size_t len,
                        apr_size_t *ppos, unsigned int *pcp)
{
    apr_size_t pos = *ppos;
    unsigned int v, v2;

    if (len - pos < 6 || !hex4(s + pos + 2, &v) || v == 0) {
        return 0;               /* \u0000: jansson refuses NUL */
    }
    pos += 6;
    if (v >= 0xdc00 && v <= 0xdfff) {
        return 0;               /* a lone low surrogate */
    }
    if (v >= 0xd800 && v <= 0xdbff) {
        if (len - pos < 6 || s[pos] != '\\' || s[pos + 1] != 'u'
            || !hex4(s + pos + 2, &v2) || v2 < 0xdc00 || v2 > 0xdfff) {
            return 0;
        }
        v = 0x10000 + ((v - 0xd800) << 10) + (v2 - 0xdc00);
        pos += 6;
    }
    *ppos = pos;
    *pcp = v;
    return 1;
}

/* Skips the string whose opening quote is at s[*ppos]; *ppos ends past
 * the closing quote. *pesc tells whether it held escapes. The run of
 * plain bytes is the hot loop: unrolled, on a local pointer. */
#if defined(__GNUC__)
#define HOT_INLINE inline __attribute__((always_inline))
#else
#define HOT_INLINE inline
#endif

static HOT_INLINE int scan_string(const unsigned char *s, apr_size_t len,
                                  apr_size_t *ppos, int *pesc)
{
    const unsigned char *q = s + *ppos + 1, *end = s + len;
    apr_size_t n, at;
    unsigned int cp;

    *pesc = 0;
    for (;;) {
#ifdef __SSE2__
        /* 16 bytes at a time: a quote, a backslash, or a byte below
         * 0x20 or from 0x80 (both below 0x20 as signed bytes) ends the
         * run of plain bytes; the loops below then stop on it at once */
        while (end - q >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
            __m128i hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
            unsigned int m = (unsigned int)_mm_movemask_epi8(hit);

            if (m) {
                q += __builtin_ctz(m);
                break;
            }
            q += 16;
        }
#endif
        while (end - q >= 4) {
            if (str_class[q[0]]) {
                break;
            }
            if (str_class[q[1]]) {
                q += 1;
                break;
            }
            if (str_class[q[2]]) {
                q += 2;
                break;
            }
            if (str_class[q[3]]) {
                q += 3;
                break;
            }
            q += 4;
        }
        while (q < end && str_class[*q] == C_PLAIN) {
            q++;
        }
        if (q >= end) {
            *ppos = len;
            return 0;
        }
        switch (str_class[*q]) {
        case C_QUOTE:
            *ppos = (apr_size_t)(q - s) + 1;
            return 1;
        case C_BSLASH:
            *pesc = 1;
            if (end - q < 2) {
                *ppos = len;
                return 0;
            }
            switch (q[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n':
            case 'r': case 't':
                q += 2;
                break;
            case 'u':
                at = (apr_size_t)(q - s);
                if (!scan_uescape(s, len, &at, &cp)) {
                    *ppos = (apr_size_t)(q - s);
                    return 0;
                }
                q = s + at;
                break;
            default:
                *ppos = (apr_size_t)(q - s);
                return 0;
            }
            break;
        case C_HIGH:
            n = utf8_seq(q, (apr_size_t)(end - q));
            if (!n) {
                *ppos = (apr_size_t)(q - s);
                return 0;
            }
            q += n;
            break;
        default:            /* a raw control character */
            *ppos = (apr_size_t)(q - s);
            return 0;
        }
    }
}

/* Whether the raw (escaped) key text k[0, klen) decodes to want. */
static int key_equals(const unsigned char *k, apr_size_t klen, int esc,
                      const char *want, apr_size_t wlen)
{
    apr_size_t i = 0, j = 0;

    if (!esc) {
        return klen == wlen && !memcmp(k, want, wlen);
    }
    while (i < klen) {
        unsigned char buf[4];
        apr_size_t n = 1, m;
        unsigned int cp;

        if (k[i] != '\\') {
            buf[0] = k[i++];
        }
        else {
            switch (k[i + 1]) {
            case 'b': buf[0] = '\b'; i += 2; break;
            case 'f': buf[0] = '\f'; i += 2; break;
            case 'n': buf[0] = '\n'; i += 2; break;
            case 'r': buf[0] = '\r'; i += 2; break;
            case 't': buf[0] = '\t'; i += 2; break;
            case 'u':
                /* already validated by scan_string */
                scan_uescape(k, klen, &i, &cp);
                if (cp < 0x80) {
                    buf[0] = (unsigned char)cp;
                }
                else if (cp < 0x800) {
                    buf[0] = (unsigned char)(0xc0 | (cp >> 6));
                    buf[1] = (unsigned char)(0x80 | (cp & 0x3f));
                    n = 2;
                }
                else if (cp < 0x10000) {
                    buf[0] = (unsigned char)(0xe0 | (cp >> 12));
                    buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                    buf[2] = (unsigned char)(0x80 | (cp & 0x3f));
                    n = 3;
                }
                else {
                    buf[0] = (unsigned char)(0xf0 | (cp >> 18));
                    buf[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
                    buf[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                    buf[3] = (unsigned char)(0x80 | (cp & 0x3f));
                    n = 4;
                }
                break;
            default:            /* '"', '\\', '/' */
                buf[0] = k[i + 1];
                i += 2;
                break;
            }
        }
        for (m = 0; m < n; m++) {
            if (j >= wlen || (unsigned char)want[j++] != buf[m]) {
                return 0;
            }
        }
    }
    return j == wlen;
}

/* Whether the real number with significant digits sig[0, nsig) (first
 * one non-zero) and value in [10^e10, 10^(e10+1)) overflows a double,
 * as strtod reports it. Only e10 == 308 needs strtod: below, the value is
 * under 10^308 < DBL_MAX; above, it is at least 10^309. Keeping 400
 * significant digits is exact: the rounding boundary (halfway between
 * DBL_MAX and 2^1024) is an integer of 309 digits. */
static int real_overflows(const unsigned char *digits, apr_size_t ndigits,
                          apr_size_t skip, long long e10)
{
    char tmp[440];
    apr_size_t i, n = 0;
    double v;

    if (e10 < 308) {
        return 0;
    }
    if (e10 > 308) {
        return 1;
    }
    /* digits may contain one '.'; copy the significant ones */
    for (i = skip; i < ndigits && n < 400; i++) {
        if (IS_DIGIT(digits[i])) {
            tmp[n++] = (char)digits[i];
        }
    }
    snprintf(tmp + n, sizeof(tmp) - n, "e%lld", 308 - (long long)(n - 1));
    errno = 0;
    v = strtod(tmp, NULL);
    return (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
}

/* Scans the number at s[*ppos]; *ptype gets INTEGER or REAL. */
static int scan_number(const unsigned char *s, apr_size_t len,
                       apr_size_t *ppos, ark_json_type_t *ptype)
{
    apr_size_t pos = *ppos, int0, int1, frac0 = 0, frac1 = 0, i;
    int neg = 0, real = 0, eneg = 0;
    long long e = 0, e10;

    if (s[pos] == '-') {
        neg = 1;
        pos++;
    }
    int0 = pos;
    if (pos >= len) {
        goto bad;
    }
    if (s[pos] == '0') {
        pos++;
        if (pos < len && IS_DIGIT(s[pos])) {
            goto bad;
        }
    }
    else if (s[pos] >= '1' && s[pos] <= '9') {
        while (pos < len && IS_DIGIT(s[pos])) {
            pos++;
        }
    }
    else {
        goto bad;
    }
    int1 = pos;
    if (pos < len && s[pos] == '.') {
        real = 1;
        pos++;
        frac0 = pos;
        if (pos >= len || !IS_DIGIT(s[pos])) {
            goto bad;
        }
        while (pos < len && IS_DIGIT(s[pos])) {
            pos++;
        }
        frac1 = pos;
    }
    if (pos < len && (s[pos] == 'e' || s[pos] == 'E')) {
        real = 1;
        pos++;
        if (pos < len && (s[pos] == '+' || s[pos] == '-')) {
            eneg = s[pos] == '-';
            pos++;
        }
        if (pos >= len || !IS_DIGIT(s[pos])) {
            goto bad;
        }
        while (pos < len && IS_DIGIT(s[pos])) {
            if (e < 1000000000LL) {
                e = e * 10 + (s[pos] - '0');
            }
            pos++;
        }
        if (eneg) {
            e = -e;
        }
    }

    if (!real) {
        /* strtoll range: at most 19 digits, then compare */
        apr_size_t nd = int1 - int0;

        if (nd > 19 || (nd == 19 && memcmp(s + int0, neg
                                           ? "9223372036854775808"
                                           : "9223372036854775807",
                                           19) > 0)) {
            *ppos = int0;
            return 0;
        }
        *ptype = ARK_JSON_INTEGER;
        *ppos = pos;
        return 1;
    }

    /* the first significant digit decides the decimal magnitude */
    for (i = int0; i < int1 && s[i] == '0'; i++) {
    }
    if (i < int1) {
        e10 = (long long)(int1 - i) - 1 + e;
    }
    else {
        for (i = frac0; i < frac1 && s[i] == '0'; i++) {
        }
        if (i >= frac1) {
            *ptype = ARK_JSON_REAL;     /* zero */
            *ppos = pos;
            return 1;
        }
        e10 = -(long long)(i - frac0) - 1 + e;
    }
    if (real_overflows(s + int0, (frac1 ? frac1 : int1) - int0, i - int0,
                       e10)) {
        *ppos = int0;
        return 0;
    }
    *ptype = ARK_JSON_REAL;
    *ppos = pos;
    return 1;

bad:
    *ppos = pos;
    return 0;
}

static int scan_literal(const unsigned char *s, apr_size_t len,
                        apr_size_t *ppos, ark_json_type_t *ptype)
{
    apr_size_t pos = *ppos, avail = len - pos;

    if (s[pos] == 't' && avail >= 4 && !memcmp(s + pos, "true", 4)) {
        *ptype = ARK_JSON_TRUE;
        *ppos = pos + 4;
        return 1;
    }
    if (s[pos] == 'f' && avail >= 5 && !memcmp(s + pos, "false", 5)) {
        *ptype = ARK_JSON_FALSE;
        *ppos = pos + 5;
        return 1;
    }
    if (s[pos] == 'n' && avail >= 4 && !memcmp(s + pos, "null", 4)) {
        *ptype = ARK_JSON_NULL;
        *ppos = pos + 4;
        return 1;
    }
    return 0;
}

/* Fields are matched in containers at most NEST deep (ark_json_scan_nested);
 * TOP: the parent of a top-level field; NOF: no field. */
#define NEST ARK_JSON_NEST_DEPTH
#define TOP (-1)
#define NOF (-2)

#define SKIP_WS() \
    while (pos < len && IS_WS(s[pos])) { \
        pos++; \
    }

/* The scanner. max_depth bounds the containers nested in each other
 * (the jansson check on every value stays), max_elements the values
 * inside containers; *phit tells which limit ended the scan. */
/* Whether field j lies inside the value of field i (parents come before
 * their children: checked by scan). */
static int inside(const int *parent, int j, int i)
{
    int q;

    for (q = parent[j]; q >= 0; q = parent[q]) {
        if (q == i) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t scan(const char *buf, apr_size_t len,
                         ark_json_field_t *fields, const int *parent,
                         int nfields, ark_json_type_t *ptop,
                         apr_size_t *perr_at, int max_depth,
                         apr_size_t max_elements, ark_json_limit_t *phit)
{
    const unsigned char *s = (const unsigned char *)buf;
    unsigned char stack[ARK_JSON_MAX_DEPTH / 8];
    apr_size_t pos = 0, wlen[8], nelem = 0;
    /* per container depth d (1 to NEST): own[d], whose member keys are
     * matched against the fields whose parent is own[d] (TOP: the
     * top-level fields, NOF: none); valof[d], the field whose value the
     * container is (its items or members are counted); at[d], the field
     * whose value is being read in the container (a matched member) */
    int own[NEST + 1], valof[NEST + 1], at[NEST + 1];
    /* the fields of each parent as lists: head[p + 1] the first one of
     * parent p (TOP included), nxt[i] the next one of the same parent */
    int head[9], nxt[8], tail[9];
    int depth = 0, i, j, esc, mf, ow, haskids = 0;
    ark_json_type_t type;

    *phit = ARK_JSON_LIMIT_NONE;
    if (nfields > 8) {
        goto bad;               /* not a document error: a caller's bug */
    }
    for (i = 0; i < 9; i++) {
        head[i] = tail[i] = NOF;
    }
    for (i = 0; i < nfields; i++) {
        int pi = parent ? parent[i] : TOP;

        fields[i].type = ARK_JSON_NONE;
        fields[i].count = 0;
        wlen[i] = strlen(fields[i].key);
        if (pi < TOP || pi >= i) {
            goto bad;           /* a caller's bug too */
        }
        if (pi >= 0) {
            haskids |= 1 << pi;
        }
        nxt[i] = NOF;
        if (tail[pi + 1] == NOF) {
            head[pi + 1] = i;
        }
        else {
            nxt[tail[pi + 1]] = i;
        }
        tail[pi + 1] = i;
    }
    own[0] = valof[0] = at[0] = NOF;
    SKIP_WS();
    if (pos >= len || (s[pos] != '{' && s[pos] != '[')) {
        goto bad;
    }
    if (ptop) {
        *ptop = s[pos] == '{' ? ARK_JSON_OBJECT : ARK_JSON_ARRAY;
    }

value:
    /* a value at depth + 1; s[pos] is its first byte. mf: the field it
     * is the value of; ow: the field whose children are its members if
     * it is an object (that field's value, or the first item of it) */
    if (depth >= ARK_JSON_MAX_DEPTH || pos >= len) {
        goto bad;
    }
    mf = NOF;
    ow = depth == 0 ? TOP : NOF;
    if (depth > 0) {
        if (++nelem > max_elements) {
            *phit = ARK_JSON_LIMIT_ELEMENTS;
            goto bad;
        }
        if (depth <= NEST) {
            int vo = valof[depth];

            mf = at[depth];
            if (vo >= 0) {
                fields[vo].count++; /* a direct child of a field's value */
            }
            if (mf >= 0) {
                ow = haskids & (1 << mf) ? mf : NOF;
            }
            else if (vo >= 0 && fields[vo].count == 1
                     && (haskids & (1 << vo))
                     && !(stack[(depth - 1) >> 3]
                          & (1u << ((depth - 1) & 7)))) {
                ow = vo;            /* the first item of a field's array */
            }
        }
    }
    switch (s[pos]) {
    case '{':
        type = ARK_JSON_OBJECT;
        break;
    case '[':
        type = ARK_JSON_ARRAY;
        break;
    case '"':
        type = ARK_JSON_STRING;
        if (!scan_string(s, len, &pos, &esc)) {
            goto bad;
        }
        break;
    case '-': case '0': case '1': case '2': case '3': case '4': case '5':
    case '6': case '7': case '8': case '9':
        if (!scan_number(s, len, &pos, &type)) {
            goto bad;
        }
        break;
    default:
        if (!scan_literal(s, len, &pos, &type)) {
            goto bad;
        }
        break;
    }
    if (mf >= 0) {
        fields[mf].type = type;
    }
    if (type == ARK_JSON_OBJECT || type == ARK_JSON_ARRAY) {
        if (depth >= max_depth) {
            *phit = ARK_JSON_LIMIT_DEPTH;
            goto bad;
        }
        if (type == ARK_JSON_OBJECT) {
            stack[depth >> 3] |= (unsigned char)(1u << (depth & 7));
        }
        else {
            stack[depth >> 3] &= (unsigned char)~(1u << (depth & 7));
        }
        depth++;
        if (depth <= NEST) {
            own[depth] = type == ARK_JSON_OBJECT ? ow : NOF;
            valof[depth] = mf;
            at[depth] = NOF;
        }
        pos++;
        SKIP_WS();
        if (pos < len && s[pos] == (type == ARK_JSON_OBJECT ? '}' : ']')) {
            depth--;
            pos++;
            goto after;
        }
        if (type == ARK_JSON_OBJECT) {
            goto key;
        }
        goto value;
    }

after:
    /* a value ended at pos, at depth + 1 */
    if (depth <= NEST && at[depth] >= 0) {
        fields[at[depth]].end = pos;
        at[depth] = NOF;
    }
    if (depth == 0) {
        SKIP_WS();
        if (pos != len) {
            goto bad;
        }
        return APR_SUCCESS;
    }
    SKIP_WS();
    if (pos >= len) {
        goto bad;
    }
    if (stack[(depth - 1) >> 3] & (1u << ((depth - 1) & 7))) {
        if (s[pos] == ',') {
            pos++;
            SKIP_WS();
            goto key;
        }
        if (s[pos] != '}') {
            goto bad;
        }
    }
    else {
        if (s[pos] == ',') {
            pos++;
            SKIP_WS();
            goto value;
        }
        if (s[pos] != ']') {
            goto bad;
        }
    }
    depth--;
    pos++;
    goto after;

key:
    {
        apr_size_t k0 = pos;

        if (pos >= len || s[pos] != '"' || !scan_string(s, len, &pos, &esc)) {
            goto bad;
        }
        if (depth < NEST && own[depth] != NOF) {
            apr_size_t klen = pos - k0 - 2;

            for (i = head[own[depth] + 1]; i != NOF; i = nxt[i]) {
                /* without escapes, the length and the first byte rule
                 * out most keys before a compare */
                if (esc ? key_equals(s + k0 + 1, klen, 1, fields[i].key,
                                     wlen[i])
                        : (klen == wlen[i]
                           && (klen == 0
                               || (s[k0 + 1] == (unsigned char)fields[i].key[0]
                                   && !memcmp(s + k0 + 1, fields[i].key,
                                              klen))))) {
                    at[depth] = i;
                    fields[i].key_start = k0;
                    fields[i].count = 0;
                    /* a repeated key: what was found in the value of
                     * its earlier occurrence is forgotten (the last
                     * value is the one jansson keeps) */
                    for (j = i + 1; haskids & (1 << i) && j < nfields;
                         j++) {
                        if (inside(parent, j, i)) {
                            fields[j].type = ARK_JSON_NONE;
                            fields[j].count = 0;
                        }
                    }
                }
            }
        }
        SKIP_WS();
        if (pos >= len || s[pos] != ':') {
            goto bad;
        }
        pos++;
        SKIP_WS();
        if (depth <= NEST && at[depth] >= 0) {
            fields[at[depth]].start = pos;
        }
        goto value;
    }

bad:
    if (perr_at) {
        *perr_at = pos < len ? pos : len;
    }
    return *phit != ARK_JSON_LIMIT_NONE ? APR_ENOSPC : APR_EINVAL;
}

apr_status_t ark_json_scan(const char *buf, apr_size_t len,
                           ark_json_field_t *fields, int nfields,
                           ark_json_type_t *ptop, apr_size_t *perr_at)
{
    ark_json_limit_t hit;

    return scan(buf, len, fields, NULL, nfields, ptop, perr_at,
                ARK_JSON_MAX_DEPTH, APR_SIZE_MAX, &hit);
}

apr_status_t ark_json_scan_nested(const char *buf, apr_size_t len,
                                  ark_json_field_t *fields,
                                  const int *parent, int nfields,
                                  ark_json_type_t *ptop, apr_size_t *perr_at)
{
    ark_json_limit_t hit;

    return scan(buf, len, fields, parent, nfields, ptop, perr_at,
                ARK_JSON_MAX_DEPTH, APR_SIZE_MAX, &hit);
}

apr_status_t ark_json_scan_limited(const char *buf, apr_size_t len,
                                   ark_json_field_t *fields, int nfields,
                                   const ark_json_limits_t *lim,
                                   ark_json_limit_t *phit,
                                   apr_size_t *perr_at)
{
    ark_json_limit_t hit;
    int depth = lim->max_depth;

    if (depth <= 0 || depth > ARK_JSON_MAX_DEPTH) {
        depth = ARK_JSON_MAX_DEPTH;
    }
    return scan(buf, len, fields, NULL, nfields, NULL, perr_at, depth,
                lim->max_elements ? lim->max_elements : APR_SIZE_MAX,
                phit ? phit : &hit);
}

int ark_json_field_integer(const char *buf, const ark_json_field_t *f,
                           apr_int64_t *pv)
{
    if (f->type != ARK_JSON_INTEGER) {
        return 0;
    }
    /* fits: checked by the scan; the text ends at a non-digit */
    *pv = (apr_int64_t)strtoll(buf + f->start, NULL, 10);
    return 1;
}

apr_size_t ark_json_quote(char *out, const char *str, apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    apr_size_t i = 0, o = 0, n;

    out[o++] = '"';
    while (i < len) {
        unsigned char c = s[i];

        if (c >= 0x80) {
            n = utf8_seq(s + i, len - i);
            if (!n) {
                return 0;
            }
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
            continue;
        }
        i++;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        }
        else if (c >= 0x20) {
            out[o++] = (char)c;
        }
        else if (c == 0) {
            return 0;           /* jansson would refuse it */
        }
        else {
            out[o++] = '\\';
            switch (c) {
            case '\b': out[o++] = 'b'; break;
            case '\f': out[o++] = 'f'; break;
            case '\n': out[o++] = 'n'; break;
            case '\r': out[o++] = 'r'; break;
            case '\t': out[o++] = 't'; break;
            default:
                out[o++] = 'u';
                out[o++] = '0';
                out[o++] = '0';
                out[o++] = hex[c >> 4];
                out[o++] = hex[c & 0xf];
                break;
            }
        }
    }
    out[o++] = '"';
    return o;
}
