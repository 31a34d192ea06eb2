/* A fast JSON validator and top-level key locator.
 *
 * ark_json_scan checks in one pass, without allocating, that a buffer is
 * a JSON text (RFC 8259) whose top-level value is an object or an array,
 * and reports where the values of a few top-level keys lie, so that the
 * hot path can check an upstream answer and read its "usage" without
 * building a jansson tree of the whole document, or replace one value of
 * the client's body by splicing bytes instead of re-serializing it.
 *
 * It accepts exactly the texts json_loadb(buf, len, 0, NULL) accepts
 * (jansson 2.14), so that switching from one to the other never lets
 * through an answer that used to be refused, nor the reverse, with one
 * exception where it is stricter: jansson skips a raw NUL byte right
 * after a number or a literal, the scanner refuses it. In detail:
 *   - strings: UTF-8 well-formed (no overlong forms, surrogates or code
 *     points above U+10FFFF), no raw control characters, only the RFC
 *     8259 escapes, \uXXXX surrogates paired, no \u0000;
 *   - numbers: RFC 8259 grammar; integers (no '.', 'e' or 'E') must fit
 *     in 64 bits and other numbers must not overflow a double;
 *   - nesting: at most ARK_JSON_MAX_DEPTH levels, counted as jansson
 *     counts them (every value, scalars included, one level below its
 *     container);
 *   - whitespace only after the top-level value.
 * Duplicate keys are allowed (as with jansson's default flags); a key
 * looked for reports its LAST occurrence, the one jansson would keep.
 *
 * Pure function of its input; thread-safe; no APR pools.
 */
#ifndef ARK_JSONSCAN_H
#define ARK_JSONSCAN_H

#include <apr.h>
#include <apr_errno.h>

/* jansson's JSON_PARSER_MAX_DEPTH */
#define ARK_JSON_MAX_DEPTH 2048

typedef enum {
    ARK_JSON_NONE = 0,      /* key absent */
    ARK_JSON_OBJECT,
    ARK_JSON_ARRAY,
    ARK_JSON_STRING,
    ARK_JSON_INTEGER,       /* a number without '.', 'e' or 'E' */
    ARK_JSON_REAL,
    ARK_JSON_TRUE,
    ARK_JSON_FALSE,
    ARK_JSON_NULL
} ark_json_type_t;

/* One top-level key to locate. `key` is the decoded key (escapes in the
 * document are decoded before comparing: "mod\u0065l" is "model"). */
typedef struct ark_json_field_t {
    const char *key;            /* in: NUL-terminated, not escaped */
    ark_json_type_t type;       /* out: ARK_JSON_NONE when absent */
    apr_size_t key_start;       /* out: offset of the key's opening '"' */
    apr_size_t start;           /* out: the value is buf[start, end) */
    apr_size_t end;
    apr_size_t count;           /* out: items of an array value, members
                                 * of an object value (else 0) */
} ark_json_field_t;

/* Limits beyond the grammar, for documents from untrusted clients (see
 * ark_json_scan_limited). */
typedef struct ark_json_limits_t {
    int max_depth;              /* objects and arrays nested in each other:
                                 * [] is 1 deep, {"a":[1]} 2 deep; 1 to
                                 * ARK_JSON_MAX_DEPTH (0: ARK_JSON_MAX_DEPTH) */
    apr_size_t max_elements;    /* array items plus object members over the
                                 * whole document; 0: no limit */
} ark_json_limits_t;

/* Which limit a document broke. */
typedef enum {
    ARK_JSON_LIMIT_NONE = 0,
    ARK_JSON_LIMIT_DEPTH,
    ARK_JSON_LIMIT_ELEMENTS
} ark_json_limit_t;

/* Validates buf[0, len) (see above) and, when the top-level value is an
 * object, fills fields[0, nfields) (nfields at most 8; fields may be NULL
 * when nfields is 0).
 * *ptop (may be NULL) receives ARK_JSON_OBJECT or ARK_JSON_ARRAY.
 * Returns APR_SUCCESS, or APR_EINVAL with *perr_at (may be NULL) the
 * offset of the first byte found wrong (len for a truncated text); the
 * fields are then unspecified. */
apr_status_t ark_json_scan(const char *buf, apr_size_t len,
                           ark_json_field_t *fields, int nfields,
                           ark_json_type_t *ptop, apr_size_t *perr_at);

/* ark_json_scan_nested: fields below the top level, found in the same
 * single pass. parent[i] is -1 for a top-level key, else the index j < i
 * of the field inside whose value fields[i] is looked for: a member of
 * that value when it is an object or, when it is an array, of its FIRST
 * item if that item is an object. Offsets are from buf. Worked example,
 * for a streamed chat.completion.chunk:
 *   keys   {"choices", "delta", "content"}   parent {-1, 0, 1}
 *   {"choices":[{"index":0,"delta":{"content":"Hi"}}]}
 *   choices: ARRAY, count 1; delta: OBJECT; content: STRING "\"Hi\""
 * As at the top level, a repeated key reports its last occurrence, and
 * what was found inside the value of an earlier occurrence is dropped
 * (fields below it are NONE unless the last value holds them too).
 * Keys are matched in containers at most ARK_JSON_NEST_DEPTH - 1 deep
 * (the top-level object is 1 deep). Same outcomes as ark_json_scan
 * otherwise; APR_EINVAL (a caller's bug) if a parent is out of range. */
#define ARK_JSON_NEST_DEPTH 8
apr_status_t ark_json_scan_nested(const char *buf, apr_size_t len,
                                  ark_json_field_t *fields,
                                  const int *parent, int nfields,
                                  ark_json_type_t *ptop, apr_size_t *perr_at);

/* ark_json_scan with limits, checked as the scan goes, so that a
 * document breaking one is refused as soon as the limit is passed,
 * without reading further. Returns APR_SUCCESS; APR_EINVAL for a syntax
 * error found before any limit was passed (*phit = ARK_JSON_LIMIT_NONE);
 * APR_ENOSPC with *phit the limit broken and *perr_at the offset of the
 * value that broke it. phit and perr_at may be NULL. */
apr_status_t ark_json_scan_limited(const char *buf, apr_size_t len,
                                   ark_json_field_t *fields, int nfields,
                                   const ark_json_limits_t *lim,
                                   ark_json_limit_t *phit,
                                   apr_size_t *perr_at);

/* The value of an ARK_JSON_INTEGER field (already checked to fit), in
 * *pv. Returns 1, or 0 (and *pv untouched) for any other type. */
int ark_json_field_integer(const char *buf, const ark_json_field_t *f,
                           apr_int64_t *pv);

/* Appends s as a JSON string literal (quotes included) to out, which
 * must have room for 6 * strlen(s) + 2 bytes: '"' and '\\' escaped,
 * control characters as \n, \t, ... or \u00XX, everything else copied.
 * Returns the number of bytes written, or 0 if s is not valid UTF-8. */
apr_size_t ark_json_quote(char *out, const char *s, apr_size_t len);

/* The jansson tree of buf[0, len), which ark_json_scan must have
 * accepted (anything else is undefined behaviour): the same tree
 * json_loadb(buf, len, reject_duplicates ? JSON_REJECT_DUPLICATES : 0)
 * returns (same values, same key order, a duplicate key's last value in
 * its first place), at a fraction of the cost (ark_jsonbuild.c). Returns
 * a new reference, or NULL when reject_duplicates is set and a key
 * repeats, or when out of memory; the caller may then ask json_loadb
 * for its error message. */
#include <jansson.h>
json_t *ark_json_build(const char *buf, apr_size_t len,
                       int reject_duplicates);

#endif /* ARK_JSONSCAN_H */
