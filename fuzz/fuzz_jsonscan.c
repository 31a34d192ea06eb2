/* Fuzz target: the JSON validator of mod_ark/ark_jsonscan.h.
 *
 * The input is any byte string. ark_json_scan must agree with jansson
 * (json_loadb with flags 0), as its header promises: whatever it accepts
 * jansson accepts with the same top-level type, and whatever jansson
 * accepts it accepts too, except texts holding a raw NUL byte (the one
 * place where the scanner is documented to be stricter). For an object,
 * each located field must be jansson's value of that key (the last of
 * duplicates): same type, and its bytes parse to an equal value.
 * Located containers must report their item count (an array's size, an
 * object's members as written, duplicates included). The limits of
 * ark_json_scan_limited are checked against the depth and element count
 * of the text, measured here independently: a valid text is accepted
 * exactly when it is within the limits, with the same fields, and
 * otherwise refused with the limit it broke; an invalid one is refused
 * no later than ark_json_scan refuses it.
 * ark_json_scan_nested must agree with ark_json_scan on the outcome and
 * find the fields of a streamed chunk (choices[0].delta.content, ...)
 * where jansson's tree has them.
 * ark_usage_from_openai_text must read what ark_usage_from_openai reads
 * from jansson's tree, and ark_json_quote must produce a JSON string
 * literal that decodes back to its input, or 0 exactly when the input is
 * not UTF-8 (as jansson's json_stringn judges it) or holds a NUL byte
 * (which jansson refuses in documents parsed without JSON_ALLOW_NUL).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ark_jsonscan.h"
#include "ark_request.h"
#include "fuzz_common.h"

/* The top-level keys the gateway looks for, plus a few common ones. */
static const char *const keys[] = {
    "model", "usage", "stream", "messages", "choices", "error", "id", "n"
};
#define NKEYS ((int)(sizeof(keys) / sizeof(keys[0])))

static ark_json_type_t type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return ARK_JSON_OBJECT;
    case JSON_ARRAY:
        return ARK_JSON_ARRAY;
    case JSON_STRING:
        return ARK_JSON_STRING;
    case JSON_INTEGER:
        return ARK_JSON_INTEGER;
    case JSON_REAL:
        return ARK_JSON_REAL;
    case JSON_TRUE:
        return ARK_JSON_TRUE;
    case JSON_FALSE:
        return ARK_JSON_FALSE;
    default:
        return ARK_JSON_NULL;
    }
}

/* Field f of buf, located by the scanner, against jansson's root. */
static void check_field(const char *buf, apr_size_t len,
                        const ark_json_field_t *f, const json_t *root)
{
    const json_t *want = json_object_get(root, f->key);
    json_t *got;
    apr_int64_t iv;

    if (!want) {
        FUZZ_CHECK(f->type == ARK_JSON_NONE);
        return;
    }
    FUZZ_CHECK(f->type == type_of(want));
    FUZZ_CHECK(f->key_start < f->start && f->start < f->end
               && f->end <= len);
    FUZZ_CHECK(buf[f->key_start] == '"');
    if (json_is_array(want)) {
        FUZZ_CHECK(f->count == json_array_size(want));
    }
    else if (json_is_object(want)) {
        FUZZ_CHECK(f->count >= json_object_size(want));
    }
    else {
        FUZZ_CHECK(f->count == 0);
    }
    got = json_loadb(buf + f->start, f->end - f->start, JSON_DECODE_ANY,
                     NULL);
    FUZZ_CHECK(got != NULL);
    FUZZ_CHECK(json_equal(got, (json_t *)want));
    json_decref(got);
    if (ark_json_field_integer(buf, f, &iv)) {
        FUZZ_CHECK(json_is_integer(want) && json_integer_value(want) == iv);
    }
    else {
        FUZZ_CHECK(!json_is_integer(want));
    }
}

/* The nesting depth of the containers of a valid JSON text ([] is 1) and
 * its elements (array items plus object members, over all containers). */
static void text_shape(const char *s, size_t n, int *pdepth, size_t *pelems)
{
    static size_t commas[ARK_JSON_MAX_DEPTH + 1];
    static char nonempty[ARK_JSON_MAX_DEPTH + 1];
    int depth = 0, maxd = 0, instr = 0;
    size_t k, elems = 0;

    for (k = 0; k < n; k++) {
        char c = s[k];

        if (instr) {
            if (c == '\\') {
                k++;
            }
            else if (c == '"') {
                instr = 0;
            }
            continue;
        }
        switch (c) {
        case ' ': case '\t': case '\n': case '\r': case ':':
            break;
        case ',':
            commas[depth]++;
            break;
        case '{': case '[':
            nonempty[depth] = 1;
            depth++;
            maxd = depth > maxd ? depth : maxd;
            commas[depth] = 0;
            nonempty[depth] = 0;
            break;
        case '}': case ']':
            elems += nonempty[depth] ? commas[depth] + 1 : 0;
            depth--;
            break;
        default:
            instr = c == '"';
            nonempty[depth] = 1;
            break;
        }
    }
    *pdepth = maxd;
    *pelems = elems;
}

/* ark_json_scan_limited against ark_json_scan's outcome rv (refused at
 * err_at) and, for a valid text, its fields f. */
static void check_limited(const char *buf, apr_size_t len, apr_status_t rv,
                          apr_size_t err_at, const ark_json_field_t *f)
{
    static const ark_json_limits_t limits[] = {
        {0, 0}, {1, 0}, {2, 5}, {4, 30}, {0, 3}
    };
    int depth = 0;
    size_t elems = 0;
    apr_size_t i;
    int j;

    if (rv == APR_SUCCESS) {
        text_shape(buf, len, &depth, &elems);
    }
    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        const ark_json_limits_t *l = &limits[i];
        int dmax = l->max_depth ? l->max_depth : ARK_JSON_MAX_DEPTH;
        int deep = depth > dmax;
        int many = l->max_elements && elems > l->max_elements;
        ark_json_field_t g[NKEYS];
        ark_json_limit_t hit = (ark_json_limit_t)-1;
        apr_size_t at = (apr_size_t)-1;
        apr_status_t lrv;

        for (j = 0; j < NKEYS; j++) {
            g[j].key = keys[j];
        }
        lrv = ark_json_scan_limited(buf, len, g, NKEYS, l, &hit, &at);
        if (rv != APR_SUCCESS) {
            FUZZ_CHECK(lrv == APR_EINVAL || lrv == APR_ENOSPC);
            FUZZ_CHECK(at <= err_at);
            FUZZ_CHECK((lrv == APR_ENOSPC) == (hit != ARK_JSON_LIMIT_NONE));
            FUZZ_CHECK(lrv == APR_ENOSPC || at == err_at);
            continue;
        }
        if (!deep && !many) {
            FUZZ_CHECK(lrv == APR_SUCCESS && hit == ARK_JSON_LIMIT_NONE);
            for (j = 0; j < NKEYS; j++) {
                FUZZ_CHECK(g[j].type == f[j].type);
                if (f[j].type != ARK_JSON_NONE) {
                    FUZZ_CHECK(g[j].start == f[j].start
                               && g[j].end == f[j].end
                               && g[j].key_start == f[j].key_start
                               && g[j].count == f[j].count);
                }
            }
            continue;
        }
        FUZZ_CHECK(lrv == APR_ENOSPC && at < len);
        FUZZ_CHECK((hit == ARK_JSON_LIMIT_DEPTH && deep)
                   || (hit == ARK_JSON_LIMIT_ELEMENTS && many));
    }
}

static void check_usage(const char *buf, apr_size_t len, const json_t *root)
{
    ark_usage_t a, b;
    int ra, rb;

    ark_usage_clear(&a);
    ark_usage_clear(&b);
    ra = ark_usage_from_openai_text(&a, buf, len);
    rb = ark_usage_from_openai(&b, root);
    FUZZ_CHECK(ra == rb);
    FUZZ_CHECK(a.prompt_tokens == b.prompt_tokens
               && a.completion_tokens == b.completion_tokens
               && a.total_tokens == b.total_tokens
               && a.cached_tokens == b.cached_tokens);
}

static void check_quote(const char *buf, apr_size_t len)
{
    char *out = malloc(6 * len + 2);
    json_t *want = json_stringn(buf, len);
    json_t *got;
    apr_size_t n;

    FUZZ_CHECK(out != NULL);
    n = ark_json_quote(out, buf, len);
    FUZZ_CHECK((n == 0) == (want == NULL || memchr(buf, '\0', len)));
    if (n) {
        FUZZ_CHECK(n <= 6 * len + 2);
        got = json_loadb(out, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        FUZZ_CHECK(got != NULL);
        FUZZ_CHECK(json_equal(got, want));
        json_decref(got);
    }
    json_decref(want);
    free(out);
}

/* ark_json_scan_nested with the fields of a streamed chunk (and keys of
 * the top-level list, so that random inputs hit them): the same outcome
 * and error offset as ark_json_scan, and for an object every field is
 * jansson's value at its path (a member of the parent's value, or of its
 * first item when that is an array). */
static void check_nested(const char *buf, apr_size_t len, apr_status_t rv,
                         apr_size_t err_at, const json_t *root)
{
    static const char *const nkeys[] = {
        "error", "usage", "choices", "delta", "content", "tool_calls",
        "model", "n"
    };
    static const int parent[] = { -1, -1, -1, 2, 3, 3, 2, 6 };
    ark_json_field_t f[8];
    const json_t *vals[8];
    ark_json_type_t top = ARK_JSON_NONE;
    apr_size_t at = (apr_size_t)-1;
    apr_status_t nrv;
    int i;

    for (i = 0; i < 8; i++) {
        f[i].key = nkeys[i];
    }
    nrv = ark_json_scan_nested(buf, len, f, parent, 8, &top, &at);
    FUZZ_CHECK(nrv == rv);
    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(at == err_at);
        return;
    }
    for (i = 0; i < 8; i++) {
        const json_t *c = parent[i] < 0 ? root : vals[parent[i]];
        const json_t *want;
        json_t *got;

        if (json_is_array(c)) {
            c = json_array_get(c, 0);
        }
        want = json_is_object(root) && json_is_object(c)
               ? json_object_get(c, nkeys[i]) : NULL;
        vals[i] = want;
        if (!want) {
            FUZZ_CHECK(f[i].type == ARK_JSON_NONE);
            continue;
        }
        FUZZ_CHECK(f[i].type == type_of(want));
        FUZZ_CHECK(f[i].key_start < f[i].start && f[i].start < f[i].end
                   && f[i].end <= len && buf[f[i].key_start] == '"');
        if (json_is_array(want)) {
            FUZZ_CHECK(f[i].count == json_array_size(want));
        }
        else if (json_is_object(want)) {
            FUZZ_CHECK(f[i].count >= json_object_size(want));
        }
        got = json_loadb(buf + f[i].start, f[i].end - f[i].start,
                         JSON_DECODE_ANY, NULL);
        FUZZ_CHECK(got != NULL && json_equal(got, (json_t *)want));
        json_decref(got);
    }
}

void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p)
{
    const char *buf = (const char *)data;
    ark_json_field_t f[NKEYS];
    ark_json_type_t top = ARK_JSON_NONE;
    apr_size_t err_at = (apr_size_t)-1;
    apr_status_t rv;
    json_t *root;
    int i;

    for (i = 0; i < NKEYS; i++) {
        f[i].key = keys[i];
    }
    rv = ark_json_scan(buf, size, f, NKEYS, &top, &err_at);
    root = json_loadb(buf, size, 0, NULL);
    if (rv == APR_SUCCESS) {
        FUZZ_CHECK(root != NULL);
        FUZZ_CHECK(top == type_of(root));
        if (top == ARK_JSON_OBJECT) {
            for (i = 0; i < NKEYS; i++) {
                check_field(buf, size, &f[i], root);
            }
        }
        check_usage(buf, size, root);
    }
    else {
        FUZZ_CHECK(rv == APR_EINVAL);
        FUZZ_CHECK(err_at <= size);
        FUZZ_CHECK(root == NULL || memchr(buf, '\0', size) != NULL);
    }
    check_limited(buf, size, rv, err_at, f);
    check_nested(buf, size, rv, err_at, root);
    json_decref(root);
    check_quote(buf, size);
}
