/* W3C Trace Context and OTLP span encoding. See ark_trace.h.
 *
 * Parsing is a pure function of the header value: every rule of the
 * specification is one check below, and anything that fails one makes
 * the caller start a new trace (never an error for the client). Span
 * objects are built with jansson and dumped at once, so the exporter's
 * queue holds plain strings and never a json_t.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>
#include <openssl/rand.h>

#include "ark_trace.h"

/* Most members a tracestate may have (W3C Trace Context). */
#define TRACESTATE_MEMBERS_MAX 32

/* Members longer than this go first when a tracestate is shortened. */
#define TRACESTATE_MEMBER_LONG 128

static const char hexdigits[] = "0123456789abcdef";

/* Whether s[0..n) are lower-case hex digits, and (if nonzero) not all
 * '0'. */
static int lower_hex(const char *s, apr_size_t n, int nonzero)
{
    apr_size_t i;
    int any = 0;

    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
        any |= c != '0';
    }
    return !nonzero || any;
}

static unsigned int hexval(char c)
{
    return c <= '9' ? (unsigned int)(c - '0') : (unsigned int)(c - 'a' + 10);
}

/* Worked example: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
 *   [0,2)  version 00        [2]  '-'
 *   [3,35) trace-id          [35] '-'
 *   [36,52) parent-id        [52] '-'
 *   [53,55) flags 01: sampled
 * A version-01 value may go on after index 55 provided [55] is '-'. */
apr_status_t ark_trace_parse(ark_trace_t *t, const char *v)
{
    apr_size_t len;

    if (!v) {
        return APR_EINVAL;
    }
    for (len = 0; v[len] && len <= ARK_TRACEPARENT_MAX; len++) {
    }
    if (len < ARK_TRACEPARENT_LEN || len > ARK_TRACEPARENT_MAX) {
        return APR_EINVAL;
    }
    if (!lower_hex(v, 2, 0) || !strncmp(v, "ff", 2)) {
        return APR_EINVAL;            /* version ff is forbidden */
    }
    if (!strncmp(v, "00", 2) ? len != ARK_TRACEPARENT_LEN
                             : (len > ARK_TRACEPARENT_LEN
                                && v[ARK_TRACEPARENT_LEN] != '-')) {
        return APR_EINVAL;
    }
    if (v[2] != '-' || v[35] != '-' || v[52] != '-') {
        return APR_EINVAL;
    }
    if (!lower_hex(v + 3, ARK_TRACE_ID_HEX, 1)
        || !lower_hex(v + 36, ARK_SPAN_ID_HEX, 1)
        || !lower_hex(v + 53, 2, 0)) {
        return APR_EINVAL;
    }
    memcpy(t->trace_id, v + 3, ARK_TRACE_ID_HEX);
    t->trace_id[ARK_TRACE_ID_HEX] = '\0';
    memcpy(t->parent_id, v + 36, ARK_SPAN_ID_HEX);
    t->parent_id[ARK_SPAN_ID_HEX] = '\0';
    t->flags = ((hexval(v[53]) << 4) | hexval(v[54]))
               & ARK_TRACE_FLAG_SAMPLED;
    return APR_SUCCESS;
}

/* Shortens a list of members to ARK_TRACESTATE_MAX: members longer than
 * TRACESTATE_MEMBER_LONG go first, then members from the end. Example
 * with a 20-character limit: "a=1,bb=<200 chars>,c=3" -> "a=1,c=3". */
static const char *tracestate_shorten(const char *v, apr_pool_t *p)
{
    apr_array_header_t *m = apr_array_make(p, 8, sizeof(char *));
    char *copy = apr_pstrdup(p, v), *tok, *last;
    apr_size_t total = 0;
    int i, n;
    char *out, *o;

    for (tok = apr_strtok(copy, ",", &last); tok;
         tok = apr_strtok(NULL, ",", &last)) {
        char *end;

        while (*tok == ' ' || *tok == '\t') {
            tok++;
        }
        end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t')) {
            *--end = '\0';
        }
        if (*tok && strlen(tok) <= TRACESTATE_MEMBER_LONG) {
            APR_ARRAY_PUSH(m, char *) = tok;
        }
    }
    for (n = 0; n < m->nelts; n++) {
        apr_size_t add = strlen(APR_ARRAY_IDX(m, n, char *)) + (n ? 1 : 0);

        if (total + add > ARK_TRACESTATE_MAX) {
            break;
        }
        total += add;
    }
    if (n == 0) {
        return NULL;
    }
    out = o = apr_palloc(p, total + 1);
    for (i = 0; i < n; i++) {
        const char *s = APR_ARRAY_IDX(m, i, char *);
        apr_size_t l = strlen(s);

        if (i) {
            *o++ = ',';
        }
        memcpy(o, s, l);
        o += l;
    }
    *o = '\0';
    return out;
}

const char *ark_tracestate_check(const char *v, apr_pool_t *p)
{
    const char *c;
    int members = 1, content = 0;

    if (!v) {
        return NULL;
    }
    for (c = v; *c; c++) {
        unsigned char u = (unsigned char)*c;

        if (u == ',') {
            members++;
        }
        else if (u == '\t' || u == ' ') {
            continue;
        }
        else if (u < 0x20 || u > 0x7e) {
            return NULL;
        }
        else {
            content = 1;
        }
    }
    if (!content || members > TRACESTATE_MEMBERS_MAX) {
        return NULL;
    }
    if ((apr_size_t)(c - v) <= ARK_TRACESTATE_MAX) {
        return v;
    }
    return tracestate_shorten(v, p);
}

/* Ids come from a per-thread xoshiro256** generator seeded from OpenSSL:
 * RAND_bytes costs thousands of instructions (locks, DRBG), several times
 * per request; an id needs to be unique and unguessable enough for a
 * trace, not a secret. A forked child (httpd's processes) must not repeat
 * its parent's sequence: the atfork handler moves the generation on, and
 * a thread whose seed is of another generation seeds again. */
static _Atomic unsigned long rng_generation;
static pthread_once_t rng_once = PTHREAD_ONCE_INIT;
static _Thread_local struct {
    uint64_t s[4];
    unsigned long generation;
    int seeded;
} rng;

static void rng_forked(void)
{
    atomic_fetch_add_explicit(&rng_generation, 1, memory_order_relaxed);
}

static void rng_register(void)
{
    (void)pthread_atfork(NULL, NULL, rng_forked);
}

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    uint64_t *s = rng.s;
    uint64_t r = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return r;
}

/* Seeds this thread's generator; 0 when no seed could be had. */
static int rng_seed(void)
{
    unsigned char *b = (unsigned char *)rng.s;

    pthread_once(&rng_once, rng_register);
    rng.generation = atomic_load_explicit(&rng_generation,
                                          memory_order_relaxed);
    if (RAND_bytes(b, (int)sizeof(rng.s)) != 1
        && apr_generate_random_bytes(b, sizeof(rng.s)) != APR_SUCCESS) {
        return 0;
    }
    rng.seeded = (rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3]) != 0;
    return rng.seeded;
}

void ark_trace_random(unsigned char *out, apr_size_t n)
{
    apr_size_t i;
    int any;

    if ((!rng.seeded
         || rng.generation != atomic_load_explicit(&rng_generation,
                                                   memory_order_relaxed))
        && !rng_seed()) {
        /* no generator at all: time and address, still unique enough for
         * a trace id, never a secret */
        apr_uint64_t x = (apr_uint64_t)apr_time_now()
                         ^ (apr_uint64_t)(apr_uintptr_t)out;

        for (i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            out[i] = (unsigned char)(x >> 56);
        }
        return;
    }
    do {
        for (i = 0; i < n; i += 8) {
            uint64_t v = rng_next();

            memcpy(out + i, &v, n - i < 8 ? n - i : 8);
        }
        for (i = 0, any = 0; i < n; i++) {
            any |= out[i];
        }
    } while (!any);                    /* W3C: all zero is invalid */
}

void ark_trace_new_id(char *out, apr_size_t hexlen)
{
    unsigned char raw[ARK_TRACE_ID_HEX / 2];
    apr_size_t i, n = hexlen / 2;

    if (n > sizeof(raw)) {
        n = sizeof(raw);
    }
    ark_trace_random(raw, n);
    for (i = 0; i < n; i++) {
        out[2 * i] = hexdigits[raw[i] >> 4];
        out[2 * i + 1] = hexdigits[raw[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

void ark_trace_begin(ark_trace_t *t, const char *traceparent,
                     const char *tracestate, apr_pool_t *p)
{
    memset(t, 0, sizeof(*t));
    if (ark_trace_parse(t, traceparent) == APR_SUCCESS) {
        t->continued = 1;
        t->tracestate = ark_tracestate_check(tracestate, p);
    }
    else {
        ark_trace_new_id(t->trace_id, ARK_TRACE_ID_HEX);
        t->parent_id[0] = '\0';
        t->flags = ARK_TRACE_FLAG_SAMPLED;
    }
    ark_trace_new_id(t->span_id, ARK_SPAN_ID_HEX);
}

const char *ark_traceparent_format(const ark_trace_t *t, const char *span_id,
                                   apr_pool_t *p)
{
    return apr_psprintf(p, "00-%s-%s-%02x", t->trace_id, span_id,
                        t->flags & 0xffu);
}

/* ------------------------------------------------------------- spans */

void ark_span_init(ark_span_t *s, apr_pool_t *p)
{
    memset(s, 0, sizeof(*s));
    s->attrs = apr_array_make(p, 16, sizeof(ark_span_attr_t));
}

static ark_span_attr_t *attr_push(ark_span_t *s, const char *key,
                                  ark_attr_type_t type)
{
    ark_span_attr_t *a = apr_array_push(s->attrs);

    memset(a, 0, sizeof(*a));
    a->key = key;
    a->type = type;
    return a;
}

void ark_span_attr_str(ark_span_t *s, const char *key, const char *v)
{
    if (v) {
        attr_push(s, key, ARK_ATTR_STRING)->s = v;
    }
}

void ark_span_attr_int(ark_span_t *s, const char *key, apr_int64_t v)
{
    attr_push(s, key, ARK_ATTR_INT)->i = v;
}

void ark_span_attr_count(ark_span_t *s, const char *key, apr_int64_t v)
{
    if (v >= 0) {
        ark_span_attr_int(s, key, v);
    }
}

void ark_span_attr_bool(ark_span_t *s, const char *key, int v)
{
    attr_push(s, key, ARK_ATTR_BOOL)->i = v != 0;
}

void ark_span_attr_double(ark_span_t *s, const char *key, double v)
{
    attr_push(s, key, ARK_ATTR_DOUBLE)->d = v;
}

/* A JSON string of v; a value that is not UTF-8 has its non-ASCII bytes
 * replaced by '?' rather than vanishing. */
static json_t *str_value(const char *v)
{
    json_t *j = json_string(v ? v : "");
    char *copy, *c;

    if (j) {
        return j;
    }
    copy = strdup(v);
    if (!copy) {
        return NULL;
    }
    for (c = copy; *c; c++) {
        if ((unsigned char)*c >= 0x80) {
            *c = '?';
        }
    }
    j = json_string(copy);
    free(copy);
    return j;
}

/* OTLP wants 64-bit integers (times, intValue) as decimal strings. */
static json_t *int64_string(apr_int64_t v)
{
    char buf[32];

    apr_snprintf(buf, sizeof(buf), "%" APR_INT64_T_FMT, v);
    return json_string(buf);
}

static json_t *attr_json(const char *key, json_t *value)
{
    return json_pack("{s:o,s:o}", "key", str_value(key), "value", value);
}

static json_t *attr_value(const ark_span_attr_t *a)
{
    switch (a->type) {
    case ARK_ATTR_INT:
        return json_pack("{s:o}", "intValue", int64_string(a->i));
    case ARK_ATTR_BOOL:
        return json_pack("{s:b}", "boolValue", (int)a->i);
    case ARK_ATTR_DOUBLE:
        return json_pack("{s:f}", "doubleValue", a->d);
    default:
        return json_pack("{s:o}", "stringValue", str_value(a->s));
    }
}

char *ark_span_json(const ark_span_t *s)
{
    json_t *o = json_object(), *attrs = json_array();
    char *text;
    int i;

    json_object_set_new(o, "traceId", str_value(s->trace_id));
    json_object_set_new(o, "spanId", str_value(s->span_id));
    if (s->parent_id && *s->parent_id) {
        json_object_set_new(o, "parentSpanId", str_value(s->parent_id));
    }
    if (s->tracestate && *s->tracestate) {
        json_object_set_new(o, "traceState", str_value(s->tracestate));
    }
    json_object_set_new(o, "name", str_value(s->name ? s->name : "span"));
    json_object_set_new(o, "kind", json_integer(s->kind));
    json_object_set_new(o, "startTimeUnixNano",
                        int64_string((apr_int64_t)s->start * 1000));
    json_object_set_new(o, "endTimeUnixNano",
                        int64_string((apr_int64_t)(s->end >= s->start
                                                   ? s->end : s->start)
                                     * 1000));
    for (i = 0; s->attrs && i < s->attrs->nelts; i++) {
        const ark_span_attr_t *a = &APR_ARRAY_IDX(s->attrs, i,
                                                  ark_span_attr_t);

        json_array_append_new(attrs, attr_json(a->key, attr_value(a)));
    }
    json_object_set_new(o, "attributes", attrs);
    if (s->error) {
        json_t *st = json_pack("{s:i}", "code", 2);   /* STATUS_CODE_ERROR */

        if (s->status_message) {
            json_object_set_new(st, "message", str_value(s->status_message));
        }
        json_object_set_new(o, "status", st);
    }
    text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(o);
    return text;
}

char *ark_otlp_envelope(const char *const *spans, apr_size_t n,
                        const char *service, const char *version,
                        const char *host, apr_size_t *plen)
{
    static const char head1[] = "{\"resourceSpans\":[{\"resource\":";
    static const char head2[] = ",\"scopeSpans\":[{\"scope\":";
    static const char head3[] = ",\"spans\":[";
    static const char tail[] = "]}]}]}";
    json_t *res = json_pack("{s:[]}", "attributes");
    json_t *attrs = json_object_get(res, "attributes");
    json_t *scope = json_pack("{s:s}", "name", "mod_ark");
    char *rtext, *stext, *out = NULL, *o;
    apr_size_t len, i;

    json_array_append_new(attrs, attr_json("service.name", json_pack(
        "{s:o}", "stringValue", str_value(service ? service : "ark"))));
    if (version) {
        json_array_append_new(attrs, attr_json("service.version", json_pack(
            "{s:o}", "stringValue", str_value(version))));
        json_object_set_new(scope, "version", str_value(version));
    }
    if (host) {
        json_array_append_new(attrs, attr_json("host.name", json_pack(
            "{s:o}", "stringValue", str_value(host))));
    }
    rtext = json_dumps(res, JSON_COMPACT);
    stext = json_dumps(scope, JSON_COMPACT);
    json_decref(res);
    json_decref(scope);
    if (!rtext || !stext) {
        goto done;
    }
    len = strlen(head1) + strlen(rtext) + strlen(head2) + strlen(stext)
          + strlen(head3) + strlen(tail);
    for (i = 0; i < n; i++) {
        len += strlen(spans[i]) + 1;
    }
    out = malloc(len + 1);
    if (!out) {
        goto done;
    }
    o = out;
#define PUT(s) do { apr_size_t l_ = strlen(s); memcpy(o, s, l_); o += l_; } \
               while (0)
    PUT(head1);
    PUT(rtext);
    PUT(head2);
    PUT(stext);
    PUT(head3);
    for (i = 0; i < n; i++) {
        if (i) {
            *o++ = ',';
        }
        PUT(spans[i]);
    }
    PUT(tail);
#undef PUT
    *o = '\0';
    if (plen) {
        *plen = (apr_size_t)(o - out);
    }
done:
    free(rtext);
    free(stext);
    return out;
}
