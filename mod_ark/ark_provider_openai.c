/* Provider type "openai": OpenAI and every OpenAI-compatible endpoint
 * (DeepSeek, Qwen compatible mode, Moonshot, vLLM, Ollama, ...).
 *
 * The client already speaks this format, so translation is minimal: the
 * model alias is replaced by the upstream model name, and streamed
 * requests always ask for the usage chunk (stream_options.include_usage)
 * so that tokens are accounted for every stream. The usage chunk is
 * withheld from clients that did not ask for it themselves. Answers are
 * validated and relayed byte for byte.
 *
 * Hot path: the upstream body is spliced from the client's bytes (the
 * model value replaced, include_usage set) instead of copying and
 * serializing the jansson tree, and a complete answer is checked with
 * ark_json_scan (syntax, "choices"/"data" an array) with only its "usage"
 * object read, instead of being parsed into a tree. The azure type reuses everything
 * here but the URL and the auth header.
 */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "ark_jsonscan.h"
#include "ark_provider.h"

/* The upstream body built with jansson: a copy of the client's document
 * with "model" replaced, serialized again. For requests without raw
 * bytes (translated by a front) and as a fallback. */
static const char *openai_body_dump(const ark_req_t *req,
                                    const char *upstream_model,
                                    apr_size_t *plen, apr_pool_t *p)
{
    /* a shallow copy: the client's document stays as it was, so another
     * channel can be tried with it after a failure */
    json_t *root = json_copy(req->root);
    const char *body;

    if (!root) {
        return NULL;
    }
    json_object_set_new(root, "model", json_string(upstream_model));
    if (req->endpoint == ARK_ENDPOINT_CHAT && req->stream) {
        json_t *opts = json_object_get(root, "stream_options");

        opts = json_is_object(opts) ? json_copy(opts) : json_object();
        json_object_set_new(opts, "include_usage", json_true());
        json_object_set_new(root, "stream_options", opts);
    }
    body = ark_json_pdump(root, plen, p);
    json_decref(root);
    return body;
}

/* One replacement of src[from, to) by text[0, n). */
typedef struct {
    apr_size_t from, to;
    const char *text;
    apr_size_t n;
} splice_t;

#define INCLUDE_USAGE "\"include_usage\":true"

/* The edit that sets stream_options.include_usage in src, where f is the
 * top-level "stream_options" field. Returns 0 if src is not as expected. */
static int splice_stream_options(splice_t *e, const char *src,
                                 apr_size_t len, const ark_json_field_t *f)
{
    ark_json_field_t inc[1];
    apr_size_t at;

    if (f->type == ARK_JSON_NONE) {
        /* append a member before the closing brace of the body */
        for (at = len; at > 0 && src[at - 1] != '}'; at--) {
        }
        if (at == 0) {
            return 0;
        }
        e->from = e->to = at - 1;
        e->text = ",\"stream_options\":{" INCLUDE_USAGE "}";
    }
    else if (f->type != ARK_JSON_OBJECT) {
        /* null */
        e->from = f->start;
        e->to = f->end;
        e->text = "{" INCLUDE_USAGE "}";
    }
    else {
        inc[0].key = "include_usage";
        if (ark_json_scan(src + f->start, f->end - f->start, inc, 1, NULL,
                          NULL) != APR_SUCCESS) {
            return 0;
        }
        if (inc[0].type != ARK_JSON_NONE) {
            e->from = f->start + inc[0].start;
            e->to = f->start + inc[0].end;
            e->text = "true";
        }
        else {
            /* first member of the object */
            e->from = e->to = f->start + 1;
            for (at = e->from; src[at] == ' ' || src[at] == '\n'
                               || src[at] == '\r' || src[at] == '\t'; at++) {
            }
            e->text = src[at] == '}' ? INCLUDE_USAGE : INCLUDE_USAGE ",";
        }
    }
    e->n = strlen(e->text);
    return 1;
}

/* The upstream body spliced from the client's bytes: the value of the
 * top-level "model" replaced by the upstream model name and, for
 * streams, stream_options.include_usage set, everything else copied as
 * the client wrote it (already validated by ark_chat_req_parse). Worked
 * example, upstream model "gpt-4o-mini-2024-07-18", a stream:
 *   {"model": "mini", "stream":true, "messages":[...]}
 *   {"model": "gpt-4o-mini-2024-07-18", "stream":true, "messages":[...]
 *   ,"stream_options":{"include_usage":true}}
 * Returns NULL when the bytes are not what was expected (the caller
 * falls back to openai_body_dump). */
static const char *openai_body_splice(const ark_req_t *req,
                                      const char *upstream_model,
                                      apr_size_t *plen, apr_pool_t *p)
{
    const char *src = req->raw;
    apr_size_t len = req->raw_len, mlen = strlen(upstream_model), total, o;
    apr_size_t pos = 0;
    int stream = req->endpoint == ARK_ENDPOINT_CHAT && req->stream;
    int n = 1, i;
    ark_json_field_t f[2];
    ark_json_type_t top;
    splice_t e[2], tmp;
    char *quoted, *out;

    f[0].key = "model";
    f[1].key = "stream_options";
    if (ark_json_scan(src, len, f, stream ? 2 : 1, &top, NULL)
        != APR_SUCCESS || top != ARK_JSON_OBJECT
        || f[0].type != ARK_JSON_STRING) {
        return NULL;
    }
    quoted = apr_palloc(p, 6 * mlen + 2);
    e[0].n = ark_json_quote(quoted, upstream_model, mlen);
    if (e[0].n == 0) {
        return NULL;
    }
    e[0].from = f[0].start;
    e[0].to = f[0].end;
    e[0].text = quoted;
    if (stream) {
        if (!splice_stream_options(&e[1], src, len, &f[1])) {
            return NULL;
        }
        n = 2;
        if (e[1].from < e[0].from) {
            tmp = e[0];
            e[0] = e[1];
            e[1] = tmp;
        }
    }
    total = len;
    for (i = 0; i < n; i++) {
        total = total - (e[i].to - e[i].from) + e[i].n;
    }
    out = apr_palloc(p, total + 1);
    for (i = 0, o = 0; i < n; i++) {
        memcpy(out + o, src + pos, e[i].from - pos);
        o += e[i].from - pos;
        memcpy(out + o, e[i].text, e[i].n);
        o += e[i].n;
        pos = e[i].to;
    }
    memcpy(out + o, src + pos, len - pos);
    o += len - pos;
    out[o] = '\0';
    *plen = o;
    return out;
}

const char *ark_openai_body(const ark_req_t *req, const char *upstream_model,
                            apr_size_t *plen, apr_pool_t *p)
{
    const char *body = NULL;
    apr_size_t len = 0;

    if (req->raw) {
        body = openai_body_splice(req, upstream_model, &len, p);
    }
    if (!body) {
        body = openai_body_dump(req, upstream_model, &len, p);
    }
    if (plen) {
        *plen = len;
    }
    return body;
}

static apr_status_t openai_build_request(ark_upstream_req_t *out,
                                         const ark_provider_t *prov,
                                         const char *upstream_model,
                                         const ark_req_t *req,
                                         ark_err_t *err, apr_pool_t *p)
{
    int chat = req->endpoint == ARK_ENDPOINT_CHAT;

    out->body = ark_openai_body(req, upstream_model, &out->body_len, p);
    if (!out->body) {
        ark_err_set(err, 500, "internal_error", NULL,
                    "The gateway could not encode the upstream request.");
        return APR_ENOMEM;
    }
    out->url = apr_pstrcat(p, prov->base_url,
                           chat ? "/chat/completions" : "/embeddings", NULL);
    out->headers = ark_upstream_headers(chat && req->stream, "Authorization",
                                        "Bearer ", prov->secret, p);
    return APR_SUCCESS;
}

apr_status_t ark_openai_parse_response(const char **pbody, apr_size_t *plen,
                                       ark_usage_t *usage,
                                       const ark_req_t *req,
                                       const char *body, apr_size_t len,
                                       apr_pool_t *p)
{
    /* validated in one pass without building a tree: only the list's
     * type and the small "usage" object are looked at */
    ark_json_field_t f[2];
    ark_json_type_t top;

    (void)p;
    f[0].key = req && req->endpoint == ARK_ENDPOINT_EMBEDDINGS ? "data"
                                                              : "choices";
    f[1].key = "usage";
    if (ark_json_scan(body, len, f, 2, &top, NULL) != APR_SUCCESS
        || top != ARK_JSON_OBJECT || f[0].type != ARK_JSON_ARRAY) {
        return APR_EINVAL;
    }
    if (f[1].type == ARK_JSON_OBJECT) {
        ark_usage_from_openai_text(usage, body + f[1].start,
                                   f[1].end - f[1].start);
    }
    *pbody = body;
    *plen = len;
    return APR_SUCCESS;
}

/* Relays a single-line chunk unchanged: from the upstream's own bytes
 * when they are exactly "data: " data "\n\n" (ev->wire, the usual case:
 * no copy here, the emitter copies once), else as built here. */
static apr_status_t relay_event(ark_stream_t *st, const ark_sse_event_t *ev)
{
    char *out;

    st->events++;
    if (ev->wire) {
        return st->emit(st->emit_ctx, ev->wire, ev->data_len + 8);
    }
    out = apr_palloc(st->pool, ev->data_len + 9);
    memcpy(out, "data: ", 6);
    memcpy(out + 6, ev->data, ev->data_len);
    memcpy(out + 6 + ev->data_len, "\n\n", 3);
    return st->emit(st->emit_ctx, out, ev->data_len + 8);
}

/* One event through a jansson tree: the general path, for a chunk sent
 * as several data: lines (re-encoded on one line) and a chunk with more
 * than one choice (only counted through the tree). Same outcomes as the
 * fast path of ark_openai_stream_event. */
static apr_status_t stream_event_tree(ark_stream_t *st,
                                      const ark_sse_event_t *ev)
{
    json_t *chunk, *usage, *choices;
    const char *out;
    apr_size_t len;
    int withhold;

    /* a raw NUL (jansson skips one after a number or a literal) would
     * cut the relayed event short */
    chunk = memchr(ev->data, '\0', ev->data_len)
            ? NULL : json_loadb(ev->data, ev->data_len, 0, NULL);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return APR_EINVAL;
    }
    if (json_object_get(chunk, "error")) {
        json_decref(chunk);
        return APR_EGENERAL;       /* the upstream failed mid-stream */
    }
    usage = json_object_get(chunk, "usage");
    ark_usage_from_openai(&st->usage, usage);
    choices = json_object_get(chunk, "choices");
    ark_stream_count_content(st, chunk);
    /* the usage-only chunk the gateway asked for on the client's behalf,
     * and choice-less bookkeeping chunks (Azure's prompt filter results) */
    withhold = json_is_array(choices) && json_array_size(choices) == 0
               && (json_is_object(usage) ? !st->client_wants_usage : 1);
    if (withhold) {
        json_decref(chunk);
        return APR_SUCCESS;
    }
    if (!memchr(ev->data, '\n', ev->data_len)) {
        json_decref(chunk);
        return relay_event(st, ev);
    }
    /* sent as several data: lines: relayed after a single "data: ", its
     * second line would be a field of its own; the chunk goes out
     * re-encoded on one line instead */
    out = ark_sse_data_make(chunk, &len, st->pool);
    if (!out) {
        return APR_ENOMEM;
    }
    st->events++;
    return st->emit(st->emit_ctx, out, len);
}

/* The fields of a chunk ark_openai_stream_event reads, all found in one
 * scan: the top-level "error", "usage" and "choices", and the "delta" of
 * the first choice with its "content" and "tool_calls". */
enum {
    CF_ERROR, CF_USAGE, CF_CHOICES, CF_DELTA, CF_CONTENT, CF_TOOLS, CF_N
};
static const int chunk_parent[CF_N] = {
    -1, -1, -1, CF_CHOICES, CF_DELTA, CF_DELTA
};

/* One upstream event. The usual chunk (one data: line, at most one
 * choice) is checked and read in a single pass of the scanner, without
 * a jansson tree: the scanner accepts exactly what json_loadb accepts and
 * refuses a raw NUL, as the tree path does. The only choice carries
 * content when its delta has a non-empty "content" string or a non-empty
 * "tool_calls" list, as ark_stream_count_content decides on a tree (a
 * string literal longer than its two quotes is not empty: the scanner
 * refuses \u0000, the only escape that could decode to nothing). */
apr_status_t ark_openai_stream_event(ark_stream_t *st,
                                     const ark_sse_event_t *ev)
{
    ark_json_field_t f[CF_N];
    ark_json_type_t top;

    if (ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6)) {
        st->done = 1;
        return st->emit(st->emit_ctx, "data: [DONE]\n\n", 14);
    }
    if (memchr(ev->data, '\n', ev->data_len)) {
        return stream_event_tree(st, ev);
    }
    f[CF_ERROR].key = "error";
    f[CF_USAGE].key = "usage";
    f[CF_CHOICES].key = "choices";
    f[CF_DELTA].key = "delta";
    f[CF_CONTENT].key = "content";
    f[CF_TOOLS].key = "tool_calls";
    if (ark_json_scan_nested(ev->data, ev->data_len, f, chunk_parent, CF_N,
                             &top, NULL) != APR_SUCCESS
        || top != ARK_JSON_OBJECT) {
        return APR_EINVAL;
    }
    if (f[CF_ERROR].type != ARK_JSON_NONE) {
        return APR_EGENERAL;       /* the upstream failed mid-stream */
    }
    if (f[CF_CHOICES].type == ARK_JSON_ARRAY && f[CF_CHOICES].count > 1) {
        return stream_event_tree(st, ev);
    }
    if (f[CF_USAGE].type == ARK_JSON_OBJECT) {
        ark_usage_from_openai_text(&st->usage, ev->data + f[CF_USAGE].start,
                                   f[CF_USAGE].end - f[CF_USAGE].start);
    }
    if (f[CF_CHOICES].type == ARK_JSON_ARRAY && f[CF_CHOICES].count == 1
        && f[CF_DELTA].type == ARK_JSON_OBJECT
        && ((f[CF_CONTENT].type == ARK_JSON_STRING
             && f[CF_CONTENT].end - f[CF_CONTENT].start > 2)
            || (f[CF_TOOLS].type == ARK_JSON_ARRAY
                && f[CF_TOOLS].count > 0))) {
        st->content_events++;
    }
    /* the usage-only chunk the gateway asked for on the client's behalf,
     * and choice-less bookkeeping chunks (Azure's prompt filter results) */
    if (f[CF_CHOICES].type == ARK_JSON_ARRAY && f[CF_CHOICES].count == 0
        && (f[CF_USAGE].type == ARK_JSON_OBJECT ? !st->client_wants_usage
                                                : 1)) {
        return APR_SUCCESS;
    }
    return relay_event(st, ev);
}

void ark_openai_map_error(ark_err_t *err, const ark_provider_t *prov,
                          int status, const char *body, apr_size_t len,
                          apr_pool_t *p)
{
    ark_provider_map_status(err, status,
                            ark_provider_error_message(body, len,
                                                       prov->secret, p),
                            p);
}

const ark_provider_type_t ark_provider_openai = {
    "openai",
    ARK_EP_CHAT | ARK_EP_EMBEDDINGS,
    NULL,
    openai_build_request,
    ark_openai_parse_response,
    ark_openai_stream_event,
    NULL,
    ark_openai_map_error,
};
